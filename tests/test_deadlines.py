"""One wall-clock deadline per call to the provider, whatever the server does (issue #19,
finding 1).

requests' ``timeout`` bounds each socket read, so a server that sends its status line and
headers one byte a second was never cut off: ``authorize(timeout=5)`` was still running
after a minute. Each test here points one kind of call (discovery, the pre-flight check,
the code exchange, a refresh, a revocation) at such a server over a real socket, with a
deadline of a second or two, and expects a LoginTimeoutError; the per-test time limit is
the guard against a call that would run on for ever. No timing is asserted.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
from requests.adapters import HTTPAdapter

from fedbearer import (
    Bearer,
    ConfigurationError,
    FederationAuth,
    LoginTimeoutError,
    MemoryTokenCache,
    Token,
)
from fedbearer.testing import ProgrammaticBrowser

from .conftest import login_threads

pytestmark = pytest.mark.timeout(40)

AN_HOUR_AGO = datetime.now(timezone.utc) - timedelta(hours=1)

#: The header block a dripping server sends, one byte a second: never complete in a test.
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class DripServer:
    """Answers every request on 127.0.0.1 by sending its status line and headers one byte
    a second (after ``at_once``, sent at once), on as many connections as it gets."""

    def __init__(self, interval: float = 1.0, at_once: bytes = b"") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.interval = interval
        self.at_once = at_once
        self.requested = threading.Event()
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> DripServer:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close() does not)
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            self._spawn(self._drip, conn)

    def _drip(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data.split(b"\r\n", 1)[0])
            self.requested.set()
            conn.sendall(self.at_once)
            for byte in HEAD[len(self.at_once) :]:
                if self._stop.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
            self._stop.wait()


@pytest.fixture
def drip():
    with DripServer() as server:
        yield server


def no_deadline_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name == "fedbearer-deadline"]


def test_code_exchange_with_a_header_dripping_token_endpoint_ends_by_the_login_deadline(
    federation, drip
):
    browser = ProgrammaticBrowser()
    auth = FederationAuth.from_endpoints(
        federation.client_id,
        authorization_endpoint=federation.authorize_url,
        token_endpoint=drip.url + "/token",
        issuer=federation.issuer,
        params={"federation-id": federation.federation_id or ""},
        opener=browser,
        writer=io.StringIO(),
        timeout=3,
        cache=None,
    )
    with pytest.raises(LoginTimeoutError, match="token endpoint"):
        auth.get_token()
    assert drip.requests == [b"POST /token HTTP/1.1"]  # the code exchange, cut off
    assert browser.join(10) and "Login failed" in (browser.last_body or "")
    assert login_threads() == [] and no_deadline_threads()


def test_refresh_with_a_header_dripping_token_endpoint_ends_by_its_deadline(drip):
    bearer = Bearer("default", "client", drip.url, "fed", timeout=None)
    token = Token("old-access", AN_HOUR_AGO, refresh_token="the-refresh-token")
    with pytest.raises(LoginTimeoutError, match="token endpoint") as info:
        bearer.refresh(token, timeout=1.5)
    assert "the-refresh-token" not in f"{info.value} {info.value.__cause__!r}"
    assert drip.requests == [b"POST /oauth2/token HTTP/1.1"]
    assert no_deadline_threads()


def test_a_head_cut_off_after_its_status_line_is_a_timeout_not_an_answer():
    """Shut down by the watchdog after the status line, the head ends early for
    http.client, which then returns a 200 with half its headers and no body: that must
    be the timeout it is, not a malformed token answer."""
    with DripServer(at_once=b"HTTP/1.1 200 OK\r\nContent-Type: app") as drip:
        bearer = Bearer("default", "client", drip.url, "fed", timeout=None)
        token = Token("old-access", AN_HOUR_AGO, refresh_token="the-refresh-token")
        with pytest.raises(LoginTimeoutError, match="token endpoint"):
            bearer.refresh(token, timeout=1.5)


def test_automatic_refresh_is_bounded_by_the_timeout_setting(drip):
    """FederationAuth's own refresh: 30 s at most, or the timeout setting when shorter."""
    cache = MemoryTokenCache()
    auth = FederationAuth("client", drip.url, "fed", cache=cache, timeout=1.5, interactive=False)
    expired = Token("old-access", AN_HOUR_AGO, refresh_token="the-refresh-token")
    cache.put(auth.bearer.name, expired)
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    assert drip.requests == [b"POST /oauth2/token HTTP/1.1"]


