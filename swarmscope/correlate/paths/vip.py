"""A service VIP on an overlay network, on one node (pure): the DNS answer, the lb_ namespace (alias, MARK,
IPVS, SNAT, ip_forward, links) and the real servers; which nodes are on a network.
"""

from __future__ import annotations

from sys import intern  # a text every node's path to a service repeats: one string (100 nodes: not 100)

from swarmscope.correlate.cluster import Cluster, NodeCtx, task_addresses
from swarmscope.correlate.paths.common import (
    alias_hop,
    backends_for,
    backends_hop,
    backends_key,
    ipvs_service_hop,
    kernel_hop,
    links_hop,
    mark_hop,
    node_hop,
    ns_facts,
    ns_hop,
    snat_hop,
    subnet_addresses,
    sysctl_hop,
    verdict,
    vtep_hop,
)
from swarmscope.correlate.paths.dns import dns_answer
from swarmscope.correlate.types import Hop, NodePath
from swarmscope.engines import profile_for
from swarmscope.facts.netfilter import INPUT, MANGLE
from swarmscope.model import HopStatus, Service, Verdict


def nodes_on_network(cl: Cluster, network_id: str) -> list[NodeCtx]:
    out = []
    for n in cl.nodes:
        if n.lb_ns(network_id) or n.overlay_ns(network_id):
            out.append(n)
            continue
        if network_id in container_networks(n):
            out.append(n)
    return out


def container_networks(n: NodeCtx) -> frozenset[str]:
    """The networks the node's containers are attached to (once per node)."""
    return n.memo(
        "container_networks",
        lambda: frozenset(cn.network_id for c in n.snap.docker.containers for cn in c.networks),
    )


