"""``python -m ipoib.ibsim FILE``: serve a topology file the way ``ibsim -s FILE`` does.

The fabric of FILE is simulated here and served on the ibsim sockets (``<sockname>:ctl``,
``<sockname>:out<N>``; ``--remote`` for ibsim's UDP mode), so that OpenSM and the
infiniband-diags tools run under ``LD_PRELOAD=libumad2sim.so`` with the same
``IBSIM_SOCKNAME`` manage and inspect it. "Network simulator ready." is printed once the
sockets are bound (tests and benchmarks wait for it, as for ibsim). With ``--sm embedded`` our
own SM runs on the first node and "SUBNET UP" is printed when it has brought the fabric up.
SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence

from ..fabric import netfile
from ..host.ibnet import IbNet
from ..host.runtime import Runtime
from ..wire.ibsim import DEFAULT_SOCKNAME, DEFAULT_UDP_PORT

READY = "Network simulator ready."
SUBNET_UP = "SUBNET UP"


class _SubnetUpNotice:
    """Prints :data:`SUBNET_UP` once the embedded SM reports the subnet up (a pumpable)."""

    def __init__(self, net: IbNet) -> None:
        self.net = net
        self.done = net.sm is None

    def process(self, now: float) -> None:
        if not self.done and self.net.sm is not None and self.net.sm.sm.subnet_up:
            self.done = True
            print(SUBNET_UP, flush=True)

    def get_timer(self) -> float | None:
        return None


def parser() -> argparse.ArgumentParser:
    """The runner's command line."""
    p = argparse.ArgumentParser(prog="python -m ipoib.ibsim",
                                description="Serve a topology on the ibsim socket protocol.")
    p.add_argument("netfile", metavar="FILE", help="topology file (ibsim/ibnetdiscover format)")
    p.add_argument("--sockname", default=os.environ.get("IBSIM_SOCKNAME") or DEFAULT_SOCKNAME,
                   help="socket base name, as IBSIM_SOCKNAME (default: $IBSIM_SOCKNAME or "
                        f"{DEFAULT_SOCKNAME!r})")
    p.add_argument("--sm", choices=("embedded", "none"), default="none",
                   help="run the embedded SM on the first node (default: none, as ibsim)")
    p.add_argument("--remote", nargs="?", type=int, const=DEFAULT_UDP_PORT, metavar="PORT",
                   help=f"serve over UDP instead, as `ibsim -r` (default port "
                        f"{DEFAULT_UDP_PORT})")
    return p


async def _serve(net: IbNet, runtime: Runtime, where: str) -> None:
    loop = asyncio.get_running_loop()
    for start in net.starters:
        start(loop, runtime)
    nodes = len(net.fabric.nodes)
    print(f"ibsim: {nodes} nodes from {net.topology.source} on {where}", flush=True)
    print(READY, flush=True)
    await runtime.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Load, serve until a signal, clean up."""
    args = parser().parse_args(argv)
    try:
        topo = netfile.load(args.netfile)
    except (netfile.TopologyError, OSError) as e:
        print(f"ibsim: {e}", file=sys.stderr)
        return 2
    net = IbNet(topo, sm=args.sm, ibsim=args.sockname, ibsim_udp=args.remote)
    gc.collect()
    gc.freeze()  # the fabric lives as long as the process: no collection need walk it again
    runtime = Runtime([*net.pumpables, _SubnetUpNotice(net)])
    where = f"udp port {args.remote}" if args.remote else f"@{args.sockname}:ctl"
    try:
        asyncio.run(_serve(net, runtime, where))
    except OSError as e:
        print(f"ibsim: cannot serve on {where}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
