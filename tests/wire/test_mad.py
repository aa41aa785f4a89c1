"""MAD headers, builders, peeks and the class-generic attributes (wire/mad.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.crc import append_crcs
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.ib import Bth, Deth
from ipoib.wire.layout import Record
from ipoib.wire.mad import (
    MAD_SIZE,
    ClassPortInfo,
    DrSmp,
    DrSmpHeader,
    Gmp,
    MadHeader,
    MadStatus,
    Method,
    MgmtClass,
    Notice,
    NoticeType,
    RmppHeader,
    RmppType,
    SaHeader,
    SaMad,
    Smp,
    SmpHeader,
    build_dr_smp,
    build_gmp,
    build_sa_mad,
    build_smp,
    dr_direction,
    dr_dlid,
    dr_hop_count,
    dr_hop_pointer,
    dr_initial_path,
    dr_return_path,
    dr_slid,
    dr_step,
    gmp_data,
    is_response,
    mad_attr_id,
    mad_attr_mod,
    mad_base_version,
    mad_class,
    mad_class_version,
    mad_method,
    mad_status,
    mad_tid,
    make_response,
    parse_mad,
    response_method,
    sa_data,
    smp_data,
    smp_mkey,
    with_header,
)
from tests.vectors import read_hex
from tests.wire.ib_vectors import DR_SMP_ICRC, DR_SMP_LRH, DR_SMP_VCRC, dr_smp_nodeinfo_get_mad
from tests.wire.records import decoded_or_refused

# --- enums and the response rule ------------------------------------------------------------


def test_numbers_match_the_reference() -> None:
    assert (MgmtClass.SUBN_LID_ROUTED, MgmtClass.SUBN_DIRECTED_ROUTE, MgmtClass.SUBN_ADM,
            MgmtClass.PERF_MGMT, MgmtClass.DEV_MGMT, MgmtClass.COMM_MGMT) == (
        0x01, 0x81, 0x03, 0x04, 0x06, 0x07)
    assert (MadStatus.BUSY, MadStatus.REDIRECT, MadStatus.BAD_VERSION,
            MadStatus.METHOD_UNSUPPORTED, MadStatus.METHOD_ATTR_UNSUPPORTED,
            MadStatus.INVALID_FIELD) == (1, 2, 4, 8, 0xC, 0x1C)
    assert (Method.GET_TABLE, Method.GET_TABLE_RESP, Method.GET_MULTI, Method.GET_MULTI_RESP,
            Method.DELETE, Method.DELETE_RESP, Method.GET_TRACE_TABLE) == (
        0x12, 0x92, 0x14, 0x94, 0x15, 0x95, 0x13)


@pytest.mark.parametrize(("method", "response"), [
    (Method.GET, False), (Method.SET, False), (Method.TRAP, False), (Method.REPORT, False),
    (Method.SEND, False), (Method.GET_RESP, True), (Method.REPORT_RESP, True),
    (Method.TRAP_REPRESS, True), (Method.GET_TABLE_RESP, True), (Method.DELETE, False),
])
def test_is_response(method: int, response: bool) -> None:
    # TrapRepress (0x07) has no R bit yet is a response (OpenSM ib_mad_is_response)
    assert is_response(method) is response


def test_response_methods() -> None:
    assert response_method(Method.GET) == Method.GET_RESP
    assert response_method(Method.SET) == Method.GET_RESP  # not 0x82
    assert response_method(Method.TRAP) == Method.TRAP_REPRESS
    assert response_method(Method.REPORT) == Method.REPORT_RESP
    assert response_method(Method.GET_TABLE) == Method.GET_TABLE_RESP
    assert response_method(Method.GET_TRACE_TABLE) == Method.GET_TABLE_RESP
    assert response_method(Method.DELETE) == Method.DELETE_RESP
    for unanswerable in (Method.SEND, Method.GET_RESP, Method.TRAP_REPRESS):
        with pytest.raises(DecodeError) as err:
            response_method(unanswerable)
        assert (err.value.field, err.value.offset) == ("method", 3)


# --- headers -------------------------------------------------------------------------------


def test_mad_header_layout() -> None:
    h = MadHeader(mgmt_class=3, class_version=2, method=0x92, status=0x0300,
                  class_specific=0xABCD, tid=0x0001_0000_76C3_97E1, attr_id=0x35,
                  attr_mod=0x12345678)
    assert h.encode().hex() == "01030292" "0300abcd" "0001000076c397e1" "0035" "0000" "12345678"
    assert MadHeader.decode(h.encode()) == h


def test_smp_headers_layout() -> None:
    lid = SmpHeader(method=Method.SET, attr_id=0x15, attr_mod=1, tid=7, mkey=0x1122334455667788)
    b = lid.encode()
    assert len(b) == 64 and b[:4] == bytes((1, 1, 1, 2)) and b[24:32].hex() == "1122334455667788"
    assert not any(b[32:])
    dr = DrSmpHeader(method=Method.GET_RESP, direction=1, status=0x001C, hop_pointer=2,
                     hop_count=3, tid=9, attr_id=0x11, dr_slid=5, dr_dlid=0xFFFF)
    b = dr.encode()
    assert b[:8].hex() == "01810181" "801c" "0203"
    assert b[32:36].hex() == "0005ffff" and not any(b[36:])
    assert DrSmpHeader.decode(b) == dr
    with pytest.raises(EncodeError):
        DrSmpHeader(status=0x8000).encode()  # the D bit is not part of the status


def test_rmpp_and_sa_headers_layout() -> None:
    rmpp = RmppHeader(rmpp_type=RmppType.DATA, r_resp_time=0x1F, rmpp_flags=0b111,
                      rmpp_status=0, segment_number=1, payload_length=0x1234)
    assert rmpp.encode().hex() == "0101ff00" "00000001" "00001234"
    sa = SaHeader(sm_key=1, attribute_offset=8, component_mask=0x1030)
    assert sa.encode().hex() == "0000000000000001" "0008" "0000" "0000000000001030"


# --- the §1.8 vector -----------------------------------------------------------------------


def test_dr_nodeinfo_get_matches_the_reference_packet() -> None:
    mad = build_dr_smp(Method.GET, 0x0011, tid=0x42, initial_path=(0, 1))
    assert mad == dr_smp_nodeinfo_get_mad()
    assert mad[:8].hex() == "0181010100000001"
    # wrapped in the reference's LRH/BTH/DETH it carries the quoted ICRC and VCRC
    pkt = DR_SMP_LRH + Bth(pkey=0xFFFF, dest_qp=0).encode() + Deth(qkey=0, src_qp=0).encode()
    wire = append_crcs(pkt + mad)
    assert wire[-6:] == DR_SMP_ICRC + DR_SMP_VCRC


# --- builders and views --------------------------------------------------------------------


def test_build_smp() -> None:
    mad = build_smp(Method.GET, 0x0011, 0, 0x503CEF25)
    assert len(mad) == MAD_SIZE
    assert mad[:24].hex() == "01010101" "00000000" "00000000503cef25" "0011" "0000" "00000000"
    assert not any(mad[24:])
    with_data = build_smp(Method.SET, 0x19, 3, 1, b"\x01\x02", mkey=5)
    assert smp_data(with_data) == b"\x01\x02" + bytes(62)
    assert Smp.decode(with_data).header.mkey == 5
    with pytest.raises(EncodeError):
        build_smp(Method.SET, 0x19, 0, 0, bytes(65))


def test_build_dr_smp_paths() -> None:
    mad = build_dr_smp(Method.GET, 0x15, 1, 2, initial_path=(0, 3, 5), return_path=(0, 4))
    assert dr_hop_count(mad) == 2 and dr_hop_pointer(mad) == 0 and dr_direction(mad) == 0
    assert dr_initial_path(mad) == b"\x00\x03\x05" and dr_return_path(mad) == b"\x00\x04\x00"
    smp = DrSmp.decode(mad)
    assert smp.hops == b"\x03\x05" and smp.return_hops == b"\x04\x00"
    # an explicit hop count beyond the given entries, and a raw 64-byte path kept verbatim
    raw_path = bytes(range(64))
    mad = build_dr_smp(Method.GET, 0x11, initial_path=raw_path, hop_count=0)
    assert mad[128:192] == raw_path and dr_initial_path(mad) == b"\x00"
    with pytest.raises(EncodeError):
        build_dr_smp(Method.GET, 0x11, initial_path=bytes(65))
    with pytest.raises(EncodeError):
        build_dr_smp(Method.GET, 0x11, hop_count=64)
    with pytest.raises(EncodeError):
        build_dr_smp(Method.GET, 0x11, initial_path=(0, 256))


def test_dr_path_peeks_refuse_a_hop_count_over_63() -> None:
    mad = bytearray(build_dr_smp(Method.GET, 0x11))
    mad[7] = 64
    for peek in (dr_initial_path, dr_return_path):
        with pytest.raises(DecodeError) as err:
            peek(bytes(mad))
        assert (err.value.field, err.value.offset) == ("hop_count", 7)
    smp = DrSmp.decode(bytes(mad))  # the MAD itself still decodes, and round-trips
    assert smp.encode() == bytes(mad)
    with pytest.raises(DecodeError):
        _ = smp.hops


def test_make_response_dr() -> None:
    req = build_dr_smp(Method.SET, 0x12, 0, 0x1274, b"\x78", initial_path=(0, 3),
                       hop_pointer=2)
    rep = make_response(req, b"\x79", status=MadStatus.INVALID_FIELD)
    h = DrSmp.decode(rep).header
    assert (h.method, h.direction, h.status, h.hop_pointer, h.hop_count, h.tid, h.attr_id) == (
        Method.GET_RESP, 1, 0x1C, 2, 1, 0x1274, 0x12)
    assert rep[4:6] == b"\x80\x1c" and mad_status(rep) == 0x1C
    assert smp_data(rep) == b"\x79" + bytes(63) and rep[128:] == req[128:]
    assert make_response(req)[64:128] == req[64:128]  # data kept when none is given
    with pytest.raises(EncodeError):
        make_response(req, status=0x8000)
    with pytest.raises(DecodeError):
        make_response(rep)  # a response has no response


def test_make_response_gsi_classes() -> None:
    gmp = build_gmp(MgmtClass.PERF_MGMT, Method.GET, 0x12, 0, 77, b"\x00\x01")
    rep = make_response(gmp, b"\x00\x01\xff", status=0x0100)
    assert (mad_method(rep), mad_status(rep), mad_tid(rep)) == (0x81, 0x0100, 77)
    assert rep[4:6] == b"\x01\x00"  # no D bit outside DR SMPs
    assert gmp_data(rep) == b"\x00\x01\xff" + bytes(189) and not any(rep[24:64])
    sa = build_sa_mad(Method.GET_TABLE, 0x35, 9, b"\x11" * 10, component_mask=0x1030)
    rep = make_response(sa, b"\x22")
    assert mad_method(rep) == Method.GET_TABLE_RESP and sa_data(rep) == b"\x22" + bytes(199)
    assert rep[36:56] == sa[36:56]  # the SA header is the SA's business
    # a short MAD, as ibsim delivers it, is padded
    assert len(make_response(sa[:120])) == MAD_SIZE
    with pytest.raises(EncodeError):
        make_response(gmp, bytes(193))


def test_with_header_and_dr_step() -> None:
    mad = build_dr_smp(Method.GET, 0x11, initial_path=(0, 1, 2), dr_slid=4, mkey=9)
    assert (dr_slid(mad), dr_dlid(mad), smp_mkey(mad)) == (4, 0xFFFF, 9)
    tagged = with_header(mad, tid=0x1_0000_0000_0005, attr_mod=3)
    assert mad_tid(tagged) == 0x1_0000_0000_0005 and mad_attr_mod(tagged) == 3
    assert tagged[24:] == mad[24:]
    stepped = dr_step(mad, 2, return_hop=1, return_port=7)
    assert dr_hop_pointer(stepped) == 2 and dr_return_path(stepped) == b"\x00\x07\x00"
    assert dr_step(stepped, 3)[6] == 3 and dr_step(stepped, 3)[192:] == stepped[192:]
    assert with_header(mad, method=0x81, hop_pointer=2, direction=1) == dr_step(
        make_response(mad), 2)  # the fast path and the record path agree
    lid = with_header(build_smp(Method.GET, 0x11), mkey=3)
    assert SmpHeader.decode(lid).mkey == 3 and smp_mkey(lid) == 3
    gmp = with_header(build_gmp(4, 1, 0x12), status=0xFFFF)
    assert mad_status(gmp) == 0xFFFF
    for bad in ((256, None, 0), (1, 64, 0), (1, 1, 256)):
        with pytest.raises(EncodeError):
            dr_step(mad, bad[0], bad[1], bad[2])
    with pytest.raises(DecodeError):
        dr_step(mad[:255], 1)


def test_sa_mad_round_trip() -> None:
    data = b"".join(bytes([i]) * 52 + bytes(4) for i in range(3))
    mad = build_sa_mad(Method.GET_TABLE_RESP, 0x38, 5, data, attribute_offset=7,
                       component_mask=0x10087, sm_key=1,
                       rmpp=RmppHeader(rmpp_version=1, rmpp_type=RmppType.DATA, rmpp_flags=7))
    assert mad[24:56].hex() == ("01010700" "00000000" "00000000" "0000000000000001" "0007"
                                "0000" "0000000000010087")
    sa = parse_mad(mad)
    assert isinstance(sa, SaMad) and sa.encode() == mad and sa.data[:len(data)] == data
    with pytest.raises(EncodeError):
        build_sa_mad(Method.GET, 0x35, 0, bytes(201))


def test_saquery_requests_rebuild_exactly(vectors_dir: Path) -> None:
    req, rep = read_hex(vectors_dir / "saquery_pr.hex")
    q = SaMad.decode(req.mad)
    assert q.encode() == req.mad
    assert build_sa_mad(Method.GET_TABLE, 0x35, q.header.tid, q.data,
                        component_mask=0x1030) == req.mad
    r = SaMad.decode(rep.valid)
    assert r.header.tid == q.header.tid | 1 << 48  # ibsim's slot tag for saquery
    assert r.header.method == Method.GET_TABLE_RESP and r.sa.attribute_offset == 8
    assert r.rmpp == RmppHeader(rmpp_version=0, rmpp_flags=1)  # Active only, via umad2sim
    assert r.encode()[: rep.meta["length"]] == rep.valid


def test_class_port_info_from_opensm_sa(vectors_dir: Path) -> None:
    _, rep = read_hex(vectors_dir / "saquery_cpi.hex")
    assert mad_attr_id(rep.mad) == 0x0001
    cpi = ClassPortInfo.decode(sa_data(rep.mad))
    assert (cpi.base_version, cpi.class_version, cpi.capability_mask) == (1, 2, 0x2602)
    assert (cpi.capability_mask2, cpi.resp_time_value) == (0xB5E8, 0x10)
    assert cpi.capability_mask2 & 0x1000  # send-only full-member joins supported
    assert (cpi.redirect_qp, cpi.redirect_qkey, cpi.trap_qkey) == (1, 0x80010000, 0x80010000)
    assert cpi.encode() == sa_data(rep.mad)[:72]


def test_class_port_info_bit_fields() -> None:
    cpi = ClassPortInfo(redirect_tc=0xAB, redirect_sl=0xC, redirect_fl=0xFFFFF, trap_hl=0x40,
                        trap_qp=0x123456, redirect_qp=0xFFFFFF, resp_time_value=0x1F)
    b = cpi.encode()
    assert b[24:28].hex() == "abcfffff" and b[32:36].hex() == "00ffffff"
    assert b[64:68].hex() == "40123456" and b[7] == 0x1F


# --- Notice --------------------------------------------------------------------------------


def test_notice_layout() -> None:
    n = Notice(is_generic=1, notice_type=NoticeType.URGENT, producer_type=2, trap_number=128,
               issuer_lid=3, notice_toggle=1, notice_count=0x7FFF, data_details=bytes(54),
               issuer_gid=b"\xfe\x80" + bytes(14))
    b = n.encode()
    assert len(b) == 80
    assert b[:10].hex() == "81000002" "0080" "0003" "ffff"
    assert b[64:66] == b"\xfe\x80"
    assert n.smp_data() == b[:64]
    assert Notice.from_smp_data(b[:64]) == n.replace(issuer_gid=bytes(16))
    vendor = Notice.decode(bytes.fromhex("7f00abcd1234") + bytes(74))
    assert (vendor.is_generic, vendor.notice_type, vendor.producer_type) == (0, 0x7F, 0xABCD)
    with pytest.raises(DecodeError):
        Notice.from_smp_data(bytes(63))


# --- property tests: bad input gives DecodeError and nothing else --------------------------

RECORDS: list[type[Record]] = [MadHeader, SmpHeader, DrSmpHeader, RmppHeader, SaHeader,
                               ClassPortInfo, Notice]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.NAME)
@given(data=st.data())
def test_records_decode_any_bytes_or_raise_decode_error(cls: type[Record],
                                                        data: st.DataObject) -> None:
    decoded_or_refused(cls, data.draw(st.binary(max_size=cls.SIZE + 8)))


PEEKS = [mad_base_version, mad_class, mad_class_version, mad_method, mad_status, mad_tid,
         mad_attr_id, mad_attr_mod, dr_direction, dr_hop_pointer, dr_hop_count, smp_data,
         dr_initial_path, dr_return_path, gmp_data, sa_data, parse_mad, make_response,
         with_header, dr_slid, dr_dlid, smp_mkey, lambda m: dr_step(m, 1, 0, 1), Smp.decode, DrSmp.decode, SaMad.decode, Gmp.decode]


@given(buf=st.binary(max_size=300), hop_count=st.integers(0, 255), method=st.integers(0, 255),
       cls=st.sampled_from([0x01, 0x81, 0x03, 0x04, 0x07, 0xFF]))
def test_mad_helpers_raise_only_decode_error(buf: bytes, hop_count: int, method: int,
                                             cls: int) -> None:
    b = bytearray(buf)
    if len(b) > 7:
        b[1], b[3], b[7] = cls, method, hop_count
    for fn in PEEKS:
        try:
            fn(bytes(b))
        except DecodeError:
            pass


@given(buf=st.binary(min_size=256, max_size=256))
def test_whole_mad_views_round_trip_any_256_bytes(buf: bytes) -> None:
    view = parse_mad(buf)
    again = type(view).decode(view.encode())
    assert again == view
    if isinstance(view, DrSmp):
        # everything but the reserved header bytes survives, unused path entries included
        expected = bytearray(buf)
        expected[18:20] = bytes(2)
        expected[36:64] = bytes(28)
        assert view.encode() == bytes(expected)
