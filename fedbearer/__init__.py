"""fedbearer: interactive OAuth 2.0 federation login for ``requests``.

Authorization code + PKCE (S256) with a loopback redirect (RFC 6749, RFC 7636, RFC 8252),
wire- and cache-compatible with the Nebius SDK's federation bearer.
"""

from __future__ import annotations

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
    TokenDataError,
    TokenEndpointError,
)
from ._keyring import KeyringTokenCache
from ._login import authorize
from ._nebius_config import NebiusProfile, load_nebius_profile
from ._revocation import LogoutResult
from ._settings import DEFAULT_LOGIN_TIMEOUT, LoginSettings
from ._token import DEFAULT_REFRESH_MARGIN, DEFAULT_TOKEN_LIFETIME, Token
from ._version import __version__

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_LOGIN_TIMEOUT",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TOKEN_LIFETIME",
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
