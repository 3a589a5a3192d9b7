"""Reading and judging a large swarm without holding what every node repeats (issue #17).

A dump is read node by node where its text allows (dump.split_nodes), and must read exactly as the whole
parse reads it, or fall back to the whole parse; equal rules and real servers of different nodes are one
object (model.sharing); nodes with the same rules share one NetfilterFacts (facts.shared_netfilter).
The dumps are benchmarks/gen_swarm.py's (tests/unit/test_gen_swarm.py checks they are judged as a real
swarm is) and swarmscope's own `dump --json` writer (render/jsonout.py).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gen_swarm  # noqa: E402

from swarmscope.correlate import analyze  # noqa: E402
from swarmscope.correlate.cluster import build_cluster  # noqa: E402
from swarmscope.dump import (  # noqa: E402
    load,
    load_with_failed,
    make_dump,
    parse_document,
    snapshots_from_data,
    split_nodes,
)
from swarmscope.dump import _NOT_READ as NOT_READ  # noqa: E402
from swarmscope.errors import InputError  # noqa: E402
from swarmscope.facts import NetfilterFacts  # noqa: E402
from swarmscope.model import IptablesDump, Snapshot, _decoder, sharing, to_dict  # noqa: E402
from swarmscope.parse.iptables import parse_iptables_save  # noqa: E402

SIZE = dict(nodes=3, services=6, tasks=14)


@pytest.fixture(scope="module")
def gen_dump(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("gen") / "swarm.json"
    gen_swarm.write_dump(str(p), **SIZE, faults=["delete-real-server:1"])
    return p


def _whole(path: Path) -> list[Snapshot]:
    """The snapshots as the whole parse reads them (what `--from` read before the split)."""
    return snapshots_from_data(parse_document(path.read_bytes(), str(path)), str(path))


def _same(a: list[Snapshot], b: list[Snapshot]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert to_dict(x) == to_dict(y)


def test_gen_swarm_dump_is_read_node_by_node_as_the_whole_parse_reads_it(gen_dump):
    raw = gen_dump.read_bytes()
    doc = split_nodes(raw)
    assert doc is not None and len(doc["nodes"]) == SIZE["nodes"]  # the split is taken
    assert doc["failed_nodes"] == [] and doc["schema"] == "swarmscope/dump"
    snaps, failed = load_with_failed(str(gen_dump))
    assert failed == []
    _same(snaps, _whole(gen_dump))
    # and it is judged the same: the injected fault, nothing else
    assert [f.id for f in analyze(snaps).findings] == [f.id for f in analyze(_whole(gen_dump)).findings]
    assert [f.id for f in analyze(snaps).findings] == ["ipvs.backend-missing"]


def test_swarmscope_dump_json_is_read_node_by_node(tmp_path, gen_dump):
    from swarmscope.render.jsonout import write_json

    snaps = _whole(gen_dump)
    buf = io.BytesIO()
    doc = make_dump(snaps, analyze(snaps), [{"node": "node-009", "reason": "did not answer"}], plain=False)
    write_json(doc, buf)
    p = tmp_path / "dump.json"
    p.write_bytes(buf.getvalue())
    split = split_nodes(p.read_bytes())
    assert split is not None and len(split["nodes"]) == SIZE["nodes"]
    whole = json.loads(buf.getvalue())
    # the dump's own judgement is not read back (judged again from the nodes); every other key is
    assert whole["services"] and whole["findings"]
    assert split["services"] == split["findings"] == NOT_READ
    assert {k: v for k, v in split.items() if k not in ("nodes", "services", "findings")} == {
        k: v for k, v in whole.items() if k not in ("nodes", "services", "findings")}
    got, failed = load_with_failed(str(p))
    assert failed == [{"node": "node-009", "reason": "did not answer"}]
    _same(got, _whole(p))
    _same(got, snaps)
    # the same dump compact, its path maps and findings beside the nodes: each other key read from msgspec's
    # slice, the path maps and findings checked as JSON by msgspec and not built
    p.write_bytes(json.dumps(whole, separators=(",", ":")).encode())
    split = split_nodes(p.read_bytes())
    assert split is not None and len(split["nodes"]) == SIZE["nodes"]
    assert {k: v for k, v in split.items() if k != "nodes"} == {
        k: (NOT_READ if k in ("services", "findings") else v) for k, v in whole.items() if k != "nodes"}
    got, failed = load_with_failed(str(p))
    assert failed == [{"node": "node-009", "reason": "did not answer"}]
    _same(got, snaps)


def _written(gen_dump: Path, failed: list | None = None) -> tuple[bytes, list[Snapshot]]:
    """gen_dump as `dump --json` writes it: indented, its path maps and findings after the nodes."""
    from swarmscope.render.jsonout import write_json

    snaps = _whole(gen_dump)
    buf = io.BytesIO()
    write_json(make_dump(snaps, analyze(snaps), failed or [], plain=False), buf)
    return buf.getvalue(), snaps


def test_a_written_dump_s_path_maps_are_passed_over_window_by_window(tmp_path, gen_dump, monkeypatch):
    """The judgement after the nodes (at 100 nodes 1.3 GB of a 2.5 GB dump; parsed, it took 7 GB and half a
    minute) is searched through a window at a time, each window's pages let go as it is passed, and never built."""
    from swarmscope import dump

    raw, snaps = _written(gen_dump, [{"node": "node-009", "reason": "did not answer"}])
    p = tmp_path / "dump.json"
    p.write_bytes(raw)
    start = raw.index(b'\n  "services": [')
    end = raw.index(b'\n  "findings": [')
    assert end - start > 8 * 4096  # wide enough for several windows of the size set below
    monkeypatch.setattr(dump, "_WINDOW", 4096)
    calls = _let_go_calls(monkeypatch)
    got, failed = load_with_failed(str(p))
    assert failed == [{"node": "node-009", "reason": "did not answer"}]
    _same(got, snaps)
    inside = [(a, b) for m, a, b in calls if m and start < a < end]  # let go while passing the path maps
    assert len(inside) > (end - start) // 4096 - 2 and all(b - a <= 4096 for a, b in inside)
    assert [a for a, _ in inside] == sorted(a for a, _ in inside)


