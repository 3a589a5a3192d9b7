"""What every path kind shares (pure): small readers over the snapshot (tables, port rules, addresses), the
hops a path is made of (kernel, sysctl, namespace, alias, MARK, IPVS, SNAT, links), the IPVS real servers
against the running tasks, and ``verdict``, a node path's judgement from its hops.

Marks are node-local: the expected mark on a node is that node's own
``LocalLBIndex`` for the service on the network; marks are never compared
across nodes.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from datetime import datetime
from sys import intern  # a text every node's path to a service repeats: one string (100 nodes: not 100)

from swarmscope.correlate import lifecycle
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, strip_prefix, task_addresses
from swarmscope.correlate.types import Backend, Hop, NodePath, SharedHop
from swarmscope.facts import FwmService, NodeFacts, NsFacts
from swarmscope.facts.netfilter import NAT, POSTROUTING, Mark
from swarmscope.model import (
    BackendState,
    HopStatus,
    Interface,
    Namespace,
    Service,
    Task,
    Verdict,
)


def node_facts(n: NodeCtx) -> NodeFacts:
    """The node's data-plane facts (swarmscope.facts), built once per node."""
    return n.facts()


def ns_facts(n: NodeCtx, ns: Namespace) -> NsFacts:
    """The facts of one of the node's namespaces."""
    return node_facts(n).ns(ns)


def ns_addresses(ns: Namespace | None) -> list[tuple[str, str, int]]:
    """(interface, address, prefixlen) of IPv4 addresses in a namespace."""
    if ns is None:
        return []
    return [(i.name, a.address, a.prefixlen) for i in ns.interfaces for a in i.addresses if a.family == 4]


def subnet_addresses(n: NodeCtx, ns: Namespace | None, subnets: list[str]) -> list[str]:
    """The namespace's IPv4 addresses (in ``ns_addresses`` order) inside one of ``subnets``: once per
    node, namespace and subnets (ingress_sbox holds one alias per service; every port asks)."""
    if ns is None:
        return []
    return n.memo(
        ("subnet_addresses", id(ns), tuple(subnets)),
        lambda: [a for _, a, _ in ns_addresses(ns) if in_subnet(a, subnets)],
    )


def in_subnet(addr: str, subnets: Iterable[str]) -> bool:
    ip = _ip(addr)
    if ip is None:
        return False
    for s in subnets:
        net = _net(s)
        if net is not None and ip in net:
            return True
    return False


@functools.lru_cache(maxsize=65536)
def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address parsed once (every node's paths ask about the same task and sandbox addresses)."""
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _net(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        return None


def kernel_hop(n: NodeCtx) -> Hop:
    v = n.snap.node.ip_vs
    if v is None or v.available is None:
        return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.UNKNOWN, "could not establish whether the kernel has ip_vs")
    if v.available:
        return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.OK, v.method, [v.method])
    return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.MISSING, "kernel has no ip_vs", [f"{v.method}: {v.detail}"])


def sysctl_hop(key: str, label: str, values: dict, name: str, want: str = "1") -> Hop:
    if name not in values:
        return Hop(key, label, HopStatus.UNKNOWN, f"{name} not read")
    v = values.get(name)
    if v is None:
        return Hop(key, label, HopStatus.UNKNOWN, f"{name} not readable")
    st = HopStatus.OK if v == want else HopStatus.MISMATCH
    return Hop(key, label, st, f"{name}={v}" + ("" if st == HopStatus.OK else f" (want {want})"), [f"{name} = {v}"])


def ns_listing(n: NodeCtx) -> str:
    names = [ns.name for ns in n.snap.namespaces]
    return f"{n.snap.netns_dir or 'netns directory'} lists: {', '.join(names) if names else 'nothing'}"


