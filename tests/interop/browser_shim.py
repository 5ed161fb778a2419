#!/usr/bin/env python3
"""``$BROWSER`` command that hands a URL to a running :class:`BrowserDriver`.

Python's :mod:`webbrowser` runs ``$BROWSER`` (an entry containing ``%s``) as
``subprocess.Popen(shlex.split(entry) with %s replaced by the URL)`` and, in CPython 3.11,
WAITS for it: ``open()`` returns True only if this exits with status 0. So this script
delivers the URL over a loopback TCP connection to the driver, waits for the driver's
acknowledgement (the URL is queued, not yet loaded), and exits 0 at once; the real Chromium
then loads the page in the driver's own thread while the caller goes on.

Usage (what ``BrowserDriver.browser_env`` builds; no ``:`` anywhere, since ``$BROWSER`` is
split on ``os.pathsep``)::

    BROWSER="/path/to/python /path/to/browser_shim.py --port 40321 --token abc %s"

Exit status: 0 delivered, 1 the driver refused or did not answer, 2 bad usage.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="driver port on 127.0.0.1")
    parser.add_argument("--token", required=True, help="the driver's shared secret")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("url", nargs="+", help="the URL (webbrowser passes exactly one)")
    args = parser.parse_args(argv)

    message = {"token": args.token, "url": args.url[0], "argv": argv}
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as sock:
            sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        print(f"browser_shim: cannot reach the browser driver: {exc}", file=sys.stderr)
        return 1
    try:
        answer = json.loads(reply or b"{}")
    except ValueError:
        answer = {}
    if not answer.get("ok"):
        print(f"browser_shim: the browser driver refused the URL: {answer!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
