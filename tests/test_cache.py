"""The token cache: format, modes, faults, crash safety and cross-process login locking.

Real files under tmp_path and real subprocesses; nothing is mocked below the os module.
Interoperability with the real ``nebius`` package lives in test_cache_interop.py. The
cross-process login tests run for the OS keyring cache too (``shared_cache``), through a
keyring backend the processes share; the rest of it is in test_keyring.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

import fedbearer
from fedbearer import (
    FileTokenCache,
    KeyringTokenCache,
    MemoryTokenCache,
    NoTokenCache,
    Token,
    TokenCache,
    TokenCacheWarning,
    _cache,
    cache_key,
    default_cache,
)
from fedbearer._cache import provider_cache, provider_cache_file, provider_cache_key

from .conftest import skip_or_fail
from .keyring_backends import DirectoryKeyring

REPO = Path(__file__).resolve().parent.parent
KEY = "federation/auth.example.com/federation-e00test/default"
SECRET = "eyJSECRET.token-value.sig"


def future(seconds: float = 3600) -> datetime:
    return datetime.fromtimestamp(int(time.time() + seconds), tz=timezone.utc)


def tok(value: str = SECRET, seconds: float = 3600, **kw) -> Token:
    return Token(value, future(seconds), **kw)


@pytest.fixture
def cache(path) -> FileTokenCache:
    return FileTokenCache(path, lock_timeout=2)


def write_yaml(path: Path, doc) -> None:
    """Write ``doc`` as the other tools do: a private (0600) file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


def read_yaml(path: Path):
    return yaml.safe_load(path.read_bytes())


def age(path: Path) -> None:
    """Backdate the file: an empty or broken file written a moment ago gets a short grace
    period to settle (a writer's data may still be on its way); one found later does not."""
    old = time.time() - 3600
    os.utime(path, (old, old))


def journal_of(path: Path) -> Path:
    return Path(str(path.resolve()) + ".fedbearer-journal")


# Forked children start in milliseconds with everything already imported; they are real
# processes with their own file descriptors, which is all flock cares about.
FORK = multiprocessing.get_context("fork")


def in_child(target, *args) -> multiprocessing.Process:
    proc = FORK.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


# --------------------------------------------------------------------------- API basics


def test_cache_key_keeps_configured_strings_verbatim():
    assert cache_key("auth.example.com:443", "fed-1", "dev") == (
        "federation/auth.example.com:443/fed-1/dev"
    )
    with pytest.warns(TokenCacheWarning, match="trailing '/'"):
        assert cache_key("https://a.example/", "", "p") == "federation/https://a.example///p"


PROVIDER = {"client_id": "cli", "profile": "default", "issuer": "https://kc.example.com/realms/x"}


def test_provider_cache_key_is_readable_and_splits_one_way():
    key = provider_cache_key(**PROVIDER, scopes=("openid", "profile"))
    prefix, host, digest, profile = key.split("/")
    assert (prefix, host, profile) == ("oidc", "kc.example.com", "default")
    assert len(digest) == 32 and set(digest) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"scopes": ("profile", "openid")}, True),  # a set: order does not matter
        ({"scopes": ("openid", "profile", "profile")}, True),
        ({"scopes": ("openid",)}, False),
        ({"scopes": ("openid", "profile", "email")}, False),
        ({"client_id": "other"}, False),
        ({"issuer": "https://kc.example.com/realms/y"}, False),
        ({"issuer": "https://kc.example.com/realms/x/"}, False),
        ({"params": (("audience", "api"),)}, False),
        ({"profile": "dev"}, False),
        (
            {
                "authorization_endpoint": "https://kc.example.com/a",
                "token_endpoint": "https://kc.example.com/t",
            },
            False,
        ),
    ],
)
def test_provider_cache_key_changes_with_everything_the_token_is_for(change, same):
    base = provider_cache_key(**PROVIDER, scopes=("openid", "profile"))
    changed = provider_cache_key(**{**PROVIDER, "scopes": ("openid", "profile"), **change})
    assert (changed == base) is same


def test_provider_cache_key_cannot_be_forged_by_joining_fields():
    # Every field is hashed as JSON, so moving text from one field to another changes it.
    one = provider_cache_key("a b", "p", issuer="https://x.example", scopes=("c",))
    two = provider_cache_key("a", "p", issuer="https://x.example", scopes=("b", "c"))
    assert one != two


@pytest.mark.parametrize("profile", ["a/b", "line\nbreak"])
def test_provider_cache_key_refuses_an_ambiguous_profile(profile):
    with pytest.raises(fedbearer.ConfigurationError, match="profile"):
        provider_cache_key("cli", profile, issuer="https://x.example")


