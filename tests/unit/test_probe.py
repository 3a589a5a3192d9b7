"""--probe (issue 13): what may be probed (targets.py and its allow-list), the runner's results against
real loopback sockets and its bounds (run.py), the join to the path map (correlate/probes.py), the
redaction of probe records, and that nothing is sent without --probe.

Traffic in these tests goes only to sockets they open on 127.0.0.1; a target outside the allow-list is
refused before any socket exists.
"""

from __future__ import annotations

import copy
import json
import socket
import struct
import threading

import pytest
import rawsnap
from test_correlate import assert_verdicts_agree_with_exit

from swarmscope import pipeline
from swarmscope.correlate.probes import FINDING, probe_line
from swarmscope.model import HopStatus, Probe, Snapshot, Verdict, from_dict, to_dict
from swarmscope.probe import ProbeOptions
from swarmscope.probe.run import Outcome, RateLimiter, connect_probe, run_targets
from swarmscope.probe.targets import HOST, AllowList, ProbeRefused, Target, allow_list, guard, plan


@pytest.fixture
def snap():
    return rawsnap.lab_vm()


def _path(analysis, service="whoami", port=None, network=None):
    sp = next(s for s in analysis.services if s.name == service)
    if port is not None:
        return next(p for p in sp.ports if p.published == port).nodes[0]
    return next(v for v in sp.vip_paths if v.network == network).nodes[0]


# --------------------------------------------------------------------------- targets and the allow-list


def test_plan_covers_every_kind_with_the_hop_each_tests(snap):
    ts = plan(snap)
    kinds = {(t.kind, t.hop) for t in ts if not t.skip}
    assert ("localhost", "host.jump") in kinds
    assert ("vip", "lb.ipvs") in kinds
    assert ("task", "ingress.backends") in kinds and ("task", "lb.backends") in kinds
    pub = next(t for t in ts if t.kind == "published")
    assert pub.hop == "host.dnat" and pub.source == HOST and pub.published == 8000
    assert pub.address and not pub.skip  # this node's address, from the network's peer on a host interface
    ingress_tasks = [t for t in ts if t.hop == "ingress.backends"]
    assert {t.source for t in ingress_tasks} == {"ingress_sbox"}
    assert all(t.port == 8000 and t.task and t.task.startswith("whoami.") for t in ingress_tasks)
    lb = [t for t in ts if t.hop == "lb.backends"]
    assert lb and all(t.source.startswith("lb_") and t.network == "appnet" for t in lb)
    vip = next(t for t in ts if t.kind == "vip")
    assert vip.address == "10.0.1.2" and vip.network == "appnet"
    allow = allow_list(snap)
    for t in ts:
        if not t.skip:
            guard(t, allow)  # everything planned is allowed


def test_the_join_knows_every_hop_a_probe_tests():
    from swarmscope.correlate.probes import HOP_KEYS
    from swarmscope.probe.targets import HOPS

    assert set(HOP_KEYS) == set(HOPS.values())


def test_a_udp_port_is_not_probed_and_says_why(snap):
    for svc in snap.docker.services:
        for p in svc.ports:
            p.protocol = "udp"
    ts = plan(snap)
    assert ts and all(t.skip for t in ts if t.kind in ("published", "localhost", "vip"))
    assert "UDP has no handshake" in next(t for t in ts if t.kind == "published").skip


@pytest.mark.parametrize("address", ["8.8.8.8", "192.0.2.7", "10.0.1.250", "::1", "not-an-address"])
def test_the_allow_list_refuses_anything_the_snapshot_does_not_show(snap, address):
    allow = allow_list(snap)
    t = Target("task", HOST, None, address, 80, "lb.backends", "lab-vm", "whoami")
    with pytest.raises(ProbeRefused):
        guard(t, allow)


def test_the_allow_list_refuses_loopback_other_than_the_localhost_probe_and_foreign_namespaces(snap):
    allow = allow_list(snap)
    with pytest.raises(ProbeRefused):
        guard(Target("task", HOST, None, "127.0.0.1", 80, "lb.backends", "lab-vm", "whoami"), allow)
    guard(Target("localhost", HOST, None, "127.0.0.1", 8000, "host.jump", "lab-vm", "whoami"), allow)
    task = next(t for t in plan(snap) if t.kind == "task")
    with pytest.raises(ProbeRefused):
        guard(Target(**{**task.__dict__, "source_path": "/proc/1/ns/net"}), allow)
    with pytest.raises(ProbeRefused):
        guard(Target(**{**task.__dict__, "protocol": "udp"}), allow)


