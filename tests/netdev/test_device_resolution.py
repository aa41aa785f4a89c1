"""Address resolution end to end: devices on generated fat trees, the embedded SM and its SA,
a virtual clock. The tests play the hosts (transmit on one device, read another's output)."""

from __future__ import annotations

import pytest

from ipoib.fabric.topogen import fat_tree
from ipoib.netdev.device import DeviceConfig
from ipoib.netdev.neigh import NeighConfig
from ipoib.wire import arp
from ipoib.wire.ipoib import ENCAP_ARP, HwAddr

from .net import Net, echo, forge, ip4, seq_of, start, v4


@pytest.fixture
def net() -> Net:
    return start(fat_tree(8), [f"hca-{i}" for i in range(1, 6)])


def test_first_packet_waits_for_arp_and_one_path_record(net: Net) -> None:
    a, b = net["hca-1"], net["hca-3"]
    pkt = echo(v4(1), v4(3), 7)
    a.transmit(pkt, net.clock.now)
    entry = a.neighs.entries[ip4(v4(3))]
    assert entry.state.name == "INCOMPLETE" and len(entry.queue) == 1
    assert b.drain_to_host() == []
    got = net.run_until("hca-3", 1, timeout=5)
    assert got == [pkt]
    assert a.stats.events["arp_probe"] == 1
    assert net.path_queries("hca-1") == 1
    view = {v.address: v for v in a.neigh_view()}[v4(3)]
    assert view.state == "REACHABLE" and view.lladdr == str(b.hwaddr)
    assert view.dlid == b.lid
    (path,) = [p for p in a.path_view() if p.dlid == b.lid]
    assert path.complete and path.neighbours == 1


def test_one_path_record_per_gid_however_many_addresses_and_packets(net: Net) -> None:
    b = net["hca-2"]
    extra = [f"10.0.9.{i}" for i in range(1, 6)]
    for addr in extra:
        b.add_address(f"{addr}/16", net.clock.now)
    a = net["hca-1"]
    for round_ in range(3):
        for i, addr in enumerate(extra):
            a.transmit(echo(v4(1), addr, round_ * 10 + i), net.clock.now)
        net.clock.advance(0.5)
    got = b.drain_to_host()
    assert len(got) == 15  # the first round waited in five queues, then flowed
    assert net.path_queries("hca-1") == 1
    gids = {v.lladdr for v in a.neigh_view() if v.address in extra}
    assert gids == {str(b.hwaddr)}
    assert [p.neighbours for p in a.path_view() if p.dlid == b.lid] == [5]


def test_three_packets_wait_in_order_and_the_rest_are_counted(net: Net) -> None:
    a = net["hca-1"]
    pkts = net.send("hca-1", "hca-4", 8, settle=False)
    assert a.stats.drops["tx_queue_full"] == 5
    got = net.run_until("hca-4", 3, timeout=5)
    assert got == pkts[:3]
    net.clock.advance(2)
    assert net["hca-4"].drain_to_host() == []
    assert a.counters()["tx_dropped"] == 5


def test_a_peer_that_never_answers_fails_and_is_retried_later(net: Net) -> None:
    a = net["hca-1"]
    ghost = "10.0.0.99"
    for i in range(2):
        a.transmit(echo(v4(1), ghost, i), net.clock.now)
    t0 = net.clock.now
    net.clock.run_until(lambda: a.neighs.entries[ip4(ghost)].state.name == "FAILED", 10)
    assert net.clock.now - t0 == pytest.approx(3.0)  # three broadcast probes, 1 s apart
    assert a.stats.events["arp_probe"] == 3
    assert a.stats.drops["tx_neigh_failed"] == 2  # the queue went with it
    a.transmit(echo(v4(1), ghost, 5), net.clock.now)  # inside the back-off: refused at once
    assert a.stats.drops["tx_neigh_failed"] == 3
    assert a.stats.events["arp_probe"] == 3
    net.clock.advance(1.0)
    a.transmit(echo(v4(1), ghost, 6), net.clock.now)  # after it: resolution starts again
    assert a.neighs.entries[ip4(ghost)].state.name == "INCOMPLETE"
    assert a.stats.events["arp_probe"] == 4
    assert net.path_queries("hca-1") == 0


def test_a_slow_sa_makes_packets_wait_then_flow(net: Net) -> None:
    net.slow_sa(1.5)
    a = net["hca-1"]
    pkts = net.send("hca-1", "hca-5", 3)
    net.clock.advance(1.0)
    assert net["hca-5"].drain_to_host() == []
    assert len(a.neighs.entries[ip4(v4(5))].queue) == 3
    got = net.run_until("hca-5", 3, timeout=10)
    assert got == pkts
    assert a.sa.stats["retries"] >= 1  # the SA was slower than the 1 s timeout
    assert a.stats.drops["tx_path_failed"] == 0 and a.stats.tx_dropped == 0


