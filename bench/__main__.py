"""``python -m bench [names...]``: run the benchmark modules and print their figures.

Every ``bench/bench_<name>.py`` exposes ``run() -> list[Result]``. With no names all of them
run; a name selects ``bench_<name>`` (``wire`` or ``bench_wire``). ``--list`` shows what
exists. Benchmarks never decide pass or fail; they report (see bench/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "bench" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Result, format_table

PREFIX = "bench_"


def available() -> list[str]:
    """The benchmark module names (without the ``bench_`` prefix), sorted."""
    here = Path(__file__).resolve().parent
    return sorted(m.name[len(PREFIX):] for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith(PREFIX))


def run_module(name: str) -> list[Result]:
    """Import ``bench.bench_<name>`` and return what its ``run()`` measured."""
    mod = importlib.import_module(f"bench.{PREFIX}{name}")
    results: list[Result] = mod.run()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the selected modules, print one table per module."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="modules to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    args = parser.parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = []
    for n in args.names or names:
        short = n.removeprefix(PREFIX).removesuffix(".py")
        if short not in names:
            print(f"bench: no module bench_{short} (have: {', '.join(names)})", file=sys.stderr)
            return 2
        chosen.append(short)
    print(f"python {sys.version.split()[0]} on {sys.platform}; best of several repeats, "
          "ratios against a baseline measured in the same run")
    for name in chosen:
        start = time.perf_counter()
        results = run_module(name)
        took = time.perf_counter() - start
        print(f"\n== {PREFIX}{name} ({took:.1f} s)")
        print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