@pytest.mark.parametrize(
    ("xdg", "expected"),
    [
        (None, "{home}/.cache/fedbearer/tokens.yaml"),
        ("", "{home}/.cache/fedbearer/tokens.yaml"),
        ("relative/dir", "{home}/.cache/fedbearer/tokens.yaml"),  # never below the cwd
        ("/var/cache/me", "/var/cache/me/fedbearer/tokens.yaml"),
    ],
)
def test_provider_cache_file_follows_xdg_and_ignores_a_relative_one(
    monkeypatch, tmp_path, xdg, expected
):
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert provider_cache_file() == expected.format(home=tmp_path)


def test_provider_cache_is_a_private_file_of_its_own(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = provider_cache()
    cache.put("oidc/x/y/default", tok())
    path = tmp_path / ".cache" / "fedbearer" / "tokens.yaml"
    assert cache.path == str(path) and cache.get("oidc/x/y/default") == tok()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not (tmp_path / ".nebius").exists()


@pytest.mark.parametrize("factory", [FileTokenCache, MemoryTokenCache, NoTokenCache])
def test_every_cache_satisfies_the_protocol(factory):
    assert isinstance(factory(), TokenCache)


def test_construction_does_no_io(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("I/O in a constructor")

    for name in ("open", "stat", "lstat", "makedirs", "mkdir"):
        monkeypatch.setattr(os, name, boom)
    FileTokenCache()
    FileTokenCache("/nonexistent/x.yaml", lock_timeout=0)
    default_cache()
    provider_cache()
    MemoryTokenCache()
    NoTokenCache()


def test_default_path_follows_home_at_each_use(monkeypatch, tmp_path):
    cache = default_cache()
    monkeypatch.setenv("HOME", str(tmp_path / "one"))
    assert cache.path == str(tmp_path / "one" / ".nebius" / "credentials.yaml")
    monkeypatch.setenv("HOME", str(tmp_path / "two"))
    assert cache.path == str(tmp_path / "two" / ".nebius" / "credentials.yaml")
    cache.put(KEY, tok())
    assert (tmp_path / "two" / ".nebius" / "credentials.yaml").is_file()


def test_reprs_show_no_tokens(cache):
    mem = MemoryTokenCache()
    mem.put(KEY, tok())
    cache.put(KEY, tok())
    for obj in (cache, mem, NoTokenCache()):
        assert SECRET not in repr(obj)


def test_negative_timeouts_are_rejected(cache):
    with pytest.raises(ValueError):
        FileTokenCache(lock_timeout=-1)
    with pytest.raises(ValueError):
        cache.login_lock(KEY, -0.5)
    with pytest.raises(ValueError):
        MemoryTokenCache().login_lock(KEY, -1)


# --------------------------------------------------------------------------- format


def test_put_then_get_round_trips_token_expiry_and_refresh_token(cache, path):
    stored = tok(refresh_token="refresh-1")
    cache.put(KEY, stored)
    got = cache.get(KEY)
    assert got == stored
    assert got.refresh_token == "refresh-1"
    entry = read_yaml(path)["tokens"][KEY]
    assert entry == {
        "token": SECRET,
        "expires_at": int(stored.expires_at),
        "refresh_token": "refresh-1",
    }
    assert type(entry["expires_at"]) is int  # the Nebius SDK rejects floats


def test_token_without_expiry_is_stored_as_null_and_read_back(cache, path):
    cache.put(KEY, Token(SECRET, None))
    assert read_yaml(path)["tokens"][KEY]["expires_at"] is None
    assert cache.get(KEY) == Token(SECRET, None)


def test_get_returns_expired_entries_too_for_their_refresh_token(cache, path):
    now = int(time.time())
    write_yaml(
        path,
        {
            "tokens": {
                "old": {"token": "a", "expires_at": now - 1, "refresh_token": "r"},
                "soon": {"token": "b", "expires_at": now + 5},
            }
        },
    )
    old = cache.get("old")
    assert old.token == "a" and old.refresh_token == "r" and old.is_expired(margin=0)
    assert cache.get("soon").token == "b"  # the refresh margin is the caller's business
    assert cache.get("absent") is None


def test_get_and_entries_return_expired_entries(cache, path, monkeypatch):
    write_yaml(path, {"tokens": {KEY: {"token": "a", "expires_at": 2000}}})
    monkeypatch.setattr(fedbearer._clock, "now", lambda: 2000.0)
    assert cache.get(KEY).token == "a"
    assert [k for k, _ in cache.entries()] == [KEY]


def test_unknown_top_level_and_entry_keys_survive_a_rewrite(cache, path):
    write_yaml(
        path,
        {
            "version": 3,
            "settings": {"colour": "blue"},
            "tokens": {
                KEY: {
                    "token": "old",
                    "expires_at": None,
                    "refresh_token": "old-refresh",
                    "x-tool-note": "keep me",
                },
                "service-account/x": {"token": "sa", "expires_at": 0, "issuer": "other"},
            },
        },
    )
    stored = tok()
    cache.put(KEY, stored)
    doc = read_yaml(path)
    assert doc["version"] == 3
    assert doc["settings"] == {"colour": "blue"}
    # our entry: token fields replaced as a whole (no stale refresh token), extras kept
    assert doc["tokens"][KEY] == {
        "token": SECRET,
        "expires_at": stored.expires_at,
        "x-tool-note": "keep me",
    }
    assert doc["tokens"]["service-account/x"] == {"token": "sa", "expires_at": 0, "issuer": "other"}


def test_put_replaces_issued_at_with_the_new_tokens_or_removes_it(cache, path):
    """``issued_at`` belongs to the token: a new token must neither inherit the old one's
    (it would halve the new token's refresh margin cap wrongly) nor lose its own."""
    issued_old = datetime.fromtimestamp(int(time.time()) - 100, tz=timezone.utc)
    issued_new = datetime.fromtimestamp(int(time.time()), tz=timezone.utc)
    write_yaml(
        path,
        {"tokens": {KEY: {"token": "old", "expires_at": None, "x-note": "keep me"}}},
    )
    cache.put(KEY, tok("old", issued_at=issued_old))
    cache.put(KEY, tok("new", issued_at=issued_new))
    assert read_yaml(path)["tokens"][KEY]["issued_at"] == int(issued_new.timestamp())
    assert cache.get(KEY).issued_at == issued_new
    cache.put(KEY, tok("newer"))  # no issued_at: the old one must not survive
    entry = read_yaml(path)["tokens"][KEY]
    assert "issued_at" not in entry
    assert entry["x-note"] == "keep me"
    assert cache.get(KEY).issued_at is None


def test_rewrite_keeps_expired_entries_that_have_a_refresh_token(cache, path):
    """An expired access token with a refresh token still renews without a browser (a cron
    job hours later), so no rewrite, for any key, may drop it."""
    now = int(time.time())
    write_yaml(
        path,
        {
            "tokens": {
                "cron": {"token": "a", "expires_at": now - 3600, "refresh_token": "r"},
                "empty-refresh": {"token": "b", "expires_at": now - 10, "refresh_token": ""},
                "bad-refresh": {"token": "c", "expires_at": now - 10, "refresh_token": 5},
                "bad-expiry": {"token": "d", "expires_at": "soon", "refresh_token": "r"},
            }
        },
    )
    cache.put(KEY, tok())
    assert list(read_yaml(path)["tokens"]) == ["cron", KEY]
    assert cache.get("cron").refresh_token == "r"
    # storing an already-expired token that can be refreshed keeps it too
    expired = Token("x", future(-60), refresh_token="still-valid-refresh")
    cache.put("other", expired)
    assert cache.get("other") == expired
    cache.remove(KEY)
    assert list(read_yaml(path)["tokens"]) == ["cron", "other"]


def test_rewrite_drops_expired_and_unreadable_entries_and_keeps_non_expiring(cache, path):
    now = int(time.time())
    write_yaml(
        path,
        {
            "tokens": {
                "expired": {"token": "a", "expires_at": now - 10},
                "null-expiry": {"token": "b", "expires_at": None},
                "zero-expiry": {"token": "c", "expires_at": 0},
                "no-expiry-key": {"token": "d"},
                "float-expiry": {"token": "e", "expires_at": now + 100.5},
                "empty-token": {"token": "", "expires_at": now + 100},
                "not-a-mapping": "just a string",
                "valid": {"token": "f", "expires_at": now + 100},
            }
        },
    )
    cache.put(KEY, tok())
    assert list(read_yaml(path)["tokens"]) == [
        "null-expiry",
        "zero-expiry",
        "no-expiry-key",
        "valid",
        KEY,
    ]


def test_remove_deletes_only_that_entry(cache, path):
    cache.put(KEY, tok())
    cache.put("other", tok("other-token"))
    cache.remove(KEY)
    assert cache.get(KEY) is None
    assert cache.get("other").token == "other-token"


def test_remove_of_an_absent_key_leaves_the_file_byte_identical(cache, path):
    path.parent.mkdir(parents=True)
    original = b"# a comment someone cares about\ntokens:\n  other: {token: t, expires_at: null}\n"
    path.write_bytes(original)
    cache.remove(KEY)
    assert path.read_bytes() == original


def test_remove_without_a_file_creates_nothing(cache, path):
    cache.remove(KEY)
    assert not path.parent.exists()


def test_get_never_writes(cache, path):
    now = int(time.time())
    write_yaml(path, {"tokens": {"expired": {"token": "a", "expires_at": now - 10}}})
    before = path.read_bytes()
    assert cache.get("expired").token == "a"
    assert cache.get("absent") is None
    assert path.read_bytes() == before


def test_entries_lists_readable_entries_in_file_order(cache, path):
    write_yaml(
        path,
        {"tokens": {"b": {"token": "1"}, "bad": {"token": 5}, "a": {"token": "2"}}},
    )
    assert [(k, t.token) for k, t in cache.entries()] == [("b", "1"), ("a", "2")]


# --------------------------------------------------------------------------- modes


def test_created_file_is_0600_in_a_0700_directory(cache, path):
    old = os.umask(0o002)  # a permissive umask must not widen what we create
    try:
        cache.put(KEY, tok())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_existing_private_file_keeps_its_mode(cache, path, mode):
    write_yaml(path, {"tokens": {}})
    path.chmod(mode)
    path.parent.chmod(0o755)
    _, seen = caught(cache.put, KEY, tok())
    assert seen == []
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert cache.get(KEY) is not None


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604])
def test_a_file_others_can_read_is_made_private_before_a_token_goes_in(cache, path, mode):
    write_yaml(path, {"tokens": {}})
    path.chmod(mode)
    _, seen = caught(cache.put, KEY, tok())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(seen) == 1
    message = str(seen[0].message)
    assert str(path) in message and f"{mode:04o}" in message and "0600" in message
    assert cache.get(KEY) is not None
    _, again = caught(cache.put, KEY, tok("second"))
    assert again == []  # private now: nothing more to say


