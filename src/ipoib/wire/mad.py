"""MADs: the 256-byte management datagrams of QP0 and QP1 (IBA 13.4, 14.2.1, 15.2.1, 13.6.2).

Every byte of a MAD is packed here and nowhere else (ARCHITECTURE.md, law 3). The fabric's SMA
and PMA, the SM and SA, the IPoIB driver's SA client and the ibsim adapter all speak MADs as
plain 256-byte ``bytes``; this module gives them three kinds of tools.

**Records** (declared tables, :mod:`ipoib.wire.layout`): :class:`MadHeader` (bytes 0-23),
:class:`SmpHeader` (LID-routed SMP, bytes 0-63), :class:`DrSmpHeader` (directed-route SMP,
bytes 0-63), :class:`RmppHeader` (bytes 24-35), :class:`SaHeader` (bytes 36-55),
:class:`ClassPortInfo` and :class:`Notice` (class-generic attributes).

**Builders and whole-MAD views**: ``build_smp``, ``build_dr_smp``, ``build_gmp`` (PerfMgt,
DevMgt: data at 64), ``build_sa_mad``; ``make_response``, ``with_header`` (reserved bits zeroed
as a decode and re-encode would) and ``dr_step`` patch; ``parse_mad`` gives a :class:`Smp`,
:class:`DrSmp`, :class:`SaMad` or :class:`Gmp`.

Paths follow the wire and OpenSM: ``initial_path[i]`` is the egress port at hop ``i`` and entry 0
is unused, so a one-hop route out of port 1 is ``initial_path=(0, 1)``. A path given as 64 raw
bytes is kept byte for byte (OpenSM leaves stack garbage past HopCount; ibsim echoes it).

**Peeks** for dispatch without building objects: ``mad_class``, ``mad_method``, ``mad_tid``,
``mad_attr_id``, ``mad_attr_mod`` and the other ``mad_*``, ``dr_*``, ``smp_*`` functions and
``gmp_data``/``sa_data``; each raises :class:`DecodeError` on a buffer too short for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self, TypeVar

from .errors import DecodeError, EncodeError
from .layout import INT, Buffer, Record, layout, raw, u

MAD_SIZE = 256
MAD_HEADER_SIZE = 24
SMP_DATA_OFFSET = 64
SMP_DATA_SIZE = 64
DR_INITIAL_PATH_OFFSET = 128
DR_RETURN_PATH_OFFSET = 192
DR_PATH_SIZE = 64
MAX_HOP_COUNT = 63
"""IBA C14-6: a DR SMP with HopCount above 63 is discarded."""
RMPP_OFFSET = 24
SA_HEADER_OFFSET = 36
SA_DATA_OFFSET = 56
SA_DATA_SIZE = 200
GMP_DATA_OFFSET = 64
"""PerfMgt and DevMgt: 24-byte header, 40 reserved bytes, 192 bytes of data (IBA 16.1.1)."""
GMP_DATA_SIZE = 192
PERMISSIVE_LID = 0xFFFF
RESPONSE_BIT = 0x80
BASE_VERSION = 1
SA_CLASS_VERSION = 2


class MgmtClass(IntEnum):
    """Management classes (IBA 13.4.4); SMPs use QP0, the rest QP1."""

    SUBN_LID_ROUTED = 0x01
    SUBN_ADM = 0x03
    PERF_MGMT = 0x04
    DEV_MGMT = 0x06
    COMM_MGMT = 0x07
    SUBN_DIRECTED_ROUTE = 0x81


class Method(IntEnum):
    """Method byte values, R bit included (IBA 13.4.5, 15.2.2)."""

    GET = 0x01
    SET = 0x02
    SEND = 0x03
    TRAP = 0x05
    REPORT = 0x06
    TRAP_REPRESS = 0x07
    GET_TABLE = 0x12
    GET_TRACE_TABLE = 0x13
    GET_MULTI = 0x14
    DELETE = 0x15
    GET_RESP = 0x81
    REPORT_RESP = 0x86
    GET_TABLE_RESP = 0x92
    GET_MULTI_RESP = 0x94
    DELETE_RESP = 0x95


class MadStatus(IntEnum):
    """Class-generic MAD status values (IBA 13.4.7); bits 15-8 are class-specific."""

    OK = 0x0000
    BUSY = 0x0001
    REDIRECT = 0x0002
    BAD_VERSION = 0x0004
    METHOD_UNSUPPORTED = 0x0008
    METHOD_ATTR_UNSUPPORTED = 0x000C
    INVALID_FIELD = 0x001C


class RmppType(IntEnum):
    """RMPPType (IBA 13.6.2.1); 0 means the MAD is not an RMPP packet."""

    NONE = 0
    DATA = 1
    ACK = 2
    STOP = 3
    ABORT = 4


RMPP_FLAG_ACTIVE = 0x1
RMPP_FLAG_FIRST = 0x2
RMPP_FLAG_LAST = 0x4


class NoticeType(IntEnum):
    """Notice.Type (IBA 13.4.8.2)."""

    FATAL = 0
    URGENT = 1
    SECURITY = 2
    SUBNET_MANAGEMENT = 3
    INFO = 4


def is_response(method: int) -> bool:
    """True for responses: the R bit, or TrapRepress (OpenSM ``ib_mad_is_response``)."""
    return bool(method & RESPONSE_BIT) or method == Method.TRAP_REPRESS


_RESPONSES: dict[int, int] = {
    Method.GET: Method.GET_RESP, Method.SET: Method.GET_RESP, Method.TRAP: Method.TRAP_REPRESS,
    Method.REPORT: Method.REPORT_RESP, Method.GET_TABLE: Method.GET_TABLE_RESP,
    Method.GET_TRACE_TABLE: Method.GET_TABLE_RESP, Method.GET_MULTI: Method.GET_MULTI_RESP,
    Method.DELETE: Method.DELETE_RESP}


def response_method(method: int) -> int:
    """The method that answers ``method`` (a Set is answered with GetResp, IBA 13.4.5); a
    method nobody answers (Send, a response) raises :class:`DecodeError` for byte 3."""
    try:
        return _RESPONSES[method]
    except KeyError:
        raise DecodeError("MAD", "method", 3, f"{method:#04x} has no response method") from None


# --- headers -------------------------------------------------------------------------------


@layout(size=24, name="MadHeader", section="IBA 13.4.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class MadHeader(Record):
    """The common MAD header; ``method`` is the whole byte, R bit included."""

    base_version: int = u(0, 8, default=BASE_VERSION)
    mgmt_class: int = u(1, 8)
    class_version: int = u(2, 8, default=1)
    method: int = u(3, 8)
    status: int = u(4, 16)
    class_specific: int = u(6, 16)
    tid: int = u(8, 64)
    attr_id: int = u(16, 16)
    attr_mod: int = u(20, 32)


@layout(size=64, name="SmpHeader", section="IBA 14.2.1.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class SmpHeader(MadHeader):
    """LID-routed SMP bytes 0-63: the MAD header, M_Key, 32 reserved bytes."""

    mgmt_class: int = u(1, 8, default=int(MgmtClass.SUBN_LID_ROUTED))
    mkey: int = u(24, 64)


@layout(size=64, name="DrSmpHeader", section="IBA 14.2.1.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class DrSmpHeader(Record):
    """Directed-route SMP bytes 0-63; ``direction`` is the D bit (1 on the way back)."""

    base_version: int = u(0, 8, default=BASE_VERSION)
    mgmt_class: int = u(1, 8, default=int(MgmtClass.SUBN_DIRECTED_ROUTE))
    class_version: int = u(2, 8, default=1)
    method: int = u(3, 8)
    direction: int = u(4, 1)
    status: int = u(4, 15, bit=1)
    hop_pointer: int = u(6, 8)
    hop_count: int = u(7, 8)
    tid: int = u(8, 64)
    attr_id: int = u(16, 16)
    attr_mod: int = u(20, 32)
    mkey: int = u(24, 64)
    dr_slid: int = u(32, 16, default=PERMISSIVE_LID)
    dr_dlid: int = u(34, 16, default=PERMISSIVE_LID)


@layout(size=12, name="RmppHeader", section="IBA 13.6.2.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class RmppHeader(Record):
    """MAD bytes 24-35: decode with ``RmppHeader.decode(mad, RMPP_OFFSET)``."""

    rmpp_version: int = u(0, 8, default=1)
    rmpp_type: int = u(1, 8)
    r_resp_time: int = u(2, 5)
    rmpp_flags: int = u(2, 3, bit=5)
    rmpp_status: int = u(3, 8)
    segment_number: int = u(4, 32)
    payload_length: int = u(8, 32)
    """PayloadLength (DATA) or NewWindowLast (ACK): the Data2 word."""


@layout(size=20, name="SaHeader", section="IBA 15.2.1.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class SaHeader(Record):
    """MAD bytes 36-55; ``attribute_offset`` is the record stride in 8-byte units."""

    sm_key: int = u(0, 64)
    attribute_offset: int = u(8, 16)
    # The IBA name shadows Record.component_mask(), which an SA header has no use for.
    component_mask: int = u(12, 64)  # type: ignore[assignment]


# --- class-generic attributes ----------------------------------------------------------------


@layout(size=72, name="ClassPortInfo", section="IBA 13.4.8.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class ClassPortInfo(Record):
    """Attribute 0x0001 of every GSI class: capabilities, redirect and trap targets."""

    base_version: int = u(0, 8, default=BASE_VERSION)
    class_version: int = u(1, 8)
    capability_mask: int = u(2, 16)
    capability_mask2: int = u(4, 27)
    resp_time_value: int = u(7, 5, bit=3)
    redirect_gid: bytes = raw(8, 16)
    redirect_tc: int = u(24, 8)
    redirect_sl: int = u(25, 4)
    redirect_fl: int = u(25, 20, bit=4)
    redirect_lid: int = u(28, 16)
    redirect_pkey: int = u(30, 16)
    redirect_qp: int = u(33, 24)
    redirect_qkey: int = u(36, 32)
    trap_gid: bytes = raw(40, 16)
    trap_tc: int = u(56, 8)
    trap_sl: int = u(57, 4)
    trap_fl: int = u(57, 20, bit=4)
    trap_lid: int = u(60, 16)
    trap_pkey: int = u(62, 16)
    trap_hl: int = u(64, 8)
    trap_qp: int = u(65, 24)
    trap_qkey: int = u(68, 32)


ATTR_CLASS_PORT_INFO = 0x0001
"""AttributeID of ClassPortInfo in every GSI class."""
ATTR_NOTICE = 0x0002
CPI_IS_TRAP_SUPPORTED = 0x0001
CPI_IS_GET_SET_NOTICE = 0x0002
CPI_HAS_CAPABILITY_MASK2 = 0x0004

NOTICE_SMP_SIZE = 64
"""A Notice sent in an SMP (SubnTrap) stops before IssuerGID: the SMP data area is 64 bytes."""

T = TypeVar("T", bound=Record)


@layout(size=80, name="Notice", section="IBA 13.4.8.2, 14.2.5.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Record):
    """Attribute 0x0002: a trap or notice. Generic notices carry ProducerType and
    TrapNumber in bytes 1-5; vendor notices (``is_generic=0``) carry VendorID and DeviceID in
    the same bits. The SMP traps' DataDetails are in :mod:`ipoib.wire.smp` (trap 128, 144)."""

    is_generic: int = u(0, 1, default=1)
    notice_type: int = u(0, 7, bit=1)
    producer_type: int = u(1, 24)
    trap_number: int = u(4, 16)
    issuer_lid: int = u(6, 16)
    notice_toggle: int = u(8, 1)
    notice_count: int = u(8, 15, bit=1)
    data_details: bytes = raw(10, 54)
    issuer_gid: bytes = raw(64, 16)

    def details(self, cls: type[T]) -> T:
        """DataDetails decoded as a trap-specific record such as :class:`Trap144`."""
        return cls.decode(self.data_details)

    @classmethod
    def from_smp_data(cls, data: Buffer) -> Self:
        """Decode the 64-byte SMP form (IssuerGID absent, read as zeros)."""
        if len(data) < NOTICE_SMP_SIZE:
            raise DecodeError(cls.NAME, "length", 0, f"need 64 bytes, have {len(data)}")
        return cls.decode(bytes(data[:NOTICE_SMP_SIZE]) + bytes(16))

    def smp_data(self) -> bytes:
        """The 64-byte SMP form (IssuerGID dropped)."""
        return self.encode()[:NOTICE_SMP_SIZE]


