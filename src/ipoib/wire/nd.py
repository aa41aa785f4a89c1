"""IPv6 neighbour discovery as IPoIB needs it (RFC 4861, RFC 4391 §9.2).

ND is IPv6's ARP: a Neighbour Solicitation to the target's solicited-node group asks for its
link-layer address and the Advertisement carries it. On IPoIB that address is the 20-byte
:class:`~ipoib.wire.ipoib.HwAddr`, and the Source/Target Link-Layer Address option is
``type | length 3 | 2 pad bytes | 20-byte address`` (24 bytes; Linux
``ndisc_addr_option_pad``). Router Solicitation/Advertisement are parsed so the driver can
learn a router's address from the RA's source option.

Parsing is tolerant of option types it does not know (RFC 4861 §4.6: skip them) but strict
about the ones it reads, and rejects what §6.1/§7.1 tell a receiver to discard: options of
length 0, hop limit other than 255, code other than 0, a bad checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address
from typing import Final

from .errors import DecodeError, EncodeError, need
from .ip import (
    AddrLike,
    IpProto,
    build_icmpv6,
    build_ipv6,
    icmpv6_checksum_ok,
    parse_ipv6,
)
from .ipoib import HWADDR_LEN, HwAddr
from .layout import Buffer, Record, layout, raw, u

ND_HOP_LIMIT: Final = 255
ALL_NODES: Final = IPv6Address("ff02::1")
ALL_ROUTERS: Final = IPv6Address("ff02::2")
UNSPECIFIED: Final = IPv6Address("::")
LLA_PAD: Final = 2
"""Bytes between the option's length and the 20-byte address on IPoIB."""


class NdType(IntEnum):
    """ICMPv6 types of the ND messages handled here (RFC 4861 §4)."""

    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136


class NdOptType(IntEnum):
    """ND option types (RFC 4861 §4.6)."""

    SOURCE_LLA = 1
    TARGET_LLA = 2
    PREFIX_INFO = 3
    REDIRECTED_HEADER = 4
    MTU = 5


