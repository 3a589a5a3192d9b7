"""The path map: hop by hop, node by node, how traffic reaches a service (pure).

Marks are node-local: the expected mark on a node is that node's own
``LocalLBIndex`` for the service on the network; marks are never compared
across nodes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import datetime

from swarmscope.correlate import lifecycle, netfilter
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, strip_prefix, task_addresses
from swarmscope.correlate.types import (
    Backend,
    DnsCheck,
    Hop,
    NodePath,
    PortPath,
    ServicePath,
    TaskInfo,
    VipPath,
)
from swarmscope.engines import profile_for
from swarmscope.model import (
    BackendState,
    HopStatus,
    Interface,
    IptablesDump,
    IpvsService,
    Namespace,
    PortSpec,
    Rule,
    Service,
    Table,
    Task,
    Verdict,
)
from swarmscope.parse.iptables import dnat_destination, mark_value

INGRESS_CHAIN = "DOCKER-INGRESS"


# --------------------------------------------------------------------------
# small readers over the snapshot


def nat(d: IptablesDump | None) -> Table | None:
    if d is None or not d.available:
        return None
    return d.table("nat")


def table(d: IptablesDump | None, name: str) -> Table | None:
    if d is None or not d.available:
        return None
    return d.table(name)


def proto_port(rule: Rule, proto: str, opt: str, port: int) -> bool:
    return rule.value("-p") == proto and rule.value(opt) == str(port)


def port_rules(n: NodeCtx, where: str, t: Table, chain: str, target: str, opt: str, proto: str, port) -> list[Rule]:
    """The rules of ``chain`` with ``target`` for proto/port (``opt`` --dport or --sport), indexed once per
    node, table and chain: every published port asks, and a scan per port grows with ports squared."""
    def make() -> dict[tuple, list[Rule]]:
        idx: dict[tuple, list[Rule]] = {}
        for r in t.rules(chain):
            if r.target == target:
                idx.setdefault((r.value("-p"), r.value(opt)), []).append(r)
        return idx

    return n.memo(("rules", where, id(t), chain, target, opt), make).get((proto, str(port)), [])


def ns_addresses(ns: Namespace | None) -> list[tuple[str, str, int]]:
    """(interface, address, prefixlen) of IPv4 addresses in a namespace."""
    if ns is None:
        return []
    return [(i.name, a.address, a.prefixlen) for i in ns.interfaces for a in i.addresses if a.family == 4]


def in_subnet(addr: str, subnets: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    for s in subnets:
        try:
            if ip in ipaddress.ip_network(s, strict=False):
                return True
        except ValueError:
            continue
    return False


def chain_reach_order(t: Table, start: str) -> list[str]:
    """User chains in the order a packet entering ``start`` first reaches them."""
    order: list[str] = []
    seen = {start}

    def walk(chain: str) -> None:
        for r in t.rules(chain):
            tgt = r.target
            if tgt and tgt in t.chains and tgt not in seen:
                seen.add(tgt)
                order.append(tgt)
                walk(tgt)

    walk(start)
    return order


def ipvs_line(s: IpvsService, d=None) -> str:
    if d is None:
        return f"IPVS {s.key} {s.scheduler} ({len(s.dests)} real servers)"
    return f"IPVS {s.key} -> {d.address}:{d.port} {d.forward} weight {d.weight} active {d.active} inactive {d.inactive}"


def _kernel_hop(n: NodeCtx) -> Hop:
    v = n.snap.node.ip_vs
    if v is None or v.available is None:
        return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.UNKNOWN, "could not establish whether the kernel has ip_vs")
    if v.available:
        return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.OK, v.method, [v.method])
    return Hop("kernel.ipvs", "kernel ip_vs", HopStatus.MISSING, "kernel has no ip_vs", [f"{v.method}: {v.detail}"])


def _sysctl_hop(key: str, label: str, values: dict, name: str, want: str = "1") -> Hop:
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


def _ns_hop(key: str, label: str, ns: Namespace | None, what: str, n: NodeCtx) -> Hop:
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, f"no {what} namespace on this node", [ns_listing(n)])
    if ns.vanished:
        return Hop(key, label, HopStatus.UNKNOWN, f"{ns.name} vanished during collection")
    if ns.errors and not ns.interfaces:
        return Hop(key, label, HopStatus.UNKNOWN, f"{ns.name}: {ns.errors[0]}")
    return Hop(key, label, HopStatus.OK, ns.name, [ns.path])


def _alias_hop(key: str, label: str, ns: Namespace | None, vip: str | None, aux: bool = False) -> Hop:
    if ns is None or vip is None:
        status = HopStatus.UNKNOWN if vip is None else HopStatus.MISSING
        return Hop(key, label, status, "no namespace" if ns is None else "no VIP", aux=aux)
    for iface, addr, plen in ns_addresses(ns):
        if addr == vip:
            st = HopStatus.OK if plen == 32 else HopStatus.MISMATCH
            return Hop(key, label, st, f"{vip}/{plen} on {iface}", [f"{ns.name}: {iface} inet {addr}/{plen}"], aux=aux)
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


def _mark_hop(
    key: str,
    label: str,
    rules: list[Rule],
    expected: int | None,
    where: str,
    aux: bool = False,
    chain: list[Rule] | None = None,
) -> tuple[Hop, int | None]:
    """Judge MARK rules; returns the hop and the mark to follow into IPVS.

    ``chain``: every rule of the chain looked in, the evidence when no MARK rule is found.
    """
    marks = [(r, mark_value(r)) for r in rules]
    marks = [(r, m) for r, m in marks if m is not None]
    if not marks:
        exp = f" (expected mark {expected} = {expected:#x})" if expected is not None else ""
        ev = [f"{where}: {r.line}" for r in chain or []] or [f"{where}: no rules"]
        return Hop(key, label, HopStatus.MISSING, f"no MARK rule in {where}{exp}", ev, aux=aux), expected
    ev = [r.line for r, _ in marks]
    if expected is None:
        m = marks[0][1]
        return Hop(key, label, HopStatus.OK, f"mark {m} ({m:#x}); LocalLBIndex unknown on this node", ev, aux=aux), m
    good = [m for _, m in marks if m == expected]
    if good:
        return Hop(key, label, HopStatus.OK, f"mark {expected} ({expected:#x}) = LocalLBIndex", ev, aux=aux), expected
    m = marks[0][1]
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


def _ipvs_hop(
    key: str, label: str, n: NodeCtx, ns: Namespace | None, mark: int | None
) -> tuple[Hop, IpvsService | None]:
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, "no load-balancer namespace"), None
    t = ns.ipvs
    if t is None:
        return Hop(key, label, HopStatus.UNKNOWN, f"IPVS of {ns.name} not read"), None
    if not t.available:
        if n.ipvs_missing:
            return Hop(key, label, HopStatus.MISSING, "kernel has no ip_vs", [f"{ns.name}: {t.reason}"]), None
        return Hop(key, label, HopStatus.UNKNOWN, t.reason or "IPVS unavailable", [f"{ns.name}: {t.reason}"]), None
    if mark is None:
        return Hop(key, label, HopStatus.UNKNOWN, "no firewall mark to look up"), None
    s = t.service_for_mark(mark)
    if s is None:
        have = ", ".join(x.key for x in t.services) or "no services"
        return Hop(
            key, label, HopStatus.MISSING, f"no IPVS service FWM {mark} in {ns.name}", [f"{ns.name} IPVS: {have}"]
        ), None
    return Hop(key, label, HopStatus.OK, f"FWM {mark} {s.scheduler}, {len(s.dests)} real servers", [ipvs_line(s)]), s


def _snat_hop(key: str, label: str, ns: Namespace | None, subnets: list[str], source: str | None) -> Hop:
    t = table(ns.iptables if ns else None, "nat")
    if ns is None:
        return Hop(key, label, HopStatus.MISSING, "no load-balancer namespace")
    if t is None:
        return Hop(key, label, HopStatus.UNKNOWN, f"iptables of {ns.name} not read")
    rules = [r for r in t.rules("POSTROUTING") if r.target == "SNAT" and r.has_match("ipvs")]
    if not rules:
        ev = [f"{ns.name} nat POSTROUTING: {r.line}" for r in t.rules("POSTROUTING")] or [
            f"{ns.name} nat POSTROUTING: no rules"
        ]
        return Hop(key, label, HopStatus.MISSING, f"no '-m ipvs --ipvs ... -j SNAT' in {ns.name} nat POSTROUTING", ev)
    ev = [r.line for r in rules]
    for r in rules:
        d = r.value("-d")
        to = (r.value("--to-source") or "").split(":")[0]
        if (not subnets or d in subnets) and (source is None or to == source):
            return Hop(key, label, HopStatus.OK, f"SNAT {d} -> {to}", ev)
    return Hop(key, label, HopStatus.MISMATCH, f"SNAT present but not for {', '.join(subnets)} -> {source}", ev)


def _is_down(i) -> bool:
    """Administratively down, or down by its operational state ("unknown" is how many virtual links
    without carrier detection report themselves, and is fine)."""
    return not i.admin_up or i.state in ("down", "lowerlayerdown", "notpresent")


def _peer(i, candidates: list[tuple[str, list]]) -> tuple[str, object] | None:
    """The other end of a veth: the interface with its peer index in one of the candidate namespaces."""
    if i.kind != "veth" or i.peer_index is None:
        return None
    for where, ifaces in candidates:
        for j in ifaces:
            if j.index == i.peer_index and j.kind == "veth" and j.peer_index == i.index:
                return where, j
    return None


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
) -> Hop:
    """Every interface a packet crosses: the sandbox's own links, the other end of each (a bridge port
    on the host or in the overlay namespace) and the bridges themselves."""
    if sandbox is None or not sandbox.interfaces:
        return Hop(key, label, HopStatus.UNKNOWN, "interfaces not read")
    checked, down = [], []
    for i in sandbox.interfaces:
        if i.name == "lo":
            continue
        peer = _peer(i, others)
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


def compare_backends(
    cl: Cluster, svc: Service, network_id: str, dests, now: datetime | None = None, n: NodeCtx | None = None
) -> list[Backend]:
    """IPVS real servers against the running tasks. Tasks in transition (lifecycle) are neither
    good nor bad: a draining task's real server may linger, a starting task's may not be there yet."""
    running = cl.running_tasks(svc)
    # while the service is being updated, the API view and the data plane (read a moment later) can be a
    # task apart: the drain (weight 0, out of DNS) starts before the API says the task is shutting down
    updating = lifecycle.updating(svc)
    expected: dict[str, Task] = {}
    for t in running:
        for a in task_addresses(t, network_id):
            expected[a] = t
    out: list[Backend] = []
    seen = set()
    for d in dests:
        seen.add(d.address)
        owners = cl.task_by_address(network_id, d.address)
        live = [t for t in owners if t.state == "running" and t.desired_state == "running"]
        b = Backend(address=d.address, port=d.port, weight=d.weight, forward=d.forward, status=BackendState.OK)
        owner = live[0] if live else (owners[0] if owners else None)
        if owner is not None:
            b.task_id, b.task, b.task_state = owner.id, cl.task_name(owner), owner.state
            b.service = owner.service_name or cl.service_name(owner.service_id)
            b.node, b.container_id = cl.node_name(owner.node_id), owner.container_id
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


def _backends_for(
    cl: Cluster, svc: Service, network_id: str, ipvs_svc: IpvsService | None, ipvs_hop: Hop, n: NodeCtx
) -> list[Backend]:
    """Backends of a path: with no IPVS service, the running tasks, missing (or unknown when IPVS was not read)."""
    backends = compare_backends(cl, svc, network_id, ipvs_svc.dests if ipvs_svc else [], n.now, n)
    if ipvs_svc is None:
        backends = [b for b in backends if b.status in (BackendState.MISSING, BackendState.STARTING)]
        if ipvs_hop.status == HopStatus.UNKNOWN:
            for b in backends:
                b.status = BackendState.UNKNOWN
    return backends


def _backends_hop(key: str, label: str, backends: list[Backend], ipvs_svc: IpvsService | None, ipvs_hop: Hop) -> Hop:
    if ipvs_svc is None:
        if ipvs_hop.status == HopStatus.UNKNOWN:
            return Hop(key, label, HopStatus.UNKNOWN, "IPVS not read: real servers unknown")
        return Hop(key, label, HopStatus.MISSING, "no IPVS service to read real servers from")
    good = [b for b in backends if b.status == BackendState.OK]
    moving = [b for b in backends if b.status in (BackendState.DRAINING, BackendState.STARTING)]
    bad = [
        b
        for b in backends
        if b.status not in (BackendState.OK, BackendState.UNKNOWN, BackendState.DRAINING, BackendState.STARTING)
    ]
    ev = [ipvs_line(ipvs_svc, d) for d in ipvs_svc.dests]
    summary = ", ".join(f"{b.address} {b.status}" for b in backends) or "none"
    if not good and any(b.status == BackendState.UNKNOWN for b in backends) and not bad:
        return Hop(
            key, label, HopStatus.UNKNOWN, f"real servers not known to be tasks: no manager data ({summary})", ev
        )
    if not good and moving and not bad:
        return Hop(key, label, HopStatus.UNKNOWN, f"tasks being replaced: no settled real server yet ({summary})", ev)
    if not good:
        return Hop(key, label, HopStatus.MISSING, f"no usable real server ({summary})", ev)
    if bad:
        return Hop(key, label, HopStatus.MISMATCH, summary, ev)
    return Hop(key, label, HopStatus.OK, f"{len(good)} real servers = running tasks", ev)


# --------------------------------------------------------------------------
# ingress (published port, ingress mode)


def gwbridge_sbox_ip(n: NodeCtx) -> tuple[str | None, list[str]]:
    """The ingress sandbox's address on docker_gwbridge, and how it was found (once per node)."""
    return n.memo("gwbridge_sbox_ip", lambda: _gwbridge_sbox_ip(n))


