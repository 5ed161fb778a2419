"""A user script for a browser that cannot reach the login's callback (issue 7's paste path).

Over SSH the browser runs on the user's own machine: after the login, the provider sends it
to ``http://127.0.0.1:<port>/?code=...``, nothing listens there on *that* machine, and the
page fails to load, with the callback URL in the address bar. The user copies that address
into the terminal. :func:`login_and_approve_unreachable` plays that user in the driver's
real Chromium while fedbearer's loopback server *is* listening on this machine: Chromium
itself refuses the request.

Why not ``page.route``: Playwright calls a route handler only for the first URL of a
redirect chain ("The handler will only be called for the first url if the response is a
redirect"), and the callback is reached through the provider's 303s. So the script opens a
CDP session on the page and enables the ``Fetch`` domain for the callback's origin only;
DevTools pauses redirect targets too, and each paused callback request is failed with
``ConnectionRefused`` (Chromium then shows "127.0.0.1 refused to connect"). Nothing of the
login reaches fedbearer's server. What the address bar shows is read back from the page's
navigation history (``Page.getNavigationHistory``), i.e. what a user would copy.

::

    capture = login_and_approve_unreachable("alice")
    run = driver.open(url, capture.script)
    page = run.wait(60).raise_for_error()
    capture.address      # "http://127.0.0.1:<port>/?code=...&state=...&iss=..."
    capture.refused      # every callback request Chromium was made to fail (one)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .chromium import BrowserScriptError, Script, ScriptContext, origin_of, strip_query


def address_bar(page: Any) -> str:
    """The URL of the page's current history entry: what the address bar shows (for an
    error page, the URL that failed, where ``page.url`` says ``chrome-error://...``)."""
    session = page.context.new_cdp_session(page)
    try:
        history = session.send("Page.getNavigationHistory")
    finally:
        session.detach()
    return str(history["entries"][history["currentIndex"]]["url"])


@dataclass
class CallbackCapture:
    """What :func:`login_and_approve_unreachable` saw; filled in by the driver thread."""

    script: Script = field(init=False)
    #: Callback requests (full URLs) that Chromium failed with ``ConnectionRefused``.
    refused: list[str] = field(default_factory=list)
    #: The address bar once the error page is shown: the URL the user copies.
    address: Optional[str] = None
    #: Requests of the callback's origin that were let through (must stay empty).
    passed: list[str] = field(default_factory=list)


def login_and_approve_unreachable(
    username: str = "interop-user",
    password: str = "any",  # noqa: S107 - devInteractions accepts any password
) -> CallbackCapture:
    """Sign in and consent on oidc-provider's devInteractions pages; the redirect to the
    login's ``redirect_uri`` (taken from the start URL) then fails in Chromium as if nothing
    listened there. The script ends on Chromium's error page; see :class:`CallbackCapture`."""
    capture = CallbackCapture()

    def run(ctx: ScriptContext) -> None:
        page = ctx.page
        callback_origin = origin_of(ctx.query["redirect_uri"])
        cdp = page.context.new_cdp_session(page)

        def paused(event: dict[str, Any]) -> None:
            url = event["request"]["url"]
            if origin_of(url) == callback_origin:
                capture.refused.append(url)
                cdp.send(
                    "Fetch.failRequest",
                    {"requestId": event["requestId"], "errorReason": "ConnectionRefused"},
                )
            else:  # not expected with the pattern below; never hold a request
                capture.passed.append(url)
                cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})

        cdp.on("Fetch.requestPaused", paused)
        cdp.send(
            "Fetch.enable",
            {"patterns": [{"urlPattern": callback_origin + "/*", "requestStage": "Request"}]},
        )

        deadline = time.monotonic() + ctx.timeout
        consented = False
        while not capture.refused:
            if time.monotonic() > deadline:
                raise BrowserScriptError(
                    f"no request for {callback_origin} within {ctx.timeout}s "
                    f"(on {strip_query(page.url)})"
                )
            login = page.locator("form input[name=login]")
            consent = page.locator(
                "form:has(input[name=prompt][value=consent]) button[type=submit]"
            )
            if consented:
                page.wait_for_timeout(50)  # pumps Playwright's events (the CDP callback)
            elif ctx.on_provider and login.count():
                login.fill(username)
                page.locator("form input[name=password]").fill(password)
                ctx.submit_and_wait(page.locator("form button[type=submit]"))
            elif ctx.on_provider and consent.count():
                # The navigation this starts ends in a refused connection: no load to wait
                # for here; the loop polls until the callback request was failed.
                consent.click()
                consented = True
            else:
                text = page.evaluate("() => document.body ? document.body.innerText : ''")
                raise BrowserScriptError(f"unexpected page {strip_query(page.url)}: {text[:300]!r}")
        # Chromium commits its error page (in a process of its own) for the refused URL.
        page.wait_for_url(lambda url: url.startswith("chrome-error:"), wait_until="load")
        capture.address = address_bar(page)

    capture.script = Script(f"login_and_approve_unreachable({username!r})", run)
    return capture
