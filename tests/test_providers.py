"""Any OpenID provider (issue #13): FederationAuth.from_issuer and from_endpoints against
LocalFederation in the layouts of Keycloak, Okta, Entra ID, Google, Auth0 and Dex."""

from __future__ import annotations

import io
import shlex
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from fedbearer import (
    Bearer,
    ConfigurationError,
    DiscoveryError,
    FederationAuth,
    FileTokenCache,
    InteractionRequiredError,
    InvalidClientError,
    LoginError,
    LoginSettings,
    MemoryTokenCache,
)
from fedbearer._cli import EXIT_OK, main
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .api_server import ProtectedAPI
from .conftest import from_issuer, nebius_auth, provider_options

pytestmark = pytest.mark.timeout(60)

LAYOUTS = sorted(LocalFederation.LAYOUTS)


def from_endpoints(fed: LocalFederation, **kwargs: Any) -> FederationAuth:
    return FederationAuth.from_endpoints(
        fed.client_id,
        authorization_endpoint=fed.authorize_url,
        token_endpoint=fed.token_url,
        **provider_options(**kwargs),
    )


def session_with(auth: FederationAuth) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ discovery


def test_construction_reads_no_document_and_opens_nothing(make_provider):
    fed = make_provider(layout="keycloak")
    opened: list[str] = []
    FederationAuth.from_issuer(fed.issuer, fed.client_id, opener=opened.append)
    FederationAuth.from_issuer(f"http://127.0.0.1:{free_port()}/nobody", "c")
    assert fed.discovery_requests == 0 and fed.authorize_requests == 0 and opened == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_first_request_logs_in_through_the_discovered_endpoints(make_provider, layout):
    fed = make_provider(layout=layout)
    with ProtectedAPI(fed.is_valid) as api:
        session = session_with(from_issuer(fed, scopes=["openid", "email"]))
        assert session.get(api.url + "/things").status_code == 200
        assert session.get(api.url + "/things").status_code == 200
    assert fed.discovery_requests == 1 and fed.logins == 1
    (params,) = fed.authorize_params
    assert params["scope"] == "openid email" and "federation-id" not in params
    assert fed.granted_scopes(fed.issued_tokens[-1]) == {"openid", "email"}


def test_the_document_is_read_once_per_process_for_every_login_and_refresh(make_provider):
    fed = make_provider(layout="okta")
    first = from_issuer(fed)
    token = first.get_token()
    second = from_issuer(fed, profile="other")  # another identity of the same issuer
    second.get_token()
    assert fed.is_valid(first.bearer.refresh(token).token)  # at the discovered endpoint
    assert (fed.logins, fed.refreshes, fed.discovery_requests) == (2, 1, 1)


def test_a_401_renews_and_resends_as_for_a_federation(make_provider):
    fed = make_provider(layout="google")
    with ProtectedAPI(fed.is_valid) as api:
        session = session_with(from_issuer(fed))
        assert session.get(api.url + "/x").status_code == 200
        fed.revoke_access_tokens()
        response = session.get(api.url + "/x")
    assert response.status_code == 200 and [r.status_code for r in response.history] == [401]
    assert fed.logins == 1 and fed.refreshes == 1


def test_the_rfc8414_location_is_tried_when_the_openid_one_is_missing(make_provider):
    fed = make_provider(layout="keycloak", discovery="oauth-authorization-server")
    assert fed.is_valid(from_issuer(fed).get_token().token)
    assert fed.discovery_requests == 1


@pytest.mark.parametrize(
    ("metadata", "rule"),
    [
        ({"issuer": "http://127.0.0.1:1/elsewhere"}, "another server"),
        ({"code_challenge_methods_supported": ["plain"]}, "S256"),
        ({"token_endpoint": "http://auth.example.com/token"}, "plain http"),
        ({"authorization_endpoint": None}, "no authorization_endpoint"),
    ],
)
def test_an_unusable_document_fails_the_request_naming_the_issuer(make_provider, metadata, rule):
    fed = make_provider(layout="keycloak", metadata=metadata)
    auth = from_issuer(fed)
    with pytest.raises(DiscoveryError) as info:
        session_with(auth).get(fed.whoami_url)
    assert fed.issuer in str(info.value) and rule in str(info.value)
    assert fed.authorize_requests == 0 and fed.logins == 0


