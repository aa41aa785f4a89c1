"""In-process wires with no InfiniBand: the benchmark's bare relay and the stand-in wire.

- :func:`relay_pair` gives two endpoints cross-connected with no processing at all: what one
  host sends, the other receives. Run by the same :class:`~ipoib.host.runtime.Runtime` and
  :class:`~ipoib.host.daemon.Daemon` as ipoib itself (``python -m ipoib.host.relay``), it is
  the floor the data path is measured against: two TUN devices, one Python process, the same
  loop, zero work per packet.
- :class:`StandInWire` delivers IP packets between any number of hosts by destination
  address (multicast and broadcast to every other host). It is the STAND-IN that lets
  ``ipoib up`` run end to end before the IPoIB driver and the fabric are wired into
  :func:`ipoib.host.daemon.build`; it is not IPoIB and resolves nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from typing import Any

from .control import Reply
from .daemon import DEFAULT_MTU, Daemon, Host
from .netns import HostError, default_prefix
from .state import RunDir, cleanup

RELAY_SUBNET = IPv4Network("10.77.0.0/24")

_EMPTY: tuple[bytes, ...] = ()


class RelayEndpoint:
    """One side of the bare relay: every packet goes to the peer untouched."""

    __slots__ = ("name", "out", "peer")

    carrier = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer: RelayEndpoint = self
        self.out: list[bytes] = []

    def transmit(self, packet: bytes, now: float) -> None:
        """Queue ``packet`` for the peer's host."""
        self.peer.out.append(packet)

    def transmit_batch(self, packets: list[bytes], now: float) -> None:
        """Queue a read batch for the peer's host (the runtime's batch hand-over)."""
        self.peer.out.extend(packets)

    def drain_to_host(self) -> Iterable[bytes]:
        """What the peer sent since the last drain."""
        out = self.out
        if not out:
            return _EMPTY
        self.out = []
        return out

    def describe(self) -> Mapping[str, Any]:
        """Nothing to describe: no LID, GID or QPN behind a relay."""
        return {"wire": "relay"}


def relay_pair(a: str = "a", b: str = "b") -> tuple[RelayEndpoint, RelayEndpoint]:
    """Two relay endpoints wired to each other."""
    ea, eb = RelayEndpoint(a), RelayEndpoint(b)
    ea.peer, eb.peer = eb, ea
    return ea, eb


STANDIN_DROPS = ("not_ip", "no_host", "to_self")
"""Why the stand-in wire discards a packet."""


class StandInEndpoint:
    """One host on the :class:`StandInWire`."""

    __slots__ = ("carrier", "name", "out", "rx", "tx", "wire")

    def __init__(self, name: str, wire: StandInWire) -> None:
        self.name = name
        self.wire = wire
        self.out: list[bytes] = []
        self.carrier = False
        self.tx = 0
        self.rx = 0

    def transmit(self, packet: bytes, now: float) -> None:
        """Deliver by destination address (every other host for multicast/broadcast)."""
        self.tx += 1
        self.wire.deliver(self, packet)

    def drain_to_host(self) -> Iterable[bytes]:
        """Packets delivered to this host since the last drain."""
        out = self.out
        if not out:
            return _EMPTY
        self.out = []
        self.rx += len(out)
        return out

    def describe(self) -> Mapping[str, Any]:
        """No InfiniBand identity: the stand-in has none."""
        return {"wire": "stand-in"}


