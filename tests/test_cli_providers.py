"""The command line with any OpenID provider (issue #13): ``--issuer``, ``--scope`` and
``--param`` on ``login``, ``token``, ``logout`` and ``status``; remembered with the profile;
tokens in fedbearer's own file; ``logout`` revoking at the provider.

Each command runs in-process through ``main`` on the temporary HOME conftest gives every
test; logins are real, through ``$BROWSER`` and a local provider in a Keycloak-like layout.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from fedbearer import (
    ConfigurationError,
    FederationAuth,
    FileTokenCache,
    KeyringTokenCache,
    Token,
    cache_key,
)
from fedbearer._cli import EXIT_FAILURE, EXIT_INTERACTION_REQUIRED, EXIT_OK, EXIT_USAGE, main
from fedbearer._cli.options import build_parser, resolve_identity
from fedbearer._login_command import login_command
from fedbearer._profiles import RememberedProfile, load_profiles, remember_profile

pytestmark = [pytest.mark.fedbearer_real, pytest.mark.timeout(60)]

SCOPE = "openid profile email"


@pytest.fixture
def provider_file(isolated_env: Path) -> Path:
    return isolated_env / ".cache" / "fedbearer" / "tokens.yaml"


@pytest.fixture
def nebius_file(isolated_env: Path) -> Path:
    return isolated_env / ".nebius" / "credentials.yaml"


@pytest.fixture
def keycloak(make_provider):
    return make_provider(layout="keycloak")


def issuer_flags(fed, *more: str, scope: str = SCOPE) -> list[str]:
    return ["--issuer", fed.issuer, "--client-id", fed.client_id, "--scope", scope, *more]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(text: str) -> str:
    return " ".join(text.split())


def tokens_in(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["tokens"]


def adapter(fed, scope: str = SCOPE, **options) -> FederationAuth:
    """What a script would build for the same identity (never logs in here)."""
    options.setdefault("interactive", False)
    return FederationAuth.from_issuer(fed.issuer, fed.client_id, scopes=scope, **options)


# ---------------------------------------------------------------------- login and token


def test_login_with_an_issuer_uses_discovery_and_keeps_tokens_out_of_the_nebius_file(
    keycloak, browser_command, provider_file, nebius_file, capsys
):
    code, out, err = run(capsys, "login", *issuer_flags(keycloak, "--param", "audience=api"))
    assert code == EXIT_OK
    assert keycloak.discovery_requests == 1 and keycloak.code_exchanges == 1
    for sent in keycloak.authorize_params:  # the pre-flight check's and the browser's
        assert sent["scope"] == SCOPE and sent["audience"] == "api"
        assert "federation-id" not in sent
    assert "/protocol/openid-connect/auth?" in err  # Keycloak's path, from the document
    line = one_line(out)
    assert line.startswith("Logged in") and keycloak.issuer in line
    assert f"scope {SCOPE}" in line and str(provider_file) in line
    (key,) = tokens_in(provider_file)
    # The key the library computes for the same identity: a script shares the login.
    assert key == adapter(keycloak, params={"audience": "api"}).bearer.name
    assert not nebius_file.exists()
    cached = FileTokenCache(provider_file).get(key)
    assert cached is not None and cached.token not in out + err


def test_token_prints_the_cached_token_with_no_options_after_the_login(
    keycloak, browser_command, provider_file, capsys
):
    assert run(capsys, "login", *issuer_flags(keycloak, "--profile", "kc"))[0] == EXIT_OK
    code, out, err = run(capsys, "token")  # the remembered profile: issuer, scopes, client
    assert code == EXIT_OK and err == ""
    assert keycloak.is_valid(out.strip()) and keycloak.code_exchanges == 1
    # A script gets the same identity, and the same cached token, from the profile.
    auth = FederationAuth.from_profile("kc", interactive=False)
    assert auth.bearer.settings.scopes == tuple(SCOPE.split())
    assert auth.get_token().token == out.strip() and keycloak.code_exchanges == 1


def test_other_scopes_never_reuse_a_token_minted_for_these(
    keycloak, browser_command, provider_file, capsys
):
    code, first, _ = run(capsys, "token", *issuer_flags(keycloak))
    assert code == EXIT_OK
    code, out, _ = run(capsys, "token", *issuer_flags(keycloak, scope="openid"))
    assert code == EXIT_OK and keycloak.code_exchanges == 2  # a login of its own
    assert keycloak.granted_scopes(out.strip()) == {"openid"}
    assert len(tokens_in(provider_file)) == 2
    # The same scopes in another order are the same identity.
    code, again, _ = run(capsys, "token", *issuer_flags(keycloak, scope="openid email profile"))
    assert code == EXIT_OK and again == first and keycloak.code_exchanges == 2


def test_the_issuer_and_scope_can_come_from_the_environment(
    keycloak, browser_command, monkeypatch, capsys
):
    monkeypatch.setenv("FEDBEARER_ISSUER", keycloak.issuer)
    monkeypatch.setenv("FEDBEARER_SCOPE", "openid email")
    monkeypatch.setenv("FEDBEARER_CLIENT_ID", keycloak.client_id)
    code, out, _ = run(capsys, "token")
    assert code == EXIT_OK and keycloak.is_valid(out.strip())
    assert {p["scope"] for p in keycloak.authorize_params} == {"openid email"}


def test_non_interactive_exit_3_gives_the_issuer_command_and_following_it_fixes_it(
    keycloak, browser_command, tmp_path, monkeypatch, capsys
):
    cache = ["--cache-file", str(tmp_path / "tokens.yaml")]
    base = ["--issuer", keycloak.issuer, "--client-id", keycloak.client_id]
    argv = ["token", *base, "--param", "prompt=login", *cache, "--profile", "ci"]
    code, _, err = run(capsys, *argv, "--non-interactive")
    assert code == EXIT_INTERACTION_REQUIRED and keycloak.discovery_requests == 0
    command = shlex.split(one_line(err).split(" with: ", 1)[1])
    assert command[:2] == ["fedbearer", "login"] and "--issuer" in command
    # Pasted into a terminal that sets other scopes, it still logs in this identity.
    assert command[command.index("--scope") + 1] == "openid"
    with monkeypatch.context() as terminal:
        terminal.setenv("FEDBEARER_SCOPE", "openid email")
        assert run(capsys, *command[1:])[0] == EXIT_OK
    code, out, _ = run(capsys, *argv, "--non-interactive")
    assert code == EXIT_OK and keycloak.is_valid(out.strip())
    assert keycloak.code_exchanges == 1


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"scopes": ("-x",)}, ["--scope=-x"]),
        ({"params": (("-p", "v"),)}, ["--param=-p=v"]),
        ({"params": (("a", "b=c"),)}, ["--param", "a=b=c"]),
        ({"keyring": True}, ["--keyring"]),
        ({"keyring": True, "cache_file": "/tmp/x y"}, ["--cache-file", "/tmp/x y"]),
    ],
)
def test_the_login_command_parses_back_to_the_same_settings(options, expected):
    command = login_command("cli", "kc", issuer="https://sso.example.com", **options)
    assert command is not None
    words = shlex.split(command)
    assert all(word in words for word in expected)
    args = build_parser().parse_args(words[1:])
    assert args.issuer == "https://sso.example.com" and args.profile == "kc"
    if "scopes" in options:
        assert " ".join(args.scope) == " ".join(options["scopes"])
    if "params" in options:
        assert args.param == list(options["params"])
    assert bool(args.keyring) == (options.get("keyring", False) and "cache_file" not in options)


def test_a_parameter_name_with_an_equals_sign_gets_no_command():
    assert login_command("cli", "kc", issuer="https://a.example", params=(("a=b", "c"),)) is None


# ---------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--federation-endpoint", "https://fed.example"], "--federation-endpoint"),
        (["--federation-id", "fid"], "--federation-id"),
        (["--param", "prompt"], "NAME=VALUE"),
        (["--param", "state=mine"], "--param"),
        (["--param", "a=1", "--param", "a=2"], "--param"),
        (["--scope", ""], "--scope"),
        (["--scope", 'open"id'], "--scope"),
        (["--profile", "a/b"], "profile"),
    ],
)
def test_a_bad_provider_setting_is_a_usage_error_naming_it(argv, named, capsys):
    base = ["--issuer", "https://sso.example.com/realms/main", "--client-id", "cli"]
    code, out, err = run(capsys, "token", *base, *argv)
    assert code == EXIT_USAGE and out == ""
    assert named in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--scope", "openid email"], ["--param", "prompt=login"]])
def test_scopes_and_params_are_refused_for_a_nebius_federation(option, capsys):
    fed = ["--client-id", "cli", "--federation-endpoint", "fed.example", "--federation-id", "f"]
    code, _, err = run(capsys, "token", *fed, *option)
    assert code == EXIT_USAGE and option[0] in err and "--issuer" in err


def test_the_scope_variable_is_named_when_a_federation_is_used(monkeypatch, capsys):
    monkeypatch.setenv("FEDBEARER_SCOPE", "openid email")
    fed = ["--client-id", "cli", "--federation-endpoint", "fed.example", "--federation-id", "f"]
    code, _, err = run(capsys, "token", *fed)
    assert code == EXIT_USAGE and "FEDBEARER_SCOPE" in err


def test_two_providers_in_the_environment_are_refused(monkeypatch, capsys):
    monkeypatch.setenv("FEDBEARER_ISSUER", "https://sso.example.com")
    monkeypatch.setenv("FEDBEARER_FEDERATION_ENDPOINT", "fed.example")
    code, _, err = run(capsys, "token", "--client-id", "cli")
    assert code == EXIT_USAGE
    assert "FEDBEARER_ISSUER" in err and "FEDBEARER_FEDERATION_ENDPOINT" in err
    # An option names the provider: the variables no longer compete.
    args = build_parser().parse_args(["token", "--client-id", "cli", "--issuer", "https://a.b"])
    identity = resolve_identity(args, need_client_id=True, required=True)
    assert identity is not None and identity.issuer == "https://a.b"


def test_a_plain_http_issuer_elsewhere_needs_the_flag(capsys):
    base = ["--issuer", "http://sso.example.com", "--client-id", "cli", "--non-interactive"]
    code, _, err = run(capsys, "token", *base)
    assert code == EXIT_USAGE and "--allow-insecure-http" in err
    code, _, err = run(capsys, "token", *base, "--allow-insecure-http")
    assert code == EXIT_INTERACTION_REQUIRED  # accepted; then no login without a person


def test_status_works_with_a_scope_variable_and_nothing_configured(monkeypatch, capsys):
    monkeypatch.setenv("FEDBEARER_SCOPE", "openid email")
    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK and "No cached tokens" in out


def test_an_issuer_needs_a_client_id(capsys):
    code, _, err = run(capsys, "logout", "--issuer", "https://sso.example.com")
    assert code == EXIT_USAGE and "--client-id" in err


# ---------------------------------------------------------------------- logout


def test_logout_revokes_at_the_provider_and_removes_the_entry(
    keycloak, browser_command, provider_file, capsys
):
    assert run(capsys, "login", *issuer_flags(keycloak))[0] == EXIT_OK
    (key,) = tokens_in(provider_file)
    token = FileTokenCache(provider_file).get(key)
    assert token is not None and keycloak.is_valid(token.token)
    code, out, err = run(capsys, "logout")  # the profile the login remembered
    assert code == EXIT_OK and err == ""
    line = one_line(out)
    assert line.startswith("Logged out: revoked the refresh token and access token at ")
    assert keycloak.revocation_url in line and str(provider_file) in line
    assert tokens_in(provider_file) == {}
    assert not keycloak.is_valid(token.token)
    assert keycloak.granted_scopes(token.refresh_token or "") is None
    code, out, _ = run(capsys, "logout")
    assert code == EXIT_OK and one_line(out).startswith("Not logged in")
    assert keycloak.revocation_requests == 2  # not contacted again


def test_logout_says_plainly_when_the_provider_cannot_revoke(
    make_provider, browser_command, provider_file, capsys
):
    entra = make_provider(layout="entra")
    assert entra.revocation_url is None
    assert run(capsys, "token", *issuer_flags(entra))[0] == EXIT_OK
    code, out, _ = run(capsys, "logout", *issuer_flags(entra))
    line = one_line(out)
    assert code == EXIT_OK and "has no revocation endpoint" in line
    assert "not revoked" in line and "stays valid there until 20" in line
    assert tokens_in(provider_file) == {} and entra.revocation_requests == 0


def test_a_failed_revocation_exits_1_after_removing_the_entry(
    keycloak, browser_command, provider_file, capsys
):
    assert run(capsys, "token", *issuer_flags(keycloak))[0] == EXIT_OK
    (key,) = tokens_in(provider_file)
    token = FileTokenCache(provider_file).get(key)
    assert token is not None
    keycloak.fail_next("revocation_unavailable")
    code, out, err = run(capsys, "logout", *issuer_flags(keycloak))
    assert code == EXIT_FAILURE and out == ""
    line = one_line(err)
    assert "removed the cached token" in line and "did not confirm the revocation" in line
    assert token.token not in err and str(token.refresh_token) not in err
    assert tokens_in(provider_file) == {} and keycloak.is_valid(token.token)


def test_logout_says_which_tokens_the_provider_would_not_revoke(
    keycloak, browser_command, provider_file, capsys
):
    assert run(capsys, "token", *issuer_flags(keycloak))[0] == EXIT_OK
    keycloak.fail_next("unsupported_token_type")  # the refresh token's
    code, out, _ = run(capsys, "logout", *issuer_flags(keycloak))
    lines = [one_line(line) for line in out.splitlines()]
    assert code == EXIT_OK and len(lines) == 2
    assert lines[0].startswith("Logged out: revoked the access token at ")
    assert lines[1] == (
        f"{keycloak.revocation_url} does not revoke the refresh token "
        "(unsupported_token_type): it stays valid there until it expires."
    )
    assert run(capsys, "token", *issuer_flags(keycloak))[0] == EXIT_OK
    keycloak.fail_next("unsupported_token_type", 2)  # both
    code, out, _ = run(capsys, "logout", *issuer_flags(keycloak))
    lines = [one_line(line) for line in out.splitlines()]
    assert code == EXIT_OK and lines[0].startswith("Logged out: removed the cached token")
    assert "refresh token and access token (unsupported_token_type)" in lines[1]
    assert tokens_in(provider_file) == {}


def test_logout_with_nothing_cached_contacts_nobody(keycloak, capsys):
    code, out, _ = run(capsys, "logout", *issuer_flags(keycloak))
    assert code == EXIT_OK and one_line(out).startswith("Not logged in")
    assert keycloak.discovery_requests == 0 and keycloak.revocation_requests == 0


def test_logout_notes_a_token_in_the_environment_it_leaves_alone(
    keycloak, browser_command, monkeypatch, capsys
):
    assert run(capsys, "token", *issuer_flags(keycloak))[0] == EXIT_OK
    monkeypatch.setenv("FEDBEARER_TOKEN", "env-token")
    monkeypatch.setenv("NEBIUS_IAM_TOKEN", "nebius-token")
    code, out, err = run(capsys, "logout", *issuer_flags(keycloak))
    assert code == EXIT_OK and "revoked" in out
    assert "$FEDBEARER_TOKEN is set" in err and "env-token" not in out + err
    assert [p["token"] for p in keycloak.revocation_params if p["token"] == "env-token"] == []
    # NEBIUS_IAM_TOKEN is a Nebius federation's: for this provider it is not a token source.
    monkeypatch.delenv("FEDBEARER_TOKEN")
    assert run(capsys, "token", *issuer_flags(keycloak))[0] == EXIT_OK
    code, _, err = run(capsys, "logout", *issuer_flags(keycloak))
    assert code == EXIT_OK and err == ""


# ---------------------------------------------------------------------- status and profiles


def test_status_lists_both_files_and_marks_the_configured_issuer(
    keycloak, browser_command, provider_file, nebius_file, capsys
):
    nebius_key = cache_key("fed.example", "fid", "default")
    FileTokenCache(nebius_file).put(nebius_key, Token("nebius-access", None))
    assert run(capsys, "login", *issuer_flags(keycloak, "--profile", "kc"))[0] == EXIT_OK
    (key,) = tokens_in(provider_file)
    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK
    assert f"kc (the default): client {keycloak.client_id} at {keycloak.issuer}" in out
    assert f"(scope {SCOPE})" in out
    assert f"Cached tokens in {provider_file}:" in out and f"* {key}: valid until" in out
    assert f"Cached tokens in {nebius_file}:" in out and f"  {nebius_key}: " in out
    assert "nebius-access" not in out
    code, out, _ = run(capsys, "status", "--format", "json")
    document = json.loads(out)
    assert document["current"] == key and document["cache"] == str(provider_file)
    assert {(t["key"], t["cache"]) for t in document["tokens"]} == {
        (key, str(provider_file)),
        (nebius_key, str(nebius_file)),
    }
    (profile,) = document["profiles"]
    assert profile["issuer"] == keycloak.issuer and profile["scopes"] == SCOPE.split()
    assert "access" not in out.replace("access_token", "")


def test_login_remembers_issuer_scopes_params_and_the_file_reads_back(
    keycloak, browser_command, capsys
):
    argv = issuer_flags(keycloak, "--param", "audience=api", "--profile", "kc")
    assert run(capsys, "login", *argv)[0] == EXIT_OK
    profile = load_profiles().get("kc")
    assert profile is not None
    assert profile.issuer == keycloak.issuer and profile.client_id == keycloak.client_id
    assert profile.scopes == tuple(SCOPE.split()) and profile.params == (("audience", "api"),)
    assert profile.federation_endpoint == "" and profile.federation_id == ""
    auth = FederationAuth.from_profile("kc", interactive=False)
    assert auth.bearer.settings.params == (("audience", "api"),)
    assert (
        auth.bearer.name == adapter(keycloak, params={"audience": "api"}, profile="kc").bearer.name
    )
    assert not isinstance(auth.cache, KeyringTokenCache)


def test_from_profile_keeps_the_remembered_keyring_choice(isolated_env):
    remember_profile(RememberedProfile("kc", "cli", keyring=True, issuer="https://sso.example.com"))
    assert isinstance(FederationAuth.from_profile("kc").cache, KeyringTokenCache)
    # An explicit cache wins over the file.
    assert not isinstance(FederationAuth.from_profile("kc", cache=None).cache, KeyringTokenCache)


def test_a_remembered_issuer_fills_what_is_not_given_for_the_same_issuer_only(
    keycloak, browser_command, capsys
):
    argv = issuer_flags(keycloak, "--param", "audience=api", "--profile", "kc")
    assert run(capsys, "login", *argv)[0] == EXIT_OK

    def identity(*argv: str):
        args = build_parser().parse_args(["token", *argv])
        return resolve_identity(args, need_client_id=True, required=True)

    same = identity("--issuer", keycloak.issuer, "--profile", "kc")
    assert same.scopes == tuple(SCOPE.split()) and same.params == (("audience", "api"),)
    assert same.client_id == keycloak.client_id
    # With the client id given too, the remembered scopes and parameters still apply: a
    # second login of the profile keeps them, and finds the token they were minted for.
    code, out, _ = run(
        capsys,
        "login",
        "--issuer",
        keycloak.issuer,
        "--client-id",
        keycloak.client_id,
        "--profile",
        "kc",
    )
    assert code == EXIT_OK and one_line(out).startswith("Already logged in")
    assert load_profiles().get("kc").params == (("audience", "api"),)
    assert keycloak.code_exchanges == 1
    # Another issuer under the same name: nothing remembered applies, not even the client
    # id, which was registered at the first provider.
    with pytest.raises(ConfigurationError, match="no client id"):
        identity("--issuer", "https://other.example", "--profile", "kc")
    other = identity("--issuer", "https://other.example", "--profile", "kc", "--client-id", "o")
    assert other.scopes == ("openid",) and other.params == ()


def test_federation_settings_never_silently_give_way_to_a_remembered_issuer(monkeypatch, capsys):
    remember_profile(RememberedProfile("kc", "cli", issuer="https://sso.example.com"))
    code, _, err = run(capsys, "token", "--federation-id", "f")
    assert code == EXIT_USAGE and "--federation-id" in err and "sso.example.com" in err
    monkeypatch.setenv("FEDBEARER_FEDERATION_ID", "f")
    code, _, err = run(capsys, "token")
    assert code == EXIT_USAGE and "FEDBEARER_FEDERATION_ID" in err
    monkeypatch.setenv("FEDBEARER_ISSUER", "https://sso.example.com")
    code, _, err = run(capsys, "token")
    assert code == EXIT_USAGE
    assert "FEDBEARER_ISSUER" in err and "FEDBEARER_FEDERATION_ID" in err


def test_a_remembered_keyring_choice_holds_when_the_provider_is_given_again(isolated_env):
    remember_profile(RememberedProfile("kc", "cli", keyring=True, issuer="https://sso.example.com"))
    argv = ["token", "--issuer", "https://sso.example.com", "--profile", "kc"]
    identity = resolve_identity(build_parser().parse_args(argv), need_client_id=True, required=True)
    assert identity.keyring and identity.client_id == "cli"
    args = build_parser().parse_args([*argv, "--cache-file", str(isolated_env / "t.yaml")])
    assert not resolve_identity(args, need_client_id=True, required=True).keyring


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scopes": ("email", "openid")},
        {"scopes": ("openid", "email", "openid")},
        {"params": (("audience", "api"), ("prompt", "login"))},
        {"params": (("prompt", "login"), ("audience", "api"))},
        {"profile": "other"},
    ],
)
def test_the_commands_key_is_the_librarys(kwargs):
    argv = ["token", "--issuer", "https://sso.example.com/realms/x", "--client-id", "cli"]
    argv += ["--scope", " ".join(kwargs.get("scopes", ("openid",)))]
    for name, value in kwargs.get("params", ()):
        argv += ["--param", f"{name}={value}"]
    argv += ["--profile", kwargs.get("profile", "default")]
    identity = resolve_identity(build_parser().parse_args(argv), need_client_id=True, required=True)
    auth = FederationAuth.from_issuer(
        "https://sso.example.com/realms/x", "cli", cache=None, **kwargs
    )
    assert identity.key == auth.bearer.name


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"client_id": "c", "issuer": "https://a.b", "federation_endpoint": "x"}, "both"),
        ({"client_id": "c", "issuer": "https://a.b", "scopes": ["open id"]}, "scope"),
        ({"client_id": "c", "issuer": "https://a.b", "params": {"state": "x"}}, "state"),
        ({"client_id": "c", "issuer": "https://a.b", "params": {"p": 1}}, "printable"),
        ({"client_id": "c", "issuer": ["https://a.b"]}, "issuer"),
        ({"client_id": "c", "issuer": "ftp://a.b"}, "issuer"),
        ({"client_id": "c", "issuer": "http://sso.example.com"}, "allow-insecure-http"),
    ],
)
def test_a_malformed_issuer_profile_is_a_usage_error_naming_the_file(
    isolated_env, entry, problem, capsys
):
    path = isolated_env / ".config" / "fedbearer" / "profiles.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"default": "kc", "profiles": {"kc": entry}}))
    code, _, err = run(capsys, "token")
    assert code == EXIT_USAGE and str(path) in err and problem in err


@pytest.mark.parametrize("value", ["ftp://sso.example.com", "https://sso.example.com/a\nb"])
def test_a_bad_issuer_variable_is_named_and_checked_before_anything_quotes_it(
    value, monkeypatch, capsys
):
    monkeypatch.setenv("FEDBEARER_ISSUER", value)
    code, out, err = run(capsys, "token")  # no client id either: the URL is checked first
    assert code == EXIT_USAGE and out == ""
    assert "FEDBEARER_ISSUER" in err and "--issuer" not in err.split("(see")[0]
    assert len(err.strip().splitlines()) == 1 and "a\nb" not in err
