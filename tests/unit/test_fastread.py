"""Reading a dump's nodes with msgspec (swarmscope/fastread.py) reads exactly what the model's reading reads.

On a real dump (tests/fixtures/lab-dumps: `swarmscope dump --json` of the three-node lab) and on damaged
copies of it: each node read by ``fastread.read_node`` is either refused (None: the model's reading then
reads it) or equal to what the model's reading makes of it; and a whole ``--from`` gives the same
snapshots, or the same InputError, with and without fastread.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import orjson
import pytest

from swarmscope import dump as dump_mod
from swarmscope import fastread
from swarmscope.dump import load, split_nodes
from swarmscope.errors import InputError
from swarmscope.model import Provenance, Snapshot, _hints, from_dict, to_dict

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "tests/fixtures/lab-dumps/three-node-gossip-cut.json"


def _nodes(raw: bytes) -> list:
    doc = split_nodes(raw)
    assert doc is not None
    return doc["nodes"]


def _model(text: bytes) -> Snapshot:
    """The node as the model's reading makes it (orjson, then the generated converter)."""
    snap = Snapshot.from_dict(orjson.loads(text))
    snap.version = 2
    return snap


def _without_fastread(monkeypatch, path: str):
    monkeypatch.setattr(dump_mod, "_fastread", lambda: None)
    try:
        return ("ok", [to_dict(s) for s in load(path, 50)])
    except InputError as exc:
        return ("error", str(exc))
    finally:
        monkeypatch.undo()


def _with_fastread(path: str):
    try:
        return ("ok", [to_dict(s) for s in load(path, 50)])
    except InputError as exc:
        return ("error", str(exc))


def test_a_real_dump_reads_as_the_model_reads_it():
    raw = REAL.read_bytes()
    tables = fastread.new_tables()
    for n in _nodes(raw):
        snap = fastread.read_node(n.text, tables)
        assert snap is not None  # nothing in it needs the model's reading
        snap.version = 2
        assert type(snap) is Snapshot and type(snap.host) is type(_model(bytes(n.text)).host)
        assert orjson.dumps(to_dict(snap)) == orjson.dumps(to_dict(_model(bytes(n.text))))


def test_equal_records_of_different_nodes_are_one_object():
    snaps = load(str(REAL), 50)
    rules = [s.host.iptables.tables["filter"].chains["FORWARD"].rules for s in snaps]
    assert len(rules[0]) == 10 and all(a is b for a, b in zip(rules[0], rules[1], strict=True))
    assert rules[0][0] is not None and type(rules[0][0]).__name__ == "Rule"

    def endpoints(s):
        return {t.name: t for n in s.docker.networks for svc in n.services.values() for t in svc.tasks}

    e0, e1 = endpoints(snaps[0]), endpoints(snaps[1])
    equal = [k for k in e0.keys() & e1.keys() if e0[k] == e1[k]]
    assert len(equal) >= 5 and all(e0[k] is e1[k] for k in equal)
    # options of different rules: one object per value
    opts = {}
    for s in snaps:
        for t in s.host.iptables.tables.values():
            for c in t.chains.values():
                for r in c.rules:
                    for o in r.params:
                        opts.setdefault((o.opt, o.value, o.negated), set()).add(id(o))
    assert opts and all(len(ids) == 1 for ids in opts.values())


def test_a_rule_twice_in_a_chain_keeps_both_places():
    raw = REAL.read_bytes()
    text = bytes(_nodes(raw)[0].text)
    snap = fastread.read_node(text, fastread.new_tables())
    chain = next(c for t in snap.host.iptables.tables.values() for c in t.chains.values() if len(c.rules) >= 2)
    first = orjson.dumps(to_dict(chain.rules[0]), option=orjson.OPT_INDENT_2)
    data = orjson.loads(text)
    for t in data["host"]["iptables"]["tables"].values():
        for c in t["chains"].values():
            if c["name"] == chain.name:
                c["rules"].append(c["rules"][0])
    again = orjson.dumps(data, option=orjson.OPT_INDENT_2)
    snap2 = fastread.read_node(again, fastread.new_tables())
    tables = snap2.host.iptables.tables.values()
    rules = next(c for t in tables for c in t.chains.values() if c.name == chain.name).rules
    assert rules[0] is rules[-1] and len(rules) == len(chain.rules) + 1
    assert orjson.dumps(to_dict(rules[-1]), option=orjson.OPT_INDENT_2) == first


