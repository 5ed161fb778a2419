"""The federation protocol as pure functions: no sockets, no files, no clock reads.

Everything here takes values and returns values, so it is unit-tested directly; the
loopback server, the browser launcher and the HTTP exchange are thin layers around it.

Specs: RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 8252 (native apps, loopback redirect),
RFC 9207 (``iss`` in authorization responses), RFC 9700 (security BCP).

oauthlib does the pieces it does well (the S256 challenge, the token request bodies, the
query of the authorization URL); the token response is parsed here (see
:func:`parse_token_response`). It is imported by the functions that use it: importing any
of ``oauthlib.oauth2`` loads every grant type and endpoint it has, which is more than a
tenth of a cached ``fedbearer token`` process (``benchmarks/token_command.py``), and only a
login or a refresh needs it.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import ipaddress
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._exceptions import (
    ConfigurationError,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenResponseError,
    RevocationError,
    TokenDataError,
    TokenEndpointError,
)
from ._token import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    Account,
    Token,
    jwt_claims,
    utc_from_timestamp,
)

AUTHORIZE_PATH = "/oauth2/authorize"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a password

#: Query/form keys whose values are secrets; :func:`redact_url` hides them.
SECRET_PARAMS = frozenset(
    {"state", "code", "code_verifier", "access_token", "refresh_token", "id_token"}
)

_REDACTED = "REDACTED"


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Federation:
    """Where a federation lives: the normalised endpoint and the URLs derived from it.

    For a Nebius federation every URL derives from the endpoint (:func:`federation_for`);
    another OpenID provider names them itself, in its discovery document or as given
    (:func:`provider_federation`).
    """

    #: What the user is told they log in to: the federation endpoint, or the issuer.
    endpoint: str
    authorize_url: str
    token_url: str
    #: Values accepted for ``iss`` in the callback (RFC 9207): the endpoint and its origin,
    #: or exactly the provider's issuer (empty when none is known: any ``iss`` is refused).
    issuers: frozenset[str]
    #: The RFC 7009 revocation endpoint, ``None`` when the provider has none.
    revocation_url: Optional[str] = None
    #: The provider's issuer identifier, when known (discovery, or given).
    issuer: Optional[str] = None
    #: The provider declared ``authorization_response_iss_parameter_supported``: a callback
    #: without ``iss`` is then refused (RFC 9207 §2.4).
    iss_required: bool = False
    #: The RFC 8628 device authorization endpoint, ``None`` when the provider has none (a
    #: Nebius federation has none).
    device_authorization_url: Optional[str] = None
    #: The scopes the provider's discovery document lists (``scopes_supported``), ``None``
    #: when it lists none (then any scope may be asked for).
    scopes_supported: Optional[frozenset[str]] = None


#: The host names of a loopback redirect URI (RFC 8252 §7.3 literals, and §8.3's
#: ``localhost``): what fedbearer's callback server answers to and what an authorization
#: server accepts as loopback. Anything in 127.0.0.0/8 is loopback (:func:`is_loopback_host`)
#: but only these name a redirect.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a host name or IP literal, brackets allowed) names this machine:
    ``localhost``, ``127.0.0.0/8`` or ``::1`` (RFC 8252 §8.3, RFC 6761 §6.3)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_endpoint(federation_endpoint: str, *, allow_insecure_http: bool = False) -> str:
    """Normalise a federation endpoint the way the reference does, keeping a path prefix.

    ``auth.example.com`` and ``auth.example.com:443`` get ``https://``. An explicit
    ``http://`` is kept for a federation on this machine (loopback); on any other host it is
    a :class:`~fedbearer.ConfigurationError` unless ``allow_insecure_http`` is set, since the
    authorization code and the tokens would cross the network unencrypted (RFC 9700 §2.6).
    Unlike the reference, a path prefix such as ``https://example.com/fed`` is kept
    (``/oauth2/...`` is appended to it). A trailing slash is dropped. Queries, fragments and
    user info cannot be part of an endpoint.
    """
    if not isinstance(federation_endpoint, str) or not federation_endpoint.strip():
        raise ConfigurationError(
            "federation_endpoint is empty; pass the federation's address, "
            "for example 'auth.example.com'"
        )
    raw = federation_endpoint.strip()
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port  # validates the port number
    except ValueError as exc:
        raise ConfigurationError(
            f"federation_endpoint {federation_endpoint!r} is not a valid URL: {exc}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"federation_endpoint must use https:// (or http:// for a local federation), "
            f"not {parts.scheme}://"
        )
    if not parts.hostname:
        raise ConfigurationError(f"federation_endpoint {federation_endpoint!r} has no host name")
    if scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise _plain_http_refused("federation_endpoint", federation_endpoint.strip())
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("federation_endpoint must not contain user credentials")
    if parts.query or parts.fragment:
        raise ConfigurationError(
            "federation_endpoint must not contain a query or fragment; pass only "
            "scheme, host, port and an optional path prefix"
        )
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def _plain_http_refused(what: str, url: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what} {url!r} uses plain http:// on another "
        "machine: the login code and the tokens would cross the network unencrypted. Use "
        "https://, or, only on a network you trust, pass allow_insecure_http=True "
        "(--allow-insecure-http)"
    )


def check_url(
    url: object,
    what: str,
    *,
    allow_insecure_http: bool = False,
    query: bool = True,
    reserved: frozenset[str] = frozenset(),
) -> str:
    """``url`` when it can be a provider's endpoint or issuer; it is kept exactly as given.

    An absolute ``https://`` URL with a host; ``http://`` only on this machine (loopback)
    or with ``allow_insecure_http`` (RFC 9700 §2.6, as for a federation endpoint). No user
    info, no fragment (RFC 6749 §3.1), no white space or control characters; a query only
    when ``query`` (an endpoint may have one, RFC 6749 §3.1; an issuer may not, RFC 8414
    §2), and none of the ``reserved`` parameter names in it. Raises
    :class:`~fedbearer.ConfigurationError` naming ``what``.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{what} must be a non-empty URL string")
    if not url.isascii() or not url.isprintable() or any(ch.isspace() for ch in url):
        raise ConfigurationError(
            f"{what} must be a URL without white space, control or non-ASCII characters"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port number
    except ValueError as exc:
        raise ConfigurationError(f"{what} {url[:200]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} {url[:200]!r} must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise _plain_http_refused(what, url[:200])
    if "@" in parts.netloc:
        raise ConfigurationError(f"{what} must not contain user credentials")
    if parts.fragment or "#" in url or (parts.query and not query):
        allowed = "a fragment" if query else "a query or fragment"
        raise ConfigurationError(f"{what} {url[:200]!r} must not contain {allowed}")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name in reserved:
            # Ours would be appended after it: two redirect_uri (or state, ...) in one
            # request, and which one counts is up to the server (RFC 6749 §3.1 forbids it).
            raise ConfigurationError(
                f"{what} {url[:200]!r} already has {name!r} in its query, which fedbearer "
                f"sets itself; remove it from the URL (extra parameters go in params=, "
                f"--param)"
            )
    return url


def provider_federation(
    *,
    authorization_endpoint: object,
    token_endpoint: object,
    revocation_endpoint: object = None,
    issuer: object = None,
    iss_required: bool = False,
    allow_insecure_http: bool = False,
    device_authorization_endpoint: object = None,
) -> Federation:
    """The endpoints of an OpenID provider other than a Nebius federation, checked.

    Each URL passes :func:`check_url` and is used exactly as given; the authorization
    endpoint's query may not hold a parameter fedbearer sets itself (:data:`RESERVED_PARAMS`).
    With an ``issuer``,
    the callback's ``iss`` must equal it (RFC 9207 §2.4: simple string comparison); without
    one, a callback that carries ``iss`` cannot be checked and is refused.
    """
    authorize_url = check_url(
        authorization_endpoint,
        "authorization_endpoint",
        allow_insecure_http=allow_insecure_http,
        reserved=RESERVED_PARAMS,
    )
    token_url = check_url(token_endpoint, "token_endpoint", allow_insecure_http=allow_insecure_http)
    revocation_url = (
        None
        if revocation_endpoint is None
        else check_url(
            revocation_endpoint, "revocation_endpoint", allow_insecure_http=allow_insecure_http
        )
    )
    device_url = (
        None
        if device_authorization_endpoint is None
        else check_url(
            device_authorization_endpoint,
            "device_authorization_endpoint",
            allow_insecure_http=allow_insecure_http,
        )
    )
    checked_issuer = (
        None
        if issuer is None
        else check_url(issuer, "issuer", allow_insecure_http=allow_insecure_http, query=False)
    )
    return Federation(
        endpoint=checked_issuer or authorize_url.split("?", 1)[0],
        authorize_url=authorize_url,
        token_url=token_url,
        issuers=frozenset() if checked_issuer is None else frozenset({checked_issuer}),
        revocation_url=revocation_url,
        issuer=checked_issuer,
        iss_required=iss_required,
        device_authorization_url=device_url,
    )


# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

#: Authorization request parameters fedbearer sets itself, which ``params`` may not name:
#: the flow's own (RFC 6749 §4.1.1, RFC 7636 §4.3), and those that would move the answer
#: away from the loopback query (``response_mode``) or replace the whole request
#: (``request``, ``request_uri``: RFC 9101).
RESERVED_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "scope",
        "state",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "response_mode",
        "request",
        "request_uri",
    }
)


