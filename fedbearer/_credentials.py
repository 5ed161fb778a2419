"""The transport-free token core, and the constructors every transport adapter shares.

:class:`Credentials` owns one identity's token: where it comes from (the environment, the
token cache, a refresh, one interactive login), when it is due for renewal (the margin),
single flight (one lock per object and a re-check after taking it; across processes the
cache's login lock), which tokens the API refused, and logout. It knows nothing about
HTTP requests: an adapter asks it for the ``Authorization`` header to send and tells it
when the API refused one (as google-auth's ``Credentials`` and its transports do).

:class:`FederationAuthBase` holds what the ``requests`` and ``httpx`` adapters share: the
constructors (``__init__``, ``from_issuer``, ``from_endpoints``, ``from_profile``,
``from_nebius_profile``, ``from_bearer``) with their keyword options spelled once
(:class:`Options`, a ``TypedDict`` that type checkers read through PEP 692's ``Unpack``),
the ``hosts`` and plain-HTTP rules, pickling and ``repr``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, Optional, Union

# The standard library has all three from 3.11 on, and importing typing_extensions is a
# measurable part of a cached `fedbearer token` (docs/performance.rst).
if sys.version_info >= (3, 11):
    from typing import Self, TypedDict, Unpack
else:
    from typing_extensions import Self, TypedDict, Unpack

from . import _clock, _cooldown
from ._bearer import Bearer, _login_hint
from ._cache import NoTokenCache, TokenCache, default_cache, provider_cache
from ._env_token import environment_token, read_token_variable
from ._exceptions import (
    ConfigurationError,
    FedbearerError,
    InvalidGrantError,
    LoginAbandonedError,
)
from ._keyring import KeyringTokenCache
from ._nebius_config import load_nebius_profile
from ._origins import is_loopback_http, parse_hosts
from ._profiles import load_profiles
from ._settings import LoginSettings, Verify, require_issuer, test_guard
from ._token import DEFAULT_REFRESH_MARGIN, Seconds, Token, _seconds

if TYPE_CHECKING:
    import requests  # a type only: the core makes no HTTP request of its own

    from ._browser import Opener
    from ._revocation import LogoutResult

log = logging.getLogger("fedbearer.auth")


class _DefaultCache:
    """The type of :data:`DEFAULT_CACHE` (``None`` already means "no cache")."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


#: ``cache=`` default: the file shared with the Nebius CLI (:func:`~fedbearer.default_cache`).
DEFAULT_CACHE = _DefaultCache()

CacheSetting = Union[TokenCache, None, _DefaultCache]


class TokenOptions(TypedDict, total=False):
    """What an adapter does with the token (see :class:`~fedbearer.FederationAuth`)."""

    refresh_margin: Seconds
    hosts: Optional[Iterable[str]]
    cache: CacheSetting
    token_from_env: bool


class LoginOptions(TypedDict, total=False):
    """How a login runs: fields of :class:`~fedbearer.LoginSettings` (see
    :class:`~fedbearer.Bearer`)."""

    writer: Optional[IO[str]]
    no_browser_open: bool
    timeout: Optional[float]
    port: Optional[int]
    opener: Optional[Opener]
    verify: Verify
    session: Optional[requests.Session]
    interactive: Optional[bool]
    app_name: str
    allow_insecure_http: bool
    preflight: bool
    device_code: Optional[bool]


class Options(TokenOptions, LoginOptions, total=False):
    """The keyword options every constructor of a ``FederationAuth`` takes (besides
    ``from_bearer``, which takes :class:`TokenOptions` only)."""


