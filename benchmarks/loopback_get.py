"""A GET through a ``requests.Session`` with FederationAuth vs the same with a static header.

Both sessions keep one connection alive to the same tiny loopback server, so what differs
is exactly the auth: FederationAuth's ``__call__`` plus its response hook. Short blocks of
A and B alternate (order swapped every round) so each pair sees the same machine; the
ratio is the median of the per-round ratios. An A/A row (static vs static) shows how
finely this machine can measure at all.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import requests

from ._common import Result, interleaved, ratio_result
from ._servers import keep_alive_server
from .hot_path import StaticBearer, _auth_with_token

TARGET = 1.02


def _session(auth: requests.auth.AuthBase) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, no .netrc: both sides do the same work
    session.auth = auth
    return session


def _timer(session: requests.Session, url: str, n: int) -> Callable[[], float]:
    def measure() -> float:
        get = session.get
        start = time.perf_counter()
        for _ in range(n):
            get(url).close()
        return (time.perf_counter() - start) / n

    return measure


def run(quick: bool = False) -> list[Result]:
    token = secrets.token_urlsafe(768)
    rounds, block = (60, 10) if quick else (400, 10)
    results = []
    with keep_alive_server() as server:
        url = server.url + "/v1/things"
        ours = _session(_auth_with_token(token))
        floor = _session(StaticBearer(token))
        control = _session(StaticBearer(token))
        for s in (ours, floor, control):  # connect and warm up
            _timer(s, url, 50)()
        for name, a_session in (
            ("loopback GET, Session + auth", ours),
            ("  A/A control: static vs static", control),
        ):
            a, b = interleaved(_timer(a_session, url, block), _timer(floor, url, block), rounds)
            results.append(
                ratio_result(
                    name,
                    a,
                    b,
                    unit="us/request",
                    scale=1e6,
                    target=TARGET,
                    note=f"median of {rounds} interleaved rounds of {block} keep-alive GETs",
                )
            )
        for s in (ours, floor, control):
            s.close()
    return results