def test_keys_after_the_path_maps_are_read_and_a_key_given_twice_is_read_whole(tmp_path, gen_dump):
    raw, snaps = _written(gen_dump)
    # failed_nodes moved after the path maps (another writer's order): still read
    failed = [{"node": "node-009", "reason": "did not answer"}]
    moved = raw.replace(b'\n  "failed_nodes": [],', b"").replace(
        b'\n  "findings": [', b'\n  "failed_nodes": ' + json.dumps(failed).encode() + b',\n  "findings": [')
    assert moved != raw and json.loads(moved)["failed_nodes"] == failed
    doc = split_nodes(moved)
    assert doc is not None and doc["failed_nodes"] == failed and doc["services"] == NOT_READ
    p = tmp_path / "moved.json"
    p.write_bytes(moved)
    got, f = load_with_failed(str(p))
    assert f == failed
    _same(got, snaps)
    # failed_nodes given twice: not split either way (the whole parse decides which one counts: the last)
    twice = moved.replace(b'\n  "services": [', b'\n  "failed_nodes": [],\n  "services": [')
    assert split_nodes(twice) is None
    p.write_bytes(twice)
    assert load_with_failed(str(p))[1] == failed


def test_a_dump_cut_short_in_its_path_maps_is_refused_and_damage_inside_them_is_not_read(tmp_path, gen_dump):
    raw, snaps = _written(gen_dump)
    p = tmp_path / "cut.json"
    p.write_bytes(raw[: raw.index(b'\n  "findings": [') - 200])  # the path maps cut short, the end missing
    with pytest.raises(InputError, match="is not JSON"):
        load(str(p))
    # damage inside the path maps of an indented dump (a stray character between two tokens: the whole parse
    # refuses it): they are not read back, so the nodes are judged again as always
    i = raw.index(b'\n      "', raw.index(b'\n  "services": [')) + 1
    damaged = raw[:i] + b"#" + raw[i:]
    with pytest.raises(InputError, match="is not JSON"):
        parse_document(damaged, "damaged.json")
    p.write_bytes(damaged)
    _same(load(str(p)), snaps)
    # in the compact layout msgspec checks them as JSON while passing over them: refused as the whole parse does
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    j = compact.index(b'"services":[') + len(b'"services":[')
    p.write_bytes(compact[:j] + b"#" + compact[j:])
    with pytest.raises(InputError, match="is not JSON"):
        load(str(p))


def _compact(gen_dump: Path) -> bytes:
    import json

    return json.dumps(json.loads(gen_dump.read_bytes()), separators=(",", ":")).encode()  # no newline at all


