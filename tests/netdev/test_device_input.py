"""Bad input never raises out of the device: every discard is counted with a reason. Also the
deferred AH reaper, and a many-host subnet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric.topogen import fat_tree
from ipoib.wire import arp
from ipoib.wire.ipoib import ENCAP_ARP, ENCAP_IPV4, HwAddr

from .net import Net, echo, forge, start, v4


@pytest.fixture(scope="module")
def net() -> Net:
    return start(fat_tree(8), ["hca-1", "hca-2"])


def _accounted(net: Net) -> int:
    s = net["hca-1"].stats
    queued = sum(len(e.queue) for e in net["hca-1"].neighs.entries.values())
    queued += sum(len(g.queue) for g in net["hca-1"].mcast.groups.values())
    return s.tx_packets + s.tx_dropped + queued


ip_like = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda head, rest: head + rest,
              st.sampled_from([b"\x45", b"\x60", b"\x46\x00"]), st.binary(max_size=80)),
)


@settings(max_examples=150, deadline=None)
@given(ip_like)
def test_any_bytes_from_the_host_are_sent_queued_or_counted(net: Net, packet: bytes) -> None:
    before = _accounted(net)
    net["hca-1"].transmit(packet, net.clock.now)
    net.clock.settle()
    assert _accounted(net) - before in (0, 1)  # 0: it joined a queue that then drained


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_any_payload_from_the_link_is_taken_or_counted(net: Net, payload: bytes) -> None:
    b = net["hca-2"]
    b.drain_to_host()
    seen = b.stats.rx_packets + b.stats.rx_dropped
    forge(net, "hca-2", payload)
    net.clock.settle()
    assert b.stats.rx_packets + b.stats.rx_dropped == seen + 1


def test_malformed_arp_and_unknown_ethertypes_are_counted(net: Net) -> None:
    b = net["hca-2"]
    before = dict(b.stats.drops)
    forge(net, "hca-2", ENCAP_ARP + b"\x00\x01\x08\x00\x06\x04" + bytes(22))  # Ethernet ARP
    forge(net, "hca-2", b"\x88\xcc\x00\x00lldp")
    forge(net, "hca-2", b"\x08")
    net.clock.settle()
    assert b.stats.drops["rx_malformed"] == before.get("rx_malformed", 0) + 2
    assert b.stats.drops["rx_unknown_ethertype"] == before.get("rx_unknown_ethertype", 0) + 1


def test_arp_for_someone_else_teaches_nothing_new(net: Net) -> None:
    b = net["hca-2"]
    stranger = HwAddr(qpn=0x77, gid=bytes.fromhex("fe80000000000000000000000000abcd"))
    req = arp.build_request(stranger, "10.0.5.5", "10.0.5.6")
    forge(net, "hca-2", ENCAP_ARP + req)
    net.clock.settle()
    assert bytes((10, 0, 5, 5)) not in b.neighs.entries


def test_ip_from_the_link_goes_up_unchanged(net: Net) -> None:
    pkt = echo(v4(9), v4(2), 3)
    forge(net, "hca-2", ENCAP_IPV4 + pkt)
    net.clock.settle()
    assert net["hca-2"].drain_to_host()[-1:] == [pkt]


def test_dead_address_handles_wait_for_their_last_send() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 3)
    old = a.neighs.entries[bytes((10, 0, 0, 2))].ah
    assert old is not None and old.handle is not None
    a.flush(1, net.clock.now)  # LIGHT: AHs invalid, re-queried on the next packet
    net.send("hca-1", "hca-2", 1, start=3)
    new = a.neighs.entries[bytes((10, 0, 0, 2))].ah
    assert new is not old and new is not None and new.valid
    assert len(net["hca-2"].drain_to_host()) == 4
    net.clock.advance(0.5)
    assert old.handle is not None  # its last send may still be on the queue
    net.send("hca-1", "hca-2", 32, start=10)  # a signalled completion comes by
    net.clock.advance(2)
    assert old.handle is None and a.reaper.dead == 0 and a.reaper.destroyed >= 1


def _many(n: int) -> None:
    hosts = [f"hca-{i}" for i in range(1, n + 1)]
    net = start(fat_tree(n), hosts)
    for i, src in enumerate(hosts):
        for dst in hosts[i + 1:i + 6]:
            net.send(src, dst, 2, settle=False)
    net.clock.advance(5)
    total = sum(len(net[h].drain_to_host()) for h in hosts)
    assert total == 2 * sum(min(5, len(hosts) - i - 1) for i in range(len(hosts)))
    for h in hosts:
        assert net.path_queries(h) <= 10  # one per peer it sent to or heard from


def test_many_hosts_on_a_fat_tree() -> None:
    _many(32)


@pytest.mark.slow
def test_hundreds_of_hosts_on_a_fat_tree() -> None:
    _many(216)


def test_an_address_conflict_probe_is_answered_without_learning(net: Net) -> None:
    a, b = net["hca-1"], net["hca-2"]
    probe = arp.build_request(a.hwaddr, "0.0.0.0", v4(2))  # "is 10.0.0.2 taken?"
    before = a.stats.events["arp_reply"]
    forge(net, "hca-2", ENCAP_ARP + probe)
    net.clock.settle()
    assert b.stats.events["arp_probe_answered"] == 1
    assert bytes(4) not in b.neighs.entries
    assert a.stats.events["arp_reply"] == before  # a reply to 0.0.0.0 confirms nothing
