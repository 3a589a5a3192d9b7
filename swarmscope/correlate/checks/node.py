"""The node and its kernel: ip_vs and its conntrack, the host's sysctls, the IPVS sysctls of the load-balancer
sandboxes, the engine version against the profiles, and rules in the iptables backend the engine does not use.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import NodeCtx
from swarmscope.correlate.paths.common import node_facts, ns_facts
from swarmscope.engines import NEWEST, SUPPORTED_SINCE, newer_than_profiles, profile_for
from swarmscope.model import NsKind, Severity


@check("kernel.no-ipvs", Severity.ERROR, "kernel has no ip_vs: the routing mesh cannot be programmed",
       "Load ip_vs (`modprobe ip_vs ip_vs_rr`) or boot a kernel with CONFIG_IP_VS, then restart dockerd; "
       "until then published ports and service VIPs do not answer on this node (DNS and tasks still work).")
def check_no_ipvs(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        v = n.snap.node.ip_vs
        if v is not None and v.available is False:
            hops = [(np, h) for _, _, _, np in ctx.paths_on(n.name) if (h := np.hop("kernel.ipvs")) is not None]
            yield Hit([n.name], detail=v.detail or "", evidence=[f"{v.method}: {v.detail}"], hops=hops)


@check(
    "host.ip-forward-off",
    Severity.ERROR,
    "IP forwarding is off on the host",
    "`sysctl -w net.ipv4.ip_forward=1` (and persist it in /etc/sysctl.d); "
    "forwarded ingress traffic is dropped without it.",
)
def check_host_ip_forward(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        v = n.snap.node.sysctls.get("net.ipv4.ip_forward")
        if v == "0":
            yield Hit([n.name], detail="net.ipv4.ip_forward=0", evidence=["net.ipv4.ip_forward = 0"])


def publishes_ingress(ctx: Ctx) -> bool:
    return any(p.publish_mode == "ingress" and p.published_port for s in ctx.cluster.services for p in s.ports)


@check(
    "host.route-localnet-off",
    Severity.WARNING,
    "route_localnet is off on docker_gwbridge",
    "`sysctl -w net.ipv4.conf.docker_gwbridge.route_localnet=1`: without it 127.0.0.1:PORT on the node does not reach "
    "the routing mesh (dockerd sets it when it programs the first ingress port).",
)
def check_route_localnet(ctx: Ctx) -> Iterator[Hit]:
    if not publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        v = n.snap.node.sysctls.get("net.ipv4.conf.docker_gwbridge.route_localnet")
        if v == "0":
            yield Hit(
                [n.name], detail="route_localnet=0", evidence=["net.ipv4.conf.docker_gwbridge.route_localnet = 0"]
            )


def has_ipvs_snat(n: NodeCtx, ns) -> bool:
    """Whether the sandbox SNATs what IPVS forwards (the facts' Snat)."""
    return bool(ns_facts(n, ns).netfilter.ipvs_snats())


def _lb_sandboxes(n: NodeCtx):
    return [ns for ns in n.snap.namespaces if ns.kind in (NsKind.LB, NsKind.INGRESS_SBOX) and ns.sysctls]


@check(
    "ipvs.sysctl-unexpected",
    Severity.WARNING,
    "IPVS sysctls differ from what the engine sets",
    "Something reset the load-balancer namespace's IPVS sysctls; `docker service update --force` on an affected "
    "service, or restarting dockerd, re-applies them. Stale connections to removed tasks can hang meanwhile.",
)
def check_ipvs_sysctls(ctx: Ctx) -> Iterator[Hit]:
    """Compared with what this node's engine version writes (engines.PROFILES), per sandbox kind."""
    for n in ctx.cluster.nodes:
        prof = profile_for(n.snap.node.engine_version)
        if n.ipvs_missing or prof is None:
            continue
        for ns in _lb_sandboxes(n):
            want = dict(prof.lb_sysctls if ns.kind == NsKind.LB else prof.ingress_sysctls)
            if prof.conntrack_with_snat and has_ipvs_snat(n, ns):
                want["net.ipv4.vs.conntrack"] = "1"
            bad = {
                k: ns.sysctls.get(k)
                for k, v in want.items()
                if ns.sysctls.get(k) is not None and ns.sysctls.get(k) != v
            }
            if bad:
                yield Hit(
                    [n.name],
                    network=ns.network_name,
                    detail=f"{ns.name}: "
                    + ", ".join(f"{k}={v} (engine {prof.name}+ sets {want[k]})" for k, v in bad.items()),
                    evidence=[f"{ns.name}: {k} = {v}" for k, v in bad.items()],
                )


@check(
    "kernel.ipvs-no-conntrack",
    Severity.ERROR,
    "the kernel's IPVS has no connection tracking (IP_VS_NFCT)",
    "net.ipv4.vs.conntrack does not exist, so dockerd's fwmarker fails before it adds the MARK and SNAT rules "
    "('Failed to write to /proc/sys/net/ipv4/vs/conntrack' in dockerd's log). Use a kernel built with "
    "CONFIG_IP_VS_NFCT=y (every distribution kernel has it), then restart dockerd; re-creating services cannot help.",
)
def check_ipvs_no_conntrack(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        if n.ipvs_missing:
            continue
        for ns in _lb_sandboxes(n):
            present = [k for k, v in ns.sysctls.items() if k.startswith("net.ipv4.vs.") and v is not None]
            if present and "net.ipv4.vs.conntrack" in ns.sysctls and ns.sysctls["net.ipv4.vs.conntrack"] is None:
                yield Hit(
                    [n.name],
                    detail=f"{ns.name}: no net.ipv4.vs.conntrack",
                    evidence=[
                        f"{ns.name}: /proc/sys/net/ipv4/vs/conntrack does not exist",
                        f"{ns.name}: " + ", ".join(f"{k} = {ns.sysctls[k]}" for k in present),
                    ],
                )


#: SwarmNode.state words (swarmkit's NodeStatus) of a node the managers cannot reach
NODE_GONE_STATES = ("down", "disconnected", "unknown")


@check(
    "node.down",
    Severity.ERROR,
    "a swarm node is down: the managers cannot reach its engine",
    "Its dockerd is stopped or crashed, the machine is off, or it is cut off from the managers (2377/tcp, 7946 "
    "tcp/udp). Its published ports do not answer and its tasks are being rescheduled (global services' are not). "
    "Start dockerd on it (`systemctl start docker`) or repair its network; a node gone for good is removed with "
    "`docker node rm NODE`. A node drained on purpose is not reported.",
)
def check_node_down(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    src = next((n for n in cl.nodes if n.name == cl.api_source), None)
    if src is None:  # only a manager's API knows every node's state
        return
    for sn in src.snap.docker.nodes:
        if (sn.state or "").lower() in NODE_GONE_STATES and (sn.availability or "active") != "drain":
            yield Hit(
                [sn.hostname],
                detail=f"{sn.hostname} is {sn.state} (availability {sn.availability or '?'})",
                evidence=[f"docker node ls on {src.name}: {sn.hostname} ({sn.id[:12]}, {sn.role}"
                          + (f", {sn.address}" if sn.address else "") + f"): status {sn.state}, "
                          f"availability {sn.availability or '?'}"],
            )


@check(
    "engine.newer-than-profiles",
    Severity.INFO,
    "the engine is newer than every profile swarmscope has",
    "Judged with the newest profile; what this engine programs differently is not known to this swarmscope. "
    "Check for a newer swarmscope, and report what looks wrong with `swarmscope report`.",
)
def check_engine_newer(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        if newer_than_profiles(n.snap.node.engine_version):
            yield Hit(
                [n.name],
                detail=f"engine {n.snap.node.engine_version}, judged as {NEWEST.name}",
                evidence=[f"docker version: {n.snap.node.engine_version}; newest profile {NEWEST.name}"],
            )


@check(
    "engine.unsupported",
    Severity.WARNING,
    "the engine is older than the layouts swarmscope reads",
    "Engines before 18.06 balance VIPs inside every task's sandbox, not in lb_ namespaces; swarmscope does not "
    "judge that layout, so VIP paths on this node are unknown. Upgrade the engine (18.06 is from 2018).",
)
def check_engine_unsupported(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        prof = profile_for(n.snap.node.engine_version)
        if prof is not None and not prof.lb_sandboxes:
            yield Hit(
                [n.name],
                detail=f"engine {n.snap.node.engine_version}",
                evidence=[f"docker version: {n.snap.node.engine_version} (supported from {SUPPORTED_SINCE})"],
            )


@check(
    "iptables.backend-split",
    Severity.WARNING,
    "rules in the iptables backend the engine does not use",
    "The engine programs one backend; rules in the other (legacy vs nft) are evaluated too and can drop or "
    "redirect mesh traffic unseen. Find what writes them (a firewall tool, a container with its own iptables) "
    "and make every tool use the engine's backend.",
)
def check_backend_split(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        nf = node_facts(n)
        main = nf.engine_backend
        places = [("host", nf.host.other_netfilter)] + [
            (ns.name, nf.ns(ns).other_netfilter) for ns in n.snap.namespaces
        ]
        for where, rules in places:
            if rules.read and rules.rule_count:
                lines = rules.all_lines()
                yield Hit(
                    [n.name],
                    detail=f"{where}: {rules.rule_count} rules in {rules.backend} while the engine uses {main or '?'}",
                    evidence=[f"{where} ({rules.backend}): {ln}" for ln in lines[:5]],
                )


#: what the swarm itself needs between nodes (proto, port, what)
SWARM_PORTS: tuple[tuple[str, int, str], ...] = (
    ("udp", 4789, "VXLAN data"),
    ("tcp", 7946, "gossip"),
    ("udp", 7946, "gossip"),
    ("tcp", 2377, "cluster management"),
)


@check(
    "iptables.other-backend-drops",
    Severity.ERROR,
    "a rule in the iptables backend the engine does not use drops mesh traffic",
    "Both backends' rules are evaluated: this DROP/REJECT in the other backend (legacy vs nft) stops a published "
    "port or the swarm's own ports although the engine's rules accept them. Delete it (the evidence names it, "
    "e.g. `iptables-legacy -D ...`) and make the tool that wrote it use the engine's backend.",
)
def check_other_backend_drops(ctx: Ctx) -> Iterator[Hit]:
    published = sorted(
        {(p.protocol, p.published_port) for s in ctx.cluster.services for p in s.ports if p.published_port}
    )
    wanted = [(proto, port, f"published {proto}/{port}") for proto, port in published] + list(SWARM_PORTS)
    for n in ctx.cluster.nodes:
        nf = node_facts(n)
        places = [("host", nf.host.other_netfilter)] + [
            (ns.name, nf.ns(ns).other_netfilter)
            for ns in n.snap.namespaces
            if ns.kind in (NsKind.INGRESS_SBOX, NsKind.LB)
        ]
        for where, rules in places:
            if not rules.read:
                continue
            for f in rules.stoppers():
                hit = [what for proto, port, what in wanted if f.stops(proto, port)]
                if hit:
                    yield Hit(
                        [n.name],
                        detail=f"{where} ({rules.backend}) {f.table} {f.chain}: {f.evidence}",
                        evidence=[f"{where} ({rules.backend}) {f.table}: {f.evidence}", f"stops: {', '.join(hit)}"],
                    )


#: ESP (IP protocol 50): an encrypted overlay's VXLAN travels inside it
ESP: tuple[str, int | None, str] = ("esp", None, "ESP (encrypted overlay)")
def _peers(ctx: Ctx, n: NodeCtx) -> list[str]:
    """The other nodes' addresses: the swarm's node list (a manager's API view), every snapshot's own
    address, and the overlays' gossip peers (what a worker knows); never one of the node's own addresses
    (its peer list names itself too, and an older snapshot may not know its node address). The swarm's
    addresses are gathered once per cluster (every node asks)."""
    own = {n.snap.node.node_addr} | {a.address for a in node_facts(n).host.addresses}  # its own, by any name
    return [a for a in ctx.cluster.memo("swarm_addresses", lambda: _swarm_addresses(ctx)) if a not in own]


def _swarm_addresses(ctx: Ctx) -> list[str]:
    found: dict[str, None] = {}
    for m in ctx.cluster.nodes:
        for sn in m.snap.docker.nodes:
            if sn.address:
                found[sn.address] = None
        if m.snap.node.node_addr:
            found[m.snap.node.node_addr] = None
        for net in m.snap.docker.networks:
            for p in net.peers:
                if p.ip:
                    found[p.ip] = None
    return [a for a in found if a and a != "0.0.0.0"]


def _in_iface(n: NodeCtx, src: str | None) -> str | None:
    """The host interface a packet from ``src`` arrives on: the one whose subnet holds it (None: not known).
    Once per node and source, the host's subnets parsed once per node (every port asks of every peer)."""
    if src is None:
        return None
    return n.memo(("in_iface", src), lambda: _iface_of(n, src))


def _iface_of(n: NodeCtx, src: str) -> str | None:
    import ipaddress

    try:
        a = ipaddress.ip_address(src)
    except ValueError:
        return None
    for net, f in n.memo("host_subnets", lambda: _host_subnets(n)):
        if a in net and f.prefixlen < 32:
            return f.iface
    return None


def _host_subnets(n: NodeCtx) -> list:
    """(subnet, address fact) of the host's addresses that parse, in order."""
    import ipaddress

    out = []
    for f in node_facts(n).host.addresses:
        try:
            out.append((ipaddress.ip_network(f"{f.address}/{f.prefixlen}", strict=False), f))
        except ValueError:
            continue
    return out


def swarm_ports(ctx: Ctx, n: NodeCtx) -> list[tuple[str, int | None, str]]:
    """What other nodes send to node ``n``: VXLAN, gossip, the cluster port where it is a manager, and ESP
    where an overlay it knows is encrypted."""
    wanted: list[tuple[str, int | None, str]] = [p for p in SWARM_PORTS if p[1] != 2377]
    if n.snap.node.role == "manager":
        wanted.append(next(p for p in SWARM_PORTS if p[1] == 2377))
    nets = list(n.snap.docker.networks) + list(ctx.cluster.networks.values())
    if any(net.encrypted for net in nets):
        wanted.append(ESP)
    return wanted


@check(
    "node.swarm-ports-blocked",
    Severity.ERROR,
    "the host firewall drops the swarm's own traffic between nodes",
    "Walking the host's firewall as the kernel does (iptables of both backends, and the native nftables chains "
    "firewalld or ufw write), a packet another node sends to this one on a port the swarm needs is dropped by the "
    "rule in the evidence: 4789/udp carries the overlays' VXLAN, 7946/tcp+udp the gossip that spreads "
    "addresses, 2377/tcp the managers' Raft, ESP an encrypted overlay. Allow them from the other nodes before "
    "the drop (`nft insert rule ...`, `iptables -I INPUT -s NODE -p udp --dport 4789 -j ACCEPT`, or open them "
    "in firewalld/ufw), or delete the rule.",
)
def check_swarm_ports_blocked(ctx: Ctx) -> Iterator[Hit]:
    from swarmscope.facts.walk import Packet

    for n in ctx.cluster.nodes:
        nf = node_facts(n)
        own = n.snap.node.node_addr
        peers: list[str | None] = list(_peers(ctx, n)) or [None]
        rulesets = [r for r in (nf.host.netfilter, nf.host.other_netfilter) if r.read]
        # where no rule tests the source, every peer whose packets arrive on the same interface ends alike:
        # one walk per interface, not per peer (a swarm of N nodes: N walks per node, not N x N)
        by_source = any(r.reads_source() for r in rulesets) or nf.nft.reads_source()
        groups: dict[tuple, list[str | None]] = {}
        for src in peers:
            iface = _in_iface(n, src)
            groups.setdefault((iface, src) if by_source else (iface,), []).append(src)
        blocked: dict[tuple[str, str], dict[str, list[str | None]]] = {}  # (where, rule) -> port -> sources
        for proto, port, what in swarm_ports(ctx, n):
            label = f"{port}/{proto} ({what})" if port is not None else what
            for key_, srcs in groups.items():
                src = srcs[0] if by_source else None
                pkt = Packet(proto, port, in_iface=key_[0], dst=own, dst_local=True, src=src)
                for rules in rulesets:
                    found = rules.drop_to_local(pkt)
                    if found is not None:
                        table, w = found
                        rule = w.evidence if w.evidence is not None else f"policy drop ({' -> '.join(w.trail)})"
                        key = (f"iptables ({rules.backend}) {table} {w.chain}", rule)
                        blocked.setdefault(key, {}).setdefault(label, []).extend(srcs)
                d = nf.nft.drop_to_local(pkt)
                if d is not None:
                    rule = d.evidence if d.evidence is not None else f"policy drop ({' -> '.join(d.trail)})"
                    key = (d.where + (f" chain {d.decided_in}" if d.decided_in != d.chain else ""), rule)
                    blocked.setdefault(key, {}).setdefault(label, []).extend(srcs)
        order = {src: i for i, src in enumerate(peers)}  # the sources in peer order, as one walk each gave them
        for ports in blocked.values():
            for srcs in ports.values():
                srcs.sort(key=order.__getitem__)
        for (where, rule), ports in blocked.items():
            stops = "; ".join(f"{label} from {', '.join(dict.fromkeys(s or 'any node' for s in srcs))}"
                              for label, srcs in ports.items())
            yield Hit(
                [n.name],
                detail=f"{where}: '{rule}' drops {', '.join(ports)}",
                evidence=[f"{where}: {rule}", f"drops: {stops}"],
            )
