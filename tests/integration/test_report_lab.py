"""`swarmscope report` on the real lab swarm: the bundle explains offline like the live run,
redaction leaves no lab value in any file, and nothing secret is ever collected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "tests" / "unit", REPO / "tests" / "render"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import leakscan  # noqa: E402
import render_check  # noqa: E402

from swarmscope.correlate.lifecycle import SETTLE_SECONDS  # noqa: E402
from swarmscope.dump import load  # noqa: E402

pytestmark = pytest.mark.lab


def offline(*args):
    """swarmscope as an unprivileged reader would run it: no Docker, no namespaces."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=180, env=env)


def report(lab, out, *extra, node=None):
    n = node or lab
    return n.swarmscope("report", "--netns-dir", str(n.netns_dir), "-o", str(out), *extra, timeout=300)


def signature(doc):
    """Hop keys/statuses/findings per path, backend statuses, and finding ids: no names, no addresses."""
    paths = []
    for sp in doc["services"]:
        for pp in sp["ports"]:
            for np in pp["nodes"]:
                paths.append(["port", pp["protocol"], pp["published"], np["verdict"],
                              [[h["key"], h["status"], h["findings"]] for h in np["hops"]],
                              sorted(b["status"] for b in np["backends"])])
        for vp in sp["vip_paths"]:
            for np in vp["nodes"]:
                paths.append(["vip", vp["endpoint_mode"], np["verdict"],
                              [[h["key"], h["status"], h["findings"]] for h in np["hops"]],
                              sorted(b["status"] for b in np["backends"])])
    findings = sorted([f["id"], f["severity"], f["caused_by"] or "", f["explains"]] for f in doc["findings"])
    return sorted(paths, key=repr), findings


def lab_values(lab, bundle):
    """Every real value of the lab: from the unredacted bundle's snapshots, plus the lab's own."""
    values = leakscan.real_values(load(str(bundle)))
    values["address"].add(lab.node_addr)
    return values


def test_report_explains_offline_and_redacts_every_lab_value(lab, tmp_path):
    lab.wait_settled(SETTLE_SECONDS)  # two collections a moment apart, judged alike
    live = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "--all", "--format", "json", timeout=300)
    assert live.returncode == 1, live.stderr  # kernel.no-ipvs on this kernel
    plain, red, mp = tmp_path / "plain.tar.gz", tmp_path / "red.tar.gz", tmp_path / "map.json"
    cp = report(lab, plain)
    assert cp.returncode == 1, cp.stderr
    assert "swarmscope: collecting" in cp.stderr and f"wrote {plain}" in cp.stderr
    files = leakscan.bundle_files(plain)
    assert "swarmscope-report/SUMMARY.txt" in files and "ERROR kernel.no-ipvs" in files["swarmscope-report/SUMMARY.txt"]
    manifest = json.loads(files["swarmscope-report/MANIFEST.json"])
    rendered = [e for e in manifest["files"] if e["origin"] == "rendered"]
    assert any(e["path"].endswith("ip-addr.rendered.txt") for e in rendered)
    assert any(e["path"].endswith("iptables-nft-save.txt") or e["path"].endswith("iptables-legacy-save.txt")
               for e in manifest["files"] if e["origin"] == "captured")
    for svc in ("whoami", "client", "dnsrr", "hostport", "glob"):
        assert f"swarmscope-report/explain/{svc}.txt" in files and f"swarmscope-report/pictures/{svc}.mmd" in files

    again = offline("explain", "--from", str(plain), "--all", "--format", "json")
    assert again.returncode == 1, again.stderr
    assert signature(json.loads(again.stdout)) == signature(json.loads(live.stdout))
    assert offline("check", "--from", str(plain)).returncode == 1

    cp = report(lab, red, "--redact", "--redact-map", str(mp))
    assert cp.returncode == 1, cp.stderr
    values = lab_values(lab, plain)
    assert {"whoami", "demo"} <= values["name"] and lab.node_addr in values["address"]
    assert leakscan.scan_bundle(red, values) == {}
    assert "map.json" not in " ".join(leakscan.bundle_files(red))
    redone = offline("explain", "--from", str(red), "--all", "--format", "json")
    assert redone.returncode == 1, redone.stderr
    assert signature(json.loads(redone.stdout)) == signature(json.loads(live.stdout))
    mapping = json.loads(mp.read_text())
    assert mapping["names"]["whoami"].startswith("svc-")


def test_mermaid_of_whoami_renders_in_a_headless_browser(lab, tmp_path):
    why = render_check.unavailable()
    if why:
        pytest.skip(why)
    cp = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "whoami", "--format", "mermaid", timeout=300)
    assert cp.returncode == 1, cp.stderr
    assert cp.stdout.startswith("flowchart LR")
    png = tmp_path / "whoami.png"
    assert render_check.render(cp.stdout, png) == "RENDERED-OK"
    assert png.stat().st_size > 10_000
    dot = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "whoami", "--format", "dot", timeout=300)
    if not render_check.shutil.which("dot"):
        pytest.skip("Graphviz dot not installed")
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0 and "<svg" in svg.stdout, svg.stderr


