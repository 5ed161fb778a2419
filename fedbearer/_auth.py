"""``FederationAuth``: the ``requests`` adapter.

``session.auth = FederationAuth(...)`` attaches ``Authorization: Bearer <token>`` to each
request, logging in lazily on first use and again when the token nears expiry or the API
answers 401. The token, its cache, renewal and single flight belong to
:class:`~fedbearer._credentials.Credentials`; this module only puts the header on requests
to the right origins and turns a 401 into one renewal and one resend.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body

from . import _clock
from ._challenge import bearer_error
from ._credentials import DEFAULT_CACHE, FederationAuthBase
from ._origins import origin_of, origin_prefixes

__all__ = ["DEFAULT_CACHE", "MAX_RESENDS", "REFRESH_STATUSES", "FederationAuth"]

log = logging.getLogger("fedbearer.auth")

#: Statuses that make the adapter renew the token and resend the request once (RFC 6750 §3.1).
REFRESH_STATUSES = (401,)
#: How many times one request is resent after a renewal. One: a second 401 is an answer.
MAX_RESENDS = 1


class FederationAuth(FederationAuthBase, AuthBase):
    """Bearer-token auth for ``requests`` from an interactive federation login.

    ``session.auth = FederationAuth(client_id, federation_endpoint, federation_id)``. Nothing
    happens at construction; the first request that needs a token takes it from the token
    cache or runs the interactive login. Later requests reuse it until it is within
    ``refresh_margin`` of expiry (capped at half its lifetime; 0 means no margin), or until
    the API answers 401: then it is renewed (refresh token first, else one interactive
    login) and the request is resent once.

    ``hosts`` limits which origins receive the token (``"api.example.com"``,
    ``"https://api.example.com:8443"``; ``"http://..."`` only when named so); other requests
    pass untouched. Without it the token goes to any ``https://`` origin the session calls
    and to plain ``http://`` only on this machine (loopback): a plain-HTTP request elsewhere
    is sent without it, with one warning per origin. A 401 only counts when it comes from
    the origin the token was sent to, and ``requests`` drops the header on cross-host
    redirects.

    ``cache`` is where tokens persist between processes: by default the Nebius CLI's
    ``~/.nebius/credentials.yaml``; pass ``None`` to keep the token in this object only, or
    a :class:`~fedbearer.TokenCache`. The other options are those of :class:`~fedbearer.Bearer`.

    A ready token in the environment replaces all of that: when ``$FEDBEARER_TOKEN`` is set
    (else ``$NEBIUS_IAM_TOKEN``, the Nebius SDK's variable) as the object is built, that
    token is sent as it is, with no cache read or write, no refresh and no login, and a 401
    for it is returned to the caller with one warning (:attr:`token_variable` names the
    variable). The ``hosts`` and plain-HTTP rules still apply. A malformed value is a
    :class:`~fedbearer.ConfigurationError` naming the variable. ``token_from_env=False``
    never looks at the environment.

    Picklable (the lock is recreated and the in-memory token is left out on purpose: it is
    a secret, and the cache has it); compares by identity.
    """

    # ------------------------------------------------------------------ the hot path

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        hosts = self.hosts
        url = r.url or ""
        if hosts is not None:
            # A prefix test first: most requests go to a configured host, and
            # str.startswith is several times cheaper than working out the origin.
            if not url.startswith(origin_prefixes(hosts)) and origin_of(url) not in hosts:
                return r
        elif not url.startswith("https://") and not self._plain_http_ok(origin_of(url)):
            return r
        token, header, renew_at = self.credentials.snapshot
        if _clock.now() >= renew_at:
            header = self.credentials.header_after(token)
        r.headers["Authorization"] = header
        resent = [0]  # per request: redirect hops share this hook, not the instance

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            if response.status_code in REFRESH_STATUSES:
                # Looked up at 401 time, not per request: nothing to bind on the hot path.
                return self._handle_401(response, header, resent, kwargs)
            return response

        r.hooks["response"].append(on_response)
        return r

    # ------------------------------------------------------------------ 401

    def _handle_401(
        self,
        response: requests.Response,
        sent_header: str,
        resent: list[int],
        send_kwargs: dict[str, Any],
    ) -> requests.Response:
        request = response.request
        if request.headers.get("Authorization") != sent_header:
            # Our token was not on this request: requests strips it on a redirect to
            # another host, so that host's 401 says nothing about our token.
            return response
        credentials = self.credentials
        if resent[0] >= MAX_RESENDS or credentials.distrusts(sent_header):
            return response
        reason = bearer_error(response.headers.get("WWW-Authenticate"))
        if reason is not None:
            log.debug("401 challenge names %s: not about our token, not renewing", reason)
            return response
        where = f"{request.method} {origin_of(request.url or '')}"
        new_header = credentials.refused(sent_header, where)
        if new_header is None:
            return response
        resent[0] += 1
        body: Any = request.body  # typed bytes | str, but requests passes files and generators
        if body is not None and not isinstance(body, (bytes, str)):
            try:
                # requests recorded the stream's position when it prepared the body.
                rewind_body(request)
            except UnrewindableBodyError:
                log.warning(
                    "got 401 for %s; the token was renewed but the request body is a "
                    "stream that cannot be rewound, so the request is not resent and the "
                    "401 is returned. Send bytes or a seekable file to have it resent",
                    where,
                )
                return response
        # As HTTPDigestAuth.handle_401: free the connection, copy the request, resend it
        # through the same adapter (no hooks, no redirects run again), keep the 401 in history.
        response.content  # noqa: B018 - read so the connection can be released
        response.close()
        retry = request.copy()
        extract_cookies_to_jar(retry._cookies, request, response.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = new_header
        connection = response.connection
        resent_response: requests.Response = connection.send(retry, **send_kwargs)
        resent_response.history.append(response)
        resent_response.request = retry
        if resent_response.status_code in REFRESH_STATUSES:
            credentials.refused_again(new_header, where)
        return resent_response