def ns_hop(key: str, label: str, ns: Namespace | None, what: str, n: NodeCtx) -> Hop:
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, f"no {what} namespace on this node", [ns_listing(n)])
    if ns.vanished:
        return Hop(key, label, HopStatus.UNKNOWN, f"{ns.name} vanished during collection")
    if ns.errors and not ns.interfaces:
        return Hop(key, label, HopStatus.UNKNOWN, f"{ns.name}: {ns.errors[0]}")
    return Hop(key, label, HopStatus.OK, ns.name, [ns.path])


def alias_hop(
    key: str, label: str, ns: Namespace | None, vip: str | None, aux: bool = False, n: NodeCtx | None = None
) -> Hop:
    """``n``: the node of ``ns``, whose facts index the namespace's addresses (else they are scanned)."""
    if ns is None or vip is None:
        status = HopStatus.UNKNOWN if vip is None else HopStatus.MISSING
        return Hop(key, label, status, "no namespace" if ns is None else "no VIP", aux=aux)
    if n is not None:
        a = ns_facts(n, ns).address(vip)
        found = (a.iface, a.address, a.prefixlen) if a is not None else None
    else:
        found = next((x for x in ns_addresses(ns) if x[1] == vip), None)
    if found is not None:
        iface, addr, plen = found
        st = HopStatus.OK if plen == 32 else HopStatus.MISMATCH
        ev = [intern(f"{ns.name}: {iface} inet {addr}/{plen}")]
        return Hop(key, label, st, intern(f"{vip}/{plen} on {iface}"), ev, aux=aux)
    if not ns.interfaces:
        return Hop(key, label, HopStatus.UNKNOWN, f"interfaces of {ns.name} not read", aux=aux)
    have = ", ".join(f"{i}:{a}/{p}" for i, a, p in ns_addresses(ns)) or "none"
    return Hop(
        key,
        label,
        HopStatus.MISSING,
        f"{vip}/32 is not on any interface of {ns.name}",
        [f"{ns.name} addresses: {have}"],
        aux=aux,
    )


def mark_hop(
    key: str,
    label: str,
    marks: list[Mark],
    expected: int | None,
    where: str,
    aux: bool = False,
    chain: list[str] | None = None,
) -> tuple[Hop, int | None]:
    """Judge the marks set (Mark facts); returns the hop and the mark to follow into IPVS.

    ``chain``: every rule of the chain looked in, the evidence when no mark is set.
    """
    found = [(f, f.mark) for f in marks if f.mark is not None]
    if not found:
        exp = f" (expected mark {expected} = {expected:#x})" if expected is not None else ""
        ev = [f"{where}: {line}" for line in chain or []] or [f"{where}: no rules"]
        return Hop(key, label, HopStatus.MISSING, f"no MARK rule in {where}{exp}", ev, aux=aux), expected
    ev = [f.evidence for f, _ in found]
    if expected is None:
        m = found[0][1]
        return Hop(key, label, HopStatus.OK, f"mark {m} ({m:#x}); LocalLBIndex unknown on this node", ev, aux=aux), m
    good = [m for _, m in found if m == expected]
    if good:
        return Hop(key, label, HopStatus.OK, f"mark {expected} ({expected:#x}) = LocalLBIndex", ev, aux=aux), expected
    m = found[0][1]
    return (
        Hop(
            key,
            label,
            HopStatus.MISMATCH,
            f"marks {m} ({m:#x}) but LocalLBIndex on this node is {expected} ({expected:#x})",
            ev,
            aux=aux,
        ),
        m,
    )


