"""The SMA packs PortInfo answers straight from the port (``sma.port_info_bytes``); the bytes,
or the error, must be those of the :class:`PortInfo` record ``sma.port_info`` builds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import Fabric, sma
from ipoib.fabric.topogen import line
from ipoib.wire.errors import EncodeError
from ipoib.wire.smp import NodeInfo, PortInfo

ATTRS = {
    "mkey": 64, "gid_prefix": 64, "lid": 16, "master_sm_lid": 16, "cap_mask": 32,
    "width_enabled": 8, "width_supported": 8, "width_active": 8, "speed_supported": 4,
    "state": 4, "phys": 4, "mkey_protect": 2, "lmc": 3, "speed_active": 4, "speed_enabled": 4,
    "neighbor_mtu": 4, "master_sm_sl": 4, "vl_cap": 4, "mtu_cap": 4, "hoq_life": 5,
    "op_vls": 4, "mkey_violations": 16, "pkey_violations": 16, "qkey_violations": 16,
    "subnet_timeout": 5, "resp_time": 5, "cap_mask2": 16, "speed_ext_active": 4,
    "speed_ext_supported": 4, "speed_ext_enabled": 5,
}
"""Port attribute -> the width of the PortInfo field it fills."""
EXTRA = {s.name: s.width for s in PortInfo.SLOTS} | {"lid": 16, "no_such_field": 8}


def _int(width: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << width) - 1) | st.sampled_from([1 << width, -1])


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except EncodeError as e:
        return "EncodeError", (e.field, e.reason)
    except TypeError:
        return "TypeError", None


@settings(max_examples=200)
@given(data=st.data())
def test_port_info_bytes_are_the_record_encoded(data: st.DataObject) -> None:
    fabric = Fabric(line(1, 1))
    node = fabric.node(data.draw(st.sampled_from(["sw-1", "hca-1"])))
    port = node.ports[data.draw(st.integers(0, node.nports))]
    for name in data.draw(st.lists(st.sampled_from(sorted(ATTRS)), unique=True)):
        setattr(port, name, data.draw(_int(ATTRS[name])))
    for name in data.draw(st.lists(st.sampled_from(sorted(EXTRA)), unique=True, max_size=6)):
        if name not in ("lid", "no_such_field") or data.draw(st.integers(0, 9)) == 0:
            port.extra[name] = data.draw(_int(EXTRA[name]))
    local = data.draw(st.integers(0, 300))
    if data.draw(st.booleans()):  # answered before: extra completed with the defaults
        _outcome(lambda: sma.port_info_bytes(port, local))
    if data.draw(st.booleans()):  # as many extra fields as the record's, one foreign
        port.extra.update({n: 0 for n in sma._PI_EXTRA}, no_such_field=1)
        del port.extra[data.draw(st.sampled_from(sma._PI_EXTRA))]
    assert _outcome(lambda: sma.port_info_bytes(port, local)) == _outcome(
        lambda: sma.port_info(port, local).encode())


def test_a_port_info_get_answers_the_live_port() -> None:
    fabric = Fabric(line(1, 1))
    port = fabric.port("hca-1", 1)
    port.lid, port.master_sm_lid = 7, 1
    port.extra["vl_high_limit"] = 3
    got = PortInfo.decode(sma.port_info_bytes(port, 1))
    assert (got.lid, got.master_sm_lid, got.vl_high_limit, got.local_port_num) == (7, 1, 3, 1)
    assert got == sma.port_info(port, 1)


def test_node_info_answers_name_the_node_and_the_ingress_port() -> None:
    fabric = Fabric(line(1, 1))
    for name, port in (("sw-1", 2), ("hca-1", 1)):
        node = fabric.node(name)
        inp = node.ports[port]
        status, data = sma._node_info(node, inp, 1, 0, bytes(64))
        want = NodeInfo(node_type=int(node.kind), num_ports=node.nports,
                        system_image_guid=node.sys_guid, node_guid=node.guid,
                        port_guid=node.guid if node.is_switch else inp.guid,
                        partition_cap=node.partition_cap, device_id=node.device_id,
                        revision=node.revision, local_port_num=port,
                        vendor_id=node.vendor_id)
        assert status == 0 and data == want.encode()


ECHOED = ("mkey_lease_period", "vl_high_limit", "vl_stall_count", "partition_enforcement_inbound",
          "partition_enforcement_outbound", "filter_raw_inbound", "filter_raw_outbound",
          "multicast_pkey_trap_suppression_enabled", "local_phy_errors", "overrun_errors",
          "init_type", "diag_code", "subnet_timeout", "hoq_life", "master_sm_lid",
          "master_sm_sl", "gid_prefix", "lid")


@settings(max_examples=100)
@given(data=st.data())
def test_a_port_info_set_is_echoed_field_by_field(data: st.DataObject) -> None:
    fabric = Fabric(line(1, 1))
    node = fabric.node(data.draw(st.sampled_from(["sw-1", "hca-1"])))
    num = 0 if node.is_switch else 1
    want = {n: data.draw(st.integers(0, PortInfo.BY_NAME[n].mask)) for n in ECHOED}
    want["lid"] %= 0xC000
    ldds = data.draw(st.integers(0, 15))
    request = PortInfo(**want, link_down_default_state=ldds, port_state=0).encode()
    status, answer = sma._port_info(node, node.ports[1], 2, num, request)
    got = PortInfo.decode(answer)
    assert status == 0
    assert {n: getattr(got, n) for n in ECHOED} == want
    assert got.link_down_default_state == (ldds or 2)  # 0 means "no change"


def _sma_fabric(mkey: int) -> Fabric:
    fabric = Fabric(line(2, 2))
    if mkey:
        p = fabric.port("hca-1", 1)
        p.mkey, p.mkey_protect = mkey, 2
    return fabric


@settings(max_examples=300, deadline=None)
@given(mad=st.binary(min_size=256, max_size=256), attr=st.sampled_from(
    [0x10, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1B, 0x20, 0x7777]),
       method=st.sampled_from([1, 2, 3, 0x81]), at=st.sampled_from(["sw-1", "hca-1"]),
       in_port=st.integers(0, 4), mkey=st.sampled_from([0, 7]), off=st.integers(0, 40))
def test_a_dr_smp_answered_in_place_is_the_answer_process_smp_gives(
        mad: bytes, attr: int, method: int, at: str, in_port: int, mkey: int,
        off: int) -> None:
    # whatever the reserved bits, paths and data hold: the same bytes, the same changes
    # to the node, or (-1) untouched bytes where process_smp would not answer
    raw = bytearray(mad)
    raw[0:4] = bytes((1, 0x81, 1, method))
    raw[16:18] = attr.to_bytes(2, "big")
    results = []
    for in_place in (True, False):
        fabric = _sma_fabric(mkey)
        node = fabric.node(at)
        buf = bytearray(off) + raw
        if in_place:
            r = sma.answer_dr(node, in_port, buf, off)
            got: Any = {1: bytes(buf[off:]), 0: sma.DISCARD, -1: None}[r]
            if r != 1:
                assert buf[off:] == raw  # untouched
        else:
            got = sma.process_smp(node, in_port, bytes(raw))
            if got is not None and got != sma.DISCARD and not (
                    attr in {a for a, _m in sma.HANDLERS} and method in (1, 2)):
                got = None  # an "unsupported" answer: answer_dr leaves it to process_smp
        tables = (bytes(node.lft[:128]), node.mft[:64], node.top) if node.is_switch else ()
        results.append((got, [sma.port_info_bytes(p, p.num) for p in node.ports],
                        +node.all_drops(), tables))
    assert results[0] == results[1]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), at=st.sampled_from(["sw-1", "hca-1"]), off=st.integers(0, 40))
def test_a_valid_port_info_set_answered_in_place_is_the_answer_process_smp_gives(
        data: st.DataObject, at: str, off: int) -> None:
    # random Sets an SMA accepts (most random bytes are refused): the fields an SM writes
    # within the port's capabilities, a state one step away, the port's own other fields
    fabric = _sma_fabric(0)
    node = fabric.node(at)
    in_port = 1
    num = data.draw(st.integers(0, node.nports)) if node.is_switch else 0
    target = node.ports[num if node.is_switch else in_port]
    rec = PortInfo.decode(sma.port_info_bytes(target, in_port))
    settable = {
        "lid": st.integers(0, 0xBFFF), "lmc": st.integers(0, 7),
        "master_sm_lid": st.integers(0, 0xBFFF), "master_sm_sl": st.integers(0, 15),
        "gid_prefix": st.integers(0, (1 << 64) - 1), "subnet_timeout": st.integers(0, 31),
        "hoq_life": st.integers(0, 31), "operational_vls": st.integers(0, rec.vl_cap),
        "neighbor_mtu": st.integers(0, rec.mtu_cap), "link_width_enabled": st.sampled_from(
            [0, 0xFF, 1, 3]), "link_speed_enabled": st.sampled_from([0, 0xF, 1, 3]),
        "port_state": st.sampled_from([0, 1, 2, 3]), "client_reregister": st.integers(0, 1),
        "link_down_default_state": st.integers(0, 2),
        "port_physical_state": st.sampled_from([0, 2]),
        **{n: st.integers(0, PortInfo.BY_NAME[n].mask) for n in sma._PI_STORED},
    }
    chosen = data.draw(st.lists(st.sampled_from(sorted(settable)), unique=True))
    request = rec.replace(**{n: data.draw(settable[n]) for n in chosen}).encode()
    mad = bytearray(256)
    mad[0:4] = bytes((1, 0x81, 1, 2))
    mad[7] = 1  # HopCount
    mad[16:18] = (0x15).to_bytes(2, "big")
    mad[20:24] = num.to_bytes(4, "big")
    mad[32:36] = b"\xff\xff\xff\xff"
    mad[64:128] = request
    results = []
    for in_place in (True, False):
        fabric = _sma_fabric(0)
        node = fabric.node(at)
        buf = bytearray(off) + mad
        if in_place:
            assert sma.answer_dr(node, in_port, buf, off) == 1
            got = bytes(buf[off:])
        else:
            answer = sma.process_smp(node, in_port, bytes(mad))
            assert isinstance(answer, bytes)
            got = answer
        results.append((got, [sma.port_info_bytes(p, p.num) for p in node.ports],
                        +node.all_drops(), dict(target.extra)))
    assert results[0] == results[1]
    if "port_state" not in chosen:  # the port's own state again: always a valid Set
        assert results[0][0][4:6] == b"\x80\x00"
