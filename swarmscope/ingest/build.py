"""Node snapshots from sections of text (pure): what a support.sh transcript or a directory of
pasted outputs tells, in the model the correlator judges, and nothing more.

What the text cannot tell is left empty, so the correlator says ``unknown``: support.sh captures
no sysctls (ip_forward), no DNS answers, no service specs, no listening sockets and does not say
which iptables backend ``iptables`` is. Its ``ip -o -4 address show`` lists only interfaces with an
IPv4 address (an overlay namespace's vxlan0 has none), so overlay namespaces' interfaces are left
unread rather than read as lacking vxlan0. Every section read becomes a provenance record naming
the file and lines it came from; every section that could not be read is listed in ``errors``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from swarmscope.collect.snapshot import classify as collect_classify
from swarmscope.errors import ParseError
from swarmscope.ingest.sections import Section
from swarmscope.model import (
    Bridge,
    Container,
    DnsAnswer,
    DockerView,
    HostNamespace,
    Interface,
    IptablesBackend,
    IptablesDump,
    IpvsSupport,
    IpvsTable,
    Namespace,
    Network,
    NodeInfo,
    NsKind,
    Provenance,
    Snapshot,
)

#: iptables tables the correlator reads in each kind of namespace; a namespace whose input lacks
#: one of them is left unread (an absent table would read as an empty one: a fault invented)
NEEDED_TABLES: dict[NsKind, tuple[str, ...]] = {
    NsKind.HOST: ("nat", "filter"), NsKind.INGRESS_SBOX: ("nat", "mangle"), NsKind.LB: ("nat", "mangle"),
    NsKind.CONTAINER: ("nat",), NsKind.OVERLAY: (), NsKind.UNKNOWN: (),
}


def classify(name: str) -> tuple[NsKind, str | None]:
    """(kind, network id prefix) of a namespace name: the collector's rules (one place), plus "host",
    the name a transcript or pasted file gives the host namespace."""
    if name == "host":
        return NsKind.HOST, None
    return collect_classify(name)


@dataclass
class _Ns:
    name: str
    path: str | None = None
    tables: dict = field(default_factory=dict)  # table name -> (Table, section)
    save_dump: IptablesDump | None = None
    raw: list[str] = field(default_factory=list)
    links: list[Interface] = field(default_factory=list)
    addrs: list[Interface] = field(default_factory=list)
    ipvs: IpvsTable | None = None
    routes: list[str] = field(default_factory=list)
    route_objs: list = field(default_factory=list)
    routes_read: bool = False
    sysctls: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lossy: list[str] = field(default_factory=list)
    backend_hint: str | None = None
    absent: bool = False  # nsenter could not open its file: the namespace does not exist


@dataclass
class NodeText:
    """Everything read for one node, before it becomes a snapshot."""

    label: str  # where it came from (file name, node index)
    ns: dict[str, _Ns] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # docker info fields
    dns: list[tuple] = field(default_factory=list)  # (Lookup, section)
    ipvs_evidence: list[tuple[bool, str]] = field(default_factory=list)  # (answered, "file:line: text")
    provenance: list[Provenance] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    node_ids: set = field(default_factory=set)  # com.docker.swarm.node.id of the node's own task containers
    markers: set = field(default_factory=set)  # support.sh 'nnn Network X' markers seen (X or ingress_sbox)
    transcript: bool = False

    def nsd(self, name: str, path: str | None = None) -> _Ns:
        d = self.ns.get(name)
        if d is None:
            d = self.ns[name] = _Ns(name=name, path=path)
        elif path and not d.path:
            d.path = path
        return d


def parse_docker_info(text: str) -> dict:
    """The fields of ``docker info`` that identify a node (hostname, node id and address, role, engine, kernel)."""
    out: dict = {}
    keys = {"Name": "hostname", "NodeID": "node_id", "Node Address": "node_addr", "Is Manager": "is_manager",
            "Server Version": "engine_version", "Kernel Version": "kernel", "Swarm": "swarm", "Operating System": "os"}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$", line)
        if m and m.group(1) in keys and m.group(2) and keys[m.group(1)] not in out:
            out[keys[m.group(1)]] = m.group(2)
    return out


def _container_from_block(text: str) -> dict:
    """The raw inspect (Id, Name, State, Config.Labels, NetworkSettings) from support.sh's ``--format`` lines."""
    raw: dict = {"Config": {}}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if not value:
            continue
        try:
            v = json.loads(value)
        except ValueError:
            raise ParseError("container block", 0, line, f"{key} is not JSON") from None
        if key == "Labels":
            raw["Config"]["Labels"] = v or {}
        elif key in ("Name", "Id", "State", "NetworkSettings", "Hostname", "CreatedAt", "RestartCount"):
            raw[key] = v
    if not raw.get("Id"):
        raise ParseError("container block", 0, "", "no Id line")
    return raw


