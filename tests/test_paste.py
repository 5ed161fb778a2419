"""Paste fallback, remote logins in a real terminal, Ctrl-C, and non-interactive mode.

The end-to-end cases run ``fedbearer.authorize`` in a child process on a pseudo-terminal
(pexpect) against a :class:`~fedbearer.testing.LocalFederation`, with an SSH session
faked through the environment. The "browser" is urllib: it asks the federation for the
authorization, takes the ``Location`` of the 302 (the callback URL) without ever
requesting it, and that URL is pasted into the terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import stat
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from fedbearer import Bearer, InteractionRequiredError
from fedbearer._paste import PasteReader, classify_paste, start_paste_reader
from fedbearer._protocol import Callback, CallbackKind
from fedbearer.testing import LocalFederation

from .conftest import import_or_fail, login_threads, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the paste fallback is POSIX only")

REPO = Path(__file__).resolve().parent.parent
STATE = "s" * 43
CODE = "the-authorization-code-0123456789"
ISSUERS = frozenset({"https://auth.example.com"})
REDIRECT = "http://127.0.0.1:8765"


def classify(text: str):
    return classify_paste(text, redirect_uri=REDIRECT, state=STATE, issuers=ISSUERS)


# ------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    "text",
    [
        f"http://127.0.0.1:8765/?code={CODE}&state={STATE}",
        f"http://127.0.0.1:8765?code={CODE}&state={STATE}",
        f"http://localhost:8765/?code={CODE}&state={STATE}",
        f"http://[::1]:8765/?code={CODE}&state={STATE}",
        f"HTTP://127.0.0.1:8765/?code={CODE}&state={STATE}&iss=https%3A%2F%2Fauth.example.com",
        f"  http://127.0.0.1:8765/?code={CODE}&state={STATE}  \r",
        f"<http://127.0.0.1:8765/?code={CODE}&state={STATE}>",
        f'"http://127.0.0.1:8765/?code={CODE}&state={STATE}"',
        f"\x1b[200~http://127.0.0.1:8765/?code={CODE}&state={STATE}\x1b[201~",
        f"http://127.0.0.1:8765/?code={CODE}&state={STATE}#fragment",
    ],
)
def test_a_pasted_callback_url_yields_the_code(text):
    callback, explanation = classify(text)
    assert explanation is None
    assert callback is not None and callback.kind is CallbackKind.CODE and callback.code == CODE


def test_a_pasted_error_response_is_decisive():
    callback, _ = classify(
        f"{REDIRECT}/?error=access_denied&error_description=User+said+no&state={STATE}"
    )
    assert callback is not None and callback.kind is CallbackKind.ERROR
    assert callback.error == "access_denied" and callback.error_description == "User said no"


def test_a_pasted_response_from_another_issuer_is_decisive_and_rejected_later():
    callback, _ = classify(f"{REDIRECT}/?code={CODE}&state={STATE}&iss=https%3A%2F%2Fevil.example")
    assert callback is not None and callback.kind is CallbackKind.WRONG_ISSUER


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("hello", "not a URL"),
        ("127.0.0.1:8765/?code=x", "not a URL"),
        ("http://127.0.0.1:notaport/?code=x", "not a URL"),
        (f"https://127.0.0.1:8765/?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://127.0.0.1:9999/?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://127.0.0.1/?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://example.com:8765/?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://u:p@127.0.0.1:8765/?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://127.0.0.1:8765/callback?code={CODE}&state={STATE}", "not this login's callback"),
        (f"http://127.0.0.1:8765/?code={CODE}", "no login response"),
        (f"http://127.0.0.1:8765/#code={CODE}&state={STATE}", "no login response"),
        (f"http://127.0.0.1:8765/?code={CODE}&state={'t' * 43}", "another login attempt"),
        (f"http://127.0.0.1:8765/?state={STATE}", "neither a code nor an error"),
        (f"http://127.0.0.1:8765/?code={CODE}&code=x&state={STATE}", "neither a code nor an"),
    ],
)
def test_anything_else_gets_an_explanation_that_does_not_repeat_it(text, says):
    callback, explanation = classify(text)
    assert callback is None
    assert explanation is not None and says in explanation
    assert "\n" not in explanation
    assert CODE not in explanation and STATE not in explanation and "t" * 43 not in explanation


@pytest.mark.parametrize(
    "text",
    [
        f"http://127.0.0.1/?code={CODE}&state={STATE}",
        f"http://localhost/?code={CODE}&state={STATE}",
        f"http://[::1]/?code={CODE}&state={STATE}",
        f"http://127.0.0.1?code={CODE}&state={STATE}",
        f"http://127.0.0.1:80/?code={CODE}&state={STATE}",
    ],
)
def test_with_callback_port_80_a_pasted_url_without_a_port_is_ours(text):
    """The browser's address bar drops the default port: ``http://127.0.0.1:80/?...`` is
    shown (and copied) as ``http://127.0.0.1/?...``."""
    callback, explanation = classify_paste(
        text, redirect_uri="http://127.0.0.1:80", state=STATE, issuers=ISSUERS
    )
    assert explanation is None
    assert callback is not None and callback.kind is CallbackKind.CODE and callback.code == CODE


