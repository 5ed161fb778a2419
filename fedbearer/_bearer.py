"""``Bearer`` and ``Receiver``: the synchronous counterpart of the Nebius SDK's federation bearer.

A :class:`Bearer` holds the settings of one identity (profile, client, federation); its
:meth:`Bearer.receiver` returns a :class:`Receiver` whose :meth:`Receiver.fetch` runs one
interactive login. Constructing either does no I/O.
"""

from __future__ import annotations

import os
import shlex
from typing import IO, TYPE_CHECKING, Any, Optional

from ._cache import cache_key
from ._exceptions import ConfigurationError, InteractionRequiredError
from ._login import (
    DEFAULT_LOGIN_TIMEOUT,
    TOKEN_REQUEST_TIMEOUT,
    Verify,
    authorize,
    check_client_id,
    check_timeout,
    refresh,
)
from ._protocol import Federation, federation_for
from ._token import Token

if TYPE_CHECKING:
    from ._browser import Opener

# Sentinel for "use the bearer's timeout": None already means "no limit", and a number
# used as a marker would silently swallow that number when a caller passed it.
_UNSET: Any = object()


class Bearer:
    """Settings for interactive federation logins of one identity.

    Arguments mirror the Nebius SDK: ``profile_name`` names the identity in the token cache,
    ``client_id`` is the OAuth client, ``federation_endpoint`` the federation's address
    (``https://`` assumed; ``http://`` kept for local federations; a path prefix is kept),
    ``federation_id`` is sent as ``federation-id``.

    Keyword options:

    ``writer``
        Text stream for the URL and short instructions (default: ``sys.stderr``).
    ``no_browser_open``
        Only show the URL, never launch a browser.
    ``timeout``
        Overall login deadline in seconds (browser wait plus code exchange); ``None`` for
        no limit. Default :data:`~fedbearer._login.DEFAULT_LOGIN_TIMEOUT` (300 s).
    ``port``
        Fixed callback port (for ``ssh -L`` forwards or registered redirect URIs); default
        ``$FEDBEARER_CALLBACK_PORT`` when set, else a free port chosen by the system. A busy
        port is a :class:`~fedbearer.ConfigurationError`.
    ``opener``
        Callable ``opener(url) -> bool | None`` used instead of :mod:`webbrowser` (tests,
        custom launchers). It runs on a background thread; returning False means "could not".
    ``verify``
        TLS verification for the token endpoint: ``True``, ``False`` or a CA bundle path,
        as in ``requests``.
    ``interactive``
        When False, a login raises :class:`~fedbearer.InteractionRequiredError` at once,
        with the ``fedbearer login`` command to run (for cron and CI). ``None`` (default):
        from ``$FEDBEARER_INTERACTIVE`` (``0`` disables), else True; read here, once.
    ``app_name``
        Shown on the browser pages.
    ``allow_insecure_http``
        Accept an ``http://`` federation endpoint on another machine. Off by default: the
        code and tokens would cross the network unencrypted. Loopback endpoints
        (``http://127.0.0.1:…``, ``http://localhost:…``) never need it.

    ``profile_name`` and ``federation_id`` may not contain ``/``: the token cache key
    (:func:`~fedbearer.cache_key`) would become ambiguous.
    """

    def __init__(
        self,
        profile_name: str,
        client_id: str,
        federation_endpoint: str,
        federation_id: str,
        *,
        writer: Optional[IO[str]] = None,
        no_browser_open: bool = False,
        timeout: Optional[float] = DEFAULT_LOGIN_TIMEOUT,
        port: Optional[int] = None,
        opener: Optional[Opener] = None,
        verify: Verify = True,
        interactive: Optional[bool] = None,
        app_name: str = "fedbearer",
        allow_insecure_http: bool = False,
    ) -> None:
        if not isinstance(profile_name, str) or not profile_name:
            raise ConfigurationError("profile_name is empty; pass a profile name such as 'default'")
        if not isinstance(federation_id, str):
            raise ConfigurationError("federation_id must be a string (empty to omit it)")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise ConfigurationError(f"port must be an integer 0-65535 or None, not {port!r}")
        self.profile_name = profile_name
        self.client_id = check_client_id(client_id)
        self.federation_endpoint = federation_endpoint
        self.federation_id = federation_id
        self.federation: Federation = federation_for(
            federation_endpoint, allow_insecure_http=allow_insecure_http
        )
        self.allow_insecure_http = allow_insecure_http
        #: The token cache key: ``federation/<endpoint>/<id>/<profile>``, strings as configured.
        self.name = cache_key(federation_endpoint, federation_id, profile_name)
        self.writer = writer
        self.no_browser_open = no_browser_open
        self.timeout = check_timeout(timeout)
        self.port = port
        self.opener = opener
        self.verify = verify
        if interactive is not None and not isinstance(interactive, bool):
            raise ConfigurationError(
                f"interactive must be True, False or None, not {interactive!r}"
            )
        #: Where ``interactive`` came from, for the error message when it is off.
        self._interactive_source = "interactive=False"
        if interactive is None:
            # Imported here, from the light module: _environment (dataclasses, inspect) is
            # needed by logins, not by constructing a bearer.
            from ._envvars import INTERACTIVE_ENV, interactive_from_env

            interactive = interactive_from_env()
            self._interactive_source = f"{INTERACTIVE_ENV}={os.environ.get(INTERACTIVE_ENV, '')}"
        self.interactive = interactive
        self.app_name = app_name

    def receiver(self) -> Receiver:
        """A receiver that runs one interactive login per :meth:`Receiver.fetch`."""
        return Receiver(self)

    def refresh(self, token: Token, *, timeout: Optional[float] = TOKEN_REQUEST_TIMEOUT) -> Token:
        """Renew ``token`` with its refresh token, through a dedicated session (RFC 6749 §6)."""
        return refresh(
            self.federation,
            token,
            client_id=self.client_id,
            timeout=check_timeout(timeout),
            verify=self.verify,
        )

    def __repr__(self) -> str:
        return (
            f"Bearer(profile_name={self.profile_name!r}, client_id={self.client_id!r}, "
            f"federation_endpoint={self.federation.endpoint!r}, "
            f"federation_id={self.federation_id!r})"
        )


