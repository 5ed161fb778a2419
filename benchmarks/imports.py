"""``import fedbearer`` vs ``import requests``, each in a fresh interpreter.

Two measures, both from N fresh subprocesses run alternately: the import itself (timed
inside the child with ``perf_counter``, interpreter start-up excluded, so the stricter
ratio) and the whole process's wall time (what a command-line tool feels). fedbearer
imports requests, so the difference is fedbearer's own modules plus what they pull in.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from ._common import Result, quartiles

TARGET = 1.15

_CODE = (
    "import time; t = time.perf_counter(); import {module}; {touch}print(time.perf_counter() - t)"
)


def _child(module: str, touch: str = "") -> tuple[float, float]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CODE.format(module=module, touch=touch)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=root,
    ).stdout
    return float(out), time.perf_counter() - start


def run(quick: bool = False) -> list[Result]:
    n = 10 if quick else 41
    # What a user's first line costs: the package and the class they construct.
    ours_spec = ("fedbearer", "fedbearer.FederationAuth; ")
    floor_spec = ("requests", "requests.Session; ")
    for _ in range(3):  # warm the bytecode caches and the OS file cache
        _child(*ours_spec)
        _child(*floor_spec)
    ours: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    for i in range(n):
        pair = (ours, floor) if i % 2 else (floor, ours)
        for target in pair:
            target.append(_child(*(ours_spec if target is ours else floor_spec)))
    results = []
    for index, (name, note) in enumerate(
        (
            ("import fedbearer vs import requests", "import only, in-process perf_counter"),
            ("  same, whole process wall time", "python -c, start-up included"),
        )
    ):
        a = [x[index] for x in ours]
        b = [x[index] for x in floor]
        ratios = [x / y for x, y in zip(a, b)]
        low, _mid, high = quartiles(ratios)
        ratio = statistics.median(a) / statistics.median(b)
        results.append(
            Result(
                name,
                statistics.median(a) * 1e3,
                statistics.median(b) * 1e3,
                "ms",
                ratio=ratio,
                spread=(low, high),
                target=f"<= {TARGET:g}x",
                ok=ratio <= TARGET,
                note=f"median of {n} fresh interpreters each, alternating; {note}",
            )
        )
    return results
