"""The TUN ``ib0`` inside a namespace: MTU, addresses, carrier, packets both ways."""

from __future__ import annotations

import socket
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

import pytest

from ipoib.host import netns, tun
from ipoib.wire.ip import IpProto, build_icmpv4, build_ipv4, parse_icmp, parse_ip, udp_packet
from tests.host.helpers import ip_json, needs_root, run_in

pytestmark = needs_root

V4 = IPv4Interface("10.99.0.1/24")
PEER = "10.99.0.2"
LL = IPv6Interface("fe80::2:c903:0:1001/64")


def _to_peer(packets: list[bytes]) -> list[bytes]:
    """The packets addressed to PEER (the kernel also sends IGMP/MLD reports on its own)."""
    return [p for p in packets if p[0] >> 4 == 4 and str(parse_ip(p).dst) == PEER]


def _make(ns: str, *, routes: list[tun.Route] | None = None, carrier: bool = False) -> tun.Tun:
    return tun.create(ns, mtu=2044, ipv4=V4, ipv6=[LL], routes=routes or [], carrier=carrier)


def test_ib0_in_the_namespace_with_mtu_addresses_and_routes(ns_pair: tuple[str, str]) -> None:
    ns, _ = ns_pair
    t = _make(ns, routes=[tun.Route(IPv4Network("192.168.7.0/24"), gateway=PEER)])
    try:
        (link,) = ip_json(ns, "-d", "link", "show", "ib0")
        assert link["mtu"] == 2044
        flags = set(link["flags"])
        assert {"POINTOPOINT", "NOARP", "UP", "NO-CARRIER"} <= flags
        info = link["linkinfo"]["info_data"]
        assert info["type"] == "tun" and info["pi"] is False
        addrs = {(a["local"], a["prefixlen"])
                 for a in ip_json(ns, "addr", "show", "ib0")[0]["addr_info"]}
        # exactly ours: no address the kernel generated for itself
        assert addrs == {("10.99.0.1", 24), (str(LL.ip), 64)}
        routes = {r["dst"]: r for r in ip_json(ns, "route", "show")}
        assert routes["10.99.0.0/24"]["dev"] == "ib0"
        assert routes["224.0.0.0/4"]["dev"] == "ib0"
        assert routes["192.168.7.0/24"]["gateway"] == PEER
        assert t.ifindex == link["ifindex"]
        assert tun.link_info(ns)["mtu"] == 2044
    finally:
        t.close()
    assert ip_json(ns, "link", "show") and not [
        x for x in ip_json(ns, "link", "show") if x["ifname"] == "ib0"]


def test_carrier_starts_off_and_follows_set_carrier(ns_pair: tuple[str, str]) -> None:
    ns, _ = ns_pair
    t = _make(ns)
    try:
        assert tun.link_info(ns)["carrier"] == 0
        t.set_carrier(True)
        assert tun.link_info(ns)["carrier"] == 1
        # carrier coming up does not make the kernel add a link-local address of its own
        assert sorted(tun.link_info(ns)["addresses"]) == ["10.99.0.1/24", f"{LL.ip}/64"]
        assert "LOWER_UP" in ip_json(ns, "link", "show", "ib0")[0]["flags"]
        t.set_carrier(False)
        assert tun.link_info(ns)["carrier"] == 0
    finally:
        t.close()


def test_the_stack_sends_into_the_fd_and_reads_stop_at_eagain(ns_pair: tuple[str, str]) -> None:
    ns, _ = ns_pair
    t = _make(ns, carrier=True)
    try:
        with netns.entered(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            for i in range(5):
                s.sendto(b"x%d" % i, (PEER, 9000 + i))
        got = _to_peer(t.read_batch())
        assert len(got) == 5
        for i, pkt in enumerate(got):
            ip = parse_ip(pkt)
            assert (str(ip.src), str(ip.dst), ip.protocol) == ("10.99.0.1", PEER, IpProto.UDP)
            assert pkt.endswith(b"x%d" % i)
        rest = t.read_batch()  # returns at EAGAIN, well before the budget
        assert _to_peer(rest) == [] and len(rest) < tun.READ_BUDGET
    finally:
        t.close()


def test_a_written_packet_reaches_the_namespace_stack(ns_pair: tuple[str, str]) -> None:
    ns, _ = ns_pair
    t = _make(ns, carrier=True)
    try:
        with netns.entered(ns):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx:
            rx.bind(("10.99.0.1", 7000))
            rx.settimeout(5)
            t.write(udp_packet(PEER, "10.99.0.1", 4242, 7000, b"hello ib0"))
            data, src = rx.recvfrom(100)
        assert (data, src) == (b"hello ib0", (PEER, 4242))
        # and the kernel answers an echo request we inject with a reply into the fd
        echo = build_icmpv4(8, 0, b"\x12\x34\x00\x01" + b"ping")
        t.write(build_ipv4(PEER, "10.99.0.1", IpProto.ICMP, echo))
        import select

        got: list[bytes] = []
        while not got and select.select([t.fd], [], [], 5)[0]:
            got = _to_peer(t.read_batch())
        reply = parse_ip(got[0])
        hdr, body = parse_icmp(reply.payload)
        assert (str(reply.dst), hdr.type, body) == (PEER, 0, b"\x12\x34\x00\x01ping")
    finally:
        t.close()


def test_ping_out_of_the_namespace_arrives_in_the_fd(ns_pair: tuple[str, str]) -> None:
    ns, _ = ns_pair
    t = _make(ns, carrier=True)
    try:
        r = run_in(ns, "ping", "-c", "1", "-W", "0.2", "-s", "2016", "-M", "do", PEER)
        assert r.returncode != 0  # nobody answers: the relay is not running
        (pkt,) = _to_peer(t.read_batch())
        assert len(pkt) == 2044 and str(parse_ip(pkt).dst) == PEER
        big = run_in(ns, "ping", "-c", "1", "-W", "0.2", "-s", "2100", "-M", "do", PEER)
        assert "mtu=2044" in big.stderr.replace(" ", "")
    finally:
        t.close()


def test_interface_name_too_long_is_a_host_error() -> None:
    with pytest.raises(netns.HostError):
        tun.open_fd("x" * 16)
