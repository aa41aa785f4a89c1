"""The link: carrier and the broadcast join, the interface's identity, SM events and flushes,
P_Key partitions, close, and the user-visible views."""

from __future__ import annotations

import io
from collections.abc import Callable
from itertools import pairwise

from ipoib.fabric.topogen import fat_tree
from ipoib.netdev.device import DeviceConfig
from ipoib.sm.manager import SmConfig
from ipoib.wire.capture import LINKTYPE_ERF, PcapReader, PcapWriter, erf_unwrap
from ipoib.wire.gid import make_gid
from ipoib.wire.ib import UdPacket, parse_ud
from ipoib.wire.ip import udp_packet
from ipoib.wire.ipoib import HwAddr

from .net import Net, echo, ip4, start, v4


def test_carrier_stays_down_until_the_sm_and_the_broadcast_join() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"], with_sm=False)
    a = net["hca-1"]
    assert not a.carrier and a.lid == 0
    a.transmit(echo(v4(1), v4(2), 0), net.clock.now)
    assert a.stats.drops["tx_no_carrier"] == 1
    assert a.stats.events["mcast_join_sent"] == 0  # the port is not ACTIVE: no join yet
    net.start_sm()
    net.up(timeout=30)
    assert a.lid != 0 and a.stats.events["event_port_active"] == 1
    assert a.stats.events["mcast_join_sent"] >= 1
    net.send("hca-1", "hca-2", 2)
    assert len(net["hca-2"].drain_to_host()) == 2


def test_carrier_waits_for_a_slow_broadcast_join() -> None:
    net = start(fat_tree(4), [])
    net.slow_sa(2.0)
    a = net.add("hca-1", 1)
    net.clock.advance(1.5)
    assert not a.carrier
    a.transmit(echo(v4(1), v4(2), 0), net.clock.now)
    assert a.stats.drops["tx_no_carrier"] == 1
    assert not any(v.complete for v in a.mcast_view())
    assert a.sa.stats["sent_join"] == 1  # the broadcast group first, the others wait for it
    net.clock.advance(1.0)
    assert a.carrier
    assert a.qkey == 0x0B1B and a.mtu == 2044  # from the broadcast group's record


def test_identity_follows_linux() -> None:
    net = start(fat_tree(4), ["hca-1"])
    a = net["hca-1"]
    port = net.fabric.node("hca-1").ports[1]
    gid = make_gid(0xFE80 << 48, port.guid)
    assert a.hwaddr == HwAddr(flags=0, qpn=a.qpn, gid=gid)
    d = a.describe()
    assert d["hwaddr"].startswith(f"00:{a.qpn >> 16:02x}:{a.qpn >> 8 & 0xFF:02x}:")
    assert d["broadcast"] == "00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff"
    assert d["lid"] == port.lid and d["mtu"] == 2044 and d["carrier"] is True
    guid = port.guid.to_bytes(8, "big")
    assert a.link_local.packed == bytes.fromhex("fe80000000000000") + bytes(
        (guid[0] | 2,)) + guid[1:]
    assert f"{a.link_local}/64" in d["addresses"]


def test_the_mtu_comes_from_the_broadcast_group() -> None:
    conf = "Default=0x7fff,ipoib,mtu=3: ALL=full;"
    net = start(fat_tree(4), ["hca-1", "hca-2"], sm=SmConfig(partitions=conf))
    a, b = net["hca-1"], net["hca-2"]
    assert a.mtu == 1020  # IB MTU 1024 - 4
    a.transmit(echo(v4(1), v4(2), 1, size=1020 - 32), net.clock.now)
    net.clock.settle()
    assert len(b.drain_to_host()) == 1
    a.transmit(echo(v4(1), v4(2), 2, size=1020 - 31), net.clock.now)
    net.clock.settle()
    assert b.drain_to_host() == [] and a.stats.drops["tx_too_long"] == 1
    assert a.counters()["tx_errors"] == 1


def test_a_lid_change_by_a_new_sm_mid_stream() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2", "hca-3"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)
    assert len(b.drain_to_host()) == 1
    old = b.lid
    got: list[bytes] = []
    for i in range(40):
        if i == 10:  # a new master that remembers hca-2 at another LID
            net.start_sm(guid2lid={net.port_guid("hca-2"): 40})
        a.transmit(echo(v4(1), v4(2), 100 + i), net.clock.now)
        net.clock.advance(0.1)
        got += b.drain_to_host()
    assert old != 40 and b.lid == 40
    assert b.stats.events["event_lid_change"] >= 1 and b.stats.events["flush_normal"] >= 1
    assert a.stats.events["event_client_reregister"] >= 1 and a.stats.events["flush_light"] >= 1
    assert [p.dlid for p in a.path_view()] == [40]
    seqs = {int.from_bytes(p[28:32], "big") for p in got}
    assert set(range(120, 140)) <= seqs  # traffic resumed with the new DLID
    assert net.path_queries("hca-1") == 2


