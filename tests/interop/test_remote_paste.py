"""``fedbearer login`` over a faked SSH session, finished by pasting what a real Chromium
could not load; ``fedbearer token --non-interactive`` failing fast. Issue 7, "Done when".

The CLI runs as ``python -m fedbearer`` in a pseudo-terminal (pexpect) with an environment
that says SSH and no display: ``SSH_CONNECTION``/``SSH_TTY`` set, no ``DISPLAY``,
``WAYLAND_DISPLAY`` or ``BROWSER``, ``TERM=xterm`` (so :mod:`webbrowser` would consider
console browsers), and a ``PATH`` of fake ``xdg-open``/``www-browser``/``lynx``/... that
record any call. The user's browser is the driver's real Chromium on the independent
provider: it logs in through the devInteractions pages and is then refused the redirect to
``http://127.0.0.1:<port>/?code=...`` (:mod:`.remote_browser`), as a browser on another
machine would be, although fedbearer's loopback server is listening here. The address on
Chromium's error page is pasted into the terminal.
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from fedbearer import FileTokenCache, cache_key

from ..conftest import import_or_fail
from . import cli_environment, fedbearer_command
from .chromium import BrowserDriver
from .provider import IndependentProvider
from .remote_browser import login_and_approve_unreachable

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals and paste are POSIX"),
]

SSH_CONNECTION = "10.0.0.1 5555 10.0.0.2 22"
# Every browser launcher webbrowser or a desktop might try; each records its calls.
LAUNCHERS = (
    "xdg-open",
    "www-browser",
    "x-www-browser",
    "sensible-browser",
    "lynx",
    "w3m",
    "links",
    "elinks",
    "gio",
    "chromium",
    "firefox",
)
# The authorization URL as the instructions show it: indented, on a line of its own.
URL_RE = re.compile(r"^    (http://127\.0\.0\.1:\d+/oauth2/authorize\?\S+)\r?$", re.MULTILINE)

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False


def fake_launchers(directory: Path) -> Path:
    """``directory/bin`` with every launcher in :data:`LAUNCHERS` as a recording fake."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for name in LAUNCHERS:
        path = bin_dir / name
        record = bin_dir / f"{name}.called"
        path.write_text(
            f"#!{sys.executable}\n"
            + textwrap.dedent(
                f"""\
                import sys
                with open({str(record)!r}, "a") as f:
                    f.write(repr(sys.argv) + "\\n")
                """
            )
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def launched(bin_dir: Path) -> list[str]:
    return sorted(p.name for p in bin_dir.glob("*.called"))


def ssh_environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A faked SSH session without a display, built from nothing (no ambient DISPLAY,
    BROWSER, proxies...), with the fake launchers as the whole ``PATH``."""
    bin_dir = fake_launchers(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = cli_environment(
        home,
        PATH=str(bin_dir),
        TERM="xterm",
        SSH_CONNECTION=SSH_CONNECTION,
        SSH_TTY="/dev/pts/3",
    )
    return env, bin_dir


def cli(command: str, op: IndependentProvider, cache_file: Path, *options: str) -> list[str]:
    """``python -m fedbearer <command> <options> --client-id ... --cache-file <cache_file>``."""
    return fedbearer_command(
        command,
        *options,
        "--client-id",
        op.client_id,
        "--federation-endpoint",
        op.endpoint,
        "--federation-id",
        op.federation_id,
        "--cache-file",
        str(cache_file),
    )


@pytest.mark.browser
def test_ssh_login_in_a_terminal_completes_from_the_address_chromium_could_not_load(
    independent_provider: IndependentProvider, browser_driver: BrowserDriver, tmp_path: Path
) -> None:
    pexpect = import_or_fail("pexpect")
    op = independent_provider
    env, bin_dir = ssh_environment(tmp_path)
    cache_file = tmp_path / "cache" / "credentials.yaml"
    started = time.perf_counter()
    command = cli("login", op, cache_file, "--timeout", "60")
    child = pexpect.spawn(
        command[0],
        command[1:],
        env=env,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 400),
    )
    child.logfile_read = io.StringIO()
    try:
        child.expect("Waiting for the login to finish")
        shown = child.logfile_read.getvalue()
        found = URL_RE.search(shown)
        assert found is not None, shown
        url = found.group(1)
        authorize = dict(parse_qsl(urlsplit(url).query))
        redirect_uri = authorize["redirect_uri"]
        port = urlsplit(redirect_uri).port
        assert redirect_uri == f"http://127.0.0.1:{port}"
        assert "No browser was opened" in shown
        assert f"ssh -L {port}:127.0.0.1:{port} 10.0.0.2" in shown
        assert "paste it here" in shown

        # The user's browser, elsewhere: logs in, then cannot reach 127.0.0.1:<port>.
        capture = login_and_approve_unreachable("paste-user")
        page = browser_driver.open(url, capture.script).wait(60).raise_for_error()
        assert capture.passed == []
        # Only the callback was refused. Chromium may retry a refused navigation once on a
        # busy machine (seen: the same URL twice), so duplicates of it are not a failure.
        assert set(capture.refused) == {capture.address}, capture.refused
        assert "refused to connect" in page.text  # Chromium's own error page
        pasted = capture.address
        assert pasted is not None and pasted.startswith(redirect_uri + "/?")
        callback = dict(parse_qsl(urlsplit(pasted).query))
        assert set(callback) == {"code", "state", "iss"}
        assert callback["state"] == authorize["state"]
        assert callback["iss"] == op.issuer
        assert op.token_log() == []  # nothing reached fedbearer: no exchange yet
        browser_seconds = page.duration

        child.sendline(pasted)
        child.expect("Got the login response from the pasted address")
        child.expect(r"Logged in(?: as [^:]+)?: profile 'default'")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    elapsed = time.perf_counter() - started
    transcript = child.logfile_read.getvalue()
    assert child.exitstatus == 0, transcript
    assert f"saved in {cache_file}" in transcript
    print(
        f"\nSSH login in a pty, finished by a paste: {elapsed:.2f} s in all "
        f"(Chromium's login and refused callback: {browser_seconds:.2f} s)"
    )

    # What the provider saw: one authorization, one exchange of the pasted code.
    assert len(op.authorize_log()) == 1
    exchanges = op.token_log()
    assert [(e["form"]["grant_type"], e["status"]) for e in exchanges] == [
        ("authorization_code", 200)
    ]
    assert exchanges[0]["form"]["code"] == callback["code"]
    assert exchanges[0]["form"]["redirect_uri"] == redirect_uri

    # `fedbearer token` prints the cached token (no second login), and the provider takes it.
    token_run = subprocess.run(
        cli("token", op, cache_file, "--non-interactive"),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert token_run.returncode == 0, token_run.stderr
    access_token = token_run.stdout.strip()
    assert token_run.stdout == access_token + "\n"
    me = web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "paste-user"
    assert len(op.authorize_log()) == 1 and len(op.token_log()) == 1

    # Never the token; the code only as the terminal echoed the paste, once.
    cached = FileTokenCache(cache_file).get(cache_key(op.endpoint, op.federation_id, "default"))
    assert cached is not None and cached.token == access_token and cached.refresh_token
    assert access_token not in transcript
    assert cached.refresh_token not in transcript
    assert transcript.count(callback["code"]) == 1
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600

    # No browser was launched on this machine.
    assert launched(bin_dir) == []
    assert browser_driver.unexpected == []


def test_token_non_interactive_with_an_empty_cache_fails_at_once_naming_fedbearer_login(
    independent_provider: IndependentProvider, tmp_path: Path
) -> None:
    op = independent_provider
    env, bin_dir = ssh_environment(tmp_path)
    cache_file = tmp_path / "empty" / "credentials.yaml"

    started = time.perf_counter()
    result = subprocess.run(
        cli("token", op, cache_file, "--non-interactive"),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.perf_counter() - started

    baseline_started = time.perf_counter()
    subprocess.run(
        fedbearer_command("--version"),
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    baseline = time.perf_counter() - baseline_started
    print(
        f"\nfedbearer token --non-interactive, empty cache: exit {result.returncode} after "
        f"{elapsed:.3f} s (process start to exit; `fedbearer --version` takes {baseline:.3f} s)"
    )

    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("fedbearer token: error: "), message
    assert "fedbearer login" in message
    assert f"--client-id {op.client_id}" in message
    assert f"--federation-endpoint {op.endpoint}" in message
    assert elapsed < 5, elapsed  # loosely: under a second in practice
    # It asked nobody: no authorization, no token request, no browser.
    assert op.authorize_log() == [] and op.token_log() == []
    assert launched(bin_dir) == []
    assert not os.path.exists(cache_file)


def test_non_interactive_hint_logs_into_the_cache_file_that_was_read(
    independent_provider: IndependentProvider, tmp_path: Path
) -> None:
    op = independent_provider
    env, _bin_dir = ssh_environment(tmp_path)
    cache_file = tmp_path / "elsewhere" / "credentials.yaml"
    result = subprocess.run(
        cli("token", op, cache_file, "--non-interactive"),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert f"--cache-file {cache_file}" in result.stderr
