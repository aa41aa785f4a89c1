"""The TUN ``ib0`` inside a namespace: MTU, addresses, carrier, packets both ways."""

from __future__ import annotations

import os
import socket
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface

import pytest

from ipoib.host import netns, tun
from ipoib.netdev.gro import Gro
from ipoib.wire.ip import (
    IpProto,
    TcpHeader,
    build_icmpv4,
    build_ipv4,
    internet_checksum,
    parse_icmp,
    parse_ip,
    pseudo_header,
    udp_packet,
)
from ipoib.wire.vnet import VNET_HDR_SIZE, GsoType, VnetFlags, VnetHdr
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


def _tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
         payload: bytes = b"") -> bytes:
    """An IPv4 TCP segment with correct checksums (no options)."""
    seg = TcpHeader(sport=sport, dport=dport, seq=seq, ack=ack, data_offset=5, flags=flags,
                    window=65535).encode() + payload
    c = internet_checksum(pseudo_header(src, dst, IpProto.TCP, len(seg)) + seg)
    return build_ipv4(src, dst, IpProto.TCP, seg[:16] + c.to_bytes(2, "big") + seg[18:],
                      dont_fragment=True)


def _next_tcp(t: tun.Tun) -> bytes:
    import select

    while select.select([t.fd], [], [], 5)[0]:
        for p in _to_peer(t.read_batch()):
            if p[9] == IpProto.TCP:
                return p
    raise AssertionError("no TCP segment from the namespace")


def test_with_vnet_headers_the_stack_takes_a_coalesced_run_whole(
        ns_pair: tuple[str, str]) -> None:
    """Reads come without the virtio_net_hdr; a GSO frame made by Gro from three segments
    is accepted by the real TCP stack as their data, acknowledged at once."""
    ns, _ = ns_pair
    me = str(V4.ip)
    t = tun.create(ns, mtu=2044, ipv4=V4, ipv6=[LL], carrier=True, vnet_hdr=True)
    try:
        assert t.vnet_hdr == VNET_HDR_SIZE
        r = run_in(ns, "ping", "-c", "1", "-W", "0.2", "-s", "2016", "-M", "do", PEER)
        assert r.returncode != 0
        (pkt,) = _to_peer(t.read_batch())
        assert len(pkt) == 2044 and pkt[0] == 0x45  # a whole IP packet, header stripped
        with netns.entered(ns):
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with ls:
            ls.bind((me, 7001))
            ls.listen(1)
            t.write(_tcp(PEER, me, 5555, 7001, 1000, 0, 0x02))  # SYN
            synack = _next_tcp(t)
            isn = TcpHeader.decode(synack[20:40]).seq
            t.write(_tcp(PEER, me, 5555, 7001, 1001, isn + 1, 0x10))
            conn, _ = ls.accept()
            with conn:
                data = [bytes([65 + i]) * 1400 for i in range(3)]
                segs = [_tcp(PEER, me, 5555, 7001, 1001 + 1400 * i, isn + 1, 0x10, d)
                        for i, d in enumerate(data)]
                gro = Gro()
                (frame,) = gro.frames(segs)
                assert gro.stats.coalesced == 1
                os.write(t.fd, frame)
                conn.settimeout(5)
                got = b""
                while len(got) < 4200:
                    got += conn.recv(8192)
                assert got == b"".join(data)
                ack = _next_tcp(t)
                assert TcpHeader.decode(ack[20:40]).ack == 1001 + 4200
    finally:
        t.close()


def _next_frame(t: tun.Tun, proto: int) -> tuple[VnetHdr, bytes]:
    """The next frame to PEER of ``proto``, its virtio_net_hdr decoded."""
    import select

    while select.select([t.fd], [], [], 5)[0]:
        raw = os.read(t.fd, tun.OFFLOAD_READ + VNET_HDR_SIZE)
        pkt = raw[VNET_HDR_SIZE:]
        if _to_peer([pkt]) and pkt[9] == proto:
            return VnetHdr.decode(raw[:VNET_HDR_SIZE]), pkt
    raise AssertionError("nothing from the namespace")


def test_with_offloads_the_stack_hands_over_super_packets_and_partial_checksums(
        ns_pair: tuple[str, str]) -> None:
    """``offload``: TCP from the namespace arrives as GSO super-packets larger than the MTU,
    and a UDP datagram with its checksum left partial (NEEDS_CSUM, csum_start at the UDP
    header); the same with offloads off is plain."""
    ns, _ = ns_pair
    me = str(V4.ip)
    for offload in (True, False):
        t = tun.create(ns, mtu=2044, ipv4=V4, ipv6=[LL], carrier=True, vnet_hdr=True,
                       offload=offload)
        try:
            with netns.entered(ns):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with u:
                u.sendto(b"partial?", (PEER, 9100))
            hdr, _ = _next_frame(t, IpProto.UDP)
            assert bool(hdr.flags & VnetFlags.NEEDS_CSUM) == offload
            assert hdr.csum_start == (20 if offload else 0)
            with c:
                c.setblocking(False)
                try:
                    c.connect((PEER, 7002))
                except BlockingIOError:
                    pass
                _, syn = _next_frame(t, IpProto.TCP)
                isn = TcpHeader.decode(syn[20:40]).seq
                t.write(_tcp(PEER, me, 7002, TcpHeader.decode(syn[20:40]).sport, 9000, isn + 1,
                             0x12))  # SYN-ACK, no MSS option: the client's MSS is 536
                c.setblocking(True)
                c.sendall(bytes(4000))
                hdr, data = _next_frame(t, IpProto.TCP)
                while len(data) <= 40:  # the handshake's ACK first
                    hdr, data = _next_frame(t, IpProto.TCP)
                if offload:
                    assert hdr.gso_type == GsoType.TCPV4 and hdr.gso_size == 536
                    assert len(data) > 2044 and hdr.flags & VnetFlags.NEEDS_CSUM
                else:
                    assert hdr.gso_type == GsoType.NONE and len(data) <= 576
        finally:
            t.close()