def scope_tokens(scopes: object) -> tuple[str, ...]:
    """The scopes to request, in order, each once (RFC 6749 §3.3).

    A string is split on white space (``"openid profile"``); otherwise an iterable of
    strings. Each must be a non-empty RFC 6749 scope-token; at least one is needed.
    """
    if isinstance(scopes, str):
        items: list[object] = list(scopes.split())
    else:
        items = _items(scopes, "scopes must be a string or a sequence of strings")
    for scope in items:
        if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
            # The type first: str() of a parsed value could be any size.
            shown = repr(scope[:100]) if isinstance(scope, str) else f"a {type(scope).__name__}"
            raise ConfigurationError(
                f"scope {shown} is not an RFC 6749 scope token (printable ASCII, "
                "no space, no '\"' or '\\')"
            )
    if not items:
        raise ConfigurationError("scopes is empty; request at least one, such as 'openid'")
    return tuple(dict.fromkeys(items))  # type: ignore[arg-type]


def _items(value: object, expected: str) -> list[object]:
    """``value`` as a list, or a :class:`~fedbearer.ConfigurationError` saying ``expected``."""
    try:
        items: list[object] = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigurationError(f"{expected}, not {type(value).__name__}") from None
    return items


def authorization_params(params: object) -> tuple[tuple[str, str], ...]:
    """Extra authorization request parameters as ``(name, value)`` pairs, in order.

    ``None``, a mapping or an iterable of pairs. Names are printable, non-empty, not
    repeated (RFC 6749 §3.1) and not one of :data:`RESERVED_PARAMS`; values are printable
    strings.
    """
    if params is None:
        return ()
    expected = "params must be a mapping or (name, value) pairs"
    if isinstance(params, (str, bytes)):
        raise ConfigurationError(f"{expected}, not a string")
    pairs = list(params.items()) if isinstance(params, Mapping) else _items(params, expected)
    result: list[tuple[str, str]] = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigurationError("params must be a mapping or (name, value) pairs")
        name, value = pair
        if not isinstance(name, str) or not name or not name.isprintable():
            shown = repr(name)[:100] if isinstance(name, str) else type(name).__name__
            raise ConfigurationError(f"params name {shown} must be a non-empty printable string")
        if name in RESERVED_PARAMS:
            raise ConfigurationError(
                f"params may not set {name!r}: fedbearer sets it (scopes go in scopes=)"
            )
        if any(name == seen for seen, _ in result):
            raise ConfigurationError(f"params names {name[:100]!r} twice (RFC 6749 §3.1)")
        if not isinstance(value, str) or not value.isprintable():
            raise ConfigurationError(f"params value of {name[:100]!r} must be a printable string")
        result.append((name, value))
    return tuple(result)


