"""FederationAuth: lazy login, expiry, 401 renewal and resend, single-flight, origins."""

from __future__ import annotations

import io
import logging
import pickle
import sys
import threading
import urllib.request
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from fedbearer import (
    AuthorizationError,
    Bearer,
    ConfigurationError,
    FederationAuth,
    FileTokenCache,
    InteractionRequiredError,
    _clock,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .api_server import ProtectedAPI
from .conftest import wait_for

T0 = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch):
    now = [T0]
    monkeypatch.setattr(_clock, "now", lambda: now[0])
    return now


@pytest.fixture
def api(federation):
    with ProtectedAPI(federation.is_valid) as server:
        yield server


def make_auth(fed: LocalFederation, **kwargs) -> FederationAuth:
    kwargs.setdefault("opener", ProgrammaticBrowser())
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("cache", None)
    return FederationAuth(fed.client_id, fed.endpoint, fed.federation_id or "", **kwargs)


def session_with(auth: FederationAuth) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy between us and loopback
    session.auth = auth
    return session


# ---------------------------------------------------------------------------- lazy, hot path


def test_construction_does_no_io(federation):
    opened = []
    FederationAuth(
        federation.client_id, federation.endpoint, "test-federation", opener=opened.append
    )
    assert opened == [] and federation.authorize_requests == 0


def test_first_request_logs_in_and_later_ones_reuse_the_token(federation, api):
    session = session_with(make_auth(federation))
    for _ in range(3):
        assert session.get(api.url + "/things").status_code == 200
    assert federation.logins == 1
    tokens = {seen.authorization for seen in api.seen}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ")


def test_get_token_returns_the_same_valid_token(federation):
    auth = make_auth(federation)
    token = auth.get_token()
    assert federation.is_valid(token.token)
    assert auth.get_token() is token and federation.logins == 1


def test_repr_shows_settings_but_never_the_token(federation):
    auth = make_auth(federation)
    token = auth.get_token()
    text = repr(auth)
    assert token.token not in text and (token.refresh_token or "x") not in text
    assert federation.endpoint in text and "until" in text


def test_auth_compares_by_identity(federation):
    a, b = make_auth(federation), make_auth(federation)
    assert a != b and a == a


def test_pickled_auth_carries_no_token_and_works(federation, api):
    auth = make_auth(federation, opener=None, no_browser_open=True)
    auth.credentials._install(make_auth(federation).get_token())  # in memory, before pickling
    token = auth._token.token
    data = pickle.dumps(auth)
    assert token.encode() not in data
    clone = pickle.loads(data)
    assert clone.credentials._lock is not auth.credentials._lock and clone._token is None
    assert clone.bearer.client_id == auth.bearer.client_id


# ---------------------------------------------------------------------------- expiry


def test_token_is_refreshed_before_it_expires(federation, api, clock):
    session = session_with(make_auth(federation, refresh_margin=300))
    assert session.get(api.url).status_code == 200
    clock[0] = T0 + 3600 - 301
    assert session.get(api.url).status_code == 200
    assert federation.refreshes == 0
    clock[0] = T0 + 3600 - 300  # inside the margin: renewed before use
    assert session.get(api.url).status_code == 200
    assert federation.refreshes == 1 and federation.logins == 1
    assert api.seen[-1].authorization != api.seen[0].authorization


def test_zero_margin_means_no_margin(federation, api, clock):
    session = session_with(make_auth(federation, refresh_margin=0))
    session.get(api.url)
    clock[0] = T0 + 3599
    session.get(api.url)
    assert federation.refreshes == 0
    clock[0] = T0 + 3600
    session.get(api.url)
    assert federation.refreshes == 1


def test_margin_is_capped_at_half_a_short_lifetime(clock):
    with LocalFederation(token_lifetime=60) as fed:
        auth = make_auth(fed, refresh_margin=300)
        first = auth.get_token()
        clock[0] = T0 + 29
        assert auth.get_token() is first
        clock[0] = T0 + 30
        assert auth.get_token() is not first
        assert fed.refreshes == 1 and fed.logins == 1


def test_failed_refresh_falls_back_to_one_interactive_login(federation, api, clock):
    session = session_with(make_auth(federation))
    session.get(api.url)
    federation.fail_next("invalid_grant")
    clock[0] = T0 + 3500
    assert session.get(api.url).status_code == 200
    assert federation.logins == 2


def test_without_refresh_token_expiry_means_a_new_login(clock):
    with LocalFederation(issue_refresh_tokens=False) as fed, ProtectedAPI(fed.is_valid) as api:
        session = session_with(make_auth(fed))
        session.get(api.url)
        clock[0] = T0 + 3500
        assert session.get(api.url).status_code == 200
        assert fed.logins == 2 and fed.refreshes == 0


