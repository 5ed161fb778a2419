"""``WWW-Authenticate`` challenges, parsed rather than searched (RFC 9110 §11.6.1, RFC 6750 §3).

A pure function: :class:`~fedbearer.FederationAuth` decides whether a 401 is about its
token from the parsed Bearer challenge's ``error`` parameter, so a word that merely appears
in a description (``error_description="... insufficient_scope ..."``) decides nothing.
"""

from __future__ import annotations

import string
from typing import NamedTuple, Optional

# RFC 9110 §5.6.2 tchar; token68 (§11.2) adds "/" and trailing "=".
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_TOKEN68 = _TCHAR | frozenset("/=")
_SPACE = " \t"
#: A header longer than this is cut before parsing: no real challenge is near it.
MAX_CHALLENGE_LENGTH = 8192


class Challenge(NamedTuple):
    """One challenge: the scheme in lower case, its auth-params (names in lower case, the
    first of a repeated name kept) and its token68, if it has one instead."""

    scheme: str
    params: dict[str, str]
    token68: str = ""


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _run(text: str, pos: int, allowed: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in allowed:
        pos += 1
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting at ``text[pos] == '"'``, unescaped, and the index after it.

    An unterminated string runs to the end of the header.
    """
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\" and pos + 1 < len(text):
            pos += 1
            ch = text[pos]
        out.append(ch)
        pos += 1
    return "".join(out), pos


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (several headers joined by commas).

    ``challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`` and
    ``auth-param = token BWS "=" BWS ( token / quoted-string )``. A comma followed by
    ``name=`` continues the current challenge; followed by a bare token, it starts the next.
    Parsing stops quietly at anything that fits neither, keeping what came before.
    """
    text = header[:MAX_CHALLENGE_LENGTH]
    challenges: list[Challenge] = []
    current: Optional[Challenge] = None
    pos = 0
    while True:
        pos = _skip(text, pos, _SPACE + ",")
        end = _run(text, pos, _TCHAR)
        if end == pos:
            return challenges  # the end, or something no grammar rule starts with
        name = text[pos:end]
        after = _skip(text, end, _SPACE)
        if current is not None and after < len(text) and text[after] == "=":
            value_at = _skip(text, after + 1, _SPACE)
            if value_at < len(text) and text[value_at] == '"':
                value, pos = _quoted(text, value_at)
            elif value_at < len(text) and text[value_at] in _TCHAR:
                pos = _run(text, value_at, _TCHAR)
                value = text[value_at:pos]
            else:
                return challenges
            current.params.setdefault(name.lower(), value)
            continue
        current = Challenge(name.lower(), {})
        challenges.append(current)
        pos = after
        # A token68 (Negotiate, some Basic servers) stands alone after the scheme: a run of
        # token68 characters that does not continue as "name=value".
        end68 = _run(text, pos, _TOKEN68)
        name_end = _run(text, pos, _TCHAR)
        is_param = name_end > pos and _skip(text, name_end, _SPACE) < len(text)
        if is_param:
            eq = _skip(text, name_end, _SPACE)
            value_at = _skip(text, eq + 1, _SPACE)
            is_param = (
                text[eq] == "="
                and value_at < len(text)
                and (text[value_at] in _TCHAR or text[value_at] == '"')
            )
        if end68 > pos and not is_param:
            challenges[-1] = current = Challenge(current.scheme, {}, text[pos:end68])
            pos = end68


def bearer_error(header: Optional[str]) -> Optional[str]:
    """What a 401's challenge says about a Bearer token.

    ``None`` when the answer may be about our token: no header, or a Bearer challenge whose
    ``error`` is absent or anything but ``insufficient_scope`` (RFC 6750 §3.1). Otherwise a
    short reason not to renew: ``"insufficient_scope"``, or ``"other schemes"`` when the
    challenges name only other schemes (Basic, Negotiate): then the token was not the point.
    """
    if header is None:
        return None
    challenges = parse_challenges(header)
    bearer = [c for c in challenges if c.scheme == "bearer"]
    if not bearer:
        # An empty or unparsable header says nothing either way; a 401 is then ours.
        return "other schemes" if challenges else None
    if all(c.params.get("error") == "insufficient_scope" for c in bearer):
        return "insufficient_scope"
    return None
