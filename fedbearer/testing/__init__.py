"""Test helpers for fedbearer and for code that uses it.

- :class:`LocalFederation`: an in-process OAuth 2.0 authorization server (authorization
  code + PKCE S256, loopback redirects, refresh tokens, discovery, revocation, a
  Bearer-protected ``/whoami``) over real HTTP on ``127.0.0.1``, in the endpoint layout of
  a Nebius federation or another provider (:class:`Layout`), with counters and fault
  injection.
- :class:`ProgrammaticBrowser`: an ``opener(url) -> bool`` that walks the login redirects
  (and the consent form) with ``urllib``, in a background thread.
- For tests that mock ``requests`` with the ``responses`` library:
  :class:`CallbackOpener` (completes the login callback straight from the authorize URL,
  no federation needed), :func:`add_token_response`, :func:`add_token_error` and
  :func:`mock_federation`; for another OpenID provider, :func:`mock_provider` (discovery
  document, tokens, refreshes, revocation), :func:`add_discovery_document` and
  :func:`provider_document`.
- A pytest plugin, ``fedbearer.testing.plugin``, registered through the ``pytest11``
  entry point, with the fixtures ``local_federation``, ``fedbearer_cache`` and
  ``programmatic_browser``.
- ``fedbearer.testing.demo``: what ``fedbearer demo`` runs, a whole login against a
  ``LocalFederation``, explained step by step.

``import fedbearer`` does not import this package, and ``responses`` (an optional
dependency) is only imported by the helpers that need it.
"""

from __future__ import annotations

from ._browser import ProgrammaticBrowser
from ._federation import Layout, LocalFederation
from ._responses import (
    CallbackOpener,
    add_discovery_document,
    add_token_error,
    add_token_response,
    mock_federation,
    mock_provider,
    provider_document,
)

__all__ = [
    "CallbackOpener",
    "Layout",
    "LocalFederation",
    "ProgrammaticBrowser",
    "add_discovery_document",
    "add_token_error",
    "add_token_response",
    "mock_federation",
    "mock_provider",
    "provider_document",
]
