"""A real headless Chromium, driven by Playwright in a thread of its own.

Why a thread: Playwright's *sync* API must be used from the thread that started it, while
fedbearer's interactive login blocks the test's thread until the loopback callback arrives.
So :class:`BrowserDriver` owns one Playwright + one ``/usr/bin/chromium`` in a dedicated
thread and takes work from a queue; every URL gets a fresh browser context (no cookies, no
provider session carried between runs) and a *script* that plays the user.

Two ways to hand it a URL:

* ``$BROWSER`` — what fedbearer really does (``webbrowser.open``). ``driver.browser_env`` is
  a ``$BROWSER`` value that runs ``browser_shim.py``, which passes the URL to the driver over
  a loopback socket and exits 0 at once. Announce what the user will do *before* the login
  starts: ``run = driver.expect(login_and_approve("alice"))``.
* directly — ``run = driver.open(url, deny())``, or ``driver.opener(script)`` as the
  ``opener`` callable for code that accepts one.

Either way ``run.wait()`` returns a :class:`BrowserResult`: every main-frame response (URL
without query, its query apart, status, headers), the final URL, the final page's text,
status and headers, what was blocked, and any script error.

The browser never leaves the machine: requests to any host other than 127.0.0.1, [::1] or
localhost are aborted (and listed in ``BrowserResult.blocked``), and Chromium's own DNS is
mapped to nothing (``--host-resolver-rules``), so e.g. the devInteractions pages' Google
Fonts ``@import`` costs nothing and sends nothing.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import json
import queue
import secrets
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit, urlunsplit

from . import CHROMIUM

HERE = Path(__file__).resolve().parent
SHIM = HERE / "browser_shim.py"

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # an ambient proxy setting must not carry loopback traffic away
    # No name resolves: nothing can leave the machine even if a request slips past routing.
    # IP literals (127.0.0.1, [::1]) are not resolved and keep working; so does localhost.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE [::1], EXCLUDE localhost",
)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return parts.scheme in ("about", "data", "blob", "chrome-error")
    return (parts.hostname or "") in LOOPBACK_HOSTS


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# ---------------------------------------------------------------------------- results


@dataclass
class Navigation:
    """One main-frame document response (redirects included)."""

    url: str  # scheme://host:port/path — no query, no fragment
    query: dict[str, list[str]]  # the query, parsed (parse_qs, blank values kept)
    status: int
    headers: dict[str, str]  # lower-case names
    method: str

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status < 400


@dataclass
@dataclass
class ConsoleEntry:
    """One console message, with the URL of the document that logged it."""

    type: str  # "error", "warning", "log", ...
    text: str
    url: str  # the document's URL without query ("" when Chromium gave none)


@dataclass
class TabVisit:
    """A URL a script opened in a tab of its own (:meth:`ScriptContext.visit`)."""

    url: str  # as requested, query included
    status: Optional[int]  # None when no HTTP response arrived (e.g. connection refused)
    headers: dict[str, str]  # lower-case names
    text: str  # document.body.innerText
    title: str
    error: Optional[str] = None  # the navigation's failure, e.g. "net::ERR_CONNECTION_REFUSED"


@dataclass
class BrowserResult:
    """What the real browser did and showed for one URL."""

    script: str
    start_url: str
    navigations: list[Navigation] = field(default_factory=list)
    final_url: str = ""  # full URL the page ended on (query included)
    text: str = ""  # document.body.innerText of the final page
    html: str = ""
    title: str = ""
    blocked: list[str] = field(default_factory=list)  # non-loopback requests aborted
    # Non-loopback requests seen in a run with ``intercept=False`` (nothing aborts them there,
    # only the host resolver rules; a test asserts this stays empty).
    external: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # "type: text", every document
    console_entries: list[ConsoleEntry] = field(default_factory=list)  # the same, with URLs
    page_errors: list[str] = field(default_factory=list)  # uncaught script exceptions
    visits: list[TabVisit] = field(default_factory=list)  # ScriptContext.visit(), in order
    error: Optional[str] = None  # the script's failure, if any (e.g. a navigation timeout)
    closed_itself: Optional[bool] = None  # after `linger`: did the page close itself?
    screenshot: Optional[Path] = None
    shim_argv: Optional[list[str]] = None  # how $BROWSER ran browser_shim.py, if it did
    duration: float = 0.0

    @property
    def final(self) -> Optional[Navigation]:
        """The last main-frame response that was not a redirect (the page shown)."""
        for nav in reversed(self.navigations):
            if not nav.is_redirect:
                return nav
        return self.navigations[-1] if self.navigations else None

    @property
    def status(self) -> Optional[int]:
        return self.final.status if self.final else None

    @property
    def headers(self) -> dict[str, str]:
        return self.final.headers if self.final else {}

    @property
    def final_query(self) -> dict[str, str]:
        """The final URL's query, one value per name (e.g. ``code``, ``state``, ``error``)."""
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.final_url).query, True).items()}

    def navigations_to(self, origin: str) -> list[Navigation]:
        return [n for n in self.navigations if origin_of(n.url) == origin.rstrip("/")]

    def console_errors(self, origin: Optional[str] = None) -> list[ConsoleEntry]:
        """Console errors (CSP violations among them), optionally only those logged by
        documents of ``origin``."""
        return [
            e
            for e in self.console_entries
            if e.type == "error" and (origin is None or origin_of(e.url) == origin.rstrip("/"))
        ]

    def raise_for_error(self) -> BrowserResult:
        if self.error:
            raise BrowserScriptError(f"browser script {self.script!r} failed: {self.error}")
        return self


