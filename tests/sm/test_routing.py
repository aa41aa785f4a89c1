"""Unicast routing: OpenSM's min-hop with balancing, up/down, LFT blocks.

The fast engine is checked against a plain transcription of OpenSM's rules (per-switch BFS,
then one LID at a time on the least-used min-hop port), on generated fat trees, rings, lines
and random subnets.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import topogen
from ipoib.sm.graph import SubnetGraph, opensm_order
from ipoib.sm.lids import assign_lids
from ipoib.sm.routing import (
    NO_ROUTE,
    RoutingError,
    lft_blocks,
    lft_size,
    linear_fdb_top,
    minhop,
    updn,
    updn_ranks,
    updn_roots,
)
from ipoib.sm.verify import credit_loop, verify_routes
from ipoib.wire.enums import NodeType

from .fabrics import graph_of, net_2sw2path4hca


def reference_minhop(graph: SubnetGraph, lids: Mapping[int, int]) -> dict[int, bytearray]:
    """OpenSM's minhop, written out plainly (slow, obviously right)."""
    switches = sorted(graph.switches, key=lambda n: opensm_order(n.guid))
    guids = [s.guid for s in switches]
    nbrs = {
        g: [(p, peer) for p, peer, _q in graph.neighbours(g) if graph.nodes[peer].is_switch]
        for g in guids
    }
    hops: dict[int, dict[int, int]] = {}
    for g in guids:
        dist = {g: 0}
        queue = [g]
        for v in queue:
            for _p, t in nbrs[v]:
                if t not in dist:
                    dist[t] = dist[v] + 1
                    queue.append(t)
        hops[g] = dist
    cas = {
        g: [(p, lids.get(graph.nodes[peer].ports[q].guid, 0))
            for p, peer, q in graph.neighbours(g) if not graph.nodes[peer].is_switch]
        for g in guids
    }
    order: list[tuple[int, int, int, bool]] = []  # (lid, destination switch, port there, CA?)
    for g in sorted(guids, key=lambda g: -len(cas[g])):  # stable: ties stay in table order
        order += [(lid, g, p, True) for p, lid in cas[g] if lid]
    for g in guids:
        lid = lids.get(graph.nodes[g].ports[0].guid, 0)
        if lid:
            order.append((lid, g, 0, False))
    size = lft_size(max(lids.values(), default=0))
    out = {}
    for s in guids:
        lft = bytearray([NO_ROUTE]) * size
        count: Counter[int] = Counter()
        for lid, dest, port, is_ca in order:
            if dest == s:
                chosen = port
            else:
                d = hops[s].get(dest)
                if d is None:
                    continue
                cands = sorted(p for p, t in nbrs[s] if hops[t].get(dest, -9) == d - 1)
                chosen = min(cands, key=lambda p: count[p])
            lft[lid] = chosen
            if is_ca:
                count[chosen] += 1
        out[s] = lft
    return out


def route(graph: SubnetGraph, algo: str = "minhop") -> tuple[dict[int, int], dict[int, bytearray]]:
    lids = assign_lids(graph).lids
    return lids, (minhop(graph, lids) if algo == "minhop" else updn(graph, lids))


# -- min-hop ------------------------------------------------------------------------------


def test_matches_opensm_lft_vector() -> None:
    """Switch1's block 0 as OpenSM 3.3.23 wrote it (wire-formats.md §4.9)."""
    g = graph_of(net_2sw2path4hca())
    lids = assign_lids(g, sm_port_guid=0x200000).lids
    lfts = minhop(g, lids)
    assert bytes(lfts[0x200000][:8]) == bytes.fromhex("ff 00 01 03 03 02 05 ff")
    assert lft_blocks(lfts[0x200000])[0] == (0, bytes(lfts[0x200000][:64]))
    assert len(lfts[0x200000]) == 64


