"""``ipoib up | down | exec | show``: run hosts over the fabric and look at them.

``up`` loads a topology, makes one namespace with an ``ib0`` per HCA, waits until every host
has carrier, prints the hosts and serves (in the foreground, or in the background with
``--detach``, returning once the hosts are up). ``down`` stops the daemon and removes all it
made, also after a daemon killed with SIGKILL. ``exec`` runs a command inside a host's
namespace; ``show`` prints a view the daemon serves on its control socket.

The run directory is ``/run/ipoib`` (``$IPOIB_RUN_DIR``); namespaces are called
``ipoib-<node>`` (prefix ``$IPOIB_NETNS_PREFIX``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Network
from typing import Any

from ..cli import CliError
from ..fabric import netfile
from ..fabric.topology import Topology
from ..host import control, daemon, netns
from ..host.netns import HostError
from ..host.state import RunDir, cleanup

VIEWS = ("hosts", "neigh", "path", "mcast", "counters", "sa", "lids", "routes", "sm")
STOP_TIMEOUT = 15.0
"""Seconds ``down`` gives a daemon to stop by itself before SIGTERM, then SIGKILL."""

Report = Callable[[str, Any], None]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``up``, ``down``, ``exec`` and ``show`` commands."""
    up = sub.add_parser("up", help="bring up hosts on a fabric and serve them")
    up.add_argument("topology", metavar="TOPOLOGY", help="topology file (see `ipoib topo gen`)")
    up.add_argument("--hosts", action="append", metavar="NAME[,NAME...]",
                    help="HCAs to make hosts of (default: all); may be repeated")
    up.add_argument("--subnet", default=str(daemon.DEFAULT_SUBNET), metavar="CIDR",
                    help="IPv4 subnet, assigned in topology order (default: %(default)s)")
    up.add_argument("--sm", choices=("embedded", "opensm", "none"), default="embedded",
                    help="the subnet manager: ours, the real OpenSM (under umad2sim, "
                         "see docs/opensm.md), or none (attach one yourself)")
    up.add_argument("--sm-node", metavar="NODE",
                    help="node the SM runs on (default: the topology's first node)")
    up.add_argument("--partitions", metavar="FILE",
                    help="OpenSM partitions.conf for the SM (OpenSM's -P)")
    up.add_argument("--capture", metavar="FILE", help="capture the fabric's packets to FILE")
    up.add_argument("--no-gro", action="store_true",
                    help="hand the hosts every received TCP segment on its own (no GRO)")
    up.add_argument("--no-tso", action="store_true",
                    help="no checksum offload or TSO from the hosts' stacks: they send "
                         "MTU-sized packets with checksums done (ethtool -K ib0 tso off tx off)")
    up.add_argument("--detach", action="store_true",
                    help="serve in the background; return once every host has carrier")
    up.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                    help="how long to wait for OpenSM's SUBNET UP, then for carrier "
                         "(default: %(default)s)")
    up.set_defaults(func=run_up)

    down = sub.add_parser("down", help="stop the daemon and remove its namespaces")
    down.set_defaults(func=run_down)

    ex = sub.add_parser("exec", help="run a command in a host's namespace",
                        usage="ipoib exec HOST -- CMD [ARG ...]")
    ex.add_argument("host", metavar="HOST", help="node name or address")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")
    ex.set_defaults(func=run_exec)

    show = sub.add_parser("show", help="ask the running daemon for a view")
    show.add_argument("view", choices=VIEWS)
    show.add_argument("host", nargs="?", metavar="HOST", help="only this host")
    show.add_argument("--json", action="store_true", help="print the data as JSON")
    show.set_defaults(func=run_show)

    cap = sub.add_parser("capture", help="record the fabric's packets to a file Wireshark opens")
    cap.add_argument("file", metavar="FILE", help="pcap file to write (ERF link type, no settings)")
    cap.add_argument("--ports", nargs="+", metavar="NODE:PORT",
                     help="only packets leaving these ports (default: every port)")
    cap.add_argument("--seconds", type=float, default=None,
                     help="stop after this long (default: until Ctrl-C)")
    cap.set_defaults(func=run_capture)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise CliError("must be run as root (network namespaces and TUN devices need it)")


def _load(path: str) -> Topology:
    try:
        return netfile.load(path)
    except netfile.TopologyError as e:
        raise CliError(str(e)) from None


def _subnet(text: str) -> IPv4Network:
    try:
        return IPv4Network(text)
    except ValueError as e:
        raise CliError(f"--subnet: {e}") from None


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n for v in values for n in v.split(",") if n]


# -- up -----------------------------------------------------------------------------------


