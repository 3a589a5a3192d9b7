"""`swarmscope explain` / `check` on the real lab swarm, healthy and with faults injected for real.

The kernel here has no ip_vs: that is the root cause swarmscope must name,
while still showing what works (tasks, VIPs, DNS equal to the API). Each fault
test breaks the lab where this kernel allows it, asserts the finding, and
repairs what it broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def explain(lab, *args, timeout=180):
    return lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), *args, timeout=timeout)


def check_json(lab):
    cp = lab.swarmscope("check", "--netns-dir", str(lab.netns_dir), "--format", "json", timeout=180)
    assert cp.returncode in (0, 1, 4), cp.stderr
    return json.loads(cp.stdout)


def roots(doc):
    return {f["id"] for f in doc["findings"] if f["caused_by"] is None}


def wait(pred, timeout=90, step=1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def test_explain_names_no_ipvs_and_shows_what_works(lab):
    cp = explain(lab, "whoami", "--format", "json")
    assert cp.returncode == 1, cp.stderr  # kernel.no-ipvs is an error
    doc = json.loads(cp.stdout)
    top = [f for f in doc["findings"] if f["caused_by"] is None]
    assert top[0]["id"] == "kernel.no-ipvs" and top[0]["explains"] >= 10
    sp = doc["services"][0]
    assert [t["state"] for t in sp["tasks"]] == ["running", "running"]
    assert set(sp["vips"]) == {"demo", "ingress"}
    vip = sp["vip_paths"][0]["nodes"][0]
    hops = {h["key"]: h for h in vip["hops"]}
    assert hops["dns.vip"]["status"] == "ok" and hops["lb.ns"]["status"] == "ok"
    assert hops["kernel.ipvs"]["status"] == "missing"
    assert [c["status"] for c in sp["dns"]] == ["ok"]
    port = sp["ports"][0]["nodes"][0]
    assert port["verdict"] == "broken" and port["broken_at"] == "kernel ip_vs"
    # the task sandboxes' REDIRECT rules do not need ip_vs and are there
    assert {b["redirect"] for b in port["backends"]} == {"ok"}


def test_healthy_lab_has_only_the_kernel_root_cause(lab):
    """Every service healthy, the kernel without ip_vs: exactly kernel.no-ipvs, and every other
    finding explained by it (nothing that would also be there on an ip_vs kernel)."""
    doc = check_json(lab)
    assert roots(doc) == {"kernel.no-ipvs"}, [(f["id"], f["detail"]) for f in doc["findings"] if f["caused_by"] is None]
    assert {f["caused_by"] for f in doc["findings"]} <= {None, "kernel.no-ipvs"}


def test_explain_text_fits_80_columns(lab):
    cp = explain(lab, "whoami")
    assert cp.returncode == 1
    assert "ERROR kernel.no-ipvs" in cp.stdout and "explains" in cp.stdout
    assert max(len(l) for l in cp.stdout.splitlines()) <= 80


def test_explain_from_saved_dump_is_byte_identical(lab, tmp_path):
    dump = tmp_path / "lab.json"
    live = explain(lab, "whoami", "--save", str(dump))
    assert live.returncode == 1
    again = subprocess.run([sys.executable, "-m", "swarmscope", "explain", "--from", str(dump), "whoami"],
                           capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert again.returncode == 1
    assert again.stdout == live.stdout


def test_unknown_service_lists_close_names(lab):
    cp = explain(lab, "whoam")
    assert cp.returncode == 2
    assert cp.stderr.strip() == "swarmscope: error: no service named 'whoam' (did you mean: whoami?)"


def test_dump_from_lab_validates(lab, tmp_path):
    import jsonschema

    from swarmscope.schema import load_schema

    out = tmp_path / "dump.json"
    cp = lab.swarmscope("dump", "--json", "--netns-dir", str(lab.netns_dir), "-o", str(out), timeout=180)
    assert cp.returncode == 1, cp.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, load_schema())
    assert doc["nodes"][0]["node"]["ip_vs"]["available"] is False
    assert {s["name"] for s in doc["services"]} == {"whoami", "client", "dnsrr", "hostport", "glob"}


# --------------------------------------------------------------------------
# faults, injected for real


def _task_containers(lab, service):
    cp = lab.docker("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={service}")
    return cp.stdout.split()


def converged(lab, service, n):
    """n tasks running and no update in progress."""
    st = lab.docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", service).stdout.strip()
    if st in ("updating", "rollback_started"):
        return False
    cp = lab.docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", service)
    states = cp.stdout.split("\n")
    return len([x for x in states if x.startswith("Running")]) == n and len(_task_containers(lab, service)) == n


@pytest.mark.lab_fault
def test_rolling_update_gives_no_false_alarm(lab):
    """`check` run again and again while `docker service update --force whoami` replaces its tasks one
    at a time (stop-first, a delay between them): never anything but the kernel root cause."""
    assert lab.docker("service", "update", "-d", "--update-parallelism", "1", "--update-delay", "4s",
                      "--force", "whoami").returncode == 0
    seen_updating, runs = 0, []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = lab.docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                               "whoami").stdout.strip()
            doc = check_json(lab)
            runs.append((state, sorted(roots(doc)), sorted({f["caused_by"] for f in doc["findings"] if f["caused_by"]})))
            seen_updating += state == "updating"
            if state != "updating" and seen_updating:
                break
        assert seen_updating >= 2, runs
        bad = [r for r in runs if r[1] != ["kernel.no-ipvs"] or r[2] not in ([], ["kernel.no-ipvs"])]
        assert not bad, bad
    finally:
        assert wait(lambda: converged(lab, "whoami", 2), 180)


@pytest.mark.lab_fault
def test_many_replicas_give_no_false_alarm(lab):
    """36 tasks of whoami (VIP) and of dnsrr: tasks.whoami's and dnsrr's answers no longer fit the resolver's
    512-byte UDP reply, which it truncates (TC). The collector asks with a larger reply size (EDNS0), and
    over TCP where one is still truncated: every address, and nothing but the kernel root cause."""
    n = 36
    for svc in ("whoami", "dnsrr"):
        assert lab.docker("service", "scale", "-d", f"{svc}={n}").returncode == 0
    try:
        assert wait(lambda: converged(lab, "whoami", n) and converged(lab, "dnsrr", n), 240)
        doc = check_json(lab)
        assert roots(doc) == {"kernel.no-ipvs"}, [(f["id"], f["detail"]) for f in doc["findings"] if f["caused_by"] is None]
        cp = lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), timeout=180)
        answers = {a["query"]: a for a in json.loads(cp.stdout)["dns"]}
        assert answers["tasks.whoami"]["status"] == "ok" and len(answers["tasks.whoami"]["answers"]) == n
        assert answers["dnsrr"]["status"] == "ok" and len(answers["dnsrr"]["answers"]) == n
    finally:
        assert lab.docker("service", "scale", "-d", "whoami=2", "dnsrr=1").returncode == 0
        assert wait(lambda: converged(lab, "whoami", 2) and converged(lab, "dnsrr", 1), 240)


#: asks tasks.wide of the engine's resolver over UDP offering a 4,096-byte reply (as the collector does) and
#: prints TC when the answer came back truncated
_UDP_TC = """
import dns.flags, dns.message, socket
q = dns.message.make_query("tasks.wide", "A", use_edns=0, payload=4096)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q.to_wire(), ("127.0.0.11", 53))
r = dns.message.from_wire(s.recvfrom(65535)[0], ignore_trailing=True, raise_on_truncation=False)
print("TC" if r.flags & dns.flags.TC else "whole")
"""


@pytest.mark.lab_fault
def test_an_answer_too_large_for_udp_is_read_over_tcp(lab):
    """280 tasks on a /22 overlay: tasks.<service> (about 4.5 KB) no longer fits even the 4,096-byte UDP reply
    the collector offers; the engine's resolver truncates it (TC) and the collector asks again over TCP: every
    address, status ok, and nothing but the kernel root cause (the TCP path, live on the engine's resolver)."""
    n = 280
    assert lab.docker("network", "create", "-d", "overlay", "--subnet", "10.20.0.0/22", "wide").returncode == 0
    try:
        cp = lab.docker("service", "create", "-d", "--name", "wide", "--network", "wide", "--replicas", str(n),
                        "--restart-delay", "5s", "swarmscope-lab/busybox:latest", "httpd", "-f", "-p", "80")
        assert cp.returncode == 0, cp.stderr
        assert wait(lambda: converged(lab, "wide", n), 420, 3.0)
        snap = json.loads(lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), timeout=300).stdout)
        answers = {a["query"]: a for a in snap["dns"] if a["network_name"] == "wide"}
        tasks = answers["tasks.wide"]
        assert tasks["status"] == "ok" and len(tasks["answers"]) == n, (tasks["status"], len(tasks["answers"]))
        # the resolver did truncate it over UDP, with the 4,096-byte reply offered: the answer came over TCP
        lb = next(ns["path"] for ns in snap["namespaces"] if ns["kind"] == "lb" and ns["network_name"] == "wide")
        udp = subprocess.run(["nsenter", f"--net={lb}", sys.executable, "-c", _UDP_TC], capture_output=True,
                             text=True, timeout=60)
        assert udp.stdout.split() == ["TC"], (udp.stdout, udp.stderr)
        doc = check_json(lab)
        assert roots(doc) == {"kernel.no-ipvs"}, [(f["id"], f["detail"]) for f in doc["findings"] if f["caused_by"] is None]
    finally:
        lab.docker("service", "rm", "wide")
        assert wait(lambda: not _task_containers(lab, "wide"), 300, 3.0)
        assert wait(lambda: lab.docker("network", "rm", "wide").returncode == 0, 120, 2.0)


