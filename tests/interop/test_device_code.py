"""A device-code login (RFC 8628, issue 20) against the independent provider: oidc-provider's
``deviceFlow``, found through its discovery document, with the real Chromium as the person
who types the user code on the provider's page, signs in and consents. From
``FederationAuth.from_issuer`` (the choice forced, then made automatically in a simulated
SSH session) and from ``fedbearer login --device-code`` in a process of its own.
"""

from __future__ import annotations

import io
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import requests

from fedbearer import FederationAuth, MemoryTokenCache

from . import cli_environment, fedbearer_command
from .chromium import BrowserDriver, BrowserScriptError, Script, ScriptContext
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

web = requests.Session()
web.trust_env = False  # loopback only

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_SHOWN = re.compile(r"open\s+(\S+)\s+and enter the code\s+(\S+)")


def enter_code(user_code: str, username: str) -> Script:
    """A person at another computer: the verification page is open; type the code, confirm
    it, sign in on oidc-provider's devInteractions page, consent, and stop on its success
    page."""

    def run(ctx: ScriptContext) -> None:
        page = ctx.page
        for _step in range(8):
            if "Sign-in Success" in page.title():
                return
            # The confirmation form carries the code too, in a hidden field.
            code = page.locator("input[name=user_code]:not([type=hidden])")
            confirm = page.locator("button[autofocus][form='op.deviceConfirmForm']")
            login = page.locator("form input[name=login]")
            consent = page.locator("form:has(input[name=prompt][value=consent]) button")
            if confirm.count():
                ctx.submit_and_wait(confirm)
            elif code.count():
                code.fill(user_code)
                ctx.submit_and_wait(page.locator("button[form='op.deviceInputForm']"))
            elif login.count():
                login.fill(username)
                page.locator("form input[name=password]").fill("any")
                ctx.submit_and_wait(page.locator("form button[type=submit]"))
            elif consent.count():
                ctx.submit_and_wait(consent.first)
            else:
                text = page.evaluate("() => document.body ? document.body.innerText : ''")
                raise BrowserScriptError(f"unexpected page {page.url}: {text[:300]!r}")
        raise BrowserScriptError("the provider never showed its success page")

    return Script(f"enter_code({username!r})", run)


def person_reading(
    shown: Callable[[], str], driver: BrowserDriver, username: str, found: list[str]
) -> threading.Thread:
    """A thread that waits for the code on the terminal, then enters it in Chromium."""

    def read_and_enter() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = _SHOWN.search(shown())
            if match:
                uri, user_code = match.groups()
                found.extend([uri, user_code])
                driver.open(uri, enter_code(user_code, username)).wait(60).raise_for_error()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=read_and_enter, daemon=True)
    thread.start()
    return thread


def userinfo(op: IndependentProvider, token: str) -> dict[str, object]:
    answer = web.get(op.userinfo_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize("automatic", [False, True], ids=["forced", "ssh-session"])
def test_from_issuer_logs_in_with_a_code_entered_in_chromium(
    independent_provider: IndependentProvider,
    browser_driver: BrowserDriver,
    monkeypatch: pytest.MonkeyPatch,
    automatic: bool,
) -> None:
    op = independent_provider
    document = web.get(op.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert document["device_authorization_endpoint"].startswith(op.issuer)
    if automatic:  # an SSH session, no display, no $BROWSER: no browser can open here
        monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
            monkeypatch.delenv(name, raising=False)
    writer = io.StringIO()
    found: list[str] = []
    person = person_reading(writer.getvalue, browser_driver, "device-user", found)
    auth = FederationAuth.from_issuer(
        op.issuer,
        op.client_id,
        scopes=("openid", "email"),
        params={"federation-id": op.federation_id},
        writer=writer,
        timeout=90,
        interactive=True,
        cache=MemoryTokenCache(),
        device_code=None if automatic else True,
    )
    token = auth.get_token()
    person.join(30)
    assert found and found[0] == document["device_authorization_endpoint"].rsplit("/", 1)[0]
    assert userinfo(op, token.token) == {
        "sub": "device-user",
        "email": "device-user@interop.test",
        "email_verified": False,
    }
    # The independent provider's ID token names the account, as after a browser login.
    assert token.account is not None and token.account.sub == "device-user"
    assert op.authorize_log() == []  # no browser login was started here
    polls = [e for e in op.token_log() if e["form"].get("grant_type") == DEVICE_GRANT]
    assert polls and polls[-1]["status"] == 200
    assert all(e["authorization"] is None for e in polls)  # a public client
    # The provider's interval (5 s) was kept: no poll came sooner than it allows.
    assert not any(e["status"] == 400 and "slow_down" in str(e) for e in polls)
    for earlier, later in zip(polls, polls[1:]):
        assert later["time"] - earlier["time"] >= 4.5
    # Cached, refreshed and revoked like any other token.
    renewed = auth.bearer.refresh(token)
    assert userinfo(op, renewed.token)["sub"] == "device-user"
    assert auth.logout().revoked == ("refresh_token", "access_token")


def test_fedbearer_login_device_code_in_a_process_of_its_own(
    independent_provider: IndependentProvider, browser_driver: BrowserDriver, tmp_path: Path
) -> None:
    op = independent_provider
    env = cli_environment(tmp_path)  # no DISPLAY, no BROWSER
    process = subprocess.Popen(
        fedbearer_command(
            "login",
            "--device-code",
            *("--issuer", op.issuer, "--client-id", op.client_id),
            *("--param", f"federation-id={op.federation_id}", "--profile", "device"),
            *("--timeout", "90"),
        ),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def collect() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    found: list[str] = []
    person = person_reading(lambda: "".join(lines), browser_driver, "cli-device-user", found)
    try:
        # Not communicate(): it would read stderr too, racing the reader for the code.
        process.wait(timeout=120)
        assert process.stdout is not None
        out = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    person.join(30)
    reader.join(5)
    shown = "".join(lines)
    assert process.returncode == 0, shown
    assert found, shown
    assert out.startswith("Logged in"), out
    assert op.authorize_log() == []
    # Remembered with the profile: the next command needs no options, and no login.
    profiles = (tmp_path / ".config" / "fedbearer" / "profiles.yaml").read_text()
    assert "device_code: true" in profiles
    token = subprocess.run(
        fedbearer_command("token"),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert token.returncode == 0, token.stderr
    assert userinfo(op, token.stdout.strip())["sub"] == "cli-device-user"
