"""TCP segmentation and checksum insertion (ipoib.wire.offload), checked against RFC 1071
sums taken independently over each result, for every kind of segment size."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.wire.ip import internet_checksum, ones_sum, pseudo_header
from ipoib.wire.offload import (
    OffloadError,
    complete_partial,
    insert_checksum,
    segment_sums,
    segment_tcp,
)

SRC4, DST4 = bytes([10, 10, 0, 1]), bytes([10, 10, 0, 8])
SRC6, DST6 = bytes.fromhex("fe80" + "00" * 6 + "0002c9030000" + "0001"), bytes.fromhex(
    "fe80" + "00" * 6 + "0002c9030000" + "0008")
FIN, PSH, ACK, CWR = 0x01, 0x08, 0x10, 0x80


def tcp_packet(payload: bytes, *, v6: bool = False, flags: int = ACK | PSH,
               seq: int = 1000, options: bytes = b"", ip_id: int = 7) -> bytes:
    """An IP/TCP packet with a wrong TCP checksum (what the stack leaves to the device)."""
    doff = (20 + len(options)) // 4
    tcp = struct.pack(">HHIIBBHHH", 40000, 5201, seq, 99, doff << 4, flags, 512, 0xBEEF, 0)
    tcp += options
    if v6:
        ip = struct.pack(">IHBB", 0x6000_0000, len(tcp) + len(payload), 6, 64) + SRC6 + DST6
    else:
        ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(tcp) + len(payload), ip_id, 0x4000,
                         64, 6, 0) + SRC4 + DST4
        ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
    return ip + tcp + payload


def l4_ok(packet: bytes) -> bool:
    """Whether the TCP/UDP checksum of ``packet`` verifies (sum over everything is zero)."""
    if packet[0] >> 4 == 4:
        t, proto, src, dst = 20, packet[9], packet[12:16], packet[16:20]
    else:
        t, proto, src, dst = 40, packet[6], packet[8:24], packet[24:40]
    return internet_checksum(pseudo_header(src, dst, proto, len(packet) - t) + packet[t:]) == 0


@given(st.binary(max_size=600), st.integers(0, 40), st.integers(1, 300))
def test_segment_sums_agree_with_rfc1071(data: bytes, start: int, size: int) -> None:
    count = max(0, (len(data) - start) // size)
    if count == 0:
        return
    got = segment_sums(data, start, size, count)
    for i, s in enumerate(got):
        piece = data[start + i * size:start + (i + 1) * size]
        assert s % 0xFFFF == ones_sum(piece) % 0xFFFF


@settings(max_examples=60, deadline=None)
@given(plen=st.integers(1, 20000), mss=st.integers(1, 3000), v6=st.booleans(),
       flags=st.sampled_from([ACK, ACK | PSH, ACK | PSH | FIN, ACK | CWR | PSH]),
       seq=st.integers(0, 0xFFFF_FFFF), opts=st.sampled_from([b"", b"\x01\x01\x08\x0a" + bytes(range(8))]))
def test_segments_rebuild_the_stream_with_valid_headers(
        plen: int, mss: int, v6: bool, flags: int, seq: int, opts: bytes) -> None:
    payload = bytes((i * 7 + plen) & 0xFF for i in range(plen))
    packet = tcp_packet(payload, v6=v6, flags=flags, seq=seq, options=opts, ip_id=0xFFFE)
    segs = segment_tcp(packet, mss)
    t = 40 if v6 else 20
    hl = t + 20 + len(opts)
    assert len(segs) == -(-plen // mss)
    assert b"".join(s[hl:] for s in segs) == payload
    for i, s in enumerate(segs):
        keep = [(0, 4), (6, t + 4)] if v6 else [(0, 2), (6, 10), (12, t + 4)]
        assert [s[a:b] for a, b in keep] == [packet[a:b] for a, b in keep]
        assert len(s) - hl == (mss if i < len(segs) - 1 else plen - mss * (len(segs) - 1))
        assert l4_ok(s), f"segment {i}"
        if v6:
            assert int.from_bytes(s[4:6], "big") == len(s) - 40
        else:
            assert int.from_bytes(s[2:4], "big") == len(s)
            assert int.from_bytes(s[4:6], "big") == (0xFFFE + i) & 0xFFFF
            assert internet_checksum(s[:20]) == 0
        assert int.from_bytes(s[t + 4:t + 8], "big") == (seq + i * mss) & 0xFFFF_FFFF
        last, first = i == len(segs) - 1, i == 0
        fl = s[t + 13]
        assert fl & (FIN | PSH) == (flags & (FIN | PSH) if last else 0)
        assert fl & CWR == (flags & CWR if first else 0)
        assert fl & ACK
        assert s[t + 8:t + 12] == packet[t + 8:t + 12] and s[t + 18:hl] == packet[t + 18:hl]


@pytest.mark.parametrize("v6", [False, True])
def test_insert_checksum_tcp_and_udp(v6: bool) -> None:
    tcp = tcp_packet(b"hello", v6=v6)
    assert not l4_ok(tcp)
    assert l4_ok(insert_checksum(tcp))
    udp = bytearray(tcp_packet(b"", v6=v6))
    t = 40 if v6 else 20
    body = struct.pack(">HHHH", 5000, 5001, 8 + 3, 0x1234) + b"abc"
    pkt = bytes(udp[:t]) + body
    if v6:
        pkt = pkt[:4] + (len(body)).to_bytes(2, "big") + bytes([17]) + pkt[7:]
    else:
        pkt = pkt[:2] + (t + len(body)).to_bytes(2, "big") + pkt[4:9] + bytes([17]) + pkt[10:]
    done = insert_checksum(pkt)
    assert l4_ok(done) and done[t + 6:t + 8] != b"\0\0"


def test_insert_checksum_refuses_what_is_not_tcp_or_udp() -> None:
    icmp = bytearray(tcp_packet(b"x"))
    icmp[9] = 1
    with pytest.raises(OffloadError) as e:
        insert_checksum(bytes(icmp))
    assert e.value.field == "protocol"


def test_complete_partial_behind_an_ipv6_extension_header() -> None:
    """The generic completion (csum_start, csum_offset) where the HCA's parse stops: TCP
    behind a hop-by-hop header, its checksum field holding the pseudo-header sum."""
    body = b"behind an extension header"
    tcp = bytearray(struct.pack(">HHIIBBHHH", 1, 2, 3, 4, 5 << 4, ACK, 9, 0, 0) + body)
    pseudo = pseudo_header(SRC6, DST6, 6, len(tcp))
    tcp[16:18] = ones_sum(pseudo).to_bytes(2, "big")  # what the stack leaves (CHECKSUM_PARTIAL)
    hbh = bytes([6, 0, 1, 4, 0, 0, 0, 0])  # next header TCP, PadN
    packet = struct.pack(">IHBB", 0x6000_0000, 8 + len(tcp), 0, 64) + SRC6 + DST6 + hbh + tcp
    with pytest.raises(OffloadError):
        insert_checksum(packet)  # the HCA's parse finds a hop-by-hop header, not TCP
    done = complete_partial(packet, 48, 16)
    assert internet_checksum(pseudo + done[48:]) == 0 and done[:64] == packet[:64]
    with pytest.raises(OffloadError):
        complete_partial(packet, 48, len(packet))


def test_a_payload_that_fits_is_one_segment_checksummed() -> None:
    packet = tcp_packet(b"y" * 100)
    (one,) = segment_tcp(packet, 2004)
    assert l4_ok(one) and one[:36] == packet[:36] and one[38:] == packet[38:]


@pytest.mark.parametrize("mangle, field", [
    (lambda p: p[:10], "version"),  # too short for any header
    (lambda p: bytes([0x55]) + p[1:], "version"),  # IPv5
    (lambda p: p[:2] + (len(p) + 9).to_bytes(2, "big") + p[4:], "total_length"),
    (lambda p: p[:6] + b"\x20\x01" + p[8:], "fragment_offset"),
    (lambda p: p[:9] + b"\x11" + p[10:], "protocol"),  # UDP cannot be segmented
    (lambda p: p[:32] + b"\xf0" + p[33:], "data_offset"),  # a 60-byte TCP header past the end
])
def test_malformed_packets_raise_a_decode_error(mangle, field) -> None:  # type: ignore[no-untyped-def]
    packet = mangle(tcp_packet(b"z" * 30))
    with pytest.raises(OffloadError) as e:
        segment_tcp(packet, 8)
    assert e.value.field == field


def test_mss_must_be_positive() -> None:
    with pytest.raises(OffloadError):
        segment_tcp(tcp_packet(b"z" * 30), 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(1, 64))
def test_arbitrary_bytes_never_crash(data: bytes, mss: int) -> None:
    for fn in (lambda: segment_tcp(data, mss), lambda: insert_checksum(data),
               lambda: complete_partial(data, mss % 50, mss % 20)):
        try:
            out = fn()
        except OffloadError:
            continue
        assert isinstance(out, (bytes, list))
        assert out if isinstance(out, list) else len(out) == len(data) or data[0] >> 4 in (4, 6)
