"""The host's ``ib0``: a TUN device inside the host's namespace, its fd kept by the daemon.

The device is made with ``IFF_TUN | IFF_NO_PI``: each ``read`` returns one IP packet and
each ``write`` injects one, with no Ethernet header and no packet-information prefix, which is
exactly what an IPoIB interface hands the stack once its 4-byte encapsulation header is gone.
It is opened from a thread that has entered the namespace, so it is created there, while the
fd (non-blocking) lives on in the daemon. It is not persistent: closing the fd removes it.

A host's device is also opened with ``IFF_VNET_HDR``: every packet then carries a 10-byte
``virtio_net_hdr`` (:mod:`ipoib.wire.vnet`) both ways, which lets the driver hand the stack
coalesced TCP runs (GRO, :mod:`ipoib.netdev.gro`). With ``offload`` the device also takes
checksum offload and IPv4 TSO from the stack (``TUNSETOFFLOAD`` with ``TUN_F_CSUM |
TUN_F_TSO4``, the features Linux's IPoIB has on an HCA with UD LSO): TCP then arrives as
super-packets of up to 64 KiB, and TCP/UDP packets with their checksum left to the driver,
each said so in its header (:meth:`ipoib.netdev.device.IpoibDevice.transmit_offload`).
Without it, what the stack sends is MTU-sized with its checksums done.

The kernel makes TUN devices ``POINTOPOINT | NOARP``, so it neither resolves neighbours nor
runs DAD on them; the driver behind the fd does ARP itself. IPv6 address generation is turned
off so that the only link-local address is the one the caller derives from the port GUID
(RFC 4391 section 8). Carrier starts off and follows the driver (``set_carrier``), as a real
IPoIB interface has no carrier until it has joined the broadcast group.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_address
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from ..wire.vnet import PLAIN, VNET_HDR_SIZE
from . import netns

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
"""``_IOW('T', 202, int)``: attach the fd to a new device (linux/if_tun.h)."""
TUNSETCARRIER = 0x400454E2
"""``_IOW('T', 226, int)``: set the device's carrier (Linux 5.0 and later)."""
TUNSETOFFLOAD = 0x400454D0
"""``_IOW('T', 208, unsigned int)``: the offloads the reader takes (``TUN_F_*``)."""
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
OFFLOAD_READ = 0x10000
"""Bytes a read may return with offloads on: a super-packet of up to 65535 bytes of IP."""
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFA_F_NODAD = 0x02
IN6_ADDR_GEN_MODE_NONE = 1
MULTICAST_V4 = IPv4Network("224.0.0.0/4")
"""Routed to ``ib0`` so that applications can send to groups with no other route."""
DEFAULT_IFNAME = "ib0"
READ_BUDGET = 64
"""Packets read from one fd before letting the loop serve others (the NAPI budget)."""

_IFREQ = struct.Struct("16sH22x")
_INT = struct.Struct("i")


@dataclass(frozen=True, slots=True)
class Route:
    """A route through ``ib0``: on-link when ``gateway`` is None, else via ``gateway``."""

    dst: IPv4Network | IPv6Network
    gateway: str | None = None


