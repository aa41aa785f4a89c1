"""The bare relay: the floor for real programs over our data path.

One Python process (``python -m ipoib.host.relay``) moves packets between two TUN devices in
two namespaces, with MTU 2044, through the same runtime loop as the ipoib daemon, doing no
work per packet. iperf3 TCP (5 s) and ping between the namespaces measure it; the ipoib data
path between two hosts is reported against these figures (throughput ratio, RTT ratio).

Needs root, iperf3 and ping. ``relay_running()`` and ``measure()`` are what another benchmark
uses to take the same figures over ipoib in the same run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.common import Result
from ipoib.host import netns
from ipoib.host.state import RUN_DIR_ENV, RunDir, cleanup

IPERF_SECONDS = 5.0
PING_COUNT = 50
PING_INTERVAL = 0.02
CLOSE_COUNT = 200
CLOSE_INTERVAL = 0.002
"""Pings close together: the daemon's code is still in the caches when the next one comes."""
RELAY = "bare relay"

_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


@dataclass(frozen=True)
class Pair:
    """Two hosts to measure between: the client's namespace, the server's and address."""

    client_ns: str
    server_ns: str
    server_addr: str
    pid: int
    """The process moving the packets (for its memory figure)."""


@dataclass(frozen=True)
class Figures:
    """What :func:`measure` takes: TCP throughput and ping round trips."""

    tcp_mbit_s: float
    rtt_avg_ms: float
    rtt_min_ms: float
    rtt_close_avg_ms: float
    """The average of :data:`CLOSE_COUNT` pings :data:`CLOSE_INTERVAL` apart."""


@contextmanager
def relay_running(mtu: int = 2044) -> Iterator[Pair]:
    """Run the bare relay in its own process and run directory; remove it all afterwards."""
    run_dir = tempfile.mkdtemp(prefix="ipoib-bench-")
    prefix = f"ipoib-bench{os.getpid()}-"
    env = {**os.environ, RUN_DIR_ENV: run_dir}
    proc = subprocess.Popen([sys.executable, "-m", "ipoib.host.relay", "--prefix", prefix,
                             "--mtu", str(mtu)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the relay exited before its links came up")
        rows = json.loads(line)["ready"]
        yield Pair(rows[0]["netns"], rows[1]["netns"], rows[1]["ipv4"].split("/")[0], proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        state = RunDir(run_dir).load()
        if state is not None:
            cleanup(state)
        shutil.rmtree(run_dir, ignore_errors=True)


def ping(pair: Pair, count: int = PING_COUNT,
         interval: float = PING_INTERVAL) -> tuple[float, float]:
    """(average, minimum) round trip in ms of ``count`` pings from client to server,
    ``interval`` seconds apart."""
    out = netns.popen(pair.client_ns, ["ping", "-n", "-q", "-c", str(count), "-i",
                                       str(interval), pair.server_addr],
                      stdout=subprocess.PIPE, text=True).communicate(timeout=60)[0]
    m = _RTT.search(out)
    if m is None:
        raise RuntimeError(f"ping gave no round trips:\n{out}")
    return float(m.group(2)), float(m.group(1))


def iperf_tcp(pair: Pair, seconds: float = IPERF_SECONDS) -> float:
    """Mbit/s received by an iperf3 server over ``seconds`` of one TCP stream."""
    server = netns.popen(pair.server_ns, ["iperf3", "-s", "-1", "-B", pair.server_addr],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            client = netns.popen(pair.client_ns, ["iperf3", "-c", pair.server_addr, "-t",
                                                  f"{seconds:g}", "-J"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            out = client.communicate(timeout=seconds + 30)[0]
            report = json.loads(out) if out.strip() else {}
            if "end" in report and "sum_received" in report["end"]:
                return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6
            time.sleep(0.1)  # the server was not listening yet
        raise RuntimeError(f"iperf3 failed: {report.get('error', out[:200])}")
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(pair: Pair) -> Figures:
    """Ping first (an idle path), then iperf3."""
    avg, low = ping(pair)
    close = ping(pair, CLOSE_COUNT, CLOSE_INTERVAL)[0]
    return Figures(iperf_tcp(pair), avg, low, close)


def run() -> list[Result]:
    """The relay's figures; every later data-path figure is a ratio to these."""
    missing = [t for t in ("iperf3", "ping") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        why = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
        return [Result(f"{RELAY} (skipped)", 0.0, "-", note=why)]
    with relay_running() as pair:
        f = measure(pair)
        rss = peak_rss_mb(pair.pid)
    return [
        Result(f"{RELAY} iperf3 TCP {IPERF_SECONDS:g} s", f.tcp_mbit_s, "Mbit/s", RELAY,
               f.tcp_mbit_s, "one stream, MTU 2044, two TUNs and one Python process"),
        Result(f"{RELAY} ping RTT avg", f.rtt_avg_ms * 1000, "us", RELAY,
               f.rtt_avg_ms * 1000, f"{PING_COUNT} pings {PING_INTERVAL * 1000:g} ms apart"),
        Result(f"{RELAY} ping RTT min", f.rtt_min_ms * 1000, "us", RELAY,
               f.rtt_min_ms * 1000),
        Result(f"{RELAY} ping RTT avg, close", f.rtt_close_avg_ms * 1000, "us", RELAY,
               f.rtt_close_avg_ms * 1000,
               f"{CLOSE_COUNT} pings {CLOSE_INTERVAL * 1000:g} ms apart"),
        Result(f"{RELAY} peak RSS", rss, "MiB", note="VmHWM of the relay process"),
    ]
