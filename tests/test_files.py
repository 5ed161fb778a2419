"""Every file fedbearer reads is bounded, typed and private (issue #19, findings 2, 3, 7).

A file at a path fedbearer reads can be a trap: a YAML alias bomb, nesting deep enough to
exhaust the stack, a FIFO that never answers, a link to /dev/zero, a file of 100 MB, or a
file someone else could write. Each is refused: a ConfigurationError naming the file (for
the token cache, a warning and a miss), never a hang, RecursionError or MemoryError. The
timeouts below guard the hangs these tests used to be (pytest-timeout; nothing is timed).
"""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
import warnings

import pytest
import yaml

from fedbearer import (
    ConfigurationError,
    FederationAuth,
    FileTokenCache,
    Token,
    TokenCacheWarning,
    load_nebius_profile,
)
from fedbearer._cli import main
from fedbearer._profiles import RememberedProfile, load_profiles, remember_profile

from .conftest import skip_or_fail

KEY = "federation/auth.example.com/fed/default"
# Nine levels of ten: 10^9 items when expanded, in a few hundred bytes.
BOMB = "\n".join(
    ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
)
DEEP = "[" * 100_000 + "]" * 100_000
OTHER_UID = 65534  # nobody


def caught(fn, *args):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [str(w.message) for w in seen if issubclass(w.category, TokenCacheWarning)]


def profiles_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "config" / "profiles.yaml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def nebius_config(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "nebius" / "config.yaml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return str(path)


FEDERATION_PROFILE = (
    "profiles:\n  dev:\n    auth-type: federation\n"
    "    federation-endpoint: auth.example.com\n    federation-id: fed\n"
)
ISSUER_PROFILE = (
    "profiles:\n  kc:\n    client_id: cli\n    issuer: https://sso.example.com\n"
    "    scopes: [openid]\n"
)


def cache_with_token(tmp_path, token: str = "planted-token"):  # noqa: S107 - a test value
    path = tmp_path / "nebius" / "credentials.yaml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(yaml.safe_dump({"tokens": {KEY: {"token": token, "expires_at": None}}}))
    path.chmod(0o600)
    return path


def owned_by_someone_else(path, monkeypatch) -> None:
    """Make ``path`` another user's: chown as root (the check compares with the effective
    uid), or, without root, make this process look like another user."""
    if os.geteuid() == 0:
        os.chown(path, OTHER_UID, -1)
    else:
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)


def peak_bytes(fn, *args):
    """(result or exception, peak bytes allocated by Python while ``fn`` ran)."""
    tracemalloc.start()
    try:
        try:
            result = fn(*args)
        except Exception as exc:  # returned for the caller to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ alias bombs, deep nesting


@pytest.mark.timeout(30)
def test_an_alias_bomb_in_the_scopes_of_profiles_yaml_is_refused(tmp_path):
    text = BOMB + "\n" + ISSUER_PROFILE.replace("[openid]", "*l9")
    path = profiles_file(tmp_path, text)
    with pytest.raises(ConfigurationError, match="anchors or aliases") as raised:
        FederationAuth.from_profile("kc", profiles_file=path)
    assert path in str(raised.value)


@pytest.mark.timeout(30)
def test_an_alias_bomb_in_the_auth_type_of_the_nebius_config_is_refused(tmp_path):
    text = BOMB + "\n" + FEDERATION_PROFILE.replace("federation\n", "*l9\n", 1)
    path = nebius_config(tmp_path, text)
    with pytest.raises(ConfigurationError, match="anchors or aliases") as raised:
        load_nebius_profile("dev", path)
    assert path in str(raised.value)


def test_a_harmless_alias_is_refused_too_no_file_needs_one(tmp_path):
    path = profiles_file(tmp_path, ISSUER_PROFILE.replace("[openid]", "&s [openid]"))
    with pytest.raises(ConfigurationError, match="anchors or aliases"):
        load_profiles(path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["profiles", "nebius"])
