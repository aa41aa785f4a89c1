"""The device's offloaded transmit: a TCP super-packet to a ready neighbour is posted once
with the HCA's TSO; one to an unresolved neighbour is segmented by the driver, queued and
sent once resolution completes; a partial checksum is filled in either way. The receiver
sees only MTU-sized segments with valid checksums, in order."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from ipoib.fabric.topogen import fat_tree
from ipoib.netdev.gro import Gro
from ipoib.wire.ip import internet_checksum
from ipoib.wire.offload import TsoSegments, segment_tcp

from ..wire.test_offload import l4_ok
from .net import start, v4

MSS = 2044 - 40


def _tcp(src: str, dst: str, payload: bytes, *, seq: int = 5000) -> bytes:
    """An IPv4 TCP packet as a stack hands it over with offloads: checksum left partial."""
    tcp = struct.pack(">HHIIBBHHH", 33000, 80, seq, 1, 5 << 4, 0x18, 1024, 0, 0)
    ip = struct.pack(">BBHHHBBH", 0x45, 0, 40 + len(payload), 1, 0x4000, 64, 6, 0) + \
        IPv4Address(src).packed + IPv4Address(dst).packed
    ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
    return ip + tcp + payload


def _check(got: list[bytes], payload: bytes) -> None:
    assert all(len(p) <= 2044 and l4_ok(p) for p in got)
    assert b"".join(p[40:] for p in got) == payload


def test_a_super_packet_to_a_ready_neighbour_goes_out_with_tso() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 1)  # resolve first
    assert len(net.run_until("hca-2", 1)) == 1
    payload = bytes(i % 249 for i in range(60_000))
    tx = a.stats.tx_packets
    a.transmit_offload(_tcp(v4(1), v4(2), payload), MSS, net.clock.now)
    net.clock.settle()
    got = net.received("hca-2")
    assert len(got) == -(-60_000 // MSS)
    _check(got, payload)
    c = a.counters()
    assert c["tx_tso_packets"] == 1 and c["tx_offload_software"] == 0
    assert a.stats.tx_packets == tx + 1  # one skb, as Linux counts it


def test_an_unresolved_neighbour_gets_segments_made_by_the_driver() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    payload = bytes(i % 241 for i in range(3 * MSS - 7))
    a.transmit_offload(_tcp(v4(1), v4(2), payload), MSS, net.clock.now)
    got = net.run_until("hca-2", 3, timeout=5)  # ARP, PathRecord, then the queue released
    _check(got, payload)
    c = a.counters()
    assert c["tx_offload_software"] == 1 and c["tx_tso_packets"] == 0


def test_a_partial_checksum_is_filled_in() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 1)
    net.run_until("hca-2", 1)
    ack = _tcp(v4(1), v4(2), b"")
    assert not l4_ok(ack)
    a.transmit_offload(ack, 0, net.clock.now, 20, 16)
    net.clock.settle()
    (got,) = net.received("hca-2")
    assert l4_ok(got) and got[:36] == ack[:36]
    assert a.counters()["tx_csum_offload"] == 1
    a.transmit_offload(ack, 0, net.clock.now, 4, 2)  # not where the HCA looks: the driver's
    net.clock.settle()
    (got,) = net.received("hca-2")
    assert got[:4] + got[8:] == ack[:4] + ack[8:] and a.counters()["tx_offload_software"] == 1


def test_a_malformed_super_packet_is_a_counted_drop() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.up()
    bad = bytearray(_tcp(v4(1), v4(2), bytes(5000)))
    bad[9] = 17  # UDP: cannot be segmented
    a.transmit_offload(bytes(bad), MSS, net.clock.now)  # no neighbour: the driver's own
    assert a.counters()["drop_tx_malformed"] == 1
    net.send("hca-1", "hca-2", 1)
    net.run_until("hca-2", 1)
    a.transmit_offload(bytes(bad), MSS, net.clock.now)  # ready: the HCA's, which refuses it
    net.clock.settle()
    assert a.counters()["drop_tx_post_failed"] == 1 and net.received("hca-2") == []


def test_a_super_packet_received_whole_goes_up_whole_to_a_coalescing_host() -> None:
    """The HCA carries a TSO send whole (ipoib.fabric.burst): a host that coalesces gets it
    as one item and GRO makes one frame of it, the same frame as of its segments; one that
    does not gets the segments. Either way every segment is counted."""
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)
    assert len(net.run_until("hca-2", 1)) == 1
    payload = bytes(i % 247 for i in range(50_000))
    packet = _tcp(v4(1), v4(2), payload)
    segs = segment_tcp(packet, MSS)
    rx, rx_bytes = b.stats.rx_packets, b.stats.rx_bytes
    for gro in (True, False):
        a.transmit_offload(packet, MSS, net.clock.now)
        net.clock.settle()
        if gro:
            (item,) = b.drain_to_gro()
            assert isinstance(item, TsoSegments) and item.packet == packet
            assert Gro().frames([item]) == Gro().frames(segs)
        else:
            assert b.drain_to_host() == segs
        assert b.stats.rx_packets - rx == len(segs)
        assert b.stats.rx_bytes - rx_bytes == sum(4 + len(s) for s in segs)
        rx, rx_bytes = b.stats.rx_packets, b.stats.rx_bytes
