"""The compiled record codecs give exactly what the generic slot loops give.

:func:`ipoib.wire.layout.layout` installs a generated encoder and decoder on every record. They
are only an optimisation: for any bytes, the decoded record must equal (field values and their
types) what the generic loop builds through ``__init__``; for any field values, encoding must
give the same bytes, or the same error, as the generic encoder. Every record class of
``ipoib.wire`` is checked on random input.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ipoib.wire
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.layout import (
    INT,
    RAW,
    Record,
    Slot,
    layout,
    packer,
    patcher,
    raw,
    reader,
    text,
    u,
)
from ipoib.wire.smp import NodeDescription, PortInfo


def _records() -> list[type[Record]]:
    for mod in pkgutil.iter_modules(ipoib.wire.__path__):
        importlib.import_module(f"ipoib.wire.{mod.name}")
    seen: list[type[Record]] = []
    todo = list(Record.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "SLOTS" in cls.__dict__ and cls not in seen:
            seen.append(cls)
    return sorted(seen, key=lambda c: (c.__module__, c.__qualname__))


RECORDS = _records()


def _fields(rec: Record) -> list[tuple[str, type, Any]]:
    return [(s.name, type(getattr(rec, s.name)), getattr(rec, s.name)) for s in rec.SLOTS]


def test_every_wire_record_is_found_and_compiled() -> None:
    assert len(RECORDS) > 40
    compiled = [c for c in RECORDS if getattr(c.__dict__.get("encode"), "_generated", False)]
    # only records with text fields keep the generic code
    assert {c for c in RECORDS if c not in compiled} == {
        c for c in RECORDS if any(s.kind not in (INT, RAW) for s in c.SLOTS)}
    assert NodeDescription not in compiled and PortInfo in compiled


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
@settings(max_examples=30)
@given(data=st.data())
def test_decode_equals_the_generic_decoder(cls: type[Record], data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, 5))
    buf = data.draw(st.binary(min_size=0, max_size=cls.SIZE + offset + 4))
    kind = data.draw(st.sampled_from([bytes, bytearray, memoryview]))
    view = kind(buf)
    try:
        want = cls._decode_slow(view, offset)
    except DecodeError as e:
        with pytest.raises(DecodeError) as got:
            cls.decode(view, offset)
        assert (got.value.fmt, got.value.field, got.value.offset, got.value.reason) == (
            e.fmt, e.field, e.offset, e.reason)
        return
    rec = cls.decode(view, offset)
    assert type(rec) is cls
    assert _fields(rec) == _fields(want)
    assert rec == want and hash(rec) == hash(want)
    assert rec.encode() == want._encode_slow()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.__setattr__(cls.SLOTS[0].name, 0)


def _value(slot_kind: int, width: int) -> st.SearchStrategy[Any]:
    if slot_kind == INT:
        top = (1 << width) - 1
        return st.one_of(st.integers(0, top), st.sampled_from([top + 1, -1, True, 1.0, None,
                                                               "1", b"\x01"]))
    size = width // 8
    return st.one_of(st.binary(min_size=size, max_size=size),
                     st.binary(max_size=size + 2).map(bytearray),
                     st.sampled_from([None, 7, "x" * size]))


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (EncodeError, TypeError, ValueError) as e:
        args = (e.fmt, e.field, e.reason) if isinstance(e, EncodeError) else str(e)
        return type(e).__name__, args


@pytest.mark.parametrize("cls", [c for c in RECORDS if all(s.kind in (INT, RAW)
                                                         for s in c.SLOTS)],
                         ids=lambda c: f"{c.__module__}.{c.__qualname__}")
@settings(max_examples=30)
@given(data=st.data())
def test_encode_equals_the_generic_encoder(cls: type[Record], data: st.DataObject) -> None:
    values = {s.name: data.draw(_value(s.kind, s.width)) for s in cls.SLOTS}
    rec = cls.decode(bytes(cls.SIZE))
    for name, v in values.items():
        object.__setattr__(rec, name, v)  # bypass nothing but the frozen guard: any value
    assert _outcome(rec.encode) == _outcome(rec._encode_slow)


@layout(size=8, name="Sample", section="test")
@dataclass(frozen=True, slots=True, kw_only=True)
class Sample(Record):
    """Odd widths and alignments: a field across a byte boundary, a 3-byte raw."""

    a: int = u(0, 3, bit=2)
    b: int = u(0, 13, bit=5)
    c: bytes = raw(3, 3)
    d: int = u(6, 1, bit=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleChild(Sample):
    """A record class without its own layout: it keeps the parent's slots."""

    extra: int = 5


@layout(size=4, name="Texty", section="test")
@dataclass(frozen=True, slots=True, kw_only=True)
class Texty(Record):
    name: str = text(0, 4)


def test_bit_fields_across_bytes() -> None:
    rec = Sample(a=5, b=0x1ABC, c=b"xyz", d=1)
    b = rec.encode()
    assert b == rec._encode_slow()
    assert int.from_bytes(b, "big") == (5 << 59 | 0x1ABC << 46
                                        | int.from_bytes(b"xyz", "big") << 16 | 1 << 8)
    assert Sample.decode(b) == rec
    assert Sample.decode(b"\xff" + b, 1) == rec


def test_a_subclass_without_layout_decodes_through_init() -> None:
    rec = SampleChild.decode(Sample(a=1, b=2, c=b"abc", d=0).encode())
    assert type(rec) is SampleChild and rec.extra == 5 and (rec.a, rec.b) == (1, 2)