class StandInWire:
    """IP packets between hosts by destination address; a pumpable whose links come up on
    the first :meth:`process`, so that waiting for carrier is exercised.
    """

    def __init__(self, broadcast: Iterable[IPv4Address] = ()) -> None:
        self.endpoints: list[StandInEndpoint] = []
        self.by_addr: dict[bytes, StandInEndpoint] = {}
        self.broadcast = {a.packed for a in broadcast} | {b"\xff\xff\xff\xff"}
        self.drops: Counter[str] = Counter()
        self._up = False

    def endpoint(self, name: str,
                 addresses: Iterable[IPv4Address | IPv6Address]) -> StandInEndpoint:
        """A new host on the wire, reachable at ``addresses``."""
        ep = StandInEndpoint(name, self)
        self.endpoints.append(ep)
        for a in addresses:
            self.by_addr[a.packed] = ep
        return ep

    def deliver(self, src: StandInEndpoint, packet: bytes) -> None:
        """Queue ``packet`` on the endpoint(s) its destination names; count what cannot go."""
        version = packet[0] >> 4 if packet else 0
        if version == 4 and len(packet) >= 20:
            dst = packet[16:20]
            group = dst[0] >= 224 or dst in self.broadcast
        elif version == 6 and len(packet) >= 40:
            dst = packet[24:40]
            group = dst[0] == 0xFF
        else:
            self.drops["not_ip"] += 1
            return
        if group:
            for ep in self.endpoints:
                if ep is not src and ep.carrier:
                    ep.out.append(packet)
            return
        to = self.by_addr.get(dst)
        if to is None or not to.carrier:
            self.drops["no_host"] += 1
        elif to is src:
            self.drops["to_self"] += 1
        else:
            to.out.append(packet)

    def process(self, now: float) -> None:
        """Bring every link up on the first call (there is no SM to wait for)."""
        if not self._up:
            self._up = True
            for ep in self.endpoints:
                ep.carrier = True

    def get_timer(self) -> float | None:
        """The stand-in has no timers."""
        return None

    def counters(self) -> dict[str, Any]:
        """Per-host packet counts and the wire's drops."""
        return {
            "hosts": {ep.name: {"tx_packets": ep.tx, "rx_packets": ep.rx}
                      for ep in self.endpoints},
            "drops": {r: self.drops[r] for r in STANDIN_DROPS},
        }

    def counters_view(self, req: Mapping[str, Any]) -> Reply:
        """The ``counters`` control command while the stand-in is in place."""
        data = self.counters()
        host = req.get("host")
        if host is not None:
            if host not in data["hosts"]:
                raise HostError(f"no host {host!r}")
            data["hosts"] = {host: data["hosts"][host]}
        lines = ["stand-in wire (no InfiniBand): per-host packets"]
        lines += [f"  {n}: tx_packets {c['tx_packets']} rx_packets {c['rx_packets']}"
                  for n, c in data["hosts"].items()]
        lines += [f"  drop_{r}: {v}" for r, v in data["drops"].items()]
        return Reply(data, "\n".join(lines))


def relay_daemon(prefix: str | None = None, *, run_dir: RunDir | None = None,
                 subnet: IPv4Network = RELAY_SUBNET, mtu: int = DEFAULT_MTU) -> Daemon:
    """The bare relay as a daemon: namespaces ``<prefix>relay-a`` and ``<prefix>relay-b``,
    ``ib0`` at ``mtu`` in each with the first two addresses of ``subnet``.
    """
    prefix = default_prefix() if prefix is None else prefix
    ea, eb = relay_pair("relay-a", "relay-b")
    hosts = []
    for i, ep in enumerate((ea, eb)):
        hosts.append(Host(
            name=ep.name, netns=f"{prefix}{ep.name}",
            ipv4=IPv4Interface((subnet.network_address + 1 + i, subnet.prefixlen)),
            ipv6=IPv6Interface(f"fe80::{i + 1}/64"), mtu=mtu, endpoint=ep,
            describe=ep.describe))
    return Daemon(hosts, (), run_dir=run_dir, topology="<bare relay>")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ipoib.host.relay``: run the bare relay until SIGINT/SIGTERM/``stop``.

    Prints one JSON line (the hosts) on stdout once both links are up.
    """
    ap = argparse.ArgumentParser(prog="python -m ipoib.host.relay", description=__doc__)
    ap.add_argument("--prefix", default=None, help="namespace name prefix")
    ap.add_argument("--subnet", type=IPv4Network, default=RELAY_SUBNET)
    ap.add_argument("--mtu", type=int, default=DEFAULT_MTU)
    args = ap.parse_args(argv)
    run_dir = RunDir()
    try:
        run_dir.acquire()
        stale = run_dir.load()
        if stale is not None:
            cleanup(stale, run_dir)
        daemon = relay_daemon(args.prefix, run_dir=run_dir, subnet=args.subnet, mtu=args.mtu)

        def ready(rows: list[dict[str, Any]]) -> None:
            print(json.dumps({"ready": rows}), flush=True)

        daemon.run(ready)
    except HostError as e:
        print(f"relay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        run_dir.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
