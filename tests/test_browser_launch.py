"""The launcher: what it opens where, and how the URL survives cmd.exe and PowerShell.

Launchers are fake executables on a temporary ``PATH`` that record their arguments, so
every test runs on any POSIX machine.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest

from fedbearer import _browser
from fedbearer._browser import (
    choose_browser,
    cmd_escape,
    launch,
    powershell_literal,
    windows_safe_url,
    wsl_command,
)
from fedbearer._environment import Environment, detect_environment

from .conftest import wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake launchers are scripts")

# A URL the way the login builds it, plus the characters that break naive launchers.
AUTHORIZE = (
    "https://auth.example.com/oauth2/authorize?response_type=code&client_id=my-app"
    "&scope=openid&state=AbC_dEf-123&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765"
    "&code_challenge=xyz&code_challenge_method=S256&federation-id=fed-1"
)
TRICKY = [
    AUTHORIZE,
    "https://h.example/p?a=1&b=2|3&c=%PATH%&d=^x^&e=100%25",
    "https://h.example/(x)/y!z?q=a&&b=%3A%2F",
    'https://h.example/p?a="quoted"&b=<tag>&c=back\\slash',
    "https://h.example/p?a=b c&d=\u00e9\u20ac",
    "https://h.example/p?it's=%%41%&x=%CD%",
]


# --------------------------------------------------------------------------- fixtures


class FakeBin:
    """A directory of fake executables that record their argv (one JSON line per call)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "bin"
        self.dir.mkdir()
        self.records = root / "records"
        self.records.mkdir()

    def add(self, name: str, *, status: int = 0, sleep: float = 0.0) -> Path:
        path = self.dir / name
        record = self.records / f"{name}.jsonl"
        path.write_text(
            f"#!{sys.executable}\n"
            + textwrap.dedent(
                f"""\
                import json, sys, time
                with open({str(record)!r}, "a") as f:
                    f.write(json.dumps(sys.argv[1:]) + "\\n")
                time.sleep({sleep!r})
                sys.exit({status!r})
                """
            )
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def calls(self, name: str) -> list[list[str]]:
        record = self.records / f"{name}.jsonl"
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    @property
    def path(self) -> str:
        return str(self.dir)


@pytest.fixture
def fakebin(tmp_path) -> FakeBin:
    return FakeBin(tmp_path)


def environment(fakebin: FakeBin, platform: str = "linux", **env: str) -> Environment:
    wsl = env.pop("proc_version", "")
    return detect_environment(
        {"PATH": fakebin.path, **env},
        platform=platform,
        proc_version=wsl,
        stdin_isatty=lambda: True,
        stderr_isatty=lambda: True,
    )


WSL2 = "Linux version 5.15.153.1-microsoft-standard-WSL2"


def run_launch(url: str, env: Environment) -> list[str]:
    """launch() with the environment's choice; returns the failure reasons reported."""
    failures: list[str] = []
    thread = launch(url, on_failure=failures.append, environment=env)
    thread.join(20)
    assert not thread.is_alive()
    return failures


# ------------------------------------------------------------------- what is chosen


def test_ssh_session_launches_nothing_even_with_a_desktop_browser(fakebin):
    fakebin.add("xdg-open")
    env = environment(fakebin, SSH_CONNECTION="1.2.3.4 5 6.7.8.9 22", DISPLAY=":0")
    choice = choose_browser(env)
    assert not choice.launches and "SSH" in (choice.reason or "")


def test_headless_linux_launches_nothing_and_never_a_console_browser(fakebin):
    for name in ("xdg-open", "lynx", "w3m", "links", "www-browser", "elinks"):
        fakebin.add(name)
    env = environment(fakebin, TERM="xterm-256color")
    choice = choose_browser(env)
    assert not choice.launches and "display" in (choice.reason or "")
    failures = run_launch(AUTHORIZE, env)
    assert failures == [choice.reason]
    for name in ("xdg-open", "lynx", "w3m", "links", "www-browser", "elinks"):
        assert fakebin.calls(name) == []


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_macos_and_windows_use_the_desktop_browser_without_display(fakebin, platform):
    choice = choose_browser(environment(fakebin, platform=platform))
    assert choice.launches and choice.method == "the desktop's browser"


def test_linux_desktop_uses_the_desktop_browser(fakebin):
    choice = choose_browser(environment(fakebin, WAYLAND_DISPLAY="wayland-0"))
    assert choice.launches and choice.method == "the desktop's browser"


@pytest.mark.parametrize(
    ("present", "method"),
    [
        (("wslview", "cmd.exe", "powershell.exe"), "wslview"),
        (("cmd.exe", "powershell.exe"), "cmd.exe"),
        (("powershell.exe",), "powershell.exe"),
    ],
)
def test_wsl_prefers_wslview_then_cmd_then_powershell(fakebin, present, method):
    for name in present:
        fakebin.add(name)
    choice = choose_browser(environment(fakebin, proc_version=WSL2))
    assert choice.launches and choice.method == method


def test_wsl_without_windows_launchers_falls_back_to_the_linux_rules(fakebin):
    fakebin.add("xdg-open")
    assert not choose_browser(environment(fakebin, proc_version=WSL2)).launches
    with_display = choose_browser(environment(fakebin, proc_version=WSL2, DISPLAY=":0"))
    assert with_display.method == "the desktop's browser"


def test_wsl_over_ssh_launches_nothing(fakebin):
    fakebin.add("wslview")
    env = environment(fakebin, proc_version=WSL2, SSH_TTY="/dev/pts/1")
    assert not choose_browser(env).launches
    assert run_launch(AUTHORIZE, env) and fakebin.calls("wslview") == []


@pytest.mark.parametrize(
    "extra", [{"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22"}, {}, {"proc_version": WSL2}]
)
def test_explicit_browser_variable_is_always_honoured(fakebin, extra):
    fake = fakebin.add("my-browser")
    fakebin.add("wslview")
    env = environment(fakebin, BROWSER=f"{fake} --new-tab %s", **extra)
    choice = choose_browser(env)
    assert choice.launches and choice.method == "$BROWSER"
    url = TRICKY[1]
    assert run_launch(url, env) == []
    assert fakebin.calls("my-browser") == [["--new-tab", url]]
    assert fakebin.calls("wslview") == []


def test_browser_variable_entries_are_tried_in_order(fakebin):
    broken = fakebin.add("broken-browser", status=3)
    good = fakebin.add("good-browser")
    env = environment(
        fakebin,
        SSH_TTY="/dev/pts/1",
        BROWSER=os.pathsep.join([str(fakebin.dir / "missing"), str(broken), str(good)]),
    )
    assert run_launch(AUTHORIZE, env) == []
    assert fakebin.calls("broken-browser") == [[AUTHORIZE]]
    assert fakebin.calls("good-browser") == [[AUTHORIZE]]


def test_browser_variable_that_fails_everywhere_is_reported(fakebin):
    broken = fakebin.add("broken-browser", status=1)
    env = environment(fakebin, SSH_TTY="/dev/pts/1", BROWSER=str(broken))
    assert run_launch(AUTHORIZE, env) == ["no usable browser found"]


# ----------------------------------------------------------------------- WSL command


@pytest.mark.parametrize("url", TRICKY)
def test_cmd_start_gets_a_caret_escaped_url(fakebin, url):
    fakebin.add("cmd.exe")
    env = environment(fakebin, proc_version=WSL2)
    assert run_launch(url, env) == []
    (argv,) = fakebin.calls("cmd.exe")
    assert argv[:5] == ["/d", "/v:off", "/c", "start", ""]
    assert len(argv) == 6
    # What cmd.exe makes of it is the URL, with only unsafe characters percent-encoded.
    assert simulate_cmd_start(argv[2:], CMD_ENV) == windows_safe_url(url)
    assert unquote(windows_safe_url(url)) == unquote(url)


def test_wslview_gets_the_url_as_one_argument(fakebin):
    fakebin.add("wslview")
    url = TRICKY[1]
    assert run_launch(url, environment(fakebin, WSL_DISTRO_NAME="Ubuntu")) == []
    assert fakebin.calls("wslview") == [[windows_safe_url(url)]]


@pytest.mark.parametrize("url", TRICKY)
def test_powershell_start_process_gets_a_single_quoted_literal(fakebin, url):
    fakebin.add("powershell.exe")
    assert run_launch(url, environment(fakebin, proc_version=WSL2)) == []
    (argv,) = fakebin.calls("powershell.exe")
    assert argv[:3] == ["-NoProfile", "-NonInteractive", "-Command"]
    command = argv[3]
    assert command.startswith("Start-Process '") and command.endswith("'")
    assert parse_powershell_literal(command[len("Start-Process ") :]) == windows_safe_url(url)


def test_a_failing_wsl_launcher_hands_over_to_the_next(fakebin):
    fakebin.add("wslview", status=1)
    fakebin.add("cmd.exe", status=1)
    fakebin.add("powershell.exe")
    assert run_launch(AUTHORIZE, environment(fakebin, proc_version=WSL2)) == []
    assert len(fakebin.calls("wslview")) == 1
    assert len(fakebin.calls("cmd.exe")) == 1
    assert len(fakebin.calls("powershell.exe")) == 1


def test_all_wsl_launchers_failing_is_reported(fakebin):
    fakebin.add("wslview", status=1)
    assert run_launch(AUTHORIZE, environment(fakebin, proc_version=WSL2)) == [
        "no usable browser found"
    ]


def test_wsl_launchers_refuse_non_web_urls(fakebin):
    fakebin.add("cmd.exe")
    failures = run_launch(
        "file:///C:/Windows/System32/calc.exe", environment(fakebin, proc_version=WSL2)
    )
    assert failures == ["only http(s) URLs are handed to Windows"]
    assert fakebin.calls("cmd.exe") == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_wsl_launchers_do_not_get_the_terminal(fakebin, tmp_path):
    probe = fakebin.dir / "cmd.exe"
    out = tmp_path / "stdin.txt"
    probe.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"open({str(out)!r}, 'w').write(repr(os.path.realpath('/proc/self/fd/0')))\n"
    )
    probe.chmod(0o755)
    assert run_launch(AUTHORIZE, environment(fakebin, proc_version=WSL2)) == []
    assert out.read_text() == repr("/dev/null")


