"""SMP transactions: what goes out is the wire builder's DR SMP, the same bytes on a retry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.sm.transactions import OutMad, SmpTransactions
from ipoib.wire.mad import MAX_HOP_COUNT, build_dr_smp


@settings(max_examples=100)
@given(method=st.sampled_from([1, 2]), attr=st.integers(0, 0xFFFF),
       attr_mod=st.integers(0, 0xFFFF_FFFF),
       path=st.lists(st.integers(0, 255), max_size=MAX_HOP_COUNT),
       data=st.none() | st.binary(max_size=64), tid_base=st.integers(1, 0xFFFF_FFFF))
def test_a_request_is_the_wire_builders_smp_and_a_retry_repeats_it(
        method: int, attr: int, attr_mod: int, path: list[int], data: bytes | None,
        tid_base: int) -> None:
    out: list[OutMad] = []
    tx = SmpTransactions(out, tid_base=tid_base, timeout=1.0, retries=1)
    tx.request(method, attr, attr_mod, tuple(path), data, lambda *_: None)
    tx.handle_timer(5.0)  # overdue: sent again
    want = build_dr_smp(method, attr, attr_mod, tid_base, data or b"",
                        initial_path=(0, *path), hop_count=len(path))
    assert [o.mad for o in out] == [want, want]
    assert all(o.directed and o.dlid == 0xFFFF and o.dest_qp == 0 for o in out)


def test_a_request_refuses_data_or_paths_an_smp_cannot_carry() -> None:
    tx = SmpTransactions([])
    with pytest.raises(ValueError, match="64 bytes"):
        tx.request(1, 0x15, 0, (1,), bytes(65), lambda *_: None)
    with pytest.raises(ValueError, match="hops"):
        tx.request(1, 0x15, 0, (1,) * (MAX_HOP_COUNT + 1), None, lambda *_: None)
    assert tx.idle
