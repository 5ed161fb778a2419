"""Fixtures for interop tests: an independent OpenID provider and a real headless Chromium.

Session-scoped (started once, on first use):

* ``independent_provider`` -> :class:`.provider.IndependentProvider` (defaults: access token
  TTL 3600 s, refresh tokens on, federation-id ``interop-federation``). Its logs are cleared
  before every test that uses it.
* ``browser_driver`` -> :class:`.chromium.BrowserDriver` (one Chromium for the session; each
  URL gets a fresh context).

Per test:

* ``make_provider(**options)`` -> a fresh provider with other options (``at_ttl=2``,
  ``refresh=False``, ``federation_id=""``...), stopped after the test.
* ``browser_env`` -> the session driver, with ``$BROWSER`` pointing at it for this test and
  :mod:`webbrowser`'s cached browser list reset (it reads ``$BROWSER`` only once per process).

Every fixture applies :func:`tests.interop.require_interop`: skip with an install hint, or
fail when ``CI=true``.
"""

from __future__ import annotations

import webbrowser
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from . import require_interop
from .chromium import BrowserDriver
from .provider import IndependentProvider


@pytest.fixture(scope="session")
def _session_provider() -> Iterator[IndependentProvider]:
    require_interop(provider=True, browser=False)
    with IndependentProvider() as provider:
        yield provider


@pytest.fixture
def independent_provider(_session_provider: IndependentProvider) -> IndependentProvider:
    """The session's provider, with empty authorize/token logs."""
    if not _session_provider.running:
        pytest.fail("the independent provider died:\n" + _session_provider.stderr_text())
    _session_provider.clear_logs()
    return _session_provider


@pytest.fixture
def make_provider() -> Iterator[Callable[..., IndependentProvider]]:
    """Factory: ``make_provider(at_ttl=2, refresh=False)`` -> a started provider."""
    require_interop(provider=True, browser=False)
    started: list[IndependentProvider] = []

    def make(**options: Any) -> IndependentProvider:
        provider = IndependentProvider(**options).start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture(scope="session")
def browser_driver() -> Iterator[BrowserDriver]:
    require_interop(provider=False, browser=True)
    with BrowserDriver() as driver:
        yield driver


@pytest.fixture
def browser_env(
    browser_driver: BrowserDriver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BrowserDriver]:
    """``$BROWSER`` -> the session's Chromium, for this test only."""
    monkeypatch.setenv("BROWSER", browser_driver.browser_env)
    # webbrowser builds its browser list from $BROWSER once, on first use, and caches it.
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    monkeypatch.setattr(webbrowser, "_os_preferred_browser", None)
    browser_driver.forget_expectations()
    del browser_driver.unexpected[:]
    yield browser_driver
    browser_driver.forget_expectations()
