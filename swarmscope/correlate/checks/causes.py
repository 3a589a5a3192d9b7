"""Causes read from the node itself: kernel modules and iptables extensions the mesh needs, the IPVS
timeouts and connection table, and dockerd's own log (pure: works on what the collector recorded).

A topic module like the others: its checks run last (the end of ``table.CHECKS``), and the log
corroboration (``corroborate``, run after the checks) stays apart from the path-based checks.
Each check judges only what was established: a module state ``unknown`` (no /lib/modules where the
collector ran), an extension ``found: None`` (a static iptables), timeouts or connections not read
(older snapshots, captures) give nothing; and a capability the node's own rules or IPVS table prove
working (an ipvs SNAT rule, a MARK rule, an rr service) is never reported missing. Where the kernel
has no ip_vs at all, ``kernel.no-ipvs`` explains everything and these checks say nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarmscope.correlate import lifecycle
from swarmscope.correlate.checks.node import has_ipvs_snat
from swarmscope.correlate.checks.registry import Ctx, Hit, check
from swarmscope.correlate.cluster import Cluster, NodeCtx, ip_key, strip_prefix
from swarmscope.correlate.paths.common import node_facts, ns_facts
from swarmscope.correlate.types import Finding
from swarmscope.model import NsKind, Severity

#: dockerd log kinds (collect/dockerd_log.PATTERNS) -> the findings each corroborates
LOG_CORROBORATES: dict[str, set[str]] = {
    "ipvs-family": {"kernel.no-ipvs"},
    "no-ipvs-match": {"iptables.no-ipvs-match", "ingress.snat-missing", "vip.snat-missing"},
    "vs-conntrack": {"kernel.ipvs-no-conntrack"},
    "fwmark-failed": {
        "iptables.no-ipvs-match",
        "kernel.netfilter-module-missing",
        "kernel.ipvs-no-conntrack",
        "ingress.mark-missing",
        "ingress.vip-mark-missing",
        "vip.mark-missing",
        "ingress.snat-missing",
        "vip.snat-missing",
    },
    "no-lb-ip": {"ingress.sandbox-incomplete", "lb.namespace-missing"},
    "ipvs-service-failed": {
        "kernel.ipvs-scheduler-missing",
        "ingress.ipvs-service-missing",
        "vip.ipvs-service-missing",
    },
    "real-server-failed": {"kernel.ipvs-scheduler-missing", "ipvs.backend-missing"},
}
MAX_LOG_EVIDENCE = 3


def _ipvs_usable(n: NodeCtx) -> bool:
    v = n.snap.node.ip_vs
    return v is not None and v.available is True


def _module(n: NodeCtx, name: str):
    return next((m for m in n.snap.node.modules if m.name == name), None)


def _log_lines(n: NodeCtx, finding_id: str) -> list[str]:
    log = n.snap.node.dockerd_log
    if log is None or not log.available:
        return []
    out = [m.line for m in log.matches if finding_id in LOG_CORROBORATES.get(m.kind, ())]
    return [f"dockerd log ({log.source}): {line}" for line in out[:MAX_LOG_EVIDENCE]]


def _sandboxes(n: NodeCtx):
    return [ns for ns in n.snap.namespaces if ns.kind in (NsKind.LB, NsKind.INGRESS_SBOX)]


def _has_mark_rule(n: NodeCtx) -> bool:
    return any(ns_facts(n, ns).netfilter.sets_marks() for ns in _sandboxes(n))


def _has_nat_rule(n: NodeCtx) -> bool:
    return node_facts(n).host.netfilter.rewrites_addresses()


def _has_rr_service(n: NodeCtx) -> bool:
    return any(s == "rr" for ns in _sandboxes(n) for s in ns_facts(n, ns).ipvs.schedulers())


# --------------------------------------------------------------------------
# modules present but unusable, and iptables without the ipvs match


@check(
    "kernel.ipvs-scheduler-missing",
    Severity.ERROR,
    "ip_vs is loaded but its round-robin scheduler (ip_vs_rr) is not available",
    "dockerd creates every IPVS service with the rr scheduler; without ip_vs_rr (not loaded, not built in, no module "
    "on disk) each 'Failed to create a new service for vip' and the real servers never appear. Install the kernel's "
    "modules package that matches `uname -r` (ip_vs_rr.ko lives beside ip_vs.ko) or use a kernel built with "
    "CONFIG_IP_VS_RR, then `modprobe ip_vs_rr` and restart dockerd.",
)
def check_scheduler_missing(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        m, ipvs = _module(n, "ip_vs_rr"), n.snap.node.ip_vs
        if ipvs is None or not _ipvs_usable(n) or m is None or m.state != "absent" or _has_rr_service(n):
            continue
        yield Hit(
            [n.name],
            detail=f"ip_vs_rr absent on kernel {n.snap.node.kernel_release}",
            evidence=[f"ip_vs: {ipvs.method}", f"ip_vs_rr: {m.how}"] + _log_lines(n, "kernel.ipvs-scheduler-missing"),
        )


@check(
    "kernel.netfilter-module-missing",
    Severity.ERROR,
    "a netfilter module the mesh's rules need is not available (xt_mark, nf_nat)",
    "dockerd's MARK rules need xt_mark and its DNAT/SNAT/REDIRECT rules need nf_nat; the module is neither loaded, "
    "built in nor on disk, so those rules cannot be added. Install the kernel modules package matching `uname -r` "
    "(or a kernel with CONFIG_NETFILTER_XT_MARK / CONFIG_NF_NAT), then restart dockerd.",
)
def check_netfilter_module_missing(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        if not _ipvs_usable(n):
            continue
        for name, proven in (("xt_mark", _has_mark_rule), ("nf_nat", _has_nat_rule)):
            m = _module(n, name)
            if m is not None and m.state == "absent" and not proven(n):
                yield Hit(
                    [n.name],
                    detail=f"{name} absent on kernel {n.snap.node.kernel_release}",
                    evidence=[f"{name}: {m.how}"] + _log_lines(n, "kernel.netfilter-module-missing"),
                )


@check(
    "iptables.no-ipvs-match",
    Severity.ERROR,
    "iptables cannot use the `ipvs` match: dockerd's SNAT rule cannot be added",
    "dockerd adds `-t nat -A POSTROUTING -m ipvs --ipvs -d <subnet> -j SNAT` in each load-balancer sandbox; "
    "without the match (userspace libxt_ipvs.so in the xtables directory, kernel module xt_ipvs) iptables fails with "
    "\"Couldn't load match `ipvs'\", the SNAT rule and the VIP's MARK rule are never added and the IPVS service is not "
    "created. Install what is missing (the distribution's full iptables package, e.g. `iptables` rather than a "
    "minimal build; the kernel modules package for `uname -r` or CONFIG_IP_VS_XT / CONFIG_NETFILTER_XT_MATCH_IPVS), "
    "then restart dockerd.",
)
def check_no_ipvs_match(ctx: Ctx) -> Iterator[Hit]:
    for n in ctx.cluster.nodes:
        if not _ipvs_usable(n):
            continue
        read = [ns for ns in _sandboxes(n) if ns_facts(n, ns).netfilter.read]
        lacking = [ns.name for ns in read if not has_ipvs_snat(n, ns)]
        if not lacking:
            continue
        why = []
        m = _module(n, "xt_ipvs")
        # a sandbox that has the rule proves the kernel side (the module cannot go while a rule uses it);
        # the userspace side can go at any time (a package change): the sandboxes created since lack it
        if m is not None and m.state == "absent" and len(lacking) == len(read):
            why.append(f"kernel: xt_ipvs {m.how}")
        ext = next((x for x in n.snap.node.xtables if x.name == "ipvs"), None)
        if ext is not None and ext.found is False:
            why.append(f"userspace: {ext.how}")
        if why:
            yield Hit(
                [n.name],
                detail="; ".join(w.split(":", 1)[0] + " side missing" for w in why),
                evidence=why + [f"no ipvs SNAT rule in {', '.join(lacking)}"] + _log_lines(n, "iptables.no-ipvs-match"),
            )


# --------------------------------------------------------------------------
# the IPVS connection table and its timeouts


def _known_addresses(cl: Cluster, now, memo: dict | None = None) -> set[str] | None:
    """Addresses some task has: running or in transition (any node), and every endpoint a verbose
    network inspect lists. None when nothing is known about tasks at all. ``memo``: a dict kept across
    the nodes of one cluster, which then holds what does not depend on ``now`` (read once per cluster)."""
    base = memo.get("base") if memo is not None else None
    if base is None:
        fixed: set[str] = set()
        other: list = []  # tasks not running: in transition or not depending on ``now``
        for t in cl.tasks:
            if t.state == "running" and t.desired_state == "running":
                for a in t.attachments:
                    fixed.update(filter(None, (strip_prefix(x) for x in a.addresses)))
            else:
                other.append(t)
        any_verbose = False
        for n in cl.nodes:
            for net in n.snap.docker.networks:
                if net.verbose:
                    any_verbose = True
                    for s in net.services.values():
                        fixed.update(filter(None, (strip_prefix(ep.endpoint_ip) for ep in s.tasks)))
        base = (fixed, other, any_verbose)
        if memo is not None:
            memo["base"] = base
    fixed, other, any_verbose = base
    if not cl.tasks and not any_verbose:
        return None
    have = set(fixed)
    for t in other:
        if lifecycle.in_transition(t, now):
            for a in t.attachments:
                have.update(filter(None, (strip_prefix(x) for x in a.addresses)))
    return have


def _service_for(cl: Cluster, ns, vaddr: str, vport: int) -> str | None:
    """The service a connection entry's virtual address belongs to (VIP on the lb_ network, or published port)."""
    if ns.kind == NsKind.LB:
        for s in cl.services:
            for v in s.vips:
                if strip_prefix(v.address) == vaddr and (
                    not ns.network_id
                    or v.network_id.startswith(ns.network_id)
                    or ns.network_id.startswith(v.network_id)
                ):
                    return s.name
    for s in cl.services:
        if (
            any(p.published_port == vport and p.publish_mode == "ingress" for p in s.ports)
            and ns.kind == NsKind.INGRESS_SBOX
        ):
            return s.name
    return None


