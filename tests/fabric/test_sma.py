"""The SMA: every attribute of ibsim-protocol.md §10, status codes, and replies compared with
real ibsim's (shared/vectors/opensm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipoib.fabric import Fabric, Link, NodeSpec, Topology, netfile
from ipoib.fabric.node import ACTIVE, ARMED, INIT
from ipoib.fabric.sma import DISCARD, process_smp
from ipoib.fabric.topogen import line
from ipoib.wire.enums import NodeType
from ipoib.wire.mad import (
    Method,
    MgmtClass,
    build_dr_smp,
    build_smp,
    dr_initial_path,
    mad_attr_id,
    mad_method,
    mad_status,
    mad_tid,
    smp_data,
)
from ipoib.wire.smp import (
    GuidInfo,
    LftBlock,
    MftBlock,
    NodeDescription,
    NodeInfo,
    PKeyTable,
    PortInfo,
    SlToVlTable,
    SmInfo,
    SmpAttr,
    SwitchInfo,
    VlArbTable,
    mft_am,
    pkey_table_am,
    port_info_am,
    sl_to_vl_am,
    vl_arb_am,
)
from tests.vectors import read_hex

from .tinysm import TinySm, run_until_idle

NET_2SW = Path("/usr/share/doc/ibsim-utils/net-examples/net.2sw2path4hca")
BAD_PARAM, UNSUP_METHOD, UNSUP_ATTR = 0x1C, 0x08, 0x0C


def ask(fabric: Fabric, name: str, in_port: int, attr: int, am: int = 0, data: bytes = b"",
        method: int = Method.GET, *, dr: bool = True) -> tuple[int, bytes]:
    """Status and data of the SMA's answer to one SMP arriving on ``in_port``."""
    if dr:
        mad = build_dr_smp(method, attr, am, 1, data)
    else:
        mad = build_smp(method, attr, am, 1, data)
    resp = process_smp(fabric.node(name), in_port, mad)
    assert resp is not None and resp != DISCARD
    assert mad_method(resp) == Method.GET_RESP
    return mad_status(resp), smp_data(resp)


def pi(fabric: Fabric, name: str, port: int, in_port: int | None = None) -> PortInfo:
    status, data = ask(fabric, name, port if in_port is None else in_port, SmpAttr.PORT_INFO,
                       port_info_am(port))
    assert status == 0
    return PortInfo.decode(data)


def set_pi(fabric: Fabric, name: str, port: int, in_port: int | None = None,
           **changes: int) -> tuple[int, PortInfo]:
    cur = pi(fabric, name, port, in_port).replace(port_state=0, port_physical_state=0,
                                                  link_width_enabled=0, link_speed_enabled=0)
    status, data = ask(fabric, name, port if in_port is None else in_port, SmpAttr.PORT_INFO,
                       port_info_am(port), cur.replace(**changes).encode(), Method.SET)
    return status, PortInfo.decode(data)


@pytest.fixture
def fabric() -> Fabric:
    return Fabric(line(2, 1))  # hca-1 - sw-1(1) ; sw-1(3) - sw-2(2) ; sw-2(1) - hca-2


def test_node_info_ca_and_switch(fabric: Fabric) -> None:
    st, data = ask(fabric, "hca-1", 1, SmpAttr.NODE_INFO)
    ni = NodeInfo.decode(data)
    hca = fabric.node("hca-1")
    assert st == 0
    assert (ni.node_type, ni.num_ports, ni.node_guid) == (1, hca.nports, hca.guid)
    assert ni.port_guid == hca.guid + 1 and ni.local_port_num == 1
    assert ni.partition_cap == 64 and ni.revision == 0xA1
    st, data = ask(fabric, "sw-1", 3, SmpAttr.NODE_INFO)
    ni = NodeInfo.decode(data)
    sw = fabric.node("sw-1")
    assert (ni.node_type, ni.port_guid, ni.local_port_num) == (2, sw.guid, 3)
    assert ni.partition_cap == 8
    assert ask(fabric, "sw-1", 3, SmpAttr.NODE_INFO, method=Method.SET)[0] == UNSUP_METHOD


def test_node_description(fabric: Fabric) -> None:
    st, data = ask(fabric, "sw-2", 2, SmpAttr.NODE_DESCRIPTION)
    assert st == 0
    assert NodeDescription.decode(data).node_string == "sw-2"
    assert ask(fabric, "sw-2", 2, SmpAttr.NODE_DESCRIPTION, method=Method.SET)[0] == UNSUP_METHOD


