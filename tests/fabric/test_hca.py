"""HCA verbs: UD receive rules (Q_Key, P_Key, MTU, receive queue), multicast, loopback,
completion and async-event delivery, the QP state machine."""

from __future__ import annotations

import pytest

from ipoib.fabric import (
    AH,
    CQ,
    PD,
    QP,
    AHAttr,
    Fabric,
    GlobalRoute,
    QPAttr,
    QPInitAttr,
    QPState,
    QPType,
    RecvWR,
    SendWR,
    VerbsError,
    WCStatus,
)
from ipoib.fabric.hca import QPCreateFlags, WCFlags, WROpcode
from ipoib.fabric.node import ACTIVE
from ipoib.fabric.topogen import line
from ipoib.wire.smp import PKeyTable, PortInfo, SmpAttr, pkey_table_am, port_info_am

from .tinysm import TinySm, run_until_idle
from .util import line3, ud

MGID = bytes.fromhex("ff12401bffff00000000000000000001")


def _port_info(sm: TinySm, name: str) -> PortInfo:
    guid = sm.fabric.node(name).guid
    return PortInfo.decode(sm.get(sm._path_to_port(guid, 1), SmpAttr.PORT_INFO,
                                  port_info_am(1)))


def _set_port_info(sm: TinySm, name: str, **changes: int) -> None:
    guid = sm.fabric.node(name).guid
    path = sm._path_to_port(guid, 1)
    cur = PortInfo.decode(sm.get(path, SmpAttr.PORT_INFO, port_info_am(1)))
    new = cur.replace(port_state=0, port_physical_state=0, link_width_enabled=0,
                      link_speed_enabled=0, **changes)
    sm.set(path, SmpAttr.PORT_INFO, port_info_am(1), new.encode())


def _set_pkeys(sm: TinySm, name: str, pkeys: list[int]) -> None:
    guid = sm.fabric.node(name).guid
    sm.set(sm._path_to_port(guid, 1), SmpAttr.P_KEY_TABLE, pkey_table_am(0),
           PKeyTable.from_entries(pkeys).encode())


def test_qkey_mismatch_and_controlled_qkey() -> None:
    fabric, sm = line3()
    a, b = ud(fabric, "hca-1", qkey=0x1B), ud(fabric, "hca-3", qkey=0x1B)
    b.post_recvs(2)
    a.send(b, b"wrong key", qkey=0x1C)
    assert b.cq.poll() == []
    assert fabric.port("hca-3", 1).drops["bad_qkey"] == 1
    assert _port_info(sm, "hca-3").qkey_violations == 1
    a.send(b, b"own key", qkey=0x8000_0000)  # controlled: the QP's own Q_Key goes out
    assert [w.data for w in b.cq.poll()] == [b"own key"]


def test_pkey_membership_rules() -> None:
    fabric, sm = line3()
    _set_pkeys(sm, "hca-1", [0xFFFF, 0x8001, 0x0001])
    _set_pkeys(sm, "hca-3", [0xFFFF, 0x8001, 0x0001])
    full_rx = ud(fabric, "hca-3", pkey_index=1)
    limited_rx = ud(fabric, "hca-3", pkey_index=2)
    default_tx = ud(fabric, "hca-1", pkey_index=0)
    limited_tx = ud(fabric, "hca-1", pkey_index=2)
    full_rx.post_recvs(4)
    limited_rx.post_recvs(4)
    default_tx.send(full_rx, b"other partition")
    limited_tx.send(limited_rx, b"limited to limited")
    port = fabric.port("hca-3", 1)
    assert port.drops["bad_pkey"] == 2
    assert _port_info(sm, "hca-3").pkey_violations == 2
    limited_tx.send(full_rx, b"limited to full")
    (wc,) = full_rx.cq.poll(4)
    assert wc.data == b"limited to full" and wc.pkey_index == 1
    assert limited_rx.cq.poll(4) == []


def test_mtu_on_send_and_receive() -> None:
    fabric, sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(4, length=8192)
    before = fabric.port("hca-1", 1).xmit_pkts
    a.send(b, bytes(2049), wr_id=9)
    (wc,) = a.cq.poll()
    assert (wc.wr_id, wc.status) == (9, WCStatus.LOC_LEN_ERR)
    assert fabric.port("hca-1", 1).xmit_pkts == before  # never sent
    _set_port_info(sm, "hca-3", neighbor_mtu=1)  # 256 bytes on hca-3's side
    assert b.ctx.query_port(1).active_mtu == 1
    a.send(b, bytes(1000))
    assert fabric.port("hca-3", 1).drops["mtu_exceeded"] == 1
    a.send(b, bytes(256))
    assert len(b.cq.poll(4)) == 1


