"""Where is this login running? SSH, a desktop-less Linux, WSL, a terminal.

:func:`detect_environment` reads the process environment, the platform and
``/proc/version`` once and returns a frozen :class:`Environment`; the launcher and the
login decide from that value alone. Every input can be passed in, so tests fake an SSH
session or a WSL distribution without touching the real process.

The settings read from environment variables (``FEDBEARER_CALLBACK_PORT``,
``FEDBEARER_INTERACTIVE``) are in :mod:`fedbearer._settings`, read once per settings value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from ._settings import port_number

__all__ = [
    "DISPLAY_VARIABLES",
    "SSH_VARIABLES",
    "WSL_VARIABLES",
    "Environment",
    "detect_environment",
]

#: Set by OpenSSH's sshd in the sessions it starts (``SSH_TTY`` only with a terminal).
SSH_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")
#: Set in a graphical session on X11 / Wayland systems.
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")
#: Set by WSL in every distribution process (``WSL_INTEROP`` on WSL 2 only).
WSL_VARIABLES = ("WSL_DISTRO_NAME", "WSL_INTEROP")

# Platforms whose desktop does not announce itself through DISPLAY: a macOS or Windows
# session always has one (an SSH session into them is detected separately).
_DESKTOP_PLATFORMS = ("darwin", "win32", "cygwin", "msys")


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
    #: A Linux container (Docker's ``/.dockerenv``, Podman's ``/run/.containerenv``, or
    #: ``$container``): without a display of its own, no browser the user sees runs there.
    container: bool = False

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
    port = port_number(port_text)
    return host, port if port else None


def _read_proc_version() -> str:
    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


#: Files a container runtime puts into the containers it starts.
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def _in_container(env: Mapping[str, str]) -> bool:
    # systemd-nspawn, Podman and LXC set $container in the container's first process.
    return bool(env.get("container", "").strip()) or any(
        os.path.exists(marker) for marker in CONTAINER_MARKERS
    )


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
    container: Optional[bool] = None,
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
    - Container: Linux with ``/.dockerenv`` or ``/run/.containerenv``, or ``$container`` set.
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
        container=(linux and _in_container(env)) if container is None else container,
    )
