"""A ready access token from the environment, for CI and containers where no browser can run.

``FEDBEARER_TOKEN`` first, then, for a Nebius-style federation, ``NEBIUS_IAM_TOKEN`` (the
variable the Nebius SDK and CLI read). :class:`~fedbearer.FederationAuth` reads them once,
when it is built, and then sends the token as it is: no cache, no refresh, no login. An
empty variable counts as unset, as in the Nebius SDK (a CI secret that is not defined
expands to the empty string). Any other value must be an access token that can go into
``Authorization: Bearer`` (:func:`~fedbearer._token.access_token_problem`); one that is not
is a :class:`~fedbearer.ConfigurationError` naming the variable, never quoting the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple, Optional

from ._exceptions import ConfigurationError
from ._token import Token, access_token_problem

__all__ = ["NEBIUS_TOKEN_ENV", "TOKEN_ENV", "EnvironmentToken", "environment_token"]

#: fedbearer's own variable: a ready access token, used before any other source.
TOKEN_ENV = "FEDBEARER_TOKEN"  # noqa: S105 - the name of a variable, not a secret
#: The Nebius SDK's and CLI's variable, read for a Nebius-style federation after
#: :data:`TOKEN_ENV`.
NEBIUS_TOKEN_ENV = "NEBIUS_IAM_TOKEN"  # noqa: S105


class EnvironmentToken(NamedTuple):
    """A token found in the environment and the variable that held it."""

    variable: str
    token: Token


def token_variables(*, nebius: bool) -> tuple[str, ...]:
    """The variables consulted, in order: ``FEDBEARER_TOKEN``, then ``NEBIUS_IAM_TOKEN``
    when the federation is Nebius-style."""
    return (TOKEN_ENV, NEBIUS_TOKEN_ENV) if nebius else (TOKEN_ENV,)


def read_token_variable(name: str, env: Optional[Mapping[str, str]] = None) -> Optional[Token]:
    """The token in variable ``name``, or ``None`` when it is unset or empty.

    The value is taken exactly as it is, with no white space stripped: a token with a
    trailing newline (``export FEDBEARER_TOKEN="$(cat file)"`` keeps none, a secret pasted
    into a CI form may) is an error to fix, not something to guess at.
    """
    env = os.environ if env is None else env
    value = env.get(name, "")
    if not value:
        return None
    problem = access_token_problem(value)
    if problem is not None:
        raise ConfigurationError(
            f"{name} {problem}: it must be an access token exactly as sent after "
            "'Authorization: Bearer ' (RFC 6750 b64token: letters, digits, -._~+/ and a "
            f"trailing =, no spaces or line breaks). Fix it, or unset {name} to log in instead"
        )
    # No expiry: the token is used as it is until the API refuses it, and never renewed.
    return Token(value, None)


def environment_token(
    env: Optional[Mapping[str, str]] = None, *, nebius: bool
) -> Optional[EnvironmentToken]:
    """The first token set in :func:`token_variables`, or ``None`` when none is set.

    The first variable that is set (not empty) decides: a malformed ``FEDBEARER_TOKEN`` is
    an error even when ``NEBIUS_IAM_TOKEN`` holds a good token, so a typo never silently
    makes another token (another identity) the one sent.
    """
    for name in token_variables(nebius=nebius):
        token = read_token_variable(name, env)
        if token is not None:
            return EnvironmentToken(name, token)
    return None
