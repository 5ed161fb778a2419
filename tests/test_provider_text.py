"""A provider's text reaches messages and pages scrubbed first, then cut (issue 19, finding 5).

A provider may echo what it was sent into ``error_description`` or ``error_uri``. Cut to its
bound first, a secret echoed across the cut would survive in part (19 of 43 characters);
scrubbed first, not a character of it does. The state is a secret too.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from fedbearer import (
    AuthorizationError,
    FederationAuth,
    InvalidClientError,
    InvalidGrantError,
    RevocationError,
)
from fedbearer._protocol import (
    authorize_answer_problem,
    parse_callback,
    parse_revocation_response,
    parse_token_response,
)

from .conftest import provider_options, wait_for
from .test_login import bearer_for, get, query_of

SECRET = secrets.token_urlsafe(32)  # 43 characters, like a state, verifier or token
OTHER = secrets.token_urlsafe(32)
ISS = frozenset({"https://auth.example.com"})
REDIRECT = "http://127.0.0.1:4321"


def leaked(secret: str, text: str) -> bool:
    """Whether any 6 consecutive characters of ``secret`` appear in ``text``."""
    return any(secret[i : i + 6] in text for i in range(len(secret) - 5))


def around_the_cut(limit: int) -> list[str]:
    """Texts that put ``SECRET`` across the cut at ``limit``, and wholly before it."""
    return [
        "x" * (limit - 19) + SECRET + " tail",  # 18 characters before the cut, as reported
        "x" * (limit - 4) + SECRET,  # only its first characters before the cut
        "x" * (limit - 60) + SECRET + " and again " + SECRET,
        "before " + SECRET + " after",
    ]


def test_leaked_finds_a_part_of_the_secret():
    assert leaked(SECRET, "…" + SECRET[:19] + "…")
    assert not leaked(SECRET, "x" * 300)


@pytest.mark.parametrize("text", around_the_cut(300))
def test_token_error_description_is_scrubbed_before_it_is_cut(text):
    body = json.dumps({"error": "invalid_grant", "error_description": text}).encode()
    with pytest.raises(InvalidGrantError) as info:
        parse_token_response(400, body, requested_at=0.0, secrets_=(OTHER, SECRET))
    shown = str(info.value) + repr(info.value) + (info.value.error_description or "")
    assert not leaked(SECRET, shown)
    assert len(info.value.error_description or "") <= 300


@pytest.mark.parametrize("text", around_the_cut(300))
def test_token_error_uri_is_scrubbed_before_it_is_cut(text):
    body = json.dumps({"error": "invalid_grant", "error_uri": "https://h/?" + text}).encode()
    with pytest.raises(InvalidGrantError) as info:
        parse_token_response(400, body, requested_at=0.0, secrets_=(SECRET,))
    assert not leaked(SECRET, (info.value.error_uri or "") + repr(info.value))


@pytest.mark.parametrize("text", around_the_cut(300))
def test_revocation_error_is_scrubbed_before_it_is_cut(text):
    body = json.dumps({"error": "invalid_request", "error_description": text}).encode()
    with pytest.raises(RevocationError) as info:
        parse_revocation_response(
            400, body, token_type_hint="refresh_token", secrets_=(SECRET, "client-secret")
        )
    assert not leaked(SECRET, str(info.value) + (info.value.error_description or ""))


@pytest.mark.parametrize("text", around_the_cut(300))
def test_a_callback_error_is_scrubbed_of_its_state_and_code_before_it_is_cut(text):
    query = urlencode(
        {
            "state": SECRET,
            "code": OTHER,
            "error": "invalid_request",
            "error_description": text.replace(SECRET, SECRET + " " + OTHER),
            "error_uri": "https://h/?" + text,
        }
    )
    callback = parse_callback(query, state=SECRET, issuers=ISS)
    shown = f"{callback.error} {callback.error_description} {callback.error_uri}"
    assert not leaked(SECRET, shown) and not leaked(OTHER, shown)


@pytest.mark.parametrize("text", around_the_cut(200))
def test_the_pre_flight_check_scrubs_the_state_before_it_cuts(text):
    body = json.dumps({"error": "invalid_client", "error_description": text}).encode()
    problem = authorize_answer_problem(401, "", body, redirect_uri=REDIRECT, secrets_=(SECRET,))
    assert problem is not None and not leaked(SECRET, problem[1])
    location = (
        REDIRECT
        + "/?"
        + urlencode({"error": "invalid_scope", "state": SECRET, "error_description": text})
    )
    problem = authorize_answer_problem(302, location, b"", redirect_uri=REDIRECT)
    assert problem is not None and not leaked(SECRET, problem[1])


def test_a_secret_that_holds_another_is_scrubbed_whole():
    inner = SECRET[5:20]
    body = json.dumps({"error": "invalid_grant", "error_description": "was " + SECRET}).encode()
    with pytest.raises(InvalidGrantError) as info:
        parse_token_response(400, body, requested_at=0.0, secrets_=(inner, SECRET))
    assert not leaked(SECRET, str(info.value))


# ------------------------------------------------------------------ over real sockets


@pytest.mark.parametrize("position", ["whole", "across the cut"])
def test_a_state_the_provider_echoes_is_neither_in_the_error_nor_on_the_page(federation, position):
    seen: dict[str, Any] = {}

    def opener(url: str) -> bool:
        def run() -> None:
            q = query_of(url)
            state = seen["state"] = q["state"]
            echo = f"state {state} is not ours" if position == "whole" else "x" * 281 + state
            params = {"state": state, "error": "invalid_request", "error_description": echo}
            seen["page"] = get(q["redirect_uri"] + "/?" + urlencode(params))

        threading.Thread(target=run, daemon=True).start()
        return True

    with pytest.raises(AuthorizationError) as info:
        bearer_for(federation, opener=opener).receiver().fetch()
    assert wait_for(lambda: "page" in seen)
    state = seen["state"]
    status, _, page = seen["page"]
    assert status == 400 and "invalid_request" in page
    for shown in (str(info.value), repr(info.value), info.value.error_description or "", page):
        assert not leaked(state, shown)


class EchoingTokenEndpoint:
    """A token endpoint that refuses every request, echoing one field of the form it got
    into its ``error_description`` after 281 characters: the value straddles the cut at
    300, 19 of its characters before it (as a careless server's debug text would)."""

    def __init__(self, field: str) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                endpoint.forms.append(form)
                echo = "x" * 281 + form.get(field, "")
                body = json.dumps({"error": "invalid_client", "error_description": echo})
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.forms: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("field", ["code", "code_verifier", "client_secret"])
def test_a_secret_a_token_endpoint_echoes_across_the_cut_leaves_no_part(make_provider, field):
    fed = make_provider(client_secret="s3cr3t-" + secrets.token_urlsafe(32))
    endpoint = EchoingTokenEndpoint(field)
    try:
        auth = FederationAuth.from_endpoints(
            fed.client_id,
            authorization_endpoint=fed.authorize_url,
            token_endpoint=endpoint.url,
            issuer=fed.issuer,
            **provider_options(client_secret=fed.client_secret),
        )
        with pytest.raises(InvalidClientError) as info:
            auth.get_token()
    finally:
        endpoint.close()
    secret = endpoint.forms[0][field]
    assert len(secret) >= 43
    assert not leaked(secret, str(info.value) + repr(info.value))
