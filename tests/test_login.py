"""One interactive login over real sockets: LocalFederation + loopback server + a thread
playing the browser."""

from __future__ import annotations

import _thread
import _weakrefset
import io
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
import weakref
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

import fedbearer
from fedbearer import (
    AuthorizationError,
    Bearer,
    ConfigurationError,
    InvalidGrantError,
    LoginError,
    LoginTimeoutError,
    TokenEndpointError,
    _login,
    _loopback,
)
from fedbearer._interrupts import defers_interrupts, interruptible
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .conftest import assert_released, login_threads, wait_for

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def get(url: str, method: str = "GET"):
    """A request to the loopback server that accepts error statuses."""
    req = urllib.request.Request(url, method=method)
    try:
        with _NO_PROXY.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def bearer_for(fed: LocalFederation, **kwargs) -> Bearer:
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 10)
    return Bearer("default", fed.client_id, fed.endpoint, fed.federation_id or "", **kwargs)


def test_login_returns_a_token_the_federation_accepts(federation, browser):
    out = io.StringIO()
    token = bearer_for(federation, opener=browser, writer=out).receiver().fetch()
    assert federation.is_valid(token.token)
    assert token.refresh_token and token.expiration is not None
    assert federation.logins == 1 and federation.code_exchanges == 1
    assert browser.join(5) and browser.error is None
    assert browser.last_status == 200
    assert "Login complete" in (browser.last_body or "")
    assert token.token not in (browser.last_body or "")
    text = out.getvalue()
    assert federation.authorize_url in text and "Logged in." in text
    port = urlsplit(query_of(browser.opened[0])["redirect_uri"]).port
    assert_released(port)


def test_federation_sees_exactly_the_reference_parameters(federation, browser):
    bearer_for(federation, opener=browser).receiver().fetch()
    (params,) = federation.authorize_params
    assert set(params) == {
        "response_type",
        "client_id",
        "scope",
        "state",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "federation-id",
    }
    assert params["response_type"] == "code" and params["scope"] == "openid"
    assert params["code_challenge_method"] == "S256"
    assert params["federation-id"] == federation.federation_id
    assert len(params["state"]) == 43 and len(params["code_challenge"]) == 43
    redirect = urlsplit(params["redirect_uri"])
    assert redirect.scheme == "http" and redirect.hostname == "127.0.0.1"
    assert redirect.path == "" and params["redirect_uri"].count("/") == 2


def test_endpoint_path_prefix_is_kept():
    with LocalFederation(path_prefix="/fed") as fed:
        assert fed.endpoint.endswith("/fed")
        token = bearer_for(fed, opener=ProgrammaticBrowser()).receiver().fetch()
        assert fed.is_valid(token.token)


def test_module_level_authorize_is_the_same_login(federation, browser):
    token = fedbearer.authorize(
        federation.client_id,
        federation.endpoint,
        federation.federation_id or "",
        writer=io.StringIO(),
        opener=browser,
        timeout=10,
    )
    assert federation.is_valid(token.token)


def test_success_and_failure_pages_carry_the_security_headers(federation, browser):
    bearer_for(federation, opener=browser).receiver().fetch()
    assert browser.join(5)  # the login can end before the browser has read its page
    headers = {k.lower(): v for k, v in (browser.last_headers or {}).items()}
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src 'sha256-" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "text/html; charset=utf-8"


class StrayThenReal:
    """An opener that pesters the callback server before letting the real browser go."""

    def __init__(self, real: ProgrammaticBrowser) -> None:
        self.real = real
        self.strays: list[tuple[str, int]] = []
        self.idle: list[socket.socket] = []

    def __call__(self, url: str) -> bool:
        redirect = query_of(url)["redirect_uri"]
        port = urlsplit(redirect).port
        state = query_of(url)["state"]
        # idle and half-open connections that never send a request
        for _ in range(3):
            self.idle.append(socket.create_connection(("127.0.0.1", port)))
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /?state=")
        self.idle.append(half)
        for path, method in [
            ("/favicon.ico", "GET"),
            ("/robots.txt", "GET"),
            ("/", "GET"),
            ("/?code=stolen", "GET"),
            ("/?state=wrong&code=abc", "GET"),
            ("/?state=wrong&error=access_denied", "GET"),
            ("/?" + urlencode({"state": state}), "GET"),
            ("/?" + urlencode({"state": state, "code": "x"}), "HEAD"),
            ("/?" + urlencode({"state": state, "code": "x"}), "POST"),
            ("/?" + urlencode({"state": state, "code": "a", "code2": "b"}) + "&state=dup", "GET"),
        ]:
            status, _, _ = get(redirect + path, method)
            self.strays.append((f"{method} {path.split('?')[0]}", status))
        return self.real(url)