def test_the_runner_never_connects_to_a_refused_target(snap):
    calls = []

    def connect(address, port, timeout, http):
        calls.append(address)
        return Outcome("connected")

    bad = Target("published", HOST, None, "8.8.8.8", 80, "host.dnat", "lab-vm", "whoami", published=80)
    out = run_targets([bad], allow_list(snap), ProbeOptions(), connect=connect)
    assert calls == []
    assert out[0].result == "not-probed" and out[0].reason.startswith("refused:")


# --------------------------------------------------------------------------- results on real loopback sockets


def _listener(backlog=8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def test_a_listening_socket_is_connected():
    with _listener() as s:
        o = connect_probe("127.0.0.1", s.getsockname()[1], 2.0)
    assert o.result == "connected" and o.reason is None and o.duration_ms >= 0


def test_a_closed_port_is_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # bound, never listening: the kernel answers RST
    try:
        o = connect_probe("127.0.0.1", port, 2.0)
    finally:
        s.close()
    assert o.result == "refused" and "refused" in o.reason.lower()


def _serve_once(srv, answer):
    def run():
        c, _ = srv.accept()
        with c:
            answer(c)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_connection_reset_after_accepting_is_reset():
    with _listener() as srv:
        def rst(c):
            c.recv(1024)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

        t = _serve_once(srv, rst)
        o = connect_probe("127.0.0.1", srv.getsockname()[1], 2.0, http=True)
        t.join(2)
    assert o.result == "reset", o


def test_http_keeps_the_status_line_only():
    with _listener() as srv:
        def ok(c):
            c.recv(1024)
            c.sendall(b"HTTP/1.0 204 No Content\r\nServer: secret-banner\r\n\r\n")

        t = _serve_once(srv, ok)
        o = connect_probe("127.0.0.1", srv.getsockname()[1], 2.0, http=True)
        t.join(2)
    assert o.result == "connected" and o.http_status == "HTTP/1.0 204 No Content"


def test_a_full_backlog_that_never_accepts_times_out():
    with _listener(backlog=0) as srv:
        port = srv.getsockname()[1]
        held = []
        try:
            for _ in range(4):  # fill the accept queue (backlog 0 holds one); the next SYN is dropped
                c = socket.socket()
                c.settimeout(0.3)
                try:
                    c.connect(("127.0.0.1", port))
                except OSError:
                    c.close()
                    break
                held.append(c)
            o = connect_probe("127.0.0.1", port, 0.5)
        finally:
            for c in held:
                c.close()
    if o.result == "connected":
        pytest.skip("this kernel accepted past a backlog of 0: a timeout cannot be made on loopback here")
    assert o.result == "timeout" and "0.5s" in o.reason


# --------------------------------------------------------------------------- bounds


class FakeClock:
    def __init__(self):
        self.t = 100.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(round(s, 6))
        self.t += s


def test_the_rate_limit_spaces_connections():
    clock = FakeClock()
    rl = RateLimiter(10, clock, clock.sleep)
    for _ in range(4):
        rl.wait()
    assert clock.slept == [0.1, 0.1, 0.1]


def _targets(n):
    return [Target("localhost", HOST, None, "127.0.0.1", 1000 + i, "host.jump", "lab-vm", "whoami", published=1000 + i)
            for i in range(n)]


def test_the_cap_and_the_rate_hold_across_a_run(snap):
    clock = FakeClock()
    made = []

    def connect(address, port, timeout, http):
        made.append((port, clock()))
        return Outcome("connected")

    out = run_targets(_targets(5), allow_list(snap), ProbeOptions(max_probes=3, rate=4), connect=connect,
                      clock=clock, sleep=clock.sleep)
    assert [p.result for p in out] == ["connected"] * 3 + ["not-probed"] * 2
    assert "cap of 3" in out[3].reason and "--probe-max" in out[3].reason
    times = [t for _, t in made]
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.25, 0.25]


