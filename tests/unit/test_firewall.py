"""The host firewall in every form (issue #12, part 2): ``nft -j list ruleset`` parsed (golden files), its
native chains walked with the iptables walker, and the findings it leads to, on real lab captures.

``tests/fixtures/firewall/<scenario>/`` holds ``swarmscope collect --json`` of each node of the three-node
host lab, taken by ``tests/fixtures/firewall/capture.py`` with the fault made for real in one node's network
namespace (and ``nft-<node>.json``, that node's ``nft -j list ruleset``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _fixtures import FIXTURES, check_golden, rel

from swarmscope.collect import nftables as nft_collect
from swarmscope.collect.host import CaptureHost
from swarmscope.collect.runner import Recorder
from swarmscope.correlate import analyze
from swarmscope.dump import load, make_dump
from swarmscope.errors import ParseError
from swarmscope.facts import facts_for
from swarmscope.facts.walk import Packet
from swarmscope.model import SNAPSHOT_VERSION, Snapshot, without_raw
from swarmscope.parse.nftables import parse_nft_json

FW = FIXTURES / "firewall"
NODES = ("manager", "worker1", "worker2")
NFT_FILES = sorted(FW.glob("*/nft-*.json"))
FIREWALL_IDS = {"node.swarm-ports-blocked", "ingress.forward-dropped", "iptables.other-backend-drops",
                "iptables.backend-split"}


def snaps(scenario: str) -> list[Snapshot]:
    return [Snapshot.from_dict(json.loads((FW / scenario / f"{n}.json").read_text())) for n in NODES]


def firewall_findings(analysis) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((f.id, tuple(f.nodes)) for f in analysis.findings if f.id in FIREWALL_IDS)


# --------------------------------------------------------------------------
# parse


def test_there_are_nft_captures():
    assert len(NFT_FILES) >= 6, NFT_FILES


@pytest.mark.parametrize("path", NFT_FILES, ids=rel)
def test_nft_json_golden(path):
    check_golden(path, "parse_nft_json", parse_nft_json)


def test_iptables_nft_tables_are_told_apart():
    rs = parse_nft_json((FW / "nft-4789-drop" / "nft-worker1.json").read_text())
    kinds = {(t.family, t.name): t.iptables for t in rs.tables}
    assert kinds == {("ip", "nat"): True, ("ip", "filter"): True, ("inet", "fwtest"): False}
    # iptables-nft's own rules are read through iptables-nft-save: kept once, there
    assert all(not c.rules for t in rs.tables if t.iptables for c in t.chains)
    (fwtest,) = [t for t in rs.tables if not t.iptables]
    chain = fwtest.chain("input")
    assert chain is not None and (chain.type, chain.hook, chain.priority, chain.policy) == ("filter", "input", 0,
                                                                                          "accept")
    (rule,) = chain.rules
    assert (rule.expr, rule.verdict, rule.handle) == ("udp dport 4789 drop", "drop", 2)
    assert [(o.opt, o.value) for o in rule.params] == [("-p", "udp")]
    assert [(m.module, o.opt, o.value) for m in rule.matches for o in m.options] == [("udp", "--dport", "4789")]


def test_xt_expressions_mark_a_table_as_iptables_nft():
    text = (FW / "healthy" / "manager.json").read_text()
    assert '"iptables": true' in text  # the lab's ip nat/filter, made by iptables-nft (xt addrtype, MASQUERADE)
    rs = parse_nft_json(json.dumps({"nftables": [
        {"table": {"family": "inet", "name": "mine", "handle": 1}},
        {"chain": {"family": "inet", "table": "mine", "name": "c", "handle": 1}},
        {"rule": {"family": "inet", "table": "mine", "chain": "c", "handle": 2,
                  "expr": [{"xt": {"type": "match", "name": "addrtype"}}, {"accept": None}]}},
    ]}))
    assert rs.tables[0].iptables is True


def test_sets_ranges_and_unknown_expressions():
    rs = parse_nft_json((FW / "nft-accept-then-drop" / "nft-worker1.json").read_text())
    (t,) = [t for t in rs.tables if not t.iptables]
    rules = t.chain("input").rules
    assert [r.expr for r in rules] == [
        "ct state established, related accept",
        'iifname "lo" accept',
        "ip saddr 10.213.0.0/24 udp dport { 4789, 7946 } accept",
        "ip saddr 10.213.0.0/24 tcp dport { 2377, 7946 } accept",
        "udp dport 4789 drop",
    ]
    assert [(m.module, o.opt, o.value) for m in rules[2].matches for o in m.options] == [
        ("multiport", "--dports", "4789,7946")]
    assert [(m.module, o.value) for m in rules[0].matches for o in m.options] == [("conntrack", "ESTABLISHED,RELATED")]


@pytest.mark.parametrize("text", ["", "{", "[]", '{"nftables": 3}', "nft: command not found"])
def test_not_nft_json_is_a_parse_error(text):
    with pytest.raises(ParseError):
        parse_nft_json(text)


def test_a_damaged_document_is_read_as_far_as_it_goes():
    rs = parse_nft_json('{"nftables": [{"metainfo": {"version": "1.0.6"}}, 7, {"rule": {"chain": "x"}},'
                        ' {"table": {"family": "inet", "name": "t"}}, {"chain": {"family": "inet", "table": "t",'
                        ' "name": "c", "hook": "input", "prio": "x"}}]}')
    assert rs.version == "1.0.6" and rs.tables[0].chains[0].priority is None


# --------------------------------------------------------------------------
# collect: read only, and a clear reason where it cannot


def test_collect_without_nft_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(nft_collect, "which", lambda name: None)
    rec = Recorder()
    rs = nft_collect.read_nftables(rec, "host")
    assert not rs.available and "nft is not installed" in (rs.reason or "")
    assert [(e.what, e.status) for e in rec.entries] == [("nft -j list ruleset", "skipped")]


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (apt-get install nftables)")
def test_collect_a_failing_nft_is_an_error_string(monkeypatch):
    monkeypatch.setattr(nft_collect, "ARGV", ["nft", "-j", "list", "no-such-object"])
    rec = Recorder()
    rs = nft_collect.read_nftables(rec, "host")
    assert not rs.available and rs.reason and rec.entries[-1].status == "failed"


def test_capture_host_reads_the_captured_ruleset(tmp_path):
    d = tmp_path / "ns" / "host"
    d.mkdir(parents=True)
    text = (FW / "nft-4789-drop" / "nft-worker1.json").read_text()
    (d / "nft-list-ruleset.json").write_text(text)
    rec = Recorder()
    rs = CaptureHost(tmp_path).nftables(rec, "host")
    assert rs.available and rs.raw == text and [t.name for t in rs.tables] == ["nat", "filter", "fwtest"]
    (d / "nft-list-ruleset.json").write_text("not json")
    rs = CaptureHost(tmp_path).nftables(rec, "host")
    assert not rs.available and "could not parse" in (rs.reason or "")
    (d / "nft-list-ruleset.json").unlink()
    rs = CaptureHost(tmp_path).nftables(rec, "host")
    assert not rs.available and "not in the capture" in (rs.reason or "")


# --------------------------------------------------------------------------
# snapshots: version 2, version 1 still read, raw text only with --raw


def test_snapshots_are_version_2_and_hold_the_ruleset():
    for s in snaps("healthy"):
        assert s.version == SNAPSHOT_VERSION == 2
        assert s.host.nftables is not None and s.host.nftables.available
        assert s.host.nftables.raw == ""  # collect --json without --raw


def test_a_version_1_snapshot_still_reads_and_judges_the_same(tmp_path):
    data = json.loads((FW / "nft-4789-drop" / "worker1.json").read_text())
    data["version"] = 1
    del data["host"]["nftables"]
    old = Snapshot.from_dict(data)
    # read, it is a version-2 snapshot whose ruleset was not read (what a dump written from it says)
    assert old.version == 2 and old.host.nftables is None
    assert facts_for(old).nft.read is False and facts_for(old).nft.walk("input", Packet("udp", 4789)) == []
    (tmp_path / "old.json").write_text(json.dumps(data))  # a version-1 node snapshot, as collect --json wrote it
    (back,) = load(str(tmp_path / "old.json"))
    assert back.version == 2 and back.host.nftables is None
    (tmp_path / "dump.json").write_text(json.dumps(make_dump([old])))
    (back,) = load(str(tmp_path / "dump.json"))
    assert back.version == 2 and back.host.nftables is None
    assert "node.swarm-ports-blocked" not in {f.id for f in analyze([old]).findings}  # the rule is not in it


def test_without_raw_drops_the_nft_text_only():
    s = snaps("healthy")[0]
    s.host.nftables.raw = '{"nftables": []}'
    out = without_raw(s)
    assert out.host.nftables.raw == "" and s.host.nftables.raw and out.host.nftables.tables == s.host.nftables.tables


# --------------------------------------------------------------------------
# the walk


def test_the_walker_decides_a_source_address_now():
    f = facts_for(snaps("nft-accept-then-drop")[1]).nft
    from_peer = Packet("udp", 4789, src="10.213.0.11", dst="10.213.0.12", dst_local=True)
    from_elsewhere = Packet("udp", 4789, src="192.0.2.1", dst="10.213.0.12", dst_local=True)
    (w,) = f.walk("input", from_peer)
    assert w.verdict == "accept" and "ip saddr 10.213.0.0/24 udp dport { 4789, 7946 } accept" in (w.evidence or "")
    (w,) = f.walk("input", from_elsewhere)
    assert w.verdict == "drop" and w.evidence == "udp dport 4789 drop # handle 8"
    assert w.maybe_pass == 1 and not w.drops  # `iifname "lo" accept` might have matched: not claimed
    on_eth0 = Packet("udp", 4789, src="192.0.2.1", in_iface="eth0", dst="10.213.0.12", dst_local=True)
    assert f.drop_to_local(on_eth0) is not None  # on eth0, lo's accept is out of the question: it drops
    unknown = Packet("udp", 4789, in_iface="eth0", dst="10.213.0.12", dst_local=True)  # the source not known
    assert f.drop_to_local(unknown) is None


# --------------------------------------------------------------------------
# the findings, on each scenario: judged together and each node alone


def _alone(scenario: str) -> dict[str, list[str]]:
    return {s.node.hostname: sorted(f.id for f in analyze([s]).findings if f.id in FIREWALL_IDS)
            for s in snaps(scenario)}


@pytest.mark.parametrize("scenario", ["healthy", "nft-accept-then-drop"])
def test_no_firewall_finding_where_nothing_is_blocked(scenario):
    assert firewall_findings(analyze(snaps(scenario))) == []
    assert _alone(scenario) == {"fw-manager": [], "fw-worker1": [], "fw-worker2": []}


@pytest.mark.parametrize("scenario,node,count,evidence,ports", [
    ("ipt-4789-drop", "fw-worker1", 1, "iptables (nft) filter INPUT: -A INPUT -p udp -m udp --dport 4789 -j DROP",
     "4789/udp (VXLAN data)"),
    ("nft-4789-drop", "fw-worker1", 1,
     "nft inet fwtest input (hook input priority 0): udp dport 4789 drop # handle 2", "4789/udp (VXLAN data)"),
    ("nft-7946-drop", "fw-worker2", 2,
     "nft inet fwtest input (hook input priority 0): tcp dport 7946 counter drop # handle 2", "7946/tcp (gossip)"),
    ("nft-policy-drop", "fw-worker2", 1, "nft inet fwtest input (hook input priority 0): policy drop (input)",
     "4789/udp (VXLAN data)"),
    ("nft-esp-drop", "fw-manager", 1, "nft inet fwtest input (hook input priority 0): ip protocol esp drop # handle 2",
     "ESP (encrypted overlay)"),
])
def test_swarm_ports_blocked(scenario, node, count, evidence, ports):
    a = analyze(snaps(scenario))
    assert firewall_findings(a) == [("node.swarm-ports-blocked", (node,))] * count
    found = [f for f in a.findings if f.id == "node.swarm-ports-blocked"]
    assert any(evidence in f.evidence for f in found), [f.evidence for f in found]
    assert any(ports in f.detail for f in found)
    assert all(f.caused_by is None for f in found)  # a root cause of its own
    others = {f.id for f in a.findings if f.caused_by is None} - {"kernel.no-ipvs", "node.swarm-ports-blocked"}
    assert not others
    alone = _alone(scenario)
    if scenario != "nft-esp-drop" or node == "fw-manager":
        assert alone[node] == ["node.swarm-ports-blocked"] * count
    assert all(v == [] for k, v in alone.items() if k != node)


SCENARIOS = sorted(p.name for p in FW.iterdir() if p.is_dir())


def _blocked_one_walk_per_peer(ctx, n):
    """node.swarm-ports-blocked as it was before it walked once per interface: one packet per peer, so that
    the grouping of peers whose packets end alike is held to the plain walk."""
    from swarmscope.correlate.checks.node import _in_iface, _peers, swarm_ports
    from swarmscope.correlate.paths.common import node_facts

    nf = node_facts(n)
    blocked: dict = {}
    for proto, port, what in swarm_ports(ctx, n):
        label = f"{port}/{proto} ({what})" if port is not None else what
        for src in list(_peers(ctx, n)) or [None]:
            pkt = Packet(proto, port, in_iface=_in_iface(n, src), dst=n.snap.node.node_addr, dst_local=True, src=src)
            for rules in (nf.host.netfilter, nf.host.other_netfilter):
                found = rules.drop_to_local(pkt) if rules.read else None
                if found is not None:
                    blocked.setdefault((rules.backend, found[0], found[1].evidence), {}).setdefault(label, []).append(src)
            d = nf.nft.drop_to_local(pkt)
            if d is not None:
                blocked.setdefault((d.where, d.evidence), {}).setdefault(label, []).append(src)
    return [(f", ".join(ports), "; ".join(f"{lb} from {', '.join(s or 'any node' for s in srcs)}" for lb, srcs in ports.items()))
            for ports in blocked.values()]


def _drop_from_one_peer() -> list[Snapshot]:
    """ipt-4789-drop with worker1's DROP made to test the source: `-s <the manager>/32` (a source-specific
    rule, as an operator writes to shut one node out; made from the real capture, not captured)."""
    out = []
    for n in NODES:
        d = json.loads((FW / "ipt-4789-drop" / f"{n}.json").read_text())
        if n == "worker1":
            (r,) = d["host"]["iptables"]["tables"]["filter"]["chains"]["INPUT"]["rules"]
            r["line"] = "-A INPUT -s 10.213.0.11/32 -p udp -m udp --dport 4789 -j DROP"
            r["params"].insert(0, {"opt": "-s", "value": "10.213.0.11/32", "negated": False})
        out.append(Snapshot.from_dict(d))
    return out


@pytest.mark.parametrize("scenario", SCENARIOS + ["drop-from-one-peer"])
def test_swarm_ports_blocked_walks_once_per_interface_and_says_what_one_walk_per_peer_says(scenario):
    from swarmscope.correlate.checks.node import check_swarm_ports_blocked
    from swarmscope.correlate.checks.registry import Ctx
    from swarmscope.correlate.cluster import build_cluster

    made = _drop_from_one_peer() if scenario == "drop-from-one-peer" else snaps(scenario)
    together = None
    for group in [made] + [[s] for s in made]:  # together and each node alone
        ctx = Ctx(build_cluster(group), [])
        got = {}
        for h in check_swarm_ports_blocked.hits(ctx):
            got.setdefault(h.nodes[0], []).append((h.detail.rsplit(" drops ", 1)[1], h.evidence[1][len("drops: "):]))
        want = {n.name: r for n in ctx.cluster.nodes if (r := _blocked_one_walk_per_peer(ctx, n))}
        assert got == want
        together = got if together is None else together
    if scenario == "drop-from-one-peer":  # from the manager only
        assert together == {"fw-worker1": [("4789/udp (VXLAN data)", "4789/udp (VXLAN data) from 10.213.0.11")]}


def test_which_rulesets_read_the_source_address():
    for scenario in SCENARIOS:
        for s in snaps(scenario):
            f = facts_for(s)
            reads = f.host.netfilter.reads_source() or f.host.other_netfilter.reads_source() or f.nft.reads_source()
            # only the capture with `ip saddr 10.213.0.0/24 ... accept` on worker1 tests a source on the way in
            assert reads == (scenario == "nft-accept-then-drop" and s.node.hostname == "fw-worker1"), (scenario, s.node.hostname)
    f = facts_for(_drop_from_one_peer()[1]).host.netfilter
    assert f.reads_source()


def test_policy_drop_names_both_udp_ports_and_not_the_tcp_ones():
    a = analyze(snaps("nft-policy-drop"))
    (f,) = [f for f in a.findings if f.id == "node.swarm-ports-blocked"]
    assert "4789/udp" in f.detail and "7946/udp" in f.detail and "tcp" not in f.detail


def test_the_cluster_port_is_judged_on_managers_only():
    from swarmscope.correlate.checks.node import swarm_ports
    from swarmscope.correlate.checks.registry import Ctx
    from swarmscope.correlate.cluster import build_cluster

    cl = build_cluster(snaps("healthy"))
    ctx = Ctx(cl, [])
    by_node = {n.name: [p[1] for p in swarm_ports(ctx, n)] for n in cl.nodes}
    assert 2377 in by_node["fw-manager"] and 2377 not in by_node["fw-worker1"]
    assert "esp" not in {p[0] for n in cl.nodes for p in swarm_ports(ctx, n)}  # no encrypted overlay there


def test_nft_forward_drop_of_the_published_port():
    a = analyze(snaps("nft-forward-8000-drop"))
    assert firewall_findings(a) == [("ingress.forward-dropped", ("fw-manager",))]
    (f,) = [f for f in a.findings if f.id == "ingress.forward-dropped"]
    assert f.caused_by is None and f.service == "whoami"
    assert "nft inet fwtest forward (hook forward priority 0): tcp dport 8000 counter drop # handle 2" in f.evidence
    assert _alone("nft-forward-8000-drop") == {"fw-manager": ["ingress.forward-dropped"], "fw-worker1": [],
                                               "fw-worker2": []}


def test_a_legacy_drop_of_the_swarm_ports_is_named_once():
    """A DROP in the backend the engine does not use: iptables.other-backend-drops is the root, and the
    swarm-ports finding it leads to is counted under it, not shown twice."""
    from swarmscope.parse.iptables import parse_iptables_save

    s = snaps("healthy")[1]
    s.host.iptables_other = parse_iptables_save(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p udp -m udp --dport 4789 -j DROP\nCOMMIT\n", backend="legacy")
    a = analyze([s])
    top = {f.id for f in a.findings if f.caused_by is None}
    assert "iptables.other-backend-drops" in top and "node.swarm-ports-blocked" not in top
    assert any(f.id == "node.swarm-ports-blocked" and f.caused_by == "iptables.other-backend-drops"
               for f in a.findings)


def test_fixtures_are_real_lab_captures():
    """Every scenario has the three nodes' snapshots, collected by this swarmscope from the lab."""
    for d in sorted(p for p in FW.iterdir() if p.is_dir()):
        for n in NODES:
            data = json.loads((d / f"{n}.json").read_text())
            assert data["node"]["hostname"] == f"fw-{n}" and data["version"] == 2
            assert any(p["what"] == "nft -j list ruleset" and p["status"] == "ok" for p in data["provenance"])
    assert Path(FW / "capture.py").exists()


