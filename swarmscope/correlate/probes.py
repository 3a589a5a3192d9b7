"""Join ``--probe`` results (``Snapshot.probes``, made by swarmscope/probe/) to the path map (pure).

Each probe names the hop it tests (``Probe.hop``), the node whose path that is, the service and the
published port or network. Its line is added to that hop's evidence (``PROBE_EVIDENCE`` starts it,
so the text renderer can show it next to the hop). A hop the rules judged ok whose probe failed
becomes ``suspect``: something the rules and tables cannot show stops the traffic. Its path is then
broken there (unless it already was), and a finding ``probe.hop-suspect`` (error) says what was
tried and what to check. A probe through a path already broken elsewhere is expected to fail: it is
evidence, never a second cause (on a kernel without ip_vs, kernel.no-ipvs explains every failure);
likewise a failed 127.0.0.1 probe where route_localnet is off (host.route-localnet-off says so).

A vtep probe (ICMP echoes, small then full size with DF, to a task on another node) tests the
``overlay.vtep`` hop of every path of that node on that network that crosses to that VTEP. Its own
failure is suspect only where it cannot be the task ignoring echoes: the small echo came back and the
large one did not (an MTU black hole on the path), a router said fragmentation is needed, or nothing
came back and the TCP task probes across that VTEP timed out too (none connected or was refused: a
refusal came from the task, so the underlay carried it). Then those task probes' failures are the
underlay's, not the tasks': evidence only.
"""

from __future__ import annotations

from swarmscope.correlate.paths.common import VTEP_HOP, vtep_line_of
from swarmscope.correlate.types import Analysis, Finding, Hop, NodePath, ServicePath
from swarmscope.model import HopStatus, Probe, Severity, Snapshot, Verdict

FINDING = "probe.hop-suspect"
SEVERITY = Severity.ERROR
TITLE = "a hop the rules judge ok failed a real connection (--probe)"
HINT = ("The rules, addresses and IPVS tables of this hop are what they should be, yet a connection through it "
        "failed: the fault is in what the rules cannot see. Check what the hint of each hop kind names: the "
        "task listening, a firewall outside iptables, the underlay between nodes, MTU, offload.")
#: what to check, per kind of probe (the hop it tests)
HINTS = {
    "published": (
        "A connection from the node to its own published port (nat OUTPUT -> DNAT -> ingress_sbox -> IPVS -> a "
        "task) failed while every rule is in place. Check that the tasks listen (the task probes below), a "
        "firewall outside iptables (an nftables table of its own, eBPF/XDP), and for tasks on other nodes the "
        "underlay: UDP 4789 (and ESP for encrypted overlays) open between the nodes, the overlay MTU 50 bytes "
        "below the underlay's, and checksum offload on the VXLAN path (`ethtool -K DEV tx-checksum-ip-generic off`)."
    ),
    "localhost": (
        "127.0.0.1:PORT reaches the published port only through DNAT to docker_gwbridge, which needs "
        "net.ipv4.conf.docker_gwbridge.route_localnet=1 and the MASQUERADE on docker_gwbridge; check both, "
        "and a firewall outside iptables."
    ),
    "vip": (
        "The VIP's mark and IPVS service are in place, but a connection to it from a task sandbox on the network "
        "failed. Check that the tasks listen (the task probes), the overlay between the nodes (UDP 4789 on the "
        "underlay, MTU, VXLAN offload) and the connection table (`ipvsadm -Lnc` in the lb_ namespace)."
    ),
    "task": (
        "The task is a real server, but a direct connection to its address and target port from the load "
        "balancer's namespace failed: is the task listening on that port on all addresses (not 127.0.0.1 only)? "
        "`nsenter --net=/var/run/docker/netns/<task sandbox> ss -ltn`. For a task on another node, check the "
        "overlay between the nodes (UDP 4789 on the underlay, MTU, VXLAN offload)."
    ),
    "vtep": (
        "Traffic to the tasks on another node crosses the underlay to that node's VTEP inside VXLAN (UDP 4789, "
        "50 bytes more than the overlay packet), where no rule of either node shows it. Where small packets come "
        "back and full-size ones do not, something on the path between the nodes has an MTU below the overlay's "
        "plus 50 (a switch port, a tunnel, a cloud network): raise it, or lower the overlay's MTU "
        "(`docker network create --opt com.docker.network.driver.mtu=N`). Where nothing comes back, UDP 4789 "
        "(and ESP for encrypted overlays) is dropped between the nodes: a firewall or security group on the "
        "underlay, or VXLAN checksum offload (`ethtool -K DEV tx-checksum-ip-generic off`)."
    ),
}
FAILED = frozenset({"refused", "reset", "timeout", "error"})
#: probes whose connection goes through the whole path: expected to fail where the path is broken anyway
THROUGH = frozenset({"published", "localhost", "vip"})
PROBE_EVIDENCE = "probe "
#: the hops a probe can test (probe/targets.py HOPS): for the catalogue's row of this finding
HOP_KEYS = ("host.dnat", "host.bound", "host.jump", "lb.ipvs", "ingress.backends", "lb.backends", VTEP_HOP)