class BrowserScriptError(AssertionError):
    """A user script could not do what it was asked (raised by raise_for_error)."""


class BrowserRun:
    """A handle on one URL's run; ``wait()`` blocks until the script is done.

    ``context_options`` go to Playwright's ``browser.new_context()`` (``viewport``,
    ``color_scheme``, ``device_scale_factor``...); ``prepare(context)`` runs before the first
    page is created (e.g. ``context.clock.install()``).

    ``intercept=False`` leaves out the request routing that aborts non-loopback requests.
    Playwright drops every ``/favicon.ico`` request while routing is on (microsoft/playwright
    #7493), so a run that must let Chromium ask for an icon turns it off; such a run must only
    visit loopback pages. Names still resolve to nothing (``--host-resolver-rules``), and any
    non-loopback request is listed in ``BrowserResult.external``."""

    def __init__(
        self,
        script: Script,
        *,
        linger: float = 0.0,
        screenshot: Optional[Union[str, Path]] = None,
        context_options: Optional[dict[str, Any]] = None,
        prepare: Optional[Callable[[Any], None]] = None,
        intercept: bool = True,
    ) -> None:
        self.script = script
        self.linger = linger
        self.screenshot = Path(screenshot) if screenshot else None
        self.context_options = dict(context_options or {})
        self.prepare = prepare
        self.intercept = intercept
        self.url: Optional[str] = None
        self.shim_argv: Optional[list[str]] = None
        self.delivered = threading.Event()
        self._done = threading.Event()
        self._result: Optional[BrowserResult] = None

    def done(self) -> bool:
        return self._done.is_set()

    def wait_delivered(self, timeout: float = 30.0) -> str:
        """Wait until the browser got its URL (``$BROWSER`` ran); return that URL."""
        if not self.delivered.wait(timeout):
            raise TimeoutError(f"no URL reached the browser within {timeout}s")
        assert self.url is not None
        return self.url

    def wait(self, timeout: float = 60.0) -> BrowserResult:
        if not self._done.wait(timeout):
            state = f"on {self.url}" if self.url else "no URL delivered yet"
            raise TimeoutError(
                f"browser script {self.script.name!r} not done in {timeout}s ({state})"
            )
        assert self._result is not None
        return self._result

    def _finish(self, result: BrowserResult) -> None:
        self._result = result
        self._done.set()


