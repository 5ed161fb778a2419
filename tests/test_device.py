"""The device authorization grant (RFC 8628, issue 20): the pure pieces, the decision table,
and whole device logins against LocalFederation's device endpoint over real sockets."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import threading
import warnings
import webbrowser
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl

import pytest
import requests

from fedbearer import (
    AuthorizationError,
    ConfigurationError,
    DeviceCodeExpiredError,
    FederationAuth,
    InvalidClientError,
    InvalidTokenResponseError,
    LoginSettings,
    LoginTimeoutError,
    MemoryTokenCache,
    ScopeWarning,
    _clock,
)
from fedbearer._cli import EXIT_OK, EXIT_USAGE, main
from fedbearer._device import (
    DEFAULT_INTERVAL,
    DEVICE_CODE_GRANT_TYPE,
    Poll,
    choose_login,
    device_authorization_body,
    device_token_body,
    parse_device_authorization,
    poll_outcome,
)
from fedbearer._environment import detect_environment
from fedbearer._exceptions import TokenEndpointError
from fedbearer._profiles import (
    RememberedProfile,
    default_profiles_file,
    load_profiles,
    remember_profile,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .api_server import ProtectedAPI
from .conftest import wait_for

pytestmark = pytest.mark.timeout(60)

GOOD = {
    "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://example.com/device",
    "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
    "expires_in": 1800,
    "interval": 5,
}


def answer(**changes: Any) -> bytes:
    document = {**GOOD, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


# ------------------------------------------------------------------------ pure pieces


def test_the_device_authorization_request_carries_the_code_flows_client_scopes_and_params():
    body = device_authorization_body(
        client_id="cli",
        scopes=("openid", "email"),
        params=(("audience", "api"), ("federation-id", "f1")),
        client_secret="s3cret",
    )
    assert parse_qsl(body) == [
        ("client_id", "cli"),
        ("scope", "openid email"),
        ("audience", "api"),
        ("federation-id", "f1"),
        ("client_secret", "s3cret"),
    ]


def test_a_poll_names_the_device_code_grant():
    assert dict(parse_qsl(device_token_body(device_code="dc", client_id="cli"))) == {
        "grant_type": DEVICE_CODE_GRANT_TYPE,
        "device_code": "dc",
        "client_id": "cli",
    }


def test_a_good_answer_is_parsed_and_its_secrets_stay_out_of_the_repr():
    grant = parse_device_authorization(200, answer())
    assert grant.device_code == GOOD["device_code"] and grant.user_code == "WDJB-MJHT"
    assert grant.verification_uri == "https://example.com/device"
    assert grant.expires_in == 1800 and grant.interval == 5
    text = repr(grant)
    assert GOOD["device_code"] not in text and "WDJB" not in text


@pytest.mark.parametrize(
    ("changes", "interval", "expires_in"),
    [
        ({"interval": None}, DEFAULT_INTERVAL, 1800),  # RFC 8628 §3.2: 5 s when absent
        ({"interval": 0}, 1.0, 1800),
        ({"interval": 10_000}, 300.0, 1800),
        ({"expires_in": "600"}, 5, 600),
        ({"expires_in": 10**9}, 5, 86400),
    ],
)
def test_interval_and_expiry_are_kept_within_bounds(changes, interval, expires_in):
    grant = parse_device_authorization(200, answer(**changes))
    assert (grant.interval, grant.expires_in) == (interval, expires_in)


def test_google_s_verification_url_counts_as_the_verification_uri():
    grant = parse_device_authorization(
        200, answer(verification_uri=None, verification_url="https://www.google.com/device")
    )
    assert grant.verification_uri == "https://www.google.com/device"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"device_code": None}, "device_code"),
        ({"device_code": ""}, "device_code"),
        ({"device_code": "has space"}, "device_code"),
        ({"device_code": "x" * 2049}, "device_code"),
        ({"device_code": 12345}, "device_code"),
        ({"user_code": None}, "user_code"),
        ({"user_code": "WDJB\x1b[2J"}, "user_code"),
        ({"user_code": "WDJB\nMJHT"}, "user_code"),
        ({"user_code": "W" * 65}, "user_code"),
        ({"user_code": "-WDJB"}, "user_code"),
        ({"verification_uri": None}, "verification_uri"),
        ({"verification_uri": "http://evil.example/device"}, "verification_uri"),
        ({"verification_uri": "javascript:alert(1)"}, "verification_uri"),
        ({"verification_uri": "https://example.com/\x1b[2Jdevice"}, "verification_uri"),
        ({"verification_uri": "https://example.com/de vice"}, "verification_uri"),
        ({"verification_uri": "https://example.com/device\u202e"}, "verification_uri"),
        ({"verification_uri": ["https://example.com"]}, "verification_uri"),
        ({"verification_uri_complete": "https://x.example/\r\n"}, "verification_uri_complete"),
        ({"expires_in": None}, "expires_in"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": -5}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"expires_in": 1e400}, "expires_in"),
        ({"interval": -1}, "interval"),
        ({"interval": "fast"}, "interval"),
        ({"interval": False}, "interval"),
    ],
)
def test_every_field_of_the_answer_is_checked_and_never_quoted(changes, field):
    with pytest.raises(InvalidTokenResponseError, match=field) as caught:
        parse_device_authorization(200, answer(**changes))
    for value in changes.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(caught.value)
    assert GOOD["device_code"] not in str(caught.value)


def test_plain_http_on_this_machine_is_a_verification_uri_too():
    grant = parse_device_authorization(200, answer(verification_uri="http://127.0.0.1:8/device"))
    assert grant.verification_uri == "http://127.0.0.1:8/device"
    insecure = parse_device_authorization(
        200, answer(verification_uri="http://idp.lan/device"), allow_insecure_http=True
    )
    assert insecure.verification_uri == "http://idp.lan/device"


@pytest.mark.parametrize("body", [b"[]", b"<html>", b"\xff", b'"text"'])
def test_an_answer_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(InvalidTokenResponseError, match="JSON object"):
        parse_device_authorization(200, body)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (401, "invalid_client", InvalidClientError),
        (400, "unauthorized_client", InvalidClientError),
        (400, "invalid_scope", TokenEndpointError),
        (503, None, TokenEndpointError),
    ],
)
def test_a_refusal_is_typed_and_names_the_device_endpoint(status, error, kind):
    body = b"oops" if error is None else json.dumps({"error": error}).encode()
    with pytest.raises(kind, match="device authorization endpoint") as caught:
        parse_device_authorization(status, body, secrets_=("s3cret",))
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("error", "outcome"),
    [("authorization_pending", Poll.PENDING), ("slow_down", Poll.SLOW_DOWN)],
)
def test_pending_and_slow_down_keep_the_login_waiting(error, outcome):
    assert poll_outcome(TokenEndpointError("x", status=400, error=error)) is outcome


def test_access_denied_and_expired_token_end_the_login_with_typed_errors():
    with pytest.raises(AuthorizationError) as denied:
        poll_outcome(TokenEndpointError("x", status=400, error="access_denied"))
    assert denied.value.error == "access_denied"
    with pytest.raises(DeviceCodeExpiredError):
        poll_outcome(TokenEndpointError("x", status=400, error="expired_token"))
    other = TokenEndpointError("x", status=400, error="invalid_grant")
    with pytest.raises(TokenEndpointError) as caught:
        poll_outcome(other)
    assert caught.value is other


# ------------------------------------------------------------------ the decision table

DESKTOP = {"DISPLAY": ":0"}
SSH = {"SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22"}


def env_of(variables: dict[str, str], *, container: bool = False) -> Any:
    return detect_environment(
        variables, platform="linux", proc_version="Linux", container=container
    )


@pytest.mark.parametrize(
    ("device_code", "offered", "variables", "opener", "no_browser", "container", "device", "why"),
    [
        (False, True, SSH, False, False, False, False, "device_code=False"),
        (True, True, DESKTOP, False, False, False, True, "device_code=True"),
        (None, False, SSH, False, False, False, False, "offers no device"),
        (None, True, SSH, True, False, False, False, "opener"),
        (None, True, {**SSH, "BROWSER": "w3m"}, False, False, False, False, "$BROWSER"),
        (None, True, SSH, False, True, False, False, "no_browser_open"),
        (None, True, SSH, False, False, False, True, "SSH session"),
        (None, True, {**SSH, **DESKTOP}, False, False, False, True, "SSH session"),
        (None, True, {}, False, False, False, True, "no graphical display"),
        (None, True, {}, False, False, True, True, "container"),
        (None, True, DESKTOP, False, False, False, False, "a browser can be opened"),
    ],
)
def test_the_decision_table(
    device_code, offered, variables, opener, no_browser, container, device, why
):
    choice = choose_login(
        device_code=device_code,
        offered=offered,
        environment=env_of(variables, container=container),
        opener_given=opener,
        no_browser_open=no_browser,
    )
    assert choice.device is device
    assert why in choice.reason
    # Only a browser chosen automatically, with a device endpoint there, may fall back.
    assert choice.fallback is (
        device_code is None and offered and not device and why.startswith("a ")
    )


# ------------------------------------------------------------------------- settings


def test_forcing_the_device_code_on_a_nebius_federation_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="Nebius federation offers no device"):
        FederationAuth("c", "https://auth.example.com", "f", device_code=True)
    with pytest.raises(ConfigurationError, match="device_authorization_endpoint is for other"):
        LoginSettings(
            "c", "https://auth.example.com", "f", device_authorization_endpoint="https://x/d"
        )


def test_forcing_it_without_a_device_endpoint_names_the_argument():
    with pytest.raises(ConfigurationError, match="device_authorization_endpoint="):
        FederationAuth.from_endpoints(
            "c",
            authorization_endpoint="https://idp.example.com/auth",
            token_endpoint="https://idp.example.com/token",
            device_code=True,
        )


@pytest.mark.parametrize("value", ["yes", 1, 0])
def test_device_code_must_be_true_false_or_none(value):
    with pytest.raises(ConfigurationError, match="device_code must be True, False or None"):
        FederationAuth.from_issuer("https://idp.example.com", "c", device_code=value)


def test_a_device_endpoint_goes_with_the_other_endpoints_not_with_an_issuer():
    with pytest.raises(TypeError, match="device_authorization_endpoint"):
        FederationAuth.from_issuer(  # type: ignore[call-arg]
            "https://idp.example.com", "c", device_authorization_endpoint="https://idp/d"
        )
    with pytest.raises(ConfigurationError, match="device_authorization_endpoint goes with"):
        LoginSettings(
            "c", issuer="https://idp.example.com", device_authorization_endpoint="https://idp/d"
        )


def test_a_device_endpoint_given_must_be_https():
    with pytest.raises(ConfigurationError, match="device_authorization_endpoint"):
        FederationAuth.from_endpoints(
            "c",
            authorization_endpoint="https://idp.example.com/auth",
            token_endpoint="https://idp.example.com/token",
            device_authorization_endpoint="http://idp.example.com/device",
        )


# ------------------------------------------------------------ whole device logins


@pytest.fixture
def naps(monkeypatch):
    """The pauses between polls, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr(_clock, "sleep", taken.append)
    return taken


