"""Interop test infrastructure: an independent OpenID provider and a real headless Chromium.

- :mod:`.provider` — :class:`~.provider.IndependentProvider`, panva's ``oidc-provider``
  (node, ``op.mjs``) dressed as a Nebius federation.
- :mod:`.chromium` — :class:`~.chromium.BrowserDriver`, Playwright-driven ``/usr/bin/chromium``
  in a thread of its own, reachable through ``$BROWSER`` (``browser_shim.py``) or directly.
- ``conftest.py`` — the fixtures (``independent_provider``, ``browser_driver``, ...).
- :func:`fedbearer_command` and :func:`cli_environment` — the ``fedbearer`` command as a
  user runs it, in a process of its own that imports this checkout's fedbearer.

Every interop test checks its requirements through :func:`require_interop`, which applies
the suite's skip-or-fail policy (:func:`tests.conftest.skip_or_fail`): when a requirement is
missing, the test is skipped with the command that installs it — unless the ``CI``
environment variable is ``"true"``, where a missing requirement is a failure (CI must never
go green by skipping the interop suite).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from ..conftest import skip_or_fail

HERE = Path(__file__).resolve().parent
#: The checkout under test: the ``PYTHONPATH`` of every ``fedbearer`` process a test starts,
#: so it runs this code, not whatever copy of fedbearer is installed.
REPO = HERE.parents[1]
NODE_MODULES = HERE / "node_modules"
CHROMIUM = Path(os.environ.get("FEDBEARER_CHROMIUM", "/usr/bin/chromium"))

NPM_HINT = "cd tests/interop && npm ci"
CHROMIUM_HINT = "apt-get install -y chromium"
PLAYWRIGHT_HINT = "pip install playwright  (never `playwright install`: /usr/bin/chromium is used)"


def provider_missing() -> Optional[str]:
    """Why the independent provider cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return f"`node` is not on PATH (install Node.js >= 20, then `{NPM_HINT}`)"
    if not (NODE_MODULES / "oidc-provider" / "package.json").is_file():
        return f"tests/interop/node_modules is missing: run `{NPM_HINT}`"
    return None


def browser_missing() -> Optional[str]:
    """Why the real Chromium cannot be driven here, or None when it can."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing: run `{CHROMIUM_HINT}`"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the Python package playwright is missing: {PLAYWRIGHT_HINT}"
    return None


def require_interop(*, provider: bool = True, browser: bool = True) -> None:
    """Skip (or, when ``CI=true``, fail) the calling test if a requirement is missing.

    Call it at the start of a test or fixture::

        require_interop(browser=False)   # needs only node + node_modules
    """
    reasons = []
    if provider:
        why = provider_missing()
        if why:
            reasons.append(why)
    if browser:
        why = browser_missing()
        if why:
            reasons.append(why)
    if not reasons:
        return
    skip_or_fail("interop requirements missing: " + "; ".join(reasons))


def fedbearer_command(*args: str) -> list[str]:
    """``python -m fedbearer <args>``: the ``fedbearer`` command, run with this interpreter
    (with :func:`cli_environment`, on this checkout's code)."""
    return [sys.executable, "-m", "fedbearer", *args]


def cli_environment(home: Path, **variables: str) -> dict[str, str]:
    """The whole environment of a ``fedbearer`` process, built from nothing: no ambient
    ``DISPLAY``, ``BROWSER``, ``CI``, proxies or ``FEDBEARER_*`` reach it. ``HOME`` is
    ``home``, ``PYTHONPATH`` is :data:`REPO`; ``variables`` add to or override these
    (``PATH=...``, ``BROWSER=...``)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
    }
    env.update(variables)
    return env
