"""InfiniBand UD packets: LRH, GRH, BTH, DETH and the whole-packet API (wire-formats.md §1).

A UD packet inside the fabric is ``bytes`` from the first LRH byte through the last pad byte::

    LRH(8) [GRH(40)] BTH(12) DETH(8) [ImmDt(4)] payload pad(0-3)

with no ICRC/VCRC (docs/conventions.md; :mod:`ipoib.wire.crc` appends them for captures).
LRH PktLen still counts the 4-byte ICRC, as on a real link, so the bytes are what an HCA sends.

Three ways in, by cost:

- The :class:`Lrh`, :class:`Grh`, :class:`Bth`, :class:`Deth` records document each header and
  are the slow path (``encode``/``decode`` through :mod:`ipoib.wire.layout`).
- :func:`build_ud` / :func:`parse_ud` handle a whole packet with precompiled structs;
  :func:`parse_ud` checks every integrity rule Linux checks and returns a :class:`UdPacket`.
- The hot path: a :class:`UdTemplate` is built once per destination (an address handle) and
  :meth:`UdTemplate.packet` only supplies the length fields (cached per payload length);
  :func:`check_ud` and the ``lrh_*``/``bth_*``/``deth_*`` peek functions read single fields
  without creating objects, for switches and QPs that look at a few fields per hop;
  :func:`peek_ud` checks and reads a whole data packet (no GRH) in one unpack.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from .errors import DecodeError, EncodeError
from .layout import Record, layout, raw, u

Buffer = bytes | bytearray | memoryview

# --- sizes (IBA 7.7, 8.3, 9.2, 9.3; Linux ib_pack.h) -------------------------------------

LRH_SIZE = 8
GRH_SIZE = 40
BTH_SIZE = 12
DETH_SIZE = 8
IMMDT_SIZE = 4
ICRC_SIZE = 4
VCRC_SIZE = 2
UD_HEADER_SIZE = LRH_SIZE + BTH_SIZE + DETH_SIZE
"""LRH + BTH + DETH: the header of a UD SEND_ONLY without GRH (28 bytes)."""
UD_GRH_HEADER_SIZE = UD_HEADER_SIZE + GRH_SIZE
"""LRH + GRH + BTH + DETH (68 bytes)."""
MAX_PKT_WORDS = 0x7FF
"""LRH PktLen is 11 bits of 4-byte words."""

# --- field values -------------------------------------------------------------------------

LNH_RAW = 0
LNH_IPV6 = 1
LNH_LOCAL = 2
"""LRH.LNH: IBA local, BTH follows the LRH."""
LNH_GLOBAL = 3
"""LRH.LNH: IBA global, a GRH follows the LRH."""

GRH_IPVER = 6
GRH_NXT_HDR_IBA = 0x1B
"""GRH.NxtHdr for an IBA transport header (BTH) next."""

OP_UD_SEND_ONLY = 0x64
OP_UD_SEND_ONLY_IMM = 0x65
UD_OPCODES = (OP_UD_SEND_ONLY, OP_UD_SEND_ONLY_IMM)

QP0 = 0
"""The SMI QP: SMPs, VL15, Q_Key not checked."""
QP1 = 1
"""The GSI QP: SA, PerfMgt, CM MADs."""
GSI_QKEY = 0x8001_0000
MULTICAST_QPN = 0xFF_FFFF
PERMISSIVE_LID = 0xFFFF
MCAST_LID_BASE = 0xC000
MCAST_LID_MAX = 0xFFFE
UNICAST_LID_MAX = 0xBFFF
VL15 = 15
DEFAULT_PKEY = 0xFFFF
PKEY_FULL_MEMBER = 0x8000
"""P_Key bit 15: full member (1) or limited member (0)."""
CONTROLLED_QKEY_BIT = 0x8000_0000


def is_multicast_lid(lid: int) -> bool:
    """True for a LID in the multicast range 0xC000-0xFFFE (the permissive LID is not)."""
    return MCAST_LID_BASE <= lid <= MCAST_LID_MAX


# --- the records: documentation and slow path ---------------------------------------------


@layout(size=LRH_SIZE, name="LRH", section="IBA 7.7")
@dataclass(frozen=True, slots=True, kw_only=True)
class Lrh(Record):
    """Local Route Header: link-level addressing, rewritten (VL) at every hop."""

    vl: int = u(0, 4)
    lver: int = u(0, 4, bit=4)
    sl: int = u(1, 4)
    lnh: int = u(1, 2, bit=6, default=LNH_LOCAL)
    dlid: int = u(2, 16)
    pkt_len: int = u(4, 11, bit=5)
    slid: int = u(6, 16)


@layout(size=GRH_SIZE, name="GRH", section="IBA 8.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class Grh(Record):
    """Global Route Header: IPv6-shaped, present for multicast and routed traffic (LNH 3)."""

    ipver: int = u(0, 4, default=GRH_IPVER)
    tclass: int = u(0, 8, bit=4)
    flow_label: int = u(1, 20, bit=4)
    pay_len: int = u(4, 16)
    nxt_hdr: int = u(6, 8, default=GRH_NXT_HDR_IBA)
    hop_lmt: int = u(7, 8)
    sgid: bytes = raw(8, 16)
    dgid: bytes = raw(24, 16)


@layout(size=BTH_SIZE, name="BTH", section="IBA 9.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class Bth(Record):
    """Base Transport Header: opcode, partition and destination QP."""

    opcode: int = u(0, 8, default=OP_UD_SEND_ONLY)
    se: int = u(1, 1)
    m: int = u(1, 1, bit=1)
    pad_cnt: int = u(1, 2, bit=2)
    tver: int = u(1, 4, bit=4)
    pkey: int = u(2, 16, default=DEFAULT_PKEY)
    fecn: int = u(4, 1)
    becn: int = u(4, 1, bit=1)
    dest_qp: int = u(5, 24)
    ack_req: int = u(8, 1)
    psn: int = u(9, 24)


@layout(size=DETH_SIZE, name="DETH", section="IBA 9.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class Deth(Record):
    """Datagram Extended Transport Header: the Q_Key and the sender's QP of a UD packet."""

    qkey: int = u(0, 32)
    src_qp: int = u(5, 24)


