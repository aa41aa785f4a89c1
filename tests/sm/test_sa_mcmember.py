"""MCMemberRecord joins, leaves and queries over QP1, and the MFTs they program."""

from __future__ import annotations

import pytest

from ipoib.fabric import GlobalRoute, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.sm.agent import SmBinding
from ipoib.sm.sa.mcmember import MLID_BASE, MLID_COUNT, Group, McastGroups, valid_requested_mgid
from ipoib.wire.gid import make_gid
from ipoib.wire.ipoib import broadcast_mgid
from ipoib.wire.mad import Method, SaMad
from ipoib.wire.sa import (
    IPOIB_BCAST_JOIN_MASK,
    IPOIB_MCAST_JOIN_MASK,
    MCMemberRecord,
    SaAttr,
    SaStatus,
    unpack_records,
)

from .bringup import QKEY, SaClient, Ud, bring_up, ud

PREFIX = 0xFE80_0000_0000_0000
BCAST = broadcast_mgid(0xFFFF)
M = {n: MCMemberRecord.component_mask(n) for n in (
    "mgid", "port_gid", "qkey", "mlid", "mtu_selector", "mtu", "tclass", "pkey",
    "rate_selector", "rate", "sl", "flow_label", "hop_limit", "scope", "join_state",
    "packet_life_time")}
CREATE = M["mgid"] | M["port_gid"] | M["join_state"] | M["qkey"] | M["tclass"] | M["pkey"] \
    | M["flow_label"] | M["sl"]


@pytest.fixture
def net() -> tuple[Fabric, SmBinding]:
    return bring_up(topogen.fat_tree(36))


def _gid(fabric: Fabric, name: str) -> bytes:
    return make_gid(PREFIX, fabric.node(name).ports[1].guid)


def _ask(fabric: Fabric, sm: SmBinding, name: str, method: int, rec: MCMemberRecord,
         mask: int, sm_key: int = 0) -> SaMad:
    client = SaClient(fabric, name)
    replies = client.request(sm.sm.sm_lid, method, SaAttr.MC_MEMBER_RECORD, rec.encode(),
                             mask=mask, sm_key=sm_key)
    client.agent.close()
    assert len(replies) == 1, replies
    return SaMad.decode(replies[0].mad)


def _join(fabric: Fabric, sm: SmBinding, name: str, mgid: bytes = BCAST, state: int = 1,
          mask: int = IPOIB_BCAST_JOIN_MASK, **fields: int) -> SaMad:
    rec = MCMemberRecord(mgid=mgid, port_gid=_gid(fabric, name), pkey=0xFFFF,
                         join_state=state).replace(**fields)
    return _ask(fabric, sm, name, Method.SET, rec, mask)


def _leave(fabric: Fabric, sm: SmBinding, name: str, mgid: bytes = BCAST, state: int = 1
           ) -> SaMad:
    rec = MCMemberRecord(mgid=mgid, port_gid=_gid(fabric, name), join_state=state)
    return _ask(fabric, sm, name, Method.DELETE, rec,
                M["mgid"] | M["port_gid"] | M["join_state"])


def _member(fabric: Fabric, name: str, mlid: int, mgid: bytes = BCAST) -> Ud:
    end = ud(fabric, name)
    end.qp.attach_mcast(mgid, mlid)
    return end


def _mcast(fabric: Fabric, src: Ud, mlid: int, mgid: bytes, payload: bytes) -> None:
    src.send(mlid, payload, qkey=QKEY, gr=GlobalRoute(dgid=mgid))
    fabric.process(fabric.now)


