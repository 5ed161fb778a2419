"""The ``fedbearer`` command: in-process through ``main([...])``, and as ``python -m fedbearer``.

Logins are real: a LocalFederation, the real loopback server, and ``$BROWSER`` naming a small
script that walks the login URL with ``ProgrammaticBrowser`` in its own process (the CLI has
no opener option; ``$BROWSER`` is how a user plugs in their own browser command too).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from importlib.metadata import distribution
from urllib.parse import parse_qsl, urlsplit

import pytest

from fedbearer import FileTokenCache, LoginTimeoutError, Token, _clock, cache_key
from fedbearer._cli import (
    EXIT_FAILURE,
    EXIT_INTERACTION_REQUIRED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    main,
)
from fedbearer._cli.output import Progress, subject
from fedbearer._credentials import Credentials

from .conftest import wait_for

# The command runs logins as a person does ($BROWSER, no opener) on a temporary HOME.
pytestmark = pytest.mark.fedbearer_real


@pytest.fixture
def default_cache(isolated_env):
    return FileTokenCache(isolated_env / ".nebius" / "credentials.yaml")


def flags(fed, *extra, login=True, preflight=True):
    """Identity options for ``fed``; with ``login``, also a client id and a short timeout.

    ``preflight=False`` turns the pre-flight check off, for tests that count the
    federation's approvals or queue a fault for the next authorization request: the
    check's own request to the federation would take them.
    """
    args = ["--federation-endpoint", fed.endpoint, "--federation-id", fed.federation_id]
    if login:
        args += ["--client-id", fed.client_id, "--timeout", "20"]
    if not preflight:
        args.append("--no-preflight")
    return [*args, *extra]


def key_of(fed, profile="default"):
    return cache_key(fed.endpoint, fed.federation_id, profile)


def seed(cache, key, token=None, *, lifetime=3600.0, refresh_token=None):
    value = token or f"seeded-{key[-7:]}-{time.monotonic_ns()}"
    expiration = datetime.fromtimestamp(_clock.now() + lifetime, tz=timezone.utc)
    cache.put(key, Token(value, expiration, refresh_token=refresh_token))
    return value


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------------- help, usage


def test_help_lists_every_command_and_the_exit_codes(capsys):
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for command in ("login", "token", "logout", "status", "demo"):
        assert command in out
    assert "exit codes" in out and "130" in out


@pytest.mark.parametrize("command", ["login", "token", "logout", "status"])
def test_every_identity_command_has_help_with_options_and_environment(command, capsys):
    assert main([command, "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for option in (
        "--client-id",
        "--federation-endpoint",
        "--federation-id",
        "--profile",
        "--nebius-profile",
        "--cache-file",
        "--debug",
        "FEDBEARER_CLIENT_ID",
        "FEDBEARER_FEDERATION_ENDPOINT",
    ):
        assert option in out, option
    defined = set(re.findall(r"^\s+(--[a-z-]+)", out, flags=re.MULTILINE))
    login_options = {"--no-browser", "--timeout", "--port", "--non-interactive"}
    assert (login_options <= defined) == (command in ("login", "token"))
    assert not (login_options & defined) or command in ("login", "token")


def test_demo_has_help(capsys):
    assert main(["demo", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "--no-browser" in out and "temporary" in out


def test_no_command_shows_help_and_exits_2(capsys):
    assert main([]) == EXIT_USAGE
    assert "login" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["login", "--port", "70000"], "--port"),
        (["login", "--port", "-1"], "--port"),
        (["token", "--timeout", "0"], "--timeout"),
        (["token", "--timeout", "soon"], "--timeout"),
        (["login", "--bogus"], "--bogus"),
        (["logout", "--cache-file", ""], "--cache-file"),
        (["nosuch"], "nosuch"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv, mentions, capsys):
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("fedbearer") and "error:" in line and mentions in line
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["token", "--federation-endpoint", "auth.example", "--federation-id", "f"], "--client-id"),
        (["login", "--client-id", "c", "--federation-id", "f"], "FEDBEARER_FEDERATION_ENDPOINT"),
        (["logout", "--federation-endpoint", "auth.example"], "FEDBEARER_FEDERATION_ID"),
        (
            ["login", "--client-id", "c", "--federation-id", "f", "--federation-endpoint", "x?y"],
            "endpoint",
        ),
        (["login", "--client-id", "c", "--nebius-profile", "dev"], "config.yaml"),
        (
            [
                "logout",
                "--federation-endpoint",
                "a.example",
                "--federation-id",
                "",
                "--profile",
                "",
            ],
            "--profile",
        ),
    ],
)
def test_missing_or_bad_settings_exit_2_with_a_hint(argv, mentions, capsys):
    assert main(argv) == EXIT_USAGE
    line = one_line(capsys.readouterr().err)
    assert mentions in line and "Traceback" not in line


# ---------------------------------------------------------------------------- non-interactive


def test_non_interactive_with_an_empty_cache_fails_fast_with_exit_3(local_federation, capsys):
    started = time.monotonic()
    status = main(["token", *flags(local_federation, "--non-interactive")])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert status == EXIT_INTERACTION_REQUIRED
    assert elapsed < 15  # not the login's 20 s timeout: it never waited
    line = one_line(captured.err)
    assert "fedbearer login" in line and "--client-id" in line
    assert captured.out == "" and local_federation.authorize_requests == 0


def test_fedbearer_interactive_0_in_the_environment_also_means_exit_3(
    local_federation, monkeypatch, capsys
):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "0")
    assert main(["login", *flags(local_federation)]) == EXIT_INTERACTION_REQUIRED
    assert "FEDBEARER_INTERACTIVE=0" in one_line(capsys.readouterr().err)


def test_ci_true_in_the_environment_is_named_as_what_turned_logins_off(
    local_federation, monkeypatch, capsys
):
    monkeypatch.setenv("CI", "true")
    assert main(["token", *flags(local_federation)]) == EXIT_INTERACTION_REQUIRED
    line = one_line(capsys.readouterr().err)
    assert "but CI=true turns interactive logins off" in line
    assert "a terminal where CI is not set" in line and "FEDBEARER_INTERACTIVE=" not in line


def test_following_the_exit_3_login_command_fixes_the_failure(
    local_federation, browser_command, tmp_path, capsys
):
    cache = ["--cache-file", str(tmp_path / "tokens.yaml")]
    argv = ["token", *flags(local_federation, "--profile", "ci", *cache, "--non-interactive")]
    assert main(argv) == EXIT_INTERACTION_REQUIRED
    command = shlex.split(one_line(capsys.readouterr().err).split(" with: ", 1)[1])
    assert command[:2] == ["fedbearer", "login"]
    assert main(command[1:]) == EXIT_OK  # same identity, same cache file
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    assert local_federation.is_valid(capsys.readouterr().out.strip())
    assert local_federation.code_exchanges == 1  # the login; then the cached token
    assert local_federation.refreshes == 0


def test_non_interactive_still_uses_a_cached_token(local_federation, default_cache, capsys):
    token = seed(default_cache, key_of(local_federation))
    assert main(["token", *flags(local_federation, "--non-interactive")]) == EXIT_OK
    assert capsys.readouterr().out == token + "\n"


# ---------------------------------------------------------------------------- login, token


def test_login_logs_in_through_the_browser_and_never_prints_the_token(
    local_federation, browser_command, default_cache, capsys
):
    assert main(["login", *flags(local_federation, preflight=False)]) == EXIT_OK
    captured = capsys.readouterr()
    cached = default_cache.get(key_of(local_federation))
    assert cached is not None and local_federation.is_valid(cached.token)
    assert local_federation.logins == 1
    assert cached.token not in captured.out + captured.err
    assert cached.refresh_token and cached.refresh_token not in captured.out + captured.err
    line = one_line(captured.out)
    assert line.startswith("Logged in")
    assert "profile 'default'" in line and local_federation.endpoint in line
    assert "valid until" in line and default_cache.path in line
    assert "/oauth2/authorize?" in captured.err  # the URL is always shown


def test_login_reuses_a_valid_cached_token_and_says_so(local_federation, default_cache, capsys):
    token = seed(default_cache, key_of(local_federation, "work"))
    assert main(["login", *flags(local_federation, "--profile", "work")]) == EXIT_OK
    captured = capsys.readouterr()
    assert one_line(captured.out).startswith("Already logged in")
    assert "profile 'work'" in captured.out and token not in captured.out + captured.err
    assert local_federation.authorize_requests == 0 and captured.err == ""


def test_token_prints_exactly_a_valid_token_and_reuses_it(
    local_federation, browser_command, default_cache, capsys
):
    assert main(["token", *flags(local_federation, preflight=False)]) == EXIT_OK
    first = capsys.readouterr()
    token = first.out.removesuffix("\n")
    assert first.out == token + "\n" and "\n" not in token
    assert local_federation.is_valid(token)
    assert "Logged in" in first.err and token not in first.err

    assert main(["token", *flags(local_federation, preflight=False)]) == EXIT_OK
    second = capsys.readouterr()
    assert second.out == first.out and second.err == ""
    assert local_federation.logins == 1


def test_token_near_expiry_is_renewed_with_the_refresh_token_without_a_browser(
    local_federation, browser_command, default_cache, monkeypatch, capsys
):
    assert main(["token", *flags(local_federation, preflight=False)]) == EXIT_OK
    old = capsys.readouterr().out.strip()
    later = _clock.now() + 3600 - 60  # inside the refresh margin, not yet expired
    monkeypatch.setattr(_clock, "now", lambda: later)
    monkeypatch.setenv("BROWSER", "false %s")  # a login now would fail
    assert main(["token", *flags(local_federation, preflight=False)]) == EXIT_OK
    captured = capsys.readouterr()
    new = captured.out.strip()
    assert new != old and local_federation.is_valid(new)
    assert local_federation.refreshes == 1 and local_federation.logins == 1
    assert "Renewed" in captured.err and new not in captured.err


def test_a_refused_login_is_one_line_and_exit_1_and_debug_adds_the_traceback(
    local_federation, browser_command, capsys
):
    local_federation.fail_next("deny")
    assert main(["login", *flags(local_federation, preflight=False)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fedbearer login: error:") and "access_denied" in last

    local_federation.fail_next("deny")
    assert main(["login", *flags(local_federation, "--debug", preflight=False)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "Traceback" in err and "AuthorizationError" in err
    assert "fedbearer.loopback DEBUG" in err


def test_debug_logs_never_contain_the_token(local_federation, browser_command, capsys):
    assert main(["token", *flags(local_federation, "--debug")]) == EXIT_OK
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert local_federation.is_valid(token)
    assert "DEBUG" in captured.err and token not in captured.err


def test_login_timeout_exits_1_with_a_timeout_hint(local_federation, capsys):
    argv = ["login", *flags(local_federation), "--no-browser", "--timeout", "0.3"]
    assert main(argv) == EXIT_FAILURE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "deadline" in last and "--timeout" in last


def test_port_option_fixes_the_callback_port(local_federation, browser_command, capsys):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["token", *flags(local_federation, "--port", str(port))]) == EXIT_OK
    assert local_federation.authorize_params[-1]["redirect_uri"] == f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------- settings


def test_environment_variables_configure_every_setting(
    local_federation, default_cache, monkeypatch, capsys
):
    monkeypatch.setenv("FEDBEARER_CLIENT_ID", local_federation.client_id)
    monkeypatch.setenv("FEDBEARER_FEDERATION_ENDPOINT", local_federation.endpoint)
    monkeypatch.setenv("FEDBEARER_FEDERATION_ID", local_federation.federation_id)
    monkeypatch.setenv("FEDBEARER_PROFILE", "from-env")
    token = seed(default_cache, key_of(local_federation, "from-env"))
    assert main(["token", "--non-interactive"]) == EXIT_OK
    assert capsys.readouterr().out == token + "\n"
    # An option wins over its variable: another profile, nothing cached for it.
    argv = ["token", "--non-interactive", "--profile", "other"]
    assert main(argv) == EXIT_INTERACTION_REQUIRED


def test_nebius_profile_supplies_endpoint_federation_id_and_profile_name(
    local_federation, browser_command, isolated_env, default_cache, capsys
):
    config = isolated_env / ".nebius" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "default: prod\n"
        "profiles:\n"
        "  prod:\n"
        "    auth-type: federation\n"
        "    federation-endpoint: auth.invalid\n"
        "    federation-id: nope\n"
        "  dev:\n"
        "    auth-type: federation\n"
        f"    federation-endpoint: {local_federation.endpoint}\n"
        f"    federation-id: {local_federation.federation_id}\n"
    )
    argv = ["login", "--client-id", local_federation.client_id, "--nebius-profile", "dev"]
    assert main(argv) == EXIT_OK
    assert "profile 'dev'" in capsys.readouterr().out
    assert [key for key, _ in default_cache.entries()] == [key_of(local_federation, "dev")]
    assert local_federation.authorize_params[-1]["federation-id"] == "test-federation"


def test_unknown_nebius_profile_lists_the_available_ones(isolated_env, capsys):
    config = isolated_env / ".nebius" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "profiles:\n  prod:\n    auth-type: federation\n"
        "    federation-endpoint: auth.example\n    federation-id: f\n"
    )
    assert main(["logout", "--nebius-profile", "dev"]) == EXIT_USAGE
    assert "available: prod" in one_line(capsys.readouterr().err)


def test_cache_file_option_replaces_the_default_file(
    local_federation, default_cache, tmp_path, capsys
):
    custom = FileTokenCache(tmp_path / "elsewhere" / "tokens.yaml")
    token = seed(custom, key_of(local_federation))
    argv = ["token", *flags(local_federation, "--non-interactive", "--cache-file", custom.path)]
    assert main(argv) == EXIT_OK
    assert capsys.readouterr().out == token + "\n"
    assert not os.path.exists(default_cache.path)


# ---------------------------------------------------------------------------- status, logout


def test_status_lists_entries_and_expiry_but_never_tokens(local_federation, default_cache, capsys):
    live = seed(default_cache, key_of(local_federation), refresh_token="rt-secret-1")
    other = seed(default_cache, cache_key("auth.example", "f2", "ci"), lifetime=7200)
    assert main(["status", *flags(local_federation, login=False)]) == EXIT_OK
    out = capsys.readouterr().out
    assert default_cache.path in out
    lines = out.strip().splitlines()[1:]
    assert len(lines) == 2
    mine = next(line for line in lines if key_of(local_federation) in line)
    theirs = next(line for line in lines if "federation/auth.example/f2/ci" in line)
    assert mine.startswith("* ") and "valid until" in mine and "with a refresh token" in mine
    assert theirs.startswith("  ") and "refresh token" not in theirs
    for secret in (live, other, "rt-secret-1"):
        assert secret not in out


def test_status_shows_expired_entries_as_expired(local_federation, default_cache, capsys):
    seed(default_cache, key_of(local_federation), lifetime=3600)
    later = _clock.now() + 7200
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_clock, "now", lambda: later)
        assert main(["status"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "expired at" in out and "ago" in out


def test_status_of_an_empty_cache(capsys, default_cache, isolated_env):
    assert main(["status"]) == EXIT_OK
    provider_file = isolated_env / ".cache" / "fedbearer" / "tokens.yaml"
    assert one_line(capsys.readouterr().out) == (
        f"No cached tokens in {default_cache.path} or {provider_file}."
    )


def test_logout_removes_only_that_entry(local_federation, default_cache, capsys):
    seed(default_cache, key_of(local_federation))
    kept = seed(default_cache, key_of(local_federation, "other"))
    argv = ["logout", *flags(local_federation, login=False)]
    assert main(argv) == EXIT_OK
    assert one_line(capsys.readouterr().out).startswith("Logged out")
    assert default_cache.get(key_of(local_federation)) is None
    assert default_cache.get(key_of(local_federation, "other")).token == kept

    assert main(argv) == EXIT_OK  # nothing left: still fine, and says so
    assert one_line(capsys.readouterr().out).startswith("Not logged in")


# ---------------------------------------------------------------------------- pieces


def _jwt(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (_jwt({"sub": "u-1", "email": "ann@example.com"}), "ann@example.com"),
        (_jwt({"sub": "u-1"}), "u-1"),
        (_jwt({"sub": 42}), None),
        (_jwt(["not", "a", "mapping"]), None),
        ("opaque-token", None),
        ("a.!!!.c", None),
    ],
)
def test_subject_is_read_from_jwt_claims_only(token, expected):
    assert subject(token) == expected


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def progress_threads():
    return [t for t in threading.enumerate() if t.name == "fedbearer-progress"]


def test_progress_redraws_an_elapsed_line_on_a_terminal_and_stops_cleanly():
    screen = FakeTerminal()
    progress = Progress(screen, live=True, tick=0.01)
    assert not progress.started and progress_threads() == []
    progress.write("Open this URL\n")
    assert progress.started
    assert wait_for(lambda: screen.getvalue().count("\rWaiting for the browser") >= 2)
    progress.write("Logged in.\n")
    progress.close()
    assert progress_threads() == []
    text = screen.getvalue()
    after = text.rsplit("Logged in.\n", 1)[1]
    # Whatever was drawn after the last message was blanked out by close().
    assert after.strip(" \r") == "" and not after.endswith(" ")
    assert "\x1b" not in text  # carriage returns and spaces only
    progress.write("late message\n")  # a late writer (the browser thread) still gets through
    assert progress_threads() == [] and screen.getvalue().endswith("late message\n")


def test_progress_writes_plain_lines_when_not_on_a_terminal():
    stream = io.StringIO()
    with Progress(stream, live=False, tick=0.01, plain_every=0.03, indent="  ") as progress:
        progress.write("Open this URL\nand wait\n")
        assert wait_for(lambda: stream.getvalue().count("Still waiting for the login") >= 2)
    assert progress_threads() == []
    text = stream.getvalue()
    assert "\r" not in text and text.startswith("  Open this URL\n  and wait\n")


def test_a_refresh_writes_nothing_so_progress_does_not_start():
    with Progress(io.StringIO(), live=True, tick=0.01) as progress:
        pass
    assert not progress.started and progress_threads() == []


def test_console_script_is_main():
    (script,) = [
        e
        for e in distribution("fedbearer").entry_points
        if e.group == "console_scripts" and e.name == "fedbearer"
    ]
    assert script.load() is main


def test_importing_fedbearer_does_not_import_the_cli_or_the_test_kit():
    code = (
        "import sys, fedbearer; "
        "print([m for m in ('fedbearer._cli', 'fedbearer.testing', 'argparse') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------- subprocesses


def run_cli(*args, timeout=30, stdin=subprocess.DEVNULL, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "fedbearer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
        **kwargs,
    )


def test_python_m_fedbearer_help():
    result = run_cli("--help")
    assert result.returncode == 0 and "demo" in result.stdout and result.stderr == ""


def test_demo_runs_headless_in_seconds_explains_each_step_and_shows_no_token():
    started = time.monotonic()
    result = run_cli("demo")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 20
    out = result.stdout
    for number in range(1, 7):
        assert f"[{number}/6]" in out
    assert "standard input is not a terminal" in out or "No browser will be opened" in out
    assert "GET /whoami -> 200" in out and "-> 401 (invalid_token)" in out
    assert "1 login(s), 1 refresh(es)" in out and "Done in" in out
    # Random 43-character values in the output may only be the authorize URL's state and
    # PKCE challenge (public by design); a token or code would be one more.
    url = re.search(r"http://127\.0\.0\.1:\d+/oauth2/authorize\?\S+", out)
    assert url is not None
    public = dict(parse_qsl(urlsplit(url.group(0)).query))
    shown = set(re.findall(r"[A-Za-z0-9_-]{32,}", out + result.stderr))
    assert shown == {public["state"], public["code_challenge"]}


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_demo_with_a_browser_and_a_terminal_goes_through_the_approval_page(browser_command):
    controller, terminal = os.openpty()  # stdin is a terminal: someone could press Approve
    try:
        env = {**os.environ, "TEST_BROWSER_USER": "pat"}
        result = run_cli("demo", stdin=terminal, env=env)
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Your browser will open the federation's approval page" in result.stdout
    # The name typed on the approval page is the one the API sees.
    assert '"user": "pat"' in result.stdout and "1 login(s)" in result.stdout


def test_cli_process_logs_in_with_browser_and_prints_only_the_token(
    local_federation, browser_command, isolated_env
):
    args = ["token", *flags(local_federation)]
    result = run_cli(*args, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    token = result.stdout.removesuffix("\n")
    assert result.stdout == token + "\n" and local_federation.is_valid(token)
    assert token not in result.stderr
    status = run_cli("status", env=dict(os.environ))
    assert key_of(local_federation) in status.stdout and token not in status.stdout


NOISY_BROWSER_SCRIPT = """\
import sys
from fedbearer.testing import ProgrammaticBrowser

