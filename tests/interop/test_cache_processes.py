"""The token cache shared with the Nebius SDK, against the independent provider with the real
Chromium logging in; one login across cold processes. Issue 4, "Done when".

The Nebius side is the real ``nebius`` package: its ``TokenCache``
(``nebius.aio.token.file_cache.token_cache``, what its federation bearer reads and writes)
and its federation bearer's key. ``HOME`` is a temporary directory for every test
(``tests/conftest.py``), so "the default cache" is ``<tmp home>/.nebius/credentials.yaml``
for fedbearer and the SDK alike. Tokens are real: issued by oidc-provider after a login in
Chromium, and judged by the provider's ``/me``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from fedbearer import FederationAuth, FileTokenCache, cache_key

from ..conftest import NEBIUS_HINT, import_or_fail
from .chromium import BrowserDriver, deny, login_and_approve
from .provider import IndependentProvider

nebius_cache = import_or_fail("nebius.aio.token.file_cache.token_cache", NEBIUS_HINT)
nebius_token = import_or_fail("nebius.aio.token.token", NEBIUS_HINT)
nebius_federation = import_or_fail("nebius.aio.token.federation_bearer", NEBIUS_HINT)

# Processes sharing the real (temporary-HOME) token cache, as users' do.
pytestmark = [pytest.mark.interop, pytest.mark.browser, pytest.mark.fedbearer_real]

PROFILE = "default"
PROCESSES = 4

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False


def userinfo(op: IndependentProvider, access_token: str) -> requests.Response:
    return web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def nebius_key(op: IndependentProvider) -> str:
    """The key the Nebius SDK's federation bearer caches this login under (its own code)."""
    bearer = nebius_federation.Bearer(
        profile_name=PROFILE,
        client_id=op.client_id,
        federation_endpoint=op.endpoint,
        federation_id=op.federation_id,
        no_browser_open=True,
    )
    key: str = bearer.name
    assert key == cache_key(op.endpoint, op.federation_id, PROFILE)
    return key


def sdk_cache(path: Any = None) -> Any:
    """The SDK's cache: its default file (``~/.nebius/credentials.yaml``) unless ``path``."""
    if path is None:
        return nebius_cache.TokenCache()
    return nebius_cache.TokenCache(path)


def make_auth(op: IndependentProvider, **kwargs: Any) -> FederationAuth:
    """FederationAuth for ``op`` (default cache unless ``cache=``), logins through $BROWSER."""
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 30)
    return FederationAuth(
        op.client_id, op.endpoint, op.federation_id, profile=PROFILE, interactive=True, **kwargs
    )


