"""Where is the login running: SSH, display, WSL, terminals, and the two env settings."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from fedbearer import ConfigurationError, LoginSettings
from fedbearer._environment import Environment, detect_environment

WSL1_VERSION = (
    "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc version 5.4.0 (GCC) ) "
    "#1237-Microsoft Sat Sep 11 14:32:00 PST 2021"
)
WSL2_VERSION = (
    "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 11.2.0, "
    "GNU ld (GNU Binutils) 2.37) #1 SMP Fri Mar 29 23:14:13 UTC 2024"
)
PLAIN_VERSION = "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-115) (gcc 13.2.0) #45-Ubuntu"


def detect(env: dict[str, str], platform: str = "linux", **kwargs) -> Environment:
    kwargs.setdefault("proc_version", PLAIN_VERSION)
    kwargs.setdefault("stdin_isatty", lambda: False)
    kwargs.setdefault("stderr_isatty", lambda: False)
    return detect_environment(env, platform=platform, **kwargs)


# ------------------------------------------------------------------------------ SSH


@pytest.mark.parametrize(
    "env",
    [
        {"SSH_CONNECTION": "10.0.0.5 51234 10.0.0.9 22"},
        {"SSH_CLIENT": "10.0.0.5 51234 22"},
        {"SSH_TTY": "/dev/pts/3"},
    ],
    ids=["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"],
)
def test_any_sshd_variable_marks_an_ssh_session(env):
    assert detect(env).ssh is True


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_ssh_variables_are_not_a_session(value):
    assert detect({"SSH_CONNECTION": value, "SSH_TTY": value}).ssh is False


@pytest.mark.parametrize(
    ("connection", "server", "port"),
    [
        ("10.0.0.5 51234 10.0.0.9 22", "10.0.0.9", 22),
        ("10.0.0.5 51234 192.168.1.2 2222", "192.168.1.2", 2222),
        ("fe80::1 51234 2001:db8::7 22", "2001:db8::7", 22),
        ("10.0.0.5 51234 10.0.0.9 notaport", "10.0.0.9", None),
        ("10.0.0.5 51234 10.0.0.9 99999", "10.0.0.9", None),
        ("garbage", None, None),
        ("", None, None),
    ],
)
def test_ssh_server_address_comes_from_ssh_connection(connection, server, port):
    env = detect({"SSH_CONNECTION": connection})
    assert (env.ssh_server, env.ssh_port) == (server, port)


def test_ssh_client_alone_names_no_server_address():
    env = detect({"SSH_CLIENT": "10.0.0.5 51234 22"})
    assert env.ssh and env.ssh_server is None


# -------------------------------------------------------------------------- display


@pytest.mark.parametrize(
    ("platform", "env", "display"),
    [
        ("linux", {}, False),
        ("linux", {"DISPLAY": ":0"}, True),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True),
        ("linux", {"DISPLAY": ""}, False),
        ("freebsd14", {}, False),
        ("freebsd14", {"DISPLAY": ":0"}, True),
        # macOS and Windows have a desktop without DISPLAY.
        ("darwin", {}, True),
        ("win32", {}, True),
        ("cygwin", {}, True),
    ],
)
def test_display_depends_on_the_platform(platform, env, display):
    detected = detect(env, platform=platform)
    assert detected.display is display
    assert detected.headless is (not display)


# ------------------------------------------------------------------------------ WSL


@pytest.mark.parametrize(
    ("env", "version", "wsl"),
    [
        ({}, WSL1_VERSION, True),
        ({}, WSL2_VERSION, True),
        ({}, PLAIN_VERSION, False),
        ({}, "", False),
        ({"WSL_DISTRO_NAME": "Ubuntu"}, "", True),
        ({"WSL_INTEROP": "/run/WSL/8_interop"}, "", True),
    ],
    ids=["wsl1-proc", "wsl2-proc", "plain-linux", "no-proc", "distro-name", "interop"],
)
def test_wsl_is_detected_from_proc_version_or_its_variables(env, version, wsl):
    assert detect(env, proc_version=version).wsl is wsl


def test_wsl_needs_linux():
    assert detect({"WSL_DISTRO_NAME": "Ubuntu"}, platform="win32").wsl is False


def test_proc_version_is_read_only_on_linux_when_not_given(monkeypatch):
    from fedbearer import _environment

    reads = []

    def fake_read() -> str:
        reads.append(1)
        return WSL2_VERSION

    monkeypatch.setattr(_environment, "_read_proc_version", fake_read)
    assert detect_environment({}, platform="linux").wsl is True
    assert detect_environment({}, platform="darwin").wsl is False
    assert len(reads) == 1


def test_reading_proc_version_tolerates_its_absence(monkeypatch):
    from fedbearer import _environment

    def no_file(*args, **kwargs):
        raise FileNotFoundError("/proc/version")

    monkeypatch.setattr("builtins.open", no_file)
    assert _environment._read_proc_version() == ""


# -------------------------------------------------------------------- TTYs, $BROWSER


@pytest.mark.parametrize(("stdin", "stderr"), [(True, False), (False, True), (True, True)])
def test_terminals_come_from_the_isatty_callables(stdin, stderr):
    env = detect({}, stdin_isatty=lambda: stdin, stderr_isatty=lambda: stderr)
    assert (env.stdin_tty, env.stderr_tty) == (stdin, stderr)


def test_a_closed_stream_is_not_a_terminal():
    def closed() -> bool:
        raise ValueError("I/O operation on closed file")

    env = detect({}, stdin_isatty=closed, stderr_isatty=closed)
    assert (env.stdin_tty, env.stderr_tty) == (False, False)


def test_missing_std_streams_are_not_terminals(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    monkeypatch.setattr(sys, "stderr", None)
    env = detect_environment({}, platform="linux", proc_version="")
    assert (env.stdin_tty, env.stderr_tty) == (False, False)


@pytest.mark.parametrize(
    ("value", "browser"), [("firefox", "firefox"), ("  lynx  ", "lynx"), ("", None), (" ", None)]
)
def test_browser_variable_is_kept_when_set(value, browser):
    assert detect({"BROWSER": value}).browser == browser


def test_path_is_kept_for_finding_launchers():
    assert detect({"PATH": "/a:/b"}).path == "/a:/b"
    assert detect({}).path is None


def test_environment_is_frozen():
    env = detect({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.ssh = True  # type: ignore[misc]


def test_defaults_come_from_the_process(monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")
    monkeypatch.setenv("BROWSER", "my-browser")
    env = detect_environment()
    assert env.ssh and env.ssh_server == "6.7.8.9" and env.browser == "my-browser"
    assert env.platform == sys.platform


# ------------------------------------------------------------- environment settings
# Read once, when a LoginSettings value (so a FederationAuth or Bearer) is built.


def settings(**kwargs) -> LoginSettings:
    return LoginSettings("client", "auth.example.com", "fed", **kwargs)


@pytest.mark.parametrize(
    ("value", "port"), [(None, None), ("", None), (" ", None), ("0", 0), ("8765", 8765)]
)
def test_callback_port_from_env(monkeypatch, value, port):
    if value is not None:
        monkeypatch.setenv("FEDBEARER_CALLBACK_PORT", value)
    assert settings().port == port
    assert settings(port=9000).port == 9000  # an explicit port wins


@pytest.mark.parametrize("value", ["abc", "-1", "65536", "80.5", "²", "1" * 40])
def test_a_bad_callback_port_is_a_configuration_error(monkeypatch, value):
    monkeypatch.setenv("FEDBEARER_CALLBACK_PORT", value)
    with pytest.raises(ConfigurationError, match="FEDBEARER_CALLBACK_PORT"):
        settings()


@pytest.mark.parametrize(
    ("value", "interactive"),
    [
        (None, True),
        ("", True),
        ("1", True),
        ("true", True),
        ("YES", True),
        ("0", False),
        ("false", False),
        ("No", False),
        (" off ", False),
    ],
)
@pytest.mark.fedbearer_real  # without the plugin's test default
def test_interactive_from_env(monkeypatch, value, interactive):
    if value is not None:
        monkeypatch.setenv("FEDBEARER_INTERACTIVE", value)
    assert settings().interactive is interactive
    assert settings(interactive=True).interactive is True  # an explicit choice wins


@pytest.mark.fedbearer_real
@pytest.mark.parametrize(("ci", "interactive"), [("true", False), ("1", False), ("", True)])
def test_ci_true_makes_the_default_non_interactive(monkeypatch, ci, interactive):
    monkeypatch.setenv("CI", ci)
    assert settings().interactive is interactive
    assert settings(interactive=True).interactive is True  # unless the caller asks
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "1")
    assert settings().interactive is True  # the explicit variable wins


def test_under_the_plugin_a_login_without_an_opener_is_not_interactive(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert settings().interactive is False
    assert settings(opener=lambda url: True).interactive is True  # a test that set one up
    assert settings(interactive=True).interactive is True


def test_an_unknown_interactive_value_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "maybe")
    with pytest.raises(ConfigurationError, match="FEDBEARER_INTERACTIVE"):
        settings()
