"""Every call fedbearer makes to a provider, each bounded by one wall-clock deadline.

Discovery, the pre-flight check, the code exchange, refresh and revocation all go through
:func:`call`, and nothing else in fedbearer talks to a provider. It decides, in one place:

* **When the call ends.** ``requests``' ``timeout`` bounds each socket operation, not the
  call: a server that sends its status line and headers one byte a second never trips it.
  So each call has a watchdog (:class:`_Watchdog`): a timer that, when the deadline passes,
  shuts down the sockets the call opened, which wakes the read blocked on them at once,
  wherever it is (TCP connect aside, which the connect timeout bounds: a proxy's CONNECT
  answer, the TLS handshake, the status line, the headers, the body). ``shutdown()``
  rather than ``close()``: closing a descriptor another thread is reading can hand its
  number to an unrelated file before that read returns; shutting it down only ends the
  connection, and urllib3 closes the socket as usual. A timer thread rather than a
  per-read timeout that shrinks: nothing in ``http.client`` lets a caller change the
  timeout between the reads of one header block. The timer runs only for these calls,
  never on the hot path of authenticated requests.
* **How the provider is reached.** The caller's ``session=`` (a :class:`requests.Session`)
  gives the CA bundle (``verify``), the client certificate (``cert``), the proxies and the
  retries of the ``HTTPAdapter`` it mounts; its own ``verify`` and ``proxies`` win over the
  environment, which (``session.trust_env``, on by default) fills in the rest:
  ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` and ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``
  or ``SSL_CERT_FILE``. Without a session, the ``verify`` setting and the environment do.
  The session's auth, headers, cookies and hooks are never applied: they belong to the
  caller's API, not to its identity provider (a ``.netrc`` password or an API key would
  otherwise reach the token endpoint).
* **What a failure says.** A TLS failure names the CA bundle that was used, where that
  choice came from, and what to set instead.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, BaseAdapter, HTTPAdapter
from requests.utils import default_headers, get_environ_proxies
from urllib3.util.retry import Retry

from ._exceptions import (
    ConfigurationError,
    InvalidTokenResponseError,
    LoginTimeoutError,
    TokenEndpointError,
)
from ._interrupts import start_thread
from ._protocol import MAX_TOKEN_RESPONSE_BYTES
from ._settings import Verify

log = logging.getLogger("fedbearer.login")

#: Seconds a call to the provider may take when no login deadline bounds it, and at most
#: for a refresh or a revocation: a provider that hangs must not hang the caller.
TOKEN_REQUEST_TIMEOUT = 30.0

#: Environment variables naming a CA bundle, in the order they are looked at when
#: ``verify`` is left at ``True``: requests' own two, then OpenSSL's.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class Answer:
    """A provider's answer: status, headers, and the body when it was read."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def ca_bundle(verify: Verify, session: Optional[requests.Session]) -> tuple[Verify, str]:
    """The ``verify`` value a call uses, and where it comes from (for messages).

    The session's own ``verify`` (or the ``verify`` setting) when it is not ``True``; else
    the first of :data:`CA_BUNDLE_VARIABLES` that is set (when the session trusts the
    environment); else certifi's bundle, requests' default.
    """
    if session is not None:
        verify = True if session.verify is None else session.verify
        option = "session.verify"
    else:
        option = "verify="
    if verify is not True:
        return verify, option
    if session is None or session.trust_env:
        for name in CA_BUNDLE_VARIABLES:
            value = os.environ.get(name, "")
            if value:
                return value, f"${name}"
    return True, "requests' default (certifi)"


def tls_advice(verify: Verify, source: str) -> str:
    """Which CA bundle a failed TLS check used and how to name another."""
    used = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
    return (
        f"the CA bundle used was {used} ({source}); for a private or TLS-inspecting "
        "certificate authority pass its bundle as verify= (or a session= whose verify is "
        "it), or set REQUESTS_CA_BUNDLE (the CLI reads it too)"
    )


def _proxies(url: str, session: Optional[requests.Session]) -> dict[str, str]:
    """The session's own proxies, and the environment's (``NO_PROXY`` applied) for the rest."""
    own = dict(session.proxies) if session is not None else {}
    trust_env = session is None or session.trust_env
    found = dict(get_environ_proxies(url, no_proxy=own.get("no_proxy"))) if trust_env else {}
    found.update(own)
    return found


