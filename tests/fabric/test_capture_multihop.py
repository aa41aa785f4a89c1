"""The fabric tap: a multi-hop exchange recorded at every egress, checked by tshark and by
recomputing the CRCs."""

from __future__ import annotations

import io
from pathlib import Path

from ipoib.fabric import Fabric
from ipoib.fabric.topogen import line
from ipoib.wire.capture import LINKTYPE_ERF, PcapReader, PcapWriter, erf_unwrap
from ipoib.wire.crc import check_crcs
from ipoib.wire.ib import lrh_dlid, lrh_slid
from ipoib.wire.mad import Method, build_dr_smp
from ipoib.wire.smp import SmpAttr
from tests.peers.tshark import clean, require_tshark, tshark_fields

from .tinysm import TinySm, run_until_idle
from .util import line3, ud


def test_multihop_capture_decodes_in_tshark(tmp_path: Path) -> None:
    require_tshark()
    fabric, sm = line3()
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs()
    path = tmp_path / "multihop.pcap"
    with path.open("wb") as fh:
        fabric.capture(PcapWriter(fh, LINKTYPE_ERF))
        fabric.process(12.5)
        a.send(b, b"0123456789abcdefXYZ")  # pads to 20 bytes
        fabric.stop_capture()
        a.send(b, b"not recorded")
    rows = tshark_fields(path, ["infiniband.lrh.dlid", "infiniband.lrh.slid",
                                "infiniband.bth.destqp", "infiniband.deth.srcqp",
                                "infiniband.bth.padcnt", "frame.time_epoch"])
    assert len(rows) == 4  # hca-1, sw-1, sw-2, sw-3 egress
    for row in rows:
        assert clean(row) == []
        assert "infiniband" in row["frame.protocols"]
        assert int(row["infiniband.lrh.dlid"]) == sm.lid_of("hca-3")
        assert int(row["infiniband.lrh.slid"]) == sm.lid_of("hca-1")
        assert int(row["infiniband.bth.destqp"], 16) == b.qp.qp_num
        assert int(row["infiniband.deth.srcqp"], 16) == a.qp.qp_num
        assert row["infiniband.bth.padcnt"] == "1"
        assert abs(float(row["frame.time_epoch"]) - 12.5) < 1e-6


def test_dr_smp_hops_recorded_with_valid_crcs() -> None:
    fabric = Fabric(line(2, 1))
    sm = TinySm(fabric, "hca-1")
    buf = io.BytesIO()
    fabric.capture(PcapWriter(buf, LINKTYPE_ERF), ports=[("sw-1", 3), ("sw-2", 2)])
    sm.rpc(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, 1, 3, 1)))
    run_until_idle(fabric)
    buf.seek(0)
    pkts = [erf_unwrap(r.data).packet for r in PcapReader(buf)]
    assert len(pkts) == 2  # the request out of sw-1 port 3, the answer out of sw-2 port 2
    for p in pkts:
        check_crcs(p)
        assert (lrh_dlid(p), lrh_slid(p)) == (0xFFFF, 0xFFFF)
        assert p[0] >> 4 == 15  # VL15
