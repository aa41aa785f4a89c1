"""Performance management (class 0x04): attribute IDs and the port counters (IBA 16.1).

A PerfMgt MAD carries its attribute at byte 64 (:func:`ipoib.wire.mad.build_gmp`,
:func:`ipoib.wire.mad.gmp_data`). PortSelect names the port (0xFF = all ports, when
ClassPortInfo advertises AllPortSelect); CounterSelect picks the counters a Set writes.

**Saturation.** IBA counters do not wrap: each stops at the largest value its field holds (a
16-bit PortRcvErrors stays at 65535) until a Set clears it. :func:`saturating_add` and
:meth:`Counters.add` implement that, so the fabric's PMA behaves like hardware and monitoring
tools see the familiar "pegged" values. PortXmitData and PortRcvData count octets divided by 4.

Layouts were checked against Linux ``include/rdma/ib_pma.h``, OpenSM ``ib_types.h``
(``ib_port_counters_t``, ``ib_port_counters_ext_t``) and libibmad's field table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import IntEnum, IntFlag
from typing import ClassVar, Self

from .errors import EncodeError
from .layout import Record, layout, u

PMA_CLASS_VERSION = 1
ALL_PORTS = 0xFF
"""PortSelect value meaning every port of the node (needs ``PmaCap.ALL_PORT_SELECT``)."""


class PerfMgtAttr(IntEnum):
    """PerfMgt AttributeIDs (IBA 16.1.2)."""

    CLASS_PORT_INFO = 0x0001
    PORT_SAMPLES_CONTROL = 0x0010
    PORT_SAMPLES_RESULT = 0x0011
    PORT_COUNTERS = 0x0012
    PORT_RCV_ERROR_DETAILS = 0x0015
    PORT_XMIT_DISCARD_DETAILS = 0x0016
    PORT_OP_RCV_COUNTERS = 0x0017
    PORT_FLOW_CTL_COUNTERS = 0x0018
    PORT_VL_OP_PACKETS = 0x0019
    PORT_VL_OP_DATA = 0x001A
    PORT_VL_XMIT_FLOW_CTL_UPDATE_ERRORS = 0x001B
    PORT_VL_XMIT_WAIT_COUNTERS = 0x001C
    PORT_COUNTERS_EXTENDED = 0x001D
    PORT_SAMPLES_RESULT_EXTENDED = 0x001E


class PmaCap(IntFlag):
    """PerfMgt ClassPortInfo.CapabilityMask bits (Linux ``IB_PMA_CLASS_CAP_*``)."""

    ALL_PORT_SELECT = 1 << 8
    EXT_WIDTH = 1 << 9
    """PortCountersExtended supported."""
    EXT_WIDTH_NOIETF = 1 << 10
    """PortCountersExtended supported, data and packet counters only."""
    XMIT_WAIT = 1 << 12
    """PortCounters.PortXmitWait supported."""


PMA_CAP2_ADDITIONAL_PORT_COUNTERS_EXTENDED = 1 << 1
"""ClassPortInfo.CapabilityMask2 bit: PortCountersExtended carries the error counters too."""


def saturating_add(value: int, delta: int, width: int) -> int:
    """``value + delta`` held within 0 .. 2**width - 1: IBA counters stick at their maximum."""
    return max(0, min(value + delta, (1 << width) - 1))


class Counters(Record):
    """Shared behaviour of the counter attributes: saturating updates and Set semantics."""

    __slots__ = ()
    counter_select: int
    SELECT: ClassVar[Mapping[str, int]]
    """Counter field name -> its CounterSelect bit (a field absent here cannot be selected)."""
    CONTROL: ClassVar[frozenset[str]] = frozenset(
        {"port_select", "counter_select", "counter_select2"})

    @classmethod
    def counter_names(cls) -> tuple[str, ...]:
        """The fields that count (PortSelect and CounterSelect excluded)."""
        return tuple(s.name for s in cls.SLOTS if s.name not in cls.CONTROL)

    @classmethod
    def counter_max(cls, name: str) -> int:
        """The value at which counter ``name`` saturates."""
        return cls.BY_NAME[name].mask

    def add(self, **deltas: int) -> Self:
        """A copy with each named counter advanced by its delta, saturating at its maximum."""
        changes = {}
        for name, delta in deltas.items():
            if name not in self.BY_NAME or name in self.CONTROL:
                raise EncodeError(self.NAME, name, "not a counter")
            changes[name] = saturating_add(getattr(self, name), delta, self.BY_NAME[name].width)
        return self.replace(**changes)

    def apply_set(self, request: Self) -> Self:
        """The counters after a Set: each counter selected by ``request.counter_select``
        takes the request's value (normally 0, a reset); the rest are kept."""
        changes = {
            name: getattr(request, name)
            for name, bit in self.SELECT.items()
            if request.counter_select & bit
        }
        return self.replace(**changes)


