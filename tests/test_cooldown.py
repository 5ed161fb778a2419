"""No tab per call (issue 20): after an abandoned login, lazy logins for the same identity
raise LoginAbandonedError at once, within one process and across processes, until the
cool-down ends or an explicit login runs."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from fedbearer import (
    AuthorizationError,
    FederationAuth,
    InteractionRequiredError,
    LoginAbandonedError,
    LoginTimeoutError,
    MemoryTokenCache,
    TokenEndpointError,
    _clock,
)
from fedbearer import _cooldown as cooldown
from fedbearer._cli import EXIT_INTERACTION_REQUIRED, EXIT_OK, main
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .api_server import ProtectedAPI

pytestmark = pytest.mark.timeout(120)

T0 = 1_800_000_000.0
KEY = "federation/https://auth.example.com/f/default"


@pytest.fixture
def clock(monkeypatch):
    now = [T0]
    monkeypatch.setattr(_clock, "now", lambda: now[0])
    return now


class CountingOpener:
    """A browser that is opened (a prompt) but whose person never finishes the login."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        return True


def walked_away(fed: LocalFederation, opener: Any, **options: Any) -> FederationAuth:
    options.setdefault("writer", io.StringIO())
    options.setdefault("cache", MemoryTokenCache())
    options.setdefault("timeout", 0.5)
    return FederationAuth(fed.client_id, fed.endpoint, "test-federation", opener=opener, **options)


# ------------------------------------------------------------------- the numbers


def test_cooldown_starts_at_five_minutes_and_doubles_to_an_hour():
    assert [cooldown.cooldown(n) for n in range(1, 8)] == [
        300.0,
        600.0,
        1200.0,
        2400.0,
        3600.0,
        3600.0,
        3600.0,
    ]


# --------------------------------------------------------------- in one process


def test_eight_lazy_calls_whose_login_times_out_prompt_once(federation):
    opener = CountingOpener()
    auth = walked_away(federation, opener)
    outcomes = []
    with ProtectedAPI(federation.is_valid) as api:
        session = requests.Session()
        session.trust_env = False
        session.auth = auth
        for _ in range(8):
            try:
                session.get(api.url)
            except InteractionRequiredError as exc:
                outcomes.append(type(exc))
            except LoginTimeoutError as exc:
                outcomes.append(type(exc))
    assert len(opener.opened) == 1  # one prompt, not eight
    assert outcomes == [LoginTimeoutError] + [LoginAbandonedError] * 7


def test_the_error_says_when_and_which_command_logs_in(federation, clock):
    auth = walked_away(federation, CountingOpener())
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    with pytest.raises(LoginAbandonedError) as caught:
        auth.get_token()
    text = str(caught.value)
    assert cooldown.describe_time(T0) in text and "it timed out" in text
    assert cooldown.describe_time(T0 + 300) in text
    assert f"fedbearer login --client-id {federation.client_id}" in text
    assert caught.value.abandoned_at == T0 and caught.value.until == T0 + 300


def test_an_identity_no_command_names_is_told_the_method(make_provider):
    fed = make_provider(layout="keycloak", send_iss=False)
    fed.fail_next("deny")
    auth = FederationAuth.from_endpoints(
        fed.client_id,
        authorization_endpoint=fed.authorize_url,
        token_endpoint=fed.token_url,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        cache=None,
    )
    with pytest.raises(AuthorizationError):
        auth.get_token()
    with pytest.raises(LoginAbandonedError, match=r"call login\(\) on this FederationAuth"):
        auth.get_token()


def test_the_cooldown_ends_and_grows_with_each_abandoned_login(federation, clock):
    opener = CountingOpener()
    auth = walked_away(federation, opener)
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    clock[0] = T0 + 299
    with pytest.raises(LoginAbandonedError):
        auth.get_token()
    clock[0] = T0 + 300  # the first cool-down is over: one more prompt
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    assert len(opener.opened) == 2
    clock[0] = T0 + 300 + 599
    with pytest.raises(LoginAbandonedError, match="2 in a row"):
        auth.get_token()
    assert len(opener.opened) == 2


def test_an_explicit_login_always_runs_and_clears_the_cooldown(federation):
    federation.fail_next("deny")
    auth = walked_away(federation, ProgrammaticBrowser(), timeout=10)
    with pytest.raises(AuthorizationError):
        auth.get_token()
    with pytest.raises(LoginAbandonedError):
        auth.get_token()
    token = auth.login()
    assert federation.is_valid(token.token)
    assert auth.get_token() == token
    assert cooldown.read(auth.bearer.name) is None


def test_a_login_that_succeeds_ends_the_streak(federation, clock):
    auth = walked_away(federation, ProgrammaticBrowser(), timeout=10)
    cooldown.record(auth.bearer.name, "it timed out")
    clock[0] = T0 + 301
    assert federation.is_valid(auth.get_token().token)
    assert cooldown.read(auth.bearer.name) is None


