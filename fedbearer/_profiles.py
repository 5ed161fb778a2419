"""Remembered profiles: the settings ``fedbearer login`` logged in with, for later commands.

``fedbearer login --client-id … --federation-endpoint … --federation-id … --profile work``
records that identity under ``work`` in fedbearer's own configuration file (never in the
Nebius CLI's files), and makes it the default. Afterwards ``fedbearer token``, ``status`` and
``logout`` need no flags, or only ``--profile NAME``; scripts get the same identity from
:meth:`~fedbearer.FederationAuth.from_profile`. The file::

    default: work                      # the profile of the most recent login
    profiles:
      work:
        client_id: my-app
        federation_endpoint: auth.example.com
        federation_id: my-federation
      keycloak:                        # fedbearer login --issuer ... --scope "openid email"
        client_id: cli
        issuer: https://sso.example.com/realms/main
        scopes: [openid, email]
        params: {audience: api}

lives in the user's configuration directory (``$XDG_CONFIG_HOME/fedbearer/profiles.yaml``,
``~/.config/fedbearer/`` by default; the platform's equivalent elsewhere, from
``platformdirs``). It holds no secret. It is validated where it is read: a value that is
not a short printable string is a :class:`~fedbearer.ConfigurationError` naming the file.
Writes replace the file atomically (a temporary file, then a rename) under a lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import yaml

from . import _files
from ._cache import file_lock
from ._exceptions import ConfigurationError
from ._protocol import authorization_params, check_url, scope_tokens
from ._settings import MAX_TEXT_SETTING

#: Largest profiles file read: it holds a few lines per profile.
MAX_PROFILES_FILE_BYTES = 256 * 1024
_FEDERATION_FIELDS = ("federation_endpoint", "federation_id")
_MAX_VALUE = MAX_TEXT_SETTING  # as LoginSettings checks client_id


def default_profiles_file() -> str:
    """``profiles.yaml`` in fedbearer's user configuration directory (XDG on Linux)."""
    # Imported here: a `fedbearer token` given every option never reads this file, and
    # platformdirs is a measurable part of that process (benchmarks/token_command.py).
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("fedbearer", appauthor=False), "profiles.yaml")


@dataclass(frozen=True)
class RememberedProfile:
    """The identity a login used, under its profile name."""

    name: str
    client_id: str
    federation_endpoint: str = ""
    federation_id: str = ""
    allow_insecure_http: bool = False
    #: Tokens in the OS keyring (``fedbearer login --keyring``) rather than the file.
    keyring: bool = False
    #: Another OpenID provider's issuer (``fedbearer login --issuer``) instead of a Nebius
    #: federation; then ``scopes`` and ``params`` go with it.
    issuer: Optional[str] = None
    scopes: tuple[str, ...] = ("openid",)
    params: tuple[tuple[str, str], ...] = ()
    #: ``fedbearer login --device-code`` (True) or ``--no-device-code`` (False); ``None``:
    #: the automatic choice.
    device_code: Optional[bool] = None


@dataclass(frozen=True)
class Profiles:
    """What the file holds: the profiles by name, and the default's name (if any)."""

    path: str
    default: Optional[str]
    profiles: Mapping[str, RememberedProfile]

    def get(self, name: Optional[str] = None) -> Optional[RememberedProfile]:
        """The profile ``name``, or the default one when ``name`` is None."""
        chosen = self.default if name is None else name
        return None if chosen is None else self.profiles.get(chosen)


