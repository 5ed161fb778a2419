"""KeyringTokenCache on a real Secret Service: GNOME Keyring in a private D-Bus session.

Each test writes a small Python script and runs it inside
``dbus-run-session -- sh -c '<unlock gnome-keyring-daemon>; exec python script'``, with
``HOME`` a temporary directory, so the keyring it creates is a throwaway one and the
developer's own is never touched. The script prints one JSON line with what it saw; the
test judges it. The Secret Service backend is selected by name (``PYTHON_KEYRING_BACKEND``),
so the tests mean the same with keyrings.alt installed, where the keyring library would
choose its chain; where the library's own choice is the point (no bus, a chain with
keyrings.alt's plaintext file), the test says so.

Needs Debian's ``gnome-keyring`` and ``dbus-daemon`` (``dbus-run-session``); outside CI a
missing one skips with that hint, with ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from .conftest import import_or_fail, skip_or_fail

REPO = Path(__file__).resolve().parent.parent
APT_HINT = "apt-get install -y gnome-keyring dbus-daemon"
KEYRING_PASSWORD = "throwaway-test-keyring-password"


def require_secret_service() -> None:
    missing = [
        tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if not shutil.which(tool)
    ]
    try:
        import secretstorage  # noqa: F401 - the keyring library's Secret Service client
    except ImportError:
        missing.append("the Python package secretstorage (pip install -e '.[test]')")
    if missing:
        skip_or_fail(
            f"no Secret Service to test against: {', '.join(missing)} missing; run `{APT_HINT}`"
        )


# Every script starts with this: the checkout's fedbearer, TokenCacheWarnings recorded, the
# backend the keyring library chose, and report() for the one JSON line.
PRELUDE = """\
import json, sys, warnings
import keyring
from fedbearer import KeyringTokenCache, Token, TokenCacheWarning

warnings.simplefilter("always")
_seen = warnings.catch_warnings(record=True)
caught = _seen.__enter__()
backend = keyring.get_keyring()
chosen = f"{type(backend).__module__}.{type(backend).__name__}"

def report(**result):
    result["backend"] = chosen
    result["warnings"] = [
        str(w.message) for w in caught if issubclass(w.category, TokenCacheWarning)
    ]
    print(json.dumps(result), flush=True)
"""


def run_script(
    tmp_path: Path,
    body: str,
    *args: str,
    session: str = "unlocked",
    timeout: float = 120,
    backend: Optional[str] = None,
) -> dict[str, Any]:
    """Run ``PRELUDE + body`` with ``args``; in a D-Bus session whose GNOME Keyring is
    ``"unlocked"`` (a login keyring with a password), ``"never-unlocked"`` (the daemon runs,
    no keyring was ever created or unlocked) or ``"broken"`` (its ``HOME`` does not exist,
    so it can create nothing), or with ``"no-bus"`` at all. ``backend`` selects the keyring
    backend by name (default: the Secret Service's; ``"chosen"``: the keyring library's
    own choice)."""
    require_secret_service()
    home = tmp_path / "home"
    if session != "broken":
        (home / ".cache").mkdir(parents=True, exist_ok=True)  # gnome-keyring's control socket
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + body)
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO), KEYRING_PASSWORD=KEYRING_PASSWORD)
    for name in ("PYTHON_KEYRING_BACKEND", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "DISPLAY"):
        env.pop(name, None)  # in this HOME, with no screen
    if backend != "chosen":
        env["PYTHON_KEYRING_BACKEND"] = backend or SECRET_SERVICE
    python = shlex.join([sys.executable, str(script), *args])
    if session == "no-bus":
        env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus-here'}"
        argv = ["sh", "-c", f"exec {python}"]
    else:
        start = {
            "unlocked": 'printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock',
            "never-unlocked": "gnome-keyring-daemon --start",
            "broken": "gnome-keyring-daemon --start",
        }[session]
        argv = [
            "dbus-run-session",
            "--",
            "sh",
            "-c",
            f"{start} --components=secrets >/dev/null; exec {python}",
        ]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


SECRET_SERVICE = "keyring.backends.SecretService.Keyring"

ROUND_TRIP = """\
import secretstorage
from datetime import datetime, timezone

