"""The ibsim protocol's byte layouts (wire/ibsim.py) and ibsim's routing rules (ibsim/protocol.py).

Layouts are checked against ibsim-protocol.md §4 and §6 and against every ``struct
sim_request`` header in the real traces; the routing rules against what the reference says
ibsim does on a fabric: LID routes need Active ports, directed routes only LinkUp, a 16-hop
limit, the ReturnPath composition, and a counted hop per link.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.fabric import netfile
from ipoib.fabric.fabric import Fabric
from ipoib.fabric.node import ACTIVE, INIT
from ipoib.fabric.topogen import line
from ipoib.ibsim.protocol import (
    HOP_WORDS,
    MAX_LID_HOPS,
    dr_in,
    dr_out,
    lid_route,
    next_port,
    tag_tid,
)
from ipoib.wire.errors import DecodeError
from ipoib.wire.ibsim import (
    SIM_CTL_SIZE,
    SIM_MAGIC,
    SIM_REQUEST_HEADER_SIZE,
    CtlType,
    SimClientInfo,
    SimCtl,
    SimGid,
    SimPort,
    SimRequestHeader,
    SimVendor,
    abstract_name,
    ctl_payload,
    pack_request,
    unpack_request,
)

from ..vectors import read_hex

EXAMPLES = Path("/usr/share/doc/ibsim-utils/net-examples")


# --- layouts ---------------------------------------------------------------------------------


def test_control_message_is_80_host_order_bytes() -> None:
    ctl = SimCtl(clientid=3, type=CtlType.GET_PORTINFO, len=1, data=bytes([2]).ljust(64, b"\0"))
    b = ctl.encode()
    assert len(b) == SIM_CTL_SIZE == 80
    assert b[:4] == bytes.fromhex("efbeadde")  # SIM_MAGIC, little-endian
    assert b[4:8] == (3).to_bytes(4, "little")
    assert b[8:12] == (8).to_bytes(4, "little")
    assert b[12:16] == (1).to_bytes(4, "little")
    assert b[16] == 2
    assert SimCtl.decode(b) == ctl
    assert SimCtl().magic == SIM_MAGIC == 0xDEADBEEF


def test_control_types_are_ibsims_enum() -> None:
    assert [t.name for t in sorted(CtlType)] == [
        "ERROR", "CONNECT", "DISCONNECT", "GET_PORT", "GET_VENDOR", "GET_GID", "GET_GUID",
        "GET_NODEINFO", "GET_PORTINFO", "SET_ISSM", "GET_PKEYS"]
    assert list(map(int, sorted(CtlType))) == list(range(11))


def test_client_info_layout() -> None:
    b = SimClientInfo(id=1248665, qp=0, issm=1, nodeid="Hca3").encode()
    assert len(b) == 44
    assert b[0:4] == (1248665).to_bytes(4, "little")
    assert b[8:12] == b"\x01\0\0\0"
    assert b[12:16] == b"Hca3" and b[16:44] == bytes(28)
    assert SimClientInfo.decode(b).nodeid == "Hca3"


def test_port_vendor_gid_layouts() -> None:
    assert SimPort(lid=0x1234, state=4).encode() == bytes.fromhex("34120400")
    v = SimVendor(vendor_id=0x2C9, vendor_part_id=0x1003, hw_ver=0xA1, fw_ver=1).encode()
    assert len(v) == 24
    assert v[:12] == bytes.fromhex("c9020000 03100000 a1000000")
    assert v[12:16] == bytes(4) and v[16:24] == (1).to_bytes(8, "little")
    gid = SimGid(gid_prefix=0xFE80_0000_0000_0000, node_guid=0x100006).encode()
    assert gid[:8] == bytes.fromhex("fe80000000000000")  # network order ...
    assert gid[8:] == (0x100006).to_bytes(8, "little")  # ... and the GUID in host order


def test_request_header_example_of_the_reference() -> None:
    """saquery's PathRecord request to the SM at LID 1 (ibsim-protocol.md §6)."""
    h = SimRequestHeader(dlid=1, slid=0, dqp=1, sqp=1, status=0, length=256)
    assert h.encode() == bytes.fromhex(
        "00010000 00000000 00000001 00000001 00000000 00000000 0000000000000100")
    assert SimRequestHeader(dlid=999).encode()[:4] == bytes.fromhex("03e70000")
    assert SimRequestHeader(dlid=0xFFFF).encode()[:4] == bytes.fromhex("ffff0000")
    assert SimRequestHeader(status=110).encode()[16:20] == bytes.fromhex("0000006e")


