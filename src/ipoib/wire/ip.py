"""The slice of IPv4, IPv6, ICMP, UDP, IGMP and MLD that an IPoIB driver has to read or write.

The driver sits below IP: it needs a packet's destination to pick the next hop, must answer
and originate ARP/ND and DHCP on the host's behalf, and must see IGMP/MLD reports to know which
multicast groups to join on the fabric; of TCP it reads only what receive coalescing needs.
Layouts: RFC 791 §3.1, RFC 8200 §3-4, RFC 768, RFC 792, RFC 4443 §2, RFC 2236, RFC 3376 §4,
RFC 2710 §3, RFC 3810 §5, RFC 9293 §3.1. Checksums are RFC 1071 ones'-complement sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from .errors import DecodeError, EncodeError, need
from .layout import Buffer, Record, layout, raw, u

IpAddress = IPv4Address | IPv6Address
AddrLike = IPv4Address | IPv6Address | str | bytes


class IpProto(IntEnum):
    """IP protocol / IPv6 next-header numbers the driver looks at."""

    HOPOPTS = 0
    ICMP = 1
    IGMP = 2
    TCP = 6
    UDP = 17
    ROUTING = 43
    FRAGMENT = 44
    AH = 51
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60


class IgmpType(IntEnum):
    """IGMP message types (RFC 2236 §2.1, RFC 3376 §4)."""

    QUERY = 0x11
    V1_REPORT = 0x12
    V2_REPORT = 0x16
    V2_LEAVE = 0x17
    V3_REPORT = 0x22


class MldType(IntEnum):
    """MLD ICMPv6 types (RFC 2710 §3, RFC 3810 §5)."""

    QUERY = 130
    V1_REPORT = 131
    V1_DONE = 132
    V2_REPORT = 143


class GroupRecordType(IntEnum):
    """IGMPv3 / MLDv2 group record types (RFC 3376 §4.2.12, RFC 3810 §5.2.12)."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE = 3
    CHANGE_TO_EXCLUDE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


MLDV2_ROUTERS: Final = IPv6Address("ff02::16")
IGMPV3_ROUTERS: Final = IPv4Address("224.0.0.22")
ROUTER_ALERT_V4: Final = bytes.fromhex("94040000")
"""IPv4 Router Alert option (RFC 2113), carried by IGMP messages."""


# --------------------------------------------------------------------------- layouts


