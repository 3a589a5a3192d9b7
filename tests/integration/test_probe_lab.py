"""`--probe` on the real lab swarm (issue 13): real connections from the node's own namespaces.

The kernel here has no ip_vs, so the published port and the VIPs cannot answer: their probes fail,
and the verdict already says why (kernel.no-ipvs explains it; a probe never adds a second cause).
The tasks themselves listen: the direct probes from ingress_sbox and from the lb_ namespace connect,
and with --probe-http the busybox httpd's status line is kept. Connections go only to the lab's own
addresses, inside the lab node's network namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
OUT = Path(__file__).resolve().parents[2] / ".lab" / "probe"  # what the README quotes, kept for a look


def _keep(name: str, cp) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(f"$ swarmscope {' '.join(cp.args[-8:]) if isinstance(cp.args, list) else cp.args}\n"
                            f"exit {cp.returncode}\n--- stderr\n{cp.stderr}--- stdout\n{cp.stdout}")


def _dump(lab, *args):
    cp = lab.swarmscope("dump", "--json", "--netns-dir", str(lab.netns_dir), "--probe", *args, timeout=240)
    _keep("dump.txt", cp)
    assert cp.returncode in (1, 4), cp.stderr
    return json.loads(cp.stdout), cp.stderr


def test_probes_fail_where_the_kernel_explains_it_and_tasks_answer(lab):
    doc, err = _dump(lab, "--probe-http", "--probe-timeout", "1")
    assert "probed " in err, err
    [node] = doc["nodes"]
    probes = [p for p in node["probes"] if p["service"] == "whoami"]
    by_kind: dict[str, list[dict]] = {}
    for p in probes:
        by_kind.setdefault(p["kind"], []).append(p)
    # the ingress path end to end, and 127.0.0.1: no ip_vs, no DNAT, nothing answers
    for kind in ("published", "localhost"):
        assert by_kind[kind] and all(p["result"] in ("refused", "timeout", "error") for p in by_kind[kind]), by_kind
    assert all(p["result"] != "connected" for p in by_kind["vip"]), by_kind["vip"]
    # each task, directly from the namespace that would forward to it: listening
    tasks = by_kind["task"]
    assert {p["hop"] for p in tasks} == {"ingress.backends", "lb.backends"}
    assert len(tasks) == 4 and all(p["result"] == "connected" for p in tasks), tasks
    assert all((p["http_status"] or "").startswith("HTTP/1.") and " 200 " in p["http_status"] for p in tasks), tasks
    assert {p["source"] for p in tasks if p["hop"] == "ingress.backends"} == {"ingress_sbox"}
    assert all(p["source"].startswith("lb_") for p in tasks if p["hop"] == "lb.backends")
    # the host-mode port is served by docker-proxy on the node's address
    host = [p for p in node["probes"] if p["service"] == "hostport" and p["kind"] == "published"]
    assert host and host[0]["result"] == "connected", host
    # the verdict already says why: kernel.no-ipvs is the only root cause, no probe finding
    roots = {f["id"] for f in doc["findings"] if f["caused_by"] is None}
    assert roots == {"kernel.no-ipvs"}, roots
    assert "probe.hop-suspect" not in {f["id"] for f in doc["findings"]}
    sp = next(s for s in doc["services"] if s["name"] == "whoami")
    port = sp["ports"][0]["nodes"][0]
    assert port["verdict"] == "broken" and port["broken_at"] == "kernel ip_vs"
    hops = {h["key"]: h for h in port["hops"]}
    assert hops["host.dnat"]["status"] == "missing"
    assert any(e.startswith("probe published from host to ") for e in hops["host.dnat"]["evidence"])
    assert any(e.startswith("probe task from ingress_sbox to ") and ": connected" in e
               for e in hops["ingress.backends"]["evidence"])


def test_explain_with_probe_shows_them_next_to_the_hop_and_plain_explain_has_none(lab, tmp_path):
    saved = tmp_path / "explain-probe.json"
    cp = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "whoami", "--probe", "--probe-http",
                        "--save", str(saved), timeout=240)
    _keep("explain.txt", cp)
    assert cp.returncode == 1, cp.stderr
    # only whoami's targets are probed (the cap is spent on the service explained): the host-mode port of
    # `hostport`, which check --probe connects to, is not
    [node] = json.loads(saved.read_text())["nodes"]
    assert node["probes"] and {p["service"] for p in node["probes"]} == {"whoami"}, node["probes"]
    made = sum(p["result"] != "not-probed" for p in node["probes"])
    assert f"probed {made} target(s)" in cp.stderr, cp.stderr
    assert "probes of host DNAT :8000" in cp.stdout and "probes of real servers -> tasks:" in cp.stdout
    assert "probe.hop-suspect" not in cp.stdout
    assert max(len(line) for line in cp.stdout.splitlines()) <= 80
    plain = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "whoami", timeout=180)
    _keep("explain-plain.txt", plain)
    check = lab.swarmscope("check", "--netns-dir", str(lab.netns_dir), "--probe", timeout=240)
    _keep("check.txt", check)
    assert check.returncode == 1 and "probe.hop-suspect" not in check.stdout, check.stdout
    assert f"probed {made} target(s)" not in check.stderr, check.stderr  # every service's: more than whoami's
    assert plain.returncode == 1 and "probes of" not in plain.stdout and "probed" not in plain.stderr
