"""pytest plugin with fixtures for testing code that uses fedbearer.

Registered through the ``pytest11`` entry point, so installing fedbearer makes the fixtures
available in every test suite; nothing to add to ``conftest.py``:

``local_federation``
    A running :class:`~fedbearer.testing.LocalFederation` (default options), closed after
    the test.
``fedbearer_cache``
    An isolated token cache: ``HOME`` (and ``USERPROFILE``) point to a temporary directory
    for the test and ``XDG_CACHE_HOME`` is unset, so the default caches,
    ``~/.nebius/credentials.yaml`` and (for other OpenID providers)
    ``~/.cache/fedbearer/tokens.yaml``, are fresh files there and the real ones are never
    touched. Returns the :class:`~fedbearer._cache.FileTokenCache` for the Nebius file
    (``.path`` gives its path).
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
does it for the whole run. Whatever the marker, the record of an abandoned login (which
holds back lazy logins for a few minutes, see :doc:`remote_logins`) goes to a directory of
each test's own, never the user's state directory.

To turn the plugin off: ``pytest -p no:fedbearer``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from fedbearer._cache import DEFAULT_CACHE_FILE, FileTokenCache
from fedbearer._settings import test_guard
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


_state_dirs = itertools.count()


@pytest.fixture(autouse=True)
def _fedbearer_test_guard(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """On for each test, unless it (or the run) asked for the real thing. The records of
    abandoned logins always go to a directory of the test's own (made when first written)."""
    real = request.config.getoption("--fedbearer-real") or (
        request.node.get_closest_marker(REAL_MARKER) is not None
    )
    test_guard.logins = test_guard.user_cache = not real
    test_guard.state_dir = str(
        tmp_path_factory.getbasetemp() / "fedbearer-state" / str(next(_state_dirs))
    )
    try:
        yield
    finally:
        test_guard.logins = test_guard.user_cache = False
        test_guard.state_dir = None


@pytest.fixture
def local_federation() -> Iterator[LocalFederation]:
    """A running LocalFederation on ``127.0.0.1``; closed (port released) after the test."""
    with LocalFederation() as federation:
        yield federation


@pytest.fixture
def fedbearer_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> FileTokenCache:
    """The default token cache, moved to a temporary ``HOME`` for this test.

    Asking for it turns the default cache back on for the test: it is now this file.
    """
    test_guard.user_cache = False
    home = tmp_path_factory.mktemp("fedbearer-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what ~ means on Windows
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # other providers' cache: under HOME
    # Resolved now, so the fixture's value keeps naming this file if HOME changes later.
    return FileTokenCache(FileTokenCache(DEFAULT_CACHE_FILE).path)


@pytest.fixture
def programmatic_browser() -> ProgrammaticBrowser:
    """A ProgrammaticBrowser that walks the login redirects and approves the consent page."""
    return ProgrammaticBrowser()
