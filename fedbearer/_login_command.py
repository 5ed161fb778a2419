"""The ``fedbearer login`` command line that logs one identity in.

A login that is needed while interactive logins are off ends with this command as the way
out, both in the library (:class:`~fedbearer.InteractionRequiredError`) and in the
``fedbearer`` command. It is built here, apart from :mod:`fedbearer._cli`, so that the
library does not load the command's parser to word an error.
"""

from __future__ import annotations

import shlex
from typing import Optional


def login_command(
    client_id: str,
    federation_endpoint: str,
    federation_id: str,
    profile: str,
    *,
    nebius_profile: Optional[str] = None,
    allow_insecure_http: bool = False,
    cache_file: Optional[str] = None,
) -> str:
    """``fedbearer login ...`` for this identity, quoted for a POSIX shell.

    Every setting is spelled out, so the command logs in the same identity whatever the
    environment of the terminal it is pasted into; ``cache_file`` keeps it on the same cache.
    """
    command = ["fedbearer", "login"]
    if nebius_profile is not None:
        command += ["--nebius-profile", nebius_profile]
    command += [
        "--client-id",
        client_id,
        "--federation-endpoint",
        federation_endpoint,
        "--federation-id",
        federation_id,
        "--profile",
        profile,
    ]
    if allow_insecure_http:
        command.append("--allow-insecure-http")
    if cache_file is not None:
        command += ["--cache-file", cache_file]
    return shlex.join(command)
