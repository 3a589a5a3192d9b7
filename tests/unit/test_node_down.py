"""node.down, on real collections of the three-node lab with worker2's dockerd stopped (see
tests/fixtures/lab-dumps/README.md): the manager's API says the node is down; what it explains; and the VIP
name of a service with no running task, which the engine withdraws on purpose, is not a DNS fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmscope.dump import load
from swarmscope.pipeline import analyze_snapshots

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "lab-dumps"
STOPPED = FIX / "three-node-worker-stopped"


def _analysis(*paths: Path):
    snaps = [s for p in paths for s in load(str(p))]
    return analyze_snapshots(snaps)


def test_the_stopped_worker_is_named_down_and_explains_its_short_service():
    a = _analysis(STOPPED / "manager.json", STOPPED / "worker1.json")
    roots = {f.id: sorted(f.nodes) for f in a.findings if f.caused_by is None}
    assert roots == {"kernel.no-ipvs": ["m3-manager", "m3-worker1"], "node.down": ["m3-worker2"]}, roots
    down = next(f for f in a.findings if f.id == "node.down")
    assert "status down" in down.evidence[0] and "availability active" in down.evidence[0]
    short = [f for f in a.findings if f.id == "service.replicas-short"]
    assert short and all(f.caused_by == "node.down" and f.service == "client" for f in short)


def test_a_withdrawn_vip_name_is_not_a_dns_fault():
    a = _analysis(STOPPED / "manager.json", STOPPED / "worker1.json")
    assert not [f for f in a.findings if f.id.startswith("dns.")]
    # the manager did ask, and got no answer: the hop says why that is right
    snap = json.loads((STOPPED / "manager.json").read_text())
    asked = [d for d in snap["dns"] if d["service"] == "client" and d["query"] == "client"]
    assert asked and all(d["status"] != "ok" for d in asked)


@pytest.mark.parametrize("which", ["manager.json", "worker1.json"])
def test_each_node_alone(which):
    """The manager alone sees the node down; worker1 alone has no API view of the nodes: nothing to say."""
    a = _analysis(STOPPED / which)
    ids = {f.id for f in a.findings if f.caused_by is None}
    assert ("node.down" in ids) == (which == "manager.json"), ids


def test_a_healthy_three_node_swarm_has_no_node_down():
    a = _analysis(FIX / "three-node-settle-boundary.json")
    assert not [f for f in a.findings if f.id == "node.down"]
