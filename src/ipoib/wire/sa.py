"""SA attribute ids, status codes and the records IPoIB and the SA exchange (IBA 15.2.5).

Each record is declared once with the :mod:`ipoib.wire.layout` engine; every field that
IBA gives a ComponentMask bit carries it as ``cm=N``, so the SA can match a query template
with :func:`ipoib.wire.layout.match` and clients can build masks by field name. Reserved
fields that own a mask bit are declared too (so the bit maps to a name and round-trips);
reserved bits without one are left uncovered (zero on encode).

Records travel in GetTableResp MADs back to back at a stride of ``AttributeOffset`` 8-byte
words (IBA 15.2.5.1); :func:`pack_records` and :func:`unpack_records` handle the stride and
the cut tables seen when RMPP is missing (wire-formats.md §5.1, vector ``saquery_nr``).

MGID mapping lives in :mod:`ipoib.wire.ipoib`; the SA header in :mod:`ipoib.wire.mad`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Generic, Self, TypeVar

from .enums import RATE_GBPS, Selector
from .errors import DecodeError, EncodeError
from .layout import Buffer, Record, layout, raw, text, u

__all__ = [
    "IPOIB_BCAST_JOIN_MASK",
    "IPOIB_MCAST_JOIN_MASK",
    "IPOIB_PATH_REC_MASK",
    "JoinState",
    "MCMemberRecord",
    "NodeRecord",
    "PathRecord",
    "PortInfoRecord",
    "SaAttr",
    "SaStatus",
    "Unpacked",
    "attribute_offset",
    "lifetime_order",
    "mtu_order",
    "pack_records",
    "rate_order",
    "selector_ok",
    "unpack_records",
]


class SaAttr(IntEnum):
    """SA attribute ids (IBA 15.2.5, Linux ``ib_sa.h``; wire-formats.md §5.1)."""

    CLASS_PORT_INFO = 0x0001
    NOTICE = 0x0002
    INFORM_INFO = 0x0003
    NODE_RECORD = 0x0011
    PORT_INFO_RECORD = 0x0012
    SL2VL_TABLE_RECORD = 0x0013
    SWITCH_INFO_RECORD = 0x0014
    LINEAR_FDB_RECORD = 0x0015
    RANDOM_FDB_RECORD = 0x0016
    MULTICAST_FDB_RECORD = 0x0017
    SM_INFO_RECORD = 0x0018
    LINK_RECORD = 0x0020
    GUID_INFO_RECORD = 0x0030
    SERVICE_RECORD = 0x0031
    PKEY_TABLE_RECORD = 0x0033
    PATH_RECORD = 0x0035
    VL_ARBITRATION_TABLE_RECORD = 0x0036
    MC_MEMBER_RECORD = 0x0038
    TRACE_RECORD = 0x0039
    MULTI_PATH_RECORD = 0x003A
    SERVICE_ASSOCIATION_RECORD = 0x003B
    INFORM_INFO_RECORD = 0x00F3


class SaStatus(IntEnum):
    """SA class-specific MAD status codes, bits 15-8 of Status (IBA 15.2.4; OpenSM names)."""

    ERR_NO_RESOURCES = 0x0100
    ERR_REQ_INVALID = 0x0200
    ERR_NO_RECORDS = 0x0300
    ERR_TOO_MANY_RECORDS = 0x0400
    ERR_REQ_INVALID_GID = 0x0500
    ERR_REQ_INSUFFICIENT_COMPONENTS = 0x0600
    ERR_REQ_DENIED = 0x0700
    ERR_PRIO_SUGGESTED = 0x0800


class JoinState(IntFlag):
    """MCMemberRecord.JoinState bits as they are on the wire (IBA 1.3, 15.2.5.17)."""

    FULL = 0x1
    NON = 0x2
    SENDONLY_NON = 0x4
    SENDONLY_FULL = 0x8


@layout(size=64, name="PathRecord", section="IBA 15.2.5.16")
@dataclass(frozen=True, slots=True, kw_only=True)
class PathRecord(Record):
    """A path between two ports: what an AH is built from (Linux ``path_rec_table``).

    ServiceID owns two mask bits. IBA does not say where it splits; we follow the
    MultiPathRecord split (8 MSBs under bit 0, 56 LSBs under bit 1), and Linux and OpenSM
    always set both bits together, so ``SERVICE_ID_MASK`` is what queries use.
    """

    service_id_msb: int = u(0, 8, cm=0)
    service_id_lsb: int = u(1, 56, cm=1)
    dgid: bytes = raw(8, 16, cm=2)
    sgid: bytes = raw(24, 16, cm=3)
    dlid: int = u(40, 16, cm=4)
    slid: int = u(42, 16, cm=5)
    raw_traffic: int = u(44, 1, cm=6)
    reserved_44: int = u(44, 3, bit=1, cm=7)
    flow_label: int = u(44, 20, bit=4, cm=8)
    hop_limit: int = u(47, 8, cm=9)
    tclass: int = u(48, 8, cm=10)
    reversible: int = u(49, 1, cm=11)
    numb_path: int = u(49, 7, bit=1, cm=12)
    pkey: int = u(50, 16, cm=13)
    qos_class: int = u(52, 12, cm=14)
    sl: int = u(53, 4, bit=4, cm=15)
    mtu_selector: int = u(54, 2, cm=16)
    mtu: int = u(54, 6, bit=2, cm=17)
    rate_selector: int = u(55, 2, cm=18)
    rate: int = u(55, 6, bit=2, cm=19)
    packet_life_time_selector: int = u(56, 2, cm=20)
    packet_life_time: int = u(56, 6, bit=2, cm=21)
    preference: int = u(57, 8, cm=22)

    SERVICE_ID_MASK: ClassVar[int] = 0x3

    @property
    def service_id(self) -> int:
        """The whole 64-bit ServiceID."""
        return self.service_id_msb << 56 | self.service_id_lsb

    def with_service_id(self, service_id: int) -> Self:
        """A copy carrying a 64-bit ServiceID (both halves)."""
        if not 0 <= service_id < 1 << 64:
            raise EncodeError(self.NAME, "service_id", f"{service_id!r} does not fit 64 bits")
        return self.replace(
            service_id_msb=service_id >> 56, service_id_lsb=service_id & (1 << 56) - 1
        )


@layout(size=52, name="MCMemberRecord", section="IBA 15.2.5.17")
@dataclass(frozen=True, slots=True, kw_only=True)
class MCMemberRecord(Record):
    """A multicast group, or one port's membership in it (Linux ``mcmember_rec_table``)."""

    mgid: bytes = raw(0, 16, cm=0)
    port_gid: bytes = raw(16, 16, cm=1)
    qkey: int = u(32, 32, cm=2)
    mlid: int = u(36, 16, cm=3)
    mtu_selector: int = u(38, 2, cm=4)
    mtu: int = u(38, 6, bit=2, cm=5)
    tclass: int = u(39, 8, cm=6)
    pkey: int = u(40, 16, cm=7)
    rate_selector: int = u(42, 2, cm=8)
    rate: int = u(42, 6, bit=2, cm=9)
    packet_life_time_selector: int = u(43, 2, cm=10)
    packet_life_time: int = u(43, 6, bit=2, cm=11)
    sl: int = u(44, 4, cm=12)
    flow_label: int = u(44, 20, bit=4, cm=13)
    hop_limit: int = u(47, 8, cm=14)
    scope: int = u(48, 4, cm=15)
    join_state: int = u(48, 4, bit=4, cm=16)
    proxy_join: int = u(49, 1, cm=17)


