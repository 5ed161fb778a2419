"""Which origins may receive the token: the ``hosts`` setting and the plain-HTTP rule.

An origin is ``scheme://host:port`` with the port always written out. Every transport
adapter turns its request URL into one and asks these functions; none of them does I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Optional

from ._exceptions import ConfigurationError
from ._protocol import is_loopback_host

DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL whose scheme and host are lower-case already.

    ``requests`` lower-cases the scheme and host of a prepared URL, so plain string work is
    enough here and far cheaper than a URL parser.
    """
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not netloc.endswith("]") and ":" in netloc:
        return f"{scheme}://{netloc}"
    return f"{scheme}://{netloc}:{DEFAULT_PORTS.get(scheme, '')}"


@functools.lru_cache(maxsize=32)
def origin_prefixes(origins: frozenset[str]) -> tuple[str, ...]:
    """URL prefixes that certainly belong to one of ``origins`` (``scheme://host[:port]/``).

    A URL that starts with one of them has that origin; one that does not may still have it
    (user info, an explicit default port) and goes through :func:`origin_of`.
    """
    prefixes = []
    for origin in origins:
        prefixes.append(origin + "/")
        scheme, _, netloc = origin.partition("://")
        default = f":{DEFAULT_PORTS.get(scheme)}"
        if netloc.endswith(default):
            prefixes.append(f"{scheme}://{netloc[: -len(default)]}/")
    return tuple(prefixes)


@functools.lru_cache(maxsize=64)
def is_loopback_http(origin: str) -> bool:
    """Whether ``scheme://host:port`` is plain HTTP to this machine (cached: a request to a
    loopback API asks this every time)."""
    scheme, _, netloc = origin.partition("://")
    return scheme == "http" and is_loopback_host(netloc.rpartition(":")[0])


def parse_hosts(hosts: Optional[Iterable[str]]) -> Optional[frozenset[str]]:
    """The ``hosts`` setting as a set of origins; ``None`` means any ``https://`` origin."""
    if hosts is None:
        return None
    if isinstance(hosts, str):
        hosts = [hosts]
    origins = set()
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError(f"hosts entries must be non-empty strings, not {host!r}")
        text = host.strip().lower()
        if "://" not in text:
            text = "https://" + text
        scheme, _, rest = text.partition("://")
        if scheme not in DEFAULT_PORTS or not rest or "/" in rest.rstrip("/"):
            raise ConfigurationError(
                f"hosts entry {host!r} must be 'host', 'host:port' or 'scheme://host[:port]'"
            )
        origins.add(origin_of(f"{scheme}://{rest.rstrip('/')}/"))
    if not origins:
        raise ConfigurationError("hosts is empty; pass None to send the token to any host")
    return frozenset(origins)
