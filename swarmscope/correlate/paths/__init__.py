"""The path map: hop by hop, node by node, how traffic reaches a service (pure).

One module per path kind -- ``ingress`` (published port, ingress mode), ``hostmode`` (published port,
host mode), ``vip`` (a VIP on an overlay network), ``dnsrr`` (DNS round robin), ``dns`` (tasks.<service>
answers) -- on what they share (``common``: readers, hop builders, real servers, ``verdict``). Here: a
service's path from those, and ``build_paths`` for every service.
"""

from __future__ import annotations

from swarmscope.correlate.cluster import Cluster, strip_prefix
from swarmscope.correlate.paths.common import verdict
from swarmscope.correlate.paths.dns import dns_tasks_checks, settling_addresses
from swarmscope.correlate.paths.dnsrr import dnsrr_node_path
from swarmscope.correlate.paths.hostmode import host_node_path
from swarmscope.correlate.paths.ingress import ingress_node_path
from swarmscope.correlate.paths.vip import nodes_on_network, vip_node_path
from swarmscope.correlate.types import PortPath, ServicePath, TaskInfo, VipPath
from swarmscope.model import Service


def service_path(cl: Cluster, svc: Service) -> ServicePath:
    sp = ServicePath(
        id=svc.id,
        name=svc.name,
        mode=svc.mode,
        replicas=svc.replicas,
        endpoint_mode=svc.endpoint_mode,
    )
    net_ids = list(dict.fromkeys(list(svc.networks) + [v.network_id for v in svc.vips]))
    sp.networks = [cl.network_name(i) for i in net_ids]
    sp.vips = {cl.network_name(v.network_id): strip_prefix(v.address) or "" for v in svc.vips}
    for t in sorted(cl.service_tasks(svc), key=lambda t: (t.slot or 0, t.state != "running")):
        if t.desired_state != "running" and t.state != "running":
            continue
        sp.tasks.append(
            TaskInfo(
                id=t.id,
                name=cl.task_name(t),
                node=cl.node_name(t.node_id),
                state=t.state,
                desired_state=t.desired_state,
                container_id=t.container_id,
                addresses={
                    (a.network_name or cl.network_name(a.network_id)): [strip_prefix(x) or "" for x in a.addresses]
                    for a in t.attachments
                },
            )
        )
    for p in svc.ports:
        if not p.published_port:
            continue
        pp = PortPath(protocol=p.protocol, published=p.published_port, target=p.target_port, mode=p.publish_mode)
        for n in cl.nodes:
            pp.nodes.append(
                ingress_node_path(cl, svc, p, n) if p.publish_mode == "ingress" else host_node_path(cl, svc, p, n)
            )
        sp.ports.append(pp)
    for nid in net_ids:
        net = cl.networks.get(nid)
        if net is None or net.ingress:
            continue
        vip = next((strip_prefix(v.address) for v in svc.vips if v.network_id == nid), None)
        vp = VipPath(network_id=nid, network=net.name, vip=vip, endpoint_mode=svc.endpoint_mode)
        for n in nodes_on_network(cl, nid):
            if svc.endpoint_mode == "dnsrr" or not vip:
                vp.nodes.append(dnsrr_node_path(cl, svc, nid, n))
            else:
                vp.nodes.append(vip_node_path(cl, svc, nid, vip, n))
        sp.vip_paths.append(vp)
        sp.dns.extend(dns_tasks_checks(cl, svc, nid))
    return sp


def build_paths(cl: Cluster, scope: frozenset[str] | None = None) -> list[ServicePath]:
    """The path map of every service, or (``scope``) of the services of those names."""
    return [service_path(cl, s) for s in cl.services if scope is None or s.name in scope]


__all__ = ["build_paths", "service_path", "settling_addresses", "verdict"]
