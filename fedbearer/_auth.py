"""``FederationAuth``: the ``requests`` adapter.

``session.auth = FederationAuth(...)`` attaches ``Authorization: Bearer <token>`` to each
request, logging in lazily on first use and again when the token nears expiry or the API
answers 401. Renewal is single-flight: one lock per auth object, and a re-check after
taking it, so 64 threads with no token cause one login and 64 simultaneous 401s one renewal.
Across processes the token cache's login lock does the same.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, Optional, Union

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body

from . import _clock
from ._bearer import Bearer
from ._cache import NoTokenCache, TokenCache, default_cache, provider_cache
from ._challenge import bearer_error
from ._env_token import environment_token, read_token_variable
from ._exceptions import ConfigurationError, FedbearerError, InvalidGrantError
from ._keyring import KeyringTokenCache
from ._nebius_config import load_nebius_profile
from ._profiles import load_profiles
from ._protocol import is_loopback_host
from ._revocation import LogoutResult, revoke_all
from ._settings import DEFAULT_LOGIN_TIMEOUT, LoginSettings, Verify, require_issuer, test_guard
from ._token import DEFAULT_REFRESH_MARGIN, Seconds, Token, _seconds

if TYPE_CHECKING:
    from ._browser import Opener

log = logging.getLogger("fedbearer.auth")

#: Statuses that make the adapter renew the token and resend the request once (RFC 6750 §3.1).
REFRESH_STATUSES = (401,)
#: How many times one request is resent after a renewal. One: a second 401 is an answer.
MAX_RESENDS = 1

# Keyword arguments of FederationAuth that belong to the adapter, not the login settings.
_ADAPTER_OPTIONS = ("refresh_margin", "hosts", "cache", "token_from_env")

_DEFAULT_PORTS = {"http": "80", "https": "443"}


class _DefaultCache:
    """The type of :data:`DEFAULT_CACHE` (``None`` already means "no cache")."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


#: ``cache=`` default: the file shared with the Nebius CLI (:func:`~fedbearer.default_cache`).
DEFAULT_CACHE = _DefaultCache()

CacheSetting = Union[TokenCache, None, _DefaultCache]


def _cache_from(setting: CacheSetting, settings: LoginSettings) -> TokenCache:
    if isinstance(setting, _DefaultCache):
        if test_guard.user_cache:
            return NoTokenCache()  # a test never reads or writes the user's tokens
        # No I/O: the file is opened when a token is needed. Another provider's tokens are
        # not the Nebius CLI's business: they go into fedbearer's own file.
        return default_cache() if settings.kind == "federation" else provider_cache()
    if setting is None:
        return NoTokenCache()
    if not isinstance(setting, TokenCache):
        raise ConfigurationError(
            "cache must be a TokenCache (FileTokenCache, MemoryTokenCache, ...), None for "
            "no cache, or left out for the file shared with the Nebius CLI"
        )
    return setting


def _origin_of(url: str) -> str:
    """``scheme://host:port`` of a prepared URL, port always explicit.

    ``requests`` has already lower-cased the scheme and host of a prepared URL, so plain
    string work is enough here and far cheaper than a URL parser.
    """
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not netloc.endswith("]") and ":" in netloc:
        return f"{scheme}://{netloc}"
    return f"{scheme}://{netloc}:{_DEFAULT_PORTS.get(scheme, '')}"


@functools.lru_cache(maxsize=32)
def _origin_prefixes(origins: frozenset[str]) -> tuple[str, ...]:
    """URL prefixes that certainly belong to one of ``origins`` (``scheme://host[:port]/``).

    A prepared URL that starts with one of them has that origin; one that does not may still
    have it (user info, an explicit default port) and goes through :func:`_origin_of`.
    """
    prefixes = []
    for origin in origins:
        prefixes.append(origin + "/")
        scheme, _, netloc = origin.partition("://")
        default = f":{_DEFAULT_PORTS.get(scheme)}"
        if netloc.endswith(default):
            prefixes.append(f"{scheme}://{netloc[: -len(default)]}/")
    return tuple(prefixes)


@functools.lru_cache(maxsize=64)
def _is_loopback_http(origin: str) -> bool:
    """Whether ``scheme://host:port`` is plain HTTP to this machine (cached: a request to a
    loopback API asks this every time)."""
    scheme, _, netloc = origin.partition("://")
    return scheme == "http" and is_loopback_host(netloc.rpartition(":")[0])


