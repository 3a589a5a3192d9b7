"""The embedded DNS: tasks.<service> answers against the running tasks, duplicate answers, nodes that disagree.
The VIP and dnsrr answers on a path are judged by rows of ``table.CHECKS``.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import ip_key
from swarmscope.correlate.paths import settling_addresses
from swarmscope.model import DNS_TRUNCATED, HopStatus, Severity


@check(
    "dns.tasks-mismatch",
    Severity.ERROR,
    "tasks.<service> answers differ from the running tasks",
    "The node's service discovery is out of sync with the swarm: addresses missing or extra. "
    "Check the network's gossip (`docker network inspect -v NETWORK`, Peers) and dockerd's log on the node.",
)
def check_dns_tasks(ctx: Ctx) -> Iterator[Hit]:
    for sp in ctx.paths:
        for c in sp.dns:
            if c.status in (HopStatus.MISSING, HopStatus.MISMATCH):
                yield Hit(
                    [c.node],
                    sp.name,
                    c.network,
                    f"{c.query} on {c.network}: {c.detail}",
                    [f"{c.query} -> {' '.join(c.answers) or c.detail}", f"running tasks: {' '.join(c.expected)}"],
                )


@check(
    "dns.duplicate-answer",
    Severity.WARNING,
    "the embedded DNS answers the same address more than once",
    "The node's service discovery holds two records for one address (typically a task removed while another "
    "got its address, and the old record stayed): round-robin clients favour that task, and the stale record "
    "can outlive it. `docker service update --force SERVICE` re-registers the records; if it persists, "
    "restart dockerd on the node.",
)
def check_dns_duplicates(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        for a in n.snap.dns:
            dup = sorted({x for x in a.answers if a.answers.count(x) > 1}, key=ip_key)
            if a.status == "ok" and dup:
                yield Hit(
                    [n.name],
                    a.query.removeprefix("tasks."),
                    a.network_name,
                    f"{a.query} on {a.network_name}: {' '.join(dup)} answered more than once",
                    [f"{a.query} -> {' '.join(a.answers)} (from {a.namespace})"],
                )


@check(
    "dns.nodes-differ",
    Severity.WARNING,
    "DNS answers differ between nodes",
    "Nodes disagree about the service: one node's service discovery lags. Compare "
    "`docker network inspect -v NETWORK` on the nodes; check the gossip ports (7946 tcp/udp) between them.",
)
def check_dns_differ(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    by_name = {s.name: s for s in cl.services}
    groups: dict[tuple[str, str], dict[tuple, list[str]]] = {}
    # addresses of tasks being replaced reach the nodes' DNS a moment apart: an address in transition at
    # any node's collection time is set aside on every node (each node's own time alone would compare a
    # node that still counts a task as starting with one, collected two seconds later, that does not)
    settling: dict[tuple[str, str], set[str]] = {}
    for n in cl.nodes:
        for a in n.snap.dns:
            svc = by_name.get(a.query.removeprefix("tasks."))
            if svc is not None and ctx.in_scope(svc.name):
                settling.setdefault((a.network_id, a.query), set()).update(
                    settling_addresses(cl, svc, a.network_id, n.now))
    for n in cl.nodes:
        for a in n.snap.dns:
            if a.status in ("timeout", "error", DNS_TRUNCATED):  # no whole answer to compare
                continue
            if not ctx.in_scope(a.query.removeprefix("tasks.")):  # its finding would be about a service not judged
                continue
            aside = settling.get((a.network_id, a.query), set())
            answers = tuple(sorted((x for x in a.answers if x not in aside), key=ip_key))
            groups.setdefault((a.network_name, a.query), {}).setdefault(answers, []).append(n.name)
    for (net, query), by_answer in sorted(groups.items()):
        if len(by_answer) > 1:
            yield Hit(
                sorted({x for v in by_answer.values() for x in v}),
                query.removeprefix("tasks."),
                net,
                f"{query} on {net}: {len(by_answer)} different answers",
                [f"{', '.join(nodes)}: {' '.join(a) or 'no address'}" for a, nodes in by_answer.items()],
            )
