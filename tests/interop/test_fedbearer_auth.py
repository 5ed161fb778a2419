"""``FederationAuth`` against the independent provider, with the real Chromium logging in.

The provider's access tokens expire in seconds (``make_provider(at_ttl=2)``), its ``/me``
(userinfo) is the protected API, and its logs count what fedbearer did: every authorize
request is one interactive login, every token POST one exchange or refresh. Chromium gets
its URLs through ``$BROWSER`` (``browser_env``), so each ``expect()`` is one browser run and
any run nobody expected lands in ``browser_env.unexpected``.

Expiry at the provider needs real time (its clock is its own): the tests wait, polling, only
until the provider rejects the old token (1-2 s). fedbearer's clock (``fedbearer._clock.now``)
is frozen or moved where that replaces a wait. Issues 3 and 8, "Done when".
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests

from fedbearer import FederationAuth, InvalidGrantError, Token, _clock

from .chromium import BrowserDriver, login_and_approve
from .provider import IndependentProvider

pytestmark = [pytest.mark.interop, pytest.mark.browser]

# Loopback traffic only: an ambient HTTP(S)_PROXY must not be used.
web = requests.Session()
web.trust_env = False

MakeProvider = Callable[..., IndependentProvider]


def make_auth(op: IndependentProvider, **kwargs: Any) -> FederationAuth:
    """A FederationAuth for ``op`` that keeps its token in memory only (``cache=None``)."""
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 30)
    return FederationAuth(
        op.client_id, op.endpoint, op.federation_id, cache=None, interactive=True, **kwargs
    )


def session_with(auth: FederationAuth) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


def get_with(auth: FederationAuth, url: str) -> requests.Response:
    """One GET through a session of its own (sessions are not shared across threads)."""
    with session_with(auth) as session:
        return session.get(url, timeout=60)


def userinfo(op: IndependentProvider, access_token: str) -> requests.Response:
    return web.get(op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def wait_until_rejected(op: IndependentProvider, access_token: str, limit: float = 15.0) -> None:
    """Poll ``/me`` with ``access_token`` until the provider answers 401 (real expiry)."""
    end = time.monotonic() + limit
    while userinfo(op, access_token).status_code != 401:
        assert time.monotonic() < end, f"the provider still accepts the token after {limit}s"
        time.sleep(0.1)


def current_token(auth: FederationAuth) -> Token:
    token = auth._token
    assert token is not None
    return token


def grants(op: IndependentProvider) -> list[tuple[str, int]]:
    """``(grant_type, status)`` of each token request the provider received, in order."""
    return [(entry["form"].get("grant_type"), entry["status"]) for entry in op.token_log()]


def revoke(op: IndependentProvider, access_token: str) -> None:
    """RFC 7009 revocation by the public client (no secret: ``client_id`` in the body)."""
    answer = web.post(
        op.revocation_url,
        data={
            "token": access_token,
            "token_type_hint": "access_token",
            "client_id": op.client_id,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert userinfo(op, access_token).status_code == 401


def in_threads(
    count: int, call: Callable[[], requests.Response]
) -> tuple[list[requests.Response], list[BaseException]]:
    """Run ``call`` on ``count`` threads released together; their responses and errors."""
    start = threading.Barrier(count)
    responses: list[requests.Response] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(10)
            responses.append(call())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(90)
    assert not any(thread.is_alive() for thread in workers), "a request thread hung"
    return responses, errors


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """fedbearer's clock, stopped at the real time now; move it with ``clock[0] += s``."""
    now = [time.time()]
    monkeypatch.setattr(_clock, "now", lambda: now[0])
    yield now


# ---------------------------------------------------------------------------- expiry


