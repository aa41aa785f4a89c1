"""The fabric's route cache: cached data packets are counted, dropped and captured exactly as
the hop-by-hop loop does it, and every change that decides forwarding is seen at once."""

from __future__ import annotations

import io

import pytest

from ipoib.fabric import AH, AHAttr, Fabric, GlobalRoute
from ipoib.fabric.node import ACTIVE, INIT
from ipoib.fabric.verbs import WCOpcode
from ipoib.wire.capture import LINKTYPE_ERF, PcapReader, PcapWriter
from ipoib.wire.smp import LftBlock, SmpAttr

from .tinysm import TinySm
from .util import Ud, line3, ud

MGID = bytes.fromhex("ff12401bffff00000000000000000001")
COUNTERS = ("xmit_pkts", "xmit_words", "rcv_pkts", "rcv_words", "xmit_mcast", "rcv_mcast")


def _counters(fabric: Fabric) -> dict[tuple[str, int, str], int]:
    return {(n.name, p.num, c): getattr(p, c) for n in fabric.nodes.values() for p in n.ports
            for c in COUNTERS}


def _pair(fabric: Fabric) -> tuple[Ud, Ud]:
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(64)
    return a, b


def _traffic(a: Ud, b: Ud, hca2: Ud) -> None:
    for i in range(20):
        a.send(b, bytes([i]) * (1 + 37 * i))  # every pad count, many lengths
        b.send(a, b"ack" * (i % 4))
        a.send(hca2, b"to the middle switch")
    a.send(b.lid, b"no such QP", dqpn=0x7777)
    a.send(b, b"bad Q_Key", qkey=0x1C)


def test_cached_traffic_is_counted_like_the_hop_by_hop_loop() -> None:
    cached, _ = line3()
    looped, _ = line3()
    looped.capture(PcapWriter(io.BytesIO(), LINKTYPE_ERF))  # a tap makes every packet loop
    got = []
    for fabric in (cached, looped):
        a, b = _pair(fabric)
        a.post_recvs(64)
        mid = ud(fabric, "hca-2")
        mid.post_recvs(64)
        _traffic(a, b, mid)
        got.append(([w.data for w in b.cq.poll(100) if w.opcode == WCOpcode.RECV],
                    [w.data for w in mid.cq.poll(100)]))
    assert got[0] == got[1]
    assert len(got[0][0]) == len(got[0][1]) == 20
    assert _counters(cached) == _counters(looped)
    assert cached.drops() == looped.drops() == {"no_qp": 1, "bad_qkey": 1}
    assert any(p.fwd for p in cached.node("hca-1").ports)  # the cache was used
    assert not any(p.fwd for p in looped.node("hca-1").ports)


def _set_lft(sm: TinySm, switch: str, lid: int, port: int) -> None:
    path = next(f.path for f in sm.nodes.values() if f.desc == switch)
    block, idx = divmod(lid, 64)
    ports = list(LftBlock.decode(sm.get(path, SmpAttr.LINEAR_FORWARDING_TABLE, block)).ports)
    ports[idx] = port
    sm.set(path, SmpAttr.LINEAR_FORWARDING_TABLE, block, LftBlock.from_ports(ports).encode())


def test_an_lft_written_by_the_sm_moves_cached_traffic_at_once() -> None:
    fabric, sm = line3()
    a, b = _pair(fabric)
    a.send(b, b"cached")
    _set_lft(sm, "sw-2", b.lid, 0xFF)
    a.send(b, b"no route now")
    assert fabric.port("sw-2", 2).drops["no_route"] == 1
    _set_lft(sm, "sw-2", b.lid, 2)  # back where it came from: a loop
    a.send(b, b"looping")
    assert fabric.drops()["hop_limit"] == 1
    _set_lft(sm, "sw-2", b.lid, 3)
    a.send(b, b"delivered again")
    assert [w.data for w in b.cq.poll(8)] == [b"cached", b"delivered again"]


def test_a_port_state_written_directly_stops_cached_traffic() -> None:
    fabric, _ = line3()
    a, b = _pair(fabric)
    a.send(b, b"cached")
    fabric.port("sw-2", 3).state = INIT
    a.send(b, b"stopped")
    assert fabric.port("sw-2", 3).drops["port_not_active"] == 1
    fabric.port("sw-2", 3).state = ACTIVE
    a.send(b, b"flows again")
    assert [w.data for w in b.cq.poll(8)] == [b"cached", b"flows again"]


