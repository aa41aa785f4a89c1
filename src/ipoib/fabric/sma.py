"""The subnet management agent every node carries, and the directed-route rules (IBA 14.2).

Two halves:

- **Directed routing** (:func:`dr_send`, :func:`dr_receive`, :func:`dr_respond`): the hop
  pointer rules C14-9 (outbound) and C14-13 (returning) as wire-formats.md §3.3 tabulates
  them, including the LID-routed segments at either end of the directed part (DrSLID and
  DrDLID not permissive). Each returns an action: deliver locally, send out of a port,
  LID-route to a LID, or discard.
- **Answering** (:func:`process_smp`): a table keyed by (AttributeID, method) over the
  attributes of ibsim-protocol.md §10, with ibsim's status codes. It takes a MAD and the
  port it came in on and returns the response MAD, so the ibsim adapter (which delivers MADs
  straight to a node, HopPointer 0) can use it as well as the fabric's own MAD layer.

M_Key is kept simple: a port whose M_Key is 0 (the default) checks nothing; otherwise a Set
(or a Get, with M_KeyProtectBits 2 or more) carrying a different M_Key is discarded and
counted in PortInfo.M_KeyViolations (IBA 14.2.4, without lease timers or trap 256).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter

from ..wire.layout import packer, reader
from ..wire.mad import (
    DR_INITIAL_PATH_OFFSET,
    DR_RETURN_PATH_OFFSET,
    MAD_SIZE,
    MAX_HOP_COUNT,
    SMP_DATA_OFFSET,
    SMP_DATA_SIZE,
    DrSmpHeader,
    MadHeader,
    MadStatus,
    Method,
    MgmtClass,
    dr_direction,
    dr_dlid,
    dr_hop_count,
    dr_hop_pointer,
    dr_slid,
    dr_step,
    make_response,
    smp_data,
    smp_mkey,
)
from ..wire.smp import (
    GuidInfo,
    LftBlock,
    MftBlock,
    NodeDescription,
    NodeInfo,
    PKeyTable,
    PortInfo,
    SlToVlTable,
    SmpAttr,
    SwitchInfo,
    VlArbTable,
    parse_mft_am,
    parse_pkey_table_am,
    parse_sl_to_vl_am,
    parse_vl_arb_am,
    port_info_port,
)
from .node import (
    DEFAULT_SL2VL,
    DISABLED,
    LFT_SIZE,
    LINEAR_FDB_CAP,
    MCAST_CAP,
    PARTITION_ENFORCEMENT_CAP,
    Ca,
    Node,
    Port,
    Switch,
    check_state,
    request_state,
    set_enabled,
)

PERMISSIVE = 0xFFFF
OK = int(MadStatus.OK)
METHOD_UNSUPPORTED = int(MadStatus.METHOD_UNSUPPORTED)
ATTR_UNSUPPORTED = int(MadStatus.METHOD_ATTR_UNSUPPORTED)
BAD_PARAM = int(MadStatus.INVALID_FIELD)


# --- directed routing ------------------------------------------------------------------------

DR_LOCAL, DR_PORT, DR_LID, DR_DISCARD = 0, 1, 2, 3
"""Actions: give to the local SMA/SM; send out of port ``arg``; LID-route to ``arg``; drop."""

DrAction = tuple[int, bytes, int]
_DISCARD: DrAction = (DR_DISCARD, b"", 0)


def _with_hp(mad: bytes, hp: int, ret_hop: int | None = None, ret_port: int = 0) -> bytes:
    """A copy with HopPointer = ``hp`` and, if ``ret_hop`` is given, ReturnPath[ret_hop]."""
    return dr_step(mad, hp, ret_hop, ret_port)


def dr_send(node: Node, mad: bytes) -> DrAction:
    """The sender's rules: what a node does with a DR SMP it sends or passes on.

    Outbound (D=0): C14-9:1 (HopPointer 0, start the directed part), C14-9:2 (switches
    only, next hop), C14-9:3 (end of the directed part: local when DrDLID is permissive,
    else LID-routed to DrDLID by a switch). Returning (D=1): C14-13:1 (the responder),
    C14-13:2 (switches only); HopCount 0 returns locally.
    """
    if len(mad) < MAD_SIZE:
        return _DISCARD
    hc, hp = dr_hop_count(mad), dr_hop_pointer(mad)
    if hc > MAX_HOP_COUNT:
        return _DISCARD
    if not dr_direction(mad):
        if hp == 0 and hc != 0:
            return DR_PORT, _with_hp(mad, 1), mad[DR_INITIAL_PATH_OFFSET + 1]
        if 0 < hp < hc:
            if not node.is_switch:
                return _DISCARD
            return DR_PORT, _with_hp(mad, hp + 1), mad[DR_INITIAL_PATH_OFFSET + hp + 1]
        if hp == hc:
            mad = _with_hp(mad, hp + 1)
            target = dr_dlid(mad)
            if target == PERMISSIVE:
                return DR_LOCAL, mad, 0
            if node.is_switch or hc == 0:
                return DR_LID, mad, target
        return _DISCARD
    if hc == 0:
        return DR_LOCAL, _with_hp(mad, 0), 0
    if hp == hc + 1:
        return DR_PORT, _with_hp(mad, hc), mad[DR_RETURN_PATH_OFFSET + hc]
    if 2 <= hp <= hc and node.is_switch:
        return DR_PORT, _with_hp(mad, hp - 1), mad[DR_RETURN_PATH_OFFSET + hp - 1]
    return _DISCARD


def dr_receive(node: Node, in_port: int, mad: bytes, *, lid_routed: bool) -> DrAction:
    """The receiver's rules for a DR SMP that arrived on ``in_port``.

    ``lid_routed`` is True when the LRH DLID was a LID of this node rather than the
    permissive LID: the SMP came through a LID-routed segment (DrSLID/DrDLID in use).
    """
    if len(mad) < MAD_SIZE:
        return _DISCARD
    hc, hp = dr_hop_count(mad), dr_hop_pointer(mad)
    if hc > MAX_HOP_COUNT:
        return _DISCARD
    if not dr_direction(mad):
        if lid_routed:
            if hp == 0 and hc != 0 and node.is_switch and dr_slid(mad) != PERMISSIVE:
                return dr_send(node, mad)  # this switch starts the directed part
            if hp == hc + 1:
                return DR_LOCAL, mad, 0  # C14-9:4: the LID-routed tail ends here
            return _DISCARD
        if hp == 0 or hp > hc:
            return _DISCARD  # C14-9:1 (sender should have incremented), C14-9:5
        if hp < hc and not node.is_switch:
            return _DISCARD  # C14-9:2 is for switches
        return dr_send(node, _with_hp(mad, hp, hp, in_port))  # C14-9:2 / C14-9:3
    if lid_routed:
        if hc != 0 and hp == hc + 1:
            # the LID-routed return from a DrDLID target reached the end switch
            return dr_send(node, mad) if node.is_switch else _DISCARD
        return DR_LOCAL, mad, 0  # C14-13:4
    if hp == 1:  # C14-13:3: end of the directed part
        source = dr_slid(mad)
        if source == PERMISSIVE:
            return DR_LOCAL, _with_hp(mad, 0), 0
        if node.is_switch:
            return DR_LID, _with_hp(mad, 0), source
        return _DISCARD
    if 2 <= hp <= hc:
        return dr_send(node, mad) if node.is_switch else _DISCARD  # C14-13:2
    if hp == 0:
        return DR_LOCAL, mad, 0  # C14-13:4
    return _DISCARD


def dr_respond(node: Node, response: bytes, request_slid: int) -> DrAction:
    """Route a DR response from the node that answered: back along the LID-routed tail to
    the switch that started it (``request_slid``) when DrDLID was used, else C14-13:1."""
    if len(response) >= MAD_SIZE and dr_dlid(response) != PERMISSIVE \
            and dr_hop_count(response) != 0:
        return DR_LID, response, request_slid
    return dr_send(node, response)


# --- attribute handlers ----------------------------------------------------------------------

Handler = Callable[[Node, Port, int, int, bytes], tuple[int, bytes]]
"""(node, ingress port, method, AttributeModifier, request data) -> (status, data)."""

GET, SET = int(Method.GET), int(Method.SET)


def _node_description(node: Node, inp: Port, method: int, am: int,
                      data: bytes) -> tuple[int, bytes]:
    out = NodeDescription(node_string=node.desc.encode()[:64].decode("utf-8", "ignore"))
    return (OK if method == GET else METHOD_UNSUPPORTED), out.encode()


_NI_PACK = packer(NodeInfo, "node_type", "num_ports", "system_image_guid", "node_guid",
                  "port_guid", "partition_cap", "device_id", "revision", "local_port_num",
                  "vendor_id")


def _node_info(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    out = _NI_PACK(int(node.kind), node.nports, node.sys_guid, node.guid,
                   node.guid if node.is_switch else inp.guid, node.partition_cap,
                   node.device_id, node.revision, inp.num, node.vendor_id)
    return (OK if method == GET else METHOD_UNSUPPORTED), out


def _switch_info(node: Node, inp: Port, method: int, am: int,
                 data: bytes) -> tuple[int, bytes]:
    if not isinstance(node, Switch):
        return ATTR_UNSUPPORTED, data
    if method == SET:
        si = SwitchInfo.decode(data)
        if si.port_state_change:
            node.port_state_change = False
        node.top = min(si.linear_fdb_top, LFT_SIZE - 1)
        node.lifetime = si.life_time_value
        node.mcast_top = si.multicast_fdb_top
    out = SwitchInfo(
        linear_fdb_cap=LINEAR_FDB_CAP, multicast_fdb_cap=MCAST_CAP, linear_fdb_top=node.top,
        life_time_value=node.lifetime, port_state_change=int(node.port_state_change),
        partition_enforcement_cap=PARTITION_ENFORCEMENT_CAP, filter_raw_inbound_cap=1,
        filter_raw_outbound_cap=1, enhanced_port0=int(node.enhanced_port0),
        multicast_fdb_top=node.mcast_top,
    )
    return OK, out.encode()


def _guid_info(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    guid = node.guid if node.is_switch else inp.guid
    out = GuidInfo.from_guids([guid] if am == 0 else [])
    return (OK if method == GET else METHOD_UNSUPPORTED), out.encode()


_PI_STORED = (
    "mkey_lease_period", "vl_high_limit", "vl_stall_count",
    "partition_enforcement_inbound", "partition_enforcement_outbound", "filter_raw_inbound",
    "filter_raw_outbound", "multicast_pkey_trap_suppression_enabled", "local_phy_errors",
    "overrun_errors", "init_type", "diag_code",
)
"""PortInfo fields an SM may write that have no behaviour here: stored and echoed."""


def port_info(p: Port, local_port_num: int) -> PortInfo:
    """The PortInfo of ``p`` as its SMA reports it (``local_port_num``: the ingress port)."""
    return PortInfo(
        **p.extra,
        mkey=p.mkey, gid_prefix=p.gid_prefix, lid=p.lid, master_sm_lid=p.master_sm_lid,
        capability_mask=p.cap_mask, local_port_num=local_port_num,
        link_width_enabled=p.width_enabled, link_width_supported=p.width_supported,
        link_width_active=p.width_active, link_speed_supported=p.speed_supported,
        port_state=p.state, port_physical_state=p.phys, mkey_protect_bits=p.mkey_protect,
        lmc=p.lmc, link_speed_active=p.speed_active, link_speed_enabled=p.speed_enabled,
        neighbor_mtu=p.neighbor_mtu, master_sm_sl=p.master_sm_sl, vl_cap=p.vl_cap,
        mtu_cap=p.mtu_cap, hoq_life=p.hoq_life, operational_vls=p.op_vls,
        mkey_violations=p.mkey_violations, pkey_violations=p.pkey_violations,
        qkey_violations=p.qkey_violations, subnet_timeout=p.subnet_timeout,
        resp_time_value=p.resp_time, capability_mask2=p.cap_mask2,
        link_speed_ext_active=p.speed_ext_active, link_speed_ext_supported=p.speed_ext_supported,
        link_speed_ext_enabled=p.speed_ext_enabled,
    )


_PI_LIVE = (
    "mkey", "gid_prefix", "lid", "master_sm_lid", "capability_mask", "local_port_num",
    "link_width_enabled", "link_width_supported", "link_width_active", "link_speed_supported",
    "port_state", "port_physical_state", "mkey_protect_bits", "lmc", "link_speed_active",
    "link_speed_enabled", "neighbor_mtu", "master_sm_sl", "vl_cap", "mtu_cap", "hoq_life",
    "operational_vls", "mkey_violations", "pkey_violations", "qkey_violations",
    "subnet_timeout", "resp_time_value", "capability_mask2", "link_speed_ext_active",
    "link_speed_ext_supported", "link_speed_ext_enabled",
)
"""The PortInfo fields :func:`port_info` takes from the port's attributes, in this order."""
_PI_EXTRA = tuple(s.name for s in PortInfo.SLOTS if s.name not in _PI_LIVE)
_PI_EXTRA_SET = frozenset(_PI_EXTRA)
_PI_EXTRA_DEFAULTS = {n: getattr(PortInfo(), n) for n in _PI_EXTRA}
_N_EXTRA = len(_PI_EXTRA)
_PI_PACK = packer(PortInfo, *_PI_LIVE, *_PI_EXTRA)
_PI_EXTRA_GET = itemgetter(*_PI_EXTRA)


