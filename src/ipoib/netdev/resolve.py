"""Addresses, routes and the address-resolution protocols of an IPoIB interface.

The device glue (:mod:`.device`) keeps its hot path small by pushing everything that is not
"neighbour hit → post" here:

- :class:`Addressing` holds the interface's own addresses and the routes the host passes in,
  and answers the routing question of the transmit path — which next hop does a destination
  go to (the destination itself when on-link, else the route's gateway) — with a bounded
  cache, so a packet costs one dict lookup. It also maps IP multicast and broadcast
  destinations to MGIDs (RFC 4391 §4, via :mod:`ipoib.wire.ipoib`), cached the same way.
- :class:`Resolver` speaks ARP (RFC 826 with htype 32, RFC 4391 §9.1) and IPv6 neighbour
  discovery (RFC 4861 with the 20-byte link-layer option, RFC 4391 §9.2) on behalf of the
  neighbour table: it answers requests for our addresses, learns from requests that target
  us, confirms from replies, and builds the requests the table asks for. The kernel above
  a TUN device does neither (TUN is ``NOARP``), so the driver does all of it, as the seed
  mail's driver did inside itself.

Nothing here posts to the HCA: packets to send go back through the :class:`LinkSender` the
device implements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Protocol

from ..wire import arp, nd
from ..wire.errors import DecodeError, WireError
from ..wire.ip import IpProto, build_ipv6, parse_ipv6
from ..wire.ipoib import HwAddr, ipv4_mcast_mgid, ipv6_mcast_mgid
from .actions import Action
from .counters import Counters
from .neigh import NeighTable

__all__ = [
    "CACHE_MAX", "Addressing", "LinkSender", "Resolver", "Route", "RouteView",
]

CACHE_MAX = 4096
"""Entries in each next-hop / MGID cache before it is cleared (a flood cannot grow it)."""

IpIface = IPv4Interface | IPv6Interface
IpNet = IPv4Network | IPv6Network
IpAddr = IPv4Address | IPv6Address

_LINK_LOCAL6 = IPv6Network("fe80::/64")
_ALL_ONES4 = b"\xff\xff\xff\xff"
_ND_TYPES = range(nd.NdType.ROUTER_SOLICITATION, nd.NdType.NEIGHBOR_ADVERTISEMENT + 2)
"""ICMPv6 types 133-137: RS, RA, NS, NA and Redirect."""


@dataclass(frozen=True, slots=True)
class Route:
    """One route: ``dest`` is on-link when ``via`` is None, else reached through ``via``."""

    dest: IpNet
    via: IpAddr | None = None

    def __post_init__(self) -> None:
        if self.via is not None and self.via.version != self.dest.version:
            raise ValueError(f"gateway {self.via} is not of the family of {self.dest}")

    @classmethod
    def parse(cls, text: str) -> Route:
        """``"10.0.0.0/24"``, ``"10.1.0.0/16 via 10.0.0.1"`` or ``"default via fe80::1"``."""
        words = text.split()
        if not words or len(words) not in (1, 3) or (len(words) == 3 and words[1] != "via"):
            raise ValueError(f"not a route: {text!r}")
        via = ip_address(words[2]) if len(words) == 3 else None
        if words[0] == "default":
            if via is None:
                raise ValueError("a default route needs a gateway")
            dest: IpNet = ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
        else:
            dest = ip_network(words[0], strict=False)
        return cls(dest, via)

    def __str__(self) -> str:
        d = "default" if self.dest.prefixlen == 0 else str(self.dest)
        return d if self.via is None else f"{d} via {self.via}"


@dataclass(frozen=True, slots=True)
class RouteView:
    """A route as ``ip route`` would list it, with where it came from."""

    dest: str
    via: str | None
    source: str

    def format(self, dev: str = "ib0") -> str:
        """The ``ip route`` line."""
        via = f" via {self.via}" if self.via else ""
        return f"{self.dest}{via} dev {dev} proto {self.source}"


class _Entry:
    """A route compiled to integers: ``dst & mask == net`` picks it."""

    __slots__ = ("mask", "net", "prefixlen", "route", "source", "via")

    def __init__(self, route: Route, source: str) -> None:
        self.route = route
        self.source = source
        self.net = int(route.dest.network_address)
        self.mask = int(route.dest.netmask)
        self.prefixlen = route.dest.prefixlen
        self.via = None if route.via is None else route.via.packed


class Addressing:
    """Own addresses, routes, and the cached next-hop and MGID decisions of the data path."""

    def __init__(self, broadcast: HwAddr) -> None:
        self.broadcast = broadcast
        self.addresses: dict[bytes, IpIface] = {}
        self.routes: list[Route] = []
        self._v4: list[_Entry] = []
        self._v6: list[_Entry] = []
        self.broadcasts: set[bytes] = {_ALL_ONES4}
        self.hops: dict[bytes, bytes] = {}
        self._mgids: dict[bytes, bytes] = {}
        self._compile()

    # --- configuration ----------------------------------------------------------------------

    def add_address(self, iface: IpIface) -> bool:
        """Own ``iface`` (its prefix becomes on-link); False if it was already ours."""
        key = iface.ip.packed
        if self.addresses.get(key) == iface:
            return False
        self.addresses[key] = iface
        self._compile()
        return True

    def remove_address(self, iface: IpIface) -> bool:
        """Stop owning ``iface``; False if it was not ours."""
        if self.addresses.pop(iface.ip.packed, None) is None:
            return False
        self._compile()
        return True

    def set_routes(self, routes: Iterable[Route | str]) -> None:
        """Replace the host's routes (the connected prefixes of our addresses stay)."""
        self.routes = [r if isinstance(r, Route) else Route.parse(r) for r in routes]
        self._compile()

    def set_broadcast(self, broadcast: HwAddr) -> None:
        """A new broadcast address (P_Key change): the MGID cache is rebuilt lazily."""
        self.broadcast = broadcast
        self._mgids.clear()

    def _compile(self) -> None:
        entries: list[_Entry] = []
        seen: set[Route] = set()
        kernel = [Route(i.network) for i in self.addresses.values()] + [Route(_LINK_LOCAL6)]
        for route, source in [*((r, "kernel") for r in kernel),
                              *((r, "static") for r in self.routes)]:
            if route not in seen:  # the namespace's table repeats our prefixes
                seen.add(route)
                entries.append(_Entry(route, source))
        entries.sort(key=lambda e: -e.prefixlen)  # longest prefix first, stable
        self._v4 = [e for e in entries if e.route.dest.version == 4]
        self._v6 = [e for e in entries if e.route.dest.version == 6]
        self.broadcasts = {_ALL_ONES4} | {
            i.network.broadcast_address.packed for i in self.addresses.values()
            if isinstance(i, IPv4Interface) and i.network.prefixlen < 31
        }
        self.hops.clear()

    # --- the data path's questions ------------------------------------------------------------

    def next_hop(self, dst: bytes) -> bytes | None:
        """The neighbour a unicast ``dst`` (4 or 16 bytes) is sent to; None: no route.

        The answer is cached; the transmit hot path reads :attr:`hops` directly first.
        """
        hop = self.hops.get(dst)
        if hop is not None:
            return hop
        n = int.from_bytes(dst, "big")
        for e in self._v4 if len(dst) == 4 else self._v6:
            if n & e.mask == e.net:
                hop = dst if e.via is None else e.via
                break
        else:
            return None
        if len(self.hops) >= CACHE_MAX:
            self.hops.clear()
        self.hops[dst] = hop
        return hop

    def is_local(self, ip: bytes) -> bool:
        """One of our own addresses."""
        return ip in self.addresses

    def mgid(self, dst: bytes) -> bytes | None:
        """The MGID an IPv4 multicast/broadcast or IPv6 multicast ``dst`` is sent to.

        None for a unicast destination or an IPv4 address of the reserved class E.
        """
        m = self._mgids.get(dst)
        if m is not None:
            return m
        if len(dst) == 4:
            if dst in self.broadcasts:
                m = self.broadcast.gid
            elif 0xE0 <= dst[0] <= 0xEF:
                m = ipv4_mcast_mgid(IPv4Address(dst), self.broadcast)
            else:
                return None
        elif dst[0] == 0xFF:
            m = ipv6_mcast_mgid(IPv6Address(dst), self.broadcast)
        else:
            return None
        if len(self._mgids) >= CACHE_MAX:
            self._mgids.clear()
        self._mgids[dst] = m
        return m

    def source_for(self, dst: bytes) -> bytes | None:
        """Our address to speak from towards ``dst``: one in its subnet, else any of its
        family (IPv6 prefers the link-local one)."""
        n = int.from_bytes(dst, "big")
        fallback: bytes | None = None
        for key, iface in self.addresses.items():
            if len(key) != len(dst):
                continue
            net = iface.network
            if n & int(net.netmask) == int(net.network_address):
                return key
            if fallback is None or (len(key) == 16 and iface.ip.is_link_local):
                fallback = key
        return fallback

    def views(self) -> list[RouteView]:
        """Every route in lookup order, IPv4 first."""
        return [RouteView(str(e.route.dest), None if e.route.via is None else str(e.route.via),
                          e.source) for e in (*self._v4, *self._v6)]


