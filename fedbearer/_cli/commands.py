"""The ``fedbearer`` commands, one function each, and :func:`main`, which runs one.

``main`` turns what a command raises into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any, Callable, Optional, cast

from .. import _clock, _cooldown
from .._bearer import Bearer
from .._cache import TokenCache, default_cache, provider_cache
from .._credentials import Credentials
from .._env_token import environment_token
from .._exceptions import ConfigurationError, FedbearerError, InteractionRequiredError
from .._interrupts import caused_by_interrupt
from .._keyring import KeyringTokenCache
from .._profiles import load_profiles
from .._settings import LoginSettings
from .._token import Account, Token
from .options import (
    EXEC_CREDENTIAL,
    Identity,
    UsageError,
    build_parser,
    cache_from,
    describe_cache,
    did_you_mean,
    flag,
    identity_from,
    remember,
    resolve_identity,
)
from .output import (
    Progress,
    debug_logging,
    expiry,
    hint,
    interaction_required,
    printable,
    progress_for,
    report,
    show_warning,
    subject,
)

EXIT_OK = 0
#: The login or the federation failed; a demo step failed; an unexpected error.
EXIT_FAILURE = 1
#: Bad command line or configuration.
EXIT_USAGE = 2
#: A login is needed but ``--non-interactive`` / ``FEDBEARER_INTERACTIVE=0`` forbids it.
EXIT_INTERACTION_REQUIRED = 3
#: Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class _Failure(FedbearerError):
    """A step of a command failed in a way that is not a library error (exit status 1)."""


def _credentials(
    args: argparse.Namespace,
    identity: Identity,
    cache: TokenCache,
    writer: Optional[Progress] = None,
    *,
    env_token: bool,
) -> Credentials:
    """The token core for ``identity``; a command without login options (``logout``) never
    logs in.

    The core, not a ``FederationAuth``: a command sends no HTTP request of its own, and a
    cached ``fedbearer token`` must not import an HTTP library (``docs/performance.rst``).
    It builds the same :class:`LoginSettings` the ``FederationAuth`` constructors build.
    """
    assert identity.client_id is not None
    options: dict[str, Any] = {
        "profile": identity.profile,
        "allow_insecure_http": identity.allow_insecure_http,
    }
    if writer is not None:
        options.update(
            writer=cast(IO[str], writer),
            no_browser_open=args.no_browser,
            timeout=args.timeout,
            port=args.port,
            # None leaves it to FEDBEARER_INTERACTIVE; the flag can only turn logins off.
            interactive=False if args.non_interactive else None,
            preflight=args.preflight,
            device_code=identity.device_code,
        )
    else:
        options["interactive"] = False
    if identity.issuer is not None:
        settings = LoginSettings(
            identity.client_id,
            issuer=identity.issuer,
            scopes=identity.scopes,
            params=identity.params,
            **options,
        )
    else:
        settings = LoginSettings(
            identity.client_id,
            identity.federation_endpoint,
            identity.federation_id,
            **options,
        )
    return Credentials(Bearer.from_settings(settings), cache=cache, token_from_env=env_token)


def _obtain(
    args: argparse.Namespace,
    identity: Identity,
    cache: TokenCache,
    *,
    env_token: bool = True,
    explicit: bool = False,
) -> tuple[Token, str]:
    """A valid token and how it was obtained: ``cached``, ``refreshed``, ``login`` or
    ``environment`` (``FEDBEARER_TOKEN`` / ``NEBIUS_IAM_TOKEN``, unless ``env_token`` is
    off or ``--no-env-token`` was given). An ``explicit`` login (``fedbearer login``) runs
    within the cool-down after an abandoned one too."""
    with progress_for(sys.stderr, no_browser=args.no_browser, debug=args.debug) as progress:
        credentials = _credentials(
            args, identity, cache, progress, env_token=env_token and args.env_token
        )
        if explicit:
            credentials.lazy_logins = False
        if credentials.token_variable is not None:
            return credentials.get_token(), "environment"
        before = cache.get(credentials.bearer.name)
        token = credentials.get_token()
    if before is not None and token == before:
        return token, "cached"
    return token, "login" if progress.started else "refreshed"


def environment_token_name(identity: Optional[Identity] = None) -> Optional[str]:
    """The token variable set in this environment for ``identity``, if any (its value is
    never read out): ``NEBIUS_IAM_TOKEN`` counts for a Nebius federation only."""
    try:
        found = environment_token(nebius=identity is None or identity.issuer is None)
    except ConfigurationError:
        return None  # reported where the token is used
    return None if found is None else found.variable


def _cmd_login(args: argparse.Namespace) -> int:
    identity = identity_from(args, need_client_id=True)
    cache = cache_from(args, identity)
    # An explicit login always runs: a login abandoned moments ago holds back only the
    # logins that start by themselves (fedbearer token, FederationAuth).
    _cooldown.clear(identity.key)
    # An explicit login logs in: a token in the environment is not what it is asked for.
    token, how = _obtain(args, identity, cache, env_token=False, explicit=True)
    # Remembered once the login worked: later commands need no options (or --profile).
    remember(identity)
    who = token.account.label if token.account is not None else subject(token.token)
    as_who = f" as {who}" if who else ""
    renewable = ", with a refresh token" if token.refresh_token else ""
    described = identity.describe(token.scope)
    if how == "cached":
        print(
            f"Already logged in{as_who}: {described}; the cached token is "
            f"{expiry(token)}{renewable}. ('fedbearer logout' forgets it.)"
        )
    else:
        verb = "Logged in" if how == "login" else "Renewed the token with its refresh token"
        print(
            f"{verb}{as_who}: {described}; token {expiry(token)}{renewable}; "
            f"saved in {describe_cache(cache)}."
        )
    variable = environment_token_name(identity)
    if variable is not None:
        print(
            f"Note: ${variable} is set in this shell, so fedbearer token and FederationAuth "
            "here send that token, not this login's (unset it, or pass --no-env-token).",
            file=sys.stderr,
        )
    return EXIT_OK


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """For the duration, file descriptor 1 and ``sys.stdout`` both lead to stderr.

    ``fedbearer token``'s stdout is for the token alone, and ``$(fedbearer token)`` reads
    it to its end. A browser launched during the login inherits descriptor 1: Chrome
    prints "Opening in existing browser session." to it, and a browser process that lives
    on would hold the pipe open, and the command substitution with it. Both are restored
    on the way out, whatever ends the block (an error, Ctrl-C).
    """
    saved_stdout = sys.stdout
    with contextlib.suppress(Exception):
        saved_stdout.flush()
    saved_fd: Optional[int] = None
    # Not inheritable: no child gets the real stdout through the copy. No descriptor 1 at
    # all (OSError): nothing a child could write to.
    with contextlib.suppress(OSError):
        saved_fd = os.dup(1)
    try:
        if saved_fd is not None:
            try:
                os.dup2(2, 1)
            except OSError:  # no stderr either: the browser's chatter goes nowhere
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 1)
                finally:
                    os.close(devnull)
        if sys.stderr is not None:
            sys.stdout = sys.stderr
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stdout = saved_stdout
        if saved_fd is not None:
            try:
                os.dup2(saved_fd, 1)
            finally:
                os.close(saved_fd)


def _cmd_token(args: argparse.Namespace) -> int:
    identity = identity_from(args, need_client_id=True)
    cache = cache_from(args, identity)
    with _stdout_to_stderr():
        token, how = _obtain(args, identity, cache)
    if how not in ("cached", "environment"):
        verb = "Logged in" if how == "login" else "Renewed the token"
        print(f"{verb}: {identity.describe()}; token {expiry(token)}.", file=sys.stderr)
    if args.format == EXEC_CREDENTIAL:
        sys.stdout.write(json.dumps(exec_credential(token)) + "\n")
    elif args.format == "json":
        expires_at = token.expires_at
        document = {
            "access_token": token.token,
            "token_type": "Bearer",
            "expires_at": None if expires_at is None else int(expires_at),
            "expires_in": None if expires_at is None else max(0, int(expires_at - _clock.now())),
            "profile": identity.profile,
            "scope": None if token.scope is None else " ".join(token.scope),
        }
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        sys.stdout.write(token.token + "\n")
    sys.stdout.flush()
    return EXIT_OK


#: The Kubernetes API version of :func:`exec_credential`'s answer.
EXEC_CREDENTIAL_API = "client.authentication.k8s.io/v1"


def exec_credential(token: Token) -> dict[str, Any]:
    """``token`` as a Kubernetes ``ExecCredential`` (client.authentication.k8s.io/v1): what
    a kubeconfig ``exec`` credential plugin prints. ``expirationTimestamp`` (RFC 3339, UTC)
    tells kubectl when to run the plugin again; without it kubectl keeps the token until a
    401, so it is left out only for a token that states no expiry."""
    status: dict[str, Any] = {"token": token.token}
    if token.expiration is not None:
        status["expirationTimestamp"] = token.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": EXEC_CREDENTIAL_API, "kind": "ExecCredential", "status": status}


def _cmd_logout(args: argparse.Namespace) -> int:
    identity = identity_from(args, need_client_id=False)
    cache = cache_from(args, identity)
    where = describe_cache(cache)
    if identity.issuer is not None:
        return _revoke_and_forget(args, identity, cache)

    def present() -> bool:
        return any(key == identity.key for key, _ in cache.entries())

    if not present():
        print(
            f"Not logged in: no cached token for {identity.describe()} in {where}; "
            "nothing to remove."
        )
        return EXIT_OK
    cache.remove(identity.key)
    if present():
        raise _Failure(
            f"could not remove the token of {identity.describe()} from {where} "
            "(see the warning above)"
        )
    print(
        f"Logged out: removed the cached token of {identity.describe()} from {where}. "
        "The federation was not contacted (its protocol has no revocation call); the token "
        "itself expires on its own."
    )
    _note_environment_token(identity)
    return EXIT_OK


def _revoke_and_forget(args: argparse.Namespace, identity: Identity, cache: TokenCache) -> int:
    """``logout`` for another OpenID provider: revoke at its revocation endpoint (RFC 7009),
    then forget, through :meth:`Credentials.logout` (as :meth:`FederationAuth.logout`)."""
    where = describe_cache(cache)
    auth = _credentials(args, identity, cache, env_token=False)

    def present() -> bool:
        return any(key == auth.bearer.name for key, _ in cache.entries())

    cached = present()
    try:
        result = auth.logout()
    except FedbearerError as exc:
        # logout() forgets the tokens even when revoking them fails; say so only when true
        # (it fails before that when the cache's lock cannot be had).
        if not cached or present():
            raise
        raise _Failure(
            f"removed the cached token of {identity.describe()} from {where}, but the provider "
            f"did not confirm the revocation: {exc}. The tokens may stay valid until they expire"
        ) from exc
    until = "" if result.expiration is None else f" until {_when(result.expiration)}"
    if not result.forgotten:
        print(
            f"Not logged in: no cached token for {identity.describe()} in {where}; "
            "nothing to revoke or remove."
        )
    elif result.revocation_endpoint is None:
        print(
            f"Logged out: removed the cached token of {identity.describe()} from {where}. "
            f"The provider has no revocation endpoint, so the tokens were not revoked: the "
            f"access token stays valid there{until}."
        )
    else:
        done = (
            f"revoked the {_kinds(result.revoked)} at {result.revocation_endpoint} and removed"
            if result.revoked
            else "removed"
        )
        print(f"Logged out: {done} the cached token of {identity.describe()} from {where}.")
        if result.not_revoked:
            print(
                f"{result.revocation_endpoint} does not revoke the {_kinds(result.not_revoked)} "
                "(unsupported_token_type): it stays valid there until it expires."
            )
    _note_environment_token(identity)
    return EXIT_OK


def _account_text(account: Account) -> str:
    """``as ann@example.com (sub 248289761001)``: who the token was issued to."""
    named = account.label
    return f"as {named}" if named == account.sub else f"as {named} (sub {account.sub})"


def _kinds(kinds: tuple[str, ...]) -> str:
    return " and ".join(kind.replace("_", " ") for kind in kinds)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _note_environment_token(identity: Identity) -> None:
    variable = environment_token_name(identity)
    if variable is not None:
        print(
            f"Note: ${variable} is set in this shell; its token was neither revoked nor "
            "removed, and fedbearer token and FederationAuth here still send it.",
            file=sys.stderr,
        )


def _status_caches(args: argparse.Namespace, current: Optional[Identity]) -> list[TokenCache]:
    """The caches ``status`` lists: the configured identity's first, then, unless a cache was
    chosen (``--cache-file``, ``--keyring``), the other default file, since the Nebius
    federation's tokens and other providers' are kept apart."""
    primary = cache_from(args, current)
    if args.cache_file is not None or isinstance(primary, KeyringTokenCache):
        return [primary]
    issuer = current is not None and current.issuer is not None
    return [primary, default_cache() if issuer else provider_cache()]


def _cmd_status(args: argparse.Namespace) -> int:
    current = resolve_identity(args, need_client_id=False, required=False)
    caches = _status_caches(args, current)
    cache = caches[0]
    listed = [(describe_cache(c), c.entries()) for c in caches]
    where, entries = listed[0]
    profiles = load_profiles()
    variable, problem = None, None
    if args.env_token:
        try:
            found = environment_token(nebius=current is None or current.issuer is None)
        except ConfigurationError as exc:  # says what is wrong, never the value
            problem = str(exc)
        else:
            variable = None if found is None else found.variable
    if args.format == "json":
        document = {
            "profiles_file": profiles.path,
            "default_profile": profiles.default,
            "profiles": [
                {
                    "name": p.name,
                    "client_id": p.client_id,
                    "federation_endpoint": p.federation_endpoint,
                    "federation_id": p.federation_id,
                    "issuer": p.issuer,
                    "scopes": None if p.issuer is None else list(p.scopes),
                    "params": None if p.issuer is None else dict(p.params),
                }
                for p in profiles.profiles.values()
            ],
            "token_source": (
                {"kind": "environment", "variable": variable}
                if variable is not None
                else {"kind": "keyring", "service": cache.service}
                if isinstance(cache, KeyringTokenCache)
                else {"kind": "file", "path": where}
            ),
            "token_variable_problem": problem,
            "cache": where,
            "current": None if current is None else current.key,
            "tokens": [
                {
                    "key": key,
                    "cache": place,
                    "expires_at": None if token.expires_at is None else int(token.expires_at),
                    "expired": token.is_expired(0),
                    "refreshable": token.refresh_token is not None,
                    "scope": None if token.scope is None else list(token.scope),
                    "account": None if token.account is None else token.account.to_dict(),
                }
                for place, found_entries in listed
                for key, token in found_entries
            ],
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    if variable is not None:  # otherwise "Cached tokens in <where>" below says it
        print(f"Token source: ${variable} (from the environment; not cached, never renewed)")
    if problem is not None:
        print(f"  (a token variable is set but not usable: {problem})")
    if profiles.profiles:
        print(f"Profiles remembered by fedbearer login, in {profiles.path}:")
        for profile in profiles.profiles.values():
            default = " (the default)" if profile.name == profiles.default else ""
            if profile.issuer is not None:
                at = f"{profile.issuer} (scope {' '.join(profile.scopes)})"
            else:
                fid = profile.federation_id or "no federation id"
                at = f"{profile.federation_endpoint} ({fid})"
            print(f"  {profile.name}{default}: client {profile.client_id} at {at}")
    if not any(found_entries for _, found_entries in listed):
        print(f"No cached tokens in {' or '.join(place for place, _ in listed)}.")
    elif not entries:
        print(f"No cached tokens in {where}.")
    for place, found_entries in listed:
        if not found_entries:
            continue
        print(f"Cached tokens in {printable(place)}:")
        for key, token in found_entries:
            mark = "*" if place == where and current is not None and key == current.key else " "
            renewable = ", with a refresh token" if token.refresh_token else ""
            scope = "" if token.scope is None else f", scope {' '.join(token.scope)}"
            who = "" if token.account is None else f", {_account_text(token.account)}"
            print(f"{mark} {printable(key)}: {expiry(token)}{renewable}{scope}{who}")
    if entries and current is not None and all(key != current.key for key, _ in entries):
        print(f"  (nothing cached for {current.describe()})")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    # Here, not at the top: the local federation's HTTP server would slow every `fedbearer token`.
    from ..testing.demo import run_demo

    run_demo(no_browser=args.no_browser, timeout=args.timeout, port=args.port, debug=args.debug)
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "login": _cmd_login,
    "token": _cmd_token,
    "logout": _cmd_logout,
    "status": _cmd_status,
    "demo": _cmd_demo,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``fedbearer`` command with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    prog = "fedbearer"
    try:  # Ctrl-C is "interrupted" wherever it lands, parsing included
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            given = sys.argv[1:] if argv is None else argv
            if str(exc).startswith("unrecognized arguments"):
                # The main parser reports what the command's parser left over.
                where, suggestion = did_you_mean(parser, given)
                more = f"; {suggestion}" if suggestion else ""
                report(where, f"{exc}{more}; see '{where} --help'")
            else:
                report(exc.prog, f"{exc}; see '{exc.prog} --help'")
            return EXIT_USAGE
        except SystemExit as exc:  # --help and --version print, then exit 0
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        prog = f"fedbearer {args.command}"
        return _run_command(prog, args)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return EXIT_INTERRUPTED


def _run_command(prog: str, args: argparse.Namespace) -> int:
    """Run the command; errors become one line on stderr and an exit status."""
    try:
        with debug_logging(args.debug), warnings.catch_warnings():
            warnings.showwarning = show_warning
            return _COMMANDS[args.command](args)
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if caused_by_interrupt(exc):
            # Raised by some clean-up while Ctrl-C unwound the stack: still an interrupt.
            raise KeyboardInterrupt from exc
        if isinstance(exc, InteractionRequiredError):
            report(prog, interaction_required(args, exc))
            return EXIT_INTERACTION_REQUIRED
        if isinstance(exc, FedbearerError):
            # The library names settings as Python parameters; here they are flags.
            report(prog, exc.spelt(flag) + hint(exc, prog))
            return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILURE
        # The type only: a foreign exception's text is not known to be free of secrets.
        report(
            prog,
            f"unexpected {type(exc).__name__}; run again with --debug for the details, "
            "and report it if it persists",
        )
        return EXIT_FAILURE
