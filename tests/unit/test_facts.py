"""The data-plane facts layer (swarmscope/facts): each fact kind with its evidence, read from real captures.

Snapshots: the VM tier's dumps (tests/fixtures/vm-dumps: a real ip_vs mesh on docker.io 20.10.24 and
28.5.2, healthy and with one fault each) and the engine fixtures' `collect --json` (tests/fixtures/engines:
20.10, 26.1, 28 on a kernel without ip_vs). Last, the boundary: swarmscope/correlate imports neither
swarmscope.parse nor swarmscope.collect and names no iptables chain in its code.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from swarmscope.dump import snapshots_from_data
from swarmscope.facts import Address, NodeFacts, facts_for
from swarmscope.facts import netfilter as nfm
from swarmscope.facts.ipvs import FwmService, RealServer
from swarmscope.facts.netfilter import (
    DOCKER,
    DOCKER_FORWARD,
    DOCKER_INGRESS,
    DOCKER_USER,
    FILTER,
    FORWARD,
    INPUT,
    NAT,
    OUTPUT,
    POSTROUTING,
    PREROUTING,
    Accept,
    Dnat,
    Jump,
    Mark,
    NetfilterFacts,
    Packet,
    Redirect,
    Snat,
    Walked,
)
from swarmscope.model import Namespace, Snapshot
from swarmscope.parse.iptables import parse_iptables_save

TESTS = Path(__file__).resolve().parents[1]
VM_DUMPS = TESTS / "fixtures" / "vm-dumps"
ENGINES = TESTS / "fixtures" / "engines"
CORRELATE = Path(__file__).resolve().parents[2] / "swarmscope" / "correlate"

#: the VM tier's healthy mesh on two engines: (dump, engine, the lb_ namespace, FWM of the ingress port)
HEALTHY = [
    ("healthy.json", "20.10.24+dfsg1", "lb_1noqlidxs"),
    ("engine-28-healthy.json", "28.5.2+dfsg4", "lb_s0m3qp74x"),
]


def _vm(name: str) -> Snapshot:
    p = VM_DUMPS / name
    (snap,) = snapshots_from_data(json.loads(p.read_text()), str(p))
    return snap


def _ns(snap: Snapshot, name: str) -> Namespace:
    return next(ns for ns in snap.namespaces if ns.name == name)


@pytest.fixture(params=HEALTHY, ids=[h[1] for h in HEALTHY])
def healthy(request):
    name, engine, lb = request.param
    snap = _vm(name)
    assert snap.node.engine_version == engine
    return snap, facts_for(snap), lb


# --------------------------------------------------------------------------
# each fact kind, with its evidence, on both engines


def test_jump_to_docker_ingress_from_prerouting_and_output(healthy):
    _, nf, _ = healthy
    host = nf.host.netfilter
    assert host.read and host.backend == "nft"
    assert host.jumps(NAT, PREROUTING, DOCKER_INGRESS) == [
        Jump(NAT, PREROUTING, DOCKER_INGRESS, True, "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS")
    ]
    assert host.jumps(NAT, OUTPUT, DOCKER_INGRESS) == [
        Jump(NAT, OUTPUT, DOCKER_INGRESS, True, "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER-INGRESS")
    ]
    assert host.has_chain(NAT, DOCKER_INGRESS) and DOCKER_INGRESS in host.chain_names(NAT)
    assert host.shadow(PREROUTING, "tcp", 8000) is None


def test_published_port_dnated_to_ingress_sbox(healthy):
    _, nf, _ = healthy
    assert nf.host.netfilter.dnats("tcp", 8000) == [
        Dnat(
            "tcp",
            8000,
            "172.18.0.2",
            8000,
            DOCKER_INGRESS,
            "-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j DNAT --to-destination 172.18.0.2:8000",
        )
    ]
    assert nf.host.netfilter.dnats("tcp", 8001) == [] and nf.host.netfilter.dnats("udp", 8000) == []


def test_host_mode_port_dnated_in_docker(healthy):
    _, nf, _ = healthy
    (d,) = nf.host.netfilter.dnats("tcp", 8081, DOCKER)
    assert (d.to_addr, d.to_port, d.chain) == ("172.17.0.2", 80, DOCKER)
    assert d.evidence == "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80"
    assert nf.host.netfilter.dnats("tcp", 8081) == []  # not in DOCKER-INGRESS


def test_filter_accepts_port_and_replies(healthy):
    snap, nf, _ = healthy
    host = nf.host.netfilter
    assert host.accepts("tcp", 8000, "dport") == [
        Accept("tcp", 8000, "dport", DOCKER_INGRESS, "-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j ACCEPT")
    ]
    (back,) = host.accepts("tcp", 8000, "sport")
    assert back.direction == "sport" and "--sport 8000" in back.evidence and back.evidence.endswith("-j ACCEPT")
    order = host.reach_order(FILTER, FORWARD)
    assert order[0] == DOCKER_USER and DOCKER_INGRESS in order
    # 28 moved Docker's jumps into DOCKER-FORWARD; 20.10 jumps from FORWARD itself
    assert (DOCKER_FORWARD in order) == snap.node.engine_version.startswith("28")


def test_forward_walk_accepts_new_connections(healthy):
    snap, nf, _ = healthy
    w = nf.host.netfilter.walk(FILTER, FORWARD, Packet("tcp", 8000, out_iface="docker_gwbridge", dst="172.18.0.2"))
    assert w == Walked(
        "accept",
        DOCKER_INGRESS,
        "-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j ACCEPT",
        w.trail,
        0,
    )
    assert w.trail[0] == FORWARD and w.trail[-1] == DOCKER_INGRESS
    reply = nf.host.netfilter.walk(
        FILTER, FORWARD, Packet("tcp", None, sport=8000, in_iface="docker_gwbridge", state="ESTABLISHED")
    )
    assert reply.verdict == "accept" and reply.evidence is not None


def test_ingress_sbox_marks_the_port(healthy):
    snap, nf, _ = healthy
    sbox = nf.ns(_ns(snap, "ingress_sbox")).netfilter
    assert sbox.port_marks("tcp", 8000) == [
        Mark(
            0x104,
            PREROUTING,
            "tcp",
            8000,
            None,
            "-A PREROUTING -p tcp -m tcp --dport 8000 -j MARK --set-xmark 0x104/0xffffffff",
        )
    ]
    assert sbox.sets_marks()
    assert sbox.port_marks("tcp", 8001) == []


def test_lb_marks_the_vip(healthy):
    snap, nf, lb = healthy
    rules = nf.ns(_ns(snap, lb)).netfilter
    (m,) = rules.dst_marks("10.0.1.2", INPUT)
    assert (m.mark, m.chain, m.dst) == (0x103, INPUT, "10.0.1.2/32")
    assert m.evidence == "-A INPUT -d 10.0.1.2/32 -j MARK --set-xmark 0x103/0xffffffff"
    assert rules.dst_marks("10.0.1.2/32") == [m]  # asked as printed
    assert rules.dst_marks("10.9.9.9") == []


def test_vip_address_on_lb_eth0(healthy):
    snap, nf, lb = healthy
    f = nf.ns(_ns(snap, lb))
    assert f.address("10.0.1.2") == Address("eth0", "10.0.1.2", 32, f"{lb}: eth0 inet 10.0.1.2/32")
    assert f.address("10.9.9.9") is None


def test_ipvs_snat_in_both_sandboxes(healthy):
    snap, nf, lb = healthy
    assert nf.ns(_ns(snap, "ingress_sbox")).netfilter.ipvs_snats() == [
        Snat("10.0.0.0/24", "10.0.0.2", "-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -j SNAT --to-source 10.0.0.2")
    ]
    (s,) = nf.ns(_ns(snap, lb)).netfilter.ipvs_snats()
    assert s.dst == "10.0.1.0/24" and s.evidence.endswith(f"--to-source {s.to_source}")


def test_ipvs_fwm_service_and_real_servers(healthy):
    snap, nf, _ = healthy
    ipvs = nf.ns(_ns(snap, "ingress_sbox")).ipvs
    assert ipvs.read and ipvs.available and ipvs.service_keys() == ["FWM 260"]
    s = ipvs.fwm(260)
    assert isinstance(s, FwmService)
    assert (s.mark, s.scheduler, s.evidence) == (260, "rr", "IPVS FWM 260 rr (2 real servers)")
    assert sorted(d.address for d in s.dests) == ["10.0.0.4", "10.0.0.5"]
    i, d = next((i, d) for i, d in enumerate(s.dests) if d.address == "10.0.0.4")
    assert isinstance(d, RealServer) and (d.address, d.port, d.forward, d.weight, d.active, d.inactive) == (
        "10.0.0.4", 0, "Masq", 1, 0, 2)
    assert s.lines[i] == "IPVS FWM 260 -> 10.0.0.4:0 Masq weight 1 active 0 inactive 2"
    assert len(s.lines) == len(s.dests)
    assert ipvs.fwm(261) is None


def test_task_sandbox_redirects_published_to_target_port(healthy):
    snap, nf, _ = healthy
    found = [r for ns in snap.namespaces if ns.kind == "container" for r in nf.ns(ns).netfilter.redirects("tcp", 8000)]
    assert found
    for r in found:
        assert isinstance(r, Redirect) and (r.proto, r.port, r.to_ports) == ("tcp", 8000, "80")
        assert r.evidence == f"-A PREROUTING -d {r.dst}/32 -p tcp -m tcp --dport 8000 -j REDIRECT --to-ports 80"


def test_facts_are_frozen_and_carry_evidence():
    # (a real server is the snapshot's own IpvsDest, shared by the nodes that have it; its evidence line is
    # FwmService.lines: test_ipvs_fwm_service_and_real_servers)
    kinds = [Jump, Dnat, Accept, Mark, Snat, Redirect, nfm.Shadow, nfm.Stopper, Walked, FwmService, Address]
    for k in kinds:
        assert dataclasses.is_dataclass(k) and k.__dataclass_params__.frozen, k  # type: ignore[attr-defined]
        assert "evidence" in {f.name for f in dataclasses.fields(k)}, k
    j = Jump(NAT, PREROUTING, DOCKER_INGRESS, True, "-A PREROUTING -j DOCKER-INGRESS")
    with pytest.raises(dataclasses.FrozenInstanceError):
        j.chain = OUTPUT  # type: ignore[misc]


# --------------------------------------------------------------------------
# faults: the facts the correlator judges broken


def test_filter_accept_deleted_walks_to_policy_drop():
    nf = facts_for(_vm("l-filter-accept-deleted.json"))
    host = nf.host.netfilter
    assert host.accepts("tcp", 8000, "dport") == []
    w = host.walk(FILTER, FORWARD, Packet("tcp", 8000, out_iface="docker_gwbridge", dst="172.18.0.2"))
    assert (w.verdict, w.chain, w.evidence, w.maybe) == ("policy-drop", FORWARD, None, 0)
    assert w.trail[:3] == (FORWARD, DOCKER_USER, DOCKER_INGRESS)


def test_ingress_after_bridge_on_28_walks_to_the_gwbridge_drop():
    nf = facts_for(_vm("engine-28-m-ingress-after-bridge.json"))
    w = nf.host.netfilter.walk(FILTER, FORWARD, Packet("tcp", 8000, out_iface="docker_gwbridge", dst="172.18.0.2"))
    assert (w.verdict, w.chain) == ("drop", DOCKER)
    assert w.evidence == "-A DOCKER ! -i docker_gwbridge -o docker_gwbridge -j DROP"
    assert DOCKER_INGRESS not in w.trail


@pytest.mark.parametrize("name", ["n-ingress-snat-deleted.json", "engine-28-n-ingress-snat-deleted.json"])
def test_ingress_snat_deleted_leaves_no_snat_fact(name):
    snap = _vm(name)
    rules = facts_for(snap).ns(_ns(snap, "ingress_sbox")).netfilter
    assert rules.ipvs_snats() == []
    assert rules.lines(NAT, POSTROUTING) == ["-A POSTROUTING -d 127.0.0.11/32 -j DOCKER_POSTROUTING"]


def test_shadowing_rule_and_stoppers_from_rule_text():
    """An operator's ACCEPT ahead of Docker's jump, and DROP/REJECT rules by protocol and port."""
    nat = parse_iptables_save(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER-INGRESS - [0:0]\n"
        "-A PREROUTING -p tcp -m tcp --dport 8000 -j ACCEPT\n"
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS\n"
        "-A PREROUTING -p tcp -m tcp --dport 9000 -j ACCEPT\n"
        "COMMIT\n"
        "*filter\n:INPUT ACCEPT [0:0]\n"
        "-A INPUT -p udp -m udp --dport 4789 -j DROP\n"
        "-A INPUT -p tcp -m multiport --dports 7946,2377 -j REJECT\n"
        "-A INPUT -p tcp -m tcp ! --dport 22 -j ACCEPT\n"
        "COMMIT\n"
    )
    f = NetfilterFacts(nat)
    s = f.shadow(PREROUTING, "tcp", 8000)
    assert s == nfm.Shadow(PREROUTING, "tcp", 8000, "-A PREROUTING -p tcp -m tcp --dport 8000 -j ACCEPT")
    assert f.shadow(PREROUTING, "tcp", 9000) is None  # after Docker's jump
    assert f.shadow(PREROUTING, "udp", 8000) is None
    stops = f.stoppers()
    assert [(x.table, x.chain) for x in stops] == [(FILTER, INPUT), (FILTER, INPUT)]
    assert stops[0].stops("udp", 4789) and not stops[0].stops("tcp", 4789) and not stops[0].stops("udp", 53)
    assert stops[1].stops("tcp", 7946) and stops[1].stops("tcp", 2377) and not stops[1].stops("tcp", 80)
    assert stops[1].evidence == "-A INPUT -p tcp -m multiport --dports 7946,2377 -j REJECT"
    assert f.rewrites_addresses() is False
    assert f.all_lines()[0] == "-A PREROUTING -p tcp -m tcp --dport 8000 -j ACCEPT"


# --------------------------------------------------------------------------
# the engines' own `collect --json` (a kernel without ip_vs, so no routing mesh): 20.10 and 28


@pytest.mark.parametrize("version", ["20.10.24+dfsg1", "28.5.2+dfsg4"])
def test_engine_fixture_facts(version):
    """Without ip_vs the engine programs no DOCKER-INGRESS: the facts say the chain is absent, the host-mode
    port is DNATed in nat DOCKER, and IPVS is read but unavailable, with the reason."""
    snap = Snapshot.from_dict(json.loads((ENGINES / version / "swarmscope-collect.json").read_text()))
    nf = facts_for(snap)
    host = nf.host.netfilter
    assert host.read and not host.has_chain(NAT, DOCKER_INGRESS)
    assert host.jumps(NAT, PREROUTING, DOCKER_INGRESS) == [] and host.dnats("tcp", 8000) == []
    (j,) = host.jumps(NAT, PREROUTING, DOCKER)
    assert j == Jump(NAT, PREROUTING, DOCKER, False, "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER")
    assert host.dnats("tcp", 8081, DOCKER) == [
        Dnat(
            "tcp",
            8081,
            "172.17.0.2",
            80,
            DOCKER,
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80",
        )
    ]
    assert len(host.lines(NAT, DOCKER)) == 3
    sbox = nf.ns(next(ns for ns in snap.namespaces if ns.kind == "ingress_sbox"))
    assert sbox.netfilter.read and sbox.netfilter.port_marks("tcp", 8000) == [] and not sbox.netfilter.sets_marks()
    assert sbox.ipvs.read and not sbox.ipvs.available and "has no ip_vs" in (sbox.ipvs.reason or "")
    assert sbox.ipvs.fwm(256) is None
    assert nf.host.other_netfilter.read and nf.host.other_netfilter.backend == "legacy"
    assert nf.host.other_netfilter.rule_count == 0 and nf.host.other_netfilter.stoppers() == []
    assert (DOCKER_FORWARD in host.reach_order(FILTER, FORWARD)) == version.startswith("28")


# --------------------------------------------------------------------------
# built once, indexed


def test_indexes_are_built_once_per_namespace(monkeypatch):
    snap = _vm("healthy.json")
    nf = facts_for(snap)
    calls = []
    real = NetfilterFacts._rules

    def counting(self, table, chain):
        calls.append((table, chain))
        return real(self, table, chain)

    monkeypatch.setattr(NetfilterFacts, "_rules", counting)
    for port in range(8000, 8200):
        nf.host.netfilter.dnats("tcp", port)
        nf.host.netfilter.accepts("tcp", port, "dport")
    assert calls.count((NAT, DOCKER_INGRESS)) == 1
    assert calls.count((FILTER, DOCKER_INGRESS)) == 1
    sbox = _ns(snap, "ingress_sbox")
    assert nf.ns(sbox) is nf.ns(sbox)


def test_the_correlator_builds_facts_once_per_node(monkeypatch):
    from swarmscope.correlate import analyze, cluster

    built: list[Snapshot] = []

    def counting(snap: Snapshot) -> NodeFacts:
        built.append(snap)
        return facts_for(snap)

    monkeypatch.setattr(cluster, "facts_for", counting)  # NodeCtx.facts: the one place facts are built
    snap = _vm("engine-28-healthy.json")
    analyze([snap])
    assert built == [snap]


# --------------------------------------------------------------------------
# the boundary: the correlator judges facts; only the facts layer knows rule syntax

#: correlate modules allowed to read rules, and why (none left: cluster.py's port protocol reads the facts too)
_ALLOWED: set[str] = set()

#: chain names Docker and the kernel use; none may be written in correlate/'s code
_CHAIN_NAMES = {
    PREROUTING,
    INPUT,
    FORWARD,
    OUTPUT,
    POSTROUTING,
    DOCKER,
    DOCKER_INGRESS,
    DOCKER_USER,
    DOCKER_FORWARD,
    "DOCKER-BRIDGE",
    "DOCKER-CT",
    "DOCKER-ISOLATION-STAGE-1",
    "DOCKER-ISOLATION-STAGE-2",
    "DOCKER-INTERNAL",
    "DOCKER_OUTPUT",
    "DOCKER_POSTROUTING",
}
#: iptables targets: a string equal to one is reading a rule
_TARGETS = {"DNAT", "SNAT", "MARK", "REDIRECT", "MASQUERADE", "ACCEPT", "DROP", "REJECT", "RETURN"}
_WORD = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _CHAIN_NAMES), key=len, reverse=True)) + r")(?![\w-])"
)


def _correlate_modules() -> list[Path]:
    return sorted(p for p in CORRELATE.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _catalogue_text(tree: ast.AST) -> set[int]:
    """The checks' titles and hints (the @check decorator's and the table's rows' string arguments):
    prose for the reader of the findings list, where a chain is named as the user knows it."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("check", "HopCheck", "BackendCheck"):
            for a in node.args:
                for sub in ast.walk(a):
                    if isinstance(sub, ast.Constant):
                        out.add(id(sub))
    return out


