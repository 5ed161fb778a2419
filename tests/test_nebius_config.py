"""Reading federation profiles from the Nebius CLI's config.yaml, checked against the SDK."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fedbearer import ConfigurationError, NebiusProfile, cache_key, load_nebius_profile

from .conftest import NEBIUS_HINT, import_or_fail

DEV = {
    "auth-type": "federation",
    "federation-endpoint": "auth.dev.example.com",
    "federation-id": "federation-e00dev",
    "parent-id": "project-e00xyz",
}
PROD = {
    "auth-type": "federation",
    "federation-endpoint": "https://auth.example.com:443",
    "federation-id": "federation-e00prod",
}
SERVICE = {"auth-type": "service account", "service-account-id": "serviceaccount-e00x"}


def write_config(tmp_path: Path, doc) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def config(tmp_path) -> str:
    return write_config(
        tmp_path, {"default": "dev", "profiles": {"dev": DEV, "prod": PROD, "sa": SERVICE}}
    )


def test_explicit_profile_wins(config, monkeypatch):
    monkeypatch.setenv("NEBIUS_PROFILE", "dev")
    assert load_nebius_profile("prod", config) == NebiusProfile(
        name="prod",
        federation_endpoint="https://auth.example.com:443",  # verbatim: it is the cache key
        federation_id="federation-e00prod",
    )


def test_environment_variable_beats_default(config, monkeypatch):
    monkeypatch.setenv("NEBIUS_PROFILE", "prod")
    assert load_nebius_profile(config_file=config).name == "prod"


def test_empty_environment_variable_is_ignored(config, monkeypatch):
    monkeypatch.setenv("NEBIUS_PROFILE", "")
    assert load_nebius_profile(config_file=config).name == "dev"


def test_default_key_is_used(config):
    assert load_nebius_profile(config_file=config).name == "dev"


def test_the_only_profile_is_used_without_default(tmp_path):
    config = write_config(tmp_path, {"profiles": {"solo": PROD}})
    assert load_nebius_profile(config_file=config).name == "solo"


def test_several_profiles_without_a_choice_is_an_error_listing_them(tmp_path):
    config = write_config(tmp_path, {"profiles": {"dev": DEV, "prod": PROD}})
    with pytest.raises(ConfigurationError, match=r"dev, prod.*NEBIUS_PROFILE"):
        load_nebius_profile(config_file=config)


def test_default_path_is_under_home_at_call_time(isolated_env):
    nebius = isolated_env / ".nebius"
    nebius.mkdir()
    (nebius / "config.yaml").write_text(yaml.safe_dump({"profiles": {"me": DEV}}))
    assert load_nebius_profile().federation_id == "federation-e00dev"


def test_cache_key_matches_the_nebius_sdk(config):
    profile = load_nebius_profile("prod", config)
    assert profile.cache_key == cache_key(
        "https://auth.example.com:443", "federation-e00prod", "prod"
    )
    assert profile.cache_key == "federation/https://auth.example.com:443/federation-e00prod/prod"


def test_profile_is_frozen(config):
    profile = load_nebius_profile(config_file=config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]


def test_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigurationError, match=r"not found.*nebius profile create"):
        load_nebius_profile(config_file=str(tmp_path / "nope.yaml"))


def test_unknown_profile_lists_the_available_ones(config):
    with pytest.raises(ConfigurationError, match=r"'staging' not found.*available: dev, prod, sa"):
        load_nebius_profile("staging", config)


def test_unknown_profile_from_the_environment_says_so(config, monkeypatch):
    monkeypatch.setenv("NEBIUS_PROFILE", "staging")
    with pytest.raises(ConfigurationError, match=r"'staging' \(from \$NEBIUS_PROFILE\)"):
        load_nebius_profile(config_file=config)


def test_non_federation_profile_is_rejected_with_its_auth_type(config):
    with pytest.raises(ConfigurationError, match=r"not a federation profile.*'service account'"):
        load_nebius_profile("sa", config)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"federation-endpoint": "e", "federation-id": "i"}, "auth-type is not set"),
        ({"auth-type": "federation", "federation-id": "i"}, "no federation-endpoint"),
        (
            {"auth-type": "federation", "federation-endpoint": "", "federation-id": "i"},
            "no federation-endpoint",
        ),
        (
            {"auth-type": "federation", "federation-endpoint": 5, "federation-id": "i"},
            "no federation-endpoint",
        ),
        ({"auth-type": "federation", "federation-endpoint": "e"}, "no federation-id"),
        (
            {"auth-type": "federation", "federation-endpoint": "e", "federation-id": 7},
            "no federation-id",
        ),
        ("just a string", "is not a mapping"),
    ],
)
def test_incomplete_profiles_are_rejected_clearly(tmp_path, profile, message):
    config = write_config(tmp_path, {"profiles": {"p": profile}})
    with pytest.raises(ConfigurationError, match=message):
        load_nebius_profile("p", config)


def test_empty_federation_id_is_allowed(tmp_path):
    config = write_config(
        tmp_path,
        {
            "profiles": {
                "p": {"auth-type": "federation", "federation-endpoint": "e", "federation-id": ""}
            }
        },
    )
    assert load_nebius_profile(config_file=config).federation_id == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("profiles: [unclosed\n  secret-looking-value: {\n", r"not valid YAML \(line \d+\)"),
        ("- a\n- b\n", "does not hold a YAML mapping"),
        ("default: dev\n", "has no profiles"),
        ("profiles: {}\n", "has no profiles"),
        ("profiles: [a, b]\n", "has no profiles"),
    ],
)
def test_malformed_files_are_rejected_without_quoting_them(tmp_path, content, message):
    config = write_config(tmp_path, content)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_nebius_profile(config_file=config)
    assert "secret-looking-value" not in str(caught.value)


def test_agrees_with_the_nebius_sdk_on_which_profile_is_chosen(config, monkeypatch):
    cli_config = import_or_fail("nebius.aio.cli_config", NEBIUS_HINT)
    for env in (None, "prod"):
        if env is None:
            monkeypatch.delenv("NEBIUS_PROFILE", raising=False)
        else:
            monkeypatch.setenv("NEBIUS_PROFILE", env)
        theirs = cli_config.Config(client_id="c", config_file=config, no_parent_id=True)
        assert load_nebius_profile(config_file=config).name == theirs.profile_name()