def test_first_call_logs_in_and_a_call_after_expiry_renews_with_the_refresh_token(
    make_provider: MakeProvider, browser_env: BrowserDriver
) -> None:
    op = make_provider(at_ttl=2, refresh=True)
    auth = make_auth(op)
    session = session_with(auth)
    run = browser_env.expect(login_and_approve("carol"))

    first = session.get(op.userinfo_url, timeout=30)

    assert first.status_code == 200, first.text
    assert first.json()["sub"] == "carol"
    assert first.history == []
    assert run.wait(30).raise_for_error().status == 200
    assert len(op.authorize_log()) == 1
    assert grants(op) == [("authorization_code", 200)]
    old = current_token(auth)
    assert old.refresh_token
    assert first.request.headers["Authorization"] == f"Bearer {old.token}"

    wait_until_rejected(op, old.token)  # the provider's clock: ~1-2 s
    second = session.get(op.userinfo_url, timeout=30)

    assert second.status_code == 200, second.text
    assert second.json()["sub"] == "carol"
    # Renewed before sending (the token was past its renewal time), not after a 401.
    assert second.history == []
    new = current_token(auth)
    assert new.token != old.token
    assert second.request.headers["Authorization"] == f"Bearer {new.token}"
    # By refresh token, at the provider; no second authorize request, no second browser run.
    assert len(op.authorize_log()) == 1
    assert grants(op) == [("authorization_code", 200), ("refresh_token", 200)]
    refresh = op.token_log()[1]["form"]
    assert refresh == {
        "grant_type": "refresh_token",
        "refresh_token": old.refresh_token,
        "client_id": op.client_id,
    }
    assert new.refresh_token and new.refresh_token != old.refresh_token  # rotated
    assert browser_env.unexpected == []


def test_without_refresh_tokens_a_call_after_expiry_logs_in_again_through_chromium(
    make_provider: MakeProvider, browser_env: BrowserDriver
) -> None:
    op = make_provider(at_ttl=2, refresh=False)
    auth = make_auth(op)
    session = session_with(auth)
    first_run = browser_env.expect(login_and_approve("dave"))

    first = session.get(op.userinfo_url, timeout=30)

    assert first.status_code == 200, first.text
    assert first.json()["sub"] == "dave"
    assert first_run.wait(30).raise_for_error().status == 200
    old = current_token(auth)
    assert old.refresh_token is None
    assert grants(op) == [("authorization_code", 200)]

    wait_until_rejected(op, old.token)
    # The second login signs in as someone else, so /me shows which login's token was used.
    second_run = browser_env.expect(login_and_approve("erin"))
    second = session.get(op.userinfo_url, timeout=30)

    assert second.status_code == 200, second.text
    assert second.json()["sub"] == "erin"
    assert second.history == []
    page = second_run.wait(30).raise_for_error()
    assert page.status == 200 and "Login complete" in page.text
    assert current_token(auth).token != old.token
    assert len(op.authorize_log()) == 2
    assert grants(op) == [("authorization_code", 200), ("authorization_code", 200)]
    assert browser_env.unexpected == []


# ---------------------------------------------------------------------------- single-flight