def test_compact_json_is_read_node_by_node(tmp_path, gen_dump):
    """No indentation to split on: msgspec reads the structure and the nodes are found by their lengths
    (parsed whole, a 100-node compact dump took 4.5 GB)."""
    p = tmp_path / "compact.json"
    p.write_bytes(_compact(gen_dump))
    doc = split_nodes(p.read_bytes())
    assert doc is not None and len(doc["nodes"]) == SIZE["nodes"]
    assert doc["failed_nodes"] == [] and doc["schema"] == "swarmscope/dump"
    assert all(bytes(n.text).startswith(b'{"') and bytes(n.text).endswith(b"}") for n in doc["nodes"])
    _same(load(str(p)), _whole(gen_dump))


def test_a_brace_at_the_nodes_indent_inside_a_node_is_no_node_s_end(tmp_path, gen_dump):
    raw = gen_dump.read_bytes()
    first = raw.index(b'"nodes":[{') + len(b'"nodes":[{')
    odd = raw[:first] + b'\n"extra": {\n},' + raw[first:]  # valid JSON; an unknown key, ignored
    p = tmp_path / "odd.json"
    p.write_bytes(odd)
    doc = split_nodes(odd)  # the indentation misleads: the nodes are found by their lengths
    assert doc is not None and len(doc["nodes"]) == SIZE["nodes"]
    assert bytes(doc["nodes"][0].text).startswith(b'{\n"extra": {\n},')
    _same(load(str(p)), _whole(gen_dump))


def test_odd_top_level_keys_and_layouts_are_walked(tmp_path, gen_dump):
    """Keys with escaped quotes and whitespace anywhere between tokens: the nodes are still found exactly."""
    body = _compact(gen_dump)
    odd = b'{ "a\\"b" :\t[1, {"nodes": "x\\""}] ,\r\n' + body[1:].replace(b'"nodes":[', b'"nodes" :\n [ ', 1) + b"\n"
    doc = split_nodes(odd)
    assert doc is not None and doc['a"b'] == [1, {"nodes": 'x"'}] and len(doc["nodes"]) == SIZE["nodes"]
    p = tmp_path / "odd.json"
    p.write_bytes(odd)
    _same(load(str(p)), _whole(gen_dump))


@pytest.mark.parametrize("twice", [b'"schema":"swarmscope/dump",', b'"nodes":[],'])
def test_a_key_given_twice_is_left_to_the_whole_parse(tmp_path, gen_dump, twice):
    body = _compact(gen_dump)
    odd = b"{" + twice + body[1:]
    assert split_nodes(odd) is None
    p = tmp_path / "twice.json"
    p.write_bytes(odd)
    _same(load(str(p)), _whole(gen_dump))  # the last of a key counts, as in the whole parse


@pytest.mark.parametrize(
    "damage",
    [
        (b'"hostname":"node-001"', b'"hostname":"node-001",,'),  # not JSON inside the second node
        (b'"hostname":"node-001"', b'"hostname":1'),  # JSON, but not a snapshot
        (b'"schema":"swarmscope/dump"', b'"schema":"swarmscope/dump",,'),  # not JSON before the nodes
        (b'"hostname":"node-001"', b'"hostname":"node-001\xff"'),  # not UTF-8
    ],
)
def test_damage_in_a_compact_dump_is_told_as_the_whole_parse_tells_it(tmp_path, gen_dump, damage):
    raw = _compact(gen_dump)
    old, new = damage
    at = raw.index(old)
    p = tmp_path / "damaged.json"
    p.write_bytes(raw[:at] + new + raw[at + len(old) :])
    with pytest.raises(InputError) as whole:
        _whole(p)
    with pytest.raises(InputError) as split:
        load_with_failed(str(p))
    assert str(split.value) == str(whole.value)


@pytest.mark.parametrize(
    "damage",
    [
        (b'"hostname": "node-001"', b'"hostname": "node-001",,'),  # not JSON inside the second node
        (b'"hostname": "node-001"', b'"hostname": 1'),  # JSON, but not a snapshot
        (b'"schema":"swarmscope/dump"', b'"schema":"swarmscope/dump",,'),  # not JSON before the nodes
    ],
)
def test_damage_is_told_as_the_whole_parse_tells_it(tmp_path, gen_dump, damage):
    raw = gen_dump.read_bytes()
    old, new = damage
    at = raw.index(old, raw.index(b"\n},{") if b"node" in old else 0)  # in the second node, or the header
    p = tmp_path / "damaged.json"
    p.write_bytes(raw[:at] + new + raw[at + len(old) :])
    with pytest.raises(InputError) as whole:
        _whole(p)
    with pytest.raises(InputError) as split:
        load_with_failed(str(p))
    assert str(split.value) == str(whole.value)


