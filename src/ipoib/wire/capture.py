"""Packet captures tshark can read: classic pcap with ERF or IPoIB records (wire-formats.md §8).

Two link types work with tshark 4.0 without options (§8.1):

- ``LINKTYPE_ERF`` (197): each record is a 16-byte ERF header of type 21 (InfiniBand) and the
  whole IB packet from the LRH through the VCRC, as Mellanox ``ibdump`` writes it. This is
  the fabric's view: every header, both CRCs.
- ``LINKTYPE_IPOIB`` (242): a 40-byte pseudo-header, then the 4-byte IPoIB header and the IP
  or ARP packet. This is the interface's view, like ``tcpdump -i ib0``.

The pcap file format itself is little-endian here (it is the writer's choice; readers take
the order from the magic). The writer never reads the clock: every record's time is the
``now`` the caller passes, in seconds. The building blocks are pure functions returning
bytes; :class:`PcapWriter` and :class:`PcapReader` only add a file object.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .errors import DecodeError, EncodeError
from .layout import Record, layout, raw, u

Buffer = bytes | bytearray | memoryview

LINKTYPE_ERF = 197
LINKTYPE_IPOIB = 242
LINKTYPES = (LINKTYPE_ERF, LINKTYPE_IPOIB)

ERF_TYPE_INFINIBAND = 21
ERF_FLAG_VARLEN = 0x04
"""ERF flags bit 2: a variable-length record (the only kind written here)."""
ERF_HEADER_SIZE = 16
IPOIB_PSEUDO_SIZE = 40

DEFAULT_SNAPLEN = 262144
MAX_RECORD = 1 << 20
"""A record longer than this is taken as a corrupt length field, not read."""

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
_FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major 2, minor 4, thiszone, sigfigs, snaplen, lt
_REC_LE = struct.Struct("<IIII")  # ts_sec, ts_frac, incl_len, orig_len
_REC_BE = struct.Struct(">IIII")
_U64_LE = struct.Struct("<Q")
_FRAC32 = 1 << 32


@layout(size=ERF_HEADER_SIZE, name="ERF", section="Endace ERF type 21; wire-formats.md §8.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class ErfHeader(Record):
    """The ERF record header in front of each IB packet.

    ``ts`` is the 8 timestamp bytes as they lie in the file: a **little-endian** 32.32 fixed
    point number of seconds (see :func:`erf_timestamp`). Every other field is big-endian.
    """

    ts: bytes = raw(0, 8)
    type: int = u(8, 8, default=ERF_TYPE_INFINIBAND)
    flags: int = u(9, 8, default=ERF_FLAG_VARLEN)
    rlen: int = u(10, 16)
    lctr: int = u(12, 16)
    wlen: int = u(14, 16)


@layout(size=IPOIB_PSEUDO_SIZE, name="IPoIB-daddr", section="Wireshark packet-ipoib.c; "
        "wire-formats.md §8.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class IpoibDaddrPseudo(Record):
    """The 40-byte pseudo-header, destination-address form: bytes 0-19 zero, then the
    20-byte IPoIB hardware address of the destination (``ipoib.daddr.qpn``, ``ipoib.dgid``)."""

    daddr: bytes = raw(20, 20)


@layout(size=IPOIB_PSEUDO_SIZE, name="IPoIB-pseudo-GRH", section="Wireshark packet-ipoib.c; "
        "wire-formats.md §8.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class IpoibGrhPseudo(Record):
    """The 40-byte pseudo-header, "pseudo-GRH" form (bytes 0-1 non-zero): source QPN in bytes
    5-7 (not PayLen/NxtHdr/HopLmt, unlike a real GRH), then SGID and DGID."""

    ipver: int = u(0, 4, default=6)
    tclass: int = u(0, 8, bit=4)
    flow_label: int = u(1, 20, bit=4)
    src_qpn: int = u(5, 24)
    sgid: bytes = raw(8, 16)
    dgid: bytes = raw(24, 16)


# --- time -----------------------------------------------------------------------------------


def _split(now: float, scale: int, fmt: str) -> tuple[int, int]:
    if not (isinstance(now, (int, float)) and math.isfinite(now) and 0 <= now < _FRAC32):
        raise EncodeError(fmt, "timestamp", f"{now!r} is not a time in 0 .. 2**32 seconds")
    secs = math.floor(now)
    frac = round((now - secs) * scale)
    if frac >= scale:
        secs, frac = secs + 1, frac - scale
    if secs >= _FRAC32:
        raise EncodeError(fmt, "timestamp", f"{now!r} overflows 32-bit seconds")
    return secs, frac


def erf_timestamp(now: float) -> bytes:
    """ERF's 8 timestamp bytes: seconds in the high 32 bits, binary fraction in the low 32,
    stored little-endian."""
    secs, frac = _split(now, _FRAC32, "ERF")
    return _U64_LE.pack(secs << 32 | frac)


def erf_time(ts: Buffer) -> float:
    """The time in seconds of ERF timestamp bytes (inverse of :func:`erf_timestamp`)."""
    if len(ts) != 8:
        raise DecodeError("ERF", "ts", 0, f"need 8 bytes, have {len(ts)}")
    v: int = _U64_LE.unpack(ts)[0]
    return (v >> 32) + (v & 0xFFFF_FFFF) / _FRAC32


# --- building records (pure) ------------------------------------------------------------------


def file_header(linktype: int, snaplen: int = DEFAULT_SNAPLEN) -> bytes:
    """The 24-byte pcap global header (version 2.4, microsecond timestamps, little-endian)."""
    return _FILE_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(now: float, data: Buffer) -> bytes:
    """One pcap record: the 16-byte record header (time in µs) and ``data``."""
    secs, usec = _split(now, 1_000_000, "pcap")
    return _REC_LE.pack(secs, usec, len(data), len(data)) + bytes(data)


def erf_record(now: float, pkt_with_crcs: Buffer) -> bytes:
    """The ERF type-21 record (header + packet) for an IB packet that ends in ICRC and VCRC."""
    n = len(pkt_with_crcs)
    if n + ERF_HEADER_SIZE > 0xFFFF:
        raise EncodeError("ERF", "rlen", f"a {n}-byte packet does not fit a 16-bit rlen")
    hdr = ErfHeader(ts=erf_timestamp(now), rlen=n + ERF_HEADER_SIZE, wlen=n)
    return hdr.encode() + bytes(pkt_with_crcs)


def ipoib_pseudo(
    *, daddr: Buffer | None = None, src_qpn: int | None = None, sgid: Buffer | None = None,
    dgid: Buffer | None = None,
) -> bytes:
    """The 40-byte link type 242 pseudo-header: give ``daddr`` (the destination's 20-byte
    hardware address) or all of ``src_qpn``, ``sgid``, ``dgid`` (pseudo-GRH form)."""
    if daddr is not None:
        if src_qpn is not None or sgid is not None or dgid is not None:
            raise EncodeError("IPoIB-pseudo", "daddr", "give daddr or src_qpn/sgid/dgid, not both")
        return IpoibDaddrPseudo(daddr=bytes(daddr)).encode()
    if src_qpn is None or sgid is None or dgid is None:
        raise EncodeError("IPoIB-pseudo", "src_qpn", "need daddr, or all of src_qpn, sgid, dgid")
    return IpoibGrhPseudo(src_qpn=src_qpn, sgid=bytes(sgid), dgid=bytes(dgid)).encode()


# --- reading records (pure) ------------------------------------------------------------------


class ErfPacket(NamedTuple):
    """An unwrapped ERF record: the ERF timestamp and the IB packet (with CRCs)."""

    timestamp: float
    packet: bytes


def erf_unwrap(data: Buffer, offset: int = 0) -> ErfPacket:
    """Check the ERF header of a link type 197 record and return its time and IB packet.

    ``offset`` is where ``data`` sits in the file, for error messages.
    """
    if len(data) < ERF_HEADER_SIZE:
        raise DecodeError("ERF", "length", offset,
                          f"need a {ERF_HEADER_SIZE}-byte ERF header, have {len(data)}")
    h = ErfHeader.decode(data)
    if h.type != ERF_TYPE_INFINIBAND:
        raise DecodeError("ERF", "type", offset + 8, f"type {h.type}, expected 21 (InfiniBand)")
    if not ERF_HEADER_SIZE <= h.rlen <= len(data):
        raise DecodeError("ERF", "rlen", offset + 10,
                          f"rlen {h.rlen} outside {ERF_HEADER_SIZE}..{len(data)}")
    if h.wlen > h.rlen - ERF_HEADER_SIZE:
        raise DecodeError("ERF", "wlen", offset + 14,
                          f"wlen {h.wlen} longer than the {h.rlen - ERF_HEADER_SIZE} bytes "
                          "the record holds")
    end = ERF_HEADER_SIZE + h.wlen
    return ErfPacket(erf_time(h.ts), bytes(data[ERF_HEADER_SIZE:end]))


@dataclass(frozen=True, slots=True)
class IpoibFrame:
    """An unwrapped link type 242 record: one form of pseudo-header, then the IPoIB packet."""

    daddr: bytes | None
    src_qpn: int | None
    sgid: bytes | None
    dgid: bytes | None
    encap: bytes
    """The 4-byte IPoIB header and what follows it."""


def ipoib_unwrap(data: Buffer, offset: int = 0) -> IpoibFrame:
    """Split a link type 242 record into its pseudo-header fields and the IPoIB packet."""
    if len(data) < IPOIB_PSEUDO_SIZE + 4:
        raise DecodeError("IPoIB-pseudo", "length", offset,
                          f"need {IPOIB_PSEUDO_SIZE} + 4 bytes, have {len(data)}")
    encap = bytes(data[IPOIB_PSEUDO_SIZE:])
    if data[0] == 0 and data[1] == 0:
        d = IpoibDaddrPseudo.decode(data)
        return IpoibFrame(d.daddr, None, None, None, encap)
    g = IpoibGrhPseudo.decode(data)
    return IpoibFrame(None, g.src_qpn, g.sgid, g.dgid, encap)


# --- file objects -------------------------------------------------------------------------------


class Writable(Protocol):
    """Anything with ``write(bytes)``: an open binary file, ``io.BytesIO``."""

    def write(self, data: bytes, /) -> object: ...


class Readable(Protocol):
    """Anything with ``read(n) -> bytes``."""

    def read(self, n: int = -1, /) -> bytes: ...


class PcapWriter:
    """Writes a pcap file of one link type to ``fileobj`` (the global header at once)."""

    def __init__(self, fileobj: Writable, linktype: int, *, snaplen: int = DEFAULT_SNAPLEN):
        if linktype not in LINKTYPES:
            raise EncodeError("pcap", "linktype", f"{linktype} is not 197 (ERF) or 242 (IPoIB)")
        self.fileobj = fileobj
        self.linktype = linktype
        self.snaplen = snaplen
        self.records = 0
        fileobj.write(file_header(linktype, snaplen))

    def _write(self, now: float, data: bytes) -> None:
        if len(data) > self.snaplen:
            raise EncodeError("pcap", "incl_len", f"{len(data)} bytes exceed snaplen "
                              f"{self.snaplen}")
        self.fileobj.write(pcap_record(now, data))
        self.records += 1

    def write_ib(self, now: float, pkt_with_crcs: Buffer) -> None:
        """Record an IB packet that ends in ICRC and VCRC (``wire.crc.append_crcs``)."""
        if self.linktype != LINKTYPE_ERF:
            raise EncodeError("pcap", "linktype", "write_ib needs a LINKTYPE_ERF writer")
        self._write(now, erf_record(now, pkt_with_crcs))

    def write_ipoib(
        self, now: float, encap: Buffer, *, daddr: Buffer | None = None,
        src_qpn: int | None = None, sgid: Buffer | None = None, dgid: Buffer | None = None,
    ) -> None:
        """Record an IPoIB packet (4-byte header + payload) with a pseudo-header built by
        :func:`ipoib_pseudo` from ``daddr`` or ``src_qpn``/``sgid``/``dgid``."""
        if self.linktype != LINKTYPE_IPOIB:
            raise EncodeError("pcap", "linktype", "write_ipoib needs a LINKTYPE_IPOIB writer")
        pseudo = ipoib_pseudo(daddr=daddr, src_qpn=src_qpn, sgid=sgid, dgid=dgid)
        self._write(now, pseudo + bytes(encap))


class PcapRecord(NamedTuple):
    """One record of a pcap file: its time, the file's link type and the record bytes."""

    timestamp: float
    linktype: int
    data: bytes


