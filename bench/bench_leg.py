"""One leg of a ping inside the daemon, warm and cold: what the RTT ratio is made of.

A ping crosses the daemon twice: host A's TUN is read, the packet goes through the data path,
host B's TUN is written (B's kernel answers at once), and the same back. ``bench host`` times
that with real programs, where the machine's load moves the figures a lot; this takes the
kernel's side and the wake-ups out and times one leg alone, in process:
``Runtime._on_readable`` for a 84-byte ICMP echo read from a socketpair standing for A's TUN,
until the packet is written to B's, on

- **the bare relay** (the baseline): the same runtime with :func:`ipoib.host.relay.relay_pair`;
- **ipoib**: the daemon's fabric, embedded SM and 8 devices (``IbNet`` on
  ``topogen.fat_tree(8)``), between ``hca-1`` and ``hca-8``, resolution done first.

**warm**: legs back to back. **swept**: a 64 MiB array is swept before each leg, which
leaves the daemon's code and data out of the core's caches. **idle**: the leg starts after
the process slept as long as the ping's spacing (``bench_relay.PING_INTERVAL``), the way a
ping finds the daemon: on a virtual machine whose core sleeps meanwhile, that costs more
than the sweep, and more the more code the leg runs. Medians of 300 legs (100 idle).
"""

from __future__ import annotations

import asyncio
import socket
import time
from ipaddress import IPv4Interface

import numpy as np

from bench.bench_relay import PING_INTERVAL
from bench.common import Result
from ipoib.fabric.topogen import fat_tree
from ipoib.host.ibnet import IbNet
from ipoib.host.relay import relay_pair
from ipoib.host.runtime import Attachment, Runtime
from ipoib.wire.ip import IpProto, build_icmpv4, build_ipv4
from ipoib.wire.vnet import PLAIN

LEGS = 300
IDLE_LEGS = 100
RELAY = "bare relay leg"


class _SocketTun:
    """A TUN stand-in: a SOCK_SEQPACKET socketpair keeps one packet per read and write."""

    def __init__(self, name: str, offload: bool) -> None:
        self.host, self.dev = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.dev.setblocking(False)
        self.host.setblocking(False)
        self.fd, self.mtu, self.vnet_hdr, self.offload = self.dev.fileno(), 2044, 10, offload
        self.netns = name

    def set_carrier(self, on: bool) -> None:
        """Nothing to tell: no kernel device behind it."""

    def close(self) -> None:
        self.host.close()
        self.dev.close()


Leg = tuple[Runtime, Attachment, _SocketTun, _SocketTun, bytes]


def _echo(src: str, dst: str) -> bytes:
    return PLAIN + build_ipv4(src, dst, IpProto.ICMP, build_icmpv4(8, 0, bytes(60)))


def _relay(loop: asyncio.AbstractEventLoop) -> Leg:
    ea, eb = relay_pair()
    rt = Runtime(())
    rt._loop = loop
    a, b = _SocketTun("a", False), _SocketTun("b", False)
    att = rt.attach(a, ea)
    rt.attach(b, eb)
    return rt, att, a, b, _echo("10.77.0.1", "10.77.0.2")


def _ipoib(loop: asyncio.AbstractEventLoop) -> Leg:
    topo = fat_tree(8)
    net = IbNet(topo)
    names = [n.name for n in topo.nodes if n.name.startswith("hca-")]
    for i, name in enumerate(names):
        net.add_host(name, [IPv4Interface(f"10.10.0.{i + 1}/16")])
    rt = Runtime(net.pumpables)
    rt._loop = loop
    tuns = {n: _SocketTun(n, net.devices[n].tx_offload) for n in names}
    atts = {n: rt.attach(tuns[n], net.devices[n]) for n in names}
    deadline = time.monotonic() + 30
    while not rt.all_carrier:
        if time.monotonic() > deadline:
            raise RuntimeError("the hosts got no carrier")
        rt.pump(loop.time())
        time.sleep(0.001)
    a, b = names[0], names[-1]
    return rt, atts[a], tuns[a], tuns[b], _echo("10.10.0.1", f"10.10.0.{len(names)}")


def _legs(leg: Leg, loop: asyncio.AbstractEventLoop, sweep: np.ndarray) -> list[float]:
    """Warm, swept and idle median µs of one leg; the first packet (resolution) is not
    timed."""
    rt, att, a, b, pkt = leg
    a.host.send(pkt)
    rt._on_readable(att)
    deadline = time.monotonic() + 10
    while True:
        try:
            b.host.recv(70_000)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError("the first packet never arrived") from None
            rt.pump(loop.time())
            time.sleep(0.0005)
    out = []
    for mode, legs in (("warm", LEGS), ("swept", LEGS), ("idle", IDLE_LEGS)):
        took = []
        for _ in range(legs):
            a.host.send(pkt)
            if mode == "swept":
                sweep[::64] += 1
            elif mode == "idle":
                time.sleep(PING_INTERVAL)
            t = time.perf_counter_ns()
            rt._on_readable(att)
            took.append(time.perf_counter_ns() - t)
            if b.host.recv(70_000)[10:] != pkt[10:]:
                raise RuntimeError("the leg delivered something else")
        took.sort()
        out.append(took[legs // 2] / 1000)
    return out


def run() -> list[Result]:
    """Relay and ipoib legs, warm and cold, with the relay's as baselines."""
    loop = asyncio.new_event_loop()
    sweep = np.zeros(64 << 20, dtype=np.uint8)
    relay = _relay(loop)
    ipoib = _ipoib(loop)
    try:
        r = _legs(relay, loop, sweep)
        i = _legs(ipoib, loop, sweep)
    finally:
        for leg in (relay, ipoib):
            leg[2].close()
            leg[3].close()
        loop.close()
    notes = {"warm": "median of 300; A's TUN read to B's TUN written",
             "swept": "caches swept (64 MiB) before each leg",
             "idle": f"after {PING_INTERVAL * 1000:g} ms asleep, as a ping finds the daemon"}
    out = []
    for k, mode in enumerate(notes):
        base = f"{RELAY}, {mode}"
        out.append(Result(base, r[k], "us", base, r[k], notes[mode]))
        out.append(Result(f"ipoib leg, {mode}", i[k], "us", base, r[k],
                          "hca-1 -> hca-8, 2 hops" if mode == "warm" else ""))
    return out
