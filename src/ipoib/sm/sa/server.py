"""The SA's front door: checks, dispatch, answers in one MAD or over RMPP (IBA 15.2, 13.6).

What happens to an SA MAD, in OpenSM's order (``osm_sa_mad_ctrl.c``, ``osm_sa.c``):

1. Dropped, counted, unanswered: shorter than the SA header, ClassVersion other than 2, an
   SM_Key that is neither 0 nor the SM's (C15-0.1.5), a method other than Get, GetTable,
   Set, Delete (a ReportResp is just retired), an attribute OpenSM does not know, or a
   requester LID the SM did not assign. (The manager drops everything while it is not
   master or before the first sweep ends, C15-0.1.3.)
2. RMPP: ACK/STOP/ABORT go to the sender of our multi-MAD answers; DATA segments of a long
   request are reassembled first.
3. The attribute's handler answers: ClassPortInfo, NodeRecord, PortInfoRecord, PathRecord,
   MCMemberRecord. Attributes OpenSM serves but this SA does not (LinkRecord, ServiceRecord,
   InformInfo, ...) are answered "method/attribute unsupported" (0x000C) rather than left to
   time out.
4. Answers (``osm_sa_respond``): SubnAdmGet with no record is ERR_NO_RECORDS, with several
   ERR_TOO_MANY_RECORDS; a GetTable with none is an empty GetTableResp with AttributeOffset
   0; SM_Key is always 0; records sit at the AttributeOffset stride. A GetTableResp is an
   RMPP DATA transfer: one MAD flagged First|Last when it fits, otherwise segments windowed
   by :class:`~ipoib.mad.rmpp.RmppSender`. Error answers copy the request, as OpenSM does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from ...mad.rmpp import (
    NO_RESP_TIME,
    RMPP_VERSION,
    SEGMENT_PAYLOAD,
    RmppReceiver,
    RmppSender,
    Step,
    is_rmpp,
)
from ...wire.errors import DecodeError, WireError
from ...wire.layout import Record
from ...wire.mad import (
    RMPP_FLAG_ACTIVE,
    RMPP_FLAG_FIRST,
    RMPP_FLAG_LAST,
    SA_CLASS_VERSION,
    SA_DATA_SIZE,
    ClassPortInfo,
    MadStatus,
    Method,
    RmppHeader,
    RmppType,
    SaHeader,
    SaMad,
    response_method,
)
from ...wire.sa import (
    MCMemberRecord,
    NodeRecord,
    PathRecord,
    PortInfoRecord,
    SaAttr,
    SaStatus,
    attribute_offset,
    pack_records,
)
from ..transactions import MadAddr, OutMad
from .mcmember import McastService
from .path import path_records
from .records import node_records, port_info_records
from .view import SaSource

GSI_QKEY = 0x80010000
CPI_CAPABILITY_MASK = 0x2602
"""OpenSM 3.3's SA CapabilityMask as saquery shows it (vector ``saquery_cpi``)."""
CPI_CAPABILITY_MASK2 = 0xB5E8
"""OpenSM 3.3's CapabilityMask2; bit 12 (0x1000) is send-only full member support."""
CPI_RESP_TIME_VALUE = 0x10
SENDONLY_FULL_MEMBER_SUPPORT = 1 << 12

OPENSM_ONLY = frozenset({
    SaAttr.NOTICE, SaAttr.INFORM_INFO, SaAttr.SL2VL_TABLE_RECORD, SaAttr.SWITCH_INFO_RECORD,
    SaAttr.LINEAR_FDB_RECORD, SaAttr.MULTICAST_FDB_RECORD, SaAttr.SM_INFO_RECORD,
    SaAttr.LINK_RECORD, SaAttr.GUID_INFO_RECORD, SaAttr.SERVICE_RECORD,
    SaAttr.PKEY_TABLE_RECORD, SaAttr.VL_ARBITRATION_TABLE_RECORD, SaAttr.MULTI_PATH_RECORD,
    SaAttr.INFORM_INFO_RECORD,
})
"""Attributes OpenSM serves and this SA answers with status 0x000C."""

REQUEST_METHODS = frozenset({Method.GET, Method.GET_TABLE, Method.SET, Method.DELETE})

DROP_REASONS = frozenset({
    "malformed", "bad_class_version", "bad_sm_key", "unsupported_method",
    "unsupported_attribute", "unknown_requester", "unexpected_response",
})
"""Reasons in :attr:`SaServer.drops` (RMPP layers keep their own ``drops``)."""

