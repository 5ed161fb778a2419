"""KeyringTokenCache against in-memory, size-limited, failing and hanging keyring backends,
and across processes through a keyring they share.

The cross-process login-lock tests run for both caches in ``test_cache.py``; the real
Secret Service (GNOME Keyring) is in ``test_keyring_secret_service.py``.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import pickle
import stat
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.backends.null
import keyring.core
import keyring.errors
import pytest
import requests

import fedbearer
from fedbearer import (
    ConfigurationError,
    FederationAuth,
    KeyringTokenCache,
    Token,
    TokenCache,
    TokenCacheWarning,
    _cache,
    _clock,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .api_server import ProtectedAPI
from .keyring_backends import (
    CredWriteError,
    DirectoryKeyring,
    FailingKeyring,
    HangingKeyring,
    MemoryKeyring,
)

KEY = "federation/auth.example.com/federation-e00test/default"
SECRET = "eyJSECRET.token-value.sig"
REFRESH = "REFRESH-SECRET-value"
SERVICE = "fedbearer"


def future(seconds: float = 3600) -> datetime:
    return datetime.fromtimestamp(int(time.time() + seconds), tz=timezone.utc)


def tok(value: str = SECRET, seconds: float = 3600, **kw) -> Token:
    return Token(value, future(seconds), **kw)


def long_jwt(size: int = 6000, mark: str = "A") -> str:
    """A token far over the Windows Credential Locker's 1280 characters, as large JWTs are."""
    return "eyJhbGciOiJSUzI1NiJ9." + mark * (size - 40) + ".c2lnbmF0dXJl"


@pytest.fixture
def lock_dir(tmp_path) -> Path:
    return tmp_path / "state" / "fedbearer"


@pytest.fixture
def memory() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def cache(memory, lock_dir) -> KeyringTokenCache:
    return KeyringTokenCache(backend=memory, lock_dir=lock_dir)