@dataclass(frozen=True, slots=True)
class UdPacket:
    """A decoded UD packet: its headers and the payload with the pad stripped."""

    lrh: Lrh
    grh: Grh | None
    bth: Bth
    deth: Deth
    imm: int | None
    payload: bytes


# --- precompiled structs (same layouts as the records above) -------------------------------

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_LRH = struct.Struct(">BBHHH")  # vl|lver, sl|lnh, dlid, pkt_len, slid
_GRH = struct.Struct(">IHBB16s16s")  # ipver|tclass|flow_label, pay_len, nxt_hdr, hop_lmt, gids
# BTH + DETH: opcode, se|m|pad|tver, pkey, fecn|becn|dest_qp, ack_req|psn, qkey, src_qp
_BTH_DETH = struct.Struct(">BBHIIII")
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0")
# PktLen (bytes 4-5 of the LRH; bits 15-11 are reserved zeros) for every word count, and
# GRH PayLen for every word count: PayLen = 4 * (PktLen - (LRH + GRH) / 4).
_WORDS = tuple(_U16.pack(w) for w in range(MAX_PKT_WORDS + 1))
_GRH_WORDS = (LRH_SIZE + GRH_SIZE) // 4
_PAYLEN = tuple(
    _U16.pack(4 * (w - _GRH_WORDS)) if w >= _GRH_WORDS else b"" for w in range(MAX_PKT_WORDS + 1)
)


def _range_error(fmt: str, values: tuple[tuple[str, int, int], ...]) -> EncodeError:
    for name, v, bits in values:
        if not isinstance(v, int) or v < 0 or v >> bits:
            return EncodeError(fmt, name, f"{v!r} does not fit {bits} bits")
    return EncodeError(fmt, "?", "a value is out of range")


