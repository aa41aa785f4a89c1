"""OpenSM on our ibsim-protocol server against OpenSM on real ibsim, and our embedded SM.

One topology file per size (two-level fat trees of 648 and 1944 HCAs), three bring-ups:

- **OpenSM on ibsim** (the baseline): ``ibsim -n -s FILE`` with its node, switch and port
  limits raised to fit, then ``opensm -o -d2`` under ``LD_PRELOAD=libumad2sim.so`` with
  private cache and tmp directories.
- **OpenSM on ours**: ``python -m ipoib.ibsim FILE --sm none``, then the same OpenSM command.
- **embedded SM**: :func:`bench.bench_sm.embedded`, the same measure as ``bench sm``: a fabric
  of the same file (construction not timed), the SM started and the virtual clock run until
  it reports the subnet up, with the collector paused as the daemon does. The fabric answers
  every SMP in Python inside that time.

For OpenSM the time is from its first log line to "SUBNET UP" (its own microsecond stamps,
as the reference figures in ibsim-protocol.md §15), so neither the simulator's start nor
OpenSM's process start is counted; the simulator is ready ("Network simulator ready.")
before OpenSM starts. Goals: OpenSM on ours ≤ 1.2× OpenSM on ibsim; embedded ≤ 0.5× OpenSM
on ibsim. Every process is killed afterwards, whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tests.peers.simulator import running, stop

from bench.bench_sm import embedded
from bench.common import Result
from ipoib.fabric import netfile, topogen
from ipoib.fabric.topology import Topology

UMAD2SIM = Path("/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so")
SIZES = (648, 1944)
OPENSM_TIMEOUT = 300.0
_STAMP = re.compile(r"^(\w{3} +\d+ [\d:]{8}) (\d{6}) ")


def missing() -> str | None:
    """None when ibsim, opensm and umad2sim are installed, else what is missing."""
    for tool in ("ibsim", "opensm"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            return f"{tool} not installed"
    return None if UMAD2SIM.exists() else f"{UMAD2SIM} missing"


def _log_time(line: str) -> float:
    m = _STAMP.match(line)
    if m is None:
        raise ValueError(f"not an OpenSM log line: {line!r}")
    stamp = datetime.strptime(f"{datetime.now().year} {m.group(1)}", "%Y %b %d %H:%M:%S")
    return stamp.timestamp() + int(m.group(2)) / 1e6


def _opensm(sock: str, workdir: Path) -> float:
    """OpenSM once (``-o``) on the simulator at ``sock``: first log line to SUBNET UP."""
    cache = workdir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    log = workdir / "osm.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, IBSIM_SOCKNAME=sock, OSM_CACHE_DIR=str(cache),
               OSM_TMP_DIR=str(cache), LD_PRELOAD=str(UMAD2SIM))
    env.pop("SIM_HOST", None)
    osm = subprocess.Popen(["opensm", "-o", "-d2", "-f", str(log)], env=env, cwd=workdir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        try:
            osm.wait(timeout=OPENSM_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    finally:
        stop(osm)
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    up = next((ln for ln in lines if "SUBNET UP" in ln), None)
    if not lines or up is None:
        raise RuntimeError(f"OpenSM did not report SUBNET UP: {(lines or ['no log'])[-1]}")
    return _log_time(up) - _log_time(lines[0])


def opensm_on_ibsim(topo: Topology, net: Path, workdir: Path) -> float:
    """OpenSM's bring-up on real ibsim, its limits raised to fit ``topo``."""
    ports = sum(n.nports + 1 for n in topo.nodes)
    limits = ["-N", str(len(topo.nodes) + 16), "-S", str(len(topo.switches) + 16),
              "-P", str(ports + 64)]
    sock = f"ipoibbo{os.getpid()}i{len(topo.nodes)}"
    with running(["ibsim", "-n", *limits, "-s", str(net)], sock):
        return _opensm(sock, workdir)


def opensm_on_ours(net: Path, workdir: Path) -> float:
    """OpenSM's bring-up on ``python -m ipoib.ibsim FILE --sm none``."""
    sock = f"ipoibbo{os.getpid()}o"
    with running([sys.executable, "-m", "ipoib.ibsim", str(net), "--sm", "none",
                  "--sockname", sock], sock):
        return _opensm(sock, workdir)


def _best(runs: int, measure: Callable[..., float], *args: object) -> tuple[float | None, str]:
    """The best of ``runs`` calls of ``measure(*args)``, or None and why it failed."""
    try:
        return min(measure(*args) for _ in range(runs)), ""
    except (RuntimeError, OSError, ValueError) as e:
        return None, str(e)


def run() -> list[Result]:
    """Per size: OpenSM on ours and our embedded SM, each against OpenSM on ibsim."""
    absent = missing()
    results: list[Result] = []
    for hcas in SIZES:
        topo = topogen.fat_tree(hcas)
        runs = 3 if hcas <= 648 else 2
        label = f"{hcas} HCAs ({len(topo.nodes)} nodes)"
        emb, why_emb = _best(runs, embedded, topo)
        if absent is not None:
            results.append(Result(f"embedded SM {label}", (emb or 0.0) * 1e3, "ms",
                                  note=why_emb or f"no OpenSM figures: {absent}"))
            continue
        with tempfile.TemporaryDirectory(prefix="ipoib-bench-opensm-") as tmp:
            work = Path(tmp)
            net = work / "fabric.net"
            net.write_text(netfile.dumps(topo))
            base, why_base = _best(runs, opensm_on_ibsim, topo, net, work)
            ours, why_ours = _best(runs, opensm_on_ours, net, work)
        name = "OpenSM on ibsim" if base is not None else None
        base_ms = None if base is None else base * 1e3
        results.append(Result(f"OpenSM on ibsim {label}", base_ms or 0.0, "ms",
                              note=f"failed: {why_base}" if base is None else ""))
        results.append(Result(f"OpenSM on ours {label}", (ours or 0.0) * 1e3, "ms", name,
                              base_ms, f"failed: {why_ours}" if ours is None
                              else "goal <= 1.2x"))
        results.append(Result(f"embedded SM {label}", (emb or 0.0) * 1e3, "ms", name,
                              base_ms, f"failed: {why_emb}" if emb is None
                              else "goal <= 0.5x"))
    return results