@pytest.mark.parametrize("scenario", ["nft-accept-then-drop", "nft-4789-drop", "healthy"])
def test_redacted_rulesets_map_addresses_and_judge_the_same(scenario):
    from swarmscope.redact import redact_snapshots

    plain = snaps(scenario)
    for s, n in zip(plain, NODES, strict=True):
        raw = FW / scenario / f"nft-{n}.json"
        if raw.exists():
            s.host.nftables.raw = raw.read_text()
    red, _ = redact_snapshots(plain)
    for s in red:
        text = json.dumps(s.to_dict())
        assert "10.213.0." not in text  # the lab's node addresses, in rules, raw JSON and the API view alike
        if s.host.nftables.raw:
            json.loads(s.host.nftables.raw)  # still the JSON nft printed, addresses mapped
    assert [i for i, _ in firewall_findings(analyze(red))] == [i for i, _ in firewall_findings(analyze(plain))]


def test_collect_summary_names_the_native_tables():
    from swarmscope.render.summary import render_summary

    text = render_summary(snaps("nft-7946-drop")[2])
    assert ("host nftables: 1 native table(s): inet fwtest (2 rules); 2 made by iptables-nft "
            "(read through iptables-nft-save)") in text
    old = snaps("healthy")[0]
    old.host.nftables = None  # a version-1 snapshot: nothing said
    assert "nftables" not in render_summary(old)


def test_nft_forward_drop_on_a_mesh_that_works():
    """Where Docker's filter rules accept the port (the ip_vs VM capture, tests/fixtures/lab-vm, whose mesh
    works: no finding), the host lab's real forward-hook ruleset attached to its host gives exactly
    ingress.forward-dropped: iptables FORWARD is walked first and accepts, the native chain then drops."""
    import rawsnap

    s = rawsnap.lab_vm()
    assert analyze([s]).findings == []
    s.host.nftables = parse_nft_json((FW / "nft-forward-8000-drop" / "nft-manager.json").read_text())
    a = analyze([s])
    assert [(f.id, f.nodes, f.service) for f in a.findings] == [("ingress.forward-dropped", ["lab-vm"], "whoami")]
    hop = next(h for sp in a.services for pp in sp.ports for np in pp.nodes for h in np.hops if h.key == "host.forward")
    assert hop.status == "mismatch" and "nft inet fwtest forward (hook forward priority 0)" in hop.detail
    # an input-only ruleset that accepts the lab's subnet first leaves the published port alone
    s.host.nftables = parse_nft_json((FW / "nft-accept-then-drop" / "nft-worker1.json").read_text())
    assert [f.id for f in analyze([s]).findings] == []
