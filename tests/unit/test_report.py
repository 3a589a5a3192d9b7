"""Redaction, the report bundle, and the path pictures, on snapshots built from real captures."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import leakscan
import pytest
import rawsnap

from swarmscope.collect.docker_api import norm_container, norm_service, norm_task
from swarmscope.correlate import analyze
from swarmscope.dump import load, make_dump
from swarmscope.pipeline import analyze_snapshots
from swarmscope.model import to_dict
from swarmscope.redact import Redactor, redact_snapshots
from swarmscope.render import dot as dotr
from swarmscope.render import mermaid as mmd
from swarmscope.report import build_report

REPO = Path(__file__).resolve().parents[2]


def dnat_removed():
    snap = rawsnap.lab_vm()
    nat = snap.host.iptables.tables["nat"].chains["DOCKER-INGRESS"]
    nat.rules = [r for r in nat.rules if r.target != "DNAT"]
    snap.host.iptables.raw = "\n".join(l for l in snap.host.iptables.raw.splitlines() if "-j DNAT" not in l) + "\n"
    return [snap]


def lb_ipvs_emptied():
    snap = rawsnap.lab_vm()
    lb = rawsnap.find_ns(snap, "lb")
    lb.ipvs.services = []
    return [snap]


BUILDS = {
    "lab-vm": lambda: [rawsnap.lab_vm()],
    "lab-vm-dnat-removed": dnat_removed,
    "lab-vm-lb-ipvs-empty": lb_ipvs_emptied,
    "moby-25": lambda: [rawsnap.moby_25()],
    "public-19": rawsnap.public_19,
}


def signature(analysis):
    """What must survive redaction: every hop's key, status and findings; verdicts; backends; finding ids."""
    paths = []
    for sp in analysis.services:
        for pp in sp.ports:
            for np in pp.nodes:
                paths.append(("port", pp.protocol, pp.published, np.verdict,
                              tuple((h.key, h.status, tuple(h.findings)) for h in np.hops),
                              tuple(sorted((b.status, b.redirect or "") for b in np.backends))))
        for vp in sp.vip_paths:
            for np in vp.nodes:
                paths.append(("vip", vp.endpoint_mode, vp.vip is None, np.verdict,
                              tuple((h.key, h.status, tuple(h.findings)) for h in np.hops),
                              tuple(sorted(b.status for b in np.backends))))
        paths.extend(("dns", c.query.startswith("tasks."), c.status) for c in sp.dns)
    findings = sorted((f.id, f.severity, f.caused_by or "", f.explains, len(f.nodes)) for f in analysis.findings)
    return sorted(paths, key=repr), findings


@pytest.mark.parametrize("name", sorted(BUILDS))
@pytest.mark.parametrize("seed", ["a", "b", None])
def test_redaction_keeps_every_hop_status_and_finding(name, seed):
    snaps = BUILDS[name]()
    before = signature(analyze(snaps))
    red, _ = redact_snapshots(BUILDS[name](), seed=seed)
    assert signature(analyze(red)) == before


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_real_value_left_in_redacted_json(name):
    snaps = BUILDS[name]()
    values = leakscan.real_values(snaps)
    assert values["address"] and values["id"] and values["name"]
    red, _ = redact_snapshots(snaps)
    doc = json.dumps(make_dump(red), indent=2)
    assert leakscan.find_leaks(doc, values) == []


def test_faults_still_found_after_redaction():
    red, _ = redact_snapshots(dnat_removed(), seed="x")
    roots = [f.id for f in analyze(red).findings if f.caused_by is None]
    assert roots == [f.id for f in analyze(dnat_removed()).findings if f.caused_by is None]
    assert "ingress.dnat-missing" in roots


