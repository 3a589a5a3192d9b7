"""The dump document: node snapshots + path maps + findings, and reading it back.

``swarmscope dump --json`` writes it; ``--from FILE`` reads a dump, or a single
node snapshot (``collect --json``), so a saved file can be explained anywhere,
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


def load(path: str) -> list[Snapshot]:
    """Read ``path`` (a dump or a snapshot; '-' for standard input)."""
    import sys

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give the dump file written by `swarmscope dump --json -o FILE`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return snapshots_from_data(data, path)
