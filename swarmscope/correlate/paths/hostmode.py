"""A published port in host mode, on one node (pure): the node's DNAT to its local task and the port bound.
"""

from __future__ import annotations

from swarmscope.correlate.cluster import Cluster, NodeCtx
from swarmscope.correlate.paths.common import node_facts, verdict
from swarmscope.correlate.types import Hop, NodePath
from swarmscope.facts.netfilter import DOCKER, NAT
from swarmscope.model import HopStatus, PortSpec, Service, Verdict


def host_node_path(cl: Cluster, svc: Service, port: PortSpec, n: NodeCtx) -> NodePath:
    assert port.published_port is not None  # analyze() maps published ports only
    np = NodePath(node=n.name, node_id=n.node_id)
    here = [t for t in cl.running_tasks(svc) if t.node_id == n.node_id]
    if not here:
        np.hops.append(
            Hop(
                "task.here",
                "task on this node",
                HopStatus.NA,
                "no running task here: host-mode ports are served only where a task runs",
            )
        )
        np.verdict, np.reason = Verdict.NA, "no task on this node (host mode)"
        return np
    np.hops.append(Hop("task.here", "task on this node", HopStatus.OK, ", ".join(cl.task_name(t) for t in here)))
    ls = [li for li in n.snap.host.listeners if li.port == port.published_port and li.protocol == port.protocol]
    host = node_facts(n).host.netfilter
    dnats = host.dnats(port.protocol, port.published_port, DOCKER) if host.read else []
    ev = [f"{li.protocol} {li.address}:{li.port} held by {li.process or '?'} (pid {li.pid})" for li in ls] + [
        f.evidence for f in dnats
    ]
    if ls or dnats:
        np.hops.append(Hop("host.bound", f"host port {port.published_port}", HopStatus.OK, "bound on the host", ev))
    else:
        held = ", ".join(f"{li.protocol}/{li.port}" for li in n.snap.host.listeners) or "none"
        np.hops.append(
            Hop(
                "host.bound",
                f"host port {port.published_port}",
                HopStatus.MISSING,
                "nothing bound and no DNAT for the port",
                [
                    f"sockets bound on published ports: {held}",
                    f"host {NAT} {DOCKER}: {len(host.lines(NAT, DOCKER))} rules, "
                    f"none for {port.protocol}/{port.published_port}",
                ],
            )
        )
    verdict(np)
    return np
