"""The device under the pump contract when idle: it keeps its tables' earliest deadline
between calls, so every call that can move a deadline must show in ``get_timer`` at once."""

from __future__ import annotations

from ipoib.fabric.topogen import fat_tree
from ipoib.wire.ip import udp_packet

from .net import echo, seq_of, start, v4, v6


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


def _mixed() -> list[bytes]:
    """Runs to two resolved neighbours, IPv6, an unresolved one, too long, multicast."""
    big = udp_packet(v4(1), v4(2), 1, 2, bytes(2044 - 28))  # exactly the MTU
    return [
        echo(v4(1), v4(2), 1), echo(v4(1), v4(2), 2, size=1000), big,
        echo(v4(1), v4(3), 3), echo(v4(1), v4(3), 4),
        echo(v4(1), v4(2), 5),
        echo(v6(1), v6(2), 6),
        echo(v4(1), v4(4), 7),  # not resolved yet: queued behind ARP
        udp_packet(v4(1), v4(2), 1, 2, bytes(2045 - 28)),  # one byte over the MTU
        echo(v4(1), v4(2), 8),
        udp_packet(v4(1), "224.1.2.3", 5, 6, b"to a group"),
        echo(v4(1), v4(3), 9),
    ]


def test_a_batch_from_the_host_is_sent_as_one_packet_at_a_time_would_be() -> None:
    got = []
    for batch in (False, True):
        net = start(fat_tree(8), ["hca-1", "hca-2", "hca-3", "hca-4"])
        a = net["hca-1"]
        for dst in ("hca-2", "hca-3"):
            net.send("hca-1", dst, 1)
            net.send("hca-1", dst, 1, ipv6=True)
        for h in ("hca-2", "hca-3"):
            net[h].drain_to_host()
        now = net.clock.now
        if batch:
            a.transmit_batch(_mixed(), now)
        else:
            for p in _mixed():
                a.transmit(p, now)
        net.clock.advance(2)
        got.append(({h: [seq_of(p) for p in net[h].drain_to_host()]
                     for h in ("hca-2", "hca-3", "hca-4")},
                    a.counters(), net.path_queries("hca-1"), a._seq))
    assert got[0] == got[1]
    received, counters, _, _ = got[1]
    assert received["hca-2"][:3] == [1, 2, 0] and 6 in received["hca-2"]
    assert received["hca-3"] == [3, 4, 9] and received["hca-4"] == [7]
    assert counters["drop_tx_too_long"] == 1


def test_a_batch_without_carrier_is_dropped_and_counted() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    a.close(net.clock.now)
    a.transmit_batch([echo(v4(1), v4(2), i) for i in range(5)], net.clock.now)
    assert a.counters()["drop_tx_no_carrier"] == 5


def test_a_sleeping_device_is_woken_by_each_completion_after_it_ran() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)  # resolve first
    b.drain_to_host()
    woken: list[int] = []
    b.set_wakeup(lambda: woken.append(len(woken)))
    assert woken == [0]  # runs once to say when it is next due
    now = net.clock.now
    b.process(now)  # arms the CQs
    a.transmit(echo(v4(1), v4(2), 1), now)
    a.transmit(echo(v4(1), v4(2), 2), now)
    assert woken == [0]  # completion handlers run from the fabric's process, not inside
    net.fabric.process(now)
    assert woken == [0, 1]  # one wakeup for the armed CQ
    b.process(now)
    assert [seq_of(p) for p in b.drain_to_host()] == [1, 2]
    a.transmit(echo(v4(1), v4(2), 3), now)
    net.fabric.process(now)
    assert woken == [0, 1, 2]  # armed again by that process
    b.set_wakeup(None)
    b.process(now)
    a.transmit(echo(v4(1), v4(2), 4), now)
    net.fabric.process(now)
    assert woken == [0, 1, 2] and b.get_timer() == now  # plain pump contract again


def test_a_sleeping_device_wakes_itself_when_a_transmit_leaves_it_work() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 1)  # resolve first
    woken: list[str] = []
    a.set_wakeup(lambda: woken.append("w"))
    now = net.clock.now
    a.process(now)
    woken.clear()
    a.transmit(echo(v4(1), v4(2), 1), now)  # the fast path: nothing for process
    a.transmit_batch([echo(v4(1), v4(2), 2), echo(v4(1), v4(2), 3)], now)
    assert woken == []
    a.transmit(echo(v4(1), v4(3), 4), now)  # unresolved: ARP, a queue, a timer
    assert woken and a.get_timer() is not None
    woken.clear()
    a.transmit(echo(v4(1), v4(1), 5), now)  # to itself: something to drain
    assert woken and [seq_of(p) for p in a.drain_to_host()] == [5]
