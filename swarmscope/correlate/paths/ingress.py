"""A published port in ingress mode, on one node (pure): the host's nat and filter rules (DOCKER-INGRESS,
the jumps and what may shadow them, FORWARD walked as the kernel does), ingress_sbox (MARK, IPVS, SNAT,
the VIP), the real servers and the tasks' own REDIRECT.
"""

from __future__ import annotations

from dataclasses import dataclass
from sys import intern  # a text every node's path to a service repeats: one string (100 nodes: not 100)

from swarmscope.correlate.cluster import Cluster, NodeCtx, strip_prefix
from swarmscope.correlate.paths.common import (
    alias_hop,
    backends_for,
    backends_hop,
    backends_key,
    in_subnet,
    ipvs_service_hop,
    kernel_hop,
    links_hop,
    mark_hop,
    node_facts,
    node_hop,
    ns_addresses,
    ns_facts,
    ns_hop,
    snat_hop,
    subnet_addresses,
    sysctl_hop,
    verdict,
    vtep_hop,
)
from swarmscope.correlate.types import Backend, Hop, NodePath, SharedHop
from swarmscope.facts.netfilter import (
    DOCKER_INGRESS,
    DOCKER_USER,
    FILTER,
    FORWARD,
    INGRESS_JUMP_CHAINS,
    INPUT,
    MANGLE,
    NAT,
    PREROUTING,
    NetfilterFacts,
    Packet,
)
from swarmscope.model import BackendState, HopStatus, Namespace, PortSpec, Service


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


def _host_gwbridge(n: NodeCtx):
    return next((i for i in n.snap.host.interfaces if i.name == "docker_gwbridge"), None)


def _bridge(ov):
    return next((i for i in ov.interfaces if i.kind == "bridge" or i.name == "br0"), None)


def ingress_node_path(cl: Cluster, svc: Service, port: PortSpec, n: NodeCtx) -> NodePath:
    np = NodePath(node=n.name, node_id=n.node_id)
    P, proto = port.published_port, port.protocol
    assert P is not None  # analyze() maps published ports only
    ingress = cl.ingress
    mine = n.memo("ingress.node", lambda: _node_part(cl, n))  # the node's own hops: the same in each path
    hops = np.hops
    hops.extend(mine.before_host)
    # the host's part is the same on every node with the same rules and ingress_sbox address: judged once
    made = cl.memo(("ingress.host", id(mine.host), proto, P, mine.gw_ip, mine.gw_ev),
                   lambda: [SharedHop.of(h) for h in _host_hops(n, mine.host, proto, P)])
    hops.extend(made)  # the same objects in each such node's path (SharedHop: NodePath.own before changing one)
    hops.extend(mine.sbox_hops)

    sbox = mine.sbox
    labels = cl.memo(("ingress.labels", id(svc), P), lambda: _labels(cl, svc, P))
    expected = n.local_lb_index(ingress.id, svc.name) if ingress else None
    sbox_rules = mine.sbox_rules
    if sbox is None:
        hops.append(Hop("ingress.mark", labels.mark, HopStatus.MISSING, "no ingress_sbox"))
        mark = expected
    elif sbox_rules is None or not sbox_rules.read:
        hops.append(Hop("ingress.mark", labels.mark, HopStatus.UNKNOWN, "ingress_sbox iptables not read"))
        mark = expected
    else:
        h, mark = mark_hop(
            "ingress.mark",
            labels.mark,
            sbox_rules.port_marks(proto, P, PREROUTING),
            expected,
            _PRE_WHERE,
            chain=sbox_rules.lines(MANGLE, PREROUTING),
        )
        hops.append(h)
    h, ipvs_svc = ipvs_service_hop("ingress.ipvs", "ingress_sbox IPVS", n, sbox, mark)
    hops.append(h)
    if ingress is not None:
        net_id = ingress.id

        def made_backends() -> list[Backend]:
            backends = backends_for(cl, svc, net_id, ipvs_svc, h, n)
            for b in backends:
                _redirect(cl, b, svc, port)
            return backends

        # the same real servers judged once for every node with the same input (the Backends, and the list
        # of them, are shared: never changed once built)
        key = backends_key(cl, svc, net_id, ipvs_svc, h, n) + (proto, P, port.target_port)
        np.backends = cl.memo(key, made_backends)
    hops.append(backends_hop("ingress.backends", "real servers -> tasks", np.backends, ipvs_svc, h, cl))
    vh = vtep_hop(cl, svc, ingress.id, n) if ingress is not None else None
    if vh is not None:
        hops.append(vh)
    hops.append(mine.snat)
    vip = labels.vip
    hops.append(alias_hop("ingress.vip_alias", labels.alias, sbox, vip, aux=True, n=n))
    if sbox_rules is not None and sbox_rules.read and vip:
        h, _ = mark_hop(
            "ingress.vip_mark",
            labels.vip_mark,
            sbox_rules.dst_marks(vip, INPUT),
            expected,
            _INPUT_WHERE,
            aux=True,
            chain=sbox_rules.lines(MANGLE, INPUT),
        )
        hops.append(h)
    verdict(np)
    return np


