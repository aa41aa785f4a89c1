"""Multicast table: broadcast join gates the carrier, join masks, back-off, send-only joins."""

from __future__ import annotations

from ipaddress import IPv4Address
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipoib.fabric.verbs import GlobalRoute
from ipoib.netdev.actions import (
    Action,
    AttachQp,
    CancelJoin,
    CarrierOff,
    CarrierOn,
    CreateAh,
    DestroyAh,
    DetachQp,
    Drop,
    Frame,
    ReleaseQueue,
    SendJoin,
    SendLeave,
)
from ipoib.netdev.counters import Counters
from ipoib.netdev.mcast import LEAVE_MASK, McastConfig, McastTable
from ipoib.netdev.path import AhReaper
from ipoib.wire.ipoib import EtherType, broadcast_hwaddr, broadcast_mgid, ipv4_mcast_mgid
from ipoib.wire.sa import IPOIB_BCAST_JOIN_MASK, IPOIB_MCAST_JOIN_MASK, MCMemberRecord
from tests.netdev.harness import dropped, gid, of, run

PORT_GID = gid(1)
BCAST = broadcast_mgid(0xFFFF)
BCAST_HW = broadcast_hwaddr(0xFFFF)
MDNS = ipv4_mcast_mgid(IPv4Address("224.0.0.251"), BCAST_HW)
GROUP = ipv4_mcast_mgid(IPv4Address("239.1.2.3"), BCAST_HW)

# OpenSM's default broadcast group (wire-formats.md §5.4), as its join answer carries it
BCAST_REC = MCMemberRecord.decode(bytes.fromhex(
    "ff12401bffff000000000000ffffffff" + PORT_GID.hex()
    + "00000b1b" "c000" "84" "00" "ffff" "83" "92" "00000000" "21" "00" "0000"
))


def table(**cfg: Any) -> McastTable:
    return McastTable(PORT_GID, 0xFFFF, AhReaper(), Counters(), McastConfig(**cfg))


def answer(join: SendJoin, mlid: int = 0xC001) -> MCMemberRecord:
    """What an SA returns for a join: the request with the group's MLID and parameters."""
    if join.mgid == BCAST:
        return BCAST_REC
    return join.record.replace(mlid=mlid)


def up(t: McastTable, now: float = 0.0) -> list[Action]:
    (j,) = of(t.start(now), SendJoin)
    return t.join_done(BCAST, j.seq, answer(j), now)


def pkt(i: int) -> Frame:
    return Frame(EtherType.IPV4, b"m%d" % i)


# --- the broadcast group gates everything --------------------------------------------------------


def test_broadcast_join_uses_the_minimal_mask_and_nothing_else_goes_first() -> None:
    t = table()
    acts = t.start(0.0)
    (j,) = acts
    assert isinstance(j, SendJoin) and j.mgid == BCAST and j.mask == IPOIB_BCAST_JOIN_MASK
    assert (j.record.mgid, j.record.port_gid, j.record.pkey, j.record.join_state) == (
        BCAST, PORT_GID, 0xFFFF, 1)
    assert j.record.qkey == 0 and j.record.mtu == 0  # this mask carries no parameters
    assert t.join(MDNS, 0.1) == []  # waits for the broadcast group
    assert t.send(GROUP, pkt(0), 0.2) == [Drop("tx_mcast_no_broadcast", 1)]
    assert not t.carrier and t.counters.drops["tx_mcast_no_broadcast"] == 1


def test_broadcast_answer_sets_qkey_mtu_carrier_and_starts_the_other_joins() -> None:
    t = table()
    (j,) = of(t.start(0.0), SendJoin)
    t.join(MDNS, 0.1)
    acts = t.join_done(BCAST, j.seq, BCAST_REC, 0.5)
    kinds = [type(a).__name__ for a in acts]
    assert kinds == ["CreateAh", "AttachQp", "CarrierOn", "SendJoin"]
    ah = of(acts, CreateAh)[0].ah
    assert ah.attr.dlid == 0xC000 and ah.attr.static_rate == 3 and ah.attr.mtu == 4
    assert ah.attr.grh == GlobalRoute(dgid=BCAST, flow_label=0, hop_limit=0, traffic_class=0)
    assert of(acts, AttachQp) == [AttachQp(BCAST, 0xC000, 0x0B1B)]
    assert of(acts, CarrierOn) == [CarrierOn(2044, 0x0B1B)]
    assert t.carrier and t.broadcast is not None and t.broadcast.ready
    assert of(acts, SendJoin)[0].mgid == MDNS


