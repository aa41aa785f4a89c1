"""SMP transactions of the SM: TIDs, a bounded window of outstanding SMPs, timeouts, retries.

OpenSM keeps a few SMPs on the wire at once (``max_wire_smps``), retries a lost one after
``transaction_timeout`` and gives up after ``transaction_retries``; this module does the same,
sans-I/O. Requests wait in a FIFO until the window has room; each answer (or final timeout)
calls the requester's callback with the status and the 64-byte SMP data.

The sweep sends hundreds of thousands of SMPs on a large subnet, so the per-SMP work here is
kept small: every request is a copy of a prebuilt 256-byte template with the TID,
AttributeModifier, HopCount, InitialPath and data spliced in at offsets read from the
declared headers (:class:`~ipoib.wire.mad.DrSmpHeader`), and answers are matched by peeking
the TID. :class:`Fields` reads and patches attribute fields the same way, from the slots of
the declared records, so no layout is restated here (ARCHITECTURE.md, law 3).

The MAD layer below (the fabric's agents, or a kernel) may rewrite TID bits 63-32 with its
agent id; matching uses bits 31-0 only.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..wire.layout import Buffer, Record, patcher, reader
from ..wire.mad import (
    DR_INITIAL_PATH_OFFSET,
    MAD_SIZE,
    MAX_HOP_COUNT,
    PERMISSIVE_LID,
    SMP_DATA_OFFSET,
    SMP_DATA_SIZE,
    DrSmpHeader,
    MgmtClass,
    build_dr_smp,
    build_smp,
)

_TID = DrSmpHeader.BY_NAME["tid"].byte
_AM = DrSmpHeader.BY_NAME["attr_mod"].byte
_HC = DrSmpHeader.BY_NAME["hop_count"].byte
_STATUS = DrSmpHeader.BY_NAME["direction"].byte
_ATTR = DrSmpHeader.BY_NAME["attr_id"].byte
_DATA_END = SMP_DATA_OFFSET + SMP_DATA_SIZE
_DR_CLASS = int(MgmtClass.SUBN_DIRECTED_ROUTE)
_PATHS = MAD_SIZE - DR_INITIAL_PATH_OFFSET
_NO_DATA = bytes(SMP_DATA_SIZE)
_PATH_CACHE = 16384
"""InitialPaths remembered before the cache starts again (a bound, not a tuning)."""

Path = tuple[int, ...]
"""A directed route: the egress port at each hop (InitialPath entries 1..HopCount)."""

Callback = Callable[[Any, int, bytes | None], None]
"""``callback(ctx, status, data)``; ``data`` is None when every retry timed out."""

TIMEOUT = -1
"""Status passed to a callback whose SMP was never answered."""
_new_tuple = tuple.__new__
"""A named tuple made from its values without its generated ``__new__`` (one per SMP)."""


class MadAddr(NamedTuple):
    """Where a received MAD came from, as the MAD layer reports it (a named tuple, as
    :class:`OutMad`)."""

    slid: int = 0
    src_qp: int = 0
    pkey: int = 0xFFFF
    sl: int = 0
    dlid: int = 0


class OutMad(NamedTuple):
    """A MAD for the binding to send from the SM's port (a named tuple: one per SMP sent,
    made at a fraction of a frozen dataclass's cost).

    ``dlid`` is the permissive LID for directed-route SMPs; ``dest_qp`` is 0 for SMPs and the
    requester's QP for SA answers; ``pkey`` None means the port's default P_Key.
    """

    mad: bytes
    dlid: int = PERMISSIVE_LID
    dest_qp: int = 0
    pkey: int | None = None
    sl: int = 0

    @property
    def directed(self) -> bool:
        """True for a directed-route SMP (it follows its InitialPath, not a LID)."""
        return self.mad[1] == MgmtClass.SUBN_DIRECTED_ROUTE


class Fields:
    """Fast reads and patches of a few fields of a declared record, by its slots.

    ``Fields(PortInfo, "lid", "port_state")`` reads ``(lid, port_state)`` out of 64 raw
    bytes with :meth:`read`, and :meth:`patch` writes new values into a ``bytearray`` at
    ``offset``. Only integer fields are supported. Both are compiled once from the record's
    slots (:func:`ipoib.wire.layout.reader`, :func:`~ipoib.wire.layout.patcher`): the sweep
    reads and writes PortInfo fields for every port.
    """

    __slots__ = ("_patch", "_read", "names")

    def __init__(self, record: type[Record], *names: str) -> None:
        self.names = names
        self._read = reader(record, *names)
        self._patch = patcher(record, *names)

    def read(self, buf: Buffer, offset: int = 0) -> tuple[int, ...]:
        """The fields' values, in the order they were named."""
        return self._read(buf, offset)

    def patch(self, buf: bytearray, offset: int, *values: int) -> None:
        """Write ``values`` (in the order the fields were named) into ``buf``."""
        if len(values) != len(self.names):
            raise ValueError(f"{len(self.names)} values needed, {len(values)} given")
        self._patch(buf, offset, *values)