_PRE_WHERE = f"ingress_sbox {MANGLE} {PREROUTING}"
_INPUT_WHERE = f"ingress_sbox {MANGLE} {INPUT}"


@dataclass(frozen=True, slots=True)
class _NodePart:
    """What a node's path to every published port shares: its own hops (judged once per node, SharedHops)
    and what the rest of each path is judged from."""

    before_host: tuple[Hop, ...]  # kernel ip_vs, the host's ip_forward
    host: NetfilterFacts  # the host's rules
    gw_ip: str | None  # ingress_sbox's docker_gwbridge address, and how it was found
    gw_ev: tuple[str, ...]
    sbox_hops: tuple[Hop, ...]  # ingress_sbox, its ip_forward (where its sysctls were read), its links
    sbox: Namespace | None
    sbox_rules: NetfilterFacts | None
    snat: Hop


def _node_part(cl: Cluster, n: NodeCtx) -> _NodePart:
    ingress = cl.ingress
    before = (
        node_hop(n, ("kernel.ipvs",), lambda: kernel_hop(n)),
        node_hop(n, ("host.ip_forward",), lambda: sysctl_hop(
            "host.ip_forward", "host ip_forward", n.snap.node.sysctls, "net.ipv4.ip_forward")),
    )
    host = node_facts(n).host.netfilter
    gw_ip, gw_ev = gwbridge_sbox_ip(n)
    sbox = n.ingress_sbox
    mid = [node_hop(n, ("ingress.sbox",), lambda: ns_hop("ingress.sbox", "ingress_sbox", sbox, "ingress_sbox", n))]
    if sbox is not None and sbox.sysctls:  # DNATed traffic is routed through the sandbox to the tasks
        mid.append(node_hop(n, ("ingress.ip_forward",), lambda: sysctl_hop(
            "ingress.ip_forward", "ingress_sbox ip_forward", sbox.sysctls, "net.ipv4.ip_forward")))
    if sbox is not None:
        ov = n.overlay_ns(ingress.id) if ingress else None
        gw = n.memo("host_gwbridge", lambda: _host_gwbridge(n))
        br = n.memo(("bridge", id(ov)), lambda: _bridge(ov)) if ov else None
        mid.append(
            node_hop(n, ("ingress.links",), lambda: links_hop(
                "ingress.links",
                "ingress_sbox links",
                sbox,
                [("host", n.snap.host.interfaces)] + ([(ov.name, ov.interfaces)] if ov else []),
                [("host", gw)] + ([(ov.name, br)] if ov else []),
                n,
            ))
        )
    sbox_ip = next(iter(subnet_addresses(n, sbox, ingress.subnets)), None) if ingress else None
    snat = node_hop(n, ("ingress.snat", sbox_ip), lambda: snat_hop(
        "ingress.snat", "ingress_sbox SNAT", n, sbox, ingress.subnets if ingress else [], sbox_ip))
    return _NodePart(
        before, host, gw_ip, tuple(gw_ev), tuple(mid), sbox,
        ns_facts(n, sbox).netfilter if sbox is not None else None, snat,
    )


