"""The correlator on snapshots built from real healthy output, then with one fault each.

Healthy inputs: the lab-vm captures (a real ip_vs kernel, engine 20.10),
moby maintainer's dump (fixture 25, current engines) and fixture 19 (the same
VIP with different marks on two nodes). Each fault is made by editing the data
the way the fault edits the node, and must give exactly the expected finding.
"""

from __future__ import annotations

import copy
import json

import pytest
import rawsnap

from swarmscope.correlate import analyze
from swarmscope.correlate.findings import REGISTRY
from swarmscope.model import (
    Container,
    ContainerNet,
    DnsAnswer,
    IpvsDest,
    Listener,
    PortSpec,
    Rule,
    RuleOption,
    Service,
    ServiceVip,
    Task,
    TaskAttachment,
)
from swarmscope.parse.iptables import parse_iptables_save


def roots(analysis):
    top = [f for f in analysis.findings if f.caused_by is None]
    for f in top:  # every finding a user sees carries the evidence it was judged on
        assert f.evidence, f"{f.id} has no evidence"
    assert_verdicts_agree_with_exit(analysis)
    return sorted({f.id for f in top})


def assert_verdicts_agree_with_exit(analysis):
    """The one policy (findings.BREAKING), checked on every analysis these tests make: a broken path
    means `check` fails; a hop tagged with a breaking finding leaves its path broken or degraded;
    a bad hop tagged only with warnings never makes a path broken."""
    from swarmscope.correlate.findings import BREAKING, fails

    sev = {c.id: c.severity for c in REGISTRY}
    failing = fails(analysis.findings, analysis.services)
    assert failing == any(f.severity in BREAKING for f in analysis.findings)
    for label, np in all_node_paths(analysis):
        if np.verdict == "broken":
            assert failing, f"{label} on {np.node} is broken but check would exit 0"
        for h in np.hops:
            if h.aux or h.status not in ("missing", "mismatch") or not h.findings:
                continue
            if any(sev[f] in BREAKING for f in h.findings):
                assert np.verdict in ("broken", "degraded"), (label, h.key, np.verdict)
            elif np.verdict == "broken" and np.broken_at == h.label:
                raise AssertionError(f"{label}: {h.key} carries only {h.findings} but the path is broken there")


def all_node_paths(analysis):
    for sp in analysis.services:
        for pp in sp.ports:
            for np in pp.nodes:
                yield f"{sp.name} port {pp.published}", np
        for vp in sp.vip_paths:
            for np in vp.nodes:
                yield f"{sp.name} vip {vp.network}", np


def finding(analysis, fid):
    found = [f for f in analysis.findings if f.id == fid]
    assert found, f"no {fid} in {[f.id for f in analysis.findings]}"
    return found[0]


def all_hops(analysis, service="whoami"):
    sp = next(s for s in analysis.services if s.name == service)
    for pp in sp.ports:
        for np in pp.nodes:
            yield f"port {pp.published}", np
    for vp in sp.vip_paths:
        for np in vp.nodes:
            yield f"vip {vp.network}", np


@pytest.fixture
def snap():
    return rawsnap.lab_vm("with-overlay")


def ns(snap, kind, network=None):
    return rawsnap.find_ns(snap, kind, network)


def drop_rules(dump, table, chain, pred):
    c = dump.tables[table].chains[chain]
    before = len(c.rules)
    c.rules = [r for r in c.rules if not pred(r)]
    assert len(c.rules) < before, f"nothing dropped from {table} {chain}"


def set_rule(dump, table, chain, pred, text):
    """Replace the first rule matching pred with the rule in ``text`` (one -A line)."""
    new = parse_iptables_save(f"*{table}\n:{chain} - [0:0]\n{text}\nCOMMIT\n").tables[table].chains[chain].rules[0]
    rules = dump.tables[table].chains[chain].rules
    for i, r in enumerate(rules):
        if pred(r):
            rules[i] = new
            return
    raise AssertionError("no rule to replace")


def ingress_dests(snap):
    return ns(snap, "ingress_sbox").ipvs.services[0].dests


def lb_dests(snap):
    return ns(snap, "lb", "appnet").ipvs.services[0].dests


# --------------------------------------------------------------------------
# healthy


@pytest.mark.parametrize("which", ["ingress-only", "with-overlay"])
def test_lab_vm_healthy_every_hop_ok(which):
    a = analyze([rawsnap.lab_vm(which)])
    assert a.findings == []
    paths = list(all_hops(a))
    assert paths and any(k.startswith("port") for k, _ in paths)
    if which == "with-overlay":
        assert any(k == "vip appnet" for k, _ in paths)
    for kind, np in paths:
        assert np.verdict == "ok", (kind, np.reason)
        for h in np.hops:
            assert h.status == "ok" or (h.aux and h.status == "unknown"), (kind, h)
        real = {b.address for b in np.backends}
        assert real and all(b.status == "ok" for b in np.backends)


def test_lab_vm_real_servers_are_the_running_tasks(snap):
    a = analyze([snap])
    sp = a.services[0]
    port = sp.ports[0].nodes[0]
    assert {b.address for b in port.backends} == {t.addresses["ingress"][0] for t in sp.tasks}
    assert {b.task for b in port.backends} == {"whoami.1", "whoami.2"}
    assert all(b.redirect == "ok" for b in port.backends)
    mark = port.hop("ingress.mark")
    assert "256" in mark.detail and mark.evidence == ["-A PREROUTING -p tcp -m tcp --dport 8000 -j MARK --set-xmark 0x100/0xffffffff"]
    vip = sp.vip_paths[0].nodes[0]
    assert {b.address for b in vip.backends} == {t.addresses["appnet"][0] for t in sp.tasks}


def test_moby_25_healthy_tcp_and_udp_ports():
    a = analyze([rawsnap.moby_25()])
    assert a.findings == []
    sp = a.services[0]
    assert [(p.protocol, p.published) for p in sp.ports] == [("tcp", 3000), ("udp", 3001)]
    for p in sp.ports:
        np = p.nodes[0]
        assert np.verdict == "ok", np.reason
        assert np.hop("host.dnat").evidence[0].endswith(f"--to-destination 172.19.0.2:{p.published}")
    # the lb_ namespace's IPVS is not in the source: the VIP path says unknown, not broken
    vip = sp.vip_paths[0].nodes[0]
    assert vip.verdict == "unknown" and vip.hop("lb.ipvs").status == "unknown"


def test_fixture_19_marks_are_node_local():
    a = analyze(rawsnap.public_19())
    assert a.findings == []
    nodes = a.services[0].vip_paths[0].nodes
    marks = {np.node: np.hop("lb.mark").detail for np in nodes}
    assert "268" in marks["host1"] and "269" in marks["host2"]
    assert all(np.verdict == "ok" for np in nodes)


def test_every_registered_check_has_a_hint_and_a_unique_id():
    ids = [c.id for c in REGISTRY]
    assert len(ids) == len(set(ids))
    for c in REGISTRY:
        assert c.severity in ("error", "warning", "info") and len(c.hint) > 20 and c.title


# --------------------------------------------------------------------------
# one fault each


def test_dnat_missing(snap):
    drop_rules(snap.host.iptables, "nat", "DOCKER-INGRESS", lambda r: r.target == "DNAT")
    a = analyze([snap])
    assert roots(a) == ["ingress.dnat-missing"]
    np = a.services[0].ports[0].nodes[0]
    assert np.verdict == "broken" and np.broken_at.startswith("host DNAT")
    assert "ingress.dnat-missing" in np.hop("host.dnat").findings