def test_100000_deep_nesting_is_a_configuration_error_not_a_recursion_error(tmp_path, where):
    if where == "profiles":
        path = profiles_file(tmp_path, f"default: {DEEP}\n")
        load = load_profiles
    else:
        path = nebius_config(tmp_path, f"profiles: {DEEP}\n")

        def load(p):
            return load_nebius_profile("dev", p)

    with pytest.raises(ConfigurationError) as raised:
        load(path)
    assert path in str(raised.value)


def test_nesting_a_little_deeper_than_any_real_file_is_refused_by_name(tmp_path):
    deep = "[" * 40 + "]" * 40
    path = profiles_file(tmp_path, f"default: {deep}\n")
    with pytest.raises(ConfigurationError, match="nests deeper than"):
        load_profiles(path)


def test_an_alias_bomb_in_the_token_cache_is_a_miss_with_a_warning(tmp_path):
    path = cache_with_token(tmp_path)
    path.write_text(BOMB + "\ntokens: {}\n")
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result is None
    assert len(seen) == 1 and "anchors or aliases" in seen[0] and str(path) in seen[0]


# ------------------------------------------------------------------ FIFOs, devices, huge files


@pytest.mark.timeout(20)
@pytest.mark.parametrize("where", ["profiles", "nebius"])
def test_a_fifo_at_a_settings_path_is_refused_at_once(tmp_path, where):
    path = tmp_path / where / "file.yaml"
    path.parent.mkdir(mode=0o700)
    os.mkfifo(path, 0o600)
    with pytest.raises(ConfigurationError, match="not a regular file") as raised:
        if where == "profiles":
            load_profiles(str(path))
        else:
            load_nebius_profile("dev", str(path))
    assert str(path) in str(raised.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_device_at_the_cache_path_is_a_miss_with_a_warning(tmp_path, kind):
    path = tmp_path / "nebius" / "credentials.yaml"
    path.parent.mkdir(mode=0o700)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.symlink_to("/dev/zero")
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result is None and len(seen) == 1 and "not a regular file" in seen[0]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_device_at_the_journal_path_is_ignored_and_removed(tmp_path, kind):
    path = cache_with_token(tmp_path, "good-token")
    journal = tmp_path / "nebius" / "credentials.yaml.fedbearer-journal"
    if kind == "fifo":
        os.mkfifo(journal, 0o600)
    else:
        journal.symlink_to("/dev/zero")
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result is not None and result.token == "good-token" and seen == []
    assert not os.path.lexists(journal)  # junk: removed by the lock holder


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["profiles", "nebius"])
def test_a_link_to_dev_zero_is_refused_without_reading_it(tmp_path, where):
    path = tmp_path / where / "file.yaml"
    path.parent.mkdir(mode=0o700)
    path.symlink_to("/dev/zero")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        if where == "profiles":
            load_profiles(str(path))
        else:
            load_nebius_profile("dev", str(path))


def test_a_100_mb_nebius_config_is_refused_after_reading_one_chunk_past_the_cap(tmp_path):
    path = nebius_config(tmp_path, FEDERATION_PROFILE)
    with open(path, "r+b") as fh:
        fh.truncate(100 << 20)  # sparse: 100 MB to read, none on disk
    result, peak = peak_bytes(load_nebius_profile, "dev", path)
    assert isinstance(result, ConfigurationError) and "larger than" in str(result)
    assert path in str(result)
    assert peak < 8 << 20  # not the 100 MB


def test_a_50_mb_journal_costs_no_memory_and_the_cache_still_works(tmp_path):
    path = cache_with_token(tmp_path, "good-token")
    journal = tmp_path / "nebius" / "credentials.yaml.fedbearer-journal"
    with open(journal, "wb") as fh:
        fh.write(b"fedbearer-journal 1\n%d %d\n" % (25 << 20, 25 << 20))
        fh.truncate((50 << 20) + 40)
    journal.chmod(0o600)
    read = [0]
    real_read = os.read

    def counting_read(fd, n):
        data = real_read(fd, n)
        read[0] += len(data)
        return data

    cache = FileTokenCache(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "read", counting_read)
        (result, seen), peak = peak_bytes(caught, cache.get, KEY)
    assert result is not None and result.token == "good-token" and seen == []
    assert read[0] < 8 << 20 and peak < 16 << 20  # neither the 50 MB nor twice that


