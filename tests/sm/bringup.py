"""Helpers for SM tests: a real fabric brought up by the embedded SM on a virtual clock, UD
endpoints to send packets through it, and SA clients speaking MADs from an HCA port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ipoib.fabric import (
    Fabric,
    Topology,
)
from ipoib.fabric.agents import MadAgent, ReceivedMad
from ipoib.sm.agent import SmBinding, run_until
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.manager import SmConfig
from ipoib.sm.verify import RouteReport, verify_routes
from ipoib.wire.mad import SA_CLASS_VERSION, MgmtClass, build_sa_mad

from ..fabric.util import Ud
from ..fabric.util import ud as fabric_ud

NET_EXAMPLES = Path("/usr/share/doc/ibsim-utils/net-examples")
EXAMPLES = ["net", "net.1", "net.2sw2path", "net.2sw2path4hca", "net.2sw2path4hca2port"]
ACTIVE = 4
QKEY = 0x1B


def bring_up(topology: Topology, sm_node: str | None = None, *, limit: float = 120.0,
             guid2lid: dict[int, int] | None = None, seed: int = 0,
             **config: object) -> tuple[Fabric, SmBinding]:
    """A fabric with the embedded SM started on ``sm_node`` and run until the subnet is up."""
    fabric = Fabric(topology, seed=seed)
    node = sm_node or topology.nodes[0].name
    binding = SmBinding(fabric, node, config=SmConfig(**config),  # type: ignore[arg-type]
                        guid2lid=guid2lid)
    binding.start(0.0)
    run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=limit)
    assert binding.sm.subnet_up, list(binding.sm.log)
    return fabric, binding


def settle(fabric: Fabric, binding: SmBinding | list[SmBinding], seconds: float) -> float:
    """Run the clock ``seconds`` further (timers fire: light sweeps, retries, polls)."""
    end = fabric.now + seconds
    run_until(fabric, binding, lambda: False, limit=end)
    if fabric.now < end:
        fabric.process(end)
    return fabric.now


def sweep_idle(fabric: Fabric, binding: SmBinding, limit: float = 60.0) -> None:
    """Run until the SM is not sweeping."""
    sm = binding.sm
    run_until(fabric, binding, lambda: sm.phase == "idle", limit=fabric.now + limit)


def linked_ports(fabric: Fabric) -> list[tuple[str, int, int]]:
    """(node, port, state) of every port whose link is up."""
    return [(n.name, p.num, p.state) for n in fabric.nodes.values() for p in n.ports
            if p.peer is not None and p.up]


def fabric_lids(fabric: Fabric) -> dict[int, int]:
    """Endport GUID → LID as the ports hold them."""
    return {p.guid: p.lid for n in fabric.nodes.values() for p in n.ports
            if p.lid and (p.num == 0) == n.is_switch}


def route_report(fabric: Fabric) -> RouteReport:
    """Walk the LFTs the switches hold over the cabling that is up."""
    graph = SubnetGraph.from_topology(fabric.topology)
    for node in fabric.nodes.values():
        for p in node.ports:
            if p.peer is not None and not p.up and p.num in graph.nodes[node.guid].ports:
                graph.disconnect(node.guid, p.num)
    lfts = {sw.guid: bytes(sw.lft[:sw.top + 1]) for sw in fabric.switches}
    return verify_routes(graph, lfts, fabric_lids(fabric))


def ud(fabric: Fabric, name: str, port: int = 1, pkey_index: int = 0) -> Ud:
    """A UD QP in RTS on ``name``'s ``port`` with 4 receives posted."""
    end = fabric_ud(fabric, name, port=port, pkey_index=pkey_index, qkey=QKEY)
    end.post_recvs(4)
    return end


def packet_arrives(fabric: Fabric, src: Ud, dst: Ud, payload: bytes = b"hello") -> bool:
    """Send one UD packet by LID through the switches and see whether ``dst`` got it."""
    dst.received()
    src.send(dst, payload, qkey=QKEY)
    fabric.process(fabric.now)
    got = dst.received()
    dst.post_recvs(len(got))
    src.cq.poll(64)
    return payload in got


def hca_ports(fabric: Fabric) -> Iterator[tuple[str, int]]:
    """(CA name, port) of every cabled CA port."""
    for n in fabric.cas:
        for p in n.ports[1:]:
            if p.peer is not None and p.up:
                yield n.name, p.num


class SaClient:
    """A QP1 agent on an HCA port that sends SA MADs to the SM's LID and collects answers."""

    def __init__(self, fabric: Fabric, name: str, port: int = 1) -> None:
        self.fabric = fabric
        self.agent: MadAgent = fabric.open_mad_agent(name, port, MgmtClass.SUBN_ADM,
                                                     SA_CLASS_VERSION)
        self.tid = 0x100

    def send_raw(self, mad: bytes, sm_lid: int) -> None:
        self.agent.send(mad, dlid=sm_lid, dqp=1)

    def request(self, sm_lid: int, method: int, attr: int, data: bytes = b"", *,
                mask: int = 0, sm_key: int = 0, attr_mod: int = 0) -> list[ReceivedMad]:
        """Send one request; return every MAD that came back (after the fabric settles)."""
        self.tid += 1
        mad = build_sa_mad(method, attr, self.tid, data, component_mask=mask, sm_key=sm_key,
                           attr_mod=attr_mod)
        self.send_raw(mad, sm_lid)
        return self.collect()

    def collect(self) -> list[ReceivedMad]:
        self.fabric.process(self.fabric.now)
        out = []
        while (rx := self.agent.recv()) is not None:
            out.append(rx)
        return out


def rmpp_table(client: SaClient, sm_lid: int, method: int, attr: int, data: bytes, *,
               mask: int = 0, sm_key: int = 0) -> tuple[int, bytes, int]:
    """A GetTable answered over RMPP, ACKed by a real receiver: (status, table, offset)."""
    from ipoib.mad.rmpp import RmppReceiver, is_rmpp
    from ipoib.wire.mad import SaMad

    client.tid += 1
    mad = build_sa_mad(method, attr, client.tid, data, component_mask=mask, sm_key=sm_key)
    client.send_raw(mad, sm_lid)
    receiver = RmppReceiver()
    fabric = client.fabric
    for _round in range(10_000):
        fabric.process(fabric.now)
        replies = []
        while (rx := client.agent.recv()) is not None:
            replies.append(rx)
        if not replies:
            break
        for rx in replies:
            sa = SaMad.decode(rx.mad)
            if not is_rmpp(rx.mad):
                return sa.header.status, sa.data, sa.sa.attribute_offset
            step = receiver.receive((rx.slid, rx.src_qp), rx.mad, fabric.now)
            for ob in step.send:
                client.agent.send(ob.mad, dlid=sm_lid, dqp=1)
            for msg in step.delivered:
                fabric.process(fabric.now)  # let the SA see the final ACK
                return msg.header.status, msg.data, msg.sa.attribute_offset
    raise AssertionError("the table never arrived whole")
