"""The subnet as the SM knows it: nodes, ports and cables learned from SMP answers.

Discovery fills a :class:`SubnetGraph` from NodeInfo, NodeDescription, PortInfo and SwitchInfo
responses (IBA 14.2.5) and from the directed-route paths it used; LID assignment, routing,
multicast trees and partitions read it. The graph holds only what an SM could have learned
over QP0, so the SM never needs a fabric object (ARCHITECTURE.md, law 1).

Nodes are keyed by node GUID. Every node keeps its ports by number; a switch always has port 0
(its management port, the only one that carries a LID). A CA or router port appears once the
SM has reached it. LID-bearing ports ("endports") are indexed by port GUID.

:func:`opensm_order` reproduces the order in which OpenSM walks its GUID-keyed tables on x86-64
(keys stored in network byte order, compared as host integers), so that LIDs, routes and
multicast roots come out as OpenSM would choose them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from ..wire.enums import NodeType, PortState

if TYPE_CHECKING:  # test/benchmark convenience only; see SubnetGraph.from_topology
    from ..fabric.topology import Topology


def opensm_order(guid: int) -> int:
    """Sort key giving OpenSM's table order for a GUID (its bytes reversed, as on x86-64)."""
    return int.from_bytes(guid.to_bytes(8, "big"), "little")


@dataclass(slots=True)
class Port:
    """One physical port as PortInfo (IBA 14.2.5.6) and discovery describe it.

    ``neighbour`` is the (node GUID, port number) at the other end of the cable, if any;
    ``dr_path`` the egress ports of the directed route the SM used to reach this port.
    """

    num: int
    guid: int = 0
    lid: int = 0
    lmc: int = 0
    port_state: int = PortState.DOWN
    phys_state: int = 0
    link_width_active: int = 0
    link_speed_active: int = 0
    link_speed_ext_active: int = 0
    mtu_cap: int = 0
    neighbour: tuple[int, int] | None = None
    dr_path: tuple[int, ...] = ()


@dataclass(slots=True)
class Node:
    """One node as NodeInfo (IBA 14.2.5.3) and NodeDescription describe it."""

    guid: int
    kind: NodeType
    nports: int
    desc: str = ""
    sys_guid: int = 0
    port_guid: int = 0
    vendor_id: int = 0
    device_id: int = 0
    partition_cap: int = 0
    ports: dict[int, Port] = field(default_factory=dict)

    @property
    def is_switch(self) -> bool:
        """True for a switch."""
        return self.kind == NodeType.SWITCH

    def port(self, num: int) -> Port:
        """Port ``num`` (KeyError if the SM has not seen it)."""
        return self.ports[num]


PORT_FIELDS = frozenset(f.name for f in fields(Port)) - {"num", "neighbour"}