@pytest.mark.parametrize("name", [
    "opensm_full_bringup_trace.hex", "opensm_DR_set_vectors.hex", "saquery_pr.hex",
    "saquery_mcmr.hex", "saquery_mcm_members.hex", "saquery_nr.hex", "saquery_nr_lid4.hex",
    "saquery_cpi.hex"])
def test_every_traced_header_decodes_as_traced(vectors_dir: Path, name: str) -> None:
    records = read_hex(vectors_dir / name)
    assert records
    for rec in records:
        h = SimRequestHeader.decode(rec.header)
        got = {k: getattr(h, k) for k in ("dlid", "slid", "dqp", "sqp", "status", "length")}
        assert got == rec.meta
        assert h.encode() == rec.header  # the garbage padding included
        assert unpack_request(rec.header) == (h.dlid, h.slid, h.dqp, h.sqp, h.status, h.pad,
                                              h.length)


def test_pack_request_is_288_bytes_and_pads_the_mad() -> None:
    b = pack_request(5, 1, 1, 1, 0, 120, b"\x01\x03" * 10, pad=b"junk")
    assert len(b) == 288
    assert b[20:24] == b"junk"
    assert b[32:52] == b"\x01\x03" * 10 and b[52:] == bytes(236)
    assert len(pack_request(1, 2, 0, 0, 0, 256, bytes(300))) == 288


@given(st.binary(max_size=SIM_REQUEST_HEADER_SIZE - 1))
def test_short_headers_raise_decode_error(buf: bytes) -> None:
    with pytest.raises(DecodeError):
        unpack_request(buf)
    with pytest.raises(DecodeError):
        SimRequestHeader.decode(buf)


@given(st.binary(min_size=SIM_REQUEST_HEADER_SIZE, max_size=SIM_REQUEST_HEADER_SIZE))
def test_fast_and_declared_header_agree(buf: bytes) -> None:
    h = SimRequestHeader.decode(buf)
    dlid, slid, dqp, sqp, status, pad, length = unpack_request(buf)
    assert (dlid, slid, dqp, sqp, status, pad, length) == (
        h.dlid, h.slid, h.dqp, h.sqp, h.status, h.pad, h.length)


@given(st.binary(max_size=200))
def test_control_decoders_reject_any_wrong_size(buf: bytes) -> None:
    if len(buf) >= SIM_CTL_SIZE:
        SimCtl.decode(buf)
    else:
        with pytest.raises(DecodeError):
            SimCtl.decode(buf)


def test_abstract_names_carry_the_trailing_nul() -> None:
    """connect(fd, {AF_UNIX, @"rsim:ctl\\0"}, 12): 2 bytes of family + 10 of path."""
    name = abstract_name("rsim", "ctl")
    assert name == b"\0rsim:ctl\0" and 2 + len(name) == 12
    assert abstract_name("sim", "out12") == b"\0sim:out12\0"
    assert len(ctl_payload(SimPort(lid=1, state=4))) == 64


def test_tid_tag_keeps_bits_47_to_0() -> None:
    mad = bytes(8) + bytes.fromhex("0000000076c397e1") + bytes(240)
    assert tag_tid(mad, 1)[8:16] == bytes.fromhex("0001000076c397e1")
    mad = bytes(8) + bytes.fromhex("ffff00aa12345678") + bytes(240)
    assert tag_tid(mad, 0x10)[8:16] == bytes.fromhex("001000aa12345678")


# --- routing rules ---------------------------------------------------------------------------


@pytest.fixture
def fab() -> Fabric:
    f = Fabric(netfile.load(EXAMPLES / "net.2sw2path4hca"))
    lids = {"Switch1": 1, "Hca1": 2, "Switch2": 3, "Hca2": 4, "Hca3": 5, "Hca4": 6}
    for name, lid in lids.items():
        node = f.nodes[name]
        p = node.ports[0] if node.is_switch else node.ports[1]
        p.lid = lid
        node.lid_changed(p, 0)
    tables = {"Switch1": [0xFF, 0, 1, 3, 3, 2, 5], "Switch2": [0xFF, 3, 5, 0, 1, 5, 2]}
    for sw in f.switches:
        sw.lft[:7] = bytes(tables[sw.name])
        sw.top = 6
    for node in f.nodes.values():
        for p in node.ports:
            if p.peer is not None and p.up:
                p.state = ACTIVE
    return f


