"""fedbearer's interactive login against the independent provider, with the real Chromium.

``Bearer(...).receiver().fetch()`` as a user runs it: no opener, so fedbearer launches the
browser through :mod:`webbrowser`, which runs ``$BROWSER`` (the ``browser_env`` fixture:
``browser_shim.py`` hands the URL to the headless Chromium driver). Chromium signs in on
oidc-provider's devInteractions pages and lands on fedbearer's loopback callback. What each
side saw is then compared with the reference's wire format (issue 2, "Done when").
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from fedbearer import AuthorizationError, Bearer, ConfigurationError, Token

from ..conftest import assert_released, login_threads
from .chromium import BrowserDriver, deny, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

#: The reference's authorization request parameters, in its order (Nebius SDK).
AUTHORIZE_PARAMETERS = [
    "response_type",
    "client_id",
    "scope",
    "state",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "federation-id",
]

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False


def b64url_sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def bearer_for(op: IndependentProvider, writer: io.StringIO, federation_id: str = "") -> Bearer:
    """A Bearer for the provider with no opener: fedbearer chooses ($BROWSER here)."""
    return Bearer(
        "interop",
        op.client_id,
        op.endpoint,
        federation_id or op.federation_id,
        writer=writer,
        timeout=30,
        interactive=True,
    )


def test_fetch_through_browser_env_sends_exactly_the_reference_request(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    op = independent_provider
    writer = io.StringIO()
    run = browser_env.expect(login_and_approve("alice"))  # before the login starts

    started = time.perf_counter()
    token = bearer_for(op, writer).receiver().fetch()
    latency = time.perf_counter() - started

    page = run.wait(30).raise_for_error()
    print(
        f"\nfedbearer login against oidc-provider through $BROWSER + headless Chromium: "
        f"{latency * 1000:.0f} ms (Chromium's part: {page.duration * 1000:.0f} ms)"
    )

    # --- $BROWSER, i.e. webbrowser, launched Chromium with the URL fedbearer showed.
    assert page.shim_argv is not None and page.shim_argv[-1] == page.start_url
    assert page.start_url in writer.getvalue()
    assert browser_env.unexpected == []

    # --- The authorization request: exactly the reference's parameters, nothing else.
    requests_seen = op.authorize_requests()
    assert len(requests_seen) == 1
    raw_query = requests_seen[0]["raw_query"]
    assert [name for name, _ in parse_qsl(raw_query, keep_blank_values=True)] == (
        AUTHORIZE_PARAMETERS
    )
    query = requests_seen[0]["query"]
    assert set(query) == set(AUTHORIZE_PARAMETERS)
    assert query["response_type"] == "code"
    assert query["client_id"] == op.client_id
    assert query["scope"] == "openid"
    assert query["code_challenge_method"] == "S256"
    assert query["federation-id"] == op.federation_id
    assert len(query["state"]) >= 43
    redirect = urlsplit(query["redirect_uri"])
    assert (redirect.scheme, redirect.hostname) == ("http", "127.0.0.1")
    assert redirect.port is not None and redirect.port > 0
    assert query["redirect_uri"] == f"http://127.0.0.1:{redirect.port}"  # no path, no "/"

    # --- The token request: authorization_code with the verifier and the same redirect_uri.
    token_requests = op.token_log()
    assert len(token_requests) == 1
    exchange = token_requests[0]
    form = exchange["form"]
    assert set(form) == {"grant_type", "code", "redirect_uri", "client_id", "code_verifier"}
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == query["redirect_uri"]
    assert form["client_id"] == op.client_id
    assert len(form["code_verifier"]) >= 43
    assert b64url_sha256(form["code_verifier"]) == query["code_challenge"]
    assert exchange["authorization"] is None  # a public client: no secret, no Basic auth
    assert exchange["content_type"].startswith("application/x-www-form-urlencoded")
    assert exchange["status"] == 200

    # --- Chromium: redirected to our callback with the provider's code, shown our page.
    assert page.final_url.startswith(query["redirect_uri"] + "/?")
    assert page.final_query == {
        "code": form["code"],
        "state": query["state"],
        "iss": op.issuer,
    }
    assert page.status == 200
    assert "Login complete" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "content-security-policy" in page.headers
    for secret in (form["code"], query["state"], form["code_verifier"], token.token):
        assert secret not in page.html

    # --- The token works at the provider's protected resource.
    assert isinstance(token, Token)
    me = web.get(op.userinfo_url, headers={"Authorization": f"Bearer {token.token}"}, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "alice"
    assert token.refresh_token  # the provider issues one; FederationAuth renews with it
    assert token.expiration is not None
    assert abs(token.expiration.timestamp() - (time.time() + op.at_ttl)) < 60

    # --- Nothing left behind: the callback port is free and the server threads ended.
    assert login_threads() == []
    assert_released(redirect.port)


def test_denied_login_raises_access_denied_and_chromium_shows_our_failure_page(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    op = independent_provider
    run = browser_env.expect(deny())

    with pytest.raises(AuthorizationError) as caught:
        bearer_for(op, io.StringIO()).receiver().fetch()

    assert caught.value.error == "access_denied"
    assert caught.value.error_description == "End-User aborted interaction"
    page = run.wait(30).raise_for_error()
    assert page.status == 400
    assert "Login denied" in page.text
    assert op.token_log() == []  # no code, no exchange


def test_unknown_federation_id_is_the_providers_invalid_request(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    """The provider's refusal, as the browser meets it when the pre-flight check is off."""
    op = independent_provider
    run = browser_env.expect(login_and_approve())  # never reaches a login form
    wrong = bearer_for(op, io.StringIO(), federation_id="not-" + op.federation_id)
    bearer = Bearer.from_settings(replace(wrong.settings, preflight=False))

    with pytest.raises(AuthorizationError) as caught:
        bearer.receiver().fetch()

    assert caught.value.error == "invalid_request"
    assert caught.value.error_description == "unknown federation-id"
    page = run.wait(30).raise_for_error()
    assert page.status == 400
    assert op.authorize_log()[0]["federation-id"] == "not-" + op.federation_id
    assert op.token_log() == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # Python callers read the parameter's name (the command line, its flag).
        ({"federation_id": "not-interop"}, "check federation_id="),
        ({"client_id": "not-registered"}, "check client_id="),
        ({"federation_endpoint": "/extra/path"}, "check federation_endpoint="),
    ],
)
def test_a_wrong_setting_fails_before_the_browser_opens(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str],
    named: str,
) -> None:
    """Issue #12: against the independent provider, each wrong setting fails at once (with
    the default 300 s timeout), naming the setting, and no browser is started."""
    op = independent_provider
    monkeypatch.setenv("BROWSER", browser_driver.browser_env)
    settings = {
        "client_id": op.client_id,
        "federation_endpoint": op.endpoint,
        "federation_id": op.federation_id,
        **change,
    }
    if change.get("federation_endpoint", "").startswith("/"):
        settings["federation_endpoint"] = op.endpoint + change["federation_endpoint"]
    writer = io.StringIO()
    bearer = Bearer(
        "interop",
        settings["client_id"],
        settings["federation_endpoint"],
        settings["federation_id"],
        writer=writer,
        interactive=True,
    )
    with pytest.raises(ConfigurationError) as caught:
        bearer.receiver().fetch()
    assert named in str(caught.value)
    assert "/oauth2/authorize?" not in writer.getvalue()
    assert op.authorize_log() == [] and browser_driver.unexpected == []
    # The provider logs /oauth2/authorize only: a check of a wrong path does not reach it.
    checks = 0 if "federation_endpoint" in change else 1
    assert len(op.preflight_checks()) == checks and op.token_log() == []
