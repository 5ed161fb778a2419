"""The one clock fedbearer reads.

Every expiry decision calls :func:`now` through this module, so tests freeze time with
``monkeypatch.setattr(fedbearer._clock, "now", lambda: t)`` instead of sleeping; the device
login's polling waits through :func:`sleep`, which tests replace the same way.
"""

from __future__ import annotations

import time


def now() -> float:
    """Current time as POSIX seconds (UTC by definition)."""
    return time.time()


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (the pause between two polls of a device login)."""
    time.sleep(seconds)