class _Watchdog:
    """Shuts down one call's sockets when its deadline passes (see the module docstring).

    A socket opened after that is shut down as it is registered, so a retry cannot
    outlive the deadline either.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.name = "fedbearer-deadline"
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.fired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Watchdog:
        start_thread(self._timer)
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter, its connections registered with one call's :class:`_Watchdog`.

    One per call, so its connection pools, and every socket they open, are that call's.
    """

    def __init__(self, watchdog: _Watchdog, max_retries: Any = 0) -> None:
        self._watchdog = watchdog
        self._classes: dict[type, type] = {}
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=max_retries)
        self.max_retries = _retries_within(self.max_retries, watchdog.deadline)

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        return self._watch(super().get_connection_with_tls_context(*args, **kwargs))

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:  # requests < 2.32.2
        return self._watch(super().get_connection(*args, **kwargs))

    def _watch(self, pool: Any) -> Any:
        """Make ``pool`` open its sockets through a connection class that registers them.

        ``_new_conn`` is where every urllib3 connection class (plain, TLS, through a proxy
        or SOCKS) creates its socket, before the proxy tunnel and the TLS handshake.
        """
        base = pool.ConnectionCls
        if base in self._classes.values():
            return pool
        watched = self._classes.get(base)
        if watched is None:
            watchdog = self._watchdog

            def _new_conn(connection: Any) -> socket.socket:
                sock: socket.socket = base._new_conn(connection)
                watchdog.watch(sock)
                return sock

            watched = type(f"Watched{base.__name__}", (base,), {"_new_conn": _new_conn})
            self._classes[base] = watched
        pool.ConnectionCls = watched
        return pool


def _retries_within(retries: Retry, deadline: float) -> Retry:
    """``retries`` with each wait between attempts (its backoff, a server's ``Retry-After``)
    cut to the time left before ``deadline``.

    urllib3 sleeps between attempts with no socket open, so the watchdog has nothing to shut
    down: a discovery answered ``503`` with ``Retry-After: 86400`` through a session's
    ``HTTPAdapter(max_retries=3)`` would hold the call a day. ``Retry.new`` builds each next
    state as ``type(self)``, so a subclass carries the cut through every attempt.
    """

    class _Within(type(retries)):  # type: ignore[misc]
        def get_retry_after(self, response: Any) -> Optional[float]:
            seconds: Optional[float] = super().get_retry_after(response)
            return None if seconds is None else min(seconds, _left(deadline))

        def get_backoff_time(self) -> float:
            return min(float(super().get_backoff_time()), _left(deadline))

    within = copy.copy(retries)
    within.__class__ = _Within
    return within


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _adapter_for(
    url: str, session: Optional[requests.Session], watchdog: _Watchdog
) -> tuple[BaseAdapter, bool]:
    """The adapter to send through, and whether it is ours (to be closed after the call).

    Ours unless the session mounts for ``url`` an adapter other than requests' own
    ``HTTPAdapter`` (a mock, a custom transport or TLS set-up): that one is used as it is,
    and bounds the connection and each read but not a header block as a whole.
    """
    if session is None:
        return _WatchedAdapter(watchdog), True
    mounted = session.get_adapter(url)
    if type(mounted) is HTTPAdapter:
        return _WatchedAdapter(watchdog, mounted.max_retries), True
    log.debug("sending through the session's own %s", type(mounted).__name__)
    return mounted, False


