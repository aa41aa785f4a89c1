"""What every benchmark module shares: the :class:`Result` row and the timing loop.

A figure is the best mean over several repeats of a timed loop (``timeit`` with
``time.perf_counter_ns``, garbage collection off), so it is the cost of the code, not of
whatever else the machine was doing. Each figure can carry a baseline measured in the same
run, and the ratio to it, so results compare across machines.
"""

from __future__ import annotations

import time
import timeit
from dataclasses import dataclass
from typing import Any

DEFAULT_REPEAT = 5
"""Repeats per figure; the best one is kept."""
DEFAULT_MIN_NS = 40_000_000
"""Each repeat runs enough iterations to last at least this long (40 ms)."""


@dataclass(frozen=True)
class Result:
    """One benchmark figure: ``value`` in ``unit``, and optionally its baseline."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``value / baseline_value``: 2.0 means twice the baseline's cost."""
        if self.baseline_value is None or self.baseline_value == 0:
            return None
        return self.value / self.baseline_value


def ns_per_call(stmt: str, env: dict[str, Any], *, repeat: int = DEFAULT_REPEAT,
                min_ns: int = DEFAULT_MIN_NS) -> float:
    """Best-of-``repeat`` nanoseconds per execution of ``stmt`` (evaluated in ``env``).

    The iteration count grows by powers of ten until one repeat lasts ``min_ns``; the
    statement runs inline in timeit's loop, so no extra call is timed.
    """
    timer = timeit.Timer(stmt, globals=env, timer=time.perf_counter_ns)
    number = 1
    while True:
        total = timer.timeit(number)
        if total >= min_ns or number >= 10**8:
            break
        number *= 10 if total < min_ns / 10 else 2
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number


def format_table(results: list[Result]) -> str:
    """A plain-text table: figure, value, unit, baseline and ratio."""
    head = ("benchmark", "value", "unit", "baseline", "ratio")
    rows = [head]
    for r in results:
        ratio = r.ratio
        rows.append((
            r.name,
            f"{r.value:,.1f}" if r.value < 1000 else f"{r.value:,.0f}",
            r.unit,
            r.baseline or "",
            "" if ratio is None else f"{ratio:.2f}x",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].ljust(widths[3]), row[4].rjust(widths[4])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.note}" for r in results if r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