def test_equal_rules_and_real_servers_of_different_nodes_are_one_object(gen_dump):
    snaps = load(str(gen_dump))
    h0, h1 = (s.host.iptables for s in snaps[:2])
    assert h0 is not None and h1 is not None
    r0 = h0.tables["nat"].chains["DOCKER-INGRESS"].rules
    r1 = h1.tables["nat"].chains["DOCKER-INGRESS"].rules
    assert r0 and all(a is b for a, b in zip(r0, r1, strict=True))

    def dests(s):
        sbox = next(ns for ns in s.namespaces if ns.kind == "ingress_sbox")
        return [d for svc in sbox.ipvs.services for d in svc.dests]

    d0 = {(d.address, d.port): d for d in dests(snaps[0])}
    shared = [d for d in dests(snaps[2]) if (d.address, d.port) in d0]
    assert shared and all(d is d0[(d.address, d.port)] for d in shared)
    # each node's verbose inspect of a network lists every task: one endpoint record for all nodes
    def endpoints(s):
        net = next(n for n in s.docker.networks if n.ingress)
        return {t.name: t for svc in net.services.values() for t in svc.tasks}

    e0, e1 = endpoints(snaps[0]), endpoints(snaps[1])
    assert e0 and e0.keys() == e1.keys() and all(e0[k] is e1[k] for k in e0)
    # outside sharing() every record is its own
    plain = _decoder(Snapshot)(to_dict(snaps[0]))
    again = _decoder(Snapshot)(to_dict(snaps[0]))
    assert plain.host.iptables.tables["nat"].chains["DOCKER-INGRESS"].rules[0] is not (
        again.host.iptables.tables["nat"].chains["DOCKER-INGRESS"].rules[0]
    )


@pytest.mark.parametrize("text", [False, True])
def test_records_differing_in_one_field_are_not_shared(text):
    text = (
        "*filter\n:INPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp --dport 80 -j ACCEPT\n-A INPUT -p tcp --dport 81 -j ACCEPT\nCOMMIT\n"
    )
    d = to_dict(parse_iptables_save(text))
    d2 = to_dict(parse_iptables_save(text.replace("--dport 81", "--dport 82")))
    with sharing(text=text):  # text: rules looked up by their JSON first
        a, b = _decoder(IptablesDump)(d), _decoder(IptablesDump)(d2)
        again = _decoder(IptablesDump)(d)
    ra, rb = a.tables["filter"].chains["INPUT"].rules, b.tables["filter"].chains["INPUT"].rules
    assert ra[0] is rb[0] and ra[1] is not rb[1]
    assert ra[1].value("--dport") == "81" and rb[1].value("--dport") == "82"
    assert ra[1].params[0] is rb[1].params[0]  # -p tcp, one object
    assert again.tables["filter"].chains["INPUT"].rules == ra and all(
        x is y for x, y in zip(again.tables["filter"].chains["INPUT"].rules, ra, strict=True)
    )


def test_a_rule_twice_in_a_chain_keeps_its_places():
    """dst_marks orders by position: two equal rules read as one object keep both their places."""
    text = (
        "*mangle\n:INPUT ACCEPT [0:0]\n"
        "-A INPUT -d 10.0.0.5/32 -j MARK --set-xmark 0x101/0xffffffff\n"
        "-A INPUT -d 10.0.0.5/32 -j MARK --set-xmark 0x102/0xffffffff\n"
        "-A INPUT -d 10.0.0.5/32 -j MARK --set-xmark 0x101/0xffffffff\n"
        "COMMIT\n"
    )
    with sharing():
        d = _decoder(IptablesDump)(to_dict(parse_iptables_save(text)))
    rules = d.tables["mangle"].chains["INPUT"].rules
    assert rules[0] is rules[2]
    assert [m.mark for m in NetfilterFacts(d).dst_marks("10.0.0.5")] == [0x101, 0x102, 0x101]


