"""``ipoib demo``: the main job that ``make demo`` runs.

It brings up a small two-level fat tree (8 HCAs, 6 switches) with the embedded SM, pings
between two hosts on different leaf switches, shows the resolution that happened (ARP →
PathRecord → address handle: ``ipoib show neigh`` / ``path``), runs iperf3 TCP for a few
seconds, prints a summary and tears everything down. It drives the same command line a user
would, so what it shows is what a user gets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..fabric import netfile, topogen
from ..fabric.topology import Topology
from ..wire.enums import NodeType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    p = sub.add_parser("demo", help="run the demonstration (what `make demo` does)")
    p.add_argument("--hcas", type=int, default=8, help="HCAs in the fat tree (default 8)")
    p.add_argument("--seconds", type=int, default=3, help="iperf3 duration (default 3)")
    p.set_defaults(func=run)


def leaf_of(topo: Topology, hca: str) -> str:
    """The switch ``hca`` is cabled to."""
    for link in topo.links:
        if link.a == hca:
            return link.b
        if link.b == hca:
            return link.a
    raise ValueError(f"{hca} is not cabled")


def cross_leaf_pair(topo: Topology) -> tuple[str, str]:
    """The first HCA and the last one on another leaf switch (the demo's and the benchmark's
    pair: their packets cross leaf, spine, leaf)."""
    cas = [n.name for n in topo.nodes if n.kind == NodeType.CA]
    first = cas[0]
    for other in reversed(cas):
        if leaf_of(topo, other) != leaf_of(topo, first):
            return first, other
    return first, cas[-1]


class _Cli:
    """Runs ``ipoib`` subcommands with the demo's private run directory."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        p = subprocess.run([sys.executable, "-m", "ipoib", *args], env=self.env, text=True,
                           capture_output=True, timeout=timeout, check=False)
        if check and p.returncode != 0:
            raise RuntimeError(f"ipoib {' '.join(args)}: {(p.stderr or p.stdout).strip()}")
        return p.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))


def _say(text: str = "") -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    """Bring up, ping, iperf3, summarise, tear down."""
    if os.geteuid() != 0:
        print("ipoib demo: needs root (network namespaces and TUN devices)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ipoib-demo-"))
    env = dict(os.environ, IPOIB_RUN_DIR=str(tmp / "run"), IPOIB_NETNS_PREFIX="ipoib-demo-")
    cli = _Cli(env)
    topo = topogen.fat_tree(args.hcas)
    net = tmp / "fabric.net"
    net.write_text(netfile.dumps(topo))
    a, b = cross_leaf_pair(topo)
    t0 = time.monotonic()
    try:
        _say(f"== a two-level fat tree: {len(topo.switches)} switches, {len(topo.cas)} HCAs "
             f"({net})")
        _say(cli.run("up", str(net), "--detach").rstrip() + "\n")
        up_s = time.monotonic() - t0
        hosts = {h["host"]: h for h in cli.json("show", "hosts")}
        ip_b = str(hosts[b]["ipv4"]).split("/")[0]
        _say(f"== ping from {a} (leaf {leaf_of(topo, a)}) to {b} "
             f"(leaf {leaf_of(topo, b)}), {ip_b}")
        ping = cli.run("exec", a, "--", "ping", "-c", "5", "-i", "0.2", ip_b)
        _say(ping)
        _say(f"== what {a} resolved: the neighbour (ARP) and the path (PathRecord → AH)")
        _say("$ ipoib show neigh " + a)
        _say(cli.run("show", "neigh", a).rstrip() + "\n")
        _say("$ ipoib show path " + a)
        _say(cli.run("show", "path", a).rstrip() + "\n")
        _say(f"== iperf3 TCP, {args.seconds} s, {a} → {b}")
        server = subprocess.Popen([sys.executable, "-m", "ipoib", "exec", b, "--", "iperf3",
                                   "-s", "-1"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            out = ""
            for _ in range(20):  # the server needs a moment to listen
                time.sleep(0.2)
                p = subprocess.run([sys.executable, "-m", "ipoib", "exec", a, "--", "iperf3",
                                    "-c", ip_b, "-t", str(args.seconds), "-J"], env=env,
                                   text=True, capture_output=True, timeout=60, check=False)
                if p.returncode == 0:
                    out = p.stdout
                    break
        finally:
            server.wait(timeout=10) if out else server.kill()
        gbps = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9 if out else 0.0
        _say(f"received {gbps:.2f} Gbit/s")
        sa = cli.json("show", "sa")
        queries = sum(v.get("sent_path", 0) for v in sa.values())
        rtt = re.search(r"= [\d.]+/([\d.]+)/", ping)
        _say()
        _say("== summary")
        _say(f"  bring-up (SM sweep, joins, carrier on {len(hosts)} hosts): {up_s:.1f} s")
        _say(f"  ping {a} → {b}: avg RTT {rtt.group(1) if rtt else '?'} ms")
        _say(f"  iperf3 TCP: {gbps:.2f} Gbit/s")
        _say(f"  PathRecord queries issued by all hosts: {queries}")
        return 0 if out and rtt else 1
    finally:
        cli.run("down", check=False)
        _say(f"== torn down ({time.monotonic() - t0:.1f} s in all)")
