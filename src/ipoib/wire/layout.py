"""Declarative bit layouts: each wire record is declared once, as a frozen dataclass.

IBA and the RFCs describe every attribute and record as a table of (byte, bit, width) fields.
This module lets a record be written exactly like that table::

    @layout(size=40, name="NodeInfo", section="IBA 14.2.5.3")
    @dataclass(frozen=True, slots=True, kw_only=True)
    class NodeInfo(Record):
        base_version: int = u(0, 8, default=1)
        node_type: int = u(2, 8)
        ...

``u(byte, width, bit=0)`` declares an unsigned integer whose most significant bit is ``bit``
bits below the MSB of ``byte`` (bit 0 is the MSB, as Linux ``struct ib_field`` counts).
``ule(byte, size)`` declares a little-endian integer of whole bytes, for the few host-order
structs that are not IBA formats (ibsim's control messages on x86-64). ``raw(byte, size)`` declares a byte string (GIDs, GUID blocks), ``text(byte, size)`` a
NUL-padded string (NodeDescription). Bits no field covers are reserved: zero on encode,
ignored on decode. ``cm=N`` gives an SA ComponentMask bit (IBA 15.2.5), used by :func:`match`.

Encoding and decoding go through one big integer per record. :func:`layout` also compiles,
once per class, a straight-line encoder and decoder for those shifts and masks (a sweep of a
large subnet decodes and encodes hundreds of thousands of attributes); the generic loops stay
as the reference and produce every error. For the hottest management answers, the same slots
also compile :func:`packer` (encode a few named fields, the rest at their defaults),
:func:`reader` and :func:`patcher` (read or write a few fields in place). The data-path
headers in :mod:`ipoib.wire.ib` use precompiled structs.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from .errors import DecodeError, EncodeError

INT, RAW, TEXT, INT_LE = 0, 1, 2, 3

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one field sits in its record (computed once per class by :func:`layout`)."""

    name: str
    byte: int
    bit: int
    width: int
    kind: int
    shift: int
    mask: int
    cm: int | None


def u(byte: int, width: int, bit: int = 0, *, default: int = 0, cm: int | None = None) -> Any:
    """An unsigned integer field of ``width`` bits starting ``bit`` bits into ``byte``."""
    return dataclasses.field(
        default=default, metadata={"wire": (byte, bit, width, INT), "cm": cm}
    )


def ule(byte: int, size: int, *, default: int = 0) -> Any:
    """A little-endian unsigned integer of ``size`` whole bytes (host order on x86-64)."""
    return dataclasses.field(
        default=default, metadata={"wire": (byte, 0, size * 8, INT_LE), "cm": None}
    )


def raw(byte: int, size: int, *, cm: int | None = None) -> Any:
    """A byte-string field of ``size`` bytes (zeros by default)."""
    return dataclasses.field(
        default=bytes(size), metadata={"wire": (byte, 0, size * 8, RAW), "cm": cm}
    )


def text(byte: int, size: int, *, cm: int | None = None) -> Any:
    """A NUL-padded text field of ``size`` bytes, decoded as UTF-8 (invalid bytes replaced)."""
    return dataclasses.field(
        default="", metadata={"wire": (byte, 0, size * 8, TEXT), "cm": cm}
    )


