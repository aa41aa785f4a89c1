"""Our UD packets, CRCs and captures as Wireshark's dissectors see them (wire-formats.md §8).

One ERF (link type 197) capture holds the §1.8 vectors plus padded, immediate-data and
GRH-unicast packets; tshark must decode every field to the value we encoded, show our ICRC
and VCRC, and report nothing malformed. A link type 242 capture checks the IPoIB view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ipoib.wire.capture import LINKTYPE_ERF, LINKTYPE_IPOIB, PcapWriter
from ipoib.wire.crc import append_crcs, icrc, vcrc
from ipoib.wire.gid import gid_to_str, parse_gid
from ipoib.wire.ib import Grh, build_ud, parse_ud
from ipoib.wire.ip import build_icmpv4, build_ipv4
from ipoib.wire.ipoib import ENCAP_IPV4
from ipoib.wire.mad import Method, build_dr_smp

from ..wire.ib_vectors import (
    DR_SMP_ICRC,
    DR_SMP_VCRC,
    IPOIB_ICMP,
    UD_MCAST,
    UD_UNICAST,
    dr_smp_nodeinfo_get_mad,
)
from .tshark import clean, require_tshark, tshark_fields

T0 = 1_700_000_000.0
SGID = parse_gid("fe80::2:c903:0:1001")
DGID = parse_gid("fe80::2:c903:0:2002")
ICMP_ODD = build_ipv4("10.0.0.1", "10.0.0.2", 1,
                      build_icmpv4(8, 0, bytes.fromhex("12340002") + b"xyz"))  # 31 bytes

ICMP_CHAIN = "erf:infiniband:ethertype:ip:icmp:data"
IB_FIELDS = [
    "infiniband.lrh.vl", "infiniband.lrh.sl", "infiniband.lrh.lnh", "infiniband.lrh.dlid",
    "infiniband.lrh.slid", "infiniband.lrh.pktlen",
    "infiniband.grh.ipver", "infiniband.grh.tclass", "infiniband.grh.flowlabel",
    "infiniband.grh.paylen", "infiniband.grh.nxthdr", "infiniband.grh.hoplmt",
    "infiniband.grh.sgid", "infiniband.grh.dgid",
    "infiniband.bth.opcode", "infiniband.bth.se", "infiniband.bth.padcnt",
    "infiniband.bth.p_key", "infiniband.bth.destqp", "infiniband.bth.psn",
    "infiniband.deth.q_key", "infiniband.deth.srcqp", "infiniband.immdt",
    "infiniband.invariant.crc", "infiniband.variant.crc",
    "infiniband.mad.mgmtclass", "infiniband.mad.method", "infiniband.mad.transactionid",
    "infiniband.mad.attributeid", "infiniband.smpdirected.hopcount",
    "ipoib.type", "ip.src", "ip.dst", "icmp.type",
]


@dataclass(frozen=True)
class Case:
    name: str
    pkt: bytes
    chain: str
    extra: dict[str, str]


def _dr_smp() -> bytes:
    mad = build_dr_smp(Method.GET, 0x0011, tid=0x42, initial_path=(0, 1))
    assert mad == dr_smp_nodeinfo_get_mad()  # wire.mad agrees with the hand layout of §1.8
    return build_ud(vl=15, sl=0, dlid=0xFFFF, slid=0xFFFF, pkey=0xFFFF, dest_qp=0, qkey=0,
                    src_qp=0, payload=mad)


CASES = [
    Case("ud-unicast-icmp", UD_UNICAST, ICMP_CHAIN,
         {"ip.src": "10.0.0.1", "ip.dst": "10.0.0.2", "icmp.type": "8", "ipoib.type": ""}),
    Case("ud-mcast-grh", UD_MCAST, ICMP_CHAIN, {"ip.dst": "224.0.0.1"}),
    Case("dr-smp-nodeinfo-get", _dr_smp(), "erf:infiniband",
         {"infiniband.mad.mgmtclass": "0x81", "infiniband.mad.method": "0x01",
          "infiniband.mad.attributeid": "0x0011", "infiniband.smpdirected.hopcount": "0x01",
          "infiniband.mad.transactionid": "0x0000000000000042"}),
    Case("ud-imm-solicited-pad1", build_ud(
        vl=2, sl=3, dlid=5, slid=2, pkey=0x8001, dest_qp=0x123, qkey=0x0B1B, src_qp=0x48,
        payload=ENCAP_IPV4 + ICMP_ODD, imm=0xDEADBEEF, psn=77, solicited=1),
        ICMP_CHAIN, {"icmp.type": "8"}),
    Case("ud-grh-unicast-pad3", build_ud(
        vl=1, sl=7, dlid=0xBFFF, slid=0x0101, pkey=0x7FFF, dest_qp=0xABCDEF, qkey=0x80000001,
        src_qp=0x10000, payload=ENCAP_IPV4 + ICMP_ODD + b"\0\0",
        grh=Grh(tclass=0x12, flow_label=0x34567, hop_lmt=9, sgid=SGID, dgid=DGID)),
        ICMP_CHAIN, {"ip.src": "10.0.0.1"}),
]


def expected(case: Case) -> dict[str, str]:
    """What tshark should print for every IB field, from our own decode (§8.4 formats)."""
    p = parse_ud(case.pkt)
    ic = icrc(case.pkt)
    want = {
        "frame.protocols": case.chain,
        "infiniband.lrh.vl": f"0x{p.lrh.vl:02x}", "infiniband.lrh.sl": str(p.lrh.sl),
        "infiniband.lrh.lnh": f"0x{p.lrh.lnh:02x}", "infiniband.lrh.dlid": str(p.lrh.dlid),
        "infiniband.lrh.slid": str(p.lrh.slid), "infiniband.lrh.pktlen": str(p.lrh.pkt_len),
        "infiniband.bth.opcode": str(p.bth.opcode), "infiniband.bth.se": str(p.bth.se),
        "infiniband.bth.padcnt": str(p.bth.pad_cnt), "infiniband.bth.p_key": str(p.bth.pkey),
        "infiniband.bth.destqp": f"0x{p.bth.dest_qp:06x}",
        "infiniband.bth.psn": str(p.bth.psn),
        "infiniband.deth.q_key": f"0x{p.deth.qkey:016x}",
        "infiniband.deth.srcqp": f"0x{p.deth.src_qp:08x}",
        "infiniband.invariant.crc": "0x" + ic.hex(),
        "infiniband.variant.crc": "0x" + vcrc(case.pkt + ic).hex(),
    }
    if p.imm is not None:  # shown as raw bytes, and added twice by the dissector
        want["infiniband.immdt"] = f"{p.imm:08x},{p.imm:08x}"
    if p.grh is not None:
        want.update({
            "infiniband.grh.ipver": "6", "infiniband.grh.tclass": str(p.grh.tclass),
            "infiniband.grh.flowlabel": str(p.grh.flow_label),
            "infiniband.grh.paylen": str(p.grh.pay_len), "infiniband.grh.nxthdr": "27",
            "infiniband.grh.hoplmt": str(p.grh.hop_lmt),
            "infiniband.grh.sgid": gid_to_str(p.grh.sgid),
            "infiniband.grh.dgid": gid_to_str(p.grh.dgid),
        })
    else:
        want["infiniband.grh.sgid"] = ""
    want.update(case.extra)
    return want


@pytest.fixture(scope="module")
def erf_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    require_tshark()
    path = tmp_path_factory.mktemp("tshark") / "ib.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f, LINKTYPE_ERF)
        for i, case in enumerate(CASES):
            w.write_ib(T0 + i * 0.5, append_crcs(case.pkt))
    rows = tshark_fields(path, [*IB_FIELDS, "frame.time_epoch"])
    assert len(rows) == len(CASES)
    return rows


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.name for c in CASES])
def test_erf_packet_decodes_as_encoded(erf_rows: list[dict[str, str]], i: int) -> None:
    row, case = erf_rows[i], CASES[i]
    assert clean(row) == []
    want = expected(case)
    got = {k: row[k] for k in want}
    assert got == want
    assert float(row["frame.time_epoch"]) == T0 + i * 0.5


def test_vectors_show_the_reference_crcs(erf_rows: list[dict[str, str]]) -> None:
    """tshark only displays CRCs; the §1.8 values pin what it shows for our vectors."""
    crcs = [(r["infiniband.invariant.crc"], r["infiniband.variant.crc"]) for r in erf_rows[:3]]
    assert crcs == [("0xdd98c2a5", "0x743a"), ("0x5c3885b7", "0x2b7e"),
                    ("0x" + DR_SMP_ICRC.hex(), "0x" + DR_SMP_VCRC.hex())]
    assert "SubnGet(NodeInfo)" in erf_rows[2]["_ws.col.Info"]


def test_missing_crcs_are_flagged(tmp_path: Path) -> None:
    """Negative control: without the CRCs, PktLen overruns the record and tshark says so,
    so :func:`clean` is not vacuous."""
    require_tshark()
    path = tmp_path / "nocrc.pcap"
    with path.open("wb") as f:
        PcapWriter(f, LINKTYPE_ERF).write_ib(T0, UD_UNICAST)
    (row,) = tshark_fields(path)
    assert any("Invalid Packet Length" in p for p in clean(row))


def test_ipoib_link_type(tmp_path: Path) -> None:
    require_tshark()
    path = tmp_path / "ipoib.pcap"
    daddr = bytes.fromhex("00000049") + DGID
    with path.open("wb") as f:
        w = PcapWriter(f, LINKTYPE_IPOIB)
        w.write_ipoib(T0, IPOIB_ICMP, daddr=daddr)
        w.write_ipoib(T0 + 1, IPOIB_ICMP, src_qpn=0x48, sgid=SGID, dgid=DGID)
    rows = tshark_fields(path, ["ipoib.daddr.qpn", "ipoib.dgid", "ipoib.grh.sqpn",
                                "ipoib.grh.sgid", "ipoib.type", "ipoib.reserved", "ip.src",
                                "ip.dst", "icmp.type"])
    assert len(rows) == 2
    common = {"frame.protocols": "ipoib:ip:icmp:data", "ipoib.type": "0x0800",
              "ipoib.reserved": "0x0000", "ip.src": "10.0.0.1", "ip.dst": "10.0.0.2",
              "icmp.type": "8", "ipoib.dgid": gid_to_str(DGID)}
    a, b = rows
    assert clean(a) == [] and clean(b) == []
    assert {k: a[k] for k in common} == common and {k: b[k] for k in common} == common
    assert (a["ipoib.daddr.qpn"], a["ipoib.grh.sqpn"]) == ("0x000049", "")
    assert (b["ipoib.daddr.qpn"], b["ipoib.grh.sqpn"]) == ("", "0x000048")
    assert b["ipoib.grh.sgid"] == gid_to_str(SGID)
