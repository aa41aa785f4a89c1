"""Data-path costs of the UD packet formats (ipoib.wire.ib, .crc, .capture).

The packet is what IPoIB sends for a full-MTU IPv4 datagram: LRH + BTH + DETH (28 bytes),
the 4-byte IPoIB header and a 1500-byte IPv4/UDP packet, 1532 bytes in all. The floor is
``hdr + payload`` with a fixed 32-byte header: one allocation and one copy of the packet,
which no send in Python can beat; every other figure is given as a multiple of it.
"""

from __future__ import annotations

import io
from typing import Any

from bench.common import Result, ns_per_call
from ipoib.wire import capture, crc, ib
from ipoib.wire.gid import parse_gid
from ipoib.wire.ip import udp_packet
from ipoib.wire.ipoib import ENCAP_IPV4

FLOOR = "concat 32B+1500B"


def _env() -> dict[str, Any]:
    ip = udp_packet("10.0.0.1", "10.0.0.2", 40000, 5001, bytes(1500 - 28))
    assert len(ip) == 1500
    dest: dict[str, Any] = {"vl": 0, "sl": 0, "dlid": 3, "slid": 2, "pkey": 0xFFFF,
                            "dest_qp": 0x49, "qkey": 0x0B1B, "src_qp": 0x48}
    tpl = ib.UdTemplate(**dest)
    grh = ib.Grh(sgid=parse_gid("fe80::2:c903:0:1001"), dgid=parse_gid("ff12:401b:ffff::1"))
    tpl_grh = ib.UdTemplate(**{**dest, "dlid": 0xC000, "dest_qp": ib.MULTICAST_QPN}, grh=grh)
    payload = ENCAP_IPV4 + ip
    pkt = tpl.packet(payload)
    hdr = pkt[:32]
    assert hdr + ip == pkt == ib.build_ud(**dest, payload=payload)
    sink = io.BytesIO()
    return {
        "ib": ib, "crc": crc, "capture": capture, "dest": dest, "tpl": tpl,
        "tpl_grh": tpl_grh, "payload": payload, "payload_odd": payload[:-3], "ip": ip,
        "hdr": hdr, "pkt": pkt, "pkt_crcs": crc.append_crcs(pkt),
        "writer": capture.PcapWriter(sink, capture.LINKTYPE_ERF), "sink": sink,
        "build_ud": ib.build_ud, "parse_ud": ib.parse_ud,
    }


# (name, statement, what it means)
CASES = [
    ("build_ud 1504B payload", "build_ud(**dest, payload=payload)",
     "whole packet from field values: range checks, header packing, join"),
    ("UdTemplate.packet 1504B", "tpl.packet(payload)",
     "prebuilt header (the neighbour's AH): splice PktLen, join"),
    ("UdTemplate.packet 1501B (pad 3)", "tpl.packet(payload_odd)",
     "same with 3 pad bytes to add"),
    ("UdTemplate.packet +GRH 1504B", "tpl_grh.packet(payload)",
     "multicast send: PktLen and GRH PayLen spliced"),
    ("parse_ud 1532B", "parse_ud(pkt)",
     "integrity checks, four header records, payload copy"),
    ("check_ud 1532B", "ib.check_ud(pkt)", "integrity checks only, no objects"),
    ("per-hop peeks", ("o = ib.bth_offset(pkt); ib.lrh_dlid(pkt); ib.bth_pkey(pkt, o); "
                       "ib.bth_dest_qp(pkt, o); ib.deth_qkey(pkt, o)"),
     "DLID, P_Key, DestQP, Q_Key read in place: a switch hop plus a QP check"),
    ("icrc 1532B", "crc.icrc(pkt)", "masked headers + zlib.crc32 over the rest"),
    ("append_crcs 1532B", "crc.append_crcs(pkt)", "ICRC + table-driven VCRC (pure Python)"),
    ("check_crcs 1538B", "crc.check_crcs(pkt_crcs)", "VCRC then ICRC"),
    ("ERF record write", "writer.write_ib(1.5, pkt_crcs); sink.seek(0)",
     "pcap + ERF headers for one packet (CRCs already appended)"),
]


def run() -> list[Result]:
    """Measure the floor, then every case against it."""
    env = _env()
    floor = ns_per_call("hdr + ip", env)
    results = [Result(FLOOR, floor, "ns/pkt", FLOOR, floor,
                       "the floor: one allocation and copy of a 1532-byte packet")]
    for name, stmt, note in CASES:
        results.append(Result(name, ns_per_call(stmt, env), "ns/pkt", FLOOR, floor, note))
    return results