def port_info_bytes(p: Port, local_port_num: int) -> bytes:
    """``port_info(p, local_port_num).encode()``, packed straight from the port (every SMA
    answer about a port carries it). The first answer completes ``p.extra`` with the record's
    defaults for the fields it lacks (the same bytes), so later ones take all in one lookup."""
    extra = p.extra
    if len(extra) != _N_EXTRA:
        if not extra.keys() <= _PI_EXTRA_SET:
            return port_info(p, local_port_num).encode()
        extra.update({**_PI_EXTRA_DEFAULTS, **extra})
    try:
        extras = _PI_EXTRA_GET(extra)
    except KeyError:  # as many fields as the record's, but not all of them: a foreign one
        return port_info(p, local_port_num).encode()
    return _PI_PACK(
        p.mkey, p.gid_prefix, p.lid, p.master_sm_lid, p.cap_mask, local_port_num,
        p.width_enabled, p.width_supported, p.width_active, p.speed_supported, p._state,
        p.phys, p.mkey_protect, p.lmc, p.speed_active, p.speed_enabled, p.neighbor_mtu,
        p.master_sm_sl, p.vl_cap, p.mtu_cap, p.hoq_life, p.op_vls, p.mkey_violations,
        p.pkey_violations, p.qkey_violations, p.subnet_timeout, p.resp_time, p.cap_mask2,
        p.speed_ext_active, p.speed_ext_supported, p.speed_ext_enabled,
        *extras,
    )


