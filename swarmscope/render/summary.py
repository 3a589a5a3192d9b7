"""The human summary of one node snapshot (``swarmscope collect``)."""

from __future__ import annotations

from tabulate import tabulate

from swarmscope.model import Namespace, Snapshot


def _addrs(ns: Namespace) -> str:
    out = []
    for i in ns.interfaces:
        if i.name == "lo":
            continue
        for a in i.addresses:
            if a.family == 4:
                out.append(f"{i.name}:{a.cidr}")
    return " ".join(out) or "-"


def _what(ns: Namespace) -> str:
    if ns.kind in ("lb", "overlay", "ingress_sbox"):
        return ns.network_name or (f"network {ns.network_id}?" if ns.network_id else "-")
    if ns.kind == "container":
        return ns.container_name or "(no container)"
    return "-"


def _ipvs(ns: Namespace) -> str:
    if ns.ipvs is None:
        return ""
    if not ns.ipvs.available:
        return "unavailable"
    return ", ".join(f"{s.key}:{len(s.dests)}rs" for s in ns.ipvs.services) or "empty"


def _rules(ns: Namespace) -> str:
    if ns.vanished:
        return "vanished"
    if ns.stale:
        return "stale file"
    d = ns.iptables
    if d is None:
        return "?"
    if not d.available:
        return "n/a"
    n = str(d.rule_count)
    o = ns.iptables_other
    if o is not None and o.available and o.rule_count:
        n += f" (+{o.rule_count} {o.backend})"
    return n


def render_summary(snap: Snapshot) -> str:
    n = snap.node
    lines = []
    lines.append(
        f"node {n.hostname}  id {n.node_id or '?'}  role {n.role or '?'}  swarm {n.swarm_state or '?'}"
    )
    lines.append(
        f"engine {n.engine_version or '?'} (API {n.api_version or '?'})  kernel {n.kernel_release}"
    )
    if n.ip_vs is not None:
        if n.ip_vs.available is False:
            lines.append(f"ip_vs: kernel has no ip_vs — {n.ip_vs.detail}")
        elif n.ip_vs.available:
            lines.append(f"ip_vs: available ({n.ip_vs.method})")
        else:
            lines.append(f"ip_vs: unknown ({n.ip_vs.method})")
    if n.modules or n.xtables:
        mods = ", ".join(f"{m.name} {m.state}" for m in n.modules)
        ext = ", ".join(f"libxt_{x.name}.so {'found' if x.found else 'missing' if x.found is False else 'unknown'}"
                        for x in n.xtables)
        lines.append(f"modules: {mods}" + (f"; iptables extension {ext}" if ext else ""))
    if n.dockerd_log is not None:
        lg = n.dockerd_log
        if lg.available:
            lines.append(f"dockerd log: {len(lg.matches)} known error line(s) in {lg.lines_read} lines ({lg.source})")
        else:
            lines.append(f"dockerd log: not read — {lg.reason}")
    if n.iptables is not None:
        b = n.iptables
        other = f"; {b.other_backend} holds {b.other_backend_rules} rules" if b.other_backend else ""
        lines.append(f"iptables: engine uses {b.engine_backend or '?'}{other}")
    sys = ", ".join(
        f"{k.replace('net.ipv4.', '').replace('net.', '')}={v if v is not None else '-'}" for k, v in n.sysctls.items()
    )
    lines.append(f"sysctls: {sys}")
    gw = snap.host.gwbridge
    if gw is not None:
        if gw.present:
            addrs = ",".join(a.cidr for a in gw.addresses) or "no address"
            lines.append(f"docker_gwbridge: {addrs}, {len(gw.members)} members")
        else:
            lines.append("docker_gwbridge: missing")
    if snap.host.iptables is not None and snap.host.iptables.available:
        lines.append(f"host iptables ({snap.host.iptables.backend}): {snap.host.iptables.rule_count} rules")
    nft = snap.host.nftables
    if nft is not None and nft.available:
        native = [t for t in nft.tables if not t.iptables]
        names = ", ".join(f"{t.family} {t.name} ({sum(len(c.rules) for c in t.chains)} rules)" for t in native)
        lines.append(f"host nftables: {len(native)} native table(s)" + (f": {names}" if names else "")
                     + f"; {len(nft.tables) - len(native)} made by iptables-nft (read through iptables-nft-save)")
    elif nft is not None:
        lines.append(f"host nftables: not read ({nft.reason or 'no reason recorded'})")
    if snap.host.listeners:
        ls = ", ".join(f"{x.protocol}/{x.address}:{x.port} ({x.process or '?'})" for x in snap.host.listeners)
        lines.append(f"listening on published ports: {ls}")
    lines.append("")

    rows = [[ns.name, ns.kind, _what(ns), _addrs(ns), _rules(ns), _ipvs(ns)] for ns in snap.namespaces]
    lines.append(f"namespaces under {snap.netns_dir}: {len(snap.namespaces)}")
    lines.append(tabulate(rows, headers=["namespace", "kind", "network/container", "addresses", "rules", "ipvs"]))
    lines.append("")

    lines.extend(_overlay_lines(snap))

    conn_rows = _conn_rows(snap)
    if conn_rows:
        lines.append("IPVS connections (/proc/net/ip_vs_conn, per virtual address and real server):")
        lines.append(
            tabulate(
                conn_rows, headers=["namespace", "timeouts tcp/fin/udp", "virtual", "real server", "entries", "task"]
            )
        )
        lines.append("")

    if snap.dns:
        rows = [
            [a.network_name, a.query, a.status, " ".join(a.answers) or (a.reason or "-"), a.namespace]
            for a in snap.dns
        ]
        lines.append("DNS (127.0.0.11):")
        lines.append(tabulate(rows, headers=["network", "query", "status", "answers", "asked from"]))
        lines.append("")

    d = snap.docker
    if d.available or d.services or d.networks:
        lines.append(
            f"docker: {len(d.services)} services, {len(d.tasks)} tasks, {len(d.networks)} networks, "
            f"{len(d.containers)} containers, {len(d.nodes)} nodes"
        )
    else:
        lines.append(f"docker: unavailable — {d.reason}")
    lines.append(f"collected in {snap.duration_ms / 1000:.2f}s, {len(snap.provenance)} steps")
    if snap.errors:
        lines.append(f"INCOMPLETE: {len(snap.errors)} problem(s):")
        lines.extend(f"  - {e}" for e in snap.errors)
    else:
        lines.append("complete")
    return "\n".join(lines)


