"""fedbearer's browser pages, as a real headless Chromium renders them (issue 6).

Chromium is the user's browser: fedbearer launches it through ``$BROWSER`` (the
``browser_env`` fixture) or through the ``opener`` hook, and a script plays the user on the
federation's approval page — :class:`fedbearer.testing.LocalFederation` with
``auto_approve=False``, or the independent oidc-provider. Every assertion is on what
Chromium received and rendered: the HTTP status and headers of each navigation, the page's
text and DOM, and its console (a CSP violation, e.g. a stale script hash, is a console error).

Real browser behaviour — favicon requests, preconnects, a reload, the back button, a second
tab on the same URL — must not change a login's outcome. Where a test needs the browser to act
while the login is still serving, it holds the loopback server's ``close()`` (or the code
exchange) on an event the browser script sets: an ordering, never a sleep or a timing
assertion.

Screenshots of the pages are written to ``$FEDBEARER_SCREENSHOTS`` when it is set (the docs'
``docs/_static/screenshots``), else to the test's temporary directory. To regenerate the
docs' screenshots, from the repository root::

    FEDBEARER_SCREENSHOTS=docs/_static/screenshots \
        python -m pytest tests/interop/test_browser_pages.py
"""

from __future__ import annotations

import http.server
import io
import os
import socket
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

import fedbearer
from fedbearer import (
    AuthorizationError,
    Bearer,
    LoginTimeoutError,
    Token,
    _login,
    _loopback,
    _pages,
)
from fedbearer.testing import LocalFederation

from ..conftest import assert_released, login_threads, wait_for
from . import REPO
from .chromium import (
    BrowserDriver,
    BrowserResult,
    ScriptContext,
    TabVisit,
    custom,
    deny,
    do_nothing,
    login_and_approve,
    origin_of,
    press,
)
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

SCREENSHOTS_ENV = "FEDBEARER_SCREENSHOTS"

#: What the docs' screenshots show: a desktop window, a phone, the dark colour scheme.
DESKTOP = {"viewport": {"width": 880, "height": 620}}
PHONE = {"viewport": {"width": 390, "height": 780}, "is_mobile": True, "has_touch": True}
DARK = {**DESKTOP, "color_scheme": "dark"}

APP = "Example notebook"
PROFILE = "dev"

#: How long the browser may take to act while the login side waits for it (an upper bound
#: for a failure, never a measured duration).
HOLD = 30.0

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[str], Path]:
    """``screenshot("success")`` -> where that page's PNG goes."""
    configured = os.environ.get(SCREENSHOTS_ENV)
    if configured:
        folder = Path(configured)
        folder = folder if folder.is_absolute() else REPO / folder
    else:
        folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return lambda name: folder / f"{name}.png"


@pytest.fixture
def federation() -> Iterator[LocalFederation]:
    """A LocalFederation that shows its approval page and waits for the user."""
    with LocalFederation(auto_approve=False) as fed:
        yield fed


class Loopback:
    """Records each login's :class:`~fedbearer._loopback.LoopbackServer`.

    With ``hold_close()``, the login's ``close()`` waits until ``release`` is set (by the
    browser script), so the browser can act on the finished login while the server still
    answers; ``closed`` is set once the port is released.
    """

    def __init__(self) -> None:
        self.servers: list[_loopback.LoopbackServer] = []
        self.accepted = 0  # connections the servers accepted, idle ones included
        self.release = threading.Event()
        self.closed = threading.Event()
        self.holding = False

    def hold_close(self) -> None:
        self.holding = True

    @property
    def server(self) -> _loopback.LoopbackServer:
        (server,) = self.servers
        return server


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    record = Loopback()

    class RecordedLoopbackServer(_loopback.LoopbackServer):
        def start(self) -> str:
            record.servers.append(self)
            return super().start()

        def _track(self, conn: socket.socket, add: bool) -> None:
            if add:
                record.accepted += 1
            super()._track(conn, add)

        def close(self) -> None:
            if record.holding:
                record.release.wait(HOLD)
            super().close()
            record.closed.set()

    # login() imports LoopbackServer from its module when it runs.
    monkeypatch.setattr(_loopback, "LoopbackServer", RecordedLoopbackServer)
    yield record
    record.release.set()


# ---------------------------------------------------------------------------- helpers