def caught(fn, *args):
    """``fn(*args)`` and the TokenCacheWarnings it emitted (every one, not once)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [w for w in seen if issubclass(w.category, TokenCacheWarning)]


def files_holding(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
            found.append(path)
    return found


# --------------------------------------------------------------------------- construction


def test_keyring_cache_is_a_token_cache_exported_from_fedbearer(cache):
    assert "KeyringTokenCache" in fedbearer.__all__
    assert isinstance(cache, TokenCache)


def test_import_fedbearer_does_not_import_keyring():
    code = "import sys, fedbearer; print('keyring' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_keyring_library_construction_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'fedbearer\[keyring\]'"):
        KeyringTokenCache()


def test_construction_does_no_io(memory, lock_dir):
    KeyringTokenCache(backend=memory, lock_dir=lock_dir)
    KeyringTokenCache(lock_dir=lock_dir)  # the default backend is not even chosen yet
    assert memory.calls == []
    assert not lock_dir.exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"service": ""},
        {"service": "a/b"},
        {"service": "line\nbreak"},
        {"service": 42},
        {"backend": object()},
        {"timeout": -1},
        {"timeout": "soon"},
    ],
)
def test_bad_settings_are_configuration_errors(kwargs):
    with pytest.raises(ConfigurationError):
        KeyringTokenCache(**kwargs)


def test_repr_shows_the_settings_and_no_token(cache):
    cache.put(KEY, tok(refresh_token=REFRESH))
    text = repr(cache)
    assert "fedbearer" in text and "MemoryKeyring" in text
    assert SECRET not in text and REFRESH not in text


def test_the_cache_pickles_without_its_chosen_backend(lock_dir):
    copy = pickle.loads(pickle.dumps(KeyringTokenCache("mine", lock_dir=lock_dir, timeout=7)))
    assert (copy.service, copy.lock_dir, copy.timeout) == ("mine", str(lock_dir), 7.0)


# --------------------------------------------------------------------------- storage


def test_round_trip_keeps_expiry_refresh_token_and_issue_time(cache):
    issued = future(-60)
    token = tok(refresh_token=REFRESH, issued_at=issued)
    cache.put(KEY, token)
    got = cache.get(KEY)
    assert got == token
    assert got.issued_at == issued
    cache.put("other", Token("no-expiry", None))
    assert cache.get("other") == Token("no-expiry", None)
    assert cache.get("absent") is None


def test_each_key_is_one_json_entry_of_the_token_under_the_service(cache, memory):
    token = tok(refresh_token=REFRESH)
    cache.put(KEY, token)
    assert json.loads(memory.secrets[(SERVICE, KEY)]) == token.to_dict()
    assert json.loads(memory.secrets[(SERVICE + "/index", "keys")]) == {"keys": [KEY]}
    assert len(memory.secrets) == 2


def test_expired_entries_are_returned_for_their_refresh_token(cache):
    expired = tok(seconds=-3600, refresh_token=REFRESH)
    cache.put(KEY, expired)
    assert cache.get(KEY) == expired
    assert cache.entries() == [(KEY, expired)]


def test_entries_lists_every_key_and_remove_forgets_it(cache, memory):
    cache.put("b-key", tok("b"))
    cache.put("a-key", tok("a"))
    cache.put("b-key", tok("b2"))
    assert [(key, token.token) for key, token in cache.entries()] == [
        ("a-key", "a"),
        ("b-key", "b2"),
    ]
    cache.remove("a-key")
    assert [key for key, _ in cache.entries()] == ["b-key"]
    assert cache.get("a-key") is None
    cache.remove("b-key")
    assert cache.entries() == []
    assert memory.secrets == {(SERVICE + "/index", "keys"): '{"keys":[]}'}


def test_removing_an_absent_key_writes_nothing_and_warns_nothing(cache, memory):
    _, seen = caught(cache.remove, "never-there")
    assert seen == []
    assert [call for call in memory.calls if call[0] != "get"] == []


def test_services_are_separate(memory, lock_dir):
    one = KeyringTokenCache("one", backend=memory, lock_dir=lock_dir)
    two = KeyringTokenCache("two", backend=memory, lock_dir=lock_dir)
    one.put(KEY, tok("from-one"))
    assert two.get(KEY) is None and two.entries() == []
    assert one.get(KEY).token == "from-one"


# --------------------------------------------------------------------------- size limits


def test_a_large_token_is_split_so_no_secret_passes_the_credential_lockers_limit(lock_dir):
    windows = MemoryKeyring(max_chars=1280)  # 2560 bytes of UTF-16
    cache = KeyringTokenCache(backend=windows, lock_dir=lock_dir)
    big = tok(long_jwt(6000), refresh_token="R" * 3000)
    with pytest.raises(CredWriteError):
        windows.set_password("probe", "probe", json.dumps(big.to_dict()))  # whole: refused

    _, seen = caught(cache.put, KEY, big)

    assert seen == []
    assert cache.get(KEY) == big
    assert max(len(secret) for secret in windows.secrets.values()) <= 1024
    parts = [name for service, name in windows.secrets if service == SERVICE + "/parts"]
    head = json.loads(windows.secrets[(SERVICE, KEY)])
    assert set(head) == {"parts", "sha256"}
    assert len(parts) == head["parts"] >= 9  # 9,000 characters of tokens in 1,024s
    assert big.token[:200] not in windows.secrets[(SERVICE, KEY)]


def test_replacing_or_removing_a_split_token_leaves_no_parts_behind(cache, memory):
    cache.put(KEY, tok(long_jwt(5000, "A")))
    cache.put(KEY, tok(long_jwt(3000, "B")))  # parts of another content: the old ones go
    assert cache.get(KEY).token == long_jwt(3000, "B")
    parts = {name for service, name in memory.secrets if service == SERVICE + "/parts"}
    assert len(parts) == 3
    cache.put(KEY, tok("short"))
    assert {service for service, _ in memory.secrets} == {SERVICE, SERVICE + "/index"}
    cache.put(KEY, tok(long_jwt(5000)))
    cache.remove(KEY)
    assert {service for service, _ in memory.secrets} == {SERVICE + "/index"}


def test_a_backend_refusing_even_the_parts_is_a_warning_and_no_orphaned_parts(lock_dir):
    tiny = MemoryKeyring(max_chars=500)
    cache = KeyringTokenCache(backend=tiny, lock_dir=lock_dir)
    big = tok(long_jwt(3000))

    _, seen = caught(cache.put, KEY, big)

    assert len(seen) == 1
    message = str(seen[0].message)
    assert "CredWriteError" in message and "was not saved" in message
    assert big.token[:40] not in message
    assert tiny.secrets == {}
    assert cache.get(KEY) is None


# --------------------------------------------------------------------------- bad content

DIGEST = "0" * 64
BAD_ENTRIES = {
    "not JSON": "not json {" + SECRET,
    "not an object": json.dumps([SECRET]),
    "no token": json.dumps({"expires_at": 5}),
    "token with CR/LF": json.dumps({"token": SECRET + "\r\nX-Evil: 1", "expires_at": None}),
    "wrong expiry type": json.dumps({"token": SECRET, "expires_at": "tomorrow"}),
    "absurd part count": json.dumps({"parts": 10_000, "sha256": DIGEST}),
    "parts without a digest": json.dumps({"parts": 2}),
    "missing parts": json.dumps({"parts": 2, "sha256": DIGEST}),
    "huge": json.dumps({"token": SECRET, "pad": "x" * 70_000}),
}


@pytest.mark.parametrize("content", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_an_unreadable_entry_is_a_warned_miss_that_quotes_nothing(cache, memory, content):
    cache.put("good", tok("good-token"))
    memory.secrets[(SERVICE, KEY)] = content
    memory.secrets[(SERVICE + "/index", "keys")] = json.dumps({"keys": ["good", KEY]})

    got, seen = caught(cache.get, KEY)

    assert got is None
    assert len(seen) == 1
    assert SECRET not in str(seen[0].message) and "Evil" not in str(seen[0].message)
    listed, seen = caught(cache.entries)
    assert [key for key, _ in listed] == ["good"] and seen == []
    fresh = tok()
    cache.put(KEY, fresh)  # a login's token replaces it
    assert cache.get(KEY) == fresh


def test_parts_that_do_not_match_their_digest_are_unreadable(cache, memory):
    cache.put(KEY, tok(long_jwt(3000)))
    part = next(name for service, name in memory.secrets if service == SERVICE + "/parts")
    memory.secrets[(SERVICE + "/parts", part)] = "x" * 1024
    got, seen = caught(cache.get, KEY)
    assert got is None and len(seen) == 1 and "do not match" in str(seen[0].message)


def test_a_reader_racing_a_writer_reads_the_new_value_not_a_mix(lock_dir):
    """A reader gets the old entry, then another process replaces the value and deletes the
    old parts before the reader fetches them: the reader reads the entry again."""
    old, new = tok(long_jwt(3000, "O")), tok(long_jwt(3000, "N"))
    raced = []

    def writer_strikes(service: str, username: str) -> None:
        if service == SERVICE + "/parts" and not raced:
            raced.append(username)
            KeyringTokenCache(backend=shared, lock_dir=lock_dir).put(KEY, new)

    shared = MemoryKeyring()
    KeyringTokenCache(backend=shared, lock_dir=lock_dir).put(KEY, old)
    shared.before_get = writer_strikes

    got, seen = caught(KeyringTokenCache(backend=shared, lock_dir=lock_dir).get, KEY)

    assert raced and got == new and seen == []


def test_an_unreadable_index_is_started_afresh_by_the_next_write(cache, memory):
    cache.put("kept", tok("kept-token"))
    memory.secrets[(SERVICE + "/index", "keys")] = "garbage"

    listed, seen = caught(cache.entries)
    assert listed == [] and len(seen) == 1 and "index" in str(seen[0].message)

    _, seen = caught(cache.put, KEY, tok())
    assert any("started afresh" in str(w.message) for w in seen)
    assert [key for key, _ in cache.entries()] == [KEY]
    assert cache.get("kept").token == "kept-token"  # the token itself is still there


# --------------------------------------------------------------------------- failing backends


class DBusErrorResponse(Exception):
    """Shaped like jeepney's error for a failed D-Bus call: not a KeyringError."""


