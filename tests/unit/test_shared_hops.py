"""Hops judged once are one object in many node paths (correlate.types.SharedHop, issue #17): a node's own
hops in each of its paths, the host's hops of a port on every node with the same rules. A shared hop is never
changed: a check's finding, a probe's mark or line goes to the path's own copy (NodePath.own), so it shows on
that path alone. Judged on gen_swarm's synthetic swarm (benchmarks/gen_swarm.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gen_swarm  # noqa: E402

from swarmscope.correlate import analyze  # noqa: E402
from swarmscope.correlate.checks import run as run_mod  # noqa: E402
from swarmscope.correlate.checks.registry import Hit, check  # noqa: E402
from swarmscope.correlate.types import Hop, SharedHop  # noqa: E402
from swarmscope.dump import snapshots_from_data  # noqa: E402
from swarmscope.model import HopStatus, Severity  # noqa: E402

DOC = gen_swarm.dump_doc(nodes=3, services=4, tasks=8, faults=[], analyze=False)
NODE_HOPS = ("kernel.ipvs", "host.ip_forward", "ingress.sbox", "ingress.links", "ingress.snat")
HOST_HOPS = ("host.jump", "host.dnat", "host.filter", "host.forward")


def _snaps():
    return snapshots_from_data(json.loads(json.dumps(DOC)), "gen")


def _ingress(a, node):
    return [np for sp in a.services for pp in sp.ports for np in pp.nodes if np.node == node]


def test_a_node_s_own_hops_and_the_host_s_are_one_object_across_paths():
    a = analyze(_snaps())
    assert a.findings == []
    for node in a.nodes:
        paths = _ingress(a, node)
        assert len(paths) >= 2
        for key in NODE_HOPS:
            hops = [np.hop(key) for np in paths]
            assert isinstance(hops[0], SharedHop) and all(h is hops[0] for h in hops), (node, key)
    # the host's hops of a port: one judgement for every node with the same host rules (gen_swarm: all alike)
    by_port: dict = {}
    for sp in a.services:
        for pp in sp.ports:
            by_port[pp.published] = [np.hop(k) for np in pp.nodes for k in HOST_HOPS]
    for port, hops in by_port.items():
        assert all(isinstance(h, SharedHop) for h in hops), port
        assert len({id(h) for h in hops}) == len(HOST_HOPS), port


def test_a_shared_hop_cannot_be_changed_in_place():
    a = analyze(_snaps())
    h = _ingress(a, a.nodes[0])[0].hop("kernel.ipvs")
    assert isinstance(h, SharedHop)
    with pytest.raises(TypeError, match="shared by several paths"):
        h.status = HopStatus.SUSPECT
    with pytest.raises(TypeError):
        h.findings += ("x",)


def test_a_finding_about_one_path_s_shared_hop_tags_that_path_alone(monkeypatch):
    """A check may name a shared hop on some of the paths that share it (lb.namespace-missing tags the first
    path of each network on a node): the finding shows on those paths' hops alone, as when each path had a
    copy of its own."""
    snaps = _snaps()
    node = snaps[0].node.hostname

    @check("test.one-path", Severity.ERROR, "a finding about one path's kernel hop", "")
    def one_path(ctx):
        np = next(np for _, kind, _, np in ctx.node_paths("ports") if np.node == node and kind == "ingress")
        h = np.hop("kernel.ipvs")
        yield Hit([node], detail="one path", hops=[(np, h), (np, h)])  # named twice: one copy

    monkeypatch.setattr(run_mod, "REGISTRY", [one_path])  # the whole judgement, with this one check
    a = analyze(snaps)
    assert [f.id for f in a.findings] == ["test.one-path"]
    paths = _ingress(a, node)
    tagged = [np for np in paths if "test.one-path" in np.hop("kernel.ipvs").findings]
    assert len(tagged) == 1
    own = tagged[0].hop("kernel.ipvs")
    assert type(own) is Hop and own.root_cause is None and own.status == HopStatus.OK
    others = [np.hop("kernel.ipvs") for np in paths if np is not tagged[0]]
    assert others and all(isinstance(h, SharedHop) and h.findings == () for h in others)
    assert len({id(h) for h in others}) == 1  # still one object for the rest


def test_paths_with_shared_hops_are_written_by_the_fast_encoder_as_the_standard_one_writes_them(monkeypatch):
    """orjson takes no subclass of a dataclass as one: SharedHop goes through jsonout's ``default`` (its
    fields), not the standard library's encoder, which took a 100-node `dump --json` from seconds to minutes."""
    from swarmscope.model import to_dict
    from swarmscope.render import jsonout

    a = analyze(_snaps())
    want = json.dumps(to_dict(a.services), indent=2).encode("ascii")
    monkeypatch.setattr(jsonout, "to_dict", lambda obj: (_ for _ in ()).throw(AssertionError("slow fallback")))
    assert jsonout.encode(a.services) == want
