"""SA client: MADs built by wire/ and decoded back, TID matching, timeouts, retries, bounds."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.netdev.actions import (
    ClassPortInfoDone,
    JoinDone,
    LeaveDone,
    NeighSend,
    PathQueryDone,
    SaFailed,
    SendMad,
    StartPathQuery,
)
from ipoib.netdev.counters import Counters
from ipoib.netdev.madclient import SaClient, SaClientConfig, status_name
from ipoib.netdev.neigh import NudState
from ipoib.wire.mad import (
    MadStatus,
    Method,
    MgmtClass,
    SaMad,
    build_sa_mad,
    make_response,
    with_header,
)
from ipoib.wire.sa import (
    IPOIB_BCAST_JOIN_MASK,
    IPOIB_PATH_REC_MASK,
    MCMemberRecord,
    PathRecord,
    SaAttr,
    SaStatus,
    unpack_records,
)
from tests.netdev.harness import Stack, dropped, frame, gid, hwaddr, ip4, of, path_record, run
from tests.vectors import read_hex

AGENT = 0x0000ABCD


def client(**cfg: Any) -> SaClient:
    return SaClient(AGENT, Counters(), SaClientConfig(**cfg))


def ask_path(c: SaClient, now: float = 0.0, n: int = 2, cookie: Hashable = "p") -> SendMad:
    (s,) = c.path_query(now, sgid=gid(1), dgid=gid(n), pkey=0xFFFF, tclass=0x20, cookie=cookie)
    assert isinstance(s, SendMad)
    return s


# --- requests, built and decoded with wire/ ------------------------------------------------------


def test_path_query_is_the_linux_subnadmget() -> None:
    c = client()
    s = ask_path(c)
    assert len(s.mad) == 256 and s.tid == AGENT << 32 | 1
    m = SaMad.decode(s.mad)
    h = m.header
    assert (h.base_version, h.mgmt_class, h.class_version, h.method, h.attr_id, h.tid) == (
        1, MgmtClass.SUBN_ADM, 2, Method.GET, SaAttr.PATH_RECORD, s.tid)
    assert m.sa.component_mask == IPOIB_PATH_REC_MASK == 0x340C and m.sa.sm_key == 0
    rec = PathRecord.decode(m.data)
    assert (rec.dgid, rec.sgid, rec.numb_path, rec.pkey, rec.tclass) == (
        gid(2), gid(1), 1, 0xFFFF, 0x20)
    assert PathRecord.components(m.sa.component_mask) == [
        "dgid", "sgid", "tclass", "numb_path", "pkey"]
    assert c.get_timer() == 1.0 and c.stats["sent_path"] == 1


def test_join_and_leave_use_set_and_delete() -> None:
    c = client()
    rec = MCMemberRecord(mgid=bytes.fromhex("ff12401bffff000000000000ffffffff"),
                         port_gid=gid(1), pkey=0xFFFF, join_state=1)
    (j,) = c.join(0.0, rec, IPOIB_BCAST_JOIN_MASK, cookie="j")
    (lv,) = c.leave(0.0, rec, 0x10003, cookie="l")
    assert isinstance(j, SendMad) and isinstance(lv, SendMad)
    mj, ml = SaMad.decode(j.mad), SaMad.decode(lv.mad)
    assert (mj.header.method, mj.header.attr_id, mj.sa.component_mask) == (
        Method.SET, SaAttr.MC_MEMBER_RECORD, 0x10083)
    assert (ml.header.method, ml.sa.component_mask) == (Method.DELETE, 0x10003)
    assert MCMemberRecord.decode(mj.data) == rec
    assert c.get_timer() == 3.0
    joined = rec.replace(qkey=0xB1B, mlid=0xC000)
    assert c.receive(make_response(j.mad, joined.encode()), 0.5) == [JoinDone("j", joined)]
    # a leave is answered with DeleteResp; GetResp is the wrong method for it
    wrong = make_response(lv.mad, rec.encode(), method=Method.GET_RESP)
    assert c.receive(wrong, 0.6) == [] and c.counters.drops["mad_unexpected"] == 1
    assert c.receive(make_response(lv.mad, rec.encode()), 0.7) == [LeaveDone("l", rec)]


# --- answers -------------------------------------------------------------------------------------------


def test_answer_is_matched_by_tid_and_decoded() -> None:
    c = client()
    sends = [ask_path(c, 0.0, n, cookie=("p", n)) for n in (2, 3, 4)]
    assert [s.tid & 0xFFFFFFFF for s in sends] == [1, 2, 3]
    assert {s.tid >> 32 for s in sends} == {AGENT}
    results = []
    for n, s in zip((4, 3, 2), reversed(sends), strict=True):
        answer = path_record(gid(n), 0x10 + n)
        results += c.receive(make_response(s.mad, answer.encode()), 0.2)
    assert [(r.cookie, r.record.dlid) for r in of(results, PathQueryDone)] == [
        (("p", 4), 0x14), (("p", 3), 0x13), (("p", 2), 0x12)]
    assert c.in_flight == 0 and c.get_timer() is None and c.stats["ok"] == 3


def test_no_records_is_a_typed_failure() -> None:
    c = client()
    s = ask_path(c)
    out = c.receive(make_response(s.mad, status=SaStatus.ERR_NO_RECORDS), 0.1)
    assert out == [SaFailed("p", "path", 0x0300, "ERR_NO_RECORDS")]
    assert not of(out, SaFailed)[0].timed_out and c.stats["status_ERR_NO_RECORDS"] == 1


def test_unmatched_and_malformed_mads_are_counted_drops() -> None:
    c = client()
    s = ask_path(c)
    good = make_response(s.mad, path_record(gid(2), 4).encode())
    cases = [
        (with_header(good, tid=s.tid + 1), "mad_unknown_tid"),
        (with_header(good, method=Method.GET_TABLE_RESP), "mad_unexpected"),
        (with_header(good, attr_id=SaAttr.NODE_RECORD), "mad_unexpected"),
        (s.mad, "mad_unexpected"),  # our own request, not a response
        (with_header(good, mgmt_class=MgmtClass.PERF_MGMT), "mad_unexpected"),
        (good[:10], "mad_malformed"),
    ]
    for mad, reason in cases:
        before = c.counters.drops[reason]
        assert c.receive(mad, 0.1) == []
        assert c.counters.drops[reason] == before + 1
    assert c.in_flight == 1  # still waiting for the real answer
    short = c.receive(good[:40], 0.2)  # header fine, SA part missing
    assert short == [SaFailed("p", "path", 0, "malformed")]
    assert c.counters.drops["mad_malformed"] == 2 and c.in_flight == 0


# --- timeouts and retries -------------------------------------------------------------------------------


def test_path_query_is_resent_with_the_same_tid_then_times_out() -> None:
    c = client()
    s = ask_path(c)
    acts = run(c, 0.0, 10.0)
    assert [(t, a) for t, a in acts if isinstance(a, SendMad)] == [(1.0, s), (2.0, s)]
    assert [(t, a) for t, a in acts if isinstance(a, SaFailed)] == [
        (3.0, SaFailed("p", "path", 0, "timeout"))]
    assert of(acts, SaFailed)[0].timed_out
    assert (c.stats["retries"], c.stats["timeouts"]) == (2, 1)
    late = make_response(s.mad, path_record(gid(2), 4).encode())
    assert c.receive(late, 3.5) == [] and c.counters.drops["mad_unknown_tid"] == 1


def test_answer_to_a_resend_is_taken() -> None:
    c = client()
    s = ask_path(c)
    run(c, 0.0, 1.5)
    rec = path_record(gid(2), 4)
    assert c.receive(make_response(s.mad, rec.encode()), 1.7) == [PathQueryDone("p", rec)]
    assert run(c, 1.7, 10.0) == []


def test_join_is_not_retried_by_default() -> None:
    c = client()
    c.join(0.0, MCMemberRecord(mgid=bytes(16)), 0x10083, cookie="j")
    assert [(t, type(a).__name__) for t, a in run(c, 0.0, 10.0)] == [(3.0, "SaFailed")]


def test_busy_waits_for_the_resend() -> None:
    c = client()
    s = ask_path(c)
    assert c.receive(make_response(s.mad, status=MadStatus.BUSY), 0.1) == []
    assert c.stats["busy"] == 1 and c.in_flight == 1
    assert of(run(c, 0.1, 1.0), SendMad) == [s]
    rec = path_record(gid(2), 4)
    assert c.receive(make_response(s.mad, rec.encode()), 1.1) == [PathQueryDone("p", rec)]


# --- bounds and cancellation ------------------------------------------------------------------------------


def test_in_flight_is_bounded_and_the_queue_too() -> None:
    c = client(max_inflight=2, max_queued=1)
    s1, s2 = ask_path(c, 0.0, 2, "a"), ask_path(c, 0.0, 3, "b")
    assert c.path_query(0.0, sgid=gid(1), dgid=gid(4), pkey=0xFFFF, cookie="c") == []
    assert c.queued == 1
    over = c.path_query(0.0, sgid=gid(1), dgid=gid(5), pkey=0xFFFF, cookie="d")
    assert over == [SaFailed("d", "path", 0, "queue_full")]
    assert c.counters.drops["mad_queue_full"] == 1
    out = c.receive(make_response(s1.mad, path_record(gid(2), 4).encode()), 0.5)
    assert [type(a) for a in out] == [SendMad, PathQueryDone]
    s3 = of(out, SendMad)[0]
    assert PathRecord.decode(SaMad.decode(s3.mad).data).dgid == gid(4)
    assert c.get_timer() == 1.0  # s2's deadline; s3's started at 0.5
    c.receive(make_response(s2.mad, path_record(gid(3), 5).encode()), 0.6)
    assert c.get_timer() == 1.5


def test_cancel_forgets_and_frees_the_slot() -> None:
    c = client(max_inflight=1)
    s1 = ask_path(c, 0.0, 2, "a")
    assert c.path_query(0.0, sgid=gid(1), dgid=gid(3), pkey=0xFFFF, cookie="b") == []
    out = c.cancel("a", 0.2)
    assert len(of(out, SendMad)) == 1 and c.in_flight == 1 and c.queued == 0
    assert c.receive(make_response(s1.mad, b""), 0.3) == []
    assert c.counters.drops["mad_unknown_tid"] == 1 and c.stats["cancelled"] == 1


def test_config_and_agent_checks() -> None:
    with pytest.raises(ValueError):
        SaClient(1 << 32)
    with pytest.raises(ValueError):
        SaClientConfig(path_timeout=0)
    with pytest.raises(ValueError):
        SaClientConfig(max_inflight=0)


@pytest.mark.parametrize(("status", "name"), [
    (0x0300, "ERR_NO_RECORDS"), (0x0700, "ERR_REQ_DENIED"), (0x0001, "BUSY"),
    (0x001C, "INVALID_FIELD"), (0x0900, "status_0x0900"), (0x0003, "status_0x0003"),
])
def test_status_names(status: int, name: str) -> None:
    assert status_name(status) == name


# --- real OpenSM bytes ----------------------------------------------------------------------------------


def test_class_port_info_from_opensm(vectors_dir: Path) -> None:
    (resp,) = [r for r in read_hex(vectors_dir / "saquery_cpi.hex") if not r.sent]
    c = client()
    (s,) = c.class_port_info(0.0, cookie="cpi")
    assert isinstance(s, SendMad)
    assert SaMad.decode(s.mad).header.attr_id == SaAttr.CLASS_PORT_INFO
    (done,) = c.receive(with_header(resp.valid, tid=s.tid), 0.1)
    assert isinstance(done, ClassPortInfoDone) and done.cookie == "cpi"
    info = done.info
    assert (info.capability_mask, info.capability_mask2, info.resp_time_value) == (
        0x2602, 0xB5E8, 0x10)
    assert info.capability_mask2 & 0x1000  # send-only full member joins supported
    assert (info.redirect_qp, info.redirect_qkey) == (1, 0x80010000)


def test_path_record_from_opensm(vectors_dir: Path) -> None:
    (resp,) = [r for r in read_hex(vectors_dir / "saquery_pr.hex") if not r.sent]
    table = SaMad.decode(resp.valid)
    first = unpack_records(PathRecord, table.data, table.sa.attribute_offset).records[0]
    c = client()
    s = ask_path(c)
    (done,) = c.receive(make_response(s.mad, first.encode()), 0.1)
    assert isinstance(done, PathQueryDone)
    rec = done.record
    assert (rec.dlid, rec.slid, rec.pkey, rec.mtu_selector, rec.mtu, rec.rate) == (
        2, 4, 0xFFFF, 2, 4, 3)


# --- robustness -----------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    c = client()
    ask_path(c)
    before = sum(c.counters.drops.values())
    out = c.receive(data, 0.1)
    assert out == [] and sum(c.counters.drops.values()) == before + 1


@given(st.integers(0, 255), st.integers(0, 255))
def test_corrupted_answers_give_a_result_or_a_counted_drop(pos: int, value: int) -> None:
    c = client()
    s = ask_path(c)
    good = bytearray(make_response(s.mad, path_record(gid(2), 4).encode()))
    good[pos] = value
    out = c.receive(bytes(good), 0.1)
    if out:
        assert len(out) == 1 and isinstance(out[0], PathQueryDone | SaFailed)
        assert c.in_flight == 0
    else:
        assert sum(c.counters.drops.values()) == 1 or c.stats["busy"] == 1


def test_response_for_a_foreign_request_built_by_wire() -> None:
    c = client()
    ask_path(c)
    foreign = make_response(build_sa_mad(Method.GET, SaAttr.PATH_RECORD, tid=7), b"")
    assert c.receive(foreign, 0.1) == [] and c.counters.drops["mad_unknown_tid"] == 1


# --- with the neighbour table: what the device glue will do -----------------------------------------------


class Glue:
    """Just enough glue: StartPathQuery -> SaClient, SA results -> neighbour table."""

    def __init__(self) -> None:
        self.stack = Stack()
        self.sa = SaClient(AGENT, self.stack.counters)
        self.wire: list[SendMad] = []
        self.sent: list[Any] = []

    def dispatch(self, actions: list[Any], now: float) -> None:
        for a in actions:
            if isinstance(a, StartPathQuery):
                self.wire += of(self.sa.path_query(now, sgid=gid(1), dgid=a.dgid, pkey=0xFFFF,
                                                   cookie=(a.dgid, a.seq)), SendMad)
            elif isinstance(a, PathQueryDone):
                dgid, seq = cast(tuple[bytes, int], a.cookie)
                self.dispatch(self.stack.neighs.path_done(dgid, seq, a.record, now), now)
            elif isinstance(a, SaFailed):
                dgid, seq = cast(tuple[bytes, int], a.cookie)
                self.dispatch(self.stack.neighs.path_failed(dgid, seq, now), now)
            elif isinstance(a, SendMad):
                self.wire.append(a)
            else:
                self.sent.append(a)


def test_slow_sa_packets_wait_through_a_resend_then_flow() -> None:
    g = Glue()
    g.dispatch(g.stack.neighs.send(ip4(2), frame(0), 0.0), 0.0)
    g.dispatch(g.stack.neighs.confirm(ip4(2), hwaddr(2), 0.1), 0.1)
    g.dispatch(g.stack.neighs.send(ip4(2), frame(1), 0.2), 0.2)
    (q,) = g.wire
    g.dispatch([a for _, a in run(g.sa, 0.2, 1.5)], 1.5)  # first send lost: resent at 1.1
    assert g.wire == [q, q] and not of(g.sent, NeighSend)
    answer = make_response(q.mad, path_record(gid(2), 9).encode())
    g.dispatch(g.sa.receive(answer, 1.6), 1.6)
    (ns,) = of(g.sent, NeighSend)
    assert ns.frames == (frame(0), frame(1)) and ns.neigh.ah is not None
    assert ns.neigh.ah.attr.dlid == 9


def test_sa_without_records_fails_the_neighbour_and_counts() -> None:
    g = Glue()
    for i in range(3):
        g.dispatch(g.stack.neighs.send(ip4(2), frame(i), 0.0), 0.0)
    g.dispatch(g.stack.neighs.confirm(ip4(2), hwaddr(2), 0.1), 0.1)
    (q,) = g.wire
    g.dispatch(g.sa.receive(make_response(q.mad, status=SaStatus.ERR_NO_RECORDS), 0.2), 0.2)
    assert dropped(g.sent, "tx_path_failed") == 3
    assert g.stack.counters.drops["tx_path_failed"] == 3
    assert g.stack.neighs.entries[ip4(2)].state == NudState.FAILED
    assert g.sa.stats["status_ERR_NO_RECORDS"] == 1
