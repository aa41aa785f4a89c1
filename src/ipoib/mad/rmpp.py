"""RMPP, the reliable multi-packet protocol that carries SA tables bigger than one MAD.

IBA 13.6, as the Linux MAD layer (``mad_rmpp.c``) runs it, for the SA class:

- The payload is the SA header plus the SA data. Every DATA segment repeats the MAD and SA
  headers and carries 200 data bytes (MAD bytes 56-255); segments are numbered from 1.
- The first segment has flag First and PayloadLength = segments * 220 - pad; the last has
  flag Last and PayloadLength = 220 - pad, where 220 is the SA header plus one data area and
  ``pad`` the unused bytes of the last area. A single segment is First|Last and both rules
  give 20 + data bytes. Linux reads only the last one; so do we.
- The receiver ACKs with SegmentNumber = the last segment received in order and
  NewWindowLast = the highest segment it will accept. It starts at 1 and grows by a window
  whenever the window is filled. The sender never sends past NewWindowLast, retransmits from
  the last ACKed segment on timeout, and aborts (status TmR) after too many retries.
- STOP (status ResX) from the receiver ends a transfer for lack of resources; ABORT, from
  either end, ends it with a reason. The receiver's ACK, STOP and ABORT copy the DATA
  header with the R bit flipped (Linux ``format_ack``); a sender's ABORT keeps its method.
- One deviation from Linux: a resent segment the receiver already has in order is answered
  with an ACK of where it stands (Linux re-ACKs only up to its last ACK), so a sender in
  retry learns of progress and resets its retry count.

Both ends are sans-I/O: MADs and ``now`` go in, a :class:`Step` comes out (MADs to send,
payloads delivered, transfers finished, next deadline). Transfers are keyed by (peer, TID);
``peer`` is whatever the caller uses to address a port (e.g. ``(lid, qpn)``). Resources are
bounded (transfers, segments) and every discarded MAD is counted in ``drops`` by reason:

``malformed`` ``not_rmpp`` ``wrong_class`` ``bad_version`` ``bad_type`` ``bad_status``
``bad_segment`` ``bad_length`` ``unknown_transfer`` ``outside_window`` ``duplicate``
``unexpected`` ``stale_ack`` ``window_too_small`` ``segment_too_big`` ``too_many_transfers``
``too_large`` ``duplicate_transfer`` ``aborted_by_peer`` ``stopped_by_peer`` (and, for whole
transfers, ``timeout`` and ``too_many_retries``). ``stats`` counts the rest (segments sent,
retransmitted, ACKs, transfers completed and failed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import IntEnum

from ipoib.wire.errors import DecodeError
from ipoib.wire.layout import Buffer
from ipoib.wire.mad import (
    RESPONSE_BIT,
    RMPP_FLAG_ACTIVE,
    RMPP_FLAG_FIRST,
    RMPP_FLAG_LAST,
    RMPP_OFFSET,
    SA_DATA_SIZE,
    MadHeader,
    MgmtClass,
    RmppHeader,
    RmppType,
    SaHeader,
    SaMad,
)

RMPP_VERSION = 1
NO_RESP_TIME = 0x1F
"""RRespTime 0x1F: no response time given (IBA 13.6.2.1)."""
SEGMENT_PAYLOAD = SaHeader.SIZE + SA_DATA_SIZE
"""220: what one segment counts toward PayloadLength (Linux ``IB_MGMT_RMPP_DATA``)."""


class RmppStatus(IntEnum):
    """RMPPStatus (IBA 13.6.2.1, Table 179)."""

    NORMAL = 0
    RESX = 1  # STOP: resources exhausted
    T2L = 118  # total time too long
    BAD_LENGTH = 119  # inconsistent last and first PayloadLength
    BAD_SEGMENT = 120  # inconsistent First flag and SegmentNumber
    BAD_TYPE = 121  # illegal RMPPType
    W2S = 122  # NewWindowLast too small
    S2B = 123  # SegmentNumber too big
    BAD_STATUS = 124  # illegal status
    UNSUPPORTED_VERSION = 125
    TOO_MANY_RETRIES = 126
    UNSPECIFIED = 127


Key = tuple[Hashable, int]


@dataclass(frozen=True, slots=True)
class Outbound:
    """One MAD to send to ``peer``."""

    peer: Hashable
    mad: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A reassembled payload: the first segment's headers and all the SA data."""

    peer: Hashable
    header: MadHeader
    sa: SaHeader
    data: bytes

    @property
    def tid(self) -> int:
        """The transaction the payload belongs to."""
        return self.header.tid


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a sent transfer ended: ``ok``, or the reason and RMPP status of its failure."""

    peer: Hashable
    tid: int
    ok: bool
    reason: str = ""
    status: int = RmppStatus.NORMAL


@dataclass(slots=True)
class Step:
    """What one call produced; ``deadline`` is when to call ``handle_timer`` next."""

    send: list[Outbound] = field(default_factory=list)
    delivered: list[Message] = field(default_factory=list)
    finished: list[Outcome] = field(default_factory=list)
    deadline: float | None = None


def is_rmpp(mad: Buffer) -> bool:
    """True for a MAD the RMPP layer must handle: Active flag and a known RMPPType.

    OpenSM behind umad2sim answers GetTable with only the Active flag set and type 0
    (wire-formats.md §5.1); such a reply is one whole MAD, not an RMPP segment.
    """
    if len(mad) < RMPP_OFFSET + RmppHeader.SIZE:
        return False
    hdr = RmppHeader.decode(mad, RMPP_OFFSET)
    return bool(hdr.rmpp_flags & RMPP_FLAG_ACTIVE) and RmppType.DATA <= hdr.rmpp_type <= RmppType.ABORT


def _reply(
    header: MadHeader, sa: SaHeader, kind: int, status: int, seg: int = 0, nwl: int = 0,
    *, flip: bool = True,
) -> bytes:
    """An ACK/STOP/ABORT with no data. Answering a segment it flips the R bit of the
    segment's method (Linux ``format_ack``); a sender aborting its own transfer does not."""
    rmpp = RmppHeader(
        rmpp_version=RMPP_VERSION, rmpp_type=kind, r_resp_time=NO_RESP_TIME,
        rmpp_flags=RMPP_FLAG_ACTIVE, rmpp_status=status, segment_number=seg,
        payload_length=nwl,
    )
    method = header.method ^ RESPONSE_BIT if flip else header.method
    return SaMad(header.replace(method=method), rmpp, sa).encode()