def test_other_groups_copy_the_broadcast_parameters_with_exact_selectors() -> None:
    t = table()
    up(t)
    (j,) = t.join(MDNS, 1.0)
    assert isinstance(j, SendJoin) and j.mask == IPOIB_MCAST_JOIN_MASK == 0x173F7
    r = j.record
    assert (r.mgid, r.port_gid, r.qkey, r.pkey, r.join_state) == (MDNS, PORT_GID, 0xB1B,
                                                                  0xFFFF, 1)
    assert (r.mtu_selector, r.mtu, r.rate_selector, r.rate) == (2, 4, 2, 3)
    assert (r.tclass, r.sl, r.flow_label, r.hop_limit) == (0, 0, 0, 0)
    acts = t.join_done(MDNS, j.seq, answer(j, 0xC007), 1.5)
    assert of(acts, AttachQp) == [AttachQp(MDNS, 0xC007, None)]
    assert of(acts, CreateAh)[0].ah.attr.dlid == 0xC007
    assert not of(acts, CarrierOn)


def test_broadcast_with_an_impossible_mtu_is_a_failed_join() -> None:
    t = table()
    (j,) = of(t.start(0.0), SendJoin)
    assert t.join_done(BCAST, j.seq, BCAST_REC.replace(mtu=0), 0.5) == []
    assert not t.carrier and t.counters.events["mcast_bad_broadcast_mtu"] == 1
    assert t.get_timer() == 1.5


# --- back-off -----------------------------------------------------------------------------------------


def test_join_backoff_is_1_2_4_8_16_16_and_carrier_waits() -> None:
    t = table()
    now = 0.0
    sent: list[float] = []
    acts: list[Any] = list(t.start(now))
    while len(sent) < 7:
        (j,) = of(acts, SendJoin)
        sent.append(now)
        t.join_failed(BCAST, j.seq, now)
        when = t.get_timer()
        assert when is not None
        now = when
        acts = t.handle_timer(now)
    assert [b - a for a, b in pairwise(sent)] == [1, 2, 4, 8, 16, 16]
    assert not t.carrier and t.counters.events["mcast_join_failed"] == 7
    (j,) = of(acts, SendJoin)
    assert of(t.join_done(BCAST, j.seq, BCAST_REC, now), CarrierOn)
    # success resets the back-off: after a light flush the first retry is 1 s again
    (j,) = of(t.flush_light(now), SendJoin)
    t.join_failed(BCAST, j.seq, now)
    assert t.get_timer() == now + 1


def test_timer_is_quiet_when_nothing_can_join() -> None:
    t = table()
    assert t.get_timer() is None and t.handle_timer(5.0) == []
    up(t)
    assert t.get_timer() is None


# --- send-only joins ----------------------------------------------------------------------------------


def test_send_only_join_queues_64_falls_back_once_then_drops_the_queue() -> None:
    t = table()
    up(t)
    acts = [a for i in range(70) for a in t.send(GROUP, pkt(i), 1.0)]
    (j1,) = of(acts, SendJoin)
    assert j1.record.join_state == 0x8 and j1.mask == IPOIB_MCAST_JOIN_MASK
    assert dropped(acts, "tx_mcast_queue_full") == 6
    assert t.join_failed(GROUP, j1.seq, 2.0) == []
    assert t.get_timer() == 3.0
    (j2,) = of(run(t, 2.0, 3.0), SendJoin)
    assert j2.record.join_state == 0x4  # SendOnlyNonMember
    out = t.join_failed(GROUP, j2.seq, 3.5)
    assert out == [Drop("tx_mcast_join_failed", 64)]
    assert t.counters.drops["tx_mcast_join_failed"] == 64
    (v,) = [v for v in t.views() if v.send_only]
    assert (v.queuelen, v.complete, v.state) == (0, False, "idle")
    assert run(t, 3.5, 20.0) == []  # an empty send-only group is not retried by itself
    (j3,) = of(t.send(GROUP, pkt(99), 20.0), SendJoin)
    assert j3.record.join_state == 0x8


def test_send_only_success_releases_the_queue_in_order_without_attaching() -> None:
    t = table()
    up(t)
    acts = [a for i in range(5) for a in t.send(GROUP, pkt(i), 1.0)]
    (j,) = of(acts, SendJoin)
    out = t.join_done(GROUP, j.seq, answer(j, 0xC009), 1.2)
    assert not of(out, AttachQp)
    (rel,) = of(out, ReleaseQueue)
    assert rel.frames == tuple(pkt(i) for i in range(5)) and rel.ah.attr.dlid == 0xC009
    g = t.lookup(GROUP, 1.3)
    assert g is not None and g.ready and g.ah is rel.ah
    assert t.send(GROUP, pkt(5), 1.4) == [ReleaseQueue(GROUP, rel.ah, (pkt(5),))]


