"""The ibsim socket protocol's byte layouts (ibsim-protocol.md §4, §6; ibsim ``include/ibsim.h``).

Two kinds of datagram cross an ibsim server's sockets:

- **control messages** (:class:`SimCtl`, 80 bytes) in *host* byte order, little-endian on
  x86-64, with a 64-byte payload whose layout depends on the message type
  (:class:`SimClientInfo`, :class:`SimPort`, :class:`SimVendor`, :class:`SimGid`, ...);
- **data messages**: ``struct sim_request``, exactly 288 bytes, a 32-byte header
  (:class:`SimRequestHeader`) and a 256-byte MAD. Its byte-order quirks are kept exactly:
  DLID and SLID are host-order u32 words holding ``htons(lid)`` (so on the wire the LID is
  big-endian in the first two bytes, then two zero bytes), the QPs, the status and the length
  are big-endian, and bytes 20-23 are alignment padding whose contents are garbage.

The records are the documentation and the slow path; :func:`unpack_request` and
:func:`pack_request` do the header with one precompiled struct, for the per-MAD path.
None of this is an IBA format: it is the ABI of ibsim 0.10 and libumad2sim on x86-64.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .errors import DecodeError, EncodeError
from .layout import Buffer, Record, layout, raw, text, u, ule

SIM_MAGIC = 0xDEADBEEF
"""``sim_ctl.magic``; little-endian bytes ``ef be ad de``."""
SIM_CTL_SIZE = 80
SIM_CTL_MAX_DATA = 64
SIM_REQUEST_SIZE = 288
SIM_REQUEST_HEADER_SIZE = 32
SIM_MAD_SIZE = 256
IBSIM_MAX_CLIENTS = 10
"""ibsim's slot count; an ibsim-compatible server may offer more (ibsim-protocol.md §16)."""
NODEID_SIZE = 32
"""``sim_client_info.nodeid``: at most 31 characters and a NUL."""
STATUS_TIMEOUT = 110
"""``sim_request.status`` of a bounced MAD: ETIMEDOUT (``00 00 00 6e``)."""
DEFAULT_SOCKNAME = "sim"
"""The socket base name when ``IBSIM_SOCKNAME`` is unset."""
DEFAULT_UDP_PORT = 7070
"""``ibsim -r``'s control port; the data port of slot i is this + i + 1."""
PERMISSIVE_LID = 0xFFFF


class CtlType(IntEnum):
    """``enum SIM_CTL_TYPES``: the control message types (ERROR is a reply only)."""

    ERROR = 0
    CONNECT = 1
    DISCONNECT = 2
    GET_PORT = 3
    GET_VENDOR = 4
    GET_GID = 5
    GET_GUID = 6
    GET_NODEINFO = 7
    GET_PORTINFO = 8
    SET_ISSM = 9
    GET_PKEYS = 10