def test_receive_queue_rules() -> None:
    fabric, _sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    a.send(b, b"nobody listening")
    assert fabric.port("hca-3", 1).drops["no_recv_wr"] == 1
    b.qp.post_recv(RecvWR(5, 48))
    a.send(b, b"twelve bytes")  # 40 + 12 > 48
    (wc,) = b.cq.poll()
    assert (wc.wr_id, wc.status) == (5, WCStatus.LOC_LEN_ERR)
    assert fabric.port("hca-3", 1).drops["recv_too_small"] == 1
    a.send(b.lid, b"no such qp", dqpn=0x999)
    assert fabric.port("hca-3", 1).drops["no_qp"] == 1


def test_multicast_reaches_members_only_with_loopback() -> None:
    fabric, sm = line3()
    mlid = 0xC001
    sm.add_mcast(mlid, [("hca-1", 1), ("hca-3", 1)])
    sender = ud(fabric, "hca-1")
    buddy = ud(fabric, "hca-1")
    shy = ud(fabric, "hca-1", create_flags=QPCreateFlags.BLOCK_SELF_MCAST_LB)
    far = ud(fabric, "hca-3")
    bystander = ud(fabric, "hca-3")  # on a member port, not attached
    outside = ud(fabric, "hca-2")  # attached, but its port is not in the MFT
    for u in (sender, buddy, shy, far, outside):
        u.qp.attach_mcast(MGID, mlid)
        u.post_recvs(4)
    bystander.post_recvs(4)
    gr = GlobalRoute(dgid=MGID)
    sender.send(mlid, b"to the group", gr=gr)
    shy.send(mlid, b"from shy", gr=gr)
    run_until_idle(fabric)
    got = {name: [w.data for w in u.cq.poll(8) if w.opcode == 128]
           for name, u in (("sender", sender), ("buddy", buddy), ("shy", shy), ("far", far),
                           ("bystander", bystander), ("outside", outside))}
    assert got["sender"] == [b"to the group", b"from shy"]  # HCA loopback includes the sender
    assert got["buddy"] == [b"to the group", b"from shy"]
    assert got["shy"] == [b"to the group"]  # blocked its own echo
    assert got["far"] == [b"to the group", b"from shy"]
    assert got["bystander"] == [] and got["outside"] == []
    assert fabric.port("hca-1", 1).drops["mcast_loopback"] == 1
    far.qp.post_recv(RecvWR(1, 4096))
    sender.send(mlid, b"check grh", gr=gr)
    (wc,) = [w for w in far.cq.poll(4) if w.opcode == 128]
    assert wc.wc_flags & WCFlags.GRH and wc.grh is not None
    assert wc.grh[24:40] == MGID and wc.grh[8:24] == sender.gid
    assert wc.slid == sm.lid_of("hca-1") and wc.src_qp == sender.qp.qp_num
    assert wc.buffer[:40] == wc.grh and wc.byte_len == 40 + len(b"check grh")
    with pytest.raises(VerbsError):
        AH(sender.pd, AHAttr(dlid=mlid))  # multicast needs a GRH
    far.qp.detach_mcast(MGID, mlid)
    sender.send(mlid, b"after detach", gr=gr)
    assert fabric.port("hca-3", 1).drops["no_mcast_member"] == 1


def test_unicast_to_own_lid_loops_back_inside_the_hca() -> None:
    fabric, _sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-1")
    b.post_recvs()
    before = fabric.port("hca-1", 1).xmit_pkts
    a.send(b, b"to myself")
    assert [w.data for w in b.cq.poll()] == [b"to myself"]
    assert fabric.port("hca-1", 1).xmit_pkts == before


def test_send_with_immediate() -> None:
    fabric, _sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    ah = AH(a.pd, AHAttr(dlid=b.lid))
    wr = SendWR(3, b"imm", opcode=WROpcode.SEND_WITH_IMM, imm_data=0xDEADBEEF)
    wr.set_wr_ud(ah, b.qp.qp_num, 0x1B)
    a.qp.post_send(wr)
    (wc,) = b.cq.poll()
    assert wc.imm_data == 0xDEADBEEF and wc.wc_flags & WCFlags.WITH_IMM and wc.data == b"imm"


