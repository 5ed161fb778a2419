"""A provider's discovery document: where its endpoints are, checked where it enters.

OpenID Connect Discovery 1.0 §4 puts the document at ``<issuer>/.well-known/openid-configuration``;
RFC 8414 §3, for plain OAuth 2.0 servers, at ``/.well-known/oauth-authorization-server``
inserted before the issuer's path. :func:`parse_discovery` turns the answer into a
:class:`~fedbearer._protocol.Federation` and does no I/O; the request itself goes through
the same dedicated session as the token requests (:func:`fedbearer._login.endpoints`), and
:func:`remembered` keeps each document for the rest of the process, so one identity reads it
once however many logins and refreshes follow.

Only what a login needs is read; fields a login does not use (``jwks_uri``,
``userinfo_endpoint``, ...) are not required, so plain OAuth servers work too.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any, Callable, Optional
from urllib.parse import urlsplit, urlunsplit

from ._exceptions import ConfigurationError, DiscoveryError, setting
from ._protocol import Federation, is_loopback_host, provider_federation

OPENID_CONFIGURATION = "/.well-known/openid-configuration"
OAUTH_AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"


def discovery_urls(issuer: str) -> tuple[str, str]:
    """Where the document of ``issuer`` may be, in the order they are tried.

    First OpenID Connect Discovery's (§4.1: a terminating ``/`` of the issuer is removed
    before the suffix is appended), then RFC 8414's (§3.1: the well-known segment goes
    between the host and the issuer's path).
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oauth = urlunsplit((parts.scheme, parts.netloc, OAUTH_AUTHORIZATION_SERVER + path, "", ""))
    return issuer.rstrip("/") + OPENID_CONFIGURATION, oauth


def parse_discovery(
    status: int,
    body: bytes,
    *,
    issuer: str,
    url: str,
    allow_insecure_http: bool = False,
) -> Federation:
    """The endpoints a discovery document names, after every check a login relies on.

    ``url`` is where the document was read (for messages). The answer must be 200 with a
    JSON object whose ``issuer`` is exactly ``issuer`` (OpenID Connect Discovery §4.3,
    RFC 8414 §3.3: otherwise a document could send the login to another server). The
    ``authorization_endpoint`` and ``token_endpoint`` are required, ``revocation_endpoint``
    optional; each must be ``https://`` unless on this machine or ``allow_insecure_http``.
    When ``code_challenge_methods_supported`` is present it must list ``S256``
    (RFC 7636 §4.2; fedbearer never falls back to ``plain``), and when
    ``response_types_supported`` is present it must list ``code``.
    ``authorization_response_iss_parameter_supported: true`` makes a callback without
    ``iss`` a failure (RFC 9207 §2.4). Anything else is a :class:`~fedbearer.DiscoveryError`
    naming the issuer and the rule; no field value other than URLs is quoted.
    """

    def fail(reason: str) -> DiscoveryError:
        return DiscoveryError.naming(f"the discovery document of {issuer} ({url}) {reason}")

    check = f"check {setting('issuer')}"
    if status == 404:
        raise DiscoveryError.naming(
            f"{issuer} has no discovery document (HTTP 404 at "
            f"{' and '.join(discovery_urls(issuer))}); {check} (the provider's issuer "
            f"identifier, as its documentation gives it){setting('without_document')}"
        )
    if status != 200:
        hint = "the provider is having trouble, try again later" if status >= 500 else check
        raise fail(f"could not be read (HTTP {status}); {hint}")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail(f"is not JSON; {check}") from None
    if not isinstance(document, dict):
        raise fail(f"is not a JSON object; {check}")
    named = document.get("issuer")
    if not isinstance(named, str):
        raise fail("has no issuer")
    if named != issuer:
        raise fail(f"names the issuer {named[:200]!r}, not {issuer!r}; " + _mismatch(issuer, named))
    methods = _string_list(document, "code_challenge_methods_supported", fail)
    if methods is not None and "S256" not in methods:
        raise fail(
            "does not list S256 in code_challenge_methods_supported: the provider would not "
            "check the PKCE challenge fedbearer sends, and fedbearer never falls back to plain "
            "(RFC 7636 §4.2); enable S256 PKCE for this client at the provider"
        )
    response_types = _string_list(document, "response_types_supported", fail)
    if response_types is not None and "code" not in response_types:
        raise fail("does not list the authorization code flow (code) in response_types_supported")
    iss_supported = document.get("authorization_response_iss_parameter_supported", False)
    if not isinstance(iss_supported, bool):
        raise fail("has an authorization_response_iss_parameter_supported that is not a boolean")
    for name in ("authorization_endpoint", "token_endpoint"):
        if name not in document:
            raise fail(f"has no {name}")
    supported = _string_list(document, "scopes_supported", fail)
    try:
        federation = provider_federation(
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            revocation_endpoint=document.get("revocation_endpoint"),
            issuer=issuer,
            iss_required=iss_supported,
            allow_insecure_http=allow_insecure_http,
        )
    except ConfigurationError as exc:
        raise fail(f"is unusable: {exc}") from None
    if supported is None:
        return federation
    return dataclasses.replace(federation, scopes_supported=frozenset(supported))


