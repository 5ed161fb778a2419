"""The access token value object and the expiry rules every layer shares."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Union

from . import _clock
from ._exceptions import TokenDataError

#: Renew a token this long before it expires. Five minutes covers client/server clock skew
#: (NTP-synchronised hosts rarely drift more than seconds, VMs resumed from sleep can be a
#: minute off) plus a slow request or upload that must not hit expiry half-way. Capped at
#: half a token's lifetime (see :meth:`Token.is_expired`), so 5-minute tokens still work.
DEFAULT_REFRESH_MARGIN = 300.0

#: Lifetime assumed when the token response has no ``expires_in`` and the token is not a JWT
#: with ``exp``. RFC 6749 §5.1 leaves the default to the server; the reference SDK then caches
#: the token forever. One hour bounds the damage: a wrong guess costs one renewal, and a
#: 401 before then renews anyway.
DEFAULT_TOKEN_LIFETIME = 3600.0

#: Longest lifetime believed, in seconds (one year). A token endpoint that answers
#: ``expires_in`` above it (``1e12``, ``1e400``), or a JWT whose ``exp`` lies further out,
#: gets this instead: such a value is a server bug or an attack, and the clamp keeps every
#: expiry a real date. A 401 renews a token that dies earlier.
MAX_TOKEN_LIFETIME = 366 * 24 * 3600.0

#: Longest access or refresh token accepted, in characters. Servers reject request headers
#: far below this (8-16 KiB is the usual limit), so a longer token could never be used.
MAX_TOKEN_LENGTH = 16384

Seconds = Union[float, int, timedelta]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Refresh tokens never enter a header (RFC 6749 §A.17 allows any VSCHAR); they go into form
# bodies and the cache file, where whitespace and control characters would do harm.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _token_problem(value: object, pattern: re.Pattern[str], grammar: str) -> Optional[str]:
    """Why ``value`` cannot be a token, or ``None``. Never quotes the value: it is a secret."""
    if not isinstance(value, str):
        return f"is not a string ({type(value).__name__})"
    if not value:
        return "is empty"
    if len(value) > MAX_TOKEN_LENGTH:
        return f"is longer than {MAX_TOKEN_LENGTH} characters"
    if pattern.fullmatch(value):
        return None
    if not value.isascii():
        return "contains non-ASCII characters"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "contains whitespace or control characters"
    return f"contains characters outside {grammar}"


def access_token_problem(value: object) -> Optional[str]:
    """Why ``value`` is not an access token that can go into ``Authorization: Bearer``.

    It must be an RFC 6750 §2.1 ``b64token`` of at most ``MAX_TOKEN_LENGTH`` (16384) characters:
    anything else could not be sent, and CR/LF in it would inject headers.
    """
    return _token_problem(value, _B64TOKEN, "the RFC 6750 b64token set")


def refresh_token_problem(value: object) -> Optional[str]:
    """Why ``value`` is not a usable refresh token: visible ASCII only, bounded length."""
    return _token_problem(value, _VISIBLE_ASCII, "visible ASCII")


def jwt_claims(token: str) -> Optional[dict[str, Any]]:
    """The payload of a JWT (RFC 7519), **unverified**, or ``None`` when ``token`` is not one.

    Only for hints that need no trust: a lifetime bound when the server states none, and the
    name shown to the token's own user. The resource server checks the signature.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


#: The ID token claims kept to say who is logged in (OpenID Connect Core §5.1), in the
#: order in which one is shown when several are present (``sub`` last: it is opaque).
ACCOUNT_CLAIMS = ("email", "preferred_username", "name", "sub")

#: Longest claim value kept, in characters: these are printed on terminals.
MAX_CLAIM_LENGTH = 256


