"""The OAuth 2.0 Device Authorization Grant (RFC 8628): a login without a browser here.

The login asks the provider's device authorization endpoint for a device code and a short
user code, shows the user code and the verification URI on the writer (the person enters
the code on any device with a browser), and polls the token endpoint until the person has
approved or denied it, the code expires, or the login's deadline passes.

The protocol pieces are pure functions (:func:`device_authorization_body`,
:func:`parse_device_authorization`, :func:`device_token_body`, :func:`poll_outcome`,
:func:`choose_login`); :func:`device_login` is the thin I/O around them, and calls the
provider only through :func:`fedbearer._http.call` (the token polls through
:func:`fedbearer._login.post_token_request`), the one path every provider call takes, with
its wall-clock deadline and the caller's ``session``.

The ``device_code`` is a secret (whoever holds it gets the tokens once the person approves):
it is never logged, shown or put into a message. The ``user_code`` is shown to the person
on the writer and nowhere else: not in the logs, nor in a ``repr``.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Optional, Union
from urllib.parse import urlencode

from . import _clock
from ._browser import choose_browser
from ._environment import Environment
from ._exceptions import (
    AuthorizationError,
    ConfigurationError,
    DeviceCodeExpiredError,
    InvalidClientError,
    InvalidTokenResponseError,
    LoginTimeoutError,
    TokenEndpointError,
    setting,
)
from ._http import call
from ._interrupts import interruptible
from ._protocol import Federation, _error_fields, _json_object, check_url

if TYPE_CHECKING:
    from ._settings import LoginSettings
    from ._token import Token

log = logging.getLogger("fedbearer.login")

#: ``grant_type`` of the token requests that poll for a device login (RFC 8628 §3.4).
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: Seconds between polls when the provider gives no ``interval`` (RFC 8628 §3.2).
DEFAULT_INTERVAL = 5.0
#: Seconds added to the interval on each ``slow_down`` answer (RFC 8628 §3.5).
SLOW_DOWN_STEP = 5.0
#: The interval is kept within these bounds: a provider asking for less than a second, or
#: for more than five minutes between polls, is taken to mean one or five minutes' worth.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 300.0
#: Longest ``expires_in`` used; a longer one is cut to this (the login's deadline usually
#: ends the wait much earlier anyway).
MAX_EXPIRES_IN = 86400.0
#: Longest ``device_code`` accepted, in characters (real ones are under a hundred).
MAX_DEVICE_CODE = 2048

# RFC 6749 Appendix A VSCHAR without the space: what a form value round-trips unchanged.
_DEVICE_CODE = re.compile(rf"[\x21-\x7e]{{1,{MAX_DEVICE_CODE}}}")
# A user code is read and typed by a person (RFC 8628 §6.1): letters, digits, and the
# separators providers put between groups. Nothing that could move the cursor or hide text.
_USER_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9])?")


# ------------------------------------------------------------------ the pure pieces


@dataclass(frozen=True)
class DeviceAuthorization:
    """A checked device authorization response (RFC 8628 §3.2).

    ``device_code`` is a secret and ``user_code`` is for the person only: neither is in the
    ``repr``, nor is ``verification_uri_complete``, which carries the user code.
    """

    device_code: str = field(repr=False)
    user_code: str = field(repr=False)
    verification_uri: str
    verification_uri_complete: Optional[str] = field(default=None, repr=False)
    #: Seconds the codes are valid, from when the request was sent.
    expires_in: float = 1800.0
    #: Seconds to wait between polls.
    interval: float = DEFAULT_INTERVAL


def device_authorization_body(
    *,
    client_id: str,
    scopes: Sequence[str],
    params: Sequence[tuple[str, str]] = (),
    client_secret: Optional[str] = None,
) -> str:
    """Form body of the device authorization request (RFC 8628 §3.1).

    The same client authentication (a public client's ``client_id``, and its
    ``client_secret`` when it has one), scopes and extra parameters as the authorization
    request of the code flow, so both kinds of login obtain the same grant.
    """
    pairs = [("client_id", client_id), ("scope", " ".join(scopes)), *params]
    if client_secret is not None:
        pairs.append(("client_secret", client_secret))
    return urlencode(pairs)


def device_token_body(
    *, device_code: str, client_id: str, client_secret: Optional[str] = None
) -> str:
    """Form body of one poll of the token endpoint (RFC 8628 §3.4)."""
    pairs = [
        ("grant_type", DEVICE_CODE_GRANT_TYPE),
        ("device_code", device_code),
        ("client_id", client_id),
    ]
    if client_secret is not None:
        pairs.append(("client_secret", client_secret))
    return urlencode(pairs)


def _seconds(value: object) -> Optional[float]:
    """A JSON number (or a string of digits, as some servers send) as seconds; else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_device_authorization(
    status: int,
    body: bytes,
    *,
    allow_insecure_http: bool = False,
    secrets_: tuple[str, ...] = (),
) -> DeviceAuthorization:
    """Check the answer of the device authorization endpoint (RFC 8628 §3.2, §3.3).

    Every field is checked where it enters: ``device_code`` is 1 to
    :data:`MAX_DEVICE_CODE` visible ASCII characters; ``user_code`` 1 to 64 letters, digits
    and ``-``, ``.``, ``_`` or spaces between them (a person reads and types it);
    ``verification_uri`` (Google's ``verification_url`` too) and
    ``verification_uri_complete`` are ``https://`` (``http://`` on this machine, or with
    ``allow_insecure_http``) without white space or control characters, since they are
    shown to a person; ``expires_in`` is a positive number of seconds (cut to
    :data:`MAX_EXPIRES_IN`); ``interval``, when present, a number of seconds >= 0 (kept
    within :data:`MIN_INTERVAL` and :data:`MAX_INTERVAL`; absent: :data:`DEFAULT_INTERVAL`).
    A refusal (RFC 6749 §5.2 error) is a :class:`~fedbearer.TokenEndpointError`
    (:class:`~fedbearer.InvalidClientError` for the client's errors); an unusable 200 an
    :class:`~fedbearer.InvalidTokenResponseError` naming the field, never its value.
    """
    if status != 200:
        raise device_authorization_error(status, body, secrets_=secrets_)
    data = _json_object(body)

    def invalid(what: str) -> InvalidTokenResponseError:
        return InvalidTokenResponseError(
            f"the device authorization endpoint answered 200 {what}; the provider is "
            "misbehaving, or this is not its device authorization endpoint",
            status=status,
        )

    if data is None:
        raise invalid("but not with a JSON object")
    if "error" in data:
        raise device_authorization_error(status, body, secrets_=secrets_)
    device_code = data.get("device_code")
    if not isinstance(device_code, str) or not _DEVICE_CODE.fullmatch(device_code):
        raise invalid(
            f"with a device_code that is not 1-{MAX_DEVICE_CODE} visible ASCII characters"
        )
    user_code = data.get("user_code")
    if not isinstance(user_code, str) or not _USER_CODE.fullmatch(user_code):
        raise invalid(
            "with a user_code that is not 1-64 letters, digits and separators (- . _ space)"
        )
    uri = data.get("verification_uri", data.get("verification_url"))
    verification_uri = _shown_url(uri, "verification_uri", allow_insecure_http, invalid)
    complete = data.get("verification_uri_complete")
    verification_uri_complete = (
        None
        if complete is None
        else _shown_url(complete, "verification_uri_complete", allow_insecure_http, invalid)
    )
    expires_in = _seconds(data.get("expires_in"))
    if expires_in is None or expires_in <= 0:
        raise invalid("with an expires_in that is not a positive number of seconds")
    raw_interval = data.get("interval")
    if raw_interval is None:
        interval = DEFAULT_INTERVAL
    else:
        checked = _seconds(raw_interval)
        if checked is None or checked < 0:
            raise invalid("with an interval that is not a number of seconds >= 0")
        interval = min(max(checked, MIN_INTERVAL), MAX_INTERVAL)
    return DeviceAuthorization(
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        min(expires_in, MAX_EXPIRES_IN),
        interval,
    )