def test_wsl_command_rejects_unknown_launchers():
    with pytest.raises(ValueError, match="unknown"):
        wsl_command("explorer.exe", AUTHORIZE)


# ------------------------------------------------------------- escaping, in isolation


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (AUTHORIZE, AUTHORIZE),
        ("https://h/p?a=b c", "https://h/p?a=b%20c"),
        ('https://h/"q"', "https://h/%22q%22"),
        ("https://h/a^b|c<d>e\\f", "https://h/a%5Eb%7Cc%3Cd%3Ee%5Cf"),
        ("https://h/\u00e9", "https://h/%C3%A9"),
        ("https://h/x\ty\nz", "https://h/x%09y%0Az"),
        ("https://h/%41%zz", "https://h/%41%zz"),
    ],
)
def test_windows_safe_url_encodes_only_what_a_url_cannot_hold(url, safe):
    assert windows_safe_url(url) == safe


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a&b", "a^&b"),
        ("a|b<c>d", "a^|b^<c^>d"),
        ("^", "^^"),
        ("(x)", "^(x^)"),
        ("%PATH%", "^%PATH^%"),
        ("hi!", "hi^!"),
        ("plain-text_1.2~/:?=#", "plain-text_1.2~/:?=#"),
    ],
)
def test_cmd_escape_puts_a_caret_before_each_metacharacter(text, escaped):
    assert cmd_escape(text) == escaped