def test_correlate_imports_neither_parse_nor_collect():
    bad = []
    for p in _correlate_modules():
        tree = ast.parse(p.read_text(), str(p))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n.startswith(("swarmscope.parse", "swarmscope.collect")):
                    bad.append(f"{p.relative_to(CORRELATE)}:{node.lineno}: {n}")
    assert not bad, bad


def test_correlate_reads_no_rules_and_names_no_chain():
    """No chain name or iptables target written in correlate/'s code, and no Rule, Table or IptablesDump
    read there. In paths/ and checks/, where hops' labels, details and evidence are composed, not even
    inside a text: a label shown to the user takes the chain's name from swarmscope.facts.netfilter's
    constants (the checks' titles and hints, prose for the findings list, are exempt)."""
    bad = []
    for p in _correlate_modules():
        if p.name in _ALLOWED and p.parent == CORRELATE:
            continue
        tree = ast.parse(p.read_text(), str(p))
        skip = _docstrings(tree) | _catalogue_text(tree)
        text = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            where = f"{p.relative_to(CORRELATE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                v = node.value
                # a part of an f-string is text shown to the user: it may say "SNAT", never name a chain
                syntax = id(node) not in text and v.strip() in _TARGETS
                named = v.strip() in _CHAIN_NAMES or (p.parent != CORRELATE and _WORD.search(v))
                if syntax or named:
                    bad.append(f"{where}: {v!r}")
            elif isinstance(node, ast.ImportFrom) and node.module == "swarmscope.model":
                for a in node.names:
                    if a.name in ("Rule", "Table", "Chain", "IptablesDump", "RuleOption", "RuleMatch"):
                        bad.append(f"{where}: imports {a.name}")
            elif isinstance(node, ast.Attribute) and node.attr in ("iptables", "iptables_other", "rules", "chains"):
                bad.append(f"{where}: .{node.attr}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------
# the README's worked example: a new check that judges an existing fact is one FactCheck row in
# swarmscope/correlate/checks/table.py (here outside the table, so the catalogue stays as it is)


def _jump_restricted():
    from swarmscope.correlate.checks.registry import FactCheck
    from swarmscope.facts.netfilter import INGRESS_JUMP_CHAINS
    from swarmscope.model import Severity

    return FactCheck(
        "ingress.jump-restricted",
        Severity.WARNING,
        "a jump to DOCKER-INGRESS is not Docker's own",
        "Docker jumps with `-m addrtype --dst-type LOCAL` and nothing else; a jump restricted further (an "
        "interface, a source) leaves the other packets to published ports outside the mesh. Restart dockerd.",
        facts=lambda nf: [
            j for c in INGRESS_JUMP_CHAINS for j in nf.host.netfilter.jumps(NAT, c, DOCKER_INGRESS) if not j.docker
        ],
        detail=lambda j: f"{j.table} {j.chain}: {j.evidence}",
    )


@pytest.mark.parametrize("name", [h[0] for h in HEALTHY])
def test_worked_example_fact_check(name):
    from swarmscope.correlate.checks.registry import Ctx
    from swarmscope.correlate.cluster import build_cluster

    snap = _vm(name)
    check = _jump_restricted()
    assert list(check.hits(Ctx(build_cluster([snap]), []))) == []  # healthy: Docker's own jumps

    line = "-A PREROUTING -i eth0 -m addrtype --dst-type LOCAL -j DOCKER-INGRESS"
    (rule,) = (
        parse_iptables_save(f"*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER-INGRESS - [0:0]\n{line}\nCOMMIT\n")
        .tables[NAT]
        .chains[PREROUTING]
        .rules
    )
    rules = snap.host.iptables.tables[NAT].chains[PREROUTING].rules  # type: ignore[union-attr]
    i = next(i for i, r in enumerate(rules) if r.target == DOCKER_INGRESS)
    rules[i] = rule
    (hit,) = check.hits(Ctx(build_cluster([snap]), []))
    assert hit.nodes == [snap.node.hostname]
    assert hit.detail == f"nat PREROUTING: {line}" and hit.evidence == [line]
