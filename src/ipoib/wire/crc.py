"""ICRC and VCRC, the two link checks of an InfiniBand packet (IBA 7.8; wire-formats.md §1.6-1.7).

Packets inside the fabric carry neither CRC (ARCHITECTURE.md, law 6): they are computed here
only where a capture or an explicit check needs them.

- **ICRC** (4 bytes, end to end): CRC-32/IEEE 802.3 (``zlib.crc32``) over the packet with its
  variant fields set to ones, so routers and switches can change them without breaking it.
  The whole LRH counts as variant; in the GRH TClass, FlowLabel and HopLmt; in the BTH byte 4
  (FECN, BECN, reserved). Sent least-significant byte first.
- **VCRC** (2 bytes, per link): CRC-16 with polynomial 0x100B (reflected 0xD008), init and final
  XOR 0xFFFF, over everything from the LRH through the ICRC, unmasked. Recomputed on every hop
  because the VL can change. Appended least-significant byte first (an assumption: no hardware
  vector exists, and tshark does not check it).
"""

from __future__ import annotations

import sys
import zlib
from array import array

from .errors import DecodeError
from .ib import BTH_SIZE, GRH_SIZE, ICRC_SIZE, LNH_GLOBAL, LNH_LOCAL, LRH_SIZE, VCRC_SIZE

Buffer = bytes | bytearray | memoryview

ICRC_RESIDUE = 0x2144DF1C
"""``zlib.crc32(masked + icrc)`` of a good packet (the raw register is 0xDEBB20E3)."""

_LRH_SEED = zlib.crc32(b"\xff" * LRH_SIZE)
"""The CRC-32 state after the eight ones bytes that stand for the masked LRH."""

VCRC_POLY_REFLECTED = 0xD008
"""x^16 + x^12 + x^3 + x + 1 (0x100B), bit-reversed for the LSB-first table."""


def _table8() -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ VCRC_POLY_REFLECTED if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_T8 = _table8()
# Two bytes per step: for a 16-bit reflected CRC, after 16 bits the old register has shifted
# out entirely, so crc' = T16[crc ^ word] with word = the next two bytes, first one low.
# A tuple (not an array) so the loop indexes existing ints: a third faster, about 2 MB.
_T16 = tuple(_T8[(_T8[x & 0xFF] ^ (x >> 8)) & 0xFF] ^ (_T8[x & 0xFF] ^ (x >> 8)) >> 8
             for x in range(1 << 16))


def vcrc_value(data: Buffer) -> int:
    """The VCRC of ``data`` as an integer (check value for ``b"123456789"``: 0x0A3D)."""
    crc = 0xFFFF
    n = len(data)
    even = n & ~1
    if sys.byteorder == "little":
        words: memoryview | array[int] = memoryview(bytes(data[:even])).cast("H")
    else:
        words = array("H", bytes(data[:even]))
        words.byteswap()
    t16 = _T16
    for w in words:
        crc = t16[crc ^ w]
    if n & 1:
        crc = (crc >> 8) ^ _T8[(crc ^ data[-1]) & 0xFF]
    return crc ^ 0xFFFF


def vcrc(data: Buffer) -> bytes:
    """The 2 VCRC bytes for ``data`` (LRH through ICRC), least-significant byte first."""
    return vcrc_value(data).to_bytes(VCRC_SIZE, "little")


def icrc_masked(masked: Buffer, crc: int = _LRH_SEED) -> int:
    """Continue the ICRC's CRC-32 over bytes already masked; the default start value stands
    for the eight ones bytes of a masked LRH (so RoCEv2, which has no LRH, uses it too)."""
    return zlib.crc32(masked, crc)


def _masked_headers(pkt: Buffer) -> tuple[bytes, int]:
    """The masked bytes after the LRH up to the end of the BTH, and where the rest starts."""
    n = len(pkt)
    if n < LRH_SIZE:
        raise DecodeError("ICRC", "length", 0, f"need an LRH ({LRH_SIZE} bytes), have {n}")
    lnh = pkt[1] & 3
    if lnh < LNH_LOCAL:
        raise DecodeError("ICRC", "lnh", 1, f"LNH {lnh}: raw packets carry no ICRC")
    off = LRH_SIZE + (GRH_SIZE if lnh == LNH_GLOBAL else 0)
    end = off + BTH_SIZE
    if n < end:
        raise DecodeError("ICRC", "length", off, f"need headers through the BTH ({end} bytes), "
                          f"have {n}")
    head = bytearray(pkt[LRH_SIZE:end])
    if lnh == LNH_GLOBAL:
        head[0] |= 0x0F  # TClass (low nibble of byte 0) ...
        head[1:4] = b"\xff\xff\xff"  # ... TClass and FlowLabel
        head[7] = 0xFF  # HopLmt
    head[off - LRH_SIZE + 4] = 0xFF  # BTH FECN/BECN/reserved
    return bytes(head), end


def icrc_value(pkt: Buffer) -> int:
    """The ICRC of a packet without CRCs, as an integer (bytes are its little-endian form)."""
    head, end = _masked_headers(pkt)
    return zlib.crc32(memoryview(pkt)[end:], zlib.crc32(head, _LRH_SEED))


def icrc(pkt: Buffer) -> bytes:
    """The 4 ICRC bytes of a packet (LRH through pad, no CRCs), in wire order."""
    return icrc_value(pkt).to_bytes(ICRC_SIZE, "little")


def append_crcs(pkt: Buffer) -> bytes:
    """The packet as it crosses a link: ``pkt + ICRC + VCRC``."""
    with_icrc = bytes(pkt) + icrc(pkt)
    return with_icrc + vcrc(with_icrc)


def check_crcs(pkt: Buffer) -> None:
    """Verify the VCRC, then the ICRC, of a packet that ends in both; raise on a mismatch.

    The VCRC is checked first, as a port would before looking inside the packet.
    """
    n = len(pkt)
    if n < LRH_SIZE + ICRC_SIZE + VCRC_SIZE:
        raise DecodeError("VCRC", "length", 0, f"{n} bytes cannot hold an LRH, ICRC and VCRC")
    got_v = bytes(pkt[n - VCRC_SIZE:])
    want_v = vcrc(pkt[: n - VCRC_SIZE])
    if got_v != want_v:
        raise DecodeError("VCRC", "vcrc", n - VCRC_SIZE,
                          f"VCRC {got_v.hex()} does not match {want_v.hex()}")
    body = pkt[: n - VCRC_SIZE - ICRC_SIZE]
    got_i = bytes(pkt[n - VCRC_SIZE - ICRC_SIZE: n - VCRC_SIZE])
    want_i = icrc(body)
    if got_i != want_i:
        raise DecodeError("ICRC", "icrc", n - VCRC_SIZE - ICRC_SIZE,
                          f"ICRC {got_i.hex()} does not match {want_i.hex()}")
