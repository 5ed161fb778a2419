"""Every way the token endpoint can fail a login: a typed error whose message helps and holds
no secret, the browser told the login failed, port and threads released, and the next
login works."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest

from fedbearer import (
    Bearer,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenResponseError,
    LoginTimeoutError,
    TokenEndpointError,
    _http,
    _login,
    _protocol,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser
from fedbearer.testing._federation import _Reply

from .conftest import assert_released, login_threads

MIB = 1 << 20


def login(fed: LocalFederation, browser: ProgrammaticBrowser, timeout: float = 10):
    return (
        Bearer(
            "default",
            fed.client_id,
            fed.endpoint,
            fed.federation_id or "",
            opener=browser,
            writer=io.StringIO(),
            timeout=timeout,
        )
        .receiver()
        .fetch()
    )


def callback_port(browser: ProgrammaticBrowser) -> int:
    redirect = dict(parse_qsl(urlsplit(browser.opened[0]).query))["redirect_uri"]
    port = urlsplit(redirect).port
    assert port is not None
    return port


def answer_token_with(fed: LocalFederation, reply: _Reply, monkeypatch) -> None:
    """Make the federation's next token request get ``reply`` (later ones are normal)."""
    real = fed.handle_token
    calls = []

    def handle_token(content_type: str, body: bytes) -> _Reply:
        calls.append(body)
        return reply if len(calls) == 1 else real(content_type, body)

    monkeypatch.setattr(fed, "handle_token", handle_token)


def html(status: int) -> _Reply:
    return _Reply(
        status,
        {"Content-Type": "text/html"},
        b"<!doctype html><title>Bad Gateway</title><h1>Sorry</h1><p>Try later.</p>\n",
    )


# kind -> (how to set it up, expected error type, words the message must contain)
Setup = Callable[[LocalFederation, pytest.MonkeyPatch], None]
FAULTS: dict[str, tuple[Setup, type[Exception], tuple[str, ...]]] = {
    "500": (
        lambda f, m: f.fail_next("server_error", status=500),
        TokenEndpointError,
        ("HTTP 500", "try again"),
    ),
    "502": (
        lambda f, m: f.fail_next("server_error", status=502),
        TokenEndpointError,
        ("HTTP 502", "an error page", "try again"),
    ),
    "503": (
        lambda f, m: f.fail_next("server_error", status=503),
        TokenEndpointError,
        ("HTTP 503", "try again"),
    ),
    "invalid_grant": (
        lambda f, m: f.fail_next("invalid_grant"),
        InvalidGrantError,
        ("HTTP 400", "invalid_grant", "log in again"),
    ),
    "invalid_client": (
        lambda f, m: f.fail_next("invalid_client"),
        InvalidClientError,
        ("HTTP 401", "invalid_client", "client_id"),
    ),
    "html_400": (
        lambda f, m: answer_token_with(f, html(400), m),
        TokenEndpointError,
        ("HTTP 400", "an error page", "check the federation endpoint"),
    ),
    "non_json": (
        lambda f, m: f.fail_next("non_json"),
        InvalidTokenResponseError,
        ("not with a JSON object",),
    ),
    "json_array": (
        lambda f, m: f.fail_next("json_array"),
        InvalidTokenResponseError,
        ("not with a JSON object",),
    ),
    "missing_access_token": (
        lambda f, m: f.fail_next("missing_access_token"),
        InvalidTokenResponseError,
        ("no access_token",),
    ),
    "wrong_types": (
        lambda f, m: f.fail_next("wrong_types"),
        InvalidTokenResponseError,
        ("expires_in",),
    ),
    "access_token_not_a_string": (
        lambda f, m: answer_token_with(
            f,
            _Reply(200, {"Content-Type": "application/json"}, b'{"access_token": 42}'),
            m,
        ),
        InvalidTokenResponseError,
        ("access token is not a string",),
    ),
    "huge_body": (
        lambda f, m: answer_token_with(
            f,
            _Reply(
                200,
                {"Content-Type": "application/json"},
                b'{"access_token": "' + b"a" * (2 * MIB) + b'", "token_type": "Bearer"}',
            ),
            m,
        ),
        InvalidTokenResponseError,
        ("exceeds", str(MIB)),
    ),
    "connection_reset": (
        lambda f, m: f.fail_next("connection_reset"),
        TokenEndpointError,
        ("token endpoint",),
    ),
    "slow": (
        lambda f, m: f.fail_next("slow", delay=5),
        LoginTimeoutError,
        ("deadline",),
    ),
}


