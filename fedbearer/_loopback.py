"""The loopback callback server the browser is redirected to (RFC 8252 §7.3).

It binds ``127.0.0.1`` only (``[::1]`` only when IPv4 loopback is unavailable) and keeps
waiting through stray requests: only a request carrying our ``state`` can end the login.

One thread serves every connection through a selector, on non-blocking sockets. Nothing a
client does can hold that thread: each connection has :data:`CONNECTION_TIMEOUT` seconds to
send a request head of at most :data:`MAX_HEAD` bytes, at most :data:`MAX_CONNECTIONS` are
kept (a newcomer displaces the oldest one still sending its request), and every answer ends
its connection (HTTP/1.0). A flood of connections therefore costs file descriptors, never
threads, and cannot crowd out the browser. The request head is parsed here, strictly, since
only ``GET /?...`` with a ``Host`` header naming this server can matter.

Closing the server lets pages still being written finish (for at most :data:`CLOSE_FLUSH`
seconds), closes every socket and joins the thread: no port or thread outlives a login.
Ctrl-C cannot cut starting or closing in half (:mod:`fedbearer._interrupts`); it ends
:meth:`LoopbackServer.wait` at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import selectors
import socket
import sys
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from . import _pages
from ._exceptions import ConfigurationError, LoginTimeoutError
from ._interrupts import checkpoint, defers_interrupts, interruptible
from ._protocol import LOOPBACK_NAMES, Callback, CallbackKind, parse_callback, redirect_uri_for
from ._settings import check_port

log = logging.getLogger("fedbearer.loopback")

#: Seconds a connection has to send its request head, and to take its page.
CONNECTION_TIMEOUT = 10.0
#: Largest request head (request line and headers) read; a callback is under 4 KiB.
MAX_HEAD = 64 * 1024
#: Most header fields in one request, as in :mod:`http.client`.
MAX_HEADERS = 100
#: Most connections open at once; a newcomer displaces the oldest one still sending.
MAX_CONNECTIONS = 256
#: At close, seconds given to pages still being written before their sockets are closed.
CLOSE_FLUSH = 2.0
#: How often waits wake up; bounds Ctrl-C latency where lock waits are not interruptible.
_POLL = 0.25
#: After an answer, seconds (and bytes) spent reading what the client still sends before
#: closing: closing with unread data makes the kernel send a reset, which can destroy the
#: page in the client's buffers before the browser has read it.
_LINGER = 1.0
_LINGER_BYTES = 64 * 1024
#: Pause in accepting when the process is out of file descriptors, instead of spinning on
#: a listener that stays readable.
_FD_EXHAUSTED_PAUSE = 0.05
_ACCEPTS_PER_WAKE = 64
_BACKLOG = 128

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_VERSION = re.compile(rb"HTTP/(\d{1,10})\.(\d{1,10})")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2
_OTHER_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
_LISTENER, _WAKE = "listener", "wake"


class PageOutcome:
    """What the decisive callback's page should say, decided once the login has finished."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _BadRequest(Exception):
    """The request head cannot be served; ``status`` is the answer (400, 414, 431, 505)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Request:
    """A parsed request head: what the callback needs and nothing more."""

    __slots__ = ("host", "method", "target")

    def __init__(self, method: str, target: str, host: Optional[str]) -> None:
        self.method = method
        self.target = target
        self.host = host


def _parse_request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """``(method, target, version)`` of ``method SP target SP HTTP/x.y`` (RFC 9112 §3).

    HTTP/0.9 requests (no version) are refused: no browser sends them any more.
    """
    words = line.split(b" ")
    if len(words) != 3 or not all(words):
        raise _BadRequest(400)
    method, target, version = words
    match = _VERSION.fullmatch(version)
    if match is None or int(match[1]) < 1:
        raise _BadRequest(400)
    if (int(match[1]), int(match[2])) >= (2, 0):
        raise _BadRequest(505)
    if _TOKEN.fullmatch(method) is None or any(c <= 0x20 or c == 0x7F for c in target):
        raise _BadRequest(400)
    return method, target, version


def _parse_head(head: bytes) -> _Request:
    """Parse a request head (RFC 9112 §2-§5), strictly; raises :class:`_BadRequest`.

    Bytes are decoded as ISO-8859-1, which cannot fail; the query's percent-escapes are
    decoded later, with replacement, by :func:`~fedbearer._protocol.parse_callback`.
    """
    lines = _LINE_END.split(head)
    method, target, _ = _parse_request_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431)
    host: Optional[bytes] = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # No obsolete line folding, no space before the colon (RFC 9112 §5.1, §5.2).
        if not colon or _TOKEN.fullmatch(name) is None:
            raise _BadRequest(400)
        if name.lower() == b"host":
            if host is not None:  # RFC 9112 §3.2: more than one Host is a bad request
                raise _BadRequest(400)
            host = value.strip(b" \t")
    return _Request(
        method.decode("latin-1"),
        target.decode("latin-1"),
        None if host is None else host.decode("latin-1"),
    )


class _Connection:
    """One client connection and where it stands.

    ``reading``: sending its request head. ``parked``: a decisive callback waiting for the
    login's outcome. ``writing``: taking its answer. ``lingering``: answered; what it still
    sends is read and dropped until it closes.
    """

    __slots__ = (
        "buffer",
        "deadline",
        "line_checked",
        "lingered",
        "out",
        "scanned",
        "sock",
        "state",
    )

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.state = "reading"
        self.buffer = bytearray()
        self.scanned = 0
        self.line_checked = False
        self.out = b""
        self.lingered = 0
        self.deadline = deadline


def _hosts_for(port: int) -> frozenset[str]:
    """The ``Host`` header values that name this server (lower case).

    Browsers leave out the scheme's default port (RFC 9110 §7.2), so with port 80 they send
    ``Host: 127.0.0.1``: the port-less forms are then ours too.
    """
    names = [f"[{name}]" if ":" in name else name for name in LOOPBACK_NAMES]
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts.update(names)
    return frozenset(hosts)


def _listen(port: int) -> socket.socket:
    """A non-blocking listening socket on IPv4 loopback, else on IPv6 loopback."""
    try:
        return _listen_on(socket.AF_INET, "127.0.0.1", port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"callback port {port} on 127.0.0.1 is already in use; free it, choose "
                "another port, or leave the port unset to let the system pick one"
            ) from None
        if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise ConfigurationError(
                f"cannot listen on 127.0.0.1:{port} for the login callback ({exc.strerror})"
            ) from None
        log.debug("IPv4 loopback unavailable (%s); trying [::1]", exc.strerror)
    try:
        return _listen_on(socket.AF_INET6, "::1", port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on a loopback address for the login callback ({exc.strerror})"
        ) from None


def _listen_on(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised only on Windows
            # There SO_REUSEADDR would let another process bind the same port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            # Only allows rebinding over TIME_WAIT, which a fixed port needs between logins.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LoopbackServer:
    """Receives the authorization response for one login.

    ``state`` is the value the callback must carry; ``issuers`` the accepted ``iss`` values.
    ``app``, ``profile`` and ``federation`` are shown on the pages.
    """

    def __init__(
        self,
        *,
        state: str,
        issuers: frozenset[str],
        port: Optional[int] = None,
        app: str = "fedbearer",
        profile: Optional[str] = None,
        federation: str = "",
    ) -> None:
        check_port(port, "callback port")
        self._state = state
        self._issuers = issuers
        self._port = port or 0
        self._app = app
        self._profile = profile
        self._federation = federation
        self._lock = threading.Lock()
        self._callback: Optional[Callback] = None
        # Held until the decisive callback has arrived; see wait() for why not an Event.
        self._arrived = threading.Lock()
        self._arrived.acquire()
        self._page: Optional[PageOutcome] = None
        self._page_ready = threading.Event()
        self._listener: Optional[socket.socket] = None
        # close() and finish() write to the second socket to wake the loop waiting on the first.
        self._wake: Optional[tuple[socket.socket, socket.socket]] = None
        self._stopping = False
        self._selector: selectors.BaseSelector
        self._connections: dict[int, _Connection] = {}  # by file descriptor, oldest first
        self._thread: Optional[threading.Thread] = None
        self._allowed_hosts: frozenset[str] = frozenset()
        self.redirect_uri = ""
        #: Counts of requests seen, by classification; for diagnostics and tests.
        self.stats: dict[str, int] = {}
        #: Connections open now; for diagnostics and tests.
        self.open_connections = 0

    # ------------------------------------------------------------------ lifecycle

    @defers_interrupts
    def start(self) -> str:
        """Bind and serve from a background thread; returns the redirect URI."""
        listener = _listen(self._port)
        try:
            wake = socket.socketpair()
        except BaseException:
            listener.close()
            raise
        for sock in wake:
            sock.setblocking(False)
        host, port = listener.getsockname()[:2]
        self._listener, self._wake = listener, wake
        self._selector = selectors.DefaultSelector()
        self._connections = {}
        self.redirect_uri = redirect_uri_for(host, port)
        self._allowed_hosts = _hosts_for(port)
        thread = threading.Thread(
            target=self._serve,
            args=(listener, wake[0]),
            name=f"fedbearer-loopback-{port}",
            daemon=True,
        )
        try:
            thread.start()  # Ctrl-C is held (defers_interrupts): it started, or it never will
        except BaseException:
            self._selector.close()
            self.close()
            raise
        self._thread = thread
        log.debug("loopback server listening on %s", self.redirect_uri)
        return self.redirect_uri

    @defers_interrupts
    def close(self) -> None:
        """Stop serving, release the port and join the thread. Idempotent.

        Ctrl-C is held until this returns (within about :data:`CLOSE_FLUSH` seconds): a
        clean-up cut in half would leave the port open or the thread running.
        """
        listener, self._listener = self._listener, None
        if listener is None:
            return
        if not self._page_ready.is_set():
            self.finish(
                PageOutcome(
                    400,
                    self._failure(
                        "Login cancelled",
                        "The application stopped waiting for this login.",
                        "Start the login again from your application.",
                    ),
                )
            )
        self._stopping = True
        self._wake_up()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:  # whatever happens, the port is released
            listener.close()
            wake, self._wake = self._wake, None
            if wake is not None:
                for sock in wake:
                    sock.close()
        log.debug("loopback server closed")

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None:
            # Full buffer: a wake-up is already pending. Closed: the loop is gone.
            with contextlib.suppress(OSError):
                wake[1].send(b"x")

    # ---------------------------------------------------------------- the login side

    def offer(self, callback: Callback) -> bool:
        """Deliver a decisive callback from elsewhere (a pasted URL); first one wins."""
        if not callback.decisive:
            return False
        with self._lock:
            if self._callback is not None:
                return False
            self._callback = callback
        self._arrived.release()
        return True

    @interruptible
    def wait(self, deadline: Optional[float]) -> Callback:
        """Block until a decisive callback arrives; ``deadline`` is a ``time.monotonic()``.

        Raises :class:`~fedbearer.LoginTimeoutError` when the deadline passes first. Ctrl-C
        ends the wait at once with :class:`KeyboardInterrupt`.
        """
        while True:
            checkpoint()  # a Ctrl-C held while a finalizer ran here
            callback = self._callback
            if callback is not None:
                return callback
            if deadline is None:
                step = _POLL
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LoginTimeoutError(
                        "the browser did not come back to the login callback before the "
                        "deadline. If the browser shows an error page from the federation, "
                        "check the client id and that http://127.0.0.1 redirects are "
                        "registered for it; otherwise finish the login sooner or pass a "
                        "longer timeout"
                    )
                step = min(_POLL, remaining)
            # A bare lock, not an Event: Ctrl-C interrupts Lock.acquire all or nothing, while
            # inside Event.wait it can leave the event's lock held (the serving thread's set()
            # then blocks for ever, and close() with it) or raise "release unlocked lock".
            if self._arrived.acquire(timeout=step):
                self._arrived.release()

    def finish(self, outcome: PageOutcome) -> None:
        """Tell the decisive callback's connection which page to show; first call wins."""
        with self._lock:
            if self._page is None:
                self._page = outcome
        self._page_ready.set()
        self._wake_up()

    def success(self) -> PageOutcome:
        """The page for a finished login."""
        return PageOutcome(
            200,
            _pages.success_page(app=self._app, profile=self._profile, federation=self._federation),
        )

    def failure(
        self, headline: str, message: str, next_step: str, detail: Optional[str] = None
    ) -> PageOutcome:
        """A page for a failed login; ``detail`` (escaped) is the federation's error."""
        return PageOutcome(400, self._failure(headline, message, next_step, detail))

    def _failure(
        self, headline: str, message: str, next_step: str, detail: Optional[str] = None
    ) -> bytes:
        return _pages.failure_page(
            app=self._app,
            profile=self._profile,
            federation=self._federation,
            headline=headline,
            message=message,
            next_step=next_step,
            detail=detail,
        )

    # ---------------------------------------------------------------- the serving loop

    def _serve(self, listener: socket.socket, wake: socket.socket) -> None:
        """Accept, read, answer and close connections until :meth:`close` says stop."""
        selector = self._selector
        selector.register(listener, selectors.EVENT_READ, _LISTENER)
        selector.register(wake, selectors.EVENT_READ, _WAKE)
        accept_paused_until: Optional[float] = None
        released = False
        try:
            while not self._stopping:
                now = time.monotonic()
                if accept_paused_until is not None and now >= accept_paused_until:
                    selector.register(listener, selectors.EVENT_READ, _LISTENER)
                    accept_paused_until = None
                for key, events in selector.select(self._next_timeout(now, accept_paused_until)):
                    if key.data == _LISTENER:
                        if not self._accept(listener):
                            selector.unregister(listener)
                            accept_paused_until = time.monotonic() + _FD_EXHAUSTED_PAUSE
                    elif key.data == _WAKE:
                        with contextlib.suppress(OSError):
                            wake.recv(4096)
                    else:
                        conn = self._connections.get(key.fd)
                        if conn is not None and conn is key.data:  # not dropped meanwhile
                            self._guarded(conn, self._on_ready, conn, events)
                if not released:
                    released = self._release_parked()
                self._expire(time.monotonic())
            if not released:
                # finish() and close() may both have come after the check above and before
                # the loop test: the parked connections still get their page.
                self._release_parked()
            if accept_paused_until is None:
                selector.unregister(listener)
            selector.unregister(wake)
            self._flush(time.monotonic() + CLOSE_FLUSH)
        finally:
            for conn in list(self._connections.values()):
                self._drop(conn)
            selector.close()

    def _release_parked(self) -> bool:
        """Once the page is decided, send it to every parked connection; whether it was."""
        if not self._page_ready.is_set():
            return False
        for conn in list(self._connections.values()):
            if conn.state == "parked":
                self._guarded(conn, self._send_page, conn)
        return True

    def _guarded(self, conn: _Connection, step: Callable[..., None], *args: Any) -> None:
        """Run one step for ``conn``; whatever goes wrong ends that connection only."""
        try:
            step(*args)
        except OSError:
            log.debug("loopback: a client went away")
            self._drop(conn)
        except Exception:
            # A bug, not a client's doing: report it, and never let it stop the loop.
            log.warning("loopback: unexpected error serving a request", exc_info=True)
            self._drop(conn)

    def _next_timeout(self, now: float, accept_paused_until: Optional[float]) -> Optional[float]:
        deadlines = [c.deadline for c in self._connections.values() if c.state != "parked"]
        if accept_paused_until is not None:
            deadlines.append(accept_paused_until)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _accept(self, listener: socket.socket) -> bool:
        """Accept what is waiting; False when out of file descriptors (pause accepting)."""
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.debug("loopback: out of file descriptors, pausing accept")
                    return False
                continue  # ECONNABORTED and the like: that client is gone
            if len(self._connections) >= MAX_CONNECTIONS:
                self._displace()
            conn = _Connection(sock, time.monotonic() + CONNECTION_TIMEOUT)
            try:
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                sock.close()
                continue
            self._connections[sock.fileno()] = conn
            self._track(sock, True)
        return True

    def _displace(self) -> None:
        """Make room: drop the oldest connection that has not sent a whole request."""
        for conn in self._connections.values():
            if conn.state in ("reading", "lingering"):
                self._count("displaced")
                self._drop(conn)
                return

    def _on_ready(self, conn: _Connection, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._write(conn)
        elif events & selectors.EVENT_READ:
            self._read(conn)

    def _read(self, conn: _Connection) -> None:
        data = conn.sock.recv(65536)
        if conn.state == "lingering":
            conn.lingered += len(data)
            if not data or conn.lingered > _LINGER_BYTES:
                self._drop(conn)
            return
        if conn.state != "reading":
            return
        if not data:
            # The client stopped sending. A head cut short by EOF is still a head (as in
            # http.server); an empty one means a connection that never said anything.
            if conn.buffer.strip():
                self._request(conn, bytes(conn.buffer.rstrip(b"\r\n")))
            else:
                self._drop(conn)
            return
        buffer = conn.buffer
        buffer += data  # in place: a head sent in small pieces is not copied again each time
        if not conn.scanned:
            buffer = conn.buffer = buffer.lstrip(b"\r\n")  # RFC 9112 §2.2: CRLF before a request
        if not conn.line_checked:
            line_end = buffer.find(b"\n")
            if line_end >= 0:
                # Refuse a bad request line at once instead of waiting for a head that
                # may never come (an HTTP/0.9 request has no blank line after it).
                conn.line_checked = True
                try:
                    _parse_request_line(bytes(buffer[:line_end]).rstrip(b"\r"))
                except _BadRequest as bad:
                    self._reject(conn, bad.status)
                    return
        end = _HEAD_END.search(buffer, max(0, conn.scanned - 3))
        head_length = len(buffer) if end is None else end.start()
        if head_length > MAX_HEAD:
            line_end = buffer.find(b"\n")
            self._reject(conn, 414 if line_end < 0 or line_end > MAX_HEAD else 431)
        elif end is not None:
            self._request(conn, bytes(buffer[: end.start()]))
        else:
            conn.scanned = len(buffer)

    def _expire(self, now: float) -> None:
        for conn in list(self._connections.values()):
            if conn.state != "parked" and now >= conn.deadline:
                if conn.state == "reading":
                    self._count("timed_out")
                self._drop(conn)

    def _flush(self, deadline: float) -> None:
        """At close: let answers still being written finish, until ``deadline``."""
        while True:
            # Only writers are waited for; a page fully written is left to its client.
            for conn in list(self._connections.values()):
                if conn.state != "writing":
                    self._drop(conn)
            remaining = deadline - time.monotonic()
            if not self._connections or remaining <= 0:
                return
            for key, events in self._selector.select(remaining):
                writer = self._connections.get(key.fd)
                if writer is not None and writer is key.data and events & selectors.EVENT_WRITE:
                    self._guarded(writer, self._write, writer)

    def _drop(self, conn: _Connection) -> None:
        sock = conn.sock
        if self._connections.pop(sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        if conn.state == "lingering":
            # Unread bytes make close() send a reset, which can destroy the page in the
            # client's buffers before it is read; take what has arrived first.
            with contextlib.suppress(OSError):
                sock.recv(_LINGER_BYTES)
        sock.close()
        self._track(sock, False)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            self.open_connections += 1 if add else -1

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    # ---------------------------------------------------------------- the HTTP side

    def _request(self, conn: _Connection, head: bytes) -> None:
        try:
            request = _parse_head(head)
        except _BadRequest as bad:
            self._reject(conn, bad.status)
            return
        method = request.method
        if method in ("GET", "HEAD"):
            self._handle(conn, request)
        elif method in _OTHER_METHODS:
            self._count("not_allowed")
            page = _pages.notice_page(
                headline="Method not allowed",
                message="The login callback only answers GET requests.",
            )
            self._respond(conn, 405, page, extra=(("Allow", "GET, HEAD"),))
        else:
            self._reject(conn, 501)

    def _handle(self, conn: _Connection, request: _Request) -> None:
        head = request.method == "HEAD"
        host = request.host
        if host is not None and host.lower() not in self._allowed_hosts:
            # Defence against DNS rebinding: a page on another name that resolves to
            # 127.0.0.1 must not reach the callback.
            self._count("bad_host")
            log.debug("loopback: %s with a foreign Host header ignored", request.method)
            self._notice(
                conn, 400, "Wrong address", "This address is not the login callback.", head
            )
            return
        try:
            target = urlsplit(request.target)
        except ValueError:  # an absolute URL with a broken IPv6 literal, for one
            self._reject(conn, 400, head)
            return
        if target.path not in ("", "/"):
            self._count("not_found")
            log.debug("loopback: %s %s -> 404", request.method, target.path[:100])
            self._notice(conn, 404, "Not found", "There is nothing at this address.", head)
            return
        callback = parse_callback(target.query, state=self._state, issuers=self._issuers)
        self._count(callback.kind.value)
        log.debug("loopback: %s callback classified as %s", request.method, callback.kind.value)
        if not callback.decisive:
            if callback.kind is CallbackKind.MALFORMED:
                message = "The login response had neither a code nor an error."
            else:
                message = "This request does not belong to the login in progress."
            self._notice(conn, 400, "Not a login response", message, head)
            return
        if head:
            # A HEAD (a link prefetcher) must not consume the code.
            self._respond(conn, 200, b"", head=True)
            return
        self.offer(callback)
        # Every decisive request, including a reload or a second tab, shows the final page
        # once the login side has decided it; none of them changes the outcome.
        conn.state = "parked"
        self._selector.unregister(conn.sock)
        if self._page_ready.is_set():
            self._send_page(conn)

    def _send_page(self, conn: _Connection) -> None:
        page = self._page
        assert page is not None  # set before _page_ready
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        self._respond(conn, page.status, page.body)

    def _notice(
        self, conn: _Connection, status: int, headline: str, message: str, head: bool
    ) -> None:
        page = _pages.notice_page(headline=headline, message=message)
        self._respond(conn, status, page, head=head)

    def _reject(self, conn: _Connection, status: int, head: bool = False) -> None:
        """Answer a request that cannot be served. The page echoes nothing of it: the stock
        error page of http.server quotes the request line, which can carry the state."""
        self._count("bad_request")
        log.debug("loopback: malformed request -> %d", status)
        page = _pages.notice_page(headline="Bad request", message="The request was malformed.")
        self._respond(conn, status, page, head=head)

    def _respond(
        self,
        conn: _Connection,
        status: int,
        body: bytes,
        *,
        head: bool = False,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        lines = [
            f"HTTP/1.0 {status} {HTTPStatus(status).phrase}",
            f"Date: {formatdate(usegmt=True)}",
            *(f"{name}: {value}" for name, value in _pages.HEADERS + extra),
            f"Content-Length: {len(body)}",
            "Connection: close",
            "",
            "",
        ]
        # One write for head and body: one segment on the wire, no Nagle wait between.
        conn.out = "\r\n".join(lines).encode("latin-1") + (b"" if head else body)
        conn.state = "writing"
        conn.buffer = bytearray()
        conn.deadline = time.monotonic() + CONNECTION_TIMEOUT
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        if conn.state != "writing":
            return
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        conn.out = conn.out[sent:]
        if conn.out:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        # Answered: say so with a FIN, then read until the client closes (see _LINGER).
        conn.state = "lingering"
        conn.deadline = time.monotonic() + _LINGER
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