# one damage per kind of value the two readings could take differently; each applied to the second node's
# text of the real dump (the first match of the pattern in that node)
DAMAGE = [
    ("an integer above 2**63", rb'"index": \d+', b'"index": 9223372036854775809'),
    ("2**63 itself (taken)", rb'"index": \d+', b'"index": 9223372036854775808'),
    ("2**63 - 1", rb'"index": \d+', b'"index": 9223372036854775807'),
    ("-2**63 (taken)", rb'"index": \d+', b'"index": -9223372036854775808'),
    ("below -2**63", rb'"index": \d+', b'"index": -9223372036854775809'),
    ("an integer of 25 digits", rb'"index": \d+', b'"index": 1234567890123456789012345'),
    ("a big integer in a rule", rb'"negated": false', b'"negated": false, "x": 1, "counters": 1'),
    ("a counter above 2**63 in a shared rule", rb'"counters": null', b'"counters": [1, 18446744073709551615]'),
    ("true for an integer", rb'"index": \d+', b'"index": true'),
    ("1 for true/false", rb'"admin_up": (true|false)', b'"admin_up": 1'),
    ("a float for an integer", rb'"index": \d+', b'"index": 2.0'),
    ("an integer for a float", rb'"duration_ms": [0-9.e-]+', b'"duration_ms": 7'),
    ("an infinite float", rb'"duration_ms": [0-9.e-]+', b'"duration_ms": 1e999'),
    ("NaN", rb'"duration_ms": [0-9.e-]+', b'"duration_ms": NaN'),
    ("a string for an integer", rb'"index": \d+', b'"index": "3"'),
    ("null for a string", rb'"hostname": "[^"]*"', b'"hostname": null'),
    ("null for a list", rb'"addresses": \[', b'"addresses": null, "x": ['),
    ("a number for a string", rb'"hostname": "[^"]*"', b'"hostname": 12'),
    ("a required field missing", rb'"hostname": "[^"]*",', b""),
    ("a required field of a shared record missing", rb'"chain": "[^"]*",', b""),
    ("a shared record of the wrong shape", rb'"opt": "[^"]*"', b'"opt": 5'),
    ("the schema missing", rb'"schema": "swarmscope/snapshot",', b""),
    ("another schema", rb'"schema": "swarmscope/snapshot"', b'"schema": "swarmscope/other"'),
    ("the version missing", rb'"version": \d+,', b""),
    ("version 3", rb'"version": \d+', b'"version": 3'),
    ("version true", rb'"version": \d+', b'"version": true'),
    ("an unknown key", rb'"hostname": "', b'"some_new_field": {"a": [1, 2.5, null]}, "hostname": "'),
    ("an unknown key with a huge number", rb'"hostname": "', b'"n": 123456789012345678901234567890, "hostname": "'),
    ("a key given twice", rb'"hostname": "[^"]*"', b'"hostname": "first", "hostname": "second"'),
    ("a bad value then a good one for a key", rb'"index": \d+', b'"index": true, "index": 4'),
    ("an unpaired surrogate", rb'"hostname": "[^"]*"', b'"hostname": "a\\ud800b"'),
    ("an escaped character", rb'"hostname": "[^"]*"', b'"hostname": "caf\\u00e9 \\"q\\" \\\\"'),
    ("a control character", rb'"hostname": "[^"]*"', b'"hostname": "a\x01b"'),
    ("not UTF-8", rb'"hostname": "[^"]*"', b'"hostname": "a\xffb"'),
    ("an object for a list", rb'"rules": \[', b'"rules": {}, "y": ['),
]


def _damaged(raw: bytes, pattern: bytes, new: bytes) -> bytes:
    nodes = _nodes(raw)
    second = nodes[1]
    text = bytes(second.text)
    m = re.search(pattern, text)
    assert m is not None, pattern
    return raw[: second.start] + text[: m.start()] + new + text[m.end() :] + raw[second.end :]


@pytest.mark.parametrize("what,pattern,new", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damage_reads_or_is_refused_as_the_model_does(tmp_path, monkeypatch, what, pattern, new):
    raw = _damaged(REAL.read_bytes(), pattern, new)
    node = _nodes(raw)[1] if split_nodes(raw) is not None else None
    if node is not None:
        snap = fastread.read_node(node.text, fastread.new_tables())
        if snap is not None:  # taken: exactly as the model's reading and its check take it
            dump_mod.check_snapshot_data(orjson.loads(bytes(node.text)), "$")
            snap.version = 2
            assert orjson.dumps(to_dict(snap)) == orjson.dumps(to_dict(_model(bytes(node.text))))
    p = tmp_path / "damaged.json"
    p.write_bytes(raw)
    assert _with_fastread(str(p)) == _without_fastread(monkeypatch, str(p))


def test_what_only_the_model_reads_is_left_to_it():
    raw = REAL.read_bytes()
    for what, pattern, new in DAMAGE:
        if what in ("an integer above 2**63", "2**63 itself (taken)", "the schema missing", "version true",
                    "a shared record of the wrong shape", "an unpaired surrogate", "NaN"):
            node = _nodes(_damaged(raw, pattern, new))[1]
            assert fastread.read_node(node.text, fastread.new_tables()) is None, what


def test_integer_bounds_are_for_msgspec_only():
    # the model's own readers and checks see plain int; msgspec sees the bounds of the check
    assert _hints(Provenance)["exit_code"] == int | None
    assert typing.get_origin(typing.get_type_hints(Provenance, include_extras=True)["exit_code"]) is typing.Union
    p = from_dict(Provenance, {"what": "x", "namespace": "h", "status": "ok", "exit_code": 2**63})
    assert p.exit_code == 2**63
