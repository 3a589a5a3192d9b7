"""The swarm's services and networks on the nodes: replicas short, duplicate and left-behind endpoint addresses,
subnets that overlap host routes, overlay namespaces and vxlan, published ports held by another process,
docker_gwbridge.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from swarmscope.correlate import lifecycle
from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import ip_key, strip_prefix
from swarmscope.model import NsKind, Severity


@check(
    "service.replicas-short",
    Severity.WARNING,
    "fewer tasks running than the service asks for",
    "Some replicas are not running: `docker service ps --no-trunc SERVICE` shows why (the error is in the "
    "evidence). Until they run, the service's VIP and published ports balance over fewer backends.",
)
def check_replicas(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    if cl.api_source is None:
        return
    src = next((n for n in cl.nodes if n.name == cl.api_source), None)
    now = src.now if src else None
    for s in cl.services:
        if s.mode != "replicated" or not s.replicas or s.update_state in lifecycle.UPDATING_STATES:
            continue  # an update replaces tasks on purpose: one fewer while it does is not a fault
        running = cl.running_tasks(s)
        coming = [
            t
            for t in cl.service_tasks(s)
            if t.desired_state == "running" and t.state in lifecycle.STARTING_STATES and lifecycle.recent(t, now)
        ]
        if len(running) + len(coming) >= s.replicas:
            continue
        others = [t for t in cl.service_tasks(s) if t not in running]
        others.sort(key=lambda t: (t.desired_state != "running", t.slot or 0))
        ev = [
            f"{cl.task_name(t)} {t.id[:12]} on {cl.node_name(t.node_id)}: {t.state} (desired {t.desired_state})"
            + (f": {t.error}" if t.error else "")
            for t in others[:6]
        ]
        yield Hit(
            sorted({cl.node_name(t.node_id) for t in others if t.node_id}),
            s.name,
            detail=f"{len(running)} of {s.replicas} running",
            evidence=ev,
        )


# --------------------------------------------------------------------------
# networks and the host


@check(
    "net.duplicate-ip",
    Severity.ERROR,
    "two endpoints have the same address on a network",
    "Traffic for one of them reaches the other. Usually IPAM state left by a node that went away: remove the "
    "stale task or container, or recreate the network.",
)
def check_duplicate_ip(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    owners: dict[tuple[str, str], set[str]] = {}
    for t in cl.tasks:
        if t.state != "running":
            continue
        for a in t.attachments:
            for ip in (strip_prefix(x) for x in a.addresses):
                if ip:
                    owners.setdefault((a.network_id, ip), set()).add(f"task {cl.task_name(t)}")
    for s in cl.services:
        for v in s.vips:
            ip = strip_prefix(v.address)
            if ip:
                owners.setdefault((v.network_id, ip), set()).add(f"VIP of {s.name}")
    for n in cl.nodes:
        for net in n.snap.docker.networks:
            for c in net.containers:
                ip = strip_prefix(c.ipv4)
                if ip and (c.key == "ingress-sbox" or c.key.startswith("lb-") or c.key.endswith("-endpoint")):
                    owners.setdefault((net.id, ip), set()).add(f"{c.key} on {n.name}")
    for (nid, ip), who in sorted(owners.items()):
        if len(who) > 1:
            yield Hit(
                [],
                network=cl.network_name(nid),
                detail=f"{ip} on {cl.network_name(nid)}: {', '.join(sorted(who))}",
                evidence=sorted(who),
            )


@check(
    "net.lb-endpoint-left-behind",
    Severity.WARNING,
    "a load-balancer endpoint of a node that left the swarm is still on a network",
    "The network's service discovery keeps the load-balancer endpoint (and its address) of a node that is no "
    "longer in `docker node ls`: the address stays taken and can collide when it is reused. Remove the node "
    "properly (`docker node rm`), or recreate the network; restarting dockerd on the managers resyncs gossip.",
)
def check_lb_endpoint_left_behind(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    src = next((n for n in cl.nodes if n.name == cl.api_source), None)
    known = {sn.address for sn in (src.snap.docker.nodes if src else []) if sn.address}
    if not known:
        return
    seen = set()
    for n in cl.nodes:
        for net in n.snap.docker.networks:
            eng = net.services.get("")  # the engine's own endpoints: ingress-endpoint, <network>-endpoint
            for ep in eng.tasks if eng and net.verbose else []:
                if ep.host_ip and ep.host_ip not in known and (net.id, ep.endpoint_ip) not in seen:
                    seen.add((net.id, ep.endpoint_ip))
                    yield Hit(
                        [n.name],
                        network=net.name,
                        detail=f"{ep.name} {ep.endpoint_ip} on {net.name}, host {ep.host_ip}",
                        evidence=[
                            f"docker network inspect -v {net.name} on {n.name}: {ep.name} {ep.endpoint_ip} "
                            f"(Host IP {ep.host_ip})",
                            f"swarm node addresses: {', '.join(sorted(known, key=ip_key))}",
                        ],
                    )


@check(
    "net.subnet-overlap",
    Severity.ERROR,
    "an overlay or ingress subnet overlaps a host route",
    "Packets for the overlapping range go to the wrong place. Recreate the overlay network with a "
    "non-overlapping --subnet (the ingress network: `docker network rm ingress` and create it again with --ingress).",
)
def check_subnet_overlap(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        routes = []
        for r in n.snap.host.routes:
            try:
                net = ipaddress.ip_network(r, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                routes.append(net)
        for o in ctx.cluster.networks.values():
            if o.driver != "overlay":
                continue
            for s in o.subnets:
                try:
                    sn = ipaddress.ip_network(s, strict=False)
                except ValueError:
                    continue
                hits = [r for r in routes if r.version == sn.version and r.overlaps(sn)]
                if hits:
                    yield Hit(
                        [n.name],
                        network=o.name,
                        detail=f"{o.name} {s} overlaps host route {', '.join(map(str, hits))}",
                        evidence=[f"host route {r}" for r in hits],
                    )


@check(
    "overlay.namespace-missing",
    Severity.ERROR,
    "overlay namespace missing on a node that runs tasks of the network",
    "The node cannot carry VXLAN traffic for the network: restart dockerd on the node; "
    "check dockerd's log for overlay errors.",
)
def check_overlay_missing(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    for n in cl.nodes:
        nets = {
            a.network_id for t in cl.tasks if t.node_id == n.node_id and t.state == "running" for a in t.attachments
        }
        for nid in sorted(nets):
            net = cl.networks.get(nid)
            # only a snapshot that listed its netns directory can say a namespace is absent
            if net is None or net.driver != "overlay" or not n.snap.netns_dir:
                continue
            if n.overlay_ns(nid) is None:
                have = [ns.name for ns in n.snap.namespaces if ns.kind == NsKind.OVERLAY] or ["none"]
                yield Hit(
                    [n.name],
                    network=net.name,
                    detail=f"no 1-{nid[:10]} namespace for {net.name}",
                    evidence=[f"overlay namespaces on {n.name}: {', '.join(have)}"],
                )


@check(
    "overlay.vxlan-down",
    Severity.ERROR,
    "the overlay's vxlan interface is missing or down",
    "Without vxlan0 the network's traffic cannot leave the node: restart dockerd; check that UDP 4789 is open "
    "between nodes and that the vxlan module is loaded.",
)
def check_vxlan(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        for ns in n.snap.namespaces:
            if ns.kind != NsKind.OVERLAY or not ns.interfaces:
                continue
            # kind comes from rtnetlink; text captures (`ip addr`) only give the name
            vx = [i for i in ns.interfaces if i.kind == "vxlan" or (i.kind is None and i.name.startswith("vxlan"))]
            if not vx:
                yield Hit([n.name], network=ns.network_name, detail=f"{ns.name}: no vxlan interface")
            elif not any(i.admin_up and i.state in ("up", "unknown") for i in vx):
                yield Hit(
                    [n.name],
                    network=ns.network_name,
                    detail=f"{ns.name}: {vx[0].name} is {vx[0].state}",
                    evidence=[
                        f"{ns.name}: {i.name} state {i.state} admin {'up' if i.admin_up else 'down'}" for i in vx
                    ],
                )


ENGINE_PROCS = {"dockerd", "docker-proxy"}


@check(
    "host.port-conflict",
    Severity.ERROR,
    "a published port is held by another process on the host",
    "Another program listens on the port, so the engine cannot reserve it (host mode: the task cannot start). "
    "Stop that program or publish the service on another port.",
)
def check_port_conflict(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        published = {
            (p.protocol, p.published_port): s.name for s in ctx.cluster.services for p in s.ports if p.published_port
        }
        for li in n.snap.host.listeners:
            svc = published.get((li.protocol, li.port))
            if svc and li.process and li.process not in ENGINE_PROCS:
                yield Hit(
                    [n.name],
                    svc,
                    detail=f"{li.protocol}/{li.port} held by {li.process} (pid {li.pid})",
                    evidence=[f"{li.protocol} {li.address}:{li.port} pid {li.pid} {li.process}"],
                )


@check(
    "host.gwbridge-missing",
    Severity.ERROR,
    "docker_gwbridge is missing",
    "Ingress traffic and the tasks' way out go through docker_gwbridge: restart dockerd to re-create it.",
)
def check_gwbridge(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        gw = n.snap.host.gwbridge
        if gw is not None and not gw.present and (n.ingress_sbox is not None or n.snap.docker.containers):
            yield Hit(
                [n.name],
                detail="no docker_gwbridge interface in the host namespace",
                evidence=[f"host interfaces: {', '.join(i.name for i in n.snap.host.interfaces) or 'not read'}"],
            )
