"""``ipoib topo``: generate and check topology files.

``gen`` writes ibnetdiscover-format text that both ``ipoib`` and the real ibsim load with the
same GUIDs; ``check`` loads a file the way the fabric will and prints what it holds, or the
first problem as ``file:line: message`` (exit status 2), which editors can jump to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import CliError
from ..fabric import netfile, topogen
from ..fabric.topology import Topology
from ..wire.enums import NodeType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``topo`` command group."""
    p = sub.add_parser("topo", help="generate and check topology files")
    topo = p.add_subparsers(dest="topo_command", metavar="{gen,check,show}")
    topo.required = True

    gen = topo.add_parser("gen", help="generate a topology file")
    shapes = gen.add_subparsers(dest="shape", metavar="{fat-tree,line,ring}")
    shapes.required = True
    ft = shapes.add_parser("fat-tree", help="a 2- or 3-level fat tree sized by HCA count")
    ft.add_argument("--hcas", type=int, required=True, help="number of single-port HCAs")
    ft.add_argument("--levels", type=int, choices=(2, 3), default=2)
    ft.add_argument("--radix", type=int, default=None,
                    help="ports per switch (default: the smallest that fits)")
    ft.set_defaults(func=run_gen)
    for name, helptext in (("line", "switches in a chain"), ("ring", "switches in a ring")):
        sp = shapes.add_parser(name, help=f"{helptext}, each with its own HCAs")
        sp.add_argument("--switches", type=int, required=True)
        sp.add_argument("--hcas-per-switch", type=int, required=True)
        sp.set_defaults(func=run_gen)
    for sp in (ft, *(shapes.choices[n] for n in ("line", "ring"))):
        sp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    check = topo.add_parser("check", help="load a topology file and summarise it")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)

    show = topo.add_parser("show", help="draw a topology (graphviz)")
    show.add_argument("file", metavar="TOPOLOGY")
    show.add_argument("--svg", metavar="FILE", help="write an SVG picture here")
    show.add_argument("--dot", metavar="FILE", help="write the graphviz source here")
    show.add_argument("--lids", action="store_true",
                      help="bring the subnet up with the embedded SM and show the LIDs")
    show.set_defaults(func=run_show)


def run_gen(args: argparse.Namespace) -> int:
    """Generate the requested shape and write it as a topology file."""
    try:
        if args.shape == "fat-tree":
            topo = topogen.fat_tree(args.hcas, args.levels, args.radix)
        elif args.shape == "line":
            topo = topogen.line(args.switches, args.hcas_per_switch)
        else:
            topo = topogen.ring(args.switches, args.hcas_per_switch)
    except ValueError as e:
        raise CliError(str(e)) from None
    text = netfile.dumps(topo)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}: {len(topo.switches)} switches, {len(topo.cas)} HCAs, "
              f"{len(topo.links)} links", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Load ``FILE``; print a summary, or its first error as ``file:line: message``."""
    try:
        topo = netfile.load(args.file)
    except netfile.TopologyError as e:
        print(e, file=sys.stderr)
        return 2
    print("\n".join(summary(topo)))
    return 0


def _range(guids: list[int]) -> str:
    return f"{min(guids):#018x} .. {max(guids):#018x}" if guids else "-"


def summary(topo: Topology) -> list[str]:
    """A one-screen description of ``topo``: counts, cabling, GUID ranges, radix, LIDs."""
    routers = [n for n in topo.nodes if n.kind == NodeType.ROUTER]
    total = sum(n.nports for n in topo.nodes)
    radix = max((n.nports for n in topo.switches), default=0)
    lids = sorted(lid for n in topo.nodes for lid in n.lids.values())
    kind_rows = (("switch", topo.switches), ("CA", topo.cas), ("router", routers))
    lines = [
        f"{topo.source}: ok",
        f"  switches   {len(topo.switches)}",
        f"  HCAs       {len(topo.cas)}",
        f"  routers    {len(routers)}",
        f"  links      {len(topo.links)}",
        f"  ports      {2 * len(topo.links)} cabled of {total}",
        f"  max radix  {radix}" if topo.switches else "  max radix  - (no switches)",
    ]
    for label, nodes in kind_rows:
        if nodes:
            lines.append(f"  {label + ' node GUIDs':<18} {_range([n.node_guid for n in nodes])}")
    ca_ports = [g for n in topo.cas for g in n.port_guids]
    if ca_ports:
        lines.append(f"  {'CA port GUIDs':<18} {_range(ca_ports)}")
    lines.append(f"  LIDs       {len(lids)} pre-assigned ({lids[0]}..{lids[-1]})" if lids
                 else "  LIDs       none pre-assigned (the SM assigns them)")
    return lines


def run_show(args: argparse.Namespace) -> int:
    """Draw the fabric: DOT text to --dot or stdout, an SVG through graphviz to --svg."""
    import shutil
    import subprocess

    from ..fabric.dot import to_dot

    try:
        topology = netfile.load(args.file)
    except netfile.TopologyError as e:
        print(e, file=sys.stderr)
        return 2
    lids = None
    if args.lids:
        from ..fabric.fabric import Fabric
        from ..sm.agent import SmBinding, run_until

        fabric = Fabric(topology)
        binding = SmBinding(fabric, topology.nodes[0].name)
        binding.start(0.0)
        run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=600.0)
        if not binding.sm.subnet_up:
            raise CliError(f"{args.file}: the subnet did not come up, no LIDs to show")
        lids = dict(binding.sm.lids)
    dot = to_dot(topology, lids)
    if args.dot:
        Path(args.dot).write_text(dot)
    if args.svg:
        exe = shutil.which("dot")
        if exe is None:
            raise CliError("graphviz's `dot` is not installed (apt-get install graphviz)")
        p = subprocess.run([exe, "-Tsvg", "-o", args.svg], input=dot, text=True,
                           capture_output=True, check=False)
        if p.returncode != 0:
            raise CliError(f"dot failed: {p.stderr.strip()}")
        print(f"wrote {args.svg}: {len(topology.nodes)} nodes, {len(topology.links)} links",
              file=sys.stderr)
    if not args.dot and not args.svg:
        sys.stdout.write(dot)
    return 0
