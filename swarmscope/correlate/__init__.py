"""Correlate node snapshots into path maps and findings (pure: no I/O)."""

from __future__ import annotations

import gc

from swarmscope.correlate.checks import Ctx, hop_breaks, run_checks
from swarmscope.correlate.checks.causes import corroborate
from swarmscope.correlate.cluster import build_cluster
from swarmscope.correlate.paths import build_paths, verdict
from swarmscope.correlate.types import Analysis
from swarmscope.model import Snapshot, Verdict


def analyze(snapshots: list[Snapshot], scope: frozenset[str] | None = None) -> Analysis:
    """Path maps of every service and the findings, from one or more node snapshots.

    ``scope``: judge only the services of these names (``explain SERVICE``): only their path maps are
    built, and the findings kept are those about them or about no service in particular (a node, a
    network), judged from every node's data as always; a root cause counts what it explains among
    those. ``Analysis.unjudged`` names the services left out.

    Python's cyclic garbage collector is paused meanwhile (as dump.load pauses it while reading): the
    path maps are hundreds of thousands of new objects that live on (hops, real servers, facts) and
    make no cycles, and every collection they would trigger walks them all again (at 25 nodes, two
    fifths of the correlator's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze(snapshots, scope)
    finally:
        if enabled:
            gc.enable()


def _analyze(snapshots: list[Snapshot], scope: frozenset[str] | None) -> Analysis:
    cluster = build_cluster(snapshots)
    paths = build_paths(cluster, scope)
    ctx = Ctx(cluster, paths, scope=scope)
    findings = run_checks(ctx)
    corroborate(cluster, findings)  # dockerd's own log lines, as evidence of the findings they explain
    for _, _, _, np in ctx.node_paths():  # judged again now that each bad hop's findings are known
        if np.verdict != Verdict.NA:  # not this node's path (host mode, no task here): no hop to judge again
            verdict(np, hop_breaks)
    return Analysis(
        services=paths, findings=findings, nodes=[n.name for n in cluster.nodes], api_source=cluster.api_source,
        uncollected=_uncollected(cluster),
        unjudged=[] if scope is None else [s.name for s in cluster.services if s.name not in scope],
    )


def _uncollected(cluster) -> dict[str, str]:
    """The swarm's nodes (the manager's `docker node ls`) that are not in the data, and why."""
    src = next((n for n in cluster.nodes if n.name == cluster.api_source), None)
    have = {n.node_id for n in cluster.nodes} | {n.name for n in cluster.nodes}
    return {
        sn.hostname: "not collected (in docker node ls: " + ("/".join(x for x in (sn.state, sn.availability) if x)
                                                            or "?") + ")"
        for sn in (src.snap.docker.nodes if src else [])
        if sn.id not in have and sn.hostname not in have
    }
