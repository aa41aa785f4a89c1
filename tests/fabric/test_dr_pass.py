"""A switch passes directed-route SMPs on by patching the packet (``agents._dr_pass``); that
shortcut must do exactly what the general path (full UD checks, ``sma.dr_receive``,
``dr_act``) does with the same packet: same packets on the same links afterwards, same drops,
same answers. Two identical fabrics receive the same packet, one through each path."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import Fabric, agents
from ipoib.fabric.topogen import line
from ipoib.wire.errors import DecodeError
from ipoib.wire.ib import build_ud, check_ud
from ipoib.wire.mad import Method, build_dr_smp, dr_hop_pointer, dr_return_path, make_response
from ipoib.wire.smp import SmpAttr

TOPO = line(4, 2)  # sw-2 has HCAs on ports 1-2, sw-1 on port 3, sw-3 on port 4
PERMISSIVE = 0xFFFF


class Tap:
    """Every packet leaving any port, in order."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def write_ib(self, now: float, pkt: bytes) -> None:
        self.packets.append(bytes(pkt))


def _fabric() -> tuple[Fabric, Tap]:
    fabric = Fabric(TOPO)
    tap = Tap()
    fabric.capture(tap)  # type: ignore[arg-type]
    return fabric, tap


def _state(fabric: Fabric, tap: Tap) -> Any:
    fabric.process(fabric.now + 1)
    return (tap.packets,
            {n.name: +n.all_drops() for n in fabric.nodes.values()},
            [(p.xmit_pkts, p.rcv_pkts) for n in fabric.nodes.values() for p in n.ports])


def both_paths(pkt: bytes, in_port: int, at: str = "sw-2") -> tuple[Any, Any]:
    """(state after the shortcut-enabled receive, state after the general path)."""
    fast, fast_tap = _fabric()
    sw = fast.node(at)
    agents.receive(fast, sw, sw.ports[0], pkt, in_port)
    slow, slow_tap = _fabric()
    sw = slow.node(at)
    try:
        off = check_ud(pkt)
    except DecodeError:
        sw.ports[0].drops["malformed"] += 1
    else:
        agents.receive_checked(slow, sw, sw.ports[0], pkt, off, in_port)
    return _state(fast, fast_tap), _state(slow, slow_tap)


def _dr(mad: bytes, dlid: int = PERMISSIVE, slid: int = PERMISSIVE, **kw: Any) -> bytes:
    args: dict[str, Any] = dict(vl=15, sl=0, dlid=dlid, slid=slid, pkey=0xFFFF, dest_qp=0,
                                qkey=0, src_qp=0, payload=mad)
    args.update(kw)
    return build_ud(**args)


@st.composite
def dr_smps(draw: st.DrawFn) -> bytes:
    hc = draw(st.integers(0, 66))
    hp = draw(st.integers(0, min(hc + 2, 255)))
    mad = bytearray(build_dr_smp(
        draw(st.sampled_from([Method.GET, Method.SET, Method.GET_RESP])),
        draw(st.sampled_from([SmpAttr.NODE_INFO, SmpAttr.PORT_INFO, 0x7777])),
        draw(st.integers(0, 5)), draw(st.integers(0, 1 << 63)),
        initial_path=(0,), hop_count=min(hc, 63), hop_pointer=hp,
        direction=draw(st.integers(0, 1)),
        dr_slid=draw(st.sampled_from([PERMISSIVE, PERMISSIVE, 3])),
        dr_dlid=draw(st.sampled_from([PERMISSIVE, PERMISSIVE, 5]))))
    mad[7] = hc
    mad[128:256] = draw(st.binary(min_size=128, max_size=128).map(
        lambda b: bytes(x % 6 for x in b)))  # ports 0..5: some valid, some not
    if draw(st.integers(0, 9)) == 0:
        mad[0] = draw(st.sampled_from([0, 2]))
    if draw(st.integers(0, 9)) == 0:
        mad[1] = 0x01
    return bytes(mad)


@settings(max_examples=400, deadline=None)
@given(mad=dr_smps(), in_port=st.integers(0, 5),
       variant=st.integers(0, 7))
def test_a_switch_passes_dr_smps_as_the_general_path_does(mad: bytes, in_port: int,
                                                          variant: int) -> None:
    if variant == 1:
        pkt = _dr(mad, slid=7)
    elif variant == 2:
        pkt = _dr(mad, dlid=9)
    elif variant == 3:
        pkt = _dr(mad, pkey=0x7FFF)
    elif variant == 4:
        pkt = _dr(mad[:200])
    elif variant == 5:
        pkt = _dr(mad) + b"\0\0\0\0"
    elif variant == 6:
        pkt = _dr(mad, sl=3)
    else:
        pkt = _dr(mad)
    fast, slow = both_paths(pkt, in_port)
    assert fast == slow


def test_an_outbound_hop_records_the_ingress_port_and_moves_on() -> None:
    # sw-1 port 3 -> sw-2, then out of sw-2 port 4 to sw-3, which answers
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1, initial_path=(0, 3, 4),
                       hop_pointer=1)
    fabric, tap = _fabric()
    sw = fabric.node("sw-2")
    agents.receive(fabric, sw, sw.ports[0], _dr(mad), 3)
    fabric.process(1.0)
    first = tap.packets[0]
    assert sw.ports[4].xmit_pkts >= 1 and first[28:] != mad
    assert dr_hop_pointer(first[28:]) == 2 and dr_return_path(first[28:])[1] == 3
    # the answer from sw-3 came back through sw-2 and left towards sw-1 with HopPointer 1
    answers = [p[28:] for p in tap.packets if p[28 + 4] & 0x80]
    assert answers and dr_hop_pointer(answers[-1]) == 1
    assert answers[-1][64:128] != bytes(64)  # NodeInfo data filled in by sw-3


def test_a_returning_hop_out_of_a_bad_port_is_discarded_and_counted() -> None:
    mad = bytearray(make_response(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1,
                                               initial_path=(0, 3, 4))))
    mad[6] = 2  # HopPointer: at the middle switch on the way back
    mad[192 + 1] = 9  # ReturnPath[1]: a port sw-2 does not have
    fast, slow = both_paths(_dr(bytes(mad)), 4)
    assert fast == slow
    assert fast[1]["sw-2"]["dr_discard"] == 1 and not fast[0]
