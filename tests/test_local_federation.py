"""fedbearer.testing.LocalFederation and ProgrammaticBrowser, over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Optional
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

import fedbearer._clock
from fedbearer.testing import Layout, LocalFederation, ProgrammaticBrowser

# RFC 7636 Appendix B: an independent vector, so the server is not checked against itself.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "http://127.0.0.1:51234"  # nothing listens: tests read the Location header
STATE = "s" * 43


# -- helpers ---------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http_get(url: str, headers: Optional[dict[str, str]] = None) -> tuple[int, Message, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def http_post_form(url: str, form: dict[str, str]) -> tuple[int, Message, str]:
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def authorize_query(fed: LocalFederation, **overrides: Optional[str]) -> str:
    params: dict[str, Optional[str]] = {
        "response_type": "code",
        "client_id": fed.client_id,
        "scope": "openid",
        "state": STATE,
        "redirect_uri": REDIRECT,
        "code_challenge": RFC_CHALLENGE,
        "code_challenge_method": "S256",
        "federation-id": "test-federation",
    }
    params.update({k.replace("federation_id", "federation-id"): v for k, v in overrides.items()})
    return urlencode({k: v for k, v in params.items() if v is not None})


def authorize(fed: LocalFederation, **overrides: Optional[str]) -> tuple[int, Message, str]:
    return http_get(fed.authorize_url + "?" + authorize_query(fed, **overrides))


def callback_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(fed: LocalFederation, **overrides: Optional[str]) -> str:
    status, headers, _ = authorize(fed, **overrides)
    assert status == 302
    return callback_params(headers["Location"])["code"]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # no proxy from the environment for loopback
        yield s


@pytest.fixture
def fed() -> Iterator[LocalFederation]:
    with LocalFederation() as federation:
        yield federation


@pytest.fixture
def make_fed() -> Iterator[Callable[..., LocalFederation]]:
    started: list[LocalFederation] = []

    def make(**options: Any) -> LocalFederation:
        federation = LocalFederation(**options).start()
        started.append(federation)
        return federation

    yield make
    for federation in started:
        federation.close()


def exchange(
    session: requests.Session, fed: LocalFederation, code: str, **overrides: str
) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": fed.client_id,
        "code_verifier": RFC_VERIFIER,
        **overrides,
    }
    return session.post(fed.token_url, data=form, timeout=5)


def refresh(
    session: requests.Session, fed: LocalFederation, token: str, **overrides: str
) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": fed.client_id}
    return session.post(fed.token_url, data={**form, **overrides}, timeout=5)


def whoami(session: requests.Session, fed: LocalFederation, token: str) -> requests.Response:
    return session.get(fed.whoami_url, headers={"Authorization": f"Bearer {token}"}, timeout=5)


class CallbackServer:
    """Plays the client's loopback redirect target; records each query it receives."""

    def __init__(self) -> None:
        queries: list[dict[str, str]] = []
        self.queries = queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                queries.append(callback_params(self.path))
                body = b"<p>You may close this tab.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    server = CallbackServer()
    yield server
    server.close()


# -- PKCE and the happy path -------------------------------------------------------------------