# --- peeks ---------------------------------------------------------------------------------

def _need(buf: Buffer, size: int, fmt: str = "MAD") -> None:
    if len(buf) < size:
        raise DecodeError(fmt, "length", 0, f"need {size} bytes, have {len(buf)}")


def mad_base_version(mad: Buffer) -> int:
    """BaseVersion (byte 0)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[0]


def mad_class(mad: Buffer) -> int:
    """MgmtClass (byte 1)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[1]


def mad_class_version(mad: Buffer) -> int:
    """ClassVersion (byte 2)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[2]


def mad_method(mad: Buffer) -> int:
    """The method byte, R bit included."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[3]


def mad_status(mad: Buffer) -> int:
    """Status (bytes 4-5); for a DR SMP the D bit is masked off."""
    _need(mad, MAD_HEADER_SIZE)
    status = mad[4] << 8 | mad[5]
    return status & 0x7FFF if mad[1] == MgmtClass.SUBN_DIRECTED_ROUTE else status


def mad_tid(mad: Buffer) -> int:
    """TransactionID (bytes 8-15)."""
    _need(mad, MAD_HEADER_SIZE)
    return int.from_bytes(mad[8:16], "big")


def mad_attr_id(mad: Buffer) -> int:
    """AttributeID (bytes 16-17)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[16] << 8 | mad[17]


def mad_attr_mod(mad: Buffer) -> int:
    """AttributeModifier (bytes 20-23)."""
    _need(mad, MAD_HEADER_SIZE)
    return int.from_bytes(mad[20:24], "big")


def dr_direction(mad: Buffer) -> int:
    """The D bit of a DR SMP: 0 outbound, 1 returning."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[4] >> 7


