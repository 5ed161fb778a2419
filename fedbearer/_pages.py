"""The small HTML pages the loopback server shows in the user's browser.

Self-contained (no external resources), every dynamic value escaped, and served with a
strict Content-Security-Policy whose only script is the inline close-the-tab timer,
allowed by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Optional

#: Seconds before the page tries to close its tab. Browsers only let a script close a tab
#: that a script opened, so the text also tells the user to close it.
CLOSE_AFTER = 5

_SCRIPT = f"setTimeout(function(){{window.close();}},{CLOSE_AFTER * 1000});"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

#: Headers sent with every page: no caching (it follows a URL carrying a code), no referrer
#: (the URL carries the code), no framing, nothing loaded from anywhere.
HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
)

# Colours chosen for WCAG AA contrast on white; the headline and an icon character carry
# the meaning too, so nothing depends on colour alone.
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1b1f24; background: #f4f5f7; margin: 0; }}
main {{ max-width: 34rem; margin: 12vh auto 0; padding: 2rem 2.25rem; background: #fff;
  border-radius: 12px; box-shadow: 0 1px 4px rgba(0,0,0,.12); border-top: 6px solid {accent}; }}
h1 {{ font-size: 1.5rem; margin: 0 0 .75rem; color: {accent}; }}
h1 span {{ margin-right: .4rem; }}
p {{ margin: .5rem 0; }}
dl {{ margin: 1rem 0; display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }}
dt {{ color: #555b63; }}
dd {{ margin: 0; word-break: break-word; }}
.detail {{ background: #f7f7f9; border: 1px solid #d0d4da; border-radius: 6px;
  padding: .5rem .75rem; font-family: ui-monospace, monospace; font-size: .9rem;
  word-break: break-word; }}
.next {{ font-weight: 600; }}
small {{ color: #555b63; }}
@media (max-width: 36rem) {{ main {{ margin: 0; border-radius: 0; min-height: 100vh; }} }}
</style>
</head>
<body>
<main role="main">
<h1><span aria-hidden="true">{icon}</span>{headline}</h1>
<p>{message}</p>
{details}
<p class="next">{next_step}</p>
<p><small>This tab tries to close itself in {close_after} seconds; you can close it now.</small></p>
</main>
<script>{script}</script>
</body>
</html>
"""


def _render(
    *,
    title: str,
    headline: str,
    icon: str,
    accent: str,
    message: str,
    next_step: str,
    facts: tuple[tuple[str, Optional[str]], ...],
    detail: Optional[str] = None,
) -> bytes:
    rows = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>"
        for name, value in facts
        if value
    )
    details = f"<dl>{rows}</dl>" if rows else ""
    if detail:
        details += f'<p class="detail">{html.escape(detail)}</p>'
    page = _TEMPLATE.format(
        title=html.escape(title),
        headline=html.escape(headline),
        icon=icon,
        accent=accent,
        message=html.escape(message),
        details=details,
        next_step=html.escape(next_step),
        close_after=CLOSE_AFTER,
        script=_SCRIPT,
    )
    return page.encode("utf-8")


def success_page(*, app: str, profile: Optional[str], federation: str) -> bytes:
    """Status 200: the login finished and the token was issued."""
    return _render(
        title="Login complete",
        headline="Login complete",
        icon="✓",
        accent="#1a7f37",
        message=f"{app} is now logged in. The access token went straight to the application; "
        "it is not shown here.",
        next_step="You can close this tab and return to your terminal or notebook.",
        facts=(("Application", app), ("Profile", profile), ("Federation", federation)),
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
    """Status 400: the login failed; ``detail`` is the federation's error, shown escaped."""
    return _render(
        title=headline,
        headline=headline,
        icon="✕",
        accent="#b3261e",
        message=message,
        next_step=next_step,
        facts=(("Application", app), ("Profile", profile), ("Federation", federation)),
        detail=detail,
    )


def notice_page(*, headline: str, message: str) -> bytes:
    """Status 400/404 pages for requests that are not the login callback."""
    return _render(
        title=headline,
        headline=headline,
        icon="!",
        accent="#8a4b00",
        message=message,
        next_step="If you are logging in, finish in the browser tab that the login opened.",
        facts=(),
    )