def read_section(nt: NodeText, sec: Section) -> None:
    """Parse one section into ``nt``; ParseError/ValueError propagate (the caller lists them as skipped)."""
    from swarmscope.collect.docker_api import norm_container, norm_network  # pure normalisers

    kind = sec.kind
    if kind == "nnn-marker":
        nt.transcript = True
        nt.markers.add(sec.extra.get("network"))
        return
    if kind == "summary":
        nt.transcript = True
    ns = nt.nsd(sec.namespace, sec.ns_path)
    gone = re.search(r"^nsenter: (?:cannot open|can't open) (\S+?):? No such file", sec.text, re.M)
    if gone and sec.namespace != "host":
        ns.absent = True  # the namespace file does not exist: absent, which the correlator may judge
        nt.provenance.append(Provenance(what=f"text: {sec.command or kind}", namespace=sec.namespace, status="failed",
                                        argv=[sec.command] if sec.command else [],
                                        reason=f"{gone.group(0)} (read from {sec.where})"))
        return
    if kind == "iptables-list":
        from swarmscope.parse.iptables_list import parse_iptables_list

        lt = parse_iptables_list(sec.text, sec.table)
        if "# Warning: iptables-legacy tables present" in sec.text:
            ns.backend_hint = "nft"
        ns.tables[lt.table.name] = (lt.table, sec)
        ns.raw.append(f"# {sec.command or 'iptables -L'}   ({sec.where})\n{sec.text}")
        ns.lossy.extend(f"{sec.where}: {x}" for x in lt.lossy)
        ns.notes.extend(f"{sec.source}:{u} (kept as text)" for u in lt.unparsed)
    elif kind == "iptables-save":
        from swarmscope.parse.iptables import parse_iptables_rules, parse_iptables_save

        if re.search(r"^\*\w+", sec.text, re.M):
            d = parse_iptables_save(sec.text, backend="legacy" if sec.command and "legacy" in sec.command else "nft")
            for name, t in d.tables.items():
                ns.tables[name] = (t, sec)
        else:
            t = parse_iptables_rules(sec.text, table=sec.table or "filter")
            ns.tables[t.name] = (t, sec)
        ns.raw.append(f"# {sec.command or 'iptables-save'}   ({sec.where})\n{sec.text}")
    elif kind in ("ipvsadm", "ipvsadm-save", "proc-ip_vs"):
        from swarmscope.parse import ipvs as P

        first = sec.text.strip().splitlines()[0] if sec.text.strip() else ""
        if "Can't initialize ipvs" in sec.text or "Protocol not available" in sec.text:
            reason = " ".join(ln.strip() for ln in sec.text.strip().splitlines())
            ns.ipvs = IpvsTable(available=False, source="ipvsadm", reason=f"ipvsadm: {reason}", raw=sec.text)
            nt.ipvs_evidence.append((False, f"{sec.where}: {first}"))
        else:
            if kind == "ipvsadm":
                services = P.parse_ipvsadm_list(sec.text)
            elif kind == "ipvsadm-save":
                services = P.parse_ipvsadm_save(sec.text)
            else:
                services = P.parse_proc_ip_vs(sec.text)
            ns.ipvs = IpvsTable(available=True, source="ipvsadm" if kind != "proc-ip_vs" else "proc",
                                services=services, raw=sec.text)
            if first.startswith("IP Virtual Server version") or services:
                nt.ipvs_evidence.append((True, f"{sec.where}: {first or 'IPVS table'}"))
    elif kind == "ip-o-addr":
        from swarmscope.parse.ipoutput import parse_ip_oneline_addr

        ns.addrs = _merge(ns.addrs, parse_ip_oneline_addr(sec.text))
    elif kind == "ip-addr":
        from swarmscope.parse.iproute import parse_ip_addr

        ns.links = _merge(ns.links, parse_ip_addr(sec.text))
    elif kind == "ip-o-link":
        from swarmscope.parse.ipoutput import parse_ip_oneline_link

        ns.links = _merge(ns.links, parse_ip_oneline_link(sec.text))
    elif kind == "ip-route":
        from swarmscope.parse.ipoutput import parse_ip_route

        rs = parse_ip_route(sec.text)
        ns.routes = [r.destination for r in rs if ":" not in r.destination and r.type == "unicast"]
        ns.route_objs, ns.routes_read = rs, True
    elif kind == "ip-neigh":
        from swarmscope.parse.ipoutput import parse_ip_neigh

        parse_ip_neigh(sec.text)  # read for its validity; the model has no place for neighbours
    elif kind == "bridge-fdb":
        from swarmscope.parse.ipoutput import parse_bridge_fdb

        parse_bridge_fdb(sec.text)
    elif kind == "network-inspect":
        try:
            data = json.loads(sec.text)
        except ValueError as exc:
            raise ParseError("docker network inspect", 0, "", f"not JSON ({exc})") from None
        if not isinstance(data, list):
            raise ParseError("docker network inspect", 0, "", "not a JSON list")
        for raw in data:
            if isinstance(raw, dict):
                net = norm_network(raw, verbose="Services" in raw or "Peers" in raw)
                nt.networks[net.id] = net
    elif kind in ("container", "container-inspect"):
        if kind == "container":
            raws = [_container_from_block(sec.text)]
        else:
            raws = json.loads(sec.text)
        for raw in raws:
            nt.containers.append(norm_container(raw))
            nid = ((raw.get("Config") or {}).get("Labels") or {}).get("com.docker.swarm.node.id")
            if nid:
                nt.node_ids.add(nid)
    elif kind == "docker-info":
        nt.info.update({k: v for k, v in parse_docker_info(sec.text).items() if k not in nt.info})
    elif kind == "dns":
        from swarmscope.parse.dnsout import parse_dns

        nt.dns.append((parse_dns(sec.text), sec))
    elif kind == "sysctl":
        for line in sec.text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                ns.sysctls[k.strip()] = v.strip()
    elif kind in ("overlap", "summary", "service-inspect"):
        pass
    else:
        raise ParseError(kind, 0, "", "no reader for this kind of section")
    nt.provenance.append(
        Provenance(
            what=f"text: {sec.command or kind}",
            namespace=sec.namespace,
            status="ok",
            argv=[sec.command] if sec.command else [],
            reason=f"read from {sec.where}",
        )
    )


