"""fedbearer's exceptions: one tree, rooted at :class:`FedbearerError`.

::

    FedbearerError
    ├── ConfigurationError (ValueError)      bad endpoint, port, profile, option
    │   └── DiscoveryError                   the provider's discovery document is unusable
    ├── TokenDataError (ValueError)          a serialised token that is not one
    ├── LoginError                           the interactive login did not produce a code
    │   ├── AuthorizationError               the federation answered error=... (RFC 6749 §4.1.2.1)
    │   ├── LoginTimeoutError (TimeoutError) the deadline passed first
    │   │   └── DeviceCodeExpiredError       the device code expired unused (RFC 8628 §3.5)
    │   └── InteractionRequiredError         a login is needed but interaction is disabled
    │       └── LoginAbandonedError          ... or the last one was abandoned moments ago
    └── TokenEndpointError                   the token endpoint failed (RFC 6749 §5.2)
        ├── InvalidGrantError                code or refresh token rejected (invalid_grant)
        ├── InvalidClientError               client_id rejected (invalid_client)
        ├── InvalidTokenResponseError        a 200 answer that is not a usable token
        └── RevocationError                  the revocation endpoint refused (RFC 7009 §2.2.1)

Messages say what happened and what to do. None of them ever contains an access token,
refresh token, authorization code, state or PKCE verifier: the constructors only take the
federation's error *code*, its human description and numbers.
"""

from __future__ import annotations

from typing import Optional


class FedbearerError(Exception):
    """Base class of every error fedbearer raises on purpose."""


class ConfigurationError(FedbearerError, ValueError):
    """An argument or setting cannot work (bad endpoint, busy fixed port, unknown profile)."""


class DiscoveryError(ConfigurationError):
    """The provider's discovery document (OpenID Connect Discovery 1.0, RFC 8414) cannot be
    used: unreachable, not JSON, or failing a rule (issuer, https, PKCE S256). The message
    names the issuer and the rule; a network failure is chained as ``__cause__``."""


class TokenDataError(FedbearerError, ValueError):
    """A serialised token (``{"token", "expires_at"}``) has the wrong shape or types."""


class LoginError(FedbearerError):
    """The interactive login ended without an authorization code."""


class _FederationErrorMixin:
    """Carries the RFC 6749 error triple the federation sent (code, description, URI)."""

    error: str
    error_description: Optional[str]
    error_uri: Optional[str]

    def _set_error(
        self, error: str, error_description: Optional[str], error_uri: Optional[str]
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri

    def _describe(self) -> str:
        text = self.error
        if self.error_description:
            text += f": {self.error_description}"
        if self.error_uri:
            text += f" (see {self.error_uri})"
        return text


class AuthorizationError(_FederationErrorMixin, LoginError):
    """The federation redirected back with ``error=...`` (RFC 6749 §4.1.2.1).

    ``access_denied`` means the user (or a policy) refused; anything else means the
    federation rejected the request, usually a client_id or federation-id it does not know.
    """

    def __init__(
        self,
        error: str,
        error_description: Optional[str] = None,
        error_uri: Optional[str] = None,
    ) -> None:
        self._set_error(error, error_description, error_uri)
        if error == "access_denied":
            hint = "the login was refused; run it again and approve it in the browser"
        else:
            hint = "check client_id, federation_id and the federation endpoint"
        super().__init__(f"federation refused the login ({self._describe()}); {hint}")


class LoginTimeoutError(LoginError, TimeoutError):
    """The login deadline passed before the browser came back (or the token was issued)."""


class DeviceCodeExpiredError(LoginTimeoutError):
    """The device code expired before the user entered it (``expired_token``, or its
    ``expires_in`` passed; RFC 8628 §3.5). Start the login again for a new code."""


class InteractionRequiredError(LoginError):
    """A login is needed but this process must not interact (``interactive=False``)."""


class LoginAbandonedError(InteractionRequiredError):
    """A login would start by itself, but the last one for this identity was abandoned
    (timed out, denied, its device code expired) within the cool-down (see
    :doc:`remote_logins`). ``abandoned_at`` and ``until`` are POSIX seconds; the message
    says which command or method logs in now."""

    def __init__(self, message: str, *, abandoned_at: float, until: float) -> None:
        self.abandoned_at = abandoned_at
        self.until = until
        super().__init__(message)


class TokenEndpointError(_FederationErrorMixin, FedbearerError):
    """The token endpoint failed: HTTP status and, when it sent one, the RFC 6749 error code.

    The response body is never part of the message: it may echo secrets.
    """

    #: HTTP status of the failed answer, ``None`` when no answer came (connection error).
    status: Optional[int]

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        error: str = "",
        error_description: Optional[str] = None,
        error_uri: Optional[str] = None,
    ) -> None:
        self.status = status
        self._set_error(error, error_description, error_uri)
        super().__init__(message)


class InvalidGrantError(TokenEndpointError):
    """``invalid_grant``: the code or refresh token is expired, used or revoked. Log in again."""


class InvalidClientError(TokenEndpointError):
    """``invalid_client``: the federation does not know this client_id."""


class InvalidTokenResponseError(TokenEndpointError):
    """The token endpoint answered 200 with something that is not a usable token."""


class RevocationError(TokenEndpointError):
    """The revocation endpoint refused or failed (RFC 7009 §2.2.1): the token may still be
    valid at the provider until it expires. Carries ``status`` and ``error`` as its base."""
