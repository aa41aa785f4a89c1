"""The bring-up measures shared by ``bench sm`` and ``bench opensm``.

- :func:`embedded`: our SM, from its start to subnet up (every port ACTIVE, every LFT
  written) on a fresh fabric, on the virtual clock, with the garbage collector paused as
  ``ipoib sweep`` and the daemon pause it (:func:`ipoib.host.ibnet.collector_paused`). The
  fabric answers every SMP in Python inside that time.
- :func:`opensm_on_ibsim` and :func:`opensm_on_ours`: OpenSM once (``opensm -o``) under
  ``LD_PRELOAD=libumad2sim.so`` with private cache and tmp directories, on real ibsim (its
  limits raised to fit) or on ``python -m ipoib.ibsim FILE --sm none``; the time is from
  OpenSM's first log line to its "SUBNET UP" line (its own microsecond stamps, as the
  reference figures in ibsim-protocol.md §15), so neither simulator's start nor OpenSM's
  process start is counted. Every process is killed afterwards, whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from tests.peers.simulator import running, stop

from ipoib.fabric.fabric import Fabric
from ipoib.fabric.topology import Topology
from ipoib.host.ibnet import collector_paused
from ipoib.sm.agent import SmBinding, run_until

UMAD2SIM = Path("/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so")
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
