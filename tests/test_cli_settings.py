"""Daily use (issue #12): remembered profiles, where each setting comes from, JSON output.

Each command runs in-process through ``main`` on the temporary HOME conftest gives every
test; ``fedbearer login`` logs in for real through ``$BROWSER`` and a local federation.
"""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime, timezone

import pytest
import yaml

from fedbearer import ConfigurationError, FederationAuth, FileTokenCache, Token, cache_key
from fedbearer._cli import EXIT_INTERACTION_REQUIRED, EXIT_OK, EXIT_USAGE, main

pytestmark = pytest.mark.fedbearer_real  # logins as a person runs them, on a temporary HOME


@pytest.fixture
def cache(isolated_env):
    return FileTokenCache(isolated_env / ".nebius" / "credentials.yaml")


@pytest.fixture
def profiles_file(isolated_env):
    return isolated_env / ".config" / "fedbearer" / "profiles.yaml"


def login_flags(fed, profile=None):
    flags = ["--client-id", fed.client_id, "--federation-endpoint", fed.endpoint]
    flags += ["--federation-id", fed.federation_id, "--timeout", "20"]
    return flags + (["--profile", profile] if profile else [])


def seed(cache, endpoint, federation_id, profile, value):
    expires = datetime.fromtimestamp(time.time() + 3600, tz=timezone.utc)
    cache.put(cache_key(endpoint, federation_id, profile), Token(value, expires))


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------- remembered profiles


def test_after_one_login_token_status_and_logout_need_no_flags(
    local_federation, browser_command, cache, profiles_file, capsys
):
    code, out, _ = run(capsys, "login", *login_flags(local_federation, "work"))
    assert code == EXIT_OK
    assert stat.S_IMODE(profiles_file.stat().st_mode) == 0o600

    code, out, _ = run(capsys, "token")
    assert code == EXIT_OK and local_federation.is_valid(out.strip())
    assert local_federation.code_exchanges == 1  # the cached token, no second login

    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK
    assert "work (the default): client fedbearer-test" in out
    assert "* federation/" in out and out.strip().split()[-1] != ""

    code, out, _ = run(capsys, "logout")
    assert code == EXIT_OK and out.startswith("Logged out")
    assert cache.entries() == []


def test_the_latest_login_is_the_default_and_profile_alone_picks_another(
    local_federation, browser_command, cache, capsys
):
    assert run(capsys, "login", *login_flags(local_federation, "one"))[0] == EXIT_OK
    assert run(capsys, "login", *login_flags(local_federation, "two"))[0] == EXIT_OK
    one = cache.get(cache_key(local_federation.endpoint, local_federation.federation_id, "one"))
    two = cache.get(cache_key(local_federation.endpoint, local_federation.federation_id, "two"))
    assert run(capsys, "token")[1].strip() == two.token
    assert run(capsys, "token", "--profile", "one")[1].strip() == one.token


def test_from_profile_builds_the_adapter_from_the_remembered_login(
    local_federation, browser_command, capsys
):
    assert run(capsys, "login", *login_flags(local_federation, "work"))[0] == EXIT_OK
    auth = FederationAuth.from_profile()
    assert auth.bearer.name == cache_key(
        local_federation.endpoint, local_federation.federation_id, "work"
    )
    assert local_federation.is_valid(auth.get_token().token)  # from the cache: no login
    assert local_federation.code_exchanges == 1
    assert FederationAuth.from_profile("work").bearer.client_id == local_federation.client_id
    with pytest.raises(ConfigurationError, match="no profile 'other'"):
        FederationAuth.from_profile("other")


def test_from_profile_without_any_login_says_how_to_make_one():
    with pytest.raises(ConfigurationError, match="fedbearer login"):
        FederationAuth.from_profile()


# ---------------------------------------------------------------------- precedence


def remember(profiles_file, endpoint, federation_id="fid", client_id="cid", name="work"):
    profiles_file.parent.mkdir(parents=True, exist_ok=True)
    profiles_file.write_text(
        yaml.safe_dump(
            {
                "default": name,
                "profiles": {
                    name: {
                        "client_id": client_id,
                        "federation_endpoint": endpoint,
                        "federation_id": federation_id,
                    }
                },
            }
        )
    )


def nebius_config(home, endpoint, federation_id="nebius-fid", name="nb"):
    path = home / ".nebius" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "default": name,
                "profiles": {
                    name: {
                        "auth-type": "federation",
                        "federation-endpoint": endpoint,
                        "federation-id": federation_id,
                    }
                },
            }
        )
    )


