"""A virtual clock and table builders for the netdev tests: no fabric, no sockets, no sleeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol, TypeVar

from ipoib.netdev.actions import Drop, Frame, StartPathQuery
from ipoib.netdev.counters import Counters
from ipoib.netdev.neigh import NeighConfig, NeighTable
from ipoib.netdev.path import AhReaper, PathCache
from ipoib.wire.ipoib import EtherType, HwAddr
from ipoib.wire.sa import PathRecord

T = TypeVar("T")

PREFIX = bytes.fromhex("fe80000000000000")


def gid(n: int) -> bytes:
    """Port GID fe80::2:c903:0:<n>."""
    return PREFIX + (0x0002C90300000000 | n).to_bytes(8, "big")


def hwaddr(n: int, qpn: int = 0x48, flags: int = 0) -> bytes:
    """The 20-byte IPoIB address of host ``n``."""
    return HwAddr(flags=flags, qpn=qpn, gid=gid(n)).pack()


def ip4(n: int) -> bytes:
    """10.x.y.z, the ``n``-th address of 10/8."""
    return IPv4Address(0x0A000000 + n).packed


def frame(i: int) -> Frame:
    """A recognisable IPv4 packet."""
    return Frame(EtherType.IPV4, b"pkt%d" % i)


def path_record(dgid: bytes, dlid: int, *, sl: int = 0, rate: int = 3, mtu: int = 4,
                hop_limit: int = 0, tclass: int = 0, flow_label: int = 0) -> PathRecord:
    """A PathRecord as an SA answers it (SGID/SLID irrelevant here)."""
    return PathRecord(dgid=dgid, sgid=gid(1), dlid=dlid, slid=1, sl=sl, rate=rate, mtu=mtu,
                      hop_limit=hop_limit, tclass=tclass, flow_label=flow_label,
                      rate_selector=2, mtu_selector=2, pkey=0xFFFF, numb_path=1)


class Timed(Protocol):
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> Sequence[Any]: ...


def run(machine: Timed, start: float, until: float) -> list[tuple[float, Any]]:
    """Fire ``machine``'s timers in order up to ``until``; the actions with their times."""
    out: list[tuple[float, Any]] = []
    now = start
    while (t := machine.get_timer()) is not None and t <= until:
        now = max(now, t)
        out += [(now, a) for a in machine.handle_timer(now)]
    return out


def of(actions: Sequence[Any], cls: type[T]) -> list[T]:
    """The actions of one type (accepts bare actions or (time, action) pairs)."""
    flat = [a[1] if isinstance(a, tuple) else a for a in actions]
    return [a for a in flat if isinstance(a, cls)]


def dropped(actions: Sequence[Any], reason: str) -> int:
    """Packets dropped for ``reason`` in ``actions``."""
    return sum(d.n for d in of(actions, Drop) if d.reason == reason)


@dataclass
class Stack:
    """One interface's neighbour table over its path cache, sharing counters and a reaper."""

    counters: Counters = field(default_factory=Counters)
    reaper: AhReaper = field(default_factory=AhReaper)
    config: NeighConfig = field(default_factory=NeighConfig)
    path_queue_len: int = 3
    max_paths: int = 4096
    paths: PathCache = field(init=False)
    neighs: NeighTable = field(init=False)

    def __post_init__(self) -> None:
        self.paths = PathCache(self.reaper, self.counters, queue_len=self.path_queue_len,
                               max_paths=self.max_paths)
        self.neighs = NeighTable(self.paths, self.counters, self.config)

    def query_for(self, actions: Sequence[Any], dgid: bytes) -> StartPathQuery:
        """The one StartPathQuery for ``dgid`` in ``actions``."""
        qs = [q for q in of(actions, StartPathQuery) if q.dgid == dgid]
        assert len(qs) == 1, qs
        return qs[0]

    def resolve(self, ip: bytes, hw: bytes, now: float, dlid: int = 4) -> list[Any]:
        """ARP reply for ``ip``, then the SA's answer for its GID if a query went out."""
        acts: list[Any] = list(self.neighs.confirm(ip, hw, now))
        qs = [q for q in of(acts, StartPathQuery) if q.dgid == hw[4:]]
        for q in qs:
            acts += self.neighs.path_done(q.dgid, q.seq, path_record(q.dgid, dlid), now)
        return acts
