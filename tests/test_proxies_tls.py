"""Proxies and private CAs, for real (issue #19, finding 8).

The provider here serves real TLS with a certificate from a private CA (``trustme``), and a
real CONNECT proxy (``proxy.py``, run as its own process by the tests) stands between
fedbearer and it. Each test runs all five kinds of call fedbearer makes to a provider
(discovery, the pre-flight check, the code exchange, a refresh, a revocation) and checks
that every one of them went through the proxy and trusted the private CA, configured from
the environment or from a ``session=``; or that a failure names the CA bundle it used and
how to name another.
"""

from __future__ import annotations

import io
import os
import re
import socket
import ssl
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import requests.certs
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fedbearer import (
    ConfigurationError,
    DiscoveryError,
    FederationAuth,
    MemoryTokenCache,
    Token,
)
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .conftest import import_or_fail, wait_for

trustme = import_or_fail("trustme")
import_or_fail("proxy", "run `pip install -e '.[test]'` (proxy.py, package proxy-py)")

pytestmark = [pytest.mark.timeout(90), pytest.mark.fedbearer_real]

AN_HOUR_AGO = datetime.now(timezone.utc) - timedelta(hours=1)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def other_ca_file(tmp_path_factory) -> str:
    """A CA bundle that does not hold the provider's CA."""
    path = tmp_path_factory.mktemp("other") / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def clean_network_env(monkeypatch):
    for name in PROXY_VARIABLES + CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class Proxy:
    """proxy.py in its own process on 127.0.0.1, its access log kept for the test."""

    def __init__(self, directory: Path) -> None:
        self.log = directory / "proxy.log"
        port_file = directory / "proxy.port"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "proxy",
                    "--hostname",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--port-file",
                    str(port_file),
                    "--num-acceptors",
                    "1",
                    "--num-workers",
                    "1",
                    "--log-level",
                    "INFO",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ready = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30)
        if not ready:
            self.close()
            pytest.fail(f"proxy.py did not start: {self.log.read_text()[-2000:]}")
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def tunnels(self, to: str) -> int:
        """How many CONNECT tunnels to ``host:port`` the proxy has logged (at their end)."""
        pattern = re.compile(r" - CONNECT " + re.escape(to) + r" - ")
        return sum(1 for line in self.log.read_text().splitlines() if pattern.search(line))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    started = Proxy(tmp_path_factory.mktemp("proxy"))
    yield started
    started.close()


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def server_context(ca, client_ca: Any = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    return context


def browser_for(ca) -> ProgrammaticBrowser:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return ProgrammaticBrowser(ssl_context=context)


@pytest.fixture
def provider(make_provider, ca) -> LocalFederation:
    return make_provider(layout="keycloak", ssl_context=server_context(ca))


class FollowingWriter(io.StringIO):
    """The writer of a login run as a person runs it (no opener, so the pre-flight check
    runs): the authorization URL it shows is handed to a programmatic browser."""

    def __init__(self, browser: ProgrammaticBrowser) -> None:
        super().__init__()
        self.browser = browser

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("    https://") and "?" in line:
                self.browser(line.strip())
        return super().write(text)


def every_kind_of_call(provider: LocalFederation, ca, **options: Any) -> None:
    """Log in as a person (discovery, pre-flight, code exchange), refresh, log out
    (revocation), all with ``options``; check that the provider saw each call."""
    cache = MemoryTokenCache()
    browser = browser_for(ca)

    def auth() -> FederationAuth:
        return FederationAuth.from_issuer(
            provider.issuer,
            provider.client_id,
            cache=cache,
            writer=FollowingWriter(browser),
            no_browser_open=True,
            timeout=30,
            **options,
        )

    first = auth()
    token = first.get_token()
    assert browser.join(10) and browser.last_status == 200
    assert provider.discovery_requests == 1 and provider.code_exchanges == 1
    assert provider.authorize_requests == 2  # the pre-flight check, then the browser
    key = first.bearer.name
    cache.put(key, Token(token.token, AN_HOUR_AGO, refresh_token=token.refresh_token))
    second = auth()
    assert second.get_token().token != token.token and provider.refreshes == 1
    result = second.logout()
    assert result.revoked == ("refresh_token", "access_token")
    assert provider.revocation_requests == 2


def calls_made(provider: LocalFederation) -> int:
    """Connections fedbearer opened to the provider: one per call (the browser's are not
    counted: it never uses a proxy)."""
    return (
        provider.discovery_requests
        + 1  # the pre-flight check
        + provider.code_exchanges
        + provider.refreshes
        + provider.revocation_requests
    )


def host_port(provider: LocalFederation) -> str:
    return provider.origin.split("://", 1)[1]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_every_call_honours_the_environments_proxy_and_ca_bundle(
    provider, ca, ca_file, proxy, monkeypatch, variable
):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv(variable, ca_file)
    before = proxy.tunnels(host_port(provider))
    every_kind_of_call(provider, ca)
    assert wait_for(lambda: proxy.tunnels(host_port(provider)) - before == calls_made(provider))


def test_no_proxy_sends_every_call_directly(provider, ca, ca_file, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", dead_url())  # a proxy that is not there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    every_kind_of_call(provider, ca)


def test_a_sessions_verify_and_proxies_win_over_the_environment(
    provider, ca, ca_file, other_ca_file, proxy, monkeypatch
):
    """requests itself lets REQUESTS_CA_BUNDLE and HTTPS_PROXY override a session's own
    settings; fedbearer does not."""
    monkeypatch.setenv("HTTPS_PROXY", dead_url())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other_ca_file)
    session = requests.Session()
    session.verify = ca_file
    session.proxies = {"https": proxy.url}
    before = proxy.tunnels(host_port(provider))
    every_kind_of_call(provider, ca, session=session)
    assert wait_for(lambda: proxy.tunnels(host_port(provider)) - before == calls_made(provider))


def test_a_sessions_auth_hooks_headers_and_cookies_never_reach_the_provider(provider, ca, ca_file):
    used: list[str] = []

    def auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
        used.append("auth")
        return request

    def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
        used.append("hook")
        return response

    session = requests.Session()
    session.verify = ca_file
    session.auth = auth
    session.hooks["response"].append(hook)
    session.headers["Authorization"] = "Bearer the-apis-own-key"
    every_kind_of_call(provider, ca, session=session)
    assert used == []
    assert len(session.cookies) == 0


def test_a_sessions_client_certificate_is_presented_on_every_call(
    make_provider, ca, ca_file, tmp_path
):
    client_ca = trustme.CA()
    provider = make_provider(layout="keycloak", ssl_context=server_context(ca, client_ca))
    cert = client_ca.issue_cert("fedbearer-client@example.com")
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    session = requests.Session()
    session.verify = ca_file
    session.cert = (str(cert_file), str(key_file))
    # The browser must present one too: it is a test double, not what is tested.
    browser_context = ssl.create_default_context()
    ca.configure_trust(browser_context)
    cert.configure_cert(browser_context)
    cache = MemoryTokenCache()
    auth = FederationAuth.from_issuer(
        provider.issuer,
        provider.client_id,
        cache=cache,
        writer=FollowingWriter(ProgrammaticBrowser(ssl_context=browser_context)),
        no_browser_open=True,
        timeout=30,
        session=session,
    )
    token = auth.get_token()
    cache.put(auth.bearer.name, Token(token.token, AN_HOUR_AGO, refresh_token=token.refresh_token))
    auth = FederationAuth.from_issuer(
        provider.issuer, provider.client_id, cache=cache, timeout=30, session=session
    )
    auth.get_token()
    assert auth.logout().revoked == ("refresh_token", "access_token")
    assert provider.code_exchanges == provider.refreshes == 1


def test_a_sessions_adapter_retries_are_used(provider, ca, ca_file):
    """The session's ``HTTPAdapter(max_retries=...)`` retries fedbearer's calls too."""
    session = requests.Session()
    session.verify = ca_file
    retry = Retry(total=2, status_forcelist=[500], allowed_methods=None, backoff_factor=0)
    session.mount("https://", HTTPAdapter(max_retries=retry))
    provider.fail_next("server_error")  # the code exchange's first answer: HTTP 500
    cache = MemoryTokenCache()
    auth = FederationAuth.from_issuer(
        provider.issuer,
        provider.client_id,
        cache=cache,
        opener=browser_for(ca),
        writer=io.StringIO(),
        timeout=30,
        session=session,
    )
    assert provider.is_valid(auth.get_token().token)
    assert provider.token_requests == 2  # the 500, then the retry that got the token


def failing_login(provider: LocalFederation, **options: Any) -> str:
    auth = FederationAuth.from_issuer(
        provider.issuer,
        provider.client_id,
        cache=None,
        opener=ProgrammaticBrowser(),
        writer=io.StringIO(),
        timeout=30,
        **options,
    )
    with pytest.raises(DiscoveryError) as info:
        auth.get_token()
    return str(info.value)


def test_an_untrusted_certificate_names_the_default_bundle_and_what_to_set(provider):
    message = failing_login(provider)
    assert "not trusted" in message
    assert requests.certs.where() in message
    for fix in ("verify=", "session=", "REQUESTS_CA_BUNDLE"):
        assert fix in message


def test_an_untrusted_certificate_names_the_bundle_from_the_environment(
    provider, other_ca_file, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", other_ca_file)
    message = failing_login(provider)
    assert other_ca_file in message and "$SSL_CERT_FILE" in message


def test_an_untrusted_certificate_names_the_sessions_bundle(provider, other_ca_file):
    session = requests.Session()
    session.verify = other_ca_file
    message = failing_login(provider, session=session)
    assert other_ca_file in message and "session.verify" in message


def test_the_preflight_check_names_the_bundle_when_tls_fails(make_provider, ca):
    fed = make_provider(federation_id="fed", ssl_context=server_context(ca))
    out = io.StringIO()
    auth = FederationAuth(
        fed.client_id, fed.endpoint, "fed", cache=None, writer=out, no_browser_open=True
    )
    with pytest.raises(ConfigurationError) as info:
        auth.get_token()
    message = str(info.value)
    assert requests.certs.where() in message and "REQUESTS_CA_BUNDLE" in message
    # or the endpoint is not the one meant (named as a Python caller writes it)
    assert "check federation_endpoint=" in message
    assert "authorize?" not in out.getvalue()  # failed before anyone was asked to log in


def test_a_ca_bundle_that_does_not_exist_names_where_it_was_set(provider, tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    auth = FederationAuth.from_issuer(
        provider.issuer, provider.client_id, cache=None, opener=ProgrammaticBrowser()
    )
    with pytest.raises(ConfigurationError, match=re.escape(f"{missing} ($REQUESTS_CA_BUNDLE)")):
        auth.get_token()


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_ca_bundle_that_is_a_fifo_is_refused_not_waited_on(provider, tmp_path, monkeypatch):
    """OpenSSL opens the bundle blocking: a FIFO there hung the call for ever."""
    fifo = str(tmp_path / "bundle.pem")
    os.mkfifo(fifo)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fifo)
    auth = FederationAuth.from_issuer(
        provider.issuer, provider.client_id, cache=None, opener=ProgrammaticBrowser()
    )
    with pytest.raises(ConfigurationError, match=re.escape(f"{fifo} ($REQUESTS_CA_BUNDLE)")):
        auth.get_token()


def test_verify_and_session_together_are_refused():
    with pytest.raises(ConfigurationError, match=re.escape("session.verify")):
        FederationAuth("c", "https://fed.example", "f", session=requests.Session(), verify=False)


def test_session_must_be_a_requests_session():
    with pytest.raises(ConfigurationError, match=re.escape("requests.Session")):
        FederationAuth("c", "https://fed.example", "f", session=object())
