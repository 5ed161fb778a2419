"""pytest plugin with fixtures for testing code that uses fedbearer.

Registered through the ``pytest11`` entry point, so installing fedbearer makes the fixtures
available in every test suite; nothing to add to ``conftest.py``:

``local_federation``
    A running :class:`~fedbearer.testing.LocalFederation` (default options), closed after
    the test.
``fedbearer_cache``
    An isolated token cache: ``HOME`` (and ``USERPROFILE``) point to a temporary directory
    for the test, so the default cache, ``~/.nebius/credentials.yaml``, is a fresh file
    there and the real one is never touched. Returns the
    :class:`~fedbearer._cache.FileTokenCache` for that file (``.path`` gives its path).
``programmatic_browser``
    A :class:`~fedbearer.testing.ProgrammaticBrowser` that approves: pass it as
    ``opener=`` and the login completes without a person.

This module is imported at the start of every pytest run wherever fedbearer is installed;
it never imports ``responses``, an optional dependency.
To turn the plugin off: ``pytest -p no:fedbearer``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedbearer._cache import DEFAULT_CACHE_FILE, FileTokenCache
from fedbearer.testing import LocalFederation, ProgrammaticBrowser


@pytest.fixture
def local_federation() -> Iterator[LocalFederation]:
    """A running LocalFederation on ``127.0.0.1``; closed (port released) after the test."""
    with LocalFederation() as federation:
        yield federation


@pytest.fixture
def fedbearer_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> FileTokenCache:
    """The default token cache, moved to a temporary ``HOME`` for this test."""
    home = tmp_path_factory.mktemp("fedbearer-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what ~ means on Windows
    # Resolved now, so the fixture's value keeps naming this file if HOME changes later.
    return FileTokenCache(FileTokenCache(DEFAULT_CACHE_FILE).path)


@pytest.fixture
def programmatic_browser() -> ProgrammaticBrowser:
    """A ProgrammaticBrowser that walks the login redirects and approves the consent page."""
    return ProgrammaticBrowser()