def _gwbridge_sbox_ip(n: NodeCtx) -> tuple[str | None, list[str]]:
    sbox = n.ingress_sbox
    gw = n.snap.host.gwbridge
    subnets = []
    if gw is not None:
        subnets = [f"{a.address}/{a.prefixlen}" for a in gw.addresses if a.family == 4]
    for iface, addr, plen in ns_addresses(sbox):
        if subnets and in_subnet(addr, subnets):
            return addr, [f"ingress_sbox: {iface} inet {addr}/{plen} (docker_gwbridge {', '.join(subnets)})"]
    for net in n.snap.docker.networks:
        if net.name == "docker_gwbridge":
            for c in net.containers:
                if c.key == "ingress-sbox" and c.ipv4:
                    return strip_prefix(c.ipv4), [f"docker network inspect docker_gwbridge: ingress-sbox {c.ipv4}"]
    return None, []


#: targets that end a packet's walk through nat PREROUTING/OUTPUT
_NAT_TERMINAL = frozenset({"ACCEPT", "RETURN", "DNAT", "REDIRECT", "DROP"})


def _docker_jump(r: Rule) -> bool:
    """Docker's own jump: `-m addrtype --dst-type LOCAL -j DOCKER-INGRESS`, nothing else restricting it."""
    return (
        r.target == INGRESS_CHAIN
        and not r.params
        and [m.module for m in r.matches] == ["addrtype"]
        and r.value("--dst-type") == "LOCAL"
    )