def dr_hop_pointer(mad: Buffer) -> int:
    """HopPointer of a DR SMP (byte 6)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[6]


def dr_hop_count(mad: Buffer) -> int:
    """HopCount of a DR SMP (byte 7)."""
    _need(mad, MAD_HEADER_SIZE)
    return mad[7]


def dr_slid(mad: Buffer) -> int:
    """DrSLID of a DR SMP (bytes 32-33)."""
    _need(mad, 36, "DrSmp")
    return mad[32] << 8 | mad[33]


def dr_dlid(mad: Buffer) -> int:
    """DrDLID of a DR SMP (bytes 34-35)."""
    _need(mad, 36, "DrSmp")
    return mad[34] << 8 | mad[35]


def smp_mkey(mad: Buffer) -> int:
    """M_Key of an SMP, LID-routed or directed (bytes 24-31)."""
    _need(mad, 32, "SMP")
    return int.from_bytes(mad[24:32], "big")


def smp_data(mad: Buffer) -> bytes:
    """The 64-byte SMP data area (bytes 64-127)."""
    _need(mad, SMP_DATA_OFFSET + SMP_DATA_SIZE, "SMP")
    return bytes(mad[SMP_DATA_OFFSET:SMP_DATA_OFFSET + SMP_DATA_SIZE])


def _dr_path(mad: Buffer, offset: int, what: str) -> bytes:
    _need(mad, MAD_SIZE, "DrSmp")
    hops = mad[7]
    if hops > MAX_HOP_COUNT:
        raise DecodeError("DrSmp", "hop_count", 7, f"{hops} exceeds {MAX_HOP_COUNT} ({what})")
    return bytes(mad[offset:offset + hops + 1])


def dr_initial_path(mad: Buffer) -> bytes:
    """InitialPath entries 0..HopCount (entry 0 unused; entry i = egress port at hop i)."""
    return _dr_path(mad, DR_INITIAL_PATH_OFFSET, "initial path")


def dr_return_path(mad: Buffer) -> bytes:
    """ReturnPath entries 0..HopCount (entry i = ingress port recorded at hop i)."""
    return _dr_path(mad, DR_RETURN_PATH_OFFSET, "return path")


def gmp_data(mad: Buffer) -> bytes:
    """The data area of a PerfMgt/DevMgt MAD (bytes 64 to the end, at most 192)."""
    _need(mad, GMP_DATA_OFFSET, "GMP")
    return bytes(mad[GMP_DATA_OFFSET:MAD_SIZE])


def sa_data(mad: Buffer) -> bytes:
    """The SA data area (bytes 56 to the end: a short MAD from ibsim gives fewer than 200)."""
    _need(mad, SA_DATA_OFFSET, "SaMad")
    return bytes(mad[SA_DATA_OFFSET:MAD_SIZE])


# --- whole MADs ----------------------------------------------------------------------------


def _area(data: Buffer, size: int, fmt: str) -> bytes:
    if len(data) > size:
        raise EncodeError(fmt, "data", f"{len(data)} bytes do not fit {size}")
    return bytes(data).ljust(size, b"\0")


def _path(path: Sequence[int], what: str) -> bytes:
    if len(path) > DR_PATH_SIZE or any(not 0 <= p <= 0xFF for p in path):
        raise EncodeError("DrSmp", what, "at most 64 port numbers of 0..255")
    return bytes(path).ljust(DR_PATH_SIZE, b"\0")


def _need_exact(fmt: str, mad: Buffer, size: int) -> None:
    if len(mad) != size:
        raise DecodeError(fmt, "length", 0, f"a MAD is {size} bytes, have {len(mad)}")


@dataclass(frozen=True, slots=True)
class Smp:
    """A LID-routed SMP (IBA 14.2.1.1); bytes 128-255 are reserved."""

    header: SmpHeader
    data: bytes = bytes(SMP_DATA_SIZE)

    @classmethod
    def decode(cls, mad: Buffer) -> Smp:
        """Decode a 256-byte LID-routed SMP."""
        _need_exact("Smp", mad, MAD_SIZE)
        return cls(SmpHeader.decode(mad), smp_data(mad))

    def encode(self) -> bytes:
        """The 256 bytes."""
        return (self.header.encode() + _area(self.data, SMP_DATA_SIZE, "Smp")).ljust(
            MAD_SIZE, b"\0")


@dataclass(frozen=True, slots=True)
class DrSmp:
    """A directed-route SMP (IBA 14.2.1.2) with its two 64-byte paths kept raw."""

    header: DrSmpHeader
    data: bytes = bytes(SMP_DATA_SIZE)
    initial_path: bytes = bytes(DR_PATH_SIZE)
    return_path: bytes = bytes(DR_PATH_SIZE)

    @classmethod
    def decode(cls, mad: Buffer) -> DrSmp:
        """Decode a 256-byte DR SMP."""
        _need_exact("DrSmp", mad, MAD_SIZE)
        b = bytes(mad)
        return cls(DrSmpHeader.decode(b), b[64:128], b[128:192], b[192:256])

    def encode(self) -> bytes:
        """The 256 bytes."""
        return (self.header.encode() + _area(self.data, SMP_DATA_SIZE, "DrSmp")
                + _path(self.initial_path, "initial_path") + _path(self.return_path, "return_path"))

    def _hops(self, path: bytes) -> bytes:
        count = self.header.hop_count
        if count > MAX_HOP_COUNT:
            raise DecodeError("DrSmp", "hop_count", 7, f"{count} exceeds {MAX_HOP_COUNT}")
        return path[1:count + 1]

    @property
    def hops(self) -> bytes:
        """InitialPath entries 1..HopCount: the egress port at each hop."""
        return self._hops(self.initial_path)

    @property
    def return_hops(self) -> bytes:
        """ReturnPath entries 1..HopCount: the ingress port recorded at each hop."""
        return self._hops(self.return_path)


@dataclass(frozen=True, slots=True)
class SaMad:
    """An SA MAD (IBA 15.2.1.1): MAD header, RMPP header, SA header, 200 bytes of data."""

    header: MadHeader
    rmpp: RmppHeader
    sa: SaHeader
    data: bytes = bytes(SA_DATA_SIZE)

    @classmethod
    def decode(cls, mad: Buffer) -> SaMad:
        """Decode an SA MAD; a short one (ibsim sends only the valid bytes) is zero-filled."""
        if not SA_DATA_OFFSET <= len(mad) <= MAD_SIZE:
            raise DecodeError("SaMad", "length", 0, f"need 56..256 bytes, have {len(mad)}")
        return cls(MadHeader.decode(mad), RmppHeader.decode(mad, RMPP_OFFSET),
                   SaHeader.decode(mad, SA_HEADER_OFFSET), sa_data(mad).ljust(SA_DATA_SIZE, b"\0"))

    def encode(self) -> bytes:
        """The 256 bytes."""
        return (self.header.encode() + self.rmpp.encode() + self.sa.encode()
                + _area(self.data, SA_DATA_SIZE, "SaMad"))


@dataclass(frozen=True, slots=True)
class Gmp:
    """A GMP with data at byte 64 (PerfMgt, DevMgt; IBA 16.1.1); bytes 24-63 reserved."""

    header: MadHeader
    data: bytes = bytes(GMP_DATA_SIZE)

    @classmethod
    def decode(cls, mad: Buffer) -> Gmp:
        """Decode a 256-byte GMP."""
        _need_exact("Gmp", mad, MAD_SIZE)
        return cls(MadHeader.decode(mad), gmp_data(mad))

    def encode(self) -> bytes:
        """The 256 bytes."""
        return (self.header.encode().ljust(GMP_DATA_OFFSET, b"\0")
                + _area(self.data, GMP_DATA_SIZE, "Gmp"))


def parse_mad(mad: Buffer) -> Smp | DrSmp | SaMad | Gmp:
    """The whole-MAD view that fits the management class."""
    cls = mad_class(mad)
    if cls == MgmtClass.SUBN_DIRECTED_ROUTE:
        return DrSmp.decode(mad)
    if cls == MgmtClass.SUBN_LID_ROUTED:
        return Smp.decode(mad)
    if cls == MgmtClass.SUBN_ADM:
        return SaMad.decode(mad)
    return Gmp.decode(mad)


def build_smp(
    method: int, attr_id: int, attr_mod: int = 0, tid: int = 0, data: Buffer = b"", *,
    mkey: int = 0, status: int = 0,
) -> bytes:
    """A 256-byte LID-routed SMP; ``data`` (at most 64 bytes) is zero-padded."""
    header = SmpHeader(method=method, attr_id=attr_id, attr_mod=attr_mod, tid=tid, mkey=mkey,
                       status=status)
    return Smp(header, bytes(data)).encode()


def build_dr_smp(
    method: int, attr_id: int, attr_mod: int = 0, tid: int = 0, data: Buffer = b"", *,
    initial_path: Sequence[int] = (0,), hop_count: int | None = None, hop_pointer: int = 0,
    dr_slid: int = PERMISSIVE_LID, dr_dlid: int = PERMISSIVE_LID, direction: int = 0,
    return_path: Sequence[int] = (), mkey: int = 0, status: int = 0,
) -> bytes:
    """A 256-byte DR SMP. ``hop_count`` defaults to ``len(initial_path) - 1``."""
    if hop_count is None:
        hop_count = max(len(initial_path) - 1, 0)
    if not 0 <= hop_count <= MAX_HOP_COUNT:
        raise EncodeError("DrSmp", "hop_count", f"{hop_count} is not 0..{MAX_HOP_COUNT}")
    header = DrSmpHeader(method=method, direction=direction, status=status,
                         hop_pointer=hop_pointer, hop_count=hop_count, tid=tid, attr_id=attr_id,
                         attr_mod=attr_mod, mkey=mkey, dr_slid=dr_slid, dr_dlid=dr_dlid)
    return DrSmp(header, bytes(data), _path(initial_path, "initial_path"),
                 _path(return_path, "return_path")).encode()


def build_gmp(
    mgmt_class: int, method: int, attr_id: int, attr_mod: int = 0, tid: int = 0,
    data: Buffer = b"", *, class_version: int = 1, status: int = 0,
) -> bytes:
    """A 256-byte GMP with ``data`` (at most 192 bytes) at byte 64: PerfMgt, DevMgt."""
    header = MadHeader(mgmt_class=mgmt_class, class_version=class_version, method=method,
                       status=status, tid=tid, attr_id=attr_id, attr_mod=attr_mod)
    return Gmp(header, bytes(data)).encode()


def build_sa_mad(
    method: int, attr_id: int, tid: int = 0, data: Buffer = b"", *, attr_mod: int = 0,
    component_mask: int = 0, attribute_offset: int = 0, sm_key: int = 0, status: int = 0,
    rmpp: RmppHeader | None = None, class_version: int = SA_CLASS_VERSION,
) -> bytes:
    """A 256-byte SA MAD. ``data`` holds at most 200 bytes (records packed by
    :func:`ipoib.wire.sa.pack_records`); ``rmpp`` defaults to all zeros (not RMPP)."""
    header = MadHeader(mgmt_class=MgmtClass.SUBN_ADM, class_version=class_version,
                       method=method, status=status, tid=tid, attr_id=attr_id, attr_mod=attr_mod)
    sa = SaHeader(sm_key=sm_key, attribute_offset=attribute_offset, component_mask=component_mask)
    rmpp = rmpp if rmpp is not None else RmppHeader(rmpp_version=0)
    return SaMad(header, rmpp, sa, bytes(data)).encode()


def _full(mad: Buffer) -> bytearray:
    """A mutable 256-byte copy; a short GMP (ibsim sends only the valid bytes) is zero-filled."""
    if not MAD_HEADER_SIZE <= len(mad) <= MAD_SIZE:
        raise DecodeError("MAD", "length", 0, f"need 24..256 bytes, have {len(mad)}")
    return bytearray(bytes(mad).ljust(MAD_SIZE, b"\0"))


_HEADER_FOR: dict[int, type[Record]] = {
    MgmtClass.SUBN_DIRECTED_ROUTE: DrSmpHeader, MgmtClass.SUBN_LID_ROUTED: SmpHeader}

_COVERED: dict[type[Record], int] = {
    c: sum(s.mask << s.shift for s in c.SLOTS) for c in (DrSmpHeader, SmpHeader, MadHeader)}
"""The bits each header's fields cover: a decode and re-encode zeroes the rest (reserved)."""
_SET = {c: {s.name: (m & ~(s.mask << s.shift), s.shift, s.mask) for s in c.SLOTS if s.kind == INT}
        for c, m in _COVERED.items()}  # per field: the covered bits but its own, shift, mask


