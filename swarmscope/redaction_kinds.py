"""How a field of the snapshot model is redacted: the kinds, and the declaration each field carries.

Every field of the model (``swarmscope/model.py``) that can hold text says how it is redacted in its
own declaration, ``hostname: str = redact_as(TEXT)``; a map also says how its keys are
(``sysctls: dict[str, str | None] = redact_as(NONAME, keys=KEEP, default_factory=dict)``).
``model.py`` checks at import that no text field and no map lacks its declaration, and ``redact.py``
reads them (``declaration``). This module imports nothing of the project, so the model can use it
without the redaction machinery.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RedactKind(StrEnum):
    """How a string value is redacted (a member is the string it always was)."""

    KEEP = "keep"  # enumerations, versions, times, numbers: identify no one (and carry meaning)
    TEXT = "text"  # free text: addresses, MACs, ids, names, domains, images, e-mail, URL credentials, tokens
    NONAME = "noname"  # structured values where Docker writes no names (interfaces, chains, addresses): all but names
    RAW = "raw"  # command output: as NONAME, and names in comment lines, quoted words, --comment/--log-prefix values
    IMAGE = "image"  # an image reference
    LABELS = "labels"  # a label map: keys other than com.docker.* replaced, values as tokens or text
    PROCESS = "process"  # a process name: the engine's kept, any other replaced
    OPTION = "option"  # an iptables option value: TEXT for --comment/--log-prefix/--nflog-prefix, else NONAME


KEEP = RedactKind.KEEP
TEXT = RedactKind.TEXT
NONAME = RedactKind.NONAME
RAW = RedactKind.RAW
IMAGE = RedactKind.IMAGE
LABELS = RedactKind.LABELS
PROCESS = RedactKind.PROCESS
OPTION = RedactKind.OPTION

#: the key of a field's metadata that holds its FieldRedaction
METADATA_KEY = "swarmscope.redact"


@dataclass(frozen=True)
class FieldRedaction:
    """A field's declaration: how its strings are redacted (None where it holds none but map keys),
    and for a map how its keys are."""

    how: RedactKind | None = None
    keys: RedactKind | None = None


def redact_as(
    how: RedactKind | None = None,
    *,
    keys: RedactKind | None = None,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field (``dataclasses.field``) that declares how it is redacted."""
    if how is not None and not isinstance(how, RedactKind):
        raise TypeError(f"redact_as: {how!r} is not a RedactKind")
    if keys is not None and not isinstance(keys, RedactKind):
        raise TypeError(f"redact_as: keys={keys!r} is not a RedactKind")
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: FieldRedaction(how, keys)}
    )


def declaration(f: dataclasses.Field) -> FieldRedaction | None:
    """The FieldRedaction a field declares, or None."""
    return f.metadata.get(METADATA_KEY)


def _types(tp: Any) -> list[Any]:
    out = [tp]
    for a in typing.get_args(tp):
        out += _types(a)
    return out


def _text_outside_keys(tp: Any) -> bool:
    """Whether values of type ``tp`` can hold a str other than the key of a map."""
    if tp is str:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict:
        return any(_text_outside_keys(a) for a in args[1:])
    if origin in (list, tuple, typing.Union, types.UnionType):
        return any(_text_outside_keys(a) for a in args)
    return False


def undeclared(cls: type, hints: dict[str, Any] | None = None) -> list[str]:
    """The fields of dataclass ``cls`` that lack a declaration they need: a field that can hold text
    needs ``how``, a map needs ``keys`` (a LABELS map redacts its own keys). Fields of numbers,
    booleans and model records need none (each record declares its own fields). ``hints``: the class's
    resolved type hints, where the caller has them."""
    if hints is None:
        hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        d = declaration(f)
        how = d.how if d is not None else None
        keys = d.keys if d is not None else None
        if _text_outside_keys(tp) and how is None:
            out.append(f"{cls.__name__}.{f.name}")
        elif any(typing.get_origin(t) is dict for t in _types(tp)) and keys is None and how != LABELS:
            out.append(f"{cls.__name__}.{f.name} (its keys)")
    return out
