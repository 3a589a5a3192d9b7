"""One view of the swarm, joined from every node snapshot (pure).

Services, tasks and nodes come from a manager's snapshot where there is one;
without a manager they are rebuilt, as far as possible, from what workers know
(container labels and verbose network inspects). Everything node-local —
``LocalLBIndex`` (the firewall mark), namespaces, rules — stays per node.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime

from swarmscope.correlate import lifecycle
from swarmscope.correlate.lifecycle import parse_time
from swarmscope.facts import NodeFacts, facts_for
from swarmscope.model import (
    Namespace,
    Network,
    NetworkService,
    NsKind,
    PortSpec,
    Service,
    ServiceVip,
    Snapshot,
    Task,
    TaskAttachment,
)

# both are asked again and again for the same few thousand addresses while a swarm is judged (every
# real server, DNS answer and task of every node): pure, so each answer is kept (bounded, for the agent)


@functools.lru_cache(maxsize=1 << 16)
def strip_prefix(cidr: str | None) -> str | None:
    if not cidr:
        return None
    return cidr.split("/")[0]


@functools.lru_cache(maxsize=1 << 16)
@functools.lru_cache(maxsize=65536)
def ip_key(addr: str):
    """A sort key for addresses (cached: every node's paths sort the same real servers)."""
    try:
        return (0, int(ipaddress.ip_address(addr)))
    except ValueError:
        return (1, addr)


@dataclass
class NodeCtx:
    """One node's snapshot with lookups the checks need."""

    snap: Snapshot
    name: str
    node_id: str | None
    networks: dict[str, Network] = field(default_factory=dict)  # by id, this node's own inspect
    _by_name: dict | None = field(default=None, repr=False, compare=False)
    _by_container: dict | None = field(default=None, repr=False, compare=False)
    _dns: dict | None = field(default=None, repr=False, compare=False)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    #: shared by the nodes of a cluster (build_cluster): equal rules, one set of facts (facts.NodeFacts)
    shared: dict = field(default_factory=dict, repr=False, compare=False)

    # lookups are indexed once per node and memoised: judging a swarm asks them for every port,
    # VIP and real server, and must stay linear in the swarm's size

    def ns(self, name: str) -> Namespace | None:
        if self._by_name is None:
            self._by_name = {}
            for x in self.snap.namespaces:
                self._by_name.setdefault(x.name, x)
        return self._by_name.get(name)

    @property
    def ingress_sbox(self) -> Namespace | None:
        return self.ns("ingress_sbox")

    def _net_ns(self, kind: NsKind, network_id: str) -> Namespace | None:
        key = (kind, network_id)
        if key not in self._memo:
            self._memo[key] = self._first_net_ns(kind, network_id)
        return self._memo[key]

    def _first_net_ns(self, kind: NsKind, network_id: str) -> Namespace | None:
        """The first namespace of ``kind`` whose network id is ``network_id`` or a prefix of it, through an
        index of the node's namespaces by kind and network id (once per node, not a scan per network)."""
        idx = self._memo.get("net_ns_index")
        if idx is None:
            idx = self._memo["net_ns_index"] = {}
            for pos, x in enumerate(self.snap.namespaces):
                if x.network_id:
                    by_id, _ = idx.setdefault(x.kind, ({}, set()))
                    by_id.setdefault(x.network_id, (pos, x))
            for by_id, lengths in idx.values():
                lengths.update(len(i) for i in by_id)
        by_id, lengths = idx.get(kind, ({}, set()))
        hits = [by_id[network_id[:n]] for n in lengths if n <= len(network_id) and network_id[:n] in by_id]
        return min(hits, key=lambda h: h[0])[1] if hits else None

    def lb_ns(self, network_id: str) -> Namespace | None:
        return self._net_ns(NsKind.LB, network_id)

    def overlay_ns(self, network_id: str) -> Namespace | None:
        return self._net_ns(NsKind.OVERLAY, network_id)

    def container_ns(self, container_id: str | None) -> Namespace | None:
        if not container_id:
            return None
        if self._by_container is None:
            self._by_container = {}
            for x in self.snap.namespaces:
                if x.kind == NsKind.CONTAINER and x.container_id:
                    self._by_container.setdefault(x.container_id, x)
        return self._by_container.get(container_id)

    def dns_answer(self, network_id: str, query: str):
        if self._dns is None:
            self._dns = {}
            for a in self.snap.dns:
                self._dns.setdefault((a.network_id, a.query), a)
        return self._dns.get((network_id, query))

    def memo(self, key, make):
        """A value computed once per node (the ingress sandbox's gwbridge address, rule indexes, ...)."""
        try:
            return self._memo[key]  # most asks find it: one lookup
        except KeyError:
            v = self._memo[key] = make()
            return v

    def facts(self) -> NodeFacts:
        """The node's data-plane facts (swarmscope.facts), built once per node."""
        return self.memo("facts", self._facts)

    def _facts(self) -> NodeFacts:
        f = facts_for(self.snap)
        f.join(self.shared)  # nodes with the same rules judge them once (facts.shared_netfilter)
        return f

    def net_service(self, network_id: str, service: str) -> NetworkService | None:
        net = self.networks.get(network_id)
        if net is None:
            return None
        return net.services.get(service)

    def local_lb_index(self, network_id: str, service: str) -> int | None:
        s = self.net_service(network_id, service)
        return s.local_lb_index if s else None

    @property
    def now(self) -> datetime | None:
        """When this node was collected: the time its data plane is compared at."""
        return self.memo("now", lambda: parse_time(self.snap.collected_at))

    @property
    def ipvs_missing(self) -> bool:
        v = self.snap.node.ip_vs
        return v is not None and v.available is False


@dataclass
class Cluster:
    nodes: list[NodeCtx]
    services: list[Service]
    tasks: list[Task]
    networks: dict[str, Network]  # by id, merged (the first verbose one wins for globals)
    node_names: dict[str, str]  # node id -> hostname
    api_source: str | None  # hostname of the manager snapshot used, None if rebuilt
    #: without a manager: the networks whose every task is known (a node's verbose inspect); None: all
    tasks_known_on: set[str] | None = None

    #: without a manager: tasks known only from a network's service discovery (another node's, or an
    #: entry being drained: discovery lists disabled entries DNS no longer answers). Whether they take
    #: traffic right now cannot be known here, so DNS and IPVS may hold them or not.
    uncertain: frozenset[str] = frozenset()

    def knows_all_tasks(self, network_id: str) -> bool:
        return self.tasks_known_on is None or network_id in self.tasks_known_on

    def __post_init__(self) -> None:
        self._by_service: dict[str, list[Task]] = {}
        self._by_task_id: dict[str, Task] = {}
        self._by_address: dict[tuple[str, str], list[Task]] = {}
        for t in self.tasks:
            self._by_service.setdefault(t.service_id, []).append(t)
            self._by_task_id.setdefault(t.id, t)
            for a in t.attachments:
                for x in a.addresses:
                    ip = strip_prefix(x)
                    if ip:
                        self._by_address.setdefault((a.network_id, ip), []).append(t)
        for owners in self._by_address.values():
            owners.sort(key=lambda t: (t.state != "running", t.desired_state != "running"))
        self._service_by_id = {s.id: s for s in self.services}
        self._node_by_id = {n.node_id: n for n in self.nodes if n.node_id}
        self._memo: dict = {}

    def memo(self, key, make):
        """A value computed once per cluster (a task's REDIRECT judged for every node's path to it, ...)."""
        try:
            return self._memo[key]  # most asks find it: one lookup
        except KeyError:
            v = self._memo[key] = make()
            return v

    def node_by_id(self, node_id: str | None) -> NodeCtx | None:
        return self._node_by_id.get(node_id) if node_id else None

    def service_name(self, service_id: str) -> str | None:
        s = self._service_by_id.get(service_id)
        return s.name if s else None

    def task(self, task_id: str | None) -> Task | None:
        return self._by_task_id.get(task_id) if task_id else None

    def service_tasks(self, service: Service) -> list[Task]:
        """Every task of the service, in any state."""
        return self._by_service.get(service.id, [])

    def node_name(self, node_id: str | None) -> str:
        if not node_id:
            return "?"
        return self.node_names.get(node_id) or node_id[:12]

    @property
    def ingress(self) -> Network | None:
        for n in self.networks.values():
            if n.ingress:
                return n
        return None

    def network_name(self, network_id: str) -> str:
        n = self.networks.get(network_id)
        return n.name if n else network_id[:12]

    def running_tasks(self, service: Service) -> list[Task]:
        return [t for t in self.service_tasks(service) if t.state == "running" and t.desired_state == "running"]

    def task_by_address(self, network_id: str, address: str) -> list[Task]:
        """Tasks (any state) holding ``address`` on ``network_id``, running ones first."""
        return list(self._by_address.get((network_id, address), ()))

    def task_name(self, task: Task) -> str:
        s = self._service_by_id.get(task.service_id)
        svc = task.service_name or (s.name if s else task.service_id[:12])
        if task.slot is not None:
            return f"{svc}.{task.slot}"
        return f"{svc}.{self.node_name(task.node_id)}"


def task_addresses(task: Task, network_id: str) -> list[str]:
    out: list[str] = []
    for a in task.attachments:
        if a.network_id == network_id:
            out.extend(x for x in (strip_prefix(c) for c in a.addresses) if x)
    return out


_PORT = re.compile(r"Target:\s*(\d+),\s*Publish:\s*(\d+)")


def _ingress_ports(specs: list[str], n: NodeCtx) -> list[PortSpec]:
    """Published ports from a verbose inspect of the ingress network ("Target: 80, Publish: 8000").

    The text has no protocol: it is udp where ingress_sbox marks the port for udp only, else tcp (the marks
    are the facts layer's: NodeCtx.facts, built once per node and shared with the paths).
    """
    sbox = n.ingress_sbox
    nf = n.facts().ns(sbox).netfilter if sbox is not None else None
    out = []
    for spec in specs:
        m = _PORT.search(spec)
        if not m:
            continue
        target, published = int(m.group(1)), int(m.group(2))
        udp_only = nf is not None and bool(nf.port_marks("udp", published)) and not nf.port_marks("tcp", published)
        proto = "udp" if udp_only else "tcp"
        out.append(PortSpec(protocol=proto, target_port=target, published_port=published, publish_mode="ingress"))
    return out


def _parse_task_name(name: str) -> tuple[str, int | None, str | None, str]:
    """A task's container name: ``<service>.<slot>.<task id>`` (replicated) or
    ``<service>.<node id>.<task id>`` (global). Returns (service, slot, node id, task id)."""
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or not parts[2]:
        return name, None, None, name
    svc, middle, tid = parts
    if middle.isascii() and middle.isdigit():
        return svc, int(middle), None, tid
    return svc, None, middle or None, tid


def _rebuild_from_workers(nodes: list[NodeCtx]) -> tuple[list[Service], list[Task], set[str], frozenset[str]]:
    """Without a manager: services and running tasks from what the nodes know.

    A node's own containers give its tasks with their ids and states. Its verbose
    network inspects give every task of every service on the networks it holds,
    on every node (the service discovery the node itself balances over), with the
    address of the node each runs on. Returns the services, the tasks and the ids
    of the networks whose tasks are fully known (a verbose inspect was read).
    """
    services: dict[str, Service] = {}  # by name: a service seen only in an inspect has no id
    tasks: dict[str, Task] = {}
    complete: set[str] = set()
    node_by_addr = {n.snap.node.node_addr: n for n in nodes if n.snap.node.node_addr}

    def service(name: str, sid: str | None = None) -> Service:
        svc = services.get(name)
        if svc is None:
            svc = services[name] = Service(id=sid or name, name=name, mode="unknown")
        elif sid and svc.id == name and sid != name:  # the real id, learnt from a container
            for t in tasks.values():
                if t.service_id == svc.id:
                    t.service_id = sid
            svc.id = sid
        return svc

    def attach(t: Task, network_id: str, network_name: str | None, cidr: str) -> None:
        for a in t.attachments:
            if a.network_id == network_id:
                if cidr.split("/")[0] not in (x.split("/")[0] for x in a.addresses):
                    a.addresses.append(cidr)
                return
        t.attachments.append(TaskAttachment(network_id=network_id, network_name=network_name, addresses=[cidr]))

    t: Task | None
    for n in nodes:
        net_by_name = {net.name: net for net in n.snap.docker.networks}
        for c in n.snap.docker.containers:
            if not c.service_id or not c.task_id:
                continue
            svc = service(c.service_name or c.service_id, c.service_id)
            _, slot, _, _ = _parse_task_name(c.name)
            t = tasks[c.task_id] = Task(
                id=c.task_id,
                service_id=svc.id,
                service_name=svc.name,
                slot=slot,
                node_id=n.node_id,
                desired_state="running",
                state=lifecycle.CONTAINER_STATES.get(c.state or "", c.state or "unknown"),
                container_id=c.id,
                # a running container's start is its task's last change: one that started a moment ago
                # may not have its rules yet (the namespaces are read while the API view is)
                state_since=c.started_at if c.state == "running" else None,
            )
            for cn in c.networks:
                nid = cn.network_id or (net_by_name[cn.network_name].id if cn.network_name in net_by_name else "")
                if cn.ip_address:
                    attach(t, nid, cn.network_name, f"{cn.ip_address}/{cn.prefixlen or 32}")
                if nid and nid not in svc.networks:
                    svc.networks.append(nid)
    for n in nodes:
        # a local endpoint whose container is not listed as running: a task on its way in (its sandbox
        # joined the network, which puts it in DNS, before its process runs and `docker ps` lists it)
        for net in n.snap.docker.networks:
            for nc in net.containers:
                sname, slot, node_id, tid = _parse_task_name(nc.name or "")
                if not nc.ipv4 or tid == sname or sname not in net.services:
                    continue  # the engine's own endpoints (lb-<net>, ingress-sbox), plain containers
                t = tasks.get(tid)
                if t is None:
                    svc = service(sname)
                    t = tasks[tid] = Task(id=tid, service_id=svc.id, service_name=sname, slot=slot, node_id=n.node_id,
                                          desired_state="running", state="starting", container_id=nc.key)
                attach(t, net.id, net.name, nc.ipv4)
    for n in nodes:
        for net in n.snap.docker.networks:
            if not net.verbose:
                continue
            complete.add(net.id)
            plen = next((x.split("/")[1] for x in net.subnets if "/" in x), "32")
            for name, ns in net.services.items():
                if not name:  # the engine's own endpoints (ingress-endpoint, <network>-endpoint): no service
                    continue
                svc = service(name)
                if not net.ingress and net.id not in svc.networks:
                    svc.networks.append(net.id)
                for ep in ns.tasks:
                    sname, slot, node_id, tid = _parse_task_name(ep.name)
                    if not ep.endpoint_ip or sname != name:
                        continue
                    t = tasks.get(tid)
                    if t is None:
                        host = node_by_addr.get(ep.host_ip or "")
                        # on a node whose containers were all listed, a task that is not among them does
                        # not run there, whatever the network's service discovery still says
                        gone = host is not None and host.snap.docker.available and (node_id in (None, host.node_id))
                        t = tasks[tid] = Task(
                            id=tid,
                            service_id=svc.id,
                            service_name=name,
                            slot=slot,
                            node_id=node_id or (host.node_id if host else None),
                            desired_state="running",
                            state="orphaned" if gone else "running",
                        )
                    attach(t, net.id, net.name, f"{ep.endpoint_ip}/{plen}")
                if not ns.vip:
                    if not net.ingress:
                        svc.endpoint_mode = "dnsrr"  # the engine lists dnsrr services with no VIP
                    continue
                if not any(v.network_id == net.id for v in svc.vips):
                    svc.vips.append(ServiceVip(network_id=net.id, address=ns.vip))
                if net.ingress and not svc.ports:
                    svc.ports = _ingress_ports(ns.ports, n)
    from_containers = {c.task_id for n in nodes for c in n.snap.docker.containers if c.task_id}
    uncertain = frozenset(t for t in tasks if t not in from_containers)
    return sorted(services.values(), key=lambda s: s.name), list(tasks.values()), complete, uncertain


def build_cluster(snaps: list[Snapshot]) -> Cluster:
    nodes = []
    shared: dict = {}
    for s in snaps:
        nodes.append(
            NodeCtx(
                snap=s,
                name=s.node.hostname,
                node_id=s.node.node_id,
                networks={n.id: n for n in s.docker.networks},
                shared=shared,
            )
        )
    manager = next((n for n in nodes if n.snap.node.role == "manager" and n.snap.docker.services), None)
    if manager is None:
        manager = next((n for n in nodes if n.snap.node.role == "manager" and n.snap.docker.available), None)
    tasks_known: set[str] | None = None  # every network's tasks are known from the manager
    uncertain: frozenset[str] = frozenset()
    if manager is not None:
        services, tasks = manager.snap.docker.services, manager.snap.docker.tasks
        api_source: str | None = manager.name
    else:
        services, tasks, tasks_known, uncertain = _rebuild_from_workers(nodes)
        api_source = None
    networks: dict[str, Network] = {}
    for n in ([manager] if manager else []) + nodes:
        for net in n.snap.docker.networks:
            if net.id not in networks or (net.verbose and not networks[net.id].verbose):
                networks[net.id] = net
    node_names: dict[str, str] = {}
    for n in nodes:
        for sn in n.snap.docker.nodes:
            node_names.setdefault(sn.id, sn.hostname)
    for n in nodes:
        if n.node_id:
            node_names[n.node_id] = n.name
    return Cluster(
        nodes=nodes,
        services=sorted(services, key=lambda s: s.name),
        tasks=tasks,
        networks=networks,
        node_names=node_names,
        api_source=api_source,
        tasks_known_on=tasks_known,
        uncertain=uncertain,
    )
