"""collect() itself, without root, namespaces or a dockerd: run through CaptureHost on the VM tier's raw captures
(tests/fixtures/vm/<phase>/ns/<namespace>/*.txt, docker/*.json) and judged by analyze() as the VM tier expects."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from swarmscope.collect.host import BY_NAME, SOURCES, CaptureHost, LiveHost, reads
from swarmscope.collect.snapshot import CollectOptions, collect
from swarmscope.model import NsKind
from swarmscope.netns import NamespaceError
from swarmscope.pipeline import analyze_snapshots

VM = Path(__file__).resolve().parents[1] / "fixtures" / "vm"

# tests/vm/test_vm_mesh.py EXPECTED_FINDINGS: the phases whose evidence is all in the raw captures
EXPECTED = {
    "healthy": None,
    "a-dnat-flushed": "ingress.dnat-missing",
    "b-backend-deleted": "ipvs.backend-missing",
    "c-unknown-backend": "ipvs.backend-stale",
    "d-weight-zero": "ipvs.weight-zero",
    "e-mark-deleted": "ingress.mark-missing",
    "f-vip-removed": "vip.alias-missing",
    "g-lb-ip-forward-off": "lb.ip-forward-off",
    "h-task-killed": "service.replicas-short",
    "k-ipvs-sysctl-reset": "ipvs.sysctl-unexpected",
}


def captured(phase: str):
    return collect(CollectOptions(require_root=False, host=CaptureHost(VM / phase)))


def roots(snap) -> list[str]:
    return sorted({f.id for f in analyze_snapshots([snap]).findings if f.caused_by is None})


@pytest.mark.parametrize("phase", sorted(EXPECTED))
def test_collect_on_vm_capture_judged_as_the_vm_tier_expects(phase):
    snap = captured(phase)
    want = EXPECTED[phase]
    assert roots(snap) == ([want] if want else [])
    assert snap.complete, snap.errors


def test_healthy_capture_is_read_through_the_collectors_own_steps():
    snap = captured("healthy")
    assert snap.node.hostname and snap.node.engine_version == "20.10.24+dfsg1" and snap.node.api_version == "1.41"
    assert snap.node.role == "manager" and snap.node.ip_vs is not None and snap.node.ip_vs.available
    assert snap.node.iptables is not None and snap.node.iptables.engine_backend == "nft"
    assert snap.node.sysctls["net.ipv4.ip_forward"] == "1"
    kinds = {ns.name: ns.kind for ns in snap.namespaces}
    assert kinds["ingress_sbox"] == NsKind.INGRESS_SBOX and "host" not in kinds
    sbox = snap.namespace("ingress_sbox")
    assert sbox is not None and sbox.network_name == "ingress"
    assert sbox.ipvs is not None and sbox.ipvs.available and sbox.ipvs.source == "proc"
    assert sbox.sysctls["net.ipv4.vs.conntrack"] == "1"
    # joined to the API view: every task sandbox names its container
    assert all(ns.container_name for ns in snap.namespaces if ns.kind == NsKind.CONTAINER)
    assert snap.host.gwbridge is not None and len(snap.host.gwbridge.members) == 6
    assert "0.0.0.0/0" in snap.host.routes
    answers = {a.query: a.answers for a in snap.dns}
    assert answers["tasks.whoami"] == ["10.0.1.3", "10.0.1.4"]
    assert len(snap.docker.services) == 5 and len(snap.docker.containers) == 6


def test_sources_the_capture_lacks_are_skipped_not_failed():
    snap = captured("healthy")
    skipped = {p.what: p.reason for p in snap.provenance if p.status == "skipped"}
    assert "not in the capture" in skipped["listening sockets (/proc/net)"]
    modules = next(what for what in skipped if what.startswith("kernel modules and iptables extensions"))
    assert "not in the capture" in skipped[modules]
    assert "not in the capture" in skipped["ipvsadm -L --timeout"]
    assert not [p for p in snap.provenance if p.status in ("failed", "timeout")]
    assert snap.node.modules == [] and snap.node.xtables == [] and snap.host.listeners == []


@pytest.mark.parametrize("phase,vm_root", [
    ("i-xt-ipvs-missing", "iptables.no-ipvs-match"),
    ("j-ip-vs-rr-missing", "kernel.ipvs-scheduler-missing"),
])
def test_causes_whose_evidence_is_not_in_the_captures(phase, vm_root):
    """The VM tier names these from the xtables directory and the kernel modules, which the raw captures do not
    hold: through the capture the symptoms are found and the cause is not (the sources are reported skipped)."""
    snap = captured(phase)
    found = roots(snap)
    assert found and vm_root not in found
    assert any(p.status == "skipped" and "not in the capture" in (p.reason or "") and "kernel modules" in p.what
               for p in snap.provenance)


@pytest.mark.parametrize("phase,root", [
    ("engine-28/i-xt-ipvs-missing", "iptables.no-ipvs-match"),
    ("engine-28/j-ip-vs-rr-missing", "kernel.ipvs-scheduler-missing"),
    ("engine-28/k-ipvs-sysctl-reset", "ipvs.sysctl-unexpected"),
])
def test_causes_judged_from_the_captured_modules_and_xtables(phase, root):
    """Captures that keep the host's /proc/modules, the module indexes' mesh lines and the xtables listing
    (nscap.sh since the engine-28 fault phases): the kernel-modules and xtables sources are read from them,
    through modsupport's own rules, and i and j are named from the captures alone, as the VM tier names them."""
    snap = captured(phase)
    assert roots(snap) == [root]
    modules = {m.name: m for m in snap.node.modules}
    assert set(modules) == {"ip_vs_rr", "xt_mark", "nf_nat", "xt_ipvs"}
    assert all(m.how.endswith("(captured)") and "swarmscope-capture" not in m.how for m in modules.values())
    assert modules["ip_vs_rr"].state == ("absent" if phase.endswith("j-ip-vs-rr-missing") else "loaded")
    assert modules["ip_vs_rr"].state != "absent" or "/lib/modules/" in modules["ip_vs_rr"].how
    (ext,) = snap.node.xtables
    assert ext.name == "ipvs" and ext.found is (not phase.endswith("i-xt-ipvs-missing"))
    assert ext.path and ext.path.startswith("/usr/lib/") and "swarmscope-capture" not in (ext.how or "")
    skipped = [p.what for p in snap.provenance if p.status == "skipped"]
    assert not [w for w in skipped if w.startswith("kernel modules")], skipped


