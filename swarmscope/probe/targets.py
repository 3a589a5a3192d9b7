"""What ``--probe`` may connect to, from where, and which hop each connection tests (pure).

From one node's snapshot:

- ``published``: each ingress-mode published port on this node's own address, from the host
  namespace (nat OUTPUT -> DNAT -> ingress_sbox -> IPVS -> a task: the ingress path end to end, as
  far as a connection from the node itself goes: it crosses OUTPUT, not PREROUTING and FORWARD);
  a host-mode port where a task of the service runs here; tests ``host.dnat`` (``host.bound``);
- ``localhost``: the same port on 127.0.0.1 (what route_localnet on docker_gwbridge governs);
  tests ``host.jump`` (the OUTPUT jump to DOCKER-INGRESS);
- ``vip``: each service VIP on an overlay network and each TCP target port, from a task sandbox on
  that network (the east-west path a client task takes), else the network's lb_ namespace; tests
  ``lb.ipvs``;
- ``task``: each running task's address on the network and the target port, directly, from the
  load-balancer namespace that would forward to it (ingress_sbox for the ingress network, lb_<net>
  for an overlay): is the task itself listening; tests ``ingress.backends`` / ``lb.backends``;
- ``vtep``: for each overlay network (the ingress network too) and each other node with a running task
  on it, ICMP echoes from the same load-balancer namespace to one of that node's tasks, across the
  VXLAN to that node's VTEP: a small one, then one as large as the source's interface toward the
  network allows (its MTU, Don't Fragment set): does the underlay carry the overlay's traffic, and
  its largest packets; tests ``overlay.vtep``. Task probes to tasks on other nodes name the VTEP they
  cross too, so the join can tell the underlay from the task.

Every address comes from the snapshot itself, and ``AllowList`` is built only from the addresses
the snapshot shows belong to the swarm (this node's and the other nodes' addresses, service VIPs,
task addresses, and 127.0.0.1 for the localhost probe); ``guard`` refuses anything else, and the
runner (run.py) asks it again before every connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmscope.model import Namespace, Network, NsKind, Service, Snapshot, Task

HOST = "host"  # the source of probes made from this process's own (the node's host) namespace
LOCALHOST = "127.0.0.1"

KINDS = ("published", "localhost", "vip", "task", "vtep")
#: the hop of the path map each kind of probe tests (correlate/probes.py joins them)
HOPS = {"published": "host.dnat", "published-host": "host.bound", "localhost": "host.jump", "vip": "lb.ipvs",
        "task-ingress": "ingress.backends", "task": "lb.backends", "vtep": "overlay.vtep"}
#: the protocol word of a vtep probe (ICMP echo: the only kind of probe that is not a TCP connection)
ICMP = "icmp"

UDP_REASON = ("not probed: {proto} has no handshake, so a datagram sent without the application's own "
              "protocol proves nothing (only TCP is probed)")


class ProbeRefused(ValueError):
    """A target the allow-list does not hold: never connected to."""


@dataclass(frozen=True)
class Target:
    """One connection to make: from ``source`` (a namespace file name, or "host") to address:port."""

    kind: str  # published | localhost | vip | task
    source: str
    source_path: str | None  # the namespace file; None for the host namespace (this process's own)
    address: str
    port: int
    hop: str
    node: str
    service: str
    protocol: str = "tcp"
    network: str | None = None
    published: int | None = None
    task: str | None = None
    skip: str | None = None  # why it is not probed (a UDP port, no namespace to probe from)
    vtep: str | None = None  # the other node's VTEP the probe crosses (vtep probes; task probes to another node)
    size: int | None = None  # vtep probes: the full-size packet to send (the source's MTU toward the network)


@dataclass
class AllowList:
    """The addresses the snapshot shows belong to the swarm; nothing else is ever probed."""

    addresses: set[str] = field(default_factory=set)
    namespaces: dict[str, str] = field(default_factory=dict)  # namespace name -> file path, from the snapshot

    def check(self, t: Target) -> None:
        """Raise ProbeRefused unless ``t`` is a TCP connection to a swarm address from a namespace of the snapshot."""
        try:
            ip = ipaddress.ip_address(t.address)
        except ValueError:
            raise ProbeRefused(f"{t.address!r} is not an address") from None
        if ip.version != 4:
            raise ProbeRefused(f"{t.address}: only IPv4 (the routing mesh is IPv4)")
        if t.address == LOCALHOST:
            if t.kind != "localhost" or t.source != HOST:
                raise ProbeRefused(f"{t.address}: 127.0.0.1 is probed only from the host namespace, "
                                   "for a published port")
        elif t.address not in self.addresses:
            raise ProbeRefused(f"{t.address} is not an address of the swarm in the snapshot (node, VIP or task)")
        if t.kind == "vtep":
            if t.protocol != ICMP or t.port != 0:
                raise ProbeRefused(f"{t.address}: a vtep probe is an ICMP echo, without a port")
            if t.source == HOST:
                raise ProbeRefused(f"{t.address}: a vtep probe is made from the network's own namespace")
        elif t.protocol != "tcp":
            raise ProbeRefused(f"{t.address}:{t.port}: only TCP is probed")
        elif not 0 < t.port < 65536:
            raise ProbeRefused(f"port {t.port} out of range")
        if t.source != HOST and self.namespaces.get(t.source) != t.source_path:
            raise ProbeRefused(f"namespace {t.source} ({t.source_path}) is not one of the snapshot's")


def guard(t: Target, allow: AllowList) -> Target:
    """``t`` when the allow-list permits it; ProbeRefused otherwise."""
    allow.check(t)
    return t


def _bare(addr: str | None) -> str | None:
    """An address without its prefix length; None for anything that is not an IPv4 address."""
    if not addr:
        return None
    a = addr.split("/", 1)[0]
    try:
        return a if ipaddress.ip_address(a).version == 4 else None
    except ValueError:
        return None


def allow_list(snap: Snapshot) -> AllowList:
    """The swarm's own addresses as this snapshot shows them: node addresses (this node's, the swarm's
    nodes, the networks' peers), service VIPs, task addresses (tasks and the networks' endpoints)."""
    out: set[str] = set()
    d = snap.docker
    cands: list[str | None] = [snap.node.node_addr]
    cands += [n.address for n in d.nodes]
    for svc in d.services:
        cands += [v.address for v in svc.vips]
    for t in d.tasks:
        for a in t.attachments:
            cands += list(a.addresses)
    for net in d.networks:
        if not (net.ingress or net.driver == "overlay"):
            continue  # the swarm's own networks only: never a local bridge's containers
        cands += [p.ip for p in net.peers]
        for ns in net.services.values():
            cands.append(ns.vip)
            cands += [e.endpoint_ip for e in ns.tasks]
    for c in cands:
        bare = _bare(c)
        if bare is not None and not ipaddress.ip_address(bare).is_loopback \
                and not ipaddress.ip_address(bare).is_unspecified:
            out.add(bare)
    return AllowList(out, {ns.name: ns.path for ns in snap.namespaces if ns.path})


def own_address(snap: Snapshot) -> str | None:
    """This node's address in the swarm: the engine's NodeAddr, else the node list's, else the network peer
    that is this node (by name, or by an address on one of the host's interfaces)."""
    a = _bare(snap.node.node_addr)
    if a:
        return a
    for n in snap.docker.nodes:
        if n.id == snap.node.node_id and _bare(n.address):
            return _bare(n.address)
    mine = {a.address for i in snap.host.interfaces for a in i.addresses}
    for net in snap.docker.networks:
        for p in net.peers:
            if (p.name == snap.node.hostname or p.ip in mine) and _bare(p.ip):
                return _bare(p.ip)
    return None


def _running(snap: Snapshot, svc: Service) -> list[Task]:
    return [t for t in snap.docker.tasks if t.service_id == svc.id and t.state == "running"
            and t.desired_state in (None, "running")]


def _task_name(svc: Service, t: Task) -> str:
    return f"{svc.name}.{t.slot}" if t.slot is not None else f"{svc.name}.{(t.node_id or t.id)[:12]}"


def _task_address(t: Task, network_id: str) -> str | None:
    for a in t.attachments:
        if a.network_id == network_id:
            for addr in a.addresses:
                if _bare(addr):
                    return _bare(addr)
    return None


def _mtu_toward(ns: Namespace | None, subnets: list[str]) -> int | None:
    """The MTU of ``ns``'s interface on the network (the one with an address in one of ``subnets``)."""
    nets = []
    for c in subnets:
        try:
            nets.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            continue
    for i in ns.interfaces if ns is not None else ():
        for a in i.addresses:
            if a.family == 4 and i.mtu and any(ipaddress.ip_address(a.address) in n for n in nets if n.version == 4):
                return i.mtu
    return None


def _chosen(snap: Snapshot, services: frozenset[str] | None) -> list[Service]:
    """The services probed, by name: every one, or (``services``) those of these names."""
    return sorted((s for s in snap.docker.services if services is None or s.name in services), key=lambda s: s.name)


def _echo_targets(snap: Snapshot, node: str, nets: dict[str, Network],
                  source_on: Callable[[Network], tuple[str, str] | None],
                  probed: set[tuple[str | None, str]], chosen: list[Service]) -> list[Target]:
    """The vtep probes: for each overlay network with a source namespace here, and each other node with a
    running task on it (of the services ``chosen``), one task of that node (one a TCP task probe goes to,
    where there is one)."""
    me = snap.node.node_id
    vteps = {n.id: _bare(n.address) for n in snap.docker.nodes}
    names = {n.id: n.hostname for n in snap.docker.nodes}
    by_name = {ns.name: ns for ns in snap.namespaces}
    remote: dict[str, dict[str, tuple[Service, Task, str]]] = {}  # network id -> node id -> a task there
    for svc in chosen:
        for t in _running(snap, svc):
            if not me or not t.node_id or t.node_id == me:
                continue
            for att in t.attachments:
                net, a = nets.get(att.network_id), _task_address(t, att.network_id)
                if net is None or a is None or not (net.ingress or net.driver == "overlay"):
                    continue
                per = remote.setdefault(net.id, {})
                old = per.get(t.node_id)
                if old is None or ((net.name, a) in probed and (net.name, old[2]) not in probed):
                    per[t.node_id] = (svc, t, a)
    out: list[Target] = []
    for network_id in sorted(remote, key=lambda i: nets[i].name):
        net = nets[network_id]
        src = source_on(net)
        if src is None:
            continue
        size = _mtu_toward(by_name.get(src[0]), net.subnets)
        for node_id, (svc, t, a) in sorted(remote[network_id].items(), key=lambda kv: names.get(kv[0], kv[0])):
            vtep = vteps.get(node_id)
            why = None
            if vtep is None:
                why = "not probed: the other node's address (its VTEP) is not in the snapshot"
            elif size is None:
                why = f"not probed: the MTU of {src[0]} toward {net.name} is not in the snapshot"
            out.append(Target("vtep", src[0], src[1], a, 0, HOPS["vtep"], node, svc.name, ICMP, network=net.name,
                              task=_task_name(svc, t), skip=why, vtep=vtep, size=size))
    return out


def plan(snap: Snapshot, services: frozenset[str] | None = None) -> list[Target]:
    """Every probe this node's snapshot calls for, published-port probes first; each one the
    allow-list permits (``skip`` says why one is not made). ``services``: only the probes of the services
    of these names (a vtep probe goes to a task of theirs, across the VXLAN their own paths cross)."""
    node = snap.node.hostname
    nets = {n.id: n for n in snap.docker.networks}
    by_name = {ns.name: ns for ns in snap.namespaces if not ns.stale and not ns.vanished}
    sbox = by_name.get("ingress_sbox")
    lbs = {ns.network_id: ns for ns in by_name.values() if ns.kind == NsKind.LB and ns.network_id}
    sandboxes: dict[str, list[tuple[str, str]]] = {}  # network id -> (namespace name, path) of task sandboxes here
    for c in snap.docker.containers:
        name = (c.sandbox_key or "").rsplit("/", 1)[-1]
        if not c.task_id or name not in by_name:
            continue
        for cn in c.networks:
            if cn.network_id:
                sandboxes.setdefault(cn.network_id, []).append((name, by_name[name].path))
    addr = own_address(snap)
    me = snap.node.node_id
    vteps = {n.id: _bare(n.address) for n in snap.docker.nodes}
    ends: list[Target] = []
    vips: list[Target] = []
    tasks: list[Target] = []

    def vtep_of(t: Task) -> str | None:
        return vteps.get(t.node_id or "") if t.node_id and me and t.node_id != me else None

    def lb_of(network_id: str) -> tuple[str, str] | None:
        for nid, ns in lbs.items():
            if network_id.startswith(nid) or nid.startswith(network_id):
                return ns.name, ns.path
        return None

    chosen = _chosen(snap, services)
    for svc in chosen:
        running = _running(snap, svc)
        for p in svc.ports:
            if p.published_port is None:
                continue
            skip = UDP_REASON.format(proto=p.protocol.upper()) if p.protocol != "tcp" else None
            if p.publish_mode == "host":
                if not any(t.node_id == snap.node.node_id for t in running):
                    continue  # served only where a task runs
                if addr:
                    ends.append(Target("published", HOST, None, addr, p.published_port, HOPS["published-host"], node,
                                       svc.name, p.protocol, published=p.published_port, skip=skip))
                continue
            if addr:
                ends.append(Target("published", HOST, None, addr, p.published_port, HOPS["published"], node, svc.name,
                                   p.protocol, published=p.published_port, skip=skip))
            else:
                ends.append(Target("published", HOST, None, "", p.published_port, HOPS["published"], node, svc.name,
                                   p.protocol, published=p.published_port,
                                   skip="not probed: this node's address is not in the snapshot"))
            ends.append(Target("localhost", HOST, None, LOCALHOST, p.published_port, HOPS["localhost"], node, svc.name,
                               p.protocol, published=p.published_port, skip=skip))
            ingress = next((n for n in nets.values() if n.ingress), None)
            if ingress is None:
                continue
            for t in running:
                a = _task_address(t, ingress.id)
                if a is None:
                    continue
                why = skip or (None if sbox is not None else "not probed: no ingress_sbox namespace on this node")
                tasks.append(Target("task", sbox.name if sbox else "ingress_sbox", sbox.path if sbox else None, a,
                                    p.target_port, HOPS["task-ingress"], node, svc.name, p.protocol,
                                    network=ingress.name, published=p.published_port, task=_task_name(svc, t),
                                    skip=why, vtep=vtep_of(t)))
        if svc.endpoint_mode != "vip":
            continue
        for v in svc.vips:
            net = nets.get(v.network_id)
            vip = _bare(v.address)
            if net is None or net.ingress or vip is None:
                continue
            here = sandboxes.get(net.id, [])
            lb = lb_of(net.id)
            client = here[0] if here else lb
            ports = [(p.protocol, p.target_port) for p in svc.ports]
            if not ports:
                if client is not None:
                    vips.append(Target("vip", client[0], client[1], vip, 0, HOPS["vip"], node, svc.name,
                                       network=net.name, skip="not probed: the service publishes no port, so the "
                                       "port its tasks listen on is not known"))
                continue
            for proto, port in sorted(set(ports)):
                skip = UDP_REASON.format(proto=proto.upper()) if proto != "tcp" else None
                if client is None:
                    continue  # the network is not on this node
                vips.append(Target("vip", client[0], client[1], vip, port, HOPS["vip"], node, svc.name, proto,
                                   network=net.name, skip=skip))
                fwd = lb or (here[0] if here else None)
                for t in running:
                    a = _task_address(t, net.id)
                    if a is None or fwd is None:
                        continue
                    tasks.append(Target("task", fwd[0], fwd[1], a, port, HOPS["task"], node, svc.name, proto,
                                        network=net.name, task=_task_name(svc, t), skip=skip, vtep=vtep_of(t)))
    probed = {(t.network, t.address) for t in tasks if t.skip is None}

    def source_on(net: Network) -> tuple[str, str] | None:  # where the network's task probes come from
        if net.ingress:
            return (sbox.name, sbox.path) if sbox is not None else None
        here = sandboxes.get(net.id)
        return lb_of(net.id) or (here[0] if here else None)

    echoes = _echo_targets(snap, node, nets, source_on, probed, chosen)
    seen: set[tuple] = set()
    out: list[Target] = []
    for tg in ends + vips + tasks + echoes:
        key = (tg.kind, tg.source, tg.address, tg.port, tg.protocol, tg.hop, tg.service, tg.network, tg.published)
        if key not in seen:
            seen.add(key)
            out.append(tg)
    return out
