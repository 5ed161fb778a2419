"""Discovery documents: where they are, what is checked, and that they are read once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from fedbearer import ConfigurationError, DiscoveryError
from fedbearer._discovery import discovery_urls, parse_discovery, remembered

ISSUER = "https://kc.example.com/realms/main"
URL = ISSUER + "/.well-known/openid-configuration"


def document(**changes: Any) -> bytes:
    """A Keycloak-like document; a change to None removes that field."""
    base = f"{ISSUER}/protocol/openid-connect"
    doc: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": base + "/auth",
        "token_endpoint": base + "/token",
        "revocation_endpoint": base + "/revoke",
        "response_types_supported": ["code", "none", "id_token"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "authorization_response_iss_parameter_supported": True,
        "jwks_uri": base + "/certs",
    }
    for name, value in changes.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("issuer", "openid", "oauth"),
    [
        (
            "https://kc.example.com/realms/main",
            "https://kc.example.com/realms/main/.well-known/openid-configuration",
            "https://kc.example.com/.well-known/oauth-authorization-server/realms/main",
        ),
        (
            "https://tenant.auth0.com/",
            "https://tenant.auth0.com/.well-known/openid-configuration",
            "https://tenant.auth0.com/.well-known/oauth-authorization-server",
        ),
        (
            "https://accounts.google.com",
            "https://accounts.google.com/.well-known/openid-configuration",
            "https://accounts.google.com/.well-known/oauth-authorization-server",
        ),
    ],
)
def test_documents_are_looked_for_where_both_specs_put_them(issuer, openid, oauth):
    # OpenID Connect Discovery §4.1 appends; RFC 8414 §3.1 inserts before the path.
    assert discovery_urls(issuer) == (openid, oauth)


def test_a_good_document_gives_the_endpoints_exactly_as_written():
    fed = parse_discovery(200, document(), issuer=ISSUER, url=URL)
    assert fed.authorize_url == ISSUER + "/protocol/openid-connect/auth"
    assert fed.token_url == ISSUER + "/protocol/openid-connect/token"
    assert fed.revocation_url == ISSUER + "/protocol/openid-connect/revoke"
    assert fed.issuer == ISSUER and fed.issuers == frozenset({ISSUER})
    assert fed.iss_required is True


def test_a_minimal_plain_oauth_document_is_enough():
    fed = parse_discovery(
        200,
        json.dumps(
            {
                "issuer": ISSUER,
                "authorization_endpoint": "https://kc.example.com/a",
                "token_endpoint": "https://kc.example.com/t",
            }
        ).encode(),
        issuer=ISSUER,
        url=URL,
    )
    assert fed.revocation_url is None and fed.iss_required is False


@pytest.mark.parametrize(
    ("status", "body", "rule"),
    [
        (404, b"", "no discovery document"),
        (500, b"<html>", "try again later"),
        (403, b"", "HTTP 403"),
        (200, b"<html>login</html>", "not JSON"),
        (200, b"[]", "not a JSON object"),
        (200, b"\xff\xfe", "not JSON"),
        (200, document(issuer=None), "has no issuer"),
        (200, document(issuer=["x"]), "has no issuer"),
        (200, document(issuer="https://evil.example.com/realms/main"), "another server"),
        (200, document(issuer=ISSUER + "/"), "trailing '/'"),
        (200, document(authorization_endpoint=None), "no authorization_endpoint"),
        (200, document(token_endpoint=None), "no token_endpoint"),
        (200, document(token_endpoint=7), "token_endpoint"),
        (200, document(token_endpoint="http://kc.example.com/token"), "plain http"),
        (200, document(revocation_endpoint="http://kc.example.com/r"), "plain http"),
        (200, document(authorization_endpoint="https://u:p@kc.example.com/a"), "credentials"),
        (200, document(code_challenge_methods_supported=["plain"]), "S256"),
        (200, document(code_challenge_methods_supported=[]), "S256"),
        (200, document(code_challenge_methods_supported="S256"), "not a list"),
        (200, document(response_types_supported=["id_token"]), "response_types_supported"),
        (200, document(authorization_response_iss_parameter_supported="yes"), "boolean"),
    ],
)
def test_an_unusable_document_is_a_discovery_error_naming_the_issuer(status, body, rule):
    with pytest.raises(DiscoveryError) as info:
        parse_discovery(status, body, issuer=ISSUER, url=URL)
    assert ISSUER in str(info.value)
    assert rule in str(info.value)


def test_a_discovery_error_is_a_configuration_error():
    assert issubclass(DiscoveryError, ConfigurationError)


def test_http_endpoints_on_loopback_or_when_allowed_are_accepted():
    local = "http://127.0.0.1:8080/realms/main"
    body = document(
        issuer=local,
        authorization_endpoint=local + "/auth",
        token_endpoint=local + "/token",
        revocation_endpoint=local + "/revoke",
    )
    assert parse_discovery(200, body, issuer=local, url=URL).token_url == local + "/token"
    insecure = document(token_endpoint="http://kc.internal/token")
    fed = parse_discovery(200, insecure, issuer=ISSUER, url=URL, allow_insecure_http=True)
    assert fed.token_url == "http://kc.internal/token"


def test_a_document_is_fetched_once_per_key_even_by_racing_threads():
    calls: list[int] = []
    gate = threading.Event()
    key = ("https://race.example.com", False, True)

    def fetch():
        calls.append(1)
        gate.wait(5)
        return parse_discovery(200, document(), issuer=ISSUER, url=URL)

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(remembered(key, fetch))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert len(results) == 8 and all(result is results[0] for result in results)


def test_a_failed_fetch_is_not_remembered():
    key = ("https://flaky.example.com", False, True)
    attempts: list[int] = []

    def fetch():
        attempts.append(1)
        if len(attempts) == 1:
            raise DiscoveryError("unreachable")
        return parse_discovery(200, document(), issuer=ISSUER, url=URL)

    with pytest.raises(DiscoveryError):
        remembered(key, fetch)
    assert remembered(key, fetch).issuer == ISSUER
    assert len(attempts) == 2


@pytest.mark.parametrize(
    "name",
    sorted(
        {
            "redirect_uri",
            "state",
            "response_mode",
            "response_type",
            "client_id",
            "scope",
            "code_challenge",
            "code_challenge_method",
            "request",
            "request_uri",
        }
    ),
)
def test_an_authorization_endpoint_that_holds_a_parameter_fedbearer_sets_is_refused(name):
    endpoint = f"https://kc.example.com/auth?tenant=a&{name}=x"
    with pytest.raises(DiscoveryError) as info:
        parse_discovery(200, document(authorization_endpoint=endpoint), issuer=ISSUER, url=URL)
    message = str(info.value)
    assert ISSUER in message and "authorization_endpoint" in message
    assert repr(name) in message and "remove it" in message


def test_an_authorization_endpoint_with_other_parameters_keeps_them():
    endpoint = "https://kc.example.com/auth?tenant=a&federation-id=f&State=kept"
    fed = parse_discovery(200, document(authorization_endpoint=endpoint), issuer=ISSUER, url=URL)
    assert fed.authorize_url == endpoint