def test_sa_without_sendonly_full_support_gets_nonmember_joins() -> None:
    t = table()
    t.note_sa_capabilities(0xA5E8)  # bit 12 clear
    up(t)
    (j,) = of(t.send(GROUP, pkt(0), 1.0), SendJoin)
    assert j.record.join_state == 0x4
    t.note_sa_capabilities(0xB5E8)  # OpenSM's value: bit 12 set
    (j,) = of(t.send(MDNS, pkt(0), 1.0), SendJoin)
    assert j.record.join_state == 0x8


def test_idle_send_only_groups_are_left() -> None:
    t = table()
    up(t)
    (j,) = of(t.send(GROUP, pkt(0), 1.0), SendJoin)
    t.join_done(GROUP, j.seq, answer(j), 1.1)
    (j2,) = of(t.send(MDNS, pkt(0), 1.0), SendJoin)
    t.join_done(MDNS, j2.seq, answer(j2, 0xC00A), 1.1)
    for s in range(2, 100):
        t.lookup(MDNS, float(s))  # MDNS stays in use
        run(t, float(s - 1), float(s))
    assert GROUP not in t.groups and MDNS in t.groups
    assert t.counters.events["mcast_sendonly_gc"] == 1


def test_idle_send_only_leave_carries_its_join_state() -> None:
    t = table()
    up(t)
    (j,) = of(t.send(GROUP, pkt(0), 1.0), SendJoin)
    t.join_done(GROUP, j.seq, answer(j), 1.1)
    leaves = of(run(t, 1.1, 100.0), SendLeave)
    assert [(lv.mgid, lv.record.join_state, lv.mask) for lv in leaves] == [(GROUP, 8, LEAVE_MASK)]


# --- host membership ----------------------------------------------------------------------------------


def test_leave_on_last_member_only() -> None:
    t = table()
    up(t)
    (j,) = t.join(MDNS, 1.0)
    assert t.join(MDNS, 1.0) == []
    assert isinstance(j, SendJoin)
    ah = of(t.join_done(MDNS, j.seq, answer(j, 0xC003), 1.1), CreateAh)[0].ah
    ah.last_send = 5
    assert t.leave(MDNS, 2.0) == []
    acts = t.leave(MDNS, 3.0)
    (lv,) = of(acts, SendLeave)
    assert lv.mask == LEAVE_MASK == 0x10003
    assert (lv.record.mgid, lv.record.port_gid, lv.record.join_state) == (MDNS, PORT_GID, 1)
    assert of(acts, DetachQp) == [DetachQp(MDNS, 0xC003)]
    assert MDNS not in t.groups and ah.refs == 0
    t.reaper.tx_done = 6
    assert of(run(t.reaper, 3.0, 5.0), DestroyAh) == [DestroyAh(ah)]
    assert t.leave(MDNS, 4.0) == [] and t.counters.events["mcast_leave_unknown"] == 1


def test_host_join_upgrades_a_send_only_group() -> None:
    t = table()
    up(t)
    (j,) = of(t.send(GROUP, pkt(0), 1.0), SendJoin)
    t.join_done(GROUP, j.seq, answer(j), 1.1)
    acts = t.join(GROUP, 2.0)
    assert [type(a) for a in acts] == [SendLeave, SendJoin]
    assert of(acts, SendLeave)[0].record.join_state == 8
    assert of(acts, SendJoin)[0].record.join_state == 1
    j2 = of(acts, SendJoin)[0]
    out = t.join_done(GROUP, j2.seq, answer(j2), 2.1)
    assert of(out, AttachQp) and not t.groups[GROUP].send_only


def test_joining_the_broadcast_group_is_only_counted() -> None:
    t = table()
    up(t)
    assert t.join(BCAST, 1.0) == [] and t.leave(BCAST, 2.0) == []
    assert t.broadcast is not None and t.broadcast.ready


# --- flushes ------------------------------------------------------------------------------------------


def joined_table() -> McastTable:
    t = table()
    up(t)
    (j,) = of(t.join(MDNS, 1.0), SendJoin)
    t.join_done(MDNS, j.seq, answer(j, 0xC002), 1.0)
    (j,) = of(t.send(GROUP, pkt(0), 1.0), SendJoin)
    t.join_done(GROUP, j.seq, answer(j, 0xC004), 1.0)
    return t


def test_light_flush_leaves_everything_and_rejoins_broadcast_first() -> None:
    t = joined_table()
    acts = t.flush_light(5.0)
    leaves = of(acts, SendLeave)
    assert sorted((lv.mgid, lv.record.join_state) for lv in leaves) == sorted(
        [(BCAST, 1), (MDNS, 1), (GROUP, 8)])
    assert {d.mgid for d in of(acts, DetachQp)} == {BCAST, MDNS}
    assert [j.mgid for j in of(acts, SendJoin)] == [BCAST]
    assert not of(acts, CarrierOff) and t.carrier
    assert dropped(t.send(GROUP, pkt(1), 5.1), "tx_mcast_no_broadcast") == 1
    (j,) = of(acts, SendJoin)
    again = t.join_done(BCAST, j.seq, BCAST_REC, 5.2)
    assert [x.mgid for x in of(again, SendJoin)] == [MDNS]  # the send-only group is gone
    assert of(again, CarrierOn)