_PI_SET = reader(PortInfo, "operational_vls", "neighbor_mtu", "lid", "port_state", "lmc",
                 "master_sm_lid", "master_sm_sl", "gid_prefix", "mkey", "mkey_protect_bits",
                 "subnet_timeout", "hoq_life", "link_width_enabled", "link_speed_enabled",
                 "link_speed_ext_enabled", "link_down_default_state", "client_reregister",
                 "port_physical_state", *_PI_STORED)
"""The PortInfo fields a Set acts on, read straight from the SMP data."""


def _port_info_set(p: Port, data: bytes) -> int:
    """Apply a PortInfo Set to ``p``; validation first, so a rejected Set changes nothing."""
    (op_vls, nmtu, lid, state, lmc, sm_lid, sm_sl, prefix, mkey, protect, timeout, hoq,
     width, speed, speed_ext, down_default, reregister, phys, *stored) = _PI_SET(data, 0)
    if op_vls > p.vl_cap or nmtu > p.mtu_cap:
        return BAD_PARAM
    if lid >= 0xC000 or not check_state(p, state):
        return BAD_PARAM
    node = p.node
    events: list[str] = []
    if (lid, lmc) != (p.lid, p.lmc):
        old = p.lid
        p.lid, p.lmc = lid, lmc
        node.lid_changed(p, old)
    if sm_lid != p.master_sm_lid or sm_sl != p.master_sm_sl:
        events.append("SM_CHANGE")
    p.master_sm_lid, p.master_sm_sl = sm_lid, sm_sl
    if prefix != p.gid_prefix:
        events.append("GID_CHANGE")
    p.gid_prefix = prefix
    p.mkey, p.mkey_protect = mkey, protect
    p.subnet_timeout, p.hoq_life = timeout, hoq
    if op_vls:
        p.op_vls = op_vls
    if nmtu:
        p.neighbor_mtu = nmtu
    # Enabled width/speed take effect at the next link training, as on hardware and in ibsim:
    # a Set does not retrain a live link (so OpenSM's "enable all supported" keeps the
    # topology's speed, and its SA reports the rate ibsim would).
    if width:
        p.width_enabled = p.width_supported if width == 0xFF else width
    if speed:
        p.speed_enabled = p.speed_supported if speed == 0xF else speed
    if speed_ext:
        p.speed_ext_enabled = p.speed_ext_supported if speed_ext == 0x1F else speed_ext & 0x0F
    p.extra.update(zip(_PI_STORED, stored, strict=False))  # the reader's count, exactly
    if down_default:  # 0 means "no change"
        p.extra["link_down_default_state"] = down_default
    if reregister:
        events.append("CLIENT_REREGISTER")
    if phys == DISABLED:
        set_enabled(p, False)
    elif phys == 2 and not p.enabled:
        set_enabled(p, True)
    request_state(p, state)
    if isinstance(node, Ca):
        for ev in events:
            node.async_event(p, ev)
    return OK


