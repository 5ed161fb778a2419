"""Helpers for tests that mock ``requests`` with the ``responses`` library.

A :class:`~fedbearer.FederationAuth` talks to two places during a login: the user's browser
(which ends on fedbearer's loopback server) and the federation's token endpoint (through
``requests``). Under ``@responses.activate`` the second is mocked by
:func:`add_token_response`; the first is played by :class:`CallbackOpener`, which sends the
callback straight to the loopback server with ``urllib`` (``responses`` does not
intercept it, and there is no federation to visit). :func:`mock_federation` does both and
returns the keyword arguments for ``FederationAuth``; :func:`mock_provider` does the same
for another OpenID provider, discovery document included, for
``FederationAuth.from_issuer``.

``responses`` is imported by the functions that register answers, never at import time:
:class:`CallbackOpener` works without it.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.error import HTTPError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import ProxyHandler, build_opener

from fedbearer import _discovery
from fedbearer._protocol import LOOPBACK_NAMES, federation_for

if TYPE_CHECKING:
    from responses import BaseResponse, RequestsMock

__all__ = [
    "CallbackOpener",
    "add_discovery_document",
    "add_token_error",
    "add_token_response",
    "mock_federation",
    "mock_provider",
    "provider_document",
]

#: The federation endpoint :func:`mock_federation` uses unless told otherwise (``.test`` is
#: reserved, RFC 2606, so a request that escapes the mock cannot reach anyone).
DEFAULT_ENDPOINT = "https://federation.test"
#: The issuer :func:`mock_provider` uses unless told otherwise (``.test``, as above).
DEFAULT_ISSUER = "https://provider.test"


def _mock(rsps: Optional[RequestsMock]) -> RequestsMock:
    if rsps is not None:
        return rsps
    try:
        import responses
    except ImportError:
        raise ImportError(
            "fedbearer.testing's responses helpers need the 'responses' package: "
            "pip install responses"
        ) from None
    return responses.mock  # the mock behind @responses.activate and responses.add


def add_token_response(
    rsps: Optional[RequestsMock],
    federation_endpoint: str,
    *,
    access_token: str = "test-token",  # noqa: S107 - a fake token for tests
    expires_in: Optional[int] = 3600,
    refresh_token: Optional[str] = None,
    match: Sequence[Callable[..., Any]] = (),
) -> BaseResponse:
    """Register one successful answer of ``POST <endpoint>/oauth2/token`` (RFC 6749 §5.1).

    ``rsps`` is a ``responses.RequestsMock`` (``with responses.RequestsMock() as rsps``), or
    ``None`` for the default mock that ``@responses.activate`` turns on. The endpoint is
    normalised as fedbearer normalises it (``auth.example.com`` means
    ``https://auth.example.com``; a path prefix is kept). ``expires_in=None`` leaves the
    field out; ``refresh_token`` is sent only when given. ``match`` is passed to
    ``responses`` (for example ``responses.matchers`` functions). Register it again, or
    use ``OrderedRegistry``, for each token request the test expects: a renewal is one more.

    Returns the registered response, whose ``call_count`` tells how often it answered.
    """
    body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return _mock(rsps).add(
        "POST",
        federation_for(federation_endpoint, allow_insecure_http=True).token_url,
        json=body,
        match=list(match),
    )


def provider_document(issuer: str = DEFAULT_ISSUER, **metadata: Any) -> dict[str, Any]:
    """A provider's discovery document (OpenID Connect Discovery 1.0 §3) that fedbearer
    accepts: ``issuer``, ``<issuer>/authorize``, ``/token`` and ``/revoke``, the code flow
    and S256 PKCE. ``metadata`` adds fields, or removes them with the value ``None``
    (``scopes_supported=["openid", "email"]``, ``revocation_endpoint=None``)."""
    base = issuer.rstrip("/")
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": f"{base}/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }
    for name, value in metadata.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def add_discovery_document(
    rsps: Optional[RequestsMock], issuer: str = DEFAULT_ISSUER, **metadata: Any
) -> BaseResponse:
    """Register ``GET <issuer>/.well-known/openid-configuration`` answering
    :func:`provider_document` (``metadata`` as there).

    fedbearer reads a document once per process and issuer; this also forgets the one it
    remembers for ``issuer``, so that each test reads the document it registered.
    """
    _discovery.forget(issuer)
    return _mock(rsps).add(
        "GET",
        issuer.rstrip("/") + _discovery.OPENID_CONFIGURATION,
        json=provider_document(issuer, **metadata),
    )


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` (RFC 7519 §6): fedbearer reads an ID token from the token
    endpoint without checking a signature (OpenID Connect Core §3.1.3.7)."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def add_token_error(
    rsps: Optional[RequestsMock],
    federation_endpoint: str,
    error: str = "invalid_grant",
    *,
    description: Optional[str] = None,
    status: int = 400,
    match: Sequence[Callable[..., Any]] = (),
) -> BaseResponse:
    """Register one RFC 6749 §5.2 error answer of the token endpoint.

    ``invalid_grant`` (the default) makes fedbearer raise
    :class:`~fedbearer.InvalidGrantError` on a login, or fall back to a login when it was
    a refresh; ``invalid_client`` raises :class:`~fedbearer.InvalidClientError`.
    """
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return _mock(rsps).add(
        "POST",
        federation_for(federation_endpoint, allow_insecure_http=True).token_url,
        json=body,
        status=status,
        match=list(match),
    )


class CallbackOpener:
    """An ``opener(url) -> bool`` that completes the login without any federation.

    Given the authorize URL, it reads ``redirect_uri`` and ``state`` from it and sends
    ``GET <redirect_uri>/?code=<code>&state=<state>`` to fedbearer's loopback server,
    as the federation's final redirect would, from a daemon thread (the loopback server
    answers only once the token exchange is over). With ``error`` it sends
    ``error=<error>`` (and ``error_description``) instead, as a federation that refuses
    does (RFC 6749 §4.1.2.1); ``iss`` adds the RFC 9207 issuer. Only loopback
    ``http`` redirect URIs are followed.

    It uses ``urllib`` through a no-proxy opener, so ``responses`` does not intercept
    it and ``HTTP(S)_PROXY`` cannot send it elsewhere. Calling it returns True at once.

    Results: ``opened`` (every URL it was given), ``last_status`` (the loopback server's
    answer), ``failure`` (an exception instead of printing it), ``done`` (set when
    the last callback is answered), ``join()``.
    """

    def __init__(
        self,
        code: str = "test-code",
        *,
        error: Optional[str] = None,
        error_description: Optional[str] = None,
        iss: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        self.code = code
        self.error = error
        self.error_description = error_description
        self.iss = iss
        self.timeout = timeout
        self.opened: list[str] = []
        self.last_status: Optional[int] = None
        self.failure: Optional[BaseException] = None
        self.done = threading.Event()
        self._opener = build_opener(ProxyHandler({}))

    def __repr__(self) -> str:
        return (
            f"<CallbackOpener opened={len(self.opened)} last_status={self.last_status} "
            f"done={self.done.is_set()}>"
        )

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        self.done.clear()
        thread = threading.Thread(target=self._run, args=(url,), name="CallbackOpener", daemon=True)
        thread.start()
        return True

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the last callback was answered (or failed); True if it was in time."""
        return self.done.wait(timeout)

    def callback_url(self, authorize_url: str) -> str:
        """The callback this opener sends for ``authorize_url`` (holds the code: a test value)."""
        query = dict(parse_qsl(urlsplit(authorize_url).query))
        redirect_uri = query.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES:
            raise ValueError("the authorize URL has no loopback http redirect_uri")
        if self.error is not None:
            params = {"error": self.error}
            if self.error_description is not None:
                params["error_description"] = self.error_description
        else:
            params = {"code": self.code}
        if "state" in query:
            params["state"] = query["state"]
        if self.iss is not None:
            params["iss"] = self.iss
        extra = urlencode(params)
        joined = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", joined, ""))

    def _run(self, url: str) -> None:
        try:
            target = self.callback_url(url)
            try:
                with self._opener.open(target, timeout=self.timeout) as response:
                    response.read()
                    self.last_status = response.status
            except HTTPError as exc:  # a 400 page (refused login) is an answer too
                with exc:
                    self.last_status = exc.code
        except Exception as exc:  # recorded for the test to assert on, never printed
            self.failure = exc
        finally:
            self.done.set()


