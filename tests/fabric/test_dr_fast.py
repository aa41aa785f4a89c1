"""Directed-route SMPs in the common cases are handled on the packet bytes
(``agents._dr_fast``): a switch passing one on, an SMA answering one, an agent receiving a
response. That shortcut must do exactly what the general path (full UD checks,
``sma.dr_receive``, ``dr_act``, ``local``) does with the same packet: the same packets on the
same links afterwards, the same drops, answers, port changes and agent deliveries. Two
identical fabrics receive the same packet, one through each path, and are compared."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import Fabric, MadAgent, agents, sma
from ipoib.fabric.topogen import line
from ipoib.wire.errors import DecodeError
from ipoib.wire.ib import build_ud, check_ud
from ipoib.wire.mad import (
    Method,
    MgmtClass,
    build_dr_smp,
    dr_hop_pointer,
    dr_return_path,
    make_response,
)
from ipoib.wire.smp import PortInfo, SmpAttr

TOPO = line(4, 2)  # sw-2: hca-3, hca-4 on ports 1-2, sw-1 on port 3, sw-3 on port 4
PERMISSIVE = 0xFFFF
NODES = ["sw-2", "sw-1", "hca-3", "hca-8"]


class Tap:
    """Every packet leaving any port, in order, and when."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.times: list[float] = []

    def write_ib(self, now: float, pkt: bytes) -> None:
        self.packets.append(bytes(pkt))
        self.times.append(now)


def _fabric(setup: int) -> tuple[Fabric, Tap, list[MadAgent]]:
    fabric = Fabric(TOPO)
    tap = Tap()
    fabric.capture(tap)  # type: ignore[arg-type]
    # agent id 1 on sw-2 port 0 and on hca-3 port 1 (TIDs 0x00000001_xxxxxxxx reach them)
    queues = [fabric.open_mad_agent("sw-2", 0, MgmtClass.SUBN_DIRECTED_ROUTE),
              fabric.open_mad_agent("hca-3", 1, MgmtClass.SUBN_DIRECTED_ROUTE)]
    if setup & 1:
        fabric.set_mad_delay("sw-2", 0.25)
    if setup & 2:
        p = fabric.port("hca-3", 1)
        p.mkey, p.mkey_protect = 0x1234, 2
    if setup & 4:
        queues.append(fabric.open_mad_agent("sw-2", 0, MgmtClass.SUBN_DIRECTED_ROUTE,
                                            requests=True))
    return fabric, tap, queues


def _state(fabric: Fabric, tap: Tap, queues: list[MadAgent]) -> Any:
    fabric.process(fabric.now + 1)
    return (tap.packets, tap.times,
            {n.name: +n.all_drops() for n in fabric.nodes.values()},
            [(p.xmit_pkts, p.rcv_pkts, sma.port_info(p, p.num).encode())
             for n in fabric.nodes.values() for p in n.ports],
            [list(q.queue) for q in queues])


def both_paths(pkt: bytes, at: str, in_port: int, setup: int = 0) -> tuple[Any, Any]:
    """(state after the fabric's own receive, state after the general path alone)."""
    results = []
    for general in (False, True):
        fabric, tap, queues = _fabric(setup)
        node = fabric.node(at)
        port = node.ports[0] if node.is_switch else node.ports[1]
        try:
            off = check_ud(pkt)
        except DecodeError:
            port.drops["malformed"] += 1
        else:
            if general:
                agents._receive_general(fabric, node, port, pkt, off, in_port)
            elif node.is_switch:
                agents.receive(fabric, node, port, pkt, in_port)
            else:
                agents.receive_checked(fabric, node, port, pkt, off, in_port)
        results.append(_state(fabric, tap, queues))
    return results[0], results[1]


def _dr(mad: bytes, dlid: int = PERMISSIVE, slid: int = PERMISSIVE, **kw: Any) -> bytes:
    args: dict[str, Any] = {"vl": 15, "sl": 0, "dlid": dlid, "slid": slid, "pkey": 0xFFFF,
                            "dest_qp": 0, "qkey": 0, "src_qp": 0, "payload": mad}
    return build_ud(**(args | kw))


