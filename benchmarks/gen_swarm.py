#!/usr/bin/env python3
"""Generate a realistic synthetic multi-node swarmscope dump at any size.

Usage:  python3 benchmarks/gen_swarm.py --nodes 10 --services 100 --tasks 500 -o swarm.json
        [--networks K] [--seed N] [--fault KIND[:ARG]] [--analyze] [--raw]

The dump has exactly the shape of one gathered from a real swarm
(``swarmscope dump --json`` on a manager), node by node:

- the host namespace: iptables-save text of the engine's nft rules, parsed by
  swarmscope's own parser (DOCKER-INGRESS DNAT + filter ACCEPT per published
  port, the jumps, DOCKER-USER first), docker_gwbridge, interfaces, routes;
- ``ingress_sbox``: its ingress and docker_gwbridge addresses, one ingress VIP
  /32 alias per published service, mangle PREROUTING MARK per published port
  and INPUT MARK per ingress VIP with the *node's own* LocalLBIndex, the IPVS
  SNAT, and IPVS (read "over netlink": no raw text) with one FWM service per
  published port and one real server per task cluster-wide;
- one ``lb_<network>`` namespace per overlay network with a task on the node:
  its endpoint address, one VIP /32 alias per service, mangle INPUT MARK per
  VIP (node-local LocalLBIndex), SNAT, IPVS with every task of each service;
  the sysctls dockerd sets;
- one overlay namespace ``1-<network>`` per network on the node (br0, vxlan0, veths);
- one task sandbox per task on the node: eth0 (overlay), eth1 (ingress),
  eth2 (docker_gwbridge), the filter rules and the nat REDIRECT from the
  published to the target port dockerd programs, the embedded-DNS rules;
- DNS answers as the embedded resolver serves them (``svc`` -> VIP,
  ``tasks.svc`` -> task addresses), asked from each lb_;
- the Docker API view: on the manager (node 0) services, tasks and nodes; on
  every node its own containers and verbose inspects of its networks (with the
  node's own LocalLBIndex per service), and docker_gwbridge;
- provenance entries as the collector records them.

Services are replicated, published in ingress mode on ports 30000+i, and spread
over ``--networks`` overlay networks (default: one per 10 services). LocalLBIndex
is allocated per node from 256 in a node-specific order, as dockerd does, so
marks differ between nodes (they are never compared across nodes).

A healthy swarm is judged with zero findings. ``--fault`` injects one fault:

  delete-real-server[:NODE]   a task's real server is removed from ingress_sbox IPVS on NODE (default 0)
                              -> ipvs.backend-missing
  flush-dnat[:NODE]           the host DNAT of the first published port is missing on NODE
                              -> ingress.dnat-missing
  stale-real-server[:NODE]    a real server no task owns is added to the first service's IPVS
                              -> ipvs.backend-stale
  lb-ip-forward-off[:NODE]    net.ipv4.ip_forward=0 in the first network's lb_ on NODE
                              -> lb.ip-forward-off

Without ``--analyze`` the dump's ``services`` and ``findings`` are empty
(``--from`` recomputes them; computing them here costs as much as a ``check``),
and the nodes are written one at a time, so memory stays at one node's size.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from swarmscope.collect.docker_api import norm_container, norm_network, norm_node, norm_service, norm_task  # noqa: E402
from swarmscope.model import (  # noqa: E402
    Address,
    Bridge,
    DnsAnswer,
    DockerView,
    HostNamespace,
    IptablesBackend,
    IptablesDump,
    IpvsDest,
    IpvsService,
    IpvsSupport,
    IpvsTable,
    Interface,
    Namespace,
    NodeInfo,
    Provenance,
    Snapshot,
)
from swarmscope.parse.iptables import parse_iptables_save  # noqa: E402

NETNS = "/var/run/docker/netns"
ENGINE = "24.0.7"
API = "1.43"
KERNEL = "6.1.0-18-amd64"
GW_NET = ipaddress.ip_network("172.18.0.0/16")
INGRESS_NET = ipaddress.ip_network("10.255.0.0/16")
NODE_NET = ipaddress.ip_network("192.168.0.0/16")
FIXED_TIME = "2026-11-21T09:13:00Z"
STAMP = "Sat Nov 21 09:13:00 2026"
SAVE_SCRIPT = ["sh", "-c", "for b in nft legacy; do ...; done"]  # what collect/iptables.py runs, abbreviated
LB_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.vs.conntrack": "1", "net.ipv4.vs.conn_reuse_mode": "0",
              "net.ipv4.vs.expire_nodest_conn": "1", "net.ipv4.vs.expire_quiescent_template": "1"}
FAULTS = ("delete-real-server", "flush-dnat", "stale-real-server", "lb-ip-forward-off")


# --------------------------------------------------------------------------
# the swarm's plan


@dataclass
class GNet:
    id: str
    name: str
    subnet: ipaddress.IPv4Network
    gateway: str
    vxlan: int
    ingress: bool = False
    services: list["GService"] = field(default_factory=list)
    next_host: int = 2


@dataclass
class GService:
    idx: int
    id: str
    name: str
    port: int  # published (ingress mode)
    target: int
    net: GNet
    vip: str = ""  # on its overlay network
    ingress_vip: str = ""
    tasks: list["GTask"] = field(default_factory=list)


@dataclass
class GTask:
    id: str
    svc: GService
    slot: int
    node: int
    container_id: str
    sandbox: str  # 64 hex; the namespace file is the first 12
    ip: str = ""  # overlay
    ingress_ip: str = ""
    gw_ip: str = ""


@dataclass
class GNode:
    idx: int
    id: str
    hostname: str
    addr: str
    tasks: list[GTask] = field(default_factory=list)
    lb_index: dict[tuple[str, str], int] = field(default_factory=dict)  # (network id, service name) -> mark
    lb_ip: dict[str, str] = field(default_factory=dict)  # network id -> lb endpoint address
    ingress_ip: str = ""
    gw_next: int = 3


class Swarm:
    def __init__(self, nodes: int, services: int, tasks: int, networks: Optional[int] = None, seed: int = 17):
        if nodes < 1 or services < 1 or tasks < services:
            raise ValueError("need nodes >= 1, services >= 1 and tasks >= services")
        self.rng = random.Random(seed)
        self.nodes = [GNode(i, self._sid(), f"node-{i:03d}", str(NODE_NET.network_address + 10 + i)) for i in range(nodes)]
        k = networks or max(1, (services + 9) // 10)
        self.ingress = GNet(self._sid(), "ingress", INGRESS_NET, str(INGRESS_NET.network_address + 1), 4096, ingress=True)
        self.nets = []
        for i in range(k):
            sub = ipaddress.ip_network(f"10.{1 + i // 256}.{i % 256}.0/24" if services // k + tasks // k + nodes < 250
                                       else f"10.{16 + i}.0.0/16")
            self.nets.append(GNet(self._sid(), f"net{i:03d}", sub, str(sub.network_address + 1), 4097 + i))
        self.services = []
        for i in range(services):
            net = self.nets[i % k]
            s = GService(i, self._sid(), f"svc{i:04d}", 30000 + i, 8080, net)
            net.services.append(s)
            self.services.append(s)
        # VIPs first (the engine allocates them when the service is created), then tasks
        for s in self.services:
            s.vip = self._alloc(s.net)
            s.ingress_vip = self._alloc(self.ingress)
        # lb_ and ingress_sbox endpoints per node
        for n in self.nodes:
            n.ingress_ip = self._alloc(self.ingress)
        per = [tasks // services + (1 if i < tasks % services else 0) for i in range(services)]
        slot_node = 0
        for s, count in zip(self.services, per):
            for slot in range(1, count + 1):
                node = self.nodes[slot_node % nodes]
                slot_node += 1
                sandbox = self._hex(64)
                t = GTask(self._sid(), s, slot, node.idx, self._hex(64), sandbox)
                s.tasks.append(t)
                node.tasks.append(t)
        for n in self.nodes:
            for net in self.node_nets(n):
                n.lb_ip[net.id] = self._alloc(net)
        for s in self.services:
            for t in s.tasks:
                t.ip = self._alloc(s.net)
                t.ingress_ip = self._alloc(self.ingress)
                node = self.nodes[t.node]
                t.gw_ip = str(GW_NET.network_address + node.gw_next)
                node.gw_next += 1
        # LocalLBIndex: per node from 256, in a node-specific order (the order the node learnt the services)
        for n in self.nodes:
            pairs = [(self.ingress.id, s.name) for s in self.services] + [(s.net.id, s.name) for s in self.services]
            rot = (n.idx * 7) % len(pairs)
            for i, p in enumerate(pairs[rot:] + pairs[:rot]):
                n.lb_index[p] = 256 + i

    # ids
    def _sid(self) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(25))

    def _hex(self, n: int) -> str:
        return "%0*x" % (n, self.rng.getrandbits(4 * n))

    def _alloc(self, net: GNet) -> str:
        a = net.subnet.network_address + net.next_host
        net.next_host += 1
        if a not in net.subnet or a == net.subnet.broadcast_address:
            raise ValueError(f"network {net.name} {net.subnet} is full")
        return str(a)

    def node_nets(self, n: GNode) -> list[GNet]:
        ids = {t.svc.net.id for t in n.tasks}
        return [net for net in self.nets if net.id in ids]


# --------------------------------------------------------------------------
# text as the commands print it


def _save_header(table: str, chains: list[tuple[str, str]]) -> list[str]:
    out = [f"# Generated by iptables-save v1.8.9 (nf_tables) on {STAMP}", f"*{table}"]
    out += [f":{c} {p} [0:0]" for c, p in chains]
    return out


def _save_footer() -> list[str]:
    return ["COMMIT", f"# Completed on {STAMP}"]


_BUILTIN = {
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
}


def _table(name: str, rules: list[str], user: list[str] = (), policy: dict | None = None) -> list[str]:
    chains = [(c, (policy or {}).get(c, "ACCEPT")) for c in _BUILTIN[name]] + [(c, "-") for c in user]
    return _save_header(name, chains) + rules + _save_footer()


def _dns_rules(rng: random.Random) -> list[str]:
    tp, up = rng.randint(32768, 60999), rng.randint(32768, 60999)
    return [
        "-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT",
        "-A POSTROUTING -d 127.0.0.11/32 -j DOCKER_POSTROUTING",
    ], [
        f"-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:{tp}",
        f"-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:{up}",
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport {tp} -j SNAT --to-source :53",
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport {up} -j SNAT --to-source :53",
    ]


def _mark(m: int) -> str:
    return f"MARK --set-xmark {m:#x}/0xffffffff"


def _parse(text: str) -> IptablesDump:
    return parse_iptables_save(text, backend="nft")


def _legacy_empty() -> IptablesDump:
    return IptablesDump(backend="legacy", available=True, tables={}, raw="")


# --------------------------------------------------------------------------
# one node's snapshot


class Gen:
    def __init__(self, sw: Swarm, faults: list[tuple[str, int]]):
        self.sw = sw
        self.faults = faults
        self.rng = random.Random(4242)
        self.ifindex = 2

    def fault(self, kind: str, node: int) -> bool:
        return (kind, node) in self.faults

    def _iface(self, name: str, addrs: list[tuple[str, int]], kind: Optional[str] = "veth", mtu: int = 1450,
               master: Optional[str] = None, master_index: Optional[int] = None, vxlan: Optional[int] = None,
               state: str = "up") -> Interface:
        self.ifindex += 1
        mac = "02:42:" + ":".join("%02x" % self.rng.randrange(256) for _ in range(4))
        return Interface(name=name, index=self.ifindex, kind=kind, state=state, admin_up=True, mtu=mtu, mac=mac,
                         master=master, master_index=master_index,
                         peer_index=self.ifindex + 1 if kind == "veth" else None,
                         peer_netns_id=0 if kind == "veth" else None, vxlan_id=vxlan,
                         addresses=[Address(a, p) for a, p in addrs])

    def _lo(self) -> Interface:
        return Interface(name="lo", index=1, kind=None, state="unknown", admin_up=True, mtu=65536,
                         mac="00:00:00:00:00:00", addresses=[Address("127.0.0.1", 8)])

    def _prov(self, prov: list[Provenance], ns: str, lb: bool, dns: int = 0) -> None:
        d = lambda: round(self.rng.uniform(0.2, 9.0), 2)  # noqa: E731
        prov.append(Provenance("links+addresses (rtnetlink)", ns, "ok", duration_ms=d()))
        prov.append(Provenance("iptables-save (nft+legacy)", ns, "ok", argv=list(SAVE_SCRIPT), exit_code=0, duration_ms=d()))
        prov.append(Provenance("iptables-nft-save", ns, "ok", argv=["iptables-nft-save"], exit_code=0))
        prov.append(Provenance("iptables-legacy-save", ns, "ok", argv=["iptables-legacy-save"], exit_code=0))
        if lb:
            prov.append(Provenance("ipvs (generic netlink)", ns, "ok", duration_ms=d()))
            prov.append(Provenance("sysctls", ns, "ok", duration_ms=d()))
        if dns:
            prov.append(Provenance(f"dns {dns} queries to 127.0.0.11", ns, "ok", duration_ms=d()))

    def host(self, n: GNode) -> tuple[HostNamespace, dict[str, str]]:
        sw = self.sw
        svcs = sw.services
        flush = self.fault("flush-dnat", n.idx)
        nat_rules = [
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER-INGRESS",
            "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
            "-A POSTROUTING -o docker_gwbridge -m addrtype --src-type LOCAL -j MASQUERADE",
            "-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE",
            "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
            "-A DOCKER -i docker_gwbridge -j RETURN",
            "-A DOCKER -i docker0 -j RETURN",
        ]
        sbox_gw = str(GW_NET.network_address + 2)
        for i, s in enumerate(svcs):
            if flush and i == 0:
                continue
            nat_rules.append(f"-A DOCKER-INGRESS -p tcp -m tcp --dport {s.port} -j DNAT --to-destination {sbox_gw}:{s.port}")
        nat_rules.append("-A DOCKER-INGRESS -j RETURN")
        filt = [
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -j DOCKER-INGRESS",
            "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
            "-A FORWARD -o docker_gwbridge -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A FORWARD -o docker_gwbridge -j DOCKER",
            "-A FORWARD -i docker_gwbridge ! -o docker_gwbridge -j ACCEPT",
            "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A FORWARD -o docker0 -j DOCKER",
            "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
            "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
            "-A FORWARD -i docker_gwbridge -o docker_gwbridge -j DROP",
        ]
        for s in svcs:
            filt.append(f"-A DOCKER-INGRESS -p tcp -m tcp --dport {s.port} -j ACCEPT")
            filt.append(f"-A DOCKER-INGRESS -p tcp -m state --state RELATED,ESTABLISHED -m tcp --sport {s.port} -j ACCEPT")
        filt += [
            "-A DOCKER-INGRESS -j RETURN",
            "-A DOCKER-ISOLATION-STAGE-1 -i docker_gwbridge ! -o docker_gwbridge -j DOCKER-ISOLATION-STAGE-2",
            "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
            "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
            "-A DOCKER-ISOLATION-STAGE-2 -o docker_gwbridge -j DROP",
            "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
            "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
            "-A DOCKER-USER -j RETURN",
        ]
        lines = (_table("filter", filt, ["DOCKER", "DOCKER-INGRESS", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2",
                                         "DOCKER-USER"], {"FORWARD": "DROP"})
                 + _table("nat", nat_rules, ["DOCKER", "DOCKER-INGRESS"]))
        h = HostNamespace()
        h.iptables = _parse("\n".join(lines) + "\n")
        h.iptables_other = _legacy_empty()
        gw = self._iface("docker_gwbridge", [("172.18.0.1", 16)], kind="bridge", mtu=1500)
        ifaces = [self._lo(), self._iface("eth0", [(n.addr, 16)], kind=None, mtu=1500), gw,
                  self._iface("docker0", [("172.17.0.1", 16)], kind="bridge", mtu=1500, state="down")]
        members = []
        for i in range(len(n.tasks) + 1):  # ingress_sbox + every task's eth2
            ifaces.append(self._iface(f"veth{i:07x}", [], mtu=1500, master="docker_gwbridge", master_index=gw.index))
            members.append(ifaces[-1].name)
        h.interfaces = ifaces
        h.routes = ["0.0.0.0/0", "172.17.0.0/16", "172.18.0.0/16", str(NODE_NET)]
        h.gwbridge = Bridge(name="docker_gwbridge", present=True, addresses=[Address("172.18.0.1", 16)],
                            members=sorted(members), state="up")
        return h, {}

    def ingress_sbox(self, n: GNode) -> Namespace:
        sw = self.sw
        ns = Namespace(name="ingress_sbox", path=f"{NETNS}/ingress_sbox", kind="ingress_sbox",
                       network_id=sw.ingress.id, network_name="ingress")
        eth0 = self._iface("eth0", [(n.ingress_ip, sw.ingress.subnet.prefixlen)] + [(s.ingress_vip, 32) for s in sw.services])
        ns.interfaces = [self._lo(), eth0, self._iface("eth1", [(str(GW_NET.network_address + 2), 16)], mtu=1500)]
        pre = [f"-A PREROUTING -p tcp -m tcp --dport {s.port} -j {_mark(n.lb_index[(sw.ingress.id, s.name)])}" for s in sw.services]
        inp = [f"-A INPUT -d {s.ingress_vip}/32 -j {_mark(n.lb_index[(sw.ingress.id, s.name)])}" for s in sw.services]
        head, tail = _dns_rules(self.rng)
        nat = head + [f"-A POSTROUTING -d {sw.ingress.subnet} -m ipvs --ipvs -j SNAT --to-source {n.ingress_ip}"] + tail
        text = "\n".join(_table("mangle", pre + inp) + _table("nat", nat, ["DOCKER_OUTPUT", "DOCKER_POSTROUTING"])) + "\n"
        ns.iptables, ns.iptables_other = _parse(text), _legacy_empty()
        services = []
        for i, s in enumerate(sw.services):
            dests = [IpvsDest(t.ingress_ip, 0, "Masq", 1) for t in s.tasks]
            if i == 0 and self.fault("delete-real-server", n.idx):
                dests = dests[1:]
            if i == 0 and self.fault("stale-real-server", n.idx):
                dests.append(IpvsDest(str(sw.ingress.subnet.broadcast_address - 1), 0, "Masq", 1))
            services.append(IpvsService("fwm", "rr", fwmark=n.lb_index[(sw.ingress.id, s.name)], dests=dests))
        ns.ipvs = IpvsTable(available=True, source="netlink", services=services)
        ns.sysctls = dict(LB_SYSCTLS)
        return ns

    def lb(self, n: GNode, net: GNet, first: bool) -> Namespace:
        ns = Namespace(name=f"lb_{net.id[:9]}", path=f"{NETNS}/lb_{net.id[:9]}", kind="lb",
                       network_id=net.id, network_name=net.name)
        lbip = n.lb_ip[net.id]
        ns.interfaces = [self._lo(), self._iface("eth0", [(lbip, net.subnet.prefixlen)] + [(s.vip, 32) for s in net.services])]
        inp = [f"-A INPUT -d {s.vip}/32 -j {_mark(n.lb_index[(net.id, s.name)])}" for s in net.services]
        head, tail = _dns_rules(self.rng)
        nat = head + [f"-A POSTROUTING -d {net.subnet} -m ipvs --ipvs -j SNAT --to-source {lbip}"] + tail
        text = "\n".join(_table("mangle", inp) + _table("nat", nat, ["DOCKER_OUTPUT", "DOCKER_POSTROUTING"])) + "\n"
        ns.iptables, ns.iptables_other = _parse(text), _legacy_empty()
        ns.ipvs = IpvsTable(available=True, source="netlink", services=[
            IpvsService("fwm", "rr", fwmark=n.lb_index[(net.id, s.name)], dests=[IpvsDest(t.ip, 0, "Masq", 1) for t in s.tasks])
            for s in net.services])
        ns.sysctls = dict(LB_SYSCTLS)
        if first and self.fault("lb-ip-forward-off", n.idx):
            ns.sysctls["net.ipv4.ip_forward"] = "0"
        return ns

    def overlay(self, n: GNode, net: GNet, members: int) -> Namespace:
        name = f"1-{net.id[:10]}"
        ns = Namespace(name=name, path=f"{NETNS}/{name}", kind="overlay", network_id=net.id, network_name=net.name)
        br = self._iface("br0", [(net.gateway, net.subnet.prefixlen)], kind="bridge")
        ifaces = [self._lo(), br, self._iface("vxlan0", [], kind="vxlan", master="br0", master_index=br.index, vxlan=net.vxlan,
                                             state="unknown")]
        for i in range(members):
            ifaces.append(self._iface(f"veth{i}", [], master="br0", master_index=br.index))
        ns.interfaces = ifaces
        ns.iptables, ns.iptables_other = _parse(""), _legacy_empty()
        return ns

    def task_ns(self, n: GNode, t: GTask) -> Namespace:
        sw = self.sw
        s = t.svc
        name = t.sandbox[:12]
        ns = Namespace(name=name, path=f"{NETNS}/{name}", kind="container", container_id=t.container_id,
                       container_name=f"{s.name}.{t.slot}.{t.id}", task_id=t.id, service_name=s.name)
        ns.interfaces = [self._lo(), self._iface("eth0", [(t.ip, s.net.subnet.prefixlen)]),
                         self._iface("eth1", [(t.ingress_ip, sw.ingress.subnet.prefixlen)]),
                         self._iface("eth2", [(t.gw_ip, 16)], mtu=1500)]
        ip = t.ingress_ip
        filt = [
            f"-A INPUT -d {ip}/32 -p tcp -m tcp --dport {s.target} -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
            f"-A INPUT -d {ip}/32 -p sctp -j DROP", f"-A INPUT -d {ip}/32 -p udp -j DROP", f"-A INPUT -d {ip}/32 -p tcp -j DROP",
            f"-A OUTPUT -s {ip}/32 -p tcp -m tcp --sport {s.target} -m conntrack --ctstate ESTABLISHED -j ACCEPT",
            f"-A OUTPUT -s {ip}/32 -p sctp -j DROP", f"-A OUTPUT -s {ip}/32 -p udp -j DROP", f"-A OUTPUT -s {ip}/32 -p tcp -j DROP",
        ]
        head, tail = _dns_rules(self.rng)
        nat = [f"-A PREROUTING -d {ip}/32 -p tcp -m tcp --dport {s.port} -j REDIRECT --to-ports {s.target}"] + head + tail
        text = "\n".join(_table("filter", filt) + _table("nat", nat, ["DOCKER_OUTPUT", "DOCKER_POSTROUTING"])) + "\n"
        ns.iptables, ns.iptables_other = _parse(text), _legacy_empty()
        return ns

    # the Docker API, as the engine answers it
    def api_network(self, n: GNode, net: GNet, attached: bool) -> dict:
        local = [t for t in n.tasks if net.ingress or t.svc.net.id == net.id] if attached else []
        containers = {}
        for t in local:
            ip = t.ingress_ip if net.ingress else t.ip
            containers[t.container_id] = {"Name": f"{t.svc.name}.{t.slot}.{t.id}", "EndpointID": self._hex_ep(t, net),
                                          "MacAddress": "", "IPv4Address": f"{ip}/{net.subnet.prefixlen}", "IPv6Address": ""}
        if attached and net.ingress:
            containers["ingress-sbox"] = {"Name": "ingress-endpoint", "EndpointID": "e" * 64, "MacAddress": "",
                                          "IPv4Address": f"{n.ingress_ip}/{net.subnet.prefixlen}", "IPv6Address": ""}
        elif attached:
            containers[f"lb-{net.name}"] = {"Name": f"{net.name}-endpoint", "EndpointID": "f" * 64, "MacAddress": "",
                                            "IPv4Address": f"{n.lb_ip[net.id]}/{net.subnet.prefixlen}", "IPv6Address": ""}
        services = {}
        if attached:
            for s in (self.sw.services if net.ingress else net.services):
                services[s.name] = {
                    "VIP": s.ingress_vip if net.ingress else s.vip,
                    "Ports": [f"Target: {s.target}, Publish: {s.port}"] if net.ingress else [],
                    "LocalLBIndex": n.lb_index[(net.id, s.name)],
                    "Tasks": [{"Name": f"{s.name}.{t.slot}.{t.id}", "EndpointID": self._hex_ep(t, net),
                               "EndpointIP": t.ingress_ip if net.ingress else t.ip,
                               "Info": {"Host IP": self.sw.nodes[t.node].addr}} for t in s.tasks],
                }
        peers = [{"Name": m.hostname, "IP": m.addr} for m in self.sw.nodes
                 if net.ingress or any(t.svc.net.id == net.id for t in m.tasks)] if attached else []
        return {"Name": net.name, "Id": net.id, "Scope": "swarm", "Driver": "overlay",
                "IPAM": {"Config": [{"Subnet": str(net.subnet), "Gateway": net.gateway}]},
                "Internal": False, "Attachable": False, "Ingress": net.ingress, "Containers": containers,
                "Options": {"com.docker.network.driver.overlay.vxlanid_list": str(net.vxlan)},
                "Peers": peers, "Services": services}

    @staticmethod
    def _hex_ep(t: GTask, net: GNet) -> str:
        return (t.container_id[::-1] + net.id)[:64]

    def api_container(self, t: GTask) -> dict:
        sw = self.sw
        nets = {
            t.svc.net.name: {"NetworkID": t.svc.net.id, "IPAddress": t.ip, "IPPrefixLen": t.svc.net.subnet.prefixlen,
                             "EndpointID": self._hex_ep(t, t.svc.net)},
            "ingress": {"NetworkID": sw.ingress.id, "IPAddress": t.ingress_ip, "IPPrefixLen": sw.ingress.subnet.prefixlen,
                        "EndpointID": self._hex_ep(t, sw.ingress)},
        }
        return {"Id": t.container_id, "Name": f"/{t.svc.name}.{t.slot}.{t.id}",
                "State": {"Status": "running", "Pid": 10000 + t.slot},
                "Config": {"Labels": {"com.docker.swarm.service.id": t.svc.id, "com.docker.swarm.service.name": t.svc.name,
                                      "com.docker.swarm.task.id": t.id}},
                "NetworkSettings": {"SandboxKey": f"{NETNS}/{t.sandbox[:12]}", "SandboxID": t.sandbox, "Networks": nets}}

    def api_service(self, s: GService) -> dict:
        return {"ID": s.id, "Spec": {"Name": s.name, "Mode": {"Replicated": {"Replicas": len(s.tasks)}},
                                     "TaskTemplate": {"ContainerSpec": {"Image": "traefik/whoami:v1.10"},
                                                      "Networks": [{"Target": s.net.id}]},
                                     "EndpointSpec": {"Mode": "vip"}},
                "Endpoint": {"Spec": {"Mode": "vip"},
                             "Ports": [{"Protocol": "tcp", "TargetPort": s.target, "PublishedPort": s.port, "PublishMode": "ingress"}],
                             "VirtualIPs": [{"NetworkID": self.sw.ingress.id, "Addr": f"{s.ingress_vip}/{self.sw.ingress.subnet.prefixlen}"},
                                            {"NetworkID": s.net.id, "Addr": f"{s.vip}/{s.net.subnet.prefixlen}"}]}}

    def api_task(self, t: GTask) -> dict:
        sw = self.sw
        return {"ID": t.id, "ServiceID": t.svc.id, "Slot": t.slot, "NodeID": sw.nodes[t.node].id, "DesiredState": "running",
                "Status": {"State": "running", "ContainerStatus": {"ContainerID": t.container_id}},
                "NetworksAttachments": [
                    {"Network": {"ID": sw.ingress.id, "Spec": {"Name": "ingress"}}, "Addresses": [f"{t.ingress_ip}/{sw.ingress.subnet.prefixlen}"]},
                    {"Network": {"ID": t.svc.net.id, "Spec": {"Name": t.svc.net.name}}, "Addresses": [f"{t.ip}/{t.svc.net.subnet.prefixlen}"]},
                ]}

    def snapshot(self, n: GNode) -> Snapshot:
        sw = self.sw
        manager = n.idx == 0
        prov: list[Provenance] = [Provenance("docker:connect+info", "host", "ok", duration_ms=3.1)]
        view = DockerView()
        if manager:
            view.services = [norm_service(self.api_service(s)) for s in sw.services]
            names = {s.id: s.name for s in sw.services}
            view.tasks = [norm_task(self.api_task(t), names) for s in sw.services for t in s.tasks]
            view.nodes = [norm_node({"ID": m.id, "Description": {"Hostname": m.hostname, "Engine": {"EngineVersion": ENGINE}},
                                     "Spec": {"Role": "manager" if m.idx == 0 else "worker", "Availability": "active"},
                                     "Status": {"State": "ready", "Addr": m.addr},
                                     **({"ManagerStatus": {"Reachability": "reachable"}} if m.idx == 0 else {})})
                          for m in sw.nodes]
            prov += [Provenance(f"docker:{w}", "host", "ok", duration_ms=12.0) for w in ("services", "tasks", "nodes")]
        else:
            prov += [Provenance(f"docker:{w}", "host", "skipped",
                                reason="this node is a worker: only managers can list services, tasks and nodes")
                     for w in ("services", "tasks", "nodes")]
        mine = self.sw.node_nets(n)
        mine_ids = {x.id for x in mine}
        for net in [sw.ingress] + sw.nets:
            attached = net.ingress or net.id in mine_ids
            if not attached and not manager:
                continue
            view.networks.append(norm_network(self.api_network(n, net, attached), verbose=True))
            prov.append(Provenance(f"docker:network inspect -v {net.name}", "host", "ok", duration_ms=2.0))
        view.networks.append(norm_network({
            "Name": "docker_gwbridge", "Id": self._hex(64), "Scope": "local", "Driver": "bridge",
            "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
            "Containers": {"ingress-sbox": {"Name": "gateway_ingress-sbox", "EndpointID": "d" * 64, "IPv4Address": "172.18.0.2/16"},
                           **{f"gateway_{t.sandbox[:12]}": {"Name": f"gateway_{t.sandbox[:12]}", "EndpointID": "c" * 64,
                                                            "IPv4Address": f"{t.gw_ip}/16"} for t in n.tasks}}}, verbose=True))
        view.containers = [norm_container(self.api_container(t)) for t in n.tasks]
        prov += [Provenance(f"docker:container inspect {t.container_id[:12]}", "host", "ok", duration_ms=1.5) for t in n.tasks]

        host, _ = self.host(n)
        self._prov(prov, "host", False)
        namespaces = [self.ingress_sbox(n)]
        self._prov(prov, "ingress_sbox", True)
        dns: list[DnsAnswer] = []
        for i, net in enumerate(mine):
            lb = self.lb(n, net, i == 0)
            namespaces.append(lb)
            for s in net.services:
                ips = sorted((t.ip for t in s.tasks), key=lambda a: ipaddress.ip_address(a))
                dns.append(DnsAnswer(s.name, net.id, net.name, s.name, lb.name, "ok", [s.vip], 0.4))
                dns.append(DnsAnswer(s.name, net.id, net.name, f"tasks.{s.name}", lb.name, "ok", ips, 0.4))
            self._prov(prov, lb.name, True, dns=2 * len(net.services))
        for net in [sw.ingress] + mine:
            members = len(n.tasks) + 1 if net.ingress else sum(1 for t in n.tasks if t.svc.net.id == net.id) + 1
            namespaces.append(self.overlay(n, net, members))
            self._prov(prov, namespaces[-1].name, False)
        for t in n.tasks:
            namespaces.append(self.task_ns(n, t))
            self._prov(prov, namespaces[-1].name, False)
        namespaces.sort(key=lambda x: x.name)
        dns.sort(key=lambda a: (a.network_name, a.service, a.query))
        node = NodeInfo(
            hostname=n.hostname, kernel_release=KERNEL, node_id=n.id, node_addr=n.addr,
            role="manager" if manager else "worker", swarm_state="active", engine_version=ENGINE, api_version=API,
            engine_os="linux", ip_vs=IpvsSupport(available=True, method="/proc/net/ip_vs exists (ip_vs is loaded)"),
            iptables=IptablesBackend(engine_backend="nft", method="engine chains are in nft", other_backend="legacy",
                                     other_backend_rules=0),
            sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.docker_gwbridge.route_localnet": "1",
                     "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                     "net.ipv4.conf.docker_gwbridge.rp_filter": "0", "net.bridge.bridge-nf-call-iptables": "1",
                     "net.ipv4.conf.eth0.rp_filter": "0"},
        )
        return Snapshot(node=node, tool_version="gen_swarm", collected_at=FIXED_TIME,
                        duration_ms=round(20 + 8.5 * len(namespaces), 1), netns_dir=NETNS, host=host,
                        namespaces=namespaces, dns=dns, docker=view, provenance=prov)

    def _hex(self, k: int) -> str:
        return "%0*x" % (k, self.rng.getrandbits(4 * k))


# --------------------------------------------------------------------------
# the dump


def parse_faults(specs: list[str]) -> list[tuple[str, int]]:
    out = []
    for f in specs:
        kind, _, node = f.partition(":")
        if kind not in FAULTS:
            raise SystemExit(f"unknown fault {kind!r}; one of: {', '.join(FAULTS)}")
        out.append((kind, int(node or 0)))
    return out


def snapshots(nodes: int, services: int, tasks: int, networks: Optional[int] = None, seed: int = 17,
              faults: list[str] = ()):
    """Yield the node snapshots of a generated swarm, one at a time."""
    sw = Swarm(nodes, services, tasks, networks, seed)
    g = Gen(sw, parse_faults(list(faults)))
    for n in sw.nodes:
        yield g.snapshot(n)


def dump_doc(nodes: int, services: int, tasks: int, networks: Optional[int] = None, seed: int = 17,
             faults: list[str] = (), analyze: bool = True, raw: bool = False) -> dict:
    """The whole dump document in memory (small sizes: tests). Without ``raw`` the iptables-save text is
    left out, as `swarmscope dump --json` leaves it out without --raw."""
    from swarmscope.dump import make_dump
    from swarmscope.model import without_raw

    snaps = list(snapshots(nodes, services, tasks, networks, seed, faults))
    if analyze:
        doc = make_dump(snaps, raw=raw)
    else:
        from swarmscope.dump import DUMP_SCHEMA, DUMP_VERSION
        from swarmscope.model import SNAPSHOT_VERSION

        doc = {"schema": DUMP_SCHEMA, "version": DUMP_VERSION, "snapshot_version": SNAPSHOT_VERSION,
               "tool_version": "gen_swarm", "created_at": FIXED_TIME,
               "nodes": [(s if raw else without_raw(s)).to_dict() for s in snaps],
               "failed_nodes": [], "services": [], "findings": []}
    doc["created_at"] = FIXED_TIME
    doc["tool_version"] = "gen_swarm"
    return doc


def write_dump(path: str, nodes: int, services: int, tasks: int, networks: Optional[int] = None, seed: int = 17,
               faults: list[str] = (), analyze: bool = False, indent: bool = True, raw: bool = False) -> int:
    """Write the dump to ``path``; returns its size in bytes. Without ``analyze``, one node in memory at a time.
    Without ``raw``, no iptables-save text (as `swarmscope dump --json` without --raw)."""
    if analyze:
        text = json.dumps(dump_doc(nodes, services, tasks, networks, seed, faults, True, raw),
                          indent=2 if indent else None) + "\n"
        Path(path).write_text(text)
        return len(text.encode())
    from swarmscope.dump import DUMP_SCHEMA, DUMP_VERSION
    from swarmscope.model import SNAPSHOT_VERSION, to_dict, without_raw

    try:
        import orjson

        def enc(obj) -> bytes:
            return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if indent else 0)
    except ImportError:  # pragma: no cover
        def enc(obj) -> bytes:
            return json.dumps(obj, indent=2 if indent else None).encode()

    head = {"schema": DUMP_SCHEMA, "version": DUMP_VERSION, "snapshot_version": SNAPSHOT_VERSION,
            "tool_version": "gen_swarm", "created_at": FIXED_TIME}
    size = 0
    with open(path, "wb") as fh:
        def w(b: bytes) -> None:
            nonlocal size
            fh.write(b)
            size += len(b)

        w(b"{" + b",".join(json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in head.items()) + b',"nodes":[')
        for i, s in enumerate(snapshots(nodes, services, tasks, networks, seed, faults)):
            w((b"," if i else b"") + enc(to_dict(s if raw else without_raw(s))))
        w(b'],"failed_nodes":[],"services":[],"findings":[]}\n')
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=250)
    ap.add_argument("--networks", type=int, default=None, help="overlay networks (default: one per 10 services)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--fault", action="append", default=[], help=f"inject a fault: {', '.join(FAULTS)} [:NODE]")
    ap.add_argument("--analyze", action="store_true", help="also fill in services and findings (costs a `check`)")
    ap.add_argument("--compact", action="store_true", help="no indentation")
    ap.add_argument("--raw", action="store_true", help="keep the iptables-save text (as `swarmscope dump --raw`)")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    size = write_dump(a.output, a.nodes, a.services, a.tasks, a.networks, a.seed, a.fault, a.analyze, not a.compact,
                      a.raw)
    print(f"wrote {a.output}: {a.nodes} nodes, {a.services} services, {a.tasks} tasks, {size / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
