"""The overlay data plane (issue #12, part 1): the vxlan devices, their FDB and neighbour entries and the routes
to the peer VTEPs, read on the three-node lab (tests/fixtures/overlay/README.md says how each set was made),
their facts, and the overlay.* checks judged on them: healthy gives none, each fault exactly its own, on the
node it was made on, with every other finding and every other node's verdict unchanged."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import leakscan
import pytest

from swarmscope.collect.links import read_interfaces
from swarmscope.collect.overlay import nud_state, read_overlay_tables, route_to
from swarmscope.collect.snapshot import vtep_peers
from swarmscope.dump import snapshots_from_data
from swarmscope.facts import facts_for
from swarmscope.model import SNAPSHOT_VERSION, NsKind, Snapshot
from swarmscope.pipeline import analyze_snapshots
from swarmscope.redact import redact_snapshots
from swarmscope.render.raw import render_fdb, render_route_get
from swarmscope.report import build_report

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "overlay"
NODES = ("manager", "worker1", "worker2")
OVERLAY_IDS = ("overlay.peer-missing", "overlay.peer-wrong-vtep", "overlay.peer-stale", "overlay.mtu-too-large",
               "overlay.vxlan-source-mismatch")
#: each fault set: the finding it must give, on which node, how many (one per overlay network it touches)
FAULTS = {
    "peer-missing": ("overlay.peer-missing", "ovl-worker1", 1),
    "fdb-missing": ("overlay.peer-missing", "ovl-worker1", 1),  # the neighbour entry left, the FDB entry deleted
    "wrong-vtep": ("overlay.peer-wrong-vtep", "ovl-worker1", 1),
    "peer-stale": ("overlay.peer-stale", "ovl-worker1", 1),
    "mtu": ("overlay.mtu-too-large", "ovl-worker2", 2),  # ingress and demo both cross eth0
    "source-mismatch": ("overlay.vxlan-source-mismatch", "ovl-worker1", 1),
}


#: the healthy set taken on the same lab as the fault (fdb-missing: a second lab, brought up later)
BASELINE = {"fdb-missing": "healthy-b"}


def load(name: str) -> list[Snapshot]:
    return [snapshots_from_data(json.loads((FIX / f"{name}-{n}.json").read_text()), n)[0] for n in NODES]


def findings(snaps: list[Snapshot]) -> list:
    return list(analyze_snapshots(snaps).findings)


def signature(fs) -> list[tuple]:
    return sorted((f.id, tuple(sorted(f.nodes)), f.detail) for f in fs)


# --------------------------------------------------------------------------- what was read


def test_the_lab_snapshots_hold_the_overlay_data_plane():
    for s in load("healthy"):
        assert s.version == SNAPSHOT_VERSION == 2
        overlays = [ns for ns in s.namespaces if ns.kind == NsKind.OVERLAY]
        assert len(overlays) == 2  # ingress and demo
        for ns in overlays:
            assert ns.overlay is not None and ns.overlay.available, ns.name
            vx = [i for i in ns.interfaces if i.kind == "vxlan"]
            assert len(vx) == 1 and vx[0].vxlan_port == 4789 and vx[0].mtu == 1450
            assert vx[0].vxlan_id in (4096, 4097) and vx[0].vxlan_learning is True  # 20.10 creates it learning
            assert vx[0].vxlan_local is None  # Docker ties it to no address: the kernel picks the source
            peers = [e for e in ns.overlay.fdb if e.dst]
            assert peers and all(e.state == "permanent" and "self" in e.flags for e in peers)
            assert {e.dst for e in peers} <= {"10.213.0.11", "10.213.0.12", "10.213.0.13"} - {s.node.node_addr}
            assert all(n.state == "permanent" and n.device == "vxlan0" for n in ns.overlay.neighbours)
        # one route lookup per peer VTEP, from the host namespace, over eth0 with the node's own source
        assert [r.destination for r in s.host.vtep_routes] == sorted(
            {"10.213.0.11", "10.213.0.12", "10.213.0.13"} - {s.node.node_addr})
        assert all(r.device == "eth0" and r.source == s.node.node_addr and r.device_mtu == 1500 and not r.error
                   for r in s.host.vtep_routes)


def test_facts_join_each_neighbour_to_its_fdb_entry():
    worker1 = load("healthy")[1]
    of = facts_for(worker1).overlay
    demo = next(n for n in of.networks if n.network_name == "demo")
    assert demo.read and demo.mtu == 1450 and demo.bridge_mtu == 1450
    assert all(p.complete for p in demo.peers if p.address)
    p = demo.peer("10.0.1.3")  # whoami.1, on worker2
    assert p is not None and p.vtep == "10.213.0.13" and p.mac == "02:42:0a:00:01:03"
    assert p.evidence == ("1-qh4u71kyv6: neigh 10.0.1.3 dev vxlan0 lladdr 02:42:0a:00:01:03 PERMANENT",
                          "1-qh4u71kyv6: fdb 02:42:0a:00:01:03 dev vxlan0 dst 10.213.0.13 self permanent")
    assert sorted(demo.vteps) == ["10.213.0.11", "10.213.0.13"]
    r = of.route("10.213.0.13")
    assert r is not None and r.source == "10.213.0.12" and r.mtu == 1500


def test_a_missing_entry_is_a_missing_fact():
    worker1 = load("peer-missing")[1]
    demo = facts_for(worker1).overlay.network(
        next(ns.network_id for ns in worker1.namespaces if ns.network_name == "demo") or "")
    assert demo is not None and demo.peer("10.0.1.3") is None and demo.peer("10.0.1.4") is not None


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("healthy", ["healthy", "healthy-b"])
def test_healthy_gives_no_overlay_finding_together_or_alone(healthy):
    snaps = load(healthy)
    assert [f for f in findings(snaps) if f.id.startswith("overlay.")] == []
    for s in snaps:
        assert [f for f in findings([s]) if f.id.startswith("overlay.")] == [], s.node.hostname


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_gives_exactly_its_finding_on_its_node(fault):
    want, node, count = FAULTS[fault]
    healthy, broken = findings(load(BASELINE.get(fault, "healthy"))), findings(load(fault))
    mine = [f for f in broken if f.id.startswith("overlay.")]
    assert [f.id for f in mine] == [want] * count, [(f.id, f.detail) for f in mine]
    assert all(f.nodes == [node] for f in mine)
    assert all(f.evidence for f in mine)
    # everything else is as it was on the healthy lab (the lab's kernel.no-ipvs family)
    assert signature(f for f in broken if not f.id.startswith("overlay.")) == signature(healthy)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_leaves_the_other_nodes_judged_alone_unchanged(fault):
    _, node, _ = FAULTS[fault]
    for h, b in zip(load(BASELINE.get(fault, "healthy")), load(fault), strict=True):
        if b.node.hostname == node:
            continue
        assert signature(findings([b])) == signature(findings([h])), b.node.hostname


def test_the_findings_quote_what_was_read():
    [missing] = [f for f in findings(load("peer-missing")) if f.id == "overlay.peer-missing"]
    assert missing.detail == "demo: whoami.1 10.0.1.3 on ovl-worker2: no neighbour entry in 1-qh4u71kyv6"
    assert "1-qh4u71kyv6: no neighbour entry for 10.0.1.3 on vxlan0 (6 neighbour entries read)" in missing.evidence
    [fdb] = [f for f in findings(load("fdb-missing")) if f.id == "overlay.peer-missing"]
    assert fdb.detail == "demo: whoami.1 10.0.1.3 on ovl-worker2: no FDB entry with a VTEP for its MAC in 1-fecdtdk8cx"
    assert "1-fecdtdk8cx: neigh 10.0.1.3 dev vxlan0 lladdr 02:42:0a:00:01:03 PERMANENT" in fdb.evidence
    [wrong] = [f for f in findings(load("wrong-vtep")) if f.id == "overlay.peer-wrong-vtep"]
    assert wrong.detail == "demo: whoami.1 10.0.1.3 on ovl-worker2 is sent to 10.213.0.11, not 10.213.0.13"
    assert "1-qh4u71kyv6: fdb 02:42:0a:00:01:03 dev vxlan0 dst 10.213.0.11 self permanent,noarp" in wrong.evidence
    [stale] = [f for f in findings(load("peer-stale")) if f.id == "overlay.peer-stale"]
    assert "10.0.1.200 -> 10.213.0.13 (ovl-worker2)" in stale.detail
    mtu = [f for f in findings(load("mtu")) if f.id == "overlay.mtu-too-large"]
    assert sorted(f.network for f in mtu) == ["demo", "ingress"]
    assert all("overlay MTU 1450 + 50 > underlay MTU 1400" in f.detail for f in mtu)
    assert any("host: ip route get 10.213.0.11: dev eth0 src 10.213.0.13 (dev mtu 1400)" in f.evidence for f in mtu)
    [src] = [f for f in findings(load("source-mismatch")) if f.id == "overlay.vxlan-source-mismatch"]
    assert src.detail == "source 10.213.0.99 toward 10.213.0.11, 10.213.0.13, not 10.213.0.12"


def test_a_task_in_its_first_seconds_is_not_judged():
    """The same broken capture, with the task's state moved to a moment before the collection: it is starting
    (correlate/lifecycle.py), and the other nodes may not have it yet."""
    snaps = load("peer-missing")
    manager = snaps[0]
    task = next(t for t in manager.docker.tasks if t.service_name == "whoami" and t.slot == 1)
    task.state_since = snaps[1].collected_at
    assert [f for f in findings(snaps) if f.id.startswith("overlay.")] == []


def test_a_stopped_task_is_not_wanted_and_its_entry_left_a_moment_is_not_stale():
    snaps = load("healthy")
    manager = snaps[0]
    task = next(t for t in manager.docker.tasks if t.service_name == "whoami" and t.slot == 1)
    task.desired_state, task.state, task.state_since = "shutdown", "shutdown", snaps[1].collected_at
    assert [f for f in findings(snaps) if f.id.startswith("overlay.")] == []


def test_a_task_on_a_node_that_is_down_is_not_asked_for():
    """The manager keeps a down node's tasks running for a while, but the other nodes drop its peers with
    it: the finding would name the wrong thing."""
    snaps = load("peer-missing")
    worker2 = next(sn for sn in snaps[0].docker.nodes if sn.hostname == "ovl-worker2")
    worker2.state = "down"
    assert [f for f in findings(snaps) if f.id.startswith("overlay.")] == []


def test_the_worker_view_without_task_times_is_not_judged_for_peers():
    """Judged alone, a worker rebuilds the tasks from its inspects: when a task started is not known, so a
    missing entry is not called (a task that joined a moment ago would be a false alarm)."""
    assert [f for f in findings([load("peer-missing")[1]]) if f.id.startswith("overlay.")] == []


def test_an_older_snapshot_without_the_overlay_fields_still_reads_and_judges():
    data = json.loads((FIX / "healthy-worker1.json").read_text())
    data["version"] = 1
    data["host"].pop("vtep_routes")
    for ns in data["namespaces"]:
        ns.pop("overlay", None)
        for i in ns["interfaces"]:
            for k in ("vxlan_local", "vxlan_port", "vxlan_learning", "vxlan_link"):
                i.pop(k, None)
    [s] = snapshots_from_data(data, "v1")
    assert s.version == SNAPSHOT_VERSION and s.host.vtep_routes == []
    assert all(ns.overlay is None for ns in s.namespaces)
    assert Snapshot.from_dict(data).version == SNAPSHOT_VERSION
    assert [f for f in findings([s]) if f.id.startswith("overlay.")] == []
    with pytest.raises(Exception, match="snapshot version 3 is not supported"):
        snapshots_from_data({**data, "version": 3}, "v3")


# --------------------------------------------------------------------------- the bundle and redaction


def test_the_bundle_keeps_the_fdb_and_the_routes_rendered(tmp_path):
    snaps = load("wrong-vtep")
    bundle = tmp_path / "r.tar.gz"
    bundle.write_bytes(build_report(snaps, analyze_snapshots(snaps), [], svg=False))
    files = leakscan.bundle_files(bundle)
    fdb = files["swarmscope-report/raw/ovl-worker1/1-qh4u71kyv6/bridge-fdb.rendered.txt"]
    assert "02:42:0a:00:01:03 dev vxlan0 dst 10.213.0.11 self permanent,noarp" in fdb
    assert "10.0.1.3 dev vxlan0 lladdr 02:42:0a:00:01:03 PERMANENT" in fdb
    routes = files["swarmscope-report/raw/ovl-worker1/host/ip-route-get.rendered.txt"]
    assert routes.splitlines() == ["10.213.0.11 dev eth0 src 10.213.0.12 (dev mtu 1500)",
                                   "10.213.0.13 dev eth0 src 10.213.0.12 (dev mtu 1500)"]
    manifest = json.loads(files["swarmscope-report/MANIFEST.json"])
    assert {"source": "overlay-fdb", "raw": ["raw/<node>/<namespace>/bridge-fdb.rendered.txt"],
            "where": "raw files, and dump.json: nodes[].namespaces[].overlay"} in manifest["sources"]


@pytest.mark.parametrize("fault", ["wrong-vtep", "mtu", "source-mismatch"])
def test_redacted_overlay_data_leaks_nothing_and_still_gives_its_finding(tmp_path, fault):
    snaps = load(fault)
    real = leakscan.real_values(snaps)
    assert "02:42:0a:00:01:03" in real["mac"] and "10.213.0.13" in real["address"]
    red, _ = redact_snapshots(snaps, seed="overlay")
    bundle = tmp_path / "r.tar.gz"
    bundle.write_bytes(build_report(red, analyze_snapshots(red), [], redaction={"redacted": True}, svg=False))
    assert leakscan.scan_bundle(bundle, real) == {}
    want, node, count = FAULTS[fault]
    got = [f for f in findings(red) if f.id.startswith("overlay.")]
    assert [f.id for f in got] == [want] * count and len({tuple(f.nodes) for f in got}) == 1
    assert got[0].nodes != [node]  # the node's name is mapped too


# --------------------------------------------------------------------------- the readers, on this machine


def test_the_readers_run_here_read_only():
    """In this process's own namespace (no vxlan device: empty tables), and a route lookup toward loopback."""
    ifaces, _ = read_interfaces()
    t = read_overlay_tables(ifaces)
    assert t.available and t.fdb == [] and t.neighbours == []  # only vxlan devices' entries are kept
    [r] = route_to(["127.0.0.1"], ifaces)
    assert r.device == "lo" and r.source == "127.0.0.1" and r.error is None
    [bad] = route_to(["not-an-address"], ifaces)
    assert bad.error == "not an IPv4 address"
    assert nud_state(0x80) == "permanent" and nud_state(0xC0) == "permanent,noarp" and nud_state(0) == "none"
    assert socket.AF_BRIDGE == 7  # the family the FDB dump asks for


