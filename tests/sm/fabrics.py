"""Topologies for SM tests and benchmarks, numbered like ibsim (ibsim-protocol.md §14).

Switches get node GUIDs 0x200000, 0x200001, ...; single-port HCAs 0x100000, 0x100002, ...
with port GUID node + 1. ``clos`` builds folded-Clos fat trees the way the ibsim bring-up
figures describe them: every leaf has H HCAs and H uplinks spread evenly over the next tier.
"""

from __future__ import annotations

from ipoib.fabric.topology import Link, NodeSpec, Topology
from ipoib.sm.graph import SubnetGraph
from ipoib.wire.enums import NodeType


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.links: list[Link] = []
        self.next_port: dict[str, int] = {}
        self._sw = 0x200000
        self._ca = 0x100000

    def switch(self, name: str, nports: int, lid: int = 0) -> str:
        guid = self._sw
        self._sw += 1
        self.nodes.append(
            NodeSpec(NodeType.SWITCH, name, nports, guid, guid, (guid,), lids={0: lid} if lid else {})
        )
        self.next_port[name] = 1
        return name

    def hca(self, name: str, lid: int = 0) -> str:
        guid = self._ca
        self._ca += 2
        self.nodes.append(
            NodeSpec(NodeType.CA, name, 1, guid, guid, (guid + 1,), lids={1: lid} if lid else {})
        )
        self.next_port[name] = 1
        return name

    def cable(self, a: str, b: str, a_port: int | None = None, b_port: int | None = None) -> None:
        pa = self.next_port[a] if a_port is None else a_port
        pb = self.next_port[b] if b_port is None else b_port
        self.next_port[a] = max(self.next_port[a], pa + 1)
        self.next_port[b] = max(self.next_port[b], pb + 1)
        self.links.append(Link(a, pa, b, pb))

    def done(self) -> Topology:
        return Topology(tuple(self.nodes), tuple(self.links))


def clos(hcas: int, radix: int = 36, levels: int = 2, spread: int | None = None) -> Topology:
    """A folded-Clos fat tree of ``radix``-port switches with about ``hcas`` HCAs.

    Two levels: leaves of radix/2 HCAs and radix/2 uplinks, ``spread`` spines (default
    radix/2) sharing each leaf's uplinks evenly. Three levels: pods of radix/2 leaves and
    radix/2 middle switches, and (radix/2)^2 top switches, each reaching one middle switch of
    every pod. The first node is a leaf, so the SM sits at the edge as it usually does.
    """
    half = radix // 2
    nleaves = -(-hcas // half)
    b = _Builder()
    leaves = [b.switch(f"leaf{i}", radix) for i in range(nleaves)]
    placed = 0
    for leaf in leaves:
        for _ in range(min(half, hcas - placed)):
            b.cable(leaf, b.hca(f"hca{placed}"))
            placed += 1
        b.next_port[leaf] = half + 1
    if levels == 2:
        nspines = spread or half
        width = max(radix, nleaves * (half // nspines))
        spines = [b.switch(f"spine{j}", width) for j in range(nspines)]
        for leaf in leaves:
            for u in range(half):
                b.cable(leaf, spines[u % nspines])
        return b.done()
    if levels != 3:
        raise ValueError("levels must be 2 or 3")
    pods = -(-nleaves // half)
    mids = [[b.switch(f"mid{p}.{j}", radix) for j in range(half)] for p in range(pods)]
    tops = [[b.switch(f"top{j}.{c}", max(radix, pods)) for c in range(half)] for j in range(half)]
    for i, leaf in enumerate(leaves):
        for j in range(half):
            b.cable(leaf, mids[i // half][j])
    for p in range(pods):
        for j in range(half):
            b.next_port[mids[p][j]] = half + 1
            for c in range(half):
                b.cable(mids[p][j], tops[j][c])
    return b.done()


def ring(nswitches: int, hcas_per_switch: int = 1, radix: int = 8) -> Topology:
    """Switches in a ring (port 1 to the next, port 2 to the previous), HCAs from port 3."""
    b = _Builder()
    sws = [b.switch(f"sw{i}", radix) for i in range(nswitches)]
    for i in range(nswitches):
        if nswitches > 1 and not (nswitches == 2 and i == 1):
            b.cable(sws[i], sws[(i + 1) % nswitches], 1, 2)
    for i, sw in enumerate(sws):
        for h in range(hcas_per_switch):
            b.cable(sw, b.hca(f"hca{i}.{h}"), 3 + h, 1)
    return b.done()


def line(nswitches: int, hcas_per_switch: int = 1, radix: int = 8) -> Topology:
    """Switches in a line (port 1 to the next, port 2 to the previous), HCAs from port 3."""
    b = _Builder()
    sws = [b.switch(f"sw{i}", radix) for i in range(nswitches)]
    for i in range(nswitches - 1):
        b.cable(sws[i], sws[i + 1], 1, 2)
    for i, sw in enumerate(sws):
        for h in range(hcas_per_switch):
            b.cable(sw, b.hca(f"hca{i}.{h}"), 3 + h, 1)
    return b.done()


def net_2sw2path4hca() -> Topology:
    """ibsim's example ``net.2sw2path4hca`` (see shared/vectors/opensm/README.md), 2-port HCAs."""
    nodes = (
        NodeSpec(NodeType.SWITCH, "Switch1", 8, 0x200000, 0x200000, (0x200000,)),
        NodeSpec(NodeType.SWITCH, "Switch2", 8, 0x200001, 0x200001, (0x200001,)),
        NodeSpec(NodeType.CA, "Hca1", 2, 0x100000, 0x100000, (0x100001, 0x100002)),
        NodeSpec(NodeType.CA, "Hca2", 2, 0x100003, 0x100003, (0x100004, 0x100005)),
        NodeSpec(NodeType.CA, "Hca3", 2, 0x100006, 0x100006, (0x100007, 0x100008)),
        NodeSpec(NodeType.CA, "Hca4", 2, 0x100009, 0x100009, (0x10000A, 0x10000B)),
    )
    links = (
        Link("Switch1", 1, "Hca1", 1),
        Link("Switch1", 2, "Hca3", 1),
        Link("Switch1", 3, "Switch2", 3),
        Link("Switch1", 5, "Switch2", 5),
        Link("Switch2", 1, "Hca2", 1),
        Link("Switch2", 2, "Hca4", 1),
    )
    return Topology(nodes, links)


def graph_of(topo: Topology) -> SubnetGraph:
    """The graph a perfect discovery from the first node would build."""
    return SubnetGraph.from_topology(topo)
