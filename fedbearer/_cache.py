"""The token cache: where tokens live between processes, shared with the Nebius CLI and SDKs.

The default, :class:`FileTokenCache`, is the reference's ``~/.nebius/credentials.yaml``::

    tokens:
      federation/<federation_endpoint>/<federation_id>/<profile>:
        token: <access token>
        expires_at: 1795821981          # unix seconds; null or 0 = no expiry
        refresh_token: ...              # only when there is one; other tools ignore it

Tokens of other OpenID providers go into a file of fedbearer's own in the same format
(:func:`provider_cache_file`: ``~/.cache/fedbearer/tokens.yaml`` on Linux), under
``oidc/<host>/<digest>/<profile>`` keys (:func:`provider_cache_key`).

Design in one paragraph (``docs/token_cache.rst`` has the reasoning): every read and write
holds an exclusive ``flock`` on the cache file itself, as the Nebius Python SDK (portalocker)
and the Go SDK/CLI (gofrs/flock) do. The file is rewritten **in place**, never replaced by
rename, and made crash-safe by the redo journal in :mod:`fedbearer._journal` (which says why
not rename). And because the Nebius Python SDK's data reaches the file only after it unlocks,
a just-modified empty or unparsable file gets a moment to settle before it is believed.

Every fault (missing, corrupt, unreadable, read-only, lock timeout) becomes a cache miss or a
skipped write plus one :class:`TokenCacheWarning` per file and kind of fault: a cache must
never be what breaks a login. Nothing here logs or raises a token or file content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable
from urllib.parse import urlsplit

from . import _clock, _files, _journal
from ._exceptions import ConfigurationError, TokenDataError
from ._token import Token

if sys.platform != "win32":
    import errno
    import fcntl

__all__ = [
    "DEFAULT_CACHE_FILE",
    "DEFAULT_LOCK_TIMEOUT",
    "FileTokenCache",
    "MemoryTokenCache",
    "NoTokenCache",
    "TokenCache",
    "TokenCacheWarning",
    "cache_key",
    "default_cache",
    "provider_cache",
    "provider_cache_file",
    "provider_cache_key",
]

#: The reference's cache file; ``~`` is expanded at each use, so ``$HOME`` changes apply.
DEFAULT_CACHE_FILE = "~/.nebius/credentials.yaml"

#: Largest cache file read, in bytes. A real one holds a few kilobytes per profile; a larger
#: file is treated as unreadable (a miss, a warning, its bytes kept), so a request never
#: waits for megabytes of YAML.
MAX_CACHE_FILE_BYTES = 1 << 20

#: Seconds to wait for the cache file's lock: the reference's value. Holders keep it for
#: milliseconds, so a longer wait means a stuck process, and a login beats waiting longer.
DEFAULT_LOCK_TIMEOUT = 5.0

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Entry keys fedbearer owns, replaced (or removed) together from the new token's to_dict();
# any other key in an entry belongs to someone else and survives.
_TOKEN_KEYS = frozenset({"token", "expires_at", "refresh_token", "issued_at"})
# Lock polling: start short (holders of the cache lock keep it for milliseconds), back off
# so a long wait (a login in another process) costs little CPU.
_POLL_FIRST = 0.002
_POLL_MAX_CACHE = 0.05
_POLL_MAX_LOGIN = 0.1
# An empty or unparsable file modified less than _SETTLE_RECENT seconds ago may be another
# writer's data still on its way (see _load); wait up to _SETTLE_WAIT seconds for it.
_SETTLE_RECENT = 2.0
_SETTLE_WAIT = 0.25


class TokenCacheWarning(UserWarning):
    """The token cache could not be used; the login goes on without it (see the message)."""


def cache_key(federation_endpoint: str, federation_id: str, profile: str) -> str:
    """The reference's key: ``federation/<endpoint>/<id>/<profile>``, strings exactly as given.

    No normalisation (no scheme added, no trailing slash removed): the Nebius CLI and SDKs use
    the configured strings verbatim, and the same token must be found under the same key.
    The format is theirs too; it stays unambiguous because ``federation_id`` and ``profile``
    may not contain ``/`` (else ``("fed", "A/p")`` and ``("fed/A", "p")`` would share a key
    and one identity would use another's token): that is a
    :class:`~fedbearer.ConfigurationError`, as is a control character anywhere in the key.
    """
    for name, value in (("federation_id", federation_id), ("profile", profile)):
        if "/" in value:
            raise ConfigurationError(
                f"{name} {value[:100]!r} contains '/', which would make its token cache key "
                f"ambiguous (federation/<endpoint>/<id>/<profile>); choose a {name} without '/'"
            )
    if federation_endpoint != federation_endpoint.strip() or federation_endpoint.endswith("/"):
        warnings.warn(
            f"federation_endpoint {federation_endpoint!r} has surrounding white space or a "
            "trailing '/': the token cache key uses it as written, as the Nebius CLI does, so "
            "it does not share tokens with the same endpoint written without them",
            TokenCacheWarning,
            stacklevel=_caller_level(),
        )
    key = f"federation/{federation_endpoint}/{federation_id}/{profile}"
    if not key.isprintable():
        raise ConfigurationError(
            "federation_endpoint, federation_id and profile must not contain control "
            "characters or line breaks"
        )
    return key


def provider_cache_key(
    client_id: str,
    profile: str,
    *,
    issuer: Optional[str] = None,
    authorization_endpoint: Optional[str] = None,
    token_endpoint: Optional[str] = None,
    scopes: Iterable[str] = ("openid",),
    params: Iterable[tuple[str, str]] = (),
) -> str:
    """The key of a token from an OpenID provider other than a Nebius federation.

    ``oidc/<host>/<digest>/<profile>``: the digest is SHA-256 (128 bits of it, in hex) of a
    canonical JSON of everything that decides what the token is for: the issuer, the
    endpoints when given instead of discovered, the client id, the scopes as a set (their
    order does not matter) and the extra authorization parameters (an ``audience`` or
    ``resource`` changes the token too). Changing any of them never finds a token minted
    for the others. ``host`` (of the issuer, else of the authorization endpoint) is there
    for people reading ``fedbearer status``; it is part of what is hashed, so it adds no
    ambiguity, and ``profile`` may not contain ``/`` (:class:`~fedbearer.ConfigurationError`),
    so the key splits one way only.
    """
    if "/" in profile or not profile.isprintable():
        raise ConfigurationError(
            f"profile {profile[:100]!r} contains '/' or a control character, which would make "
            "its token cache key ambiguous; choose another profile name"
        )
    identity = {
        "issuer": issuer,
        "endpoints": (
            None
            if authorization_endpoint is None and token_endpoint is None
            else [authorization_endpoint, token_endpoint]
        ),
        "client_id": client_id,
        "scopes": sorted(set(scopes)),
        "params": sorted([name, value] for name, value in params),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]
    host = urlsplit(issuer or authorization_endpoint or "").netloc.lower() or "-"
    return f"oidc/{host}/{digest}/{profile}"


#: The file, in fedbearer's user cache directory, where tokens of OpenID providers other
#: than a Nebius federation go: they are not the Nebius CLI's to read.
PROVIDER_CACHE_NAME = "tokens.yaml"


def provider_cache_file() -> str:
    """Where tokens of other OpenID providers go by default: ``tokens.yaml`` in fedbearer's
    user cache directory, which ``platformdirs`` knows as it knows the profiles file's:
    ``$XDG_CACHE_HOME/fedbearer`` or ``~/.cache/fedbearer`` on Linux,
    ``~/Library/Caches/fedbearer`` on macOS, ``%LOCALAPPDATA%\\fedbearer\\Cache`` on
    Windows. A relative directory (from a relative ``XDG_CACHE_HOME``, which the XDG
    specification says to ignore) becomes ``~/.cache/fedbearer``: tokens never land below
    whatever the current directory is. Resolved when called, that is when the adapter is
    built.
    """
    # Imported here, as for the profiles file: a cached `fedbearer token` for a Nebius
    # federation never needs it, and platformdirs is a measurable part of that process.
    import platformdirs

    directory = platformdirs.user_cache_dir("fedbearer", appauthor=False)
    if not os.path.isabs(directory):
        directory = os.path.join(os.path.expanduser("~"), ".cache", "fedbearer")
    return os.path.join(directory, PROVIDER_CACHE_NAME)


@runtime_checkable
class TokenCache(Protocol):
    """What :class:`~fedbearer.FederationAuth` needs from a cache; implement it to plug your own.

    Implementations must be safe to call from several threads, must not raise for storage
    faults (warn and behave as a miss / skipped write instead), and must never log tokens.
    """

    def get(self, key: str) -> Optional[Token]:
        """The token stored under ``key``, expired or not; ``None`` if there is none.

        Expired tokens are returned because their refresh token may still renew them; the
        caller decides what is usable (with its own refresh margin).
        """
        ...

    def put(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``, replacing what was there."""
        ...

    def remove(self, key: str) -> None:
        """Forget ``key`` (no error when it is absent)."""
        ...

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        """Single-flight lock for logging in as ``key``, held for the ``with`` block.

        Yields ``True`` when held, ``False`` when it is not: the wait ran out (``timeout``
        seconds; ``None`` waits for ever, ``0`` tries once) or locking is unavailable. Either
        way the caller should re-read the cache first; on ``False`` it decides whether to log
        in unprotected. Leaving the block, normally or by an exception, releases the lock.
        """
        ...

    def entries(self) -> list[tuple[str, Token]]:
        """Every readable entry, expired ones included (for status displays)."""
        ...


# --------------------------------------------------------------------------- warnings

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(where: str, kind: str, message: str) -> None:
    """One warning per file and kind of fault per process: a broken cache is worth knowing
    about, but not on every request. Messages carry the path and the fault, never content."""
    with _warned_lock:
        if (where, kind) in _warned:
            return
        _warned.add((where, kind))
    warnings.warn(message, TokenCacheWarning, stacklevel=_caller_level())


# The cache's modules (and contextlib, for ``login_lock``): warnings point past their frames.
# _keyring.py is named, not imported: it imports this module.
_INTERNAL_FILES = frozenset(
    {
        __file__,
        _journal.__file__,
        contextlib.__file__,
        os.path.join(os.path.dirname(__file__), "_keyring.py"),
    }
)


def _caller_level() -> int:
    """``stacklevel`` that points the warning at the first frame outside the cache's modules
    (and contextlib, for ``login_lock``), whatever path inside the cache raised the fault."""
    level, frame = 1, sys._getframe(1)
    internal = _INTERNAL_FILES
    while frame.f_back is not None and frame.f_code.co_filename in internal:
        frame = frame.f_back
        level += 1
    return level


class _Fault(Exception):
    """An internal, secret-free reason the file cannot be used right now."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _symlink_not_cache() -> _Fault:
    return _Fault(
        "symlink-not-cache",
        "is a symbolic link to a file that is missing, empty or not a token cache; it was "
        "left untouched (point the link at a token cache, or remove it)",
    )


def _fault(exc: Union[OSError, _Fault, _files.FileRefused]) -> _Fault:
    if isinstance(exc, _Fault):
        return exc
    if isinstance(exc, _files.FileRefused):
        return _Fault(exc.kind, exc.reason)
    return _os_fault(exc)


def _os_fault(exc: OSError) -> _Fault:
    # strerror only: str(OSError) repeats the path, which the message already names.
    if isinstance(exc, PermissionError):
        return _Fault("permission", f"permission denied ({exc.strerror})")
    if exc.errno is not None and exc.errno == getattr(os, "EROFS", None):
        return _Fault("read-only", "read-only file system")
    return _Fault("os-error", exc.strerror or type(exc).__name__)


# --------------------------------------------------------------------------- file locking


def _try_lock(fd: int) -> bool:
    """One non-blocking attempt at the exclusive lock the reference takes.

    The Nebius Python SDK takes it through portalocker, whose POSIX locker is
    ``fcntl.flock`` (``LockFlags.EXCLUSIVE | NON_BLOCKING`` is ``LOCK_EX | LOCK_NB``), and
    gofrs/flock in the Go SDK calls ``flock`` too, so all three exclude each other. On POSIX
    that one call is made here directly: ``import portalocker`` reads its package metadata
    through ``importlib.metadata`` for a version string, which costs a cached
    ``fedbearer token`` more than everything else it does with the file. Windows has no
    ``flock``: there portalocker's ``msvcrt`` lock is the one the SDK takes, so it is used.
    """
    if sys.platform == "win32":
        import portalocker

        try:
            portalocker.lock(
                fd, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
        except portalocker.AlreadyLocked:
            return False
        except portalocker.LockException as exc:
            raise _Fault("lock-unsupported", "file locking failed on this file system") from exc
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # What portalocker calls AlreadyLocked; any other error is its LockException.
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise _Fault("lock-unsupported", "file locking failed on this file system") from exc
    return True


def _unlock_close(fd: int) -> None:
    # Unlock explicitly: after a fork the child shares the open file description, and a
    # close alone would keep the lock held for as long as the child lives.
    with contextlib.suppress(Exception):
        if sys.platform == "win32":
            import portalocker

            portalocker.unlock(fd)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _acquire(
    path: str, flags: int, timeout: Optional[float], poll_max: float, *, follow: bool = True
) -> Optional[int]:
    """Open ``path`` and take its exclusive lock; the locked fd, or ``None`` on timeout.

    The file is reopened on every attempt and its identity re-checked once locked: another
    tool may delete or replace the file while we wait (the Go SDK deletes an unreadable cache
    file under its lock), and a lock on a file no longer at ``path`` protects nothing.
    Raises ``FileNotFoundError`` when the file is absent and ``flags`` do not create it, and
    ``OSError`` when ``follow`` is false and the path is a symbolic link.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = _POLL_FIRST
    while True:
        # Non-blocking and regular only: a FIFO put in the file's place must not hang.
        fd = _files.open_regular(path, flags, follow=follow)
        try:
            locked = _try_lock(fd)
            if locked and _same_file(fd, path):
                return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        if locked:
            _unlock_close(fd)  # replaced while we waited: lock the file now at the path
            delay = _POLL_FIRST
        else:
            os.close(fd)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        time.sleep(delay)
        delay = min(delay * 2, poll_max)


@contextlib.contextmanager
def file_lock(
    path: str,
    *,
    timeout: Optional[float],
    dir_mode: int,
    poll_max: float,
    on_fault: Callable[[_Fault], None],
) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the lock file ``path`` for the ``with`` block.

    The file (0600) and its directory (``dir_mode``) are created when missing, and never
    deleted: deleting a lock file lets two processes lock two different files of the same
    name. Yields ``True`` when held; ``False`` when the wait ran out (``timeout``) or the
    lock could not be taken, after calling ``on_fault`` with the reason (it may raise it
    instead). The kernel releases the lock if the holder dies.
    """
    fd: Optional[int] = None
    try:
        os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
        # Never through a symbolic link: a dangling one would have us create its target.
        fd = _acquire(path, os.O_RDWR | os.O_CREAT, timeout, poll_max, follow=False)
    except (OSError, _Fault, _files.FileRefused) as exc:
        on_fault(_fault(exc))
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        _unlock_close(fd)


@contextlib.contextmanager
def storage_faults(warn: Callable[[str, str, str], None], consequence: str) -> Iterator[None]:
    """Where every storage fault ends: an ``OSError`` or ``_Fault`` raised in the block is
    not raised further but becomes ``warn(kind, reason, consequence)``, and the caller goes
    on after the block as after a miss or a skipped write."""
    try:
        yield
    except (OSError, _Fault, _files.FileRefused) as exc:
        fault = _fault(exc)
        warn(fault.kind, fault.reason, consequence)


# --------------------------------------------------------------------------- file contents


def _read_fd(fd: int, path: str) -> bytes:
    """The whole file, or a ``too-large`` fault once it passes :data:`MAX_CACHE_FILE_BYTES`
    (checked while reading, so a huge file costs one chunk, not its size)."""
    try:
        return _files.read_fd(fd, path, MAX_CACHE_FILE_BYTES)
    except _files.FileRefused as refused:
        raise _fault(refused) from None


def _back_up(fd: int, path: str) -> str:
    """Copy every byte of the locked file to a new ``<path>.unreadable-<UTC time>`` (0600).

    The cache file itself is rewritten in place afterwards (never renamed: see
    :mod:`fedbearer._journal`), so the backup is a copy, made durable before the original is
    touched.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(_clock.now()))
    for attempt in range(100):
        backup = f"{path}.unreadable-{stamp}" + (f"-{attempt}" if attempt else "")
        try:
            bfd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, 1 << 20):
                _journal.write_all(bfd, chunk)
            os.fsync(bfd)
        except BaseException:
            os.close(bfd)
            with contextlib.suppress(OSError):
                os.unlink(backup)
            raise
        os.close(bfd)
        _journal.fsync_dir(os.path.dirname(backup))
        return backup
    raise _Fault("backup", "could not be backed up (100 backups of it exist already)")


