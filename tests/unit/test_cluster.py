"""Cluster gathering without a swarm: chunk lines, task outcomes, the job spec, the agent's HTTP side."""

from __future__ import annotations

import json
import random
import string
import urllib.error
import urllib.request

import pytest

from swarmscope import agent as ag
from swarmscope.gather import chunks
from swarmscope.gather.gather import GatherOptions, classify_task, job_spec, socket_source
from swarmscope.collect.snapshot import CollectOptions
from swarmscope.errors import UsageError


def big_doc(n=200_000):
    rnd = random.Random(4)
    return {"schema": "x", "blob": "".join(rnd.choice(string.ascii_letters) for _ in range(n))}


def test_chunks_round_trip_in_any_order_with_noise():
    doc = big_doc()
    lines = chunks.encode(doc, "run1", "node-a", piece=4000)
    assert len(lines) > 3 and all(len(line) < 16 * 1024 for line in lines)
    noisy = ["swarmscope agent: check: ok ..."] + list(reversed(lines)) + lines[:2]  # duplicates too
    noisy += chunks.encode({"other": 1}, "run2", "node-a")  # another run: ignored
    r = chunks.Reassembler("run1")
    r.feed("2024-01-01T00:00:00Z " + line if i % 2 else line for i, line in enumerate(noisy))
    out = r.get("node-a")
    assert out.complete and out.document() == doc and out.size > 0


def test_chunks_incomplete_and_damaged():
    lines = chunks.encode(big_doc(50_000), "r", "n", piece=1000)
    r = chunks.Reassembler("r")
    r.feed(lines[:-1])
    assert not r.get("n").complete
    with pytest.raises(ValueError, match="pieces"):
        r.get("n").document()
    bad = lines[:]
    bad[1] = bad[1][:-4] + "AAAA"
    r = chunks.Reassembler("r")
    r.feed(bad)
    with pytest.raises(ValueError, match="checksum"):
        r.get("n").document()


def test_chunk_error_line():
    r = chunks.Reassembler("r")
    r.feed([chunks.error_line("r", "n1", "not root:\n run it as root")])
    assert r.get("n1").errors == ["not root: run it as root"] and not r.get("n1").complete


def test_demux_multiplexed_and_raw():
    payload = b"line one\nline two\n"
    frames = b"".join(bytes([1, 0, 0, 0]) + len(p).to_bytes(4, "big") + p for p in (payload[:9], payload[9:]))
    assert chunks.demux(frames) == payload.decode()
    assert chunks.demux(payload) == payload.decode()


@pytest.mark.parametrize(
    "state,err,agent_errors,kind",
    [
        ("rejected", "No such image: swarmscope:latest", [], "image-missing"),
        ("rejected", "pull access denied for swarmscope, repository does not exist", [], "image-missing"),
        ("rejected", 'starting container failed: exec: "swarmscope": executable file not found in $PATH', [], "rejected"),
        ("failed", "task: non-zero exit (3)", ["must run as root"], "failed"),
        ("failed", "task: non-zero exit (137)", [], "failed"),
        ("shutdown", "", [], "failed"),
    ],
)
def test_classify_task(state, err, agent_errors, kind):
    k, reason = classify_task(state, err, agent_errors, "swarmscope:latest")
    assert k == kind and reason
    if agent_errors:
        assert agent_errors[-1] in reason


def test_job_spec_is_least_privilege():
    opts = GatherOptions(collect=CollectOptions(netns_dir="/srv/docker/netns", docker_host="unix:///srv/docker.sock"),
                         image="reg/swarmscope:1")
    spec = job_spec(opts, "abcd1234", "SELF", job_mode=True)
    tt = spec["task_template"]
    cs = tt["ContainerSpec"]
    assert spec["mode"] == {"GlobalJob": {}} and spec["name"] == "swarmscope-gather-abcd1234"
    assert sorted(cs["CapabilityAdd"]) == ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    assert "Privileges" not in cs or not cs.get("Privileges")
    mounts = {m["Target"]: m for m in cs["Mounts"]}
    assert mounts["/var/run/docker.sock"]["Source"] == "/srv/docker.sock"
    ns = mounts["/var/run/docker/netns"]
    assert ns["Source"] == "/srv/docker/netns" and ns["ReadOnly"] and ns["BindOptions"]["Propagation"] == "rslave"
    assert tt["Networks"] == [{"Target": "host"}]
    assert tt["Placement"]["Constraints"] == ["node.id!=SELF"]
    assert tt["RestartPolicy"]["Condition"] == "none"
    assert cs["Command"][:4] == ["swarmscope", "agent", "--once", "--run-id"]
    old = job_spec(opts, "abcd1234", None, job_mode=False)
    assert {k.lower(): v for k, v in old["mode"].items()} == {"global": {}}


def test_socket_source(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert socket_source(None) == "/var/run/docker.sock"
    assert socket_source("unix:///x/d.sock") == "/x/d.sock"
    assert socket_source("tcp://10.0.0.1:2376") == "/var/run/docker.sock"


def test_listen_needs_a_token(tmp_path):
    with pytest.raises(UsageError, match="token"):
        ag.read_token(None)
    short = tmp_path / "t"
    short.write_text("abc\n")
    with pytest.raises(UsageError, match="too short"):
        ag.read_token(str(short))
    with pytest.raises(UsageError, match="ADDR:PORT"):
        ag.parse_listen("9324x")
    with pytest.raises(UsageError, match="explicit address"):  # never every interface without saying so
        ag.parse_listen(":9324")
    assert ag.parse_listen("0.0.0.0:9324")[:2] == ("0.0.0.0", 9324)


def test_http_serves_only_with_the_token():
    import socket

    state = ag.State(snapshot_json=b'{"ok": true}', metrics="swarmscope_collections_total 1\n")
    token = "0123456789abcdef0123"
    server = ag.AgentServer(("127.0.0.1", 0), socket.AF_INET, state, token).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
        for path in ("/metrics", "/snapshot"):
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(base + path, timeout=5)
            assert exc.value.code == 401
            req = urllib.request.Request(base + path, headers={"Authorization": "Bearer wrong-token-wrong-token"})
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=5)
        req = urllib.request.Request(base + "/snapshot", headers={"Authorization": f"Bearer {token}"})
        assert json.loads(urllib.request.urlopen(req, timeout=5).read()) == {"ok": True}
        req = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert b"swarmscope_collections_total 1" in urllib.request.urlopen(req, timeout=5).read()
    finally:
        server.shutdown()


def test_metrics_text_on_a_real_ip_vs_mesh():
    from swarmscope.correlate import analyze
    from swarmscope.render import prometheus

    from rawsnap import lab_vm

    snap = lab_vm()
    analysis = analyze([snap])
    text = prometheus.metrics_text(snap, analysis, collections=3)
    assert "swarmscope_collection_duration_seconds " in text and "swarmscope_collections_total 3" in text
    for f in analysis.findings:
        assert f'swarmscope_findings{{id="{f.id}",severity="{f.severity}"}}' in text
    servers = [line for line in text.splitlines() if line.startswith("swarmscope_real_servers{")]
    assert servers and any(not line.endswith(" 0") for line in servers)
    from prometheus_client.parser import text_string_to_metric_families

    for line in text.splitlines():
        assert line.startswith("#") or float(line.split()[-1]) >= 0
    assert {f.name for f in text_string_to_metric_families(text)} >= {"swarmscope_findings", "swarmscope_collections"}
