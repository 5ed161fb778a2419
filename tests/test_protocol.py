"""Pure protocol functions: no sockets, no clock."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from fedbearer import (
    ConfigurationError,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenResponseError,
    RevocationError,
    TokenEndpointError,
)
from fedbearer._protocol import (
    CallbackKind,
    authorization_code_body,
    authorization_params,
    build_authorize_url,
    check_url,
    code_challenge,
    federation_for,
    new_pkce,
    new_state,
    normalize_endpoint,
    parse_callback,
    parse_revocation_response,
    parse_token_response,
    provider_federation,
    redact_url,
    redirect_uri_for,
    refresh_token_body,
    revocation_body,
    scope_tokens,
    states_equal,
)
from fedbearer._token import DEFAULT_TOKEN_LIFETIME, jwt_claims


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("auth.example.com", "https://auth.example.com"),
        ("auth.example.com:443", "https://auth.example.com:443"),
        ("Auth.Example.COM/", "https://auth.example.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://example.com/fed/", "https://example.com/fed"),
        ("https://example.com/a/b", "https://example.com/a/b"),
        ("  auth.example.com  ", "https://auth.example.com"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_endpoint_is_normalised_like_the_reference_but_keeps_the_path(given, expected):
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "ftp://auth.example.com",
        "https://",
        "https://user:pw@auth.example.com",
        "https://auth.example.com/?x=1",
        "https://auth.example.com/#frag",
        "https://auth.example.com:99999",
    ],
)
def test_bad_endpoints_raise_a_configuration_error(bad):
    with pytest.raises(ConfigurationError):
        normalize_endpoint(bad)


def test_federation_urls_keep_the_path_prefix():
    fed = federation_for("example.com/fed")
    assert fed.authorize_url == "https://example.com/fed/oauth2/authorize"
    assert fed.token_url == "https://example.com/fed/oauth2/token"
    assert {"https://example.com/fed", "https://example.com"} <= fed.issuers


def test_issuers_treat_the_default_port_as_the_same_server():
    fed = federation_for("https://auth.example.com:443")
    assert "https://auth.example.com" in fed.issuers
    assert "https://evil.example.com" not in fed.issuers


def test_pkce_matches_rfc7636_appendix_b():
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_pkce_verifier_and_state_are_43_char_base64url_and_fresh():
    verifiers = {new_pkce()[0] for _ in range(50)}
    states = {new_state() for _ in range(50)}
    assert len(verifiers) == 50 and len(states) == 50
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for value in verifiers | states:
        assert len(value) == 43
        assert set(value) <= alphabet


def test_authorize_url_has_exactly_the_reference_parameters_in_order():
    fed = federation_for("https://auth.example.com/fed")
    url = build_authorize_url(
        fed,
        client_id="my-app",
        redirect_uri="http://127.0.0.1:5555",
        state="S" * 43,
        challenge="C" * 43,
        federation_id="fed-1",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fed.authorize_url
    assert parse_qsl(parts.query) == [
        ("response_type", "code"),
        ("client_id", "my-app"),
        ("scope", "openid"),
        ("state", "S" * 43),
        ("redirect_uri", "http://127.0.0.1:5555"),
        ("code_challenge", "C" * 43),
        ("code_challenge_method", "S256"),
        ("federation-id", "fed-1"),
    ]


def test_authorize_url_omits_an_empty_federation_id_and_allows_http():
    fed = federation_for("http://127.0.0.1:9")
    url = build_authorize_url(
        fed,
        client_id="c",
        redirect_uri="http://127.0.0.1:1",
        state="s",
        challenge="x",
        federation_id="",
    )
    assert "federation-id" not in dict(parse_qsl(urlsplit(url).query))


def test_redact_url_hides_state_and_code_but_keeps_the_rest():
    url = "https://a.example/oauth2/authorize?client_id=c&state=SECRETSTATE&code=SECRETCODE&x=1"
    redacted = redact_url(url)
    assert "SECRETSTATE" not in redacted and "SECRETCODE" not in redacted
    assert "client_id=c" in redacted and "x=1" in redacted and "state=REDACTED" in redacted


def test_redirect_uri_has_no_path_and_brackets_ipv6():
    assert redirect_uri_for("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert redirect_uri_for("::1", 8123) == "http://[::1]:8123"


ISS = frozenset({"https://auth.example.com"})


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("", CallbackKind.NO_STATE),
        ("code=abc", CallbackKind.NO_STATE),
        ("state=&code=abc", CallbackKind.NO_STATE),
        ("state=wrong&code=abc", CallbackKind.WRONG_STATE),
        ("state=wrong&error=access_denied", CallbackKind.WRONG_STATE),
        ("state=good", CallbackKind.MALFORMED),
        ("state=good&code=", CallbackKind.MALFORMED),
        ("state=good&code=a&code=b", CallbackKind.MALFORMED),
        ("state=good&code=abc", CallbackKind.CODE),
        ("state=good&code=abc&iss=https%3A%2F%2Fauth.example.com", CallbackKind.CODE),
        ("state=good&code=abc&iss=https%3A%2F%2Fevil.example", CallbackKind.WRONG_ISSUER),
        ("state=good&error=access_denied", CallbackKind.ERROR),
        ("state=%FF%FE&code=x", CallbackKind.WRONG_STATE),
    ],
)
def test_callback_classification(query, kind):
    assert parse_callback(query, state="good", issuers=ISS).kind is kind


def test_error_callback_carries_the_triple_cleaned():
    cb = parse_callback(
        "state=good&error=access_denied&error_description=User%0Asaid+no&error_uri=https%3A%2F%2Fd",
        state="good",
        issuers=ISS,
    )
    assert (cb.error, cb.error_description, cb.error_uri) == (
        "access_denied",
        "User said no",
        "https://d",
    )


def test_callback_repr_never_shows_the_code():
    cb = parse_callback("state=good&code=SECRETCODE", state="good", issuers=ISS)
    assert cb.code == "SECRETCODE"
    assert "SECRETCODE" not in repr(cb)


def test_states_compare_equal_only_when_identical():
    assert states_equal("abc", "abc")
    assert not states_equal("abd", "abc")
    assert not states_equal("ab", "abc")
    assert not states_equal("é", "abc")


def test_token_request_bodies():
    body = dict(
        parse_qsl(
            authorization_code_body(
                code="CODE", redirect_uri="http://127.0.0.1:1", client_id="c", verifier="V"
            )
        )
    )
    assert body == {
        "grant_type": "authorization_code",
        "code": "CODE",
        "redirect_uri": "http://127.0.0.1:1",
        "client_id": "c",
        "code_verifier": "V",
    }
    assert dict(parse_qsl(refresh_token_body(refresh_token="R", client_id="c"))) == {
        "grant_type": "refresh_token",
        "refresh_token": "R",
        "client_id": "c",
    }


def _body(obj):
    return json.dumps(obj).encode()


def test_token_response_expiry_counts_from_the_request_time():
    token = parse_token_response(
        200,
        _body(
            {"access_token": "AT", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "R"}
        ),
        requested_at=1_000_000.0,
    )
    assert token.token == "AT" and token.refresh_token == "R"
    assert token.expires_at == 1_003_600.0
    assert token.issued_at is not None and token.issued_at.timestamp() == 1_000_000.0


def test_missing_expires_in_gets_the_bounded_default():
    token = parse_token_response(200, _body({"access_token": "AT"}), requested_at=100.0)
    assert token.expires_at == 100.0 + DEFAULT_TOKEN_LIFETIME


def test_missing_expires_in_uses_the_jwt_exp_when_there_is_one():
    import base64

    payload = base64.urlsafe_b64encode(json.dumps({"exp": 5000}).encode()).rstrip(b"=").decode()
    jwt = f"eyJhbGciOiJub25lIn0.{payload}.sig"
    assert jwt_claims(jwt) == {"exp": 5000}
    assert (
        parse_token_response(200, _body({"access_token": jwt}), requested_at=1.0).expires_at
        == 5000.0
    )
    assert jwt_claims("not.a.jwt!") is None and jwt_claims("opaque") is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"[]",
        b"not json",
        _body({"token_type": "Bearer"}),
        _body({"access_token": ""}),
        _body({"access_token": 5}),
        _body({"access_token": "SECRETAT", "expires_in": [1]}),
        _body({"access_token": "SECRETAT", "expires_in": "soon"}),
        _body({"access_token": "SECRETAT", "expires_in": 0}),
        _body({"access_token": "SECRETAT", "token_type": "mac"}),
        _body({"access_token": "SECRETAT", "refresh_token": 7}),
    ],
)
def test_unusable_200_answers_are_invalid_token_responses(body):
    with pytest.raises(InvalidTokenResponseError) as info:
        parse_token_response(200, body, requested_at=0.0)
    assert "SECRETAT" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            400,
            _body({"error": "invalid_grant", "error_description": "code used"}),
            InvalidGrantError,
            "invalid_grant",
        ),
        (401, _body({"error": "invalid_client"}), InvalidClientError, "invalid_client"),
        (400, _body({"error": "invalid_request"}), TokenEndpointError, "invalid_request"),
        (400, _body({"error": "something_new"}), TokenEndpointError, "something_new"),
        (500, b"<html>Internal error</html>", TokenEndpointError, ""),
        (503, b"", TokenEndpointError, ""),
        (200, _body({"error": "invalid_grant"}), InvalidGrantError, "invalid_grant"),
    ],
)
def test_token_errors_are_mapped_explicitly(status, body, cls, code):
    with pytest.raises(cls) as info:
        parse_token_response(status, body, requested_at=0.0)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.error == code
    assert str(status) in str(info.value)


def test_token_error_text_never_contains_the_secrets_the_server_echoes():
    body = _body({"error": "invalid_grant", "error_description": "code SECRETCODE1 was used"})
    with pytest.raises(InvalidGrantError) as info:
        parse_token_response(400, body, requested_at=0.0, secrets_=("SECRETCODE1",))
    assert "SECRETCODE1" not in str(info.value)
    assert "SECRETCODE1" not in (info.value.error_description or "")


def test_token_error_uri_is_scrubbed_of_the_secrets_the_server_echoes():
    body = _body(
        {
            "error": "invalid_grant",
            "error_uri": "https://fed.example/help?code=SECRETCODE1&verifier=VERIFIER22",
        }
    )
    with pytest.raises(InvalidGrantError) as info:
        parse_token_response(400, body, requested_at=0.0, secrets_=("SECRETCODE1", "VERIFIER22"))
    uri = info.value.error_uri or ""
    assert uri.startswith("https://fed.example/help?code=")
    assert "SECRETCODE1" not in uri and "VERIFIER22" not in uri
    assert "SECRETCODE1" not in repr(info.value) and "SECRETCODE1" not in str(info.value)


def test_error_body_is_never_quoted_in_the_message():
    body = b"<html>access_token=LEAKY123 debug dump</html>"
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(502, body, requested_at=0.0)
    assert "LEAKY123" not in str(info.value)


# ------------------------------------------------------------------- other OpenID providers


AUTHORIZE_ARGS = {
    "client_id": "my-app",
    "redirect_uri": "http://127.0.0.1:5555",
    "state": "S" * 43,
    "challenge": "C" * 43,
}


def test_nebius_authorize_url_is_byte_identical_with_explicit_default_scopes():
    fed = federation_for("https://auth.example.com/fed")
    args = {**AUTHORIZE_ARGS, "federation_id": "fed-1"}
    assert build_authorize_url(fed, **args) == build_authorize_url(
        fed, **args, scopes=("openid",), params=()
    )


def test_a_provider_request_is_the_nebius_one_with_its_scopes_and_params_appended():
    nebius = build_authorize_url(
        federation_for("https://kc.example.com"), **AUTHORIZE_ARGS, federation_id=""
    )
    fed = provider_federation(
        authorization_endpoint="https://kc.example.com/realms/x/protocol/openid-connect/auth",
        token_endpoint="https://kc.example.com/realms/x/protocol/openid-connect/token",
    )
    url = build_authorize_url(
        fed,
        **AUTHORIZE_ARGS,
        federation_id="",
        scopes=("openid", "profile", "offline_access"),
        params=(("prompt", "consent"), ("federation-id", "f")),
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fed.authorize_url
    scope = "openid profile offline_access"
    assert parse_qsl(parts.query) == [
        (name, scope if name == "scope" else value)
        for name, value in parse_qsl(urlsplit(nebius).query)
    ] + [("prompt", "consent"), ("federation-id", "f")]


def test_provider_authorize_url_keeps_the_query_the_endpoint_has():
    # RFC 6749 §3.1: the endpoint's own query is retained (Azure AD B2C's "p=<policy>").
    fed = provider_federation(
        authorization_endpoint="https://b2c.example.com/authorize?p=signin",
        token_endpoint="https://b2c.example.com/token?p=signin",
    )
    url = build_authorize_url(fed, **AUTHORIZE_ARGS, federation_id="")
    assert parse_qsl(urlsplit(url).query)[:2] == [("p", "signin"), ("response_type", "code")]
    assert fed.endpoint == "https://b2c.example.com/authorize"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://kc.example.com/realms/x", True),
        ("https://login.microsoftonline.com/tenant/v2.0", True),
        ("https://tenant.auth0.com/", True),
        ("http://127.0.0.1:8080/realms/x", True),
        ("http://localhost:8080", True),
        ("http://[::1]:8080", True),
        ("http://kc.example.com/realms/x", False),
        ("https://user:pw@kc.example.com", False),
        ("https://kc.example.com/#frag", False),
        ("https://kc.example.com/?x=1", False),  # an issuer has no query (RFC 8414 §2)
        ("kc.example.com/realms/x", False),
        ("ftp://kc.example.com", False),
        (" https://kc.example.com", False),
        ("https://kc.example.com/realms/x y", False),
        ("https://kc.example.com:99999", False),
        ("", False),
    ],
)
def test_issuer_urls_must_be_https_off_loopback_and_plain(url, allowed):
    if allowed:
        assert check_url(url, "issuer", query=False) == url
    else:
        with pytest.raises(ConfigurationError, match="issuer"):
            check_url(url, "issuer", query=False)


def test_plain_http_elsewhere_is_allowed_only_when_asked_for():
    url = "http://kc.internal/realms/x"
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        check_url(url, "token_endpoint")
    assert check_url(url, "token_endpoint", allow_insecure_http=True) == url


def test_provider_issuer_is_the_only_accepted_iss_and_none_accepts_none():
    with_issuer = provider_federation(
        authorization_endpoint="https://a.example/auth",
        token_endpoint="https://a.example/token",
        issuer="https://a.example/realms/x",
    )
    assert with_issuer.issuers == frozenset({"https://a.example/realms/x"})
    assert with_issuer.endpoint == "https://a.example/realms/x"
    without = provider_federation(
        authorization_endpoint="https://a.example/auth", token_endpoint="https://a.example/token"
    )
    assert without.issuers == frozenset()
    assert (
        parse_callback(
            "state=s&code=c&iss=https%3A%2F%2Fa.example", state="s", issuers=without.issuers
        ).kind
        is CallbackKind.WRONG_ISSUER
    )


def test_callback_reports_the_iss_it_carried():
    issuers = frozenset({"https://a.example"})
    assert (
        parse_callback("state=s&code=c&iss=https%3A%2F%2Fa.example", state="s", issuers=issuers).iss
        == "https://a.example"
    )
    assert parse_callback("state=s&code=c", state="s", issuers=issuers).iss is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("openid", ("openid",)),
        ("openid profile  email", ("openid", "profile", "email")),
        (["openid", "offline_access", "openid"], ("openid", "offline_access")),
        (("api://app-id/.default",), ("api://app-id/.default",)),
        (
            ("https://www.googleapis.com/auth/drive.readonly",),
            ("https://www.googleapis.com/auth/drive.readonly",),
        ),
    ],
)
def test_scopes_are_kept_in_order_once_each(given, expected):
    assert scope_tokens(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "   ", [], ["openid", ""], ["a b"], ['say"hi'], ["back\\slash"], [1], None, 5]
)
def test_scopes_outside_rfc6749_grammar_are_configuration_errors(bad):
    with pytest.raises(ConfigurationError, match="scope"):
        scope_tokens(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ()),
        ({}, ()),
        ({"prompt": "consent", "audience": "api"}, (("prompt", "consent"), ("audience", "api"))),
        ([("federation-id", "f")], (("federation-id", "f"),)),
    ],
)
def test_params_become_ordered_pairs(given, expected):
    assert authorization_params(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"state": "x"},
        {"redirect_uri": "https://evil.example"},
        {"code_challenge_method": "plain"},
        {"response_mode": "form_post"},
        {"request_uri": "urn:x"},
        {"scope": "openid"},
        {"": "x"},
        {"prompt": 1},
        {"prompt": "a\nb"},
        [("prompt", "a"), ("prompt", "b")],
        [("prompt",)],
        "prompt=consent",
    ],
)
def test_params_cannot_override_the_flow_or_be_malformed(bad):
    with pytest.raises(ConfigurationError, match="params"):
        authorization_params(bad)


def test_revocation_body_identifies_the_public_client():
    body = revocation_body(token="tok/+=", token_type_hint="refresh_token", client_id="cli")
    assert parse_qsl(body) == [
        ("token", "tok/+="),
        ("token_type_hint", "refresh_token"),
        ("client_id", "cli"),
    ]


@pytest.mark.parametrize(
    ("status", "body", "revoked"),
    [
        (200, b"", True),
        (200, b"{}", True),
        (400, b'{"error":"unsupported_token_type"}', False),
    ],
)
def test_revocation_answers_that_are_not_failures(status, body, revoked):
    assert parse_revocation_response(status, body, token_type_hint="access_token") is revoked


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, b'{"error":"invalid_request"}', "invalid_request"),
        (401, b'{"error":"invalid_client","error_description":"who?"}', "invalid_client"),
        (503, b'{"error":"temporarily_unavailable"}', "temporarily_unavailable"),
        (500, b"<html>oops</html>", ""),
        (302, b"", ""),
    ],
)
def test_revocation_failures_are_typed_and_quote_no_body(status, body, code):
    with pytest.raises(RevocationError) as info:
        parse_revocation_response(status, body, token_type_hint="refresh_token", secrets_=("oops",))
    assert info.value.status == status and info.value.error == code
    assert "oops" not in str(info.value) and "refresh token" in str(info.value)


def test_revocation_error_scrubs_the_token_the_server_echoes():
    body = json.dumps({"error": "invalid_request", "error_description": "bad token SECRETTOKEN"})
    with pytest.raises(RevocationError) as info:
        parse_revocation_response(
            400, body.encode(), token_type_hint="access_token", secrets_=("SECRETTOKEN",)
        )
    assert "SECRETTOKEN" not in str(info.value)
    assert "SECRETTOKEN" not in (info.value.error_description or "")


def test_a_client_secret_goes_into_token_and_revocation_bodies_only_when_given():
    plain = authorization_code_body(code="c", redirect_uri="r", client_id="i", verifier="v")
    assert "client_secret" not in plain
    with_secret = authorization_code_body(
        code="c", redirect_uri="r", client_id="i", verifier="v", client_secret="s3"
    )
    assert dict(parse_qsl(with_secret))["client_secret"] == "s3"
    assert (
        dict(parse_qsl(refresh_token_body(refresh_token="x", client_id="i", client_secret="s3")))[
            "client_secret"
        ]
        == "s3"
    )
    assert "client_secret" not in refresh_token_body(refresh_token="x", client_id="i")
    body = revocation_body(
        token="t", token_type_hint="access_token", client_id="i", client_secret="s3"
    )
    assert parse_qsl(body)[-1] == ("client_secret", "s3")