def _parse(data: bytes) -> dict[Any, Any]:
    """The YAML document as a dict; empty/blank → ``{}``; raises ``_Fault`` when unusable."""
    if not data.strip():
        return {}
    try:
        # No anchors, aliases or deep nesting; never the parser's message, which quotes
        # the offending line, and that may be a token.
        doc = _files.load_yaml(data, "")
    except _files.FileRefused as refused:
        raise _fault(refused) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise _Fault("corrupt", "does not hold a YAML mapping")
    tokens = doc.get("tokens")
    if tokens is not None and not isinstance(tokens, dict):
        raise _Fault("corrupt", "has a 'tokens' entry that is not a mapping")
    return doc


def _dump(doc: dict[Any, Any]) -> bytes:
    return _files.dump_yaml(doc)


def _entry_is_live(entry: object, now: float) -> bool:
    """Whether a rewrite keeps this entry: the reference's rule plus readability.

    Expired entries go (the reference drops them on every rewrite), unless they hold a
    non-empty ``refresh_token`` string: such an entry is still renewable without a browser
    (a cron job hours later), and the other tools merely see an expired token in it. Entries
    the Nebius Python SDK could not read (not a mapping, empty/non-string token, non-integer
    ``expires_at``) always go: one of them makes it reject the *whole* file, and the Go SDK
    deletes such a file, so keeping them would break the other tools for every profile.
    """
    if not isinstance(entry, dict):
        return False
    token = entry.get("token")
    if not isinstance(token, str) or not token:
        return False
    expires_at = entry.get("expires_at")
    if expires_at is None:
        return True
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        return False
    if expires_at == 0 or now < expires_at:  # 0 means "no expiry", as null does
        return True
    refresh_token = entry.get("refresh_token")
    return isinstance(refresh_token, str) and bool(refresh_token)


