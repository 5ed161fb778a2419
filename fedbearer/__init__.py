"""fedbearer: interactive OAuth 2.0 federation login for ``requests``.

Authorization code + PKCE (S256) with a loopback redirect (RFC 6749, RFC 7636, RFC 8252),
wire- and cache-compatible with the Nebius SDK's federation bearer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._auth import FederationAuth
from ._bearer import Bearer, Receiver
from ._exceptions import (
    AuthorizationError,
    ConfigurationError,
    FedbearerError,
    InteractionRequiredError,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenResponseError,
    LoginError,
    LoginTimeoutError,
    TokenDataError,
    TokenEndpointError,
)
from ._login import DEFAULT_LOGIN_TIMEOUT, authorize
from ._token import DEFAULT_REFRESH_MARGIN, DEFAULT_TOKEN_LIFETIME, Token

if TYPE_CHECKING:  # the real names for type checkers; at run time see __getattr__
    from ._cache import (
        FileTokenCache,
        MemoryTokenCache,
        NoTokenCache,
        TokenCache,
        TokenCacheWarning,
        cache_key,
        default_cache,
    )
    from ._nebius_config import NebiusProfile, load_nebius_profile

__version__ = "0.1.0"

# The token cache pulls in file locking and YAML only when first used: a process whose
# token is already in memory, or that never touches the cache, never pays for them.
_LAZY = {
    "TokenCache": "._cache",
    "FileTokenCache": "._cache",
    "MemoryTokenCache": "._cache",
    "NoTokenCache": "._cache",
    "TokenCacheWarning": "._cache",
    "default_cache": "._cache",
    "cache_key": "._cache",
    "NebiusProfile": "._nebius_config",
    "load_nebius_profile": "._nebius_config",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedbearer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TOKEN_LIFETIME",
    "AuthorizationError",
    "Bearer",
    "ConfigurationError",
    "FedbearerError",
    "FederationAuth",
    "FileTokenCache",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidTokenResponseError",
    "LoginError",
    "LoginTimeoutError",
    "MemoryTokenCache",
    "NebiusProfile",
    "NoTokenCache",
    "Receiver",
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