def test_the_file_keeps_its_inode_and_symlinks_stay_symlinks(tmp_path):
    target = tmp_path / "dotfiles" / "credentials.yaml"
    write_yaml(target, {"tokens": {}})
    link = tmp_path / "nebius" / "credentials.yaml"
    link.parent.mkdir()
    link.symlink_to(target)
    inode = target.stat().st_ino
    FileTokenCache(link).put(KEY, tok())
    assert link.is_symlink()
    assert target.stat().st_ino == inode  # rewritten in place, never replaced
    assert read_yaml(target)["tokens"][KEY]["token"] == SECRET


# --------------------------------------------------------------------------- faults


def caught(fn, *args):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [w for w in seen if issubclass(w.category, TokenCacheWarning)]


CORRUPT = {
    "not-yaml": b"tokens: [unclosed\n  " + SECRET.encode() + b": {\n",
    "not-a-mapping": b"- " + SECRET.encode() + b"\n- b\n",
    "tokens-not-a-mapping": b"tokens: " + SECRET.encode() + b"\n",
    "binary": b"\xff\xfe\x00garbage" + SECRET.encode(),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_file_is_a_miss_warned_once_without_content_then_repaired(cache, path, content):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(0o600)
    age(path)
    result, seen = caught(cache.get, KEY)
    assert result is None
    assert len(seen) == 1
    message = str(seen[0].message)
    assert str(path) in message
    assert SECRET not in message and "unclosed" not in message
    _, again = caught(cache.get, KEY)
    assert again == []  # once per file and kind of fault

    fresh = tok("fresh")
    _, seen = caught(cache.put, KEY, fresh)  # the next successful write is the repair
    backups = list(path.parent.glob(path.name + ".unreadable-*"))
    assert len(backups) == 1  # ... after every byte of the old file was kept aside
    assert backups[0].read_bytes() == content
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert len(seen) == 1 and str(backups[0]) in str(seen[0].message)
    assert read_yaml(path) == {"tokens": {KEY: {"token": "fresh", "expires_at": fresh.expires_at}}}
    assert cache.get(KEY).token == "fresh"


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n", b"tokens:\n"])
def test_empty_file_is_a_silent_miss(cache, path, content):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(0o600)
    age(path)
    assert caught(cache.get, KEY) == (None, [])
    cache.put(KEY, tok())
    assert cache.get(KEY) is not None


def test_a_file_emptied_a_moment_ago_gets_a_bounded_moment_to_settle(cache, path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # as another writer leaves it between its truncate and its flush
    started = time.monotonic()
    assert caught(cache.get, KEY) == (None, [])
    # It waited for the writer's data, and then stopped waiting (a hang would hit the
    # suite's per-test time limit).
    assert time.monotonic() - started >= _cache._SETTLE_WAIT

    def late_flush():
        time.sleep(0.05)
        write_yaml(path, {"tokens": {KEY: {"token": "late", "expires_at": None}}})

    writer = threading.Thread(target=late_flush)
    writer.start()
    try:
        assert cache.get(KEY).token == "late"  # waited for it instead of reporting a miss
    finally:
        writer.join()


def test_creating_the_file_does_not_wait_for_it_to_settle(cache, path, monkeypatch):
    naps = []
    monkeypatch.setattr(_cache.time, "sleep", naps.append)
    cache.put(KEY, tok())  # new and empty because we created it, not a writer mid-flush
    assert naps == []
    assert cache.get(KEY) is not None


def test_missing_file_is_a_silent_miss(cache):
    assert caught(cache.get, KEY) == (None, [])
    assert caught(cache.entries) == ([], [])


@pytest.mark.parametrize(
    "entry",
    [
        {"token": 12345, "expires_at": None},
        {"token": SECRET, "expires_at": "tomorrow"},
        {"token": SECRET, "expires_at": None, "refresh_token": ["x"]},
        [SECRET],
    ],
)
def test_entry_with_wrong_types_is_a_miss_and_other_entries_still_read(cache, path, entry):
    write_yaml(path, {"tokens": {KEY: entry, "other": {"token": "ok", "expires_at": None}}})
    result, seen = caught(cache.get, KEY)
    assert result is None
    assert len(seen) == 1 and SECRET not in str(seen[0].message)
    assert cache.get("other").token == "ok"


def test_a_directory_in_place_of_the_file_is_a_miss_and_a_skipped_write(cache, path):
    path.mkdir(parents=True)
    result, seen = caught(cache.get, KEY)
    assert result is None and len(seen) == 1
    _, seen = caught(cache.put, KEY, tok())
    assert len(seen) == 1
    assert path.is_dir()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_place_of_the_file_is_a_miss_not_a_hang(cache, path):
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    result, seen = caught(cache.get, KEY)
    assert result is None and len(seen) == 1 and "not a regular file" in str(seen[0].message)


def test_a_regular_file_in_place_of_the_directory_is_a_skipped_write(tmp_path):
    blocker = tmp_path / "nebius"
    blocker.write_text("not a directory")
    cache = FileTokenCache(blocker / "credentials.yaml")
    result, seen = caught(cache.get, KEY)
    assert result is None and len(seen) == 1
    _, seen = caught(cache.put, KEY, tok())
    assert len(seen) == 1 and "not saved" in str(seen[0].message)
    assert blocker.read_text() == "not a directory"
    with caught_login_lock(cache) as held:
        assert held is False


class caught_login_lock:
    def __init__(self, cache):
        self.cm = cache.login_lock(KEY, 0)

    def __enter__(self):
        self.w = warnings.catch_warnings(record=True)
        self.seen = self.w.__enter__()
        warnings.simplefilter("always")
        return self.cm.__enter__()

    def __exit__(self, *exc):
        self.cm.__exit__(*exc)
        self.w.__exit__(*exc)
        assert any(issubclass(w.category, TokenCacheWarning) for w in self.seen)


def unprivileged_command() -> list[str]:
    """argv prefix that runs Python without root's permission bypass.

    Tests often run as root (CI does), and root reads a chmod-000 file and writes into a
    chmod-500 directory only because it holds CAP_DAC_OVERRIDE. setpriv(1) empties every
    capability set, the bounding set included, so neither the probe nor anything it runs can
    hold one again; it keeps uid 0, so it still reaches the interpreter and the test's files
    (both under 0700 directories of root's), and the kernel decides by the owner's permission
    bits as for any user. Unlike a user namespace this needs nothing the machine may forbid.
    """
    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_or_fail(
            "running as root without setpriv: permission faults cannot be produced"
            " (`apt-get install util-linux`, or run the tests as an ordinary user)"
        )
    command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", sys.executable]
    dropped = subprocess.run([*command, "-c", ""], capture_output=True, text=True, check=False)
    if dropped.returncode:
        skip_or_fail(f"running as root and setpriv cannot drop capabilities: {dropped.stderr}")
    return command


PROBE = """
import json, sys, warnings
from datetime import datetime, timezone
from fedbearer import FileTokenCache, TokenCacheWarning
from fedbearer import Token
cache = FileTokenCache(sys.argv[1], lock_timeout=1)
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    got = cache.get(sys.argv[2])
    cache.put("new-key", Token("new", datetime(2100, 1, 1, tzinfo=timezone.utc)))
print(json.dumps({
    "got": None if got is None else got.token,
    "warnings": [str(w.message) for w in seen if issubclass(w.category, TokenCacheWarning)],
}))
"""


def run_unprivileged_probe(path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [*unprivileged_command(), "-c", PROBE, str(path), KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_unreadable_file_is_a_miss_and_a_skipped_write(cache, path):
    cache.put(KEY, tok())
    before = path.read_bytes()
    path.chmod(0o000)
    result = run_unprivileged_probe(path)
    assert result["got"] is None
    read_warning, write_warning = result["warnings"]
    assert "permission denied" in read_warning and "without the cached token" in read_warning
    assert "permission denied" in write_warning and "not saved" in write_warning
    assert SECRET not in read_warning + write_warning
    path.chmod(0o600)
    assert path.read_bytes() == before


def test_read_only_directory_reads_but_skips_the_write(cache, path):
    cache.put(KEY, tok())
    before = path.read_bytes()
    path.parent.chmod(0o500)  # the file stays writable; its directory does not
    try:
        result = run_unprivileged_probe(path)
    finally:
        path.parent.chmod(0o700)
    assert result["got"] == SECRET
    assert len(result["warnings"]) == 1 and "not saved" in result["warnings"][0]
    assert path.read_bytes() == before  # not half-done: nothing at all
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.yaml"]


def test_read_only_directory_without_a_file_skips_the_write(tmp_path):
    directory = tmp_path / "nebius"
    directory.mkdir(mode=0o500)
    try:
        result = run_unprivileged_probe(directory / "credentials.yaml")
    finally:
        directory.chmod(0o700)
    assert result["got"] is None
    assert len(result["warnings"]) == 1
    assert list(directory.iterdir()) == []


def _hold_cache_lock(path, locked, release):
    import portalocker

    with open(path, "a") as fh:
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE)
        locked.set()
        release.wait(30)


def test_the_cache_lock_is_the_one_portalocker_takes_both_ways(path):
    """fedbearer calls flock itself (portalocker's import is slow); the Nebius Python SDK
    locks through portalocker. Each must find the other's lock held (flock locks belong
    to an open file, so two opens in one process conflict as two processes would)."""
    import portalocker

    from fedbearer import _cache

    FileTokenCache(path).put(KEY, tok())
    fd = _cache._acquire(str(path), os.O_RDWR, 1.0, 0.05)
    assert fd is not None
    try:
        with open(path, "a") as fh, pytest.raises(portalocker.AlreadyLocked):
            portalocker.lock(
                fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
    finally:
        _cache._unlock_close(fd)
    with open(path, "a") as fh:  # released: portalocker gets it, and then fedbearer does not
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        assert _cache._acquire(str(path), os.O_RDWR, 0.1, 0.05) is None
        portalocker.unlock(fh)
    assert FileTokenCache(path).get(KEY) is not None


def test_lock_timeout_is_a_miss_and_a_skipped_write(path):
    cache = FileTokenCache(path, lock_timeout=0.2)
    stored = tok()
    cache.put(KEY, stored)
    before = path.read_bytes()
    locked, release = FORK.Event(), FORK.Event()
    holder = in_child(_hold_cache_lock, str(path), locked, release)
    try:
        assert locked.wait(10)
        started = time.monotonic()
        result, seen_get = caught(cache.get, KEY)
        _, seen_put = caught(FileTokenCache(path, lock_timeout=0.2).put, "new", tok())
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert result is None
    assert len(seen_get) == 1 and "locked by another process" in str(seen_get[0].message)
    assert len(seen_put) == 1 and "not saved" in str(seen_put[0].message)
    assert elapsed >= 0.4  # both waited their lock timeout (0.2 s each), then gave up
    assert path.read_bytes() == before
    assert cache.get(KEY) == stored  # released: works again


def test_a_file_replaced_while_we_wait_is_locked_again_at_its_path(cache, path, monkeypatch):
    """Another tool may delete or rename over the file while we wait for its lock (the Go
    SDK deletes an unreadable cache under its lock): our write must land in the file now at
    the path, not in the orphan we had opened."""
    write_yaml(path, {"tokens": {"old-inode": {"token": "o", "expires_at": None}}})
    replacement = path.with_name("replacement.yaml")
    write_yaml(replacement, {"tokens": {"new-inode": {"token": "n", "expires_at": None}}})
    real_try_lock = _cache._try_lock
    calls = []

    def swap_then_lock(fd):
        if not calls:
            os.replace(replacement, path)  # between our open() and our flock()
        calls.append(fd)
        return real_try_lock(fd)

    monkeypatch.setattr(_cache, "_try_lock", swap_then_lock)
    cache.put(KEY, tok())
    assert len(calls) == 2
    assert list(read_yaml(path)["tokens"]) == ["new-inode", KEY]


# --------------------------------------------------------------------------- crash safety


def _crashing_writer(path: str, point: str, action: str) -> None:
    """Runs in a forked child: break one os call at ``point`` so the process dies there."""

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "mid-write":  # a torn in-place write: half the bytes, then death
        real_pwrite = os.pwrite

        def torn(fd, data, offset):
            real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
            die()

        os.pwrite = torn
    elif point == "before-write":  # journal committed, file untouched
        os.pwrite = die
    elif point == "before-journal":  # journal written to its temp name, not committed
        os.replace = die
    elif point == "before-truncate":  # new bytes written over the old, not yet shortened
        os.ftruncate = die
    cache = FileTokenCache(path)
    verb, _, key = action.partition(":")
    if verb == "put":
        cache.put(key, Token("new-token", datetime(2100, 1, 1, tzinfo=timezone.utc)))
    else:
        cache.remove(key)
    os._exit(0)  # survived: the test sees exit code 0 instead of -SIGKILL


def seed(path: Path, n: int = 6) -> dict:
    tokens = {
        f"entry-{i}": {"token": f"token-{i}-" + "x" * 300, "expires_at": None} for i in range(n)
    }
    write_yaml(path, {"tokens": tokens})
    return tokens


def crash(path: Path, point: str, action: str = "put:new") -> None:
    proc = in_child(_crashing_writer, str(path), point, action)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


def test_torn_write_is_finished_by_the_next_reader(cache, path):
    seeded = seed(path)
    base = path.read_bytes()
    crash(path, "mid-write", action="put:entry-0")  # rewrites the start of the file
    torn = path.read_bytes()
    assert torn != base and b"new-token" in torn
    assert b"token-0-" not in torn  # the old entry-0 is gone from disk...
    assert journal_of(path).exists()

    assert cache.get("entry-0").token == "new-token"  # ...and rolled forward from the journal
    assert not journal_of(path).exists()
    doc = read_yaml(path)  # repaired on disk too, for tools that know no journal
    assert list(doc["tokens"]) == list(seeded)
    for key in list(seeded)[1:]:
        assert cache.get(key).token == seeded[key]["token"]


def test_write_killed_after_the_journal_is_rolled_forward(cache, path):
    seed(path)
    base = path.read_bytes()
    crash(path, "before-write")
    assert path.read_bytes() == base  # a valid file all along
    assert cache.get("new").token == "new-token"
    assert not journal_of(path).exists()


def test_write_killed_before_the_journal_commit_leaves_the_old_file(cache, path):
    seeded = seed(path)
    base = path.read_bytes()
    crash(path, "before-journal")
    assert path.read_bytes() == base
    tmp = Path(str(journal_of(path)) + ".tmp")
    assert tmp.exists() and not journal_of(path).exists()
    assert cache.get("new") is None  # that write never happened
    cache.put(KEY, tok())  # the next writer clears the leftover
    assert not tmp.exists()
    assert list(read_yaml(path)["tokens"]) == [*seeded, KEY]


def test_shrinking_write_killed_before_truncate_leaves_valid_yaml(cache, path):
    seed(path)
    crash(path, "before-truncate", action="remove:entry-0")
    raw = path.read_bytes()
    doc = yaml.safe_load(raw)  # valid even for tools that know no journal: padding
    assert "entry-0" not in doc["tokens"] and len(doc["tokens"]) == 5
    assert raw.endswith(b"\n\n")
    assert cache.get("entry-0") is None
    assert not journal_of(path).exists()


def test_stale_journal_loses_to_a_newer_write_by_another_tool(cache, path):
    seed(path)
    crash(path, "before-write")
    # Another tool (which knows no journal) rewrites the file before fedbearer runs again.
    foreign = {"tokens": {"foreign": {"token": "theirs", "expires_at": None}}}
    write_yaml(path, foreign)
    assert cache.get("new") is None
    assert cache.get("foreign").token == "theirs"
    assert read_yaml(path) == foreign
    assert not journal_of(path).exists()


def test_reader_without_write_permission_still_sees_the_rolled_forward_content(cache, path):
    seed(path)
    crash(path, "mid-write")
    path.chmod(0o400)
    result = run_unprivileged_probe_get(path, "new")
    assert result == "new-token"
    assert journal_of(path).exists()  # repair left to the next writer


def run_unprivileged_probe_get(path: Path, key: str):
    code = (
        "import sys; from fedbearer._cache import FileTokenCache;"
        "t = FileTokenCache(sys.argv[1]).get(sys.argv[2]); print(t.token if t else None)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [*unprivileged_command(), "-c", code, str(path), key],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# --------------------------------------------------------------------------- login lock


def _keyring_cache(directory: Path) -> KeyringTokenCache:
    """The OS keyring cache, through a keyring backend that processes share (a directory)."""
    return KeyringTokenCache(
        backend=DirectoryKeyring(str(directory / "keyring")), lock_dir=directory / "locks"
    )


@pytest.fixture(params=["file", "keyring"])
def shared_cache(request, path, tmp_path):
    """Makes a new cache object over the same storage, as another process would."""
    if request.param == "file":
        return lambda: FileTokenCache(path)
    return lambda: _keyring_cache(tmp_path)


def _login_racer(make_cache, key, logins, start, results):
    cache = make_cache()
    start.wait(30)  # all eight leave the barrier together
    token = cache.get(key)  # as FederationAuth does: look first, lock only on a miss
    assert token is None
    with cache.login_lock(key, timeout=20) as held:
        assert held
        token = cache.get(key)  # re-read: another process may have logged in meanwhile
        if token is None:  # the "login": counted, slow, then cached
            with open(logins, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            time.sleep(0.3)
            token = Token(f"token-of-{os.getpid()}", datetime(2100, 1, 1, tzinfo=timezone.utc))
            cache.put(key, token)
    results.put(token.token)


def test_eight_cold_processes_log_in_once(tmp_path, shared_cache):
    logins = tmp_path / "logins"
    start, results = FORK.Barrier(8), FORK.Queue()
    procs = [
        in_child(_login_racer, shared_cache, KEY, str(logins), start, results) for _ in range(8)
    ]
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * 8
    assert len(logins.read_text().splitlines()) == 1
    winner = logins.read_text().strip()
    assert {results.get(timeout=5) for _ in procs} == {f"token-of-{winner}"}


def _login_holder(make_cache, key, held, fail, released):
    cache = make_cache()
    try:
        with cache.login_lock(key, timeout=5) as acquired:
            assert acquired
            held.set()
            fail.wait(30)
            raise RuntimeError("login failed")
    except RuntimeError:
        released.set()
    time.sleep(30)  # stay alive: the release must not depend on exiting


def test_a_failed_login_releases_the_lock_at_once(shared_cache):
    held, fail, released = FORK.Event(), FORK.Event(), FORK.Event()
    proc = in_child(_login_holder, shared_cache, KEY, held, fail, released)
    try:
        assert held.wait(10)
        cache = shared_cache()
        with cache.login_lock(KEY, timeout=0.1) as acquired:
            assert acquired is False  # really held by the other process
        fail.set()
        assert released.wait(10)
        with cache.login_lock(KEY, timeout=0) as acquired:  # one try, no waiting
            assert acquired is True
        assert proc.is_alive()  # released by the with block, not by process exit
    finally:
        proc.kill()
        proc.join(10)


def test_a_dead_holder_releases_the_lock(shared_cache):
    held = FORK.Event()
    proc = in_child(_login_holder, shared_cache, KEY, held, FORK.Event(), FORK.Event())
    try:
        assert held.wait(10)
        with shared_cache().login_lock(KEY, timeout=0) as acquired:
            assert acquired is False
        proc.kill()  # SIGKILL: no finally blocks run, only the kernel releases the lock
        proc.join(10)
        with shared_cache().login_lock(KEY, timeout=0) as acquired:  # one try
            assert acquired is True
    finally:
        proc.kill()
        proc.join(10)


def test_login_locks_are_per_key_and_exclude_threads_too(shared_cache):
    cache = shared_cache()
    with cache.login_lock(KEY, timeout=1) as first:
        assert first
        with cache.login_lock("other-key", timeout=0) as other:
            assert other  # another identity never waits for this one
        result = []
        thread = threading.Thread(
            target=lambda: result.append(cache.login_lock(KEY, 0.1).__enter__())
        )
        thread.start()
        thread.join()
        assert result == [False]


def test_login_lock_with_zero_timeout_tries_once_and_does_not_wait(cache):
    with cache.login_lock(KEY, timeout=None) as held:
        assert held
        started = time.monotonic()
        with FileTokenCache(cache.path).login_lock(KEY, timeout=0) as again:
            assert again is False
        # The lock is held for as long as this block lasts: any wait would be a hang.
        assert time.monotonic() - started < 10


def test_login_lock_files_are_private_and_not_the_cache_file(cache, path):
    with cache.login_lock(KEY, timeout=1):
        pass
    locks = list(path.parent.glob(".fedbearer-login-*.lock"))
    assert len(locks) == 1
    assert KEY not in locks[0].name
    assert stat.S_IMODE(locks[0].stat().st_mode) == 0o600
    assert not path.exists()  # taking a login lock does not create the cache


# --------------------------------------------------------------------------- memory / none


def test_memory_cache_round_trip_expiry_and_entries(monkeypatch):
    mem = MemoryTokenCache()
    mem.put(KEY, tok())
    mem.put("old", Token("o", datetime(2000, 1, 1, tzinfo=timezone.utc)))
    assert mem.get(KEY) == tok()
    assert mem.get("old").token == "o"  # expired, still returned for its refresh token
    assert sorted(k for k, _ in mem.entries()) == [KEY, "old"]
    mem.remove(KEY)
    mem.remove("never-there")
    assert mem.get(KEY) is None


def test_memory_login_lock_is_per_key_with_timeout():
    mem = MemoryTokenCache()
    with mem.login_lock(KEY, None) as held:
        assert held
        result = []
        thread = threading.Thread(
            target=lambda: result.append(mem.login_lock(KEY, 0.05).__enter__())
        )
        thread.start()
        thread.join()
        assert result == [False]
        with mem.login_lock("other", 0) as other:
            assert other
    with mem.login_lock(KEY, 0) as again:
        assert again  # released on exit


def test_memory_cache_pickles_with_its_tokens_and_fresh_locks():
    mem = MemoryTokenCache()
    mem.put(KEY, tok())
    with mem.login_lock(KEY, 0):
        copy = pickle.loads(pickle.dumps(mem))
    assert copy.get(KEY) == tok()
    with copy.login_lock(KEY, 0) as held:
        assert held  # the copy's lock is its own, not a snapshot of the held one


def test_file_cache_pickles():
    cache = pickle.loads(pickle.dumps(FileTokenCache("~/x.yaml", lock_timeout=1.5)))
    assert cache.lock_timeout == 1.5 and cache.path.endswith("x.yaml")


def test_no_cache_stores_nothing_and_never_blocks():
    none = NoTokenCache()
    none.put(KEY, tok())
    assert none.get(KEY) is None
    assert none.entries() == []
    none.remove(KEY)
    with none.login_lock(KEY, 0) as held, none.login_lock(KEY, 0) as again:
        assert held and again
