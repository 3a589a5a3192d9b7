"""Findings: small registered checks, one function each (pure).

Every check has a stable id, a severity, a title and a hint a user can act on.
A check yields ``Hit``s (nodes, evidence, the hops it is about); the runner
turns them into ``Finding``s, merges the same fault seen on several nodes,
tags the hops, and groups symptoms under their root cause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from swarmscope.correlate import lifecycle
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, strip_prefix
from swarmscope.correlate.paths import settling_addresses
from swarmscope.correlate.types import Finding, Hop, NodePath, ServicePath
from swarmscope.engines import NEWEST, SUPPORTED_SINCE, newer_than_profiles, profile_for
from swarmscope.model import BackendState, HopStatus, NsKind, Severity, Verdict

SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
#: the one policy for verdicts and exit codes: a finding of these severities means traffic stops. A path
#: is broken only at a hop that carries one (or at a bad hop no check explains), and `check` fails (exit 1)
#: exactly when there is one -- so a BROKEN path and exit 0 cannot go together.
BREAKING = frozenset({Severity.ERROR})


@dataclass
class Hit:
    nodes: list[str] = field(default_factory=list)
    service: str | None = None
    network: str | None = None
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)


@dataclass
class Ctx:
    cluster: Cluster
    paths: list[ServicePath]

    def node_paths(self, which: str = "all") -> Iterator[tuple[ServicePath, str, str | None, NodePath]]:
        """(service path, kind, network or port label, node path) for every node path."""
        for sp in self.paths:
            if which in ("all", "ports"):
                for pp in sp.ports:
                    for np in pp.nodes:
                        yield sp, pp.mode, f"{pp.protocol}/{pp.published}", np
            if which in ("all", "vips"):
                for vp in sp.vip_paths:
                    for np in vp.nodes:
                        yield sp, "vip", vp.network, np


@dataclass
class CheckSpec:
    id: str
    severity: Severity
    title: str
    hint: str
    fn: Callable[[Ctx], Iterable[Hit]]


REGISTRY: list[CheckSpec] = []
SEVERITY: dict[str, Severity] = {}  # finding id -> severity, filled as checks register


def _register(spec: CheckSpec) -> None:
    REGISTRY.append(spec)
    SEVERITY[spec.id] = spec.severity


def check(id: str, severity: Severity, title: str, hint: str):
    def deco(fn: Callable[[Ctx], Iterable[Hit]]):
        _register(CheckSpec(id, severity, title, hint, fn))
        return fn

    return deco


def hop_check(id: str, severity: Severity, title: str, hint: str, key: str | tuple[str, ...],
              statuses: tuple[HopStatus, ...] = (HopStatus.MISSING, HopStatus.MISMATCH), which: str = "all",
              per_service: bool = True):
    """Register a check that fires where a path hop has one of ``statuses``.

    ``per_service=False`` for hops that belong to the network on the node, not to one service (the
    lb_ namespace's sysctls): every service's path crosses them, and the finding is one per network.
    """

    keys = (key,) if isinstance(key, str) else tuple(key)

    def fn(ctx: Ctx) -> Iterator[Hit]:
        for sp, kind, label, np in ctx.node_paths(which):
            h = next((x for x in map(np.hop, keys) if x is not None), None)
            if h is not None and h.status in statuses:
                net = label if kind == "vip" else None
                where = f"{label}: " if kind != "vip" and per_service else ""
                yield Hit([np.node], sp.name if per_service else None, net, f"{where}{h.detail}", list(h.evidence), [h])

    fn.__name__ = "check_" + id.replace(".", "_").replace("-", "_")
    _register(CheckSpec(id, severity, title, hint, fn))
    return fn


# --------------------------------------------------------------------------
# node and kernel


@check("kernel.no-ipvs", Severity.ERROR, "kernel has no ip_vs: the routing mesh cannot be programmed",
       "Load ip_vs (`modprobe ip_vs ip_vs_rr`) or boot a kernel with CONFIG_IP_VS, then restart dockerd; "
       "until then published ports and service VIPs do not answer on this node (DNS and tasks still work).")
def check_no_ipvs(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        v = n.snap.node.ip_vs
        if v is not None and v.available is False:
            hops = [np.hop("kernel.ipvs") for _, _, _, np in ctx.node_paths() if np.node == n.name]
            yield Hit(
                [n.name], detail=v.detail or "", evidence=[f"{v.method}: {v.detail}"], hops=[h for h in hops if h]
            )


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


def _publishes_ingress(ctx: Ctx) -> bool:
    return any(p.publish_mode == "ingress" and p.published_port for s in ctx.cluster.services for p in s.ports)


@check(
    "host.route-localnet-off",
    Severity.WARNING,
    "route_localnet is off on docker_gwbridge",
    "`sysctl -w net.ipv4.conf.docker_gwbridge.route_localnet=1`: without it 127.0.0.1:PORT on the node does not reach "
    "the routing mesh (dockerd sets it when it programs the first ingress port).",
)
def check_route_localnet(ctx: Ctx) -> Iterator[Hit]:
    if not _publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        v = n.snap.node.sysctls.get("net.ipv4.conf.docker_gwbridge.route_localnet")
        if v == "0":
            yield Hit(
                [n.name], detail="route_localnet=0", evidence=["net.ipv4.conf.docker_gwbridge.route_localnet = 0"]
            )


def _has_ipvs_snat(ns) -> bool:
    t = ns.iptables.table("nat") if ns.iptables and ns.iptables.available else None
    return t is not None and any(r.target == "SNAT" and r.has_match("ipvs") for r in t.rules("POSTROUTING"))


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
            if prof.conntrack_with_snat and _has_ipvs_snat(ns):
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
        b = n.snap.node.iptables
        main = b.engine_backend if b else None
        places = [("host", n.snap.host.iptables_other)] + [(ns.name, ns.iptables_other) for ns in n.snap.namespaces]
        for where, d in places:
            if d is not None and d.available and d.rule_count:
                lines = [r.line for t in d.tables.values() for c in t.chains.values() for r in c.rules]
                yield Hit(
                    [n.name],
                    detail=f"{where}: {d.rule_count} rules in {d.backend} while the engine uses {main or '?'}",
                    evidence=[f"{where} ({d.backend}): {ln}" for ln in lines[:5]],
                )


#: what the swarm itself needs between nodes (proto, port, what)
SWARM_PORTS = (
    ("udp", 4789, "VXLAN data"),
    ("tcp", 7946, "gossip"),
    ("udp", 7946, "gossip"),
    ("tcp", 2377, "cluster management"),
)


def _stops(rule, proto: str, port: int) -> bool:
    """Whether a DROP/REJECT rule can stop packets of proto/port (no protocol or port restriction
    that excludes them; interface and address conditions are not judged, so they count)."""
    if rule.target not in ("DROP", "REJECT"):
        return False
    p = rule.option("-p")
    if p is not None and (p.value != proto) != p.negated:
        return False
    for opt in ("--dport", "--dports"):
        d = rule.option(opt)
        if d is None:
            continue
        ports: set[int] = set()
        for part in (d.value or "").split(","):
            lo, _, hi = part.partition(":")
            if lo.isascii() and lo.isdigit() and (not hi or (hi.isascii() and hi.isdigit())):
                ports.update(range(int(lo), int(hi or lo) + 1))
        if (port in ports) == d.negated:
            return False
    return True


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
        places = [("host", n.snap.host.iptables_other)] + [
            (ns.name, ns.iptables_other) for ns in n.snap.namespaces if ns.kind in (NsKind.INGRESS_SBOX, NsKind.LB)
        ]
        for where, d in places:
            if d is None or not d.available:
                continue
            for t in d.tables.values():
                for c in t.chains.values():
                    for r in c.rules:
                        hit = [what for proto, port, what in wanted if _stops(r, proto, port)]
                        if hit:
                            yield Hit(
                                [n.name],
                                detail=f"{where} ({d.backend}) {t.name} {c.name}: {r.line}",
                                evidence=[f"{where} ({d.backend}) {t.name}: {r.line}", f"stops: {', '.join(hit)}"],
                            )


# --------------------------------------------------------------------------
# host rules for the ingress mesh


@check(
    "ingress.chain-missing",
    Severity.ERROR,
    "nat chain DOCKER-INGRESS is missing",
    "The host's ingress rules are gone (a firewall reload such as `firewall-cmd --reload` or `iptables -F` "
    "removes them, or they were never programmed). Restart dockerd on the node to re-program them.",
)
def check_chain_missing(ctx: Ctx) -> Iterator[Hit]:
    if not _publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        d = n.snap.host.iptables
        if d is not None and d.available and "DOCKER-INGRESS" not in d.table("nat").chains:
            hops = [
                np.hop("host.jump") for _, k, _, np in ctx.node_paths("ports") if np.node == n.name and k == "ingress"
            ]
            yield Hit(
                [n.name],
                detail="no DOCKER-INGRESS chain in the host nat table",
                evidence=[f"host nat chains: {', '.join(d.table('nat').chains)}"],
                hops=[h for h in hops if h],
            )


@check(
    "ingress.jump-missing",
    Severity.ERROR,
    "no jump to DOCKER-INGRESS from nat PREROUTING/OUTPUT",
    "Restart dockerd on the node to re-create the jump rules; check that no firewall script deletes them.",
)
def check_jump_missing(ctx: Ctx) -> Iterator[Hit]:
    if not _publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        d = n.snap.host.iptables
        if d is None or not d.available:
            continue
        t = d.table("nat")
        if "DOCKER-INGRESS" not in t.chains:
            continue
        missing = [c for c in ("PREROUTING", "OUTPUT") if not any(r.target == "DOCKER-INGRESS" for r in t.rules(c))]
        if missing:
            ev = [f"host nat {c}: {r.line}" for c in missing for r in t.rules(c)] or [
                f"host nat {' and '.join(missing)}: no rules"
            ]
            yield Hit([n.name], detail=f"no jump from {' and '.join(missing)}", evidence=ev)


@check(
    "ingress.jump-duplicated",
    Severity.WARNING,
    "jump rules to DOCKER-INGRESS are duplicated",
    "Harmless for routing but a sign of a script re-adding rules; remove the duplicates or restart dockerd.",
)
def check_jump_duplicated(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        d = n.snap.host.iptables
        if d is None or not d.available:
            continue
        for tname, chains in (("nat", ("PREROUTING", "OUTPUT")), ("filter", ("FORWARD", "DOCKER-FORWARD"))):
            t = d.table(tname)
            for c in chains:
                jumps = [r for r in t.rules(c) if r.target == "DOCKER-INGRESS"]
                if len(jumps) > 1:
                    yield Hit(
                        [n.name], detail=f"{tname} {c} jumps {len(jumps)} times", evidence=[r.line for r in jumps]
                    )


hop_check(
    "ingress.jump-shadowed",
    Severity.ERROR,
    "a rule ends the published port's packets before Docker's jump",
    "A rule in nat PREROUTING/OUTPUT ahead of `-m addrtype --dst-type LOCAL -j DOCKER-INGRESS` (an "
    "ACCEPT/RETURN, or its own DNAT/REDIRECT of the port) keeps the port's packets from ever reaching "
    "DOCKER-INGRESS. Remove it or move it after Docker's jump (the evidence names it); duplicates of "
    "Docker's own jump are harmless, a rule like this is not.",
    "host.jump",
    (HopStatus.MISMATCH,),
    "ports",
)
hop_check(
    "ingress.dnat-missing",
    Severity.ERROR,
    "no DNAT for the published port in DOCKER-INGRESS",
    "Restart dockerd on the node (or `docker service update --force SERVICE`) to re-program the port; "
    "check for a firewall reload that flushed the nat table.",
    "host.dnat",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.dnat-wrong-target",
    Severity.ERROR,
    "DNAT for the published port points to the wrong address",
    "The DNAT target must be ingress_sbox's address on docker_gwbridge; stale rules from an older "
    "docker_gwbridge survive. Restart dockerd on the node to flush and re-program DOCKER-INGRESS.",
    "host.dnat",
    (HopStatus.MISMATCH,),
    "ports",
)
hop_check(
    "ingress.filter-accept-missing",
    Severity.ERROR,
    "filter rules do not accept the published port",
    "filter DOCKER-INGRESS must ACCEPT --dport and --sport ESTABLISHED for the port and be reached from "
    "FORWARD; restart dockerd to re-program it.",
    "host.filter",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.forward-dropped",
    Severity.ERROR,
    "filter FORWARD drops the published port's traffic",
    "Walking filter FORWARD as the kernel does, the port's new connections (or their replies) hit the rule in "
    "the evidence before DOCKER-INGRESS accepts them: an operator's DROP in DOCKER-USER, or a chain order "
    "Docker does not make (on 28.x DOCKER-INGRESS must come first in DOCKER-FORWARD, before DOCKER-BRIDGE's "
    "`! -i docker_gwbridge -o docker_gwbridge -j DROP`). Delete or narrow that rule, or restart dockerd to "
    "re-create its chains in order.",
    "host.forward",
    (HopStatus.MISMATCH, HopStatus.MISSING),
    "ports",
)
hop_check(
    "ingress.forward-order",
    Severity.WARNING,
    "FORWARD reaches DOCKER-INGRESS before DOCKER-USER",
    "DOCKER-USER must be the first jump in FORWARD so user rules apply to published ports; re-insert "
    "`-I FORWARD -j DOCKER-USER` or restart dockerd.",
    "host.filter",
    (HopStatus.MISMATCH,),
    "ports",
)
hop_check(
    "ingress.sandbox-missing",
    Severity.ERROR,
    "ingress_sbox namespace is missing",
    "The node's ingress sandbox is gone: restart dockerd; if it persists, leave and re-join the swarm "
    "or recreate the ingress network.",
    "ingress.sbox",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.mark-missing",
    Severity.ERROR,
    "no MARK rule for the published port in ingress_sbox",
    "ingress_sbox mangle PREROUTING must mark the port with the service's LocalLBIndex; "
    "`docker service update --force SERVICE` re-programs it.",
    "ingress.mark",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.mark-mismatch",
    Severity.ERROR,
    "ingress_sbox marks the port with a mark that is not the node's LocalLBIndex",
    "The rule is stale (left from an earlier service using the port); `docker service update --force SERVICE` "
    "or restarting dockerd re-programs it.",
    "ingress.mark",
    (HopStatus.MISMATCH,),
    "ports",
)
hop_check(
    "ingress.ipvs-service-missing",
    Severity.ERROR,
    "no IPVS service for the port's firewall mark in ingress_sbox",
    "`docker service update --force SERVICE` re-creates the IPVS service; check dockerd's log for "
    "'Failed to create a new service for vip'.",
    "ingress.ipvs",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.snat-missing",
    Severity.ERROR,
    "no IPVS SNAT rule in ingress_sbox",
    "Without `-m ipvs --ipvs -d <ingress subnet> -j SNAT` replies from tasks on other nodes bypass the "
    "sandbox; restart dockerd on the node.",
    "ingress.snat",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "ports",
)
hop_check(
    "ingress.vip-alias-missing",
    Severity.WARNING,
    "the service's ingress VIP is not on ingress_sbox",
    "dockerd adds the VIP as a /32 alias when it creates the IPVS service; `docker service update --force SERVICE`.",
    "ingress.vip_alias",
    (HopStatus.MISSING,),
    "ports",
)
hop_check(
    "ingress.vip-mark-missing",
    Severity.WARNING,
    "no INPUT MARK for the ingress VIP in ingress_sbox",
    "`docker service update --force SERVICE` re-programs it.",
    "ingress.vip_mark",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "ports",
)
hop_check(
    "host.port-unbound",
    Severity.ERROR,
    "host-mode published port is not bound on a node that runs a task",
    "Check the task's container: with mode=host, dockerd maps the port only while the task runs; "
    "`docker service ps SERVICE` shows why it is not.",
    "host.bound",
    (HopStatus.MISSING,),
    "ports",
)


@check(
    "ingress.sandbox-incomplete",
    Severity.ERROR,
    "ingress_sbox exists but the engine has no working ingress endpoint for it",
    "The ingress sandbox was only half created: the ingress network lists no `ingress-sbox` endpoint on this "
    "node, or the sandbox lacks the load-balancer address the engine gave it (dockerd's log then shows "
    "'Failed to find a load balancer IP to use for network'). Restart dockerd on the node; if it persists, "
    "recreate the ingress network with a larger subnet.",
)
def check_sandbox_incomplete(ctx: Ctx) -> Iterator[Hit]:
    if not _publishes_ingress(ctx):
        return
    for n in ctx.cluster.nodes:
        sbox = n.ingress_sbox
        net = next((x for x in n.snap.docker.networks if x.ingress), None)
        if sbox is None or net is None or not sbox.interfaces:
            continue
        ep = next((c for c in net.containers if c.key == "ingress-sbox"), None)
        have = [f"{i.name} {a.address}/{a.prefixlen}" for i in sbox.interfaces for a in i.addresses if a.family == 4]
        if ep is None:
            yield Hit(
                [n.name],
                detail=f"network {net.name} lists no ingress-sbox endpoint",
                evidence=[
                    f"docker network inspect {net.name}: endpoints "
                    + (", ".join(c.name or c.key for c in net.containers) or "none"),
                    f"ingress_sbox addresses: {', '.join(have) or 'none'}",
                ],
            )
            continue
        ip = strip_prefix(ep.ipv4)
        if ip and not any(a.address == ip for i in sbox.interfaces for a in i.addresses):
            yield Hit(
                [n.name],
                detail=f"ingress_sbox lacks its load-balancer address {ip} on {net.name}",
                evidence=[
                    f"docker network inspect {net.name}: ingress-sbox {ep.ipv4}",
                    f"ingress_sbox addresses: {', '.join(have) or 'none'}",
                ],
            )


@check(
    "ingress.redirect-missing",
    Severity.ERROR,
    "a task sandbox has no REDIRECT from published to target port",
    "The task's own nat PREROUTING must REDIRECT the published port to the target port; "
    "`docker service update --force SERVICE` replaces the task.",
)
def check_redirect(ctx: Ctx) -> Iterator[Hit]:
    seen = set()
    cl = ctx.cluster
    for sp, _kind, label, np in ctx.node_paths("ports"):
        for b in np.backends:  # a task in its first seconds may not have its rule yet
            if (
                b.redirect not in (HopStatus.MISSING, HopStatus.MISMATCH)
                or b.status == BackendState.STARTING
                or (b.task_id, label) in seen
            ):
                continue
            t = cl.task(b.task_id)
            where = cl.node_by_id(t.node_id) if t is not None else None
            if t is not None and lifecycle.starting(t, where.now if where else None):
                continue  # a real server already (IPVS has it), its own sandbox not yet done
            seen.add((b.task_id, label))
            yield Hit(
                [b.node or "?"],
                sp.name,
                detail=f"{label}: task {b.task} ({b.address})",
                evidence=list(b.redirect_evidence),
            )


# --------------------------------------------------------------------------
# VIP load balancing on overlay networks


@check(
    "lb.namespace-missing",
    Severity.ERROR,
    "no lb_ namespace for a network with VIP services on this node",
    "dockerd creates lb_<network> when the first task of the network starts on the node; restart dockerd, "
    "or remove and recreate the service's tasks (`docker service update --force`).",
)
def check_lb_missing(ctx: Ctx) -> Iterator[Hit]:
    seen = set()
    for _sp, _kind, net, np in ctx.node_paths("vips"):
        h = np.hop("lb.ns")
        if h is not None and h.status == HopStatus.MISSING and (np.node, net) not in seen:
            seen.add((np.node, net))
            yield Hit([np.node], network=net, detail=f"network {net}", evidence=list(h.evidence), hops=[h])


hop_check(
    "link.down",
    Severity.ERROR,
    "a link on the path is down",
    "An interface a packet must cross (a sandbox's veth, its other end on docker_gwbridge or the overlay "
    "bridge, or the bridge itself) is down: `ip link set DEV up` in the namespace the evidence names "
    "(`nsenter --net=/var/run/docker/netns/NAME`), then find what took it down; restarting dockerd "
    "recreates the sandboxes.",
    ("ingress.links", "lb.links"),
    (HopStatus.MISSING,),
    "all",
    per_service=False,
)
hop_check(
    "lb.ip-forward-off",
    Severity.ERROR,
    "IP forwarding is off in the load-balancer namespace",
    "dockerd never writes ip_forward in lb_ namespaces: each copies the host's value when it is created. Turn "
    "it on now with `nsenter --net=/var/run/docker/netns/lb_<id> sysctl -w net.ipv4.ip_forward=1`, and keep "
    "net.ipv4.ip_forward=1 on the host (/etc/sysctl.d) so the next lb_ namespace starts with it; restarting "
    "dockerd does not fix a host whose own setting turns it off.",
    "lb.ip_forward",
    (HopStatus.MISMATCH,),
    "vips",
    per_service=False,
)
hop_check(
    "ingress.ip-forward-off",
    Severity.ERROR,
    "IP forwarding is off in ingress_sbox",
    "Published-port traffic is routed through ingress_sbox to the tasks; dockerd never writes ip_forward "
    "there (the sandbox copies the host's value when it is created). `nsenter --net=/var/run/docker/netns/"
    "ingress_sbox sysctl -w net.ipv4.ip_forward=1`, and keep net.ipv4.ip_forward=1 on the host (/etc/sysctl.d).",
    "ingress.ip_forward",
    (HopStatus.MISMATCH,),
    "ports",
    per_service=False,
)
hop_check(
    "vip.alias-missing",
    Severity.ERROR,
    "the service VIP is not on its lb_ namespace",
    "The /32 alias lets the lb_ sandbox accept VIP traffic; `docker service update --force SERVICE` re-adds it.",
    "lb.vip_alias",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "vips",
)
hop_check(
    "vip.mark-missing",
    Severity.ERROR,
    "no MARK rule for the service VIP",
    "lb_ mangle INPUT must mark the VIP with the service's LocalLBIndex; `docker service update --force SERVICE`.",
    "lb.mark",
    (HopStatus.MISSING,),
    "vips",
)
hop_check(
    "vip.mark-mismatch",
    Severity.ERROR,
    "the VIP is marked with a value that is not the node's LocalLBIndex",
    "A stale rule from an earlier service; `docker service update --force SERVICE` or restart dockerd.",
    "lb.mark",
    (HopStatus.MISMATCH,),
    "vips",
)
hop_check(
    "vip.ipvs-service-missing",
    Severity.ERROR,
    "no IPVS service for the VIP's firewall mark",
    "`docker service update --force SERVICE` re-creates it; check dockerd's log for IPVS errors.",
    "lb.ipvs",
    (HopStatus.MISSING,),
    "vips",
)
hop_check(
    "vip.snat-missing",
    Severity.ERROR,
    "no IPVS SNAT rule in the lb_ namespace",
    "Restart dockerd on the node to re-program the lb_ sandbox.",
    "lb.snat",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "vips",
)


def _backend_check(id: str, severity: Severity, title: str, hint: str, status: BackendState):
    def fn(ctx: Ctx) -> Iterator[Hit]:
        for sp, kind, label, np in ctx.node_paths():
            for b in np.backends:
                if b.status != status:
                    continue
                where = f"network {label}" if kind == "vip" else label
                owner = f" (task {b.task} {b.task_state} of {b.service})" if b.task else ""
                key = "ingress.backends" if kind != "vip" else "lb.backends"
                h = np.hop(key)
                yield Hit(
                    [np.node],
                    sp.name,
                    label if kind == "vip" else None,
                    f"{where}: {b.address}{owner}",
                    [e for e in (h.evidence if h else []) if b.address in e] or [f"{b.address} {status}"],
                    [h] if h else [],
                )

    fn.__name__ = "check_" + id.replace(".", "_").replace("-", "_")
    _register(CheckSpec(id, severity, title, hint, fn))


@check(
    "ipvs.no-usable-backend",
    Severity.ERROR,
    "IPVS has real servers but none can take a connection",
    "Every real server is drained (weight 0), stale or another service's: new connections to the port or VIP "
    "on this node fail. `docker service update --force SERVICE` rebuilds the table; the other findings on "
    "this path say which real servers are wrong.",
)
def check_no_usable_backend(ctx: Ctx) -> Iterator[Hit]:
    for sp, kind, label, np in ctx.node_paths():
        key = "lb.backends" if kind == "vip" else "ingress.backends"
        h = np.hop(key)
        if (
            h is None
            or h.status != HopStatus.MISSING
            or not np.backends
            or any(b.status in (BackendState.OK, BackendState.DRAINING, BackendState.STARTING) for b in np.backends)
        ):
            continue
        if not any(b.weight is not None for b in np.backends):  # no IPVS entry at all: the other checks say why
            continue
        yield Hit([np.node], sp.name, label if kind == "vip" else None, f"{label}: {h.detail}", list(h.evidence), [h])


_backend_check(
    "ipvs.backend-stale",
    Severity.ERROR,
    "IPVS real server with no running task (stale)",
    "Connections are sent to an address nothing answers on. `docker service update --force SERVICE` "
    "rebuilds the table; if it comes back, restart dockerd on the node.",
    BackendState.STALE,
)
_backend_check(
    "ipvs.backend-missing",
    Severity.ERROR,
    "running task missing from IPVS",
    "The task gets no traffic through the VIP/port on this node; `docker service update --force SERVICE`, "
    "and look for 'Failed to create real server' in dockerd's log.",
    BackendState.MISSING,
)
_backend_check(
    "ipvs.weight-zero",
    Severity.WARNING,
    "running task has IPVS weight 0",
    "Weight 0 is how dockerd drains a task it is removing; on a running task it gets no new connections. "
    "`docker service update --force SERVICE` resets it.",
    BackendState.WEIGHT0,
)
_backend_check(
    "ipvs.weight-zero-lingering",
    Severity.WARNING,
    "weight-0 real server lingers after its task is gone",
    "dockerd should delete drained real servers; a lingering one is harmless for traffic but shows the "
    "engine missed the removal. Restart dockerd on the node if it persists.",
    BackendState.LINGERING,
)
_backend_check(
    "ipvs.backend-foreign",
    Severity.ERROR,
    "IPVS real server belongs to another service",
    "Traffic for this service reaches another service's task: an address was reused while the old "
    "entry stayed. `docker service update --force` both services.",
    BackendState.FOREIGN,
)


# --------------------------------------------------------------------------
# DNS


hop_check(
    "dns.vip-mismatch",
    Severity.ERROR,
    "DNS for the service name does not answer its VIP",
    "The embedded resolver (127.0.0.11) answers what the node's service discovery holds; a wrong or missing "
    "answer means gossip is out of sync: check `docker network inspect -v NETWORK` on the node.",
    "dns.vip",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "vips",
)
hop_check(
    "dns.rr-mismatch",
    Severity.ERROR,
    "DNS round-robin answers differ from the running tasks",
    "With endpoint_mode dnsrr the resolver must answer every running task's address; check "
    "`docker network inspect -v NETWORK` on the node.",
    "dns.rr",
    (HopStatus.MISSING, HopStatus.MISMATCH),
    "vips",
)


@check(
    "dns.tasks-mismatch",
    Severity.ERROR,
    "tasks.<service> answers differ from the running tasks",
    "The node's service discovery is out of sync with the swarm: addresses missing or extra. "
    "Check the network's gossip (`docker network inspect -v NETWORK`, Peers) and dockerd's log on the node.",
)
def check_dns_tasks(ctx: Ctx) -> Iterator[Hit]:
    for sp in ctx.paths:
        for c in sp.dns:
            if c.status in (HopStatus.MISSING, HopStatus.MISMATCH):
                yield Hit(
                    [c.node],
                    sp.name,
                    c.network,
                    f"{c.query} on {c.network}: {c.detail}",
                    [f"{c.query} -> {' '.join(c.answers) or c.detail}", f"running tasks: {' '.join(c.expected)}"],
                )


@check(
    "dns.duplicate-answer",
    Severity.WARNING,
    "the embedded DNS answers the same address more than once",
    "The node's service discovery holds two records for one address (typically a task removed while another "
    "got its address, and the old record stayed): round-robin clients favour that task, and the stale record "
    "can outlive it. `docker service update --force SERVICE` re-registers the records; if it persists, "
    "restart dockerd on the node.",
)
def check_dns_duplicates(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        for a in n.snap.dns:
            dup = sorted({x for x in a.answers if a.answers.count(x) > 1}, key=ip_key)
            if a.status == "ok" and dup:
                yield Hit(
                    [n.name],
                    a.query.removeprefix("tasks."),
                    a.network_name,
                    f"{a.query} on {a.network_name}: {' '.join(dup)} answered more than once",
                    [f"{a.query} -> {' '.join(a.answers)} (from {a.namespace})"],
                )


@check(
    "dns.nodes-differ",
    Severity.WARNING,
    "DNS answers differ between nodes",
    "Nodes disagree about the service: one node's service discovery lags. Compare "
    "`docker network inspect -v NETWORK` on the nodes; check the gossip ports (7946 tcp/udp) between them.",
)
def check_dns_differ(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    by_name = {s.name: s for s in cl.services}
    groups: dict[tuple[str, str], dict[tuple, list[str]]] = {}
    for n in cl.nodes:
        for a in n.snap.dns:
            if a.status in ("timeout", "error"):
                continue
            svc = by_name.get(a.query.removeprefix("tasks."))
            # addresses of tasks being replaced reach the nodes' DNS a moment apart
            settling = settling_addresses(cl, svc, a.network_id, n.now) if svc else set()
            answers = tuple(sorted((x for x in a.answers if x not in settling), key=ip_key))
            groups.setdefault((a.network_name, a.query), {}).setdefault(answers, []).append(n.name)
    for (net, query), by_answer in sorted(groups.items()):
        if len(by_answer) > 1:
            yield Hit(
                sorted({x for v in by_answer.values() for x in v}),
                query.removeprefix("tasks."),
                net,
                f"{query} on {net}: {len(by_answer)} different answers",
                [f"{', '.join(nodes)}: {' '.join(a) or 'no address'}" for a, nodes in by_answer.items()],
            )


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


# --------------------------------------------------------------------------
# root causes: one cause shown once, with the count of what it explains

NO_IPVS_SYMPTOMS = {
    "ingress.chain-missing",
    "ingress.jump-missing",
    "ingress.dnat-missing",
    "ingress.filter-accept-missing",
    "ingress.mark-missing",
    "ingress.ipvs-service-missing",
    "ingress.snat-missing",
    "ingress.vip-alias-missing",
    "ingress.vip-mark-missing",
    "vip.alias-missing",
    "vip.mark-missing",
    "vip.ipvs-service-missing",
    "vip.snat-missing",
    "ipvs.backend-missing",
    "host.route-localnet-off",
}
ROOT_CAUSES: list[tuple[str, set[str], bool]] = [
    # (root id, ids it explains on the same node(s), must the network match too)
    ("kernel.no-ipvs", NO_IPVS_SYMPTOMS, False),
    ("iptables.other-backend-drops", {"iptables.backend-split"}, False),
    # fwmarker exits before adding the MARK and SNAT rules: the IPVS services get no traffic
    (
        "kernel.ipvs-no-conntrack",
        {
            "ingress.mark-missing",
            "ingress.snat-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "vip.snat-missing",
            "ipvs.sysctl-unexpected",
        },
        False,
    ),
    # collector-backed causes (correlate/causes.py): a module or extension dockerd's next step needs is not there.
    # configureFWMark adds the port MARKs, then the ipvs SNAT, then the VIP's INPUT MARK, and returns on the first
    # failure before NewService: a missing ipvs match or netfilter module leaves the IPVS service uncreated too
    (
        "kernel.ipvs-scheduler-missing",
        {"ingress.ipvs-service-missing", "vip.ipvs-service-missing", "ipvs.backend-missing"},
        False,
    ),
    (
        "iptables.no-ipvs-match",
        {
            "ingress.snat-missing",
            "vip.snat-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "ingress.ipvs-service-missing",
            "vip.ipvs-service-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    (
        "kernel.netfilter-module-missing",
        {
            "ingress.mark-missing",
            "ingress.vip-mark-missing",
            "vip.mark-missing",
            "ingress.snat-missing",
            "vip.snat-missing",
            "ingress.chain-missing",
            "ingress.jump-missing",
            "ingress.dnat-missing",
            "ingress.redirect-missing",
            "ingress.ipvs-service-missing",
            "vip.ipvs-service-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    # UDP entries stick to a real server that is still (wrongly) in the table
    ("ipvs.backend-stale", {"ipvs.conn-stale-udp"}, False),
    # sandboxes copy the host's ip_forward when they are created
    ("host.ip-forward-off", {"lb.ip-forward-off", "ingress.ip-forward-off"}, False),
    (
        "ingress.sandbox-missing",
        {
            "ingress.mark-missing",
            "ingress.ipvs-service-missing",
            "ingress.snat-missing",
            "ingress.vip-alias-missing",
            "ingress.vip-mark-missing",
            "ipvs.backend-missing",
        },
        False,
    ),
    ("ingress.chain-missing", {"ingress.jump-missing", "ingress.dnat-missing", "ingress.filter-accept-missing"}, False),
    (
        "lb.namespace-missing",
        {
            "lb.ip-forward-off",
            "vip.alias-missing",
            "vip.mark-missing",
            "vip.ipvs-service-missing",
            "vip.snat-missing",
            "ipvs.backend-missing",
        },
        True,
    ),
    ("ingress.mark-missing", {"ingress.ipvs-service-missing", "ipvs.backend-missing"}, False),
    # a wrong mark is followed into IPVS: the service it names is not there, and the tasks get nothing
    ("ingress.mark-mismatch", {"ingress.ipvs-service-missing", "ipvs.backend-missing"}, False),
    ("vip.mark-mismatch", {"vip.ipvs-service-missing", "ipvs.backend-missing"}, True),
    ("vip.mark-missing", {"vip.ipvs-service-missing", "ipvs.backend-missing"}, True),
    ("ingress.ipvs-service-missing", {"ipvs.backend-missing"}, False),
    ("vip.ipvs-service-missing", {"ipvs.backend-missing"}, True),
]


def _group(findings: list[Finding]) -> dict[int, Finding]:
    """Set caused_by on symptoms, and on each cause the count of what it explains (transitively).

    Returns, for each explained finding (by id()), its top root cause.
    """
    parent: dict[int, Finding] = {}
    for root_id, explains, same_net in ROOT_CAUSES:
        roots = [f for f in findings if f.id == root_id and id(f) not in parent]
        for f in findings:
            if id(f) in parent or f.id not in explains:
                continue
            for r in roots:
                if not set(f.nodes) <= set(r.nodes):
                    continue
                if same_net and r.network != f.network:
                    continue
                if r.service and f.service and r.service != f.service:
                    continue
                parent[id(f)] = r
                f.caused_by = r.id
                break
    top: dict[int, Finding] = {}
    for f in findings:
        p = parent.get(id(f))
        while p is not None:
            p.explains += 1
            p.explained[f.id] = p.explained.get(f.id, 0) + 1
            top[id(f)] = p
            p = parent.get(id(p))
    return top


def run_checks(ctx: Ctx, only: set[str] | None = None) -> list[Finding]:
    merged: dict[tuple, Finding] = {}
    hops_of: dict[tuple, list[Hop]] = {}
    for spec in REGISTRY:
        if only is not None and spec.id not in only:
            continue
        for hit in spec.fn(ctx):
            key = (spec.id, hit.service, hit.network, hit.detail)
            f = merged.get(key)
            if f is None:
                f = merged[key] = Finding(
                    id=spec.id,
                    severity=spec.severity,
                    title=spec.title,
                    hint=spec.hint,
                    service=hit.service,
                    network=hit.network,
                    detail=hit.detail,
                )
            for n in hit.nodes:
                if n not in f.nodes:
                    f.nodes.append(n)
            for e in hit.evidence:
                if e not in f.evidence:
                    f.evidence.append(e)
            for h in hit.hops:
                if spec.id not in h.findings:
                    h.findings.append(spec.id)
                hops_of.setdefault(key, []).append(h)
    findings = list(merged.values())
    top = _group(findings)
    # a hop whose findings are all explained by one root cause says so
    causes: dict[int, set] = {}
    for key, f in merged.items():
        for h in hops_of.get(key, []):
            causes.setdefault(id(h), set()).add(top[id(f)].id if id(f) in top else None)
    for key in merged:
        for h in hops_of.get(key, []):
            c = causes.get(id(h), {None})
            if len(c) == 1 and None not in c:
                h.root_cause = next(iter(c))
    findings.sort(
        key=lambda f: (
            f.caused_by is not None,
            -f.explains if f.caused_by is None else 0,
            SEVERITY_ORDER.get(f.severity, 9),
            f.id,
            f.service or "",
            f.network or "",
            f.detail,
        )
    )
    return findings


def hop_breaks(h: Hop) -> bool:
    """Whether a bad hop stops traffic: it carries a breaking finding, or none explains it."""
    return not h.findings or any(SEVERITY.get(f) in BREAKING for f in h.findings)


def fails(findings: list[Finding], paths: list[ServicePath]) -> bool:
    """Whether `check` fails: a breaking finding, or (belt and braces) a broken path."""
    if any(f.severity in BREAKING for f in findings):
        return True
    return any(np.verdict == Verdict.BROKEN for _, _, _, np in Ctx(None, paths).node_paths())  # type: ignore[arg-type]


def catalogue() -> list[CheckSpec]:
    """Every registered check, for the README and `swarmscope findings`."""
    return sorted(REGISTRY, key=lambda c: c.id)


# collector-backed checks (modules, iptables extensions, IPVS timeouts and connections, dockerd's log) live in
# their own module: registered here, after every check above, so the catalogue and the grouping see them
from swarmscope.correlate import causes as _causes  # noqa: E402,F401