@pytest.fixture
def provider(make_provider):
    return make_provider(layout="keycloak")


def device_auth(fed: LocalFederation, **options: Any) -> FederationAuth:
    options.setdefault("writer", io.StringIO())
    options.setdefault("cache", MemoryTokenCache())
    options.setdefault("timeout", 20)
    options.setdefault("interactive", True)  # no opener: the plugin would refuse the login
    options.setdefault("device_code", True)
    return FederationAuth.from_issuer(fed.issuer, fed.client_id, **options)


def session_with(auth: FederationAuth) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


def test_the_discovery_document_advertises_the_device_endpoint_except_for_nebius(
    make_provider, federation
):
    fed = make_provider(layout="okta")
    assert fed.discovery_document()["device_authorization_endpoint"] == (
        fed.device_authorization_url
    )
    assert "device_authorization_endpoint" not in federation.discovery_document()
    assert federation.device_authorization_url is None


def test_a_device_login_shows_the_code_and_gives_a_token_that_is_cached_refreshed_revoked(
    provider, naps
):
    writer = io.StringIO()
    cache = MemoryTokenCache()
    auth = device_auth(provider, writer=writer, cache=cache)
    with ProtectedAPI(provider.is_valid) as api:
        session = session_with(auth)
        assert session.get(api.url).status_code == 200
        shown = writer.getvalue()
        assert provider.device_page_url in shown and "enter the code" in shown
        assert provider.device_authorizations == 1 and provider.device_polls == 1
        assert naps == [1.0]  # the provider's interval
        assert cache.get(auth.bearer.name) is not None
        provider.revoke_access_tokens()
        assert session.get(api.url).status_code == 200  # renewed by refresh, no new code
        assert provider.refreshes == 1 and provider.device_authorizations == 1
    assert auth.logout().revoked == ("refresh_token", "access_token")


