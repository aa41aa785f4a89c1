"""Receive coalescing: what the host's stack gets for a batch of received TCP segments.

A coalesced frame is checked the way the kernel reads it (virtio_net_hdr, then IP and TCP
headers), and unfolded back into segments the way GSO would cut it: the unfolded stream
must be exactly the segments that went in.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.netdev.gro import MAX_GRO_BYTES, Gro, coalesce, whole
from ipoib.wire.ip import (
    IpProto,
    Ipv4Header,
    Ipv6Header,
    TcpHeader,
    build_ipv4,
    build_ipv6,
    internet_checksum,
    pseudo_header,
    udp_packet,
)
from ipoib.wire.offload import TsoSegments
from ipoib.wire.vnet import PLAIN, VNET_HDR_SIZE, GsoType, VnetFlags, VnetHdr

A4, B4 = "10.10.0.1", "10.10.0.8"
A6, B6 = "fe80::10:1", "fe80::10:f"
ACK, PSH, SYN = 0x10, 0x08, 0x02
TSOPT = bytes((1, 1, 8, 10)) + struct.pack(">II", 1000, 2000)


def tcp(seq: int, payload: bytes, *, flags: int = ACK, src: str = A4, dst: str = B4,
        sport: int = 40000, dport: int = 5201, ack: int = 7, window: int = 502,
        options: bytes = TSOPT, ident: int = 0, ttl: int = 64) -> bytes:
    """A TCP segment in IPv4 or IPv6 (by ``src``), with correct checksums."""
    doff = (20 + len(options)) // 4
    hdr = TcpHeader(sport=sport, dport=dport, seq=seq, ack=ack, data_offset=doff,
                    flags=flags, window=window).encode() + options
    seg = hdr + payload
    c = internet_checksum(pseudo_header(src, dst, IpProto.TCP, len(seg)) + seg)
    seg = seg[:16] + c.to_bytes(2, "big") + seg[18:]
    if ":" in src:
        return build_ipv6(src, dst, IpProto.TCP, seg, hop_limit=ttl)
    return build_ipv4(src, dst, IpProto.TCP, seg, identification=ident, dont_fragment=True,
                      ttl=ttl)


def stream(n: int, mss: int = 1000, seq: int = 1, **kw: object) -> list[bytes]:
    return [tcp(seq + i * mss, bytes([i % 251]) * mss, ident=i, **kw)  # type: ignore[arg-type]
            for i in range(n)]


def unfold(frame: bytes) -> list[tuple[bytes, int, int, bytes]]:
    """A frame as the stack receives it, cut back into (flow, seq, flags, payload) segments:
    a GSO frame into ``gso_size`` pieces, as the kernel's segmentation would."""
    vh = VnetHdr.decode(frame[:VNET_HDR_SIZE])
    p = frame[VNET_HDR_SIZE:]
    v6 = p[0] >> 4 == 6
    t = 40 if v6 else 20
    th = TcpHeader.decode(p[t:t + 20])
    hl = t + th.data_offset * 4
    flow = p[8:40] if v6 else p[12:20]
    flow += p[t:t + 4]
    data = p[hl:]
    if vh.gso_type == GsoType.NONE:
        return [(flow, th.seq, th.flags, data)]
    out = []
    for i in range(0, len(data), vh.gso_size):
        last = i + vh.gso_size >= len(data)
        flags = th.flags if last else th.flags & ~PSH
        out.append((flow, (th.seq + i) & 0xFFFFFFFF, flags, data[i:i + vh.gso_size]))
    return out


def segments(packets: list[bytes]) -> list[tuple[bytes, int, int, bytes]]:
    return [s for p in packets for s in unfold(PLAIN + p)]


