"""Tiny loopback servers for the benchmarks: as cheap as possible, so the client is measured."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Callable, Optional


class KeepAliveServer:
    """Answers every HTTP/1.1 request on a connection with a fixed 200, keep-alive.

    One thread per connection, raw sockets, no parsing beyond finding the end of the
    headers (benchmark clients send no bodies). ``responder(head)`` may pick the answer.
    """

    OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def __init__(self, responder: Optional[Callable[[bytes], bytes]] = None) -> None:
        self._responder = responder or (lambda head: self.OK)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closing = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> KeepAliveServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port)).close()  # wake accept()
        self._accepter.join()
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join()

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._closing:
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    try:
                        conn.sendall(self._responder(head))
                    except OSError:
                        return


@contextlib.contextmanager
def keep_alive_server(
    responder: Optional[Callable[[bytes], bytes]] = None,
) -> Iterator[KeepAliveServer]:
    with KeepAliveServer(responder) as server:
        yield server