def test_port_down_and_up() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1)
    net.fabric.link_down("hca-2", 1, net.clock.now)
    net.clock.settle()
    assert not b.carrier and b.stats.events["event_port_err"] == 1
    b.transmit(echo(v4(2), v4(1), 0), net.clock.now)
    assert b.stats.drops["tx_no_carrier"] == 1
    assert b.neighs.entries[ip4(v4(1))].ah is None  # paths flushed
    net.fabric.link_up("hca-2", 1, net.clock.now)
    net.clock.run_until(lambda: b.carrier, 30)
    assert b.stats.events["event_port_active"] == 1
    b.transmit(echo(v4(2), v4(1), 1), net.clock.now)
    assert len(net.run_until("hca-1", 1, 10)) == 1
    assert len(a.drain_to_host()) == 0


def test_partitions_child_interfaces_and_a_pkey_change() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2", "hca-3"])
    g1, g2, g3 = (net.port_guid(h) for h in ("hca-1", "hca-2", "hca-3"))
    blue = "Default=0x7fff,ipoib: ALL=full;\nBlue=0x0001,ipoib: {}=full;"
    net.start_sm(config=SmConfig(partitions=blue.format(f"{g1:#x}, {g2:#x}")))
    net.clock.advance(1)
    kids = {}
    for i, h in enumerate(("hca-1", "hca-2", "hca-3"), start=1):
        kids[h] = d = net.add(h, 100 + i, pkey=0x8001, key=f"{h}.8001", addresses=False,
                              config=DeviceConfig(name=f"ib0.8001-{i}"))
        d.add_address(f"10.1.0.{i}/24", net.clock.now)
    net.clock.advance(3)
    assert kids["hca-1"].carrier and kids["hca-2"].carrier
    assert not kids["hca-3"].carrier and kids["hca-3"].stats.events["pkey_missing"] == 1
    assert kids["hca-1"].qpn != net["hca-1"].qpn and kids["hca-1"].gid == net["hca-1"].gid
    assert kids["hca-1"].broadcast.gid.hex().startswith("ff12401b8001")
    kids["hca-1"].transmit(echo("10.1.0.1", "10.1.0.2", 1), net.clock.now)
    net.clock.settle()
    assert len(kids["hca-2"].drain_to_host()) == 1
    assert net["hca-2"].drain_to_host() == []  # the parent on 0xffff sees none of it
    net.start_sm(config=SmConfig(partitions=blue.format(f"{g1:#x}, {g2:#x}, {g3:#x}")))
    net.clock.run_until(lambda: kids["hca-3"].carrier, 10)
    c = kids["hca-3"]
    assert c.stats.events["event_pkey_change"] >= 1 and c.stats.events["flush_heavy"] >= 1
    kids["hca-1"].transmit(echo("10.1.0.1", "10.1.0.3", 2), net.clock.now)
    net.clock.advance(1)
    assert len(c.drain_to_host()) == 1


def test_close_leaves_and_goes_dark() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a = net["hca-1"]
    net.send("hca-1", "hca-2", 1)
    a.close(net.clock.now)
    net.clock.settle()
    assert not a.carrier and len(a.neighs) == 0 and a.path_view() == []
    assert a.sa.stats["sent_leave"] == 4  # broadcast, all-nodes, two solicited-node
    a.transmit(echo(v4(1), v4(2), 2), net.clock.now)
    assert a.stats.drops["tx_no_carrier"] == 1
    assert a.get_timer() is None or a.get_timer() > net.clock.now
    b = net["hca-2"]
    old = b.neighs.entries[ip4(v4(1))].hwaddr
    a.open(net.clock.now)  # and back: a new QP, the groups joined again
    net.clock.run_until(lambda: a.carrier, 10)
    assert a.hwaddr.pack() != old  # a new QPN: the gratuitous ARP tells the neighbours
    assert b.neighs.entries[ip4(v4(1))].hwaddr == a.hwaddr.pack()
    assert b.stats.events["arp_update"] == 1
    b.transmit(echo(v4(2), v4(1), 9), net.clock.now)
    assert len(net.run_until("hca-1", 1, 5)) == 1