def _overlay_lines(snap: Snapshot) -> list[str]:
    """The overlay data plane: each overlay namespace's vxlan device and the peers programmed on it (permanent
    neighbour + FDB entries, by VTEP), then the host's route to each peer VTEP. Nothing where it was not read."""
    rows = []
    for ns in snap.namespaces:
        if ns.overlay is None:
            continue
        vx = [i for i in ns.interfaces if i.kind == "vxlan"]
        dev = ", ".join(
            f"{i.name} vni {i.vxlan_id} port {i.vxlan_port if i.vxlan_port is not None else '?'}"
            + (f" local {i.vxlan_local}" if i.vxlan_local else "")
            + ("" if i.vxlan_learning is not False else " nolearning")
            for i in vx) or "no vxlan device"
        mtu = ",".join(str(i.mtu) for i in vx if i.mtu) or "-"
        if not ns.overlay.available:
            rows.append([ns.name, ns.network_name or "-", dev, mtu, "-", f"not read: {ns.overlay.reason}"])
            continue
        macs = {e.mac: e for e in ns.overlay.fdb if e.dst}
        by_vtep: dict[str, int] = {}
        for n in ns.overlay.neighbours:
            e = macs.get(n.mac or "")
            key = e.dst if e is not None and e.dst else "no fdb entry"
            by_vtep[key] = by_vtep.get(key, 0) + 1
        vteps = ", ".join(f"{k} ({v})" for k, v in sorted(by_vtep.items())) or "-"
        rows.append([ns.name, ns.network_name or "-", dev, mtu, str(len(ns.overlay.neighbours)), vteps])
    if not rows:
        return []
    out = ["overlay data plane (vxlan FDB and neighbour entries over rtnetlink):",
           tabulate(rows, headers=["namespace", "network", "vxlan", "mtu", "peers", "VTEPs (peers)"])]
    if snap.host.vtep_routes:
        routes = "; ".join(
            f"{r.destination}: {r.error}" if r.error else
            f"{r.destination} dev {r.device} src {r.source} mtu {r.mtu}" for r in snap.host.vtep_routes)
        out.append(f"routes to the peer VTEPs: {routes}")
    return out + [""]


def _conn_rows(snap: Snapshot) -> list[list[str]]:
    """The IPVS connection table of each load-balancer namespace, counted per virtual address and real
    server, with the task that has the real server's address (``no task`` where none does)."""
    from swarmscope.parse.ipvs_conn import conn_summary

    owners: dict[str, str] = {}
    for t in snap.docker.tasks:
        name = f"{t.service_name or t.service_id[:12]}.{t.slot if t.slot is not None else (t.node_id or '?')[:12]}"
        for a in t.attachments:
            for x in a.addresses:
                owners.setdefault(x.split("/")[0], name)
    for net in snap.docker.networks:
        for svc in net.services.values():
            for ep in svc.tasks:
                if ep.endpoint_ip:
                    owners.setdefault(ep.endpoint_ip.split("/")[0], ep.name)
    rows = []
    for ns in snap.namespaces:
        table = ns.ipvs
        if table is None or not table.available or table.conns is None:
            continue
        to = table.timeouts
        tos = f"{to.tcp}/{to.tcpfin}/{to.udp}" if to else "-"
        summary = conn_summary(table.conns)
        if not summary:
            rows.append([ns.name, tos, "-", "-", "0", "-"])
        for (vaddr, vport, daddr), states in sorted(summary.items()):
            rows.append(
                [
                    ns.name,
                    tos,
                    f"{vaddr}:{vport}",
                    daddr,
                    ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
                    owners.get(daddr, "no task"),
                ]
            )
    return rows
