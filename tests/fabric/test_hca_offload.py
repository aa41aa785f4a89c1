"""The HCA's transmit offloads (``QP.post_send_offload``): a TSO request leaves as MTU-sized
TCP segments with their checksums made and completes once; IP_CSUM fills in one checksum;
what the engine cannot parse completes in error and sends nothing."""

from __future__ import annotations

from ipoib.fabric import AH, AHAttr, SendWR, WCStatus
from ipoib.fabric.hca import SendFlags, WCOpcode, WROpcode

from ..wire.test_offload import l4_ok, tcp_packet
from .util import Ud, line3, ud

HEAD = b"\x08\x00\x00\x00"  # a driver's own header, replicated in front of every segment


def _wr(src: Ud, dst: Ud, *, opcode: WROpcode = WROpcode.SEND, mss: int = 0,
        flags: int = int(SendFlags.SIGNALED)) -> SendWR:
    wr = SendWR(wr_id=77, opcode=opcode, send_flags=flags, mss=mss)
    wr.set_wr_ud(AH(src.pd, AHAttr(dlid=dst.lid, port_num=1)), dst.qp.qp_num, 0x1B)
    return wr


def _split(a: Ud, b: Ud) -> tuple[list, list]:  # type: ignore[type-arg]
    wcs = a.cq.poll(256) + b.cq.poll(256)
    return ([w for w in wcs if w.qp_num == a.qp.qp_num and w.opcode != WCOpcode.RECV],
            [w for w in wcs if w.qp_num == b.qp.qp_num and w.opcode == WCOpcode.RECV])


def test_tso_send_leaves_as_segments_and_completes_once() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(64)
    payload = bytes(i * 13 & 0xFF for i in range(40_000))
    packet = tcp_packet(payload, seq=0xFFFF_FF00)
    sent = fabric.port("hca-1", 1).xmit_pkts
    a.qp.post_send_offload(_wr(a, b, opcode=WROpcode.TSO, mss=1000), HEAD, packet)
    fabric.process(fabric.now)
    sends, recvs = _split(a, b)
    assert [(w.wr_id, w.status, w.opcode) for w in sends] == [(77, WCStatus.SUCCESS,
                                                                 WCOpcode.TSO)]
    segs = [w.data for w in recvs]
    assert len(segs) == 40 == fabric.port("hca-1", 1).xmit_pkts - sent
    assert all(s.startswith(HEAD) and l4_ok(s[4:]) for s in segs)
    assert b"".join(s[4 + 40:] for s in segs) == payload
    assert sends[0].byte_len == sum(map(len, segs))


def test_ip_csum_fills_in_the_checksum() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(2)
    packet = tcp_packet(b"an ACK with a partial checksum")
    assert not l4_ok(packet)
    a.qp.post_send_offload(_wr(a, b, flags=int(SendFlags.SIGNALED | SendFlags.IP_CSUM)),
                           HEAD, packet)
    fabric.process(fabric.now)
    sends, recvs = _split(a, b)
    assert [w.opcode for w in sends] == [WCOpcode.SEND]
    (got,) = [w.data for w in recvs]
    assert got[4:] != packet and l4_ok(got[4:])


def test_what_the_engine_cannot_parse_completes_in_error() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(4)
    udp = bytearray(tcp_packet(b"x" * 3000))
    udp[9] = 17  # UDP cannot be segmented
    a.qp.post_send_offload(_wr(a, b, opcode=WROpcode.TSO, mss=1000), HEAD, bytes(udp))
    too_big = tcp_packet(bytes(0xFFFF - 20), v6=True)  # 65,575 bytes: over max_tso
    a.qp.post_send_offload(_wr(a, b, opcode=WROpcode.TSO, mss=1000), HEAD, too_big)
    fabric.process(fabric.now)
    sends, recvs = _split(a, b)
    assert [w.status for w in sends] == [WCStatus.LOC_QP_OP_ERR] * 2
    assert recvs == [] and a.qp.offload_errors == 2


def test_an_unsignaled_tso_send_completes_silently() -> None:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    a.qp.sq_sig_all = False  # as a driver creates its QP: it signals selectively
    b.post_recvs(16)
    a.qp.post_send_offload(_wr(a, b, opcode=WROpcode.TSO, mss=1000, flags=0), HEAD,
                           tcp_packet(bytes(5000)))
    fabric.process(fabric.now)
    sends, recvs = _split(a, b)
    assert sends == [] and len(recvs) == 5