def test_addresses_keep_subnets_private_ranges_and_meaningful_values():
    r = Redactor(seed="s")
    a, b, c = r.ipv4("10.0.1.3"), r.ipv4("10.0.1.5"), r.ipv4("10.0.2.3")
    assert ipaddress.ip_network(a + "/24", strict=False) == ipaddress.ip_network(b + "/24", strict=False)
    assert ipaddress.ip_network(a + "/24", strict=False) != ipaddress.ip_network(c + "/24", strict=False)
    # 10.0.1.0/24 and 10.0.2.0/24 share 22 bits: so do their substitutes
    assert ipaddress.ip_network(a + "/22", strict=False) == ipaddress.ip_network(c + "/22", strict=False)
    assert ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/8")
    assert ipaddress.ip_address(r.ipv4("172.18.0.2")) in ipaddress.ip_network("172.16.0.0/12")
    assert ipaddress.ip_address(r.ipv4("192.168.76.2")) in ipaddress.ip_network("192.168.0.0/16")
    assert ipaddress.ip_address(r.ipv4("8.8.8.8")) in ipaddress.ip_network("240.0.0.0/4")
    for kept in ("127.0.0.11", "127.0.0.1", "0.0.0.0", "255.255.255.255", "255.255.255.0", "224.0.0.5"):
        assert r.ipv4(kept) == kept
    text = "-A X -s 10.0.1.0/24 -d 0.0.0.0/0 -j DNAT --to-destination 10.0.1.3:80 ! -d 127.0.0.0/8 10.0.1.255/24 127.0.0.11"
    out = r.text(text)
    net = re.search(r"-s (\S+)", out).group(1)
    assert net.endswith(".0/24") and ipaddress.ip_address(a) in ipaddress.ip_network(net)
    assert "-d 0.0.0.0/0" in out and "! -d 127.0.0.0/8" in out and out.endswith(" 127.0.0.11")
    assert f"--to-destination {a}:80" in out
    assert re.search(r" (\S+)/24 127", out).group(1).endswith(".255")
    # /proc/net/ip_vs prints addresses in hex
    hexa = f"{int(ipaddress.ip_address(a)):08X}"
    assert r.text("TCP  0A000103:0050 rr") == f"TCP  {hexa}:0050 rr"
    # Docker's MACs carry the address: they follow it
    assert r.text("02:42:0a:00:01:03") == "02:42:" + ":".join(f"{int(x):02x}" for x in a.split("."))
    v6 = r.ipv6("fe80::42:aff:fe00:103")
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fe80::/10") and v6 != "fe80::42:aff:fe00:103"
    assert r.ipv6("::1") == "::1"


def test_ids_keep_their_prefixes():
    r = Redactor(seed="s")
    full = "odns2ld5kx1y2z3w4v5u6t7s8"
    hexid = "99205f8c36fb" + "0" * 52
    r._register_id(full)
    r._register_id(hexid)
    assert r.text(f"lb_{full[:9]}") == "lb_" + r.ident(full)[:9]
    assert r.text(f"1-{full[:10]}") == "1-" + r.ident(full)[:10]
    assert r.text(f"/var/run/docker/netns/{hexid[:12]}") == "/var/run/docker/netns/" + r.ident(hexid)[:12]
    assert all(c in "0123456789abcdef" for c in r.ident(hexid))
    assert r.ident(full) != full and len(r.ident(full)) == 25


def test_pseudonyms_depend_on_the_key():
    snaps = [rawsnap.lab_vm()]
    one = json.dumps(redact_snapshots(snaps, seed="one")[0][0].to_dict())
    again = json.dumps(redact_snapshots(snaps, seed="one")[0][0].to_dict())
    other = json.dumps(redact_snapshots(snaps, seed="two")[0][0].to_dict())
    rand1 = json.dumps(redact_snapshots(snaps)[0][0].to_dict())
    rand2 = json.dumps(redact_snapshots(snaps)[0][0].to_dict())
    assert one == again
    assert one != other and rand1 != rand2


def test_keep_names_keeps_service_and_network_names_only():
    snaps = [rawsnap.lab_vm()]
    red, _ = redact_snapshots(snaps, keep_names=True)
    names = {s.name for s in red[0].docker.services}
    assert "whoami" in names
    assert {n.name for n in red[0].docker.networks} >= {"appnet", "ingress"}
    assert red[0].node.hostname != "lab-vm"
    values = leakscan.real_values(snaps, keep_names=True)
    assert leakscan.find_leaks(json.dumps(make_dump(red)), values) == []


