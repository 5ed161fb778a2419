"""The token cache against the real ``nebius`` package (PyPI), in both directions.

``nebius.aio.token.file_cache.token_cache.TokenCache`` is the class the Nebius SDK's
federation bearer uses to read and write ``~/.nebius/credentials.yaml``; these tests drive it
directly, in this process and in concurrent processes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import random
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from fedbearer import FileTokenCache, Token, _cache, cache_key
from fedbearer._token import Account

from .conftest import NEBIUS_HINT, import_or_fail, skip_or_fail

nebius_cache = import_or_fail("nebius.aio.token.file_cache.token_cache", NEBIUS_HINT)
nebius_token = import_or_fail("nebius.aio.token.token", NEBIUS_HINT)
nebius_federation = import_or_fail("nebius.aio.token.federation_bearer", NEBIUS_HINT)

FORK = multiprocessing.get_context("fork")
ENDPOINT, FEDERATION_ID, PROFILE = "auth.example.com", "federation-e00abc", "dev"
KEY = cache_key(ENDPOINT, FEDERATION_ID, PROFILE)


def expiry(seconds: int = 3600) -> datetime:
    return datetime.fromtimestamp(int(time.time()) + seconds, tz=timezone.utc)


def nebius(path: Path, timeout: float = 5.0):
    return nebius_cache.TokenCache(path, flock_timeout=timeout)


def nebius_get(path: Path, key: str):
    return asyncio.run(nebius(path).get(key))


def nebius_set(path: Path, key: str, value: str, expiration) -> None:
    asyncio.run(nebius(path).set(key, nebius_token.Token(value, expiration)))


def test_cache_key_is_the_nebius_federation_bearer_name():
    bearer = nebius_federation.Bearer(
        profile_name=PROFILE,
        client_id="client",
        federation_endpoint=ENDPOINT,
        federation_id=FEDERATION_ID,
        no_browser_open=True,
    )
    assert bearer.name == KEY


def test_fedbearer_entry_is_read_by_nebius(path):
    exp = expiry()
    FileTokenCache(path).put(KEY, Token("fb-token", exp, refresh_token="fb-refresh"))
    got = nebius_get(path, KEY)
    assert got is not None
    assert (got.token, got.expiration) == ("fb-token", exp)


def test_an_entry_with_granted_scopes_and_an_account_is_read_by_nebius(path):
    exp = expiry()
    account = Account("u-1", email="ann@example.com", preferred_username="ann", name="Ann")
    token = Token("fb-token", exp, refresh_token="r", scope=("openid", "email"), account=account)
    FileTokenCache(path).put(KEY, token)
    got = nebius_get(path, KEY)
    assert got is not None and (got.token, got.expiration) == ("fb-token", exp)
    # fedbearer reads them back from the same file.
    back = FileTokenCache(path).get(KEY)
    assert back is not None and back.scope == ("openid", "email") and back.account == account


def test_fedbearer_entry_without_expiry_is_read_by_nebius(path):
    FileTokenCache(path).put(KEY, Token("forever", None))
    got = nebius_get(path, KEY)
    assert (got.token, got.expiration) == ("forever", None)


def test_nebius_entry_is_used_by_fedbearer(path):
    exp = expiry()
    nebius_set(path, KEY, "nb-token", exp)
    assert FileTokenCache(path).get(KEY) == Token("nb-token", exp)


def test_nebius_file_mode_and_ours_agree(path):
    nebius_set(path, "nb", "t", expiry())
    assert path.stat().st_mode & 0o777 == 0o600
    FileTokenCache(path).put(KEY, Token("fb", expiry()))
    assert path.stat().st_mode & 0o777 == 0o600


def test_each_side_keeps_the_others_entries(path):
    exp = expiry()
    fb = FileTokenCache(path)
    fb.put("fedbearer/1", Token("one", exp))
    nebius_set(path, "nebius/1", "two", exp)
    fb.put("fedbearer/2", Token("three", exp))
    assert nebius_get(path, "fedbearer/1").token == "one"
    assert nebius_get(path, "fedbearer/2").token == "three"
    assert fb.get("nebius/1").token == "two"


def test_file_emptied_by_nebius_is_an_empty_cache(path):
    nebius_set(path, "only", "t", expiry())
    asyncio.run(nebius(path).remove("only"))
    assert path.read_bytes() == b""  # the reference writes nothing at all
    old = time.time() - 3600  # found a while later (a fresh empty file may still be filling)
    os.utime(path, (old, old))
    fb = FileTokenCache(path)
    assert fb.get(KEY) is None
    fb.put(KEY, Token("t", expiry()))
    assert nebius_get(path, KEY).token == "t"


def test_our_rewrite_repairs_a_file_nebius_cannot_parse(path):
    """One entry the reference cannot read makes it reject the whole file; our rewrite drops
    such entries so the Nebius SDK can read everything else again."""
    path.parent.mkdir(parents=True)
    path.write_text(
        yaml.safe_dump(
            {
                "tokens": {
                    "nb": {"token": "keep", "expires_at": int(time.time()) + 3600},
                    "broken": {"token": "x", "expires_at": time.time() + 3600.5},
                }
            }
        )
    )
    path.chmod(0o600)
    assert nebius_get(path, "nb") is None  # the float expiry poisons the whole file for it
    FileTokenCache(path).put(KEY, Token("fb", expiry()))
    assert nebius_get(path, "nb").token == "keep"
    assert nebius_get(path, KEY).token == "fb"


def test_nebius_reads_the_file_left_by_a_crash_before_truncate(path):
    """The padding design: a crash after the in-place write and before the truncate leaves
    a file the reference (which knows nothing of our journal) can still parse."""
    exp = expiry()
    fb = FileTokenCache(path)
    fb.put("long", Token("x" * 2000, exp))
    fb.put("short", Token("s", exp))

    def shrink_and_die():
        os.ftruncate = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        FileTokenCache(path).remove("long")

    proc = FORK.Process(target=shrink_and_die)
    proc.start()
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert nebius_get(path, "short").token == "s"
    assert nebius_get(path, "long") is None


def test_nebius_reads_a_torn_write_after_fedbearer_finished_it(path):
    exp = expiry()
    fb = FileTokenCache(path)
    for i in range(5):
        fb.put(f"k{i}", Token(f"v{i}-" + "x" * 200, exp))

    def tear_and_die():
        real = os.pwrite

        def torn(fd, data, offset):
            real(fd, bytes(data[: len(data) // 3]), offset)
            os.kill(os.getpid(), signal.SIGKILL)

        os.pwrite = torn
        FileTokenCache(path).put("k0", Token("renewed", exp))

    proc = FORK.Process(target=tear_and_die)
    proc.start()
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert fb.get("k0").token == "renewed"  # any fedbearer access finishes the write...
    assert nebius_get(path, "k0").token == "renewed"  # ...and the reference reads the result
    assert nebius_get(path, "k4").token.startswith("v4-")


def _nebius_set_with_late_flush(path, unlocked, gap):
    """The Nebius SDK's TokenCache.set, with the moment between its unlock and its close()
    widened from microseconds to ``gap`` seconds. The order is portalocker's own: release()
    unlocks first and close() then flushes the buffered YAML."""
    import portalocker
    import portalocker.utils

    def release(self, fh):
        portalocker.unlock(fh)
        unlocked.set()
        time.sleep(gap)
        fh.close()

    portalocker.utils.Lock._release_claimed_fh = release
    nebius_set(path, "nebius-late", "late", expiry())


@pytest.mark.parametrize("operation", ["get", "put"])
def test_a_nebius_write_still_in_flight_after_its_unlock_is_waited_for(path, operation):
    """Taking the lock between the reference's unlock and its flush shows a truncated file;
    fedbearer must neither read that as "no tokens" nor write over it."""
    import portalocker
    import portalocker.utils

    if not hasattr(portalocker.utils.Lock, "_release_claimed_fh"):
        skip_or_fail(
            f"portalocker {portalocker.__version__} releases differently: the window cannot be"
            " widened (`pip install -U portalocker`)"
        )
    fb = FileTokenCache(path, lock_timeout=5)
    fb.put("existing", Token("kept", expiry()))
    unlocked = FORK.Event()
    proc = FORK.Process(target=_nebius_set_with_late_flush, args=(path, unlocked, 0.05))
    proc.start()
    try:
        assert unlocked.wait(10)
        assert path.stat().st_size == 0  # the window is open: lock free, data not written
        if operation == "get":
            assert fb.get("existing").token == "kept"
        else:
            fb.put(KEY, Token("ours", expiry()))
    finally:
        proc.join(10)
    assert proc.exitcode == 0
    stored = yaml.safe_load(path.read_bytes())["tokens"]
    expected = {"existing", "nebius-late"} | ({KEY} if operation == "put" else set())
    assert set(stored) == expected
    assert nebius_get(path, "nebius-late").token == "late"


# --------------------------------------------------------------------------- concurrency

FOREIGN_WRITES = {"nebius": 3, "go": 25}


def _nebius_writer(path, start, done, results):
    """The Nebius SDK's own cache code writing its keys, each read back at once."""
    complaints = []

    class Collect(logging.Handler):
        def emit(self, record):
            complaints.append(record.getMessage()[:80])

    logging.getLogger(nebius_cache.__name__).addHandler(Collect(logging.WARNING))
    exp = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)

    async def run():
        cache = nebius(path, timeout=20)
        written = []
        start.wait(30)
        for i in range(FOREIGN_WRITES["nebius"]):
            key = f"nebius/{i}"
            await cache.set(key, nebius_token.Token(f"n{i}", exp))
            got = await cache.get(key)
            assert got is not None and got.token == f"n{i}", key
            written.append(key)
        return written

    try:
        results.put(("nebius", asyncio.run(run()), complaints))
    finally:
        done.set()


