"""The ``fedbearer`` command: log in, print a token, log out, list the cache, run the demo.

``fedbearer login | token | logout | status`` work on the token cache shared with the
Nebius CLI (``~/.nebius/credentials.yaml`` unless ``--cache-file``) through the public API:
``FederationAuth(...).get_token()`` decides between the cached token, its refresh token and
an interactive login. ``fedbearer demo`` runs the whole thing against a local federation.

Output discipline: ``token`` writes the access token, and nothing else, to stdout; no other
command ever writes a token or refresh token anywhere. Errors are one line on stderr
(``fedbearer <command>: error: <what happened; what to do>``), with a traceback only under
``--debug``.

Exit codes:

===  ==========================================================================
0    success
1    the login or the federation failed (refused, timed out, token endpoint error;
     a failed demo step; an unexpected error)
2    usage or configuration error (bad option, missing setting, Nebius profile)
3    a login is needed but interaction is off (``--non-interactive`` or
     ``FEDBEARER_INTERACTIVE=0``)
130  interrupted (Ctrl-C)
===  ==========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Callable, NoReturn, Optional, TextIO, Union, cast

from . import __version__, _clock
from ._auth import FederationAuth
from ._cache import FileTokenCache, cache_key
from ._exceptions import (
    ConfigurationError,
    FedbearerError,
    InteractionRequiredError,
    LoginTimeoutError,
)
from ._login_command import login_command
from ._settings import DEFAULT_LOGIN_TIMEOUT
from ._token import Token, jwt_claims

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERACTION_REQUIRED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
#: The login or the federation failed; a demo step failed; an unexpected error.
EXIT_FAILURE = 1
#: Bad command line or configuration.
EXIT_USAGE = 2
#: A login is needed but ``--non-interactive`` / ``FEDBEARER_INTERACTIVE=0`` forbids it.
EXIT_INTERACTION_REQUIRED = 3
#: Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

CLIENT_ID_ENV = "FEDBEARER_CLIENT_ID"
ENDPOINT_ENV = "FEDBEARER_FEDERATION_ENDPOINT"
FEDERATION_ID_ENV = "FEDBEARER_FEDERATION_ID"
PROFILE_ENV = "FEDBEARER_PROFILE"

DEFAULT_PROFILE = "default"

log = logging.getLogger("fedbearer.cli")


# ----------------------------------------------------------------------------- parsing


class _UsageError(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and never exit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.prog, message)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number 0-65535: {text!r}")
    return int(text)


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    return text


_EPILOG = """\
exit codes:
  0    success
  1    the login or the federation failed (refused, timed out, token endpoint error)
  2    usage or configuration error
  3    a login is needed but interaction is off (--non-interactive, FEDBEARER_INTERACTIVE=0)
  130  interrupted (Ctrl-C)

