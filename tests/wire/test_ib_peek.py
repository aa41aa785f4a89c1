"""The receive fast path's one-unpack read (``peek_ud``) and the two-piece send
(``UdTemplate.packet_sg``) against the full parser and builder (wire/ib.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.errors import DecodeError
from ipoib.wire.gid import parse_gid
from ipoib.wire.ib import Grh, UdTemplate, build_ud, check_ud, parse_ud, peek_ud

fields = st.fixed_dictionaries({
    "vl": st.integers(0, 14), "sl": st.integers(0, 15), "dlid": st.integers(1, 0xBFFF),
    "slid": st.integers(1, 0xBFFF), "pkey": st.integers(0, 0xFFFF),
    "dest_qp": st.integers(2, 0xFF_FFFF), "qkey": st.integers(0, 0xFFFF_FFFF),
    "src_qp": st.integers(0, 0xFF_FFFF), "psn": st.integers(0, 0xFF_FFFF),
    "payload": st.binary(max_size=300),
})
GRH = Grh(sgid=parse_gid("fe80::1"), dgid=parse_gid("ff12:401b:ffff::ffff:ffff"))


@given(fields)
def test_peek_reads_what_the_parser_reads(f: dict[str, object]) -> None:
    pkt = build_ud(**f)  # type: ignore[arg-type]
    p = parse_ud(pkt)
    assert peek_ud(pkt) == (p.lrh.sl, p.lrh.dlid, p.lrh.slid, p.bth.pkey, p.bth.dest_qp,
                            p.deth.qkey, p.deth.src_qp, p.bth.pad_cnt)


@given(fields)
def test_grh_and_immediate_data_are_left_to_the_general_path(f: dict[str, object]) -> None:
    assert peek_ud(build_ud(**f, grh=GRH)) is None  # type: ignore[arg-type]
    assert peek_ud(build_ud(**f, imm=7)) is None  # type: ignore[arg-type]


@given(fields, st.integers(0, 27), st.integers(0, 255))
def test_peek_accepts_only_what_check_ud_accepts(f: dict[str, object], at: int,
                                                  value: int) -> None:
    pkt = bytearray(build_ud(**f))  # type: ignore[arg-type]
    pkt[at] = value  # any header byte, any value
    got = peek_ud(bytes(pkt))
    if got is None:
        return
    check_ud(bytes(pkt))  # does not raise
    p = parse_ud(bytes(pkt))
    assert got == (p.lrh.sl, p.lrh.dlid, p.lrh.slid, p.bth.pkey, p.bth.dest_qp, p.deth.qkey,
                   p.deth.src_qp, p.bth.pad_cnt)


@given(st.binary(max_size=64))
def test_random_bytes_never_raise(data: bytes) -> None:
    got = peek_ud(data)
    if got is not None:
        check_ud(data)


def test_truncated_and_padded_packets() -> None:
    pkt = build_ud(vl=0, sl=0, dlid=2, slid=1, pkey=0xFFFF, dest_qp=0x48, qkey=0x1B,
                   src_qp=0x49, payload=b"abcde")  # 3 pad bytes
    assert peek_ud(pkt) is not None and peek_ud(pkt)[-1] == 3  # type: ignore[index]
    for n in range(len(pkt)):
        assert peek_ud(pkt[:n]) is None
        with pytest.raises(DecodeError):
            check_ud(pkt[:n])


@given(fields, st.binary(max_size=8))
def test_packet_sg_is_packet_of_the_joined_pieces(f: dict[str, object], head: bytes) -> None:
    kw = {k: v for k, v in f.items() if k != "payload"}
    t = UdTemplate(**kw)  # type: ignore[arg-type]
    payload = f["payload"]
    assert isinstance(payload, bytes)
    assert t.packet_sg(head, payload) == t.packet(head + payload) \
        == build_ud(**kw, payload=head + payload)  # type: ignore[arg-type]


@given(fields, st.binary(max_size=8), st.lists(st.binary(max_size=70), max_size=6))
def test_packets_sg_is_packet_sg_of_each(f: dict[str, object], head: bytes,
                                         payloads: list[bytes]) -> None:
    kw = {k: v for k, v in f.items() if k != "payload"}
    t = UdTemplate(**kw)  # type: ignore[arg-type]
    assert t.packets_sg(head, payloads) == [build_ud(**kw, payload=head + p)  # type: ignore[arg-type]
                                            for p in payloads]
