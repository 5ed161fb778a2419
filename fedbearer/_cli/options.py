"""The ``fedbearer`` command line: its parser, and the settings the options resolve to.

Each identity setting comes from its option, else from ``--nebius-profile``, else from its
environment variable (:func:`resolve_identity`). The parser's errors raise
:class:`UsageError` instead of printing the usage and exiting, so that ``main`` reports
them as one line.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Optional

from .. import __version__
from .._cache import FileTokenCache, TokenCache, cache_key, provider_cache
from .._exceptions import ConfigurationError
from .._keyring import KeyringTokenCache
from .._nebius_config import DEFAULT_CONFIG_FILE as NEBIUS_CONFIG_FILE
from .._nebius_config import load_nebius_profile
from .._profiles import RememberedProfile, load_profiles, remember_profile
from .._protocol import authorization_params, check_url, normalize_endpoint, scope_tokens
from .._settings import DEFAULT_LOGIN_TIMEOUT, LoginSettings

CLIENT_ID_ENV = "FEDBEARER_CLIENT_ID"
ENDPOINT_ENV = "FEDBEARER_FEDERATION_ENDPOINT"
FEDERATION_ID_ENV = "FEDBEARER_FEDERATION_ID"
PROFILE_ENV = "FEDBEARER_PROFILE"
ISSUER_ENV = "FEDBEARER_ISSUER"
SCOPE_ENV = "FEDBEARER_SCOPE"

DEFAULT_PROFILE = "default"


class UsageError(Exception):
    """A bad command line; ``prog`` is the (sub)command it was given to."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and never exit, and
    that takes options only as spelt: ``--client`` is not ``--client-id`` (a prefix that
    works today would break the day another option starts the same way)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def did_you_mean(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[str, Optional[str]]:
    """For an unknown option: the (sub)command it was given to, and ``did you mean
    --client-id?`` when an option that command knows is close to the first unknown one."""
    command = parser
    options = _option_strings(parser)
    for arg in argv:
        if command is parser and arg in _subcommands(parser):
            command = _subcommands(parser)[arg]
            options = _option_strings(command)
            continue
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        if name in options:
            continue
        close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
        return command.prog, (f"did you mean {close[0]}?" if close else None)
    return command.prog, None


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number 0-65535: {text!r}")
    return int(text)


def _param(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text[:100]!r}")
    return name, value


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    return text


_EPILOG = """\
exit codes:
  0    success
  1    the login or the federation failed (refused, timed out, token endpoint error)
  2    usage or configuration error
  3    a login is needed but interaction is off (--non-interactive,
       FEDBEARER_INTERACTIVE=0, CI=true)
  130  interrupted (Ctrl-C)

Each setting comes from its option (or --nebius-profile), else the environment
(FEDBEARER_CLIENT_ID, FEDBEARER_FEDERATION_ENDPOINT, FEDBEARER_FEDERATION_ID,
FEDBEARER_ISSUER, FEDBEARER_SCOPE, FEDBEARER_PROFILE), else the profile 'fedbearer login'
remembered (--profile NAME, else the latest login), else the Nebius CLI's profile
($NEBIUS_PROFILE, else its default). After one 'fedbearer login ...', 'fedbearer token'
needs no options. A Nebius federation's tokens are cached in ~/.nebius/credentials.yaml,
shared with the Nebius CLI; another OpenID provider's (--issuer) in fedbearer's own
tokens.yaml in the user cache directory. 'fedbearer demo' shows the whole login on this
machine with no setup."""


def _identity_options() -> _Parser:
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("identity and cache")
    group.add_argument(
        "--client-id",
        metavar="ID",
        help=f"OAuth client id of your application [${CLIENT_ID_ENV}]",
    )
    group.add_argument(
        "--federation-endpoint",
        metavar="URL",
        help=f"federation address; https:// is assumed without a scheme [${ENDPOINT_ENV}]",
    )
    group.add_argument(
        "--federation-id",
        metavar="ID",
        help=f"federation id, sent as federation-id ('' for none) [${FEDERATION_ID_ENV}]",
    )
    group.add_argument(
        "--issuer",
        metavar="URL",
        help=(
            "another OpenID provider, by its issuer (discovery gives its endpoints) "
            f"[${ISSUER_ENV}]"
        ),
    )
    group.add_argument(
        "--scope",
        metavar="SCOPES",
        action="append",
        help=(
            "with --issuer: the scopes to ask for, 'a b c' or repeated (default: openid) "
            f"[${SCOPE_ENV}]"
        ),
    )
    group.add_argument(
        "--param",
        metavar="NAME=VALUE",
        type=_param,
        action="append",
        help="with --issuer: an extra authorization request parameter (repeatable)",
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        help=(
            "profile name in the token cache (default: the --nebius-profile name, else "
            f"'{DEFAULT_PROFILE}') [${PROFILE_ENV}]"
        ),
    )
    group.add_argument(
        "--nebius-profile",
        metavar="NAME",
        help="take the endpoint and federation id from this profile of ~/.nebius/config.yaml",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help=(
            "accept plain http:// to another machine (code and tokens then cross the "
            "network unencrypted)"
        ),
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--cache-file",
        metavar="PATH",
        type=_path,
        help=(
            "token cache file (default: ~/.nebius/credentials.yaml, the Nebius CLI's; "
            "with --issuer, fedbearer's own tokens.yaml)"
        ),
    )
    where.add_argument(
        "--keyring",
        action="store_true",
        default=None,
        help=("keep tokens in the OS keyring, not a file (fedbearer[keyring]); login remembers it"),
    )
    group.add_argument(
        "--no-env-token",
        dest="env_token",
        action="store_false",
        help="ignore FEDBEARER_TOKEN and NEBIUS_IAM_TOKEN (by default a token there is used)",
    )
    return parser


def _login_options(*, non_interactive: bool = True) -> _Parser:
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("login")
    group.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser; only show the login URL",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_LOGIN_TIMEOUT,
        help="give up on the login after this long (default: %(default)g)",
    )
    group.add_argument(
        "--port",
        metavar="PORT",
        type=_port,
        help=(
            "fixed callback port on 127.0.0.1, e.g. for ssh -L (default: "
            "$FEDBEARER_CALLBACK_PORT, else any)"
        ),
    )
    group.add_argument(
        "--no-preflight",
        dest="preflight",
        action="store_false",
        help="skip the quick check of the endpoint and client id",
    )
    # Two flags, not a mutually exclusive group: argparse moves such a group out of the
    # "login" section when the parser is used as a parent. The last one given wins.
    group.add_argument(
        "--device-code",
        action="store_true",
        default=None,
        help="log in with a code typed into any browser (RFC 8628)",
    )
    group.add_argument(
        "--no-device-code",
        dest="device_code",
        action="store_false",
        help="never log in with a code, only through a browser here",
    )
    if non_interactive:
        group.add_argument(
            "--non-interactive",
            action="store_true",
            help=(
                "never start a login: exit 3 when no usable token is cached (cron, CI; "
                "also FEDBEARER_INTERACTIVE=0)"
            ),
        )
    return parser


