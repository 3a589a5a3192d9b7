"""What a check is: a ``CheckSpec`` (stable id, severity, title, the hint a user can act on) that yields
``Hit``s from a ``Ctx`` (the cluster and its path map), and the three generic judges the table's literal rows
use -- ``HopCheck`` (a hop of a path has one of some statuses), ``BackendCheck`` (an IPVS real server is
in some state) and ``FactCheck`` (a node's data-plane facts, swarmscope.facts, hold a wrong one) -- beside
``check``, the decorator for a check that is a function (pure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from swarmscope.correlate.cluster import Cluster
from swarmscope.correlate.paths.common import node_facts
from swarmscope.correlate.types import Hop, NodePath, ServicePath
from swarmscope.facts import NodeFacts
from swarmscope.model import BackendState, HopStatus, Severity

SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
#: the one policy for verdicts and exit codes: a finding of these severities means traffic stops. A path
#: is broken only at a hop that carries one (or at a bad hop no check explains), and `check` fails (exit 1)
#: exactly when there is one -- so a BROKEN path and exit 0 cannot go together.
BREAKING = frozenset({Severity.ERROR})


@dataclass
class Hit:
    nodes: list[str] = field(default_factory=list)
    service: str | None = None
    network: str | None = None
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    hops: list[tuple[NodePath, Hop]] = field(default_factory=list)  # the hops it is about, each with its path


@dataclass
class Ctx:
    cluster: Cluster
    paths: list[ServicePath]
    #: the names of the services judged (None: all); a finding about another service is not kept
    scope: frozenset[str] | None = None
    _hops: dict = field(default_factory=dict, repr=False, compare=False)
    _by_status: dict = field(default_factory=dict, repr=False, compare=False)
    _backends: dict | None = field(default=None, repr=False, compare=False)
    _by_node: dict = field(default_factory=dict, repr=False, compare=False)

    def in_scope(self, service: str | None) -> bool:
        """Whether a finding about ``service`` (None: about no service in particular) is kept."""
        return self.scope is None or service is None or service in self.scope

    def backends_in(self, state: BackendState) -> list[tuple[ServicePath, str, str | None, NodePath, Any]]:
        """(service path, kind, label, node path, backend) for every real server in ``state``, in
        node-path and backend order (indexed by state once; the ok ones, nearly all, only if asked for)."""
        if self._backends is None:
            self._backends = {}
            for sp, kind, label, np in self.node_paths():
                for b in np.backends:
                    if b.status != BackendState.OK:
                        self._backends.setdefault(b.status, []).append((sp, kind, label, np, b))
        if state == BackendState.OK and state not in self._backends:
            self._backends[state] = [
                (sp, kind, label, np, b)
                for sp, kind, label, np in self.node_paths()
                for b in np.backends
                if b.status == BackendState.OK
            ]
        return self._backends.get(state, [])

    def paths_on(self, node: str, which: str = "all") -> list[tuple[ServicePath, str, str | None, NodePath]]:
        """``node_paths(which)`` of one node (its name), in the same order: grouped by node once, so that a
        check asking it of every node does not walk every node's paths for each."""
        by = self._by_node.get(which)
        if by is None:
            by = self._by_node[which] = {}
            for e in self.node_paths(which):
                by.setdefault(e[3].node, []).append(e)
        return by.get(node, [])

    def hops_in(
        self, which: str, keys: tuple[str, ...], statuses: Iterable[HopStatus]
    ) -> list[tuple[ServicePath, str, str | None, NodePath, Hop]]:
        """(service path, kind, label, node path, hop) for every node path of ``which`` whose first hop of
        ``keys`` (the first key the path has) is in one of ``statuses``, in node-path order: through an
        index of the paths' hops by key and status built once per ``which`` (a healthy swarm's paths are
        then not walked by every check). The ok hops, most of them, are indexed only if asked for."""
        statuses = tuple(statuses)
        full = HopStatus.OK in statuses
        idx = self._by_status.get((which, full))
        if idx is None:
            idx = self._by_status[(which, full)] = {}
            for seq, (sp, kind, label, np) in enumerate(self.node_paths(which)):
                hops = np.hops
                for i, h in enumerate(hops):
                    if h.status == HopStatus.OK and not full:
                        continue
                    if any(x.key == h.key for x in hops[:i]):
                        continue  # the first hop of a key is the one judged (as hops_by_key)
                    idx.setdefault((h.key, h.status), []).append((seq, sp, kind, label, np, h))
        found = []
        for i, key in enumerate(keys):
            for st in dict.fromkeys(statuses):
                for e in idx.get((key, st), ()):
                    if i and any(k in self.hops_by_key(e[4]) for k in keys[:i]):
                        continue  # the path has an earlier key: that hop is the one judged
                    found.append(e)
        found.sort(key=lambda e: e[0])
        return [e[1:] for e in found]

    def hops_by_key(self, np: NodePath) -> dict[str, Hop]:
        """A node path's hops by key, the first of each (as ``NodePath.hop``), indexed once per path:
        every check asks every path."""
        hit = self._hops.get(id(np))
        if hit is not None:
            return hit[1]
        d: dict[str, Hop] = {}
        for h in np.hops:
            d.setdefault(h.key, h)
        self._hops[id(np)] = (np, d)  # the path kept with its index: its id stays its own
        return d

    def node_paths(self, which: str = "all") -> Iterator[tuple[ServicePath, str, str | None, NodePath]]:
        """(service path, kind, network or port label, node path) for every node path."""
        for sp in self.paths:
            if which in ("all", "ports"):
                for pp in sp.ports:
                    for np in pp.nodes:
                        yield sp, pp.mode, f"{pp.protocol}/{pp.published}", np
            if which in ("all", "vips"):
                for vp in sp.vip_paths:
                    for np in vp.nodes:
                        yield sp, "vip", vp.network, np


