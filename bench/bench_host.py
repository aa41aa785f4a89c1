"""Real programs over ipoib against the bare relay, in the same run.

(a) the bare relay (:mod:`bench.bench_relay`): one Python process moving packets between two
TUN devices in two namespaces, MTU 2044, no work per packet; (b) ipoib: the daemon that
``ipoib up`` starts, on the demo fabric (``topogen.fat_tree(8)``: 4 leaves, 2 spines), between
``hca-1`` and the last HCA, which sit on different leaf switches, so every packet crosses
leaf, spine and leaf. The same ping and iperf3 TCP (5 s) run over both; the figures are the
ipoib ones with the relay's as baseline, so the ratio is ipoib / relay.

Both stay up for the whole run and are measured in alternation, ``IPOIB_BENCH_ROUNDS``
rounds (default 2), keeping each side's best: a neighbour's burst of work on the shared
machine then costs both sides alike. The daemon's peak memory (VmHWM) is read after the
measurement for 8 hosts, and for 64 hosts (``fat_tree(64)``) after bring-up and a ping across
leaves.

Needs root, iperf3 and ping. Every namespace and process made is removed on the way out,
whatever happens (``ipoib down``, then the run state's own cleanup as a fallback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.bench_relay import (
    CLOSE_COUNT,
    CLOSE_INTERVAL,
    IPERF_SECONDS,
    PING_COUNT,
    PING_INTERVAL,
    RELAY,
    Figures,
    Pair,
    iperf_tcp,
    measure,
    peak_rss_mb,
    ping,
    relay_running,
)
from bench.common import Result
from ipoib.commands.demo import cross_leaf_pair
from ipoib.fabric import netfile
from ipoib.fabric.topogen import fat_tree
from ipoib.host.netns import PREFIX_ENV
from ipoib.host.state import RUN_DIR_ENV, RunDir, cleanup

IPOIB = "ipoib"
DEMO_HCAS = 8
BIG_HCAS = 64
ROUNDS_ENV = "IPOIB_BENCH_ROUNDS"
UP_TIMEOUT = 180.0


def _ipoib(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    p = subprocess.run([sys.executable, "-m", "ipoib", *args], env=env, text=True,
                       capture_output=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"ipoib {' '.join(args)}: {(p.stderr or p.stdout).strip()}")
    return p.stdout


@contextmanager
def ipoib_running(hcas: int = DEMO_HCAS, *, gro: bool = True,
                  tso: bool = True) -> Iterator[Pair]:
    """``ipoib up --detach`` on ``fat_tree(hcas)`` with a private run directory and namespace
    prefix; yields the cross-leaf pair and the daemon's pid; ``ipoib down`` afterwards.
    ``gro=False`` runs it with ``--no-gro``, ``tso=False`` with ``--no-tso``."""
    tmp = Path(tempfile.mkdtemp(prefix="ipoib-bench-"))
    run_dir = tmp / "run"
    prefix = f"ipoib-b{os.getpid()}{'' if gro else 'n'}{'' if tso else 't'}-"
    env = {**os.environ, RUN_DIR_ENV: str(run_dir), PREFIX_ENV: prefix}
    topo = fat_tree(hcas)
    net = tmp / "fabric.net"
    net.write_text(netfile.dumps(topo))
    client, server = cross_leaf_pair(topo)
    try:
        _ipoib(env, "up", str(net), "--detach", "--wait", str(UP_TIMEOUT),
               *(() if gro else ("--no-gro",)), *(() if tso else ("--no-tso",)),
               timeout=UP_TIMEOUT + 30)
        hosts = {h["host"]: h for h in json.loads(_ipoib(env, "show", "hosts", "--json"))}
        state = RunDir(run_dir).load()
        if state is None:
            raise RuntimeError("the daemon recorded no state")
        yield Pair(hosts[client]["netns"], hosts[server]["netns"],
                   str(hosts[server]["ipv4"]).split("/")[0], state.pid)
    finally:
        try:
            subprocess.run([sys.executable, "-m", "ipoib", "down"], env=env,
                           capture_output=True, timeout=60, check=False)
        finally:
            state = RunDir(run_dir).load()
            if state is not None:
                cleanup(state)
            shutil.rmtree(tmp, ignore_errors=True)


def _best(a: Figures | None, b: Figures) -> Figures:
    if a is None:
        return b
    return Figures(max(a.tcp_mbit_s, b.tcp_mbit_s), min(a.rtt_avg_ms, b.rtt_avg_ms),
                   min(a.rtt_min_ms, b.rtt_min_ms), min(a.rtt_close_avg_ms, b.rtt_close_avg_ms))


def _rounds() -> int:
    try:
        return max(1, int(os.environ.get(ROUNDS_ENV, "2")))
    except ValueError:
        return 2


def run() -> list[Result]:
    """Relay and ipoib side by side (TCP, RTT, ratios), then the daemon's memory."""
    missing = [t for t in ("iperf3", "ping") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        why = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
        return [Result("relay vs ipoib (skipped)", 0.0, "-", note=why)]
    rounds = _rounds()
    relay: Figures | None = None
    ib: Figures | None = None
    plain = no_tso = 0.0
    with ExitStack() as stack:
        rpair = stack.enter_context(relay_running())
        ipair = stack.enter_context(ipoib_running(DEMO_HCAS))
        npair = stack.enter_context(ipoib_running(DEMO_HCAS, gro=False))
        tpair = stack.enter_context(ipoib_running(DEMO_HCAS, tso=False))
        for pair in (ipair, npair, tpair):
            ping(pair, 5)  # resolution (ARP, PathRecord, AH) happens here, not in the figures
        for _ in range(rounds):
            relay = _best(relay, measure(rpair))
            ib = _best(ib, measure(ipair))
            plain = max(plain, iperf_tcp(npair))
            no_tso = max(no_tso, iperf_tcp(tpair))
        rss_relay = peak_rss_mb(rpair.pid)
        rss8 = peak_rss_mb(ipair.pid)
    assert relay is not None and ib is not None
    big_note = f"VmHWM of fat_tree({BIG_HCAS}) after bring-up and a ping across leaves"
    try:
        with ipoib_running(BIG_HCAS) as big:
            ping(big, 5)
            rss64 = peak_rss_mb(big.pid)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        rss64 = float("nan")
        big_note = f"FAILED: {str(e).splitlines()[0]}"
    tcp = f"iperf3 TCP {IPERF_SECONDS:g} s"
    pings = f"{PING_COUNT} pings {PING_INTERVAL * 1000:g} ms apart"
    return [
        Result(f"{RELAY} {tcp}", relay.tcp_mbit_s, "Mbit/s", RELAY, relay.tcp_mbit_s,
               f"one stream, MTU 2044; best of {rounds} rounds"),
        Result(f"{IPOIB} {tcp}", ib.tcp_mbit_s, "Mbit/s", RELAY, relay.tcp_mbit_s,
               "hca-1 -> hca-8 across leaf, spine, leaf; goal >= 0.90x"),
        Result(f"{IPOIB} {tcp}, GRO off", plain, "Mbit/s", RELAY, relay.tcp_mbit_s,
               "the same with ipoib up --no-gro: every segment written on its own"),
        Result(f"{IPOIB} {tcp}, TSO off", no_tso, "Mbit/s", RELAY, relay.tcp_mbit_s,
               "the same with ipoib up --no-tso: every segment read on its own"),
        Result(f"{RELAY} ping RTT avg", relay.rtt_avg_ms * 1000, "us", RELAY,
               relay.rtt_avg_ms * 1000, pings),
        Result(f"{IPOIB} ping RTT avg", ib.rtt_avg_ms * 1000, "us", RELAY,
               relay.rtt_avg_ms * 1000, "goal <= 1.20x"),
        Result(f"{RELAY} ping RTT min", relay.rtt_min_ms * 1000, "us", RELAY,
               relay.rtt_min_ms * 1000),
        Result(f"{IPOIB} ping RTT min", ib.rtt_min_ms * 1000, "us", RELAY,
               relay.rtt_min_ms * 1000),
        Result(f"{RELAY} ping RTT avg, close", relay.rtt_close_avg_ms * 1000, "us", RELAY,
               relay.rtt_close_avg_ms * 1000,
               f"{CLOSE_COUNT} pings {CLOSE_INTERVAL * 1000:g} ms apart"),
        Result(f"{IPOIB} ping RTT avg, close", ib.rtt_close_avg_ms * 1000, "us", RELAY,
               relay.rtt_close_avg_ms * 1000, "the daemon's code still in the caches"),
        Result(f"{RELAY} peak RSS", rss_relay, "MiB", note="VmHWM of the relay process"),
        Result(f"{IPOIB} daemon peak RSS, {DEMO_HCAS} hosts", rss8, "MiB",
               note="VmHWM after the measurements"),
        Result(f"{IPOIB} daemon peak RSS, {BIG_HCAS} hosts", rss64, "MiB", note=big_note),
    ]
