"""The test kit for users: the pytest plugin's fixtures and the ``responses`` helpers.

The fixtures used here (``local_federation``, ``fedbearer_cache``, ``programmatic_browser``)
come from the plugin through its ``pytest11`` entry point, not from our conftest.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from importlib.metadata import distribution
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from fedbearer import (
    AuthorizationError,
    FederationAuth,
    InteractionRequiredError,
    InvalidGrantError,
    _clock,
    default_cache,
)
from fedbearer.testing import (
    CallbackOpener,
    LocalFederation,
    ProgrammaticBrowser,
    add_token_error,
    add_token_response,
    mock_federation,
)

API = "https://api.example.test/v1/things"


def auth_for(fed, **kwargs):
    kwargs.setdefault("timeout", 10)
    return FederationAuth(fed.client_id, fed.endpoint, fed.federation_id, **kwargs)


# ---------------------------------------------------------------------------- the plugin


def test_plugin_is_registered_as_a_pytest11_entry_point_and_loaded_from_it(pytestconfig):
    (plugin,) = [
        e
        for e in distribution("fedbearer").entry_points
        if e.group == "pytest11" and e.name == "fedbearer"
    ]
    assert plugin.value == "fedbearer.testing.plugin"
    # Loaded under the entry point's name: these tests' fixtures come from it, not a conftest.
    assert pytestconfig.pluginmanager.get_plugin("fedbearer") is plugin.load()


def test_the_three_fixtures_log_in_for_real_into_an_isolated_cache(
    local_federation, fedbearer_cache, programmatic_browser, isolated_env
):
    assert not fedbearer_cache.path.startswith(str(isolated_env))  # its own HOME
    assert default_cache().path == fedbearer_cache.path
    auth = auth_for(local_federation, opener=programmatic_browser, writer=io.StringIO())
    token = auth.get_token()  # the default cache: the fixture's file
    assert programmatic_browser.join(5) and programmatic_browser.error is None
    assert local_federation.logins == 1 and local_federation.is_valid(token.token)
    key = auth.bearer.name
    assert fedbearer_cache.get(key).token == token.token
    assert os.path.exists(fedbearer_cache.path)


def test_local_federation_fixture_serves_its_protected_resource(local_federation):
    assert local_federation.endpoint.startswith("http://127.0.0.1:")
    token = local_federation.issue_token(user="bob")
    request = urllib.request.Request(
        local_federation.whoami_url, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer)["user"] == "bob"
    with pytest.raises(HTTPError) as denied:
        urllib.request.urlopen(local_federation.whoami_url, timeout=5)
    assert denied.value.code == 401
    denied.value.close()


def test_loading_the_plugin_does_not_need_responses():
    # responses is optional: a suite that never mocks HTTP must not need it installed.
    code = (
        "import sys; sys.modules['responses'] = None; import fedbearer.testing.plugin; "
        "print([m for m in ('responses',) if sys.modules.get(m) is not None])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_helpers_say_what_to_install_without_responses(monkeypatch):
    monkeypatch.setitem(sys.modules, "responses", None)  # import responses -> ImportError
    with pytest.raises(ImportError, match="pip install responses"):
        add_token_response(None, "auth.example.test")
    CallbackOpener()  # needs no responses


def test_revoke_access_tokens_keeps_refresh_tokens_working():
    with LocalFederation() as fed:
        auth = auth_for(fed, opener=ProgrammaticBrowser(), cache=None, writer=io.StringIO())
        session = requests.Session()
        session.trust_env = False
        session.auth = auth
        assert session.get(fed.whoami_url).status_code == 200
        first = auth.get_token()
        fed.revoke_access_tokens()
        assert not fed.is_valid(first.token)
        response = session.get(fed.whoami_url)
        assert response.status_code == 200 and [r.status_code for r in response.history] == [401]
        assert fed.refreshes == 1 and fed.logins == 1


# ---------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("endpoint", "token_url"),
    [
        ("auth.example.test", "https://auth.example.test/oauth2/token"),
        ("auth.example.test:8443", "https://auth.example.test:8443/oauth2/token"),
        ("http://127.0.0.1:9999/", "http://127.0.0.1:9999/oauth2/token"),
        ("https://example.test/fed/", "https://example.test/fed/oauth2/token"),
    ],
)
def test_add_token_response_registers_the_normalised_token_url(endpoint, token_url):
    with responses.RequestsMock() as rsps:
        registered = add_token_response(rsps, endpoint, access_token="tok", refresh_token="rt")
        body = requests.post(token_url, data={"grant_type": "x"}).json()
    assert body == {
        "access_token": "tok",
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "rt",
    }
    assert registered.call_count == 1


def test_add_token_response_can_leave_out_expires_in():
    with responses.RequestsMock() as rsps:
        add_token_response(rsps, "auth.example.test", expires_in=None)
        body = requests.post("https://auth.example.test/oauth2/token").json()
    assert body == {"access_token": "test-token", "token_type": "Bearer"}


@responses.activate
def test_mock_federation_gives_a_working_auth_in_a_few_lines():
    kwargs = mock_federation(access_token="tok-1")
    responses.get(
        API, json={"things": []}, match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})]
    )
    session = requests.Session()
    session.auth = FederationAuth(**kwargs)
    assert session.get(API).json() == {"things": []}
    opener = kwargs["opener"]
    assert opener.join(5) and opener.failure is None and opener.last_status == 200
    assert len(opener.opened) == 1 and "code_challenge_method=S256" in opener.opened[0]
    assert "Logged in." in kwargs["writer"].getvalue()


@responses.activate
def test_mock_federation_ignores_fedbearer_interactive_0(monkeypatch):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "0")
    assert FederationAuth(**mock_federation()).get_token().token == "test-token"
    kwargs = mock_federation()
    del kwargs["interactive"]
    with pytest.raises(InteractionRequiredError):  # without it, the variable would win
        FederationAuth(**kwargs).get_token()


def test_under_the_plugin_no_token_from_the_environment_reaches_a_test(federation, monkeypatch):
    monkeypatch.setenv("FEDBEARER_TOKEN", "the-ci-jobs-real-token")
    monkeypatch.setenv("NEBIUS_IAM_TOKEN", "the-ci-jobs-nebius-token")
    auth = FederationAuth(
        federation.client_id,
        federation.endpoint,
        federation.federation_id,
        cache=None,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
    )
    assert auth.token_variable is None
    assert auth.get_token().token not in {"the-ci-jobs-real-token", "the-ci-jobs-nebius-token"}
    assert federation.logins == 1


@responses.activate
def test_mock_federation_ignores_a_token_in_the_environment(monkeypatch):
    monkeypatch.setenv("FEDBEARER_TOKEN", "the-ci-token")
    monkeypatch.setenv("NEBIUS_IAM_TOKEN", "the-nebius-token")
    assert FederationAuth(**mock_federation()).get_token().token == "test-token"


@responses.activate(registry=OrderedRegistry)
def test_a_rejected_refresh_then_a_new_login_can_be_scripted(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(_clock, "now", lambda: now[0])
    kwargs = mock_federation(access_token="tok-1", refresh_token="rt-1", expires_in=600)
    endpoint = kwargs["federation_endpoint"]
    refused = add_token_error(None, endpoint, "invalid_grant")  # answers the refresh
    add_token_response(None, endpoint, access_token="tok-2")  # answers the new login
    auth = FederationAuth(refresh_margin=0, **kwargs)
    assert auth.get_token().token == "tok-1"
    now[0] += 600
    assert auth.get_token().token == "tok-2"
    assert refused.call_count == 1 and len(kwargs["opener"].opened) == 2


def test_add_token_error_makes_the_login_fail_with_the_federations_error():
    opener = CallbackOpener()
    auth = FederationAuth(
        "cid", "federation.test", "fid", opener=opener, writer=io.StringIO(), cache=None
    )
    with responses.RequestsMock() as rsps:
        add_token_error(rsps, "federation.test", "invalid_grant", description="code used")
        with pytest.raises(InvalidGrantError) as raised:
            auth.get_token()
    assert raised.value.error == "invalid_grant"
    assert raised.value.error_description == "code used"


@responses.activate
def test_callback_opener_can_play_a_refusal():
    kwargs = mock_federation()
    opener = CallbackOpener(error="access_denied", error_description="no thanks")
    kwargs["opener"] = opener
    with pytest.raises(AuthorizationError) as raised:
        FederationAuth(**kwargs).get_token()
    assert raised.value.error == "access_denied" and raised.value.error_description == "no thanks"
    assert opener.join(5) and opener.last_status == 400
    assert not any("/oauth2/token" in call.request.url for call in responses.calls)


def test_callback_opener_builds_the_callback_from_the_authorize_url():
    opener = CallbackOpener("c-1", iss="https://federation.test")
    url = (
        "https://federation.test/oauth2/authorize?response_type=code&state=s-1"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555"
    )
    assert opener.callback_url(url) == (
        "http://127.0.0.1:5555/?code=c-1&state=s-1&iss=https%3A%2F%2Ffederation.test"
    )


@pytest.mark.parametrize(
    "redirect_uri", ["https://127.0.0.1:5555", "http://evil.example:5555", "", "http://[::2]:1"]
)
def test_callback_opener_only_follows_loopback_http_redirects(redirect_uri):
    opener = CallbackOpener()
    url = "https://federation.test/oauth2/authorize?" + urlencode(
        {"state": "s", "redirect_uri": redirect_uri}
    )
    assert opener(url) is True
    assert opener.join(5)
    assert isinstance(opener.failure, ValueError) and opener.last_status is None
