"""``fedbearer token`` with a cached token, as a whole process, vs a bare ``python -c pass``.

This is what ``kubectl`` pays before every command when fedbearer is its exec credential
plugin, and a shell user on every ``$(fedbearer token)``: interpreter start-up, the
imports, reading the cache file and printing. The floor is the interpreter alone. Each side
runs in N fresh processes, alternately; the CPU time (user + system, from ``getrusage``) is
the stable measure on a busy machine, the wall time is shown beside it. The ratio is the
median of the per-pair ratios.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from fedbearer import FileTokenCache, Token, cache_key

from ._common import Result, quartiles

TARGET = 5.0

_IDENTITY = ["--client-id", "bench", "--federation-endpoint", "https://auth.example"]
_IDENTITY += ["--federation-id", "bench-fed"]


def _child(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one process running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def run(quick: bool = False) -> list[Result]:
    n = 10 if quick else 41
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "PYTHONPATH": root}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        expires = datetime.now(timezone.utc) + timedelta(hours=6)
        key = cache_key("https://auth.example", "bench-fed", "default")
        FileTokenCache(os.path.join(home, ".nebius", "credentials.yaml")).put(
            key, Token("cached-bench-token", expires)
        )
        ours_argv = [sys.executable, "-m", "fedbearer", "token", *_IDENTITY]
        floor_argv = [sys.executable, "-c", "pass"]
        out = subprocess.run(ours_argv, capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == "cached-bench-token", out  # the cached path, no login
        for _ in range(3):  # warm the bytecode caches and the OS file cache
            _child(ours_argv, env)
            _child(floor_argv, env)
        ours: list[tuple[float, float]] = []
        floor: list[tuple[float, float]] = []
        for i in range(n):
            pair = (ours, floor) if i % 2 else (floor, ours)
            for target in pair:
                target.append(_child(ours_argv if target is ours else floor_argv, env))
    results = []
    for index, (name, note) in enumerate(
        (
            ("fedbearer token (cached) vs python -c pass", "CPU time of the process"),
            ("  same, wall time", "wall time, start-up included"),
        )
    ):
        a = [x[index] for x in ours]
        b = [x[index] for x in floor]
        low, ratio, high = quartiles([x / y for x, y in zip(a, b)])
        results.append(
            Result(
                name,
                statistics.median(a) * 1e3,
                statistics.median(b) * 1e3,
                "ms",
                ratio=ratio,
                spread=(low, high),
                target=f"<= {TARGET:g}x" if index == 0 else None,
                ok=ratio <= TARGET if index == 0 else None,
                note=f"median of {n} fresh processes each, alternating; {note}",
            )
        )
    return results