class CounterSelect(IntFlag):
    """PortCounters.CounterSelect bits (IBA 16.1.3.5; Linux ``IB_PMA_SEL_*``)."""

    SYMBOL_ERROR = 0x0001
    LINK_ERROR_RECOVERY = 0x0002
    LINK_DOWNED = 0x0004
    PORT_RCV_ERRORS = 0x0008
    PORT_RCV_REMOTE_PHYSICAL_ERRORS = 0x0010
    PORT_RCV_SWITCH_RELAY_ERRORS = 0x0020
    PORT_XMIT_DISCARDS = 0x0040
    PORT_XMIT_CONSTRAINT_ERRORS = 0x0080
    PORT_RCV_CONSTRAINT_ERRORS = 0x0100
    LOCAL_LINK_INTEGRITY_ERRORS = 0x0200
    EXCESSIVE_BUFFER_OVERRUN_ERRORS = 0x0400
    VL15_DROPPED = 0x0800
    PORT_XMIT_DATA = 0x1000
    PORT_RCV_DATA = 0x2000
    PORT_XMIT_PKTS = 0x4000
    PORT_RCV_PKTS = 0x8000


@layout(size=44, name="PortCounters", section="IBA 16.1.3.5")
@dataclass(frozen=True, slots=True, kw_only=True)
class PortCounters(Counters):
    """Attribute 0x0012: the 8- to 32-bit counters every port keeps. QP1Dropped (bytes 20-21)
    and CounterSelect2 (byte 18) are later additions that older agents leave at 0."""

    port_select: int = u(1, 8)
    counter_select: int = u(2, 16)
    symbol_error_counter: int = u(4, 16)
    link_error_recovery_counter: int = u(6, 8)
    link_downed_counter: int = u(7, 8)
    port_rcv_errors: int = u(8, 16)
    port_rcv_remote_physical_errors: int = u(10, 16)
    port_rcv_switch_relay_errors: int = u(12, 16)
    port_xmit_discards: int = u(14, 16)
    port_xmit_constraint_errors: int = u(16, 8)
    port_rcv_constraint_errors: int = u(17, 8)
    counter_select2: int = u(18, 8)
    local_link_integrity_errors: int = u(19, 4)
    excessive_buffer_overrun_errors: int = u(19, 4, bit=4)
    qp1_dropped: int = u(20, 16)
    vl15_dropped: int = u(22, 16)
    port_xmit_data: int = u(24, 32)
    port_rcv_data: int = u(28, 32)
    port_xmit_pkts: int = u(32, 32)
    port_rcv_pkts: int = u(36, 32)
    port_xmit_wait: int = u(40, 32)

    SELECT: ClassVar[Mapping[str, int]] = {
        "symbol_error_counter": CounterSelect.SYMBOL_ERROR,
        "link_error_recovery_counter": CounterSelect.LINK_ERROR_RECOVERY,
        "link_downed_counter": CounterSelect.LINK_DOWNED,
        "port_rcv_errors": CounterSelect.PORT_RCV_ERRORS,
        "port_rcv_remote_physical_errors": CounterSelect.PORT_RCV_REMOTE_PHYSICAL_ERRORS,
        "port_rcv_switch_relay_errors": CounterSelect.PORT_RCV_SWITCH_RELAY_ERRORS,
        "port_xmit_discards": CounterSelect.PORT_XMIT_DISCARDS,
        "port_xmit_constraint_errors": CounterSelect.PORT_XMIT_CONSTRAINT_ERRORS,
        "port_rcv_constraint_errors": CounterSelect.PORT_RCV_CONSTRAINT_ERRORS,
        "local_link_integrity_errors": CounterSelect.LOCAL_LINK_INTEGRITY_ERRORS,
        "excessive_buffer_overrun_errors": CounterSelect.EXCESSIVE_BUFFER_OVERRUN_ERRORS,
        "vl15_dropped": CounterSelect.VL15_DROPPED,
        "port_xmit_data": CounterSelect.PORT_XMIT_DATA,
        "port_rcv_data": CounterSelect.PORT_RCV_DATA,
        "port_xmit_pkts": CounterSelect.PORT_XMIT_PKTS,
        "port_rcv_pkts": CounterSelect.PORT_RCV_PKTS,
    }