def test_configuration_errors_and_outages_start_no_cooldown(federation):
    federation.fail_next("server_error")
    auth = walked_away(federation, ProgrammaticBrowser(), timeout=10)
    with pytest.raises(TokenEndpointError):
        auth.get_token()
    assert cooldown.read(auth.bearer.name) is None
    assert federation.is_valid(auth.get_token().token)


def test_a_device_code_that_expires_counts_as_abandoned(make_provider, monkeypatch):
    monkeypatch.setattr(_clock, "sleep", lambda seconds: None)
    fed = make_provider(layout="keycloak")
    fed.fail_next("expired_token")
    auth = FederationAuth.from_issuer(
        fed.issuer,
        fed.client_id,
        device_code=True,
        interactive=True,
        writer=io.StringIO(),
        cache=None,
    )
    with pytest.raises(LoginTimeoutError):
        auth.get_token()
    with pytest.raises(LoginAbandonedError, match="the device code expired"):
        auth.get_token()
    assert fed.device_authorizations == 1  # one code shown, not two


def test_non_interactive_settings_keep_their_own_message(federation):
    cooldown.record(
        FederationAuth(federation.client_id, federation.endpoint, "test-federation").bearer.name,
        "it timed out",
    )
    auth = walked_away(federation, CountingOpener(), interactive=False)
    with pytest.raises(InteractionRequiredError, match="interactive logins are disabled"):
        auth.get_token()


# ------------------------------------------------------------------- the record file


def test_the_record_is_0600_written_whole_and_names_no_secret(tmp_path, clock):
    cooldown.record(KEY, "it timed out", directory=str(tmp_path))
    (path,) = tmp_path.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "abandoned_at": T0,
        "streak": 1,
        "how": "it timed out",
    }
    assert "auth.example.com" not in path.name and [p.name for p in tmp_path.iterdir()] == [
        path.name
    ]


def test_a_symbolic_link_in_its_place_is_neither_followed_nor_read(tmp_path, clock):
    target = tmp_path / "target"
    target.write_text("keep")
    path = Path(cooldown.record_path(KEY, str(tmp_path)))
    payload = {"abandoned_at": T0, "streak": 3, "how": "x"}
    (tmp_path / "elsewhere.json").write_text(json.dumps(payload))
    path.symlink_to(tmp_path / "elsewhere.json")
    assert cooldown.read(KEY, directory=str(tmp_path)) is None  # not followed for reading
    path.unlink()
    path.symlink_to(target)
    cooldown.record(KEY, "it timed out", directory=str(tmp_path))
    assert target.read_text() == "keep" and not path.is_symlink()


@pytest.mark.parametrize(
    "content",
    [
        b"x" * (cooldown.MAX_RECORD_BYTES + 1),
        b"\xff\xfe",
        b"[]",
        b'{"abandoned_at": "soon", "streak": 1, "how": "x"}',
        b'{"abandoned_at": 1e999, "streak": 1, "how": "x"}',
        b'{"abandoned_at": 1800000000, "streak": 0, "how": "x"}',
        b'{"abandoned_at": 1800000000, "streak": true, "how": "x"}',
        b'{"abandoned_at": 1800000000, "streak": 1}',
    ],
)
def test_a_malformed_record_counts_as_none(tmp_path, clock, content):
    Path(cooldown.record_path(KEY, str(tmp_path))).write_bytes(content)
    assert cooldown.active(KEY, directory=str(tmp_path)) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_in_its_place_does_not_block(tmp_path, clock):
    os.mkfifo(cooldown.record_path(KEY, str(tmp_path)))
    assert cooldown.read(KEY, directory=str(tmp_path)) is None


def test_a_record_from_the_future_holds_nothing_back(tmp_path, clock):
    Path(cooldown.record_path(KEY, str(tmp_path))).write_text(
        json.dumps({"abandoned_at": T0 + 3600, "streak": 1, "how": "x"})
    )
    assert cooldown.active(KEY, directory=str(tmp_path)) is None


def test_control_characters_in_how_never_reach_a_message(tmp_path, clock):
    Path(cooldown.record_path(KEY, str(tmp_path))).write_text(
        json.dumps({"abandoned_at": T0, "streak": 1, "how": "timed\x1b[2J out\n"})
    )
    last = cooldown.active(KEY, directory=str(tmp_path))
    assert last is not None and last.how == "timed[2J out"