def test_with_callback_port_80_other_ports_are_still_refused():
    callback, explanation = classify_paste(
        f"http://127.0.0.1:8080/?code={CODE}&state={STATE}",
        redirect_uri="http://127.0.0.1:80",
        state=STATE,
        issuers=ISSUERS,
    )
    assert callback is None and explanation is not None and "not this login's" in explanation


@pytest.mark.parametrize("text", ["", "   ", "\r", "\x1b[200~\x1b[201~"])
def test_an_empty_line_is_ignored_silently(text):
    assert classify(text) == (None, None)


# ------------------------------------------------------------------- the reader


class FakeServer:
    def __init__(self, accept: bool = True) -> None:
        self.offers: list[Callback] = []
        self.accept = accept

    def offer(self, callback: Callback) -> bool:
        self.offers.append(callback)
        return self.accept


class Pipe:
    """A pipe standing in for the terminal (select works on both)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.said: list[str] = []
        self.server = FakeServer()

    def reader(self) -> PasteReader:
        reader = PasteReader(
            server=self.server,
            redirect_uri=REDIRECT,
            state=STATE,
            issuers=ISSUERS,
            say=self.said.append,
            fd=self.read_fd,
        )
        reader.start()
        return reader

    def type(self, text: str) -> None:
        os.write(self.write_fd, text.encode())

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pipe():
    p = Pipe()
    yield p
    p.close()


def test_reader_explains_garbage_then_offers_the_callback_and_stops(pipe):
    reader = pipe.reader()
    pipe.type("garbage\n")
    assert wait_for(lambda: len(pipe.said) == 1)
    assert "not a URL" in pipe.said[0]
    assert reader.running and pipe.server.offers == []
    pipe.type(f"{REDIRECT}/?code={CODE}&state={STATE}\n")
    assert wait_for(lambda: not reader.running)
    assert [c.code for c in pipe.server.offers] == [CODE]
    assert pipe.said[-1] == "Got the login response from the pasted address.\n"
    assert reader.stats == {"explained": 1, "callback": 1}
    assert all(CODE not in line for line in pipe.said)


def test_reader_assembles_a_line_that_arrives_in_pieces(pipe):
    reader = pipe.reader()
    line = f"{REDIRECT}/?code={CODE}&state={STATE}"
    pipe.type(line[:20])
    time.sleep(0.05)
    assert pipe.server.offers == []
    pipe.type(line[20:] + "\n")
    assert wait_for(lambda: not reader.running)
    assert [c.code for c in pipe.server.offers] == [CODE]


def test_reader_stays_quiet_once_the_server_already_won(pipe):
    pipe.server.accept = False  # the browser's request arrived first
    reader = pipe.reader()
    pipe.type(f"{REDIRECT}/?code={CODE}&state={STATE}\n")
    assert wait_for(lambda: not reader.running)
    assert len(pipe.server.offers) == 1 and pipe.said == []


def test_stop_ends_an_idle_reader_without_leaving_a_thread_in_read(pipe):
    reader = pipe.reader()
    assert reader.running
    started = time.monotonic()
    reader.stop()
    assert not reader.running
    assert time.monotonic() - started < 5  # loosely: it polls every 0.1 s
    # Nothing reads the descriptor any more: what is written next stays for its owner.
    pipe.type("typed after the login\n")
    time.sleep(0.3)
    assert os.read(pipe.read_fd, 100) == b"typed after the login\n"
    reader.stop()  # idempotent


def test_reader_ends_at_end_of_input(pipe):
    reader = pipe.reader()
    os.close(pipe.write_fd)
    assert wait_for(lambda: not reader.running)


def test_reader_ends_when_its_descriptor_goes_away(pipe):
    reader = pipe.reader()
    os.close(pipe.read_fd)
    assert wait_for(lambda: not reader.running)


def test_an_overlong_line_is_dropped_with_a_note(pipe):
    reader = pipe.reader()
    pipe.type("x" * 20000)
    assert wait_for(lambda: any("too long" in s for s in pipe.said))
    assert reader.running and pipe.server.offers == []
    reader.stop()


def test_no_reader_without_a_usable_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    reader = start_paste_reader(
        server=FakeServer(), redirect_uri=REDIRECT, state=STATE, issuers=ISSUERS, say=print
    )
    assert reader is None


# --------------------------------------------------------- a terminal, end to end

LOGIN_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import fedbearer
token = fedbearer.authorize(
    sys.argv[1], sys.argv[2], sys.argv[3], timeout=float(sys.argv[4]),
    preflight="no-preflight" not in sys.argv,  # a dead endpoint, to test only the wait
)
print("TOKEN", token.token, flush=True)
"""