class Receiver:
    """Runs interactive logins for a :class:`Bearer`."""

    def __init__(self, bearer: Bearer) -> None:
        self.bearer = bearer

    def fetch(self, timeout: Optional[float] = _UNSET) -> Token:
        """Run one interactive login and return the token.

        ``timeout`` overrides the bearer's deadline for this login (``None``: no limit).
        Raises a :class:`~fedbearer.LoginError` or :class:`~fedbearer.TokenEndpointError`
        subclass on failure; Ctrl-C propagates as ``KeyboardInterrupt`` after clean-up.
        """
        b = self.bearer
        if not b.interactive:
            # Raised before anything else: no port, no thread, no output (cron, CI).
            command = shlex.join(
                [
                    "fedbearer",
                    "login",
                    "--client-id",
                    b.client_id,
                    "--federation-endpoint",
                    b.federation_endpoint,
                    "--federation-id",
                    b.federation_id,
                    "--profile",
                    b.profile_name,
                ]
            )
            raise InteractionRequiredError(
                f"a login is needed for profile {b.profile_name!r} but interactive logins are "
                f"disabled ({b._interactive_source}); log in first from a terminal with: "
                f"{command}"
            )
        return authorize(
            b.client_id,
            b.federation_endpoint,
            b.federation_id,
            profile_name=b.profile_name,
            writer=b.writer,
            no_browser_open=b.no_browser_open,
            timeout=b.timeout if timeout is _UNSET else timeout,
            port=b.port,
            opener=b.opener,
            verify=b.verify,
            app_name=b.app_name,
            allow_insecure_http=b.allow_insecure_http,
        )

    def __repr__(self) -> str:
        return f"Receiver({self.bearer!r})"