def ipvs_service_hop(
    key: str, label: str, n: NodeCtx, ns: Namespace | None, mark: int | None
) -> tuple[Hop, FwmService | None]:
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, "no load-balancer namespace"), None
    ipvs = ns_facts(n, ns).ipvs
    if not ipvs.read:
        return Hop(key, label, HopStatus.UNKNOWN, f"IPVS of {ns.name} not read"), None
    if not ipvs.available:
        if n.ipvs_missing:
            return Hop(key, label, HopStatus.MISSING, "kernel has no ip_vs", [f"{ns.name}: {ipvs.reason}"]), None
        why = [f"{ns.name}: {ipvs.reason}"]
        return Hop(key, label, HopStatus.UNKNOWN, ipvs.reason or "IPVS unavailable", why), None
    if mark is None:
        return Hop(key, label, HopStatus.UNKNOWN, "no firewall mark to look up"), None
    s = ipvs.fwm(mark)
    if s is None:
        have = ", ".join(ipvs.service_keys()) or "no services"
        return Hop(
            key, label, HopStatus.MISSING, f"no IPVS service FWM {mark} in {ns.name}", [f"{ns.name} IPVS: {have}"]
        ), None
    return Hop(key, label, HopStatus.OK, f"FWM {mark} {s.scheduler}, {len(s.dests)} real servers", [s.evidence]), s


def snat_hop(
    key: str, label: str, n: NodeCtx, ns: Namespace | None, subnets: list[str], source: str | None
) -> Hop:
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, "no load-balancer namespace")
    rules = ns_facts(n, ns).netfilter
    if not rules.read:
        return Hop(key, label, HopStatus.UNKNOWN, f"iptables of {ns.name} not read")
    snats = rules.ipvs_snats()
    where = f"{ns.name} {NAT} {POSTROUTING}"
    if not snats:
        ev = [f"{where}: {line}" for line in rules.lines(NAT, POSTROUTING)] or [f"{where}: no rules"]
        return Hop(key, label, HopStatus.MISSING, f"no '-m ipvs --ipvs ... -j SNAT' in {where}", ev)
    ev = [f.evidence for f in snats]
    for f in snats:
        if (not subnets or f.dst in subnets) and (source is None or f.to_source == source):
            return Hop(key, label, HopStatus.OK, f"SNAT {f.dst} -> {f.to_source}", ev)
    return Hop(key, label, HopStatus.MISMATCH, f"SNAT present but not for {', '.join(subnets)} -> {source}", ev)


def _is_down(i) -> bool:
    """Administratively down, or down by its operational state ("unknown" is how many virtual links
    without carrier detection report themselves, and is fine)."""
    return not i.admin_up or i.state in ("down", "lowerlayerdown", "notpresent")


def _peer(i, candidates: list[tuple[str, list]], index: dict | None = None) -> tuple[str, object] | None:
    """The other end of a veth: the interface with its peer index in one of the candidate namespaces
    (``index``: ``veth_index(candidates)``, built once)."""
    if i.kind != "veth" or i.peer_index is None:
        return None
    if index is not None:
        for where, j in index.get(i.peer_index, ()):
            if j.peer_index == i.index:
                return where, j
        return None
    for where, ifaces in candidates:
        for j in ifaces:
            if j.index == i.peer_index and j.kind == "veth" and j.peer_index == i.index:
                return where, j
    return None


def veth_index(candidates: list[tuple[str, list]]) -> dict[int, list[tuple[str, object]]]:
    """The veths of the candidate namespaces by interface index, in candidate order (for ``_peer``)."""
    idx: dict[int, list[tuple[str, object]]] = {}
    for where, ifaces in candidates:
        for j in ifaces:
            if j.kind == "veth":
                idx.setdefault(j.index, []).append((where, j))
    return idx


def _describe_link(where: str, i, peer) -> str:
    state = f"state {i.state}, admin {'up' if i.admin_up else 'down'}"
    other = (
        f"; other end {peer[1].name} in {peer[0]}" + (f" (bridge {peer[1].master})" if peer[1].master else "")
        if peer
        else ""
    )
    return f"{where}: {i.name} {state}{other}"


