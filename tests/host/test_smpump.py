"""The embedded SM under the pump contract (host/ibnet.SmPump): its deadline is asked again
only when the SM handled a MAD or acted on a timer, never in a turn that moved only data."""

from __future__ import annotations

from typing import Any

from ipoib.host.ibnet import SmPump


class Binding:
    """Counts the calls an SmPump makes; ``received`` and the deadline are the test's."""

    def __init__(self) -> None:
        self.received = 0
        self.deadline: float | None = 10.0
        self.asked = 0
        self.handled: list[float] = []

    def get_timer(self) -> float | None:
        self.asked += 1
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.handled.append(now)
        self.deadline = now + 30.0


def test_the_deadline_is_asked_again_only_after_a_mad_or_a_timer() -> None:
    b = Binding()
    pump = SmPump(b)  # type: ignore[arg-type]
    assert pump.get_timer() == 10.0 and b.asked == 1
    for now in (1.0, 2.0, 3.0):  # turns that moved only data
        pump.process(now)
        assert pump.get_timer() == 10.0
    assert b.asked == 1 and b.handled == []
    b.received += 1  # a MAD came (its handler ran in the fabric's process)
    b.deadline = 4.0
    pump.process(3.5)
    assert b.asked == 2 and pump.get_timer() == 4.0 and b.handled == []
    pump.process(4.0)  # due: the SM acts, and its new deadline is asked
    assert b.handled == [4.0] and pump.get_timer() == 34.0 and b.asked == 3
    pump.process(5.0)
    assert b.asked == 3 and b.handled == [4.0]


def test_a_real_binding_counts_what_it_handles() -> None:
    from ipoib.fabric import Fabric
    from ipoib.fabric.topogen import fat_tree
    from ipoib.sm.agent import SmBinding

    fabric = Fabric(fat_tree(4))
    binding = SmBinding(fabric, fabric.topology.nodes[0].name)
    pump: Any = SmPump(binding)
    binding.start(0.0)
    first = pump.get_timer()
    now = 0.0
    for _ in range(200):  # the sweep: MADs out, answers in, each one counted
        fabric.process(now)
        pump.process(now)
        t = fabric.get_timer()
        nxt = pump.get_timer()
        if t is None and (nxt is None or nxt > now + 5):
            break
        now = min(x for x in (t, nxt) if x is not None)
    assert binding.received > 0 and binding.sm.subnet_up
    assert pump.get_timer() == binding.get_timer() and first is not None
