"""IPoIB devices on a real fabric brought up by the embedded SM, pumped on a virtual clock.

The tests play the hosts: they hand IP packets to ``transmit`` and read what ``drain_to_host``
gives back. Faults come from the fabric's fault API, or from the SM side (a slow SA is the
SA agent's deliveries held back on the fabric's own timer heap).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from ipoib.fabric import Fabric, Topology
from ipoib.fabric.agents import ReceivedMad
from ipoib.fabric.hca import AH, CQ, PD, QP, AHAttr, QPAttr, QPInitAttr, QPType, SendWR
from ipoib.netdev.device import DeviceConfig, IpoibDevice
from ipoib.sm.agent import SmBinding, run_until
from ipoib.sm.manager import SmConfig
from ipoib.wire.ip import IpProto, build_icmpv4, build_icmpv6, build_ipv4, build_ipv6
from ipoib.wire.mad import MgmtClass

from ..clock import VirtualClock


def v4(n: int) -> str:
    """Host ``n``'s IPv4 address on 10.0.0.0/16."""
    return f"10.0.{n >> 8}.{n & 0xFF}"


def v6(n: int) -> str:
    """Host ``n``'s IPv6 address on fd00::/64."""
    return f"fd00::{n:x}"


def echo(src: str, dst: str, seq: int, size: int = 56, *, reply: bool = False) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request/reply whose payload names ``seq``."""
    body = seq.to_bytes(4, "big") + bytes(seq % 251 for _ in range(size))
    if ":" in src:
        msg = build_icmpv6(src, dst, 129 if reply else 128, 0, b"\0\1" + body[:2] + body)
        return build_ipv6(src, dst, IpProto.ICMPV6, msg)
    msg = build_icmpv4(0 if reply else 8, 0, b"\0\1" + body[:2] + body)
    return build_ipv4(src, dst, IpProto.ICMP, msg)


def seq_of(packet: bytes) -> int:
    """The ``seq`` an :func:`echo` packet carries."""
    off = 40 if packet[0] >> 4 == 6 else (packet[0] & 0xF) * 4
    return int.from_bytes(packet[off + 8:off + 12], "big")


@dataclass
class Net:
    """A fabric, its SM and one IPoIB device per chosen HCA, on one virtual clock."""

    fabric: Fabric
    binding: SmBinding | None
    clock: VirtualClock
    devs: dict[str, IpoibDevice] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> IpoibDevice:
        return self.devs[name]

    def add(self, name: str, n: int, config: DeviceConfig | None = None, *,
            pkey: int = 0xFFFF, addresses: bool = True, key: str | None = None) -> IpoibDevice:
        """Open a device on ``name`` with addresses 10.0.x.y/16 and fd00::n/64; it is
        ``net[key]`` (the HCA's name unless told)."""
        dev = IpoibDevice(self.fabric.context(name), pkey=pkey,
                          config=config or DeviceConfig(name=f"ib-{key or name}"))
        dev.open(self.clock.now)
        if addresses:
            dev.add_address(f"{v4(n)}/16", self.clock.now)
            dev.add_address(f"{v6(n)}/64", self.clock.now)
        self.devs[key or name] = dev
        self.index[key or name] = n
        self.clock.add(dev)
        return dev

    def start_sm(self, node: str | None = None, config: SmConfig | None = None, *,
                 guid2lid: dict[int, int] | None = None) -> SmBinding:
        """Stop the running SM, if any, and start another (a failover, a restart)."""
        if self.binding is not None:
            self.binding.close()
            self.clock.pumpables.remove(self.binding)
        self.binding = SmBinding(self.fabric, node or self.fabric.topology.nodes[0].name,
                                 config=config, guid2lid=guid2lid)
        self.clock.add(self.binding)
        self.binding.start(self.clock.now)
        return self.binding

    def port_guid(self, name: str) -> int:
        """The GUID of an HCA's port 1, as the SM keys its guid2lid."""
        return self.fabric.node(name).ports[1].guid

    def up(self, timeout: float = 30.0) -> float:
        """Run until every device has carrier."""
        return self.clock.run_until(lambda: all(d.carrier for d in self.devs.values()),
                                    timeout)

    def send(self, src: str, dst: str, count: int = 1, *, start: int = 0, size: int = 56,
             ipv6: bool = False, settle: bool = True) -> list[bytes]:
        """``count`` echo requests from ``src`` to ``dst``; the packets sent."""
        a, b = self.index[src], self.index[dst]
        s, d = (v6(a), v6(b)) if ipv6 else (v4(a), v4(b))
        pkts = [echo(s, d, start + i, size) for i in range(count)]
        for p in pkts:
            self.devs[src].transmit(p, self.clock.now)
        if settle:
            self.clock.settle()
        return pkts

    def received(self, name: str) -> list[bytes]:
        return self.devs[name].drain_to_host()

    def run_until(self, name: str, want: int, timeout: float = 30.0) -> list[bytes]:
        """Advance until ``name`` has received ``want`` packets; return them."""
        got: list[bytes] = []

        def enough() -> bool:
            got.extend(self.devs[name].drain_to_host())
            return len(got) >= want

        self.clock.run_until(enough, timeout)
        return got

    def path_queries(self, name: str) -> int:
        """PathRecord queries the device sent (retries not counted)."""
        return self.devs[name].sa.stats["sent_path"]

    def slow_sa(self, delay: float) -> None:
        """Hold every SA request back ``delay`` seconds before the SM sees it."""
        assert self.binding is not None
        agent = self.binding.agents[MgmtClass.SUBN_ADM]
        inner = self.binding._rx
        fabric = self.fabric

        def late(rx: ReceivedMad) -> None:
            fabric.schedule(fabric.now + delay, lambda: inner(rx))

        agent.handler = late if delay > 0 else inner


def start(topology: Topology, hosts: Iterable[str] | None = None, *,
          config: DeviceConfig | None = None, sm: SmConfig | None = None,
          sm_node: str | None = None, up: bool = True, with_sm: bool = True) -> Net:
    """Bring ``topology`` up with the embedded SM (on the first switch unless told), open a
    device on each of ``hosts`` (every HCA by default) and wait for carrier. Without
    ``with_sm`` the devices open on a subnet no SM has configured yet."""
    fabric = Fabric(topology)
    net = Net(fabric, None, VirtualClock([fabric]))
    if with_sm:
        binding = net.start_sm(sm_node, sm)
        run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=60.0)
        assert binding.sm.subnet_up, list(binding.sm.log)
        net.clock.now = fabric.now
    names = list(hosts) if hosts is not None else [n.name for n in topology.cas]
    for i, name in enumerate(names, start=1):
        net.add(name, i, config)
    if up and with_sm:
        net.up()
    return net


def forge(net: Net, target: str, payload: bytes, via: str = "hca-8") -> None:
    """Send ``payload`` (IPoIB header included) to ``target``'s QP from a bare UD QP on
    ``via`` (an HCA without a device), with the link's Q_Key."""
    dev = net[target]
    ctx = net.fabric.context(via)
    pd = PD(ctx)
    cq = CQ(ctx, 64)
    qp = QP(pd, QPInitAttr(qp_type=QPType.UD, scq=cq, rcq=cq), QPAttr(qkey=dev.qkey))
    wr = SendWR(1, payload)
    wr.set_wr_ud(AH(pd, AHAttr(dlid=dev.lid)), dev.qpn, dev.qkey)
    qp.post_send(wr)


def ip4(text: str) -> bytes:
    return IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return IPv6Address(text).packed
