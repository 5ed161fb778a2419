"""No token, code, verifier or state anywhere it could be read by someone else.

One run goes through everything that touches a secret: a login, a 401 renewal, a refresh,
cache writes, and each error path, with every logger at DEBUG. Then every secret seen is
looked for in every log record, exception (text, repr, chain, traceback), repr, warning and
page. The URL shown to the user carries the state by design: that is the only place a
secret may appear, and the test checks it does, to prove the search finds what it looks for.
"""

from __future__ import annotations

import io
import logging
import threading
import traceback
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from fedbearer import (
    Bearer,
    FedbearerError,
    FederationAuth,
    FileTokenCache,
    InvalidGrantError,
    Token,
    _clock,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .conftest import login_threads

LOGGERS = ("", "fedbearer", "urllib3", "requests", "oauthlib", "requests_oauthlib")
TOKEN_FAULTS = (
    "invalid_grant",
    "invalid_client",
    "server_error",
    "non_json",
    "json_array",
    "missing_access_token",
    "wrong_types",
    "connection_reset",
)


class Browsers:
    """An opener that sends a fresh ProgrammaticBrowser to each login, and keeps them."""

    def __init__(self) -> None:
        self.used: list[ProgrammaticBrowser] = []

    def __call__(self, url: str) -> bool:
        browser = ProgrammaticBrowser()
        self.used.append(browser)
        return browser(url)

    def pages(self) -> list[str]:
        for browser in self.used:
            assert browser.join(10)
        return [b.last_body or "" for b in self.used]


def exception_texts(exc: BaseException) -> str:
    """str, repr, the whole chain and the formatted traceback of ``exc``."""
    parts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(getattr(seen, "args", ()))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def record_texts(records: Iterable[logging.LogRecord]) -> str:
    formatter = logging.Formatter()
    parts = []
    for r in records:
        parts += [r.name, r.getMessage(), repr(r.args)]
        if r.exc_info:
            parts.append(formatter.formatException(r.exc_info))
        if r.stack_info:
            parts.append(r.stack_info)
    return "\n".join(parts)


def test_no_secret_in_logs_errors_reprs_warnings_or_pages(
    federation, monkeypatch, caplog, tmp_path, secrets
):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    browsers = Browsers()
    out = io.StringIO()
    errors: list[BaseException] = []
    reprs: list[str] = []

    def bearer(fed: LocalFederation = federation, **kwargs) -> Bearer:
        kwargs.setdefault("timeout", 10)
        return Bearer(
            "default",
            fed.client_id,
            fed.endpoint,
            fed.federation_id or "",
            opener=browsers,
            writer=out,
            **kwargs,
        )

    def expect_error(run) -> None:
        with pytest.raises(FedbearerError) as info:
            run()
        errors.append(info.value)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = FileTokenCache(tmp_path / "nebius" / "credentials.yaml")
        auth = FederationAuth.from_bearer(bearer(), cache=cache)
        session = requests.Session()
        session.trust_env = False
        session.auth = auth

        # A login, then a 401 (the federation forgot every token: the refresh fails, so a
        # second login), then a refresh as the token nears its expiry. Each writes the cache.
        assert session.get(federation.whoami_url).status_code == 200
        first = auth.get_token()
        federation.revoke_all()
        assert session.get(federation.whoami_url).status_code == 200
        second = auth.get_token()
        real_now = _clock.now
        monkeypatch.setattr(_clock, "now", lambda: real_now() + 3500)
        assert session.get(federation.whoami_url).status_code == 200
        third = auth.get_token()
        monkeypatch.setattr(_clock, "now", real_now)
        assert len({first.token, second.token, third.token}) == 3
        assert federation.refreshes >= 2 and federation.logins == 2
        cached = cache.get(auth.bearer.name)
        assert cached is not None and cached.token == third.token
        reprs += [repr(auth), repr(auth.bearer), repr(cache), repr(session.auth)]
        reprs += [repr(t) for t in (first, second, third)] + [str(third), repr(cache.entries())]

        # Every way the token endpoint can fail a login, a denial, a timeout, a refresh
        # refused, and a failed login surfacing from a request.
        for fault in TOKEN_FAULTS:
            federation.fail_next(fault)
            expect_error(bearer().receiver().fetch)
        federation.fail_next("deny")
        expect_error(bearer().receiver().fetch)
        nobody = Bearer(
            "default",
            federation.client_id,
            federation.endpoint,
            federation.federation_id or "",
            opener=lambda url: True,  # the browser never comes back
            writer=out,
            timeout=0.3,
        )
        expect_error(nobody.receiver().fetch)
        stale = Token("refresh-me", None, refresh_token="stale-refresh-token-" + "r" * 30)
        secrets.token(stale)
        expect_error(lambda: auth.bearer.refresh(stale))
        federation.revoke_all()
        federation.fail_next("invalid_grant", count=2)  # refresh refused, then the login
        with pytest.raises(InvalidGrantError) as failed_request:
            session.get(federation.whoami_url)
        errors.append(failed_request.value)
        reprs.append(repr(auth))

    assert login_threads() == []
    found = secrets.all()
    assert len(secrets.states) >= 12 and len(found) >= 40
    records = record_texts(caplog.records)
    assert "fedbearer.login" in records and "urllib3" in records  # DEBUG was captured
    assert "state=REDACTED" in records
    shown = out.getvalue()
    pages = browsers.pages()
    assert any("Login complete" in page for page in pages)
    assert any("Login failed" in page for page in pages)
    everywhere = {
        "log records": records,
        "log output": caplog.text,
        "exceptions": "\n".join(exception_texts(e) for e in errors),
        "reprs": "\n".join(reprs),
        "warnings": "\n".join(f"{w.category.__name__}: {w.message}" for w in caught),
        "pages": "\n".join(pages),
    }
    for secret in found:
        for where, text in everywhere.items():
            assert secret not in text, f"a secret appeared in the {where}"
        if secret not in secrets.states:
            assert secret not in shown, "a secret other than the state was shown to the user"
    # The user is shown the authorization URL, state included: the search does find it.
    assert secrets.states[0] in shown


def test_stray_requests_with_guesses_get_pages_that_quote_nothing(federation):
    """A page must not reflect the request: a guessed code or state comes back nowhere."""
    seen: dict[str, list[bytes]] = {"pages": []}
    guesses = ["guessed-state-" + "g" * 30, "guessed-code-" + "c" * 30, "<script>x</script>"]
    done = threading.Event()

    def opener(url: str) -> bool:
        def run():
            redirect = dict(parse_qsl(urlsplit(url).query))["redirect_uri"]
            no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            for query in (
                {"state": guesses[0], "code": guesses[1]},
                {"state": guesses[0], "error": guesses[2]},
                {"code": guesses[1]},
            ):
                for path in ("/", "/" + guesses[2]):
                    try:
                        with no_proxy.open(f"{redirect}{path}?{urlencode(query)}", timeout=5) as r:
                            seen["pages"].append(r.read())
                    except urllib.error.HTTPError as err:
                        seen["pages"].append(err.read())
            done.set()
            ProgrammaticBrowser()(url)

        threading.Thread(target=run, daemon=True).start()
        return True

    Bearer(
        "default",
        federation.client_id,
        federation.endpoint,
        federation.federation_id or "",
        opener=opener,
        writer=io.StringIO(),
        timeout=10,
    ).receiver().fetch()
    assert done.wait(5) and len(seen["pages"]) == 6
    for page in seen["pages"]:
        for guess in guesses:
            assert guess.encode() not in page
