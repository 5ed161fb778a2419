"""No tab per call: after an abandoned login, lazy logins for the same identity wait a while.

A login that was started but not completed (it timed out, the person denied it, the device
code expired) is recorded in a small file per identity in the user's state directory, the
directory of the keyring's login locks (``~/.local/state/fedbearer`` on Linux). Within the
cool-down that follows, a login that would start by itself (a request through
:class:`~fedbearer.FederationAuth`, ``fedbearer token``) does not open a browser or show a
code: it raises :class:`~fedbearer.LoginAbandonedError` at once. A background loop, an
editor calling ``kubectl``-style helpers, eight processes one after another: one prompt,
not one per call. An explicit login (``fedbearer login``,
:meth:`FederationAuth.login <fedbearer.FederationAuth.login>`) always runs and clears the
record, and so does any login that succeeds.

The cool-down is :data:`FIRST_COOLDOWN` after the first abandoned login and doubles with
each one abandoned in a row, up to :data:`MAX_COOLDOWN`; a record older than
:data:`STREAK_RESET` starts the count again.

The file holds the time of the last abandoned login, how many in a row, and how it ended;
nothing secret. It is written 0600 through a temporary file and an atomic rename, read
(:mod:`fedbearer._files`) without following a symbolic link, as a regular file only, and at
most :data:`MAX_RECORD_BYTES`; anything
unreadable or malformed counts as no record (a broken file must not stop logins).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from . import _clock
from ._exceptions import AuthorizationError, DeviceCodeExpiredError, LoginTimeoutError
from ._files import FileRefused, open_regular, read_fd
from ._settings import test_guard

log = logging.getLogger("fedbearer.login")

#: Seconds after the first abandoned login during which lazy logins are not started (5 min).
FIRST_COOLDOWN = 300.0
#: Longest cool-down, reached after five abandoned logins in a row (1 h).
MAX_COOLDOWN = 3600.0
#: A record older than this (a day) no longer counts towards the streak.
STREAK_RESET = 86400.0
#: Largest record file read.
MAX_RECORD_BYTES = 4096


def cooldown(streak: int) -> float:
    """Seconds of cool-down after ``streak`` logins abandoned in a row: 5, 10, 20, 40, then
    60 minutes."""
    return min(FIRST_COOLDOWN * 2.0 ** (max(streak, 1) - 1), MAX_COOLDOWN)


@dataclass(frozen=True)
class Abandoned:
    """The last abandoned login of one identity."""

    #: When it ended, POSIX seconds.
    at: float
    #: How many logins in a row were abandoned.
    streak: int
    #: How it ended, in words (``timed out``, ``denied``, ``the device code expired``).
    how: str

    @property
    def until(self) -> float:
        """When the cool-down ends, POSIX seconds."""
        return self.at + cooldown(self.streak)


def state_dir() -> str:
    """Where the records live: the user state directory (``platformdirs``), or, under
    fedbearer's pytest plugin, a directory of the test's own."""
    if test_guard.state_dir is not None:
        return test_guard.state_dir
    import platformdirs  # only when a login is about to start (see _cache.provider_cache)

    return platformdirs.user_state_dir("fedbearer", appauthor=False)


def record_path(key: str, directory: Optional[str] = None) -> str:
    """The record file of the identity whose token cache key is ``key``."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return os.path.join(directory or state_dir(), f"abandoned-login-{digest}.json")


def how_abandoned(exc: BaseException) -> Optional[str]:
    """How ``exc`` says a login was abandoned by its person, or ``None`` when it was not
    (a configuration error or an outage is no reason to hold logins back; nor is Ctrl-C,
    which says the person is there)."""
    if isinstance(exc, DeviceCodeExpiredError):
        return "the device code expired"
    if isinstance(exc, LoginTimeoutError):
        return "it timed out"
    if isinstance(exc, AuthorizationError) and exc.error == "access_denied":
        return "it was denied"
    return None


def read(key: str, *, directory: Optional[str] = None) -> Optional[Abandoned]:
    """The record of ``key``, or ``None`` (none, unreadable or malformed)."""
    path = record_path(key, directory)
    try:
        # Not followed if a symbolic link; a FIFO or device at the path is refused unread.
        fd = open_regular(path, follow=False)
    except FileNotFoundError:
        return None
    except (OSError, FileRefused) as exc:  # a symbolic link (ELOOP), no permission, a FIFO
        log.debug("ignoring the login record %s (%s)", path, type(exc).__name__)
        return None
    try:
        data = read_fd(fd, path, MAX_RECORD_BYTES)
    except (OSError, FileRefused):
        return None
    finally:
        os.close(fd)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    at, streak, how = document.get("abandoned_at"), document.get("streak"), document.get("how")
    if (
        isinstance(at, bool)
        or not isinstance(at, (int, float))
        or not math.isfinite(at)
        or isinstance(streak, bool)
        or not isinstance(streak, int)
        or not 1 <= streak <= 1000
        or not isinstance(how, str)
    ):
        return None
    clean = "".join(ch for ch in how[:80] if ch.isprintable())
    return Abandoned(float(at), streak, clean or "abandoned")


def active(key: str, *, directory: Optional[str] = None) -> Optional[Abandoned]:
    """The record of ``key`` while its cool-down runs, else ``None``.

    A record dated more than a minute in the future (a clock set back, a forged file) does
    not count: it could otherwise hold logins back for ever.
    """
    last = read(key, directory=directory)
    now = _clock.now()
    if last is None or last.at > now + 60 or now >= last.until:
        return None
    return last


def record(key: str, how: str, *, directory: Optional[str] = None) -> Optional[Abandoned]:
    """Note that a login for ``key`` was abandoned now; the new record (``None`` when it
    could not be written: logged, never raised)."""
    now = _clock.now()
    last = read(key, directory=directory)
    streak = 1
    if last is not None and 0 <= now - last.at < STREAK_RESET:
        streak = min(last.streak + 1, 1000)
    new = Abandoned(now, streak, how)
    payload = json.dumps({"abandoned_at": now, "streak": streak, "how": how}).encode("utf-8")
    path = record_path(key, directory)
    try:
        _write_atomically(path, payload)
    except OSError as exc:
        log.warning(
            "could not note the abandoned login in %s (%s); later calls may start a login again",
            path,
            type(exc).__name__,
        )
        return None
    log.info(
        "login abandoned (%s), %d in a row: no login starts by itself before %s",
        how,
        streak,
        describe_time(new.until),
    )
    return new


def clear(key: str, *, directory: Optional[str] = None) -> None:
    """Forget the record of ``key`` (a login succeeded, or an explicit login starts)."""
    path = record_path(key, directory)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("could not remove the login record %s (%s)", path, type(exc).__name__)


def _write_atomically(path: str, payload: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    # mkstemp: O_EXCL, mode 0600, a fresh name, so no symbolic link is followed; the rename
    # replaces whatever is at ``path`` (a link included) without following it.
    fd, temporary = tempfile.mkstemp(prefix=".abandoned-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def describe_time(moment: float) -> str:
    """``2026-12-08 02:31:05 CET``: local time, for messages."""
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
