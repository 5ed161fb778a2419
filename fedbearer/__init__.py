"""fedbearer: interactive OAuth 2.0 federation login for ``requests``.

Authorization code + PKCE (S256) with a loopback redirect (RFC 6749, RFC 7636, RFC 8252),
wire- and cache-compatible with the Nebius SDK's federation bearer.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TOKEN_LIFETIME",
    "AuthorizationError",
    "Bearer",
    "ConfigurationError",
    "FederationAuth",
    "FedbearerError",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidTokenResponseError",
    "LoginError",
    "LoginTimeoutError",
    "Receiver",
    "Token",
    "TokenDataError",
    "TokenEndpointError",
    "__version__",
    "authorize",
]
