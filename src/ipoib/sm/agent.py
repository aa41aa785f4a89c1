"""Binding the sans-I/O :class:`~ipoib.sm.manager.SubnetManager` to a port of a fabric.

This is the one place the SM meets the verbs-like API: it registers MAD agents for the
directed-route and LID-routed SMP classes (QP0) and the SA class (QP1) on the SM's port
(a CA port or a switch's port 0, like ``umad_register`` plus the ``issm`` device that sets
PortInfo.CapabilityMask.IsSM), hands every received MAD to the SM with its source address,
and sends what the SM drains. The SM itself never sees the fabric (ARCHITECTURE.md, law 1).

:func:`run_until` drives a fabric and an SM binding on a virtual clock, jumping from one timer
to the next, for tests, ``ipoib sweep`` and the benchmarks; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter

from ..fabric.agents import MadAgent, ReceivedMad
from ..fabric.fabric import Fabric
from ..wire.mad import PERMISSIVE_LID, RESPONSE_BIT, SA_CLASS_VERSION, MgmtClass
from .manager import SmConfig, SubnetManager
from .transactions import MadAddr

_new_tuple = tuple.__new__
_addr_of = itemgetter(*(ReceivedMad._fields.index(f) for f in MadAddr._fields))
"""A received MAD's source address fields, in :class:`MadAddr`'s order (one per MAD)."""
_DR_CLASS = int(MgmtClass.SUBN_DIRECTED_ROUTE)
_SMP_CLASSES = frozenset((int(MgmtClass.SUBN_DIRECTED_ROUTE), int(MgmtClass.SUBN_LID_ROUTED)))


class SmBinding:
    """A :class:`SubnetManager` running on ``node`` port ``port_num`` of ``fabric``.

    ``port_num`` defaults to 0 on a switch and 1 on a CA. The binding owns three MAD agents
    and the IsSM bit of the port; :meth:`close` gives them back. ``on_progress`` is called
    every ``progress_every`` received MADs: a bring-up runs inside one fabric step, so this
    is where a progress display can look at :meth:`SubnetManager.progress`.
    """

    def __init__(
        self, fabric: Fabric, node: str, port_num: int | None = None, *,
        sm: SubnetManager | None = None, config: SmConfig | None = None,
        guid2lid: Mapping[int, int] | None = None,
        on_progress: Callable[[], None] | None = None, progress_every: int = 2000,
    ) -> None:
        target = fabric.node(node)
        if port_num is None:
            port_num = 0 if target.is_switch else 1
        self.fabric = fabric
        self.node = node
        self.port_num = port_num
        self.sm = sm if sm is not None else SubnetManager(config, guid2lid=guid2lid)
        self.agents: dict[int, MadAgent] = {}
        for cls, version in ((MgmtClass.SUBN_DIRECTED_ROUTE, 1),
                             (MgmtClass.SUBN_LID_ROUTED, 1),
                             (MgmtClass.SUBN_ADM, SA_CLASS_VERSION)):
            self.agents[cls] = fabric.open_mad_agent(node, port_num, cls, version, self._rx,
                                                     requests=True)
        fabric.set_issm(node, port_num, True)
        self.sent = 0
        self.received = 0
        self._next: float | None = None
        self._stale = True
        """The SM's deadline must be asked again (it started, got a MAD or acted)."""
        self._wakeup: Callable[[], None] | None = None
        self.on_progress = on_progress
        self.progress_every = max(1, progress_every)

    def set_wakeup(self, wakeup: Callable[[], None]) -> None:
        """Be pumped only when ``wakeup`` was called or the SM's deadline is due (the pump
        contract's sleepers): the deadline moves only when the SM starts, gets a MAD or
        acts on a timer; the first two call it, and the pump asks again after the third."""
        self._wakeup = wakeup

    def _moved(self) -> None:
        """The SM's deadline may have moved: ask it again, and say so to the pump."""
        self._stale = True
        if self._wakeup is not None:
            self._wakeup()

    def start(self, now: float | None = None) -> None:
        """Start the SM (its first SMPs go out at once)."""
        self._moved()
        self.sm.start(self.fabric.now if now is None else now)
        self.flush()

    def _rx(self, rx: ReceivedMad) -> None:
        self._moved()
        mad = rx.mad
        if len(mad) > 3 and mad[3] & RESPONSE_BIT and mad[1] in _SMP_CLASSES:
            self.sm.receive_answer(mad, self.fabric.now)
        else:
            self.sm.receive(mad, _new_tuple(MadAddr, _addr_of(rx)), self.fabric.now)
        self.flush()
        self.received += 1
        if self.on_progress is not None and self.received % self.progress_every == 0:
            self.on_progress()

    def flush(self) -> None:
        """Send every MAD the SM produced."""
        agents = self.agents
        for mad, dlid, dqp, pkey, sl in self.sm.drain():
            agent = agents.get(mad[1])
            if agent is None:
                continue
            self.sent += 1
            if mad[1] == _DR_CLASS and dlid == PERMISSIVE_LID and pkey is None and not sl:
                agent.send(mad)  # a directed-route SMP: the defaults say it all
            else:
                agent.send(mad, dlid=dlid, dqp=dqp, pkey=pkey, sl=sl)

    def get_timer(self) -> float | None:
        """The SM's next deadline. It moves only when the SM starts, handles a MAD or acts
        on a timer, all of which pass through the binding; between those it is remembered,
        so a pump turn that only moved data costs no call into the SM."""
        if self._stale:
            self._next = self.sm.get_timer()
            self._stale = False
        return self._next

    def handle_timer(self, now: float) -> None:
        """Let the SM act on time, then send what it produced (the pump asks for the next
        deadline after this, so there is no need to wake it)."""
        self._stale = True
        self.sm.handle_timer(now)
        self.flush()

    def process(self, now: float) -> None:
        """The pump contract: act on the SM's timers when they are due."""
        t = self.get_timer()
        if t is not None and t <= now:
            self.handle_timer(now)

    def close(self) -> None:
        """Stop the SM, unregister the agents, clear IsSM."""
        self._moved()
        self.sm.stop()
        for agent in self.agents.values():
            agent.close()
        self.agents.clear()
        self.fabric.set_issm(self.node, self.port_num, False)


def run_until(
    fabric: Fabric, bindings: SmBinding | list[SmBinding], done: Callable[[], bool], *,
    limit: float = 3600.0, on_step: Callable[[float], None] | None = None,
) -> float:
    """Advance the virtual clock from timer to timer until ``done()`` or ``limit`` seconds.

    Returns the virtual time reached. ``on_step(now)`` runs after each step (progress).
    """
    sms = bindings if isinstance(bindings, list) else [bindings]
    now = fabric.now
    while not done():
        timers = [t for t in (fabric.get_timer(), *(b.get_timer() for b in sms))
                  if t is not None]
        if not timers:
            break
        now = max(now, min(timers))
        if now > limit:
            break
        fabric.process(now)
        for b in sms:
            t = b.get_timer()
            if t is not None and t <= now:
                b.handle_timer(now)
        if on_step is not None:
            on_step(now)
    return now
