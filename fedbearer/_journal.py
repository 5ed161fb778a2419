"""The redo journal: crash-safe in-place rewrites of a locked cache file.

The cache file is shared with the Nebius CLI and SDKs, so it is rewritten **in place**, never
replaced by rename: a lock belongs to a file, not to a name, and the Go SDK blocks on a
descriptor it opened before waiting and then reads and writes by path, so after a rename it
would work on the new file without holding its lock. Crash safety comes from a redo journal
instead. With the file locked, :func:`commit`

1. writes the complete old and new contents to ``<file>.fedbearer-journal`` (under a
   temporary name, fsync, atomic rename: the journal only ever appears complete);
2. writes the new content over the old in one write from offset 0, padded with newlines to at
   least the old length, then cuts the file to the new length and syncs it;
3. deletes the journal.

A crash before step 2 leaves the old file; one between step 2's write and its cut leaves the
new content followed by blank lines, valid for every tool. Only a crash during that one write
tears the file. Whoever next takes the lock passes what it read to :func:`recover`, which
finishes the interrupted write, but only when the file is still exactly what that write could
have left; anything else means another tool rewrote the file since, and its content wins. A
reader without write permission gets the finished content in memory and leaves the repair to
the next writer. ``docs/token_cache.rst`` ("Crash safety") has the reasoning.

The caller holds the file's lock and passes its descriptor. Journal layout (private to
fedbearer): ``_MAGIC``, then ``b"<len(base)> <len(new)>\\n"``, then ``base``, then ``new``.
``base`` is the file as read under the lock, ``new`` what replaces it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Optional

from . import _files

_SUFFIX = ".fedbearer-journal"
_MAGIC = b"fedbearer-journal 1\n"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Largest journal read: two copies of a cache file (each at most 1 MiB, the cache's own
#: cap; the new one may pass it by a token) and a header, with room to spare.
MAX_JOURNAL_BYTES = 4 << 20


def pending(path: str) -> bool:
    """Whether a journal lies beside ``path``: an interrupted write may wait to be finished."""
    journal, _tmp = _paths(path)
    return os.path.lexists(journal)


def recover(fd: int, path: str, current: bytes, writable: bool) -> bytes:
    """Finish or discard an interrupted fedbearer write; the content to use from now on.

    Called with the lock held. Rolls forward when the file is what the interrupted write
    would have left (torn or untouched), otherwise drops the stale journal. With a read-only
    descriptor the repair is left to the next writer and the answer computed in memory.
    """
    journal, _tmp = _paths(path)
    try:
        record = _read(journal)
    except OSError:
        return current  # an unreadable journal cannot help; the file is still the truth
    if record is None:
        if writable and os.path.lexists(journal):
            with contextlib.suppress(OSError):
                os.unlink(journal)  # malformed: cannot be ours complete, so it is junk
        return current
    base, new = record
    finished = current.rstrip(b"\n") == new.rstrip(b"\n")
    if finished or not _left_by_interrupted_write(current, base, new):
        result = current
    elif writable:
        _write_at_start(fd, _padded(current, new))
        os.ftruncate(fd, len(new))
        os.fsync(fd)
        result = new
    else:
        return new
    if writable:
        with contextlib.suppress(OSError):
            os.unlink(journal)
    return result


def commit(fd: int, path: str, base: bytes, new: bytes) -> None:
    """Replace the locked file's content ``base`` by ``new``, crash-safely, in place."""
    journal, tmp = _paths(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # under the lock, any temp journal is a crashed writer's leftover
    try:
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        try:
            write_all(tfd, _MAGIC + b"%d %d\n" % (len(base), len(new)) + base + new)
            os.fsync(tfd)
        finally:
            os.close(tfd)
        os.replace(tmp, journal)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(journal))
    try:
        _write_at_start(fd, _padded(base, new))
        os.ftruncate(fd, len(new))
        os.fsync(fd)
    except OSError:
        # Put the old content back if we can (its blocks are allocated, so even a full disk
        # usually allows it); if not, the journal lets the next lock holder finish the job.
        with contextlib.suppress(OSError):
            _write_at_start(fd, base)
            os.ftruncate(fd, len(base))
            os.fsync(fd)
            os.unlink(journal)
        raise
    # The write is done; a journal that cannot be removed is found "finished" and removed
    # by the next lock holder, so failing here must not report the write as lost.
    with contextlib.suppress(OSError):
        os.unlink(journal)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the descriptor's position (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: str) -> None:
    """Make a file created or renamed in ``directory`` durable (POSIX; best effort)."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _paths(path: str) -> tuple[str, str]:
    """The journal and its temporary name."""
    # realpath: a symlinked cache file and its target must find the same journal.
    real = os.path.realpath(path)
    journal = real + _SUFFIX
    return journal, journal + ".tmp"


def _padded(base: bytes, new: bytes) -> bytes:
    """``new`` padded with newlines to at least ``len(base)``.

    One write then covers every old byte, so a crash between the write and the truncate
    leaves ``new`` plus blank lines, a valid file even for tools that know no journal.
    """
    return new + b"\n" * max(0, len(base) - len(new))


def _read(journal: str) -> Optional[tuple[bytes, bytes]]:
    """``(base, new)`` from a complete journal; ``None`` when there is none or it is malformed.

    Only a journal fedbearer could have written counts: a private regular file (not a link,
    FIFO or device: :mod:`fedbearer._files`) of at most :data:`MAX_JOURNAL_BYTES`. Anything
    else at its name is junk, like a malformed journal: its content is never read whole,
    and never rolled forward into the cache (whoever else wrote it could plant a token).
    """
    try:
        raw = _files.read_private(journal, MAX_JOURNAL_BYTES, follow=False)
    except _files.FileRefused:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link: never one of ours
            return None
        raise
    if raw is None:
        return None
    if not raw.startswith(_MAGIC):
        return None
    header, sep, rest = raw[len(_MAGIC) :].partition(b"\n")
    try:
        base_len, new_len = (int(part) for part in header.split(b" "))
    except ValueError:
        return None
    if not sep or base_len < 0 or new_len < 0 or len(rest) != base_len + new_len:
        return None
    return rest[:base_len], rest[base_len:]


def _left_by_interrupted_write(current: bytes, base: bytes, new: bytes) -> bool:
    """Whether ``current`` is exactly what our write of ``new`` over ``base`` could leave.

    A write stopped after ``m`` bytes leaves ``padded[:m] + base[m:]`` (``m = 0``: nothing
    happened; ``m = len(padded)``: written, not yet truncated). Anything else means another
    tool rewrote the file since, and its content wins over our unfinished write.
    """
    padded = _padded(base, new)
    m = 0
    limit = min(len(current), len(padded))
    while m < limit and current[m] == padded[m]:
        m += 1
    return current == padded[:m] + base[m:] or current == padded


def _write_at_start(fd: int, data: bytes) -> None:
    """Overwrite from offset 0 in as few system calls as possible (one, for a normal file)."""
    pwrite = getattr(os, "pwrite", None)
    if pwrite is None:  # Windows
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, data)
        return
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += pwrite(fd, view[offset:], offset)
