"""The two settings read from environment variables, in a module that stays light.

``FEDBEARER_CALLBACK_PORT`` (:func:`callback_port_from_env`) and ``FEDBEARER_INTERACTIVE``
(:func:`interactive_from_env`). Every :class:`~fedbearer.Bearer` and
:class:`~fedbearer.FederationAuth` reads the second when it is constructed, so this module
imports nothing beyond what ``import fedbearer`` has already loaded (no ``dataclasses``,
which would bring ``inspect``). :mod:`fedbearer._environment` re-exports all of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Optional

from ._exceptions import ConfigurationError

#: Environment variable: fixed callback port when none is passed (``0``: any free port).
CALLBACK_PORT_ENV = "FEDBEARER_CALLBACK_PORT"
#: Environment variable: ``0`` disables interactive logins (cron, CI); ``1`` is the default.
INTERACTIVE_ENV = "FEDBEARER_INTERACTIVE"

_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on", ""})


def port_number(text: str) -> Optional[int]:
    """A decimal port 0-65535 in ASCII digits, or ``None``."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        return None
    value = int(text)
    return value if value <= 65535 else None


def callback_port_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """``FEDBEARER_CALLBACK_PORT`` as a port number, or ``None`` when unset or empty.

    A value that is not a port number 0-65535 is a :class:`~fedbearer.ConfigurationError`
    rather than silently a random port: a user who set it is relying on an ``ssh -L``
    forward to that port.
    """
    env = os.environ if env is None else env
    raw = env.get(CALLBACK_PORT_ENV, "").strip()
    if not raw:
        return None
    port = port_number(raw)
    if port is None:
        raise ConfigurationError(
            f"{CALLBACK_PORT_ENV} must be a port number 0-65535 (0: any free port), "
            f"not {raw[:20]!r}"
        )
    return port


def interactive_from_env(env: Optional[Mapping[str, str]] = None) -> bool:
    """``FEDBEARER_INTERACTIVE``: ``0``/``false``/``no``/``off`` disable logins; default on."""
    env = os.environ if env is None else env
    raw = env.get(INTERACTIVE_ENV, "").strip().lower()
    if raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise ConfigurationError(
        f"{INTERACTIVE_ENV} must be 0 (no interactive logins) or 1, not {raw[:20]!r}"
    )
