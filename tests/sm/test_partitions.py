"""partitions.conf: parsing, OpenSM's membership rules, P_Key tables, broadcast groups."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.sm.partitions import (
    DEFAULT_PKEY,
    IPOIB_QKEY,
    IpoibGroup,
    PartitionsError,
    parse_partitions,
    place_pkeys,
    plan_partitions,
)

from .fabrics import graph_of, net_2sw2path4hca

SW1, SW2 = 0x200000, 0x200001
HCA1, HCA2, HCA3, HCA4 = 0x100001, 0x100004, 0x100007, 0x10000A
CAS = [HCA1, HCA2, HCA3, HCA4]
ALL = [SW1, SW2, *CAS]


def plan(text: str | None, qos: bool = False):  # type: ignore[no-untyped-def]
    return plan_partitions(text, graph_of(net_2sw2path4hca()), SW1, qos=qos)


def test_no_file_is_default_full_with_the_ipoib_group() -> None:
    p = plan(None)
    assert [x.pkey for x in p.partitions] == [DEFAULT_PKEY]
    assert p.pkeys == {guid: [0xFFFF] for guid in ALL}
    (group,) = p.groups
    assert group.mgid == bytes.fromhex("ff12401bffff000000000000ffffffff")
    assert (group.qkey, group.mtu, group.rate, group.sl, group.scope, group.hop_limit) == (
        0x0B1B, 4, 3, 0, 2, 0)


def test_file_without_default_rule_makes_everyone_limited_but_the_sm() -> None:
    p = plan("# nothing but a comment\n")
    assert p.pkeys[SW1] == [0xFFFF]
    assert all(p.pkeys[g] == [0x7FFF] for g in ALL if g != SW1)
    assert [g.pkey for g in p.groups] == [0xFFFF]


def test_the_usual_file() -> None:
    text = """
    Default=0x7fff,ipoib : ALL=full ;
    storage=0x8001, ipoib, mtu=5, rate=7 : 0x100001=full,   # the file server
        0x100004,                                             # a client
        SELF=full;
    """
    p = plan(text)
    assert [(x.name, x.pkey) for x in p.partitions] == [("Default", 0x7FFF), ("storage", 1)]
    assert p.pkeys[HCA1] == [0xFFFF, 0x8001]
    assert p.pkeys[HCA2] == [0xFFFF, 0x0001]
    assert p.pkeys[SW1] == [0xFFFF, 0x8001]
    assert p.pkeys[HCA3] == [0xFFFF]
    storage = p.groups[1]
    assert storage.mgid == bytes.fromhex("ff12401b8001000000000000ffffffff")
    assert (storage.mtu, storage.rate, storage.qkey) == (5, 7, IPOIB_QKEY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # P_Key forms: name=pkey, pkey alone, the full bit dropped, name only (auto from 1).
        ("a=0x10 : 0x100001=full;", {HCA1: [0x7FFF, 0x8010]}),
        ("0x20 : 0x100001=full;", {HCA1: [0x7FFF, 0x8020]}),
        ("a=0x8030 : 0x100001=full;", {HCA1: [0x7FFF, 0x8030]}),
        ("a : 0x100001=full; b : 0x100001;", {HCA1: [0x7FFF, 0x8001, 0x0002]}),
        ("a=32 : 0x100001=full;", {HCA1: [0x7FFF, 0x8020]}),
        # Same name without a P_Key joins the earlier partition; same P_Key merges.
        ("a : 0x100001=full; a : 0x100004=full;", {HCA1: [0x7FFF, 0x8001],
                                                   HCA2: [0x7FFF, 0x8001]}),
        ("x=0x5 : 0x100001; y=0x5 : 0x100004;", {HCA1: [0x7FFF, 0x5], HCA2: [0x7FFF, 0x5]}),
        # Membership: default limited, defmember, abbreviations, both = full, last wins.
        ("a=1, defmember=full : 0x100001, 0x100004=limited;", {HCA1: [0x7FFF, 0x8001],
                                                               HCA2: [0x7FFF, 0x1]}),
        ("a=1 : 0x100001=limi, 0x100004=f, 0x100007=both;", {HCA1: [0x7FFF, 0x1],
                                                             HCA2: [0x7FFF, 0x8001],
                                                             HCA3: [0x7FFF, 0x8001]}),
        ("a=1 : ALL=full; a=1 : 0x100001=limited;", {HCA1: [0x7FFF, 0x1],
                                                     HCA2: [0x7FFF, 0x8001]}),
        # Keywords.
        ("a=1 : ALL_CAS=full;", {g: [0x7FFF, 0x8001] for g in CAS}),
        ("a=1 : ALL_SWITCHES=full;", {SW1: [0xFFFF, 0x8001], SW2: [0x7FFF, 0x8001]}),
        ("a=1 : SELF=full, NONE;", {SW1: [0xFFFF, 0x8001]}),
        ("a=1 : ALL_ROUTERS;", {HCA1: [0x7FFF]}),
        # Unknown GUIDs and empty lists; an empty partition disappears.
        ("a=1 : 0x999, ;", {HCA1: [0x7FFF]}),
        ("a=1 : ;", {HCA1: [0x7FFF]}),
        # Default overridden in the file.
        ("Default=0x7fff : ALL=full, 0x100004=limited;", {HCA1: [0xFFFF], HCA2: [0x7FFF]}),
        # Several statements on one line, a last one without ';', decimal GUIDs.
        ("a=1: 1048577=full; b=2: 0x100001", {HCA1: [0x7FFF, 0x8001, 0x2]}),
    ],
)
def test_membership_rules(text: str, expected: dict[int, list[int]]) -> None:
    p = plan(text)
    for guid, entries in expected.items():
        assert p.pkeys[guid] == entries, guid


def test_group_flags() -> None:
    p = plan("g=0x22, ipoib, mtu=3, rate=6, sl=5, scope=2, scope=5, Q_Key=0x1234,"
             " TClass=8, FlowLabel=0x12345 : ALL=full;")
    assert [g.scope for g in p.groups if g.pkey == 0x8022] == [2, 5]
    link, site = (g for g in p.groups if g.pkey == 0x8022)
    assert link == IpoibGroup(pkey=0x8022, scope=2, qkey=0x1234, mtu=3, rate=6, sl=0,
                              tclass=8, flow_label=0x12345)
    assert site.mgid[:2] == b"\xff\x15" and site.hop_limit == 0xFF
    assert next(x for x in p.partitions if x.pkey == 0x22).sl == 0  # no QoS: OpenSM forces 0
    assert plan("g=0x22, ipoib, sl=5 : ALL;", qos=True).groups[1].sl == 5


def test_first_ipoib_statement_sets_the_group() -> None:
    p = plan("a=1, ipoib, mtu=5 : ALL; a=1, ipoib, mtu=3 : SELF=full; b=2 : ALL;")
    assert [(g.pkey, g.mtu) for g in p.groups] == [(0xFFFF, 4), (0x8001, 5)]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("a=1 ALL=full;", 1, "'Name=PKey[,flags] :'"),
        ("\na=1\n: ALL;", 2, "'Name=PKey[,flags] :'"),
        ("a=zz : ALL;", 1, "P_Key such as 0x7fff"),
        ("a=0x10000 : ALL;", 1, "P_Key such as 0x7fff"),
        ("a= : ALL;", 1, "P_Key after '='"),
        ("a=1,,ipoib : ALL;", 1, "flag name between commas"),
        ("a=1, colour=red : ALL;", 1, "unknown flag 'colour'"),
        ("a=1, mtu=6 : ALL;", 1, "mtu expects an MTU code 1..5"),
        ("a=1, mtu : ALL;", 1, "mtu expects"),
        ("a=1, rate=1 : ALL;", 1, "rate expects"),
        ("a=1, sl=16 : ALL;", 1, "sl expects an SL 0..15"),
        ("a=1, scope=0 : ALL;", 1, "scope expects"),
        ("a=1, Q_Key=0 : ALL;", 1, "Q_Key expects a non-zero"),
        ("a=1, FlowLabel=0x100000 : ALL;", 1, "FlowLabel expects"),
        ("a=1, defmember=most : ALL;", 1, "full, limited or both"),
        ("a=1 : ALL=fully;", 1, "full, limited or both"),
        ("a=1 : ALL=;", 1, "full, limited or both"),
        ("a=1 : 0x100001,\n  host7=full;", 2, "port GUID (0x...) or ALL"),
        ("a=1 : 0x0;", 1, "port GUID"),
        ("a=1 : =full;", 1, "port GUID or keyword before '='"),
        ("a=1 : mgid=ff12:401b::1;", 1, "mgid= groups are not supported"),
        ("ok=1 : ALL;\n\n  bad=1 ALL;", 3, "'Name=PKey[,flags] :'"),
    ],
)
def test_bad_lines_name_the_line_and_what_was_expected(text: str, line: int,
                                                       expected: str) -> None:
    with pytest.raises(PartitionsError) as err:
        plan(text)
    assert err.value.line == line
    assert expected in str(err.value)
    assert str(err.value).startswith(f"partitions line {line}: ")


def test_statements_keep_their_lines() -> None:
    sts = parse_partitions("# x\na=1 : 0x1,\n 0x2 ;  b : ALL\n;c=3:SELF")
    assert [(s.line, s.name, s.pkey) for s in sts] == [(2, "a", 1), (3, "b", None),
                                                       (4, "c", 3)]
    assert [(m, line) for m, _how, line in sts[0].members] == [("0x1", 2), ("0x2", 3)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=:;,#\n 0x1fLlimtedALL_SWITCHESipo", max_size=60))
def test_random_text_only_raises_partitions_error(text: str) -> None:
    try:
        p = plan(text)
    except PartitionsError:
        return
    assert p.partitions[0].pkey == DEFAULT_PKEY
    assert all(entries for entries in p.pkeys.values())


def test_place_pkeys_keeps_slots() -> None:
    # 0xFFFF stays at 0, 0x0002 is no longer wanted, 0x8001 takes the first free slot.
    assert place_pkeys([0xFFFF, 0x8001], [0xFFFF, 0, 0x0002, 0x8005], 4) == (
        [0xFFFF, 0x8001, 0, 0], [])
    # Membership changes in place.
    assert place_pkeys([0x7FFF], [0xFFFF]) == ([0x7FFF], [])
    # An entry that does not fit spills.
    assert place_pkeys([0xFFFF, 0x8001, 0x8002], [], 2) == ([0xFFFF, 0x8001], [0x8002])
    # Existing order wins over wanted order.
    assert place_pkeys([0xFFFF, 0x8001], [0x8001, 0xFFFF]) == ([0x8001, 0xFFFF], [])
