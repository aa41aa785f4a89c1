"""Topology files in the ibnetdiscover / ibsim "net" format (ibsim-protocol.md §14).

The reader follows ibsim 0.10's ``parse_netconf`` so that one file gives the same fabric here
and in the real ibsim: the same nodes, the same default GUID numbering, the same enabled link
widths and speeds. It is stricter where ibsim silently misreads a file (a port listed twice,
a port line outside a record, a node header swallowed because no blank line ended the record
before it): those are errors naming ``file:line``. Deliberate differences, all documented:

- ``include`` paths are relative to the including file (ibsim: to its working directory);
- ``do`` console commands and ``pdebug=`` are accepted and ignored;
- ``w=``/``s=``/``e=`` options are read before the first ``#`` only;
- port GUIDs, node GUIDs and non-zero LIDs must be unique; ``(guid)`` tokens are ignored.

:func:`dumps` writes ibnetdiscover-style records with ``switchguid=``/``caguid=`` directives,
so GUIDs, descriptions, LIDs and masks survive ``dumps`` -> ``loads`` (and a load by ibsim).
Its width/speed comments are informational: ``# "desc" 4xSDR`` on switch ports and
``# lid N lmc M 4xSDR to desc`` on CA ports have no ``lid <n> <W>x`` that would let them
override the ``w=``/``s=``/``e=`` masks written beside them, yet ibsim still finds the CA's
own LID in the second form (ibsim-protocol.md §14: the LID pre-assigns the port).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..wire.enums import NodeType
from .topology import Link, NodeSpec, Topology

MAX_INCLUDE_DEPTH = 9  # ibsim MAX_INCLUDE: the top file and eight nested includes
MAX_PORTS = 255  # NodeInfo.NumPorts is 8 bits
MAX_NODEID = 64  # ibsim NODEIDLEN - 1
MAX_DESC = 64  # NodeDescription is 64 bytes (IBA 14.2.5.2)
MAX_PREFIX = 20  # ibsim NODEPREFIX
MAX_GUID = (1 << 64) - 1
MAX_UNICAST_LID = 0xBFFF
DEFAULT_WIDTH, DEFAULT_SPEED, DEFAULT_EXT = 2, 1, 0  # 4x, SDR, none (ibsim defaults)
GUID_BASE = {NodeType.CA: 0x100000, NodeType.SWITCH: 0x200000, NodeType.ROUTER: 0}

# Top-level keywords, matched by prefix in ibsim's order ("do" last: it eats "down" too).
_KEYWORDS = (
    ("Switch", "node"), ("Hca", "node"), ("Ca", "node"), ("Rt", "node"),
    ("switchguid", "guid"), ("hcaguids", "guid"), ("caguid", "guid"), ("rtguid", "guid"),
    ("vendid", "vendid"), ("devid", "devid"), ("sysimgguid", "sysimgguid"),
    ("width", "width"), ("speed", "speed"), ("extspeed", "extspeed"),
    ("module", "module"), ("include", "include"), ("pdebug", "pdebug"), ("do", "do"),
)
# Numeric settings: parser attribute and allowed range (vendid= and sysimgguid= apply to the
# next node only, the others until changed).
_SETTINGS = {
    "vendid": ("vendid", 0, 0xFFFFFF), "devid": ("devid", 0, 0xFFFF),
    "sysimgguid": ("sysimgguid", 0, MAX_GUID), "width": ("width", 1, 31),
    "speed": ("speed", 1, 7), "extspeed": ("ext", 0, 15),
}
_SW, _CA, _RT = NodeType.SWITCH, NodeType.CA, NodeType.ROUTER
_KIND = {"Switch": _SW, "Hca": _CA, "Ca": _CA, "Rt": _RT, "switchguid": _SW, "hcaguids": _CA,
         "caguid": _CA, "rtguid": _RT}
_HEADER = {_SW: "Switch", _CA: "Ca", _RT: "Rt"}
_GUID_DIRECTIVE = {_SW: "switchguid", _CA: "caguid", _RT: "rtguid"}

# ibnetdiscover "<W>x<SPEED>": width -> LinkWidthEnabled; speed name -> (enabled, ext or None).
_COMMENT_WIDTH = {12: 11, 8: 4, 4: 3, 1: 1, 2: 16}
_COMMENT_SPEED = (
    ("SDR", 1, None), ("DDR", 3, None), ("QDR", 7, None), ("FDR", 7, 1), ("EDR", 7, 3),
    ("HDR", 7, 7), ("NDR", 7, 15), ("FDR10", 7, None),
)
_WIDTH_ACTIVE = ((8, "12x"), (4, "8x"), (2, "4x"), (16, "2x"), (1, "1x"))
_SPEED_ACTIVE = ((4, "QDR"), (2, "DDR"), (1, "SDR"))
_EXT_ACTIVE = ((8, "NDR"), (4, "HDR"), (2, "EDR"), (1, "FDR"))

_PORT_RE = re.compile(r"\[\s*(\d{1,9})\s*\]", re.ASCII)
_CONN_RE = re.compile(r'lid[^"]*$')
_CONN_SCAN = re.compile(r"lid\s*[+-]?\d{1,9}\s*([+-]?\d{1,9})x\s*(\S{1,9})", re.ASCII)
_C_INT = re.compile(r"0[xX][0-9a-fA-F]{1,40}|0[0-7]{0,40}|[1-9][0-9]{0,40}")
_NUMBER_TAIL = re.compile(r"\s*(\([0-9a-fA-F]*\))?\s*(#.*)?", re.ASCII | re.DOTALL)
_WS = " \t\n\v\f\r"

Where = tuple[str, int]


class TopologyError(ValueError):
    """A topology file that cannot be loaded; ``str()`` is ``file:line: message``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def load(path: str | Path) -> Topology:
    """Read the topology file at ``path`` (and the files it includes)."""
    parser = _Parser()
    parser.read_file(Path(path), str(path), None, [])
    return parser.finish(str(path))


