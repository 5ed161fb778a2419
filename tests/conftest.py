"""Shared fixtures: an isolated environment, a running LocalFederation, leak checks."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fedbearer.testing import LocalFederation, ProgrammaticBrowser

_ENV_TO_CLEAR = (
    "BROWSER",
    "SSH_CONNECTION",
    "SSH_CLIENT",
    "SSH_TTY",
    "NEBIUS_PROFILE",
    "FEDBEARER_INTERACTIVE",
    "FEDBEARER_CALLBACK_PORT",
    "FEDBEARER_CLIENT_ID",
    "FEDBEARER_FEDERATION_ENDPOINT",
    "FEDBEARER_FEDERATION_ID",
    "FEDBEARER_PROFILE",
    "WSL_DISTRO_NAME",
    "WSL_INTEROP",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the real ~/.nebius, or sees the developer's SSH/BROWSER."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def federation():
    with LocalFederation() as fed:
        yield fed


@pytest.fixture
def browser():
    return ProgrammaticBrowser()


def login_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fedbearer-loopback")]


def assert_released(port: int) -> None:
    """Nothing listens on the callback port any more and no loopback thread is alive.

    SO_REUSEADDR lets the bind succeed over the TIME_WAIT entries that closed connections
    leave behind, while it still fails if any socket is listening on the port.
    """
    assert login_threads() == []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