def get_me(auth: FederationAuth, op: IndependentProvider) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        session.auth = auth
        return session.get(op.userinfo_url, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- both ways


def test_fedbearer_entry_after_a_chromium_login_is_read_by_the_nebius_sdk(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, isolated_env: Path
) -> None:
    op = independent_provider
    default_file = isolated_env / ".nebius" / "credentials.yaml"
    assert not default_file.exists()
    run = browser_env.expect(login_and_approve("nina"))
    auth = make_auth(op)  # the default cache: ~/.nebius/credentials.yaml under the tmp HOME

    me = get_me(auth, op)

    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "nina"
    assert run.wait(30).raise_for_error().status == 200
    ours = auth.get_token()

    # Where and how: the Nebius CLI's file, 0600, in a directory fedbearer made 0700.
    assert default_file.is_file()
    assert mode(default_file) == 0o600
    assert mode(default_file.parent) == 0o700

    # The real SDK, at its default path, under its own key, finds the token...
    got = asyncio.run(sdk_cache().get(nebius_key(op)))
    assert got is not None
    assert got.token == ours.token
    # The file holds whole seconds (``expires_at``, an int in both tools).
    assert ours.expiration is not None and got.expiration is not None
    assert got.expiration.timestamp() == int(ours.expiration.timestamp())
    assert not got.is_expired()
    # ... and the provider accepts what the SDK read.
    answer = userinfo(op, got.token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == "nina"
    assert mode(default_file) == 0o600  # the SDK's read changed nothing
    assert len(op.authorize_log()) == 1
    assert browser_env.unexpected == []


def test_nebius_sdk_entry_is_used_by_a_fresh_federation_auth_without_a_login(
    independent_provider: IndependentProvider,
    browser_env: BrowserDriver,
    isolated_env: Path,
    tmp_path: Path,
) -> None:
    op = independent_provider
    # A real token for the SDK to store: a first login into ANOTHER cache file.
    first_run = browser_env.expect(login_and_approve("olga"))
    issued = make_auth(op, cache=FileTokenCache(tmp_path / "other" / "credentials.yaml"))
    real = issued.get_token()
    assert first_run.wait(30).raise_for_error().status == 200
    assert real.expiration is not None

    # The SDK writes it under the login's key into its (and our) default file.
    key = nebius_key(op)
    asyncio.run(sdk_cache().set(key, nebius_token.Token(real.token, real.expiration)))
    default_file = isolated_env / ".nebius" / "credentials.yaml"
    assert mode(default_file) == 0o600
    stored = FileTokenCache().get(key)
    assert stored is not None and stored.token == real.token and stored.refresh_token is None
    assert stored.expiration is not None
    assert stored.expiration.timestamp() == int(real.expiration.timestamp())

    op.clear_logs()
    # A tripwire: were a login started, this user would deny it at once (and be seen).
    tripwire = browser_env.expect(deny())
    fresh = make_auth(op)

    me = get_me(fresh, op)

    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "olga"
    assert me.history == []
    assert me.request.headers["Authorization"] == f"Bearer {real.token}"
    # No login: no authorize request, no browser, not even a refresh.
    assert op.authorize_log() == []
    assert op.token_log() == []
    assert not tripwire.delivered.is_set()
    assert browser_env.unexpected == []


# ---------------------------------------------------------------------------- processes

CHILD = """\
import hashlib, json, sys, time
import requests
from fedbearer import FederationAuth, FileTokenCache

client_id, endpoint, federation_id, cache_file, url = sys.argv[1:6]
auth = FederationAuth(
    client_id, endpoint, federation_id, cache=FileTokenCache(cache_file),
    interactive=True, timeout=20, writer=sys.stderr,
)
session = requests.Session()
session.trust_env = False
session.auth = auth
print("ready", flush=True)
sys.stdin.readline()  # "go": the parent releases all of us together
started = time.monotonic()
response = session.get(url, timeout=60)
token = auth.get_token().token
print(json.dumps({
    "status": response.status_code,
    "sub": response.json().get("sub") if response.status_code == 200 else None,
    "token": hashlib.sha256(token.encode()).hexdigest()[:16],
    "seconds": time.monotonic() - started,
}), flush=True)
"""


def test_four_cold_processes_share_one_login_through_chromium(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, tmp_path: Path
) -> None:
    op = independent_provider
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache_file = tmp_path / "shared" / "credentials.yaml"  # fedbearer makes the directory
    env = dict(os.environ)  # browser_env put $BROWSER (the shim) in it; HOME is a tmp dir
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    run = browser_env.expect(login_and_approve("proc-user"))

    argv = [sys.executable, str(script), op.client_id, op.endpoint, op.federation_id]
    argv += [str(cache_file), op.userinfo_url]
    stderr_files = [tmp_path / f"child-{i}.err" for i in range(PROCESSES)]
    children = []
    for err in stderr_files:
        with err.open("w") as err_file:
            children.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err_file,
                    text=True,
                )
            )
    results: list[dict[str, Any]] = []
    try:
        for child in children:  # all imported and set up, none has touched the cache
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=60)
            results.append(json.loads(out) if child.returncode == 0 else {"out": out})
        elapsed = time.perf_counter() - started
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    errors = [err.read_text() for err in stderr_files]
    assert all(child.returncode == 0 for child in children), errors

    # Every process got through to /me, with the same token.
    assert [r["status"] for r in results] == [200] * PROCESSES, results
    assert {r["sub"] for r in results} == {"proc-user"}
    assert len({r["token"] for r in results}) == 1
    # Exactly one login: one authorize request, one browser run, one code exchange.
    assert len(op.authorize_log()) == 1
    assert [(e["form"]["grant_type"], e["status"]) for e in op.token_log()] == [
        ("authorization_code", 200)
    ]
    page = run.wait(30).raise_for_error()
    assert page.status == 200 and "Login complete" in page.text
    assert browser_env.unexpected == []
    assert sum("Logging in to" in text for text in errors) == 1, errors
    print(
        f"\n{PROCESSES} cold processes, one Chromium login: {elapsed:.2f} s from 'go' to the "
        f"last exit; each request took "
        + ", ".join(f"{r['seconds']:.2f}" for r in sorted(results, key=lambda r: r["seconds"]))
        + " s"
    )

    # The shared file: 0600 in a 0700 directory, and the SDK reads the same token from it.
    assert mode(cache_file) == 0o600
    assert mode(cache_file.parent) == 0o700
    got = asyncio.run(sdk_cache(cache_file).get(nebius_key(op)))
    assert got is not None and fingerprint(got.token) == results[0]["token"]
