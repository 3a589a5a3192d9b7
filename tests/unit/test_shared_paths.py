"""Node paths share what their inputs share (issue #17): real servers judged once per distinct input, hops
of the node alone judged once per node, the checks' indexes without the ok hops. Judged on gen_swarm's
synthetic swarm (benchmarks/gen_swarm.py, tested in test_gen_swarm.py), the result must be what judging each
node path on its own gives, byte for byte."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gen_swarm  # noqa: E402

from swarmscope.correlate import analyze  # noqa: E402
from swarmscope.correlate.paths import common, ingress, vip  # noqa: E402
from swarmscope.dump import snapshots_from_data  # noqa: E402
from swarmscope.render.jsonout import encode  # noqa: E402

#: the real server of svc0000's first task is gone from ingress_sbox's IPVS on node-000 and node-001
DOC = gen_swarm.dump_doc(nodes=3, services=4, tasks=8, faults=["delete-real-server:0", "delete-real-server:1"],
                         analyze=False)
LATER = "2026-11-21T10:13:00Z"  # node-001's collection, an hour after the others' (gen_swarm.FIXED_TIME)


def _snaps(recent: str | None = None):
    """The swarm as `--from` reads it; ``recent``: a task id whose state changed 10 s before node-000 and
    node-002 were collected (so it is starting there), and node-001 collected an hour later (settled there)."""
    snaps = snapshots_from_data(json.loads(json.dumps(DOC)), "gen")
    if recent is not None:
        for t in snaps[0].docker.tasks:
            if t.id == recent:
                t.state_since = "2026-11-21T09:12:50Z"
        snaps[1].collected_at = LATER
    return snaps


def _ingress_backends(a, service: str) -> dict[str, list]:
    sp = next(s for s in a.services if s.name == service)
    return {np.node: np.backends for np in sp.ports[0].nodes}


def _missing_task() -> str:
    a = analyze(_snaps())
    gone = [b for b in _ingress_backends(a, "svc0000")["node-000"] if b.status == "missing"]
    assert len(gone) == 1 and gone[0].task_id
    return gone[0].task_id


def _unshared(monkeypatch):
    """Every node path judges its real servers itself, as before the sharing."""
    fresh = itertools.count()
    monkeypatch.setattr(ingress, "backends_key", lambda *a: ("unshared", next(fresh)))
    monkeypatch.setattr(vip, "backends_key", lambda *a: ("unshared", next(fresh)))
    monkeypatch.setattr(ingress, "node_hop", lambda n, key, make: make())
    monkeypatch.setattr(vip, "node_hop", lambda n, key, make: make())


def test_shared_judgement_is_the_unshared_one(monkeypatch):
    task = _missing_task()
    for recent in (None, task):
        shared = analyze(_snaps(recent))
        with monkeypatch.context() as m:
            _unshared(m)
            alone = analyze(_snaps(recent))
        assert encode(shared) == encode(alone)
        assert [f.id for f in shared.findings] == [f.id for f in alone.findings]


def test_time_decides_only_where_a_task_changed_recently(monkeypatch):
    task = _missing_task()
    a = analyze(_snaps(task))
    by_node = _ingress_backends(a, "svc0000")
    status = {n: next(b.status for b in bs if b.task_id == task) for n, bs in by_node.items()}
    # node-000 read it 10 s after the task changed state: starting; node-001 an hour later: missing
    assert status == {"node-000": "starting", "node-001": "missing", "node-002": "ok"}
    assert [(f.id, f.nodes) for f in a.findings] == [("ipvs.backend-missing", ["node-001"])]
    # another service's real servers: node-000 and node-002 share one judgement (same time, same real
    # servers); node-001 has its own (its time differs, and some task is recent at the others' time)
    other = _ingress_backends(a, "svc0001")
    assert all(x is y for x, y in zip(other["node-000"], other["node-002"], strict=True))
    assert not any(x is y for x, y in zip(other["node-000"], other["node-001"], strict=True))
    assert other["node-000"] is other["node-002"]  # the list too (never changed in place: NodePath.backends)
    # settled everywhere (no recent task): the time no longer matters, every node shares
    settled = _ingress_backends(analyze(_snaps()), "svc0001")
    assert all(x is y for x, y in zip(settled["node-000"], settled["node-001"], strict=True))


def test_time_key_bound():
    """A node whose time is SETTLE_SECONDS or more after every task's last change is keyed as settled."""
    from datetime import timedelta

    from swarmscope.correlate import lifecycle
    from swarmscope.correlate.cluster import build_cluster

    snaps = _snaps(_missing_task())
    cl = build_cluster(snaps)
    latest = lifecycle.parse_time("2026-11-21T09:12:50Z")
    n = cl.nodes[0]
    n._memo["now"] = latest + timedelta(seconds=lifecycle.SETTLE_SECONDS)
    assert common._time_key(cl, n) is None
    n._memo["now"] = latest + timedelta(seconds=lifecycle.SETTLE_SECONDS - 0.001)
    assert common._time_key(cl, n) == n._memo["now"]
    n._memo["now"] = latest - timedelta(seconds=5)  # a clock behind the task's change: recent, by lifecycle
    assert common._time_key(cl, n) == n._memo["now"]
    n._memo["now"] = None
    assert common._time_key(cl, n) is None
