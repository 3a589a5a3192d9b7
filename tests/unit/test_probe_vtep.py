"""--probe's vtep probes (issue 13): ICMP echoes across VXLAN to a task on each other node, small then as large
as the source's MTU toward the network with Don't Fragment set, joined to the ``overlay.vtep`` hop.

The snapshots are the VM tier's three-node captures (tests/fixtures/vm-mesh3/, a real cross-node mesh on ip_vs,
engine 28.5.2); the echo itself runs for real between two network namespaces this test makes (a veth pair, one
end's MTU lowered: the kernel drops what is larger, silently, as a switch port would)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from swarmscope import pipeline
from swarmscope.correlate.paths.common import VTEP_HOP
from swarmscope.correlate.probes import FINDING
from swarmscope.model import HopStatus, Probe, Snapshot, Verdict, from_dict
from swarmscope.netns import run_in_netns
from swarmscope.probe.run import SMALL, echo_probe
from swarmscope.probe.targets import HOST, ICMP, ProbeRefused, Target, allow_list, plan

MESH3 = Path(__file__).resolve().parents[1] / "fixtures" / "vm-mesh3" / "phases" / "mesh3" / "healthy"


def _load(node: str) -> Snapshot:
    return from_dict(Snapshot, json.loads((MESH3 / node / "collect.json").read_text()))


@pytest.fixture
def mesh():
    return [_load(n) for n in ("manager", "worker1", "worker2")]


def _node_addr(snap: Snapshot, hostname: str) -> str:
    return next(n.address for n in snap.docker.nodes if n.hostname == hostname)


def _hostname(snaps, name):
    return next(s.node.hostname for s in snaps if s.node.hostname.endswith(name))


# --------------------------------------------------------------------------- targets
def test_plan_echoes_each_other_node_on_each_network_from_the_load_balancer_at_its_mtu(mesh):
    m = mesh[0]
    ts = [t for t in plan(m) if t.kind == "vtep"]
    w1, w2 = _node_addr(m, _hostname(mesh, "worker1")), _node_addr(m, _hostname(mesh, "worker2"))
    # whoami (published, so on ingress) runs on the manager and worker1; glob (demo) everywhere, client on worker2
    assert {(t.network, t.vtep) for t in ts} == {("ingress", w1), ("demo", w1), ("demo", w2)}
    for t in ts:
        assert t.protocol == ICMP and t.port == 0 and t.hop == VTEP_HOP and t.skip is None
        assert t.size == 1450  # the overlay interface of ingress_sbox / lb_demo
        assert t.source == ("ingress_sbox" if t.network == "ingress" else next(
            ns.name for ns in m.namespaces if ns.name.startswith("lb_")))
        task = next(x for x in m.docker.tasks if any(t.address in [a.split("/")[0] for a in at.addresses]
                                                     for at in x.attachments))
        assert _node_addr(m, next(n.hostname for n in m.docker.nodes if n.id == task.node_id)) == t.vtep
    # task probes to a task on another node name the VTEP they cross; to a local task, none
    tasks = [t for t in plan(m) if t.kind == "task"]
    assert {t.vtep for t in tasks} >= {w1} and None in {t.vtep for t in tasks}
    # a worker's API lists no services: nothing to echo from there (the manager's snapshot plans them)
    assert [t for t in plan(mesh[1]) if t.kind == "vtep"] == []


def test_the_allow_list_takes_an_echo_only_as_a_vtep_probe_from_a_namespace(mesh):
    m = mesh[0]
    allow = allow_list(m)
    t = next(t for t in plan(m) if t.kind == "vtep")
    allow.check(t)
    for bad in (Target("task", t.source, t.source_path, t.address, 0, "lb.backends", t.node, t.service, ICMP),
                Target("vtep", HOST, None, t.address, 0, VTEP_HOP, t.node, t.service, ICMP),
                Target("vtep", t.source, t.source_path, t.address, 80, VTEP_HOP, t.node, t.service, ICMP),
                Target("vtep", t.source, t.source_path, "192.0.2.1", 0, VTEP_HOP, t.node, t.service, ICMP)):
        with pytest.raises(ProbeRefused):
            allow.check(bad)


# --------------------------------------------------------------------------- the echo, for real
@pytest.fixture
def veth_pair():
    """Two namespaces over a veth pair; the far end's MTU is 1400, so it drops what is larger from the near
    end (1500), silently - as a switch port with a lower MTU does."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make two network namespaces")
    a, b = f"sst-a-{uuid.uuid4().hex[:6]}", f"sst-b-{uuid.uuid4().hex[:6]}"
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    try:
        run("ip", "netns", "add", a)
        run("ip", "netns", "add", b)
        run("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
        run("ip", "-n", a, "addr", "add", "10.99.0.1/24", "dev", "va")
        run("ip", "-n", b, "addr", "add", "10.99.0.2/24", "dev", "vb")
        run("ip", "-n", a, "link", "set", "va", "up")
        run("ip", "-n", b, "link", "set", "vb", "up", "mtu", "1400")
        for _ in range(50):  # both ends carrying (a fresh veth's carrier comes up a moment later)
            up = [subprocess.run(["ip", "-n", ns, "-o", "link", "show", dev], capture_output=True, text=True).stdout
                  for ns, dev in ((a, "va"), (b, "vb"))]
            if all("LOWER_UP" in u and "state UP" in u for u in up):
                break
            time.sleep(0.1)
        yield f"/run/netns/{a}"
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make the namespaces: {exc.stderr.decode().strip()}")
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)