_DEBUG_HELP = "log what happens (DEBUG, to stderr; never tokens) and show tracebacks"


def _debug_option() -> _Parser:
    parser = _Parser(add_help=False)
    # SUPPRESS: given after the command it sets args.debug; not given, it leaves the
    # value the main parser's --debug set (before the command), so both places work.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


#: ``fedbearer token --format exec-credential``: what a kubeconfig ``exec`` plugin prints.
EXEC_CREDENTIAL = "exec-credential"


def _format_option(*, exec_credential: bool = False) -> _Parser:
    parser = _Parser(add_help=False)
    more = "; exec-credential: for kubectl" if exec_credential else ""
    parser.add_argument(
        "--format",
        choices=("text", "json", EXEC_CREDENTIAL) if exec_credential else ("text", "json"),
        default="text",
        help=f"json: one JSON object on stdout, for scripts{more} (default: text)",
    )
    return parser


_SHORT_EPILOG = (
    "Settings, their environment variables and the exit codes: fedbearer --help. "
    "docs/cli.rst has the details."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fedbearer`` argument parser; ``args.command`` names the command given.

    Its errors raise :class:`UsageError` instead of exiting.
    """
    parser = _Parser(
        prog="fedbearer",
        description=textwrap.fill(
            "Interactive OAuth 2.0 federation login (authorization code + PKCE, loopback "
            "redirect), compatible with the Nebius CLI's token cache.",
            80,
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    identity, login, debug = _identity_options(), _login_options(), _debug_option()
    output = _format_option()

    def command(name: str, summary: str, description: str, *parents: _Parser) -> None:
        commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 80),
            epilog=textwrap.fill(_SHORT_EPILOG, 80),
            parents=list(parents),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command(
        "login",
        "log in (or reuse a valid cached token) and show the profile and expiry",
        "Log in through the browser and store the token in the cache; reuse the cached "
        "token when it is still valid, renew it with its refresh token when it can. Shows "
        "the profile, federation and expiry, never the token.",
        identity,
        login,
        debug,
    )
    command(
        "token",
        "print a valid access token on stdout, logging in if needed",
        "Print a valid access token, and nothing else, on stdout, for example "
        '`curl -H "Authorization: Bearer $(fedbearer token)" ...`. Logs in (messages on '
        "stderr) when the cache has no valid or refreshable token. With --format json, "
        "one JSON object with the token and its expiry instead (exec-credential: for "
        "kubectl, docs/cli.rst).",
        identity,
        login,
        _format_option(exec_credential=True),
        debug,
    )
    command(
        "logout",
        "remove the cached token of a profile (and revoke it, with --issuer)",
        "Remove the profile's token from the cache. A Nebius federation is not contacted: "
        "the token stays valid there until it expires. Another OpenID provider (--issuer) "
        "is asked first to revoke the tokens, when it has a revocation endpoint.",
        identity,
        debug,
    )
    command(
        "status",
        "list the cached tokens and their expiry (never the tokens)",
        "List the profiles fedbearer login remembered, and every entry of the token caches "
        "(the Nebius CLI's file and fedbearer's own, unless --cache-file or --keyring) with "
        "its expiry and whether it has a refresh token; '*' marks the configured profile. "
        "Tokens are never shown.",
        identity,
        output,
        debug,
    )
    command(
        "demo",
        "run a complete login against a local federation (no setup, no network)",
        "Start a local federation, log in through the real loopback server (in your "
        "browser when there is one, else approved in-process), call a protected API with "
        "a requests session using FederationAuth, force a renewal, and explain each step. "
        "Uses a temporary token cache: your credentials are not touched.",
        _login_options(non_interactive=False),
        debug,
    )
    return parser


@dataclass(frozen=True)
class Identity:
    """Whose token a command works on: the provider, the client and the profile.

    A Nebius federation (``federation_endpoint`` and ``federation_id``) or, when
    ``issuer`` is set, another OpenID provider with its ``scopes`` and ``params``
    (normalised as :class:`~fedbearer.LoginSettings` normalises them, so :attr:`key` is
    the key the library uses).
    """

    client_id: Optional[str]
    profile: str
    federation_endpoint: str = ""
    federation_id: str = ""
    issuer: Optional[str] = None
    scopes: tuple[str, ...] = ("openid",)
    params: tuple[tuple[str, str], ...] = ()
    allow_insecure_http: bool = False
    keyring: bool = False
    #: ``--device-code`` / ``--no-device-code``, else the remembered choice; ``None``: auto.
    device_code: Optional[bool] = None

    @functools.cached_property
    def key(self) -> str:
        """The token cache key (:func:`~fedbearer.cache_key` or the provider key)."""
        if self.issuer is None:
            return cache_key(self.federation_endpoint, self.federation_id, self.profile)
        assert self.client_id is not None  # resolve_identity requires it with an issuer
        return self.settings().cache_key

    def settings(self) -> LoginSettings:
        """Another provider's :class:`~fedbearer.LoginSettings`, as the library makes them
        (so the key is the library's, not a copy of its rule). Interaction and the port are
        fixed here, so that no environment variable is read for them."""
        assert self.client_id is not None and self.issuer is not None
        return LoginSettings(
            self.client_id,
            profile=self.profile,
            issuer=self.issuer,
            scopes=self.scopes,
            params=self.params,
            allow_insecure_http=self.allow_insecure_http,
            interactive=False,
            port=0,
        )

    def describe(self, granted: Optional[tuple[str, ...]] = None) -> str:
        """The profile and provider; for an issuer, the scopes ``granted`` when known (what
        the token carries), else those requested."""
        if self.issuer is not None:
            scopes = self.scopes if granted is None else granted
            return f"profile '{self.profile}' at {self.issuer} (scope {' '.join(scopes)})"
        fid = f"federation {self.federation_id}" if self.federation_id else "no federation id"
        return f"profile '{self.profile}' at {self.federation_endpoint} ({fid})"


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name, "").strip()
    return value or None  # an empty variable counts as unset


def identity_from(args: argparse.Namespace, *, need_client_id: bool) -> Identity:
    """The identity the options describe; :class:`ConfigurationError` when one is missing."""
    identity = resolve_identity(args, need_client_id=need_client_id, required=True)
    assert identity is not None
    return identity


def resolve_identity(
    args: argparse.Namespace, *, need_client_id: bool, required: bool
) -> Optional[Identity]:
    """The identity the command works on; each setting from the first source that has it.

    1. the options (``--nebius-profile NAME`` counts as one: it names where the endpoint
       and federation id come from);
    2. the ``FEDBEARER_*`` environment variables;
    3. the profile ``fedbearer login`` remembered (``--profile NAME``, else the most recent
       login's), in fedbearer's profiles file;
    4. the Nebius CLI's own profile (``$NEBIUS_PROFILE``, else its ``default:``), so a
       Nebius CLI user needs only ``--client-id``.

    The provider is named as a whole by the first source that names one: ``--issuer`` (or
    ``$FEDBEARER_ISSUER``) for another OpenID provider, the federation options (or
    variables) for a Nebius federation; naming both in one place is an error. Scopes and
    extra parameters go with an issuer only; a remembered profile of the same issuer
    supplies those not given.

    The profile name: ``--profile``, ``$FEDBEARER_PROFILE``, the ``--nebius-profile`` name,
    the remembered default (only when no provider was given: a provider given alone means
    the ``default`` profile), the Nebius CLI's, else ``default``. With ``required=False``,
    ``None`` when the identity is not fully configured.
    """
    explicit = None
    if args.nebius_profile is not None:
        explicit = load_nebius_profile(args.nebius_profile)
    federation_options = (
        args.federation_endpoint is not None
        or args.federation_id is not None
        or explicit is not None
    )
    if args.issuer is not None and federation_options:
        raise ConfigurationError(
            "--issuer names another OpenID provider, while --federation-endpoint, "
            "--federation-id and --nebius-profile name a Nebius federation; give one or "
            "the other"
        )
    client_id = _first(args.client_id, _env(CLIENT_ID_ENV))
    profile = _first(args.profile, _env(PROFILE_ENV), None if explicit is None else explicit.name)
    # Repeated --scope options add up: --scope openid --scope profile asks for both.
    scope: Optional[str] = None if args.scope is None else " ".join(args.scope)
    scope_source = "--scope"
    if scope is None and _env(SCOPE_ENV) is not None:
        scope, scope_source = _env(SCOPE_ENV), SCOPE_ENV
    params: Optional[list[tuple[str, str]]] = args.param
    insecure = args.allow_insecure_http
    keyring = bool(args.keyring)
    device_code: Optional[bool] = getattr(args, "device_code", None)
    issuer: Optional[str] = None
    endpoint: Optional[str] = None
    federation_id: Optional[str] = None
    if args.issuer is not None:
        issuer, issuer_source = args.issuer, "--issuer"
    elif federation_options:
        endpoint = _first(
            args.federation_endpoint,
            None if explicit is None else explicit.federation_endpoint,
            _env(ENDPOINT_ENV),
        )
        federation_id = _first(
            args.federation_id,
            None if explicit is None else explicit.federation_id,
            _env(FEDERATION_ID_ENV),
        )
    else:
        issuer, endpoint = _env(ISSUER_ENV), _env(ENDPOINT_ENV)
        issuer_source = ISSUER_ENV
        federation_id = _env(FEDERATION_ID_ENV)
        if issuer is not None and (endpoint is not None or federation_id is not None):
            other = ENDPOINT_ENV if endpoint is not None else FEDERATION_ID_ENV
            raise ConfigurationError(
                f"both {ISSUER_ENV} and {other} are set, naming two kinds of provider; unset "
                "one, or pass --issuer or --federation-endpoint"
            )
    named = issuer is not None or endpoint is not None
    found_profile = False
    # A profile given by name is always read: what it remembers for the same provider (its
    # client id, scopes, parameters, keyring choice) fills what was not given here.
    federation_incomplete = issuer is None and federation_id is None
    if profile is not None or client_id is None or not named or federation_incomplete:
        profiles = load_profiles()
        # A provider given alone names no remembered profile: it means "default".
        name = profile if profile is not None or named else profiles.default
        remembered = profiles.get(name) if name is not None else None
        found_profile = remembered is not None
        if remembered is not None:
            profile = remembered.name
            if not named:
                if remembered.issuer is not None and federation_id is not None:
                    given = (
                        "--federation-id" if args.federation_id is not None else FEDERATION_ID_ENV
                    )
                    raise ConfigurationError(
                        f"{given} names a Nebius federation, but profile {profile!r} in "
                        f"{profiles.path} is for the OpenID provider {remembered.issuer}; "
                        "pass --federation-endpoint too, or another --profile"
                    )
                issuer = remembered.issuer
                issuer_source = f"{profiles.path}: {profile}.issuer"
                endpoint = None if issuer is not None else remembered.federation_endpoint
                insecure = insecure or remembered.allow_insecure_http
            # The same kind of provider (for an issuer, the same issuer): a client id
            # registered at another provider would be refused there, or worse, accepted.
            if issuer is None and remembered.issuer is None:
                client_id = _first(client_id, remembered.client_id or None)
                federation_id = _first(federation_id, remembered.federation_id)
                same = True
            else:
                same = issuer is not None and issuer == remembered.issuer
            if same and issuer is not None:
                client_id = _first(client_id, remembered.client_id or None)
                if scope is None:
                    scope, scope_source = " ".join(remembered.scopes), str(profiles.path)
                if params is None:
                    params = list(remembered.params)
            if same and args.keyring is None and args.cache_file is None:
                keyring = remembered.keyring
            if same and device_code is None:
                device_code = remembered.device_code
    if (
        issuer is None
        and endpoint is None
        and explicit is None
        and os.path.exists(os.path.expanduser(NEBIUS_CONFIG_FILE))
    ):
        nebius = load_nebius_profile(None)
        endpoint = nebius.federation_endpoint
        federation_id = _first(federation_id, nebius.federation_id)
        profile = _first(profile, nebius.name)
    profile = _first(profile, DEFAULT_PROFILE)
    assert profile is not None
    if not profile.strip():
        raise ConfigurationError("the profile name is empty; pass --profile NAME")
    if issuer is not None:
        return _issuer_identity(
            (issuer, issuer_source),
            client_id,
            profile,
            scope=(scope, scope_source),
            params=params,
            insecure=insecure,
            keyring=keyring,
            required=required,
            device_code=device_code,
        )
    if not endpoint or not endpoint.strip():
        if not required:
            return None
        if not named and federation_id is None and not found_profile:
            raise ConfigurationError(
                "not logged in yet, and no provider is configured: run 'fedbearer login' "
                "first, with --client-id ID and either --issuer URL (an OpenID provider) or "
                "--federation-endpoint URL --federation-id ID (a Nebius federation); it "
                "remembers them, so that later commands need no options"
            )
        raise ConfigurationError(
            "no federation endpoint: pass --federation-endpoint URL (once: fedbearer login "
            f"remembers it), set {ENDPOINT_ENV}, or use --nebius-profile NAME; for another "
            "OpenID provider, --issuer URL"
        )
    if federation_id is None:
        if not required:
            return None
        raise ConfigurationError(
            "no federation id: pass --federation-id ID ('' for none), set "
            f"{FEDERATION_ID_ENV}, or use --nebius-profile NAME"
        )
    if scope is not None or params is not None:
        given = "--param" if scope is None else scope_source
        raise ConfigurationError(
            f"{given} is for another OpenID provider (--issuer URL); a Nebius federation is "
            "always asked for scope openid and its federation id"
        )
    if need_client_id and (client_id is None or not client_id.strip()):
        raise ConfigurationError(
            f"no client id: pass --client-id ID (once: fedbearer login remembers it) or set "
            f"{CLIENT_ID_ENV} (the OAuth client id of your application)"
        )
    # A bad endpoint, id or profile is a usage error before anything runs.
    normalize_endpoint(endpoint, allow_insecure_http=insecure)
    cache_key(endpoint, federation_id, profile)
    return Identity(
        client_id,
        profile,
        federation_endpoint=endpoint,
        federation_id=federation_id,
        allow_insecure_http=insecure,
        keyring=keyring,
        device_code=device_code,
    )


def _issuer_identity(
    named: tuple[str, str],
    client_id: Optional[str],
    profile: str,
    *,
    scope: tuple[Optional[str], str],
    params: Optional[list[tuple[str, str]]],
    insecure: bool,
    keyring: bool,
    required: bool,
    device_code: Optional[bool] = None,
) -> Optional[Identity]:
    """Another OpenID provider's identity, checked as :class:`~fedbearer.LoginSettings`
    checks it, each error naming where the value came from (``named`` is the issuer and
    that place). Its cache key holds the client id, so the client id is always needed."""
    issuer, source = named
    # First: a malformed issuer (a line break from a variable, say) never reaches a message.
    check_url(issuer, source, allow_insecure_http=insecure, query=False)
    if client_id is None or not client_id.strip():
        if not required:
            return None
        raise ConfigurationError(
            f"no client id: pass --client-id ID (once: fedbearer login remembers it) or set "
            f"{CLIENT_ID_ENV} (the client id registered at {issuer[:200]})"
        )
    text, source = scope
    try:
        scopes = scope_tokens("openid" if text is None else text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None
    try:
        pairs = authorization_params(params)
    except ConfigurationError as exc:
        raise ConfigurationError(f"--param: {exc}") from None
    identity = Identity(
        client_id,
        profile,
        issuer=issuer,
        scopes=scopes,
        params=pairs,
        allow_insecure_http=insecure,
        keyring=keyring,
        device_code=device_code,
    )
    identity.key  # noqa: B018 - a profile the key cannot hold is a usage error now
    return identity


def _first(*values: Optional[str]) -> Optional[str]:
    """The first value that is not ``None`` (an empty federation id is a value)."""
    for value in values:
        if value is not None:
            return value
    return None


def remember(identity: Identity) -> str:
    """Record the identity as its profile, the default from now on; the file's path."""
    assert identity.client_id is not None
    return remember_profile(
        RememberedProfile(
            identity.profile,
            identity.client_id,
            identity.federation_endpoint,
            identity.federation_id,
            identity.allow_insecure_http,
            identity.keyring,
            issuer=identity.issuer,
            scopes=identity.scopes,
            params=identity.params,
            device_code=identity.device_code,
        )
    )


def cache_from(args: argparse.Namespace, identity: Optional[Identity] = None) -> TokenCache:
    """The OS keyring when ``--keyring`` (or the remembered profile) chose it; else the file
    ``--cache-file`` names; else, as in the library, ``~/.nebius/credentials.yaml`` for a
    Nebius federation and fedbearer's own file for another provider."""
    if args.keyring or (identity is not None and identity.keyring):
        return KeyringTokenCache()
    if args.cache_file is None and identity is not None and identity.issuer is not None:
        return provider_cache()
    return FileTokenCache(args.cache_file)


#: How the command line spells the settings that library messages name.
FLAGS = {
    "client_id": "--client-id",
    "federation_endpoint": "--federation-endpoint",
    "federation_id": "--federation-id",
    "issuer": "--issuer",
    "authorization_endpoint": "--issuer",
    "token_endpoint": "--issuer",
    "scopes": "--scope",
    "params": "--param",
    "profile": "--profile",
    "timeout": "--timeout",
    "port": "--port",
    "allow_insecure_http": "--allow-insecure-http",
    "preflight": "--no-preflight",
    "verify": "REQUESTS_CA_BUNDLE",
    "proxies": "HTTPS_PROXY, NO_PROXY",
    "without_document": "",  # the command line has no way to give the endpoints
    "cache": "--cache-file",
    "device_code_on": "--device-code",
    "device_code_off": "--no-device-code",
}


def flag(name: str) -> str:
    """The option (or variable) of the command line for a library setting ``name``."""
    return FLAGS.get(name, name)


def describe_cache(cache: TokenCache) -> str:
    """Where the cache keeps tokens, for messages: a file's path, or the keyring."""
    if isinstance(cache, FileTokenCache):
        return cache.path
    if isinstance(cache, KeyringTokenCache):
        return f"the OS keyring (service '{cache.service}')"
    return repr(cache)