def test_port_info_get_defaults(fabric: Fabric) -> None:
    p = pi(fabric, "hca-1", 1)
    assert p.capability_mask == 0x0050C048
    assert (p.port_state, p.port_physical_state, p.local_port_num) == (INIT, 5, 1)
    assert (p.mtu_cap, p.vl_cap, p.neighbor_mtu) == (4, 4, 4)
    assert pi(fabric, "sw-1", 0, in_port=3).capability_mask == 0x0000C048
    assert pi(fabric, "sw-1", 0, in_port=3).local_port_num == 3  # the port it came in on
    down = pi(fabric, "sw-1", 2)
    assert (down.port_state, down.port_physical_state) == (1, 2)
    fabric.set_issm("hca-1", 1)
    assert pi(fabric, "hca-1", 1).capability_mask == 0x0050C04A
    # on a CA, port 0 means the ingress port; AM bit 31 is masked off
    st, data = ask(fabric, "hca-1", 1, SmpAttr.PORT_INFO, 0x8000_0000)
    assert st == 0 and PortInfo.decode(data).local_port_num == 1
    assert ask(fabric, "sw-1", 1, SmpAttr.PORT_INFO, 4)[0] == BAD_PARAM


def test_port_info_set_state_rules(fabric: Fabric) -> None:
    # INIT -> ACTIVE in one step is invalid; nothing changes
    st, _ = set_pi(fabric, "hca-1", 1, port_state=ACTIVE, lid=9)
    assert st == BAD_PARAM
    assert fabric.port("hca-1", 1).lid == 0
    assert set_pi(fabric, "hca-1", 1, port_state=ARMED)[0] == 0
    # ACTIVE needs the neighbour at least ARMED
    assert set_pi(fabric, "hca-1", 1, port_state=ACTIVE)[0] == BAD_PARAM
    assert set_pi(fabric, "sw-1", 1, in_port=1, port_state=ARMED)[0] == 0
    st, after = set_pi(fabric, "hca-1", 1, port_state=ACTIVE)
    assert st == 0 and after.port_state == ACTIVE
    # an unlinked port accepts only DOWN / NOP
    assert set_pi(fabric, "sw-1", 2, in_port=1, port_state=ARMED)[0] == BAD_PARAM
    # DOWN on a linked port retrains: both ends back in INIT, the neighbour switch notes it
    sw = fabric.node("sw-1")
    assert set_pi(fabric, "hca-1", 1, port_state=1)[0] == 0
    assert fabric.port("hca-1", 1).state == INIT and fabric.port("sw-1", 1).state == INIT
    assert sw.port_state_change  # type: ignore[attr-defined]
    assert ask(fabric, "hca-1", 1, SmpAttr.PORT_INFO, 2, method=Method.SET)[0] == BAD_PARAM


def test_ca_cannot_set_another_of_its_ports() -> None:
    spec = NodeSpec(NodeType.CA, "ca", 2, 0x10, 0x10, (0x11, 0x12))
    sw = NodeSpec(NodeType.SWITCH, "sw", 2, 0x20, 0x20, (0x20,))
    fabric = Fabric(Topology((sw, spec), (Link("sw", 1, "ca", 1), Link("sw", 2, "ca", 2))))
    assert pi(fabric, "ca", 2, in_port=1).local_port_num == 1
    assert set_pi(fabric, "ca", 2, in_port=1, lid=4)[0] == BAD_PARAM
    assert set_pi(fabric, "ca", 2, in_port=2, lid=4)[0] == 0
    assert fabric.port("ca", 2).lid == 4


def test_port_info_set_stores_fields(fabric: Fabric) -> None:
    st, after = set_pi(fabric, "hca-1", 1, lid=5, lmc=2, master_sm_lid=1, master_sm_sl=3,
                       neighbor_mtu=3, subnet_timeout=18, vl_high_limit=7, mkey_lease_period=9)
    assert st == 0
    assert (after.lid, after.lmc, after.master_sm_lid, after.master_sm_sl) == (5, 2, 1, 3)
    assert (after.neighbor_mtu, after.subnet_timeout, after.vl_high_limit) == (3, 18, 7)
    assert after.mkey_lease_period == 9
    port = fabric.port("hca-1", 1)
    assert port.owns_lid(7) and not port.owns_lid(9)
    assert port.active_mtu == 3
    assert set_pi(fabric, "hca-1", 1, operational_vls=5)[0] == BAD_PARAM  # > VLCap 4
    assert set_pi(fabric, "hca-1", 1, neighbor_mtu=5)[0] == BAD_PARAM  # > MTUCap 4
    assert set_pi(fabric, "hca-1", 1, lid=0xC000)[0] == BAD_PARAM
    # switch port 0 carries the switch's LID
    assert set_pi(fabric, "sw-1", 0, in_port=1, lid=2)[0] == 0
    assert fabric.node("sw-1").lid_lo == 2  # type: ignore[attr-defined]