def test_stray_requests_do_not_end_the_login(federation, browser):
    opener = StrayThenReal(browser)
    try:
        token = bearer_for(federation, opener=opener).receiver().fetch()
    finally:
        for sock in opener.idle:
            sock.close()
    assert federation.is_valid(token.token)
    statuses = [status for _, status in opener.strays]
    assert statuses == [404, 404, 400, 400, 400, 400, 400, 200, 405, 400]
    assert browser.join(5) and browser.last_status == 200
    assert login_threads() == []


def test_idle_connections_do_not_delay_the_end_of_the_login(federation, browser):
    opener = StrayThenReal(browser)
    started = time.monotonic()
    try:
        bearer_for(federation, opener=opener).receiver().fetch()
        elapsed = time.monotonic() - started
    finally:
        for sock in opener.idle:
            sock.close()
    # Idle sockets are woken on close rather than waited out (CONNECTION_TIMEOUT is 10 s).
    assert elapsed < 8
    assert login_threads() == []


def test_foreign_host_header_is_refused(federation):
    seen = {}

    def opener(url: str) -> bool:
        redirect = query_of(url)["redirect_uri"]
        port = urlsplit(redirect).port
        q = urlencode({"state": query_of(url)["state"], "code": "forged"})
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(f"GET /?{q} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
            seen["reply"] = sock.recv(100)
        return ProgrammaticBrowser()(url)

    token = bearer_for(federation, opener=opener).receiver().fetch()
    assert seen["reply"].startswith(b"HTTP/1.0 400")
    assert federation.is_valid(token.token)


def test_denied_login_raises_authorization_error_and_shows_it_escaped(federation, browser):
    federation.fail_next("deny")
    with pytest.raises(AuthorizationError) as info:
        bearer_for(federation, opener=browser).receiver().fetch()
    assert info.value.error == "access_denied"
    assert isinstance(info.value, LoginError)
    assert browser.join(5)
    assert browser.last_status == 400
    assert "Login denied" in (browser.last_body or "")
    assert "access_denied" in (browser.last_body or "")


def test_federation_error_text_is_html_escaped_on_the_page(federation):
    seen = {}

    def opener(url: str) -> bool:
        def run():
            q = query_of(url)
            params = {
                "state": q["state"],
                "error": "invalid_request",
                "error_description": "<script>alert(1)</script> & more",
            }
            seen["page"] = get(q["redirect_uri"] + "/?" + urlencode(params))

        threading.Thread(target=run, daemon=True).start()
        return True

    with pytest.raises(AuthorizationError) as info:
        bearer_for(federation, opener=opener).receiver().fetch()
    assert info.value.error == "invalid_request"
    assert info.value.error_description == "<script>alert(1)</script> & more"
    assert wait_for(lambda: "page" in seen)
    status, _, body = seen["page"]
    assert status == 400
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body


def test_wrong_issuer_is_rejected():
    with LocalFederation() as fed:
        seen = {}

        def opener(url: str) -> bool:
            def run():
                q = query_of(url)
                params = {"state": q["state"], "code": "c", "iss": "https://evil.example"}
                seen["page"] = get(q["redirect_uri"] + "/?" + urlencode(params))

            threading.Thread(target=run, daemon=True).start()
            return True

        with pytest.raises(LoginError, match="issuer"):
            bearer_for(fed, opener=opener).receiver().fetch()
        assert wait_for(lambda: "page" in seen) and seen["page"][0] == 400
        assert fed.code_exchanges == 0


def test_no_callback_times_out_and_releases_the_port(federation):
    opened = []
    with pytest.raises(LoginTimeoutError) as info:
        bearer_for(federation, opener=opened.append, timeout=0.5).receiver().fetch()
    assert isinstance(info.value, TimeoutError)
    port = urlsplit(query_of(opened[0])["redirect_uri"]).port
    assert_released(port)


def test_fetch_timeout_overrides_the_bearers(federation):
    started = time.monotonic()
    with pytest.raises(LoginTimeoutError):
        bearer_for(federation, opener=lambda url: True, timeout=60).receiver().fetch(timeout=0.3)
    assert time.monotonic() - started < 30


def test_token_endpoint_failure_is_typed_and_shown_as_a_failed_page(federation, browser):
    federation.fail_next("invalid_grant")
    with pytest.raises(InvalidGrantError) as info:
        bearer_for(federation, opener=browser).receiver().fetch()
    assert info.value.status == 400
    assert browser.join(5) and browser.last_status == 400
    assert "Login failed" in (browser.last_body or "")
    assert login_threads() == []


def test_slow_token_endpoint_is_bounded_by_the_login_deadline(federation, browser):
    federation.fail_next("slow", delay=10)
    started = time.monotonic()
    with pytest.raises(LoginTimeoutError):
        bearer_for(federation, opener=browser, timeout=1.0).receiver().fetch()
    assert time.monotonic() - started < 8  # the 1 s deadline, not the 10 s answer
    assert login_threads() == []


def test_fixed_port_is_used_and_a_busy_one_is_a_clear_error(federation, browser):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = bearer_for(federation, opener=browser, port=port).receiver().fetch()
    assert federation.is_valid(token.token)
    assert federation.authorize_params[0]["redirect_uri"] == f"http://127.0.0.1:{port}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match=str(taken)):
            bearer_for(federation, opener=browser, port=taken).receiver().fetch()


def test_failed_browser_launch_keeps_waiting_for_the_shown_url(federation):
    out = io.StringIO()

    def broken(url: str) -> bool:
        # The user opens the URL by hand a moment later.
        threading.Timer(0.2, ProgrammaticBrowser(), args=(url,)).start()
        return False

    token = bearer_for(federation, opener=broken, writer=out).receiver().fetch()
    assert federation.is_valid(token.token)
    assert "Could not open a browser" in out.getvalue()


def test_raising_opener_does_not_abort_the_login(federation):
    def broken(url: str) -> bool:
        threading.Timer(0.2, ProgrammaticBrowser(), args=(url,)).start()
        raise OSError("no display")

    token = bearer_for(federation, opener=broken).receiver().fetch()
    assert federation.is_valid(token.token)


def test_blocking_opener_does_not_block_the_login(federation):
    release = threading.Event()

    def blocking(url: str) -> bool:
        ProgrammaticBrowser()(url)
        release.wait(10)  # like a browser command that never exits
        return True

    try:
        token = bearer_for(federation, opener=blocking).receiver().fetch()
        assert federation.is_valid(token.token)
    finally:
        release.set()


def test_no_browser_open_only_shows_the_url(federation):
    out = io.StringIO()
    called = []

    def user_reads_the_url():
        assert wait_for(lambda: "http" in out.getvalue())
        url = next(w for w in out.getvalue().split() if w.startswith(federation.authorize_url))
        ProgrammaticBrowser()(url)

    threading.Thread(target=user_reads_the_url, daemon=True).start()
    token = (
        bearer_for(federation, opener=called.append, no_browser_open=True, writer=out)
        .receiver()
        .fetch()
    )
    assert called == []
    assert federation.is_valid(token.token)
    assert "Open this URL in a browser" in out.getvalue()


def test_url_goes_to_stderr_without_a_writer(federation, browser, capsys):
    Bearer(
        "default", federation.client_id, federation.endpoint, "test-federation", opener=browser
    ).receiver().fetch(timeout=10)
    assert federation.authorize_url in capsys.readouterr().err


def test_ctrl_c_ends_the_login_and_releases_the_port(federation):
    opened = []

    def interrupt(url: str) -> bool:
        opened.append(url)
        threading.Timer(0.2, _thread.interrupt_main).start()
        return True

    with pytest.raises(KeyboardInterrupt):
        bearer_for(federation, opener=interrupt, timeout=30).receiver().fetch()
    assert_released(urlsplit(query_of(opened[0])["redirect_uri"]).port)


_PACKAGE = os.path.dirname(fedbearer.__file__) + os.sep
_TEST_KIT = os.path.join(_PACKAGE, "testing") + os.sep


def _ours(code) -> bool:
    """fedbearer's own code, not the test kit's."""
    name = code.co_filename
    return name.startswith(_PACKAGE) and not name.startswith(_TEST_KIT)


#: threading and queue take and release locks in Python, for the login and requests alike;
#: weakref and _weakrefset run the callbacks of weak references (finalizers, WeakSet's).
_STDLIB_FILES = (threading.__file__, queue.__file__, weakref.__file__, _weakrefset.__file__)


def _login_code(code) -> bool:
    """fedbearer's own code, and the standard library's where a Ctrl-C is delicate."""
    return _ours(code) or code.co_filename in _STDLIB_FILES


def _login_line(frame) -> bool:
    """A line the login itself runs: fedbearer's code, or threading called from it."""
    if _ours(frame.f_code):
        return True
    while frame is not None and frame.f_code.co_filename == threading.__file__:
        frame = frame.f_back
    return frame is not None and _ours(frame.f_code)


def _login_interrupted_at(federation: LocalFederation, k: int) -> tuple[str, str, str]:
    """Run a login, sending SIGINT at the k-th line it runs: ``(where, outcome, shown)``.

    The lines are those of :func:`_login_code` and of what the finalizers (``weakref.finalize``)
    call as the login drops what it used (Python prints and drops a KeyboardInterrupt
    raised in a finalizer). The login's own lines (:func:`_login_line`) count each time they
    run, a loop's body in every round. The others, threading and queue as requests uses
    them and the finalizers, count once for each line they are run from, to keep the sweep
    quick: counted every time, they would add some 400 logins, mostly of the same lines.

    ``where`` is ``""`` when the login ended before its k-th line. The signal goes through
    ``signal.raise_signal``, so it meets the handler installed at that moment, as Ctrl-C would.
    """
    seen, others = 0, set()  # lines counted; the others' lines, with where they ran from
    where, finalizing = "", 0

    def trace(frame, event, arg):  # called as each function starts: trace its lines?
        nonlocal finalizing
        if frame.f_code is weakref.finalize.__call__.__code__:
            finalizing += 1  # what the login used is dropped: its finalizers count too
            return count
        return count if finalizing or _login_code(frame.f_code) else None

    def count(frame, event, arg):
        nonlocal seen, where, finalizing
        if event == "line" and not where:
            if not _login_line(frame):
                caller = frame.f_back
                line = (
                    frame.f_code,
                    frame.f_lineno,
                    caller and caller.f_code,
                    caller and caller.f_lineno,
                )
                if line in others:
                    return count
                others.add(line)
            seen += 1
            if seen == k:
                where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                signal.raise_signal(signal.SIGINT)
        elif event == "return" and frame.f_code is weakref.finalize.__call__.__code__:
            finalizing -= 1
        return count

    out = io.StringIO()
    # The test's browser (and its thread) outlives the trace: dropped as authorize returns,
    # its thread's WeakSet callback would run after the login, where the caller's handler
    # is back and a SIGINT is the caller's business.
    browser = ProgrammaticBrowser()
    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        fedbearer.authorize(
            federation.client_id,
            federation.endpoint,
            federation.federation_id,
            opener=browser,
            writer=out,
            timeout=10,
        )
        outcome = "no interrupt"
    except KeyboardInterrupt:
        outcome = "interrupted"
    except Exception as exc:
        outcome = repr(exc)
    finally:
        sys.settrace(previous)
    return where, outcome, out.getvalue()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_at_every_line_of_a_login_ends_it_cleanly(federation):
    """SIGINT at the k-th line a login runs, for every k, one login each: each ends in
    KeyboardInterrupt with the port released, no server thread left and the SIGINT handler
    as it was; never a RuntimeError, a hang, a thread's traceback or a lost Ctrl-C.

    The lines are fedbearer's own and those of :mod:`threading` it calls (Thread.start and
    Event.wait are where a KeyboardInterrupt used to leave a half-started thread or come out
    as "RuntimeError: release unlocked lock"), and those of threading and queue that
    requests runs and of the finalizers the login triggers (where it used to hang in
    urllib3's connection pool, or be dropped): see :func:`_login_interrupted_at`. The sweep
    ends with the first k the login does not reach.
    """
    handler = signal.getsignal(signal.SIGINT)
    thread_errors, dropped = [], []  # a thread's traceback; an exception a finalizer dropped
    previous_hook, threading.excepthook = threading.excepthook, thread_errors.append
    previous_unraisable, sys.unraisablehook = sys.unraisablehook, dropped.append
    failures, k = [], 0
    try:
        while True:
            k += 1
            where, outcome, shown = _login_interrupted_at(federation, k)
            if not where:
                assert outcome == "no interrupt"
                break
            port = re.search(r"redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A(\d+)", shown)
            try:
                assert outcome == "interrupted", outcome
                assert signal.getsignal(signal.SIGINT) is handler, "SIGINT handler not restored"
                if port:
                    assert_released(int(port[1]))
                else:
                    assert login_threads() == []
            except AssertionError as failure:
                failures.append(f"line {k} ({where}): {failure}")
                signal.signal(signal.SIGINT, handler)
                for thread in login_threads():  # do not blame the next lines for this one
                    if thread.is_alive():
                        thread.join(5)
    finally:
        threading.excepthook = previous_hook
        sys.unraisablehook = previous_unraisable
        signal.signal(signal.SIGINT, handler)
    assert k > 300, "the trace did not see the login"  # about 1200 lines today
    assert failures == [], "\n".join(failures)
    assert [args.exc_value for args in thread_errors] == []
    assert [(args.exc_value, args.object) for args in dropped] == []


class _SwallowingStream(io.RawIOBase):
    """A stream that gets the Ctrl-C as IOBase's finalizer asks whether it is closed, as it
    asks urllib3's responses: the finalizer discards what ``closed`` raises, silently."""

    @property
    def closed(self) -> bool:
        signal.raise_signal(signal.SIGINT)
        return True


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_ctrl_c_a_finalizer_swallows_in_an_interruptible_call_is_raised_again():
    """No frame tells that ``closed`` runs in a finalizer, so the Ctrl-C is raised there and
    swallowed; the interruptible call must raise it again as it returns, not lose it."""

    @interruptible
    def drop_a_stream() -> None:
        _SwallowingStream()  # dropped at once: its finalizer runs here

    @defers_interrupts
    def login() -> None:
        drop_a_stream()

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        login()
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_ctrl_c_in_a_weakset_callback_in_an_interruptible_call_is_held_not_dropped():
    """A WeakSet's callback runs where a member dies, in the middle of a request if the
    garbage collector frees it there: CPython would print a KeyboardInterrupt raised there
    and drop it. It must be held, and raised as the interruptible call returns."""

    class Member:
        pass

    members: weakref.WeakSet[Member] = weakref.WeakSet()

    def trace(frame, event, arg):  # SIGINT as the WeakSet's callback starts
        code = frame.f_code
        if code.co_filename == _weakrefset.__file__ and code.co_name == "_remove":
            signal.raise_signal(signal.SIGINT)

    @interruptible
    def drop_a_member() -> None:
        member = Member()
        members.add(member)
        del member  # the callback runs here

    @defers_interrupts
    def login() -> None:
        drop_a_member()

    dropped = []
    previous_trace, previous_unraisable = sys.gettrace(), sys.unraisablehook
    sys.unraisablehook = dropped.append
    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            login()
    finally:
        sys.settrace(previous_trace)
        sys.unraisablehook = previous_unraisable
    assert [(args.exc_value, args.object) for args in dropped] == []


def redirect_location(url: str) -> str:
    """The Location the authorize endpoint redirects to (the callback URL), not followed."""

    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoFollow())
    try:
        opener.open(url, timeout=5)
    except urllib.error.HTTPError as err:
        return err.headers["Location"]
    raise AssertionError("authorize did not redirect")