def test_the_total_time_bound_stops_the_run(snap):
    clock = FakeClock()

    def slow(address, port, timeout, http):
        assert timeout <= 1.0
        clock.t += 1.0  # each connection times out after its full second
        return Outcome("timeout", "no answer within 1s", None, 1000)

    out = run_targets(_targets(6), allow_list(snap), ProbeOptions(deadline=3.0), connect=slow, clock=clock,
                      sleep=clock.sleep)
    assert [p.result for p in out][:3] == ["timeout"] * 3
    assert all(p.result == "not-probed" and "total time bound of 3s" in p.reason for p in out[3:])


def test_a_namespace_that_cannot_be_entered_is_an_error_per_probe(snap):
    task = next(t for t in plan(snap) if t.kind == "task")
    out = run_targets([task], allow_list(snap), ProbeOptions(),
                      connect=lambda *a: pytest.fail("connected outside the namespace"))
    assert out[0].result == "error" and out[0].reason.startswith(f"cannot enter {task.source}")


# --------------------------------------------------------------------------- the join


def _probe(kind, hop, result, address="10.0.0.6", port=8000, **kw):
    base = dict(source=HOST, node="lab-vm", service="whoami", published=8000 if kind != "vip" else None,
                duration_ms=1000.0)
    base.update(kw)
    return Probe(kind=kind, address=address, port=port, hop=hop, result=result, **base)


def test_an_ok_hop_whose_probe_failed_becomes_suspect_with_a_finding(snap):
    snap.probes = [_probe("published", "host.dnat", "timeout", reason="no answer within 1s")]
    a = pipeline.analyze_snapshots([snap])
    np = _path(a, port=8000)
    h = np.hop("host.dnat")
    assert h.status == HopStatus.SUSPECT and FINDING in h.findings
    assert np.verdict == Verdict.BROKEN and np.broken_at == h.label
    f = next(f for f in a.findings if f.id == FINDING)
    assert f.severity == "error" and f.nodes == ["lab-vm"] and f.service == "whoami"
    assert f.evidence == [probe_line(snap.probes[0])] and "timeout" in f.evidence[0]
    assert "underlay" in f.hint and "MTU" in f.hint
    assert any(e.startswith("probe published from host to 10.0.0.6:8000/tcp: timeout") for e in h.evidence)
    assert_verdicts_agree_with_exit(a)
    assert pipeline.exit_status(pipeline.Run([snap], True, analysis=a)) == 1


def test_a_connected_probe_is_evidence_and_changes_nothing_else(snap):
    plain = pipeline.analyze_snapshots([copy.deepcopy(snap)])
    snap.probes = [_probe("published", "host.dnat", "connected", duration_ms=0.4, http_status="HTTP/1.1 200 OK")]
    a = pipeline.analyze_snapshots([snap])
    h = _path(a, port=8000).hop("host.dnat")
    assert h.status == HopStatus.OK and [f.id for f in a.findings] == [f.id for f in plain.findings]
    assert h.evidence[-1] == "probe published from host to 10.0.0.6:8000/tcp: connected in 0.4 ms, HTTP/1.1 200 OK"


def test_a_task_not_listening_makes_the_backends_hop_suspect_with_its_hint(snap):
    snap.probes = [_probe("task", "lb.backends", "refused", address="10.0.1.3", source="lb_odns2ld5k",
                          network="appnet", published=None, task="whoami.1", reason="Connection refused")]
    a = pipeline.analyze_snapshots([snap])
    np = _path(a, network="appnet")
    assert np.hop("lb.backends").status == HopStatus.SUSPECT and np.verdict == Verdict.BROKEN
    f = next(f for f in a.findings if f.id == FINDING)
    assert f.network == "appnet" and "listening" in f.hint and "whoami.1" in f.evidence[0]