def run_up(args: argparse.Namespace) -> int:
    """Check, take the run directory, then serve here or in a detached child."""
    _require_root()
    topo = _load(args.topology)
    subnet = _subnet(args.subnet)
    run_dir = RunDir()
    try:
        run_dir.acquire()
        stale = run_dir.load()
        if stale is not None:
            removed = cleanup(stale, run_dir)
            print(f"ipoib: cleaned up after a daemon that died (pid {stale.pid})"
                  f"{': ' + ', '.join(removed) if removed else ''}", file=sys.stderr)
        if args.detach:
            return _detach(args, topo, subnet, run_dir)
        return _foreground(args, topo, subnet, run_dir)
    except HostError as e:
        raise CliError(str(e)) from None
    finally:
        if run_dir.holding:  # not handed to a detached daemon: leave a clean directory
            if run_dir.load() is None:
                run_dir.remove()
            run_dir.release()


def _serve(args: argparse.Namespace, topo: Topology, subnet: IPv4Network, run_dir: RunDir,
           report: Report) -> list[str]:
    """Build the daemon and run it; ``report`` hears "ready" (rows) and "timeout" (names).
    Returns what the teardown removed.
    """
    d = daemon.build(topo, hosts=_names(args.hosts), subnet=subnet, sm=args.sm,
                     capture=args.capture, run_dir=run_dir, sm_node=args.sm_node,
                     partitions=args.partitions, sm_wait=args.wait, gro=not args.no_gro,
                     tso=not args.no_tso)
    return d.run(lambda rows: report("ready", rows), carrier_timeout=args.wait,
          on_timeout=lambda missing: report("timeout", missing))


def _timeout_line(missing: list[str], wait: float) -> str:
    shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
    return (f"ipoib: {len(missing)} host(s) still without carrier after {wait:g} s: {shown} "
            f"(still serving; `ipoib show` to look, `ipoib down` to stop)")


def _foreground(args: argparse.Namespace, topo: Topology, subnet: IPv4Network,
                run_dir: RunDir) -> int:
    def report(kind: str, payload: Any) -> None:
        if kind == "ready":
            print(daemon.format_hosts(payload))
            print(f"{len(payload)} host(s) up; serving until `ipoib down` or Ctrl-C", flush=True)
        elif kind == "timeout":
            print(_timeout_line(payload, args.wait), file=sys.stderr, flush=True)

    removed = _serve(args, topo, subnet, run_dir, report)
    count = sum(r.startswith("namespace ") for r in removed)
    print(f"stopped; removed {count} namespace(s)", flush=True)
    return 0