def _merge(have: list[Interface], new: list[Interface]) -> list[Interface]:
    by = {i.index: i for i in have}
    for i in new:
        if i.index in by:
            old = by[i.index]
            for a in i.addresses:
                if a.cidr not in {x.cidr for x in old.addresses}:
                    old.addresses.append(a)
        else:
            by[i.index] = i
    return sorted(by.values(), key=lambda x: x.index)


def _link_states(d: _Ns, notes: list[str]) -> None:
    """Interfaces known only from ``ip -o addr`` (no flags, no state): up when the namespace's routes
    have the kernel's connected route through them (the kernel removes it when a link goes down;
    ``linkdown`` marks a link without carrier); down when routes were read and an interface with
    a subnet address has none. Without routes the state is not in the input: taken as not down
    (state unknown), so no fault is invented, and said so."""
    for i in d.addrs:
        if i.name == "lo":
            i.admin_up, i.state = True, "unknown"
            continue
        mine = [r for r in d.route_objs if r.dev == i.name and r.proto == "kernel"]
        if mine:
            i.admin_up = True
            i.state = "down" if all("linkdown" in r.flags for r in mine) else "up"
        elif d.routes_read and any(a.family == 4 and a.prefixlen < 32 for a in i.addresses):
            i.admin_up, i.state = False, "down"
            notes.append(
                f"{d.name}: {i.name} has no connected route in 'ip route' although it has a subnet address: "
                "read as down"
            )
        else:
            i.admin_up, i.state = True, "unknown"
            notes.append(f"{d.name}: {i.name}: link state not in the input (ip -o addr prints none): taken as not down")


def _interfaces(d: _Ns) -> list[Interface]:
    """Links (flags, state, master) joined with addresses (ip -o addr), by index."""
    if not d.links:
        return d.addrs
    out = {i.index: i for i in d.links}
    for a in d.addrs:
        if a.index in out:
            have = {x.cidr for x in out[a.index].addresses}
            out[a.index].addresses.extend(x for x in a.addresses if x.cidr not in have)
        else:
            out[a.index] = a
    return sorted(out.values(), key=lambda x: x.index)


def _dump(d: _Ns, kind: NsKind, backend: str | None) -> tuple[IptablesDump | None, str | None]:
    """The namespace's iptables, or None and why (no table read, or a table the correlator reads is absent)."""
    if not d.tables:
        return None, None
    need = [t for t in NEEDED_TABLES.get(kind, ()) if t not in d.tables]
    if need:
        return None, (
            f"{d.name}: iptables left unread: the input has {', '.join(sorted(d.tables))} but not "
            f"{', '.join(need)} (an absent table would read as an empty one)"
        )
    dump = IptablesDump(
        backend=backend or "unknown", tables={k: v[0] for k, v in d.tables.items()}, raw="\n".join(d.raw)
    )
    return dump, None


