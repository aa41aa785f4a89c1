"""Multicast groups: the broadcast join that gates the link, full joins, send-only joins.

What Linux's ``ipoib_multicast.c`` does, sans-I/O (linux-ipoib.md §5, wire-formats.md §7.4):

- **Broadcast first.** :meth:`McastTable.start` (port ACTIVE, interface up) joins the broadcast
  group ``ff1s:401b:PPPP::ffff:ffff`` with the minimal mask MGID|PortGID|P_Key|JoinState
  (0x10083), JoinState FullMember: the SM must already have it. Its answer gives the link's
  Q_Key, MTU, SL, rate, TClass, FlowLabel and HopLimit; only then is the QP attached (with the
  Q_Key), :class:`CarrierOn` emitted and any other group joined. Multicast sent before that is
  dropped (``tx_mcast_no_broadcast``).
- **Other groups** are joined with mask 0x173F7, the parameters copied from the broadcast
  group and MTUSelector = RateSelector = exactly (RFC 4391 §4 as Linux quotes it).
- **Full joins** are asked for by the host (:meth:`join`, an application joined the group) and
  counted; the last :meth:`leave` sends SubnAdmDelete with the joined JoinState bits and
  detaches the QP.
- **Send-only joins**: sending to an unknown group creates a send-only group, queues up to 64
  packets and joins with JoinState SendOnlyFullMember (0x8), which may create the group. A
  failed attempt is retried once, after the back-off, as SendOnlyNonMember (0x4); after the
  second failure the queue is dropped (``tx_mcast_join_failed``) and the group waits for the
  next packet. Send-only groups unused for 60 s are left (Linux leaves them when their
  neighbour ages out). When the SA's ClassPortInfo lacks CapabilityMask2 bit 12, send-only
  joins use 0x4 from the start.
- **Back-off** for failed joins: 1 s, then doubling to 16 s (1, 2, 4, 8, 16, 16 ...); a success
  resets it. (Linux doubles before the first wait, 2, 4, 8, 16; the first retry here is 1 s.)
- **Flushes**: :meth:`flush_light` leaves every group and rejoins (carrier untouched);
  :meth:`stop` leaves everything and turns the carrier off.

The multicast AH (DLID = MLID, SL, rate, GRH with the MGID, FlowLabel, HopLimit, TClass) is one
:class:`~ipoib.netdev.actions.Ah` per group, freed through the shared :class:`AhReaper`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..fabric.verbs import GlobalRoute
from ..wire.ipoib import FULL_MEMBER, SCOPE_LINK, broadcast_mgid
from ..wire.sa import IPOIB_BCAST_JOIN_MASK, IPOIB_MCAST_JOIN_MASK, JoinState, MCMemberRecord
from .actions import (
    Action,
    Ah,
    AhAttr,
    AttachQp,
    CancelJoin,
    CarrierOff,
    CarrierOn,
    CreateAh,
    DetachQp,
    Drop,
    Frame,
    ReleaseQueue,
    SendJoin,
    SendLeave,
)
from .counters import Counters
from .path import AhReaper, debugfs_gid

__all__ = [
    "LEAVE_MASK", "SENDONLY_FULL_CAPABILITY", "Group", "GroupState", "McastConfig",
    "McastTable", "McastView",
]

LEAVE_MASK = MCMemberRecord.component_mask("mgid", "port_gid", "join_state")
"""SubnAdmDelete mask, as Linux's ``send_leave`` sends it (OpenSM's minimum)."""

SENDONLY_FULL_CAPABILITY = 0x1000
"""ClassPortInfo CapabilityMask2 bit 12: the SA takes SendOnlyFullMember joins."""

EXACTLY = 2
HZ = 1000
"""``created`` is printed in virtual-clock milliseconds, where Linux prints jiffies."""


class GroupState(Enum):
    """Where a group's join stands."""

    IDLE = "idle"  # not joined: waiting for a back-off, a packet, or the broadcast join
    JOINING = "joining"  # a SendJoin is in flight
    JOINED = "joined"


