"""Test helpers for fedbearer and for code that uses it.

- :class:`LocalFederation`: an in-process OAuth 2.0 authorization server (authorization
  code + PKCE S256, loopback redirects, refresh tokens, a Bearer-protected ``/whoami``)
  over real HTTP on ``127.0.0.1``, with counters and fault injection.
- :class:`ProgrammaticBrowser`: an ``opener(url) -> bool`` that walks the login redirects
  (and the consent form) with :mod:`urllib`, in a background thread.

Standard library only. ``import fedbearer`` does not import this package.
"""

from __future__ import annotations

from ._browser import ProgrammaticBrowser
from ._federation import LocalFederation

__all__ = ["LocalFederation", "ProgrammaticBrowser"]
