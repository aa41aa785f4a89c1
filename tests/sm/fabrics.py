"""Subnets for SM tests: generated fat trees, rings and lines come from
:mod:`ipoib.fabric.topogen`; this adds the ibsim example the OpenSM vectors were taken on,
and a helper that turns any topology into the graph a perfect discovery would build.
"""

from __future__ import annotations

from ipoib.fabric.topology import Link, NodeSpec, Topology
from ipoib.sm.graph import SubnetGraph
from ipoib.wire.enums import NodeType


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