def bearer(
    endpoint: str,
    client_id: str,
    federation_id: str,
    *,
    timeout: float = 30,
    opener: Optional[Callable[[str], bool]] = None,
    app_name: str = APP,
    profile: str = PROFILE,
    preflight: bool = True,
) -> Bearer:
    return Bearer(
        profile,
        client_id,
        endpoint,
        federation_id,
        opener=opener,
        writer=io.StringIO(),
        timeout=timeout,
        interactive=True,
        app_name=app_name,
        preflight=preflight,
    )


def local_bearer(fed: LocalFederation, **options: Any) -> Bearer:
    return bearer(fed.endpoint, fed.client_id, fed.federation_id or "", **options)


def port_of(redirect_uri: str) -> int:
    port = urlsplit(redirect_uri).port
    assert port is not None
    return port


def csp_directives(headers: dict[str, str]) -> dict[str, list[str]]:
    policy = headers["content-security-policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_page_headers(headers: dict[str, str]) -> None:
    """The headers every fedbearer page carries, as Chromium received them."""
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    csp = csp_directives(headers)
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["img-src"] == ["data:"]
    # One script and one stylesheet, each allowed by its hash; nothing inline otherwise.
    for directive in ("script-src", "style-src"):
        (source,) = csp[directive]
        assert source.startswith("'sha256-") and source.endswith("'")


def assert_clean_render(result: BrowserResult, origin: str) -> None:
    """Our page rendered with no console error (CSP violations are console errors), no
    script exception, and loads nothing: every ``src``/``href`` is a ``data:`` URL."""
    errors = [
        e.text
        for e in result.console_errors(origin)
        # Chromium logs every 4xx document as "Failed to load resource"; that is the status.
        if not e.text.startswith("Failed to load resource: the server responded with a status")
    ]
    assert errors == []
    assert result.page_errors == []
    assert_self_contained(result.html)


def assert_self_contained(document: str) -> None:
    """Every URL-valued attribute is a ``data:`` URL and the stylesheet imports nothing."""
    elements = parse_elements(document)
    for tag, attrs in elements:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data"):
                assert (value or "").startswith("data:"), (tag, name, value)
    styles = [attrs for tag, attrs in elements if tag == "style"]
    assert len(styles) == 1
    assert "@import" not in document and "url(" not in document


def parse_elements(document: str) -> list[tuple[str, list[tuple[str, Optional[str]]]]]:
    """(tag, attributes) of every element, as an HTML parser reads the document."""
    found: list[tuple[str, list[tuple[str, Optional[str]]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
            found.append((tag, attrs))

    Collect().feed(document)
    return found


def tags_of(document: str) -> set[str]:
    return {tag for tag, _ in parse_elements(document)}


def assert_no_secrets(document: str, *secrets: Optional[str]) -> None:
    for secret in secrets:
        if secret:
            assert secret not in document


def wait_until_our_page(ctx: ScriptContext) -> None:
    """After an action that leads to the callback: wait for our page to have loaded."""
    ctx.wait_off_provider()
    ctx.page.wait_for_load_state("load")


def text_of(ctx: ScriptContext) -> str:
    text: str = ctx.page.evaluate("() => document.body ? document.body.innerText : ''")
    return text


# ---------------------------------------------------------------------------- LocalFederation


def test_approving_shows_the_success_page(
    federation: LocalFederation, browser_env: BrowserDriver, screenshot: Callable[[str], Path]
) -> None:
    run = browser_env.expect(
        press("Approve"), screenshot=screenshot("success"), context_options=DESKTOP
    )

    token = local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert federation.is_valid(token.token)
    # Chromium went federation (approval page, POST, 303) -> our callback, shown with 200.
    callback = page.final
    assert callback is not None and callback.status == 200
    redirect_uri = federation.authorize_params[0]["redirect_uri"]
    assert callback.url == redirect_uri + "/"
    assert [n.status for n in page.navigations] == [200, 303, 200]
    assert_page_headers(page.headers)
    assert_clean_render(page, redirect_uri)
    # Readable at a glance: headline, what happened, what next, which login.
    assert page.title == f"Login complete – {APP}"
    lines = page.text.splitlines()
    assert lines[0] == "Login complete"
    assert f"{APP} is now logged in." in page.text
    assert "Return to your terminal or notebook. You can close this tab." in page.text
    for fact in ("Application", APP, "Profile", PROFILE, "Federation", federation.endpoint):
        assert fact in lines
    assert f"This tab will try to close itself in {_pages.CLOSE_AFTER} seconds." in page.text
    query = page.final_query
    assert_no_secrets(page.html, token.token, token.refresh_token, query["code"], query["state"])
    assert page.screenshot is not None and page.screenshot.stat().st_size > 0
    assert_released(port_of(redirect_uri))


def test_denying_shows_the_failure_page_with_the_federations_error(
    federation: LocalFederation, browser_env: BrowserDriver, screenshot: Callable[[str], Path]
) -> None:
    run = browser_env.expect(
        press("Deny"), screenshot=screenshot("denied"), context_options=DESKTOP
    )

    with pytest.raises(AuthorizationError) as caught:
        local_bearer(federation).receiver().fetch()

    assert caught.value.error == "access_denied"
    assert caught.value.error_description == "The user denied the request."
    page = run.wait(60).raise_for_error()
    assert page.status == 400
    assert page.final_query["error"] == "access_denied"
    redirect_uri = federation.authorize_params[0]["redirect_uri"]
    assert_page_headers(page.headers)
    assert_clean_render(page, redirect_uri)
    lines = page.text.splitlines()
    assert lines[0] == "Login denied"
    assert "The login was refused." in lines
    # The federation's answer, as text, in its own section; the error code as code.
    assert "THE FEDERATION ANSWERED" in page.text.upper()
    assert "access_denied: The user denied the request." in lines
    assert "<code>access_denied</code>: The user denied the request." in page.html
    assert "Return to your application and start the login again." in page.text
    for fact in (APP, PROFILE, federation.endpoint):
        assert fact in lines
    # A failure page stays open for the user to read: no script on it.
    assert "<script" not in page.html and "close itself" not in page.text
    assert federation.denials == 1 and federation.code_exchanges == 0
    assert_released(port_of(redirect_uri))


def test_federation_error_shows_the_rejected_page(
    federation: LocalFederation, browser_env: BrowserDriver, screenshot: Callable[[str], Path]
) -> None:
    """The federation refuses the request itself (here: an unknown federation-id) and sends
    the browser straight back with an OAuth error, before any approval page. (The pre-flight
    check would catch this one before the browser opens; it is off here to show the page a
    refusal it cannot foresee gets.)"""
    run = browser_env.expect(do_nothing(), screenshot=screenshot("error"), context_options=DESKTOP)
    wrong = bearer(federation.endpoint, federation.client_id, "no-such-federation", preflight=False)

    with pytest.raises(AuthorizationError) as caught:
        wrong.receiver().fetch()

    assert caught.value.error == "invalid_request"
    page = run.wait(60).raise_for_error()
    assert [n.status for n in page.navigations] == [302, 400]
    assert_page_headers(page.headers)
    assert_clean_render(page, federation.authorize_params[0]["redirect_uri"])
    lines = page.text.splitlines()
    assert lines[0] == "Login rejected"
    assert "The federation rejected the login." in lines
    assert "invalid_request: Unknown or missing federation-id." in lines
    assert "Check the application's settings, then start the login again." in page.text


def test_a_token_endpoint_failure_after_approval_shows_the_failure_page(
    federation: LocalFederation, browser_env: BrowserDriver
) -> None:
    """The user approves, then the token endpoint refuses the code: the browser, which
    waited for the outcome, is told the login failed, never that it succeeded."""
    federation.fail_next("invalid_grant")
    run = browser_env.expect(press("Approve"))

    with pytest.raises(fedbearer.InvalidGrantError):
        local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert page.status == 400
    assert_page_headers(page.headers)
    assert_clean_render(page, federation.authorize_params[0]["redirect_uri"])
    lines = page.text.splitlines()
    assert lines[0] == "Login failed"
    assert "The federation approved the login but did not issue a token." in lines
    assert "Return to your application for the details, then try again." in page.text
    assert federation.code_exchanges == 1


def test_a_user_who_never_acts_gets_a_timeout_and_a_released_port(
    federation: LocalFederation, browser_env: BrowserDriver, loopback: Loopback
) -> None:
    ended = threading.Event()
    seen: dict[str, Any] = {}

    def walk_away_then_come_back(ctx: ScriptContext) -> None:
        seen["text"] = text_of(ctx)
        # The user answers only after fedbearer gave up: the callback port is closed by then.
        ended.wait(HOLD)
        try:
            ctx.submit_and_wait(ctx.page.get_by_role("button", name="Approve", exact=True))
        except Exception as exc:
            seen["late"] = str(exc)

    run = browser_env.expect(custom(walk_away_then_come_back))

    with pytest.raises(LoginTimeoutError) as caught:
        local_bearer(federation, timeout=1).receiver().fetch()
    ended.set()

    assert isinstance(caught.value, TimeoutError)
    assert login_threads() == []
    assert_released(port_of(loopback.server.redirect_uri))
    run.wait(60).raise_for_error()
    assert seen["text"].startswith("Sign in")  # Chromium sat on the approval page
    # The late approval issued a code that reached nobody: the port no longer answers.
    assert "ERR_CONNECTION_REFUSED" in seen["late"]
    assert federation.logins == 1 and federation.code_exchanges == 0


def test_the_success_page_tries_to_close_its_tab_with_its_allowed_script(
    federation: LocalFederation, browser_env: BrowserDriver
) -> None:
    """The inline script runs (its CSP hash matches) and, when the browser refuses to close a
    tab it did not open, corrects the page's promise. Chromium's clock is a fake one, moved
    forward past the timer: no waiting."""
    seen: dict[str, Any] = {}

    def approve_then_skip_ahead(ctx: ScriptContext) -> None:
        press("Approve").run(ctx)
        seen["before"] = ctx.page.locator("#closing").inner_text()
        ctx.page.clock.run_for((_pages.CLOSE_AFTER + 1) * 1000)
        seen["closed"] = ctx.page.is_closed()
        if not seen["closed"]:
            seen["after"] = ctx.page.locator("#closing").inner_text()

    run = browser_env.expect(
        custom(approve_then_skip_ahead), prepare=lambda context: context.clock.install()
    )

    local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert seen["before"] == f"This tab will try to close itself in {_pages.CLOSE_AFTER} seconds."
    # Chromium lets a script close only a tab a script opened; a test's tab is not one.
    assert (
        seen["closed"] or seen["after"] == "This tab could not close itself. You can close it now."
    )
    assert_clean_render(page, federation.authorize_params[0]["redirect_uri"])


@pytest.mark.parametrize(
    ("name", "options"),
    [("success-phone", PHONE), ("success-dark", DARK)],
    ids=["phone", "dark"],
)
def test_the_success_page_fits_a_phone_and_follows_the_dark_scheme(
    name: str,
    options: dict[str, Any],
    federation: LocalFederation,
    browser_env: BrowserDriver,
    screenshot: Callable[[str], Path],
) -> None:
    seen: dict[str, Any] = {}

    def approve_and_measure(ctx: ScriptContext) -> None:
        press("Approve").run(ctx)
        seen["icon"] = ctx.page.evaluate(
            """() => new Promise(resolve => {
                const image = new Image();
                image.onload = () => resolve(image.naturalWidth);
                image.onerror = () => resolve(0);
                image.src = document.querySelector('link[rel=icon]').href;
            })"""
        )
        seen.update(
            ctx.page.evaluate(
                """() => ({
                    viewport: window.innerWidth,
                    scrollWidth: document.documentElement.scrollWidth,
                    height: window.innerHeight,
                    scrollHeight: document.documentElement.scrollHeight,
                    main: document.querySelector('main').getBoundingClientRect().width,
                    background: getComputedStyle(document.body).backgroundColor,
                    color: getComputedStyle(document.body).color,
                })"""
            )
        )

    run = browser_env.expect(
        custom(approve_and_measure), screenshot=screenshot(name), context_options=options
    )

    local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert page.status == 200 and page.text.startswith("Login complete")
    assert seen["icon"] > 0  # the tab icon is a valid image that the CSP lets load
    assert seen["scrollWidth"] <= seen["viewport"]  # nothing sticks out sideways
    assert seen["scrollHeight"] <= seen["height"]  # and a short page does not scroll
    if options is PHONE:
        assert seen["main"] == seen["viewport"]  # the card becomes the page
    else:
        assert seen["background"] == "rgb(13, 17, 23)" and seen["color"] == "rgb(230, 237, 243)"
    assert_clean_render(page, federation.authorize_params[0]["redirect_uri"])


def test_favicon_requests_and_preconnects_do_not_disturb_the_login(
    federation: LocalFederation,
    browser_env: BrowserDriver,
    loopback: Loopback,
    screenshot: Callable[[str], Path],
) -> None:
    """While the approval page is open, the callback port holds preconnected sockets and
    Chromium asks it for ``/favicon.ico``; then the user approves.

    Request routing is off for this run (``intercept=False``): Playwright drops every
    favicon request while it routes. Headless Chromium under Playwright opens no
    preconnects of its own, so the test opens them as a browser does: TCP connections on
    which nothing is sent.
    """
    loopback.hold_close()
    idle: list[socket.socket] = []
    seen: dict[str, Any] = {}

    def browse_around_then_approve(ctx: ScriptContext) -> None:
        try:
            redirect_uri = ctx.query["redirect_uri"]
            for _ in range(2):
                idle.append(socket.create_connection(("127.0.0.1", port_of(redirect_uri))))
            ctx.visit(redirect_uri + "/favicon.ico", screenshot=screenshot("notice"))
            press("Approve").run(ctx)
            seen["stats"] = dict(loopback.server.stats)
        finally:
            loopback.release.set()

    run = browser_env.expect(
        custom(browse_around_then_approve), context_options=DESKTOP, intercept=False
    )

    try:
        token = local_bearer(federation).receiver().fetch()
    finally:
        for sock in idle:
            sock.close()

    page = run.wait(60).raise_for_error()
    assert federation.is_valid(token.token) and federation.code_exchanges == 1
    assert page.status == 200 and page.text.startswith("Login complete")
    (favicon,) = page.visits
    assert favicon.status == 404
    assert_page_headers(favicon.headers)
    assert favicon.text.splitlines()[0] == "Not found"
    assert "finish in the browser tab that the login opened" in favicon.text
    assert seen["stats"] == {"not_found": 1, "code": 1}
    assert loopback.accepted >= 2 + 2  # the two preconnects and the two requests
    assert page.external == []
    redirect_uri = loopback.server.redirect_uri
    assert_clean_render(page, redirect_uri)
    assert_released(port_of(redirect_uri))


def test_reload_back_button_and_second_tab_after_success_change_nothing(
    federation: LocalFederation, browser_env: BrowserDriver, loopback: Loopback
) -> None:
    """The login has its token; until the server closes (held here), the user reloads the
    callback page, opens the same URL in a second tab, goes back to the approval page and
    approves once more (a second code, same state). Every one of them shows the success page
    again; none reaches the token endpoint. After the port is released, a reload reaches
    nothing, and the browser says so itself."""
    loopback.hold_close()
    seen: dict[str, Any] = {}

    def restless_user(ctx: ScriptContext) -> None:
        try:
            press("Approve").run(ctx)
            callback_url = ctx.page.url
            seen["reload"] = ctx.page.reload(wait_until="load").status
            seen["reload_text"] = text_of(ctx)
            seen["tab"] = ctx.visit(callback_url)
            back = ctx.page.go_back(wait_until="load")
            seen["back"] = (back.status if back else None, text_of(ctx))
            press("Approve").run(ctx)
            seen["again"] = (ctx.page.url, text_of(ctx))
        finally:
            loopback.release.set()
        loopback.closed.wait(HOLD)
        try:
            ctx.page.reload(wait_until="load")
        except Exception as exc:
            seen["after_close"] = str(exc)

    run = browser_env.expect(custom(restless_user))

    token = local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert federation.is_valid(token.token)
    assert seen["reload"] == 200 and seen["reload_text"].startswith("Login complete")
    tab: TabVisit = seen["tab"]
    assert tab.status == 200 and tab.text.startswith("Login complete")
    assert_page_headers(tab.headers)
    # Back: the federation's approval page, asked for again (our page is no-store anyway).
    assert seen["back"][0] == 200 and seen["back"][1].startswith("Sign in")
    again_url, again_text = seen["again"]
    assert urlsplit(again_url).netloc == urlsplit(loopback.server.redirect_uri).netloc
    assert again_text.startswith("Login complete")
    # Two codes issued, one exchanged: the first login decided, nothing after it counted.
    assert federation.logins == 2 and federation.code_exchanges == 1
    assert loopback.server.stats.get("code") == 4  # approve, reload, second tab, approve again
    assert "ERR_CONNECTION_REFUSED" in seen["after_close"]
    callbacks = page.navigations_to(loopback.server.redirect_uri)
    assert [n.status for n in callbacks] == [200, 200, 200]
    for navigation in callbacks:
        assert_page_headers(navigation.headers)
    assert_released(port_of(loopback.server.redirect_uri))


def test_a_second_tab_during_the_code_exchange_gets_the_same_outcome(
    federation: LocalFederation,
    browser_env: BrowserDriver,
    loopback: Loopback,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The callback arrives; before the code is exchanged, the same URL opens in a second
    tab. Both connections wait for the login's outcome and both show it."""
    real_exchange = _login.exchange_code
    both_arrived: dict[str, bool] = {}

    def exchange_after_second_tab(*args: Any, **kwargs: Any) -> Token:
        server = loopback.server
        both_arrived["ok"] = wait_for(lambda: server.stats.get("code", 0) >= 2, HOLD)
        return real_exchange(*args, **kwargs)

    monkeypatch.setattr(_login, "exchange_code", exchange_after_second_tab)
    seen: dict[str, Any] = {}

    def approve_and_open_a_second_tab(ctx: ScriptContext) -> None:
        redirect_uri = ctx.query["redirect_uri"]
        with ctx.page.expect_request(lambda r: r.url.startswith(redirect_uri)) as request:
            # Not locator.click(): it would wait for the navigation, which is answered only
            # after the exchange, which waits for the second tab.
            ctx.page.evaluate(
                """() => setTimeout(() =>
                    document.querySelector('button[value=approve]').click(), 0)"""
            )
        seen["tab"] = ctx.visit(request.value.url)  # answered once the exchange is done
        wait_until_our_page(ctx)

    run = browser_env.expect(custom(approve_and_open_a_second_tab))

    token = local_bearer(federation).receiver().fetch()

    page = run.wait(60).raise_for_error()
    assert both_arrived == {"ok": True}
    assert federation.is_valid(token.token) and federation.code_exchanges == 1
    assert page.status == 200 and page.text.startswith("Login complete")
    tab: TabVisit = seen["tab"]
    assert tab.status == 200 and tab.text.startswith("Login complete")
    assert_page_headers(tab.headers)


class MarkupFederation:
    """A federation whose error description is HTML (hostile, or just careless): its
    authorize endpoint sends the browser straight back with that error."""

    DESCRIPTION = (
        "<img src=x onerror=\"document.title='pwned'\"><b>bold</b> & </p><script>x</script>"
    )

    def __init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                params = {
                    "error": "access_denied",
                    "error_description": outer.DESCRIPTION,
                    "state": query["state"],
                    "iss": outer.endpoint,
                }
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}/?{urlencode(params)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_markup_from_the_federation_and_in_names_is_shown_as_text(
    browser_driver: BrowserDriver,
) -> None:
    federation = MarkupFederation()
    opener = browser_driver.opener(do_nothing())
    app = 'App <script>document.title="pwned"</script>'
    # Markup without "/": a profile with "/" is refused (it would make the cache key ambiguous).
    profile = "<img src=x onerror=alert(1)><i>dev & 'ops'"
    try:
        with pytest.raises(AuthorizationError) as caught:
            bearer(
                federation.endpoint, "client", "fed", opener=opener, app_name=app, profile=profile
            ).receiver().fetch()
    finally:
        federation.close()

    assert caught.value.error_description == MarkupFederation.DESCRIPTION
    page = opener.wait(60).raise_for_error()
    assert page.status == 400
    assert page.title == f"Login denied – {app}"  # as text: no script ran to change it
    assert f"access_denied: {MarkupFederation.DESCRIPTION}" in page.text.splitlines()
    assert app in page.text and profile in page.text
    # Nothing of it became an element: the page's only elements are its own.
    tags = tags_of(page.html)
    assert tags.isdisjoint({"img", "b", "i", "script"})
    assert_clean_render(page, origin_of(page.final_url))


# ---------------------------------------------------------------------------- oidc-provider


def stray_requests(ctx: ScriptContext) -> None:
    """What else reaches a callback port while a login is open: the browser's icon request,
    someone typing the address, a forged callback with a code or an error, a prefetch of our
    own state without a code, a form post."""
    redirect_uri = ctx.query["redirect_uri"]
    state = ctx.query["state"]
    for path in (
        "/favicon.ico",
        "/",
        "/?" + urlencode({"code": "forged", "state": "forged"}),
        "/?" + urlencode({"error": "access_denied", "state": "forged"}),
        "/?" + urlencode({"state": state}),
    ):
        ctx.visit(redirect_uri + path)
    ctx.visits.append(post_form(ctx, redirect_uri + "/"))


def post_form(ctx: ScriptContext, action: str) -> TabVisit:
    """Submit a form to ``action`` from a blank tab, as a page elsewhere could."""
    tab = ctx.page.context.new_page()
    try:
        tab.set_content(
            f'<form method="post" action="{action}"><input name="code" value="x">'
            "<button>Send</button></form>"
        )
        with tab.expect_navigation(wait_until="load") as navigation:
            tab.get_by_role("button", name="Send").click()
        response = navigation.value
        return TabVisit(
            url=action,
            status=response.status if response else None,
            headers={k.lower(): v for k, v in response.all_headers().items()} if response else {},
            text=tab.evaluate("() => document.body ? document.body.innerText : ''"),
            title=tab.title(),
        )
    finally:
        tab.close()


def test_stray_requests_do_not_end_a_login_at_the_independent_provider(
    independent_provider: IndependentProvider, browser_env: BrowserDriver, loopback: Loopback
) -> None:
    op = independent_provider

    def strays_then_login(ctx: ScriptContext) -> None:
        stray_requests(ctx)
        login_and_approve("stray-tester").run(ctx)

    # Unrouted, so that Chromium really sends the icon request (Playwright drops favicon
    # requests while it routes). The provider's pages @import Google Fonts: that name resolves
    # to nothing here (--host-resolver-rules), and it is the only non-loopback request.
    run = browser_env.expect(custom(strays_then_login), intercept=False)

    token = bearer(op.endpoint, op.client_id, op.federation_id).receiver().fetch()

    page = run.wait(60).raise_for_error()
    me = web.get(op.userinfo_url, headers={"Authorization": f"Bearer {token.token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["sub"] == "stray-tester"
    assert [(v.status, v.text.splitlines()[0]) for v in page.visits] == [
        (404, "Not found"),
        (400, "Not a login response"),
        (400, "Not a login response"),
        (400, "Not a login response"),
        (400, "Not a login response"),
        (405, "Method not allowed"),
    ]
    for visit in page.visits:
        assert_page_headers(visit.headers)
    stats = loopback.server.stats
    assert stats.get("not_found") == 1 and stats.get("no_state") == 1
    assert stats.get("wrong_state") == 2 and stats.get("malformed") == 1
    assert stats.get("code") == 1
    assert page.status == 200 and page.text.startswith("Login complete")
    assert_page_headers(page.headers)
    assert_clean_render(page, loopback.server.redirect_uri)
    assert len(op.token_log()) == 1
    assert {urlsplit(url).hostname for url in page.external} <= {"fonts.googleapis.com"}
    assert_released(port_of(loopback.server.redirect_uri))


def test_denial_at_the_independent_provider_is_a_typed_error_and_an_escaped_400_page(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    op = independent_provider
    app = 'Notebook "<b>lab</b>"'
    profile = "<img src=x onerror=alert(1)>"  # no "/": such a profile is refused
    run = browser_env.expect(deny())

    with pytest.raises(AuthorizationError) as caught:
        bearer(
            op.endpoint, op.client_id, op.federation_id, app_name=app, profile=profile
        ).receiver().fetch()

    assert isinstance(caught.value, fedbearer.LoginError)
    assert (caught.value.error, caught.value.error_description) == (
        "access_denied",
        "End-User aborted interaction",
    )
    page = run.wait(60).raise_for_error()
    assert page.status == 400
    assert_page_headers(page.headers)
    assert page.text.splitlines()[0] == "Login denied"
    assert "access_denied: End-User aborted interaction" in page.text.splitlines()
    assert app in page.text.splitlines() and profile in page.text.splitlines()
    assert {"b", "img", "script"}.isdisjoint(tags_of(page.html))
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.html
    assert_clean_render(page, origin_of(page.final_url))
    assert op.token_log() == []
