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
    subnets = []  # every overlay's subnets, parsed once (not once per node)
    for o in ctx.cluster.networks.values():
        if o.driver != "overlay":
            continue
        for s in o.subnets:
            try:
                subnets.append((o, s, ipaddress.ip_network(s, strict=False)))
            except ValueError:
                continue
    for n in ctx.cluster.nodes:
        routes = []
        for r in n.snap.host.routes:
            try:
                net = ipaddress.ip_network(r, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                routes.append(net)
        for o, s, sn in subnets:
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


# --------------------------------------------------------------------------
# gossip and address space


def _self_listed(n, net) -> str | None:
    """The node's own address on network ``net`` as its gossip knows it: its swarm address (``docker info``
    Swarm.NodeAddr, what networkdb advertises) when its own verbose inspect of the network lists it among the
    Peers -- proof that the node is in the network's gossip and that peers are named by that address. None
    where either is not so (the node is then not judged, nor judged missing)."""
    addr = n.snap.node.node_addr
    if not addr or net is None or not net.verbose:
        return None
    return addr if any(p.ip == addr for p in net.peers) else None


def _settled_on(cl, n, network_id: str, now) -> list:
    """The node's running tasks attached to the network that have run for at least the settle window at
    ``now`` (lifecycle.SETTLE_SECONDS): the node joined the network's gossip before then."""
    out = []
    for t in cl.memo("running_on", lambda: _running_on(cl)).get((n.node_id, network_id), ()):
        a = lifecycle.age(t, now)
        if a is not None and a >= lifecycle.SETTLE_SECONDS:
            out.append(t)
    return out


def _running_on(cl) -> dict[tuple, list]:
    """The running tasks by (node id, network id attached), in task order (once per cluster: every node's
    view of every network asks)."""
    idx: dict[tuple, list] = {}
    for t in cl.tasks:
        if t.state != "running" or t.desired_state != "running":
            continue
        for nid in dict.fromkeys(a.network_id for a in t.attachments):
            idx.setdefault((t.node_id, nid), []).append(t)
    return idx


@check(
    "network.gossip-incomplete",
    Severity.ERROR,
    "a node's gossip view of an overlay network lacks a node that holds tasks of it",
    "`docker network inspect -v NETWORK` lists in Peers the nodes a node's networkdb knows in the network's "
    "gossip; a node that has run tasks of the network for longer than gossip needs to settle (45 s: memberlist's "
    "30 s full state exchange, plus time to apply it), and lists itself, is missing there. The node with the "
    "incomplete view has dropped that node's endpoints (service discovery, IPVS real servers, VXLAN forwarding "
    "entries) and sends it none of its own: traffic between their tasks fails. Check that TCP and UDP 7946 are "
    "open both ways between the nodes (gossip; 2377 and 4789 are not enough); they rejoin by themselves once it is, "
    "or restart dockerd on the node cut off.",
)
def check_gossip_incomplete(ctx: Ctx) -> Iterator[Hit]:
    """Judged only between nodes that are both in the data, both list themselves among the network's Peers
    (networkdb names peers by the advertised address, Swarm.NodeAddr), and both hold a task of the network
    that has run past the settle window at the viewing node's collection: Peers holds only nodes with the
    network created (tasks or its load balancer), and a task that has just started may not be known yet.
    One finding per network, naming every node whose view lacks another."""
    cl = ctx.cluster
    for nid, net in sorted(cl.networks.items()):
        if net.driver != "overlay":
            continue
        members = []
        for n in cl.nodes:
            addr = _self_listed(n, n.networks.get(nid))
            if addr:
                members.append((n, addr))
        if len(members) < 2:
            continue
        views = []
        for y, _ in members:
            view = y.networks[nid]
            if not _settled_on(cl, y, nid, y.now):
                continue
            have = {p.ip for p in view.peers}
            missing = []
            for x, addr in members:
                if x is y or addr in have:
                    continue
                tasks = _settled_on(cl, x, nid, y.now)
                if tasks:
                    missing.append((x, addr, tasks))
            if missing:
                views.append((y, view, missing))
        if not views:
            continue
        name = views[0][1].name
        ev = [
            f"docker network inspect -v {view.name} on {y.name} (collected {y.snap.collected_at}): Peers "
            + (", ".join(f"{p.ip} ({p.name})" for p in view.peers) or "none")
            for y, view, _ in views
        ]
        said = set()
        for _, view, missing in views:
            for x, addr, tasks in missing:
                if x.name not in said:
                    said.add(x.name)
                    ev.append(
                        f"{x.name} ({addr}) lists itself in {view.name}'s Peers and runs "
                        + ", ".join(f"{cl.task_name(t)} since {t.state_since}" for t in tasks[:3])
                        + (f" (+{len(tasks) - 3} more)" if len(tasks) > 3 else "")
                    )
        yield Hit(
            sorted(y.name for y, _, _ in views),
            network=name,
            detail=f"{name}: "
            + "; ".join(
                f"{y.name} lacks " + ", ".join(f"{x.name} ({addr})" for x, addr, _ in missing)
                for y, _, missing in views
            ),
            evidence=ev,
        )


#: a subnet this full (of its host addresses, less the gateway) is nearly full
SUBNET_WARN_USED = 0.90
#: what the swarm allocator says when a network has no address left for a task (libnetwork/cnmallocator)
NO_IP_ERROR = "could not find an available IP"


def _network_addresses(cl, net_id: str) -> dict[str, str]:
    """Every address the swarm holds on an overlay network, and what holds it: tasks that are not done (the
    allocator frees a task's address when it ends), the services' VIPs, and the load-balancer endpoints (one per
    node and network: ``lb-<net>`` / ingress-sbox, as every node's inspect and service discovery list them).
    Made for every network at once (``_addresses_by_network``), once per cluster."""
    return cl.memo("network_addresses", lambda: _addresses_by_network(cl)).get(net_id, {})


def _addresses_by_network(cl) -> dict[str, dict[str, str]]:
    """``_network_addresses`` of every network: the same three walks, each once, keeping for each network the
    order of what is found first (an address's first holder names it)."""
    by: dict[str, dict[str, str]] = {}
    for t in cl.tasks:
        if t.state not in ("running", *lifecycle.STARTING_STATES):
            continue
        for a in t.attachments:
            for ip in (strip_prefix(x) for x in a.addresses):
                if ip:
                    by.setdefault(a.network_id, {}).setdefault(ip, "task")
    for s in cl.services:
        for v in s.vips:
            ip = strip_prefix(v.address)
            if ip:
                by.setdefault(v.network_id, {}).setdefault(ip, "VIP")
    for n in cl.nodes:
        for net_id, net in n.networks.items():
            held = by.setdefault(net_id, {})
            for c in net.containers:
                ip = strip_prefix(c.ipv4)
                if ip:
                    lb = c.key == "ingress-sbox" or c.key.startswith("lb-") or (c.name or "").endswith("-endpoint")
                    held.setdefault(ip, "load balancer" if lb else "task")
            eng = net.services.get("")  # the engine's endpoints in service discovery: every node's load balancer
            for ep in eng.tasks if eng and net.verbose else []:
                if ep.endpoint_ip:
                    held.setdefault(strip_prefix(ep.endpoint_ip) or ep.endpoint_ip, "load balancer")
    return by


def _subnet_usage(cl) -> list[tuple]:
    """(network, subnet, addresses used by kind, usable, gateways, tasks waiting) for every IPv4 subnet of every
    overlay network: usable is the subnet's host addresses less the gateway. Once per cluster (two checks ask;
    neither changes it)."""
    return cl.memo("subnet_usage", lambda: _subnet_usage_of(cl))


def _subnet_usage_of(cl) -> list[tuple]:
    out = []
    # tasks waiting for an address, of any network (found once, not once per network)
    unplaced = [
        t
        for t in cl.tasks
        if t.desired_state == "running"
        and (NO_IP_ERROR in (t.error or "") or t.state in ("new", "pending"))
        and not t.attachments
    ]
    for nid, net in sorted(cl.networks.items()):
        if net.driver != "overlay":
            continue
        held = None
        for s in net.subnets:
            try:
                sn = ipaddress.ip_network(s, strict=False)
            except ValueError:
                continue
            if sn.version != 4 or sn.prefixlen > 30:
                continue
            if held is None:
                held = _network_addresses(cl, nid)
            gws = {g for g in (strip_prefix(x) for x in net.gateways) if g}
            used: dict[str, int] = {}
            for ip, what in held.items():
                try:
                    inside = ipaddress.ip_address(ip) in sn
                except ValueError:
                    continue
                if inside and ip not in gws:
                    used[what] = used.get(what, 0) + 1
            waiting = [t for t in unplaced if nid in _service_networks(cl, t.service_id)]
            out.append((net, sn, used, sn.num_addresses - 3, gws, waiting))  # less network, broadcast, gateway
    return out


def _subnet_hit(net, sn, used, usable, gws, waiting, full: bool) -> Hit:
    n_used = sum(used.values())
    parts = ", ".join(f"{k} {used[k]}" for k in ("task", "VIP", "load balancer") if used.get(k))
    ev = [
        f"{net.name} {sn}: {n_used} of {usable} addresses in use ({parts}); {max(usable - n_used, 0)} free; "
        f"gateway {', '.join(sorted(gws)) or '?'}"
    ]
    if full:
        ev += [
            f"task {t.id[:12]} of service {t.service_name or t.service_id[:12]}: {t.state} (desired "
            f"{t.desired_state})" + (f": {t.error}" if t.error else "")
            for t in waiting[:6]
        ]
    return Hit(
        [],
        network=net.name,
        detail=f"{net.name} {sn}: {n_used} of {usable} addresses used"
        + (" (full)" if full else f" ({100 * n_used // usable}%)")
        + (f"; {len(waiting)} task(s) of its services waiting without an address" if full and waiting else ""),
        evidence=ev,
    )


_SUBNET_HINT = (
    "Every task, every service VIP and one load balancer per node on the network take an address from its "
    "subnet (less network, broadcast and gateway). "
)
_SUBNET_FIX = (
    "Create a network with a larger --subnet and move services to it (`docker service update --network-add NEW "
    "--network-rm OLD SERVICE`); a network's subnet cannot be changed in place."
)


@check(
    "network.subnet-full",
    Severity.ERROR,
    "an overlay network's subnet has no address left",
    _SUBNET_HINT + "With none left, the manager cannot give a new task its address: the task stays in state new "
    "(the manager's log: 'could not find an available IP'; the evidence names the tasks waiting). " + _SUBNET_FIX,
)
def check_subnet_full(ctx: Ctx) -> Iterator[Hit]:
    for net, sn, used, usable, gws, waiting in _subnet_usage(ctx.cluster):
        if sum(used.values()) >= usable:
            yield _subnet_hit(net, sn, used, usable, gws, waiting, True)


@check(
    "network.subnet-nearly-full",
    Severity.WARNING,
    "an overlay network's subnet is nearly out of addresses",
    _SUBNET_HINT + "At 90% used the headroom is what a scale-up, an update that starts the new task before it "
    "stops the old one (--update-order start-first) or a node joining the network (one more load-balancer "
    "address) needs: Docker's default overlay subnet is a /24 (253 addresses), where 10% is 25. " + _SUBNET_FIX,
)
def check_subnet_nearly_full(ctx: Ctx) -> Iterator[Hit]:
    for net, sn, used, usable, gws, waiting in _subnet_usage(ctx.cluster):
        n = sum(used.values())
        if SUBNET_WARN_USED * usable <= n < usable:
            yield _subnet_hit(net, sn, used, usable, gws, waiting, False)


def _service_networks(cl, service_id: str) -> set[str]:
    s = next((s for s in cl.services if s.id == service_id), None)
    if s is None:
        return set()
    nets = set(s.networks)
    if any(p.publish_mode != "host" for p in s.ports if p.published_port) and cl.ingress is not None:
        nets.add(cl.ingress.id)
    return nets