@dataclass(frozen=True, slots=True)
class _Labels:
    """A published port's texts that every node's path repeats (one string for all of them) and its VIP."""

    mark: str
    vip: str | None
    alias: str
    vip_mark: str


def _labels(cl: Cluster, svc: Service, P: int) -> _Labels:
    ingress = cl.ingress
    vip = next((strip_prefix(v.address) for v in svc.vips if ingress and v.network_id == ingress.id), None)
    return _Labels(intern(f"ingress_sbox MARK :{P}"), vip, intern(f"ingress VIP {vip} on ingress_sbox"),
                   intern(f"ingress VIP {vip} {INPUT} MARK"))


def _host_hops(n: NodeCtx, host: NetfilterFacts, proto: str, P: int) -> list[Hop]:
    """The host's hops of a published port: the jumps to DOCKER-INGRESS, its DNAT, the filter ACCEPTs and
    the FORWARD walk. They depend on the node only through its host rules and ingress_sbox's
    docker_gwbridge address (the caller's memo key)."""
    hops: list[Hop] = []
    jump_label = f"host {NAT} -> {DOCKER_INGRESS}"
    if not host.read:
        hops.append(Hop("host.jump", jump_label, HopStatus.UNKNOWN, "host iptables not read"))
        hops.append(Hop("host.dnat", f"host DNAT :{P}", HopStatus.UNKNOWN, "host iptables not read"))
    else:
        jumps = {c: host.jumps(NAT, c, DOCKER_INGRESS) for c in INGRESS_JUMP_CHAINS}
        ev = [j.evidence for c in jumps for j in jumps[c]]
        if not host.has_chain(NAT, DOCKER_INGRESS):
            hops.append(
                Hop(
                    "host.jump",
                    jump_label,
                    HopStatus.MISSING,
                    f"{NAT} chain {DOCKER_INGRESS} does not exist",
                    [f"host {NAT} chains: {', '.join(host.chain_names(NAT))}"],
                )
            )
        elif not all(jumps.values()):
            miss = " and ".join(c for c in jumps if not jumps[c])
            ev = [f"host {NAT} {c}: {line}" for c in jumps for line in host.lines(NAT, c)] or [
                f"host {NAT} {'/'.join(INGRESS_JUMP_CHAINS)}: no rules"
            ]
            hops.append(Hop("host.jump", jump_label, HopStatus.MISSING, f"no jump from {miss}", ev))
        else:
            shadow = [x for c in jumps if (x := host.shadow(c, proto, P)) is not None]
            if shadow:
                x = shadow[0]
                hops.append(
                    Hop(
                        "host.jump",
                        jump_label,
                        HopStatus.MISMATCH,
                        f"{NAT} {x.chain}: '{x.evidence}' ends {proto}/{P} before Docker's jump to {DOCKER_INGRESS}",
                        [f"host {NAT} {x.chain}: {line}" for line in host.lines(NAT, x.chain)],
                    )
                )
            else:
                hops.append(
                    Hop(
                        "host.jump",
                        jump_label,
                        HopStatus.OK,
                        f"{' and '.join(INGRESS_JUMP_CHAINS)} jump (dst-type LOCAL)",
                        ev,
                    )
                )
        gw_ip, gw_ev = gwbridge_sbox_ip(n)
        dnats = host.dnats(proto, P, DOCKER_INGRESS)
        label = f"host DNAT :{P} -> {gw_ip or 'ingress_sbox'}:{P}"
        if not dnats:
            hops.append(
                Hop(
                    "host.dnat",
                    label,
                    HopStatus.MISSING,
                    f"no DNAT for {proto}/{P} in {NAT} {DOCKER_INGRESS}",
                    gw_ev,
                )
            )
        else:
            to_addr, to_port = dnats[0].to_addr, dnats[0].to_port
            ev = [f.evidence for f in dnats] + gw_ev
            if gw_ip and to_addr != gw_ip:
                hops.append(
                    Hop(
                        "host.dnat",
                        label,
                        HopStatus.MISMATCH,
                        f"DNAT to {to_addr}, but ingress_sbox is {gw_ip} on docker_gwbridge",
                        ev,
                    )
                )
            elif to_port not in (None, P):
                hops.append(Hop("host.dnat", label, HopStatus.MISMATCH, f"DNAT to port {to_port}, expected {P}", ev))
            else:
                hops.append(Hop("host.dnat", label, HopStatus.OK, f"DNAT to {to_addr}:{to_port or P}", ev))

    filter_label = f"host {FILTER} ACCEPT :{P}"
    if not host.read:
        hops.append(Hop("host.filter", filter_label, HopStatus.UNKNOWN, "host iptables not read"))
    else:
        acc = host.accepts(proto, P, "dport", DOCKER_INGRESS)
        back = host.accepts(proto, P, "sport", DOCKER_INGRESS)
        order = host.reach_order(FILTER, FORWARD)
        ev = [f.evidence for f in acc + back]
        if DOCKER_INGRESS not in order:
            hops.append(
                Hop(
                    "host.filter",
                    filter_label,
                    HopStatus.MISSING,
                    f"{FORWARD} never reaches {FILTER} {DOCKER_INGRESS}",
                    ev,
                )
            )
        elif not acc or not back:
            what = "--dport" if not acc else "--sport ESTABLISHED"
            hops.append(
                Hop(
                    "host.filter",
                    filter_label,
                    HopStatus.MISSING,
                    f"no {what} {P} ACCEPT in {FILTER} {DOCKER_INGRESS}",
                    ev,
                )
            )
        elif DOCKER_USER in order and order.index(DOCKER_USER) > order.index(DOCKER_INGRESS):
            hops.append(
                Hop(
                    "host.filter",
                    filter_label,
                    HopStatus.MISMATCH,
                    f"{FORWARD} reaches {DOCKER_INGRESS} before {DOCKER_USER}",
                    ev + [f"{FORWARD} order: {' -> '.join(order)}"],
                )
            )
        else:
            hops.append(
                Hop(
                    "host.filter",
                    filter_label,
                    HopStatus.OK,
                    f"accepted in {FILTER} {DOCKER_INGRESS}, after {DOCKER_USER}",
                    ev,
                )
            )
        if hops[-1].status in (HopStatus.OK, HopStatus.MISMATCH):
            hops.append(_forward_hop(n, host, proto, P))
        else:  # Docker's ACCEPTs are not there; a native nftables drop of the port still stops it, and is named
            dropped = _nft_forward_drop(n, proto, P)
            if dropped is not None:
                hops.append(dropped)

    return hops


