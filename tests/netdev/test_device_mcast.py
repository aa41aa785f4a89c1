"""Multicast: full joins asked for by the host (API, IGMP, MLD), send-only joins, broadcast,
delivery to members only, leaves, our own echo."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from ipoib.fabric.topogen import fat_tree
from ipoib.wire.ip import (
    MLDV2_ROUTERS,
    ROUTER_ALERT_V4,
    GroupRecord,
    GroupRecordType,
    IgmpType,
    IpProto,
    build_igmpv2,
    build_ipv4,
    build_ipv6,
    build_mldv2_report,
    udp_packet,
)

from .net import Net, start, v4, v6

HOSTS = ["hca-1", "hca-2", "hca-3", "hca-4"]


@pytest.fixture
def net() -> Net:
    return start(fat_tree(8), HOSTS)


def _got(net: Net) -> list[int]:
    return [len(net[h].drain_to_host()) for h in HOSTS]


def _igmp(src: str, type_: int, group: str, dst: str) -> bytes:
    return build_ipv4(src, dst, IpProto.IGMP, build_igmpv2(type_, group), ttl=1,
                      options=ROUTER_ALERT_V4)


def test_send_only_join_delivers_to_full_members_only(net: Net) -> None:
    for h in ("hca-2", "hca-3"):
        net[h].join_group("239.1.2.3", net.clock.now)
    net.clock.advance(1)
    a = net["hca-1"]
    for i in range(3):
        a.transmit(udp_packet(v4(1), "239.1.2.3", 5000, 5000, b"m%d" % i), net.clock.now)
    net.clock.advance(1)
    assert _got(net) == [0, 3, 3, 0]
    (group,) = [v for v in a.mcast_view() if v.mgid == "ff12:401b:ffff:0:0:0:f01:203"]
    assert group.send_only and group.complete and group.join_state == 0x8  # SendOnlyFullMember
    (member,) = [v for v in net["hca-2"].mcast_view() if v.mgid == group.mgid]
    assert not member.send_only and member.join_state == 0x1
    assert net["hca-2"].counters()["multicast"] >= 3


def test_packets_wait_for_the_send_only_join(net: Net) -> None:
    net["hca-2"].join_group("239.5.5.5", net.clock.now)
    net.clock.advance(1)
    net.slow_sa(1.0)
    a = net["hca-1"]
    for i in range(5):
        a.transmit(udp_packet(v4(1), "239.5.5.5", 1, 1, bytes([i])), net.clock.now)
    assert [v.queuelen for v in a.mcast_view() if v.mgid.endswith("f05:505")] == [5]
    net.clock.advance(2)
    got = net["hca-2"].drain_to_host()
    assert [p[-1] for p in got] == [0, 1, 2, 3, 4]


def test_igmp_reports_from_the_host_join_and_leave(net: Net) -> None:
    d, a = net["hca-4"], net["hca-1"]
    report = _igmp(v4(4), IgmpType.V2_REPORT, "239.9.9.9", "239.9.9.9")
    for _ in range(2):  # hosts repeat their reports: one membership
        d.transmit(report, net.clock.now)
        net.clock.advance(0.5)
    a.transmit(udp_packet(v4(1), "239.9.9.9", 1, 1, b"x"), net.clock.now)
    net.clock.advance(1)
    assert _got(net) == [0, 0, 0, 1]
    assert d.stats.events["host_report_join"] == 1
    d.transmit(_igmp(v4(4), IgmpType.V2_LEAVE, "239.9.9.9", "224.0.0.2"), net.clock.now)
    net.clock.advance(1)
    a.transmit(udp_packet(v4(1), "239.9.9.9", 1, 1, b"y"), net.clock.now)
    net.clock.advance(1)
    assert _got(net) == [0, 0, 0, 0]
    assert d.stats.events["host_report_leave"] == 1
    assert not any(v.mgid.endswith("f09:909") for v in d.mcast_view())


def test_mld_reports_from_the_host_join(net: Net) -> None:
    c, a = net["hca-3"], net["hca-1"]
    msg = build_mldv2_report(v6(3), [GroupRecord(GroupRecordType.CHANGE_TO_EXCLUDE,
                                                 IPv6Address("ff05::1234"))])
    hop_by_hop = bytes((IpProto.ICMPV6, 0, 5, 2, 0, 0, 1, 0))  # Router Alert, PadN
    c.transmit(build_ipv6(v6(3), MLDV2_ROUTERS, IpProto.HOPOPTS, hop_by_hop + msg,
                          hop_limit=1), net.clock.now)
    net.clock.advance(1)
    a.transmit(udp_packet(v6(1), "ff05::1234", 1, 1, b"z"), net.clock.now)
    net.clock.advance(1)
    assert _got(net) == [0, 0, 1, 0]
    # IPv6 groups take the scope of the broadcast group, not the address's (RFC 4391 §4)
    assert any(v.mgid == "ff12:601b:ffff:0:0:0:0:1234" for v in c.mcast_view())


def test_broadcast_reaches_everyone_but_the_sender(net: Net) -> None:
    a = net["hca-1"]
    for dst in ("255.255.255.255", "10.0.255.255"):
        a.transmit(udp_packet(v4(1), dst, 67, 68, b"b"), net.clock.now)
    net.clock.settle()
    assert _got(net) == [0, 2, 2, 2]
    assert a.stats.drops["rx_own_mcast_echo"] >= 2


def test_a_member_does_not_hear_itself_and_the_last_leave_leaves(net: Net) -> None:
    a, b = net["hca-1"], net["hca-2"]
    for _ in range(2):
        a.join_group("239.7.7.7", net.clock.now)
    b.join_group("239.7.7.7", net.clock.now)
    net.clock.advance(1)
    echoes = a.stats.drops["rx_own_mcast_echo"]
    a.transmit(udp_packet(v4(1), "239.7.7.7", 1, 1, b"e"), net.clock.now)
    net.clock.settle()
    assert _got(net) == [0, 1, 0, 0]
    assert a.stats.drops["rx_own_mcast_echo"] == echoes + 1
    a.leave_group("239.7.7.7", net.clock.now)
    assert any(v.mgid.endswith("f07:707") for v in a.mcast_view())  # one member left
    a.leave_group("239.7.7.7", net.clock.now)
    assert not any(v.mgid.endswith("f07:707") for v in a.mcast_view())
    with pytest.raises(ValueError):
        a.join_group("10.0.0.1", net.clock.now)


def test_at_most_64_packets_wait_for_a_join(net: Net) -> None:
    net["hca-2"].join_group("239.6.6.6", net.clock.now)
    net.clock.advance(1)
    net.slow_sa(1.0)
    a = net["hca-1"]
    for i in range(70):
        a.transmit(udp_packet(v4(1), "239.6.6.6", 1, 1, i.to_bytes(2, "big")), net.clock.now)
    assert a.stats.drops["tx_mcast_queue_full"] == 6
    net.clock.advance(2)
    got = net["hca-2"].drain_to_host()
    assert [int.from_bytes(p[-2:], "big") for p in got] == list(range(64))