# ---------------------------------------------------------------------------- scripts


class ScriptContext:
    """What a user script gets: the Playwright page (already on the start URL) and helpers.
    Runs in the driver thread: use only the sync Playwright API, and only here."""

    def __init__(
        self, page: Any, start_url: str, timeout: float, visits: Optional[list[TabVisit]] = None
    ) -> None:
        self.page = page
        self.start_url = start_url
        self.provider_origin = origin_of(start_url)
        self.timeout = timeout
        self.visits: list[TabVisit] = [] if visits is None else visits

    @property
    def query(self) -> dict[str, str]:
        """The start URL's query, one value per name (``redirect_uri``, ``state``...)."""
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.start_url).query, True).items()}

    def visit(
        self,
        url: str,
        *,
        keep_open: bool = False,
        screenshot: Optional[Union[str, Path]] = None,
    ) -> TabVisit:
        """Open ``url`` in a new tab of this browser context, as a user (or the browser
        itself) would, wait for it to load, record status, headers and text (and a
        screenshot), and close the tab unless ``keep_open``. A failed navigation is
        recorded, not raised."""
        tab = self.page.context.new_page()
        visit = TabVisit(url=url, status=None, headers={}, text="", title="")
        try:
            response = tab.goto(url, wait_until="load", timeout=self.timeout * 1000)
            if response is not None:
                visit.status = response.status
                visit.headers = {k.lower(): v for k, v in response.all_headers().items()}
            visit.title = tab.title()
            visit.text = tab.evaluate("() => document.body ? document.body.innerText : ''")
            if screenshot is not None:
                tab.screenshot(path=str(screenshot), full_page=True)
        except Exception as exc:
            visit.error = str(exc).splitlines()[0]
        finally:
            if not keep_open:
                with contextlib.suppress(Exception):
                    tab.close()
        self.visits.append(visit)
        return visit

    @property
    def on_provider(self) -> bool:
        return origin_of(self.page.url) == self.provider_origin

    def submit_and_wait(self, locator: Any) -> None:
        """Click ``locator`` and wait for the navigation it starts (redirects included) to
        load."""
        with self.page.expect_navigation(wait_until="load", timeout=self.timeout * 1000):
            locator.click()

    def wait_off_provider(self) -> None:
        """Wait until the page has left the provider's origin (e.g. reached the callback)."""
        if self.on_provider:
            self.page.wait_for_url(
                lambda url: origin_of(url) != self.provider_origin,
                wait_until="load",
                timeout=self.timeout * 1000,
            )


@dataclass(frozen=True)
class Script:
    """A user: ``run(ctx)`` is called once the page has loaded the start URL."""

    name: str
    run: Callable[[ScriptContext], None]


def do_nothing() -> Script:
    """Load the URL (following redirects) and stop there, like a user who walks away."""
    return Script("do_nothing", lambda ctx: None)


def login_and_approve(
    username: str = "interop-user",
    password: str = "any",  # noqa: S107 - devInteractions accepts any password
) -> Script:
    """Sign in on oidc-provider's devInteractions page (any login works; it becomes ``sub``),
    grant consent, and stop on the page the provider redirects to (the callback)."""

    def run(ctx: ScriptContext) -> None:
        page = ctx.page
        for _step in range(6):
            if not ctx.on_provider:
                return
            login = page.locator("form input[name=login]")
            consent = page.locator(
                "form:has(input[name=prompt][value=consent]) button[type=submit]"
            )
            if login.count():
                login.fill(username)
                page.locator("form input[name=password]").fill(password)
                ctx.submit_and_wait(page.locator("form button[type=submit]"))
            elif consent.count():
                ctx.submit_and_wait(consent)
            else:
                text = page.evaluate("() => document.body ? document.body.innerText : ''")
                raise BrowserScriptError(
                    f"unexpected provider page {strip_query(page.url)}: {text[:300]!r}"
                )
        ctx.wait_off_provider()

    return Script(f"login_and_approve({username!r})", run)


