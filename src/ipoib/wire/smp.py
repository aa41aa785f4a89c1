"""SMP attributes: what the SM reads and writes on every node (IBA 14.2.5).

Each attribute is one record (:mod:`ipoib.wire.layout`) sized as it sits in the 64-byte SMP data
area. The tables (P_KeyTable, forwarding tables, GUIDInfo, SLtoVL, VLArbitration) keep their
block as one raw field, declared once, and offer the entries as a tuple (``.entries``,
``.ports``, ``.masks``, ``.guids``, ``.vls``) plus a ``from_...`` constructor, because the
SMA and the SM think in entries, not in 32 separately named fields.

The AttributeModifier encodings, which differ per attribute, are here too
(:func:`pkey_table_am`, :func:`mft_am`, :func:`vl_arb_am`, :func:`sl_to_vl_am`,
:func:`port_info_port`), with their inverses, and the DataDetails of the two traps an SMA
sends (:class:`Trap128`, :class:`Trap144`, built into a :class:`~ipoib.wire.mad.Notice` by
:func:`trap_128` and :func:`trap_144`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Self

from .enums import NodeType
from .errors import DecodeError, EncodeError
from .layout import Buffer, Record, layout, raw, text, u
from .mad import SMP_DATA_SIZE, Notice, NoticeType


class SmpAttr(IntEnum):
    """SMP AttributeIDs (IBA 14.2.5, Table 145; 0xFF90 is Mellanox's ExtPortInfo)."""

    NOTICE = 0x0002
    NODE_DESCRIPTION = 0x0010
    NODE_INFO = 0x0011
    SWITCH_INFO = 0x0012
    GUID_INFO = 0x0014
    PORT_INFO = 0x0015
    P_KEY_TABLE = 0x0016
    SL_TO_VL_MAPPING_TABLE = 0x0017
    VL_ARBITRATION_TABLE = 0x0018
    LINEAR_FORWARDING_TABLE = 0x0019
    MULTICAST_FORWARDING_TABLE = 0x001B
    SM_INFO = 0x0020
    VENDOR_EXT_PORT_INFO = 0xFF90


@layout(size=40, name="NodeInfo", section="IBA 14.2.5.3")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo(Record):
    """Attribute 0x0011. PortGUID and LocalPortNum describe the port the SMP came in on."""

    base_version: int = u(0, 8, default=1)
    class_version: int = u(1, 8, default=1)
    node_type: int = u(2, 8)
    num_ports: int = u(3, 8)
    system_image_guid: int = u(4, 64)
    node_guid: int = u(12, 64)
    port_guid: int = u(20, 64)
    partition_cap: int = u(28, 16)
    device_id: int = u(30, 16)
    revision: int = u(32, 32)
    local_port_num: int = u(36, 8)
    vendor_id: int = u(37, 24)


@layout(size=64, name="NodeDescription", section="IBA 14.2.5.2")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeDescription(Record):
    """Attribute 0x0010: 64 bytes of NUL-padded UTF-8 text."""

    node_string: str = text(0, 64)


@layout(size=64, name="PortInfo", section="IBA 14.2.5.6")
@dataclass(frozen=True, slots=True, kw_only=True)
class PortInfo(Record):
    """Attribute 0x0015; the port is AttributeModifier bits 7-0 (:func:`port_info_port`)."""

    mkey: int = u(0, 64)
    gid_prefix: int = u(8, 64)
    lid: int = u(16, 16)
    master_sm_lid: int = u(18, 16)
    capability_mask: int = u(20, 32)
    diag_code: int = u(24, 16)
    mkey_lease_period: int = u(26, 16)
    local_port_num: int = u(28, 8)
    link_width_enabled: int = u(29, 8)
    link_width_supported: int = u(30, 8)
    link_width_active: int = u(31, 8)
    link_speed_supported: int = u(32, 4)
    port_state: int = u(32, 4, bit=4)
    port_physical_state: int = u(33, 4)
    link_down_default_state: int = u(33, 4, bit=4)
    mkey_protect_bits: int = u(34, 2)
    lmc: int = u(34, 3, bit=5)
    link_speed_active: int = u(35, 4)
    link_speed_enabled: int = u(35, 4, bit=4)
    neighbor_mtu: int = u(36, 4)
    master_sm_sl: int = u(36, 4, bit=4)
    vl_cap: int = u(37, 4)
    init_type: int = u(37, 4, bit=4)
    vl_high_limit: int = u(38, 8)
    vl_arbitration_high_cap: int = u(39, 8)
    vl_arbitration_low_cap: int = u(40, 8)
    init_type_reply: int = u(41, 4)
    mtu_cap: int = u(41, 4, bit=4)
    vl_stall_count: int = u(42, 3)
    hoq_life: int = u(42, 5, bit=3)
    operational_vls: int = u(43, 4)
    partition_enforcement_inbound: int = u(43, 1, bit=4)
    partition_enforcement_outbound: int = u(43, 1, bit=5)
    filter_raw_inbound: int = u(43, 1, bit=6)
    filter_raw_outbound: int = u(43, 1, bit=7)
    mkey_violations: int = u(44, 16)
    pkey_violations: int = u(46, 16)
    qkey_violations: int = u(48, 16)
    guid_cap: int = u(50, 8)
    client_reregister: int = u(51, 1)
    multicast_pkey_trap_suppression_enabled: int = u(51, 1, bit=1)
    subnet_timeout: int = u(51, 5, bit=3)
    resp_time_value: int = u(52, 5, bit=3)
    local_phy_errors: int = u(53, 4)
    overrun_errors: int = u(53, 4, bit=4)
    max_credit_hint: int = u(54, 16)
    link_round_trip_latency: int = u(57, 24)
    capability_mask2: int = u(60, 16)
    link_speed_ext_active: int = u(62, 4)
    link_speed_ext_supported: int = u(62, 4, bit=4)
    link_speed_ext_enabled: int = u(63, 5, bit=3)


class PortCap(IntFlag):
    """PortInfo.CapabilityMask bits (IBA 14.2.5.6; OpenSM ``IB_PORT_CAP_*``)."""

    IS_SM = 0x00000002
    IS_NOTICE_SUPPORTED = 0x00000004
    IS_TRAP_SUPPORTED = 0x00000008
    IS_OPTIONAL_IPD_SUPPORTED = 0x00000010
    IS_AUTOMATIC_MIGRATION_SUPPORTED = 0x00000020
    IS_SL_MAPPING_SUPPORTED = 0x00000040
    IS_MKEY_NVRAM = 0x00000080
    IS_PKEY_NVRAM = 0x00000100
    IS_LED_INFO_SUPPORTED = 0x00000200
    IS_SM_DISABLED = 0x00000400
    IS_SYSTEM_IMAGE_GUID_SUPPORTED = 0x00000800
    IS_PKEY_SWITCH_EXTERNAL_PORT_TRAP_SUPPORTED = 0x00001000
    IS_CABLE_INFO_SUPPORTED = 0x00002000
    IS_EXTENDED_SPEEDS_SUPPORTED = 0x00004000
    IS_CAPABILITY_MASK2_SUPPORTED = 0x00008000
    IS_COMMUNICATION_MANAGEMENT_SUPPORTED = 0x00010000
    IS_SNMP_TUNNELING_SUPPORTED = 0x00020000
    IS_REINIT_SUPPORTED = 0x00040000
    IS_DEVICE_MANAGEMENT_SUPPORTED = 0x00080000
    IS_VENDOR_CLASS_SUPPORTED = 0x00100000
    IS_DR_NOTICE_SUPPORTED = 0x00200000
    IS_CAPABILITY_MASK_NOTICE_SUPPORTED = 0x00400000
    IS_BOOT_MANAGEMENT_SUPPORTED = 0x00800000
    IS_LINK_ROUND_TRIP_LATENCY_SUPPORTED = 0x01000000
    IS_CLIENT_REREGISTRATION_SUPPORTED = 0x02000000
    IS_OTHER_LOCAL_CHANGES_NOTICE_SUPPORTED = 0x04000000
    IS_LINK_SPEED_WIDTH_PAIRS_TABLE_SUPPORTED = 0x08000000


@layout(size=64, name="SwitchInfo", section="IBA 14.2.5.4")
@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchInfo(Record):
    """Attribute 0x0012 (bytes 0-19 defined). Writing PortStateChange = 1 clears it."""

    linear_fdb_cap: int = u(0, 16)
    random_fdb_cap: int = u(2, 16)
    multicast_fdb_cap: int = u(4, 16)
    linear_fdb_top: int = u(6, 16)
    default_port: int = u(8, 8)
    default_multicast_primary_port: int = u(9, 8)
    default_multicast_not_primary_port: int = u(10, 8)
    life_time_value: int = u(11, 5)
    port_state_change: int = u(11, 1, bit=5)
    optimized_sl_to_vl_mapping_programming: int = u(11, 2, bit=6)
    lids_per_port: int = u(12, 16)
    partition_enforcement_cap: int = u(14, 16)
    inbound_enforcement_cap: int = u(16, 1)
    outbound_enforcement_cap: int = u(16, 1, bit=1)
    filter_raw_inbound_cap: int = u(16, 1, bit=2)
    filter_raw_outbound_cap: int = u(16, 1, bit=3)
    enhanced_port0: int = u(16, 1, bit=4)
    multicast_fdb_top: int = u(18, 16)


_STRUCT_CODE = {8: "B", 16: "H", 64: "Q"}


def _ints(block: bytes, width: int) -> tuple[int, ...]:
    n = width // 8
    code = _STRUCT_CODE.get(width)
    if code is not None and len(block) % n == 0:  # whole entries: one struct unpack
        return struct.unpack(f">{len(block) // n}{code}", block)
    return tuple(int.from_bytes(block[i:i + n], "big") for i in range(0, len(block), n))


def _block(fmt: str, values: Sequence[int], count: int, width: int, fill: int) -> bytes:
    if len(values) > count:
        raise EncodeError(fmt, "entries", f"{len(values)} entries, at most {count}")
    top = (1 << width) - 1
    if set(map(type, values)) <= {int} or all(isinstance(v, int) for v in values):
        try:  # struct refuses a value out of range, as the check below would
            return struct.pack(f">{count}{_STRUCT_CODE[width]}", *values,
                               *[fill] * (count - len(values)))
        except struct.error:
            pass
    bad = next(v for v in values if not isinstance(v, int) or not 0 <= v <= top)
    raise EncodeError(fmt, "entries", f"{bad!r} does not fit {width} bits")


@layout(size=64, name="GUIDInfo", section="IBA 14.2.5.5")
@dataclass(frozen=True, slots=True, kw_only=True)
class GuidInfo(Record):
    """Attribute 0x0014: one block of 8 GUIDs; GUID 0 of block 0 is the port GUID."""

    guid_block: bytes = raw(0, 64)
    ENTRIES: ClassVar[int] = 8

    @property
    def guids(self) -> tuple[int, ...]:
        """The 8 GUIDs."""
        return _ints(self.guid_block, 64)

    @classmethod
    def from_guids(cls, guids: Sequence[int]) -> Self:
        """A block from up to 8 GUIDs (the rest 0)."""
        return cls(guid_block=_block(cls.NAME, guids, cls.ENTRIES, 64, 0))


FULL_MEMBER = 0x8000
"""P_Key membership bit (bit 15): 1 = full member, 0 = limited member."""
DEFAULT_PKEY = 0xFFFF


def pkey_base(pkey: int) -> int:
    """The 15-bit base P_Key (membership bit removed)."""
    return pkey & 0x7FFF


@layout(size=64, name="P_KeyTable", section="IBA 14.2.5.7")
@dataclass(frozen=True, slots=True, kw_only=True)
class PKeyTable(Record):
    """Attribute 0x0016: one block of 32 P_Keys (see :func:`pkey_table_am`)."""

    pkey_block: bytes = raw(0, 64)
    ENTRIES: ClassVar[int] = 32

    @property
    def entries(self) -> tuple[int, ...]:
        """The 32 P_Key entries."""
        return _ints(self.pkey_block, 16)

    @classmethod
    def from_entries(cls, entries: Sequence[int]) -> Self:
        """A block from up to 32 P_Keys (the rest 0, an invalid P_Key)."""
        return cls(pkey_block=_block(cls.NAME, entries, cls.ENTRIES, 16, 0))

    def with_entry(self, index: int, pkey: int) -> Self:
        """A copy with entry ``index`` set to ``pkey``."""
        if not 0 <= index < self.ENTRIES:
            raise EncodeError(self.NAME, "entries", f"index {index} is not 0..31")
        entries = list(self.entries)
        entries[index] = pkey
        return self.from_entries(entries)


@layout(size=8, name="SLtoVLMappingTable", section="IBA 14.2.5.8")
@dataclass(frozen=True, slots=True, kw_only=True)
class SlToVlTable(Record):
    """Attribute 0x0017: 16 four-bit VLs, SL0 in the high nibble of byte 0."""

    sl_to_vl: bytes = raw(0, 8)

    @property
    def vls(self) -> tuple[int, ...]:
        """VL for SL 0..15."""
        return tuple(b >> s & 0xF for b in self.sl_to_vl for s in (4, 0))

    @classmethod
    def from_vls(cls, vls: Sequence[int]) -> Self:
        """A table from 16 VLs (SL 0 first)."""
        if len(vls) != 16 or any(not isinstance(v, int) or not 0 <= v <= 15 for v in vls):
            raise EncodeError(cls.NAME, "sl_to_vl", "need 16 VLs of 0..15")
        return cls(sl_to_vl=bytes(vls[i] << 4 | vls[i + 1] for i in range(0, 16, 2)))


@layout(size=64, name="VLArbitrationTable", section="IBA 14.2.5.9")
@dataclass(frozen=True, slots=True, kw_only=True)
class VlArbTable(Record):
    """Attribute 0x0018: one block of 32 (VL, Weight) entries, 2 bytes each: reserved(4) |
    VL(4), then Weight (as OpenSM's ``ib_vl_arb_element_t``)."""

    vl_arb_block: bytes = raw(0, 64)
    ENTRIES: ClassVar[int] = 32

    @property
    def entries(self) -> tuple[tuple[int, int], ...]:
        """32 ``(vl, weight)`` pairs."""
        b = self.vl_arb_block
        return tuple((b[i] & 0xF, b[i + 1]) for i in range(0, 64, 2))

    @classmethod
    def from_entries(cls, entries: Sequence[tuple[int, int]]) -> Self:
        """A block from up to 32 ``(vl, weight)`` pairs (the rest weight 0)."""
        if len(entries) > cls.ENTRIES or any(
            not 0 <= vl <= 15 or not 0 <= w <= 255 for vl, w in entries
        ):
            raise EncodeError(cls.NAME, "entries", "at most 32 pairs of VL 0..15, weight 0..255")
        block = b"".join(bytes((vl, w)) for vl, w in entries)
        return cls(vl_arb_block=block.ljust(64, b"\0"))


LFT_NO_ROUTE = 0xFF
LFT_BLOCK_SIZE = 64
MFT_BLOCK_SIZE = 32
MULTICAST_LID_BASE = 0xC000


@layout(size=64, name="LinearForwardingTable", section="IBA 14.2.5.10")
@dataclass(frozen=True, slots=True, kw_only=True)
class LftBlock(Record):
    """Attribute 0x0019: egress ports for LIDs 64·block .. 64·block+63 (0xFF = drop)."""

    port_block: bytes = raw(0, 64)

    @property
    def ports(self) -> tuple[int, ...]:
        """The 64 egress ports."""
        return tuple(self.port_block)

    @classmethod
    def from_ports(cls, ports: Sequence[int]) -> Self:
        """A block from up to 64 ports; the rest are :data:`LFT_NO_ROUTE`."""
        return cls(port_block=_block(cls.NAME, ports, LFT_BLOCK_SIZE, 8, LFT_NO_ROUTE))


@layout(size=64, name="MulticastForwardingTable", section="IBA 14.2.5.11")
@dataclass(frozen=True, slots=True, kw_only=True)
class MftBlock(Record):
    """Attribute 0x001B: 32 PortMasks for MLIDs 0xC000 + 32·block + i; bit n of the mask at
    position p is port 16·p + n (see :func:`mft_am`)."""

    port_mask_block: bytes = raw(0, 64)

    @property
    def masks(self) -> tuple[int, ...]:
        """The 32 16-bit port masks."""
        return _ints(self.port_mask_block, 16)

    @classmethod
    def from_masks(cls, masks: Sequence[int]) -> Self:
        """A block from up to 32 masks (the rest 0)."""
        return cls(port_mask_block=_block(cls.NAME, masks, MFT_BLOCK_SIZE, 16, 0))


class SmState(IntEnum):
    """SMInfo.SMState (IBA 14.2.5.13)."""

    NOT_ACTIVE = 0
    DISCOVERING = 1
    STANDBY = 2
    MASTER = 3


class SmInfoAttrMod(IntEnum):
    """AttributeModifier of SubnSet(SMInfo): the control packet sent to another SM."""

    HANDOVER = 1
    ACKNOWLEDGE = 2
    DISABLE = 3
    STANDBY = 4
    DISCOVER = 5


@layout(size=21, name="SMInfo", section="IBA 14.2.5.13")
@dataclass(frozen=True, slots=True, kw_only=True)
class SmInfo(Record):
    """Attribute 0x0020: the SM's identity, key, heartbeat, priority and state."""

    guid: int = u(0, 64)
    sm_key: int = u(8, 64)
    act_count: int = u(16, 32)
    priority: int = u(20, 4)
    sm_state: int = u(20, 4, bit=4)


# --- traps (Notice DataDetails) ----------------------------------------------------------


@layout(size=54, name="Trap128", section="IBA 14.2.5.1 (trap 128, link state change)")
@dataclass(frozen=True, slots=True, kw_only=True)
class Trap128(Record):
    """DataDetails of trap 128: a switch saw a port's link state change."""

    lidaddr: int = u(0, 16)


@layout(size=54, name="Trap144", section="IBA 14.2.5.1 (trap 144, local changes)")
@dataclass(frozen=True, slots=True, kw_only=True)
class Trap144(Record):
    """DataDetails of trap 144: CapabilityMask or another local attribute changed."""

    lidaddr: int = u(2, 16)
    other_local_changes: int = u(5, 1, bit=7)
    capability_mask: int = u(6, 32)
    capability_mask2_change: int = u(11, 1, bit=2)
    hierarchy_info_change: int = u(11, 1, bit=3)
    sm_priority_change: int = u(11, 1, bit=4)
    link_speed_enabled_change: int = u(11, 1, bit=5)
    link_width_enabled_change: int = u(11, 1, bit=6)
    node_description_change: int = u(11, 1, bit=7)
    capability_mask2: int = u(12, 16)


def trap_128(issuer_lid: int, lidaddr: int | None = None) -> Notice:
    """Trap 128 as a switch sends it (urgent, producer switch, LIDADDR = its own LID)."""
    return Notice(
        notice_type=NoticeType.URGENT, producer_type=NodeType.SWITCH, trap_number=128,
        issuer_lid=issuer_lid,
        data_details=Trap128(lidaddr=issuer_lid if lidaddr is None else lidaddr).encode(),
    )


def trap_144(
    issuer_lid: int, capability_mask: int, *, producer_type: int = NodeType.CA,
    other_local_changes: int = 0, **change_flags: int,
) -> Notice:
    """Trap 144 (informational): the port at ``issuer_lid`` has a new CapabilityMask or, with
    ``other_local_changes=1`` and a flag such as ``node_description_change=1``, another change."""
    details = Trap144(
        lidaddr=issuer_lid, capability_mask=capability_mask,
        other_local_changes=other_local_changes, **change_flags,
    )
    return Notice(
        notice_type=NoticeType.INFO, producer_type=producer_type, trap_number=144,
        issuer_lid=issuer_lid, data_details=details.encode(),
    )


ATTRIBUTE_RECORDS: dict[int, type[Record]] = {
    SmpAttr.NODE_DESCRIPTION: NodeDescription,
    SmpAttr.NODE_INFO: NodeInfo,
    SmpAttr.SWITCH_INFO: SwitchInfo,
    SmpAttr.GUID_INFO: GuidInfo,
    SmpAttr.PORT_INFO: PortInfo,
    SmpAttr.P_KEY_TABLE: PKeyTable,
    SmpAttr.SL_TO_VL_MAPPING_TABLE: SlToVlTable,
    SmpAttr.VL_ARBITRATION_TABLE: VlArbTable,
    SmpAttr.LINEAR_FORWARDING_TABLE: LftBlock,
    SmpAttr.MULTICAST_FORWARDING_TABLE: MftBlock,
    SmpAttr.SM_INFO: SmInfo,
}
"""The record class of each SMP attribute with a layout (Notice: :func:`decode_attribute`)."""


def decode_attribute(attr_id: int, data: Buffer) -> Record:
    """Decode an SMP data area as the attribute ``attr_id`` names."""
    if attr_id == SmpAttr.NOTICE:
        return Notice.from_smp_data(data)
    cls = ATTRIBUTE_RECORDS.get(attr_id)
    if cls is None:
        raise DecodeError("SMP", "attr_id", 16, f"no layout for attribute {attr_id:#06x}")
    return cls.decode(data)


def encode_attribute(record: Record) -> bytes:
    """A record as a full 64-byte SMP data area (zero-padded; Notice without IssuerGID)."""
    if isinstance(record, Notice):
        return record.smp_data()
    return record.encode().ljust(SMP_DATA_SIZE, b"\0")


# --- AttributeModifier encodings -----------------------------------------------------------


def _am_field(name: str, value: int, bits: int) -> int:
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EncodeError("AttributeModifier", name, f"{value!r} does not fit {bits} bits")
    return value


AM_SM_SUPPORTS_EXTENDED_SPEEDS = 1 << 31
"""PortInfo AttributeModifier bit 31, set by OpenSM on some Sets (``osm_link_mgr.c``)."""


def port_info_am(port: int, *, sm_supports_extended_speeds: bool = False) -> int:
    """PortInfo AttributeModifier: the port in bits 7-0."""
    am = _am_field("port", port, 8)
    return am | (AM_SM_SUPPORTS_EXTENDED_SPEEDS if sm_supports_extended_speeds else 0)


def port_info_port(attr_mod: int) -> int:
    """The port number of a PortInfo AttributeModifier (bit 31 and the rest masked off)."""
    return attr_mod & 0xFF


def pkey_table_am(block: int, port: int = 0) -> int:
    """P_KeyTable AttributeModifier: block in bits 15-0, switch port in bits 31-16."""
    return _am_field("port", port, 16) << 16 | _am_field("block", block, 16)


def parse_pkey_table_am(attr_mod: int) -> tuple[int, int]:
    """``(block, port)`` of a P_KeyTable AttributeModifier."""
    return attr_mod & 0xFFFF, attr_mod >> 16 & 0xFFFF


def mft_am(block: int, position: int = 0) -> int:
    """MulticastForwardingTable AttributeModifier: position in bits 31-28, block in 8-0."""
    return _am_field("position", position, 4) << 28 | _am_field("block", block, 9)


def parse_mft_am(attr_mod: int) -> tuple[int, int]:
    """``(block, position)`` of an MFT AttributeModifier."""
    return attr_mod & 0x1FF, attr_mod >> 28 & 0xF


def mft_location(mlid: int) -> tuple[int, int]:
    """``(block, index)`` of a multicast LID in the MFT."""
    if not MULTICAST_LID_BASE <= mlid <= 0xFFFE:
        raise EncodeError("MulticastForwardingTable", "mlid", f"{mlid:#x} is not multicast")
    return divmod(mlid - MULTICAST_LID_BASE, MFT_BLOCK_SIZE)


def vl_arb_am(block: int, port: int = 0) -> int:
    """VLArbitrationTable AttributeModifier: block (1-2 low, 3-4 high) in bits 31-16, port in
    bits 15-0."""
    return _am_field("block", block, 16) << 16 | _am_field("port", port, 16)


def parse_vl_arb_am(attr_mod: int) -> tuple[int, int]:
    """``(block, port)`` of a VLArbitrationTable AttributeModifier."""
    return attr_mod >> 16 & 0xFFFF, attr_mod & 0xFFFF


def sl_to_vl_am(in_port: int, out_port: int) -> int:
    """SLtoVLMappingTable AttributeModifier of a switch: input port bits 15-8, output 7-0."""
    return _am_field("in_port", in_port, 8) << 8 | _am_field("out_port", out_port, 8)


def parse_sl_to_vl_am(attr_mod: int) -> tuple[int, int]:
    """``(in_port, out_port)`` of an SLtoVLMappingTable AttributeModifier."""
    return attr_mod >> 8 & 0xFF, attr_mod & 0xFF


def lft_block_of(lid: int) -> tuple[int, int]:
    """``(block, index)`` of a unicast LID in the LFT."""
    if not 0 <= lid < MULTICAST_LID_BASE:
        raise EncodeError("LinearForwardingTable", "lid", f"{lid:#x} is not unicast")
    return divmod(lid, LFT_BLOCK_SIZE)
