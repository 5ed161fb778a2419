"""Test helpers for fedbearer and for code that uses it.

- :class:`LocalFederation`: an in-process OAuth 2.0 authorization server (authorization
  code + PKCE S256, loopback redirects, refresh tokens, a Bearer-protected ``/whoami``)
  over real HTTP on ``127.0.0.1``, with counters and fault injection.
- :class:`ProgrammaticBrowser`: an ``opener(url) -> bool`` that walks the login redirects
  (and the consent form) with :mod:`urllib`, in a background thread.
- For tests that mock ``requests`` with the ``responses`` library:
  :class:`CallbackOpener` (completes the login callback straight from the authorize URL,
  no federation needed), :func:`add_token_response`, :func:`add_token_error` and
  :func:`mock_federation`.
- A pytest plugin, :mod:`fedbearer.testing.plugin`, registered through the ``pytest11``
  entry point, with the fixtures ``local_federation``, ``fedbearer_cache`` and
  ``programmatic_browser``.

Names are imported on first use (PEP 562), so loading the pytest plugin, which every
pytest run in an environment with fedbearer installed does, costs next to nothing here.
``import fedbearer`` does not import this package, and ``responses`` is only imported by
the helpers that need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._browser import ProgrammaticBrowser
    from ._federation import LocalFederation
    from ._responses import CallbackOpener, add_token_error, add_token_response, mock_federation

__all__ = [
    "CallbackOpener",
    "LocalFederation",
    "ProgrammaticBrowser",
    "add_token_error",
    "add_token_response",
    "mock_federation",
]

_WHERE = {
    "CallbackOpener": "._responses",
    "LocalFederation": "._federation",
    "ProgrammaticBrowser": "._browser",
    "add_token_error": "._responses",
    "add_token_response": "._responses",
    "mock_federation": "._responses",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
