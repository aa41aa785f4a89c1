"""Transmit offloads: TCP segmentation (TSO) and checksum insertion, done on a whole packet.

An HCA that advertises UD LSO and IP checksum offload (``IB_DEVICE_UD_TSO``,
``IB_DEVICE_UD_IP_CSUM``) lets Linux's IPoIB hand it a TCP super-packet of up to 64 KiB with
one header, which the HCA cuts into MTU-sized segments, and packets whose TCP or UDP checksum
the stack left to it (CHECKSUM_PARTIAL; linux-ipoib.md §4). This module is that engine, in
the terms of the packet alone: :func:`segment_tcp` and :func:`insert_checksum` parse the IP
and TCP/UDP headers and return wire-ready packets with every checksum right. The simulated
HCA runs them for an offloaded send (:meth:`ipoib.fabric.hca.QP.post_send_offload`); the
driver runs them itself on its slow path, as Linux's stack segments and checksums in
software (``skb_gso_segment``, ``skb_checksum_help``) for a device that cannot.

Segments follow RFC 9293 §3.1 and Linux's ``tcp_gso_segment``: each repeats the headers
with the sequence number advanced by the payload before it, the IPv4 ID incremented, the
lengths and checksums rewritten; CWR stays on the first segment only, FIN and PSH on the
last only. Checksums are RFC 1071 ones'-complement sums; the payload sums of a
super-packet's segments are taken in one vectorised pass (numpy), about 0.2 µs a segment
against 4 µs summed in Python, which is what makes segmentation cheaper than the per-packet
reads it saves.
"""

from __future__ import annotations

import struct

import numpy as np

from .errors import DecodeError
from .ip import IpProto, ones_sum
from .layout import Buffer

_TCP, _UDP = int(IpProto.TCP), int(IpProto.UDP)
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_add = np.add.reduce


class OffloadError(DecodeError):
    """A packet the offload engine cannot take (not TCP/UDP over IPv4/IPv6, bad lengths)."""