IDLE, JOINING, JOINED = GroupState.IDLE, GroupState.JOINING, GroupState.JOINED


@dataclass(frozen=True, slots=True)
class McastConfig:
    """Queue, back-off and lifetime parameters (Linux ``ipoib.h`` values)."""

    queue_len: int = 64
    backoff_initial: float = 1.0
    backoff_max: float = 16.0
    sendonly_attempts: int = 2
    sendonly_idle: float = 60.0
    gc_interval: float = 30.0
    max_groups: int = 1024

    def __post_init__(self) -> None:
        if self.queue_len < 0 or self.sendonly_attempts < 1 or self.max_groups < 1:
            raise ValueError("queue_len >= 0, sendonly_attempts >= 1, max_groups >= 1")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")


class Group:
    """One multicast group. ``tx`` belongs to the glue (its prebuilt send state for ``ah``)."""

    __slots__ = (
        "ah",
        "attached",
        "attempts",
        "backoff",
        "created",
        "delay_until",
        "fallback",
        "join_state",
        "mgid",
        "queue",
        "ready",
        "record",
        "send_only",
        "seq",
        "state",
        "tx",
        "used",
    )

    def __init__(self, mgid: bytes, send_only: bool, backoff: float, now: float) -> None:
        self.mgid = mgid
        self.send_only = send_only
        self.state = IDLE
        self.ready = False
        self.queue: list[Frame] = []
        self.backoff = backoff
        self.delay_until = now
        self.attempts = 0
        self.fallback = False
        self.seq = 0
        self.join_state = 0
        self.record: MCMemberRecord | None = None
        self.ah: Ah | None = None
        self.tx: Any = None
        self.attached = False
        self.created = now
        self.used = now

    def __repr__(self) -> str:
        kind = "send-only" if self.send_only else "full"
        return f"Group({debugfs_gid(self.mgid)}, {kind}, {self.state.value})"


@dataclass(frozen=True, slots=True)
class McastView:
    """One group as ``ibX_mcg`` shows it, plus its join details."""

    mgid: str
    created: float
    queuelen: int
    complete: bool
    send_only: bool
    state: str
    join_state: int
    mlid: int

    def format(self) -> str:
        """The debugfs text (Linux ``ipoib_mcg_seq_show``)."""
        return (f"GID: {self.mgid}\n  created: {round(self.created * HZ):10d}\n"
                f"  queuelen: {self.queuelen:9d}\n"
                f"  complete: {'yes' if self.complete else 'no':>9}\n"
                f"  send_only: {'yes' if self.send_only else 'no':>8}\n\n")