def _go_style_writer(path, start, done, results):
    """What the Go SDK and the Nebius CLI do (gosdk auth/file_cache.go, emulated): open the
    file, block in flock() on that descriptor, then read and rewrite the *path* in place
    (os.ReadFile / os.WriteFile). A writer that replaced the file by rename would let this
    one wake up holding the lock of a file no longer at the path."""
    import fcntl

    exp = int(time.time()) + 3600
    written = []
    start.wait(30)
    try:
        for i in range(FOREIGN_WRITES["go"]):
            key = f"go/{i}"
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocking, no timeout, like gofrs/flock Lock()
                with open(path, "rb") as fh:
                    tokens = (yaml.safe_load(fh.read()) or {}).get("tokens") or {}
                tokens[key] = {"token": f"g{i}", "expires_at": exp}
                with open(path, "wb") as fh:  # O_TRUNC in place, like os.WriteFile
                    fh.write(yaml.safe_dump({"tokens": tokens}).encode())
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            written.append(key)
            time.sleep(random.uniform(0, 0.005))
        results.put(("go", written, []))
    finally:
        done.set()


def _fedbearer_writer(path, name, start, done, results):
    """fedbearer writing its own keys in a tight loop for as long as the other tool writes."""
    import warnings

    warnings.simplefilter("error", _cache.TokenCacheWarning)  # a skipped write fails loudly
    cache = FileTokenCache(path, lock_timeout=20)
    exp = expiry()
    written = []
    start.wait(30)
    i = 0
    while not done.is_set() or i < 2:
        key = f"{name}/{i}"
        cache.put(key, Token(f"{name}-{i}", exp))
        assert cache.get(key).token == f"{name}-{i}", key
        written.append(key)
        i += 1
        # A short random pause: without it the reference, which polls its lock only every
        # 250 ms, would rarely find the file unlocked and the race would be one-sided.
        time.sleep(random.uniform(0, 0.02))
    results.put((name, written, []))


