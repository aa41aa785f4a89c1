"""UD packet headers and the whole-packet API (wire/ib.py, wire-formats.md §1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire import ib
from ipoib.wire.crc import append_crcs
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.gid import parse_gid
from ipoib.wire.ib import (
    Bth,
    Deth,
    Grh,
    Lrh,
    UdTemplate,
    build_ud,
    parse_ud,
)

from .ib_vectors import (
    DR_SMP_LRH,
    IPOIB_ICMP,
    UD_MCAST,
    UD_UNICAST,
    dr_smp_nodeinfo_get_mad,
)

SGID = parse_gid("fe80::2:c903:0:1001")
MGID = parse_gid("ff12:401b:ffff::1")
UNICAST: dict[str, Any] = {"vl": 0, "sl": 0, "dlid": 3, "slid": 2, "pkey": 0xFFFF,
                           "dest_qp": 0x49, "qkey": 0xB, "src_qp": 0x48}
MCAST: dict[str, Any] = {**UNICAST, "dlid": 0xC001, "dest_qp": 0xFFFFFF}
MCAST_GRH = Grh(sgid=SGID, dgid=MGID)


# --- the records: every field where the reference puts it ------------------------------------

@pytest.mark.parametrize(("rec", "hexbytes"), [
    (Lrh(vl=15, lnh=0), "f000000000000000"),
    (Lrh(lver=15, lnh=0), "0f00000000000000"),
    (Lrh(sl=15, lnh=0), "00f0000000000000"),
    (Lrh(lnh=3), "0003000000000000"),
    (Lrh(lnh=0, dlid=0xABCD), "0000abcd00000000"),
    (Lrh(lnh=0, pkt_len=0x7FF), "0000000007ff0000"),
    (Lrh(lnh=0, slid=0x1234), "0000000000001234"),
    (Bth(opcode=0, pkey=0, se=1), "008000000000000000000000"),
    (Bth(opcode=0, pkey=0, m=1), "004000000000000000000000"),
    (Bth(opcode=0, pkey=0, pad_cnt=3), "003000000000000000000000"),
    (Bth(opcode=0, pkey=0, tver=15), "000f00000000000000000000"),
    (Bth(opcode=0, pkey=0, fecn=1), "000000008000000000000000"),
    (Bth(opcode=0, pkey=0, becn=1), "000000004000000000000000"),
    (Bth(opcode=0, pkey=0, dest_qp=0xFFFFFF), "0000000000ffffff00000000"),
    (Bth(opcode=0, pkey=0, ack_req=1), "000000000000000080000000"),
    (Bth(opcode=0, pkey=0, psn=0xABCDEF), "000000000000000000abcdef"),
    (Bth(), "6400ffff0000000000000000"),
    (Deth(qkey=0x80010000, src_qp=0xFFFFFF), "8001000000ffffff"),
])
def test_record_bit_positions(rec: ib.Lrh | ib.Bth | ib.Deth, hexbytes: str) -> None:
    assert rec.encode().hex() == hexbytes
    assert type(rec).decode(bytes.fromhex(hexbytes)) == rec


def test_grh_bit_positions() -> None:
    g = Grh(ipver=6, tclass=0xAB, flow_label=0xCDEF1, pay_len=0x1234, nxt_hdr=0x1B, hop_lmt=7,
            sgid=SGID, dgid=MGID)
    assert g.encode() == bytes.fromhex("6abcdef112341b07") + SGID + MGID
    assert Grh.decode(g.encode()) == g
    assert Grh().encode()[:8] == bytes.fromhex("600000000000" "1b00")


def test_record_sections_and_sizes() -> None:
    assert (Lrh.SIZE, Grh.SIZE, Bth.SIZE, Deth.SIZE) == (8, 40, 12, 8)
    assert Lrh.SECTION == "IBA 7.7" and Grh.SECTION == "IBA 8.3" and Bth.SECTION == "IBA 9.2"
    assert ib.UD_HEADER_SIZE == 28 and ib.UD_GRH_HEADER_SIZE == 68


def test_constants() -> None:
    assert ib.MULTICAST_QPN == 0xFFFFFF and ib.PERMISSIVE_LID == 0xFFFF
    assert ib.MCAST_LID_BASE == 0xC000 and ib.GSI_QKEY == 0x80010000
    assert (ib.QP0, ib.QP1) == (0, 1)
    assert (ib.OP_UD_SEND_ONLY, ib.OP_UD_SEND_ONLY_IMM) == (0x64, 0x65)
    assert (ib.LNH_LOCAL, ib.LNH_GLOBAL) == (2, 3)
    assert ib.is_multicast_lid(0xC000) and ib.is_multicast_lid(0xFFFE)
    assert not ib.is_multicast_lid(0xFFFF) and not ib.is_multicast_lid(0xBFFF)


# --- the reference vectors --------------------------------------------------------------------

def test_parse_unicast_vector() -> None:
    p = parse_ud(UD_UNICAST)
    assert p.lrh == Lrh(vl=0, sl=0, lnh=2, dlid=3, pkt_len=24, slid=2)
    assert p.grh is None
    assert p.bth == Bth(opcode=0x64, pad_cnt=0, pkey=0xFFFF, dest_qp=0x49, psn=0)
    assert p.deth == Deth(qkey=0xB, src_qp=0x48)
    assert p.imm is None
    assert p.payload == IPOIB_ICMP and len(p.payload) == 64


def test_parse_multicast_vector() -> None:
    p = parse_ud(UD_MCAST)
    assert p.lrh.lnh == 3 and p.lrh.dlid == 0xC001 and p.lrh.pkt_len == 34
    assert p.grh == Grh(pay_len=88, sgid=SGID, dgid=MGID)
    assert p.bth.dest_qp == 0xFFFFFF
    assert p.payload == UD_MCAST[68:]


def test_build_reproduces_vectors() -> None:
    assert build_ud(**UNICAST, payload=IPOIB_ICMP) == UD_UNICAST
    assert build_ud(**MCAST, payload=UD_MCAST[68:], grh=MCAST_GRH) == UD_MCAST
    # pay_len given in the GRH is ignored: build_ud computes it
    assert build_ud(**MCAST, payload=UD_MCAST[68:], grh=MCAST_GRH.replace(pay_len=5)) == UD_MCAST
    smp = build_ud(vl=15, sl=0, dlid=0xFFFF, slid=0xFFFF, pkey=0xFFFF, dest_qp=0, qkey=0,
                   src_qp=0, payload=dr_smp_nodeinfo_get_mad())
    assert smp[:8] == DR_SMP_LRH and len(smp) == 284


def test_template_reproduces_vectors() -> None:
    assert UdTemplate(**UNICAST).packet(IPOIB_ICMP) == UD_UNICAST
    t = UdTemplate(**MCAST, grh=MCAST_GRH)
    assert t.packet(UD_MCAST[68:]) == UD_MCAST
    assert t.packet(memoryview(UD_MCAST)[68:]) == UD_MCAST
    assert t.header_size == 68 and t.lnh == 3 and t.dlid == 0xC001


# --- lengths: PktLen, PadCnt, PayLen ----------------------------------------------------------

@pytest.mark.parametrize("grh", [None, MCAST_GRH])
@pytest.mark.parametrize("imm", [None, 0xDEADBEEF])
@pytest.mark.parametrize("n", range(10))
def test_length_fields(n: int, grh: Grh | None, imm: int | None) -> None:
    payload = bytes(range(1, n + 1))
    pkt = build_ud(**UNICAST, payload=payload, grh=grh, imm=imm)
    hdr = 28 + (40 if grh else 0) + (4 if imm is not None else 0)
    pad = (4 - n) % 4
    assert len(pkt) == hdr + n + pad
    assert pkt[len(pkt) - pad:] == bytes(pad)
    lrh = Lrh.decode(pkt)
    assert lrh.pkt_len * 4 == len(pkt) + 4  # PktLen counts the ICRC
    off = 48 if grh else 8
    assert Bth.decode(pkt, off).pad_cnt == pad
    assert Bth.decode(pkt, off).opcode == (0x64 if imm is None else 0x65)
    if grh:
        assert Grh.decode(pkt, 8).pay_len == len(pkt) - 48 + 4
    p = parse_ud(pkt)
    assert p.payload == payload and p.imm == imm
    assert UdTemplate(**UNICAST, grh=grh, imm=imm).packet(payload) == pkt


@pytest.mark.parametrize("grh", [None, MCAST_GRH])
def test_template_reused_across_lengths(grh: Grh | None) -> None:
    """The per-length header cache fills up and stays right, for bytes and memoryviews."""
    t = UdTemplate(**UNICAST, grh=grh)
    lengths = [n * 37 % 71 for n in range(3 * 71)]  # 0..70 in a scrambled order, 3 times
    assert len(set(lengths)) > UdTemplate.CACHE_LENGTHS
    for n in lengths:
        payload = bytes(range(n))
        want = build_ud(**UNICAST, grh=grh, payload=payload)
        assert t.packet(payload) == want
        assert t.packet(memoryview(payload)) == want
        assert t.header(n) == want[: len(want) - n - (-n & 3)]
    with pytest.raises(EncodeError):
        t.header(-1)


def test_max_payload() -> None:
    for grh in (None, MCAST_GRH):
        t = UdTemplate(**UNICAST, grh=grh)
        m = t.max_payload()
        pkt = t.packet(bytes(m))
        assert Lrh.decode(pkt).pkt_len == 0x7FF
        assert parse_ud(pkt).payload == bytes(m)
        with pytest.raises(EncodeError, match="pkt_len"):
            t.packet(bytes(m + 1))
        with pytest.raises(EncodeError, match="pkt_len"):
            build_ud(**UNICAST, grh=grh, payload=bytes(m + 1))


@pytest.mark.parametrize(("field", "value"), [
    ("vl", 16), ("sl", -1), ("dlid", 0x10000), ("slid", -1), ("pkey", 0x10000),
    ("dest_qp", 1 << 24), ("src_qp", -1), ("qkey", 1 << 32), ("psn", 1 << 24),
    ("solicited", 2), ("imm", 1 << 32), ("imm", -1), ("dlid", None),
])
def test_encode_errors_name_the_field(field: str, value: Any) -> None:
    kw: dict[str, Any] = dict(UNICAST)
    kw[field] = value
    if value is None and not ib.__file__.endswith(".py"):  # compiled: refused by its type
        with pytest.raises(TypeError):
            build_ud(**kw, payload=b"")
        return
    with pytest.raises(EncodeError) as e:
        build_ud(**kw, payload=b"")
    assert e.value.field == field
    with pytest.raises(EncodeError):
        UdTemplate(**kw)


def test_grh_values_checked() -> None:
    with pytest.raises(EncodeError):
        build_ud(**MCAST, payload=b"", grh=Grh(sgid=b"short", dgid=MGID))
    with pytest.raises(EncodeError):
        build_ud(**MCAST, payload=b"", grh=Grh(hop_lmt=256, sgid=SGID, dgid=MGID))


# --- integrity checks -----------------------------------------------------------------------

def _patch(pkt: bytes, at: int, value: int) -> bytes:
    b = bytearray(pkt)
    b[at] = value
    return bytes(b)


BAD = [
    ("LVer 1", _patch(UD_UNICAST, 0, 0x01), "LRH", "lver", 0),
    ("LNH raw", _patch(UD_UNICAST, 1, 0x00), "LRH", "lnh", 1),
    ("LNH IPv6", _patch(UD_UNICAST, 1, 0x01), "LRH", "lnh", 1),
    ("LNH 3 without GRH", _patch(UD_UNICAST, 1, 0x03), "GRH", "nxt_hdr", 14),
    ("PktLen reserved bits", _patch(UD_UNICAST, 4, 0x08), "LRH", "pkt_len", 4),
    ("PktLen one word long", _patch(UD_UNICAST, 5, 25), "LRH", "pkt_len", 4),
    ("PktLen one word short", _patch(UD_UNICAST, 5, 23), "LRH", "pkt_len", 4),
    ("cut by a word", UD_UNICAST[:-4], "LRH", "pkt_len", 4),
    ("one byte extra", UD_UNICAST + b"\0", "LRH", "pkt_len", 4),
    ("opcode RC send", _patch(UD_UNICAST, 8, 0x04), "BTH", "opcode", 8),
    ("opcode UD 0x66", _patch(UD_UNICAST, 8, 0x66), "BTH", "opcode", 8),
    ("TVer 1", _patch(UD_UNICAST, 9, 0x01), "BTH", "tver", 9),
    ("IPVer 4", _patch(UD_MCAST, 8, 0x40), "GRH", "ipver", 8),
    ("NxtHdr 0x11", _patch(UD_MCAST, 14, 0x11), "GRH", "nxt_hdr", 14),
    ("PayLen off by 4", _patch(UD_MCAST, 13, 84), "GRH", "pay_len", 12),
    ("GRH missing", _patch(_patch(UD_UNICAST[:28], 5, 8), 1, 3), "GRH", "length", 8),
    ("LRH only", _patch(UD_UNICAST[:8], 5, 3), "BTH", "length", 8),
    ("DETH cut", _patch(UD_UNICAST[:24], 5, 7), "DETH", "length", 20),
    ("ImmDt missing", _patch(_patch(UD_UNICAST[:28], 5, 8), 8, 0x65), "ImmDt", "length", 28),
    ("short", UD_UNICAST[:5], "LRH", "length", 0),
    ("empty", b"", "LRH", "length", 0),
]


@pytest.mark.parametrize(("why", "pkt", "fmt", "field", "offset"), BAD,
                         ids=[b[0] for b in BAD])
def test_parse_rejects(why: str, pkt: bytes, fmt: str, field: str, offset: int) -> None:
    with pytest.raises(DecodeError) as e:
        parse_ud(pkt)
    assert (e.value.fmt, e.value.field, e.value.offset) == (fmt, field, offset), str(e.value)


def test_pad_count_larger_than_payload() -> None:
    empty = build_ud(**UNICAST, payload=b"")
    with pytest.raises(DecodeError) as e:
        parse_ud(_patch(empty, 9, 0x30))
    assert (e.value.field, e.value.offset) == ("pad_cnt", 9)
    one = build_ud(**UNICAST, payload=b"x")  # 1 byte + 3 pad
    assert parse_ud(one).payload == b"x"


def test_parse_with_crcs() -> None:
    p = parse_ud(append_crcs(UD_MCAST), crcs=True)
    assert p == parse_ud(UD_MCAST)
    bad = bytearray(append_crcs(UD_UNICAST))
    bad[40] ^= 1
    with pytest.raises(DecodeError) as e:
        parse_ud(bytes(bad), crcs=True)
    assert e.value.fmt == "VCRC"
    with pytest.raises(DecodeError):
        parse_ud(UD_UNICAST, crcs=True)  # no CRCs on it


# --- peeks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pkt", [UD_UNICAST, UD_MCAST, build_ud(
    vl=5, sl=9, dlid=0x1234, slid=0x4321, pkey=0x8001, dest_qp=0xABCDEF, qkey=0x80010000,
    src_qp=0x123456, psn=0xFEDCBA, imm=7, payload=b"abcde", grh=MCAST_GRH)])
def test_peeks_agree_with_parse(pkt: bytes) -> None:
    p = parse_ud(pkt)
    off = ib.bth_offset(pkt)
    assert off == (48 if p.grh else 8)
    assert ib.lrh_vl(pkt) == p.lrh.vl and ib.lrh_sl(pkt) == p.lrh.sl
    assert ib.lrh_lnh(pkt) == p.lrh.lnh and ib.lrh_pkt_len(pkt) == p.lrh.pkt_len
    assert ib.lrh_dlid(pkt) == p.lrh.dlid and ib.lrh_slid(pkt) == p.lrh.slid
    assert ib.bth_opcode(pkt, off) == p.bth.opcode and ib.bth_pkey(pkt, off) == p.bth.pkey
    assert ib.bth_dest_qp(pkt, off) == p.bth.dest_qp and ib.bth_psn(pkt, off) == p.bth.psn
    assert ib.bth_pad_cnt(pkt, off) == p.bth.pad_cnt
    assert ib.deth_qkey(pkt, off) == p.deth.qkey and ib.deth_src_qp(pkt, off) == p.deth.src_qp
    assert ib.ud_payload(pkt, off) == p.payload
    assert ib.check_ud(pkt) == off
    if p.grh:
        assert ib.grh_sgid(pkt) == p.grh.sgid and ib.grh_dgid(pkt) == p.grh.dgid


def test_peeks_on_short_input_raise_decode_error() -> None:
    for fn in (ib.lrh_vl, ib.lrh_sl, ib.lrh_lnh, ib.lrh_dlid, ib.lrh_pkt_len, ib.lrh_slid,
               ib.bth_offset, ib.grh_sgid, ib.grh_dgid):
        with pytest.raises(DecodeError):
            fn(b"")
    for fn2 in (ib.bth_opcode, ib.bth_pad_cnt, ib.bth_pkey, ib.bth_dest_qp, ib.bth_psn,
                ib.deth_qkey, ib.deth_src_qp, ib.ud_payload):
        with pytest.raises(DecodeError):
            fn2(UD_UNICAST[:8], 8)


def test_with_vl() -> None:
    pkt = ib.with_vl(UD_UNICAST, 7)
    assert ib.lrh_vl(pkt) == 7 and pkt[1:] == UD_UNICAST[1:] and pkt[0] & 0x0F == 0
    with pytest.raises(EncodeError):
        ib.with_vl(UD_UNICAST, 16)


# --- properties -----------------------------------------------------------------------------

U = st.integers
FIELDS = st.fixed_dictionaries({
    "vl": U(0, 15), "sl": U(0, 15), "dlid": U(0, 0xFFFF), "slid": U(0, 0xFFFF),
    "pkey": U(0, 0xFFFF), "dest_qp": U(0, 0xFFFFFF), "qkey": U(0, 2**32 - 1),
    "src_qp": U(0, 0xFFFFFF), "psn": U(0, 0xFFFFFF), "solicited": U(0, 1),
    "imm": st.none() | U(0, 2**32 - 1),
})
GRHS = st.none() | st.builds(
    Grh, tclass=U(0, 255), flow_label=U(0, 0xFFFFF), hop_lmt=U(0, 255),
    sgid=st.binary(min_size=16, max_size=16), dgid=st.binary(min_size=16, max_size=16))


@given(FIELDS, GRHS, st.binary(max_size=300))
def test_build_parse_template_agree(kw: dict[str, Any], grh: Grh | None, payload: bytes) -> None:
    pkt = build_ud(**kw, grh=grh, payload=payload)
    assert UdTemplate(**kw, grh=grh).packet(payload) == pkt
    p = parse_ud(pkt)
    assert p.payload == payload and p.imm == kw["imm"]
    assert (p.lrh.vl, p.lrh.sl, p.lrh.dlid, p.lrh.slid) == (kw["vl"], kw["sl"], kw["dlid"],
                                                            kw["slid"])
    assert (p.bth.pkey, p.bth.dest_qp, p.bth.psn, p.bth.se) == (kw["pkey"], kw["dest_qp"],
                                                                kw["psn"], kw["solicited"])
    assert (p.deth.qkey, p.deth.src_qp) == (kw["qkey"], kw["src_qp"])
    if grh is None:
        assert p.grh is None
    else:
        assert p.grh == grh.replace(pay_len=len(pkt) - 48 + 4)
    # the fast decode and the record engine see the same headers
    assert p.lrh == Lrh.decode(pkt)
    off = ib.bth_offset(pkt)
    assert p.bth == Bth.decode(pkt, off) and p.deth == Deth.decode(pkt, off + 12)


@given(st.builds(Lrh, vl=U(0, 15), lver=U(0, 15), sl=U(0, 15), lnh=U(0, 3), dlid=U(0, 0xFFFF),
                 pkt_len=U(0, 0x7FF), slid=U(0, 0xFFFF)),
       st.builds(Bth, opcode=U(0, 255), se=U(0, 1), m=U(0, 1), pad_cnt=U(0, 3), tver=U(0, 15),
                 pkey=U(0, 0xFFFF), fecn=U(0, 1), becn=U(0, 1), dest_qp=U(0, 0xFFFFFF),
                 ack_req=U(0, 1), psn=U(0, 0xFFFFFF)),
       st.builds(Deth, qkey=U(0, 2**32 - 1), src_qp=U(0, 0xFFFFFF)))
def test_records_round_trip(lrh: Lrh, bth: Bth, deth: Deth) -> None:
    for rec in (lrh, bth, deth):
        assert type(rec).decode(rec.encode()) == rec


RECORDS: list[type[Lrh | Grh | Bth | Deth]] = [Lrh, Grh, Bth, Deth]


@given(st.sampled_from(RECORDS), st.binary(max_size=60), st.integers(-2, 60))
def test_record_decode_only_decode_error(cls: type[Lrh], data: bytes, offset: int) -> None:
    try:
        rec = cls.decode(data, offset)
    except DecodeError:
        assert offset < 0 or len(data) - offset < cls.SIZE
        return
    # reserved bits are dropped, every field survives
    assert cls.decode(rec.encode()) == rec


@given(st.binary(max_size=200))
def test_parse_random_bytes_only_decode_error(data: bytes) -> None:
    try:
        parse_ud(data)
    except DecodeError:
        pass
    try:
        parse_ud(data, crcs=True)
    except DecodeError:
        pass


@given(st.sampled_from([UD_UNICAST, UD_MCAST]), st.integers(0, 200), st.binary(max_size=8),
       st.integers(0, 255), st.integers(0, 7))
def test_parse_mangled_vectors_only_decode_error(
    base: bytes, cut: int, extra: bytes, at: int, bit: int
) -> None:
    variants = [base[:cut], base + extra, base[:cut] + extra]
    b = bytearray(base)
    b[at % len(b)] ^= 1 << bit
    variants.append(bytes(b))
    for v in variants:
        try:
            p = parse_ud(v)
        except DecodeError:
            continue
        assert len(p.payload) <= len(v) - 28
