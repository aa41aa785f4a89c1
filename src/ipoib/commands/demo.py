"""``ipoib demo``: the main job that ``make demo`` runs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    p = sub.add_parser("demo", help="run the demonstration (what `make demo` does)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Placeholder until the wire-level demo lands."""
    print("ipoib demo: nothing to show yet")
    return 0