def _patch(buf: bytearray, changes: dict[str, Any]) -> bytes:
    """The header with ``changes`` (errors from the record's decode/replace/encode)."""
    cls = _HEADER_FOR.get(buf[1], MadHeader)
    size, fields = cls.SIZE, _SET[cls]
    total = int.from_bytes(buf[:size], "big") & _COVERED[cls]
    for name, v in changes.items():
        f = fields.get(name)
        if f is None or not isinstance(v, int) or not 0 <= v <= f[2]:
            buf[:size] = cls.decode(buf).replace(**changes).encode()
            return bytes(buf)
        total = total & f[0] | v << f[1]
    buf[:size] = total.to_bytes(size, "big")
    return bytes(buf)


def with_header(mad: Buffer, **changes: Any) -> bytes:
    """A copy of ``mad`` (padded to 256 bytes) with fields of its class's header changed."""
    return _patch(_full(mad), changes)


def dr_step(mad: Buffer, hop_pointer: int, return_hop: int | None = None,
            return_port: int = 0) -> bytes:
    """A copy of a DR SMP with HopPointer set and, if ``return_hop`` is given,
    ReturnPath[return_hop] = ``return_port`` (IBA C14-9, C14-13): per hop, so no record."""
    _need(mad, MAD_SIZE, "DrSmp")
    if not 0 <= hop_pointer <= 0xFF or not 0 <= return_port <= 0xFF or not (
            return_hop is None or 0 <= return_hop < DR_PATH_SIZE):
        raise EncodeError("DrSmp", "hop_pointer", f"hop {hop_pointer}/{return_hop}, port "
                          f"{return_port} out of range")
    buf = bytearray(mad[:MAD_SIZE])
    buf[6] = hop_pointer
    if return_hop is not None:
        buf[DR_RETURN_PATH_OFFSET + return_hop] = return_port
    return bytes(buf)


