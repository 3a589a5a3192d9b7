"""Root causes: one cause shown once, with the count of what it explains.

``ROOT_CAUSES`` is the table (root id, the ids it explains on the same node(s), must the network match too);
``group`` applies it to a run's findings.
"""

from __future__ import annotations

import re

from swarmscope.correlate.types import Finding

NO_IPVS_SYMPTOMS = {
    "ingress.chain-missing",
    "ingress.jump-missing",
    "ingress.dnat-missing",
    "ingress.filter-accept-missing",
    "ingress.mark-missing",
    "ingress.ipvs-service-missing",
    "ingress.snat-missing",
    "ingress.vip-alias-missing",
    "ingress.vip-mark-missing",
    "vip.alias-missing",
    "vip.mark-missing",
    "vip.ipvs-service-missing",
    "vip.snat-missing",
    "ipvs.backend-missing",
    "host.route-localnet-off",
}
ROOT_CAUSES: list[tuple[str, set[str], bool]] = [
    # (root id, ids it explains on the same node(s), must the network match too)
    ("kernel.no-ipvs", NO_IPVS_SYMPTOMS, False),
    # a DROP in the backend the engine does not use that stops the swarm's ports is named once, as that
    ("iptables.other-backend-drops", {"iptables.backend-split", "node.swarm-ports-blocked"}, False),
    # fwmarker exits before adding the MARK and SNAT rules: the IPVS services get no traffic
    (
        "kernel.ipvs-no-conntrack",
        {
            "ingress.mark-missing",
            "ingress.snat-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "vip.snat-missing",
            "ipvs.sysctl-unexpected",
        },
        False,
    ),
    # collector-backed causes (correlate/causes.py): a module or extension dockerd's next step needs is not there.
    # configureFWMark adds the port MARKs, then the ipvs SNAT, then the VIP's INPUT MARK, and returns on the first
    # failure before NewService: a missing ipvs match or netfilter module leaves the IPVS service uncreated too
    (
        "kernel.ipvs-scheduler-missing",
        {"ingress.ipvs-service-missing", "vip.ipvs-service-missing", "ipvs.backend-missing"},
        False,
    ),
    (
        "iptables.no-ipvs-match",
        {
            "ingress.snat-missing",
            "vip.snat-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "ingress.ipvs-service-missing",
            "vip.ipvs-service-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    (
        "kernel.netfilter-module-missing",
        {
            "ingress.mark-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "ingress.snat-missing",
            "vip.snat-missing",
            "ingress.chain-missing",
            "ingress.jump-missing",
            "ingress.dnat-missing",
            "ingress.redirect-missing",
            "ingress.ipvs-service-missing",
            "vip.ipvs-service-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    # a node the managers cannot reach: its tasks are short until rescheduled (a global service's stay short)
    ("node.down", {"service.replicas-short"}, False),
    # UDP entries stick to a real server that is still (wrongly) in the table
    ("ipvs.backend-stale", {"ipvs.conn-stale-udp"}, False),
    # sandboxes copy the host's ip_forward when they are created
    ("host.ip-forward-off", {"lb.ip-forward-off", "ingress.ip-forward-off"}, False),
    (
        "ingress.sandbox-missing",
        {
            "ingress.mark-missing",
            "ingress.ipvs-service-missing",
            "ingress.snat-missing",
            "ingress.vip-alias-missing",
            "ingress.vip-mark-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    ("ingress.chain-missing", {"ingress.jump-missing", "ingress.dnat-missing", "ingress.filter-accept-missing"}, False),
    (
        "lb.namespace-missing",
        {
            "lb.ip-forward-off",
            "vip.alias-missing",
            "vip.mark-missing",
            "vip.ipvs-service-missing",
            "vip.snat-missing",
            "ipvs.backend-missing",
        },
        True,
    ),
    ("ingress.mark-missing", {"ingress.ipvs-service-missing", "ipvs.backend-missing"}, False),
    # a wrong mark is followed into IPVS: the service it names is not there, and the tasks get nothing
    ("ingress.mark-mismatch", {"ingress.ipvs-service-missing", "ipvs.backend-missing"}, False),
    ("vip.mark-mismatch", {"vip.ipvs-service-missing", "ipvs.backend-missing"}, True),
    ("vip.mark-missing", {"vip.ipvs-service-missing", "ipvs.backend-missing"}, True),
    ("ingress.ipvs-service-missing", {"ipvs.backend-missing"}, False),
    ("vip.ipvs-service-missing", {"ipvs.backend-missing"}, True),
    # a node cut off from a network's gossip: the others drop its endpoints and it theirs (DNS, VIP real servers)
    # (and the overlay's permanent FDB and neighbour entries for them, which the engine removes with the endpoints)
    ("network.gossip-incomplete", {"dns.tasks-mismatch", "dns.nodes-differ", "ipvs.backend-missing",
                                   "overlay.peer-missing"}, True),
]


#: causes on one node that explain findings about other nodes: (root id, a word its detail must hold, the ids it
#: explains and how each is tied to the root's node: "nodes" - the finding is about that node too (among its
#: nodes, or named in its detail: "m3-manager lacks m3-worker1"); "addresses" - every address in its detail
#: belongs to a task running on that node, or the finding is on that node and every address belongs to a task
#: on other nodes). A node's firewall dropping gossip (7946, checks/node.py SWARM_PORTS) cuts it out of every
#: network's Peers on the others: their views lack it, their DNS, load balancers and overlay FDB lose its tasks'
#: addresses; and its own view may lose theirs (the VM tier's three-node mesh, fault w, one run of six: the
#: node dropping 7946 lacked the manager's task in its DNS, IPVS and FDB; tests/fixtures/vm-mesh3-w2).
CROSS_NODE_CAUSES: list[tuple[str, str, dict[str, str]]] = [
    ("node.swarm-ports-blocked", "(gossip)", {
        "network.gossip-incomplete": "nodes",
        "dns.nodes-differ": "nodes",
        "dns.tasks-mismatch": "addresses",
        "ipvs.backend-missing": "addresses",
        "overlay.peer-missing": "addresses",
    }),
]
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def group(findings: list[Finding], task_nodes: dict[str, set[str]] | None = None) -> dict[int, Finding]:
    """Set caused_by on symptoms, and on each cause the count of what it explains (transitively).
    ``task_nodes``: the nodes running a task that holds each address (for CROSS_NODE_CAUSES).

    Returns, for each explained finding (by id()), its top root cause.
    """
    parent: dict[int, Finding] = {}
    for root_id, explains, same_net in ROOT_CAUSES:
        roots = [f for f in findings if f.id == root_id and id(f) not in parent]
        for f in findings:
            if id(f) in parent or f.id not in explains:
                continue
            for r in roots:
                if not set(f.nodes) <= set(r.nodes):
                    continue
                if same_net and r.network != f.network:
                    continue
                if r.service and f.service and r.service != f.service:
                    continue
                parent[id(f)] = r
                f.caused_by = r.id
                break
    owners = task_nodes or {}

    def tied(r: Finding, f: Finding, how: str) -> bool:
        if how == "nodes":
            named = any(re.search(rf"\b{re.escape(n)}\b", f.detail) for n in r.nodes)
            return named or bool(set(r.nodes) & set(f.nodes))
        addrs = _IPV4.findall(f.detail)
        if not addrs or not all(owners.get(a) for a in addrs):
            return False
        cut = set(r.nodes)
        # the others lose the cut-off node's tasks, or the cut-off node loses theirs (never its own)
        return all(owners[a] <= cut for a in addrs) or (
            set(f.nodes) <= cut and all(not owners[a] & cut for a in addrs))

    for root_id, word, ties in CROSS_NODE_CAUSES:
        roots = [f for f in findings if f.id == root_id and word in f.detail and id(f) not in parent]
        for f in findings:
            if id(f) in parent or f.id not in ties:
                continue
            cause = next((r for r in roots if tied(r, f, ties[f.id])), None)
            if cause is not None:
                parent[id(f)] = cause
                f.caused_by = cause.id
    top: dict[int, Finding] = {}
    for f in findings:
        p = parent.get(id(f))
        while p is not None:
            p.explains += 1
            p.explained[f.id] = p.explained.get(f.id, 0) + 1
            top[id(f)] = p
            p = parent.get(id(p))
    return top


