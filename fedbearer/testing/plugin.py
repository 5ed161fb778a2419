"""pytest plugin with fixtures for testing code that uses fedbearer.

Registered through the ``pytest11`` entry point, so installing fedbearer makes the fixtures
available in every test suite; nothing to add to ``conftest.py``:

``local_federation``
    A running :class:`~fedbearer.testing.LocalFederation` (default options: the Nebius
    layout, checking the federation id ``test-federation``), closed after the test. For
    another provider, build one with ``LocalFederation(layout="keycloak",
    federation_id=None)`` (see :doc:`testing`).
``fedbearer_cache``
    An isolated token cache: ``HOME`` (and ``USERPROFILE``) point to a temporary directory
    for the test and ``XDG_CACHE_HOME`` is unset, so the default caches,
    ``~/.nebius/credentials.yaml`` and (for other OpenID providers)
    ``~/.cache/fedbearer/tokens.yaml``, are fresh files there and the real ones are never
    touched. Returns a :class:`DefaultCaches` over both: whichever adapter the test builds
    (``FederationAuth(...)`` or ``FederationAuth.from_issuer(...)``), its tokens are in
    ``fedbearer_cache.entries()``.
``programmatic_browser``
    A :class:`~fedbearer.testing.ProgrammaticBrowser` that approves: pass it as
    ``opener=`` and the login completes without a person.

This module is imported at the start of every pytest run wherever fedbearer is installed;
it never imports ``responses``, an optional dependency.
Safe by default: while a test runs, a :class:`~fedbearer.FederationAuth` built without an
explicit ``cache=`` neither reads nor writes the user's token cache, none takes a token from
``FEDBEARER_TOKEN`` or ``NEBIUS_IAM_TOKEN``, and a login without an
``opener=`` is not started: the test fails at once with
:class:`~fedbearer.InteractionRequiredError`, whose message names these fixtures, instead of
opening a browser or sending the developer's real token somewhere. A test that means to use
the real thing says so with ``@pytest.mark.fedbearer_real``; ``pytest --fedbearer-real``
does it for the whole run.

To turn the plugin off: ``pytest -p no:fedbearer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Optional

import pytest

from fedbearer._cache import DEFAULT_CACHE_FILE, FileTokenCache, provider_cache_file
from fedbearer._settings import test_guard
from fedbearer._token import Token
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

REAL_MARKER = "fedbearer_real"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("fedbearer").addoption(
        "--fedbearer-real",
        action="store_true",
        help="let FederationAuth use the real token cache and interactive logins in tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REAL_MARKER}: this test may use the user's token cache and interactive logins",
    )


@pytest.fixture(autouse=True)
def _fedbearer_test_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """On for each test, unless it (or the run) asked for the real thing."""
    real = request.config.getoption("--fedbearer-real") or (
        request.node.get_closest_marker(REAL_MARKER) is not None
    )
    test_guard.logins = test_guard.user_cache = not real
    try:
        yield
    finally:
        test_guard.logins = test_guard.user_cache = False


@pytest.fixture
def local_federation() -> Iterator[LocalFederation]:
    """A running LocalFederation on ``127.0.0.1``; closed (port released) after the test."""
    with LocalFederation() as federation:
        yield federation


class DefaultCaches:
    """Both default token caches as one: the Nebius CLI's file (``nebius``, whose path is
    ``path``) for a Nebius federation's tokens, and fedbearer's own (``providers``) for
    other OpenID providers', each key in the file its adapter uses (keys of other providers
    start with ``oidc/``). :meth:`entries` lists both."""

    def __init__(self, nebius: FileTokenCache, providers: FileTokenCache) -> None:
        self.nebius = nebius
        self.providers = providers

    def __repr__(self) -> str:
        return f"<DefaultCaches {self.nebius.path} and {self.providers.path}>"

    @property
    def path(self) -> str:
        """The Nebius CLI's file (``~/.nebius/credentials.yaml`` under the test's HOME)."""
        return self.nebius.path

    def _for(self, key: str) -> FileTokenCache:
        return self.providers if key.startswith("oidc/") else self.nebius

    def get(self, key: str) -> Optional[Token]:
        return self._for(key).get(key)

    def put(self, key: str, token: Token) -> None:
        self._for(key).put(key, token)

    def remove(self, key: str) -> None:
        self._for(key).remove(key)

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        return self._for(key).login_lock(key, timeout)

    def entries(self) -> list[tuple[str, Token]]:
        """Every entry of both files: the Nebius file's, then fedbearer's own."""
        return self.nebius.entries() + self.providers.entries()


@pytest.fixture
def fedbearer_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> DefaultCaches:
    """The default token caches, moved to a temporary ``HOME`` for this test.

    Asking for it turns the default caches back on for the test: they are now these files,
    whichever kind of provider the adapter under test logs in to.
    """
    test_guard.user_cache = False
    home = tmp_path_factory.mktemp("fedbearer-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what ~ means on Windows
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # other providers' cache: under HOME
    # Resolved now, so the fixture's value keeps naming these files if HOME changes later.
    return DefaultCaches(
        FileTokenCache(FileTokenCache(DEFAULT_CACHE_FILE).path),
        FileTokenCache(provider_cache_file()),
    )


@pytest.fixture
def programmatic_browser() -> ProgrammaticBrowser:
    """A ProgrammaticBrowser that walks the login redirects and approves the consent page."""
    return ProgrammaticBrowser()
