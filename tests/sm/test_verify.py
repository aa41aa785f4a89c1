"""The LFT walker: it must find every broken route a bad table can make."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import topogen
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.lids import assign_lids
from ipoib.sm.routing import NO_ROUTE, minhop
from ipoib.sm.verify import credit_loop, trace, verify_routes
from ipoib.wire.enums import NodeType

from .fabrics import graph_of, net_2sw2path4hca

SW1, SW2 = 0x200000, 0x200001


def routed(topo: object) -> tuple[SubnetGraph, dict[int, int], dict[int, bytearray]]:
    g = graph_of(topo)  # type: ignore[arg-type]
    lids = assign_lids(g, sm_port_guid=g.switches[0].guid).lids
    return g, lids, minhop(g, lids)


def test_healthy_subnet() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    r = verify_routes(g, lfts, lids)
    assert r.ok and r.sources == 4 and r.destinations == 6
    assert r.pairs == 4 * 5  # every HCA to every other LID
    # Hca1: own switch 1, Hca3 2, Switch2 2, Hca2/Hca4 3.
    assert r.hops == {1: 4, 2: 8, 3: 8} and r.max_hops == 3


def test_dropped_entry_is_counted_per_source() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    hca2 = lids[0x100004]
    lfts[SW1][hca2] = NO_ROUTE  # Switch1 no longer knows Hca2
    r = verify_routes(g, lfts, lids)
    assert r.unreachable == 2 and r.loops == 0  # from Hca1 and Hca3
    assert sorted(r.unreachable_examples) == [(0x100001, hca2), (0x100007, hca2)]


def test_wrong_port_is_not_a_delivery() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    hca4 = lids[0x10000A]
    lfts[SW2][hca4] = 1  # Hca2's port: a packet for Hca4 lands on the wrong HCA
    r = verify_routes(g, lfts, lids)
    assert r.unreachable == 3  # from Hca1, Hca2, Hca3
    lfts[SW2][hca4] = 7  # an uncabled port
    assert verify_routes(g, lfts, lids).unreachable == 3
    lfts[SW2][hca4] = 0  # port 0 is the switch itself, not Hca4
    assert verify_routes(g, lfts, lids).unreachable == 3


def test_loop_between_switches() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    hca4 = lids[0x10000A]
    lfts[SW2][hca4] = 3  # back to Switch1, which sends it over again
    r = verify_routes(g, lfts, lids)
    assert r.loops == 3 and r.unreachable == 0 and not r.ok
    assert {src for src, _d in r.loop_examples} == {0x100001, 0x100004, 0x100007}
    t = trace(g, lfts, lids, (0x100000, 1), hca4)
    assert t.outcome == "loop" and t.hops[:2] == ((SW1, lfts[SW1][hca4]), (SW2, 3))


def test_short_lft_drops_high_lids() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    lfts[SW1] = lfts[SW1][:4]  # LinearFDBTop below LID 4: Hca2 (4), Hca3 (5), Hca4 (6)
    r = verify_routes(g, lfts, lids)
    # Everything entering Switch1 for LIDs 4..6: Hca1 to 4, 5, 6; Hca3 to 4, 6; Hca2 and
    # Hca4 to Hca3 (5).
    assert r.unreachable == 3 + 2 + 1 + 1


def test_trace_follows_the_tables() -> None:
    g, lids, lfts = routed(net_2sw2path4hca())
    t = trace(g, lfts, lids, (0x100000, 1), lids[0x10000A])
    assert t.outcome == "delivered"
    assert t.hops == ((SW1, 5), (SW2, 2))
    assert trace(g, lfts, lids, (SW1, 0), lids[SW2]) == trace(g, lfts, lids, (SW1, 0), 3)
    assert trace(g, lfts, lids, (SW1, 0), lids[SW1]).hops == ((SW1, 0),)
    assert trace(g, lfts, lids, (SW1, 0), 999).outcome == "dropped"


def test_limit_caps_examples_not_counts() -> None:
    g, lids, lfts = routed(topogen.fat_tree(108))
    leaf = g.switches[0].guid
    for lid in range(1, len(lfts[leaf])):
        if lfts[leaf][lid] > 18:
            lfts[leaf][lid] = NO_ROUTE  # the leaf loses every uplink route
    r = verify_routes(g, lfts, lids, limit=5)
    assert len(r.unreachable_examples) == 5
    # 18 HCAs x (90 HCAs on other leaves + 5 other leaves + 3 spines)
    assert r.unreachable == 18 * (90 + 5 + 3)


def test_back_to_back_hcas_need_no_switch() -> None:
    g = SubnetGraph()
    for guid in (0x10, 0x20):
        g.add_node(guid, NodeType.CA, 1)
        g.set_port(guid, 1, guid=guid + 1)
    g.connect(0x10, 1, 0x20, 1)
    lids = assign_lids(g).lids
    r = verify_routes(g, {}, lids)
    assert r.ok and r.pairs == 2 and r.hops == {1: 2}
    g.disconnect(0x10, 1)
    assert verify_routes(g, {}, lids).unreachable == 2


def test_credit_loop_on_a_ring() -> None:
    g, lids, lfts = routed(topogen.ring(4, 1))
    cycle = credit_loop(g, lfts, lids)
    assert len(cycle) >= 3
    sws = {s.guid for s in g.switches}
    assert all(s in sws for s, _p in cycle)
    g2, lids2, lfts2 = routed(topogen.line(4, 1))
    assert credit_loop(g2, lfts2, lids2) == []


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_damage_agrees_with_packet_traces(data: st.DataObject) -> None:
    """Break one LFT entry: the memoised walk must count exactly what per-packet traces see."""
    g, lids, lfts = routed(topogen.fat_tree(24, radix=8))
    assert verify_routes(g, lfts, lids).ok
    sw = data.draw(st.sampled_from(sorted(lfts)))
    lid = data.draw(st.sampled_from(sorted(set(lids.values()))))
    lfts[sw][lid] = data.draw(st.integers(0, 255))
    report = verify_routes(g, lfts, lids)
    outcomes = [
        trace(g, lfts, lids, (n.guid, p.num), dlid).outcome
        for n, p in g.endports if not n.is_switch
        for dlid in sorted(set(lids.values())) if dlid != lids[p.guid]
    ]
    assert report.pairs == len(outcomes)
    assert report.loops == outcomes.count("loop")
    assert report.unreachable == outcomes.count("dropped")


@pytest.mark.slow
def test_ten_thousand_hcas_verify() -> None:
    g, lids, lfts = routed(topogen.fat_tree(10000))
    r = verify_routes(g, lfts, lids)
    assert r.ok and r.pairs == 10000 * (10000 - 1 + 211)