lock_dir = sys.argv[1]
cache = KeyringTokenCache(lock_dir=lock_dir)
expiry = datetime(2100, 1, 1, tzinfo=timezone.utc)
big = Token("eyJhbGciOiJSUzI1NiJ9." + "A" * 6000 + ".c2ln", expiry, refresh_token="R" * 3000)
expired = Token("expired-token", datetime(2001, 1, 1, tzinfo=timezone.utc), refresh_token="r1")
cache.put("federation/big/fed/default", big)
cache.put("federation/old/fed/default", expired)
fresh = KeyringTokenCache(lock_dir=lock_dir)  # another object, as another process would be
got_big = fresh.get("federation/big/fed/default")
got_expired = fresh.get("federation/old/fed/default")
listed = [key for key, _ in fresh.entries()]

connection = secretstorage.dbus_init()
collection = secretstorage.get_default_collection(connection)
stored = [
    (item.get_attributes().get("service"), len(item.get_secret()))
    for item in collection.get_all_items()
]
fresh.remove("federation/big/fed/default")
fresh.remove("federation/old/fed/default")
left = sorted(
    item.get_attributes().get("service") for item in collection.get_all_items()
)
report(
    big_ok=got_big == big,
    expired_ok=got_expired == expired,
    listed=listed,
    stored=stored,
    left=left,
    collection=collection.get_label(),
)
"""


def test_tokens_round_trip_through_gnome_keyring_split_below_the_windows_limit(tmp_path):
    result = run_script(tmp_path, ROUND_TRIP, str(tmp_path / "locks"))

    assert result["backend"] == SECRET_SERVICE
    assert result["warnings"] == []
    assert result["big_ok"] and result["expired_ok"]  # expired kept, refresh tokens kept
    assert result["listed"] == ["federation/big/fed/default", "federation/old/fed/default"]
    services = [service for service, _ in result["stored"]]
    assert services.count("fedbearer") == 2 and services.count("fedbearer/index") == 1
    assert services.count("fedbearer/parts") >= 9  # 9,000 characters in secrets of 1,024
    assert max(size for _, size in result["stored"]) <= 1024
    assert result["left"] == ["fedbearer/index"]  # removed with every part


PROCESSES = """\
import os, subprocess
from fedbearer.testing import LocalFederation

WORKER = '''
import hashlib, io, json, sys
from fedbearer import FederationAuth, KeyringTokenCache
from fedbearer.testing import ProgrammaticBrowser
client_id, endpoint, federation_id, lock_dir = sys.argv[1:5]
auth = FederationAuth(
    client_id, endpoint, federation_id, opener=ProgrammaticBrowser(), writer=io.StringIO(),
    cache=KeyringTokenCache(lock_dir=lock_dir), timeout=60, interactive=True,
)
print("ready", flush=True)
sys.stdin.readline()  # "go": released together
token = auth.get_token().token
print(json.dumps(hashlib.sha256(token.encode()).hexdigest()[:16]), flush=True)
'''

lock_dir = sys.argv[1]
with LocalFederation() as federation:
    argv = [sys.executable, "-c", WORKER, federation.client_id, federation.endpoint,
            federation.federation_id or "", lock_dir]
    workers = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for worker in workers:  # every one imported and set up, none has touched the keyring
        assert worker.stdout.readline() == "ready\\n"
    for worker in workers:
        worker.stdin.write("go\\n")
        worker.stdin.flush()
    tokens = [json.loads(worker.communicate(timeout=90)[0]) for worker in workers]
    codes = [worker.returncode for worker in workers]
    logins = federation.logins
report(tokens=tokens, codes=codes, logins=logins)
"""


def test_four_cold_processes_log_in_once_through_gnome_keyring(tmp_path):
    result = run_script(tmp_path, PROCESSES, str(tmp_path / "locks"))

    assert result["backend"] == SECRET_SERVICE
    assert result["codes"] == [0, 0, 0, 0]
    assert result["logins"] == 1
    assert len(set(result["tokens"])) == 1


LOGIN_WITHOUT_KEYRING = """\
import io, os
from fedbearer import FederationAuth
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

