"""The dump document: node snapshots + path maps + findings, and reading it back.

``swarmscope dump --json`` writes it; ``--from FILE`` reads a dump, a single
node snapshot (``collect --json``) or a report bundle (``report``), so a saved file can be explained anywhere,
without root and without Docker.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from swarmscope import __version__
from swarmscope.correlate import analyze
from swarmscope.correlate.types import Analysis
from swarmscope.errors import InputError
from swarmscope.model import SNAPSHOT_SCHEMA, SNAPSHOT_VERSION, Snapshot, to_dict

DUMP_SCHEMA = "swarmscope/dump"
DUMP_VERSION = 1


def make_dump(snapshots: list[Snapshot], analysis: Analysis | None = None, failed_nodes: list[dict] | None = None) -> dict:
    analysis = analysis or analyze(snapshots)
    return {
        "schema": DUMP_SCHEMA,
        "version": DUMP_VERSION,
        "snapshot_version": SNAPSHOT_VERSION,
        "tool_version": __version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nodes": [s.to_dict() for s in snapshots],
        "failed_nodes": failed_nodes or [],
        "services": to_dict(analysis.services),
        "findings": to_dict(analysis.findings),
    }


def snapshots_from_data(data: Any, source: str) -> list[Snapshot]:
    """Node snapshots from a parsed dump or snapshot document."""
    if not isinstance(data, dict):
        raise InputError(f"{source} is not a swarmscope dump or snapshot (top level is not a JSON object)")
    schema = data.get("schema")
    try:
        if schema == DUMP_SCHEMA:
            if data.get("version") != DUMP_VERSION:
                raise InputError(
                    f"{source} is a dump of version {data.get('version')!r}; this swarmscope reads version {DUMP_VERSION} "
                    "(use the swarmscope release that wrote it)"
                )
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or not nodes:
                raise InputError(f"{source} is a dump with no node snapshots in it")
            return [Snapshot.from_dict(n) for n in nodes]
        if schema == SNAPSHOT_SCHEMA:
            return [Snapshot.from_dict(data)]
    except ValueError as exc:
        raise InputError(f"{source} is damaged: {exc}") from None
    raise InputError(
        f"{source} is not a swarmscope dump or snapshot (schema {schema!r}; expected {DUMP_SCHEMA!r} or {SNAPSHOT_SCHEMA!r})"
    )


def read_document(path: str) -> Any:
    """The parsed JSON of ``path``: a dump, a snapshot, or the dump inside a report bundle
    (``swarmscope report``, a tar.gz); '-' for standard input."""
    import sys

    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give the dump file written by `swarmscope dump --json -o FILE`") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if raw[:2] == b"\x1f\x8b":  # gzip: a report bundle
        raw = _dump_from_bundle(raw, path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def _dump_from_bundle(raw: bytes, path: str) -> bytes:
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for m in tar.getmembers():
                if m.isfile() and m.name.count("/") <= 1 and m.name.rsplit("/", 1)[-1] == "dump.json":
                    fh = tar.extractfile(m)
                    if fh is not None:
                        return fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{path} is gzip-compressed but not a readable swarmscope report bundle ({exc})") from None
    raise InputError(f"{path} is an archive without dump.json: not a swarmscope report bundle")


def load(path: str) -> list[Snapshot]:
    """Read ``path`` (a dump, a snapshot or a report bundle; '-' for standard input)."""
    return snapshots_from_data(read_document(path), path)


def failed_nodes_of(data: Any) -> list[dict]:
    """The failed_nodes of a dump document (none for a snapshot)."""
    if isinstance(data, dict) and data.get("schema") == DUMP_SCHEMA and isinstance(data.get("failed_nodes"), list):
        return data["failed_nodes"]
    return []


def load_with_failed(path: str) -> tuple[list[Snapshot], list[dict]]:
    """The snapshots of a saved dump, snapshot or bundle, and the nodes it says could not be collected."""
    data = read_document(path)
    return snapshots_from_data(data, path), failed_nodes_of(data)
