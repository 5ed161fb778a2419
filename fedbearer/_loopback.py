"""The loopback callback server the browser is redirected to (RFC 8252 §7.3).

It binds ``127.0.0.1`` only (``[::1]`` only when IPv4 loopback is unavailable), serves each
connection on its own thread so an idle or slow client cannot hold up the real callback, and
keeps waiting through stray requests: only a request carrying our ``state`` can end the
login. Closing it stops the accept loop, wakes every connection thread and joins them, so
no port or thread outlives a login.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

from . import _pages
from ._exceptions import ConfigurationError, LoginTimeoutError
from ._protocol import Callback, CallbackKind, parse_callback, redirect_uri_for

log = logging.getLogger("fedbearer.loopback")

#: Seconds a connection may sit idle before its thread gives up on it.
CONNECTION_TIMEOUT = 10.0
#: How often waits wake up; bounds Ctrl-C latency where lock waits are not interruptible.
_POLL = 0.25


class PageOutcome:
    """What the decisive callback's page should say, decided once the login has finished."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT
    # HTTP/1.0: one request per connection, so no thread lingers on keep-alive.
    protocol_version = "HTTP/1.0"
    server_version = "fedbearer"
    sys_version = ""

    def do_GET(self) -> None:
        self.server.owner._handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.owner._handle(self, head=True)

    def _not_allowed(self) -> None:
        self.server.owner._respond(
            self,
            405,
            _pages.notice_page(
                headline="Method not allowed",
                message="The login callback only answers GET requests.",
            ),
            extra=(("Allow", "GET, HEAD"),),
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        # The stock error page echoes the request line, which can carry the state.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.server.owner._respond(
                self,
                code,
                _pages.notice_page(headline="Bad request", message="The request was malformed."),
            )

    def log_message(self, format: str, *args: Any) -> None:
        # The stock access log prints the request line, query (code, state) included.
        pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


class _Server(ThreadingHTTPServer):
    # Join connection threads on close: nothing may outlive a login.
    daemon_threads = False
    block_on_close = True
    # On Windows SO_REUSEADDR lets another process bind the same port; elsewhere it only
    # allows rebinding over TIME_WAIT, which a fixed port needs between two logins.
    allow_reuse_address = sys.platform != "win32"
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler, bind_and_activate=False)
        if sys.platform == "win32":  # pragma: no cover - exercised only on Windows
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS call that can take
        # seconds on a badly configured machine; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = host
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request, True)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Named so that tests (and anyone debugging) can tell our threads apart.
        threading.current_thread().name = "fedbearer-loopback-conn"
        super().process_request_thread(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, False)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets or stalls is expected; the default prints a traceback.
        log.debug("loopback: a connection ended with an error", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _bind(port: int, owner: LoopbackServer) -> _Server:
    try:
        return _Server(("127.0.0.1", port), owner)
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
        return _Server6(("::1", port), owner)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on a loopback address for the login callback ({exc.strerror})"
        ) from None