def test_text_records_keep_the_generic_codec() -> None:
    assert Texty.decode(b"ab\0\0").name == "ab"
    assert Texty(name="abc").encode() == b"abc\0"
    with pytest.raises(EncodeError):
        Texty(name="abcde").encode()


def test_encode_errors_name_the_field() -> None:
    with pytest.raises(EncodeError) as e:
        Sample(b=1 << 13).encode()
    assert e.value.field == "b"
    with pytest.raises(EncodeError) as e:
        Sample(c=b"ab").encode()
    assert e.value.field == "c"
    with pytest.raises(DecodeError) as d:
        Sample.decode(bytes(7))
    assert (d.value.field, d.value.offset) == ("length", 0)


@settings(max_examples=60)
@given(data=st.data())
def test_a_packer_encodes_as_the_record_would(data: st.DataObject) -> None:
    ints = [s for s in PortInfo.SLOTS if s.kind == INT]
    chosen = data.draw(st.lists(st.sampled_from(ints), unique=True, max_size=len(ints)))
    values = [data.draw(_value(INT, s.width)) for s in chosen]
    pack = packer(PortInfo, *(s.name for s in chosen))

    def record() -> bytes:
        return PortInfo(**{s.name: v for s, v in zip(chosen, values, strict=True)}).encode()

    assert _outcome(lambda: pack(*values)) == _outcome(record)


def test_packer_refuses_what_it_cannot_pack() -> None:
    with pytest.raises(TypeError):
        packer(Sample, "c")  # a byte-string field
    with pytest.raises(KeyError):
        packer(Sample, "nope")
    assert packer(Sample)() == Sample().encode()
    assert packer(Sample, "d", "a")(1, 7) == Sample(a=7, d=1).encode()


INT_RECORDS = [c for c in RECORDS if any(s.kind == INT for s in c.SLOTS)]


def _int_fields(cls: type[Record], data: st.DataObject) -> list[Slot]:
    """Some of ``cls``'s integer fields, each once."""
    ints = [s for s in cls.SLOTS if s.kind == INT]
    return data.draw(st.lists(st.sampled_from(ints), unique=True, min_size=1))


@pytest.mark.parametrize("cls", INT_RECORDS[::3], ids=lambda c: f"{c.__module__}.{c.__qualname__}")
@settings(max_examples=30)
@given(data=st.data())
def test_reader_and_patcher_touch_only_the_named_fields(cls: type[Record],
                                                        data: st.DataObject) -> None:
    chosen = _int_fields(cls, data)
    offset = data.draw(st.integers(0, 3))
    buf = bytearray(data.draw(st.binary(min_size=offset + cls.SIZE,
                                        max_size=offset + cls.SIZE + 3)))
    names = [s.name for s in chosen]
    rec = cls._decode_slow(bytes(buf), offset)
    assert reader(cls, *names)(buf, offset) == tuple(getattr(rec, n) for n in names)
    values = [data.draw(st.integers(0, 1 << (s.width + 2))) for s in chosen]
    want = int.from_bytes(buf[offset:offset + cls.SIZE], "big")
    for s, v in zip(chosen, values, strict=True):
        want = want & ~(s.mask << s.shift) | (v & s.mask) << s.shift  # masked, bits kept
    before = bytes(buf)
    patcher(cls, *names)(buf, offset, *values)
    assert buf[offset:offset + cls.SIZE] == want.to_bytes(cls.SIZE, "big")
    assert buf[:offset] == before[:offset] and buf[offset + cls.SIZE:] == before[
        offset + cls.SIZE:]


def test_reader_and_patcher_take_integer_fields_only() -> None:
    with pytest.raises(TypeError):
        reader(Sample, "c")
    with pytest.raises(TypeError):
        patcher(Sample, "a", "c")
    buf = bytearray(Sample(a=1, b=2, c=b"abc", d=1).encode())
    patcher(Sample, "b")(buf, 0, 0x1FFF)
    assert reader(Sample, "a", "b", "d")(buf, 0) == (1, 0x1FFF, 1)


@pytest.mark.parametrize("cls", INT_RECORDS[1::3], ids=lambda c: f"{c.__module__}.{c.__qualname__}")
@settings(max_examples=30)
@given(data=st.data())
def test_a_reader_on_a_short_buffer_raises_decode_error(cls: type[Record],
                                                        data: st.DataObject) -> None:
    chosen = _int_fields(cls, data)
    offset = data.draw(st.integers(-2, 3))
    buf = data.draw(st.binary(max_size=max(offset, 0) + cls.SIZE))
    read = reader(cls, *(s.name for s in chosen))
    have = len(buf) - offset if offset >= 0 else 0
    needed = {s.name: s.byte + (s.bit + s.width + 7) // 8 for s in chosen}
    if offset >= 0 and all(n <= have for n in needed.values()):
        rec = cls._decode_slow(bytes(buf[offset:]).ljust(cls.SIZE, b"\0"))
        assert read(buf, offset) == tuple(getattr(rec, s.name) for s in chosen)
        return
    with pytest.raises(DecodeError) as err:
        read(buf, offset)
    assert err.value.fmt == cls.NAME
    assert needed[err.value.field] > have  # the field named is one that is cut off
    assert err.value.offset == max(offset, 0) + next(s.byte for s in chosen
                                                     if s.name == err.value.field)
