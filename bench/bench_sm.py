"""Subnet bring-up: the embedded SM against OpenSM on real ibsim, on the same topology files.

Bring-up is timed from the SM's start to "subnet up" (every port ACTIVE, every LFT written):

- **embedded SM**: a fresh :class:`~ipoib.fabric.fabric.Fabric` per run (its construction is
  not timed), :class:`~ipoib.sm.agent.SmBinding` started, the virtual clock run until the SM
  reports the subnet up, with the garbage collector paused as ``ipoib sweep`` and the daemon
  pause it (:func:`ipoib.host.ibnet.collector_paused`). The time includes the fabric
  answering every SMP in Python, which ibsim does in C for OpenSM; the note gives the SM
  core's share, from a separate run (timing its entry points costs time of its own).
- **OpenSM 3.3 on ibsim** (the baseline, measured in the same run): ``ibsim -n -s FILE``,
  then ``opensm -o`` under ``LD_PRELOAD=libumad2sim.so`` with private cache and tmp
  directories; the time is from OpenSM's first log line to its "SUBNET UP" line, as the
  reference figures in ibsim-protocol.md §15. Both processes are killed afterwards, always.

Two-level fat trees of 108, 648 and 1944 HCAs; 10,000 HCAs only with IPOIB_BENCH_LARGE=1
(OpenSM then needs ibsim's node, switch and port limits raised).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bench.common import Result
from ipoib.fabric import netfile, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.fabric.topology import Topology
from ipoib.host.ibnet import collector_paused
from ipoib.sm.agent import SmBinding, run_until

UMAD2SIM = Path("/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so")
SIZES = (108, 648, 1944)
LARGE = 10_000
OPENSM_TIMEOUT = 120.0
_STAMP = re.compile(r"^(\w{3} +\d+ [\d:]{8}) (\d{6}) ")


def embedded(topo: Topology) -> float:
    """Seconds from the embedded SM's start to subnet up, on a fresh fabric (not timed),
    with the garbage collector paused as ``ipoib sweep`` and the daemon pause it."""
    fabric = Fabric(topo)
    binding = SmBinding(fabric, topo.nodes[0].name)
    sm = binding.sm
    with collector_paused():
        start = time.perf_counter()
        binding.start(0.0)
        run_until(fabric, binding, lambda: sm.subnet_up, limit=3600)
        took = time.perf_counter() - start
    if not sm.subnet_up:
        raise RuntimeError(f"the embedded SM did not bring the subnet up: {list(sm.log)[-3:]}")
    binding.close()
    return took


def _core_share(topo: Topology) -> tuple[int, float]:
    """(SMPs sent, share of the bring-up spent inside the SM core), from a run of its own:
    the timing wrappers around the SM's entry points cost time of their own."""
    fabric = Fabric(topo)
    binding = SmBinding(fabric, topo.nodes[0].name)
    sm = binding.sm
    core = 0.0

    def timed(fn: Callable[..., None]) -> Callable[..., None]:
        def call(*args: object) -> None:
            nonlocal core
            t = time.perf_counter()
            fn(*args)
            core += time.perf_counter() - t
        return call

    for name in ("start", "receive", "receive_answer", "handle_timer"):
        setattr(sm, name, timed(getattr(sm, name)))
    with collector_paused():
        start = time.perf_counter()
        binding.start(0.0)
        run_until(fabric, binding, lambda: sm.subnet_up, limit=3600)
        took = time.perf_counter() - start
    binding.close()
    return sm.tx.sent, core / took


def _log_time(line: str) -> float:
    m = _STAMP.match(line)
    if m is None:
        raise ValueError(line)
    stamp = datetime.strptime(f"{datetime.now().year} {m.group(1)}", "%Y %b %d %H:%M:%S")
    return stamp.timestamp() + int(m.group(2)) / 1e6


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float) -> bool:
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                return False
            continue
        if text in line:
            return True
    return False


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def opensm_available() -> str | None:
    """None when ibsim, opensm and umad2sim are installed, else what is missing."""
    for tool in ("ibsim", "opensm"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None if UMAD2SIM.exists() else f"{UMAD2SIM} missing"


def _opensm(topo: Topology, workdir: Path) -> float:
    """OpenSM's log time from its first line to SUBNET UP, on ibsim with ``topo``."""
    net = workdir / "net"
    net.write_text(netfile.dumps(topo))
    sock = f"ipoibbench{os.getpid()}{len(topo.nodes)}"
    env = dict(os.environ, IBSIM_SOCKNAME=sock)
    ports = sum(n.nports + 1 for n in topo.nodes)
    limits = ["-N", str(len(topo.nodes) + 16), "-S", str(len(topo.switches) + 16),
              "-P", str(ports + 64)]
    ibsim: subprocess.Popen[str] | None = None
    osm: subprocess.Popen[str] | None = None
    try:
        ibsim = subprocess.Popen(["ibsim", "-n", *limits, "-s", str(net)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not _wait_for(ibsim, "Network simulator ready", 60):
            raise RuntimeError("ibsim did not start")
        cache = workdir / "cache"
        cache.mkdir(exist_ok=True)
        log = workdir / "osm.log"
        osm_env = dict(env, OSM_CACHE_DIR=str(cache), OSM_TMP_DIR=str(cache),
                       LD_PRELOAD=str(UMAD2SIM))
        osm = subprocess.Popen(["opensm", "-o", "-d2", "-D", "0x03", "-f", str(log)],
                               env=osm_env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True)
        try:
            osm.wait(timeout=OPENSM_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        lines = log.read_text(errors="replace").splitlines()
        up = next((ln for ln in lines if "SUBNET UP" in ln), None)
        if not lines or up is None:
            raise RuntimeError("OpenSM did not report SUBNET UP")
        return _log_time(up) - _log_time(lines[0])
    finally:
        _stop(osm)
        _stop(ibsim)


def run() -> list[Result]:
    """Bring-up time per size, with OpenSM on ibsim as the same-run baseline."""
    sizes = list(SIZES) + ([LARGE] if os.environ.get("IPOIB_BENCH_LARGE") == "1" else [])
    missing = opensm_available()
    results: list[Result] = []
    for hcas in sizes:
        topo = topogen.fat_tree(hcas)
        repeats = 3 if hcas <= 648 else 1
        took = min(embedded(topo) for _ in range(repeats))
        smps, share = _core_share(topo)
        baseline = None
        note = (f"{len(topo.nodes)} nodes, {smps:,} SMPs; {share:.0%} of the time in the SM "
                f"core, the rest in the fabric (SMAs, forwarding)")
        if missing is None:
            with tempfile.TemporaryDirectory(prefix="ipoib-bench-osm-") as tmp:
                try:
                    baseline = min(_opensm(topo, Path(tmp)) for _ in range(repeats))
                except (RuntimeError, OSError, ValueError) as e:
                    note += f"; OpenSM baseline failed: {e}"
        else:
            note += f"; no baseline: {missing}"
        results.append(Result(f"bring-up {hcas} HCAs", took * 1e3, "ms",
                              "OpenSM on ibsim" if baseline is not None else None,
                              None if baseline is None else baseline * 1e3, note))
    return results
