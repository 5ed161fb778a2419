"""``fedbearer.httpx.FederationAuth`` against the independent provider, Chromium logging in.

Both ways to name the provider (a Nebius-style federation endpoint, and an issuer whose
discovery document gives the endpoints), both clients (``httpx.Client`` and
``httpx.AsyncClient``), and what the provider decides: its access tokens expire in seconds
(``make_provider(at_ttl=2)``), it rotates refresh tokens, its ``/me`` is the protected API.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any, Callable

import pytest
import requests

from fedbearer import Token

from ..conftest import import_or_fail
from .chromium import BrowserDriver, login_and_approve
from .provider import IndependentProvider

httpx = import_or_fail("httpx", "pip install -e '.[test]'")
from fedbearer.httpx import FederationAuth  # noqa: E402 - after the check above

pytestmark = [pytest.mark.interop, pytest.mark.browser]

MakeProvider = Callable[..., IndependentProvider]

web = requests.Session()
web.trust_env = False  # loopback only


def grants(op: IndependentProvider) -> list[tuple[str, int]]:
    return [(entry["form"].get("grant_type"), entry["status"]) for entry in op.token_log()]


def wait_until_rejected(op: IndependentProvider, access_token: str, limit: float = 15.0) -> None:
    """Poll ``/me`` until the provider refuses ``access_token`` (its own clock expired it)."""
    end = time.monotonic() + limit
    while (
        web.get(
            op.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        ).status_code
        != 401
    ):
        assert time.monotonic() < end, f"the provider still accepts the token after {limit}s"
        time.sleep(0.1)


def current(auth: FederationAuth) -> Token:
    token = auth.credentials.token
    assert token is not None
    return token


def options(**kwargs: Any) -> dict[str, Any]:
    return {"cache": None, "interactive": True, "writer": io.StringIO(), "timeout": 30, **kwargs}


def test_client_logs_in_through_chromium_and_a_401_is_renewed_and_resent(
    make_provider: MakeProvider, browser_env: BrowserDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fedbearer's clock stopped from the start: it will still trust the token after the
    # provider has expired it, so that request goes out with it and gets 401.
    frozen = time.time()
    monkeypatch.setattr("fedbearer._clock.now", lambda: frozen)
    op = make_provider(at_ttl=2, refresh=True)
    auth = FederationAuth(op.client_id, op.endpoint, op.federation_id, **options())
    run = browser_env.expect(login_and_approve("judy"))
    with httpx.Client(auth=auth, trust_env=False, timeout=30) as http:
        first = http.get(op.userinfo_url)
        assert first.status_code == 200 and first.json()["sub"] == "judy"
        run.wait(30).raise_for_error()
        old = current(auth)
        wait_until_rejected(op, old.token)  # the flow renews after the 401 and resends
        second = http.post(op.userinfo_url, content=b"")
    assert second.status_code == 200, second.text
    assert [r.status_code for r in second.history] == [401]
    assert second.history[0].request.headers["Authorization"] == f"Bearer {old.token}"
    assert second.request.headers["Authorization"] == f"Bearer {current(auth).token}"
    assert grants(op) == [("authorization_code", 200), ("refresh_token", 200)]
    assert len(op.authorize_log()) == 1
    assert browser_env.unexpected == []


def test_async_client_by_discovery_shares_one_login_and_renews_by_refresh(
    make_provider: MakeProvider, browser_env: BrowserDriver
) -> None:
    op = make_provider(at_ttl=2, refresh=True)
    auth = FederationAuth.from_issuer(
        op.issuer,
        op.client_id,
        scopes=("openid", "offline_access"),
        params={"federation-id": op.federation_id, "prompt": "consent"},
        **options(timeout=60),
    )
    run = browser_env.expect(login_and_approve("kate"))

    async def main() -> tuple[list[httpx.Response], Token, httpx.Response]:
        async with httpx.AsyncClient(auth=auth, trust_env=False, timeout=60) as http:
            crowd = await asyncio.gather(*(http.get(op.userinfo_url) for _ in range(20)))
            first = current(auth)
            await asyncio.to_thread(wait_until_rejected, op, first.token)
            # Past its renewal time now: renewed before sending, by the refresh token.
            later = await http.get(op.userinfo_url)
        return list(crowd), first, later

    crowd, first, later = asyncio.run(main())
    run.wait(60).raise_for_error()
    assert [r.status_code for r in crowd] == [200] * 20
    assert {r.json()["sub"] for r in crowd} == {"kate"}
    assert later.status_code == 200 and later.history == []
    assert later.request.headers["Authorization"] == f"Bearer {current(auth).token}"
    assert current(auth).token != first.token
    assert len(op.authorize_log()) == 1  # one login for twenty tasks
    assert grants(op) == [("authorization_code", 200), ("refresh_token", 200)]
    assert browser_env.unexpected == []