def _token_from_entry(entry: object) -> Token:
    if not isinstance(entry, dict):
        raise TokenDataError("token data must be a mapping")
    return Token.from_dict(entry)


def _try_parse(data: bytes) -> Union[dict[Any, Any], _Fault]:
    try:
        return _parse(data)
    except _Fault as fault:
        return fault


def _load(
    fd: int, path: str, writable: bool, settle: bool = True
) -> tuple[bytes, Union[dict[Any, Any], _Fault]]:
    """The locked file's content and its parse, after two kinds of repair.

    First an interrupted fedbearer write is finished (:func:`fedbearer._journal.recover`).
    Then a file that is empty or unparsable *and* was modified a moment ago gets a short while
    to settle: the Nebius Python SDK releases its lock before its data reaches the file
    (portalocker unlocks, then ``close()`` flushes the buffered YAML), so the lock can be ours
    while the file is still truncated. Believing it would make us drop every entry, and its
    late flush would then land on top of our write. ``settle=False`` for a file we have just
    created.
    """
    try:
        data = _journal.recover(fd, path, _read_fd(fd, path), writable)
    except _Fault as fault:  # too large: unusable, and its bytes stay where they are
        return b"", fault
    parsed = _try_parse(data)
    if (isinstance(parsed, dict) and data.strip()) or not settle or not _modified_lately(fd):
        return data, parsed
    deadline = time.monotonic() + _SETTLE_WAIT
    delay = _POLL_FIRST
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
        try:
            again = _read_fd(fd, path)
        except _Fault as fault:
            return b"", fault
        if again != data:
            data, parsed = again, _try_parse(again)
            if isinstance(parsed, dict) and data.strip():
                break
    return data, parsed