def test_reload_and_second_tab_show_the_same_page_without_a_second_exchange(
    federation, monkeypatch
):
    pages = []
    # Hold the code exchange until both tabs have reached the server: otherwise the first
    # tab can finish the whole login, and close the server, before the second connects.
    offers = []
    real_offer, real_exchange = _loopback.LoopbackServer.offer, _login.exchange_code

    def offer(self, callback):
        offers.append(callback)
        return real_offer(self, callback)

    def exchange(*args, **kwargs):
        assert wait_for(lambda: len(offers) == 2)
        return real_exchange(*args, **kwargs)

    monkeypatch.setattr(_loopback.LoopbackServer, "offer", offer)
    monkeypatch.setattr(_login, "exchange_code", exchange)

    def opener(url: str) -> bool:
        def run():
            location = redirect_location(url)
            tabs = [threading.Thread(target=lambda: pages.append(get(location))) for _ in "ab"]
            for tab in tabs:
                tab.start()
            for tab in tabs:
                tab.join()

        threading.Thread(target=run, daemon=True).start()
        return True

    token = bearer_for(federation, opener=opener).receiver().fetch()
    assert federation.is_valid(token.token)
    assert wait_for(lambda: len(pages) == 2)
    assert [p[0] for p in pages] == [200, 200]
    assert federation.code_exchanges == 1