def _headers(
    vl: int, sl: int, dlid: int, slid: int, pkey: int, dest_qp: int, qkey: int, src_qp: int,
    grh: Grh | None, psn: int, solicited: int, imm: int | None,
) -> tuple[bytes, bytes, bytes, int]:
    """(LRH, GRH-or-empty, BTH+DETH[+ImmDt] with PadCnt 0, header length); ranges checked."""
    try:
        bad = bool((vl | sl) >> 4 or (dlid | slid | pkey) >> 16 or (dest_qp | src_qp | psn) >> 24
                   or qkey >> 32 or solicited >> 1
                   or min(vl, sl, dlid, slid, pkey, dest_qp, src_qp, psn, qkey, solicited) < 0)
    except TypeError:
        bad = True
    if bad:
        raise _range_error("UD", (
            ("vl", vl, 4), ("sl", sl, 4), ("dlid", dlid, 16), ("slid", slid, 16),
            ("pkey", pkey, 16), ("dest_qp", dest_qp, 24), ("src_qp", src_qp, 24),
            ("psn", psn, 24), ("qkey", qkey, 32), ("solicited", solicited, 1)))
    if imm is None:
        opcode, tail = OP_UD_SEND_ONLY, b""
    else:
        if not isinstance(imm, int) or not 0 <= imm < 1 << 32:
            raise EncodeError("ImmDt", "imm", f"{imm!r} does not fit 32 bits")
        opcode, tail = OP_UD_SEND_ONLY_IMM, _U32.pack(imm)
    lrh = _LRH.pack(vl << 4, sl << 4 | (LNH_LOCAL if grh is None else LNH_GLOBAL), dlid, 0, slid)
    bth_deth = _BTH_DETH.pack(opcode, solicited << 7, pkey, dest_qp, psn, qkey, src_qp) + tail
    if grh is None:
        g = b""
    else:
        g = grh.replace(pay_len=0).encode()
    return lrh, g, bth_deth, LRH_SIZE + len(g) + len(bth_deth)


def build_ud(
    *, vl: int, sl: int, dlid: int, slid: int, pkey: int, dest_qp: int, qkey: int,
    src_qp: int, payload: Buffer, grh: Grh | None = None, psn: int = 0, solicited: int = 0,
    imm: int | None = None,
) -> bytes:
    """A whole UD SEND_ONLY packet (LRH [GRH] BTH DETH [ImmDt] payload pad), without CRCs.

    LNH, PktLen, PadCnt and (with a GRH) PayLen are computed; ``grh.pay_len`` is ignored.
    Out-of-range values raise :class:`EncodeError`. For repeated sends to one destination
    use :class:`UdTemplate`, which does the header work once.
    """
    lrh, g, bth_deth, hlen = _headers(vl, sl, dlid, slid, pkey, dest_qp, qkey, src_qp, grh,
                                      psn, solicited, imm)
    n = len(payload)
    pad = -n & 3
    words = (hlen + n + pad + ICRC_SIZE) >> 2
    if words > MAX_PKT_WORDS:
        raise EncodeError("LRH", "pkt_len", f"payload of {n} bytes makes {words} words > 2047")
    parts: list[Buffer] = [lrh[:4], _WORDS[words], lrh[6:]]
    if g:
        parts += [g[:4], _PAYLEN[words], g[6:]]
    parts += [bth_deth[:1], bytes((bth_deth[1] | pad << 4,)), bth_deth[2:], payload, _PADS[pad]]
    return b"".join(parts)


