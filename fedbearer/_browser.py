"""Opening the user's browser, or knowing better than to.

What to do is decided from the :class:`~fedbearer._environment.Environment` alone
(:func:`choose_browser`), in this order:

1. ``$BROWSER`` is set: it is the user's own choice and is always honoured, over SSH too,
   through :mod:`webbrowser` (entries separated by ``os.pathsep``, ``%s`` is the URL).
2. An SSH session: nothing is launched. A browser started here would open on a screen the
   user is not looking at, or, with ``TERM`` set, be a console browser (lynx, w3m) that
   takes over the terminal; the login shows the URL and an ``ssh -L`` hint instead.
3. WSL: the Windows browser, through ``wslview``, else ``cmd.exe /c start``, else
   PowerShell's ``Start-Process``, whichever is on ``PATH``; each gets the URL as one
   argument of an argument list, never through a shell. With none of them (a container on
   a WSL kernel, interop disabled), the rules below apply.
4. No display (Linux or BSD without ``DISPLAY`` / ``WAYLAND_DISPLAY``): nothing is launched.
5. A desktop: :mod:`webbrowser`'s first choice, unless it is a console browser.

The launch itself runs on a daemon thread (:func:`launch`): ``webbrowser.open`` waits for
some commands to exit (a ``$BROWSER`` entry runs through ``GenericBrowser``, which waits),
and the callback must keep being served and the deadline keep running whatever the
browser does. A launch that fails is reported and the login goes on waiting for the URL
it showed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import webbrowser
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote, urlsplit

from ._environment import Environment, detect_environment
from ._interrupts import start_thread

log = logging.getLogger("fedbearer.browser")

#: Opens a URL; returns False (or raises) when it could not. ``None`` counts as success.
Opener = Callable[[str], Optional[bool]]

#: Browsers that run inside the terminal. :mod:`webbrowser` registers some of them when
#: ``TERM`` is set; they would fight the login for the terminal, so they are never launched
#: unless named in ``$BROWSER``.
CONSOLE_BROWSERS = frozenset(
    {"www-browser", "links", "links2", "elinks", "lynx", "w3m", "browsh", "netrik", "retawq"}
)

#: Seconds a WSL launcher (``wslview``, ``cmd.exe``, ``powershell.exe``) may take to hand
#: the URL to Windows; they return as soon as the browser has been asked.
LAUNCH_TIMEOUT = 15.0

#: The Windows launchers tried on WSL, in order.
WSL_LAUNCHERS = ("wslview", "cmd.exe", "powershell.exe")

# RFC 3986 reserved and unreserved characters, and "%" of existing escapes: everything a
# URL may contain. Anything else (space, quote, backslash, ^, |, <, >, control and
# non-ASCII characters) is percent-encoded before a URL goes to a Windows command line,
# which changes nothing for the browser (it would encode them the same way).
_URL_CHARACTERS = ":/?#[]@!$&'()*+,;=-._~%"

# cmd.exe metacharacters escaped with "^" outside quotes: & | < > ^ ( ) separate or
# redirect commands, % expands variables (%NAME%), ! expands them under delayed expansion.
_CMD_METACHARACTERS = frozenset('&|<>^()%!"')


class LaunchRefused(Exception):
    """The environment's browser is not one to launch; the text says why (no secrets)."""


@dataclass(frozen=True)
class BrowserChoice:
    """What the launcher will do: open with ``opener``, or, when it is ``None``, nothing."""

    #: Opens the URL; ``None`` when no browser is to be launched.
    opener: Optional[Opener]
    #: What opens it, for messages and logs (``$BROWSER``, ``wslview``, ``cmd.exe``, ...).
    method: str
    #: Why no browser is launched, in words for the user; ``None`` when one is.
    reason: Optional[str] = None

    @property
    def launches(self) -> bool:
        return self.opener is not None


def choose_browser(environment: Environment) -> BrowserChoice:
    """Decide how to open the browser in ``environment`` (see the module docstring)."""
    if environment.browser:
        return BrowserChoice(_browser_variable_opener(environment.browser), "$BROWSER")
    if environment.ssh:
        return BrowserChoice(
            None,
            "",
            "this is an SSH session, so a browser started here would not be on your screen",
        )
    if environment.wsl:
        launchers = _find_launchers(WSL_LAUNCHERS, environment.path)
        if launchers:
            return BrowserChoice(_wsl_opener(launchers), launchers[0][0])
        log.debug("WSL without wslview, cmd.exe or powershell.exe on PATH; no Windows browser")
    if environment.headless:
        return BrowserChoice(
            None,
            "",
            "there is no graphical display here (DISPLAY and WAYLAND_DISPLAY are not set)",
        )
    return BrowserChoice(_desktop_open, "the desktop's browser")


