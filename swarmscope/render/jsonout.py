"""JSON output: fast, streamed, and byte for byte what ``json.dumps(doc, indent=2)`` prints.

orjson (a C encoder) serialises the dataclasses directly, without building
dicts first. A large document (a dump: its node snapshots and path maps) is
written one list element at a time, so the encoded text of the whole document
never sits in memory at once. The output is ASCII with the same escapes,
separators and indentation as the standard library's, which stays the
fallback where orjson is missing or meets a type it does not know.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from swarmscope.model import to_dict

try:  # pragma: no branch
    import orjson
except ImportError:  # pragma: no cover - a dependency, but keep working without it
    orjson = None  # type: ignore[assignment]

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(m: re.Match) -> str:
    c = ord(m.group(0))
    if c <= 0xFFFF:
        return f"\\u{c:04x}"
    c -= 0x10000
    return f"\\u{0xD800 | (c >> 10):04x}\\u{0xDC00 | (c & 0x3FF):04x}"


def _ascii(b: bytes) -> bytes:
    """orjson writes UTF-8; json.dumps escapes non-ASCII (only ever inside strings) as \\uXXXX."""
    if b.isascii():
        return b
    return _NON_ASCII.sub(_escape, b.decode("utf-8")).encode("ascii")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _fields(obj: Any) -> dict:
    """A dataclass orjson does not take as one (a subclass of one, e.g. correlate.types.SharedHop): its fields,
    in order, as the dataclass itself would be written (their names looked up once per class: a 100-node
    swarm's dump writes a million shared hops)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            raise TypeError(f"{type(obj).__name__} is not JSON serializable")
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    return {n: getattr(obj, n) for n in names}


def encode(obj: Any) -> bytes:
    """``json.dumps(to_dict(obj), indent=2)`` as bytes, fast."""
    if orjson is not None:
        try:
            return _ascii(orjson.dumps(obj, default=_fields, option=orjson.OPT_INDENT_2))
        except (TypeError, orjson.JSONEncodeError):
            pass
    return json.dumps(to_dict(obj), indent=2).encode("ascii")


def _chunks(doc: Any) -> Iterator[bytes]:
    """The indented text of ``doc`` in pieces: a top-level object's lists are encoded element by element."""
    if not isinstance(doc, dict) or not doc:
        yield encode(doc)
        return
    yield b"{"
    first = True
    for k, v in doc.items():
        yield (b"\n  " if first else b",\n  ") + json.dumps(str(k)).encode("ascii") + b": "
        first = False
        if isinstance(v, list) and v:
            yield b"["
            for i, item in enumerate(v):
                yield (b"\n    " if i == 0 else b",\n    ") + encode(item).replace(b"\n", b"\n    ")
            yield b"\n  ]"
        else:
            yield encode(v).replace(b"\n", b"\n  ")
    yield b"\n}"


def write_json(doc: Any, fh: IO[bytes], newline: bool = True) -> None:
    """Write ``doc`` (dicts, lists, dataclasses) indented by 2, as json.dumps would, to a binary stream."""
    for chunk in _chunks(doc):
        fh.write(chunk)
    if newline:
        fh.write(b"\n")


def dumps(doc: Any) -> str:
    """The indented text of ``doc`` as a str (for small documents)."""
    return b"".join(_chunks(doc)).decode("ascii")


# --------------------------------------------------------------------------- the commands' documents


def explain_document(analysis: Any, services: list) -> dict:
    """``explain --format json``: the nodes, the services explained, and the findings about them
    (or about no service in particular)."""
    from swarmscope.correlate.serving import serving_table

    names = {s.name for s in services}
    return {
        "nodes": analysis.nodes,
        "services": services,
        "findings": [f for f in analysis.findings if f.service in names or f.service is None],
        "serving": serving_table(analysis, services),
    }


def check_document(analysis: Any, complete: bool, failed_nodes: list) -> dict:
    """``check --format json``: the nodes, whether the data is complete, the nodes that failed, every finding,
    and which nodes serve each published port (``serving``: per service and port, per node yes / no / unknown
    and the first broken hop; correlate/serving.py)."""
    from swarmscope.correlate.serving import serving_table

    return {"nodes": analysis.nodes, "complete": complete, "failed_nodes": failed_nodes, "findings": analysis.findings,
            "serving": serving_table(analysis)}


def for_explain(analysis: Any, services: list, view: Any) -> dict:
    """``explain --format json``."""
    return explain_document(analysis, services)


def for_check(run: Any, view: Any) -> dict:
    """``check --format json``."""
    return check_document(run.analysis, run.complete, run.failed)
