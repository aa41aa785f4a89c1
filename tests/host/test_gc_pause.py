"""The collector pause around a bring-up: on for the SM's work, off again afterwards, always."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ipoib.fabric import topogen
from ipoib.host.ibnet import GC_PAUSE_LIMIT, GC_PAUSE_POLL, IbNet, collector_paused
from tests.clock import VirtualClock


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """Whatever a test does, the next one starts with the collector on and nothing frozen."""
    yield
    gc.enable()
    gc.unfreeze()


def test_the_collector_is_off_inside_and_on_after_even_on_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("bring-up failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_daemon_resumes_the_collector_when_the_subnet_is_up() -> None:
    net = IbNet(topogen.fat_tree(8), now=0.0)
    try:
        assert net.gc_pause is not None and not gc.isenabled()
        assert net.gc_pause.get_timer() == 0.0  # due at once, then every poll while paused
        net.gc_pause.process(1.0)
        assert not gc.isenabled() and net.gc_pause.get_timer() == 1.0 + GC_PAUSE_POLL
        net.gc_pause.process(GC_PAUSE_LIMIT - 0.01)
        assert net.gc_pause.get_timer() == GC_PAUSE_LIMIT
        assert net.sm is not None
        sm = net.sm.sm
        VirtualClock(net.pumpables).run_until(lambda: sm.subnet_up)
        assert gc.isenabled() and net.gc_pause.get_timer() is None
        assert gc.get_freeze_count() > 0  # the daemon's fabric stays out of the collector
    finally:
        net.close()
    assert gc.isenabled()


def test_the_daemon_resumes_the_collector_at_the_limit_or_on_close() -> None:
    topo = topogen.fat_tree(8)
    net = IbNet(topo, now=0.0)
    assert net.gc_pause is not None
    net.gc_pause.process(GC_PAUSE_LIMIT - 1)  # the subnet is not up yet: no SMP carried
    assert not gc.isenabled()
    net.gc_pause.process(GC_PAUSE_LIMIT)
    assert gc.isenabled()
    net.close()
    net = IbNet(topo, now=0.0)
    assert not gc.isenabled()
    net.close()
    assert gc.isenabled()


def test_no_pause_without_the_embedded_sm() -> None:
    net = IbNet(topogen.fat_tree(8), sm="none", now=0.0)
    try:
        assert net.gc_pause is None and gc.isenabled()
    finally:
        net.close()
