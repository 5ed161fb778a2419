"""The ``fedbearer`` command: log in, print a token, log out, list the cache, run the demo.

``fedbearer login | token | logout | status`` work on the token cache shared with the
Nebius CLI (``~/.nebius/credentials.yaml`` unless ``--cache-file``) through the token core
that ``FederationAuth`` is built on: ``Credentials(...).get_token()`` decides between the
cached token, its refresh token and an interactive login. A cached ``fedbearer token``
imports no HTTP library (see ``docs/performance.rst``). ``fedbearer demo`` runs the whole
thing against a local federation (:mod:`fedbearer.testing.demo`).

- :mod:`.options`: the parser, and the identity and cache the options resolve to.
- :mod:`.commands`: one function per command, and :func:`main` with the exit codes.
- :mod:`.output`: expiries, the login's progress line, error lines and hints.

Output discipline: ``token`` writes the access token, and nothing else, to stdout; no other
command ever writes a token or refresh token anywhere. Errors are one line on stderr
(``fedbearer <command>: error: <what happened; what to do>``), with a traceback only under
``--debug``.

Exit codes:

===  ==========================================================================
0    success
1    the login or the federation failed (refused, timed out, token endpoint error;
     a failed demo step; an unexpected error)
2    usage or configuration error (bad option, missing setting, Nebius profile)
3    a login is needed but interaction is off (``--non-interactive`` or
     ``FEDBEARER_INTERACTIVE=0``)
130  interrupted (Ctrl-C)
===  ==========================================================================
"""

from __future__ import annotations

from .commands import (
    EXIT_FAILURE,
    EXIT_INTERACTION_REQUIRED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    main,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERACTION_REQUIRED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]