@pytest.mark.lab_fault
def test_task_container_killed_behind_swarms_back(lab):
    """kill -9 of a task's process: swarm notices, and the restart delay keeps it down for a while."""
    assert lab.docker("service", "update", "-d", "--restart-delay", "120s", "whoami").returncode == 0
    try:
        assert wait(lambda: converged(lab, "whoami", 2), 120)
        victim = _task_containers(lab, "whoami")[0]
        pid = int(lab.docker("inspect", "-f", "{{.State.Pid}}", victim).stdout)
        os.kill(pid, 9)
        assert wait(lambda: victim not in _task_containers(lab, "whoami"), 60)
        doc = check_json(lab)
        f = next(f for f in doc["findings"] if f["id"] == "service.replicas-short")
        assert f["service"] == "whoami" and f["detail"] == "1 of 2 running"
        assert any("failed" in e or "shutdown" in e for e in f["evidence"])
        # DNS follows the swarm: one address left for tasks.whoami
        snap = json.loads(lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), timeout=180).stdout)
        tasks = next(a for a in snap["dns"] if a["query"] == "tasks.whoami")
        assert len(tasks["answers"]) == 1
    finally:
        lab.docker("service", "update", "-d", "--restart-delay", "5s", "--force", "whoami")
        assert wait(lambda: converged(lab, "whoami", 2), 180)


