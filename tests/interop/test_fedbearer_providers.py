"""``FederationAuth.from_issuer`` and the ``fedbearer`` command against the independent
provider, found through its own discovery document, with scopes beyond ``openid``, the real
Chromium logging in; then ``logout()`` / ``fedbearer logout`` revokes at its revocation
endpoint and the provider refuses the tokens (#13).

The provider is dressed as a Nebius federation, so its ``federation-id`` check is on: here
``federation-id`` is just one of the extra authorization parameters, as for any provider
that needs one.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from fedbearer import FederationAuth, FileTokenCache
from fedbearer._cache import provider_cache_key

from . import cli_environment, fedbearer_command
from .chromium import BrowserDriver, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

SCOPES = ("openid", "profile", "email", "offline_access")
SCOPE = " ".join(SCOPES)

web = requests.Session()
web.trust_env = False  # loopback only


def userinfo(op: IndependentProvider, access_token: str) -> requests.Response:
    return web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def refresh_refused(op: IndependentProvider, refresh_token: Optional[str]) -> bool:
    """Whether the provider's token endpoint refuses ``refresh_token`` as an invalid grant."""
    assert refresh_token
    answer = web.post(
        op.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": op.client_id,
        },
        timeout=10,
    )
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.fedbearer_real  # the default cache (in the temporary HOME) and $BROWSER
def test_discovery_scopes_login_and_logout_against_the_independent_provider(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, isolated_env: Path
) -> None:
    op = independent_provider
    document = web.get(op.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert document["revocation_endpoint"] == op.revocation_url  # what logout will use
    run = browser_env.expect(login_and_approve("interop-user"))
    auth = FederationAuth.from_issuer(
        op.issuer,
        op.client_id,
        scopes=SCOPES,
        # oidc-provider grants offline_access only with prompt=consent (OIDC Core §11).
        params={"federation-id": op.federation_id, "prompt": "consent"},
        writer=io.StringIO(),
        timeout=60,
        interactive=True,
    )
    with requests.Session() as session:
        session.trust_env = False
        session.auth = auth
        me = session.get(op.userinfo_url, timeout=60)
    run.wait(60).raise_for_error()
    assert me.status_code == 200
    # The profile and email scopes were granted: their claims are released.
    assert me.json() == {
        "sub": "interop-user",
        "name": "interop-user",
        "email": "interop-user@interop.test",
        "email_verified": False,
    }
    sent = op.authorize_log()
    assert sent, "no authorization request reached the provider"
    for query in sent:  # the pre-flight check's and the browser's: the same request
        assert query["scope"] == " ".join(SCOPES)
        assert query["prompt"] == "consent"
        assert query["federation-id"] == op.federation_id
        assert query["code_challenge_method"] == "S256"
    (exchange,) = [e for e in op.token_log() if e["form"].get("grant_type") == "authorization_code"]
    assert exchange["status"] == 200 and exchange["authorization"] is None  # a public client

    # Tokens for another provider go to fedbearer's own file, not the Nebius CLI's.
    token = auth.get_token()
    path = isolated_env / ".cache" / "fedbearer" / "tokens.yaml"
    assert auth.bearer.name in yaml.safe_load(path.read_text())["tokens"]
    assert not (isolated_env / ".nebius").exists()

    result = auth.logout()
    assert result.revocation_endpoint == op.revocation_url
    assert result.revoked == ("refresh_token", "access_token") and result.not_revoked == ()
    assert yaml.safe_load(path.read_text())["tokens"] == {}
    # The provider refuses both tokens now.
    assert userinfo(op, token.token).status_code == 401
    assert refresh_refused(op, token.refresh_token)
    assert browser_env.unexpected == []


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_fedbearer_command_logs_in_by_discovery_and_its_logout_revokes_at_the_provider(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, isolated_env: Path
) -> None:
    """The same, as a user runs it: ``fedbearer login --issuer ... --scope ... --param ...``
    in a process of its own, Chromium as ``$BROWSER``; then ``token``, ``logout`` and
    ``status`` with no options, from the profile the login remembered."""
    op = independent_provider
    profile = "oidc-interop"
    params = {"federation-id": op.federation_id, "prompt": "consent"}
    tokens_file = isolated_env / ".cache" / "fedbearer" / "tokens.yaml"
    profiles_file = isolated_env / ".config" / "fedbearer" / "profiles.yaml"
    env = cli_environment(isolated_env, BROWSER=browser_env.browser_env)
    shown: list[str] = []  # everything the commands wrote, but the token on token's stdout

    def fedbearer(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            fedbearer_command(*args),
            env=env,
            cwd=isolated_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,  # the login's own --timeout is 60 s
            check=False,
        )
        shown.append(result.stderr if args[0] == "token" else result.stdout + result.stderr)
        return result

    # --- 1. login, in Chromium, through the provider's discovery document.
    run = browser_env.expect(login_and_approve("cli-user"))  # before the login starts
    started = time.perf_counter()
    login = fedbearer(
        "login",
        "--issuer",
        op.issuer,
        "--client-id",
        op.client_id,
        "--scope",
        SCOPE,
        # oidc-provider grants offline_access only with prompt=consent (OIDC Core §11).
        *("--param", f"federation-id={op.federation_id}", "--param", "prompt=consent"),
        *("--profile", profile, "--timeout", "60"),
        timeout=120,
    )
    login_seconds = time.perf_counter() - started
    page = run.wait(60).raise_for_error()
    assert login.returncode == 0, login.stderr
    assert page.status == 200 and "Login complete" in page.text
    # $BROWSER (the real Chromium) was given the URL the command showed.
    assert page.shim_argv is not None and page.shim_argv[-1] == page.start_url
    assert page.start_url in login.stderr
    assert browser_env.unexpected == []
    said = one_line(login.stdout)
    assert said.startswith("Logged in"), said
    assert f"profile '{profile}' at {op.issuer} (scope {SCOPE})" in said
    assert "with a refresh token" in said and f"saved in {tokens_file}." in said

    (sent,) = op.authorize_log()  # one login, Chromium's
    for query in [sent, *op.preflight_checks()]:  # the pre-flight check's is the same request
        assert query["client_id"] == op.client_id
        assert query["scope"] == SCOPE
        assert query["federation-id"] == op.federation_id
        assert query["prompt"] == "consent"
        assert query["code_challenge_method"] == "S256"
        assert query["redirect_uri"] == sent["redirect_uri"]
    assert urlsplit(sent["redirect_uri"]).hostname == "127.0.0.1"
    (exchange,) = op.token_log()
    form = exchange["form"]
    assert (form["grant_type"], exchange["status"]) == ("authorization_code", 200)
    assert form["redirect_uri"] == sent["redirect_uri"] and exchange["authorization"] is None

    # The token is in fedbearer's own file, under the key of these scopes and parameters;
    # nothing went to the Nebius CLI's.
    (key,) = yaml.safe_load(tokens_file.read_text())["tokens"]
    assert key == provider_cache_key(
        op.client_id, profile, issuer=op.issuer, scopes=SCOPES, params=params.items()
    )
    cached = FileTokenCache(tokens_file).get(key)
    assert cached is not None and cached.refresh_token
    assert not (isolated_env / ".nebius").exists()

    # --- 2. token, with no options: the remembered profile's token, without a new login.
    token = fedbearer("token")
    assert token.returncode == 0, token.stderr
    assert token.stdout == cached.token + "\n" and token.stderr == ""
    me = userinfo(op, cached.token)
    assert me.status_code == 200, me.text
    # The profile and email scopes were granted: their claims are released.
    assert me.json()["name"] == "cli-user"
    assert me.json()["email"] == "cli-user@interop.test"
    assert len(op.authorize_log()) == 1 and len(op.token_log()) == 1

    # --- 3. logout, with no options: revoked at the discovered endpoint, then forgotten.
    logout = fedbearer("logout")
    assert logout.returncode == 0, logout.stderr
    assert logout.stderr == ""
    assert one_line(logout.stdout) == (
        f"Logged out: revoked the refresh token and access token at {op.revocation_url} and "
        f"removed the cached token of profile '{profile}' at {op.issuer} (scope {SCOPE}) "
        f"from {tokens_file}."
    )
    assert userinfo(op, cached.token).status_code == 401
    assert refresh_refused(op, cached.refresh_token)
    assert yaml.safe_load(tokens_file.read_text())["tokens"] == {}

    # --- 4. status: the remembered profile, with its issuer, and no token.
    status = fedbearer("status")
    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    assert status.stdout.splitlines() == [
        f"Profiles remembered by fedbearer login, in {profiles_file}:",
        f"  {profile} (the default): client {op.client_id} at {op.issuer} (scope {SCOPE})",
        f"No cached tokens in {tokens_file} or {isolated_env / '.nebius' / 'credentials.yaml'}.",
    ]
    status_json = fedbearer("status", "--format", "json")
    assert status_json.returncode == 0, status_json.stderr
    document = json.loads(status_json.stdout)
    assert document["default_profile"] == profile
    assert document["profiles"] == [
        {
            "name": profile,
            "client_id": op.client_id,
            "federation_endpoint": "",
            "federation_id": "",
            "issuer": op.issuer,
            "scopes": list(SCOPES),
            "params": params,
        }
    ]
    assert document["current"] == key and document["tokens"] == []
    assert not (isolated_env / ".nebius").exists()

    # No secret in anything the commands showed (the token only where it was asked for).
    secrets = [cached.token, cached.refresh_token, form["code"], form["code_verifier"]]
    assert len(shown) == 5  # login, token, logout, status, status --format json
    for text in shown:
        for secret in secrets:
            assert secret not in text
    print(
        f"\nfedbearer login --issuer in a process of its own, Chromium as $BROWSER: "
        f"{login_seconds:.2f} s (Chromium's part: {page.duration:.2f} s)"
    )
