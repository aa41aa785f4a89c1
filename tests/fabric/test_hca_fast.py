"""The HCA's data-path calls beside the pyverbs-shaped ones: a send with a two-entry gather
list (``QP.post_send_sg``), completions as tuples (``CQ.poll_tuples``), and the send-header
cache of an address handle following the port's LID and P_Key table."""

from __future__ import annotations

import io
from dataclasses import astuple

import pytest

from ipoib.fabric import (
    AH,
    AHAttr,
    Fabric,
    GlobalRoute,
    QPAttr,
    QPState,
    RecvWR,
    SendWR,
    VerbsError,
    WCStatus,
)
from ipoib.fabric.hca import QPAttrMask, WCFlags, WROpcode
from ipoib.fabric.verbs import WCOpcode
from ipoib.wire.capture import LINKTYPE_ERF, PcapReader, PcapWriter
from ipoib.wire.ib import parse_ud

from .util import Ud, line3, ud

MGID = bytes.fromhex("ff12401bffff00000000000000000001")


def _wr(a: Ud, b: Ud, wr_id: int = 1) -> SendWR:
    wr = SendWR(wr_id, b"ignored by post_send_sg")
    wr.set_wr_ud(AH(a.pd, AHAttr(dlid=b.lid)), b.qp.qp_num, 0x1B)
    return wr


def _tapped(fabric: Fabric) -> io.BytesIO:
    buf = io.BytesIO()
    fabric.capture(PcapWriter(buf, LINKTYPE_ERF), ports=[("hca-1", 1)])
    return buf


def _wire(buf: io.BytesIO) -> list[bytes]:
    """The packets recorded, as sent (CRCs checked and stripped, ERF header dropped)."""
    return [parse_ud(r.data[16:], crcs=True).payload for r in PcapReader(io.BytesIO(
        buf.getvalue()))]


def test_a_gather_list_sends_the_joined_bytes() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(8)
    buf = _tapped(fabric)
    wr = _wr(a, b)
    for head, payload in ((b"\x08\x00\x00\x00", b"ip packet"), (b"", b"x" * 7), (b"hd", b""),
                          (b"abc", b"d" * 2045)):
        a.qp.post_send_sg(wr, head, payload)
    got = [w for w in b.cq.poll(16) if w.opcode == WCOpcode.RECV]
    want = [b"\x08\x00\x00\x00ip packet", b"x" * 7, b"hd", b"abc" + b"d" * 2045]
    assert [w.data for w in got] == want == _wire(buf)
    assert [w.byte_len for w in got] == [40 + len(d) for d in want]
    sends = [w for w in a.cq.poll(16) if w.opcode == WCOpcode.SEND]
    assert [w.byte_len for w in sends] == [len(d) for d in want]


def test_a_gather_list_over_the_mtu_completes_with_a_length_error() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    a.qp.post_send_sg(_wr(a, b, 9), b"head", b"p" * 2045)  # 2049 bytes on a 2048 MTU
    (wc,) = a.cq.poll(4)
    assert wc.status == WCStatus.LOC_LEN_ERR and wc.wr_id == 9 and wc.byte_len == 2049
    assert b.cq.poll(4) == []


def _traffic(fabric: Fabric) -> tuple[Ud, Ud]:
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(4)
    b.qp.post_recv(RecvWR(77, 50))  # too small for what comes fifth
    a.send(b, b"plain", sl=3)
    a.send(b, b"abcde")  # padded
    ah = AH(a.pd, AHAttr(dlid=b.lid))
    imm = SendWR(5, b"imm", opcode=WROpcode.SEND_WITH_IMM, imm_data=0xFEEDF00D)
    imm.set_wr_ud(ah, b.qp.qp_num, 0x1B)
    a.qp.post_send(imm)
    b.qp.attach_mcast(MGID, 0xC001)
    a.send(b, b"global", gr=GlobalRoute(dgid=b.gid))  # a GRH on a unicast packet
    a.send(b, b"x" * 100)  # a length error on the receive side
    return a, b