@dataclass(slots=True)
class Tun:
    """An open TUN device: the fd the runtime polls and where the device lives."""

    fd: int
    ifname: str
    netns: str
    ifindex: int
    mtu: int
    vnet_hdr: int = 0
    """Bytes of ``virtio_net_hdr`` in front of every packet read or written (0: none)."""
    offload: bool = False
    """Checksum offload and TSO are on: reads may be partial or super-packets."""

    def set_carrier(self, on: bool) -> None:
        """Turn the device's carrier on or off (the kernel stops queueing to it when off)."""
        fcntl.ioctl(self.fd, TUNSETCARRIER, _INT.pack(1 if on else 0))

    def read_batch(self, budget: int = READ_BUDGET) -> list[bytes]:
        """Up to ``budget`` packets, stopping at EAGAIN (the slow path; the runtime inlines it)."""
        out: list[bytes] = []
        read, fd, skip = os.read, self.fd, self.vnet_hdr
        size = (OFFLOAD_READ if self.offload else self.mtu) + skip
        try:
            while len(out) < budget:
                out.append(read(fd, size)[skip:])
        except BlockingIOError:
            pass
        return out

    def write(self, packet: bytes) -> None:
        """Hand one IP packet to the namespace's stack."""
        os.write(self.fd, PLAIN + packet if self.vnet_hdr else packet)

    def close(self) -> None:
        """Close the fd, which removes the device."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_fd(ifname: str = DEFAULT_IFNAME, *, vnet_hdr: bool = False,
            offload: bool = False) -> int:
    """A non-blocking fd on a new ``IFF_TUN | IFF_NO_PI`` device in the caller's namespace,
    with ``IFF_VNET_HDR`` when ``vnet_hdr``, and checksum offload and TSO when ``offload``
    (which needs the header)."""
    if offload and not vnet_hdr:
        raise netns.HostError("TUN offloads need IFF_VNET_HDR")
    if len(ifname.encode()) >= 16:
        raise netns.HostError(f"interface name {ifname!r} is longer than 15 bytes")
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(ifname.encode(), flags))
        if offload:
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create(ns: str, ifname: str = DEFAULT_IFNAME, *, mtu: int,
           ipv4: IPv4Interface | None = None, ipv6: Sequence[IPv6Interface] = (),
           routes: Iterable[Route] = (), carrier: bool = False,
           vnet_hdr: bool = False, offload: bool = False) -> Tun:
    """Create, address and bring up ``ifname`` in namespace ``ns``; the daemon keeps the fd.

    ``vnet_hdr`` opens it with ``IFF_VNET_HDR`` (the driver may then write GSO packets),
    ``offload`` also with checksum offload and TSO towards the driver.
    ``ipv4`` gets its prefix route from the kernel; ``ipv6`` addresses (a link-local one given
    by the caller) are added without DAD; ``routes`` are added on top, plus 224.0.0.0/4.
    """
    with netns.entered(ns):
        fd = open_fd(ifname, vnet_hdr=vnet_hdr, offload=offload)
        try:
            ipr = IPRoute()
        except BaseException:
            os.close(fd)
            raise
    tun = Tun(fd=fd, ifname=ifname, netns=ns, ifindex=0, mtu=mtu,
              vnet_hdr=VNET_HDR_SIZE if vnet_hdr else 0, offload=offload)
    try:
        (tun.ifindex,) = ipr.link_lookup(ifname=ifname)
        _configure(ipr, tun, ipv4, ipv6, routes, carrier)
    except BaseException:
        tun.close()
        raise
    finally:
        ipr.close()
    return tun


def _configure(ipr: Any, tun: Tun, ipv4: IPv4Interface | None, ipv6: Sequence[IPv6Interface],
               routes: Iterable[Route], carrier: bool) -> None:
    idx = tun.ifindex
    ipr.link("set", index=idx, af_spec={"attrs": [["AF_INET6", {"attrs": [
        ["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]}]]})
    ipr.link("set", index=idx, mtu=tun.mtu)
    tun.set_carrier(carrier)
    if ipv4 is not None:
        ipr.addr("add", index=idx, address=str(ipv4.ip), prefixlen=ipv4.network.prefixlen)
    for a in ipv6:
        ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen,
                 flags=IFA_F_NODAD)
    ipr.link("set", index=idx, state="up")
    add_routes(ipr, idx, [Route(MULTICAST_V4), *routes])


def add_routes(ipr: Any, ifindex: int, routes: Iterable[Route]) -> None:
    """Add ``routes`` through ``ifindex`` with an open ``IPRoute`` of the right namespace."""
    for r in routes:
        kw: dict[str, Any] = {"dst": str(r.dst), "oif": ifindex}
        if r.gateway is not None:
            kw["gateway"] = str(ip_address(r.gateway))
        ipr.route("add", **kw)


def link_info(ns: str, ifname: str = DEFAULT_IFNAME) -> dict[str, Any]:
    """What the namespace's stack says about ``ifname``: mtu, flags, carrier, addresses."""
    ipr = netns.iproute(ns)
    try:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise netns.HostError(f"no interface {ifname!r} in namespace {ns!r}")
        (link,) = ipr.get_links(idx[0])
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                 for a in ipr.get_addr(index=idx[0])]
        return {
            "ifindex": idx[0],
            "mtu": link.get_attr("IFLA_MTU"),
            "flags": link["flags"],
            "carrier": link.get_attr("IFLA_CARRIER"),
            "operstate": link.get_attr("IFLA_OPERSTATE"),
            "addresses": addrs,
        }
    finally:
        ipr.close()
