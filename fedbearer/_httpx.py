"""``FederationAuth`` for ``httpx``: one ``httpx.Auth`` for ``httpx.Client`` and ``AsyncClient``.

The token, its cache, renewal and single flight belong to
:class:`~fedbearer._credentials.Credentials`, as for the ``requests`` adapter; this module
puts the header on requests to the right origins and turns a 401 into one renewal and one
resend through httpx's auth flow (yield the request, receive the response, yield it again).

The synchronous flow renews in the calling thread. The asynchronous flow never blocks the
event loop: a renewal (cache read, lock wait, refresh, browser login) runs in a worker
thread. Under asyncio the tasks that need the same renewal share one future, run in the
loop's default executor, and wait for it through :func:`asyncio.shield`, so cancelling
one waiter leaves the renewal to the others. Under trio (the other event loop httpx
supports, through anyio) one thread of its own renews and the waiting tasks of that run
await its result, with the same rules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Optional

import httpx

from . import _clock
from ._auth import MAX_RESENDS, REFRESH_STATUSES
from ._challenge import bearer_error
from ._credentials import FederationAuthBase, copy_error
from ._exceptions import FedbearerError
from ._origins import DEFAULT_PORTS

log = logging.getLogger("fedbearer.auth")

assert MAX_RESENDS == 1  # the flows below resend at most once


def _origin(url: httpx.URL) -> str:
    """``scheme://host:port`` of an httpx URL, as :func:`fedbearer._origins.origin_of`."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = url.port
    return f"{url.scheme}://{host}:{DEFAULT_PORTS.get(url.scheme, '') if port is None else port}"


def _replayable(request: httpx.Request) -> bool:
    """Whether the body is in memory (bytes, text, form, JSON), so it can be sent again."""
    try:
        request.content  # noqa: B018 - raises for a stream that was never read
    except httpx.RequestNotRead:
        return False
    return True


def _run_into(renew: Callable[[], None], future: concurrent.futures.Future[None]) -> None:
    try:
        renew()
    except BaseException as exc:  # handed to the waiting tasks, whatever it is
        future.set_exception(exc)
    else:
        future.set_result(None)


@dataclass
class _TrioFlight:
    """One renewal in a thread of its own, shared by the trio tasks of one run that need it."""

    token: object  # the run's trio.lowlevel.TrioToken
    stale: Optional[str]
    future: concurrent.futures.Future[None]


@dataclass
class _Flight:
    """One renewal in a worker thread, shared by the asyncio tasks that need it."""

    loop: asyncio.AbstractEventLoop
    stale: Optional[str]
    future: asyncio.Future[None]