@pytest.mark.parametrize("foreign", ["nebius", "go"])
def test_concurrent_writers_never_lose_an_entry(path, foreign):
    """Another tool and two fedbearer processes write different keys at once (each
    fedbearer and Nebius SDK write is read back at once); afterwards every key is there.

    ``nebius`` is the Nebius Python SDK's own TokenCache; ``go`` emulates the Go SDK/CLI.
    (The two together are not tested: the Python SDK makes its data visible only after
    unlocking, and a blocked Go-style waiter reads the truncated file in between.)
    """
    path.parent.mkdir(parents=True)
    start, done, results = FORK.Barrier(3), FORK.Event(), FORK.Queue()
    writer = {"nebius": _nebius_writer, "go": _go_style_writer}[foreign]
    procs = [
        FORK.Process(target=writer, args=(path, start, done, results)),
        FORK.Process(target=_fedbearer_writer, args=(path, "fb-a", start, done, results)),
        FORK.Process(target=_fedbearer_writer, args=(path, "fb-b", start, done, results)),
    ]
    for proc in procs:
        proc.start()
    collected = {}
    deadline = time.monotonic() + 30
    try:
        while len(collected) < len(procs):
            try:
                name, written, complaints = results.get(timeout=0.2)
            except queue.Empty:
                crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not crashed, f"a writer failed (exit codes {crashed})"
                assert time.monotonic() < deadline, "writers did not finish"
                continue
            collected[name] = (written, complaints)
    finally:
        done.set()
        for proc in procs:
            proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]

    count = FOREIGN_WRITES[foreign]
    assert collected[foreign] == ([f"{foreign}/{i}" for i in range(count)], [])
    # fedbearer kept writing throughout, so the other tool's writes met real contention.
    assert len(collected["fb-a"][0]) >= 2 and len(collected["fb-b"][0]) >= 2

    stored = yaml.safe_load(path.read_bytes())["tokens"]
    expected = {key for written, _ in collected.values() for key in written}
    assert expected - set(stored) == set()  # no entry lost
    assert len(stored) == len(expected)
    assert not Path(str(path) + ".fedbearer-journal").exists()