def test_echo_full_size_comes_back_where_the_path_takes_it(veth_pair):
    o = run_in_netns(veth_pair, lambda: echo_probe("10.99.0.2", 1400, 2.0), 5)
    assert o.result == "connected" and o.answered == 1400, o


def test_echo_larger_than_the_path_takes_is_a_black_hole_the_small_one_passes(veth_pair):
    o = run_in_netns(veth_pair, lambda: echo_probe("10.99.0.2", 1450, 2.0), 5)
    assert o.result == "timeout" and o.answered == SMALL, o
    assert "1450-byte packets with DF set got no answer" in (o.reason or "") and "MTU" in (o.reason or "")


def test_echo_to_nobody_is_a_timeout_with_nothing_back(veth_pair):
    o = run_in_netns(veth_pair, lambda: echo_probe("10.99.0.9", 1400, 0.6), 5)
    assert o.result == "timeout" and o.answered is None, o


# --------------------------------------------------------------------------- the join
def _vtep_probe(m: Snapshot, network: str, vtep: str, result: str, answered: int | None, reason: str = "") -> Probe:
    t = next(t for t in plan(m) if t.kind == "vtep" and t.network == network and t.vtep == vtep)
    return Probe(kind="vtep", source=t.source, address=t.address, port=0, protocol=ICMP, result=result,
                 reason=reason or None, hop=VTEP_HOP, node=t.node, service=t.service, network=network, task=t.task,
                 vtep=vtep, size=t.size, answered=answered, duration_ms=1.0)


def _with(mesh, probes):
    m = copy.deepcopy(mesh[0])
    keep = [p for p in m.probes if not (p.kind == "vtep")]
    m.probes = keep + probes(m)
    return pipeline.analyze_snapshots([m, *mesh[1:]]), m


def _vtep_hops(a, node):
    out = []
    for sp in a.services:
        for pp in sp.ports:
            out += [(sp.name, "port", np) for np in pp.nodes if np.node == node and np.hop(VTEP_HOP)]
        for vp in sp.vip_paths:
            out += [(sp.name, vp.network, np) for np in vp.nodes if np.node == node and np.hop(VTEP_HOP)]
    return out


def test_healthy_every_path_crossing_to_another_node_has_a_vtep_hop_and_no_finding(mesh):
    a = pipeline.analyze_snapshots(mesh)
    assert a.findings == []
    for node in a.nodes:
        hops = _vtep_hops(a, node)
        assert hops, node
        for _, _, np in hops:
            h = np.hop(VTEP_HOP)
            assert h.status == HopStatus.OK and any(e.startswith("VTEP ") for e in h.evidence)
            # the manager's vtep probes (the healthy capture was made with --probe): each one came back whole
            assert all(e.startswith("VTEP ") or (e.startswith("probe vtep ") and ": connected" in e)
                       for e in h.evidence), h.evidence
            assert node not in h.detail  # the other nodes only


def test_a_probe_s_line_is_on_the_prober_s_paths_only(mesh):
    """Hops judged once are copied into many paths with their evidence list shared (paths.common.hop_copy):
    the probes of one node add their lines to that node's hops and to no other node's."""
    a = pipeline.analyze_snapshots(mesh)
    prober = mesh[0].node.hostname
    assert mesh[0].probes and not mesh[1].probes and not mesh[2].probes
    lines: dict[str, int] = {}
    for sp in a.services:
        for np in [np for pp in sp.ports for np in pp.nodes] + [np for vp in sp.vip_paths for np in vp.nodes]:
            n = sum(e.startswith("probe ") for h in np.hops for e in h.evidence)
            lines[np.node] = lines.get(np.node, 0) + n
    others = {k: v for k, v in lines.items() if k != prober}
    assert lines[prober] > 0 and set(others.values()) == {0}, lines


