"""The virtio-net header that prefixes every packet on a TUN opened with ``IFF_VNET_HDR``.

Linux's TUN driver speaks the legacy 10-byte ``struct virtio_net_hdr`` (virtio 1.x §5.1.6,
``include/uapi/linux/virtio_net.h``), in host byte order (little-endian here): it tells the
kernel that a written packet is a GSO super-packet (several TCP segments of ``gso_size``
bytes behind one header) whose checksum the stack may take as done. It is what lets the
driver hand the host one coalesced packet where the wire carried many (GRO, as Linux's IPoIB
does on receive). Packets read from a TUN carry one too; with no offloads enabled it says
"nothing": no GSO, no checksum flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from .layout import Record, layout, u, ule

VNET_HDR_SIZE: Final = 10


class VnetFlags(IntFlag):
    """``virtio_net_hdr.flags``."""

    NEEDS_CSUM = 1
    """The checksum at ``csum_start + csum_offset`` holds only the pseudo-header sum; the
    stack treats the packet's checksum as correct (CHECKSUM_PARTIAL)."""
    DATA_VALID = 2


class GsoType(IntEnum):
    """``virtio_net_hdr.gso_type``."""

    NONE = 0
    TCPV4 = 1
    UDP = 3
    TCPV6 = 4


@layout(size=VNET_HDR_SIZE, name="virtio_net_hdr",
        section="virtio 1.x §5.1.6 (legacy header, host byte order)")
@dataclass(frozen=True, slots=True, kw_only=True)
class VnetHdr(Record):
    """The per-packet offload header of a TUN with ``IFF_VNET_HDR``."""

    flags: int = u(0, 8)
    gso_type: int = u(1, 8)
    hdr_len: int = ule(2, 2)
    """Bytes of headers (IP + TCP) in front of the first segment's payload."""
    gso_size: int = ule(4, 2)
    """Payload bytes per segment (the MSS); the last segment may be shorter."""
    csum_start: int = ule(6, 2)
    csum_offset: int = ule(8, 2)


PLAIN: Final = bytes(VNET_HDR_SIZE)
"""The header of an ordinary packet: no GSO, checksum to be verified by the stack."""