def _port_info(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    num = port_info_port(am)
    if num > node.nports:
        return BAD_PARAM, data
    if num == 0 and not node.is_switch:
        num = inp.num  # IBA 14.2.5.6: on a CA, port 0 means "the port the SMP came in on"
    p = node.ports[num]
    if method == SET:
        if not node.is_switch and p is not inp:
            return BAD_PARAM, data
        status = _port_info_set(p, data)
        if status:
            return status, data
    return OK, port_info_bytes(p, inp.num)


def _pkey_port(node: Node, inp: Port, port_num: int) -> tuple[Port | None, int]:
    if not node.is_switch:
        return inp, len(inp.pkeys)
    if port_num > node.nports:
        return None, 0
    p = node.ports[port_num]
    return p, len(p.pkeys)


def _pkey_table(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    block, port_num = parse_pkey_table_am(am)
    p, size = _pkey_port(node, inp, port_num)
    if p is None or block * 32 >= size:
        return BAD_PARAM, data
    lo, hi = block * 32, min(size, block * 32 + 32)
    if method == SET:
        new = list(PKeyTable.decode(data).entries[: hi - lo])
        if new != p.pkeys[lo:hi]:
            p.pkeys[lo:hi] = new
            if isinstance(node, Ca):
                node.async_event(p, "PKEY_CHANGE")
    return OK, PKeyTable.from_entries(p.pkeys[lo:hi]).encode()


def _sl2vl(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    if node.is_switch:
        in_num, out_num = parse_sl_to_vl_am(am)
        if in_num > node.nports or out_num > node.nports:
            return BAD_PARAM, data
        p, key = node.ports[in_num], out_num
    else:
        p, key = inp, 0
    if method == SET:
        p.sl2vl[key] = SlToVlTable.decode(data).sl_to_vl
    return OK, SlToVlTable(sl_to_vl=p.sl2vl.get(key, DEFAULT_SL2VL)).encode()


def _vl_arb(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    block, port_num = parse_vl_arb_am(am)
    p = inp
    if node.is_switch:
        if port_num > node.nports:
            return BAD_PARAM, data
        p = node.ports[port_num]
    n = block - 1
    cap_name = "vl_arbitration_high_cap" if n // 2 else "vl_arbitration_low_cap"
    cap = p.extra.get(cap_name, 8)
    if not 0 <= n <= 3 or cap == 0 or n % 2 > cap // 32:
        return BAD_PARAM, data
    size = 2 * (cap % 32 if (cap > 32 and n % 2) else min(cap, 32))
    if method == SET:
        p.vlarb[n] = VlArbTable.decode(data).vl_arb_block[:size].ljust(64, b"\0")
    return OK, VlArbTable(vl_arb_block=p.vlarb[n]).encode()


def _lft(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    if not isinstance(node, Switch):
        return ATTR_UNSUPPORTED, data
    if am > 767:
        return BAD_PARAM, data
    lo = am * 64
    if method == SET:
        node.lft[lo:lo + 64] = LftBlock.decode(data).port_block
    return OK, LftBlock(port_block=bytes(node.lft[lo:lo + 64])).encode()


def _mft(node: Node, inp: Port, method: int, am: int, data: bytes) -> tuple[int, bytes]:
    if not isinstance(node, Switch):
        return ATTR_UNSUPPORTED, data
    block, pos = parse_mft_am(am)
    if block * 32 >= MCAST_CAP or pos > node.nports // 16:
        return OK, bytes(64)  # ibsim: out of range reads as a zero block
    shift, lo = 16 * pos, block * 32
    mft = node.mft
    if method == SET:
        for i, m in enumerate(MftBlock.decode(data).masks):
            mft[lo + i] = mft[lo + i] & ~(0xFFFF << shift) | m << shift
    masks = [mft[lo + i] >> shift & 0xFFFF for i in range(32)]
    return OK, MftBlock.from_masks(masks).encode()


HANDLERS: dict[tuple[int, int], Handler] = {}
"""(AttributeID, method) -> handler. A known attribute with another method gets 0x0008."""

for _attr, _fn in (
    (SmpAttr.NODE_DESCRIPTION, _node_description),
    (SmpAttr.NODE_INFO, _node_info),
    (SmpAttr.SWITCH_INFO, _switch_info),
    (SmpAttr.GUID_INFO, _guid_info),
    (SmpAttr.PORT_INFO, _port_info),
    (SmpAttr.P_KEY_TABLE, _pkey_table),
    (SmpAttr.SL_TO_VL_MAPPING_TABLE, _sl2vl),
    (SmpAttr.VL_ARBITRATION_TABLE, _vl_arb),
    (SmpAttr.LINEAR_FORWARDING_TABLE, _lft),
    (SmpAttr.MULTICAST_FORWARDING_TABLE, _mft),
):
    HANDLERS[(int(_attr), GET)] = _fn
    HANDLERS[(int(_attr), SET)] = _fn
KNOWN_ATTRS = frozenset(a for a, _ in HANDLERS)

DISCARD = b""
""":func:`process_smp` result: the SMP was discarded (counted), no response."""

_CLASS, _METHOD, _ATTR, _AM = (MadHeader.BY_NAME[f].byte
                               for f in ("mgmt_class", "method", "attr_id", "attr_mod"))
_SMP_CLASSES = frozenset((int(MgmtClass.SUBN_LID_ROUTED), int(MgmtClass.SUBN_DIRECTED_ROUTE)))
_SMP_END = SMP_DATA_OFFSET + SMP_DATA_SIZE


def _mkey_ok(node: Node, p: Port, mad: bytes | bytearray, method: int) -> bool:
    if p.mkey == 0:
        return True
    if method == GET and p.mkey_protect < 2:
        return True
    if smp_mkey(mad) == p.mkey:
        return True
    p.mkey_violations = min(p.mkey_violations + 1, 0xFFFF)
    node.drops["mkey_violation"] += 1
    return False


def process_smp(node: Node, in_port: int, mad: bytes | bytearray) -> bytes | None:
    """Answer an SMP (class 0x01 or 0x81) that reached ``node`` on port ``in_port``.

    Returns the response MAD (GetResp; D bit set for DR; HopPointer and paths untouched),
    :data:`DISCARD` when the M_Key check fails, or None when the SMA does not handle it:
    not a Get/Set request, or an attribute it does not know (SMInfo, traps): the caller
    then offers it to an SM agent, or answers "unsupported" as the Linux MAD layer does.
    """
    if len(mad) < _SMP_END or mad[_CLASS] not in _SMP_CLASSES:
        return None
    method = mad[_METHOD]
    attr = mad[_ATTR] << 8 | mad[_ATTR + 1]
    handler = HANDLERS.get((attr, method))
    if handler is None:
        if attr in KNOWN_ATTRS and method in (GET, SET):
            return make_response(mad, smp_data(mad), status=METHOD_UNSUPPORTED)
        return None
    if not 0 <= in_port <= node.nports:
        return None
    ingress = node.ports[in_port]
    guard = node.ports[0] if node.is_switch else ingress
    if not _mkey_ok(node, guard, mad, method):
        return DISCARD
    am = int.from_bytes(mad[_AM:_AM + 4], "big")
    status, data = handler(node, ingress, method, am, bytes(mad[SMP_DATA_OFFSET:_SMP_END]))
    return make_response(mad, data, status=status)


DR_RESERVED: tuple[tuple[int, int, bytes], ...] = tuple(
    (m.start(), m.end(), bytes(m.end() - m.start())) for m in re.finditer(
        rb"\0+", sum(s.mask << s.shift for s in DrSmpHeader.SLOTS).to_bytes(DrSmpHeader.SIZE,
                                                                          "big")))
"""(start, end, zeros) of the reserved byte runs of a DR SMP header, from its declared fields:
what a response written in place clears, as :func:`~ipoib.wire.mad.make_response` does."""
_GET_RESP = int(Method.GET_RESP)
_HEAD_RESERVED = tuple(r for r in DR_RESERVED if r[1] != SMP_DATA_OFFSET)
_DATA_RESERVED = next((a for a, e, _ in DR_RESERVED if e == SMP_DATA_OFFSET), SMP_DATA_OFFSET)
_DATA_ZEROS = bytes(SMP_DATA_OFFSET - _DATA_RESERVED)
"""The reserved run that ends where the SMP data starts is cleared in the data's own write."""


def answer_dr(node: Node, in_port: int, buf: bytearray, off: int) -> int:
    """:func:`process_smp` for the DR SMP at ``buf[off:off + 256]``, answered in place: the
    same response bytes without a copy of the request or of the answer (a sweep is made of
    these). Returns 1 when ``buf`` now holds the response, 0 when the SMP was discarded
    (M_Key, counted), -1 when :func:`process_smp` would not answer it or the answer needs
    its general path; ``buf`` is then untouched."""
    method = buf[off + _METHOD]
    handler = HANDLERS.get((buf[off + _ATTR] << 8 | buf[off + _ATTR + 1], method))
    if handler is None or not 0 <= in_port <= node.nports:
        return -1
    ingress = node.ports[in_port]
    guard = node.ports[0] if isinstance(node, Switch) else ingress
    if guard.mkey and not _mkey_ok(node, guard, bytes(buf[off:off + MAD_SIZE]), method):
        return 0
    am = int.from_bytes(buf[off + _AM:off + _AM + 4], "big")
    d = off + SMP_DATA_OFFSET
    status, data = handler(node, ingress, method, am, bytes(buf[d:d + SMP_DATA_SIZE]))
    buf[off + _METHOD] = _GET_RESP
    buf[off + _METHOD + 1] = status >> 8 & 0x7F | 0x80  # the D bit: on the way back
    buf[off + _METHOD + 2] = status & 0xFF
    for a, e, zeros in _HEAD_RESERVED:
        buf[off + a:off + e] = zeros
    buf[off + _DATA_RESERVED:d + SMP_DATA_SIZE] = _DATA_ZEROS + (
        data if len(data) == SMP_DATA_SIZE else bytes(data).ljust(SMP_DATA_SIZE, b"\0"))
    return 1
