"""LID assignment: OpenSM's order, honoured LIDs, conflicts, stability, guid2lid files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import topogen
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.lids import (
    MAX_UCAST_LID,
    LidFileError,
    assign_lids,
    claim_order,
    format_guid2lid,
    parse_guid2lid,
)
from ipoib.wire.enums import NodeType

from .fabrics import graph_of, net_2sw2path4hca

SWITCH1, SWITCH2 = 0x200000, 0x200001
HCA1, HCA2, HCA3, HCA4 = 0x100001, 0x100004, 0x100007, 0x10000A


def test_fresh_subnet_gets_opensm_lids() -> None:
    """The LIDs OpenSM 3.3.23 gave net.2sw2path4hca (shared/vectors/opensm/README.md)."""
    a = assign_lids(graph_of(net_2sw2path4hca()), sm_port_guid=SWITCH1)
    assert a.lids == {SWITCH1: 1, HCA1: 2, SWITCH2: 3, HCA2: 4, HCA3: 5, HCA4: 6}
    assert a.conflicts == [] and a.top == 6
    assert sorted(a.changed) == sorted(a.lids)  # every port had LID 0


def test_sm_port_claims_first() -> None:
    a = assign_lids(graph_of(net_2sw2path4hca()), sm_port_guid=HCA4)
    assert a.lids[HCA4] == 1
    assert sorted(a.lids.values()) == list(range(1, 7))
    assert claim_order([HCA1, HCA4, SWITCH1], HCA4) == [HCA4, SWITCH1, HCA1]


def test_port_lids_are_honoured_and_skipped() -> None:
    g = graph_of(net_2sw2path4hca())
    g.set_port(0x100003, 1, lid=1)  # Hca2 pre-assigned LID 1 (e.g. "# lid 1" in the file)
    g.set_port(0x200001, 0, lid=7)
    a = assign_lids(g, sm_port_guid=SWITCH1)
    assert a.lids[HCA2] == 1 and a.lids[SWITCH2] == 7
    assert a.lids[SWITCH1] == 2  # the SM port claims first, but 1 is taken
    assert sorted(a.lids.values()) == [1, 2, 3, 4, 5, 7]
    assert HCA2 not in a.changed and SWITCH2 not in a.changed


def test_duplicate_lid_first_claimant_keeps_it() -> None:
    g = graph_of(net_2sw2path4hca())
    g.set_port(0x100000, 1, lid=9)  # Hca1
    g.set_port(0x100009, 1, lid=9)  # Hca4: later in OpenSM's order
    a = assign_lids(g, sm_port_guid=SWITCH1)
    assert a.lids[HCA1] == 9
    assert a.lids[HCA4] != 9
    assert [(c.guid, c.lid, c.holder) for c in a.conflicts] == [(HCA4, 9, HCA1)]
    assert len(set(a.lids.values())) == 6


def test_invalid_port_lids_are_replaced() -> None:
    g = graph_of(net_2sw2path4hca())
    g.set_port(0x100000, 1, lid=0xC001)  # a multicast LID on a port
    a = assign_lids(g, sm_port_guid=SWITCH1)
    assert a.lids[HCA1] == 2 and HCA1 in a.changed


def test_previous_assignment_wins_and_is_stable() -> None:
    g = graph_of(topogen.fat_tree(108))
    first = assign_lids(g)
    # Another SM scribbled different LIDs on the ports; our record wins.
    for node, port in g.endports:
        g.set_port(node.guid, port.num, lid=first.lids[port.guid] % 50 + 1)
    again = assign_lids(g, first.lids)
    assert again.lids == first.lids
    # Ports now hold the assignment: a sweep without our record changes nothing.
    for node, port in g.endports:
        g.set_port(node.guid, port.num, lid=first.lids[port.guid])
    third = assign_lids(g)
    assert third.lids == first.lids and third.changed == [] and third.conflicts == []


def test_restart_from_guid2lid_text_with_new_discovery_order() -> None:
    topo = topogen.fat_tree(108)
    a = assign_lids(graph_of(topo))
    text = format_guid2lid(a.cache)
    # After a restart the fabric was reset (all LIDs 0), discovery started elsewhere, and a
    # new HCA port appeared: old ports keep their LIDs, the newcomer gets a free one.
    g = SubnetGraph.from_topology(topo, sm_node=topo.cas[-1].name)
    g.add_node(0xABC0, NodeType.CA, 1)
    g.set_port(0xABC0, 1, guid=0xABC1)
    b = assign_lids(g, parse_guid2lid(text), sm_port_guid=topo.cas[-1].port_guids[0])
    assert {k: v for k, v in b.lids.items() if k != 0xABC1} == a.lids
    assert b.lids[0xABC1] == max(a.lids.values()) + 1


def test_absent_ports_keep_their_reservation() -> None:
    g = graph_of(net_2sw2path4hca())
    previous = {0xDEAD: 1, HCA1: 2}
    a = assign_lids(g, previous, sm_port_guid=SWITCH1)
    assert 1 not in a.lids.values()
    assert a.cache[0xDEAD] == 1 and a.cache[HCA1] == 2
    # A present port's own LID beats the reservation of an absent one.
    g.set_port(0x100003, 1, lid=1)
    b = assign_lids(g, previous, sm_port_guid=SWITCH1)
    assert b.lids[HCA2] == 1 and 0xDEAD not in b.cache


def test_out_of_lids() -> None:
    g = graph_of(net_2sw2path4hca())
    taken = {0x9000000 + i: i for i in range(1, MAX_UCAST_LID + 1)}
    with pytest.raises(ValueError, match="out of unicast LIDs"):
        assign_lids(g, taken)


def test_guid2lid_format_is_opensms() -> None:
    text = format_guid2lid({0x100001: 2, 0x200000: 1})
    assert text == "0x0000000000100001 0x0002 0x0002\n\n0x0000000000200000 0x0001 0x0001\n\n"
    assert parse_guid2lid(text) == {0x100001: 2, 0x200000: 1}
    assert format_guid2lid({0x10: 4}, lmc=2) == "0x0000000000000010 0x0004 0x0007\n\n"


def test_guid2lid_accepts_decimal_comments_and_repeats() -> None:
    text = "# cache\n0x10 5 5\n\n16 0x6 0x6   # the same GUID again: the last wins\n"
    assert parse_guid2lid(text) == {0x10: 6}


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("0x10 1\n", 1, "<max LID>"),
        ("\n\n0xzz 1 1\n", 3, "port GUID"),
        ("0x10 one 1\n", 1, "min LID"),
        ("0x10 1 x\n", 1, "max LID"),
        ("0x0 1 1\n", 1, "non-zero 64-bit"),
        ("0x10000000000000000 1 1\n", 1, "non-zero 64-bit"),
        ("0x10 0 0\n", 1, "LIDs 1..0xbfff"),
        ("0x10 0xc000 0xc000\n", 1, "LIDs 1..0xbfff"),
        ("0x10 5 4\n", 1, "min <= max"),
        ("0x10 1 1 1\n", 1, "<max LID>"),
    ],
)
def test_guid2lid_errors_name_the_line(text: str, line: int, expected: str) -> None:
    with pytest.raises(LidFileError) as err:
        parse_guid2lid(text)
    assert err.value.line == line
    assert expected in str(err.value)


port_lids = st.lists(st.integers(0, 12) | st.just(0xC000), min_size=6, max_size=6)
prev_lids = st.dictionaries(
    st.sampled_from([SWITCH1, SWITCH2, HCA1, HCA2, HCA3, HCA4, 0x77]), st.integers(0, 12)
)


@settings(max_examples=200, deadline=None)
@given(port_lids, prev_lids)
def test_assignment_is_always_unique_and_respects_precedence(
    lids: list[int], previous: dict[int, int]
) -> None:
    g = graph_of(net_2sw2path4hca())
    ends = g.endports
    for (node, port), lid in zip(ends, lids, strict=True):
        g.set_port(node.guid, port.num, lid=lid)
    a = assign_lids(g, previous, sm_port_guid=SWITCH1)
    values = list(a.lids.values())
    assert len(values) == len(set(values)) == 6
    assert all(1 <= v <= MAX_UCAST_LID for v in values)
    # A present port's remembered LID is kept unless an earlier claimant had it.
    order = claim_order(a.lids, SWITCH1)
    winners: dict[int, int] = {}
    for guid in order:
        lid = previous.get(guid, 0)
        if 1 <= lid and lid not in winners:
            winners[lid] = guid
    for lid, guid in winners.items():
        assert a.lids[guid] == lid
    # A reserved LID of an absent port only goes to a port that held or remembered it.
    had = {port.guid: lid for (_n, port), lid in zip(ends, lids, strict=True)}
    reserved = previous.get(0x77, 0)
    for guid, lid in a.lids.items():
        if reserved and lid == reserved:
            assert had[guid] == lid or previous.get(guid) == lid
    # Re-running with the outcome as the record changes nothing.
    assert assign_lids(g, a.lids, sm_port_guid=SWITCH1).lids == a.lids
