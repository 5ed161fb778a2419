"""A programmatic browser: an ``opener(url) -> bool`` that walks the login redirects.

It uses :mod:`urllib.request`, not ``requests``, so the ``responses`` mocking library cannot
intercept it, and a no-proxy opener, so ``HTTP(S)_PROXY`` cannot route loopback traffic away.
"""

from __future__ import annotations

import ssl
import threading
from email.message import Message
from html.parser import HTMLParser
from typing import Optional, Protocol
from urllib.error import HTTPError
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import (
    HTTPRedirectHandler,
    HTTPSHandler,
    ProxyHandler,
    Request,
    build_opener,
)

__all__ = ["ProgrammaticBrowser"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_BODY = 1024 * 1024


class _Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...


class _NoRedirects(HTTPRedirectHandler):
    """Hand every 3xx back to the caller (as an ``HTTPError``) instead of following it."""

    def redirect_request(
        self,
        req: Request,
        fp: object,
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> Optional[Request]:
        return None


class _FormParser(HTMLParser):
    """Collects the first form: its action, method, fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: Optional[str] = None
        self.method = "get"
        self.fields: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []
        self._in_form = False
        self._seen_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._seen_form:
            self._in_form = self._seen_form = True
            self.action = attr.get("action", "")
            self.method = attr.get("method", "get").lower()
        elif self._in_form and tag == "input" and attr.get("name"):
            if attr.get("type", "text").lower() in ("hidden", "text"):
                self.fields.append((attr["name"], attr.get("value", "")))
        elif self._in_form and tag == "button" and attr.get("name"):
            self.buttons.append((attr["name"], attr.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class ProgrammaticBrowser:
    """Plays the user's browser for a login, in a background daemon thread.

    Called with the authorize URL, it GETs it and follows ``Location`` headers by hand (at
    most ``max_hops``) until an answer that is not a redirect, normally the client's
    loopback callback page. When that answer is a 200 HTML page with a form (the
    :class:`LocalFederation` consent page in interactive mode), it submits it once with
    Approve (``approve=True``) or Deny (``approve=False``); ``approve=None`` stops at the
    page. Calling it returns True at once, as ``webbrowser.open`` does.

    Results: ``visits`` (URL without query, status) in order, ``last_status``,
    ``last_body``, ``last_headers`` of the final answer; ``error`` holds an exception
    instead of printing it; ``done`` is set when the walk ends, either way.
    """

    def __init__(
        self,
        *,
        approve: Optional[bool] = True,
        user: Optional[str] = None,
        max_hops: int = 5,
        timeout: float = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.approve = approve
        self.user = user
        self.max_hops = max_hops
        self.timeout = timeout
        self.done = threading.Event()
        self.opened: list[str] = []
        self.visits: list[tuple[str, int]] = []
        self.last_status: Optional[int] = None
        self.last_body: Optional[str] = None
        self.last_headers: Optional[Message] = None
        self.error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        # ssl_context: trust for an https:// LocalFederation (a test's private CA).
        handlers = [] if ssl_context is None else [HTTPSHandler(context=ssl_context)]
        self._opener = build_opener(ProxyHandler({}), _NoRedirects(), *handlers)

    def __repr__(self) -> str:
        return (
            f"<ProgrammaticBrowser visits={len(self.visits)} last_status={self.last_status} "
            f"done={self.done.is_set()} error={type(self.error).__name__ if self.error else None}>"
        )

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        self.done.clear()
        self._thread = threading.Thread(
            target=self._run, args=(url,), name="ProgrammaticBrowser", daemon=True
        )
        self._thread.start()
        return True

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the walk to end; True if it did within ``timeout``."""
        return self.done.wait(timeout)

    def _run(self, url: str) -> None:
        try:
            self._walk(url)
        except Exception as exc:  # recorded for the test to assert on, never printed
            self.error = exc
        finally:
            self.done.set()

    def _walk(self, url: str) -> None:
        data: Optional[bytes] = None
        submitted = False
        for _ in range(self.max_hops + 1):
            status, headers, body = self._fetch(url, data)
            self.visits.append((_without_query(url), status))
            self.last_status, self.last_headers, self.last_body = status, headers, body
            location = headers.get("Location")
            if status in _REDIRECTS and location:
                url, data = urljoin(url, location), None
                continue
            form = self._consent_form(status, headers, body) if not submitted else None
            if form is None:
                return
            url, data = urljoin(url, form[0]), form[1]
            submitted = True
        raise RuntimeError(f"more than {self.max_hops} redirects")

    def _consent_form(
        self, status: int, headers: Message, body: str
    ) -> Optional[tuple[str, bytes]]:
        """(action, encoded form) to submit, or None to stop here."""
        if self.approve is None or status != 200:
            return None
        if not headers.get("Content-Type", "").startswith("text/html"):
            return None
        parser = _FormParser()
        parser.feed(body)
        wanted = "approve" if self.approve else "deny"
        button = next((b for b in parser.buttons if b[1] == wanted), None)
        if parser.action is None or parser.method != "post" or button is None:
            return None
        fields = [
            (name, self.user if name == "user" and self.user is not None else value)
            for name, value in parser.fields
        ]
        return parser.action, urlencode([*fields, button]).encode("ascii")

    def _fetch(self, url: str, data: Optional[bytes]) -> tuple[int, Message, str]:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"refusing to open a non-HTTP URL: {_without_query(url)}")
        request = Request(url, data=data, method="POST" if data is not None else "GET")  # noqa: S310 (scheme checked above)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers, self._read(response)
        except HTTPError as exc:  # 3xx (not followed), 4xx and 5xx all land here
            with exc:
                return exc.code, exc.headers, self._read(exc)

    @staticmethod
    def _read(response: _Readable) -> str:
        return response.read(_MAX_BODY).decode("utf-8", "replace")