ATTRS = [SmpAttr.NODE_INFO, SmpAttr.PORT_INFO, SmpAttr.SWITCH_INFO, SmpAttr.NODE_DESCRIPTION,
         SmpAttr.SM_INFO, SmpAttr.LINEAR_FORWARDING_TABLE, 0x7777]
METHODS = [Method.GET, Method.SET, Method.GET_RESP, Method.TRAP, Method.TRAP_REPRESS, 0x03]


@st.composite
def dr_smps(draw: st.DrawFn) -> bytes:
    hc = draw(st.integers(0, 66))
    hp = draw(st.sampled_from([0, 1, 2, hc, hc + 1, hc + 2]) | st.integers(0, hc + 2))
    attr = draw(st.sampled_from(ATTRS))
    data = b""
    if attr == SmpAttr.PORT_INFO and draw(st.booleans()):
        data = PortInfo(lid=draw(st.integers(0, 0xC001)), port_state=draw(st.integers(0, 5)),
                        mkey=draw(st.sampled_from([0, 0x1234]))).encode()
    mad = bytearray(build_dr_smp(
        draw(st.sampled_from(METHODS)), attr, draw(st.integers(0, 5)),
        draw(st.sampled_from([1 << 32 | 5, 2 << 32 | 5, 5])), data,
        initial_path=(0,), hop_count=min(hc, 63), hop_pointer=min(hp, 255),
        direction=draw(st.integers(0, 1)),
        dr_slid=draw(st.sampled_from([PERMISSIVE, PERMISSIVE, 3])),
        dr_dlid=draw(st.sampled_from([PERMISSIVE, PERMISSIVE, 5])),
        mkey=draw(st.sampled_from([0, 0x1234, 7]))))
    mad[7] = hc
    mad[128:256] = draw(st.binary(min_size=128, max_size=128).map(
        lambda b: bytes(x % 6 for x in b)))  # ports 0..5: some valid, some not
    if draw(st.integers(0, 9)) == 0:
        mad[0] = draw(st.sampled_from([0, 2]))
    if draw(st.integers(0, 9)) == 0:
        mad[1] = 0x01
    return bytes(mad)


def _variant(mad: bytes, variant: int) -> bytes:
    return {1: lambda: _dr(mad, slid=7), 2: lambda: _dr(mad, dlid=9),
            3: lambda: _dr(mad, pkey=0x7FFF), 4: lambda: _dr(mad[:200]),
            5: lambda: _dr(mad) + b"\0\0\0\0", 6: lambda: _dr(mad, sl=3)}.get(
                variant, lambda: _dr(mad))()


@settings(max_examples=500, deadline=None)
@given(mad=dr_smps(), at=st.sampled_from(NODES), in_port=st.integers(0, 5),
       variant=st.integers(0, 9), setup=st.integers(0, 7))
def test_dr_smps_are_handled_as_the_general_path_does(mad: bytes, at: str, in_port: int,
                                                      variant: int, setup: int) -> None:
    if not at.startswith("sw"):
        in_port = 1
    fast, general = both_paths(_variant(mad, variant), at, in_port, setup)
    assert fast == general


def test_an_outbound_hop_records_the_ingress_port_and_the_answer_comes_back() -> None:
    # arriving at sw-2 on port 3 (from sw-1), out of port 4 to sw-3, whose SMA answers
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, 3, 4),
                       hop_pointer=1)
    fast, general = both_paths(_dr(mad), "sw-2", 3)
    assert fast == general
    out, back, home = (p[28:] for p in fast[0])
    assert dr_hop_pointer(out) == 2 and dr_return_path(out)[1] == 3
    assert back[4] & 0x80 and dr_hop_pointer(back) == 2 and back[64:128] != bytes(64)
    assert dr_hop_pointer(home) == 1  # leaving sw-2 for sw-1 out of port 3