@pytest.mark.parametrize(
    "topo",
    [
        topogen.fat_tree(8),
        topogen.fat_tree(108),
        topogen.fat_tree(100, levels=3, radix=8),
        topogen.ring(5, 2),
        topogen.ring(6, 3),
        topogen.line(4, 2),
        net_2sw2path4hca(),
    ],
    ids=lambda t: t.source,
)
def test_equals_the_reference(topo: object) -> None:
    g = graph_of(topo)  # type: ignore[arg-type]
    lids = assign_lids(g).lids
    assert minhop(g, lids) == reference_minhop(g, lids)


@st.composite
def random_subnets(draw: st.DrawFn) -> SubnetGraph:
    """Connected switch graphs with parallel links and HCAs hung anywhere."""
    n = draw(st.integers(1, 7))
    g = SubnetGraph()
    for i in range(n):
        g.add_node(0x200000 + i, NodeType.SWITCH, 12)
    free = {0x200000 + i: list(range(1, 13)) for i in range(n)}
    edges = [(draw(st.integers(0, i - 1)), i) for i in range(1, n)]
    edges += draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=8))
    for a, b in edges:
        ga, gb = 0x200000 + a, 0x200000 + b
        if a != b and free[ga] and free[gb]:
            g.connect(ga, free[ga].pop(0), gb, free[gb].pop(0))
    for h in range(draw(st.integers(0, 10))):
        sw = 0x200000 + draw(st.integers(0, n - 1))
        if free[sw]:
            guid = 0x100000 + 2 * h
            g.add_node(guid, NodeType.CA, 1)
            g.set_port(guid, 1, guid=guid + 1)
            g.connect(sw, free[sw].pop(draw(st.integers(0, len(free[sw]) - 1))), guid, 1)
    return g


@settings(max_examples=150, deadline=None)
@given(random_subnets())
def test_random_subnets_equal_the_reference_and_verify(g: SubnetGraph) -> None:
    lids = assign_lids(g).lids
    lfts = minhop(g, lids)
    assert lfts == reference_minhop(g, lids)
    report = verify_routes(g, lfts, lids)
    assert report.ok, (report.unreachable_examples, report.loop_examples)


def test_fat_tree_routes_are_shortest() -> None:
    g = graph_of(topogen.fat_tree(648))
    lids, lfts = route(g)
    report = verify_routes(g, lfts, lids)
    assert report.ok
    # 36 leaves x 18 HCAs: same leaf 2 links, other leaves 4; CA -> own leaf 1, other
    # leaves 3 (up, down, port 0), spines 2.
    pairs_same = 648 * 17
    assert report.hops == {1: 648, 2: pairs_same + 648 * 18, 3: 648 * 35, 4: 648 * 630}
    assert report.max_hops == 4


def uplink_load(g: SubnetGraph, lfts: Mapping[int, bytearray], lids: Mapping[int, int],
                leaf: int) -> Counter[int]:
    """CA LIDs of other leaves routed through each uplink of ``leaf``."""
    local = {lids[g.nodes[p].ports[q].guid] for _n, p, q in g.neighbours(leaf)
             if not g.nodes[p].is_switch}
    up = {n for n, p, _q in g.neighbours(leaf) if g.nodes[p].is_switch}
    load: Counter[int] = Counter({p: 0 for p in up})
    for node, port in g.endports:
        lid = lids[port.guid]
        if not node.is_switch and lid not in local:
            load[lfts[leaf][lid]] += 1
    return load


@pytest.mark.parametrize("algo", ["minhop", "updn"])
@pytest.mark.parametrize(
    "topo", [topogen.fat_tree(648), topogen.fat_tree(108), topogen.fat_tree(200, 3, 10)],
    ids=lambda t: t.source,
)
def test_balancing_spreads_lids_evenly_over_uplinks(topo: object, algo: str) -> None:
    g = graph_of(topo)  # type: ignore[arg-type]
    lids, lfts = route(g, algo)
    leaves = [s.guid for s in g.switches if s.desc.startswith("sw-l1")]
    for leaf in leaves:
        load = uplink_load(g, lfts, lids, leaf)
        assert set(load) <= {n for n, p, _q in g.neighbours(leaf) if g.nodes[p].is_switch}
        assert max(load.values()) - min(load.values()) <= 1, (leaf, load)