def links_hop(
    key: str,
    label: str,
    sandbox: Namespace | None,
    others: list[tuple[str, list]],
    bridges: list[tuple[str, Interface | None]],
    n: NodeCtx | None = None,
) -> Hop:
    """Every interface a packet crosses: the sandbox's own links, the other end of each (a bridge port
    on the host or in the overlay namespace) and the bridges themselves. ``n``: the node, which keeps the
    other namespaces' veths indexed (once per node and set of namespaces)."""
    if sandbox is None or not sandbox.interfaces:
        return Hop(key, label, HopStatus.UNKNOWN, "interfaces not read")
    checked, down = [], []
    index = (
        n.memo(("veth_index",) + tuple((w, id(x)) for w, x in others), lambda: veth_index(others))
        if n is not None
        else None
    )
    for i in sandbox.interfaces:
        if i.name == "lo":
            continue
        peer = _peer(i, others, index)
        checked.append(i.name)
        for where, x in ((sandbox.name, i),) + ((peer,) if peer else ()):
            if _is_down(x):
                down.append(_describe_link(where, x, peer if x is i else (sandbox.name, i)))
    for where, b in bridges:
        if b is not None and _is_down(b):
            down.append(f"{where}: bridge {b.name} state {b.state}, admin {'up' if b.admin_up else 'down'}")
    if down:
        return Hop(key, label, HopStatus.MISSING, down[0], down)
    return Hop(
        key,
        label,
        HopStatus.OK,
        f"{', '.join(checked)} and their other ends up",
        [f"{sandbox.name}: {', '.join(checked)} up"],
    )


# --------------------------------------------------------------------------
# backends: IPVS real servers against the running tasks


def _disabled(cl: Cluster, svc: Service, network_id: str, n: NodeCtx | None, task, address: str) -> bool:
    """Without a manager: a task known only from service discovery that this node's DNS does not answer
    is a disabled entry (discovery lists entries being drained; DNS and IPVS weight drop them first).
    One that DNS does answer is enabled, and IPVS must carry it."""
    if task.id not in cl.uncertain:
        return False
    a = n.dns_answer(network_id, f"tasks.{svc.name}") if n is not None else None
    return a is None or a.status != "ok" or address not in a.answers


def _expected(cl: Cluster, svc: Service, network_id: str) -> dict[str, Task]:
    """The running tasks of the service by their address on the network (once per cluster)."""
    expected: dict[str, Task] = {}
    for t in cl.running_tasks(svc):
        for a in task_addresses(t, network_id):
            expected[a] = t
    return expected


def _owner(cl: Cluster, network_id: str, address: str) -> tuple[list[Task], list[Task], Task | None, tuple]:
    """The tasks holding an address (running ones first), the live ones, the owner a real server is
    named after and its names (once per cluster: every node's IPVS lists the same real servers)."""
    owners = cl.task_by_address(network_id, address)
    live = [t for t in owners if t.state == "running" and t.desired_state == "running"]
    owner = live[0] if live else (owners[0] if owners else None)
    named: tuple = ()
    if owner is not None:
        named = (
            owner.id,
            cl.task_name(owner),
            owner.state,
            owner.service_name or cl.service_name(owner.service_id),
            cl.node_name(owner.node_id),
            owner.container_id,
        )
    return owners, live, owner, named