def test_link_faults_and_linear_fdb_top_apply_to_cached_routes() -> None:
    fabric, _ = line3()
    a, b = _pair(fabric)
    a.send(b, b"cached")
    fabric.set_drop_rate("sw-2", 3, 1.0)
    a.send(b, b"lost")
    assert fabric.port("sw-3", 2).drops["fault_drop"] == 1
    fabric.set_drop_rate("sw-2", 3, 0.0)
    fabric.link_down("sw-3", 1)
    a.send(b, b"cut")
    assert fabric.port("sw-3", 1).drops["link_down"] == 1
    fabric.link_up("sw-3", 1)  # trains to INIT: no data until an SM activates it
    a.send(b, b"not active")
    assert fabric.port("sw-3", 1).drops["port_not_active"] == 1
    sw1 = fabric.node("sw-1")
    top = sw1.top  # type: ignore[attr-defined]
    sw1.top = b.lid - 1  # type: ignore[attr-defined]
    a.send(b, b"beyond top")
    assert fabric.port("sw-1", 1).drops["lid_beyond_top"] == 1
    sw1.top = top  # type: ignore[attr-defined]
    assert [w.data for w in b.cq.poll(8)] == [b"cached"]


def test_a_tap_started_later_sees_every_hop_of_cached_traffic() -> None:
    fabric, _ = line3()
    a, b = _pair(fabric)
    a.send(b, b"cached")
    buf = io.BytesIO()
    fabric.capture(PcapWriter(buf, LINKTYPE_ERF))
    a.send(b, b"seen four times")
    fabric.stop_capture()
    a.send(b, b"not seen")
    records = list(PcapReader(io.BytesIO(buf.getvalue())))
    assert len(records) == 4  # hca-1 -> sw-1 -> sw-2 -> sw-3 -> hca-3
    assert len(b.cq.poll(8)) == 3


def test_counters_read_between_packets_see_every_packet() -> None:
    fabric, _ = line3()
    a, b = _pair(fabric)
    words = (len(b"x" * 100) + 28 + 4) // 4  # LRH+BTH+DETH, payload, ICRC
    sw2_out, into_b = fabric.port("sw-2", 3), fabric.port("hca-3", 1)
    before = (sw2_out.xmit_pkts, sw2_out.xmit_words)
    received = into_b.rcv_pkts
    for i in range(1, 4):
        a.send(b, b"x" * 100)
        assert (sw2_out.xmit_pkts, sw2_out.xmit_words) == (before[0] + i, before[1] + i * words)
    a.send(b, b"x" * 100)
    sw2_out.xmit_pkts = 0  # a write lands after what was already counted
    a.send(b, b"x" * 100)
    assert sw2_out.xmit_pkts == 1
    a.send(b, b"x" * 100)
    fabric.forwarding_changed()  # the route goes stale with a packet not settled yet
    a.send(b, b"x" * 100)
    assert sw2_out.xmit_pkts == 3
    assert into_b.rcv_pkts == received + 7


def test_transmit_list_is_one_transmit_per_packet() -> None:
    got = []
    for listed in (False, True):
        fabric, sm = line3()
        sm.add_mcast(0xC001, [("hca-1", 1), ("hca-3", 1)])
        a, b = _pair(fabric)
        mid = ud(fabric, "hca-2")
        mid.post_recvs(8)
        b.qp.attach_mcast(MGID, 0xC001)
        port = fabric.port("hca-1", 1)
        pkts = []
        for dst, payload in ((b, b"one"), (b, b"two"), (mid, b"three"), (b, b"four")):
            ah = AH(a.pd, AHAttr(dlid=dst.lid))
            pkts.append(ah.template(a.qp.qp_num, 0x1B, 0xFFFF, dst.qp.qp_num).packet(payload))
        group = AH(a.pd, AHAttr(dlid=0xC001, is_global=True, gr=GlobalRoute(dgid=MGID)))
        pkts.insert(2, group.template(a.qp.qp_num, 0x1B, 0xFFFF, 0xFF_FFFF).packet(b"all"))
        pkts.append(pkts[0][:10])  # malformed: dropped at the receiving HCA, counted
        if listed:
            fabric.transmit_list(port, pkts)
        else:
            for p in pkts:
                fabric.transmit(port, p)
        got.append(([w.data for w in b.cq.poll(16)], [w.data for w in mid.cq.poll(16)],
                    _counters(fabric), fabric.drops()))
    assert got[0] == got[1]
    assert got[1][0] == [b"one", b"two", b"all", b"four"] and got[1][1] == [b"three"]


def _psn(pkt: bytes, psn: int) -> bytes:
    """``pkt`` (no GRH) with BTH.PSN set to ``psn``."""
    return pkt[:17] + psn.to_bytes(3, "big") + pkt[20:]


