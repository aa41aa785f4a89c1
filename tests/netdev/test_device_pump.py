"""The device under the pump contract when idle: it keeps its tables' earliest deadline
between calls, so every call that can move a deadline must show in ``get_timer`` at once."""

from __future__ import annotations

from ipoib.fabric.topogen import fat_tree

from .net import echo, start, v4


def test_a_slow_path_send_brings_the_deadline_forward() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    now = net.clock.now
    a.process(now)
    idle = a.get_timer()
    assert idle is None or idle > now + 1.0  # nothing due soon on an idle device
    a.transmit(echo(v4(1), v4(3), 1), now)  # 10.0.0.3: an HCA with no host behind it
    assert a.get_timer() == now  # the HCA's copy of our broadcast ARP waits in the CQ
    a.process(now)
    retry = a.get_timer()
    assert retry is not None and now < retry <= now + 1.0  # the ARP retransmit timer
    probes = []
    for _ in range(4):
        net.clock.advance(1.0)
        probes.append(a.stats.events["arp_probe"])
    assert probes[:3] == [2, 3, 3] and a.stats.events["neigh_failed"] == 1
    assert a.stats.drops["tx_neigh_failed"] == 1  # the packet that waited for it


def test_a_packet_arriving_makes_the_device_due_now() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)  # resolve first
    b.drain_to_host()
    now = net.clock.now
    b.process(now)
    assert b.get_timer() != now
    a.transmit(echo(v4(1), v4(2), 2), now)
    assert b.get_timer() == now  # the completion waits in its CQ
    b.process(now)
    assert len(b.drain_to_host()) == 1 and b.get_timer() != now


def test_an_sa_answer_wakes_the_device() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    a.transmit(echo(v4(1), v4(2), 1), net.clock.now)
    got = net.run_until("hca-2", 1, timeout=2)  # ARP, then a PathRecord answered by the SA
    assert len(got) == 1 and net.path_queries("hca-1") == 1
    assert a.sa.stats["sent_path"] == 1 and not a._mads