def probe_line(p: Probe) -> str:
    """One line for a probe: from where, to what, and how it went."""
    dst = f"{p.address}:{p.port}/{p.protocol}" if p.port else f"{p.address}/{p.protocol}"
    who = f" ({p.task}{' via VTEP ' + p.vtep if p.vtep else ''})" if p.task else ""
    if p.result == "not-probed":
        return f"{PROBE_EVIDENCE}{p.kind} {dst}{who}: {p.reason or 'not probed'}"
    took = f" in {p.duration_ms:.1f} ms" if p.result == "connected" else f" after {p.duration_ms:.0f} ms"
    http = f", {p.http_status}" if p.http_status else ""
    why = f" ({p.reason})" if p.reason and p.result != "connected" else ""
    note = f"; {p.reason}" if p.reason and p.result == "connected" else ""
    return f"{PROBE_EVIDENCE}{p.kind} from {p.source} to {dst}{who}: {p.result}{took}{why}{http}{note}"


def _node_path(sp: ServicePath, p: Probe) -> tuple[NodePath, str | None] | None:
    """The node path a probe tests, and the network it is on (VIP paths)."""
    if p.published is not None:
        for pp in sp.ports:
            if pp.published == p.published and pp.protocol == p.protocol:
                for np in pp.nodes:
                    if np.node == p.node:
                        return np, None
    if p.network is not None:
        for vp in sp.vip_paths:
            if vp.network == p.network:
                for np in vp.nodes:
                    if np.node == p.node:
                        return np, vp.network
    return None


def _short(p: Probe) -> str:
    if p.kind == "vtep":
        return f"{p.address} via VTEP {p.vtep} {p.result} ({p.reason})" if p.reason else f"{p.address} {p.result}"
    return f"{p.address}:{p.port} {p.result}"


Joined = list[tuple[ServicePath, str | None, NodePath]]


def _vtep_paths(services: list[ServicePath], p: Probe, ingress: str | None) -> Joined:
    """Every node path of the probe's node on its network whose VTEP hop crosses to the probe's VTEP."""
    out: Joined = []
    if not p.vtep:
        return out
    line = vtep_line_of(p.vtep)

    def crosses(np: NodePath) -> bool:
        h = np.hop(VTEP_HOP)
        return np.node == p.node and h is not None and any(e.startswith(line) for e in h.evidence)

    for sp in services:
        if p.network == ingress:
            out += [(sp, None, np) for pp in sp.ports for np in pp.nodes if crosses(np)]
        else:
            out += [(sp, vp.network, np) for vp in sp.vip_paths if vp.network == p.network for np in vp.nodes
                    if crosses(np)]
    return out


def underlay_failed(p: Probe, task_probes: list[Probe]) -> bool:
    """Whether a failed vtep probe names the underlay (see the module's text), given the TCP task probes
    across the same VTEP from the same node on the same network."""
    if p.answered and p.size and p.answered < p.size:
        return True  # small packets come back, full-size ones do not
    if (p.reason or "").startswith("fragmentation needed"):
        return True
    if p.result == "error" and not (p.reason or "").startswith("destination unreachable"):
        return False  # it could not be sent (no raw socket): says nothing of the path
    tcp = [t for t in task_probes if t.result != "not-probed"]
    return bool(tcp) and all(t.result in ("timeout", "error") for t in tcp)


def _explained(p: Probe, np: NodePath, findings: list[Finding],
               tasks_failed: set[tuple[str | None, str | None]]) -> bool:
    """Whether a failed probe is accounted for: by the rules (its path already broken), or, for a probe through
    the whole path, by a task of that service on that node that failed its own probe (the load balancer sent the
    connection to it: its real-server hop is the suspect, not the hops before it)."""
    if p.kind in THROUGH and np.verdict == Verdict.BROKEN:
        return True
    if p.kind in THROUGH and (p.node, p.service) in tasks_failed:
        return True
    if p.kind == "localhost":
        return any(f.id == "host.route-localnet-off" and np.node in f.nodes for f in findings)
    return False