def test_expired_cached_token_is_renewed_by_its_refresh_token_without_a_browser(
    federation, api, clock, tmp_path
):
    from fedbearer import FileTokenCache

    cache = FileTokenCache(tmp_path / "credentials.yaml")
    session_with(make_auth(federation, cache=cache)).get(api.url)
    clock[0] = T0 + 5 * 3600  # a cron job, hours later, in a new process
    later = make_auth(federation, cache=cache, interactive=False)
    assert session_with(later).get(api.url).status_code == 200
    assert federation.refreshes == 1 and federation.logins == 1


# ---------------------------------------------------------------------------- 401


def test_401_renews_and_resends_once(federation, api):
    session = session_with(make_auth(federation))
    session.get(api.url)
    federation.revoke_all()  # the API now rejects the token; so does its refresh token
    response = session.post(api.url + "/upload", data=b"payload")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.json()["body"] == "payload"
    assert federation.logins == 2
    first, second = api.seen[-2:]
    assert first.authorization != second.authorization
    assert response.request.headers["Authorization"] == second.authorization


def test_second_401_is_returned_not_retried(federation, api):
    session = session_with(make_auth(federation))
    session.get(api.url)
    api.always_401 = True
    response = session.get(api.url)
    assert response.status_code == 401
    assert len(response.history) == 1
    assert federation.logins == 1 and federation.refreshes == 1
    assert len(api.seen) == 3


def test_insufficient_scope_is_not_a_reason_to_log_in(federation, api):
    session = session_with(make_auth(federation))
    session.get(api.url)
    api.insufficient_scope = True
    response = session.get(api.url)
    assert response.status_code == 401 and response.history == []
    assert federation.logins == 1 and federation.refreshes == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"raw-bytes", "raw-bytes"),
        ("a string", "a string"),
        ({"form": "field"}, "form=field"),
    ],
)
def test_plain_bodies_are_resent_as_is(federation, api, data, expected):
    session = session_with(make_auth(federation))
    session.get(api.url)
    federation.revoke_all()
    response = session.post(api.url, data=data)
    assert response.status_code == 200 and response.json()["body"] == expected


def test_seekable_file_body_is_rewound_to_where_it_started(federation, api, tmp_path):
    session = session_with(make_auth(federation))
    session.get(api.url)
    federation.revoke_all()
    body = io.BytesIO(b"HEADER-skip|the real body")
    body.seek(len(b"HEADER-skip|"))
    response = session.post(api.url, data=body)
    assert response.status_code == 200
    assert response.json()["body"] == "the real body"
    assert [s.body for s in api.seen[-2:]] == [b"the real body"] * 2


def test_generator_body_is_never_resent_empty(federation, api, caplog):
    auth = make_auth(federation)
    session = session_with(auth)
    session.get(api.url)
    federation.revoke_all()
    old = auth._token.token

    def chunks():
        yield b"part1-"
        yield b"part2"

    caplog.set_level(logging.WARNING, logger="fedbearer")
    response = session.post(api.url, data=chunks())
    assert response.status_code == 401  # returned, not resent with an empty body
    assert api.seen[-1].body == b"part1-part2"
    assert "cannot be rewound" in caplog.text
    # The token was still renewed: the next request works.
    assert auth._token.token != old
    assert session.get(api.url).status_code == 200


# ---------------------------------------------------------------------------- single-flight


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def _run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run():
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_64_cold_threads_cause_exactly_one_login(federation, api):
    auth = make_auth(federation)
    statuses: list[int] = []

    def call():
        statuses.append(session_with(auth).get(api.url).status_code)

    assert _run_threads(64, call) == []
    assert statuses == [200] * 64
    assert federation.logins == 1


def test_64_concurrent_401s_cause_exactly_one_renewal(federation, api):
    auth = make_auth(federation)
    sessions = [session_with(auth) for _ in range(64)]
    sessions[0].get(api.url)
    federation.revoke_all()
    statuses: list[int] = []
    it = iter(sessions)
    lock = threading.Lock()

    def call():
        with lock:
            session = next(it)
        statuses.append(session.get(api.url).status_code)

    assert _run_threads(64, call) == []
    assert statuses == [200] * 64
    assert federation.logins == 2  # the first one, and one renewal
    assert federation.refreshes <= 1