def federation_for(federation_endpoint: str, *, allow_insecure_http: bool = False) -> Federation:
    """Derive the authorize/token URLs and accepted issuers from an endpoint."""
    endpoint = normalize_endpoint(federation_endpoint, allow_insecure_http=allow_insecure_http)
    parts = urlsplit(endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    issuers = {endpoint, endpoint + "/", origin, origin + "/"}
    if parts.port == default_port:  # https://h:443 and https://h name one issuer
        bare = f"{parts.scheme}://{parts.hostname}"
        issuers |= {bare + parts.path, bare + parts.path + "/", bare, bare + "/"}
    return Federation(
        endpoint=endpoint,
        authorize_url=endpoint + AUTHORIZE_PATH,
        token_url=endpoint + TOKEN_PATH,
        issuers=frozenset(issuers),
    )


# ------------------------------------------------------------------------- PKCE, state


def new_state() -> str:
    """32 random bytes, base64url without padding (43 characters), as the reference does."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """S256 challenge for ``verifier`` (RFC 7636 §4.2). Never *plain*.

    oauthlib defaults to ``plain``; the method is always passed explicitly.
    """
    from oauthlib.oauth2 import Client

    challenge = Client("pkce").create_code_challenge(verifier, "S256")
    assert isinstance(challenge, str)
    return challenge


def new_pkce() -> tuple[str, str]:
    """A fresh ``(verifier, S256 challenge)`` pair; the verifier has 43 characters."""
    verifier = secrets.token_urlsafe(32)
    return verifier, code_challenge(verifier)


def build_authorize_url(
    federation: Federation,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    challenge: str,
    federation_id: str,
    scopes: Sequence[str] = ("openid",),
    params: Sequence[tuple[str, str]] = (),
) -> str:
    """The authorization request URL (RFC 6749 §4.1.1 + RFC 7636 §4.3).

    Exactly the reference's parameters, in its order; ``federation-id`` is omitted when the id
    is empty. Another provider's ``scopes`` take the place of ``openid``, and its extra
    ``params`` (already checked: :func:`authorization_params`) follow, in order. oauthlib's
    ``prepare_grant_uri`` refuses ``http://`` endpoints unless a process-wide switch is set,
    so the query is assembled with its transport-neutral helper, which keeps a query the
    endpoint has (RFC 6749 §3.1).
    """
    from oauthlib.common import add_params_to_uri

    pairs = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("scope", " ".join(scopes)),
        ("state", state),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    if federation_id:
        pairs.append(("federation-id", federation_id))
    pairs.extend(params)
    url = add_params_to_uri(federation.authorize_url, pairs)
    assert isinstance(url, str)
    return url


def redact_url(url: str) -> str:
    """``url`` with the values of :data:`SECRET_PARAMS` replaced, for logs."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [
        (k, _REDACTED if k in SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="/:")))


