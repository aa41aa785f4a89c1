"""ARP over IPoIB: RFC 826 with hardware type 32 and 20-byte addresses (RFC 4391 §9).

ARP is how an IPoIB interface learns a neighbour's (flags, QPN, GID); the path to that GID
comes afterwards from the SA. A request goes to the broadcast group, a reply goes unicast.
The packet is 56 bytes (wire-formats.md §7.7). The Linux kernel's ARP on an IPoIB device
ignores ARP for other hardware types, so the decoder rejects anything that is not exactly
htype 32 / ptype 0x0800 / hlen 20 / plen 4 with a :class:`DecodeError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Final

from .errors import DecodeError, EncodeError
from .ipoib import HWADDR_LEN, HwAddr
from .layout import Buffer, Record, layout, raw, u

HTYPE_INFINIBAND: Final = 32
"""ARP hardware type for InfiniBand (IANA; Linux ``ARPHRD_INFINIBAND``)."""
PTYPE_IPV4: Final = 0x0800
ARP_LEN: Final = 56
ZERO_HWADDR: Final = HwAddr()


class ArpOp(IntEnum):
    """ARP operation codes (RFC 826; RARP's 3 and 4 are not spoken here)."""

    REQUEST = 1
    REPLY = 2


@layout(size=56, name="ARP", section="RFC 826, RFC 4391 §9.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class ArpPacket(Record):
    """An IPoIB ARP packet; ``sha``/``tha`` are the 20-byte hardware addresses."""

    htype: int = u(0, 16, default=HTYPE_INFINIBAND)
    ptype: int = u(2, 16, default=PTYPE_IPV4)
    hlen: int = u(4, 8, default=HWADDR_LEN)
    plen: int = u(5, 8, default=4)
    oper: int = u(6, 16, default=ArpOp.REQUEST)
    sha: bytes = raw(8, 20)
    spa: bytes = raw(28, 4)
    tha: bytes = raw(32, 20)
    tpa: bytes = raw(52, 4)

    @property
    def sender_hw(self) -> HwAddr:
        """The sender's hardware address."""
        return HwAddr.unpack(self.sha)

    @property
    def target_hw(self) -> HwAddr:
        """The target's hardware address (all zeros in a request)."""
        return HwAddr.unpack(self.tha)

    @property
    def sender_ip(self) -> IPv4Address:
        """The sender's protocol address."""
        return IPv4Address(self.spa)

    @property
    def target_ip(self) -> IPv4Address:
        """The target's protocol address."""
        return IPv4Address(self.tpa)

    @property
    def is_request(self) -> bool:
        """True for a request."""
        return self.oper == ArpOp.REQUEST

    @property
    def is_gratuitous(self) -> bool:
        """A gratuitous ARP announces the sender's own address (spa == tpa)."""
        return self.spa == self.tpa

    @property
    def is_probe(self) -> bool:
        """An address-conflict probe (RFC 5227 §2.1.1): a request with sender address 0."""
        return self.oper == ArpOp.REQUEST and self.spa == bytes(4)


def _ip(addr: IPv4Address | str | bytes, field: str) -> bytes:
    if isinstance(addr, bytes):
        if len(addr) != 4:
            raise EncodeError("ARP", field, f"need 4 bytes, got {len(addr)}")
        return addr
    try:
        return IPv4Address(addr).packed
    except ValueError as e:
        raise EncodeError("ARP", field, str(e)) from None


def build(
    oper: int,
    sha: HwAddr,
    spa: IPv4Address | str | bytes,
    tha: HwAddr,
    tpa: IPv4Address | str | bytes,
) -> bytes:
    """The 56 bytes of an ARP packet."""
    return ArpPacket(
        oper=oper, sha=sha.pack(), spa=_ip(spa, "spa"), tha=tha.pack(), tpa=_ip(tpa, "tpa")
    ).encode()


def build_request(
    sha: HwAddr, spa: IPv4Address | str | bytes, tpa: IPv4Address | str | bytes
) -> bytes:
    """A request from (``sha``, ``spa``) asking for ``tpa``; the target address is zero."""
    return build(ArpOp.REQUEST, sha, spa, ZERO_HWADDR, tpa)


def build_reply(
    sha: HwAddr,
    spa: IPv4Address | str | bytes,
    tha: HwAddr,
    tpa: IPv4Address | str | bytes,
) -> bytes:
    """A reply: ``spa`` is at ``sha``, sent to the requester (``tha``, ``tpa``)."""
    return build(ArpOp.REPLY, sha, spa, tha, tpa)


def build_gratuitous(sha: HwAddr, spa: IPv4Address | str | bytes) -> bytes:
    """A gratuitous request announcing ``spa`` at ``sha`` (sent after an address change)."""
    return build(ArpOp.REQUEST, sha, spa, ZERO_HWADDR, spa)


def reply_to(request: ArpPacket, sha: HwAddr) -> bytes:
    """The reply to ``request`` from the owner of its target address, at ``sha``."""
    return ArpPacket(
        oper=ArpOp.REPLY, sha=sha.pack(), spa=request.tpa, tha=request.sha, tpa=request.spa
    ).encode()


_EXPECT: Final = (
    ("htype", 0, HTYPE_INFINIBAND),
    ("ptype", 2, PTYPE_IPV4),
    ("hlen", 4, HWADDR_LEN),
    ("plen", 5, 4),
)


def parse(buf: Buffer, offset: int = 0) -> ArpPacket:
    """Decode and validate an IPoIB ARP packet; trailing bytes are ignored.

    The fixed fields are checked before the length, so a foreign ARP (say Ethernet's 28-byte
    one) is reported as the wrong ``htype``, not as truncated.
    """
    n = len(buf) - offset if offset >= 0 else 0
    for name, at, want in _EXPECT:
        size = 2 if name in ("htype", "ptype") else 1
        if n >= at + size:
            got = int.from_bytes(buf[offset + at : offset + at + size], "big")
            if got != want:
                raise DecodeError("ARP", name, offset + at, f"{got:#x}, expected {want:#x}")
    p = ArpPacket.decode(buf, offset)
    if p.oper not in (ArpOp.REQUEST, ArpOp.REPLY):
        raise DecodeError("ARP", "oper", offset + 6, f"operation {p.oper} is not 1 or 2")
    return p


__all__ = [
    "ARP_LEN", "HTYPE_INFINIBAND", "PTYPE_IPV4", "ZERO_HWADDR", "ArpOp", "ArpPacket", "build",
    "build_gratuitous", "build_reply", "build_request", "parse", "reply_to",
]