def _is_token_cache(doc: dict[Any, Any]) -> bool:
    """Whether a parsed file is a token cache: it holds the ``tokens`` mapping (an empty
    file may be anything about to be written, so it is not one)."""
    return isinstance(doc.get("tokens"), dict)


def _make_private(fd: int, path: str, warn: Callable[..., None]) -> None:
    """Make the file 0600 before a token goes into it, if group or others may access it.

    An existing file's mode is a choice someone made, but refresh tokens are long-lived
    credentials: tighten it (and say so once) rather than write them where others can read.
    A mode that cannot be changed is a fault, so the token is not written.
    """
    if os.name != "posix":
        return  # Windows ignores these bits; the profile directory's ACL protects the file
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if not mode & 0o077:
        return
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        raise _Fault(
            "mode", f"has mode {mode:04o}, readable by others, and cannot be made 0600"
        ) from None
    warn("mode", f"had mode {mode:04o}, readable by others", "changed it to 0600")


def _create_new(path: str) -> bool:
    """Create ``path`` empty (mode 0600) if it does not exist; whether we created it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600))
    except FileExistsError:
        return False
    return True


def _modified_lately(fd: int) -> bool:
    return time.time() - os.fstat(fd).st_mtime < _SETTLE_RECENT


# --------------------------------------------------------------------------- FileTokenCache


class FileTokenCache:
    """Tokens in a YAML file shared with the Nebius CLI and SDKs (default
    ``~/.nebius/credentials.yaml``).

    ``path`` is expanded (``~``) and made absolute at each use, never at construction: the
    constructor does no I/O. ``lock_timeout`` bounds each wait for the file's lock (``None``
    waits for ever). Directories are created with ``dir_mode`` (0700 by default: stricter
    than the reference's 0750, since they hold credentials) and the file with 0600. An
    existing file keeps its mode unless group or others may access it: then it is made 0600,
    with a warning, before a token is written to it.

    Faults never raise: they emit one :class:`TokenCacheWarning` per file and kind of fault
    and behave as a cache miss or a skipped write.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str], None] = None,
        *,
        lock_timeout: Optional[float] = DEFAULT_LOCK_TIMEOUT,
        dir_mode: int = 0o700,
    ) -> None:
        if lock_timeout is not None and lock_timeout < 0:
            raise ValueError("lock_timeout must not be negative")
        # Settings are fixed at construction (read-only properties below); the file is not.
        self._path = DEFAULT_CACHE_FILE if path is None else os.fspath(path)
        self._lock_timeout = lock_timeout
        self._dir_mode = dir_mode

    def __repr__(self) -> str:
        return f"FileTokenCache({self._path!r}, lock_timeout={self._lock_timeout!r})"

    @property
    def lock_timeout(self) -> Optional[float]:
        """Seconds each read or write waits for the file's lock (``None``: no limit)."""
        return self._lock_timeout

    @property
    def dir_mode(self) -> int:
        """Mode of directories this cache creates."""
        return self._dir_mode

    @property
    def path(self) -> str:
        """The cache file as it resolves now (``~`` expanded, absolute)."""
        return os.path.abspath(os.path.expanduser(self._path))

    # -- reads

    def get(self, key: str) -> Optional[Token]:
        """The token under ``key``, expired or not; ``None`` when absent or unreadable.

        Touches the file only (no write) unless an interrupted write must be finished.
        """
        tokens = self._read_tokens()
        if key not in tokens:
            return None
        try:
            token = _token_from_entry(tokens[key])
        except TokenDataError:
            self._warn("bad-entry", "has an unreadable entry for this login", "ignoring it")
            return None
        return token

    def entries(self) -> list[tuple[str, Token]]:
        """All readable entries in file order, expired ones included; unreadable ones skipped."""
        tokens = self._read_tokens()
        result = []
        for key, entry in tokens.items():
            if isinstance(key, str):
                with contextlib.suppress(TokenDataError):
                    result.append((key, _token_from_entry(entry)))
        return result

    def _read_tokens(self) -> dict[Any, Any]:
        """The file's ``tokens`` mapping; empty when there is no file or it cannot be used."""
        path = self.path
        tokens = None
        with self._faults("continuing without the cached token"):
            try:
                fd, writable = self._lock_for_read(path)
            except FileNotFoundError:
                return {}  # no file yet: a miss, nothing to warn about
            try:
                _data, doc = _load(fd, path, writable)
            finally:
                _unlock_close(fd)
            if isinstance(doc, _Fault):
                raise doc
            tokens = doc.get("tokens")
        return tokens if isinstance(tokens, dict) else {}

    def _lock_for_read(self, path: str) -> tuple[int, bool]:
        """The locked fd and whether it is writable.

        Read-only (so a read-only file still reads) unless an interrupted write left a
        journal: then writable if we may, so the reader finishes the write for everyone.
        """
        if _journal.pending(path):
            with contextlib.suppress(PermissionError):
                return self._lock(path, os.O_RDWR), True
        return self._lock(path, os.O_RDONLY), False

    # -- writes

    def put(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``, keeping every other entry and unknown key.

        Unknown keys inside the existing entry for ``key`` are kept too; ``token``,
        ``expires_at``, ``refresh_token`` and ``issued_at`` are replaced as a whole (a new
        access token never inherits the old refresh token or issue time). Unreadable
        entries are dropped, and so are expired ones that have no refresh token.
        """

        def apply(tokens: dict[Any, Any]) -> bool:
            old = tokens.get(key)
            extra = {}
            if isinstance(old, dict):
                extra = {k: v for k, v in old.items() if k not in _TOKEN_KEYS}
            tokens[key] = {**token.to_dict(), **extra}
            return True

        self._update(apply, create=True)

    def remove(self, key: str) -> None:
        """Delete ``key``'s entry; the file is rewritten only if the entry was there."""

        def apply(tokens: dict[Any, Any]) -> bool:
            if key not in tokens:
                return False
            del tokens[key]
            return True

        self._update(apply, create=False)

    def _update(self, apply: Callable[[dict[Any, Any]], bool], create: bool) -> None:
        path = self.path
        with self._faults("the token was not saved to it"):
            try:
                if create:
                    # makedirs applies the mode to the directories it creates, not existing ones.
                    os.makedirs(os.path.dirname(path), mode=self._dir_mode, exist_ok=True)
                # Through a symbolic link only into an existing token cache (see _rewrite):
                # never create the missing target of a dangling one.
                linked = os.path.islink(path)
                created = create and not linked and _create_new(path)
                fd = self._lock(path, os.O_RDWR | (os.O_CREAT if create and not linked else 0))
            except FileNotFoundError:
                if create and linked:
                    raise _symlink_not_cache() from None
                if create:
                    raise _Fault("missing-dir", "cannot be created") from None
                return  # no file: nothing to remove
            try:
                # A file we just created is empty because it is new, not because a writer's
                # data is still on its way: no need to wait for it to settle.
                self._rewrite(fd, path, apply, settle=not created)
            finally:
                _unlock_close(fd)

    def _rewrite(
        self, fd: int, path: str, apply: Callable[[dict[Any, Any]], bool], settle: bool
    ) -> None:
        """Read the locked file, ``apply`` the change to its tokens, and write it back."""
        base, loaded = _load(fd, path, writable=True, settle=settle)
        doc = {} if isinstance(loaded, _Fault) else loaded
        tokens = doc.get("tokens")
        if not isinstance(tokens, dict):
            tokens = {}
        if not apply(tokens):
            return
        if os.path.islink(path) and not (isinstance(loaded, dict) and _is_token_cache(loaded)):
            # The link may point at anything (a dotfile kept in a repository, a file about
            # to be created): write only into what is a token cache already.
            raise _symlink_not_cache()
        if isinstance(loaded, _Fault):
            # Unusable content cannot be merged. Its bytes are kept in a backup copy
            # before the file is started afresh: a cache must never destroy data.
            backup = _back_up(fd, path)
            self._warn(loaded.kind, loaded.reason, f"its content was moved to {backup}", once=False)
            os.ftruncate(fd, 0)
            base = b""
        _make_private(fd, path, self._warn)
        now = _clock.now()
        doc["tokens"] = {k: v for k, v in tokens.items() if _entry_is_live(v, now)}
        new = _dump(doc)
        if new != base:
            _journal.commit(fd, path, base, new)

    # -- locks

    def _lock(self, path: str, flags: int) -> int:
        fd = _acquire(path, flags, self.lock_timeout, _POLL_MAX_CACHE)
        if fd is None:
            raise _Fault(
                "lock-timeout", f"stayed locked by another process for {self.lock_timeout} s"
            )
        try:
            # Whoever else may write the file could have planted a token in it.
            _files.check_private(path, os.fstat(fd))
        except BaseException:
            _unlock_close(fd)
            raise
        return fd

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        """Cross-process single-flight lock for logging in as ``key`` (see :class:`TokenCache`).

        A per-key file ``.fedbearer-login-<sha256(key)[:16]>.lock`` beside the cache file,
        locked with ``flock``: the kernel releases it when the holder exits or dies, so a
        crashed login never blocks the others. Lock files are left in place on purpose:
        deleting a lock file lets two processes lock two different files of the same name.
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must not be negative")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return file_lock(
            os.path.join(os.path.dirname(self.path), f".fedbearer-login-{digest}.lock"),
            timeout=timeout,
            dir_mode=self._dir_mode,
            poll_max=_POLL_MAX_LOGIN,
            on_fault=self._login_lock_fault,
        )

    def _login_lock_fault(self, fault: _Fault) -> None:
        self._warn(
            f"login-{fault.kind}",
            f"login lock failed: {fault.reason}",
            "logging in without waiting for other processes",
        )

    # -- faults

    def _faults(self, consequence: str) -> AbstractContextManager[None]:
        """Storage faults in the block become the warning naming the file, the fault and
        ``consequence`` (once per file, fault and consequence); see :func:`storage_faults`."""
        return storage_faults(self._warn, consequence)

    def _warn(self, kind: str, reason: str, consequence: str, *, once: bool = True) -> None:
        path = self.path
        message = f"fedbearer token cache {path}: {reason}; {consequence}"
        if not once:  # news each time it happens (a backup file is made each time)
            warnings.warn(message, TokenCacheWarning, stacklevel=_caller_level())
            return
        # Keyed by consequence too: "could not read" and "could not save" are both news.
        _warn_once(path, f"{kind}: {consequence}", message)


# --------------------------------------------------------------------------- other caches


class MemoryTokenCache:
    """Tokens in this process's memory only; ``login_lock`` is a per-key thread lock.

    For tests, short-lived tools, or machines where no token may touch the disk. Pickling
    keeps the tokens and recreates the locks.
    """

    def __init__(self) -> None:
        self._setup({})

    def _setup(self, tokens: dict[str, Token]) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self._login_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"<MemoryTokenCache: {len(self._tokens)} token(s)>"

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"tokens": dict(self._tokens)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(dict(state["tokens"]))  # fresh locks: locks do not pickle

    def get(self, key: str) -> Optional[Token]:
        """The token under ``key``, expired or not, else ``None``."""
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: str, token: Token) -> None:
        """Store ``token`` under ``key``."""
        with self._lock:
            self._tokens[key] = token

    def remove(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._tokens.pop(key, None)

    def entries(self) -> list[tuple[str, Token]]:
        """All stored tokens, expired ones included."""
        with self._lock:
            return list(self._tokens.items())

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        """A per-key :class:`threading.Lock` (this process only); see :class:`TokenCache`."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must not be negative")
        with self._lock:
            lock = self._login_locks.setdefault(key, threading.Lock())
        return _held(lock, timeout)


@contextlib.contextmanager
def _held(lock: threading.Lock, timeout: Optional[float]) -> Iterator[bool]:
    acquired = lock.acquire(timeout=-1 if timeout is None else timeout)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


class NoTokenCache:
    """Stores nothing: every process logs in for itself, and nothing outlives it."""

    def __repr__(self) -> str:
        return "NoTokenCache()"

    def get(self, key: str) -> Optional[Token]:
        """Always ``None``."""
        return None

    def put(self, key: str, token: Token) -> None:
        """Does nothing."""

    def remove(self, key: str) -> None:
        """Does nothing."""

    def entries(self) -> list[tuple[str, Token]]:
        """Always empty."""
        return []

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        """Yields ``True`` at once: with nothing shared there is nothing to wait for."""
        return contextlib.nullcontext(True)


def default_cache() -> FileTokenCache:
    """The cache shared with the Nebius CLI and SDKs: ``~/.nebius/credentials.yaml``."""
    return FileTokenCache()


def provider_cache() -> FileTokenCache:
    """The default cache of other OpenID providers' tokens (:func:`provider_cache_file`):
    the same format, locking, modes and crash safety as the Nebius file, in a file of
    fedbearer's own."""
    return FileTokenCache(provider_cache_file())