def test_an_auth0_issuer_must_be_given_with_its_trailing_slash(make_provider):
    fed = make_provider(layout="auth0")
    assert fed.issuer.endswith("/")
    with pytest.raises(DiscoveryError, match="trailing '/'"):
        without = fed.issuer.rstrip("/")
        FederationAuth.from_issuer(without, fed.client_id, **provider_options()).get_token()
    assert fed.is_valid(from_issuer(fed).get_token().token)


def test_a_provider_without_a_document_is_a_discovery_error(make_provider):
    fed = make_provider(discovery=None)
    with pytest.raises(
        DiscoveryError, match=r"no discovery document.*check issuer=.*authorization_endpoint="
    ):
        from_issuer(fed).get_token()


def test_an_unreachable_issuer_is_a_discovery_error_naming_it():
    issuer = f"http://127.0.0.1:{free_port()}/realms/gone"
    auth = FederationAuth.from_issuer(issuer, "cli", **provider_options())
    with pytest.raises(DiscoveryError) as info:
        auth.get_token()
    assert issuer in str(info.value) and info.value.__cause__ is not None


def test_a_failed_discovery_is_tried_again_by_the_next_request(make_provider):
    fed = make_provider(layout="dex", metadata={"issuer": "http://127.0.0.1:1/wrong"})
    auth = from_issuer(fed)
    with pytest.raises(DiscoveryError):
        auth.get_token()
    fed.metadata.clear()  # the provider is fixed: the failure was not remembered
    assert fed.is_valid(auth.get_token().token)
    assert fed.discovery_requests == 2


# ------------------------------------------------------------------------------ iss


def test_a_missing_iss_is_refused_when_the_provider_promises_it(make_provider):
    # RFC 9207 §2.4: the document says every response carries iss; this one does not.
    fed = make_provider(
        layout="keycloak",
        send_iss=False,
        metadata={"authorization_response_iss_parameter_supported": True},
    )
    with pytest.raises(LoginError, match="no issuer"):
        from_issuer(fed).get_token()
    assert fed.code_exchanges == 0


def test_a_provider_that_sends_no_iss_and_promises_none_is_fine(make_provider):
    fed = make_provider(layout="entra", send_iss=False)
    assert fed.is_valid(from_issuer(fed).get_token().token)


def test_explicit_endpoints_need_no_document(make_provider):
    fed = make_provider(layout="keycloak", discovery=None)
    token = from_endpoints(fed, issuer=fed.issuer).get_token()
    assert fed.is_valid(token.token) and fed.discovery_requests == 0


def test_explicit_endpoints_without_an_issuer_refuse_an_iss_they_cannot_check(make_provider):
    fed = make_provider(layout="okta")
    with pytest.raises(LoginError, match="pass issuer="):
        from_endpoints(fed).get_token()
    assert fed.code_exchanges == 0
    quiet = make_provider(layout="okta", send_iss=False)
    assert quiet.is_valid(from_endpoints(quiet).get_token().token)


def test_an_iss_of_another_issuer_is_refused(make_provider):
    fed = make_provider(layout="okta")
    with pytest.raises(LoginError, match="mix-up"):
        from_endpoints(fed, issuer=fed.origin + "/oauth2/other").get_token()


# ------------------------------------------------------------------------------ request


