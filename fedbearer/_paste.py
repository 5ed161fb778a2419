"""Paste fallback: the final redirect URL, copied from a browser that could not reach us.

When the browser runs on another machine (SSH without a port forward, a container, a
headless server), the federation's last redirect goes to ``http://127.0.0.1:<port>/?code=
...&state=...`` on the *user's* machine, where nothing listens, and the page fails to load.
Its address still carries the authorization response. While the login waits, a
:class:`PasteReader` reads lines from the terminal; a line that is this login's callback
URL is classified exactly as the loopback server classifies a request (the same
:func:`~fedbearer._protocol.parse_callback`, so the same ``state`` and ``iss`` checks,
RFC 6749 §4.1.2 and RFC 9207) and handed to the server with
:meth:`~fedbearer._loopback.LoopbackServer.offer`. Whichever arrives first, request or
paste, ends the wait. Anything else gets a one-line explanation and the wait goes on.

The pasted text is never repeated in a message or a log: it holds the code.

The reader polls the terminal with :func:`select.select` and a short timeout, so it never
sits blocked in ``read()``: :meth:`PasteReader.stop` ends it within one poll and nothing
reads the terminal after the login is over. POSIX only; on Windows, where ``select``
does not work on a console, there is no paste fallback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
from typing import Callable, Optional, Protocol
from urllib.parse import urlsplit

from ._interrupts import defers_interrupts
from ._protocol import Callback, CallbackKind, parse_callback

log = logging.getLogger("fedbearer.paste")

#: Seconds between checks of the stop flag while the terminal is quiet.
POLL_INTERVAL = 0.1
#: Longest line considered; a callback URL is well under 2 kB (terminals cap a line at
#: 4096 bytes on Linux and 1024 on macOS anyway).
MAX_LINE = 16384

# Hosts the loopback server answers to (its Host check); a paste names one of them.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Bracketed-paste markers a terminal may wrap pasted text in.
_PASTE_MARKERS = ("\x1b[200~", "\x1b[201~")


class _Offer(Protocol):
    def offer(self, callback: Callback) -> bool: ...


def _clean(text: str) -> str:
    for marker in _PASTE_MARKERS:
        text = text.replace(marker, "")
    text = text.strip()
    # Copied with its decoration: <url>, "url" or 'url'.
    if len(text) >= 2 and (text[0], text[-1]) in (("<", ">"), ('"', '"'), ("'", "'")):
        text = text[1:-1].strip()
    return text


def classify_paste(
    text: str, *, redirect_uri: str, state: str, issuers: frozenset[str]
) -> tuple[Optional[Callback], Optional[str]]:
    """Classify one pasted line: ``(decisive callback, None)`` or ``(None, explanation)``.

    The URL must be for our redirect URI: scheme ``http``, our port (no port means 80, as
    a browser shows it), a loopback host and the path ``/`` (or none). The host may be any
    of ``127.0.0.1``, ``localhost`` and ``[::1]``: the loopback server accepts the same
    three in its ``Host`` check, so a paste is accepted exactly when the same request would
    have been; what proves the response is ours is the ``state``, checked in constant time
    by ``parse_callback``.
    An empty line gives ``(None, None)``. Explanations never quote the pasted text.
    """
    text = _clean(text)
    if not text:
        return None, None
    expected = urlsplit(redirect_uri)
    where = f"http://{expected.netloc}/"
    try:
        parts = urlsplit(text)
        # A browser shows the default port 80 as no port at all, so that is what is copied.
        port = 80 if parts.port is None else parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.scheme or not parts.netloc:
        return None, (
            "That is not a URL. After logging in, copy the address of the page that failed "
            f"to load (it starts with {where}?) and paste it here."
        )
    if (
        parts.scheme.lower() != "http"
        or (parts.hostname or "") not in _LOOPBACK_HOSTS
        or "@" in parts.netloc
        or port != expected.port
        or parts.path not in ("", "/")
    ):
        return None, f"That address is not this login's callback ({where}); nothing was sent."
    callback = parse_callback(parts.query, state=state, issuers=issuers)
    if callback.decisive:
        return callback, None
    if callback.kind is CallbackKind.NO_STATE:
        return None, (
            "That address has no login response in it; paste the whole address, "
            "everything after '?' included."
        )
    if callback.kind is CallbackKind.WRONG_STATE:
        return None, (
            "That address belongs to another login attempt; finish the login from the URL "
            "shown above and paste the address it ends on."
        )
    return None, "That address has neither a code nor an error in it; nothing was sent."


class PasteReader:
    """Reads pasted callback URLs from terminal file descriptor ``fd`` on a daemon thread.

    A decisive paste goes to ``server.offer`` and ends the reader; every other line gets
    one line through ``say``. :meth:`stop` is idempotent and returns at once: it wakes the
    ``select`` through a pipe rather than waiting for its timeout, which would otherwise
    add up to :data:`POLL_INTERVAL` to the end of every login run from a terminal.
    """

    def __init__(
        self,
        *,
        server: _Offer,
        redirect_uri: str,
        state: str,
        issuers: frozenset[str],
        say: Callable[[str], None],
        fd: int,
    ) -> None:
        self._server = server
        self._redirect_uri = redirect_uri
        self._state = state
        self._issuers = issuers
        self._say = say
        self._fd = fd
        self._stop = threading.Event()
        self._wake: Optional[tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None
        #: Lines handled, by outcome ("callback", "explained", "empty"); for tests.
        self.stats: dict[str, int] = {}

    def __repr__(self) -> str:
        running = self._thread is not None and self._thread.is_alive()
        return f"<PasteReader fd={self._fd} running={running}>"

    @defers_interrupts
    def start(self) -> None:
        """Start reading. Ctrl-C cannot cut this in half: the reader runs, or it never will."""
        if self._thread is not None:
            return
        self._wake = os.pipe()
        thread = threading.Thread(target=self._run, name="fedbearer-paste", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._close_wake()
            raise
        self._thread = thread

    @defers_interrupts
    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and join the thread (bounded by ``timeout``); Ctrl-C waits for it."""
        self._stop.set()
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake[1], b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                self._close_wake()

    def _close_wake(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            for fd in wake:
                with contextlib.suppress(OSError):
                    os.close(fd)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _run(self) -> None:

        pending = b""
        wake = self._wake[0] if self._wake is not None else None
        watched = [self._fd] if wake is None else [self._fd, wake]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(watched, [], [], POLL_INTERVAL)
            except (OSError, ValueError):  # the descriptor was closed under us
                log.debug("paste: the terminal is gone; no more pasting")
                return
            if not ready or self._stop.is_set() or self._fd not in ready:
                continue
            try:
                chunk = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the terminal hung up
                log.debug("paste: the terminal is gone; no more pasting")
                return
            if not chunk:  # end of input (Ctrl-D): the user does not want to paste
                log.debug("paste: end of input; no more pasting")
                return
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                if self._line(line):
                    return
            if len(pending) > MAX_LINE:
                pending = b""
                self._say("That line is too long to be a login address; nothing was sent.\n")

    def _line(self, raw: bytes) -> bool:
        """Handle one line; True when it ended the login."""
        try:
            callback, explanation = classify_paste(
                raw.decode("utf-8", "replace"),
                redirect_uri=self._redirect_uri,
                state=self._state,
                issuers=self._issuers,
            )
        except Exception:  # a bug here must not end the wait for the browser
            log.debug("paste: could not classify a line", exc_info=True)
            self._count("explained")
            self._say("That could not be read as a login address; nothing was sent.\n")
            return False
        if callback is None:
            self._count("explained" if explanation else "empty")
            if explanation:
                log.debug("paste: a pasted line was not this login's callback")
                self._say(explanation + "\n")
            return False
        self._count("callback")
        log.debug("paste: a pasted callback classified as %s", callback.kind.value)
        if self._server.offer(callback):
            self._say("Got the login response from the pasted address.\n")
        return True


def start_paste_reader(
    *,
    server: _Offer,
    redirect_uri: str,
    state: str,
    issuers: frozenset[str],
    say: Callable[[str], None],
    fd: Optional[int] = None,
) -> Optional[PasteReader]:
    """Start a :class:`PasteReader` on ``fd`` (default: standard input), or return ``None``.

    ``None`` on Windows and when standard input has no usable descriptor. The caller
    decides whether pasting makes sense (standard input is a terminal).
    """
    if sys.platform == "win32":
        return None
    if fd is None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return None
    reader = PasteReader(
        server=server, redirect_uri=redirect_uri, state=state, issuers=issuers, say=say, fd=fd
    )
    reader.start()
    return reader
