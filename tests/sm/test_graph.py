"""The discovered-subnet graph: what discovery writes and what the algorithms read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ipoib.fabric import netfile, topogen
from ipoib.sm.graph import SubnetGraph, opensm_order
from ipoib.wire.enums import NodeType, PortState

from .fabrics import graph_of, net_2sw2path4hca

NET_EXAMPLE = Path("/usr/share/doc/ibsim-utils/net-examples/net.2sw2path4hca")


def small() -> SubnetGraph:
    """A switch with two HCAs, built the way discovery would."""
    g = SubnetGraph()
    g.add_node(0x10, NodeType.SWITCH, 4, desc="sw", port_guid=0x10)
    g.add_node(0x20, NodeType.CA, 2, desc="a")
    g.add_node(0x30, NodeType.CA, 1, desc="b")
    g.set_port(0x20, 1, guid=0x21, port_state=PortState.ACTIVE)
    g.set_port(0x30, 1, guid=0x31)
    g.connect(0x10, 1, 0x20, 1)
    g.connect(0x10, 3, 0x30, 1)
    return g


def test_switch_has_port0_as_its_endport() -> None:
    g = small()
    assert g.node(0x10).ports[0].guid == 0x10
    ends = [(n.guid, p.num) for n, p in g.endports]
    assert ends == [(0x10, 0), (0x20, 1), (0x30, 1)]
    node, port = g.find_port(0x10) or (None, None)
    assert node is g.node(0x10) and port is not None and port.num == 0
    assert g.find_port(0x21) == (g.node(0x20), g.port(0x20, 1))
    assert g.find_port(0x99) is None


def test_connect_is_symmetric_and_replaces_old_links() -> None:
    g = small()
    assert g.port(0x20, 1).neighbour == (0x10, 1)
    assert list(g.neighbours(0x10)) == [(1, 0x20, 1), (3, 0x30, 1)]
    g.connect(0x10, 1, 0x30, 1)  # recabled: b moves to port 1, a is left dangling
    assert g.port(0x20, 1).neighbour is None
    assert g.port(0x10, 3).neighbour is None
    assert list(g.links()) == [(0x10, 1, 0x30, 1)]
    g.disconnect(0x30, 1)
    assert g.port(0x10, 1).neighbour is None and list(g.links()) == []


def test_links_listed_once_each() -> None:
    g = graph_of(net_2sw2path4hca())
    links = list(g.links())
    assert len(links) == 6
    assert len({frozenset([(a, p), (b, q)]) for a, p, b, q in links}) == 6


def test_remove_node_drops_cables_and_index() -> None:
    g = small()
    g.remove_node(0x20)
    assert 0x20 not in g and g.find_port(0x21) is None
    assert g.port(0x10, 1).neighbour is None
    assert [n.guid for n in g.cas] == [0x30]


def test_port_guid_change_reindexes() -> None:
    g = small()
    g.set_port(0x20, 1, guid=0x22)
    assert g.find_port(0x21) is None
    assert g.find_port(0x22) is not None


def test_bad_port_updates_are_refused() -> None:
    g = small()
    with pytest.raises(ValueError):
        g.set_port(0x30, 2)
    with pytest.raises(TypeError):
        g.set_port(0x30, 1, colour="red")


def test_node_type_change_replaces_the_node() -> None:
    g = small()
    g.add_node(0x30, NodeType.SWITCH, 8)
    assert g.node(0x30).is_switch and g.port(0x10, 3).neighbour is None
    assert g.find_port(0x31) is None


def test_attached_switch() -> None:
    g = small()
    assert g.attached_switch(0x20, 1) == (0x10, 1)
    g.disconnect(0x20, 1)
    assert g.attached_switch(0x20, 1) is None


def test_from_topology_matches_the_ibsim_example() -> None:
    g = graph_of(net_2sw2path4hca())
    assert [n.desc for n in g.switches] == ["Switch1", "Switch2"]
    assert len(g.cas) == 4
    # Only cabled CA ports are reached; switches have every port.
    assert sorted(g.node(0x100000).ports) == [1]
    assert sorted(g.node(0x200000).ports) == list(range(9))
    # DR paths from Switch1: Switch2 through the lower of the parallel links.
    assert g.port(0x200000, 0).dr_path == ()
    assert g.port(0x200001, 0).dr_path == (3,)
    assert g.port(0x100003, 1).dr_path == (3, 1)
    assert g.port(0x100000, 1).dr_path == (1,)


@pytest.mark.skipif(not NET_EXAMPLE.exists(), reason="ibsim examples not installed")
def test_real_net_file_gives_the_same_graph() -> None:
    a = graph_of(netfile.load(str(NET_EXAMPLE)))
    b = graph_of(net_2sw2path4hca())
    assert sorted(a.links()) == sorted(b.links())
    assert [p.guid for _n, p in a.endports] == [p.guid for _n, p in b.endports]


def test_dr_paths_from_a_ca() -> None:
    g = SubnetGraph.from_topology(net_2sw2path4hca(), sm_node="Hca2")
    assert g.port(0x100003, 1).dr_path == ()
    assert g.port(0x200001, 0).dr_path == (1,)
    assert g.port(0x200000, 0).dr_path == (1, 3)
    assert g.port(0x100006, 1).dr_path == (1, 3, 2)


def test_topology_lids_are_preassigned() -> None:
    topo = topogen.line(2, 1)
    spec = topo.cas[0]
    pre = dataclasses.replace(spec, lids={1: 42})
    topo = dataclasses.replace(topo, nodes=tuple(pre if n is spec else n for n in topo.nodes))
    g = graph_of(topo)
    assert g.port(spec.node_guid, 1).lid == 42


def test_opensm_order_is_byte_reversed() -> None:
    guids = [0x200000, 0x100001, 0x200001, 0x100004]
    # OpenSM walks this ibsim subnet as Switch1, Hca1, Switch2, Hca2 (LIDs 1, 2, 3, 4).
    assert sorted(guids, key=opensm_order) == [0x200000, 0x100001, 0x200001, 0x100004]
    assert opensm_order(1) == 1 << 56