def _shown_url(
    value: object,
    what: str,
    allow_insecure_http: bool,
    invalid: Callable[[str], InvalidTokenResponseError],
) -> str:
    """A URL the person is shown (a ``verification_uri``), checked as an endpoint is."""
    if not isinstance(value, str):
        raise invalid(f"without a {what}" if value is None else f"with a {what} that is not text")
    try:
        return check_url(value, what, allow_insecure_http=allow_insecure_http)
    except ConfigurationError:
        raise invalid(
            f"with a {what} that is not an https:// URL free of white space and control "
            "characters (http:// only on this machine, or with allow_insecure_http)"
        ) from None


_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


def device_authorization_error(
    status: int, body: bytes, *, secrets_: tuple[str, ...] = ()
) -> TokenEndpointError:
    """The typed error for a refused device authorization request (RFC 8628 §3.2,
    RFC 6749 §5.2): the error code and a bounded, scrubbed description, never the body."""
    fields = _error_fields(body, secrets_)
    if fields is None:
        return TokenEndpointError(
            f"the device authorization endpoint failed with HTTP {status}; "
            + (
                "the provider is having trouble, try again later"
                if status >= 500
                else "check the device authorization endpoint"
            ),
            status=status,
        )
    code, desc, uri = fields
    detail = f"{code}: {desc}" if desc else code
    if code in _CLIENT_ERRORS:
        cls: type[TokenEndpointError] = InvalidClientError
        hint = (
            "the provider does not let this client_id use the device code; enable the device "
            f"authorization grant for it, or log in with the browser "
            f"({setting('device_code_off')})"
        )
    elif code == "invalid_scope":
        cls, hint = TokenEndpointError, "the provider rejected the requested scope"
    else:
        cls, hint = TokenEndpointError, "check the provider's settings for this client"
    return cls.naming(
        f"the device authorization endpoint refused the request (HTTP {status}, {detail}); {hint}",
        status=status,
        error=code,
        error_description=desc,
        error_uri=uri,
    )


