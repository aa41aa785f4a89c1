"""IPoIB link layer: the 4-byte encapsulation header, the 20-byte address, multicast GIDs.

RFC 4391 defines how IP rides on an InfiniBand UD QP: every packet starts with a 4-byte header
holding an EtherType (§6), a link-layer address is (flags, QPN, GID) (§9.1.1, RFC 4755 adds
the flags), and IP multicast groups map onto IB multicast GIDs inside the link's partition
(§4). The mapping rules follow Linux (``ip_ib_mc_map``, ``ipv6_ib_mc_map``): scope and P_Key
are copied from the interface's broadcast address, so every group of a link lives in the same
partition as its broadcast group. wire-formats.md §7.1-7.3 and §7.8 give the byte tables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Final

from .errors import DecodeError, EncodeError
from .gid import gid_to_str
from .layout import Buffer, Record, layout, raw, u


class EtherType(IntEnum):
    """The EtherTypes Linux IPoIB transmits (``ipoib_start_xmit``)."""

    IPV4 = 0x0800
    ARP = 0x0806
    RARP = 0x8035
    IPV6 = 0x86DD
    TIPC = 0x88CA


ENCAP_LEN: Final = 4
"""Linux ``IPOIB_ENCAP_LEN``: the header in front of every IPoIB payload, UD and RC."""

HWADDR_LEN: Final = 20
"""Linux ``INFINIBAND_ALEN``."""

FLAG_RC: Final = 0x80
"""Hardware-address flag: the sender accepts connected-mode RC connections (RFC 4755)."""
FLAG_UC: Final = 0x40
"""Hardware-address flag: UC connected mode (RFC 4755; Linux defines but never sets it)."""

QPN_MULTICAST: Final = 0xFFFFFF
"""The QPN of every multicast hardware address and the BTH DestQP of multicast sends."""

SCOPE_LINK: Final = 0x2
SCOPE_SITE: Final = 0x5
SCOPE_ORG: Final = 0x8
SCOPE_GLOBAL: Final = 0xE

SIGNATURE_IPV4: Final = 0x401B
SIGNATURE_IPV6: Final = 0x601B
FULL_MEMBER: Final = 0x8000
"""P_Key bit 15; IPoIB MGIDs always carry it (Linux ``priv->pkey |= 0x8000``)."""

LINK_LOCAL_PREFIX: Final = bytes.fromhex("fe80000000000000")


@layout(size=4, name="IPoIB", section="RFC 4391 §6")
@dataclass(frozen=True, slots=True, kw_only=True)
class EncapHeader(Record):
    """The encapsulation header: an EtherType and 16 reserved bits (0 on send)."""

    type: int = u(0, 16)
    reserved: int = u(2, 16)


_ENCAP = struct.Struct(">HH")

ENCAP_IPV4: Final = _ENCAP.pack(EtherType.IPV4, 0)
ENCAP_IPV6: Final = _ENCAP.pack(EtherType.IPV6, 0)
ENCAP_ARP: Final = _ENCAP.pack(EtherType.ARP, 0)


def pack_encap(ethertype: int) -> bytes:
    """The 4 header bytes for ``ethertype`` (data path; :class:`EncapHeader` documents it)."""
    if not 0 <= ethertype <= 0xFFFF:
        raise EncodeError("IPoIB", "type", f"{ethertype!r} does not fit 16 bits")
    return _ENCAP.pack(ethertype, 0)


def unpack_encap(buf: Buffer, offset: int = 0) -> int:
    """The EtherType of the IPoIB packet at ``offset``; the reserved field is ignored."""
    if offset < 0 or len(buf) - offset < ENCAP_LEN:
        raise DecodeError(
            "IPoIB", "length", offset, f"need 4 bytes, have {max(len(buf) - offset, 0)}"
        )
    return int(_ENCAP.unpack_from(buf, offset)[0])


@layout(size=20, name="HwAddr", section="RFC 4391 §9.1.1, RFC 4755 §3")
@dataclass(frozen=True, slots=True, kw_only=True)
class HwAddr(Record):
    """An IPoIB link-layer address: flags, UD QPN and the port GID (or the MGID).

    It carries no LID: a sender resolves the GID to a path with an SA PathRecord query.
    Hashable, so it can key the driver's neighbour table the way Linux keys on all 20 bytes.
    """

    flags: int = u(0, 8)
    qpn: int = u(1, 24)
    gid: bytes = raw(4, 16)

    def pack(self) -> bytes:
        """The 20 bytes (same as ``encode()``, without going through the generic engine)."""
        if not 0 <= self.flags <= 0xFF:
            raise EncodeError("HwAddr", "flags", f"{self.flags!r} does not fit 8 bits")
        if not 0 <= self.qpn <= QPN_MULTICAST:
            raise EncodeError("HwAddr", "qpn", f"{self.qpn!r} does not fit 24 bits")
        if len(self.gid) != 16:
            raise EncodeError("HwAddr", "gid", f"need 16 bytes, got {len(self.gid)}")
        return (self.flags << 24 | self.qpn).to_bytes(4, "big") + bytes(self.gid)

    @classmethod
    def unpack(cls, buf: Buffer, offset: int = 0) -> HwAddr:
        """Read 20 bytes at ``offset``; a short buffer raises :class:`DecodeError`."""
        if offset < 0 or len(buf) - offset < HWADDR_LEN:
            raise DecodeError(
                "HwAddr", "length", offset, f"need 20 bytes, have {max(len(buf) - offset, 0)}"
            )
        word = int.from_bytes(buf[offset : offset + 4], "big")
        return cls(flags=word >> 24, qpn=word & 0xFFFFFF, gid=bytes(buf[offset + 4 : offset + 20]))

    @classmethod
    def parse(cls, s: str) -> HwAddr:
        """Parse Linux's text form (20 colon-separated hex bytes) or 40 bare hex digits.

        The bare form is what tshark prints for ``arp.src.hw``.
        """
        t = s.strip()
        parts = t.split(":") if ":" in t else [t[i : i + 2] for i in range(0, len(t), 2)]
        if len(parts) != HWADDR_LEN:
            raise DecodeError("HwAddr", "text", 0, f"need 20 bytes, got {len(parts)}: {s!r}")
        step = 3 if ":" in t else 2
        out = bytearray()
        for i, p in enumerate(parts):
            if len(p) != 2 or any(c not in "0123456789abcdefABCDEF" for c in p):
                raise DecodeError("HwAddr", "text", i * step, f"bad hex byte {p!r}")
            out.append(int(p, 16))
        return cls.unpack(out)

    def __str__(self) -> str:
        """Linux's form, as ``ip link`` prints it: ``80:00:00:48:fe:80:...``."""
        return ":".join(f"{b:02x}" for b in self.pack())

    def describe(self) -> str:
        """A reader's form for logs: ``qpn 0x000048 gid fe80::2:c903:0:1001 [RC]``."""
        caps = "".join((" [RC]" if self.rc_capable else "", " [UC]" if self.uc_capable else ""))
        return f"qpn {self.qpn:#08x} gid {gid_to_str(self.gid)}{caps}"

    @property
    def is_multicast(self) -> bool:
        """True for a multicast address (GID byte 0 is 0xFF; Linux tests ``hwaddr[4]``)."""
        return len(self.gid) == 16 and self.gid[0] == 0xFF

    @property
    def rc_capable(self) -> bool:
        """The peer accepts RC connections (connected mode, RFC 4755)."""
        return bool(self.flags & FLAG_RC)

    @property
    def uc_capable(self) -> bool:
        """The peer accepts UC connections (RFC 4755)."""
        return bool(self.flags & FLAG_UC)

    @property
    def subnet_prefix(self) -> int:
        """The GID's upper 64 bits."""
        return int.from_bytes(self.gid[:8], "big")

    @property
    def guid(self) -> int:
        """The GID's lower 64 bits: the port GUID of a unicast address."""
        return int.from_bytes(self.gid[8:16], "big")


