"""Run the benchmarks and print one table. ``python -m benchmarks --help`` for options."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Optional

from ._common import Result, machine

#: Module name -> what it measures; run in this order.
BENCHMARKS = {
    "hot_path": "auth(r) with a token in memory vs a static-header AuthBase",
    "loopback_get": "a GET through a Session with FederationAuth vs a static header",
    "login": "a full login vs the same HTTP exchanges by hand; memory of one login",
    "token_command": "fedbearer token with a cached token vs python -c pass",
    "single_flight": "logins and renewals caused by crowds of threads and processes",
    "httpx_path": "httpx token path vs a static-header httpx.Auth; 100 async tasks -> logins",
}


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def table(results: Sequence[Result]) -> str:
    header = ("benchmark", "fedbearer", "floor", "unit", "ratio", "IQR", "target", "")
    rows = [header]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}x"
        spread = "-" if r.spread is None else f"{r.spread[0]:.3f}-{r.spread[1]:.3f}"
        verdict = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        rows.append(
            (r.name, _fmt(r.ours), _fmt(r.floor), r.unit, ratio, spread, r.target or "", verdict)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.name.strip()}: {r.note}" for r in results if r.note]
    return "\n".join([*lines, "", "notes:", *notes])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure fedbearer against its floors; see docs/performance.rst.",
    )
    parser.add_argument(
        "only",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="NAME",
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke check")
    args = parser.parse_args(argv)
    # No terminal on stdin: a login would otherwise also read pasted URLs from it.
    sys.stdin = open(os.devnull)  # noqa: SIM115 - for the whole run
    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: list[Result] = []
    for name in args.only or BENCHMARKS:
        started = time.monotonic()
        print(f"running {name}: {BENCHMARKS[name]} ...", flush=True)
        module = importlib.import_module(f"{__package__}.{name}")
        results += module.run(quick=args.quick)
        print(f"  {time.monotonic() - started:.1f} s", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(table(results))
    missed = [r.name.strip() for r in results if r.ok is False]
    if missed:
        print(f"\nmissed targets: {', '.join(missed)}")
    return 0
