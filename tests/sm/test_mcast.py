"""Multicast trees: replicate packets through the masks and check who receives them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import topogen
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.mcast import (
    McastPlanner,
    build_tree,
    check_mlid,
    mask_changes,
    mft_attr_mod,
    mft_blocks,
    mft_location,
    mft_table,
    positions,
)
from ipoib.wire.enums import NodeType

from .fabrics import graph_of, net_2sw2path4hca

Member = tuple[int, int]


def replicate(g: SubnetGraph, masks: Mapping[int, int], sender: Member) -> Counter[Member]:
    """Endports that receive one packet sent by ``sender``, with how many copies each.

    Switches forward to every port of the group's mask except the one the packet came in
    on (IBA 18.2.4.3.3); a switch seeing the same packet twice means a loop.
    """
    got: Counter[Member] = Counter()
    node = g.nodes[sender[0]]
    if node.is_switch:
        queue = [(sender[0], 0)]
    else:
        peer = node.ports[sender[1]].neighbour
        assert peer is not None
        queue = [peer]
    visits: Counter[int] = Counter()
    for sw, inport in queue:
        visits[sw] += 1
        assert visits[sw] == 1, f"switch {sw:#x} saw the packet twice"
        mask = masks.get(sw, 0) & ~(1 << inport)
        for port in range(g.nodes[sw].nports + 1):
            if not mask >> port & 1:
                continue
            if port == 0:
                got[(sw, 0)] += 1
                continue
            peer = g.nodes[sw].ports[port].neighbour
            assert peer is not None, f"mask of {sw:#x} names uncabled port {port}"
            if g.nodes[peer[0]].is_switch:
                queue.append(peer)
            else:
                got[peer] += 1
    return got


def assert_delivers(g: SubnetGraph, masks: Mapping[int, int], members: list[Member]) -> None:
    for sender in members:
        got = replicate(g, masks, sender)
        assert set(got) == set(members) - {sender}, sender
        assert set(got.values()) <= {1}


def ca_ports(g: SubnetGraph) -> list[Member]:
    return [(n.guid, p.num) for n, p in g.endports if not n.is_switch]


def test_matches_what_opensm_programmed() -> None:
    """Hca3 and Hca4 joined on net.2sw2path4hca: OpenSM wrote mask 0x000C on both switches."""
    g = graph_of(net_2sw2path4hca())
    tree = build_tree(g, [(0x100006, 1), (0x100009, 1)])
    assert tree.root == 0x200000
    assert tree.masks == {0x200000: 0x000C, 0x200001: 0x000C}
    assert tree.unreachable == ()


def test_one_member_is_nothing_to_do() -> None:
    g = graph_of(net_2sw2path4hca())
    assert build_tree(g, [(0x100006, 1)]).masks == {}
    assert build_tree(g, [(0x100006, 1), (0x100006, 1)]).masks == {}
    assert build_tree(g, []).masks == {}


def test_members_on_one_leaf_stay_on_it() -> None:
    g = graph_of(topogen.fat_tree(108))
    members = ca_ports(g)[:3]
    tree = build_tree(g, members)
    assert tree.root is not None and list(tree.masks) == [tree.root]
    assert tree.masks[tree.root] == 0b1110
    assert_delivers(g, tree.masks, members)


def test_root_is_central() -> None:
    g = graph_of(topogen.fat_tree(648))
    tree = build_tree(g, ca_ports(g))
    assert g.nodes[tree.root or 0].desc.startswith("sw-l2")  # a spine: 2 links to everyone
    assert len(tree.masks) == 37  # every leaf and one spine
    assert_delivers(g, tree.masks, ca_ports(g))
    subset = ca_ports(g)[::50]
    assert_delivers(g, build_tree(g, subset).masks, subset)


def test_switch_port0_members() -> None:
    g = graph_of(topogen.fat_tree(108))
    spine = next(s.guid for s in g.switches if s.desc.startswith("sw-l2"))
    members = [(spine, 0), ca_ports(g)[0], ca_ports(g)[-1]]
    tree = build_tree(g, members)
    assert tree.masks[spine] & 1
    assert_delivers(g, tree.masks, members)


@pytest.mark.parametrize(
    "topo",
    [topogen.fat_tree(108), topogen.fat_tree(100, 3, 8), topogen.ring(7, 2), topogen.line(5, 2),
     net_2sw2path4hca()],
    ids=lambda t: t.source,
)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_groups_deliver_to_members_only(topo: object, data: st.DataObject) -> None:
    g = graph_of(topo)  # type: ignore[arg-type]
    ports = ca_ports(g) + [(s.guid, 0) for s in g.switches]
    members = data.draw(st.lists(st.sampled_from(ports), min_size=2, max_size=12, unique=True))
    tree = McastPlanner(g).tree(members)
    assert_delivers(g, tree.masks, members)


def test_join_and_leave_recompute_with_one_planner() -> None:
    g = graph_of(topogen.fat_tree(100, 3, 8))
    planner = McastPlanner(g)
    cas = ca_ports(g)
    members: list[Member] = []
    old: dict[int, int] = {}
    for step, port in enumerate(cas[::7] + cas[3::11]):
        if port in members:
            members.remove(port)
        else:
            members.append(port)
        tree = planner.tree(members)
        if len(members) >= 2:
            assert_delivers(g, tree.masks, members)
        change = mask_changes(old, tree.masks)
        rebuilt = {**old, **change}
        assert {k: v for k, v in rebuilt.items() if v} == tree.masks, step
        old = tree.masks
    for port in list(members):
        members.remove(port)
        tree = planner.tree(members)
    assert tree.masks == {} and mask_changes(old, tree.masks) == {k: 0 for k in old if old[k]}


def test_unreachable_members_are_reported() -> None:
    g = graph_of(topogen.line(3, 1))
    _sw1, sw2, sw3 = (s.guid for s in g.switches)
    g.add_node(0xAB00, NodeType.CA, 1)
    g.set_port(0xAB00, 1, guid=0xAB01)  # never cabled
    g.disconnect(sw2, 3)  # sw-3 is cut off
    on3 = next((n.guid, p.num) for n, p in g.endports
               if not n.is_switch and g.attached_switch(n.guid, p.num) == (sw3, 1))
    members = [m for m in ca_ports(g) if m != (0xAB00, 1)]
    tree = build_tree(g, [*members, (0xAB00, 1)])
    assert set(tree.unreachable) == {(0xAB00, 1), on3}
    reachable = [m for m in members if m != on3]
    assert_delivers(g, tree.masks, reachable)
    assert sw3 not in tree.masks


def test_forced_root() -> None:
    g = graph_of(topogen.fat_tree(108))
    leaf = g.switches[0].guid
    members = ca_ports(g)[::20]
    tree = build_tree(g, members, root=leaf)
    assert tree.root == leaf
    assert_delivers(g, tree.masks, members)


def test_mft_layout() -> None:
    """wire-formats.md §4.10: entry i of block b is MLID 0xC000 + 32 b + i."""
    assert mft_location(0xC000) == (0, 0)
    assert mft_location(0xC021) == (1, 1)
    assert mft_location(0xFFFE) == (511, 30)
    assert mft_attr_mod(2, 5) == 0x2000_0005
    assert positions(8) == 1 and positions(15) == 1 and positions(16) == 2 and positions(36) == 3
    mask = 1 << 2 | 1 << 17 | 1 << 35
    assert mft_blocks(0xC000, mask, 36) == [(0, 0, 0, 0x0004), (1, 0, 0, 0x0002),
                                            (2, 0, 0, 0x0008)]
    table = mft_table({0xC000: 0x000C, 0xC001: 0x0003, 0xC020: 0x0010}, 8)
    assert table == {(0, 0): (0x000C, 0x0003) + (0,) * 30, (0, 1): (0x0010,) + (0,) * 31}
    for bad in (0xBFFF, 0xFFFF, 0):
        with pytest.raises(ValueError):
            check_mlid(bad)
    with pytest.raises(ValueError):
        mft_attr_mod(16, 0)
