"""Receive coalescing (GRO): runs of TCP segments handed to the host as one packet.

Linux's IPoIB feeds every received packet to ``napi_gro_receive`` (linux-ipoib.md §4), so
the host's TCP sees a few large packets instead of many MTU-sized ones: one pass through the
stack and one ACK decision for a whole run. The driver here does the same for what it hands
a TUN opened with ``IFF_VNET_HDR``: consecutive in-order segments of one TCP flow in a
receive batch become one GSO packet, described by a ``virtio_net_hdr``
(:mod:`ipoib.wire.vnet`). The wire is untouched: the fabric still carries MTU-sized packets.

A run opens at a segment with a payload and only ACK set (IPv4 without options or
fragmentation, or IPv6 with TCP as next header). The next segment joins it when its headers
repeat the run's byte for byte but for the IP ID, the checksums and the sequence number,
which must follow on (so: same addresses, ports, ACK number, window, options, TOS, TTL, DF,
flags), and it carries ``gso_size`` bytes, the first segment's payload length; a shorter
segment or one with PSH joins as the last, as Linux's ``tcp_gro_receive`` does. A run never
exceeds 65535 bytes of IP. The coalesced packet keeps the first segment's headers with the
IP length and checksum rewritten, the last one's PSH, and the TCP checksum field set to the
pseudo-header sum with ``NEEDS_CSUM`` (CHECKSUM_PARTIAL): the segments' checksums were made
by the sender's stack and the fabric changes no byte. They are not summed again (that would
cost more than coalescing saves), so unlike an HCA with receive checksum offload, a segment
sent with a wrong TCP checksum on purpose is accepted when it is coalesced; a lone segment
is still checked by the host's stack. Everything else passes through with a plain header,
in order.

Sans-I/O and allocation-light: slices are compared in place with ``startswith``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..wire.ip import IpProto, internet_checksum, pseudo_header
from ..wire.offload import TsoSegments
from ..wire.vnet import PLAIN, GsoType, VnetFlags, VnetHdr

MAX_GRO_BYTES = 0xFFFF
"""The IP total length a coalesced IPv4 packet (or an IPv6 payload) may reach."""

_ACK, _PSH = 0x10, 0x08
_TCP = IpProto.TCP
_U32 = struct.Struct(">I")
_GSO = struct.Struct("<BBHHHH")
_TCP_CSUM_OFFSET = 16  # TcpHeader.checksum
assert VnetHdr.SIZE == _GSO.size


@dataclass(slots=True)
class GroStats:
    """What coalescing did: packets in, packets out that carried several segments."""

    segments: int = 0
    """TCP segments that went into a coalesced packet."""
    coalesced: int = 0
    """Coalesced packets handed to the host."""


class Gro:
    """Coalesces one receive batch at a time (a batch is what one pump turn received)."""

    def __init__(self) -> None:
        self.stats = GroStats()

    def frames(self, packets: Iterable[bytes | TsoSegments]) -> list[bytes]:
        """``packets`` (IP packets in arrival order) as TUN frames, runs coalesced.

        A :class:`~ipoib.wire.offload.TsoSegments` stands for an LSO send received whole:
        when its segments would make one run, that run's frame is made from it directly
        (:func:`whole`), else its segments are taken one by one."""
        out: list[bytes] = []
        run: list[bytes] = []
        r = _Run()
        for item in packets:
            if isinstance(item, bytes):
                self._take(item, out, run, r)
                continue
            frame = whole(item)
            if frame is None:
                for p in item.cut():
                    self._take(p, out, run, r)
                continue
            if run:
                out.append(self._flush(run, r))
                run.clear()
            self.stats.segments += item.count
            self.stats.coalesced += 1
            out.append(frame)
        if run:
            out.append(self._flush(run, r))
        return out

    def _take(self, p: bytes, out: list[bytes], run: list[bytes], r: _Run) -> None:
        """:meth:`frames` for one packet: it joins, closes or flushes the open ``run``, opens
        one, or passes through."""
        if run:
            # The run's next full-sized segment has, byte for byte, the run's headers
            # but for the IP ID and the checksums, with the next sequence number.
            key = r.flow + r.nxt.to_bytes(4, "big") + r.mid
            if len(p) == r.hl + r.mss and r.size + r.mss <= MAX_GRO_BYTES \
                    and p.startswith(r.ip) and p.startswith(r.ip2, 6) \
                    and p.startswith(key, r.fs) and p.startswith(r.tail, r.t + 18):
                run.append(p)
                r.size += r.mss
                r.nxt = (r.nxt + r.mss) & 0xFFFFFFFF
                return
            if r.closes(p, key):
                run.append(p)  # a short or PSH segment is the run's last
                out.append(self._flush(run, r))
                run.clear()
                return
            out.append(self._flush(run, r))
            run.clear()
        if r.open(p):
            run.append(p)
        else:
            out.append(PLAIN + p)

    def _flush(self, run: list[bytes], r: _Run) -> bytes:
        """One frame for ``run``: plain when it is a single segment, else coalesced."""
        if len(run) == 1:
            return PLAIN + run[0]
        self.stats.segments += len(run)
        self.stats.coalesced += 1
        return coalesce(run, r.t, r.hl, r.mss)


class _Run:
    """What the segments of the open run must repeat (taken from its first segment)."""

    __slots__ = ("flow", "fs", "hl", "ip", "ip2", "mid", "mss", "nxt", "size", "t", "tail")

    def __init__(self) -> None:
        self.t = self.hl = self.mss = self.size = self.nxt = self.fs = 0
        self.ip = self.ip2 = self.flow = self.mid = self.tail = b""

    def open(self, p: bytes) -> bool:
        """Start a run at ``p`` if it can head one: IPv4 without options or fragmentation,
        or IPv6 with TCP next, lengths that add up, a payload, only ACK set."""
        n = len(p)
        if n > 40 and p[0] == 0x45 and p[9] == _TCP and not (p[6] & 0x3F or p[7]) \
                and p[2] << 8 | p[3] == n:
            t = 20
        elif n > 60 and p[0] >> 4 == 6 and p[6] == _TCP and p[4] << 8 | p[5] == n - 40:
            t = 40
        else:
            return False
        hl = t + (p[t + 12] >> 2 & 0x3C)
        if hl < t + 20 or hl >= n or p[t + 13] != _ACK:
            return False
        self.t, self.hl, self.mss = t, hl, n - hl
        self.nxt = (_U32.unpack_from(p, t + 4)[0] + self.mss) & 0xFFFFFFFF
        if t == 20:  # version..length | DF, TTL, protocol | addresses, ports
            self.size, self.ip, self.ip2, self.fs = n, p[:4], p[6:10], 12
        else:  # version..length, next header, hop limit | - | addresses, ports
            self.size, self.ip, self.ip2, self.fs = n - 40, p[:8], b"", 8
        self.flow = p[self.fs:t + 4]
        self.mid = p[t + 8:t + 16]  # ACK number, data offset, flags, window
        self.tail = p[t + 18:hl]  # urgent pointer, options
        return True

    def closes(self, p: bytes, key: bytes) -> bool:
        """Whether ``p`` is the run's last segment: its next, shorter or with PSH."""
        t, n = self.t, len(p)
        plen = n - self.hl
        if not 0 < plen <= self.mss or self.size + plen > MAX_GRO_BYTES:
            return False
        lp = 2 if t == 20 else 4  # the total / payload length field
        if p[lp] << 8 | p[lp + 1] != (n if t == 20 else n - 40) or p[t + 13] & ~_PSH != _ACK \
                or not (p[t + 13] & _PSH or plen < self.mss):
            return False
        return (p.startswith(self.ip[:lp]) and p.startswith(self.ip[lp + 2:], lp + 2)
                and p.startswith(self.ip2, 6) and p.startswith(key[:-3], self.fs)
                and p.startswith(self.mid[6:], t + 14) and p.startswith(self.tail, t + 18))


