"""Interface counters: ethtool -S order, totals derived from the named drop reasons."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.netdev import counters as counters_mod
from ipoib.netdev.counters import DROP_REASONS, ETHTOOL_STATS, Counters


def test_ethtool_order_is_linux_order() -> None:
    assert ETHTOOL_STATS == ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "tx_errors",
                             "rx_dropped", "tx_dropped", "multicast")
    c = Counters()
    c.rx_packets, c.tx_packets, c.rx_bytes, c.tx_bytes, c.multicast = 1, 2, 30, 40, 5
    c.drop("tx_queue_full", 3)
    c.drop("rx_malformed")
    c.drop("tx_post_failed")
    c.drop("mad_unknown_tid", 7)  # management traffic: in neither total
    assert c.ethtool() == {"rx_packets": 1, "tx_packets": 2, "rx_bytes": 30, "tx_bytes": 40,
                           "tx_errors": 1, "rx_dropped": 1, "tx_dropped": 4, "multicast": 5}
    assert c.format_ethtool().splitlines()[:3] == [
        "NIC statistics:", "     rx_packets: 1", "     tx_packets: 2"]
    assert "     drop_tx_queue_full: 3" in c.format_ethtool()


def test_unknown_reason_is_refused_and_zero_is_ignored() -> None:
    c = Counters()
    with pytest.raises(KeyError):
        c.drop("tx_because")
    c.drop("tx_flushed", 0)
    assert c.drops == {} and c.tx_dropped == 0


def test_every_reason_is_documented() -> None:
    source = Path(counters_mod.__file__).with_name("counters.py")  # compiled: a .so beside it
    doc = ast.get_docstring(ast.parse(source.read_text()))
    assert doc is not None
    for reason in DROP_REASONS:
        assert f"\n{reason} " in doc, reason
        assert reason.split("_", 1)[0] in ("tx", "rx", "mad")


@given(st.lists(st.tuples(st.sampled_from(sorted(DROP_REASONS)), st.integers(0, 50))))
def test_totals_are_the_sums_of_their_reasons(drops: list[tuple[str, int]]) -> None:
    c = Counters()
    for reason, n in drops:
        c.drop(reason, n)
    assert c.tx_dropped == sum(n for r, n in drops if r.startswith("tx_"))
    assert c.rx_dropped == sum(n for r, n in drops if r.startswith("rx_"))
    assert c.tx_errors == sum(n for r, n in drops if r in ("tx_too_long", "tx_post_failed"))
