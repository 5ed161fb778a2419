"""One interactive login, start to finish, and the token endpoint calls.

:func:`authorize` wires the pure protocol (:mod:`fedbearer._protocol`) to the loopback
server, the browser launcher and a dedicated ``requests`` session for the token endpoint.
One deadline covers the wait for the browser and the code exchange.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys
import time
import warnings
from typing import IO, TYPE_CHECKING, Optional
from urllib.parse import urlsplit

import requests

from . import _clock
from ._discovery import discovery_urls, parse_discovery, remembered
from ._exceptions import (
    AuthorizationError,
    ConfigurationError,
    DiscoveryError,
    FedbearerError,
    LoginError,
    LoginTimeoutError,
    ScopeWarning,
    setting,
)
from ._http import TOKEN_REQUEST_TIMEOUT, call
from ._interrupts import defers_interrupts, interruptible
from ._protocol import (
    Callback,
    CallbackKind,
    Federation,
    authorization_code_body,
    authorize_answer_problem,
    build_authorize_url,
    expired_on_arrival,
    new_pkce,
    new_state,
    parse_token_response,
    redact_url,
    refresh_token_body,
    without_expiry,
)
from ._settings import DEFAULT_LOGIN_TIMEOUT, LoginSettings, Verify
from ._token import Token, utc_from_timestamp
from ._version import __version__

if TYPE_CHECKING:
    from ._browser import Opener
    from ._environment import Environment
    from ._paste import PasteReader

log = logging.getLogger("fedbearer.login")


def post_token_request(
    token_url: str,
    body: str,
    *,
    deadline: Optional[float],
    verify: Verify,
    secrets_: tuple[str, ...],
    session: Optional[requests.Session] = None,
    client_id: Optional[str] = None,
    issuer: Optional[str] = None,
) -> Token:
    """POST a token request (:func:`fedbearer._http.call`) and parse the answer (an ID
    token in it names the account when meant for ``client_id`` from ``issuer``).

    A token already expired when it arrives (:func:`~fedbearer._protocol.expired_on_arrival`:
    a JWT ``exp`` in the past, ``expires_in`` of a millisecond) is kept without expiry, with a
    warning that names clock skew: it is used for the request at hand and renewed only once
    the API refuses it. The other choice, refusing it, would fail every request of a machine
    whose clock is wrong although the API accepts its tokens; used, it costs one refused
    request when the token really is dead. Kept with its expiry, every request would open
    the browser again.
    """
    requested_at = _clock.now()
    answer = call(token_url, body, deadline=deadline, verify=verify, session=session)
    token = parse_token_response(
        answer.status,
        answer.body,
        requested_at=requested_at,
        secrets_=secrets_,
        client_id=client_id,
        issuer=issuer,
    )
    received_at = _clock.now()
    if expired_on_arrival(token, received_at):
        assert token.expiration is not None
        log.warning(
            "the token endpoint %s issued a token that had expired when it arrived (it "
            "expires %s; this machine's clock says %s): is this machine's clock, or the "
            "provider's, wrong (clock skew)? Using it until the API refuses it",
            token_url,
            token.expiration.isoformat(timespec="milliseconds"),
            utc_from_timestamp(received_at).isoformat(timespec="milliseconds"),
        )
        token = without_expiry(token)
    return token


def call_budget(settings: LoginSettings, timeout: Optional[float] = TOKEN_REQUEST_TIMEOUT) -> float:
    """Seconds a refresh or a logout may take with the provider: ``timeout`` (``None``:
    :data:`TOKEN_REQUEST_TIMEOUT`), or the login ``timeout`` setting when that is shorter."""
    budget = TOKEN_REQUEST_TIMEOUT if timeout is None else timeout
    return budget if settings.timeout is None else min(budget, settings.timeout)


def endpoints(settings: LoginSettings, *, deadline: Optional[float] = None) -> Federation:
    """Where the provider's endpoints are: from the settings, or from its discovery document.

    The document is read at most once per process for each issuer and way of checking it
    (:func:`fedbearer._discovery.remembered`), as every call to the provider is
    (:func:`fedbearer._http.call`), and within ``deadline`` (else
    :data:`~fedbearer._http.TOKEN_REQUEST_TIMEOUT`). A failure is a
    :class:`~fedbearer.DiscoveryError` naming the issuer, and is not remembered.
    """
    if settings.federation is not None:
        return settings.federation
    issuer = settings.issuer
    assert issuer is not None  # kind == "discovery"
    return remembered(
        (issuer, settings.allow_insecure_http, (settings.verify, settings.session)),
        lambda: fetch_discovery(
            issuer,
            verify=settings.verify,
            allow_insecure_http=settings.allow_insecure_http,
            deadline=deadline,
            session=settings.session,
        ),
    )


@interruptible  # a login reads the document first: Ctrl-C must cut that wait short too
def fetch_discovery(
    issuer: str,
    *,
    verify: Verify,
    allow_insecure_http: bool,
    deadline: Optional[float],
    session: Optional[requests.Session] = None,
) -> Federation:
    """Read and check the discovery document of ``issuer`` (no remembering: see
    :func:`endpoints`): OpenID Connect Discovery's location first, RFC 8414's when that
    one answers 404."""
    for url in discovery_urls(issuer):
        try:
            answer = call(
                url, None, deadline=deadline, verify=verify, session=session, what="discovery URL"
            )
        except LoginTimeoutError as exc:  # the deadline, not the document, is the problem
            raise LoginTimeoutError(f"reading the discovery document of {issuer}: {exc}") from exc
        except ConfigurationError:  # a CA bundle that does not exist: names its setting
            raise
        except FedbearerError as exc:
            raise DiscoveryError.naming(
                f"could not read the discovery document of {issuer}: "
                + (unreachable(exc, url, "issuer") or f"{exc}; check {setting('issuer')}")
            ) from exc
        if answer.status != 404:
            break
    log.debug("read the discovery document of %s at %s: HTTP %d", issuer, url, answer.status)
    return parse_discovery(
        answer.status, answer.body, issuer=issuer, url=url, allow_insecure_http=allow_insecure_http
    )


def unreachable(exc: FedbearerError, url: str, name: str) -> Optional[str]:
    """Why a call to ``url`` failed to connect (the host does not resolve, nothing answers,
    TLS failed), naming the setting ``name`` to check; ``None`` when it did not fail to
    connect (a slow or broken answer). Only the host and port are quoted."""
    cause = exc.__cause__
    parts = urlsplit(url)
    where = parts.netloc
    if isinstance(cause, requests.exceptions.SSLError):
        other = "http" if parts.scheme == "https" else "https"
        return f"{exc}; or check {setting(name)} ({other}:// instead of {parts.scheme}://?)"
    if isinstance(exc, LoginTimeoutError):
        return None
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return (
            f"could not connect to {where} in time; check {setting(name)}, and the network "
            f"or proxy settings ({setting('proxies')})"
        )
    if not isinstance(cause, requests.exceptions.ConnectionError):
        return None
    text = str(cause)
    if any(s in text for s in ("NameResolution", "getaddrinfo", "Name or service", "resolve")):
        what = f"the host name {parts.hostname} does not resolve"
    elif "refused" in text.lower():
        what = f"nothing accepts connections at {where} (connection refused)"
    else:
        what = f"the connection to {where} failed"
    return (
        f"{what}; check {setting(name)}, and the network or proxy settings ({setting('proxies')})"
    )


def check_scopes(scopes: tuple[str, ...], federation: Federation) -> None:
    """Refuse, before the browser opens, a scope the provider's discovery document does not
    list in ``scopes_supported`` (when it lists any): the provider would refuse it only at
    the end of the login, or silently leave it out. A scope with a comma in it gets a
    "did you mean" (scopes are separated by spaces, RFC 6749 §3.3)."""
    supported = federation.scopes_supported
    if supported is None:
        return
    unknown = [scope for scope in scopes if scope not in supported]
    if not unknown:
        return
    listed = " ".join(sorted(supported))[:1000]
    message = (
        f"{federation.endpoint} does not support the scope{'s' if len(unknown) > 1 else ''} "
        f"{' '.join(unknown)}; check {setting('scopes')} (it supports: {listed})"
    )
    commas = [scope for scope in unknown if "," in scope]
    if commas:
        spaced = " ".join(" ".join(part for part in s.split(",") if part) for s in scopes)
        message += f"; did you mean {spaced!r}? Scopes are separated by spaces, not commas"
    raise ConfigurationError.naming(message)


#: Seconds the pre-flight check may take, all told.
PREFLIGHT_TIMEOUT = 5.0

# What to check for each setting the pre-flight check can blame. Settings are named with
# placeholders (fedbearer._exceptions.setting): Python callers read ``client_id=``, the
# command line its flag (``--client-id``).
_SETTING_HINTS = {
    "client_id": (
        f"check {setting('client_id')}, and that the federation has registered it as a "
        "public client with a loopback redirect (http://127.0.0.1, any port)"
    ),
    "federation_endpoint": f"check {setting('federation_endpoint')}, including its path",
    "federation_id": f"check {setting('federation_id')}",
    "scope": f"check {setting('scopes')}",
}
# The same for another OpenID provider, where the endpoint and the federation id are not
# settings: the issuer or the endpoints are, and extra parameters take the id's place.
_PROVIDER_HINTS = {
    **_SETTING_HINTS,
    "client_id": (
        f"check {setting('client_id')}, and that the provider has registered it as a "
        "public (native) client with the loopback redirect URI http://127.0.0.1"
    ),
    "federation_endpoint": f"check {setting('issuer')}, including its path",
    "federation_id": f"check the extra authorization parameters ({setting('params')})",
    "scope": f"check {setting('scopes')}",
}
_ENDPOINTS_HINTS = {
    **_PROVIDER_HINTS,
    "federation_endpoint": f"check {setting('authorization_endpoint')}, including its path",
}


@interruptible
def preflight(
    settings: LoginSettings,
    redirect_uri: str,
    federation: Optional[Federation] = None,
    login_deadline: Optional[float] = None,
) -> None:
    """Fail in seconds, not at the login timeout, when the federation cannot work.

    Sends the authorization request the browser is about to send, with a throwaway state
    and challenge (the login's own never leave but through the browser), without
    following redirects. A host that does not resolve, refuses the connection or fails
    the TLS handshake, and an answer that refuses the request
    (:func:`~fedbearer._protocol.authorize_answer_problem`), raise
    :class:`~fedbearer.ConfigurationError` naming the setting to fix. A slow answer or a
    5xx proves nothing and the login goes on. It takes at most :data:`PREFLIGHT_TIMEOUT`,
    and never past ``login_deadline``.
    """
    if federation is None:
        federation = endpoints(settings)
    hints = {"federation": _SETTING_HINTS, "discovery": _PROVIDER_HINTS}.get(
        settings.kind, _ENDPOINTS_HINTS
    )
    state = new_state()
    url = build_authorize_url(
        federation,
        client_id=settings.client_id,
        redirect_uri=redirect_uri,
        state=state,
        challenge=new_pkce()[1],
        federation_id=settings.federation_id,
        scopes=settings.scopes,
        params=settings.params,
    )
    where = urlsplit(federation.authorize_url).netloc
    endpoint_name = {"federation": "federation_endpoint", "discovery": "issuer"}.get(
        settings.kind, "authorization_endpoint"
    )
    deadline = time.monotonic() + PREFLIGHT_TIMEOUT
    try:
        answer = call(
            url,
            None,
            deadline=deadline if login_deadline is None else min(deadline, login_deadline),
            verify=settings.verify,
            session=settings.session,
            what="authorization endpoint",
            # Says what it is in the federation's logs: not a login, a check.
            headers={"User-Agent": f"fedbearer/{__version__} (pre-flight check)", "Accept": "*/*"},
            read_body=lambda status: status >= 400,
            redirect_is_error=False,
        )
    except ConfigurationError:  # a CA bundle that does not exist: names its setting
        raise
    except FedbearerError as exc:
        why = unreachable(exc, federation.authorize_url, endpoint_name)
        if why is not None:
            raise ConfigurationError.naming(
                f"cannot reach the {_who(settings)} at {where}: {why}"
            ) from None
        log.info("pre-flight check of %s inconclusive (%s); going on", where, type(exc).__name__)
        return
    problem = authorize_answer_problem(
        answer.status,
        answer.headers.get("Location", ""),
        answer.body,
        redirect_uri=redirect_uri,
        secrets_=(state,),
    )
    if problem is not None:
        blamed, reason = problem
        raise ConfigurationError.naming(
            f"the {_who(settings)} refused the login request ({reason}); {hints[blamed]}"
        )
    log.debug("pre-flight check of %s: HTTP %d", where, answer.status)


def _who(settings: LoginSettings) -> str:
    return "federation" if settings.kind == "federation" else "provider"


@interruptible
def exchange_code(
    federation: Federation,
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    verifier: str,
    deadline: Optional[float],
    verify: Verify = True,
    client_secret: Optional[str] = None,
    session: Optional[requests.Session] = None,
) -> Token:
    """Exchange an authorization code for a token (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    body = authorization_code_body(
        code=code,
        redirect_uri=redirect_uri,
        client_id=client_id,
        verifier=verifier,
        client_secret=client_secret,
    )
    log.debug("exchanging the authorization code at %s", federation.token_url)
    return post_token_request(
        federation.token_url,
        body,
        deadline=deadline,
        verify=verify,
        secrets_=(code, verifier, client_secret or ""),
        session=session,
        client_id=client_id,
        issuer=federation.issuer,
    )


def refresh(
    settings: LoginSettings,
    token: Token,
    *,
    timeout: Optional[float] = TOKEN_REQUEST_TIMEOUT,
) -> Token:
    """Renew ``token`` with its refresh token (RFC 6749 §6).

    The provider calls (discovery when needed, the token request) share one deadline:
    ``timeout`` seconds (``None``: :data:`~fedbearer._http.TOKEN_REQUEST_TIMEOUT`), or the
    settings' login ``timeout`` when that is shorter (:func:`call_budget`). When the answer
    carries no new refresh token the old one stays in use (RFC 6749 §6 lets the server
    keep it). Raises :class:`~fedbearer.InvalidGrantError` when the refresh
    token is no longer accepted.
    """
    if not token.refresh_token:
        raise ConfigurationError("this token has no refresh token; log in instead")
    deadline = time.monotonic() + call_budget(settings, timeout)
    federation = endpoints(settings, deadline=deadline)
    token_url = federation.token_url
    body = refresh_token_body(
        refresh_token=token.refresh_token,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
    )
    log.debug("refreshing the access token at %s", token_url)
    new = post_token_request(
        token_url,
        body,
        deadline=deadline,
        verify=settings.verify,
        secrets_=(token.refresh_token, token.token, settings.client_secret or ""),
        session=settings.session,
        client_id=settings.client_id,
        issuer=federation.issuer,
    )
    # RFC 6749 §5.1: a scope left out is the one granted before; a refresh need not send a
    # new ID token (OpenID Connect Core §12.2), and the account does not change.
    return dataclasses.replace(
        new,
        refresh_token=new.refresh_token or token.refresh_token,
        scope=new.scope if new.scope is not None else token.scope,
        account=new.account if new.account is not None else token.account,
    )


def _granted(settings: LoginSettings, token: Token) -> Token:
    """The login's token with the scopes it was granted: those the token response states,
    else (RFC 6749 §5.1: left out when identical) those requested of another provider.
    Warns once, naming them, when some requested scopes were not granted."""
    if settings.kind == "federation":
        return token
    if token.scope is None:
        return dataclasses.replace(token, scope=settings.scopes)
    missing = [scope for scope in settings.scopes if scope not in token.scope]
    if missing:
        warnings.warn(
            f"{settings.provider} did not grant the scope{'s' if len(missing) > 1 else ''} "
            f"{' '.join(missing)} (granted: {' '.join(token.scope) or 'none'}); the token "
            "carries only what was granted",
            ScopeWarning,
            stacklevel=2,
        )
    return token


def _issuer_problem(federation: Federation, *, missing: bool) -> str:
    """Why a callback's ``iss`` (RFC 9207 §2.4) ended the login."""
    if missing:
        return (
            f"the authorization response has no issuer (iss), though {federation.issuer} "
            "declares that it always sends one (RFC 9207); it was rejected as a possible "
            "mix-up attack"
        )
    if not federation.issuers:
        return (
            "the authorization response names an issuer (iss, RFC 9207) but none was "
            f"configured to check it against: pass {setting('issuer')} with the provider's "
            "issuer identifier"
        )
    return (
        "the authorization response names another issuer (RFC 9207); it was "
        "rejected as a possible mix-up attack. Check the federation endpoint"
    )


@interruptible  # a writer that blocks (a full pipe, a stopped terminal) must not hold Ctrl-C
def _show(writer: IO[str], text: str) -> None:
    try:
        writer.write(text)
        writer.flush()
    except (OSError, ValueError):  # a closed or broken stream must not end the login
        log.debug("could not write to the writer", exc_info=True)


def _ssh_forward_command(environment: Environment, redirect_uri: str) -> str:
    """``ssh -L <port>:127.0.0.1:<port> <this host>``, ready to copy (RFC 8252 §7.3 port)."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or "127.0.0.1"
    target = f"[{host}]" if ":" in host else host
    server = environment.ssh_server or socket.gethostname()
    port_option = f"-p {environment.ssh_port} " if environment.ssh_port not in (None, 22) else ""
    return f"ssh {port_option}-L {parts.port}:{target}:{parts.port} {server}"


def _instructions(
    *,
    federation: Federation,
    profile_name: Optional[str],
    url: str,
    redirect_uri: str,
    launching: bool,
    reason: Optional[str],
    environment: Environment,
    pasting: bool,
    fixed_port: bool,
    timeout: Optional[float],
) -> str:
    """What the user reads while the login waits: the URL, and how to finish from afar."""
    who = f" (profile {profile_name})" if profile_name else ""
    lines = [f"Logging in to {federation.endpoint}{who}."]
    if launching:
        lines.append("Opening your browser. If it does not open, visit this URL:")
    else:
        if reason:
            lines.append(f"No browser was opened: {reason}.")
        lines.append("Open this URL in a browser to log in:")
    lines += ["", f"    {url}", ""]
    if not launching and environment.ssh:
        lines += [
            f"The login ends by sending the browser to {redirect_uri}, which reaches this",
            "machine only through a tunnel. Before logging in, run on your own machine",
            "(with the host name you use to reach this one):",
            "",
            f"    {_ssh_forward_command(environment, redirect_uri)}",
            "",
        ]
        if not fixed_port:
            lines.append(
                "(A fixed port - port=, --port or FEDBEARER_CALLBACK_PORT - lets that "
                "forward be set up once.)"
            )
    if not launching and pasting:
        lead = "Or, without a tunnel" if environment.ssh else "If the browser is on another machine"
        lines.append(
            f"{lead}: when it shows an error page after the login, copy that page's "
            "address, paste it here and press Enter."
        )
    wait_note = "" if timeout is None else f" (up to {timeout:.0f} s)"
    lines.append(f"Waiting for the login to finish in the browser{wait_note}...")
    return "\n".join(lines) + "\n"


def authorize(
    client_id: str,
    federation_endpoint: str,
    federation_id: str,
    *,
    profile_name: str = "default",
    writer: Optional[IO[str]] = None,
    no_browser_open: bool = False,
    timeout: Optional[float] = DEFAULT_LOGIN_TIMEOUT,
    port: Optional[int] = None,
    opener: Optional[Opener] = None,
    verify: Verify = True,
    app_name: str = "fedbearer",
    allow_insecure_http: bool = False,
    preflight: bool = True,
    session: Optional[requests.Session] = None,
) -> Token:
    """Run one interactive login and return its token: ``login()`` for these settings.

    The arguments are those of :class:`~fedbearer.Bearer`; ``profile_name`` only labels the
    login (no cache is read or written). Interactivity is not checked: calling this is
    asking for a login.
    """
    return login(
        LoginSettings(
            client_id,
            federation_endpoint,
            federation_id,
            profile_name,
            writer=writer,
            no_browser_open=no_browser_open,
            timeout=timeout,
            port=port,
            opener=opener,
            verify=verify,
            interactive=True,
            app_name=app_name,
            allow_insecure_http=allow_insecure_http,
            preflight=preflight,
            session=session,
        )
    )


@defers_interrupts
def login(settings: LoginSettings) -> Token:
    """Run one interactive login and return its token.

    0. For a provider named by its issuer, know its endpoints (:func:`endpoints`: its
       discovery document, read once per process).
    0b. Choose the kind of login (:func:`fedbearer._device.choose_login`, logged at INFO):
       where the provider offers a device authorization endpoint and no browser the user
       sees can be opened here, or ``device_code=True``, the device code
       (:func:`fedbearer._device.device_login`, RFC 8628) runs instead of the steps
       below, within the same deadline. A browser that then fails to launch switches the
       login to the device code too, when it was chosen automatically.
    1. Start the loopback server on ``127.0.0.1`` (the settings' port, else a free one)
       *before* anything is shown, so the redirect URI names the port actually bound
       (RFC 8252 §7.3). Unless ``preflight`` is off or an ``opener`` is given, check that
       the federation answers the authorization request (:func:`preflight`).
    2. Build the authorization URL with a fresh ``state`` and PKCE S256 challenge
       (RFC 7636 §4), show it on the writer (stderr by default) and log it with the state
       redacted.
    3. Open the browser on a background thread: with the settings' opener when given, else
       as the environment allows (:func:`~fedbearer._browser.choose_browser`: ``$BROWSER``
       always; nothing over SSH or without a display; the Windows browser on WSL). Unless
       ``no_browser_open``. A failed launch only adds a hint to open the URL by hand. Over
       SSH without a browser, an ``ssh -L`` command for the callback port is shown.
    4. Wait for a callback with our state; strays are answered and ignored. When standard
       input is a terminal, the final redirect URL may also be pasted there
       (:mod:`fedbearer._paste`); it passes the same checks. ``error=`` becomes
       :class:`~fedbearer.AuthorizationError`; an ``iss`` naming another server
       (RFC 9207) ends the login.
    5. Exchange the code through a dedicated session.

    The timeout (seconds, ``None`` for no limit) covers steps 4 and 5; when it passes,
    :class:`~fedbearer.LoginTimeoutError` is raised. On any outcome, Ctrl-C included, the
    paste reader is stopped, the port is released and the server's threads are joined
    before this returns.

    Ctrl-C raises :class:`KeyboardInterrupt` at once while the login checks the federation,
    waits for the browser, exchanges the code or writes to the writer. The rest (setting up,
    starting and stopping the server and threads: milliseconds) holds it until the next of
    those or the end, since a step cut in half would leave a thread running or the port open.
    """
    # Imported here, not at the top: a process whose token is cached never logs in, and
    # these (the callback server and its pages, browser launching, the paste reader) are a
    # tenth of a cached `fedbearer token` process (benchmarks/token_command.py).
    from ._browser import choose_browser, launch
    from ._device import choose_login, device_login
    from ._environment import detect_environment
    from ._loopback import LoopbackServer
    from ._paste import start_paste_reader

    timeout = settings.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    federation = endpoints(settings, deadline=deadline)
    check_scopes(settings.scopes, federation)
    environment = detect_environment()
    out = settings.writer if settings.writer is not None else sys.stderr
    how = choose_login(
        device_code=settings.device_code,
        offered=federation.device_authorization_url is not None,
        environment=environment,
        opener_given=settings.opener is not None,
        no_browser_open=settings.no_browser_open,
    )
    log.info("login: %s, as %s", "device code" if how.device else "browser", how.reason)
    if how.device:
        shown_reason = None if settings.device_code else how.reason
        return _granted(
            settings,
            device_login(settings, federation, deadline=deadline, writer=out, reason=shown_reason),
        )
    state = new_state()
    verifier, challenge = new_pkce()
    server = LoopbackServer(
        state=state,
        issuers=federation.issuers,
        port=settings.port,
        app=settings.app_name,
        profile=settings.profile,
        federation=federation.endpoint,
    )
    redirect_uri = server.start()
    paste: Optional[PasteReader] = None
    try:
        if settings.preflight and settings.opener is None:
            # Only when a person is to use the URL: a programmatic opener (a test, a
            # custom launcher) sees the federation's answer itself.
            preflight(settings, redirect_uri, federation, deadline)
        url = build_authorize_url(
            federation,
            client_id=settings.client_id,
            redirect_uri=redirect_uri,
            state=state,
            challenge=challenge,
            federation_id=settings.federation_id,
            scopes=settings.scopes,
            params=settings.params,
        )
        log.info("login: authorization URL %s", redact_url(url))
        reason: Optional[str] = None
        if settings.no_browser_open:
            use: Optional[Opener] = None
        elif settings.opener is not None:
            use = settings.opener
        else:
            choice = choose_browser(environment)
            use, reason = choice.opener, choice.reason
            if use is None:
                log.info("login: no browser launched: %s", reason)
        if environment.stdin_tty:
            # Started before anything is shown, so the instructions offer it only if it runs.
            paste = start_paste_reader(
                server=server,
                redirect_uri=redirect_uri,
                state=state,
                issuers=federation.issuers,
                say=lambda text: _show(out, text),
            )
        _show(
            out,
            _instructions(
                federation=federation,
                profile_name=settings.profile,
                url=url,
                redirect_uri=redirect_uri,
                launching=use is not None,
                reason=reason,
                environment=environment,
                pasting=paste is not None,
                fixed_port=bool(settings.port),
                timeout=timeout,
            ),
        )
        if use is not None:
            paste_note = (
                " If that browser is on another machine, paste the address it ends on here."
                if paste is not None
                else ""
            )

            def on_failure(why: str) -> None:
                if how.fallback:
                    # No browser after all, and the provider offers the device code: use
                    # it rather than wait for a URL nobody will open.
                    log.info("login: no browser could be opened (%s); using the device code", why)
                    server.offer(Callback(CallbackKind.NO_BROWSER, error=why))
                    return
                _show(
                    out,
                    f"Could not open a browser ({why}); open the URL above by hand.{paste_note}\n",
                )

            launch(url, opener=use, on_failure=on_failure)
        callback = server.wait(deadline)
        if paste is not None:
            paste.stop()  # the terminal is the user's again while the code is exchanged
        if callback.kind is CallbackKind.NO_BROWSER:
            server.close()
            return _granted(
                settings,
                device_login(
                    settings,
                    federation,
                    deadline=deadline,
                    writer=out,
                    reason=f"the browser could not be opened ({callback.error})",
                ),
            )
        missing_iss = federation.iss_required and callback.iss is None
        if callback.kind is CallbackKind.WRONG_ISSUER or missing_iss:
            server.finish(
                server.failure(
                    "Login rejected",
                    "The login response came from a server other than the federation.",
                    "Start the login again; if this repeats, report it to your administrator.",
                )
            )
            raise LoginError.naming(_issuer_problem(federation, missing=missing_iss))
        if callback.kind is CallbackKind.ERROR:
            assert callback.error is not None
            detail = callback.error + (
                f": {callback.error_description}" if callback.error_description else ""
            )
            denied = callback.error == "access_denied"
            server.finish(
                server.failure(
                    "Login denied" if denied else "Login rejected",
                    "The login was refused." if denied else "The federation rejected the login.",
                    "Return to your application and start the login again."
                    if denied
                    else "Check the application's settings, then start the login again.",
                    detail=detail,
                )
            )
            raise AuthorizationError.for_code(
                callback.error,
                callback.error_description,
                callback.error_uri,
                provider=settings.kind != "federation",
            )
        assert callback.code is not None
        try:
            token = exchange_code(
                federation,
                code=callback.code,
                redirect_uri=redirect_uri,
                client_id=settings.client_id,
                verifier=verifier,
                deadline=deadline,
                verify=settings.verify,
                client_secret=settings.client_secret,
                session=settings.session,
            )
        except FedbearerError:
            server.finish(
                server.failure(
                    "Login failed",
                    "The federation approved the login but did not issue a token.",
                    "Return to your application for the details, then try again.",
                )
            )
            raise
        server.finish(server.success())
        token = _granted(settings, token)
        _show(out, "Logged in.\n")
        log.info("login: token obtained, expires %s", token.expiration)
        return token
    finally:
        if paste is not None:
            paste.stop()
        server.close()