FAILURES = {
    "locked": lambda: keyring.errors.KeyringLocked("Failed to unlock the collection!"),
    "init": lambda: keyring.errors.InitError("Failed to create the collection: " + SECRET),
    "no keyring": lambda: keyring.errors.NoKeyringError("No recommended backend"),
    "set refused": lambda: keyring.errors.PasswordSetError("refused " + SECRET),
    "dbus": lambda: DBusErrorResponse("org.freedesktop.DBus.Error.ServiceUnknown " + SECRET),
    "socket": lambda: ConnectionRefusedError(111, "Connection refused"),
    "anything": lambda: RuntimeError(SECRET),
}


@pytest.mark.parametrize("error", list(FAILURES.values()), ids=list(FAILURES))
def test_a_failing_backend_is_one_warning_and_a_miss_never_a_crash(lock_dir, error):
    backend = FailingKeyring(error)
    cache = KeyringTokenCache(backend=backend, lock_dir=lock_dir)
    kind = type(error()).__name__

    for _ in range(2):
        assert caught(cache.get, KEY)[0] is None
        caught(cache.put, KEY, tok(refresh_token=REFRESH))
        caught(cache.remove, KEY)
        assert caught(cache.entries)[0] == []

    _cache._warned.clear()
    _, seen = caught(cache.get, KEY)
    assert len(seen) == 1
    message = str(seen[0].message)
    assert kind in message and "FailingKeyring" in message
    assert "continuing without the cached token" in message
    assert SECRET not in message
    assert backend.calls > 4


