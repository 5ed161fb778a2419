"""Shared fixtures: an isolated environment, a running LocalFederation, leak checks, and the
skip-or-fail policy.

**Skip or fail.** A test that cannot run here (a package, program, privilege or port is
missing) calls :func:`skip_or_fail` or :func:`import_or_fail`, never ``pytest.skip`` or
``pytest.importorskip`` directly: on a developer's machine it is skipped with the reason and
what to install, but when the ``CI`` environment variable is ``"true"`` it fails with that
reason, so CI can never go green by skipping tests. Only platform conditions that cannot hold
on CI's Linux (``sys.platform == "win32"``) stay plain ``skipif`` marks.
"""

from __future__ import annotations

import importlib
import io
import os
import shlex
import socket
import sys
import threading
import time
from types import ModuleType
from typing import Any, NoReturn

import pytest

from fedbearer import FederationAuth, MemoryTokenCache, _cache, _login, _protocol
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
    "FEDBEARER_ISSUER",
    "FEDBEARER_SCOPE",
    "FEDBEARER_TOKEN",
    "NEBIUS_IAM_TOKEN",
    "WSL_DISTRO_NAME",
    "WSL_INTEROP",
    # Under HOME, like everything else a test may write.
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    # CI=true makes fedbearer non-interactive by default; the tests, and the processes
    # they start, choose for themselves. Whether this run is CI is read once, below.
    "CI",
)


NEBIUS_HINT = "run `pip install -e '.[test]'` on Python >= 3.10 (the nebius SDK needs it)"
"""What installs the ``nebius`` package, the reference the compatibility tests compare with."""


_IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def in_ci() -> bool:
    """True under CI (``CI=true``): a test that cannot run then fails instead of skipping.

    Read when the test session starts: each test runs with ``CI`` removed (see
    :data:`_ENV_TO_CLEAR`)."""
    return _IN_CI


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the calling test (or, at module level, the module) because of ``reason``; under
    CI, fail with it instead. ``reason`` should say what to install or change."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run, not skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_fail(name: str, hint: str = "run `pip install -e '.[test]'`") -> ModuleType:
    """``pytest.importorskip`` under the skip-or-fail policy: the module, or skip/fail."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"cannot import {name} ({exc}): {hint}")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the real ~/.nebius or ~/.cache/fedbearer, or sees the
    developer's SSH/BROWSER."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees its own memory of the token cache's warn-once warnings."""
    monkeypatch.setattr(_cache, "_warned", set())


@pytest.fixture
def path(tmp_path):
    """Where a test's token cache file goes (the file itself is not created)."""
    return tmp_path / "nebius" / "credentials.yaml"


@pytest.fixture
def federation():
    with LocalFederation() as fed:
        yield fed


@pytest.fixture
def browser():
    return ProgrammaticBrowser()


@pytest.fixture
def make_provider():
    """Factory: a started LocalFederation playing an OpenID provider other than a Nebius
    federation (no federation-id check unless asked for), closed after the test."""
    started: list[LocalFederation] = []

    def make(**options: Any) -> LocalFederation:
        options.setdefault("federation_id", None)
        fed = LocalFederation(**options).start()
        started.append(fed)
        return fed

    yield make
    for fed in started:
        fed.close()


def provider_options(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments for a test login without a person: a programmatic browser, a
    private writer, a short timeout and a cache in memory, unless given."""
    kwargs.setdefault("opener", ProgrammaticBrowser())
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("cache", MemoryTokenCache())
    return kwargs


def nebius_auth(fed: LocalFederation, **kwargs: Any) -> FederationAuth:
    """``FederationAuth`` for ``fed`` as a Nebius federation, logging in without a person;
    the default cache (``~/.nebius/credentials.yaml`` under the test's HOME) unless given."""
    kwargs.setdefault("opener", ProgrammaticBrowser())
    kwargs.setdefault("writer", io.StringIO())
    return FederationAuth(fed.client_id, fed.endpoint, fed.federation_id or "", **kwargs)


def from_issuer(fed: LocalFederation, **kwargs: Any) -> FederationAuth:
    """``FederationAuth.from_issuer`` for ``fed`` with :func:`provider_options`."""
    return FederationAuth.from_issuer(fed.issuer, fed.client_id, **provider_options(**kwargs))


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


BROWSER_SCRIPT = """\
import os
import shlex
import sys
from fedbearer.testing import ProgrammaticBrowser

# Approves; on a consent page, types TEST_BROWSER_USER into the user name field if set.
browser = ProgrammaticBrowser(user=os.environ.get("TEST_BROWSER_USER"))
browser(sys.argv[1])
sys.exit(0 if browser.join(10) and browser.error is None else 1)
"""


@pytest.fixture
def browser_command(tmp_path, monkeypatch):
    """``$BROWSER`` set to a script that completes the login from another process."""
    script = tmp_path / "browser.py"
    script.write_text(BROWSER_SCRIPT)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} %s"
    monkeypatch.setenv("BROWSER", command)
    return command


class SecretRecorder:
    """Every secret a login or a refresh makes, recorded where it is made, so that tests
    can look for them where they must never appear (logs, errors, reprs, pages).

    ``states``, ``verifiers`` and ``codes`` come from each login; ``tokens`` holds the
    access and refresh tokens of each exchange and refresh. :meth:`login_values` is what
    a login made before its exchange; :meth:`all` is everything (long enough to search).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.states: list[str] = []
        self.verifiers: list[str] = []
        self.codes: list[str] = []
        self.tokens: list[str] = []
        real_pkce, real_state = _protocol.new_pkce, _protocol.new_state
        real_exchange, real_refresh = _login.exchange_code, _login.refresh

        def pkce():
            verifier, challenge = real_pkce()
            self.verifiers.append(verifier)
            return verifier, challenge

        def state():
            self.states.append(real_state())
            return self.states[-1]

        def exchange(*args, **kwargs):
            self.codes.append(kwargs["code"])
            return self.token(real_exchange(*args, **kwargs))

        def refresh(settings, token, **kwargs):
            self.token(token)
            return self.token(real_refresh(settings, token, **kwargs))

        monkeypatch.setattr(_login, "new_pkce", pkce)
        monkeypatch.setattr(_login, "new_state", state)
        monkeypatch.setattr(_login, "exchange_code", exchange)
        monkeypatch.setattr(_login, "refresh", refresh)

    def token(self, token):
        """Record a token's secrets too (one made outside a login); returns it."""
        self.tokens += [token.token, token.refresh_token or ""]
        return token

    def login_values(self) -> list[str]:
        return self.states + self.verifiers + self.codes

    def all(self) -> set[str]:
        return {s for s in self.login_values() + self.tokens if len(s) >= 8}

    def clear(self) -> None:
        for values in (self.states, self.verifiers, self.codes, self.tokens):
            values.clear()


@pytest.fixture
def secrets(monkeypatch) -> SecretRecorder:
    return SecretRecorder(monkeypatch)