# ------------------------------------------------------------------ ownership and mode


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_profiles_file_others_may_write_is_refused_naming_the_chmod(tmp_path, mode):
    text = ISSUER_PROFILE.replace("client_id: cli", "client_id: cli\n    allow_insecure_http: true")
    path = profiles_file(tmp_path, text, mode)
    with pytest.raises(ConfigurationError) as raised:
        FederationAuth.from_profile("kc", profiles_file=path)
    message = str(raised.value)
    assert path in message and f"chmod go-w {path}" in message and f"{mode:04o}" in message


def test_a_profiles_file_owned_by_another_user_is_refused_naming_the_chown(tmp_path, monkeypatch):
    path = profiles_file(tmp_path, ISSUER_PROFILE)
    owned_by_someone_else(path, monkeypatch)
    with pytest.raises(ConfigurationError, match="another user") as raised:
        load_profiles(path)
    assert f"chown {os.geteuid()} {path}" in str(raised.value)


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_settings_file_in_a_directory_others_may_write_is_refused(tmp_path, mode):
    path = nebius_config(tmp_path, FEDERATION_PROFILE)
    directory = os.path.dirname(path)
    os.chmod(directory, mode)
    with pytest.raises(ConfigurationError) as raised:
        load_nebius_profile("dev", path)
    assert path in str(raised.value) and f"chmod go-w {directory}" in str(raised.value)


def test_a_directory_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        skip_or_fail("needs root to give a directory away (CI runs as root)")
    path = nebius_config(tmp_path, FEDERATION_PROFILE)
    os.chown(os.path.dirname(path), OTHER_UID, -1)
    with pytest.raises(ConfigurationError, match="another user"):
        load_nebius_profile("dev", path)


def test_the_walk_stops_at_the_home_directory_as_ssh_does(tmp_path, monkeypatch):
    outer = tmp_path / "shared"
    outer.mkdir()
    outer.chmod(0o777)  # not sticky: anyone could rename the home directory away
    home = outer / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    path = profiles_file(home, ISSUER_PROFILE)
    assert load_profiles(path).get("kc").client_id == "cli"  # above home is not checked
    (outer / "elsewhere").mkdir(mode=0o700)
    outside = profiles_file(outer / "elsewhere", ISSUER_PROFILE)
    with pytest.raises(ConfigurationError, match=f"chmod go-w {outer}"):
        load_profiles(outside)  # outside home, the walk goes on up and finds it


def test_a_file_outside_home_is_checked_up_to_a_sticky_directory(tmp_path, monkeypatch):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: only an entry's owner may rename it
    mine = sticky / "mine"
    mine.mkdir(mode=0o700)
    path = profiles_file(mine, ISSUER_PROFILE)
    assert load_profiles(path).get("kc").client_id == "cli"
    sticky.chmod(0o777)  # the same without the sticky bit: mine/ could be swapped
    with pytest.raises(ConfigurationError, match=f"chmod go-w {sticky}"):
        load_profiles(path)


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_planted_token_in_a_cache_others_may_write_is_not_used(tmp_path, mode):
    path = cache_with_token(tmp_path)
    path.chmod(mode)
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result is None
    assert len(seen) == 1 and f"chmod go-w {path}" in seen[0]
    _, seen = caught(FileTokenCache(path).put, KEY, Token("mine", None))
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert "planted-token" in path.read_text()  # refused both ways until the user fixes it


def test_a_planted_token_in_a_cache_owned_by_another_user_is_not_used(tmp_path, monkeypatch):
    path = cache_with_token(tmp_path)
    owned_by_someone_else(path, monkeypatch)
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result is None and len(seen) == 1 and "chown" in seen[0] and str(path) in seen[0]