def test_the_peers_asked_are_the_fdb_dsts_and_the_network_peers_without_the_node():
    s = load("healthy")[0]
    assert vtep_peers(s.namespaces, s.docker, s.host) == ["10.213.0.12", "10.213.0.13"]


def test_the_renderers_print_what_was_read():
    s = load("healthy")[1]
    ns = next(ns for ns in s.namespaces if ns.network_name == "demo")
    assert ns.overlay is not None
    text = render_fdb(ns.overlay)
    assert "02:42:0a:00:01:03 dev vxlan0 dst 10.213.0.13 self permanent" in text.splitlines()
    assert render_route_get(s.host.vtep_routes).startswith("10.213.0.11 dev eth0 src 10.213.0.12 (dev mtu 1500)")


def test_a_secret_planted_in_every_overlay_field_is_gone_after_redaction():
    """test_hardening_redact's planting, on a snapshot that has the overlay records (its seed snapshot has none)."""
    from test_hardening_redact import _leaks, _plant_everywhere

    from swarmscope.dump import make_dump

    snap = load("wrong-vtep")[1]
    planted = _plant_everywhere(snap)
    for must in ("FdbEntry.mac", "FdbEntry.device", "FdbEntry.dst", "Neighbour.address", "Neighbour.mac",
                 "OverlayTables.reason", "VtepRoute.destination", "VtepRoute.source", "VtepRoute.error",
                 "Interface.vxlan_local"):
        assert must in planted, (must, sorted(set(planted)))
    red, _ = redact_snapshots([snap], seed="plant")
    assert _leaks(json.dumps(make_dump(red))) == []
