"""Neighbour table on a virtual clock: NUD states, queues, one query per GID, failures, GC."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipoib.netdev.actions import (
    CancelPathQuery,
    CreateAh,
    DestroyAh,
    Drop,
    Frame,
    NeighSend,
    SendArpRequest,
    SendNeighSolicit,
    StartPathQuery,
)
from ipoib.netdev.neigh import NeighConfig, NudState
from ipoib.netdev.path import Path
from ipoib.wire.ipoib import EtherType
from tests.netdev.harness import (
    Stack,
    dropped,
    frame,
    gid,
    hwaddr,
    ip4,
    of,
    path_record,
    run,
)

A, B, C = ip4(2), ip4(3), ip4(4)


def sent_frames(actions: list[Any]) -> list[Frame]:
    return [f for s in of(actions, NeighSend) for f in s.frames]


# --- the table of transitions ------------------------------------------------------------------
#
# Each row: events at times, then the expected state and what was sent. Events:
#   ("pkt", t)        a packet to A          ("reply", t)   ARP reply for A
#   ("learn", t)      ARP request from A     ("timers", t)  fire every timer up to t

TRANSITIONS: list[tuple[str, list[tuple[str, float]], NudState, list[str]]] = [
    ("first packet resolves", [("pkt", 0)], NudState.INCOMPLETE, ["bcast@0"]),
    ("three broadcast probes then failed",
     [("pkt", 0), ("timers", 10)], NudState.FAILED, ["bcast@0", "bcast@1", "bcast@2"]),
    ("reply makes it reachable", [("pkt", 0), ("reply", 0.5)], NudState.REACHABLE, ["bcast@0"]),
    ("reachable for 30 s after the reply",
     [("pkt", 0), ("reply", 0.5), ("timers", 30.4)], NudState.REACHABLE, ["bcast@0"]),
    ("unused reachable goes stale",
     [("pkt", 0), ("reply", 0.5), ("timers", 31)], NudState.STALE, ["bcast@0"]),
    ("used when reachable expires: delay",
     [("pkt", 0), ("reply", 0.5), ("pkt", 28), ("timers", 31)], NudState.DELAY, ["bcast@0"]),
    ("stale then a packet: delay",
     [("pkt", 0), ("reply", 0.5), ("timers", 40), ("pkt", 41)], NudState.DELAY, ["bcast@0"]),
    ("delay without confirmation: unicast probe",
     [("pkt", 0), ("reply", 0.5), ("timers", 40), ("pkt", 41), ("timers", 46)],
     NudState.PROBE, ["bcast@0", "ucast@46"]),
    ("probe answered: reachable",
     [("pkt", 0), ("reply", 0.5), ("timers", 40), ("pkt", 41), ("timers", 46), ("reply", 46.5)],
     NudState.REACHABLE, ["bcast@0", "ucast@46"]),
    ("probe unanswered: three unicast probes then failed",
     [("pkt", 0), ("reply", 0.5), ("timers", 40), ("pkt", 41), ("timers", 60)],
     NudState.FAILED, ["bcast@0", "ucast@46", "ucast@47", "ucast@48"]),
    ("delay confirmed in time goes back to reachable",
     [("pkt", 0), ("reply", 0.5), ("pkt", 28), ("timers", 31), ("reply", 32), ("timers", 37)],
     NudState.REACHABLE, ["bcast@0"]),
    ("learnt from a request: stale", [("learn", 0)], NudState.STALE, []),
    ("learnt while incomplete with packets: delay",
     [("pkt", 0), ("learn", 0.2)], NudState.DELAY, ["bcast@0"]),
    ("failed entry retried after the back-off",
     [("pkt", 0), ("timers", 10), ("pkt", 10.5)], NudState.INCOMPLETE,
     ["bcast@0", "bcast@1", "bcast@2", "bcast@10.5"]),
    ("failed entry answers a late reply",
     [("pkt", 0), ("timers", 10), ("reply", 11)], NudState.REACHABLE,
     ["bcast@0", "bcast@1", "bcast@2"]),
]


@pytest.mark.parametrize(("name", "events", "state", "probes"), TRANSITIONS,
                         ids=[t[0] for t in TRANSITIONS])
def test_transition_table(name: str, events: list[tuple[str, float]], state: NudState,
                          probes: list[str]) -> None:
    s = Stack()
    acts: list[tuple[float, Any]] = []
    now = 0.0
    for ev, t in events:
        if ev == "timers":
            acts += run(s.neighs, now, t)
        elif ev == "pkt":
            acts += [(t, a) for a in s.neighs.send(A, frame(int(t)), t)]
        elif ev == "reply":
            acts += [(t, a) for a in s.resolve(A, hwaddr(2), t)]
        elif ev == "learn":
            acts += [(t, a) for a in s.neighs.learn(A, hwaddr(2), t)]
            for q in of([a for _, a in acts], StartPathQuery):
                if s.paths.get(q.dgid) and s.paths.get(q.dgid).querying:  # type: ignore[union-attr]
                    acts += [(t, a) for a in s.neighs.path_done(
                        q.dgid, q.seq, path_record(q.dgid, 4), t)]
        now = t
    got = [f"{'ucast' if a.dest else 'bcast'}@{t:g}" for t, a in acts
           if isinstance(a, SendArpRequest)]
    assert s.neighs.entries[A].state == state
    assert got == probes
    unicast = [a for _, a in acts if isinstance(a, SendArpRequest) and a.dest]
    assert all(a.dest == hwaddr(2) for a in unicast)


# --- queues ---------------------------------------------------------------------------------------


def test_three_queued_rest_dropped_and_the_three_released_in_order() -> None:
    s = Stack()
    acts = []
    for i in range(10):
        acts += s.neighs.send(A, frame(i), 0.01 * i)
    assert len(of(acts, SendArpRequest)) == 1
    assert dropped(acts, "tx_queue_full") == 7
    assert s.counters.drops["tx_queue_full"] == 7 and s.counters.tx_dropped == 7
    done = s.resolve(A, hwaddr(2), 0.5)
    assert sent_frames(done) == [frame(0), frame(1), frame(2)]
    e = s.neighs.entries[A]
    assert e.ready and not e.queue and e.ah is not None and e.ah.attr.dlid == 4


def test_queue_length_is_configurable() -> None:
    s = Stack(config=NeighConfig(queue_len=5))
    acts = [a for i in range(8) for a in s.neighs.send(A, frame(i), 0.0)]
    assert dropped(acts, "tx_queue_full") == 3
    assert sent_frames(s.resolve(A, hwaddr(2), 0.1)) == [frame(i) for i in range(5)]


def test_packets_wait_for_the_path_after_the_reply_then_flow() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    acts = s.neighs.confirm(A, hwaddr(2), 0.2)
    q = s.query_for(acts, gid(2))
    assert not s.neighs.entries[A].ready
    waiting = [a for i in (1, 2, 3) for a in s.neighs.send(A, frame(i), 0.3)]
    assert dropped(waiting, "tx_queue_full") == 1 and not of(waiting, StartPathQuery)
    out = s.neighs.path_done(gid(2), q.seq, path_record(gid(2), 7), 5.0)
    assert of(out, CreateAh) and sent_frames(out) == [frame(0), frame(1), frame(2)]


# --- one PathRecord per GID ---------------------------------------------------------------------------


def test_exactly_one_path_query_per_gid_whatever_the_ips_and_packets() -> None:
    s = Stack()
    ips = [ip4(n) for n in range(10, 30)]  # 20 addresses (aliases, child interfaces) on gid 2
    acts = []
    for k in range(5):
        for i, ip in enumerate(ips):
            acts += s.neighs.send(ip, frame(k * 100 + i), 0.01 * k)
    for i, ip in enumerate(ips):
        acts += s.neighs.confirm(ip, hwaddr(2, qpn=0x40 + i % 3), 0.1)
    for k in range(5):
        for ip in ips:
            acts += s.neighs.send(ip, frame(999), 0.2)
    queries = of(acts, StartPathQuery)
    assert [q.dgid for q in queries] == [gid(2)]
    out = s.neighs.path_done(gid(2), queries[0].seq, path_record(gid(2), 4), 1.0)
    assert len(of(out, CreateAh)) == 1
    released = of(out, NeighSend)
    assert {r.neigh.ip for r in released} == set(ips)
    assert all(len(r.frames) == 3 for r in released)
    ah = s.paths.get(gid(2)).ah  # type: ignore[union-attr]
    assert ah is not None and ah.refs == 1 + len(ips)
    assert all(s.neighs.entries[ip].ah is ah for ip in ips)


def test_resolved_fast_path_does_no_lookup_and_no_sa_traffic() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.1)
    events, queries = Counter(s.counters.events), s.counters.events["path_query"]
    paths_before = dict(s.paths.paths)
    e0 = s.neighs.lookup(A, 0.2)
    for i in range(1000):
        e = s.neighs.lookup(A, 0.2 + i * 0.001)
        assert e is e0 and e is not None and e.ready
        assert e.ah is not None and e.ah.valid
        e.ah.last_send = i  # what the glue does when it posts
    assert s.counters.events == events and s.counters.events["path_query"] == queries
    assert s.paths.paths == paths_before
    assert e0 is not None and e0.used == pytest.approx(1.199)


# --- failures -------------------------------------------------------------------------------------------


def test_peer_never_answers_failed_queue_dropped_retry_after_backoff() -> None:
    s = Stack()
    acts = [a for i in range(3) for a in s.neighs.send(A, frame(i), 0.0)]
    acts += [a for _, a in run(s.neighs, 0.0, 3.0)]
    e = s.neighs.entries[A]
    assert e.state == NudState.FAILED
    assert dropped(acts, "tx_neigh_failed") == 3 and s.counters.drops["tx_neigh_failed"] == 3
    within = s.neighs.send(A, frame(3), 3.5)
    assert within == [Drop("tx_neigh_failed", 1)] and s.counters.drops["tx_neigh_failed"] == 4
    later = s.neighs.send(A, frame(4), 4.0)
    assert of(later, SendArpRequest) == [SendArpRequest(A, None)]
    assert s.neighs.entries[A].state == NudState.INCOMPLETE and e.queue == [frame(4)]


def test_linux_retry_on_the_next_packet_when_backoff_is_zero() -> None:
    s = Stack(config=NeighConfig(failed_retry=0.0))
    s.neighs.send(A, frame(0), 0.0)
    run(s.neighs, 0.0, 3.0)
    assert of(s.neighs.send(A, frame(1), 3.0), SendArpRequest)


def test_no_records_fails_every_neighbour_on_the_gid_and_counts_the_drops() -> None:
    s = Stack()
    acts = []
    for ip in (A, B):
        acts += s.neighs.send(ip, frame(1), 0.0) + s.neighs.send(ip, frame(2), 0.0)
        acts += s.neighs.confirm(ip, hwaddr(2), 0.1)
    q = s.query_for(acts, gid(2))
    out = s.neighs.path_failed(gid(2), q.seq, 1.0)
    assert dropped(out, "tx_path_failed") == 4 and s.counters.drops["tx_path_failed"] == 4
    assert all(s.neighs.entries[ip].state == NudState.FAILED for ip in (A, B))
    assert s.paths.get(gid(2)) is None
    # after the back-off the next packet starts over: ARP, then a new query
    again = s.neighs.send(A, frame(3), 2.5)
    assert of(again, SendArpRequest)
    assert s.query_for(s.neighs.confirm(A, hwaddr(2), 2.6), gid(2)).seq != q.seq


def test_sa_slow_packets_wait_then_flow() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    q = s.query_for(s.neighs.confirm(A, hwaddr(2), 0.1), gid(2))
    # the SA sits on it for 20 s (past the reachable time): the queue stays intact
    acts = [a for _, a in run(s.neighs, 0.1, 20.0)]
    acts += s.neighs.send(A, frame(1), 20.0)
    assert not dropped(acts, "tx_neigh_failed") and s.neighs.entries[A].queue == [frame(0),
                                                                                   frame(1)]
    out = s.neighs.path_done(gid(2), q.seq, path_record(gid(2), 4), 20.5)
    assert sent_frames(out) == [frame(0), frame(1)]


def test_unsolicited_reply_is_ignored() -> None:
    s = Stack()
    assert s.neighs.confirm(A, hwaddr(2), 0.0) == []
    assert A not in s.neighs.entries and s.counters.events["neigh_unsolicited"] == 1


def test_bad_hardware_address_raises() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    with pytest.raises(ValueError):
        s.neighs.confirm(A, b"short", 0.1)


# --- address changes and flushes ------------------------------------------------------------------------


def test_peer_moves_to_another_gid_new_path_old_ah_released() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.1, dlid=4)
    old = s.neighs.entries[A].ah
    assert old is not None
    acts = s.neighs.learn(A, hwaddr(3), 5.0)  # failover: same IP, new port
    q = s.query_for(acts, gid(3))
    e = s.neighs.entries[A]
    assert e.state == NudState.STALE and e.ah is None and old.refs == 1
    s.neighs.path_done(gid(3), q.seq, path_record(gid(3), 9), 5.1)
    assert e.ah is not None and e.ah.attr.dlid == 9 and e.tx is None
    assert of(s.neighs.send(A, frame(1), 6.0), NeighSend)[0].neigh is e
    assert e.state == NudState.DELAY


def test_light_flush_requeries_lazily_and_the_old_ah_dies_after_its_last_send() -> None:
    s = Stack()
    for ip in (A, B):
        s.neighs.send(ip, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.1)
    s.neighs.confirm(B, hwaddr(2), 0.1)
    e = s.neighs.entries[A]
    old = e.ah
    assert old is not None and old.refs == 3
    e.tx = "prebuilt"
    old.last_send = 77
    s.neighs.flush_light()
    assert not e.ready and s.neighs.entries[A].state == NudState.REACHABLE
    acts = s.neighs.send(A, frame(1), 1.0) + s.neighs.send(B, frame(2), 1.0)
    q = s.query_for(acts, gid(2))
    out = s.neighs.path_done(gid(2), q.seq, path_record(gid(2), 12), 1.5)
    assert sent_frames(out) == [frame(1), frame(2)]
    assert e.ah is not old and e.ah is not None and e.ah.attr.dlid == 12 and e.tx is None
    assert old.refs == 0
    s.reaper.tx_done = 77
    assert not of(run(s.reaper, 1.5, 10.0), DestroyAh)
    s.reaper.tx_done = 78
    assert of(run(s.reaper, 10.0, 20.0), DestroyAh) == [DestroyAh(old)]


def test_normal_flush_keeps_addresses_drops_paths_and_queues() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.1)
    s.neighs.send(B, frame(0), 0.0)
    q = s.query_for(s.neighs.confirm(B, hwaddr(3), 0.1), gid(3))
    out = s.neighs.flush(1.0)
    assert CancelPathQuery(gid(3), q.seq) in out and dropped(out, "tx_flushed") == 1
    a = s.neighs.entries[A]
    assert a.state == NudState.REACHABLE and a.hwaddr == hwaddr(2) and a.ah is None
    assert len(s.paths) == 0 and s.reaper.dead == 1
    again = s.neighs.send(A, frame(1), 2.0)
    assert len(of(again, StartPathQuery)) == 1 and a.queue == [frame(1)]


def test_clear_and_delete() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    s.neighs.send(B, frame(0), 0.0)
    assert dropped(s.neighs.delete(A, 0.1), "tx_flushed") == 1 and A not in s.neighs.entries
    assert dropped(s.neighs.clear(0.2), "tx_flushed") == 1 and len(s.neighs) == 0
    assert s.neighs.get_timer() is None


# --- IPv6 -------------------------------------------------------------------------------------------------


def test_ipv6_neighbours_use_neighbour_solicitation() -> None:
    s = Stack()
    ip6 = IPv6Address("fe80::202:c903:0:2").packed
    acts = s.neighs.send(ip6, Frame(EtherType.IPV6, b"v6"), 0.0)
    assert of(acts, SendNeighSolicit) == [SendNeighSolicit(ip6, None)]
    s.resolve(ip6, hwaddr(2), 0.1)
    run(s.neighs, 0.1, 40.0)
    s.neighs.send(ip6, Frame(EtherType.IPV6, b"v6"), 41.0)
    probes = of(run(s.neighs, 41.0, 46.5), SendNeighSolicit)
    assert probes == [SendNeighSolicit(ip6, hwaddr(2))]
    assert s.counters.events["ns_probe"] == 2


# --- GC ---------------------------------------------------------------------------------------------------


def test_gc_removes_idle_entries_after_60_s() -> None:
    s = Stack(config=NeighConfig(gc_thresh1=0))
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.0)
    s.neighs.learn(B, hwaddr(3), 0.0)
    run(s.neighs, 0.0, 59.9)
    assert {ip: e.state for ip, e in s.neighs.entries.items()} == {
        A: NudState.STALE, B: NudState.STALE}
    run(s.neighs, 59.9, 60.0)  # the GC pass at 60 s (every 30 s) finds both idle for 60 s
    assert s.neighs.entries == {} and s.counters.events["neigh_gc"] == 2
    ah = s.paths.get(gid(2)).ah  # type: ignore[union-attr]
    assert ah is not None and ah.refs == 1  # only the path holds it now
    assert s.neighs.get_timer() is None


def test_gc_keeps_entries_in_use_and_small_tables() -> None:
    s = Stack(config=NeighConfig(gc_thresh1=0))
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2), 0.1)
    states, probes = set(), 0
    for t in range(1, 300):
        e = s.neighs.lookup(A, float(t))
        assert e is not None
        if not e.ready:  # what the glue does: the slow path (STALE -> DELAY)
            assert of(s.neighs.send(A, frame(t), float(t)), NeighSend)
        for _, a in run(s.neighs, float(t - 1), float(t)):
            if isinstance(a, SendArpRequest):  # the peer answers every probe
                assert a.dest == hwaddr(2)
                probes += 1
                s.neighs.confirm(A, hwaddr(2), float(t))
        states.add(s.neighs.entries[A].state)
    assert states == {NudState.REACHABLE, NudState.DELAY} and probes >= 8
    small = Stack()  # default gc_thresh1 = 128: below it, Linux keeps STALE entries
    small.neighs.learn(A, hwaddr(2), 0.0)
    run(small.neighs, 0.0, 300.0)
    assert small.neighs.entries[A].state == NudState.STALE


def test_forced_gc_evicts_oldest_non_incomplete_and_refuses_when_full() -> None:
    cfg = NeighConfig(gc_thresh1=2, gc_thresh2=3, gc_thresh3=4)
    s = Stack(config=cfg)
    for n in range(4):  # four learnt (STALE) entries fill the table
        s.neighs.learn(ip4(100 + n), hwaddr(100 + n), float(n))
    s.neighs.send(ip4(101), frame(0), 10.0)  # STALE -> DELAY: freshly updated, one queued
    s.neighs.send(ip4(200), frame(1), 10.0)  # full: evict the least recently updated
    assert list(s.neighs.entries) == [ip4(101), ip4(102), ip4(103), ip4(200)]
    acts = [a for n in range(3) for a in s.neighs.send(ip4(300 + n), frame(2), 11.0)]
    assert list(s.neighs.entries) == [ip4(200), ip4(300), ip4(301), ip4(302)]
    assert dropped(acts, "tx_neigh_evicted") == 1  # the DELAY entry's waiting packet
    # all INCOMPLETE now: nothing may be evicted, the new address is refused and counted
    assert s.neighs.send(ip4(400), frame(3), 11.0) == [Drop("tx_neigh_table_full", 1)]
    assert s.counters.drops["tx_neigh_table_full"] == 1 and len(s.neighs) == 4
    run(s.neighs, 11.0, 20.0)  # they fail; FAILED entries are evicted first
    assert of(s.neighs.send(ip4(400), frame(3), 20.0), SendArpRequest)


@pytest.mark.parametrize("n", [100_000])
def test_a_flood_of_new_addresses_stays_bounded(n: int) -> None:
    cfg = NeighConfig()
    s = Stack(config=cfg)
    peak = 0
    now = 0.0
    for i in range(n):
        now = i * 0.0005  # 2000 new addresses per second
        if i % 500 == 0:
            run(s.neighs, now, now)
        s.neighs.send(ip4(i + 1000), frame(i), now)
        peak = max(peak, len(s.neighs))
    assert peak <= cfg.gc_thresh3
    total_queued = sum(len(e.queue) for e in s.neighs.entries.values())
    assert total_queued <= cfg.gc_thresh3 * cfg.queue_len
    assert s.counters.drops["tx_neigh_table_full"] > 0
    assert len(s.neighs._heap) <= 8 * cfg.gc_thresh3 + 1000


# --- views ------------------------------------------------------------------------------------------------


def test_ip_neigh_view() -> None:
    s = Stack()
    s.neighs.send(A, frame(0), 0.0)
    s.resolve(A, hwaddr(2, flags=0x80, qpn=0x49), 0.1)
    s.neighs.send(B, frame(0), 0.0)
    s.neighs.send(C, frame(0), 0.0)
    run(s.neighs, 0.0, 3.5)
    s.neighs.send(C, frame(1), 4.5)
    text = s.neighs.format("ib0")
    assert text.splitlines() == [
        "10.0.0.2 dev ib0 lladdr 80:00:00:49:fe:80:00:00:00:00:00:00:00:02:c9:03:00:00:00:02"
        + " REACHABLE",
        "10.0.0.3 dev ib0 FAILED",
        "10.0.0.4 dev ib0 INCOMPLETE",
    ]
    v = s.neighs.views()[0]
    assert (v.ready, v.queued, v.dlid) == (True, 0, 4)


# --- invariants under random operation ------------------------------------------------------------------

OPS = st.lists(st.tuples(
    st.sampled_from(["send", "confirm", "learn", "timers", "answer", "fail", "light", "flush",
                     "delete", "reap"]),
    st.integers(0, 5), st.integers(0, 2), st.floats(0, 8, allow_nan=False),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_operation_keeps_the_books_straight(ops: list[tuple[str, int, int, float]]) -> None:
    cfg = NeighConfig(gc_thresh1=1, gc_thresh2=3, gc_thresh3=4, failed_retry=0.5)
    s = Stack(config=cfg)
    now = 0.0
    reported = 0
    pending: list[StartPathQuery] = []
    for op, who, peer, dt in ops:
        now += dt
        ip = ip4(who)
        acts: list[Any] = []
        if op == "send":
            acts = s.neighs.send(ip, frame(who), now)
        elif op == "confirm":
            acts = s.neighs.confirm(ip, hwaddr(peer), now)
        elif op == "learn":
            acts = s.neighs.learn(ip, hwaddr(peer), now)
        elif op == "timers":
            acts = [a for _, a in run(s.neighs, now, now)]
        elif op in ("answer", "fail") and pending:
            q = pending.pop(who % len(pending))
            acts = (s.neighs.path_done(q.dgid, q.seq, path_record(q.dgid, 4), now)
                    if op == "answer" else s.neighs.path_failed(q.dgid, q.seq, now))
        elif op == "light":
            s.neighs.flush_light()
        elif op == "flush":
            acts = s.neighs.flush(now)
        elif op == "delete":
            acts = s.neighs.delete(ip, now)
        elif op == "reap":
            s.reaper.tx_done += 1
            acts = [a for _, a in run(s.reaper, now, now + 2)]
        pending += of(acts, StartPathQuery)
        reported += sum(d.n for d in of(acts, Drop))
        check_invariants(s, cfg)
    assert reported == sum(s.counters.drops.values())


def check_invariants(s: Stack, cfg: NeighConfig) -> None:
    assert len(s.neighs) <= cfg.gc_thresh3
    holders: Counter[int] = Counter()
    for p in s.paths.paths.values():
        assert isinstance(p, Path) and len(p.queue) <= 3
        if p.ah is not None:
            holders[id(p.ah)] += 1
    querying = {p.dgid for p in s.paths.paths.values() if p.querying}
    for e in s.neighs.entries.values():
        assert len(e.queue) <= cfg.queue_len
        if e.ready:
            assert e.state in (NudState.REACHABLE, NudState.DELAY, NudState.PROBE)
            assert e.ah is not None and e.ah.valid and not e.queue
        if e.state in (NudState.INCOMPLETE, NudState.FAILED):
            assert e.hwaddr is None and e.ah is None
        if e.ah is not None:
            holders[id(e.ah)] += 1
        if e.hwaddr is not None and e.ah is None and e.queue:
            assert e.gid in querying  # waiting packets always have a query to wait for
    live = [p.ah for p in s.paths.paths.values() if p.ah is not None]
    live += [e.ah for e in s.neighs.entries.values() if e.ah is not None]
    for ah in live:
        assert ah.refs == holders[id(ah)]
