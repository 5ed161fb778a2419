"""A token already expired when it arrives is never a login per request (issue 19, finding 6).

fedbearer uses it for the request at hand and renews it only once the API refuses it. The
other choice, refusing it with an error about clock skew, would fail every request of a
machine whose clock is wrong although the API accepts its tokens; used, such a token costs
one refused request when it really is dead. Before, every request opened the browser again.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from fedbearer import FederationAuth, MemoryTokenCache, _clock
from fedbearer._protocol import expired_on_arrival, parse_token_response
from fedbearer.testing import LocalFederation

from .api_server import ProtectedAPI
from .conftest import nebius_auth
from .test_auth import session_with


def jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("answer", "on_arrival", "expired"),
    [
        ({"expires_in": 0.001}, 1000.01, True),  # a millisecond, gone on the way
        ({"expires_in": 1}, 1000.6, True),  # more than half of it gone on the way
        ({"expires_in": 1}, 1000.4, False),
        ({"expires_in": 3600}, 1000.5, False),
        ({"access_token": jwt({"exp": 900})}, 1000.01, True),  # a JWT exp in the past
        ({"access_token": jwt({"exp": 4600})}, 1000.01, False),
        ({"expires_in": None}, 1000.01, False),  # no expiry stated: the default lifetime
    ],
)
def test_what_counts_as_expired_on_arrival(answer, on_arrival, expired):
    body = {"access_token": "opaque", "token_type": "Bearer", **answer}
    body = {k: v for k, v in body.items() if v is not None}
    token = parse_token_response(200, json.dumps(body).encode(), requested_at=1000.0)
    assert expired_on_arrival(token, on_arrival) is expired


def cold_auth(fed: LocalFederation) -> FederationAuth:
    return nebius_auth(fed, cache=MemoryTokenCache(), timeout=20)


@pytest.mark.parametrize("refresh_tokens", [False, True], ids=["logins", "refreshes"])
def test_a_token_expired_on_arrival_serves_every_request_after_one_login(caplog, refresh_tokens):
    """The API accepts the token for an hour; the provider says it expires in 1 ms. Before,
    each request logged in again (or, with a refresh token, refreshed)."""
    fed = LocalFederation(token_lifetime=3600, issue_refresh_tokens=refresh_tokens)
    with fed, ProtectedAPI(fed.is_valid) as api:
        fed.expires_in = 0.001
        session = session_with(cold_auth(fed))
        with caplog.at_level(logging.WARNING, logger="fedbearer"):
            statuses = [session.get(api.url).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert fed.logins == 1 and fed.refreshes == 0
    warned = [r.getMessage() for r in caplog.records if "clock skew" in r.getMessage()]
    assert len(warned) == 1 and "expired when it arrived" in warned[0]


def test_a_token_that_really_is_dead_on_arrival_costs_no_login_per_request():
    """A provider whose tokens are dead when they arrive: the first request logs in and
    renews once when the API refuses it; the API's 401 is then returned, and later requests
    neither log in nor refresh again."""
    with LocalFederation(token_lifetime=0) as fed, ProtectedAPI(fed.is_valid) as api:
        fed.expires_in = 0.001
        session = session_with(cold_auth(fed))
        first = session.get(api.url)
        after_first = (fed.logins, fed.refreshes)
        later = [session.get(api.url).status_code for _ in range(2)]
        assert first.status_code == 401 and later == [401, 401]
        assert after_first == (1, 1)  # one login, one refresh for the refused token
        assert (fed.logins, fed.refreshes) == after_first


def test_the_token_is_still_renewed_when_the_api_refuses_it():
    with LocalFederation(token_lifetime=3600) as fed, ProtectedAPI(fed.is_valid) as api:
        fed.expires_in = 0.001
        session = session_with(cold_auth(fed))
        assert session.get(api.url).status_code == 200
        fed.revoke_access_tokens()
        assert session.get(api.url).status_code == 200  # refused, refreshed, resent
        assert fed.logins == 1 and fed.refreshes == 1


def test_a_refreshed_token_expired_on_arrival_is_used_too(monkeypatch):
    with LocalFederation(token_lifetime=3600) as fed, ProtectedAPI(fed.is_valid) as api:
        auth = cold_auth(fed)
        session = session_with(auth)
        assert session.get(api.url).status_code == 200
        fed.expires_in = 0.001
        # 3400 s later, the first token is due (a 5 min margin): a refresh. The clock still
        # runs, so the millisecond the new token lives passes on its way.
        monkeypatch.setattr(_clock, "now", lambda: time.time() + 3400)
        statuses = [session.get(api.url).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert fed.logins == 1 and fed.refreshes == 1
        assert auth.get_token().expiration is None