def compare_backends(
    cl: Cluster, svc: Service, network_id: str, dests, now: datetime | None = None, n: NodeCtx | None = None
) -> list[Backend]:
    """IPVS real servers against the running tasks. Tasks in transition (lifecycle) are neither
    good nor bad: a draining task's real server may linger, a starting task's may not be there yet."""
    # while the service is being updated, the API view and the data plane (read a moment later) can be a
    # task apart: the drain (weight 0, out of DNS) starts before the API says the task is shutting down
    updating = lifecycle.updating(svc)
    expected: dict[str, Task] = cl.memo(("expected", svc.id, network_id), lambda: _expected(cl, svc, network_id))
    out: list[Backend] = []
    seen = set()
    for d in dests:
        seen.add(d.address)
        owners, live, owner, named = cl.memo(
            ("owner", network_id, d.address), lambda a=d.address: _owner(cl, network_id, a)
        )
        b = Backend(address=d.address, port=d.port, weight=d.weight, forward=d.forward, status=BackendState.OK)
        if owner is not None:
            b.task_id, b.task, b.task_state, b.service, b.node, b.container_id = named
        if live and live[0].service_id == svc.id:
            moving = updating or _disabled(cl, svc, network_id, n, live[0], d.address)
            b.status = (BackendState.DRAINING if moving else BackendState.WEIGHT0) if d.weight == 0 else BackendState.OK
        elif live:
            b.status = BackendState.FOREIGN
        elif owner is not None and owner.service_id == svc.id and lifecycle.draining(owner, now):
            b.status = BackendState.DRAINING  # dockerd drains (weight 0) before it stops, deletes after
        elif owner is not None and owner.service_id == svc.id and lifecycle.starting(owner, now):
            b.status = BackendState.STARTING  # added as its container starts, before the API says running
        elif not owners and not cl.knows_all_tasks(network_id):
            b.status = (
                BackendState.UNKNOWN
            )  # no manager view and no verbose inspect: a task on another node is not known here
        else:
            b.status = BackendState.LINGERING if d.weight == 0 else BackendState.STALE
        out.append(b)
    for addr, t in expected.items():
        if addr in seen:
            continue
        out.append(
            Backend(
                address=addr,
                status=BackendState.STARTING
                if lifecycle.starting(t, now) or updating or _disabled(cl, svc, network_id, n, t, addr)
                else BackendState.MISSING,
                task_id=t.id,
                task=cl.task_name(t),
                task_state=t.state,
                service=svc.name,
                node=cl.node_name(t.node_id),
                container_id=t.container_id,
            )
        )
    out.sort(key=lambda b: ip_key(b.address))
    return out


def backends_for(
    cl: Cluster, svc: Service, network_id: str, ipvs_svc: FwmService | None, ipvs_hop: Hop, n: NodeCtx
) -> list[Backend]:
    """Backends of a path: with no IPVS service, the running tasks, missing (or unknown when IPVS was not read)."""
    backends = compare_backends(cl, svc, network_id, ipvs_svc.dests if ipvs_svc else [], n.now, n)
    if ipvs_svc is None:
        backends = [b for b in backends if b.status in (BackendState.MISSING, BackendState.STARTING)]
        if ipvs_hop.status == HopStatus.UNKNOWN:
            for b in backends:
                b.status = BackendState.UNKNOWN
    return backends


VTEP_HOP = "overlay.vtep"
VTEP_LABEL = "overlay -> other nodes' VTEPs"


def node_vteps(cl: Cluster) -> dict[str, str]:
    """Each node's VTEP (node id -> its address in the swarm), once per cluster: the manager's node list,
    else a network's peer of that name."""
    def make() -> dict[str, str]:
        out: dict[str, str] = {}
        by_host: dict[str, str] = {}
        for n in cl.nodes:
            for net in n.snap.docker.networks:
                for p in net.peers:
                    if p.name and p.ip:
                        by_host.setdefault(p.name, p.ip)
            for sn in n.snap.docker.nodes:
                a = strip_prefix(sn.address)
                if sn.id and a and a != "0.0.0.0":
                    out.setdefault(sn.id, a)
        for node_id, host in cl.node_names.items():
            if node_id not in out and host in by_host:
                out[node_id] = by_host[host]
        return out

    return cl.memo("node_vteps", make)


def vtep_evidence(vtep: str | None, node: str, tasks: list[str]) -> str:
    """One line of the VTEP hop's evidence (correlate/probes.py finds a vtep probe's line by ``vtep_line_of``)."""
    return f"VTEP {vtep or '?'} ({node}): {', '.join(tasks)}"


def vtep_line_of(vtep: str) -> str:
    return f"VTEP {vtep} ("