@pytest.mark.parametrize("kind", FAULTS)
def test_token_endpoint_fault_is_typed_helpful_secret_free_and_recoverable(
    federation, monkeypatch, secrets, kind
):
    setup, error_type, words = FAULTS[kind]
    setup(federation, monkeypatch)
    browser = ProgrammaticBrowser()
    with pytest.raises(error_type) as info:
        login(federation, browser, timeout=1.5 if kind == "slow" else 10)

    error = info.value
    text = f"{error} {error!r} {error.__cause__!r} {error.__context__!r}"
    for word in words:
        assert word in str(error)
    made = secrets.login_values()
    assert len(made) == 3  # state, verifier, code: the exchange was reached
    for secret in made:
        assert secret not in text
    if isinstance(error, TokenEndpointError) and kind not in ("connection_reset", "slow"):
        assert error.status is not None
    # The browser was told, and nothing is left behind.
    assert browser.join(10)
    assert browser.last_status == 400 and "Login failed" in (browser.last_body or "")
    assert_released(callback_port(browser))

    # The next login works (the fault was used up; the federation is fine again).
    secrets.clear()
    again = ProgrammaticBrowser()
    token = login(federation, again)
    assert federation.is_valid(token.token)
    assert again.join(10) and again.last_status == 200
    assert login_threads() == []


# ----------------------------------------------- the token call alone, against raw servers


class RawServer:
    """A token endpoint that misbehaves at the socket level, one connection at a time."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/oauth2/token"
        self.behave = behave
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.listener.close()
        self.thread.join(10)

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            with contextlib.suppress(OSError):
                self.behave(conn)


def trickle_forever(server: RawServer) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        conn.sendall(b"Content-Length: 100000\r\n\r\n{")
        while not server.done.wait(0.05):
            conn.sendall(b" ")

    return behave


def stall_after_headers(server: RawServer) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")
        server.done.wait(30)

    return behave


def reset_mid_body(server: RawServer) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"{" + b" " * 100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return behave


def redirect(server: RawServer) -> Callable[[socket.socket], None]:
    def behave(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n"
        )

    return behave


@pytest.mark.parametrize(
    ("behaviour", "error_type", "word"),
    [
        (trickle_forever, LoginTimeoutError, "deadline"),
        (stall_after_headers, LoginTimeoutError, "deadline"),
        (reset_mid_body, TokenEndpointError, "broke off"),
        (redirect, TokenEndpointError, "redirect"),
    ],
)
def test_token_call_is_bounded_and_typed_whatever_the_socket_does(behaviour, error_type, word):
    code, verifier = "the-code-" + "c" * 30, "the-verifier-" + "v" * 30
    body = _protocol.authorization_code_body(
        code=code, redirect_uri="http://127.0.0.1:1", client_id="c", verifier=verifier
    )
    server = RawServer(lambda conn: None)
    server.behave = behaviour(server)
    outcome: dict[str, BaseException] = {}

    def call() -> None:
        try:
            _login.post_token_request(
                server.url,
                body,
                deadline=time.monotonic() + 1.0,
                verify=True,
                secrets_=(code, verifier),
            )
        except BaseException as exc:  # examined below
            outcome["error"] = exc

    with server:
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(6)  # six times the deadline: "bounded" at all, not "fast"
        ended = not caller.is_alive()
    caller.join(15)  # the server is gone now, so the call ends either way
    assert ended, "the token call outlived its deadline"
    error = outcome.get("error")
    assert isinstance(error, error_type), error
    assert word in str(error)
    text = f"{error} {error!r} {error.__cause__!r}"
    assert code not in text and verifier not in text


def test_token_call_without_a_deadline_is_still_bounded_overall(monkeypatch):
    """``timeout=None`` (no login deadline): a server that drips its answer forever must not
    hold the caller for ever; TOKEN_REQUEST_TIMEOUT bounds the whole call, not each read."""
    monkeypatch.setattr(_http, "TOKEN_REQUEST_TIMEOUT", 1.0)
    code = "the-code-" + "c" * 30
    body = _protocol.authorization_code_body(
        code=code, redirect_uri="http://127.0.0.1:1", client_id="c", verifier="v" * 43
    )
    server = RawServer(lambda conn: None)
    server.behave = trickle_forever(server)
    outcome: dict[str, BaseException] = {}

    def call() -> None:
        try:
            _login.post_token_request(
                server.url, body, deadline=None, verify=True, secrets_=(code,)
            )
        except BaseException as exc:  # examined below
            outcome["error"] = exc

    with server:
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(6)
        ended = not caller.is_alive()
    caller.join(15)
    assert ended, "the token call without a deadline was not bounded"
    assert isinstance(outcome.get("error"), LoginTimeoutError), outcome
    assert code not in str(outcome["error"])


def test_unreachable_token_endpoint_names_it_and_no_secret(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    code = "the-code-" + "c" * 30
    body = _protocol.authorization_code_body(
        code=code, redirect_uri="http://127.0.0.1:1", client_id="c", verifier="v" * 43
    )
    with pytest.raises(TokenEndpointError) as info:
        _login.post_token_request(
            f"http://127.0.0.1:{dead}/oauth2/token",
            body,
            deadline=time.monotonic() + 5,
            verify=True,
            secrets_=(code,),
        )
    assert info.value.status is None
    assert f"127.0.0.1:{dead}" in str(info.value) and "could not reach" in str(info.value)
    assert code not in f"{info.value} {info.value.__cause__}"
