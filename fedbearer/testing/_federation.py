"""An in-process OAuth 2.0 authorization server ("federation") over real loopback HTTP.

:class:`LocalFederation` speaks the wire protocol fedbearer's login uses (RFC 6749
authorization code grant, RFC 7636 PKCE S256 only, RFC 8252 loopback redirects, RFC 9207
``iss``), serves a discovery document (OpenID Connect Discovery 1.0 or RFC 8414) and a
revocation endpoint (RFC 7009) in the URL layout of a Nebius federation or of another
provider (:class:`Layout`), validates every parameter strictly, and lets a test inject
faults. The protocol
decisions live in methods that take parsed parameters and return a :class:`_Reply`; the
request handler only moves bytes.

Nothing here logs, raises or renders a token, code, state or verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Optional, Union
from urllib.parse import parse_qsl, urlencode, urlsplit

from fedbearer import _clock, _discovery
from fedbearer._protocol import LOOPBACK_NAMES

__all__ = ["FaultKind", "Layout", "LocalFederation"]

_log = logging.getLogger("fedbearer.testing")

FaultKind = Literal[
    "deny",
    "invalid_grant",
    "invalid_client",
    "server_error",
    "slow",
    "non_json",
    "json_array",
    "missing_access_token",
    "wrong_types",
    "no_expires_in",
    "connection_reset",
    "unsupported_token_type",
    "revocation_unavailable",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
]

#: Faults answered by the authorize endpoint.
_AUTHORIZE_FAULTS = frozenset({"deny"})
#: Faults answered by the revocation endpoint; every other kind is the token endpoint's.
_REVOCATION_FAULTS = frozenset({"unsupported_token_type", "revocation_unavailable"})
#: Faults that replace the answer before the grant is looked at (the code stays usable).
_EARLY_FAULTS = frozenset({"invalid_grant", "invalid_client", "server_error", "connection_reset"})
#: Faults that process the grant normally, then distort the 200 answer.
_SHAPE_FAULTS = frozenset(
    {"non_json", "json_array", "missing_access_token", "wrong_types", "no_expires_in"}
)
_TOKEN_FAULTS = _EARLY_FAULTS | _SHAPE_FAULTS | {"slow"}
#: Answers to a device-code poll (RFC 8628 §3.5), taken by the next poll only.
_DEVICE_FAULTS = frozenset({"authorization_pending", "slow_down", "access_denied", "expired_token"})
_ALL_FAULTS = _AUTHORIZE_FAULTS | _REVOCATION_FAULTS | _TOKEN_FAULTS | _DEVICE_FAULTS
#: ``grant_type`` of a device-code poll (RFC 8628 §3.4).
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §6.1's example character set for user codes: no vowels, no look-alikes.
_USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"

#: RFC 7009 §2.1 token type hints the revocation endpoint knows.
_TOKEN_TYPE_HINTS = frozenset({"access_token", "refresh_token"})
_PATH_RE = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*")


@dataclass(frozen=True)
class Layout:
    """Where a :class:`LocalFederation`'s endpoints are, as paths on ``127.0.0.1:<port>``.

    ``issuer_path`` makes the issuer ``http://127.0.0.1:<port><issuer_path>`` (plus a
    ``/`` with ``issuer_trailing_slash``, as Auth0 writes its issuers); the discovery
    document, the consent form and ``/whoami`` live under it. ``revocation_path=None``: no
    revocation endpoint (as with Entra ID or Dex). :attr:`LocalFederation.LAYOUTS` has the
    layouts of well-known providers.
    """

    issuer_path: str = ""
    authorize_path: str = "/oauth2/authorize"
    token_path: str = "/oauth2/token"  # noqa: S105 - a path, not a password
    revocation_path: Optional[str] = "/oauth2/revoke"
    issuer_trailing_slash: bool = False

    def __post_init__(self) -> None:
        for name in ("issuer_path", "authorize_path", "token_path", "revocation_path"):
            path = getattr(self, name)
            if path is None and name == "revocation_path":
                continue
            if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
                raise ValueError(
                    f"{name} must look like '/a/b' (no trailing '/', query, fragment or escapes)"
                )
            if name != "issuer_path" and not path:
                raise ValueError(f"{name} must not be empty")


def _under(prefix: str) -> Layout:
    return Layout(
        prefix, prefix + "/oauth2/authorize", prefix + "/oauth2/token", prefix + "/oauth2/revoke"
    )


_ENTRA_TENANT = "/9188040d-6c67-4c5b-b112-36a304b66dad"
_KEYCLOAK_REALM = "/realms/fedbearer/protocol/openid-connect"

#: Endpoint layouts of well-known providers, as their discovery documents give them (the
#: tenant, realm and authorization server names are made up).
LAYOUTS: Mapping[str, Layout] = MappingProxyType(
    {
        "nebius": Layout(),
        "keycloak": Layout(
            "/realms/fedbearer",
            _KEYCLOAK_REALM + "/auth",
            _KEYCLOAK_REALM + "/token",
            _KEYCLOAK_REALM + "/revoke",
        ),
        "okta": Layout(
            "/oauth2/default",
            "/oauth2/default/v1/authorize",
            "/oauth2/default/v1/token",
            "/oauth2/default/v1/revoke",
        ),
        "entra": Layout(
            _ENTRA_TENANT + "/v2.0",
            _ENTRA_TENANT + "/oauth2/v2.0/authorize",
            _ENTRA_TENANT + "/oauth2/v2.0/token",
            None,
        ),
        "google": Layout("", "/o/oauth2/v2/auth", "/token", "/revoke"),
        "auth0": Layout("", "/authorize", "/oauth/token", "/oauth/revoke", True),
        "dex": Layout("/dex", "/dex/auth", "/dex/token", None),
    }
)

#: Where the discovery document is served: OpenID Connect Discovery's location, RFC 8414's,
#: or nowhere (``None``).
DiscoveryLocation = Literal["openid-configuration", "oauth-authorization-server"]

# RFC 7636 §4.2: the challenge is base64url without padding; S256 gives 43 characters,
# the grammar allows up to 128.
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43,128}")
# RFC 7636 §4.1: code_verifier = 43*128 unreserved characters.
_VERIFIER_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_MAX_BODY = 64 * 1024
_REALM = "local-federation"

# Headers every HTML page carries. ``frame-ancestors`` and ``base-uri`` do not fall back to
# ``default-src``, so they are spelled out (a consent button must not be framed).
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}

_STYLE = """
  :root { color-scheme: light dark; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         background: #f3f4f6; color: #111827; }
  main { max-width: 28rem; margin: 12vh auto; padding: 2rem 2.25rem; background: #fff;
         border-radius: 12px; box-shadow: 0 1px 3px rgba(0,0,0,.12), 0 8px 24px rgba(0,0,0,.06); }
  h1 { font-size: 1.35rem; margin: 0 0 1rem; }
  p { margin: 0 0 1rem; }
  .muted { color: #4b5563; font-size: .9rem; }
  code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f3f4f6;
         padding: .1em .35em; border-radius: 4px; word-break: break-all; }
  label { display: block; font-weight: 600; margin: 1.25rem 0 .35rem; }
  input[type=text] { box-sizing: border-box; width: 100%; padding: .55rem .7rem; font: inherit;
         border: 1px solid #9ca3af; border-radius: 6px; }
  .actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
  button { flex: 1; padding: .6rem 1rem; font: inherit; font-weight: 600; border-radius: 6px;
           border: 1px solid #1d4ed8; background: #2563eb; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #1f2937; border-color: #9ca3af; }
  .error { border-left: 4px solid #b91c1c; padding-left: .75rem; }
  @media (prefers-color-scheme: dark) {
    body { background: #111827; color: #f9fafb; }
    main { background: #1f2937; box-shadow: none; }
    .muted { color: #d1d5db; }
    code { background: #374151; }
    input[type=text] { background: #111827; color: #f9fafb; border-color: #6b7280; }
    button.secondary { background: #374151; color: #f9fafb; border-color: #6b7280; }
  }
"""


@dataclass(frozen=True)
class _Reply:
    """One HTTP answer; ``reset`` means: answer nothing, reset the connection."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False


@dataclass(frozen=True)
class _Fault:
    kind: str
    status: int
    delay: float


@dataclass(frozen=True)
class _AuthRequest:
    """A validated authorize request (what a code, or a pending consent, is bound to)."""

    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    state: str


@dataclass
class _Code:
    request: _AuthRequest
    user: str
    expires_at: float
    family: str
    used: bool = False


@dataclass
class _DeviceRequest:
    """A device authorization (RFC 8628 §3.2) waiting to be entered, approved or denied."""

    client_id: str
    scope: str
    user_code: str
    expires_at: float
    #: ``None`` while pending; then the approving user, or ``""`` when denied.
    decision: Optional[str] = None


@dataclass(frozen=True)
class _Grant:
    """What an access or refresh token stands for. ``family`` links every token that
    descends from one authorization code, so a replayed code revokes them all."""

    user: str
    client_id: str
    scope: str
    family: str
    expires_at: Optional[float] = None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _single_valued(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], Optional[str]]:
    """Fold parsed pairs into a dict; RFC 6749 §3.1/§3.2: no parameter may repeat."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return params, name
        params[name] = value
    return params, None


def _is_loopback_redirect(uri: str) -> bool:
    """RFC 8252 §7.3: ``http`` to a loopback literal (or ``localhost``, §8.3) with an
    explicit port; a path is allowed, a fragment (RFC 6749 §3.1.2) or userinfo is not."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in LOOPBACK_NAMES
        and port is not None
        and "@" not in parts.netloc
        and not parts.fragment
        and "#" not in uri
    )


def _with_query(uri: str, params: dict[str, str]) -> str:
    # RFC 6749 §3.1.2: keep any query the redirect URI already has.
    return uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> _Reply:
    return _Reply(
        status,
        {"Content-Type": "application/json", **_NO_STORE, **(headers or {})},
        json.dumps(body).encode("utf-8"),
    )


def _form(content_type: str, body: bytes) -> Union[_Reply, tuple[dict[str, str], Optional[str]]]:
    """A form body as single values and the first repeated name, or the error to answer
    when it is not ``application/x-www-form-urlencoded`` UTF-8."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return _oauth_error("invalid_request", "Send application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return _oauth_error("invalid_request", "The body is not UTF-8.")
    return _single_valued(pairs)


def _oauth_error(error: str, description: str, status: int = 400) -> _Reply:
    """RFC 6749 §5.2 error response."""
    return _json(status, {"error": error, "error_description": description})


def _redirect(location: str, status: int = 302) -> _Reply:
    return _Reply(status, {"Location": location, **_NO_STORE, "Content-Type": "text/plain"})


def _page(status: int, title: str, body_html: str, *, form_action: Optional[str]) -> _Reply:
    """An HTML page; every interpolated text is escaped by the caller."""
    csp = _PAGE_CSP if form_action is None else f"{_PAGE_CSP}; form-action {form_action}"
    document = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body_html}\n</main>\n</body>\n</html>\n"
    )
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        **_NO_STORE,
    }
    return _Reply(status, headers, document.encode("utf-8"))


def _error_page(status: int, message: str) -> _Reply:
    body = (
        "<h1>This sign-in request cannot be answered</h1>\n"
        f'<p class="error">{html.escape(message)}</p>\n'
        '<p class="muted">Nothing was sent back to the application. You may close this tab.</p>'
    )
    return _page(status, "Sign-in request rejected", body, form_action="'none'")


def _normal_user_code(code: str) -> str:
    """A user code as compared: upper case, without separators (RFC 8628 §6.1)."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _consent_form_action(redirect_uri: str) -> Optional[str]:
    """``form-action`` for the consent page, or None to leave the directive out.

    Chromium applies ``form-action`` to every redirect that follows a form submission, so
    ``'self'`` alone would block the 302/303 from ``/oauth2/decide`` to the client's
    loopback port (another origin): checked with headless Chromium, ``'self'`` alone stops
    the Approve button with a CSP violation. The policy therefore names the one origin this
    request may return to. CSP source grammar has no IPv6 literals (Chromium drops ``http://[::1]:*``
    as invalid and does not map ``localhost`` to ``[::1]``), so for a ``[::1]`` redirect URI
    the directive is omitted: without a script, the only form on the page is ours.
    """
    parts = urlsplit(redirect_uri)
    if parts.hostname == "::1":
        return None
    return f"'self' http://{parts.hostname}:{parts.port}"


class LocalFederation:
    """A strict OAuth 2.0 authorization server for tests, on ``127.0.0.1`` port 0.

    Use it as a context manager (or call :meth:`start` and :meth:`close`)::

        with LocalFederation() as fed:
            fed.authorize_url, fed.token_url, fed.endpoint

    Routes under ``endpoint``: ``GET /oauth2/authorize``, ``POST /oauth2/decide`` (the
    consent form in interactive mode), ``POST /oauth2/token``, ``POST /oauth2/revoke``
    (RFC 7009), ``GET /.well-known/openid-configuration`` and ``GET /whoami`` (a protected
    resource); ``layout`` moves the endpoints to another provider's paths. Expiry is judged
    with ``fedbearer._clock.now()`` at use time, so a test that freezes that clock controls
    it.

    Faults are queued with :meth:`fail_next`; each request that reaches the queue takes
    one. All state is guarded by one lock; every public method is thread-safe.
    """

    #: The fault kinds :meth:`fail_next` accepts.
    FAULTS: frozenset[str] = frozenset(_ALL_FAULTS)
    #: Endpoint layouts by provider name, for ``layout=``.
    LAYOUTS: Mapping[str, Layout] = LAYOUTS
    #: The scopes the server knows unless told otherwise (``scopes_supported``).
    DEFAULT_SCOPES: tuple[str, ...] = ("openid", "profile", "email", "offline_access")

    def __init__(
        self,
        *,
        client_id: str = "fedbearer-test",
        federation_id: Optional[str] = "test-federation",
        auto_approve: bool = True,
        token_lifetime: Optional[int] = 3600,
        issue_refresh_tokens: bool = True,
        code_lifetime: int = 60,
        send_iss: bool = True,
        user: str = "alice",
        path_prefix: str = "",
        layout: Union[str, Layout] = "nebius",
        discovery: Optional[DiscoveryLocation] = "openid-configuration",
        metadata: Optional[Mapping[str, Any]] = None,
        scopes_supported: Collection[str] = DEFAULT_SCOPES,
        client_secret: Optional[str] = None,
        device_flow: Optional[bool] = None,
        device_interval: Optional[int] = 1,
        device_code_lifetime: int = 600,
        withheld_scopes: Collection[str] = (),
        email: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if token_lifetime is not None and token_lifetime < 0:
            raise ValueError("token_lifetime must be >= 0 or None")
        if code_lifetime < 0:
            raise ValueError("code_lifetime must be >= 0")
        prefix = path_prefix.rstrip("/")
        if prefix and (not prefix.startswith("/") or re.search(r"[?#%\s]", prefix)):
            raise ValueError("path_prefix must look like '/fed' (no query, fragment or escapes)")
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"unknown layout {layout!r}; choose from {sorted(LAYOUTS)}")
            layout = LAYOUTS[layout]
        if device_interval is not None and device_interval < 0:
            raise ValueError("device_interval must be >= 0 or None")
        if device_code_lifetime < 0:
            raise ValueError("device_code_lifetime must be >= 0")
        #: Whether the device authorization endpoint (RFC 8628) is served and advertised:
        #: by default for every layout but a Nebius federation's (with or without a path
        #: prefix), which offers none.
        self.device_flow = layout != Layout() if device_flow is None else device_flow
        #: ``interval`` of device authorization answers (``None``: left out, so the client
        #: waits RFC 8628's 5 s); 1 s by default, so tests need not wait.
        self.device_interval = device_interval
        self.device_code_lifetime = device_code_lifetime
        if prefix:
            if layout != Layout():
                raise ValueError("path_prefix goes with the default layout only")
            layout = _under(prefix)
        if discovery not in (None, "openid-configuration", "oauth-authorization-server"):
            raise ValueError(f"unknown discovery location {discovery!r}")
        if "openid" not in scopes_supported:
            raise ValueError("scopes_supported must include openid")
        self.layout = layout
        self.discovery = discovery
        #: Fields added to (or, with the value ``None``, removed from) the discovery document.
        self.metadata = dict(metadata or {})
        self.scopes_supported = tuple(scopes_supported)
        #: A secret the token and revocation endpoints require of the client, as Google
        #: does of its "Desktop app" clients; ``None``: a public client, which sends none.
        self.client_secret = client_secret
        #: Scopes accepted in a request but left out of the grant, as a provider does with a
        #: scope this client or user may not have (the token response's ``scope`` says so).
        self.withheld_scopes = frozenset(withheld_scopes)
        #: The ``email`` claim of the ID token (with the ``email`` scope); default
        #: ``<user>@example.test``.
        self.email = email
        self._id_token_key = secrets.token_bytes(32)
        #: Serve HTTPS with this server-side context (a test's private CA, e.g. ``trustme``;
        #: a client certificate is required when the context says so); ``None``: plain HTTP.
        self.ssl_context = ssl_context
        self.client_id = client_id
        self.federation_id = federation_id
        self.auto_approve = auto_approve
        self.token_lifetime = token_lifetime
        #: The ``expires_in`` the token endpoint announces instead of ``token_lifetime``
        #: (which still decides how long a token is accepted), to play a provider whose
        #: announcement, or clock, is wrong: ``0.001`` makes tokens expire on arrival.
        self.expires_in: Optional[float] = None
        self.issue_refresh_tokens = issue_refresh_tokens
        self.code_lifetime = code_lifetime
        self.send_iss = send_iss
        self.user = user
        self.path_prefix = prefix

        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False

        self._counts = dict.fromkeys(
            (
                "logins",
                "authorize_requests",
                "token_requests",
                "code_exchanges",
                "refreshes",
                "denials",
                "resource_requests",
                "discovery_requests",
                "revocation_requests",
                "device_authorizations",
                "device_polls",
            ),
            0,
        )
        self._authorize_params: list[dict[str, str]] = []
        self._revocation_params: list[dict[str, str]] = []
        self._faults: deque[_Fault] = deque()
        self._pending: dict[str, _AuthRequest] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        # Refresh tokens already rotated away: a replay revokes their family (RFC 9700 §4.14.2).
        self._rotated: dict[str, str] = {}
        self._issued: list[str] = []
        self._devices: dict[str, _DeviceRequest] = {}  # by device code
        self._device_polls: list[dict[str, str]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalFederation:
        """Bind ``127.0.0.1:0`` and serve from a daemon thread. Returns ``self``."""
        with self._lock:
            if self._server is not None or self._closed:
                raise RuntimeError("a LocalFederation can be started once")
            server = _Server(("127.0.0.1", 0), _Handler)
            server.federation = self
            if self.ssl_context is not None:
                # The handshake happens on the first read, in the request's own thread.
                server.socket = self.ssl_context.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            self._server = server
        # A new server at this address: endpoints fedbearer remembered from an earlier one
        # on the same port (a test before this one) would be stale.
        _discovery.forget(self.issuer)
        self._thread = threading.Thread(
            target=server.serve_forever,
            # serve_forever notices shutdown() only between polls; 10 ms keeps close()
            # (and so every test's teardown) quick for the price of 100 idle wake-ups/s.
            kwargs={"poll_interval": 0.01},
            name=f"LocalFederation:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, join the thread, close the listening socket. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
            self._closed = True
        self._closing.set()  # wakes a "slow" fault that is sleeping
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join()
        server.server_close()

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._endpoint_or_none() or ("closed" if self._closed else "not started")
        return (
            f"<LocalFederation {where} client_id={self.client_id!r} "
            f"logins={self.logins} token_requests={self.token_requests}>"
        )

    # -- addresses -------------------------------------------------------------------------

    def _origin_or_none(self) -> Optional[str]:
        server = self._server
        if server is None:
            return None
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://127.0.0.1:{server.server_address[1]}"

    def _endpoint_or_none(self) -> Optional[str]:
        origin = self._origin_or_none()
        return None if origin is None else origin + self.layout.issuer_path

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with ``ssl_context``); valid once started."""
        origin = self._origin_or_none()
        if origin is None:
            raise RuntimeError("LocalFederation is not running; use start() or 'with'")
        return origin

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` plus the path prefix (the layout's issuer path);
        valid once started."""
        return self.origin + self.layout.issuer_path

    @property
    def issuer(self) -> str:
        """The issuer identifier sent as ``iss`` (RFC 9207) and named by the discovery
        document: the endpoint URL (with a trailing ``/`` in the ``auth0`` layout)."""
        return self.endpoint + ("/" if self.layout.issuer_trailing_slash else "")

    @property
    def authorize_url(self) -> str:
        return self.origin + self.layout.authorize_path

    @property
    def token_url(self) -> str:
        return self.origin + self.layout.token_path

    @property
    def revocation_url(self) -> Optional[str]:
        """The RFC 7009 revocation endpoint; ``None`` in a layout without one."""
        path = self.layout.revocation_path
        return None if path is None else self.origin + path

    @property
    def discovery_url(self) -> Optional[str]:
        """Where the discovery document is served (``None``: nowhere)."""
        if self.discovery is None:
            return None
        if self.discovery == "openid-configuration":
            return self.endpoint + "/.well-known/openid-configuration"
        return self.origin + "/.well-known/oauth-authorization-server" + self.layout.issuer_path

    @property
    def whoami_url(self) -> str:
        return self.endpoint + "/whoami"

    @property
    def device_authorization_url(self) -> Optional[str]:
        """The RFC 8628 device authorization endpoint; ``None`` without ``device_flow``."""
        return self.endpoint + "/oauth2/device_authorization" if self.device_flow else None

    @property
    def device_page_url(self) -> str:
        """The page where a person enters a user code (the ``verification_uri``)."""
        return self.endpoint + "/device"

    # -- counters and records ----------------------------------------------------------------

    def _count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    @property
    def logins(self) -> int:
        """Authorization codes issued (approvals, automatic or by the consent form)."""
        return self._count("logins")

    @property
    def authorize_requests(self) -> int:
        """``GET /oauth2/authorize`` requests, whatever the answer."""
        return self._count("authorize_requests")

    @property
    def token_requests(self) -> int:
        """``POST /oauth2/token`` requests, whatever the answer."""
        return self._count("token_requests")

    @property
    def code_exchanges(self) -> int:
        """Token requests with ``grant_type=authorization_code``, whatever the answer."""
        return self._count("code_exchanges")

    @property
    def refreshes(self) -> int:
        """Token requests with ``grant_type=refresh_token``, whatever the answer."""
        return self._count("refreshes")

    @property
    def denials(self) -> int:
        """``access_denied`` redirects (Deny pressed, or a ``deny`` fault)."""
        return self._count("denials")

    @property
    def resource_requests(self) -> int:
        """``GET /whoami`` requests, whatever the answer."""
        return self._count("resource_requests")

    @property
    def discovery_requests(self) -> int:
        """Requests for the discovery document, whatever the answer."""
        return self._count("discovery_requests")

    @property
    def revocation_requests(self) -> int:
        """``POST`` requests to the revocation endpoint, whatever the answer."""
        return self._count("revocation_requests")

    @property
    def device_authorizations(self) -> int:
        """Device authorization requests answered with codes (RFC 8628 §3.2)."""
        return self._count("device_authorizations")

    @property
    def device_polls(self) -> int:
        """Token requests with the device-code grant (RFC 8628 §3.4), whatever the answer."""
        return self._count("device_polls")

    @property
    def device_poll_params(self) -> list[dict[str, str]]:
        """The form of every device-code poll, in order (``device_code`` included)."""
        with self._lock:
            return [dict(p) for p in self._device_polls]

    @property
    def pending_user_codes(self) -> list[str]:
        """User codes issued and not yet approved, denied or expired, oldest first."""
        now = _clock.now()
        with self._lock:
            return [
                d.user_code
                for d in self._devices.values()
                if d.decision is None and now < d.expires_at
            ]

    def decide_device(
        self, user_code: str, *, approve: bool = True, user: Optional[str] = None
    ) -> bool:
        """Approve (or deny) the device login of ``user_code``, as a person on the page
        would; False when no pending login has that code."""
        with self._lock:
            return self._decide_device(user_code, approve, self.user if user is None else user)

    def _decide_device(self, user_code: str, approve: bool, user: str) -> bool:
        # Caller holds the lock. Codes are compared without separators or case, as typed.
        wanted = _normal_user_code(user_code)
        now = _clock.now()
        for device in self._devices.values():
            if (
                device.decision is None
                and now < device.expires_at
                and hmac.compare_digest(_normal_user_code(device.user_code), wanted)
            ):
                device.decision = user if approve else ""
                if approve:
                    self._counts["logins"] += 1
                else:
                    self._counts["denials"] += 1
                return True
        return False

    @property
    def revocation_params(self) -> list[dict[str, str]]:
        """The form fields of every revocation request, in order, as received."""
        with self._lock:
            return [dict(p) for p in self._revocation_params]

    def granted_scopes(self, token: str) -> Optional[frozenset[str]]:
        """The scopes an access or refresh token was issued for, while it is valid (else
        ``None``)."""
        with self._lock:
            grant = self._live_grant(token) or self._refresh.get(token)
            return None if grant is None else frozenset(grant.scope.split())

    def discovery_document(self) -> dict[str, Any]:
        """The discovery document as served now (``metadata`` applied)."""
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(self.scopes_supported),
            "token_endpoint_auth_methods_supported": [
                "none" if self.client_secret is None else "client_secret_post"
            ],
            "authorization_response_iss_parameter_supported": self.send_iss,
        }
        if self.device_authorization_url is not None:
            document["device_authorization_endpoint"] = self.device_authorization_url
            document["grant_types_supported"].append(_DEVICE_GRANT)
        if self.revocation_url is not None:
            document["revocation_endpoint"] = self.revocation_url
            document["revocation_endpoint_auth_methods_supported"] = document[
                "token_endpoint_auth_methods_supported"
            ]
        for name, value in self.metadata.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return document

    @property
    def authorize_params(self) -> list[dict[str, str]]:
        """The query parameters of every authorize request, in order, exactly as received
        (a repeated parameter keeps its first value; the request itself was rejected)."""
        with self._lock:
            return [dict(p) for p in self._authorize_params]

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued so far, in order, valid or not."""
        with self._lock:
            return list(self._issued)

    def is_valid(self, access_token: str) -> bool:
        """Whether ``access_token`` would be accepted by ``/whoami`` right now."""
        with self._lock:
            return self._live_grant(access_token) is not None

    def issue_token(self, *, user: Optional[str] = None) -> str:
        """Mint an access token without a login (for protected-API fixtures).

        It lives ``token_lifetime`` seconds like any other and counts as no login.
        """
        with self._lock:
            family = "minted-" + secrets.token_hex(8)
            name = self.user if user is None else user
            grant = self._new_grant(name, self.client_id, "openid", family)
            return self._mint_access(grant)

    def revoke_all(self) -> None:
        """Invalidate every access and refresh token issued so far."""
        with self._lock:
            self._access.clear()
            self._rotated.update(dict.fromkeys(self._refresh, "revoked"))
            self._refresh.clear()

    def revoke_access_tokens(self) -> None:
        """Invalidate every access token issued so far; refresh tokens stay usable.

        As when access tokens expire early or a resource server stops accepting them: the
        next API call gets 401 and a client with a refresh token renews without a login.
        """
        with self._lock:
            self._access.clear()

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self, kind: FaultKind, count: int = 1, *, status: int = 500, delay: float = 1.0
    ) -> None:
        """Queue ``count`` faults of ``kind``; each request that reaches the queue takes one.

        ``deny`` is taken by the next authorize request; ``unsupported_token_type`` and
        ``revocation_unavailable`` by the next revocation request; the device-code answers
        (RFC 8628 §3.5: ``authorization_pending``, ``slow_down``, ``access_denied``,
        ``expired_token``) by the next device-code poll; every other kind by the next token
        request. ``status`` is used by ``server_error`` (500-599), ``delay`` (seconds) by
        ``slow``. See ``docs/local_federation.rst`` for what each kind answers.
        """
        if kind not in _ALL_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose from {sorted(_ALL_FAULTS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        if kind == "server_error" and not 500 <= status <= 599:
            raise ValueError("server_error status must be 5xx")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._faults.extend([_Fault(kind, status, delay)] * count)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[str]:
        """Kinds of the faults still queued, in order."""
        with self._lock:
            return [f.kind for f in self._faults]

    def _client_refusal(self, params: dict[str, str], repeated: Optional[str]) -> Optional[_Reply]:
        """The error for a form that repeats a parameter or does not identify this client,
        or None. A public client names itself with ``client_id``; with a ``client_secret``
        configured, it must send exactly that (RFC 6749 §2.3.1, in the body), and without
        one it must send none."""
        if repeated is not None:
            return _oauth_error("invalid_request", f"The parameter {repeated} is repeated.")
        client_id = params.get("client_id")
        if not client_id:
            return _oauth_error("invalid_request", "client_id is required for a public client.")
        if client_id != self.client_id:
            return _oauth_error("invalid_client", "Unknown client.", status=401)
        given = params.get("client_secret")
        if self.client_secret is None:
            authenticated = given is None
        else:
            authenticated = given is not None and hmac.compare_digest(
                given.encode("utf-8", "replace"), self.client_secret.encode("utf-8")
            )
        if not authenticated:
            return _oauth_error("invalid_client", "Client authentication failed.", status=401)
        return None

    def _routes(self) -> dict[str, str]:
        """Request path -> route name, for this layout."""
        layout, base = self.layout, self.layout.issuer_path
        routes = {
            layout.authorize_path: "authorize",
            layout.token_path: "token",
            base + "/oauth2/decide": "decide",
            base + "/whoami": "whoami",
        }
        if layout.revocation_path is not None:
            routes[layout.revocation_path] = "revoke"
        if self.device_flow:
            routes[base + "/oauth2/device_authorization"] = "device"
            routes[base + "/device"] = "device_page"
        discovery_url = self.discovery_url
        if discovery_url is not None:
            routes[urlsplit(discovery_url).path] = "discovery"
        return routes

    def _take_fault(self, endpoint_kinds: frozenset[str]) -> Optional[_Fault]:
        # Caller holds the lock. Takes the first queued fault meant for this endpoint.
        for fault in self._faults:
            if fault.kind in endpoint_kinds:
                self._faults.remove(fault)
                return fault
        return None

    # -- token bookkeeping (caller holds the lock) ------------------------------------------

    def _new_grant(self, user: str, client_id: str, scope: str, family: str) -> _Grant:
        lifetime = self.token_lifetime
        expires_at = None if lifetime is None else _clock.now() + lifetime
        return _Grant(user, client_id, scope, family, expires_at)

    def _mint_access(self, grant: _Grant) -> str:
        token = secrets.token_urlsafe(32)
        self._access[token] = grant
        self._issued.append(token)
        return token

    def _live_grant(self, access_token: str) -> Optional[_Grant]:
        grant = self._access.get(access_token)
        if grant is None:
            return None
        if grant.expires_at is not None and _clock.now() >= grant.expires_at:
            return None
        return grant

    def _revoke_family(self, family: str) -> None:
        for store in (self._access, self._refresh):
            for token in [t for t, g in store.items() if g.family == family]:
                del store[token]

    def _token_response(self, grant: _Grant) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": self._mint_access(grant), "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        elif self.token_lifetime is not None:
            body["expires_in"] = self.token_lifetime
        if self.issue_refresh_tokens:
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = grant
            body["refresh_token"] = refresh
        body["scope"] = grant.scope
        if "openid" in grant.scope.split():
            body["id_token"] = self._id_token(grant)
        return body

    def _id_token(self, grant: _Grant) -> str:
        """An OpenID Connect ID token (Core §2) for the grant: ``iss``, ``aud``, ``sub`` (the
        user), and ``email`` / ``preferred_username`` and ``name`` with the ``email`` /
        ``profile`` scopes; HS256 with a key of this server (no client checks it)."""
        now = int(_clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant.client_id,
            "sub": grant.user,
            "iat": now,
            "exp": now + 300,
        }
        scopes = grant.scope.split()
        if "email" in scopes:
            claims["email"] = self.email or f"{grant.user}@example.test"
        if "profile" in scopes:
            claims["preferred_username"] = grant.user
            claims["name"] = grant.user.title()

        def part(value: Any) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

        signing_input = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
        mac = hmac.new(self._id_token_key, signing_input.encode("ascii"), hashlib.sha256)
        signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
        return f"{signing_input}.{signature}"

    # -- authorize ---------------------------------------------------------------------------

    def _callback(self, request_uri: str, params: dict[str, str]) -> _Reply:
        if self.send_iss:
            params = {**params, "iss": self.issuer}
        return _redirect(_with_query(request_uri, params))

    def _error_redirect(
        self, redirect_uri: str, state: Optional[str], error: str, description: str
    ) -> _Reply:
        """RFC 6749 §4.1.2.1: errors go back to the client, with its state."""
        params = {"error": error, "error_description": description}
        if state:
            params["state"] = state
        return self._callback(redirect_uri, params)

    def _deny(self, request: _AuthRequest) -> _Reply:
        self._counts["denials"] += 1
        return self._error_redirect(
            request.redirect_uri, request.state, "access_denied", "The user denied the request."
        )

    def _approve(self, request: _AuthRequest, user: str) -> _Reply:
        code = secrets.token_urlsafe(32)
        expires_at = _clock.now() + self.code_lifetime
        self._codes[code] = _Code(request, user, expires_at, family=code)
        self._counts["logins"] += 1
        return self._callback(request.redirect_uri, {"code": code, "state": request.state})

    def handle_authorize(self, query: str) -> _Reply:
        pairs = parse_qsl(query, keep_blank_values=True)
        params, repeated = _single_valued(pairs)
        with self._lock:
            self._counts["authorize_requests"] += 1
            self._authorize_params.append(dict(params))

            # RFC 6749 §4.1.2.1: with a bad client or redirect URI, tell the user, never
            # redirect (that would make the server an open redirector).
            client_id = params.get("client_id")
            redirect_uri = params.get("redirect_uri", "")
            if repeated in ("client_id", "redirect_uri"):
                return _error_page(400, f"The parameter {repeated} is repeated.")
            if client_id != self.client_id:
                return _error_page(400, "Unknown client_id.")
            if not _is_loopback_redirect(redirect_uri):
                return _error_page(
                    400,
                    "redirect_uri must be http://127.0.0.1:<port>, http://[::1]:<port> or "
                    "http://localhost:<port>, optionally with a path (RFC 8252 §7.3).",
                )
            state = params.get("state")
            problem = self._authorize_problem(params, repeated)
            if problem is not None:
                return self._error_redirect(redirect_uri, state, *problem)
            assert state is not None  # checked by _authorize_problem
            request = _AuthRequest(
                client_id, redirect_uri, params["code_challenge"], params["scope"], state
            )
            if self._take_fault(_AUTHORIZE_FAULTS) is not None:
                return self._deny(request)
            if self.auto_approve:
                return self._approve(request, self.user)
            request_id = secrets.token_urlsafe(16)
            self._pending[request_id] = request
        return self._consent_page(request, request_id)

    def _authorize_problem(
        self, params: dict[str, str], repeated: Optional[str]
    ) -> Optional[tuple[str, str]]:
        """The (error, description) to redirect with, or None if the request is good."""
        if repeated is not None:
            return "invalid_request", f"The parameter {repeated} is repeated."
        response_type = params.get("response_type")
        if response_type is None:
            return "invalid_request", "response_type is missing."
        if response_type != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        if not params.get("state"):
            return "invalid_request", "state is required."
        method = params.get("code_challenge_method")
        if method != "S256":
            # RFC 7636 §4.4.1; a missing method means "plain" (§4.3), also refused.
            return "invalid_request", "code_challenge_method must be S256."
        if not _CHALLENGE_RE.fullmatch(params.get("code_challenge", "")):
            return "invalid_request", "code_challenge must be 43-128 base64url characters."
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            return "invalid_scope", "scope must include openid."
        unknown = set(scopes) - set(self.scopes_supported)
        if unknown:
            return "invalid_scope", f"Unknown scope: {' '.join(sorted(unknown))}."
        if self.federation_id is not None and params.get("federation-id") != self.federation_id:
            return "invalid_request", "Unknown or missing federation-id."
        return None

    def _consent_page(self, request: _AuthRequest, request_id: str) -> _Reply:
        esc = html.escape
        target = urlsplit(request.redirect_uri)
        origin = f"http://{target.netloc}"
        federation = self.federation_id or "this federation"
        body = f"""<h1>Sign in</h1>
<p>The application <strong>{esc(request.client_id)}</strong> asks to sign you in to
<strong>{esc(federation)}</strong>.</p>
<p class="muted">Your answer is sent back to <code>{esc(origin)}</code>.</p>
<form method="post" action="{esc(self.layout.issuer_path)}/oauth2/decide">
<input type="hidden" name="request_id" value="{esc(request_id)}">
<label for="user">User name</label>
<input type="text" id="user" name="user" value="{esc(self.user)}" autocomplete="username"
 maxlength="64" required>
<div class="actions">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" class="secondary"
 formnovalidate>Deny</button>
</div>
</form>"""
        form_action = _consent_form_action(request.redirect_uri)
        return _page(200, "Sign in – local federation", body, form_action=form_action)

    def handle_decide(self, form: list[tuple[str, str]]) -> _Reply:
        params, repeated = _single_valued(form)
        if repeated is not None:
            return _error_page(400, f"The field {repeated} is repeated.")
        with self._lock:
            request = self._pending.pop(params.get("request_id", ""), None)
            if request is None:
                return _error_page(400, "This sign-in request is unknown or already answered.")
            decision = params.get("decision")
            if decision == "deny":
                reply = self._deny(request)
            elif decision == "approve":
                user = params.get("user", "").strip()
                if not user or len(user) > 64:
                    self._pending[params["request_id"]] = request  # let the user retry
                    return _error_page(400, "Enter a user name of 1 to 64 characters.")
                reply = self._approve(request, user)
            else:
                self._pending[params["request_id"]] = request
                return _error_page(400, "Choose Approve or Deny.")
        # RFC 9700 §4.12: after a POST, 303 is the one status that makes every user agent
        # follow with a GET instead of re-posting the form to the client.
        return _Reply(303, reply.headers, reply.body)

    # -- token -------------------------------------------------------------------------------

    def handle_token(self, content_type: str, body: bytes) -> _Reply:
        with self._lock:
            self._counts["token_requests"] += 1
        form = _form(content_type, body)
        if isinstance(form, _Reply):
            return form
        params, repeated = form
        grant_type = params.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                self._counts["code_exchanges"] += 1
            elif grant_type == "refresh_token":
                self._counts["refreshes"] += 1
            elif grant_type == _DEVICE_GRANT and self.device_flow:
                self._counts["device_polls"] += 1
                self._device_polls.append(dict(params))
            fault = self._take_fault(_TOKEN_FAULTS)
        if fault is not None and fault.kind == "slow":
            self._closing.wait(fault.delay)
            fault = None
        if fault is not None and fault.kind in _EARLY_FAULTS:
            return self._early_fault(fault)
        refusal = self._client_refusal(params, repeated)
        if refusal is not None:
            return refusal
        with self._lock:
            if grant_type == "authorization_code":
                result = self._exchange_code(params)
            elif grant_type == "refresh_token":
                result = self._refresh_grant(params)
            elif grant_type == _DEVICE_GRANT and self.device_flow:
                result = self._device_grant(params)
            elif grant_type is None:
                return _oauth_error("invalid_request", "grant_type is missing.")
            else:
                return _oauth_error(
                    "unsupported_grant_type", "Use authorization_code or refresh_token."
                )
            if isinstance(result, _Reply):
                return result
            response = self._token_response(result)
        if fault is not None:
            return self._shape_fault(fault, response)
        return _json(200, response)

    def _exchange_code(self, params: dict[str, str]) -> Union[_Grant, _Reply]:
        """RFC 6749 §4.1.3 + RFC 7636 §4.6. Caller holds the lock."""
        for name in ("code", "redirect_uri", "code_verifier"):
            if not params.get(name):
                return _oauth_error("invalid_request", f"{name} is required.")
        record = self._codes.get(params["code"])
        if record is None:
            return _oauth_error("invalid_grant", "Unknown authorization code.")
        if record.used:
            # RFC 6749 §4.1.2: a replayed code revokes what it produced.
            self._revoke_family(record.family)
            return _oauth_error("invalid_grant", "The authorization code was already used.")
        # One attempt per code, successful or not: a wrong verifier cannot be retried.
        record.used = True
        if _clock.now() >= record.expires_at:
            return _oauth_error("invalid_grant", "The authorization code expired.")
        request = record.request
        if params["client_id"] != request.client_id:
            return _oauth_error("invalid_grant", "The code was issued to another client.")
        if params["redirect_uri"] != request.redirect_uri:
            return _oauth_error(
                "invalid_grant", "redirect_uri differs from the authorization request."
            )
        verifier = params["code_verifier"]
        if not _VERIFIER_RE.fullmatch(verifier):
            return _oauth_error("invalid_grant", "code_verifier is malformed (RFC 7636 §4.1).")
        if not hmac.compare_digest(_s256(verifier), request.challenge):
            return _oauth_error("invalid_grant", "code_verifier does not match the challenge.")
        granted = " ".join(s for s in request.scope.split() if s not in self.withheld_scopes)
        return self._new_grant(record.user, request.client_id, granted, record.family)

    def _refresh_grant(self, params: dict[str, str]) -> Union[_Grant, _Reply]:
        """RFC 6749 §6, rotating refresh tokens (RFC 9700 §4.14.2). Caller holds the lock."""
        token = params.get("refresh_token")
        if not token:
            return _oauth_error("invalid_request", "refresh_token is required.")
        if token in self._rotated:
            self._revoke_family(self._rotated[token])
            return _oauth_error("invalid_grant", "The refresh token was already used.")
        grant = self._refresh.get(token)
        if grant is None:
            return _oauth_error("invalid_grant", "Unknown or revoked refresh token.")
        if params["client_id"] != grant.client_id:
            return _oauth_error("invalid_grant", "The refresh token belongs to another client.")
        scope = params.get("scope")
        if scope is not None and not set(scope.split()) <= set(grant.scope.split()):
            return _oauth_error("invalid_scope", "A refresh cannot widen the scope.")
        del self._refresh[token]
        self._rotated[token] = grant.family
        return self._new_grant(grant.user, grant.client_id, scope or grant.scope, grant.family)

    @staticmethod
    def _early_fault(fault: _Fault) -> _Reply:
        if fault.kind == "connection_reset":
            return _Reply(0, reset=True)
        if fault.kind == "invalid_client":
            return _oauth_error("invalid_client", "Injected fault: client rejected.", status=401)
        if fault.kind == "invalid_grant":
            return _oauth_error("invalid_grant", "Injected fault: grant rejected.")
        # server_error: an HTML body, as a proxy in front of a real federation would send.
        return _Reply(
            fault.status,
            {"Content-Type": "text/html; charset=utf-8", **_NO_STORE},
            b"<!doctype html><title>Server error</title><h1>Server error</h1>\n",
        )

    @staticmethod
    def _shape_fault(fault: _Fault, response: dict[str, Any]) -> _Reply:
        if fault.kind == "non_json":
            return _Reply(
                200,
                {"Content-Type": "text/html; charset=utf-8", **_NO_STORE},
                b"<!doctype html><title>Welcome</title><p>Not a token response.</p>\n",
            )
        if fault.kind == "json_array":
            return _json(200, [])
        if fault.kind == "missing_access_token":
            return _json(200, {k: v for k, v in response.items() if k != "access_token"})
        if fault.kind == "wrong_types":
            return _json(200, {**response, "expires_in": [response.get("expires_in", 3600)]})
        # no_expires_in
        return _json(200, {k: v for k, v in response.items() if k != "expires_in"})

    # -- device authorization (RFC 8628) -----------------------------------------------------

    def handle_device_authorization(self, content_type: str, body: bytes) -> _Reply:
        """RFC 8628 §3.1-3.2: codes for a client that cannot receive a redirect."""
        form = _form(content_type, body)
        if isinstance(form, _Reply):
            return form
        params, repeated = form
        refusal = self._client_refusal(params, repeated)
        if refusal is not None:
            return refusal
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            return _oauth_error("invalid_scope", "scope must include openid.")
        unknown = set(scopes) - set(self.scopes_supported)
        if unknown:
            return _oauth_error("invalid_scope", f"Unknown scope: {' '.join(sorted(unknown))}.")
        if self.federation_id is not None and params.get("federation-id") != self.federation_id:
            return _oauth_error("invalid_request", "Unknown or missing federation-id.")
        device_code = secrets.token_urlsafe(32)
        letters = "".join(secrets.choice(_USER_CODE_LETTERS) for _ in range(8))
        user_code = f"{letters[:4]}-{letters[4:]}"
        with self._lock:
            self._counts["device_authorizations"] += 1
            self._devices[device_code] = _DeviceRequest(
                params["client_id"],
                " ".join(s for s in scopes if s not in self.withheld_scopes),
                user_code,
                _clock.now() + self.device_code_lifetime,
                decision=self.user if self.auto_approve else None,
            )
            if self.auto_approve:
                self._counts["logins"] += 1
        answer: dict[str, Any] = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": self.device_page_url,
            "verification_uri_complete": self.device_page_url
            + "?"
            + urlencode({"user_code": user_code}),
            "expires_in": self.device_code_lifetime,
        }
        if self.device_interval is not None:
            answer["interval"] = self.device_interval
        return _json(200, answer)

    def _device_grant(self, params: dict[str, str]) -> Union[_Grant, _Reply]:
        """RFC 8628 §3.4-3.5: one poll. Caller holds the lock."""
        device_code = params.get("device_code")
        if not device_code:
            return _oauth_error("invalid_request", "device_code is required.")
        fault = self._take_fault(_DEVICE_FAULTS)
        if fault is not None:
            return _oauth_error(fault.kind, "Injected fault.")
        device = self._devices.get(device_code)
        if device is None:
            return _oauth_error("invalid_grant", "Unknown or already used device code.")
        if params["client_id"] != device.client_id:
            return _oauth_error("invalid_grant", "The device code was issued to another client.")
        if _clock.now() >= device.expires_at:
            del self._devices[device_code]
            return _oauth_error("expired_token", "The device code expired.")
        if device.decision is None:
            return _oauth_error("authorization_pending", "The user has not answered yet.")
        del self._devices[device_code]  # one token per approval
        if device.decision == "":
            return _oauth_error("access_denied", "The user denied the request.")
        return self._new_grant(device.decision, device.client_id, device.scope, device_code)

    def handle_device_page(self, query: str) -> _Reply:
        """The page of ``verification_uri``: enter the code, then approve or deny."""
        code = dict(parse_qsl(query)).get("user_code", "")[:32]
        return self._device_form(200, code, None)

    def handle_device_decide(self, form: list[tuple[str, str]]) -> _Reply:
        params, repeated = _single_valued(form)
        if repeated is not None:
            return _error_page(400, f"The field {repeated} is repeated.")
        code = params.get("user_code", "")[:32]
        user = params.get("user", "").strip()
        decision = params.get("decision")
        if decision not in ("approve", "deny"):
            return self._device_form(400, code, "Choose Approve or Deny.")
        if decision == "approve" and (not user or len(user) > 64):
            return self._device_form(400, code, "Enter a user name of 1 to 64 characters.")
        with self._lock:
            found = self._decide_device(code, decision == "approve", user)
        if not found:
            return self._device_form(400, code, "This code is unknown, already used or expired.")
        verb = "approved" if decision == "approve" else "denied"
        body = (
            f'<h1>Device login {verb}</h1>\n<p id="outcome" data-outcome="{verb}">You have '
            f"{verb} the login. You may close this tab and return to your device.</p>"
        )
        return _page(200, f"Device login {verb} – local federation", body, form_action="'none'")

    def _device_form(self, status: int, code: str, problem: Optional[str]) -> _Reply:
        esc = html.escape
        error = "" if problem is None else f'<p class="error">{esc(problem)}</p>\n'
        body = f"""<h1>Sign in on another device</h1>
{error}<p>Enter the code your device shows.</p>
<form method="post" action="{esc(self.layout.issuer_path)}/device">
<label for="user_code">Code</label>
<input type="text" id="user_code" name="user_code" value="{esc(code)}" autocomplete="off"
 maxlength="32" required>
<label for="user">User name</label>
<input type="text" id="user" name="user" value="{esc(self.user)}" autocomplete="username"
 maxlength="64" required>
<div class="actions">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" class="secondary"
 formnovalidate>Deny</button>
</div>
</form>"""
        return _page(status, "Device login – local federation", body, form_action="'self'")

    # -- protected resource ------------------------------------------------------------------

    def handle_whoami(self, authorization: Optional[str]) -> _Reply:
        """RFC 6750 §2.1 / §3: a Bearer-protected resource."""
        with self._lock:
            self._counts["resource_requests"] += 1
            scheme, _, token = (authorization or "").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                # §3.1: no credentials at all → no error code.
                return _json(
                    401,
                    {"error": "unauthorized"},
                    {"WWW-Authenticate": f'Bearer realm="{_REALM}"'},
                )
            grant = self._live_grant(token)
            if grant is None:
                challenge = (
                    f'Bearer realm="{_REALM}", error="invalid_token", '
                    'error_description="The access token is unknown, expired or revoked."'
                )
                return _json(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})
            return _json(200, {"user": grant.user, "client_id": grant.client_id})

    # -- discovery and revocation -------------------------------------------------------------

    def handle_discovery(self) -> _Reply:
        """OpenID Connect Discovery 1.0 §4.2 / RFC 8414 §3.2: the metadata as JSON."""
        with self._lock:
            self._counts["discovery_requests"] += 1
        return _json(200, self.discovery_document())

    def handle_revoke(self, content_type: str, body: bytes) -> _Reply:
        """RFC 7009 §2: revoke an access or refresh token of this (public) client."""
        with self._lock:
            self._counts["revocation_requests"] += 1
        form = _form(content_type, body)
        if isinstance(form, _Reply):
            return form
        params, repeated = form
        with self._lock:
            self._revocation_params.append(dict(params))
            fault = self._take_fault(_REVOCATION_FAULTS)
        refusal = self._client_refusal(params, repeated)
        if refusal is not None:
            return refusal
        client_id = params["client_id"]
        token = params.get("token")
        if not token:
            return _oauth_error("invalid_request", "token is required.")
        hint = params.get("token_type_hint")
        if hint is not None and hint not in _TOKEN_TYPE_HINTS:
            return _oauth_error("invalid_request", "token_type_hint must name a token type.")
        if fault is not None:
            if fault.kind == "unsupported_token_type":
                return _oauth_error(
                    "unsupported_token_type", "Injected fault: cannot revoke this type."
                )
            return _json(
                503,
                {"error": "temporarily_unavailable", "error_description": "Injected fault."},
                {"Retry-After": "1"},
            )
        with self._lock:
            # §2.1: the hint only speeds up the search; an unknown token is answered 200 (§2.2).
            grant = self._access.get(token) or self._refresh.get(token)
            if grant is not None and grant.client_id != client_id:
                return _oauth_error("unauthorized_client", "The token belongs to another client.")
            if token in self._refresh:
                # §2.1: revoking a refresh token SHOULD end the access tokens of its grant.
                self._revoke_family(self._refresh[token].family)
            self._access.pop(token, None)
        return _Reply(200, {**_NO_STORE, "Content-Type": "text/plain"}, b"")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    federation: LocalFederation

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints the traceback to stderr; send it to logging instead.
        _log.warning("LocalFederation failed to handle a request", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "LocalFederation"
    sys_version = ""

    def _route(self) -> tuple[Optional[str], str]:
        """(the route the path names, or None; the query)."""
        parts = urlsplit(self.path)
        return self.server.federation._routes().get(parts.path), parts.query

    def do_GET(self) -> None:
        fed = self.server.federation
        route, query = self._route()
        if route == "authorize":
            self._send(fed.handle_authorize(query))
        elif route == "whoami":
            self._send(fed.handle_whoami(self.headers.get("Authorization")))
        elif route == "discovery":
            self._send(fed.handle_discovery())
        elif route == "device_page":
            self._send(fed.handle_device_page(query))
        elif route in ("token", "decide", "revoke", "device"):
            self._send(_Reply(405, {"Allow": "POST", **_NO_STORE}))
        else:
            self._send(_Reply(404, {"Content-Type": "text/plain", **_NO_STORE}, b"Not found\n"))

    def do_POST(self) -> None:
        fed = self.server.federation
        route, _ = self._route()
        body = self._read_body()
        content_type = self.headers.get("Content-Type", "")
        if body is None:
            self._send(_Reply(413, {"Content-Type": "text/plain"}, b"Body too large\n"))
        elif route == "token":
            self._send(fed.handle_token(content_type, body))
        elif route == "revoke":
            self._send(fed.handle_revoke(content_type, body))
        elif route == "device":
            self._send(fed.handle_device_authorization(content_type, body))
        elif route == "device_page":
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            self._send(fed.handle_device_decide(form))
        elif route == "decide":
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            self._send(fed.handle_decide(form))
        elif route in ("authorize", "whoami", "discovery"):
            self._send(_Reply(405, {"Allow": "GET", **_NO_STORE}))
        else:
            self._send(_Reply(404, {"Content-Type": "text/plain", **_NO_STORE}, b"Not found\n"))

    def _read_body(self) -> Optional[bytes]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > _MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> None:
        if reply.reset:
            self._reset()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        try:
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a test's short timeout against a "slow" fault).
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP RST: SO_LINGER on, timeout 0, then close."""
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket; close it first so close() really closes
        # the descriptor now (and sends the RST) instead of at the end of the request.
        self.rfile.close()
        sock.close()

    def log_request(self, code: Union[int, str] = "-", size: Union[int, str] = "-") -> None:
        # The default line has the full request target; authorize queries carry state and
        # the callback carries codes. Log the path only, and only at DEBUG.
        # A request line that did not parse (a TLS handshake sent to this plain-HTTP
        # server, say) leaves no command or path: log what there is.
        command, path = getattr(self, "command", None), getattr(self, "path", "")
        _log.debug("%s %s -> %s", command or "-", urlsplit(path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        # Silenced: http.server's messages may quote the raw request line.
        return