@layout(size=108, name="NodeRecord", section="IBA 15.2.5.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord(Record):
    """LID, NodeInfo (IBA 14.2.5.3) and NodeDescription, flattened so each has a mask bit."""

    lid: int = u(0, 16, cm=0)
    reserved: int = u(2, 16, cm=1)
    base_version: int = u(4, 8, cm=2)
    class_version: int = u(5, 8, cm=3)
    node_type: int = u(6, 8, cm=4)
    num_ports: int = u(7, 8, cm=5)
    system_image_guid: int = u(8, 64, cm=6)
    node_guid: int = u(16, 64, cm=7)
    port_guid: int = u(24, 64, cm=8)
    partition_cap: int = u(32, 16, cm=9)
    device_id: int = u(34, 16, cm=10)
    revision: int = u(36, 32, cm=11)
    local_port_num: int = u(40, 8, cm=12)
    vendor_id: int = u(41, 24, cm=13)
    node_description: str = text(44, 64, cm=14)

    NODE_INFO_AT: ClassVar[int] = 4
    NODE_INFO_SIZE: ClassVar[int] = 40

    def node_info_bytes(self) -> bytes:
        """The embedded 40-byte NodeInfo attribute, for ``smp.NodeInfo.decode``."""
        return self.encode()[self.NODE_INFO_AT : self.NODE_INFO_AT + self.NODE_INFO_SIZE]

    @classmethod
    def from_attributes(cls, lid: int, node_info: Buffer, node_description: str) -> Self:
        """The record for a node, from its NodeInfo bytes as an SMA returns them."""
        if len(node_info) != cls.NODE_INFO_SIZE:
            raise EncodeError(cls.NAME, "node_info", f"need 40 bytes, got {len(node_info)}")
        head = cls(lid=lid).encode()[: cls.NODE_INFO_AT]
        rec = cls.decode(head + bytes(node_info) + bytes(64))
        return rec.replace(node_description=node_description)


@layout(size=68, name="PortInfoRecord", section="IBA 15.2.5.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class PortInfoRecord(Record):
    """EndportLID, PortNum, Options and PortInfo (IBA 14.2.5.6) flattened, one bit per field.

    The bits after Options follow the PortInfo fields in order, reserved ones included, as
    OpenSM's ``IB_PIR_COMPMASK_*`` list numbers them (3 M_Key .. 57 LinkSpeedExtEnabled).
    MulticastPKeyTrapSuppressionEnabled is the 2-bit field of IBA 1.2.1 (OpenSM likewise).
    """

    endport_lid: int = u(0, 16, cm=0)
    port_num: int = u(2, 8, cm=1)
    options: int = u(3, 8, cm=2)
    mkey: int = u(4, 64, cm=3)
    gid_prefix: int = u(12, 64, cm=4)
    lid: int = u(20, 16, cm=5)
    master_sm_lid: int = u(22, 16, cm=6)
    capability_mask: int = u(24, 32, cm=7)
    diag_code: int = u(28, 16, cm=8)
    mkey_lease_period: int = u(30, 16, cm=9)
    local_port_num: int = u(32, 8, cm=10)
    link_width_enabled: int = u(33, 8, cm=11)
    link_width_supported: int = u(34, 8, cm=12)
    link_width_active: int = u(35, 8, cm=13)
    link_speed_supported: int = u(36, 4, cm=14)
    port_state: int = u(36, 4, bit=4, cm=15)
    port_physical_state: int = u(37, 4, cm=16)
    link_down_default_state: int = u(37, 4, bit=4, cm=17)
    mkey_protect_bits: int = u(38, 2, cm=18)
    reserved_34: int = u(38, 3, bit=2, cm=19)
    lmc: int = u(38, 3, bit=5, cm=20)
    link_speed_active: int = u(39, 4, cm=21)
    link_speed_enabled: int = u(39, 4, bit=4, cm=22)
    neighbor_mtu: int = u(40, 4, cm=23)
    master_sm_sl: int = u(40, 4, bit=4, cm=24)
    vl_cap: int = u(41, 4, cm=25)
    init_type: int = u(41, 4, bit=4, cm=26)
    vl_high_limit: int = u(42, 8, cm=27)
    vl_arbitration_high_cap: int = u(43, 8, cm=28)
    vl_arbitration_low_cap: int = u(44, 8, cm=29)
    init_type_reply: int = u(45, 4, cm=30)
    mtu_cap: int = u(45, 4, bit=4, cm=31)
    vl_stall_count: int = u(46, 3, cm=32)
    hoq_life: int = u(46, 5, bit=3, cm=33)
    operational_vls: int = u(47, 4, cm=34)
    partition_enforcement_inbound: int = u(47, 1, bit=4, cm=35)
    partition_enforcement_outbound: int = u(47, 1, bit=5, cm=36)
    filter_raw_inbound: int = u(47, 1, bit=6, cm=37)
    filter_raw_outbound: int = u(47, 1, bit=7, cm=38)
    mkey_violations: int = u(48, 16, cm=39)
    pkey_violations: int = u(50, 16, cm=40)
    qkey_violations: int = u(52, 16, cm=41)
    guid_cap: int = u(54, 8, cm=42)
    client_reregister: int = u(55, 1, cm=43)
    multicast_pkey_trap_suppression_enabled: int = u(55, 2, bit=1, cm=44)
    subnet_timeout: int = u(55, 5, bit=3, cm=45)
    reserved_52: int = u(56, 3, cm=46)
    resp_time_value: int = u(56, 5, bit=3, cm=47)
    local_phy_errors: int = u(57, 4, cm=48)
    overrun_errors: int = u(57, 4, bit=4, cm=49)
    max_credit_hint: int = u(58, 16, cm=50)
    reserved_56: int = u(60, 8, cm=51)
    link_round_trip_latency: int = u(61, 24, cm=52)
    capability_mask2: int = u(64, 16, cm=53)
    link_speed_ext_active: int = u(66, 4, cm=54)
    link_speed_ext_supported: int = u(66, 4, bit=4, cm=55)
    reserved_63: int = u(67, 3, cm=56)
    link_speed_ext_enabled: int = u(67, 5, bit=3, cm=57)

    PORT_INFO_AT: ClassVar[int] = 4
    PORT_INFO_SIZE: ClassVar[int] = 64

    def port_info_bytes(self) -> bytes:
        """The embedded 64-byte PortInfo attribute, for ``smp.PortInfo.decode``."""
        return self.encode()[self.PORT_INFO_AT :]

    @classmethod
    def from_attributes(
        cls, endport_lid: int, port_num: int, port_info: Buffer, options: int = 0
    ) -> Self:
        """The record for a port, from its PortInfo bytes as an SMA returns them."""
        if len(port_info) != cls.PORT_INFO_SIZE:
            raise EncodeError(cls.NAME, "port_info", f"need 64 bytes, got {len(port_info)}")
        head = cls(endport_lid=endport_lid, port_num=port_num, options=options).encode()
        return cls.decode(head[: cls.PORT_INFO_AT] + bytes(port_info))


# ComponentMasks the Linux IPoIB driver sends (wire-formats.md §7.4, §7.6).
IPOIB_BCAST_JOIN_MASK = 0x10083  # MGID | PortGID | P_Key | JoinState
IPOIB_MCAST_JOIN_MASK = 0x173F7  # the above + Q_Key, MTU(sel), TClass, Rate(sel), SL, FL, HL
IPOIB_PATH_REC_MASK = 0x340C  # DGID | SGID | TClass | NumbPath | P_Key

RecordT = TypeVar("RecordT", bound=Record)


def attribute_offset(record_cls: type[Record]) -> int:
    """AttributeOffset for a table of ``record_cls``: its size in 8-byte words, rounded up."""
    return -(-record_cls.SIZE // 8)


def pack_records(records: Sequence[Record]) -> bytes:
    """Records of one type back to back at the AttributeOffset stride, zero-padded."""
    if not records:
        return b""
    cls = type(records[0])
    stride = attribute_offset(cls) * 8
    out = bytearray()
    for r in records:
        if type(r) is not cls:
            raise EncodeError(cls.NAME, "records", f"mixed table: {type(r).__name__}")
        out += r.encode().ljust(stride, b"\0")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Unpacked(Generic[RecordT]):
    """The whole records found in a table, and whether its tail was cut short."""

    records: list[RecordT]
    truncated: bool


def unpack_records(
    cls: type[RecordT], data: Buffer, attr_offset: int, count: int | None = None
) -> Unpacked[RecordT]:
    """Decode a table of ``cls`` records from SA data (the bytes after the SA header).

    ``data`` should be exactly the table (RMPP PayloadLength or the transport's length
    tells where it ends). Without ``count``, every whole record is returned; a final record
    may lack its padding. A partial record at the end sets ``truncated`` instead of raising,
    because an SA reply cut at one MAD (no RMPP) is normal in the field. With ``count``,
    at most ``count`` records are decoded and trailing bytes are padding; fewer available
    records mean ``truncated``. AttributeOffset 0 is OpenSM's empty table.
    A stride smaller than the record is malformed and raises :class:`DecodeError`.
    """
    if count is not None and count < 0:
        raise DecodeError(cls.NAME, "count", 0, f"negative record count {count}")
    if attr_offset == 0:
        return Unpacked([], bool(count))
    stride = attr_offset * 8
    if attr_offset < 0 or stride < cls.SIZE:
        raise DecodeError(
            cls.NAME, "AttributeOffset", 0,
            f"stride {attr_offset} words is smaller than the {cls.SIZE}-byte record",
        )
    n = len(data) // stride + (len(data) % stride >= cls.SIZE)
    cut = 0 < len(data) % stride < cls.SIZE
    if count is not None:
        cut = n < count
        n = min(n, count)
    return Unpacked([cls.decode(data, i * stride) for i in range(n)], cut)


def mtu_order(code: int) -> float | None:
    """An MTU code's size in bytes (IBA 14.2.5.6), or None for a code IBA does not define."""
    return float(128 << code) if 1 <= code <= 5 else None


def rate_order(code: int) -> float | None:
    """A rate code's real speed in Gb/s: codes are not in speed order (``enum ib_rate``)."""
    return RATE_GBPS.get(code)


def lifetime_order(code: int) -> float | None:
    """A PacketLifeTime code orders as itself (4.096 us * 2**code)."""
    return float(code) if 0 <= code <= 0x3F else None


def selector_ok(
    selector: int, wanted: int, actual: int, order: Callable[[int], float | None]
) -> bool:
    """Whether ``actual`` satisfies ``selector``/``wanted`` (IBA 15.2.5.16 MTU/Rate/Lifetime).

    ``order`` maps a code to a comparable magnitude (:func:`mtu_order`, :func:`rate_order`,
    :func:`lifetime_order`); undefined codes never satisfy a comparison. BEST accepts any
    defined value: picking the best one is the SA's choice, not a filter.
    """
    a = order(actual)
    if a is None:
        return False
    if selector == Selector.BEST:
        return True
    w = order(wanted)
    if w is None:
        return False
    if selector == Selector.GREATER:
        return a > w
    if selector == Selector.LESS:
        return a < w
    if selector == Selector.EXACTLY:
        return a == w
    return False