# What Chrome prints, to the stdout it inherited, when a window is already open.
print("Opening in existing browser session.", flush=True)
browser = ProgrammaticBrowser()
browser(sys.argv[1])
sys.exit(0 if browser.join(10) and browser.error is None else 1)
"""

LINGERING_BROWSER_SCRIPT = """\
import subprocess
import sys
from fedbearer.testing import ProgrammaticBrowser

# A browser that leaves a long-lived process behind, holding the stdout it inherited
# (a real browser's helper processes do); its PID goes to argv[2] for the test to end it.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[2], "w") as f:
    f.write(str(child.pid))
browser = ProgrammaticBrowser()
browser(sys.argv[1])
sys.exit(0 if browser.join(10) and browser.error is None else 1)
"""


def test_token_stdout_is_only_the_token_when_the_browser_prints_to_stdout(
    local_federation, tmp_path, isolated_env
):
    script = tmp_path / "noisy_browser.py"
    script.write_text(NOISY_BROWSER_SCRIPT)
    env = {**os.environ, "BROWSER": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} %s"}
    result = run_cli("token", *flags(local_federation), env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.removesuffix("\n")
    assert result.stdout == token + "\n" and local_federation.is_valid(token)
    assert "Opening in existing browser session." in result.stderr  # moved, not lost


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and pipes")
def test_token_returns_promptly_when_a_browser_child_keeps_running(
    local_federation, tmp_path, isolated_env
):
    """``$(fedbearer token)`` reads stdout to its end: a browser process that inherited
    stdout and lives on would hold the command substitution open until it exits."""
    script = tmp_path / "lingering_browser.py"
    script.write_text(LINGERING_BROWSER_SCRIPT)
    pid_file = tmp_path / "child.pid"
    browser = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} %s {pid_file}"
    env = {**os.environ, "BROWSER": browser}
    # stderr to a file, as a terminal would be for $(...): only stdout is read to its end.
    with open(tmp_path / "stderr.txt", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedbearer", "token", *flags(local_federation)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
        try:
            started = time.monotonic()
            out, _ = process.communicate(timeout=20)
            elapsed = time.monotonic() - started
        except subprocess.TimeoutExpired:
            out, elapsed = None, None
        finally:
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert out is not None, "stdout stayed open while the browser's child lived on"
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()
    token = out.decode().removesuffix("\n")
    assert out.decode() == token + "\n" and local_federation.is_valid(token)
    assert elapsed < 15


@pytest.mark.parametrize("failure", [KeyboardInterrupt, LoginTimeoutError])
def test_token_points_stdout_at_stderr_during_the_login_and_restores_it(
    local_federation, monkeypatch, capsys, failure
):
    """While ``token`` logs in, fd 1 and ``sys.stdout`` are stderr (what a browser child
    inherits); afterwards they are stdout again, whatever ended the login."""
    stdout_before, fd1_before = sys.stdout, os.fstat(1)
    seen = {}

    def get_token(self):
        seen["fd1_is_stderr"] = os.path.samestat(os.fstat(1), os.fstat(2))
        seen["stdout_is_stderr"] = sys.stdout is sys.stderr
        raise failure("stop here")

    monkeypatch.setattr(Credentials, "get_token", get_token)
    status = main(["token", *flags(local_federation)])
    assert status == (EXIT_INTERRUPTED if failure is KeyboardInterrupt else EXIT_FAILURE)
    assert seen == {"fd1_is_stderr": True, "stdout_is_stderr": True}
    assert sys.stdout is stdout_before
    assert os.path.samestat(os.fstat(1), fd1_before)
    assert capsys.readouterr().out == ""


@pytest.mark.interop
@pytest.mark.browser
def test_cli_logs_in_at_an_independent_provider_through_chromium():
    """The issue's "done when": an independent OpenID provider (oidc-provider) accepts what
    ``fedbearer token`` prints, after a login through real Chromium via ``$BROWSER``."""
    from .interop import require_interop

    require_interop(provider=True, browser=True)
    from .interop.chromium import BrowserDriver, login_and_approve
    from .interop.provider import IndependentProvider

    with IndependentProvider() as op, BrowserDriver() as driver:
        env = {**os.environ, "BROWSER": driver.browser_env}
        where = ["--federation-endpoint", op.endpoint, "--federation-id", op.federation_id]
        identity = ["--client-id", op.client_id, *where]
        run = driver.expect(login_and_approve("dana"))
        result = run_cli("token", *identity, "--timeout", "60", env=env, timeout=90)
        assert result.returncode == 0, result.stderr
        token = result.stdout.removesuffix("\n")
        assert result.stdout == token + "\n" and token not in result.stderr
        assert run.wait(30).raise_for_error().status == 200

        request = urllib.request.Request(
            op.userinfo_url, headers={"Authorization": f"Bearer {token}"}
        )
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(request, timeout=10) as answer:
            assert json.load(answer)["sub"] == "dana"

        login = run_cli("login", *identity, env=env)
        status = run_cli("status", *where, env=env)
        assert login.returncode == 0 and login.stdout.startswith("Already logged in")
        assert status.returncode == 0 and status.stdout.count("\n* federation/") == 1
        for shown in (login.stdout, login.stderr, status.stdout, status.stderr):
            assert token not in shown
        # The pre-flight check's request, then the browser's: the same but for the
        # throwaway state and challenge; `login` and `status` sent none.
        (check,) = op.preflight_checks()
        (browser,) = op.authorize_log()
        assert check["state"] != browser["state"]
        mutable = ("state", "code_challenge")
        assert {k: v for k, v in check.items() if k not in mutable} == {
            k: v for k, v in browser.items() if k not in mutable
        }
        assert driver.unexpected == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_waiting_exits_130_without_a_traceback(local_federation):
    process = subprocess.Popen(
        [sys.executable, "-m", "fedbearer", "login", *flags(local_federation), "--no-browser"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if line.startswith("Waiting for the login"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_INTERRUPTED, "".join(seen) + err
    assert "interrupted" in err and "Traceback" not in err


# Imports first, then says so: a SIGINT during interpreter start-up is Python's, not ours.
_MAIN_WHEN_READY = (
    # "ready" is written from inside main() (its first step builds the parser), so even a
    # signal sent at once lands in fedbearer's code, never in this script before main().
    "import sys\n"
    "from fedbearer._cli import commands\n"
    "build_parser = commands.build_parser\n"
    "def ready_then_build():\n"
    "    sys.stderr.write('ready\\n')\n"
    "    sys.stderr.flush()\n"
    "    return build_parser()\n"
    "commands.build_parser = ready_then_build\n"
    "sys.exit(commands.main(sys.argv[1:]))\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("delay", [0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2])
def test_ctrl_c_at_any_moment_of_login_exits_130_without_a_traceback(
    local_federation, tmp_path, delay
):
    """SIGINT at spread-out moments of ``fedbearer login``, from parsing the command line to
    waiting for the browser (with one launched): always "interrupted" and 130. The delays
    are not a schedule, only a spread: whenever the signal lands, the outcome is the same."""
    env = {**os.environ, "HOME": str(tmp_path), "BROWSER": "true"}  # launched, returns
    process = subprocess.Popen(
        [sys.executable, "-c", _MAIN_WHEN_READY, "login", *flags(local_federation)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        assert process.stderr.readline() == "ready\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_INTERRUPTED, err
    # Before the command line is parsed, the message cannot name the command yet.
    assert re.fullmatch(r"fedbearer( login)?: interrupted", err.rstrip().splitlines()[-1]), err
    for sign in ("Traceback", "unexpected", "Exception"):
        assert sign not in err
    assert out == ""


def test_an_error_raised_while_ctrl_c_unwinds_is_still_an_interrupt(
    local_federation, monkeypatch, capsys
):
    """What issue #14 saw: clean-up code that fails during a KeyboardInterrupt (threading
    raised "RuntimeError: release unlocked lock") must not turn Ctrl-C into a failure."""

    def get_token(self):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("release unlocked lock")  # noqa: B904 - as threading does

    monkeypatch.setattr(Credentials, "get_token", get_token)
    assert main(["login", *flags(local_federation)]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.rstrip().endswith("fedbearer login: interrupted") and "unexpected" not in err


def test_token_expiry_text_uses_utc_and_relative_time(local_federation, default_cache, capsys):
    expiration = datetime.fromtimestamp(_clock.now(), tz=timezone.utc) + timedelta(hours=2)
    default_cache.put(key_of(local_federation), Token("seeded", expiration))
    assert main(["login", *flags(local_federation)]) == EXIT_OK
    out = capsys.readouterr().out
    assert expiration.strftime("%Y-%m-%d %H:%M:%S UTC") in out and "(in 2 h)" in out


# ---------------------------------------------------------------------------- fail fast


def test_a_wrong_endpoint_fails_at_once_naming_the_flag(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    args = ["login", "--client-id", "c", "--federation-endpoint", dead, "--federation-id", "f"]
    assert main(args) == EXIT_USAGE  # with the default timeout of 300 s
    err = capsys.readouterr().err
    assert "--federation-endpoint" in err and "/oauth2/authorize?" not in err


def test_a_wrong_client_id_fails_at_once_naming_the_flag(local_federation, capsys):
    args = [*flags(local_federation, login=False), "--client-id", "not-registered"]
    assert main(["login", *args]) == EXIT_USAGE
    assert "--client-id" in capsys.readouterr().err
    assert local_federation.logins == 0


def test_the_check_lets_a_right_login_through(local_federation, browser_command, capsys):
    assert main(["login", *flags(local_federation)]) == EXIT_OK
    assert local_federation.code_exchanges == 1
    assert local_federation.authorize_requests == 2  # the check, then the browser
