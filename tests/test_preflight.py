"""Fail fast on a wrong setting: the pre-flight check before the browser opens (issue #12).

Each wrong setting used to wait out the whole login timeout (300 s by default) and then
advise "finish the login sooner". Every test here uses that default timeout: a test that
fell back to waiting would hit the suite's per-test time limit and fail.
"""

from __future__ import annotations

import io
import socket
import threading
from dataclasses import replace

import pytest

from fedbearer import ConfigurationError, FederationAuth, LoginTimeoutError
from fedbearer._protocol import authorize_answer_problem
from fedbearer.testing import ProgrammaticBrowser

from .conftest import login_threads

# Logins run as a person runs them: no opener, so the test opts in to real logins.
pytestmark = [pytest.mark.timeout(60), pytest.mark.fedbearer_real]

REDIRECT = "http://127.0.0.1:5000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def person_login(endpoint: str, client_id: str = "c", federation_id: str = "f", **kw):
    """A login as a person runs it: no opener, the URL shown on the writer."""
    out = io.StringIO()
    auth = FederationAuth(
        client_id, endpoint, federation_id, cache=None, writer=out, no_browser_open=True, **kw
    )
    return auth, out


def fails_fast(auth: FederationAuth, out: io.StringIO, *words: str) -> str:
    with pytest.raises(ConfigurationError) as info:
        auth.get_token()
    message = str(info.value)
    for word in words:
        assert word in message
    assert "/oauth2/authorize?" not in out.getvalue()  # no URL was shown: nobody waited
    assert login_threads() == []
    return message


def test_an_unreachable_port_fails_at_once_naming_the_endpoint():
    auth, out = person_login(f"http://127.0.0.1:{free_port()}")
    fails_fast(auth, out, "connection refused", "check federation_endpoint=")


def test_a_host_that_does_not_resolve_fails_at_once_naming_the_endpoint():
    auth, out = person_login("https://fedbearer-test.invalid")
    fails_fast(auth, out, "does not resolve", "federation_endpoint")


def test_https_to_a_plain_http_server_fails_at_once_naming_tls(federation, caplog):
    auth, out = person_login(federation.endpoint.replace("http://", "https://"))
    fails_fast(auth, out, "TLS handshake", "http:// instead of https://", "REQUESTS_CA_BUNDLE")
    # The local federation answers a TLS handshake like any malformed request.
    assert "failed to handle" not in caplog.text


def test_an_unknown_client_id_fails_at_once_naming_the_client_id(federation):
    auth, out = person_login(federation.endpoint, "not-registered", federation.federation_id)
    fails_fast(auth, out, "HTTP 400", "check client_id=", "loopback redirect")


def test_an_extra_path_fails_at_once_naming_the_endpoint_path(federation):
    auth, out = person_login(
        federation.endpoint + "/extra", federation.client_id, federation.federation_id
    )
    fails_fast(auth, out, "HTTP 404", "including its path")


def test_a_wrong_federation_id_fails_at_once_naming_it(federation):
    auth, out = person_login(federation.endpoint, federation.client_id, "wrong-federation")
    fails_fast(auth, out, "invalid_request", "federation-id", "check federation_id=")


def test_the_check_sends_a_throwaway_state_never_the_logins_own(federation):
    auth, out = person_login(federation.endpoint, federation.client_id, federation.federation_id)
    browser = ProgrammaticBrowser()

    def follow_the_shown_url() -> None:  # the person at the keyboard
        for _ in range(1000):
            urls = [w for w in out.getvalue().split() if "/oauth2/authorize?" in w]
            if urls:
                browser(urls[0])
                return
            threading.Event().wait(0.01)

    person = threading.Thread(target=follow_the_shown_url, daemon=True)
    person.start()
    token = auth.get_token()
    person.join(10)
    assert federation.is_valid(token.token)
    states = [params["state"] for params in federation.authorize_params]
    assert len(states) == 2 and states[0] != states[1]  # the check, then the browser
    assert states[0] not in out.getvalue() and states[1] in out.getvalue()


def test_a_federation_error_5xx_is_not_blamed_on_a_setting(federation, monkeypatch):
    real = federation.handle_authorize
    calls = []

    def flaky(query):
        calls.append(query)
        return replace(real(query), status=503, headers={}, body=b"Down for maintenance.")

    monkeypatch.setattr(federation, "handle_authorize", flaky)
    auth, _ = person_login(
        federation.endpoint, federation.client_id, federation.federation_id, timeout=1
    )
    with pytest.raises(LoginTimeoutError):  # the login went on (and nobody came)
        auth.get_token()
    assert len(calls) == 1


def test_the_check_can_be_turned_off():
    auth, out = person_login(f"http://127.0.0.1:{free_port()}", timeout=1, preflight=False)
    with pytest.raises(LoginTimeoutError) as info:
        auth.get_token()
    assert "/oauth2/authorize?" in out.getvalue()
    assert "client id" in str(info.value)  # the timeout names the likely causes


def test_a_programmatic_opener_skips_the_check(federation):
    auth = FederationAuth(
        federation.client_id,
        federation.endpoint,
        federation.federation_id,
        cache=None,
        writer=io.StringIO(),
        opener=ProgrammaticBrowser(),
    )
    assert federation.is_valid(auth.get_token().token)
    assert federation.authorize_requests == 1


@pytest.mark.parametrize(
    ("status", "location", "body", "expected"),
    [
        (302, "https://idp.example/login?x=1", b"", None),
        (200, "", b"<html>login</html>", None),
        (503, "", b"", None),
        (404, "", b"", ("federation_endpoint", "HTTP 404: no authorization endpoint there")),
        (405, "", b"", ("federation_endpoint", "HTTP 405: no authorization endpoint there")),
        (400, "", b"<html>Unknown client</html>", ("client_id", "HTTP 400")),
        (
            401,
            "",
            b'{"error": "invalid_client", "error_description": "no such\\nclient"}',
            ("client_id", "HTTP 401, invalid_client: no such client"),
        ),
        (302, REDIRECT + "/?error=invalid_scope&state=s", b"", ("scope", "invalid_scope")),
        (302, REDIRECT + "?error=unauthorized_client", b"", ("client_id", "unauthorized_client")),
        (302, REDIRECT + "/?error=access_denied&state=s", b"", None),
        (302, REDIRECT + "/?error=login_required", b"", None),
        (302, "https://evil.example/?error=invalid_client", b"", None),
    ],
)
def test_what_an_answer_to_the_authorization_request_blames(status, location, body, expected):
    assert authorize_answer_problem(status, location, body, redirect_uri=REDIRECT) == expected