Settings come from the options, else from --nebius-profile, else from the environment
(FEDBEARER_CLIENT_ID, FEDBEARER_FEDERATION_ENDPOINT, FEDBEARER_FEDERATION_ID,
FEDBEARER_PROFILE). Tokens are cached in ~/.nebius/credentials.yaml, shared with the
Nebius CLI. 'fedbearer demo' shows the whole login on this machine with no setup."""


def _identity_options() -> _Parser:
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("identity and cache")
    group.add_argument(
        "--client-id",
        metavar="ID",
        help=f"OAuth client id of your application [${CLIENT_ID_ENV}]",
    )
    group.add_argument(
        "--federation-endpoint",
        metavar="URL",
        help=f"federation address; https:// is assumed without a scheme [${ENDPOINT_ENV}]",
    )
    group.add_argument(
        "--federation-id",
        metavar="ID",
        help=f"federation id, sent as federation-id ('' for none) [${FEDERATION_ID_ENV}]",
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        help=(
            "profile name in the token cache (default: the --nebius-profile name, else "
            f"'{DEFAULT_PROFILE}') [${PROFILE_ENV}]"
        ),
    )
    group.add_argument(
        "--nebius-profile",
        metavar="NAME",
        help="take the endpoint and federation id from this profile of ~/.nebius/config.yaml",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help=(
            "accept a plain http:// federation endpoint on another machine (the login code "
            "and tokens then cross the network unencrypted; loopback never needs this)"
        ),
    )
    group.add_argument(
        "--cache-file",
        metavar="PATH",
        type=_path,
        help="token cache file (default: ~/.nebius/credentials.yaml, the Nebius CLI's)",
    )
    return parser


def _login_options(*, non_interactive: bool = True) -> _Parser:
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("login")
    group.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser; only show the login URL",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_LOGIN_TIMEOUT,
        help="give up on the login after this long (default: %(default)g)",
    )
    group.add_argument(
        "--port",
        metavar="PORT",
        type=_port,
        help=(
            "fixed port for the login callback on 127.0.0.1, e.g. for an ssh -L forward "
            "(default: $FEDBEARER_CALLBACK_PORT, else any free port)"
        ),
    )
    if non_interactive:
        group.add_argument(
            "--non-interactive",
            action="store_true",
            help=(
                "never start a login: exit with status 3 when no valid or refreshable token "
                "is cached (for cron and CI; also FEDBEARER_INTERACTIVE=0)"
            ),
        )
    return parser


def _debug_option() -> _Parser:
    parser = _Parser(add_help=False)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log what happens (DEBUG, to stderr; never tokens) and show tracebacks",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``fedbearer`` argument parser (its errors raise instead of exiting)."""
    parser = _Parser(
        prog="fedbearer",
        description=textwrap.fill(
            "Interactive OAuth 2.0 federation login (authorization code + PKCE, loopback "
            "redirect), compatible with the Nebius CLI's token cache.",
            80,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    identity, login, debug = _identity_options(), _login_options(), _debug_option()

    def command(name: str, summary: str, description: str, *parents: _Parser) -> _Parser:
        return commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 80),
            epilog=_EPILOG,
            parents=list(parents),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command(
        "login",
        "log in (or reuse a valid cached token) and show the profile and expiry",
        "Log in through the browser and store the token in the cache; reuse the cached "
        "token when it is still valid, renew it with its refresh token when it can. Shows "
        "the profile, federation and expiry, never the token.",
        identity,
        login,
        debug,
    ).set_defaults(handler=_cmd_login)
    command(
        "token",
        "print a valid access token on stdout, logging in if needed",
        "Print a valid access token, and nothing else, on stdout, for example "
        '`curl -H "Authorization: Bearer $(fedbearer token)" ...`. Logs in (messages on '
        "stderr) when the cache has no valid or refreshable token.",
        identity,
        login,
        debug,
    ).set_defaults(handler=_cmd_token)
    command(
        "logout",
        "remove the cached token of a profile",
        "Remove the profile's token from the cache. The federation is not contacted: the "
        "token stays valid there until it expires.",
        identity,
        debug,
    ).set_defaults(handler=_cmd_logout)
    command(
        "status",
        "list the cached tokens and their expiry (never the tokens)",
        "List every entry of the token cache with its expiry and whether it has a refresh "
        "token; '*' marks the configured profile. Tokens are never shown.",
        identity,
        debug,
    ).set_defaults(handler=_cmd_status)
    command(
        "demo",
        "run a complete login against a local federation (no setup, no network)",
        "Start a local federation, log in through the real loopback server (in your "
        "browser when there is one, else approved in-process), call a protected API with "
        "a requests session using FederationAuth, force a renewal, and explain each step. "
        "Uses a temporary token cache: your credentials are not touched.",
        _login_options(non_interactive=False),
        debug,
    ).set_defaults(handler=_cmd_demo)
    return parser


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class _Identity:
    client_id: Optional[str]
    federation_endpoint: str
    federation_id: str
    profile: str
    allow_insecure_http: bool = False

    @property
    def key(self) -> str:
        return cache_key(self.federation_endpoint, self.federation_id, self.profile)

    def describe(self) -> str:
        fid = f"federation {self.federation_id}" if self.federation_id else "no federation id"
        return f"profile '{self.profile}' at {self.federation_endpoint} ({fid})"


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name, "").strip()
    return value or None  # an empty variable counts as unset