def _forward_packets(n: NodeCtx, proto: str, P: int) -> tuple[tuple[str, Packet], ...]:
    """A new connection to the port from another host, DNATed to ingress_sbox on docker_gwbridge, and its reply."""
    gw_ip, _ = gwbridge_sbox_ip(n)
    return (
        ("new connection", Packet(proto, P, out_iface="docker_gwbridge", dst=gw_ip)),
        ("reply", Packet(proto, None, sport=P, in_iface="docker_gwbridge", state="ESTABLISHED")),
    )


def _nft_forward_drop(n: NodeCtx, proto: str, P: int) -> Hop | None:
    """The forward hop where a native nftables base chain on the forward hook (firewalld, ufw, an operator's
    table) drops the port's new connections or their replies; None where none does. A drop is final whatever
    the chain's priority: iptables' ACCEPT in DOCKER-INGRESS does not save the packet from it."""
    nft = node_facts(n).nft
    for direction, pkt in _forward_packets(n, proto, P):
        d = nft.drop_forwarded(pkt)
        if d is None:
            continue
        rule = d.evidence if d.evidence is not None else "policy drop"
        return Hop(
            "host.forward",
            f"host {FILTER} {FORWARD} :{P}",
            HopStatus.MISMATCH,
            f"a {direction} on {proto}/{P} is dropped by '{rule}' ({d.where}): a drop in any base chain on the "
            f"hook is final, whatever {FILTER} {FORWARD} accepts",
            [f"{d.where}: {rule}", f"path: {' -> '.join(d.trail)}"],
        )
    return None


