"""fedbearer for ``httpx``: ``httpx.Client(auth=fedbearer.httpx.FederationAuth(...))``.

Needs the ``httpx`` extra (``pip install 'fedbearer[httpx]'``); ``import fedbearer`` alone
never imports httpx. See :doc:`httpx`.
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401 - only to say which extra is missing
except ImportError as exc:
    raise ModuleNotFoundError(
        "fedbearer.httpx needs httpx, which is not installed: pip install 'fedbearer[httpx]'",
        name="httpx",
    ) from exc

from ._httpx import FederationAuth

__all__ = ["FederationAuth"]