def test_a_through_probe_that_met_a_task_not_listening_is_evidence_of_the_task_only(snap):
    """The VM tier's fault p: one task's server stopped; round robin sends the node's own 127.0.0.1 probe to it.
    The suspect is that task's real-server hop, not the host jump the probe went through first."""
    snap.probes = [
        _probe("localhost", "host.jump", "refused", address="127.0.0.1", reason="Connection refused"),
        _probe("published", "host.dnat", "connected", duration_ms=6.1),
        _probe("task", "ingress.backends", "refused", address="10.255.0.5", port=80, source="ingress_sbox",
               task="whoami.1", reason="Connection refused"),
    ]
    a = pipeline.analyze_snapshots([snap])
    np = _path(a, port=8000)
    assert np.hop("host.jump").status == HopStatus.OK and np.hop("ingress.backends").status == HopStatus.SUSPECT
    assert np.broken_at == np.hop("ingress.backends").label
    assert any("127.0.0.1:8000/tcp: refused" in e for e in np.hop("host.jump").evidence)
    (f,) = [f for f in a.findings if f.id == FINDING]
    assert "whoami.1" in f.evidence[0] and "listening" in f.hint
    assert_verdicts_agree_with_exit(a)


def test_a_broken_hop_stays_broken_and_the_rules_keep_the_cause(snap):
    nat = snap.host.iptables.tables["nat"].chains["DOCKER-INGRESS"]
    nat.rules = [r for r in nat.rules if r.target != "DNAT"]
    snap.probes = [_probe("published", "host.dnat", "timeout"), _probe("localhost", "host.jump", "timeout",
                                                                       address="127.0.0.1")]
    a = pipeline.analyze_snapshots([snap])
    np = _path(a, port=8000)
    assert np.hop("host.dnat").status == HopStatus.MISSING
    assert np.hop("host.jump").status == HopStatus.OK  # the path is broken at the DNAT: expected to fail
    assert FINDING not in [f.id for f in a.findings]
    assert "ingress.dnat-missing" in [f.id for f in a.findings]
    assert any(e.startswith("probe published") for e in np.hop("host.dnat").evidence)
    assert_verdicts_agree_with_exit(a)


def test_the_text_shows_each_probe_next_to_its_hop(snap):
    from swarmscope import render

    snap.probes = [_probe("published", "host.dnat", "timeout", reason="no answer within 1s")]
    a = pipeline.analyze_snapshots([snap])
    text = render.explain("text", a, [s for s in a.services if s.name == "whoami"], render.View(colour=False))
    assert "suspect" in text and "BROKEN at host DNAT :8000" in text
    assert "probes of host DNAT :8000 -> 172.18.0.2:8000:" in text
    assert "published from host to 10.0.0.6:8000/tcp: timeout after 1000 ms" in text
    assert "probe.hop-suspect" in text


# --------------------------------------------------------------------------- the record, redaction


def test_probes_round_trip_and_older_snapshots_read_unchanged(snap):
    snap.probes = [_probe("vip", "lb.ipvs", "connected", address="10.0.1.2", network="appnet")]
    data = json.loads(json.dumps(snap.to_dict()))
    assert from_dict(Snapshot, data).probes == snap.probes
    del data["probes"]
    assert Snapshot.from_dict(data).probes == []


def test_probe_records_are_redacted_like_everything_else_and_still_join(snap):
    from swarmscope.redact import redact_snapshots

    probe = _probe("task", "lb.backends", "refused", address="10.0.1.3", source="lb_odns2ld5k", network="appnet",
                   published=None, task="whoami.1", reason="Connection refused", http_status=None)
    snap.probes = [probe, _probe("localhost", "host.jump", "connected", address="127.0.0.1")]
    [red], r = redact_snapshots([snap], seed="probe")
    rp = red.probes[0]
    text = json.dumps(to_dict(red.probes))
    for real in ("10.0.1.3", "lb_odns2ld5k", "lab-vm", "whoami", "appnet", "odns2ld5k"):
        assert real not in text, real
    assert rp.result == "refused" and rp.hop == "lb.backends" and rp.port == 8000 and rp.kind == "task"
    assert red.probes[1].address == "127.0.0.1"
    a = pipeline.analyze_snapshots([red])
    f = next(f for f in a.findings if f.id == FINDING)
    assert f.service == rp.service and f.network == rp.network and f.nodes == [rp.node]


# --------------------------------------------------------------------------- nothing is sent without --probe


