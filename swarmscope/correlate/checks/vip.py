"""VIP load balancing on overlay networks: the lb_ namespace, and an IPVS table none of whose real servers can
take a connection. The lb_ hops (alias, MARK, IPVS, SNAT, ip_forward) and the real servers' states are
rows of ``table.CHECKS``.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.model import BackendState, HopStatus, Severity


@check(
    "lb.namespace-missing",
    Severity.ERROR,
    "no lb_ namespace for a network with VIP services on this node",
    "dockerd creates lb_<network> when the first task of the network starts on the node; restart dockerd, "
    "or remove and recreate the service's tasks (`docker service update --force`).",
)
def check_lb_missing(ctx: Ctx) -> Iterator[Hit]:
    seen = set()
    for _sp, _kind, net, np in ctx.node_paths("vips"):
        h = np.hop("lb.ns")
        if h is not None and h.status == HopStatus.MISSING and (np.node, net) not in seen:
            seen.add((np.node, net))
            yield Hit([np.node], network=net, detail=f"network {net}", evidence=list(h.evidence), hops=[(np, h)])


@check(
    "ipvs.no-usable-backend",
    Severity.ERROR,
    "IPVS has real servers but none can take a connection",
    "Every real server is drained (weight 0), stale or another service's: new connections to the port or VIP "
    "on this node fail. `docker service update --force SERVICE` rebuilds the table; the other findings on "
    "this path say which real servers are wrong.",
)
def check_no_usable_backend(ctx: Ctx) -> Iterator[Hit]:
    for sp, kind, label, np in ctx.node_paths():
        key = "lb.backends" if kind == "vip" else "ingress.backends"
        h = np.hop(key)
        if (
            h is None
            or h.status != HopStatus.MISSING
            or not np.backends
            or any(b.status in (BackendState.OK, BackendState.DRAINING, BackendState.STARTING) for b in np.backends)
        ):
            continue
        if not any(b.weight is not None for b in np.backends):  # no IPVS entry at all: the other checks say why
            continue
        yield Hit([np.node], sp.name, label if kind == "vip" else None, f"{label}: {h.detail}", list(h.evidence),
                  [(np, h)])
