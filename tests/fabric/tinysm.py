"""A tiny subnet manager for fabric tests: it sees the fabric only through SMPs on QP0.

It does what an SM must do and nothing more: a breadth-first directed-route walk with
NodeInfo/PortInfo Gets, LIDs handed out in discovery order, shortest-path LFTs (first
shortest path found), optional MFT entries over a spanning tree, and ports moved
INIT -> ARMED -> ACTIVE. Everything runs on the fabric's virtual clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ipoib.fabric import Fabric, MadAgent
from ipoib.wire.enums import NodeType
from ipoib.wire.mad import Method, MgmtClass, build_dr_smp, mad_status, mad_tid, smp_data
from ipoib.wire.smp import (
    LftBlock,
    MftBlock,
    NodeInfo,
    PortInfo,
    SmpAttr,
    SwitchInfo,
    mft_am,
    port_info_am,
)


def run_until_idle(fabric: Fabric, limit: int = 100_000) -> int:
    """Process every deferred callback and timer; return how many rounds it took."""
    rounds = 0
    while (t := fabric.get_timer()) is not None:
        fabric.process(t)
        rounds += 1
        assert rounds < limit, "fabric never went idle"
    return rounds


class SmpError(AssertionError):
    """An SMP got no answer or a non-zero status."""


@dataclass
class Found:
    """A node as the walk found it."""

    info: NodeInfo
    path: tuple[int, ...]
    desc: str = ""
    ports: dict[int, PortInfo] = field(default_factory=dict)

    @property
    def guid(self) -> int:
        return self.info.node_guid

    @property
    def is_switch(self) -> bool:
        return self.info.node_type == NodeType.SWITCH


class TinySm:
    """Drives one node's QP0 (``node``/``port``; a switch's management port is 0)."""

    def __init__(self, fabric: Fabric, node: str, port: int = 1) -> None:
        self.fabric = fabric
        self.node_name = node
        self.port = port
        self.agent: MadAgent = fabric.open_mad_agent(node, port, MgmtClass.SUBN_DIRECTED_ROUTE)
        self.nodes: dict[int, Found] = {}
        self.links: dict[tuple[int, int], tuple[int, int]] = {}
        self.lids: dict[tuple[int, int], int] = {}
        self.smps = 0

    # --- one SMP at a time -------------------------------------------------------------------

    def rpc(self, mad: bytes) -> bytes | None:
        """Send and wait (virtually) for the response with the same TID."""
        self.smps += 1
        tid = self.agent.send(mad)
        run_until_idle(self.fabric)
        answer = None
        while (rx := self.agent.recv()) is not None:
            if mad_tid(rx.mad) == tid:
                answer = rx.mad
        return answer

    def smp(self, method: int, path: tuple[int, ...], attr: int, am: int = 0,
            data: bytes = b"") -> bytes:
        """A DR SMP along ``path``; the response data, or SmpError."""
        mad = build_dr_smp(method, attr, am, self.smps + 1, data, initial_path=(0, *path))
        resp = self.rpc(mad)
        if resp is None:
            raise SmpError(f"no answer to {attr:#x} along {path}")
        if mad_status(resp):
            raise SmpError(f"status {mad_status(resp):#x} for {attr:#x} along {path}")
        return smp_data(resp)

    def get(self, path: tuple[int, ...], attr: int, am: int = 0) -> bytes:
        return self.smp(Method.GET, path, attr, am)

    def set(self, path: tuple[int, ...], attr: int, am: int, data: bytes) -> bytes:
        return self.smp(Method.SET, path, attr, am, data)

    # --- the sweep -----------------------------------------------------------------------------

    def discover(self) -> None:
        """Breadth-first DR walk: every node, every link."""
        root = NodeInfo.decode(self.get((), SmpAttr.NODE_INFO))
        self.nodes[root.node_guid] = Found(root, ())
        todo: deque[Found] = deque([self.nodes[root.node_guid]])
        while todo:
            f = todo.popleft()
            f.desc = self.get(f.path, SmpAttr.NODE_DESCRIPTION).rstrip(b"\0").decode()
            ports = range(1, f.info.num_ports + 1) if f.is_switch else (f.info.local_port_num,)
            for p in ports:
                pi = PortInfo.decode(self.get(f.path, SmpAttr.PORT_INFO, port_info_am(p)))
                f.ports[p] = pi
                if pi.port_physical_state != 5:
                    continue
                hop = (*f.path, p)
                if not f.is_switch and f.path:
                    continue  # a CA does not forward
                try:
                    ni = NodeInfo.decode(self.get(hop, SmpAttr.NODE_INFO))
                except SmpError:
                    continue
                self.links[(f.guid, p)] = (ni.node_guid, ni.local_port_num)
                self.links[(ni.node_guid, ni.local_port_num)] = (f.guid, p)
                if ni.node_guid not in self.nodes:
                    nf = Found(ni, hop)
                    self.nodes[ni.node_guid] = nf
                    if nf.is_switch:
                        todo.append(nf)
                    else:
                        nf.desc = self.get(hop, SmpAttr.NODE_DESCRIPTION).rstrip(b"\0").decode()
                        nf.ports[ni.local_port_num] = PortInfo.decode(
                            self.get(hop, SmpAttr.PORT_INFO, port_info_am(ni.local_port_num)))

    def _path_to_port(self, guid: int, port: int) -> tuple[int, ...]:
        """A DR path reaching node ``guid`` through its port ``port`` (CAs) or any (switches)."""
        f = self.nodes[guid]
        if f.is_switch or not f.path:
            return f.path
        peer = self.links.get((guid, port))
        if peer is None:
            return f.path
        return (*self.nodes[peer[0]].path, peer[1])

    def assign_lids(self, first: int = 1) -> None:
        """LIDs in discovery order: switches one (port 0), CAs one per cabled port, the SM's
        port first. Sets MasterSMLID everywhere."""
        order: list[tuple[int, int]] = []
        root = next(iter(self.nodes.values()))
        order.append((root.guid, 0 if root.is_switch else self.port))
        for f in self.nodes.values():
            if f.is_switch:
                order.append((f.guid, 0))
            else:
                order += [(f.guid, p) for p in sorted(f.ports) if (f.guid, p) in self.links
                          or not f.path]
        lid = first
        for key in dict.fromkeys(order):
            self.lids[key] = lid
            lid += 1
        self.sm_lid = self.lids[order[0]]
        for (guid, p), lid in self.lids.items():
            path = self._path_to_port(guid, p)
            cur = PortInfo.decode(self.get(path, SmpAttr.PORT_INFO, port_info_am(p)))
            new = _nop(cur).replace(lid=lid, master_sm_lid=self.sm_lid)
            self.set(path, SmpAttr.PORT_INFO, port_info_am(p), new.encode())

    def _next_hops(self) -> dict[int, dict[int, int]]:
        """switch guid -> {lid: out port}: BFS distances over the switch graph."""
        switches = [g for g, f in self.nodes.items() if f.is_switch]
        adj: dict[int, list[tuple[int, int]]] = {g: [] for g in switches}
        for (g, p), (g2, _p2) in self.links.items():
            if g in adj and g2 in adj:
                adj[g].append((p, g2))
        table: dict[int, dict[int, int]] = {g: {} for g in switches}
        for (guid, port), lid in self.lids.items():
            if self.nodes[guid].is_switch:
                target, last_port = guid, 0
            else:
                target, last_port = self.links[(guid, port)]
            dist = {target: 0}
            q = deque([target])
            while q:
                g = q.popleft()
                for _p, g2 in adj[g]:
                    if g2 not in dist:
                        dist[g2] = dist[g] + 1
                        q.append(g2)
            for s in switches:
                if s == target:
                    table[s][lid] = last_port
                elif s in dist:
                    for p, g2 in sorted(adj[s]):
                        if dist.get(g2, 1 << 30) == dist[s] - 1:
                            table[s][lid] = p
                            break
        return table

    def route(self) -> None:
        """Program every switch's LFT and LinearFDBTop."""
        top = max(self.lids.values())
        for guid, routes in self._next_hops().items():
            path = self.nodes[guid].path
            for block in range(top // 64 + 1):
                ports = [routes.get(block * 64 + i, 0xFF) for i in range(64)]
                self.set(path, SmpAttr.LINEAR_FORWARDING_TABLE, block,
                         LftBlock.from_ports(ports).encode())
            si = SwitchInfo.decode(self.get(path, SmpAttr.SWITCH_INFO))
            self.set(path, SmpAttr.SWITCH_INFO, 0,
                     si.replace(linear_fdb_top=top, port_state_change=0).encode())

    def activate(self) -> None:
        """Every cabled port (both ends) to ARMED, then to ACTIVE."""
        targets = [(g, p) for (g, p) in self.links]
        for state in (3, 4):
            for guid, p in targets:
                path = self._path_to_port(guid, p)
                cur = PortInfo.decode(self.get(path, SmpAttr.PORT_INFO, port_info_am(p)))
                if cur.port_state >= state:
                    continue
                self.set(path, SmpAttr.PORT_INFO, port_info_am(p),
                         _nop(cur).replace(port_state=state).encode())

    def bring_up(self) -> TinySm:
        """Discover, assign LIDs, route, activate."""
        self.discover()
        self.assign_lids()
        self.route()
        self.activate()
        return self

    # --- multicast ---------------------------------------------------------------------------------

    def add_mcast(self, mlid: int, members: list[tuple[str, int]]) -> None:
        """Program ``mlid`` on every switch: a spanning tree of the switches plus the member
        CA ports (node name, port)."""
        switches = [g for g, f in self.nodes.items() if f.is_switch]
        by_name = {f.desc: g for g, f in self.nodes.items()}
        masks = {g: 0 for g in switches}
        seen = {switches[0]}
        q = deque([switches[0]])
        while q:
            g = q.popleft()
            for (a, p), (b, p2) in sorted(self.links.items()):
                if a == g and b in masks and b not in seen:
                    seen.add(b)
                    masks[a] |= 1 << p
                    masks[b] |= 1 << p2
                    q.append(b)
        for name, port in members:
            sw, sp = self.links[(by_name[name], port)]
            masks[sw] |= 1 << sp
        block, index = divmod(mlid - 0xC000, 32)
        for g, mask in masks.items():
            f = self.nodes[g]
            for pos in range(f.info.num_ports // 16 + 1):
                cur = list(MftBlock.decode(self.get(f.path, SmpAttr.MULTICAST_FORWARDING_TABLE,
                                                    mft_am(block, pos))).masks)
                cur[index] = mask >> (16 * pos) & 0xFFFF
                self.set(f.path, SmpAttr.MULTICAST_FORWARDING_TABLE, mft_am(block, pos),
                         MftBlock.from_masks(cur).encode())

    def lid_of(self, name: str, port: int = 1) -> int:
        """The LID given to a node's port (port 0 for a switch)."""
        for g, f in self.nodes.items():
            if f.desc == name:
                return self.lids[(g, 0 if f.is_switch else port)]
        raise KeyError(name)


def _nop(pi: PortInfo) -> PortInfo:
    """A PortInfo for a Set that changes nothing it does not name."""
    return pi.replace(port_state=0, port_physical_state=0, link_width_enabled=0,
                      link_speed_enabled=0, link_speed_ext_enabled=0)
