"""Table attributes (P_KeyTable, GUIDInfo, MulticastForwardingTable) read back the entries
they were built from, whatever the values: the block is unpacked whole, big-endian, entry 0
first (IBA 14.2.5.5, 14.2.5.7, 14.2.5.11)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.smp import GuidInfo, MftBlock, PKeyTable


@given(st.lists(st.integers(0, 0xFFFF), max_size=32))
def test_pkey_entries_round_trip(entries: list[int]) -> None:
    table = PKeyTable.decode(PKeyTable.from_entries(entries).encode())
    assert table.entries == tuple(entries) + (0,) * (32 - len(entries))
    assert table.entries[0] == (int.from_bytes(table.pkey_block[:2], "big"))


@given(st.lists(st.integers(0, 2**64 - 1), max_size=8))
def test_guids_round_trip(guids: list[int]) -> None:
    info = GuidInfo.decode(GuidInfo.from_guids(guids).encode())
    assert info.guids == tuple(guids) + (0,) * (8 - len(guids))


@given(st.lists(st.integers(0, 0xFFFF), min_size=32, max_size=32))
def test_mft_masks_round_trip(masks: list[int]) -> None:
    block = MftBlock.decode(MftBlock.from_masks(masks).encode())
    assert block.masks == tuple(masks)
    assert block.port_mask_block[62:] == masks[31].to_bytes(2, "big")
