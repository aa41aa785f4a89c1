"""PerfMgt counters: layouts, the ibsim PMA vector, saturation and Set semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.errors import EncodeError
from ipoib.wire.mad import (
    GMP_DATA_SIZE,
    Gmp,
    Method,
    MgmtClass,
    build_gmp,
    gmp_data,
    mad_tid,
    make_response,
    with_header,
)
from ipoib.wire.pma import (
    ALL_PORTS,
    CounterSelect,
    CounterSelectExt,
    PerfMgtAttr,
    PmaCap,
    PortCounters,
    PortCountersExtended,
    counters_from_extended,
    saturating_add,
)
from tests.wire.client_exchange import read_exchanges
from tests.wire.records import decoded_or_refused


def test_ids_and_capabilities() -> None:
    assert (PerfMgtAttr.CLASS_PORT_INFO, PerfMgtAttr.PORT_SAMPLES_CONTROL,
            PerfMgtAttr.PORT_SAMPLES_RESULT, PerfMgtAttr.PORT_COUNTERS,
            PerfMgtAttr.PORT_COUNTERS_EXTENDED) == (0x01, 0x10, 0x11, 0x12, 0x1D)
    assert (PmaCap.ALL_PORT_SELECT, PmaCap.EXT_WIDTH, PmaCap.XMIT_WAIT) == (
        0x100, 0x200, 0x1000)
    assert ALL_PORTS == 0xFF


def test_port_counters_layout() -> None:
    # one distinct value per field, checked against Linux ib_pma.h / libibmad offsets
    pc = PortCounters(
        port_select=1, counter_select=0xFFFF, symbol_error_counter=0x0203,
        link_error_recovery_counter=4, link_downed_counter=5, port_rcv_errors=0x0607,
        port_rcv_remote_physical_errors=0x0809, port_rcv_switch_relay_errors=0x0A0B,
        port_xmit_discards=0x0C0D, port_xmit_constraint_errors=0x0E,
        port_rcv_constraint_errors=0x0F, counter_select2=0x10, local_link_integrity_errors=1,
        excessive_buffer_overrun_errors=2, qp1_dropped=0x1415, vl15_dropped=0x1617,
        port_xmit_data=0x18191A1B, port_rcv_data=0x1C1D1E1F, port_xmit_pkts=0x20212223,
        port_rcv_pkts=0x24252627, port_xmit_wait=0x28292A2B,
    )
    assert pc.encode().hex() == (
        "0001ffff" "0203" "04" "05" "0607" "0809" "0a0b" "0c0d" "0e" "0f" "10" "12" "1415"
        "1617" "18191a1b" "1c1d1e1f" "20212223" "24252627" "28292a2b")
    assert PortCounters.decode(pc.encode()) == pc


def test_port_counters_extended_layout() -> None:
    ext = PortCountersExtended(port_select=2, counter_select=0xFF, counter_select2=0xAABBCCDD,
                               port_xmit_data=1, port_multicast_rcv_pkts=8,
                               symbol_error_counter=9, qp1_dropped=22)
    b = ext.encode()
    assert len(b) == 184 <= GMP_DATA_SIZE
    assert b[:8].hex() == "000200ff" "aabbccdd"
    assert int.from_bytes(b[8:16], "big") == 1 and int.from_bytes(b[64:72], "big") == 8
    assert int.from_bytes(b[72:80], "big") == 9 and int.from_bytes(b[176:184], "big") == 22


def test_counter_select_bits_follow_the_field_order() -> None:
    assert (CounterSelect.SYMBOL_ERROR, CounterSelect.PORT_XMIT_DISCARDS,
            CounterSelect.LOCAL_LINK_INTEGRITY_ERRORS, CounterSelect.VL15_DROPPED,
            CounterSelect.PORT_RCV_PKTS) == (0x1, 0x40, 0x200, 0x800, 0x8000)
    assert list(PortCounters.SELECT.values()) == [1 << i for i in range(16)]
    assert list(PortCountersExtended.SELECT.values()) == [1 << i for i in range(8)]
    assert int(CounterSelectExt.PORT_MULTICAST_RCV_PKTS) == 0x80


def test_ibsim_pma_answer(vectors_dir: Path) -> None:
    # client_exchange: PerfMgt Get(PortCounters) to LID 1 (Switch1) port 1, answered by ibsim
    _, exchanges = read_exchanges(vectors_dir / "client_exchange_hca3.txt")
    ex = next(e for e in exchanges if e.title.startswith("PerfMgt"))
    request = ex.request.ljust(256, b"\0")
    assert request == build_gmp(MgmtClass.PERF_MGMT, Method.GET, PerfMgtAttr.PORT_COUNTERS, 0,
                                mad_tid(request), PortCounters(port_select=1).encode())
    reply = Gmp.decode(ex.reply)
    assert reply.header.method == Method.GET_RESP and reply.header.class_version == 1
    pc = PortCounters.decode(reply.data)
    assert pc.port_select == 1
    assert (pc.port_xmit_data, pc.port_rcv_data, pc.port_xmit_pkts, pc.port_rcv_pkts) == (
        0x750, 0x750, 0x1A, 0x1A)
    # ibsim adds 72 dwords per MAD packet (ibsim-protocol.md §10)
    assert pc.port_xmit_data == 72 * pc.port_xmit_pkts
    assert pc.replace(port_xmit_data=0, port_rcv_data=0, port_xmit_pkts=0,
                      port_rcv_pkts=0) == PortCounters(port_select=1)
    assert gmp_data(ex.reply) == pc.encode().ljust(GMP_DATA_SIZE, b"\0")
    ours = make_response(with_header(request, tid=reply.header.tid), pc.encode())
    assert ours == ex.reply


def test_saturation() -> None:
    pc = PortCounters(port_rcv_errors=0xFFF0, local_link_integrity_errors=14)
    pc = pc.add(port_rcv_errors=0x100, local_link_integrity_errors=5, link_downed_counter=300,
                port_xmit_data=1 << 40)
    assert pc.port_rcv_errors == 0xFFFF  # 16 bits, pegged
    assert pc.local_link_integrity_errors == 15  # a 4-bit counter
    assert pc.link_downed_counter == 255 and pc.port_xmit_data == 0xFFFFFFFF
    assert pc.add(port_rcv_errors=1).port_rcv_errors == 0xFFFF  # stays there
    assert PortCounters.counter_max("vl15_dropped") == 0xFFFF
    assert saturating_add(2, -5, 8) == 0
    with pytest.raises(EncodeError):
        pc.add(counter_select=1)
    with pytest.raises(EncodeError):
        pc.add(no_such_counter=1)


def test_set_resets_only_the_selected_counters() -> None:
    pc = PortCounters(symbol_error_counter=5, port_rcv_errors=6, port_xmit_data=7,
                      port_rcv_pkts=8)
    request = PortCounters(port_select=1,
                           counter_select=CounterSelect.PORT_RCV_ERRORS
                           | CounterSelect.PORT_XMIT_DATA)
    after = pc.apply_set(request)
    assert (after.symbol_error_counter, after.port_rcv_errors, after.port_xmit_data,
            after.port_rcv_pkts) == (5, 0, 0, 8)
    assert pc.apply_set(PortCounters(counter_select=0xFFFF)) == PortCounters()


def test_extended_counters_narrowed_for_a_port_counters_get() -> None:
    ext = PortCountersExtended(port_xmit_data=1 << 40, port_rcv_pkts=10, vl15_dropped=1 << 20,
                               port_xmit_wait=3)
    pc = counters_from_extended(ext, port_select=4)
    assert (pc.port_select, pc.port_xmit_data, pc.port_rcv_pkts, pc.vl15_dropped,
            pc.port_xmit_wait) == (4, 0xFFFFFFFF, 10, 0xFFFF, 3)


@pytest.mark.parametrize("cls", [PortCounters, PortCountersExtended], ids=lambda c: c.NAME)
@given(data=st.data())
def test_decode_any_bytes_or_raise_decode_error(cls: type[PortCounters],
                                                data: st.DataObject) -> None:
    decoded_or_refused(cls, data.draw(st.binary(max_size=cls.SIZE + 8)))


@given(start=st.integers(0, 0xFFFF), deltas=st.lists(st.integers(0, 1 << 20), max_size=5))
def test_counters_never_wrap(start: int, deltas: list[int]) -> None:
    pc = PortCounters(port_rcv_errors=start)
    last = start
    for d in deltas:
        pc = pc.add(port_rcv_errors=d)
        assert last <= pc.port_rcv_errors <= 0xFFFF
        last = pc.port_rcv_errors
    assert pc.port_rcv_errors == min(start + sum(deltas), 0xFFFF)