def test_dnat_to_wrong_address(snap):
    set_rule(snap.host.iptables, "nat", "DOCKER-INGRESS", lambda r: r.target == "DNAT",
             "-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j DNAT --to-destination 172.18.0.9:8000")
    a = analyze([snap])
    assert roots(a) == ["ingress.dnat-wrong-target"]
    f = finding(a, "ingress.dnat-wrong-target")
    assert "172.18.0.9" in f.detail and any("--to-destination 172.18.0.9:8000" in e for e in f.evidence)


def test_firewall_reload_removes_chain_and_jumps(snap):
    nat = snap.host.iptables.tables["nat"]
    del nat.chains["DOCKER-INGRESS"]
    for c in ("PREROUTING", "OUTPUT"):
        drop_rules(snap.host.iptables, "nat", c, lambda r: r.target == "DOCKER-INGRESS")
    a = analyze([snap])
    assert roots(a) == ["ingress.chain-missing"]
    f = finding(a, "ingress.chain-missing")
    assert f.explained.get("ingress.dnat-missing") == 1


def test_jump_missing_from_prerouting(snap):
    drop_rules(snap.host.iptables, "nat", "PREROUTING", lambda r: r.target == "DOCKER-INGRESS")
    assert roots(analyze([snap])) == ["ingress.jump-missing"]


def test_jump_duplicated(snap):
    pre = snap.host.iptables.tables["nat"].chains["PREROUTING"].rules
    pre.append(copy.deepcopy(next(r for r in pre if r.target == "DOCKER-INGRESS")))
    a = analyze([snap])
    assert roots(a) == ["ingress.jump-duplicated"]
    assert finding(a, "ingress.jump-duplicated").severity == "warning"


def test_filter_accept_missing(snap):
    drop_rules(snap.host.iptables, "filter", "DOCKER-INGRESS", lambda r: r.value("--dport") == "8000")
    assert roots(analyze([snap])) == ["ingress.filter-accept-missing"]


def test_docker_ingress_before_docker_user(snap):
    fwd = snap.host.iptables.tables["filter"].chains["FORWARD"].rules
    user = next(r for r in fwd if r.target == "DOCKER-USER")
    fwd.remove(user)
    fwd.insert(2, user)
    a = analyze([snap])
    assert roots(a) == ["ingress.forward-order"]
    assert any("FORWARD order" in e for e in finding(a, "ingress.forward-order").evidence)
    # a warning: the port still answers, so the path is degraded, not broken, and check exits 0
    from swarmscope.correlate.findings import fails

    assert a.services[0].ports[0].nodes[0].verdict == "degraded"
    assert not fails(a.findings, a.services)


def test_every_real_server_drained_on_running_tasks_breaks_the_path(snap):
    """weight 0 on one running task is a warning (the others serve); on all of them nothing serves:
    an error, the path broken, and check fails."""
    for d in ingress_dests(snap):
        d.weight = 0
    a = analyze([snap])
    assert "ipvs.no-usable-backend" in roots(a)
    port = a.services[0].ports[0].nodes[0]
    assert port.verdict == "broken" and port.broken_at == "real servers -> tasks"


def test_ingress_sbox_missing_is_the_root_cause(snap):
    snap.namespaces = [n for n in snap.namespaces if n.kind != "ingress_sbox"]
    a = analyze([snap])
    assert roots(a) == ["ingress.sandbox-missing"]
    assert finding(a, "ingress.sandbox-missing").explains >= 3


def test_ingress_mark_mismatch(snap):
    sbox = ns(snap, "ingress_sbox")
    set_rule(sbox.iptables, "mangle", "PREROUTING", lambda r: r.target == "MARK",
             "-A PREROUTING -p tcp -m tcp --dport 8000 -j MARK --set-xmark 0x105/0xffffffff")
    a = analyze([snap])
    # the stale mark leads to an IPVS service that does not exist
    assert roots(a) == ["ingress.mark-mismatch"] or roots(a) == ["ingress.ipvs-service-missing", "ingress.mark-mismatch"]
    f = finding(a, "ingress.mark-mismatch")
    assert "261" in f.detail and "256" in f.detail


def test_ingress_mark_missing(snap):
    drop_rules(ns(snap, "ingress_sbox").iptables, "mangle", "PREROUTING", lambda r: r.target == "MARK")
    assert roots(analyze([snap])) == ["ingress.mark-missing"]


def test_ingress_snat_missing(snap):
    drop_rules(ns(snap, "ingress_sbox").iptables, "nat", "POSTROUTING", lambda r: r.target == "SNAT")
    assert roots(analyze([snap])) == ["ingress.snat-missing"]


def test_lb_namespace_missing(snap):
    snap.namespaces = [n for n in snap.namespaces if n.kind != "lb"]
    a = analyze([snap])
    assert roots(a) == ["lb.namespace-missing"]
    assert finding(a, "lb.namespace-missing").network == "appnet"


def test_vip_alias_missing(snap):
    eth0 = next(i for i in ns(snap, "lb", "appnet").interfaces if i.name == "eth0")
    eth0.addresses = [a for a in eth0.addresses if a.prefixlen != 32]
    a = analyze([snap])
    assert roots(a) == ["vip.alias-missing"]
    assert finding(a, "vip.alias-missing").network == "appnet"


def test_vip_mark_mismatch(snap):
    lb = ns(snap, "lb", "appnet")
    set_rule(lb.iptables, "mangle", "INPUT", lambda r: r.target == "MARK",
             "-A INPUT -d 10.0.1.2/32 -j MARK --set-xmark 0x109/0xffffffff")
    a = analyze([snap])
    assert "vip.mark-mismatch" in roots(a)
    assert set(roots(a)) <= {"vip.mark-mismatch", "vip.ipvs-service-missing"}


def test_vip_ipvs_service_missing(snap):
    ns(snap, "lb", "appnet").ipvs.services = []
    a = analyze([snap])
    assert roots(a) == ["vip.ipvs-service-missing"]
    assert finding(a, "vip.ipvs-service-missing").explains == 2  # the two tasks without a real server


def test_vip_snat_missing(snap):
    drop_rules(ns(snap, "lb", "appnet").iptables, "nat", "POSTROUTING", lambda r: r.target == "SNAT")
    assert roots(analyze([snap])) == ["vip.snat-missing"]


def test_engine_before_18_06_is_named_not_misjudged(snap):
    """Engines before 18.06 have no lb_ namespaces (VIPs are balanced in every task sandbox): say the
    engine is older than the supported range, never name a missing lb_ namespace as a root cause."""
    snap.node.engine_version = "17.12.1-ce"
    snap.namespaces = [n for n in snap.namespaces if n.kind != "lb"]
    a = analyze([snap])
    assert roots(a) == ["engine.unsupported"]
    assert finding(a, "engine.unsupported").severity == "warning"
    vip = a.services[0].vip_paths[0].nodes[0]
    assert vip.verdict == "unknown" and "before 18.06" in vip.reason
    # the same snapshot on a supported engine: the lb_ namespace really is missing
    snap.node.engine_version = "20.10.24"
    assert "lb.namespace-missing" in roots(analyze([snap]))


def test_stale_real_server(snap):
    ingress_dests(snap).append(IpvsDest("10.0.0.250", 0, "Masq", 1))
    a = analyze([snap])
    assert roots(a) == ["ipvs.backend-stale"]
    assert a.services[0].ports[0].nodes[0].verdict == "degraded"
    f = finding(a, "ipvs.backend-stale")
    assert "10.0.0.250" in f.detail and any("10.0.0.250" in e for e in f.evidence)