def loads(text: str, source: str = "<string>") -> Topology:
    """Parse topology text; ``source`` names it in errors and anchors relative includes."""
    parser = _Parser()
    base = Path(source).parent if not source.startswith("<") else Path(".")
    parser.read_text(text, source, base, [_resolve(Path(source))])
    return parser.finish(source)


def port_guids(kind: NodeType, node_guid: int, nports: int) -> tuple[int, ...]:
    """The port GUIDs ibsim gives a node: a switch's is its node GUID, a CA's (or router's)
    port N is node GUID + N."""
    if kind == NodeType.SWITCH:
        return (node_guid,)
    return tuple(node_guid + p for p in range(1, nports + 1))


def _resolve(path: Path) -> Path:
    """``path`` made absolute with symlinks resolved where possible (to spot include loops)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


def _c_value(literal: str) -> int:
    """The value of a C integer literal matched by ``_C_INT`` (``0x`` hex, leading-0 octal)."""
    if literal[1:2] in ("x", "X"):
        return int(literal, 0)
    return int(literal, 8) if literal.startswith("0") else int(literal)


def _lead_int(s: str) -> int | None:
    """``strtoul(s, 0, 0)`` without the silent zero: the leading C integer of ``s``, if any."""
    m = _C_INT.match(s.lstrip(_WS))
    return _c_value(m.group(0)) if m else None


def _c_int(text: str, where: Where, what: str, lo: int, hi: int) -> int:
    """A whole C integer, optionally followed by ibnetdiscover's ``(guid)`` or a comment."""
    s = text.lstrip(_WS)
    m = _C_INT.match(s)
    if not m or not _NUMBER_TAIL.fullmatch(s, m.end()):
        token = s.split()[0] if s.split() else "(nothing)"
        raise TopologyError(*where, f"bad number {token!r} for {what}")
    v = _c_value(m.group(0))
    if not lo <= v <= hi:
        raise TopologyError(*where, f"{what} must be {lo:#x}..{hi:#x}, got {v:#x}")
    return v


def _take_quoted(text: str, where: Where, what: str) -> tuple[str, str]:
    """The first double-quoted string in ``text``, and what follows its closing quote."""
    q = text.find('"')
    e = text.find('"', q + 1) if q >= 0 else -1
    if e < 0:
        raise TopologyError(*where, f"expected the {what} in double quotes" if q < 0
                            else f"missing closing quote after the {what}")
    return text[q + 1:e], text[e + 1:]