_TOKEN_OPTIONS = TokenOptions.__optional_keys__
_OPTIONS = Options.__optional_keys__
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _check_options(
    cls: type, method: str, options: Mapping[str, object], allowed: frozenset[str]
) -> None:
    """A misspelt keyword is a ``TypeError`` naming the method the user called.

    ``**options`` would otherwise carry it into :class:`LoginSettings`, whose name the user
    never wrote.
    """
    for name in options:
        if name not in allowed:
            # The suggestion may be one of the method's own keyword parameters (scopes).
            own = inspect.signature(getattr(cls, method)).parameters
            known = sorted({*allowed, *(p for p in own if own[p].kind == _KEYWORD)} - {"self"})
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if name in ("federation_endpoint", "federation_id"):
                hint = (
                    f"; {name} names a Nebius federation: pass it to "
                    f"{cls.__name__}(client_id, federation_endpoint, federation_id)"
                )
            raise TypeError(
                f"{cls.__name__}.{method}() got an unexpected keyword argument {name!r}{hint}"
            )


def _cache_from(setting: CacheSetting, settings: LoginSettings) -> TokenCache:
    if isinstance(setting, _DefaultCache):
        if test_guard.user_cache:
            return NoTokenCache()  # a test never reads or writes the user's tokens
        # No I/O: the file is opened when a token is needed. Another provider's tokens are
        # not the Nebius CLI's business: they go into fedbearer's own file.
        return default_cache() if settings.kind == "federation" else provider_cache()
    if setting is None:
        return NoTokenCache()
    if not isinstance(setting, TokenCache):
        raise ConfigurationError(
            "cache must be a TokenCache (FileTokenCache, MemoryTokenCache, ...), None for "
            "no cache, or left out for the file shared with the Nebius CLI"
        )
    return setting


#: (token, ``Authorization`` header, time to renew at) as one immutable value.
Snapshot = tuple[Optional[Token], str, float]
# -inf: with no token, the first request always takes the renewal path.
EMPTY: Snapshot = (None, "", -math.inf)


def copy_error(exc: FedbearerError) -> FedbearerError:
    """A copy of ``exc`` with the same message and attributes, and no traceback.

    ``copy.copy`` would call the constructor again with the formatted message as its
    first argument, and the message would be wrapped twice.
    """
    clone = exc.__class__.__new__(exc.__class__)
    clone.args = exc.args
    clone.__dict__.update(exc.__dict__)
    return clone


