"""Which nodes serve each published port (correlate/serving.py), and the network checks of issue #12 part 3
(network.gossip-incomplete, network.subnet-full, network.subnet-nearly-full), on real dumps.

Inputs (all real, tests/fixtures/*/README.md): the VM tier's dumps (a real ip_vs kernel: every hop can be ok),
the host lab's three-node dumps (no ip_vs on the lab's kernel), among them two taken with an overlay network
``tiny`` (10.9.0.0/28) filled to 12 of 13 addresses and then past full (contrib/lab/capture_subnet.py). Every
faulty input not captured as such is a real dump with one documented minimal edit, said where it is made.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_correlate import roots

from swarmscope.correlate import analyze
from swarmscope.correlate.serving import NO, UNKNOWN, YES, groups, serving_table
from swarmscope.dump import snapshots_from_data
from swarmscope.pipeline import Run, analyze_snapshots
from swarmscope.pipeline import analyze as run_analyze

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VM_DUMPS = FIXTURES / "vm-dumps"
LAB_DUMPS = FIXTURES / "lab-dumps"
SETTLE = LAB_DUMPS / "three-node-settle-boundary.json"
NEARLY = LAB_DUMPS / "three-node-subnet-nearly-full.json"
FULL = LAB_DUMPS / "three-node-subnet-full.json"
GOSSIP_CUT = LAB_DUMPS / "three-node-gossip-cut.json"
NEW_IDS = {"network.gossip-incomplete", "network.subnet-full", "network.subnet-nearly-full"}


def doc(path: Path) -> dict:
    return json.loads(path.read_text())


def snaps(data: dict, where: str = "test"):
    return snapshots_from_data(data, where)


def node_doc(data: dict, suffix: str) -> dict:
    return next(n for n in data["nodes"] if n["node"]["hostname"].endswith(suffix))


def net_doc(node: dict, name: str) -> dict:
    return next(x for x in node["docker"]["networks"] if x["name"] == name)


def port_rows(a, service="whoami", port=8000):
    return next(ps for ps in serving_table(a) if ps.service == service and ps.port == port).nodes


# --------------------------------------------------------------------------
# the serving table


@pytest.mark.parametrize("name", ["healthy", "engine-26.1-healthy", "engine-28-healthy", "engine-28-healthy-probe"])
def test_vm_healthy_dumps_serve_on_every_node(name):
    a = analyze_snapshots(snaps(doc(VM_DUMPS / f"{name}.json")))
    table = serving_table(a)
    ingress = [ps for ps in table if ps.mode == "ingress"]
    assert ingress and all(n.serves == YES and n.hop is None for ps in ingress for n in ps.nodes), table
    assert {n.node for ps in ingress for n in ps.nodes} == set(a.nodes)


@pytest.mark.parametrize("path", [SETTLE, NEARLY, FULL])
def test_lab_dumps_serve_nowhere_for_want_of_ip_vs(path):
    """The lab's kernel has no ip_vs: every node says no, at the kernel hop (the path's first)."""
    a = analyze(snaps(doc(path)))
    rows = port_rows(a)
    assert len(rows) == 3
    assert all(r.serves == NO and r.hop == "kernel.ipvs" and "no ip_vs" in r.detail for r in rows), rows
    assert groups(next(ps for ps in serving_table(a) if ps.port == 8000)) == [
        (NO, "kernel.ipvs", rows[0].detail, [r.node for r in rows])
    ]


def test_host_mode_port_is_served_only_where_its_task_runs():
    a = analyze(snaps(doc(SETTLE)))
    rows = {r.node: r for r in port_rows(a, "hostport", 8081)}
    assert rows["pytest-multi-manager"].serves == YES  # hostport.1 runs there, its port bound
    for w in ("pytest-multi-worker1", "pytest-multi-worker2"):
        assert rows[w].serves == NO and rows[w].hop == "task.here", rows[w]
    # the path map agrees: no task here is n/a, never "SERVES" (the second verdict pass used to overwrite it)
    sp = next(s for s in a.services if s.name == "hostport")
    assert [np.verdict for np in sp.ports[0].nodes] == ["ok", "n/a", "n/a"]


def test_vm_faults_name_the_first_broken_hop():
    want = {
        "engine-28-a-dnat-flushed": (NO, "host.dnat"),
        "engine-28-e-mark-deleted": (NO, "ingress.mark"),
        "engine-28-j-ip-vs-rr-missing": (NO, "ingress.ipvs"),
        "engine-28-l-filter-accept-deleted": (NO, "host.filter"),
        "engine-28-b-backend-deleted": (YES, "ingress.backends"),  # degraded: the other real server serves
        "engine-28-i-xt-ipvs-missing": (UNKNOWN, "ingress.mark"),  # ingress_sbox's rules could not be read
        "engine-28-p-task-not-listening-probe": (NO, "ingress.backends"),  # the probe through it failed
    }
    for name, (serves, hop) in want.items():
        from swarmscope.pipeline import analyze_snapshots as full  # --probe results joined

        [r] = port_rows(full(snaps(doc(VM_DUMPS / f"{name}.json"))))
        assert (r.serves, r.hop) == (serves, hop), (name, r)
        assert r.degraded == (name == "engine-28-b-backend-deleted")


def test_a_node_that_failed_in_the_gather_is_unknown():
    """The lab dump with worker2's snapshot taken out and the failed-node entry the gather writes for a node
    whose agent did not answer (gather.NodeResult.failed_entry) put in its place."""
    data = doc(SETTLE)
    w2 = node_doc(data, "worker2")
    data["nodes"].remove(w2)
    failed = [{"node": w2["node"]["hostname"], "node_id": w2["node"]["node_id"], "kind": "timeout",
               "reason": "no answer within 180 s"}]
    run = Run(snaps(data), False, failed)
    rows = {r.node: r for r in port_rows(run_analyze(run))}
    assert rows["pytest-multi-worker2"].serves == UNKNOWN
    assert rows["pytest-multi-worker2"].detail == "failed in the gather: no answer within 180 s"
    assert rows["pytest-multi-worker1"].serves == NO  # the others as before


def test_a_node_the_manager_lists_but_not_collected_is_unknown():
    """The same edit without a failed-node entry (a collection of two of the three nodes)."""
    data = doc(SETTLE)
    data["nodes"].remove(node_doc(data, "worker2"))
    rows = {r.node: r for r in port_rows(analyze(snaps(data)))}
    assert rows["pytest-multi-worker2"].serves == UNKNOWN
    assert rows["pytest-multi-worker2"].detail == "not collected (in docker node ls: ready/active)"


def test_unreadable_data_is_unknown_never_yes():
    """The VM's healthy dump with ingress_sbox's iptables marked unread (the edit a failed iptables-save makes)."""
    data = doc(VM_DUMPS / "engine-28-healthy.json")
    sbox = next(ns for ns in data["nodes"][0]["namespaces"] if ns["name"] == "ingress_sbox")
    sbox["iptables"] = None
    [r] = port_rows(analyze(snaps(data)))
    assert r.serves == UNKNOWN and r.hop == "ingress.mark", r


def test_explain_and_check_json_carry_the_table(tmp_path):
    from click.testing import CliRunner

    from swarmscope.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["check", "--from", str(SETTLE), "--format", "json"])
    out = json.loads(res.output)
    whoami = next(s for s in out["serving"] if s["service"] == "whoami")
    assert (whoami["protocol"], whoami["port"], whoami["mode"]) == ("tcp", 8000, "ingress")
    assert [(n["node"], n["serves"], n["hop"]) for n in whoami["nodes"]] == [
        (f"pytest-multi-{x}", "no", "kernel.ipvs") for x in ("manager", "worker1", "worker2")
    ]
    res = runner.invoke(cli, ["explain", "whoami", "--from", str(VM_DUMPS / "engine-28-healthy.json"),
                              "--format", "json"])
    out = json.loads(res.output)
    assert [s["service"] for s in out["serving"]] == ["whoami"]
    assert out["serving"][0]["nodes"] == [
        {"node": "swarmscope-vm", "serves": "yes", "hop": None, "detail": "", "degraded": False}
    ]
    res = runner.invoke(cli, ["explain", "hostport", "--from", str(SETTLE)])
    text = res.output
    assert "  serving (which nodes answer each published port):" in text
    assert "    tcp/8081 (host mode: only nodes running a task): 1 yes, 2 no, 0 unknown" in text
    assert "      no       pytest-multi-worker1 pytest-multi-worker2" in text


def test_text_groups_twenty_nodes_that_agree_on_few_lines():
    from swarmscope.correlate.serving import NodeServing, PortServing
    from swarmscope.render.text import Style, render_serving

    ps = PortServing("web", "tcp", 80, 8080, "ingress",
                     [NodeServing(f"node-{i:02}", YES) for i in range(18)]
                     + [NodeServing("node-18", NO, "ingress.ipvs", "no IPVS service FWM 260 in ingress_sbox"),
                        NodeServing("node-19", UNKNOWN, None, "failed in the gather: timeout")])
    lines = render_serving([ps], Style(False))
    assert len(lines) <= 10, lines
    assert lines[1] == "    tcp/80 (ingress): 18 yes, 1 no, 1 unknown"
    assert any("at ingress.ipvs: no IPVS service FWM 260" in x for x in lines)


# --------------------------------------------------------------------------
# the agent's metric


def _metric_lines(data: dict, node_suffix: str) -> list[str]:
    from swarmscope.render.prometheus import metrics_text

    s = next(x for x in snaps(data) if x.node.hostname.endswith(node_suffix))
    text = metrics_text(s, analyze_snapshots([s]))  # as the agent: its own snapshot alone
    return [x for x in text.splitlines() if x.startswith("swarmscope_published_port_serving{")]


def test_metric_one_where_it_serves_zero_where_not_absent_when_unknown():
    assert _metric_lines(doc(VM_DUMPS / "engine-28-healthy.json"), "vm") == [
        'swarmscope_published_port_serving{mode="host",node="swarmscope-vm",port="8081",protocol="tcp",'
        'service="hostport"} 1.0',
        'swarmscope_published_port_serving{mode="ingress",node="swarmscope-vm",port="8000",protocol="tcp",'
        'service="whoami"} 1.0',
    ]
    lab = _metric_lines(doc(SETTLE), "manager")
    assert 'swarmscope_published_port_serving{mode="ingress",node="pytest-multi-manager",port="8000",' \
           'protocol="tcp",service="whoami"} 0.0' in lab
    assert all("worker" not in x for x in lab)  # another node's series is its own agent's
    data = doc(VM_DUMPS / "engine-28-healthy.json")
    next(ns for ns in data["nodes"][0]["namespaces"] if ns["name"] == "ingress_sbox")["iptables"] = None
    assert [x for x in _metric_lines(data, "vm") if 'service="whoami"' in x] == []  # unknown: no sample


# --------------------------------------------------------------------------
# network.gossip-incomplete


def _drop_peer(data: dict, viewer: str, network: str, ip: str) -> None:
    net = net_doc(node_doc(data, viewer), network)
    before = len(net["peers"])
    net["peers"] = [p for p in net["peers"] if p["ip"] != ip]
    assert len(net["peers"]) == before - 1


def _ids(a) -> list[str]:
    return sorted(f.id for f in a.findings if f.id in NEW_IDS)


def test_gossip_cut_captured():
    """A real partition (contrib/lab/capture_gossip.py): worker2 drops what arrives on 7946 for 60 s. The others
    dropped it from demo's and ingress's Peers and it them; the DNS answers that lost worker2's tasks (or kept
    only its own) are explained by it, on demo. The firewall rules that cut it are in worker2's snapshot:
    node.swarm-ports-blocked on worker2 is the root cause of the incomplete views (roots.CROSS_NODE_CAUSES)."""
    a = analyze(snaps(doc(GOSSIP_CUT)))
    gossip = [f for f in a.findings if f.id == "network.gossip-incomplete"]
    assert [(f.network, f.nodes, f.severity, f.caused_by) for f in gossip] == [
        ("demo", ["srv-manager", "srv-worker1", "srv-worker2"], "error", "node.swarm-ports-blocked"),
        ("ingress", ["srv-manager", "srv-worker1", "srv-worker2"], "error", "node.swarm-ports-blocked"),
    ]
    assert gossip[0].detail == ("demo: srv-manager lacks srv-worker2 (10.213.0.13); srv-worker1 lacks srv-worker2 "
                                "(10.213.0.13); srv-worker2 lacks srv-manager (10.213.0.11), srv-worker1 (10.213.0.12)")
    assert gossip[0].evidence[2].endswith("Peers 10.213.0.13 (444450d6ae03)")
    assert roots(a) == ["kernel.no-ipvs", "node.swarm-ports-blocked"]
    blocked = [f for f in a.findings if f.id == "node.swarm-ports-blocked"]
    assert [f.nodes for f in blocked] == [["srv-worker2"], ["srv-worker2"]] and all("(gossip)" in f.detail for f in blocked)
    dns = [f for f in a.findings if f.id.startswith("dns.")]
    assert dns and all(f.caused_by == "network.gossip-incomplete" for f in dns), [(f.id, f.caused_by) for f in dns]
    assert gossip[0].explained == {"dns.nodes-differ": 2, "dns.tasks-mismatch": 4}


def test_gossip_view_missing_a_node_with_settled_tasks():
    """Real dump, one edit: worker2 (10.213.0.13) taken out of worker1's Peers of ``tiny``. worker2's filler
    tasks had run 62 s when worker1 was collected, and worker2 lists itself."""
    data = doc(NEARLY)
    _drop_peer(data, "worker1", "tiny", "10.213.0.13")
    a = analyze(snaps(data))
    [f] = [f for f in a.findings if f.id == "network.gossip-incomplete"]
    assert (f.nodes, f.network, f.severity) == (["srv-worker1"], "tiny", "error")
    assert f.detail == "tiny: srv-worker1 lacks srv-worker2 (10.213.0.13)"
    assert f.evidence[0] == ("docker network inspect -v tiny on srv-worker1 (collected 2026-11-30T05:56:43Z): Peers "
                             "10.213.0.12 (efe507508678), 10.213.0.11 (58cfe085e63f)")
    assert "srv-worker2 (10.213.0.13) lists itself in tiny's Peers and runs filler." in f.evidence[1]


def test_gossip_the_ingress_network_too():
    """The same edit on ``ingress``: worker2 runs whoami.2 there (a published port's task)."""
    data = doc(NEARLY)
    _drop_peer(data, "manager", "ingress", "10.213.0.13")
    a = analyze(snaps(data))
    assert [(f.nodes, f.network) for f in a.findings if f.id == "network.gossip-incomplete"] == [
        (["srv-manager"], "ingress")
    ]


def test_gossip_a_task_that_just_started_is_not_yet_a_fault():
    """The settle-boundary dump: the manager was collected at 00:29:52, 44 s after worker1's tasks started
    (00:29:07-08): worker1 missing from the manager's Peers of ``demo`` is not judged yet; worker2 missing from
    worker1's (collected 00:29:54, worker2's dnsrr and glob tasks 46 s old) is."""
    data = doc(SETTLE)
    _drop_peer(data, "manager", "demo", "10.213.0.12")
    assert _ids(analyze(snaps(data))) == []
    _drop_peer(data, "worker1", "demo", "10.213.0.13")
    a = analyze(snaps(data))
    assert [(f.id, f.nodes) for f in a.findings if f.id in NEW_IDS] == [
        ("network.gossip-incomplete", ["pytest-multi-worker1"])
    ]


def test_gossip_a_node_that_does_not_list_itself_is_not_judged():
    """Peers are matched by the advertised address; a node whose own view does not hold its Swarm.NodeAddr
    (another address advertised) proves nothing either way: the edit takes worker2 out of every view."""
    data = doc(NEARLY)
    for viewer in ("manager", "worker1", "worker2"):
        _drop_peer(data, viewer, "tiny", "10.213.0.13")
    assert _ids(analyze(snaps(data))) == ["network.subnet-nearly-full"]


# --------------------------------------------------------------------------
# network.subnet-full / network.subnet-nearly-full


def test_subnet_nearly_full_captured():
    a = analyze(snaps(doc(NEARLY)))
    [f] = [f for f in a.findings if f.id in NEW_IDS]
    assert (f.id, f.network, f.severity, f.caused_by) == ("network.subnet-nearly-full", "tiny", "warning", None)
    assert f.detail == "tiny 10.9.0.0/28: 12 of 13 addresses used (92%)"
    assert f.evidence == ["tiny 10.9.0.0/28: 12 of 13 addresses in use (task 8, VIP 1, load balancer 3); 1 free; "
                          "gateway 10.9.0.1"]


def test_subnet_full_captured_with_the_tasks_waiting():
    a = analyze(snaps(doc(FULL)))
    [f] = [f for f in a.findings if f.id in NEW_IDS]
    assert (f.id, f.network, f.severity) == ("network.subnet-full", "tiny", "error")
    assert f.detail == ("tiny 10.9.0.0/28: 13 of 13 addresses used (full); 2 task(s) of its services waiting "
                        "without an address")
    assert sorted(e.split(":")[0] for e in f.evidence[1:]) == [
        "task 22r8qjr4fy1u of service filler", "task l3u38r9y314x of service filler"
    ]
    assert all(e.endswith(": new (desired running)") for e in f.evidence[1:])


def test_subnet_one_address_below_the_threshold_is_quiet():
    """The nearly-full dump with filler.8's task (state running) marked shutdown, as it is once scaled down: 11 of 13
    is 84.6%, under 90%."""
    data = doc(NEARLY)
    mgr = node_doc(data, "manager")
    t = next(t for t in mgr["docker"]["tasks"] if t["service_name"] == "filler" and t["slot"] == 8)
    t["state"] = "shutdown"
    for n in data["nodes"]:  # its endpoint leaves the node's inspect with it
        for net in n["docker"]["networks"]:
            net["containers"] = [c for c in net["containers"] if c["key"] != t["container_id"]]
    assert _ids(analyze(snaps(data))) == []


# --------------------------------------------------------------------------
# no false alarm: every real input that is not one of the captured faults gives none of these findings


def _every_fixture():
    import rawsnap

    for p in sorted(VM_DUMPS.glob("*.json")) + [SETTLE]:
        yield p.name, lambda p=p: snaps(doc(p), str(p))
    for p in sorted((FIXTURES / "engines").glob("*/swarmscope-collect.json")):
        yield p.parent.name, lambda p=p: snaps(doc(p), str(p))
    yield "lab-vm with-overlay", lambda: [rawsnap.lab_vm("with-overlay")]
    yield "lab-vm ingress-only", lambda: [rawsnap.lab_vm("ingress-only")]
    yield "moby 25", lambda: [rawsnap.moby_25()]
    yield "public 19", rawsnap.public_19

    from swarmscope.ingest import load_text

    pasted = FIXTURES / "pasted"
    yield "pasted lab", lambda: load_text([str(pasted / "lab" / "support-sh.txt")])[0]
    yield "pasted lab-2node", lambda: load_text([str(p) for p in sorted((pasted / "lab-2node").iterdir())])[0]
    for d in sorted((pasted / "vm").iterdir()):
        if d.is_dir():
            yield f"pasted vm {d.name}", lambda d=d: load_text([str(f) for f in sorted(d.iterdir())])[0]


@pytest.mark.parametrize("name,load", list(_every_fixture()), ids=[n for n, _ in _every_fixture()])
def test_no_false_alarm_on_any_fixture(name, load):
    a = analyze(load())
    assert _ids(a) == [], [(f.id, f.detail) for f in a.findings if f.id in NEW_IDS]


def test_no_gossip_or_subnet_finding_on_the_captured_dumps_as_they_are():
    assert _ids(analyze(snaps(doc(GOSSIP_CUT)))) == ["network.gossip-incomplete"] * 2
    assert _ids(analyze(snaps(doc(NEARLY)))) == ["network.subnet-nearly-full"]
    assert _ids(analyze(snaps(doc(FULL)))) == ["network.subnet-full"]
    assert copy.deepcopy(doc(NEARLY)) == doc(NEARLY)  # the edits above work on copies