def join_probes(analysis: Analysis, snapshots: list[Snapshot]) -> list[Finding]:
    """Attach every snapshot's probes to the hops they test; mark suspect hops, break their paths, and add
    (and return) the findings."""
    services = {sp.name: sp for sp in analysis.services}
    before = list(analysis.findings)
    suspect: dict[tuple[int, str], tuple[ServicePath, str | None, NodePath, Hop, list[Probe]]] = {}
    made = [p for snap in snapshots for p in snap.probes]
    across: dict[tuple, list[Probe]] = {}  # (node, network, vtep) -> the TCP task probes across that VTEP
    for p in made:
        if p.kind == "task" and p.vtep:
            across.setdefault((p.node, p.network, p.vtep), []).append(p)
    # the VTEPs whose vtep probe failed with nothing back while the task probes across them timed out: the
    # task probes' failures there are the underlay's
    dead = {(p.node, p.network, p.vtep) for p in made if p.kind == "vtep" and p.result in FAILED
            and not p.answered and underlay_failed(p, across.get((p.node, p.network, p.vtep), []))}
    tasks_failed = {(p.node, p.service) for p in made if p.kind == "task" and p.result in FAILED}
    ingress = next((n.name for snap in snapshots for n in snap.docker.networks if n.ingress), None)

    def mark(sp: ServicePath, net: str | None, np: NodePath, h: Hop, p: Probe) -> None:
        if h.status == HopStatus.OK or (h.status == HopStatus.SUSPECT and (id(np), h.key) in suspect):
            h = np.own(h)  # the path's own hop (its status is this path's)
            h.status = HopStatus.SUSPECT
            suspect.setdefault((id(np), h.key), (sp, net, np, h, []))[4].append(p)

    for p in made:
        if p.kind == "vtep":
            fails = p.result in FAILED and underlay_failed(p, across.get((p.node, p.network, p.vtep), []))
            for vsp, vnet, vnp in _vtep_paths(analysis.services, p, ingress):
                vh = vnp.hop(VTEP_HOP)
                assert vh is not None
                vh = vnp.own(vh)  # the path's own hop: other nodes' paths share the judgement
                vh.evidence = [*vh.evidence, probe_line(p)]  # a new list: the copy shares the judgement's
                if fails:
                    mark(vsp, vnet, vnp, vh, p)
            continue
        svc = services.get(p.service or "")
        found = _node_path(svc, p) if svc is not None else None
        if svc is None or found is None:
            continue
        sp = svc
        np, net = found
        h = np.hop(p.hop)
        if h is None:
            continue
        h = np.own(h)  # the path's own hop: other paths may share the judgement
        h.evidence = [*h.evidence, probe_line(p)]  # a new list: the copy shares the judgement's
        if p.result not in FAILED or _explained(p, np, before, tasks_failed):
            continue
        if p.kind == "task" and (p.node, p.network, p.vtep) in dead:
            continue  # the underlay toward that node is the suspect (its vtep probe), not the task
        mark(sp, net, np, h, p)
    new: list[Finding] = []
    for sp, net, np, h, probes in suspect.values():
        if FINDING not in h.findings:
            h.findings += (FINDING,)
        lines = [probe_line(p) for p in probes]
        kinds = sorted({p.kind for p in probes}, key=list(HINTS).index)
        new.append(Finding(
            id=FINDING, severity=SEVERITY, title=TITLE, hint=" ".join(HINTS[k] for k in kinds), nodes=[np.node],
            service=sp.name, network=net,
            detail=f"{h.label}: judged ok by the rules, but {len(probes)} probe(s) failed: "
                   + ", ".join(_short(p) for p in probes),
            evidence=lines,
        ))
    for _, _, np, _, _ in suspect.values():
        if np.verdict == Verdict.BROKEN:
            continue
        first = next(h for h in np.hops if h.status == HopStatus.SUSPECT)
        np.verdict, np.broken_at = Verdict.BROKEN, first.label
        np.reason = f"{first.label}: judged ok, but its probe failed"
    if new:
        # after the findings of error severity already there (root causes first), before the rest
        at = next((i for i, f in enumerate(analysis.findings) if f.severity != Severity.ERROR), len(analysis.findings))
        analysis.findings[at:at] = new
    return new
