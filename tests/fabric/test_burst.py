"""LSO sends carried whole (ipoib.fabric.burst): whatever can be observed (port counters on
every port crossed, receive completions, drops, a capture) is what the same send cut into
segments gives. The reference is the same fabric with a capture tap on, which makes every
packet cross one by one."""

from __future__ import annotations

import io

import pytest

from ipoib.fabric import AH, AHAttr, Fabric, SendWR
from ipoib.fabric.burst import RecvBurst
from ipoib.fabric.hca import SendFlags, WROpcode
from ipoib.wire.capture import LINKTYPE_ERF, PcapWriter
from ipoib.wire.offload import segment_tcp

from ..wire.test_offload import tcp_packet
from .util import Ud, line3, ud

HEAD = b"\x08\x00\x00\x00"


def _send(a: Ud, b: Ud, packet: bytes, mss: int, *, qkey: int = 0x1B) -> None:
    wr = SendWR(wr_id=5, opcode=WROpcode.TSO, send_flags=int(SendFlags.SIGNALED), mss=mss)
    wr.set_wr_ud(AH(a.pd, AHAttr(dlid=b.lid, port_num=1)), b.qp.qp_num, qkey)
    a.qp.post_send_offload(wr, HEAD, packet)
    a.ctx.fabric.process(a.ctx.fabric.now)


def _observed(fabric: Fabric, b: Ud) -> tuple[object, ...]:
    ports = {(n.name, p.num): (p.xmit_pkts, p.xmit_words, p.rcv_pkts, p.rcv_words,
                               dict(p.drops))
             for n in fabric.nodes.values() for p in n.ports if p is not None and p.num}
    return ports, b.cq.poll_tuples(1 << 16), len(b.qp.rq), b.cq.overflows


def _pair(recvs: int, cqe: int, tap: bool) -> tuple[Fabric, Ud, Ud, io.BytesIO]:
    fabric, _ = line3()
    a, b = ud(fabric, "hca-1", cqe=cqe), ud(fabric, "hca-3", cqe=cqe)
    b.post_recvs(recvs)
    out = io.BytesIO()
    if tap:
        fabric.capture(PcapWriter(out, LINKTYPE_ERF))
    return fabric, a, b, out


CASES = {
    "v4 40 KB": (tcp_packet(bytes(range(256)) * 160, seq=0xFFFF_FF00), 1000),
    "v6 uneven": (tcp_packet(bytes(7777), v6=True, flags=0x10), 1440),
    "v4 last full": (tcp_packet(bytes(4000), flags=0x10), 2000),
    "v4 FIN": (tcp_packet(bytes(3001), flags=0x11), 1000),
}


@pytest.mark.parametrize("case", CASES)
def test_a_burst_looks_like_its_segments(case: str) -> None:
    packet, mss = CASES[case]
    seen = []
    for tap in (False, True):
        fabric, a, b, _ = _pair(64, 256, tap)
        _send(a, b, packet, mss)
        assert b.cq.bursts is not tap  # carried whole unless a tap needs every packet
        seen.append(_observed(fabric, b))
    assert seen[0] == seen[1]
    rows = seen[0][1]
    assert [r[13] for r in rows] == [HEAD + s for s in segment_tcp(packet, mss)]  # type: ignore[index]


@pytest.mark.parametrize(("recvs", "cqe", "qkey"), [(10, 256, 0x1B), (64, 12, 0x1B),
                                                    (64, 256, 0x77)])
def test_a_qp_that_cannot_take_every_segment_gets_them_one_by_one(recvs: int, cqe: int,
                                                                  qkey: int) -> None:
    packet = tcp_packet(bytes(30_000))
    seen = []
    for tap in (False, True):
        fabric, a, b, _ = _pair(recvs, cqe, tap)
        _send(a, b, packet, 1000, qkey=qkey)
        assert not b.cq.bursts
        seen.append(_observed(fabric, b))
    assert seen[0] == seen[1]
    drops = seen[0][0][("hca-3", 1)][4]  # type: ignore[index]
    assert drops or seen[0][3], "the refusal was not counted"


def test_a_capture_records_every_segment() -> None:
    _, a, b, out = _pair(64, 256, True)
    _send(a, b, tcp_packet(bytes(20_000)), 1000)
    # one record per segment on each of the 4 links it crosses (and the send completion's none)
    assert out.getvalue().count(b"\x08\x00\x00\x00E") == 20 * 4


def test_the_cq_counts_a_burst_as_its_completions_and_polls_it_in_pieces() -> None:
    _, a, b, _ = _pair(64, 256, False)
    packet = tcp_packet(bytes(range(250)) * 120)
    _send(a, b, packet, 1000)
    cq = b.cq
    assert len(cq) == 30 and cq.bursts
    entries = list(cq._entries)
    assert any(isinstance(e, RecvBurst) for e in entries)
    first = cq.poll_tuples(5)
    rest = cq.poll(100)
    datas = [r[13] for r in first if r[13]] + [w.data for w in rest if w.data]
    assert datas == [HEAD + s for s in segment_tcp(packet, 1000)]
    assert len(cq) == 0 and len(b.qp.rq) == 64 - 30


def test_poll_bursts_hands_a_burst_over_whole() -> None:
    _, a, b, _ = _pair(64, 256, False)
    packet = tcp_packet(bytes(9000))
    _send(a, b, packet, 1000)
    (burst,) = b.cq.poll_bursts()
    assert isinstance(burst, RecvBurst) and burst.count == 9 and len(b.cq) == 0
    assert burst.burst.segs.packet == packet
    assert burst.data_bytes() == sum(len(HEAD + s) for s in segment_tcp(packet, 1000))