def test_each_fault_is_warned_once_per_consequence(lock_dir):
    cache = KeyringTokenCache(backend=FailingKeyring(RuntimeError), lock_dir=lock_dir)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            cache.get(KEY)
            cache.put(KEY, tok())
    messages = [str(w.message) for w in seen if issubclass(w.category, TokenCacheWarning)]
    assert len(messages) == 2
    assert any("continuing without" in m for m in messages)
    assert any("was not saved" in m for m in messages)


class PlaintextKeyring(MemoryKeyring):
    """Named and placed like keyrings.alt's plaintext-file backend."""


PlaintextKeyring.__module__ = "keyrings.alt.file"

UNSUITABLE = {
    "fail": (keyring.backends.fail.Keyring, "no keyring is available"),
    "null": (keyring.backends.null.Keyring, "stores nothing"),
    "plaintext": (PlaintextKeyring, "plaintext"),
}


@pytest.mark.parametrize(("backend_class", "says"), list(UNSUITABLE.values()), ids=list(UNSUITABLE))
def test_a_chosen_backend_that_cannot_keep_tokens_is_refused_not_used(
    monkeypatch, lock_dir, backend_class, says
):
    chosen = backend_class()
    monkeypatch.setattr(keyring.core, "_keyring_backend", chosen)
    cache = KeyringTokenCache(lock_dir=lock_dir)

    _, seen = caught(cache.put, KEY, tok())
    got, _ = caught(cache.get, KEY)

    assert got is None
    assert len(seen) == 1 and says in str(seen[0].message)
    if isinstance(chosen, MemoryKeyring):
        assert chosen.calls == []  # nothing was written to the plaintext file
    else:
        assert caught(cache.entries)[0] == []


def test_a_plaintext_backend_chosen_deliberately_is_used(lock_dir):
    deliberate, token = PlaintextKeyring(), tok()
    cache = KeyringTokenCache(backend=deliberate, lock_dir=lock_dir)
    cache.put(KEY, token)
    assert cache.get(KEY) == token


def test_the_backend_the_keyring_library_chooses_is_used(monkeypatch, lock_dir):
    chosen = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", chosen)
    cache = KeyringTokenCache(lock_dir=lock_dir)
    cache.put(KEY, tok())
    assert (SERVICE, KEY) in chosen.secrets
    assert "MemoryKeyring" not in repr(cache)  # chosen at use, not at construction


def test_a_keyring_that_never_answers_is_a_warned_miss_and_not_asked_again(lock_dir):
    hanging = HangingKeyring()
    cache = KeyringTokenCache(backend=hanging, lock_dir=lock_dir, timeout=0.2)
    try:
        got, seen = caught(cache.get, KEY)
        assert got is None
        assert len(seen) == 1 and "did not answer within 0.2 s" in str(seen[0].message)
        assert caught(cache.get, KEY)[0] is None
        caught(cache.put, KEY, tok())
        assert hanging.calls == 1  # the stuck backend is not called again
    finally:
        hanging.release.set()


def test_no_time_limit_runs_on_the_calling_thread(memory, lock_dir):
    seen_threads = []
    memory.before_get = lambda *_: seen_threads.append(threading.current_thread())
    KeyringTokenCache(backend=memory, lock_dir=lock_dir, timeout=None).get(KEY)
    assert seen_threads == [threading.current_thread()]


# --------------------------------------------------------------------------- FederationAuth


@pytest.fixture
def api(federation):
    with ProtectedAPI(federation.is_valid) as server:
        yield server


def make_auth(fed: LocalFederation, cache, **kwargs) -> FederationAuth:
    kwargs.setdefault("opener", ProgrammaticBrowser())
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 10)
    return FederationAuth(
        fed.client_id, fed.endpoint, fed.federation_id or "", cache=cache, **kwargs
    )


