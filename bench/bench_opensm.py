"""OpenSM on our ibsim-protocol server against OpenSM on real ibsim, and our embedded SM.

One topology file per size (two-level fat trees of 648 and 1944 HCAs), three bring-ups, each
as :mod:`bench.bringup` measures it: OpenSM on real ibsim (the baseline), OpenSM on
``python -m ipoib.ibsim FILE --sm none``, and our embedded SM on the same file (the same
measure as ``bench sm``). Goals: OpenSM on ours ≤ 1.2× OpenSM on ibsim; embedded ≤ 0.5×
OpenSM on ibsim.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.bringup import embedded, missing, opensm_on_ibsim, opensm_on_ours
from bench.common import Result
from ipoib.fabric import netfile, topogen

SIZES = (648, 1944)


def _best(runs: int, measure: Callable[..., float], *args: object) -> tuple[float | None, str]:
    """The best of ``runs`` calls of ``measure(*args)``, or None and why it failed."""
    try:
        return min(measure(*args) for _ in range(runs)), ""
    except (RuntimeError, OSError, ValueError) as e:
        return None, str(e)


def run() -> list[Result]:
    """Per size: OpenSM on ours and our embedded SM, each against OpenSM on ibsim."""
    absent = missing()
    results: list[Result] = []
    for hcas in SIZES:
        topo = topogen.fat_tree(hcas)
        runs = 3 if hcas <= 648 else 2
        label = f"{hcas} HCAs ({len(topo.nodes)} nodes)"
        emb, why_emb = _best(runs, embedded, topo)
        if absent is not None:
            results.append(Result(f"embedded SM {label}", (emb or 0.0) * 1e3, "ms",
                                  note=why_emb or f"no OpenSM figures: {absent}"))
            continue
        with tempfile.TemporaryDirectory(prefix="ipoib-bench-opensm-") as tmp:
            work = Path(tmp)
            net = work / "fabric.net"
            net.write_text(netfile.dumps(topo))
            base, why_base = _best(runs, opensm_on_ibsim, topo, net, work)
            ours, why_ours = _best(runs, opensm_on_ours, net, work)
        name = "OpenSM on ibsim" if base is not None else None
        base_ms = None if base is None else base * 1e3
        results.append(Result(f"OpenSM on ibsim {label}", base_ms or 0.0, "ms",
                              note=f"failed: {why_base}" if base is None else ""))
        results.append(Result(f"OpenSM on ours {label}", (ours or 0.0) * 1e3, "ms", name,
                              base_ms, f"failed: {why_ours}" if ours is None
                              else "goal <= 1.2x"))
        results.append(Result(f"embedded SM {label}", (emb or 0.0) * 1e3, "ms", name,
                              base_ms, f"failed: {why_emb}" if emb is None
                              else "goal <= 0.5x"))
    return results