class McastTable:
    """The interface's multicast groups, keyed by MGID. See the module docstring."""

    def __init__(
        self, port_gid: bytes, pkey: int, reaper: AhReaper, counters: Counters,
        config: McastConfig | None = None, *, scope: int = SCOPE_LINK,
    ) -> None:
        self.port_gid = port_gid
        self.pkey = pkey | FULL_MEMBER
        self.reaper = reaper
        self.counters = counters
        self.config = config or McastConfig()
        self.broadcast_mgid = broadcast_mgid(pkey, scope)
        self.groups: dict[bytes, Group] = {}
        self.members: dict[bytes, int] = {}
        self.broadcast: Group | None = None
        self.broadcast_record: MCMemberRecord | None = None
        self.running = False
        self.carrier = False
        self.sendonly_join_state = JoinState.SENDONLY_FULL
        self._seq = 0
        self._next_gc: float | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Port ACTIVE and interface up: join the broadcast group (then the others)."""
        out: list[Action] = []
        if not self.running:
            self.running = True
            self._start(now, out)
        return out

    def stop(self, now: float) -> list[Action]:
        """Interface down or NORMAL/HEAVY flush: leave every group, carrier off."""
        out: list[Action] = []
        self._leave_all(now, out)
        self.running = False
        if self.carrier:
            self.carrier = False
            out.append(CarrierOff())
        return out

    def flush_light(self, now: float) -> list[Action]:
        """LIGHT flush (client reregister ...): leave every group and join again."""
        out: list[Action] = []
        self._leave_all(now, out)
        if self.running:
            self._start(now, out)
        return out

    def note_sa_capabilities(self, capability_mask2: int) -> None:
        """Use SendOnlyFullMember only if the SA says it supports it (ClassPortInfo)."""
        self.sendonly_join_state = (
            JoinState.SENDONLY_FULL if capability_mask2 & SENDONLY_FULL_CAPABILITY
            else JoinState.SENDONLY_NON
        )

    # --- transmit -------------------------------------------------------------------------

    def lookup(self, mgid: bytes, now: float) -> Group | None:
        """Hot path: the group (marked used), or None. Send through ``ah`` when ``ready``."""
        g = self.groups.get(mgid)
        if g is not None:
            g.used = now
        return g

    def send(self, mgid: bytes, frame: Frame, now: float) -> list[Action]:
        """Slow path: send to a group that is not ready — queue and join, or drop."""
        out: list[Action] = []
        b = self.broadcast
        if b is None or b.state is not JOINED:
            self._drop("tx_mcast_no_broadcast", 1, out)
            return out
        g = self.groups.get(mgid)
        if g is None:
            if len(self.groups) >= self.config.max_groups:
                self._drop("tx_mcast_table_full", 1, out)
                return out
            g = self._new_group(mgid, True, now)
        g.used = now
        if g.ready and g.ah is not None:
            out.append(ReleaseQueue(mgid, g.ah, (*g.queue, frame)))
            g.queue.clear()
            return out
        if len(g.queue) < self.config.queue_len:
            g.queue.append(frame)
        else:
            self._drop("tx_mcast_queue_full", 1, out)
        if g.state is IDLE and now >= g.delay_until:
            self._send_join(g, out)
        return out

    # --- host membership --------------------------------------------------------------------

    def join(self, mgid: bytes, now: float) -> list[Action]:
        """The host wants to receive ``mgid`` (one more member): full join, or upgrade."""
        out: list[Action] = []
        n = self.members.get(mgid, 0)
        self.members[mgid] = n + 1
        if n or mgid == self.broadcast_mgid:
            return out
        g = self.groups.get(mgid)
        if g is not None and g.send_only:
            self._leave_group(g, now, out, None)
            g.send_only = False
            g.fallback = False
            g.attempts = 0
            g.backoff = self.config.backoff_initial
            g.delay_until = now
        elif g is None and self.running:
            g = self._new_group(mgid, False, now)
        if g is not None and self._joins_allowed() and g.state is IDLE:
            self._send_join(g, out)
        return out

    def leave(self, mgid: bytes, now: float) -> list[Action]:
        """One member fewer; the last one leaves the group (SubnAdmDelete, QP detach)."""
        out: list[Action] = []
        n = self.members.get(mgid, 0)
        if n == 0:
            self.counters.event("mcast_leave_unknown")
            return out
        if n > 1:
            self.members[mgid] = n - 1
            return out
        del self.members[mgid]
        if mgid != self.broadcast_mgid:
            g = self.groups.pop(mgid, None)
            if g is not None:
                self._leave_group(g, now, out, "tx_flushed")
        return out

    # --- SA answers -------------------------------------------------------------------------

    def join_done(
        self, mgid: bytes, seq: int, record: MCMemberRecord, now: float,
    ) -> list[Action]:
        """The join ``seq`` succeeded: AH, QP attach, queued packets out; for the broadcast
        group also the link parameters, carrier on and the other joins."""
        g = self.groups.get(mgid)
        if g is None or g.state is not JOINING or g.seq != seq:
            self.counters.event("mcast_answer_stale")
            return []
        is_bcast = g is self.broadcast
        if is_bcast and not 1 <= record.mtu <= 5:
            self.counters.event("mcast_bad_broadcast_mtu")
            return self.join_failed(mgid, seq, now)
        out: list[Action] = []
        g.state = JOINED
        g.record = record
        g.backoff = self.config.backoff_initial
        g.attempts = 0
        g.delay_until = now
        self.counters.event("mcast_joined")
        if is_bcast:
            self.broadcast_record = record
        if g.ah is not None:
            self.reaper.release(g.ah, now)
        g.ah = self.reaper.create(AhAttr(
            dlid=record.mlid, sl=record.sl, static_rate=record.rate, mtu=record.mtu,
            grh=GlobalRoute(dgid=mgid, flow_label=record.flow_label, hop_limit=record.hop_limit,
                        traffic_class=record.tclass),
        ))
        g.tx = None
        g.ready = True
        out.append(CreateAh(g.ah))
        if not g.send_only:
            out.append(AttachQp(mgid, record.mlid, record.qkey if is_bcast else None))
            g.attached = True
        if g.queue:
            out.append(ReleaseQueue(mgid, g.ah, tuple(g.queue)))
            g.queue.clear()
        if is_bcast:
            self.carrier = True
            out.append(CarrierOn((128 << record.mtu) - 4, record.qkey))
            for m in self.members:
                if m not in self.groups and m != self.broadcast_mgid:
                    self._new_group(m, False, now)
            self._kick(now, out)
        return out

    def join_failed(self, mgid: bytes, seq: int, now: float) -> list[Action]:
        """The join ``seq`` failed (SA error or timeout): back off, fall back, or give up."""
        g = self.groups.get(mgid)
        if g is None or g.state is not JOINING or g.seq != seq:
            self.counters.event("mcast_answer_stale")
            return []
        out: list[Action] = []
        g.state = IDLE
        self.counters.event("mcast_join_failed")
        if g.send_only:
            g.attempts += 1
            if g.attempts >= self.config.sendonly_attempts:
                self._drop_queue(g, "tx_mcast_join_failed", out)
                g.attempts = 0
                g.fallback = False
                g.backoff = self.config.backoff_initial
                g.delay_until = now
                return out
            g.fallback = True
        g.delay_until = now + g.backoff
        g.backoff = min(g.backoff * 2, self.config.backoff_max)
        return out

    # --- timers ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest back-off end of a group that may join, or the send-only GC."""
        t = self._next_gc
        if not self.running:
            return t
        for g in self._eligible():
            if g.state is IDLE and (t is None or g.delay_until < t):
                t = g.delay_until
        return t

    def handle_timer(self, now: float) -> list[Action]:
        """Start the joins whose back-off is over; leave idle send-only groups."""
        out: list[Action] = []
        if self.running:
            self._kick(now, out)
        if self._next_gc is not None and now >= self._next_gc:
            idle_before = now - self.config.sendonly_idle
            for g in list(self.groups.values()):
                if g.send_only and not g.queue and g.used <= idle_before:
                    del self.groups[g.mgid]
                    self._leave_group(g, now, out, "tx_flushed")
                    self.counters.event("mcast_sendonly_gc")
            self._next_gc = (now + self.config.gc_interval
                             if any(g.send_only for g in self.groups.values()) else None)
        return out

    # --- views ----------------------------------------------------------------------------

    def views(self) -> list[McastView]:
        """Every group in MGID order, as debugfs lists them."""
        out = []
        for mgid in sorted(self.groups):
            g = self.groups[mgid]
            out.append(McastView(
                mgid=debugfs_gid(mgid), created=g.created, queuelen=len(g.queue),
                complete=g.ah is not None, send_only=g.send_only, state=g.state.value,
                join_state=g.join_state, mlid=g.record.mlid if g.record else 0,
            ))
        return out

    def format(self) -> str:
        """The whole ``ibX_mcg`` file."""
        return "".join(v.format() for v in self.views())

    # --- internals ------------------------------------------------------------------------

    def _start(self, now: float, out: list[Action]) -> None:
        self.broadcast = self._new_group(self.broadcast_mgid, False, now)
        self._send_join(self.broadcast, out)

    def _joins_allowed(self) -> bool:
        b = self.broadcast
        return self.running and b is not None and b.state is JOINED

    def _eligible(self) -> list[Group]:
        """Groups the join task may work on now: only the broadcast group until it is in."""
        b = self.broadcast
        if b is None:
            return []
        if b.state is not JOINED:
            return [b]
        return [g for g in self.groups.values() if not g.send_only or g.queue]

    def _kick(self, now: float, out: list[Action]) -> None:
        for g in self._eligible():
            if g.state is IDLE and now >= g.delay_until:
                self._send_join(g, out)

    def _new_group(self, mgid: bytes, send_only: bool, now: float) -> Group:
        g = self.groups[mgid] = Group(mgid, send_only, self.config.backoff_initial, now)
        if send_only and self._next_gc is None:
            self._next_gc = now + self.config.gc_interval
        return g

    def _send_join(self, g: Group, out: list[Action]) -> None:
        self._seq += 1
        g.seq = self._seq
        g.state = JOINING
        if g is self.broadcast or self.broadcast_record is None:
            rec = MCMemberRecord(mgid=g.mgid, port_gid=self.port_gid, pkey=self.pkey,
                                 join_state=JoinState.FULL)
            mask = IPOIB_BCAST_JOIN_MASK
        else:
            if not g.send_only:
                js = JoinState.FULL
            elif g.fallback:
                js = JoinState.SENDONLY_NON
            else:
                js = self.sendonly_join_state
            b = self.broadcast_record
            rec = MCMemberRecord(
                mgid=g.mgid, port_gid=self.port_gid, qkey=b.qkey, mtu_selector=EXACTLY,
                mtu=b.mtu, tclass=b.tclass, pkey=self.pkey, rate_selector=EXACTLY, rate=b.rate,
                sl=b.sl, flow_label=b.flow_label, hop_limit=b.hop_limit, join_state=js,
            )
            mask = IPOIB_MCAST_JOIN_MASK
        g.join_state = rec.join_state
        self.counters.event("mcast_join_sent")
        out.append(SendJoin(g.mgid, rec, mask, g.seq))

    def _leave_group(self, g: Group, now: float, out: list[Action], reason: str | None) -> None:
        """Undo a group's membership; its queue is dropped for ``reason`` (None keeps it)."""
        if g.state is JOINING:
            out.append(CancelJoin(g.mgid, g.seq))
        if g.state is not IDLE:
            base = g.record or MCMemberRecord(mgid=g.mgid, pkey=self.pkey)
            rec = base.replace(port_gid=self.port_gid, join_state=g.join_state)
            out.append(SendLeave(g.mgid, rec, LEAVE_MASK))
        if g.attached and g.record is not None:
            out.append(DetachQp(g.mgid, g.record.mlid))
        g.attached = False
        if g.ah is not None:
            self.reaper.release(g.ah, now)
            g.ah = None
        g.tx = None
        g.ready = False
        g.state = IDLE
        g.record = None
        if reason is not None:
            self._drop_queue(g, reason, out)

    def _leave_all(self, now: float, out: list[Action]) -> None:
        for g in list(self.groups.values()):
            self._leave_group(g, now, out, "tx_flushed")
        self.groups.clear()
        self.broadcast = None
        self._next_gc = None

    def _drop_queue(self, g: Group, reason: str, out: list[Action]) -> None:
        if g.queue:
            self._drop(reason, len(g.queue), out)
            g.queue.clear()

    def _drop(self, reason: str, n: int, out: list[Action]) -> None:
        self.counters.drop(reason, n)
        out.append(Drop(reason, n))