MARK = "SWSCOPE-PLANTED-5c1e"


@pytest.mark.lab_fault
def test_env_secrets_configs_command_never_in_a_report(lab, tmp_path):
    """A throwaway service carrying a marker in its env, a secret, a config, its command and args.

    Registry credentials (--with-registry-auth) cannot be planted here: the lab is offline, with
    no registry to log in to; the collector copies no field that could hold them (see the unit test).
    """
    secret, config = tmp_path / "secret", tmp_path / "config"
    secret.write_text(f"{MARK}-secret-value\n")
    config.write_text(f"{MARK}-config-value\n")
    names = {"secret": "swscope-planted-secret", "config": "swscope-planted-config", "service": "planted"}
    try:
        assert lab.docker("secret", "create", names["secret"], str(secret)).returncode == 0
        assert lab.docker("config", "create", names["config"], str(config)).returncode == 0
        cp = lab.docker("service", "create", "-d", "--name", names["service"], "--network", "demo",
                        "--env", f"PLANTED_ENV={MARK}-env", "--secret", names["secret"],
                        "--config", f"source={names['config']},target=/planted.conf",
                        "swarmscope-lab/busybox:latest", "sh", "-c", f"sleep 1000000 # {MARK}-args")
        assert cp.returncode == 0, cp.stderr
        end = time.monotonic() + 120
        while time.monotonic() < end:
            ps = lab.docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", names["service"])
            if ps.stdout.startswith("Running"):
                break
            time.sleep(1)
        # the marker is really there, where the API would show it
        spec = lab.docker("service", "inspect", names["service"]).stdout
        assert f"{MARK}-env" in spec and f"{MARK}-args" in spec
        for extra in ((), ("--redact",)):
            out = tmp_path / f"r{len(extra)}.tar.gz"
            cp = report(lab, out, *extra)
            assert cp.returncode in (1, 4), cp.stderr
            files = leakscan.bundle_files(out)
            assert files
            hits = [name for name, text in files.items() if MARK in text or MARK.lower() in text.lower()]
            assert hits == [], f"planted values in {hits}"
            if not extra:
                assert "swarmscope-report/explain/planted.txt" in files  # the service itself is reported
    finally:
        lab.docker("service", "rm", names["service"])
        end = time.monotonic() + 60
        while time.monotonic() < end and lab.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=planted").stdout.strip():
            time.sleep(1)
        lab.docker("secret", "rm", names["secret"])
        lab.docker("config", "rm", names["config"])


def test_report_from_the_multi_node_lab(request, tmp_path):
    """The same checks on the three-node lab, where that fixture exists."""
    try:
        multilab = request.getfixturevalue("multilab")
    except pytest.FixtureLookupError:
        pytest.skip("no multilab fixture in tests/conftest.py")
    m = multilab.manager
    args = ("--netns-dir", str(m.netns_dir), "--image", multilab.image)
    live = m.swarmscope("explain", *args, "--all", "--format", "json", timeout=600)
    assert live.returncode in (1, 4), live.stderr
    plain, red = tmp_path / "plain.tar.gz", tmp_path / "red.tar.gz"
    assert m.swarmscope("report", *args, "-o", str(plain), timeout=600).returncode in (1, 4)
    assert m.swarmscope("report", *args, "-o", str(red), "--redact", timeout=600).returncode in (1, 4)
    snaps = load(str(plain))
    assert len(snaps) == len(multilab.nodes)
    # read offline, each bundle explains exactly what was judged when it was made (its dump.json); the
    # live explain is another collection of the same swarm: the same services and nodes
    again = offline("explain", "--from", str(plain), "--all", "--format", "json")
    made = json.loads(leakscan.bundle_files(plain)["swarmscope-report/dump.json"])
    assert signature(json.loads(again.stdout)) == signature(made)
    values = leakscan.real_values(snaps)
    values["address"].update(n.addr for n in multilab.nodes)
    assert leakscan.scan_bundle(red, values) == {}
    redone = offline("explain", "--from", str(red), "--all", "--format", "json")
    assert signature(json.loads(redone.stdout)) == signature(json.loads(leakscan.bundle_files(red)["swarmscope-report/dump.json"]))
    livedoc = json.loads(live.stdout)
    assert sorted(s["name"] for s in json.loads(again.stdout)["services"]) == sorted(s["name"] for s in livedoc["services"])
    assert sorted(json.loads(again.stdout)["nodes"]) == sorted(livedoc["nodes"])
