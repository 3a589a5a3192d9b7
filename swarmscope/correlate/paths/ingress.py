"""A published port in ingress mode, on one node (pure): the host's nat and filter rules (DOCKER-INGRESS,
the jumps and what may shadow them, FORWARD walked as the kernel does), ingress_sbox (MARK, IPVS, SNAT,
the VIP), the real servers and the tasks' own REDIRECT.
"""

from __future__ import annotations

from swarmscope.correlate import netfilter
from swarmscope.correlate.cluster import Cluster, NodeCtx, strip_prefix
from swarmscope.correlate.paths.common import (
    alias_hop,
    backends_for,
    backends_hop,
    chain_reach_order,
    in_subnet,
    ipvs_service_hop,
    kernel_hop,
    links_hop,
    mark_hop,
    nat,
    ns_addresses,
    ns_hop,
    port_rules,
    snat_hop,
    sysctl_hop,
    table,
    verdict,
)
from swarmscope.correlate.types import Backend, Hop, NodePath
from swarmscope.model import BackendState, HopStatus, PortSpec, Rule, Service, Table
from swarmscope.parse.iptables import dnat_destination

INGRESS_CHAIN = "DOCKER-INGRESS"


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
    hops.append(kernel_hop(n))
    hops.append(sysctl_hop("host.ip_forward", "host ip_forward", n.snap.node.sysctls, "net.ipv4.ip_forward"))

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
    hops.append(ns_hop("ingress.sbox", "ingress_sbox", sbox, "ingress_sbox", n))
    if sbox is not None and sbox.sysctls:  # DNATed traffic is routed through the sandbox to the tasks
        hops.append(sysctl_hop("ingress.ip_forward", "ingress_sbox ip_forward", sbox.sysctls, "net.ipv4.ip_forward"))
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
        h, mark = mark_hop(
            "ingress.mark",
            f"ingress_sbox MARK :{P}",
            rules,
            expected,
            "ingress_sbox mangle PREROUTING",
            chain=mangle.rules("PREROUTING"),
        )
        hops.append(h)
    h, ipvs_svc = ipvs_service_hop("ingress.ipvs", "ingress_sbox IPVS", n, sbox, mark)
    hops.append(h)
    if ingress is not None:
        np.backends = backends_for(cl, svc, ingress.id, ipvs_svc, h, n)
        for b in np.backends:
            _redirect(cl, b, svc, port)
    hops.append(backends_hop("ingress.backends", "real servers -> tasks", np.backends, ipvs_svc, h))
    sbox_ip = next((a for i, a, p in ns_addresses(sbox) if ingress and in_subnet(a, ingress.subnets)), None)
    hops.append(snat_hop("ingress.snat", "ingress_sbox SNAT", sbox, ingress.subnets if ingress else [], sbox_ip))
    vip = next((strip_prefix(v.address) for v in svc.vips if ingress and v.network_id == ingress.id), None)
    hops.append(alias_hop("ingress.vip_alias", f"ingress VIP {vip} on ingress_sbox", sbox, vip, aux=True))
    if mangle is not None and vip:
        rules = [r for r in mangle.rules("INPUT") if r.target == "MARK" and r.value("-d") in (vip, f"{vip}/32")]
        h, _ = mark_hop(
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