class Poll(enum.Enum):
    """A poll that did not end the login: keep waiting (RFC 8628 §3.5)."""

    #: ``authorization_pending``: the person has not finished yet.
    PENDING = "authorization_pending"
    #: ``slow_down``: the same, and the interval grows by :data:`SLOW_DOWN_STEP`.
    SLOW_DOWN = "slow_down"


def poll_outcome(error: TokenEndpointError) -> Poll:
    """What a refused poll means (RFC 8628 §3.5): wait on (:class:`Poll`), or the typed
    error that ends the login: :class:`~fedbearer.AuthorizationError` for
    ``access_denied``, :class:`~fedbearer.DeviceCodeExpiredError` for ``expired_token``,
    and ``error`` itself for anything else."""
    if error.error == Poll.PENDING.value:
        return Poll.PENDING
    if error.error == Poll.SLOW_DOWN.value:
        return Poll.SLOW_DOWN
    if error.error == "access_denied":
        raise AuthorizationError("access_denied", error.error_description, error.error_uri)
    if error.error == "expired_token":
        raise DeviceCodeExpiredError(
            "the device code expired before it was entered and approved; start the login "
            "again for a new code"
        )
    raise error


# ------------------------------------------------------------------ which kind of login


@dataclass(frozen=True)
class LoginChoice:
    """Which kind of login runs, and why (for the INFO log and the user)."""

    device: bool
    reason: str
    #: Automatic choice of the browser with a device endpoint offered: a browser that
    #: cannot be launched switches the login to the device code.
    fallback: bool = False


def choose_login(
    *,
    device_code: Optional[bool],
    offered: bool,
    environment: Environment,
    opener_given: bool,
    no_browser_open: bool,
) -> LoginChoice:
    """The decision table of ``docs/remote_logins.rst``, first match wins.

    1. ``device_code=False``: the browser. ``device_code=True``: the device code (the
       settings made sure the provider offers one, or :func:`device_login` says it does
       not).
    2. The provider offers no device authorization endpoint: the browser.
    3. ``opener=``, ``$BROWSER``, or ``no_browser_open`` (the user opens the URL): the
       browser, as configured.
    4. No browser the user can see can be launched here (an SSH session, no display, a
       container without one): the device code.
    5. Otherwise the browser; if it cannot be launched, the device code.
    """
    if device_code is False:
        return LoginChoice(False, "device_code=False")
    if device_code is True:
        return LoginChoice(True, "device_code=True")
    if not offered:
        return LoginChoice(False, "the provider offers no device authorization endpoint")
    if opener_given:
        return LoginChoice(False, "an opener= was given")
    if environment.browser:
        return LoginChoice(False, "$BROWSER names the browser to open")
    if no_browser_open:
        return LoginChoice(False, "no_browser_open: the URL is opened by hand")
    choice = choose_browser(environment)
    if not choice.launches:
        where = " (a container)" if environment.container else ""
        return LoginChoice(True, f"no browser can be opened here{where}: {choice.reason}")
    return LoginChoice(False, f"a browser can be opened here ({choice.method})", fallback=True)


# ------------------------------------------------------------------ the flow (I/O)


def _instructions(
    grant: DeviceAuthorization, *, endpoint: str, profile: str, reason: Optional[str]
) -> str:
    lines = [f"Logging in to {endpoint} (profile {profile}) with a device code."]
    if reason:
        lines.append(f"({reason}.)")
    lines += [
        "On any device with a browser, open",
        "",
        f"    {grant.verification_uri}",
        "",
        "and enter the code",
        "",
        f"    {grant.user_code}",
        "",
    ]
    if grant.verification_uri_complete is not None:
        lines += [
            "or open this address, which carries the code:",
            "",
            f"    {grant.verification_uri_complete}",
            "",
        ]
    minutes = max(1, round(grant.expires_in / 60))
    lines.append(f"The code is valid for {minutes} min. Waiting for the login to be approved...")
    return "\n".join(lines) + "\n"


