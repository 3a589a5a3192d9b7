"""Cluster mode on a real three-node lab swarm (one manager, two workers).

Every node is a dockerd in its own network, mount and UTS namespaces; the
swarmscope image is built offline and loaded on each. swarmscope runs on the
manager (inside its namespaces) and gathers the workers through a global job.

This kernel has no ip_vs: no node has an IPVS table, so the path map lists
every task as a *missing* backend, with the node it runs on, and
kernel.no-ipvs is the root cause on all three nodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

GATHER_LABEL = "io.swarmscope.gather"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(lab, *args, timeout=300, image=None):
    m = lab.manager
    return m.swarmscope(*args, "--netns-dir", str(m.netns_dir), "--image", image or lab.image,
                        timeout=timeout)


def popen(lab, *args, image=None):
    m = lab.manager
    argv = m.swarmscope_argv(*args, "--netns-dir", str(m.netns_dir), "--image", image or lab.image)
    # Ctrl-C as a terminal sends it: a suite started in the background (nohup, `cmd &` in a script) runs with
    # SIGINT ignored, which the child would inherit - and Python then never raises KeyboardInterrupt
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def gather_services(lab) -> list[str]:
    return lab.docker("service", "ls", "-q", "--filter", f"label={GATHER_LABEL}").stdout.split()


def wait_for_job(lab, proc, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while not gather_services(lab):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the gather job never appeared"
        time.sleep(0.2)


def assert_job_gone(lab, timeout=90) -> None:
    """No gather service, no task of it, and no container of it on any node."""
    assert gather_services(lab) == []
    deadline = time.monotonic() + timeout
    while True:
        left = {n.name: n.docker("ps", "-aq", "--filter", f"label={GATHER_LABEL}").stdout.split()
                for n in lab.nodes if n.dockerd_pid()}
        tasks = lab.docker("node", "ps", *[n.hostname for n in lab.nodes if n.dockerd_pid()],
                           "--format", "{{.Name}}").stdout.split()
        # a task of a removed service is listed under the service's id: anything not of the lab's services
        known = tuple(f"{s.name}." for s in lab.services)
        strays = [t for t in tasks if not t.startswith(known)]
        if not any(left.values()) and not strays:
            return
        assert time.monotonic() < deadline, f"gather containers/tasks left: {left} {strays}"
        time.sleep(1)


@pytest.fixture(scope="module")
def swarm_dump(multilab, tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster") / "swarm.json"
    t0 = time.monotonic()
    cp = run(multilab, "dump", "--json", "-o", str(out), "--node-timeout", "180")
    took = time.monotonic() - t0
    assert cp.returncode == 1, cp.stderr  # findings of error severity: the mesh is not programmed
    sys.stderr.write(f"\n[figures] gathered 3 nodes in {took:.1f}s (command wall time); dump {out.stat().st_size} bytes\n"
                     + cp.stderr)
    return json.loads(out.read_text()), cp


def test_dump_has_every_node(multilab, swarm_dump):
    dump, cp = swarm_dump
    names = sorted(s["node"]["hostname"] for s in dump["nodes"])
    assert names == sorted(n.hostname for n in multilab.nodes)
    assert dump["failed_nodes"] == []
    roles = {s["node"]["hostname"]: s["node"]["role"] for s in dump["nodes"]}
    assert roles[multilab.manager.hostname] == "manager"
    assert all(roles[w.hostname] == "worker" for w in multilab.workers)
    assert "nodes 3/3" in cp.stderr and "removed swarmscope-gather-" in cp.stderr
    # the job itself is not in the data
    for s in dump["nodes"]:
        assert not any(x["name"].startswith("swarmscope-gather") for x in s["docker"]["services"])


def test_tasks_are_joined_to_their_nodes(multilab, swarm_dump):
    dump, _ = swarm_dump
    containers = {c["id"]: s["node"]["hostname"] for s in dump["nodes"] for c in s["docker"]["containers"]}
    api = {}
    for line in multilab.docker("service", "ps", "whoami", "--filter", "desired-state=running",
                                "--format", "{{.Name}} {{.Node}}").stdout.splitlines():
        name, node = line.split()
        api[name] = node
    whoami = next(s for s in dump["services"] if s["name"] == "whoami")
    assert len(whoami["tasks"]) == 3
    assert sorted(t["node"] for t in whoami["tasks"]) == sorted(n.hostname for n in multilab.nodes)
    for t in whoami["tasks"]:
        assert t["node"] == api[t["name"]]
        assert containers[t["container_id"]] == t["node"]  # the container is in that node's own snapshot
        assert t["addresses"]["ingress"] and t["addresses"]["demo"]


def test_explain_shows_backends_on_the_other_nodes(multilab):
    cp = run(multilab, "explain", "whoami", "--format", "json", "--node-timeout", "180")
    assert cp.returncode == 1, cp.stderr
    doc = json.loads(cp.stdout)
    assert sorted(doc["nodes"]) == sorted(n.hostname for n in multilab.nodes)
    svc = doc["services"][0]
    task_node = {a: t["node"] for t in svc["tasks"] for a in t["addresses"]["ingress"]}
    port = next(p for p in svc["ports"] if p["published"] == 8000)
    a = next(np for np in port["nodes"] if np["node"] == multilab.manager.hostname)
    others = {b["node"] for b in a["backends"] if b["node"] != a["node"]}
    assert others == {w.hostname for w in multilab.workers}
    for b in a["backends"]:
        # no ip_vs: every task is a backend the IPVS table should have and does not (or, in its first
        # seconds of running, one it may not have yet)
        assert b["status"] in ("missing", "starting") and task_node[b["address"]] == b["node"]
    assert a["verdict"] == "broken"
    root = next(f for f in doc["findings"] if f["id"] == "kernel.no-ipvs")
    assert sorted(root["nodes"]) == sorted(n.hostname for n in multilab.nodes)


def _roots(doc):
    return {f["id"] for f in doc["findings"] if f["caused_by"] is None}


@pytest.mark.parametrize("which", ["manager", "worker1", "worker2"])
def test_each_node_judged_alone_names_only_the_kernel(multilab, which):
    """`check` on one node alone (what the standing agent does, and the default on a worker) on a
    healthy swarm: exactly kernel.no-ipvs, nothing else. A worker's verbose network inspects list
    the tasks on the other nodes, so their addresses in DNS and IPVS are not 'extra'."""
    n = multilab.node(which)
    cp = n.swarmscope("check", "--local", "--netns-dir", str(n.netns_dir), "--format", "json", timeout=300)
    assert cp.returncode == 1, cp.stderr
    doc = json.loads(cp.stdout)
    assert doc["nodes"] == [n.hostname]
    assert _roots(doc) == {"kernel.no-ipvs"}, [(f["id"], f["detail"], f["evidence"]) for f in doc["findings"] if f["caused_by"] is None]
    assert {f["caused_by"] for f in doc["findings"]} <= {None, "kernel.no-ipvs"}


def test_whole_swarm_judged_together_names_only_the_kernel(multilab, swarm_dump):
    dump, _ = swarm_dump
    assert _roots(dump) == {"kernel.no-ipvs"}, [(f["id"], f["detail"], f["evidence"]) for f in dump["findings"] if f["caused_by"] is None]
    root = next(f for f in dump["findings"] if f["id"] == "kernel.no-ipvs")
    assert sorted(root["nodes"]) == sorted(n.hostname for n in multilab.nodes)


DEBUG_DIR = Path(__file__).resolve().parents[2] / ".lab" / "rolling-update"  # in the checkout: every node sees it


def test_rolling_update_across_nodes_gives_no_false_alarm(multilab):
    """While whoami's tasks are replaced one at a time on three nodes, each node judged alone (what the
    standing agent does) names nothing but the kernel, on every node, at every round."""
    assert multilab.docker("service", "update", "-d", "--update-parallelism", "1", "--update-delay", "5s",
                           "--force", "whoami").returncode == 0
    DEBUG_DIR.mkdir(parents=True, exist_ok=True)
    runs, updating = [], 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            state = multilab.docker("service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                                    "whoami").stdout.strip()
            for n in multilab.nodes:
                saved = str(DEBUG_DIR / f"rolling-{n.name}-{len(runs)}.json")  # kept for a failure's post-mortem
                cp = n.swarmscope("check", "--local", "--netns-dir", str(n.netns_dir), "--format", "json",
                                  "--save", saved, timeout=300)
                doc = json.loads(cp.stdout)
                runs.append((state, n.name, sorted(_roots(doc)),
                             sorted({f["caused_by"] for f in doc["findings"] if f["caused_by"]}),
                             [(f["detail"], f["evidence"]) for f in doc["findings"]
                              if f["caused_by"] is None and f["id"] != "kernel.no-ipvs"]))
            updating += state == "updating"
            if state != "updating" and updating:
                break
        assert updating >= 1, runs
        bad = [r for r in runs if r[2] != ["kernel.no-ipvs"] or r[3] not in ([], ["kernel.no-ipvs"])]
        assert not bad, bad
    finally:
        multilab.wait_converged()


def test_job_and_tasks_gone_after_a_run(multilab, swarm_dump):
    assert_job_gone(multilab)


def test_job_removed_when_the_agent_fails(multilab):
    """An image without swarmscope in it: every remote task fails; the job is removed."""
    import swarmlab

    cp = run(multilab, "dump", "--json", "--node-timeout", "120", image=swarmlab.IMAGE)
    assert cp.returncode in (1, 4), cp.stderr
    dump = json.loads(cp.stdout)
    failed = {f["node"]: f for f in dump["failed_nodes"]}
    assert set(failed) == {w.hostname for w in multilab.workers}
    for f in failed.values():
        assert f["kind"] in ("failed", "rejected") and "swarmscope" in f["reason"], f
    assert [s["node"]["hostname"] for s in dump["nodes"]] == [multilab.manager.hostname]
    assert_job_gone(multilab)


def test_job_removed_on_sigint(multilab):
    """Ctrl-C while the job runs. Sent as the command says it created the job (its "gathering" line, printed
    right after the service is created), not after polling `docker service ls`: a gather takes a few seconds,
    and a poll that sees the job late can find it already done."""
    proc = popen(multilab, "dump", "--json", "--node-timeout", "120")
    said = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            said.append(line)
            if "gathering " in line:
                break
            assert time.monotonic() < deadline, "".join(said)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=90)
        err = "".join(said) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "removed swarmscope-gather-" in err
    assert_job_gone(multilab)


def test_image_missing_on_one_node(multilab):
    w = multilab.workers[-1]
    w.docker("image", "rm", "-f", multilab.image, check=True)
    try:
        cp = run(multilab, "dump", "--json", "--node-timeout", "120")
        assert cp.returncode in (1, 4), cp.stderr
        dump = json.loads(cp.stdout)
        assert [f["node"] for f in dump["failed_nodes"]] == [w.hostname], dump["failed_nodes"]
        f = dump["failed_nodes"][0]
        assert f["kind"] == "image-missing" and multilab.image in f["reason"], f
        assert len(dump["nodes"]) == 2
        assert f"node {w.hostname} did not answer: image missing" in cp.stderr
        assert_job_gone(multilab)
    finally:
        multilab.load_swarmscope_image([w])


def test_worker_engine_stopped_mid_run(multilab):
    """A worker's dockerd dies while the job runs: the dump completes without it, in time."""
    w = multilab.workers[0]
    timeout = 45
    t0 = time.monotonic()
    proc = popen(multilab, "dump", "--json", "--node-timeout", str(timeout))
    try:
        wait_for_job(multilab, proc)
        w.kill_engine()
        out, err = proc.communicate(timeout=timeout + 90)
    finally:
        if proc.poll() is None:
            proc.kill()
        took = time.monotonic() - t0
    try:
        assert proc.returncode in (1, 4), err
        assert took < timeout + 60, f"took {took:.0f}s"
        dump = json.loads(out)
        failed = {f["node"]: f for f in dump["failed_nodes"]}
        assert set(failed) == {w.hostname}, err
        assert failed[w.hostname]["kind"] in ("down", "timeout"), failed
        assert "unreachable" in failed[w.hostname]["reason"] or "timed out" in failed[w.hostname]["reason"]
        assert sorted(s["node"]["hostname"] for s in dump["nodes"]) == sorted(
            n.hostname for n in multilab.nodes if n is not w)
        assert gather_services(multilab) == []
    finally:
        w.restart_engine()
        multilab.wait_nodes_ready(180)
        multilab.wait_converged()