def _text(value: object, what: str, path: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_VALUE or not value.isprintable():
        raise ConfigurationError(
            f"{path}: {what} must be a printable string of at most {_MAX_VALUE} characters; "
            "fix or delete the file (fedbearer login writes it again)"
        )
    return value


def parse_profiles(data: bytes, path: str) -> Profiles:
    """The file's content as :class:`Profiles`; :class:`ConfigurationError` when malformed."""
    if len(data) > MAX_PROFILES_FILE_BYTES:
        raise ConfigurationError(f"{path} is larger than {MAX_PROFILES_FILE_BYTES} bytes")
    try:
        doc = _files.load_yaml(data, path)
    except _files.FileRefused as exc:
        raise ConfigurationError(f"{exc}; fix or delete it") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles", {}), dict):
        raise ConfigurationError(f"{path} must be a mapping with a 'profiles' mapping")
    profiles = {}
    for name, entry in doc.get("profiles", {}).items():
        name = _text(name, "a profile name", path)
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{path}: profile {name!r} must be a mapping")
        profiles[name] = _profile(name, entry, path)
    default = doc.get("default")
    if default is not None:
        default = _text(default, "default", path)
    return Profiles(path, default, profiles)


def _profile(name: str, entry: Mapping[str, Any], path: str) -> RememberedProfile:
    """One profile's entry, checked as :class:`~fedbearer.LoginSettings` would check it."""
    client_id = _text(entry.get("client_id", ""), f"{name}.client_id", path)
    insecure, keyring = (
        _flag(entry, flag, name, path) for flag in ("allow_insecure_http", "keyring")
    )
    device_code = entry.get("device_code")
    if device_code is not None and not isinstance(device_code, bool):
        raise ConfigurationError(f"{path}: {name}.device_code must be true or false")
    if entry.get("issuer") is None:
        endpoint, federation_id = (
            _text(entry.get(field, ""), f"{name}.{field}", path) for field in _FEDERATION_FIELDS
        )
        return RememberedProfile(
            name, client_id, endpoint, federation_id, insecure, keyring, device_code=device_code
        )
    if any(field in entry for field in _FEDERATION_FIELDS):
        raise ConfigurationError(
            f"{path}: profile {name!r} names both an issuer and a federation; fix or delete "
            "the file (fedbearer login writes it again)"
        )
    issuer = _text(entry["issuer"], f"{name}.issuer", path)
    try:
        check_url(issuer, "issuer", allow_insecure_http=insecure, query=False)
        scopes = scope_tokens(entry.get("scopes", ["openid"]))
        params = authorization_params(entry.get("params"))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: profile {name!r}: {exc}") from None
    return RememberedProfile(
        name,
        client_id,
        allow_insecure_http=insecure,
        keyring=keyring,
        issuer=issuer,
        scopes=scopes,
        params=params,
        device_code=device_code,
    )


def _flag(entry: Mapping[str, Any], flag: str, name: str, path: str) -> bool:
    value = entry.get(flag, False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{path}: {name}.{flag} must be true or false")
    return value


def load_profiles(path: Optional[str] = None) -> Profiles:
    """The remembered profiles (none when the file does not exist)."""
    path = default_profiles_file() if path is None else os.path.expanduser(path)
    try:
        # Regular, private (its allow_insecure_http sends tokens over plain http), bounded.
        data = _files.read_private(path, MAX_PROFILES_FILE_BYTES)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path} ({exc.strerror})") from None
    if data is None:
        return Profiles(path, None, {})
    return parse_profiles(data, path)


def _dump(default: Optional[str], profiles: Mapping[str, RememberedProfile]) -> bytes:
    doc: dict[str, Any] = {"default": default, "profiles": {}}
    for name, profile in profiles.items():
        entry: dict[str, Any] = {"client_id": profile.client_id}
        if profile.issuer is None:
            entry.update((field, getattr(profile, field)) for field in _FEDERATION_FIELDS)
        else:
            entry["issuer"] = profile.issuer
            entry["scopes"] = list(profile.scopes)
            if profile.params:
                entry["params"] = dict(profile.params)
        for flag in ("allow_insecure_http", "keyring"):
            if getattr(profile, flag):
                entry[flag] = True
        if profile.device_code is not None:
            entry["device_code"] = profile.device_code
        doc["profiles"][name] = entry
    text: str = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
    return text.encode("utf-8")


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    def refuse(fault: Exception) -> None:
        raise ConfigurationError(f"cannot lock {lock_path} ({fault})")

    directory = os.path.dirname(path)
    lock_path = os.path.join(directory, ".profiles.lock")
    # The cache's lock: never through a symbolic link (a dangling one would have its
    # target created), never blocked by a FIFO.
    with file_lock(lock_path, timeout=10, dir_mode=0o700, poll_max=0.1, on_fault=refuse) as locked:
        if not locked:
            raise ConfigurationError(f"cannot save the profile to {path} (it stayed locked)")
        yield


def remember_profile(profile: RememberedProfile, path: Optional[str] = None) -> str:
    """Record ``profile`` and make it the default; returns the file's path.

    Read, changed and replaced under a lock, so two logins at once both land; the file is
    written to a temporary name and renamed, so a crash never leaves half of it.
    """
    # Imported here: only a login writes this file, and `fedbearer token` only reads it;
    # tempfile brings shutil, random and the compression modules.
    import tempfile

    path = default_profiles_file() if path is None else os.path.expanduser(path)
    try:
        with _locked(path):
            current = load_profiles(path)
            profiles = {**current.profiles, profile.name: profile}
            fd, tmp = tempfile.mkstemp(prefix=".profiles-", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(_dump(profile.name, profiles))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except OSError as exc:
        raise ConfigurationError(f"cannot save the profile to {path} ({exc.strerror})") from None
    return path
