"""Build node snapshots from raw captured command output (test helper).

The captures under tests/fixtures/lab-vm/ were taken on a real ip_vs kernel
(one file per command and namespace: ``host-iptables-save.txt``,
``ingress_sbox-ipvsadm-Ln.txt``, ``netns-<name>-ip-addr.txt``,
``docker-network-inspect-v-<net>.txt``...). This turns such a directory into
the same ``Snapshot`` the collector produces, through the project's own
parsers and Docker normalisers, so the correlator can be tested on a mesh that
really worked. What the captures lack is filled in plainly and named here:
DNS answers are derived from ``docker network inspect -v`` (what the resolver
serves), and node sysctls are the values the engine sets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from swarmscope.collect.docker_api import norm_network, norm_service
from swarmscope.collect.snapshot import classify
from swarmscope.model import (
    Bridge,
    Container,
    ContainerNet,
    DnsAnswer,
    DockerView,
    HostNamespace,
    IpvsSupport,
    IpvsTable,
    IptablesBackend,
    IptablesDump,
    Namespace,
    NodeInfo,
    Snapshot,
    Task,
    TaskAttachment,
)
from swarmscope.parse.iproute import parse_ip_addr
from swarmscope.parse.iptables import parse_iptables_save
from swarmscope.parse.ipvs import parse_ipvsadm_list

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LAB_VM = FIXTURES / "lab-vm"


def _strip_comment(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not l.startswith("# ")) + "\n"


def _json(path: Path):
    return json.loads(_strip_comment(path.read_text()))


def _files(dirs: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in dirs:
        for p in sorted(d.iterdir()):
            out[p.name] = p
    return out


def _ns_files(files: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """namespace name -> {command: path}."""
    out: dict[str, dict[str, Path]] = {}
    for name, p in files.items():
        m = re.match(r"^(?:netns-)?(ingress_sbox|lb_[0-9a-z]+|\d+-[0-9a-z]+|[0-9a-f]{12})-(ip-addr|iptables-save|ipvsadm-Ln|sysctl)\.txt$", name)
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = p
    return out


def build(dirs: list[Path], hostname: str = "lab-vm", node_id: str = "labvmnode0000000000000000", engine: str = "20.10.24+dfsg1") -> Snapshot:
    files = _files(dirs)
    services = []
    if "docker-service-inspect.txt" in files:
        services = [norm_service(s) for s in _json(files["docker-service-inspect.txt"])]
    networks = []
    for name, p in files.items():
        if name.startswith("docker-network-inspect-v-"):
            for raw in _json(p):
                networks.append(norm_network(raw, verbose=True))
    if "docker-network-inspect-docker_gwbridge.txt" in files:
        for raw in _json(files["docker-network-inspect-docker_gwbridge.txt"]):
            networks.append(norm_network(raw, verbose=False))
    by_name = {s.name: s for s in services}

    nsf = _ns_files(files)
    listing = files.get("netns-list.txt")
    if listing is not None:  # namespaces as they were at the last capture only
        alive = {l.split()[-1] for l in listing.read_text().splitlines() if l.startswith("-")}
        nsf = {k: v for k, v in nsf.items() if k in alive}
    namespaces: list[Namespace] = []
    for nsname, cmds in sorted(nsf.items()):
        kind, prefix = classify(nsname)
        ns = Namespace(name=nsname, path=f"/var/run/docker/netns/{nsname}", kind=kind, network_id=prefix)
        failed = [p for p in cmds.values() if "reassociate to namespace" in p.read_text()]
        if failed:
            # what nsenter says for a namespace file that is no longer a mounted namespace
            ns.errors.append(failed[0].read_text().strip().splitlines()[-1])
            namespaces.append(ns)
            continue
        if "ip-addr" in cmds:
            ns.interfaces = parse_ip_addr(cmds["ip-addr"].read_text())
        if "iptables-save" in cmds:
            ns.iptables = parse_iptables_save(cmds["iptables-save"].read_text(), backend="nft")
            ns.iptables_other = IptablesDump(backend="legacy", raw="")
        if kind in ("ingress_sbox", "lb") or ("ipvsadm-Ln" in cmds and kind == "container"):
            if "ipvsadm-Ln" in cmds:
                text = cmds["ipvsadm-Ln"].read_text()
                ns.ipvs = IpvsTable(available=True, source="ipvsadm", services=parse_ipvsadm_list(_strip_comment(text)), raw=text)
        if kind in ("ingress_sbox", "lb"):
            # where a capture lacks a value: what engine 20.10.17+ writes there, as the VM tier's real
            # captures of the same engine show (tests/fixtures/vm/healthy/ns/*/sysctl.txt)
            ns.sysctls = {"net.ipv4.ip_forward": "1", "net.ipv4.vs.conntrack": "1", "net.ipv4.vs.conn_reuse_mode": "0",
                          "net.ipv4.vs.expire_nodest_conn": "1", "net.ipv4.vs.expire_quiescent_template": "1"}
            if "sysctl" in cmds:
                for line in cmds["sysctl"].read_text().splitlines():
                    if " = " in line and not line.startswith("#"):
                        k, v = line.split(" = ", 1)
                        ns.sysctls[k.strip()] = v.strip()
        if prefix:
            full = [n for n in networks if n.id.startswith(prefix)]
            if full:
                ns.network_id, ns.network_name = full[0].id, full[0].name
        if kind == "ingress_sbox":
            ing = [n for n in networks if n.ingress]
            if ing:
                ns.network_id, ns.network_name = ing[0].id, ing[0].name
        namespaces.append(ns)

    # containers and tasks, from the verbose network inspects
    containers: dict[str, Container] = {}
    tasks: dict[str, Task] = {}
    for net in networks:
        for c in net.containers:
            if not c.name or c.key in ("ingress-sbox",) or c.key.startswith("lb-"):
                continue
            parts = c.name.split(".")
            if len(parts) != 3 or parts[0] not in by_name:
                continue
            svc = by_name[parts[0]]
            ip = (c.ipv4 or "").split("/")[0]
            plen = int((c.ipv4 or "/0").split("/")[1] or 0)
            cont = containers.setdefault(c.key, Container(id=c.key, name=c.name, service_id=svc.id, service_name=svc.name, task_id=parts[2], state="running"))
            cont.networks.append(ContainerNet(network_id=net.id, network_name=net.name, ip_address=ip, prefixlen=plen, endpoint_id=c.endpoint_id))
            t = tasks.setdefault(parts[2], Task(id=parts[2], service_id=svc.id, service_name=svc.name,
                                                 slot=int(parts[1]) if parts[1].isdigit() else None, node_id=node_id,
                                                 desired_state="running", state="running", container_id=c.key))
            t.attachments.append(TaskAttachment(network_id=net.id, network_name=net.name, addresses=[c.ipv4]))
    for c in containers.values():
        ips = {cn.ip_address for cn in c.networks}
        for ns in namespaces:
            if ns.kind == "container" and any(a.address in ips for i in ns.interfaces for a in i.addresses):
                c.sandbox_key, ns.container_id, ns.container_name = ns.path, c.id, c.name
                ns.task_id, ns.service_name = c.task_id, c.service_name

    # DNS as the resolver serves it (derived from network inspect -v)
    dns: list[DnsAnswer] = []
    for net in networks:
        if net.ingress or net.driver != "overlay":
            continue
        asker = next((ns.name for ns in namespaces if ns.kind == "lb" and ns.network_id == net.id), "derived")
        for sname, s in sorted(net.services.items()):
            svc = by_name.get(sname)
            task_ips = sorted(t.endpoint_ip for t in s.tasks if t.endpoint_ip)
            vip_answer = [s.vip.split("/")[0]] if s.vip and (svc is None or svc.endpoint_mode == "vip") else task_ips
            dns.append(DnsAnswer(service=sname, network_id=net.id, network_name=net.name, query=sname, namespace=asker, status="ok", answers=vip_answer))
            dns.append(DnsAnswer(service=sname, network_id=net.id, network_name=net.name, query=f"tasks.{sname}", namespace=asker, status="ok", answers=task_ips))

    host = HostNamespace()
    if "host-ip-addr.txt" in files:
        host.interfaces = parse_ip_addr(files["host-ip-addr.txt"].read_text())
    if "host-iptables-save.txt" in files:
        host.iptables = parse_iptables_save(files["host-iptables-save.txt"].read_text(), backend="nft")
        host.iptables_other = IptablesDump(backend="legacy", raw="")
    gw = next((i for i in host.interfaces if i.name == "docker_gwbridge"), None)
    host.gwbridge = Bridge(name="docker_gwbridge", present=gw is not None, addresses=list(gw.addresses) if gw else [],
                           members=sorted(i.name for i in host.interfaces if i.master == "docker_gwbridge"), state=gw.state if gw else None)
    host.routes = ["0.0.0.0/0", "172.17.0.0/16", "172.18.0.0/16", "192.168.76.0/24"]

    node = NodeInfo(
        hostname=hostname,
        kernel_release="6.1.0-debian (lab-vm)",
        node_id=node_id,
        role="manager",
        swarm_state="active",
        engine_version=engine,
        api_version="1.41",
        ip_vs=IpvsSupport(available=True, method="/proc/net/ip_vs exists (ip_vs is loaded)"),
        iptables=IptablesBackend(engine_backend="nft", method="captured with iptables-nft", other_backend="legacy", other_backend_rules=0),
        sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.docker_gwbridge.route_localnet": "1"},
    )
    view = DockerView(services=services, tasks=list(tasks.values()), networks=networks, containers=list(containers.values()))
    return Snapshot(node=node, tool_version="fixture", collected_at="2026-11-21T09:13:00Z",
                    netns_dir="/var/run/docker/netns" if listing is not None else "",
                    host=host, namespaces=namespaces, dns=dns, docker=view)


def lab_vm(which: str = "with-overlay") -> Snapshot:
    dirs = [LAB_VM / "ingress-only"]
    if which == "with-overlay":
        dirs.append(LAB_VM / "with-overlay")
    return build(dirs)


def find_ns(snap: Snapshot, kind: str, network: Optional[str] = None) -> Namespace:
    for ns in snap.namespaces:
        if ns.kind == kind and (network is None or ns.network_name == network):
            return ns
    raise KeyError((kind, network))


PUBLIC = FIXTURES / "public"


def _ns(name: str, **kw) -> Namespace:
    kind, prefix = classify(name)
    return Namespace(name=name, path=f"/var/run/docker/netns/{name}", kind=kind, network_id=kw.pop("network_id", prefix), **kw)


def moby_25() -> Snapshot:
    """Fixture 25: a moby maintainer's healthy single-node dump (current engines).

    Captured: network inspect -v (ingress, someovl), host iptables-save, the
    task sandbox's iptables-save, ingress_sbox (ip -d addr, iptables-save,
    ipvsadm -S) and the lb_ namespace (ip -d addr, iptables-save). Not
    captured, and so filled in from the source's own command line
    (`docker service create --mode global --name foo --network someovl
    --publish 3000:80 --publish 3001:53/udp nginx`): the service's mode and
    port protocols; the task's container sandbox is the one dumped.
    The lb_ namespace's IPVS table is not in the source: left unread.
    """
    d = PUBLIC / "25"
    nets = [norm_network(raw, verbose=True) for raw in json.loads((d / "network-inspect-v.json").read_text())]
    ingress = next(n for n in nets if n.ingress)
    ovl = next(n for n in nets if not n.ingress)
    ing_svc = ingress.services["foo"]
    task_ep = ing_svc.tasks[0]
    _, node_id, task_id = task_ep.name.split(".")
    from swarmscope.model import PortSpec, Service, ServiceVip

    svc = Service(
        id="foo0service0id0000000000", name="foo", mode="global", endpoint_mode="vip",
        ports=[PortSpec("tcp", 80, 3000, "ingress"), PortSpec("udp", 53, 3001, "ingress")],
        vips=[ServiceVip(ingress.id, ing_svc.vip + "/24"), ServiceVip(ovl.id, ovl.services["foo"].vip + "/24")],
        networks=[ovl.id],
    )
    cont_key = next(c.key for c in ingress.containers if c.name == task_ep.name)
    ovl_ip = ovl.services["foo"].tasks[0].endpoint_ip
    task = Task(id=task_id, service_id=svc.id, service_name="foo", node_id=node_id, desired_state="running", state="running",
                container_id=cont_key, attachments=[TaskAttachment(ingress.id, "ingress", [task_ep.endpoint_ip + "/24"]),
                                                     TaskAttachment(ovl.id, ovl.name, [ovl_ip + "/24"])])
    sbox = _ns("ingress_sbox", network_id=ingress.id, network_name="ingress")
    sbox.interfaces = parse_ip_addr((d / "ingress_sbox-ip-d-addr.txt").read_text())
    sbox.iptables = parse_iptables_save((d / "ingress_sbox-iptables-save.txt").read_text())
    from swarmscope.parse.ipvs import parse_ipvsadm_save

    sbox.ipvs = IpvsTable(available=True, source="ipvsadm", services=parse_ipvsadm_save((d / "ingress_sbox-ipvsadm-S.txt").read_text()))
    sbox.sysctls = {"net.ipv4.ip_forward": "1"}
    lb = _ns("lb_0a7kccl4d", network_id=ovl.id, network_name=ovl.name)
    lb.interfaces = parse_ip_addr((d / "lb_0a7kccl4d-ip-d-addr.txt").read_text())
    lb.iptables = parse_iptables_save((d / "lb_0a7kccl4d-iptables-save.txt").read_text())
    lb.sysctls = {"net.ipv4.ip_forward": "1"}
    tns = _ns("231b9363e169", container_id=cont_key, container_name=task_ep.name, task_id=task_id, service_name="foo")
    tns.iptables = parse_iptables_save((d / "netns-231b9363e169-iptables-save.txt").read_text())
    host = HostNamespace(iptables=parse_iptables_save((d / "host-iptables-save.txt").read_text()))
    cont = Container(id=cont_key, name=task_ep.name, sandbox_key=tns.path, service_id=svc.id, service_name="foo", task_id=task_id,
                     state="running", networks=[ContainerNet(ingress.id, "ingress", task_ep.endpoint_ip, 24), ContainerNet(ovl.id, ovl.name, ovl_ip, 24)])
    hostname = ingress.peers[0].name
    dns = [
        DnsAnswer("foo", ovl.id, ovl.name, "foo", lb.name, "ok", [ovl.services["foo"].vip]),
        DnsAnswer("foo", ovl.id, ovl.name, "tasks.foo", lb.name, "ok", [ovl_ip]),
    ]
    node = NodeInfo(hostname=hostname, kernel_release="(not captured)", node_id=node_id, role="manager", swarm_state="active",
                    engine_version="29.0.0-dev", api_version="1.52",
                    ip_vs=IpvsSupport(available=True, method="ipvsadm -S answered in the capture"),
                    iptables=IptablesBackend("nft", "iptables v1.8.9 (nf_tables) in the capture", "legacy", 0),
                    sysctls={"net.ipv4.ip_forward": "1"})
    return Snapshot(node=node, tool_version="fixture", host=host, namespaces=[sbox, lb, tns], dns=dns,
                    docker=DockerView(services=[svc], tasks=[task], networks=nets, containers=[cont]))


def public_19() -> list[Snapshot]:
    """Fixture 19: the same VIP on two hosts' lb_ namespaces, marked 0x10c on one, 0x10d on the other.

    The blog post shows only rule and IPVS excerpts; the service, its tasks and
    the network are written here from those excerpts (VIP 192.168.200.34/24,
    real servers .35-.37), which is all the source offers. LocalLBIndex is not
    in the source, so it is left unknown: each node's own mark is followed.
    """
    from swarmscope.model import Address, Interface, Network, PortSpec, Service, ServiceVip
    from swarmscope.parse.ipvs import parse_ipvsadm_save

    d = PUBLIC / "19"
    net = Network(id="chhv2g5nnnetworkid0000000", name="overlay1", driver="overlay", scope="swarm", subnets=["192.168.200.0/24"], verbose=False)
    svc = Service(id="alp2serviceid000000000000", name="alp2", mode="replicated", replicas=3, ports=[PortSpec("tcp", 80, 80, "ingress")][:0],
                  vips=[ServiceVip(net.id, "192.168.200.34/24")], networks=[net.id])
    tasks = [Task(id=f"alp2task{i}", service_id=svc.id, service_name="alp2", slot=i, node_id="host1id", desired_state="running",
                  state="running", attachments=[TaskAttachment(net.id, net.name, [f"192.168.200.{34 + i}/24"])]) for i in (1, 2, 3)]
    snaps = []
    for host, lbname, src in (("host1", "lb_chhv2g5nn", "192.168.200.38"), ("host2", "lb_xxxxxx", "192.168.200.39")):
        lb = _ns(lbname, network_id=net.id, network_name=net.name)
        lb.iptables = parse_iptables_save((d / f"{host}-{lbname}-iptables-save-excerpt.txt").read_text(), lenient=True)
        lb.ipvs = IpvsTable(available=True, source="ipvsadm", services=parse_ipvsadm_save((d / f"{host}-{lbname}-ipvsadm-save.txt").read_text()))
        lb.interfaces = [Interface(name="eth0", index=2, kind="veth", state="up", admin_up=True,
                                   addresses=[Address(src, 24), Address("192.168.200.34", 32)])]
        lb.sysctls = {"net.ipv4.ip_forward": "1"}
        node = NodeInfo(hostname=host, kernel_release="(not captured)", node_id=f"{host}id", role="manager" if host == "host1" else "worker",
                        swarm_state="active", ip_vs=IpvsSupport(available=True, method="ipvsadm --save answered in the capture"),
                        iptables=IptablesBackend("nft", "assumed", "legacy", 0))
        view = DockerView(services=[svc] if host == "host1" else [], tasks=tasks if host == "host1" else [], networks=[net])
        dns = [DnsAnswer("alp2", net.id, net.name, "alp2", lbname, "ok", ["192.168.200.34"])]
        snaps.append(Snapshot(node=node, tool_version="fixture", namespaces=[lb], docker=view, dns=dns))
    return snaps