def test_rfc7636_vector_is_what_the_tests_send() -> None:
    digest = hashlib.sha256(RFC_VERIFIER.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == RFC_CHALLENGE


def test_code_exchange_with_correct_verifier_returns_bearer_token(
    fed: LocalFederation, session: requests.Session
) -> None:
    code = get_code(fed)
    response = exchange(session, fed, code)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "id_token",  # the scope holds openid (OpenID Connect Core §3.1.3.3)
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid"
    assert len(body["access_token"]) >= 43
    assert fed.is_valid(body["access_token"])
    assert fed.issued_tokens == [body["access_token"]]
    me = whoami(session, fed, body["access_token"])
    assert me.status_code == 200
    assert me.json() == {"user": "alice", "client_id": "fedbearer-test"}


def test_auto_approve_redirects_with_code_state_and_iss(fed: LocalFederation) -> None:
    status, headers, _ = authorize(fed)
    assert status == 302
    location = headers["Location"]
    assert location.startswith(REDIRECT + "?")
    params = callback_params(location)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == STATE
    assert params["iss"] == fed.issuer == fed.endpoint
    assert headers["Cache-Control"] == "no-store"


def test_send_iss_false_leaves_iss_out(make_fed: Callable[..., LocalFederation]) -> None:
    fed = make_fed(send_iss=False)
    _, headers, _ = authorize(fed)
    assert set(callback_params(headers["Location"])) == {"code", "state"}


def test_redirect_uri_path_and_query_are_kept(fed: LocalFederation) -> None:
    _, headers, _ = authorize(fed, redirect_uri="http://localhost:51234/cb?x=1")
    location = headers["Location"]
    assert location.startswith("http://localhost:51234/cb?x=1&code=")


def test_authorize_records_exact_query_params(fed: LocalFederation) -> None:
    authorize(fed, scope="openid profile")
    authorize(fed, state=None)
    params = fed.authorize_params
    assert len(params) == 2
    assert params[0] == {
        "response_type": "code",
        "client_id": "fedbearer-test",
        "scope": "openid profile",
        "state": STATE,
        "redirect_uri": REDIRECT,
        "code_challenge": RFC_CHALLENGE,
        "code_challenge_method": "S256",
        "federation-id": "test-federation",
    }
    assert "state" not in params[1]


# -- token endpoint errors -------------------------------------------------------------------


def test_wrong_verifier_is_invalid_grant(fed: LocalFederation, session: requests.Session) -> None:
    code = get_code(fed)
    response = exchange(session, fed, code, code_verifier="x" * 43)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "error_description" in response.json()
    assert fed.issued_tokens == []


def test_reused_code_is_invalid_grant_and_revokes_its_tokens(
    fed: LocalFederation, session: requests.Session
) -> None:
    code = get_code(fed)
    first = exchange(session, fed, code).json()
    second = exchange(session, fed, code)

    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert not fed.is_valid(first["access_token"])
    assert refresh(session, fed, first["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT + "/",
        "http://127.0.0.1:51235",
        "http://localhost:51234",
        "HTTP://127.0.0.1:51234",
    ],
)
def test_redirect_uri_not_byte_identical_is_invalid_grant(
    fed: LocalFederation, session: requests.Session, redirect_uri: str
) -> None:
    code = get_code(fed)
    response = exchange(session, fed, code, redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_unknown_client_is_invalid_client_401(
    fed: LocalFederation, session: requests.Session
) -> None:
    code = get_code(fed)
    response = exchange(session, fed, code, client_id="someone-else")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    # The code was not consumed by the rejected client.
    assert exchange(session, fed, code).status_code == 200


def test_expired_code_is_invalid_grant(
    fed: LocalFederation, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = get_code(fed)
    later = time.time() + 61
    monkeypatch.setattr(fedbearer._clock, "now", lambda: later)
    response = exchange(session, fed, code)
    assert response.json()["error"] == "invalid_grant"


def test_code_used_within_its_lifetime_is_accepted(
    fed: LocalFederation, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.time()
    monkeypatch.setattr(fedbearer._clock, "now", lambda: start)
    code = get_code(fed)
    monkeypatch.setattr(fedbearer._clock, "now", lambda: start + 59)
    assert exchange(session, fed, code).status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": ""}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "nope"}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ],
)
def test_token_endpoint_rejects_bad_forms(
    fed: LocalFederation, session: requests.Session, form: dict[str, str], error: str
) -> None:
    full = {
        "client_id": fed.client_id,
        "redirect_uri": REDIRECT,
        "code_verifier": RFC_VERIFIER,
        **form,
    }
    response = session.post(fed.token_url, data=full, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_token_endpoint_requires_form_encoding(
    fed: LocalFederation, session: requests.Session
) -> None:
    response = session.post(fed.token_url, json={"grant_type": "authorization_code"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_repeated_token_parameter_is_invalid_request(
    fed: LocalFederation, session: requests.Session
) -> None:
    code = get_code(fed)
    body = urlencode(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", fed.client_id),
            ("code_verifier", RFC_VERIFIER),
        ]
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = session.post(fed.token_url, data=body, headers=headers, timeout=5)
    assert response.json()["error"] == "invalid_request"


# -- authorize errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "http://evil.example:51234",
        "http://127.0.0.1",
        "http://127.0.0.2:51234",
        "http://localhost.evil.example:51234",
        "http://user@127.0.0.1:51234",
        "http://127.0.0.1:51234/cb#frag",
        "https://127.0.0.1:51234",
        "",
        None,
    ],
)
def test_non_loopback_redirect_uri_is_400_page_not_redirect(
    fed: LocalFederation, redirect_uri: Optional[str]
) -> None:
    status, headers, body = authorize(fed, redirect_uri=redirect_uri)
    assert status == 400
    assert "Location" not in headers
    assert headers["Content-Type"].startswith("text/html")
    assert "evil" not in body
    assert fed.logins == 0


def test_unknown_client_at_authorize_is_400_page_not_redirect(fed: LocalFederation) -> None:
    status, headers, _ = authorize(fed, client_id="other")
    assert status == 400
    assert "Location" not in headers


def test_ipv6_loopback_redirect_uri_is_accepted(fed: LocalFederation) -> None:
    status, headers, _ = authorize(fed, redirect_uri="http://[::1]:51234")
    assert status == 302
    assert headers["Location"].startswith("http://[::1]:51234?code=")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "a" * 42}, "invalid_request"),
        ({"code_challenge": "a" * 129}, "invalid_request"),
        ({"code_challenge": "+" * 43}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"federation_id": "other-federation"}, "invalid_request"),
        ({"federation_id": None}, "invalid_request"),
    ],
)
def test_invalid_authorize_request_redirects_with_error_and_state(
    fed: LocalFederation, overrides: dict[str, Optional[str]], error: str
) -> None:
    status, headers, _ = authorize(fed, **overrides)
    assert status == 302
    params = callback_params(headers["Location"])
    assert params["error"] == error
    assert params["error_description"]
    assert params["state"] == STATE
    assert params["iss"] == fed.issuer
    assert "code" not in params
    assert fed.logins == 0


