"""The path cache: destination GID → PathRecord → one shared address handle.

An ARP reply gives a neighbour's GID but not how to reach it; the SA's PathRecord does (DLID,
SL, rate, MTU, GRH). Linux keeps one ``struct ipoib_path`` per destination GID, so one query
serves every neighbour (IP address, child interface, QPN) behind that GID, and the AH built from
the answer is shared and reference counted. This module is that cache, sans-I/O:

- :meth:`PathCache.want` finds or creates the path and, when it has no valid AH and no query in
  flight, returns :class:`StartPathQuery` — at most one query per GID at a time.
- :meth:`PathCache.complete` builds the AH (Linux ``ib_init_ah_attr_from_path``: a GRH only when
  the path's HopLimit > 0) and releases packets queued on the path (ARP replies, which have no
  neighbour). The neighbour table installs the AH in the path's neighbours.
- :meth:`PathCache.fail` drops the path and its queue; the neighbour table fails its neighbours.
  There is no retry timer here, as in Linux: the next packet starts a new query.
- Flushes: :meth:`flush_light` marks AHs invalid (re-queried lazily on the next transmit);
  :meth:`flush` forgets every path (normal and heavy flush, device down).
- Paths do not age (Linux neither); the table is bounded by ``max_paths``, evicting the oldest
  idle path (no neighbour, no queue, no query) when full.

:class:`AhReaper` is Linux's deferred AH freeing: an AH whose last holder let go is destroyed
only once the send that last used it has completed (``ah.last_send < reaper.tx_done``), checked
about once a second. The path cache and the multicast table share one reaper per interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..fabric.verbs import GlobalRoute
from ..wire.ipoib import HWADDR_LEN
from ..wire.sa import PathRecord
from .actions import (
    Action,
    Ah,
    AhAttr,
    CancelPathQuery,
    CreateAh,
    DestroyAh,
    Drop,
    Frame,
    PathSend,
    StartPathQuery,
)
from .counters import Counters

__all__ = [
    "RATE_MBPS", "AhReaper", "Path", "PathCache", "PathView", "ah_attr_from_path",
    "debugfs_gid",
]

RATE_MBPS: dict[int, int] = {
    2: 2500, 5: 5000, 3: 10000, 6: 20000, 4: 30000, 7: 40000, 8: 60000, 9: 80000, 10: 120000,
    11: 14062, 12: 56250, 13: 112500, 14: 168750, 15: 25781, 16: 103125, 17: 206250,
    18: 309375, 19: 28125, 20: 53125, 21: 425000, 22: 637500,
}
"""Linux ``ib_rate_to_mbps``: the Mb/s that debugfs prints as ``%d.%d Gb/sec``."""

EVICT_SCAN = 64
"""Paths looked at per eviction attempt; those that cannot go are rotated to the back."""


def ah_attr_from_path(rec: PathRecord) -> AhAttr:
    """The AH for a PathRecord (Linux ``ib_init_ah_attr_from_path``; wire-formats.md §7.5)."""
    grh = None
    if rec.hop_limit > 0:
        grh = GlobalRoute(dgid=rec.dgid, flow_label=rec.flow_label, hop_limit=rec.hop_limit,
                      traffic_class=rec.tclass)
    return AhAttr(dlid=rec.dlid, sl=rec.sl, static_rate=rec.rate, grh=grh, mtu=rec.mtu)


def debugfs_gid(gid: bytes) -> str:
    """A GID as IPoIB debugfs prints it: eight ``%x`` groups, nothing compressed or padded."""
    return ":".join(f"{gid[i] << 8 | gid[i + 1]:x}" for i in range(0, 16, 2))


class AhReaper:
    """Creates AHs, counts their holders and destroys dead ones once no send uses them.

    ``tx_done`` is set by the glue: every send with sequence number below it has completed.
    """

    __slots__ = ("_dead", "_next", "_next_id", "created", "destroyed", "interval", "tx_done")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.tx_done = 0
        self.created = 0
        self.destroyed = 0
        self._next_id = 1
        self._dead: list[Ah] = []
        self._next: float | None = None

    def create(self, attr: AhAttr) -> Ah:
        """A new AH with one holder (the caller); the caller emits :class:`CreateAh`."""
        ah = Ah(self._next_id, attr)
        self._next_id += 1
        self.created += 1
        return ah

    @staticmethod
    def acquire(ah: Ah) -> Ah:
        """One more holder."""
        ah.refs += 1
        return ah

    def release(self, ah: Ah, now: float) -> None:
        """One holder fewer; at zero the AH waits for the reaper."""
        if ah.refs <= 0:
            raise ValueError(f"{ah!r} released more often than held")
        ah.refs -= 1
        if ah.refs == 0:
            ah.valid = False
            self._dead.append(ah)
            if self._next is None:
                self._next = now + self.interval

    @property
    def dead(self) -> int:
        """AHs without holders that are not destroyed yet."""
        return len(self._dead)

    def get_timer(self) -> float | None:
        """When the next reap is due (None while nothing is dead)."""
        return self._next

    def handle_timer(self, now: float) -> list[Action]:
        """Destroy the dead AHs whose last send has completed; try again later for the rest."""
        if self._next is None or now < self._next:
            return []
        done = self.tx_done
        keep = [ah for ah in self._dead if ah.last_send >= done]
        out: list[Action] = [DestroyAh(ah) for ah in self._dead if ah.last_send < done]
        self.destroyed += len(out)
        self._dead = keep
        self._next = now + self.interval if keep else None
        return out

    def reap_all(self) -> list[Action]:
        """Destroy every dead AH now: the glue calls this once the send queue is drained."""
        out: list[Action] = [DestroyAh(ah) for ah in self._dead]
        self.destroyed += len(out)
        self._dead = []
        self._next = None
        return out


class Path:
    """One destination GID: its PathRecord, AH, query state, neighbours and queued packets."""

    __slots__ = ("ah", "created", "dgid", "neighs", "querying", "queue", "record", "seq")

    def __init__(self, dgid: bytes, now: float) -> None:
        self.dgid = dgid
        self.record: PathRecord | None = None
        self.ah: Ah | None = None
        self.querying = False
        self.seq = 0
        self.neighs: dict[bytes, None] = {}  # IPs of its neighbours, in attach order
        self.queue: list[tuple[bytes, Frame]] = []
        self.created = now

    @property
    def valid(self) -> bool:
        """An AH is installed and not invalidated by a light flush."""
        return self.ah is not None and self.ah.valid

    def __repr__(self) -> str:
        return (f"Path({debugfs_gid(self.dgid)}, ah={self.ah!r}, querying={self.querying}, "
                f"neighs={len(self.neighs)}, queued={len(self.queue)})")


@dataclass(frozen=True, slots=True)
class PathView:
    """One path as ``ibX_path`` shows it, plus what debugfs leaves out."""

    gid: str
    complete: bool
    dlid: int
    sl: int
    rate: int
    rate_mbps: int
    mtu: int
    querying: bool
    valid: bool
    neighbours: int
    queued: int

    def format(self) -> str:
        """The debugfs text (Linux ``ipoib_path_seq_show``)."""
        s = f"GID: {self.gid}\n  complete: {'yes' if self.complete else 'no':>6}\n"
        if self.dlid:
            mbps = self.rate_mbps
            s += (f"  DLID:     0x{self.dlid:04x}\n  SL: {self.sl:12d}\n"
                  f"  rate: {mbps // 1000:8d}.{mbps % 1000} Gb/sec\n")
        return s + "\n"


class PathCache:
    """Paths keyed by destination GID (16 bytes); see the module docstring."""

    __slots__ = ("_seq", "counters", "max_paths", "paths", "queue_len", "reaper")

    def __init__(
        self, reaper: AhReaper, counters: Counters, *, queue_len: int = 3, max_paths: int = 4096,
    ) -> None:
        if queue_len < 0 or max_paths < 1:
            raise ValueError("queue_len must be >= 0 and max_paths >= 1")
        self.paths: dict[bytes, Path] = {}
        self.reaper = reaper
        self.counters = counters
        self.queue_len = queue_len
        self.max_paths = max_paths
        self._seq = 0

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, dgid: bytes) -> Path | None:
        """The path to ``dgid``, if any (no side effects)."""
        return self.paths.get(dgid)

    # --- lookups that may start a query ---------------------------------------------------

    def want(self, dgid: bytes, now: float) -> tuple[Path | None, list[Action]]:
        """The path to ``dgid``, created if needed, with a query started if it has no valid AH.

        Returns ``(None, [])`` when the table is full and nothing can be evicted.
        """
        p = self.paths.get(dgid)
        if p is None:
            if len(self.paths) >= self.max_paths and not self._evict(now):
                return None, []
            p = self.paths[dgid] = Path(dgid, now)
        if p.querying or (p.ah is not None and p.ah.valid):
            return p, []
        return p, [self._start(p)]

    def send(self, hwaddr: bytes, frame: Frame, now: float) -> list[Action]:
        """Send ``frame`` to ``hwaddr`` without a neighbour (Linux ``unicast_arp_send``).

        Goes out at once when the path has a valid AH; otherwise waits on the path (at most
        ``queue_len`` packets) while its query runs.
        """
        if len(hwaddr) != HWADDR_LEN:
            raise ValueError(f"hardware address must be {HWADDR_LEN} bytes")
        p, out = self.want(hwaddr[4:], now)
        if p is None:
            self.counters.drop("tx_path_table_full")
            return [Drop("tx_path_table_full")]
        if p.ah is not None and p.ah.valid:
            return [PathSend(hwaddr, p.ah, (frame,))]
        if len(p.queue) < self.queue_len:
            p.queue.append((hwaddr, frame))
        else:
            self.counters.drop("tx_queue_full")
            out.append(Drop("tx_queue_full"))
        return out

    # --- SA answers -------------------------------------------------------------------------

    def complete(
        self, dgid: bytes, seq: int, record: PathRecord, now: float,
    ) -> tuple[Path | None, list[Action]]:
        """Install the answer to query ``seq``: a new AH (the old one is released).

        Returns the path (None for an answer nobody waits for any more) and the actions:
        :class:`CreateAh`, then the packets queued on the path, in order.
        """
        p = self.paths.get(dgid)
        if p is None or not p.querying or p.seq != seq:
            self.counters.event("path_answer_stale")
            return None, []
        p.querying = False
        p.record = record
        old = p.ah
        p.ah = self.reaper.create(ah_attr_from_path(record))
        out: list[Action] = [CreateAh(p.ah)]
        if old is not None:
            self.reaper.release(old, now)
        self.counters.event("path_complete")
        queued, p.queue = p.queue, []
        for hwaddr, frame in queued:
            last = out[-1]
            if isinstance(last, PathSend) and last.hwaddr == hwaddr:
                out[-1] = PathSend(hwaddr, p.ah, (*last.frames, frame))
            else:
                out.append(PathSend(hwaddr, p.ah, (frame,)))
        return p, out

    def fail(self, dgid: bytes, seq: int, now: float) -> tuple[Path | None, list[Action]]:
        """Query ``seq`` failed: the path is removed, its queue dropped (``tx_path_failed``).

        The returned path still lists its neighbours, for the neighbour table to fail them.
        """
        p = self.paths.get(dgid)
        if p is None or not p.querying or p.seq != seq:
            self.counters.event("path_answer_stale")
            return None, []
        p.querying = False
        self.counters.event("path_failed")
        out: list[Action] = []
        self._drop_queue(p, "tx_path_failed", out)
        self._forget(p, now)
        return p, out

    # --- flushes ------------------------------------------------------------------------------

    def flush_light(self) -> None:
        """Mark every AH invalid: the next transmit re-queries its path (LIGHT flush)."""
        for p in self.paths.values():
            if p.ah is not None:
                p.ah.valid = False

    def flush(self, now: float) -> list[Action]:
        """Forget every path (NORMAL/HEAVY flush, device down): queries cancelled, queues
        dropped (``tx_flushed``), AHs released. Neighbours must drop their own references."""
        out: list[Action] = []
        for p in list(self.paths.values()):
            if p.querying:
                out.append(CancelPathQuery(p.dgid, p.seq))
                p.querying = False
            self._drop_queue(p, "tx_flushed", out)
            self._forget(p, now)
        return out

    # --- views --------------------------------------------------------------------------------

    def views(self) -> list[PathView]:
        """Every path, in GID order as debugfs lists them."""
        out = []
        for dgid in sorted(self.paths):
            p = self.paths[dgid]
            r = p.record
            out.append(PathView(
                gid=debugfs_gid(dgid), complete=r is not None and r.dlid != 0,
                dlid=r.dlid if r else 0, sl=r.sl if r else 0, rate=r.rate if r else 0,
                rate_mbps=RATE_MBPS.get(r.rate, 0) if r else 0, mtu=r.mtu if r else 0,
                querying=p.querying, valid=p.valid, neighbours=len(p.neighs),
                queued=len(p.queue),
            ))
        return out

    def format(self) -> str:
        """The whole ``ibX_path`` file."""
        return "".join(v.format() for v in self.views())

    # --- internals ----------------------------------------------------------------------------

    def _start(self, p: Path) -> StartPathQuery:
        self._seq += 1
        p.seq = self._seq
        p.querying = True
        self.counters.event("path_query")
        return StartPathQuery(p.dgid, p.seq)

    def _drop_queue(self, p: Path, reason: str, out: list[Action]) -> None:
        if p.queue:
            self.counters.drop(reason, len(p.queue))
            out.append(Drop(reason, len(p.queue)))
            p.queue = []

    def _forget(self, p: Path, now: float) -> None:
        if self.paths.get(p.dgid) is p:
            del self.paths[p.dgid]
        if p.ah is not None:
            self.reaper.release(p.ah, now)
            p.ah = None
        p.record = None

    def _evict(self, now: float) -> bool:
        """Remove the oldest idle path; rotate the busy ones looked at to the back."""
        for dgid in list(self.paths)[:EVICT_SCAN]:
            p = self.paths[dgid]
            if not p.neighs and not p.queue and not p.querying:
                self._forget(p, now)
                self.counters.event("path_evicted")
                return True
            del self.paths[dgid]
            self.paths[dgid] = p
        return False
