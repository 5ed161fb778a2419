"""Shared pieces: results, interleaved timing, the machine description."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Result:
    """One row of the table.

    ``ours`` and ``floor`` are in ``unit``; ``ratio`` is ours/floor (``None`` for rows that
    are counts); ``spread`` is the interquartile range of the per-round ratios.
    """

    name: str
    ours: float
    floor: Optional[float]
    unit: str
    ratio: Optional[float] = None
    spread: Optional[tuple[float, float]] = None
    target: Optional[str] = None
    ok: Optional[bool] = None
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def interleaved(
    ours: Callable[[], float],
    floor: Callable[[], float],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """Run ``ours`` and ``floor`` alternately, ``rounds`` times each, swapping who goes
    first every round so that neither side always runs on a warmer (or colder) machine.
    Each callable returns one measurement (seconds per operation)."""
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        if i % 2:
            b.append(floor())
            a.append(ours())
        else:
            a.append(ours())
            b.append(floor())
    return a, b


def ratio_result(
    name: str,
    ours: list[float],
    floor: list[float],
    *,
    unit: str,
    scale: float,
    target: Optional[float],
    note: str = "",
    per_round: bool = True,
) -> Result:
    """Summarise interleaved samples.

    ``per_round``: the ratio is the median of the per-round ratios (right when rounds are
    long, so each pair saw the same machine). Otherwise it is min(ours)/min(floor), the
    usual estimate for micro-benchmarks where noise only ever adds time.
    """
    if per_round:
        ratios = [x / y for x, y in zip(ours, floor)]
        low, mid, high = quartiles(ratios)
        o, f = statistics.median(ours), statistics.median(floor)
    else:
        o, f = min(ours), min(floor)
        mid = o / f
        ratios = [x / y for x, y in zip(ours, floor)]
        low, _, high = quartiles(ratios)
    return Result(
        name,
        o * scale,
        f * scale,
        unit,
        ratio=mid,
        spread=(low, high),
        target=None if target is None else f"<= {target:g}x",
        ok=None if target is None else mid <= target,
        note=note,
    )


def machine() -> str:
    """nproc, CPU model, Python and platform, for the table header and the docs."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or model
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpus} CPU(s), {model}; Python {sys.version.split()[0]} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def per_op(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n