def test_real_server_missing_for_running_task(snap):
    dests = ingress_dests(snap)
    dests.remove(next(d for d in dests if d.address == "10.0.0.7"))
    a = analyze([snap])
    assert roots(a) == ["ipvs.backend-missing"]
    assert "10.0.0.7" in finding(a, "ipvs.backend-missing").detail
    np = a.services[0].ports[0].nodes[0]
    # one task still gets the traffic: the node serves the port, degraded
    assert np.verdict == "degraded" and np.hop("ingress.backends").status == "mismatch"
    assert np.broken_at == "real servers -> tasks"


def test_weight_zero_on_running_task(snap):
    lb_dests(snap)[0].weight = 0
    a = analyze([snap])
    assert roots(a) == ["ipvs.weight-zero"]
    assert finding(a, "ipvs.weight-zero").network == "appnet"


def test_weight_zero_lingering_after_task_gone(snap):
    svc = snap.docker.services[0]
    ingress_id = next(n.id for n in snap.docker.networks if n.ingress)
    snap.docker.tasks.append(Task(id="oldtask", service_id=svc.id, service_name="whoami", slot=1, node_id=snap.node.node_id,
                                  desired_state="shutdown", state="shutdown", state_since="2026-11-21T08:00:00Z",
                                  attachments=[TaskAttachment(ingress_id, "ingress", ["10.0.0.4/24"])]))
    ingress_dests(snap).append(IpvsDest("10.0.0.4", 0, "Masq", 0))
    a = analyze([snap])
    assert roots(a) == ["ipvs.weight-zero-lingering"]