class UdTemplate:
    """A prebuilt UD header for one destination; :meth:`packet` adds a payload.

    Everything but LRH PktLen, BTH PadCnt and GRH PayLen is fixed when the template is made
    (the address handle is resolved once). The whole header for a payload length is made
    from pieces split around those fields, with the length bytes from a table, and kept for
    the next packet of that length (IP traffic repeats a few lengths), so a send is usually
    one dict lookup and one concatenation. At most :attr:`CACHE_LENGTHS` lengths are kept.
    """

    CACHE_LENGTHS: ClassVar[int] = 32

    __slots__ = ("_a", "_b", "_c", "_fixed", "_hdrs", "dest_qp", "dlid", "header_size", "lnh",
                 "pkey", "qkey", "sl", "slid", "src_qp", "vl")

    def __init__(
        self, *, vl: int, sl: int, dlid: int, slid: int, pkey: int, dest_qp: int, qkey: int,
        src_qp: int, grh: Grh | None = None, psn: int = 0, solicited: int = 0,
        imm: int | None = None,
    ) -> None:
        lrh, g, bth_deth, hlen = _headers(vl, sl, dlid, slid, pkey, dest_qp, qkey, src_qp,
                                          grh, psn, solicited, imm)
        tails = tuple(bth_deth[:1] + bytes((bth_deth[1] | pad << 4,)) + bth_deth[2:]
                      for pad in range(4))
        self.header_size = hlen
        self.lnh = LNH_GLOBAL if g else LNH_LOCAL
        self.dlid = dlid
        self.dest_qp = dest_qp
        self.vl, self.sl, self.slid = vl, sl, slid
        self.pkey, self.qkey, self.src_qp = pkey, qkey, src_qp
        self._fixed = hlen + ICRC_SIZE
        self._hdrs: dict[int, bytes] = {}
        self._a = lrh[:4]
        if g:
            # a | PktLen | lrh[6:8] + grh[0:4] | PayLen | grh[6:] + bth/deth(pad)
            self._b = lrh[6:] + g[:4]
            self._c = tuple(g[6:] + t for t in tails)
        else:
            # a | PktLen | lrh[6:8] + bth/deth(pad)
            self._b = b""
            self._c = tuple(lrh[6:] + t for t in tails)

    def header(self, n: int) -> bytes:
        """The header bytes for an ``n``-byte payload (everything before the payload)."""
        pad = -n & 3
        words = (self._fixed + n + pad) >> 2
        if words > MAX_PKT_WORDS or n < 0:
            raise EncodeError("LRH", "pkt_len", f"payload of {n} bytes makes {words} words")
        if self._b:
            h = b"".join((self._a, _WORDS[words], self._b, _PAYLEN[words], self._c[pad]))
        else:
            h = self._a + _WORDS[words] + self._c[pad]
        if len(self._hdrs) < self.CACHE_LENGTHS:
            self._hdrs[n] = h
        return h

    def packet(self, payload: Buffer) -> bytes:
        """The full packet (no CRCs) carrying ``payload``; same bytes as :func:`build_ud`."""
        n = len(payload)
        h = self._hdrs.get(n) or self.header(n)
        if n & 3:
            return b"".join((h, payload, _PADS[-n & 3]))
        return h + payload

    def packet_sg(self, head: Buffer, payload: Buffer) -> bytes:
        """The packet carrying ``head`` then ``payload`` (a two-entry gather list): one
        join, so a caller with a small header of its own copies the payload once."""
        n = len(head) + len(payload)
        h = self._hdrs.get(n) or self.header(n)
        if n & 3:
            return b"".join((h, head, payload, _PADS[-n & 3]))
        return b"".join((h, head, payload))

    def packets_sg(self, head: Buffer, payloads: Iterable[Buffer]) -> list[bytes]:
        """:meth:`packet_sg` for each of ``payloads`` (a send chain), in one comprehension."""
        hdrs, hl, pads, header = self._hdrs, len(head), _PADS, self.header
        return [b"".join((hdrs.get(hl + len(p)) or header(hl + len(p)), head, p,
                          pads[-(hl + len(p)) & 3])) for p in payloads]

    def max_payload(self) -> int:
        """The largest payload PktLen can describe with this header (a multiple of 4)."""
        return MAX_PKT_WORDS * 4 - self._fixed


# --- integrity checks and parsing -----------------------------------------------------------


def _short(fmt: str, offset: int, size: int, have: int) -> DecodeError:
    return DecodeError(fmt, "length", offset, f"need {size} bytes, have {max(have - offset, 0)}")


