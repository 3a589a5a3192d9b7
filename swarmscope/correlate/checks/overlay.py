"""The overlay data plane on each node (the facts of swarmscope.facts.overlay, judged against the swarm's tasks):
a remote task Docker did not program (or programmed toward the wrong VTEP), entries left for endpoints that
are gone, an overlay MTU the underlay cannot carry, and a VXLAN source address that is not the node's own.

What Docker programs (libnetwork/drivers/overlay/peerdb.go ``peerAddOp``): for every endpoint of the network
on another node, in the network's namespace, a permanent neighbour entry ``IP -> MAC`` and a permanent FDB
entry ``MAC -> dst VTEP`` on the vxlan device, the VTEP being the other node's data-path address (its
endpoints' ``Host IP`` in ``docker network inspect -v``). It programs them from the network's gossip as the
endpoints come and go, so a task in its first or last seconds (correlate/lifecycle.py) is not judged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from swarmscope.correlate import lifecycle
from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, strip_prefix
from swarmscope.facts.overlay import VXLAN_OVERHEAD_V4, OverlayNet
from swarmscope.model import Severity, Task


def data_path_address(n: NodeCtx) -> tuple[str | None, str]:
    """(the node's data-path address -- the VTEP its peers send to --, where it comes from). The ``Host IP``
    of the node's own endpoints in its verbose network inspects is what the overlay driver advertises
    (``d.advertiseAddress``, the --data-path-addr when one is set); without one, the swarm's NodeAddr."""
    def make() -> tuple[str | None, str]:
        for net in n.snap.docker.networks:
            if not net.verbose:
                continue
            # the node's own endpoints, by name and address (every node's ingress endpoint has the same name)
            local = {(c.name, strip_prefix(c.ipv4)) for c in net.containers if c.name}
            for svc in net.services.values():
                for ep in svc.tasks:
                    if (ep.name, ep.endpoint_ip) in local and ep.host_ip:
                        return ep.host_ip, f"Host IP of {ep.name} in `docker network inspect -v {net.name}` on {n.name}"
        if n.snap.node.node_addr:
            return n.snap.node.node_addr, f"Swarm.NodeAddr of {n.name} (docker info)"
        return None, ""

    return n.memo("data_path_address", make)


def _host_has(n: NodeCtx, addr: str) -> bool:
    return any(a.address == addr for i in n.snap.host.interfaces for a in i.addresses)


def _endpoint_vteps(cl: Cluster, network_id: str) -> dict[str, set[str]]:
    """Endpoint address -> the Host IPs the nodes' verbose inspects give it on the network (gossip's VTEP)."""
    def make() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for m in cl.nodes:
            net = m.networks.get(network_id)
            if net is None or not net.verbose:
                continue
            for svc in net.services.values():
                for ep in svc.tasks:
                    if ep.endpoint_ip and ep.host_ip:
                        out.setdefault(ep.endpoint_ip, set()).add(ep.host_ip)
        return out

    return cl.memo(("overlay.endpoint_vteps", network_id), make)


def _known_endpoints(cl: Cluster, network_id: str) -> set[str]:
    """Addresses of every endpoint on the network that a snapshot shows: each node's own endpoints in its own
    inspect (tasks, the engine's lb-/ingress endpoints, standalone containers on an attachable network) and every
    endpoint a verbose inspect lists (services and the engine's own, under no service)."""
    def make() -> set[str]:
        out: set[str] = set()
        for m in cl.nodes:
            net = m.networks.get(network_id)
            if net is None:
                continue
            out.update(ip for ip in (strip_prefix(c.ipv4) for c in net.containers) if ip)
            for svc in net.services.values():
                out.update(ep.endpoint_ip for ep in svc.tasks if ep.endpoint_ip)
        return out

    return cl.memo(("overlay.known_endpoints", network_id), make)


def _node_down(cl: Cluster, node_id: str) -> bool:
    """The swarm says the node is not ready (down, unknown, disconnected): its peers leave the network's gossip
    and the other nodes remove its entries, while the manager may still list its tasks as running."""
    def make() -> set[str]:
        return {sn.id for m in cl.nodes for sn in m.snap.docker.nodes if sn.state not in (None, "ready")}

    return node_id in cl.memo("overlay.nodes_down", make)


def _settled_remote(cl: Cluster, n: NodeCtx, t: Task) -> bool:
    """A task on another node that runs, and has run long enough that every node must have programmed it."""
    if not t.node_id or t.node_id == n.node_id or t.id in cl.uncertain or _node_down(cl, t.node_id):
        return False
    if t.state != "running" or t.desired_state != "running" or lifecycle.in_transition(t, n.now):
        return False
    if t.state_since is None:  # when it started is not known (a worker's view): it may have started a moment ago
        return False
    s = next((s for s in cl.services if s.id == t.service_id), None)
    return s is None or not lifecycle.updating(s)


def _remote_tasks(ctx: Ctx, n: NodeCtx, ov: OverlayNet) -> Iterator[tuple[Task, str, str]]:
    """(task, its address, network id) for every settled running task on another node on ``ov``'s network."""
    cl = ctx.cluster
    nid = _full_id(cl, ov)
    if nid is None:
        return
    for t in cl.tasks:
        if not _settled_remote(cl, n, t):
            continue
        for a in t.attachments:
            if a.network_id != nid:
                continue
            for ip in (strip_prefix(x) for x in a.addresses):
                if ip:
                    yield t, ip, nid


def _service(cl: Cluster, t: Task) -> str:
    return t.service_name or cl.service_name(t.service_id) or t.service_id[:12]


def _full_id(cl: Cluster, ov: OverlayNet) -> str | None:
    if ov.network_id and ov.network_id in cl.networks:
        return ov.network_id
    return None


def _judged(ov: OverlayNet) -> bool:
    """Its FDB and neighbours were read and it has a vxlan device that is up (a down one is vxlan-down's)."""
    return ov.read and any(d.up for d in ov.vxlan)


def _vteps_of(cl: Cluster, node_id: str | None, address: str, network_id: str) -> set[str]:
    """The VTEPs the endpoint ``address`` of a task on ``node_id`` may rightly be at: the Host IP gossip gives
    it, and the data-path address of the node it runs on (where that node's snapshot is here)."""
    out = set(_endpoint_vteps(cl, network_id).get(address, ()))
    m = cl.node_by_id(node_id)
    if m is not None:
        addr, _ = data_path_address(m)
        if addr:
            out.add(addr)
    return out


@check(
    "overlay.peer-missing",
    Severity.ERROR,
    "a task on another node is not programmed in this node's overlay (no FDB or neighbour entry)",
    "Docker programs, for each endpoint on another node, a permanent neighbour entry (IP -> MAC) and a permanent "
    "FDB entry (MAC -> that node's VTEP) on the network's vxlan device; without them this node cannot reach the "
    "task over the overlay (its VIP and DNS answers lead nowhere). `docker service update --force SERVICE` "
    "re-announces the task; if entries keep going missing, restart dockerd on this node (it re-programs every "
    "peer from the network's gossip) and check that TCP/UDP 7946 is open between the nodes.",
)
def check_peer_missing(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    for n, ov, t, ip, nid in _remote_peers(ctx):
        p = ov.peer(ip)
        if p is not None and p.complete:
            continue
        what = ("no neighbour entry" if p is None else
                "no FDB entry with a VTEP for its MAC" if p.vtep is None else "entries not permanent")
        where = cl.node_name(t.node_id)
        yield Hit(
            [n.name], _service(cl, t), cl.network_name(nid),
            f"{cl.network_name(nid)}: {cl.task_name(t)} {ip} on {where}: {what} in {ov.ns}",
            [f"task {cl.task_name(t)} {t.id[:12]} running on {where} since {t.state_since}, {ip} on "
             f"{cl.network_name(nid)}",
             *(p.evidence if p is not None else
               (f"{ov.ns}: no neighbour entry for {ip} on {', '.join(d.name for d in ov.vxlan)} "
                f"({len([q for q in ov.peers if q.address])} neighbour entries read)",))],
        )


def _remote_peers(ctx: Ctx):
    """(node, its overlay network's facts, a settled task on another node, its address, network id) for every
    overlay network judged on every node: what the peer checks look up in that node's FDB and neighbours."""
    for n in ctx.cluster.nodes:
        if not n.node_id:
            continue
        for ov in n.facts().overlay.networks:
            if not _judged(ov):
                continue
            for t, ip, nid in _remote_tasks(ctx, n, ov):
                yield n, ov, t, ip, nid


@check(
    "overlay.peer-wrong-vtep",
    Severity.ERROR,
    "a remote task's FDB entry points at the wrong node (VTEP)",
    "The overlay sends the task's frames to a VTEP that is not the data-path address of the node it runs on: "
    "they reach the wrong node and are dropped. An entry left from an earlier task that had the address, or "
    "gossip out of step: `docker service update --force SERVICE`, or restart dockerd on this node to re-program "
    "its peers.",
)
def check_peer_wrong_vtep(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    for n, ov, t, ip, nid in _remote_peers(ctx):
        p = ov.peer(ip)
        if p is None or not p.complete or p.vtep is None:
            continue
        want = _vteps_of(cl, t.node_id, ip, nid)
        if want and p.vtep not in want:
            yield Hit(
                [n.name], _service(cl, t), cl.network_name(nid),
                f"{cl.network_name(nid)}: {cl.task_name(t)} {ip} on {cl.node_name(t.node_id)} is sent to "
                f"{p.vtep}, not {', '.join(sorted(want, key=ip_key))}",
                [*p.evidence, f"{cl.task_name(t)} runs on {cl.node_name(t.node_id)}, VTEP "
                              f"{', '.join(sorted(want, key=ip_key))}"],
            )


@check(
    "overlay.peer-stale",
    Severity.WARNING,
    "an overlay FDB/neighbour entry is left for an endpoint that no longer exists",
    "A permanent entry for an address no task or endpoint on the network holds: Docker did not remove "
    "it when the endpoint went. Harmless until the address is reused by a task on another node, which this node "
    "would then send to the old VTEP. Restart dockerd on this node to re-program the network's peers.",
)
def check_peer_stale(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    addr_node = {data_path_address(m)[0]: m for m in cl.nodes if data_path_address(m)[0] and m.snap.docker.available}
    for n in cl.nodes:
        if not n.node_id:
            continue
        for ov in n.facts().overlay.networks:
            nid = _full_id(cl, ov)
            if nid is None or not _judged(ov) or not cl.knows_all_tasks(nid):
                continue
            known = _known_endpoints(cl, nid)
            for p in ov.peers:
                if p.address is None or not p.complete or p.vtep is None or p.address in known:
                    continue
                # only where the node the entry sends to is judged here too: its own endpoints are then known
                owner = addr_node.get(p.vtep)
                if owner is None or owner.node_id is None or not owner.networks.get(nid):
                    continue
                holders = cl.task_by_address(nid, p.address)
                if any(t.state == "running" or lifecycle.in_transition(t, n.now) or t.state_since is None
                       for t in holders):
                    continue
                yield Hit(
                    [n.name], network=cl.network_name(nid),
                    detail=f"{cl.network_name(nid)}: {p.address} -> {p.vtep} ({owner.name}) in {ov.ns}: no endpoint "
                           "has the address",
                    evidence=[*p.evidence,
                              f"no running task and no endpoint in the inspects holds {p.address} on "
                              f"{cl.network_name(nid)}"
                              + (f" (last: {cl.task_name(holders[0])} {holders[0].state} since "
                                 f"{holders[0].state_since})" if holders else "")],
                )


@check(
    "overlay.mtu-too-large",
    Severity.WARNING,
    "the overlay MTU does not fit the underlay MTU toward a peer (VXLAN adds 50 bytes)",
    "Each overlay frame leaves the node 50 bytes larger (outer IPv4, UDP, VXLAN and the inner Ethernet header). "
    "With the overlay's MTU plus 50 above the underlay interface's MTU, full-size packets between tasks on "
    "different nodes are fragmented or dropped: small requests work, large transfers hang. Recreate the network "
    "with `--opt com.docker.network.driver.mtu=<underlay MTU - 50>`, or raise the underlay MTU.",
)
def check_mtu(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        of = n.facts().overlay
        for ov in of.networks:
            mtu = ov.mtu
            if not mtu or not ov.read:
                continue
            short = []
            for vtep in sorted(ov.vteps, key=ip_key):
                r = of.route(vtep)
                if r is not None and not r.error and r.mtu and mtu + VXLAN_OVERHEAD_V4 > r.mtu:
                    if ipaddress.ip_address(vtep).version == 4:
                        short.append(r)
            if short:
                name = ov.network_name or ov.ns
                yield Hit(
                    [n.name], network=ov.network_name,
                    detail=f"{name}: overlay MTU {mtu} + {VXLAN_OVERHEAD_V4} > underlay MTU "
                           f"{min(r.mtu or 0 for r in short)} toward {', '.join(r.vtep for r in short)}",
                    evidence=[*ov.mtu_evidence, *(r.evidence for r in short)],
                )


@check(
    "overlay.vxlan-source-mismatch",
    Severity.WARNING,
    "VXLAN packets to a peer leave with a source address that is not the node's data-path address",
    "The vxlan devices carry no local address (Docker sets none), so the kernel picks the source by route; here "
    "it picks another address than the one the node advertises to its peers. Firewalls that let UDP 4789 in "
    "only from the swarm's nodes, and encrypted overlays (IPsec policies between the advertised addresses), "
    "then drop the traffic. Fix the route's `src` (or remove the extra address), or re-join the node with "
    "`--data-path-addr` set to the address its route uses.",
)
def check_vxlan_source(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        addr, why = data_path_address(n)
        # only where the node holds its advertised address: behind NAT it cannot be the source, by design
        if not addr or not _host_has(n, addr):
            continue
        of = n.facts().overlay
        if any(d.local for ov in of.networks for d in ov.vxlan):
            continue  # a vxlan device tied to a local address does not take the route's source
        vteps = {v for ov in of.networks for v in ov.vteps}
        wrong = [r for v in sorted(vteps, key=ip_key) if (r := of.route(v)) is not None and not r.error
                 and r.source and r.source != addr]
        if wrong:
            yield Hit(
                [n.name],
                detail=f"source {', '.join(sorted({r.source or '' for r in wrong}))} toward "
                       f"{', '.join(r.vtep for r in wrong)}, not {addr}",
                evidence=[*(r.evidence for r in wrong), f"data-path address {addr}: {why}"],
            )
