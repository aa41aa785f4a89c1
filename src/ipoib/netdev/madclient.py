"""The driver's SA client: PathRecord and MCMemberRecord transactions on QP1, sans-I/O.

Linux's ``ib_sa`` module, reduced to what IPoIB asks of it (wire-formats.md §5, §7.4, §7.6):

- ``SubnAdmGet(PathRecord)`` with DGID, SGID, TClass, NumbPath 1 and P_Key (mask 0x340C),
  1000 ms timeout — :meth:`SaClient.path_query`;
- ``SubnAdmSet`` / ``SubnAdmDelete(MCMemberRecord)``, 3000 ms — :meth:`SaClient.join`,
  :meth:`SaClient.leave`;
- ``SubnAdmGet(ClassPortInfo)`` — :meth:`SaClient.class_port_info` (send-only join support).

Every MAD is built and read with :mod:`ipoib.wire.mad` and :mod:`ipoib.wire.sa`. The methods
return :class:`SendMad` (the glue posts it on QP1 to the SM's LID, remote QPN 1, Q_Key
0x80010000) and, when a transaction ends, a result carrying the caller's ``cookie``:
:class:`PathQueryDone`, :class:`JoinDone`, :class:`LeaveDone`, :class:`ClassPortInfoDone`, or
:class:`SaFailed` naming the SA status (``ERR_NO_RECORDS`` ...), ``timeout`` or ``malformed``.

TransactionIDs are ``agent_id << 32 | counter``, as Linux's MAD layer makes them; a response is
matched by TID, method and attribute, and anything else is dropped and counted (``mad_*``). A
request unanswered after its timeout is sent again with the same TID, ``retries`` times; a
BUSY answer waits for that resend. At most ``max_inflight`` transactions are outstanding (the SA
is the fabric's bottleneck); later ones wait in a bounded FIFO (``max_queued``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass

from ..wire.errors import DecodeError
from ..wire.mad import (
    ClassPortInfo,
    MadStatus,
    Method,
    MgmtClass,
    SaMad,
    build_sa_mad,
    is_response,
    mad_attr_id,
    mad_class,
    mad_method,
    mad_status,
    mad_tid,
)
from ..wire.sa import IPOIB_PATH_REC_MASK, MCMemberRecord, PathRecord, SaAttr, SaStatus
from .actions import (
    ClassPortInfoDone,
    JoinDone,
    LeaveDone,
    PathQueryDone,
    SaAction,
    SaFailed,
    SendMad,
)
from .counters import Counters

__all__ = [
    "GSI_QKEY", "KIND_CLASS_PORT_INFO", "KIND_JOIN", "KIND_LEAVE", "KIND_PATH", "SA_QPN",
    "SaClient", "SaClientConfig", "status_name",
]

SA_QPN = 1
"""The SA answers on the GSI, QP1 (IBA 15.2.1)."""
GSI_QKEY = 0x80010000
"""The well-known Q_Key of QP1 (IBA 13.5.1)."""

KIND_PATH = "path"
KIND_JOIN = "join"
KIND_LEAVE = "leave"
KIND_CLASS_PORT_INFO = "class_port_info"


@dataclass(frozen=True, slots=True)
class SaClientConfig:
    """Timeouts (seconds), retries and bounds. Linux: PathRecord 1000 ms, joins 3000 ms."""

    path_timeout: float = 1.0
    join_timeout: float = 3.0
    class_port_info_timeout: float = 3.0
    path_retries: int = 2
    join_retries: int = 0
    max_inflight: int = 64
    max_queued: int = 4096

    def __post_init__(self) -> None:
        if min(self.path_timeout, self.join_timeout, self.class_port_info_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.path_retries < 0 or self.join_retries < 0:
            raise ValueError("retries must be >= 0")
        if self.max_inflight < 1 or self.max_queued < 0:
            raise ValueError("max_inflight >= 1 and max_queued >= 0")


def status_name(status: int) -> str:
    """The name of a MAD status: the SA code (bits 15-8) if any, else the generic one."""
    cs = status & 0xFF00
    if cs:
        try:
            return SaStatus(cs).name
        except ValueError:
            return f"status_{status:#06x}"
    try:
        return MadStatus(status).name
    except ValueError:
        return f"status_{status:#06x}"


class _Txn:
    """One SA transaction: its request bytes, what answers it, and its retry state."""

    __slots__ = (
        "attr",
        "cookie",
        "deadline",
        "expect",
        "kind",
        "mad",
        "retries",
        "sends",
        "tid",
        "timeout",
    )

    def __init__(self, tid: int, kind: str, mad: bytes, cookie: Hashable, attr: int,
                 expect: int, timeout: float, retries: int) -> None:
        self.tid = tid
        self.kind = kind
        self.mad = mad
        self.cookie = cookie
        self.attr = attr
        self.expect = expect
        self.timeout = timeout
        self.retries = retries
        self.sends = 0
        self.deadline = 0.0


class SaClient:
    """SA transactions of one port: build, send, time out, retry, match, decode."""

    def __init__(
        self, agent_id: int, counters: Counters | None = None,
        config: SaClientConfig | None = None,
    ) -> None:
        if not 0 <= agent_id <= 0xFFFFFFFF:
            raise ValueError("agent_id must fit 32 bits")
        self.agent_id = agent_id
        self.counters = counters if counters is not None else Counters()
        self.config = config or SaClientConfig()
        self.stats: Counter[str] = Counter()
        self._inflight: dict[int, _Txn] = {}
        self._queue: deque[_Txn] = deque()
        self._counter = 0

    @property
    def in_flight(self) -> int:
        """Transactions sent and not finished."""
        return len(self._inflight)

    @property
    def queued(self) -> int:
        """Transactions waiting for a free slot."""
        return len(self._queue)

    # --- requests ---------------------------------------------------------------------------

    def path_query(
        self, now: float, *, sgid: bytes, dgid: bytes, pkey: int, tclass: int = 0,
        cookie: Hashable = None,
    ) -> list[SaAction]:
        """SubnAdmGet(PathRecord) to ``dgid`` the way Linux ``path_rec_start`` asks."""
        rec = PathRecord(dgid=dgid, sgid=sgid, tclass=tclass, numb_path=1, pkey=pkey)
        return self._request(now, KIND_PATH, Method.GET, SaAttr.PATH_RECORD, rec.encode(),
                             IPOIB_PATH_REC_MASK, cookie)

    def join(
        self, now: float, record: MCMemberRecord, mask: int, cookie: Hashable = None,
    ) -> list[SaAction]:
        """SubnAdmSet(MCMemberRecord): join (and maybe create) a group."""
        return self._request(now, KIND_JOIN, Method.SET, SaAttr.MC_MEMBER_RECORD,
                             record.encode(), mask, cookie)

    def leave(
        self, now: float, record: MCMemberRecord, mask: int, cookie: Hashable = None,
    ) -> list[SaAction]:
        """SubnAdmDelete(MCMemberRecord): drop the JoinState bits in ``record``."""
        return self._request(now, KIND_LEAVE, Method.DELETE, SaAttr.MC_MEMBER_RECORD,
                             record.encode(), mask, cookie)

    def class_port_info(self, now: float, cookie: Hashable = None) -> list[SaAction]:
        """SubnAdmGet(ClassPortInfo)."""
        return self._request(now, KIND_CLASS_PORT_INFO, Method.GET, SaAttr.CLASS_PORT_INFO,
                             b"", 0, cookie)

    def cancel(self, cookie: Hashable, now: float) -> list[SaAction]:
        """Forget every transaction with ``cookie`` (no result is reported for them).

        Returns the sends of queued transactions that take the freed slots.
        """
        out: list[SaAction] = []
        n = len(self._queue)
        self._queue = deque(t for t in self._queue if t.cookie != cookie)
        cancelled = n - len(self._queue)
        for t in [t for t in self._inflight.values() if t.cookie == cookie]:
            del self._inflight[t.tid]
            cancelled += 1
        self.stats["cancelled"] += cancelled
        self._fill(now, out)
        return out

    # --- responses and timers ------------------------------------------------------------------

    def receive(self, mad: bytes, now: float) -> list[SaAction]:
        """An SA MAD arrived on QP1: finish the transaction it answers."""
        out: list[SaAction] = []
        try:
            cls, method, tid = mad_class(mad), mad_method(mad), mad_tid(mad)
            attr, status = mad_attr_id(mad), mad_status(mad)
        except DecodeError:
            self.counters.drop("mad_malformed")
            return out
        if cls != MgmtClass.SUBN_ADM or not is_response(method):
            self.counters.drop("mad_unexpected")
            return out
        t = self._inflight.get(tid)
        if t is None:
            self.counters.drop("mad_unknown_tid")
            return out
        if method != t.expect or attr != t.attr:
            self.counters.drop("mad_unexpected")
            return out
        self.stats["responses"] += 1
        if status == MadStatus.BUSY and t.sends <= t.retries:
            self.stats["busy"] += 1
            return out  # the timer sends it again
        self._finish(t, now, out)
        if status:
            name = status_name(status)
            self.stats[f"status_{name}"] += 1
            out.append(SaFailed(t.cookie, t.kind, status, name))
            return out
        try:
            out.append(self._decode(t, mad))
        except DecodeError:
            self.counters.drop("mad_malformed")
            out.append(SaFailed(t.cookie, t.kind, 0, "malformed"))
            return out
        self.stats["ok"] += 1
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of a transaction in flight."""
        return min((t.deadline for t in self._inflight.values()), default=None)

    def handle_timer(self, now: float) -> list[SaAction]:
        """Resend or fail the transactions whose deadline has passed."""
        out: list[SaAction] = []
        for t in [t for t in self._inflight.values() if t.deadline <= now]:
            if t.sends <= t.retries:
                self.stats["retries"] += 1
                self._send(t, now, out)
            else:
                self.stats["timeouts"] += 1
                self._finish(t, now, out)
                out.append(SaFailed(t.cookie, t.kind, 0, "timeout"))
        return out

    # --- internals ------------------------------------------------------------------------------

    def _request(
        self, now: float, kind: str, method: int, attr: int, data: bytes, mask: int,
        cookie: Hashable,
    ) -> list[SaAction]:
        c = self.config
        if kind == KIND_PATH:
            timeout, retries = c.path_timeout, c.path_retries
        elif kind == KIND_CLASS_PORT_INFO:
            timeout, retries = c.class_port_info_timeout, c.path_retries
        else:
            timeout, retries = c.join_timeout, c.join_retries
        tid = self._new_tid()
        mad = build_sa_mad(method, attr, tid, data, component_mask=mask)
        expect = Method.DELETE_RESP if method == Method.DELETE else Method.GET_RESP
        t = _Txn(tid, kind, mad, cookie, attr, expect, timeout, retries)
        out: list[SaAction] = []
        if len(self._inflight) < c.max_inflight:
            self._send(t, now, out)
        elif len(self._queue) < c.max_queued:
            self.stats["queued"] += 1
            self._queue.append(t)
        else:
            self.counters.drop("mad_queue_full")
            out.append(SaFailed(cookie, kind, 0, "queue_full"))
        return out

    def _new_tid(self) -> int:
        while True:
            self._counter = (self._counter + 1) & 0xFFFFFFFF
            tid = self.agent_id << 32 | self._counter
            if tid not in self._inflight:
                return tid

    def _send(self, t: _Txn, now: float, out: list[SaAction]) -> None:
        if t.sends == 0:
            self.stats[f"sent_{t.kind}"] += 1
        t.sends += 1
        t.deadline = now + t.timeout
        self._inflight[t.tid] = t
        out.append(SendMad(t.mad, t.tid))

    def _finish(self, t: _Txn, now: float, out: list[SaAction]) -> None:
        del self._inflight[t.tid]
        self._fill(now, out)

    def _fill(self, now: float, out: list[SaAction]) -> None:
        while self._queue and len(self._inflight) < self.config.max_inflight:
            self._send(self._queue.popleft(), now, out)

    @staticmethod
    def _decode(t: _Txn, mad: bytes) -> SaAction:
        data = SaMad.decode(mad).data
        if t.kind == KIND_PATH:
            return PathQueryDone(t.cookie, PathRecord.decode(data))
        if t.kind == KIND_JOIN:
            return JoinDone(t.cookie, MCMemberRecord.decode(data))
        if t.kind == KIND_LEAVE:
            return LeaveDone(t.cookie, MCMemberRecord.decode(data))
        return ClassPortInfoDone(t.cookie, ClassPortInfo.decode(data))