def test_tuples_and_objects_are_the_same_completions() -> None:
    one, _ = line3()
    two, _ = line3()
    _, b1 = _traffic(one)
    _, b2 = _traffic(two)
    objects = b1.cq.poll(64)
    rows = b2.cq.poll_tuples(64)
    assert [astuple(w) for w in objects] == rows
    assert len(rows) == 5
    assert objects[4].status == WCStatus.LOC_LEN_ERR and objects[4].wr_id == 77
    flags = [w.wc_flags for w in objects]
    assert flags[2] & WCFlags.WITH_IMM and objects[2].imm_data == 0xFEEDF00D
    assert flags[3] & WCFlags.GRH and objects[3].grh is not None and objects[3].sl == 0
    assert objects[0].sl == 3 and objects[1].data == b"abcde"


def test_poll_tuples_takes_at_most_what_is_asked() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(4)
    for i in range(4):
        a.send(b, bytes([i]))
    assert [r[-1] for r in b.cq.poll_tuples(3)] == [b"\0", b"\1", b"\2"]
    assert len(b.cq) == 1 and [w.data for w in b.cq.poll(4)] == [b"\3"]
    assert b.cq.poll_tuples(4) == []


def test_the_send_header_follows_the_lid_and_the_pkey_table() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(8)
    buf = io.BytesIO()
    fabric.capture(PcapWriter(buf, LINKTYPE_ERF), ports=[("hca-1", 1)])
    wr = _wr(a, b)
    a.qp.post_send_sg(wr, b"", b"one")
    port = fabric.port("hca-1", 1)
    port.pkeys[0] = 0x7FFF  # a limited member now: the next packet carries it
    a.qp.post_send_sg(wr, b"", b"two")
    port.pkeys[0] = 0xFFFF
    a.qp.post_send_sg(wr, b"", b"three")
    old = port.lid
    port.lid = old + 100  # as a PortInfo Set does it
    a.qp.post_send_sg(wr, b"", b"four")
    port.lid = old
    heads = [parse_ud(r.data[16:], crcs=True) for r in PcapReader(io.BytesIO(buf.getvalue()))]
    assert [p.bth.pkey for p in heads] == [0xFFFF, 0x7FFF, 0xFFFF, 0xFFFF]
    assert [p.lrh.slid for p in heads] == [old, old, old, old + 100]
    assert [p.payload for p in heads] == [b"one", b"two", b"three", b"four"]


def test_post_recv_list_posts_all_or_none() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    cap = b.qp.cap.max_recv_wr
    b.qp.post_recv_list([RecvWR(i, 4096) for i in range(cap - 2)])
    with pytest.raises(VerbsError):
        b.qp.post_recv_list([RecvWR(100 + i, 4096) for i in range(3)])  # one too many
    assert len(b.qp.rq) == cap - 2
    b.qp.post_recv_list([RecvWR(200, 4096), RecvWR(201, 4096)])
    for i in range(cap):
        a.send(b, bytes([i % 256]))
    assert [w.wr_id for w in b.cq.poll(2 * cap) if w.opcode == WCOpcode.RECV] \
        == [*range(cap - 2), 200, 201]
    b.qp.modify(QPAttr(qp_state=QPState.RESET))
    with pytest.raises(VerbsError):
        b.qp.post_recv_list([RecvWR(1, 4096)])