def test_eight_cold_threads_share_one_login(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    op = independent_provider
    auth = make_auth(op)
    run = browser_env.expect(login_and_approve("frank"))
    threads = 8

    # One session per thread, one auth for all.
    responses, errors = in_threads(threads, lambda: get_with(auth, op.userinfo_url))

    assert errors == []
    assert len(responses) == threads
    assert [r.status_code for r in responses] == [200] * threads
    assert {r.json()["sub"] for r in responses} == {"frank"}
    assert {r.request.headers["Authorization"] for r in responses} == {
        f"Bearer {current_token(auth).token}"
    }
    # One login: one authorize request, one code exchange, one browser run.
    assert len(op.authorize_log()) == 1
    assert grants(op) == [("authorization_code", 200)]
    assert run.wait(30).raise_for_error().status == 200
    assert browser_env.unexpected == []


# ---------------------------------------------------------------------------- 401


def test_eight_concurrent_401s_share_one_refresh(
    make_provider: MakeProvider,
    browser_env: BrowserDriver,
    frozen_clock: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """oidc-provider rotates refresh tokens and treats a reused one as theft (it revokes the
    grant), so a second concurrent refresh would not just be waste: it would cost a login.
    All 8 threads hold their 401 before any renewal starts, so the storm is real."""
    op = make_provider(at_ttl=2, refresh=True)
    auth = make_auth(op)
    run = browser_env.expect(login_and_approve("mallory"))
    assert session_with(auth).get(op.userinfo_url, timeout=30).status_code == 200
    run.wait(30).raise_for_error()
    old = current_token(auth)
    wait_until_rejected(op, old.token)  # fedbearer's clock is stopped: it still trusts it

    threads = 8
    all_rejected = threading.Barrier(threads, timeout=30)
    handle_401 = auth._handle_401

    def after_all_401s(*args: Any) -> requests.Response:
        all_rejected.wait()  # every thread has its 401 in hand before one renews
        return handle_401(*args)

    monkeypatch.setattr(auth, "_handle_401", after_all_401s)
    responses, errors = in_threads(threads, lambda: get_with(auth, op.userinfo_url))

    assert errors == []
    assert [r.status_code for r in responses] == [200] * threads
    assert all([h.status_code for h in r.history] == [401] for r in responses)
    assert {h.request.headers["Authorization"] for r in responses for h in r.history} == {
        f"Bearer {old.token}"
    }
    new = current_token(auth)
    assert {r.request.headers["Authorization"] for r in responses} == {f"Bearer {new.token}"}
    assert grants(op) == [("authorization_code", 200), ("refresh_token", 200)]
    assert len(op.authorize_log()) == 1
    assert browser_env.unexpected == []


def test_401_for_an_expired_token_renews_with_the_refresh_token_and_resends(
    make_provider: MakeProvider, browser_env: BrowserDriver, frozen_clock: list[float]
) -> None:
    """fedbearer's clock is stopped, so it still trusts the token the provider expired: the
    request goes out with it, gets 401, and the hook renews and resends."""
    op = make_provider(at_ttl=2, refresh=True)
    auth = make_auth(op)
    session = session_with(auth)
    run = browser_env.expect(login_and_approve("grace"))
    assert session.get(op.userinfo_url, timeout=30).status_code == 200
    run.wait(30).raise_for_error()
    old = current_token(auth)

    wait_until_rejected(op, old.token)
    response = session.get(op.userinfo_url, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "grace"
    assert [r.status_code for r in response.history] == [401]
    rejected = response.history[0]
    assert rejected.request.headers["Authorization"] == f"Bearer {old.token}"
    assert 'error="invalid_token"' in rejected.headers["WWW-Authenticate"]
    new = current_token(auth)
    assert new.token != old.token
    assert response.request.headers["Authorization"] == f"Bearer {new.token}"
    assert grants(op) == [("authorization_code", 200), ("refresh_token", 200)]
    assert len(op.authorize_log()) == 1
    assert browser_env.unexpected == []


def test_401_after_revocation_renews_by_one_login_and_resends(
    independent_provider: IndependentProvider, browser_env: BrowserDriver
) -> None:
    """oidc-provider revokes the whole grant's tokens with the access token (its refresh
    token too), so the refresh fails with invalid_grant and the renewal falls back to one
    interactive login; the request is then resent with the new token."""
    op = independent_provider
    auth = make_auth(op)
    session = session_with(auth)
    first_run = browser_env.expect(login_and_approve("heidi"))
    assert session.get(op.userinfo_url, timeout=30).status_code == 200
    first_run.wait(30).raise_for_error()
    old = current_token(auth)

    revoke(op, old.token)
    second_run = browser_env.expect(login_and_approve("ivan"))
    response = session.post(op.userinfo_url, data=b"", timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "ivan"
    assert [r.status_code for r in response.history] == [401]
    assert response.history[0].request.headers["Authorization"] == f"Bearer {old.token}"
    assert response.request.headers["Authorization"] == f"Bearer {current_token(auth).token}"
    assert second_run.wait(30).raise_for_error().status == 200
    assert grants(op) == [
        ("authorization_code", 200),
        ("refresh_token", 400),  # invalid_grant: revoked with the access token
        ("authorization_code", 200),
    ]
    assert len(op.authorize_log()) == 2
    assert browser_env.unexpected == []


# ---------------------------------------------------------------------------- secrets

#: Loggers set to DEBUG by name as well, in case something configured them higher.
HTTP_LOGGERS = ("urllib3", "requests", "oauthlib", "requests_oauthlib", "fedbearer")


def test_no_secret_in_any_log_record_at_debug_over_login_and_renewals(
    independent_provider: IndependentProvider,
    browser_env: BrowserDriver,
    frozen_clock: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every logger at DEBUG (fedbearer, urllib3, requests, oauthlib, ...) over a login, a
    refresh on expiry, a 401 whose refresh fails, and the login and resend that follow."""
    caplog.set_level(logging.DEBUG)  # the root logger: every logger's records reach caplog
    for name in HTTP_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    op = independent_provider
    auth = make_auth(op)
    session = session_with(auth)
    tokens: list[Token] = []

    # 1. Login through Chromium.
    runs = [browser_env.expect(login_and_approve("judy"))]
    assert session.get(op.userinfo_url, timeout=30).status_code == 200
    tokens.append(current_token(auth))
    # 2. fedbearer's clock passes the token's renewal time: renewed by refresh, no wait.
    frozen_clock[0] += op.at_ttl
    assert session.get(op.userinfo_url, timeout=30).status_code == 200
    tokens.append(current_token(auth))
    # 3. Revoked at the provider: 401, refresh fails (invalid_grant), login, resend.
    revoke(op, tokens[-1].token)
    runs.append(browser_env.expect(login_and_approve("judy")))
    resent = session.get(op.userinfo_url, timeout=30)
    assert resent.status_code == 200 and len(resent.history) == 1
    tokens.append(current_token(auth))
    pages = [run.wait(30).raise_for_error() for run in runs]
    # 4. The refresh error itself, as a caller would see it.
    with pytest.raises(InvalidGrantError) as refused:
        auth.bearer.refresh(tokens[1])

    assert grants(op) == [
        ("authorization_code", 200),
        ("refresh_token", 200),
        ("refresh_token", 400),
        ("authorization_code", 200),
        ("refresh_token", 400),
    ]
    forms = [entry["form"] for entry in op.token_log()]
    secrets = {
        "state": [q["state"] for q in op.authorize_log()],
        "code": [f["code"] for f in forms if "code" in f],
        "code_verifier": [f["code_verifier"] for f in forms if "code_verifier" in f],
        "refresh_token": [f["refresh_token"] for f in forms if "refresh_token" in f]
        + [t.refresh_token for t in tokens if t.refresh_token],
        "access_token": [t.token for t in tokens],
    }
    assert [len(secrets[k]) for k in ("state", "code", "code_verifier")] == [2, 2, 2]
    assert len(set(secrets["access_token"])) == 3
    assert len(set(secrets["refresh_token"])) == 3  # login, rotated, second login

    records = list(caplog.records)
    names = {record.name for record in records}
    # The capture really covers our loggers and the HTTP stack's, at DEBUG.
    assert {"fedbearer.login", "fedbearer.auth", "fedbearer.loopback"} <= names
    assert any(name.startswith("urllib3") for name in names)
    assert any(record.levelno == logging.DEBUG for record in records)
    logged = [caplog.text]
    for record in records:
        logged += [record.getMessage(), repr(record.args), record.exc_text or ""]
    places = {
        "a log record": "\n".join(logged),
        "the refresh error": f"{refused.value} {refused.value!r}",
        "a repr": " ".join(repr(x) for x in (auth, auth.bearer, *tokens)),
        "a page Chromium showed": "\n".join(page.html for page in pages),
    }
    for kind, values in secrets.items():
        for value in values:
            assert len(value) >= 16
            for place, text in places.items():
                leaked = value in text  # a bool: pytest's report must not print the secret
                assert not leaked, f"a {kind} is in {place}"
