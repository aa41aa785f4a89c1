"""``ipoib sweep``: bring a subnet up with the embedded SM and show what it did.

The topology is loaded into a fabric, the SM runs on one node's port (the first node unless
``--sm-node``) on a virtual clock until the subnet is up, and the result is checked by walking
the forwarding tables the switches now hold from every HCA to every LID
(:func:`ipoib.sm.verify.verify_routes`). The summary is meant for people studying routing:
what the SM sent, how long it took (wall clock), how far packets travel, and how evenly the
routing engine spread destination LIDs over the links between switches.

Exit status: 0 when every cabled port is ACTIVE and every HCA reaches every LID without a
loop; 1 otherwise; 2 for errors (a file that does not load, an unknown node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..cli import CliError
from ..fabric import netfile
from ..fabric.fabric import Fabric
from ..host.ibnet import collector_paused
from ..sm.agent import SmBinding, run_until
from ..sm.graph import SubnetGraph
from ..sm.manager import ROUTING_ENGINES, SmConfig, SubnetManager
from ..sm.verify import RouteReport, verify_routes
from ..wire.mad import Method
from ..wire.smp import SmpAttr

ATTR_NAMES = {
    SmpAttr.NODE_INFO: "NodeInfo", SmpAttr.NODE_DESCRIPTION: "NodeDescription",
    SmpAttr.PORT_INFO: "PortInfo", SmpAttr.SWITCH_INFO: "SwitchInfo",
    SmpAttr.P_KEY_TABLE: "P_KeyTable", SmpAttr.LINEAR_FORWARDING_TABLE: "LFT",
    SmpAttr.MULTICAST_FORWARDING_TABLE: "MFT", SmpAttr.SM_INFO: "SMInfo",
}
PROGRESS_AFTER = 1.0
"""Seconds of wall clock before the progress display appears."""
VIRTUAL_LIMIT = 3600.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sweep`` command."""
    p = sub.add_parser("sweep", help="bring a topology up with the embedded SM and check it")
    p.add_argument("topology", metavar="TOPOLOGY", help="ibnetdiscover/ibsim topology file")
    p.add_argument("--routing", choices=ROUTING_ENGINES, default="minhop",
                   help="routing engine (default: minhop)")
    p.add_argument("--sm-node", metavar="NODE", help="node the SM runs on (default: the first)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


@dataclass
class Balance:
    """Destination LIDs routed over each switch-to-switch port."""

    ports: int = 0
    low: int = 0
    high: int = 0
    mean: float = 0.0
    worst_switch: str = ""
    worst_spread: int = 0
    per_port: list[int] = field(default_factory=list)


class _Progress:
    """The stderr progress line, shown once bring-up has taken a second."""

    def __init__(self, sm: SubnetManager, start: float) -> None:
        self.sm = sm
        self.start = start
        self.shown = False
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.start < PROGRESS_AFTER or now - self.last < (0.2 if self.tty else 1.0):
            return
        self.last = now
        p = self.sm.progress()
        line = (f"ipoib sweep: {p.phase:<8} {p.nodes:>6} nodes discovered  "
                f"{p.smps_sent:>8} SMPs  {p.lft_blocks:>6} LFT blocks written  "
                f"{now - self.start:5.1f} s")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Load, bring up, verify, summarise."""
    try:
        topo = netfile.load(args.topology)
    except netfile.TopologyError as e:
        raise CliError(str(e)) from None
    if not topo.nodes:
        raise CliError(f"{args.topology}: no nodes")
    names = [n.name for n in topo.nodes]
    sm_node = args.sm_node or names[0]
    if sm_node not in names:
        raise CliError(f"--sm-node {sm_node!r}: no such node in {args.topology}")
    fabric = Fabric(topo)
    start = time.monotonic()
    with collector_paused():  # the fabric is built: freeze it, no collections until up
        binding = SmBinding(fabric, sm_node, config=SmConfig(routing=args.routing))
        progress = _Progress(binding.sm, start)
        binding.on_progress = progress
        binding.start(0.0)
        virtual = run_until(fabric, binding, lambda: binding.sm.subnet_up,
                            limit=VIRTUAL_LIMIT)
    wall = time.monotonic() - start
    progress.done()
    summary = summarise(topo.source, fabric, binding, args.routing, wall, virtual)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(render(summary)))
    return 0 if summary["ok"] else 1


def _fabric_state(fabric: Fabric, sm_node: str) -> tuple[SubnetGraph, dict[int, bytes],
                                                          dict[int, int]]:
    """The cabling as the topology says (down links removed), the LFTs and LIDs as held."""
    graph = SubnetGraph.from_topology(fabric.topology, sm_node)
    for node in fabric.nodes.values():
        for p in node.ports:
            if p.peer is not None and not p.up and p.num in graph.nodes[node.guid].ports:
                graph.disconnect(node.guid, p.num)
    lfts = {sw.guid: bytes(sw.lft[:sw.top + 1]) for sw in fabric.switches}
    lids: dict[int, int] = {}
    for node in fabric.nodes.values():
        for p in node.ports:
            if p.lid and (p.num == 0) == node.is_switch:
                lids[p.guid] = p.lid
    return graph, lfts, lids


def _levels(fabric: Fabric) -> dict[str, int]:
    """Switch name → links to the nearest HCA (leaves 0): what "up" means in a tree."""
    level: dict[str, int] = {}
    queue = []
    for sw in fabric.switches:
        if any(p.peer is not None and p.up and not p.peer.node.is_switch for p in sw.ports[1:]):
            level[sw.name] = 0
            queue.append(sw)
    for sw in queue:
        for p in sw.ports[1:]:
            peer = p.peer.node if p.peer is not None and p.up else None
            if peer is not None and peer.is_switch and peer.name not in level:
                level[peer.name] = level[sw.name] + 1
                queue.append(peer)  # type: ignore[arg-type]
    return level


def balance(fabric: Fabric, lids: dict[int, int]) -> Balance:
    """How many HCA LIDs each uplink carries, per the switches' LFTs.

    An uplink leads to a switch farther from the HCAs; where no port does (rings, meshes),
    every switch-to-switch port counts.
    """
    ca_lids = [p.lid for n in fabric.cas for p in n.ports if p.lid and p.num]
    level = _levels(fabric)
    out = Balance()
    for sw in fabric.switches:
        links = [p for p in sw.ports[1:] if p.peer is not None and p.up
                 and p.peer.node.is_switch]
        mine = level.get(sw.name, 0)
        uplinks = [p.num for p in links if level.get(p.peer.node.name, 0) > mine]  # type: ignore[union-attr]
        if not uplinks and not any(level.get(p.peer.node.name, 0) < mine for p in links):  # type: ignore[union-attr]
            uplinks = [p.num for p in links]
        if not uplinks:
            continue
        counts = Counter(sw.lft[lid] for lid in ca_lids if lid <= sw.top)
        here = [counts.get(num, 0) for num in uplinks]
        out.per_port += here
        spread = max(here) - min(here)
        if spread > out.worst_spread or not out.worst_switch:
            out.worst_switch, out.worst_spread = sw.name, spread
    if out.per_port:
        out.ports = len(out.per_port)
        out.low, out.high = min(out.per_port), max(out.per_port)
        out.mean = sum(out.per_port) / len(out.per_port)
    return out


def summarise(source: str, fabric: Fabric, binding: SmBinding, routing: str, wall: float,
              virtual: float) -> dict[str, Any]:
    """Everything the human and JSON outputs show."""
    sm = binding.sm
    graph, lfts, lids = _fabric_state(fabric, binding.node)
    report: RouteReport = verify_routes(graph, lfts, lids)
    linked = [p for n in fabric.nodes.values() for p in n.ports if p.peer is not None and p.up]
    active = sum(1 for p in linked if p.state == 4)
    hca_ports = [p for n in fabric.cas for p in n.ports[1:] if p.peer is not None and p.up]
    smps: Counter[str] = Counter()
    for (method, attr), n in sm.tx.stats.items():
        name = ATTR_NAMES[SmpAttr(attr)] if attr in ATTR_NAMES else f"attr {attr:#06x}"
        smps[f"{name} {'Set' if method == Method.SET else 'Get'}"] += n
    bal = balance(fabric, lids)
    ok = sm.subnet_up and active == len(linked) and report.ok
    return {
        "topology": source,
        "routing": routing,
        "sm_node": binding.node,
        "sm_port": binding.port_num,
        "sm_lid": sm.sm_lid,
        "subnet_up": sm.subnet_up,
        "time_to_up_s": round(wall, 4),
        "virtual_time_s": round(virtual, 4),
        "heavy_sweeps": sm.counters["heavy_sweeps"],
        "switches": len(fabric.switches),
        "hcas": len(fabric.cas),
        "hca_ports_active": sum(1 for p in hca_ports if p.state == 4),
        "hca_ports": len(hca_ports),
        "ports_active": active,
        "ports_linked": len(linked),
        "lids_assigned": len(sm.lids),
        "lid_range": [min(sm.lids.values(), default=0), max(sm.lids.values(), default=0)],
        "smps_sent": sm.tx.sent,
        "smps_by_attribute": dict(sorted(smps.items())),
        "smp_retries": sm.tx.counters["retries"],
        "smp_timeouts": sm.tx.counters["timeouts"],
        "routes": {
            "pairs": report.pairs, "unreachable": report.unreachable, "loops": report.loops,
            "hops": {str(k): v for k, v in sorted(report.hops.items())},
            "max_hops": report.max_hops,
            "unreachable_examples": [[f"{g:#018x}", lid]
                                     for g, lid in report.unreachable_examples],
            "loop_examples": [[f"{g:#018x}", lid] for g, lid in report.loop_examples],
        },
        "uplink_balance": {
            "ports": bal.ports, "min": bal.low, "max": bal.high, "mean": round(bal.mean, 2),
            "worst_switch": bal.worst_switch, "worst_spread": bal.worst_spread,
        },
        "ok": ok,
    }


def render(s: dict[str, Any]) -> list[str]:
    """The readable summary."""
    r = s["routes"]
    bal = s["uplink_balance"]
    port_kind = "port 0" if s["sm_port"] == 0 else f"port {s['sm_port']}"
    lo, hi = s["lid_range"]
    verdict = "OK" if s["ok"] else "PROBLEMS"
    up = "yes" if s["subnet_up"] else "NO"
    plural = "s" if s["heavy_sweeps"] != 1 else ""
    when = f"{up} after {s['time_to_up_s']:.3f} s ({s['heavy_sweeps']} heavy sweep{plural})"
    sm = f"{s['sm_node']} {port_kind}, LID {s['sm_lid']}, routing {s['routing']}"
    hcas = f"{s['hcas']} ({s['hca_ports_active']}/{s['hca_ports']} cabled ports ACTIVE)"
    sent = f"{s['smps_sent']:,} ({s['smp_retries']} retries, {s['smp_timeouts']} timeouts)"
    lines = [
        f"{s['topology']}: {verdict}",
        f"  SM                {sm}",
        f"  subnet up         {when}",
        f"  switches          {s['switches']}",
        f"  HCAs              {hcas}",
        f"  ports ACTIVE      {s['ports_active']}/{s['ports_linked']} cabled ports",
        f"  LIDs assigned     {s['lids_assigned']} ({lo}..{hi})",
        f"  SMPs sent         {sent}",
    ]
    for name, n in s["smps_by_attribute"].items():
        lines.append(f"    {name:<22} {n:>10,}")
    lines.append(f"  routes            {r['pairs']:,} HCA-to-LID pairs: "
                 f"{r['unreachable']} unreachable, {r['loops']} looping")
    total = sum(r["hops"].values()) or 1
    width = 40
    for hops, n in r["hops"].items():
        bar = "#" * max(1, round(width * n / total))
        lines.append(f"    {hops:>2} hops {n:>12,}  {bar}")
    for guid, lid in r["unreachable_examples"][:5]:
        lines.append(f"    unreachable: {guid} -> LID {lid}")
    for guid, lid in r["loop_examples"][:5]:
        lines.append(f"    loop: {guid} -> LID {lid}")
    if bal["ports"]:
        lines.append(f"  uplink balance    {bal['ports']} uplinks carry "
                     f"{bal['min']}..{bal['max']} HCA LIDs each (mean {bal['mean']:.1f}); "
                     f"widest spread {bal['worst_spread']} on {bal['worst_switch']}")
    return lines