def test_nothing_secret_reaches_any_log_record_or_error(federation, browser, secrets, caplog):
    caplog.set_level(logging.DEBUG)  # root logger: ours, urllib3, requests, oauthlib
    out = io.StringIO()
    token = bearer_for(federation, opener=browser, writer=out).receiver().fetch()
    assert browser.join(5) and browser.last_body
    federation.fail_next("invalid_grant")
    with pytest.raises(InvalidGrantError) as failed:
        bearer_for(federation, opener=ProgrammaticBrowser()).receiver().fetch()
    federation.fail_next("deny")
    with pytest.raises(AuthorizationError) as denied:
        bearer_for(federation, opener=ProgrammaticBrowser()).receiver().fetch()
    found = secrets.all()
    assert len(found) >= 8 and token.token in found
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "fedbearer.login" in records  # the capture did see our records
    shown = out.getvalue()
    for secret in found:
        assert secret not in records
        assert secret not in str(failed.value) and secret not in repr(failed.value)
        assert secret not in str(denied.value)
        assert secret not in repr(token) and secret not in (browser.last_body or "")
    # The URL is shown to the user in full (with its state), but logged redacted.
    state = query_of(browser.opened[0])["state"]
    assert state in shown
    assert "state=REDACTED" in records


def test_configuration_errors_are_raised_at_construction():
    with pytest.raises(ConfigurationError):
        Bearer("default", "", "auth.example.com", "f")
    with pytest.raises(ConfigurationError):
        Bearer("default", "c", "ftp://auth.example.com", "f")
    with pytest.raises(ConfigurationError):
        Bearer("default", "c", "auth.example.com", "f", timeout=0)
    with pytest.raises(ConfigurationError):
        Bearer("default", "c", "auth.example.com", "f", port=70000)
    with pytest.raises(ConfigurationError):
        Bearer("", "c", "auth.example.com", "f")


def test_unreachable_token_endpoint_is_a_token_endpoint_error(federation):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]

    def opener(url: str) -> bool:
        def run():
            q = query_of(url)
            get(q["redirect_uri"] + "/?" + urlencode({"state": q["state"], "code": "c"}))

        threading.Thread(target=run, daemon=True).start()
        return True

    with pytest.raises(TokenEndpointError) as info:
        Bearer(
            "default", "c", f"http://127.0.0.1:{dead}", "f", opener=opener, writer=io.StringIO()
        ).receiver().fetch(timeout=10)
    assert info.value.status is None
    assert "could not reach" in str(info.value)


def test_bearer_repr_and_name():
    b = Bearer("p", "client", "auth.example.com", "fid")
    assert b.name == "federation/auth.example.com/fid/p"
    assert "client" in repr(b) and "https://auth.example.com" in repr(b)


def test_fetch_rejects_a_bad_timeout_instead_of_using_the_default(federation):
    with pytest.raises(ConfigurationError):
        bearer_for(federation, opener=lambda url: True).receiver().fetch(timeout=-1)