def launch(
    url: str,
    *,
    opener: Optional[Opener] = None,
    on_failure: Callable[[str], None],
    environment: Optional[Environment] = None,
) -> threading.Thread:
    """Open ``url`` on a daemon thread; ``on_failure(reason)`` runs there if it fails.

    ``opener`` is used as given; without one, :func:`choose_browser` decides from
    ``environment`` (default: :func:`~fedbearer._environment.detect_environment`), and a
    decision not to launch is reported through ``on_failure`` as well.

    The returned thread is not joined by the login: a browser command that never exits
    belongs to the user, not to us.
    """
    if opener is None:
        choice = choose_browser(environment if environment is not None else detect_environment())
        opener = choice.opener if choice.opener is not None else _refuser(choice.reason or "")
    open_url = opener

    def run() -> None:
        try:
            opened = open_url(url)
        except LaunchRefused as exc:
            log.info("no browser launched (%s); waiting for the URL to be opened by hand", exc)
            on_failure(str(exc))
            return
        except Exception as exc:
            # Only the type: a launcher's message may quote its command line, URL included.
            reason = f"{type(exc).__name__}"
            log.warning(
                "could not open a browser (%s); waiting for the URL to be opened by hand", reason
            )
            on_failure(reason)
            return
        if opened is False:
            log.warning("no browser could be opened; waiting for the URL to be opened by hand")
            on_failure("no usable browser found")
        else:
            log.debug("browser launched")

    thread = threading.Thread(target=run, name="fedbearer-browser", daemon=True)
    start_thread(thread)  # never half-started by Ctrl-C (see fedbearer._interrupts)
    return thread


def _refuser(reason: str) -> Opener:
    def refuse(url: str) -> Optional[bool]:
        raise LaunchRefused(reason)

    return refuse


# ------------------------------------------------------------------ $BROWSER, desktop


def _browser_variable_opener(value: str) -> Opener:
    """Open with the ``$BROWSER`` entries in order, as :mod:`webbrowser` reads them."""
    entries = [entry.strip() for entry in value.split(os.pathsep) if entry.strip()]

    def open_url(url: str) -> bool:

        for entry in entries:
            controller: webbrowser.BaseBrowser
            try:
                controller = webbrowser.get(entry)
            except webbrowser.Error:
                # webbrowser registers $BROWSER entries once, from os.environ at its first
                # use; an entry it has not seen is run the way it would have registered it.
                controller = webbrowser.GenericBrowser(entry)
            if controller.open(url, new=1):
                return True
            log.debug("$BROWSER entry %r did not open the URL", os.path.basename(entry)[:60])
        return False

    return open_url


def is_console_browser(controller: webbrowser.BaseBrowser) -> bool:
    """True for a :mod:`webbrowser` controller that runs a browser inside the terminal.

    By name (lynx, w3m, ...), and by kind: :mod:`webbrowser` registers console browsers as
    foreground commands (``GenericBrowser``, or a ``UnixBrowser`` not run in the
    background), while graphical ones run in the background.
    """

    name = os.path.basename(str(getattr(controller, "name", ""))).lower()
    if name.endswith(".exe"):
        name = name[: -len(".exe")]
    if name in CONSOLE_BROWSERS:
        return True
    if type(controller) is webbrowser.GenericBrowser:
        return True
    return isinstance(controller, webbrowser.UnixBrowser) and not controller.background


def _desktop_open(url: str) -> bool:
    """Open with :mod:`webbrowser`'s first choice only, and never a console browser.

    ``webbrowser.open`` would fall through to the next registered browser when one fails,
    console browsers included, so the chosen controller is called directly.
    """

    try:
        controller = webbrowser.get()
    except webbrowser.Error:
        raise LaunchRefused("no browser was found on this system") from None
    if is_console_browser(controller):
        name = os.path.basename(str(getattr(controller, "name", "")))[:40]
        raise LaunchRefused(f"the only browser found, {name}, runs in the terminal")
    return bool(controller.open(url, new=1))