def test_parallel_links_share_the_load() -> None:
    """108 HCAs: 3 spines, 6 cables per leaf-spine pair; each cable carries its share."""
    g = graph_of(topogen.fat_tree(108))
    lids, lfts = route(g)
    for spine in (s for s in g.switches if s.desc.startswith("sw-l2")):
        by_leaf: dict[int, Counter[int]] = {}
        for port, leaf, _q in g.neighbours(spine.guid):
            by_leaf.setdefault(leaf, Counter())[port] = 0
        for leaf, load in by_leaf.items():
            for _p, ca, q in g.neighbours(leaf):
                if not g.nodes[ca].is_switch:
                    load[lfts[spine.guid][lids[g.nodes[ca].ports[q].guid]]] += 1
            assert len(load) == 6 and max(load.values()) - min(load.values()) <= 1


def test_switch_lids_go_to_port0_and_to_the_lowest_least_used_port() -> None:
    g = graph_of(net_2sw2path4hca())
    lids, lfts = route(g)
    assert lfts[0x200000][lids[0x200000]] == 0
    assert lfts[0x200001][lids[0x200001]] == 0
    assert lfts[0x200000][lids[0x200001]] in (3, 5)


def test_unreachable_destinations_are_dropped() -> None:
    g = graph_of(topogen.line(3, 1))
    sw1, sw2, sw3 = (s.guid for s in g.switches)
    g.disconnect(sw2, 3)  # sw-2 port 3 is the cable to sw-3 port 2
    lids, lfts = route(g)
    cut_off = [lids[p.guid] for n, p in g.endports
               if n.guid == sw3 or g.attached_switch(n.guid, p.num) == (sw3, 1)]
    assert len(cut_off) == 2
    for lid in cut_off:
        assert lfts[sw1][lid] == NO_ROUTE and lfts[sw2][lid] == NO_ROUTE
    report = verify_routes(g, lfts, lids)
    assert report.unreachable == 2 * 2 + 2 * 2 + 0 and report.loops == 0


def test_deterministic() -> None:
    topo = topogen.fat_tree(100, levels=3, radix=8)
    a = route(graph_of(topo))
    b = route(graph_of(topo))
    assert a == b


# -- up/down ------------------------------------------------------------------------------


def down_up_turns(g: SubnetGraph, lfts: Mapping[int, bytearray], lids: Mapping[int, int],
                  ranks: Mapping[int, int]) -> list[tuple[int, int]]:
    """(switch, DLID) where a route from a leaf goes down and then up again."""
    key = {s: (ranks[s], s) for s in ranks}
    link = {(s, p): peer for s in ranks for p, peer, _q in g.neighbours(s) if peer in ranks}
    leaves = {g.attached_switch(n.guid, p.num) for n, p in g.endports if not n.is_switch}
    bad = []
    for leaf in sorted(x[0] for x in leaves if x):
        for dlid in sorted(set(lids.values())):
            path = [leaf]
            while len(path) <= len(ranks):
                nxt = link.get((path[-1], lfts[path[-1]][dlid]))
                if nxt is None:
                    break
                path.append(nxt)
            went_down = False
            for a, b in itertools.pairwise(path):
                if key[b] > key[a]:
                    went_down = True
                elif went_down:
                    bad.append((a, dlid))
    return bad


def test_updn_roots_are_the_top_tier() -> None:
    for topo, tier in [(topogen.fat_tree(648), "sw-l2"), (topogen.fat_tree(200, 3, 10), "sw-l3")]:
        g = graph_of(topo)
        assert {g.nodes[r].desc.rsplit("-", 1)[0] for r in updn_roots(g)} == {tier}
        assert len(updn_roots(g)) == sum(s.desc.startswith(tier) for s in g.switches)


