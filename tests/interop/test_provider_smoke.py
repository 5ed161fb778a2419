"""The interop infrastructure works, without fedbearer's login code.

A hand-written authorization code + PKCE S256 client (hashlib, secrets, http.server, requests)
runs against the independent provider, with the real headless Chromium playing the user.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import time
import webbrowser
from collections.abc import Iterator
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from .chromium import BrowserDriver, deny, do_nothing, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop]

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CallbackServer:
    """A loopback redirect target on 127.0.0.1, port chosen by the OS: records every request
    and answers 200 (or 400 for ``error=``) with a tiny page."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.got_callback = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                outer.requests.append({"path": parts.path, "query": query})
                failed = "error" in query
                body = (
                    f"<html><body><h1>{'Login failed' if failed else 'Login complete'}"
                    "</h1><p>callback received</p></body></html>"
                ).encode()
                self.send_response(400 if failed else 200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Callback", "smoke")
                self.end_headers()
                self.wfile.write(body)
                if parts.path == "/" and "state" in query:
                    outer.got_callback.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}"
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def callback(self, timeout: float = 10.0) -> dict[str, str]:
        assert self.got_callback.wait(timeout), f"no callback; got {self.requests!r}"
        return next(r["query"] for r in self.requests if r["path"] == "/" and "state" in r["query"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def callback_server() -> Iterator[CallbackServer]:
    server = CallbackServer()
    yield server
    server.close()


class Flow:
    """One authorization request's secrets, built as Nebius clients build them."""

    def __init__(
        self, op: IndependentProvider, redirect_uri: str, federation_id: Optional[str] = None
    ) -> None:
        self.op = op
        self.redirect_uri = redirect_uri
        self.state = b64url(secrets.token_bytes(32))
        self.verifier = b64url(secrets.token_bytes(32))
        self.challenge = b64url(hashlib.sha256(self.verifier.encode("ascii")).digest())
        self.params = {
            "response_type": "code",
            "client_id": op.client_id,
            "scope": "openid",
            "state": self.state,
            "redirect_uri": redirect_uri,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "federation-id": op.federation_id if federation_id is None else federation_id,
        }
        self.url = f"{op.endpoint}/oauth2/authorize?{urlencode(self.params)}"

    def exchange(self, code: str) -> requests.Response:
        return web.post(
            self.op.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.op.client_id,
                "code_verifier": self.verifier,
            },
            timeout=10,
        )


def userinfo(op: IndependentProvider, access_token: str) -> requests.Response:
    return web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def login(
    op: IndependentProvider,
    driver: BrowserDriver,
    callback: CallbackServer,
    username: str = "smoke-user",
) -> tuple[Flow, dict[str, Any]]:
    """Full browser login + code exchange; returns the flow and the token response."""
    flow = Flow(op, callback.redirect_uri)
    result = driver.open(flow.url, login_and_approve(username)).wait(60).raise_for_error()
    assert result.final_query["state"] == flow.state
    query = callback.callback()
    token = flow.exchange(query["code"])
    assert token.status_code == 200, token.text
    return flow, token.json()


# ---------------------------------------------------------------------------- browser flows


@pytest.mark.browser
def test_code_flow_with_pkce_in_real_chromium(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    op = independent_provider
    flow = Flow(op, callback_server.redirect_uri)

    result = browser_driver.open(flow.url, login_and_approve("alice")).wait(60)
    result.raise_for_error()

    # What Chromium rendered: our callback page, reached via the provider's redirects.
    assert result.final_url.startswith(callback_server.redirect_uri + "/?")
    assert result.status == 200
    assert result.headers["x-callback"] == "smoke"
    assert "Login complete" in result.text
    assert result.navigations[0].url == op.authorize_url
    assert result.navigations[-1].url == callback_server.redirect_uri + "/"
    assert any(n.url.startswith(op.endpoint + "/interaction/") for n in result.navigations)
    assert result.blocked, "the devInteractions page's font @import should have been blocked"
    assert all("127.0.0.1" not in u for u in result.blocked)

    # The callback: code, state, and iss (RFC 9207) = the issuer.
    query = callback_server.callback()
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == flow.state
    assert query["iss"] == op.endpoint

    # The provider recorded exactly what it was sent.
    log = op.authorize_log()
    assert log[0] == flow.params
    raw = op.authorize_requests()[0]["raw_query"]
    assert raw == urlsplit(flow.url).query

    # Code exchange: public client, PKCE verifier, no secret.
    token = flow.exchange(query["code"])
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == op.at_ttl == 3600
    assert body["scope"] == "openid"
    assert body["access_token"] and body["refresh_token"] and body["id_token"]
    token_request = op.token_log()[0]
    assert token_request["form"]["code_verifier"] == flow.verifier
    assert token_request["authorization"] is None
    assert token_request["status"] == 200

    # The protected resource accepts the token.
    me = userinfo(op, body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "alice"

    # The code is single-use.
    again = flow.exchange(query["code"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.browser
def test_wrong_federation_id_is_an_error_redirect(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    op = independent_provider
    flow = Flow(op, callback_server.redirect_uri, federation_id="not-" + op.federation_id)

    result = browser_driver.open(flow.url, do_nothing()).wait(60).raise_for_error()

    # No login page at all: the provider redirects straight back with an OAuth error.
    assert [n.status for n in result.navigations] == [303, 400]
    assert result.status == 400 and "Login failed" in result.text
    query = callback_server.callback()
    assert query == {
        "error": "invalid_request",
        "error_description": "unknown federation-id",
        "state": flow.state,
        "iss": op.endpoint,
    }
    assert op.authorize_log()[0]["federation-id"] == "not-" + op.federation_id


@pytest.mark.browser
def test_deny_gives_access_denied(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    flow = Flow(independent_provider, callback_server.redirect_uri)

    result = browser_driver.open(flow.url, deny()).wait(60).raise_for_error()

    assert result.status == 400
    assert any(n.url.endswith("/abort") for n in result.navigations)
    query = callback_server.callback()
    assert query == {
        "error": "access_denied",
        "error_description": "End-User aborted interaction",
        "state": flow.state,
        "iss": independent_provider.endpoint,
    }


@pytest.mark.browser
def test_do_nothing_stays_on_the_login_page(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    flow = Flow(independent_provider, callback_server.redirect_uri)
    result = browser_driver.open(flow.url, do_nothing()).wait(60).raise_for_error()
    assert result.final_url.startswith(independent_provider.endpoint + "/interaction/")
    assert "Sign-in" in result.text
    assert callback_server.requests == []


@pytest.mark.browser
def test_browser_env_delivers_webbrowser_open_to_chromium(
    independent_provider: IndependentProvider,
    browser_env: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    """What fedbearer does: webbrowser.open(url) with $BROWSER set."""
    flow = Flow(independent_provider, callback_server.redirect_uri)
    run = browser_env.expect(login_and_approve("bob"))

    started = time.monotonic()
    assert webbrowser.open(flow.url) is True
    assert time.monotonic() - started < 5  # the shim returns as soon as the URL is queued

    result = run.wait(60).raise_for_error()
    assert result.start_url == flow.url
    assert result.shim_argv is not None and result.shim_argv[-1] == flow.url
    assert result.status == 200
    query = callback_server.callback()
    token = flow.exchange(query["code"])
    assert token.status_code == 200
    assert userinfo(independent_provider, token.json()["access_token"]).json()["sub"] == "bob"
    assert browser_env.unexpected == []


@pytest.mark.browser
def test_opener_callable(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    flow = Flow(independent_provider, callback_server.redirect_uri)
    opener = browser_driver.opener(login_and_approve())
    assert opener(flow.url) is True
    assert opener.wait(60).raise_for_error().status == 200
    assert callback_server.callback()["state"] == flow.state


@pytest.mark.browser
def test_short_ttl_expiry_and_refresh(
    make_provider: Any,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    # Long enough that a loaded machine still uses the token before it expires.
    op = make_provider(at_ttl=5, refresh=True)
    _flow, body = login(op, browser_driver, callback_server)
    issued = time.monotonic()
    assert body["expires_in"] == 5
    assert userinfo(op, body["access_token"]).status_code == 200

    time.sleep(max(0.0, issued + 6.5 - time.monotonic()))
    expired = userinfo(op, body["access_token"])
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]

    renewed = web.post(
        op.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": op.client_id,
        },
        timeout=10,
    )
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["access_token"] != body["access_token"]
    assert fresh["refresh_token"] != body["refresh_token"]  # rotated (public client)
    assert fresh["expires_in"] == 5
    assert userinfo(op, fresh["access_token"]).status_code == 200


@pytest.mark.browser
def test_no_refresh_token_when_disabled(
    make_provider: Any,
    browser_driver: BrowserDriver,
    callback_server: CallbackServer,
) -> None:
    op = make_provider(refresh=False, federation_id="")
    _flow, body = login(op, browser_driver, callback_server)
    assert "refresh_token" not in body
    assert userinfo(op, body["access_token"]).status_code == 200


# ---------------------------------------------------------------------------- no browser


def authorize(op: IndependentProvider, **overrides: Optional[str]) -> requests.Response:
    flow = Flow(op, "http://127.0.0.1:54321")
    params = {k: v for k, v in {**flow.params, **overrides}.items() if v is not None}
    return web.get(op.authorize_url, params=params, allow_redirects=False, timeout=10)


def error_of(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def test_provider_rules_without_a_browser(independent_provider: IndependentProvider) -> None:
    op = independent_provider
    # Any loopback port is accepted for the native client (RFC 8252 §7.3), and [::1] too.
    for uri in ("http://127.0.0.1:1", "http://127.0.0.1:65535", "http://[::1]:8080"):
        ok = authorize(op, redirect_uri=uri)
        assert ok.status_code == 303 and ok.headers["Location"].startswith("/interaction/")
    # A path, another host, or https is not the registered redirect URI: error page, 400.
    for uri in ("http://127.0.0.1:8080/cb", "http://127.0.0.2:8080", "https://127.0.0.1:8080"):
        bad = authorize(op, redirect_uri=uri)
        assert bad.status_code == 400 and "redirect_uri did not match" in bad.text
    # federation-id: missing or wrong -> invalid_request redirect.
    assert error_of(authorize(op, **{"federation-id": None}))["error_description"] == (
        "missing required parameter 'federation-id'"
    )
    assert error_of(authorize(op, **{"federation-id": "x"}))["error"] == "invalid_request"
    # PKCE is required, S256 only.
    assert (
        "requires PKCE"
        in error_of(authorize(op, code_challenge=None, code_challenge_method=None))[
            "error_description"
        ]
    )
    assert error_of(authorize(op, code_challenge_method="plain"))["error"] == "invalid_request"
    # Unknown client: error page, no redirect.
    assert authorize(op, client_id="someone-else").status_code == 400
    # The log saw them all, in order.
    assert len(op.authorize_log()) == 11
    assert op.authorize_log()[-1]["client_id"] == "someone-else"


def test_userinfo_rejects_bad_tokens(independent_provider: IndependentProvider) -> None:
    no_token = web.get(independent_provider.userinfo_url, timeout=10)
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer ")
    bad = userinfo(independent_provider, "not-a-token")
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_provider_restarts_and_stops_cleanly(make_provider: Any) -> None:
    op = make_provider(at_ttl=7, client_id="other-client", federation_id="fed-2")
    assert op.running
    config = web.get(op.endpoint + "/__test/config", timeout=10).json()
    assert config == {
        "issuer": op.endpoint,
        "port": op.port,
        "client_id": "other-client",
        "federation_id": "fed-2",
        "at_ttl": 7,
        "refresh": True,
        "clock_tolerance": 0,
    }
    discovery = web.get(op.endpoint + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == op.endpoint
    assert discovery["authorization_endpoint"] == op.authorize_url
    assert discovery["token_endpoint"] == op.token_url
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["authorization_response_iss_parameter_supported"] is True
    op.stop()
    assert not op.running
    with pytest.raises(requests.ConnectionError):
        web.get(f"http://127.0.0.1:{op.port}/__test/config", timeout=5)
