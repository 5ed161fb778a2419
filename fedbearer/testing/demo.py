"""``fedbearer demo``: a complete login against a :class:`LocalFederation`, step by step.

It starts a local federation, logs in through the real loopback server (in the user's
browser when there is one and someone at a terminal to press Approve, else approved
in-process by a :class:`ProgrammaticBrowser`), calls the federation's ``/whoami`` with a
``requests`` session whose ``auth`` is a :class:`~fedbearer.FederationAuth`, makes the
federation drop every access token and calls again, so that the auth renews the token. Each
step is explained on standard output; no token is ever shown, and the token cache is a
temporary file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from typing import IO, Callable, Optional, TextIO, cast

import requests

from .._auth import FederationAuth
from .._browser import choose_browser
from .._cache import FileTokenCache
from .._cli.output import expiry, progress_for
from .._environment import detect_environment
from .._exceptions import FedbearerError
from .._settings import DEFAULT_LOGIN_TIMEOUT
from ._browser import ProgrammaticBrowser
from ._federation import LocalFederation

__all__ = ["DemoError", "run_demo"]

log = logging.getLogger("fedbearer.cli")


class DemoError(FedbearerError):
    """A step of the demo did not go as the library promises (``fedbearer demo`` exits 1)."""


@contextlib.contextmanager
def _loopback_bypasses_proxies() -> Iterator[None]:
    """Keep ``HTTP(S)_PROXY`` away from ``127.0.0.1`` while the demo runs, then restore.

    The token request goes through ``requests`` with the environment's proxy settings, and
    ``requests`` sends even loopback addresses to a proxy unless ``no_proxy`` names them.
    """
    saved = {name: os.environ.get(name) for name in ("no_proxy", "NO_PROXY")}
    current = saved["no_proxy"] or saved["NO_PROXY"] or ""
    entries = [entry for entry in current.split(",") if entry.strip()]
    value = ",".join([*entries, "127.0.0.1"])
    try:
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _no_browser_reason(no_browser: bool) -> Optional[str]:
    """Why the demo will not use a real browser, or ``None`` when it will."""
    if no_browser:
        return "--no-browser was given"
    environment = detect_environment()
    choice = choose_browser(environment)
    if not choice.launches:
        return choice.reason or "no browser was found"
    if not environment.stdin_tty:
        return "standard input is not a terminal, so nobody may be there to press Approve"
    return None


def _short_json(response: requests.Response) -> str:
    try:
        return json.dumps(response.json(), sort_keys=True)[:200]
    except ValueError:
        return "(not JSON)"


def run_demo(
    *,
    no_browser: bool = False,
    timeout: Optional[float] = DEFAULT_LOGIN_TIMEOUT,
    port: Optional[int] = None,
    debug: bool = False,
    out: Optional[TextIO] = None,
) -> None:
    """Run the demo, explaining each step on ``out`` (default: standard output).

    ``no_browser``, ``timeout`` and ``port`` are the login options of ``fedbearer demo``;
    ``debug`` keeps the login's elapsed-time line from being redrawn under log lines.
    Raises :class:`DemoError` when a step goes wrong, or the login's own error.
    """
    started = time.monotonic()
    out = sys.stdout if out is None else out
    steps = 6
    width = max(60, min(100, shutil.get_terminal_size().columns))

    def say(text: str, indent: str = "", hang: Optional[str] = None) -> None:
        # Long words (URLs, JSON) are never split, so they stay copyable.
        lines = textwrap.fill(
            text,
            width=width,
            initial_indent=indent,
            subsequent_indent=indent if hang is None else hang,
            break_long_words=False,
            break_on_hyphens=False,
        )
        out.write(lines + "\n")
        out.flush()

    def step(number: int, text: str) -> None:
        say(f"[{number}/{steps}] {text}", hang=" " * 6)

    no_browser_because = _no_browser_reason(no_browser)
    interactive = no_browser_because is None
    say(
        "fedbearer demo: a complete federation login on this machine, step by step. "
        "No network and no real credentials are used."
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_loopback_bypasses_proxies())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="fedbearer-demo-"))
        federation = stack.enter_context(
            LocalFederation(
                client_id="fedbearer-demo",
                federation_id="demo-federation",
                auto_approve=not interactive,
                user="demo-user",
            )
        )
        step(
            1,
            f"A local federation (an OAuth 2.0 authorization server in this process) is "
            f"running at {federation.endpoint}; client id 'fedbearer-demo', federation id "
            "'demo-federation'.",
        )
        programmatic = ProgrammaticBrowser()
        progress = progress_for(out, no_browser=no_browser, debug=debug, indent="      ")
        opener: Callable[[str], Optional[bool]]
        if interactive:
            real = choose_browser(detect_environment()).opener
            assert real is not None

            def opener(url: str) -> bool:
                try:
                    opened = real(url)
                except Exception as exc:
                    log.debug("demo: browser launch failed (%s)", type(exc).__name__)
                    opened = False
                if opened is False:
                    progress.write("The browser did not open; approving in-process instead.\n")
                    return programmatic(url)
                return True

            step(
                2,
                "Your browser will open the federation's approval page: type any name and "
                "press Approve (or Deny, to see a refused login).",
            )
        else:
            opener = programmatic
            step(
                2,
                f"No browser will be opened: {no_browser_because}. A programmatic browser "
                "(fedbearer.testing.ProgrammaticBrowser) follows the login URL in-process "
                "and the federation approves at once.",
            )
        cache = FileTokenCache(os.path.join(workdir, "credentials.yaml"))
        auth = FederationAuth(
            federation.client_id,
            federation.endpoint,
            "demo-federation",
            profile="demo",
            writer=cast(IO[str], progress),
            timeout=timeout,
            port=port,
            opener=opener,
            cache=cache,
            hosts=[federation.endpoint],
            interactive=True,  # the demo is a login; FEDBEARER_INTERACTIVE=0 is for real ones
        )
        step(
            3,
            "Logging in: FederationAuth starts a loopback server on 127.0.0.1, shows the "
            f"login URL, hands it to the {'' if interactive else 'programmatic '}browser "
            "and waits for the browser to come back with the code:",
        )
        with progress:
            token = auth.get_token()
        step(
            4,
            f"Token obtained: {expiry(token)}"
            f"{', with a refresh token' if token.refresh_token else ''}; cached in a "
            "temporary credentials.yaml. (The token itself is never shown.)",
        )
        session = stack.enter_context(requests.Session())
        session.trust_env = False  # loopback calls go straight to the local API
        session.auth = auth
        response = session.get(federation.whoami_url, timeout=30)
        if response.status_code != 200:
            raise DemoError(f"the API answered HTTP {response.status_code} with a fresh token")
        step(
            5,
            f"API call with session.auth = FederationAuth(...): GET /whoami -> "
            f"{response.status_code} {_short_json(response)}",
        )
        federation.revoke_access_tokens()
        step(
            6,
            "Forced renewal: the federation drops every access token, as if it had "
            "expired early. Calling the API again:",
        )
        response = session.get(federation.whoami_url, timeout=30)
        first = response.history[0] if response.history else None
        if first is None or first.status_code != 401 or response.status_code != 200:
            raise DemoError(
                "expected 401 then 200 after the revocation, got "
                f"{first.status_code if first is not None else 'no 401'} then "
                f"{response.status_code}"
            )
        challenge = re.search(r'error="([^"]*)"', first.headers.get("WWW-Authenticate", ""))
        how = (
            "renewed it with the refresh token (no browser)"
            if federation.refreshes
            else "logged in again"
        )
        say(
            f"GET /whoami -> 401 ({challenge.group(1) if challenge else 'no error code'}); "
            f"FederationAuth {how} and resent the request -> {response.status_code} "
            f"{_short_json(response)}",
            indent=" " * 6,
        )
        say(
            f"Federation counters: {federation.logins} login(s), "
            f"{federation.refreshes} refresh(es).",
            indent=" " * 6,
        )
    say(
        f"Done in {time.monotonic() - started:.1f} s. The federation and the loopback server "
        "are stopped and the temporary cache is deleted. Next: session.auth = "
        "FederationAuth(client_id, federation_endpoint, federation_id) in your code."
    )
