"""One node of a dump read straight from its JSON text by msgspec, into the model's dataclasses.

``dump.split_nodes`` leaves each node snapshot of a dump as a slice of the file's text; ``read_node``
decodes such a slice with msgspec (C: parsing, type checks and building the dataclasses in one pass,
no parsed tree in between). It returns None wherever the result could differ from the reading it
replaces (orjson, then ``model._decoder``, then ``dump.check_snapshot_data`` where that refuses): the
caller then reads the node that way, so what is accepted, what is refused and every error's words
are as before. msgspec refuses all the current reading refuses except two things, handled here:

* integers outside [-2**63, 2**63] (msgspec takes integers of any size): the model's integer fields
  are ``model.I64``, bounds msgspec applies (to 2**63 - 1: 2**63 itself is left to the old reading);
* ``schema`` and ``version`` are fields with defaults, but a node without them is not a snapshot: the
  node is decoded as a copy of ``Snapshot`` where both are required, and their values are checked;
Nothing else differs: a wrong type, null where it is not allowed, a missing required field, a
non-finite or malformed number, bad UTF-8 or an unpaired surrogate, trailing text make msgspec raise
(-> None); a shared record's text is checked so when it is first met (a text met again was read
before). Unknown keys are ignored by both; of a key given twice both keep the last.

Sharing (``model.SHARED_RECORDS``): equal rules, real servers, network task endpoints and peers of
different nodes are one object, as ``model.sharing`` makes them. The node is decoded into copies of
the model's classes that lead to shared records, where a list of shared records is a list of their
JSON texts (``msgspec.Raw``: skipped, not built); each copy is then made the model's class
(``__class__``) and each text replaced by the record read for that text before; the texts not seen
before are decoded (in one call per list) and their own shared records (a rule's options and matches)
looked up by value (their JSON as msgspec encodes it), so a new rule's options are other rules'. Unlike
``model.sharing``, a record is not looked up by value itself: two equal rules written differently (not
seen in a dump: one writer writes a record at the same depth the same way) would be two objects. Both
ways cost time and, through the keys held while reading, memory (at 50 nodes: 0.15 s and 25 MiB more
once read for looking every new rule up by value; 0.25 s less and 47 MiB more for no sharing below
the record).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from swarmscope import model
from swarmscope.model import READABLE_SNAPSHOT_VERSIONS, SHARED_RECORDS, SNAPSHOT_SCHEMA, Snapshot

#: the model's integer fields (``model.I64``, plain ``int`` there) with the bounds msgspec applies, in
#: [-2**63, 2**63 - 1] (2**63 itself: the slow reading). Set in the model's namespace, where the fields'
#: annotations are resolved by name, before any decoder is made (``model`` does not import msgspec: every
#: collection would pay for it)
I64 = typing.Annotated[int, msgspec.Meta(ge=-model._INT_LIMIT, le=model._INT_LIMIT - 1)]
model.I64 = I64

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field types of ``cls`` with their msgspec bounds (``model.I64``), which ``model._hints`` leaves out."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]

def _snapshot_fields() -> list[Any]:
    """``Snapshot``'s fields for make_dataclass, ``schema`` and ``version`` required (a node without them
    is not a snapshot: read by the model's reading, which says so)."""
    hints = _hints(Snapshot)
    out: list[Any] = []
    for f in dataclasses.fields(Snapshot):
        out.append((f.name, hints[f.name]) if f.name in ("schema", "version") else (f.name, hints[f.name], f))
    return out


def _is_shared(tp: Any) -> bool:
    return isinstance(tp, type) and tp.__name__ in SHARED_RECORDS


