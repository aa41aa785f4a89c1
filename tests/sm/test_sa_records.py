"""NodeRecord and PortInfoRecord: matching, trust, and tables too big for one MAD (RMPP)."""

from __future__ import annotations

from ipoib.fabric import netfile, topogen
from ipoib.wire.enums import NodeType
from ipoib.wire.mad import Method, SaMad
from ipoib.wire.sa import NodeRecord, PortInfoRecord, SaAttr, SaStatus, unpack_records

from .bringup import NET_EXAMPLES, SaClient, bring_up, rmpp_table

NR = {n: NodeRecord.component_mask(n) for n in ("lid", "node_type", "node_guid",
                                                 "node_description", "num_ports")}
PIR = {n: PortInfoRecord.component_mask(n) for n in ("endport_lid", "port_num", "port_state",
                                                     "lid")}


def test_node_table_of_300_nodes_arrives_whole_over_rmpp() -> None:
    topo = topogen.fat_tree(300)
    assert len(topo.nodes) >= 300
    fabric, binding = bring_up(topo)
    client = SaClient(fabric, "hca-17")
    status, data, offset = rmpp_table(client, binding.sm.sm_lid, Method.GET_TABLE,
                                      SaAttr.NODE_RECORD, NodeRecord().encode())
    assert status == 0 and offset == 14
    table = unpack_records(NodeRecord, data, offset)
    assert not table.truncated and len(table.records) == len(topo.nodes)
    assert {r.node_guid for r in table.records} == {n.node_guid for n in topo.nodes}
    assert {r.lid for r in table.records} == set(binding.sm.lids.values())
    by_guid = {n.node_guid: n for n in topo.nodes}
    for r in table.records:
        spec = by_guid[r.node_guid]
        assert r.node_description == spec.description and r.node_type == spec.kind
        assert r.port_guid == spec.port_guid(0 if spec.kind == NodeType.SWITCH else 1)
    assert binding.sm.sa.stats["rmpp_ok"] == 1
    assert binding.sm.sa.sender.drops == {}


def test_node_record_matching() -> None:
    fabric, binding = bring_up(netfile.load(NET_EXAMPLES / "net.2sw2path4hca2port"))
    client = SaClient(fabric, "Hca1")
    lid = binding.sm.sm_lid
    switches = rmpp_table(client, lid, Method.GET_TABLE, SaAttr.NODE_RECORD,
                          NodeRecord(node_type=2).encode(), mask=NR["node_type"])
    recs = unpack_records(NodeRecord, switches[1], switches[2]).records
    assert {r.node_description for r in recs} == {"Switch1", "Switch2"}
    (rx,) = client.request(lid, Method.GET, SaAttr.NODE_RECORD,
                           NodeRecord(node_description="Hca2").encode(),
                           mask=NR["node_description"])
    # a two-port HCA has a record per cabled port: SubnAdmGet has too many
    many = SaMad.decode(rx.mad)
    hca2_ports = [p for p in fabric.node("Hca2").ports[1:] if p.lid]
    if len(hca2_ports) > 1:
        assert many.header.status == SaStatus.ERR_TOO_MANY_RECORDS
    port = hca2_ports[0]
    (rx,) = client.request(lid, Method.GET, SaAttr.NODE_RECORD, NodeRecord(lid=port.lid).encode(),
                           mask=NR["lid"])
    one = NodeRecord.decode(SaMad.decode(rx.mad).data)
    assert (one.port_guid, one.local_port_num) == (port.guid, port.num)
    (rx,) = client.request(lid, Method.GET, SaAttr.NODE_RECORD, NodeRecord(lid=999).encode(),
                           mask=NR["lid"])
    assert SaMad.decode(rx.mad).header.status == SaStatus.ERR_NO_RECORDS
    (rx,) = client.request(lid, Method.SET, SaAttr.NODE_RECORD, NodeRecord().encode())
    assert SaMad.decode(rx.mad).header.status == 0x000C


def test_port_info_records_of_a_switch_and_trust() -> None:
    fabric, _binding = bring_up(netfile.load(NET_EXAMPLES / "net.2sw2path4hca"))
    client = SaClient(fabric, "Hca2")
    status, data, offset = rmpp_table(client, 1, Method.GET_TABLE, SaAttr.PORT_INFO_RECORD,
                                      PortInfoRecord(endport_lid=3).encode(),
                                      mask=PIR["endport_lid"])
    recs = unpack_records(PortInfoRecord, data, offset).records
    assert status == 0 and offset == 9
    assert [r.port_num for r in recs] == list(range(9))  # Switch2: ports 0..8
    assert all(r.endport_lid == 3 for r in recs)
    active = [r.port_num for r in recs if r.port_state == 4]
    assert active == [0, 1, 2, 3, 5]
    (rx,) = client.request(1, Method.GET, SaAttr.PORT_INFO_RECORD,
                           PortInfoRecord(endport_lid=4).encode(), mask=PIR["endport_lid"])
    mine = PortInfoRecord.decode(SaMad.decode(rx.mad).data)
    assert (mine.lid, mine.port_state, mine.master_sm_lid, mine.mkey) == (4, 4, 1, 0)
    status, data, offset = rmpp_table(client, 1, Method.GET_TABLE, SaAttr.PORT_INFO_RECORD,
                                      PortInfoRecord(port_state=4).encode(),
                                      mask=PIR["port_state"], sm_key=1)
    every = unpack_records(PortInfoRecord, data, offset).records
    assert len(every) == 4 + 2 * 5  # 4 HCA ports, 5 active ports on each switch