class CounterSelectExt(IntFlag):
    """PortCountersExtended.CounterSelect bits (IBA 16.1.4.11; Linux ``IB_PMA_SELX_*``)."""

    PORT_XMIT_DATA = 0x0001
    PORT_RCV_DATA = 0x0002
    PORT_XMIT_PKTS = 0x0004
    PORT_RCV_PKTS = 0x0008
    PORT_UNICAST_XMIT_PKTS = 0x0010
    PORT_UNICAST_RCV_PKTS = 0x0020
    PORT_MULTICAST_XMIT_PKTS = 0x0040
    PORT_MULTICAST_RCV_PKTS = 0x0080


@layout(size=184, name="PortCountersExtended", section="IBA 16.1.4.11")
@dataclass(frozen=True, slots=True, kw_only=True)
class PortCountersExtended(Counters):
    """Attribute 0x001D: 64-bit traffic counters (bytes 8-71). The 64-bit error counters in
    bytes 72-183 are valid only when ClassPortInfo.CapabilityMask2 has
    :data:`PMA_CAP2_ADDITIONAL_PORT_COUNTERS_EXTENDED`; otherwise they are sent as 0.
    CounterSelect2 selects those error counters; its bit assignment is not modelled here."""

    port_select: int = u(1, 8)
    counter_select: int = u(2, 16)
    counter_select2: int = u(4, 32)
    port_xmit_data: int = u(8, 64)
    port_rcv_data: int = u(16, 64)
    port_xmit_pkts: int = u(24, 64)
    port_rcv_pkts: int = u(32, 64)
    port_unicast_xmit_pkts: int = u(40, 64)
    port_unicast_rcv_pkts: int = u(48, 64)
    port_multicast_xmit_pkts: int = u(56, 64)
    port_multicast_rcv_pkts: int = u(64, 64)
    symbol_error_counter: int = u(72, 64)
    link_error_recovery_counter: int = u(80, 64)
    link_downed_counter: int = u(88, 64)
    port_rcv_errors: int = u(96, 64)
    port_rcv_remote_physical_errors: int = u(104, 64)
    port_rcv_switch_relay_errors: int = u(112, 64)
    port_xmit_discards: int = u(120, 64)
    port_xmit_constraint_errors: int = u(128, 64)
    port_rcv_constraint_errors: int = u(136, 64)
    local_link_integrity_errors: int = u(144, 64)
    excessive_buffer_overrun_errors: int = u(152, 64)
    vl15_dropped: int = u(160, 64)
    port_xmit_wait: int = u(168, 64)
    qp1_dropped: int = u(176, 64)

    SELECT: ClassVar[Mapping[str, int]] = {
        "port_xmit_data": CounterSelectExt.PORT_XMIT_DATA,
        "port_rcv_data": CounterSelectExt.PORT_RCV_DATA,
        "port_xmit_pkts": CounterSelectExt.PORT_XMIT_PKTS,
        "port_rcv_pkts": CounterSelectExt.PORT_RCV_PKTS,
        "port_unicast_xmit_pkts": CounterSelectExt.PORT_UNICAST_XMIT_PKTS,
        "port_unicast_rcv_pkts": CounterSelectExt.PORT_UNICAST_RCV_PKTS,
        "port_multicast_xmit_pkts": CounterSelectExt.PORT_MULTICAST_XMIT_PKTS,
        "port_multicast_rcv_pkts": CounterSelectExt.PORT_MULTICAST_RCV_PKTS,
    }


def counters_from_extended(ext: PortCountersExtended, port_select: int = 0) -> PortCounters:
    """The PortCounters view of extended counters, each saturated to its narrower field
    (how an agent keeping 64-bit counters answers a PortCounters Get)."""
    values = {
        f.name: min(getattr(ext, f.name), PortCounters.counter_max(f.name))
        for f in fields(PortCounters)
        if f.name in PortCounters.BY_NAME and f.name not in Counters.CONTROL
    }
    return PortCounters(port_select=port_select, **values)