@interruptible
def _pause(seconds: float) -> None:
    """Wait between two polls; Ctrl-C ends it at once."""
    if seconds > 0:
        _clock.sleep(seconds)


@interruptible
def _request_codes(
    settings: LoginSettings, url: str, deadline: Optional[float]
) -> DeviceAuthorization:
    secret = settings.client_secret or ""
    body = device_authorization_body(
        client_id=settings.client_id,
        scopes=settings.scopes,
        params=settings.params,
        client_secret=settings.client_secret,
    )
    answer = call(
        url,
        body,
        deadline=deadline,
        verify=settings.verify,
        session=settings.session,
        what="device authorization endpoint",
    )
    return parse_device_authorization(
        answer.status,
        answer.body,
        allow_insecure_http=settings.allow_insecure_http,
        secrets_=(secret,),
    )


@interruptible
def _poll(
    settings: LoginSettings,
    federation: Federation,
    grant: DeviceAuthorization,
    deadline: Optional[float],
) -> Union[Token, Poll]:
    from ._login import post_token_request

    body = device_token_body(
        device_code=grant.device_code,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
    )
    try:
        return post_token_request(
            federation.token_url,
            body,
            deadline=deadline,
            verify=settings.verify,
            secrets_=(grant.device_code, grant.user_code, settings.client_secret or ""),
            session=settings.session,
            # As for the code flow's exchange: an ID token names the account only when it
            # is meant for this client and comes from this issuer.
            client_id=settings.client_id,
            issuer=federation.issuer,
        )
    except TokenEndpointError as exc:
        return poll_outcome(exc)


def device_login(
    settings: LoginSettings,
    federation: Federation,
    *,
    deadline: Optional[float],
    writer: IO[str],
    reason: Optional[str] = None,
) -> Token:
    """Run one device login (RFC 8628 §3) and return its token.

    Requests the codes, shows the user code and verification URI on ``writer``, then polls
    the token endpoint every ``interval`` seconds (RFC 8628 §3.5: ``slow_down`` adds
    :data:`SLOW_DOWN_STEP` for every later poll; ``authorization_pending`` waits on) until
    a token comes, the person denies (:class:`~fedbearer.AuthorizationError`), the code
    expires (:class:`~fedbearer.DeviceCodeExpiredError`) or ``deadline`` (a
    ``time.monotonic()``) passes (:class:`~fedbearer.LoginTimeoutError`). Ctrl-C ends each
    wait and each call at once.
    """
    from ._login import _show

    url = federation.device_authorization_url
    if url is None:
        raise ConfigurationError.naming(
            f"{setting('device_code_on')}, but {federation.endpoint} offers no device "
            "authorization endpoint (RFC 8628); log in with the browser (leave out "
            f"{setting('device_code_on')}, or give {setting('device_code_off')})"
        )
    grant = _request_codes(settings, url, deadline)
    expires = time.monotonic() + grant.expires_in
    _show(
        writer,
        _instructions(grant, endpoint=federation.endpoint, profile=settings.profile, reason=reason),
    )
    # The user code and the complete URI are for the person: not in the log.
    log.info(
        "login: device code issued; waiting for it to be entered at %s (valid %g s, "
        "polling every %g s)",
        grant.verification_uri,
        grant.expires_in,
        grant.interval,
    )
    interval = grant.interval
    polls = 0
    while True:
        now = time.monotonic()
        end = expires if deadline is None else min(deadline, expires)
        if now >= end:
            if deadline is not None and deadline <= expires:
                raise LoginTimeoutError(
                    "the device code was not entered and approved before the login deadline; "
                    "start the login again, or pass a longer timeout"
                )
            raise DeviceCodeExpiredError(
                "the device code expired before it was entered and approved; start the "
                "login again for a new code"
            )
        _pause(min(interval, end - now))
        if time.monotonic() >= end:
            continue  # the loop head says which limit passed
        outcome = _poll(settings, federation, grant, deadline)
        polls += 1
        if outcome is Poll.SLOW_DOWN:
            interval = min(interval + SLOW_DOWN_STEP, MAX_INTERVAL)
            log.debug("device login: slow_down; polling every %g s from now on", interval)
        elif outcome is Poll.PENDING:
            log.debug("device login: still pending after %d polls", polls)
        else:
            _show(writer, "Logged in.\n")
            log.info("login: token obtained with the device code, expires %s", outcome.expiration)
            return outcome
