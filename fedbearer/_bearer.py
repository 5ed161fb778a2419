"""``Bearer`` and ``Receiver``: the synchronous counterpart of the Nebius SDK's federation bearer.

A :class:`Bearer` holds the settings of one identity (profile, client, federation); its
:meth:`Bearer.receiver` returns a :class:`Receiver` whose :meth:`Receiver.fetch` runs one
interactive login. Constructing either does no I/O.
"""

from __future__ import annotations

from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, Optional

from ._exceptions import InteractionRequiredError
from ._login_command import login_command
from ._settings import (
    DEFAULT_LOGIN_TIMEOUT,
    UNDER_PYTEST,
    LoginSettings,
    Verify,
    check_timeout,
)
from ._token import Token

if TYPE_CHECKING:
    import requests

    from ._browser import Opener

# Sentinel for "use the bearer's timeout": None already means "no limit", and a number
# used as a marker would silently swallow that number when a caller passed it.
_UNSET: Any = object()


class Bearer:
    """Settings for interactive federation logins of one identity.

    Arguments mirror the Nebius SDK: ``profile_name`` names the identity in the token cache,
    ``client_id`` is the OAuth client, ``federation_endpoint`` the federation's address
    (``https://`` assumed; ``http://`` kept for a federation on this machine; a path prefix
    is kept), ``federation_id`` is sent as ``federation-id``. They are validated once, into
    ``settings`` (a :class:`~fedbearer.LoginSettings`).

    Keyword options:

    ``writer``
        Text stream for the URL and short instructions (default: ``sys.stderr``).
    ``no_browser_open``
        Only show the URL, never launch a browser.
    ``timeout``
        Overall login deadline in seconds (browser wait plus code exchange); ``None`` for
        no limit. Default :data:`~fedbearer.DEFAULT_LOGIN_TIMEOUT` (300 s).
    ``port``
        Fixed callback port (for ``ssh -L`` forwards or registered redirect URIs); default
        ``$FEDBEARER_CALLBACK_PORT`` when set, else a free port chosen by the system. A busy
        port is a :class:`~fedbearer.ConfigurationError`.
    ``opener``
        Callable ``opener(url) -> bool | None`` used instead of ``webbrowser`` (tests,
        custom launchers). It runs on a background thread; returning False means "could not".
    ``verify``
        TLS verification for every call to the provider: ``True``, ``False`` or a CA bundle
        path, as in ``requests``. ``True`` (the default) uses ``$REQUESTS_CA_BUNDLE``,
        ``$CURL_CA_BUNDLE`` or ``$SSL_CERT_FILE`` when one is set, else certifi's bundle.
    ``session``
        A :class:`requests.Session` to make every call to the provider with (discovery,
        the pre-flight check, the code exchange, refresh, revocation): its ``verify``,
        ``cert`` and ``proxies`` (which win over the environment's ``HTTPS_PROXY``,
        ``NO_PROXY`` and CA bundle variables; ``trust_env`` as it says) and the retries of
        the ``HTTPAdapter`` it mounts. Its auth, headers, cookies and hooks are never used:
        they are for the API, not the identity provider. With a session, set TLS
        verification on it rather than with ``verify``. Default: a fresh one per call,
        which honours the environment.
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
    ``preflight``
        Before the browser opens, check within seconds that the federation can be reached
        and accepts the authorization request, so a wrong endpoint, client id or
        federation id fails at once with a :class:`~fedbearer.ConfigurationError` naming
        it instead of at the login timeout. On by default; skipped when ``opener`` is
        given (a program, not a person, follows the URL then).

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
        preflight: bool = True,
        session: Optional[requests.Session] = None,
    ) -> None:
        #: The validated settings every login and refresh of this bearer uses.
        self.settings = LoginSettings(
            client_id,
            federation_endpoint,
            federation_id,
            profile_name,
            writer=writer,
            no_browser_open=no_browser_open,
            timeout=timeout,
            port=port,
            opener=opener,
            verify=verify,
            interactive=interactive,
            app_name=app_name,
            allow_insecure_http=allow_insecure_http,
            preflight=preflight,
            session=session,
        )

    @classmethod
    def from_settings(cls, settings: LoginSettings) -> Bearer:
        """A bearer for settings built already."""
        self = cls.__new__(cls)
        self.settings = settings
        return self

    # The reference's attribute names, read from the settings.

    @property
    def profile_name(self) -> str:
        """The profile: the last part of the token cache key."""
        return self.settings.profile

    @property
    def client_id(self) -> str:
        """The OAuth client id."""
        return self.settings.client_id

    @property
    def federation_endpoint(self) -> str:
        """The federation endpoint as configured (the cache key uses it verbatim)."""
        return self.settings.federation_endpoint

    @property
    def federation_id(self) -> str:
        """Sent as ``federation-id``; empty to omit it."""
        return self.settings.federation_id

    @property
    def name(self) -> str:
        """The token cache key: ``federation/<endpoint>/<id>/<profile>``, strings as configured
        (another provider's: ``oidc/<host>/<digest>/<profile>``, see ``LoginSettings``)."""
        return self.settings.cache_key

    def receiver(self) -> Receiver:
        """A receiver that runs one interactive login per :meth:`Receiver.fetch`."""
        return Receiver(self)

    def refresh(self, token: Token, *, timeout: Optional[float] = None) -> Token:
        """Renew ``token`` with its refresh token (RFC 6749 §6).

        The provider calls end by one deadline: ``timeout`` seconds (``None``: the default,
        :data:`~fedbearer._http.TOKEN_REQUEST_TIMEOUT`, 30 s), or the login ``timeout`` when
        that is shorter.
        """
        from ._login import refresh  # the HTTP stack (requests): only for a refresh

        return refresh(self.settings, token, timeout=check_timeout(timeout))

    def __repr__(self) -> str:
        settings = self.settings
        if settings.kind != "federation":
            return (
                f"Bearer(profile_name={self.profile_name!r}, client_id={self.client_id!r}, "
                f"provider={settings.provider!r}, scopes={settings.scopes!r})"
            )
        return (
            f"Bearer(profile_name={self.profile_name!r}, client_id={self.client_id!r}, "
            f"federation_endpoint={settings.provider!r}, "
            f"federation_id={self.federation_id!r})"
        )


def _login_hint(settings: LoginSettings) -> Optional[str]:
    """The ``fedbearer login`` command that logs in for ``settings`` (to paste into a
    terminal), or ``None`` when the command line cannot express them (a provider given by
    its endpoints rather than its issuer, one that needs a client secret, a parameter name
    with ``=``)."""
    if settings.kind == "endpoints" or settings.client_secret is not None:
        return None
    return login_command(
        settings.client_id,
        settings.profile,
        federation_endpoint=settings.federation_endpoint,
        federation_id=settings.federation_id,
        issuer=settings.issuer,  # None for a Nebius federation
        scopes=settings.scopes,
        params=settings.params,
        allow_insecure_http=settings.allow_insecure_http,
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
        settings = self.bearer.settings
        if not settings.interactive and settings.interactive_source == UNDER_PYTEST:
            raise InteractionRequiredError(
                f"a login is needed for profile {settings.profile!r}, but in a test "
                "fedbearer's pytest plugin starts none unless the test sets one up: pass "
                "opener= (the programmatic_browser fixture with local_federation, or "
                "fedbearer.testing.CallbackOpener under responses), or mark the test "
                "@pytest.mark.fedbearer_real to use the real login and token cache"
            )
        if not settings.interactive:
            # Raised before anything else: no port, no thread, no output (cron, CI).
            command = _login_hint(settings)
            how = (
                f"with: {command}"
                if command is not None
                else "by running this program there once with the same settings"
            )
            raise InteractionRequiredError(
                f"a login is needed for profile {settings.profile!r} but interactive logins "
                f"are disabled ({settings.interactive_source}); log in first from a terminal "
                f"{how}"
            )
        if timeout is not _UNSET:
            settings = replace(settings, timeout=timeout)
        from ._login import login  # the HTTP stack, the loopback server: only for a login

        return login(settings)

    def __repr__(self) -> str:
        return f"Receiver({self.bearer!r})"