def test_threads_queued_behind_a_failed_login_share_its_error(federation, api):
    federation.fail_next("deny")
    auth = make_auth(federation)
    outcomes: list[BaseException] = []

    def call():
        try:
            session_with(auth).get(api.url)
        except AuthorizationError as exc:
            outcomes.append(exc)

    assert _run_threads(8, call) == []
    assert len(outcomes) == 8
    assert federation.authorize_requests == 1  # one browser, not eight
    # A later request is a new need and may try again.
    assert session_with(auth).get(api.url).status_code == 200
    assert federation.authorize_requests == 2


@pytest.mark.fedbearer_real  # the default cache, in the temporary HOME of conftest
def test_pickled_auth_with_the_default_cache_still_works(federation, api):
    auth = FederationAuth(federation.client_id, federation.endpoint, "test-federation")
    clone = pickle.loads(pickle.dumps(auth))
    # The opener and writer are the caller's objects (an Event is not picklable); set after.
    clone.bearer.settings = replace(
        clone.bearer.settings, opener=ProgrammaticBrowser(), writer=io.StringIO()
    )
    assert session_with(clone).get(api.url).status_code == 200
    assert isinstance(clone.cache, FileTokenCache) and clone.cache.get(clone.bearer.name)


# ---------------------------------------------------------------------------- origins


def test_hosts_limit_which_origins_get_the_token(federation, api):
    with ProtectedAPI(federation.is_valid) as other:
        auth = make_auth(federation, hosts=[api.url])
        session = session_with(auth)
        assert session.get(api.url).status_code == 200
        assert session.get(other.url).status_code == 401
        assert other.seen[-1].authorization is None
        assert federation.logins == 1  # other's 401 did not trigger a login


def test_cross_host_redirect_never_carries_the_token_or_triggers_a_login(federation, api):
    with ProtectedAPI(federation.is_valid) as other:
        api.redirect_to = other.url + "/landing"
        session = session_with(make_auth(federation))
        response = session.get(api.url + "/redirect")
        assert response.status_code == 401
        assert other.seen[-1].authorization is None
        assert federation.logins == 1 and federation.refreshes == 0


@pytest.mark.parametrize(
    "hosts",
    [[], ["ftp://x"], [""], ["https://x/path"]],
)
def test_bad_hosts_are_configuration_errors(federation, hosts):
    with pytest.raises(ConfigurationError):
        make_auth(federation, hosts=hosts)


def test_hosts_match_default_ports_and_case(federation):
    auth = make_auth(federation, hosts=["API.example.com"])
    req = requests.Request("GET", "https://api.example.com:443/x").prepare()
    auth.credentials._install(make_auth(federation).get_token())
    assert "Authorization" in auth(req).headers
    req = requests.Request("GET", "http://api.example.com/x").prepare()
    assert "Authorization" not in auth(req).headers


# ---------------------------------------------------------------------------- errors


def test_a_failed_login_raises_its_typed_error_from_the_request(federation, api):
    federation.fail_next("deny")
    session = session_with(make_auth(federation))
    with pytest.raises(AuthorizationError, match="access_denied"):
        session.get(api.url)
    assert api.seen == []  # nothing was sent without a token


def test_non_interactive_auth_fails_fast_with_a_hint(federation, api):
    session = session_with(make_auth(federation, interactive=False))
    with pytest.raises(InteractionRequiredError, match="fedbearer login"):
        session.get(api.url)


def test_from_bearer_uses_the_bearer_settings(federation, api):
    bearer = Bearer(
        "work",
        federation.client_id,
        federation.endpoint,
        "test-federation",
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
    )
    auth = FederationAuth.from_bearer(bearer, cache=None)
    assert session_with(auth).get(api.url).status_code == 200
    assert auth.bearer is bearer and "work" in repr(auth)


# ---------------------------------------------------------------------------- responses


def callback_opener(code: str = "mock-code"):
    """Plays the browser for a mocked federation: straight to our callback, via urllib."""

    def opener(url: str) -> bool:
        q = dict(parse_qsl(urlsplit(url).query))

        def run():
            target = q["redirect_uri"] + "/?" + urlencode({"code": code, "state": q["state"]})
            no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            no_proxy.open(target, timeout=5).read()

        threading.Thread(target=run, daemon=True).start()
        return True

    return opener