def _shadowed_by(rules: list[Rule], proto: str, port: int) -> Rule | None:
    """The first rule before Docker's jump that ends the published port's packets there (an operator's
    ACCEPT/RETURN, or their own DNAT/REDIRECT of the port): DOCKER-INGRESS is never reached for them."""
    for r in rules:
        if _docker_jump(r):
            return None
        if r.target not in _NAT_TERMINAL:
            continue
        p = r.option("-p")
        if p is not None and (p.value != proto) != p.negated:
            continue
        d = r.option("--dport")
        if d is not None and (d.value != str(port)) != d.negated:
            continue
        if r.has_match("multiport") and str(port) not in (r.value("--dports") or "").replace(":", ",").split(","):
            continue
        return r
    return None


def ingress_node_path(cl: Cluster, svc: Service, port: PortSpec, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    P, proto = port.published_port, port.protocol
    assert P is not None  # analyze() maps published ports only
    ingress = cl.ingress
    hops = np.hops
    hops.append(_kernel_hop(n))
    hops.append(_sysctl_hop("host.ip_forward", "host ip_forward", n.snap.node.sysctls, "net.ipv4.ip_forward"))

    hnat = nat(n.snap.host.iptables)
    if hnat is None:
        hops.append(Hop("host.jump", "host nat -> DOCKER-INGRESS", HopStatus.UNKNOWN, "host iptables not read"))
        hops.append(Hop("host.dnat", f"host DNAT :{P}", HopStatus.UNKNOWN, "host iptables not read"))
    else:
        jumps = {c: [r for r in hnat.rules(c) if r.target == INGRESS_CHAIN] for c in ("PREROUTING", "OUTPUT")}
        ev = [r.line for c in jumps for r in jumps[c]]
        if INGRESS_CHAIN not in hnat.chains:
            hops.append(
                Hop(
                    "host.jump",
                    "host nat -> DOCKER-INGRESS",
                    HopStatus.MISSING,
                    "nat chain DOCKER-INGRESS does not exist",
                    [f"host nat chains: {', '.join(hnat.chains)}"],
                )
            )
        elif not jumps["PREROUTING"] or not jumps["OUTPUT"]:
            miss = " and ".join(c for c in jumps if not jumps[c])
            ev = [f"host nat {c}: {r.line}" for c in jumps for r in hnat.rules(c)] or [
                "host nat PREROUTING/OUTPUT: no rules"
            ]
            hops.append(Hop("host.jump", "host nat -> DOCKER-INGRESS", HopStatus.MISSING, f"no jump from {miss}", ev))
        else:
            shadow = [(c, r) for c in jumps if (r := _shadowed_by(hnat.rules(c), proto, P)) is not None]
            if shadow:
                c, r = shadow[0]
                hops.append(
                    Hop(
                        "host.jump",
                        "host nat -> DOCKER-INGRESS",
                        HopStatus.MISMATCH,
                        f"nat {c}: '{r.line}' ends {proto}/{P} before Docker's jump to DOCKER-INGRESS",
                        [f"host nat {c}: {x.line}" for x in hnat.rules(c)],
                    )
                )
            else:
                hops.append(
                    Hop(
                        "host.jump",
                        "host nat -> DOCKER-INGRESS",
                        HopStatus.OK,
                        "PREROUTING and OUTPUT jump (dst-type LOCAL)",
                        ev,
                    )
                )
        gw_ip, gw_ev = gwbridge_sbox_ip(n)
        dnats = port_rules(n, "host", hnat, INGRESS_CHAIN, "DNAT", "--dport", proto, P)
        label = f"host DNAT :{P} -> {gw_ip or 'ingress_sbox'}:{P}"
        if not dnats:
            hops.append(
                Hop("host.dnat", label, HopStatus.MISSING, f"no DNAT for {proto}/{P} in nat DOCKER-INGRESS", gw_ev)
            )
        else:
            dest = dnat_destination(dnats[0]) or (None, None)
            ev = [r.line for r in dnats] + gw_ev
            if gw_ip and dest[0] != gw_ip:
                hops.append(
                    Hop(
                        "host.dnat",
                        label,
                        HopStatus.MISMATCH,
                        f"DNAT to {dest[0]}, but ingress_sbox is {gw_ip} on docker_gwbridge",
                        ev,
                    )
                )
            elif dest[1] not in (None, P):
                hops.append(Hop("host.dnat", label, HopStatus.MISMATCH, f"DNAT to port {dest[1]}, expected {P}", ev))
            else:
                hops.append(Hop("host.dnat", label, HopStatus.OK, f"DNAT to {dest[0]}:{dest[1] or P}", ev))

    hfilter = table(n.snap.host.iptables, "filter")
    if hfilter is None:
        hops.append(Hop("host.filter", f"host filter ACCEPT :{P}", HopStatus.UNKNOWN, "host iptables not read"))
    else:
        acc = port_rules(n, "host", hfilter, INGRESS_CHAIN, "ACCEPT", "--dport", proto, P)
        back = port_rules(n, "host", hfilter, INGRESS_CHAIN, "ACCEPT", "--sport", proto, P)
        order = n.memo(("reach", id(hfilter), "FORWARD"), lambda: chain_reach_order(hfilter, "FORWARD"))
        ev = [r.line for r in acc + back]
        if INGRESS_CHAIN not in order:
            hops.append(
                Hop(
                    "host.filter",
                    f"host filter ACCEPT :{P}",
                    HopStatus.MISSING,
                    "FORWARD never reaches filter DOCKER-INGRESS",
                    ev,
                )
            )
        elif not acc or not back:
            what = "--dport" if not acc else "--sport ESTABLISHED"
            hops.append(
                Hop(
                    "host.filter",
                    f"host filter ACCEPT :{P}",
                    HopStatus.MISSING,
                    f"no {what} {P} ACCEPT in filter DOCKER-INGRESS",
                    ev,
                )
            )
        elif "DOCKER-USER" in order and order.index("DOCKER-USER") > order.index(INGRESS_CHAIN):
            hops.append(
                Hop(
                    "host.filter",
                    f"host filter ACCEPT :{P}",
                    HopStatus.MISMATCH,
                    "FORWARD reaches DOCKER-INGRESS before DOCKER-USER",
                    ev + [f"FORWARD order: {' -> '.join(order)}"],
                )
            )
        else:
            hops.append(
                Hop(
                    "host.filter",
                    f"host filter ACCEPT :{P}",
                    HopStatus.OK,
                    "accepted in filter DOCKER-INGRESS, after DOCKER-USER",
                    ev,
                )
            )
        if hops[-1].status in (HopStatus.OK, HopStatus.MISMATCH):
            hops.append(_forward_hop(n, hfilter, proto, P))

    sbox = n.ingress_sbox
    hops.append(_ns_hop("ingress.sbox", "ingress_sbox", sbox, "ingress_sbox", n))
    if sbox is not None and sbox.sysctls:  # DNATed traffic is routed through the sandbox to the tasks
        hops.append(_sysctl_hop("ingress.ip_forward", "ingress_sbox ip_forward", sbox.sysctls, "net.ipv4.ip_forward"))
    if sbox is not None:
        ov = n.overlay_ns(ingress.id) if ingress else None
        gw = next((i for i in n.snap.host.interfaces if i.name == "docker_gwbridge"), None)
        br = next((i for i in ov.interfaces if i.kind == "bridge" or i.name == "br0"), None) if ov else None
        hops.append(
            links_hop(
                "ingress.links",
                "ingress_sbox links",
                sbox,
                [("host", n.snap.host.interfaces)] + ([(ov.name, ov.interfaces)] if ov else []),
                [("host", gw)] + ([(ov.name, br)] if ov else []),
            )
        )
    expected = n.local_lb_index(ingress.id, svc.name) if ingress else None
    mangle = table(sbox.iptables if sbox else None, "mangle")
    if sbox is None:
        hops.append(Hop("ingress.mark", f"ingress_sbox MARK :{P}", HopStatus.MISSING, "no ingress_sbox"))
        mark = expected
    elif mangle is None:
        hops.append(Hop("ingress.mark", f"ingress_sbox MARK :{P}", HopStatus.UNKNOWN, "ingress_sbox iptables not read"))
        mark = expected
    else:
        rules = port_rules(n, "ingress_sbox", mangle, "PREROUTING", "MARK", "--dport", proto, P)
        h, mark = _mark_hop(
            "ingress.mark",
            f"ingress_sbox MARK :{P}",
            rules,
            expected,
            "ingress_sbox mangle PREROUTING",
            chain=mangle.rules("PREROUTING"),
        )
        hops.append(h)
    h, ipvs_svc = _ipvs_hop("ingress.ipvs", "ingress_sbox IPVS", n, sbox, mark)
    hops.append(h)
    if ingress is not None:
        np.backends = _backends_for(cl, svc, ingress.id, ipvs_svc, h, n)
        for b in np.backends:
            _redirect(cl, b, svc, port)
    hops.append(_backends_hop("ingress.backends", "real servers -> tasks", np.backends, ipvs_svc, h))
    sbox_ip = next((a for i, a, p in ns_addresses(sbox) if ingress and in_subnet(a, ingress.subnets)), None)
    hops.append(_snat_hop("ingress.snat", "ingress_sbox SNAT", sbox, ingress.subnets if ingress else [], sbox_ip))
    vip = next((strip_prefix(v.address) for v in svc.vips if ingress and v.network_id == ingress.id), None)
    hops.append(_alias_hop("ingress.vip_alias", f"ingress VIP {vip} on ingress_sbox", sbox, vip, aux=True))
    if mangle is not None and vip:
        rules = [r for r in mangle.rules("INPUT") if r.target == "MARK" and r.value("-d") in (vip, f"{vip}/32")]
        h, _ = _mark_hop(
            "ingress.vip_mark",
            f"ingress VIP {vip} INPUT MARK",
            rules,
            expected,
            "ingress_sbox mangle INPUT",
            aux=True,
            chain=mangle.rules("INPUT"),
        )
        hops.append(h)
    verdict(np)
    return np


def _forward_hop(n: NodeCtx, hfilter: Table, proto: str, P: int) -> Hop:
    """A new connection to the port, from another host, walked through filter FORWARD to ingress_sbox
    on docker_gwbridge, and its replies back: whatever rule decides it, in whatever chain order the
    engine (or an operator) left."""
    gw_ip, _ = gwbridge_sbox_ip(n)
    label = f"host filter FORWARD :{P}"
    out = []
    for direction, pkt in (
        ("new connection", netfilter.Packet(proto, P, out_iface="docker_gwbridge", dst=gw_ip)),
        ("reply", netfilter.Packet(proto, None, sport=P, in_iface="docker_gwbridge", state="ESTABLISHED")),
    ):
        compiled = n.memo(("netfilter", id(hfilter)), dict)
        w = n.memo(
            ("forward", id(hfilter), pkt),
            lambda pkt=pkt, compiled=compiled: netfilter.walk(hfilter, "FORWARD", pkt, compiled),
        )
        trail = f"path: {' -> '.join(w.trail)}"
        if w.verdict == "drop" and w.rule is not None:
            return Hop(
                "host.forward",
                label,
                HopStatus.MISMATCH,
                f"a {direction} on {proto}/{P} is dropped by '{w.rule.line}' (filter {w.chain}) before "
                f"DOCKER-INGRESS accepts it",
                [f"filter {w.chain}: {w.rule.line}", trail],
            )
        if w.verdict == "policy-drop" and not w.maybe:
            return Hop(
                "host.forward",
                label,
                HopStatus.MISMATCH,
                f"a {direction} on {proto}/{P} reaches no ACCEPT: FORWARD policy DROP",
                [trail],
            )
        out.append(
            f"{direction}: {w.verdict}"
            + (f" by '{w.rule.line}' (filter {w.chain})" if w.rule else "")
            + f"; {trail}"
            + (f"; {len(w.maybe)} rule(s) that might match not judged" if w.maybe else "")
        )
    return Hop("host.forward", label, HopStatus.OK, "new connections and replies pass filter FORWARD", out)


def _redirect(cl: Cluster, b: Backend, svc: Service, port: PortSpec) -> None:
    """The task sandbox's REDIRECT published -> target port, on the task's node."""
    if b.status in (
        BackendState.STALE,
        BackendState.LINGERING,
        BackendState.FOREIGN,
        BackendState.UNKNOWN,
        BackendState.DRAINING,
    ) or (b.status == BackendState.STARTING and not b.container_id):
        b.redirect = HopStatus.NA if b.status != BackendState.UNKNOWN else HopStatus.UNKNOWN
        return
    if not b.container_id:  # a task known from a network inspect only: its sandbox is on a node not in the data
        b.redirect = HopStatus.UNKNOWN
        b.redirect_evidence = [f"task {b.task} runs on {b.node}, whose sandboxes are not in the data"]
        return
    task = cl.task(b.task_id)
    node = cl.node_by_id(task.node_id) if task else None
    if node is None:
        b.redirect = HopStatus.UNKNOWN
        b.redirect_evidence = [f"no snapshot of node {b.node}"]
        return
    ns = node.container_ns(b.container_id)
    t = table(ns.iptables if ns else None, "nat")
    if ns is None or t is None:
        b.redirect = HopStatus.UNKNOWN
        b.redirect_evidence = [f"task sandbox of {b.task} not read on {node.name}"]
        return
    rules = [
        r
        for r in port_rules(node, ns.name, t, "PREROUTING", "REDIRECT", "--dport", port.protocol, port.published_port)
        if (r.value("-d") or "").split("/")[0] == b.address
    ]
    if not rules:
        b.redirect = HopStatus.MISSING
        b.redirect_evidence = [
            f"{ns.name}: no REDIRECT {port.protocol}/{port.published_port} -> {port.target_port} for {b.address}"
        ]
        return
    to = rules[0].value("--to-ports") or rules[0].value("--to-port")
    b.redirect = HopStatus.OK if to == str(port.target_port) else HopStatus.MISMATCH
    b.redirect_evidence = [f"{ns.name}: {rules[0].line}"]


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
    hnat = nat(n.snap.host.iptables)
    dnats = (
        [
            r
            for r in hnat.rules("DOCKER")
            if r.target == "DNAT" and proto_port(r, port.protocol, "--dport", port.published_port)
        ]
        if hnat
        else []
    )
    ev = [f"{li.protocol} {li.address}:{li.port} held by {li.process or '?'} (pid {li.pid})" for li in ls] + [
        r.line for r in dnats
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
                    f"host nat DOCKER: {len(hnat.rules('DOCKER')) if hnat else 0} rules, "
                    f"none for {port.protocol}/{port.published_port}",
                ],
            )
        )
    verdict(np)
    return np