class LinkSender(Protocol):
    """What the resolver needs from the device to put packets on the link."""

    def send_arp(self, dest: bytes | None, packet: bytes, now: float) -> None:
        """Send an ARP packet to ``dest`` (20 bytes) or, when None, to the broadcast group."""

    def send_ip(self, packet: bytes, now: float) -> None:
        """Send an IP packet the driver made itself (routed like the host's packets)."""

    def run(self, actions: list[Action], now: float) -> None:
        """Carry out what the neighbour table returned."""


class Resolver:
    """ARP and ND for one interface, feeding :class:`NeighTable` (see the module docstring).

    ``hwaddr`` is the interface's own 20-byte address; the device updates it when its GID
    changes.
    """

    def __init__(self, neighs: NeighTable, addressing: Addressing, counters: Counters,
                 sender: LinkSender, hwaddr: HwAddr) -> None:
        self.neighs = neighs
        self.addressing = addressing
        self.counters = counters
        self.sender = sender
        self.hwaddr = hwaddr

    # --- requests the neighbour table asks for ------------------------------------------------

    def solicit(self, ip: bytes, dest: bytes | None, now: float) -> None:
        """An ARP request or NS for ``ip``: broadcast/solicited-node, or unicast to ``dest``."""
        src = self.addressing.source_for(ip)
        if src is None:
            self.counters.event("solicit_no_source")
            return
        if len(ip) == 4:
            self.sender.send_arp(dest, arp.build_request(self.hwaddr, src, ip), now)
            return
        dst: IpAddr = IPv6Address(ip) if dest is not None else nd.solicited_node(ip)
        msg = nd.build_ns(src, dst, ip, self.hwaddr)
        self.sender.send_ip(nd.nd_packet(src, dst, msg), now)

    def announce(self, iface: IpIface, now: float) -> None:
        """Tell the link about a new address: a gratuitous ARP, or an unsolicited NA."""
        addr = iface.ip.packed
        if isinstance(iface, IPv4Interface):
            self.sender.send_arp(None, arp.build_gratuitous(self.hwaddr, addr), now)
            self.counters.event("arp_gratuitous")
            return
        msg = nd.build_na(addr, nd.ALL_NODES, addr, self.hwaddr, solicited=False)
        self.sender.send_ip(nd.nd_packet(addr, nd.ALL_NODES, msg), now)
        self.counters.event("na_unsolicited")

    # --- ARP input ----------------------------------------------------------------------------

    def arp_received(self, data: bytes, now: float) -> None:
        """An ARP packet from the link (the bytes after the IPoIB header)."""
        try:
            p = arp.parse(data)
        except DecodeError:
            self.counters.drop("rx_malformed")
            return
        sha, spa, tpa = p.sha, p.spa, p.tpa
        run = self.sender.run
        if sha == self.hwaddr.pack():
            self.counters.event("arp_own")
            return
        if sha[4] == 0xFF:  # a multicast GID cannot be a sender
            self.counters.event("arp_ignored")
            return
        ours = self.addressing.is_local(tpa)
        if spa == bytes(4):  # an address-conflict probe (RFC 5227): answer, learn nothing
            if p.is_request and ours:
                self.counters.event("arp_probe_answered")
                reply = arp.build_reply(self.hwaddr, tpa, HwAddr.unpack(sha), spa)
                self.sender.send_arp(sha, reply, now)
            return
        if ours and not p.is_gratuitous:
            if p.is_request:
                self.counters.event("arp_request_for_us")
                run(self.neighs.learn(spa, sha, now), now)
                reply = arp.build_reply(self.hwaddr, tpa, HwAddr.unpack(sha), spa)
                self.sender.send_arp(sha, reply, now)
            else:
                self.counters.event("arp_reply")
                run(self.neighs.confirm(spa, sha, now), now)
            return
        e = self.neighs.entries.get(spa)
        if e is not None and e.hwaddr != sha:  # gratuitous or overheard: update what we have
            self.counters.event("arp_update")
            run(self.neighs.learn(spa, sha, now), now)

    # --- ND input -----------------------------------------------------------------------------

    @staticmethod
    def is_nd(packet: bytes) -> bool:
        """An IPv6 packet carrying RS/RA/NS/NA/Redirect directly (no extension headers)."""
        return len(packet) > 40 and packet[6] == IpProto.ICMPV6 and packet[40] in _ND_TYPES

    def nd_received(self, packet: bytes, now: float) -> bool:
        """An ND packet from the link; True when it was consumed here (NS and NA are the
        driver's business; RS, RA and Redirect also go up to the host)."""
        try:
            m = nd.parse_packet(packet)
        except DecodeError:
            self.counters.drop("rx_malformed")
            return True
        src = packet[8:24]
        unspecified = src == bytes(16)
        run = self.sender.run
        h = m.header
        if isinstance(h, nd.NsHeader):
            target = h.target
            if not self.addressing.is_local(target):
                return True
            self.counters.event("ns_for_us")
            sll = m.source_lladdr
            if sll is not None and not unspecified:
                run(self.neighs.learn(src, sll.pack(), now), now)
            dst = nd.ALL_NODES.packed if unspecified else src
            na = nd.build_na(target, dst, target, self.hwaddr, solicited=not unspecified)
            self.sender.send_ip(nd.nd_packet(target, dst, na), now)
            return True
        if isinstance(h, nd.NaHeader):
            e = self.neighs.entries.get(h.target)
            tll = m.target_lladdr
            if e is None:
                self.counters.event("na_unsolicited_ignored")
                return True
            hw = tll.pack() if tll is not None else e.hwaddr
            if hw is None:
                return True
            if h.solicited:
                run(self.neighs.confirm(h.target, hw, now), now)
            elif h.override or e.hwaddr is None:
                run(self.neighs.learn(h.target, hw, now), now)
            return True
        sll = m.source_lladdr
        if sll is not None and not unspecified:
            run(self.neighs.learn(src, sll.pack(), now), now)
        return False

    # --- ND from the host ---------------------------------------------------------------------

    def host_nd(self, packet: bytes) -> bytes:
        """An ND message the host sent: its link-layer option replaced by ours (the host's
        stack sits on a TUN device and has no IPoIB address to put there)."""
        try:
            p = parse_ipv6(packet)
            msg = nd.set_lla_option(p.src, p.dst, p.payload, self.hwaddr)
        except WireError:
            return packet
        return build_ipv6(p.src, p.dst, IpProto.ICMPV6, msg, hop_limit=p.hop_limit)


def parse_interface(addr: IpIface | str) -> IpIface:
    """An address with its prefix (``"10.0.0.1/24"``); a bare address gets /32 or /128."""
    return addr if isinstance(addr, IPv4Interface | IPv6Interface) else ip_interface(addr)