def test_the_planted_token_never_reaches_the_cli(tmp_path, capsys):
    path = cache_with_token(tmp_path)
    path.chmod(0o646)
    args = ["token", "--client-id", "c", "--federation-endpoint", "auth.example.com"]
    args += ["--federation-id", "fed", "--cache-file", str(path), "--non-interactive"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args)
    out = capsys.readouterr()
    assert code != 0 and "planted-token" not in out.out + out.err


def test_the_nebius_sdk_layout_is_accepted(tmp_path, monkeypatch):
    """~/.nebius 0750 with credentials.yaml 0600 (the reference's modes) keeps working."""
    monkeypatch.setenv("HOME", str(tmp_path))
    path = cache_with_token(tmp_path, "sdk-token")
    path.parent.chmod(0o750)
    result, seen = caught(FileTokenCache(path).get, KEY)
    assert result.token == "sdk-token" and seen == []


# ------------------------------------------------------------------ finding 7: the smaller ones


@pytest.mark.parametrize("target_content", [None, b""], ids=["missing", "empty"])
def test_a_cache_symlink_to_a_missing_or_empty_file_is_never_written(tmp_path, target_content):
    target = tmp_path / "elsewhere" / "notes.txt"
    target.parent.mkdir()
    if target_content is not None:
        target.write_bytes(target_content)
        target.chmod(0o600)
    link = tmp_path / "nebius" / "credentials.yaml"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(target)
    _, seen = caught(FileTokenCache(link).put, KEY, Token("secret-token", None))
    if target_content is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == target_content
    assert link.is_symlink() and len(seen) == 1 and "symbolic link" in seen[0]
    assert "secret-token" not in seen[0]


def test_a_dangling_symlink_at_the_profiles_lock_never_creates_its_target(tmp_path):
    directory = tmp_path / "config"
    directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    (directory / ".profiles.lock").symlink_to(target)
    with pytest.raises(ConfigurationError, match="lock"):
        remember_profile(
            RememberedProfile("p", "cid", "auth.example.com", "fed"),
            str(directory / "profiles.yaml"),
        )
    assert not os.path.lexists(target)


def test_a_dangling_symlink_at_a_login_lock_never_creates_its_target(tmp_path):
    cache = FileTokenCache(tmp_path / "nebius" / "credentials.yaml")
    (tmp_path / "nebius").mkdir(mode=0o700)
    target = tmp_path / "victim"
    with cache.login_lock(KEY, 1) as probe:
        assert probe
    (lock,) = (tmp_path / "nebius").glob(".fedbearer-login-*.lock")
    lock.unlink()
    lock.symlink_to(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cache.login_lock(KEY, 1) as held:
            assert not held
    assert not os.path.lexists(target)


def test_status_escapes_terminal_sequences_in_cache_keys(tmp_path, capsys):
    path = tmp_path / "credentials.yaml"
    FileTokenCache(path).put("federation/x\x1b]0;pwned\x07\x1b[2J/y/z", Token("t", None))
    assert main(["status", "--cache-file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out


@pytest.mark.parametrize("client_id", ["app\nX-Evil: 1", "app\r", "a\x1bb", "x" * 2049])
def test_a_client_id_the_profiles_reader_would_refuse_is_refused_by_federation_auth(
    tmp_path, client_id
):
    with pytest.raises(ConfigurationError, match="client_id must be printable"):
        FederationAuth(client_id, "https://auth.example.com", "fed", writer=io.StringIO())
    path = profiles_file(
        tmp_path,
        yaml.safe_dump(
            {
                "profiles": {
                    "p": {
                        "client_id": client_id,
                        "federation_endpoint": "auth.example.com",
                        "federation_id": "fed",
                    }
                }
            }
        ),
    )
    with pytest.raises(ConfigurationError, match="client_id"):
        load_profiles(path)