def _read_bounded(response: requests.Response, deadline: float, what: str) -> bytes:
    """The body, at most :data:`MAX_TOKEN_RESPONSE_BYTES`, read before ``deadline``.

    ``read1`` returns whatever has arrived, so the deadline is checked after every few
    bytes a slow server drips (the watchdog ends the read that would block past it).
    urllib3 1.x has no ``read1``: one byte at a time there, which only costs a few
    milliseconds for a token response.
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        pieces: Iterator[bytes] = iter(lambda: read1(16384, decode_content=True), b"")
    else:  # pragma: no cover - urllib3 1.x, and adapters without a urllib3 response
        pieces = response.iter_content(chunk_size=1)
    chunks: list[bytes] = []
    size = 0
    for chunk in pieces:
        size += len(chunk)
        if size > MAX_TOKEN_RESPONSE_BYTES:
            raise InvalidTokenResponseError(
                f"{what} answer exceeds {MAX_TOKEN_RESPONSE_BYTES} bytes; "
                "check the federation endpoint",
                status=response.status_code,
            )
        if time.monotonic() > deadline:
            raise LoginTimeoutError(f"the {what} did not finish answering before the deadline")
        chunks.append(chunk)
    return b"".join(chunks)


_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)


def call(
    url: str,
    body: Optional[str],
    *,
    deadline: Optional[float],
    verify: Verify,
    session: Optional[requests.Session] = None,
    what: str = "token endpoint",
    error: type[TokenEndpointError] = TokenEndpointError,
    headers: Optional[Mapping[str, str]] = None,
    read_body: Callable[[int], bool] = lambda status: True,
    redirect_is_error: bool = True,
) -> Answer:
    """One call to the provider, over by ``deadline`` whatever the server does.

    A POST of the form ``body``, or a GET when it is ``None``; ``deadline`` is a
    :func:`time.monotonic` time (``None``: :data:`TOKEN_REQUEST_TIMEOUT` from now).
    Redirects are not followed (a 3xx is an ``error`` unless ``redirect_is_error`` is off);
    the body is read (when ``read_body(status)``) up to :data:`MAX_TOKEN_RESPONSE_BYTES`.
    The deadline passing is a :class:`~fedbearer.LoginTimeoutError`; anything else that
    stops the call an ``error`` naming ``what`` and its URL (never the request body), its
    cause chained.
    """
    if deadline is None:
        deadline = time.monotonic() + TOKEN_REQUEST_TIMEOUT
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise LoginTimeoutError(
            f"the login deadline passed before the {what} was called; pass a longer timeout"
        )
    use_verify, source = ca_bundle(verify, session)
    if isinstance(use_verify, str):
        _check_ca_bundle(use_verify, source)
    sent = dict(default_headers())
    sent["Accept"] = "application/json"
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    sent.update(headers or {})
    request = requests.Request(
        "GET" if body is None else "POST", url, data=body, headers=sent
    ).prepare()
    where = urlsplit(url).netloc
    watchdog = _Watchdog(deadline)
    adapter, ours = _adapter_for(url, session, watchdog)
    try:
        with watchdog:
            try:
                response = adapter.send(
                    request,
                    stream=True,
                    timeout=(remaining, remaining),
                    verify=use_verify,
                    cert=None if session is None else session.cert,
                    proxies=_proxies(url, session),
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if watchdog.fired or isinstance(exc, _TIMEOUTS):
                    raise LoginTimeoutError(
                        f"the {what} did not answer before the deadline; "
                        "the provider may be overloaded, try again"
                    ) from exc
                if isinstance(exc, requests.exceptions.SSLError):
                    raise error(
                        f"the TLS connection to the {what} {where} failed ({_tls_reason(exc)}); "
                        + tls_advice(use_verify, source)
                    ) from exc
                raise error(
                    f"could not reach the {what} {url} ({type(exc).__name__}); "
                    "check the endpoint, your network and proxy settings "
                    "(HTTPS_PROXY, NO_PROXY, or session=)",
                ) from exc
            with response:
                status = response.status_code
                try:
                    raw = _read_bounded(response, deadline, what) if read_body(status) else b""
                # Reading the raw stream raises urllib3's exceptions, not requests' wrappers.
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    if watchdog.fired or isinstance(exc, _TIMEOUTS):
                        raise LoginTimeoutError(
                            f"the {what} did not finish answering before the deadline"
                        ) from exc
                    raise error(
                        f"the {what} {url} broke off its answer ({type(exc).__name__})",
                        status=status,
                    ) from exc
                if watchdog.fired:
                    # Shut down while headers arrived, http.client takes the end of the
                    # stream for the end of the head: what came is not the whole answer.
                    raise LoginTimeoutError(
                        f"the {what} did not finish answering before the deadline"
                    )
                answer = Answer(status, response.headers, raw)
    finally:
        if ours:
            adapter.close()
    if redirect_is_error and 300 <= answer.status < 400:
        raise error(
            f"{what} answered with a redirect (HTTP {answer.status}); "
            "check the federation endpoint",
            status=answer.status,
        )
    return answer


def _check_ca_bundle(path: str, source: str) -> None:
    """Refuse a CA bundle that is missing, or neither a file nor a directory of them:
    OpenSSL opens it blocking, and a FIFO there would hang the call out of the watchdog's
    reach (no socket is read while it waits)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise ConfigurationError(
            f"the CA bundle {path} ({source}) does not exist; name an existing file"
        ) from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigurationError(
            f"the CA bundle {path} ({source}) is not a regular file (a FIFO or device); "
            "name a file of certificates"
        )


def _tls_reason(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its certificate is not trusted"
    if "hostname" in text.lower() and "match" in text.lower():
        return "its certificate is for another host name"
    return "TLS handshake failed"