@pytest.mark.parametrize(
    ("flag", "env", "remembered", "nebius", "used"),
    [
        (True, True, True, True, "flag.example"),
        (False, True, True, True, "env.example"),
        (False, False, True, True, "remembered.example"),
        (False, False, False, True, "nebius.example"),
    ],
)
def test_each_setting_comes_from_flags_then_env_then_remembered_then_nebius(
    isolated_env, profiles_file, cache, monkeypatch, capsys, flag, env, remembered, nebius, used
):
    if remembered:
        remember(profiles_file, "remembered.example", federation_id="fid")
    if nebius:
        nebius_config(isolated_env, "nebius.example", federation_id="fid", name="work")
    if env:
        monkeypatch.setenv("FEDBEARER_FEDERATION_ENDPOINT", "env.example")
        monkeypatch.setenv("FEDBEARER_FEDERATION_ID", "fid")
        monkeypatch.setenv("FEDBEARER_PROFILE", "work")
    for endpoint in ("flag.example", "env.example", "remembered.example", "nebius.example"):
        seed(cache, endpoint, "fid", "work", f"token-of-{endpoint.split('.')[0]}")
    argv = ["token", "--client-id", "cid", "--non-interactive"]
    if flag:
        argv += ["--federation-endpoint", "flag.example", "--federation-id", "fid"]
        argv += ["--profile", "work"]
    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK, err
    assert out.strip() == f"token-of-{used.split('.')[0]}"


def test_a_nebius_cli_user_needs_only_the_client_id(isolated_env, cache, monkeypatch, capsys):
    nebius_config(isolated_env, "auth.nebius.example", name="dev")
    seed(cache, "auth.nebius.example", "nebius-fid", "dev", "nebius-cached")
    code, out, err = run(capsys, "token", "--client-id", "cid", "--non-interactive")
    assert (code, out.strip()) == (EXIT_OK, "nebius-cached"), err
    # $NEBIUS_PROFILE chooses among the Nebius CLI's profiles, as it does for that CLI.
    monkeypatch.setenv("NEBIUS_PROFILE", "missing")
    code, _, err = run(capsys, "token", "--client-id", "cid", "--non-interactive")
    assert code == EXIT_USAGE and "'missing'" in err


def test_a_broken_profiles_file_is_named_only_when_it_is_needed(profiles_file, cache, capsys):
    profiles_file.parent.mkdir(parents=True)
    profiles_file.write_text("profiles: [not, a, mapping]\n")
    code, _, err = run(capsys, "token", "--non-interactive")
    assert code == EXIT_USAGE and str(profiles_file) in err
    seed(cache, "auth.example", "fid", "default", "complete-flags")
    flags = ["--client-id", "c", "--federation-endpoint", "auth.example", "--federation-id", "fid"]
    code, out, _ = run(capsys, "token", *flags, "--non-interactive")
    assert (code, out.strip()) == (EXIT_OK, "complete-flags")  # never read


def test_a_remembered_value_with_a_line_break_is_refused(profiles_file, capsys):
    remember(profiles_file, "auth.example\nX-Evil: 1")
    code, _, err = run(capsys, "token", "--non-interactive")
    assert code == EXIT_USAGE and "printable" in err and "X-Evil" not in err


# ---------------------------------------------------------------------- output


def test_token_format_json_prints_one_object_with_the_expiry(cache, capsys):
    seed(cache, "auth.example", "fid", "default", "json-token")
    flags = ["--client-id", "c", "--federation-endpoint", "auth.example", "--federation-id", "fid"]
    code, out, _ = run(capsys, "token", *flags, "--format", "json")
    document = json.loads(out)
    assert code == EXIT_OK and out.count("\n") == 1
    assert document["access_token"] == "json-token" and document["token_type"] == "Bearer"
    assert 3500 < document["expires_in"] <= 3600
    assert abs(document["expires_at"] - (time.time() + document["expires_in"])) < 5


def test_status_format_json_lists_profiles_and_tokens_never_a_token(profiles_file, cache, capsys):
    remember(profiles_file, "auth.example")
    seed(cache, "auth.example", "fid", "work", "secret-value")
    code, out, _ = run(capsys, "status", "--format", "json")
    document = json.loads(out)
    assert code == EXIT_OK and "secret-value" not in out
    assert document["default_profile"] == "work"
    assert [p["federation_endpoint"] for p in document["profiles"]] == ["auth.example"]
    assert document["current"] == cache_key("auth.example", "fid", "work")
    assert [t["key"] for t in document["tokens"]] == [document["current"]]
    assert document["tokens"][0]["refreshable"] is False


