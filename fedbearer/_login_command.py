"""The ``fedbearer login`` command line that logs one identity in.

A login that is needed while interactive logins are off ends with this command as the way
out, both in the library (:class:`~fedbearer.InteractionRequiredError`) and in the
``fedbearer`` command. It is built here, apart from :mod:`fedbearer._cli`, so that the
library does not load the command's parser to word an error.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Optional


def _option(name: str, value: str) -> list[str]:
    # "--scope=-x", not "--scope -x": argparse would take "-x" for an option of its own.
    return [f"{name}={value}"] if value.startswith("-") else [name, value]


def login_command(
    client_id: str,
    profile: str,
    *,
    federation_endpoint: str = "",
    federation_id: str = "",
    issuer: Optional[str] = None,
    scopes: Iterable[str] = ("openid",),
    params: Iterable[tuple[str, str]] = (),
    nebius_profile: Optional[str] = None,
    allow_insecure_http: bool = False,
    cache_file: Optional[str] = None,
    keyring: bool = False,
) -> Optional[str]:
    """``fedbearer login ...`` for this identity, quoted for a POSIX shell; ``None`` when
    the command line cannot express it (a parameter name containing ``=``).

    A Nebius federation is named by ``federation_endpoint`` and ``federation_id`` (or
    ``nebius_profile``), another OpenID provider by its ``issuer``, ``scopes`` and
    ``params``. Every setting is spelled out, the scopes too, so the command logs in the
    same identity whatever the environment of the terminal it is pasted into (a
    ``FEDBEARER_SCOPE`` there, say); ``cache_file`` and ``keyring`` keep it on the same
    cache.
    """
    command = ["fedbearer", "login"]
    if issuer is not None:
        command += [*_option("--issuer", issuer), *_option("--client-id", client_id)]
        command += _option("--scope", " ".join(scopes))
        for name, value in params:
            if "=" in name:
                return None
            command += _option("--param", f"{name}={value}")
    else:
        if nebius_profile is not None:
            command += _option("--nebius-profile", nebius_profile)
        command += _option("--client-id", client_id)
        command += _option("--federation-endpoint", federation_endpoint)
        command += _option("--federation-id", federation_id)
    command += _option("--profile", profile)
    if allow_insecure_http:
        command.append("--allow-insecure-http")
    if cache_file is not None:
        command += _option("--cache-file", cache_file)
    elif keyring:
        command.append("--keyring")
    return shlex.join(command)