def _split_desc(after: str) -> tuple[str | None, str | None]:
    """ibsim ``parse_node_desc``: the ``# "desc"`` after a node id, and what follows it."""
    h = after.find("#")
    if h < 0:
        return None, after
    s = after[h + 1:].lstrip(_WS)
    if s.startswith('"'):
        e = s.find('"', 1)
        return (s[1:], None) if e < 0 else (s[1:e], s[e + 1:])
    for marker in (" enhanced port ", " base port ", " lid ", " lmc "):
        k = s.find(marker)
        if k >= 0:
            return s[:k], s[k + 1:]
    return s, None


def _after(text: str, word: str) -> int:
    """The number after the first ``word`` in ``text``, 0 if none (ibsim: strstr + strtoul)."""
    k = text.find(word)
    return (_lead_int(text[k + len(word):]) or 0) if k >= 0 else 0


@dataclass(slots=True)
class _Port:
    num: int
    where: Where
    width: int
    speed: int
    ext: int
    remote: str | None = None  # full node id of the far end (None: alias definition)
    rport: int = 0
    via_alias: str | None = None  # alias key this line cables to
    alias: str | None = None  # alias key defined on this port
    lid: int = 0
    lmc: int = 0


@dataclass(slots=True)
class _Node:
    kind: NodeType
    name: str
    nports: int
    guid: int
    sys_guid: int
    vendor: int
    device: int
    desc: str
    enhanced: bool
    where: Where
    lid: int = 0
    lmc: int = 0
    ports: dict[int, _Port] = field(default_factory=dict)

    def port_guids(self) -> tuple[int, ...]:
        return port_guids(self.kind, self.guid, self.nports)


