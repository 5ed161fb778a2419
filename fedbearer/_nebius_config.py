"""Read a federation profile from the Nebius CLI's ``~/.nebius/config.yaml``.

The file looks like this (only the keys fedbearer uses are shown)::

    default: dev
    profiles:
      dev:
        auth-type: federation
        federation-endpoint: auth.example.com
        federation-id: federation-e00abc

The profile is chosen as the Nebius SDK chooses it (``nebius.aio.cli_config.Config``): the
argument, else ``$NEBIUS_PROFILE``, else the top-level ``default`` key, else the only profile.
The client id is not stored there; the caller supplies it. Values are returned exactly as
written, because the token cache key uses them verbatim.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from . import _files
from ._cache import cache_key
from ._exceptions import ConfigurationError

__all__ = ["DEFAULT_CONFIG_FILE", "PROFILE_ENV", "NebiusProfile", "load_nebius_profile"]

#: Where the Nebius CLI keeps its profiles; ``~`` is expanded at each call.
DEFAULT_CONFIG_FILE = "~/.nebius/config.yaml"

#: Largest config file read. The Nebius CLI's holds a few lines per profile; a larger file
#: is refused rather than read whole.
MAX_CONFIG_FILE_BYTES = 1 << 20

#: Environment variable that selects the profile when no argument does (as in the Nebius SDK).
PROFILE_ENV = "NEBIUS_PROFILE"


@dataclass(frozen=True)
class NebiusProfile:
    """The federation settings of one Nebius CLI profile."""

    name: str
    federation_endpoint: str
    federation_id: str

    @property
    def cache_key(self) -> str:
        """This profile's key in the shared token cache (``federation/<endpoint>/<id>/<name>``)."""
        return cache_key(self.federation_endpoint, self.federation_id, self.name)


def _load_yaml(path: str) -> Any:
    """The parsed file: regular, private and bounded (:mod:`fedbearer._files`)."""
    try:
        data = _files.read_private(path, MAX_CONFIG_FILE_BYTES)
    except _files.FileRefused as exc:
        raise ConfigurationError(f"Nebius CLI config file {exc}") from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read Nebius CLI config file {path}: {exc.strerror}"
        ) from None
    if data is None:
        raise ConfigurationError(
            f"Nebius CLI config file {path} not found; create a profile with "
            "`nebius profile create`, or pass federation_endpoint and federation_id directly"
        )
    try:
        return _files.load_yaml(data, path)
    except _files.FileRefused as exc:
        raise ConfigurationError(f"Nebius CLI config file {exc}") from None


def _choose(profile: Optional[str], config: dict[Any, Any], names: list[str], path: str) -> str:
    if profile is not None:
        return profile
    from_env = os.environ.get(PROFILE_ENV)
    if from_env:  # an empty variable selects nothing, as if unset
        return from_env
    default = config.get("default")
    if isinstance(default, str) and default:
        return default
    if len(names) == 1:
        return names[0]
    raise ConfigurationError(
        f"no Nebius CLI profile selected in {path} and it has several "
        f"({', '.join(names)}); pass profile=..., set ${PROFILE_ENV}, "
        "or run `nebius profile activate <name>`"
    )


def _source(profile: Optional[str]) -> str:
    if profile is not None:
        return ""
    return f" (from ${PROFILE_ENV})" if os.environ.get(PROFILE_ENV) else ""


def load_nebius_profile(
    profile: Optional[str] = None, config_file: str = DEFAULT_CONFIG_FILE
) -> NebiusProfile:
    """The federation profile ``profile`` (or the selected one) from the Nebius CLI config.

    Raises :class:`~fedbearer.ConfigurationError` naming the file and what to do when the
    file is missing or unreadable, the profile does not exist (the available names are
    listed), it is not ``auth-type: federation``, or a federation field is missing.
    """
    path = os.path.abspath(os.path.expanduser(config_file))
    config = _load_yaml(path)
    if not isinstance(config, dict):
        raise ConfigurationError(f"Nebius CLI config file {path} does not hold a YAML mapping")
    profiles = config.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigurationError(
            f"Nebius CLI config file {path} has no profiles; create one with "
            "`nebius profile create`"
        )
    names = [name for name in profiles if isinstance(name, str)]
    name = _choose(profile, config, names, path)
    if name not in names:
        raise ConfigurationError(
            f"Nebius CLI profile {name!r}{_source(profile)} not found in {path}; "
            f"available: {', '.join(names) or 'none'}"
        )
    settings = profiles[name]
    if not isinstance(settings, dict):
        raise ConfigurationError(f"Nebius CLI profile {name!r} in {path} is not a mapping")
    auth_type = settings.get("auth-type")
    if auth_type != "federation":
        # The value's type first: only a string is quoted, and only its beginning.
        if auth_type is None:
            shown = "not set"
        elif isinstance(auth_type, str):
            shown = repr(auth_type[:100])
        else:
            shown = f"a {type(auth_type).__name__}"
        raise ConfigurationError(
            f"Nebius CLI profile {name!r} in {path} is not a federation profile "
            f"(auth-type is {shown}); fedbearer needs auth-type: federation"
        )
    endpoint = settings.get("federation-endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ConfigurationError(
            f"Nebius CLI profile {name!r} in {path} has no federation-endpoint"
        )
    # An empty federation-id is legal (authorize then omits the parameter); absent is not.
    federation_id = settings.get("federation-id")
    if not isinstance(federation_id, str):
        raise ConfigurationError(f"Nebius CLI profile {name!r} in {path} has no federation-id")
    return NebiusProfile(name=name, federation_endpoint=endpoint, federation_id=federation_id)