@layout(size=8, name="RS", section="RFC 4861 §4.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class RsHeader(Record):
    """Router Solicitation; options follow."""

    type: int = u(0, 8, default=NdType.ROUTER_SOLICITATION)
    code: int = u(1, 8)
    checksum: int = u(2, 16)


@layout(size=16, name="RA", section="RFC 4861 §4.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class RaHeader(Record):
    """Router Advertisement; options follow."""

    type: int = u(0, 8, default=NdType.ROUTER_ADVERTISEMENT)
    code: int = u(1, 8)
    checksum: int = u(2, 16)
    cur_hop_limit: int = u(4, 8)
    managed: int = u(5, 1)
    other: int = u(5, 1, bit=1)
    router_lifetime: int = u(6, 16)
    reachable_time: int = u(8, 32)
    retrans_timer: int = u(12, 32)


@layout(size=24, name="NS", section="RFC 4861 §4.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class NsHeader(Record):
    """Neighbour Solicitation; options follow."""

    type: int = u(0, 8, default=NdType.NEIGHBOR_SOLICITATION)
    code: int = u(1, 8)
    checksum: int = u(2, 16)
    target: bytes = raw(8, 16)


@layout(size=24, name="NA", section="RFC 4861 §4.4")
@dataclass(frozen=True, slots=True, kw_only=True)
class NaHeader(Record):
    """Neighbour Advertisement with its R(outer), S(olicited), O(verride) flags."""

    type: int = u(0, 8, default=NdType.NEIGHBOR_ADVERTISEMENT)
    code: int = u(1, 8)
    checksum: int = u(2, 16)
    router: int = u(4, 1)
    solicited: int = u(4, 1, bit=1)
    override: int = u(4, 1, bit=2)
    target: bytes = raw(8, 16)


@layout(size=24, name="ND link-layer address option", section="RFC 4391 §9.2, RFC 4861 §4.6.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class LlaOption(Record):
    """The IPoIB Source/Target Link-Layer Address option: length 3, 2 zero pad bytes."""

    type: int = u(0, 8, default=NdOptType.SOURCE_LLA)
    length: int = u(1, 8, default=3)
    address: bytes = raw(4, 20)


@layout(size=8, name="ND MTU option", section="RFC 4861 §4.6.4")
@dataclass(frozen=True, slots=True, kw_only=True)
class MtuOption(Record):
    """The link MTU a router advertises."""

    type: int = u(0, 8, default=NdOptType.MTU)
    length: int = u(1, 8, default=1)
    mtu: int = u(4, 32)


@layout(size=32, name="ND prefix information option", section="RFC 4861 §4.6.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixOption(Record):
    """A prefix a router advertises, with its on-link (L) and autonomous (A) flags."""

    type: int = u(0, 8, default=NdOptType.PREFIX_INFO)
    length: int = u(1, 8, default=4)
    prefix_length: int = u(2, 8, default=64)
    on_link: int = u(3, 1, default=1)
    autonomous: int = u(3, 1, bit=1, default=1)
    valid_lifetime: int = u(4, 32, default=0xFFFFFFFF)
    preferred_lifetime: int = u(8, 32, default=0xFFFFFFFF)
    prefix: bytes = raw(16, 16)


NdHeader = RsHeader | RaHeader | NsHeader | NaHeader

_HEADERS: Final[dict[int, type[NdHeader]]] = {
    NdType.ROUTER_SOLICITATION: RsHeader,
    NdType.ROUTER_ADVERTISEMENT: RaHeader,
    NdType.NEIGHBOR_SOLICITATION: NsHeader,
    NdType.NEIGHBOR_ADVERTISEMENT: NaHeader,
}


@dataclass(frozen=True, slots=True)
class NdOption:
    """One option as found: its type and its whole body (``length * 8`` bytes)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NdMessage:
    """A parsed ND message: the fixed header, the options in order, the decoded addresses."""

    header: NdHeader
    options: tuple[NdOption, ...]
    source_lladdr: HwAddr | None = None
    target_lladdr: HwAddr | None = None

    @property
    def type(self) -> int:
        """The ICMPv6 type."""
        return self.header.type

    @property
    def target(self) -> IPv6Address | None:
        """The target address of an NS or NA."""
        h = self.header
        return IPv6Address(h.target) if isinstance(h, NsHeader | NaHeader) else None

    @property
    def lladdr(self) -> HwAddr | None:
        """The link-layer address this message teaches: TLLA for an NA, SLLA otherwise."""
        if self.type == NdType.NEIGHBOR_ADVERTISEMENT:
            return self.target_lladdr
        return self.source_lladdr

    @property
    def mtu(self) -> int | None:
        """The MTU option's value, if the message has one."""
        for o in self.options:
            if o.type == NdOptType.MTU:
                return MtuOption.decode(o.data).mtu
        return None

    @property
    def prefixes(self) -> list[PrefixOption]:
        """The prefix information options (RA)."""
        return [PrefixOption.decode(o.data) for o in self.options
                if o.type == NdOptType.PREFIX_INFO]


def solicited_node(addr: AddrLike) -> IPv6Address:
    """The solicited-node multicast group of ``addr``: ff02::1:ffXX:XXXX (RFC 4291 §2.7.1)."""
    a = addr if isinstance(addr, bytes) else IPv6Address(addr).packed
    if len(a) != 16:
        raise EncodeError("IPv6", "address", f"need 16 bytes, got {len(a)}")
    return IPv6Address(bytes.fromhex("ff02" + "00" * 9 + "01ff") + a[13:])


def lla_option(type_: int, addr: HwAddr) -> bytes:
    """A Source (1) or Target (2) Link-Layer Address option carrying ``addr``."""
    return LlaOption(type=type_, address=addr.pack()).encode()


def parse_options(buf: Buffer, offset: int) -> tuple[NdOption, ...]:
    """Split ``buf[offset:]`` into options; a zero length or an overrun is a DecodeError."""
    out: list[NdOption] = []
    off = offset
    while off < len(buf):
        need("ND option", len(buf), off, 2)
        size = buf[off + 1] * 8
        if size == 0:
            raise DecodeError("ND option", "length", off + 1, "option length 0")
        need("ND option", len(buf), off, size)
        out.append(NdOption(buf[off], bytes(buf[off : off + size])))
        off += size
    return tuple(out)


def _lla(options: tuple[NdOption, ...], type_: int, offset: int) -> HwAddr | None:
    """The first LLA option of ``type_`` decoded; IPoIB's length must be 3 (24 bytes)."""
    for o in options:
        if o.type == type_:
            if len(o.data) != LlaOption.SIZE:
                raise DecodeError(
                    "ND link-layer address option", "length", offset,
                    f"{len(o.data) // 8}, IPoIB needs 3",
                )
            return HwAddr.unpack(o.data, 4)
        offset += len(o.data)
    return None


def parse(
    message: Buffer,
    src: AddrLike | None = None,
    dst: AddrLike | None = None,
    *,
    hop_limit: int | None = None,
) -> NdMessage:
    """Parse an ND ICMPv6 message (RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2 validity).

    With ``src`` and ``dst`` the checksum is verified; with ``hop_limit`` it must be 255.
    """
    need("ND", len(message), 0, 4)
    t, code = message[0], message[1]
    cls = _HEADERS.get(t)
    if cls is None:
        raise DecodeError("ND", "type", 0, f"ICMPv6 type {t} is not RS/RA/NS/NA")
    if code != 0:
        raise DecodeError("ND", "code", 1, f"code {code}, expected 0")
    if hop_limit is not None and hop_limit != ND_HOP_LIMIT:
        raise DecodeError("ND", "hop_limit", 0, f"hop limit {hop_limit}, expected 255")
    if src is not None and dst is not None and not icmpv6_checksum_ok(src, dst, message):
        raise DecodeError("ND", "checksum", 2, "ICMPv6 checksum mismatch")
    h: NdHeader = cls.decode(message)
    opts = parse_options(message, cls.SIZE)
    if isinstance(h, NsHeader | NaHeader) and IPv6Address(h.target).is_multicast:
        raise DecodeError("ND", "target", 8, "target is a multicast address")
    if isinstance(h, NaHeader) and h.solicited and dst is not None and _addr(dst).is_multicast:
        raise DecodeError("ND", "solicited", 4, "solicited advertisement sent to multicast")
    off = cls.SIZE
    for o in opts:
        want = _FIXED_OPTIONS.get(o.type)
        if want is not None and len(o.data) != want:
            raise DecodeError("ND option", "length", off + 1,
                              f"type {o.type} option of {len(o.data)} bytes, expected {want}")
        off += len(o.data)
    sll = _lla(opts, NdOptType.SOURCE_LLA, cls.SIZE)
    tll = _lla(opts, NdOptType.TARGET_LLA, cls.SIZE)
    if sll is not None and src is not None and _addr(src).is_unspecified:
        raise DecodeError("ND", "options", cls.SIZE, "source option from the unspecified address")
    return NdMessage(h, opts, sll, tll)


_FIXED_OPTIONS: Final[dict[int, int]] = {NdOptType.MTU: MtuOption.SIZE, NdOptType.PREFIX_INFO: PrefixOption.SIZE}


def _addr(a: AddrLike) -> IPv6Address:
    return a if isinstance(a, IPv6Address) else IPv6Address(a)


def parse_packet(packet: Buffer) -> NdMessage:
    """Parse a whole IPv6 packet carrying ND, with every receiver check applied."""
    p = parse_ipv6(packet)
    if p.protocol != IpProto.ICMPV6:
        raise DecodeError("ND", "next_header", 6, f"next header {p.protocol}, not ICMPv6")
    return parse(p.payload, p.src, p.dst, hop_limit=p.hop_limit)


# --------------------------------------------------------------------------- builders


def build_ns(
    src: AddrLike, dst: AddrLike, target: AddrLike, source_lladdr: HwAddr | None
) -> bytes:
    """A Neighbour Solicitation for ``target``.

    ``dst`` is the target's solicited-node group (resolution) or the target (unicast
    reachability probe). A DAD probe comes from ``::`` and must not carry ``source_lladdr``.
    """
    body = NsHeader(target=IPv6Address(target).packed).encode()[4:]
    if source_lladdr is not None:
        if _addr(src).is_unspecified:
            raise EncodeError("NS", "source_lladdr", "not allowed from the unspecified address")
        body += lla_option(NdOptType.SOURCE_LLA, source_lladdr)
    return build_icmpv6(src, dst, NdType.NEIGHBOR_SOLICITATION, 0, body)


def build_na(
    src: AddrLike,
    dst: AddrLike,
    target: AddrLike,
    target_lladdr: HwAddr | None,
    *,
    router: bool = False,
    solicited: bool = True,
    override: bool = True,
) -> bytes:
    """A Neighbour Advertisement saying ``target`` is at ``target_lladdr``.

    An unsolicited advertisement goes to ff02::1 and must have ``solicited`` False.
    """
    if solicited and _addr(dst).is_multicast:
        raise EncodeError("NA", "solicited", "must be 0 when sent to a multicast address")
    h = NaHeader(router=int(router), solicited=int(solicited), override=int(override),
                 target=IPv6Address(target).packed)
    body = h.encode()[4:]
    if target_lladdr is not None:
        body += lla_option(NdOptType.TARGET_LLA, target_lladdr)
    return build_icmpv6(src, dst, NdType.NEIGHBOR_ADVERTISEMENT, 0, body)


def build_rs(src: AddrLike, source_lladdr: HwAddr | None, dst: AddrLike = ALL_ROUTERS) -> bytes:
    """A Router Solicitation (to ff02::2 unless told otherwise)."""
    body = RsHeader().encode()[4:]
    if source_lladdr is not None:
        body += lla_option(NdOptType.SOURCE_LLA, source_lladdr)
    return build_icmpv6(src, dst, NdType.ROUTER_SOLICITATION, 0, body)


def build_ra(
    src: AddrLike,
    source_lladdr: HwAddr | None,
    dst: AddrLike = ALL_NODES,
    *,
    cur_hop_limit: int = 64,
    router_lifetime: int = 1800,
    reachable_time: int = 0,
    retrans_timer: int = 0,
    managed: bool = False,
    other: bool = False,
    mtu: int | None = None,
    prefixes: tuple[PrefixOption, ...] = (),
) -> bytes:
    """A Router Advertisement with the source option, an optional MTU and prefixes."""
    h = RaHeader(cur_hop_limit=cur_hop_limit, managed=int(managed), other=int(other),
                 router_lifetime=router_lifetime, reachable_time=reachable_time,
                 retrans_timer=retrans_timer)
    body = h.encode()[4:]
    if source_lladdr is not None:
        body += lla_option(NdOptType.SOURCE_LLA, source_lladdr)
    if mtu is not None:
        body += MtuOption(mtu=mtu).encode()
    body += b"".join(p.encode() for p in prefixes)
    return build_icmpv6(src, dst, NdType.ROUTER_ADVERTISEMENT, 0, body)


def set_lla_option(src: AddrLike, dst: AddrLike, message: Buffer, lladdr: HwAddr) -> bytes:
    """``message`` with its link-layer address option replaced by ``lladdr``'s.

    The host's stack sits on a TUN device with no link layer, so the ND it sends lacks the
    option (or has none that fits IPoIB); the driver puts in its own address before sending.
    NA gets a Target option, RS/RA/NS a Source option (none for a DAD probe from ``::``).
    Other options keep their order; the checksum is recomputed.
    """
    m = bytes(message)
    need("ND", len(m), 0, 4)
    cls = _HEADERS.get(m[0])
    if cls is None:
        raise DecodeError("ND", "type", 0, f"ICMPv6 type {m[0]} is not RS/RA/NS/NA")
    need("ND", len(m), 0, cls.SIZE)
    keep = [o.data for o in parse_options(m, cls.SIZE)
            if o.type not in (NdOptType.SOURCE_LLA, NdOptType.TARGET_LLA)]
    kind = NdOptType.TARGET_LLA if m[0] == NdType.NEIGHBOR_ADVERTISEMENT else NdOptType.SOURCE_LLA
    own = b"" if _addr(src).is_unspecified else lla_option(kind, lladdr)
    body = m[4 : cls.SIZE] + own + b"".join(keep)
    return build_icmpv6(src, dst, m[0], 0, body)


def nd_packet(src: AddrLike, dst: AddrLike, message: Buffer) -> bytes:
    """The IPv6 packet carrying an ND message (hop limit 255, as receivers require)."""
    return build_ipv6(src, dst, IpProto.ICMPV6, message, hop_limit=ND_HOP_LIMIT)


assert LlaOption.SIZE == LLA_PAD + 2 + HWADDR_LEN

__all__ = [
    "ALL_NODES", "ALL_ROUTERS", "LLA_PAD", "ND_HOP_LIMIT", "UNSPECIFIED", "LlaOption",
    "MtuOption", "NaHeader", "NdMessage", "NdOptType", "NdOption", "NdType", "NsHeader",
    "PrefixOption", "RaHeader", "RsHeader", "build_na", "build_ns", "build_ra", "build_rs",
    "lla_option", "nd_packet", "parse", "parse_options", "parse_packet", "set_lla_option",
    "solicited_node",
]
