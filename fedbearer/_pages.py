"""The small HTML pages the loopback server shows in the user's browser.

Each page answers three questions at a glance: what happened (the headline, with an icon
whose *shape* differs per outcome, so colour is never the only signal), what to do next
(a highlighted step), and which login it was (application, profile, federation).

The pages are self-contained and static apart from escaped text: no external resource, no
inline ``style`` attribute, no event handler. That lets :data:`HEADERS` carry a strict
Content-Security-Policy that allows exactly one stylesheet and one script, each by its
SHA-256 hash, and images only as ``data:`` URLs (the tab icon). No page ever contains the
authorization code, the state or a token.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Optional
from urllib.parse import quote

#: Seconds before the success page tries to close its tab. Browsers let a script close only
#: a tab that a script opened (or one with a single history entry), so the page says it
#: *tries*, and says so again if the tab is still open. Failure pages never close
#: themselves: the user needs time to read them.
CLOSE_AFTER = 5

_STILL_OPEN = "This tab could not close itself. You can close it now."

# The only script: close the tab, and if the browser refuses, correct the promise above.
_SCRIPT = (
    "setTimeout(function(){window.close();setTimeout(function(){"
    "var e=document.getElementById('closing');"
    f"if(e&&!window.closed){{e.textContent='{_STILL_OPEN}';}}"
    f"}},500);}},{CLOSE_AFTER * 1000});"
)

# Contrast (WCAG 2.1) on every background the text can sit on, in both colour schemes: body
# text ≥ 13:1, muted text ≥ 5.5:1; accents (borders, icon discs) ≥ 5:1 against the card and
# against their glyph.
_STYLE = """
:root { color-scheme: light dark; --bg: #f3f4f6; --card: #fff; --text: #1f2328;
  --muted: #59636e; --line: #d0d7de; --code-bg: #f6f8fa; --on-accent: #fff; }
.ok { --accent: #1a7f37; --tint: #eef7f0; }
.fail { --accent: #b42318; --tint: #fdf0ef; }
.notice { --accent: #8a5a00; --tint: #fbf5e9; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --card: #161b22; --text: #e6edf3; --muted: #9da7b3;
    --line: #30363d; --code-bg: #0d1117; --on-accent: #0d1117; }
  .ok { --accent: #3fb950; --tint: #12261a; }
  .fail { --accent: #ff7b72; --tint: #2d1517; }
  .notice { --accent: #d29922; --tint: #2a2112; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; min-height: 100vh; display: flow-root; background: var(--bg);
  color: var(--text);
  font: 1rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans",
  "DejaVu Sans", sans-serif; }
main { max-width: 38rem; margin: clamp(1rem, 10vh, 6rem) auto 2rem; padding: 2rem 2.25rem;
  background: var(--card); border: 1px solid var(--line); border-top: .375rem solid
  var(--accent); border-radius: .75rem; box-shadow: 0 1px 3px rgba(0,0,0,.08),
  0 8px 24px rgba(0,0,0,.06); }
header { display: flex; align-items: center; gap: .9rem; margin-bottom: 1rem; }
.icon { flex: none; width: 2.75rem; height: 2.75rem; color: var(--accent); }
.icon .glyph { stroke: var(--on-accent); }
.icon .dot { fill: var(--on-accent); }
h1 { margin: 0; font-size: 1.6rem; line-height: 1.25; }
h2 { margin: 0 0 .25rem; font-size: .8rem; letter-spacing: .06em; text-transform: uppercase;
  color: var(--muted); }
p { margin: 0 0 1rem; }
.lead { font-size: 1.075rem; }
.answer { margin: 0 0 1.25rem; }
.answer p { margin: 0; padding: .6rem .8rem; background: var(--code-bg);
  border: 1px solid var(--line); border-radius: .375rem; overflow-wrap: anywhere; }
code { font: .92em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono",
  monospace; font-weight: 600; }
.next { margin: 0 0 1.5rem; padding: .85rem 1rem; background: var(--tint);
  border-left: .25rem solid var(--accent); border-radius: .25rem; }
.next p { margin: 0; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .3rem 1.25rem;
  margin: 0 0 1.25rem; padding-top: 1rem; border-top: 1px solid var(--line); }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.foot { margin: 0; font-size: .875rem; color: var(--muted); }
main > :last-child { margin-bottom: 0; }
@media (max-width: 34rem) {
  main { margin: 0; min-height: 100vh; border-width: .375rem 0 0; border-radius: 0;
    padding: 1.5rem 1.25rem; box-shadow: none; }
  h1 { font-size: 1.4rem; }
  dl { grid-template-columns: minmax(0, 1fr); gap: 0; }
  dd + dt { margin-top: .5rem; }
}
"""


def _csp_hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


#: Headers sent with every page: no caching and no referrer (the callback URL carries the
#: code and state), no framing, no sniffing, and a CSP that allows nothing but this
#: module's own stylesheet and script (by hash) and ``data:`` images (the tab icon).
HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        f"default-src 'none'; script-src 'sha256-{_csp_hash(_SCRIPT)}'; "
        f"style-src 'sha256-{_csp_hash(_STYLE)}'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
)

# Glyphs drawn on the accent-coloured disc, in a 24×24 box: a tick, a cross, an exclamation
# mark. Their colours are attributes, so they also work in the tab icon, which has no
# stylesheet; on the page, the stylesheet recolours them for the dark scheme.
_GLYPHS = {
    "ok": '<path d="M7 12.4l3.4 3.4L17.2 9"/>',
    "fail": '<path d="M8.5 8.5l7 7m0-7l-7 7"/>',
    "notice": '<path d="M12 6.8v6.4"/>'
    '<circle class="dot" cx="12" cy="17" r="1.4" fill="#fff" stroke="none"/>',
}
# The tab icon's disc colours: the light scheme's accents.
_ICON_COLOURS = {"ok": "#1a7f37", "fail": "#b42318", "notice": "#8a5a00"}


def _icon(kind: str, disc: str) -> str:
    """The inside of a 24×24 ``<svg>``: a disc of colour ``disc`` and the kind's glyph."""
    return (
        f'<circle cx="12" cy="12" r="12" fill="{disc}"/>'
        '<g class="glyph" fill="none" stroke="#fff" stroke-width="2.4" '
        f'stroke-linecap="round" stroke-linejoin="round">{_GLYPHS[kind]}</g>'
    )


def _favicon(kind: str) -> str:
    """A ``data:`` URL of the tab icon, so the tab shows the outcome too. (The CSP allows
    images from ``data:`` only, so a browser does not fetch ``/favicon.ico`` either way.)"""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
        f"{_icon(kind, _ICON_COLOURS[kind])}</svg>"
    )
    return "data:image/svg+xml," + quote(svg, safe="/:=,")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>{title}</title>
<link rel="icon" href="{favicon}">
<style>{style}</style>
</head>
<body class="{kind}">
<main aria-labelledby="headline">
<header>
<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">{icon}</svg>
<h1 id="headline">{headline}</h1>
</header>
<p class="lead">{message}</p>
{answer}<section class="next" aria-labelledby="next-heading">
<h2 id="next-heading">What to do next</h2>
<p>{next_step}</p>
</section>
{facts}{foot}</main>
{script}</body>
</html>
"""

# "error_code: description" as the login builds it; the code is shown apart, as code.
_ERROR_DETAIL = re.compile(r"([A-Za-z0-9_.\-]{1,100}): (.+)", re.DOTALL)


def _answer(detail: Optional[str]) -> str:
    if not detail:
        return ""
    match = _ERROR_DETAIL.fullmatch(detail)
    if match:
        text = f"<code>{html.escape(match[1])}</code>: {html.escape(match[2])}"
    else:
        text = html.escape(detail)
    return (
        '<section class="answer" aria-labelledby="answer-heading">\n'
        '<h2 id="answer-heading">The federation answered</h2>\n'
        f"<p>{text}</p>\n</section>\n"
    )


def _facts(facts: tuple[tuple[str, Optional[str]], ...]) -> str:
    rows = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>"
        for name, value in facts
        if value
    )
    return f'<dl aria-label="About this login">{rows}</dl>\n' if rows else ""


def _render(
    *,
    kind: str,
    title: str,
    headline: str,
    message: str,
    next_step: str,
    facts: tuple[tuple[str, Optional[str]], ...] = (),
    detail: Optional[str] = None,
    closes: bool = False,
    foot: Optional[str] = None,
) -> bytes:
    footer = f'<p class="foot">{html.escape(foot)}</p>\n' if foot else ""
    script = ""
    if closes:
        footer += (
            f'<p class="foot" id="closing">This tab will try to close itself in {CLOSE_AFTER} '
            "seconds.</p>\n"
        )
        script = f"<script>{_SCRIPT}</script>\n"
    page = _TEMPLATE.format(
        title=html.escape(title),
        favicon=html.escape(_favicon(kind)),
        style=_STYLE,
        kind=kind,
        icon=_icon(kind, "currentColor"),
        headline=html.escape(headline),
        message=html.escape(message),
        answer=_answer(detail),
        next_step=html.escape(next_step),
        facts=_facts(facts),
        foot=footer,
        script=script,
    )
    return page.encode("utf-8")


def success_page(*, app: str, profile: Optional[str], federation: str) -> bytes:
    """Status 200: the login finished and the token was issued (the token is not shown)."""
    return _render(
        kind="ok",
        title=f"Login complete – {app}",
        headline="Login complete",
        message=f"{app} is now logged in. The access token went straight to the "
        "application; it is not shown here.",
        next_step="Return to your terminal or notebook. You can close this tab.",
        facts=(("Application", app), ("Profile", profile), ("Federation", federation)),
        closes=True,
    )


def failure_page(
    *,
    app: str,
    profile: Optional[str],
    federation: str,
    headline: str,
    message: str,
    next_step: str,
    detail: Optional[str] = None,
) -> bytes:
    """Status 400: the login failed. ``detail`` is the federation's error as received
    (``"error: description"``), shown escaped under "The federation answered"."""
    return _render(
        kind="fail",
        title=f"{headline} – {app}",
        headline=headline,
        message=message,
        next_step=next_step,
        facts=(("Application", app), ("Profile", profile), ("Federation", federation)),
        detail=detail,
    )


def notice_page(*, headline: str, message: str) -> bytes:
    """Status 400/404/405 pages for requests that are not the login callback."""
    return _render(
        kind="notice",
        title=f"{headline} – login callback",
        headline=headline,
        message=message,
        next_step="If you are logging in, finish in the browser tab that the login opened. "
        "Otherwise you can close this tab.",
        foot="This page comes from a program on this computer that is waiting for a login "
        "to finish.",
    )