@pytest.fixture
def no_sockets(monkeypatch):
    class NoPacket(AssertionError):
        pass

    def refuse(*a, **kw):
        raise NoPacket("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    return NoPacket


def test_plain_explain_sends_no_packet(monkeypatch, snap, no_sockets):
    from swarmscope.collect.snapshot import CollectOptions

    monkeypatch.setattr(pipeline, "collect", lambda source, say=None: pipeline.Run([copy.deepcopy(snap)], True))
    run = pipeline.analyzed(pipeline.Source(collect=CollectOptions()))
    assert run.snapshots[0].probes == [] and run.analysis is not None
    # and the same pipeline with --probe does reach for a socket: the patch above is what would catch one
    with pytest.raises(no_sockets):
        pipeline.analyzed(pipeline.Source(collect=CollectOptions(), probe=ProbeOptions()))


def test_cli_probe_options_are_opt_in_and_refused_with_from(tmp_path, no_sockets):
    from click.testing import CliRunner

    from swarmscope.cli import cli
    from swarmscope.dump import make_dump

    path = tmp_path / "d.json"
    path.write_text(json.dumps(make_dump([rawsnap.lab_vm()])))
    r = CliRunner().invoke(cli, ["explain", "--from", str(path), "whoami"])
    assert r.exit_code == 0 and "probes of" not in r.output
    r = CliRunner().invoke(cli, ["explain", "--from", str(path), "--probe", "whoami"])
    assert r.exit_code != 0 and "cannot go with --from" in str(r.exception or r.output)
    r = CliRunner().invoke(cli, ["check", "--probe-http"])
    assert r.exit_code != 0 and "--probe-http goes with --probe" in str(r.exception or r.output)


# --------------------------------------------------------------------------- the standing agent


def test_the_agent_probes_at_most_every_probe_interval_and_keeps_the_last_results(monkeypatch, snap):
    import swarmscope.probe as probe_pkg
    from swarmscope import agent
    from swarmscope.collect.snapshot import CollectOptions

    clock = FakeClock()

    class Event:
        def is_set(self):
            return False

        def set(self):
            pass

        def wait(self, s):
            clock.t += s

    made, analysed = [], []
    monkeypatch.setattr(agent.time, "monotonic", clock)
    monkeypatch.setattr(agent.threading, "Event", Event)
    monkeypatch.setattr(agent, "check_environment", lambda opts: [])
    monkeypatch.setattr(agent, "log", lambda msg: None)
    monkeypatch.setattr(pipeline, "collect_node", lambda opts, say=None: copy.deepcopy(snap))

    def fake_probe(s, opts):
        made.append(clock())
        s.probes = [_probe("published", "host.dnat", "timeout")]
        return s.probes

    real_analyze = pipeline.analyze_snapshots

    def analyze(snaps):
        analysed.append(len(snaps[0].probes))
        return real_analyze(snaps)

    monkeypatch.setattr(probe_pkg, "probe_snapshot", fake_probe)
    monkeypatch.setattr(pipeline, "analyze_snapshots", analyze)
    assert agent.run_standing(CollectOptions(), 10, None, None, rounds=4, probe_interval=25) == 0
    assert made == [100.0, 130.0]  # rounds at 100, 110, 120, 130: probed at the first and once 25 s had passed
    assert analysed == [1, 1, 1, 1]  # the last results stay with every collection in between


def test_a_redacted_bundle_holds_the_probes_and_none_of_their_real_values(tmp_path, snap):
    import leakscan

    from swarmscope.redact import redact_snapshots
    from swarmscope.report import build_report

    snap.probes = [_probe("task", "lb.backends", "refused", address="10.0.1.3", source="lb_odns2ld5k",
                          network="appnet", published=None, task="whoami.1", reason="Connection refused"),
                   _probe("published", "host.dnat", "timeout", reason="no answer within 1s")]
    real = leakscan.real_values([snap])
    [red], r = redact_snapshots([snap], seed="bundle")
    bundle = tmp_path / "r.tar.gz"
    bundle.write_bytes(build_report([red], pipeline.analyze_snapshots([red]), [], redaction={"redacted": True},
                                    svg=False))
    files = leakscan.bundle_files(bundle)
    dump = json.loads(files["swarmscope-report/dump.json"])
    assert [p["result"] for p in dump["nodes"][0]["probes"]] == ["refused", "timeout"]
    assert any("probe.hop-suspect" in text for text in files.values())
    assert leakscan.scan_bundle(bundle, real) == {}
    assert "lb_odns2ld5k" not in json.dumps(dump["nodes"][0]["probes"])


# --------------------------------------------------------------------------- explain SERVICE --probe: its targets only


def _mesh3(node="manager"):
    from test_probe_vtep import _load

    return _load(node)


def _vtep_of(snap: Snapshot) -> dict[str, str]:
    return {n.id: n.address.split("/")[0] for n in snap.docker.nodes if n.address}


@pytest.mark.parametrize("service", ["client", "glob", "whoami"])
def test_a_scoped_plan_is_the_service_s_own_targets_and_echoes_to_its_own_tasks(service):
    snap = _mesh3()
    whole, mine = plan(snap), plan(snap, frozenset({service}))
    assert mine and {t.service for t in mine} == {service}
    # the published, localhost, VIP and task probes are the whole plan's of that service, in the same order
    assert [t for t in mine if t.kind != "vtep"] == [t for t in whole if t.service == service and t.kind != "vtep"]
    # an echo crosses to each other node where the service itself runs, on each network its tasks are on there:
    # the VXLAN its own paths cross (the whole plan may pick another service's task on that node)
    nets = {n.id: n for n in snap.docker.networks}
    svc = next(s for s in snap.docker.services if s.name == service)
    vteps = _vtep_of(snap)
    expected = {
        (nets[a.network_id].name, vteps[t.node_id])
        for t in snap.docker.tasks
        if t.service_id == svc.id and t.state == "running" and t.node_id != snap.node.node_id
        for a in t.attachments
        if a.network_id in nets and (nets[a.network_id].ingress or nets[a.network_id].driver == "overlay")
    }
    echoes = [t for t in mine if t.kind == "vtep"]
    assert expected and {(t.network, t.vtep) for t in echoes} == expected
    assert all(t.task and t.task.startswith(service + ".") for t in echoes)
    allow = allow_list(snap)
    for t in mine:
        if not t.skip:
            guard(t, allow)


def test_an_unknown_service_plans_nothing_and_the_summary_says_so():
    from swarmscope.probe import summary

    snap = _mesh3()
    assert plan(snap, frozenset({"nosuch"})) == []
    line = summary([], 0.1, frozenset({"nosuch"}))
    assert line.startswith("nothing to probe for nosuch:"), line


@pytest.mark.parametrize("redacted", [False, True])
def test_explain_service_probe_spends_the_cap_on_that_service(monkeypatch, no_sockets, redacted):
    """`explain glob --probe --probe-max 2` on the three-node mesh's manager: every probe made and recorded is
    glob's (before, client's and whoami's took the cap, glob's were "over the cap"). Nothing is sent: the
    connections, echoes and namespace entries are stand-ins that answer at once."""
    import swarmscope.probe as probe_pkg
    from swarmscope.collect.snapshot import CollectOptions
    from swarmscope.probe.run import probe_snapshot

    made: list[tuple] = []

    def connect(address, port, timeout, http=False):
        made.append(("connect", address, port))
        return Outcome("connected")

    def echo(address, size, timeout):
        made.append(("echo", address, size))
        return Outcome("connected", answered=size)

    def fake(snap, opts):
        return probe_snapshot(snap, opts, connect=connect, echo=echo, enter=lambda path, fn, timeout: fn(),
                              sleep=lambda s: None)

    said: list[str] = []
    monkeypatch.setattr(probe_pkg, "probe_snapshot", fake)
    monkeypatch.setattr(pipeline, "collect", lambda source, say=None: pipeline.Run([_mesh3()], True))
    red = pipeline.Redaction(redact=True) if redacted else None
    run = pipeline.analyzed(pipeline.Source(collect=CollectOptions(), probe=ProbeOptions(max_probes=2)), red,
                            said.append, "glob")
    [snap] = run.snapshots
    name = run.redactor.name("glob") if run.redactor is not None else "glob"
    assert snap.probes and {p.service for p in snap.probes} == {name}
    assert len(made) == 2 and sum(p.result != "not-probed" for p in snap.probes) == 2
    assert any("probed 2 target(s)" in s for s in said), said
    assert [s.name for s in run.analysis.services] == [name]
    assert FINDING not in {f.id for f in run.analysis.findings}
    # the whole swarm's run (check --probe) still plans every service's probes
    whole = pipeline.analyzed(pipeline.Source(collect=CollectOptions(), probe=ProbeOptions(max_probes=2)), None,
                              said.append)
    assert {p.service for p in whole.snapshots[0].probes} == {"client", "glob", "whoami"}