def test_a_response_reaches_the_agent_named_in_its_tid() -> None:
    resp = bytearray(make_response(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0,
                                                1 << 32 | 9, initial_path=(0, 3))))
    resp[6] = 1
    fast, general = both_paths(_dr(bytes(resp)), "sw-2", 3)
    assert fast == general
    (rx,) = fast[4][0]
    assert rx.mad[6] == 0 and rx.in_port == 3 and rx.slid == PERMISSIVE
    resp[8:12] = (7).to_bytes(4, "big")  # no agent 7
    fast, general = both_paths(_dr(bytes(resp)), "sw-2", 3)
    assert fast == general and fast[2]["sw-2"]["unmatched_response"] == 1


def test_a_returning_hop_out_of_a_bad_port_is_discarded_and_counted() -> None:
    mad = bytearray(make_response(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1,
                                               initial_path=(0, 3, 4))))
    mad[6] = 2  # HopPointer: at the middle switch on the way back
    mad[192 + 1] = 9  # ReturnPath[1]: a port sw-2 does not have
    fast, general = both_paths(_dr(bytes(mad)), "sw-2", 4)
    assert fast == general
    assert fast[2]["sw-2"]["dr_discard"] == 1 and not fast[0]


def test_every_sma_request_at_every_kind_of_node_is_answered_as_the_general_path_does() -> None:
    pi = PortInfo(lid=9, port_state=2, mkey=0).encode()
    for setup in range(8):
        for at in NODES:
            in_port = 3 if at.startswith("sw") else 1
            for method in (Method.GET, Method.SET):
                for attr in ATTRS:
                    mad = build_dr_smp(method, attr, 1, 1 << 32 | 3,
                                       pi if attr == SmpAttr.PORT_INFO else b"",
                                       initial_path=(0, 4, 3), hop_pointer=2,
                                       mkey=0x1234 if setup & 2 else 0)
                    fast, general = both_paths(_dr(mad), at, in_port, setup)
                    assert fast == general, (setup, at, method, attr)


def test_an_sma_with_a_mad_delay_answers_late() -> None:
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, 4, 3),
                       hop_pointer=2)
    fast, general = both_paths(_dr(mad), "sw-2", 3, setup=1)
    assert fast == general and fast[1][0] > 0  # sent from the timer, not on arrival


def both_sends(mad: bytes, at: str, port_num: int, dlid: int) -> tuple[Any, Any]:
    """(state after ``MadAgent.send``, state after its general path) from a fresh agent."""
    results = []
    for general in (False, True):
        fabric, tap, queues = _fabric(0)
        agent = fabric.open_mad_agent(at, port_num, MgmtClass.SUBN_DIRECTED_ROUTE)
        try:
            tid: Any = (agent._send(mad, dlid, None, None, None, 0) if general
                        else agent.send(mad, dlid=dlid))
        except (DecodeError, ValueError) as e:
            tid = type(e).__name__
        results.append((tid, _state(fabric, tap, [*queues, agent])))
    return results[0], results[1]


@settings(max_examples=300, deadline=None)
@given(mad=dr_smps(), at=st.sampled_from(["sw-2", "hca-3"]),
       dlid=st.sampled_from([PERMISSIVE, 2]), cut=st.integers(0, 9))
def test_an_agent_sends_dr_smps_as_the_general_path_does(mad: bytes, at: str, dlid: int,
                                                         cut: int) -> None:
    if cut == 0:
        mad = mad[:100]
    fast, general = both_sends(mad, at, 0 if at.startswith("sw") else 1, dlid)
    assert fast == general


def test_a_request_leaves_by_the_first_hop_of_its_path() -> None:
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 0x77, initial_path=(0, 4, 3))
    fast, general = both_sends(mad, "sw-2", 0, PERMISSIVE)
    assert fast == general
    tid, (packets, *_rest) = fast
    assert tid == 2 << 32 | 0x77  # the new agent is the node's second
    first = packets[0][28:]
    assert dr_hop_pointer(first) == 1 and first[8:16] == tid.to_bytes(8, "big")


def test_a_ca_sends_from_its_own_port_whatever_the_path_says() -> None:
    for first in (0, 1, 4):
        mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, first, 3))
        fast, general = both_sends(mad, "hca-3", 1, PERMISSIVE)
        assert fast == general
        assert fast[1][0] and not fast[1][2]["hca-3"]  # sent, nothing dropped at the CA
