"""The overlay data plane on a live three-node lab (issue #12, part 1): every node's snapshot holds its overlay
namespaces' FDB and neighbour entries and the routes to its peer VTEPs, and no overlay.* finding fires on the
healthy swarm, judged together or each node alone; then a permanent FDB + neighbour entry is deleted FOR REAL
on one worker and exactly overlay.peer-missing fires, on that worker.

A lab of its own (``SWARMSCOPE_OVERLAY_LAB_NAME``, default ``pytest-ovl``; no swarmscope image is needed:
swarmscope runs on each node from this checkout), taken down at the end. Reading the FDB changes nothing:
tests/integration/test_collect_lab.py's read-only test compares the FDB and permanent neighbours too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from conftest import three_node_lab

from swarmscope.correlate.lifecycle import SETTLE_SECONDS, parse_time
from swarmscope.dump import snapshots_from_data
from swarmscope.model import NsKind
from swarmscope.pipeline import analyze_snapshots

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ovlab():
    for the_lab in three_node_lab(os.environ.get("SWARMSCOPE_OVERLAY_LAB_NAME") or "pytest-ovl"):
        the_lab.wait_converged()
        yield the_lab


def collect_all(lab):
    snaps = []
    for n in lab.nodes:
        cp = n.swarmscope("collect", "--netns-dir", str(n.netns_dir), "--json", timeout=180)
        assert cp.returncode in (0, 4), cp.stderr
        [s] = snapshots_from_data(json.loads(cp.stdout), n.name)
        snaps.append(s)
    return snaps


def settled(lab, timeout: float = 300.0):
    """Snapshots of every node taken once every running task is past the settle window by the manager's own
    collection time: the peer checks judge those tasks (a task in its first seconds is not judged)."""
    deadline = time.monotonic() + timeout
    while True:
        snaps = collect_all(lab)
        manager = next(s for s in snaps if s.node.role == "manager")
        now = parse_time(manager.collected_at)
        ages = [(now - since).total_seconds() for t in manager.docker.tasks if t.state == "running"
                if now is not None and (since := parse_time(t.state_since)) is not None]
        if ages and min(ages) > SETTLE_SECONDS + 1:
            return snaps
        assert time.monotonic() < deadline, f"tasks never settled: youngest {min(ages, default=0):.0f}s"
        time.sleep(max(1.0, SETTLE_SECONDS + 2 - min(ages, default=0)))


def overlay_findings(snaps):
    return [f for f in analyze_snapshots(snaps).findings if f.id.startswith("overlay.")]


def test_the_overlay_sections_are_filled_and_nothing_fires(ovlab):
    snaps = settled(ovlab)
    addrs = {n.addr for n in ovlab.nodes}
    for s in snaps:
        overlays = [ns for ns in s.namespaces if ns.kind == NsKind.OVERLAY]
        assert {ns.network_name for ns in overlays} == {"ingress", "demo"}, s.node.hostname
        for ns in overlays:
            assert ns.overlay is not None and ns.overlay.available, (ns.name, ns.errors)
            [vx] = [i for i in ns.interfaces if i.kind == "vxlan"]
            assert vx.vxlan_id and vx.vxlan_port == 4789 and vx.mtu
            dsts = {e.dst for e in ns.overlay.fdb if e.dst}
            assert dsts and dsts <= addrs - {s.node.node_addr}, (ns.name, dsts)
            assert all(e.state == "permanent" for e in ns.overlay.fdb if e.dst)
            assert ns.overlay.neighbours and all(n.state == "permanent" for n in ns.overlay.neighbours)
        assert sorted(r.destination for r in s.host.vtep_routes) == sorted(addrs - {s.node.node_addr})
        assert all(r.source == s.node.node_addr and r.device == "eth0" and r.device_mtu for r in s.host.vtep_routes)
        assert any(p.what == "fdb+neighbours (rtnetlink)" and p.status == "ok" for p in s.provenance)
    assert overlay_findings(snaps) == []
    for s in snaps:
        assert overlay_findings([s]) == [], s.node.hostname


def test_a_deleted_entry_is_found_on_its_node(ovlab):
    snaps = settled(ovlab)
    worker = ovlab.workers[0]
    me = next(s for s in snaps if s.node.hostname == worker.hostname)
    demo = next(ns for ns in me.namespaces if ns.kind == NsKind.OVERLAY and ns.network_name == "demo")
    assert demo.overlay is not None
    by_mac = {e.mac: e for e in demo.overlay.fdb if e.dst}
    manager = next(s for s in snaps if s.node.role == "manager")
    remote_tasks = {a.split("/")[0] for t in manager.docker.tasks
                    if t.state == "running" and t.node_id != me.node.node_id
                    for att in t.attachments if att.network_id == demo.network_id for a in att.addresses}
    # a task's entry (not an engine endpoint's: those are not asked for by task)
    victim = next(n for n in demo.overlay.neighbours if n.mac in by_mac and n.address in remote_tasks)
    fdb = by_mac[victim.mac]
    ns_file = str(worker.netns_dir / demo.name)
    for argv in (["bridge", "fdb", "del", fdb.mac, "dev", fdb.device, "dst", fdb.dst or "", "self"],
                 ["ip", "neigh", "del", victim.address, "dev", victim.device]):
        cp = worker.in_node(["nsenter", f"--net={ns_file}", *argv])
        assert cp.returncode == 0, cp.stderr
    try:
        broken = collect_all(ovlab)
        found = overlay_findings(broken)
        assert [f.id for f in found] == ["overlay.peer-missing"], [(f.id, f.detail) for f in found]
        assert found[0].nodes == [worker.hostname] and victim.address in found[0].detail
    finally:  # put back what the test took away
        worker.in_node(["nsenter", f"--net={ns_file}", "bridge", "fdb", "add", fdb.mac, "dev", fdb.device,
                        "dst", fdb.dst or "", "self", "permanent"])
        worker.in_node(["nsenter", f"--net={ns_file}", "ip", "neigh", "add", victim.address, "lladdr",
                        victim.mac or "", "dev", victim.device, "nud", "permanent"])
    assert overlay_findings(collect_all(ovlab)) == []


def probe_manager(lab):
    """The manager's own collection with --probe (a worker's API lists no services: nothing to probe there)."""
    m = next(n for n in lab.nodes if n.role == "manager")
    cp = m.swarmscope("collect", "--netns-dir", str(m.netns_dir), "--json", "--probe", "--probe-timeout", "2",
                      timeout=240)
    assert cp.returncode in (0, 4), cp.stderr
    [s] = snapshots_from_data(json.loads(cp.stdout), m.name)
    return s


def test_vtep_probes_find_an_mtu_black_hole_on_the_underlay(ovlab):
    """issue 13: the manager's vtep probes (ICMP echoes across VXLAN, small then full size with DF) come back
    from every other node on the healthy lab; with the lab switch's port toward one worker lowered to 1400 (a
    switch outside every node: no rule of any node changes) the small echoes still come back and the full-size
    ones die, and exactly the VTEP hops toward that worker become suspect, on the manager."""
    snaps = settled(ovlab)
    manager = probe_manager(ovlab)
    vteps = [p for p in manager.probes if p.kind == "vtep"]
    others = {n.addr for n in ovlab.nodes if n.role != "manager"}
    assert {p.vtep for p in vteps} == others, [(p.network, p.vtep, p.result, p.reason) for p in vteps]
    assert all(p.result == "connected" and p.answered == p.size and p.size for p in vteps), vteps
    worker = ovlab.workers[0]
    sw = ["ip", "-n", ovlab.switch_netns, "link", "set", worker.switch_port, "mtu"]
    subprocess.run([*sw, "1400"], check=True, capture_output=True)
    try:
        broken = probe_manager(ovlab)
    finally:
        subprocess.run([*sw, "1500"], check=True, capture_output=True)
    failed = [p for p in broken.probes if p.kind == "vtep" and p.result != "connected"]
    assert failed and {p.vtep for p in failed} == {worker.addr}, [(p.vtep, p.result, p.reason) for p in failed]
    assert all(p.answered and p.answered < (p.size or 0) for p in failed), failed
    assert all(p.result == "connected" for p in broken.probes if p.kind == "task"), \
        [(p.address, p.result) for p in broken.probes if p.kind == "task"]
    a = analyze_snapshots([broken, *[s for s in snaps if s.node.role != "manager"]])
    # the lab's kernel has no ip_vs (kernel.no-ipvs explains the load balancers); the probe's finding is the other
    suspect = [(np.node, h.key) for sp in a.services for paths in ([pp.nodes for pp in sp.ports]
               + [vp.nodes for vp in sp.vip_paths]) for np in paths for h in np.hops if h.status == "suspect"]
    assert suspect and set(suspect) == {(broken.node.hostname, "overlay.vtep")}, suspect
    assert {f.id for f in a.findings if f.caused_by is None} == {"kernel.no-ipvs", "probe.hop-suspect"}