def test_an_mtu_black_hole_makes_exactly_the_hops_crossing_to_that_vtep_suspect(mesh):
    w1 = _node_addr(mesh[0], _hostname(mesh, "worker1"))
    w2 = _node_addr(mesh[0], _hostname(mesh, "worker2"))
    why = "1450-byte packets with DF set got no answer within 1.5s while 84-byte ones did: ... (an MTU ...)"
    a, m = _with(mesh, lambda m: [_vtep_probe(m, net, w1, "timeout", SMALL, why) for net in ("ingress", "demo")]
                 + [_vtep_probe(m, "demo", w2, "connected", 1450)])
    me = m.node.hostname
    assert {f.id for f in a.findings} == {FINDING}
    for f in a.findings:
        assert f.nodes == [me] and "MTU" in f.hint and "via VTEP " + w1 in f.detail
    for name, where, np in _vtep_hops(a, me):
        h = np.hop(VTEP_HOP)
        crosses_w1 = any(e.startswith(f"VTEP {w1} (") for e in h.evidence)
        assert (h.status == HopStatus.SUSPECT) == crosses_w1, (name, where, h.status, h.evidence)
        if crosses_w1:
            assert np.verdict == Verdict.BROKEN and FINDING in h.findings
            assert any(e.startswith("probe vtep from ") and ": timeout" in e for e in h.evidence)
        else:
            assert np.verdict == Verdict.OK
    # the TCP probes all connected: no other hop is suspect
    assert not [h for _, _, np in _vtep_hops(a, me) for h in np.hops if h.status == HopStatus.SUSPECT
                and h.key != VTEP_HOP]
    assert pipeline.exit_status(pipeline.Run([m, *mesh[1:]], True, analysis=a)) == 1


def test_no_echo_back_while_tcp_to_the_same_node_connects_is_the_task_ignoring_echoes(mesh):
    w1 = _node_addr(mesh[0], _hostname(mesh, "worker1"))
    a, m = _with(mesh, lambda m: [_vtep_probe(m, "demo", w1, "timeout", None, "no answer to a 84-byte echo")])
    assert a.findings == []
    assert all(np.hop(VTEP_HOP).status == HopStatus.OK for _, _, np in _vtep_hops(a, m.node.hostname))


def test_nothing_back_and_the_task_probes_across_it_time_out_names_the_underlay_not_the_tasks(mesh):
    w1 = _node_addr(mesh[0], _hostname(mesh, "worker1"))

    def probes(m):
        for p in m.probes:
            if p.kind == "task" and p.vtep == w1:
                p.result, p.reason = "timeout", "no answer within 3s"
            elif p.kind in ("published", "localhost", "vip") and p.result == "connected":
                pass
        return [_vtep_probe(m, net, w1, "timeout", None, "no answer to a 84-byte echo") for net in ("ingress", "demo")]

    m0 = copy.deepcopy(mesh[0])
    for p in m0.probes:  # the captures predate vtep probes: name the VTEP each task probe crosses, as plan() does
        if p.kind == "task":
            t = next((t for t in plan(m0) if t.kind == "task" and t.address == p.address and t.port == p.port), None)
            p.vtep = t.vtep if t else None
    assert any(p.vtep == w1 for p in m0.probes)
    a, m = _with([m0, *mesh[1:]], probes)
    me = m.node.hostname
    assert {f.id for f in a.findings} == {FINDING}
    suspect = {h.key for _, _, np in _vtep_hops(a, me) for h in np.hops if h.status == HopStatus.SUSPECT}
    assert suspect == {VTEP_HOP}, suspect  # the task probes' failures are the underlay's: evidence only
    assert all("UDP 4789" in f.hint for f in a.findings)


def test_vtep_probes_are_redacted_like_everything_else_and_still_join(mesh):
    from swarmscope.model import to_dict
    from swarmscope.redact import redact_snapshots

    w1 = _node_addr(mesh[0], _hostname(mesh, "worker1"))
    m = copy.deepcopy(mesh[0])
    m.probes = [_vtep_probe(m, "demo", w1, "timeout", SMALL, "1450-byte packets ... (an MTU ...)")]
    red, _ = redact_snapshots([m, *copy.deepcopy(mesh[1:])], seed="vtep")
    text = json.dumps(to_dict(red[0].probes))
    for real in (w1, m.probes[0].address, m.probes[0].source, m.node.hostname):
        assert real not in text, real
    plain = [f for f in pipeline.analyze_snapshots([m, *mesh[1:]]).findings if f.id == FINDING]
    found = [f for f in pipeline.analyze_snapshots(red).findings if f.id == FINDING]
    assert plain and len(found) == len(plain)  # each path of the manager's on demo that crosses to worker1
    assert all(f.nodes == [red[0].node.hostname] and red[0].probes[0].vtep in f.detail for f in found)