def deny() -> Script:
    """Click the provider's ``[ Cancel ]`` link (``/interaction/<uid>/abort``): the provider
    redirects to the callback with ``error=access_denied``."""

    def run(ctx: ScriptContext) -> None:
        if not ctx.on_provider:
            return
        ctx.submit_and_wait(ctx.page.get_by_role("link", name="[ Cancel ]"))
        ctx.wait_off_provider()

    return Script("deny", run)


def press(button: str) -> Script:
    """Click the button named ``button`` (its accessible name, e.g. ``"Approve"`` or
    ``"Deny"`` on :class:`fedbearer.testing.LocalFederation`'s approval page) and stop on the
    page the provider redirects to (the callback)."""

    def run(ctx: ScriptContext) -> None:
        if not ctx.on_provider:
            return
        ctx.submit_and_wait(ctx.page.get_by_role("button", name=button, exact=True))
        ctx.wait_off_provider()

    return Script(f"press({button!r})", run)


def custom(fn: Callable[[ScriptContext], None], name: Optional[str] = None) -> Script:
    """Any other user behaviour: ``fn(ctx)`` with the Playwright page in ``ctx.page``."""
    return Script(name or str(getattr(fn, "__name__", "custom")), fn)


# ---------------------------------------------------------------------------- driver