def test_no_path_record_for_a_bogus_gid_drops_and_counts(net: Net) -> None:
    a = net["hca-1"]
    liar = "10.0.0.77"
    for i in range(2):
        a.transmit(echo(v4(1), liar, i), net.clock.now)
    bogus = HwAddr(qpn=0x99, gid=bytes.fromhex("fe800000000000000000dead0000beef"))
    reply = arp.build_reply(bogus, liar, a.hwaddr, v4(1))
    forge(net, "hca-1", ENCAP_ARP + reply)
    net.clock.settle()
    entry = a.neighs.entries[ip4(liar)]
    assert entry.state.name == "FAILED"
    assert a.stats.drops["tx_path_failed"] == 2
    assert a.sa.stats["status_ERR_NO_RECORDS"] == 1
    assert all(p.dlid != 0 for p in a.path_view())  # the failed path is gone


def test_resolved_neighbours_take_the_fast_path(net: Net) -> None:
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)
    assert len(b.drain_to_host()) == 1
    queries, slow = net.path_queries("hca-1"), a.stats.events["tx_slow_path"]
    path_events = a.stats.events["path_query"]
    sa_sent = sum(v for k, v in a.sa.stats.items() if k.startswith("sent_"))
    pkts = net.send("hca-1", "hca-2", 200, start=1)
    assert b.drain_to_host() == pkts
    assert net.path_queries("hca-1") == queries
    assert a.stats.events["tx_slow_path"] == slow
    assert a.stats.events["path_query"] == path_events
    assert sum(v for k, v in a.sa.stats.items() if k.startswith("sent_")) == sa_sent
    assert a.stats.tx_packets >= 201


def test_replies_come_back_the_same_way(net: Net) -> None:
    a, c = net["hca-1"], net["hca-3"]
    for i in range(5):
        a.transmit(echo(v4(1), v4(3), i), net.clock.now)
        net.clock.settle()
        (req,) = c.drain_to_host()
        c.transmit(echo(v4(3), v4(1), seq_of(req), reply=True), net.clock.now)
        net.clock.settle()
        (rep,) = a.drain_to_host()
        assert seq_of(rep) == i and rep[20] == 0  # ICMP echo reply
    # each side looked the other up once: C learnt A from A's ARP request
    assert net.path_queries("hca-1") == 1 and net.path_queries("hca-3") == 1
    assert c.stats.events["arp_probe"] == 0


def test_gateway_routes_and_missing_routes() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, gw = net["hca-1"], net["hca-2"]
    far = echo(v4(1), "192.168.5.5", 1)
    a.transmit(far, net.clock.now)
    assert a.stats.drops["tx_no_route"] == 1
    a.set_routes(["default via 10.0.0.2"])
    a.transmit(far, net.clock.now)
    assert net.run_until("hca-2", 1, 5) == [far]  # the gateway's host forwards it
    assert list(a.neighs.entries) == [ip4(v4(2))]
    a.set_routes(["192.168.0.0/16"])  # on-link without a gateway: resolved itself
    a.transmit(far, net.clock.now)
    assert ip4("192.168.5.5") in a.neighs.entries
    assert [str(r.dest) for r in a.route_view()][:2] == ["10.0.0.0/16", "192.168.0.0/16"]
    assert gw.stats.drops["tx_no_route"] == 0


def test_idle_neighbours_are_collected() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])  # default configuration
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 1)
    assert net.run_until("hca-2", 1, 5)
    net.clock.advance(30)
    assert ip4(v4(2)) in a.neighs.entries  # idle, but not for 60 s yet
    net.clock.advance(70)
    assert ip4(v4(2)) not in a.neighs.entries
    assert a.stats.events["neigh_gc"] >= 1
    assert [p.neighbours for p in a.path_view()] == [0]  # the path stays; Linux's too
    net.send("hca-1", "hca-2", 1)  # back: ARP again, but the path is still valid
    assert net.run_until("hca-2", 1, 5) and net.path_queries("hca-1") == 1


def test_the_neighbour_table_is_bounded() -> None:
    cfg = DeviceConfig(neigh=NeighConfig(gc_thresh1=0, gc_thresh2=4, gc_thresh3=8))
    net = start(fat_tree(4), ["hca-1", "hca-2"], config=cfg)
    a = net["hca-1"]
    for i in range(40):  # a flood of unresolvable addresses cannot grow the table
        a.transmit(echo(v4(1), f"10.0.3.{i}", i), net.clock.now)
        net.clock.advance(0.01)
    assert len(a.neighs) <= 8
    assert a.stats.drops["tx_neigh_table_full"] > 0