def test_params_are_sent_after_the_flow_s_own_and_federation_id_is_just_one(make_provider):
    fed = make_provider(federation_id="fed-7")
    auth = from_issuer(fed, params={"federation-id": "fed-7", "prompt": "consent"})
    auth.get_token()
    (params,) = fed.authorize_params
    assert list(params)[-2:] == ["federation-id", "prompt"]
    assert params["prompt"] == "consent"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FederationAuth.from_issuer("http://idp.example.com", "c"), "plain http"),
        (lambda: FederationAuth.from_issuer("https://idp.example.com?x=1", "c"), "query"),
        (lambda: FederationAuth.from_issuer("https://idp.example.com", ""), "client_id"),
        (lambda: FederationAuth.from_issuer("https://i.example", "c", scopes=""), "scope"),
        (
            lambda: FederationAuth.from_issuer("https://i.example", "c", params={"state": "x"}),
            "params",
        ),
        (lambda: FederationAuth.from_issuer("https://i.example", "c", profile="a/b"), "profile"),
        (
            lambda: FederationAuth.from_issuer(
                "https://i.example", "c", federation_endpoint="auth.example.com"
            ),
            "Nebius federation",
        ),
        (
            lambda: FederationAuth.from_endpoints(
                "c", authorization_endpoint="https://i.example/a", token_endpoint=""
            ),
            "token_endpoint",
        ),
        (
            lambda: FederationAuth("c", "auth.example.com", "fed", scopes=("openid", "profile")),
            "unexpected keyword",
        ),
    ],
)
def test_bad_provider_settings_fail_at_construction(build, match):
    with pytest.raises((ConfigurationError, TypeError), match=match):
        build()


def test_the_nebius_settings_refuse_scopes_and_params():
    with pytest.raises(ConfigurationError, match="from_issuer"):
        Bearer.from_settings(LoginSettings("c", "auth.example.com", "f", scopes=("profile",)))
    with pytest.raises(ConfigurationError, match="from_issuer"):
        LoginSettings("c", "auth.example.com", "f", params={"prompt": "login"})


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_a_wrong_scope_fails_before_the_browser_opens(make_provider):
    fed = make_provider(layout="keycloak")
    out = io.StringIO()
    auth = FederationAuth.from_issuer(
        fed.issuer,
        fed.client_id,
        scopes="openid admin",
        cache=None,
        writer=out,
        no_browser_open=True,
    )
    # scopes_supported lists it not: refused before anything, naming the parameter.
    with pytest.raises(ConfigurationError, match=r"scope admin; check scopes= ") as caught:
        auth.get_token()
    assert "--scope" not in str(caught.value) and caught.value.settings == ("scopes",)
    assert "openid-connect/auth?" not in out.getvalue() and fed.authorize_requests == 0


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_an_unknown_client_fails_before_the_browser_opens_with_the_provider_hint(make_provider):
    fed = make_provider(layout="keycloak")
    auth = FederationAuth.from_issuer(
        fed.issuer, "unregistered", cache=None, writer=io.StringIO(), no_browser_open=True
    )
    with pytest.raises(ConfigurationError, match="public \\(native\\) client"):
        auth.get_token()


