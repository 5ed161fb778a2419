"""What a cached ``fedbearer token`` imports, and the package's lazy public names (PEP 562).

kubectl runs ``fedbearer token --format exec-credential`` before every command, so a cache
hit must load no HTTP stack, no loopback server, no browser launcher and no keyring: only
the parser, the cache reader, the ``Token`` checks and YAML (``docs/performance.rst``).
The check runs the real command in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

import fedbearer
from fedbearer import FileTokenCache, LoginSettings, Token, cache_key

#: Modules only a refresh, a login, a logout or a keyring cache needs.
NOT_ON_A_CACHE_HIT = (
    "requests",
    "oauthlib",
    "urllib3",
    "keyring",
    "httpx",
    "portalocker",
    "importlib.metadata",
    "webbrowser",
    "http.client",
    "http.server",
    "fedbearer._auth",
    "fedbearer._login",
    "fedbearer._loopback",
    "fedbearer._browser",
    "fedbearer._discovery",
    "fedbearer._revocation",
    "fedbearer._paste",
    "fedbearer.httpx",
    "fedbearer.testing",
)

# Runs the command as `python -m fedbearer` does, then reports every module it loaded.
_CHILD = """
import runpy, sys
try:
    runpy.run_module("fedbearer", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    status = exc.code
sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""

_NEBIUS = ["--client-id", "app", "--federation-endpoint", "https://auth.example"]
_NEBIUS += ["--federation-id", "fed-1"]
_ISSUER = ["--client-id", "app", "--issuer", "https://idp.example/realms/main"]


def _run_token(home, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "xdg-cache")}
    for name in ("FEDBEARER_TOKEN", "NEBIUS_IAM_TOKEN", "NEBIUS_PROFILE", "CI"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, "token", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    errors, _, modules = result.stderr.rpartition("\nMODULES ")
    result.stderr = errors
    return result, set(modules.split())


def _cached(path, key: str) -> Token:
    token = Token("cached-access-token", datetime.now(timezone.utc) + timedelta(hours=6))
    FileTokenCache(path).put(key, token)
    return token


@pytest.mark.parametrize("output", ["text", "json", "exec-credential"])
@pytest.mark.parametrize("provider", ["nebius", "issuer"])
def test_cached_token_command_imports_no_http_stack_browser_or_keyring(
    isolated_env, provider, output
):
    if provider == "nebius":
        path = isolated_env / ".nebius" / "credentials.yaml"
        key = cache_key("https://auth.example", "fed-1", "default")
        args = _NEBIUS
    else:
        path = isolated_env / "xdg-cache" / "fedbearer" / "tokens.yaml"
        key = LoginSettings("app", issuer="https://idp.example/realms/main").cache_key
        args = _ISSUER
    _cached(path, key)
    result, modules = _run_token(isolated_env, *args, "--format", output)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "cached-access-token" in result.stdout  # a cache hit: no login was tried
    assert "fedbearer._cache" in modules and "yaml" in modules  # the child did report
    assert sorted(m for m in NOT_ON_A_CACHE_HIT if m in modules) == []


def test_cache_miss_without_interaction_says_to_log_in_and_loads_no_login_machinery(
    isolated_env,
):
    """A miss takes the same path as before the imports moved: an expired token without a
    refresh token needs a login, refused at once when interaction is off (cron, kubectl
    without a terminal), before any HTTP library or the loopback server is loaded."""
    path = isolated_env / ".nebius" / "credentials.yaml"
    key = cache_key("https://auth.example", "fed-1", "default")
    FileTokenCache(path).put(key, Token("old", datetime.now(timezone.utc) - timedelta(hours=1)))
    result, modules = _run_token(isolated_env, *_NEBIUS, "--non-interactive")
    assert result.returncode == 3, result.stderr
    assert "fedbearer login --client-id app" in result.stderr and result.stdout == ""
    assert "fedbearer._credentials" in modules
    assert sorted(m for m in NOT_ON_A_CACHE_HIT if m in modules) == []


def test_import_fedbearer_loads_no_submodule_until_a_name_is_used():
    code = (
        "import sys, fedbearer; "
        "loaded = sorted(m for m in sys.modules if m.startswith('fedbearer.')); "
        "fedbearer.Token; "
        "after = sorted(m for m in sys.modules if m.startswith('fedbearer.')); "
        "print(loaded, 'requests' in sys.modules, 'fedbearer._token' in after, "
        "'fedbearer._auth' in after)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['fedbearer._version'] False True False"


def test_every_public_name_resolves_to_its_module_and_is_listed():
    for name in fedbearer.__all__:
        value = getattr(fedbearer, name)
        assert value is not None
        module = getattr(value, "__module__", None)
        if isinstance(value, type) or callable(value):
            assert module is not None and module.startswith("fedbearer."), name
    assert set(fedbearer.__all__) <= set(dir(fedbearer))
    assert set(fedbearer._SOURCES) | {"__version__"} == set(fedbearer.__all__)
    namespace: dict[str, object] = {}
    exec("from fedbearer import *", namespace)  # noqa: S102 - the statement under test
    assert set(fedbearer.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'FederationAuthh'"):
        fedbearer.FederationAuthh  # noqa: B018
    with pytest.raises(ImportError):
        exec("from fedbearer import NoSuchThing", {})  # noqa: S102 - as above


def test_public_names_are_the_same_objects_as_their_modules():
    from fedbearer import _auth, _cache, _token

    assert fedbearer.FederationAuth is _auth.FederationAuth
    assert fedbearer.FileTokenCache is _cache.FileTokenCache
    assert fedbearer.Token is _token.Token
    assert json.loads(json.dumps(fedbearer.__version__)) == fedbearer.__version__