def _check_pkey_scope(pkey: int, scope: int) -> None:
    if not 0 <= pkey <= 0xFFFF:
        raise EncodeError("MGID", "pkey", f"{pkey!r} does not fit 16 bits")
    if not 0 <= scope <= 0xF:
        raise EncodeError("MGID", "scope", f"{scope!r} does not fit 4 bits")


def broadcast_mgid(pkey: int = 0xFFFF, scope: int = SCOPE_LINK) -> bytes:
    """The IPv4 broadcast MGID ``ff1s:401b:PPPP::ffff:ffff`` of a partition (RFC 4391 §5).

    The full-member bit is forced, so limited P_Key 0x0001 and full 0x8001 share one group.
    """
    _check_pkey_scope(pkey, scope)
    return (
        bytes((0xFF, 0x10 | scope))
        + SIGNATURE_IPV4.to_bytes(2, "big")
        + (pkey | FULL_MEMBER).to_bytes(2, "big")
        + bytes(6)
        + b"\xff\xff\xff\xff"
    )


def mcast_hwaddr(mgid: bytes) -> HwAddr:
    """The hardware address of a multicast group: flags 0, QPN 0xFFFFFF, the MGID."""
    if len(mgid) != 16 or mgid[0] != 0xFF:
        raise EncodeError("HwAddr", "gid", "not a 16-byte multicast GID")
    return HwAddr(flags=0, qpn=QPN_MULTICAST, gid=bytes(mgid))


def broadcast_hwaddr(pkey: int = 0xFFFF, scope: int = SCOPE_LINK) -> HwAddr:
    """The link's broadcast address (Linux ``ipv4_bcast_addr`` with the P_Key patched in)."""
    return mcast_hwaddr(broadcast_mgid(pkey, scope))


def mgid_pkey(mgid: bytes) -> int:
    """The P_Key field (bytes 4-5) of an IPoIB MGID."""
    return int.from_bytes(mgid[4:6], "big")


