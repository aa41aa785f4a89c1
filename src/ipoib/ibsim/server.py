"""The ibsim-compatible server core: ibsim's clients on our fabric, without any I/O.

Real OpenSM and infiniband-diags, run under ``LD_PRELOAD=libumad2sim.so``, speak the ibsim
socket protocol (ibsim-protocol.md). :class:`IbsimServer` takes their datagrams as bytes and
queues its answers as ``(slot, bytes)``; :mod:`ipoib.ibsim.transport` owns the sockets.

What happens to a client's MAD is what ibsim does with it (``process_packet``), on our nodes:

- **Checked and tagged** (ibsim-protocol.md §8): 288 bytes, BaseVersion 1, ClassVersion <= 2,
  a DR SMP with HopPointer 0, D bit = response bit, no DrSLID/DrDLID. SLID 0 becomes the
  client's LID; a request's TID bits 63-48 become the client's slot.
- **SMPs and PerfMgt requests answered at the target** by our SMA (:func:`~ipoib.fabric.sma.
  process_smp`) and PMA (:func:`~ipoib.fabric.pma.process_pma`), reached and answered along
  ibsim's routes (:mod:`ipoib.ibsim.protocol`). PerfMgt requests are never forwarded to
  anyone: OpenSM 3.3.23 crashes on some (ibsim-protocol.md §11).
- **Everything else** (SA GMPs, SMInfo, traps) goes through the fabric: every client is a
  :class:`~ipoib.fabric.agents.MadAgent` on its port, so its GMPs reach whatever agent serves
  the destination port (the embedded SA, an IPoIB host, or another client), and an SM
  client (``issm``) serves the SMI and SA classes on its port, so the MADs our own hosts and
  switches send there (PathRecord queries, joins, Trap 128) reach OpenSM. Answers come back
  the same way, and TIDs are translated so each side sees its own.
- **Undeliverable** requests bounce at once with status 110, as ibsim bounces them.

Slots are not limited to ibsim's 10 (the transport binds ``<base>:out<N>`` on demand). Drops
are counted in :attr:`IbsimServer.drops` by the reasons of :data:`DROP_REASONS`; what is
delivered, answered and bounced is counted in :attr:`IbsimServer.stats`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..fabric import pma, sma
from ..fabric.agents import MadAgent, ReceivedMad
from ..fabric.fabric import Fabric
from ..fabric.node import Node, Port
from ..wire.errors import WireError
from ..wire.ibsim import (
    SIM_CTL_SIZE,
    SIM_MAD_SIZE,
    SIM_MAGIC,
    SIM_REQUEST_SIZE,
    STATUS_TIMEOUT,
    CtlType,
    SimClientInfo,
    SimCtl,
    SimGid,
    SimGuid,
    SimIssm,
    SimPort,
    SimPortInfoRequest,
    SimVendor,
    pack_request,
    unpack_request,
)
from ..wire.mad import (
    DR_PATH_SIZE,
    DR_RETURN_PATH_OFFSET,
    MAD_HEADER_SIZE,
    RMPP_FLAG_ACTIVE,
    RMPP_FLAG_FIRST,
    RMPP_FLAG_LAST,
    RMPP_OFFSET,
    SA_CLASS_VERSION,
    SA_DATA_OFFSET,
    SA_HEADER_OFFSET,
    MadHeader,
    Method,
    MgmtClass,
    RmppHeader,
    RmppType,
    SaHeader,
    SaMad,
)
from ..wire.smp import NodeInfo, PKeyTable
from .protocol import (
    PERMISSIVE,
    agent_port,
    count_back,
    dr_in,
    dr_out,
    lid_route,
    tag_tid,
    with_return_path,
    with_tid,
)

DROP_REASONS = frozenset({
    "bad_ctl",             # a control message that is not 80 bytes or has a bad magic
    "bad_size",            # a data message that is not 288 bytes (ibsim: dropped, no reply)
    "no_client",           # a data message on a slot nobody holds
    "bad_mad",             # BaseVersion not 1, ClassVersion above 2, shorter than a MAD header
    "bad_dr",              # DR SMP: HopPointer not 0, D bit not the response bit, DrLIDs used
    "trap_repress",        # a TrapRepress for no trap we forwarded (ibsim drops them all)
    "unmatched_response",  # a response that answers no request pending here
    "duplicate_response",  # a second answer to one request (RMPP segments past the first)
    "client_gone",         # writing to a client failed: it is disconnected (transport)
    "client_backlog",      # a client does not read and its queue is full (transport)
})
"""Reasons in :attr:`IbsimServer.drops` (docs/conventions.md, "Drops")."""

SM_CLASSES = ((MgmtClass.SUBN_LID_ROUTED, 1), (MgmtClass.SUBN_DIRECTED_ROUTE, 1),
              (MgmtClass.SUBN_ADM, SA_CLASS_VERSION))
"""What an SM client serves on its port: SMInfo and traps (QP0) and the SA (QP1)."""
SMI = (MgmtClass.SUBN_LID_ROUTED, MgmtClass.SUBN_DIRECTED_ROUTE)
DR = int(MgmtClass.SUBN_DIRECTED_ROUTE)
PERF = int(MgmtClass.PERF_MGMT)
GET, SET, TRAP_REPRESS = int(Method.GET), int(Method.SET), int(Method.TRAP_REPRESS)
RMPP_STOP, RMPP_RESX = 3, 1
REMEMBERED = 4096
"""Outstanding TIDs a client, and requests an SM client, keep before the oldest are forgotten."""
FW_VER = 1
"""GET_VENDOR's firmware version, as ibsim answers."""