def test_missing_state_redirects_invalid_request_without_state(fed: LocalFederation) -> None:
    _, headers, _ = authorize(fed, state=None)
    params = callback_params(headers["Location"])
    assert params["error"] == "invalid_request"
    assert "state" not in params


def test_repeated_authorize_parameter_is_rejected(fed: LocalFederation) -> None:
    query = authorize_query(fed) + "&state=second"
    status, headers, _ = http_get(fed.authorize_url + "?" + query)
    assert status == 302
    assert callback_params(headers["Location"])["error"] == "invalid_request"


def test_federation_id_none_is_not_checked(make_fed: Callable[..., LocalFederation]) -> None:
    fed = make_fed(federation_id=None)
    _, headers, _ = authorize(fed, federation_id=None)
    assert "code" in callback_params(headers["Location"])


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_grant_rotates_the_refresh_token(
    fed: LocalFederation, session: requests.Session
) -> None:
    first = exchange(session, fed, get_code(fed)).json()
    response = refresh(session, fed, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert fed.is_valid(second["access_token"])
    assert whoami(session, fed, second["access_token"]).json()["user"] == "alice"
    assert fed.refreshes == 1
    # The rotated-away token is spent, and replaying it revokes the whole family.
    replay = refresh(session, fed, first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    assert not fed.is_valid(second["access_token"])
    assert refresh(session, fed, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_with_other_client_is_invalid_client(
    fed: LocalFederation, session: requests.Session
) -> None:
    first = exchange(session, fed, get_code(fed)).json()
    response = refresh(session, fed, first["refresh_token"], client_id="other")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert refresh(session, fed, first["refresh_token"]).status_code == 200


def test_refresh_cannot_widen_scope(fed: LocalFederation, session: requests.Session) -> None:
    first = exchange(session, fed, get_code(fed)).json()
    response = refresh(session, fed, first["refresh_token"], scope="openid admin")
    assert response.json()["error"] == "invalid_scope"


def test_refresh_tokens_can_be_turned_off(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(issue_refresh_tokens=False)
    body = exchange(session, fed, get_code(fed)).json()
    assert "refresh_token" not in body
    assert fed.is_valid(body["access_token"])


def test_token_lifetime_none_omits_expires_in_and_never_expires(
    make_fed: Callable[..., LocalFederation],
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed = make_fed(token_lifetime=None)
    body = exchange(session, fed, get_code(fed)).json()
    assert "expires_in" not in body
    far = time.time() + 10 * 365 * 86400
    monkeypatch.setattr(fedbearer._clock, "now", lambda: far)
    assert fed.is_valid(body["access_token"])


# -- protected resource --------------------------------------------------------------------


def test_whoami_without_credentials_is_401_with_realm_only(
    fed: LocalFederation, session: requests.Session
) -> None:
    response = session.get(fed.whoami_url, timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="local-federation"'
    assert fed.resource_requests == 1


@pytest.mark.parametrize("token", ["unknown", "a" * 43])
def test_whoami_with_unknown_token_is_401_invalid_token(
    fed: LocalFederation, session: requests.Session, token: str
) -> None:
    response = whoami(session, fed, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_whoami_rejects_token_once_clock_passes_expiry(
    make_fed: Callable[..., LocalFederation],
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed = make_fed(token_lifetime=600)
    start = 1_800_000_000.0
    monkeypatch.setattr(fedbearer._clock, "now", lambda: start)
    token = exchange(session, fed, get_code(fed)).json()["access_token"]

    monkeypatch.setattr(fedbearer._clock, "now", lambda: start + 599)
    assert whoami(session, fed, token).status_code == 200
    monkeypatch.setattr(fedbearer._clock, "now", lambda: start + 600)
    response = whoami(session, fed, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert not fed.is_valid(token)


def test_bearer_scheme_is_case_insensitive(fed: LocalFederation, session: requests.Session) -> None:
    token = fed.issue_token()
    headers = {"Authorization": f"bearer {token}"}
    assert session.get(fed.whoami_url, headers=headers, timeout=5).status_code == 200


def test_issue_token_mints_a_valid_token_without_a_login(
    fed: LocalFederation, session: requests.Session
) -> None:
    token = fed.issue_token(user="bob")
    assert whoami(session, fed, token).json() == {"user": "bob", "client_id": "fedbearer-test"}
    assert fed.logins == 0


def test_revoke_all_invalidates_access_and_refresh_tokens(
    fed: LocalFederation, session: requests.Session
) -> None:
    body = exchange(session, fed, get_code(fed)).json()
    minted = fed.issue_token()
    fed.revoke_all()
    assert not fed.is_valid(body["access_token"])
    assert not fed.is_valid(minted)
    assert whoami(session, fed, body["access_token"]).status_code == 401
    assert refresh(session, fed, body["refresh_token"]).json()["error"] == "invalid_grant"
    # New logins still work afterwards.
    assert fed.is_valid(exchange(session, fed, get_code(fed)).json()["access_token"])


# -- fault injection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "check"),
    [
        ("invalid_grant", 400, lambda r: r.json()["error"] == "invalid_grant"),
        ("invalid_client", 401, lambda r: r.json()["error"] == "invalid_client"),
        ("non_json", 200, lambda r: r.headers["Content-Type"].startswith("text/html")),
        ("json_array", 200, lambda r: r.json() == []),
        ("missing_access_token", 200, lambda r: "access_token" not in r.json()),
        ("wrong_types", 200, lambda r: isinstance(r.json()["expires_in"], list)),
        (
            "no_expires_in",
            200,
            lambda r: "expires_in" not in r.json() and "access_token" in r.json(),
        ),
    ],
)
def test_token_fault_changes_exactly_the_next_answer(
    fed: LocalFederation,
    session: requests.Session,
    kind: Any,
    status: int,
    check: Callable[[requests.Response], bool],
) -> None:
    fed.fail_next(kind)
    assert fed.pending_faults == [kind]
    faulty = exchange(session, fed, get_code(fed))
    assert faulty.status_code == status
    assert check(faulty)
    assert fed.pending_faults == []
    normal = exchange(session, fed, get_code(fed))
    assert normal.status_code == 200
    assert set(normal.json()) >= {"access_token", "expires_in"}


def test_error_fault_leaves_the_code_usable(
    fed: LocalFederation, session: requests.Session
) -> None:
    fed.fail_next("invalid_grant")
    code = get_code(fed)
    assert exchange(session, fed, code).status_code == 400
    assert exchange(session, fed, code).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_fault_answers_that_status(
    fed: LocalFederation, session: requests.Session, status: int
) -> None:
    fed.fail_next("server_error", status=status)
    response = exchange(session, fed, get_code(fed))
    assert response.status_code == status


def test_fault_count_applies_to_that_many_requests(
    fed: LocalFederation, session: requests.Session
) -> None:
    fed.fail_next("server_error", count=2, status=503)
    code = get_code(fed)
    assert [exchange(session, fed, code).status_code for _ in range(3)] == [503, 503, 200]


def test_slow_fault_delays_the_answer(fed: LocalFederation, session: requests.Session) -> None:
    fed.fail_next("slow", delay=0.15)
    code = get_code(fed)
    started = time.monotonic()
    response = exchange(session, fed, code)
    assert time.monotonic() - started >= 0.15
    assert response.status_code == 200


def test_slow_fault_makes_a_short_client_timeout_fire(
    fed: LocalFederation, session: requests.Session
) -> None:
    fed.fail_next("slow", delay=2)
    with pytest.raises(requests.Timeout):
        session.post(fed.token_url, data={"grant_type": "refresh_token"}, timeout=0.1)


def test_connection_reset_fault_drops_the_connection(
    fed: LocalFederation, session: requests.Session
) -> None:
    fed.fail_next("connection_reset")
    code = get_code(fed)
    with pytest.raises(requests.ConnectionError):
        exchange(session, fed, code)
    assert exchange(session, fed, code).status_code == 200


def test_connection_reset_fault_sends_rst_not_fin(fed: LocalFederation) -> None:
    fed.fail_next("connection_reset")
    port = urlsplit(fed.endpoint).port
    assert port
    body = b"grant_type=refresh_token"
    request = (
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):  # a FIN would read b"" instead
            sock.recv(1024)


def test_deny_fault_redirects_access_denied(fed: LocalFederation) -> None:
    fed.fail_next("deny")
    fed.fail_next("server_error")  # a token fault is not taken by authorize
    _, headers, _ = authorize(fed)
    params = callback_params(headers["Location"])
    assert params["error"] == "access_denied"
    assert params["state"] == STATE
    assert fed.denials == 1
    assert fed.logins == 0
    assert fed.pending_faults == ["server_error"]
    _, headers, _ = authorize(fed)
    assert "code" in callback_params(headers["Location"])


def test_clear_faults_drops_the_queue(fed: LocalFederation, session: requests.Session) -> None:
    fed.fail_next("invalid_grant", count=3)
    fed.clear_faults()
    assert fed.pending_faults == []
    assert exchange(session, fed, get_code(fed)).status_code == 200


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("teapot",), {}),
        (("deny", 0), {}),
        (("server_error",), {"status": 404}),
        (("slow",), {"delay": -1}),
    ],
)
def test_fail_next_rejects_bad_arguments(
    fed: LocalFederation, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        fed.fail_next(*args, **kwargs)
    assert fed.pending_faults == []


# -- interactive consent -----------------------------------------------------------------------


def _consent_form(body: str) -> dict[str, str]:
    request_id = body.split('name="request_id" value="', 1)[1].split('"', 1)[0]
    return {"request_id": request_id}


def test_interactive_page_is_escaped_and_locked_down(
    make_fed: Callable[..., LocalFederation],
) -> None:
    fed = make_fed(auto_approve=False, user="<b>mallory</b>", client_id="a<script>")
    status, headers, body = authorize(fed, client_id="a<script>")
    assert status == 200
    assert "<script>" not in body and "<b>" not in body
    assert "a&lt;script&gt;" in body
    assert '<html lang="en">' in body
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "form-action 'self' http://127.0.0.1:51234" in csp
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert STATE not in body
    assert RFC_CHALLENGE not in body
    assert fed.logins == 0


def test_interactive_page_for_ipv6_redirect_omits_form_action(
    make_fed: Callable[..., LocalFederation],
) -> None:
    fed = make_fed(auto_approve=False)
    _, headers, _ = authorize(fed, redirect_uri="http://[::1]:51234")
    assert "form-action" not in headers["Content-Security-Policy"]


def test_interactive_approve_posts_form_and_redirects_with_code(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(auto_approve=False)
    _, _, page = authorize(fed)
    form = {**_consent_form(page), "user": "carol", "decision": "approve"}
    status, headers, _ = http_post_form(fed.endpoint + "/oauth2/decide", form)
    assert status == 303
    params = callback_params(headers["Location"])
    assert params["state"] == STATE
    assert fed.logins == 1
    token = exchange(session, fed, params["code"]).json()["access_token"]
    assert whoami(session, fed, token).json()["user"] == "carol"
    # The request id is single-use.
    assert http_post_form(fed.endpoint + "/oauth2/decide", form)[0] == 400


def test_interactive_deny_redirects_access_denied(
    make_fed: Callable[..., LocalFederation],
) -> None:
    fed = make_fed(auto_approve=False)
    _, _, page = authorize(fed)
    form = {**_consent_form(page), "decision": "deny"}
    status, headers, _ = http_post_form(fed.endpoint + "/oauth2/decide", form)
    assert status == 303
    params = callback_params(headers["Location"])
    assert params["error"] == "access_denied"
    assert params["error_description"]
    assert params["state"] == STATE
    assert params["iss"] == fed.issuer
    assert (fed.denials, fed.logins) == (1, 0)


@pytest.mark.parametrize(
    "form",
    [
        {"request_id": "forged", "decision": "approve", "user": "x"},
        {"decision": "approve"},
    ],
)
def test_decide_with_unknown_request_is_400(
    make_fed: Callable[..., LocalFederation], form: dict[str, str]
) -> None:
    fed = make_fed(auto_approve=False)
    status, headers, _ = http_post_form(fed.endpoint + "/oauth2/decide", form)
    assert status == 400
    assert "Location" not in headers


def test_decide_with_empty_user_keeps_request_pending(
    make_fed: Callable[..., LocalFederation],
) -> None:
    fed = make_fed(auto_approve=False)
    _, _, page = authorize(fed)
    form = {**_consent_form(page), "user": " ", "decision": "approve"}
    assert http_post_form(fed.endpoint + "/oauth2/decide", form)[0] == 400
    form["user"] = "dave"
    assert http_post_form(fed.endpoint + "/oauth2/decide", form)[0] == 303


# -- counters, routing, lifecycle --------------------------------------------------------------


def test_counters_count_each_kind_of_request(
    fed: LocalFederation, session: requests.Session
) -> None:
    body = exchange(session, fed, get_code(fed)).json()
    refresh(session, fed, body["refresh_token"])
    authorize(fed, code_challenge_method="plain")
    fed.fail_next("deny")
    authorize(fed)
    whoami(session, fed, body["access_token"])
    session.post(fed.token_url, data={"grant_type": "password"}, timeout=5)

    assert fed.authorize_requests == 3
    assert fed.logins == 1
    assert fed.denials == 1
    assert fed.token_requests == 3
    assert fed.code_exchanges == 1
    assert fed.refreshes == 1
    assert fed.resource_requests == 1


def test_path_prefix_serves_routes_under_it(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(path_prefix="/fed/")
    port = urlsplit(fed.endpoint).port
    assert fed.endpoint == f"http://127.0.0.1:{port}/fed"
    assert fed.authorize_url == fed.endpoint + "/oauth2/authorize"
    assert fed.token_url == fed.endpoint + "/oauth2/token"
    _, headers, _ = authorize(fed)
    params = callback_params(headers["Location"])
    assert params["iss"] == fed.endpoint
    assert exchange(session, fed, params["code"]).status_code == 200
    assert http_get(f"http://127.0.0.1:{port}/oauth2/authorize")[0] == 404
    assert http_get(f"http://127.0.0.1:{port}/fedoauth2/authorize")[0] == 404
    assert http_get(f"http://127.0.0.1:{port}/abc/oauth2/authorize")[0] == 404


@pytest.mark.parametrize("prefix", ["fed", "/fed?x", "/a b"])
def test_bad_path_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError):
        LocalFederation(path_prefix=prefix)


def test_prefixed_consent_form_posts_under_the_prefix(
    make_fed: Callable[..., LocalFederation],
) -> None:
    fed = make_fed(path_prefix="/fed", auto_approve=False)
    _, _, page = authorize(fed)
    assert 'action="/fed/oauth2/decide"' in page


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/oauth2/authorize/x", 404),
        ("GET", "/oauth2/token", 405),
        ("POST", "/whoami", 405),
        ("POST", "/nothing", 404),
    ],
)
def test_unknown_routes_and_wrong_methods(
    fed: LocalFederation, session: requests.Session, method: str, path: str, status: int
) -> None:
    response = session.request(method, fed.endpoint + path, timeout=5)
    assert response.status_code == status


def test_lifecycle_binds_loopback_and_close_frees_the_port() -> None:
    fed = LocalFederation()
    with pytest.raises(RuntimeError):
        _ = fed.endpoint
    fed.start()
    port = urlsplit(fed.endpoint).port
    assert port
    assert "not started" not in repr(fed)
    with pytest.raises(RuntimeError):
        fed.start()
    fed.close()
    fed.close()
    with pytest.raises(RuntimeError):
        _ = fed.endpoint
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_close_wakes_a_sleeping_slow_fault(session: requests.Session) -> None:
    fed = LocalFederation().start()
    fed.fail_next("slow", delay=30)
    errors: list[BaseException] = []

    def post() -> None:
        try:
            session.post(fed.token_url, data={"grant_type": "x"}, timeout=5)
        except requests.RequestException as exc:
            errors.append(exc)

    client = threading.Thread(target=post)
    client.start()
    time.sleep(0.1)
    fed.close()
    client.join(5)
    assert not client.is_alive()  # the request was answered or cut, not left hanging


def test_no_code_state_or_token_in_logs(
    fed: LocalFederation, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = get_code(fed)
    body = exchange(session, fed, code).json()
    whoami(session, fed, body["access_token"])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/oauth2/authorize" in text  # it does log, just not the secrets
    for secret in (code, STATE, RFC_CHALLENGE, body["access_token"], body["refresh_token"]):
        assert secret not in text
    assert body["access_token"] not in repr(fed)


def test_import_fedbearer_does_not_import_testing() -> None:
    code = "import sys, fedbearer; sys.exit('fedbearer.testing' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- programmatic browser --------------------------------------------------------------------


def test_browser_follows_redirect_to_the_callback(
    fed: LocalFederation, callback: CallbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy in the environment must not capture loopback traffic.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    browser = ProgrammaticBrowser()
    url = fed.authorize_url + "?" + authorize_query(fed, redirect_uri=callback.url + "/cb")
    assert browser(url) is True
    assert browser.join(5)
    assert browser.error is None
    assert browser.visits == [(fed.authorize_url, 302), (callback.url + "/cb", 200)]
    assert browser.last_status == 200
    assert browser.last_body is not None and "close this tab" in browser.last_body
    assert browser.opened == [url]
    assert len(callback.queries) == 1
    assert set(callback.queries[0]) == {"code", "state", "iss"}


@pytest.mark.parametrize(("approve", "key"), [(True, "code"), (False, "error")])
def test_browser_answers_the_consent_form(
    make_fed: Callable[..., LocalFederation],
    callback: CallbackServer,
    approve: bool,
    key: str,
) -> None:
    fed = make_fed(auto_approve=False)
    browser = ProgrammaticBrowser(approve=approve, user="erin")
    browser(fed.authorize_url + "?" + authorize_query(fed, redirect_uri=callback.url))
    assert browser.join(5)
    assert browser.error is None
    assert [status for _, status in browser.visits] == [200, 303, 200]
    assert browser.visits[1][0] == fed.endpoint + "/oauth2/decide"
    assert key in callback.queries[0]
    assert callback.queries[0]["state"] == STATE


def test_browser_with_approve_none_stops_at_the_consent_page(
    make_fed: Callable[..., LocalFederation], callback: CallbackServer
) -> None:
    fed = make_fed(auto_approve=False)
    browser = ProgrammaticBrowser(approve=None)
    browser(fed.authorize_url + "?" + authorize_query(fed, redirect_uri=callback.url))
    assert browser.join(5)
    assert browser.visits == [(fed.authorize_url, 200)]
    assert callback.queries == []
    assert fed.logins == 0


def test_browser_records_errors_instead_of_raising() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        browser = ProgrammaticBrowser(timeout=2)
        assert browser(f"http://127.0.0.1:{port}/oauth2/authorize?state=x") is True
        assert browser.join(5)
    assert isinstance(browser.error, OSError)
    assert browser.visits == []


def test_browser_refuses_non_http_urls() -> None:
    browser = ProgrammaticBrowser()
    browser("file:///etc/passwd")
    assert browser.join(5)
    assert isinstance(browser.error, ValueError)
    assert browser.last_body is None


# -- other providers' layouts, discovery, scopes, revocation -----------------------------------


def revoke(
    session: requests.Session,
    fed: LocalFederation,
    token_value: Optional[str],
    **overrides: Optional[str],
) -> requests.Response:
    form: dict[str, Optional[str]] = {
        "token": token_value,
        "token_type_hint": "refresh_token",
        "client_id": fed.client_id,
        **overrides,
    }
    assert fed.revocation_url is not None
    data = {k: v for k, v in form.items() if v is not None}
    return session.post(fed.revocation_url, data=data, timeout=5)


def login_tokens(session: requests.Session, fed: LocalFederation, **overrides: Any) -> dict:
    response = exchange(session, fed, get_code(fed, **overrides))
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("layout", sorted(LocalFederation.LAYOUTS))
def test_every_layout_serves_its_document_and_a_whole_login_at_its_paths(
    make_fed: Callable[..., LocalFederation], session: requests.Session, layout: str
) -> None:
    fed = make_fed(layout=layout)
    assert fed.discovery_url is not None
    document = session.get(fed.discovery_url, timeout=5).json()
    assert document["issuer"] == fed.issuer
    assert document["authorization_endpoint"] == fed.authorize_url
    assert document["token_endpoint"] == fed.token_url
    assert document.get("revocation_endpoint") == fed.revocation_url
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert fed.discovery_requests == 1
    _, headers, _ = authorize(fed)
    assert callback_params(headers["Location"])["iss"] == fed.issuer
    body = login_tokens(session, fed)
    assert whoami(session, fed, body["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("layout", "issuer_path", "authorize_path"),
    [
        ("keycloak", "/realms/fedbearer", "/realms/fedbearer/protocol/openid-connect/auth"),
        ("okta", "/oauth2/default", "/oauth2/default/v1/authorize"),
        ("google", "", "/o/oauth2/v2/auth"),
        ("auth0", "/", "/authorize"),
    ],
)
def test_layouts_put_issuer_and_endpoints_where_the_provider_does(
    make_fed: Callable[..., LocalFederation], layout: str, issuer_path: str, authorize_path: str
) -> None:
    fed = make_fed(layout=layout)
    origin = fed.origin
    assert fed.issuer == origin + issuer_path
    assert fed.authorize_url == origin + authorize_path
    # The Nebius path is not an endpoint in another layout.
    assert http_get(origin + "/oauth2/authorize?" + authorize_query(fed))[0] == 404


def test_entra_and_dex_layouts_have_no_revocation_endpoint(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    for layout in ("entra", "dex"):
        fed = make_fed(layout=layout)
        assert fed.revocation_url is None
        assert "revocation_endpoint" not in fed.discovery_document()


def test_a_custom_layout_puts_the_endpoints_anywhere(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(layout=Layout("/idp", "/login/authorize", "/api/token", None))
    assert fed.issuer == fed.origin + "/idp"
    assert fed.token_url == fed.origin + "/api/token"
    assert login_tokens(session, fed)["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalFederation(layout="nowhere"),
        lambda: Layout(issuer_path="/x/"),
        lambda: Layout(token_path=""),
        lambda: Layout(authorize_path="/a?b"),
        lambda: Layout(revocation_path="relative"),
        lambda: LocalFederation(layout="keycloak", path_prefix="/fed"),
        lambda: LocalFederation(discovery="somewhere"),  # type: ignore[arg-type]
        lambda: LocalFederation(scopes_supported=("profile",)),
    ],
)
def test_bad_layout_options_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_the_rfc8414_location_can_be_served_instead(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(layout="keycloak", discovery="oauth-authorization-server")
    assert fed.discovery_url == (
        fed.origin + "/.well-known/oauth-authorization-server/realms/fedbearer"
    )
    assert session.get(fed.discovery_url, timeout=5).json()["issuer"] == fed.issuer
    openid = fed.issuer + "/.well-known/openid-configuration"
    assert session.get(openid, timeout=5).status_code == 404


def test_no_document_is_served_when_discovery_is_off(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(discovery=None)
    assert fed.discovery_url is None
    url = fed.endpoint + "/.well-known/openid-configuration"
    assert session.get(url, timeout=5).status_code == 404


def test_metadata_adds_replaces_and_removes_document_fields(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(
        metadata={"issuer": "https://elsewhere.example", "revocation_endpoint": None, "x": 1}
    )
    assert fed.discovery_url is not None
    document = session.get(fed.discovery_url, timeout=5).json()
    assert document["issuer"] == "https://elsewhere.example"
    assert "revocation_endpoint" not in document and document["x"] == 1


def test_granted_scopes_are_those_asked_for_and_unknown_ones_are_refused(
    fed: LocalFederation, session: requests.Session
) -> None:
    body = login_tokens(session, fed, scope="openid profile offline_access")
    assert body["scope"] == "openid profile offline_access"
    expected = frozenset({"openid", "profile", "offline_access"})
    assert fed.granted_scopes(body["access_token"]) == expected
    assert fed.granted_scopes(body["refresh_token"]) == expected
    assert fed.granted_scopes("unknown") is None
    _, headers, _ = authorize(fed, scope="openid admin")
    params = callback_params(headers["Location"])
    assert params["error"] == "invalid_scope" and "admin" in params["error_description"]


def test_revoking_a_refresh_token_ends_its_grant_and_nothing_else(
    fed: LocalFederation, session: requests.Session
) -> None:
    ours, other = login_tokens(session, fed), login_tokens(session, fed)
    response = revoke(session, fed, ours["refresh_token"])
    assert response.status_code == 200 and response.content == b""
    assert not fed.is_valid(ours["access_token"])  # RFC 7009 §2.1: its access tokens too
    assert refresh(session, fed, ours["refresh_token"]).json()["error"] == "invalid_grant"
    assert fed.is_valid(other["access_token"])
    assert refresh(session, fed, other["refresh_token"]).status_code == 200
    assert fed.revocation_requests == 1
    assert fed.revocation_params == [
        {
            "token": ours["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": fed.client_id,
        }
    ]


def test_revoking_an_access_token_leaves_its_refresh_token(
    fed: LocalFederation, session: requests.Session
) -> None:
    body = login_tokens(session, fed)
    assert revoke(session, fed, body["access_token"], token_type_hint="access_token").ok
    assert not fed.is_valid(body["access_token"])
    assert refresh(session, fed, body["refresh_token"]).status_code == 200


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_the_hint_only_speeds_up_the_search(
    fed: LocalFederation, session: requests.Session, hint: Optional[str]
) -> None:
    body = login_tokens(session, fed)
    assert revoke(session, fed, body["access_token"], token_type_hint=hint).status_code == 200
    assert not fed.is_valid(body["access_token"])


def test_revoking_an_unknown_token_is_answered_200(
    fed: LocalFederation, session: requests.Session
) -> None:
    assert revoke(session, fed, "never-issued").status_code == 200  # RFC 7009 §2.2


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_id": None}, 400, "invalid_request"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"token": None}, 400, "invalid_request"),
        ({"token_type_hint": "id_token"}, 400, "invalid_request"),
    ],
)
def test_revocation_requests_are_checked_strictly(
    fed: LocalFederation,
    session: requests.Session,
    overrides: dict[str, Optional[str]],
    status: int,
    error: str,
) -> None:
    body = login_tokens(session, fed)
    form = dict(overrides)
    token_value = form.pop("token", body["access_token"])
    response = revoke(session, fed, token_value, **form)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert fed.is_valid(body["access_token"])


def test_revocation_refuses_repeats_other_encodings_and_get(
    fed: LocalFederation, session: requests.Session
) -> None:
    assert fed.revocation_url is not None
    repeated = session.post(
        fed.revocation_url,
        data=[("token", "a"), ("token", "b"), ("client_id", fed.client_id)],
        timeout=5,
    )
    assert repeated.json()["error"] == "invalid_request"
    as_json = session.post(fed.revocation_url, json={"token": "a"}, timeout=5)
    assert as_json.json()["error"] == "invalid_request"
    assert session.get(fed.revocation_url, timeout=5).status_code == 405


def test_revocation_faults_answer_the_next_revocation_only(
    fed: LocalFederation, session: requests.Session
) -> None:
    body = login_tokens(session, fed)
    fed.fail_next("unsupported_token_type")
    fed.fail_next("revocation_unavailable")
    unsupported = revoke(session, fed, body["access_token"], token_type_hint="access_token")
    assert (unsupported.status_code, unsupported.json()["error"]) == (
        400,
        "unsupported_token_type",
    )
    unavailable = revoke(session, fed, body["access_token"])
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "1"
    assert fed.is_valid(body["access_token"])
    assert revoke(session, fed, body["access_token"]).status_code == 200
    assert not fed.is_valid(body["access_token"])


def test_a_configured_client_secret_is_required_and_an_unexpected_one_refused(
    make_fed: Callable[..., LocalFederation], session: requests.Session
) -> None:
    fed = make_fed(client_secret="s3cret")
    assert exchange(session, fed, get_code(fed)).json()["error"] == "invalid_client"
    wrong = exchange(session, fed, get_code(fed), client_secret="other")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    body = exchange(session, fed, get_code(fed), client_secret="s3cret").json()
    assert revoke(session, fed, body["refresh_token"]).status_code == 401
    assert revoke(session, fed, body["refresh_token"], client_secret="s3cret").status_code == 200
    assert fed.discovery_document()["token_endpoint_auth_methods_supported"] == [
        "client_secret_post"
    ]
    public = make_fed()
    extra = exchange(session, public, get_code(public), client_secret="s3cret")
    assert extra.json()["error"] == "invalid_client"
