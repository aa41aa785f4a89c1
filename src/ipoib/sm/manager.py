"""The embedded subnet manager: the sweep state machine (IBA 14.4), sans-I/O.

A :class:`SubnetManager` is driven only by MADs and time: :meth:`~SubnetManager.receive`
takes a MAD that arrived at the SM's port, :meth:`~SubnetManager.handle_timer` the passing of
time, and :meth:`~SubnetManager.drain` returns the MADs to send (:class:`OutMad`: the bytes,
the DLID, the destination QP). A binding (:mod:`ipoib.sm.agent`) moves them to and from a
port; the SM never touches a fabric object (ARCHITECTURE.md, laws 1 and 2).

Life of the SM, as OpenSM's state manager runs it:

- **Heavy sweep**: directed-route discovery (:mod:`.discovery`); if a master SM that outranks
  this one exists, go STANDBY and poll it; otherwise assign LIDs (:mod:`.lids`, honouring the
  guid2lid cache and the LIDs ports already have), compute routes (:mod:`.routing`, minhop or
  updn), P_Key tables (:mod:`.partitions`) and multicast trees (:mod:`.mcast`), then program
  and activate ports (:mod:`.program`). The first completed sweep makes the subnet "up" and
  opens the SA (C15-0.1.3: no SA answers before that).
- **Light sweep** every ``light_sweep_interval`` seconds (10 s, as OpenSM): a changed port or
  switch escalates to a heavy sweep. A Trap 128 (or 144) is answered with TrapRepress and
  triggers a heavy sweep at once; a trap during a sweep queues one more.
- **SMInfo**: Get is answered with GUID, priority, state and ActCount (SM_Key only to a
  requester that presents it); Set carries the handover protocol (HANDOVER, STANDBY,
  DISABLE, DISCOVER). A master that finds a standby SM outranking it hands over.

Counters: ``drops`` (reason → count, documented in :data:`DROP_REASONS`), ``counters`` (sweeps,
traps, ...), and the SMP statistics of :attr:`SubnetManager.tx`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr

from ..wire.errors import DecodeError
from ..wire.gid import DEFAULT_GID_PREFIX
from ..wire.mad import (
    MAD_HEADER_SIZE,
    RESPONSE_BIT,
    MadStatus,
    Method,
    MgmtClass,
    Notice,
    is_response,
    mad_attr_id,
    mad_attr_mod,
    make_response,
    smp_data,
)
from ..wire.smp import SmInfo, SmInfoAttrMod, SmpAttr, SmState
from .discovery import Discovery, LightSweep, Subnet
from .graph import SubnetGraph
from .lids import LidAssignment, assign_lids, format_guid2lid
from .mcast import McastPlanner
from .partitions import FULL_MEMBER, PartitionPlan, place_pkeys, plan_partitions
from .program import Memory, MftUpdate, Plan, Programmer
from .routing import linear_fdb_top, minhop, updn
from .sa.mcmember import McastGroups
from .sa.server import SaServer
from .transactions import TIMEOUT, MadAddr, OutMad, SmpTransactions

DROP_REASONS = frozenset({
    "malformed",          # shorter than a MAD header, or a body that does not decode
    "unexpected_class",   # a management class the SM does not serve
    "sa_not_master",      # SA request while not master or before the first sweep ends
    "trap_not_master",    # a trap while standby (OpenSM drops them too)
    "unsupported_smp",    # an SMP request other than SMInfo or a trap
    "stray_response",     # a response to nothing we sent (counted by the transactions too)
})

ROUTING_ENGINES = ("minhop", "updn")
_SMP_CLASSES = frozenset((int(MgmtClass.SUBN_DIRECTED_ROUTE), int(MgmtClass.SUBN_LID_ROUTED)))
_SA_CLASS = int(MgmtClass.SUBN_ADM)


@dataclass(frozen=True, slots=True)
class SmConfig:
    """Knobs, with OpenSM's defaults where it has one."""

    priority: int = 0
    sm_key: int = 1
    routing: str = "minhop"
    updn_roots: tuple[int, ...] | None = None
    partitions: str | None = None
    """partitions.conf text (None: every port a full member of the Default partition)."""
    light_sweep_interval: float = 10.0
    transaction_timeout: float = 0.2
    transaction_retries: int = 3
    window: int = 256
    """SMPs on the wire at once."""
    subnet_prefix: int = DEFAULT_GID_PREFIX
    subnet_timeout: int = 18
    packet_life_time: int = 18
    sminfo_poll_interval: float = 10.0
    sminfo_poll_retries: int = 4
    sweep_retry_delay: float = 1.0
    """Wait before sweeping again after a sweep that had failures; doubled after each
    further failure, up to ``light_sweep_interval``."""

    def __post_init__(self) -> None:
        if self.routing not in ROUTING_ENGINES:
            raise ValueError(f"routing engine {self.routing!r}: expected minhop or updn")
        if not 0 <= self.priority <= 15:
            raise ValueError(f"SM priority {self.priority} is not 0..15")


