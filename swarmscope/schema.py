"""JSON Schema of the dump document, derived from the dataclasses.

The checked-in ``swarmscope/schema/dump.schema.json`` is what users and tools
validate against; ``python -m swarmscope.schema`` regenerates it, and a test
fails when the file and the code disagree.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import StrEnum
from typing import Any

from swarmscope.correlate.types import Finding, ServicePath
from swarmscope.model import READABLE_SNAPSHOT_VERSIONS, SNAPSHOT_SCHEMA, SNAPSHOT_VERSION, Snapshot

SCHEMA_PATH = "schema/dump.schema.json"


def _type_schema(tp: Any, defs: dict) -> dict:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        schemas = [_type_schema(a, defs) for a in inner]
        if type(None) in args:
            schemas.append({"type": "null"})
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return {"type": "array", "items": _type_schema(item, defs)}
    if origin is dict:
        _, vt = typing.get_args(tp)
        return {"type": "object", "additionalProperties": _type_schema(vt, defs)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = typing.get_type_hints(tp)
            props = {f.name: _type_schema(hints[f.name], defs) for f in dataclasses.fields(tp)}
            required = [
                f.name
                for f in dataclasses.fields(tp)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            defs[name] = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        return {"$ref": f"#/$defs/{name}"}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return {"type": "string"}  # the status words (model.HopStatus, ...): JSON holds their values
    return {
        str: {"type": "string"},
        int: {"type": "integer"},
        float: {"type": "number"},
        bool: {"type": "boolean"},
        Any: {},
    }.get(tp, {})


def dump_schema() -> dict:
    defs: dict = {}
    snap = _type_schema(Snapshot, defs)
    svc = _type_schema(ServicePath, defs)
    finding = _type_schema(Finding, defs)
    defs["Snapshot"]["properties"]["schema"] = {"const": SNAPSHOT_SCHEMA}
    defs["Snapshot"]["properties"]["version"] = {"enum": sorted(READABLE_SNAPSHOT_VERSIONS)}
    from swarmscope.dump import DUMP_SCHEMA, DUMP_VERSION

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/swarmscope/swarmscope/schema/dump.schema.json",
        "title": "swarmscope dump",
        "description": "Node snapshots, path maps and findings written by `swarmscope dump --json`.",
        "type": "object",
        "properties": {
            "schema": {"const": DUMP_SCHEMA},
            "version": {"const": DUMP_VERSION},
            "snapshot_version": {"const": SNAPSHOT_VERSION},
            "tool_version": {"type": "string"},
            "created_at": {"type": "string"},
            "nodes": {"type": "array", "items": snap, "minItems": 1},
            "failed_nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "node": {"type": "string", "description": "the node's hostname"},
                        "reason": {"type": "string"},
                        "node_id": {"type": ["string", "null"]},
                        "kind": {
                            "enum": [
                                "down",
                                "drained",
                                "image-missing",
                                "rejected",
                                "failed",
                                "timeout",
                                "output",
                                None,
                            ],
                            "description": "why the node did not answer (cluster gathering)",
                        },
                        "task_state": {"type": "string", "description": "the gather task's last state"},
                    },
                    "required": ["node", "reason"],
                },
            },
            "services": {"type": "array", "items": svc},
            "findings": {"type": "array", "items": finding},
        },
        "required": ["schema", "version", "tool_version", "created_at", "nodes", "services", "findings"],
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(dump_schema(), indent=2) + "\n"


def load_schema() -> dict:
    from importlib import resources

    return json.loads(resources.files("swarmscope").joinpath(SCHEMA_PATH).read_text())


if __name__ == "__main__":
    print(schema_text(), end="")