def to_snapshot(nt: NodeText) -> Snapshot:
    """The snapshot of what ``nt`` holds; empty where the text says nothing."""
    info = nt.info
    containers = nt.containers
    node_id = info.get("node_id")
    if not node_id:
        node_id = next(iter(nt.node_ids)) if len(nt.node_ids) == 1 else None
    node_addr = info.get("node_addr")
    if not node_addr:
        node_addr = _node_addr(nt)
    hostname = info.get("hostname") or (f"node-{node_id[:12]}" if node_id else nt.label)
    backend = next((d.backend_hint for d in nt.ns.values() if d.backend_hint), None)
    notes: list[str] = []
    errors = list(nt.skipped)

    # the host
    h = nt.ns.get("host") or _Ns(name="host")
    host = HostNamespace(interfaces=_interfaces(h), routes=h.routes)
    host.iptables, why = _dump(h, NsKind.HOST, backend)
    if why:
        notes.append(why)
    gw = next((i for i in host.interfaces if i.name == "docker_gwbridge"), None)
    if host.interfaces:
        host.gwbridge = Bridge(
            name="docker_gwbridge",
            present=gw is not None,
            addresses=list(gw.addresses) if gw else [],
            members=sorted(i.name for i in host.interfaces if i.master == "docker_gwbridge"),
            state=gw.state if gw else None,
        )
        if gw is None and not h.links:
            host.gwbridge = None  # addresses alone cannot say a bridge without an address is absent

    # namespaces
    namespaces: list[Namespace] = []
    nets = nt.networks
    by_sandbox = {(c.sandbox_key or "").rstrip("/").rsplit("/", 1)[-1]: c for c in containers if c.sandbox_key}
    for name, d in nt.ns.items():
        if name == "host" or (d.absent and not (d.tables or d.addrs or d.links or d.ipvs)):
            continue
        kind, prefix = classify(name)
        if not d.links:
            _link_states(d, notes)
        ns = Namespace(name=name, path=d.path or f"/var/run/docker/netns/{name}", kind=kind, network_id=prefix)
        if kind == NsKind.OVERLAY:
            if d.addrs and not d.links:
                notes.append(
                    f"{name}: interfaces left unread: 'ip -o -4 address show' lists only interfaces with an IPv4 "
                    "address, and the overlay's vxlan0 has none (overlay.vxlan-down is not judged)"
                )
            else:
                ns.interfaces = _interfaces(d)
        else:
            ns.interfaces = _interfaces(d)
        ns.iptables, why = _dump(d, kind, backend)
        if why:
            notes.append(why)
        if d.ipvs is not None and (kind in (NsKind.LB, NsKind.INGRESS_SBOX) or (d.ipvs.available and d.ipvs.services)):
            ns.ipvs = d.ipvs
        ns.sysctls = dict(d.sysctls)
        if prefix:
            full = [n for n in nets.values() if n.id.startswith(prefix)]
            if full:
                ns.network_id, ns.network_name = full[0].id, full[0].name
        if kind == NsKind.INGRESS_SBOX:
            ing = [n for n in nets.values() if n.ingress]
            if ing:
                ns.network_id, ns.network_name = ing[0].id, ing[0].name
        c = by_sandbox.get(name)
        if c is not None:
            ns.container_id, ns.container_name, ns.task_id, ns.service_name = c.id, c.name, c.task_id, c.service_name
        namespaces.append(ns)

    namespaces.extend(_not_in_input(nt, namespaces, notes))

    # DNS answers pasted from a task (dig/nslookup/getent): asked on the node, on the network whose
    # service the name belongs to
    dns = []
    for lk, sec in nt.dns:
        if not lk.query:
            notes.append(f"{sec.where}: a DNS answer that does not name the query was not used")
            continue
        sname = lk.query.split(".")
        svc = sname[1] if sname[0] == "tasks" and len(sname) > 1 else sname[0]
        for net in nets.values():
            if svc in net.services and not net.ingress:
                dns.append(
                    DnsAnswer(
                        service=svc,
                        network_id=net.id,
                        network_name=net.name,
                        query=lk.query.split(".")[0] if sname[0] != "tasks" else f"tasks.{svc}",
                        namespace=sec.namespace,
                        status=lk.status if lk.status != "unknown" else "error",
                        answers=lk.answers,
                        reason=lk.reason or f"read from {sec.where}",
                    )
                )

    ip_vs = None
    if nt.ipvs_evidence:
        yes = [w for ok, w in nt.ipvs_evidence if ok]
        no = [w for ok, w in nt.ipvs_evidence if not ok]
        short = lambda w: w.rsplit("/", 1)[-1]  # noqa: E731  (file:lines: text, the file's base name)
        if yes:
            ip_vs = IpvsSupport(available=True, method=f"ipvsadm answered in the input: {short(yes[0])}")
        else:
            ip_vs = IpvsSupport(
                available=False,
                method=f"ipvsadm in the input: {short(no[0])}",
                detail="ipvsadm could not reach the kernel's IPVS (Protocol not available): "
                "ip_vs was not loaded and could not be loaded when the text was captured",
            )
    node = NodeInfo(
        hostname=hostname,
        kernel_release=info.get("kernel") or "",
        node_id=node_id,
        node_addr=node_addr,
        role=("manager" if info.get("is_manager") == "true" else "worker") if "is_manager" in info else None,
        swarm_state=info.get("swarm"),
        engine_version=info.get("engine_version"),
        ip_vs=ip_vs,
        sysctls=dict(h.sysctls),
        iptables=IptablesBackend(
            engine_backend=backend,
            method=(
                "iptables -L printed the nft backend's warning about legacy tables"
                if backend
                else "not in the input: iptables -L does not say which backend it lists"
            ),
        ),
    )
    view = DockerView(
        available=False,
        reason="built from text: no Docker API; services and tasks are rebuilt from the containers and "
        "verbose network inspects the text holds",
        networks=list(nets.values()),
        containers=containers,
    )
    prov = list(nt.provenance)
    for n in notes:
        prov.append(Provenance(what="text: not judged", namespace=n.split(":", 1)[0], status="skipped", reason=n))
    for d in nt.ns.values():
        for x in d.lossy + d.notes:
            prov.append(Provenance(what="text: lossy", namespace=d.name, status="ok", reason=x))
    return Snapshot(
        node=node,
        tool_version="",
        collected_at="",
        complete=not errors,
        netns_dir="",
        host=host,
        namespaces=namespaces,
        dns=dns,
        docker=view,
        provenance=prov,
        errors=errors,
    )


