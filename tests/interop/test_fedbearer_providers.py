"""``FederationAuth.from_issuer`` against the independent provider, found through its own
discovery document, with scopes beyond ``openid``, the real Chromium logging in; then
``logout()`` revokes at its revocation endpoint and the provider refuses the tokens (#13).

The provider is dressed as a Nebius federation, so its ``federation-id`` check is on: here
``federation-id`` is just one of the extra authorization parameters, as for any provider
that needs one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
import yaml

from fedbearer import FederationAuth

from .chromium import BrowserDriver, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

SCOPES = ("openid", "profile", "email", "offline_access")

web = requests.Session()
web.trust_env = False  # loopback only


def userinfo(op: IndependentProvider, access_token: str) -> requests.Response:
    return web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


@pytest.mark.fedbearer_real  # the default cache (in the temporary HOME) and $BROWSER
def test_discovery_scopes_login_and_logout_against_the_independent_provider(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, isolated_env: Path
) -> None:
    op = independent_provider
    document = web.get(op.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert document["revocation_endpoint"] == op.revocation_url  # what logout will use
    run = browser_env.expect(login_and_approve("interop-user"))
    auth = FederationAuth.from_issuer(
        op.issuer,
        op.client_id,
        scopes=SCOPES,
        # oidc-provider grants offline_access only with prompt=consent (OIDC Core §11).
        params={"federation-id": op.federation_id, "prompt": "consent"},
        writer=io.StringIO(),
        timeout=60,
        interactive=True,
    )
    with requests.Session() as session:
        session.trust_env = False
        session.auth = auth
        me = session.get(op.userinfo_url, timeout=60)
    run.wait(60).raise_for_error()
    assert me.status_code == 200
    # The profile and email scopes were granted: their claims are released.
    assert me.json() == {
        "sub": "interop-user",
        "name": "interop-user",
        "email": "interop-user@interop.test",
        "email_verified": False,
    }
    sent = op.authorize_log()
    assert sent, "no authorization request reached the provider"
    for query in sent:  # the pre-flight check's and the browser's: the same request
        assert query["scope"] == " ".join(SCOPES)
        assert query["prompt"] == "consent"
        assert query["federation-id"] == op.federation_id
        assert query["code_challenge_method"] == "S256"
    (exchange,) = [e for e in op.token_log() if e["form"].get("grant_type") == "authorization_code"]
    assert exchange["status"] == 200 and exchange["authorization"] is None  # a public client

    # Tokens for another provider go to fedbearer's own file, not the Nebius CLI's.
    token = auth.get_token()
    path = isolated_env / ".cache" / "fedbearer" / "tokens.yaml"
    assert auth.bearer.name in yaml.safe_load(path.read_text())["tokens"]
    assert not (isolated_env / ".nebius").exists()

    result = auth.logout()
    assert result.revocation_endpoint == op.revocation_url
    assert result.revoked == ("refresh_token", "access_token") and result.not_revoked == ()
    assert yaml.safe_load(path.read_text())["tokens"] == {}
    # The provider refuses both tokens now.
    assert userinfo(op, token.token).status_code == 401
    refused = web.post(
        op.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "client_id": op.client_id,
        },
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert browser_env.unexpected == []
