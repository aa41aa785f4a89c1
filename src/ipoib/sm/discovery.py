"""Directed-route discovery (IBA 14.4.1 "subnet discovery"), and the light sweep.

The SM starts from its own port (hop count 0) and walks outward: NodeInfo tells what is at
the end of a route and on which port the SMP came in; a new switch is then asked for its
NodeDescription, SwitchInfo, the PortInfo of every port and the P_Key table of port 0, and
every port found LinkUp leads to another NodeInfo one hop further. A CA port is asked for
its PortInfo and P_Key table. Endports advertising IsSM are asked for their SMInfo, so the
manager can stand by for a master of higher priority. This is OpenSM's order of queries
(``osm_node_info_rcv.c``, ``osm_port_info_rcv.c``), many SMPs at a time.

What is learned goes into a :class:`Subnet`: the :class:`~ipoib.sm.graph.SubnetGraph` (nodes,
ports, cables, directed routes) and the raw attribute bytes the SA serves records from and the
programming step patches. Nothing here ever reads a fabric object (ARCHITECTURE.md, law 1).

:class:`LightSweep` is the periodic check between heavy sweeps: SwitchInfo of every switch
(PortStateChange) and PortInfo of every CA port (still ACTIVE, same LID); any difference, or
an unanswered SMP, asks for a heavy sweep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..wire.enums import NodeType, PhysState, PortState
from ..wire.mad import MAX_HOP_COUNT, Method
from ..wire.smp import NodeInfo, PKeyTable, PortCap, PortInfo, SmpAttr, SwitchInfo
from .graph import SubnetGraph
from .transactions import Callback, Fields, Path, SmpTransactions

GET = int(Method.GET)
LINK_UP = int(PhysState.LINK_UP)
ACTIVE = int(PortState.ACTIVE)

NI_FIELDS = Fields(
    NodeInfo, "node_type", "num_ports", "system_image_guid", "node_guid", "port_guid",
    "partition_cap", "device_id", "vendor_id", "local_port_num",
)
PI_FIELDS = Fields(
    PortInfo, "lid", "lmc", "port_state", "port_physical_state", "link_width_active",
    "link_speed_active", "link_speed_ext_active", "mtu_cap", "capability_mask",
)
PI_STATE = Fields(PortInfo, "lid", "port_state", "capability_mask")
SI_PSC = Fields(SwitchInfo, "port_state_change")

ERROR_REASONS = ("node_info", "node_description", "port_info", "switch_info", "p_key_table",
                 "sm_info", "too_many_hops")
"""Keys of :attr:`Subnet.errors`: the query that failed (timeout or error status)."""


@dataclass(slots=True)
class Subnet:
    """Everything one heavy sweep learned, for routing, programming and the SA.

    Raw attribute bytes are kept as the SMAs returned them: ``port_info[(node, port)]``
    (updated by the SM's own Sets), ``node_info[port GUID]`` (as read through that port),
    ``pkeys[(node, port)]`` (block 0 of the P_Key table), ``switch_info[node]``,
    ``sm_info[port GUID]`` for other SMs found, with ``sm_paths`` to reach them.
    """

    graph: SubnetGraph = field(default_factory=SubnetGraph)
    sm_guid: int = 0
    sm_port_num: int = 0
    sm_port_guid: int = 0
    node_paths: dict[int, Path] = field(default_factory=dict)
    port_info: dict[tuple[int, int], bytes] = field(default_factory=dict)
    node_info: dict[int, bytes] = field(default_factory=dict)
    pkeys: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    switch_info: dict[int, bytes] = field(default_factory=dict)
    sm_info: dict[int, bytes] = field(default_factory=dict)
    sm_paths: dict[int, Path] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def path_to(self, guid: int, port: int) -> Path:
        """The directed route to reach port ``port`` of node ``guid`` (its SMA)."""
        node = self.graph.nodes[guid]
        if node.kind == NodeType.SWITCH:
            return self.node_paths[guid]
        return node.ports[port].dr_path

    def endport(self, port_guid: int) -> tuple[int, int] | None:
        """(node GUID, port number) of an endport, if known."""
        found = self.graph.find_port(port_guid)
        return (found[0].guid, found[1].num) if found else None


class Discovery:
    """One heavy-sweep discovery; ``on_done`` runs when the last answer is in."""

    def __init__(self, tx: SmpTransactions, on_done: Callable[[], None]) -> None:
        self.tx = tx
        self.on_done = on_done
        self.subnet = Subnet()
        self.pending = 0
        self.finished = False
        # Answer handlers bound once, shared by every request of their kind: a bound method
        # per queued SMP would be a garbage-collected object per SMP on large subnets.
        self._on_node_info: Callback = self._node_info
        self._on_node_desc: Callback = self._node_desc
        self._on_switch_info: Callback = self._switch_info
        self._on_port_info: Callback = self._port_info
        self._on_pkeys: Callback = self._pkeys
        self._on_sm_info: Callback = self._sm_info

    # -- plumbing -----------------------------------------------------------------------

    def _ask(self, attr: int, attr_mod: int, path: Path,
             callback: Callback, ctx: object) -> None:
        self.pending += 1
        self.tx.request(GET, attr, attr_mod, path, None, callback, ctx)

    def _answered(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.finished:
            self.finished = True
            self.on_done()

    def start(self) -> None:
        """Ask the SM's own node who it is."""
        self._ask(SmpAttr.NODE_INFO, 0, (), self._on_node_info, (None, ()))

    @property
    def nodes_found(self) -> int:
        """Nodes discovered so far (for progress displays)."""
        return len(self.subnet.graph)

    # -- NodeInfo -----------------------------------------------------------------------

    def _node_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        parent, path = ctx
        sub = self.subnet
        if status or data is None:
            sub.errors["node_info"] += 1
            self._answered()
            return
        (kind, nports, sys_guid, guid, port_guid, pcap, dev_id, vendor_id,
         local_port) = NI_FIELDS.read(data)
        graph = sub.graph
        known = guid in graph.nodes
        if not path:
            sub.sm_guid, sub.sm_port_num, sub.sm_port_guid = guid, local_port, port_guid
        if not known:
            graph.add_node(guid, kind, nports, sys_guid=sys_guid, port_guid=port_guid,
                           vendor_id=vendor_id, device_id=dev_id, partition_cap=pcap)
            self._ask(SmpAttr.NODE_DESCRIPTION, 0, path, self._on_node_desc, guid)
            if kind == NodeType.SWITCH:
                sub.node_paths[guid] = path
                sub.node_info[port_guid] = data
                self._ask(SmpAttr.SWITCH_INFO, 0, path, self._on_switch_info, guid)
                for num in range(nports + 1):
                    self._ask(SmpAttr.PORT_INFO, num, path, self._on_port_info, (guid, num, path))
                self._ask(SmpAttr.P_KEY_TABLE, 0, path, self._on_pkeys, (guid, 0))
        ports = graph.nodes[guid].ports
        if kind != NodeType.SWITCH and 1 <= local_port <= nports and (
                local_port not in ports or not ports[local_port].guid):
            graph.set_port(guid, local_port, guid=port_guid, dr_path=path)
            sub.node_info[port_guid] = data
            self._ask(SmpAttr.PORT_INFO, local_port, path, self._on_port_info,
                      (guid, local_port, path))
            self._ask(SmpAttr.P_KEY_TABLE, 0, path, self._on_pkeys, (guid, local_port))
        if parent is not None and 0 < local_port <= nports:
            graph.connect(parent[0], parent[1], guid, local_port)
        self._answered()

    def _node_desc(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self.subnet.errors["node_description"] += 1
        else:
            node = self.subnet.graph.nodes.get(ctx)
            if node is not None:
                node.desc = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        self._answered()

    def _switch_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self.subnet.errors["switch_info"] += 1
        else:
            self.subnet.switch_info[ctx] = data
        self._answered()

    def _pkeys(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self.subnet.errors["p_key_table"] += 1
        else:
            self.subnet.pkeys[ctx] = PKeyTable.decode(data).entries
        self._answered()

    def _sm_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self.subnet.errors["sm_info"] += 1
        else:
            port_guid, path = ctx
            self.subnet.sm_info[port_guid] = data
            self.subnet.sm_paths[port_guid] = path
        self._answered()

    # -- PortInfo -----------------------------------------------------------------------

    def _port_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        guid, num, path = ctx
        sub = self.subnet
        if status or data is None:
            sub.errors["port_info"] += 1
            self._answered()
            return
        (lid, lmc, state, phys, width, speed, ext, mtu_cap, cap) = PI_FIELDS.read(data)
        graph = sub.graph
        node = graph.nodes[guid]
        port = graph.set_port(
            guid, num, lid=lid, lmc=lmc, port_state=state, phys_state=phys,
            link_width_active=width, link_speed_active=speed, link_speed_ext_active=ext,
            mtu_cap=mtu_cap, dr_path=path,
        )
        if node.kind == NodeType.SWITCH and num == 0 and not port.guid:
            port.guid = node.port_guid or guid
        sub.port_info[(guid, num)] = data
        switch = node.kind == NodeType.SWITCH
        if phys == LINK_UP and port.neighbour is None and (
            (switch and num > 0) or (not path and not switch and num == sub.sm_port_num)
        ):
            hop = (*path, num)
            if len(hop) > MAX_HOP_COUNT:
                sub.errors["too_many_hops"] += 1
            else:
                self._ask(SmpAttr.NODE_INFO, 0, hop, self._on_node_info, ((guid, num), hop))
        endport = num == 0 if switch else num > 0
        if endport and cap & PortCap.IS_SM and port.guid != sub.sm_port_guid:
            self._ask(SmpAttr.SM_INFO, 0, path, self._on_sm_info, (port.guid, path))
        self._answered()


class LightSweep:
    """Re-read SwitchInfo of every switch and PortInfo of every endport.

    ``on_done(changed)`` is called when every answer is in; ``changed`` is True if a switch
    reports PortStateChange, a CA port is no longer ACTIVE or has another LID than
    ``lids`` says, an endport started or stopped advertising IsSM (an SM came or went), or
    an SMP went unanswered (a node disappeared).
    """

    def __init__(self, tx: SmpTransactions, subnet: Subnet, lids: dict[int, int],
                 on_done: Callable[[bool], None]) -> None:
        self.tx = tx
        self.subnet = subnet
        self.lids = lids
        self.on_done = on_done
        self.pending = 0
        self.changed = False
        self.reasons: Counter[str] = Counter()
        self._on_switch_info: Callback = self._switch_info  # bound once (see Discovery)
        self._on_port_info: Callback = self._port_info

    def start(self) -> None:
        """Send the reads; with nothing to read, finish at once."""
        sub = self.subnet
        for node in sub.graph.nodes.values():
            if node.kind == NodeType.SWITCH:
                path = sub.node_paths[node.guid]
                self._ask(SmpAttr.SWITCH_INFO, 0, path, self._on_switch_info, node.guid)
                self._ask(SmpAttr.PORT_INFO, 0, path, self._on_port_info, (node.guid, 0))
            else:
                for num, port in node.ports.items():
                    if num and port.guid and (port.neighbour is not None
                                              or port.guid == sub.sm_port_guid):
                        self._ask(SmpAttr.PORT_INFO, num, port.dr_path, self._on_port_info,
                                  (node.guid, num))
        if self.pending == 0:
            self.on_done(False)

    def _ask(self, attr: int, attr_mod: int, path: Path,
             callback: Callback, ctx: object) -> None:
        self.pending += 1
        self.tx.request(GET, attr, attr_mod, path, None, callback, ctx)

    def _answered(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.on_done(self.changed)

    def _flag(self, reason: str) -> None:
        self.changed = True
        self.reasons[reason] += 1

    def _switch_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self._flag("switch_unreachable")
        elif SI_PSC.read(data)[0]:
            self._flag("port_state_change")
        self._answered()

    def _port_info(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self._flag("port_unreachable")
        else:
            lid, state, cap = PI_STATE.read(data)
            guid, num = ctx
            port = self.subnet.graph.nodes[guid].ports[num]
            before = self.subnet.port_info.get(ctx)
            if state != ACTIVE:
                self._flag("port_not_active")
            elif lid != self.lids.get(port.guid, lid):
                self._flag("lid_changed")
            elif before is not None and (PI_STATE.read(before)[2] ^ cap) & PortCap.IS_SM:
                self._flag("sm_changed")
        self._answered()