def test_tokens_in_labels_and_images_are_replaced():
    snap = rawsnap.lab_vm()
    svc = snap.docker.services[0]
    svc.image = "registry.corp.example:5000/team/app:v1@sha256:" + "ab" * 32
    svc.labels = {"com.docker.stack.namespace": "billing", "com.docker.x.token": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
                  "com.docker.stack.image": "registry.corp.example:5000/team/app:v1"}
    snap.docker.tasks[0].error = "No such image: registry.corp.example:5000/team/app:v1"
    red, r = redact_snapshots([snap], seed="t")
    doc = json.dumps(red[0].to_dict())
    for secret in ("registry.corp.example", "team/app", "ghp_A1b2", "billing", "ab" * 32):
        assert secret not in doc
    rsvc = red[0].docker.services[0]
    assert rsvc.image.startswith("image-") and ":v1@sha256:" in rsvc.image
    assert rsvc.labels["com.docker.x.token"].startswith("token-")
    assert rsvc.labels["com.docker.stack.image"] == rsvc.image.split("@")[0]
    assert r.mapping()["tokens"]
    # an official image stays readable
    assert Redactor(seed="t")._register_image("nginx:1.25") is None


def test_never_collected_env_secrets_configs_command_args():
    """The normalisers copy fields one by one: planted values in every sensitive field do not survive."""
    marker = "PLANTED-7f3a"
    raw_service = {
        "ID": "svc0000000000000000000001",
        "Spec": {
            "Name": "planted",
            "Labels": {"com.docker.keep": "ok", "user.label": marker},
            "TaskTemplate": {"ContainerSpec": {
                "Image": "busybox:latest", "Env": [f"PASSWORD={marker}"], "Command": ["sh", "-c", marker], "Args": [marker],
                "Secrets": [{"SecretName": marker, "SecretID": marker, "File": {"Name": f"/run/secrets/{marker}"}}],
                "Configs": [{"ConfigName": marker, "ConfigID": marker}], "Hostname": "h", "Dir": f"/{marker}",
                "User": marker, "Labels": {"x": marker}, "Privileges": {"CredentialSpec": {"Config": marker}},
            }, "Networks": []},
            "Mode": {"Replicated": {"Replicas": 1}},
        },
        "Endpoint": {},
    }
    raw_task = {"ID": "task000000000000000000001", "ServiceID": raw_service["ID"], "Slot": 1, "NodeID": "n",
                "Spec": raw_service["Spec"]["TaskTemplate"], "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c" * 64}},
                "DesiredState": "running", "NetworksAttachments": []}
    raw_container = {"Id": "c" * 64, "Name": "/planted.1.task000000000000000000001", "State": {"Status": "running", "Pid": 1},
                     "Args": [marker], "Path": "sh",
                     "Command": f"sh -c {marker}", "Labels": {"com.docker.swarm.service.name": "planted", "secret": marker},
                     "NetworkSettings": {"Networks": {}}, "Config": {"Env": [marker], "Cmd": [marker], "Entrypoint": [marker],
                                                                     "Labels": {"secret": marker}}}
    svc = norm_service(raw_service)
    task = norm_task(raw_task, {svc.id: svc.name})
    cont = norm_container(raw_container)
    assert cont.name.startswith("planted.1.")
    for obj in (svc, task, cont):
        assert marker not in json.dumps(to_dict(obj))


# --------------------------------------------------------------------------
# the bundle


@pytest.fixture
def bundles(tmp_path):
    out = {}
    for name, redact in (("plain", False), ("redacted", True)):
        snaps = dnat_removed()
        red = None
        if redact:
            snaps, red = redact_snapshots(snaps, seed="bundle")
        data = build_report(snaps, analyze_snapshots(snaps), [], redaction={"redacted": redact})
        p = tmp_path / f"{name}.tar.gz"
        p.write_bytes(data)
        out[name] = p
    return out


