"""FederationAuth.logout(): revoke at the provider (RFC 7009) when it can, always forget."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import yaml

from fedbearer import (
    DiscoveryError,
    FederationAuth,
    FileTokenCache,
    LogoutResult,
    MemoryTokenCache,
    RevocationError,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .conftest import from_issuer, nebius_auth

pytestmark = pytest.mark.timeout(60)

REVOKING = sorted(n for n, layout in LocalFederation.LAYOUTS.items() if layout.revocation_path)
NOT_REVOKING = sorted(
    n for n, layout in LocalFederation.LAYOUTS.items() if not layout.revocation_path
)


@pytest.mark.parametrize("layout", REVOKING)
def test_logout_revokes_the_refresh_token_then_the_access_token_and_forgets_them(
    make_provider, layout
):
    fed = make_provider(layout=layout)
    cache = MemoryTokenCache()
    auth = from_issuer(fed, cache=cache)
    token = auth.get_token()
    result = auth.logout()
    assert result == LogoutResult(
        forgotten=True,
        revocation_endpoint=fed.revocation_url,
        revoked=("refresh_token", "access_token"),
        not_revoked=(),
        expiration=token.expiration,
    )
    assert [p["token_type_hint"] for p in fed.revocation_params] == [
        "refresh_token",
        "access_token",
    ]
    assert [p["token"] for p in fed.revocation_params] == [token.refresh_token, token.token]
    assert not fed.is_valid(token.token)
    assert fed.granted_scopes(token.refresh_token or "") is None
    assert cache.get(auth.bearer.name) is None
    assert auth.get_token().token != token.token and fed.logins == 2  # a new login


@pytest.mark.parametrize("layout", NOT_REVOKING)
def test_logout_says_plainly_when_the_provider_cannot_revoke(make_provider, layout):
    fed = make_provider(layout=layout)
    cache = MemoryTokenCache()
    auth = from_issuer(fed, cache=cache)
    token = auth.get_token()
    result = auth.logout()
    assert result.forgotten and result.revocation_endpoint is None
    assert result.revoked == () and result.not_revoked == ("refresh_token", "access_token")
    assert fed.is_valid(token.token)  # still valid at the provider until it expires
    assert cache.get(auth.bearer.name) is None and fed.revocation_requests == 0


def test_explicit_revocation_endpoint_is_used(make_provider):
    fed = make_provider(layout="keycloak", discovery=None)
    assert fed.revocation_url is not None
    auth = FederationAuth.from_endpoints(
        fed.client_id,
        authorization_endpoint=fed.authorize_url,
        token_endpoint=fed.token_url,
        revocation_endpoint=fed.revocation_url,
        issuer=fed.issuer,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        cache=None,
    )
    token = auth.get_token()
    assert auth.logout().revoked == ("refresh_token", "access_token")
    assert not fed.is_valid(token.token)


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_a_nebius_federation_is_not_contacted_and_its_entry_removed(federation, isolated_env):
    auth = nebius_auth(federation)
    token = auth.get_token()
    result = auth.logout()
    assert result.revocation_endpoint is None and result.forgotten
    assert federation.revocation_requests == 0 and federation.is_valid(token.token)
    path = Path(isolated_env) / ".nebius" / "credentials.yaml"
    assert yaml.safe_load(path.read_text())["tokens"] == {}


def test_logout_without_a_token_contacts_nobody(make_provider):
    fed = make_provider(layout="okta")
    result = from_issuer(fed).logout()
    assert result == LogoutResult(forgotten=False, revocation_endpoint=None)
    assert fed.discovery_requests == 0 and fed.revocation_requests == 0


def test_a_cached_token_newer_than_the_held_one_is_revoked_too(make_provider):
    # Another process renewed (and cached) while this one held its own token.
    fed = make_provider(layout="google")
    cache = MemoryTokenCache()
    auth = from_issuer(fed, cache=cache)
    held = auth.get_token()
    newer = from_issuer(fed, cache=MemoryTokenCache(), profile="elsewhere").get_token()
    cache.put(auth.bearer.name, newer)
    assert auth.logout().revoked == ("refresh_token", "access_token")
    assert [(p["token_type_hint"], p["token"]) for p in fed.revocation_params] == [
        ("refresh_token", newer.refresh_token),
        ("refresh_token", held.refresh_token),
        ("access_token", newer.token),
        ("access_token", held.token),
    ]
    assert not fed.is_valid(held.token) and not fed.is_valid(newer.token)


def test_a_token_type_the_provider_cannot_revoke_is_reported_not_raised(make_provider):
    fed = make_provider(layout="okta")
    auth = from_issuer(fed)
    auth.get_token()
    fed.fail_next("unsupported_token_type")  # taken by the refresh token's revocation
    result = auth.logout()
    assert result.revoked == ("access_token",) and result.not_revoked == ("refresh_token",)


def test_a_failed_revocation_still_forgets_the_tokens_then_raises(make_provider, tmp_path):
    fed = make_provider(layout="keycloak")
    cache = FileTokenCache(tmp_path / "tokens.yaml")
    auth = from_issuer(fed, cache=cache)
    token = auth.get_token()
    fed.fail_next("revocation_unavailable")
    with pytest.raises(RevocationError) as info:
        auth.logout()
    assert info.value.status == 503 and info.value.error == "temporarily_unavailable"
    assert token.token not in str(info.value)
    assert cache.get(auth.bearer.name) is None and cache.entries() == []
    assert fed.is_valid(token.token)  # the provider did not revoke it
    assert auth.get_token().token != token.token  # the next request logs in again


def test_an_unreadable_document_still_forgets_the_tokens_then_raises(make_provider):
    fed = make_provider(layout="keycloak")
    cache = MemoryTokenCache()
    auth = from_issuer(fed, cache=cache)
    auth.get_token()
    other = from_issuer(make_provider(layout="okta", metadata={"issuer": "http://x.example"}))
    other_cache = other.cache
    assert isinstance(other_cache, MemoryTokenCache)
    other_cache.put(other.bearer.name, auth.get_token())
    with pytest.raises(DiscoveryError):
        other.logout()
    assert other_cache.get(other.bearer.name) is None


def test_logout_logs_no_token(make_provider, caplog):
    fed = make_provider(layout="keycloak")
    auth = from_issuer(fed)
    token = auth.get_token()
    with caplog.at_level(logging.DEBUG, logger="fedbearer"):
        auth.logout()
    assert "revoking the refresh_token" in caplog.text
    assert token.token not in caplog.text and str(token.refresh_token) not in caplog.text
