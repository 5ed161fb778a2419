"""A token from the environment against the independent provider (issue 15).

A real access token, issued by oidc-provider after a login in Chromium, is passed through
``FEDBEARER_TOKEN`` (or ``NEBIUS_IAM_TOKEN``) to a fresh ``FederationAuth`` whose token cache
fails the test if it is touched; the provider's ``/me`` accepts it, and the provider's logs
show no authorize or token request. A well-formed token the provider never issued gets its
401 back, with the one warning that says the token came from the environment.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
import requests

from fedbearer import FederationAuth, TokenCache

from ..test_env_token import Tripwire
from .chromium import BrowserDriver, deny, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.fedbearer_real]  # the environment's token


def make_auth(op: IndependentProvider, **kwargs: Any) -> FederationAuth:
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("cache", Tripwire())
    return FederationAuth(op.client_id, op.endpoint, op.federation_id, interactive=True, **kwargs)


def get_me(auth: FederationAuth, op: IndependentProvider) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # loopback only: never through an ambient proxy
        session.auth = auth
        return session.get(op.userinfo_url, timeout=30)


@pytest.mark.browser
@pytest.mark.parametrize("variable", ["FEDBEARER_TOKEN", "NEBIUS_IAM_TOKEN"])
def test_a_provider_token_in_the_environment_is_accepted_by_its_api_without_a_login(
    independent_provider: IndependentProvider,
    browser_env: BrowserDriver,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    op = independent_provider
    assert isinstance(Tripwire(), TokenCache)
    # The token CI would be given: issued by the provider after a real login elsewhere.
    run = browser_env.expect(login_and_approve("ci-user"))
    issued = make_auth(op, cache=None, token_from_env=False).get_token()
    assert run.wait(30).raise_for_error().status == 200
    op.clear_logs()
    # A tripwire: were a login started, this user would deny it at once (and be seen).
    tripwire = browser_env.expect(deny())
    monkeypatch.setenv(variable, issued.token)

    auth = make_auth(op)
    me = get_me(auth, op)

    assert auth.token_variable == variable
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "ci-user"
    assert me.history == []
    assert me.request.headers["Authorization"] == f"Bearer {issued.token}"
    assert op.authorize_log() == [] and op.token_log() == []
    assert not tripwire.delivered.is_set()
    assert browser_env.unexpected == []


def test_a_token_the_provider_never_issued_gets_its_401_back_with_one_warning(
    independent_provider: IndependentProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    op = independent_provider
    bogus = "bogus-but-well-formed.access_token~42"
    monkeypatch.setenv("FEDBEARER_TOKEN", bogus)
    caplog.set_level(logging.DEBUG, logger="fedbearer")

    auth = make_auth(op)
    answers = [get_me(auth, op) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [401, 401]
    assert all(answer.history == [] for answer in answers)  # returned, never resent
    assert "invalid_token" in answers[0].headers["WWW-Authenticate"]
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "from $FEDBEARER_TOKEN" in warnings[0].getMessage()
    assert "cannot be renewed" in warnings[0].getMessage()
    assert bogus not in caplog.text
    assert op.authorize_log() == [] and op.token_log() == []
