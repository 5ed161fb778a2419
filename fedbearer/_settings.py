"""One login's settings as one immutable value, validated once where it is built.

:class:`LoginSettings` holds who logs in (client id, federation endpoint and id, profile;
or, for another OpenID provider, its issuer or endpoints, scopes and extra parameters)
and how (writer, browser, timeout, callback port, TLS verification, interactivity). The
public entry points (:class:`~fedbearer.FederationAuth`, :class:`~fedbearer.Bearer`,
:func:`~fedbearer.authorize`) build one and pass it whole; nothing below them validates an
option again. The two settings read from environment variables, ``FEDBEARER_CALLBACK_PORT``
and ``FEDBEARER_INTERACTIVE``, are read here too, once, when the value is built.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Literal, Optional, Union

from ._cache import cache_key, provider_cache_key
from ._exceptions import ConfigurationError
from ._protocol import (
    Federation,
    authorization_params,
    check_url,
    federation_for,
    provider_federation,
    scope_tokens,
)

if TYPE_CHECKING:
    import requests

    from ._browser import Opener

#: Default overall deadline of a login, in seconds: the browser wait plus the code exchange.
DEFAULT_LOGIN_TIMEOUT = 300.0

#: Environment variable: fixed callback port when none is passed (``0``: any free port).
CALLBACK_PORT_ENV = "FEDBEARER_CALLBACK_PORT"
#: Environment variable: ``0`` disables interactive logins (cron, CI); ``1`` is the default.
INTERACTIVE_ENV = "FEDBEARER_INTERACTIVE"

#: TLS verification for the token endpoint, as in ``requests``: a bool or a CA bundle path.
Verify = Union[bool, str]

#: Where the endpoints come from: a Nebius ``federation`` endpoint, ``endpoints`` given
#: one by one, or the ``discovery`` document of an issuer.
ProviderKind = Literal["federation", "endpoints", "discovery"]

_FALSE = frozenset({"0", "false", "no", "off"})
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]{1,1024}")
#: Longest client_id (and other text setting) accepted, here and in the profiles file.
MAX_TEXT_SETTING = 2048
_TRUE = frozenset({"1", "true", "yes", "on", ""})

#: ``interactive_source`` of settings made non-interactive by fedbearer's pytest plugin.
UNDER_PYTEST = "fedbearer's pytest plugin"


@dataclass
class _TestGuard:
    """What fedbearer's pytest plugin has turned off for the test that is running.

    ``logins``: a :class:`LoginSettings` without an ``opener`` defaults to no interactive
    login. ``user_cache``: :class:`~fedbearer.FederationAuth`'s default cache is none, and
    it takes no token from ``FEDBEARER_TOKEN`` or ``NEBIUS_IAM_TOKEN``. A test
    that forgot to set up a login then fails at once instead of opening a browser or using
    a real token. ``state_dir``: the test's own state directory, so that an abandoned login
    in one test holds back no login in another, nor the user's. Only the plugin sets these
    (``fedbearer.testing.plugin``), per test.
    """

    logins: bool = False
    user_cache: bool = False
    #: Where the abandoned-login records go (:mod:`fedbearer._cooldown`) instead of the
    #: user's state directory: a directory of the test's own.
    state_dir: Optional[str] = None


test_guard = _TestGuard()


#: Longest timeout accepted, in seconds (a year); ``None`` is the way to say no limit.
#: Beyond about 9e9 s the waits' deadlines no longer fit the platform's time type, and a
#: timeout raised a bare ``OverflowError`` out of a login (and of its watchdog thread).
MAX_TIMEOUT = 365 * 24 * 3600.0


def check_timeout(timeout: object, what: str = "timeout") -> Optional[float]:
    """A positive number of seconds up to :data:`MAX_TIMEOUT`, or ``None`` for no limit."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ConfigurationError(f"{what} must be a number of seconds or None, not {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds or None")
    if timeout > MAX_TIMEOUT:
        raise ConfigurationError(
            f"{what} must be at most {MAX_TIMEOUT:.0f} seconds (a year); pass None for no limit"
        )
    return float(timeout)


def port_number(text: str) -> Optional[int]:
    """A decimal port 0-65535 in ASCII digits, or ``None``."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        return None
    value = int(text)
    return value if value <= 65535 else None


def require_issuer(issuer: object) -> None:
    """An issuer was passed where one is required (``from_issuer``): without this check a
    missing one would be taken for a Nebius federation, and the error would name
    ``federation_endpoint``."""
    if issuer is None or (isinstance(issuer, str) and not issuer.strip()):
        what = "None" if issuer is None else "empty"
        raise ConfigurationError(
            f"issuer is {what}; pass the provider's issuer identifier, such as "
            "'https://accounts.example.com'"
        )
    if not isinstance(issuer, str):
        raise ConfigurationError(f"issuer must be a string, not {type(issuer).__name__}")


def check_port(port: object, what: str = "port") -> Optional[int]:
    """An ``int`` 0-65535 (``0``: any free port), or ``None``."""
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"{what} must be an integer 0-65535 or None, not {port!r}")
    return port


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


def interactive_from_env(
    env: Optional[Mapping[str, str]] = None, *, has_opener: bool = False
) -> tuple[bool, str]:
    """Whether logins may interact when the caller did not say, and why.

    ``FEDBEARER_INTERACTIVE`` decides when set (``0``/``false``/``no``/``off`` disable
    logins). Else, under fedbearer's pytest plugin, a login without an ``opener`` is not
    interactive (nothing was set up to complete it); outside pytest, ``CI=true`` (GitHub
    Actions, GitLab and others set it) means no person is there to log in. Else logins may
    interact.
    """
    env = os.environ if env is None else env
    raw = env.get(INTERACTIVE_ENV, "").strip().lower()
    if raw in _FALSE:
        return False, f"{INTERACTIVE_ENV}={raw}"
    if raw and raw not in _TRUE:
        raise ConfigurationError(
            f"{INTERACTIVE_ENV} must be 0 (no interactive logins) or 1, not {raw[:20]!r}"
        )
    if raw:
        return True, f"{INTERACTIVE_ENV}={raw}"
    if test_guard.logins:
        return has_opener, UNDER_PYTEST
    if env.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return False, "CI=true"
    return True, "the default"


@dataclass(frozen=True)
class LoginSettings:
    """Who logs in and how: everything an interactive login and a refresh need.

    Built once (by :class:`~fedbearer.FederationAuth`, :class:`~fedbearer.Bearer` or
    :func:`~fedbearer.authorize`) and validated as it is built; a bad value raises
    :class:`~fedbearer.ConfigurationError` naming the setting. The fields are those of
    :class:`~fedbearer.Bearer`, and for an OpenID provider other than a Nebius federation
    (:meth:`FederationAuth.from_issuer <fedbearer.FederationAuth.from_issuer>`,
    :meth:`~fedbearer.FederationAuth.from_endpoints`): ``issuer``, or
    ``authorization_endpoint`` and ``token_endpoint`` (and ``revocation_endpoint``);
    ``scopes`` (normalised to a tuple, each once) and ``params`` (extra authorization
    request parameters, normalised to ``(name, value)`` pairs); ``session`` (the
    :class:`requests.Session` whose ``verify``, ``cert``, ``proxies`` and adapter retries
    every call to the provider uses; see ``fedbearer._http``); ``client_secret`` (only for a
    provider that gives native apps a secret it does not treat as confidential and still
    asks for, as Google does; never shown in ``repr``). These are derived:

    ``kind``
        Where the endpoints come from (``ProviderKind``): ``federation`` (a Nebius
        federation endpoint, the reference's wire protocol), ``endpoints`` (another OpenID
        provider's ``authorization_endpoint`` and ``token_endpoint``, given) or
        ``discovery`` (another provider's ``issuer``, whose discovery document is read at
        the first login that needs it).
    ``federation``
        The normalised endpoint and the URLs derived from it; ``None`` until discovery
        (see ``fedbearer._login.endpoints``).
    ``cache_key``
        The token cache key: :func:`~fedbearer.cache_key` for a Nebius federation,
        ``fedbearer._cache.provider_cache_key`` for another provider.
    ``interactive``
        Resolved: ``None`` becomes what ``interactive_from_env`` says
        (``$FEDBEARER_INTERACTIVE``, the pytest plugin, ``CI=true``, else on);
        ``interactive_source`` says which, for the error message when it is off.
    ``port``
        Resolved: ``None`` becomes ``$FEDBEARER_CALLBACK_PORT`` when that is set.

    ``device_code`` chooses the kind of login: ``None`` (automatic: the device code, RFC 8628,
    when the provider offers it and no browser the user sees can be opened here, see
    :doc:`remote_logins`), ``True`` (always the device code: a
    :class:`~fedbearer.ConfigurationError` for a provider that offers none) or ``False``
    (always the browser). ``device_authorization_endpoint`` goes with
    ``authorization_endpoint`` and ``token_endpoint``; a discovered provider names its own.
    """

    client_id: str
    federation_endpoint: str = ""
    federation_id: str = ""
    profile: str = "default"
    writer: Optional[IO[str]] = None
    no_browser_open: bool = False
    timeout: Optional[float] = DEFAULT_LOGIN_TIMEOUT
    port: Optional[int] = None
    opener: Optional[Opener] = None
    verify: Verify = True
    interactive: Optional[bool] = None
    app_name: str = "fedbearer"
    allow_insecure_http: bool = False
    preflight: bool = True
    scopes: tuple[str, ...] = ("openid",)
    params: tuple[tuple[str, str], ...] = ()
    issuer: Optional[str] = None
    authorization_endpoint: Optional[str] = None
    token_endpoint: Optional[str] = None
    revocation_endpoint: Optional[str] = None
    client_secret: Optional[str] = field(default=None, repr=False)
    device_code: Optional[bool] = None
    device_authorization_endpoint: Optional[str] = None
    session: Optional[requests.Session] = field(default=None, repr=False, compare=False)
    kind: ProviderKind = field(init=False, repr=False, compare=False)
    federation: Optional[Federation] = field(init=False, repr=False, compare=False)
    cache_key: str = field(init=False, repr=False, compare=False)
    interactive_source: str = field(default="interactive=False", repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the normalised and derived values are set the way dataclasses does it.
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.client_id, str) or not self.client_id.strip():
            raise ConfigurationError(
                "client_id is empty; pass the OAuth client id of your application"
            )
        if len(self.client_id) > MAX_TEXT_SETTING or not self.client_id.isprintable():
            # A line break would forge lines in logs and the profiles file, whose reader
            # refuses it: checked once here, with the same rule.
            raise ConfigurationError(
                f"client_id must be printable (no line break or control character) and at "
                f"most {MAX_TEXT_SETTING} characters; pass the client id exactly as registered"
            )
        if not isinstance(self.profile, str) or not self.profile:
            raise ConfigurationError("profile is empty; pass a profile name such as 'default'")
        if not isinstance(self.federation_id, str):
            raise ConfigurationError("federation_id must be a string (empty to omit it)")
        if self.client_secret is not None and (
            not isinstance(self.client_secret, str)
            or not _VISIBLE_ASCII.fullmatch(self.client_secret)
        ):
            raise ConfigurationError("client_secret must be a string of visible ASCII characters")
        put("scopes", scope_tokens(self.scopes))
        put("params", authorization_params(self.params))
        if (
            self.issuer is None
            and self.authorization_endpoint is None
            and self.token_endpoint is None
            and self.revocation_endpoint is None
        ):
            self._nebius_federation(put)
        else:
            self._other_provider(put)
        put("timeout", check_timeout(self.timeout))
        put("port", check_port(self.port) if self.port is not None else callback_port_from_env())
        if self.interactive is None:
            interactive, source = interactive_from_env(has_opener=self.opener is not None)
            put("interactive", interactive)
            put("interactive_source", source)
        elif not isinstance(self.interactive, bool):
            raise ConfigurationError(
                f"interactive must be True, False or None, not {self.interactive!r}"
            )
        if self.device_code is not None and not isinstance(self.device_code, bool):
            raise ConfigurationError(
                f"device_code must be True, False or None (automatic), not {self.device_code!r}"
            )
        if (
            self.device_code
            and self.federation is not None
            and self.federation.device_authorization_url is None
        ):
            raise ConfigurationError(
                "device_code=True, but a Nebius federation offers no device authorization "
                "endpoint (RFC 8628); leave device_code out to log in with the browser"
                if self.kind == "federation"
                else "device_code=True needs device_authorization_endpoint= (the "
                "provider's RFC 8628 endpoint); or leave device_code out to log in with "
                "the browser"
            )
        if self.opener is not None and not callable(self.opener):
            raise ConfigurationError("opener must be a callable opener(url) -> bool | None")
        if not isinstance(self.verify, (bool, str)):
            raise ConfigurationError("verify must be True, False or a CA bundle path")
        if self.session is not None:
            # Imported only here: a caller who passes a session has loaded requests already,
            # and a cached `fedbearer token` must not load it (docs/performance.rst).
            import requests

            if not isinstance(self.session, requests.Session):
                raise ConfigurationError(
                    "session must be a requests.Session (its verify, cert, proxies and "
                    "adapters are used for the calls to the provider), or None"
                )
            if self.verify is not True:
                raise ConfigurationError(
                    "pass verify or session, not both: with a session, set its verify "
                    "(session.verify = '/path/to/ca-bundle.pem')"
                )

    def _nebius_federation(self, put: Callable[[str, object], None]) -> None:
        """A Nebius federation: the reference's request, byte for byte, and its cache key."""
        if self.device_authorization_endpoint is not None:
            raise ConfigurationError(
                "device_authorization_endpoint is for other OpenID providers (with "
                "FederationAuth.from_endpoints): a Nebius federation offers no device code"
            )
        if self.scopes != ("openid",) or self.params or self.client_secret is not None:
            raise ConfigurationError(
                "scopes, params and client_secret are for other OpenID providers: a Nebius "
                "federation is asked for scope openid and its federation-id only. For another "
                "provider use FederationAuth.from_issuer or FederationAuth.from_endpoints"
            )
        put("kind", "federation")
        put(
            "federation",
            federation_for(self.federation_endpoint, allow_insecure_http=self.allow_insecure_http),
        )
        put("cache_key", cache_key(self.federation_endpoint, self.federation_id, self.profile))

    def _other_provider(self, put: Callable[[str, object], None]) -> None:
        """Another OpenID provider: its endpoints given, or its issuer to discover them from."""
        if self.federation_endpoint or self.federation_id:
            raise ConfigurationError(
                "federation_endpoint and federation_id name a Nebius federation; another "
                "provider is named by its issuer or its endpoints (a federation-id it needs "
                "goes into params)"
            )
        insecure = self.allow_insecure_http
        if self.authorization_endpoint is not None or self.token_endpoint is not None:
            if self.authorization_endpoint is None or self.token_endpoint is None:
                raise ConfigurationError(
                    "pass both authorization_endpoint and token_endpoint (or an issuer alone, "
                    "to read them from its discovery document)"
                )
            federation: Optional[Federation] = provider_federation(
                authorization_endpoint=self.authorization_endpoint,
                token_endpoint=self.token_endpoint,
                revocation_endpoint=self.revocation_endpoint,
                issuer=self.issuer,
                allow_insecure_http=insecure,
                device_authorization_endpoint=self.device_authorization_endpoint,
            )
            put("kind", "endpoints")
        else:
            if self.revocation_endpoint is not None:
                raise ConfigurationError(
                    "revocation_endpoint goes with authorization_endpoint and token_endpoint; "
                    "with an issuer alone it comes from the discovery document"
                )
            if self.device_authorization_endpoint is not None:
                raise ConfigurationError(
                    "device_authorization_endpoint goes with authorization_endpoint and "
                    "token_endpoint; with an issuer alone it comes from the discovery document"
                )
            check_url(self.issuer, "issuer", allow_insecure_http=insecure, query=False)
            federation = None  # read from the discovery document when first needed
            put("kind", "discovery")
        put("federation", federation)
        put(
            "cache_key",
            provider_cache_key(
                self.client_id,
                self.profile,
                issuer=self.issuer,
                authorization_endpoint=None if federation is None else federation.authorize_url,
                token_endpoint=None if federation is None else federation.token_url,
                scopes=self.scopes,
                params=self.params,
            ),
        )

    @property
    def provider(self) -> str:
        """The provider as the user knows it: the federation endpoint as normalised, the
        issuer, or the authorization endpoint."""
        if self.federation is not None:
            return self.federation.endpoint
        assert self.issuer is not None
        return self.issuer