_DATA_AREA: dict[int, tuple[int, int]] = {
    **dict.fromkeys(_HEADER_FOR, (SMP_DATA_OFFSET, SMP_DATA_SIZE)),
    MgmtClass.SUBN_ADM: (SA_DATA_OFFSET, SA_DATA_SIZE)}


_DR_CLASS = int(MgmtClass.SUBN_DIRECTED_ROUTE)
_SMP_CLEAR = {c: [(m.start(), m.end(), bytes(m.end() - m.start())) for m in re.finditer(
    rb"\0+", _COVERED[h].to_bytes(h.SIZE, "big"))] for c, h in _HEADER_FOR.items()}
"""Per SMP class, the header's reserved byte runs, zeroed by :func:`make_response`."""


def make_response(
    mad: Buffer, data: Buffer | None = None, *, status: int = 0, method: int | None = None,
) -> bytes:
    """The response to request ``mad``: a copy with the response method (GetResp for Get and
    Set), ``status``, the D bit set for a DR SMP (HopPointer, paths, TID and attribute kept)
    and, if given, ``data`` zero-padded into the class's data area."""
    buf = _full(mad)
    cls = buf[1]
    method = response_method(buf[3]) if method is None else method
    clear = _SMP_CLEAR.get(cls)
    if clear is not None and isinstance(method, int) and isinstance(status, int) \
            and 0 <= method <= 0xFF and 0 <= status <= 0x7FFF:  # an SMA's answer: in place
        buf[3:6] = bytes((method, status >> 8 | (0x80 if cls == _DR_CLASS else 0), status & 0xFF))
        for a, e, zeros in clear:
            buf[a:e] = zeros
        if data is not None:
            buf[SMP_DATA_OFFSET:SMP_DATA_OFFSET + SMP_DATA_SIZE] = _area(data, SMP_DATA_SIZE, "MAD")
        return bytes(buf)
    changes: dict[str, Any] = {"method": method, "status": status}
    if cls == MgmtClass.SUBN_DIRECTED_ROUTE:
        changes["direction"] = 1
    if data is not None:
        offset, size = _DATA_AREA.get(cls, (GMP_DATA_OFFSET, GMP_DATA_SIZE))
        buf[offset:offset + size] = _area(data, size, "MAD")
    return _patch(buf, changes)