def _detach(args: argparse.Namespace, topo: Topology, subnet: IPv4Network,
            run_dir: RunDir) -> int:
    """Fork a daemon in its own session; print what it reports once its hosts are up."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(r)
        _become_daemon(args, topo, subnet, run_dir, w)
    os.close(w)
    run_dir.release()  # the child keeps the lock through its own copy
    with os.fdopen(r, "rb") as pipe:
        line = pipe.readline()
    if not line:
        raise CliError(f"the daemon exited while starting; see {run_dir.log_path}")
    msg = json.loads(line)
    if msg["event"] == "error":
        raise CliError(msg["message"])
    if msg["event"] == "timeout":
        print(_timeout_line(msg["payload"], args.wait), file=sys.stderr)
        return 1
    print(daemon.format_hosts(msg["payload"]))
    print(f"{len(msg['payload'])} host(s) up; daemon pid {pid} (`ipoib down` stops it)")
    return 0


def _become_daemon(args: argparse.Namespace, topo: Topology, subnet: IPv4Network,
                   run_dir: RunDir, w: int) -> None:
    """The detached child: new session, output to the log, report once through the pipe."""
    code = 1
    pipe: int | None = w

    def report(kind: str, payload: Any) -> None:
        nonlocal pipe
        if pipe is None:
            return
        try:
            os.write(pipe, json.dumps({"event": kind, "payload": payload}).encode() + b"\n")
        except OSError:  # the parent is gone; the daemon serves anyway
            pass
        os.close(pipe)
        pipe = None

    try:
        os.setsid()
        log = os.open(run_dir.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} daemon pid {os.getpid()}", flush=True)
        _serve(args, topo, subnet, run_dir, report)
        code = 0
    except (HostError, CliError, OSError, ValueError) as e:
        if pipe is not None:
            os.write(pipe, json.dumps({"event": "error", "message": str(e)}).encode() + b"\n")
        print(f"ipoib: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BaseException as e:  # noqa: BLE001 - a bug: log it, tell the parent, exit
        import traceback

        traceback.print_exc()
        if pipe is not None:
            os.write(pipe, json.dumps({"event": "error", "message":
                                       f"daemon failed: {type(e).__name__}: {e}"}).encode()
                     + b"\n")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# -- down ---------------------------------------------------------------------------------


def run_down(args: argparse.Namespace) -> int:
    """Stop the daemon (control "stop", then SIGTERM, then SIGKILL), clean what is left."""
    _require_root()
    run_dir = RunDir()
    try:
        return _down(run_dir)
    except HostError as e:
        raise CliError(str(e)) from None
    finally:
        run_dir.release()


def _down(run_dir: RunDir) -> int:
    state = run_dir.load()
    alive = run_dir.daemon_alive()
    if not alive and state is None:
        raise CliError("no daemon is running")
    pid = state.pid if state else None
    how = "stopped"
    if alive:
        if not _ask_to_stop(run_dir):
            pid = pid or _wait_pid(run_dir)
            if pid is None:
                raise CliError(f"a daemon holds {run_dir.path} but wrote no state; "
                               "try again in a moment")
            _kill(pid, signal.SIGTERM)
            how = "terminated"
            if not run_dir.wait_acquire(3.0):
                _kill(pid, signal.SIGKILL)
                how = "killed"
                if not run_dir.wait_acquire(3.0):
                    raise CliError(f"could not stop the daemon (pid {pid})")
    else:
        run_dir.acquire()
        how = "cleaned up after"
    left = run_dir.load()
    removed = cleanup(left, run_dir) if left is not None else []
    run_dir.remove()
    what = f" (pid {pid})" if pid else ""
    if how == "cleaned up after":
        print(f"cleaned up after a daemon that died{what}"
              f"{': removed ' + ', '.join(removed) if removed else ''}")
    else:
        print(f"{how} the daemon{what}"
              f"{'; removed ' + ', '.join(removed) if removed else ''}")
    return 0


def _ask_to_stop(run_dir: RunDir) -> bool:
    """Send "stop" (again, while the daemon is still setting up) until it lets go of the
    run directory, for at most :data:`STOP_TIMEOUT` seconds; True once we hold it.
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    asked = False
    while True:
        if not asked:
            try:
                control.request(run_dir.socket_path, "stop", timeout=2.0)
                asked = True
            except HostError:
                pass
        if run_dir.wait_acquire(0.2):
            return True
        if time.monotonic() >= deadline:
            return False


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_pid(run_dir: RunDir, timeout: float = 2.0) -> int | None:
    """The daemon's pid once its state exists (a daemon just starting may not have one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run_dir.load()
        if state is not None:
            return state.pid
        time.sleep(0.05)
    return None


# -- exec ---------------------------------------------------------------------------------


def run_exec(args: argparse.Namespace) -> int:
    """Replace this process with ``CMD`` inside the host's namespace (its exit status is ours),
    with ``/sys`` remounted for that namespace as ``ip netns exec`` does."""
    _require_root()
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CliError("exec needs a command: ipoib exec HOST -- CMD [ARG ...]")
    run_dir = RunDir()
    state = run_dir.load()
    if state is None or not run_dir.daemon_alive():
        raise CliError("no daemon is running")
    host = state.find_host(args.host)
    if host is None:
        names = ", ".join(str(h.get("host")) for h in state.hosts[:8])
        more = ", ..." if len(state.hosts) > 8 else ""
        raise CliError(f"no host {args.host!r} (have: {names}{more})")
    ns = str(host["netns"])
    if not netns.exists(ns):
        raise CliError(f"namespace {ns} of host {host['host']} is gone")
    sys.stdout.flush()
    sys.stderr.flush()
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; programs expect not
        signal.signal(sig, signal.SIG_DFL)
    try:
        netns.enter(ns)
        netns.private_sysfs()
        os.environ["IPOIB_HOST"] = str(host["host"])
        os.execvp(cmd[0], cmd)
    except HostError as e:
        raise CliError(f"cannot set up {ns}: {e}") from None
    except FileNotFoundError:
        print(f"ipoib: {cmd[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"ipoib: {cmd[0]}: permission denied", file=sys.stderr)
        return 126
    return 0  # not reached: execvp returns only by raising


# -- show ---------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    """Ask the daemon for ``VIEW`` and print its text (or its data with ``--json``)."""
    _require_root()
    run_dir = RunDir()
    kw: dict[str, Any] = {} if args.host is None else {"host": args.host}
    try:
        reply = control.request(run_dir.socket_path, args.view, **kw)
    except HostError as e:
        raise CliError(str(e)) from None
    if args.json or reply.text is None:
        print(json.dumps(reply.data, indent=2, default=control.jsonable))
    else:
        print(reply.text)
    return 0


# -- capture ------------------------------------------------------------------------------


def run_capture(args: argparse.Namespace) -> int:
    """Start a tap on the running fabric, wait, stop it: the file opens in Wireshark."""
    _require_root()
    run_dir = RunDir()
    ports = []
    for spec in args.ports or ():
        node, sep, port = spec.rpartition(":")
        if not sep or not node or not port.isdigit():
            raise CliError(f"bad port {spec!r}: expected NODE:PORT, e.g. sw-l1-1:3")
        ports.append((node, int(port)))
    path = os.path.abspath(args.file)
    try:
        control.request(run_dir.socket_path, "capture", file=path, ports=ports or None)
        print(f"capturing to {path} ({'Ctrl-C' if args.seconds is None else f'{args.seconds} s'})",
              file=sys.stderr)
        try:
            if args.seconds is None:
                while True:
                    time.sleep(3600)
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
        control.request(run_dir.socket_path, "capture", stop=True)
    except HostError as e:
        raise CliError(str(e)) from None
    return 0
