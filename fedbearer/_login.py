"""One interactive login, start to finish, and the token endpoint calls.

:func:`authorize` wires the pure protocol (:mod:`fedbearer._protocol`) to the loopback
server, the browser launcher and a dedicated ``requests`` session for the token endpoint.
One deadline covers the wait for the browser and the code exchange.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
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
)
from ._http import TOKEN_REQUEST_TIMEOUT, call
from ._interrupts import defers_interrupts, interruptible
from ._protocol import (
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
) -> Token:
    """POST a token request (:func:`fedbearer._http.call`) and parse the answer.

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
        answer.status, answer.body, requested_at=requested_at, secrets_=secrets_
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
        except FedbearerError as exc:
            raise DiscoveryError(
                f"could not read the discovery document of {issuer}: {exc}"
            ) from exc
        if answer.status != 404:
            break
    log.debug("read the discovery document of %s at %s: HTTP %d", issuer, url, answer.status)
    return parse_discovery(
        answer.status, answer.body, issuer=issuer, url=url, allow_insecure_http=allow_insecure_http
    )


#: Seconds the pre-flight check may take, all told.
PREFLIGHT_TIMEOUT = 5.0

# What to check for each setting the pre-flight check can blame, in library and CLI terms.
_SETTING_HINTS = {
    "client_id": (
        "check client_id (--client-id), and that the federation has registered it as a "
        "public client with a loopback redirect (http://127.0.0.1, any port)"
    ),
    "federation_endpoint": "check federation_endpoint (--federation-endpoint), including its path",
    "federation_id": "check federation_id (--federation-id)",
    "scope": "check the scopes requested",
}
# The same for another OpenID provider, where the endpoint and the federation id are not
# settings: the issuer or the endpoints are, and extra parameters take the id's place.
_PROVIDER_HINTS = {
    **_SETTING_HINTS,
    "client_id": (
        "check client_id (--client-id), and that the provider has registered it as a "
        "public (native) client with the loopback redirect URI http://127.0.0.1"
    ),
    "federation_endpoint": ("check the issuer or authorization_endpoint, including its path"),
    "federation_id": "check the extra authorization parameters (params=)",
    "scope": "check the scopes requested (scopes=, --scope)",
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
    hints = _SETTING_HINTS if settings.kind == "federation" else _PROVIDER_HINTS
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
    endpoint_hint = hints["federation_endpoint"]
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
    except FedbearerError as exc:
        unreachable = _unreachable(exc, where, endpoint_hint)
        if unreachable is not None:
            raise unreachable from None
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
        setting, reason = problem
        raise ConfigurationError(
            f"the federation refused the login request ({reason}); {hints[setting]}"
        )
    log.debug("pre-flight check of %s: HTTP %d", where, answer.status)


def _unreachable(
    exc: FedbearerError, where: str, endpoint_hint: str
) -> Optional[ConfigurationError]:
    """The pre-flight check's verdict on a failed call: a setting to fix, or ``None`` (a slow
    or broken answer proves nothing about the settings)."""
    if isinstance(exc, ConfigurationError):  # a CA bundle that does not exist
        return exc
    cause = exc.__cause__
    if isinstance(cause, requests.exceptions.SSLError):
        return ConfigurationError(f"{exc}; or {endpoint_hint} (http:// or https://)")
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return ConfigurationError(
            f"could not connect to {where} within {PREFLIGHT_TIMEOUT:g} s; {endpoint_hint}, "
            "and the network or proxy settings (HTTPS_PROXY, NO_PROXY, or session=)"
        )
    if isinstance(exc, LoginTimeoutError) or not isinstance(
        cause, requests.exceptions.ConnectionError
    ):
        return None
    text = str(cause)
    resolve = "NameResolution" in text or "getaddrinfo" in text or "Name or service" in text
    what = "the host name does not resolve" if resolve else "the connection failed"
    return ConfigurationError(
        f"cannot reach the federation at {where} ({what}); {endpoint_hint}, and the "
        "network or proxy settings (HTTPS_PROXY, NO_PROXY, or session=)"
    )


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
    token_url = endpoints(settings, deadline=deadline).token_url
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
    )
    if new.refresh_token is None:
        new = Token(
            new.token, new.expiration, refresh_token=token.refresh_token, issued_at=new.issued_at
        )
    return new


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
            "configured to check it against: pass issuer= with the provider's issuer "
            "identifier"
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
    """Run one interactive login and return its token: :func:`login` for these settings.

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
    from ._environment import detect_environment
    from ._loopback import LoopbackServer
    from ._paste import start_paste_reader

    timeout = settings.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    federation = endpoints(settings, deadline=deadline)
    environment = detect_environment()
    out = settings.writer if settings.writer is not None else sys.stderr
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
            launch(
                url,
                opener=use,
                on_failure=lambda why: _show(
                    out,
                    f"Could not open a browser ({why}); open the URL above by hand.{paste_note}\n",
                ),
            )
        callback = server.wait(deadline)
        if paste is not None:
            paste.stop()  # the terminal is the user's again while the code is exchanged
        missing_iss = federation.iss_required and callback.iss is None
        if callback.kind is CallbackKind.WRONG_ISSUER or missing_iss:
            server.finish(
                server.failure(
                    "Login rejected",
                    "The login response came from a server other than the federation.",
                    "Start the login again; if this repeats, report it to your administrator.",
                )
            )
            raise LoginError(_issuer_problem(federation, missing=missing_iss))
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
            raise AuthorizationError(callback.error, callback.error_description, callback.error_uri)
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
        _show(out, "Logged in.\n")
        log.info("login: token obtained, expires %s", token.expiration)
        return token
    finally:
        if paste is not None:
            paste.stop()
        server.close()
