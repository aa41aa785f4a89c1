"""``ipoib topo``: generate and check topology files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``topo`` command group."""
    p = sub.add_parser("topo", help="generate and check topology files")
    p.set_defaults(func=lambda a: p.print_help() or 0)