def test_bundle_contents(bundles):
    files = leakscan.bundle_files(bundles["plain"])
    top = "swarmscope-report/"
    for f in ("SUMMARY.txt", "MANIFEST.json", "dump.json", "explain/whoami.txt", "pictures/whoami.mmd", "pictures/whoami.dot",
              "raw/lab-vm/host/iptables-nft-save.txt", "raw/lab-vm/ingress_sbox/ipvsadm-Ln.txt",
              "raw/lab-vm/ingress_sbox/ip-addr.rendered.txt"):
        assert top + f in files, f
    summary = files[top + "SUMMARY.txt"]
    lines = summary.splitlines()
    assert lines[3].startswith("ROOT CAUSES") and "ERROR ingress.dnat-missing" in lines[4]
    manifest = json.loads(files[top + "MANIFEST.json"])
    assert manifest["schema"] == "swarmscope/report" and manifest["snapshot_version"] == 2
    assert manifest["nodes"][0]["hostname"] == "lab-vm" and "failed_nodes" in manifest and "failures" in manifest
    by_path = {e["path"]: e for e in manifest["files"] if e["path"]}
    assert by_path["raw/lab-vm/host/iptables-nft-save.txt"]["origin"] == "captured"
    assert by_path["raw/lab-vm/ingress_sbox/ip-addr.rendered.txt"]["origin"] == "rendered"
    assert set(by_path) == {n[len(top):] for n in files} - {"MANIFEST.json"}
    assert "--to-destination" not in files[top + "raw/lab-vm/host/iptables-nft-save.txt"]
    assert "ERROR ingress.dnat-missing" in files[top + "explain/whoami.txt"]
    assert files[top + "pictures/whoami.mmd"].startswith("flowchart LR")


def test_rendered_ipvs_when_read_over_netlink(tmp_path):
    snap = rawsnap.lab_vm()
    sbox = rawsnap.find_ns(snap, "ingress_sbox")
    sbox.ipvs.raw, sbox.ipvs.source = None, "netlink"
    data = build_report([snap], analyze_snapshots([snap]), [])
    p = tmp_path / "r.tar.gz"
    p.write_bytes(data)
    files = leakscan.bundle_files(p)
    text = files["swarmscope-report/raw/lab-vm/ingress_sbox/ipvsadm-Ln.rendered.txt"]
    from swarmscope.parse.ipvs import parse_ipvsadm_list

    assert [s.key for s in parse_ipvsadm_list(text)] == [s.key for s in sbox.ipvs.services]
    manifest = json.loads(files["swarmscope-report/MANIFEST.json"])
    e = next(e for e in manifest["files"] if e["path"] == "raw/lab-vm/ingress_sbox/ipvsadm-Ln.rendered.txt")
    assert e["origin"] == "rendered" and "netlink" in e["note"]


def test_redacted_bundle_leaks_nothing(bundles):
    values = leakscan.real_values(dnat_removed())
    assert leakscan.scan_bundle(bundles["redacted"], values) == {}
    assert leakscan.scan_bundle(bundles["plain"], values)  # the scan does find them where they are


def run(*args):
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_explain_and_check_from_bundle_equal_the_dump(bundles, tmp_path):
    dump = tmp_path / "d.json"
    dump.write_text(json.dumps(make_dump(dnat_removed())))
    a = run("explain", "--from", str(dump), "whoami", "--format", "json")
    b = run("explain", "--from", str(bundles["plain"]), "whoami", "--format", "json")
    assert a.returncode == b.returncode == 1, b.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout)
    c = run("check", "--from", str(bundles["plain"]))
    assert c.returncode == 1 and "ingress.dnat-missing" in c.stdout
    assert signature(analyze(load(str(bundles["redacted"])))) == signature(analyze(dnat_removed()))


def test_report_command_with_redact_map(tmp_path):
    dump = tmp_path / "d.json"
    dump.write_text(json.dumps(make_dump(dnat_removed())))
    out, mp = tmp_path / "r.tar.gz", tmp_path / "map.json"
    cp = run("report", "--from", str(dump), "-o", str(out), "--redact", "--redact-map", str(mp))
    assert cp.returncode == 1, cp.stderr
    assert "swarmscope: correlating" in cp.stderr and "root causes: ingress.dnat-missing" in cp.stderr
    assert stat.S_IMODE(os.stat(mp).st_mode) == 0o600
    mapping = json.loads(mp.read_text())
    assert mapping["names"]["whoami"].startswith("svc-") and mapping["addresses"]
    files = leakscan.bundle_files(out)
    assert not any("warning" in t and "pseudonyms back" in t for t in files.values())
    assert leakscan.scan_bundle(out, leakscan.real_values(dnat_removed())) == {}
    # explain on the redacted bundle by the pseudonym; the real name is not there
    ex = run("explain", "--from", str(out), mapping["names"]["whoami"])
    assert ex.returncode == 1 and "ingress.dnat-missing" in ex.stdout
    assert run("explain", "--from", str(out), "whoami").returncode == 2
    # dump --redact and explain --redact (the service named by its real name)
    d = run("dump", "--from", str(dump), "--redact", "--redact-seed", "k")
    assert d.returncode == 1 and "whoami" not in d.stdout and "lab-vm" not in d.stdout
    e = run("explain", "--from", str(dump), "--redact", "--redact-seed", "k", "whoami")
    assert e.returncode == 1 and "svc-" in e.stdout and "whoami" not in e.stdout
    bad = run("explain", "--from", str(dump), "--keep-names", "whoami")
    assert bad.returncode == 2 and "go with --redact" in bad.stderr