def test_pending_and_slow_down_are_waited_out_with_a_growing_interval(provider, naps):
    provider.fail_next("authorization_pending", 2)
    provider.fail_next("slow_down")
    provider.fail_next("authorization_pending")
    provider.fail_next("slow_down")
    device_auth(provider).get_token()
    # RFC 8628 §3.5: each slow_down adds 5 s for every later poll.
    assert naps == [1.0, 1.0, 1.0, 6.0, 6.0, 11.0]
    assert provider.device_polls == 6


def test_without_an_interval_the_client_waits_rfc_8628_s_five_seconds(make_provider, naps):
    fed = make_provider(layout="dex", device_interval=None)
    device_auth(fed).get_token()
    assert naps == [5.0]


def test_denied_ends_the_login_with_authorization_error(provider, naps):
    provider.fail_next("access_denied")
    with pytest.raises(AuthorizationError, match="refused") as caught:
        device_auth(provider).get_token()
    assert caught.value.error == "access_denied"


def test_a_person_who_denies_on_the_page_ends_the_login(make_provider, naps):
    fed = make_provider(layout="keycloak", auto_approve=False)
    threading.Thread(
        target=lambda: (
            wait_for(lambda: fed.pending_user_codes)
            and fed.decide_device(fed.pending_user_codes[0], approve=False)
        ),
        daemon=True,
    ).start()
    with pytest.raises(AuthorizationError):
        device_auth(fed).get_token()