class Record:
    """Base of every declared record: ``encode()``, ``decode()``, component-mask helpers."""

    __slots__ = ()
    SIZE: ClassVar[int]
    NAME: ClassVar[str]
    SECTION: ClassVar[str]
    SLOTS: ClassVar[tuple[Slot, ...]]
    BY_NAME: ClassVar[dict[str, Slot]]

    def encode(self) -> bytes:
        """The record's bytes, exactly ``SIZE`` long."""
        return self._encode_slow()

    def _encode_slow(self) -> bytes:
        total = 0
        for s in self.SLOTS:
            v = getattr(self, s.name)
            if s.kind == INT or s.kind == INT_LE:
                if not isinstance(v, int) or v < 0 or v > s.mask:
                    raise EncodeError(self.NAME, s.name, f"{v!r} does not fit {s.width} bits")
                if s.kind == INT_LE:
                    v = int.from_bytes(v.to_bytes(s.width // 8, "little"), "big")
            elif s.kind == RAW:
                if len(v) != s.width // 8:
                    raise EncodeError(
                        self.NAME, s.name, f"need {s.width // 8} bytes, got {len(v)}"
                    )
                v = int.from_bytes(v, "big")
            else:
                b = v.encode()
                if len(b) > s.width // 8:
                    raise EncodeError(self.NAME, s.name, f"longer than {s.width // 8} bytes")
                v = int.from_bytes(b.ljust(s.width // 8, b"\0"), "big")
            total |= v << s.shift
        return total.to_bytes(self.SIZE, "big")

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        """Decode ``SIZE`` bytes at ``offset``; a short buffer raises :class:`DecodeError`."""
        return cls._decode_slow(buf, offset)

    @classmethod
    def _decode_slow(cls, buf: Buffer, offset: int = 0) -> Self:
        end = offset + cls.SIZE
        if offset < 0 or len(buf) < end:
            raise DecodeError(
                cls.NAME, "length", offset,
                f"need {cls.SIZE} bytes, have {max(len(buf) - offset, 0)}",
            )
        total = int.from_bytes(buf[offset:end], "big")
        kw: dict[str, Any] = {}
        for s in cls.SLOTS:
            v = (total >> s.shift) & s.mask
            if s.kind == INT:
                kw[s.name] = v
            elif s.kind == INT_LE:
                kw[s.name] = int.from_bytes(v.to_bytes(s.width // 8, "big"), "little")
            elif s.kind == RAW:
                kw[s.name] = v.to_bytes(s.width // 8, "big")
            else:
                kw[s.name] = (
                    v.to_bytes(s.width // 8, "big").split(b"\0", 1)[0].decode("utf-8", "replace")
                )
        return cls(**kw)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def component_mask(cls, *names: str) -> int:
        """The SA ComponentMask that selects the named fields."""
        mask = 0
        for n in names:
            cm = cls.BY_NAME[n].cm
            if cm is None:
                raise KeyError(f"{cls.NAME}.{n} has no component-mask bit")
            mask |= 1 << cm
        return mask

    @classmethod
    def components(cls, mask: int) -> list[str]:
        """Field names selected by ``mask`` (in declaration order)."""
        return [s.name for s in cls.SLOTS if s.cm is not None and mask >> s.cm & 1]


R = TypeVar("R", bound=type[Record])


def layout(*, size: int, name: str, section: str) -> Callable[[R], R]:
    """Class decorator: compute the slots of a ``@dataclass`` record and check they fit."""

    def wrap(cls: R) -> R:
        slots = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "wire" not in f.metadata:
                continue
            byte, bit, width, kind = f.metadata["wire"]
            end_bit = byte * 8 + bit + width
            if end_bit > size * 8:
                raise TypeError(f"{name}.{f.name} ends at bit {end_bit}, past {size} bytes")
            slots.append(
                Slot(f.name, byte, bit, width, kind, size * 8 - end_bit, (1 << width) - 1,
                     f.metadata.get("cm"))
            )
        cls.SIZE = size
        cls.NAME = name
        cls.SECTION = section
        cls.SLOTS = tuple(slots)
        cls.BY_NAME = {s.name: s for s in slots}
        _compile(cls)
        return cls

    return wrap


def _compile(cls: type[Record]) -> None:
    """Install a generated ``encode`` and ``decode`` on ``cls`` (unless it defines its own).

    The encoder reads every field, checks each is an in-range integer or a byte string of the
    right length, and ORs the shifted values; anything else (a check failing or raising) goes
    to the generic encoder, so errors are unchanged. The decoder builds the instance without
    ``__init__`` (every field of a frozen, slotted record is a wire field, set through its
    slot), which is what ``__init__`` would do. Records with text or little-endian fields,
    fields not on the wire, or a ``__post_init__`` keep the generic code.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if (any(s.kind not in (INT, RAW) for s in cls.SLOTS) or len(fields) != len(cls.SLOTS)
            or hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__):
        return
    ns: dict[str, Any] = {"_slow_enc": cls._encode_slow, "_slow_dec": cls._decode_slow,
                          "_fb": int.from_bytes, "_new": object.__new__, "_C": cls}
    loads, checks, terms, sets = [], [], [], []
    for i, s in enumerate(cls.SLOTS):
        loads.append(f"    v{i} = self.{s.name}")
        start = s.byte * 8 + s.bit
        lo, hi = start // 8, (start + s.width + 7) // 8
        shift, mask = hi * 8 - start - s.width, s.mask
        if s.kind == INT:
            checks.append(f"isinstance(v{i}, int) and 0 <= v{i} <= {mask}")
            terms.append(f"v{i} << {s.shift}")
            v = f"b[{lo}]" if hi - lo == 1 else f"_fb(b[{lo}:{hi}], 'big')"
            v += f" >> {shift}" if shift else ""
            v += f" & {mask}" if (hi - lo) * 8 - shift > s.width else ""
        else:
            checks.append(f"len(v{i}) == {s.width // 8}")
            terms.append(f"_fb(v{i}, 'big') << {s.shift}")
            v = (f"b[{lo}:{hi}]" if not shift and (hi - lo) * 8 == s.width else
                 f"(_fb(b[{lo}:{hi}], 'big') >> {shift} & {mask})"
                 f".to_bytes({s.width // 8}, 'big')")
        sets.append(f"    _set{i}(obj, {v})")
        ns[f"_set{i}"] = getattr(cls, s.name).__set__
    size = cls.SIZE
    src = "\n".join([
        "def encode(self):",
        *loads,
        "    try:",
        f"        if {' and '.join(checks) or 'True'}:",
        f"            return ({' | '.join(terms) or '0'}).to_bytes({size}, 'big')",
        "    except Exception:",
        "        pass",
        "    return _slow_enc(self)",
        "",
        "def decode(cls, buf, offset=0):",
        f"    end = offset + {size}",
        "    if cls is not _C or offset < 0 or len(buf) < end:",
        "        return _slow_dec.__func__(cls, buf, offset)",
        "    b = bytes(buf[offset:end])",
        "    obj = _new(cls)",
        *sets,
        "    return obj",
    ])
    exec(src, ns)  # noqa: S102 - generated from the class's own slots, as dataclasses does
    for name, fn in (("encode", ns["encode"]), ("decode", classmethod(ns["decode"]))):
        owner = next(c for c in cls.__mro__ if name in c.__dict__)
        if owner is Record or getattr(owner.__dict__[name], "_generated", False):
            fn_obj = fn.__func__ if isinstance(fn, classmethod) else fn
            fn_obj._generated = True
            fn_obj.__doc__ = getattr(Record, name).__doc__
            setattr(cls, name, fn)


_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _units(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The byte ranges ``(first, end)`` that ``spans`` (each ``(first, count)``) fall in:
    ranges sharing a byte merged, in byte order."""
    out: list[tuple[int, int]] = []
    for lo, n in sorted(spans):
        if out and lo < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], lo + n))
        else:
            out.append((lo, lo + n))
    return out


def _unit_code(n: int) -> str:
    """The struct code of a unit of ``n`` bytes: an integer when one fits, else bytes."""
    return _CODES.get(n, f"{n}s")


def packer(cls: type[Record], *names: str) -> Callable[..., bytes]:
    """A compiled encoder of ``cls`` taking the named integer fields positionally, every
    other field at its default: ``packer(PortInfo, "lid", "port_state")(5, 4)`` is
    ``PortInfo(lid=5, port_state=4).encode()``, errors included, without building the record
    (for answers assembled from live state, such as an SMA's PortInfo).

    The fields are grouped into the whole bytes they occupy, and each group is one item of a
    precompiled ``struct``: small-integer shifts instead of one record-wide integer."""
    slots = [cls.BY_NAME[n] for n in names]
    if any(s.kind != INT for s in slots):
        raise TypeError(f"{cls.NAME}: packer() takes integer fields only")
    spans = _spans(cls, names)
    base = bytearray(cls().encode())
    for byte, n, shift, mask in spans:
        v = int.from_bytes(base[byte:byte + n], "big") & ~(mask << shift)
        base[byte:byte + n] = v.to_bytes(n, "big")
    units = _units([(byte, n) for byte, n, _, _ in spans])
    fmt, items, at = [">"], [], 0
    ns: dict[str, Any] = {"_C": cls, "_names": names, "_error": struct.error}
    checked: list[tuple[int, int]] = []
    for j, (lo, hi) in enumerate(units):
        if lo > at:
            fmt.append(f"{lo - at}s")
            ns[f"_k{j}"] = bytes(base[at:lo])
            items.append(f"_k{j}")
        n = hi - lo
        code = _unit_code(n)
        fmt.append(code)
        terms = []
        for i, (byte, cnt, shift, mask) in enumerate(spans):
            if not lo <= byte < hi:
                continue
            sh = (hi - byte - cnt) * 8 + shift
            terms.append(f"v{i} << {sh}" if sh else f"v{i}")
            whole = code != f"{n}s" and sh == 0 and mask == (1 << 8 * n) - 1
            if not whole:  # struct checks a field that is its whole unit; these need a test
                checked.append((i, slots[i].width))
        const = int.from_bytes(base[lo:hi], "big")
        if const:
            terms.append(str(const))
        expr = " | ".join(terms)
        items.append(expr if code != f"{n}s" else f"({expr}).to_bytes({n}, 'big')")
        at = hi
    if at < cls.SIZE:
        ns["_tail"] = bytes(base[at:])
        fmt.append(f"{cls.SIZE - at}s")
        items.append("_tail")
    ns["_pack"] = struct.Struct("".join(fmt)).pack
    args = ", ".join(f"v{i}" for i in range(len(slots)))
    # One test per field width for the fields sharing their bytes: the OR of ints all in
    # 0..2^w-1 shifted right by w is 0 (a negative stays negative); anything that is not an
    # int fails the OR (TypeError). struct refuses the rest (out of range, not an integer).
    # Each failure leaves the record's own encode to raise its error.
    widths: dict[int, list[str]] = {}
    for i, w in checked:
        widths.setdefault(w, []).append(f"v{i}")
    checks = " or ".join(f"({' | '.join(vs)}) >> {w}" for w, vs in widths.items()) or "0"
    src = (f"def pack({args}):\n    try:\n        if not ({checks}):\n"
           f"            return _pack({', '.join(items)})\n"
           f"    except (TypeError, OverflowError, _error):\n        pass\n"
           f"    return _C(**dict(zip(_names, ({args}{',' if slots else ''})))).encode()\n")
    exec(src, ns)  # noqa: S102 - generated from the class's own slots
    fn: Callable[..., bytes] = ns["pack"]
    return fn


def _spans(cls: type[Record], names: tuple[str, ...]) -> list[tuple[int, int, int, int]]:
    """(first byte, byte count, shift within those bytes, mask) of each named integer field."""
    out = []
    for name in names:
        s = cls.BY_NAME[name]
        if s.kind != INT:
            raise TypeError(f"{cls.NAME}.{name} is not an integer field")
        n = (s.bit + s.width + 7) // 8
        out.append((s.byte, n, n * 8 - s.bit - s.width, s.mask))
    return out


def reader(cls: type[Record], *names: str) -> Callable[[Buffer, int], tuple[int, ...]]:
    """A compiled ``read(buf, offset)``: the named integer fields of the ``cls`` record at
    ``offset`` in ``buf``, as a tuple, without decoding the rest: one precompiled
    ``struct`` unpack of the whole bytes they occupy, then a shift and mask per field."""
    spans = _spans(cls, names)
    units = _units([(byte, n) for byte, n, _, _ in spans])
    fmt, at = [">"], 0
    for lo, hi in units:
        if lo > at:
            fmt.append(f"{lo - at}x")
        fmt.append(_unit_code(hi - lo))
        at = hi
    terms = []
    for byte, n, shift, mask in spans:
        j, (lo, hi) = next((j, u) for j, u in enumerate(units) if u[0] <= byte < u[1])
        v = f"u{j}" if _unit_code(hi - lo) in _CODES.values() else f"_fb(u{j}, 'big')"
        sh = (hi - byte - n) * 8 + shift
        v += f" >> {sh}" if sh else ""
        v += f" & {mask}" if (hi - lo) * 8 - sh > mask.bit_length() else ""
        terms.append(v)
    unpack = "".join(f"u{j}, " for j in range(len(units)))
    src = ("def read(buf, offset=0):\n"
           + (f"    if offset < 0:\n        _short(buf, offset)\n"
              f"    try:\n        {unpack}= _unpack(buf, offset)\n"
              f"    except _error:\n        _short(buf, offset)\n" if units else "")
           + f"    return ({', '.join(terms)}{',' if terms else ''})\n")
    ordered = sorted(zip(spans, names, strict=True))

    def short(buf: Buffer, offset: int) -> None:
        have = len(buf) - offset if offset >= 0 else 0
        (byte, n, _, _), name = next((s, f) for s, f in ordered if s[0] + s[1] > have)
        raise DecodeError(cls.NAME, name, max(offset, 0) + byte,
                          f"need {byte + n} bytes, have {max(have, 0)}")

    ns: dict[str, Any] = {"_fb": int.from_bytes, "_error": struct.error, "_short": short,
                          "_unpack": struct.Struct("".join(fmt)).unpack_from}
    exec(src, ns)  # noqa: S102 - generated from the class's own slots
    fn: Callable[[Buffer, int], tuple[int, ...]] = ns["read"]
    return fn


def patcher(cls: type[Record], *names: str) -> Callable[..., None]:
    """A compiled ``patch(buf, offset, *values)``: write the named integer fields of the
    ``cls`` record at ``offset`` in the ``bytearray`` ``buf``, each value masked to its
    width, leaving every other bit alone (one ``struct`` unpack and one pack of the bytes
    from the first named field to the last)."""
    spans = _spans(cls, names)
    units = _units([(byte, n) for byte, n, _, _ in spans])
    fmt, got, items, at = [">"], [], [], units[0][0] if units else 0
    for j, (lo, hi) in enumerate(units):
        if lo > at:
            fmt.append(f"{lo - at}s")
            got.append(f"g{j}")
            items.append(f"g{j}")
        got.append(f"u{j}")
        n = hi - lo
        code = _unit_code(n)
        fmt.append(code)
        whole = code in _CODES.values()
        keep, terms = (1 << 8 * n) - 1, []
        for i, (byte, cnt, shift, mask) in enumerate(spans):
            if lo <= byte < hi:
                sh = (hi - byte - cnt) * 8 + shift
                keep &= ~(mask << sh)
                terms.append(f"(v{i} & {mask}) << {sh}" if sh else f"v{i} & {mask}")
        u = f"u{j}" if whole else f"_fb(u{j}, 'big')"
        expr = " | ".join(([f"{u} & {keep}"] if keep else []) + terms)
        items.append(expr if whole else f"({expr}).to_bytes({n}, 'big')")
        at = hi
    lines = ["def patch(buf, offset, " + "".join(f"v{i}, " for i in range(len(names)))
             + "):"]
    if units:
        lines.append(f"    at = offset + {units[0][0]}")
        lines.append(f"    {''.join(g + ', ' for g in got)}= _unpack(buf, at)")
        lines.append(f"    _pack_into(buf, at, {', '.join(items)})")
    lines.append("    return None")
    st = struct.Struct("".join(fmt))
    ns: dict[str, Any] = {"_fb": int.from_bytes, "_unpack": st.unpack_from,
                          "_pack_into": st.pack_into}
    exec("\n".join(lines) + "\n", ns)  # noqa: S102 - generated from the class's own slots
    fn: Callable[..., None] = ns["patch"]
    return fn


def match(record: Record, template: Record, mask: int) -> bool:
    """True when ``record`` equals ``template`` on every field selected by ``mask``.

    This is the SA's basic matching rule (IBA 15.4.4): components not in the mask are
    wildcards. Selector semantics (MTU, rate, lifetime) are the SA's job, on top of this.
    """
    for s in record.SLOTS:
        if (s.cm is not None and mask >> s.cm & 1
                and getattr(record, s.name) != getattr(template, s.name)):
            return False
    return True