def check_ud(pkt: Buffer) -> int:
    """Check a UD packet (no CRCs) the way Linux ``ib_ud_header_unpack`` does; return the
    BTH offset.

    Checks: LRH LVer 0 and LNH 2/3; the length equals PktLen words minus the ICRC; GRH IPVer
    6, NxtHdr 0x1B and PayLen; BTH opcode UD SEND_ONLY[_IMM], TVer 0; PadCnt not more than
    the bytes after the headers. Raises :class:`DecodeError` naming header, field and offset.
    """
    n = len(pkt)
    if n < LRH_SIZE:
        raise _short("LRH", 0, LRH_SIZE, n)
    b0, b1, _dlid, words, _slid = _LRH.unpack_from(pkt, 0)
    if b0 & 0x0F:
        raise DecodeError("LRH", "lver", 0, f"LVer {b0 & 0x0F}, expected 0")
    lnh = b1 & 3
    if lnh < LNH_LOCAL:
        raise DecodeError("LRH", "lnh", 1, f"LNH {lnh} is a raw packet, not IBA transport")
    if words >> 11:
        raise DecodeError("LRH", "pkt_len", 4, f"reserved bits set in {words:#06x}")
    if words * 4 - ICRC_SIZE != n:
        raise DecodeError("LRH", "pkt_len", 4,
                          f"PktLen {words} words means {words * 4 - ICRC_SIZE} bytes before "
                          f"the ICRC, packet has {n}")
    off = LRH_SIZE
    if lnh == LNH_GLOBAL:
        if n < LRH_SIZE + GRH_SIZE:
            raise _short("GRH", LRH_SIZE, GRH_SIZE, n)
        w0, pay_len, nxt = pkt[8] >> 4, _U16.unpack_from(pkt, 12)[0], pkt[14]
        if w0 != GRH_IPVER:
            raise DecodeError("GRH", "ipver", 8, f"IPVer {w0}, expected 6")
        if nxt != GRH_NXT_HDR_IBA:
            raise DecodeError("GRH", "nxt_hdr", 14, f"NxtHdr {nxt:#04x}, expected 0x1b")
        if pay_len != n - LRH_SIZE - GRH_SIZE + ICRC_SIZE:
            raise DecodeError("GRH", "pay_len", 12,
                              f"PayLen {pay_len}, packet has "
                              f"{n - LRH_SIZE - GRH_SIZE + ICRC_SIZE} bytes from the BTH "
                              "through the ICRC")
        off += GRH_SIZE
    if n < off + BTH_SIZE:
        raise _short("BTH", off, BTH_SIZE, n)
    opcode, bflags = pkt[off], pkt[off + 1]
    if opcode not in UD_OPCODES:
        raise DecodeError("BTH", "opcode", off, f"opcode {opcode:#04x} is not UD SEND_ONLY")
    if bflags & 0x0F:
        raise DecodeError("BTH", "tver", off + 1, f"TVer {bflags & 0x0F}, expected 0")
    hend = off + BTH_SIZE + DETH_SIZE + (IMMDT_SIZE if opcode == OP_UD_SEND_ONLY_IMM else 0)
    if n < hend:
        fmt = "DETH" if n < off + BTH_SIZE + DETH_SIZE else "ImmDt"
        start = off + BTH_SIZE if fmt == "DETH" else off + BTH_SIZE + DETH_SIZE
        raise _short(fmt, start, hend - start if fmt == "ImmDt" else DETH_SIZE, n)
    pad = bflags >> 4 & 3
    if pad > n - hend:
        raise DecodeError("BTH", "pad_cnt", off + 1,
                          f"PadCnt {pad} but only {n - hend} bytes follow the headers")
    return off


UdFields = tuple[int, int, int, int, int, int, int, int]
"""What :func:`peek_ud` reads: (SL, DLID, SLID, P_Key, DestQP, Q_Key, SrcQP, PadCnt)."""


def peek_ud(pkt: bytes) -> UdFields | None:
    """The fields a receiving QP acts on, for the data path's usual packet: LRH + BTH (UD
    SEND_ONLY) + DETH with no GRH and no immediate data, read byte by byte at the offsets
    :class:`Lrh`, :class:`Bth` and :class:`Deth` declare, back to back (compiled, that is
    cheaper than an unpack into a tuple of objects).

    Returns None for every other packet, well-formed or not; those take :func:`check_ud` and
    the peek functions. Whatever it accepts passes every check :func:`check_ud` makes (LVer 0,
    PktLen matching the length, TVer 0, PadCnt within the payload).
    """
    n = len(pkt)
    if n < UD_HEADER_SIZE:
        return None
    b1, words, fl = pkt[1], pkt[4] << 8 | pkt[5], pkt[9]
    if pkt[0] & 0x0F or b1 & 3 != LNH_LOCAL or words > MAX_PKT_WORDS \
            or words * 4 - ICRC_SIZE != n or pkt[8] != OP_UD_SEND_ONLY or fl & 0x0F \
            or fl >> 4 & 3 > n - UD_HEADER_SIZE:
        return None
    return (b1 >> 4, pkt[2] << 8 | pkt[3], pkt[6] << 8 | pkt[7], pkt[10] << 8 | pkt[11],
            pkt[13] << 16 | pkt[14] << 8 | pkt[15],
            pkt[20] << 24 | pkt[21] << 16 | pkt[22] << 8 | pkt[23],
            pkt[25] << 16 | pkt[26] << 8 | pkt[27], fl >> 4 & 3)