_CPI = ClassPortInfo(
    class_version=SA_CLASS_VERSION, capability_mask=CPI_CAPABILITY_MASK,
    capability_mask2=CPI_CAPABILITY_MASK2, resp_time_value=CPI_RESP_TIME_VALUE,
    redirect_qp=1, redirect_qkey=GSI_QKEY, trap_qkey=GSI_QKEY,
)

Peer = tuple[int, int]


class SaServer:
    """Answers SA requests from the SM's view (``src``); sans-I/O like the SM."""

    def __init__(self, src: SaSource) -> None:
        self.src = src
        self.mcast = McastService(src)
        self.sender = RmppSender()
        self.receiver = RmppReceiver()
        self.drops: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self._peers: dict[Hashable, MadAddr] = {}

    # -- timers -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next RMPP deadline."""
        times = [t for t in (self.sender.get_timer(), self.receiver.get_timer())
                 if t is not None]
        return min(times, default=None)

    def handle_timer(self, now: float) -> list[OutMad]:
        """RMPP retransmissions and timeouts."""
        out = self._step(self.sender.handle_timer(now))
        return out + self._step(self.receiver.handle_timer(now))

    def _step(self, step: Step) -> list[OutMad]:
        out = []
        for ob in step.send:
            addr = self._peers.get(ob.peer, MadAddr(*ob.peer))  # type: ignore[misc]
            out.append(OutMad(ob.mad, dlid=addr.slid, dest_qp=addr.src_qp, pkey=addr.pkey,
                              sl=addr.sl))
        for done in step.finished:
            self.stats["rmpp_ok" if done.ok else "rmpp_failed"] += 1
        return out

    # -- requests -----------------------------------------------------------------------

    def receive(self, mad: bytes, addr: MadAddr, now: float) -> list[OutMad]:
        """Handle one SA MAD; return the MADs to send back."""
        try:
            sa = SaMad.decode(mad)
        except DecodeError:
            self.drops["malformed"] += 1
            return []
        if sa.header.class_version != SA_CLASS_VERSION:
            self.drops["bad_class_version"] += 1
            return []
        peer: Peer = (addr.slid, addr.src_qp)
        self._peers[peer] = addr
        if is_rmpp(mad) and sa.rmpp.rmpp_type != RmppType.DATA:
            return self._step(self.sender.receive(peer, mad, now))
        if is_rmpp(mad) and sa.rmpp.rmpp_type == RmppType.DATA and \
                sa.header.method in REQUEST_METHODS and (
                    sa.rmpp.segment_number > 1 or not sa.rmpp.rmpp_flags & RMPP_FLAG_LAST):
            step = self.receiver.receive(peer, mad, now)
            out = self._step(step)
            for msg in step.delivered:
                whole = SaMad(msg.header, RmppHeader(rmpp_version=0), msg.sa,
                              msg.data[:SA_DATA_SIZE])
                out += self._request(whole, whole.encode(), addr, now)
            return out
        return self._request(sa, bytes(mad).ljust(256, b"\0"), addr, now)

    def _request(self, sa: SaMad, raw: bytes, addr: MadAddr, now: float) -> list[OutMad]:
        """One request; a record that cannot be encoded is dropped, never raised."""
        try:
            return self._dispatch(sa, raw, addr, now)
        except WireError:
            self.drops["malformed"] += 1
            return []

    def _dispatch(self, sa: SaMad, raw: bytes, addr: MadAddr, now: float) -> list[OutMad]:
        src = self.src
        method = sa.header.method
        key = sa.sa.sm_key
        if key and key != src.config.sm_key:
            self.drops["bad_sm_key"] += 1
            return []
        if method == Method.REPORT_RESP:
            self.stats["report_resp"] += 1
            return []
        if method not in REQUEST_METHODS:
            self.drops["unexpected_response" if method & 0x80 else "unsupported_method"] += 1
            return []
        attr = sa.header.attr_id
        self.stats[f"{_attr_name(attr)}.{Method(method).name}"] += 1
        if attr == SaAttr.CLASS_PORT_INFO:
            if method != Method.GET:
                return self._error(raw, addr, MadStatus.METHOD_ATTR_UNSUPPORTED)
            return self._single(sa, addr, _CPI.encode(), offset=0)
        if attr in OPENSM_ONLY:
            return self._error(raw, addr, MadStatus.METHOD_ATTR_UNSUPPORTED)
        if attr not in (SaAttr.NODE_RECORD, SaAttr.PORT_INFO_RECORD, SaAttr.PATH_RECORD,
                        SaAttr.MC_MEMBER_RECORD):
            self.drops["unsupported_attribute"] += 1
            return []
        requester = src.by_lid.get(addr.slid)
        if requester is None:
            self.drops["unknown_requester"] += 1
            return []
        mask = sa.sa.component_mask
        data = sa.data
        trusted = key != 0
        records: Sequence[Record]
        if attr == SaAttr.PATH_RECORD:
            found = path_records(src, PathRecord.decode(data), mask, method, requester)
            if isinstance(found, int):
                return self._error(raw, addr, found)
            records = found
        elif attr == SaAttr.MC_MEMBER_RECORD:
            status, mc = self.mcast.handle(method, MCMemberRecord.decode(data), mask,
                                           requester, trusted)
            if status:
                return self._error(raw, addr, status)
            records = mc
        elif method not in (Method.GET, Method.GET_TABLE):
            return self._error(raw, addr, MadStatus.METHOD_ATTR_UNSUPPORTED)
        elif attr == SaAttr.NODE_RECORD:
            records = node_records(src, NodeRecord.decode(data), mask, requester)
        else:
            records = port_info_records(src, PortInfoRecord.decode(data), mask, requester,
                                        trusted)
        return self._respond(sa, raw, addr, records, _record_class(attr), now)

    # -- answers ------------------------------------------------------------------------

    def _respond(self, sa: SaMad, raw: bytes, addr: MadAddr, records: Sequence[Record],
                 cls: type[Record], now: float) -> list[OutMad]:
        method = sa.header.method
        if method != Method.GET_TABLE:
            if not records:
                return self._error(raw, addr, SaStatus.ERR_NO_RECORDS)
            if len(records) > 1:
                return self._error(raw, addr, SaStatus.ERR_TOO_MANY_RECORDS)
            return self._single(sa, addr, records[0].encode(), attribute_offset(cls))
        data = pack_records(records)
        offset = attribute_offset(cls) if records else 0
        header = sa.header.replace(method=Method.GET_TABLE_RESP, status=0)
        sa_hdr = SaHeader(sm_key=0, attribute_offset=offset,
                          component_mask=sa.sa.component_mask)
        self.stats["records"] += len(records)
        if len(data) <= SA_DATA_SIZE:
            rmpp = RmppHeader(rmpp_version=RMPP_VERSION, rmpp_type=RmppType.DATA,
                              r_resp_time=NO_RESP_TIME,
                              rmpp_flags=RMPP_FLAG_ACTIVE | RMPP_FLAG_FIRST | RMPP_FLAG_LAST,
                              segment_number=1,
                              payload_length=SEGMENT_PAYLOAD - (SA_DATA_SIZE - len(data)))
            return [self._to(addr, SaMad(header, rmpp, sa_hdr, data).encode())]
        self.stats["rmpp_transfers"] += 1
        step = self.sender.start((addr.slid, addr.src_qp), header, sa_hdr, data, now)
        return self._step(step)

    def _single(self, sa: SaMad, addr: MadAddr, record: bytes, offset: int) -> list[OutMad]:
        header = sa.header.replace(method=response_method(sa.header.method), status=0)
        sa_hdr = SaHeader(sm_key=0, attribute_offset=offset,
                          component_mask=sa.sa.component_mask)
        mad = SaMad(header, RmppHeader(rmpp_version=0), sa_hdr, record).encode()
        return [self._to(addr, mad)]

    def _error(self, raw: bytes, addr: MadAddr, status: int) -> list[OutMad]:
        """``osm_sa_send_error``: the request echoed with the status (GetTable: offset 0)."""
        self.stats[f"status_{status:#06x}"] += 1
        req = SaMad.decode(raw)
        method = req.header.method
        sa_hdr = req.sa.replace(sm_key=0)
        if method == Method.GET_TABLE:
            sa_hdr = sa_hdr.replace(attribute_offset=0)
        header = req.header.replace(method=response_method(method), status=status)
        return [self._to(addr, SaMad(header, req.rmpp, sa_hdr, req.data).encode())]

    @staticmethod
    def _to(addr: MadAddr, mad: bytes) -> OutMad:
        return OutMad(mad, dlid=addr.slid, dest_qp=addr.src_qp, pkey=addr.pkey, sl=addr.sl)


_RECORDS: dict[int, type[Record]] = {
    SaAttr.NODE_RECORD: NodeRecord, SaAttr.PORT_INFO_RECORD: PortInfoRecord,
    SaAttr.PATH_RECORD: PathRecord, SaAttr.MC_MEMBER_RECORD: MCMemberRecord,
}


def _record_class(attr: int) -> type[Record]:
    return _RECORDS[attr]


def _attr_name(attr: int) -> str:
    try:
        return SaAttr(attr).name
    except ValueError:
        return f"attr_{attr:#06x}"


__all__ = ["CPI_CAPABILITY_MASK", "CPI_CAPABILITY_MASK2", "DROP_REASONS", "SaServer"]