# ------------------------------------------------------------------------------ cache


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_tokens_go_to_fedbearer_s_own_file_never_the_nebius_one(make_provider, isolated_env):
    fed = make_provider(layout="keycloak")
    auth = FederationAuth.from_issuer(
        fed.issuer,
        fed.client_id,
        scopes="openid profile",
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
    )
    token = auth.get_token()
    path = Path(isolated_env) / ".cache" / "fedbearer" / "tokens.yaml"
    assert isinstance(auth.cache, FileTokenCache) and auth.cache.path == str(path)
    entry = yaml.safe_load(path.read_text())["tokens"][auth.bearer.name]
    assert entry["token"] == token.token
    assert auth.bearer.name.startswith("oidc/127.0.0.1:")
    assert not (Path(isolated_env) / ".nebius").exists()


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_xdg_cache_home_moves_the_file(make_provider, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fed = make_provider(layout="dex")
    auth = FederationAuth.from_issuer(
        fed.issuer, fed.client_id, opener=ProgrammaticBrowser(), writer=io.StringIO()
    )
    auth.get_token()
    assert (tmp_path / "xdg" / "fedbearer" / "tokens.yaml").is_file()


def test_the_cached_token_is_shared_by_processes_with_the_same_settings(make_provider, tmp_path):
    fed = make_provider(layout="okta")
    cache = FileTokenCache(tmp_path / "tokens.yaml")
    first = from_issuer(fed, scopes=["openid", "profile"], cache=cache).get_token()
    again = from_issuer(fed, scopes=["profile", "openid"], cache=cache).get_token()
    assert again.token == first.token and fed.logins == 1


@pytest.mark.parametrize(
    "other",
    [
        {"scopes": ["openid", "email"]},
        {"params": {"audience": "api"}},
        {"profile": "dev"},
    ],
)
def test_a_token_minted_for_other_settings_is_never_reused(make_provider, tmp_path, other):
    fed = make_provider(layout="okta")
    cache = FileTokenCache(tmp_path / "tokens.yaml")
    first = from_issuer(fed, cache=cache).get_token()
    second = from_issuer(fed, cache=cache, **other).get_token()
    assert second.token != first.token and fed.logins == 2


@pytest.mark.fedbearer_real  # the default cache, or a login as a person runs it
def test_the_nebius_default_still_uses_the_nebius_file_and_key(federation, isolated_env):
    auth = nebius_auth(federation)
    auth.get_token()
    path = Path(isolated_env) / ".nebius" / "credentials.yaml"
    key = f"federation/{federation.endpoint}/{federation.federation_id}/default"
    assert auth.bearer.name == key and key in yaml.safe_load(path.read_text())["tokens"]
    assert not (Path(isolated_env) / ".cache").exists()


# ------------------------------------------------------------------------------ no person


@pytest.mark.fedbearer_real  # the default cache: where the command's login puts the token
def test_without_interaction_an_issuer_gets_the_command_that_logs_it_in(
    make_provider, browser_command
):
    fed = make_provider(layout="keycloak")

    def adapter() -> FederationAuth:
        return FederationAuth.from_issuer(
            fed.issuer,
            fed.client_id,
            scopes="openid profile",
            params={"audience": "api://things", "prompt": "login"},
            profile="ci",
            interactive=False,
            writer=io.StringIO(),
        )

    with pytest.raises(InteractionRequiredError) as info:
        adapter().get_token()
    assert fed.discovery_requests == 0  # nothing was contacted
    command = shlex.split(str(info.value).split(" with: ", 1)[1])
    assert command[:2] == ["fedbearer", "login"] and "--issuer" in command
    assert main(command[1:]) == EXIT_OK  # $BROWSER completes the login
    assert fed.code_exchanges == 1
    for sent in fed.authorize_params:  # the pre-flight check's and the browser's
        assert sent["scope"] == "openid profile" and sent["audience"] == "api://things"
    # The same identity and the same cache: the adapter finds the command's token.
    token = adapter().get_token()
    assert fed.is_valid(token.token) and fed.code_exchanges == 1 and fed.refreshes == 0


def test_without_interaction_endpoints_given_by_hand_get_no_command(make_provider):
    fed = make_provider(layout="keycloak")
    with pytest.raises(InteractionRequiredError) as info:
        from_endpoints(fed, interactive=False).get_token()
    assert "fedbearer login" not in str(info.value)
    assert "same settings" in str(info.value)


def test_repr_names_the_provider_and_scopes_but_no_token(make_provider):
    fed = make_provider(layout="keycloak")
    auth = from_issuer(fed, scopes="openid profile")
    token = auth.get_token()
    text = repr(auth) + repr(auth.bearer)
    assert fed.issuer in text and "('openid', 'profile')" in text
    assert token.token not in text


# ------------------------------------------------------------------------------ secrets


def test_a_google_style_installed_app_secret_is_sent_to_the_token_and_revocation_endpoints(
    make_provider,
):
    fed = make_provider(layout="google", client_secret="GOCSPX-not-confidential")
    auth = from_issuer(fed, client_secret="GOCSPX-not-confidential", refresh_margin=0)
    token = auth.get_token()
    fed.revoke_access_tokens()
    with ProtectedAPI(fed.is_valid) as api:
        assert session_with(auth).get(api.url + "/x").status_code == 200  # a refresh
    assert fed.refreshes == 1
    assert auth.logout().revoked == ("refresh_token", "access_token")
    assert all(p["client_secret"] == "GOCSPX-not-confidential" for p in fed.revocation_params)
    assert not fed.is_valid(token.token)
    assert "GOCSPX" not in repr(auth) + repr(auth.bearer) + repr(auth.bearer.settings)


def test_without_the_secret_such_a_provider_refuses_the_exchange(make_provider):
    fed = make_provider(layout="google", client_secret="GOCSPX-not-confidential")
    with pytest.raises(InvalidClientError):
        from_issuer(fed).get_token()


@pytest.mark.parametrize("secret", ["", "with space", "tab\t", "é"])
def test_a_client_secret_must_be_visible_ascii(secret):
    with pytest.raises(ConfigurationError, match="client_secret"):
        FederationAuth.from_issuer("https://i.example", "c", client_secret=secret)


def test_a_nebius_federation_takes_no_client_secret():
    with pytest.raises(ConfigurationError, match="client_secret"):
        LoginSettings("c", "auth.example.com", "f", client_secret="s")


def test_many_threads_share_one_discovery_and_one_login(make_provider, tmp_path):
    fed = make_provider(layout="keycloak")
    cache = FileTokenCache(tmp_path / "tokens.yaml")
    auths = [from_issuer(fed, cache=cache) for _ in range(2)]  # as two processes would
    barrier = threading.Barrier(8)
    tokens: list[str] = []

    def work(auth: FederationAuth) -> None:
        barrier.wait(10)
        tokens.append(auth.get_token().token)

    threads = [threading.Thread(target=work, args=(auths[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert fed.logins == 1 and fed.discovery_requests == 1


# ------------------------------------------------------------------------------ environment


@pytest.mark.fedbearer_real  # about the environment's tokens, which the plugin keeps away
def test_a_nebius_token_in_the_environment_is_never_sent_to_another_provider(
    make_provider, monkeypatch
):
    fed = make_provider(layout="okta")
    monkeypatch.setenv("NEBIUS_IAM_TOKEN", "nebius-iam-token")
    auth = from_issuer(fed)
    assert auth.token_variable is None
    assert fed.is_valid(auth.get_token().token)  # logged in at the provider instead


@pytest.mark.fedbearer_real  # about the environment's tokens, which the plugin keeps away
def test_fedbearer_token_serves_another_provider_and_logout_leaves_it_alone(
    make_provider, monkeypatch
):
    fed = make_provider(layout="keycloak")
    cache = MemoryTokenCache()
    earlier = from_issuer(fed, cache=cache).get_token()  # an earlier login, still cached
    ready = fed.issue_token()
    monkeypatch.setenv("FEDBEARER_TOKEN", ready)
    auth = from_issuer(fed, cache=cache)
    assert auth.token_variable == "FEDBEARER_TOKEN" and auth.get_token().token == ready
    result = auth.logout()
    assert [p["token"] for p in fed.revocation_params] == [earlier.refresh_token, earlier.token]
    assert result.revoked == ("refresh_token", "access_token")
    assert fed.is_valid(ready) and auth.get_token().token == ready  # the environment's own
    assert cache.get(auth.bearer.name) is None


@pytest.mark.parametrize("name", ["redirect_uri", "state", "response_mode", "code_challenge"])
def test_an_authorization_endpoint_holding_a_reserved_parameter_fails_at_construction(name):
    with pytest.raises(ConfigurationError) as info:
        FederationAuth.from_endpoints(
            "c",
            authorization_endpoint=f"https://i.example/authorize?{name}=https%3A%2F%2Fevil",
            token_endpoint="https://i.example/token",
        )
    assert "authorization_endpoint" in str(info.value) and repr(name) in str(info.value)


def test_a_discovered_authorization_endpoint_with_a_redirect_uri_is_refused_before_login(
    make_provider,
):
    fed = make_provider(layout="keycloak")
    fed.metadata["authorization_endpoint"] = fed.authorize_url + "?redirect_uri=https%3A%2F%2Fe"
    auth = from_issuer(fed)
    with pytest.raises(DiscoveryError) as info:
        session_with(auth).get(fed.whoami_url)
    assert "authorization_endpoint" in str(info.value) and "'redirect_uri'" in str(info.value)
    assert fed.authorize_requests == 0 and fed.logins == 0