def _optional(tp: Any) -> Any:
    """X of ``X | None``; None for any other union; ``tp`` itself otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return tp


class _Plan:
    """The decoding types (copies of the model classes that hold shared records) and, per copy, how to
    make a decoded copy the model's object."""

    def __init__(self) -> None:
        self.copies: dict[type, type] = {}  # model class -> its decoding copy
        self.fixes: dict[type, Callable[[Any, _Tables], None]] = {}  # copy -> fix-up
        self.root = self.copy(Snapshot, _snapshot_fields())

    def holds_shared(self, tp: Any, seen: frozenset = frozenset()) -> bool:
        inner = _optional(tp)
        if inner is None:
            return False
        origin = typing.get_origin(inner)
        if origin is list:
            (item,) = typing.get_args(inner)
            return _is_shared(item) or self.holds_shared(item, seen)
        if origin is dict:
            return self.holds_shared(typing.get_args(inner)[1], seen)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner) and not _is_shared(inner) and inner not in seen:
            hints = _hints(inner)
            return any(self.holds_shared(hints[f.name], seen | {inner}) for f in dataclasses.fields(inner))
        return False

    def decode_type(self, tp: Any) -> Any:
        """The type to decode a ``tp`` value as."""
        inner = _optional(tp)
        if inner is None or not self.holds_shared(inner):
            return tp
        if inner is not tp:
            return self.decode_type(inner) | None
        origin = typing.get_origin(tp)
        if origin is list:
            (item,) = typing.get_args(tp)
            return list[msgspec.Raw] if _is_shared(item) else list[self.decode_type(item)]  # type: ignore[misc]
        if origin is dict:
            return dict[str, self.decode_type(typing.get_args(tp)[1])]  # type: ignore[misc]
        return self.copy(tp)

    def copy(self, cls: type, fields: list[Any] | None = None) -> type:
        if cls in self.copies:
            return self.copies[cls]
        hints = _hints(cls)
        if fields is None:
            fields = [(f.name, hints[f.name], f) for f in dataclasses.fields(cls)]
        made = []
        parts = []
        for spec in fields:
            name, tp = spec[0], spec[1]
            dt = self.decode_type(tp)
            if dt is not tp:
                parts.append((name, self.fixer(tp)))
            if len(spec) == 3:
                f = spec[2]
                default = (dataclasses.field(default=f.default) if f.default is not dataclasses.MISSING
                           else dataclasses.field(default_factory=f.default_factory)
                           if f.default_factory is not dataclasses.MISSING else None)
                made.append((name, dt, default) if default is not None else (name, dt))
            else:
                made.append((name, dt))
        # the same slots as the model's class: a copy's __class__ can be changed to it
        clone = dataclasses.make_dataclass(f"{cls.__name__}Text", made, slots=True)
        self.copies[cls] = clone

        def fix(obj: Any, tables: _Tables) -> None:
            obj.__class__ = cls
            for name, f in parts:
                v = getattr(obj, name)
                if v is not None:
                    r = f(v, tables)
                    if r is not None:
                        setattr(obj, name, r)

        self.fixes[clone] = fix
        return clone

    def fixer(self, tp: Any) -> Callable[[Any, _Tables], Any]:
        """(decoded value, tables) -> the model's value (or None: fixed in place) of a ``tp`` field."""
        inner = _optional(tp)
        origin = typing.get_origin(inner)
        if origin is list:
            (item,) = typing.get_args(inner)
            if _is_shared(item):
                return self.shared_list(item)
            each = self.fixer(item)

            def a_list(v: Any, tables: _Tables) -> None:
                for x in v:
                    if x is not None:
                        each(x, tables)

            return a_list
        if origin is dict:
            each_d = self.fixer(typing.get_args(inner)[1])

            def a_dict(v: Any, tables: _Tables) -> None:
                for x in v.values():
                    if x is not None:
                        each_d(x, tables)

            return a_dict
        clone = self.copy(inner)
        fixes = self.fixes

        def an_object(v: Any, tables: _Tables) -> None:
            fixes[clone](v, tables)

        return an_object

    def shared_list(self, cls: type) -> Callable[[Any, _Tables], Any]:
        _register(cls)
        decoder: Any = msgspec.json.Decoder(list[cls])  # type: ignore[valid-type]

        def shared(raws: Any, tables: _Tables) -> list:
            table = tables.text.setdefault(cls, {})
            keys = list(map(bytes, raws))
            try:
                return list(map(table.__getitem__, keys))  # all seen before: at C speed
            except KeyError:
                pass
            new = [k for k in dict.fromkeys(keys) if k not in table]  # each text not seen before, once
            for k, obj in zip(new, decoder.decode(b"[" + b",".join(new) + b"]"), strict=True):  # in one call
                table[k] = _parts_shared(obj, tables)
            return list(map(table.__getitem__, keys))

        return shared


class _Tables:
    """The shared records read so far: by JSON text (``text``) and by value (``value``), per class."""

    def __init__(self) -> None:
        self.text: dict[type, dict[bytes, Any]] = {}
        self.value: dict[type, dict[bytes, Any]] = {}


_encode = msgspec.json.Encoder().encode


def _parts_shared(obj: Any, tables: _Tables) -> Any:
    """``obj``, a shared record read from a text not seen before, with its own shared records (a rule's
    options and matches) made the shared ones of their value."""
    for name, sub in _SUB_SHARED.get(type(obj), ()):
        value = getattr(obj, name)
        if sub == "list":
            value[:] = [_by_value(x, tables) for x in value]
        elif value is not None:
            setattr(obj, name, _by_value(value, tables))
    return obj


def _by_value(obj: Any, tables: _Tables) -> Any:
    """The shared record equal to ``obj`` (itself when it is the first of its value, its own shared
    records made the shared ones first)."""
    table = tables.value.setdefault(type(obj), {})
    key = _encode(obj)
    known = table.get(key)
    if known is None:
        known = table[key] = _parts_shared(obj, tables)
    return known


_SUB_SHARED: dict[type, list[tuple[str, str]]] = {}


def _register(cls: type) -> None:
    """Note which fields of shared record ``cls`` hold shared records ("list" or "one"), and theirs."""
    if cls in _SUB_SHARED:
        return
    hints = _hints(cls)
    subs = []
    for f in dataclasses.fields(cls):
        tp = _optional(hints[f.name])
        if typing.get_origin(tp) is list and _is_shared(typing.get_args(tp)[0]):
            subs.append((f.name, "list"))
            _register(typing.get_args(tp)[0])
        elif _is_shared(tp):
            subs.append((f.name, "one"))
            _register(tp)
    _SUB_SHARED[cls] = subs


# ---------------------------------------------------------------------------- reading a node


class _Reader:
    def __init__(self) -> None:
        plan = _Plan()
        self.decoder: Any = msgspec.json.Decoder(plan.root)
        self.fix = plan.fixes[plan.root]


_READER: _Reader | None = None


def new_tables() -> _Tables:
    """The shared records' tables for one reading (a dump's nodes): dropped after it."""
    return _Tables()


def read_node(text: Any, tables: _Tables) -> Snapshot | None:
    """The snapshot of one node's JSON text (bytes or a memoryview), or None where the model's own reading
    must read it (it refuses it, or could read it otherwise: see the module's docstring)."""
    global _READER
    if _READER is None:
        _READER = _Reader()
    r = _READER
    try:
        snap = r.decoder.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    if snap.schema != SNAPSHOT_SCHEMA or snap.version not in READABLE_SNAPSHOT_VERSIONS:
        return None
    try:
        r.fix(snap, tables)
    except msgspec.DecodeError:  # a shared record's text that does not decode
        return None
    return typing.cast(Snapshot, snap)
