"""The ingress mesh's host rules (DOCKER-INGRESS, the jumps to it), the ingress sandbox's endpoint, and the
tasks' own REDIRECT of a published port. The checks that judge one hop of an ingress or host-mode path
(DNAT, filter, MARK, IPVS, SNAT, ...) are rows of ``table.CHECKS``.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarmscope.correlate import lifecycle
from swarmscope.correlate.checks.node import publishes_ingress
from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import strip_prefix
from swarmscope.correlate.paths.common import node_facts
from swarmscope.facts.netfilter import DOCKER_INGRESS, INGRESS_JUMP_CHAINS, INGRESS_JUMP_PLACES, NAT
from swarmscope.model import BackendState, HopStatus, Severity


@check(
    "ingress.chain-missing",
    Severity.ERROR,
    "nat chain DOCKER-INGRESS is missing",
    "The host's ingress rules are gone (a firewall reload such as `firewall-cmd --reload` or `iptables -F` "
    "removes them, or they were never programmed). Restart dockerd on the node to re-program them.",
)
def check_chain_missing(ctx: Ctx) -> Iterator[Hit]:
    if not publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        host = node_facts(n).host.netfilter
        if host.read and not host.has_chain(NAT, DOCKER_INGRESS):
            hops = [
                (np, h) for _, k, _, np in ctx.paths_on(n.name, "ports")
                if k == "ingress" and (h := np.hop("host.jump")) is not None
            ]
            yield Hit(
                [n.name],
                detail=f"no {DOCKER_INGRESS} chain in the host {NAT} table",
                evidence=[f"host {NAT} chains: {', '.join(host.chain_names(NAT))}"],
                hops=hops,
            )


@check(
    "ingress.jump-missing",
    Severity.ERROR,
    "no jump to DOCKER-INGRESS from nat PREROUTING/OUTPUT",
    "Restart dockerd on the node to re-create the jump rules; check that no firewall script deletes them.",
)
def check_jump_missing(ctx: Ctx) -> Iterator[Hit]:
    if not publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        host = node_facts(n).host.netfilter
        if not host.read or not host.has_chain(NAT, DOCKER_INGRESS):
            continue
        missing = [c for c in INGRESS_JUMP_CHAINS if not host.jumps(NAT, c, DOCKER_INGRESS)]
        if missing:
            ev = [f"host {NAT} {c}: {line}" for c in missing for line in host.lines(NAT, c)] or [
                f"host {NAT} {' and '.join(missing)}: no rules"
            ]
            yield Hit([n.name], detail=f"no jump from {' and '.join(missing)}", evidence=ev)


@check(
    "ingress.jump-duplicated",
    Severity.WARNING,
    "jump rules to DOCKER-INGRESS are duplicated",
    "Harmless for routing but a sign of a script re-adding rules; remove the duplicates or restart dockerd.",
)
def check_jump_duplicated(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        host = node_facts(n).host.netfilter
        if not host.read:
            continue
        for tname, chains in INGRESS_JUMP_PLACES:
            for c in chains:
                jumps = host.jumps(tname, c, DOCKER_INGRESS)
                if len(jumps) > 1:
                    yield Hit(
                        [n.name], detail=f"{tname} {c} jumps {len(jumps)} times", evidence=[j.evidence for j in jumps]
                    )


@check(
    "ingress.sandbox-incomplete",
    Severity.ERROR,
    "ingress_sbox exists but the engine has no working ingress endpoint for it",
    "The ingress sandbox was only half created: the ingress network lists no `ingress-sbox` endpoint on this "
    "node, or the sandbox lacks the load-balancer address the engine gave it (dockerd's log then shows "
    "'Failed to find a load balancer IP to use for network'). Restart dockerd on the node; if it persists, "
    "recreate the ingress network with a larger subnet.",
)
def check_sandbox_incomplete(ctx: Ctx) -> Iterator[Hit]:
    if not publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        sbox = n.ingress_sbox
        net = next((x for x in n.snap.docker.networks if x.ingress), None)
        if sbox is None or net is None or not sbox.interfaces:
            continue
        ep = next((c for c in net.containers if c.key == "ingress-sbox"), None)
        have = [f"{i.name} {a.address}/{a.prefixlen}" for i in sbox.interfaces for a in i.addresses if a.family == 4]
        if ep is None:
            yield Hit(
                [n.name],
                detail=f"network {net.name} lists no ingress-sbox endpoint",
                evidence=[
                    f"docker network inspect {net.name}: endpoints "
                    + (", ".join(c.name or c.key for c in net.containers) or "none"),
                    f"ingress_sbox addresses: {', '.join(have) or 'none'}",
                ],
            )
            continue
        ip = strip_prefix(ep.ipv4)
        if ip and not any(a.address == ip for i in sbox.interfaces for a in i.addresses):
            yield Hit(
                [n.name],
                detail=f"ingress_sbox lacks its load-balancer address {ip} on {net.name}",
                evidence=[
                    f"docker network inspect {net.name}: ingress-sbox {ep.ipv4}",
                    f"ingress_sbox addresses: {', '.join(have) or 'none'}",
                ],
            )


@check(
    "ingress.redirect-missing",
    Severity.ERROR,
    "a task sandbox has no REDIRECT from published to target port",
    "The task's own nat PREROUTING must REDIRECT the published port to the target port; "
    "`docker service update --force SERVICE` replaces the task.",
)
def check_redirect(ctx: Ctx) -> Iterator[Hit]:
    seen = set()
    cl = ctx.cluster
    for sp, _kind, label, np in ctx.node_paths("ports"):
        for b in np.backends:  # a task in its first seconds may not have its rule yet
            if (
                b.redirect not in (HopStatus.MISSING, HopStatus.MISMATCH)
                or b.status == BackendState.STARTING
                or (b.task_id, label) in seen
            ):
                continue
            t = cl.task(b.task_id)
            where = cl.node_by_id(t.node_id) if t is not None else None
            if t is not None and lifecycle.starting(t, where.now if where else None):
                continue  # a real server already (IPVS has it), its own sandbox not yet done
            seen.add((b.task_id, label))
            yield Hit(
                [b.node or "?"],
                sp.name,
                detail=f"{label}: task {b.task} ({b.address})",
                evidence=list(b.redirect_evidence),
            )