def mgid_scope(mgid: bytes) -> int:
    """The scope nibble (byte 1, low 4 bits) of a multicast GID."""
    return mgid[1] & 0xF


def _mgid_head(signature: int, broadcast: HwAddr) -> bytes:
    """MGID bytes 0-5: scope and P_Key come from the broadcast address, as Linux does."""
    b = broadcast.gid
    return bytes((0xFF, 0x10 | (b[1] & 0xF))) + signature.to_bytes(2, "big") + b[4:6]


def ipv4_mcast_mgid(group: IPv4Address | str, broadcast: HwAddr) -> bytes:
    """The MGID of an IPv4 multicast group: 52 zero bits then the group's low 28 bits.

    RFC 4391 §4; Linux ``ip_ib_mc_map``. The caller handles broadcast addresses
    (:func:`ipv4_hwaddr` does).
    """
    a = IPv4Address(group)
    if not a.is_multicast:
        raise EncodeError("MGID", "group", f"{a} is not an IPv4 multicast address")
    p = a.packed
    return _mgid_head(SIGNATURE_IPV4, broadcast) + bytes(6) + bytes((p[0] & 0x0F,)) + p[1:]


def ipv6_mcast_mgid(group: IPv6Address | str, broadcast: HwAddr) -> bytes:
    """The MGID of an IPv6 multicast group: the group's low 80 bits (Linux ``ipv6_ib_mc_map``).

    The scope is the broadcast address's, not the one in the IPv6 group address.
    """
    a = IPv6Address(group)
    if not a.is_multicast:
        raise EncodeError("MGID", "group", f"{a} is not an IPv6 multicast address")
    return _mgid_head(SIGNATURE_IPV6, broadcast) + a.packed[6:]


def ipv4_hwaddr(
    addr: IPv4Address | str, broadcast: HwAddr, network: IPv4Network | None = None
) -> HwAddr:
    """The hardware address an IPv4 broadcast or multicast destination maps to.

    255.255.255.255 and the broadcast address of ``network`` go to the link's broadcast
    address (Linux ``arp_mc_map``, RTN_BROADCAST), never through the 28-bit rule.
    """
    a = IPv4Address(addr)
    if a == IPv4Address("255.255.255.255") or (
        network is not None and network.prefixlen < 31 and a == network.broadcast_address
    ):
        return broadcast
    return mcast_hwaddr(ipv4_mcast_mgid(a, broadcast))


def ipv6_mcast_hwaddr(group: IPv6Address | str, broadcast: HwAddr) -> HwAddr:
    """The hardware address of an IPv6 multicast group."""
    return mcast_hwaddr(ipv6_mcast_mgid(group, broadcast))


def mcast_addr_is_valid(addr: HwAddr, broadcast: HwAddr) -> bool:
    """Linux ``ipoib_mcast_addr_is_valid``: is ``addr`` a group of this link worth joining?

    Hardware-address bytes 0-5 and 7-9 must equal the broadcast address's (QPN, 0xFF, flags
    and scope, signature low byte, P_Key). Byte 6 (0x40 / 0x60) is not compared, so both
    IPv4 and IPv6 groups pass.
    """
    a, b = addr.pack(), broadcast.pack()
    return a[:6] == b[:6] and a[7:10] == b[7:10]


def interface_id(port_guid: int) -> bytes:
    """The IPv6 interface identifier: the port GUID with ``eui[0] |= 0x02`` (RFC 4391 §8).

    Linux ``addrconf_ifid_infiniband`` ORs the bit rather than flipping it.
    """
    if not 0 <= port_guid < 1 << 64:
        raise EncodeError("GUID", "port_guid", f"{port_guid!r} does not fit 64 bits")
    eui = bytearray(port_guid.to_bytes(8, "big"))
    eui[0] |= 0x02
    return bytes(eui)


def link_local_address(port_guid: int) -> IPv6Address:
    """The fe80::/64 address built from :func:`interface_id`."""
    return IPv6Address(LINK_LOCAL_PREFIX + interface_id(port_guid))


__all__ = [
    "ENCAP_ARP", "ENCAP_IPV4", "ENCAP_IPV6", "ENCAP_LEN", "FLAG_RC", "FLAG_UC", "FULL_MEMBER",
    "HWADDR_LEN", "LINK_LOCAL_PREFIX", "QPN_MULTICAST", "SCOPE_GLOBAL", "SCOPE_LINK",
    "SCOPE_ORG", "SCOPE_SITE", "SIGNATURE_IPV4", "SIGNATURE_IPV6", "EncapHeader", "EtherType",
    "HwAddr", "broadcast_hwaddr", "broadcast_mgid", "interface_id", "ipv4_hwaddr",
    "ipv4_mcast_mgid", "ipv6_mcast_hwaddr", "ipv6_mcast_mgid", "link_local_address",
    "mcast_addr_is_valid", "mcast_hwaddr", "mgid_pkey", "mgid_scope", "pack_encap",
    "unpack_encap",
]