def test_updn_root_of_a_ring_is_one_switch() -> None:
    g = graph_of(topogen.ring(6, 1))
    assert updn_roots(g) == [min(s.guid for s in g.switches)]
    ranks = updn_ranks(g)
    assert sorted(ranks.values()) == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize(
    "topo",
    [topogen.ring(5, 2), topogen.ring(8, 1), topogen.fat_tree(200, 3, 10), topogen.line(4, 1),
     topogen.fat_tree(108)],
    ids=lambda t: t.source,
)
def test_updn_never_turns_down_then_up(topo: object) -> None:
    g = graph_of(topo)  # type: ignore[arg-type]
    lids, lfts = route(g, "updn")
    assert verify_routes(g, lfts, lids).ok
    assert down_up_turns(g, lfts, lids, updn_ranks(g)) == []
    assert credit_loop(g, lfts, lids) == []


def test_ring_minhop_has_a_credit_loop_updn_does_not() -> None:
    g = graph_of(topogen.ring(6, 1))
    lids = assign_lids(g).lids
    assert credit_loop(g, minhop(g, lids), lids) != []
    assert credit_loop(g, updn(g, lids), lids) == []


def test_updn_equals_minhop_for_ca_lids_on_fat_trees() -> None:
    g = graph_of(topogen.fat_tree(200, 3, 10))
    lids = assign_lids(g).lids
    a, b = minhop(g, lids), updn(g, lids)
    ca_lids = [lids[p.guid] for n, p in g.endports if not n.is_switch]
    for sw in a:
        assert [a[sw][lid] for lid in ca_lids] == [b[sw][lid] for lid in ca_lids]


def test_updn_with_given_roots() -> None:
    g = graph_of(topogen.ring(6, 1))
    root = max(s.guid for s in g.switches)
    lids = assign_lids(g).lids
    lfts = updn(g, lids, roots=[root])
    assert updn_ranks(g, [root])[root] == 0
    assert down_up_turns(g, lfts, lids, updn_ranks(g, [root])) == []
    with pytest.raises(RoutingError):
        updn(g, lids, roots=[0x1234])
    with pytest.raises(RoutingError):
        updn(g, lids, roots=[])


@settings(max_examples=100, deadline=None)
@given(random_subnets())
def test_updn_random_subnets_are_legal_and_loop_free(g: SubnetGraph) -> None:
    lids = assign_lids(g).lids
    lfts = updn(g, lids)
    report = verify_routes(g, lfts, lids)
    assert report.loops == 0
    assert down_up_turns(g, lfts, lids, updn_ranks(g)) == []
    assert credit_loop(g, lfts, lids) == []


# -- tables -------------------------------------------------------------------------------


def test_lft_blocks_and_top() -> None:
    lft = bytearray(range(130)) + bytearray([NO_ROUTE]) * 62
    assert linear_fdb_top({1: 5, 2: 129}) == 129 and linear_fdb_top({}) == 0
    assert lft_size(129) == 192 and lft_size(63) == 64 and lft_size(64) == 128
    blocks = lft_blocks(lft, top=129)
    assert [b for b, _d in blocks] == [0, 1, 2]
    assert blocks[2][1] == bytes([128, 129]) + b"\xff" * 62
    assert lft_blocks(lft, top=63) == [(0, bytes(range(64)))]
    old = bytearray(lft)
    old[70] = 1
    assert [b for b, _d in lft_blocks(lft, top=129, previous=old)] == [1]
    assert lft_blocks(bytes(10)) == [(0, bytes(10) + b"\xff" * 54)]


@pytest.mark.slow
@pytest.mark.parametrize("levels", [2, 3])
def test_ten_thousand_hcas(levels: int) -> None:
    g = graph_of(topogen.fat_tree(10000, levels=levels))
    lids = assign_lids(g).lids
    for lfts in (minhop(g, lids), updn(g, lids)):
        report = verify_routes(g, lfts, lids)
        assert report.ok and report.max_hops == 2 * levels
        for leaf in [s.guid for s in g.switches if s.desc.startswith("sw-l1")][::37]:
            load = uplink_load(g, lfts, lids, leaf)
            assert max(load.values()) - min(load.values()) <= 1
