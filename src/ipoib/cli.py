"""The ``ipoib`` command line.

Each command group lives in its own module under :mod:`ipoib.commands` and exports
``register(subparsers)``, which adds its parser and sets ``func`` to a handler taking the
parsed arguments and returning an exit code. Errors a user can cause are one readable line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .wire.errors import WireError

COMMAND_MODULES = (
    "ipoib.commands.demo",
    "ipoib.commands.host",
    "ipoib.commands.topo",
    "ipoib.commands.sweep",
    "ipoib.commands.diag",
)


class CliError(Exception):
    """An error to report to the user as one line, with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="ipoib", description="IP over InfiniBand on a simulated InfiniBand subnet."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipoib`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `ipoib show ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except (CliError, WireError, OSError) as e:
        print(f"ipoib: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