# ------------------------------------------------------------------------------ WSL


def _find_launchers(names: tuple[str, ...], path: Optional[str]) -> list[tuple[str, str]]:

    found = []
    for name in names:
        where = shutil.which(name, path=path)
        if where is not None:
            found.append((name, where))
    return found


def windows_safe_url(url: str) -> str:
    """``url`` with every character a URL may not contain percent-encoded.

    Spaces, quotes, ``^ | < > \\``, controls and non-ASCII become ``%XX`` (UTF-8), as a
    browser would send them; valid URLs come back unchanged.
    """
    return quote(url, safe=_URL_CHARACTERS)


def cmd_escape(argument: str) -> str:
    """``argument`` caret-escaped for the command line of ``cmd.exe /c``.

    ``cmd.exe`` parses its command line itself, in two steps that matter here. First it
    expands ``%NAME%`` (on a command line, unlike in a batch file, an undefined name is left
    as it is, and ``%%`` is not an escape). Then, outside double quotes, ``^`` makes the
    next character literal and is dropped, and ``& | < > ( )`` are operators. So each
    metacharacter gets a caret. A ``%`` gets one too: every text between two percents then
    ends in ``^``, a name no variable has, so nothing expands, and the caret is dropped in
    the second step. ``!`` is escaped in case delayed expansion is on (``/v:off`` is passed
    as well). Carets do nothing inside double quotes, so the argument must have none, nor
    whitespace: :func:`windows_safe_url` percent-encodes both.

    Rules from "How does the Windows Command Interpreter (CMD.EXE) parse scripts?"
    (Stack Overflow question 4094699, the phase model by jeb and dbenham) and SS64's
    "Escape Characters" page.
    """
    return "".join("^" + ch if ch in _CMD_METACHARACTERS else ch for ch in argument)


def powershell_literal(text: str) -> str:
    """``text`` as a PowerShell single-quoted string: nothing expands, ``'`` is doubled."""
    # PowerShell also takes the typographic quotes ‘ ’ ‚ ‛ as single quotes; a URL from
    # windows_safe_url has none (they are non-ASCII), but double them all the same.
    out = "".join(ch + ch if ch in "'\u2018\u2019\u201a\u201b" else ch for ch in text)
    return f"'{out}'"


def wsl_command(launcher: str, url: str) -> list[str]:
    """The argument list that opens ``url`` in the Windows browser with ``launcher``.

    WSL turns the list into a Windows command line, quoting only arguments that are empty
    or contain whitespace or ``"`` (microsoft/WSL ``src/windows/common/interop.cpp``,
    ``FormatCommandLine``), so the caret-escaped URL reaches ``cmd.exe`` as it is and
    ``""`` arrives as the empty window title ``start`` needs.
    """
    safe = windows_safe_url(url)
    if launcher == "wslview":
        return [launcher, safe]
    if launcher == "cmd.exe":
        # /d: no AutoRun commands from the registry; /v:off: no delayed !expansion!.
        return [launcher, "/d", "/v:off", "/c", "start", "", cmd_escape(safe)]
    if launcher == "powershell.exe":
        return [
            launcher,
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            f"Start-Process {powershell_literal(safe)}",
        ]
    raise ValueError(f"unknown WSL launcher {launcher!r}")


def _run_launcher(argv: list[str], executable: str) -> bool:

    try:
        completed = subprocess.run(  # noqa: S603 - an argument list, no shell
            argv,
            executable=executable,
            stdin=subprocess.DEVNULL,  # the terminal stays with the login (paste fallback)
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=LAUNCH_TIMEOUT,
            start_new_session=sys.platform != "win32",  # Ctrl-C is for the login
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed to run (%s)", argv[0], type(exc).__name__)
        return False
    if completed.returncode != 0:
        log.debug("%s exited with status %s", argv[0], completed.returncode)
    return completed.returncode == 0


def _wsl_opener(launchers: list[tuple[str, str]]) -> Opener:
    def open_url(url: str) -> bool:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            # start and Start-Process would run a file or program, not open a page.
            raise LaunchRefused("only http(s) URLs are handed to Windows")
        for name, executable in launchers:
            log.debug("opening the Windows browser with %s", name)
            if _run_launcher(wsl_command(name, url), executable):
                return True
        return False

    return open_url