def test_an_unwritable_state_directory_does_not_stop_the_login(tmp_path, clock, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cooldown.record(KEY, "it timed out", directory=str(blocker / "sub")) is None
    assert "could not note the abandoned login" in caplog.text


def test_each_test_has_its_own_state_directory(tmp_path):
    # The pytest plugin points the records away from the user's state directory.
    assert cooldown.state_dir() != _real_state_dir()
    assert "fedbearer-state" in cooldown.state_dir()


def _real_state_dir() -> str:
    import platformdirs

    return str(platformdirs.user_state_dir("fedbearer", appauthor=False))


# ----------------------------------------------------------------- across processes

_LAZY_CALL = textwrap.dedent(
    """
    import sys
    from fedbearer import FederationAuth, LoginAbandonedError, LoginTimeoutError
    endpoint, client_id, cache_file = sys.argv[1:4]
    auth = FederationAuth(client_id, endpoint, "test-federation", timeout=1,
                          no_browser_open=True, interactive=True, cache=None)
    try:
        auth.get_token()
    except LoginTimeoutError:
        sys.exit(10)
    except LoginAbandonedError as exc:
        sys.stderr.write(str(exc) + "\\n")
        sys.exit(11)
    """
)


def run_lazy(fed: LocalFederation, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "FEDBEARER_"))}
    env.update(XDG_STATE_HOME=str(state), HOME=str(state.parent))
    env.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-c", _LAZY_CALL, fed.endpoint, fed.client_id, *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_eight_processes_one_after_another_prompt_once(federation, tmp_path):
    state = tmp_path / "state"
    results = [run_lazy(federation, state, "unused") for _ in range(8)]
    prompts = sum("Open this URL in a browser" in r.stderr for r in results)
    assert [r.returncode for r in results] == [10] + [11] * 7, results[0].stderr
    assert prompts == 1
    assert "fedbearer login --client-id" in results[1].stderr
    assert list((state / "fedbearer").glob("abandoned-login-*.json"))


def test_device_code_processes_show_one_code(make_provider, tmp_path):
    fed = make_provider(layout="keycloak", auto_approve=False)
    state = tmp_path / "state"
    script = textwrap.dedent(
        """
        import sys
        from fedbearer import FederationAuth, LoginAbandonedError, LoginTimeoutError
        auth = FederationAuth.from_issuer(sys.argv[1], sys.argv[2], timeout=1.5,
                                          interactive=True, cache=None)
        try:
            auth.get_token()
        except LoginTimeoutError:
            sys.exit(10)
        except LoginAbandonedError:
            sys.exit(11)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "FEDBEARER_"))}
    env.update(XDG_STATE_HOME=str(state), SSH_CONNECTION="10.0.0.2 50000 10.0.0.1 22")
    env.pop("DISPLAY", None)
    env.pop("BROWSER", None)
    codes = [
        subprocess.run(
            [sys.executable, "-c", script, fed.issuer, fed.client_id],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).returncode
        for _ in range(8)
    ]
    assert codes == [10] + [11] * 7
    assert fed.device_authorizations == 1 and fed.authorize_requests == 0


def cli_flags(fed: LocalFederation) -> list[str]:
    return [
        "--client-id",
        fed.client_id,
        "--federation-endpoint",
        fed.endpoint,
        "--federation-id",
        "test-federation",
    ]


@pytest.mark.fedbearer_real  # the CLI's own logins, completed by $BROWSER
def test_fedbearer_token_honours_the_cooldown_and_fedbearer_login_clears_it(
    federation, browser_command, tmp_path, capsys
):
    cache = ["--cache-file", str(tmp_path / "tokens.yaml")]
    key = FederationAuth(federation.client_id, federation.endpoint, "test-federation").bearer.name
    cooldown.record(key, "it timed out")
    assert main(["token", *cli_flags(federation), *cache]) == EXIT_INTERACTION_REQUIRED
    err = " ".join(capsys.readouterr().err.split())
    assert "was abandoned at" in err and "log in now with: fedbearer login" in err
    assert f"--cache-file {tmp_path / 'tokens.yaml'}" in err
    assert federation.authorize_requests == 0  # no browser, not even the pre-flight check
    # `fedbearer login` always runs, and clears the record.
    assert main(["login", *cli_flags(federation), *cache]) == EXIT_OK
    assert cooldown.read(key) is None
    capsys.readouterr()
    assert main(["token", *cli_flags(federation), *cache]) == EXIT_OK
    assert federation.is_valid(capsys.readouterr().out.strip())


@pytest.mark.fedbearer_real  # the CLI's own login, completed by $BROWSER
def test_fedbearer_login_runs_though_another_process_abandons_a_login_meanwhile(
    federation, browser_command, tmp_path, monkeypatch
):
    # `fedbearer login` clears the record, then waits for the login lock; a background
    # `fedbearer token` that holds it gives up meanwhile and records its abandoned login.
    key = FederationAuth(federation.client_id, federation.endpoint, "test-federation").bearer.name
    real_clear = cooldown.clear
    calls: list[str] = []

    def clear_then_another_process_abandons(name: str, **kw: Any) -> None:
        real_clear(name, **kw)
        if not calls:
            cooldown.record(name, "it timed out")
        calls.append(name)

    monkeypatch.setattr(cooldown, "clear", clear_then_another_process_abandons)
    cache = ["--cache-file", str(tmp_path / "tokens.yaml")]
    assert main(["login", *cli_flags(federation), *cache]) == EXIT_OK
    assert calls[0] == key and federation.token_requests == 1
    assert cooldown.read(key) is None  # the login that succeeded ended the cool-down