def test_switch_info_and_port_state_change(fabric: Fabric) -> None:
    st, data = ask(fabric, "sw-1", 1, SmpAttr.SWITCH_INFO)
    si = SwitchInfo.decode(data)
    assert (si.linear_fdb_cap, si.multicast_fdb_cap, si.partition_enforcement_cap) == (
        0x7800, 1024, 64)
    assert data[16] == 0x30
    assert si.port_state_change == 1  # the links came up (ibsim reports it too)
    clear = si.replace(port_state_change=1)
    ask(fabric, "sw-1", 3, SmpAttr.SWITCH_INFO, 0, clear.encode(), Method.SET)
    assert not SwitchInfo.decode(ask(fabric, "sw-1", 3, SmpAttr.SWITCH_INFO)[1]).port_state_change
    fabric.link_down("hca-1", 1)
    assert SwitchInfo.decode(ask(fabric, "sw-1", 3, SmpAttr.SWITCH_INFO)[1]).port_state_change
    new = si.replace(linear_fdb_top=40, life_time_value=18, port_state_change=1)
    st, data = ask(fabric, "sw-1", 3, SmpAttr.SWITCH_INFO, 0, new.encode(), Method.SET)
    got = SwitchInfo.decode(data)
    assert (st, got.linear_fdb_top, got.life_time_value, got.port_state_change) == (0, 40, 18, 0)
    assert ask(fabric, "hca-1", 1, SmpAttr.SWITCH_INFO)[0] == UNSUP_ATTR


def test_lft_blocks(fabric: Fabric) -> None:
    st, data = ask(fabric, "sw-1", 1, SmpAttr.LINEAR_FORWARDING_TABLE, 3)
    assert st == 0 and LftBlock.decode(data).ports == (0xFF,) * 64
    blk = LftBlock.from_ports([1, 0, 3])
    st, data = ask(fabric, "sw-1", 1, SmpAttr.LINEAR_FORWARDING_TABLE, 767, blk.encode(),
                   Method.SET)
    assert st == 0 and LftBlock.decode(data).ports[:3] == (1, 0, 3)
    assert fabric.node("sw-1").lft[767 * 64 + 2] == 3  # type: ignore[attr-defined]
    assert ask(fabric, "sw-1", 1, SmpAttr.LINEAR_FORWARDING_TABLE, 768)[0] == BAD_PARAM
    assert ask(fabric, "hca-1", 1, SmpAttr.LINEAR_FORWARDING_TABLE, 0)[0] == UNSUP_ATTR


def test_mft_blocks_and_positions(fabric: Fabric) -> None:
    sw = fabric.node("sw-1")
    blk = MftBlock.from_masks([0x000C, 0x0002])
    st, _ = ask(fabric, "sw-1", 1, SmpAttr.MULTICAST_FORWARDING_TABLE, mft_am(1, 0),
                blk.encode(), Method.SET)
    assert st == 0
    assert sw.mft[32] == 0x000C and sw.mft[33] == 0x0002  # type: ignore[attr-defined]
    st, data = ask(fabric, "sw-1", 1, SmpAttr.MULTICAST_FORWARDING_TABLE, mft_am(1, 0))
    assert MftBlock.decode(data).masks[:2] == (0x000C, 0x0002)
    # a 3-port switch has one position; position 1 and blocks past 1024 MLIDs read as zeros
    for am in (mft_am(0, 1), mft_am(40, 0)):
        st, data = ask(fabric, "sw-1", 1, SmpAttr.MULTICAST_FORWARDING_TABLE, am)
        assert (st, data) == (0, bytes(64))
    assert ask(fabric, "hca-1", 1, SmpAttr.MULTICAST_FORWARDING_TABLE)[0] == UNSUP_ATTR


