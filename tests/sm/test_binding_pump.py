"""The SM binding under the pump contract (docs/conventions.md): its deadline is asked of the
SM again only after the SM started, handled a MAD or acted on a timer, never in a turn that
moved only data; and a binding pumped like the runtime pumps it brings the subnet up."""

from __future__ import annotations

from ipoib.fabric import Fabric
from ipoib.fabric.topogen import fat_tree
from ipoib.sm.agent import SmBinding
from ipoib.sm.manager import SubnetManager


class _Counting(SubnetManager):
    """An SM that counts how often its deadline is asked."""

    asked = 0

    def get_timer(self) -> float | None:
        self.asked += 1
        return super().get_timer()


def _pump_until_quiet(fabric: Fabric, binding: SmBinding, now: float = 0.0) -> float:
    for _ in range(500):
        fabric.process(now)
        binding.process(now)
        t = fabric.get_timer()
        nxt = binding.get_timer()
        if t is None and (nxt is None or nxt > now + 5):
            break
        now = min(x for x in (t, nxt) if x is not None)
    return now


def test_the_deadline_is_asked_again_only_after_the_sm_did_something() -> None:
    fabric = Fabric(fat_tree(4))
    sm = _Counting()
    binding = SmBinding(fabric, fabric.topology.nodes[0].name, sm=sm)
    binding.start(0.0)
    now = _pump_until_quiet(fabric, binding)
    assert binding.sm.subnet_up and binding.received > 0
    deadline = binding.get_timer()
    assert deadline is not None and deadline > now  # the light sweep
    before = sm.asked
    for t in (now + 0.1, now + 0.2, now + 0.3):  # turns that moved only data
        fabric.process(t)
        binding.process(t)
        assert binding.get_timer() == deadline
    assert sm.asked == before
    binding.process(deadline)  # due: the SM acts; its new deadline is asked at the next look
    assert sm.asked == before  # process() looked at the remembered deadline
    after = binding.get_timer()
    assert sm.asked == before + 1 and after is not None and after > deadline


def test_a_mad_makes_the_deadline_fresh() -> None:
    fabric = Fabric(fat_tree(4))
    binding = SmBinding(fabric, fabric.topology.nodes[0].name)
    binding.start(0.0)
    _pump_until_quiet(fabric, binding)
    binding.get_timer()
    received = binding.received
    fabric.link_down("hca-1", 1, fabric.now)  # trap 128 to the SM: a MAD, a heavy sweep
    _pump_until_quiet(fabric, binding, fabric.now)
    assert binding.received > received
    assert binding.get_timer() == binding.sm.get_timer()