def redirect_uri_for(host: str, port: int) -> str:
    """``http://127.0.0.1:<port>`` (or ``http://[::1]:<port>``): no path, no trailing slash."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# --------------------------------------------------------------------------- callback


class CallbackKind(enum.Enum):
    """How a request to the loopback redirect URI is to be treated."""

    NO_STATE = "no_state"  # a stray: prefetch, scanner, a user typing the address
    WRONG_STATE = "wrong_state"  # not our login (or forged): keep waiting
    MALFORMED = "malformed"  # our state, but neither code nor error, or repeated keys
    WRONG_ISSUER = "wrong_issuer"  # our state, but iss names another server (mix-up)
    CODE = "code"
    ERROR = "error"
    #: Not a request: the browser could not be launched and the login switches to the
    #: device code (offered to the server by the login itself).
    NO_BROWSER = "no_browser"


@dataclass(frozen=True)
class Callback:
    """A classified callback. ``code`` is a secret: it is left out of the repr."""

    kind: CallbackKind
    code: Optional[str] = field(default=None, repr=False)
    error: Optional[str] = None
    error_description: Optional[str] = None
    error_uri: Optional[str] = None
    #: The ``iss`` it carried (already checked against the accepted issuers), or ``None``.
    iss: Optional[str] = None

    @property
    def decisive(self) -> bool:
        """True when the callback ends the login (our state, with a code or an error)."""
        return self.kind in (
            CallbackKind.CODE,
            CallbackKind.ERROR,
            CallbackKind.WRONG_ISSUER,
            CallbackKind.NO_BROWSER,
        )


def states_equal(received: str, expected: str) -> bool:
    """Constant-time comparison of the state (RFC 6749 §10.12, RFC 9700 §4.7)."""
    return hmac.compare_digest(received.encode("utf-8", "replace"), expected.encode("utf-8"))


def parse_callback(query: str, *, state: str, issuers: frozenset[str]) -> Callback:
    """Classify the query string of a request to the redirect URI (RFC 6749 §4.1.2).

    Only a request carrying our ``state`` can end the login; anything else is a stray and the
    caller keeps waiting. Parameters repeated in the query are malformed (RFC 6749 §3.1). An
    ``iss`` that does not name this federation is rejected (RFC 9207 §2.4).
    """
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    params: dict[str, str] = {}
    repeated = False
    for key, value in pairs:
        if key in params:
            repeated = True
        params[key] = value
    received = params.get("state")
    if not received:
        return Callback(CallbackKind.NO_STATE)
    if not states_equal(received, state):
        return Callback(CallbackKind.WRONG_STATE)
    if repeated:
        return Callback(CallbackKind.MALFORMED)
    iss = params.get("iss")
    if iss is not None and iss not in issuers:
        return Callback(CallbackKind.WRONG_ISSUER)
    if params.get("error"):
        # The provider may echo what it received or made in this leg into its text: the
        # state, and a code sent along with the error. The verifier and a client secret
        # never reach the authorization endpoint, so they cannot be in it.
        secrets_ = (received, state, params.get("code"))
        return Callback(
            CallbackKind.ERROR,
            error=_clean_text(params["error"], 100, secrets_) or "unknown_error",
            error_description=_clean_text(params.get("error_description"), 300, secrets_),
            error_uri=_clean_text(params.get("error_uri"), 300, secrets_),
            iss=iss,
        )
    if params.get("code"):
        return Callback(CallbackKind.CODE, code=params["code"], iss=iss)
    return Callback(CallbackKind.MALFORMED)


def _clean_text(
    value: Optional[str], limit: int, secrets_: Sequence[Optional[str]] = ()
) -> Optional[str]:
    """Printable, bounded text from the federation, for messages and pages.

    ``secrets_`` are scrubbed out (:func:`scrub`) *before* the text is cut to ``limit``:
    cut first, a secret echoed across the cut would survive in part.
    """
    if value is None:
        return None
    value = scrub(value, secrets_)
    text = "".join(ch if ch.isprintable() else " " for ch in value).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text or None


# ------------------------------------------------------------------ pre-flight check

# RFC 6749 §4.1.2.1 errors a federation redirects back with, and the setting that is wrong.
_AUTHORIZE_ERROR_SETTINGS = {
    "unauthorized_client": "client_id",
    "invalid_client": "client_id",
    "invalid_scope": "scope",
    "unsupported_response_type": "federation_endpoint",
    "invalid_request": "federation_id",
}


def authorize_answer_problem(
    status: int,
    location: str,
    body: bytes,
    *,
    redirect_uri: str,
    secrets_: Sequence[Optional[str]] = (),
) -> Optional[tuple[str, str]]:
    """What an answer to the authorization request says is misconfigured, or ``None``.

    A federation that accepts the request answers with its login page (2xx) or a redirect
    to it (3xx). A redirect back to ``redirect_uri`` with an ``error=`` that only a setting
    causes (RFC 6749 §4.1.2.1: ``invalid_client``, ``invalid_scope``, ...) names the
    problem itself. A 404 or 405 means there is no authorization endpoint at
    that path; another 4xx that the request (client id, redirect URI, federation id) was
    refused. 5xx says nothing about the settings. Returns ``(setting, reason)``: the
    setting to check and what the federation said, cleaned, scrubbed of ``secrets_`` (the
    request's state, and the state and code the redirect carries) and bounded.
    """
    if 300 <= status < 400:
        parts = urlsplit(location)
        if not location.startswith(redirect_uri) or not parts.query:
            return None
        params = dict(parse_qsl(parts.query))
        secrets_ = (*secrets_, params.get("state"), params.get("code"))
        error = _clean_text(params.get("error"), 100, secrets_)
        if error not in _AUTHORIZE_ERROR_SETTINGS:
            # access_denied, login_required, server_error, ...: about the user, a policy or
            # the moment, not the settings; the login itself will show it.
            return None
        description = _clean_text(params.get("error_description"), 200, secrets_)
        reason = error + (f": {description}" if description else "")
        return _AUTHORIZE_ERROR_SETTINGS[error], reason
    if status < 400 or status >= 500:
        return None
    if status in (404, 405):
        return "federation_endpoint", f"HTTP {status}: no authorization endpoint there"
    data = _json_object(body)
    error = (
        _clean_text(data.get("error"), 100, secrets_)
        if data and isinstance(data.get("error"), str)
        else None
    )
    description = (
        _clean_text(data.get("error_description"), 200, secrets_)
        if data and isinstance(data.get("error_description"), str)
        else None
    )
    reason = (
        f"HTTP {status}"
        + (f", {error}" if error else "")
        + (f": {description}" if description else "")
    )
    return _AUTHORIZE_ERROR_SETTINGS.get(error or "", "client_id"), reason


# ----------------------------------------------------------------------- token request


def authorization_code_body(
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    verifier: str,
    client_secret: Optional[str] = None,
) -> str:
    """Form body of the code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5). Public client; a
    ``client_secret`` only for a provider that gives native apps one it does not treat as
    confidential and still asks for (Google), sent in the body (RFC 6749 §2.3.1)."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        client_id=client_id,
        code_verifier=verifier,
        client_secret=client_secret,
    )
    assert isinstance(body, str)
    return body


