"""The lab swarm is what it says it is (contrib/lab/swarmlab.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time

import pytest

pytestmark = pytest.mark.lab

HEX12 = re.compile(r"^[0-9a-f]{12}$")
EXPECTED_TASKS = {"whoami": 2, "client": 1, "dnsrr": 1, "hostport": 1, "glob": 1}


def _json_lines(cp):
    assert cp.returncode == 0, cp.stderr
    return [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]


def _network_id(lab, name):
    cp = lab.docker("network", "inspect", "--format", "{{.Id}}", name)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip()


def _container_of(lab, service):
    cp = lab.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    assert cp.returncode == 0, cp.stderr
    ids = cp.stdout.split()
    assert ids, f"no running container of {service}"
    return ids[0]


def test_swarm_is_active_on_the_node_address(lab):
    cp = lab.docker("info", "--format", "{{json .Swarm}}")
    swarm = json.loads(cp.stdout)
    assert swarm["LocalNodeState"] == "active"
    assert swarm["ControlAvailable"] is True
    assert swarm["NodeAddr"] == lab.node_addr


def test_five_services_with_their_running_tasks(lab):
    services = {s["Name"]: s for s in _json_lines(lab.docker("service", "ls", "--format", "{{json .}}"))}
    assert set(services) == set(EXPECTED_TASKS)
    assert services["glob"]["Mode"] == "global"
    for name, want in EXPECTED_TASKS.items():
        tasks = _json_lines(lab.docker("service", "ps", "--filter", "desired-state=running",
                                       "--format", "{{json .}}", name))
        assert len(tasks) == want, (name, tasks)
        assert all(t["CurrentState"].startswith("Running") for t in tasks), (name, tasks)
    for name, mode, published in (("whoami", "ingress", 8000), ("hostport", "host", 8081)):
        cp = lab.docker("service", "inspect", "--format", "{{json .Spec.EndpointSpec.Ports}}", name)
        [port] = json.loads(cp.stdout)
        assert (port["PublishMode"], port["PublishedPort"], port["TargetPort"]) == (mode, published, 80)
    cp = lab.docker("service", "inspect", "--format", "{{.Spec.EndpointSpec.Mode}}", "dnsrr")
    assert cp.stdout.strip() == "dnsrr"


def test_netns_dir_holds_docker_namespaces(lab):
    names = set(os.listdir(lab.netns_dir))
    assert "ingress_sbox" in names
    demo, ingress = _network_id(lab, "demo"), _network_id(lab, "ingress")
    assert [n for n in names if n.startswith("lb_")] == [f"lb_{demo[:9]}"]
    assert {f"1-{demo[:10]}", f"1-{ingress[:10]}"} <= names
    sandboxes = {n for n in names if HEX12.match(n)}
    containers = lab.docker("ps", "-q").stdout.split()
    assert len(containers) == sum(EXPECTED_TASKS.values())
    keys = set()
    for cid in containers:
        key = lab.docker("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", cid).stdout.strip()
        assert os.path.dirname(key) == str(lab.netns_dir)
        keys.add(os.path.basename(key))
    assert keys == sandboxes


def test_netns_files_are_namespaces_seen_from_here(lab):
    """dockerd's bind mounts are visible in this (root) mount namespace."""
    nsfs = os.stat("/proc/self/ns/net").st_dev
    for name in os.listdir(lab.netns_dir):
        assert os.stat(lab.netns_dir / name).st_dev == nsfs, name


def test_node_lives_in_its_own_network_namespace(lab):
    node_ns = os.stat(lab.netns_path)
    cp = lab.in_node(["stat", "-L", "-c", "%i", "/proc/self/ns/net"])
    assert cp.returncode == 0, cp.stderr
    assert int(cp.stdout) == node_ns.st_ino != os.stat("/proc/self/ns/net").st_ino
    cp = lab.in_node(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    assert f"inet {lab.node_addr}/24" in cp.stdout
    assert os.stat(f"/proc/{lab.manager.dockerd_pid()}/ns/net").st_ino == node_ns.st_ino
    here = lab.in_node(["ip", "-4", "-o", "addr"]).stdout  # nothing of the lab's in the root netns
    assert f"{lab.node_addr}/" in here
    with open("/proc/net/fib_trie") as fh:
        assert lab.node_addr not in fh.read()


def test_dns_lists_both_whoami_tasks(lab):
    client = _container_of(lab, "client")
    verbose = json.loads(lab.docker("network", "inspect", "--verbose", "--format", "{{json .Services}}",
                                    "demo").stdout)
    want = {t["EndpointIP"] for t in verbose["whoami"]["Tasks"]}
    assert len(want) == 2
    got: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cp = lab.docker("exec", client, "nslookup", "tasks.whoami", "127.0.0.11", timeout=30)
        answer = cp.stdout.split("Name:", 1)[-1] if "Name:" in cp.stdout else ""
        got = {ln.split()[-1] for ln in answer.splitlines() if ln.startswith("Address")}
        if got == want:
            break
        time.sleep(1)
    assert got == want, cp.stdout + cp.stderr
    assert all(ipaddress.ip_address(a) for a in got)


def test_swarmscope_runs_inside_the_node(lab):
    cp = lab.swarmscope("--help")
    assert cp.returncode == 0, cp.stderr
    assert "collect" in cp.stdout
