"""The dump document: node snapshots + path maps + findings, and reading it back.

``swarmscope dump --json`` writes it; ``--from FILE`` reads a dump, a single
node snapshot (``collect --json``) or a report bundle (``report``), so a saved file can be explained anywhere,
without root and without Docker.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import io
import json
import mmap
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from swarmscope import __version__
from swarmscope.errors import DEFAULT_MAX_INPUT_MB, InputError
from swarmscope.model import (
    READABLE_SNAPSHOT_VERSIONS,
    SNAPSHOT_SCHEMA,
    SNAPSHOT_VERSION,
    Snapshot,
    _decoder,
    _Mismatch,
    sharing,
    to_dict,
    without_raw,
)

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from swarmscope.correlate.types import Analysis

DUMP_SCHEMA = "swarmscope/dump"
DUMP_VERSION = 1


def make_dump(snapshots: list[Snapshot], analysis: Analysis | None = None, failed_nodes: list[dict] | None = None,
              plain: bool = True, raw: bool = True) -> dict:
    """The dump document of ``snapshots`` and the pipeline's ``analysis`` of them. ``plain=False``
    leaves the snapshots, path maps and findings as dataclasses, for ``render.jsonout`` to encode
    directly (same text, no dict copy).

    ``raw=False`` leaves the commands' raw text out (``model.without_raw``: the iptables-save and
    ipvsadm text; the parsed rules and tables stay): what ``dump --json`` writes unless ``--raw`` is
    given. The default keeps it, for the report bundle's dump.json and scripts.

    Without ``analysis`` (scripts: contrib/golden_outputs.py, examples/make_examples.py,
    benchmarks/gen_swarm.py) it is the pipeline's (``pipeline.analyze_snapshots``); swarmscope
    itself always passes the analysis it already has (``pipeline.dump_document``)."""
    if analysis is None:
        from swarmscope.pipeline import analyze_snapshots

        analysis = analyze_snapshots(snapshots)
    if not raw:
        snapshots = [without_raw(s) for s in snapshots]
    if not plain:
        return {
            "schema": DUMP_SCHEMA,
            "version": DUMP_VERSION,
            "snapshot_version": SNAPSHOT_VERSION,
            "tool_version": __version__,
            "created_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "nodes": list(snapshots),
            "failed_nodes": failed_nodes or [],
            "services": analysis.services,
            "findings": analysis.findings,
        }
    return {
        "schema": DUMP_SCHEMA,
        "version": DUMP_VERSION,
        "snapshot_version": SNAPSHOT_VERSION,
        "tool_version": __version__,
        "created_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nodes": [s.to_dict() for s in snapshots],
        "failed_nodes": failed_nodes or [],
        "services": to_dict(analysis.services),
        "findings": to_dict(analysis.findings),
    }


# --------------------------------------------------------------------------- what is read is checked


_MAX_INT = 2**63  # ports, marks, counters, pids: anything larger is damage, not data


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _check(tp: Any, value: Any, where: str) -> None:
    """Raise InputError naming ``where`` when ``value`` (JSON data) does not have model type ``tp``.

    Each model type is compiled once into a validator; the path to a bad value is assembled only when
    one is found, so checking a large dump costs little more than walking it."""
    try:
        _validator(tp)(value)
    except _Bad as exc:
        raise InputError(f"{where}{''.join(reversed(exc.parts))}: {exc.msg}") from None


class _Bad(Exception):
    def __init__(self, msg: str, part: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.parts: list[str] = [part] if part else []


_VALIDATORS: dict[Any, Any] = {}


def _validator(tp: Any):
    v = _VALIDATORS.get(tp)
    if v is None:
        v = _VALIDATORS[tp] = _build_validator(tp)
    return v


def _null(tp: Any) -> _Bad:
    return _Bad(f"expected {_expected(tp)}, got null")


def _scalar_ok(tp: Any):
    import math

    if tp is bool:
        return lambda v: type(v) is bool
    if tp is int:
        return lambda v: type(v) is int and -_MAX_INT <= v <= _MAX_INT
    if tp is float:
        return lambda v: type(v) in (int, float) and math.isfinite(v)
    if tp is str:
        return lambda v: type(v) is str
    return None


def _build_validator(tp: Any):
    import dataclasses
    import types
    import typing

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return lambda value: None
        inner = args[0]

        def optional(value: Any) -> None:
            if value is not None:
                _validator(inner)(value)

        return optional
    if tp is Any:
        return lambda value: None
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        fast = _scalar_ok(item)

        def a_list(value: Any) -> None:
            if value is None:
                raise _null(tp)
            if type(value) is not list:
                raise _Bad(f"expected a list, got {_type_name(value)}")
            if fast is not None:
                if all(map(fast, value)):
                    return
                i = next(i for i, v in enumerate(value) if not fast(v))
                raise _scalar_bad(item, value[i], f"[{i}]")
            check = _validator(item)
            for i, v in enumerate(value):
                try:
                    check(v)
                except _Bad as exc:
                    exc.parts.append(f"[{i}]")
                    raise

        return a_list
    if origin is dict:
        _, vt = typing.get_args(tp) or (str, Any)

        def a_dict(value: Any) -> None:
            if value is None:
                raise _null(tp)
            if type(value) is not dict:
                raise _Bad(f"expected an object, got {_type_name(value)}")
            check = _validator(vt)
            for k, v in value.items():
                try:
                    check(v)
                except _Bad as exc:
                    exc.parts.append(f".{k}")
                    raise

        return a_dict
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _model_hints(tp)
        fields = [(f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                  for f in dataclasses.fields(tp)]

        def an_object(value: Any) -> None:
            if value is None:
                raise _null(tp)
            if type(value) is not dict:
                raise _Bad(f"expected an object, got {_type_name(value)}")
            for name, ftp, required in fields:
                if name in value:
                    try:
                        _validator(ftp)(value[name])
                    except _Bad as exc:
                        exc.parts.append(f".{name}")
                        raise
                elif required:
                    raise _Bad(f"missing (a {tp.__name__} needs it)", f".{name}")

        return an_object
    ok = _scalar_ok(tp)
    if ok is None:
        return lambda value: None

    def a_scalar(value: Any) -> None:
        if not ok(value):
            raise _scalar_bad(tp, value)

    return a_scalar


def _scalar_bad(tp: Any, value: Any, part: str | None = None) -> _Bad:
    if value is None:
        bad = _null(tp)
    else:
        shown = repr(value) if isinstance(value, (int, float, bool)) and len(repr(value)) < 30 else _type_name(value)
        bad = _Bad(f"expected {_expected(tp)}, got {shown}")
    if part:
        bad.parts.append(part)
    return bad


def _expected(tp: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(tp, "an object")


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _model_hints(cls: type) -> dict[str, Any]:
    import typing

    if cls not in _HINT_CACHE:
        _HINT_CACHE[cls] = typing.get_type_hints(cls)
    return _HINT_CACHE[cls]


def check_snapshot_data(data: Any, where: str) -> None:
    """Every field of a snapshot's JSON has the model's type (InputError naming the first that does not)."""
    _check(Snapshot, data, where)


def check_failed_nodes(data: Any, where: str) -> list[dict]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise InputError(f"{where}: expected a list, got {_type_name(data)}")
    for i, f in enumerate(data):
        if not isinstance(f, dict):
            raise InputError(f"{where}[{i}]: expected an object, got {_type_name(f)}")
        for k, v in f.items():
            if v is not None and not isinstance(v, str):
                raise InputError(f"{where}[{i}].{k}: expected a string, got {_type_name(v)}")
    return data


def _snapshot_header(n: Any, where: str) -> None:
    """Schema and version first: a snapshot of another version is told so, not picked apart."""
    if not isinstance(n, dict) or n.get("schema") != SNAPSHOT_SCHEMA:
        raise InputError(f"{where} is not a swarmscope node snapshot (expected schema {SNAPSHOT_SCHEMA!r})")
    if n.get("version") not in READABLE_SNAPSHOT_VERSIONS:
        versions = ", ".join(map(str, sorted(READABLE_SNAPSHOT_VERSIONS)))
        raise InputError(f"{where}: snapshot version {n.get('version')!r} is not supported "
                         f"(this swarmscope reads versions {versions})")


def _read_snapshot(data: Any, where: str) -> Snapshot:
    """One node's snapshot from its JSON, checked and converted in one pass (``model._decoder``, which
    accepts only what ``check_snapshot_data`` accepts). Where that pass refuses, the check names the
    damage (an InputError); what the check lets through is converted by the lenient converter."""
    try:
        snap = _snapshot_decoder()(data)
    except _Mismatch:
        check_snapshot_data(data, where)
        snap = Snapshot.from_dict(data)
    # an older version lacks only fields with defaults: read, it is a snapshot of this version
    snap.version = SNAPSHOT_VERSION
    return snap


_FASTREAD: Any = None


def _fastread() -> Any:
    """swarmscope.fastread (msgspec), or None where msgspec is not installed (the model's reading only)."""
    global _FASTREAD
    if _FASTREAD is None:
        try:
            from swarmscope import fastread

            _FASTREAD = fastread
        except ImportError:  # pragma: no cover - a dependency
            _FASTREAD = False
    return _FASTREAD or None


def _snapshot_decoder():
    return _decoder(Snapshot)


def snapshots_from_data(data: Any, source: str, release: bool = False, by_orjson: bool = False) -> list[Snapshot]:
    """Node snapshots from a parsed dump or snapshot document.

    ``release``: drop each node's JSON data from ``data`` once it is converted (the caller
    owns the document and needs only the snapshots), so both forms are not held at once.
    ``by_orjson``: orjson parsed ``data`` (model.sharing's ``text``).

    Python's cyclic garbage collector is paused meanwhile: a large dump is hundreds of thousands of
    new objects and no garbage, and each of the collections they would trigger walks them all
    again (at 25 nodes it was two thirds of the reading time)."""
    # equal rules and real servers of different nodes read once (model.SHARED_RECORDS)
    try:
        with _no_gc(), sharing(text=by_orjson):
            return _snapshots_from_data(data, source, release)
    finally:
        if by_orjson:
            _trim_heap()


def _trim_heap() -> None:
    """Hand the heap freed after reading back to the system: the JSON text of every distinct rule was kept
    while reading (model.sharing), in glibc's heap, which Python's small objects made after (the path
    maps) do not reuse (at 100 nodes a quarter of a GB more at the peak without this)."""
    from swarmscope import heap

    heap.trim()




@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _snapshots_from_data(data: Any, source: str, release: bool) -> list[Snapshot]:
    if not isinstance(data, dict):
        raise InputError(f"{source} is not a swarmscope dump or snapshot (top level is not a JSON object)")
    schema = data.get("schema")
    try:
        if schema == DUMP_SCHEMA:
            if data.get("version") != DUMP_VERSION:
                raise InputError(
                    f"{source} is a dump of version {data.get('version')!r}; "
                    f"this swarmscope reads version {DUMP_VERSION} "
                    "(use the swarmscope release that wrote it)"
                )
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or not nodes:
                raise InputError(f"{source} is a dump with no node snapshots in it")
            out = []
            tables = None
            for i, n in enumerate(nodes):
                snap = None
                if type(n) is _NodeText and _fastread() is not None:  # straight from its text (fastread.py)
                    if tables is None:
                        tables = _fastread().new_tables()
                    snap = _fastread().read_node(n.text, tables)
                    if snap is not None:
                        snap.version = SNAPSHOT_VERSION  # as _read_snapshot
                        _let_go(n.mapped, n.start, n.end)
                if snap is None:  # the model's reading: it names the damage, if any
                    n = _node_data(n)  # a node left as text by split_nodes is parsed now, alone
                    _snapshot_header(n, f"{source}: nodes[{i}]")
                    snap = _read_snapshot(n, f"{source} is damaged: nodes[{i}]")
                out.append(snap)
                if release:
                    nodes[i] = None
            check_failed_nodes(data.get("failed_nodes"), f"{source} is damaged: failed_nodes")
            return out
        if schema == SNAPSHOT_SCHEMA:
            _snapshot_header(data, source)
            return [_read_snapshot(data, f"{source} is damaged: $")]
    except ValueError as exc:
        raise InputError(f"{source} is damaged: {exc}") from None
    raise InputError(
        f"{source} is not a swarmscope dump or snapshot "
        f"(schema {schema!r}; expected {DUMP_SCHEMA!r} or {SNAPSHOT_SCHEMA!r})"
    )



def _limit_bytes(limit_mb: float | None) -> int:
    return int((DEFAULT_MAX_INPUT_MB if limit_mb is None else limit_mb) * 1024 * 1024)


def _too_big(path: str, limit: int, what: str = "") -> InputError:
    return InputError(f"{path}{what} is larger than the limit of {limit / (1024 * 1024):g} MiB for --from input "
                      "(--max-input MiB raises it)")


def read_input(path: str, limit_mb: float | None = None) -> bytes:
    """The bytes of ``path`` ('-': standard input): only a regular file (or standard input), at most
    ``limit_mb`` MiB; anything else is an InputError of one line."""
    import os
    import stat
    import sys

    limit = _limit_bytes(limit_mb)
    if path == "-":
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            raise _too_big("standard input", limit)
        return raw
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; the type is checked on what was opened
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is a directory; give the dump file written by `swarmscope dump --json -o FILE`")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a character device" if stat.S_ISCHR(st.st_mode)
                    else "a block device" if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "not a regular file")
            raise InputError(f"{path} is {kind}: --from reads a regular file (a dump, a snapshot or a report bundle); "
                             "for a stream use --from - and standard input")
        if st.st_size > limit:
            raise _too_big(path, limit)
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
        fd = -1
        with fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > limit:  # grew while being read
        raise _too_big(path, limit)
    return raw


