"""Single-flight counts: how many logins and renewals a crowd causes.

- 64 threads with no token, all at once, through one FederationAuth: 1 login.
- 64 threads whose requests all get 401 at once: 1 renewal (a refresh).
- 64 threads all finding the token at its refresh margin at once: 1 refresh.
- 8 fresh processes with no token, one shared FileTokenCache: 1 login; the others wait on
  the cache's login lock and read the token it wrote.

The API here is a tiny keep-alive server that accepts any bearer token except those it has
been told to reject, so a 401 storm can be caused without revoking the refresh token.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

import requests

from fedbearer import FederationAuth, _clock
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from ._common import Result
from ._servers import keep_alive_server

THREADS = 64
PROCESSES = 8


class _Api:
    """Bearer-protected: 401 for a missing or rejected token, 200 otherwise."""

    def __init__(self) -> None:
        self.rejected: set[bytes] = set()

    def __call__(self, head: bytes) -> bytes:
        token = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"authorization: bearer "):
                token = line[len(b"authorization: bearer ") :]
        if not token or token in self.rejected:
            return (
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
                b'error="invalid_token"\r\nContent-Length: 0\r\n\r\n'
            )
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def _auth(fed: LocalFederation) -> FederationAuth:
    return FederationAuth(
        fed.client_id,
        fed.endpoint,
        fed.federation_id or "",
        cache=None,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        timeout=30,
    )


def _crowd(n: int, work: Callable[[], int]) -> list[int]:
    """Run ``work`` on ``n`` threads released together; their results."""
    barrier = threading.Barrier(n)
    results: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        value = work()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _sessions(auth: FederationAuth, n: int) -> Callable[[], requests.Session]:
    pool = []
    for _ in range(n):
        s = requests.Session()
        s.trust_env = False
        s.auth = auth
        pool.append(s)
    lock = threading.Lock()

    def take() -> requests.Session:
        with lock:
            return pool.pop()

    return take


def _threads(fed: LocalFederation, api_url: str, api: _Api) -> list[Result]:
    results = []
    # Cold: no token anywhere.
    auth = _auth(fed)
    take = _sessions(auth, THREADS)
    statuses = _crowd(THREADS, lambda: take().get(api_url).status_code)
    results.append(
        Result(
            f"{THREADS} cold threads -> logins",
            fed.logins,
            None,
            "logins",
            target="1",
            ok=fed.logins == 1 and statuses == [200] * THREADS,
            note=f"{statuses.count(200)}/{THREADS} requests answered 200",
        )
    )
    # 401 storm: the API stops accepting the token everyone holds.
    logins, refreshes = fed.logins, fed.refreshes
    api.rejected.add(auth.get_token().token.encode())
    take = _sessions(auth, THREADS)
    statuses = _crowd(THREADS, lambda: take().get(api_url).status_code)
    renewals = (fed.logins - logins) + (fed.refreshes - refreshes)
    results.append(
        Result(
            f"{THREADS} concurrent 401s -> renewals",
            renewals,
            None,
            "renewals",
            target="1",
            ok=renewals == 1 and statuses == [200] * THREADS,
            note=f"{fed.refreshes - refreshes} refresh, {fed.logins - logins} logins; "
            f"{statuses.count(200)}/{THREADS} answered 200 after one resend",
        )
    )
    # Expiry: everyone finds the token inside its refresh margin at the same moment.
    refreshes = fed.refreshes
    real_now = _clock.now
    _clock.now = lambda: real_now() + 3500
    try:
        take = _sessions(auth, THREADS)
        statuses = _crowd(THREADS, lambda: take().get(api_url).status_code)
    finally:
        _clock.now = real_now
    results.append(
        Result(
            f"{THREADS} threads at the refresh margin -> refreshes",
            fed.refreshes - refreshes,
            None,
            "refreshes",
            target="1",
            ok=fed.refreshes - refreshes == 1 and statuses == [200] * THREADS,
        )
    )
    return results


_CHILD = r"""
import io, sys, hashlib
from fedbearer import FederationAuth
from fedbearer._cache import FileTokenCache
from fedbearer.testing import ProgrammaticBrowser
endpoint, path = sys.argv[1], sys.argv[2]
auth = FederationAuth("fedbearer-test", endpoint, "test-federation",
                      cache=FileTokenCache(path), opener=ProgrammaticBrowser(),
                      writer=io.StringIO(), timeout=60)
print("ready", flush=True)
sys.stdin.readline()
print(hashlib.sha256(auth.get_token().token.encode()).hexdigest()[:12], flush=True)
"""


def _processes(fed: LocalFederation) -> Result:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    logins = fed.logins
    with tempfile.TemporaryDirectory() as home:
        path = os.path.join(home, ".nebius", "credentials.yaml")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, fed.endpoint, path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(PROCESSES)
        ]
        for child in children:  # every process imported and built its auth
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:  # then all of them ask for a token at once
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        tokens = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            tokens.append(out.strip())
    made = fed.logins - logins
    return Result(
        f"{PROCESSES} cold processes -> logins",
        made,
        None,
        "logins",
        target="1",
        ok=made == 1 and len(set(tokens)) == 1,
        note=f"FileTokenCache + its login lock; {len(set(tokens))} distinct token(s) in the end",
    )


def run(quick: bool = False) -> list[Result]:
    api = _Api()
    with LocalFederation() as fed, keep_alive_server(api) as server:
        results = _threads(fed, server.url + "/v1/things", api)
    with LocalFederation() as fed:
        started = time.monotonic()
        results.append(_processes(fed))
        results[-1].extra["seconds"] = time.monotonic() - started
    return results