def whole(segs: TsoSegments) -> bytes | None:
    """The frame :class:`Gro` makes of ``segs``' segments arriving alone, built from the
    super-packet without cutting it; None when they would not make one run (one segment;
    IPv4 options; flags other than ACK, or ACK and PSH).

    The run's headers are the first segment's with the IP length and checksum and the TCP
    checksum rewritten, and PSH from the last: that is the super-packet's own header with
    those fields rewritten, since the first segment differs from it only in them and its
    flags (RFC 9293 §3.1, as :meth:`TsoSegments.cut` applies it)."""
    p, t, hl = segs.packet, segs.t, segs.hl
    if segs.count < 2 or segs.flags & ~_PSH != _ACK or (t == 20 and p[0] != 0x45):
        return None
    return b"".join((_prefix(p, t, hl, segs.mss, segs.total, segs.flags),
                     memoryview(p)[hl:segs.total]))


def coalesce(run: Sequence[bytes], tcp: int, hl: int, mss: int) -> bytes:
    """The GSO frame for consecutive segments ``run`` (IP header ``tcp`` bytes, headers
    ``hl`` bytes, ``mss`` payload bytes each but the last, which alone may carry PSH)."""
    first, last = run[0], run[-1]
    total = hl + mss * (len(run) - 1) + len(last) - hl
    flags = first[tcp + 13] | last[tcp + 13] & _PSH
    return b"".join([_prefix(first, tcp, hl, mss, total, flags), *[p[hl:] for p in run]])


def _prefix(first: bytes, tcp: int, hl: int, mss: int, total: int, flags: int) -> bytes:
    """The ``virtio_net_hdr`` and headers of a coalesced frame of ``total`` IP bytes: the
    first segment's headers with the length, the IPv4 checksum, ``flags`` and the TCP
    checksum field (the pseudo-header sum, for ``NEEDS_CSUM``) rewritten."""
    hdr = bytearray(first[:hl])
    hdr[tcp + 13] = flags
    if tcp == 20:
        hdr[2:4] = total.to_bytes(2, "big")
        hdr[10:12] = b"\0\0"
        hdr[10:12] = internet_checksum(hdr[:20]).to_bytes(2, "big")
        src, dst, gso = bytes(hdr[12:16]), bytes(hdr[16:20]), GsoType.TCPV4
    else:
        hdr[4:6] = (total - 40).to_bytes(2, "big")
        src, dst, gso = bytes(hdr[8:24]), bytes(hdr[24:40]), GsoType.TCPV6
    pseudo = pseudo_header(src, dst, _TCP, total - tcp)
    hdr[tcp + 16:tcp + 18] = (~internet_checksum(pseudo) & 0xFFFF).to_bytes(2, "big")
    return _GSO.pack(VnetFlags.NEEDS_CSUM, gso, hl, mss, tcp, _TCP_CSUM_OFFSET) + hdr
