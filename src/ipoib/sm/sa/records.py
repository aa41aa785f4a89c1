"""NodeRecord and PortInfoRecord (IBA 15.2.5.2, 15.2.5.3), from what discovery read.

A NodeRecord is a node's NodeInfo (as read through the port the record is about, so PortGUID
and LocalPortNum are that port's), its NodeDescription and the port's LID: one record per CA
port with a LID, one per switch (port 0). A PortInfoRecord is a port's PortInfo with the LID
of its endport (a switch's LID for every switch port). Both are matched field by field on the
component mask (:func:`ipoib.wire.layout.match`), walked in OpenSM's GUID table order, and
limited to ports sharing a partition with the requester, as ``osm_sa_node_record.c`` and
``osm_sa_portinfo_record.c`` do. An untrusted requester sees M_Key 0 in PortInfoRecords.
"""

from __future__ import annotations

from ...wire.enums import NodeType
from ...wire.layout import match
from ...wire.sa import NodeRecord, PortInfoRecord
from ..graph import opensm_order
from .view import SaSource, common_pkey

End = tuple[int, int]

NR_LID = NodeRecord.component_mask("lid")
PIR_LID = PortInfoRecord.component_mask("endport_lid")
PIR_CAP_MASK = PortInfoRecord.component_mask("capability_mask")
"""CapabilityMask matches as "every requested bit set", not by equality (as OpenSM does:
``saquery -s`` asks for the ports with IsSM)."""
PIR_PORT = PortInfoRecord.component_mask("port_num")


def node_records(src: SaSource, req: NodeRecord, mask: int, requester: End) -> list[NodeRecord]:
    """The NodeRecords matching ``req`` on ``mask``."""
    sub = src.subnet
    out: list[NodeRecord] = []
    if sub is None:
        return out
    for node in sorted(sub.graph.nodes.values(), key=lambda n: opensm_order(n.guid)):
        switch = node.kind == NodeType.SWITCH
        for num in sorted(node.ports):
            port = node.ports[num]
            if (num == 0) != switch or not port.guid:
                continue
            lid = src.lids.get(port.guid, 0)
            info = sub.node_info.get(port.guid)
            if not lid or info is None:
                continue
            if mask & NR_LID and req.lid != lid:
                continue
            if not switch and not common_pkey(sub, requester, (node.guid, num)):
                continue
            rec = NodeRecord.from_attributes(lid, info[:NodeRecord.NODE_INFO_SIZE],
                                             _desc(node.desc))
            if match(rec, req, mask & ~NR_LID):
                out.append(rec)
    return out


def port_info_records(src: SaSource, req: PortInfoRecord, mask: int, requester: End,
                      trusted: bool) -> list[PortInfoRecord]:
    """The PortInfoRecords matching ``req`` on ``mask``."""
    sub = src.subnet
    out: list[PortInfoRecord] = []
    if sub is None:
        return out
    nodes = sub.graph.nodes
    if mask & PIR_LID:
        where = src.by_lid.get(req.endport_lid)
        ends = [where] if where is not None else []
    else:
        ends = []
        for node, port in sorted(sub.graph.endports, key=lambda np: opensm_order(np[1].guid)):
            ends.append((node.guid, port.num))
    for guid, num in ends:
        node = nodes[guid]
        base = node.ports[num]
        lid = src.lids.get(base.guid, 0)
        if not lid:
            continue
        if node.kind != NodeType.SWITCH and not common_pkey(sub, requester, (guid, num)):
            continue
        nums = sorted(node.ports) if node.kind == NodeType.SWITCH else [num]
        for n in nums:
            raw = sub.port_info.get((guid, n))
            if raw is None:
                continue
            rec = PortInfoRecord.from_attributes(lid, n, raw)
            if not trusted:
                rec = rec.replace(mkey=0)
            if (match(rec, req, mask & ~(PIR_LID | PIR_CAP_MASK))
                    and (not mask & PIR_CAP_MASK
                         or rec.capability_mask & req.capability_mask == req.capability_mask)):
                out.append(rec)
    return out


def _desc(text: str) -> str:
    """A NodeDescription that fits its 64 bytes (cut on a character boundary)."""
    raw = text.encode()[:64]
    return raw.decode("utf-8", "ignore")
