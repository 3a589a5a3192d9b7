"""The embedded DNS (pure): a node's answer for a name, the addresses of tasks being replaced (which reach the
nodes' DNS a moment apart), and the tasks.<service> checks per node.
"""

from __future__ import annotations

from datetime import datetime

from swarmscope.correlate import lifecycle
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, task_addresses
from swarmscope.correlate.types import DnsCheck
from swarmscope.model import DNS_TRUNCATED, HopStatus, Service


def dns_answer(n: NodeCtx, network_id: str, query: str):
    return n.dns_answer(network_id, query)


def settling_addresses(cl: Cluster, svc: Service, network_id: str, now: datetime | None) -> set[str]:
    """Addresses of the service's tasks in transition: DNS may or may not hold them yet."""
    updating = lifecycle.updating(svc)
    return {
        a
        for t in cl.service_tasks(svc)
        if updating or t.id in cl.uncertain or lifecycle.in_transition(t, now)
        for a in task_addresses(t, network_id)
    }


def dns_agrees(cl: Cluster, svc: Service, network_id: str, answers, expected, now) -> bool:
    settling = settling_addresses(cl, svc, network_id, now)
    if cl.api_source is None:  # a node alone cannot tell a drained task's entry from a lost one: see below
        return set(answers) - set(expected) <= settling
    return (set(answers) ^ set(expected)) <= settling


def _enabled_in_ipvs(n: NodeCtx, network_id: str) -> set[str]:
    """Real servers this node's load balancer for the network sends traffic to (weight above 0)."""
    lb = n.lb_ns(network_id)
    if lb is None or lb.ipvs is None or not lb.ipvs.available:
        return set()
    return {d.address for s in lb.ipvs.services for d in s.dests if d.weight}


def dns_tasks_checks(cl: Cluster, svc: Service, network_id: str) -> list[DnsCheck]:
    expected = sorted({a for t in cl.running_tasks(svc) for a in task_addresses(t, network_id)}, key=ip_key)
    out = []
    for n in cl.nodes:
        a = dns_answer(n, network_id, f"tasks.{svc.name}")
        if a is None:
            continue
        c = DnsCheck(
            node=n.name,
            network_id=network_id,
            network=cl.network_name(network_id),
            query=a.query,
            status=HopStatus.OK,
            answers=a.answers,
            expected=expected,
        )
        if a.status == DNS_TRUNCATED:
            # a part of the answer: what it lacks says nothing; an address it holds that no running task has does
            settling = settling_addresses(cl, svc, network_id, n.now)
            c.extra = [x for x in a.answers if x not in expected and x not in settling]
            c.status = HopStatus.MISMATCH if c.extra else HopStatus.UNKNOWN
            c.detail = f"extra {' '.join(c.extra)}" if c.extra else f"{a.status}: {a.reason}"
        elif a.status != "ok":
            c.status = HopStatus.MISSING if expected else HopStatus.OK
            c.detail = a.status + (f": {a.reason}" if a.reason else "")
            c.missing = list(expected)
        else:
            settling = settling_addresses(cl, svc, network_id, n.now)
            # without a manager, a task DNS no longer answers may be one being drained (its container still
            # runs; nothing a node shows says so but its weight): missing counts only where this node's
            # load balancer still sends it traffic, so DNS and IPVS disagree
            enabled = None if cl.api_source is not None else _enabled_in_ipvs(n, network_id)
            c.missing = [
                x for x in expected if x not in a.answers and x not in settling and (enabled is None or x in enabled)
            ]
            c.extra = [x for x in a.answers if x not in expected and x not in settling]
            if c.missing or c.extra:
                c.status = HopStatus.MISMATCH
                c.detail = "; ".join(
                    p
                    for p in (
                        f"missing {' '.join(c.missing)}" if c.missing else "",
                        f"extra {' '.join(c.extra)}" if c.extra else "",
                    )
                    if p
                )
        out.append(c)
    return out