def _identity(args: argparse.Namespace, *, need_client_id: bool) -> _Identity:
    """The identity the options describe; :class:`ConfigurationError` when one is missing."""
    identity = _resolve_identity(args, need_client_id=need_client_id, required=True)
    assert identity is not None
    return identity


def _resolve_identity(
    args: argparse.Namespace, *, need_client_id: bool, required: bool
) -> Optional[_Identity]:
    """Each setting from its option, else ``--nebius-profile``, else the environment.

    With ``required=False``, ``None`` when no endpoint or federation id is configured.
    """
    nebius_endpoint = nebius_id = nebius_name = None
    if args.nebius_profile is not None:
        from ._nebius_config import load_nebius_profile

        nebius = load_nebius_profile(args.nebius_profile)
        nebius_endpoint, nebius_id, nebius_name = (
            nebius.federation_endpoint,
            nebius.federation_id,
            nebius.name,
        )

    def pick(option: Optional[str], nebius: Optional[str], env: str) -> Optional[str]:
        if option is not None:
            return option
        if nebius is not None:
            return nebius
        return _env(env)

    client_id = args.client_id if args.client_id is not None else _env(CLIENT_ID_ENV)
    endpoint = pick(args.federation_endpoint, nebius_endpoint, ENDPOINT_ENV)
    federation_id = pick(args.federation_id, nebius_id, FEDERATION_ID_ENV)
    profile = pick(args.profile, nebius_name, PROFILE_ENV)
    if profile is None:
        profile = DEFAULT_PROFILE
    if not endpoint or not endpoint.strip():
        if not required:
            return None
        raise ConfigurationError(
            "no federation endpoint: pass --federation-endpoint URL, set "
            f"{ENDPOINT_ENV}, or use --nebius-profile NAME"
        )
    if federation_id is None:
        if not required:
            return None
        raise ConfigurationError(
            "no federation id: pass --federation-id ID ('' for none), set "
            f"{FEDERATION_ID_ENV}, or use --nebius-profile NAME"
        )
    if need_client_id and (client_id is None or not client_id.strip()):
        raise ConfigurationError(
            f"no client id: pass --client-id ID or set {CLIENT_ID_ENV} "
            "(the OAuth client id of your application)"
        )
    if not profile.strip():
        raise ConfigurationError("the profile name is empty; pass --profile NAME")
    from ._protocol import normalize_endpoint

    # A bad endpoint, id or profile is a usage error before anything runs.
    normalize_endpoint(endpoint, allow_insecure_http=args.allow_insecure_http)
    cache_key(endpoint, federation_id, profile)
    return _Identity(client_id, endpoint, federation_id, profile, args.allow_insecure_http)


def _file_cache(args: argparse.Namespace) -> FileTokenCache:
    return FileTokenCache(args.cache_file)  # None: ~/.nebius/credentials.yaml


# ----------------------------------------------------------------------------- output


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _expiry(token: Token) -> str:
    """``valid until 2025-06-01 12:00:00 UTC (in 59 min)``, or how long ago it expired."""
    if token.expiration is None:
        return "with no stated expiry"
    when = token.expiration.strftime("%Y-%m-%d %H:%M:%S UTC")
    left = token.expiration.timestamp() - _clock.now()
    if left > 0:
        return f"valid until {when} (in {_duration(left)})"
    return f"expired at {when} ({_duration(left)} ago)"