def test_stop_turns_carrier_off_and_cancels_joins_in_flight() -> None:
    t = joined_table()
    (j,) = of(t.join(GROUP, 2.0), SendJoin)  # an upgrade in flight
    acts = t.stop(3.0)
    assert CancelJoin(GROUP, j.seq) in acts
    assert of(acts, CarrierOff) == [CarrierOff()] and not t.carrier and t.groups == {}
    assert t.join_done(GROUP, j.seq, answer(j), 3.5) == []
    assert t.counters.events["mcast_answer_stale"] == 1
    (j2,) = of(t.start(4.0), SendJoin)  # membership survives: rejoined after broadcast
    assert [x.mgid for x in of(t.join_done(BCAST, j2.seq, BCAST_REC, 4.1), SendJoin)] == [
        MDNS, GROUP]


def test_stale_answers_are_ignored() -> None:
    t = table()
    (j,) = of(t.start(0.0), SendJoin)
    assert t.join_done(BCAST, j.seq + 1, BCAST_REC, 0.1) == []
    assert t.join_failed(BCAST, j.seq + 1, 0.1) == []
    assert t.join_done(MDNS, j.seq, BCAST_REC, 0.1) == []
    assert t.counters.events["mcast_answer_stale"] == 3


# --- views --------------------------------------------------------------------------------------------


def test_mcg_view_matches_linux_debugfs() -> None:
    t = table()
    (j,) = of(t.start(12.345), SendJoin)
    t.join_done(BCAST, j.seq, BCAST_REC, 12.5)
    assert t.format() == (
        "GID: ff12:401b:ffff:0:0:0:ffff:ffff\n"
        "  created:      12345\n"
        "  queuelen:         0\n"
        "  complete:       yes\n"
        "  send_only:       no\n"
        "\n"
    )
    t.send(GROUP, pkt(0), 13.0)
    views = t.views()
    assert [v.mgid for v in views] == ["ff12:401b:ffff:0:0:0:f01:203",
                                       "ff12:401b:ffff:0:0:0:ffff:ffff"]
    assert (views[0].queuelen, views[0].complete, views[0].send_only) == (1, False, True)
    assert "  send_only:      yes\n" in t.format()


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        McastConfig(backoff_initial=0)
    with pytest.raises(ValueError):
        McastConfig(sendonly_attempts=0)


# --- invariants under random operation ----------------------------------------------------------------

MGIDS = [BCAST, MDNS, GROUP, ipv4_mcast_mgid(IPv4Address("224.0.0.1"), BCAST_HW)]
OPS = st.lists(st.tuples(
    st.sampled_from(["start", "stop", "light", "send", "join", "leave", "ok", "fail",
                     "timers"]),
    st.integers(0, 3), st.floats(0, 40, allow_nan=False),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_operation_keeps_the_invariants(ops: list[tuple[str, int, float]]) -> None:
    t = table(queue_len=4)
    now = 0.0
    pending: list[SendJoin] = []
    reported = 0
    for op, k, dt in ops:
        now += dt
        mgid = MGIDS[k]
        acts: list[Any] = []
        if op == "start":
            acts = t.start(now)
        elif op == "stop":
            acts = t.stop(now)
        elif op == "light":
            acts = t.flush_light(now)
        elif op == "send":
            acts = t.send(mgid, pkt(k), now)
        elif op == "join":
            acts = t.join(mgid, now)
        elif op == "leave":
            acts = t.leave(mgid, now)
        elif op in ("ok", "fail") and pending:
            j = pending.pop(k % len(pending))
            acts = (t.join_done(j.mgid, j.seq, answer(j), now) if op == "ok"
                    else t.join_failed(j.mgid, j.seq, now))
        elif op == "timers":
            when = t.get_timer()
            if when is not None:  # firing a timer must move the next one on
                now = max(now, when)
                acts = list(t.handle_timer(now))
                later = t.get_timer()
                assert later is None or later > now
        pending += of(acts, SendJoin)
        reported += sum(d.n for d in of(acts, Drop))
        b = t.broadcast
        bcast_in = b is not None and b.state.value == "joined"
        assert not t.carrier or t.running
        for g in t.groups.values():
            assert len(g.queue) <= 4
            if g is not b and g.state.value != "idle":
                assert bcast_in  # nothing joins before the broadcast group
            assert (g.ah is not None) == (g.state.value == "joined") == g.ready
            if g.ah is not None:
                assert g.ah.refs == 1
    assert reported == sum(t.counters.drops.values())
