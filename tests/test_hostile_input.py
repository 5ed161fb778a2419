"""The loopback receiver under hostile input, while a genuine login is in progress.

Anything on this machine can connect to the callback port. Whatever it sends (random
methods, paths, queries and headers, oversized request lines and heads, invalid UTF-8,
half-open, idle, trickling and reset connections, many connections at once), the server
answers or drops that connection only, the genuine login completes before its deadline,
and afterwards no port or thread is left.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Optional
from urllib.parse import parse_qsl, quote_from_bytes, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fedbearer
from fedbearer import Bearer, _login, _loopback
from fedbearer._loopback import LoopbackServer
from fedbearer.testing import ProgrammaticBrowser

from .conftest import assert_released, login_threads, skip_or_fail, wait_for

STATE = "s" * 43
HOST = b"{HOST}"  # replaced by 127.0.0.1:<port> when sent
# Statuses a hostile request may get; 200 needs our state, which an attacker does not know.
HOSTILE_STATUSES = {400, 404, 405, 414, 431, 501, 505}
# Examples per run; with the flood alongside, one run tries well over 1,000 requests.
FUZZ_EXAMPLES = 1000


# ---------------------------------------------------------------------------- raw HTTP


def exchange(
    port: int,
    raw: bytes,
    *,
    chunk: Optional[int] = None,
    shut_wr: bool = True,
    timeout: float = 10.0,
) -> bytes:
    """Send ``raw`` (``{HOST}`` filled in) and read the answer until the server closes."""
    raw = raw.replace(HOST, f"127.0.0.1:{port}".encode())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            if chunk is None:
                sock.sendall(raw)
            else:
                for i in range(0, len(raw), chunk):
                    sock.sendall(raw[i : i + chunk])
            if shut_wr:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (and closed) before we finished sending: read it
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_of(reply: bytes) -> int:
    match = re.match(rb"HTTP/1\.0 (\d{3}) ", reply)
    assert match, reply[:80]
    return int(match[1])


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def get(path: str = "/", *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path.encode("latin-1") + b" HTTP/1.1", b"Host: " + HOST, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(state=STATE, issuers=frozenset({"https://fed.example"})) as srv:
        yield srv
    assert login_threads() == []


def port_of(server: LoopbackServer) -> int:
    port = urlsplit(server.redirect_uri).port
    assert port is not None
    return port


# ---------------------------------------------------------------------------- one by one

OVERSIZED = 70 * 1024


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(b"GET /" + b"a" * OVERSIZED + b" HTTP/1.1\r\n\r\n", 414, id="long-line"),
        pytest.param(get("/", b"X-Big: " + b"b" * OVERSIZED), 431, id="long-header"),
        pytest.param(get("/", *[b"X-%d: y" % i for i in range(150)]), 431, id="150-headers"),
        pytest.param(b"GET / HTTP/2.0\r\nHost: {HOST}\r\n\r\n", 505, id="http2"),
        pytest.param(b"GET / HTTP/1.1.1\r\nHost: {HOST}\r\n\r\n", 400, id="bad-version"),
        pytest.param(b"GET / http/1.1\r\nHost: {HOST}\r\n\r\n", 400, id="lower-version"),
        pytest.param(b"GET /\r\n", 400, id="http0.9"),
        pytest.param(b"GET  / HTTP/1.1\r\n\r\n", 400, id="two-spaces"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, id="tls-hello"),
        pytest.param(get("/", method=b"BREW"), 501, id="unknown-method"),
        pytest.param(get("/", method=b"G\x00T"), 400, id="nul-in-method"),
        pytest.param(get("/", b"Content-Length: 3", method=b"POST") + b"a=b", 405, id="post"),
        pytest.param(get("/", method=b"OPTIONS"), 405, id="options"),
        pytest.param(get("/", b"NoColon"), 400, id="header-without-colon"),
        pytest.param(get("/", b"X-A: 1", b" folded"), 400, id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : {HOST}\r\n\r\n", 400, id="space-before-colon"),
        pytest.param(get("/", b"Host: {HOST}"), 400, id="two-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400, id="foreign-host"),
        pytest.param(b"GET /?\x00 HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 400, id="nul-in-target"),
        pytest.param(b"GET http://[::1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 400, id="bad-ipv6"),
        pytest.param(get("/favicon.ico"), 404, id="favicon"),
        pytest.param(get("/%ff%fe/\xff"), 404, id="invalid-utf8-path"),
        pytest.param(get("/?state=\xff\xfe&code=%ff"), 400, id="invalid-utf8-query"),
        pytest.param(get("/?state=" + "s" * 42 + "&code=x"), 400, id="almost-our-state"),
        pytest.param(get("/?" + "a=b&" * 5000), 400, id="many-params"),
        pytest.param(b"GET / HTTP/1.1\nHost: {HOST}\n\n", 400, id="bare-lf"),
        pytest.param(b"\r\n\r\nGET /x HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 404, id="leading-crlf"),
        pytest.param(b"GET /x HTTP/1.0\r\nHost: {HOST}\r\n", 404, id="head-ended-by-eof"),
    ],
)
def test_malformed_and_stray_requests_get_a_plain_answer(server, raw, status):
    reply = exchange(port_of(server), raw)
    assert status_of(reply) == status
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head and b"content-security-policy" in head
    # Nothing of the request is echoed (the stock error page quotes the request line).
    assert b"evil.example" not in reply and b"X-Big" not in reply and b"a=b" not in reply
    assert server._callback is None  # none of them ended the login


def test_a_request_sent_byte_by_byte_is_still_understood(server):
    assert status_of(exchange(port_of(server), get("/robots.txt"), chunk=1)) == 404


def test_head_with_our_state_does_not_consume_the_code(server):
    raw = get("/?" + urlencode({"state": STATE, "code": "c"}), method=b"HEAD")
    reply = exchange(port_of(server), raw)
    assert status_of(reply) == 200 and reply.endswith(b"\r\n\r\n")  # no body
    assert server._callback is None


def test_silent_connections_are_closed_without_an_answer(server):
    port = port_of(server)
    assert exchange(port, b"") == b""
    assert exchange(port, b"\r\n\r\n") == b""


def test_idle_and_trickling_connections_are_cut_at_the_head_deadline(monkeypatch):
    # The deadline covers the whole head, not each byte: trickling does not extend it.
    monkeypatch.setattr(_loopback, "CONNECTION_TIMEOUT", 0.3)
    with LoopbackServer(state=STATE, issuers=frozenset()) as srv:
        port = port_of(srv)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        trickle.sendall(b"GET / HTTP/1.1\r\nX: ")
        closed = threading.Event()

        def keep_trickling():
            try:
                while not closed.is_set():
                    trickle.sendall(b"a")
                    time.sleep(0.02)
            except OSError:
                closed.set()

        threading.Thread(target=keep_trickling, daemon=True).start()
        assert read_all(idle) == b""  # the server hung up: EOF, no answer
        assert closed.wait(10)  # the trickler got a reset or a broken pipe
        idle.close()
        trickle.close()
        assert srv.stats.get("timed_out") == 2
        assert status_of(exchange(port, get("/x"))) == 404  # and it still serves


def test_a_full_house_of_idle_connections_cannot_lock_the_callback_out(monkeypatch):
    monkeypatch.setattr(_loopback, "MAX_CONNECTIONS", 16)
    with LoopbackServer(state=STATE, issuers=frozenset()) as srv:
        port = port_of(srv)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        try:
            assert wait_for(lambda: srv.open_connections <= 16)
            raw = get("/?" + urlencode({"state": STATE, "code": "c"}))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw.replace(HOST, f"127.0.0.1:{port}".encode()))
                assert srv.wait(time.monotonic() + 10).code == "c"
                srv.finish(srv.success())
                assert status_of(read_all(sock)) == 200
        finally:
            for sock in idle:
                sock.close()
        assert srv.stats.get("displaced", 0) >= 24


def test_resets_and_half_open_connections_do_not_disturb_the_next_request(server):
    port = port_of(server)
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /?state=x HTTP/1.1\r\nHost: ")
        reset(sock)
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(get("/")[:10])
        half.close()
    assert status_of(exchange(port, get("/nothing"))) == 404


@pytest.mark.parametrize("host", [b"127.0.0.1", b"localhost", b"[::1]", b"127.0.0.1:80"])
def test_port_80_accepts_the_host_header_without_a_port(host):
    """Browsers leave the default port out of ``Host``: with callback port 80 they send
    ``Host: 127.0.0.1``, and that must reach the callback."""
    try:
        srv = LoopbackServer(state=STATE, issuers=frozenset(), port=80)
        srv.start()
    except fedbearer.ConfigurationError as exc:
        skip_or_fail(
            f"cannot listen on port 80 here ({exc}): run as root, or let users bind it with"
            " `sysctl -w net.ipv4.ip_unprivileged_port_start=80`"
        )
    try:
        assert srv.redirect_uri == "http://127.0.0.1:80"
        stray = b"GET /robots.txt HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        assert status_of(exchange(80, stray)) == 404  # not 400 "Wrong address"
        query = urlencode({"state": STATE, "code": "c"}).encode()
        with socket.create_connection(("127.0.0.1", 80), timeout=10) as sock:
            sock.sendall(b"GET /?" + query + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            assert srv.wait(time.monotonic() + 10).code == "c"
            srv.finish(srv.success())
            assert status_of(read_all(sock)) == 200
        assert srv.stats.get("bad_host", 0) == 0
    finally:
        srv.close()


def test_other_ports_refuse_a_host_header_without_the_port(server):
    port = port_of(server)
    for host in (b"127.0.0.1", b"localhost", b"127.0.0.1:80"):
        raw = b"GET /robots.txt HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        assert status_of(exchange(port, raw)) == 400
    assert server.stats["bad_host"] == 3


def test_finish_and_close_racing_the_release_check_still_send_the_page(monkeypatch):
    """``finish()`` and ``close()`` both landing after the loop's page-release check and
    before its ``while`` test: the parked (decisive) connection must still get its page."""
    reached, go = threading.Event(), threading.Event()
    original = LoopbackServer._expire

    def expire_paused_once_parked(self, now):
        if not go.is_set() and any(c.state == "parked" for c in self._connections.values()):
            reached.set()
            go.wait(10)  # the serving thread sits between the release check and the loop test
        original(self, now)

    monkeypatch.setattr(LoopbackServer, "_expire", expire_paused_once_parked)
    srv = LoopbackServer(state=STATE, issuers=frozenset())
    srv.start()
    port = port_of(srv)
    closer = threading.Thread(target=srv.close)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            raw = get("/?" + urlencode({"state": STATE, "error": "access_denied"}))
            sock.sendall(raw.replace(HOST, f"127.0.0.1:{port}".encode()))
            assert srv.wait(time.monotonic() + 10).error == "access_denied"
            assert reached.wait(10)
            srv.finish(srv.failure("Login denied", "refused", "again"))
            closer.start()
            assert wait_for(lambda: srv._stopping)
            go.set()
            reply = read_all(sock)
        assert status_of(reply) == 400 and b"Login denied" in reply
    finally:
        go.set()
        if closer.ident is None:
            srv.close()
        else:
            closer.join(10)
    assert login_threads() == []


# ---------------------------------------------------------------------------- fuzzing

_KEYS = st.sampled_from(["state", "code", "error", "error_description", "iss", "x", ""])
_VALUES = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=43, max_size=43),
)


@st.composite
def _query(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(_KEYS, _VALUES), max_size=6))
    if draw(st.booleans()):
        return urlencode(pairs).encode()
    # Raw, possibly invalid: bad escapes and bytes that are not UTF-8.
    return b"&".join(
        k.encode() + b"=" + v.encode("latin-1", "replace").replace(b" ", b"%") for k, v in pairs
    )


_METHODS = st.one_of(
    st.sampled_from(
        [b"GET"] * 12
        + [b"HEAD", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"PATCH"]
        + [b"BREW", b"get", b"G\x00T", b""]
    ),
    st.binary(min_size=1, max_size=8),
)
_PATHS = st.one_of(
    st.sampled_from(
        [b"/"] * 16
        + [b"", b"/favicon.ico", b"//", b"//[", b"http://[::1", b"http://127.0.0.1/", b"*"]
        + [b"/%", b"/%ff%fe", b"/\xff\xfe", b"/a b"]
    ),
    st.binary(max_size=40).map(lambda b: b"/" + quote_from_bytes(b).encode()),
    st.binary(max_size=40).map(lambda b: b"/" + b),
)
_VERSIONS = st.sampled_from(
    [b"HTTP/1.1"] * 12
    + [b"HTTP/1.0"] * 3
    + [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1.1", b"HTTP/x", b""]
)
_GOOD_HEADERS = st.sampled_from(
    [
        b"User-Agent: Mozilla/5.0",
        b"Accept: text/html,*/*;q=0.8",
        b"Accept-Language: en",
        b"Connection: keep-alive",
        b"Cookie: a=b",
        b"Upgrade-Insecure-Requests: 1",
        b"Sec-Fetch-Mode: navigate",
        b"Content-Length: 0",
        b"Transfer-Encoding: chunked",
        b"Expect: 100-continue",
        b"X-Forwarded-Host: evil.example",
        b"Referer: https://evil.example/",
    ]
)
_HEADER_NAMES = st.one_of(
    st.sampled_from([b"Host", b"", b"Bad Name", b"\xff", b"X-\x00"]),
    st.binary(min_size=1, max_size=12),
)
_HEADER_VALUES = st.one_of(
    st.sampled_from([HOST, b"evil.example", b"", b"127.0.0.1", b"localhost", b"\xff\xfe"]),
    st.binary(max_size=30),
)
_SEPARATORS = st.sampled_from([b": ", b":", b" : ", b""])


@st.composite
def _header(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 3)):  # mostly well formed, so requests reach the routing
        return draw(_GOOD_HEADERS)
    return draw(_HEADER_NAMES) + draw(_SEPARATORS) + draw(_HEADER_VALUES)


@st.composite
def hostile_request(draw: st.DrawFn) -> tuple[bytes, str]:
    """One hostile request (raw bytes, ``{HOST}`` to fill in) and how to deliver it."""
    kind = draw(st.sampled_from(["http"] * 8 + ["blob", "oversized-line", "oversized-head"]))
    if kind == "blob":
        raw = draw(st.binary(min_size=1, max_size=300))
    elif kind == "oversized-line":
        raw = b"GET /?" + b"q" * draw(st.integers(65 * 1024, 80 * 1024)) + b" HTTP/1.1\r\n\r\n"
    else:
        method = draw(_METHODS)
        path = draw(_PATHS)
        if draw(st.integers(0, 3)):
            path += b"?" + draw(_query())
        version = draw(_VERSIONS)
        line = b" ".join(w for w in (method, path, version) if w or draw(st.booleans()))
        headers = []
        if draw(st.integers(0, 9)):  # usually the right Host, so requests reach routing
            headers.append(b"Host: " + HOST)
        headers += draw(st.lists(_header(), max_size=6))
        if kind == "oversized-head":
            headers.append(b"X-Pad: " + b"p" * draw(st.integers(65 * 1024, 70 * 1024)))
        newline = draw(st.sampled_from([b"\r\n", b"\n"]))
        raw = newline.join([line, *headers]) + newline + newline
        if method == b"POST" and draw(st.booleans()):
            raw += draw(st.binary(max_size=200))
    delivery = draw(st.sampled_from(["whole"] * 4 + ["chunks", "keep-open", "half", "reset"]))
    if delivery == "keep-open" and kind == "blob":
        delivery = "whole"  # without an end of head or EOF it would just wait for the deadline
    return raw, delivery


class Fuzzer:
    """Throws hostile traffic at the callback port while a real login waits for it."""

    def __init__(self, port: int, state: str) -> None:
        self.port = port
        self.state = state
        self.sent = 0
        self.by_source: dict[str, int] = {}
        self.answers: dict[int, int] = {}
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.held: list[socket.socket] = []

    def record(self, raw: bytes, reply: Optional[bytes], source: str = "fuzz") -> None:
        with self.lock:
            self.sent += 1
            self.by_source[source] = self.by_source.get(source, 0) + 1
            if reply is None:
                return
            if not reply:
                self.answers[0] = self.answers.get(0, 0) + 1
                return
            match = re.match(rb"HTTP/1\.0 (\d{3}) ", reply)
            status = int(match[1]) if match else -1
            self.answers[status] = self.answers.get(status, 0) + 1
            if status not in HOSTILE_STATUSES:
                self.problems.append(f"status {status} for {raw[:80]!r}")
            if self.state.encode() in reply:
                self.problems.append("the real state appeared in an answer")

    def one(self, raw: bytes, delivery: str) -> None:
        """Send one request the way ``delivery`` says and check the answer."""
        raw = raw.replace(HOST, f"127.0.0.1:{self.port}".encode())
        try:
            if delivery in ("whole", "chunks"):
                reply = exchange(self.port, raw, chunk=7 if delivery == "chunks" else None)
                if not reply and raw.strip() and b"\n" in raw.lstrip(b"\r\n"):
                    self.problems.append(f"no answer to {raw[:80]!r}")
                self.record(raw, reply)
            elif delivery == "keep-open":  # no EOF: the head must end on its own
                reply = exchange(self.port, raw, shut_wr=False, timeout=20)
                self.record(raw, reply)
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                sock.sendall(raw[: max(1, len(raw) // 2)] if delivery == "half" else raw)
                if delivery == "reset":
                    reset(sock)
                else:
                    sock.close()
                self.record(raw, None)
        except ConnectionRefusedError:
            self.problems.append("connection refused while the login was in progress")
        except OSError as exc:  # a reset while we were still sending is a fair answer
            self.record(raw, None)
            if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                self.problems.append(f"{type(exc).__name__} for {raw[:80]!r}")

    def hold_idle(self, count: int) -> None:
        """Connections that say nothing, or half a request, and stay open."""
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port))
            if i % 2:
                sock.sendall(b"GET /?state=" + b"x" * 20)
            self.held.append(sock)
            self.record(b"", None, "idle")

    def flood(self, connections: int) -> None:
        """Until stopped: open ``connections`` sockets at once, then send on all, then read;
        a pause between rounds leaves the fuzzing some of the interpreter."""
        rounds = 0
        while not self.stop.wait(0 if rounds == 0 else 0.25):
            rounds += 1
            socks = []
            for _ in range(connections):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))
                except OSError:
                    self.problems.append("the flood could not connect")
                    break
            for i, sock in enumerate(socks):
                q = urlencode({"state": f"flood-{rounds}-{i}", "code": "c"})
                raw = get(f"/?{q}").replace(HOST, f"127.0.0.1:{self.port}".encode())
                with contextlib.suppress(OSError):
                    sock.sendall(raw)
            for sock in socks:
                with sock:
                    try:
                        reply = read_all(sock)
                    except OSError:
                        reply = None
                    self.record(b"flood", reply, "flood")

    def close(self) -> None:
        for sock in self.held:
            sock.close()


def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_genuine_login_completes_through_hostile_traffic(federation, monkeypatch, caplog):
    """The opener starts the chaos; the real browser goes in the middle of it; the code
    exchange is held until the fuzzing ends, so every hostile request meets a login in
    progress (first waiting for the browser, then waiting for the token)."""
    caplog.set_level(logging.DEBUG, logger="fedbearer.loopback")
    started = threading.Event()
    fuzz_done = threading.Event()
    seen: dict[str, object] = {}
    browser = ProgrammaticBrowser(timeout=60)  # its callback waits for the held exchange

    def opener(url: str) -> bool:
        seen["url"] = url
        started.set()
        return True

    real_exchange = _login.exchange_code

    def held_exchange(*args, **kwargs):
        assert fuzz_done.wait(60)
        return real_exchange(*args, **kwargs)

    monkeypatch.setattr(_login, "exchange_code", held_exchange)
    bearer = Bearer(
        "default",
        federation.client_id,
        federation.endpoint,
        federation.federation_id or "",
        opener=opener,
        writer=io.StringIO(),
        timeout=60,
    )

    def run_login():
        try:
            seen["token"] = bearer.receiver().fetch()
        except BaseException as exc:  # reported by the assertions below
            seen["error"] = exc

    login = threading.Thread(target=run_login)
    login.start()
    assert started.wait(10)
    url = str(seen["url"])
    port = urlsplit(_query_of(url)["redirect_uri"]).port
    assert port is not None
    fuzzer = Fuzzer(port, _query_of(url)["state"])
    fuzzer.hold_idle(40)
    flood = threading.Thread(target=fuzzer.flood, args=(100,))
    flood.start()

    examples = [0]

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking against a live server
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_request())
    def fuzz(case: tuple[bytes, str]) -> None:
        examples[0] += 1
        if examples[0] == FUZZ_EXAMPLES // 2:
            browser(url)  # the genuine browser arrives in the thick of it
        fuzzer.one(*case)

    try:
        fuzz()
    finally:
        fuzzer.stop.set()
        flood.join(60)
        fuzz_done.set()
        login.join(60)
        fuzzer.close()

    print(
        f"\nhostile requests this run: {fuzzer.sent} {fuzzer.by_source}; "
        f"answers by status: {dict(sorted(fuzzer.answers.items()))}"
    )
    assert "error" not in seen, seen.get("error")
    token = seen["token"]
    assert federation.is_valid(token.token)  # type: ignore[attr-defined]
    assert browser.join(10) and browser.error is None
    assert browser.last_status == 200 and "Login complete" in (browser.last_body or "")
    assert fuzzer.problems == []
    assert fuzzer.sent >= 1000 and fuzzer.by_source["fuzz"] == FUZZ_EXAMPLES
    assert federation.code_exchanges == 1
    unexpected = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert unexpected == [], unexpected[0].exc_text if unexpected else ""
    assert_released(port)


def test_many_connections_at_once_while_the_browser_comes_back(federation):
    browser = ProgrammaticBrowser()
    held: list[socket.socket] = []

    def opener(url: str) -> bool:
        port = urlsplit(_query_of(url)["redirect_uri"]).port
        for _ in range(300):
            held.append(socket.create_connection(("127.0.0.1", port)))
        return browser(url)

    try:
        token = (
            Bearer(
                "default",
                federation.client_id,
                federation.endpoint,
                federation.federation_id or "",
                opener=opener,
                writer=io.StringIO(),
                timeout=30,
            )
            .receiver()
            .fetch()
        )
    finally:
        for sock in held:
            sock.close()
    assert federation.is_valid(token.token)
    assert browser.join(10) and browser.last_status == 200
    assert_released(urlsplit(_query_of(browser.opened[0])["redirect_uri"]).port)