def test_broadcast_group_is_precreated_as_opensm_does(net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    resp = _ask(fabric, sm, "hca-1", Method.GET, MCMemberRecord(mgid=BCAST), M["mgid"])
    rec = MCMemberRecord.decode(resp.data)
    assert rec.encode().hex() == (
        "ff12401bffff000000000000ffffffff" + "00" * 16 + "00000b1bc0008400ffff8392000000002000"
        + "0000")


def test_joins_build_mfts_that_reach_members_and_no_one_else(
        net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    members = ["hca-1", "hca-2", "hca-20", "hca-33"]
    outsiders = [n.name for n in fabric.cas if n.name not in members]
    for name in members:
        resp = _join(fabric, sm, name)
        rec = MCMemberRecord.decode(resp.data)
        assert resp.header.status == 0 and rec.mlid == 0xC000 and rec.join_state == 1
        assert (rec.qkey, rec.mtu, rec.rate, rec.packet_life_time) == (0x0B1B, 4, 3, 18)
    assert sm.sm.counters["mft_sets"] > 0
    ends = {name: _member(fabric, name, 0xC000) for name in members}
    before = {n: fabric.node(n).ports[1].rcv_mcast for n in outsiders}
    _mcast(fabric, ends["hca-1"], 0xC000, BCAST, b"to the group")
    for name in members[1:]:
        assert b"to the group" in ends[name].received(), name
    assert {n: fabric.node(n).ports[1].rcv_mcast for n in outsiders} == before
    # hca-20 leaves: the tree shrinks, it no longer gets the packets
    resp = _leave(fabric, sm, "hca-20")
    assert resp.header.method == Method.DELETE_RESP and resp.header.status == 0
    count = fabric.node("hca-20").ports[1].rcv_mcast
    _mcast(fabric, ends["hca-1"], 0xC000, BCAST, b"again")
    assert fabric.node("hca-20").ports[1].rcv_mcast == count
    assert b"again" in ends["hca-33"].received()
    assert sm.sm.groups.get(BCAST) is not None  # pre-created: stays even when empty
    for name in ("hca-1", "hca-2", "hca-33"):
        _leave(fabric, sm, name)
    group = sm.sm.groups.get(BCAST)
    assert group is not None and not group.members


def test_create_a_group_with_full_parameters_and_delete_it(
        net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    mgid = bytes.fromhex("ff12401bffff00000000000000000001")  # an IPoIB IPv4 group
    resp = _join(fabric, sm, "hca-1", mgid, 1, IPOIB_MCAST_JOIN_MASK, qkey=0x0B1B,
                 mtu_selector=2, mtu=4, rate_selector=2, rate=3)
    rec = MCMemberRecord.decode(resp.data)
    assert resp.header.status == 0 and rec.mlid == 0xC001 and rec.mgid == mgid
    _join(fabric, sm, "hca-2", mgid, 1, IPOIB_BCAST_JOIN_MASK)
    assert _leave(fabric, sm, "hca-1", mgid).header.status == 0
    assert sm.sm.groups.get(mgid) is not None
    assert _leave(fabric, sm, "hca-2", mgid).header.status == 0
    assert sm.sm.groups.get(mgid) is None  # last full member gone
    again = _join(fabric, sm, "hca-3", mgid, 1, CREATE, qkey=5)
    assert MCMemberRecord.decode(again.data).mlid == 0xC001  # freed and reused


def test_send_only_full_member_can_create_and_does_not_receive(
        net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    mgid = bytes.fromhex("ff12401bffff000000000000e0000001")
    resp = _join(fabric, sm, "hca-1", mgid, 8, CREATE, qkey=0x0B1B)
    mlid = MCMemberRecord.decode(resp.data).mlid
    assert resp.header.status == 0
    _join(fabric, sm, "hca-30", mgid, 1, IPOIB_BCAST_JOIN_MASK)
    sender = _member(fabric, "hca-1", mlid, mgid)
    receiver = _member(fabric, "hca-30", mlid, mgid)
    before = fabric.node("hca-1").ports[1].rcv_mcast
    _mcast(fabric, sender, mlid, mgid, b"send only")
    assert b"send only" in receiver.received()
    echo = _member(fabric, "hca-30", mlid, mgid)
    _mcast(fabric, echo, mlid, mgid, b"back")
    assert fabric.node("hca-1").ports[1].rcv_mcast == before  # not on its port's mask


@pytest.mark.parametrize(("mask", "state", "fields", "status"), [
    (M["mgid"] | M["port_gid"], 1, {}, SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS),
    (IPOIB_BCAST_JOIN_MASK, 1, {"mgid": bytes.fromhex("ff12401bffff00000000000000000077")},
     SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS),  # creating needs Q_Key, TClass, ...
    (CREATE, 2, {"mgid": bytes.fromhex("ff12401bffff00000000000000000077")},
     SaStatus.ERR_REQ_INVALID),  # a non-member cannot create
    (CREATE, 1, {"mgid": bytes.fromhex("ffe2a01b000000000000000000000001")},
     SaStatus.ERR_REQ_INVALID),  # reserved flag bits in the MGID
    (CREATE, 1, {"mgid": bytes.fromhex("ff12a01b000000000000000000000001")},
     SaStatus.ERR_REQ_INVALID),  # SA signature with link-local scope
    (IPOIB_BCAST_JOIN_MASK, 0, {}, SaStatus.ERR_REQ_INVALID),  # JoinState 0
    (IPOIB_BCAST_JOIN_MASK | M["mtu_selector"] | M["mtu"], 1, {"mtu_selector": 2, "mtu": 5},
     SaStatus.ERR_REQ_INVALID),  # the group is 2048, not 4096
    (IPOIB_BCAST_JOIN_MASK | M["rate_selector"] | M["rate"], 1, {"rate_selector": 2, "rate": 1},
     SaStatus.ERR_REQ_INVALID),  # rate code 1 is invalid
    (IPOIB_BCAST_JOIN_MASK, 1, {"port_gid": make_gid(PREFIX, 0xBAD)}, SaStatus.ERR_REQ_INVALID),
    (IPOIB_BCAST_JOIN_MASK, 1, {"pkey": 0x8000}, SaStatus.ERR_REQ_INVALID),
])
def test_join_statuses(net: tuple[Fabric, SmBinding], mask: int, state: int,
                       fields: dict[str, object], status: int) -> None:
    fabric, sm = net
    rec = MCMemberRecord(mgid=BCAST, port_gid=_gid(fabric, "hca-4"), pkey=0xFFFF, qkey=1,
                         join_state=state).replace(**fields)
    resp = _ask(fabric, sm, "hca-4", Method.SET, rec, mask)
    assert resp.header.method == Method.GET_RESP and resp.header.status == status
    assert resp.data == rec.encode().ljust(200, b"\0")  # OpenSM echoes the request


def test_leave_statuses_and_partial_leaves(net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    assert _leave(fabric, sm, "hca-5").header.status == SaStatus.ERR_REQ_INVALID  # not in
    _join(fabric, sm, "hca-5", state=1 | 2)
    assert _leave(fabric, sm, "hca-5", state=4).header.status == SaStatus.ERR_REQ_INVALID
    left = _leave(fabric, sm, "hca-5", state=2)
    assert left.header.status == 0 and MCMemberRecord.decode(left.data).join_state == 1
    group = sm.sm.groups.get(BCAST)
    assert group is not None
    assert group.members[fabric.node("hca-5").ports[1].guid].join_state == 1
    unknown = bytes.fromhex("ff12401bffff00000000000000000099")
    assert _leave(fabric, sm, "hca-5", unknown).header.status == SaStatus.ERR_REQ_INVALID
    # another port may not change a membership it did not make (no proxy join)
    rec = MCMemberRecord(mgid=BCAST, port_gid=_gid(fabric, "hca-5"), join_state=1)
    other = _ask(fabric, sm, "hca-6", Method.DELETE, rec,
                 M["mgid"] | M["port_gid"] | M["join_state"])
    assert other.header.status == SaStatus.ERR_REQ_INVALID


def test_proxy_join_is_accepted_and_marked(net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    rec = MCMemberRecord(mgid=BCAST, port_gid=_gid(fabric, "hca-7"), pkey=0xFFFF, join_state=1)
    resp = _ask(fabric, sm, "hca-8", Method.SET, rec, IPOIB_BCAST_JOIN_MASK)
    assert resp.header.status == 0
    group = sm.sm.groups.get(BCAST)
    assert group is not None
    member = group.members[fabric.node("hca-7").ports[1].guid]
    assert member.proxy
    # a proxy membership may be changed by any port of the partition
    assert _ask(fabric, sm, "hca-9", Method.DELETE, rec,
                M["mgid"] | M["port_gid"] | M["join_state"]).header.status == 0


def test_queries_hide_members_from_untrusted_requesters(net: tuple[Fabric, SmBinding]) -> None:
    fabric, sm = net
    for name in ("hca-1", "hca-2"):
        _join(fabric, sm, name)
    untrusted = _ask(fabric, sm, "hca-3", Method.GET_TABLE, MCMemberRecord(), 0)
    recs = unpack_records(MCMemberRecord, untrusted.data, untrusted.sa.attribute_offset,
                          1).records
    assert [(r.mgid, r.port_gid, r.join_state) for r in recs] == [(BCAST, bytes(16), 0)]
    trusted = _ask(fabric, sm, "hca-3", Method.GET_TABLE, MCMemberRecord(), 0, sm_key=1)
    recs = unpack_records(MCMemberRecord, trusted.data, trusted.sa.attribute_offset, 2).records
    assert {r.port_gid for r in recs} == {_gid(fabric, "hca-1"), _gid(fabric, "hca-2")}
    assert all(r.join_state == 1 and r.scope == 2 for r in recs)
    mine = _ask(fabric, sm, "hca-1", Method.GET,
                MCMemberRecord(mgid=BCAST, port_gid=_gid(fabric, "hca-1")),
                M["mgid"] | M["port_gid"], sm_key=1)
    assert MCMemberRecord.decode(mine.data).join_state == 1
    none = _ask(fabric, sm, "hca-3", Method.GET, MCMemberRecord(mlid=0xC123), M["mlid"])
    assert none.header.status == SaStatus.ERR_NO_RECORDS
    client = SaClient(fabric, "hca-3")
    assert client.request(sm.sm.sm_lid, Method.GET_TABLE, SaAttr.MC_MEMBER_RECORD,
                          MCMemberRecord().encode(), sm_key=0x777) == []  # wrong key: dropped


def test_join_leave_cycles_do_not_leak_mlids(net: tuple[Fabric, SmBinding]) -> None:
    """OpenSM PR #43: JoinState 0x9 then partial leaves leaked the MLID."""
    fabric, sm = net
    mgid = bytes.fromhex("ff12601bffff0000000000000000abcd")
    groups = sm.sm.groups
    for _ in range(300):
        r = _join(fabric, sm, "hca-2", mgid, 0x9, CREATE, qkey=0x0B1B)
        assert MCMemberRecord.decode(r.data).mlid == 0xC001
        assert _leave(fabric, sm, "hca-2", mgid, 0x1).header.status == 0
        assert groups.get(mgid) is not None  # still a send-only full member
        assert _leave(fabric, sm, "hca-2", mgid, 0x8).header.status == 0
        assert groups.get(mgid) is None
    assert len(groups) == 1


def test_mlid_space_is_finite() -> None:
    groups = McastGroups()
    for i in range(MLID_COUNT):
        mlid = groups.new_mlid()
        assert mlid == MLID_BASE + i
        groups.add(Group(mgid=i.to_bytes(16, "big"), mlid=mlid, qkey=0, mtu=4, rate=3,
                         pkt_life=18, pkey=0xFFFF))
    assert groups.new_mlid() == 0
    assert groups.new_mlid(0xC005) == 0


def test_mgid_validation_rules() -> None:
    assert valid_requested_mgid(BCAST)
    assert not valid_requested_mgid(bytes.fromhex("fe12401bffff00000000000000000000"))
    assert valid_requested_mgid(bytes.fromhex("ff15a01b000000000000000000000001"))
    assert not valid_requested_mgid(bytes.fromhex("ff12a01b000000000000000000000001"))