def _fold(s: int) -> int:
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def segment_sums(buf: Buffer, start: int, size: int, count: int) -> list[int]:
    """For ``count`` consecutive ``size``-byte pieces of ``buf`` from ``start``, numbers
    congruent modulo 0xFFFF to their ones'-complement sums (big-endian words), in one numpy
    pass. Native little-endian words are summed where they lie: a byte-swapped 16-bit value
    is 256 times the value modulo 0xFFFF (RFC 1071 §2(B)), and a 32-bit word the sum of its
    two halves."""
    if size & 3 == 0:
        w = np.frombuffer(buf, "<u4", size // 4 * count, start).reshape(count, size // 4)
    elif size & 1 == 0:
        w = np.frombuffer(buf, "<u2", size // 2 * count, start).reshape(count, size // 2)
    else:  # odd pieces: their even and odd bytes summed apart
        a = np.frombuffer(buf, np.uint8, size * count, start).reshape(count, size)
        hi = _add(a[:, 0::2], axis=1, dtype=np.uint64)
        lo = _add(a[:, 1::2], axis=1, dtype=np.uint64)
        return (hi * 256 + lo).tolist()  # type: ignore[no-any-return]
    return (_add(w, axis=1, dtype=np.uint64) * 256).tolist()  # type: ignore[no-any-return]


def _l4(packet: Buffer) -> tuple[int, int, int, int]:
    """(L4 offset, protocol, IP packet length, pseudo-header sum less the L4 length) of an
    IPv4 packet that is not a fragment or an IPv6 packet without extension headers."""
    n = len(packet)
    v = packet[0] >> 4 if n else 0
    if v == 4 and n >= 20:
        ihl = (packet[0] & 15) * 4
        total = packet[2] << 8 | packet[3]
        if ihl < 20 or total < ihl or total > n:
            raise OffloadError("IPv4", "total_length", 2,
                               f"{total} with a {ihl}-byte header in {n} bytes")
        if packet[6] & 0x3F or packet[7]:
            raise OffloadError("IPv4", "fragment_offset", 6, "a fragment cannot be offloaded")
        return ihl, packet[9], total, ones_sum(packet[12:20]) + packet[9]
    if v == 6 and n >= 40:
        total = 40 + (packet[4] << 8 | packet[5])
        if total > n:
            raise OffloadError("IPv6", "payload_length", 4, f"{total - 40} in {n - 40} bytes")
        return 40, packet[6], total, ones_sum(packet[8:40]) + packet[6]
    raise OffloadError("IP", "version", 0, f"not an IPv4 or IPv6 packet ({n} bytes)")


def insert_checksum(packet: Buffer) -> bytes:
    """``packet`` with its TCP or UDP checksum computed over the whole segment (what an HCA
    does for ``IBV_SEND_IP_CSUM``; the IPv4 header checksum is the stack's already)."""
    t, proto, total, pseudo = _l4(packet)
    if proto == _TCP:
        at = t + 16
    elif proto == _UDP:
        at = t + 6
    else:
        raise OffloadError("IP", "protocol", 9 if t == 20 else 6,
                           f"{proto} is not TCP or UDP right after the IP header")
    if total < at + 2:
        raise OffloadError("TCP" if proto == _TCP else "UDP", "length", t, "header cut short")
    old = packet[at] << 8 | packet[at + 1]
    # the segment's sum with the checksum field as zero: take the field's words back out
    s = _fold(pseudo + (total - t) + ones_sum(packet[t:total]) + (~old & 0xFFFF))
    c = ~s & 0xFFFF
    if proto == _UDP and c == 0:
        c = 0xFFFF
    return b"".join((packet[:at], _U16.pack(c), packet[at + 2:total]))


def complete_partial(packet: Buffer, start: int, offset: int) -> bytes:
    """``packet`` with a partial checksum completed the generic way (virtio's ``csum_start``
    and ``csum_offset``, Linux's ``skb_checksum_help``): the field at ``start + offset``
    holds the pseudo-header sum; the sum from ``start`` to the end, complemented, goes there.
    For what the HCA cannot parse (an IPv6 extension header before the TCP or UDP one)."""
    at = start + offset
    if not (0 <= start < at and at + 2 <= len(packet)):
        raise OffloadError("virtio_net_hdr", "csum_start", 6,
                           f"checksum at {start}+{offset} in {len(packet)} bytes")
    c = ~_fold(ones_sum(packet[start:])) & 0xFFFF
    return b"".join((packet[:at], _U16.pack(c), packet[at + 2:]))


def segment_tcp(packet: Buffer, mss: int) -> list[bytes]:
    """``packet``, a TCP super-packet over IPv4 or IPv6, cut into segments of ``mss`` payload
    bytes (the last may be shorter), each with its headers and checksums complete; a packet
    whose payload fits in one segment comes back as one, its checksum filled in."""
    return TsoSegments(packet if isinstance(packet, bytes) else bytes(packet), mss).cut()


class TsoSegments:
    """A TCP super-packet and the MSS it is to be cut at: :func:`segment_tcp`'s segments
    before they are made. The constructor checks what segmenting needs (raising
    :class:`OffloadError`), :meth:`cut` makes them.

    An LSO send travels the simulated fabric in this form while nothing needs its segments
    one by one (:mod:`ipoib.fabric.burst`), and a receiver whose host coalesces takes it
    whole: GRO would rebuild the super-packet from the segments anyway
    (:meth:`ipoib.netdev.gro.Gro.frames`)."""

    __slots__ = ("count", "flags", "hl", "last", "mss", "packet", "pseudo", "t", "total")

    def __init__(self, packet: bytes, mss: int) -> None:
        t, proto, total, pseudo = _l4(packet)
        if proto != _TCP or total < t + 20:
            raise OffloadError("TCP", "protocol", 9, "segmentation needs a TCP packet")
        hl = t + (packet[t + 12] >> 4) * 4
        if hl < t + 20 or hl > total:
            raise OffloadError("TCP", "data_offset", t + 12, f"a header of {hl - t} bytes")
        if mss <= 0:
            raise OffloadError("TCP", "mss", 0, f"segment size {mss}")
        self.packet, self.mss, self.t, self.hl, self.total = packet, mss, t, hl, total
        plen = total - hl
        self.count = max(-(-plen // mss), 1)
        self.last = plen - (self.count - 1) * mss
        """Payload bytes of the last segment (all of them when there is one)."""
        self.flags = packet[t + 13]
        self.pseudo = pseudo
        """The pseudo-header sum less the TCP length: where every segment checksum starts."""

    def ip_bytes(self) -> int:
        """The IP bytes of all the segments together (each repeats the headers)."""
        return self.count * self.hl + self.total - self.hl

    def cut(self) -> list[bytes]:
        """The segments, headers and checksums complete (RFC 9293 §3.1, ``tcp_gso_segment``)."""
        packet, mss, t, hl, total = self.packet, self.mss, self.t, self.hl, self.total
        plen = total - hl
        if plen <= mss:
            return [insert_checksum(packet)]
        pseudo = self.pseudo
        full, rest = divmod(plen, mss)
        sums = segment_sums(packet, hl, mss, full)
        if rest:
            sums.append(ones_sum(packet[hl + full * mss:total]))
        count = len(sums)
        v4 = packet[0] >> 4 == 4
        flags = self.flags
        seq0 = _U32.unpack_from(packet, t + 4)[0]
        # What every segment's checksums share: the pseudo-header's addresses and protocol and
        # the headers' sums with the fields that change per segment taken as zero.
        hdr = bytearray(packet[:hl])
        hdr[t + 4:t + 8] = bytes(4)
        hdr[t + 13] = 0
        hdr[t + 16:t + 18] = bytes(2)
        base = pseudo + ones_sum(hdr[t:hl])
        # one header layout per family, the fields a segment changes apart:
        # IPv4: version..TOS | total length, ID | flags..protocol | checksum | addresses, options
        # IPv6: version..flow label | payload length | next header, hop limit, addresses
        # TCP: ports | sequence number | ACK number, offset | flags | window | checksum | the rest
        tcp = f"4sI5sB2sH{hl - t - 18}s"
        ports, mid = hdr[t:t + 4], hdr[t + 8:t + 13]
        win, tail = hdr[t + 14:t + 16], hdr[t + 18:hl]
        first, middle = flags & ~(_FIN | _PSH), flags & ~(_FIN | _PSH | _CWR)
        last = flags & ~_CWR
        out = []
        body = memoryview(packet)
        pos = hl
        if v4:
            ip_id = packet[4] << 8 | packet[5]
            hdr[2:6] = bytes(4)
            hdr[10:12] = bytes(2)
            ip_base = ones_sum(hdr[:t])
            pack = struct.Struct(f">2sHH4sH{t - 12}s{tcp}").pack
            ver, frag, addrs = hdr[:2], hdr[6:10], hdr[12:t]
        else:
            pack = struct.Struct(f">4sH34s{tcp}").pack
            ver, addrs = hdr[:4], hdr[6:40]
        for i, psum in enumerate(sums):
            size = mss if i < full else rest
            fl = middle if 0 < i < count - 1 else first if i == 0 else last
            seq = (seq0 + i * mss) & 0xFFFFFFFF
            tcp_len = hl - t + size
            # -x % 0xFFFF is the complement of x's folded ones'-complement sum (x > 0)
            c = -(base + (seq >> 16) + (seq & 0xFFFF) + fl + tcp_len + psum) % 0xFFFF
            if v4:
                tot, ident = t + tcp_len, (ip_id + i) & 0xFFFF
                h = pack(ver, tot, ident, frag, -(ip_base + tot + ident) % 0xFFFF, addrs,
                         ports, seq, mid, fl, win, c, tail)
            else:
                h = pack(ver, tcp_len, addrs, ports, seq, mid, fl, win, c, tail)
            out.append(h + body[pos:pos + size])
            pos += size
        return out
