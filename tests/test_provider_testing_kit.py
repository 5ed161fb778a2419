"""The test kit for any OpenID provider (issue #21, finding 6): ``mock_provider`` mocks a
provider with its discovery document (issuer, endpoints, tokens, refresh, revocation), and
``fedbearer_cache`` is the cache the adapter under test uses, whichever kind it is.
"""

from __future__ import annotations

import io
import warnings

import pytest
import requests
import responses
from responses import matchers

from fedbearer import Account, FederationAuth, ScopeWarning
from fedbearer.testing import (
    LocalFederation,
    add_discovery_document,
    mock_provider,
    provider_document,
)

ISSUER = "https://provider.test"


def bearer(token: str) -> list:
    return [matchers.header_matcher({"Authorization": f"Bearer {token}"})]


@responses.activate
def test_mock_provider_serves_discovery_login_and_account():
    options = mock_provider(access_token="tok-1", scopes=["openid", "email"])
    auth = FederationAuth.from_issuer(**options)
    token = auth.get_token()
    assert token.token == "tok-1" and token.scope == ("openid", "email")
    assert token.account == Account("test-user")
    calls = [(c.request.method, c.request.url) for c in responses.calls]
    assert calls[0] == ("GET", f"{ISSUER}/.well-known/openid-configuration")
    assert ("POST", f"{ISSUER}/token") in calls
    assert options["opener"].opened[0].startswith(f"{ISSUER}/authorize?")


@responses.activate  # the default registry answers a URL's responses in order
def test_mock_provider_scripts_refreshes_in_order():
    options = mock_provider(refresh_token="r-1", refreshed_tokens=["tok-2"])
    responses.get("https://api.test/x", status=401, match=bearer("test-token"))
    responses.get("https://api.test/x", json={}, match=bearer("tok-2"))
    session = requests.Session()
    session.auth = FederationAuth.from_issuer(**options)
    assert session.get("https://api.test/x", timeout=10).status_code == 200
    assert len(options["opener"].opened) == 1  # the renewal used the refresh token


@responses.activate
def test_mock_provider_accepts_revocation_and_can_have_none():
    auth = FederationAuth.from_issuer(**mock_provider(refresh_token="r-1"))
    auth.get_token()
    result = auth.logout()
    assert result.revocation_endpoint == f"{ISSUER}/revoke"
    assert set(result.revoked) == {"refresh_token", "access_token"}

    other = "https://other.test"
    auth = FederationAuth.from_issuer(
        **mock_provider(issuer=other, metadata={"revocation_endpoint": None})
    )
    auth.get_token()
    assert auth.logout().revocation_endpoint is None


@responses.activate
def test_mock_provider_grants_less_when_asked_and_the_login_warns():
    options = mock_provider(scopes=["openid", "email"], granted_scope="openid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token = FederationAuth.from_issuer(**options).get_token()
    assert token.scope == ("openid",)
    assert [w for w in caught if issubclass(w.category, ScopeWarning)]


@responses.activate
def test_each_test_reads_the_document_it_registered():
    # A document remembered from an earlier login in this process is forgotten.
    for token in ("first", "second"):
        FederationAuth.from_issuer(**mock_provider(access_token=token)).get_token()
    discovery = [c for c in responses.calls if c.request.method == "GET"]
    assert len(discovery) == 2


def test_the_document_is_one_fedbearer_accepts_and_fields_can_change():
    document = provider_document(ISSUER, scopes_supported=["openid"], revocation_endpoint=None)
    assert document["issuer"] == ISSUER and "revocation_endpoint" not in document
    assert document["code_challenge_methods_supported"] == ["S256"]
    with responses.RequestsMock() as rsps:
        add_discovery_document(rsps, ISSUER, scopes_supported=["openid"])
        auth = FederationAuth.from_issuer(
            ISSUER, "c", scopes="openid email", cache=None, interactive=True, writer=io.StringIO()
        )
        with pytest.raises(Exception, match="does not support the scope email"):
            auth.get_token()


def test_fedbearer_cache_holds_the_tokens_of_a_from_issuer_adapter(
    fedbearer_cache, programmatic_browser
):
    with LocalFederation(layout="okta", federation_id=None) as provider:
        FederationAuth.from_issuer(
            provider.issuer, provider.client_id, opener=programmatic_browser, interactive=True
        ).get_token()
    assert len(fedbearer_cache.entries()) == 1  # what docs/testing.rst promises
    ((key, _),) = fedbearer_cache.entries()
    assert fedbearer_cache.get(key) is not None and fedbearer_cache.providers.entries()
    assert fedbearer_cache.nebius.entries() == []


def test_fedbearer_cache_holds_the_tokens_of_a_nebius_adapter(
    fedbearer_cache, local_federation, programmatic_browser
):
    FederationAuth(
        local_federation.client_id,
        local_federation.endpoint,
        local_federation.federation_id,
        opener=programmatic_browser,
        interactive=True,
    ).get_token()
    assert len(fedbearer_cache.entries()) == 1
    assert fedbearer_cache.path.endswith("credentials.yaml")
    assert fedbearer_cache.providers.entries() == []