@dataclass(slots=True)
class CtlResult:
    """What a control message asks of the transport: ``attach`` = (slot, client id) means
    "open ``<base>:out<slot>`` towards the client's data socket before sending ``reply``";
    ``detach`` = a slot whose socket is no longer needed."""

    reply: bytes | None
    attach: tuple[int, int] | None = None
    detach: int | None = None


@dataclass(eq=False)
class Client:
    """One attached client (a umad2sim process, or any raw client) and its agents."""

    slot: int
    ident: int
    """The CONNECT ``id``: the client's pid (its ``<base>:in<pid>`` socket), or UDP port."""
    node: Node
    port: Port
    qp: int
    agent: MadAgent
    issm: bool = False
    serving: dict[int, MadAgent] = field(default_factory=dict)
    tids: OrderedDict[int, list[int]] = field(default_factory=OrderedDict)
    """TID low 32 bits -> [the TID the client sent, answered?] for MADs it sent by fabric."""
    pending: OrderedDict[tuple[int, int], tuple[ReceivedMad, MadAgent]] = field(
        default_factory=OrderedDict)
    """(requester LID, TID) -> the request handed to this SM client, awaiting its answer."""
    closed: bool = False


def _remember(table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    table[key] = value
    if len(table) > REMEMBERED:
        table.popitem(last=False)


def sa_length(mad: bytes) -> int:
    """The valid length of an SA answer as OpenSM under umad2sim would give it: the headers
    plus the records (saquery counts records from it), the whole MAD otherwise."""
    if len(mad) < SA_DATA_OFFSET:
        return len(mad)
    rmpp = RmppHeader.decode(mad, RMPP_OFFSET)
    if rmpp.rmpp_flags & RMPP_FLAG_ACTIVE and rmpp.rmpp_type == RmppType.DATA:
        if rmpp.rmpp_flags & RMPP_FLAG_FIRST and rmpp.rmpp_flags & RMPP_FLAG_LAST:
            return min(SIM_MAD_SIZE, SA_HEADER_OFFSET + rmpp.payload_length)
        return min(len(mad), SIM_MAD_SIZE)
    status = mad[4] << 8 | mad[5]
    offset = SaHeader.decode(mad, SA_HEADER_OFFSET).attribute_offset
    if status == 0 and offset and mad[3] & 0x80:
        return min(SIM_MAD_SIZE, SA_DATA_OFFSET + 8 * offset)
    return min(len(mad), SIM_MAD_SIZE)


def _rmpp_continues(mad: bytes) -> bool:
    """A first RMPP DATA segment with more to come (the client only ever sees the first)."""
    if len(mad) < SA_DATA_OFFSET or mad[1] != MgmtClass.SUBN_ADM:
        return False
    rmpp = RmppHeader.decode(mad, RMPP_OFFSET)
    return bool(rmpp.rmpp_flags & RMPP_FLAG_ACTIVE and rmpp.rmpp_type == RmppType.DATA
                and not rmpp.rmpp_flags & RMPP_FLAG_LAST)


def _rmpp_stop(mad: bytes) -> bytes:
    """The receiver's STOP (status ResX) for the transfer ``mad`` starts (IBA 13.6.3.3)."""
    header = MadHeader.decode(mad)
    rmpp = RmppHeader(rmpp_version=1, rmpp_type=RMPP_STOP, r_resp_time=0x1F,
                      rmpp_flags=RMPP_FLAG_ACTIVE, rmpp_status=RMPP_RESX)
    return SaMad(header.replace(method=header.method ^ 0x80), rmpp,
                 SaHeader.decode(mad, SA_HEADER_OFFSET), b"").encode()


def _answered_here(cls: int, method: int, attr: int) -> bool:
    """Whether our SMA or PMA answers this request itself (else it is delivered to an agent)."""
    if cls == PERF:
        return method in (GET, SET)
    if cls in SMI:
        return (attr, method) in sma.HANDLERS or (
            attr in sma.KNOWN_ATTRS and method in (GET, SET))
    return False


class IbsimServer:
    """ibsim's control and data protocol over a :class:`~ipoib.fabric.fabric.Fabric`.

    Feed it with :meth:`handle_ctl` and :meth:`handle_data`; take what it sends with
    :meth:`drain`. Answers that come back through the fabric are queued while the fabric
    runs (:meth:`Fabric.process`), so drain after every pump.
    """

    def __init__(self, fabric: Fabric, *, max_clients: int = 1 << 16) -> None:
        self.fabric = fabric
        self.max_clients = max_clients
        self.clients: dict[int, Client] = {}
        self.outbox: deque[tuple[int, bytes]] = deque()
        self.drops: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.alive: Callable[[Client], bool] = lambda cl: True
        """Whether a client still exists; the transport knows (a unix client's ident is its
        pid). Asked only when a new SM wants a port another client serves."""

    # --- control channel ------------------------------------------------------------------

    def handle_ctl(self, buf: bytes) -> CtlResult:
        """One control message; the reply echoes it with ``data`` filled in (ibsim §4)."""
        if len(buf) != SIM_CTL_SIZE:
            self.drops["bad_ctl"] += 1
            return CtlResult(None)
        ctl = SimCtl.decode(buf)
        if ctl.magic != SIM_MAGIC:
            self.drops["bad_ctl"] += 1
            return CtlResult(None)
        self.stats[f"ctl_{_ctl_name(ctl.type)}"] += 1
        if ctl.type == CtlType.CONNECT:
            return self._connect(ctl)
        cl = self.clients.get(ctl.clientid)
        if ctl.type == CtlType.DISCONNECT:
            if cl is None:
                return CtlResult(ctl.encode())
            self.disconnect(cl.slot)
            return CtlResult(ctl.encode(), detach=cl.slot)
        if cl is None:
            return CtlResult(ctl.replace(type=CtlType.ERROR).encode())
        p, node = cl.port, cl.node
        payload: bytes
        if ctl.type == CtlType.GET_PORT:
            payload = SimPort(lid=p.lid, state=p.state).encode()
        elif ctl.type == CtlType.GET_VENDOR:
            payload = SimVendor(vendor_id=node.vendor_id, vendor_part_id=node.device_id,
                                hw_ver=node.revision, fw_ver=FW_VER).encode()
        elif ctl.type == CtlType.GET_GID:
            payload = SimGid(gid_prefix=p.gid_prefix, node_guid=node.guid).encode()
        elif ctl.type == CtlType.GET_GUID:
            payload = SimGuid(node_guid=node.guid).encode()
        elif ctl.type == CtlType.GET_NODEINFO:
            payload = self.stored_node_info(node).encode()
        elif ctl.type == CtlType.GET_PORTINFO:
            num = SimPortInfoRequest.decode(ctl.data).port
            q = node.ports[num] if 0 < num <= node.nports else p
            payload = sma.port_info(q, q.num).encode()
        elif ctl.type == CtlType.GET_PKEYS:
            payload = PKeyTable.from_entries(p.pkeys[:32]).encode()
        elif ctl.type == CtlType.SET_ISSM:
            if not self.set_issm(cl, bool(SimIssm.decode(ctl.data).issm)):
                return CtlResult(ctl.replace(type=CtlType.ERROR).encode())
            return CtlResult(ctl.encode())
        else:  # ibsim warns and echoes anything else unchanged
            return CtlResult(ctl.encode())
        return CtlResult(ctl.replace(data=payload + ctl.data[len(payload):]).encode())

    @staticmethod
    def stored_node_info(node: Node) -> NodeInfo:
        """NodeInfo as ibsim stores it: PortGUID = node GUID, LocalPortNum of the template
        (1 on a CA, 0 on a switch); umad2sim adds LocalPortNum to get the port GUID."""
        return NodeInfo(node_type=int(node.kind), num_ports=node.nports,
                        system_image_guid=node.sys_guid, node_guid=node.guid,
                        port_guid=node.guid, partition_cap=node.partition_cap,
                        device_id=node.device_id, revision=node.revision,
                        local_port_num=0 if node.is_switch else 1, vendor_id=node.vendor_id)

    def find_node(self, nodeid: str) -> Node | None:
        """The node a client asks for: by nodeid, then by NodeDescription; "" is the first
        node of the topology."""
        nodes = self.fabric.nodes
        if not nodeid:
            return nodes[self.fabric.topology.nodes[0].name]
        if nodeid in nodes:
            return nodes[nodeid]
        return next((n for n in nodes.values() if n.desc == nodeid), None)

    def _connect(self, ctl: SimCtl) -> CtlResult:
        info = SimClientInfo.decode(ctl.data)
        error = CtlResult(ctl.replace(type=CtlType.ERROR).encode())
        node = self.find_node(info.nodeid)
        slot = next((i for i in range(self.max_clients) if i not in self.clients), None)
        if node is None or slot is None:
            return error
        port = node.ports[0] if node.is_switch else node.ports[1]
        agent = MadAgent(self.fabric, node, port.num, MgmtClass.SUBN_ADM, SA_CLASS_VERSION)
        cl = Client(slot, info.id, node, port, info.qp, agent)
        agent.handler = lambda rx: self._answer_to_client(cl, rx)
        if info.issm and not self.set_issm(cl, True):
            agent.close()
            return error
        self.clients[slot] = cl
        name = node.name.encode()[:31].decode("utf-8", "ignore")
        out = info.replace(id=slot, nodeid=name).encode()
        return CtlResult(ctl.replace(data=out + ctl.data[len(out):]).encode(),
                         attach=(slot, info.id))

    def connect_failed(self, slot: int, request: bytes) -> bytes:
        """The transport could not reach the client's data socket: undo, and the error
        reply to send instead."""
        self.disconnect(slot)
        return SimCtl.decode(request).replace(type=CtlType.ERROR).encode()

    def set_issm(self, cl: Client, on: bool) -> bool:
        """Make ``cl`` its port's SM client (serving SMInfo, traps and the SA there; IsSM
        set), or stop. False if another SM already serves that port."""
        if on == cl.issm:
            return True
        if not on:
            for agent in cl.serving.values():
                agent.close()
            cl.serving.clear()
            cl.issm = False
            return True
        try:
            for cls, version in SM_CLASSES:
                agent = MadAgent(self.fabric, cl.node, cl.port.num, cls, version,
                                 requests=True)
                agent.handler = self._serving_handler(cl, agent)
                cl.serving[cls] = agent
        except ValueError:
            for agent in cl.serving.values():
                agent.close()
            cl.serving.clear()
            stale = [o for o in self.clients.values()
                     if o is not cl and o.issm and o.port is cl.port and not self.alive(o)]
            if not stale:
                return False
            for o in stale:  # an SM that died without a goodbye (SIGKILL) gives way
                self.stats["dead_sm_replaced"] += 1
                self.disconnect(o.slot)
            return self.set_issm(cl, True)
        cl.issm = True
        return True

    def _serving_handler(self, cl: Client, agent: MadAgent) -> Callable[[ReceivedMad], None]:
        return lambda rx: self._request_to_client(cl, agent, rx)

    def disconnect(self, slot: int) -> None:
        """Forget the client in ``slot`` and give its agents back (idempotent)."""
        cl = self.clients.pop(slot, None)
        if cl is None:
            return
        cl.closed = True
        self.set_issm(cl, False)
        cl.agent.close()

    def close(self) -> None:
        """Disconnect everybody."""
        for slot in list(self.clients):
            self.disconnect(slot)

    # --- data channel ---------------------------------------------------------------------

    def drain(self) -> list[tuple[int, bytes]]:
        """The datagrams to send, as ``(slot, 288 bytes)``, removed from the queue."""
        out = list(self.outbox)
        self.outbox.clear()
        return out

    def handle_data(self, slot: int, buf: bytes) -> None:
        """One ``struct sim_request`` from the client in ``slot`` (never raises: whatever
        cannot be handled is counted in :attr:`drops`)."""
        try:
            self._handle_data(slot, buf)
        except WireError:
            self.drops["bad_mad"] += 1

    def _handle_data(self, slot: int, buf: bytes) -> None:
        if len(buf) != SIM_REQUEST_SIZE:
            self.drops["bad_size"] += 1
            return
        cl = self.clients.get(slot)
        if cl is None:
            self.drops["no_client"] += 1
            return
        dlid, slid, dqp, sqp, _, pad, length = unpack_request(buf)
        mad = bytes(buf[32:])
        if mad[0] != 1 or mad[2] > 2 or length < MAD_HEADER_SIZE:
            self.drops["bad_mad"] += 1
            return
        cls, method = mad[1], mad[3]
        response = method & 0x80
        if cls == DR:
            if mad[6] != 0 or (mad[4] & 0x80) != response or mad[32:36] != b"\xff" * 4:
                self.drops["bad_dr"] += 1
                return
        elif slid == 0:
            slid = cl.port.lid
        length = min(length, SIM_MAD_SIZE)
        if response or method == TRAP_REPRESS:
            self._answer_from_client(cl, dlid, mad, length)
            return
        attr = mad[16] << 8 | mad[17]
        if cls == DR and dlid == PERMISSIVE and (attr, method) in sma.HANDLERS:
            self._dr_here(cl, mad, (dlid, slid, dqp, sqp, pad, length))
            return
        mad = tag_tid(mad, slot)
        here = _answered_here(cls, method, attr)
        path: bytearray | None = None
        hops = mad[7] if cls == DR else 0
        if dlid != PERMISSIVE:
            target = lid_route(cl.port, dlid, count=here)
        else:
            walked = dr_out(cl.port, hops, mad, count=here)
            target, path = walked if walked is not None else (None, None)
        if target is None:
            self._bounce(slot, dlid, slid, dqp, sqp, pad, length, mad)
            return
        if here:
            self._answer_here(cl, target, path, hops, mad, (dlid, slid, dqp, sqp, pad, length))
        else:
            self._deliver(cl, target, mad, (dlid, slid, dqp, sqp, pad, length))

    def _bounce(self, slot: int, dlid: int, slid: int, dqp: int, sqp: int, pad: bytes,
                length: int, mad: bytes) -> None:
        """ibsim's ``_dropped``: the datagram goes straight back with status 110."""
        self.stats["bounced"] += 1
        self.outbox.append((slot, pack_request(dlid, slid, dqp, sqp, STATUS_TIMEOUT, length,
                                               mad, pad)))

    def _answer_here(self, cl: Client, target: Port, path: bytearray | None, hops: int,
                     mad: bytes, head: tuple[int, int, int, int, bytes, int]) -> None:
        """ibsim's local answer: the target's SMA or PMA, the ReturnPath, the way back."""
        dlid, slid, dqp, sqp, pad, length = head
        node = target.node
        if mad[1] == PERF:
            resp = pma.process_pma(node, target.num, mad)
        else:
            resp = sma.process_smp(node, target.num, mad)
        if not resp:  # None: not answerable after all; b"": discarded (M_Key)
            self._bounce(cl.slot, dlid, slid, dqp, sqp, pad, length, mad)
            return
        if mad[1] == DR:
            if path is None:  # a DR SMP sent LID-routed: ibsim returns its InitialPath
                path = bytearray(mad[128:192])
            resp = with_return_path(resp, path)
        if dlid != PERMISSIVE:
            port = lid_route(target, slid)
            self._reply(cl, None if port is None else port.node, resp, head)
        elif path is None:
            self._reply(cl, target.node, resp, head)
        else:
            self._reply_dr(cl, target, hops, path, mad[3] == GET, resp, head)

    def _reply_dr(self, cl: Client, target: Port, hops: int, path: bytes | bytearray,
                  get: bool, resp: bytes, head: tuple[int, int, int, int, bytes, int]) -> None:
        """Send a DR answer back along ``path``, as ibsim walks it back: a Get changed
        nothing, so the links that led here lead back; a Set may have taken one down."""
        if get:
            back: Node | None = count_back(target, hops, path)
        else:
            port = dr_in(target, hops, path)
            back = None if port is None else port.node
        self._reply(cl, back, resp, head)

    def _reply(self, cl: Client, back: Node | None, resp: bytes,
               head: tuple[int, int, int, int, bytes, int]) -> None:
        """``resp`` to the client, if the way back (``back``) reaches its node; else ibsim
        bounces the reply it has already built: swapped header, status 110."""
        dlid, slid, dqp, sqp, pad, length = head
        if back is not cl.node:
            self._bounce(cl.slot, slid, dlid, sqp, dqp, pad, length, resp)
            return
        self.stats["answered"] += 1
        self.outbox.append((cl.slot, pack_request(slid, dlid, sqp, dqp, 0, length, resp, pad)))

    def _dr_here(self, cl: Client, mad: bytes,
                 head: tuple[int, int, int, int, bytes, int]) -> None:
        """:meth:`_answer_here` for what OpenSM sends most, a DR Get or Set for an SMA,
        on one mutable copy: the TID tagged and the ReturnPath ibsim sends back written
        into the request, which the SMA then turns into its answer in place
        (:func:`~ipoib.fabric.sma.answer_dr`), so the answer needs no more splicing."""
        dlid, slid, dqp, sqp, pad, length = head
        req = bytearray(mad)
        req[8:10] = cl.slot.to_bytes(2, "big")  # tag_tid
        hops = req[7]
        walked = dr_out(cl.port, hops, req)
        if walked is None:
            self._bounce(cl.slot, dlid, slid, dqp, sqp, pad, length, bytes(req))
            return
        target, path = walked
        req[DR_RETURN_PATH_OFFSET:DR_RETURN_PATH_OFFSET + DR_PATH_SIZE] = path
        if sma.answer_dr(target.node, target.num, req, 0) <= 0:
            # not answerable after all, or discarded (M_Key): req is as it was
            req[DR_RETURN_PATH_OFFSET:DR_RETURN_PATH_OFFSET + DR_PATH_SIZE] = \
                mad[DR_RETURN_PATH_OFFSET:DR_RETURN_PATH_OFFSET + DR_PATH_SIZE]
            self._bounce(cl.slot, dlid, slid, dqp, sqp, pad, length, bytes(req))
            return
        # answered in place (sma.answer_dr): the GetResp, D bit set
        self._reply_dr(cl, target, hops, path, mad[3] == GET, bytes(req), head)

    def _deliver(self, cl: Client, target: Port, mad: bytes,
                 head: tuple[int, int, int, int, bytes, int]) -> None:
        """A request no SMA/PMA answers: to the agent serving the target port, through the
        fabric (or straight to a client that registered a data QP, ibsim-protocol.md §7.5)."""
        dlid, slid, dqp, sqp, pad, length = head
        node = target.node
        aport = agent_port(node, target)
        if dqp > 1:
            dest = next((c for c in self.clients.values()
                         if c.node is node and c.port.num == aport and c.qp == dqp), None)
            if dest is None:
                self._bounce(cl.slot, dlid, slid, dqp, sqp, pad, length, mad)
                return
            self.stats["forwarded"] += 1
            self.outbox.append((dest.slot, pack_request(dlid, slid, dqp, sqp, 0, length, mad,
                                                        pad)))
            return
        cls = mad[1]
        if cls == PERF or (aport, cls) not in node.agents or (
                dlid != PERMISSIVE and lid_route(target, slid, count=False) is None):
            self._bounce(cl.slot, dlid, slid, dqp, sqp, pad, length, mad)
            return
        tid = int.from_bytes(mad[8:16], "big")
        _remember(cl.tids, tid & 0xFFFF_FFFF, [tid, 0])
        self.stats["delivered"] += 1
        cl.agent.send(mad[:length] if cls != DR else mad, dlid=dlid, dqp=dqp)

    # --- answers crossing between the fabric and clients ----------------------------------

    def _answer_to_client(self, cl: Client, rx: ReceivedMad) -> None:
        """A response reached ``cl``'s agent: back to the client with the TID it sent."""
        if cl.closed:
            return
        entry = cl.tids.get(int.from_bytes(rx.mad[12:16], "big"))
        if entry is None:
            self.drops["unmatched_response"] += 1
            return
        if entry[1]:
            self.drops["duplicate_response"] += 1
            return
        entry[1] = 1
        mad = with_tid(bytes(rx.mad[:SIM_MAD_SIZE]), entry[0])
        length = len(mad)
        if mad[1] == MgmtClass.SUBN_ADM:
            try:
                length = sa_length(mad)
                if _rmpp_continues(mad):  # a client without RMPP takes the first MAD only
                    cl.agent.send(_rmpp_stop(rx.mad), dlid=rx.slid, dqp=rx.src_qp)
            except WireError:
                pass
        self.stats["to_client"] += 1
        self.outbox.append((cl.slot, pack_request(rx.dlid, rx.slid, rx.dest_qp, rx.src_qp, 0,
                                                  length, mad)))

    def _request_to_client(self, cl: Client, agent: MadAgent, rx: ReceivedMad) -> None:
        """A request (SA query, SMInfo, trap) reached the port ``cl`` serves as SM."""
        if cl.closed:
            return
        mad = bytes(rx.mad[:SIM_MAD_SIZE])
        if mad[1] == DR:
            mad = mad[:6] + b"\0" + mad[7:]  # ibsim hands DR requests over with HopPointer 0
        tid = int.from_bytes(mad[8:16], "big")
        _remember(cl.pending, (rx.slid, tid), (rx, agent))
        self.stats["to_sm"] += 1
        self.outbox.append((cl.slot, pack_request(rx.dlid, rx.slid, rx.dest_qp, rx.src_qp, 0,
                                                  len(mad), mad)))

    def _answer_from_client(self, cl: Client, dlid: int, mad: bytes, length: int) -> None:
        """A response (or TrapRepress) from a client: to the request it answers."""
        tid = int.from_bytes(mad[8:16], "big")
        entry = cl.pending.pop((dlid, tid), None)
        if entry is None:
            self.drops["trap_repress" if mad[3] == TRAP_REPRESS else "unmatched_response"] += 1
            return
        rx, agent = entry
        body = mad[:length].ljust(SIM_MAD_SIZE, b"\0")
        if body[1] == DR:  # the way back is the fabric's: HopPointer and ReturnPath as they came
            body = with_return_path(body[:6] + rx.mad[6:7] + body[7:], rx.mad[192:256])
        self.stats["from_sm"] += 1
        if not agent.closed:
            agent.respond(rx, body)

    # --- views ----------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """One row per attached client."""
        return [{"slot": c.slot, "id": c.ident, "node": c.node.name, "port": c.port.num,
                 "lid": c.port.lid, "issm": c.issm, "qp": c.qp}
                for c in sorted(self.clients.values(), key=lambda c: c.slot)]


def _ctl_name(t: int) -> str:
    try:
        return CtlType(t).name.lower()
    except ValueError:
        return f"type_{t}"


__all__ = ["DROP_REASONS", "Client", "CtlResult", "IbsimServer", "sa_length"]