def _parse_hosts(hosts: Optional[Iterable[str]]) -> Optional[frozenset[str]]:
    if hosts is None:
        return None
    if isinstance(hosts, str):
        hosts = [hosts]
    origins = set()
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError(f"hosts entries must be non-empty strings, not {host!r}")
        text = host.strip().lower()
        if "://" not in text:
            text = "https://" + text
        scheme, _, rest = text.partition("://")
        if scheme not in _DEFAULT_PORTS or not rest or "/" in rest.rstrip("/"):
            raise ConfigurationError(
                f"hosts entry {host!r} must be 'host', 'host:port' or 'scheme://host[:port]'"
            )
        origins.add(_origin_of(f"{scheme}://{rest.rstrip('/')}/"))
    if not origins:
        raise ConfigurationError("hosts is empty; pass None to send the token to any host")
    return frozenset(origins)


_Snapshot = tuple[Optional[Token], str, float]
# -inf: with no token, the first request always takes the renewal path.
_EMPTY: _Snapshot = (None, "", -math.inf)


def _copy_error(exc: FedbearerError) -> FedbearerError:
    """A copy of ``exc`` with the same message and attributes, and no traceback.

    ``copy.copy`` would call the constructor again with the formatted message as its
    first argument, and the message would be wrapped twice.
    """
    clone = exc.__class__.__new__(exc.__class__)
    clone.args = exc.args
    clone.__dict__.update(exc.__dict__)
    return clone


