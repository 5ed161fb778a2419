"""Run the independent OpenID provider (``op.mjs``: panva's oidc-provider) from Python.

::

    with IndependentProvider(at_ttl=5, refresh=True) as op:
        op.endpoint          # "http://127.0.0.1:40123" (the issuer; fedbearer's endpoint)
        op.client_id         # "fedbearer-interop"
        op.federation_id     # "interop-federation"
        op.authorize_log()   # [{"response_type": "code", "federation-id": ..., ...}, ...]
        op.userinfo_url      # "http://127.0.0.1:40123/me": 200 with a valid Bearer token

The provider process lives exactly as long as the object is started: ``stop()`` (or leaving
the ``with`` block) terminates it, waits, and kills it on timeout. It also exits on its own
when this Python process dies (its stdin closes).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

from . import NODE_MODULES, NPM_HINT

HERE = Path(__file__).resolve().parent
OP_SCRIPT = HERE / "op.mjs"

DEFAULT_CLIENT_ID = "fedbearer-interop"
DEFAULT_FEDERATION_ID = "interop-federation"


class ProviderError(RuntimeError):
    """The independent provider could not be started or queried."""


class IndependentProvider:
    """A running ``node op.mjs`` on 127.0.0.1 (context manager).

    :param at_ttl: access token lifetime in seconds (``expires_in`` in token responses).
    :param refresh: issue a refresh token with every code exchange (scope ``openid`` is
        enough) and accept ``grant_type=refresh_token``.
    :param federation_id: the only accepted ``federation-id``; a request without it or with
        another value is answered with an ``invalid_request`` error redirect. ``""`` turns
        the check off (any value or none).
    :param clock_tolerance: seconds of leeway on expiry checks (0: a token is rejected the
        second it expires; oidc-provider's own default is 15).
    :param port: fixed port, or 0 to let the OS choose.
    """

    def __init__(
        self,
        *,
        at_ttl: int = 3600,
        refresh: bool = True,
        client_id: str = DEFAULT_CLIENT_ID,
        federation_id: str = DEFAULT_FEDERATION_ID,
        clock_tolerance: int = 0,
        port: int = 0,
        startup_timeout: float = 60.0,  # under 1 s normally; room for a loaded machine
        node: Optional[str] = None,
    ) -> None:
        self.at_ttl = int(at_ttl)
        self.refresh = bool(refresh)
        self.client_id = client_id
        self.federation_id = federation_id
        self.clock_tolerance = int(clock_tolerance)
        self.requested_port = int(port)
        self.startup_timeout = startup_timeout
        self.node = node
        self.port: Optional[int] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._stderr_file: Optional[Any] = None
        self._last_stderr = ""
        # Loopback only: never let an ambient HTTP(S)_PROXY route these requests away.
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IndependentProvider:
        if self._proc is not None:
            raise ProviderError("provider already started")
        node = self.node or shutil.which("node")
        if node is None:
            raise ProviderError(
                f"`node` is not on PATH: install Node.js >= 20 and run `{NPM_HINT}`"
            )
        if not (NODE_MODULES / "oidc-provider" / "package.json").is_file():
            raise ProviderError(
                f"{NODE_MODULES} has no oidc-provider: run `{NPM_HINT}` (package-lock.json "
                "pins the exact version)"
            )
        env = dict(os.environ)
        env.update(
            OP_PORT=str(self.requested_port),
            OP_CLIENT_ID=self.client_id,
            OP_FEDERATION_ID=self.federation_id,
            OP_AT_TTL=str(self.at_ttl),
            OP_REFRESH="1" if self.refresh else "0",
            OP_CLOCK_TOLERANCE=str(self.clock_tolerance),
            OP_EXIT_ON_STDIN_EOF="1",
        )
        env.pop("AT_TTL", None)
        # Closed in stop(): it outlives this method by design.
        self._stderr_file = tempfile.TemporaryFile(prefix="fedbearer-op-stderr-")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [node, str(OP_SCRIPT)],
            cwd=str(HERE),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
        )
        try:
            info = self._read_port_line()
        except BaseException:
            self.stop()
            raise
        self.port = int(info["port"])
        if info.get("issuer") != self.endpoint:
            self.stop()
            raise ProviderError(f"unexpected issuer from op.mjs: {info!r}")
        return self

    def _read_port_line(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProviderError(
                        f"op.mjs printed no port within {self.startup_timeout}s; stderr:\n"
                        + self.stderr_text()
                    )
                if not sel.select(remaining):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    self._proc.wait(timeout=5)
                    raise ProviderError(
                        f"op.mjs exited with status {self._proc.returncode} before "
                        "listening; stderr:\n" + self.stderr_text()
                    )
                buf += chunk
        line = buf.split(b"\n", 1)[0]
        try:
            info = json.loads(line)
        except ValueError as exc:
            raise ProviderError(f"op.mjs printed a non-JSON first line: {line!r}") from exc
        if not isinstance(info, dict) or not isinstance(info.get("port"), int):
            raise ProviderError(f"op.mjs printed no port: {line!r}")
        return info

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        self._last_stderr = self.stderr_text()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def __enter__(self) -> IndependentProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stderr_text(self) -> str:
        """What the node process wrote to stderr (warnings, ``DEBUG=oidc-provider:*``)."""
        if self._stderr_file is None:
            return self._last_stderr
        self._stderr_file.seek(0)
        data: bytes = self._stderr_file.read()
        return data.decode("utf-8", "replace")

    # ------------------------------------------------------------------ URLs

    def _require_port(self) -> int:
        if self.port is None:
            raise ProviderError("provider not started")
        return self.port

    @property
    def endpoint(self) -> str:
        """The issuer URL, ``http://127.0.0.1:<port>``: what fedbearer calls the endpoint."""
        return f"http://127.0.0.1:{self._require_port()}"

    issuer = endpoint

    @property
    def authorize_url(self) -> str:
        return self.endpoint + "/oauth2/authorize"

    @property
    def token_url(self) -> str:
        return self.endpoint + "/oauth2/token"

    @property
    def userinfo_url(self) -> str:
        """The protected resource: 200 JSON ``{"sub": ...}`` with a valid Bearer token,
        401 with ``WWW-Authenticate: Bearer ... error="invalid_token"`` otherwise."""
        return self.endpoint + "/me"

    @property
    def revocation_url(self) -> str:
        return self.endpoint + "/token/revocation"

    # ------------------------------------------------------------------ test endpoints

    def _test_api(self, what: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.endpoint}/__test/{what}", method=method)
        with self._http.open(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def authorize_requests(self) -> list[dict[str, Any]]:
        """Every request to ``/oauth2/authorize`` so far, oldest first, each a dict with
        ``method``, ``query`` (decoded; a repeated parameter becomes a list), ``raw_query``
        (the exact query string), ``user_agent``, ``status`` and ``location`` (where the
        provider sent the browser: the interaction page, or the redirect URI with
        ``code``/``error``).

        fedbearer's pre-flight checks (:meth:`preflight_checks`) are left out: they are not
        logins, and tests count logins by the authorize requests that arrive.
        """
        return [entry for entry in self._authorize_entries() if not _is_check(entry)]

    def authorize_log(self) -> list[dict[str, Any]]:
        """The query parameters of :meth:`authorize_requests`, oldest first."""
        return [entry["query"] for entry in self.authorize_requests()]

    def preflight_checks(self) -> list[dict[str, Any]]:
        """The query parameters of fedbearer's pre-flight checks (sent before the browser
        opens, with the User-Agent ``fedbearer/<version> (pre-flight check)``)."""
        return [entry["query"] for entry in self._authorize_entries() if _is_check(entry)]

    def _authorize_entries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._test_api("authorize-log")
        return result

    def token_log(self) -> list[dict[str, Any]]:
        """Every POST to ``/oauth2/token``: ``form`` (the parsed body), ``content_type``,
        ``authorization`` (header or None) and the response ``status``."""
        result: list[dict[str, Any]] = self._test_api("token-log")
        return result

    def clear_logs(self) -> None:
        self._test_api("logs", method="DELETE")

    def __repr__(self) -> str:
        where = self.endpoint if self.port is not None else "not started"
        return (
            f"IndependentProvider({where}, client_id={self.client_id!r}, "
            f"federation_id={self.federation_id!r}, at_ttl={self.at_ttl}, "
            f"refresh={self.refresh})"
        )


def _is_check(entry: dict[str, Any]) -> bool:
    return "(pre-flight check)" in str(entry.get("user_agent") or "")