@layout(size=SIM_CTL_SIZE, name="sim_ctl", section="ibsim include/ibsim.h (ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimCtl(Record):
    """One control message, request or reply: the server fills ``data`` and echoes it all."""

    magic: int = ule(0, 4, default=SIM_MAGIC)
    clientid: int = ule(4, 4)
    """The slot CONNECT returned (ignored by CONNECT itself)."""
    type: int = ule(8, 4)
    len: int = ule(12, 4)
    """Payload length as the client wrote it; the server ignores it."""
    data: bytes = raw(16, SIM_CTL_MAX_DATA)


@layout(size=44, name="sim_client_info",
        section="ibsim include/ibsim.h (ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimClientInfo(Record):
    """CONNECT's payload. In: the client's pid (UDP: its data port), QP, issm, SIM_HOST.
    Out: ``id`` is the slot and ``nodeid`` the node actually attached."""

    id: int = ule(0, 4)
    qp: int = ule(4, 4)
    """0 from umad2sim; N > 1 registers a unicast data QP (ibsim-protocol.md §7.5)."""
    issm: int = ule(8, 4)
    nodeid: str = text(12, NODEID_SIZE)


@layout(size=4, name="sim_port", section="ibsim include/ibsim.h (ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimPort(Record):
    """GET_PORT's reply: the attached port's LID and PortState."""

    lid: int = ule(0, 2)
    state: int = u(2, 8)


@layout(size=24, name="sim_vendor", section="ibsim include/ibsim.h (ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimVendor(Record):
    """GET_VENDOR's reply (4 bytes of padding before the u64)."""

    vendor_id: int = ule(0, 4)
    vendor_part_id: int = ule(4, 4)
    hw_ver: int = ule(8, 4)
    fw_ver: int = ule(16, 8)


@layout(size=16, name="sim_gid", section="ibsim ibsim/ibsim.c sim_ctl_get_gid "
                                        "(ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimGid(Record):
    """GET_GID's reply: the GID prefix in network order, the node GUID in host order."""

    gid_prefix: int = u(0, 64)
    node_guid: int = ule(8, 8)


@layout(size=8, name="sim_guid", section="ibsim ibsim/ibsim.c sim_ctl_get_guid "
                                         "(ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimGuid(Record):
    """GET_GUID's reply: the node GUID in host order."""

    node_guid: int = ule(0, 8)


@layout(size=4, name="sim_issm", section="ibsim umad2sim/sim_client.c sim_client_set_sm "
                                         "(ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimIssm(Record):
    """SET_ISSM's payload: an ``int``, nonzero to become the port's SM client."""

    issm: int = ule(0, 4)


@layout(size=1, name="sim_portinfo_req", section="ibsim ibsim/ibsim.c sim_ctl_get_portinfo "
                                                 "(ibsim-protocol.md §4)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimPortInfoRequest(Record):
    """GET_PORTINFO's request: ``data[0]`` selects the port (0: the attached one)."""

    port: int = u(0, 8)


@layout(size=SIM_REQUEST_HEADER_SIZE, name="sim_request",
        section="ibsim include/ibsim.h (ibsim-protocol.md §6)")
@dataclass(frozen=True, slots=True, kw_only=True)
class SimRequestHeader(Record):
    """The 32 bytes before the MAD in every data message (x86-64 encoding)."""

    dlid: int = u(0, 16)
    """``htons(lid)`` in a host-order u32: big-endian in bytes 0-1, bytes 2-3 zero."""
    slid: int = u(4, 16)
    """Same encoding; 0 in a request means "my port's LID" (the server fills it in)."""
    dqp: int = u(8, 32)
    sqp: int = u(12, 32)
    status: int = u(16, 32)
    """0, or :data:`STATUS_TIMEOUT` on a bounce."""
    pad: bytes = raw(20, 4)
    """Uninitialised alignment padding: garbage in real traffic, echoed in replies."""
    length: int = u(24, 64)
    """Valid MAD bytes (<= 256); anything after them is the sender's garbage."""


_HEADER = struct.Struct(">H2xH2xIII4sQ")


def unpack_request(buf: Buffer) -> tuple[int, int, int, int, int, bytes, int]:
    """``(dlid, slid, dqp, sqp, status, pad, length)`` of a data message, without objects."""
    if len(buf) < SIM_REQUEST_HEADER_SIZE:
        raise DecodeError("sim_request", "length", 0,
                          f"need {SIM_REQUEST_HEADER_SIZE} bytes, have {len(buf)}")
    dlid, slid, dqp, sqp, status, pad, length = _HEADER.unpack_from(buf)
    return dlid, slid, dqp, sqp, status, pad, length


def pack_request(dlid: int, slid: int, dqp: int, sqp: int, status: int, length: int,
                 mad: Buffer, pad: bytes = b"\0\0\0\0") -> bytes:
    """A whole 288-byte data message; ``mad`` is zero-padded (or cut) to 256 bytes."""
    try:
        head = _HEADER.pack(dlid, slid, dqp, sqp, status, pad, length)
    except struct.error as e:
        raise EncodeError("sim_request", "header", str(e)) from None
    if len(mad) >= SIM_MAD_SIZE:
        return head + bytes(mad[:SIM_MAD_SIZE])
    return head + bytes(mad) + bytes(SIM_MAD_SIZE - len(mad))


def request_mad(buf: Buffer, length: int) -> bytes:
    """The valid MAD bytes of a data message: ``length`` of them, at most 256."""
    n = min(length, SIM_MAD_SIZE)
    return bytes(buf[SIM_REQUEST_HEADER_SIZE:SIM_REQUEST_HEADER_SIZE + n])


def ctl_payload(record: Record) -> bytes:
    """``record`` as a control message's 64-byte data area (zero-padded)."""
    body = record.encode()
    if len(body) > SIM_CTL_MAX_DATA:
        raise EncodeError("sim_ctl", "data", f"{len(body)} bytes do not fit 64")
    return body.ljust(SIM_CTL_MAX_DATA, b"\0")


def abstract_name(base: str, suffix: str) -> bytes:
    """The abstract unix socket address libumad2sim uses for ``<base>:<suffix>``: a NUL, the
    name, and a trailing NUL that is part of the address (``make_name()``), so the length
    matches exactly."""
    return b"\0" + f"{base}:{suffix}".encode() + b"\0"


__all__ = [
    "DEFAULT_SOCKNAME", "DEFAULT_UDP_PORT", "IBSIM_MAX_CLIENTS", "NODEID_SIZE",
    "PERMISSIVE_LID", "SIM_CTL_MAX_DATA", "SIM_CTL_SIZE", "SIM_MAD_SIZE", "SIM_MAGIC",
    "SIM_REQUEST_HEADER_SIZE", "SIM_REQUEST_SIZE", "STATUS_TIMEOUT", "CtlType", "SimClientInfo",
    "SimCtl", "SimGid", "SimGuid", "SimIssm", "SimPort", "SimPortInfoRequest",
    "SimRequestHeader", "SimVendor", "abstract_name", "ctl_payload", "pack_request",
    "request_mad", "unpack_request",
]