def get(auth: FederationAuth, url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        session.auth = auth
        return session.get(url)


def test_federation_auth_logs_in_once_and_another_object_uses_the_keyring(
    federation, api, memory, lock_dir, monkeypatch
):
    first = make_auth(federation, KeyringTokenCache(backend=memory, lock_dir=lock_dir))
    assert get(first, api.url).status_code == 200
    second = make_auth(federation, KeyringTokenCache(backend=memory, lock_dir=lock_dir))
    assert get(second, api.url).status_code == 200
    assert federation.logins == 1
    stored = KeyringTokenCache(backend=memory, lock_dir=lock_dir).get(first.bearer.name)
    assert stored is not None and stored.token == first.get_token().token
    assert stored.refresh_token  # the refresh token lives with the access token

    # Near expiry a third object renews with the stored refresh token, and stores its successor.
    now = time.time() + 3500
    monkeypatch.setattr(_clock, "now", lambda: now)
    third = make_auth(federation, KeyringTokenCache(backend=memory, lock_dir=lock_dir))
    assert get(third, api.url).status_code == 200
    assert federation.refreshes == 1 and federation.logins == 1
    renewed = KeyringTokenCache(backend=memory, lock_dir=lock_dir).get(first.bearer.name)
    assert renewed.refresh_token != stored.refresh_token


def test_federation_auth_still_logs_in_when_the_keyring_fails_and_writes_no_file(
    federation, api, lock_dir, isolated_env
):
    cache = KeyringTokenCache(
        backend=FailingKeyring(lambda: keyring.errors.KeyringLocked("locked")), lock_dir=lock_dir
    )
    auth = make_auth(federation, cache)
    with pytest.warns(TokenCacheWarning, match="KeyringLocked"):
        assert get(auth, api.url).status_code == 200
    token = auth.get_token()
    assert federation.logins == 1
    # Never a fallback to a plaintext file: the token is in no file anywhere we can write.
    for root in (isolated_env, lock_dir.parent):
        assert files_holding(root, token.token) == []
        if token.refresh_token:
            assert files_holding(root, token.refresh_token) == []


# --------------------------------------------------------------------------- login lock


def test_default_lock_dir_follows_xdg_state_home_else_local_state(monkeypatch, tmp_path):
    cache = KeyringTokenCache()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert cache.lock_dir == str(tmp_path / "xdg" / "fedbearer")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.lock_dir == str(tmp_path / "home" / ".local" / "state" / "fedbearer")


def test_login_lock_files_are_private_and_in_the_lock_dir(cache, lock_dir):
    with cache.login_lock(KEY, timeout=1) as held:
        assert held
    cache.put(KEY, tok())
    locks = sorted(path.name for path in lock_dir.iterdir())
    assert len(locks) == 2  # the login lock of KEY and the write lock
    assert all(name.startswith("keyring-") and KEY not in name for name in locks)
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((lock_dir / name).stat().st_mode) == 0o600 for name in locks)


def test_a_login_lock_that_cannot_be_created_is_a_warning_and_no_wait(memory, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = KeyringTokenCache(backend=memory, lock_dir=blocker / "sub")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with cache.login_lock(KEY, timeout=5) as held:
            assert held is False
    assert any("logging in without waiting" in str(w.message) for w in seen)


def test_negative_login_lock_timeout_is_rejected(cache):
    with pytest.raises(ValueError, match="negative"):
        cache.login_lock(KEY, -1)


# --------------------------------------------------------------------------- processes

# Spawned, not forked: the FederationAuth tests above leave server threads winding down, and
# forking a process that has threads can deadlock the child (Python 3.12+ warns).
SPAWN = multiprocessing.get_context("spawn")


def _writer(directory, lock_dir, prefix, start):
    cache = KeyringTokenCache(backend=DirectoryKeyring(directory), lock_dir=lock_dir)
    start.wait(30)
    for index in range(5):
        cache.put(f"{prefix}-{index}", tok(long_jwt(1500, prefix[-1].upper())))


def test_concurrent_writers_keep_every_key_in_the_index(tmp_path, lock_dir):
    shared = tmp_path / "keyring"
    start = SPAWN.Barrier(4)
    args = [(str(shared), str(lock_dir), f"w{n}", start) for n in range(4)]
    procs = [SPAWN.Process(target=_writer, args=a, daemon=True) for a in args]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * 4
    cache = KeyringTokenCache(backend=DirectoryKeyring(str(shared)), lock_dir=lock_dir)
    assert len(cache.entries()) == 20