class _Kind:
    """One ``(method, attribute)`` of SMP: the request's bytes around what varies (HopCount,
    TID, AttributeModifier, data, InitialPath), cut once from the wire builder's SMP, and
    how many were sent (:attr:`SmpTransactions.stats`)."""

    __slots__ = ("attr", "between", "heads", "method", "mid", "sent")

    def __init__(self, method: int, attr: int) -> None:
        b = build_dr_smp(method, attr, 0, 0, b"", initial_path=(0,), hop_count=0)
        self.method = method
        self.attr = attr
        self.heads = tuple(b[:_HC] + bytes((n,)) + b[_HC + 1:_TID]
                           for n in range(MAX_HOP_COUNT + 1))
        """The bytes before the TID, by hop count."""
        self.mid = b[_TID + 8:_AM]
        self.between = b[_AM + 4:SMP_DATA_OFFSET]
        self.sent = 0


@dataclass(slots=True)
class _Request:
    key: int
    mad: bytes
    """The whole SMP once started (its TID is its key); before, its bytes after the TID."""
    callback: Callback
    ctx: Any
    kind: _Kind
    head: bytes
    """The SMP's bytes before its TID."""
    tries: int = 0
    deadline: float = 0.0
    done: bool = False


class SmpTransactions:
    """Directed-route SMP requests with a bounded window, timeouts and retries.

    ``out`` is the list the owner drains into the binding. ``stats`` counts SMPs sent per
    ``(method, attribute)``, plus ``retries`` and ``timeouts``; ``drops`` counts answers that
    match nothing (``unmatched_response``) or arrive too short (``malformed_response``).
    """

    def __init__(
        self, out: list[OutMad], *, window: int = 256, timeout: float = 0.2, retries: int = 3,
        tid_base: int = 0x1000,
    ) -> None:
        self.out = out
        self.window = max(1, window)
        self.timeout = timeout
        self.retries = retries
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self._next = tid_base & 0xFFFF_FFFF or 1
        self._waiting: deque[_Request] = deque()
        self._outstanding: dict[int, _Request] = {}
        self._timeouts: deque[_Request] = deque()
        self._kinds: dict[int, _Kind] = {}
        self._paths: dict[Path, bytes] = {}
        """InitialPath bytes (entry 0, the path, zeros) of the routes in use: a sweep sends
        dozens of SMPs along each."""
        self.now = 0.0
        self.high_water = 0
        """The most SMPs ever outstanding at once (never above ``window``)."""

    @property
    def stats(self) -> Counter[tuple[int, int]]:
        """SMPs put on the wire per ``(method, attribute)``, retries included."""
        return Counter({(k.method, k.attr): k.sent for k in self._kinds.values() if k.sent})

    # -- sending ------------------------------------------------------------------------

    def _kind(self, method: int, attr: int) -> _Kind:
        kind = self._kinds[method << 16 | attr] = _Kind(method, attr)
        return kind

    def _path(self, path: Path) -> bytes:
        if len(self._paths) >= _PATH_CACHE:
            self._paths.clear()
        b = self._paths[path] = bytes((0, *path)).ljust(_PATHS, b"\0")
        return b

    def request(
        self, method: int, attr: int, attr_mod: int, path: Path, data: bytes | None,
        callback: Callback, ctx: Any = None,
    ) -> None:
        """Queue a directed-route SMP along ``path`` (egress ports from the SM's port)."""
        n = len(path)
        if n > MAX_HOP_COUNT:
            raise ValueError(f"a directed route has at most {MAX_HOP_COUNT} hops")
        if not data:
            data = _NO_DATA
        elif len(data) != SMP_DATA_SIZE:
            if len(data) > SMP_DATA_SIZE:
                raise ValueError(f"SMP data is at most {SMP_DATA_SIZE} bytes")
            data = data.ljust(SMP_DATA_SIZE, b"\0")
        kind = self._kinds.get(method << 16 | attr) or self._kind(method, attr)
        paths = self._paths.get(path) or self._path(path)
        outstanding = self._outstanding
        if self._waiting or len(outstanding) >= self.window:
            # sent in turn as answers free the window; the TID is added then
            self._waiting.append(_Request(
                0, b"".join((kind.mid, attr_mod.to_bytes(4, "big"), kind.between, data, paths)),
                callback, ctx, kind, kind.heads[n]))
            return
        # started at once (the common case): the whole SMP in one join
        key = self._next
        self._next = (key + 1) & 0xFFFF_FFFF or 1
        mad = b"".join((kind.heads[n], key.to_bytes(8, "big"), kind.mid,
                        attr_mod.to_bytes(4, "big"), kind.between, data, paths))
        req = _Request(key, mad, callback, ctx, kind, b"", 1, self.now + self.timeout)
        outstanding[key] = req
        self._timeouts.append(req)
        kind.sent += 1
        self.out.append(_new_tuple(OutMad, (mad, PERMISSIVE_LID, 0, None, 0)))
        self.high_water = max(self.high_water, len(outstanding))

    def _start(self, req: _Request) -> None:
        key = self._next
        self._next = (key + 1) & 0xFFFF_FFFF or 1
        req.key = key
        outstanding = self._outstanding
        outstanding[key] = req
        req.mad = mad = req.head + key.to_bytes(8, "big") + req.mad
        req.tries = 1
        req.deadline = self.now + self.timeout
        self._timeouts.append(req)
        req.kind.sent += 1
        self.out.append(_new_tuple(OutMad, (mad, PERMISSIVE_LID, 0, None, 0)))
        self.high_water = max(self.high_water, len(outstanding))

    def _pump(self) -> None:
        waiting, outstanding, start = self._waiting, self._outstanding, self._start
        window = self.window
        while waiting and len(outstanding) < window:
            start(waiting.popleft())

    def _transmit(self, req: _Request) -> None:
        req.tries += 1
        req.deadline = self.now + self.timeout
        self._timeouts.append(req)
        req.kind.sent += 1
        self.out.append(_new_tuple(OutMad, (req.mad, PERMISSIVE_LID, 0, None, 0)))

    # -- receiving ----------------------------------------------------------------------

    def on_response(self, mad: Buffer, now: float) -> bool:
        """Match an answer to its request; True when it was ours (whatever its status)."""
        self.now = now
        if len(mad) < _DATA_END:
            self.drops["malformed_response"] += 1
            return False
        key = int.from_bytes(mad[_TID + 4:_TID + 8], "big")
        req = self._outstanding.pop(key, None)
        if req is None or mad[_ATTR] << 8 | mad[_ATTR + 1] != req.kind.attr:
            if req is not None:
                self._outstanding[key] = req
            self.drops["unmatched_response"] += 1
            return False
        req.done = True
        status = mad[_STATUS] << 8 | mad[_STATUS + 1]
        if mad[1] == _DR_CLASS:
            status &= 0x7FFF  # the D bit
        req.callback(req.ctx, status, bytes(mad[SMP_DATA_OFFSET:_DATA_END]))
        if self._waiting:
            self._pump()
        return True

    # -- time ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest retry deadline of an outstanding SMP."""
        q = self._timeouts
        while q and q[0].done:
            q.popleft()
        return q[0].deadline if q else None

    def handle_timer(self, now: float) -> None:
        """Resend SMPs whose answer is overdue; report the ones out of retries."""
        self.now = now
        q = self._timeouts
        expired: list[_Request] = []
        while q and (q[0].done or q[0].deadline <= now):
            req = q.popleft()
            if not req.done and req.deadline <= now and self._outstanding.get(req.key) is req:
                expired.append(req)
        for req in expired:
            if req.tries <= self.retries:
                self.counters["retries"] += 1
                self._transmit(req)
                continue
            self.counters["timeouts"] += 1
            del self._outstanding[req.key]
            req.done = True
            req.callback(req.ctx, TIMEOUT, None)
        self._pump()

    # -- state --------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when nothing is queued or waiting for an answer."""
        return not self._waiting and not self._outstanding

    @property
    def outstanding(self) -> int:
        """SMPs on the wire."""
        return len(self._outstanding)

    def cancel_all(self) -> None:
        """Forget every queued and outstanding SMP without calling back (SM stops)."""
        for req in self._outstanding.values():
            req.done = True
        self._outstanding.clear()
        self._waiting.clear()
        self._timeouts.clear()

    @property
    def sent(self) -> int:
        """SMPs put on the wire, retries included."""
        return sum(k.sent for k in self._kinds.values())


def lid_routed_smp(method: int, attr: int, attr_mod: int, tid: int, data: Sequence[int] | bytes
                   ) -> bytes:
    """A LID-routed SMP (SMInfo to another SM, trap answers): built by the wire builder."""
    return build_smp(method, attr, attr_mod, tid, bytes(data))
