"""The one clock fedbearer reads.

Every expiry decision calls :func:`now` through this module, so tests freeze time with
``monkeypatch.setattr(fedbearer._clock, "now", lambda: t)`` instead of sleeping.
"""

from __future__ import annotations

import time


def now() -> float:
    """Current time as POSIX seconds (UTC by definition)."""
    return time.time()