def test_a_run_becomes_one_gso_frame_the_kernel_can_read() -> None:
    run = stream(5, mss=1400) + [tcp(1 + 5 * 1400, b"z" * 300, flags=ACK | PSH, ident=5)]
    (frame,) = Gro().frames(run)
    vh = VnetHdr.decode(frame[:VNET_HDR_SIZE])
    assert vh.flags == VnetFlags.NEEDS_CSUM and vh.gso_type == GsoType.TCPV4
    assert (vh.hdr_len, vh.gso_size, vh.csum_start, vh.csum_offset) == (52, 1400, 20, 16)
    p = frame[VNET_HDR_SIZE:]
    ip = Ipv4Header.decode(p[:20])
    assert ip.total_length == len(p) == 52 + 5 * 1400 + 300
    assert internet_checksum(p[:20]) == 0  # the rewritten header checksum is right
    assert ip.identification == 0 and ip.flags == 2  # the first segment's, DF kept
    th = TcpHeader.decode(p[20:40])
    assert th.seq == 1 and th.flags == ACK | PSH  # the last segment's PSH
    assert p[40:52] == TSOPT
    # CHECKSUM_PARTIAL: the field holds the pseudo-header sum, not inverted
    pseudo = pseudo_header(A4, B4, IpProto.TCP, len(p) - 20)
    assert th.checksum == ~internet_checksum(pseudo) & 0xFFFF
    assert p[52:] == b"".join(s[52:] for s in run)
    assert unfold(frame) == segments(run)


def test_ipv6_runs_coalesce_too() -> None:
    run = stream(4, mss=1200, src=A6, dst=B6)
    (frame,) = Gro().frames(run)
    vh = VnetHdr.decode(frame[:VNET_HDR_SIZE])
    assert vh.gso_type == GsoType.TCPV6 and vh.csum_start == 40 and vh.gso_size == 1200
    p = frame[VNET_HDR_SIZE:]
    assert Ipv6Header.decode(p[:40]).payload_length == len(p) - 40
    th = TcpHeader.decode(p[40:60])
    assert th.checksum == ~internet_checksum(
        pseudo_header(A6, B6, IpProto.TCP, len(p) - 40)) & 0xFFFF
    assert unfold(frame) == segments(run)


def test_counters_say_how_many_segments_went_into_how_many_packets() -> None:
    g = Gro()
    g.frames(stream(3))
    g.frames(stream(2, seq=50_000) + [udp_packet(A4, B4, 1, 2, b"x")])
    assert (g.stats.segments, g.stats.coalesced) == (5, 2)


def _breaks(second: bytes) -> None:
    """``second`` may not follow the first segment of ``stream``: two frames, both plain."""
    first = stream(1)[0]
    frames = Gro().frames([first, second])
    assert frames == [PLAIN + first, PLAIN + second]


def test_what_ends_a_run() -> None:
    _breaks(tcp(1 + 1000 + 1, b"a" * 1000))  # a gap in the sequence
    _breaks(tcp(1001, b"a" * 1000, sport=40001))  # another flow
    _breaks(tcp(1001, b"a" * 1000, ack=8))  # another ACK number
    _breaks(tcp(1001, b"a" * 1000, window=503))  # another window
    _breaks(tcp(1001, b"a" * 1000, options=bytes((1, 1, 8, 10)) + bytes(8)))  # timestamps
    _breaks(tcp(1001, b"a" * 1200))  # longer than the run's gso_size
    _breaks(tcp(1001, b"a" * 1000, ttl=63))
    _breaks(tcp(1001, b"a" * 1000, flags=ACK | 0x01))  # FIN
    _breaks(tcp(1001, b"", flags=ACK))  # a pure ACK


def test_what_never_opens_a_run() -> None:
    for p in (tcp(1, b"a" * 100, flags=SYN | ACK), tcp(1, b"a" * 100, flags=ACK | PSH),
              tcp(1, b"", flags=ACK), udp_packet(A4, B4, 1, 2, b"x" * 500),
              build_ipv4(A4, B4, IpProto.TCP, bytes(40), options=b"\x01" * 4), b"", b"\x45"):
        g = Gro()
        assert g.frames([p, p]) == [PLAIN + p, PLAIN + p]
        assert g.stats.coalesced == 0


def test_a_fragment_is_left_alone() -> None:
    p = bytearray(stream(1)[0])
    p[6] |= 0x20  # more fragments
    assert Gro().frames([bytes(p), bytes(p)]) == [PLAIN + bytes(p)] * 2