def mock_provider(
    rsps: Optional[RequestsMock] = None,
    issuer: str = DEFAULT_ISSUER,
    *,
    client_id: str = "test-client",
    scopes: Sequence[str] = ("openid",),
    access_token: str = "test-token",  # noqa: S107 - a fake token for tests
    expires_in: Optional[int] = 3600,
    refresh_token: Optional[str] = None,
    granted_scope: Optional[str] = None,
    account: Optional[dict[str, str]] = None,
    refreshed_tokens: Sequence[str] = (),
    metadata: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Mock a whole OpenID provider and return the keyword arguments of a
    ``FederationAuth.from_issuer`` for it.

    Registers its discovery document (:func:`add_discovery_document`, with ``metadata``),
    the answer of its token endpoint to the login's code exchange, then one more for each
    of ``refreshed_tokens`` (the access tokens refreshes get, in order; ``responses``
    repeats the last answer), and a revocation endpoint that accepts every token
    (``FederationAuth.logout()``; ``metadata={"revocation_endpoint": None}`` for a provider
    without one). Each token answer states ``scope`` (``granted_scope``, else the
    ``scopes`` asked for: a narrower one makes the login warn) and, with ``openid`` among
    the scopes, an ID token naming the account (``sub`` ``test-user`` unless ``account``
    gives claims: ``{"sub": "u-1", "email": "ann@example.com"}``).

    Returns ``issuer``, ``client_id``, ``scopes``, ``opener`` (a fresh
    :class:`CallbackOpener` that also sends the issuer as ``iss``, RFC 9207), ``writer``,
    ``cache=None``, ``interactive=True`` and ``token_from_env=False``, as
    :func:`mock_federation` does::

        @responses.activate
        def test_client():
            auth = FederationAuth.from_issuer(**mock_provider(access_token="tok"))
    """
    mock = _mock(rsps)
    add_discovery_document(mock, issuer, **(metadata or {}))
    fields = provider_document(issuer, **(metadata or {}))
    claims = {"iss": issuer, "aud": client_id, "sub": "test-user", **(account or {})}

    def answer(token: str, refresh: Optional[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "scope": granted_scope if granted_scope is not None else " ".join(scopes),
        }
        if expires_in is not None:
            body["expires_in"] = expires_in
        if refresh is not None:
            body["refresh_token"] = refresh
        if "openid" in scopes:
            body["id_token"] = _unsigned_jwt(claims)
        return body

    mock.add("POST", fields["token_endpoint"], json=answer(access_token, refresh_token))
    for token in refreshed_tokens:
        mock.add("POST", fields["token_endpoint"], json=answer(token, None))
    if fields.get("revocation_endpoint"):
        mock.add("POST", fields["revocation_endpoint"], body="")
    return {
        "issuer": issuer,
        "client_id": client_id,
        "scopes": tuple(scopes),
        "opener": CallbackOpener(iss=issuer),
        "writer": io.StringIO(),
        "cache": None,
        "interactive": True,
        "token_from_env": False,
    }


def mock_federation(
    rsps: Optional[RequestsMock] = None,
    federation_endpoint: str = DEFAULT_ENDPOINT,
    *,
    client_id: str = "test-client",
    federation_id: str = "test-federation",
    access_token: str = "test-token",  # noqa: S107 - a fake token for tests
    expires_in: Optional[int] = 3600,
    refresh_token: Optional[str] = None,
) -> dict[str, Any]:
    """Mock one login and return the keyword arguments of a ``FederationAuth`` for it.

    Registers one token answer (:func:`add_token_response`) and returns ``client_id``,
    ``federation_endpoint``, ``federation_id``, ``opener`` (a fresh :class:`CallbackOpener`),
    ``writer`` (an ``io.StringIO`` that collects the login's messages), ``cache=None`` (no
    token file is read or written), ``interactive=True`` (so ``FEDBEARER_INTERACTIVE=0``
    in a CI environment does not turn the mocked login off) and ``token_from_env=False``
    (so a ``FEDBEARER_TOKEN`` or ``NEBIUS_IAM_TOKEN`` set in CI does not replace it)::

        @responses.activate
        def test_client():
            auth = FederationAuth(**mock_federation(access_token="tok"))
    """
    add_token_response(
        rsps,
        federation_endpoint,
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh_token,
    )
    return {
        "client_id": client_id,
        "federation_endpoint": federation_endpoint,
        "federation_id": federation_id,
        "opener": CallbackOpener(),
        "writer": io.StringIO(),
        "cache": None,
        "interactive": True,
        "token_from_env": False,
    }