@responses.activate(registry=OrderedRegistry)
def test_under_responses_401_renews_and_resends_with_the_new_header():
    fed = "https://fed.example"
    api = "https://api.example/v1/things"
    responses.post(fed + "/oauth2/token", json={"access_token": "tok-1", "expires_in": 3600})
    responses.get(
        api, status=401, match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})]
    )
    responses.post(fed + "/oauth2/token", json={"access_token": "tok-2", "expires_in": 3600})
    responses.get(
        api,
        json={"ok": True},
        match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})],
    )
    session = requests.Session()
    session.auth = FederationAuth(
        "cid", fed, "fid", opener=callback_opener(), writer=io.StringIO(), cache=None
    )
    response = session.get(api)
    assert response.json() == {"ok": True}
    assert [r.status_code for r in response.history] == [401]
    token_calls = [c for c in responses.calls if c.request.url.endswith("/oauth2/token")]
    assert len(token_calls) == 2
    form = dict(parse_qsl(token_calls[0].request.body))
    assert form["grant_type"] == "authorization_code" and form["code"] == "mock-code"
    assert len(form["code_verifier"]) == 43


@responses.activate
def test_under_responses_always_401_renews_exactly_once():
    fed = "https://fed.example"
    api = "https://api.example/v1/things"
    responses.post(fed + "/oauth2/token", json={"access_token": "tok", "expires_in": 3600})
    responses.get(api, status=401)
    session = requests.Session()
    session.auth = FederationAuth(
        "cid", fed, "fid", opener=callback_opener(), writer=io.StringIO(), cache=None
    )
    response = session.get(api)
    assert response.status_code == 401
    token_calls = [c for c in responses.calls if c.request.url.endswith("/oauth2/token")]
    api_calls = [c for c in responses.calls if c.request.url == api]
    assert len(token_calls) == 2 and len(api_calls) == 2


@responses.activate(registry=OrderedRegistry)
def test_under_responses_refresh_token_is_used_then_interactive_fallback(clock):
    fed = "https://fed.example"
    api = "https://api.example/v1/things"
    responses.post(
        fed + "/oauth2/token",
        json={"access_token": "tok-1", "expires_in": 600, "refresh_token": "rt-1"},
    )
    responses.get(api, json={"n": 1})
    responses.post(
        fed + "/oauth2/token",
        json={"access_token": "tok-2", "expires_in": 600},
        match=[
            matchers.urlencoded_params_matcher(
                {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "cid"}
            )
        ],
    )
    responses.get(
        api, json={"n": 2}, match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})]
    )
    responses.post(fed + "/oauth2/token", status=400, json={"error": "invalid_grant"})
    responses.post(fed + "/oauth2/token", json={"access_token": "tok-3", "expires_in": 600})
    responses.get(
        api, json={"n": 3}, match=[matchers.header_matcher({"Authorization": "Bearer tok-3"})]
    )
    session = requests.Session()
    session.auth = FederationAuth(
        "cid", fed, "fid", opener=callback_opener(), writer=io.StringIO(), cache=None
    )
    assert session.get(api).json() == {"n": 1}
    clock[0] = T0 + 600
    assert session.get(api).json() == {"n": 2}  # refreshed; the old refresh token is kept
    clock[0] = T0 + 1200
    assert session.get(api).json() == {"n": 3}  # refresh rejected -> one interactive login


# ---------------------------------------------------------------------------- secrets


def test_no_secret_in_any_log_record_over_login_renewal_and_resend(federation, api, caplog):
    caplog.set_level(logging.DEBUG)
    auth = make_auth(federation)
    session = session_with(auth)
    session.get(api.url)
    first = auth._token
    federation.revoke_all()
    response = session.post(api.url, data=b"x")
    second = auth._token
    assert response.status_code == 200 and first is not None and second is not None
    secrets = {first.token, second.token, first.refresh_token, second.refresh_token}
    secrets.discard(None)
    assert len(secrets) == 4
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "fedbearer" in text and "urllib3" in text
    for secret in secrets:
        assert secret not in text
        assert secret not in repr(auth)


# ---------------------------------------------------------------------------- Nebius profiles


def test_from_nebius_profile_reads_endpoint_and_id_and_caches_under_the_profile(
    federation, api, tmp_path, monkeypatch
):
    config = tmp_path / "config.yaml"
    config.write_text(
        "default: other\n"
        "profiles:\n"
        "  other:\n"
        "    auth-type: service-account\n"
        "  work:\n"
        "    auth-type: federation\n"
        f"    federation-endpoint: {federation.endpoint}\n"
        f"    federation-id: {federation.federation_id}\n"
    )
    monkeypatch.setenv("NEBIUS_PROFILE", "work")
    auth = FederationAuth.from_nebius_profile(
        client_id=federation.client_id,
        config_file=str(config),
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        cache=None,
    )
    assert auth.bearer.profile_name == "work"
    assert auth.bearer.name == f"federation/{federation.endpoint}/test-federation/work"
    assert session_with(auth).get(api.url).status_code == 200
    with pytest.raises(ConfigurationError, match="federation"):
        FederationAuth.from_nebius_profile("other", client_id="c", config_file=str(config))