@dataclass(slots=True)
class Progress:
    """A snapshot for progress displays."""

    phase: str
    nodes: int
    smps_sent: int
    outstanding: int
    lft_blocks: int
    sweeps: int


@dataclass(slots=True)
class SweepReport:
    """What the last heavy sweep did."""

    nodes: int = 0
    switches: int = 0
    cas: int = 0
    lids_assigned: int = 0
    lids_changed: int = 0
    sets: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0


@mypyc_attr(allow_interpreted_subclasses=True)  # tests and benchmarks wrap its entry points
class SubnetManager:
    """The SM core. ``guid2lid`` is a previous run's LID cache (port GUID → LID)."""

    def __init__(self, config: SmConfig | None = None, *,
                 guid2lid: Mapping[int, int] | None = None) -> None:
        self.config = config or SmConfig()
        self.out: list[OutMad] = []
        cfg = self.config
        self.tx = SmpTransactions(self.out, window=cfg.window, timeout=cfg.transaction_timeout,
                                  retries=cfg.transaction_retries)
        self.state = int(SmState.NOT_ACTIVE)
        self.now = 0.0
        self.guid2lid: dict[int, int] = dict(guid2lid or {})
        self.subnet: Subnet | None = None
        self.lids: dict[int, int] = {}
        self.by_lid: dict[int, tuple[int, int]] = {}
        self.lfts: dict[int, bytearray] = {}
        self.sm_lid = 0
        self.memory = Memory()
        self.partition_plan: PartitionPlan | None = None
        self.groups = McastGroups()
        self.sa = SaServer(self)
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.log: deque[tuple[float, str]] = deque(maxlen=1000)
        self.subnet_up = False
        self.report = SweepReport()
        self.phase = "idle"
        self.act_count = 0
        self.master: tuple[int, tuple[int, ...]] | None = None
        self._discovery: Discovery | None = None
        self._programmer: Programmer | None = None
        self._light: LightSweep | None = None
        self._planner: McastPlanner | None = None
        self._sweeping = False
        self._again = False
        self._reregister = True
        self._light_at: float | None = None
        self._retry_at: float | None = None
        self._poll_at: float | None = None
        self._poll_failures = 0
        self._mft_pending = False
        self._retry_delay = self.config.sweep_retry_delay

    # -- I/O surface --------------------------------------------------------------------

    def drain(self) -> list[OutMad]:
        """Take the MADs to send."""
        out = self.out[:]
        self.out.clear()
        return out

    def start(self, now: float) -> None:
        """Begin: discover the subnet (state DISCOVERING)."""
        self._enter(now)
        self.state = int(SmState.DISCOVERING)
        self._note(f"SM starting (priority {self.config.priority})")
        self._heavy_sweep()

    def request_sweep(self, now: float) -> None:
        """Ask for a heavy sweep now (after the current one, if one is running)."""
        self._enter(now)
        if self.state in (SmState.MASTER, SmState.DISCOVERING):
            self._heavy_sweep()

    def stop(self) -> None:
        """Stop sweeping and answering (state NOT_ACTIVE); outstanding SMPs are forgotten."""
        self.tx.cancel_all()
        self.state = int(SmState.NOT_ACTIVE)
        self._sweeping = False
        self._light_at = self._retry_at = self._poll_at = None
        self.phase = "stopped"

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` has work."""
        times = [t for t in (self.tx.get_timer(), self._light_at, self._retry_at,
                             self._poll_at, self.sa.get_timer()) if t is not None]
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Retries, light sweeps, standby polls, SA RMPP timers."""
        self._enter(now)
        self.tx.handle_timer(now)
        self.out.extend(self.sa.handle_timer(now))
        if self._retry_at is not None and self._retry_at <= now:
            self._retry_at = None
            if not self._sweeping and self.state in (SmState.MASTER, SmState.DISCOVERING):
                self._heavy_sweep()
        if self._light_at is not None and self._light_at <= now:
            self._light_at = None
            if self.state == SmState.MASTER and not self._sweeping:
                self._light_sweep()
        if self._poll_at is not None and self._poll_at <= now:
            self._poll_at = None
            if self.state == SmState.STANDBY:
                self._poll_master()

    def receive_answer(self, mad: bytes, now: float) -> None:
        """Handle a response (R bit set) of an SMP class: :meth:`receive` without the source
        address it does not need (every SMP of a sweep comes back through here)."""
        self.now = max(self.now, now)
        self.tx.now = self.now
        if not self.tx.on_response(mad, now):
            self.drops["stray_response"] += 1

    def receive(self, mad: bytes, addr: MadAddr, now: float) -> None:
        """Handle a MAD that arrived at the SM's port (QP0 or QP1)."""
        self.now = max(self.now, now)  # _enter, inline: once per MAD
        self.tx.now = self.now
        if len(mad) < MAD_HEADER_SIZE:
            self.drops["malformed"] += 1
            return
        cls, method = mad[1], mad[3]
        if cls in _SMP_CLASSES:
            if method & RESPONSE_BIT or is_response(method):
                if not self.tx.on_response(mad, now):
                    self.drops["stray_response"] += 1
            else:
                self._smp_request(mad, addr)
        elif cls == _SA_CLASS:
            if self.state != SmState.MASTER or not self.subnet_up:
                self.drops["sa_not_master"] += 1
                return
            self.out.extend(self.sa.receive(mad, addr, now))
            if self.groups.dirty:
                self._update_mfts()
        else:
            self.drops["unexpected_class"] += 1

    # -- helpers ------------------------------------------------------------------------

    def _enter(self, now: float) -> None:
        self.now = max(self.now, now)
        self.tx.now = self.now

    def _note(self, text: str) -> None:
        self.log.append((self.now, text))

    @property
    def sm_port_guid(self) -> int:
        """The SM's port GUID (0 before its own NodeInfo came back)."""
        if self.subnet is not None:
            return self.subnet.sm_port_guid
        if self._discovery is not None:
            return self._discovery.subnet.sm_port_guid
        return 0

    @property
    def graph(self) -> SubnetGraph | None:
        """The subnet graph of the last completed sweep."""
        return self.subnet.graph if self.subnet is not None else None

    def progress(self) -> Progress:
        """Where the SM is, for a progress display."""
        nodes = (self._discovery.nodes_found if self._discovery is not None
                 else len(self.subnet.graph) if self.subnet else 0)
        blocks = self._programmer.stats["lft_blocks"] if self._programmer else 0
        return Progress(self.phase, nodes, self.tx.sent, self.tx.outstanding, blocks,
                        self.counters["heavy_sweeps"])

    def guid2lid_text(self) -> str:
        """The LID cache in OpenSM's guid2lid format, for the caller to persist."""
        return format_guid2lid(self.guid2lid)

    # -- heavy sweep --------------------------------------------------------------------

    def _heavy_sweep(self) -> None:
        if self._sweeping:
            self._again = True
            return
        self._sweeping = True
        self._again = False
        self.phase = "discover"
        self.counters["heavy_sweeps"] += 1
        self.act_count += 1
        self.report = SweepReport(started=self.now)
        self._discovery = Discovery(self.tx, self._discovered)
        self._discovery.start()

    def _discovered(self) -> None:
        assert self._discovery is not None
        sub = self._discovery.subnet
        self._discovery = None
        rep = self.report
        rep.errors = Counter(sub.errors)
        rep.nodes = len(sub.graph)
        rep.switches = len(sub.graph.switches)
        rep.cas = rep.nodes - rep.switches
        if not sub.sm_guid or self.state == SmState.NOT_ACTIVE:
            self._sweep_failed("own node did not answer")
            return
        if self._defer_to_other_sm(sub):
            return
        self.phase = "route"
        self.subnet = sub
        self._compute(sub)
        self.phase = "program"
        plan = Plan(
            lids=self.lids, sm_lid=self.sm_lid, lfts=self.lfts,
            top=linear_fdb_top(self.lids), pkeys=self._pkey_tables(sub),
            mfts=self._mfts(), subnet_prefix=self.config.subnet_prefix,
            subnet_timeout=self.config.subnet_timeout, client_reregister=self._reregister,
        )
        self._programmer = Programmer(self.tx, sub, plan, self.memory, self._programmed)
        self._programmer.start()

    def _compute(self, sub: Subnet) -> None:
        """LIDs, routes, partitions for the subnet just discovered."""
        graph = sub.graph
        assignment: LidAssignment = assign_lids(graph, self.guid2lid,
                                                sm_port_guid=sub.sm_port_guid)
        self.lids = assignment.lids
        self.guid2lid = dict(assignment.cache)
        self.report.lids_assigned = len(self.lids)
        self.report.lids_changed = len(assignment.changed)
        self.sm_lid = self.lids.get(sub.sm_port_guid, 0)
        self.by_lid = {}
        for node, port in graph.endports:
            lid = self.lids.get(port.guid)
            if lid:
                self.by_lid[lid] = (node.guid, port.num)
        if self.config.routing == "updn":
            self.lfts = updn(graph, self.lids, self.config.updn_roots)
        else:
            self.lfts = minhop(graph, self.lids)
        self.partition_plan = plan_partitions(self.config.partitions, graph, sub.sm_port_guid)
        self._planner = McastPlanner(graph)
        present = {port.guid for _node, port in graph.endports}
        self.groups.sync(self.partition_plan.groups, present, self.config.packet_life_time)

    def _pkey_tables(self, sub: Subnet) -> dict[int, tuple[int, ...]]:
        """Block 0 of every endport's P_Key table, current entries kept in place."""
        assert self.partition_plan is not None
        out: dict[int, tuple[int, ...]] = {}
        graph = sub.graph
        for node, port in graph.endports:
            wanted = self.partition_plan.pkeys.get(port.guid)
            current = sub.pkeys.get((node.guid, port.num))
            if wanted is None or current is None:
                continue
            size = min(node.partition_cap or 32, 32)
            table, _spill = place_pkeys(wanted, current[:size], size)
            out[port.guid] = tuple(table) + (0,) * (32 - len(table))
        return out

    def _programmed(self, ok: bool) -> None:
        prog = self._programmer
        assert prog is not None
        rep = self.report
        rep.sets = Counter(prog.stats)
        rep.failures = Counter(prog.failures)
        rep.finished = self.now
        self._sweeping = False
        self.phase = "idle"
        if not ok:
            self._sweep_failed("some Sets failed: " + ", ".join(
                f"{k} {v}" for k, v in sorted(prog.failures.items())))
            return
        self._reregister = False
        self._retry_delay = self.config.sweep_retry_delay
        self.state = int(SmState.MASTER)
        if not self.subnet_up:
            self.subnet_up = True
            self._note(f"SUBNET UP: {rep.nodes} nodes, {len(self.lids)} LIDs")
        self.counters["sweeps_ok"] += 1
        if self._mft_pending:
            self._update_mfts()
        if self._again:
            self._heavy_sweep()
        else:
            self._light_at = self.now + self.config.light_sweep_interval

    def _sweep_failed(self, why: str) -> None:
        self._sweeping = False
        self.phase = "idle"
        self.counters["sweeps_failed"] += 1
        self._note(f"sweep failed: {why}; again in {self._retry_delay:g} s")
        self._retry_at = self.now + self._retry_delay
        self._retry_delay = min(2 * self._retry_delay, self.config.light_sweep_interval)

    # -- light sweep --------------------------------------------------------------------

    def _light_sweep(self) -> None:
        if self.subnet is None:
            return
        self._sweeping = True
        self.phase = "light"
        self.counters["light_sweeps"] += 1
        self._light = LightSweep(self.tx, self.subnet, self.lids, self._light_done)
        self._light.start()

    def _light_done(self, changed: bool) -> None:
        self._sweeping = False
        self.phase = "idle"
        light = self._light
        self._light = None
        if changed or self._again:
            reasons = ", ".join(sorted(light.reasons)) if light else "trap"
            self._note(f"light sweep found changes ({reasons}): heavy sweep")
            self._heavy_sweep()
        else:
            self._light_at = self.now + self.config.light_sweep_interval

    # -- other SMs ----------------------------------------------------------------------

    def _outranks(self, priority: int, guid: int) -> bool:
        """IBA 14.4.1.1: higher priority wins; on a tie the lower port GUID."""
        mine = self.config.priority
        return priority > mine or (priority == mine and guid < self.sm_port_guid)

    def _defer_to_other_sm(self, sub: Subnet) -> bool:
        """IBA 14.4.1: a discovering SM that finds a master stands by (the master hands over
        if the newcomer outranks it); a master stands by for a master that outranks it and
        hands over to a standby that does."""
        master = self.state == SmState.MASTER
        for port_guid, raw in sorted(sub.sm_info.items()):
            if port_guid == sub.sm_port_guid:
                continue
            info = SmInfo.decode(raw)
            ranks = self._outranks(info.priority, port_guid)
            path = sub.sm_paths[port_guid]
            if info.sm_state == SmState.MASTER and (ranks or not master):
                self._become_standby(port_guid, path, sub)
                return True
            if master and ranks and info.sm_state in (SmState.STANDBY, SmState.DISCOVERING):
                self._note(f"handing over to SM {port_guid:#x} (priority {info.priority})")
                self.counters["handovers"] += 1
                self.tx.request(Method.SET, SmpAttr.SM_INFO, SmInfoAttrMod.HANDOVER, path,
                                self._sminfo_bytes(), self._ignore, None)
                self._become_standby(port_guid, path, sub)
                return True
        return False

    def _become_standby(self, port_guid: int, path: tuple[int, ...], sub: Subnet) -> None:
        self._note(f"SM {port_guid:#x} is master: standing by")
        self.state = int(SmState.STANDBY)
        self.master = (port_guid, path)
        self.subnet = sub
        self._sweeping = False
        self.phase = "standby"
        self._light_at = None
        self._poll_failures = 0
        self._poll_at = self.now + self.config.sminfo_poll_interval

    def _poll_master(self) -> None:
        if self.master is None:
            return
        self.tx.request(Method.GET, SmpAttr.SM_INFO, 0, self.master[1], None, self._polled,
                        None)

    def _polled(self, ctx: Any, status: int, data: bytes | None) -> None:
        if self.state != SmState.STANDBY:
            return
        alive = status != TIMEOUT and data is not None and not status and \
            SmInfo.decode(data).sm_state == SmState.MASTER
        self._poll_failures = 0 if alive else self._poll_failures + 1
        if self._poll_failures >= self.config.sminfo_poll_retries:
            self._note("master SM gone: taking over")
            self._take_over()
        else:
            self._poll_at = self.now + self.config.sminfo_poll_interval

    def _take_over(self) -> None:
        self.master = None
        self._poll_at = None
        self.state = int(SmState.DISCOVERING)
        self._reregister = True
        self._heavy_sweep()

    def _ignore(self, ctx: Any, status: int, data: bytes | None) -> None:
        """Callback for Sets whose answer changes nothing."""

    def _sminfo_bytes(self, sm_key: int | None = None) -> bytes:
        key = self.config.sm_key if sm_key is None else sm_key
        return SmInfo(guid=self.sm_port_guid, sm_key=key, act_count=self.act_count & 0xFFFFFFFF,
                      priority=self.config.priority, sm_state=self.state).encode()

    # -- SMP requests to the SM ---------------------------------------------------------

    def _smp_request(self, mad: bytes, addr: MadAddr) -> None:
        try:
            attr = mad_attr_id(mad)
            method = mad[3]
            data = smp_data(mad)
        except DecodeError:
            self.drops["malformed"] += 1
            return
        directed = mad[1] == MgmtClass.SUBN_DIRECTED_ROUTE
        if attr == SmpAttr.SM_INFO and method in (Method.GET, Method.SET):
            if method == Method.SET:
                self._sminfo_set(mad_attr_mod(mad))
            try:
                theirs = SmInfo.decode(data).sm_key
            except DecodeError:
                theirs = 0
            key = self.config.sm_key if theirs == self.config.sm_key else 0
            resp = make_response(mad, self._sminfo_bytes(key))
            self._reply(resp, addr, directed)
        elif attr == SmpAttr.NOTICE and method == Method.TRAP:
            self._trap(mad, data, addr, directed)
        elif method in (Method.GET, Method.SET):
            self.drops["unsupported_smp"] += 1
            resp = make_response(mad, status=MadStatus.METHOD_ATTR_UNSUPPORTED)
            self._reply(resp, addr, directed)
        else:
            self.drops["unsupported_smp"] += 1

    def _reply(self, resp: bytes, addr: MadAddr, directed: bool) -> None:
        if directed:
            self.out.append(OutMad(resp))
        else:
            self.out.append(OutMad(resp, dlid=addr.slid, dest_qp=addr.src_qp))

    def _sminfo_set(self, attr_mod: int) -> None:
        self.counters["sminfo_set"] += 1
        if attr_mod == SmInfoAttrMod.HANDOVER and self.state == SmState.STANDBY:
            self._note("handover received: becoming master")
            self._take_over()
        elif attr_mod == SmInfoAttrMod.DISABLE:
            self._note("disabled by another SM")
            self.stop()
        elif attr_mod == SmInfoAttrMod.STANDBY and self.state != SmState.MASTER:
            self.state = int(SmState.STANDBY)
        elif attr_mod == SmInfoAttrMod.DISCOVER and self.state == SmState.NOT_ACTIVE:
            self.state = int(SmState.DISCOVERING)
            self._heavy_sweep()

    def _trap(self, mad: bytes, data: bytes, addr: MadAddr, directed: bool) -> None:
        if self.state != SmState.MASTER:
            self.drops["trap_not_master"] += 1
            return
        self._reply(make_response(mad), addr, directed)
        try:
            number = Notice.from_smp_data(data).trap_number
        except DecodeError:
            self.drops["malformed"] += 1
            return
        self.counters[f"trap_{number}"] += 1
        if number in (128, 144):
            self._note(f"trap {number} from LID {addr.slid}: heavy sweep")
            self._heavy_sweep()

    # -- multicast ----------------------------------------------------------------------

    def _mfts(self) -> dict[int, dict[int, int]]:
        """Switch GUID → {MLID: mask} for every group (send-only members do not receive)."""
        sub, planner = self.subnet, self._planner
        out: dict[int, dict[int, int]] = {}
        if sub is None or planner is None:
            return out
        for group in self.groups.groups():
            members: list[tuple[int, int]] = []
            senders: list[tuple[int, int]] = []
            for port_guid, state in group.members.items():
                where = sub.endport(port_guid)
                if where is None:
                    continue
                members.append(where)
                if not state.join_state & 0x3:
                    senders.append(where)
            tree = planner.tree(members)
            for sw, mask in tree.masks.items():
                out.setdefault(sw, {})[group.mlid] = mask
            for guid, num in senders:
                peer = sub.graph.nodes[guid].ports[num].neighbour
                if peer is not None and peer[0] in out and group.mlid in out[peer[0]]:
                    out[peer[0]][group.mlid] &= ~(1 << peer[1])
        return out

    def _update_mfts(self) -> None:
        """Members joined or left: write the changed MFT blocks. During a heavy sweep the
        programming step writes its own plan; the change is applied when it ends."""
        self.groups.dirty = False
        if self.phase in ("discover", "route", "program") or self.subnet is None:
            self._mft_pending = True
            return
        self._mft_pending = False
        update = MftUpdate(self.tx, self.subnet, self.memory, self._mfts())
        self.counters["mft_updates"] += 1
        self.counters["mft_sets"] += update.sets

    # -- for tests and the CLI ----------------------------------------------------------

    def sm_info(self) -> dict[str, Any]:
        """The SM's identity and state, readable."""
        return {"guid": self.sm_port_guid, "lid": self.sm_lid, "priority": self.config.priority,
                "state": SmState(self.state).name, "act_count": self.act_count}


__all__ = ["DROP_REASONS", "FULL_MEMBER", "MadAddr", "OutMad", "Progress", "SmConfig",
           "SubnetManager", "SweepReport"]
