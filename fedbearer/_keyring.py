"""``KeyringTokenCache``: tokens in the operating system's keyring instead of a plain file.

Opt-in (``FederationAuth(..., cache=KeyringTokenCache())``), through the ``keyring`` library
(``pip install 'fedbearer[keyring]'``): the macOS Keychain, the Windows Credential Locker, a
Secret Service (GNOME Keyring, KWallet, KeePassXC) on Linux. It keeps the file cache's
guarantees: expired entries are kept for their refresh token, the refresh token is stored
with the access token, and one process logs in while the others wait on a login lock.

What lives where, for ``service="fedbearer"`` (``docs/token_cache.rst`` has the reasoning):

- a token: ``("fedbearer", <cache key>)``, the JSON of :meth:`Token.to_dict
  <fedbearer.Token.to_dict>` (``token``, ``expires_at``, ``refresh_token``, ``issued_at``);
- the list of keys, for :meth:`KeyringTokenCache.entries` (a keyring cannot list):
  ``("fedbearer/index", "keys")``, ``{"keys": [...]}``;
- a value longer than :data:`MAX_SECRET_CHARS` (a large JWT with its refresh token) is split:
  its entry holds ``{"parts": n, "sha256": <hex>}`` and the parts live in
  ``("fedbearer/parts", <owner>/<first 16 hex digits>/<i>)``, because the Windows Credential
  Locker stores at most 2560 bytes (1280 UTF-16 characters) per secret. The same rule on
  every platform keeps one code path, tested on the real Secret Service.

Writes hold a write lock, and logins a login lock: lock files (``flock``) in fedbearer's
state directory (``default_lock_dir()``), since a keyring has no locks. Every backend
fault (no backend, a locked or absent Secret Service, D-Bus errors, the ``fail`` and
``null`` backends) is one :class:`~fedbearer.TokenCacheWarning` per kind and a miss or a
skipped write: a cache never breaks a login, and nothing is ever written to a plaintext
file instead, nor through keyring's ``ChainerBackend``, whose first writable backend may
be a plaintext file (only the first backend in it that can keep secrets is used). Nothing
here logs or warns a token or a stored value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union, cast

from ._cache import (
    _POLL_MAX_CACHE,
    _POLL_MAX_LOGIN,
    DEFAULT_LOCK_TIMEOUT,
    _Fault,
    _warn_once,
    file_lock,
    storage_faults,
)
from ._exceptions import ConfigurationError, TokenDataError
from ._settings import check_timeout
from ._token import Token

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "DEFAULT_KEYRING_TIMEOUT",
    "DEFAULT_SERVICE",
    "KEYRING_HINT",
    "MAX_SECRET_CHARS",
    "KeyringTokenCache",
    "default_lock_dir",
]

#: The install command named when the ``keyring`` library is missing.
KEYRING_HINT = "pip install 'fedbearer[keyring]'"

#: The keyring service name tokens are stored under unless another is given.
DEFAULT_SERVICE = "fedbearer"

#: Longest secret written to the keyring, in characters; longer values are split into parts
#: of this size. The Windows Credential Locker stores at most 2560 bytes per secret, and the
#: keyring library writes UTF-16 there, so 1280 characters; 1024 leaves a margin.
MAX_SECRET_CHARS = 1024

#: Seconds a keyring operation may take before it is a fault (a warning and a miss): long
#: enough to type a password into an unlock prompt, short enough that a prompt nobody can
#: see (over SSH) does not stall the login for long.
DEFAULT_KEYRING_TIMEOUT = 30.0

#: Longest value read back, parts joined: an access and a refresh token of 16 KiB each fit.
#: An entry beyond it (or with more than ``MAX_VALUE_CHARS // MAX_SECRET_CHARS`` parts) was
#: not written by fedbearer and is unreadable.
MAX_VALUE_CHARS = 64 * 1024

_MAX_PARTS = MAX_VALUE_CHARS // MAX_SECRET_CHARS
_INDEX_NAME = "keys"
_HEX = frozenset("0123456789abcdef")
_T = TypeVar("_T")


def default_lock_dir() -> str:
    """Where the lock files go: fedbearer's user state directory, beside its configuration
    (``$XDG_STATE_HOME/fedbearer``, ``~/.local/state/fedbearer`` by default on Linux; the
    platform's equivalent elsewhere, from ``platformdirs``).

    Read at each use, so a changed ``HOME`` applies, as for the file cache.
    """
    # Imported here: only a keyring cache's login lock needs it, not `fedbearer token`.
    import platformdirs

    return platformdirs.user_state_dir("fedbearer", appauthor=False)


def _import_keyring() -> ModuleType:
    # Imported here, not at the top: keyring is optional (the extra), and importing it costs
    # a third of `import fedbearer`, which every user pays and few of them need it.
    try:
        import keyring
        import keyring.backend
        import keyring.backends.chainer
    except ImportError as exc:
        raise ConfigurationError(
            f"KeyringTokenCache needs the keyring library: {KEYRING_HINT}"
        ) from exc
    return keyring


def _backend_name(backend: object) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


#: Backends that keep secrets in a file encrypted with a password they ask for on the
#: terminal (``getpass``) at first use: fine when chosen deliberately (``backend=``), but
#: code that runs unattended (cron, a service, a notebook) cannot answer, and would wait on
#: its standard input. Never used when the keyring library chose them.
_PROMPTING = frozenset({"keyrings.alt.file.EncryptedKeyring", "keyrings.alt.pyfs.EncryptedKeyring"})

#: Backends that send secrets off this machine (keyrings.alt's Google Docs keyring).
_REMOTE_MODULES = ("keyrings.alt.Google",)

_NEVER_PLAINTEXT = (
    "fedbearer never falls back to plaintext storage (pass backend= to choose one "
    "deliberately, or use the default file cache)"
)


def _unsuitable(backend: object) -> Optional[tuple[str, str]]:
    """Why a backend the keyring library chose by itself cannot hold tokens, or ``None``."""
    module, name = type(backend).__module__, type(backend).__qualname__
    if module == "keyring.backends.fail":
        return (
            "no-backend",
            "no keyring is available here (no Secret Service, Keychain or Credential "
            "Locker was found; over SSH or in a container there is often none)",
        )
    if module == "keyring.backends.null":
        return ("null-backend", "the keyring is disabled (the null backend stores nothing)")
    if "plaintext" in name.lower():
        return (
            "plaintext-backend",
            f"no keyring is available here that keeps secrets safe: the keyring library "
            f"chose a backend that keeps them in a plain file; {_NEVER_PLAINTEXT}",
        )
    if f"{module}.{name}" in _PROMPTING:
        return (
            "prompting-backend",
            "no keyring is available here that keeps secrets safe: the keyring library chose "
            "a file backend that asks for its password on the terminal, which code running "
            "unattended cannot answer (pass backend= to choose it deliberately)",
        )
    if module.startswith(_REMOTE_MODULES):
        return (
            "remote-backend",
            "no keyring is available here that keeps secrets safe: the keyring library chose "
            "a backend that stores them off this machine (pass backend= to choose it "
            "deliberately)",
        )
    return None


def _in_chain(backends: list[Any]) -> Any:
    """The backend of a chain (keyring's ``ChainerBackend``, highest priority first) that
    tokens go to: the first one that can hold them. A chain writes to its first backend
    that takes the write, which is a plaintext file when nothing better is there (Debian and
    Ubuntu install ``keyrings.alt`` beside the Secret Service backend): so the chain itself
    is never written through. A :class:`_Fault` when none of them can hold tokens."""
    for backend in backends:
        if _unsuitable(backend) is None:
            return backend
    names = ", ".join(_backend_name(backend) for backend in backends) or "none"
    raise _Fault(
        "no-safe-backend",
        f"no keyring is available here that keeps secrets safe: the keyring library chains "
        f"only backends that cannot hold tokens ({names}); {_NEVER_PLAINTEXT}",
    )


def _backend_fault(exc: Exception) -> _Fault:
    """The warning's reason for an exception from the backend: its type, never its text
    (a backend's message could quote what it was given)."""
    kind = type(exc).__name__
    reasons = {
        "KeyringLocked": "the keyring is locked and could not be unlocked",
        "NoKeyringError": "no keyring is available here",
        "InitError": "the keyring could not be opened",
        "PasswordSetError": "the keyring refused to store a secret",
        "PasswordDeleteError": "the keyring refused to delete a secret",
    }
    return _Fault(f"backend-{kind}", f"{reasons.get(kind, 'the keyring backend failed')} ({kind})")


def _part_name(owner: str, digest: str, index: int) -> str:
    return f"{owner}/{digest[:16]}/{index}"


def _parts_of(head: dict[str, Any]) -> Optional[tuple[int, str]]:
    """``(count, sha256)`` of a split value's head, ``None`` for a value stored whole."""
    if "parts" not in head:
        return None
    count, digest = head.get("parts"), head.get("sha256")
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not 1 <= count <= _MAX_PARTS
        or not isinstance(digest, str)
        or len(digest) != 64
        or not set(digest) <= _HEX
    ):
        raise _Fault("bad-entry", "has an entry split into parts it does not describe")
    return count, digest


def _parse_object(text: str) -> dict[str, Any]:
    if len(text) > MAX_VALUE_CHARS:
        raise _Fault("bad-entry", f"has an entry longer than {MAX_VALUE_CHARS} characters")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        # Never the parser's message: it quotes the text, which may hold a token.
        raise _Fault("bad-entry", "has an entry that is not JSON") from None
    if not isinstance(value, dict):
        raise _Fault("bad-entry", "has an entry that is not a JSON object")
    return value


def _part_names(head: Optional[str], owner: str) -> set[str]:
    """Names of the parts of the value whose entry is ``head``: empty when it is stored
    whole, absent, or unreadable (whatever parts that had cannot be named)."""
    if head is None:
        return set()
    try:
        parts = _parts_of(_parse_object(head))
    except _Fault:
        return set()
    if parts is None:
        return set()
    count, digest = parts
    return {_part_name(owner, digest, index) for index in range(count)}


def _reraise(fault: _Fault) -> None:
    raise fault


class KeyringTokenCache:
    """Tokens in the OS keyring, through the ``keyring`` library.

    ``service`` names the keyring entries (``"fedbearer"``; no ``/``, which separates the
    index and parts services). ``backend`` is a ``keyring.backend.KeyringBackend`` to use
    instead of the one the keyring library chooses (its configuration,
    ``PYTHON_KEYRING_BACKEND``, then the best available). ``lock_dir`` is where the write and
    login lock files go (default: ``default_lock_dir()``, read at each use).

    Constructing one needs the ``keyring`` library, else it raises
    :class:`~fedbearer.ConfigurationError` naming ``pip install 'fedbearer[keyring]'``: the
    cache was asked for by name, so its absence is an error, not a silent miss. It does no
    other I/O: the backend is chosen and opened when a token is first needed.

    Faults never raise: one :class:`~fedbearer.TokenCacheWarning` per kind of fault and a
    miss or a skipped write. A backend chosen automatically that cannot hold tokens (none
    found, the ``null`` backend, a plaintext-file backend, one that prompts on the
    terminal) is such a fault; tokens are then not stored anywhere else. In a chain
    (keyring's ``ChainerBackend``, chosen or given), only the first backend that can hold
    tokens is used. So is an operation that outlasts ``timeout`` seconds
    (``DEFAULT_KEYRING_TIMEOUT``; ``None``: no limit): a locked Secret Service waits for
    an unlock prompt without a limit, for ever where none can show.
    """

    def __init__(
        self,
        service: str = DEFAULT_SERVICE,
        *,
        lock_dir: Union[str, os.PathLike[str], None] = None,
        backend: Optional[KeyringBackend] = None,
        timeout: Optional[float] = DEFAULT_KEYRING_TIMEOUT,
    ) -> None:
        if not isinstance(service, str) or not service.strip() or not service.isprintable():
            raise ConfigurationError("service must be a non-empty printable string")
        if "/" in service:
            raise ConfigurationError(
                f"service {service[:100]!r} contains '/', which fedbearer keeps for its index "
                "and parts entries; choose a service name without '/'"
            )
        keyring = _import_keyring()
        if backend is not None and not isinstance(backend, keyring.backend.KeyringBackend):
            raise ConfigurationError("backend must be a keyring.backend.KeyringBackend")
        self._timeout = check_timeout(timeout)
        # Settings are fixed at construction (read-only properties below).
        self._service = service
        self._lock_dir = None if lock_dir is None else os.fspath(lock_dir)
        self._given: Optional[KeyringBackend] = backend
        self._setup(keyring)

    def _setup(self, keyring: ModuleType) -> None:
        self._keyring = keyring
        self._chosen: Optional[KeyringBackend] = None
        # What the tokens go to: the chosen backend, or the one inside a chain (_in_chain).
        self._used: Optional[KeyringBackend] = None
        self._choose_lock = threading.Lock()
        # Set when a call outlasted the time limit: the backend is stuck in this process.
        self._stuck: Optional[_Fault] = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "service": self._service,
            "lock_dir": self._lock_dir,
            "backend": self._given,
            "timeout": self._timeout,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._service = state["service"]
        self._lock_dir = state["lock_dir"]
        self._given = state["backend"]
        self._timeout = state["timeout"]
        self._setup(_import_keyring())  # the backend is chosen again in this process

    def __repr__(self) -> str:
        backend = "chosen by keyring" if self._given is None else _backend_name(self._given)
        return f"KeyringTokenCache({self._service!r}, backend={backend})"

    @property
    def service(self) -> str:
        """The keyring service name of the token entries."""
        return self._service

    @property
    def timeout(self) -> Optional[float]:
        """Seconds each operation may take before it counts as a fault (``None``: no limit)."""
        return self._timeout

    @property
    def lock_dir(self) -> str:
        """The directory of the lock files as it resolves now (``~`` expanded, absolute)."""
        where = default_lock_dir() if self._lock_dir is None else self._lock_dir
        return os.path.abspath(os.path.expanduser(where))

    # -- the TokenCache protocol

    def get(self, key: str) -> Optional[Token]:
        """The token under ``key``, expired or not; ``None`` when absent or unreadable."""

        def get() -> Optional[Token]:
            text = self._read(self._backend(), self._service, key, f"token:{key}")
            return None if text is None else _token_from(text)

        return self._run("continuing without the cached token", get, None)

    def put(self, key: str, token: Token) -> None:
        """Store ``token`` (with its refresh token and times) under ``key``, replacing it."""
        text = json.dumps(token.to_dict(), separators=(",", ":"))

        def put() -> None:
            backend = self._backend()
            with self._write_lock():
                self._write(backend, self._service, key, f"token:{key}", text)
                self._update_index(backend, lambda keys: keys | {key})

        self._run("the token was not saved to it", put, None)

    def remove(self, key: str) -> None:
        """Delete ``key``'s entry, and its parts; no error when it is absent."""

        def remove() -> None:
            backend = self._backend()
            with self._write_lock():
                self._delete(backend, self._service, key, f"token:{key}")
                self._update_index(backend, lambda keys: keys - {key})

        self._run("the token was not removed from it", remove, None)

    def entries(self) -> list[tuple[str, Token]]:
        """Every readable entry the index lists, expired ones included, sorted by key."""

        def entries() -> list[tuple[str, Token]]:
            backend = self._backend()
            result = []
            for key in sorted(self._index(backend)):
                with contextlib.suppress(_Fault):
                    text = self._read(backend, self._service, key, f"token:{key}")
                    if text is not None:
                        result.append((key, _token_from(text)))
            return result

        return self._run("listing no cached tokens", entries, [])

    def login_lock(self, key: str, timeout: Optional[float]) -> AbstractContextManager[bool]:
        """Cross-process single-flight lock for logging in as ``key`` (see
        :class:`~fedbearer.TokenCache`): an ``flock`` on
        ``keyring-login-<sha256(service, key)[:16]>.lock`` in :attr:`lock_dir`."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must not be negative")
        return file_lock(
            self._lock_path("login", key),
            timeout=timeout,
            dir_mode=0o700,
            poll_max=_POLL_MAX_LOGIN,
            on_fault=self._login_lock_fault,
        )

    # -- the backend

    def _backend(self) -> KeyringBackend:
        """The backend tokens go to. A backend given as ``backend=`` is used as it is, but
        for a chain, whose choice is the keyring library's; one the keyring library chose
        must be able to hold tokens (:func:`_unsuitable`), and in a chain only a backend
        that can is used (:func:`_in_chain`)."""
        with self._choose_lock:
            if self._used is None:
                chosen = self._given
                if chosen is None:
                    if self._chosen is None:
                        self._chosen = cast("KeyringBackend", self._call(self._keyring.get_keyring))
                    chosen = self._chosen
                if isinstance(chosen, self._keyring.backends.chainer.ChainerBackend):
                    self._used = cast("KeyringBackend", _in_chain(self._chain(chosen)))
                elif chosen is not self._given:
                    unsuitable = _unsuitable(chosen)
                    if unsuitable is not None:
                        raise _Fault(*unsuitable)
                    self._used = chosen
                else:
                    self._used = chosen
            return self._used

    @staticmethod
    def _chain(chainer: Any) -> list[Any]:
        """The backends a chain holds; the list is worked out at each read (each backend's
        priority is asked again), and asking may fail as any backend call may."""
        try:
            return list(chainer.backends)
        except Exception as exc:
            raise _backend_fault(exc) from None

    @staticmethod
    def _call(function: Callable[..., _T], *args: str) -> _T:
        """Call the backend; whatever it raises becomes a :class:`_Fault` (D-Bus, Windows and
        Keychain errors are not all ``KeyringError``), while fedbearer's own bugs still raise."""
        try:
            return function(*args)
        except Exception as exc:
            raise _backend_fault(exc) from None

    def _get(self, backend: KeyringBackend, service: str, name: str) -> Optional[str]:
        value = self._call(backend.get_password, service, name)
        if value is not None and not isinstance(value, str):
            raise _Fault("bad-entry", "returned a secret that is not text")
        return value

    def _delete_part(self, backend: KeyringBackend, name: str) -> None:
        # Best effort: a part left behind holds a piece of an old token, nothing else.
        with contextlib.suppress(_Fault):
            self._call(backend.delete_password, self._parts_service, name)

    @property
    def _parts_service(self) -> str:
        return f"{self._service}/parts"

    # -- values, split into parts when long

    def _read(self, backend: KeyringBackend, service: str, name: str, owner: str) -> Optional[str]:
        """The value stored under ``name``, its parts joined and checked; ``None`` if absent."""
        for _attempt in range(2):
            head = self._get(backend, service, name)
            if head is None:
                return None
            parts = _parts_of(_parse_object(head))
            if parts is None:
                return head
            count, digest = parts
            chunks = [
                self._get(backend, self._parts_service, _part_name(owner, digest, index))
                for index in range(count)
            ]
            if all(chunk is not None for chunk in chunks):
                text = "".join(chunk for chunk in chunks if chunk is not None)
                if len(text) > count * MAX_SECRET_CHARS:
                    raise _Fault("bad-entry", "has an entry with parts longer than written")
                if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
                    raise _Fault("bad-entry", "has an entry whose parts do not match it")
                return text
            # A part is gone: a writer replaced the value between our reads. Read it again.
        raise _Fault("bad-entry", "has an entry whose parts are missing")

    def _write(
        self, backend: KeyringBackend, service: str, name: str, owner: str, text: str
    ) -> None:
        """Store ``text`` under ``name``: whole, or as parts written before the entry that
        names them, so a reader never finds an entry whose parts are not there yet. The
        old value's parts are deleted last."""
        old = _part_names(self._get(backend, service, name), owner)
        parts: dict[str, str] = {}
        head = text
        if len(text) > MAX_SECRET_CHARS:
            if len(text) > MAX_VALUE_CHARS:
                raise _Fault("too-large", f"cannot hold a value over {MAX_VALUE_CHARS} characters")
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            for index, start in enumerate(range(0, len(text), MAX_SECRET_CHARS)):
                parts[_part_name(owner, digest, index)] = text[start : start + MAX_SECRET_CHARS]
            head = json.dumps({"parts": len(parts), "sha256": digest})
        try:
            for part, chunk in parts.items():
                self._call(backend.set_password, self._parts_service, part, chunk)
            self._call(backend.set_password, service, name, head)
        except _Fault:
            for part in parts.keys() - old:  # no orphaned pieces of a token never stored
                self._delete_part(backend, part)
            raise
        for part in old - parts.keys():
            self._delete_part(backend, part)

    def _delete(self, backend: KeyringBackend, service: str, name: str, owner: str) -> None:
        head = self._get(backend, service, name)
        if head is None:
            return
        self._call(backend.delete_password, service, name)
        for part in _part_names(head, owner):
            self._delete_part(backend, part)

    # -- the index of keys

    @property
    def _index_service(self) -> str:
        return f"{self._service}/index"

    def _index(self, backend: KeyringBackend) -> set[str]:
        try:
            text = self._read(backend, self._index_service, _INDEX_NAME, "index")
            if text is None:
                return set()
            keys = _parse_object(text).get("keys")
        except _Fault as fault:
            if fault.kind != "bad-entry":
                raise  # the backend failed: not a reason to start the index afresh
            keys = None
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise _Fault("bad-index", "has an unreadable index of its keys")
        return set(keys)

    def _update_index(
        self, backend: KeyringBackend, change: Callable[[set[str]], set[str]]
    ) -> None:
        """Apply ``change`` to the index under the write lock; an unreadable index is
        started afresh (its tokens stay readable by key, only the listing loses them)."""
        try:
            keys = self._index(backend)
        except _Fault as fault:
            if fault.kind != "bad-index":
                raise
            self._warn(fault.kind, fault.reason, "it was started afresh")
            keys = set()
        new = change(keys)
        if new != keys:
            text = json.dumps({"keys": sorted(new)}, separators=(",", ":"))
            self._write(backend, self._index_service, _INDEX_NAME, "index", text)

    # -- locks

    def _lock_path(self, kind: str, key: str = "") -> str:
        digest = hashlib.sha256(f"{self._service}\n{key}".encode()).hexdigest()[:16]
        return os.path.join(self.lock_dir, f"keyring-{kind}-{digest}.lock")

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Every write holds it: reading the old value, writing the new one and updating the
        index must not interleave with another writer's (the index would lose keys)."""
        with file_lock(
            self._lock_path("write"),
            timeout=DEFAULT_LOCK_TIMEOUT,
            dir_mode=0o700,
            poll_max=_POLL_MAX_CACHE,
            on_fault=_reraise,
        ) as held:
            if not held:
                raise _Fault(
                    "lock-timeout",
                    f"its write lock stayed locked by another process for {DEFAULT_LOCK_TIMEOUT} s",
                )
            yield

    def _login_lock_fault(self, fault: _Fault) -> None:
        self._warn(
            f"login-{fault.kind}",
            f"login lock in {self.lock_dir} failed: {fault.reason}",
            "logging in without waiting for other processes",
        )

    # -- faults and time limits

    def _run(self, consequence: str, operation: Callable[[], _T], default: _T) -> _T:
        """``operation()``, or ``default`` after warning when it fails or outlasts
        :attr:`timeout`.

        The time limit is there because some backends never return: a Secret Service whose
        collection is locked asks a prompter to unlock it and waits for the answer without a
        limit (for ever, over SSH or in a container, where no prompter can show). The call
        runs on a daemon thread; one that outlasts the limit is left behind (it exits with
        the process), and every later call of this object is a miss at once, since the
        backend is stuck.
        """
        result = default
        with storage_faults(self._warn, consequence):
            if self._stuck is not None:
                raise self._stuck
            result = operation() if self._timeout is None else self._limited(operation)
        return result

    def _limited(self, operation: Callable[[], _T]) -> _T:
        outcome: list[tuple[bool, Any]] = []

        def work() -> None:
            try:
                outcome.append((True, operation()))
            except BaseException as exc:  # handed over to the caller's thread below
                outcome.append((False, exc))

        worker = threading.Thread(target=work, name="fedbearer-keyring", daemon=True)
        worker.start()
        worker.join(self._timeout)
        if not outcome:
            self._stuck = _Fault(
                "timeout",
                f"the keyring did not answer within {self._timeout:g} s (a locked keyring "
                "waiting for an unlock prompt nobody can see?); not asking it again in this "
                "process",
            )
            raise self._stuck
        done, value = outcome[0]
        if not done:
            raise value
        return cast(_T, value)

    def _warn(self, kind: str, reason: str, consequence: str) -> None:
        backend = self._used or self._given or self._chosen
        where = f"service {self._service!r}"
        if backend is not None:
            where += f", {_backend_name(backend)}"
        message = f"fedbearer keyring token cache ({where}): {reason}; {consequence}"
        _warn_once(f"keyring:{self._service}", f"{kind}: {consequence}", message)


def _token_from(text: str) -> Token:
    try:
        return Token.from_dict(_parse_object(text))
    except TokenDataError:
        raise _Fault("bad-entry", "has an unreadable entry for this login") from None
