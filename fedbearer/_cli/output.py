"""What the ``fedbearer`` command shows: expiries, the login's progress line, errors, hints.

Nothing here ever writes a token or a refresh token.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Callable, Optional, TextIO, Union

from .. import _clock
from .._cooldown import describe_time
from .._exceptions import (
    ConfigurationError,
    FedbearerError,
    InteractionRequiredError,
    LoginAbandonedError,
    LoginTimeoutError,
)
from .._interrupts import defers_interrupts
from .._login_command import login_command
from .._settings import interactive_from_env
from .._token import Token, jwt_claims
from .options import identity_from


def duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3 h 5 min``, ``4 days``: the size of ``seconds``, either sign."""
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


def expiry(token: Token) -> str:
    """``valid until 2025-06-01 12:00:00 UTC (in 59 min)``, or how long ago it expired."""
    if token.expiration is None:
        return "with no stated expiry"
    when = token.expiration.strftime("%Y-%m-%d %H:%M:%S UTC")
    left = token.expiration.timestamp() - _clock.now()
    if left > 0:
        return f"valid until {when} (in {duration(left)})"
    return f"expired at {when} ({duration(left)} ago)"


def printable(text: str) -> str:
    """``text`` safe for a terminal: each character that is not printable (an escape that
    would recolour or rewrite the screen, a line break that would forge a line) shown
    escaped, as Python writes it (``\\x1b``, ``\\n``). Cache keys come from a file that
    other tools write too."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def subject(access_token: str) -> Optional[str]:
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


class Progress:
    """The login's writer: passes text through and shows how long the login has waited.

    The first write is the login showing its URL, so it starts a daemon thread that, on a
    terminal (``live``), redraws an elapsed-time line in place every ``tick`` seconds
    (carriage return and spaces, no escape sequences), and otherwise writes a plain line
    every ``plain_every`` seconds. Other text clears the line before it is written. One
    lock orders the writers (the login, its browser thread, the ticker). :meth:`close`
    stops and joins the thread and clears the line. ``live`` may be a function, asked at
    the first write: whether a terminal line may be redrawn depends on the browser a login
    would launch, which only a login needs to work out.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        live: Union[bool, Callable[[], bool]],
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
                if callable(self._live):
                    self._live = self._live()
                self._start_ticker()
        return len(text)

    @defers_interrupts
    def _start_ticker(self) -> None:
        # Held back from Ctrl-C: Thread.start() cut in half leaves a thread that runs but
        # cannot be joined, or raises RuntimeError (see fedbearer._interrupts).
        self._started_at = time.monotonic()
        thread = threading.Thread(target=self._run, name="fedbearer-progress", daemon=True)
        thread.start()
        self._thread = thread

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        return _isatty(self._stream)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            # Not held back from Ctrl-C: the ticker may be stuck writing to a stream that
            # nobody reads, and Ctrl-C must still end the command.
            thread.join()
        with self._lock:
            self._clear()

    def __enter__(self) -> Progress:
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
                        f"{self._indent}Waiting for the browser: {duration(elapsed)} "
                        "(Ctrl-C to cancel)"
                    )
                    padding = " " * max(0, self._drawn - len(line))
                    with contextlib.suppress(OSError, ValueError):
                        self._stream.write("\r" + line + padding)
                        self._stream.flush()
                    self._drawn = len(line) + len(padding)
                elif not self._live and elapsed >= next_plain:
                    self._emit(
                        f"{self._indent}Still waiting for the login: {duration(elapsed)} "
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
    # Imported here: only a login gets this far (see Progress), and browser detection
    # (webbrowser, subprocess) is a measurable part of a cached `fedbearer token`.
    from .._browser import choose_browser
    from .._environment import detect_environment

    environment = detect_environment()
    if environment.stdin_tty and sys.platform != "win32":
        return not no_browser and choose_browser(environment).launches
    return True


def progress_for(stream: IO[str], *, no_browser: bool, debug: bool, indent: str = "") -> Progress:
    """The login's writer on ``stream``: live on a terminal where that is safe, else plain."""

    def live() -> bool:
        return _live_ok(stream, no_browser=no_browser, debug=debug)

    return Progress(stream, live=live, indent=indent)


def interaction_required(args: argparse.Namespace, exc: InteractionRequiredError) -> str:
    """The library's message speaks of ``interactive=False``; here, say it in CLI terms,
    with a login command for the same identity *and the same cache file*, so following it
    fixes the failure."""
    try:
        identity = identity_from(args, need_client_id=True)
    except FedbearerError:
        return str(exc)
    assert identity.client_id is not None
    command = login_command(
        identity.client_id,
        identity.profile,
        federation_endpoint=identity.federation_endpoint,
        federation_id=identity.federation_id,
        issuer=identity.issuer,
        scopes=identity.scopes,
        params=identity.params,
        nebius_profile=args.nebius_profile,
        allow_insecure_http=identity.allow_insecure_http,
        cache_file=args.cache_file,
        keyring=identity.keyring,
    )
    if command is None:
        return str(exc)
    if isinstance(exc, LoginAbandonedError):
        return (
            f"the last login for {identity.describe()} was abandoned at "
            f"{describe_time(exc.abandoned_at)}, so none starts by itself before "
            f"{describe_time(exc.until)} (to open no browser tab per call); log in now with: "
            f"{command}"
        )
    if getattr(args, "non_interactive", False):
        why, where = "--non-interactive was given", "a terminal"
    else:
        # What turned them off: FEDBEARER_INTERACTIVE=0, or CI=true with it unset.
        _, source = interactive_from_env()
        why = f"{source} turns interactive logins off"
        variable = source.split("=")[0] if "=" in source else None
        where = "a terminal" if variable is None else f"a terminal where {variable} is not set"
    return (
        f"a login is needed for {identity.describe()} but {why}; log in first from "
        f"{where} with: {command}"
    )


def hint(exc: FedbearerError, prog: str) -> str:
    """What to add to the error's own text: the option or help that fixes it, if any."""
    if isinstance(exc, LoginTimeoutError):
        return " (--timeout SECONDS sets the time allowed)"
    if isinstance(exc, ConfigurationError):
        return f" (see '{prog} --help')"
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def report(prog: str, message: str) -> None:
    """``<prog>: error: <message>``, on one line of stderr."""
    sys.stderr.write(f"{prog}: error: {_one_line(message)}\n")
    sys.stderr.flush()


def show_warning(
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
def debug_logging(enabled: bool) -> Iterator[None]:
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
