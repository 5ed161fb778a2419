"""``auth(r)`` with a valid token in memory vs a static-header ``AuthBase``.

Both sides get the same batch of fresh ``PreparedRequest`` objects (own headers, own hooks
list), built outside the timed loop, so each call does exactly what it does inside
``Session.prepare_request``. The token is ~1 KB, like a real JWT. GC is off while timing,
as in :mod:`timeit`.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Optional

import requests
from requests.auth import AuthBase

from fedbearer import FederationAuth, Token

from ._common import Result, interleaved, ratio_result

TARGET = 3.0
BATCH = 2000


class StaticBearer(AuthBase):
    """The floor: what a hand-written bearer auth does."""

    def __init__(self, token: str) -> None:
        self.header = "Bearer " + token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.header
        return r


def _auth_with_token(token: str, hosts: Optional[list[str]] = None) -> FederationAuth:
    """A FederationAuth whose cache holds a valid ``token``, loaded into memory."""
    from fedbearer._cache import MemoryTokenCache

    cache = MemoryTokenCache()
    auth = FederationAuth(
        "bench-client", "https://auth.example.com", "bench-federation", cache=cache, hosts=hosts
    )
    cache.put(auth.bearer.name, Token(token, datetime.now(timezone.utc) + timedelta(hours=1)))
    auth.get_token()
    return auth


def _batch(template: requests.PreparedRequest) -> list[requests.PreparedRequest]:
    out = []
    for _ in range(BATCH):
        r = template.copy()  # copies headers; hooks would be shared, so give each its own
        r.hooks = {"response": []}
        out.append(r)
    return out


def _timer(auth: AuthBase, template: requests.PreparedRequest) -> Callable[[], float]:
    def measure() -> float:
        batch = _batch(template)
        gc.disable()
        try:
            start = time.perf_counter()
            for r in batch:
                auth(r)
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        return elapsed / BATCH

    return measure


def run(quick: bool = False) -> list[Result]:
    token = secrets.token_urlsafe(768)  # 1024 characters
    template = requests.Request("GET", "https://api.example.com/v1/things?page=2").prepare()
    static = StaticBearer(token)
    rounds = 15 if quick else 61
    results = []
    # The target is for the default; hosts= adds an origin check the floor does not make,
    # so that row is for information.
    for name, hosts, target in (
        ("hot path auth(r), any host", None, TARGET),
        ("hot path auth(r), hosts= set", ["api.example.com"], None),
    ):
        auth = _auth_with_token(token, hosts)
        # Warm both (first calls pay for attribute caches and code objects).
        _timer(auth, template)()
        _timer(static, template)()
        ours, floor = interleaved(_timer(auth, template), _timer(static, template), rounds)
        results.append(
            ratio_result(
                name,
                ours,
                floor,
                unit="ns/call",
                scale=1e9,
                target=target,
                per_round=False,
                note=f"{len(token)}-char token, min of {rounds} batches of {BATCH}",
            )
        )
    return results