class _Parser:
    """One load: ibsim's global parse state, as an instance."""

    def __init__(self) -> None:
        self.abs_guid = dict(GUID_BASE)
        self.next_guid = dict(GUID_BASE)
        self.prefix = ""
        self.vendid = 0
        self.sysimgguid = 0
        self.devid = 0
        self.width, self.speed, self.ext = DEFAULT_WIDTH, DEFAULT_SPEED, DEFAULT_EXT
        self.nodes: list[_Node] = []
        self.by_name: dict[str, _Node] = {}
        self.node_guids: dict[int, _Node] = {}
        self.port_guids: dict[int, _Node] = {}
        self.aliases: dict[str, tuple[str, int, Where]] = {}

    # -- reading ---------------------------------------------------------------------------

    def read_file(self, path: Path, display: str, where: Where | None,
                  stack: list[Path]) -> None:
        """Read one file; ``stack`` holds the files that include it, outermost first."""
        try:
            resolved = _resolve(path)
            data = path.read_bytes()
        except (OSError, RuntimeError, ValueError) as e:
            err = getattr(e, "strerror", None) or str(e)
            if where is None:
                raise TopologyError(display, 0, f"cannot read: {err}") from None
            raise TopologyError(*where, f'cannot read included file "{display}": {err}') from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise TopologyError(display, line, "not UTF-8 text") from None
        self.read_text(text, display, path.parent, [*stack, resolved])

    def read_text(self, text: str, file: str, base: Path, stack: list[Path]) -> None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TopologyError(file, text.count("\n", 0, e.start) + 1,
                                "not valid Unicode text (lone surrogate)") from None
        lines = [ln.removesuffix("\r") for ln in text.split("\n")]
        i, full = 0, None
        while i < len(lines):
            line, where = lines[i], (file, i + 1)
            kw = _keyword(line)
            if kw is None:
                if line.startswith(("[", "@")):
                    hint = (f': "{full.name}" has {full.nports} port(s), all listed above'
                            if full else ": a node header must come first")
                    raise TopologyError(*where, "port line outside a node record" + hint)
                i, full = i + 1, None
                continue
            word, action = kw
            full = None
            if action == "node":
                i, full = self._record(lines, i, file, word)
                continue
            if action == "include":
                self._include(line, where, base, stack)
            elif action not in ("do",):
                self._directive(word, action, line, where)
            i += 1

    def _include(self, line: str, where: Where, base: Path, stack: list[Path]) -> None:
        parts = line.split('"')
        if len(parts) < 3 or not parts[1]:
            raise TopologyError(*where, 'bad include: expected include "file"')
        target = base / parts[1]
        if _resolve(target) in stack:
            raise TopologyError(*where, f'include loop: "{parts[1]}" is already being read')
        if len(stack) >= MAX_INCLUDE_DEPTH:
            raise TopologyError(*where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
        self.read_file(target, str(target), where, stack)

    def _directive(self, word: str, action: str, line: str, where: Where) -> None:
        rest = line[len(word):]
        if action == "guid":
            kind = _KIND[word]
            k = rest.find("=")
            if k < 0:
                k = rest.find("+")
            if k < 0:
                raise TopologyError(*where, f"bad assignment: expected {word}=GUID or {word}+N")
            v = _c_int(rest[k + 1:], where, word, 0, MAX_GUID)
            if rest[k] == "=":
                self.abs_guid[kind] = v
                v = 0
            self.next_guid[kind] = self.abs_guid[kind] + v
            return
        k = rest.find("=")
        if k < 0:
            raise TopologyError(*where, f"bad assignment: expected {word}=VALUE")
        value = rest[k + 1:]
        if action == "module":
            q = value.split('"')
            if len(q) < 3:
                raise TopologyError(*where, 'expected module="prefix"')
            if len(q[1]) > MAX_PREFIX or "#" in q[1] or "@" in q[1]:
                raise TopologyError(*where, f"module prefix must be at most {MAX_PREFIX} "
                                    "characters without '#' or '@'")
            self.prefix = q[1]
        elif action in _SETTINGS:  # (pdebug=: parser debugging in ibsim, nothing here)
            attr, lo, hi = _SETTINGS[action]
            setattr(self, attr, _c_int(value, where, f"{word}=", lo, hi))

    # -- node records ----------------------------------------------------------------------

    def _record(self, lines: list[str], i: int, file: str, word: str) -> tuple[int, _Node | None]:
        node = self._header(lines[i], (file, i + 1), word)
        j = i + 1
        while len(node.ports) < node.nports and j < len(lines):
            line = lines[j]
            if line.startswith("#"):
                j += 1
                continue
            if not line.startswith(("[", "@")):
                if _keyword(line) is not None:  # ibsim consumes the line that ends a record
                    raise TopologyError(file, j + 1, f'this line ends the record of "{node.name}"'
                                        " and ibsim would skip it: put a blank line before it")
                return j + 1, None
            self._port_line(node, line, (file, j + 1))
            j += 1
        return j, node if len(node.ports) == node.nports else None

    def _header(self, line: str, where: Where, word: str) -> _Node:
        kind = _KIND[word]
        rest = line[len(word):]
        q = rest.find('"')
        m = re.search(r"[0-9]", rest if q < 0 else rest[:q])
        if not m:
            raise TopologyError(*where, f"expected the number of ports after {word!r}")
        nports = _lead_int(rest[m.start():]) or 0
        if not 1 <= nports <= MAX_PORTS:
            raise TopologyError(*where, f"number of ports must be 1..{MAX_PORTS}, got {nports}")
        base, after = _take_quoted(rest, where, "node id")
        desc, tail = _split_desc(after)
        if not base or "#" in base or "@" in base:
            raise TopologyError(*where, f"bad node id {base!r}: empty, or holds reserved '#'/'@'")
        name = f"{self.prefix}#{base}" if self.prefix else base
        if len(name.encode()) > MAX_NODEID:
            raise TopologyError(*where, f"node id longer than {MAX_NODEID} bytes")
        if desc is not None and len(desc.encode()) > MAX_DESC:
            raise TopologyError(*where, f"node description longer than {MAX_DESC} bytes")
        if name in self.by_name:
            first = self.by_name[name].where
            raise TopologyError(*where, f'duplicate node id "{name}" (first at {first[0]}:'
                                f"{first[1]})")
        guid = self.next_guid[kind]
        node = _Node(kind, name, nports, guid, self.sysimgguid or guid, self.vendid, self.devid,
                     "" if not desc or desc == name else desc, False, where)
        self._claim_guids(node)
        self.next_guid[kind] = guid + (1 if kind == NodeType.SWITCH else nports + 1)
        self.vendid = self.sysimgguid = 0
        if kind == NodeType.SWITCH and tail is not None:
            node.enhanced = "enhanced port 0" in tail
            node.lid = _after(tail, "lid ")
            node.lmc = _after(tail, "lmc ")
            self._check_lid(node.lid, node.lmc, where)
        self.nodes.append(node)
        self.by_name[name] = node
        return node

    def _claim_guids(self, node: _Node) -> None:
        kind = node.kind.name.lower()
        hint = f"; set {_GUID_DIRECTIVE[node.kind]}= to move it"
        if node.guid in self.node_guids:
            other = self.node_guids[node.guid]
            raise TopologyError(*node.where, f'{kind} "{node.name}" gets node GUID '
                                f'{node.guid:#x}, already used by "{other.name}"{hint}')
        for g in node.port_guids():
            if g > MAX_GUID:
                raise TopologyError(*node.where, f"GUID {g:#x} does not fit in 64 bits")
            if g in self.port_guids:
                other = self.port_guids[g]
                raise TopologyError(*node.where, f'{kind} "{node.name}" gets port GUID '
                                    f'{g:#x}, already used by "{other.name}"{hint}')
        self.node_guids[node.guid] = node
        for g in node.port_guids():
            self.port_guids[g] = node

    @staticmethod
    def _check_lid(lid: int, lmc: int, where: Where) -> None:
        if lid > MAX_UNICAST_LID:
            raise TopologyError(*where, f"LID {lid:#x} is not a unicast LID (1..0xbfff)")
        if lmc > 7:
            raise TopologyError(*where, f"LMC must be 0..7, got {lmc}")

    def _port_line(self, node: _Node, line: str, where: Where) -> None:
        alias_def = line.startswith("@")
        body = line[1:] if alias_def else line
        m = _PORT_RE.match(body)
        if not m:
            raise TopologyError(*where, 'expected "[port]" at the start of a port line')
        num = int(m.group(1))
        if not 1 <= num <= node.nports:
            raise TopologyError(*where, f'port {num} is not one of the {node.nports} ports of '
                                f'"{node.name}" (1..{node.nports})')
        if num in node.ports:
            raise TopologyError(*where, f'port {num} of "{node.name}" is listed twice (first at'
                                f" line {node.ports[num].where[1]})")
        ident, rest = _take_quoted(body[m.end():], where, "remote node id")
        port = _Port(num, where, self.width, self.speed, self.ext)
        if alias_def:
            if not ident or "#" in ident or "@" in ident:
                raise TopologyError(*where, f"bad alias {ident!r}: empty or holds '#'/'@'")
            key = f"{self.prefix}@{ident}"
            if key in self.aliases:
                raise TopologyError(*where, f'alias "{key}" is already defined (line '
                                    f"{self.aliases[key][2][1]})")
            self.aliases[key] = (node.name, num, where)
            port.alias = key
        elif "@" in ident:
            key = (self.prefix if ident.startswith("@") else "") + ident
            if key not in self.aliases:
                raise TopologyError(*where, f'unknown alias "{key}" (define it before use)')
            port.remote, port.rport, _ = self.aliases[key]
            port.via_alias = key
        else:
            port.remote = ident if "#" in ident or not self.prefix else f"{self.prefix}#{ident}"
            port.rport = 1
            if rest.startswith("["):
                m = _PORT_RE.match(rest)
                if not m or int(m.group(1)) < 1:
                    raise TopologyError(*where, 'bad remote port: expected "[N]" with N >= 1')
                port.rport = int(m.group(1))
        self._options(port, rest.split("#", 1)[0], where)
        if node.kind != NodeType.ROUTER:
            self._comment(node, port, rest, where)
        node.ports[num] = port

    @staticmethod
    def _options(port: _Port, text: str, where: Where) -> None:
        """``w=``, ``s=``, ``e=`` masks; the option letter is the last letter before ``=``."""
        for m in re.finditer("=", text):
            k = m.start() - 1
            while k >= 0 and not (text[k].isascii() and text[k].isalpha()):
                k -= 1
            if k < 0:
                raise TopologyError(*where, "bad port option: '=' without a name")
            value = (text[m.end():].split(None, 1) or [""])[0]
            letter = text[k]
            if letter == "w":
                port.width = _c_int(value, where, "w= width mask", 1, 31)
            elif letter == "s":
                port.speed = _c_int(value, where, "s= speed mask", 0, 7) or 4  # 0 = QDR
            elif letter == "e":
                port.ext = _c_int(value, where, "e= extspeed mask", 0, 15)

    def _comment(self, node: _Node, port: _Port, rest: str, where: Where) -> None:
        """ibnetdiscover's ``lid <rlid> <W>x<SPEED>`` and, on a CA, its own ``lid N lmc N``.

        As in ibsim, nothing is read unless some ``lid`` has no quote after it on the line;
        the masks come from there, a CA's LID and LMC from the first ``lid ``/``lmc ``."""
        m = _CONN_RE.search(rest)
        if not m:
            return
        scan = _CONN_SCAN.match(rest, m.start())
        if scan:
            port.width = _COMMENT_WIDTH.get(int(scan.group(1)), port.width)
            for name, speed, ext in _COMMENT_SPEED:
                if name.startswith(scan.group(2)):
                    port.speed = speed
                    port.ext = port.ext if ext is None else ext
                    break
        if node.kind == NodeType.CA:
            port.lid = _after(rest, "lid ")
            port.lmc = _after(rest, "lmc ")
            self._check_lid(port.lid, port.lmc, where)

    # -- cabling and result ----------------------------------------------------------------

    def finish(self, source: str) -> Topology:
        """Cable the ports both ends agree on and build the (immutable) topology."""
        links: list[Link] = []
        cabled: set[tuple[str, int]] = set()
        for node in self.nodes:
            for num in sorted(node.ports):
                p = node.ports[num]
                if p.remote is None or (node.name, num) in cabled:
                    continue
                links.append(self._cable(node, p, cabled))
        lids: dict[int, Where] = {}
        specs = []
        for node in self.nodes:
            own = {0: node.lid} if node.lid else {}
            own.update({n: p.lid for n, p in node.ports.items() if p.lid})
            for n, lid in own.items():
                where = node.where if n == 0 else node.ports[n].where
                if lid in lids:
                    raise TopologyError(*where, f"LID {lid} is already assigned at "
                                        f"{lids[lid][0]}:{lids[lid][1]}")
                lids[lid] = where
            lmcs = {0: node.lmc} if node.lmc else {}
            lmcs.update({n: p.lmc for n, p in node.ports.items() if p.lmc})
            specs.append(NodeSpec(
                kind=node.kind, name=node.name, nports=node.nports, node_guid=node.guid,
                sys_guid=node.sys_guid, port_guids=node.port_guids(), vendor_id=node.vendor,
                device_id=node.device, desc=node.desc, lids=own, enhanced_port0=node.enhanced,
                lmcs=lmcs))
        return Topology(nodes=tuple(specs), links=canonical_links(specs, links), source=source)

    def _cable(self, node: _Node, p: _Port, cabled: set[tuple[str, int]]) -> Link:
        assert p.remote is not None
        here = f'"{node.name}"[{p.num}]'
        far = self.by_name.get(p.remote)
        if far is None:
            raise TopologyError(*p.where, f'{here} is cabled to unknown node "{p.remote}"')
        if p.rport > far.nports:
            raise TopologyError(*p.where, f'{here} is cabled to port {p.rport} of "{far.name}",'
                                f" which has only {far.nports} ports")
        there = f'"{far.name}"[{p.rport}]'
        fp = far.ports.get(p.rport)
        if fp is p:
            raise TopologyError(*p.where, f"{here} is cabled to itself")
        if p.via_alias:
            if fp is None or fp.alias != p.via_alias or (far.name, p.rport) in cabled:
                raise TopologyError(*p.where, f'alias "{p.via_alias}" ({there}) is already '
                                    "cabled")
        elif fp is None:
            raise TopologyError(*p.where, f"{here} is cabled to {there}, but {there} is not "
                                f'listed in the record of "{far.name}"')
        elif fp.remote != node.name or fp.rport != p.num:
            back = f'"{fp.remote}"[{fp.rport}]' if fp.remote else f'alias "{fp.alias}"'
            raise TopologyError(*p.where, f"{here} is cabled to {there}, but {there} is cabled "
                                f"to {back} ({fp.where[0]}:{fp.where[1]})")
        width, speed = p.width & fp.width, p.speed & fp.speed
        if not width or not speed:
            what, a, b = ("width", p.width, fp.width) if not width else ("speed", p.speed,
                                                                          fp.speed)
            raise TopologyError(*p.where, f"{what} masks do not overlap on {here} ({a:#x}) and "
                                f"{there} ({b:#x}): ibsim refuses this link")
        cabled.update({(node.name, p.num), (far.name, p.rport)})
        return Link(node.name, p.num, far.name, p.rport, width, speed, p.ext & fp.ext)


def _keyword(line: str) -> tuple[str, str] | None:
    for word, action in _KEYWORDS:
        if line.startswith(word):
            return word, action
    return None


def canonical_links(nodes: Sequence[NodeSpec], links: Iterable[Link]) -> tuple[Link, ...]:
    """``links`` in the order a load produces: each from its end that comes first in
    (node order, port), sorted by that end. Generators use it so that a generated topology
    equals its own ``loads(dumps(...))``."""
    index = {n.name: i for i, n in enumerate(nodes)}
    out = []
    for ln in links:
        if (index[ln.b], ln.b_port) < (index[ln.a], ln.a_port):
            ln = Link(ln.b, ln.b_port, ln.a, ln.a_port, ln.width, ln.speed, ln.ext_speed)
        out.append(ln)
    out.sort(key=lambda ln: (index[ln.a], ln.a_port))
    return tuple(out)


# -- writing -------------------------------------------------------------------------------


def _active(link: Link) -> str:
    """The active width and speed ibsim derives from the enabled masks, e.g. ``4xQDR``."""
    width = next((n for bit, n in _WIDTH_ACTIVE if link.width & bit), "?x")
    speeds = _EXT_ACTIVE if link.ext_speed else _SPEED_ACTIVE
    mask = link.ext_speed or link.speed
    return width + next((n for bit, n in speeds if mask & bit), "?")


def _options(link: Link) -> str:
    """`` w=.. s=.. e=..`` for the masks that differ from ibsim's defaults."""
    masks = (("w", link.width, DEFAULT_WIDTH), ("s", link.speed, DEFAULT_SPEED),
             ("e", link.ext_speed, DEFAULT_EXT))
    return "".join(f" {k}={v}" for k, v, default in masks if v != default)


def _quoted(text: str, what: str) -> str:
    if '"' in text or "\n" in text or "\r" in text:
        raise ValueError(f"{what} {text!r} cannot be written: it holds a quote or a newline")
    return f'"{text}"'


def _split_name(name: str) -> tuple[str, str]:
    """``("prefix", "base")`` of a node id made under ``module="prefix"``."""
    pfx, sep, base = name.partition("#")
    return (pfx, base) if sep else ("", name)


def _check_node(n: NodeSpec) -> None:
    pfx, base = _split_name(n.name)
    if not base or "#" in base or "@" in n.name or len(pfx) > MAX_PREFIX:
        raise ValueError(f"node id {n.name!r} cannot be written")
    if not 1 <= n.nports <= MAX_PORTS:
        raise ValueError(f'"{n.name}": number of ports {n.nports} is not 1..{MAX_PORTS}')
    if tuple(n.port_guids) != port_guids(n.kind, n.node_guid, n.nports):
        raise ValueError(f'"{n.name}": port GUIDs are not what the format derives from the '
                         "node GUID (switch: the node GUID; CA: node GUID + port)")
    if n.sys_guid == 0 and n.node_guid != 0:
        raise ValueError(f'"{n.name}": a system image GUID of 0 cannot be written')
    if len(n.description.encode()) > MAX_DESC:
        raise ValueError(f'"{n.name}": description longer than {MAX_DESC} bytes')
    allowed = ({0} if n.kind == NodeType.SWITCH else set() if n.kind == NodeType.ROUTER
               else set(range(1, n.nports + 1)))
    if set(n.lids) - allowed or set(n.lmcs) - allowed:
        raise ValueError(f'"{n.name}": the format carries LIDs only for switch port 0 and '
                         "for cabled CA ports")


def dumps(topology: Topology) -> str:
    """``topology`` as ibnetdiscover-style text that :func:`loads` (and ibsim) read back
    unchanged. Raises ``ValueError`` for what the format cannot express."""
    nodes = topology.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    if len(index) != len(nodes):
        raise ValueError("duplicate node names")
    ends: dict[tuple[str, int], tuple[NodeSpec, int, Link]] = {}
    for ln in topology.links:
        for here, hp, there, tp in ((ln.a, ln.a_port, ln.b, ln.b_port),
                                    (ln.b, ln.b_port, ln.a, ln.a_port)):
            if here not in index or there not in index:
                raise ValueError(f"link {ln} names an unknown node")
            if not 1 <= hp <= nodes[index[here]].nports or (here, hp) in ends:
                raise ValueError(f'link {ln}: port {hp} of "{here}" is out of range or '
                                 "cabled twice")
            ends[(here, hp)] = (nodes[index[there]], tp, ln)
        if not (1 <= ln.width <= 31 and 1 <= ln.speed <= 7 and 0 <= ln.ext_speed <= 15):
            raise ValueError(f"link {ln}: width/speed masks out of range")
    kinds = [n.kind for n in nodes]
    counts = (f"# {kinds.count(NodeType.SWITCH)} switches, {kinds.count(NodeType.CA)} CAs, "
              f"{kinds.count(NodeType.ROUTER)} routers, {len(topology.links)} links")
    out = [f"# Topology: {topology.source}", counts, ""]
    cur = ""
    for i, n in enumerate(nodes):
        _check_node(n)
        pfx, base = _split_name(n.name)
        if pfx != cur:
            out.append(f'module="{pfx}"')
            cur = pfx
        out += [f"vendid={n.vendor_id:#x}", f"devid={n.device_id:#x}",
                f"sysimgguid={n.sys_guid:#x}",
                f"{_GUID_DIRECTIVE[n.kind]}={n.node_guid:#x}({n.node_guid:x})"]
        head = (f"{_HEADER[n.kind]}\t{n.nports} {_quoted(base, 'node id')}\t\t# "
                f"{_quoted(n.description, 'description')}")
        if n.kind == NodeType.SWITCH:
            head += (f" {'enhanced' if n.enhanced_port0 else 'base'} port 0"
                     f" lid {n.lids.get(0, 0)} lmc {n.lmcs.get(0, 0)}")
        out.append(head)
        for p in range(1, n.nports + 1):
            if (n.name, p) in ends:
                far, fp, ln = ends[(n.name, p)]
                out.append(_port_line(n, p, far, fp, ln, i, index, cur))
            elif p in n.lids or p in n.lmcs:
                raise ValueError(f'"{n.name}": port {p} has a LID but no cable')
        out.append("")
    return "\n".join(out)


def _port_line(n: NodeSpec, p: int, far: NodeSpec, fp: int, ln: Link, i: int,
               index: dict[str, int], cur: str) -> str:
    """One ``[port] "remote"[port]`` line. ibsim cannot name a top-level node from inside a
    module, so such a cable becomes an alias defined by the module's port (which must come
    first) and referenced as ``"prefix@alias"`` by the top-level node."""
    fpfx, fbase = _split_name(far.name)
    local = f"[{p}]" if n.kind == NodeType.SWITCH else f"[{p}]({n.port_guid(p):x})"
    far_guid = "" if far.kind == NodeType.SWITCH else f"({far.port_guid(fp):x})"
    if fpfx == cur:
        ref = f'"{fbase}"[{fp}]{far_guid}'
    elif not fpfx:
        if index[far.name] < i:
            raise ValueError(f'"{n.name}"[{p}] is cabled to top-level "{far.name}", which comes'
                             " first: the format cannot reference it from inside a module")
        local, ref = "@" + local, f'"{_split_name(n.name)[1]}.{p}"'
    elif not cur and index[far.name] < i:
        ref = f'"{fpfx}@{fbase}.{fp}"'
    else:
        ref = f'"{far.name}"[{fp}]{far_guid}'
    # ibsim reads w/s/e options anywhere on the line: leave out a description holding "=".
    peer = "" if "=" in far.description else far.description
    tail = f'"{peer}" {_active(ln)}' if peer else _active(ln)
    if n.kind == NodeType.CA:  # no quote after "lid": ibsim reads the LID, not the masks
        tail = f"lid {n.lids.get(p, 0)} lmc {n.lmcs.get(p, 0)} {_active(ln)}"
        tail += f" to {peer}" if peer else ""
    return f"{local}\t{ref}{_options(ln)}\t\t# {tail}"
