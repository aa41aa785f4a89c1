"""Our IPoIB link-layer bytes as Wireshark reads them (link type 242, wire-formats.md §8.3).

One capture holds what an IPoIB interface sends while it comes up and resolves a neighbour:
ARP request and reply, IPv6 NS and NA with the 24-byte link-layer option, a DHCPDISCOVER,
IGMPv3 and MLDv2 reports and a Router Advertisement. tshark must decode every field the way
we meant it, verify every checksum, and find nothing malformed.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from ipoib.wire import arp, dhcp, ip, nd
from ipoib.wire.capture import LINKTYPE_IPOIB, PcapWriter
from ipoib.wire.ip import GroupRecord, GroupRecordType, IpProto
from ipoib.wire.ipoib import (
    ENCAP_ARP,
    ENCAP_IPV4,
    ENCAP_IPV6,
    HwAddr,
    broadcast_hwaddr,
    ipv4_hwaddr,
    ipv6_mcast_hwaddr,
    link_local_address,
)
from tests.peers.tshark import clean, require_tshark, tshark_fields

A = HwAddr(qpn=0x48, gid=bytes.fromhex("fe800000000000000002c90300001001"))
B = HwAddr(flags=0x80, qpn=0x49, gid=bytes.fromhex("fe800000000000000002c90300002002"))
LL_A = link_local_address(A.guid)
LL_B = link_local_address(B.guid)
SN_B = nd.solicited_node(LL_B)
BCAST = broadcast_hwaddr()
HBH_ROUTER_ALERT = bytes.fromhex("3a00 0502 0000 0100")

FIELDS = [
    "ipoib.type", "ipoib.daddr.qpn", "ipoib.dgid",
    "arp.hw.type", "arp.hw.size", "arp.opcode", "arp.src.hw", "arp.dst.hw",
    "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
    "icmpv6.type", "icmpv6.nd.ns.target_address", "icmpv6.opt.type", "icmpv6.opt.length",
    "icmpv6.opt.linkaddr", "icmpv6.checksum.status", "icmpv6.opt.mtu", "icmpv6.opt.prefix",
    "icmpv6.mldr.mar.multicast_address",
    "dhcp.hw.type", "dhcp.hw.len", "dhcp.flags.bc", "dhcp.option.type", "dhcp.hw.addr",
    "dhcp.client_id.iaid", "dhcp.client_id.duid_type", "dhcp.client_id.duid_ll_hw_type",
    "dhcp.client_id.link_layer_address",
    "igmp.checksum.status", "igmp.maddr", "igmp.record_type",
    "ip.checksum.status", "udp.checksum.status",
]
OPTIONS = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]

# The note tshark adds to every DHCP request with hlen 0 (wire-formats.md §8.3): expected.
EXPECTED_NOTES = ("Client address not given",)


def capture() -> list[tuple[HwAddr, bytes]]:
    """(destination hardware address, IPoIB packet) in the order an interface sends them."""
    pfx = nd.PrefixOption(prefix=IPv6Address("2001:db8:1::").packed)
    igmp = ip.build_igmpv3_report([
        GroupRecord(GroupRecordType.CHANGE_TO_EXCLUDE, IPv4Address("239.255.255.250")),
        GroupRecord(GroupRecordType.MODE_IS_INCLUDE, IPv4Address("232.1.1.1"),
                    (IPv4Address("10.0.0.9"),)),
    ])
    mld = ip.build_mldv2_report(LL_A, [GroupRecord(GroupRecordType.CHANGE_TO_EXCLUDE,
                                                   nd.solicited_node(LL_A))])
    discover = dhcp.build_discover(0x1234, A.guid, hostname="node1")
    return [
        (BCAST, ENCAP_ARP + arp.build_request(A, "10.0.0.1", "10.0.0.2")),
        (A, ENCAP_ARP + arp.build_reply(B, "10.0.0.2", A, "10.0.0.1")),
        (ipv6_mcast_hwaddr(SN_B, BCAST),
         ENCAP_IPV6 + nd.nd_packet(LL_A, SN_B, nd.build_ns(LL_A, SN_B, LL_B, A))),
        (A, ENCAP_IPV6 + nd.nd_packet(LL_B, LL_A, nd.build_na(LL_B, LL_A, LL_B, B))),
        (BCAST, ENCAP_IPV4 + ip.udp_packet("0.0.0.0", "255.255.255.255", dhcp.CLIENT_PORT,
                                           dhcp.SERVER_PORT, discover)),
        (ipv4_hwaddr(ip.IGMPV3_ROUTERS, BCAST),
         ENCAP_IPV4 + ip.build_ipv4("10.0.0.1", ip.IGMPV3_ROUTERS, IpProto.IGMP, igmp, ttl=1,
                                    options=ip.ROUTER_ALERT_V4)),
        (ipv6_mcast_hwaddr(ip.MLDV2_ROUTERS, BCAST),
         ENCAP_IPV6 + ip.build_ipv6(LL_A, ip.MLDV2_ROUTERS, IpProto.HOPOPTS,
                                    HBH_ROUTER_ALERT + mld, hop_limit=1)),
        (ipv6_mcast_hwaddr(nd.ALL_NODES, BCAST),
         ENCAP_IPV6 + nd.nd_packet(LL_B, nd.ALL_NODES,
                                   nd.build_ra(LL_B, B, mtu=2044, prefixes=(pfx,)))),
    ]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    require_tshark()
    path: Path = tmp_path_factory.mktemp("ipoib") / "ipoib.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f, LINKTYPE_IPOIB)
        for i, (daddr, pkt) in enumerate(capture()):
            w.write_ipoib(1000.0 + i / 10, pkt, daddr=daddr.pack())
    return tshark_fields(path, FIELDS, options=OPTIONS)


def test_every_packet_is_clean(rows: list[dict[str, str]]) -> None:
    assert len(rows) == len(capture())
    for i, row in enumerate(rows):
        problems = [p for p in clean(row) if not any(n in p for n in EXPECTED_NOTES)]
        assert problems == [], (i, row["_ws.col.Info"], problems)


def test_protocol_chains(rows: list[dict[str, str]]) -> None:
    # tshark 4.0 names IGMP twice in the chain (its v3 dissector sits under the generic one)
    assert [r["frame.protocols"] for r in rows] == [
        "ipoib:arp", "ipoib:arp", "ipoib:ipv6:icmpv6", "ipoib:ipv6:icmpv6",
        "ipoib:ip:udp:dhcp", "ipoib:ip:igmp:igmp", "ipoib:ipv6:ipv6.hopopts:icmpv6",
        "ipoib:ipv6:icmpv6",
    ]


def test_pseudo_header_destination(rows: list[dict[str, str]]) -> None:
    assert rows[0]["ipoib.daddr.qpn"] == "0xffffff"
    assert rows[0]["ipoib.dgid"] == "ff12:401b:ffff::ffff:ffff"
    assert rows[2]["ipoib.dgid"] == "ff12:601b:ffff::1:ff00:2002"
    assert rows[5]["ipoib.dgid"] == "ff12:401b:ffff::16"
    assert rows[1]["ipoib.daddr.qpn"] == "0x000048"
    assert rows[1]["ipoib.dgid"] == "fe80::2:c903:0:1001"
    assert [r["ipoib.type"] for r in rows[:3]] == ["0x0806", "0x0806", "0x86dd"]


def test_arp(rows: list[dict[str, str]]) -> None:
    req, rep = rows[0], rows[1]
    for r in (req, rep):
        assert (r["arp.hw.type"], r["arp.hw.size"]) == ("32", "20")
    assert req["arp.opcode"] == "1" and rep["arp.opcode"] == "2"
    assert HwAddr.parse(req["arp.src.hw"]) == A
    assert HwAddr.parse(rep["arp.src.hw"]) == B and HwAddr.parse(rep["arp.dst.hw"]) == A
    assert (req["arp.src.proto_ipv4"], req["arp.dst.proto_ipv4"]) == ("10.0.0.1", "10.0.0.2")
    assert rep["_ws.col.Info"] == "10.0.0.2 is at " + B.pack().hex()


def test_neighbour_discovery(rows: list[dict[str, str]]) -> None:
    ns, na, ra = rows[2], rows[3], rows[7]
    assert ns["icmpv6.type"] == "135" and na["icmpv6.type"] == "136"
    assert ns["icmpv6.nd.ns.target_address"] == str(LL_B)
    # the option body is 22 bytes: 2 pad bytes, then the 20-byte address
    assert ns["icmpv6.opt.linkaddr"] == "0000" + A.pack().hex()
    assert na["icmpv6.opt.linkaddr"] == "0000" + B.pack().hex()
    assert (ns["icmpv6.opt.type"], ns["icmpv6.opt.length"]) == ("1", "3")
    assert (na["icmpv6.opt.type"], na["icmpv6.opt.length"]) == ("2", "3")
    assert ra["icmpv6.opt.linkaddr"] == "0000" + B.pack().hex()
    assert ra["icmpv6.opt.mtu"] == "2044" and ra["icmpv6.opt.prefix"] == "2001:db8:1::"
    for r in (ns, na, rows[6], ra):
        assert r["icmpv6.checksum.status"] == "1"


def test_dhcp_discover(rows: list[dict[str, str]]) -> None:
    d = rows[4]
    assert d["dhcp.hw.type"] == "0x20" and d["dhcp.hw.len"] == "0"
    assert d["dhcp.flags.bc"] == "1"
    assert "61" in d["dhcp.option.type"].split(",")
    assert d["dhcp.option.type"].split(",")[:2] == ["53", "61"]
    assert d["dhcp.client_id.iaid"] == "00001001"
    assert (d["dhcp.client_id.duid_type"], d["dhcp.client_id.duid_ll_hw_type"]) == ("3", "32")
    assert d["dhcp.client_id.link_layer_address"] == "0002c90300001001"
    assert (d["ip.checksum.status"], d["udp.checksum.status"]) == ("1", "1")


def test_membership_reports(rows: list[dict[str, str]]) -> None:
    igmp, mld = rows[5], rows[6]
    assert igmp["igmp.checksum.status"] == "1" and igmp["ip.checksum.status"] == "1"
    assert igmp["igmp.maddr"] == "239.255.255.250,232.1.1.1"
    assert igmp["igmp.record_type"] == "4,1"
    assert mld["icmpv6.mldr.mar.multicast_address"] == str(nd.solicited_node(LL_A))