# ---------------------------------------------------------------------------- review fixes


def test_two_processes_at_the_margin_refresh_once_and_keep_the_grant(clock, tmp_path):
    from fedbearer import FileTokenCache

    with LocalFederation() as fed, ProtectedAPI(fed.is_valid) as api:
        path = tmp_path / "credentials.yaml"
        a = make_auth(fed, cache=FileTokenCache(path))
        b = make_auth(fed, cache=FileTokenCache(path))  # another process: its own object
        session_with(a).get(api.url)
        session_with(b).get(api.url)  # from the cache, no login
        assert fed.logins == 1
        fed.fail_next("slow", delay=0.3)  # the first refresh is slow: the other one waits
        clock[0] = T0 + 3500
        statuses: list[int] = []
        sessions = iter([session_with(a), session_with(b)])
        pick = threading.Lock()

        def call():
            with pick:
                session = next(sessions)
            statuses.append(session.get(api.url).status_code)

        errors = _run_threads(2, call)
        assert errors == [] and sorted(statuses) == [200, 200]
        # One refresh; the other process took the refreshed token from the cache instead
        # of replaying the rotated refresh token (which revokes the whole grant).
        assert fed.refreshes == 1 and fed.logins == 1
        assert a._token is not None and fed.is_valid(a._token.token)


def test_the_cache_refresh_token_is_preferred_over_an_older_one_in_memory(clock, tmp_path):
    from fedbearer import FileTokenCache

    with LocalFederation() as fed, ProtectedAPI(fed.is_valid) as api:
        path = tmp_path / "credentials.yaml"
        a = make_auth(fed, cache=FileTokenCache(path))
        b = make_auth(fed, cache=FileTokenCache(path))
        session_with(a).get(api.url)
        session_with(b).get(api.url)
        clock[0] = T0 + 3500
        session_with(a).get(api.url)  # a refreshes: the refresh token rotates R1 -> R2
        clock[0] = T0 + 3500 + 3500  # both access tokens are now past their margin
        assert session_with(b).get(api.url).status_code == 200
        # b refreshed with R2 from the cache, not with its own rotated-away R1.
        assert fed.refreshes == 2 and fed.logins == 1


def test_a_401_with_another_scheme_does_not_start_a_login(federation, api):
    session = session_with(make_auth(federation))
    session.get(api.url)
    api.challenge = 'Basic realm="intranet"'
    api.always_401 = True
    for _ in range(3):
        assert session.get(api.url).status_code == 401
    assert federation.logins == 1 and federation.refreshes == 0


def test_when_even_a_fresh_token_is_refused_later_401s_renew_no_more(federation, api):
    session = session_with(make_auth(federation))
    session.get(api.url)
    api.always_401 = True
    for _ in range(3):
        assert session.get(api.url).status_code == 401
    assert federation.refreshes == 1 and federation.logins == 1


def test_a_shared_failure_keeps_its_message_intact(federation, api):
    federation.fail_next("deny")
    browser = ProgrammaticBrowser()

    def queued_in_renew() -> int:
        return sum(
            1
            for frame in sys._current_frames().values()
            if any(f.f_code.co_name == "renew" for f in _stack(frame))
        )

    def open_once_all_wait(url: str) -> bool:
        # The failure is shared with callers queued behind it: let all four queue first
        # (the one logging in and three waiting for the lock), whatever the machine's load.
        wait_for(lambda: queued_in_renew() == 4, timeout=30)
        return browser(url)

    auth = make_auth(federation, opener=open_once_all_wait)
    messages: list[str] = []

    def call():
        try:
            session_with(auth).get(api.url)
        except AuthorizationError as exc:
            messages.append(str(exc))
            assert exc.error == "access_denied"

    assert _run_threads(4, call) == []
    assert len(messages) == 4 and len(set(messages)) == 1
    assert messages[0].count("federation refused the login") == 1


def test_non_interactive_refresh_outage_is_reported_as_the_outage(federation, api, clock):
    from fedbearer import TokenEndpointError

    token = make_auth(federation).get_token()  # logged in once, interactively
    quiet = make_auth(federation, interactive=False)
    quiet.credentials._install(token)
    clock[0] = T0 + 3500
    federation.fail_next("server_error", status=503)
    with pytest.raises(TokenEndpointError) as info:
        session_with(quiet).get(api.url)
    assert not isinstance(info.value, InteractionRequiredError)
    assert info.value.status == 503