def vip_node_path(cl: Cluster, svc: Service, network_id: str, vip: str, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    hops = np.hops
    net = cl.networks.get(network_id)
    hops.append(node_hop(n, ("kernel.ipvs",), lambda: kernel_hop(n)))  # the node's own: judged once per node
    a = dns_answer(n, network_id, svc.name)
    if a is None:
        hops.append(Hop("dns.vip", intern(f"DNS {svc.name} -> {vip}"), HopStatus.UNKNOWN, "not asked on this node"))
    elif a.status != "ok" and not any(task_addresses(t, network_id) for t in cl.running_tasks(svc)):
        # the engine withdraws a VIP's name with the service's last backend on the network (libnetwork
        # rmServiceBinding: no backends left -> rmService -> deleteSvcRecords of the VIP); the resolver then
        # forwards the question outside, which may not answer at all. Nothing runs to answer: not a DNS fault
        hops.append(
            Hop(
                "dns.vip",
                intern(f"DNS {svc.name} -> {vip}"),
                HopStatus.OK,
                f"{a.status}: no task runs, so the engine has withdrawn the name",
                [f"{a.query} @127.0.0.11 from {a.namespace}: {a.status}"],
            )
        )
    elif a.status != "ok":
        hops.append(
            Hop(
                "dns.vip",
                intern(f"DNS {svc.name} -> {vip}"),
                HopStatus.MISSING,
                f"{a.status}{': ' + a.reason if a.reason else ''}",
                [f"{a.query} @127.0.0.11 from {a.namespace}: {a.status}"],
            )
        )
    elif set(a.answers) == {vip}:  # a duplicated record is dns.duplicate-answer's
        hops.append(
            Hop(
                "dns.vip",
                intern(f"DNS {svc.name} -> {vip}"),
                HopStatus.OK,
                vip,
                [f"{a.query} -> {' '.join(a.answers)} (from {a.namespace})"],
            )
        )
    else:
        hops.append(
            Hop(
                "dns.vip",
                intern(f"DNS {svc.name} -> {vip}"),
                HopStatus.MISMATCH,
                f"answers {' '.join(a.answers)}",
                [f"{a.query} -> {' '.join(a.answers)} (from {a.namespace})"],
            )
        )
    prof = profile_for(n.snap.node.engine_version)
    if prof is not None and not prof.lb_sandboxes:  # engine.unsupported says so once per node
        hops.append(
            Hop(
                "lb.ns",
                "VIP load balancing",
                HopStatus.UNKNOWN,
                f"engine {n.snap.node.engine_version} balances VIPs in every task sandbox (before 18.06): not judged",
            )
        )
        verdict(np)
        return np
    lb = n.lb_ns(network_id)
    # the network's load balancer on the node, the same in each of its paths there: judged once per node and network
    hops.append(node_hop(n, ("lb.ns", network_id), lambda: ns_hop(
        "lb.ns", f"lb_ namespace of {cl.network_name(network_id)}", lb, "lb_", n)))
    hops.append(node_hop(n, ("lb.ip_forward", network_id), lambda: (
        sysctl_hop("lb.ip_forward", "lb_ ip_forward", lb.sysctls if lb else {}, "net.ipv4.ip_forward")
        if lb
        else Hop("lb.ip_forward", "lb_ ip_forward", HopStatus.MISSING, "no lb_ namespace")
    )))
    if lb is not None:
        ov = n.overlay_ns(network_id)
        br = next((i for i in ov.interfaces if i.kind == "bridge" or i.name == "br0"), None) if ov else None
        hops.append(
            node_hop(n, ("lb.links", network_id), lambda: links_hop(
                "lb.links",
                "lb_ links",
                lb,
                [(ov.name, ov.interfaces)] if ov else [],
                [(ov.name, br)] if ov else [],
                n,
            ))
        )
    hops.append(alias_hop("lb.vip_alias", intern(f"VIP {vip}/32 on lb_"), lb, vip, n=n))
    expected = n.local_lb_index(network_id, svc.name)
    lb_rules = ns_facts(n, lb).netfilter if lb is not None else None
    if lb is None:
        hops.append(Hop("lb.mark", intern(f"MARK for {vip}"), HopStatus.MISSING, "no lb_ namespace"))
        mark = expected
    elif lb_rules is None or not lb_rules.read:
        hops.append(Hop("lb.mark", intern(f"MARK for {vip}"), HopStatus.UNKNOWN, f"iptables of {lb.name} not read"))
        mark = expected
    else:
        h, mark = mark_hop(
            "lb.mark", intern(f"MARK for {vip}"), lb_rules.dst_marks(vip, INPUT), expected,
            f"{lb.name} {MANGLE} {INPUT}",
            chain=lb_rules.lines(MANGLE, INPUT),
        )
        hops.append(h)
    h, ipvs_svc = ipvs_service_hop("lb.ipvs", intern(f"IPVS in {lb.name if lb else 'lb_'}"), n, lb, mark)
    hops.append(h)
    # the same real servers judged once for every node with the same input (the Backends are shared)
    key = backends_key(cl, svc, network_id, ipvs_svc, h, n)
    np.backends = cl.memo(key, lambda: backends_for(cl, svc, network_id, ipvs_svc, h, n))  # shared, never changed
    hops.append(backends_hop("lb.backends", "real servers -> tasks", np.backends, ipvs_svc, h, cl))
    vh = vtep_hop(cl, svc, network_id, n)
    if vh is not None:
        hops.append(vh)
    lb_ip = next((a for a in subnet_addresses(n, lb, net.subnets) if a != vip), None) if net else None
    hops.append(node_hop(n, ("lb.snat", network_id, lb_ip), lambda: snat_hop(
        "lb.snat", "lb_ SNAT", n, lb, net.subnets if net else [], lb_ip)))
    if _idle(cl, svc, network_id):
        # libnetwork removes a VIP's load balancing (its alias on lb_, MARK, IPVS service) with the service's last
        # backend on the network, and adds it back with the next: with no task running nothing is there to reach
        for h in list(hops):
            if h.key in IDLE_HOPS and h.status in (HopStatus.MISSING, HopStatus.MISMATCH):
                h = np.own(h)
                h.status, h.detail = HopStatus.NA, f"{h.detail} (no task runs: removed with the last backend)"
        verdict(np)
        if np.verdict == Verdict.OK:
            np.verdict, np.reason = Verdict.NA, "no task of the service runs on this network: nothing to balance"
        return np
    verdict(np)
    return np


#: what the engine removes with a VIP's last backend (libnetwork rmServiceBinding -> rmLBBackend, rmService)
IDLE_HOPS = ("lb.vip_alias", "lb.mark", "lb.ipvs", "lb.backends")


def _idle(cl: Cluster, svc: Service, network_id: str) -> bool:
    """No task of the service runs on the network (one pending or starting is not a backend yet: the engine adds
    the load balancing when a task's endpoint joins, as it starts)."""
    return not any(task_addresses(t, network_id) for t in cl.running_tasks(svc))
