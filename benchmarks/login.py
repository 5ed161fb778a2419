"""A full interactive login vs its floor, and the memory one login takes.

Ours: :func:`fedbearer.authorize` against :class:`~fedbearer.testing.LocalFederation`
(auto-approve) with :class:`~fedbearer.testing.ProgrammaticBrowser` playing the browser.

The floor: the same three HTTP exchanges written by hand, in the same process and run:
bind a loopback listener, let the same ProgrammaticBrowser (plain :mod:`urllib`) GET the
authorize URL (302) and then the callback, accept that one connection on the main thread
and answer it with the same page bytes, then POST the code to the token endpoint with
:mod:`urllib` and parse the JSON. It does no more than any login must (state, PKCE S256,
one listening socket, one browser), and the browser's work is identical on both sides, so
``ours / floor`` is what fedbearer's own code costs: its server, checks and token call.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import fedbearer
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from ._common import Result, interleaved, ratio_result

TARGET = 1.5


def login_once(fed: LocalFederation) -> fedbearer.Token:
    return fedbearer.authorize(
        fed.client_id,
        fed.endpoint,
        fed.federation_id or "",
        writer=io.StringIO(),
        opener=ProgrammaticBrowser(),
        timeout=30,
    )


_PAGE = b""


def _page() -> bytes:
    """The bytes fedbearer's success page has, so both browsers parse the same page."""
    global _PAGE
    if not _PAGE:
        from fedbearer import _pages

        _PAGE = _pages.success_page(app="fedbearer", profile=None, federation="x")
    return _PAGE


def floor_once(fed: LocalFederation) -> str:
    """The three exchanges by hand; returns the access token."""
    page = _page()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    redirect_uri = f"http://127.0.0.1:{port}"
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(32)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = {
        "response_type": "code",
        "client_id": fed.client_id,
        "scope": "openid",
        "state": state,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "federation-id": fed.federation_id or "",
    }
    browser = ProgrammaticBrowser()
    browser(fed.authorize_url + "?" + urlencode(query))
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        target = data.split(b" ", 2)[1].decode()
        params = dict(parse_qsl(urlsplit(target).query))
        assert secrets.compare_digest(params["state"], state)
        conn.sendall(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
            + page
        )
    listener.close()
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": fed.client_id,
            "code_verifier": verifier,
        }
    ).encode()
    request = urllib.request.Request(
        fed.token_url,
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # The default opener, proxies from the environment included, as requests does.
    with urllib.request.build_opener().open(request, timeout=10) as answer:
        token = json.loads(answer.read())["access_token"]
    return token  # type: ignore[no-any-return]


def _timed(fn: Callable[[LocalFederation], object], fed: LocalFederation) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        fn(fed)
        return time.perf_counter() - start

    return measure


_CHILD = r"""
import io, sys, tracemalloc
tracemalloc.start()
import fedbearer
from fedbearer import authorize  # the public names load on first use: load it here
from fedbearer.testing import ProgrammaticBrowser
imported = tracemalloc.get_traced_memory()[0]
def login():
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    authorize("fedbearer-test", sys.argv[1], "test-federation",
                        writer=io.StringIO(), opener=ProgrammaticBrowser(), timeout=30)
    return tracemalloc.get_traced_memory()[1] - base
first = login()
print(imported, first, min(login() for _ in range(5)))
"""


def _memory(fed: LocalFederation) -> tuple[int, int, int]:
    """Bytes traced in a fresh process: after ``from fedbearer import authorize`` (requests
    included), the peak above that during its first login (which imports what only a login
    needs), and the smallest peak of five later logins. The federation runs in this process, so its
    allocations are not counted."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, fed.endpoint],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: no paste reader in the measurement
        timeout=120,
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def run(quick: bool = False) -> list[Result]:
    rounds = 8 if quick else 41
    with LocalFederation() as fed:
        for _ in range(3):  # imports (oauthlib, http.server), first-use caches
            login_once(fed)
            floor_once(fed)
        ours, floor = interleaved(_timed(login_once, fed), _timed(floor_once, fed), rounds)
        logins = fed.logins
        imported, first, later = _memory(fed)
    result = ratio_result(
        "full login vs raw-urllib floor",
        ours,
        floor,
        unit="ms/login",
        scale=1e3,
        target=TARGET,
        note=f"median of {rounds} interleaved pairs; {logins} logins in all",
    )
    memory = Result(
        "peak extra memory of one login",
        later / 1024,
        None,
        "KiB",
        note="tracemalloc, fresh process: from fedbearer import authorize "
        f"{imported / 1024:.0f} KiB; "
        f"first login +{first / 1024:.0f} KiB (its lazy imports); later logins "
        f"+{later / 1024:.0f} KiB",
        extra={"import_kib": imported / 1024, "first_kib": first / 1024},
    )
    return [result, memory]