def test_not_a_bundle(tmp_path):
    p = tmp_path / "x.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo("other.txt")
        tar.addfile(info)
    cp = run("explain", "--from", str(p), "whoami")
    assert cp.returncode == 2 and "without dump.json" in cp.stderr and "Traceback" not in cp.stderr


# --------------------------------------------------------------------------
# pictures


def _mermaid_checks(text):
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    defined = set(re.findall(r"^\s*([A-Za-z0-9_]+)(?:\(\[|\[)", text, re.M))
    edges = [l for l in lines if re.match(r"^\s+\S+ (-->|-\.->)", l)]
    for e in edges:
        src, dst = e.split()[0], e.split()[-1]
        assert src in defined and dst in defined, e
    for l in lines:
        if l.strip().startswith("linkStyle"):
            assert all(int(i) < len(edges) for i in l.split()[1].split(","))
    # labels: quoted, no raw quote, angle bracket or hash inside
    for label in re.findall(r'"([^"]*)"', text):
        assert "<" not in label.replace("<br/>", "") and ">" not in label.replace("<br/>", "")
    return edges


def test_mermaid_draws_the_broken_hop():
    a = analyze(dnat_removed())
    sp = [s for s in a.services if s.name == "whoami"]
    text = mmd.render_mermaid(sp)
    edges = _mermaid_checks(text)
    assert re.search(r'\["host DNAT :8000 -#gt; 172\.18\.0\.2:8000<br/>MISSING<br/>finding: ingress\.dnat-missing"\]:::broken', text)
    broken_edge = next(i for i, e in enumerate(edges) if "-.->" in e and e.strip().endswith("h3"))
    assert re.search(rf"linkStyle (\S*,)?{broken_edge}(,\S*)? stroke:#c62828", text)
    all_text = mmd.render_mermaid(a.services)
    _mermaid_checks(all_text)
    assert all_text.count("subgraph s") >= len(a.services)


def test_escaping():
    assert mmd.escape('a "b" <c> #d | [e] `f`') == "a #quot;b#quot; #lt;c#gt; #35;d | [e] #96;f#96;"
    assert dotr.escape('a "b" \\ c\nd') == 'a \\"b\\" \\\\ c d'


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (apt-get install graphviz)")
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_dot_renders_with_graphviz(name):
    a = analyze(BUILDS[name]())
    text = dotr.render_dot(a.services)
    cp = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "<svg" in cp.stdout and cp.stderr == ""


def test_dot_marks_broken_hops():
    a = analyze(dnat_removed())
    text = dotr.render_dot([s for s in a.services if s.name == "whoami"])
    line = next(l for l in text.splitlines() if "finding: ingress.dnat-missing" in l)
    assert 'color="#c62828"' in line and "dashed" in line
    assert re.search(r"s0p0n0h2 -> s0p0n0h3 \[color=\"#c62828\", style=dashed", text)


def test_random_docker_bridge_mac_that_looks_like_a_kept_address_is_still_replaced():
    """docker0/docker_gwbridge get random 02:42 MACs; 02:42:ee:.. reads as multicast 238.x, which is kept."""
    from swarmscope.redact import Redactor

    r = Redactor(seed="t")
    for mac in ("02:42:ee:09:f8:d2", "02:42:7f:00:00:01", "02:42:00:00:00:00"):
        assert r.mac(mac) != mac
    assert r.mac("02:42:0a:00:00:04")[:6] == "02:42:" and r.mac("02:42:0a:00:00:04") != "02:42:0a:00:00:04"