def test_the_cmd_model_catches_an_unescaped_url():
    # The model below is what the escaping is checked against; it must see the problems.
    raw = TRICKY[1]
    with pytest.raises(AssertionError, match="operator"):
        simulate_cmd_start(["/c", "start", "", raw], CMD_ENV)
    only_amp = raw.replace("&", "^&").replace("|", "^|").replace("^x^", "x")
    assert simulate_cmd_start(["/c", "start", "", only_amp], CMD_ENV) != windows_safe_url(raw)


@pytest.mark.parametrize(
    ("text", "literal"), [("abc", "'abc'"), ("it's", "'it''s'"), ("\u2019", "'\u2019\u2019'")]
)
def test_powershell_literal_doubles_single_quotes(text, literal):
    assert powershell_literal(text) == literal
    assert parse_powershell_literal(literal) == text


# ------------------------------------------------------------- desktop (webbrowser)

# webbrowser registers browsers once per process, from PATH and the environment of that
# moment, so each desktop case runs in a fresh interpreter.
DESKTOP_SCRIPT = """
import sys
from fedbearer._browser import launch
from fedbearer._environment import detect_environment
failures = []
t = launch(sys.argv[1], on_failure=failures.append, environment=detect_environment())
t.join(20)
print("FAILURES", failures)
"""