def test_completion_handler_is_deferred_and_one_shot() -> None:
    fabric, _sm = line3()
    calls: list[int] = []
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.cq.comp_handler = lambda cq: calls.append(len(cq))
    b.cq.req_notify()
    b.post_recvs(2)
    a.send(b, b"one")
    a.send(b, b"two")
    assert calls == []  # nothing runs inside post_send
    fabric.process(fabric.now)
    assert calls == [2]  # one notification for the armed CQ
    a.send(b, b"three")
    fabric.process(fabric.now)
    assert calls == [2]  # not re-armed


def test_async_events() -> None:
    fabric = Fabric(line(1, 2))
    ctx = fabric.context("hca-2")
    seen: list[tuple[str, int]] = []
    ctx.set_async_handler(lambda ev: seen.append((ev.event_type, ev.port_num)))
    sm = TinySm(fabric, "hca-1").bring_up()
    run_until_idle(fabric)
    assert ("LID_CHANGE", 1) in seen and ("PORT_ACTIVE", 1) in seen
    assert ("SM_CHANGE", 1) in seen
    seen.clear()
    _set_port_info(sm, "hca-2", client_reregister=1)
    run_until_idle(fabric)
    assert seen == [("CLIENT_REREGISTER", 1)]
    fabric.link_down("hca-2", 1)
    run_until_idle(fabric)
    assert seen[-1] == ("PORT_ERR", 1)
    queued = fabric.context("hca-1")  # no handler: events queue
    fabric.link_down("hca-1", 1)
    ev = queued.get_async_event()
    assert ev is not None and ev.event_type == "PORT_ERR" and queued.get_async_event() is None


def test_qp_state_machine() -> None:
    fabric, _sm = line3()
    ctx = fabric.context("hca-1")
    pd, cq = PD(ctx), CQ(ctx, 16)
    qp = QP(pd, QPInitAttr(qp_type=QPType.UD, scq=cq, rcq=cq))
    assert qp.qp_state == QPState.RESET and qp.qp_num >= 0x48
    with pytest.raises(VerbsError):
        qp.post_recv(RecvWR(1))
    with pytest.raises(VerbsError):
        qp.to_rtr()
    qp.to_init(QPAttr(qkey=7, port_num=1))
    qp.post_recv(RecvWR(1))
    ah = AH(pd, AHAttr(dlid=3))
    wr = SendWR(1, b"x")
    wr.set_wr_ud(ah, 0x48, 7)
    with pytest.raises(VerbsError):
        qp.post_send(wr)
    qp.to_rtr()
    qp.to_rts()
    assert qp.query().qkey == 7
    qp.modify(QPAttr(qp_state=QPState.ERR))
    (wc,) = cq.poll()
    assert wc.status == WCStatus.WR_FLUSH_ERR
    with pytest.raises(VerbsError):
        qp.modify(QPAttr(qp_state=QPState.RTS))
    rc = QP(pd, QPInitAttr(qp_type=QPType.RC, scq=cq, rcq=cq))
    rc.to_init(QPAttr(port_num=1))
    with pytest.raises(VerbsError):
        rc.post_send(wr)


def test_queries() -> None:
    fabric, sm = line3()
    ctx = fabric.context("hca-3")
    attr = ctx.query_port(1)
    assert attr.state == ACTIVE and attr.lid == sm.lid_of("hca-3")
    assert attr.sm_lid == sm.sm_lid and (attr.max_mtu, attr.active_mtu) == (4, 4)
    assert attr.pkey_tbl_len == 64
    gid = ctx.query_gid(1, 0)
    assert gid[:8] == bytes.fromhex("fe80000000000000")
    assert int.from_bytes(gid[8:], "big") == fabric.port("hca-3", 1).guid
    assert ctx.query_pkey(1, 0) == 0xFFFF and ctx.get_pkey_index(1, 0xFFFF) == 0
    with pytest.raises(VerbsError):
        ctx.get_pkey_index(1, 0x8005)
    with pytest.raises(VerbsError):
        ctx.query_port(2)
    dev = ctx.query_device()
    assert dev.node_guid == fabric.node("hca-3").guid and dev.phys_port_cnt == 1