@layout(size=20, name="IPv4", section="RFC 791 §3.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv4Header(Record):
    """The fixed 20 bytes of an IPv4 header; options follow up to ``ihl * 4``."""

    version: int = u(0, 4, default=4)
    ihl: int = u(0, 4, bit=4, default=5)
    tos: int = u(1, 8)
    total_length: int = u(2, 16)
    identification: int = u(4, 16)
    flags: int = u(6, 3)
    fragment_offset: int = u(6, 13, bit=3)
    ttl: int = u(8, 8, default=64)
    protocol: int = u(9, 8)
    checksum: int = u(10, 16)
    src: bytes = raw(12, 4)
    dst: bytes = raw(16, 4)


@layout(size=40, name="IPv6", section="RFC 8200 §3")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6Header(Record):
    """The IPv6 fixed header."""

    version: int = u(0, 4, default=6)
    traffic_class: int = u(0, 8, bit=4)
    flow_label: int = u(1, 20, bit=4)
    payload_length: int = u(4, 16)
    next_header: int = u(6, 8)
    hop_limit: int = u(7, 8, default=64)
    src: bytes = raw(8, 16)
    dst: bytes = raw(24, 16)


@layout(size=12, name="IPv4 pseudo-header", section="RFC 768")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv4PseudoHeader(Record):
    """What UDP sums in front of its segment over IPv4."""

    src: bytes = raw(0, 4)
    dst: bytes = raw(4, 4)
    protocol: int = u(9, 8)
    length: int = u(10, 16)


@layout(size=40, name="IPv6 pseudo-header", section="RFC 8200 §8.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ipv6PseudoHeader(Record):
    """What ICMPv6 and UDP sum in front of their message over IPv6."""

    src: bytes = raw(0, 16)
    dst: bytes = raw(16, 16)
    length: int = u(32, 32)
    next_header: int = u(39, 8)


@layout(size=8, name="UDP", section="RFC 768")
@dataclass(frozen=True, slots=True, kw_only=True)
class UdpHeader(Record):
    """The UDP header."""

    sport: int = u(0, 16)
    dport: int = u(2, 16)
    length: int = u(4, 16)
    checksum: int = u(6, 16)


@layout(size=20, name="TCP", section="RFC 9293 §3.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class TcpHeader(Record):
    """The fixed TCP header; options follow up to ``data_offset * 4``. The driver reads it
    only to coalesce received segments (GRO) before handing them to the host."""

    sport: int = u(0, 16)
    dport: int = u(2, 16)
    seq: int = u(4, 32)
    ack: int = u(8, 32)
    data_offset: int = u(12, 4)
    flags: int = u(13, 8)
    """CWR ECE URG ACK PSH RST SYN FIN, most significant bit first."""
    window: int = u(14, 16)
    checksum: int = u(16, 16)
    urgent: int = u(18, 16)


@layout(size=4, name="ICMP", section="RFC 792, RFC 4443 §2.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpHeader(Record):
    """The type/code/checksum word common to ICMP and ICMPv6."""

    type: int = u(0, 8)
    code: int = u(1, 8)
    checksum: int = u(2, 16)


@layout(size=8, name="IGMPv2", section="RFC 2236 §2")
@dataclass(frozen=True, slots=True, kw_only=True)
class IgmpV2(Record):
    """IGMPv1/v2 messages and the first 8 bytes of an IGMPv3 query."""

    type: int = u(0, 8)
    max_resp: int = u(1, 8)
    checksum: int = u(2, 16)
    group: bytes = raw(4, 4)


@layout(size=8, name="IGMPv3 report", section="RFC 3376 §4.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class IgmpV3Report(Record):
    """IGMPv3 membership report header; ``num_records`` group records follow."""

    type: int = u(0, 8, default=IgmpType.V3_REPORT)
    checksum: int = u(2, 16)
    num_records: int = u(6, 16)


@layout(size=8, name="IGMPv3 group record", section="RFC 3376 §4.2.4")
@dataclass(frozen=True, slots=True, kw_only=True)
class IgmpV3Record(Record):
    """Fixed part of a group record; 4-byte sources and ``aux_len`` words follow."""

    record_type: int = u(0, 8)
    aux_len: int = u(1, 8)
    num_sources: int = u(2, 16)
    group: bytes = raw(4, 4)


@layout(size=24, name="MLDv1", section="RFC 2710 §3")
@dataclass(frozen=True, slots=True, kw_only=True)
class MldV1(Record):
    """MLDv1 query, report and done (also the start of an MLDv2 query)."""

    type: int = u(0, 8)
    code: int = u(1, 8)
    checksum: int = u(2, 16)
    max_delay: int = u(4, 16)
    group: bytes = raw(8, 16)


@layout(size=8, name="MLDv2 report", section="RFC 3810 §5.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class MldV2Report(Record):
    """MLDv2 report header; ``num_records`` group records follow."""

    type: int = u(0, 8, default=MldType.V2_REPORT)
    code: int = u(1, 8)
    checksum: int = u(2, 16)
    num_records: int = u(6, 16)


@layout(size=20, name="MLDv2 group record", section="RFC 3810 §5.2.4")
@dataclass(frozen=True, slots=True, kw_only=True)
class MldV2Record(Record):
    """Fixed part of an MLDv2 group record; 16-byte sources and aux words follow."""

    record_type: int = u(0, 8)
    aux_len: int = u(1, 8)
    num_sources: int = u(2, 16)
    group: bytes = raw(4, 16)


# --------------------------------------------------------------------------- checksums


def ones_sum(data: Buffer) -> int:
    """The ones'-complement sum of ``data`` as big-endian 16-bit words (odd length padded
    with a zero byte), folded to 16 bits, not complemented.

    Summing 16-bit words modulo 0xFFFF equals taking the whole buffer, read as one big
    integer, modulo 0xFFFF (2**16 is 1 mod 0xFFFF), which is much faster in Python. A non-zero
    buffer whose sum is a multiple of 0xFFFF has ones'-complement sum 0xFFFF, not 0.
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


def internet_checksum(data: Buffer) -> int:
    """The RFC 1071 checksum of ``data``: its :func:`ones_sum`, complemented."""
    return ~ones_sum(data) & 0xFFFF


def _a4(addr: AddrLike, field: str = "address") -> bytes:
    if isinstance(addr, bytes):
        if len(addr) != 4:
            raise EncodeError("IPv4", field, f"need 4 bytes, got {len(addr)}")
        return addr
    try:
        return IPv4Address(addr).packed
    except ValueError as e:
        raise EncodeError("IPv4", field, str(e)) from None


def _a6(addr: AddrLike, field: str = "address") -> bytes:
    if isinstance(addr, bytes):
        if len(addr) != 16:
            raise EncodeError("IPv6", field, f"need 16 bytes, got {len(addr)}")
        return addr
    try:
        return IPv6Address(addr).packed
    except ValueError as e:
        raise EncodeError("IPv6", field, str(e)) from None


def is_ipv6(addr: AddrLike) -> bool:
    """True if ``addr`` (an address object, text or 4/16 packed bytes) is IPv6."""
    if isinstance(addr, bytes):
        return len(addr) == 16
    if isinstance(addr, str):
        return ":" in addr
    return addr.version == 6


def pseudo_header(src: AddrLike, dst: AddrLike, protocol: int, length: int) -> bytes:
    """The pseudo-header of an upper-layer checksum; the address family picks the layout."""
    if is_ipv6(src):
        return Ipv6PseudoHeader(
            src=_a6(src, "src"), dst=_a6(dst, "dst"), length=length, next_header=protocol
        ).encode()
    return Ipv4PseudoHeader(
        src=_a4(src, "src"), dst=_a4(dst, "dst"), protocol=protocol, length=length
    ).encode()


def _zero_checksum(msg: Buffer, at: int) -> bytes:
    b = bytes(msg)
    return b[:at] + b"\0\0" + b[at + 2 :]


def icmpv6_checksum(src: AddrLike, dst: AddrLike, message: Buffer) -> int:
    """The ICMPv6 checksum of ``message`` (bytes 2-3 treated as zero), RFC 4443 §2.3."""
    m = _zero_checksum(message, 2)
    return internet_checksum(pseudo_header(src, dst, IpProto.ICMPV6, len(m)) + m)


def icmpv6_checksum_ok(src: AddrLike, dst: AddrLike, message: Buffer) -> bool:
    """True when ``message`` carries the right ICMPv6 checksum for ``src`` → ``dst``."""
    if len(message) < 4:
        return False
    hdr = pseudo_header(src, dst, IpProto.ICMPV6, len(message))
    return internet_checksum(hdr + bytes(message)) == 0


def udp_checksum(src: AddrLike, dst: AddrLike, segment: Buffer) -> int:
    """The UDP checksum of ``segment`` (bytes 6-7 treated as zero); 0 is sent as 0xFFFF."""
    m = _zero_checksum(segment, 6)
    c = internet_checksum(pseudo_header(src, dst, IpProto.UDP, len(m)) + m)
    return c or 0xFFFF


# --------------------------------------------------------------------------- IP packets


@dataclass(frozen=True, slots=True)
class IpPacket:
    """A parsed IPv4 or IPv6 packet, reduced to what the driver acts on.

    ``protocol`` is the upper-layer protocol (after IPv6 extension headers) and ``payload``
    its bytes, cut to the length the IP header gives. ``fragment`` is True for a non-first
    fragment, whose payload does not start with an upper-layer header.
    """

    header: Ipv4Header | Ipv6Header
    src: IpAddress
    dst: IpAddress
    protocol: int
    payload: bytes
    fragment: bool = False

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.header.version

    @property
    def hop_limit(self) -> int:
        """The TTL (IPv4) or hop limit (IPv6)."""
        h = self.header
        return h.ttl if isinstance(h, Ipv4Header) else h.hop_limit


def parse_ipv4(buf: Buffer, *, verify_checksum: bool = False) -> IpPacket:
    """Parse an IPv4 packet; trailing bytes beyond ``total_length`` are ignored."""
    h = Ipv4Header.decode(buf)
    if h.version != 4:
        raise DecodeError("IPv4", "version", 0, f"version {h.version}, expected 4")
    hlen = h.ihl * 4
    if h.ihl < 5:
        raise DecodeError("IPv4", "ihl", 0, f"ihl {h.ihl} is below 5")
    if h.total_length < hlen:
        raise DecodeError("IPv4", "total_length", 2, f"{h.total_length} < header {hlen}")
    need("IPv4", len(buf), 0, h.total_length)
    if verify_checksum and internet_checksum(buf[:hlen]) != 0:
        raise DecodeError("IPv4", "checksum", 10, "header checksum mismatch")
    return IpPacket(
        header=h,
        src=IPv4Address(h.src),
        dst=IPv4Address(h.dst),
        protocol=h.protocol,
        payload=bytes(buf[hlen : h.total_length]),
        fragment=h.fragment_offset != 0,
    )


_EXT_HEADERS: Final = frozenset(
    (IpProto.HOPOPTS, IpProto.ROUTING, IpProto.FRAGMENT, IpProto.AH, IpProto.DSTOPTS)
)


def parse_ipv6(buf: Buffer) -> IpPacket:
    """Parse an IPv6 packet, walking extension headers to the upper-layer protocol."""
    h = Ipv6Header.decode(buf)
    if h.version != 6:
        raise DecodeError("IPv6", "version", 0, f"version {h.version}, expected 6")
    end = 40 + h.payload_length
    need("IPv6", len(buf), 0, end)
    nh, off, fragment = h.next_header, 40, False
    while nh in _EXT_HEADERS:
        need("IPv6", end, off, 8)
        nxt, hlen = buf[off], buf[off + 1]
        if nh == IpProto.FRAGMENT:
            size = 8
            frag_off = int.from_bytes(buf[off + 2 : off + 4], "big") >> 3
            fragment = fragment or frag_off != 0
        elif nh == IpProto.AH:
            size = (hlen + 2) * 4
        else:
            size = (hlen + 1) * 8
        need("IPv6", end, off, size)
        nh, off = nxt, off + size
        if fragment:
            break
    return IpPacket(
        header=h,
        src=IPv6Address(h.src),
        dst=IPv6Address(h.dst),
        protocol=nh,
        payload=bytes(buf[off:end]),
        fragment=fragment,
    )


def parse_ip(buf: Buffer) -> IpPacket:
    """Parse an IPv4 or IPv6 packet, dispatching on the version nibble."""
    need("IP", len(buf), 0, 1)
    v = buf[0] >> 4
    if v == 4:
        return parse_ipv4(buf)
    if v == 6:
        return parse_ipv6(buf)
    raise DecodeError("IP", "version", 0, f"version {v} is neither 4 nor 6")


def peek_destination(buf: Buffer) -> tuple[int, bytes]:
    """Transmit fast path: (EtherType, destination address bytes) of an IP packet.

    Reads only the version nibble and the destination field; no objects are built.
    """
    if len(buf) >= 20 and buf[0] >> 4 == 4:
        return 0x0800, bytes(buf[16:20])
    if len(buf) >= 40 and buf[0] >> 4 == 6:
        return 0x86DD, bytes(buf[24:40])
    need("IP", len(buf), 0, 40 if len(buf) and buf[0] >> 4 == 6 else 20)
    raise DecodeError("IP", "version", 0, f"version {buf[0] >> 4} is neither 4 nor 6")


def build_ipv4(
    src: AddrLike,
    dst: AddrLike,
    protocol: int,
    payload: Buffer,
    *,
    ttl: int = 64,
    tos: int = 0,
    identification: int = 0,
    dont_fragment: bool = False,
    options: bytes = b"",
) -> bytes:
    """An IPv4 packet with a correct header checksum; ``options`` are padded to 4 bytes."""
    opts = options + bytes(-len(options) % 4)
    ihl = 5 + len(opts) // 4
    if ihl > 15:
        raise EncodeError("IPv4", "options", f"{len(opts)} bytes of options is over 40")
    h = Ipv4Header(
        ihl=ihl, tos=tos, total_length=ihl * 4 + len(payload), identification=identification,
        flags=2 if dont_fragment else 0, ttl=ttl, protocol=protocol,
        src=_a4(src, "src"), dst=_a4(dst, "dst"),
    )
    head = h.encode() + opts
    csum = internet_checksum(head)
    return head[:10] + csum.to_bytes(2, "big") + head[12:] + bytes(payload)


def build_ipv6(
    src: AddrLike,
    dst: AddrLike,
    next_header: int,
    payload: Buffer,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """An IPv6 packet (no extension headers unless they are in ``payload``)."""
    h = Ipv6Header(
        traffic_class=traffic_class, flow_label=flow_label, payload_length=len(payload),
        next_header=next_header, hop_limit=hop_limit, src=_a6(src, "src"), dst=_a6(dst, "dst"),
    )
    return h.encode() + bytes(payload)


# --------------------------------------------------------------------------- UDP and ICMP


def build_udp(src: AddrLike, dst: AddrLike, sport: int, dport: int, payload: Buffer) -> bytes:
    """A UDP segment with its checksum over the ``src``/``dst`` pseudo-header."""
    seg = UdpHeader(sport=sport, dport=dport, length=8 + len(payload)).encode() + bytes(payload)
    c = udp_checksum(src, dst, seg)
    return seg[:6] + c.to_bytes(2, "big") + seg[8:]


def udp_packet(
    src: AddrLike, dst: AddrLike, sport: int, dport: int, payload: Buffer, *, ttl: int = 64
) -> bytes:
    """A whole IPv4 or IPv6 packet carrying one UDP datagram (``ttl`` is the hop limit)."""
    seg = build_udp(src, dst, sport, dport, payload)
    if is_ipv6(src):
        return build_ipv6(src, dst, IpProto.UDP, seg, hop_limit=ttl)
    return build_ipv4(src, dst, IpProto.UDP, seg, ttl=ttl)


def parse_udp(buf: Buffer) -> tuple[UdpHeader, bytes]:
    """The UDP header and payload (cut to the header's length) of a segment."""
    h = UdpHeader.decode(buf)
    if h.length < 8:
        raise DecodeError("UDP", "length", 4, f"length {h.length} is below 8")
    need("UDP", len(buf), 0, h.length)
    return h, bytes(buf[8 : h.length])


def build_icmpv4(type_: int, code: int, body: Buffer) -> bytes:
    """An ICMP message; ``body`` is everything after the checksum (RFC 792)."""
    m = IcmpHeader(type=type_, code=code).encode() + bytes(body)
    return m[:2] + internet_checksum(m).to_bytes(2, "big") + m[4:]


def build_icmpv6(src: AddrLike, dst: AddrLike, type_: int, code: int, body: Buffer) -> bytes:
    """An ICMPv6 message with its pseudo-header checksum (RFC 4443 §2.3)."""
    m = IcmpHeader(type=type_, code=code).encode() + bytes(body)
    return m[:2] + icmpv6_checksum(src, dst, m).to_bytes(2, "big") + m[4:]


def parse_icmp(buf: Buffer) -> tuple[IcmpHeader, bytes]:
    """The ICMP/ICMPv6 type word and the rest of the message (checksum not checked)."""
    return IcmpHeader.decode(buf), bytes(buf[4:])


# --------------------------------------------------------------------------- IGMP and MLD


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One group's state in a membership report (IGMPv1/v2/MLDv1 are mapped onto v3 terms).

    A v1/v2 report becomes MODE_IS_EXCLUDE with no sources ("everything"), a leave or done
    becomes CHANGE_TO_INCLUDE with no sources ("nothing"), as RFC 3376 §7 interoperates.
    """

    record_type: int
    group: IpAddress
    sources: tuple[IpAddress, ...] = ()

    @property
    def joined(self) -> bool | None:
        """True if the host listens to the group after this record, False if it left it,
        None when the record changes sources only (BLOCK_OLD_SOURCES)."""
        t = self.record_type
        if t in (GroupRecordType.MODE_IS_EXCLUDE, GroupRecordType.CHANGE_TO_EXCLUDE):
            return True
        if t in (GroupRecordType.MODE_IS_INCLUDE, GroupRecordType.CHANGE_TO_INCLUDE):
            return bool(self.sources)
        if t == GroupRecordType.ALLOW_NEW_SOURCES:
            return True if self.sources else None
        return None


@dataclass(frozen=True, slots=True)
class GroupReport:
    """What one IGMP or MLD message says about group membership.

    ``version`` is the protocol version of a report (IGMP 1-3, MLD 1-2) and 0 for messages
    that carry no membership (queries, other types); those have no records.
    """

    type: int
    version: int
    records: tuple[GroupRecord, ...] = ()

    @property
    def joined(self) -> list[IpAddress]:
        """Groups the host is a member of after this message."""
        return [r.group for r in self.records if r.joined is True]

    @property
    def left(self) -> list[IpAddress]:
        """Groups the host has left."""
        return [r.group for r in self.records if r.joined is False]


def parse_igmp(buf: Buffer) -> GroupReport:
    """Parse an IGMP message (the IPv4 payload with protocol 2)."""
    h = IgmpV2.decode(buf)
    g = IPv4Address(h.group)
    if h.type in (IgmpType.V1_REPORT, IgmpType.V2_REPORT):
        rec = GroupRecord(GroupRecordType.MODE_IS_EXCLUDE, g)
        return GroupReport(h.type, 1 if h.type == IgmpType.V1_REPORT else 2, (rec,))
    if h.type == IgmpType.V2_LEAVE:
        return GroupReport(h.type, 2, (GroupRecord(GroupRecordType.CHANGE_TO_INCLUDE, g),))
    if h.type != IgmpType.V3_REPORT:
        return GroupReport(h.type, 0)
    r = IgmpV3Report.decode(buf)
    return GroupReport(h.type, 3, _records(buf, 8, r.num_records, IgmpV3Record, 4, IPv4Address))


def parse_mld(buf: Buffer) -> GroupReport:
    """Parse an MLD message (the ICMPv6 message; its checksum is the caller's business)."""
    t = IcmpHeader.decode(buf).type
    if t in (MldType.V1_REPORT, MldType.V1_DONE):
        h = MldV1.decode(buf)
        kind = (GroupRecordType.MODE_IS_EXCLUDE if t == MldType.V1_REPORT
                else GroupRecordType.CHANGE_TO_INCLUDE)
        return GroupReport(t, 1, (GroupRecord(kind, IPv6Address(h.group)),))
    if t != MldType.V2_REPORT:
        return GroupReport(t, 0)
    r = MldV2Report.decode(buf)
    return GroupReport(t, 2, _records(buf, 8, r.num_records, MldV2Record, 16, IPv6Address))


def _records(
    buf: Buffer,
    off: int,
    count: int,
    rec: type[IgmpV3Record | MldV2Record],
    alen: int,
    addr: type[IPv4Address | IPv6Address],
) -> tuple[GroupRecord, ...]:
    out: list[GroupRecord] = []
    for _ in range(count):
        r = rec.decode(buf, off)
        off += rec.SIZE
        need(rec.NAME, len(buf), off, r.num_sources * alen + r.aux_len * 4)
        srcs = tuple(addr(bytes(buf[off + i * alen : off + (i + 1) * alen]))
                     for i in range(r.num_sources))
        off += r.num_sources * alen + r.aux_len * 4
        out.append(GroupRecord(r.record_type, addr(r.group), srcs))
    return tuple(out)


def parse_membership(packet: Buffer) -> GroupReport | None:
    """The membership news in an IP packet, or None if it is not IGMP/MLD (or a fragment)."""
    p = parse_ip(packet)
    if p.fragment:
        return None
    if p.version == 4 and p.protocol == IpProto.IGMP:
        return parse_igmp(p.payload)
    if p.version == 6 and p.protocol == IpProto.ICMPV6 and p.payload[:1] and (
        p.payload[0] in (MldType.QUERY, MldType.V1_REPORT, MldType.V1_DONE, MldType.V2_REPORT)
    ):
        return parse_mld(p.payload)
    return None


def build_igmpv2(type_: int, group: AddrLike, max_resp: int = 0) -> bytes:
    """An IGMPv1/v2 message (report, leave or query) with its checksum."""
    m = IgmpV2(type=type_, max_resp=max_resp, group=_a4(group, "group")).encode()
    return m[:2] + internet_checksum(m).to_bytes(2, "big") + m[4:]


def build_igmpv3_report(records: list[GroupRecord]) -> bytes:
    """An IGMPv3 membership report with its checksum."""
    body = b"".join(
        IgmpV3Record(record_type=r.record_type, num_sources=len(r.sources),
                     group=_a4(r.group, "group")).encode()
        + b"".join(_a4(s, "source") for s in r.sources)
        for r in records
    )
    m = IgmpV3Report(num_records=len(records)).encode() + body
    return m[:2] + internet_checksum(m).to_bytes(2, "big") + m[4:]


def build_mld(
    src: AddrLike, dst: AddrLike, type_: int, group: AddrLike, max_delay: int = 0
) -> bytes:
    """An MLDv1 query, report or done with its ICMPv6 checksum."""
    m = MldV1(type=type_, max_delay=max_delay, group=_a6(group, "group")).encode()
    return m[:2] + icmpv6_checksum(src, dst, m).to_bytes(2, "big") + m[4:]


def build_mldv2_report(
    src: AddrLike, records: list[GroupRecord], dst: AddrLike = MLDV2_ROUTERS
) -> bytes:
    """An MLDv2 report (sent to ff02::16) with its ICMPv6 checksum."""
    body = b"".join(
        MldV2Record(record_type=r.record_type, num_sources=len(r.sources),
                    group=_a6(r.group, "group")).encode()
        + b"".join(_a6(s, "source") for s in r.sources)
        for r in records
    )
    m = MldV2Report(num_records=len(records)).encode() + body
    return m[:2] + icmpv6_checksum(src, dst, m).to_bytes(2, "big") + m[4:]
