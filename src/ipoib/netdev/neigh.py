"""The neighbour table: next-hop IP → state, 20-byte address, path, AH and prebuilt send state.

This is the 2004 mail's wish, done inside the driver: one entry per next-hop IP address (4 or
16 bytes) holds everything a transmit needs, so the hot path is one dict lookup
(:meth:`NeighTable.lookup`), a check of ``entry.ready`` and a post of ``entry.tx`` — no lookup
by 20-byte address, no SA traffic. Everything else goes through :meth:`NeighTable.send`.

**States** are the Linux neighbour core's (``net/core/neighbour.c``), with its timers made
deterministic (no randomised reachable time):

============  ===============================================================================
INCOMPLETE    resolving: broadcast ARP/NS every ``retrans_time`` (1 s), ``mcast_probes`` (3)
              in all; packets wait (``queue_len``, 3). No answer → FAILED, queue dropped
REACHABLE     confirmed by a reply; for ``base_reachable_time`` (30 s) after the confirmation
STALE         unconfirmed too long, or learnt from a request that targets us. Usable, but the
              next packet moves it to DELAY
DELAY         in use while unconfirmed; after ``delay_first_probe_time`` (5 s) without a
              confirmation → PROBE
PROBE         unicast ARP/NS every second, ``ucast_probes`` (3); no answer → FAILED
FAILED        unreachable (resolution or PathRecord failed). A packet after ``failed_retry``
              (1 s) restarts resolution; before it, the packet is dropped. (Linux retries on
              the very next packet: ``failed_retry=0``.)
============  ===============================================================================

The hardware address and the AH are separate from the state: a REACHABLE entry may still wait
for its path (packets queue), and a light flush invalidates AHs without touching states.
``ready`` is True when the entry may send at once: REACHABLE/DELAY/PROBE with a valid AH.
Whenever the AH or the address changes, ``tx`` is reset to None and the glue rebuilds it.

**GC** (Linux ``neigh_periodic_work`` and ``neigh_forced_gc``): every ``gc_interval`` (30 s),
when the table holds at least ``gc_thresh1`` (128) entries, FAILED entries and STALE entries
unused for ``gc_staletime`` (60 s) are removed. Creating an entry at ``gc_thresh3`` (1024), or
at ``gc_thresh2`` (512) with no forced GC in the last 5 s, first evicts FAILED then the
least recently updated valid entries down to ``gc_thresh2``; INCOMPLETE entries are never
evicted, and if the table is still at ``gc_thresh3`` the new address is refused
(``tx_neigh_table_full``). A flood of new addresses therefore cannot grow memory.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import ip_address
from typing import Any

from ..wire.ipoib import HWADDR_LEN, HwAddr
from ..wire.sa import PathRecord
from .actions import Action, Ah, Drop, Frame, NeighSend, SendArpRequest, SendNeighSolicit
from .counters import Counters
from .path import PathCache

__all__ = ["Neigh", "NeighConfig", "NeighTable", "NeighView", "NudState"]


class NudState(IntEnum):
    """Neighbour states, with the Linux ``NUD_*`` values."""

    INCOMPLETE = 0x01
    REACHABLE = 0x02
    STALE = 0x04
    DELAY = 0x08
    PROBE = 0x10
    FAILED = 0x20


INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED = (
    NudState.INCOMPLETE, NudState.REACHABLE, NudState.STALE, NudState.DELAY, NudState.PROBE,
    NudState.FAILED,
)
_SENDABLE = frozenset({REACHABLE, DELAY, PROBE})


@dataclass(frozen=True, slots=True)
class NeighConfig:
    """Neighbour parameters (Linux ``neigh_parms`` / ``arp_tbl`` defaults, in seconds)."""

    base_reachable_time: float = 30.0
    delay_first_probe_time: float = 5.0
    retrans_time: float = 1.0
    ucast_probes: int = 3
    mcast_probes: int = 3
    queue_len: int = 3
    failed_retry: float = 1.0
    gc_interval: float = 30.0
    gc_staletime: float = 60.0
    gc_thresh1: int = 128
    gc_thresh2: int = 512
    gc_thresh3: int = 1024
    forced_gc_interval: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.gc_thresh1 <= self.gc_thresh2 <= self.gc_thresh3 or self.gc_thresh3 < 1:
            raise ValueError("need 0 <= gc_thresh1 <= gc_thresh2 <= gc_thresh3, gc_thresh3 >= 1")
        if min(self.base_reachable_time, self.delay_first_probe_time, self.retrans_time,
               self.gc_interval, self.gc_staletime) <= 0:
            raise ValueError("times must be positive")
        if self.ucast_probes < 1 or self.mcast_probes < 1 or self.queue_len < 0:
            raise ValueError("need at least one probe of each kind and queue_len >= 0")


class Neigh:
    """One next hop. ``tx`` belongs to the glue (its prebuilt send state for ``ah``)."""

    __slots__ = (
        "ah",
        "confirmed",
        "created",
        "failed_at",
        "hwaddr",
        "ip",
        "probes",
        "queue",
        "ready",
        "state",
        "timer_at",
        "tx",
        "updated",
        "used",
    )

    def __init__(self, ip: bytes, now: float) -> None:
        self.ip = ip
        self.state = INCOMPLETE
        self.hwaddr: bytes | None = None
        self.ah: Ah | None = None
        self.tx: Any = None
        self.ready = False
        self.queue: list[Frame] = []
        self.probes = 0
        self.confirmed = now
        self.updated = now
        self.used = now
        self.timer_at: float | None = None
        self.failed_at = now
        self.created = now

    @property
    def gid(self) -> bytes | None:
        """The GID part of the hardware address (the path key)."""
        return None if self.hwaddr is None else self.hwaddr[4:]

    def __repr__(self) -> str:
        return (f"Neigh({ip_address(self.ip)}, {self.state.name}, ready={self.ready}, "
                f"queued={len(self.queue)})")


@dataclass(frozen=True, slots=True)
class NeighView:
    """One entry as ``ip neigh`` shows it, plus the resolution details it does not show."""

    address: str
    lladdr: str | None
    state: str
    ready: bool
    queued: int
    dlid: int

    def format(self, dev: str = "ib0") -> str:
        """The ``ip neigh`` line."""
        ll = f" lladdr {self.lladdr}" if self.lladdr else ""
        return f"{self.address} dev {dev}{ll} {self.state}"


class NeighTable:
    """Next-hop IP → :class:`Neigh`; resolution, timers and GC. See the module docstring."""

    def __init__(
        self, paths: PathCache, counters: Counters, config: NeighConfig | None = None,
    ) -> None:
        self.paths = paths
        self.counters = counters
        self.config = config or NeighConfig()
        self.entries: dict[bytes, Neigh] = {}
        self._valid: dict[bytes, None] = {}  # STALE..PROBE, least recently updated first
        self._failed: dict[bytes, None] = {}  # FAILED, oldest first
        self._heap: list[tuple[float, int, Neigh]] = []
        self._tick = 0
        self._next_gc: float | None = None
        self._last_forced_gc = float("-inf")

    def __len__(self) -> int:
        return len(self.entries)

    # --- the hot path ---------------------------------------------------------------------

    def lookup(self, ip: bytes, now: float) -> Neigh | None:
        """The entry for ``ip`` (marked used), or None. Send directly when ``ready``."""
        e = self.entries.get(ip)
        if e is not None:
            e.used = now
        return e

    # --- the slow path --------------------------------------------------------------------

    def send(self, ip: bytes, frame: Frame, now: float) -> list[Action]:
        """Transmit ``frame`` to next hop ``ip``: send now, queue, resolve, or drop."""
        out: list[Action] = []
        e = self.entries.get(ip)
        if e is None:
            e = self._create(ip, now, out)
            if e is None:
                self._drop("tx_neigh_table_full", 1, out)
                return out
            self._start_incomplete(e, now, out)
            self._enqueue(e, frame, out)
            return out
        e.used = now
        st = e.state
        if st == FAILED:
            if now < e.failed_at + self.config.failed_retry:
                self._drop("tx_neigh_failed", 1, out)
                return out
            self._start_incomplete(e, now, out)
            self._enqueue(e, frame, out)
            return out
        if st == INCOMPLETE:
            self._enqueue(e, frame, out)
            return out
        if st == STALE:
            self._set_state(e, DELAY, now, now + self.config.delay_first_probe_time)
        if e.ready:
            out.append(NeighSend(e, (*e.queue, frame)))
            e.queue.clear()
            return out
        self._enqueue(e, frame, out)
        self._attach(e, now, out)
        self._release(e, out)
        return out

    # --- ARP / ND input ---------------------------------------------------------------------

    def confirm(self, ip: bytes, hwaddr: bytes, now: float) -> list[Action]:
        """A reply (ARP reply, solicited NA) says ``ip`` is at ``hwaddr``: REACHABLE.

        Replies for addresses not in the table are ignored, as Linux does by default.
        """
        e = self.entries.get(ip)
        if e is None:
            self.counters.event("neigh_unsolicited")
            return []
        self._check_hwaddr(hwaddr)
        out: list[Action] = []
        if e.hwaddr != hwaddr:
            self._detach(e, now)
            e.hwaddr = hwaddr
        e.confirmed = now
        e.probes = 0
        self._set_state(e, REACHABLE, now, now + self.config.base_reachable_time)
        self._attach(e, now, out)
        self._release(e, out)
        return out

    def learn(self, ip: bytes, hwaddr: bytes, now: float) -> list[Action]:
        """A request that targets us came from ``ip`` at ``hwaddr``: create or update, STALE.

        An entry that already has this address keeps its state; a new address (the peer
        moved, e.g. after a failover) replaces the old one and its AH.
        """
        self._check_hwaddr(hwaddr)
        out: list[Action] = []
        e = self.entries.get(ip)
        if e is None:
            e = self._create(ip, now, out)
            if e is None:
                self.counters.event("neigh_learn_refused")
                return out
        elif e.hwaddr == hwaddr and e.state not in (INCOMPLETE, FAILED):
            return out
        if e.hwaddr != hwaddr:
            self._detach(e, now)
            e.hwaddr = hwaddr
        if e.queue:  # sending the waiting packets is a use: Linux goes STALE -> DELAY
            self._set_state(e, DELAY, now, now + self.config.delay_first_probe_time)
        else:
            self._set_state(e, STALE, now, None)
        self._attach(e, now, out)
        self._release(e, out)
        return out

    # --- path answers -------------------------------------------------------------------------

    def path_done(self, dgid: bytes, seq: int, record: PathRecord, now: float) -> list[Action]:
        """The PathRecord query ``seq`` for ``dgid`` answered: AH to every neighbour on it."""
        p, out = self.paths.complete(dgid, seq, record, now)
        if p is None or p.ah is None:
            return out
        reaper = self.paths.reaper
        for ip in list(p.neighs):
            e = self.entries.get(ip)
            if e is None or e.gid != dgid:
                p.neighs.pop(ip, None)
                continue
            if e.ah is not p.ah:
                if e.ah is not None:
                    reaper.release(e.ah, now)
                e.ah = reaper.acquire(p.ah)
                e.tx = None
            if e.queue and e.state == STALE:
                self._set_state(e, DELAY, now, now + self.config.delay_first_probe_time)
            else:
                e.ready = e.state in _SENDABLE
            self._release(e, out)
        return out

    def path_failed(self, dgid: bytes, seq: int, now: float) -> list[Action]:
        """The query ``seq`` failed (NO_RECORDS, timeout ...): its neighbours go FAILED."""
        p, out = self.paths.fail(dgid, seq, now)
        if p is None:
            return out
        for ip in list(p.neighs):
            e = self.entries.get(ip)
            if e is not None and e.gid == dgid:
                self._fail(e, now, "tx_path_failed", out)
        p.neighs.clear()
        return out

    # --- flushes and removal ------------------------------------------------------------------

    def flush_light(self) -> None:
        """LIGHT flush: every AH invalid, re-queried on the next transmit; states kept."""
        self.paths.flush_light()
        for e in self.entries.values():
            e.ready = False

    def flush(self, now: float) -> list[Action]:
        """NORMAL/HEAVY flush: all paths forgotten, neighbours lose their AHs and queues.

        Addresses and states stay (Linux keeps its ARP table across a path flush).
        """
        out = self.paths.flush(now)
        reaper = self.paths.reaper
        for e in self.entries.values():
            self._drop_queue(e, "tx_flushed", out)
            if e.ah is not None:
                reaper.release(e.ah, now)
                e.ah = None
            e.tx = None
            e.ready = False
        return out

    def delete(self, ip: bytes, now: float) -> list[Action]:
        """Remove one entry (``ip neigh del``); its queue is dropped as flushed."""
        out: list[Action] = []
        e = self.entries.get(ip)
        if e is not None:
            self._remove(e, "tx_flushed", now, out)
        return out

    def clear(self, now: float) -> list[Action]:
        """Remove every entry and path (device down)."""
        out: list[Action] = []
        for e in list(self.entries.values()):
            self._remove(e, "tx_flushed", now, out)
        out += self.paths.flush(now)
        self._next_gc = None
        return out

    # --- timers -------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next deadline: a neighbour timer or the periodic GC."""
        heap = self._heap
        while heap:
            at, _, e = heap[0]
            if e.timer_at == at and self.entries.get(e.ip) is e:
                break
            heapq.heappop(heap)
        t = heap[0][0] if heap else None
        if self._next_gc is not None and (t is None or self._next_gc < t):
            t = self._next_gc
        return t

    def handle_timer(self, now: float) -> list[Action]:
        """Run every neighbour timer due by ``now``, then the periodic GC if due."""
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, e = heapq.heappop(heap)
            if e.timer_at != at or self.entries.get(e.ip) is not e:
                continue
            e.timer_at = None
            self._expire(e, now, out)
        if self._next_gc is not None and now >= self._next_gc:
            self._periodic_gc(now, out)
            self._next_gc = now + self.config.gc_interval if self.entries else None
        return out

    # --- views --------------------------------------------------------------------------------

    def views(self) -> list[NeighView]:
        """Every entry, in table order."""
        out = []
        for e in self.entries.values():
            lladdr = None
            if e.hwaddr is not None and e.state != FAILED:
                lladdr = str(HwAddr.unpack(e.hwaddr))
            out.append(NeighView(
                address=str(ip_address(e.ip)), lladdr=lladdr, state=e.state.name,
                ready=e.ready, queued=len(e.queue),
                dlid=e.ah.attr.dlid if e.ah is not None else 0,
            ))
        return out

    def format(self, dev: str = "ib0") -> str:
        """``ip neigh show dev <dev>`` text."""
        return "".join(v.format(dev) + "\n" for v in self.views())

    # --- internals: state ----------------------------------------------------------------------

    def _set_state(self, e: Neigh, st: NudState, now: float, timer_at: float | None) -> None:
        ip = e.ip
        self._valid.pop(ip, None)
        self._failed.pop(ip, None)
        if st == FAILED:
            self._failed[ip] = None
        elif st != INCOMPLETE:
            self._valid[ip] = None
        e.state = st
        e.updated = now
        e.ready = st in _SENDABLE and e.ah is not None and e.ah.valid
        e.timer_at = timer_at
        if timer_at is not None:
            self._tick += 1
            heapq.heappush(self._heap, (timer_at, self._tick, e))

    def _expire(self, e: Neigh, now: float, out: list[Action]) -> None:
        c = self.config
        st = e.state
        if st == INCOMPLETE:
            if e.probes >= c.mcast_probes:
                self._fail(e, now, "tx_neigh_failed", out)
            else:
                self._probe(e, False, out)
                self._set_state(e, INCOMPLETE, now, now + c.retrans_time)
        elif st == REACHABLE:
            if now < e.confirmed + c.base_reachable_time:
                self._set_state(e, REACHABLE, e.updated, e.confirmed + c.base_reachable_time)
            elif now < e.used + c.delay_first_probe_time:
                self._set_state(e, DELAY, now, now + c.delay_first_probe_time)
            else:
                self._set_state(e, STALE, now, None)
        elif st == DELAY:
            if now <= e.confirmed + c.delay_first_probe_time:
                self._set_state(e, REACHABLE, now, e.confirmed + c.base_reachable_time)
            else:
                e.probes = 0
                self._probe(e, True, out)
                self._set_state(e, PROBE, now, now + c.retrans_time)
        elif st == PROBE:
            if e.probes >= c.ucast_probes:
                self._fail(e, now, "tx_neigh_failed", out)
            else:
                self._probe(e, True, out)
                self._set_state(e, PROBE, now, now + c.retrans_time)

    def _probe(self, e: Neigh, unicast: bool, out: list[Action]) -> None:
        """One ARP request / NS; unicast to the known address when it can be sent."""
        e.probes += 1
        dest = e.hwaddr if unicast and e.ah is not None and e.ah.valid else None
        if len(e.ip) == 4:
            out.append(SendArpRequest(e.ip, dest))
            self.counters.event("arp_probe")
        else:
            out.append(SendNeighSolicit(e.ip, dest))
            self.counters.event("ns_probe")

    def _start_incomplete(self, e: Neigh, now: float, out: list[Action]) -> None:
        self._detach(e, now)
        e.hwaddr = None
        e.probes = 0
        self._probe(e, False, out)
        self._set_state(e, INCOMPLETE, now, now + self.config.retrans_time)

    def _fail(self, e: Neigh, now: float, reason: str, out: list[Action]) -> None:
        self._drop_queue(e, reason, out)
        self._detach(e, now)
        e.hwaddr = None
        e.probes = 0
        e.failed_at = now
        self._set_state(e, FAILED, now, None)
        self.counters.event("neigh_failed")

    # --- internals: queue, path, AH --------------------------------------------------------------

    def _enqueue(self, e: Neigh, frame: Frame, out: list[Action]) -> None:
        if len(e.queue) < self.config.queue_len:
            e.queue.append(frame)
        else:
            self._drop("tx_queue_full", 1, out)

    def _release(self, e: Neigh, out: list[Action]) -> None:
        """Hand the queue to the glue if the entry can send."""
        if e.ready and e.queue:
            out.append(NeighSend(e, tuple(e.queue)))
            e.queue.clear()

    def _attach(self, e: Neigh, now: float, out: list[Action]) -> None:
        """Join the path of ``e``'s GID; take its AH when valid, else make sure it is queried."""
        gid = e.gid
        if gid is None:
            return
        p, acts = self.paths.want(gid, now)
        out += acts
        if p is None:
            self._fail(e, now, "tx_path_table_full", out)
            return
        p.neighs[e.ip] = None
        if p.ah is not None and p.ah.valid and e.ah is not p.ah:
            if e.ah is not None:
                self.paths.reaper.release(e.ah, now)
            e.ah = self.paths.reaper.acquire(p.ah)
            e.tx = None
        e.ready = e.state in _SENDABLE and e.ah is not None and e.ah.valid

    def _detach(self, e: Neigh, now: float) -> None:
        """Leave the path and let go of the AH (the address is about to change or go)."""
        gid = e.gid
        if gid is not None:
            p = self.paths.get(gid)
            if p is not None:
                p.neighs.pop(e.ip, None)
        if e.ah is not None:
            self.paths.reaper.release(e.ah, now)
            e.ah = None
        e.tx = None
        e.ready = False

    def _drop_queue(self, e: Neigh, reason: str, out: list[Action]) -> None:
        if e.queue:
            self._drop(reason, len(e.queue), out)
            e.queue.clear()

    def _drop(self, reason: str, n: int, out: list[Action]) -> None:
        self.counters.drop(reason, n)
        out.append(Drop(reason, n))

    @staticmethod
    def _check_hwaddr(hwaddr: bytes) -> None:
        if len(hwaddr) != HWADDR_LEN:
            raise ValueError(f"hardware address must be {HWADDR_LEN} bytes, got {len(hwaddr)}")

    # --- internals: table size -------------------------------------------------------------------

    def _create(self, ip: bytes, now: float, out: list[Action]) -> Neigh | None:
        c = self.config
        n = len(self.entries)
        if n >= c.gc_thresh3 or (
            n >= c.gc_thresh2 and now - self._last_forced_gc >= c.forced_gc_interval
        ):
            self._forced_gc(now, out)
            if len(self.entries) >= c.gc_thresh3:
                self.counters.event("neigh_table_overflow")
                return None
        e = self.entries[ip] = Neigh(ip, now)
        if self._next_gc is None:
            self._next_gc = now + c.gc_interval
        return e

    def _remove(self, e: Neigh, reason: str, now: float, out: list[Action]) -> None:
        del self.entries[e.ip]
        self._valid.pop(e.ip, None)
        self._failed.pop(e.ip, None)
        self._drop_queue(e, reason, out)
        self._detach(e, now)
        e.timer_at = None

    def _forced_gc(self, now: float, out: list[Action]) -> None:
        """Evict FAILED, then least recently updated valid entries, down to gc_thresh2."""
        self._last_forced_gc = now
        target = self.config.gc_thresh2
        for pool in (self._failed, self._valid):
            while len(self.entries) > target and pool:
                ip = next(iter(pool))
                self._remove(self.entries[ip], "tx_neigh_evicted", now, out)
                self.counters.event("neigh_forced_gc")

    def _periodic_gc(self, now: float, out: list[Action]) -> None:
        c = self.config
        if len(self.entries) < c.gc_thresh1:
            return
        for ip in list(self._failed):
            self._remove(self.entries[ip], "tx_neigh_failed", now, out)
            self.counters.event("neigh_gc")
        stale_before = now - c.gc_staletime
        for ip in list(self._valid):
            e = self.entries[ip]
            if e.state == STALE and e.used <= stale_before:
                self._remove(e, "tx_flushed", now, out)
                self.counters.event("neigh_gc")
