"""The runtime and pumpables that sleep (``set_wakeup``, what an IPoIB device offers): such a
pumpable is processed when it woke, when its timer is due and after a kick, never otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable

from ipoib.host.runtime import Runtime
from tests.host.helpers import LoopThread, RecordingPump


class Sleeper(RecordingPump):
    def __init__(self) -> None:
        super().__init__()
        self.wakeup: Callable[[], None] | None = None

    def set_wakeup(self, wakeup: Callable[[], None] | None) -> None:
        self.wakeup = wakeup


def wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_sleeper_runs_when_woken_when_due_and_after_a_kick() -> None:
    fabric, sleeper, other = RecordingPump(), Sleeper(), Sleeper()
    rt = Runtime([fabric, sleeper, other])
    assert sleeper.wakeup is not None and other.wakeup is not None
    steps: list[str] = []

    def script(now: float) -> None:
        n = len(fabric.calls)
        if n == 1:
            fabric.timer = now + 0.02  # the next pump has nothing for the sleepers
            steps.append("idle")
        elif n == 2:
            fabric.timer = now + 0.02
            steps.append("still idle")
        elif n == 3:
            assert sleeper.wakeup is not None
            sleeper.wakeup()  # as the fabric's deferred completion handler does
            steps.append("woken")

    def own(now: float) -> None:
        if len(sleeper.calls) == 2:
            sleeper.timer = now + 0.02  # set while it runs: the runtime asks after

    fabric.on_process = script
    sleeper.on_process = own
    with LoopThread(rt) as lt:
        wait_for(lambda: len(steps) == 3 and len(sleeper.calls) == 3)
        time.sleep(0.05)
        assert len(sleeper.calls) == 3 and len(other.calls) == 1
        lt.call(rt.kick)
        wait_for(lambda: len(other.calls) == 2)
    # pump 1: everyone; pumps 2 and 3: the fabric's timer; in pump 3 the sleeper is woken
    assert sleeper.calls[0] == fabric.calls[0] and sleeper.calls[1] == fabric.calls[2]
    assert sleeper.calls[2] >= sleeper.calls[1] + 0.02  # its own timer, not woken
    assert other.calls[0] == fabric.calls[0]  # then nothing until the kick


class Device(Sleeper):
    """A sleeping pumpable that is also an endpoint (as an IPoIB device is)."""

    carrier = True

    def transmit(self, packet: bytes, now: float) -> None:
        pass

    def drain_to_host(self) -> list[bytes]:
        return []


class FakeTun:
    fd, mtu, vnet_hdr, offload, netns = -1, 2044, 0, False, ""

    def set_carrier(self, on: bool) -> None:
        pass


def test_an_endpoint_that_sleeps_is_known_as_one() -> None:
    dev, stranger = Device(), Device()
    rt = Runtime([RecordingPump(), dev])
    att = rt.attach(FakeTun(), dev)
    assert att.sleeper is dev
    other = rt.attach(FakeTun(), stranger)
    assert other.sleeper is None  # not one of this runtime's pumpables: drained every turn
