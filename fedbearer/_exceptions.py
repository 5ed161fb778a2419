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

    ScopeWarning (UserWarning)               fewer scopes granted than requested

Messages say what happened and what to do. None of them ever contains an access token,
refresh token, authorization code, state or PKCE verifier: the constructors only take the
federation's error *code*, its human description and numbers.

A message that asks to check a setting names it in the caller's terms. ``str(error)`` is
written for Python callers (``scopes=``, ``client_id=``);
:attr:`~fedbearer.FedbearerError.settings` lists the settings it names, and
:meth:`~fedbearer.FedbearerError.spelt` writes the same message with another spelling of
them, as the ``fedbearer`` command does with its flags (``--scope``).
"""

from __future__ import annotations

import re
from typing import Callable, Optional, TypeVar

_E = TypeVar("_E", bound="FedbearerError")

# A setting's name inside a message template. NUL cannot come from a provider: every text
# taken from one is cleaned of control characters before it reaches a message.
_SETTING = re.compile("\x00([a-z_]+)\x00")


def setting(name: str) -> str:
    """The placeholder of the setting (a Python parameter name) in a message template."""
    return f"\x00{name}\x00"


#: Placeholders that are not one parameter: what a Python caller reads for them. The
#: command line spells them its own way (``fedbearer._cli.options.FLAGS``), possibly not at
#: all (a clause about a method it does not have).
_PYTHON_PHRASES = {
    "proxies": "HTTPS_PROXY, NO_PROXY, or session=",
    "device_code_on": "device_code=True",
    "device_code_off": "device_code=False",
    "without_document": (
        "; a provider without one needs its endpoints given: FederationAuth.from_endpoints("
        "authorization_endpoint=, token_endpoint=)"
    ),
}


def python_spelling(name: str) -> str:
    """How a Python caller writes a setting: ``scopes=``."""
    return _PYTHON_PHRASES.get(name, f"{name}=")


class FedbearerError(Exception):
    """Base class of every error fedbearer raises on purpose.

    ``settings``: the settings (by their Python parameter names) the message asks the
    caller to check, in order; empty when it names none.
    """

    settings: tuple[str, ...] = ()
    _template: Optional[str] = None

    @classmethod
    def naming(cls: type[_E], template: str, *args: object, **kwargs: object) -> _E:
        """An error whose message is ``template`` (with :func:`setting` placeholders) spelt
        for Python callers; the other arguments go to the constructor."""
        error = cls(_SETTING.sub(lambda m: python_spelling(m.group(1)), template), *args, **kwargs)
        error._name_settings(template)
        return error

    def _name_settings(self, template: str) -> None:
        self._template = template
        names = (name for name in _SETTING.findall(template) if name not in _PYTHON_PHRASES)
        self.settings = tuple(dict.fromkeys(names))

    def spelt(self, spelling: Callable[[str], str]) -> str:
        """The message with each setting it names written as ``spelling(name)`` (the
        command line passes its flag for the name)."""
        if self._template is None:
            return str(self)
        return _SETTING.sub(lambda m: spelling(m.group(1)), self._template)


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

    The hint follows the error code: ``access_denied`` means the user or a policy of the
    provider refused; ``invalid_scope`` names the scopes; ``invalid_client`` and
    ``unauthorized_client`` the client id; ``invalid_request`` the federation id (or, for
    another provider, the extra parameters); ``login_required`` and the like an interactive
    prompt that was turned off; ``server_error`` and ``temporarily_unavailable`` the moment.
    Use :meth:`~fedbearer.AuthorizationError.for_code` to build one with the hint for the
    provider's kind.
    """

    def __init__(
        self,
        error: str,
        error_description: Optional[str] = None,
        error_uri: Optional[str] = None,
        *,
        message: Optional[str] = None,
    ) -> None:
        self._set_error(error, error_description, error_uri)
        if message is None:
            template = authorization_error_message(error, self._describe(), provider=False)
            message = _SETTING.sub(lambda m: python_spelling(m.group(1)), template)
        super().__init__(message)

    @classmethod
    def for_code(
        cls,
        error: str,
        error_description: Optional[str] = None,
        error_uri: Optional[str] = None,
        *,
        provider: bool,
    ) -> AuthorizationError:
        """The error for ``error``, its hint written for a Nebius federation or, with
        ``provider``, another OpenID provider; it names the setting to check."""
        probe = cls(error, error_description, error_uri, message="")
        template = authorization_error_message(error, probe._describe(), provider=provider)
        message = _SETTING.sub(lambda m: python_spelling(m.group(1)), template)
        found = cls(error, error_description, error_uri, message=message)
        found._name_settings(template)
        return found


def authorization_error_message(error: str, described: str, *, provider: bool) -> str:
    """The message template of an :class:`AuthorizationError` (RFC 6749 §4.1.2.1 codes,
    OpenID Connect Core §3.1.2.6), with :func:`setting` placeholders."""
    who = "the provider" if provider else "the federation"
    if error == "access_denied":
        hint = (
            f"the user or a policy of {who} refused it: if you approved it, this account "
            "may not use this application (ask the provider's administrator); otherwise run "
            "it again and approve it in the browser"
        )
    elif error == "invalid_scope":
        hint = f"check {setting('scopes')} against the scopes {who} allows for this client"
    elif error in ("invalid_client", "unauthorized_client"):
        hint = f"check {setting('client_id')}"
    elif error in ("login_required", "consent_required", "interaction_required"):
        hint = (
            f"{who} needs the user to interact; remove prompt=none from {setting('params')}"
            if provider
            else f"{who} needs the user to interact; run the login again"
        )
    elif error in ("server_error", "temporarily_unavailable"):
        hint = f"{who} had trouble; try again later"
    elif error == "invalid_request":
        hint = (
            f"check {setting('params')} and {setting('client_id')}"
            if provider
            else f"check {setting('federation_id')} and {setting('client_id')}"
        )
    elif provider:
        hint = f"check {setting('client_id')}, {setting('scopes')} and {setting('params')}"
    else:
        hint = (
            f"check {setting('client_id')}, {setting('federation_id')} and "
            f"{setting('federation_endpoint')}"
        )
    return f"{who} refused the login ({described}); {hint}"


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


class ScopeWarning(UserWarning):
    """A login was granted fewer scopes than it asked for (RFC 6749 §3.3, §5.1): the
    message names those left out. The token carries what was granted
    (:attr:`Token.scope <fedbearer.Token.scope>`). Not an error: the token works for what
    it was granted; ``warnings.simplefilter("error", ScopeWarning)`` makes it one."""


class RevocationError(TokenEndpointError):
    """The revocation endpoint refused or failed (RFC 7009 §2.2.1): the token may still be
    valid at the provider until it expires. Carries ``status`` and ``error`` as its base."""