def parse_json(raw: bytes, path: str) -> Any:
    """JSON text -> data; bad text, nesting too deep and numbers too long are InputErrors of one line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(f"{path} is damaged: JSON nested too deeply (a dump nests a few levels)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputError(f"{path} is damaged: {exc}") from None


def read_document(path: str, limit_mb: float | None = None) -> Any:
    """The parsed JSON of ``path``: a dump, a snapshot, or the dump inside a report bundle
    (``swarmscope report``, a tar.gz); '-' for standard input. At most ``limit_mb`` MiB are read,
    and at most as much is decompressed from a bundle."""
    return parse_document(read_raw(path, limit_mb), path)


def read_raw(path: str, limit_mb: float | None = None) -> bytes:
    """The JSON text of ``path`` (a report bundle's dump.json), as read_document reads it."""
    raw = read_input(path, limit_mb)
    if raw[:2] == b"\x1f\x8b":  # gzip: a report bundle
        raw = _dump_from_bundle(raw, path, _limit_bytes(limit_mb))
    return raw


def parse_document(raw: bytes, path: str) -> Any:
    """The parsed JSON text of a dump, snapshot or bundle (read_document)."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # the standard parser says where, in its words (and reads what orjson refuses, e.g. NaN)
    return parse_json(raw, path)


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to give more than ``limit`` bytes in all."""

    def __init__(self, inner, limit: int, path: str):
        self.inner, self.limit, self.path, self.total = inner, limit, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.inner.read(min(len(b), 1 << 20))
        self.total += len(data)
        if self.total > self.limit:
            raise _too_big(self.path, self.limit, " decompressed")
        b[: len(data)] = data
        return len(data)


def _dump_from_bundle(raw: bytes, path: str, limit: int | None = None) -> bytes:
    """dump.json of a report bundle, read as a stream: at most ``limit`` bytes are decompressed."""
    import gzip
    import tarfile
    import zlib

    limit = _limit_bytes(None) if limit is None else limit
    stream = io.BufferedReader(_Capped(gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb"), limit, path))
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for m in tar:
                if m.isfile() and m.name.count("/") <= 1 and m.name.rsplit("/", 1)[-1] == "dump.json":
                    if m.size > limit:
                        raise _too_big(path, limit, "'s dump.json")
                    fh = tar.extractfile(m)
                    if fh is not None:
                        return fh.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path} is gzip-compressed but not a readable swarmscope report bundle ({exc})") from None
    raise InputError(f"{path} is an archive without dump.json: not a swarmscope report bundle")


def _settled(snaps: list[Snapshot]) -> list[Snapshot]:
    """The snapshots a command read, moved out of the garbage collector's way (``gc.freeze``): they
    live as long as the command, hold no cycles (plain trees, freed by reference counting), and
    would otherwise be walked again by every full collection while the correlator works."""
    gc.freeze()
    return snaps


class _NodeText:
    """One node snapshot of a dump, still JSON text (a slice of the dump's): parsed when it is read.
    ``mapped``: the dump's file mapping, whose pages of this node are let go once it is parsed."""

    __slots__ = ("text", "mapped", "start", "end")

    def __init__(self, text: memoryview, mapped: Any = None, start: int = 0, end: int = 0):
        self.text, self.mapped, self.start, self.end = text, mapped, start, end


#: a dump's own judgement (its path maps and findings): what ``--from`` never reads back, since it judges the
#: nodes again. The split readings leave it unbuilt: at 100 nodes it is 1.3 GB of the 2.5 GB dump
#: ``dump --json`` writes, and parsing it took 7 GB and half a minute (issue #17)
_NOT_READ_BACK = frozenset({"services", "findings"})
_NOT_READ = "(not read back: judged again from the nodes)"
#: the most text after the nodes that the indented split parses with the head when the top-level keys are not
#: on lines of their own (gen_swarm's layout); more goes to msgspec's reading, which skips the path maps
_TAIL_PARSED = 1 << 20


class _Unsplit(Exception):
    """A node's text did not parse alone: the dump is read whole instead."""


_WS = b" \t\n\r"


def _skip_ws(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WS:
        i += 1
    return i


def split_nodes(raw: Any) -> dict | None:
    """A dump's document with its node snapshots left as text (``_NodeText``), or None where it cannot be
    split so: then it is parsed whole. Parsed whole, a dump is in memory three times at once (the text,
    the parser's tree, Python's objects: 4.5 GB at 100 nodes); node by node, the text and one node.

    A node ends at the first closing brace at the start of a line indented as the line where it opens
    (both writers of dumps indent their output: gen_swarm.py and render/jsonout.py); a newline is never
    inside a JSON string, so the cut is between tokens. Each node's text is parsed alone later and a node
    that does not parse (a cut in the wrong place, or damage) sends the whole dump to the whole parse
    (``_Unsplit``): what is read is exactly what the whole parse reads, or the whole parse is used."""
    if _orjson is None:
        return None
    doc = _split_indented(raw)
    return doc if doc is not None else _split_by_lengths(raw)


def _split_indented(raw: Any) -> dict | None:
    """``split_nodes`` by the writers' indentation (a search for each node's closing line: the fast way).

    After the nodes, each top-level key is found the same way (a line indented as the ``"nodes"`` key's that
    opens a string: deeper lines are indented more, and a JSON string holds no newline). Its value is parsed
    (orjson), except a dump's own judgement (``_NOT_READ_BACK``: its path maps and findings, which ``--from``
    judges again), which is passed over unparsed and unchecked."""
    assert _orjson is not None
    i = raw.find(b'"nodes"')
    if i < 0:
        return None
    head = raw[:i].rstrip()
    if head != b"{":  # what comes before must be whole keys of the top-level object
        if not head.endswith(b","):
            return None
        try:
            if type(_orjson.loads(head[:-1] + b"}")) is not dict:
                return None
        except _orjson.JSONDecodeError:
            return None
    key_line = raw[raw.rfind(b"\n", 0, i) + 1 : i]  # the top-level keys' indentation, where "nodes" opens its line
    j = _skip_ws(raw, i + len(b'"nodes"'))
    if raw[j : j + 1] != b":":
        return None
    j = _skip_ws(raw, j + 1)
    if raw[j : j + 1] != b"[":
        return None
    j = _skip_ws(raw, j + 1)
    line = raw[raw.rfind(b"\n", 0, j) + 1 : j]
    close = b"\n" + line[: len(line) - len(line.lstrip(b" \t"))] + b"}"
    spans = []
    mapped = raw if isinstance(raw, mmap.mmap) else None
    while True:
        if raw[j : j + 1] != b"{":
            return None
        k = _search(close, raw, j, mapped)  # searched: its pages leave the process as it goes
        if k < 0:
            return None
        end = k + len(close)
        spans.append((j, end))
        j = _skip_ws(raw, end)
        if raw[j : j + 1] == b",":
            j = _skip_ws(raw, j + 1)
            continue
        if raw[j : j + 1] != b"]":
            return None
        break
    by_line = not key_line.strip(b" \t")
    if not by_line and len(raw) - j > _TAIL_PARSED:  # a long rest that is not on lines of its own
        return None
    try:  # what comes after the nodes: parsed with the head where it is not on lines of its own (gen_swarm)
        doc = _orjson.loads(raw[:i] + b'"nodes":[]' + (b"}" if by_line else raw[j + 1 :]))
    except _orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or doc.get("nodes") != []:  # e.g. a second "nodes" key
        return None
    if by_line and not _read_tail(raw, j + 1, key_line, doc, mapped):
        return None
    text = memoryview(raw)
    doc["nodes"] = [_NodeText(text[a:b], mapped, a, b) for a, b in spans]
    _let_go(mapped, 0, len(raw))  # the search read every page: they come back from the page cache
    return doc


_PATTERNS: dict[bytes, Any] = {}


def _pattern(text: bytes) -> Any:
    """``text`` as a compiled pattern: the regular expression engine finds a line's start several times
    faster than bytes.find, whose skips are short in indented text (the 100-node generated dump's nodes split
    in 0.5 s instead of 1.0 s)."""
    import re

    if text not in _PATTERNS:
        _PATTERNS[text] = re.compile(re.escape(text))
    return _PATTERNS[text]


#: how much of a mapped dump one search reads before its pages are let go
_WINDOW = 64 << 20


def _search(text: bytes, raw: Any, start: int, mapped: mmap.mmap | None) -> int:
    """Where ``text`` first is in ``raw`` from ``start`` (-1: nowhere), searching a mapped file window by
    window and letting go of each window's pages once searched."""
    rx, width = _pattern(text), len(text)
    pos = gone = start
    while True:
        stop = len(raw) if mapped is None else min(len(raw), pos + _WINDOW)
        m = rx.search(raw, pos, stop)
        if m is not None:
            _let_go(mapped, gone, m.start())
            return m.start()
        if stop >= len(raw):
            _let_go(mapped, gone, len(raw))
            return -1
        pos = max(pos + 1, stop - width + 1)  # a match across the windows' edge
        _let_go(mapped, gone, pos)
        gone = pos


def _read_tail(raw: Any, p: int, indent: bytes, doc: dict, mapped: mmap.mmap | None) -> bool:
    """The top-level keys after the nodes' closing bracket (``p``: just after it) into ``doc``; False where
    the text is not as the writers write it (the caller then reads the dump the other way)."""
    assert _orjson is not None
    next_key = b"\n" + indent + b'"'
    p = _skip_ws(raw, p)
    while raw[p : p + 1] == b",":
        p = _skip_ws(raw, p + 1)
        if raw[raw.rfind(b"\n", 0, p) + 1 : p] != indent:
            return False
        key, v = _key_at(raw, p)
        if key is None or key in doc:  # a key given twice: the whole parse decides which counts
            return False
        e = _search(next_key, raw, v, mapped)  # the next key's line, or none: the document's end
        p = _last_non_ws(raw, v, len(raw) if e < 0 else e)  # the comma before the next key, or the closing brace
        last = _last_non_ws(raw, v, p)  # the value's last character
        if last < v or raw[p : p + 1] != (b"}" if e < 0 else b","):
            return False
        if key in _NOT_READ_BACK:  # passed over: only its brackets are looked at
            if raw[v : v + 1] + raw[last : last + 1] not in (b"[]", b"{}"):
                return False
            doc[key] = _NOT_READ
            continue
        try:
            doc[key] = _orjson.loads(raw[v : last + 1])
        except _orjson.JSONDecodeError:
            return False
    return raw[p : p + 1] == b"}" and _skip_ws(raw, p + 1) == len(raw)


def _key_at(raw: Any, i: int) -> tuple[str | None, int]:
    """The object key whose string opens at ``i``, and where its value starts (after the colon); (None, i)
    where the text there is not ``"key":``."""
    assert _orjson is not None
    if raw[i : i + 1] != b'"':
        return None, i
    k = _string_end(raw, i)
    if k < 0:
        return None, i
    try:
        key = _orjson.loads(raw[i:k])
    except _orjson.JSONDecodeError:
        return None, i
    v = _skip_ws(raw, k)
    if type(key) is not str or raw[v : v + 1] != b":":
        return None, i
    return key, _skip_ws(raw, v + 1)


def _last_non_ws(raw: Any, start: int, end: int) -> int:
    """The index of the last character in [start, end) that is not JSON whitespace, or start - 1."""
    i = end - 1
    while i >= start and raw[i : i + 1] in (b" ", b"\t", b"\n", b"\r"):
        i -= 1
    return i


def _split_by_lengths(raw: Any) -> dict | None:
    """``split_nodes`` of a dump in any layout (compact, or indented otherwise than the writers indent):
    msgspec parses the document's structure without building it (each top-level value, then each node, as
    ``msgspec.Raw``: its text, unparsed), and each node's place in the file is found by walking the text
    with those lengths (needed to let its pages go). What the walk does not find exactly as msgspec read it
    (a key given twice, text msgspec reads otherwise) is None: the whole parse."""
    assert _orjson is not None
    try:
        import msgspec
    except ImportError:  # pragma: no cover - a dependency
        return None
    try:
        top = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        nodes = msgspec.json.decode(top["nodes"], type=list[msgspec.Raw]) if "nodes" in top else None
    except (msgspec.DecodeError, RecursionError):  # the whole parse tells what is wrong, in its words
        return None
    if nodes is None:
        return None
    spans: list[tuple[int, int]] = []
    doc: dict = {}
    i = _skip_ws(raw, 0)
    if raw[i : i + 1] != b"{":
        return None
    i = _skip_ws(raw, i + 1)
    while raw[i : i + 1] == b'"':
        key, i = _key_at(raw, i)
        if key is None or key in doc or key not in top:  # a key given twice: the whole parse decides which counts
            return None
        value = top[key]
        if key == "nodes":
            if raw[i : i + 1] != b"[":
                return None
            i = _skip_ws(raw, i + 1)
            for n, node in enumerate(nodes):
                length = len(memoryview(node))
                if raw[i : i + 1] != b"{" or not _same_ends(raw, i, memoryview(node)):
                    return None
                spans.append((i, i + length))
                i = _skip_ws(raw, i + length)
                if n < len(nodes) - 1:
                    if raw[i : i + 1] != b",":
                        return None
                    i = _skip_ws(raw, i + 1)
            if raw[i : i + 1] != b"]":
                return None
            doc[key] = []
            i += 1
        else:
            mv = memoryview(value)  # msgspec's slice of the text: parsed from there, not copied
            length = len(mv)
            if not _same_ends(raw, i, mv):
                return None
            if key in _NOT_READ_BACK:  # checked as JSON by msgspec above, and never built
                doc[key] = _NOT_READ
            else:
                try:
                    doc[key] = _orjson.loads(mv)
                except _orjson.JSONDecodeError:
                    return None
            i += length
        i = _skip_ws(raw, i)
        if raw[i : i + 1] == b",":
            i = _skip_ws(raw, i + 1)
            continue
        break
    if raw[i : i + 1] != b"}" or _skip_ws(raw, i + 1) != len(raw) or list(doc) != list(top):
        return None
    mapped = raw if isinstance(raw, mmap.mmap) else None
    text_view = memoryview(raw)
    doc["nodes"] = [_NodeText(text_view[a:b], mapped, a, b) for a, b in spans]
    _let_go(mapped, 0, len(raw))  # msgspec read every page: they come back from the page cache
    return doc


def _same_ends(raw: Any, i: int, value: memoryview, n: int = 64) -> bool:
    """Whether the text at ``i`` begins and ends as ``value`` (a value msgspec read from the same text):
    the walk is in step with msgspec's reading (each node is parsed whole later, which checks the rest)."""
    length = len(value)
    k = min(n, length)
    return raw[i : i + k] == value[:k].tobytes() and raw[i + length - k : i + length] == value[length - k :].tobytes()


def _string_end(raw: Any, i: int) -> int:
    """Where the JSON string opening at ``i`` ends (after its closing quote), or -1."""
    j = i + 1
    while True:
        j = raw.find(b'"', j)
        if j < 0:
            return -1
        back = j
        while raw[back - 1 : back] == b"\\":
            back -= 1
        if (j - back) % 2 == 0:  # the quote is not escaped
            return j + 1
        j += 1


def _let_go(mapped: mmap.mmap | None, start: int, end: int) -> None:
    """Drop the pages of ``mapped`` in [start, end) from the process (a read-only file mapping: the file
    and the page cache keep them), so reading a dump does not hold all of its text at once."""
    if mapped is None or not hasattr(mapped, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages only: a shared page is a neighbour's too
    last = end // mmap.PAGESIZE * mmap.PAGESIZE if end < len(mapped) else len(mapped)
    if last > first:
        try:
            mapped.madvise(mmap.MADV_DONTNEED, first, last - first)
        except (OSError, ValueError):
            pass


def _node_data(n: Any) -> Any:
    if type(n) is not _NodeText:
        return n
    try:
        data = _orjson.loads(n.text)
    except _orjson.JSONDecodeError:
        raise _Unsplit from None
    _let_go(n.mapped, n.start, n.end)
    return data


def _map_input(path: str, limit_mb: float | None) -> mmap.mmap | None:
    """A regular file within the limit, mapped read-only (its pages are read as they are parsed and let
    go after); None for anything else, which read_input reads (and refuses) as ever."""
    import os
    import stat

    if path == "-":
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= _limit_bytes(limit_mb):
            return None
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _read(path: str, limit_mb: float | None, convert: Callable[[Any, bool], Any]) -> Any:
    """``convert(document, by_orjson)`` (which reads the snapshots with ``release``) on the document of ``path``: split
    node by node where it can be (split_nodes), else parsed whole. Input the split reading refuses
    (damage) is read whole again, so its error is the one the whole parse gives."""
    mapped = _map_input(path, limit_mb)
    if mapped is not None:
        try:
            doc = split_nodes(mapped) if mapped[:2] != b"\x1f\x8b" else None  # not a gzip bundle
            if doc is not None:
                return convert(doc, True)
        except (_Unsplit, InputError):
            doc = None
            gc.collect()  # what refers to the mapping (the failed attempt's traceback)
        finally:
            try:
                mapped.close()
            except BufferError:  # a node's text still referenced: the mapping goes when it is freed
                pass
    raw = read_raw(path, limit_mb)
    doc = split_nodes(raw)
    if doc is not None:
        try:
            return convert(doc, True)
        except (_Unsplit, InputError):
            doc = None
            gc.collect()
    return convert(parse_document(raw, path), False)


def load(path: str, limit_mb: float | None = None) -> list[Snapshot]:
    """Read ``path`` (a dump, a snapshot or a report bundle; '-' for standard input). The collector
    is paused while the text is parsed too: orjson's objects would trigger it as the model's do."""
    with _no_gc():
        return _settled(_read(path, limit_mb, lambda data, by_orjson: snapshots_from_data(data, path, True, by_orjson)))


def failed_nodes_of(data: Any) -> list[dict]:
    """The failed_nodes of a dump document (none for a snapshot)."""
    if isinstance(data, dict) and data.get("schema") == DUMP_SCHEMA and isinstance(data.get("failed_nodes"), list):
        return data["failed_nodes"]
    return []


def load_with_failed(path: str, limit_mb: float | None = None) -> tuple[list[Snapshot], list[dict]]:
    """The snapshots of a saved dump, snapshot or bundle, and the nodes it says could not be collected."""
    with _no_gc():
        return _read(path, limit_mb, lambda data, by_orjson: (
            _settled(snapshots_from_data(data, path, True, by_orjson)), failed_nodes_of(data)))