lock_dir, root = sys.argv[1], sys.argv[2]
with LocalFederation() as federation:
    auth = FederationAuth(
        federation.client_id, federation.endpoint, federation.federation_id or "",
        opener=ProgrammaticBrowser(), writer=io.StringIO(), interactive=True,
        cache=KeyringTokenCache(lock_dir=lock_dir, timeout=3),
    )
    token = auth.get_token()
    logins = federation.logins
secrets = [token.token.encode()] + ([token.refresh_token.encode()] if token.refresh_token else [])
in_files = []
for folder, _, names in os.walk(root):  # the keyring's HOME, the lock files, everything
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as file:
                data = file.read()
            # keyrings.alt's files hold base64: any fedbearer entry there counts.
            plain_keyring = name.endswith("_pass.cfg") and b"fedbearer" in data
            if plain_keyring or any(secret in data for secret in secrets):
                in_files.append(path)
report(logins=logins, in_files=in_files)
"""


LOCK_COLLECTION = """\
import secretstorage
connection = secretstorage.dbus_init()
secretstorage.get_default_collection(connection).lock()
"""


#: What the keyring library chooses with no D-Bus: its ``fail`` backend; with keyrings.alt
#: installed, its plaintext-file backend or a chain of keyrings.alt's backends. Each is
#: refused the same way.
NO_BUS_CHOICES = (
    "keyring.backends.fail.Keyring",
    "keyrings.alt.file.PlaintextKeyring",
    "keyring.backends.chainer.ChainerBackend",
)


@pytest.mark.parametrize(
    ("session", "prelude", "expected_backend", "says"),
    [
        # Over SSH, in a container: no D-Bus session bus at all; the library's own choice.
        ("no-bus", "", "chosen", "no keyring is available"),
        # A login keyring that is locked: the unlock prompt cannot show (no display).
        ("unlocked", LOCK_COLLECTION, SECRET_SERVICE, "is locked"),
        # No keyring was ever created: the prompt to create one cannot show either.
        ("never-unlocked", "", SECRET_SERVICE, "could not be opened"),
        # A daemon that can create nothing (no HOME): keyring waits for an answer for ever.
        ("broken", "", SECRET_SERVICE, "did not answer within 3 s"),
    ],
    ids=["absent", "locked", "never-unlocked", "hanging"],
)
def test_a_secret_service_that_cannot_serve_is_a_warning_and_the_login_goes_on(
    tmp_path, session, prelude, expected_backend, says
):
    result = run_script(
        tmp_path,
        prelude + LOGIN_WITHOUT_KEYRING,
        str(tmp_path / "locks"),
        str(tmp_path),
        session=session,
        backend="chosen" if expected_backend == "chosen" else SECRET_SERVICE,
    )

    if expected_backend == "chosen":
        assert result["backend"] in NO_BUS_CHOICES
    else:
        assert result["backend"] == expected_backend
    assert result["logins"] == 1  # the cache failed, the login did not
    assert any(says in message for message in result["warnings"]), result["warnings"]
    assert all("was not saved" in m or "continuing without" in m for m in result["warnings"])
    assert result["in_files"] == []  # never a plaintext fallback


SECRET_SERVICE_ITEMS = """
import secretstorage
connection = secretstorage.dbus_init()
items = secretstorage.get_default_collection(connection).get_all_items()
services = [item.get_attributes().get("service") for item in items]
report(logins=logins, in_files=in_files, services=services)
"""


def test_with_keyrings_alt_installed_tokens_go_to_the_secret_service_never_the_plain_file(
    tmp_path,
):
    """Debian and Ubuntu install keyrings.alt beside the Secret Service backend: the keyring
    library then chooses its chain, which holds keyrings.alt's plaintext-file backend."""
    import_or_fail("keyrings.alt.file")
    result = run_script(
        tmp_path,
        LOGIN_WITHOUT_KEYRING + SECRET_SERVICE_ITEMS,
        str(tmp_path / "locks"),
        str(tmp_path),
        backend="chosen",
    )

    assert result["backend"] == "keyring.backends.chainer.ChainerBackend"
    assert result["warnings"] == []
    assert result["logins"] == 1
    assert result["services"].count("fedbearer") == 1  # the token, in the Secret Service
    assert result["in_files"] == []  # and in no file: keyring_pass.cfg included
