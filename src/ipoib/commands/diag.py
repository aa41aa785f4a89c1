"""``ipoib diag CMD ...``: run an infiniband-diags tool (or OpenSM) against the running fabric.

The daemon serves the ibsim socket protocol (:mod:`ipoib.ibsim`); a tool run under
``LD_PRELOAD=libumad2sim.so`` with ``IBSIM_SOCKNAME`` set to the daemon's socket name sees the
simulated fabric as an HCA named ``ibsim0``, attached at ``SIM_HOST`` (``--host``, default the
first HCA). So ``ipoib diag ibnetdiscover``, ``ipoib diag saquery -g``, ``ipoib diag
--host sw-1 ibroute``, ``ipoib diag perfquery`` and ``ipoib diag ibstat`` work unmodified.
``--env`` prints the environment instead, for running tools by hand. umad2sim writes a fake
sysfs into the working directory, so an unwritable one is swapped for a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
from typing import Any

from ..cli import CliError
from ..host import control
from ..host.netns import HostError
from ..host.state import RunDir

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
UMAD2SIM_ENV = "IPOIB_UMAD2SIM"
"""Overrides where libumad2sim.so is (another distribution's path)."""
TOOLS = ("ibnetdiscover", "saquery", "smpquery", "ibroute", "perfquery", "ibstat", "ibstatus",
         "iblinkinfo", "ibtracert", "sminfo", "ibaddr", "ibhosts", "ibswitches", "smpdump",
         "ibportstate", "ibqueryerrors", "opensm")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diag`` command."""
    p = sub.add_parser(
        "diag", help="run an infiniband-diags command against the running fabric",
        usage="ipoib diag [--host NODE] [--sockname NAME] CMD [ARG ...] | ipoib diag --env",
        description="Run CMD (e.g. " + ", ".join(TOOLS[:6]) + ") under libumad2sim.so, "
                    "attached to the running daemon's fabric at NODE.")
    p.add_argument("--host", metavar="NODE",
                   help="node to attach to, by name or description (default: the first HCA)")
    p.add_argument("--sockname", metavar="NAME",
                   help="ibsim socket base name (default: the running daemon's)")
    p.add_argument("--env", action="store_true",
                   help="print the environment a tool needs, as shell exports, and exit")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")
    p.set_defaults(func=run_diag)


def _daemon_ibsim() -> dict[str, Any]:
    """What the running daemon says about its ibsim server."""
    try:
        reply = control.request(RunDir().socket_path, "ibsim")
    except HostError as e:
        raise CliError(f"cannot ask the daemon for its ibsim socket ({e}); start one with "
                       "`ipoib up` or pass --sockname") from None
    if not isinstance(reply.data, dict) or not reply.data.get("sockname"):
        raise CliError("the daemon does not serve the ibsim protocol")
    return reply.data


def tool_env(sockname: str, host: str | None, base: dict[str, str] | None = None
             ) -> dict[str, str]:
    """The environment a tool runs in: the preload, the socket name, the attachment."""
    env = dict(os.environ if base is None else base)
    lib = env.get(UMAD2SIM_ENV) or UMAD2SIM
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = lib if not preload else f"{lib}:{preload}"
    env["IBSIM_SOCKNAME"] = sockname
    env.pop("IBSIM_SERVER_NAME", None)
    if host:
        env["SIM_HOST"] = host
    else:
        env.pop("SIM_HOST", None)
    return env


def run_diag(args: argparse.Namespace) -> int:
    """Run the tool with the preload and return its exit status."""
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd and not args.env:
        raise CliError("diag needs a command, e.g. `ipoib diag ibnetdiscover`")
    info: dict[str, Any] = {}
    if args.sockname is None or args.host is None:
        try:
            info = _daemon_ibsim()
        except CliError:
            if args.sockname is None:
                raise
    sockname = args.sockname or str(info["sockname"])
    host = args.host or info.get("default_host")
    lib = os.environ.get(UMAD2SIM_ENV) or UMAD2SIM
    if not os.path.exists(lib):
        raise CliError(f"{lib} not found (Debian: apt install libumad2sim0; "
                       f"or set ${UMAD2SIM_ENV})")
    env = tool_env(sockname, host)
    if args.env:
        for key in ("LD_PRELOAD", "IBSIM_SOCKNAME", "SIM_HOST"):
            if key in env:
                print(f"export {key}={shlex.quote(env[key])}")
        return 0
    if shutil.which(cmd[0], path=env.get("PATH", os.defpath) + ":/usr/sbin:/sbin") is None:
        raise CliError(f"{cmd[0]}: command not found (Debian: apt install infiniband-diags)")
    cwd = None if os.access(os.getcwd(), os.W_OK) else tempfile.mkdtemp(prefix="ipoib-diag-")
    env["PATH"] = env.get("PATH", os.defpath) + ":/usr/sbin:/sbin"
    try:
        return subprocess.run(cmd, env=env, cwd=cwd, check=False).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        if cwd is not None:
            shutil.rmtree(cwd, ignore_errors=True)
