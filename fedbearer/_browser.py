"""Opening the user's browser without ever letting it stall a login.

``webbrowser.open`` waits for some browser commands to exit (a ``$BROWSER`` entry runs
through ``GenericBrowser``, which waits), so the launch runs on its own daemon thread: the
callback keeps being served and the deadline keeps running whatever the browser does. A
launch that fails or returns False is reported and the login goes on waiting for the URL
the user was shown.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

log = logging.getLogger("fedbearer.browser")

#: Opens a URL; returns False (or raises) when it could not. ``None`` counts as success.
Opener = Callable[[str], Optional[bool]]


def _webbrowser_open(url: str) -> bool:
    import webbrowser  # imported here: only a login needs it, and it is slow to import

    return webbrowser.open(url, new=1)


def launch(
    url: str,
    *,
    opener: Optional[Opener] = None,
    on_failure: Callable[[str], None],
) -> threading.Thread:
    """Open ``url`` on a daemon thread; ``on_failure(reason)`` runs there if it fails.

    The returned thread is not joined by the login: a browser command that never exits
    belongs to the user, not to us.
    """
    open_url = opener if opener is not None else _webbrowser_open

    def run() -> None:
        try:
            opened = open_url(url)
        except Exception as exc:
            reason = f"{type(exc).__name__}"
            log.warning(
                "could not open a browser (%s); waiting for the URL to be opened by hand", reason
            )
            on_failure(reason)
            return
        if opened is False:
            log.warning("no browser could be opened; waiting for the URL to be opened by hand")
            on_failure("no usable browser found")
        else:
            log.debug("browser launched")

    thread = threading.Thread(target=run, name="fedbearer-browser", daemon=True)
    thread.start()
    return thread