class BrowserDriver:
    """One headless Chromium in a dedicated Playwright thread (context manager).

    :param timeout: seconds any single navigation or wait inside a script may take.
    """

    def __init__(
        self,
        *,
        executable: Union[str, Path] = CHROMIUM,
        args: tuple[str, ...] = CHROMIUM_ARGS,
        timeout: float = 15.0,
        python: str = sys.executable,
    ) -> None:
        self.executable = str(executable)
        self.args = tuple(args)
        self.timeout = timeout
        self.python = python
        self.version: Optional[str] = None
        self.unexpected: list[BrowserRun] = []  # $BROWSER URLs that nobody expect()ed
        self._token = secrets.token_hex(16)  # hex: never starts with "-", never has ":"
        self._commands: queue.Queue[Optional[BrowserRun]] = queue.Queue()
        self._expected: collections.deque[BrowserRun] = collections.deque()
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._startup_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._listener: Optional[socket.socket] = None
        self._listener_thread: Optional[threading.Thread] = None
        self.port: Optional[int] = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BrowserDriver:
        if self._thread is not None:
            raise RuntimeError("driver already started")
        self._thread = threading.Thread(
            target=self._browser_thread, name="chromium-driver", daemon=True
        )
        self._thread.start()
        if not self._started.wait(60) or self._startup_error is not None:
            self.stop()
            raise RuntimeError(f"Chromium did not start: {self._startup_error!r}")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)  # accept() polls, so stop() needs no cross-thread close()
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._listener_thread = threading.Thread(
            target=self._listen, name="browser-shim-listener", daemon=True
        )
        self._listener_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener_thread is not None:
            self._listener_thread.join(10)
            self._listener_thread = None
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._commands.put(None)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> BrowserDriver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ public API

    @property
    def browser_env(self) -> str:
        """The value for ``$BROWSER`` that sends URLs to this driver.

        ``<python> <tests/interop/browser_shim.py> --port N --token T -- %s``; no ``:`` in it
        (webbrowser splits ``$BROWSER`` on ``os.pathsep``), so the paths must have none."""
        if self.port is None:
            raise RuntimeError("driver not started")
        parts = [self.python, str(SHIM), "--port", str(self.port), "--token", self._token, "--"]
        value = " ".join(shlex.quote(p) for p in parts) + " %s"
        if ":" in value:
            raise RuntimeError(f"$BROWSER cannot contain ':' (it is split on it): {value!r}")
        return value

    def expect(
        self,
        script: Script,
        *,
        linger: float = 0.0,
        screenshot: Optional[Union[str, Path]] = None,
        context_options: Optional[dict[str, Any]] = None,
        prepare: Optional[Callable[[Any], None]] = None,
        intercept: bool = True,
    ) -> BrowserRun:
        """The next URL that arrives through ``$BROWSER`` gets ``script`` (FIFO)."""
        run = BrowserRun(
            script,
            linger=linger,
            screenshot=screenshot,
            context_options=context_options,
            prepare=prepare,
            intercept=intercept,
        )
        with self._lock:
            self._expected.append(run)
        return run

    def open(
        self,
        url: str,
        script: Script,
        *,
        linger: float = 0.0,
        screenshot: Optional[Union[str, Path]] = None,
        context_options: Optional[dict[str, Any]] = None,
        prepare: Optional[Callable[[Any], None]] = None,
        intercept: bool = True,
    ) -> BrowserRun:
        """Load ``url`` with ``script`` now (returns at once; ``.wait()`` for the result)."""
        run = BrowserRun(
            script,
            linger=linger,
            screenshot=screenshot,
            context_options=context_options,
            prepare=prepare,
            intercept=intercept,
        )
        self._submit(run, url)
        return run

    def opener(self, script: Script, **options: Any) -> Opener:
        """A ``Callable[[str], bool]`` opener for code that takes one instead of using
        ``webbrowser``: each call opens the URL with ``script`` and returns True at once."""
        return Opener(self, script, options)

    def forget_expectations(self) -> list[BrowserRun]:
        """Drop expect()ed runs that never got a URL (call between tests); returns them."""
        with self._lock:
            left = list(self._expected)
            self._expected.clear()
        return left

    # ------------------------------------------------------------------ internals

    def _submit(self, run: BrowserRun, url: str) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("browser driver is not running")
        run.url = url
        run.delivered.set()
        self._commands.put(run)

    def _listen(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._serve_shim(conn)
                except Exception as exc:  # never let the listener die
                    with contextlib.suppress(OSError):
                        conn.sendall(json.dumps({"ok": False, "error": repr(exc)}).encode())

    def _serve_shim(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\n"):
                break
        message = json.loads(data)
        if not hmac.compare_digest(str(message.get("token", "")), self._token):
            conn.sendall(b'{"ok": false, "error": "bad token"}\n')
            return
        url = str(message["url"])
        with self._lock:
            run = self._expected.popleft() if self._expected else None
        if run is None:
            run = BrowserRun(do_nothing())
            self.unexpected.append(run)
        run.shim_argv = list(message.get("argv") or [])
        self._submit(run, url)
        conn.sendall(b'{"ok": true}\n')

    def _browser_thread(self) -> None:
        try:
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()
            return
        browser = None
        try:
            try:
                browser = playwright.chromium.launch(
                    executable_path=self.executable,
                    headless=True,
                    args=list(self.args),
                    timeout=60_000,
                )
                self.version = browser.version
            except BaseException as exc:
                self._startup_error = exc
                return
            finally:
                self._started.set()
            while True:
                run = self._commands.get()
                if run is None:
                    return
                run._finish(self._execute(browser, run))
        finally:
            with contextlib.suppress(Exception):
                if browser is not None:
                    browser.close()
            with contextlib.suppress(Exception):
                playwright.stop()
            # Whatever is still queued will never run: release its waiters.
            while True:
                try:
                    left = self._commands.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    left._finish(
                        BrowserResult(
                            script=left.script.name,
                            start_url=left.url or "",
                            error="browser driver stopped",
                        )
                    )

    def _execute(self, browser: Any, run: BrowserRun) -> BrowserResult:
        assert run.url is not None
        started = time.monotonic()
        result = BrowserResult(script=run.script.name, start_url=run.url, shim_argv=run.shim_argv)
        responses: list[Any] = []
        context = None
        try:
            context = browser.new_context(**run.context_options)
            if run.prepare is not None:
                run.prepare(context)
            context.set_default_timeout(self.timeout * 1000)
            context.set_default_navigation_timeout(self.timeout * 1000)

            def block(route: Any) -> None:
                result.blocked.append(route.request.url)
                route.abort("blockedbyclient")

            if run.intercept:
                context.route(lambda url: not is_loopback_url(url), block)
            else:
                context.on(
                    "request",
                    lambda request: (
                        None
                        if is_loopback_url(request.url)
                        else result.external.append(request.url)
                    ),
                )
            page = context.new_page()

            def on_response(response: Any) -> None:
                request = response.request
                if request.is_navigation_request() and response.frame == page.main_frame:
                    responses.append(response)

            page.on("response", on_response)

            def on_console(msg: Any) -> None:
                result.console.append(f"{msg.type}: {msg.text}")
                location = msg.location or {}
                result.console_entries.append(
                    ConsoleEntry(msg.type, msg.text, strip_query(location.get("url") or ""))
                )

            # Every tab of the context, so a script's extra tabs are watched too.
            context.on("console", on_console)
            context.on("weberror", lambda e: result.page_errors.append(str(e.error)))

            ctx = ScriptContext(page, run.url, self.timeout, result.visits)
            try:
                page.goto(run.url, wait_until="load")
                run.script.run(ctx)
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {exc}"
            self._record_page(page, result, run)
            for response in responses:
                result.navigations.append(self._navigation(response))
            if run.linger > 0:
                deadline = time.monotonic() + run.linger
                while time.monotonic() < deadline and not page.is_closed():
                    with contextlib.suppress(Exception):
                        page.wait_for_timeout(50)
                result.closed_itself = page.is_closed()
        except Exception as exc:  # the driver must survive anything a run does
            result.error = result.error or f"{type(exc).__name__}: {exc}"
        finally:
            if context is not None:
                with contextlib.suppress(Exception):
                    context.close()
            result.duration = time.monotonic() - started
        return result

    @staticmethod
    def _record_page(page: Any, result: BrowserResult, run: BrowserRun) -> None:
        if page.is_closed():
            return
        try:
            page.wait_for_load_state("load")
            result.final_url = page.url
            result.title = page.title()
            result.text = page.evaluate("() => document.body ? document.body.innerText : ''")
            result.html = page.content()
            if run.screenshot is not None:
                page.screenshot(path=str(run.screenshot), full_page=True)
                result.screenshot = run.screenshot
        except Exception as exc:
            if not page.is_closed():
                result.error = result.error or f"recording the page: {type(exc).__name__}: {exc}"

    @staticmethod
    def _navigation(response: Any) -> Navigation:
        try:
            headers = {k.lower(): v for k, v in response.all_headers().items()}
        except Exception:
            headers = {k.lower(): v for k, v in response.headers.items()}
        return Navigation(
            url=strip_query(response.url),
            query=parse_qs(urlsplit(response.url).query, keep_blank_values=True),
            status=response.status,
            headers=headers,
            method=response.request.method,
        )


class Opener:
    """``opener(url) -> True``: opens each URL in the driver with the same script."""

    def __init__(self, driver: BrowserDriver, script: Script, options: dict[str, Any]) -> None:
        self.driver = driver
        self.script = script
        self.options = options
        self.runs: list[BrowserRun] = []

    def __call__(self, url: str) -> bool:
        self.runs.append(self.driver.open(url, self.script, **self.options))
        return True

    def wait(self, timeout: float = 60.0) -> BrowserResult:
        """The first opened URL's result."""
        deadline = time.monotonic() + timeout
        while not self.runs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the opener was not called within {timeout}s")
            time.sleep(0.02)
        return self.runs[0].wait(max(0.0, deadline - time.monotonic()))