def test_discovery_with_a_header_dripping_issuer_ends_by_the_login_deadline(drip):
    auth = FederationAuth.from_issuer(
        drip.url, "client", opener=ProgrammaticBrowser(), timeout=1.5, cache=None
    )
    with pytest.raises(LoginTimeoutError, match="discovery"):
        auth.get_token()
    assert drip.requests == [b"GET /.well-known/openid-configuration HTTP/1.1"]
    assert login_threads() == [] and no_deadline_threads()


@pytest.mark.fedbearer_real  # a login as a person runs it: the pre-flight check runs then
def test_preflight_with_a_header_dripping_federation_ends_by_the_login_deadline(drip):
    """The check is cut off (inconclusive), the URL is shown, and the login then ends at its
    own deadline: before, the check alone read a byte a second for ever."""
    out = io.StringIO()
    auth = FederationAuth(
        "client", drip.url, "fed", cache=None, writer=out, no_browser_open=True, timeout=2
    )
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    assert drip.requests[0].startswith(b"GET /oauth2/authorize?")
    assert "/oauth2/authorize?" in out.getvalue()  # the check gave up; the login went on
    assert login_threads() == [] and no_deadline_threads()


def revoking_auth(federation, drip, cache, **options) -> FederationAuth:
    return FederationAuth.from_endpoints(
        federation.client_id,
        authorization_endpoint=federation.authorize_url,
        token_endpoint=federation.token_url,
        revocation_endpoint=drip.url + "/revoke",
        issuer=federation.issuer,
        params={"federation-id": federation.federation_id or ""},
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        cache=cache,
        **options,
    )


def test_logout_with_a_header_dripping_revocation_endpoint_ends_by_its_deadline(federation, drip):
    cache = MemoryTokenCache()
    auth = revoking_auth(federation, drip, cache, timeout=1.5)
    auth.get_token()
    with pytest.raises(LoginTimeoutError, match="revocation endpoint"):
        auth.logout()
    assert drip.requests == [b"POST /revoke HTTP/1.1"]
    assert cache.get(auth.bearer.name) is None
    assert no_deadline_threads()


def test_logout_forgets_the_tokens_before_the_revocation_answers(federation, drip):
    """While the revocation endpoint keeps the call waiting, the token is in neither the
    cache nor the object any more (it used to stay in both until the call ended)."""
    cache = MemoryTokenCache()
    auth = revoking_auth(federation, drip, cache, timeout=3)
    token = auth.get_token()
    assert cache.get(auth.bearer.name) == token
    outcome: list[BaseException] = []

    def logout() -> None:
        try:
            auth.logout()
        except BaseException as exc:  # examined below
            outcome.append(exc)

    thread = threading.Thread(target=logout)
    thread.start()
    try:
        assert drip.requested.wait(10)  # the revocation is under way, and stuck
        assert cache.get(auth.bearer.name) is None
        assert "token=none" in repr(auth)
    finally:
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LoginTimeoutError)


class _RetryLater(http.server.BaseHTTPRequestHandler):
    """Answers every GET 503 with a Retry-After of an hour."""

    def do_GET(self) -> None:
        self.server.gets += 1  # type: ignore[attr-defined]
        self.send_response(503)
        self.send_header("Retry-After", "3600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_sessions_retries_wait_no_longer_than_the_deadline():
    """urllib3 sleeps between retries with no socket open, out of the watchdog's reach: a
    session's HTTPAdapter(max_retries=3) obeyed a 503's Retry-After of an hour."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RetryLater)
    server.gets = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=3))
    try:
        auth = FederationAuth.from_issuer(
            f"http://127.0.0.1:{server.server_address[1]}",
            "client",
            opener=ProgrammaticBrowser(),
            timeout=1.5,
            cache=None,
            session=session,
        )
        with pytest.raises(LoginTimeoutError, match="discovery"):
            auth.get_token()
    finally:
        server.shutdown()
        server.server_close()
    assert server.gets >= 1  # type: ignore[attr-defined]
    assert login_threads() == [] and no_deadline_threads()


def test_a_timeout_too_long_for_the_platforms_clock_is_refused_by_name():
    """timeout=1e10 is finite, but its deadline overflowed the platform's time type: the
    login raised a bare OverflowError (and the watchdog thread printed another)."""
    with pytest.raises(ConfigurationError, match=r"timeout must be at most .*None for no limit"):
        FederationAuth("client", "https://fed.example", "fed", cache=None, timeout=1e10)
    FederationAuth("client", "https://fed.example", "fed", cache=None, timeout=86400 * 30)
