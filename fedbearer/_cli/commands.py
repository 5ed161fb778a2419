"""The ``fedbearer`` commands, one function each, and :func:`main`, which runs one.

``main`` turns what a command raises into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, Callable, Optional, cast

from .._auth import FederationAuth
from .._cache import FileTokenCache
from .._exceptions import ConfigurationError, FedbearerError, InteractionRequiredError
from .._interrupts import caused_by_interrupt
from .._token import Token
from .options import (
    Identity,
    UsageError,
    build_parser,
    cache_from,
    identity_from,
    resolve_identity,
)
from .output import (
    Progress,
    debug_logging,
    expiry,
    hint,
    interaction_required,
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


def _auth(
    args: argparse.Namespace, identity: Identity, cache: FileTokenCache, writer: Progress
) -> FederationAuth:
    assert identity.client_id is not None
    return FederationAuth(
        identity.client_id,
        identity.federation_endpoint,
        identity.federation_id,
        profile=identity.profile,
        writer=cast(IO[str], writer),
        no_browser_open=args.no_browser,
        timeout=args.timeout,
        port=args.port,
        cache=cache,
        # None leaves it to FEDBEARER_INTERACTIVE; the flag can only turn logins off.
        interactive=False if args.non_interactive else None,
        allow_insecure_http=identity.allow_insecure_http,
        preflight=args.preflight,
    )


def _obtain(
    args: argparse.Namespace, identity: Identity, cache: FileTokenCache
) -> tuple[Token, str]:
    """A valid token and how it was obtained: ``cached``, ``refreshed`` or ``login``."""
    before = cache.get(identity.key)
    with progress_for(sys.stderr, no_browser=args.no_browser, debug=args.debug) as progress:
        token = _auth(args, identity, cache, progress).get_token()
    if before is not None and token == before:
        return token, "cached"
    return token, "login" if progress.started else "refreshed"


def _cmd_login(args: argparse.Namespace) -> int:
    identity = identity_from(args, need_client_id=True)
    cache = cache_from(args)
    token, how = _obtain(args, identity, cache)
    who = subject(token.token)
    as_who = f" as {who}" if who else ""
    renewable = ", with a refresh token" if token.refresh_token else ""
    if how == "cached":
        print(
            f"Already logged in{as_who}: {identity.describe()}; the cached token is "
            f"{expiry(token)}{renewable}. ('fedbearer logout' forgets it.)"
        )
    else:
        verb = "Logged in" if how == "login" else "Renewed the token with its refresh token"
        print(
            f"{verb}{as_who}: {identity.describe()}; token {expiry(token)}{renewable}; "
            f"saved in {cache.path}."
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
    cache = cache_from(args)
    with _stdout_to_stderr():
        token, how = _obtain(args, identity, cache)
    if how != "cached":
        verb = "Logged in" if how == "login" else "Renewed the token"
        print(f"{verb}: {identity.describe()}; token {expiry(token)}.", file=sys.stderr)
    sys.stdout.write(token.token + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _cmd_logout(args: argparse.Namespace) -> int:
    identity = identity_from(args, need_client_id=False)
    cache = cache_from(args)

    def present() -> bool:
        return any(key == identity.key for key, _ in cache.entries())

    if not present():
        print(
            f"Not logged in: no cached token for {identity.describe()} in {cache.path}; "
            "nothing to remove."
        )
        return EXIT_OK
    cache.remove(identity.key)
    if present():
        raise _Failure(
            f"could not remove the token of {identity.describe()} from {cache.path} "
            "(see the warning above); check the file's permissions"
        )
    print(
        f"Logged out: removed the cached token of {identity.describe()} from {cache.path}. "
        "The federation was not contacted; the token itself expires on its own."
    )
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    current = resolve_identity(args, need_client_id=False, required=False)
    cache = cache_from(args)
    entries = cache.entries()
    if not entries:
        print(f"No cached tokens in {cache.path}.")
        return EXIT_OK
    print(f"Cached tokens in {cache.path}:")
    for key, token in entries:
        mark = "*" if current is not None and key == current.key else " "
        renewable = ", with a refresh token" if token.refresh_token else ""
        print(f"{mark} {key}: {expiry(token)}{renewable}")
    if current is not None and all(key != current.key for key, _ in entries):
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
            report(prog, str(exc) + hint(exc, prog))
            return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILURE
        # The type only: a foreign exception's text is not known to be free of secrets.
        report(
            prog,
            f"unexpected {type(exc).__name__}; run again with --debug for the details, "
            "and report it if it persists",
        )
        return EXIT_FAILURE