def test_pkey_table_sizes(fabric: Fabric) -> None:
    st, data = ask(fabric, "hca-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(0))
    assert st == 0 and PKeyTable.decode(data).entries[0] == 0xFFFF
    assert ask(fabric, "hca-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(1))[0] == 0
    assert ask(fabric, "hca-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(2))[0] == BAD_PARAM
    st, data = ask(fabric, "sw-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(0, 0))
    assert st == 0 and PKeyTable.decode(data).entries[8:] == (0,) * 24  # 8 entries on port 0
    assert ask(fabric, "sw-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(1, 0))[0] == BAD_PARAM
    assert ask(fabric, "sw-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(1, 3))[0] == 0
    assert ask(fabric, "sw-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(0, 9))[0] == BAD_PARAM
    new = PKeyTable.from_entries([0xFFFF, 0x8001, 0x0002])
    st, data = ask(fabric, "hca-1", 1, SmpAttr.P_KEY_TABLE, pkey_table_am(0), new.encode(),
                   Method.SET)
    assert st == 0 and fabric.port("hca-1", 1).pkeys[:3] == [0xFFFF, 0x8001, 0x0002]


def test_guid_info_sl2vl_vlarb(fabric: Fabric) -> None:
    st, data = ask(fabric, "hca-1", 1, SmpAttr.GUID_INFO)
    assert GuidInfo.decode(data).guids == (fabric.port("hca-1", 1).guid,) + (0,) * 7
    assert ask(fabric, "hca-1", 1, SmpAttr.GUID_INFO, 1)[1] == bytes(64)
    st, data = ask(fabric, "sw-1", 1, SmpAttr.SL_TO_VL_MAPPING_TABLE, sl_to_vl_am(1, 3))
    assert data[:8] == bytes.fromhex("0123456789abcde7")
    table = SlToVlTable.from_vls([0] * 15 + [1])
    ask(fabric, "sw-1", 1, SmpAttr.SL_TO_VL_MAPPING_TABLE, sl_to_vl_am(1, 3), table.encode(),
        Method.SET)
    assert ask(fabric, "sw-1", 1, SmpAttr.SL_TO_VL_MAPPING_TABLE, sl_to_vl_am(1, 3))[1][:8] \
        == table.encode()
    assert ask(fabric, "sw-1", 1, SmpAttr.SL_TO_VL_MAPPING_TABLE, sl_to_vl_am(1, 2))[1][:8] \
        == bytes.fromhex("0123456789abcde7")
    arb = VlArbTable.from_entries([(0, 8), (1, 16)])
    st, data = ask(fabric, "hca-1", 1, SmpAttr.VL_ARBITRATION_TABLE, vl_arb_am(1),
                   arb.encode(), Method.SET)
    assert st == 0 and VlArbTable.decode(data).entries[:2] == ((0, 8), (1, 16))
    assert ask(fabric, "hca-1", 1, SmpAttr.VL_ARBITRATION_TABLE, vl_arb_am(3))[0] == 0
    for block in (0, 2, 4, 5):  # caps of 8 entries: only blocks 1 and 3 exist
        assert ask(fabric, "hca-1", 1, SmpAttr.VL_ARBITRATION_TABLE, vl_arb_am(block))[0] \
            == BAD_PARAM


def test_lid_routed_smp_answered_too(fabric: Fabric) -> None:
    st, data = ask(fabric, "sw-2", 2, SmpAttr.NODE_INFO, dr=False)
    assert st == 0 and NodeInfo.decode(data).node_guid == fabric.node("sw-2").guid


def test_mkey_protects_sets(fabric: Fabric) -> None:
    assert set_pi(fabric, "hca-1", 1, mkey=0x1234)[0] == 0
    cur = pi(fabric, "hca-1", 1).replace(port_state=0, lid=3)
    wrong = build_dr_smp(Method.SET, SmpAttr.PORT_INFO, 1, 2, cur.encode(), mkey=0x9999)
    assert process_smp(fabric.node("hca-1"), 1, wrong) == DISCARD
    assert fabric.port("hca-1", 1).mkey_violations == 1
    assert fabric.node("hca-1").drops["mkey_violation"] == 1
    right = build_dr_smp(Method.SET, SmpAttr.PORT_INFO, 1, 2, cur.encode(), mkey=0x1234)
    resp = process_smp(fabric.node("hca-1"), 1, right)
    assert resp and mad_status(resp) == 0 and fabric.port("hca-1", 1).lid == 3
    # Gets pass with protect bits 0
    assert ask(fabric, "hca-1", 1, SmpAttr.NODE_INFO)[0] == 0


def test_unknown_attributes_and_sminfo_through_the_mad_layer() -> None:
    fabric = Fabric(line(1, 2))
    sm = TinySm(fabric, "hca-1")
    for attr in (0x0030, SmpAttr.SM_INFO):  # no SMA handler, no SM agent: Linux answers 0x0C
        resp = sm.rpc(build_dr_smp(Method.GET, attr, 0, 3, initial_path=(0, 1, 2)))
        assert resp is not None and mad_status(resp) == UNSUP_ATTR
    # with an SM agent bound on hca-2, SMInfo goes to it
    other = fabric.open_mad_agent("hca-2", 1, MgmtClass.SUBN_DIRECTED_ROUTE, requests=True)
    sm.agent.send(build_dr_smp(Method.GET, SmpAttr.SM_INFO, 0, 4, initial_path=(0, 1, 2)))
    run_until_idle(fabric)
    rx = other.recv()
    assert rx is not None and mad_attr_id(rx.mad) == SmpAttr.SM_INFO
    answer = SmInfo(guid=fabric.port("hca-2", 1).guid, priority=1, sm_state=2)
    from ipoib.wire.mad import make_response

    other.respond(rx, make_response(rx.mad, answer.encode()))
    run_until_idle(fabric)
    back = sm.agent.recv()
    assert back is not None and mad_tid(back.mad) == mad_tid(rx.mad)
    assert SmInfo.decode(smp_data(back.mad)).sm_state == 2


# --- against real ibsim ------------------------------------------------------------------------

INTENTIONAL = {
    # ibsim 0.10 leaves these at 0 / its template and ignores Sets; here they behave as IBA
    # says: GidPrefix defaults to fe80::/64, and read-write fields keep what the SM wrote.
    "gid_prefix", "mkey_lease_period", "subnet_timeout", "local_phy_errors", "overrun_errors",
    "partition_enforcement_inbound", "partition_enforcement_outbound", "link_speed_enabled",
}


def _route(fabric: Fabric, start: str, mad: bytes) -> tuple[str, int]:
    node, inp = fabric.node(start), 0
    for p in dr_initial_path(mad)[1:]:
        peer = node.ports[p].peer
        assert peer is not None
        node, inp = peer.node, peer.num
    return node.name, inp


def _compare(ours: bytes, theirs: bytes, down_port: bool) -> None:
    assert ours[:64] == theirs[:64]  # header: method, status, D bit, hop pointer, TID
    if mad_attr_id(ours) == SmpAttr.PORT_INFO:
        a, b = PortInfo.decode(smp_data(ours)), PortInfo.decode(smp_data(theirs))
        skip = INTENTIONAL | ({"local_phy_errors"} if down_port else set())
        for s in PortInfo.SLOTS:
            if s.name not in skip:
                assert getattr(a, s.name) == getattr(b, s.name), s.name
    else:
        assert smp_data(ours) == smp_data(theirs)


@pytest.mark.skipif(not NET_2SW.exists(), reason="ibsim examples not installed")
@pytest.mark.parametrize("name", ["opensm_full_bringup_trace.hex", "opensm_DR_set_vectors.hex"])
def test_replies_match_ibsim(vectors_dir: Path, name: str) -> None:
    """Replay OpenSM's requests (as ibsim delivers them: HopPointer 0) and compare our SMA's
    replies with ibsim's. The trace lost a few records; we stop before the first lost Set
    (TID 4753), after which the two fabrics' states would differ."""
    recs = read_hex(vectors_dir / name)
    replies = {mad_tid(r.valid): r.valid for r in recs if not r.sent}
    fabric = Fabric(netfile.load(NET_2SW))
    fabric.set_issm("Switch1", 0)  # OpenSM runs there
    compared = 0
    for req in (r for r in recs if r.sent):
        mad = req.valid
        if mad_tid(mad) >= 4753:
            break
        node, inp = _route(fabric, "Switch1", mad)
        ours = process_smp(fabric.node(node), inp, mad)
        theirs = replies.get(mad_tid(mad))
        if theirs is None:
            continue
        assert ours is not None
        port = fabric.node(node).ports[inp]
        _compare(ours[:128], theirs[:128], down_port=not port.up)
        compared += 1
    assert compared >= 3


def test_enabled_speed_applies_at_the_next_training(fabric: Fabric) -> None:
    """A Set of LinkSpeedEnabled does not retrain a live link (as on hardware and in ibsim):
    OpenSM's "enable all supported" (0xF) leaves the topology's speed until the link retrains,
    and then the link comes up at the fastest speed both ends now enable."""
    before = pi(fabric, "hca-1", 1)
    assert before.link_speed_active == 1 and before.link_speed_supported > 1
    for name, port in (("hca-1", 1), ("sw-1", 1)):
        st, after = set_pi(fabric, name, port, link_speed_enabled=0xF)
        assert st == 0
        assert after.link_speed_enabled == after.link_speed_supported
        assert after.link_speed_active == 1
    fabric.link_down("hca-1", 1)
    fabric.link_up("hca-1", 1)
    both = before.link_speed_supported & pi(fabric, "sw-1", 1).link_speed_supported
    assert pi(fabric, "hca-1", 1).link_speed_active == 1 << (both.bit_length() - 1)
