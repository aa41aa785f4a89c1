"""Switch forwarding by LFT after an SM programmed it: multi-hop delivery and counted drops."""

from __future__ import annotations

from ipoib.fabric import Fabric
from ipoib.fabric.node import INIT
from ipoib.fabric.topogen import line
from ipoib.wire.mad import Method, build_dr_smp, mad_status
from ipoib.wire.smp import LftBlock, NodeInfo, PortInfo, SmpAttr, port_info_am

from .tinysm import TinySm, run_until_idle
from .util import line3, ud, up


def _set_lft_entry(sm: TinySm, switch: str, lid: int, port: int) -> None:
    path = next(f.path for f in sm.nodes.values() if f.desc == switch)
    block, idx = divmod(lid, 64)
    ports = list(LftBlock.decode(sm.get(path, SmpAttr.LINEAR_FORWARDING_TABLE, block)).ports)
    ports[idx] = port
    sm.set(path, SmpAttr.LINEAR_FORWARDING_TABLE, block, LftBlock.from_ports(ports).encode())


def test_ud_crosses_three_switches() -> None:
    fabric, sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(2)
    a.send(b, b"over three switches", sl=2)
    a.send(b, b"x" * 2048)
    run_until_idle(fabric)
    wcs = b.cq.poll(4)
    assert [w.data for w in wcs] == [b"over three switches", b"x" * 2048]
    first = wcs[0]
    assert first.slid == sm.lid_of("hca-1") and first.src_qp == a.qp.qp_num
    assert first.sl == 2 and first.qp_num == b.qp.qp_num and first.status == 0
    assert first.byte_len == 40 + len(b"over three switches") and first.grh is None
    # each inter-switch hop counted on both ends
    for sw, out_port in (("sw-1", 3), ("sw-2", 3), ("sw-3", 1)):
        assert fabric.port(sw, out_port).xmit_pkts >= 2
    assert fabric.port("sw-2", 2).rcv_pkts >= 2
    assert fabric.drops() == {}
    assert len(a.cq.poll(4)) == 2  # signalled sends


def test_unrouted_lid_dropped_at_the_right_switch() -> None:
    fabric, sm = line3()
    target = sm.lid_of("hca-3")
    _set_lft_entry(sm, "sw-2", target, 0xFF)
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    a.send(b, b"lost")
    assert b.cq.poll() == []
    assert fabric.port("sw-2", 2).drops["no_route"] == 1  # the ingress port of sw-2
    assert fabric.drops() == {"no_route": 1}


def test_lid_beyond_linear_fdb_top() -> None:
    fabric, sm = line3()
    top = max(sm.lids.values())
    a = ud(fabric, "hca-1")
    a.send(top + 1, b"nowhere", dqpn=0x50)
    assert fabric.port("sw-1", 1).drops["lid_beyond_top"] == 1


def test_routing_loop_hits_the_hop_limit() -> None:
    fabric, sm = line3()
    target = sm.lid_of("hca-3")
    _set_lft_entry(sm, "sw-2", target, 2)  # back towards sw-1, which sends it back again
    a = ud(fabric, "hca-1")
    a.send(target, b"loop", dqpn=0x48)
    drops = fabric.drops()
    assert drops == {"hop_limit": 1}
    assert fabric.port("sw-1", 3).xmit_pkts + fabric.port("sw-2", 2).xmit_pkts >= 64


def test_data_needs_active_ports_smps_do_not() -> None:
    fabric, sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    # the SM takes sw-2 port 3 down: it retrains to INIT on both ends
    path = next(f.path for f in sm.nodes.values() if f.desc == "sw-2")
    cur = PortInfo.decode(sm.get(path, SmpAttr.PORT_INFO, port_info_am(3)))
    sm.set(path, SmpAttr.PORT_INFO, port_info_am(3),
           cur.replace(port_state=1, port_physical_state=0, link_width_enabled=0,
                       link_speed_enabled=0).encode())
    assert fabric.port("sw-3", 2).state == INIT
    a.send(b, b"data")
    assert fabric.port("sw-2", 3).drops["port_not_active"] == 1
    # a DR SMP still crosses the INIT link
    ni = NodeInfo.decode(sm.get((1, 3, 3, 1), SmpAttr.NODE_INFO))
    assert ni.node_guid == fabric.node("hca-3").guid


def test_link_down_fault_drops_at_egress() -> None:
    fabric, sm = line3()
    a = ud(fabric, "hca-1")
    fabric.link_down("sw-3", 1)
    a.send(sm.lid_of("hca-3"), b"gone", dqpn=0x48)
    assert fabric.port("sw-3", 1).drops["link_down"] == 1


def test_drop_rate_is_seeded_and_counted() -> None:
    counts = []
    for _ in range(2):
        fabric, _sm = up(line(2, 1), seed=42)
        a, b = ud(fabric, "hca-1"), ud(fabric, "hca-2")
        b.post_recvs(100)
        fabric.set_drop_rate("sw-1", 3, 0.5)
        for _ in range(100):
            a.send(b, b"maybe")
        got = len(b.cq.poll(100))
        lost = fabric.port("sw-2", 2).drops["fault_drop"]
        assert got + lost == 100 and 20 < lost < 80
        counts.append(lost)
    assert counts[0] == counts[1]


def test_mad_delay_fault_holds_the_answer() -> None:
    fabric = Fabric(line(1, 1))
    sm = TinySm(fabric, "hca-1")
    fabric.set_mad_delay("sw-1", 0.25)
    tid = sm.agent.send(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, 1)))
    assert sm.agent.recv() is None
    assert fabric.get_timer() == 0.25
    fabric.process(0.2)
    assert sm.agent.recv() is None
    fabric.process(0.25)
    rx = sm.agent.recv()
    assert rx is not None and mad_status(rx.mad) == 0 and tid
    assert fabric.now == 0.25
