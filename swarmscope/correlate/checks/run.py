"""Running the table: a check yields ``Hit``s; ``run_checks`` turns them into ``Finding``s, merges the same
fault seen on several nodes, tags the hops, and groups symptoms under their root cause.
"""

from __future__ import annotations

from swarmscope.correlate.checks.registry import BREAKING, SEVERITY_ORDER, CheckSpec, Ctx
from swarmscope.correlate.checks.roots import group
from swarmscope.correlate.checks.table import REGISTRY, SEVERITY
from swarmscope.correlate.cluster import strip_prefix
from swarmscope.correlate.types import Finding, Hop, ServicePath
from swarmscope.model import Verdict


def run_checks(ctx: Ctx, only: set[str] | None = None) -> list[Finding]:
    merged: dict[tuple, Finding] = {}
    hops_of: dict[tuple, list[Hop]] = {}
    owned: dict = {}  # (path, shared hop) -> the path's own copy (NodePath.own)
    for spec in REGISTRY:
        if only is not None and spec.id not in only:
            continue
        for hit in spec.hits(ctx):
            if not ctx.in_scope(hit.service):
                continue
            key = (spec.id, hit.service, hit.network, hit.detail)
            f = merged.get(key)
            if f is None:
                f = merged[key] = Finding(
                    id=spec.id,
                    severity=spec.severity,
                    title=spec.title,
                    hint=spec.hint,
                    service=hit.service,
                    network=hit.network,
                    detail=hit.detail,
                )
            for n in hit.nodes:
                if n not in f.nodes:
                    f.nodes.append(n)
            for e in hit.evidence:
                if e not in f.evidence:
                    f.evidence.append(e)
            for np, h in hit.hops:
                h = np.own(h, owned)  # a hop shared by several paths: this path's own copy is tagged
                if spec.id not in h.findings:
                    h.findings += (spec.id,)
                hops_of.setdefault(key, []).append(h)
    findings = list(merged.values())
    top = group(findings, _task_nodes(ctx))
    # a hop whose findings are all explained by one root cause says so
    causes: dict[int, set] = {}
    for key, f in merged.items():
        for h in hops_of.get(key, []):
            causes.setdefault(id(h), set()).add(top[id(f)].id if id(f) in top else None)
    for key in merged:
        for h in hops_of.get(key, []):
            c = causes.get(id(h), {None})
            if len(c) == 1 and None not in c:
                h.root_cause = next(iter(c))
    findings.sort(
        key=lambda f: (
            f.caused_by is not None,
            -f.explains if f.caused_by is None else 0,
            SEVERITY_ORDER.get(f.severity, 9),
            f.id,
            f.service or "",
            f.network or "",
            f.detail,
        )
    )
    return findings


def hop_breaks(h: Hop) -> bool:
    """Whether a bad hop stops traffic: it carries a breaking finding, or none explains it."""
    return not h.findings or any(SEVERITY.get(f) in BREAKING for f in h.findings)


def fails(findings: list[Finding], paths: list[ServicePath]) -> bool:
    """Whether `check` fails: a breaking finding, or (belt and braces) a broken path."""
    if any(f.severity in BREAKING for f in findings):
        return True
    return any(np.verdict == Verdict.BROKEN for _, _, _, np in Ctx(None, paths).node_paths())  # type: ignore[arg-type]


def catalogue() -> list[CheckSpec]:
    """Every registered check, for the README and `swarmscope findings`."""
    return sorted(REGISTRY, key=lambda c: c.id)


def _task_nodes(ctx: Ctx) -> dict[str, set[str]]:
    """The nodes of the running tasks holding each address (any network), for the causes across nodes."""
    cl = ctx.cluster
    out: dict[str, set[str]] = {}
    for t in cl.tasks:
        if t.state != "running":
            continue
        for a in t.attachments:
            for x in a.addresses:
                ip = strip_prefix(x)
                if ip:
                    out.setdefault(ip, set()).add(cl.node_name(t.node_id))
    return out
