"""fedbearer: interactive OAuth 2.0 federation login for ``requests``.

Authorization code + PKCE (S256) with a loopback redirect (RFC 6749, RFC 7636, RFC 8252),
wire- and cache-compatible with the Nebius SDK's federation bearer.

The public names are loaded on first use through a module ``__getattr__`` (PEP 562, the
mechanism scientific Python's ``lazy_loader`` standardised): ``import fedbearer`` costs
nothing, and each name brings in only its own module. That is what keeps a cached
``fedbearer token`` (which kubectl runs before every command as an exec credential
plugin) from importing ``requests``, ``oauthlib`` and the login machinery it does not use;
see ``docs/performance.rst``. ``__all__``, ``dir()`` and the ``TYPE_CHECKING`` imports
below keep star-imports, completion and type checkers seeing every name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._auth import FederationAuth
    from ._bearer import Bearer, Receiver
    from ._cache import (
        FileTokenCache,
        MemoryTokenCache,
        NoTokenCache,
        TokenCache,
        TokenCacheWarning,
        cache_key,
        default_cache,
    )
    from ._credentials import DEFAULT_CACHE
    from ._exceptions import (
        AuthorizationError,
        ConfigurationError,
        DiscoveryError,
        FedbearerError,
        InteractionRequiredError,
        InvalidClientError,
        InvalidGrantError,
        InvalidTokenResponseError,
        LoginError,
        LoginTimeoutError,
        RevocationError,
        ScopeWarning,
        TokenDataError,
        TokenEndpointError,
    )
    from ._keyring import KeyringTokenCache
    from ._login import authorize
    from ._nebius_config import NebiusProfile, load_nebius_profile
    from ._revocation import LogoutResult
    from ._settings import DEFAULT_LOGIN_TIMEOUT, LoginSettings
    from ._token import DEFAULT_REFRESH_MARGIN, DEFAULT_TOKEN_LIFETIME, Account, Token

#: Public name -> the private module that defines it.
_SOURCES = {
    "FederationAuth": "_auth",
    "Bearer": "_bearer",
    "Receiver": "_bearer",
    "FileTokenCache": "_cache",
    "MemoryTokenCache": "_cache",
    "NoTokenCache": "_cache",
    "TokenCache": "_cache",
    "TokenCacheWarning": "_cache",
    "cache_key": "_cache",
    "default_cache": "_cache",
    "DEFAULT_CACHE": "_credentials",
    "AuthorizationError": "_exceptions",
    "ConfigurationError": "_exceptions",
    "DiscoveryError": "_exceptions",
    "FedbearerError": "_exceptions",
    "InteractionRequiredError": "_exceptions",
    "InvalidClientError": "_exceptions",
    "InvalidGrantError": "_exceptions",
    "InvalidTokenResponseError": "_exceptions",
    "LoginError": "_exceptions",
    "LoginTimeoutError": "_exceptions",
    "RevocationError": "_exceptions",
    "ScopeWarning": "_exceptions",
    "TokenDataError": "_exceptions",
    "TokenEndpointError": "_exceptions",
    "KeyringTokenCache": "_keyring",
    "authorize": "_login",
    "NebiusProfile": "_nebius_config",
    "load_nebius_profile": "_nebius_config",
    "LogoutResult": "_revocation",
    "DEFAULT_LOGIN_TIMEOUT": "_settings",
    "LoginSettings": "_settings",
    "DEFAULT_REFRESH_MARGIN": "_token",
    "DEFAULT_TOKEN_LIFETIME": "_token",
    "Token": "_token",
    "Account": "_token",
}

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_LOGIN_TIMEOUT",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TOKEN_LIFETIME",
    "Account",
    "AuthorizationError",
    "Bearer",
    "ConfigurationError",
    "DiscoveryError",
    "FedbearerError",
    "FederationAuth",
    "FileTokenCache",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidTokenResponseError",
    "KeyringTokenCache",
    "LoginError",
    "LoginSettings",
    "LoginTimeoutError",
    "LogoutResult",
    "MemoryTokenCache",
    "NebiusProfile",
    "NoTokenCache",
    "Receiver",
    "RevocationError",
    "ScopeWarning",
    "Token",
    "TokenCache",
    "TokenCacheWarning",
    "TokenDataError",
    "TokenEndpointError",
    "__version__",
    "authorize",
    "cache_key",
    "default_cache",
    "load_nebius_profile",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` and keep the value here (PEP 562)."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value  # the next lookup is an ordinary attribute read
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