def test_views_read_like_linux() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2"])
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 3)
    neigh = a.format_neigh().splitlines()
    assert f"{v4(2)} dev ib-hca-1 lladdr {b.hwaddr} REACHABLE" in neigh
    groups = ":".join(f"{b.gid[i] << 8 | b.gid[i + 1]:x}" for i in range(0, 16, 2))
    assert groups.startswith("fe80:0:0:0:")  # eight groups, nothing compressed
    assert a.format_path() == (f"GID: {groups}\n  complete:    yes\n  DLID:     0x{b.lid:04x}\n"
                               f"  SL:            0\n  rate:       10.0 Gb/sec\n\n")
    mcg = a.format_mcast()
    assert mcg.startswith("GID: ff12:401b:ffff:0:0:0:ffff:ffff\n  created: ")
    assert "  complete:       yes\n  send_only:       no\n" in mcg
    counters = a.counters()
    assert list(counters)[:8] == ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
                                  "tx_errors", "rx_dropped", "tx_dropped", "multicast"]
    assert counters["tx_packets"] >= 3 and counters["drop_rx_own_mcast_echo"] >= 1
    text = a.format_counters()
    assert text.startswith("NIC statistics:\n     rx_packets: ")
    assert "drop_rx_own_mcast_echo" in text


def _captured(net: Net, port: tuple[str, int], act: Callable[[], None]) -> list[UdPacket]:
    """The UD packets leaving ``port`` while ``act`` runs, decoded (CRCs checked)."""
    sink = io.BytesIO()
    net.fabric.capture(PcapWriter(sink, LINKTYPE_ERF), [port])
    act()
    net.fabric.stop_capture()
    sink.seek(0)
    return [parse_ud(erf_unwrap(r.data).packet, crcs=True) for r in PcapReader(sink)]


def test_packets_on_the_wire() -> None:
    net = start(fat_tree(4), ["hca-1", "hca-2", "hca-3"])
    a, b = net["hca-1"], net["hca-2"]
    net["hca-3"].join_group("239.2.2.2", net.clock.now)
    net.send("hca-1", "hca-2", 1)
    net.clock.advance(1)

    def traffic() -> None:
        net.send("hca-1", "hca-2", 1, start=1)
        a.transmit(udp_packet(v4(1), "239.2.2.2", 9, 9, b"m"), net.clock.now)
        net.clock.advance(1)

    pkts = [p for p in _captured(net, ("hca-1", 1), traffic) if p.deth.src_qp == a.qpn]
    uni = [p for p in pkts if p.bth.dest_qp == b.qpn]
    multi = [p for p in pkts if p.bth.dest_qp == 0xFFFFFF and p.lrh.dlid >= 0xC000]
    assert len(uni) == 1 and uni[0].lrh.dlid == b.lid and uni[0].grh is None
    assert uni[0].payload[:4] == bytes.fromhex("08000000")  # IPoIB header, IPv4
    assert uni[0].deth.qkey == 0x0B1B and uni[0].bth.pkey == 0xFFFF
    mgid = bytes.fromhex("ff12401bffff0000000000000f020202")  # 239.2.2.2
    (group,) = [v for v in a.mcast_view() if v.mgid.endswith(":f02:202")]
    (m,) = [p for p in multi if p.grh is not None and p.grh.dgid == mgid]
    assert m.lrh.dlid == group.mlid and m.deth.qkey == 0x0B1B
    assert m.grh is not None and m.grh.sgid == a.gid and m.grh.hop_lmt == 0


def test_a_broadcast_join_that_fails_backs_off_to_16_s() -> None:
    conf = "Default=0x7fff,ipoib: ALL=full;\nRed=0x0002: ALL=full;"  # no IPoIB group
    net = start(fat_tree(4), [], sm=SmConfig(partitions=conf))
    red = net.add("hca-1", 1, pkey=0x8002, addresses=False)
    joins: list[float] = []
    sent = 0
    end = net.clock.now + 50
    while net.clock.now < end:
        net.clock.advance(0.25)
        if red.sa.stats["sent_join"] != sent:
            sent = red.sa.stats["sent_join"]
            joins.append(round(net.clock.now, 2))
    gaps = [round(y - x) for x, y in pairwise(joins)]
    assert gaps[:5] == [1, 2, 4, 8, 16] and set(gaps[5:]) <= {16}
    assert not red.carrier and red.stats.events["mcast_join_failed"] == len(joins)
