"""SMP decoders against real OpenSM 3.3.23 / ibsim 0.10 bytes (shared/vectors/opensm).

Every directed-route SMP OpenSM sent during a bring-up sweep, and every reply ibsim's SMA gave,
must decode with the record class its AttributeID names and re-encode to the same 256 bytes.
The only bytes not covered by a field are the unused InitialPath/ReturnPath entries past
HopCount, where OpenSM leaves stack contents that ibsim echoes; :class:`DrSmp` keeps both
paths raw, so those bytes survive a round trip instead of being silently zeroed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from ipoib.wire.enums import NodeType, PhysState, PortState
from ipoib.wire.mad import (
    DR_INITIAL_PATH_OFFSET,
    DrSmp,
    Gmp,
    MadHeader,
    Method,
    MgmtClass,
    SaMad,
    Smp,
    build_dr_smp,
    dr_hop_count,
    dr_initial_path,
    dr_return_path,
    dr_step,
    is_response,
    mad_attr_id,
    mad_attr_mod,
    mad_class,
    mad_method,
    mad_status,
    mad_tid,
    make_response,
    parse_mad,
    with_header,
)
from ipoib.wire.smp import (
    ATTRIBUTE_RECORDS,
    LftBlock,
    NodeDescription,
    NodeInfo,
    PKeyTable,
    PortInfo,
    SmpAttr,
    SwitchInfo,
    decode_attribute,
    encode_attribute,
    parse_pkey_table_am,
    port_info_port,
)
from tests.vectors import SimRecord, read_hex
from tests.wire.client_exchange import Exchange, read_exchanges

TRACE = "opensm_full_bringup_trace.hex"
DR_SET = "opensm_DR_set_vectors.hex"


@pytest.fixture(scope="module")
def trace(vectors_dir: Path) -> list[SimRecord]:
    return read_hex(vectors_dir / TRACE)


@pytest.fixture(scope="module")
def dr_set(vectors_dir: Path) -> list[SimRecord]:
    return read_hex(vectors_dir / DR_SET)


def smps(records: list[SimRecord], sent: bool | None = None) -> list[DrSmp]:
    return [DrSmp.decode(r.mad) for r in records if sent is None or r.sent == sent]


def pairs(records: list[SimRecord]) -> list[tuple[DrSmp, DrSmp]]:
    """Request/reply pairs matched by TID (OpenSM keeps several SMPs outstanding)."""
    replies = {d.header.tid: d for d in smps(records, sent=False)}
    return [(q, replies[q.header.tid]) for q in smps(records, sent=True)
            if q.header.tid in replies]


# --- the whole trace -----------------------------------------------------------------------


def test_trace_has_the_documented_requests(trace: list[SimRecord]) -> None:
    assert len(trace) == 168
    assert sum(r.sent for r in trace) == 84
    assert all(r.meta["length"] == 256 for r in trace)
    names = {Method.GET: "Get", Method.SET: "Set"}
    counts = Counter(
        (names[Method(d.header.method)], SmpAttr(d.header.attr_id).name)
        for d in smps(trace, sent=True)
    )
    assert counts == {
        ("Set", "PORT_INFO"): 33, ("Get", "P_KEY_TABLE"): 17, ("Get", "PORT_INFO"): 14,
        ("Get", "NODE_INFO"): 7, ("Get", "NODE_DESCRIPTION"): 6, ("Set", "SWITCH_INFO"): 3,
        ("Get", "SWITCH_INFO"): 2, ("Set", "LINEAR_FORWARDING_TABLE"): 2,
    }


@pytest.mark.parametrize("name", [TRACE, DR_SET])
def test_every_mad_decodes_and_reencodes_exactly(vectors_dir: Path, name: str) -> None:
    for rec in read_hex(vectors_dir / name):
        mad = rec.mad
        smp = parse_mad(mad)
        assert isinstance(smp, DrSmp)
        h = smp.header
        assert (h.base_version, h.mgmt_class, h.class_version) == (1, 0x81, 1)
        assert h.direction == (0 if rec.sent else 1) == is_response(h.method)
        assert h.method in ((Method.GET, Method.SET) if rec.sent else (Method.GET_RESP,))
        assert h.status == 0 and h.hop_pointer == 0 and 0 <= h.hop_count <= 2
        assert (h.dr_slid, h.dr_dlid, h.mkey) == (0xFFFF, 0xFFFF, 0)
        # the peeks agree with the record
        assert (mad_class(mad), mad_method(mad), mad_status(mad), mad_tid(mad),
                mad_attr_id(mad), mad_attr_mod(mad), dr_hop_count(mad)) == (
            h.mgmt_class, h.method, h.status, h.tid, h.attr_id, h.attr_mod, h.hop_count)
        # reserved header bytes really are zero: nothing hides in them
        assert mad[18:20] == b"\0\0" and not any(mad[36:64])
        attr = decode_attribute(h.attr_id, smp.data)
        assert type(attr) is ATTRIBUTE_RECORDS[h.attr_id]
        assert encode_attribute(attr) == smp.data
        rebuilt = DrSmp(h, attr.encode(), smp.initial_path, smp.return_path).encode()
        assert rebuilt == mad
        assert build_dr_smp(
            h.method, h.attr_id, h.attr_mod, h.tid, attr.encode(),
            initial_path=smp.initial_path, hop_count=h.hop_count, direction=h.direction,
            return_path=smp.return_path,
        ) == mad


def test_unused_path_bytes_are_opensm_garbage_and_survive(trace: list[SimRecord]) -> None:
    # The first NodeInfo Get (TID 0x1234, hop count 0) carries stack bytes in InitialPath
    # entries that no hop uses; ibsim echoes them in both paths of its reply.
    req, rep = next((q, r) for q, r in pairs(trace) if q.header.tid == 0x1234)
    assert req.header.hop_count == 0 and req.hops == b""
    tail = req.initial_path[1:]
    assert any(tail)
    assert any(0x97 - DR_INITIAL_PATH_OFFSET <= i + 1 < 0xC0 - DR_INITIAL_PATH_OFFSET
               for i, b in enumerate(tail) if b)
    assert dr_initial_path(req.encode()) == b"\0"
    assert rep.initial_path == req.initial_path and rep.return_path[1:] == tail


def test_replies_answer_their_requests_as_make_response_would(trace: list[SimRecord]) -> None:
    matched = pairs(trace)
    assert len(matched) == 60
    for req, rep in matched:
        assert (rep.header.attr_id, rep.header.attr_mod, rep.header.hop_count) == (
            req.header.attr_id, req.header.attr_mod, req.header.hop_count)
        assert rep.header.method == Method.GET_RESP  # a Set is answered with GetResp
        assert rep.initial_path == req.initial_path
        # ibsim records the ingress port of every hop, and leaves HopPointer at 0
        assert all(rep.return_hops) and len(rep.return_hops) == req.header.hop_count
        # OpenSM sends ReturnPath all zero; ibsim starts its ReturnPath as a copy of the
        # InitialPath (which is why OpenSM's garbage shows up there) and then writes the
        # ingress port of each hop over entries 1..HopCount.
        assert not any(req.return_path)
        hc = req.header.hop_count
        assert rep.return_path[hc + 1:] == req.initial_path[hc + 1:]
        ours = make_response(req.encode(), rep.data, status=rep.header.status)
        ours = replace(DrSmp.decode(ours), return_path=req.initial_path).encode()
        for hop, port in enumerate(rep.return_hops, start=1):
            ours = dr_step(ours, 0, hop, port)
        assert ours == rep.encode()


def test_return_path_mirrors_the_links(trace: list[SimRecord]) -> None:
    # net.2sw2path4hca joins Switch1 p3/p5 to Switch2 p3/p5, so the ingress port at Switch2
    # equals the egress port at Switch1; the last hop enters a CA on port 1.
    seen = {}
    for rep in smps(trace, sent=False):
        if rep.header.attr_id == SmpAttr.NODE_INFO:
            ni = NodeInfo.decode(rep.data)
            seen[rep.hops] = (ni.node_guid, ni.port_guid, ni.local_port_num, rep.return_hops)
    assert seen[b""] == (0x200000, 0x200000, 0, b"")
    assert seen[b"\x03"] == (0x200001, 0x200001, 3, b"\x03")
    assert seen[b"\x05"] == (0x200001, 0x200001, 5, b"\x05")
    assert seen[b"\x02"] == (0x100006, 0x100007, 1, b"\x01")
    assert seen[b"\x03\x01"] == (0x100003, 0x100004, 1, b"\x03\x01")


def test_node_descriptions(trace: list[SimRecord]) -> None:
    names = {NodeDescription.decode(d.data).node_string for d in smps(trace, sent=False)
             if d.header.attr_id == SmpAttr.NODE_DESCRIPTION}
    assert names == {"Switch1", "Switch2", "Hca1", "Hca3", "Hca4"}


def test_lids_assigned_in_portinfo_sets(trace: list[SimRecord]) -> None:
    # LID Sets go to switch port 0 (Switch1) and CA port 1, in the README's order.
    lids = {}
    states: dict[bytes, list[int]] = {}
    for d in smps(trace, sent=True):
        if d.header.attr_id == SmpAttr.PORT_INFO and d.header.method == Method.SET:
            pi = PortInfo.decode(d.data)
            if pi.lid:
                lids[d.hops] = (pi.lid, pi.master_sm_lid, port_info_port(d.header.attr_mod))
                states.setdefault(d.hops, []).append(pi.port_state)
    assert lids == {b"": (1, 1, 0), b"\x01": (2, 1, 1), b"\x03\x01": (4, 1, 1),
                    b"\x02": (5, 1, 1), b"\x03\x02": (6, 1, 1)}
    # CA ports go LID first (state unchanged), then Armed, then Active
    assert states[b"\x02"] == [PortState.NOP, PortState.ARMED, PortState.ACTIVE]


def test_portinfo_attribute_modifier_bit31(trace: list[SimRecord]) -> None:
    ams = {d.header.attr_mod for d in smps(trace, sent=True)
           if d.header.attr_id == SmpAttr.PORT_INFO and d.header.method == Method.SET}
    flagged = {am for am in ams if am >> 31}
    assert flagged == {0x80000001, 0x80000002, 0x80000003, 0x80000005}
    assert {port_info_port(am) for am in flagged} == {1, 2, 3, 5}
    for req, rep in pairs(trace):
        assert rep.header.attr_mod == req.header.attr_mod  # the reply keeps bit 31


def test_pkey_table_requests(trace: list[SimRecord]) -> None:
    blocks = set()
    for req, rep in pairs(trace):
        if req.header.attr_id == SmpAttr.P_KEY_TABLE:
            blocks.add(parse_pkey_table_am(req.header.attr_mod))
            block, _ = parse_pkey_table_am(req.header.attr_mod)
            table = PKeyTable.decode(rep.data)
            # only the default P_Key, entry 0 of block 0, is set in ibsim's tables
            assert table.entries == ((0xFFFF,) if block == 0 else (0,)) + (0,) * 31
    assert {(0, 0), (0, 5), (1, 0), (1, 1), (1, 3)} <= blocks


# --- the Sets to Switch1 (opensm_DR_set_vectors.hex) ---------------------------------------


def test_dr_set_file_is_the_documented_subset(dr_set: list[SimRecord]) -> None:
    seen = [(r.sent, SmpAttr(mad_attr_id(r.mad)).name, mad_attr_mod(r.mad)) for r in dr_set]
    assert seen == [
        (True, "SWITCH_INFO", 0), (False, "SWITCH_INFO", 0),
        (True, "PORT_INFO", 1),
        (True, "PORT_INFO", 2), (False, "PORT_INFO", 2),
        (True, "LINEAR_FORWARDING_TABLE", 0), (False, "LINEAR_FORWARDING_TABLE", 0),
    ]
    assert all(dr_hop_count(r.mad) == 0 for r in dr_set)


def test_switchinfo_set_clears_port_state_change(dr_set: list[SimRecord]) -> None:
    req, rep = (SwitchInfo.decode(DrSmp.decode(r.mad).data) for r in dr_set[:2])
    assert req.port_state_change == 1 and rep.port_state_change == 0  # write 1 to clear
    assert req.replace(port_state_change=0) == rep
    assert (rep.linear_fdb_cap, rep.multicast_fdb_cap, rep.partition_enforcement_cap) == (
        30720, 1024, 64)
    assert (rep.filter_raw_inbound_cap, rep.filter_raw_outbound_cap, rep.enhanced_port0) == (
        1, 1, 0)
    assert rep.multicast_fdb_top == 0


def test_portinfo_worked_decode(dr_set: list[SimRecord]) -> None:
    data = DrSmp.decode(dr_set[3].mad).data
    assert data[28:44] == bytes.fromhex("00 02 1f 02 70 00 00 11 40 40 00 08 08 04 e0 4c")
    pi = PortInfo.decode(data)
    assert pi.local_port_num == 0
    assert (pi.link_width_enabled, pi.link_width_supported, pi.link_width_active) == (2, 0x1F, 2)
    assert (pi.link_speed_supported, pi.port_state, pi.port_physical_state) == (7, 0, 0)
    assert (pi.link_speed_active, pi.link_speed_enabled) == (1, 1)
    assert (pi.neighbor_mtu, pi.vl_cap) == (4, 4)
    assert (pi.vl_arbitration_high_cap, pi.vl_arbitration_low_cap, pi.mtu_cap) == (8, 8, 4)
    assert (pi.vl_stall_count, pi.hoq_life, pi.operational_vls) == (7, 0, 4)
    assert (pi.partition_enforcement_inbound, pi.partition_enforcement_outbound) == (1, 1)
    assert (pi.filter_raw_inbound, pi.filter_raw_outbound) == (0, 0)
    # the reply (same TID) reports the port's real state
    rep = PortInfo.decode(DrSmp.decode(dr_set[4].mad).data)
    assert rep.link_width_active == 2 and rep.link_speed_supported == 7
    assert (rep.port_state, rep.port_physical_state, rep.link_down_default_state) == (
        PortState.INIT, PhysState.LINK_UP, 2)
    # ibsim keeps OperationalVLs but not the partition enforcement bits
    assert (rep.operational_vls, rep.partition_enforcement_inbound,
            rep.partition_enforcement_outbound) == (4, 0, 0)
    assert rep.replace(port_state=0, port_physical_state=0, link_down_default_state=0,
                       partition_enforcement_inbound=1, partition_enforcement_outbound=1) == pi


def test_lft_block0_of_switch1(dr_set: list[SimRecord]) -> None:
    req, rep = (DrSmp.decode(r.mad) for r in dr_set[5:7])
    block = LftBlock.decode(req.data)
    assert block.ports[:8] == (0xFF, 0, 1, 3, 3, 2, 5, 0xFF)
    assert block.ports[7:] == (0xFF,) * 57
    assert block == LftBlock.from_ports([0xFF, 0, 1, 3, 3, 2, 5])
    assert LftBlock.decode(rep.data) == block


# --- the raw client's exchanges (client_exchange_hca*.txt) ---------------------------------


CLIENTS = {
    # name: (node GUID, port GUID, GUID of the switch it hangs off, ingress port there)
    "hca3": (0x100006, 0x100007, 0x200000, 2),
    "hca4": (0x100009, 0x10000A, 0x200001, 2),
}


@pytest.fixture(scope="module", params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest, vectors_dir: Path) -> tuple[str, list[Exchange]]:
    _, exchanges = read_exchanges(vectors_dir / f"client_exchange_{request.param}.txt")
    assert len(exchanges) == 8
    return request.param, exchanges


def test_dr_nodeinfo_of_the_ca_itself(client: tuple[str, list[Exchange]]) -> None:
    name, ex = client
    node_guid, port_guid, _, _ = CLIENTS[name]
    rep = DrSmp.decode(ex[0].reply)
    assert rep.header.direction == 1 and rep.header.method == Method.GET_RESP
    assert rep.header.hop_count == 0 and rep.header.hop_pointer == 0
    ni = NodeInfo.decode(rep.data)
    assert (ni.node_type, ni.num_ports, ni.node_guid, ni.system_image_guid) == (
        NodeType.CA, 2, node_guid, node_guid)
    assert (ni.port_guid, ni.partition_cap, ni.revision, ni.local_port_num, ni.vendor_id) == (
        port_guid, 64, 0xA1, 1, 0)
    # ibsim puts the sender's own port in ReturnPath[0]; our response builder plus that one
    # entry reproduces its reply from the request (the log shows 128 request bytes; the rest
    # of that request was zero, as the reply's InitialPath shows)
    assert rep.return_path[0] == 1 and rep.initial_path == bytes(64)
    assert rep.header.tid == mad_tid(ex[0].request) | 1 << 48  # ibsim's slot tag
    request = with_header(ex[0].request.ljust(256, b"\0"), tid=rep.header.tid)
    assert dr_step(make_response(request, rep.data), 0, 0, 1) == ex[0].reply


def test_dr_nodeinfo_one_hop_reaches_the_switch(client: tuple[str, list[Exchange]]) -> None:
    name, ex = client
    _, _, switch_guid, ingress = CLIENTS[name]
    rep = DrSmp.decode(ex[1].reply)
    assert rep.header.hop_count == 1 and rep.header.hop_pointer == 0
    assert rep.hops == b"\x01"
    ni = NodeInfo.decode(rep.data)
    assert (ni.node_type, ni.num_ports, ni.node_guid, ni.port_guid, ni.partition_cap) == (
        NodeType.SWITCH, 8, switch_guid, switch_guid, 8)
    # the switch answers with the port the SMP came in on, and ibsim's ReturnPath says so
    assert ni.local_port_num == ingress
    assert dr_return_path(ex[1].reply) == bytes((1, ingress))


def test_lid_routed_nodeinfo_and_bounce(client: tuple[str, list[Exchange]]) -> None:
    _, ex = client
    smp = parse_mad(ex[2].reply)
    assert isinstance(smp, Smp)
    assert smp.header.mgmt_class == MgmtClass.SUBN_LID_ROUTED
    assert smp.header.method == Method.GET_RESP and smp.header.status == 0
    ni = NodeInfo.decode(smp.data)
    assert (ni.node_guid, ni.local_port_num) == (0x200000, 0)  # port 0 of Switch1, LID 1
    assert smp.encode() == ex[2].reply
    # ibsim tagged the TID with the client's slot (1) in bits 63..48
    req_tid = mad_tid(ex[2].request)
    assert smp.header.tid == req_tid | 1 << 48
    request = with_header(ex[2].request.ljust(256, b"\0"), tid=smp.header.tid)
    assert make_response(request, smp.data) == ex[2].reply
    # a request to a LID nobody has comes back unchanged (method still Get), status 110
    bounce = ex[7]
    assert bounce.reply_meta["status"] == 110
    assert mad_method(bounce.reply) == Method.GET and mad_tid(bounce.reply) >> 48 == 1
    assert MadHeader.decode(bounce.reply).replace(tid=mad_tid(bounce.request)) == (
        MadHeader.decode(bounce.request))


def test_gsi_replies_decode(client: tuple[str, list[Exchange]]) -> None:
    _, ex = client
    for e, attr, stride in ((ex[3], 0x0035, 8), (ex[4], 0x0038, 7), (ex[5], 0x0038, 7)):
        sa = parse_mad(e.reply)
        assert isinstance(sa, SaMad)
        assert sa.header.method == Method.GET_RESP and sa.header.attr_id == attr
        assert sa.sa.attribute_offset == stride and sa.rmpp.encode() == bytes(12)
        assert sa.encode()[: e.reply_meta["length"]] == e.reply
    pma = parse_mad(ex[6].reply)
    assert isinstance(pma, Gmp) and pma.header.mgmt_class == MgmtClass.PERF_MGMT
    assert pma.encode() == ex[6].reply
