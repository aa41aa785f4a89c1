"""The runtime: packets between TUNs, batches until EAGAIN, the pump contract, carrier."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Interface

from ipoib.host import netns, tun
from ipoib.host.relay import relay_pair
from ipoib.host.runtime import Attachment, Runtime
from ipoib.wire.ip import parse_ip, udp_packet
from tests.host.helpers import LoopThread, RecordingPump, needs_root, run_in

pytestmark = needs_root

A, B = IPv4Interface("10.98.0.1/24"), IPv4Interface("10.98.0.2/24")


def wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class Recorder:
    """An endpoint that keeps what it is given and hands back what the test queues."""

    def __init__(self, carrier: bool = True) -> None:
        self.got: list[tuple[bytes, float]] = []
        self.out: list[bytes] = []
        self.carrier = carrier

    def transmit(self, packet: bytes, now: float) -> None:
        self.got.append((packet, now))

    def drain_to_host(self) -> Iterable[bytes]:
        out, self.out = self.out, []
        return out


def _udp_to_b(packets: list[tuple[bytes, float]]) -> list[tuple[bytes, float]]:
    return [(p, t) for p, t in packets if p[0] >> 4 == 4 and str(parse_ip(p).dst) == str(B.ip)]


def test_ping_between_two_namespaces_through_the_bare_relay(ns_pair: tuple[str, str]) -> None:
    ns_a, ns_b = ns_pair
    ta = tun.create(ns_a, mtu=2044, ipv4=A)
    tb = tun.create(ns_b, mtu=2044, ipv4=B)
    try:
        ea, eb = relay_pair()
        rt = Runtime()
        att_a, att_b = rt.attach(ta, ea), rt.attach(tb, eb)
        with LoopThread(rt):
            wait_for(lambda: rt.all_carrier)  # the relay's links are up: carrier on both TUNs
            r = run_in(ns_a, "ping", "-c", "3", "-i", "0.05", "-W", "2", str(B.ip))
            r6 = run_in(ns_b, "ping", "-c", "1", "-s", "2016", "-M", "do", "-W", "2", str(A.ip))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r6.returncode == 0, r6.stdout + r6.stderr
        assert att_a.rx_packets >= 4 and att_b.tx_packets >= 4
        assert att_b.rx_packets >= 4 and att_a.tx_packets >= 4
        assert rt.drops.total() == 0
    finally:
        ta.close()
        tb.close()


def test_a_burst_is_read_in_batches_until_eagain(ns_pair: tuple[str, str]) -> None:
    ns_a, _ = ns_pair
    ta = tun.create(ns_a, mtu=2044, ipv4=A, carrier=True)
    try:
        with netns.entered(ns_a):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            for i in range(100):
                s.sendto(i.to_bytes(2, "big"), (str(B.ip), 9999))
        ep, clock = Recorder(), RecordingPump()
        rt = Runtime([clock])
        rt.attach(ta, ep)
        with LoopThread(rt):
            wait_for(lambda: len(_udp_to_b(ep.got)) == 100)
        got = _udp_to_b(ep.got)
        assert [p[-2:] for p, _ in got] == [i.to_bytes(2, "big") for i in range(100)]
        # one pump per batch, not per packet: at least two batches (the budget is 64)
        assert 2 <= rt.batches < 20 and len(clock.calls) == rt.batches
        assert len({t for _, t in got}) <= rt.batches
    finally:
        ta.close()


def test_the_earliest_timer_is_armed_and_fires_without_io() -> None:
    clock = RecordingPump()
    rt = Runtime([clock])
    fired: list[float] = []

    def first(now: float) -> None:
        if len(clock.calls) == 1:
            clock.timer = now + 30.0  # far away; then an earlier one comes
            rt.kick()
        elif len(clock.calls) == 2:
            clock.timer = now + 0.05
            deadline.append(clock.timer)
        elif deadline and now >= deadline[0]:
            fired.append(now)

    deadline: list[float] = []
    clock.on_process = first
    with LoopThread(rt):
        wait_for(lambda: fired)
    assert fired[0] >= deadline[0]
    assert len(clock.calls) == 3  # first pump, the kick, the timer: nothing in between


def test_carrier_follows_the_endpoint(ns_pair: tuple[str, str]) -> None:
    ns_a, _ = ns_pair
    ta = tun.create(ns_a, mtu=2044, ipv4=A)
    try:
        ep, clock = Recorder(carrier=False), RecordingPump()
        seen: list[tuple[Attachment, bool]] = []
        rt = Runtime([clock])
        rt.on_carrier.append(lambda att: seen.append((att, att.carrier)))
        att = rt.attach(ta, ep)

        def link(now: float) -> None:
            if clock.timer is None and not ep.carrier and len(clock.calls) == 1:
                clock.timer = now + 0.02
            elif len(clock.calls) > 1 and not ep.carrier and not seen:
                ep.carrier = True  # the "join" finished

        clock.on_process = link
        with LoopThread(rt) as lt:
            wait_for(lambda: seen)
            assert tun.link_info(ns_a)["carrier"] == 1
            ep.carrier = False
            lt.call(rt.kick)
            wait_for(lambda: len(seen) == 2)
            assert tun.link_info(ns_a)["carrier"] == 0
        assert seen == [(att, True), (att, False)]
    finally:
        ta.close()


def test_writes_reach_the_host_and_bad_ones_are_counted(ns_pair: tuple[str, str]) -> None:
    ns_a, _ = ns_pair
    ta = tun.create(ns_a, mtu=2044, ipv4=A, carrier=True)
    try:
        with netns.entered(ns_a):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx:
            rx.bind((str(A.ip), 7001))
            rx.settimeout(5)
            ep = Recorder()
            rt = Runtime()
            att = rt.attach(ta, ep)
            with LoopThread(rt) as lt:
                ep.out = [bytes(20), udp_packet(str(B.ip), str(A.ip), 5, 7001, b"after")]
                lt.call(rt.kick)  # work made outside the TUNs (a control command, say)
                assert rx.recvfrom(100) == (b"after", (str(B.ip), 5))
            assert rt.drops["tun_write_error"] == 1
            assert att.tx_packets == 1
            assert rt.counters()["drop_tun_write_error"] == 1
    finally:
        ta.close()
