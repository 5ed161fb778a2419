"""httpx: the token path against a static-header ``httpx.Auth``, and an async crowd's logins.

- The token path, as httpx drives it for every request: open the auth flow, take the
  request it yields, send it the response, see it end. Sync (``sync_auth_flow``) and async
  (``async_auth_flow``), each against a hand-written static-header ``httpx.Auth`` in the
  same run, on the same batch of fresh requests. The token is ~1 KB, like a real JWT; GC
  is off while timing, as in :mod:`timeit`.
- 100 asyncio tasks with no token, through one ``httpx.AsyncClient``: 1 login; and the
  longest gap between the ticks of a 5 ms heartbeat task until that login has a token (a
  login that blocked the event loop would show here as a gap as long as the login; the
  100 requests sent afterwards are not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import datetime, timedelta, timezone

import httpx

from fedbearer import MemoryTokenCache, Token
from fedbearer.httpx import FederationAuth
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from ._common import Result, interleaved, ratio_result
from ._servers import keep_alive_server

TARGET = 3.0
BATCH = 2000
TASKS = 100


class StaticBearer(httpx.Auth):
    """The floor: what a hand-written bearer auth for httpx does."""

    def __init__(self, token: str) -> None:
        self.header = "Bearer " + token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.header
        yield request


def _auth_with_token(token: str) -> FederationAuth:
    cache = MemoryTokenCache()
    auth = FederationAuth("bench-client", "https://auth.example.com", "bench-fed", cache=cache)
    cache.put(auth.bearer.name, Token(token, datetime.now(timezone.utc) + timedelta(hours=1)))
    auth.get_token()
    return auth


def _batch() -> list[httpx.Request]:
    return [httpx.Request("GET", "https://api.example.com/v1/things?page=2") for _ in range(BATCH)]


def _sync_timer(auth: httpx.Auth, response: httpx.Response) -> Callable[[], float]:
    def measure() -> float:
        batch = _batch()
        gc.disable()
        try:
            start = time.perf_counter()
            for request in batch:
                flow = auth.sync_auth_flow(request)
                next(flow)
                with contextlib.suppress(StopIteration):
                    flow.send(response)
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        return elapsed / BATCH

    return measure


async def _async_batch(
    auth: httpx.Auth, batch: list[httpx.Request], response: httpx.Response
) -> float:
    start = time.perf_counter()
    for request in batch:
        flow: AsyncGenerator[httpx.Request, httpx.Response] = auth.async_auth_flow(request)
        await flow.__anext__()
        with contextlib.suppress(StopAsyncIteration):
            await flow.asend(response)
    return time.perf_counter() - start


def _async_timer(
    auth: httpx.Auth, response: httpx.Response, loop: asyncio.AbstractEventLoop
) -> Callable[[], float]:
    def measure() -> float:
        batch = _batch()
        gc.disable()
        try:
            elapsed = loop.run_until_complete(_async_batch(auth, batch, response))
        finally:
            gc.enable()
        return elapsed / BATCH

    return measure


def _token_path(quick: bool) -> list[Result]:
    token = secrets.token_urlsafe(768)  # 1024 characters
    ours, floor = _auth_with_token(token), StaticBearer(token)
    response = httpx.Response(200)
    rounds = 15 if quick else 61
    results = []
    loop = asyncio.new_event_loop()
    try:
        for name, timer in (
            ("httpx token path, Client", lambda a: _sync_timer(a, response)),
            ("httpx token path, AsyncClient", lambda a: _async_timer(a, response, loop)),
        ):
            timer(ours)()  # warm both
            timer(floor)()
            a, b = interleaved(timer(ours), timer(floor), rounds)
            results.append(
                ratio_result(
                    name,
                    a,
                    b,
                    unit="ns/call",
                    scale=1e9,
                    target=TARGET,
                    per_round=False,
                    note=f"{len(token)}-char token, min of {rounds} batches of {BATCH}",
                )
            )
    finally:
        loop.close()
    return results


async def _crowd(fed: LocalFederation, url: str) -> tuple[list[int], float]:
    auth = FederationAuth(
        fed.client_id,
        fed.endpoint,
        fed.federation_id or "",
        cache=None,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        timeout=30,
    )
    longest = 0.0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            if auth.credentials.token is None:  # the login is still running
                longest = max(longest, now - last)
            last = now

    async with httpx.AsyncClient(auth=auth, trust_env=False) as http:
        beat = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0.05)  # the heartbeat is running before the crowd comes
        answers = await asyncio.gather(*(http.get(url) for _ in range(TASKS)))
        done.set()
        await beat
    return [r.status_code for r in answers], longest


def _async_crowd() -> list[Result]:
    def responder(head: bytes) -> bytes:
        if b"\r\nauthorization: bearer " not in head.lower():
            return b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    with LocalFederation() as fed, keep_alive_server(responder) as api:
        statuses, longest = asyncio.run(_crowd(fed, api.url))
        logins = fed.logins
    return [
        Result(
            f"{TASKS} async tasks, no token -> logins",
            logins,
            None,
            "logins",
            target="1",
            ok=logins == 1 and statuses == [200] * TASKS,
            note=f"{statuses.count(200)}/{TASKS} requests answered 200",
        ),
        Result(
            "longest event-loop stall during that login",
            longest * 1e3,
            None,
            "ms",
            target="< 100",
            ok=longest < 0.1,
            note="largest gap between ticks of a 5 ms asyncio.sleep heartbeat until the token came",
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    return _token_path(quick) + _async_crowd()