def vtep_hop(cl: Cluster, svc: Service, network_id: str, n: NodeCtx) -> Hop | None:
    """The service's running tasks on the network that live on other nodes: traffic to them crosses VXLAN to
    those nodes' VTEPs, a part of the path no rule of this node shows (the underlay). Judged ok from the
    rules (the overlay's FDB and neighbour entries are overlay.*'s checks); ``--probe`` proves it (vtep
    probes). None when every task is local, or none runs.

    The tasks' lines are found once per service and network; the hop is judged once for every node without
    a task of the service (they see the same remote tasks) and once for each node with one: the same object
    in each of those paths (a SharedHop)."""
    remote = cl.memo(("vtep.remote", id(svc), network_id), lambda: _remote_tasks(cl, svc, network_id))
    if not n.node_id or not remote:
        return None
    own = n.node_id if n.node_id in remote else None
    return cl.memo(("vtep.hop", id(svc), network_id, own), lambda: _vtep_hop(cl, remote, own))


def _remote_tasks(cl: Cluster, svc: Service, network_id: str) -> dict[str, list[str]]:
    """Node id -> "task address" of the service's running tasks on the network, of tasks placed on a node."""
    out: dict[str, list[str]] = {}
    for t in cl.running_tasks(svc):
        if t.node_id:
            addrs = task_addresses(t, network_id)
            if addrs:
                out.setdefault(t.node_id, []).append(f"{cl.task_name(t)} {addrs[0]}")
    return out


def _vtep_hop(cl: Cluster, remote: dict[str, list[str]], own: str | None) -> Hop | None:
    others = [i for i in remote if i != own]
    if not others:
        return None
    vteps = node_vteps(cl)
    order = sorted(others, key=cl.node_name)
    ev = [vtep_evidence(vteps.get(i), cl.node_name(i), sorted(remote[i])) for i in order]
    detail = ", ".join(f"{cl.node_name(i)} {vteps.get(i) or '?'}" for i in order)
    return SharedHop.of(Hop(VTEP_HOP, VTEP_LABEL, HopStatus.OK, f"VXLAN to {detail}", ev))


def backends_key(
    cl: Cluster, svc: Service, network_id: str, ipvs_svc: FwmService | None, ipvs_hop: Hop, n: NodeCtx
) -> tuple:
    """Everything ``backends_for`` depends on, so that nodes with equal input share its real servers (a
    cluster memo; the Backends are never changed once built): the service, the network, the real servers
    (address, port, weight, forwarding: their marks and evidence are not read), whether there is an IPVS
    service and whether IPVS was read; the node's time only where a task changed state recently enough at it
    for ``lifecycle`` to tell (else it decides nothing); the node itself only without a manager, where its
    DNS answers decide about tasks known from service discovery alone (``_disabled``)."""
    dests = tuple((d.address, d.port, d.weight, d.forward) for d in ipvs_svc.dests) if ipvs_svc is not None else None
    return (
        "backends",
        id(svc),
        network_id,
        dests,
        ipvs_hop.status == HopStatus.UNKNOWN,
        _time_key(cl, n),
        id(n) if cl.uncertain else None,
    )


def _time_key(cl: Cluster, n: NodeCtx) -> datetime | None:
    """The node's time where it decides whether some task is ``lifecycle.recent``: None where no task's state
    changed less than SETTLE_SECONDS before it (or the times are unknown), so that every settled node is alike."""
    now = n.now
    if now is None:
        return None
    latest = cl.memo(
        "latest_state_since",
        lambda: max(
            (s for t in cl.tasks if (s := lifecycle.parse_time(t.state_since)) is not None),
            default=None,
        ),
    )
    if latest is None or (now - latest).total_seconds() >= lifecycle.SETTLE_SECONDS:
        return None
    return now


def node_hop(n: NodeCtx, key: tuple, make: Callable[[], Hop]) -> Hop:
    """A hop whose inputs are the node's alone (its kernel, sysctls, links, SNAT): judged once per node and
    ``key``, the same object in each of the node's paths (a SharedHop: NodePath.own before changing it)."""
    return n.memo(("hop",) + key, lambda: SharedHop.of(make()))