def parse_ud(buf: Buffer, *, crcs: bool = False) -> UdPacket:
    """Decode and check a UD packet; with ``crcs=True`` the buffer ends in ICRC and VCRC,
    which are verified (:func:`ipoib.wire.crc.check_crcs`) and stripped.

    Any malformation raises :class:`DecodeError`; nothing else escapes. This builds four
    frozen records (a few microseconds); a per-packet receive path should call
    :func:`check_ud` and read the fields it needs with the peek functions below.
    """
    if crcs:
        from .crc import check_crcs  # crc imports this module's constants

        check_crcs(buf)
        buf = buf[: len(buf) - ICRC_SIZE - VCRC_SIZE]
    off = check_ud(buf)
    b0, b1, dlid, words, slid = _LRH.unpack_from(buf, 0)
    lrh = Lrh(vl=b0 >> 4, lver=0, sl=b1 >> 4, lnh=b1 & 3, dlid=dlid, pkt_len=words, slid=slid)
    grh = None
    if off != LRH_SIZE:
        w0, pay_len, nxt, hop, sgid, dgid = _GRH.unpack_from(buf, LRH_SIZE)
        grh = Grh(ipver=w0 >> 28, tclass=w0 >> 20 & 0xFF, flow_label=w0 & 0xF_FFFF,
                  pay_len=pay_len, nxt_hdr=nxt, hop_lmt=hop, sgid=sgid, dgid=dgid)
    opcode, fl, pkey, w1, w2, qkey, sqp = _BTH_DETH.unpack_from(buf, off)
    bth = Bth(opcode=opcode, se=fl >> 7, m=fl >> 6 & 1, pad_cnt=fl >> 4 & 3, tver=0, pkey=pkey,
              fecn=w1 >> 31, becn=w1 >> 30 & 1, dest_qp=w1 & 0xFF_FFFF, ack_req=w2 >> 31,
              psn=w2 & 0xFF_FFFF)
    deth = Deth(qkey=qkey, src_qp=sqp & 0xFF_FFFF)
    start = off + BTH_SIZE + DETH_SIZE
    imm = None
    if opcode == OP_UD_SEND_ONLY_IMM:
        imm = _U32.unpack_from(buf, start)[0]
        start += IMMDT_SIZE
    return UdPacket(lrh, grh, bth, deth, imm, bytes(buf[start: len(buf) - bth.pad_cnt]))


# --- peeks: single fields, no objects (for switches and QPs, per hop) ----------------------
#
# They read the packet in place and trust its layout: use them on packets made by
# build_ud/UdTemplate or accepted by check_ud. ``off`` is the BTH offset from bth_offset().
# A packet too short for the field raises DecodeError, never IndexError.


def lrh_vl(pkt: Buffer) -> int:
    """LRH.VL (byte 0, high nibble)."""
    try:
        return pkt[0] >> 4
    except IndexError:
        raise _short("LRH", 0, 1, len(pkt)) from None


def lrh_sl(pkt: Buffer) -> int:
    """LRH.SL (byte 1, high nibble)."""
    try:
        return pkt[1] >> 4
    except IndexError:
        raise _short("LRH", 1, 1, len(pkt)) from None


def lrh_lnh(pkt: Buffer) -> int:
    """LRH.LNH (byte 1, low 2 bits): 2 = BTH next, 3 = GRH next."""
    try:
        return pkt[1] & 3
    except IndexError:
        raise _short("LRH", 1, 1, len(pkt)) from None


def lrh_dlid(pkt: Buffer) -> int:
    """LRH.DLID (bytes 2-3): what a switch looks up in its forwarding table."""
    try:
        return pkt[2] << 8 | pkt[3]
    except IndexError:
        raise _short("LRH", 2, 2, len(pkt)) from None


def lrh_pkt_len(pkt: Buffer) -> int:
    """LRH.PktLen in 4-byte words (bytes 4-5, 11 bits), counting the ICRC."""
    try:
        return (pkt[4] & 7) << 8 | pkt[5]
    except IndexError:
        raise _short("LRH", 4, 2, len(pkt)) from None


def lrh_slid(pkt: Buffer) -> int:
    """LRH.SLID (bytes 6-7)."""
    try:
        return pkt[6] << 8 | pkt[7]
    except IndexError:
        raise _short("LRH", 6, 2, len(pkt)) from None