@dataclass(frozen=True)
class CheckSpec:
    """One check of the catalogue; ``hits`` judges a cluster."""

    id: str
    severity: Severity
    title: str
    hint: str

    def hits(self, ctx: Ctx) -> Iterable[Hit]:
        raise NotImplementedError


@dataclass(frozen=True)
class FnCheck(CheckSpec):
    """A check that is a function of its own (made by ``@check``)."""

    fn: Callable[[Ctx], Iterable[Hit]]

    def hits(self, ctx: Ctx) -> Iterable[Hit]:
        return self.fn(ctx)


def check(id: str, severity: Severity, title: str, hint: str) -> Callable[[Callable[[Ctx], Iterable[Hit]]], FnCheck]:
    """Make a function a check; it runs once it is listed in ``table.CHECKS``."""

    def deco(fn: Callable[[Ctx], Iterable[Hit]]) -> FnCheck:
        return FnCheck(id, severity, title, hint, fn)

    return deco


@dataclass(frozen=True)
class HopCheck(CheckSpec):
    """Fires where a path hop ``hop`` (the first of several keys a path has) has one of ``when``'s statuses,
    on the paths ``paths`` names: "ports" (published ports), "vips" (VIP and dnsrr paths) or "all".

    ``per_service=False`` for hops that belong to the network on the node, not to one service (the
    lb_ namespace's sysctls): every service's path crosses them, and the finding is one per network.
    """

    hop: str | tuple[str, ...]
    when: tuple[HopStatus, ...]
    paths: str
    per_service: bool = True

    def hits(self, ctx: Ctx) -> Iterator[Hit]:
        keys = (self.hop,) if isinstance(self.hop, str) else tuple(self.hop)
        for sp, kind, label, np, h in ctx.hops_in(self.paths, keys, self.when):
            net = label if kind == "vip" else None
            where = f"{label}: " if kind != "vip" and self.per_service else ""
            yield Hit(
                [np.node], sp.name if self.per_service else None, net, f"{where}{h.detail}", list(h.evidence), [(np, h)]
            )


@dataclass(frozen=True)
class BackendCheck(CheckSpec):
    """Fires for every IPVS real server (a path's backend) in ``state``, on ports and VIPs alike."""

    state: BackendState

    def hits(self, ctx: Ctx) -> Iterator[Hit]:
        for sp, kind, label, np, b in ctx.backends_in(self.state):
            where = f"network {label}" if kind == "vip" else label
            owner = f" (task {b.task} {b.task_state} of {b.service})" if b.task else ""
            key = "ingress.backends" if kind != "vip" else "lb.backends"
            h = np.hop(key)
            yield Hit(
                [np.node],
                sp.name,
                label if kind == "vip" else None,
                f"{where}: {b.address}{owner}",
                [e for e in (h.evidence if h else []) if b.address in e] or [f"{b.address} {self.state}"],
                [(np, h)] if h else [],
            )


@dataclass(frozen=True)
class FactCheck(CheckSpec):
    """Fires for every fact ``facts`` picks from a node's data-plane facts (``swarmscope.facts.NodeFacts``:
    a Jump, Dnat, Mark, Snat, FwmService, ...): one finding per wrong fact on that node, its detail
    ``detail(fact)`` and its evidence the fact's own (the rule line, the IPVS entry)."""

    facts: Callable[[NodeFacts], Iterable[Any]]
    detail: Callable[[Any], str]

    def hits(self, ctx: Ctx) -> Iterator[Hit]:
        for n in ctx.cluster.nodes:
            for f in self.facts(node_facts(n)):
                yield Hit([n.name], detail=self.detail(f), evidence=[f.evidence])
