"""Path cache and AH reaper: one query per GID, AH building, refcounts, flushes, debugfs view."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.fabric.verbs import GlobalRoute
from ipoib.netdev.actions import (
    Action,
    AhAttr,
    CancelPathQuery,
    CreateAh,
    DestroyAh,
    Frame,
    PathSend,
    StartPathQuery,
)
from ipoib.netdev.counters import Counters
from ipoib.netdev.path import RATE_MBPS, AhReaper, PathCache, ah_attr_from_path, debugfs_gid
from ipoib.wire.enums import RATE_GBPS
from ipoib.wire.gid import parse_gid
from ipoib.wire.ipoib import EtherType
from tests.netdev.harness import dropped, frame, gid, hwaddr, of, path_record, run


def cache(**kw: int) -> PathCache:
    return PathCache(AhReaper(), Counters(), **kw)


def seq(actions: list[Action]) -> int:
    """The sequence number of the one query in ``actions``."""
    (q,) = of(actions, StartPathQuery)
    return q.seq


# --- AH attributes -------------------------------------------------------------------------


def test_ah_from_path_without_grh_when_hop_limit_is_zero() -> None:
    attr = ah_attr_from_path(path_record(gid(2), 0x12, sl=3, rate=6, mtu=5))
    assert attr == AhAttr(dlid=0x12, sl=3, static_rate=6, src_path_bits=0, grh=None, mtu=5)


def test_ah_from_path_has_grh_when_hop_limit_is_set() -> None:
    rec = path_record(gid(2), 7, hop_limit=64, tclass=0x20, flow_label=0x12345)
    attr = ah_attr_from_path(rec)
    assert attr.grh == GlobalRoute(dgid=gid(2), flow_label=0x12345, hop_limit=64,
                               traffic_class=0x20)


# --- one query per GID ---------------------------------------------------------------------


def test_want_starts_one_query_until_answered() -> None:
    pc = cache()
    p, acts = pc.want(gid(2), 0.0)
    assert p is not None and acts == [StartPathQuery(gid(2), p.seq)]
    for t in range(1, 50):
        assert pc.want(gid(2), float(t))[1] == []
    _, acts = pc.complete(gid(2), p.seq, path_record(gid(2), 4), 50.0)
    assert of(acts, CreateAh)[0].ah is p.ah
    assert pc.want(gid(2), 51.0)[1] == []
    assert pc.counters.events["path_query"] == 1


def test_distinct_gids_get_distinct_queries() -> None:
    pc = cache()
    seqs = {of(pc.want(gid(n), 0.0)[1], StartPathQuery)[0].seq for n in range(2, 12)}
    assert len(seqs) == 10 and len(pc) == 10


def test_stale_answers_are_ignored() -> None:
    pc = cache()
    p, _ = pc.want(gid(2), 0.0)
    assert p is not None
    assert pc.complete(gid(2), p.seq + 1, path_record(gid(2), 4), 1.0) == (None, [])
    assert pc.complete(gid(3), p.seq, path_record(gid(3), 4), 1.0) == (None, [])
    assert pc.fail(gid(2), p.seq + 7, 1.0) == (None, [])
    assert p.querying and p.ah is None
    assert pc.counters.events["path_answer_stale"] == 3


# --- packets queued on a path (no neighbour) -------------------------------------------------


def test_path_queue_holds_three_then_drops_then_releases_in_order() -> None:
    pc = cache()
    a, b = hwaddr(2, qpn=0x48), hwaddr(2, qpn=0x49)
    acts = []
    for i, dest in enumerate([a, a, b, b, a]):
        acts += pc.send(dest, frame(i), 0.0)
    assert len(of(acts, StartPathQuery)) == 1
    assert dropped(acts, "tx_queue_full") == 2
    assert pc.counters.drops["tx_queue_full"] == 2
    q = of(acts, StartPathQuery)[0]
    _, done = pc.complete(gid(2), q.seq, path_record(gid(2), 9), 1.0)
    sends = of(done, PathSend)
    assert [(s.hwaddr, s.frames) for s in sends] == [(a, (frame(0), frame(1))), (b, (frame(2),))]
    assert all(s.ah.attr.dlid == 9 for s in sends)
    # resolved: later packets go straight out, no query
    later = pc.send(b, frame(9), 2.0)
    assert later == [PathSend(b, sends[0].ah, (frame(9),))]


def test_send_rejects_short_address() -> None:
    with pytest.raises(ValueError):
        cache().send(b"\0" * 19, frame(0), 0.0)


def test_failure_drops_queue_and_forgets_the_path() -> None:
    pc = cache()
    acts = pc.send(hwaddr(2), frame(0), 0.0) + pc.send(hwaddr(2), frame(1), 0.0)
    q = of(acts, StartPathQuery)[0]
    p, out = pc.fail(gid(2), q.seq, 1.0)
    assert p is not None and dropped(out, "tx_path_failed") == 2
    assert pc.get(gid(2)) is None
    assert pc.counters.drops["tx_path_failed"] == 2
    # the next packet asks again: no retry timer, like Linux
    again = pc.send(hwaddr(2), frame(2), 2.0)
    assert len(of(again, StartPathQuery)) == 1


# --- flushes -----------------------------------------------------------------------------------


def test_light_flush_invalidates_and_requeries_lazily_once() -> None:
    pc = cache()
    p, acts = pc.want(gid(2), 0.0)
    assert p is not None
    pc.complete(gid(2), seq(acts), path_record(gid(2), 4), 0.5)
    old = p.ah
    assert old is not None
    pc.flush_light()
    assert not old.valid and pc.get(gid(2)) is p
    _, acts = pc.want(gid(2), 1.0)
    assert len(acts) == 1 and pc.want(gid(2), 1.1)[1] == []
    pc.complete(gid(2), seq(acts), path_record(gid(2), 5), 2.0)
    assert p.ah is not old and p.ah is not None and p.ah.valid and p.ah.attr.dlid == 5
    assert old.refs == 0 and pc.reaper.dead == 1


def test_normal_flush_cancels_queries_drops_queues_releases_ahs() -> None:
    pc = cache()
    p2, a2 = pc.want(gid(2), 0.0)
    assert p2 is not None
    pc.complete(gid(2), seq(a2), path_record(gid(2), 4), 0.1)
    q3 = of(pc.send(hwaddr(3), frame(0), 0.2), StartPathQuery)[0]
    out = pc.flush(1.0)
    assert CancelPathQuery(gid(3), q3.seq) in out
    assert dropped(out, "tx_flushed") == 1 and len(pc) == 0
    assert pc.reaper.dead == 1
    assert pc.complete(gid(3), q3.seq, path_record(gid(3), 6), 1.5) == (None, [])


# --- table bound ---------------------------------------------------------------------------------


def test_full_table_evicts_an_idle_path_and_refuses_when_none_is_idle() -> None:
    pc = cache(max_paths=2)
    p2, a2 = pc.want(gid(2), 0.0)
    assert p2 is not None
    pc.complete(gid(2), seq(a2), path_record(gid(2), 4), 0.0)
    pc.want(gid(3), 0.0)  # querying: not evictable
    p4, _ = pc.want(gid(4), 1.0)  # evicts the idle gid(2)
    assert p4 is not None and pc.get(gid(2)) is None and len(pc) == 2
    assert pc.counters.events["path_evicted"] == 1
    assert pc.want(gid(5), 2.0) == (None, [])  # both remaining are querying
    out = pc.send(hwaddr(5), frame(0), 2.0)
    assert dropped(out, "tx_path_table_full") == 1


# --- AH reaper ---------------------------------------------------------------------------------


def test_reaper_destroys_only_at_zero_refs_and_after_the_last_send_completed() -> None:
    r = AhReaper()
    ah = r.create(AhAttr(dlid=4))
    r.acquire(ah)
    r.acquire(ah)  # path + two neighbours
    r.release(ah, 0.0)
    r.release(ah, 0.0)
    assert r.get_timer() is None and r.dead == 0  # one holder left
    ah.last_send = 41  # the glue posted send #41 with it
    r.release(ah, 0.0)
    assert ah.refs == 0 and r.get_timer() == 1.0
    r.tx_done = 41  # sends 0..40 completed, #41 still on the wire
    assert run(r, 0.0, 5.0) == [] and r.get_timer() == 6.0
    r.tx_done = 42
    assert [a for _, a in run(r, 5.0, 10.0)] == [DestroyAh(ah)]
    assert r.get_timer() is None and r.destroyed == 1


def test_reap_all_and_double_release() -> None:
    r = AhReaper()
    ah = r.create(AhAttr(dlid=4))
    ah.last_send = 10
    r.release(ah, 0.0)
    assert r.handle_timer(0.5) == []  # not due yet
    assert r.reap_all() == [DestroyAh(ah)]
    with pytest.raises(ValueError):
        r.release(ah, 1.0)


# --- the debugfs view ----------------------------------------------------------------------------


def test_path_view_matches_linux_debugfs() -> None:
    pc = cache()
    dgid = parse_gid("fe80::2:c903:0:2002")
    _, acts = pc.want(dgid, 0.0)
    assert pc.format() == "GID: fe80:0:0:0:2:c903:0:2002\n  complete:     no\n\n"
    pc.complete(dgid, seq(acts), path_record(dgid, 4, sl=0, rate=3), 1.0)
    assert pc.format() == (
        "GID: fe80:0:0:0:2:c903:0:2002\n"
        "  complete:    yes\n"
        "  DLID:     0x0004\n"
        "  SL:            0\n"
        "  rate:       10.0 Gb/sec\n"
        "\n"
    )
    v = pc.views()[0]
    assert (v.complete, v.dlid, v.rate_mbps, v.valid, v.querying) == (True, 4, 10000, True, False)


def test_path_view_is_sorted_and_prints_odd_rates_like_linux() -> None:
    pc = cache()
    for n, rate in ((9, 11), (3, 2)):
        _, acts = pc.want(gid(n), 0.0)
        pc.complete(gid(n), seq(acts), path_record(gid(n), n, rate=rate, sl=n), 0.0)
    text = pc.format()
    assert text.index(":3\n") < text.index(":9\n")
    assert "  rate:        2.500 Gb/sec\n" in text  # 2500 Mb/s -> "2" "." "500"
    assert "  rate:       14.62 Gb/sec\n" in text  # FDR10: 14062 Mb/s
    assert "  SL:            9\n" in text


def test_rate_table_agrees_with_the_rate_enum() -> None:
    assert set(RATE_MBPS) == set(RATE_GBPS)
    for code, gbps in RATE_GBPS.items():
        assert abs(RATE_MBPS[code] / 1000 - gbps) / gbps < 0.07


@given(st.binary(min_size=16, max_size=16))
def test_debugfs_gid_parses_back(g: bytes) -> None:
    text = debugfs_gid(g)
    assert len(text.split(":")) == 8 and parse_gid(text) == g
    assert all(part == part.lstrip("0") or part == "0" for part in text.split(":"))


def test_frame_is_a_plain_tuple() -> None:
    assert Frame(EtherType.ARP, b"x") == (0x0806, b"x")