@check(
    "ipvs.conn-stale-udp",
    Severity.WARNING,
    "IPVS keeps UDP connection entries to an address no task has",
    "UDP 'connections' through the VIP or published port stick to their real server until they idle out for the "
    "udp timeout (300 s by default): a client that keeps sending from the same source port (DNS forwarders, syslog, "
    "statsd, VoIP) keeps sending to a task that is gone. The kernel drops such entries when the real server is "
    "removed only with net.ipv4.vs.expire_nodest_conn=1 (dockerd sets it in the sandbox; see ipvs.sysctl-unexpected); "
    "restart the client (a new source port gets a new entry) or stop it for longer than the udp timeout.",
)
def check_conn_stale_udp(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    memo: dict = {}
    for n in cl.nodes:
        have: set[str] | None = None  # the addresses known at this node's time: only where there are entries
        for ns in _sandboxes(n):
            t = ns.ipvs
            if t is None or not t.available or not t.conns:
                continue
            if have is None:
                have = _known_addresses(cl, n.now, memo)
                if have is None:  # nothing known about tasks at all: nothing to judge on this node
                    break
            stale: dict[tuple[str | None, str], list] = {}
            for g in t.conns:
                if g.protocol.upper() == "UDP" and g.daddr not in have:
                    stale.setdefault((_service_for(cl, ns, g.vaddr, g.vport), g.daddr), []).append(g)
            for (svc, daddr), groups in sorted(stale.items(), key=lambda kv: (kv[0][0] or "", ip_key(kv[0][1]))):
                count = sum(g.count for g in groups)
                yield Hit(
                    [n.name],
                    svc,
                    ns.network_name if ns.kind == NsKind.LB else None,
                    f"{ns.name}: {count} UDP entries to {daddr}",
                    [
                        f"{ns.name} ip_vs_conn: UDP {g.vaddr}:{g.vport} -> {daddr}:{g.dport} {g.state} x{g.count}"
                        f" (expires in {g.min_expires} s)"
                        for g in groups[:5]
                    ]
                    + [f"no running task has {daddr}"],
                )


IDLE_FRACTION = 0.5  # an ESTABLISHED entry idle for at least half the tcp timeout


@check(
    "ipvs.idle-timeout",
    Severity.INFO,
    "long-lived TCP connections through IPVS are idle long enough to be cut",
    "IPVS forgets an ESTABLISHED connection after the tcp timeout without a packet (900 s by default); the next "
    "packet on it is then dropped or reset, and the client sees a hang. Send TCP keepalives more often than the "
    "timeout from the client (e.g. net.ipv4.tcp_keepalive_time below 900 in the client's container, or the "
    "driver's keepalive option), or raise the timeout yourself in the sandbox: `nsenter --net=/var/run/docker/netns/"
    "<sandbox> ipvsadm --set <tcp> <tcpfin> <udp>` (a change only you should make; dockerd does not keep it across "
    "a new sandbox).",
)
def check_idle_timeout(ctx: Ctx) -> Iterator[Hit]:
    cl = ctx.cluster
    for n in cl.nodes:
        for ns in _sandboxes(n):
            t = ns.ipvs
            if t is None or not t.available or not t.conns or t.timeouts is None or not t.timeouts.tcp:
                continue
            limit = t.timeouts.tcp * (1 - IDLE_FRACTION)
            idle: dict[str | None, list] = {}
            for g in t.conns:
                if (
                    g.protocol.upper() == "TCP"
                    and g.state == "ESTABLISHED"
                    and g.min_expires is not None
                    and g.min_expires <= limit
                ):
                    idle.setdefault(_service_for(cl, ns, g.vaddr, g.vport), []).append(g)
            for svc, groups in sorted(idle.items(), key=lambda kv: kv[0] or ""):
                longest = t.timeouts.tcp - min(g.min_expires for g in groups)
                yield Hit(
                    [n.name],
                    svc,
                    ns.network_name if ns.kind == NsKind.LB else None,
                    f"{ns.name}: idle up to {longest} s of the {t.timeouts.tcp} s tcp timeout",
                    [f"{ns.name} timeouts (tcp tcpfin udp): {t.timeouts.tcp} {t.timeouts.tcpfin} {t.timeouts.udp}"]
                    + [
                        f"{ns.name} ip_vs_conn: TCP {g.vaddr}:{g.vport} -> {g.daddr}:{g.dport} ESTABLISHED x{g.count},"
                        f" idle {t.timeouts.tcp - g.min_expires} s"
                        for g in groups[:5]
                    ],
                )


# --------------------------------------------------------------------------
# dockerd told us already: its log lines as evidence of the findings they corroborate


def corroborate(cl: Cluster, findings: list[Finding]) -> None:
    """Add the matching dockerd log lines of each finding's nodes to its evidence (never a finding by itself)."""
    by_name = {n.name: n for n in cl.nodes}
    for f in findings:
        for node in f.nodes:
            n = by_name.get(node)
            if n is None:
                continue
            for line in _log_lines(n, f.id):
                if line not in f.evidence:
                    f.evidence.append(line)