def backends_hop(
    key: str, label: str, backends: list[Backend], ipvs_svc: FwmService | None, ipvs_hop: Hop, cl: Cluster | None = None
) -> Hop:
    """The real servers against the tasks. ``cl``: where the Backend list is one the cluster shares (never
    changed once built), its judgement is made once for every node path that has it (each keeps its own
    evidence: the real servers' lines name the node's mark)."""
    if ipvs_svc is None:
        if ipvs_hop.status == HopStatus.UNKNOWN:
            return Hop(key, label, HopStatus.UNKNOWN, "IPVS not read: real servers unknown")
        return Hop(key, label, HopStatus.MISSING, "no IPVS service to read real servers from")
    if cl is None:
        status, detail = _backends_judgement(backends)
    else:
        # the list kept in the memo with its judgement: its id is not reused while the memo lives
        _, status, detail = cl.memo(
            ("backends.judged", id(backends)), lambda: (backends, *_backends_judgement(backends))
        )
    return Hop(key, label, status, detail, list(ipvs_svc.lines))


def _backends_judgement(backends: list[Backend]) -> tuple[HopStatus, str]:
    good = [b for b in backends if b.status == BackendState.OK]
    moving = [b for b in backends if b.status in (BackendState.DRAINING, BackendState.STARTING)]
    bad = [
        b
        for b in backends
        if b.status not in (BackendState.OK, BackendState.UNKNOWN, BackendState.DRAINING, BackendState.STARTING)
    ]
    summary = ", ".join(f"{b.address} {b.status}" for b in backends) or "none"
    if not good and any(b.status == BackendState.UNKNOWN for b in backends) and not bad:
        return HopStatus.UNKNOWN, f"real servers not known to be tasks: no manager data ({summary})"
    if not good and moving and not bad:
        return HopStatus.UNKNOWN, f"tasks being replaced: no settled real server yet ({summary})"
    if not good:
        return HopStatus.MISSING, f"no usable real server ({summary})"
    if bad:
        return HopStatus.MISMATCH, summary
    return HopStatus.OK, intern(f"{len(good)} real servers = running tasks")


def verdict(np: NodePath, breaks: Callable[[Hop], bool] | None = None) -> None:
    """ok, broken (the first broken hop), degraded (serves, but some real servers are wrong), unknown.

    ``breaks``: once findings are known, whether a bad hop stops traffic (checks.hop_breaks); a bad
    hop that does not (only warnings: a rule order, a drained backend) makes the path degraded.
    """
    degraded = unknown = None
    for h in np.hops:
        if h.aux or h.status is HopStatus.OK:  # most hops: nothing below applies to them
            continue
        if unknown is None and h.status == HopStatus.UNKNOWN:
            unknown = h
        if (
            h.status == HopStatus.MISMATCH
            and h.key.endswith(".backends")
            and any(b.status == BackendState.OK for b in np.backends)
        ):
            degraded = degraded or h  # traffic still reaches a good backend
            continue
        if h.status in (HopStatus.MISSING, HopStatus.MISMATCH) and breaks is not None and not breaks(h):
            degraded = degraded or h
            continue
        if h.status in (HopStatus.MISSING, HopStatus.MISMATCH):
            np.verdict, np.broken_at = Verdict.BROKEN, h.label
            np.reason = f"{h.label}: {h.detail}"
            return
    if degraded is not None:
        np.verdict, np.broken_at = Verdict.DEGRADED, degraded.label
        np.reason = f"{degraded.label}: {degraded.detail}"
        return
    redirects = [b.redirect for b in np.backends if b.status == BackendState.OK and b.redirect is not None]
    if redirects and all(r in (HopStatus.MISSING, HopStatus.MISMATCH) for r in redirects):
        np.verdict, np.broken_at, np.reason = (
            Verdict.BROKEN,
            "task REDIRECT",
            "no running backend has its REDIRECT rule",
        )
        return
    if unknown is not None:  # the first hop not known
        np.verdict, np.reason = Verdict.UNKNOWN, f"{unknown.label}: {unknown.detail}"
        return
    np.verdict, np.reason = Verdict.OK, "every hop ok"