def _claim(value: object) -> Optional[str]:
    """A claim fit to print: a string of 1 to ``MAX_CLAIM_LENGTH`` (256) printable characters
    (no control, format or separator characters but the space: no escape sequences, line
    breaks or bidi overrides reach a terminal); else ``None``."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_LENGTH:
        return None
    return value if value.isprintable() and value.strip() == value else None


@dataclass(frozen=True)
class Account:
    """Who a token was issued to, from the ID token of the same token response.

    ``sub`` is the provider's identifier of the user; ``email``, ``preferred_username`` and
    ``name`` are kept when present (OpenID Connect Core §5.1). Display only: the ID token
    came straight from the token endpoint over TLS, which OpenID Connect Core §3.1.3.7
    accepts in place of checking its signature for this use. Every value is a printable
    string of at most ``MAX_CLAIM_LENGTH`` (256) characters.
    """

    sub: str
    email: Optional[str] = None
    preferred_username: Optional[str] = None
    name: Optional[str] = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Optional[Account]:
        """The account the claims describe, or ``None`` without a printable ``sub``; any
        other claim that is not a printable, bounded string is left out."""
        sub = _claim(claims.get("sub"))
        if sub is None:
            return None
        return cls(
            sub,
            email=_claim(claims.get("email")),
            preferred_username=_claim(claims.get("preferred_username")),
            name=_claim(claims.get("name")),
        )

    @property
    def label(self) -> str:
        """The most readable claim present: email, else username, else name, else sub."""
        return self.email or self.preferred_username or self.name or self.sub

    def to_dict(self) -> dict[str, str]:
        """The claims that are present."""
        return {name: value for name in ACCOUNT_CLAIMS if (value := getattr(self, name))}


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _aware_utc(moment: object, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TokenDataError(f"{what} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None:
        raise TokenDataError(f"{what} must be timezone-aware (use datetime.timezone.utc)")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # a moment at the edge of year 1 or 9999 in another zone
        raise TokenDataError(f"{what} is out of range") from None


@dataclass(frozen=True, repr=False)
class Token:
    """An access token and when it expires.

    ``expiration`` is an aware UTC :class:`~datetime.datetime`, or ``None`` for a token
    that states no expiry. ``repr`` and ``str`` never show the token itself.

    ``token`` must be an RFC 6750 ``b64token`` and ``refresh_token`` visible ASCII, each at
    most ``MAX_TOKEN_LENGTH`` (16384) characters; anything else raises
    :class:`~fedbearer.TokenDataError` (whose message never quotes the value).

    ``refresh_token`` (RFC 6749 §6) and ``issued_at`` are optional: the first lets
    :class:`~fedbearer.FederationAuth` renew without a browser, the second lets the refresh
    margin be capped at half the token's lifetime.

    ``scope`` is what the token endpoint granted (its ``scope``, RFC 6749 §5.1), which may
    be less than was asked for; ``None`` when unknown. ``account`` says who logged in
    (:class:`Account`), when the provider sent an ID token.
    """

    token: str
    expiration: Optional[datetime]
    refresh_token: Optional[str] = None
    issued_at: Optional[datetime] = field(default=None, compare=False)
    scope: Optional[tuple[str, ...]] = field(default=None, compare=False)
    account: Optional[Account] = field(default=None, compare=False)
    # Epoch seconds, so the hot path compares two floats instead of datetimes.
    _expires_at: Optional[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every Token is sendable: the one check of a token's value, where it enters (from a
        # token endpoint, the cache file or a caller), so the request path needs none.
        problem = access_token_problem(self.token)
        if problem is not None:
            raise TokenDataError(f"the access token {problem}")
        refresh_token = self.refresh_token
        if refresh_token == "":
            refresh_token = None  # RFC 6749 servers sometimes send "" for "none"
        if refresh_token is not None:
            problem = refresh_token_problem(refresh_token)
            if problem is not None:
                raise TokenDataError(f"the refresh token {problem}")
        if self.scope is not None:
            scope: object = self.scope  # a caller may pass anything
            if isinstance(scope, str) or not all(isinstance(s, str) for s in self.scope):
                raise TokenDataError("scope must be a sequence of scope strings or None")
            object.__setattr__(self, "scope", tuple(self.scope))
        if self.account is not None and not isinstance(self.account, Account):
            raise TokenDataError("account must be an Account or None")
        exp = None if self.expiration is None else _aware_utc(self.expiration, "expiration")
        issued = None if self.issued_at is None else _aware_utc(self.issued_at, "issued_at")
        # Frozen: normalised values are set the way dataclasses itself does.
        object.__setattr__(self, "refresh_token", refresh_token)
        object.__setattr__(self, "expiration", exp)
        object.__setattr__(self, "issued_at", issued)
        object.__setattr__(self, "_expires_at", None if exp is None else exp.timestamp())

    def __repr__(self) -> str:
        exp = "never" if self.expiration is None else self.expiration.isoformat()
        refresh = ", refreshable" if self.refresh_token else ""
        return f"<Token expires={exp}{refresh}>"

    __str__ = __repr__

    @property
    def expires_at(self) -> Optional[float]:
        """Expiry as POSIX seconds, ``None`` when the token states none."""
        return self._expires_at

    def renew_at(self, margin: Seconds = DEFAULT_REFRESH_MARGIN) -> float:
        """POSIX time from which the token counts as expired under ``margin``.

        The margin is capped at half the lifetime when ``issued_at`` is known, so a token that
        lives 60 s is renewed after 30 s rather than at once. ``margin=0`` means no margin.
        Returns ``inf`` for a token without expiry.
        """
        if self._expires_at is None:
            return math.inf
        m = _seconds(margin)
        if m < 0:
            raise ValueError("margin must not be negative")
        if self.issued_at is not None:
            m = min(m, max(0.0, (self._expires_at - self.issued_at.timestamp()) / 2))
        return self._expires_at - m

    def is_expired(self, margin: Seconds = DEFAULT_REFRESH_MARGIN) -> bool:
        """True when ``now >= expiration - margin`` (see :meth:`renew_at` for the cap)."""
        return _clock.now() >= self.renew_at(margin)

    def to_dict(self) -> dict[str, Any]:
        """The reference cache form: ``{"token": str, "expires_at": int | None}``.

        ``refresh_token``, ``issued_at`` (unix seconds), ``scope`` (the granted scopes,
        space-separated as in RFC 6749 §3.3) and ``account`` (a mapping of the
        :class:`Account` claims) are added only when known; the Nebius SDK ignores unknown
        keys. ``issued_at`` lets another process reading the cache cap the refresh margin
        at half the lifetime too.
        """
        data: dict[str, Any] = {
            "token": self.token,
            "expires_at": None if self._expires_at is None else int(self._expires_at),
        }
        if self.refresh_token:
            data["refresh_token"] = self.refresh_token
        if self.issued_at is not None:
            data["issued_at"] = int(self.issued_at.timestamp())
        if self.scope is not None:
            data["scope"] = " ".join(self.scope)
        if self.account is not None:
            data["account"] = self.account.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """Inverse of :meth:`to_dict`; ``expires_at`` of ``0`` or ``None`` means no expiry.

        Raises :class:`~fedbearer.TokenDataError` (a ``ValueError``) on a wrong shape.
        """
        if not isinstance(data, Mapping):
            raise TokenDataError("token data must be a mapping")
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise TokenDataError("token data has no non-empty 'token' string")
        # The token's characters are checked by the constructor below.
        raw = data.get("expires_at")
        if raw is None or raw == 0:
            expiration = None
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
            try:
                expiration = datetime.fromtimestamp(raw, tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                raise TokenDataError("token data has an out-of-range 'expires_at'") from None
        else:
            raise TokenDataError("token data 'expires_at' must be unix seconds or null")
        refresh = data.get("refresh_token")
        if refresh is not None and not isinstance(refresh, str):
            raise TokenDataError("token data 'refresh_token' must be a string")
        issued = data.get("issued_at")
        issued_at = None
        # An unusable issued_at only costs the margin cap; it does not make the entry bad.
        if isinstance(issued, (int, float)) and not isinstance(issued, bool):
            try:
                issued_at = datetime.fromtimestamp(issued, tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                issued_at = None
        # Scope and account only describe the token: unusable ones are dropped, not fatal.
        raw_scope = data.get("scope")
        scope = None
        if isinstance(raw_scope, str) and raw_scope.isascii() and raw_scope.isprintable():
            scope = tuple(raw_scope.split())
        raw_account = data.get("account")
        account = Account.from_claims(raw_account) if isinstance(raw_account, Mapping) else None
        return cls(
            token,
            expiration,
            refresh_token=refresh,
            issued_at=issued_at,
            scope=scope,
            account=account,
        )


def utc_from_timestamp(seconds: float) -> datetime:
    """Aware UTC datetime for POSIX ``seconds``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