def bth_offset(pkt: Buffer) -> int:
    """Where the BTH starts: 8, or 48 when LNH says a GRH follows the LRH."""
    try:
        return LRH_SIZE + GRH_SIZE if pkt[1] & 3 == LNH_GLOBAL else LRH_SIZE
    except IndexError:
        raise _short("LRH", 1, 1, len(pkt)) from None


def bth_opcode(pkt: Buffer, off: int) -> int:
    """BTH.OpCode."""
    try:
        return pkt[off]
    except IndexError:
        raise _short("BTH", off, 1, len(pkt)) from None


def bth_pad_cnt(pkt: Buffer, off: int) -> int:
    """BTH.PadCnt: pad bytes after the payload."""
    try:
        return pkt[off + 1] >> 4 & 3
    except IndexError:
        raise _short("BTH", off + 1, 1, len(pkt)) from None


def bth_pkey(pkt: Buffer, off: int) -> int:
    """BTH.P_Key: what the receiving port checks against its P_Key table."""
    try:
        return pkt[off + 2] << 8 | pkt[off + 3]
    except IndexError:
        raise _short("BTH", off + 2, 2, len(pkt)) from None


def bth_dest_qp(pkt: Buffer, off: int) -> int:
    """BTH.DestQP (24 bits); 0xFFFFFF for multicast."""
    try:
        return pkt[off + 5] << 16 | pkt[off + 6] << 8 | pkt[off + 7]
    except IndexError:
        raise _short("BTH", off + 5, 3, len(pkt)) from None


def bth_psn(pkt: Buffer, off: int) -> int:
    """BTH.PSN (24 bits)."""
    try:
        return pkt[off + 9] << 16 | pkt[off + 10] << 8 | pkt[off + 11]
    except IndexError:
        raise _short("BTH", off + 9, 3, len(pkt)) from None


def deth_qkey(pkt: Buffer, off: int) -> int:
    """DETH.Q_Key (``off`` is the BTH offset; the DETH follows the BTH)."""
    try:
        return _U32.unpack_from(pkt, off + BTH_SIZE)[0]  # type: ignore[no-any-return]
    except struct.error:
        raise _short("DETH", off + BTH_SIZE, 4, len(pkt)) from None


def deth_src_qp(pkt: Buffer, off: int) -> int:
    """DETH.SrcQP (24 bits; ``off`` is the BTH offset)."""
    o = off + BTH_SIZE + 5
    try:
        return pkt[o] << 16 | pkt[o + 1] << 8 | pkt[o + 2]
    except IndexError:
        raise _short("DETH", o, 3, len(pkt)) from None


def grh_sgid(pkt: Buffer) -> bytes:
    """GRH.SGID (only meaningful when LNH is 3)."""
    if len(pkt) < LRH_SIZE + GRH_SIZE:
        raise _short("GRH", LRH_SIZE, GRH_SIZE, len(pkt))
    return bytes(pkt[16:32])


def grh_dgid(pkt: Buffer) -> bytes:
    """GRH.DGID (only meaningful when LNH is 3): the MGID of a multicast packet."""
    if len(pkt) < LRH_SIZE + GRH_SIZE:
        raise _short("GRH", LRH_SIZE, GRH_SIZE, len(pkt))
    return bytes(pkt[32:48])


def ud_payload(pkt: Buffer, off: int) -> bytes:
    """The payload of a checked UD packet, pad stripped (``off`` is the BTH offset)."""
    try:
        start = off + BTH_SIZE + DETH_SIZE
        if pkt[off] == OP_UD_SEND_ONLY_IMM:
            start += IMMDT_SIZE
        return bytes(pkt[start: len(pkt) - (pkt[off + 1] >> 4 & 3)])
    except IndexError:
        raise _short("BTH", off, BTH_SIZE, len(pkt)) from None


def with_vl(pkt: Buffer, vl: int) -> bytes:
    """A copy of ``pkt`` with LRH.VL replaced: a switch maps SL to VL on each hop (IBA 7.6.6)."""
    if not 0 <= vl <= 15:
        raise EncodeError("LRH", "vl", f"{vl!r} does not fit 4 bits")
    if len(pkt) < LRH_SIZE:
        raise _short("LRH", 0, LRH_SIZE, len(pkt))
    return bytes((vl << 4 | pkt[0] & 0x0F,)) + bytes(pkt[1:])