def _subject(access_token: str) -> Optional[str]:
    """Who the token names, when it is a JWT with an identifying claim (display only).

    The signature is not checked: the answer is only shown to the user who owns the token.
    """
    payload = jwt_claims(access_token)
    if payload is None:
        return None
    for claim in ("email", "preferred_username", "name", "sub"):
        value = payload.get(claim)
        if isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable():
            return value
    return None


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


class _Progress:
    """The login's writer: passes text through and shows how long the login has waited.

    The first write is the login showing its URL, so it starts a daemon thread that, on a
    terminal (``live``), redraws an elapsed-time line in place every ``tick`` seconds
    (carriage return and spaces, no escape sequences), and otherwise writes a plain line
    every ``plain_every`` seconds. Other text clears the line before it is written. One
    lock orders the writers (the login, its browser thread, the ticker). :meth:`close`
    stops and joins the thread and clears the line.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        live: bool,
        indent: str = "",
        tick: float = 1.0,
        plain_every: float = 30.0,
    ) -> None:
        self._stream = stream
        self._live = live
        self._indent = indent
        self._tick = tick
        self._plain_every = plain_every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._drawn = 0  # length of the live line on screen, 0 when none
        self._line_start = True
        self._started_at: Optional[float] = None

    @property
    def started(self) -> bool:
        """Whether anything was written: a login ran (a refresh writes nothing)."""
        return self._started_at is not None

    def write(self, text: str) -> int:
        with self._lock:
            self._clear()
            self._emit(self._indented(text))
            if self._started_at is None and not self._stop.is_set():
                self._started_at = time.monotonic()
                self._thread = threading.Thread(
                    target=self._run, name="fedbearer-progress", daemon=True
                )
                self._thread.start()
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        return _isatty(self._stream)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            try:
                thread.join()
            except RuntimeError:
                # Ctrl-C interrupted start() before the thread reported running; when it
                # runs, it finds the stop flag set and ends without drawing.
                log.debug("progress thread was never started")
        with self._lock:
            self._clear()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _indented(self, text: str) -> str:
        if not self._indent:
            return text
        out = []
        for line in text.splitlines(keepends=True):
            if self._line_start and line.strip():
                out.append(self._indent)
            out.append(line)
            self._line_start = line.endswith("\n")
        return "".join(out)

    def _emit(self, text: str) -> None:
        if not text:
            return
        with contextlib.suppress(OSError, ValueError):  # a closed stream must not end a login
            self._stream.write(text)
            self._stream.flush()
        self._line_start = text.endswith("\n")

    def _clear(self) -> None:
        if self._drawn:
            width, self._drawn = self._drawn, 0
            with contextlib.suppress(OSError, ValueError):
                self._stream.write("\r" + " " * width + "\r")
                self._stream.flush()

    def _run(self) -> None:
        assert self._started_at is not None
        next_plain = self._plain_every
        while not self._stop.wait(self._tick):
            with self._lock:
                if self._stop.is_set():
                    return
                elapsed = time.monotonic() - self._started_at
                if self._live and self._line_start:
                    line = (
                        f"{self._indent}Waiting for the browser: {_duration(elapsed)} "
                        "(Ctrl-C to cancel)"
                    )
                    padding = " " * max(0, self._drawn - len(line))
                    with contextlib.suppress(OSError, ValueError):
                        self._stream.write("\r" + line + padding)
                        self._stream.flush()
                    self._drawn = len(line) + len(padding)
                elif not self._live and elapsed >= next_plain:
                    self._emit(
                        f"{self._indent}Still waiting for the login: {_duration(elapsed)} "
                        "(Ctrl-C to cancel)\n"
                    )
                    next_plain += self._plain_every


def _live_ok(stream: IO[str], *, no_browser: bool, debug: bool) -> bool:
    """Whether the elapsed-time line may be redrawn in place on ``stream``.

    Only on a terminal, without ``--debug`` (log lines would cut through it), and not when
    the user is expected to paste the final address into this terminal (no browser is
    launched here and standard input is a terminal): redrawing the line under the cursor
    would hide what they paste.
    """
    if debug or not _isatty(stream) or os.environ.get("TERM") == "dumb":
        return False
    from ._browser import choose_browser
    from ._environment import detect_environment

    environment = detect_environment()
    if environment.stdin_tty and sys.platform != "win32":
        return not no_browser and choose_browser(environment).launches
    return True


def _progress_for(args: argparse.Namespace, stream: IO[str], indent: str = "") -> _Progress:
    live = _live_ok(stream, no_browser=args.no_browser, debug=args.debug)
    return _Progress(stream, live=live, indent=indent)


# ----------------------------------------------------------------------------- commands


class _Failure(FedbearerError):
    """A step of a command failed in a way that is not a library error (exit status 1)."""


def _auth(
    args: argparse.Namespace, identity: _Identity, cache: FileTokenCache, writer: _Progress
) -> FederationAuth:
    assert identity.client_id is not None
    return FederationAuth(
        identity.client_id,
        identity.federation_endpoint,
        identity.federation_id,
        profile=identity.profile,
        writer=cast(IO[str], writer),
        no_browser_open=args.no_browser,
        timeout=args.timeout,
        port=args.port,
        cache=cache,
        # None leaves it to FEDBEARER_INTERACTIVE; the flag can only turn logins off.
        interactive=False if args.non_interactive else None,
        allow_insecure_http=identity.allow_insecure_http,
    )


def _obtain(
    args: argparse.Namespace, identity: _Identity, cache: FileTokenCache
) -> tuple[Token, str]:
    """A valid token and how it was obtained: ``cached``, ``refreshed`` or ``login``."""
    before = cache.get(identity.key)
    with _progress_for(args, sys.stderr) as progress:
        token = _auth(args, identity, cache, progress).get_token()
    if before is not None and token == before:
        return token, "cached"
    return token, "login" if progress.started else "refreshed"


def _cmd_login(args: argparse.Namespace) -> int:
    identity = _identity(args, need_client_id=True)
    cache = _file_cache(args)
    token, how = _obtain(args, identity, cache)
    who = _subject(token.token)
    as_who = f" as {who}" if who else ""
    renewable = ", with a refresh token" if token.refresh_token else ""
    if how == "cached":
        print(
            f"Already logged in{as_who}: {identity.describe()}; the cached token is "
            f"{_expiry(token)}{renewable}. ('fedbearer logout' forgets it.)"
        )
    else:
        verb = "Logged in" if how == "login" else "Renewed the token with its refresh token"
        print(
            f"{verb}{as_who}: {identity.describe()}; token {_expiry(token)}{renewable}; "
            f"saved in {cache.path}."
        )
    return EXIT_OK


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """For the duration, file descriptor 1 and ``sys.stdout`` both lead to stderr.

    ``fedbearer token``'s stdout is for the token alone, and ``$(fedbearer token)`` reads
    it to its end. A browser launched during the login inherits descriptor 1: Chrome
    prints "Opening in existing browser session." to it, and a browser process that lives
    on would hold the pipe open, and the command substitution with it. Both are restored
    on the way out, whatever ends the block (an error, Ctrl-C).
    """
    saved_stdout = sys.stdout
    with contextlib.suppress(Exception):
        saved_stdout.flush()
    saved_fd: Optional[int] = None
    # Not inheritable: no child gets the real stdout through the copy. No descriptor 1 at
    # all (OSError): nothing a child could write to.
    with contextlib.suppress(OSError):
        saved_fd = os.dup(1)
    try:
        if saved_fd is not None:
            try:
                os.dup2(2, 1)
            except OSError:  # no stderr either: the browser's chatter goes nowhere
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 1)
                finally:
                    os.close(devnull)
        if sys.stderr is not None:
            sys.stdout = sys.stderr
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stdout = saved_stdout
        if saved_fd is not None:
            try:
                os.dup2(saved_fd, 1)
            finally:
                os.close(saved_fd)


def _cmd_token(args: argparse.Namespace) -> int:
    identity = _identity(args, need_client_id=True)
    cache = _file_cache(args)
    with _stdout_to_stderr():
        token, how = _obtain(args, identity, cache)
    if how != "cached":
        verb = "Logged in" if how == "login" else "Renewed the token"
        print(f"{verb}: {identity.describe()}; token {_expiry(token)}.", file=sys.stderr)
    sys.stdout.write(token.token + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _cmd_logout(args: argparse.Namespace) -> int:
    identity = _identity(args, need_client_id=False)
    cache = _file_cache(args)

    def present() -> bool:
        return any(key == identity.key for key, _ in cache.entries())

    if not present():
        print(
            f"Not logged in: no cached token for {identity.describe()} in {cache.path}; "
            "nothing to remove."
        )
        return EXIT_OK
    cache.remove(identity.key)
    if present():
        raise _Failure(
            f"could not remove the token of {identity.describe()} from {cache.path} "
            "(see the warning above); check the file's permissions"
        )
    print(
        f"Logged out: removed the cached token of {identity.describe()} from {cache.path}. "
        "The federation was not contacted; the token itself expires on its own."
    )
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    current = _resolve_identity(args, need_client_id=False, required=False)
    cache = _file_cache(args)
    entries = cache.entries()
    if not entries:
        print(f"No cached tokens in {cache.path}.")
        return EXIT_OK
    print(f"Cached tokens in {cache.path}:")
    for key, token in entries:
        mark = "*" if current is not None and key == current.key else " "
        renewable = ", with a refresh token" if token.refresh_token else ""
        print(f"{mark} {key}: {_expiry(token)}{renewable}")
    if current is not None and all(key != current.key for key, _ in entries):
        print(f"  (nothing cached for {current.describe()})")
    return EXIT_OK


# ----------------------------------------------------------------------------- demo


@contextlib.contextmanager
def _loopback_bypasses_proxies() -> Iterator[None]:
    """Keep ``HTTP(S)_PROXY`` away from ``127.0.0.1`` while the demo runs, then restore.

    The token request goes through ``requests`` with the environment's proxy settings, and
    ``requests`` sends even loopback addresses to a proxy unless ``no_proxy`` names them.
    """
    saved = {name: os.environ.get(name) for name in ("no_proxy", "NO_PROXY")}
    current = saved["no_proxy"] or saved["NO_PROXY"] or ""
    entries = [entry for entry in current.split(",") if entry.strip()]
    value = ",".join([*entries, "127.0.0.1"])
    try:
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _demo_browser_reason(args: argparse.Namespace) -> Optional[str]:
    """Why the demo will not use a real browser, or ``None`` when it will."""
    from ._browser import choose_browser
    from ._environment import detect_environment

    if args.no_browser:
        return "--no-browser was given"
    environment = detect_environment()
    choice = choose_browser(environment)
    if not choice.launches:
        return choice.reason or "no browser was found"
    if not environment.stdin_tty:
        return "standard input is not a terminal, so nobody may be there to press Approve"
    return None


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    import requests

    from .testing import LocalFederation, ProgrammaticBrowser

    started = time.monotonic()
    out = sys.stdout
    steps = 6
    width = max(60, min(100, shutil.get_terminal_size().columns))

    def say(text: str, indent: str = "", hang: Optional[str] = None) -> None:
        # Long words (URLs, JSON) are never split, so they stay copyable.
        lines = textwrap.fill(
            text,
            width=width,
            initial_indent=indent,
            subsequent_indent=indent if hang is None else hang,
            break_long_words=False,
            break_on_hyphens=False,
        )
        out.write(lines + "\n")
        out.flush()

    def step(number: int, text: str) -> None:
        say(f"[{number}/{steps}] {text}", hang=" " * 6)

    no_browser_because = _demo_browser_reason(args)
    interactive = no_browser_because is None
    say(
        "fedbearer demo: a complete federation login on this machine, step by step. "
        "No network and no real credentials are used."
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_loopback_bypasses_proxies())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="fedbearer-demo-"))
        federation = stack.enter_context(
            LocalFederation(
                client_id="fedbearer-demo",
                federation_id="demo-federation",
                auto_approve=not interactive,
                user="demo-user",
            )
        )
        step(
            1,
            f"A local federation (an OAuth 2.0 authorization server in this process) is "
            f"running at {federation.endpoint}; client id 'fedbearer-demo', federation id "
            "'demo-federation'.",
        )
        programmatic = ProgrammaticBrowser()
        progress = _progress_for(args, out, indent="      ")
        opener: Callable[[str], Optional[bool]]
        if interactive:
            from ._browser import choose_browser
            from ._environment import detect_environment

            real = choose_browser(detect_environment()).opener
            assert real is not None

            def opener(url: str) -> bool:
                try:
                    opened = real(url)
                except Exception as exc:
                    log.debug("demo: browser launch failed (%s)", type(exc).__name__)
                    opened = False
                if opened is False:
                    progress.write("The browser did not open; approving in-process instead.\n")
                    return programmatic(url)
                return True

            step(
                2,
                "Your browser will open the federation's approval page: type any name and "
                "press Approve (or Deny, to see a refused login).",
            )
        else:
            opener = programmatic
            step(
                2,
                f"No browser will be opened: {no_browser_because}. A programmatic browser "
                "(fedbearer.testing.ProgrammaticBrowser) follows the login URL in-process "
                "and the federation approves at once.",
            )
        cache = FileTokenCache(os.path.join(workdir, "credentials.yaml"))
        auth = FederationAuth(
            federation.client_id,
            federation.endpoint,
            "demo-federation",
            profile="demo",
            writer=cast(IO[str], progress),
            timeout=args.timeout,
            port=args.port,
            opener=opener,
            cache=cache,
            hosts=[federation.endpoint],
            interactive=True,  # the demo is a login; FEDBEARER_INTERACTIVE=0 is for real ones
        )
        step(
            3,
            "Logging in: FederationAuth starts a loopback server on 127.0.0.1, shows the "
            f"login URL, hands it to the {'' if interactive else 'programmatic '}browser "
            "and waits for the browser to come back with the code:",
        )
        with progress:
            token = auth.get_token()
        step(
            4,
            f"Token obtained: {_expiry(token)}"
            f"{', with a refresh token' if token.refresh_token else ''}; cached in a "
            "temporary credentials.yaml. (The token itself is never shown.)",
        )
        session = stack.enter_context(requests.Session())
        session.trust_env = False  # loopback calls go straight to the local API
        session.auth = auth
        response = session.get(federation.whoami_url, timeout=30)
        if response.status_code != 200:
            raise _Failure(f"the API answered HTTP {response.status_code} with a fresh token")
        step(
            5,
            f"API call with session.auth = FederationAuth(...): GET /whoami -> "
            f"{response.status_code} {_short_json(response)}",
        )
        federation.revoke_access_tokens()
        step(
            6,
            "Forced renewal: the federation drops every access token, as if it had "
            "expired early. Calling the API again:",
        )
        response = session.get(federation.whoami_url, timeout=30)
        first = response.history[0] if response.history else None
        if first is None or first.status_code != 401 or response.status_code != 200:
            raise _Failure(
                "expected 401 then 200 after the revocation, got "
                f"{first.status_code if first is not None else 'no 401'} then "
                f"{response.status_code}"
            )
        challenge = re.search(r'error="([^"]*)"', first.headers.get("WWW-Authenticate", ""))
        how = (
            "renewed it with the refresh token (no browser)"
            if federation.refreshes
            else "logged in again"
        )
        say(
            f"GET /whoami -> 401 ({challenge.group(1) if challenge else 'no error code'}); "
            f"FederationAuth {how} and resent the request -> {response.status_code} "
            f"{_short_json(response)}",
            indent=" " * 6,
        )
        say(
            f"Federation counters: {federation.logins} login(s), "
            f"{federation.refreshes} refresh(es).",
            indent=" " * 6,
        )
    say(
        f"Done in {time.monotonic() - started:.1f} s. The federation and the loopback server "
        "are stopped and the temporary cache is deleted. Next: session.auth = "
        "FederationAuth(client_id, federation_endpoint, federation_id) in your code."
    )
    return EXIT_OK


def _short_json(response: Any) -> str:
    try:
        return json.dumps(response.json(), sort_keys=True)[:200]
    except ValueError:
        return "(not JSON)"


# ----------------------------------------------------------------------------- main


def _interaction_required(args: argparse.Namespace, exc: InteractionRequiredError) -> str:
    """The library's message speaks of ``interactive=False``; here, say it in CLI terms,
    with a login command for the same identity *and the same cache file*, so following it
    fixes the failure."""
    try:
        identity = _identity(args, need_client_id=True)
    except FedbearerError:
        return str(exc)
    assert identity.client_id is not None
    command = login_command(
        identity.client_id,
        identity.federation_endpoint,
        identity.federation_id,
        identity.profile,
        nebius_profile=args.nebius_profile,
        allow_insecure_http=identity.allow_insecure_http,
        cache_file=args.cache_file,
    )
    if getattr(args, "non_interactive", False):
        why, where = "--non-interactive was given", "a terminal"
    else:
        value = os.environ.get("FEDBEARER_INTERACTIVE", "")
        why = f"FEDBEARER_INTERACTIVE={value} turns interactive logins off"
        where = "a terminal where FEDBEARER_INTERACTIVE is not set"
    return (
        f"a login is needed for {identity.describe()} but {why}; log in first from "
        f"{where} with: {command}"
    )


def _hint(exc: FedbearerError, prog: str) -> str:
    if isinstance(exc, LoginTimeoutError):
        return " (--timeout SECONDS sets the time allowed)"
    if isinstance(exc, ConfigurationError):
        return f" (see '{prog} --help')"
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {_one_line(message)}\n")
    sys.stderr.flush()


def _show_warning(
    message: Union[Warning, str],
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Optional[TextIO] = None,
    line: Optional[str] = None,
) -> None:
    """Warnings (a cache file that cannot be written, ...) as one line, without source."""
    sys.stderr.write(f"fedbearer: warning: {_one_line(str(message))}\n")


@contextlib.contextmanager
def _debug_logging(enabled: bool) -> Iterator[None]:
    """``fedbearer.*`` logs at DEBUG to stderr for the duration (fedbearer logs no secrets)."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("fedbearer")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``fedbearer`` command with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        _report(exc.prog, f"{exc}; see '{exc.prog} --help'")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"fedbearer {args.command}"
    try:
        with _debug_logging(args.debug), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status: int = args.handler(args)
            return status
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    except InteractionRequiredError as exc:
        if args.debug:
            traceback.print_exc()
        _report(prog, _interaction_required(args, exc))
        return EXIT_INTERACTION_REQUIRED
    except FedbearerError as exc:
        if args.debug:
            traceback.print_exc()
        _report(prog, str(exc) + _hint(exc, prog))
        if isinstance(exc, ConfigurationError):
            return EXIT_USAGE
        return EXIT_FAILURE
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        # The type only: a foreign exception's text is not known to be free of secrets.
        _report(
            prog,
            f"unexpected {type(exc).__name__}; run again with --debug for the details, "
            "and report it if it persists",
        )
        return EXIT_FAILURE