def _not_in_input(nt: NodeText, have: list[Namespace], notes: list[str]) -> list[Namespace]:
    """Load-balancer namespaces the node's networks call for but the input does not show, where the
    input cannot say they are absent: recorded as not read (the correlator says unknown), never as
    missing. A support.sh transcript enters ingress_sbox always, and (since 2018) every namespace
    of each overlay network (``*<id:9>*``: 1-<id> and lb_<id>): there, what it did not show is absent."""
    names = {ns.name for ns in have} | {n for n, d in nt.ns.items() if d.absent}
    out = []
    nets = nt.networks
    ingress = next((n for n in nets.values() if n.ingress), None)
    if ingress is not None and "ingress_sbox" not in names and not (nt.transcript and "ingress_sbox" in nt.markers):
        why = (
            "not in the input: the transcript ends before support.sh's ingress_sbox section"
            if nt.transcript
            else "not in the input: no output from ingress_sbox was given"
        )
        out.append(
            Namespace(
                name="ingress_sbox",
                path="/var/run/docker/netns/ingress_sbox",
                kind=NsKind.INGRESS_SBOX,
                network_id=ingress.id,
                network_name=ingress.name,
                errors=[why],
            )
        )
    new_script = any(n.startswith("lb_") for n in names)
    for net in nets.values():
        if net.ingress or net.driver != "overlay" or not any(s.vip for s in net.services.values()):
            continue
        lb = f"lb_{net.id[:9]}"
        if lb in names:
            continue
        if nt.transcript and net.id in nt.markers and new_script:
            continue  # support.sh entered *<id:9>* and found no lb_: absent
        why = (
            "not in the input: this support.sh enters only the overlay namespace of a network"
            if nt.transcript and net.id in nt.markers
            else f"not in the input: no output from {lb} was given"
        )
        out.append(
            Namespace(
                name=lb,
                path=f"/var/run/docker/netns/{lb}",
                kind=NsKind.LB,
                network_id=net.id,
                network_name=net.name,
                errors=[why],
            )
        )
    for ns in out:
        notes.append(f"{ns.name}: {ns.errors[0]} (judged unknown)")
    return out


def _node_addr(nt: NodeText) -> str | None:
    """The node's address: the Host IP the verbose inspects give this node's own tasks."""
    local = {c.name for c in nt.containers}
    for net in nt.networks.values():
        for s in net.services.values():
            for t in s.tasks:
                if t.name in local and t.host_ip:
                    return t.host_ip
    return None