def _parse(mad: Buffer, drops: Counter[str]) -> SaMad | None:
    """The SA view of an RMPP MAD, or None with the drop counted."""
    try:
        sm = SaMad.decode(mad)
    except DecodeError:
        drops["malformed"] += 1
        return None
    if sm.header.mgmt_class != MgmtClass.SUBN_ADM:
        drops["wrong_class"] += 1
        return None
    if not sm.rmpp.rmpp_flags & RMPP_FLAG_ACTIVE:
        drops["not_rmpp"] += 1
        return None
    return sm


# --- sender ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Tx:
    peer: Hashable
    header: MadHeader
    sa: SaHeader
    data: bytes
    count: int
    deadline: float
    last_ack: int = 0
    sent: int = 0
    newwin: int = 1
    retries: int = 0


class RmppSender:
    """Sends SA payloads as RMPP DATA segments and runs the window, retries and aborts.

    ``timeout`` is how long to wait for an ACK before resending the window (Linux: 2 s);
    after ``max_retries`` resends without progress the transfer is aborted with TmR.
    """

    def __init__(
        self, *, timeout: float = 2.0, max_retries: int = 5, max_transfers: int = 64,
        max_segments: int = 4096,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_transfers = max_transfers
        self.max_segments = max_segments
        self.drops: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self._tx: dict[Key, _Tx] = {}

    def owns(self, peer: Hashable, tid: int) -> bool:
        """Whether a transfer to ``peer`` with ``tid`` is in progress."""
        return (peer, tid) in self._tx

    def __len__(self) -> int:
        return len(self._tx)

    def get_timer(self) -> float | None:
        """The earliest ACK deadline, or None when nothing is in flight."""
        return min((t.deadline for t in self._tx.values()), default=None)

    def start(
        self, peer: Hashable, header: MadHeader, sa: SaHeader, data: Buffer, now: float
    ) -> Step:
        """Begin sending ``data`` (the SA data: records at their stride) to ``peer``.

        ``header`` is the MAD header of every segment (e.g. GetTableResp with the request's
        TID); ``sa`` the SA header every segment repeats.
        """
        step = Step()
        key = (peer, header.tid)
        count = max(1, -(-len(data) // SA_DATA_SIZE))
        reason = ""
        if key in self._tx:
            reason = "duplicate_transfer"
        elif len(self._tx) >= self.max_transfers:
            reason = "too_many_transfers"
        elif count > self.max_segments:
            reason = "too_large"
        if reason:
            self.drops[reason] += 1
            step.finished.append(Outcome(peer, header.tid, False, reason))
        else:
            tx = _Tx(peer, header, sa, bytes(data), count, now + self.timeout)
            self._tx[key] = tx
            self._send_window(tx, step)
        step.deadline = self.get_timer()
        return step

    def _segment(self, tx: _Tx, n: int) -> bytes:
        """DATA segment ``n`` of a transfer (1-based)."""
        pad = tx.count * SA_DATA_SIZE - len(tx.data)
        flags = RMPP_FLAG_ACTIVE
        paylen = 0
        if n == 1:
            flags |= RMPP_FLAG_FIRST
            paylen = tx.count * SEGMENT_PAYLOAD - pad
        if n == tx.count:
            flags |= RMPP_FLAG_LAST
            paylen = SEGMENT_PAYLOAD - pad
        rmpp = RmppHeader(
            rmpp_version=RMPP_VERSION, rmpp_type=RmppType.DATA, r_resp_time=NO_RESP_TIME,
            rmpp_flags=flags, segment_number=n, payload_length=paylen,
        )
        chunk = tx.data[(n - 1) * SA_DATA_SIZE : n * SA_DATA_SIZE]
        return SaMad(tx.header, rmpp, tx.sa, chunk).encode()

    def _send_window(self, tx: _Tx, step: Step, start: int | None = None) -> None:
        first = tx.sent + 1 if start is None else start
        last = min(tx.newwin, tx.count)
        for n in range(first, last + 1):
            step.send.append(Outbound(tx.peer, self._segment(tx, n)))
            self.stats["segments" if n > tx.sent else "retransmitted"] += 1
        tx.sent = max(tx.sent, last)

    def _end(self, tx: _Tx, step: Step, ok: bool, reason: str = "", status: int = 0) -> None:
        del self._tx[(tx.peer, tx.header.tid)]
        step.finished.append(Outcome(tx.peer, tx.header.tid, ok, reason, status))
        self.stats["completed" if ok else "failed"] += 1

    def _abort(self, tx: _Tx, step: Step, reason: str, status: int) -> None:
        self.drops[reason] += 1
        mad = _reply(tx.header, tx.sa, RmppType.ABORT, status, flip=False)
        step.send.append(Outbound(tx.peer, mad))
        self._end(tx, step, False, reason, status)

    def receive(self, peer: Hashable, mad: Buffer, now: float) -> Step:
        """Handle an ACK, STOP or ABORT for one of our transfers."""
        step = Step()
        self._receive(peer, mad, now, step)
        step.deadline = self.get_timer()
        return step

    def _receive(self, peer: Hashable, mad: Buffer, now: float, step: Step) -> None:
        sm = _parse(mad, self.drops)
        if sm is None:
            return
        tx = self._tx.get((peer, sm.header.tid))
        if tx is None:
            self.drops["unknown_transfer"] += 1
            return
        r = sm.rmpp
        if r.rmpp_version != RMPP_VERSION:
            return self._abort(tx, step, "bad_version", RmppStatus.UNSUPPORTED_VERSION)
        if r.rmpp_type == RmppType.STOP:
            if r.rmpp_status != RmppStatus.RESX:
                return self._abort(tx, step, "bad_status", RmppStatus.BAD_STATUS)
            self.drops["stopped_by_peer"] += 1
            return self._end(tx, step, False, "stopped_by_peer", r.rmpp_status)
        if r.rmpp_type == RmppType.ABORT:
            self.drops["aborted_by_peer"] += 1
            return self._end(tx, step, False, "aborted_by_peer", r.rmpp_status)
        if r.rmpp_type == RmppType.DATA:
            self.drops["unexpected"] += 1
            return None
        if r.rmpp_type != RmppType.ACK:
            return self._abort(tx, step, "bad_type", RmppStatus.BAD_TYPE)
        if r.rmpp_status != RmppStatus.NORMAL:
            return self._abort(tx, step, "bad_status", RmppStatus.BAD_STATUS)
        seg, newwin = r.segment_number, r.payload_length
        if newwin < seg:
            return self._abort(tx, step, "window_too_small", RmppStatus.W2S)
        if seg > tx.count or seg > tx.newwin:
            return self._abort(tx, step, "segment_too_big", RmppStatus.S2B)
        if newwin < tx.newwin or seg < tx.last_ack:
            self.drops["stale_ack"] += 1
            return None
        self.stats["acks"] += 1
        if seg > tx.last_ack:
            tx.last_ack = seg
            tx.retries = 0
        tx.newwin = newwin
        if tx.last_ack == tx.count:
            return self._end(tx, step, True)
        tx.sent = max(tx.sent, tx.last_ack)
        self._send_window(tx, step)
        tx.deadline = now + self.timeout
        return None

    def handle_timer(self, now: float) -> Step:
        """Resend unacknowledged windows whose ACK is overdue; abort hopeless transfers."""
        step = Step()
        for tx in [t for t in self._tx.values() if t.deadline <= now]:
            if tx.retries >= self.max_retries:
                self._abort(tx, step, "too_many_retries", RmppStatus.TOO_MANY_RETRIES)
                continue
            tx.retries += 1
            self._send_window(tx, step, start=tx.last_ack + 1)
            tx.deadline = now + self.timeout
        step.deadline = self.get_timer()
        return step


# --- receiver --------------------------------------------------------------------------


@dataclass(slots=True)
class _Rx:
    peer: Hashable
    header: MadHeader
    sa: SaHeader
    deadline: float
    chunks: dict[int, bytes] = field(default_factory=dict)
    received: int = 0  # highest segment received in order
    last_seg: int = 0  # the segment flagged Last, once seen
    last_paylen: int = 0
    newwin: int = 1
    complete: bool = False


class RmppReceiver:
    """Reassembles RMPP DATA segments into whole payloads, ACKing a window at a time.

    A transfer that has not completed ``timeout`` seconds after its first segment is
    aborted (T2L, Linux uses 40 s). A completed one lingers ``linger`` seconds so that a
    sender whose final ACK was lost gets it again instead of a second delivery: keep it
    longer than senders keep retrying (the default sender gives up after 12 s). Lingering
    transfers count toward ``max_transfers``; the oldest is forgotten to make room for a new
    transfer. ``window`` segments are granted per ACK (Linux: 64).
    """

    def __init__(
        self, *, window: int = 64, timeout: float = 40.0, linger: float = 40.0,
        max_transfers: int = 64, max_segments: int = 4096,
    ) -> None:
        self.window = max(1, window)
        self.timeout = timeout
        self.linger = linger
        self.max_transfers = max_transfers
        self.max_segments = max_segments
        self.drops: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self._rx: dict[Key, _Rx] = {}

    def owns(self, peer: Hashable, tid: int) -> bool:
        """Whether a transfer from ``peer`` with ``tid`` is being received (or lingers)."""
        return (peer, tid) in self._rx

    def __len__(self) -> int:
        return len(self._rx)

    def get_timer(self) -> float | None:
        """The earliest transfer timeout or linger end."""
        return min((r.deadline for r in self._rx.values()), default=None)

    def receive(self, peer: Hashable, mad: Buffer, now: float) -> Step:
        """Handle one RMPP MAD from ``peer``: a DATA segment, or STOP/ABORT from its sender."""
        step = Step()
        self._receive(peer, mad, now, step)
        step.deadline = self.get_timer()
        return step

    def _evict_lingering(self) -> None:
        done = [(r.deadline, k) for k, r in self._rx.items() if r.complete]
        if done:
            del self._rx[min(done, key=lambda d: d[0])[1]]
            self.stats["evicted"] += 1

    def _ack(self, rx: _Rx, step: Step) -> None:
        mad = _reply(rx.header, rx.sa, RmppType.ACK, 0, rx.received, rx.newwin)
        step.send.append(Outbound(rx.peer, mad))
        self.stats["acks"] += 1

    def _refuse(self, peer: Hashable, sm: SaMad, step: Step, kind: int, reason: str,
                status: int) -> None:
        """Count the drop, answer with STOP/ABORT and forget any state for the transfer."""
        self.drops[reason] += 1
        mad = _reply(sm.header, sm.sa, kind, status)
        step.send.append(Outbound(peer, mad))
        self._rx.pop((peer, sm.header.tid), None)

    def _receive(self, peer: Hashable, mad: Buffer, now: float, step: Step) -> None:
        sm = _parse(mad, self.drops)
        if sm is None:
            return
        r = sm.rmpp
        key = (peer, sm.header.tid)
        abort = RmppType.ABORT
        if r.rmpp_version != RMPP_VERSION:
            return self._refuse(peer, sm, step, abort, "bad_version",
                                RmppStatus.UNSUPPORTED_VERSION)
        if r.rmpp_type in (RmppType.STOP, RmppType.ABORT):
            reason = "stopped_by_peer" if r.rmpp_type == RmppType.STOP else "aborted_by_peer"
            self.drops[reason if key in self._rx else "unknown_transfer"] += 1
            self._rx.pop(key, None)
            return None
        if r.rmpp_type == RmppType.ACK:
            self.drops["unexpected"] += 1
            return None
        if r.rmpp_type != RmppType.DATA:
            return self._refuse(peer, sm, step, abort, "bad_type", RmppStatus.BAD_TYPE)
        if r.rmpp_status != RmppStatus.NORMAL:
            return self._refuse(peer, sm, step, abort, "bad_status", RmppStatus.BAD_STATUS)
        seg, first = r.segment_number, bool(r.rmpp_flags & RMPP_FLAG_FIRST)
        if (seg == 1) != first:
            return self._refuse(peer, sm, step, abort, "bad_segment", RmppStatus.BAD_SEGMENT)
        rx = self._rx.get(key)
        if rx is None:
            if seg != 1:
                self.drops["unknown_transfer"] += 1
                return None
            if len(self._rx) >= self.max_transfers:
                self._evict_lingering()
            if len(self._rx) >= self.max_transfers:
                return self._refuse(peer, sm, step, RmppType.STOP, "too_many_transfers",
                                    RmppStatus.RESX)
            if r.payload_length > self.max_segments * SEGMENT_PAYLOAD:
                return self._refuse(peer, sm, step, RmppType.STOP, "too_large",
                                    RmppStatus.RESX)
            rx = _Rx(peer, sm.header, sm.sa, now + self.timeout)
            self._rx[key] = rx
            self.stats["transfers"] += 1
        self._data(rx, sm, now, step)
        return None

    def _data(self, rx: _Rx, sm: SaMad, now: float, step: Step) -> None:
        r = sm.rmpp
        seg = r.segment_number
        if rx.complete or seg <= rx.received:
            # A resent segment we already have in order: the sender is in a retry, so tell
            # it where we are (it may have lost our ACK). Unlike Linux, which re-ACKs only
            # up to its last ACK, this lets a sender that lost a segment make progress.
            self.drops["duplicate"] += 1
            self._ack(rx, step)
            return
        if seg in rx.chunks:
            self.drops["duplicate"] += 1
            return
        if seg > rx.newwin or (rx.last_seg and seg > rx.last_seg):
            self.drops["outside_window"] += 1
            return
        if seg > self.max_segments:
            self._refuse(rx.peer, sm, step, RmppType.STOP, "too_large", RmppStatus.RESX)
            return
        if r.rmpp_flags & RMPP_FLAG_LAST:
            if not SaHeader.SIZE <= r.payload_length <= SEGMENT_PAYLOAD:
                self._refuse(rx.peer, sm, step, RmppType.ABORT, "bad_length",
                             RmppStatus.BAD_LENGTH)
                return
            rx.last_seg, rx.last_paylen = seg, r.payload_length
        rx.chunks[seg] = sm.data
        while rx.received + 1 in rx.chunks:
            rx.received += 1
        if rx.last_seg and rx.received == rx.last_seg:
            self._complete(rx, now, step)
        elif rx.received == rx.newwin:
            rx.newwin += self.window
            self._ack(rx, step)

    def _complete(self, rx: _Rx, now: float, step: Step) -> None:
        size = (rx.last_seg - 1) * SA_DATA_SIZE + rx.last_paylen - SaHeader.SIZE
        data = b"".join(rx.chunks[n] for n in range(1, rx.last_seg + 1))[:size]
        rx.chunks.clear()
        rx.complete = True
        rx.deadline = now + self.linger
        self._ack(rx, step)
        step.delivered.append(Message(rx.peer, rx.header, rx.sa, data))
        self.stats["delivered"] += 1

    def handle_timer(self, now: float) -> Step:
        """Abort transfers that took too long (T2L); forget completed ones after linger."""
        step = Step()
        for key, rx in [(k, r) for k, r in self._rx.items() if r.deadline <= now]:
            del self._rx[key]
            if not rx.complete:
                self.drops["timeout"] += 1
                mad = _reply(rx.header, rx.sa, RmppType.ABORT, RmppStatus.T2L)
                step.send.append(Outbound(rx.peer, mad))
        step.deadline = self.get_timer()
        return step
