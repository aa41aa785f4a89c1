"""A picture of a fabric: the topology as a Graphviz graph (``ipoib topo show --svg``).

Switches are boxes, HCAs ellipses; each cable is an edge labelled with its two port numbers.
Given the LIDs an SM assigned, every node shows them. The output is DOT text; ``dot -Tsvg``
turns it into the picture (graphviz is one of the Debian packages the project installs).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..wire.enums import NodeType
from .topology import Topology


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _levels(topology: Topology) -> dict[str, int]:
    """Distance of every node from the nearest HCA (HCAs 0, leaf switches 1, spines 2, ...)."""
    adj: dict[str, list[str]] = {n.name: [] for n in topology.nodes}
    for link in topology.links:
        adj[link.a].append(link.b)
        adj[link.b].append(link.a)
    level = {n.name: 0 for n in topology.nodes if n.kind != NodeType.SWITCH}
    frontier = list(level)
    while frontier:
        nxt = []
        for name in frontier:
            for peer in adj[name]:
                if peer not in level:
                    level[peer] = level[name] + 1
                    nxt.append(peer)
        frontier = nxt
    for n in topology.nodes:  # switches with no HCA anywhere below them
        level.setdefault(n.name, 1)
    return level


def to_dot(topology: Topology, lids: Mapping[int, int] | None = None) -> str:
    """DOT text for ``topology``; ``lids`` maps port GUIDs to LIDs (optional)."""
    lines = ["graph fabric {", '  graph [rankdir=BT, splines=true, fontname="sans"];',
             '  node [fontname="sans", fontsize=10];', '  edge [fontname="sans", fontsize=8];']
    for n in topology.nodes:
        label = n.description
        if lids:
            ports = [0] if n.kind == NodeType.SWITCH else range(1, n.nports + 1)
            got = [lids[n.port_guid(p)] for p in ports if n.port_guid(p) in lids]
            if got:
                label += "\nLID " + ",".join(str(x) for x in got)
        shape = "box" if n.kind == NodeType.SWITCH else "ellipse"
        style = ', style=filled, fillcolor="#dde8f5"' if n.kind == NodeType.SWITCH else ""
        lines.append(f"  {_quote(n.name)} [label={_quote(label)}, shape={shape}{style}];")
    level = _levels(topology)
    by_level: dict[int, list[str]] = {}
    for name, lv in level.items():
        by_level.setdefault(lv, []).append(name)
    for lv in sorted(by_level):
        lines.append("  { rank=same; " + " ".join(_quote(n) for n in by_level[lv]) + " }")
    for link in topology.links:  # lower level first: dot ranks tails below heads (BT)
        a, ap, b, bp = link.a, link.a_port, link.b, link.b_port
        if level[a] > level[b]:
            a, ap, b, bp = b, bp, a, ap
        lines.append(f'  {_quote(a)} -- {_quote(b)} [taillabel="{ap}", headlabel="{bp}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
