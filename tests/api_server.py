"""A small protected API on loopback for the adapter tests.

Accepts a Bearer token when the LocalFederation says it is valid, echoes the request body
(chunked bodies included, so streamed uploads can be checked), records what it saw, and can
be told to answer 401 regardless or with ``insufficient_scope``, or to redirect elsewhere.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional


class Seen:
    def __init__(self, method: str, path: str, authorization: Optional[str], body: bytes):
        self.method = method
        self.path = path
        self.authorization = authorization
        self.body = body


class ProtectedAPI:
    def __init__(self, is_valid: Callable[[str], bool]) -> None:
        self.is_valid = is_valid
        self.seen: list[Seen] = []
        self.always_401 = False
        #: The WWW-Authenticate challenge sent with a 401 for a missing or refused token.
        self.challenge = 'Bearer error="invalid_token"'
        self.insufficient_scope = False
        self.redirect_to: Optional[str] = None
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                auth = self.headers.get("Authorization")
                with api._lock:
                    api.seen.append(Seen(self.command, self.path, auth, body))
                if api.redirect_to and self.path.startswith("/redirect"):
                    self._send(302, b"", {"Location": api.redirect_to})
                    return
                token = auth[len("Bearer ") :] if auth and auth.startswith("Bearer ") else None
                if api.insufficient_scope:
                    self._send(
                        401,
                        b'{"error": "insufficient_scope"}',
                        {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'},
                    )
                    return
                if api.always_401 or token is None or not api.is_valid(token):
                    self._send(
                        401,
                        b'{"error": "invalid_token"}',
                        {"WWW-Authenticate": api.challenge},
                    )
                    return
                payload = {"path": self.path, "body": body.decode("latin-1")}
                self._send(200, json.dumps(payload).encode(), {})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ProtectedAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