def _forward_hop(n: NodeCtx, host: NetfilterFacts, proto: str, P: int) -> Hop:
    """A new connection to the port, from another host, walked through filter FORWARD to ingress_sbox
    on docker_gwbridge, and its replies back: whatever rule decides it, in whatever chain order the
    engine (or an operator) left; then through the native nftables chains on the forward hook."""
    label = f"host {FILTER} {FORWARD} :{P}"
    out = []
    for direction, pkt in _forward_packets(n, proto, P):
        w = host.walk(FILTER, FORWARD, pkt)
        trail = f"path: {' -> '.join(w.trail)}"
        if w.verdict == "drop" and w.evidence is not None:
            return Hop(
                "host.forward",
                label,
                HopStatus.MISMATCH,
                f"a {direction} on {proto}/{P} is dropped by '{w.evidence}' ({FILTER} {w.chain}) before "
                f"{DOCKER_INGRESS} accepts it",
                [f"{FILTER} {w.chain}: {w.evidence}", trail],
            )
        if w.verdict == "policy-drop" and not w.maybe:
            return Hop(
                "host.forward",
                label,
                HopStatus.MISMATCH,
                f"a {direction} on {proto}/{P} reaches no ACCEPT: {FORWARD} policy DROP",
                [trail],
            )
        out.append(
            f"{direction}: {w.verdict}"
            + (f" by '{w.evidence}' ({FILTER} {w.chain})" if w.evidence is not None else "")
            + f"; {trail}"
            + (f"; {w.maybe} rule(s) that might match not judged" if w.maybe else "")
        )
    dropped = _nft_forward_drop(n, proto, P)
    if dropped is not None:
        return dropped
    nft = node_facts(n).nft
    walks = nft.forward_walks(_forward_packets(n, proto, P)[0][1])
    if walks:
        out.append("native nftables forward chains: " + ", ".join(f"{w.where}: {w.verdict}" for w in walks))
    return Hop("host.forward", label, HopStatus.OK, f"new connections and replies pass {FILTER} {FORWARD}", out)


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
    key = ("redirect", b.task_id, b.container_id, b.address, b.task, b.node, port.protocol, port.published_port,
           port.target_port)
    status, evidence = cl.memo(key, lambda: _task_redirect(cl, b, port))  # the same from every node's path
    b.redirect, b.redirect_evidence = status, list(evidence)


def _task_redirect(cl: Cluster, b: Backend, port: PortSpec) -> tuple[HopStatus, list[str]]:
    """The REDIRECT of a task's sandbox, judged from the backend's task, container and address."""
    if not b.container_id:  # a task known from a network inspect only: its sandbox is on a node not in the data
        return HopStatus.UNKNOWN, [f"task {b.task} runs on {b.node}, whose sandboxes are not in the data"]
    task = cl.task(b.task_id)
    node = cl.node_by_id(task.node_id) if task else None
    if node is None:
        return HopStatus.UNKNOWN, [f"no snapshot of node {b.node}"]
    ns = node.container_ns(b.container_id)
    rules = ns_facts(node, ns).netfilter if ns is not None else None
    if ns is None or rules is None or not rules.read:
        return HopStatus.UNKNOWN, [f"task sandbox of {b.task} not read on {node.name}"]
    published = port.published_port
    assert published is not None  # ingress_node_path's port
    redirects = [f for f in rules.redirects(port.protocol, published) if f.dst == b.address]
    if not redirects:
        return HopStatus.MISSING, [
            f"{ns.name}: no REDIRECT {port.protocol}/{port.published_port} -> {port.target_port} for {b.address}"
        ]
    status = HopStatus.OK if redirects[0].to_ports == str(port.target_port) else HopStatus.MISMATCH
    return status, [f"{ns.name}: {redirects[0].evidence}"]