def test_nodes_with_the_same_rules_share_their_netfilter_facts(gen_dump):
    snaps = load(str(gen_dump))
    cl = build_cluster(snaps)
    f = [n.facts() for n in cl.nodes]
    assert f[0].host.netfilter is f[1].host.netfilter is f[2].host.netfilter  # the same host rules
    sboxes = [n.ingress_sbox for n in cl.nodes]
    assert all(s is not None for s in sboxes)
    nf = [fx.ns(s).netfilter for fx, s in zip(f, sboxes, strict=True)]
    assert nf[0] is not nf[1]  # each node marks with its own LocalLBIndex
    # read without sharing (each node its own rule objects), nothing is shared
    cl2 = build_cluster(_unshared(gen_dump))
    assert cl2.nodes[0].facts().host.netfilter is not cl2.nodes[1].facts().host.netfilter


def test_dumps_whose_keys_meet_are_told_apart_by_their_rules(gen_dump, monkeypatch):
    """The pool's key is a hash of the rules' identities: where two different dumps' keys are equal (forced
    here), each still gets the facts of its own rules, and equal dumps still share theirs."""
    from swarmscope import facts

    want = analyze(load(str(gen_dump))).findings  # the fixture's one fault (delete-real-server:1)
    assert [f.id for f in want] == ["ipvs.backend-missing"]
    monkeypatch.setattr(facts, "_dump_key", lambda d: "one key for all")
    cl = build_cluster(load(str(gen_dump)))
    f = [n.facts() for n in cl.nodes]
    assert f[0].host.netfilter is f[1].host.netfilter  # the same host rules: shared
    nf = [fx.ns(n.ingress_sbox).netfilter for fx, n in zip(f, cl.nodes, strict=True)]
    assert nf[0] is not nf[1] and nf[0].dump is cl.nodes[0].ingress_sbox.iptables
    assert nf[1].dump is cl.nodes[1].ingress_sbox.iptables
    assert analyze(load(str(gen_dump))).findings == want


def _unshared(path: Path) -> list[Snapshot]:
    import orjson

    return [Snapshot.from_dict(n) for n in orjson.loads(path.read_bytes())["nodes"]]


def _let_go_calls(monkeypatch) -> list[tuple[bool, int, int]]:
    """Every ``dump._let_go`` from now on, as (mapped, start, end); the pages are still let go."""
    from swarmscope import dump

    calls: list[tuple[bool, int, int]] = []
    real = dump._let_go

    def let_go(mapped, start, end):
        calls.append((mapped is not None, start, end))
        real(mapped, start, end)

    monkeypatch.setattr(dump, "_let_go", let_go)
    return calls


def test_a_dump_file_is_mapped_and_each_node_s_text_let_go_once_parsed(gen_dump, monkeypatch):
    calls = _let_go_calls(monkeypatch)
    snaps = load(str(gen_dump))
    size = gen_dump.stat().st_size
    n = SIZE["nodes"]
    searched, nodes = calls[:n], calls[n + 1 :]
    assert calls[n] == (True, 0, size)  # after the search for where nodes end
    # while searching: each node's pages as soon as its end is found, in order, before the whole file
    assert all(m for m, _, _ in searched) and [a for _, a, _ in searched] == sorted(a for _, a, _ in searched)
    assert len(nodes) == n and all(m for m, _, _ in nodes)
    assert [a for _, a, _ in nodes] == sorted(a for _, a, _ in nodes) and nodes[-1][2] < size
    assert [a for _, a, _ in searched] == [a for _, a, _ in nodes]  # the same nodes
    _same(snaps, _whole(gen_dump))


def test_a_compact_dump_s_node_pages_are_let_go_once_parsed(tmp_path, gen_dump, monkeypatch):
    p = tmp_path / "compact.json"
    p.write_bytes(_compact(gen_dump))
    calls = _let_go_calls(monkeypatch)
    snaps = load(str(p))
    size = p.stat().st_size
    whole = [c for c in calls if c == (True, 0, size)]
    nodes = [c for c in calls if c[2] != size]  # (a search for an indented node's end, in vain, went to the end)
    assert whole and len(nodes) == SIZE["nodes"] and all(m for m, _, _ in nodes)
    assert [a for _, a, _ in nodes] == sorted(a for _, a, _ in nodes) and nodes[-1][2] < size
    _same(snaps, _whole(gen_dump))