@pytest.mark.parametrize("where", ["before", "after", "nowhere"])
def test_debug_works_before_or_after_the_command(cache, capsys, where):
    seed(cache, "auth.example", "fid", "default", "debug-token")
    flags = ["--client-id", "c", "--federation-endpoint", "auth.example", "--federation-id", "fid"]
    argv = {
        "before": ["--debug", "token", *flags],
        "after": ["token", *flags, "--debug"],
        "nowhere": ["token", *flags],
    }[where]
    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK and out.strip() == "debug-token"
    assert ("fedbearer.auth DEBUG: using the token found in the cache" in err) is (
        where != "nowhere"
    )
    assert "debug-token" not in err


@pytest.mark.parametrize("command", ["login", "token", "logout", "status"])
def test_each_command_help_is_short_and_points_to_the_main_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == EXIT_OK
    assert "130  interrupted" not in out and "fedbearer --help" in out
    assert len(out.splitlines()) < 70


def test_the_main_help_documents_where_settings_come_from(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK and "remembered" in out and "130  interrupted" in out


def test_the_profiles_file_is_replaced_whole(profiles_file):
    from fedbearer._profiles import RememberedProfile, load_profiles, remember_profile

    for n in range(5):
        remember_profile(RememberedProfile(f"p{n}", "cid", f"e{n}.example"), str(profiles_file))
    loaded = load_profiles(str(profiles_file))
    assert loaded.default == "p4" and sorted(loaded.profiles) == [f"p{n}" for n in range(5)]
    leftovers = [p for p in os.listdir(profiles_file.parent) if p.startswith(".profiles-")]
    assert leftovers == []


# ---------------------------------------------------------------------- token sources (#15)


def test_token_prints_the_environment_token_and_status_names_its_source(cache, monkeypatch, capsys):
    monkeypatch.setenv("FEDBEARER_TOKEN", "from-the-environment")
    flags = ["--client-id", "c", "--federation-endpoint", "auth.example", "--federation-id", "f"]
    code, out, err = run(capsys, "token", *flags, "--non-interactive")
    assert (code, out, err) == (EXIT_OK, "from-the-environment\n", "")
    assert cache.entries() == []  # the cache was never written

    code, out, _ = run(capsys, "status", *flags)
    assert code == EXIT_OK and "Token source: $FEDBEARER_TOKEN" in out
    assert "from-the-environment" not in out
    document = json.loads(run(capsys, "status", "--format", "json")[1])
    assert document["token_source"] == {"kind": "environment", "variable": "FEDBEARER_TOKEN"}

    code, _, err = run(capsys, "token", *flags, "--non-interactive", "--no-env-token")
    assert code == 3 and "from-the-environment" not in err  # ignored: a login is needed


def test_a_malformed_environment_token_is_named_never_shown(monkeypatch, capsys):
    monkeypatch.setenv("FEDBEARER_TOKEN", "two words")
    flags = ["--client-id", "c", "--federation-endpoint", "auth.example", "--federation-id", "f"]
    code, _, err = run(capsys, "token", *flags)
    assert code == EXIT_USAGE and "FEDBEARER_TOKEN" in err and "two words" not in err
    code, out, _ = run(capsys, "status", *flags)
    assert code == EXIT_OK and "not usable" in out and "two words" not in out


def test_login_remembers_the_keyring_choice_with_the_profile(profiles_file, capsys):
    from fedbearer._profiles import RememberedProfile, load_profiles, remember_profile

    remember_profile(RememberedProfile("work", "cid", "auth.example", "f", keyring=True))
    assert load_profiles().get("work").keyring is True
    document = json.loads(run(capsys, "status", "--format", "json")[1])
    assert document["token_source"]["kind"] == "keyring"
    # An explicit --cache-file wins over the remembered keyring.
    argv = ["status", "--format", "json", "--cache-file", str(profiles_file.parent / "c.yaml")]
    document = json.loads(run(capsys, *argv)[1])
    assert document["token_source"]["kind"] == "file"


def test_allow_insecure_http_given_now_holds_for_a_remembered_endpoint(profiles_file, capsys):
    from fedbearer._profiles import RememberedProfile, remember_profile

    remember_profile(RememberedProfile("lab", "cid", "http://fed.lab.example", "f"))
    code, _, err = run(capsys, "token", "--non-interactive")
    assert code == EXIT_USAGE and "--allow-insecure-http" in err
    # The flag on the command line is not overridden by the profile's remembered "false".
    code, _, err = run(capsys, "token", "--non-interactive", "--allow-insecure-http")
    assert code == EXIT_INTERACTION_REQUIRED and "a login is needed" in err