def test_a_run_stops_short_of_64k() -> None:
    run = stream(60, mss=1400)
    frames = Gro().frames(run)
    assert len(frames) == 2
    assert all(len(f) - VNET_HDR_SIZE <= MAX_GRO_BYTES for f in frames)
    assert [s for f in frames for s in unfold(f)] == segments(run)


def test_coalesce_alone_matches_frames() -> None:
    run = stream(3, mss=500)
    assert Gro().frames(run) == [coalesce(run, 20, 52, 500)]


_segment = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(1, 1400),
                     st.sampled_from([ACK, ACK, ACK, ACK | PSH, SYN]))


@settings(max_examples=150, deadline=None)
@given(st.lists(_segment, max_size=40), st.booleans())
def test_any_batch_reaches_the_host_whole_and_in_order(
        spec: list[tuple[int, int, int, int]], v6: bool) -> None:
    """Whatever mix of flows, gaps, sizes and flags: unfolding the frames gives back
    exactly the segments, in order, and only coalesced frames carry a GSO header."""
    src, dst = (A6, B6) if v6 else (A4, B4)
    nxt = [1, 1, 1]
    packets = []
    for flow, gap, size, flags in spec:
        seq = nxt[flow] + (gap == 3)
        packets.append(tcp(seq, bytes([size % 256]) * size, flags=flags, sport=40000 + flow,
                           src=src, dst=dst))
        nxt[flow] = seq + size
    g = Gro()
    frames = g.frames(packets)
    assert [s for f in frames for s in unfold(f)] == segments(packets)
    plain = [f for f in frames if f.startswith(PLAIN)]
    assert len(frames) - len(plain) == g.stats.coalesced
    assert len(packets) - len(plain) == g.stats.segments


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255), st.integers(0, 120)),
                max_size=12))
def test_damaged_packets_never_break_it(flips: list[tuple[int, int, int]]) -> None:
    """Segments with a byte changed or cut short: no exception, every input accounted for
    (a plain frame is the packet itself; coalesced frames hold the rest, whole)."""
    base = stream(len(flips) + 1, mss=80)
    packets = [base[0]]
    for (at, value, cut), p in zip(flips, base[1:], strict=True):
        b = bytearray(p)
        b[at] = value
        packets.append(bytes(b[:len(b) - cut]))
    g = Gro()
    frames = g.frames(packets)
    plain = [f[VNET_HDR_SIZE:] for f in frames if f.startswith(PLAIN)]
    assert len(plain) + g.stats.segments == len(packets)
    assert all(p in packets for p in plain)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30_000), st.integers(100, 2000), st.booleans(),
       st.sampled_from([ACK, ACK | PSH, ACK | 0x01, ACK | 0x80, SYN]), st.booleans())
def test_a_burst_received_whole_is_the_frame_of_its_segments(
        size: int, mss: int, v6: bool, flags: int, opts: bool) -> None:
    """An LSO send received whole (TsoSegments) gives the frame its segments give when they
    arrive alone; flags GRO would not run together (FIN, CWR, SYN) or one segment give none."""
    src, dst = (A6, B6) if v6 else (A4, B4)
    packet = tcp(77, bytes(i % 253 for i in range(size)), flags=flags, src=src, dst=dst,
                 options=TSOPT if opts else b"")
    segs = TsoSegments(packet, mss)
    made = Gro().frames(segs.cut())
    frame = whole(segs)
    if flags in (ACK, ACK | PSH) and segs.count > 1:
        assert [frame] == made
    else:
        assert frame is None
    g, ref = Gro(), Gro()
    assert g.frames([segs]) == ref.frames(segs.cut()) == made
    assert g.stats == ref.stats


def test_a_burst_between_packets_keeps_its_place() -> None:
    before, after = stream(2, seq=1), stream(2, seq=900_000, sport=41000)
    packet = tcp(5000, bytes(8000))
    segs = TsoSegments(packet, 1000)
    frames = Gro().frames([*before, segs, *after])
    assert frames == Gro().frames(before) + [whole(segs)] + Gro().frames(after)