def _init_ip_forward(value=None):
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        old = f.read().strip()
    if value is not None:
        with open(path, "w") as f:
            f.write(value + "\n")
    return old


_THROWAWAY = iter(range(1, 1000))


def _throwaway(lab) -> tuple[Path, str]:
    """A new overlay network (a name of its own each time: an earlier one may still be going away)
    with one task: dockerd creates its lb_ namespace now. Returns (lb_ path, network name)."""
    name = f"throwaway{next(_THROWAWAY)}"
    assert lab.docker("network", "create", "-d", "overlay", name).returncode == 0
    assert lab.docker("service", "create", "-d", "--name", f"tw-{name}", "--network", name,
                      "swarmscope-lab/busybox:latest", "sleep", "1000000").returncode == 0
    nid = lab.docker("network", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    lb = lab.netns_dir / f"lb_{nid[:9]}"
    assert wait(lambda: lb.exists() and len(_task_containers(lab, f"tw-{name}")) == 1, 120)
    return lb, name


def _remove_throwaway(lab, name: str) -> None:
    lab.docker("service", "rm", f"tw-{name}")
    wait(lambda: not _task_containers(lab, f"tw-{name}"), 120)
    wait(lambda: lab.docker("network", "rm", name).returncode == 0, 120, 2)


@pytest.mark.lab_fault
def test_new_lb_namespace_inherits_dockerds_ip_forward_on_a_fresh_machine(lab):
    """A fresh machine's initial namespace has ip_forward=0. dockerd never writes ip_forward in
    lb_ namespaces; on a node they inherit it from dockerd's namespace, where dockerd turned it on.
    The lab must show the same with the initial namespace at 0, and swarmscope must not complain."""
    old = _init_ip_forward("0")
    name = None
    try:
        lb, name = _throwaway(lab)
        cp = lab.in_node(["nsenter", f"--net={lb}", "sysctl", "-n", "net.ipv4.ip_forward"], check=False)
        assert cp.stdout.strip() == "1", cp.stderr
        doc = check_json(lab)
        assert roots(doc) == {"kernel.no-ipvs"}, [(f["id"], f["detail"]) for f in doc["findings"] if f["caused_by"] is None]
    finally:
        _init_ip_forward(old)
        if name:
            _remove_throwaway(lab, name)


@pytest.mark.lab_fault
def test_ip_forward_off_in_lb_namespace_of_a_throwaway_network(lab):
    name = None
    try:
        lb, name = _throwaway(lab)
        cp = lab.in_node(["nsenter", f"--net={lb}", "sysctl", "-w", "net.ipv4.ip_forward=0"], check=False)
        assert cp.returncode == 0, cp.stderr
        doc = check_json(lab)
        found = [f for f in doc["findings"] if f["id"] == "lb.ip-forward-off"]
        assert [f["network"] for f in found] == [name]  # on that network only, not on demo
        assert found[0]["caused_by"] is None and "net.ipv4.ip_forward = 0" in found[0]["evidence"]
        assert roots(doc) == {"kernel.no-ipvs", "lb.ip-forward-off"}
    finally:
        if name:
            _remove_throwaway(lab, name)


def _legacy_works(lab):
    cp = lab.in_node(["iptables-legacy-save"], check=False)
    return cp.returncode == 0


@pytest.mark.lab_fault
def test_rule_in_the_other_backend(lab):
    snap = json.loads(lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), "--no-dns", timeout=180).stdout)
    engine = snap["node"]["iptables"]["engine_backend"]
    other = "legacy" if engine == "nft" else "nft"
    target = next(n for n in snap["namespaces"] if n["kind"] == "container" and n["service_name"] == "client")
    path = target["path"]
    add = ["nsenter", f"--net={path}", f"iptables-{other}", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]
    cp = lab.in_node(add, check=False)
    if cp.returncode != 0:
        pytest.skip(f"iptables-{other} cannot add a rule on this kernel: {cp.stderr.strip()}")
    try:
        doc = check_json(lab)
        f = next(f for f in doc["findings"] if f["id"] == "iptables.backend-split")
        assert f["detail"] == f"{target['name']}: 1 rules in {other} while the engine uses {engine}"
        assert any("--dport 9" in e and "-j DROP" in e for e in f["evidence"])
    finally:
        lab.in_node(["nsenter", f"--net={path}", f"iptables-{other}", "-D", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"], check=False)


@pytest.mark.lab_fault
def test_host_mode_port_bound_by_another_process(lab):
    """Something else listens on hostport's published port: the task cannot start."""
    assert lab.docker("service", "scale", "-d", "hostport=0").returncode == 0
    assert wait(lambda: not _task_containers(lab, "hostport"))
    proc = subprocess.Popen(["nsenter", f"--net={lab.netns_path}", sys.executable, "-c",
                             "import socket,time;s=socket.socket();s.bind(('0.0.0.0',8081));s.listen();"
                             "print('ok',flush=True);time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ok"
        assert lab.docker("service", "scale", "-d", "hostport=1").returncode == 0
        time.sleep(5)
        doc = check_json(lab)
        ids = roots(doc)
        assert "host.port-conflict" in ids
        f = next(f for f in doc["findings"] if f["id"] == "host.port-conflict")
        assert f["service"] == "hostport" and "tcp/8081 held by python3" in f["detail"]
    finally:
        proc.kill()
        proc.wait()
        lab.docker("service", "update", "-d", "--force", "hostport")
        assert wait(lambda: converged(lab, "hostport", 1), 180)