def test_a_failed_capture_command_is_a_failure_as_live():
    """i-xt-ipvs-missing: iptables-save exited 3 in ingress_sbox (it could not print the ipvs match)."""
    snap = captured("i-xt-ipvs-missing")
    sbox = snap.namespace("ingress_sbox")
    assert sbox is not None and sbox.iptables is not None and not sbox.iptables.available
    assert not snap.complete and any("ingress_sbox" in e and "iptables-nft-save" in e for e in snap.errors)


def test_sources_list():
    assert isinstance(CollectOptions().host, LiveHost)
    assert len({s.name for s in SOURCES}) == len(SOURCES)
    assert reads("ipvs", NsKind.LB) and reads("ipvs", NsKind.INGRESS_SBOX)
    assert not reads("ipvs", NsKind.CONTAINER) and not reads("sysctls", NsKind.OVERLAY)
    assert reads("iptables", NsKind.CONTAINER) and reads("iptables", NsKind.HOST)
    assert all(s.reader and s.redaction and s.kinds for s in SOURCES)
    assert BY_NAME["docker-api"].capture == "docker/*.json"


def test_a_capture_without_the_docker_api_still_gives_the_namespaces(tmp_path):
    """Partial data beats none: without docker/*.json the view is unavailable (as an engine that does not
    answer) and every captured namespace is still read."""
    import shutil

    shutil.copytree(VM / "a-dnat-flushed" / "ns", tmp_path / "ns")
    snap = collect(CollectOptions(require_root=False, host=CaptureHost(tmp_path)))
    assert not snap.docker.available and "not in the capture" in (snap.docker.reason or "")
    assert not snap.complete and any(e.startswith("Docker API:") for e in snap.errors)
    sbox = snap.namespace("ingress_sbox")
    assert sbox is not None and sbox.iptables is not None and sbox.iptables.available
    assert snap.host.iptables is not None and snap.host.iptables.available


def test_dns_is_asked_while_the_other_namespaces_are_still_read():
    """The embedded DNS is asked as soon as the API's view is read and the asking lb_ namespace's own reading is
    done, not after every namespace: a container sandbox's reading here waits (up to 10 s) for the question."""
    import threading

    asked = threading.Event()
    order: list[str] = []

    class Host(CaptureHost):
        def iptables(self, rec, namespace):
            if namespace == last:
                order.append("waited" if asked.wait(10) else "timed out")
            return super().iptables(rec, namespace)

        def ask_dns(self, questions, namespace, timeout):
            order.append(f"dns in {namespace}")
            asked.set()
            return super().ask_dns(questions, namespace, timeout)

    root = VM / "healthy"
    last = max(p.name for p in (root / "ns").iterdir() if re.fullmatch(r"[0-9a-f]{12}", p.name))
    snap = collect(CollectOptions(require_root=False, host=Host(root), workers=2))
    assert "dns in lb_oqwgtnrv6" in order and order[-1] == "waited", order
    assert {a.query: a.answers for a in snap.dns}["tasks.whoami"] == ["10.0.1.3", "10.0.1.4"]
    assert snap.complete, snap.errors


def test_dns_is_not_asked_in_a_namespace_that_vanished_while_read():
    entered: list[str] = []

    class Host(CaptureHost):
        def run_in(self, path, fn, timeout):
            entered.append(os.path.basename(path))
            if os.path.basename(path).startswith("lb_"):
                raise NamespaceError(path, "namespace file vanished", vanished=True)
            return super().run_in(path, fn, timeout)

    snap = collect(CollectOptions(require_root=False, host=Host(VM / "healthy")))
    lb = snap.namespace("lb_oqwgtnrv6")
    assert lb is not None and lb.vanished and lb.errors == ["namespace file vanished"]
    assert entered.count("lb_oqwgtnrv6") == 1  # read once; not entered again to ask DNS
    assert not [a for a in snap.dns if a.namespace == "lb_oqwgtnrv6"]


def test_workers_default_to_the_cpus_and_gather_leaves_each_node_its_own(monkeypatch):
    from swarmscope.collect import snapshot
    from swarmscope.gather.gather import agent_command

    monkeypatch.setattr(snapshot.os, "sched_getaffinity", lambda pid: set(range(32)))
    assert snapshot.default_workers() == 8
    monkeypatch.setattr(snapshot.os, "sched_getaffinity", lambda pid: {0})
    assert snapshot.default_workers() == 2
    monkeypatch.setattr(snapshot.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert snapshot.default_workers() == 4
    assert "--workers" not in agent_command(CollectOptions(), "run1")
    cmd = agent_command(CollectOptions(workers=3), "run1")
    assert cmd[cmd.index("--workers") + 1] == "3"
