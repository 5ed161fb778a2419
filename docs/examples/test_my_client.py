"""Testing code that uses fedbearer: a complete example.

``current_user`` stands for your own code: it calls a protected API through a
``requests`` session whose ``auth`` is a ``FederationAuth``. The tests below check it in
the two ways fedbearer's test kit offers:

* with ``responses``, which mocks the API and the federation's token endpoint, while
  ``CallbackOpener`` plays the browser (``mock_federation`` sets both up; for another
  OpenID provider, ``mock_provider`` adds its discovery document);
* against a real local federation, with the pytest fixtures fedbearer installs
  (``local_federation``, ``programmatic_browser``, ``fedbearer_cache``), as a Nebius
  federation or, in another provider's layout, through ``from_issuer``.

Nothing here opens a browser, reads your credentials or leaves the machine. Run it with
``pytest docs/examples/test_my_client.py``; fedbearer's own test suite runs it too.
"""

from __future__ import annotations

import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from fedbearer import FederationAuth
from fedbearer.testing import LocalFederation, add_token_response, mock_federation, mock_provider

API = "https://api.example.com"


# -- the code under test (yours) -------------------------------------------------------


def make_session(auth: requests.auth.AuthBase) -> requests.Session:
    session = requests.Session()
    session.auth = auth
    return session


def current_user(session: requests.Session, api: str = API) -> str:
    response = session.get(f"{api}/whoami", timeout=30)
    response.raise_for_status()
    return str(response.json()["user"])


# -- tests with responses: no federation, no network -----------------------------------


def bearer(token: str) -> list[object]:
    return [matchers.header_matcher({"Authorization": f"Bearer {token}"})]


@responses.activate
def test_current_user_sends_the_token():
    auth = FederationAuth(**mock_federation(access_token="token-1"))
    responses.get(f"{API}/whoami", json={"user": "ann"}, match=bearer("token-1"))

    assert current_user(make_session(auth)) == "ann"


@responses.activate(registry=OrderedRegistry)
def test_current_user_logs_in_again_when_the_api_rejects_the_token():
    # Registered in the order the calls happen (OrderedRegistry checks it).
    options = mock_federation(access_token="token-1")  # the first login
    responses.get(f"{API}/whoami", status=401, match=bearer("token-1"))
    add_token_response(None, options["federation_endpoint"], access_token="token-2")  # login 2
    responses.get(f"{API}/whoami", json={"user": "ann"}, match=bearer("token-2"))

    assert current_user(make_session(FederationAuth(**options))) == "ann"
    assert len(options["opener"].opened) == 2  # two logins: one per token


@responses.activate
def test_current_user_with_any_openid_provider():
    options = mock_provider(
        access_token="token-1", scopes=["openid", "email"], account={"email": "ann@example.com"}
    )
    responses.get(f"{API}/whoami", json={"user": "ann"}, match=bearer("token-1"))
    auth = FederationAuth.from_issuer(**options)  # reads the mocked discovery document

    assert current_user(make_session(auth)) == "ann"
    token = auth.get_token()
    assert token.scope == ("openid", "email")  # what the provider granted
    assert token.account is not None and token.account.email == "ann@example.com"


# -- tests against a local federation, with the plugin's fixtures -----------------------


def test_current_user_against_a_local_federation(
    local_federation, programmatic_browser, fedbearer_cache
):
    def auth() -> FederationAuth:
        return FederationAuth(
            local_federation.client_id,
            local_federation.endpoint,
            local_federation.federation_id,
            opener=programmatic_browser,  # approves the login in place of a person
            interactive=True,
        )

    # LocalFederation's /whoami plays the protected API here.
    assert current_user(make_session(auth()), api=local_federation.endpoint) == "alice"
    assert local_federation.logins == 1

    # The token went to the default cache, which the fixture moved to a temporary HOME:
    # the next process (here, a new FederationAuth) uses it without logging in.
    assert len(fedbearer_cache.entries()) == 1
    assert current_user(make_session(auth()), api=local_federation.endpoint) == "alice"
    assert local_federation.logins == 1


def test_current_user_against_a_local_openid_provider(programmatic_browser, fedbearer_cache):
    # Another provider's layout (Keycloak's paths, discovery) and no federation id.
    with LocalFederation(layout="keycloak", federation_id=None) as provider:

        def auth() -> FederationAuth:
            return FederationAuth.from_issuer(
                provider.issuer,
                provider.client_id,
                scopes=["openid", "profile"],
                opener=programmatic_browser,
                interactive=True,
            )

        assert current_user(make_session(auth()), api=provider.endpoint) == "alice"
        # Its token went to fedbearer's own file, which fedbearer_cache covers too.
        ((key, token),) = fedbearer_cache.entries()
        assert key.startswith("oidc/") and token.account is not None
        assert current_user(make_session(auth()), api=provider.endpoint) == "alice"
        assert provider.logins == 1
