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
) -> str:
    """``fedbearer login ...`` for this identity, quoted for a POSIX shell.

    A Nebius federation is named by ``federation_endpoint`` and ``federation_id`` (or
    ``nebius_profile``), another OpenID provider by its ``issuer``, ``scopes`` and
    ``params``. Every setting is spelled out, so the command logs in the same identity
    whatever the environment of the terminal it is pasted into; ``cache_file`` and
    ``keyring`` keep it on the same cache.
    """
    command = ["fedbearer", "login"]
    if issuer is not None:
        command += ["--issuer", issuer, "--client-id", client_id]
        scopes = tuple(scopes)
        if scopes != ("openid",):
            command += ["--scope", " ".join(scopes)]
        for name, value in params:
            command += ["--param", f"{name}={value}"]
    else:
        if nebius_profile is not None:
            command += ["--nebius-profile", nebius_profile]
        command += [
            "--client-id",
            client_id,
            "--federation-endpoint",
            federation_endpoint,
            "--federation-id",
            federation_id,
        ]
    command += ["--profile", profile]
    if allow_insecure_http:
        command.append("--allow-insecure-http")
    if cache_file is not None:
        command += ["--cache-file", cache_file]
    elif keyring:
        command.append("--keyring")
    return shlex.join(command)