def _rolling_update(snap, started_ago: float):
    """A rolling update caught half-way, as dockerd drives it: whoami.1 is told to shut down (DNS
    record gone, real servers at weight 0 until its container stops); its replacement whoami.1 (new
    task) became running ``started_ago`` seconds before collection and is in neither DNS nor IPVS yet."""
    from datetime import datetime, timedelta, timezone

    now = datetime(2026, 11, 21, 9, 13, tzinfo=timezone.utc)
    snap.collected_at = "2026-11-21T09:13:00Z"
    svc = next(s for s in snap.docker.services if s.name == "whoami")
    svc.update_state = "updating"
    old = next(t for t in snap.docker.tasks if t.service_id == svc.id and t.slot == 1)
    old.desired_state = "shutdown"
    old_addrs = [a.addresses[0].split("/")[0] for a in old.attachments]
    for sb in (ns(snap, "ingress_sbox"), ns(snap, "lb", "appnet")):
        for d in sb.ipvs.services[0].dests:
            if d.address in old_addrs:
                d.weight = 0
    for a in snap.dns:
        a.answers = [x for x in a.answers if x not in old_addrs]
    new = copy.deepcopy(old)
    new.id, new.desired_state, new.state, new.container_id = "newtask1", "running", "running", None
    new.state_since = (now - timedelta(seconds=started_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    for i, a in enumerate(new.attachments):
        a.addresses = [f"10.0.{'0' if a.network_name == 'ingress' else '1'}.{90 + i}/24"]
    snap.docker.tasks.append(new)
    return svc, old, new


def test_rolling_update_in_progress_is_not_a_fault(snap):
    """During `docker service update --force` the old task drains and the new one is not yet in the
    data plane: no finding at all, and no path broken."""
    svc, old, new = _rolling_update(snap, started_ago=2)
    a = analyze([snap])
    assert a.findings == [], [(f.id, f.detail) for f in a.findings]
    who = next(s for s in a.services if s.name == "whoami")
    port = who.ports[0].nodes[0]
    assert {b.status for b in port.backends} == {"ok", "draining", "starting"}
    assert port.verdict == "ok"
    assert [c.status for c in who.dns] == ["ok"]


def test_update_seen_with_the_api_a_step_behind_the_data_plane(snap):
    """What the VM tier's real mesh showed during `service update --force whoami` (check 1 of 5): the API
    (read first) still says whoami.2 is running, desired running; IPVS (read a moment later) already has
    its real servers at weight 0 and DNS no longer answers it. Not a fault while the update runs."""
    svc = next(s for s in snap.docker.services if s.name == "whoami")
    svc.update_state = "updating"
    t2 = next(t for t in snap.docker.tasks if t.service_id == svc.id and t.slot == 2)
    addrs = [a.addresses[0].split("/")[0] for a in t2.attachments]
    for sb in (ns(snap, "ingress_sbox"), ns(snap, "lb", "appnet")):
        for d in sb.ipvs.services[0].dests:
            if d.address in addrs:
                d.weight = 0
    for a in snap.dns:
        a.answers = [x for x in a.answers if x not in addrs]
    a = analyze([snap])
    assert a.findings == [], [(f.id, f.detail) for f in a.findings]
    svc.update_state = "completed"  # the same, once the update is over, is what it says
    assert {"ipvs.weight-zero", "dns.tasks-mismatch"} <= {f.id for f in analyze([snap]).findings}


def test_new_task_already_in_ipvs_while_the_api_says_starting(snap):
    """Check 2 of 5 on the VM's real mesh: the new task's real servers are in IPVS (added as its
    container started) while the API, read first, still says starting: not stale."""
    svc = next(s for s in snap.docker.services if s.name == "whoami")
    t2 = next(t for t in snap.docker.tasks if t.service_id == svc.id and t.slot == 2)
    t2.state = "starting"
    a = analyze([snap])
    assert not [f for f in a.findings if f.id.startswith("ipvs.")], [(f.id, f.detail) for f in a.findings]
    port = a.services[0].ports[0].nodes[0]
    assert sorted(b.status for b in port.backends) == ["ok", "starting"]


def test_a_new_task_still_missing_once_settled_is_a_fault(snap):
    """The same state a minute later, with the update over: the new task should have been added."""
    svc, old, new = _rolling_update(snap, started_ago=60)
    svc.update_state = "completed"
    old.state = "shutdown"
    old.state_since = "2026-11-21T09:12:00Z"
    a = analyze([snap])
    ids = {f.id for f in a.findings}
    assert {"ipvs.backend-missing", "dns.tasks-mismatch", "ipvs.weight-zero-lingering"} <= ids, ids


def test_replicas_short_while_not_updating_is_reported(snap):
    svc = next(s for s in snap.docker.services if s.name == "whoami")
    t = next(t for t in snap.docker.tasks if t.service_id == svc.id and t.slot == 1)
    t.state, t.state_since = "preparing", "2026-11-21T09:05:00Z"  # stuck for 8 minutes
    snap.collected_at = "2026-11-21T09:13:00Z"
    for sb in (ns(snap, "ingress_sbox"), ns(snap, "lb", "appnet")):
        sb.ipvs.services[0].dests = [d for d in sb.ipvs.services[0].dests
                                     if d.address not in [x.split("/")[0] for a in t.attachments for x in a.addresses]]
    a = analyze([snap])
    assert "service.replicas-short" in {f.id for f in a.findings}
    svc.update_state = "updating"
    assert "service.replicas-short" not in {f.id for f in analyze([snap]).findings}


def test_real_server_of_another_service(snap):
    appnet = next(n for n in snap.docker.networks if n.name == "appnet")
    other = Service(id="otherservice", name="other", mode="replicated", replicas=1, networks=[appnet.id])
    snap.docker.services.append(other)
    snap.docker.tasks.append(Task(id="othertask", service_id="otherservice", service_name="other", slot=1,
                                  node_id=snap.node.node_id, desired_state="running", state="running",
                                  attachments=[TaskAttachment(appnet.id, "appnet", ["10.0.1.9/24"])]))
    lb_dests(snap).append(IpvsDest("10.0.1.9", 0, "Masq", 1))
    a = analyze([snap])
    f = finding(a, "ipvs.backend-foreign")
    assert f.service == "whoami" and "other" in f.detail
    assert "ipvs.backend-foreign" in roots(a)


def test_dns_tasks_missing_address(snap):
    a0 = next(d for d in snap.dns if d.query == "tasks.whoami")
    a0.answers = a0.answers[:1]
    a = analyze([snap])
    assert roots(a) == ["dns.tasks-mismatch"]
    assert "missing" in finding(a, "dns.tasks-mismatch").detail


def test_dns_service_not_answering_vip(snap):
    d = next(d for d in snap.dns if d.query == "whoami")
    d.answers = ["10.0.1.77"]
    a = analyze([snap])
    assert roots(a) == ["dns.vip-mismatch"]


def test_dns_answers_differ_between_nodes(snap):
    other = copy.deepcopy(snap)
    other.node.hostname, other.node.node_id, other.node.role = "lab-vm2", "labvmnode2", "worker"
    other.docker.services, other.docker.tasks = [], []
    d = next(d for d in other.dns if d.query == "tasks.whoami")
    d.answers = d.answers + ["10.0.1.99"]
    a = analyze([snap, other])
    assert "dns.nodes-differ" in roots(a)
    f = finding(a, "dns.nodes-differ")
    assert set(f.nodes) == {"lab-vm", "lab-vm2"}
    assert finding(a, "dns.tasks-mismatch").nodes == ["lab-vm2"]


def test_duplicate_endpoint_address(snap):
    t = snap.docker.tasks[1]
    appnet = next(x for x in t.attachments if x.network_name == "appnet")
    appnet.addresses = list(next(x for x in snap.docker.tasks[0].attachments if x.network_name == "appnet").addresses)
    a = analyze([snap])
    assert "net.duplicate-ip" in roots(a)


def test_subnet_overlaps_host_route(snap):
    snap.host.routes.append("10.0.0.0/16")
    a = analyze([snap])
    assert roots(a) == ["net.subnet-overlap"]
    assert len(finding(a, "net.subnet-overlap").evidence) == 1


def test_overlay_namespace_missing(snap):
    snap.namespaces = [n for n in snap.namespaces if not (n.kind == "overlay" and n.network_name == "appnet")]
    assert roots(analyze([snap])) == ["overlay.namespace-missing"]


def test_vxlan_down(snap):
    ov = ns(snap, "overlay", "appnet")
    vx = next(i for i in ov.interfaces if i.name.startswith("vxlan"))
    vx.admin_up, vx.state = False, "down"
    assert roots(analyze([snap])) == ["overlay.vxlan-down"]


def test_ip_forward_off_on_host(snap):
    snap.node.sysctls["net.ipv4.ip_forward"] = "0"
    assert roots(analyze([snap])) == ["host.ip-forward-off"]


def test_ip_forward_off_in_lb(snap):
    ns(snap, "lb", "appnet").sysctls["net.ipv4.ip_forward"] = "0"
    a = analyze([snap])
    assert roots(a) == ["lb.ip-forward-off"]
    assert a.services[0].vip_paths[0].nodes[0].broken_at == "lb_ ip_forward"


def test_ip_forward_off_in_ingress_sbox(snap):
    """Read before, never judged: the published port dies in ingress_sbox when it does not forward."""
    ns(snap, "ingress_sbox").sysctls["net.ipv4.ip_forward"] = "0"
    a = analyze([snap])
    assert roots(a) == ["ingress.ip-forward-off"]
    assert a.services[0].ports[0].nodes[0].broken_at == "ingress_sbox ip_forward"


def test_host_ip_forward_off_explains_the_sandboxes_that_copied_it(snap):
    """Sandboxes copy the host's ip_forward when created: with the host at 0, the host is the root cause."""
    snap.node.sysctls["net.ipv4.ip_forward"] = "0"
    ns(snap, "lb", "appnet").sysctls["net.ipv4.ip_forward"] = "0"
    ns(snap, "ingress_sbox").sysctls["net.ipv4.ip_forward"] = "0"
    a = analyze([snap])
    assert roots(a) == ["host.ip-forward-off"]
    assert finding(a, "host.ip-forward-off").explained == {"lb.ip-forward-off": 1, "ingress.ip-forward-off": 1}


def _iface(namespace_or_host, name):
    return next(i for i in namespace_or_host.interfaces if i.name == name)


def test_host_end_of_ingress_sboxs_veth_down_names_both_ends(snap):
    """The gwbridge leg of ingress_sbox down on the host side: the published port dies there. Named
    with the interface and both its ends, not silently 'ok'."""
    host_end = _iface(snap.host, "veth132a74a")  # the other end of ingress_sbox eth1 (index 10 <-> 9)
    host_end.admin_up, host_end.state = False, "down"
    a = analyze([snap])
    assert roots(a) == ["link.down"]
    f = finding(a, "link.down")
    assert f.detail == "host: veth132a74a state down, admin down; other end eth1 in ingress_sbox"
    port = a.services[0].ports[0].nodes[0]
    assert port.verdict == "broken" and port.broken_at == "ingress_sbox links"
    assert a.services[0].vip_paths[0].nodes[0].verdict == "ok"  # the VIP path does not cross it


def test_lb_veth_down_in_the_overlay_breaks_the_vip_path(snap):
    lb = ns(snap, "lb", "appnet")
    ov = next(n for n in snap.namespaces if n.kind == "overlay" and n.network_name == "appnet")
    end = next(i for i in ov.interfaces if i.index == _iface(lb, "eth0").peer_index)
    end.state = "lowerlayerdown"
    a = analyze([snap])
    assert roots(a) == ["link.down"]
    assert finding(a, "link.down").detail == f"{ov.name}: {end.name} state lowerlayerdown, admin up; other end eth0 in {lb.name}"
    assert a.services[0].vip_paths[0].nodes[0].broken_at == "lb_ links"


def _insert_first(dump, table, chain, text):
    rule = parse_iptables_save(f"*{table}\n:{chain} - [0:0]\n{text}\nCOMMIT\n").tables[table].chains[chain].rules[0]
    dump.tables[table].chains[chain].rules.insert(0, rule)


def test_operator_rule_before_dockers_jump_shadows_the_port(snap):
    _insert_first(snap.host.iptables, "nat", "PREROUTING", "-A PREROUTING -p tcp -m tcp --dport 8000 -j ACCEPT")
    a = analyze([snap])
    assert roots(a) == ["ingress.jump-shadowed"]
    f = finding(a, "ingress.jump-shadowed")
    assert "-A PREROUTING -p tcp -m tcp --dport 8000 -j ACCEPT" in f.detail
    assert a.services[0].ports[0].nodes[0].verdict == "broken"


@pytest.mark.parametrize("rule", [
    "-A PREROUTING -i eth0 -j DOCKER-INGRESS",  # a restricted duplicate jump: not terminal
    "-A PREROUTING -p tcp -m tcp --dport 9999 -j ACCEPT",  # another port
    "-A PREROUTING -p udp -m udp --dport 8000 -j RETURN",  # another protocol
])
def test_rules_before_dockers_jump_that_do_not_end_the_port(snap, rule):
    _insert_first(snap.host.iptables, "nat", "PREROUTING", rule)
    assert "ingress.jump-shadowed" not in {f.id for f in analyze([snap]).findings}


def test_ingress_sandbox_half_created(snap):
    """ingress_sbox exists, but the engine lists no ingress-sbox endpoint on the ingress network."""
    ingress = next(n for n in snap.docker.networks if n.ingress)
    ingress.containers = [c for c in ingress.containers if c.key != "ingress-sbox"]
    a = analyze([snap])
    assert roots(a) == ["ingress.sandbox-incomplete"]
    assert "lists no ingress-sbox endpoint" in finding(a, "ingress.sandbox-incomplete").detail


def test_ingress_sandbox_without_its_load_balancer_address(snap):
    sbox = ns(snap, "ingress_sbox")
    eth0 = _iface(sbox, "eth0")
    eth0.addresses = [x for x in eth0.addresses if x.address != "10.0.0.2"]
    a = analyze([snap])
    assert "ingress.sandbox-incomplete" in roots(a)
    assert "lacks its load-balancer address 10.0.0.2" in finding(a, "ingress.sandbox-incomplete").detail


def test_wrong_ingress_mark_is_the_one_root(snap):
    """A MARK rule with a stale mark sends the port to an IPVS service that is not there: one fault,
    one root; the missing IPVS service says it is explained by the wrong mark."""
    sbox = ns(snap, "ingress_sbox")
    set_rule(sbox.iptables, "mangle", "PREROUTING", lambda r: r.target == "MARK",
             "-A PREROUTING -p tcp -m tcp --dport 8000 -j MARK --set-xmark 0x1ff/0xffffffff")
    a = analyze([snap])
    assert roots(a) == ["ingress.mark-mismatch"]
    assert finding(a, "ingress.ipvs-service-missing").caused_by == "ingress.mark-mismatch"


def _container_gone(snap, c) -> None:
    """The container is not on this node: neither in `docker ps` nor as a local endpoint of its networks."""
    snap.docker.containers.remove(c)
    for net in snap.docker.networks:
        net.containers = [nc for nc in net.containers if nc.key != c.id]


def test_worker_without_a_task_still_judges_the_ingress_path(snap):
    """Judged alone, a worker that runs no task of a service still carries its published port: the
    ingress network's verbose inspect lists every published service. A flushed DOCKER-INGRESS there
    must be named."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    for c in [c for c in snap.docker.containers if c.service_name]:
        _container_gone(snap, c)
    snap.namespaces = [n for n in snap.namespaces if n.kind != "container"]
    drop_rules(snap.host.iptables, "nat", "DOCKER-INGRESS", lambda r: r.target == "DNAT")
    a = analyze([snap])
    who = next(s for s in a.services if s.name == "whoami")
    assert who.ports and who.ports[0].published == 8000
    assert "ingress.dnat-missing" in roots(a)


def test_load_balancer_endpoint_of_a_node_that_left(snap):
    from swarmscope.model import NetworkService, NetworkTaskEndpoint, SwarmNode

    snap.docker.nodes = [SwarmNode(id=snap.node.node_id, hostname=snap.node.hostname, role="manager",
                                   state="ready", address="192.168.76.15")]
    assert analyze([snap]).findings == []  # the node's own endpoints are fine
    appnet = next(n for n in snap.docker.networks if n.name == "appnet")
    eng = appnet.services.setdefault("", NetworkService(name=""))
    eng.tasks.append(NetworkTaskEndpoint(name="appnet-endpoint", endpoint_ip="10.0.1.77", host_ip="192.168.76.99"))
    a = analyze([snap])
    assert roots(a) == ["net.lb-endpoint-left-behind"]
    f = finding(a, "net.lb-endpoint-left-behind")
    assert f.network == "appnet" and "10.0.1.77" in f.detail and "192.168.76.99" in f.detail


def test_duplicate_dns_records_are_named_not_folded(snap):
    a0 = next(a for a in snap.dns if a.query == "tasks.whoami")
    a0.answers = sorted(a0.answers + [a0.answers[0]])
    a = analyze([snap])
    assert roots(a) == ["dns.duplicate-answer"]
    assert f"{a0.answers[0]} answered more than once" in finding(a, "dns.duplicate-answer").detail


# the host filter table of a real engine 28.5.2 node (tests/fixtures/engines/28.5.2+dfsg4: a lab on a kernel
# without ip_vs, so the ingress chain was never programmed), plus what 28.x programs for the lab-vm's port
# 8000 once ip_vs works (moby v28.5.2 service_linux.go: the DOCKER-INGRESS chain, its ACCEPT rules and
# RETURN, and `-I DOCKER-FORWARD -j DOCKER-INGRESS`, inserted first)
def _real_filter(version: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "fixtures" / "engines" / version / "iptables-save.host.txt").read_text()
    start = text.index("*filter")
    return text[start:text.index("COMMIT", start) + len("COMMIT")] + "\n"


INGRESS_28 = ["-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j ACCEPT",
              "-A DOCKER-INGRESS -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -m tcp --sport 8000 -j ACCEPT",
              "-A DOCKER-INGRESS -j RETURN"]


def _filter_28(snap, ingress_after=None, user=(), version="28.5.2+dfsg4"):
    """``ingress_after``: put the jump to DOCKER-INGRESS after this DOCKER-FORWARD rule instead of first."""
    lines = _real_filter(version).splitlines()
    lines.insert(lines.index(":DOCKER-ISOLATION-STAGE-1 - [0:0]"), ":DOCKER-INGRESS - [0:0]")
    fwd = [i for i, l in enumerate(lines) if l.startswith("-A DOCKER-FORWARD ")]
    at = fwd[0] if ingress_after is None else next(i for i in fwd if lines[i] == ingress_after) + 1
    lines.insert(at, "-A DOCKER-FORWARD -j DOCKER-INGRESS")
    commit = lines.index("COMMIT")
    lines[commit:commit] = INGRESS_28 + [f"-A DOCKER-USER {r}" for r in user]
    snap.host.iptables.tables["filter"] = parse_iptables_save("\n".join(lines) + "\n").tables["filter"]
    snap.node.engine_version = version.split("+")[0]


def test_engine_28_forward_layout_is_healthy(snap):
    _filter_28(snap)
    a = analyze([snap])
    assert a.findings == [], [(f.id, f.detail) for f in a.findings]
    h = a.services[0].ports[0].nodes[0].hop("host.forward")
    assert h.status == "ok" and "DOCKER-FORWARD -> DOCKER-INGRESS" in " ".join(h.evidence)


def test_docker_ingress_after_docker_bridge_on_28_drops_the_port(snap):
    """The hand-made order the engine issue names: DOCKER-INGRESS moved after DOCKER-BRIDGE in
    DOCKER-FORWARD; the gwbridge DROP in DOCKER wins, and that rule is named as the cause."""
    _filter_28(snap, ingress_after="-A DOCKER-FORWARD -j DOCKER-BRIDGE")
    a = analyze([snap])
    assert roots(a) == ["ingress.forward-dropped"]
    f = finding(a, "ingress.forward-dropped")
    assert "'-A DOCKER ! -i docker_gwbridge -o docker_gwbridge -j DROP' (filter DOCKER)" in f.detail
    assert a.services[0].ports[0].nodes[0].broken_at == "host filter FORWARD :8000"


def test_operator_drop_in_docker_user_is_named(snap):
    _filter_28(snap, user=["-p tcp -m tcp --dport 8000 -j DROP", "-j RETURN"])
    a = analyze([snap])
    assert roots(a) == ["ingress.forward-dropped"]
    assert "'-A DOCKER-USER -p tcp -m tcp --dport 8000 -j DROP'" in finding(a, "ingress.forward-dropped").detail


@pytest.mark.parametrize("version", ["20.10.24+dfsg1", "26.1.5+dfsg1", "28.5.2+dfsg4"])
def test_real_lab_snapshot_of_each_engine_names_only_the_kernel(version):
    """The snapshots `collect --json` took on healthy labs of three engine generations (kernel without
    ip_vs): exactly kernel.no-ipvs, everything else explained by it, on every engine."""
    from pathlib import Path

    from swarmscope.model import Snapshot

    path = Path(__file__).resolve().parents[1] / "fixtures" / "engines" / version / "swarmscope-collect.json"
    snap = Snapshot.from_dict(json.loads(path.read_text()))
    assert snap.node.engine_version == version
    a = analyze([snap])
    assert roots(a) == ["kernel.no-ipvs"], [(f.id, f.detail) for f in a.findings if f.caused_by is None]
    assert {f.caused_by for f in a.findings} <= {None, "kernel.no-ipvs"}


def test_engine_29_layout_derived_from_28_is_healthy(snap):
    """Engine 29 from its source only (no package runs here): the 28 layout with DOCKER-INTERNAL in place
    of the DOCKER-ISOLATION-STAGE-* chains (docker-v29.7.2 bridge iptabler); judged with the 29 profile."""
    _filter_28(snap)
    f = snap.host.iptables.tables["filter"]
    text = "*filter\n" + "".join(
        f":{c.name} {c.policy or '-'} [0:0]\n" for c in f.chains.values() if not c.name.startswith("DOCKER-ISOLATION")
    ) + ":DOCKER-INTERNAL - [0:0]\n" + "".join(
        r.line.replace("-j DOCKER-ISOLATION-STAGE-1", "-j DOCKER-INTERNAL") + "\n"
        for c in f.chains.values() if not c.name.startswith("DOCKER-ISOLATION") for r in c.rules
    ) + "-A DOCKER-INTERNAL -i docker_gwbridge -o docker0 -j DROP\nCOMMIT\n"
    snap.host.iptables.tables["filter"] = parse_iptables_save(text).tables["filter"]
    snap.node.engine_version = "29.7.2"
    a = analyze([snap])
    assert a.findings == [], [(x.id, x.detail) for x in a.findings]
    assert a.services[0].ports[0].nodes[0].hop("host.forward").status == "ok"


def test_docker_user_rule_that_cannot_be_judged_is_not_claimed(snap):
    """`-i eth0`: whether the port's traffic enters there the rules cannot tell: no verdict from a guess."""
    _filter_28(snap, user=["-i eth0 -p tcp -m tcp --dport 8000 -j DROP", "-j RETURN"])
    a = analyze([snap])
    assert "ingress.forward-dropped" not in {f.id for f in a.findings}
    h = a.services[0].ports[0].nodes[0].hop("host.forward")
    assert h.status == "ok" and any("might match" in e for e in h.evidence)


def test_worker_task_in_discovery_but_not_among_its_own_containers_is_not_running(snap):
    """Service discovery still lists whoami.2 on this very node, but the node's containers (all listed)
    do not include it: it does not run here, so its real server is no healthy backend. A worker has no
    time for it: a task removed a moment ago (an update) looks the same, so it is draining, not a
    stale-server error."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    snap.node.node_addr = "192.168.76.15"  # the Host IP the verbose inspects give for this node's tasks
    gone = next(c for c in snap.docker.containers if c.name.startswith("whoami.2."))
    _container_gone(snap, gone)
    a = analyze([snap])
    who = next(s for s in a.services if s.name == "whoami")
    t2 = next(t for t in who.tasks if t.name == "whoami.2") if any(t.name == "whoami.2" for t in who.tasks) else None
    assert t2 is None or t2.state == "orphaned"
    port = who.ports[0].nodes[0]
    assert sorted(b.status for b in port.backends) == ["draining", "ok"]
    assert not [f for f in a.findings if f.severity == "error"], [(f.id, f.detail) for f in a.findings]


def test_engine_newer_than_every_profile_is_said_not_failed(snap):
    from swarmscope.engines import NEWEST

    snap.node.engine_version = f"{NEWEST.since.major + 1}.0.1"  # a major release past the newest profile
    a = analyze([snap])
    assert [(f.id, f.severity) for f in a.findings] == [("engine.newer-than-profiles", "info")]
    assert f"judged as {NEWEST.name}" in a.findings[0].detail
    from swarmscope.correlate.findings import fails

    assert not fails(a.findings, a.services)


def test_route_localnet_off(snap):
    snap.node.sysctls["net.ipv4.conf.docker_gwbridge.route_localnet"] = "0"
    assert roots(analyze([snap])) == ["host.route-localnet-off"]


def test_ipvs_sysctl_unexpected(snap):
    ns(snap, "ingress_sbox").sysctls["net.ipv4.vs.expire_nodest_conn"] = "0"
    a = analyze([snap])
    assert roots(a) == ["ipvs.sysctl-unexpected"]
    assert "expire_nodest_conn=0" in finding(a, "ipvs.sysctl-unexpected").detail


@pytest.mark.parametrize("engine, kind, value, flagged", [
    # ingress_sbox got the IPVS tuning only from 20.10.17 (SandboxTypeIngress in ApplyOSTweaks)
    ("20.10.16", "ingress_sbox", "1", False),
    ("20.10.24+dfsg1", "ingress_sbox", "1", True),
    ("28.5.2", "ingress_sbox", "1", True),
    # lb_: conn_reuse_mode=0 from 20.10.0; 19.03 wrote only expire_nodest_conn
    ("19.03.15", "lb", "1", False),
    ("20.10.0", "lb", "1", True),
    ("26.1.5+dfsg1", "lb", "0", False),
])
def test_ipvs_sysctls_expected_per_engine_version(snap, engine, kind, value, flagged):
    snap.node.engine_version = engine
    target = ns(snap, "ingress_sbox") if kind == "ingress_sbox" else ns(snap, "lb", "appnet")
    target.sysctls["net.ipv4.vs.conn_reuse_mode"] = value
    a = analyze([snap])
    ids = [f.id for f in a.findings]
    assert ids == (["ipvs.sysctl-unexpected"] if flagged else []), ids
    if flagged:
        assert f"{target.name}: net.ipv4.vs.conn_reuse_mode={value}" in finding(a, "ipvs.sysctl-unexpected").detail


def test_ipvs_without_connection_tracking_is_the_root_cause(snap):
    """A kernel built without IP_VS_NFCT has no net.ipv4.vs.conntrack: dockerd's fwmarker exits before it
    adds the MARK and SNAT rules. One root cause, not a 'value to skip' or five missing rules."""
    sbox, lb = ns(snap, "ingress_sbox"), ns(snap, "lb", "appnet")
    for sb in (sbox, lb):
        sb.sysctls["net.ipv4.vs.conntrack"] = None
        drop_rules(sb.iptables, "mangle", "INPUT", lambda r: r.target == "MARK")
        drop_rules(sb.iptables, "nat", "POSTROUTING", lambda r: r.target == "SNAT")
    drop_rules(sbox.iptables, "mangle", "PREROUTING", lambda r: r.target == "MARK")
    a = analyze([snap])
    assert roots(a) == ["kernel.ipvs-no-conntrack"]
    f = finding(a, "kernel.ipvs-no-conntrack")
    assert f.explains >= 4 and {"ingress.mark-missing", "vip.snat-missing"} <= set(f.explained)
    assert any("does not exist" in e for e in f.evidence)


def test_rules_in_the_other_backend(snap):
    """A rule there that touches nothing of the mesh: a warning."""
    sbox = ns(snap, "ingress_sbox")
    sbox.iptables_other = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n", backend="legacy")
    a = analyze([snap])
    assert roots(a) == ["iptables.backend-split"]
    f = finding(a, "iptables.backend-split")
    assert "ingress_sbox: 1 rules in legacy while the engine uses nft" in f.detail
    assert any("-j DROP" in e for e in f.evidence)


@pytest.mark.parametrize("where, rule, stops", [
    ("ingress_sbox", "-A INPUT -p tcp -m tcp --dport 8000 -j DROP", "published tcp/8000"),
    ("host", "-A FORWARD -p tcp -m multiport --dports 80,8000:8010 -j REJECT --reject-with icmp-port-unreachable", "published tcp/8000"),
    ("host", "-A INPUT -p udp -m udp --dport 4789 -j DROP", "VXLAN data"),
    ("host", "-A INPUT -j DROP", "published tcp/8000"),
])
def test_a_drop_in_the_other_backend_is_an_error_naming_the_rule(snap, where, rule, stops):
    """Severity follows the effect: the same backend split, but the rule stops mesh traffic."""
    chain = rule.split()[1]
    dump = parse_iptables_save(f"*filter\n:{chain} ACCEPT [0:0]\n{rule}\nCOMMIT\n", backend="legacy")
    if where == "host":
        snap.host.iptables_other = dump
    else:
        ns(snap, where).iptables_other = dump
    a = analyze([snap])
    assert roots(a) == ["iptables.other-backend-drops"]
    f = finding(a, "iptables.other-backend-drops")
    assert f.severity == "error" and rule in f.detail and any(stops in e for e in f.evidence)
    assert finding(a, "iptables.backend-split").caused_by == "iptables.other-backend-drops"


def test_published_port_held_by_another_process(snap):
    snap.host.listeners.append(Listener("tcp", "0.0.0.0", 8000, pid=4242, process="nginx"))
    a = analyze([snap])
    assert roots(a) == ["host.port-conflict"]
    assert "nginx" in finding(a, "host.port-conflict").detail


def test_dockerd_holding_the_port_is_fine(snap):
    snap.host.listeners.append(Listener("tcp", "::", 8000, pid=10, process="dockerd"))
    assert analyze([snap]).findings == []


def test_host_mode_port_not_bound(snap):
    svc = snap.docker.services[0]
    svc.ports.append(PortSpec("tcp", 80, 8081, "host"))
    a = analyze([snap])
    assert roots(a) == ["host.port-unbound"]
    snap.host.listeners.append(Listener("tcp", "0.0.0.0", 8081, pid=11, process="docker-proxy"))
    a = analyze([snap])
    assert a.findings == []
    hp = next(p for p in a.services[0].ports if p.mode == "host")
    assert hp.nodes[0].verdict == "ok"


def test_task_redirect_missing(snap):
    task_ns = next(n for n in snap.namespaces if n.kind == "container" and n.container_id
                   and any(a.address == "10.0.0.6" for i in n.interfaces for a in i.addresses))
    drop_rules(task_ns.iptables, "nat", "PREROUTING", lambda r: r.target == "REDIRECT")
    a = analyze([snap])
    assert roots(a) == ["ingress.redirect-missing"]
    np = a.services[0].ports[0].nodes[0]
    assert {b.address: b.redirect for b in np.backends} == {"10.0.0.6": "missing", "10.0.0.7": "ok"}


def test_gwbridge_missing(snap):
    snap.host.gwbridge.present = False
    assert "host.gwbridge-missing" in roots(analyze([snap]))


def test_no_ipvs_is_one_root_cause_with_its_count(snap):
    """A kernel without ip_vs: nothing programmed; one finding that explains the rest."""
    snap.node.ip_vs.available = False
    snap.node.ip_vs.detail = "kernel has no ip_vs"
    nat = snap.host.iptables.tables["nat"]
    del nat.chains["DOCKER-INGRESS"]
    for c in ("PREROUTING", "OUTPUT"):
        drop_rules(snap.host.iptables, "nat", c, lambda r: r.target == "DOCKER-INGRESS")
    for n in snap.namespaces:
        if n.kind in ("ingress_sbox", "lb"):
            n.ipvs.available, n.ipvs.services, n.ipvs.reason = False, [], "kernel has no ip_vs"
            for t in n.iptables.tables.values():
                for c in t.chains.values():
                    c.rules = [r for r in c.rules if r.target not in ("MARK", "SNAT")]
            for i in n.interfaces:
                i.addresses = [x for x in i.addresses if x.prefixlen != 32]
    a = analyze([snap])
    assert roots(a) == ["kernel.no-ipvs"]
    f = finding(a, "kernel.no-ipvs")
    assert f.explains >= 8
    assert {"ingress.chain-missing", "vip.alias-missing", "ipvs.backend-missing"} <= set(f.explained)
    # what still works is still shown
    sp = a.services[0]
    assert sp.vip_paths[0].nodes[0].hop("dns.vip").status == "ok"
    assert [c.status for c in sp.dns] == ["ok"]


def test_findings_sorted_root_causes_first(snap):
    snap.node.sysctls["net.ipv4.ip_forward"] = "0"
    ns(snap, "ingress_sbox").sysctls["net.ipv4.vs.expire_nodest_conn"] = "0"
    snap.namespaces = [n for n in snap.namespaces if n.kind != "lb"]
    a = analyze([snap])
    ids = [f.id for f in a.findings if f.caused_by is None]
    assert ids[0] == "lb.namespace-missing"  # explains the most
    sev = [f.severity for f in a.findings if f.caused_by is None and not f.explains]
    assert sev == sorted(sev, key=lambda s: {"error": 0, "warning": 1}[s])


def test_worker_view_without_a_manager_rebuilds_dnsrr_and_vip_services():
    """A worker cannot list services: they are rebuilt from its containers and verbose network inspects,
    where a dnsrr service is listed with VIP "<nil>"."""
    from swarmscope.collect.docker_api import norm_network

    snap = rawsnap.lab_vm()
    raw = json.loads(rawsnap._strip_comment((rawsnap.LAB_VM / "with-overlay" / "docker-network-inspect-v-appnet.txt").read_text()))[0]
    raw["Services"]["rr"] = {"VIP": "<nil>", "Ports": [], "LocalLBIndex": 300, "Tasks": []}
    appnet = norm_network(raw, verbose=True)
    assert appnet.services["rr"].vip is None
    snap.docker.networks = [appnet if n.name == "appnet" else n for n in snap.docker.networks]
    snap.docker.containers.append(Container(id="c" * 64, name="rr.1.rrtask", service_id="rrsvc", service_name="rr",
                                            task_id="rrtask", state="running",
                                            networks=[ContainerNet(appnet.id, "appnet", "10.0.1.50", 24)]))
    snap.dns.append(DnsAnswer("rr", appnet.id, "appnet", "rr", "lb_odns2ld5k", "ok", ["10.0.1.50"]))
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    a = analyze([snap])
    assert a.api_source is None
    rr = next(s for s in a.services if s.name == "rr")
    assert rr.endpoint_mode == "dnsrr" and rr.vip_paths[0].vip is None
    assert rr.vip_paths[0].nodes[0].hop("dns.rr").status == "ok"
    who = next(s for s in a.services if s.name == "whoami")
    assert who.vips["appnet"] == "10.0.1.2"
    assert not [f for f in a.findings if f.service == "rr"]


def test_worker_with_a_container_just_created_during_an_update(snap):
    """A worker alone, during an update: its new task's container exists but is only 'created' (not yet
    running) while DNS already answers its address; the old one has exited. Neither is a fault."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    c2 = next(c for c in snap.docker.containers if c.name.startswith("whoami.2."))
    c2.state = "created"
    a = analyze([snap])
    assert not [f for f in a.findings if f.severity == "error"], [(f.id, f.detail) for f in a.findings]
    c2.state = "exited"
    a = analyze([snap])
    assert not [f for f in a.findings if f.severity == "error"], [(f.id, f.detail) for f in a.findings]


def test_worker_alone_a_container_started_a_moment_ago_may_lack_its_redirect(snap):
    """What the three-node lab showed on a worker during `service update --force`: the namespaces are
    read while the API view is, so a container the view calls running can have been read a moment
    before its REDIRECT was added. Its start time (State.StartedAt) makes it 'starting' for the settle
    window; one that started long ago and still lacks the rule is a fault."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    task_ns = next(n for n in snap.namespaces if n.kind == "container" and n.container_id
                   and any(a.address == "10.0.0.6" for i in n.interfaces for a in i.addresses))
    drop_rules(task_ns.iptables, "nat", "PREROUTING", lambda r: r.target == "REDIRECT")
    from datetime import datetime, timedelta, timezone

    c = next(c for c in snap.docker.containers if c.id == task_ns.container_id)
    now = datetime.strptime(snap.collected_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    c.started_at = (now - timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    a = analyze([snap])
    assert "ingress.redirect-missing" not in roots(a), [(f.id, f.detail) for f in a.findings]
    c.started_at = (now - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    assert "ingress.redirect-missing" in roots(analyze([snap]))


def test_worker_alone_a_local_task_joined_before_its_container_runs(snap):
    """A new task's sandbox joins the network (its endpoint is in the network's Containers, its address
    in DNS) before its process runs: `docker ps` does not list it yet and the network's service
    discovery may not hold it yet. It is a task on its way in, not an 'extra' DNS answer."""
    from swarmscope.model import NetworkContainer

    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    appnet = next(n for n in snap.docker.networks if n.name == "appnet")
    appnet.containers.append(NetworkContainer(key="f" * 64, name="whoami.3.newtask0000000000000000000",
                                              endpoint_id="e" * 64, ipv4="10.0.1.9/24"))
    for a in snap.dns:
        if a.query == "tasks.whoami" and a.network_name == "appnet":
            a.answers = [*a.answers, "10.0.1.9"]
    a = analyze([snap])
    assert not [f for f in a.findings if f.id.startswith("dns.")], [(f.id, f.detail) for f in a.findings]
    # without the local endpoint the same answer is extra: the test can fail
    appnet.containers.pop()
    assert "dns.tasks-mismatch" in {f.id for f in analyze([snap]).findings}


def test_worker_alone_sees_a_remote_task_drained_during_an_update(snap):
    """What the three-node lab showed on a worker during `service update --force`: discovery (the
    verbose inspect) still lists a remote task that DNS no longer answers -- a disabled entry, being
    drained. Not a fault. The same task answered by DNS but absent from IPVS is one."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    gone = next(c for c in snap.docker.containers if c.name.startswith("whoami.2."))
    _container_gone(snap, gone)  # whoami.2 runs on another node
    drained = {x.ip_address for x in gone.networks}
    for a0 in snap.dns:
        if a0.query == "tasks.whoami":
            a0.answers = [x for x in a0.answers if x not in drained]
    for sb in (ns(snap, "ingress_sbox"), ns(snap, "lb", "appnet")):
        for d in sb.ipvs.services[0].dests:
            if d.address in drained:
                d.weight = 0
    a = analyze([snap])
    assert a.findings == [], [(f.id, f.detail) for f in a.findings]
    # enabled in DNS but gone from the VIP's IPVS: a fault a worker alone can name
    snap2 = rawsnap.lab_vm("with-overlay")
    snap2.node.role, snap2.docker.services, snap2.docker.tasks = "worker", [], []
    _container_gone(snap2, next(c for c in snap2.docker.containers if c.name.startswith("whoami.2.")))
    lb = ns(snap2, "lb", "appnet")
    lb.ipvs.services[0].dests = [d for d in lb.ipvs.services[0].dests if d.address not in drained]
    assert "ipvs.backend-missing" in {f.id for f in analyze([snap2]).findings}


