"""Keyring backends for the tests: in memory, size-limited, failing, and one shared across
processes through a directory.

Each one's ``priority`` is below the ``fail`` backend's, so the keyring library never chooses
one by itself; the tests pass them as ``KeyringTokenCache(backend=...)``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Callable, Optional

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

Hook = Callable[[str, str], None]


class MemoryKeyring(KeyringBackend):
    """Secrets in a dict; ``max_chars`` makes ``set_password`` refuse longer ones as the
    Windows Credential Locker does (1280 UTF-16 characters), with an error that is not a
    ``KeyringError`` (pywin32's is not either). ``before_get`` runs before each read."""

    priority = -10  # below the fail backend: never chosen by the keyring library

    def __init__(self, max_chars: Optional[int] = None, before_get: Optional[Hook] = None):
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}
        self.max_chars = max_chars
        self.before_get = before_get
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []

    def get_password(self, service: str, username: str) -> Optional[str]:
        if self.before_get is not None:
            self.before_get(service, username)
        with self.lock:
            self.calls.append(("get", service, username))
            return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        with self.lock:
            self.calls.append(("set", service, username))
            if self.max_chars is not None and len(password) > self.max_chars:
                raise CredWriteError(1783, "CredWrite", "The stub received bad data.")
            self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        with self.lock:
            self.calls.append(("delete", service, username))
            if self.secrets.pop((service, username), None) is None:
                raise PasswordDeleteError("No such password!")


class CredWriteError(Exception):
    """What pywin32 raises from ``CredWrite`` for a secret over the Credential Locker's limit
    (``pywintypes.error``, not a ``KeyringError``)."""


class FailingKeyring(KeyringBackend):
    """Raises ``error()`` from every call: a locked or unreachable keyring."""

    priority = -10

    def __init__(self, error: Callable[[], BaseException]):
        super().__init__()
        self.error = error
        self.calls = 0

    def get_password(self, service: str, username: str) -> Optional[str]:
        self.calls += 1
        raise self.error()

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        raise self.error()

    def delete_password(self, service: str, username: str) -> None:
        self.calls += 1
        raise self.error()


class HangingKeyring(KeyringBackend):
    """Never answers until ``release`` is set: a Secret Service waiting on an unlock prompt."""

    priority = -10

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def get_password(self, service: str, username: str) -> Optional[str]:
        self.calls += 1
        self.release.wait(60)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        self.release.wait(60)

    def delete_password(self, service: str, username: str) -> None:
        self.calls += 1
        self.release.wait(60)


class DirectoryKeyring(KeyringBackend):
    """One file per secret in ``directory``, replaced atomically: a keyring several
    processes share, for the cross-process tests only (it is plaintext)."""

    priority = -10

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _path(self, service: str, username: str) -> str:
        name = hashlib.sha256(f"{service}\0{username}".encode()).hexdigest()
        return os.path.join(self.directory, name)

    def get_password(self, service: str, username: str) -> Optional[str]:
        try:
            with open(self._path(service, username), encoding="utf-8") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def set_password(self, service: str, username: str, password: str) -> None:
        path = self._path(service, username)
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(password)
        os.replace(temporary, path)

    def delete_password(self, service: str, username: str) -> None:
        try:
            os.unlink(self._path(service, username))
        except FileNotFoundError:
            raise PasswordDeleteError("No such password!") from None