class SubnetGraph:
    """The discovered subnet: add/update calls from discovery, read-only views for the rest."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self._by_port_guid: dict[int, tuple[int, int]] = {}

    # -- building -------------------------------------------------------------------------

    def add_node(
        self,
        guid: int,
        kind: NodeType | int,
        nports: int,
        *,
        desc: str | None = None,
        sys_guid: int | None = None,
        port_guid: int | None = None,
        vendor_id: int | None = None,
        device_id: int | None = None,
        partition_cap: int | None = None,
    ) -> Node:
        """Add a node, or update the one already known under ``guid``.

        A switch gets port 0 at once, carrying ``port_guid`` (NodeInfo.PortGUID), so that its
        management port is an endport from the start.
        """
        node = self.nodes.get(guid)
        kind = NodeType(kind)
        if node is None:
            node = Node(guid=guid, kind=kind, nports=nports)
            self.nodes[guid] = node
        elif node.kind != kind:
            self.remove_node(guid)
            return self.add_node(
                guid, kind, nports, desc=desc, sys_guid=sys_guid, port_guid=port_guid,
                vendor_id=vendor_id, device_id=device_id, partition_cap=partition_cap,
            )
        node.nports = nports
        if desc is not None:
            node.desc = desc
        if sys_guid is not None:
            node.sys_guid = sys_guid
        if vendor_id is not None:
            node.vendor_id = vendor_id
        if device_id is not None:
            node.device_id = device_id
        if partition_cap is not None:
            node.partition_cap = partition_cap
        if port_guid is not None:
            node.port_guid = port_guid
        if kind == NodeType.SWITCH:
            self.set_port(guid, 0, guid=node.port_guid or guid)
        return node

    def set_port(self, node_guid: int, num: int, **fields: object) -> Port:
        """Create or update port ``num`` of a known node; ``fields`` are :class:`Port` fields.

        The neighbour is not set here: use :meth:`connect` so both ends stay consistent.
        """
        node = self.nodes[node_guid]
        if not 0 <= num <= node.nports:
            raise ValueError(f"node {node_guid:#x} has ports 0..{node.nports}, not {num}")
        bad = set(fields) - PORT_FIELDS
        if bad:
            raise TypeError(f"unknown port fields: {sorted(bad)}")
        port = node.ports.get(num)
        if port is None:
            port = Port(num=num)
            node.ports[num] = port
        old_guid = port.guid
        for name, value in fields.items():
            setattr(port, name, value)
        if self._lid_bearing(node, num):
            if old_guid and old_guid != port.guid:
                self._by_port_guid.pop(old_guid, None)
            if port.guid:
                self._by_port_guid[port.guid] = (node_guid, num)
        return port

    def connect(self, a_guid: int, a_port: int, b_guid: int, b_port: int) -> None:
        """Record the cable between two known ports, replacing any older link at either end."""
        for guid, num in ((a_guid, a_port), (b_guid, b_port)):
            if num not in self.nodes[guid].ports:
                self.set_port(guid, num)
        self.disconnect(a_guid, a_port)
        self.disconnect(b_guid, b_port)
        self.nodes[a_guid].ports[a_port].neighbour = (b_guid, b_port)
        self.nodes[b_guid].ports[b_port].neighbour = (a_guid, a_port)

    def disconnect(self, guid: int, num: int) -> None:
        """Forget the cable at one port (both ends); a no-op if there is none."""
        node = self.nodes.get(guid)
        port = node.ports.get(num) if node else None
        if port is None or port.neighbour is None:
            return
        peer_guid, peer_num = port.neighbour
        port.neighbour = None
        peer = self.nodes.get(peer_guid)
        if peer is not None:
            peer_port = peer.ports.get(peer_num)
            if peer_port is not None and peer_port.neighbour == (guid, num):
                peer_port.neighbour = None

    def remove_node(self, guid: int) -> None:
        """Forget a node and its cables (it disappeared in a sweep)."""
        node = self.nodes.get(guid)
        if node is None:
            return
        for num in list(node.ports):
            self.disconnect(guid, num)
            port = node.ports[num]
            if port.guid and self._by_port_guid.get(port.guid) == (guid, num):
                del self._by_port_guid[port.guid]
        del self.nodes[guid]

    @staticmethod
    def _lid_bearing(node: Node, num: int) -> bool:
        return num == 0 if node.kind == NodeType.SWITCH else num > 0

    # -- reading --------------------------------------------------------------------------

    def __contains__(self, guid: object) -> bool:
        return guid in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, guid: int) -> Node:
        """The node with ``guid`` (KeyError if unknown)."""
        return self.nodes[guid]

    def port(self, guid: int, num: int) -> Port:
        """Port ``num`` of node ``guid``."""
        return self.nodes[guid].ports[num]

    def find_port(self, port_guid: int) -> tuple[Node, Port] | None:
        """The endport (CA/router port or switch port 0) with ``port_guid``, if known."""
        where = self._by_port_guid.get(port_guid)
        if where is None:
            return None
        node = self.nodes[where[0]]
        return node, node.ports[where[1]]

    @property
    def switches(self) -> list[Node]:
        """All switches, in discovery order."""
        return [n for n in self.nodes.values() if n.kind == NodeType.SWITCH]

    @property
    def cas(self) -> list[Node]:
        """All channel adapters, in discovery order."""
        return [n for n in self.nodes.values() if n.kind == NodeType.CA]

    @property
    def endports(self) -> list[tuple[Node, Port]]:
        """LID-bearing ports with a GUID: CA and router ports, switch port 0."""
        out: list[tuple[Node, Port]] = []
        for node in self.nodes.values():
            for num in sorted(node.ports):
                port = node.ports[num]
                if port.guid and self._lid_bearing(node, num):
                    out.append((node, port))
        return out

    def neighbours(self, guid: int) -> Iterator[tuple[int, int, int]]:
        """(port, peer node GUID, peer port) for each cabled port of a node, by port number."""
        node = self.nodes[guid]
        for num in sorted(node.ports):
            peer = node.ports[num].neighbour
            if peer is not None and peer[0] in self.nodes:
                yield num, peer[0], peer[1]

    def links(self) -> Iterator[tuple[int, int, int, int]]:
        """Each cable once, as (node GUID, port, peer GUID, peer port)."""
        for guid, node in self.nodes.items():
            for num in sorted(node.ports):
                peer = node.ports[num].neighbour
                if peer is not None and (guid, num) < peer and peer[0] in self.nodes:
                    yield guid, num, peer[0], peer[1]

    def attached_switch(self, guid: int, num: int) -> tuple[int, int] | None:
        """(switch GUID, switch port) at the far end of a CA/router port, if it is a switch."""
        peer = self.nodes[guid].ports[num].neighbour
        if peer is None:
            return None
        far = self.nodes.get(peer[0])
        if far is None or far.kind != NodeType.SWITCH:
            return None
        return peer

    # -- test convenience -----------------------------------------------------------------

    @classmethod
    def from_topology(cls, topo: Topology, sm_node: str | None = None) -> SubnetGraph:
        """The graph a perfect discovery from ``sm_node`` would build. Tests and benchmarks only.

        The SM itself learns the subnet through SMPs; this shortcut reads a fabric description
        directly, which the SM must never do (ARCHITECTURE.md, law 1). LIDs pre-assigned by the
        topology file land in the ports; DR paths come from a breadth-first walk in port order
        from ``sm_node`` (default: the first node), through switches only.
        """
        graph = cls()
        by_name = {spec.name: spec for spec in topo.nodes}
        cabled: dict[str, set[int]] = {}
        for link in topo.links:
            cabled.setdefault(link.a, set()).add(link.a_port)
            cabled.setdefault(link.b, set()).add(link.b_port)
        for spec in topo.nodes:
            switch = spec.kind == NodeType.SWITCH
            graph.add_node(
                spec.node_guid, spec.kind, spec.nports, desc=spec.description,
                sys_guid=spec.sys_guid, port_guid=spec.port_guid(0 if switch else 1),
                vendor_id=spec.vendor_id, device_id=spec.device_id,
            )
            here = cabled.get(spec.name, set())
            for num in range(spec.nports + 1) if switch else sorted(here):
                up = num in here or (switch and num == 0)
                graph.set_port(
                    spec.node_guid, num, guid=spec.port_guid(num), lid=spec.lids.get(num, 0),
                    port_state=PortState.INIT if up else PortState.DOWN,
                )
        for link in topo.links:
            a, b = by_name[link.a], by_name[link.b]
            graph.connect(a.node_guid, link.a_port, b.node_guid, link.b_port)
            for end, num in ((a, link.a_port), (b, link.b_port)):
                graph.set_port(
                    end.node_guid, num,
                    link_width_active=_top_bit(link.width),
                    link_speed_active=_top_bit(link.speed),
                    link_speed_ext_active=_top_bit(link.ext_speed),
                )
        if topo.nodes:
            start = by_name[sm_node] if sm_node is not None else topo.nodes[0]
            graph.set_dr_paths(start.node_guid)
        return graph

    def set_dr_paths(self, sm_guid: int) -> None:
        """Fill every port's DR path by a breadth-first walk from the SM's node.

        Only switches forward directed-route SMPs, so the walk passes through switches; the SM's
        own node is the start whatever its type.
        """
        for port in self.nodes[sm_guid].ports.values():
            port.dr_path = ()
        seen = {sm_guid}
        queue: list[tuple[int, tuple[int, ...]]] = [(sm_guid, ())]
        for guid, path in queue:
            for num, peer_guid, peer_num in self.neighbours(guid):
                peer = self.nodes[peer_guid]
                hop = (*path, num)
                if peer.kind == NodeType.SWITCH:
                    if peer_guid in seen:
                        continue
                    seen.add(peer_guid)
                    for port in peer.ports.values():
                        port.dr_path = hop
                    queue.append((peer_guid, hop))
                elif peer_guid != sm_guid and not peer.ports[peer_num].dr_path:
                    peer.ports[peer_num].dr_path = hop


def _top_bit(mask: int) -> int:
    return 1 << (mask.bit_length() - 1) if mask else 0
