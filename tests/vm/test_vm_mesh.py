"""The VM tier: a real routing mesh (ip_vs kernel under QEMU) in a healthy state and with one fault at a time.

One guest boot (session fixture `vm_run`, see conftest.py) runs guest/scenario.sh: lab services, phase
`healthy`, then faults (vmlab.plan: all on the newest engine, l, n, m on each), each captured raw into <out>/phases/<phase>/ with swarmscope run on it,
then repaired.  These tests read those captures.  For now they assert what the infrastructure itself can
prove from the raw outputs; the swarmscope assertions come once `explain`/`check` exist (see
EXPECTED_FINDINGS below).

Run alone:  sudo python3 -m pytest -m vm tests/vm -v      (SWARMSCOPE_VM=0 skips it)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import vmlab

pytestmark = pytest.mark.vm

# One boot runs the image's 20.10, then each other engine (issue 11), as vmlab.plan lays out: the newest
# engine every fault, the others the faults whose rules differ between engines (l, n; m from 28 on). The
# plan below assumes every engine is there; the run's own plan (<out>/plan.json) says what it really ran.
ENGINE_LABELS = os.environ.get("SWARMSCOPE_VM_ENGINES", "26.1 28").split()
PLAN = vmlab.plan(ENGINE_LABELS)
ALL_PHASES = vmlab.plan_phases(PLAN)
HEALTHY_PHASES = [p for p in ALL_PHASES if p.split("/")[-1] == "healthy"]
FAULT_PHASES = [p for p in ALL_PHASES if p.split("/")[-1] != "healthy"]

# In every phase the scenario runs, in the guest, `swarmscope explain whoami --format json --save dump.json`
# (one collection) and `swarmscope check --format json --from dump.json`. Each phase must give exactly
# this root-cause finding (None: healthy, no finding at all), and check's exit code must say so.
EXPECTED_FINDINGS: dict[str, str | None] = {
    "healthy": None,
    "a-dnat-flushed": "ingress.dnat-missing",
    "b-backend-deleted": "ipvs.backend-missing",
    "c-unknown-backend": "ipvs.backend-stale",
    "d-weight-zero": "ipvs.weight-zero",
    "e-mark-deleted": "ingress.mark-missing",
    "f-vip-removed": "vip.alias-missing",
    "g-lb-ip-forward-off": "lb.ip-forward-off",
    "h-task-killed": "service.replicas-short",
    # issue 16's causes, made for real in the guest: the userspace ipvs match moved aside, ip_vs_rr unloaded and
    # taken out of the modules tree, an IPVS sysctl of ingress_sbox written back to the kernel default
    "i-xt-ipvs-missing": "iptables.no-ipvs-match",
    "j-ip-vs-rr-missing": "kernel.ipvs-scheduler-missing",
    "k-ipvs-sysctl-reset": "ipvs.sysctl-unexpected",
    "l-filter-accept-deleted": "ingress.filter-accept-missing",
    "m-ingress-after-bridge": "ingress.forward-dropped",
    "n-ingress-snat-deleted": "ingress.snat-missing",
    # issue 13: the server in one task stopped, every rule, real server and task in place: the rules see nothing
    # (no finding, exit 0); `check --probe` in the same phase names it (test_probe_names_a_task_not_listening)
    "p-task-not-listening": None,
}
# `check --probe --probe-http --probe-timeout 3 --format json --save probe-dump.json` (scenario.sh PROBE_COMMAND):
# in every healthy phase and in the faults only traffic shows
PROBE_SLUG = "check_probe_probe_http_probe_timeout_3_format_json"
# without libxt_ipvs.so, iptables-nft-save itself cannot print a sandbox holding an ipvs-match rule (it
# says "Perhaps iptables-nft-save or your kernel needs to be upgraded"): those sandboxes are unread
UNREADABLE = {"i-xt-ipvs-missing": "iptables-nft-save"}
EXIT = {None: 0, "ipvs.weight-zero": 0, "service.replicas-short": 0, "ipvs.sysctl-unexpected": 0}  # warnings; every other finding is an error


# ------------------------------------------------------------------------------------------ helpers
def read(path: Path) -> str:
    assert path.exists(), f"missing capture {path}"
    return path.read_text(errors="replace")


def load_json(path: Path):
    return json.loads(read(path))


def engine_not_run(out: Path, phase: str) -> None:
    """Skip, with the reason, a phase of an engine the run could not have (no engine cache, no network)."""
    if not phase.startswith("engine-"):
        return
    label = phase.split("/")[0].removeprefix("engine-")
    notes = out / "engines-not-run.txt"
    for line in (notes.read_text().splitlines() if notes.exists() else []):
        if line.startswith(f"engine {label}:"):
            pytest.skip(f"not run in this boot: {line}")
    if "ENGINES=" not in (out / "params.env").read_text():
        pytest.skip("this run had no other engines (SWARMSCOPE_VM_ENGINES empty)")


def run_plan(out: Path) -> dict:
    """What this boot was asked to run (written by vmlab.boot): phases in order, the prefix of the engine that
    ran every fault ("full")."""
    return load_json(out / "plan.json")


def phase_dir(out: Path, phase: str) -> Path:
    engine_not_run(out, phase)
    plan = run_plan(out)
    if phase not in plan["phases"]:
        pytest.skip(f"{phase} is not in this run's plan ({out}/plan.json); every fault ran on "
                    f"{plan['full'] or '20.10'}")
    d = out / "phases" / phase
    if not d.is_dir():
        pytest.fail(f"phase {phase} never ran (phases.txt: {vmlab.phases(out)}; {vmlab.tail(out / 'FAILED.txt')})")
    return d


def full_prefix(out: Path) -> str:
    """The phase prefix of the engine that ran every fault ("" for the image's 20.10, "engine-28/")."""
    return run_plan(out)["full"]


def full_dir(out: Path, fault: str) -> Path:
    """The phase directory of ``fault`` on the engine that ran every fault."""
    return phase_dir(out, full_prefix(out) + fault)


def whoami_containers(d: Path) -> list[dict]:
    """Running whoami task containers of a phase, from `docker inspect --type container`."""
    return [c for c in load_json(d / "docker" / "container-inspect.json")
            if c["Config"]["Labels"].get("com.docker.swarm.service.name") == "whoami" and c["State"]["Running"]]


def lb_index(d: Path, network: str, service: str = "whoami") -> int:
    net = load_json(d / "docker" / f"network-inspect-v-{network}.json")[0]
    return int(net["Services"][service]["LocalLBIndex"])


def lb_ns(d: Path) -> str:
    net = load_json(d / "docker" / "network-inspect-v-demo.json")[0]
    return "lb_" + net["Id"][:9]


def ingress_real_servers(d: Path) -> list[tuple[str, int]]:
    return vmlab.ipvs_fwm(read(d / "ns" / "ingress_sbox" / "ipvsadm-Ln.txt")).get(lb_index(d, "ingress"), [])


def facts_before(d: Path) -> dict:
    return load_json(d / "facts-before.json")


def wget_answers(path: Path) -> list[str]:
    """One line per request: the answering task's hostname or `FAILED (exit N)` (wget's own messages dropped)."""
    return [l.strip() for l in read(path).splitlines() if l.strip() and not l.startswith("wget:")]


# ------------------------------------------------------------------------------------------ the run itself
def test_guest_ran_whole_scenario_and_shut_down(vm_run):
    assert not vm_run.timed_out, f"the guest hit the boot timeout ({vm_run.seconds:.0f} s); qemu was killed"
    assert vm_run.qemu_rc == 0, f"qemu exit {vm_run.qemu_rc}"
    assert vm_run.scenario_rc == 0, f"scenario exit {vm_run.scenario_rc}: {vmlab.tail(vm_run.out / 'FAILED.txt')}"
    assert (vm_run.out / "DONE").exists()
    ran = list(vmlab.phases(vm_run.out))
    plan = run_plan(vm_run.out)
    assert ran == plan["phases"], (ran, plan)
    notes = vm_run.out / "engines-not-run.txt"
    skipped = notes.read_text() if notes.exists() else ""
    labels = [pre[len("engine-"):-1] for pre in plan["engines"] if pre]
    assert labels == [x for x in ENGINE_LABELS if f"engine {x}:" not in skipped], (labels, skipped)
    assert all(vmlab.phases(vm_run.out)[f"engine-{x}/healthy"] == "ok" for x in labels)
    for label in labels:  # the engine that ran is the one named (docker version's Server part)
        assert re.search(r"^Server:", read(vm_run.out / "setup" / f"engine-{label}.txt"), re.M)
    # issue 11: every fault on the newest engine that ran
    assert plan["full"] == (f"engine-{labels[-1]}/" if labels else "")
    every = set(os.environ.get("SWARMSCOPE_VM_NEWEST_FAULTS", "").split() or vmlab.ALL_FAULTS)  # unless narrowed
    assert every <= {p.removeprefix(plan["full"]) for p in ran if p.startswith(plan["full"])}


def test_swarmscope_installed_in_guest_from_checkout(vm_out):
    assert read(vm_out / "setup" / "pip-install.rc").strip() == "0", vmlab.tail(vm_out / "setup" / "pip-install.log")
    assert re.search(r"^swarmscope[ =@]", read(vm_out / "setup" / "pip-freeze.txt"), re.M)


def swarmscope_out(vm_out: Path, phase: str, slug: str) -> tuple[int, dict]:
    d = phase_dir(vm_out, phase) / "swarmscope"
    rc = int(read(d / f"{slug}.rc").strip())
    assert rc in (0, 1), f"{phase}: swarmscope {slug} exit {rc}: {read(d / f'{slug}.stderr')[-2000:]}"
    return rc, load_json(d / f"{slug}.stdout")


@pytest.mark.parametrize("phase", ALL_PHASES)
def test_swarmscope_finding(vm_out, phase):
    """check, on the dump explain collected in the guest: exactly the expected root cause, and its exit code."""
    want = EXPECTED_FINDINGS[phase.split("/")[-1]]
    rc, doc = swarmscope_out(vm_out, phase, "check_format_json")
    roots = sorted({f["id"] for f in doc["findings"] if f["caused_by"] is None})
    assert roots == ([want] if want else []), f"{phase}: root causes {roots}, want {want}"
    assert rc == EXIT.get(want, 1)
    if phase.split("/")[-1] in UNREADABLE:
        # what the fault does to the tools themselves: partial data, the rest judged
        errors = [e for n in load_json(phase_dir(vm_out, phase) / "swarmscope" / "dump.json")["nodes"] for e in n["errors"]]
        assert doc["complete"] is False and errors and all(UNREADABLE[phase.split("/")[-1]] in e for e in errors), errors
    else:
        assert doc["complete"] is True, f"{phase}: the snapshot is incomplete"
    erc, explain = swarmscope_out(vm_out, phase, "explain_whoami_format_json")
    assert erc == rc
    if want:
        # the finding carries its evidence, and explain names it on the path
        f = next(f for f in doc["findings"] if f["id"] == want)
        assert f["evidence"] and f["hint"]
        assert want in {f["id"] for f in explain["findings"]}


def _paths(explain: dict):
    sp = explain["services"][0]
    assert sp["name"] == "whoami"
    yield "ingress", sp["ports"][0]["nodes"][0]
    for vp in sp["vip_paths"]:
        for np in vp["nodes"]:
            yield f"vip {vp['network']}", np


@pytest.mark.parametrize("phase", HEALTHY_PHASES)
def test_swarmscope_healthy_every_hop_ok(vm_out, phase):
    _, explain = swarmscope_out(vm_out, phase, "explain_whoami_format_json")
    seen = set()
    for kind, np in _paths(explain):
        seen.add(kind.split()[0])
        assert np["verdict"] == "ok", (kind, np["reason"])
        bad = [(h["label"], h["status"], h["detail"]) for h in np["hops"] if h["status"] != "ok"]
        assert not bad, (kind, bad)
    assert seen == {"ingress", "vip"}


@pytest.mark.parametrize("phase", HEALTHY_PHASES)
def test_swarmscope_healthy_real_servers_are_the_running_tasks(vm_out, phase):
    d = phase_dir(vm_out, phase)
    tasks = whoami_containers(d)
    ingress = {c["NetworkSettings"]["Networks"]["ingress"]["IPAddress"] for c in tasks}
    demo = {c["NetworkSettings"]["Networks"]["demo"]["IPAddress"] for c in tasks}
    assert len(ingress) == 2 and len(demo) == 2
    _, explain = swarmscope_out(vm_out, phase, "explain_whoami_format_json")
    for kind, np in _paths(explain):
        got = {b["address"] for b in np["backends"]}
        assert got == (ingress if kind == "ingress" else demo), kind
        assert {b["status"] for b in np["backends"]} == {"ok"} and {b["weight"] for b in np["backends"]} == {1}
        if kind == "ingress":
            assert {b["redirect"] for b in np["backends"]} == {"ok"}
    # the IPVS tables were read over netlink, on a real ip_vs kernel
    dump = load_json(d / "swarmscope" / "dump.json")
    ipvs = [n["ipvs"] for n in dump["nodes"][0]["namespaces"] if n["kind"] in ("ingress_sbox", "lb")]
    assert ipvs and {t["source"] for t in ipvs} == {"netlink"}


def test_swarmscope_broken_hop_is_the_fault(vm_out):
    """The verdict names the hop each fault broke."""
    where = {"a-dnat-flushed": ("ingress", "host.dnat"), "e-mark-deleted": ("ingress", "ingress.mark"),
             "f-vip-removed": ("vip", "lb.vip_alias"), "g-lb-ip-forward-off": ("vip", "lb.ip_forward"),
             "b-backend-deleted": ("ingress", "ingress.backends"), "c-unknown-backend": ("ingress", "ingress.backends")}
    for fault, (kind, key) in where.items():
        phase = full_prefix(vm_out) + fault
        _, explain = swarmscope_out(vm_out, phase, "explain_whoami_format_json")
        np = next(np for k, np in _paths(explain) if k.startswith(kind))
        hop = next(h for h in np["hops"] if h["key"] == key)
        want = "degraded" if key.endswith(".backends") else "broken"  # one task still answers
        assert np["verdict"] == want and np["broken_at"] == hop["label"], (phase, np["reason"])


# ------------------------------------------------------------------------------------------ an external client
# `wget-external-8000.txt`: from a namespace behind a veth (192.168.77.2), the way a remote client comes:
# PREROUTING DNAT, then FORWARD. The node's own wget (`wget-eth0-8000.txt`) leaves through OUTPUT and never
# meets FORWARD, so only this one shows what a filter fault does to real clients.
@pytest.mark.parametrize("phase", HEALTHY_PHASES)
def test_external_client_reaches_the_published_port(vm_out, phase):
    answers = wget_answers(phase_dir(vm_out, phase) / "wget-external-8000.txt")
    assert answers and not [a for a in answers if a.startswith("FAILED")], answers


FORWARD_FAULTS = [p for p in FAULT_PHASES if p.endswith(("l-filter-accept-deleted", "m-ingress-after-bridge"))]


@pytest.mark.parametrize("phase", FORWARD_FAULTS)
def test_external_client_is_dropped_where_the_finding_says(vm_out, phase):
    """The filter faults: the node's own wget still answers, a forwarded client's connection does not."""
    d = phase_dir(vm_out, phase)
    answers = wget_answers(d / "wget-external-8000.txt")
    assert answers and all(a.startswith("FAILED") for a in answers), answers
    assert not [a for a in wget_answers(d / "wget-eth0-8000.txt") if a.startswith("FAILED")]


# ------------------------------------------------------------------------------------------ healthy
@pytest.fixture(scope="module")
def healthy(vm_out) -> Path:
    return phase_dir(vm_out, "healthy")


def test_healthy_published_port_round_robins_across_both_tasks(healthy):
    answers = wget_answers(healthy / "wget-127.0.0.1-8000.txt")
    assert len(answers) == 4 and not any(a.startswith("FAILED") for a in answers), answers
    hostnames = {c["Config"]["Hostname"] for c in whoami_containers(healthy)}
    assert len(hostnames) == 2
    assert set(answers) == hostnames, f"answers {answers} vs whoami task hostnames {hostnames}"


def test_healthy_ingress_ipvs_backends_are_the_whoami_tasks(healthy):
    mark = lb_index(healthy, "ingress")
    ingress_ips = sorted(c["NetworkSettings"]["Networks"]["ingress"]["IPAddress"] for c in whoami_containers(healthy))
    assert sorted(ingress_real_servers(healthy)) == [(ip, 1) for ip in ingress_ips]
    mangle = vmlab.iptables_rules(read(healthy / "ns" / "ingress_sbox" / "iptables-save.txt"), "mangle", "PREROUTING")
    assert any("--dport 8000" in r and f"--set-xmark {mark:#x}/0xffffffff" in r for r in mangle), mangle
    assert f"FWM  {mark} rr" in read(healthy / "ns" / "ingress_sbox" / "ipvsadm-Ln.txt")
    assert f"-A -f {mark} -s rr" in read(healthy / "ns" / "ingress_sbox" / "ipvsadm-S-n.txt")


def test_healthy_host_nat_dnat_to_ingress_sbox(healthy):
    gw = load_json(healthy / "docker" / "network-inspect-docker_gwbridge.json")[0]
    sbox_ip = gw["Containers"]["ingress-sbox"]["IPv4Address"].split("/")[0]
    rules = vmlab.iptables_rules(read(healthy / "ns" / "host" / "iptables-save.txt"), "nat", "DOCKER-INGRESS")
    assert f"-A DOCKER-INGRESS -p tcp -m tcp --dport 8000 -j DNAT --to-destination {sbox_ip}:8000" in rules, rules
    assert "net.ipv4.conf.docker_gwbridge.route_localnet = 1" in read(healthy / "ns" / "host" / "sysctl.txt")


def test_healthy_lb_namespace_of_demo_has_vip_and_backends(healthy):
    ns = healthy / "ns" / lb_ns(healthy)
    svc = {s["Spec"]["Name"]: s for s in load_json(healthy / "docker" / "service-inspect.json")}
    demo_id = load_json(healthy / "docker" / "network-inspect-v-demo.json")[0]["Id"]
    vip = next(v["Addr"].split("/")[0] for v in svc["whoami"]["Endpoint"]["VirtualIPs"] if v["NetworkID"] == demo_id)
    assert re.search(rf"inet {re.escape(vip)}/32 .*eth0", read(ns / "ip-d-addr.txt"))
    demo_ips = sorted(c["NetworkSettings"]["Networks"]["demo"]["IPAddress"] for c in whoami_containers(healthy))
    assert sorted(vmlab.ipvs_fwm(read(ns / "ipvsadm-Ln.txt"))[lb_index(healthy, "demo")]) == [(ip, 1) for ip in demo_ips]
    assert not svc["dnsrr"]["Endpoint"].get("VirtualIPs"), "endpoint-mode dnsrr: no VIP"


def test_healthy_client_reaches_whoami_vip(healthy):
    answers = wget_answers(healthy / "wget-client-to-whoami-vip.txt")
    hostnames = {c["Config"]["Hostname"] for c in whoami_containers(healthy)}
    assert answers and set(answers) <= hostnames, answers


def test_healthy_embedded_dns(healthy):
    dd = healthy / "docker"
    svc = {s["Spec"]["Name"]: s for s in load_json(dd / "service-inspect.json")}
    demo_id = load_json(dd / "network-inspect-v-demo.json")[0]["Id"]
    vip = next(v["Addr"].split("/")[0] for v in svc["whoami"]["Endpoint"]["VirtualIPs"] if v["NetworkID"] == demo_id)
    demo_ips = {c["NetworkSettings"]["Networks"]["demo"]["IPAddress"] for c in whoami_containers(healthy)}

    def answers(name):
        text = read(dd / f"dns-{name}.txt")
        return set(re.findall(r"^Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)", text.split("Name:", 1)[-1], re.M))

    assert answers("whoami") == {vip}
    assert answers("tasks.whoami") == demo_ips
    dnsrr = [c for c in load_json(dd / "container-inspect.json")
             if c["Config"]["Labels"].get("com.docker.swarm.service.name") == "dnsrr"]
    assert answers("dnsrr") == answers("tasks.dnsrr") == {dnsrr[0]["NetworkSettings"]["Networks"]["demo"]["IPAddress"]}


def test_healthy_host_mode_port(healthy):
    answers = wget_answers(healthy / "wget-127.0.0.1-8081.txt")
    assert len(answers) == 1 and not answers[0].startswith("FAILED"), answers


def test_every_docker_netns_captured(healthy):
    names = {l.split()[-1] for l in read(healthy / "netns-list.txt").splitlines() if l.startswith(("-", "l"))}
    assert "ingress_sbox" in names and lb_ns(healthy) in names
    assert any(n.startswith("1-") for n in names)
    for n in names | {"host"}:
        for f in ("iptables-save.txt", "ipvsadm-Ln.txt", "ipvsadm-S-n.txt", "proc-net-ip_vs.txt", "ip-d-addr.txt",
                  "ip-link.txt", "sysctl.txt"):
            assert (healthy / "ns" / n / f).exists(), f"{n}/{f}"


# ------------------------------------------------------------------------------------------ faults
def hostnames_by_ingress_ip(d: Path) -> dict[str, str]:
    return {c["NetworkSettings"]["Networks"]["ingress"]["IPAddress"]: c["Config"]["Hostname"] for c in whoami_containers(d)}


def test_fault_a_host_nat_has_no_dnat_for_8000(vm_out):
    d = full_dir(vm_out, "a-dnat-flushed")
    rules = vmlab.iptables_rules(read(d / "ns" / "host" / "iptables-save.txt"), "nat", "DOCKER-INGRESS")
    assert not any("--dport 8000" in r for r in rules), rules
    assert len(ingress_real_servers(d)) == 2  # the load balancer itself is intact
    assert all(a.startswith("FAILED") for a in wget_answers(d / "wget-127.0.0.1-8000.txt"))
    assert not any(a.startswith("FAILED") for a in wget_answers(d / "wget-client-to-whoami-vip.txt"))


def test_fault_b_one_real_server_fewer(vm_out):
    d = full_dir(vm_out, "b-backend-deleted")
    gone = facts_before(d)["whoami_tasks"][0]["ingress_ip"]
    rs = ingress_real_servers(d)
    assert len(rs) == 1 and gone not in {a for a, _ in rs}, rs
    assert len(whoami_containers(d)) == 2  # both tasks still run, one gets no published-port traffic
    assert set(wget_answers(d / "wget-127.0.0.1-8000.txt")) == {hostnames_by_ingress_ip(d)[rs[0][0]]}


def test_fault_c_real_server_no_task_owns(vm_out):
    d = full_dir(vm_out, "c-unknown-backend")
    bogus = facts_before(d)["unknown_backend"]
    rs = ingress_real_servers(d)
    task_ips = set(hostnames_by_ingress_ip(d))
    assert len(rs) == 3 and (bogus, 1) in rs and bogus not in task_ips, rs
    assert re.search(rf"-a -f \d+ -r {re.escape(bogus)}:0 -m -w 1", read(d / "ns" / "ingress_sbox" / "ipvsadm-S-n.txt"))
    answers = wget_answers(d / "wget-127.0.0.1-8000.txt")  # round robin over 3: every third request hangs
    assert any(a.startswith("FAILED") for a in answers) and not all(a.startswith("FAILED") for a in answers), answers


def test_fault_d_real_server_weight_zero(vm_out):
    d = full_dir(vm_out, "d-weight-zero")
    target = facts_before(d)["whoami_tasks"][0]["ingress_ip"]
    rs = ingress_real_servers(d)
    assert sorted(w for a, w in rs) == [0, 1] and (target, 0) in rs, rs
    live = next(a for a, w in rs if w == 1)
    assert set(wget_answers(d / "wget-127.0.0.1-8000.txt")) == {hostnames_by_ingress_ip(d)[live]}


def test_fault_e_ingress_mark_rule_missing(vm_out):
    d = full_dir(vm_out, "e-mark-deleted")
    mangle = vmlab.iptables_rules(read(d / "ns" / "ingress_sbox" / "iptables-save.txt"), "mangle", "PREROUTING")
    assert not any("--dport 8000" in r for r in mangle), mangle
    assert len(ingress_real_servers(d)) == 2  # the IPVS side is untouched
    assert all(a.startswith("FAILED") for a in wget_answers(d / "wget-127.0.0.1-8000.txt"))


def test_fault_f_vip_missing_from_lb_namespace(vm_out):
    d = full_dir(vm_out, "f-vip-removed")
    vip = facts_before(d)["whoami_vip_demo"]
    assert f"inet {vip}/32" not in read(d / "ns" / lb_ns(d) / "ip-d-addr.txt")
    assert len(vmlab.ipvs_fwm(read(d / "ns" / lb_ns(d) / "ipvsadm-Ln.txt"))[lb_index(d, "demo")]) == 2
    assert all(a.startswith("FAILED") for a in wget_answers(d / "wget-client-to-whoami-vip.txt"))
    assert not any(a.startswith("FAILED") for a in wget_answers(d / "wget-127.0.0.1-8000.txt"))


def test_fault_g_ip_forward_off_in_lb_namespace(vm_out):
    d = full_dir(vm_out, "g-lb-ip-forward-off")
    assert "net.ipv4.ip_forward = 0" in read(d / "ns" / lb_ns(d) / "sysctl.txt").splitlines()
    healthy = vm_out / "phases" / f"{full_prefix(vm_out)}healthy"
    assert "net.ipv4.ip_forward = 1" in read(healthy / "ns" / lb_ns(d) / "sysctl.txt").splitlines()
    assert all(a.startswith("FAILED") for a in wget_answers(d / "wget-client-to-whoami-vip.txt"))


def timeline_samples(path: Path) -> list[set[str]]:
    """timeline.txt -> per sample, the ingress_sbox real server addresses."""
    samples: list[set[str]] = []
    section = None
    for line in read(path).splitlines():
        if line.startswith("--- t="):
            samples.append(set())
        elif line.endswith(":") and not line.startswith(" "):
            section = line[:-1]
        elif section == "ingress_sbox" and line.strip().startswith("->") and samples:
            samples[-1].add(line.split()[1].rsplit(":", 1)[0])
    return samples


def test_fault_h_killed_task_leaves_the_load_balancers(vm_out):
    d = full_dir(vm_out, "h-task-killed")
    before = facts_before(d)["whoami_tasks"]
    killed = before[0]
    state = {c["Id"]: c["State"] for c in load_json(d / "docker" / "container-inspect.json")}
    assert killed["container"] in state and not state[killed["container"]]["Running"], "killed container not exited"
    samples = timeline_samples(d / "timeline.txt")
    assert len(samples) >= 5, "the load balancers were sampled during and after the kill"
    assert killed["ingress_ip"] not in samples[-1], "the dead task's address stays an ingress real server"
    # whoami restarts a failed task only after --restart-delay 40s (scenario.sh): during the sampled
    # 30 s the survivor alone is a real server; the replacement's return is the phase's repair
    assert len(samples[-1]) == 1, f"only the surviving task should be a real server: {samples[-1]}"
    assert vmlab.phases(vm_out).get(f"{full_prefix(vm_out)}h-task-killed") == "repaired-by-wait"


@pytest.mark.parametrize("phase", FAULT_PHASES)
def test_fault_was_repaired(vm_out, phase):
    phase_dir(vm_out, phase)
    outcome = vmlab.phases(vm_out).get(phase, "")
    assert outcome.startswith("repaired-by-"), f"{phase}: {outcome}; {read(phase_dir(vm_out, phase) / 'repair.txt')}"


def test_rolling_update_on_a_real_mesh_gives_no_finding(vm_out):
    """While `docker service update --force whoami` replaces the tasks on the real ip_vs mesh (old real
    servers drained to weight 0, new ones added), every `check` run finds nothing and exits 0."""
    r = vm_out / "rolling-update"
    runs = sorted((p for p in r.glob("check-*.json") if re.fullmatch(r"check-\d+\.json", p.name)),
                  key=lambda p: int(p.stem.split("-")[1]))  # not the check-N.dump.json each run saves
    assert runs, f"no check ran during the update: {sorted(p.name for p in r.iterdir()) if r.is_dir() else 'no dir'}"
    during = [p for p in runs if read(p.with_suffix(".state")).strip() == "updating"]
    assert during, "no check ran while the update was in progress"
    for p in runs:
        doc = load_json(p)
        rc = int(read(p.with_suffix(".rc")))
        assert doc["findings"] == [] and rc == 0, (p.name, rc, [(f["id"], f["detail"]) for f in doc["findings"]])
    assert not (r / "NOT-HEALTHY.txt").exists(), read(r / "health-after.txt")


# ------------------------------------------------------------------------------------------ --probe (issue 13)
def probes_of(d: Path) -> list[dict]:
    return [p for n in load_json(d / "swarmscope" / "probe-dump.json")["nodes"] for p in n["probes"]]


@pytest.mark.parametrize("phase", HEALTHY_PHASES)
def test_probe_healthy_every_probe_connected(vm_out, phase):
    """--probe on the healthy mesh: the published port (node address and 127.0.0.1), whoami's VIP and each task
    directly, from the node's own namespaces: every connection made, every HTTP answer 200, no finding."""
    rc, doc = swarmscope_out(vm_out, phase, PROBE_SLUG)
    assert doc["findings"] == [] and rc == 0, [(f["id"], f["detail"]) for f in doc["findings"]]
    tried = [p for p in probes_of(phase_dir(vm_out, phase)) if p["result"] != "not-probed"]
    assert {"published", "localhost", "vip", "task"} <= {p["kind"] for p in tried}, tried
    bad = [(p["kind"], p["source"], p["address"], p["port"], p["result"], p["reason"]) for p in tried
           if p["result"] != "connected"]
    assert not bad, bad
    whoami = [p for p in tried if p["service"] == "whoami"]
    assert whoami and all(" 200 " in f"{p['http_status']} " for p in whoami), [p["http_status"] for p in whoami]
    tasks = {c["NetworkSettings"]["Networks"]["ingress"]["IPAddress"] for c in whoami_containers(phase_dir(vm_out, phase))}
    assert tasks <= {p["address"] for p in whoami if p["kind"] == "task"}


def test_probe_names_a_task_not_listening(vm_out):
    """A task whose server stopped while its container keeps running: the rules say ok (no finding, see
    test_swarmscope_finding), traffic fails every other request, and --probe names the task's real server hop."""
    d = full_dir(vm_out, "p-task-not-listening")
    phase = full_prefix(vm_out) + "p-task-not-listening"
    stopped = facts_before(d)["whoami_tasks"][0]
    assert stopped["container"] in {c["Id"] for c in whoami_containers(d)}, "the container should still run"
    answers = wget_answers(d / "wget-127.0.0.1-8000.txt")
    assert any(a.startswith("FAILED") for a in answers) and not all(a.startswith("FAILED") for a in answers), answers
    rc, doc = swarmscope_out(vm_out, phase, PROBE_SLUG)
    roots = sorted({f["id"] for f in doc["findings"] if f["caused_by"] is None})
    assert roots == ["probe.hop-suspect"] and rc == 1, roots
    suspect = [f for f in doc["findings"] if f["id"] == "probe.hop-suspect"]
    lines = [line for f in suspect for line in f["evidence"]]
    assert any(stopped["ingress_ip"] in line and "refused" in line for line in lines), lines
    assert all(f["hint"] for f in suspect)
