"""Where is this login running? SSH, a desktop-less Linux, WSL, a terminal.

:func:`detect_environment` reads the process environment, the platform and
``/proc/version`` once and returns a frozen :class:`Environment`; the launcher and the
login decide from that value alone. Every input can be passed in, so tests fake an SSH
session or a WSL distribution without touching the real process.

Also here: the two settings read from environment variables,
``FEDBEARER_CALLBACK_PORT`` (:func:`callback_port_from_env`) and ``FEDBEARER_INTERACTIVE``
(:func:`interactive_from_env`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from ._exceptions import ConfigurationError

#: Environment variable: fixed callback port when none is passed (``0``: any free port).
CALLBACK_PORT_ENV = "FEDBEARER_CALLBACK_PORT"
#: Environment variable: ``0`` disables interactive logins (cron, CI); ``1`` is the default.
INTERACTIVE_ENV = "FEDBEARER_INTERACTIVE"

#: Set by OpenSSH's sshd in the sessions it starts (``SSH_TTY`` only with a terminal).
SSH_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")
#: Set in a graphical session on X11 / Wayland systems.
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")
#: Set by WSL in every distribution process (``WSL_INTEROP`` on WSL 2 only).
WSL_VARIABLES = ("WSL_DISTRO_NAME", "WSL_INTEROP")

# Platforms whose desktop does not announce itself through DISPLAY: a macOS or Windows
# session always has one (an SSH session into them is detected separately).
_DESKTOP_PLATFORMS = ("darwin", "win32", "cygwin", "msys")

_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on", ""})


@dataclass(frozen=True)
class Environment:
    """What the login needs to know about where it runs. Immutable; compare freely."""

    #: ``sys.platform`` of this process (``linux``, ``darwin``, ``win32``, ...).
    platform: str
    #: An SSH session: the user's screen, and browser, are on another machine.
    ssh: bool
    #: The address the SSH client connected to (from ``SSH_CONNECTION``), if known.
    ssh_server: Optional[str]
    #: The SSH server's port, if known (22 in most setups).
    ssh_port: Optional[int]
    #: Windows Subsystem for Linux: a Windows desktop is there, outside this Linux.
    wsl: bool
    #: A graphical session is reachable from here (always true on macOS and Windows).
    display: bool
    #: Standard input is a terminal, so the user can paste into it.
    stdin_tty: bool
    #: Standard error is a terminal, so the user sees what is written there.
    stderr_tty: bool
    #: ``$BROWSER`` when set: the user's own choice of browser command(s).
    browser: Optional[str]
    #: ``$PATH``, where launchers such as ``wslview`` or ``cmd.exe`` are looked up.
    path: Optional[str]

    @property
    def headless(self) -> bool:
        """No graphical session: a browser launched here would have no screen."""
        return not self.display


def _flag(env: Mapping[str, str], names: tuple[str, ...]) -> bool:
    return any(env.get(name, "").strip() for name in names)


def _ssh_server(env: Mapping[str, str]) -> tuple[Optional[str], Optional[int]]:
    # SSH_CONNECTION = "<client ip> <client port> <server ip> <server port>".
    fields = env.get("SSH_CONNECTION", "").split()
    if len(fields) != 4:
        return None, None
    host, port_text = fields[2], fields[3]
    port = _port_number(port_text)
    return host, port if port else None


def _port_number(text: str) -> Optional[int]:
    """A decimal port 0-65535 in ASCII digits, or ``None``."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        return None
    value = int(text)
    return value if value <= 65535 else None


def _read_proc_version() -> str:
    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


def _isatty(stream_isatty: Optional[Callable[[], bool]]) -> bool:
    if stream_isatty is None:
        return False
    try:
        return bool(stream_isatty())
    except (OSError, ValueError):  # a closed or detached stream is not a terminal
        return False


def _stream_isatty(name: str) -> Optional[Callable[[], bool]]:
    stream = getattr(sys, name, None)  # None under pythonw and some embedders
    return getattr(stream, "isatty", None)


def detect_environment(
    env: Optional[Mapping[str, str]] = None,
    *,
    platform: Optional[str] = None,
    proc_version: Optional[str] = None,
    stdin_isatty: Optional[Callable[[], bool]] = None,
    stderr_isatty: Optional[Callable[[], bool]] = None,
) -> Environment:
    """Describe where this process runs.

    Defaults: ``os.environ``, ``sys.platform``, the text of ``/proc/version`` (read only on
    Linux) and the ``isatty`` of ``sys.stdin`` / ``sys.stderr``. Tests pass their own.

    - SSH: any of ``SSH_CONNECTION``, ``SSH_CLIENT``, ``SSH_TTY`` is set.
    - Display: on macOS and Windows always; elsewhere ``DISPLAY`` or ``WAYLAND_DISPLAY``.
    - WSL: Linux whose ``/proc/version`` names Microsoft or WSL, or with ``WSL_DISTRO_NAME``
      / ``WSL_INTEROP`` set.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    linux = platform.startswith("linux")
    if proc_version is None:
        proc_version = _read_proc_version() if linux else ""
    version = proc_version.lower()
    wsl = linux and ("microsoft" in version or "wsl" in version or _flag(env, WSL_VARIABLES))
    ssh_server, ssh_port = _ssh_server(env)
    browser = env.get("BROWSER", "").strip() or None
    return Environment(
        platform=platform,
        ssh=_flag(env, SSH_VARIABLES),
        ssh_server=ssh_server,
        ssh_port=ssh_port,
        wsl=wsl,
        display=platform.startswith(_DESKTOP_PLATFORMS) or _flag(env, DISPLAY_VARIABLES),
        stdin_tty=_isatty(stdin_isatty if stdin_isatty is not None else _stream_isatty("stdin")),
        stderr_tty=_isatty(
            stderr_isatty if stderr_isatty is not None else _stream_isatty("stderr")
        ),
        browser=browser,
        path=env.get("PATH"),
    )


def callback_port_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """``FEDBEARER_CALLBACK_PORT`` as a port number, or ``None`` when unset or empty.

    A value that is not a port number 0-65535 is a :class:`~fedbearer.ConfigurationError`
    rather than silently a random port: a user who set it is relying on an ``ssh -L``
    forward to that port.
    """
    env = os.environ if env is None else env
    raw = env.get(CALLBACK_PORT_ENV, "").strip()
    if not raw:
        return None
    port = _port_number(raw)
    if port is None:
        raise ConfigurationError(
            f"{CALLBACK_PORT_ENV} must be a port number 0-65535 (0: any free port), "
            f"not {raw[:20]!r}"
        )
    return port


def interactive_from_env(env: Optional[Mapping[str, str]] = None) -> bool:
    """``FEDBEARER_INTERACTIVE``: ``0``/``false``/``no``/``off`` disable logins; default on."""
    env = os.environ if env is None else env
    raw = env.get(INTERACTIVE_ENV, "").strip().lower()
    if raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise ConfigurationError(
        f"{INTERACTIVE_ENV} must be 0 (no interactive logins) or 1, not {raw[:20]!r}"
    )
