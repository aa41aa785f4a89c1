"""Subnet bring-up: the embedded SM against OpenSM on real ibsim, on the same topology files.

Bring-up is timed from the SM's start to "subnet up" (every port ACTIVE, every LFT written):

- **embedded SM**: :func:`bench.bringup.embedded` (construction of the fabric not timed,
  collector paused as in the daemon). The time includes the fabric answering every SMP in
  Python, which ibsim does in C for OpenSM; the note gives the SM core's share, from a
  separate run (timing its entry points costs time of its own).
- **OpenSM 3.3 on ibsim** (the baseline, measured in the same run):
  :func:`bench.bringup.opensm_on_ibsim`, first log line to "SUBNET UP".

Two-level fat trees of 108, 648, 1944 and 10,000 HCAs. At 10,000 the goal is absolute (under
10 s), and OpenSM is timed only with IPOIB_BENCH_LARGE=1 (it then needs ibsim's node, switch
and port limits raised, and minutes).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.bringup import embedded, missing, opensm_on_ibsim
from bench.common import Result
from ipoib.fabric import netfile, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.fabric.topology import Topology
from ipoib.host.ibnet import collector_paused
from ipoib.sm.agent import SmBinding, run_until
from ipoib.sm.manager import SubnetManager
from ipoib.sm.transactions import MadAddr

SIZES = (108, 648, 1944)
LARGE = 10_000


class _Timed(SubnetManager):
    """The SM with its entry points timed (the SM core's share of a bring-up)."""

    core = 0.0

    def start(self, now: float) -> None:
        t = time.perf_counter()
        super().start(now)
        self.core += time.perf_counter() - t

    def receive(self, mad: bytes, addr: MadAddr, now: float) -> None:
        t = time.perf_counter()
        super().receive(mad, addr, now)
        self.core += time.perf_counter() - t

    def receive_answer(self, mad: bytes, now: float) -> None:
        t = time.perf_counter()
        super().receive_answer(mad, now)
        self.core += time.perf_counter() - t

    def handle_timer(self, now: float) -> None:
        t = time.perf_counter()
        super().handle_timer(now)
        self.core += time.perf_counter() - t


def _core_share(topo: Topology) -> tuple[int, float]:
    """(SMPs sent, share of the bring-up spent inside the SM core), from a run of its own:
    the timing around the SM's entry points costs time of its own."""
    fabric = Fabric(topo)
    sm = _Timed()
    binding = SmBinding(fabric, topo.nodes[0].name, sm=sm)
    with collector_paused():
        start = time.perf_counter()
        binding.start(0.0)
        run_until(fabric, binding, lambda: sm.subnet_up, limit=3600)
        took = time.perf_counter() - start
    binding.close()
    return sm.tx.sent, sm.core / took


def run() -> list[Result]:
    """Bring-up time per size, with OpenSM on ibsim as the same-run baseline."""
    sizes = [*SIZES, LARGE]
    large_baseline = os.environ.get("IPOIB_BENCH_LARGE") == "1"
    absent = missing()
    results: list[Result] = []
    for hcas in sizes:
        topo = topogen.fat_tree(hcas)
        repeats = 3 if hcas <= 648 else 1
        took = min(embedded(topo) for _ in range(repeats))
        smps, share = _core_share(topo)
        baseline = None
        note = (f"{len(topo.nodes)} nodes, {smps:,} SMPs; {share:.0%} of the time in the SM "
                f"core, the rest in the fabric (SMAs, forwarding)")
        if hcas == LARGE and not large_baseline:
            note += "; goal < 10 s (OpenSM timed too with IPOIB_BENCH_LARGE=1)"
        elif absent is None:
            with tempfile.TemporaryDirectory(prefix="ipoib-bench-osm-") as tmp:
                net = Path(tmp) / "fabric.net"
                net.write_text(netfile.dumps(topo))
                try:
                    baseline = min(opensm_on_ibsim(topo, net, Path(tmp))
                                   for _ in range(repeats))
                except (RuntimeError, OSError, ValueError) as e:
                    note += f"; OpenSM baseline failed: {e}"
        else:
            note += f"; no baseline: {absent}"
        results.append(Result(f"bring-up {hcas} HCAs", took * 1e3, "ms",
                              "OpenSM on ibsim" if baseline is not None else None,
                              None if baseline is None else baseline * 1e3, note))
    return results