def test_standing_agent_from_the_stack_file(multilab):
    m = multilab.manager
    env = {"SWARMSCOPE_IMAGE": multilab.image, "SWARMSCOPE_DOCKER_SOCK": str(m.inner_socket),
           "SWARMSCOPE_NETNS_DIR": str(m.netns_dir), "SWARMSCOPE_INTERVAL": "10"}
    stack = os.path.join(REPO, "contrib", "swarmscope-stack.yml")
    cp = m.in_node(["docker", "stack", "deploy", "--resolve-image", "never", "-c", stack, "ssagent"],
                   env={**os.environ, "DOCKER_HOST": m.inner_docker_host, **env})
    assert cp.returncode == 0, cp.stderr
    try:
        deadline = time.monotonic() + 240
        want = {n.hostname for n in multilab.nodes}
        while True:
            logs = multilab.docker("service", "logs", "--raw", "ssagent_agent", timeout=60).stdout
            seen = {n for n in want if f"finding: kernel.no-ipvs [error] nodes={n} " in logs}
            if seen == want:
                break
            assert time.monotonic() < deadline, f"agent findings from {seen} only; logs:\n{logs[-3000:]}"
            time.sleep(3)
        assert logs.count("all requirements present") >= 3, logs[-3000:]
        # each node judges itself alone: nothing but the kernel and what it explains (no DNS or IPVS
        # "extra" for the healthy tasks on the other nodes)
        from swarmscope.correlate.findings import NO_IPVS_SYMPTOMS

        ids = {line.split("finding: ", 1)[1].split()[0] for line in logs.splitlines() if "finding: " in line}
        assert ids - NO_IPVS_SYMPTOMS == {"kernel.no-ipvs"}, sorted(ids)
        states = multilab.docker("service", "ps", "ssagent_agent", "--filter", "desired-state=running",
                                 "--format", "{{.Node}} {{.CurrentState}}").stdout.splitlines()
        assert sorted(s.split()[0] for s in states) == sorted(want)
        assert all(" Running " in f"{s} " for s in states), states
    finally:
        multilab.docker("stack", "rm", "ssagent")