def test_lid_route_follows_the_lfts_and_counts_hops(fab: Fabric) -> None:
    hca3 = fab.port("Hca3", 1)
    before = fab.port("Switch1", 3).xmit_pkts
    target = lid_route(hca3, 4)
    assert target is fab.port("Hca2", 1)
    s1p3 = fab.port("Switch1", 3)
    assert s1p3.xmit_pkts == before + 1 and s1p3.xmit_words >= HOP_WORDS
    assert lid_route(hca3, 1) is fab.node("Switch1").ports[0]  # a switch answers on port 0
    assert lid_route(hca3, 5) is hca3
    assert lid_route(hca3, 3, count=False) is fab.node("Switch2").ports[0]
    for lid in (0, 7, 999, 0xC000):
        assert lid_route(hca3, lid) is None


def test_lid_route_needs_active_ports(fab: Fabric) -> None:
    fab.port("Hca2", 1).state = INIT
    assert lid_route(fab.port("Hca3", 1), 4) is None
    fab.port("Hca2", 1).state = ACTIVE
    fab.port("Switch1", 3).state = INIT
    assert lid_route(fab.port("Hca3", 1), 4) is None
    fab.switches[0].top = 3
    assert lid_route(fab.port("Hca3", 1), 6) is None  # LID above LinearFDBTop


def test_lid_route_gives_up_after_16_switch_lookups() -> None:
    f = Fabric(line(MAX_LID_HOPS + 2, 1))
    sws = f.switches
    for node in f.nodes.values():
        for p in node.ports:
            if p.peer is not None and p.up:
                p.state = ACTIVE
    for i, sw in enumerate(sws):
        sw.ports[0].lid = 100 + i
        sw.lid_changed(sw.ports[0], 0)
        sw.top = 200
        for j in range(len(sws)):  # port 3 leads down the line, port 2 back up
            sw.lft[100 + j] = 0 if j == i else 3 if j > i else 2
    start = sws[0].ports[0]
    assert lid_route(start, 100 + MAX_LID_HOPS - 1) is sws[MAX_LID_HOPS - 1].ports[0]
    assert lid_route(start, 100 + MAX_LID_HOPS) is None  # a 17th switch would look it up


def test_directed_route_needs_only_linkup_and_builds_the_return_path(fab: Fabric) -> None:
    for node in fab.nodes.values():
        for p in node.ports[1:]:
            p.state = INIT  # no SM yet: DR still works
    mad = bytearray(256)
    mad[128:131] = bytes([0, 3, 2])  # Switch1 -> port 3 -> Switch2 -> port 2 -> Hca4
    mad[150] = 0xAB  # garbage past HopCount is echoed
    walked = dr_out(fab.node("Switch1").ports[0], 2, bytes(mad))
    assert walked is not None
    target, path = walked
    assert target is fab.port("Hca4", 1)
    assert list(path[:3]) == [0, 3, 1]  # own port, then the port entered at each hop
    assert path[22] == 0xAB and len(path) == 64
    back = dr_in(target, 2, path)
    assert back is not None and back.node is fab.node("Switch1")  # back where it started


def test_directed_route_from_a_ca_and_dead_links(fab: Fabric) -> None:
    mad = bytearray(256)
    mad[128:130] = bytes([0, 0])  # on a CA, port 0 of the path means port 1
    walked = dr_out(fab.port("Hca3", 1), 1, bytes(mad))
    assert walked is not None and walked[0] is fab.port("Switch1", 2)
    assert list(walked[1][:2]) == [1, 2]
    mad[128:131] = bytes([0, 1, 1])  # through a CA: only switches pass DR SMPs on
    assert dr_out(fab.node("Switch1").ports[0], 2, bytes(mad)) is None
    fab.link_down("Switch1", 3)
    mad[128:130] = bytes([0, 3])
    assert dr_out(fab.node("Switch1").ports[0], 1, bytes(mad)) is None
    assert next_port(fab.node("Switch1"), 9) is None  # no such port
    assert dr_out(fab.node("Switch1").ports[0], 64, bytes(mad)) is None  # past 63 hops