class FederationAuth(FederationAuthBase, httpx.Auth):
    """Bearer-token auth for ``httpx`` from an interactive federation login.

    ``httpx.Client(auth=FederationAuth(...))`` or ``httpx.AsyncClient(auth=...)``. The
    constructors, options and behaviour are those of :class:`fedbearer.FederationAuth`
    (lazy login, renewal margin, refresh then login, ``hosts`` and the plain-HTTP rule, the
    environment token, the shared token cache, logout); a 401 from the origin the token was
    sent to renews the token and resends the request once. A body that is not in memory (a
    generator or async iterator, a multipart upload) is not resent: the 401 is returned,
    with a warning.

    With ``AsyncClient`` no login, refresh, cache read or lock wait runs on the event
    loop, concurrent tasks that need a token share one renewal, and cancelling a waiting
    task does not cancel the renewal the others wait for. :meth:`get_token` and
    :meth:`logout` block; call them from async code with ``await
    asyncio.to_thread(auth.get_token)``.

    One object may serve several clients, threads and event loops; it pickles as the
    ``requests`` adapter does.
    """

    _flight: Optional[_Flight] = None
    _trio_flight: Optional[_TrioFlight] = None

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state.pop("_flight", None)  # belongs to a running event loop
        state.pop("_trio_flight", None)
        return state

    # ------------------------------------------------------------------ the token path

    def _sends_to(self, url: httpx.URL) -> bool:
        hosts = self.hosts
        if hosts is not None:
            return _origin(url) in hosts
        return url.scheme == "https" or self._plain_http_ok(_origin(url))

    def _refusal(self, response: httpx.Response, header: str) -> Optional[str]:
        """Where (``"GET https://host:443"``) the API refused ``header``, when the 401 is
        about it and renewing may help; else ``None``."""
        if response.status_code not in REFRESH_STATUSES:
            return None
        request = response.request
        if request.headers.get("Authorization") != header:
            return None  # httpx dropped it on a redirect to another origin
        if self.credentials.distrusts(header):
            return None
        reason = bearer_error(response.headers.get("WWW-Authenticate"))
        if reason is not None:
            log.debug("401 challenge names %s: not about our token, not renewing", reason)
            return None
        return f"{request.method} {_origin(request.url)}"

    def _resend(
        self, request: httpx.Request, response: httpx.Response, where: str, header: str
    ) -> Optional[httpx.Request]:
        """A copy of ``request`` with ``header``, when its body can go again; else warn.

        A copy, so that the 401 in ``response.history`` keeps the request it answered. It
        carries the cookies the 401 set (a load balancer's affinity cookie, say), as the
        ``requests`` adapter's resend and httpx's ``DigestAuth`` do.
        """
        if not _replayable(request):
            log.warning(
                "got 401 for %s; the token was renewed but the request body is a stream "
                "that cannot be sent again, so the request is not resent and the 401 is "
                "returned. Send bytes, text, form data or JSON to have it resent",
                where,
            )
            return None
        retry = httpx.Request(
            request.method,
            request.url,
            headers=request.headers.copy(),
            stream=request.stream,  # a ByteStream: the same bytes again
            extensions=request.extensions,
        )
        retry.headers["Authorization"] = header
        if response.cookies:
            httpx.Cookies(response.cookies).set_cookie_header(retry)
        return retry

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._sends_to(request.url):
            yield request
            return
        credentials = self.credentials
        token, header, renew_at = credentials.snapshot
        if _clock.now() >= renew_at:
            header = credentials.header_after(token)
        request.headers["Authorization"] = header
        response = yield request
        where = self._refusal(response, header)
        if where is None:
            return
        new_header = credentials.refused(header, where)
        retry = None if new_header is None else self._resend(request, response, where, new_header)
        if retry is not None and new_header is not None:
            response = yield retry
            if response.status_code in REFRESH_STATUSES:
                credentials.refused_again(new_header, where)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._sends_to(request.url):
            yield request
            return
        credentials = self.credentials
        token, header, renew_at = credentials.snapshot
        if _clock.now() >= renew_at:
            header = await self._header_after(token.token if token is not None else None)
        request.headers["Authorization"] = header
        response = yield request
        where = self._refusal(response, header)
        if where is None:
            return
        if credentials.token_variable is not None:
            credentials.refused(header, where)  # only warns: nothing to renew
            return
        new_header = await self._header_after(header[len("Bearer ") :], rejected=True)
        retry = self._resend(request, response, where, new_header)
        if retry is not None:
            response = yield retry
            if response.status_code in REFRESH_STATUSES:
                credentials.refused_again(new_header, where)

    # ------------------------------------------------------------------ async renewal

    async def _header_after(self, stale: Optional[str], *, rejected: bool = False) -> str:
        """The header of a usable token other than ``stale``, renewed off the event loop."""
        await self._renew(stale, rejected)
        header = self.credentials.snapshot[1]
        if not header:  # a concurrent 401 dropped the new token already: once more
            await self._renew(None, False)
            header = self.credentials.snapshot[1]
        return header

    async def _renew(self, stale: Optional[str], rejected: bool) -> None:
        renew = functools.partial(self.credentials.renew, stale, rejected=rejected)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio, the other event loop httpx supports
            await self._renew_under_trio(renew, stale)
            return
        flight = self._flight
        if (
            flight is None
            or flight.loop is not loop
            or flight.stale != stale
            or flight.future.done()
        ):
            flight = _Flight(loop, stale, loop.run_in_executor(None, renew))
            self._flight = flight
        # Shielded: a waiter that is cancelled stops waiting; the renewal goes on for the
        # others (a thread cannot be interrupted anyway).
        try:
            await asyncio.shield(flight.future)
        except FedbearerError as exc:
            # A copy per waiter, as the core gives threads queued behind a failed login:
            # one object raised in every task would gather all their frames in its
            # traceback and keep them alive.
            raise copy_error(exc) from exc.__cause__

    async def _renew_under_trio(self, renew: Callable[[], None], stale: Optional[str]) -> None:
        """:meth:`_renew` under trio: one thread renews, the waiting tasks await an event.

        Not a worker thread per waiting task: 100 of them would hold all of trio's
        (and anyio's) 40 worker threads for the whole login, and stall every other
        ``to_thread`` call in the program (a file read, a DNS lookup) until it ends.
        """
        import trio  # only under trio, which is then imported already

        token = trio.lowlevel.current_trio_token()
        flight = self._trio_flight
        if (
            flight is None
            or flight.token is not token
            or flight.stale != stale
            or flight.future.done()
        ):
            flight = _TrioFlight(token, stale, concurrent.futures.Future())
            threading.Thread(
                target=_run_into, args=(renew, flight.future), name="fedbearer-renew", daemon=True
            ).start()
            self._trio_flight = flight
        done = trio.Event()

        def wake(_: object) -> None:
            # When the run that waited has ended, there is nobody to wake.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        flight.future.add_done_callback(wake)
        # A cancelled task stops waiting here; the renewal goes on for the others.
        await done.wait()
        try:
            flight.future.result()
        except FedbearerError as exc:
            raise copy_error(exc) from exc.__cause__
