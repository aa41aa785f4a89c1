"""The SA front door: what is dropped, what gets a status, and that nothing crashes it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipoib.fabric import netfile
from ipoib.sm.manager import SubnetManager
from ipoib.sm.sa.server import CPI_CAPABILITY_MASK2
from ipoib.sm.transactions import MadAddr
from ipoib.wire.mad import ClassPortInfo, MadStatus, Method, RmppType, SaMad, build_sa_mad
from ipoib.wire.sa import NodeRecord, PathRecord, SaAttr

from .bringup import NET_EXAMPLES, bring_up

HCA2 = MadAddr(slid=4, src_qp=1, pkey=0xFFFF)


@pytest.fixture(scope="module")
def sm() -> SubnetManager:
    _fabric, binding = bring_up(netfile.load(NET_EXAMPLES / "net.2sw2path4hca"))
    return binding.sm


def _ask(sm: SubnetManager, mad: bytes, addr: MadAddr = HCA2) -> list[SaMad]:
    sm.receive(mad, addr, sm.now)
    return [SaMad.decode(o.mad) for o in sm.drain() if o.mad[1] == 3]


def test_class_port_info_advertises_send_only_full_members(sm: SubnetManager) -> None:
    (resp,) = _ask(sm, build_sa_mad(Method.GET, SaAttr.CLASS_PORT_INFO, 1))
    cpi = ClassPortInfo.decode(resp.data)
    assert cpi.capability_mask2 == CPI_CAPABILITY_MASK2 and cpi.capability_mask2 & 1 << 12
    assert (cpi.capability_mask, cpi.resp_time_value, cpi.redirect_qp) == (0x2602, 0x10, 1)
    (resp,) = _ask(sm, build_sa_mad(Method.SET, SaAttr.CLASS_PORT_INFO, 2))
    assert resp.header.status == MadStatus.METHOD_ATTR_UNSUPPORTED


@pytest.mark.parametrize(("mad", "reason"), [
    (build_sa_mad(Method.GET, SaAttr.NODE_RECORD, 3, class_version=1), "bad_class_version"),
    (build_sa_mad(Method.GET, SaAttr.NODE_RECORD, 3, sm_key=0x99), "bad_sm_key"),
    (build_sa_mad(Method.SEND, SaAttr.NODE_RECORD, 3), "unsupported_method"),
    (build_sa_mad(Method.GET_RESP, SaAttr.NODE_RECORD, 3), "unexpected_response"),
    (build_sa_mad(Method.GET, 0x0777, 3), "unsupported_attribute"),
    (b"\x01\x03\x02\x01" + bytes(20), "malformed"),
])
def test_dropped_requests_are_counted_not_answered(sm: SubnetManager, mad: bytes,
                                                   reason: str) -> None:
    before = sm.sa.drops[reason]
    assert _ask(sm, mad) == []
    assert sm.sa.drops[reason] == before + 1


def test_unknown_requester_is_dropped(sm: SubnetManager) -> None:
    mad = build_sa_mad(Method.GET, SaAttr.NODE_RECORD, 3, NodeRecord(lid=4).encode(),
                       component_mask=1)
    assert _ask(sm, mad, MadAddr(slid=77, src_qp=1)) == []
    assert sm.sa.drops["unknown_requester"] >= 1


def test_attributes_opensm_serves_get_unsupported_here(sm: SubnetManager) -> None:
    (resp,) = _ask(sm, build_sa_mad(Method.GET_TABLE, SaAttr.LINK_RECORD, 5))
    assert resp.header.method == Method.GET_TABLE_RESP
    assert resp.header.status == MadStatus.METHOD_ATTR_UNSUPPORTED
    assert resp.sa.attribute_offset == 0


def test_report_resp_is_retired(sm: SubnetManager) -> None:
    assert _ask(sm, build_sa_mad(Method.REPORT_RESP, SaAttr.NOTICE, 6)) == []
    assert sm.sa.stats["report_resp"] >= 1


def test_no_answers_before_the_subnet_is_up() -> None:
    fresh = SubnetManager()
    fresh.receive(build_sa_mad(Method.GET, SaAttr.CLASS_PORT_INFO, 1), HCA2, 0.0)
    assert fresh.drain() == [] and fresh.drops["sa_not_master"] == 1


def test_error_answers_echo_the_request(sm: SubnetManager) -> None:
    req = PathRecord(dlid=999, slid=4)
    mad = build_sa_mad(Method.GET, SaAttr.PATH_RECORD, 0x42, req.encode(), component_mask=0x30,
                       sm_key=1)
    (resp,) = _ask(sm, mad)
    assert resp.header.status == 0x0300 and resp.header.tid == 0x42
    assert resp.sa.sm_key == 0 and resp.sa.component_mask == 0x30
    assert resp.data[:64] == req.encode()


SA_ATTRS = st.sampled_from([a.value for a in SaAttr] + [0, 0x1234])
SA_METHODS = st.sampled_from([m.value for m in Method] + [0, 0x7F, 0xFF])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=SA_METHODS, attr=SA_ATTRS, mask=st.integers(0, 2**64 - 1),
       body=st.binary(min_size=0, max_size=200), key=st.sampled_from([0, 1, 2]),
       rmpp=st.binary(min_size=12, max_size=12), slid=st.sampled_from([1, 2, 4, 5, 9]))
def test_random_sa_requests_never_crash(sm: SubnetManager, method: int, attr: int, mask: int,
                                        body: bytes, key: int, rmpp: bytes, slid: int) -> None:
    mad = bytearray(build_sa_mad(method, attr, 7, body, component_mask=mask, sm_key=key))
    mad[24:36] = rmpp
    for out in _ask(sm, bytes(mad), MadAddr(slid=slid, src_qp=1)):
        assert out.header.method & 0x80 or out.rmpp.rmpp_flags & 1
        if out.rmpp.rmpp_type in (RmppType.ACK, RmppType.STOP, RmppType.ABORT):
            continue  # RMPP control MADs echo the segment's header, SM_Key included (Linux)
        assert out.sa.sm_key == 0


def test_a_segment_of_an_unknown_rmpp_version_is_aborted(sm: SubnetManager) -> None:
    mad = bytearray(build_sa_mad(Method.GET, SaAttr.CLASS_PORT_INFO, 0x77, b"", sm_key=1))
    mad[24:28] = bytes([0, RmppType.DATA, 1, 0])  # RMPPVersion 0, DATA, Active
    (out,) = _ask(sm, bytes(mad), MadAddr(slid=1, src_qp=1))
    assert out.rmpp.rmpp_type == RmppType.ABORT and out.header.tid == 0x77


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=300), st.integers(0, 0xFFFF))
def test_random_bytes_to_the_sm_never_crash(sm: SubnetManager, raw: bytes, slid: int) -> None:
    sm.receive(raw, MadAddr(slid=slid, src_qp=1), sm.now)
    for out in sm.drain():
        assert len(out.mad) == 256


SERVED = st.sampled_from([SaAttr.PATH_RECORD, SaAttr.MC_MEMBER_RECORD, SaAttr.NODE_RECORD,
                          SaAttr.PORT_INFO_RECORD, SaAttr.CLASS_PORT_INFO])
VERBS = st.sampled_from([Method.GET, Method.GET_TABLE, Method.SET, Method.DELETE])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=VERBS, attr=SERVED, mask=st.one_of(st.integers(0, 2**64 - 1),
                                                 st.integers(0, 0x3FFFF)),
       body=st.binary(min_size=0, max_size=200), key=st.sampled_from([0, 1]))
def test_random_records_to_served_attributes_get_answers(
        sm: SubnetManager, method: int, attr: int, mask: int, body: bytes, key: int) -> None:
    mad = build_sa_mad(method, attr, 9, body, component_mask=mask, sm_key=key)
    outs = _ask(sm, mad)
    assert len(outs) <= 1 or attr != SaAttr.CLASS_PORT_INFO
    for out in outs:
        assert out.header.tid == 9 and out.header.attr_id == attr


def test_a_request_in_rmpp_segments_is_reassembled_then_answered(sm: SubnetManager) -> None:
    from ipoib.mad.rmpp import RmppSender
    from ipoib.wire.mad import MadHeader, MgmtClass, SaHeader

    sender = RmppSender()
    header = MadHeader(mgmt_class=MgmtClass.SUBN_ADM, class_version=2, method=Method.GET_TABLE,
                       tid=0x5151, attr_id=SaAttr.NODE_RECORD)
    body = NodeRecord(lid=4).encode().ljust(300, b"\0")  # one record, padded past one MAD
    step = sender.start((1, 1), header, SaHeader(component_mask=1), body, sm.now)
    answers: list[SaMad] = []
    pending = [o.mad for o in step.send]
    for _ in range(10):
        if not pending:
            break
        mad = pending.pop(0)
        sm.receive(mad, HCA2, sm.now)
        for out in sm.drain():
            reply = SaMad.decode(out.mad)
            if reply.rmpp.rmpp_type == 2:  # the SA's ACK for our segments
                pending += [o.mad for o in sender.receive((1, 1), out.mad, sm.now).send]
            else:
                answers.append(reply)
    (answer,) = answers
    assert answer.header.method == Method.GET_TABLE_RESP and answer.header.tid == 0x5151
    assert NodeRecord.decode(answer.data).node_description == "Hca2"