def test_worker_alone_own_task_out_of_dns_is_a_fault_only_if_ipvs_still_sends_it_traffic(snap):
    """Seen on the three-node lab: a worker's own task, its container still running (the 10 s stop
    grace), already out of DNS because dockerd drains it first. A node alone cannot see the desired
    state: the task counts as missing from DNS only where IPVS still gives it weight."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    c2 = next(c for c in snap.docker.containers if c.name.startswith("whoami.2."))
    appnet_ip = next(x.ip_address for x in c2.networks if x.network_name == "appnet")
    for a0 in snap.dns:
        if a0.query == "tasks.whoami":
            a0.answers = [x for x in a0.answers if x != appnet_ip]
    lb = ns(snap, "lb", "appnet")
    d2 = next(d for d in lb.ipvs.services[0].dests if d.address == appnet_ip)
    d2.weight = 0  # drained
    assert not [f for f in analyze([snap]).findings if f.id == "dns.tasks-mismatch"]
    d2.weight = 1  # still balanced to, but DNS lost it: DNS and IPVS disagree
    assert "dns.tasks-mismatch" in {f.id for f in analyze([snap]).findings}


def test_worker_knows_remote_tasks_from_its_verbose_network_inspect(snap):
    """A worker cannot list tasks, but its verbose network inspects list every task of every service on
    its networks, with the address of the node each runs on: remote real servers are tasks, DNS agrees."""
    snap.node.role, snap.docker.services, snap.docker.tasks = "worker", [], []
    gone = next(c for c in snap.docker.containers if c.name.startswith("whoami.2."))
    _container_gone(snap, gone)  # whoami.2 runs on another node, as far as this worker knows
    a = analyze([snap])
    assert a.api_source is None
    who = next(s for s in a.services if s.name == "whoami")
    assert sorted(t.name for t in who.tasks) == ["whoami.1", "whoami.2"]
    for np in [who.ports[0].nodes[0], who.vip_paths[0].nodes[0]]:
        assert sorted(b.status for b in np.backends) == ["ok", "ok"], np.backends
        assert np.verdict == "ok"
    remote = next(b for b in who.ports[0].nodes[0].backends if b.task == "whoami.2")
    assert remote.redirect == "unknown" and remote.container_id is None
    assert [c.status for c in who.dns] == ["ok"]
    assert a.findings == []


def test_ip_forward_off_in_lb_is_one_finding_for_the_network():
    """Every VIP service on the network crosses the lb_ namespace: one finding, not one per service."""
    snap = rawsnap.lab_vm()
    appnet = next(n for n in snap.docker.networks if n.name == "appnet")
    snap.docker.services.append(Service(id="second", name="second", mode="replicated", replicas=0, networks=[appnet.id],
                                        vips=[ServiceVip(appnet.id, "10.0.1.40/24")]))
    ns(snap, "lb", "appnet").sysctls["net.ipv4.ip_forward"] = "0"
    a = analyze([snap])
    crossing = [sp.name for sp in a.services if sp.vip_paths and sp.vip_paths[0].nodes[0].hop("lb.ip_forward")]
    assert sorted(crossing) == ["second", "whoami"]
    fs = [f for f in a.findings if f.id == "lb.ip-forward-off"]
    assert len(fs) == 1 and fs[0].service is None and fs[0].network == "appnet"


def test_nodes_collected_either_side_of_the_settle_window_agree():
    """A real three-node gather (tests/fixtures/lab-dumps/README.md): the manager, collected two seconds
    before the workers, still counted the new tasks as starting; the workers did not. Their DNS answered
    alike, so dns.nodes-differ must not fire: an address settling at any node's time is set aside on all."""
    import json
    from pathlib import Path

    from swarmscope.dump import snapshots_from_data

    path = Path(__file__).resolve().parents[1] / "fixtures" / "lab-dumps" / "three-node-settle-boundary.json"
    a = analyze(snapshots_from_data(json.loads(path.read_text()), str(path)))
    assert roots(a) == ["kernel.no-ipvs"], [(f.id, f.detail) for f in a.findings if f.caused_by is None]