def _mismatch(issuer: str, named: str) -> str:
    """What to do about a document naming another issuer: a spelling of the same server
    (a trailing ``/``, ``localhost`` for ``127.0.0.1``, a letter case) is fixed by passing
    the issuer as the provider writes it; another server's document is never used."""
    exactly = f"pass {setting('issuer')} exactly as the provider writes it"
    if named.rstrip("/") == issuer.rstrip("/"):
        return f"{exactly} (the trailing '/' counts)"
    ours, theirs = urlsplit(issuer), urlsplit(named)
    try:
        same_place = (ours.scheme, ours.port, ours.path.rstrip("/")) == (
            theirs.scheme,
            theirs.port,
            theirs.path.rstrip("/"),
        )
    except ValueError:  # a port that is not a number
        same_place = False
    ours_host, theirs_host = ours.hostname or "", theirs.hostname or ""
    if same_place and (
        ours_host == theirs_host  # only the letter case of the host differs
        or (is_loopback_host(ours_host) and is_loopback_host(theirs_host))
    ):
        return (
            f"only the spelling of the host differs ({ours.hostname} here, {theirs.hostname} "
            f"in the document): {exactly}"
        )
    return "the document belongs to another server, so it is not used"


def _string_list(
    document: dict[str, Any], name: str, fail: Callable[[str], DiscoveryError]
) -> Optional[list[str]]:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail(f"has a {name} that is not a list of strings")
    return value


# ------------------------------------------------------------------ once per process

#: What a document is remembered under: the issuer, then what else decided how it was
#: read and checked (``allow_insecure_http``, TLS ``verify``), so that a document accepted
#: under looser settings never serves an identity with stricter ones.
DocumentKey = tuple[str, bool, object]

_documents: dict[DocumentKey, Federation] = {}
_key_locks: dict[DocumentKey, threading.Lock] = {}
_lock = threading.Lock()


def remembered(key: DocumentKey, fetch: Callable[[], Federation]) -> Federation:
    """The endpoints remembered under ``key``, else ``fetch()``'s, remembered from now on.

    Single-flight per key: threads that need the same document wait for one fetch. A
    failure is not remembered; the next login tries again.
    """
    with _lock:
        known = _documents.get(key)
        if known is not None:
            return known
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            known = _documents.get(key)
        if known is not None:
            return known
        federation = fetch()
        with _lock:
            _documents[key] = federation
        return federation


def forget(issuer: str) -> None:
    """Forget what was remembered for ``issuer`` (a new server now answers there)."""
    with _lock:
        for key in [key for key in _documents if key[0] == issuer]:
            del _documents[key]
