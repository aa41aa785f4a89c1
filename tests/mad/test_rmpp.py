"""RMPP sender and receiver over an in-memory link on a virtual clock (IBA 13.6)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.mad.rmpp import (
    SEGMENT_PAYLOAD,
    Message,
    Outbound,
    Outcome,
    RmppReceiver,
    RmppSender,
    RmppStatus,
    is_rmpp,
)
from ipoib.wire.enums import NodeType
from ipoib.wire.mad import (
    RMPP_FLAG_ACTIVE,
    RMPP_FLAG_FIRST,
    RMPP_FLAG_LAST,
    MadHeader,
    Method,
    MgmtClass,
    RmppHeader,
    RmppType,
    SaHeader,
    SaMad,
    build_sa_mad,
)
from ipoib.wire.sa import NodeRecord, PathRecord, SaAttr, pack_records, unpack_records
from tests.vectors import read_hex

SA, CLIENT = ("sa", 1), ("client", 1)  # how each end addresses the other
TID = 0x0001_0000_76C3_97E1


def header(tid: int = TID, attr: int = SaAttr.NODE_RECORD) -> MadHeader:
    return MadHeader(mgmt_class=MgmtClass.SUBN_ADM, class_version=2,
                     method=Method.GET_TABLE_RESP, tid=tid, attr_id=attr)


def nodes(n: int) -> list[NodeRecord]:
    return [
        NodeRecord(lid=i + 1, base_version=1, class_version=1, node_type=NodeType.CA,
                   num_ports=2, node_guid=0x100000 + i, port_guid=0x200000 + i,
                   system_image_guid=0x100000 + i, partition_cap=64, local_port_num=1,
                   node_description=f"host{i:04d} HCA-1")
        for i in range(n)
    ]


def rmpp_of(mad: bytes) -> RmppHeader:
    return SaMad.decode(mad).rmpp


@dataclass
class Link:
    """Carries MADs both ways; ``drop_data(n, mad)`` may lose the n-th DATA MAD (1-based)."""

    sender: RmppSender
    receiver: RmppReceiver
    drop_data: Callable[[int, bytes], bool] = lambda n, mad: False
    drop_reply: Callable[[int, bytes], bool] = lambda n, mad: False
    now: float = 0.0
    to_rx: deque[Outbound] = field(default_factory=deque)
    to_tx: deque[Outbound] = field(default_factory=deque)
    delivered: list[Message] = field(default_factory=list)
    finished: list[Outcome] = field(default_factory=list)
    data_sent: int = 0
    replies_sent: int = 0
    lost: int = 0
    shuffle: random.Random | None = None  # deliver queued MADs in a random order

    def start(self, data: bytes, hdr: MadHeader | None = None, offset: int = 14) -> None:
        step = self.sender.start(CLIENT, hdr or header(), SaHeader(attribute_offset=offset),
                                 data, self.now)
        self.to_rx.extend(step.send)
        self.finished += step.finished

    def run(self, limit: float = 1000.0) -> None:
        """Deliver until the sender is idle, firing timers on the virtual clock."""
        while self.now <= limit:
            while self.to_rx or self.to_tx:
                if self.to_rx:
                    if self.shuffle:
                        self.to_rx.rotate(-self.shuffle.randrange(len(self.to_rx)))
                    out = self.to_rx.popleft()
                    assert out.peer == CLIENT
                    self.data_sent += 1
                    if self.drop_data(self.data_sent, out.mad):
                        self.lost += 1
                    else:
                        step = self.receiver.receive(SA, out.mad, self.now)
                        self.to_tx.extend(step.send)
                        self.delivered += step.delivered
                if self.to_tx:
                    out = self.to_tx.popleft()
                    assert out.peer == SA
                    self.replies_sent += 1
                    if self.drop_reply(self.replies_sent, out.mad):
                        self.lost += 1
                    else:
                        step = self.sender.receive(CLIENT, out.mad, self.now)
                        self.to_rx.extend(step.send)
                        self.finished += step.finished
            if not len(self.sender):
                return
            deadlines = [t for t in (self.sender.get_timer(), self.receiver.get_timer()) if t]
            self.now = min(deadlines)
            step = self.sender.handle_timer(self.now)
            self.to_rx.extend(step.send)
            self.finished += step.finished
            self.to_tx.extend(self.receiver.handle_timer(self.now).send)
        raise AssertionError("transfer did not finish")


# -- whole transfers ---------------------------------------------------------------------


def test_big_node_table_without_loss() -> None:
    table = nodes(301)
    data = pack_records(table)
    assert len(data) == 301 * 112
    link = Link(RmppSender(), RmppReceiver(window=16))
    link.start(data)
    link.run()
    [msg] = link.delivered
    assert msg.data == data and msg.peer == SA and msg.tid == TID
    assert msg.header == header() and msg.sa.attribute_offset == 14
    got = unpack_records(NodeRecord, msg.data, msg.sa.attribute_offset)
    assert (got.records, got.truncated) == (table, False)
    assert link.finished == [Outcome(CLIENT, TID, True)]
    assert link.sender.stats["segments"] == 169 and link.sender.stats["retransmitted"] == 0
    assert link.now == 0.0  # no timer had to fire
    assert not link.sender.drops and not link.receiver.drops
    # one ACK for the first segment, one per window of 16, and the final one
    assert link.receiver.stats["acks"] == 1 + (169 - 1) // 16 + 1


def test_big_node_table_survives_losing_every_fifth_segment() -> None:
    table = nodes(320)
    data = pack_records(table)
    link = Link(RmppSender(timeout=2.0, max_retries=4), RmppReceiver(window=16),
                drop_data=lambda n, mad: n % 5 == 0)
    link.start(data)
    link.run()
    [msg] = link.delivered
    assert unpack_records(NodeRecord, msg.data, 14).records == table
    assert link.finished == [Outcome(CLIENT, TID, True)]
    assert link.lost > 0 and link.sender.stats["retransmitted"] > 0
    assert link.now > 0  # recovered through timeouts
    assert set(link.receiver.drops) <= {"duplicate"}
    assert len(link.sender) == 0


def test_transfer_too_slow_for_the_loss_ends_cleanly_at_both_ends() -> None:
    """A small window loses a segment in every window: each costs an ACK timeout, so the
    receiver's 40 s budget runs out (T2L) and its ABORT ends the sender's transfer too."""
    link = Link(RmppSender(timeout=2.0), RmppReceiver(window=8, timeout=40.0),
                drop_data=lambda n, mad: n % 5 == 0)
    link.start(pack_records(nodes(320)))
    link.run()
    assert link.delivered == []
    assert link.finished == [Outcome(CLIENT, TID, False, "aborted_by_peer", RmppStatus.T2L)]
    assert link.now == 40.0 and link.receiver.drops["timeout"] == 1
    assert len(link.sender) == 0 and len(link.receiver) == 0


@settings(max_examples=60, deadline=None)
@given(records=st.integers(0, 60), window=st.integers(1, 20), seed=st.integers(0, 2**32),
       loss=st.sampled_from([0.0, 0.1, 0.3]))
def test_any_loss_and_order_delivers_once_or_fails_cleanly(
    records: int, window: int, seed: int, loss: float
) -> None:
    rng = random.Random(seed)
    data = pack_records(nodes(records))
    link = Link(RmppSender(max_retries=6), RmppReceiver(window=window),
                drop_data=lambda n, mad: rng.random() < loss,
                drop_reply=lambda n, mad: rng.random() < loss, shuffle=random.Random(seed))
    link.start(data)
    link.run()
    [outcome] = link.finished
    assert [m.data for m in link.delivered] in ([data], [])
    if outcome.ok:
        assert link.delivered  # the final ACK only comes after delivery
    if loss == 0.0:
        assert outcome.ok and link.now == 0.0
    assert len(link.sender) == 0


def test_lost_acks_are_recovered_by_duplicates() -> None:
    data = pack_records(nodes(40))  # 23 segments
    link = Link(RmppSender(), RmppReceiver(window=4), drop_reply=lambda n, mad: n % 3 == 0)
    link.start(data)
    link.run()
    assert [m.data for m in link.delivered] == [data]
    assert link.finished == [Outcome(CLIENT, TID, True)]
    assert link.receiver.drops["duplicate"] > 0  # retransmits answered with a fresh ACK


def test_final_ack_lost_receiver_lingers_and_acks_again() -> None:
    data = pack_records(nodes(3))  # 2 segments
    # replies: ACK(1, 17), then the final ACK(2), which is lost
    link = Link(RmppSender(), RmppReceiver(linger=10.0), drop_reply=lambda n, mad: n == 2)
    link.start(data)
    link.run()
    assert len(link.delivered) == 1  # delivered once, not twice
    assert link.finished == [Outcome(CLIENT, TID, True)]
    assert link.receiver.drops["duplicate"] == 1
    assert link.receiver.owns(SA, TID)  # still lingering
    link.receiver.handle_timer(link.now + 10.0)
    assert not link.receiver.owns(SA, TID) and not link.receiver.drops["timeout"]


def test_two_transfers_interleaved_by_tid_and_peer() -> None:
    tx, rx = RmppSender(), RmppReceiver(window=2)
    a, b = pack_records(nodes(10)), pack_records(nodes(7)[::-1])
    pending = deque(tx.start(CLIENT, header(1), SaHeader(attribute_offset=14), a, 0).send
                    + tx.start(CLIENT, header(2), SaHeader(attribute_offset=14), b, 0).send)
    got: dict[int, bytes] = {}
    while pending:
        step = rx.receive(SA, pending.popleft().mad, 0)
        got.update({m.tid: m.data for m in step.delivered})
        for ack in step.send:
            pending.extend(tx.receive(CLIENT, ack.mad, 0).send)
    assert got == {1: a, 2: b}
    assert len(tx) == 0 and tx.stats["completed"] == 2


# -- segment bytes -----------------------------------------------------------------------


def test_segments_carry_headers_flags_and_payload_lengths() -> None:
    data = pack_records(nodes(301))  # 33712 bytes: 168 full areas + 112 bytes, pad 88
    tx = RmppSender()
    first = tx.start(CLIENT, header(), SaHeader(attribute_offset=14), data, 0).send
    assert len(first) == 1  # the window starts at one segment
    r = rmpp_of(first[0].mad)
    assert (r.rmpp_version, r.rmpp_type, r.rmpp_status) == (1, RmppType.DATA, 0)
    assert r.rmpp_flags == RMPP_FLAG_ACTIVE | RMPP_FLAG_FIRST
    assert (r.segment_number, r.payload_length) == (1, 169 * 220 - 88)
    assert r.r_resp_time == 0x1F
    assert first[0].mad[24:28] == bytes([1, 1, 0xFB, 0])
    # ACK(1, NewWindowLast=169): everything else goes out at once
    ack = SaMad(header().replace(method=Method.GET_TABLE),
                RmppHeader(rmpp_type=RmppType.ACK, rmpp_flags=RMPP_FLAG_ACTIVE,
                           segment_number=1, payload_length=169),
                SaHeader(attribute_offset=14)).encode()
    rest = tx.receive(CLIENT, ack, 0).send
    assert [rmpp_of(o.mad).segment_number for o in rest] == list(range(2, 170))
    mads = [first[0].mad] + [o.mad for o in rest]
    assert all(len(m) == 256 for m in mads)
    views = [SaMad.decode(m) for m in mads]
    assert all(v.header == header() and v.sa == SaHeader(attribute_offset=14) for v in views)
    assert [v.rmpp.rmpp_flags for v in views[1:-1]] == [RMPP_FLAG_ACTIVE] * 167
    assert [v.rmpp.payload_length for v in views[1:-1]] == [0] * 167
    assert views[-1].rmpp.rmpp_flags == RMPP_FLAG_ACTIVE | RMPP_FLAG_LAST
    assert views[-1].rmpp.payload_length == 20 + 112 == SEGMENT_PAYLOAD - 88
    assert b"".join(v.data for v in views) == data + bytes(88)


def test_single_segment_response() -> None:
    pr = PathRecord(dlid=2, slid=4, pkey=0xFFFF, mtu=4, rate=3)
    link = Link(RmppSender(), RmppReceiver())
    link.start(pack_records([pr]), header(attr=SaAttr.PATH_RECORD), offset=8)
    seg = link.to_rx[0].mad
    r = rmpp_of(seg)
    assert r.rmpp_flags == RMPP_FLAG_ACTIVE | RMPP_FLAG_FIRST | RMPP_FLAG_LAST
    assert (r.segment_number, r.payload_length) == (1, 20 + 64)
    assert PathRecord.decode(seg, 56) == pr
    link.run()
    [msg] = link.delivered
    assert unpack_records(PathRecord, msg.data, 8).records == [pr] and len(msg.data) == 64
    assert link.finished == [Outcome(CLIENT, TID, True)] and link.replies_sent == 1


def test_empty_table_is_one_segment_of_just_the_sa_header() -> None:
    link = Link(RmppSender(), RmppReceiver())
    link.start(b"", offset=0)
    assert rmpp_of(link.to_rx[0].mad).payload_length == 20
    link.run()
    assert [m.data for m in link.delivered] == [b""]


def test_ack_bytes_flip_the_method_and_grant_a_window() -> None:
    tx, rx = RmppSender(), RmppReceiver(window=16)
    [seg1] = tx.start(CLIENT, header(), SaHeader(attribute_offset=14),
                      pack_records(nodes(50)), 0).send
    [ack] = rx.receive(SA, seg1.mad, 0).send
    assert ack.peer == SA
    v = SaMad.decode(ack.mad)
    assert v.header.method == Method.GET_TABLE and v.header.tid == TID
    assert (v.rmpp.rmpp_type, v.rmpp.rmpp_flags) == (RmppType.ACK, RMPP_FLAG_ACTIVE)
    assert (v.rmpp.segment_number, v.rmpp.payload_length) == (1, 17)
    assert v.data == bytes(200)
    nxt = tx.receive(CLIENT, ack.mad, 0).send
    assert [rmpp_of(o.mad).segment_number for o in nxt] == list(range(2, 18))


# -- reassembly edge cases ---------------------------------------------------------------


def all_segments(data: bytes, window: int = 64) -> tuple[list[bytes], RmppSender]:
    """Every DATA segment of a transfer (receiver grants a big window up front)."""
    tx, rx = RmppSender(), RmppReceiver(window=window)
    [seg1] = tx.start(CLIENT, header(), SaHeader(attribute_offset=14), data, 0).send
    [ack] = rx.receive(SA, seg1.mad, 0).send
    return [seg1.mad] + [o.mad for o in tx.receive(CLIENT, ack.mad, 0).send], tx


def test_out_of_order_and_duplicate_segments() -> None:
    data = pack_records(nodes(20))  # 12 segments
    segs, tx = all_segments(data)
    rx = RmppReceiver(window=64)
    step = rx.receive(SA, segs[0], 0)
    assert [rmpp_of(a.mad).payload_length for a in step.send] == [65]
    delivered: list[Message] = []
    acks: list[bytes] = []
    for mad in segs[:0:-1] + segs[1:]:  # 12, 11, ..., 2, then all of them again
        step = rx.receive(SA, mad, 0)
        delivered += step.delivered
        acks += [o.mad for o in step.send]
    assert [m.data for m in delivered] == [data]
    assert rx.drops["duplicate"] == 11
    # the completing segment (2) brings the final ACK; each later duplicate a fresh one
    assert [rmpp_of(a).segment_number for a in acks] == [12] * 12
    for a in acks:
        tx.receive(CLIENT, a, 0)
    assert len(tx) == 0 and tx.drops["unknown_transfer"] == 11


def test_segment_beyond_the_window_is_dropped() -> None:
    segs, _ = all_segments(pack_records(nodes(20)))
    rx = RmppReceiver(window=2)
    rx.receive(SA, segs[0], 0)  # window is now 1..3
    assert rx.receive(SA, segs[3], 0).send == []
    assert rx.drops["outside_window"] == 1
    assert rx.receive(SA, segs[5], 0).send == [] and rx.drops["outside_window"] == 2


def test_segment_without_a_transfer_is_dropped() -> None:
    segs, _ = all_segments(pack_records(nodes(20)))
    rx = RmppReceiver()
    assert rx.receive(SA, segs[3], 0).send == []
    assert rx.drops["unknown_transfer"] == 1 and len(rx) == 0


# -- aborts, stops, timeouts -------------------------------------------------------------


def test_abort_after_too_many_retries() -> None:
    tx, rx = RmppSender(timeout=2.0, max_retries=3), RmppReceiver()
    [seg1] = tx.start(CLIENT, header(), SaHeader(), pack_records(nodes(10)), 0).send
    [ack] = rx.receive(SA, seg1.mad, 0).send
    lost = tx.receive(CLIENT, ack.mad, 0).send  # segments 2..6, never arrive
    assert [rmpp_of(o.mad).segment_number for o in lost] == [2, 3, 4, 5, 6]
    sent: list[Outbound] = []
    finished: list[Outcome] = []
    now = 0.0
    while (deadline := tx.get_timer()) is not None:
        now = deadline
        step = tx.handle_timer(now)
        sent += step.send
        finished += step.finished
    assert now == 8.0  # three resends at 2, 4, 6; abort at 8
    assert [rmpp_of(o.mad).segment_number for o in sent[:-1]] == [2, 3, 4, 5, 6] * 3
    assert finished == [
        Outcome(CLIENT, TID, False, "too_many_retries", RmppStatus.TOO_MANY_RETRIES)]
    assert tx.drops["too_many_retries"] == 1 and tx.stats["retransmitted"] == 15
    v = SaMad.decode(sent[-1].mad)
    assert v.header.method == Method.GET_TABLE_RESP  # the sender's own direction
    assert (v.rmpp.rmpp_type, v.rmpp.rmpp_status) == (RmppType.ABORT, 126)
    assert rx.owns(SA, TID)
    rx.receive(SA, sent[-1].mad, now)
    assert not rx.owns(SA, TID) and rx.drops["aborted_by_peer"] == 1


def test_receiver_gives_up_after_total_time() -> None:
    segs, _ = all_segments(pack_records(nodes(20)))
    rx = RmppReceiver(timeout=40.0)
    rx.receive(SA, segs[0], 0.0)
    rx.receive(SA, segs[1], 1.0)
    assert rx.get_timer() == 40.0
    assert rx.handle_timer(39.9).send == []
    [abort] = rx.handle_timer(40.0).send
    assert (rmpp_of(abort.mad).rmpp_type, rmpp_of(abort.mad).rmpp_status) == (
        RmppType.ABORT, RmppStatus.T2L)
    assert rx.drops["timeout"] == 1 and len(rx) == 0 and rx.get_timer() is None


def test_receiver_stops_when_out_of_transfers() -> None:
    tx, rx = RmppSender(), RmppReceiver(max_transfers=1)
    data = pack_records(nodes(5))
    s1 = tx.start(CLIENT, header(1), SaHeader(), data, 0).send[0]
    s2 = tx.start(CLIENT, header(2), SaHeader(), data, 0).send[0]
    rx.receive(SA, s1.mad, 0)
    [stop] = rx.receive(SA, s2.mad, 0).send
    assert (rmpp_of(stop.mad).rmpp_type, rmpp_of(stop.mad).rmpp_status) == (3, 1)
    assert rx.drops["too_many_transfers"] == 1
    step = tx.receive(CLIENT, stop.mad, 0)
    assert step.finished == [Outcome(CLIENT, 2, False, "stopped_by_peer", RmppStatus.RESX)]
    assert tx.owns(CLIENT, 1) and not tx.owns(CLIENT, 2)


def test_lingering_transfer_makes_room_for_a_new_one() -> None:
    tx, rx = RmppSender(), RmppReceiver(max_transfers=1)
    one = tx.start(CLIENT, header(1), SaHeader(), b"x", 0).send[0]
    assert len(rx.receive(SA, one.mad, 0).delivered) == 1 and rx.owns(SA, 1)
    two = tx.start(CLIENT, header(2), SaHeader(), b"y", 0).send[0]
    assert [m.data for m in rx.receive(SA, two.mad, 1).delivered] == [b"y"]
    assert not rx.owns(SA, 1) and rx.owns(SA, 2) and rx.stats["evicted"] == 1
    assert not rx.drops


def test_receiver_refuses_a_payload_too_large() -> None:
    segs, _ = all_segments(pack_records(nodes(20)))  # 12 segments
    rx = RmppReceiver(max_segments=10)
    [stop] = rx.receive(SA, segs[0], 0).send
    assert rmpp_of(stop.mad).rmpp_type == RmppType.STOP and rx.drops["too_large"] == 1


def data_mad(seg: int, flags: int, paylen: int = 0, *, version: int = 1, kind: int = 1,
             status: int = 0) -> bytes:
    rmpp = RmppHeader(rmpp_version=version, rmpp_type=kind, rmpp_flags=flags,
                      rmpp_status=status, segment_number=seg, payload_length=paylen)
    return SaMad(header(), rmpp, SaHeader()).encode()


A, F, L = RMPP_FLAG_ACTIVE, RMPP_FLAG_FIRST, RMPP_FLAG_LAST


@pytest.mark.parametrize(("mad", "reason", "status"), [
    (data_mad(1, A), "bad_segment", RmppStatus.BAD_SEGMENT),  # segment 1 without First
    (data_mad(2, A | F), "bad_segment", RmppStatus.BAD_SEGMENT),
    (data_mad(1, A | F | L, 221), "bad_length", RmppStatus.BAD_LENGTH),
    (data_mad(1, A | F | L, 19), "bad_length", RmppStatus.BAD_LENGTH),
    (data_mad(1, A | F, version=2), "bad_version", RmppStatus.UNSUPPORTED_VERSION),
    (data_mad(1, A | F, kind=7), "bad_type", RmppStatus.BAD_TYPE),
    (data_mad(1, A | F, status=5), "bad_status", RmppStatus.BAD_STATUS),
])
def test_receiver_aborts_malformed_segments(mad: bytes, reason: str, status: int) -> None:
    rx = RmppReceiver()
    [abort] = rx.receive(SA, mad, 0).send
    v = SaMad.decode(abort.mad)
    assert (v.rmpp.rmpp_type, v.rmpp.rmpp_status) == (RmppType.ABORT, status)
    assert v.header.method == Method.GET_TABLE
    assert rx.drops == {reason: 1} and len(rx) == 0


@pytest.mark.parametrize(("seg", "nwl", "reason", "status"), [
    (3, 2, "window_too_small", RmppStatus.W2S),
    (2, 9, "segment_too_big", RmppStatus.S2B),  # only segment 1 was in the window
])
def test_sender_aborts_bad_acks(seg: int, nwl: int, reason: str, status: int) -> None:
    tx = RmppSender()
    tx.start(CLIENT, header(), SaHeader(), pack_records(nodes(10)), 0)
    ack = data_mad(seg, A, nwl, kind=RmppType.ACK)
    step = tx.receive(CLIENT, ack, 0)
    assert step.finished == [Outcome(CLIENT, TID, False, reason, status)]
    assert rmpp_of(step.send[0].mad).rmpp_status == status and tx.drops[reason] == 1


def test_sender_ignores_stale_acks_and_takes_aborts() -> None:
    tx = RmppSender()
    tx.start(CLIENT, header(), SaHeader(), pack_records(nodes(10)), 0)
    assert len(tx.receive(CLIENT, data_mad(1, A, 4, kind=RmppType.ACK), 0).send) == 3
    assert tx.receive(CLIENT, data_mad(1, A, 2, kind=RmppType.ACK), 0).send == []
    assert tx.drops["stale_ack"] == 1
    step = tx.receive(CLIENT, data_mad(0, A, 0, kind=RmppType.ABORT, status=118), 0)
    assert step.finished == [Outcome(CLIENT, TID, False, "aborted_by_peer", 118)]
    assert tx.receive(CLIENT, data_mad(4, A, 4, kind=RmppType.ACK), 0).send == []
    assert tx.drops["unknown_transfer"] == 1


def test_sender_bounds() -> None:
    tx = RmppSender(max_transfers=1, max_segments=2)
    assert tx.start(CLIENT, header(1), SaHeader(), bytes(401), 0).finished[0].reason == (
        "too_large")
    assert tx.start(CLIENT, header(1), SaHeader(), bytes(400), 0).send
    assert tx.start(CLIENT, header(1), SaHeader(), b"", 0).finished[0].reason == (
        "duplicate_transfer")
    assert tx.start(CLIENT, header(2), SaHeader(), b"", 0).finished[0].reason == (
        "too_many_transfers")
    assert tx.drops == {"too_large": 1, "duplicate_transfer": 1, "too_many_transfers": 1}


# -- dispatch and robustness -------------------------------------------------------------


def test_is_rmpp(vectors_dir: Path) -> None:
    opensm = next(r.valid for r in read_hex(vectors_dir / "saquery_nr.hex") if not r.sent)
    assert opensm[24:28] == bytes([0, 0, 1, 0])  # Active flag only, through umad2sim
    assert not is_rmpp(opensm)
    assert not is_rmpp(build_sa_mad(Method.GET, SaAttr.PATH_RECORD))
    assert is_rmpp(data_mad(1, A | F)) and is_rmpp(data_mad(1, A, kind=RmppType.ACK))
    assert not is_rmpp(data_mad(1, F)) and not is_rmpp(b"\x01\x03")


def test_non_rmpp_and_foreign_mads_are_counted() -> None:
    rx, tx = RmppReceiver(), RmppSender()
    plain = build_sa_mad(Method.GET_TABLE_RESP, SaAttr.NODE_RECORD)
    smp = bytearray(data_mad(1, A | F))
    smp[1] = MgmtClass.SUBN_LID_ROUTED
    for end in (rx, tx):
        assert end.receive(SA, plain, 0).send == []
        assert end.receive(SA, bytes(smp), 0).send == []
        assert end.receive(SA, b"\x01", 0).send == []
        assert (end.drops["not_rmpp"], end.drops["wrong_class"], end.drops["malformed"]) == (
            1, 1, 1)
    assert rx.receive(SA, data_mad(1, A, 1, kind=RmppType.ACK), 0).send == []
    assert rx.drops["unexpected"] == 1


@settings(max_examples=300)
@given(blob=st.binary(max_size=260), head=st.sampled_from([b"", b"\x01\x03\x02\x92"]),
       rmpp=st.binary(min_size=12, max_size=12))
def test_random_mads_never_raise(blob: bytes, head: bytes, rmpp: bytes) -> None:
    """Random bytes, and SA MADs with random RMPP headers, only ever count drops or answer."""
    mads = [blob, (head + blob[:20]).ljust(24, b"\0") + rmpp + blob[44:]]
    for mad in mads:
        rx, tx = RmppReceiver(), RmppSender()
        tx.start(SA, header(int.from_bytes(mad[8:16].ljust(8, b"\0"), "big")), SaHeader(),
                 bytes(1000), 0)
        before = len(rx)
        step = rx.receive(SA, mad, 0)
        assert sum(rx.drops.values()) + len(rx) - before + len(step.delivered) >= 1
        step = tx.receive(SA, mad, 0)
        assert sum(tx.drops.values()) + len(step.send) + len(step.finished) + tx.stats["acks"] >= 1