# --------------------------------------------------------------------------
# VIP on an overlay network


def nodes_on_network(cl: Cluster, network_id: str) -> list[NodeCtx]:
    out = []
    for n in cl.nodes:
        if n.lb_ns(network_id) or n.overlay_ns(network_id):
            out.append(n)
            continue
        if any(cn.network_id == network_id for c in n.snap.docker.containers for cn in c.networks):
            out.append(n)
    return out


def _dns_answer(n: NodeCtx, network_id: str, query: str):
    return n.dns_answer(network_id, query)


def vip_node_path(cl: Cluster, svc: Service, network_id: str, vip: str, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    hops = np.hops
    net = cl.networks.get(network_id)
    hops.append(_kernel_hop(n))
    a = _dns_answer(n, network_id, svc.name)
    if a is None:
        hops.append(Hop("dns.vip", f"DNS {svc.name} -> {vip}", HopStatus.UNKNOWN, "not asked on this node"))
    elif a.status != "ok":
        hops.append(
            Hop(
                "dns.vip",
                f"DNS {svc.name} -> {vip}",
                HopStatus.MISSING,
                f"{a.status}{': ' + a.reason if a.reason else ''}",
                [f"{a.query} @127.0.0.11 from {a.namespace}: {a.status}"],
            )
        )
    elif set(a.answers) == {vip}:  # a duplicated record is dns.duplicate-answer's
        hops.append(
            Hop(
                "dns.vip",
                f"DNS {svc.name} -> {vip}",
                HopStatus.OK,
                vip,
                [f"{a.query} -> {' '.join(a.answers)} (from {a.namespace})"],
            )
        )
    else:
        hops.append(
            Hop(
                "dns.vip",
                f"DNS {svc.name} -> {vip}",
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
    hops.append(_ns_hop("lb.ns", f"lb_ namespace of {cl.network_name(network_id)}", lb, "lb_", n))
    hops.append(
        _sysctl_hop("lb.ip_forward", "lb_ ip_forward", lb.sysctls if lb else {}, "net.ipv4.ip_forward")
        if lb
        else Hop("lb.ip_forward", "lb_ ip_forward", HopStatus.MISSING, "no lb_ namespace")
    )
    if lb is not None:
        ov = n.overlay_ns(network_id)
        br = next((i for i in ov.interfaces if i.kind == "bridge" or i.name == "br0"), None) if ov else None
        hops.append(
            links_hop(
                "lb.links", "lb_ links", lb, [(ov.name, ov.interfaces)] if ov else [], [(ov.name, br)] if ov else []
            )
        )
    hops.append(_alias_hop("lb.vip_alias", f"VIP {vip}/32 on lb_", lb, vip))
    expected = n.local_lb_index(network_id, svc.name)
    mangle = table(lb.iptables if lb else None, "mangle")
    if lb is None:
        hops.append(Hop("lb.mark", f"MARK for {vip}", HopStatus.MISSING, "no lb_ namespace"))
        mark = expected
    elif mangle is None:
        hops.append(Hop("lb.mark", f"MARK for {vip}", HopStatus.UNKNOWN, f"iptables of {lb.name} not read"))
        mark = expected
    else:
        rules = [r for r in mangle.rules("INPUT") if r.target == "MARK" and r.value("-d") in (vip, f"{vip}/32")]
        h, mark = _mark_hop(
            "lb.mark", f"MARK for {vip}", rules, expected, f"{lb.name} mangle INPUT", chain=mangle.rules("INPUT")
        )
        hops.append(h)
    h, ipvs_svc = _ipvs_hop("lb.ipvs", f"IPVS in {lb.name if lb else 'lb_'}", n, lb, mark)
    hops.append(h)
    np.backends = _backends_for(cl, svc, network_id, ipvs_svc, h, n)
    hops.append(_backends_hop("lb.backends", "real servers -> tasks", np.backends, ipvs_svc, h))
    lb_ip = next((a for i, a, p in ns_addresses(lb) if net and in_subnet(a, net.subnets) and a != vip), None)
    hops.append(_snat_hop("lb.snat", "lb_ SNAT", lb, net.subnets if net else [], lb_ip))
    verdict(np)
    return np


def dnsrr_node_path(cl: Cluster, svc: Service, network_id: str, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    expected = sorted({a for t in cl.running_tasks(svc) for a in task_addresses(t, network_id)}, key=ip_key)
    a = _dns_answer(n, network_id, svc.name)
    label = f"DNS {svc.name} -> task addresses"
    if a is None:
        np.hops.append(Hop("dns.rr", label, HopStatus.UNKNOWN, "not asked on this node"))
    elif a.status != "ok":
        np.hops.append(Hop("dns.rr", label, HopStatus.MISSING, a.status, [f"{a.query}: {a.status}"]))
    elif _dns_agrees(cl, svc, network_id, a.answers, expected, n.now):
        np.hops.append(Hop("dns.rr", label, HopStatus.OK, " ".join(a.answers), [f"{a.query} -> {' '.join(a.answers)}"]))
    else:
        np.hops.append(
            Hop(
                "dns.rr",
                label,
                HopStatus.MISMATCH,
                f"answers {' '.join(a.answers)}, running tasks {' '.join(expected)}",
                [f"{a.query} -> {' '.join(a.answers)}"],
            )
        )
    np.backends = [
        Backend(
            address=x,
            status=BackendState.OK,
            task=cl.task_name(t),
            task_id=t.id,
            task_state=t.state,
            service=svc.name,
            node=cl.node_name(t.node_id),
            container_id=t.container_id,
        )
        for t in cl.running_tasks(svc)
        for x in task_addresses(t, network_id)
    ]
    verdict(np)
    return np


def settling_addresses(cl: Cluster, svc: Service, network_id: str, now: datetime | None) -> set[str]:
    """Addresses of the service's tasks in transition: DNS may or may not hold them yet."""
    updating = lifecycle.updating(svc)
    return {
        a
        for t in cl.service_tasks(svc)
        if updating or t.id in cl.uncertain or lifecycle.in_transition(t, now)
        for a in task_addresses(t, network_id)
    }


def _dns_agrees(cl: Cluster, svc: Service, network_id: str, answers, expected, now) -> bool:
    settling = settling_addresses(cl, svc, network_id, now)
    if cl.api_source is None:  # a node alone cannot tell a drained task's entry from a lost one: see below
        return set(answers) - set(expected) <= settling
    return (set(answers) ^ set(expected)) <= settling


def _enabled_in_ipvs(n: NodeCtx, network_id: str) -> set[str]:
    """Real servers this node's load balancer for the network sends traffic to (weight above 0)."""
    lb = n.lb_ns(network_id)
    if lb is None or lb.ipvs is None or not lb.ipvs.available:
        return set()
    return {d.address for s in lb.ipvs.services for d in s.dests if d.weight}


def dns_tasks_checks(cl: Cluster, svc: Service, network_id: str) -> list[DnsCheck]:
    expected = sorted({a for t in cl.running_tasks(svc) for a in task_addresses(t, network_id)}, key=ip_key)
    out = []
    for n in cl.nodes:
        a = _dns_answer(n, network_id, f"tasks.{svc.name}")
        if a is None:
            continue
        c = DnsCheck(
            node=n.name,
            network_id=network_id,
            network=cl.network_name(network_id),
            query=a.query,
            status=HopStatus.OK,
            answers=a.answers,
            expected=expected,
        )
        if a.status != "ok":
            c.status = HopStatus.MISSING if expected else HopStatus.OK
            c.detail = a.status + (f": {a.reason}" if a.reason else "")
            c.missing = list(expected)
        else:
            settling = settling_addresses(cl, svc, network_id, n.now)
            # without a manager, a task DNS no longer answers may be one being drained (its container still
            # runs; nothing a node shows says so but its weight): missing counts only where this node's
            # load balancer still sends it traffic, so DNS and IPVS disagree
            enabled = None if cl.api_source is not None else _enabled_in_ipvs(n, network_id)
            c.missing = [
                x for x in expected if x not in a.answers and x not in settling and (enabled is None or x in enabled)
            ]
            c.extra = [x for x in a.answers if x not in expected and x not in settling]
            if c.missing or c.extra:
                c.status = HopStatus.MISMATCH
                c.detail = "; ".join(
                    p
                    for p in (
                        f"missing {' '.join(c.missing)}" if c.missing else "",
                        f"extra {' '.join(c.extra)}" if c.extra else "",
                    )
                    if p
                )
        out.append(c)
    return out


# --------------------------------------------------------------------------
# verdict and assembly


def verdict(np: NodePath, breaks: Callable[[Hop], bool] | None = None) -> None:
    """ok, broken (the first broken hop), degraded (serves, but some real servers are wrong), unknown.

    ``breaks``: once findings are known, whether a bad hop stops traffic (findings.hop_breaks); a bad
    hop that does not (only warnings: a rule order, a drained backend) makes the path degraded.
    """
    degraded = None
    for h in np.hops:
        if h.aux:
            continue
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
    if any(h.status == HopStatus.UNKNOWN for h in np.hops if not h.aux):
        h = next(h for h in np.hops if h.status == HopStatus.UNKNOWN and not h.aux)
        np.verdict, np.reason = Verdict.UNKNOWN, f"{h.label}: {h.detail}"
        return
    np.verdict, np.reason = Verdict.OK, "every hop ok"


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


def build_paths(cl: Cluster) -> list[ServicePath]:
    return [service_path(cl, s) for s in cl.services]