class FederationAuth(AuthBase):
    """Bearer-token auth for ``requests`` from an interactive federation login.

    ``session.auth = FederationAuth(client_id, federation_endpoint, federation_id)``. Nothing
    happens at construction; the first request that needs a token takes it from the token
    cache or runs the interactive login. Later requests reuse it until it is within
    ``refresh_margin`` of expiry (capped at half its lifetime; 0 means no margin), or until
    the API answers 401: then it is renewed (refresh token first, else one interactive
    login) and the request is resent once.

    ``hosts`` limits which origins receive the token (``"api.example.com"``,
    ``"https://api.example.com:8443"``; ``"http://..."`` only when named so); other requests
    pass untouched. Without it the token goes to any ``https://`` origin the session calls
    and to plain ``http://`` only on this machine (loopback): a plain-HTTP request elsewhere
    is sent without it, with one warning per origin. A 401 only counts when it comes from
    the origin the token was sent to, and ``requests`` drops the header on cross-host
    redirects.

    ``cache`` is where tokens persist between processes: by default the Nebius CLI's
    ``~/.nebius/credentials.yaml``; pass ``None`` to keep the token in this object only, or
    a :class:`~fedbearer.TokenCache`. The other options are those of :class:`~fedbearer.Bearer`.

    A ready token in the environment replaces all of that: when ``$FEDBEARER_TOKEN`` is set
    (else ``$NEBIUS_IAM_TOKEN``, the Nebius SDK's variable) as the object is built, that
    token is sent as it is, with no cache read or write, no refresh and no login, and a 401
    for it is returned to the caller with one warning (:attr:`token_variable` names the
    variable). The ``hosts`` and plain-HTTP rules still apply. A malformed value is a
    :class:`~fedbearer.ConfigurationError` naming the variable. ``token_from_env=False``
    never looks at the environment.

    Picklable (the lock is recreated and the in-memory token is left out on purpose: it is
    a secret, and the cache has it); compares by identity.
    """

    def __init__(
        self,
        client_id: str,
        federation_endpoint: str,
        federation_id: str,
        *,
        profile: str = "default",
        writer: Optional[IO[str]] = None,
        no_browser_open: bool = False,
        timeout: Optional[float] = DEFAULT_LOGIN_TIMEOUT,
        refresh_margin: Seconds = DEFAULT_REFRESH_MARGIN,
        hosts: Optional[Iterable[str]] = None,
        cache: CacheSetting = DEFAULT_CACHE,
        port: Optional[int] = None,
        opener: Optional[Opener] = None,
        verify: Verify = True,
        interactive: Optional[bool] = None,
        app_name: str = "fedbearer",
        allow_insecure_http: bool = False,
        preflight: bool = True,
        token_from_env: bool = True,
    ) -> None:
        bearer = Bearer(
            profile,
            client_id,
            federation_endpoint,
            federation_id,
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
        )
        self._setup(bearer, refresh_margin, hosts, cache, token_from_env)

    @classmethod
    def from_bearer(
        cls,
        bearer: Bearer,
        *,
        refresh_margin: Seconds = DEFAULT_REFRESH_MARGIN,
        hosts: Optional[Iterable[str]] = None,
        cache: CacheSetting = DEFAULT_CACHE,
        token_from_env: bool = True,
    ) -> FederationAuth:
        """Build the adapter around an existing :class:`~fedbearer.Bearer`."""
        if not isinstance(bearer, Bearer):
            raise ConfigurationError("from_bearer needs a fedbearer.Bearer")
        self = cls.__new__(cls)
        self._setup(bearer, refresh_margin, hosts, cache, token_from_env)
        return self

    @classmethod
    def from_nebius_profile(
        cls,
        profile: Optional[str] = None,
        *,
        client_id: str,
        config_file: str = "~/.nebius/config.yaml",
        **kwargs: Any,
    ) -> FederationAuth:
        """Build the adapter from a Nebius CLI profile with ``auth-type: federation``.

        ``federation-endpoint`` and ``federation-id`` come from ``config_file``; the profile
        is ``profile``, else ``$NEBIUS_PROFILE``, else the file's top-level ``default``, else
        its only profile. The client id is not stored there, so the caller gives it. The
        token is cached under that profile's name, as the Nebius CLI does. Other keyword
        arguments are those of :class:`FederationAuth`. Reads the file now (it is
        configuration, not a login) and raises :class:`~fedbearer.ConfigurationError`
        naming the file and the problem.
        """
        if "profile" in kwargs:
            raise ConfigurationError("pass the profile name as the first argument")
        chosen = load_nebius_profile(profile, config_file)
        return cls(
            client_id,
            chosen.federation_endpoint,
            chosen.federation_id,
            profile=chosen.name,
            **kwargs,
        )

    @classmethod
    def from_profile(
        cls, name: Optional[str] = None, *, profiles_file: Optional[str] = None, **kwargs: Any
    ) -> FederationAuth:
        """Build the adapter from a profile ``fedbearer login`` remembered.

        ``name`` is the profile (default: the one of the most recent ``fedbearer login``);
        its client id and its Nebius federation endpoint and id, or its issuer, scopes and
        extra parameters (``fedbearer login --issuer``, as :meth:`from_issuer`), come from
        fedbearer's profiles file (``~/.config/fedbearer/profiles.yaml`` on Linux; see
        :doc:`cli`), and so do ``--allow-insecure-http`` and ``--keyring`` (then
        ``cache`` is a :class:`~fedbearer.KeyringTokenCache`). Other keyword arguments are
        those of :class:`FederationAuth` and win over the file. Reads the file now and
        raises :class:`~fedbearer.ConfigurationError` naming it when the profile is not
        there.
        """
        if "profile" in kwargs:
            raise ConfigurationError("pass the profile name as the first argument")
        profiles = load_profiles(profiles_file)
        chosen = profiles.get(name)
        if chosen is None:
            wanted = f"profile {name!r}" if name is not None else "a default profile"
            raise ConfigurationError(
                f"{profiles.path} has no {wanted}; log in once with "
                "`fedbearer login --client-id … --federation-endpoint … --federation-id …"
                + (f" --profile {name}`" if name is not None else "`")
            )
        kwargs.setdefault("allow_insecure_http", chosen.allow_insecure_http)
        if chosen.keyring and "cache" not in kwargs:
            kwargs["cache"] = KeyringTokenCache()
        if chosen.issuer is not None:
            kwargs.setdefault("scopes", chosen.scopes)
            kwargs.setdefault("params", chosen.params)
            return cls.from_issuer(chosen.issuer, chosen.client_id, profile=chosen.name, **kwargs)
        return cls(
            chosen.client_id,
            chosen.federation_endpoint,
            chosen.federation_id,
            profile=chosen.name,
            **kwargs,
        )

    @classmethod
    def from_issuer(
        cls,
        issuer: str,
        client_id: str,
        *,
        scopes: Union[str, Iterable[str]] = ("openid",),
        params: Union[Mapping[str, str], Iterable[tuple[str, str]], None] = None,
        **options: Any,
    ) -> FederationAuth:
        """The adapter for any OpenID provider, its endpoints read from its discovery document.

        ``issuer`` is the provider's issuer identifier, exactly as the provider writes it
        (``https://keycloak.example.com/realms/main``, ``https://accounts.google.com``).
        Nothing is read at construction: the first login, refresh or logout that needs the
        endpoints reads ``<issuer>/.well-known/openid-configuration`` (OpenID Connect
        Discovery 1.0; RFC 8414's location when that one is missing) once for the process,
        and checks it (see :doc:`providers`). ``scopes`` (a sequence, or one string
        separated by spaces) replaces ``openid``; ``params`` are extra authorization request
        parameters (``prompt``, ``audience``, a ``federation-id``...). The other keyword
        arguments are those of :class:`FederationAuth` (``profile``, ``cache``, ``hosts``,
        ``timeout``, ...). By default tokens are cached in fedbearer's own file
        (``~/.cache/fedbearer/tokens.yaml`` on Linux), not the Nebius CLI's.
        """
        require_issuer(issuer)
        return cls._for_provider(client_id, options, scopes=scopes, params=params, issuer=issuer)

    @classmethod
    def from_endpoints(
        cls,
        client_id: str,
        *,
        authorization_endpoint: str,
        token_endpoint: str,
        scopes: Union[str, Iterable[str]] = ("openid",),
        params: Union[Mapping[str, str], Iterable[tuple[str, str]], None] = None,
        issuer: Optional[str] = None,
        revocation_endpoint: Optional[str] = None,
        **options: Any,
    ) -> FederationAuth:
        """:meth:`from_issuer` without discovery, for a provider that has no document.

        The URLs are used exactly as given. With ``issuer``, a callback's ``iss`` must
        equal it (RFC 9207); without it, a callback that carries ``iss`` is refused, since
        it cannot be checked. Without ``revocation_endpoint``, :meth:`logout` only forgets
        the tokens.
        """
        return cls._for_provider(
            client_id,
            options,
            scopes=scopes,
            params=params,
            issuer=issuer,
            authorization_endpoint=authorization_endpoint,
            token_endpoint=token_endpoint,
            revocation_endpoint=revocation_endpoint,
        )

    @classmethod
    def _for_provider(
        cls, client_id: str, options: dict[str, Any], **provider: Any
    ) -> FederationAuth:
        """Split ``options`` into the adapter's own and the login settings, build both."""
        own = {name: options.pop(name) for name in _ADAPTER_OPTIONS if name in options}
        settings = LoginSettings(client_id, **provider, **options)
        return cls.from_bearer(Bearer.from_settings(settings), **own)

    def _setup(
        self,
        bearer: Bearer,
        refresh_margin: Seconds,
        hosts: Optional[Iterable[str]],
        cache: CacheSetting,
        token_from_env: bool,
    ) -> None:
        if not isinstance(token_from_env, bool):
            raise ConfigurationError("token_from_env must be True or False")
        if isinstance(refresh_margin, bool) or not isinstance(
            refresh_margin, (int, float, timedelta)
        ):
            raise ConfigurationError("refresh_margin must be seconds or a timedelta")
        margin = _seconds(refresh_margin)
        if not math.isfinite(margin) or margin < 0:
            raise ConfigurationError("refresh_margin must be a finite number of seconds >= 0")
        self.bearer = bearer
        self.refresh_margin = margin
        self.hosts = _parse_hosts(hosts)
        #: Where tokens persist between processes (``cache=None``: a :class:`NoTokenCache`).
        self.cache = _cache_from(cache, bearer.settings)
        self._lock = threading.Lock()
        self._distrust_lock = threading.Lock()
        # Renewal attempts that failed, and the last failure: callers that were already
        # waiting when an attempt failed share its error instead of each opening a browser.
        self._failures = 0
        self._last_error: Optional[FedbearerError] = None
        # (token, header, renew_at) as one immutable snapshot, replaced whole, so the hot
        # path reads a consistent triple without a lock.
        self._current: _Snapshot = _EMPTY
        # A token that was rejected right after a renewal for a 401: the server rejects
        # even fresh tokens, so more 401s for it do not start more logins.
        self._distrusted = ""
        # Plain-HTTP origins already warned about (one warning each, not one per request).
        self._refused_origins: set[str] = set()
        # For a Nebius federation NEBIUS_IAM_TOKEN counts too, after FEDBEARER_TOKEN; another
        # OpenID provider's API must never be sent a Nebius token. Under the pytest plugin's
        # guard a test never sends a real token from the environment either.
        use_env = token_from_env and not test_guard.user_cache
        nebius = bearer.settings.kind == "federation"
        found = environment_token(nebius=nebius) if use_env else None
        #: The environment variable whose token this object sends (``FEDBEARER_TOKEN`` or
        #: ``NEBIUS_IAM_TOKEN``), or ``None`` when its tokens come from the cache or a login.
        self.token_variable: Optional[str] = None if found is None else found.variable
        if found is not None:
            # No expiry, so the hot path never renews it; a 401 for it is returned (see
            # _handle_401). Nothing else changes: hosts and the plain-HTTP rule still apply.
            self._install(found.token)
            log.debug("using the token from $%s; no cache, refresh or login", found.variable)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        del state["_distrust_lock"]
        state["_current"] = _EMPTY
        state["_distrusted"] = ""
        state["_failures"] = 0
        state["_last_error"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._distrust_lock = threading.Lock()

    def __repr__(self) -> str:
        b = self.bearer
        token = self._token
        if token is None:
            held = "none"
        elif token.expiration is None:
            held = "no expiry"
        else:
            held = f"until {token.expiration.isoformat(timespec='seconds')}"
        if self.token_variable is not None:
            held = f"from ${self.token_variable}"
        hosts = None if self.hosts is None else sorted(self.hosts)
        if b.settings.kind == "federation":
            who = f"federation_endpoint={b.settings.provider!r}, federation_id={b.federation_id!r}"
        else:
            who = f"provider={b.settings.provider!r}, scopes={b.settings.scopes!r}"
        return (
            f"FederationAuth(client_id={b.client_id!r}, {who}, profile={b.profile_name!r}, "
            f"hosts={hosts!r}, refresh_margin={self.refresh_margin:g}, token={held})"
        )

    # ------------------------------------------------------------------ the hot path

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        hosts = self.hosts
        url = r.url or ""
        if hosts is not None:
            # A prefix test first: most requests go to a configured host, and
            # str.startswith is several times cheaper than working out the origin.
            if not url.startswith(_origin_prefixes(hosts)) and _origin_of(url) not in hosts:
                return r
        elif not url.startswith("https://") and not self._plain_http_ok(url):
            return r
        token, header, renew_at = self._current
        if _clock.now() >= renew_at:
            header = self._renewed_header(token)
        r.headers["Authorization"] = header
        resent = [0]  # per request: redirect hops share this hook, not the instance

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            if response.status_code in REFRESH_STATUSES:
                # Looked up at 401 time, not per request: nothing to bind on the hot path.
                return self._handle_401(response, header, resent, kwargs)
            return response

        r.hooks["response"].append(on_response)
        return r

    def _plain_http_ok(self, url: str) -> bool:
        """Whether a request that is not ``https://`` may carry the token (``hosts`` unset).

        Only to this machine: a plain-HTTP origin elsewhere would expose the token to the
        network, so it must be named in ``hosts`` (RFC 6750 §5.3: TLS is mandatory).
        """
        origin = _origin_of(url)
        if _is_loopback_http(origin):
            return True
        if origin not in self._refused_origins:
            self._refused_origins.add(origin)
            log.warning(
                "not sending the token to %s: it is not https:// and not this machine; "
                "name it in FederationAuth(hosts=[...]) if plain HTTP there is intended",
                origin,
            )
        return False

    # ------------------------------------------------------------------ 401

    def _handle_401(
        self,
        response: requests.Response,
        sent_header: str,
        resent: list[int],
        send_kwargs: dict[str, Any],
    ) -> requests.Response:
        request = response.request
        if request.headers.get("Authorization") != sent_header:
            # Our token was not on this request: requests strips it on a redirect to
            # another host, so that host's 401 says nothing about our token.
            return response
        if resent[0] >= MAX_RESENDS or sent_header == self._distrusted:
            return response
        reason = bearer_error(response.headers.get("WWW-Authenticate"))
        if reason is not None:
            log.debug("401 challenge names %s: not about our token, not renewing", reason)
            return response
        if self.token_variable is not None:
            if self._distrust(sent_header):
                log.warning(
                    "%s %s refused (401) the token from $%s; a token from the environment "
                    "cannot be renewed (no cache, refresh or login), so the 401 is returned. "
                    "Set a valid token, or unset %s to log in instead",
                    request.method,
                    _origin_of(request.url or ""),
                    self.token_variable,
                    self.token_variable,
                )
            return response
        resent[0] += 1
        self._renew(sent_header[len("Bearer ") :], rejected=True)
        new_header = self._current[1]
        body: Any = request.body  # typed bytes | str, but requests passes files and generators
        if body is not None and not isinstance(body, (bytes, str)):
            try:
                # requests recorded the stream's position when it prepared the body.
                rewind_body(request)
            except UnrewindableBodyError:
                log.warning(
                    "got 401 for %s %s; the token was renewed but the request body is a "
                    "stream that cannot be rewound, so the request is not resent and the "
                    "401 is returned. Send bytes or a seekable file to have it resent",
                    request.method,
                    _origin_of(request.url or ""),
                )
                return response
        # As HTTPDigestAuth.handle_401: free the connection, copy the request, resend it
        # through the same adapter (no hooks, no redirects run again), keep the 401 in history.
        response.content  # noqa: B018 - read so the connection can be released
        response.close()
        retry = request.copy()
        extract_cookies_to_jar(retry._cookies, request, response.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = new_header
        connection = response.connection
        resent_response: requests.Response = connection.send(retry, **send_kwargs)
        resent_response.history.append(response)
        resent_response.request = retry
        if resent_response.status_code in REFRESH_STATUSES and self._distrust(new_header):
            # Even the new token is refused: renewing again would only open the browser
            # again. Keep it; its expiry, or a later token, ends this.
            log.warning(
                "%s %s was refused (401) with a fresh token too; not renewing again for it",
                request.method,
                _origin_of(request.url or ""),
            )
        return resent_response

    def _distrust(self, header: str) -> bool:
        """Stop renewing for 401s to ``header``; True only for the first caller to say so,
        so that the threads that were resent together log one warning between them."""
        with self._distrust_lock:
            first = self._distrusted != header
            self._distrusted = header
        return first

    # ------------------------------------------------------------------ renewal

    def logout(self) -> LogoutResult:
        """Revoke this identity's tokens at the provider, then forget them here and in the cache.

        When the provider has a revocation endpoint (RFC 7009), the refresh token is revoked
        first (§2.1: that SHOULD end the access tokens of its grant too), then the access
        token; both the token this object holds and the cache's, when they differ. Then the
        cache entry and the token in memory are removed, so the next request logs in again.
        A provider without a revocation endpoint (a Nebius federation, Entra ID) is not
        contacted: the result says so, and the tokens stay valid there until they expire.

        The local copies are removed even when revocation fails; the failure
        (:class:`~fedbearer.RevocationError`, :class:`~fedbearer.DiscoveryError`,
        :class:`~fedbearer.TokenEndpointError` when unreachable,
        :class:`~fedbearer.LoginTimeoutError`) is raised afterwards, since the tokens may
        then still work until they expire. Holds the renewal lock and the cache's login
        lock meanwhile, so no renewal here or in another process puts a token back halfway.

        A token from the environment (:attr:`token_variable`) is the environment's: it is
        neither revoked nor forgotten, and this object goes on sending it; only the cache
        entry is revoked and removed.
        """
        key = self.bearer.name
        settings = self.bearer.settings
        own = self._current[0] if self.token_variable is None else None
        with self._lock, self.cache.login_lock(key, settings.timeout):
            held = [token for token in (self.cache.get(key), own) if token is not None]
            try:
                result = revoke_all(settings, held)
            finally:
                self.cache.remove(key)
                if self.token_variable is None:
                    self._current = _EMPTY
                self._distrusted = ""
                self._failures = 0
                self._last_error = None
        return result

    def get_token(self) -> Token:
        """A valid token, logging in (or refreshing, or reading the cache) when needed."""
        token, _, renew_at = self._current
        if token is None or _clock.now() >= renew_at:
            self._renewed_header(token)
            token = self._current[0]
            if token is None:  # a concurrent 401 dropped it after we renewed: once more
                self._renew(None)
                token = self._current[0]
        assert token is not None
        return token

    @property
    def _token(self) -> Optional[Token]:
        return self._current[0]

    def _renewed_header(self, token: Optional[Token]) -> str:
        """Renew past ``token`` and return the header to send."""
        self._renew(token.token if token is not None else None)
        header = self._current[1]
        if not header:  # a concurrent 401 dropped the new token already: once more
            self._renew(None)
            header = self._current[1]
        return header

    def _usable(self, token: Optional[Token], stale: Optional[str]) -> bool:
        return (
            token is not None and token.token != stale and not token.is_expired(self.refresh_margin)
        )

    def _install(self, token: Token) -> None:
        self._current = (token, "Bearer " + token.token, token.renew_at(self.refresh_margin))

    def _renew(self, stale: Optional[str], *, rejected: bool = False) -> None:
        """Make ``self._token`` a usable token other than ``stale``.

        Single-flight: whoever takes the lock second finds the token already replaced
        and returns. Order: the cache (another process may have renewed), the refresh
        token, then one interactive login under the cache's cross-process login lock.
        """
        failures = self._failures
        with self._lock:
            current = self._current[0]
            if self._usable(current, stale):
                return
            if self._failures != failures and self._last_error is not None:
                # The attempt we queued behind failed: one attempt per need, so report it
                # rather than start another login for the same need.
                raise _copy_error(self._last_error)
            if rejected and current is not None and current.token == stale:
                # The API rejected it: never send it again, even if renewal fails below.
                self._current = _EMPTY
            try:
                self._install(self._obtain(current, stale))
            except FedbearerError as exc:
                self._failures += 1
                self._last_error = _copy_error(exc)  # without the traceback and its frames
                raise

    def _obtain(self, current: Optional[Token], stale: Optional[str]) -> Token:
        """A usable token: from the cache, by refresh, or by one interactive login.

        Everything after the first cache read happens under the cache's cross-process login
        lock, and the cache is read again once it is held: another process may have logged
        in or refreshed meanwhile (and, with rotating refresh tokens, sending the refresh
        token it already used would get the whole grant revoked). The new token is written
        before the lock is released, so a process that waited finds it.

        An object that sends a token from the environment has none only after unpickling
        (the token is left out of the pickle): it reads the same variable again, here.
        """
        if self.token_variable is not None:
            return self._token_from_env(self.token_variable)
        cache = self.cache
        key = self.bearer.name
        cached = cache.get(key)
        if cached is not None and self._usable(cached, stale):
            log.debug("using the token found in the cache")
            return cached
        with cache.login_lock(key, self.bearer.settings.timeout) as acquired:
            if not acquired:
                log.info("waited for another process's renewal without result; renewing here")
            cached = cache.get(key)
            if cached is not None and self._usable(cached, stale):
                log.debug("another process renewed the token; using it")
                return cached
            # The cache's refresh token is the newest one another process may have
            # rotated to; ours, when the cache has none.
            source = cached if cached is not None and cached.refresh_token else current
            token = self._refreshed(source)
            if token is None:
                token = self.bearer.receiver().fetch()
            cache.put(key, token)
            return token

    @staticmethod
    def _token_from_env(variable: str) -> Token:
        token = read_token_variable(variable)
        if token is None:
            raise ConfigurationError(
                f"this FederationAuth was built to send the token from ${variable}, but "
                f"{variable} is not set in this process; set it, or build the FederationAuth "
                "with token_from_env=False to log in"
            )
        return token

    def _refreshed(self, token: Optional[Token]) -> Optional[Token]:
        if token is None or not token.refresh_token:
            return None
        try:
            new = self.bearer.refresh(token)
        except FedbearerError as exc:
            if not self.bearer.settings.interactive and not isinstance(exc, InvalidGrantError):
                # No login can follow: report the federation's failure itself rather
                # than "interaction required", which would misstate an outage.
                raise
            # invalid_grant (expired, rotated, revoked) or any failure: one login instead.
            log.info("refresh failed (%s); falling back to a login", type(exc).__name__)
            return None
        log.debug("token renewed with the refresh token")
        return new