def test_an_expired_code_ends_the_login_with_device_code_expired(provider, naps):
    provider.fail_next("expired_token")
    with pytest.raises(DeviceCodeExpiredError, match="start the login again"):
        device_auth(provider).get_token()


def test_a_code_whose_expires_in_passes_ends_the_login_without_a_last_poll(make_provider):
    fed = make_provider(layout="keycloak", auto_approve=False, device_code_lifetime=1)
    with pytest.raises(DeviceCodeExpiredError):
        device_auth(fed).get_token()
    assert fed.device_polls <= 1


@pytest.mark.timeout(60)  # a guard only: the code's own 600 s would trip it
def test_the_login_deadline_bounds_the_whole_device_flow(make_provider):
    fed = make_provider(layout="keycloak", auto_approve=False)
    with pytest.raises(LoginTimeoutError, match="deadline") as caught:
        device_auth(fed, timeout=1.5).get_token()
    # Ended by the login's deadline, not by the code's expiry (600 s here).
    assert not isinstance(caught.value, DeviceCodeExpiredError)


def test_a_person_entering_the_code_on_the_page_completes_the_login(make_provider):
    fed = make_provider(layout="keycloak", auto_approve=False)
    writer = io.StringIO()

    def person() -> None:
        assert wait_for(lambda: "enter the code" in writer.getvalue(), timeout=10)
        code = writer.getvalue().split("enter the code", 1)[1].split()[0]
        page = requests.get(fed.device_page_url, timeout=5)
        assert page.status_code == 200 and "Enter the code" in page.text
        decided = requests.post(
            fed.device_page_url,
            data={"user_code": code.lower(), "user": "dana", "decision": "approve"},
            timeout=5,
        )
        assert decided.status_code == 200 and "approved" in decided.text

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    token = device_auth(fed, writer=writer).get_token()
    thread.join(5)
    with ProtectedAPI(fed.is_valid) as api:
        assert requests.get(api.url, headers={"Authorization": f"Bearer {token.token}"}).ok
    assert (
        requests.get(
            fed.whoami_url, headers={"Authorization": f"Bearer {token.token}"}, timeout=5
        ).json()["user"]
        == "dana"
    )


def test_the_same_client_authentication_scopes_and_params_are_sent(make_provider, naps):
    fed = make_provider(layout="okta", client_secret="s3cret-value", federation_id="fed-1")
    auth = device_auth(
        fed,
        scopes=["openid", "email"],
        params={"federation-id": "fed-1"},
        client_secret="s3cret-value",
    )
    token = auth.get_token()
    assert fed.granted_scopes(token.token) == {"openid", "email"}
    (poll,) = fed.device_poll_params
    assert poll["client_secret"] == "s3cret-value" and poll["grant_type"] == DEVICE_CODE_GRANT_TYPE


