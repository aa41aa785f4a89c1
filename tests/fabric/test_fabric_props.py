"""Properties: bad input at any port is counted, never raised; every unicast packet ends in
exactly one outcome (delivered, or one counted drop), whatever the forwarding tables say."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipoib.fabric import Fabric
from ipoib.fabric.node import Switch
from ipoib.fabric.topogen import ring
from ipoib.wire.ib import GSI_QKEY, build_ud
from ipoib.wire.mad import Method, build_dr_smp, build_gmp

from .util import Ud, line3, ud, up

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@cache
def _fabric() -> tuple[Fabric, list[tuple[str, int]], list[bytes]]:
    fabric, sm = line3()
    ports = [(n.name, p.num) for n in fabric.nodes.values() for p in n.ports
             if p.num or n.is_switch]
    lid1, lid3 = sm.lid_of("hca-1"), sm.lid_of("hca-3")
    samples = [
        build_ud(vl=0, sl=0, dlid=lid3, slid=lid1, pkey=0xFFFF, dest_qp=0x48, qkey=0x1B,
                 src_qp=0x48, payload=b"sample payload"),
        build_ud(vl=15, sl=0, dlid=0xFFFF, slid=0xFFFF, pkey=0xFFFF, dest_qp=0, qkey=0,
                 src_qp=0, payload=build_dr_smp(Method.GET, 0x11, 0, 1, initial_path=(0, 3, 1))),
        build_ud(vl=0, sl=0, dlid=lid3, slid=lid1, pkey=0xFFFF, dest_qp=1, qkey=GSI_QKEY,
                 src_qp=1, payload=build_gmp(4, Method.GET, 0x12, 0, 1, bytes([0, 1]))),
    ]
    return fabric, ports, samples


@SETTINGS
@given(data=st.data(), junk=st.binary(max_size=400))
def test_random_bytes_never_raise(data: st.DataObject, junk: bytes) -> None:
    fabric, ports, _ = _fabric()
    name, port = data.draw(st.sampled_from(ports))
    fabric.inject(name, port, junk)
    fabric.process(fabric.now)
    assert not fabric._work and not fabric._pumping


@SETTINGS
@given(data=st.data())
def test_mutated_packets_never_raise(data: st.DataObject) -> None:
    fabric, ports, samples = _fabric()
    pkt = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(pkt) - 1))
        pkt[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(pkt)))
    name, port = data.draw(st.sampled_from(ports))
    fabric.inject(name, port, bytes(pkt[:cut] if data.draw(st.booleans()) else pkt))
    fabric.process(fabric.now)
    assert not fabric._work and not fabric._pumping


@cache
def _ring() -> tuple[Fabric, Ud, Ud]:
    fabric, _sm = up(ring(4, 1))
    return fabric, ud(fabric, "hca-1"), ud(fabric, "hca-3")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_lft_gives_exactly_one_outcome(data: st.DataObject) -> None:
    fabric, a, b = _ring()
    switches = [n for n in fabric.nodes.values() if isinstance(n, Switch)]
    target = b.lid
    saved = [(sw, sw.lft[target]) for sw in switches]
    for sw in switches:
        sw.lft[target] = data.draw(st.sampled_from([0, 1, 2, 3, 4, 0xFF]))
    before = sum(fabric.drops().values())
    b.post_recvs(1)
    a.send(b, b"where do I end up")
    got = len(b.cq.poll(4))
    after = sum(fabric.drops().values())
    a.cq.poll(4)
    while b.qp.rq:
        b.qp.rq.popleft()
    for sw, port in saved:
        sw.lft[target] = port
    assert got + (after - before) == 1


def test_line_sanity_after_fuzzing() -> None:
    fabric, _ports, _ = _fabric()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    a.send(b, b"still works")
    assert [w.data for w in b.cq.poll()] == [b"still works"]

