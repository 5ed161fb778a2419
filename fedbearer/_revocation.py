"""Token revocation (RFC 7009): what a logout asks of the provider.

:func:`revoke_all` revokes what one identity holds, refresh tokens first, through the same
dedicated session as every other call to the provider; :class:`LogoutResult` tells the
caller (and ``fedbearer logout``) what was revoked and what could not be.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

import requests

from ._exceptions import RevocationError
from ._http import call
from ._login import call_budget, endpoints
from ._protocol import (
    REVOCATION_ORDER,
    Federation,
    parse_revocation_response,
    revocation_body,
)
from ._settings import LoginSettings, Verify
from ._token import Token

log = logging.getLogger("fedbearer.login")


@dataclass(frozen=True)
class LogoutResult:
    """What :meth:`FederationAuth.logout() <fedbearer.FederationAuth.logout>` did.

    ``forgotten``
        A token was held or cached, and is gone from both now.
    ``revocation_endpoint``
        Where the tokens were revoked; ``None`` when the provider has no revocation
        endpoint (a Nebius federation, Entra ID) or there was nothing to revoke.
    ``revoked``
        The kinds of token revoked, in the order it was done: ``"refresh_token"``,
        ``"access_token"``.
    ``not_revoked``
        The kinds of token forgotten but not revoked: all of them when the provider has no
        revocation endpoint, else those it answered ``unsupported_token_type`` for
        (RFC 7009 §2.2.1). They stay valid at the provider until they expire.
    ``expiration``
        When the forgotten access token expires (``None``: no expiry stated, or nothing
        was forgotten).
    """

    forgotten: bool
    revocation_endpoint: Optional[str]
    revoked: tuple[str, ...] = ()
    not_revoked: tuple[str, ...] = ()
    expiration: Optional[datetime] = None


def revoke_token(
    federation: Federation,
    token: str,
    *,
    token_type_hint: str,
    client_id: str,
    verify: Verify,
    deadline: float,
    client_secret: Optional[str] = None,
    session: Optional[requests.Session] = None,
) -> bool:
    """Revoke ``token`` at the provider's revocation endpoint (RFC 7009 §2.1).

    True when it is revoked (or was unknown already, §2.2), False when the provider cannot
    revoke that kind of token (``unsupported_token_type``). A refusal or failure is a
    :class:`~fedbearer.RevocationError` (or :class:`~fedbearer.LoginTimeoutError`); neither
    the token nor the answer's body is in any message or log.
    """
    assert federation.revocation_url is not None
    body = revocation_body(
        token=token,
        token_type_hint=token_type_hint,
        client_id=client_id,
        client_secret=client_secret,
    )
    log.debug("revoking the %s at %s", token_type_hint, federation.revocation_url)
    answer = call(
        federation.revocation_url,
        body,
        deadline=deadline,
        verify=verify,
        session=session,
        what="revocation endpoint",
        error=RevocationError,
    )
    return parse_revocation_response(
        answer.status,
        answer.body,
        token_type_hint=token_type_hint,
        secrets_=(token, client_secret or ""),
    )


def revoke_all(settings: LoginSettings, tokens: Sequence[Token]) -> LogoutResult:
    """Revoke every distinct refresh token in ``tokens``, then every access token.

    The provider is not contacted when there is nothing to revoke, and its discovery
    document is read only then. The first failure stops the revocation and is raised. All
    of it (discovery included) ends by one deadline: :data:`~fedbearer._http.TOKEN_REQUEST_TIMEOUT`
    (30 s) from the start, or the settings' login ``timeout`` when that is shorter.
    """
    held = {
        kind: list(dict.fromkeys(value for value in values if value))
        for kind, values in (
            ("refresh_token", [token.refresh_token for token in tokens]),
            ("access_token", [token.token for token in tokens]),
        )
    }
    kinds = tuple(kind for kind in REVOCATION_ORDER if held[kind])
    expiration = next((token.expiration for token in tokens), None)
    if not kinds:
        return LogoutResult(forgotten=False, revocation_endpoint=None)
    deadline = time.monotonic() + call_budget(settings)
    federation = endpoints(settings, deadline=deadline)
    if federation.revocation_url is None:
        log.info("%s has no revocation endpoint; forgetting the tokens only", settings.provider)
        return LogoutResult(
            forgotten=True, revocation_endpoint=None, not_revoked=kinds, expiration=expiration
        )
    revoked: list[str] = []
    refused: list[str] = []
    for kind in kinds:
        for value in held[kind]:
            done = revoke_token(
                federation,
                value,
                token_type_hint=kind,
                client_id=settings.client_id,
                verify=settings.verify,
                deadline=deadline,
                client_secret=settings.client_secret,
                session=settings.session,
            )
            (revoked if done else refused).append(kind)
    return LogoutResult(
        forgotten=True,
        revocation_endpoint=federation.revocation_url,
        revoked=tuple(dict.fromkeys(revoked)),
        not_revoked=tuple(kind for kind in dict.fromkeys(refused) if kind not in revoked),
        expiration=expiration,
    )