def test_a_chain_is_the_same_as_one_post_per_payload() -> None:
    payloads = [b"a", b"bb" * 600, b"c" * 2047, b"dddd", b"e" * 2044, b"f" * 3]
    got = []
    for chain in (False, True):
        fabric, _ = line3()
        a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
        a.qp.sq_sig_all = False
        b.post_recvs(16)
        buf = _tapped(fabric)
        wr = _wr(a, b)
        wr.send_flags = 2  # SIGNALED, for those the mask selects
        if chain:
            a.qp.post_send_sg_list(wr, b"hd", payloads, 40, 3)
        else:
            for i, p in enumerate(payloads):
                wr.wr_id = 40 + i
                wr.send_flags = 0 if (40 + i) & 3 else 2
                a.qp.post_send_sg(wr, b"hd", p)
        sends = [(w.wr_id, w.status, w.byte_len) for w in a.cq.poll(16)]
        recvs = [w.data for w in b.cq.poll(16) if w.opcode == WCOpcode.RECV]
        got.append((sends, recvs, _wire(buf), fabric.port("hca-1", 1).xmit_pkts))
    assert got[0] == got[1]
    sends, recvs, wire, _ = got[1]
    assert recvs == wire == [b"hd" + p for p in payloads if len(p) + 2 <= 2048]
    # ids 40..45: the mask signals 40 and 44; 42 (2049 bytes) completes with an error anyway
    assert [(s[0], s[1]) for s in sends] == [(40, WCStatus.SUCCESS), (42, WCStatus.LOC_LEN_ERR),
                                             (44, WCStatus.SUCCESS)]


def test_a_chain_reports_an_oversized_payload_in_its_place() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(4)
    wr = _wr(a, b)
    a.qp.post_send_sg_list(wr, b"", [b"ok", b"x" * 2049, b"fine"], 7)  # sq_sig_all
    assert [(w.wr_id, w.status) for w in a.cq.poll(8) if w.opcode == WCOpcode.SEND] == [
        (7, WCStatus.SUCCESS), (8, WCStatus.LOC_LEN_ERR), (9, WCStatus.SUCCESS)]
    assert [w.data for w in b.cq.poll(8) if w.opcode == WCOpcode.RECV] == [b"ok", b"fine"]


def test_the_qkey_changes_in_rts_with_a_mask_and_receives_stay_posted() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(3)
    b.qp.modify(QPAttr(qp_state=QPState.RTS, qkey=0x2B), QPAttrMask.QKEY)
    assert b.qp.state == QPState.RTS and b.qp.qkey == 0x2B and len(b.qp.rq) == 3
    a.send(b, b"old key", qkey=0x1B)
    a.send(b, b"new key", qkey=0x2B)
    assert [w.data for w in b.cq.poll(4) if w.opcode == WCOpcode.RECV] == [b"new key"]
    assert fabric.port("hca-3", 1).drops["bad_qkey"] == 1
    b.qp.modify(QPAttr(qp_state=QPState.RTS, sq_psn=7), QPAttrMask.SQ_PSN)
    assert b.qp.qkey == 0x2B and b.qp.sq_psn == 7  # unmasked attributes are left alone


def test_a_mask_names_only_what_the_transition_takes() -> None:
    fabric, _ = line3()
    qp = ud(fabric, "hca-1").qp
    for attr, mask in ((QPAttr(qp_state=QPState.RTS, port_num=1), QPAttrMask.PORT),
                       (QPAttr(qp_state=QPState.RTS, pkey_index=0), QPAttrMask.PKEY_INDEX),
                       (QPAttr(qp_state=QPState.SQD, qkey=5), QPAttrMask.QKEY),
                       (QPAttr(qp_state=QPState.RTS), 1 << 20)):
        with pytest.raises(VerbsError):
            qp.modify(attr, mask)
    assert qp.state == QPState.RTS and qp.qkey == 0x1B
    qp.modify(QPAttr(qp_state=QPState.RESET))
    with pytest.raises(VerbsError):  # RESET -> INIT needs all three
        qp.modify(QPAttr(qp_state=QPState.INIT, qkey=9), QPAttrMask.QKEY)
    qp.modify(QPAttr(qp_state=QPState.INIT, qkey=9, port_num=1, pkey_index=0),
              QPAttrMask.QKEY | QPAttrMask.PORT | QPAttrMask.PKEY_INDEX)
    qp.modify(QPAttr(qp_state=QPState.RTR, qkey=11), QPAttrMask.QKEY)
    assert qp.state == QPState.RTR and qp.qkey == 11
    qp.modify(QPAttr(qp_state=QPState.RTS, sq_psn=3), QPAttrMask.SQ_PSN)
    assert qp.state == QPState.RTS and qp.qkey == 11 and qp.sq_psn == 3
