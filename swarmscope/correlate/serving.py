"""Which nodes can serve each published port: the path map's verdicts as yes / no / unknown per node (pure).

What an operator with an external load balancer in front of the nodes asks: for each published port,
which nodes answer it. It is read off the path map (``paths/ingress.py`` and ``paths/hostmode.py`` judge
each port on each node; ``verdict`` sums a path up), never judged again here:

- ``yes``: the node's path serves (verdict ok, or degraded: it serves, some real servers are wrong --
  the degraded hop is named);
- ``no``: the path is broken (the first broken hop: its key and detail); in host mode, a node with no
  running task (host-mode ports are served only where a task runs: ``task.here``);
- ``unknown``: the node's data cannot say -- a hop could not be read (its key and why), the node failed
  in the gather, or the manager knows the node and it is not in the data. Never a yes or no without data.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from swarmscope.correlate.types import Analysis, NodePath, ServicePath
from swarmscope.model import HopStatus, Verdict

YES, NO, UNKNOWN = "yes", "no", "unknown"


@dataclass
class NodeServing:
    node: str
    serves: str  # yes | no | unknown
    hop: str | None = None  # key of the first broken (no), unreadable (unknown) or degraded (yes) hop
    detail: str = ""  # that hop's detail, or why the node has no data
    degraded: bool = False  # yes, but some real servers are wrong (hop says where)


@dataclass
class PortServing:
    service: str
    protocol: str
    port: int
    target: int
    mode: str  # ingress | host
    nodes: list[NodeServing] = field(default_factory=list)

    def count(self, serves: str) -> int:
        return sum(1 for n in self.nodes if n.serves == serves)


def _hop_of(np: NodePath, status: tuple[HopStatus, ...], label: str | None = None):
    for h in np.hops:
        if h.aux or h.status not in status:
            continue
        if label is None or h.label == label:
            return h
    return None


def node_serving(np: NodePath, mode: str) -> NodeServing:
    """One node's answer for one port, from its path's verdict (set by paths.verdict, and by --probe)."""
    bad = (HopStatus.MISSING, HopStatus.MISMATCH, HopStatus.SUSPECT)
    if np.verdict == Verdict.OK:
        return NodeServing(np.node, YES)
    if np.verdict == Verdict.DEGRADED:
        h = _hop_of(np, bad, np.broken_at)
        return NodeServing(np.node, YES, h.key if h else None, h.detail if h else np.reason, degraded=True)
    if np.verdict == Verdict.BROKEN:
        h = _hop_of(np, bad, np.broken_at)
        if h is None:  # not a hop of its own: no running backend has its REDIRECT (paths.verdict)
            return NodeServing(np.node, NO, "task.redirect", np.reason)
        if h.status == HopStatus.SUSPECT:  # ok by the rules, but a --probe through it failed
            return NodeServing(np.node, NO, h.key, f"--probe failed (the rules: {h.detail})")
        return NodeServing(np.node, NO, h.key, h.detail)
    if np.verdict == Verdict.NA:
        h = np.hop("task.here")
        if mode == "host" and h is not None:  # host mode: served only where a task runs
            return NodeServing(np.node, NO, h.key, h.detail)
        return NodeServing(np.node, UNKNOWN, None, np.reason)
    h = _hop_of(np, (HopStatus.UNKNOWN,))
    return NodeServing(np.node, UNKNOWN, h.key if h else None, h.detail if h else np.reason)


def serving_table(analysis: Analysis, services: list[ServicePath] | None = None) -> list[PortServing]:
    """For every published port of ``services`` (default: all), every node's yes / no / unknown, in the path
    map's node order, then the nodes without data (``Analysis.uncollected``: unknown, and why).

    The cyclic garbage collector is paused meanwhile, as ``correlate.analyze`` pauses it: the rows are many
    small new objects, and a collection they trigger walks the whole path map (at 50 nodes, 0.5 s of 0.52)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _serving_table(analysis, services)
    finally:
        if enabled:
            gc.enable()


def _serving_table(analysis: Analysis, services: list[ServicePath] | None) -> list[PortServing]:
    absent = [(n, why) for n, why in analysis.uncollected.items() if n not in analysis.nodes]
    out = []
    for sp in analysis.services if services is None else services:
        for pp in sp.ports:
            ps = PortServing(sp.name, pp.protocol, pp.published, pp.target, pp.mode)
            ps.nodes = [node_serving(np, pp.mode) for np in pp.nodes]
            seen = {n.node for n in ps.nodes}
            ps.nodes += [NodeServing(name, UNKNOWN, None, why) for name, why in absent if name not in seen]
            out.append(ps)
    return out


def groups(ps: PortServing) -> list[tuple[str, str | None, str, list[str]]]:
    """(serves, hop, detail, nodes) for the nodes that agree, yes first, then no, then unknown; each
    distinct hop and detail its own group (nothing is summed away), nodes in table order."""
    order = {YES: 0, NO: 1, UNKNOWN: 2}
    out: dict[tuple[str, str | None, str], list[str]] = {}
    for n in ps.nodes:
        out.setdefault((n.serves, n.hop, n.detail), []).append(n.node)
    keys = sorted(out, key=lambda k: order[k[0]])  # stable: first seen first within each answer
    return [(k[0], k[1], k[2], out[k]) for k in keys]