def test_a_device_login_keeps_the_account_and_the_granted_scopes_and_warns_of_a_withheld_one(
    make_provider, naps
):
    fed = make_provider(layout="keycloak", withheld_scopes={"email"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token = device_auth(fed, scopes="openid profile email").get_token()
    # The ID token of the device grant names the account, as the code flow's does.
    assert token.account is not None and token.account.sub == fed.user
    assert token.account.preferred_username == fed.user
    assert token.scope == ("openid", "profile")
    (warned,) = [w for w in caught if issubclass(w.category, ScopeWarning)]
    assert "did not grant the scope email" in str(warned.message)


def test_neither_code_is_logged_at_any_level(provider, naps, caplog):
    writer = io.StringIO()
    with caplog.at_level(logging.DEBUG):
        device_auth(provider, writer=writer).get_token()
    (poll,) = provider.device_poll_params
    user_code = writer.getvalue().split("enter the code", 1)[1].split()[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert poll["device_code"] not in logged and user_code not in logged
    assert "login: device code, as device_code=True" in logged


def test_a_refused_device_request_names_the_setting_to_change(provider, capsys, monkeypatch):
    with pytest.raises(InvalidClientError, match=r"device_code=False") as caught:
        FederationAuth.from_issuer(
            provider.issuer,
            "someone-else",
            writer=io.StringIO(),
            cache=None,
            interactive=True,
            device_code=True,
        ).get_token()
    assert "--no-device-code" not in str(caught.value)  # a Python caller reads no flags
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "1")
    argv = ["login", "--issuer", provider.issuer, "--client-id", "someone-else"]
    assert main([*argv, "--device-code"]) != EXIT_OK
    err = capsys.readouterr().err
    assert "--no-device-code" in err and "device_code=" not in err


def test_a_missing_device_endpoint_is_named_in_the_caller_s_terms(
    make_provider, capsys, monkeypatch
):
    fed = make_provider(layout="keycloak", device_flow=False)
    with pytest.raises(ConfigurationError, match="device_code=True, but") as caught:
        device_auth(fed).get_token()
    assert "--device-code" not in str(caught.value)
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "1")
    argv = ["login", "--issuer", fed.issuer, "--client-id", fed.client_id, "--device-code"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--device-code, but" in err and "device_code=" not in err


def test_from_endpoints_with_a_device_endpoint(provider, naps):
    auth = FederationAuth.from_endpoints(
        provider.client_id,
        authorization_endpoint=provider.authorize_url,
        token_endpoint=provider.token_url,
        device_authorization_endpoint=provider.device_authorization_url,
        writer=io.StringIO(),
        cache=None,
        interactive=True,
        device_code=True,
    )
    assert provider.is_valid(auth.get_token().token)
    assert provider.device_authorizations == 1 and provider.authorize_requests == 0


# ------------------------------------------------------------- the automatic choice


def test_an_ssh_session_without_a_display_logs_in_with_the_device_code(
    provider, naps, monkeypatch, caplog
):
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.INFO, logger="fedbearer.login"):
        token = device_auth(provider, device_code=None).get_token()
    assert provider.is_valid(token.token)
    assert provider.device_authorizations == 1 and provider.authorize_requests == 0
    assert any(
        "login: device code, as no browser can be opened here" in r.getMessage()
        and "SSH session" in r.getMessage()
        for r in caplog.records
    )


def test_an_ssh_session_with_browser_set_keeps_the_browser(
    provider, monkeypatch, browser_command, caplog
):
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
    with caplog.at_level(logging.INFO, logger="fedbearer.login"):
        token = device_auth(provider, device_code=None).get_token()
    assert provider.is_valid(token.token)
    assert provider.device_authorizations == 0 and provider.code_exchanges == 1
    assert any("login: browser, as $BROWSER" in r.getMessage() for r in caplog.records)


def test_a_browser_that_cannot_be_launched_switches_to_the_device_code(
    provider, naps, monkeypatch, caplog
):
    monkeypatch.setenv("DISPLAY", ":0")

    def no_browser(using: Optional[str] = None) -> Any:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    writer = io.StringIO()
    with caplog.at_level(logging.INFO, logger="fedbearer.login"):
        token = device_auth(provider, device_code=None, writer=writer, preflight=False).get_token()
    # Switched at once: waiting the loopback login out would have spent the login's whole
    # deadline (timeout=20), and the device login after it would have failed.
    assert provider.is_valid(token.token)
    assert provider.authorize_requests == 0
    assert provider.device_authorizations == 1
    assert "the browser could not be opened" in writer.getvalue()
    assert any("using the device code" in r.getMessage() for r in caplog.records)


def test_a_programmatic_opener_keeps_the_browser_login(provider):
    auth = device_auth(provider, device_code=None, opener=ProgrammaticBrowser())
    assert provider.is_valid(auth.get_token().token)
    assert provider.device_authorizations == 0 and provider.code_exchanges == 1


def test_a_nebius_federation_is_unchanged_in_an_ssh_session(federation, monkeypatch, browser):
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
    auth = FederationAuth(
        federation.client_id,
        federation.endpoint,
        "test-federation",
        opener=browser,
        writer=io.StringIO(),
        cache=None,
    )
    assert federation.is_valid(auth.get_token().token)
    assert federation.code_exchanges == 1 and federation.device_authorizations == 0


# ------------------------------------------------------------------------ Ctrl-C

_WAIT_FOR_CODE = """
import sys
from fedbearer import FederationAuth
auth = FederationAuth.from_issuer(sys.argv[1], sys.argv[2], cache=None, device_code=True,
                                  interactive=True, timeout=60)
try:
    auth.get_token()
except KeyboardInterrupt:
    sys.stderr.write("interrupted\\n")
    sys.exit(130)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_ends_a_device_login_at_once(make_provider):
    fed = make_provider(layout="keycloak", auto_approve=False, device_interval=30)
    process = subprocess.Popen(
        [sys.executable, "-c", _WAIT_FOR_CODE, fed.issuer, fed.client_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("The code is valid"):
                break
        process.send_signal(signal.SIGINT)
        # A guard, not a measurement: waiting out the 30 s interval would trip it.
        _, err = process.communicate(timeout=25)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and "interrupted" in err, err
    assert fed.device_polls == 0


# ------------------------------------------------------------- profiles and the CLI


@pytest.mark.parametrize("choice", [True, False, None])
def test_the_choice_is_remembered_with_the_profile(isolated_env, choice):
    remember_profile(
        RememberedProfile("kc", "cli", issuer="https://sso.example.com", device_code=choice)
    )
    assert load_profiles().get("kc").device_code is choice
    assert FederationAuth.from_profile("kc").bearer.settings.device_code is choice
    # An explicit argument wins over the file.
    assert FederationAuth.from_profile("kc", device_code=False).bearer.settings.device_code is False


def test_a_remembered_choice_that_is_not_a_boolean_is_a_clear_error(isolated_env):
    path = Path(default_profiles_file())
    path.parent.mkdir(parents=True)
    path.write_text(
        "profiles:\n  kc:\n    client_id: cli\n    issuer: https://sso.example.com\n"
        "    device_code: maybe\n"
    )
    with pytest.raises(ConfigurationError, match=r"kc.device_code must be true or false"):
        load_profiles()


def test_device_code_on_the_command_line_for_a_nebius_federation_is_a_usage_error(
    federation, capsys
):
    code = main(
        [
            "token",
            *("--client-id", federation.client_id, "--federation-endpoint", federation.endpoint),
            *("--federation-id", "test-federation", "--device-code"),
        ]
    )
    assert code == EXIT_USAGE
    assert "Nebius federation offers no device" in capsys.readouterr().err
    assert federation.authorize_requests == 0


def test_the_command_line_logs_in_with_a_device_code_and_remembers_it(
    provider, naps, capsys, monkeypatch
):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "1")
    argv = ["--issuer", provider.issuer, "--client-id", provider.client_id, "--profile", "d"]
    assert main(["login", *argv, "--device-code"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "enter the code" in captured.err and captured.out.startswith("Logged in")
    assert load_profiles().get("d").device_code is True
    assert provider.device_authorizations == 1 and provider.authorize_requests == 0
    # --no-device-code overrides the remembered choice, and is remembered in turn.
    assert main(["login", *argv, "--no-device-code"]) == EXIT_OK  # cached: no login
    assert load_profiles().get("d").device_code is False


def test_forcing_it_at_a_discovered_provider_without_one_fails_at_the_first_login(
    make_provider,
):
    fed = make_provider(layout="keycloak", device_flow=False)
    assert "device_authorization_endpoint" not in fed.discovery_document()
    with pytest.raises(ConfigurationError, match="offers no device authorization endpoint"):
        device_auth(fed).get_token()
    assert fed.authorize_requests == 0 and fed.token_requests == 0