def refresh_token_body(
    *, refresh_token: str, client_id: str, client_secret: Optional[str] = None
) -> str:
    """Form body of a refresh (RFC 6749 §6). No scope: the original scope is kept."""
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    body = prepare_token_request(
        "refresh_token",
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
    )
    assert isinstance(body, str)
    return body


# RFC 6749 §5.2 error codes mapped explicitly (oauthlib's reflection-based lookup maps
# some codes to the wrong class), each with what the user should do about it.
_TOKEN_ERRORS: Mapping[str, tuple[type[TokenEndpointError], str]] = {
    "invalid_grant": (
        InvalidGrantError,
        "the authorization code or refresh token was rejected (expired, used or revoked); "
        "log in again",
    ),
    "invalid_client": (
        InvalidClientError,
        "the federation does not accept this client_id; check it",
    ),
    "unauthorized_client": (
        InvalidClientError,
        "this client_id may not use the authorization code grant; ask the federation's admin",
    ),
    "invalid_request": (
        TokenEndpointError,
        "the federation rejected the token request as malformed; check the endpoint",
    ),
    "unsupported_grant_type": (
        TokenEndpointError,
        "the federation does not support this grant type; check the endpoint",
    ),
    "invalid_scope": (
        TokenEndpointError,
        "the federation rejected the requested scope",
    ),
}

