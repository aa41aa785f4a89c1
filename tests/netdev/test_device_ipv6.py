"""IPv6 over IPoIB: neighbour discovery done by the driver (the host's TUN is NOARP),
solicited-node groups, link-local addresses from the GUID, ping-like exchanges."""

from __future__ import annotations

from ipaddress import IPv6Address

from ipoib.fabric.topogen import fat_tree
from ipoib.wire import nd
from ipoib.wire.ip import IpProto, build_ipv6, parse_ipv6
from ipoib.wire.ipoib import ENCAP_IPV6, ipv6_mcast_mgid
from ipoib.wire.nd import NdType

from .net import Net, echo, forge, ip6, seq_of, start, v6


def _net() -> Net:
    return start(fat_tree(4), ["hca-1", "hca-2", "hca-3"])


def test_every_address_joins_its_solicited_node_group() -> None:
    net = _net()
    a = net["hca-1"]
    joined = {v.mgid for v in a.mcast_view() if v.complete and not v.send_only}
    for addr in (a.link_local, IPv6Address(v6(1))):
        mgid = ipv6_mcast_mgid(nd.solicited_node(addr), a.broadcast)
        assert ":".join(f"{mgid[i] << 8 | mgid[i + 1]:x}" for i in range(0, 16, 2)) in joined
    assert "ff12:601b:ffff:0:0:0:0:1" in joined  # all-nodes


def test_ping6_resolves_with_ns_and_na_then_flows_both_ways() -> None:
    net = _net()
    a, b = net["hca-1"], net["hca-2"]
    pkts = net.send("hca-1", "hca-2", 2, ipv6=True)
    assert net.run_until("hca-2", 2, 5) == pkts
    assert a.stats.events["ns_probe"] == 1 and b.stats.events["ns_for_us"] == 1
    assert net.path_queries("hca-1") == 1
    view = {v.address: v for v in a.neigh_view()}[v6(2)]
    assert view.state == "REACHABLE" and view.lladdr == str(b.hwaddr)
    # B learnt A from the NS's source option: its reply needs no solicitation
    for p in pkts:
        b.transmit(echo(v6(2), v6(1), seq_of(p), reply=True), net.clock.now)
    replies = net.run_until("hca-1", 2, 5)
    assert [seq_of(r) for r in replies] == [0, 1]
    assert b.stats.events["ns_probe"] == 0
    # the NS went to B's solicited-node group through a send-only join, not to everyone
    c = net["hca-3"]
    assert c.stats.events["ns_for_us"] == 0 and c.drain_to_host() == []
    assert any(v.send_only and v.mgid.endswith(":1:ff00:2") for v in a.mcast_view())


def test_link_local_addresses_talk() -> None:
    net = _net()
    a, b = net["hca-1"], net["hca-2"]
    pkt = echo(str(a.link_local), str(b.link_local), 1)
    a.transmit(pkt, net.clock.now)
    assert net.run_until("hca-2", 1, 5) == [pkt]
    assert ip6(str(b.link_local)) in a.neighs.entries


def test_an_ns_from_an_unspecified_address_gets_a_multicast_na() -> None:
    net = _net()
    a, b = net["hca-1"], net["hca-2"]
    target = v6(2)
    dad = nd.nd_packet("::", nd.solicited_node(target),
                       nd.build_ns("::", nd.solicited_node(target), target, None))
    a.transmit(dad, net.clock.now)  # the host probes for B's address (DAD)
    net.clock.settle()
    assert b.stats.events["ns_for_us"] == 1
    assert ip6("::") not in b.neighs.entries  # nothing to learn from ::
    # the answer went to all-nodes, unsolicited; A had no entry for the address, so it keeps
    # none (Linux ignores advertisements for addresses it is not resolving)
    assert a.stats.events["na_unsolicited_ignored"] >= 1 and ip6(target) not in a.neighs.entries


def test_the_hosts_nd_gets_the_interface_link_layer_option() -> None:
    net = _net()
    a = net["hca-1"]
    na = nd.build_na(v6(1), nd.ALL_NODES, v6(1), None, solicited=False)
    out = a.resolver.host_nd(nd.nd_packet(v6(1), nd.ALL_NODES, na))
    m = nd.parse_packet(out)
    assert m.type == NdType.NEIGHBOR_ADVERTISEMENT and m.target_lladdr == a.hwaddr
    assert parse_ipv6(out).hop_limit == 255


def test_received_nd_that_fails_its_checks_is_counted_not_raised() -> None:
    net = _net()
    a, b = net["hca-1"], net["hca-2"]
    net.send("hca-1", "hca-2", 1, ipv6=True)
    assert len(b.drain_to_host()) == 1
    ns = nd.build_ns(v6(1), v6(2), v6(2), a.hwaddr)
    bad = build_ipv6(v6(1), v6(2), IpProto.ICMPV6, ns, hop_limit=64)  # ND needs 255
    bent = nd.nd_packet(v6(1), v6(2), ns[:2] + b"\0\0" + ns[4:])  # checksum zeroed
    before = b.stats.drops["rx_malformed"]
    for pkt in (bad, bent):
        forge(net, "hca-2", ENCAP_IPV6 + pkt, via="hca-4")
    net.clock.settle()
    assert b.stats.drops["rx_malformed"] == before + 2
    assert b.drain_to_host() == [] and b.stats.events["ns_for_us"] == 1
    # the host's own ND keeps its hop limit: the driver only adds its link-layer option
    out = a.resolver.host_nd(bad)
    assert parse_ipv6(out).hop_limit == 64 and nd.parse(parse_ipv6(out).payload).source_lladdr
