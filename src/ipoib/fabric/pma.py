"""The performance management agent every node carries (class 0x04, IBA 16.1).

The data path only increments raw, never-saturating integers on each :class:`Port`
(``xmit_pkts``, ``xmit_words``, ...) and drop counters by reason; this module turns them into
PortCounters and PortCountersExtended on a Get. A Set clears the counters its CounterSelect
names by remembering the raw value at that moment (``Port.pc_base``), so clearing costs the
hot path nothing. PortCounters fields saturate at their width (IBA 16.1.3.5), the extended
ones are 64 bits.

Error counters are sums of drop reasons (:data:`ERROR_REASONS`): a drop counted at a port
shows up in the PMA counter IBA assigns to it, so "every drop has a reason" and "the PMA
sees the drop" are one mechanism.

PortSelect: a switch accepts 0..NumPorts and 0xFF (all ports summed, AllPortSelect); a CA
accepts its own port numbers. Anything else gets status 0x001C, like ibsim.
"""

from __future__ import annotations

from ..wire.mad import (
    ATTR_CLASS_PORT_INFO,
    ClassPortInfo,
    MadStatus,
    Method,
    MgmtClass,
    gmp_data,
    mad_attr_id,
    mad_class,
    mad_method,
    make_response,
)
from ..wire.pma import (
    ALL_PORTS,
    PMA_CLASS_VERSION,
    PerfMgtAttr,
    PmaCap,
    PortCounters,
    PortCountersExtended,
)
from .node import Node, Port

ERROR_REASONS: dict[str, tuple[str, ...]] = {
    "port_rcv_errors": ("malformed", "fault_drop"),
    "port_rcv_switch_relay_errors": ("no_route", "lid_beyond_top", "hop_limit",
                                     "mcast_no_route", "bad_dlid"),
    "port_xmit_discards": ("link_down", "port_not_active"),
    "port_rcv_constraint_errors": ("bad_pkey",),
    "vl15_dropped": ("dr_discard", "vl15_not_qp0", "mkey_violation"),
    "qp1_dropped": ("no_agent", "unmatched_response", "bad_mad"),
}
"""PMA error counter -> the drop reasons (node.DROP_REASONS) it counts."""

_TRAFFIC = {
    "port_xmit_data": "xmit_words",
    "port_rcv_data": "rcv_words",
    "port_xmit_pkts": "xmit_pkts",
    "port_rcv_pkts": "rcv_pkts",
    "port_multicast_xmit_pkts": "xmit_mcast",
    "port_multicast_rcv_pkts": "rcv_mcast",
}


def raw_counters(p: Port) -> dict[str, int]:
    """Every counter of ``p`` as an unbounded running total (before any clear)."""
    raw = {name: getattr(p, attr) for name, attr in _TRAFFIC.items()}
    raw["port_unicast_xmit_pkts"] = p.xmit_pkts - p.xmit_mcast
    raw["port_unicast_rcv_pkts"] = p.rcv_pkts - p.rcv_mcast
    raw["link_downed_counter"] = p.link_downed
    drops = p.drops
    for name, reasons in ERROR_REASONS.items():
        raw[name] = sum(drops[r] for r in reasons)
    return raw


def _view(p: Port, prefix: str) -> dict[str, int]:
    base = p.pc_base
    return {name: value - base.get(prefix + name, 0)
            for name, value in raw_counters(p).items()}


def port_counters(ports: list[Port], port_select: int) -> PortCounters:
    """PortCounters for ``ports`` (summed when several), each field saturated."""
    total: dict[str, int] = {}
    for p in ports:
        for name, v in _view(p, "").items():
            total[name] = total.get(name, 0) + v
    fields = {name: min(v, PortCounters.counter_max(name))
              for name, v in total.items() if name in PortCounters.BY_NAME}
    return PortCounters(port_select=port_select, **fields)


def port_counters_extended(ports: list[Port], port_select: int) -> PortCountersExtended:
    """PortCountersExtended for ``ports``: the traffic counters, 64 bits."""
    total: dict[str, int] = {}
    for p in ports:
        for name, v in _view(p, "x:").items():
            if name in PortCountersExtended.SELECT:
                total[name] = total.get(name, 0) + v
    fields = {name: min(v, PortCountersExtended.counter_max(name))
              for name, v in total.items()}
    return PortCountersExtended(port_select=port_select, **fields)


def clear(ports: list[Port], select: int, *, extended: bool) -> None:
    """Clear the counters ``select`` names (a CounterSelect) on ``ports``."""
    rec = PortCountersExtended if extended else PortCounters
    prefix = "x:" if extended else ""
    for p in ports:
        raw = raw_counters(p)
        for name, bit in rec.SELECT.items():
            if select & bit and name in raw:
                p.pc_base[prefix + name] = raw[name]


def _ports(node: Node, port_select: int) -> list[Port] | None:
    if node.is_switch:
        if port_select == ALL_PORTS:
            return list(node.ports)
        if port_select <= node.nports:
            return [node.ports[port_select]]
        return None
    if 1 <= port_select <= node.nports:
        return [node.ports[port_select]]
    return None


def class_port_info(node: Node) -> ClassPortInfo:
    """PerfMgt ClassPortInfo: extended counters everywhere, AllPortSelect on switches."""
    cap = PmaCap.EXT_WIDTH | (PmaCap.ALL_PORT_SELECT if node.is_switch else 0)
    return ClassPortInfo(class_version=PMA_CLASS_VERSION, capability_mask=int(cap),
                         resp_time_value=18)


def process_pma(node: Node, in_port: int, mad: bytes) -> bytes | None:
    """Answer a PerfMgt request that reached ``node``; None if it is not a Get/Set request.

    Unknown attributes get status 0x000C: the PMA answers every PerfMgt request itself
    and never hands one to an agent (ibsim-protocol.md §11: forwarding them crashes OpenSM).
    """
    if len(mad) < 64 or mad_class(mad) != MgmtClass.PERF_MGMT:
        return None
    method = mad_method(mad)
    if method not in (Method.GET, Method.SET):
        return None
    attr = mad_attr_id(mad)
    data = gmp_data(mad).ljust(192, b"\0")
    if attr == ATTR_CLASS_PORT_INFO:
        status = MadStatus.OK if method == Method.GET else MadStatus.METHOD_UNSUPPORTED
        return make_response(mad, class_port_info(node).encode(), status=status)
    if attr == PerfMgtAttr.PORT_COUNTERS:
        req = PortCounters.decode(data)
        ports = _ports(node, req.port_select)
        if ports is None:
            return make_response(mad, data, status=MadStatus.INVALID_FIELD)
        if method == Method.SET:
            clear(ports, req.counter_select, extended=False)
        return make_response(mad, port_counters(ports, req.port_select).encode())
    if attr == PerfMgtAttr.PORT_COUNTERS_EXTENDED:
        rx = PortCountersExtended.decode(data)
        ports = _ports(node, rx.port_select)
        if ports is None:
            return make_response(mad, data, status=MadStatus.INVALID_FIELD)
        if method == Method.SET:
            clear(ports, rx.counter_select, extended=True)
        return make_response(mad, port_counters_extended(ports, rx.port_select).encode())
    return make_response(mad, data, status=MadStatus.METHOD_ATTR_UNSUPPORTED)
