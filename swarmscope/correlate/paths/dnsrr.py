"""A dnsrr service (or one without a VIP) on an overlay network, on one node (pure): the embedded DNS's
round-robin answer against the running tasks.
"""

from __future__ import annotations

from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, task_addresses
from swarmscope.correlate.paths.common import verdict
from swarmscope.correlate.paths.dns import dns_agrees, dns_answer
from swarmscope.correlate.types import Backend, Hop, NodePath
from swarmscope.model import DNS_TRUNCATED, BackendState, HopStatus, Service


def dnsrr_node_path(cl: Cluster, svc: Service, network_id: str, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    expected = sorted({a for t in cl.running_tasks(svc) for a in task_addresses(t, network_id)}, key=ip_key)
    a = dns_answer(n, network_id, svc.name)
    label = f"DNS {svc.name} -> task addresses"
    if a is None:
        np.hops.append(Hop("dns.rr", label, HopStatus.UNKNOWN, "not asked on this node"))
    elif a.status == DNS_TRUNCATED:  # a part of the answer: cannot be compared with the tasks
        np.hops.append(Hop("dns.rr", label, HopStatus.UNKNOWN, f"{a.status}: {a.reason}",
                           [f"{a.query} -> {' '.join(a.answers)} (a part: {a.reason})"]))
    elif a.status != "ok":
        np.hops.append(Hop("dns.rr", label, HopStatus.MISSING, a.status, [f"{a.query}: {a.status}"]))
    elif dns_agrees(cl, svc, network_id, a.answers, expected, n.now):
        np.hops.append(Hop("dns.rr", label, HopStatus.OK, " ".join(a.answers), [f"{a.query} -> {' '.join(a.answers)}"]))
    else:
        np.hops.append(
            Hop(
                "dns.rr",
                label,
                HopStatus.MISMATCH,
                f"answers {' '.join(a.answers)}, running tasks {' '.join(expected)}",
                [f"{a.query} -> {' '.join(a.answers)}"],
            )
        )
    np.backends = [
        Backend(
            address=x,
            status=BackendState.OK,
            task=cl.task_name(t),
            task_id=t.id,
            task_state=t.state,
            service=svc.name,
            node=cl.node_name(t.node_id),
            container_id=t.container_id,
        )
        for t in cl.running_tasks(svc)
        for x in task_addresses(t, network_id)
    ]
    verdict(np)
    return np
