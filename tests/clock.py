"""A virtual clock for driving sans-I/O cores in tests (docs/conventions.md, the pump contract).

Anything with ``process(now)`` and ``get_timer()`` can be pumped: the fabric, an SM binding,
an IPoIB device. Time only moves when nothing is left to do at the current instant, so tests
are deterministic and never sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol


class Pumpable(Protocol):
    """The pump contract."""

    def process(self, now: float) -> None: ...

    def get_timer(self) -> float | None: ...


class VirtualClock:
    """Pumps a set of cores, advancing time from one timer to the next."""

    def __init__(self, pumpables: Iterable[Pumpable] = (), now: float = 0.0) -> None:
        self.now = now
        self.pumpables: list[Pumpable] = list(pumpables)

    def add(self, *pumpables: Pumpable) -> None:
        """Pump these too."""
        self.pumpables.extend(pumpables)

    def settle(self, rounds: int = 10_000) -> None:
        """Process at the current time until no core has work due now."""
        for _ in range(rounds):
            for p in self.pumpables:
                p.process(self.now)
            if not any(t is not None and t <= self.now for t in self._timers()):
                return
        raise AssertionError(f"not settled after {rounds} rounds at t={self.now}")

    def _timers(self) -> list[float | None]:
        return [p.get_timer() for p in self.pumpables]

    def next_timer(self) -> float | None:
        """The earliest pending deadline, if any."""
        ts = [t for t in self._timers() if t is not None]
        return min(ts) if ts else None

    def advance(self, seconds: float) -> None:
        """Run everything due in the next ``seconds``, timer by timer, ending at now+seconds."""
        end = self.now + seconds
        self.settle()
        while True:
            t = self.next_timer()
            if t is None or t > end:
                break
            self.now = max(self.now, t)
            self.settle()
        self.now = end
        self.settle()

    def run_until(self, cond: Callable[[], bool], timeout: float = 60.0) -> float:
        """Advance until ``cond()`` holds; return the virtual time it took. Fails on timeout."""
        start = self.now
        self.settle()
        while not cond():
            t = self.next_timer()
            if t is None or t - start > timeout:
                raise AssertionError(f"condition not met within {timeout} s (t={self.now})")
            self.now = max(self.now, t)
            self.settle()
        return self.now - start