def test_a_chain_is_received_as_its_packets_one_by_one() -> None:
    """Packets on one route are handed to the end port together (inbound.receive_run); each
    gets what it would get alone: the same completions, the same drops, in order, also when
    the receive queue runs dry mid-chain, a packet differs from the first, or the first
    one is refused."""
    got = []
    for listed in (False, True):
        fabric, _ = line3()
        a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
        b.post_recvs(5)
        port = fabric.port("hca-1", 1)
        good = AH(a.pd, AHAttr(dlid=b.lid)).template(a.qp.qp_num, 0x1B, 0xFFFF, b.qp.qp_num)
        bad = AH(a.pd, AHAttr(dlid=b.lid)).template(a.qp.qp_num, 0x1C, 0xFFFF, b.qp.qp_num)
        chains = [
            [_psn(bad.packet(b"refused %d" % i), i) for i in range(5)]  # the first is refused
            + [_psn(good.packet(b"then taken"), 5)],
            [_psn(good.packet(b"same size %d" % i), i) for i in range(3)]
            + [_psn(good.packet(b"longer than the rest"), 3)]  # another PktLen
            + [_psn(bad.packet(b"same size 9"), 4)]  # another Q_Key: read again
            + [_psn(good.packet(b"same size %d" % i), i) for i in range(5, 9)]  # RQ runs dry
            + [_psn(good.packet(b"same size 8")[:-5], 8)],  # malformed
        ]
        for chain in chains:
            if listed:
                fabric.transmit_list(port, chain)
            else:
                for p in chain:
                    fabric.transmit(port, p)
        got.append(([(w.data, w.byte_len, w.src_qp) for w in b.cq.poll(32)],
                    _counters(fabric), fabric.drops()))
    assert got[0] == got[1]
    assert [d for d, _, _ in got[1][0]] == [b"then taken", b"same size 0", b"same size 1",
                                             b"same size 2", b"longer than the rest"]
    assert got[1][2] == {"bad_qkey": 6, "no_recv_wr": 4, "malformed": 1}


def test_a_chain_from_one_address_handle_is_carried_like_its_packets() -> None:
    """transmit_chain (one route lookup, counters added at once) leaves the fabric exactly
    as transmit_list does: on a cached route, with a tap recording, and with no route."""
    got = []
    for chained in (False, True):
        for case in ("cached", "tapped", "no route"):
            fabric, sm = line3()
            a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
            b.post_recvs(4)
            buf = io.BytesIO()
            if case == "tapped":
                fabric.capture(PcapWriter(buf, LINKTYPE_ERF))
            if case == "no route":
                _set_lft(sm, "sw-2", b.lid, 0xFF)
            t = AH(a.pd, AHAttr(dlid=b.lid)).template(a.qp.qp_num, 0x1B, 0xFFFF,
                                                       b.qp.qp_num)
            chain = [_psn(t.packet(bytes([i]) * (40 + 4 * i)), i) for i in range(6)]
            port = fabric.port("hca-1", 1)
            if chained:
                fabric.transmit_chain(port, chain)
            else:
                fabric.transmit_list(port, chain)
            fabric.stop_capture()
            got.append(([w.data for w in b.cq.poll(8)], _counters(fabric), fabric.drops(),
                        len(list(PcapReader(io.BytesIO(buf.getvalue())))) if buf.getvalue()
                        else 0))
    assert got[:3] == got[3:]
    cached, tapped, unrouted = got[3:]
    assert len(cached[0]) == 4 and cached[2] == {"no_recv_wr": 2}
    assert tapped[3] == 6 * 4  # every packet at every hop
    assert unrouted[0] == [] and unrouted[2] == {"no_route": 6}


@pytest.mark.parametrize("small", [False, True])
def test_a_chain_past_the_cq_or_into_too_small_buffers_is_taken_packet_by_packet(
        small: bool) -> None:
    """The chain's completions: those past a full CQ are lost (counted), and a receive
    buffer too small for the chain's packets gives its error completion in its place."""
    got = []
    for listed in (False, True):
        fabric, _ = line3()
        a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
        b.cq.cqe = 3
        b.post_recvs(1)
        b.post_recvs(1, length=10 if small else 4096)
        b.post_recvs(3)
        t = AH(a.pd, AHAttr(dlid=b.lid)).template(a.qp.qp_num, 0x1B, 0xFFFF, b.qp.qp_num)
        chain = [_psn(t.packet(bytes([i]) * 64), i) for i in range(6)]
        port = fabric.port("hca-1", 1)
        if listed:
            fabric.transmit_list(port, chain)
        else:
            for p in chain:
                fabric.transmit(port, p)
        got.append(([(w.status, w.data) for w in b.cq.poll(8)], fabric.drops(),
                    b.cq.overflows))
    assert got[0] == got[1]
    done, drops, overflows = got[1]
    assert len(done) == 3 and overflows == 2
    if small:
        assert done[1][0] != 0  # the error completion
        assert drops == {"recv_too_small": 1, "cq_overflow": 2, "no_recv_wr": 1}
    else:
        assert [d for _, d in done] == [bytes([i]) * 64 for i in range(3)]
        assert drops == {"cq_overflow": 2, "no_recv_wr": 1}