class LoopbackServer:
    """Receives the authorization response for one login.

    ``state`` is the value the callback must carry; ``issuers`` the accepted ``iss`` values.
    ``page_facts`` (application, profile, federation) are shown on the pages.
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
        if port is not None and (not isinstance(port, int) or not 0 <= port <= 65535):
            raise ConfigurationError(f"callback port must be an integer 0-65535, not {port!r}")
        self._state = state
        self._issuers = issuers
        self._port = port or 0
        self._app = app
        self._profile = profile
        self._federation = federation
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._callback: Optional[Callback] = None
        self._arrived = threading.Event()
        self._page: Optional[PageOutcome] = None
        self._page_ready = threading.Event()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._allowed_hosts: frozenset[str] = frozenset()
        self.redirect_uri = ""
        #: Counts of requests seen, by classification; for diagnostics and tests.
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Bind and serve from a background thread; returns the redirect URI."""
        httpd = _bind(self._port, self)
        host, port = httpd.socket.getsockname()[:2]
        self._httpd = httpd
        self.redirect_uri = redirect_uri_for(host, port)
        self._allowed_hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fedbearer-loopback-{port}",
            daemon=True,
        )
        self._thread.start()
        log.debug("loopback server listening on %s", self.redirect_uri)
        return self.redirect_uri

    def close(self) -> None:
        """Stop serving, release the port and join every thread. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
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
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # SHUT_RD wakes a thread blocked reading an idle connection, while a page
            # still being written to its client is left to finish.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
        httpd.server_close()  # closes the listening socket and joins connection threads
        if self._thread is not None:
            self._thread.join()
        log.debug("loopback server closed")

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- the login side

    def offer(self, callback: Callback) -> bool:
        """Deliver a decisive callback from elsewhere (a pasted URL); first one wins."""
        if not callback.decisive:
            return False
        with self._lock:
            if self._callback is not None:
                return False
            self._callback = callback
        self._arrived.set()
        return True

    def wait(self, deadline: Optional[float]) -> Callback:
        """Block until a decisive callback arrives; ``deadline`` is a ``time.monotonic()``.

        Raises :class:`~fedbearer.LoginTimeoutError` when the deadline passes first.
        """
        while True:
            if deadline is None:
                step = _POLL
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LoginTimeoutError(
                        "the browser did not come back to the login callback before the "
                        "deadline; finish the login in the browser sooner or pass a longer "
                        "timeout"
                    )
                step = min(_POLL, remaining)
            if self._arrived.wait(step):
                assert self._callback is not None
                return self._callback

    def finish(self, outcome: PageOutcome) -> None:
        """Tell the decisive callback's connection which page to show; first call wins."""
        with self._lock:
            if self._page is None:
                self._page = outcome
        self._page_ready.set()

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

    # ---------------------------------------------------------------- the HTTP side

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    def _handle(self, handler: _Handler, *, head: bool) -> None:
        target = urlsplit(handler.path)
        host = handler.headers.get("Host")
        if host is not None and host.lower() not in self._allowed_hosts:
            # Defence against DNS rebinding: a page on another name that resolves to
            # 127.0.0.1 must not reach the callback.
            self._count("bad_host")
            log.debug("loopback: %s with a foreign Host header ignored", handler.command)
            self._notice(
                handler, 400, "Wrong address", "This address is not the login callback.", head
            )
            return
        if target.path not in ("", "/"):
            self._count("not_found")
            log.debug("loopback: %s %s -> 404", handler.command, target.path[:100])
            self._notice(handler, 404, "Not found", "There is nothing at this address.", head)
            return
        callback = parse_callback(target.query, state=self._state, issuers=self._issuers)
        self._count(callback.kind.value)
        log.debug("loopback: %s callback classified as %s", handler.command, callback.kind.value)
        if not callback.decisive:
            if callback.kind is CallbackKind.MALFORMED:
                message = "The login response had neither a code nor an error."
            else:
                message = "This request does not belong to the login in progress."
            self._notice(handler, 400, "Not a login response", message, head)
            return
        if head:
            # A HEAD (a link prefetcher) must not consume the code.
            self._respond(handler, 200, b"", head=True)
            return
        self.offer(callback)
        # Every decisive request, including a reload or a second tab, shows the final page
        # once the login side has decided it; none of them changes the outcome.
        while not self._page_ready.wait(_POLL):
            if self._httpd is None:
                break
        page = self._page or PageOutcome(
            400,
            self._failure(
                "Login cancelled",
                "The application stopped waiting for this login.",
                "Start the login again from your application.",
            ),
        )
        self._respond(handler, page.status, page.body)

    def _notice(
        self, handler: _Handler, status: int, headline: str, message: str, head: bool
    ) -> None:
        self._respond(
            handler, status, _pages.notice_page(headline=headline, message=message), head=head
        )

    def _respond(
        self,
        handler: _Handler,
        status: int,
        body: bytes,
        *,
        head: bool = False,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        handler.close_connection = True
        try:
            handler.send_response_only(status)
            handler.send_header("Date", handler.date_time_string())
            for name, value in _pages.HEADERS + extra:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
        except OSError:
            log.debug("loopback: client went away before the page was sent")