# The URL as shown to the user, on a line of its own (the log line has it redacted).
URL_RE = re.compile(r"^    (http://127\.0\.0\.1:\d+/oauth2/authorize\?\S+)", re.MULTILINE)
CONSOLE_AND_DESKTOP = ("xdg-open", "lynx", "w3m", "links", "www-browser", "gio")


def fake_executable(directory: Path, name: str, *, sleep: float = 0.0) -> Path:
    path = directory / name
    record = directory / f"{name}.called"
    path.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import time
            open({str(record)!r}, "a").write("called\\n")
            time.sleep({sleep!r})
            """
        )
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def spawn_login(tmp_path: Path, args: list[str], **env: str):
    pexpect = import_or_fail("pexpect")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in CONSOLE_AND_DESKTOP:
        fake_executable(bin_dir, name)
    script = tmp_path / "login.py"
    script.write_text(LOGIN_SCRIPT)
    child_env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "TERM": "xterm",
        "PYTHONPATH": str(REPO),
        "SSH_CONNECTION": "10.1.2.3 50000 10.9.8.7 22",
        "SSH_TTY": "/dev/pts/7",
        **env,
    }
    child = pexpect.spawn(
        sys.executable,
        [str(script), *args],
        env=child_env,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 400),
    )
    child.logfile_read = io.StringIO()
    return child, bin_dir


def callback_from_authorize(url: str) -> str:
    """Play the browser up to the callback: the 302's Location, never requested."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(url, timeout=10)
    with caught.value as response:
        assert response.code == 302
        return response.headers["Location"]


def test_ssh_session_shows_the_hint_launches_nothing_and_completes_from_a_paste(tmp_path):
    pexpect = import_or_fail("pexpect")
    with LocalFederation() as fed:
        child, bin_dir = spawn_login(
            tmp_path, [fed.client_id, fed.endpoint, fed.federation_id or "", "30"]
        )
        try:
            child.expect("Waiting for the login to finish")
            shown = child.logfile_read.getvalue()
            url = URL_RE.search(shown)
            assert url is not None, shown
            assert "REDACTED" not in url.group(1)
            redirect_uri = dict(parse_qsl(urlsplit(url.group(1)).query))["redirect_uri"]
            port = urlsplit(redirect_uri).port
            assert "No browser was opened: this is an SSH session" in shown
            assert f"ssh -L {port}:127.0.0.1:{port} 10.9.8.7" in shown
            assert "paste it here" in shown

            callback = callback_from_authorize(url.group(1))
            assert callback.startswith(redirect_uri + "?") or callback.startswith(
                redirect_uri + "/?"
            )
            code = dict(parse_qsl(urlsplit(callback).query))["code"]

            child.sendline("this is not it")
            child.expect("That is not a URL")
            wrong = f"{redirect_uri}/?" + urlencode({"code": "x" * 20, "state": "y" * 43})
            child.sendline(wrong)
            child.expect("another login attempt")
            child.sendline(callback)
            child.expect("Got the login response from the pasted address")
            child.expect("Logged in")
            child.expect(r"TOKEN (\S+)")
            token = child.match.group(1)
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
        assert fed.is_valid(token)
        assert fed.code_exchanges == 1
    transcript = child.logfile_read.getvalue()
    # The terminal echoes the paste once; fedbearer never repeats it (debug logs included).
    assert transcript.count(code) == 1
    for name in CONSOLE_AND_DESKTOP:
        assert not (bin_dir / f"{name}.called").exists(), name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ctrl_c_during_the_wait_ends_the_login_and_releases_the_port(tmp_path):
    pexpect = import_or_fail("pexpect")
    port = free_port()
    # $BROWSER over SSH is honoured; this one hangs, so the launch is still running too.
    child, _ = spawn_login(
        tmp_path,
        ["app", "http://127.0.0.1:9", "fed", "60", "no-preflight"],
        FEDBEARER_CALLBACK_PORT=str(port),
        BROWSER=str(fake_executable(tmp_path, "slow-browser", sleep=30)),
    )
    try:
        child.expect("Waiting for the login to finish")
        assert f"http://127.0.0.1:{port}" in child.logfile_read.getvalue()
        assert wait_for(lambda: (tmp_path / "slow-browser.called").exists())
        started = time.monotonic()
        child.sendintr()
        child.expect(pexpect.EOF)
        elapsed = time.monotonic() - started
    finally:
        child.close(force=True)
    assert "KeyboardInterrupt" in child.logfile_read.getvalue()
    assert elapsed < 5, elapsed  # in practice well under a second
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_fixed_port_from_the_environment_is_used_in_the_hint(tmp_path):
    pexpect = import_or_fail("pexpect")
    port = free_port()
    child, _ = spawn_login(
        tmp_path,
        ["app", "http://127.0.0.1:9", "fed", "60", "no-preflight"],
        FEDBEARER_CALLBACK_PORT=str(port),
    )
    try:
        child.expect("Waiting for the login to finish")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    shown = child.logfile_read.getvalue()
    assert f"ssh -L {port}:127.0.0.1:{port} 10.9.8.7" in shown
    assert "FEDBEARER_CALLBACK_PORT - lets" not in shown  # no advice to fix a fixed port