class Credentials:
    """One identity's token, its renewal and its logout; nothing about HTTP requests.

    :attr:`snapshot` is ``(token, header, renew_at)``, replaced whole, so a transport's hot
    path reads a consistent triple without a lock: while ``clock.now() < renew_at`` it
    sends ``header``; else it calls :meth:`header_after`. When the API answers 401 to a
    header, the transport calls :meth:`refused`, which renews (or says not to) and returns
    the header to resend with.

    Renewal is single-flight: whoever takes the lock second finds the token replaced and
    returns; callers that were queued behind a failed attempt share its error. Order: the
    cache (another process may have renewed), the refresh token, then one interactive login
    under the cache's cross-process login lock.

    A token from the environment (:attr:`~fedbearer.FederationAuth.token_variable`) is sent
    as it is: never renewed, cached or revoked, and a 401 for it is returned with one
    warning.

    Picklable: the locks are recreated and the token in memory is left out (it is a secret,
    and the cache has it).
    """

    def __init__(
        self,
        bearer: Bearer,
        *,
        refresh_margin: Seconds = DEFAULT_REFRESH_MARGIN,
        cache: CacheSetting = DEFAULT_CACHE,
        token_from_env: bool = True,
    ) -> None:
        if not isinstance(bearer, Bearer):
            raise ConfigurationError("from_bearer needs a fedbearer.Bearer")
        if not isinstance(token_from_env, bool):
            raise ConfigurationError("token_from_env must be True or False")
        if isinstance(refresh_margin, bool) or not isinstance(
            refresh_margin, (int, float, timedelta)
        ):
            raise ConfigurationError("refresh_margin must be seconds or a timedelta")
        margin = _seconds(refresh_margin)
        if not math.isfinite(margin) or margin < 0:
            raise ConfigurationError("refresh_margin must be a finite number of seconds >= 0")
        self.bearer = bearer
        self.refresh_margin = margin
        #: Where tokens persist between processes (``cache=None``: a :class:`NoTokenCache`).
        self.cache = _cache_from(cache, bearer.settings)
        self._locks()
        self._forget()
        # For a Nebius federation NEBIUS_IAM_TOKEN counts too, after FEDBEARER_TOKEN; another
        # OpenID provider's API must never be sent a Nebius token. Under the pytest plugin's
        # guard a test never sends a real token from the environment either.
        use_env = token_from_env and not test_guard.user_cache
        nebius = bearer.settings.kind == "federation"
        found = environment_token(nebius=nebius) if use_env else None
        #: The environment variable whose token is sent (``FEDBEARER_TOKEN`` or
        #: ``NEBIUS_IAM_TOKEN``), or ``None`` when tokens come from the cache or a login.
        self.token_variable: Optional[str] = None if found is None else found.variable
        if found is not None:
            # No expiry, so the hot path never renews it; a 401 for it is returned.
            self._install(found.token)
            log.debug("using the token from $%s; no cache, refresh or login", found.variable)

    #: Whether a login that :meth:`get_token` or a request starts is held back within the
    #: cool-down after an abandoned one (:mod:`fedbearer._cooldown`). ``fedbearer login``
    #: turns it off: it is an explicit login, and must run even when another process
    #: abandons a login while this one waits for the login lock.
    lazy_logins = True

    def _locks(self) -> None:
        self._lock = threading.Lock()
        self._distrust_lock = threading.Lock()

    def _forget(self) -> None:
        """Drop the token in memory and what was learnt about it."""
        self.snapshot: Snapshot = EMPTY
        # Renewal attempts that failed, and the last failure: callers that were already
        # waiting when an attempt failed share its error instead of each opening a browser.
        self._failures = 0
        self._last_error: Optional[FedbearerError] = None
        # A header refused right after a renewal for a 401: the server rejects even fresh
        # tokens, so more 401s for it do not start more logins.
        self._distrusted = ""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_distrust_lock", "snapshot", "_failures", "_last_error"):
            del state[name]
        del state["_distrusted"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._locks()
        self._forget()

    @property
    def token(self) -> Optional[Token]:
        """The token in memory (``None`` before the first renewal)."""
        return self.snapshot[0]

    def describe(self) -> str:
        """What is held, for ``repr``: never the token itself."""
        token = self.snapshot[0]
        if self.token_variable is not None:
            return f"from ${self.token_variable}"
        if token is None:
            return "none"
        if token.expiration is None:
            return "no expiry"
        return f"until {token.expiration.isoformat(timespec='seconds')}"

    # ------------------------------------------------------------------ for transports

    def header_after(self, token: Optional[Token]) -> str:
        """Renew past ``token`` (the one the caller found due) and return the header to send."""
        self.renew(token.token if token is not None else None)
        header = self.snapshot[1]
        if not header:  # a concurrent 401 dropped the new token already: once more
            self.renew(None)
            header = self.snapshot[1]
        return header

    def distrusts(self, header: str) -> bool:
        """Whether 401s to ``header`` no longer cause renewals (a fresh token was refused)."""
        return header == self._distrusted

    def refused(self, header: str, where: str) -> Optional[str]:
        """The API at ``where`` (``"GET https://host:443"``) answered 401 to ``header``.

        Renews past that token (it is never sent again, even if renewal fails) and returns
        the header to resend with; ``None`` when the token came from the environment and
        cannot be renewed. Raises what the renewal raises.
        """
        if self.token_variable is not None:
            if self._distrust(header):
                log.warning(
                    "%s refused (401) the token from $%s; a token from the environment "
                    "cannot be renewed (no cache, refresh or login), so the 401 is returned. "
                    "Set a valid token, or unset %s to log in instead",
                    where,
                    self.token_variable,
                    self.token_variable,
                )
            return None
        self.renew(header[len("Bearer ") :], rejected=True)
        return self.snapshot[1]

    def refused_again(self, header: str, where: str) -> None:
        """The resent request's fresh ``header`` got a 401 too: stop renewing for it.

        Renewing again would only open the browser again; its expiry, or a later token,
        ends this.
        """
        if self._distrust(header):
            log.warning(
                "%s was refused (401) with a fresh token too; not renewing again for it", where
            )

    def _distrust(self, header: str) -> bool:
        """Stop renewing for 401s to ``header``; True only for the first caller to say so,
        so that the requests that were resent together log one warning between them."""
        with self._distrust_lock:
            first = self._distrusted != header
            self._distrusted = header
        return first

    # ------------------------------------------------------------------ renewal

    def get_token(self) -> Token:
        """A valid token, logging in (or refreshing, or reading the cache) when needed."""
        token, _, renew_at = self.snapshot
        if token is None or _clock.now() >= renew_at:
            self.header_after(token)
            token = self.snapshot[0]
            if token is None:  # a concurrent 401 dropped it after we renewed: once more
                self.renew(None)
                token = self.snapshot[0]
        assert token is not None
        return token

    def logout(self) -> LogoutResult:
        """Forget this identity's tokens here and in the cache, then revoke them.

        See :meth:`fedbearer.FederationAuth.logout`.
        """
        from ._revocation import revoke_all  # the HTTP stack: only a logout revokes

        key = self.bearer.name
        settings = self.bearer.settings
        own = self.snapshot[0] if self.token_variable is None else None
        with self._lock, self.cache.login_lock(key, settings.timeout):
            held = [token for token in (self.cache.get(key), own) if token is not None]
            # Forgotten before the provider is asked: a revocation that hangs or fails must
            # not leave the tokens in memory or in the cache meanwhile.
            self.cache.remove(key)
            kept = self.snapshot
            self._forget()
            if self.token_variable is not None:
                self.snapshot = kept  # the environment's token is not ours to forget
            return revoke_all(settings, held)

    def _usable(self, token: Optional[Token], stale: Optional[str]) -> bool:
        return (
            token is not None and token.token != stale and not token.is_expired(self.refresh_margin)
        )

    def _install(self, token: Token) -> None:
        self.snapshot = (token, "Bearer " + token.token, token.renew_at(self.refresh_margin))

    def renew(self, stale: Optional[str], *, rejected: bool = False) -> None:
        """Make :attr:`token` a usable token other than ``stale``; blocks for a login.

        Single-flight: whoever takes the lock second finds the token already replaced and
        returns. Order: the cache (another process may have renewed), the refresh token,
        then one interactive login under the cache's cross-process login lock.
        """
        failures = self._failures
        with self._lock:
            current = self.snapshot[0]
            if self._usable(current, stale):
                return
            if self._failures != failures and self._last_error is not None:
                # The attempt we queued behind failed: one attempt per need, so report it
                # rather than start another login for the same need.
                raise copy_error(self._last_error)
            if rejected and current is not None and current.token == stale:
                # The API rejected it: never send it again, even if renewal fails below.
                self.snapshot = EMPTY
            try:
                self._install(self._obtain(current, stale))
            except FedbearerError as exc:
                self._failures += 1
                self._last_error = copy_error(exc)  # without the traceback and its frames
                raise

    def _obtain(self, current: Optional[Token], stale: Optional[str]) -> Token:
        """A usable token: from the cache, by refresh, or by one interactive login.

        Everything after the first cache read happens under the cache's cross-process login
        lock, and the cache is read again once it is held: another process may have logged
        in or refreshed meanwhile (and, with rotating refresh tokens, sending the refresh
        token it already used would get the whole grant revoked). The new token is written
        before the lock is released, so a process that waited finds it.

        An object that sends a token from the environment has none only after unpickling
        (the token is left out of the pickle): it reads the same variable again, here.
        """
        if self.token_variable is not None:
            return self._token_from_env(self.token_variable)
        cache = self.cache
        key = self.bearer.name
        cached = cache.get(key)
        if cached is not None and self._usable(cached, stale):
            log.debug("using the token found in the cache")
            return cached
        with cache.login_lock(key, self.bearer.settings.timeout) as acquired:
            if not acquired:
                log.info("waited for another process's renewal without result; renewing here")
            cached = cache.get(key)
            if cached is not None and self._usable(cached, stale):
                log.debug("another process renewed the token; using it")
                return cached
            # The cache's refresh token is the newest one another process may have
            # rotated to; ours, when the cache has none.
            source = cached if cached is not None and cached.refresh_token else current
            token = self._refreshed(source)
            if token is None:
                token = self._interactive_login(lazy=self.lazy_logins)
            cache.put(key, token)
            return token

    def _interactive_login(self, *, lazy: bool) -> Token:
        """One interactive login, and the abandoned-login record around it.

        A ``lazy`` login (one a request or ``get_token`` starts by itself) is not started
        within the cool-down after an abandoned one (:mod:`fedbearer._cooldown`); an
        abandoned login starts or extends a cool-down; a login that succeeds ends it.
        """
        settings = self.bearer.settings
        key = self.bearer.name
        if lazy and settings.interactive:
            last = _cooldown.active(key)
            if last is not None:
                raise self._abandoned_error(last)
        try:
            token = self.bearer.receiver().fetch()
        except FedbearerError as exc:
            how = _cooldown.how_abandoned(exc)
            if how is not None:
                _cooldown.record(key, how)
            raise
        _cooldown.clear(key)
        return token

    def _abandoned_error(self, last: _cooldown.Abandoned) -> LoginAbandonedError:
        settings = self.bearer.settings
        command = _login_hint(settings)
        way = f"run: {command}" if command is not None else "call login() on this FederationAuth"
        return LoginAbandonedError(
            f"the last login for profile {settings.profile!r} was abandoned at "
            f"{_cooldown.describe_time(last.at)} ({last.how}"
            + (f", {last.streak} in a row" if last.streak > 1 else "")
            + "), so no login starts by itself before "
            f"{_cooldown.describe_time(last.until)}, to open no browser tab per call. To log "
            f"in now, {way}",
            abandoned_at=last.at,
            until=last.until,
        )

    def login(self) -> Token:
        """Run an interactive login now and keep its token; see
        :meth:`fedbearer.FederationAuth.login`."""
        key = self.bearer.name
        _cooldown.clear(key)
        with self._lock, self.cache.login_lock(key, self.bearer.settings.timeout):
            token = self._interactive_login(lazy=False)
            self.cache.put(key, token)
            if self.token_variable is None:
                self._install(token)
            self._distrusted = ""
        return token

    @staticmethod
    def _token_from_env(variable: str) -> Token:
        token = read_token_variable(variable)
        if token is None:
            raise ConfigurationError(
                f"this FederationAuth was built to send the token from ${variable}, but "
                f"{variable} is not set in this process; set it, or build the FederationAuth "
                "with token_from_env=False to log in"
            )
        return token

    def _refreshed(self, token: Optional[Token]) -> Optional[Token]:
        if token is None or not token.refresh_token:
            return None
        try:
            new = self.bearer.refresh(token)
        except FedbearerError as exc:
            if not self.bearer.settings.interactive and not isinstance(exc, InvalidGrantError):
                # No login can follow: report the federation's failure itself rather
                # than "interaction required", which would misstate an outage.
                raise
            # invalid_grant (expired, rotated, revoked) or any failure: one login instead.
            log.info("refresh failed (%s); falling back to a login", type(exc).__name__)
            return None
        log.debug("token renewed with the refresh token")
        return new


class FederationAuthBase:
    """The constructors, settings and origin rules every ``FederationAuth`` shares.

    A subclass adds the transport: how a request gets the header, and what a 401 does.
    """

    credentials: Credentials
    #: The origins that receive the token, or ``None`` for any ``https://`` origin (and
    #: plain ``http://`` on this machine).
    hosts: Optional[frozenset[str]]

    def __init__(
        self,
        client_id: str,
        federation_endpoint: str,
        federation_id: str,
        *,
        profile: str = "default",
        **options: Unpack[Options],
    ) -> None:
        _check_options(type(self), "__init__", options, _OPTIONS)
        settings = LoginSettings(
            client_id,
            federation_endpoint,
            federation_id,
            profile,
            **{k: v for k, v in options.items() if k not in _TOKEN_OPTIONS},  # type: ignore[arg-type]
        )
        self._attach(Bearer.from_settings(settings), options)

    def _attach(self, bearer: Bearer, options: Mapping[str, Any]) -> None:
        own = {k: v for k, v in options.items() if k in _TOKEN_OPTIONS}
        hosts = own.pop("hosts", None)
        self.credentials = Credentials(bearer, **own)
        self.hosts = parse_hosts(hosts)
        # Plain-HTTP origins already warned about (one warning each, not one per request).
        self._refused_origins: set[str] = set()

    @classmethod
    def from_bearer(cls, bearer: Bearer, **options: Unpack[TokenOptions]) -> Self:
        """Build the adapter around an existing :class:`~fedbearer.Bearer`."""
        _check_options(cls, "from_bearer", options, _TOKEN_OPTIONS)
        if not isinstance(bearer, Bearer):
            raise ConfigurationError("from_bearer needs a fedbearer.Bearer")
        self = cls.__new__(cls)
        self._attach(bearer, options)
        return self

    @classmethod
    def from_nebius_profile(
        cls,
        profile: Optional[str] = None,
        *,
        client_id: str,
        config_file: str = "~/.nebius/config.yaml",
        **options: Unpack[Options],
    ) -> Self:
        """Build the adapter from a Nebius CLI profile with ``auth-type: federation``.

        ``federation-endpoint`` and ``federation-id`` come from ``config_file``; the profile
        is ``profile``, else ``$NEBIUS_PROFILE``, else the file's top-level ``default``, else
        its only profile. The client id is not stored there, so the caller gives it. The
        token is cached under that profile's name, as the Nebius CLI does. The keyword
        options are those of the constructor. Reads the file now (it is configuration, not
        a login) and raises :class:`~fedbearer.ConfigurationError` naming the file and the
        problem.
        """
        if "profile" in options:
            raise ConfigurationError("pass the profile name as the first argument")
        _check_options(cls, "from_nebius_profile", options, _OPTIONS)
        chosen = load_nebius_profile(profile, config_file)
        return cls(
            client_id,
            chosen.federation_endpoint,
            chosen.federation_id,
            profile=chosen.name,
            **options,
        )

    @classmethod
    def from_profile(
        cls,
        name: Optional[str] = None,
        *,
        profiles_file: Optional[str] = None,
        **options: Unpack[Options],
    ) -> Self:
        """Build the adapter from a profile ``fedbearer login`` remembered.

        ``name`` is the profile (default: the one of the most recent ``fedbearer login``);
        its client id and its Nebius federation endpoint and id, or its issuer, scopes and
        extra parameters (``fedbearer login --issuer``, as :meth:`from_issuer`), come from
        fedbearer's profiles file (``~/.config/fedbearer/profiles.yaml`` on Linux; see
        :doc:`cli`), and so do ``--allow-insecure-http`` and ``--keyring`` (then
        ``cache`` is a :class:`~fedbearer.KeyringTokenCache`). The keyword options are
        those of the constructor and win over the file. Reads the file now and raises
        :class:`~fedbearer.ConfigurationError` naming it when the profile is not there.
        """
        if "profile" in options:
            raise ConfigurationError("pass the profile name as the first argument")
        _check_options(cls, "from_profile", options, _OPTIONS)
        profiles = load_profiles(profiles_file)
        chosen = profiles.get(name)
        if chosen is None:
            wanted = f"profile {name!r}" if name is not None else "a default profile"
            raise ConfigurationError(
                f"{profiles.path} has no {wanted}; log in once with "
                "`fedbearer login --client-id … --federation-endpoint … --federation-id …"
                + (f" --profile {name}`" if name is not None else "`")
            )
        options.setdefault("allow_insecure_http", chosen.allow_insecure_http)
        options.setdefault("device_code", chosen.device_code)
        if chosen.keyring and "cache" not in options:
            options["cache"] = KeyringTokenCache()
        if chosen.issuer is not None:
            return cls.from_issuer(
                chosen.issuer,
                chosen.client_id,
                profile=chosen.name,
                scopes=chosen.scopes,
                params=chosen.params,
                **options,
            )
        return cls(
            chosen.client_id,
            chosen.federation_endpoint,
            chosen.federation_id,
            profile=chosen.name,
            **options,
        )

    @classmethod
    def from_issuer(
        cls,
        issuer: str,
        client_id: str,
        *,
        profile: str = "default",
        scopes: Union[str, Iterable[str]] = ("openid",),
        params: Union[Mapping[str, str], Iterable[tuple[str, str]], None] = None,
        client_secret: Optional[str] = None,
        **options: Unpack[Options],
    ) -> Self:
        """The adapter for any OpenID provider, its endpoints read from its discovery document.

        ``issuer`` is the provider's issuer identifier, exactly as the provider writes it
        (``https://keycloak.example.com/realms/main``, ``https://accounts.google.com``).
        Nothing is read at construction: the first login, refresh or logout that needs the
        endpoints reads ``<issuer>/.well-known/openid-configuration`` (OpenID Connect
        Discovery 1.0; RFC 8414's location when that one is missing) once for the process,
        and checks it (see :doc:`providers`). ``scopes`` (a sequence, or one string
        separated by spaces) replaces ``openid``; ``params`` are extra authorization request
        parameters (``prompt``, ``audience``, a ``federation-id``...); ``client_secret``
        only for a provider that gives native apps a secret it does not treat as
        confidential (Google). The other keyword options are those of the constructor
        (``cache``, ``hosts``, ``timeout``, ...). By default tokens are cached in
        fedbearer's own file (``~/.cache/fedbearer/tokens.yaml`` on Linux), not the Nebius
        CLI's.
        """
        _check_options(cls, "from_issuer", options, _OPTIONS)
        require_issuer(issuer)
        return cls._for_provider(
            client_id,
            options,
            profile=profile,
            scopes=scopes,
            params=params,
            client_secret=client_secret,
            issuer=issuer,
        )

    @classmethod
    def from_endpoints(
        cls,
        client_id: str,
        *,
        authorization_endpoint: str,
        token_endpoint: str,
        profile: str = "default",
        scopes: Union[str, Iterable[str]] = ("openid",),
        params: Union[Mapping[str, str], Iterable[tuple[str, str]], None] = None,
        client_secret: Optional[str] = None,
        issuer: Optional[str] = None,
        revocation_endpoint: Optional[str] = None,
        device_authorization_endpoint: Optional[str] = None,
        **options: Unpack[Options],
    ) -> Self:
        """:meth:`from_issuer` without discovery, for a provider that has no document.

        The URLs are used exactly as given. With ``issuer``, a callback's ``iss`` must
        equal it (RFC 9207); without it, a callback that carries ``iss`` is refused, since
        it cannot be checked. Without ``revocation_endpoint``, :meth:`logout` only forgets
        the tokens. ``device_authorization_endpoint`` (RFC 8628) makes device-code logins
        possible (``device_code=``, see :doc:`remote_logins`).
        """
        _check_options(cls, "from_endpoints", options, _OPTIONS)
        return cls._for_provider(
            client_id,
            options,
            profile=profile,
            scopes=scopes,
            params=params,
            client_secret=client_secret,
            issuer=issuer,
            authorization_endpoint=authorization_endpoint,
            token_endpoint=token_endpoint,
            revocation_endpoint=revocation_endpoint,
            device_authorization_endpoint=device_authorization_endpoint,
        )

    @classmethod
    def _for_provider(cls, client_id: str, options: Mapping[str, Any], **provider: Any) -> Self:
        """Split ``options`` into the adapter's own and the login settings, build both."""
        login = {k: v for k, v in options.items() if k not in _TOKEN_OPTIONS}
        settings = LoginSettings(client_id, **provider, **login)
        self = cls.__new__(cls)
        self._attach(Bearer.from_settings(settings), options)
        return self

    # ------------------------------------------------------------------ shared state

    @property
    def bearer(self) -> Bearer:
        """The identity and its login settings."""
        return self.credentials.bearer

    @property
    def cache(self) -> TokenCache:
        """Where tokens persist between processes (``cache=None``: a ``NoTokenCache``)."""
        return self.credentials.cache

    @property
    def refresh_margin(self) -> float:
        """Seconds before expiry at which the token is renewed."""
        return self.credentials.refresh_margin

    @property
    def token_variable(self) -> Optional[str]:
        """The environment variable whose token is sent (``FEDBEARER_TOKEN`` or
        ``NEBIUS_IAM_TOKEN``), or ``None`` when tokens come from the cache or a login."""
        return self.credentials.token_variable

    @property
    def _token(self) -> Optional[Token]:
        return self.credentials.token

    def get_token(self) -> Token:
        """A valid token, logging in (or refreshing, or reading the cache) when needed."""
        return self.credentials.get_token()

    def login(self) -> Token:
        """Run an interactive login now and keep its token (in this object and the cache).

        Explicit: it always runs, even within the cool-down after an abandoned login, and
        ends that cool-down (see :doc:`remote_logins`). Holds the renewal lock and the
        cache's login lock meanwhile. Raises what the login raises
        (:class:`~fedbearer.LoginTimeoutError`, :class:`~fedbearer.AuthorizationError`,
        :class:`~fedbearer.InteractionRequiredError` when interactive logins are off, ...).
        """
        return self.credentials.login()

    def logout(self) -> LogoutResult:
        """Forget this identity's tokens here and in the cache, then revoke them at the provider.

        The cache entry and the token in memory are removed first, so the next request logs
        in again. Then, when the provider has a revocation endpoint (RFC 7009), the refresh
        token is revoked (§2.1: that SHOULD end the access tokens of its grant too), then the
        access token; both the token this object held and the cache's, when they differ. All
        of that ends by one deadline: 30 s (:data:`~fedbearer._http.TOKEN_REQUEST_TIMEOUT`),
        or the ``timeout`` setting when that is shorter.
        A provider without a revocation endpoint (a Nebius federation, Entra ID) is not
        contacted: the result says so, and the tokens stay valid there until they expire.

        The local copies are gone even when revocation fails; the failure
        (:class:`~fedbearer.RevocationError`, :class:`~fedbearer.DiscoveryError`,
        :class:`~fedbearer.TokenEndpointError` when unreachable,
        :class:`~fedbearer.LoginTimeoutError`) is raised afterwards, since the tokens may
        then still work until they expire. Holds the renewal lock and the cache's login
        lock meanwhile, so no renewal here or in another process puts a token back halfway.

        A token from the environment (:attr:`~fedbearer.FederationAuth.token_variable`) is
        the environment's: it is neither revoked nor forgotten, and this object goes on
        sending it; only the cache entry is revoked and removed.
        """
        return self.credentials.logout()

    def _plain_http_ok(self, origin: str) -> bool:
        """Whether a request to ``origin``, not ``https://``, may carry the token (``hosts``
        unset).

        Only to this machine: a plain-HTTP origin elsewhere would expose the token to the
        network, so it must be named in ``hosts`` (RFC 6750 §5.3: TLS is mandatory).
        """
        if is_loopback_http(origin):
            return True
        if origin not in self._refused_origins:
            self._refused_origins.add(origin)
            log.warning(
                "not sending the token to %s: it is not https:// and not this machine; "
                "name it in FederationAuth(hosts=[...]) if plain HTTP there is intended",
                origin,
            )
        return False

    def __repr__(self) -> str:
        b = self.bearer
        if b.settings.kind == "federation":
            who = f"federation_endpoint={b.settings.provider!r}, federation_id={b.federation_id!r}"
        else:
            who = f"provider={b.settings.provider!r}, scopes={b.settings.scopes!r}"
        hosts = None if self.hosts is None else sorted(self.hosts)
        return (
            f"{type(self).__name__}(client_id={b.client_id!r}, {who}, "
            f"profile={b.profile_name!r}, hosts={hosts!r}, "
            f"refresh_margin={self.refresh_margin:g}, token={self.credentials.describe()})"
        )