def run_desktop(fakebin: FakeBin, url: str, **env: str) -> str:
    child_env = {"PATH": fakebin.path, "HOME": str(fakebin.dir.parent), **env}
    result = subprocess.run(
        [sys.executable, "-c", DESKTOP_SCRIPT, url],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_desktop_opens_xdg_open_and_never_the_console_browser(fakebin):
    fakebin.add("xdg-open", sleep=0.5)  # stays up a moment, as the real one does
    fakebin.add("lynx")
    fakebin.add("w3m")
    out = run_desktop(fakebin, TRICKY[1], DISPLAY=":99", TERM="xterm")
    assert "FAILURES []" in out
    assert wait_for(lambda: fakebin.calls("xdg-open") == [[TRICKY[1]]])
    assert fakebin.calls("lynx") == [] and fakebin.calls("w3m") == []


def test_desktop_with_only_console_browsers_launches_nothing(fakebin):
    fakebin.add("lynx")
    fakebin.add("w3m")
    out = run_desktop(fakebin, AUTHORIZE, DISPLAY=":99", TERM="xterm")
    assert "runs in the terminal" in out
    assert fakebin.calls("lynx") == [] and fakebin.calls("w3m") == []


def test_desktop_without_any_browser_reports_it(fakebin):
    out = run_desktop(fakebin, AUTHORIZE, DISPLAY=":99")
    assert "no browser was found" in out


@pytest.mark.parametrize(
    ("kind", "console"),
    [
        ("GenericBrowser", True),
        ("BackgroundBrowser", False),
        ("Elinks", True),
        ("Mozilla", False),
        ("Chrome", False),
    ],
)
def test_console_browsers_are_recognised_by_kind(kind, console):
    import webbrowser

    controller = getattr(webbrowser, kind)("some-browser")
    assert _browser.is_console_browser(controller) is console


@pytest.mark.parametrize("name", ["lynx", "/usr/bin/w3m", "links2", "ELINKS"])
def test_console_browsers_are_recognised_by_name(name):
    import webbrowser

    assert _browser.is_console_browser(webbrowser.BackgroundBrowser(name)) is True


# ---------------------------------------------------------------- launch() contract


def test_launch_runs_the_opener_on_a_daemon_thread():
    called = threading.Event()
    release = threading.Event()

    def opener(url: str) -> bool:
        called.set()
        release.wait(5)
        return True

    thread = launch(AUTHORIZE, opener=opener, on_failure=lambda reason: None)
    assert thread.daemon and called.wait(5)
    assert thread.is_alive()  # a slow browser command does not hold up the caller
    release.set()
    thread.join(5)


def test_launch_failure_reason_names_the_error_type_not_its_text():
    failures: list[str] = []

    def opener(url: str) -> bool:
        raise OSError(f"could not run browser for {url}")

    launch(AUTHORIZE, opener=opener, on_failure=failures.append).join(5)
    assert failures == ["OSError"]


# ------------------------------------------------------------------ reference models

# Variables a Windows session has, and names that an unescaped URL would expand.
CMD_ENV = {
    "PATH": r"C:\Windows\system32",
    "CD": r"C:\Users\me",
    "3A": "<EXPANDED>",
    "2F": "<EXPANDED>",
    "41": "<EXPANDED>",
    "26": "<EXPANDED>",
}


def simulate_cmd_start(args: list[str], env: dict[str, str]) -> str:
    """What ``cmd.exe [/d /v:off] /c start "" <url>`` hands to ``start`` as the program.

    A model of cmd.exe's command-line mode, after the phases described in "How does the
    Windows Command Interpreter (CMD.EXE) parse scripts?" (Stack Overflow 4094699):
    phase 1 expands %NAME% when NAME is defined (case-insensitive) and leaves it as is
    otherwise, scanning on from the closing %; phase 2, outside double quotes, turns ^X
    into a literal X and treats & | < > ( ) as operators. ``start`` then takes the first
    quoted token as the title and the next token as what to open.
    """
    args = list(args)
    while args and args[0].lower() in ("/d", "/v:off"):
        args.pop(0)
    assert args[:2] == ["/c", "start"], args
    # As WSL joins argv (interop.cpp FormatCommandLine): quoted only if empty or spaced.
    line = " ".join('"' + a + '"' if not a or any(c in a for c in ' \t"') else a for a in args[1:])
    names = {k.lower(): v for k, v in env.items()}
    expanded = []
    i = 0
    while i < len(line):
        if line[i] == "%":
            j = line.find("%", i + 1)
            name = line[i + 1 : j].lower() if j > i + 1 else None
            if name is not None and name in names:
                expanded.append(names[name])
                i = j + 1
                continue
        expanded.append(line[i])
        i += 1
    text = "".join(expanded)
    literal = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
            literal.append(ch)
        elif quoted:
            literal.append(ch)
        elif ch == "^":
            i += 1
            if i < len(text):
                literal.append(text[i])
        elif ch in "&|<>()":
            raise AssertionError(f"unescaped operator {ch!r} reaches cmd.exe")
        else:
            literal.append(ch)
        i += 1
    tokens = "".join(literal).split(" ")
    assert tokens[0] == "start" and tokens[1] == '""', tokens
    assert len(tokens) == 3, tokens
    return tokens[2]


def parse_powershell_literal(literal: str) -> str:
    """A PowerShell single-quoted string's value: '' (or a doubled typographic quote) is one."""
    assert literal[0] == "'" and literal[-1] == "'"
    body = literal[1:-1]
    out = []
    i = 0
    quotes = "'\u2018\u2019\u201a\u201b"
    while i < len(body):
        if body[i] in quotes:
            assert i + 1 < len(body) and body[i + 1] in quotes, "lone quote ends the string"
            out.append(body[i])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)
