"""Another OpenID provider as first-class as Nebius (issue #21): scopes checked before the
browser, granted scopes kept with the token, errors naming the setting in the caller's terms
(a parameter in Python, a flag on the command line), and who is logged in.

Logins are real: a LocalFederation playing the provider over HTTP, the real loopback server,
a ProgrammaticBrowser (Python) or ``$BROWSER`` (the command line).
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import warnings
from pathlib import Path

import pytest
import yaml

from fedbearer import (
    AuthorizationError,
    ConfigurationError,
    DiscoveryError,
    FederationAuth,
    FileTokenCache,
    MemoryTokenCache,
    ScopeWarning,
    Token,
)
from fedbearer._cli import EXIT_OK, EXIT_USAGE, main
from fedbearer._protocol import id_token_account, parse_token_response
from fedbearer._token import MAX_CLAIM_LENGTH, Account
from fedbearer.testing import ProgrammaticBrowser

from .conftest import from_issuer

pytestmark = [pytest.mark.fedbearer_real, pytest.mark.timeout(60)]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(text: str) -> str:
    return " ".join(text.split())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def person(fed, scope: str, **options) -> FederationAuth:
    """The adapter as a person uses it: no opener, so the pre-flight check runs; the
    browser is never needed because every test here fails before it."""
    return FederationAuth.from_issuer(
        fed.issuer,
        options.pop("client_id", fed.client_id),
        scopes=scope,
        cache=None,
        writer=io.StringIO(),
        no_browser_open=True,
        timeout=10,
        interactive=True,
        **options,
    )


# ------------------------------------------------------------- 1. scopes, before the browser


def test_an_unsupported_scope_is_refused_before_any_request_listing_the_supported_ones(
    make_provider,
):
    fed = make_provider(layout="keycloak")
    with pytest.raises(ConfigurationError) as caught:
        person(fed, "openid api").get_token()
    message = str(caught.value)
    assert "does not support the scope api; check scopes=" in message
    assert "openid profile email offline_access" in message or all(
        s in message for s in fed.scopes_supported
    )
    assert fed.authorize_requests == 0 and fed.logins == 0


def test_a_comma_in_a_scope_gets_a_did_you_mean_naming_the_flag(make_provider, capsys):
    fed = make_provider(layout="keycloak")
    argv = ["login", "--issuer", fed.issuer, "--client-id", fed.client_id]
    code, out, err = run(capsys, *argv, "--scope", "openid,profile", "--no-browser")
    assert code == EXIT_USAGE and out == ""
    line = one_line(err)
    assert "check --scope" in line and "scopes=" not in line
    assert "did you mean 'openid profile'?" in line
    assert fed.authorize_requests == 0


def test_invalid_scope_from_the_provider_names_the_scopes_not_the_client(make_provider):
    # No scopes_supported in the document: only the provider's answer can tell.
    fed = make_provider(layout="keycloak", metadata={"scopes_supported": None})
    auth = from_issuer(fed, scopes="openid api")
    with pytest.raises(AuthorizationError) as caught:
        auth.get_token()
    message = str(caught.value)
    assert "invalid_scope" in message and "check scopes=" in message
    assert "client_id" not in message.split(";", 1)[1]
    assert caught.value.settings == ("scopes",)


def test_access_denied_says_the_user_or_a_policy_refused(make_provider):
    fed = make_provider(layout="keycloak")
    fed.fail_next("deny")
    with pytest.raises(AuthorizationError) as caught:
        from_issuer(fed).get_token()
    message = str(caught.value)
    assert "access_denied" in message and "the user or a policy of the provider" in message
    assert "check client_id" not in message


def test_scope_options_accumulate(make_provider, browser_command, capsys):
    fed = make_provider(layout="keycloak")
    argv = ["login", "--issuer", fed.issuer, "--client-id", fed.client_id]
    code, _, err = run(capsys, *argv, "--scope", "openid", "--scope", "profile email")
    assert code == EXIT_OK, err
    assert {p["scope"] for p in fed.authorize_params} == {"openid profile email"}


# ------------------------------------------------------------- 2. granted scopes are the truth


def test_the_granted_scope_is_kept_and_a_withheld_one_warned_about_once(make_provider):
    fed = make_provider(layout="keycloak", withheld_scopes={"email"})
    auth = from_issuer(fed, scopes="openid email")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token = auth.get_token()
        assert auth.get_token() == token  # cached: no second warning
    assert token.scope == ("openid",)
    scope_warnings = [w for w in caught if issubclass(w.category, ScopeWarning)]
    assert len(scope_warnings) == 1
    assert "did not grant the scope email (granted: openid)" in str(scope_warnings[0].message)


def test_login_status_and_json_show_the_granted_scope(make_provider, browser_command, capsys):
    fed = make_provider(layout="keycloak", withheld_scopes={"email"})
    argv = ["login", "--issuer", fed.issuer, "--client-id", fed.client_id]
    code, out, err = run(capsys, *argv, "--scope", "openid email")
    assert code == EXIT_OK, err
    assert "(scope openid)" in one_line(out) and "scope openid email" not in out
    assert "did not grant the scope email" in one_line(err)
    code, out, _ = run(capsys, "status")
    (line,) = [line for line in out.splitlines() if line.startswith("* oidc/")]
    assert code == EXIT_OK and line.endswith(", scope openid, as alice")
    code, out, _ = run(capsys, "status", "--format", "json")
    (entry,) = [t for t in json.loads(out)["tokens"]]
    assert entry["scope"] == ["openid"]


def test_a_refresh_keeps_the_granted_scope_and_account_when_the_answer_omits_them():
    before = Token("old", None, refresh_token="r-token", scope=("openid",), account=Account("u-1"))
    answer = json.dumps({"access_token": "new", "token_type": "Bearer"}).encode()
    fresh = parse_token_response(200, answer, requested_at=0.0)
    assert fresh.scope is None and fresh.account is None
    # What refresh() does with an answer that says nothing of them:
    from fedbearer import _login

    class Settings:
        client_id, client_secret, verify, timeout, session = "c", None, True, None, None

    called = {}

    def fake_endpoints(settings, deadline=None):
        from fedbearer._protocol import provider_federation

        return provider_federation(
            authorization_endpoint="https://p.example/a",
            token_endpoint="https://p.example/t",
            issuer="https://p.example",
        )

    def fake_post(url, body, **kwargs):
        called["url"] = url
        return fresh

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_login, "endpoints", fake_endpoints)
        patch.setattr(_login, "post_token_request", fake_post)
        renewed = _login.refresh(Settings(), before)  # type: ignore[arg-type]
    assert called["url"] == "https://p.example/t"
    assert renewed.token == "new" and renewed.scope == ("openid",)
    assert renewed.account == Account("u-1") and renewed.refresh_token == "r-token"


def test_scope_and_account_survive_the_cache_file(path):
    cache = FileTokenCache(path / "tokens.yaml")
    token = Token(
        "tok",
        None,
        scope=("openid", "email"),
        account=Account("u-1", email="ann@example.com", name="Ann"),
    )
    cache.put("k", token)
    entry = yaml.safe_load((path / "tokens.yaml").read_text())["tokens"]["k"]
    assert entry["scope"] == "openid email"
    assert entry["account"] == {"email": "ann@example.com", "name": "Ann", "sub": "u-1"}
    back = FileTokenCache(path / "tokens.yaml").get("k")
    assert back is not None and back.scope == token.scope and back.account == token.account


# ------------------------------------------------------------- 3. errors in the caller's terms


def test_a_host_that_does_not_resolve_names_the_host_and_the_setting(capsys):
    with pytest.raises(DiscoveryError) as caught:
        FederationAuth.from_issuer(
            "https://nonexistent.invalid", "c", cache=None, interactive=True
        ).get_token()
    message = str(caught.value)
    assert "the host name nonexistent.invalid does not resolve; check issuer=" in message
    code, _, err = run(
        capsys, "token", "--issuer", "https://nonexistent.invalid", "--client-id", "c"
    )
    assert code == EXIT_USAGE
    assert "does not resolve; check --issuer," in one_line(err) and "issuer=" not in err
    assert "(HTTPS_PROXY, NO_PROXY)" in err and "session=" not in err  # no Python names
    assert "HTTPS_PROXY, NO_PROXY, or session=" in message


def test_a_refused_connection_says_so_and_names_the_setting(capsys):
    issuer = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DiscoveryError, match=r"connection refused\); check issuer="):
        FederationAuth.from_issuer(issuer, "c", cache=None, interactive=True).get_token()
    code, _, err = run(capsys, "token", "--issuer", issuer, "--client-id", "c")
    assert code == EXIT_USAGE and "connection refused); check --issuer," in one_line(err)


def test_https_to_a_plain_http_provider_is_named_as_a_tls_failure(make_provider, capsys):
    fed = make_provider(layout="keycloak")
    issuer = fed.issuer.replace("http://", "https://")
    with pytest.raises(DiscoveryError) as caught:
        FederationAuth.from_issuer(issuer, fed.client_id, cache=None, interactive=True).get_token()
    assert "TLS handshake" in str(caught.value)
    assert "check issuer= (http:// instead of https://?)" in str(caught.value)
    code, _, err = run(capsys, "token", "--issuer", issuer, "--client-id", fed.client_id)
    assert code == EXIT_USAGE and "check --issuer (http:// instead of https://?)" in err
    assert "REQUESTS_CA_BUNDLE" in err


def test_a_missing_document_names_the_flag_and_no_python_method(make_provider, capsys):
    fed = make_provider(layout="keycloak", discovery=None)
    code, _, err = run(capsys, "token", "--issuer", fed.issuer, "--client-id", fed.client_id)
    assert code == EXIT_USAGE
    assert "HTTP 404" in err and "check --issuer" in err
    assert "from_endpoints" not in err and "=" not in one_line(err).split("check", 1)[1]
    with pytest.raises(DiscoveryError, match="check issuer=") as caught:
        person(fed, "openid").get_token()
    assert "FederationAuth.from_endpoints(authorization_endpoint=, token_endpoint=)" in str(
        caught.value
    )
    assert caught.value.settings == ("issuer",)


def test_localhost_for_127_0_0_1_is_named_as_a_spelling_of_the_same_host(make_provider, capsys):
    fed = make_provider(layout="keycloak")
    issuer = fed.issuer.replace("127.0.0.1", "localhost")
    with pytest.raises(DiscoveryError) as caught:
        person(fed, "openid", client_id=fed.client_id).__class__.from_issuer(
            issuer, fed.client_id, cache=None, interactive=True
        ).get_token()
    message = str(caught.value)
    assert "only the spelling of the host differs (localhost here, 127.0.0.1 in the" in message
    assert "pass issuer= exactly as the provider writes it" in message
    assert "another server" not in message
    code, _, err = run(capsys, "token", "--issuer", issuer, "--client-id", fed.client_id)
    assert code == EXIT_USAGE and "pass --issuer exactly as" in one_line(err)


def test_an_unknown_client_names_client_id_in_python_and_the_flag_in_the_cli(make_provider, capsys):
    fed = make_provider(layout="keycloak")
    with pytest.raises(ConfigurationError) as caught:
        person(fed, "openid", client_id="unregistered").get_token()
    assert "check client_id=," in str(caught.value) and "--client-id" not in str(caught.value)
    code, _, err = run(
        capsys, "token", "--issuer", fed.issuer, "--client-id", "unregistered", "--no-browser"
    )
    assert code == EXIT_USAGE
    assert "check --client-id," in one_line(err) and "client_id" not in err


def test_a_missing_issuer_is_named_as_the_issuer():
    with pytest.raises(ConfigurationError) as caught:
        FederationAuth.from_issuer(None, "c")  # type: ignore[arg-type]
    assert str(caught.value).startswith("issuer is None")
    assert "federation_endpoint" not in str(caught.value)


# ------------------------------------------------------------- 7. who is logged in


def test_the_account_comes_from_the_id_token_and_is_shown_never_the_token(
    make_provider, browser_command, capsys
):
    fed = make_provider(layout="keycloak", user="ann", email="ann@example.com")
    argv = ["login", "--issuer", fed.issuer, "--client-id", fed.client_id]
    code, out, err = run(capsys, *argv, "--scope", "openid email profile")
    assert code == EXIT_OK, err
    assert "Logged in as ann@example.com:" in one_line(out)
    code, out, _ = run(capsys, "status")
    assert "as ann@example.com (sub ann)" in out
    code, out, _ = run(capsys, "status", "--format", "json")
    (entry,) = json.loads(out)["tokens"]
    assert entry["account"] == {
        "email": "ann@example.com",
        "preferred_username": "ann",
        "name": "Ann",
        "sub": "ann",
    }
    for issued in fed.issued_tokens:
        assert issued not in out


def test_the_account_is_kept_in_python_with_the_token(make_provider):
    fed = make_provider(layout="keycloak", user="bob")
    token = from_issuer(fed, scopes="openid", cache=MemoryTokenCache()).get_token()
    assert token.account == Account("bob")


def _jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iss": "https://i", "aud": "c", "sub": "s"}, Account("s")),
        ({"iss": "https://i", "aud": ["x", "c"], "sub": "s"}, Account("s")),
        ({"iss": "https://i", "aud": "other", "sub": "s"}, None),  # not meant for us
        ({"iss": "https://evil", "aud": "c", "sub": "s"}, None),  # another issuer
        ({"iss": "https://i", "aud": "c"}, None),  # no sub
        ({"iss": "https://i", "aud": "c", "sub": 42}, None),
        ({"iss": "https://i", "aud": "c", "sub": "s", "email": "a\x1b[31m@x"}, Account("s")),
        (
            {"iss": "https://i", "aud": "c", "sub": "s", "name": "x" * (MAX_CLAIM_LENGTH + 1)},
            Account("s"),
        ),
        ({"iss": "https://i", "aud": "c", "sub": "s", "name": "Ann\u202eEvil"}, Account("s")),
        ({"iss": "https://i", "aud": "c", "sub": "s\nx"}, None),
        ({"iss": "https://i", "aud": "c", "sub": "s", "email": "a@x"}, Account("s", "a@x")),
    ],
)
def test_id_token_claims_are_checked_where_they_enter(claims, expected):
    assert id_token_account(_jwt(claims), client_id="c", issuer="https://i") == expected


def test_no_id_token_or_a_malformed_one_leaves_the_account_unknown():
    assert id_token_account(None, client_id="c", issuer=None) is None
    assert id_token_account("not-a-jwt", client_id="c", issuer=None) is None
    assert id_token_account(_jwt({"aud": "c", "sub": "s"}), client_id=None, issuer=None) is None


def test_programmatic_browser_logins_still_work_with_an_id_token(make_provider):
    fed = make_provider(layout="okta")
    auth = from_issuer(fed, scopes="openid profile", opener=ProgrammaticBrowser())
    assert auth.get_token().account == Account("alice", preferred_username="alice", name="Alice")


# ------------------------------------------------------------- 4. every message documented

ROOT = Path(__file__).resolve().parent.parent

# The fixed part of each message of the provider path, as the code writes it.
PROVIDER_MESSAGES = [
    "could not read the discovery document of",
    "does not resolve",
    "(connection refused)",
    "the TLS connection to the",
    "has no discovery document (HTTP 404 at",
    "is not JSON",
    "is not a JSON object",
    "has no issuer",
    "exactly as the provider writes it",
    "(the trailing '/' counts)",
    "only the spelling of the host differs",
    "the document belongs to another server, so it is not used",
    "does not list S256 in code_challenge_methods_supported",
    "does not list the authorization code flow (code) in response_types_supported",
    "does not support the scope",
    "Scopes are separated by spaces, not commas",
    "did not grant the scope",
    "is not an RFC 6749 scope token",
    "scopes is empty",
    "the user or a policy of",
    "remove prompt=none from",
    "the authorization response has no issuer (iss)",
    "names another issuer (RFC 9207)",
    "but none was configured to check it against",
    "revocation endpoint refused to revoke the",
    "issuer is None",
    "scopes, params and client_secret are for other OpenID providers",
    "federation_endpoint and federation_id name a Nebius federation",
    "pass both authorization_endpoint and token_endpoint",
    "revocation_endpoint goes with authorization_endpoint and token_endpoint",
    "fedbearer sets it",
    "--issuer names another OpenID provider",
    "not logged in yet, and no provider is configured",
]


def _source_text() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "fedbearer").rglob("*.py")
    )


@pytest.mark.parametrize("fragment", PROVIDER_MESSAGES)
def test_every_message_of_the_provider_path_is_in_troubleshooting(fragment):
    # Adjacent string literals are joined as Python joins them: "a " f"b" is "a b".
    source = re.sub(r'"\s*f?"', "", _source_text())
    doc = " ".join((ROOT / "docs" / "troubleshooting.rst").read_text(encoding="utf-8").split())
    assert fragment in source, f"not a message fedbearer writes: {fragment}"
    assert fragment in doc