class PcapReader:
    """Iterates the records of a classic pcap file (either byte order, µs or ns).

    The global header is read at construction. Malformed input (bad magic, a truncated
    header or record, a length past the snaplen, an ERF record that is not type 21) raises
    :class:`DecodeError` with the file offset.
    """

    def __init__(self, fileobj: Readable) -> None:
        self.fileobj = fileobj
        head = fileobj.read(_FILE_HEADER.size)
        if len(head) < _FILE_HEADER.size:
            raise DecodeError("pcap", "length", 0,
                              f"need a {_FILE_HEADER.size}-byte file header, have {len(head)}")
        magic_le = int.from_bytes(head[:4], "little")
        magic_be = int.from_bytes(head[:4], "big")
        if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            order, magic = "<", magic_le
        elif magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            order, magic = ">", magic_be
        else:
            raise DecodeError("pcap", "magic", 0, f"{head[:4].hex()} is not a pcap magic number")
        self._rec = _REC_LE if order == "<" else _REC_BE
        self._scale = 1e9 if magic == PCAP_MAGIC_NS else 1e6
        major, minor, _zone, _sig, snaplen, linktype = struct.unpack(order + "HHiIII", head[4:])
        if major != 2:
            raise DecodeError("pcap", "version", 4, f"version {major}.{minor}, expected 2.x")
        self.snaplen: int = snaplen
        self.linktype: int = linktype & 0x0FFF_FFFF  # upper bits: FCS info (pcap spec)
        self._offset = _FILE_HEADER.size

    def __iter__(self) -> Iterator[PcapRecord]:
        return self

    def __next__(self) -> PcapRecord:
        off = self._offset
        head = self.fileobj.read(self._rec.size)
        if not head:
            raise StopIteration
        if len(head) < self._rec.size:
            raise DecodeError("pcap", "length", off,
                              f"record header cut after {len(head)} of {self._rec.size} bytes")
        secs, frac, incl, orig = self._rec.unpack(head)
        if frac >= self._scale:
            raise DecodeError("pcap", "ts_frac", off + 4, f"fraction {frac} is not below 1 s")
        if incl > orig:
            raise DecodeError("pcap", "incl_len", off + 8, f"incl_len {incl} > orig_len {orig}")
        if incl > max(self.snaplen, 0xFFFF) or incl > MAX_RECORD:
            raise DecodeError("pcap", "incl_len", off + 8,
                              f"incl_len {incl} exceeds the snaplen {self.snaplen}")
        data = self.fileobj.read(incl)
        if len(data) < incl:
            raise DecodeError("pcap", "length", off + self._rec.size,
                              f"record cut after {len(data)} of {incl} bytes")
        self._offset = off + self._rec.size + incl
        if self.linktype == LINKTYPE_ERF:
            erf_unwrap(data, off + self._rec.size)  # reject a malformed ERF header now
        elif self.linktype == LINKTYPE_IPOIB:
            ipoib_unwrap(data, off + self._rec.size)
        return PcapRecord(secs + frac / self._scale, self.linktype, data)