#: Largest token response read; a real one is a few kilobytes.
MAX_TOKEN_RESPONSE_BYTES = 1 << 20


def scrub(text: str, secrets_: Sequence[Optional[str]]) -> str:
    """``text`` with every occurrence of the given secret values replaced.

    Values shorter than 4 characters (and empty or ``None`` ones) are left alone: replacing
    them would garble the text and hide nothing worth hiding. Longest first, so a secret
    that contains another is replaced whole.
    """
    for value in sorted((v for v in secrets_ if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    return text


def token_error(
    status: int, body: bytes, *, secrets_: Sequence[Optional[str]] = ()
) -> TokenEndpointError:
    """The typed error for a failed token response (RFC 6749 §5.2).

    Only the error code, a bounded description with ``secrets_`` scrubbed out, and the
    status make it into the message; the body itself never does. ``error_uri`` is
    scrubbed like the description: a server may echo the request into it too.
    """
    fields = _error_fields(body, secrets_)
    if fields is None:
        kind = "an error page" if body.lstrip()[:1] == b"<" else "no OAuth error code"
        return TokenEndpointError(
            f"token endpoint failed with HTTP {status} ({kind}); "
            + (
                "the federation is having trouble, try again later"
                if status >= 500
                else "check the federation endpoint"
            ),
            status=status,
        )
    code, desc, uri = fields
    cls, hint = _TOKEN_ERRORS.get(code, (TokenEndpointError, "check the federation settings"))
    detail = f"{code}: {desc}" if desc else code
    return cls(
        f"token endpoint refused the request (HTTP {status}, {detail}); {hint}",
        status=status,
        error=code,
        error_description=desc,
        error_uri=uri,
    )


def _error_fields(
    body: bytes, secrets_: Sequence[Optional[str]]
) -> Optional[tuple[str, Optional[str], Optional[str]]]:
    """``(error, description, uri)`` of an RFC 6749 §5.2 error body, cleaned, bounded and
    scrubbed of ``secrets_`` (a server may echo the request); ``None`` when it has none."""
    data = _json_object(body)
    error = data.get("error") if data is not None else None
    if data is None or not isinstance(error, str) or not error:
        return None
    code = _clean_text(error, 100, secrets_) or "unknown_error"
    raw_desc = data.get("error_description")
    desc = _clean_text(raw_desc if isinstance(raw_desc, str) else None, 300, secrets_)
    raw_uri = data.get("error_uri")
    uri = _clean_text(raw_uri if isinstance(raw_uri, str) else None, 300, secrets_)
    return code, desc, uri


# ------------------------------------------------------------------------ revocation

#: ``token_type_hint`` values (RFC 7009 §2.1), in the order a logout revokes them: the
#: refresh token first, since its revocation SHOULD end the access tokens of its grant too.
REVOCATION_ORDER = ("refresh_token", "access_token")


def revocation_body(
    *, token: str, token_type_hint: str, client_id: str, client_secret: Optional[str] = None
) -> str:
    """Form body of a revocation request (RFC 7009 §2.1), identifying a public client by
    ``client_id`` (RFC 6749 §3.2.1), with the ``client_secret`` when there is one."""
    pairs = [("token", token), ("token_type_hint", token_type_hint), ("client_id", client_id)]
    if client_secret is not None:
        pairs.append(("client_secret", client_secret))
    return urlencode(pairs)


def parse_revocation_response(
    status: int, body: bytes, *, token_type_hint: str, secrets_: Sequence[Optional[str]] = ()
) -> bool:
    """Whether the token is revoked: True on 200 (RFC 7009 §2.2: also for a token the
    server no longer knows), False on ``unsupported_token_type`` (the server cannot revoke
    that kind of token, §2.2.1). Anything else is a :class:`~fedbearer.RevocationError`
    carrying the status and error code, never the body.
    """
    if status == 200:
        return True
    fields = _error_fields(body, secrets_)
    if fields is not None and fields[0] == "unsupported_token_type":
        return False
    what = token_type_hint.replace("_", " ")
    if fields is None:
        retry = "try again later" if status >= 500 else "check the revocation endpoint"
        raise RevocationError(
            f"revocation endpoint failed to revoke the {what} with HTTP {status}; {retry}",
            status=status,
        )
    code, desc, uri = fields
    detail = f"{code}: {desc}" if desc else code
    raise RevocationError(
        f"revocation endpoint refused to revoke the {what} (HTTP {status}, {detail})",
        status=status,
        error=code,
        error_description=desc,
        error_uri=uri,
    )


def _json_object(body: bytes) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parse_token_response(
    status: int,
    body: bytes,
    *,
    requested_at: float,
    secrets_: Sequence[Optional[str]] = (),
    client_id: Optional[str] = None,
    issuer: Optional[str] = None,
) -> Token:
    """Turn a token endpoint answer into a :class:`~fedbearer.Token` (RFC 6749 §5.1).

    The JSON is parsed once and each field checked where it enters; anything unusable is an
    :class:`~fedbearer.InvalidTokenResponseError` that says which rule failed and never
    quotes a value. oauthlib's own parser is not used for this: it re-reads the JSON, turns
    ``expires_in`` into an ``int`` (``OverflowError`` on ``1e400``) and reports a changed
    scope by raising a ``Warning``.

    Expiry is measured from ``requested_at`` (when the request was sent), which can only
    make the token expire early, never late. Without ``expires_in`` the JWT ``exp`` is used
    when the token is a JWT, else :data:`~fedbearer.DEFAULT_TOKEN_LIFETIME`; either way the
    lifetime is clamped to :data:`~fedbearer._token.MAX_TOKEN_LIFETIME`.

    ``scope`` (RFC 6749 §5.1: what was granted) is kept when it is a string of scope
    tokens. An ``id_token`` gives the token's :class:`~fedbearer.Account` when its ``aud``
    holds ``client_id`` and its ``iss`` is ``issuer`` (when known): it came straight from
    the token endpoint over TLS, which OpenID Connect Core §3.1.3.7 accepts in place of a
    signature check. An unusable scope or ID token only leaves them unknown.
    """
    if status != 200:
        raise token_error(status, body, secrets_=secrets_)
    data = _json_object(body)
    if data is None:
        raise InvalidTokenResponseError(
            "token endpoint answered 200 but not with a JSON object; "
            "check that the federation endpoint is right",
            status=status,
        )
    if "error" in data:
        raise token_error(status, body, secrets_=secrets_)

    def invalid(what: str) -> InvalidTokenResponseError:
        return InvalidTokenResponseError(
            f"token endpoint answered 200 {what}; the federation is misbehaving",
            status=status,
        )

    if "access_token" not in data:
        raise invalid("with no access_token")
    token_type = data.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() != "bearer"
    ):
        raise InvalidTokenResponseError(
            "token endpoint issued a token that is not a Bearer token (RFC 6750)",
            status=status,
        )
    lifetime = _lifetime(data.get("expires_in"))
    if lifetime is None:
        raise invalid("with an expires_in that is not a positive number of seconds")
    access = data["access_token"]
    if lifetime is _ABSENT:
        claims = jwt_claims(access) if isinstance(access, str) else None
        exp = None if claims is None else _finite_number(claims.get("exp"))
        expires_at = requested_at + DEFAULT_TOKEN_LIFETIME if exp is None else exp
    else:
        expires_at = requested_at + lifetime
    # Clamped both ways into real dates: a JWT may claim any exp, a clock any time.
    expires_at = max(0.0, min(expires_at, requested_at + MAX_TOKEN_LIFETIME))
    try:
        return Token(
            access,
            utc_from_timestamp(expires_at),
            refresh_token=data.get("refresh_token"),
            issued_at=utc_from_timestamp(requested_at),
            scope=granted_scope(data.get("scope")),
            account=id_token_account(data.get("id_token"), client_id=client_id, issuer=issuer),
        )
    except TokenDataError as exc:  # says which rule failed, never the value
        raise invalid(f"but {exc}") from None


def granted_scope(value: object) -> Optional[tuple[str, ...]]:
    """The scopes of a token response's ``scope`` (RFC 6749 §3.3, §5.1), or ``None`` when
    it has none or it is not a string of scope tokens."""
    if not isinstance(value, str) or len(value) > 4096:
        return None
    scopes = tuple(dict.fromkeys(s for s in value.split(" ") if s))
    if not scopes or not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        return None
    return scopes


def id_token_account(
    id_token: object, *, client_id: Optional[str], issuer: Optional[str]
) -> Optional[Account]:
    """Who an ID token names, when it is meant for ``client_id`` and issued by ``issuer``
    (OpenID Connect Core §3.1.3.7 items 2-3: ``iss`` matches, ``aud`` contains the client
    id); ``None`` otherwise. Its signature is not checked (§3.1.3.7 item 6 allows that for
    an ID token received directly from the token endpoint over TLS), so the account is
    for display only."""
    if client_id is None or not isinstance(id_token, str) or len(id_token) > 65536:
        return None
    claims = jwt_claims(id_token)
    if claims is None:
        return None
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        return None
    if issuer is not None and claims.get("iss") != issuer:
        return None
    return Account.from_claims(claims)


def expired_on_arrival(token: Token, received_at: float) -> bool:
    """Whether ``token`` was already due for renewal when it arrived at ``received_at``:
    expired, or with more than half its lifetime (from ``issued_at``, when the request was
    sent) gone on the way. The next request would renew it again, and a renewal may be an
    interactive login: one login per request. Its expiry then says nothing usable about
    when the token ends (a clock is wrong, here or at the provider, or the provider's
    ``expires_in`` is), and the caller treats it as a token that states none
    (:func:`without_expiry`)."""
    expires_at = token.expires_at
    if expires_at is None:
        return False
    start = expires_at if token.issued_at is None else token.issued_at.timestamp()
    return (start + expires_at) / 2 <= received_at


def without_expiry(token: Token) -> Token:
    """``token`` stating no expiry: used until the API refuses it (a 401 renews it)."""
    return dataclasses.replace(token, expiration=None)


# parse_token_response's marker for "no expires_in": None already means "unusable".
_ABSENT: Any = object()


def _finite_number(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)  # an int of 400 digits overflows here
    except OverflowError:
        return math.inf
    return number if not math.isnan(number) else None


def _lifetime(expires_in: object) -> Any:
    """``expires_in`` as seconds clamped to ``MAX_TOKEN_LIFETIME``; ``_ABSENT``; or ``None``.

    RFC 6749 §5.1 makes it a JSON number; a string of digits is accepted too, as some
    servers send one. Zero, negative, NaN, infinity and non-numbers are unusable.
    """
    if expires_in is None:
        return _ABSENT
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in[:30])  # 30 digits is already far beyond the clamp
    number = _finite_number(expires_in)
    if number is None or number <= 0 or number == math.inf:
        return None
    return min(number, MAX_TOKEN_LIFETIME)