# ------------------------------------------------------------------ non-interactive


def test_non_interactive_bearer_fails_fast_with_the_login_command(federation):
    bearer = Bearer(
        "work", federation.client_id, federation.endpoint, "", interactive=False, timeout=60
    )
    started = time.monotonic()
    with pytest.raises(InteractionRequiredError) as caught:
        bearer.receiver().fetch()
    assert time.monotonic() - started < 5  # loosely; it does no I/O at all
    message = str(caught.value)
    assert "fedbearer login" in message
    assert f"--client-id {federation.client_id}" in message
    assert f"--federation-endpoint {federation.endpoint}" in message
    assert "--federation-id ''" in message and "--profile work" in message
    assert "interactive=False" in message
    assert login_threads() == [] and federation.authorize_requests == 0


def test_fedbearer_interactive_0_disables_logins(monkeypatch, federation):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "0")
    bearer = Bearer("default", federation.client_id, federation.endpoint, "fed", timeout=60)
    assert bearer.settings.interactive is False
    with pytest.raises(InteractionRequiredError, match="FEDBEARER_INTERACTIVE=0"):
        bearer.receiver().fetch()


def test_explicit_interactive_overrides_the_environment(monkeypatch, federation):
    monkeypatch.setenv("FEDBEARER_INTERACTIVE", "0")
    bearer = Bearer("default", "c", federation.endpoint, "fed", interactive=True)
    assert bearer.settings.interactive is True


def test_interactive_must_be_a_bool_or_none():
    from fedbearer import ConfigurationError

    with pytest.raises(ConfigurationError, match="interactive"):
        Bearer("default", "c", "auth.example.com", "fed", interactive="no")  # type: ignore[arg-type]


def test_paste_reader_thread_is_gone_after_a_login_by_the_browser(federation, monkeypatch):
    """A login finished by the loopback callback stops the reader too (stdin a terminal)."""
    import pty

    from fedbearer import _environment, _paste
    from fedbearer.testing import ProgrammaticBrowser

    real_detect = _environment.detect_environment
    # login() imports these from their modules when it runs.
    monkeypatch.setattr(
        _environment, "detect_environment", lambda: real_detect(stdin_isatty=lambda: True)
    )
    readers: list[PasteReader] = []
    real_start = _paste.start_paste_reader

    def recording_start(**kwargs):
        reader = real_start(**kwargs)
        readers.append(reader)
        return reader

    monkeypatch.setattr(_paste, "start_paste_reader", recording_start)
    master, slave = pty.openpty()
    try:
        monkeypatch.setattr(sys, "stdin", os.fdopen(slave, "r", closefd=False))
        bearer = Bearer(
            "default",
            federation.client_id,
            federation.endpoint,
            federation.federation_id or "",
            opener=ProgrammaticBrowser(),
            writer=io.StringIO(),
            timeout=20,
        )
        token = bearer.receiver().fetch()
    finally:
        os.close(master)
        os.close(slave)
    assert federation.is_valid(token.token)
    assert len(readers) == 1 and readers[0] is not None
    assert not readers[0].running
    assert not any(t.name == "fedbearer-paste" for t in threading.enumerate())
