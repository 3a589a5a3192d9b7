"""Redaction keeps what the README promises (issue #15): every field of the model declares how it is
redacted (in the model itself, issue #10), a secret planted in every free-text field (failure reasons
and error messages included) is gone from dump.json, SUMMARY.txt, MANIFEST.json and every other file
of a bundle, and the failed nodes of dump/explain --save are redacted too."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import typing
from pathlib import Path

import leakscan
import pytest
import rawsnap

from swarmscope import model
from swarmscope.dump import make_dump
from swarmscope.pipeline import analyze_snapshots
from swarmscope.redact import Redactor, redact_snapshots
from swarmscope.redaction_kinds import KEEP, LABELS, NONAME, TEXT, RedactKind, declaration, redact_as, undeclared
from swarmscope.report import build_report

REPO = Path(__file__).resolve().parents[2]

#: secrets that no redacted output may contain, whatever field they were planted in
SECRETS = {
    "address+dot": "10.77.66.55",
    "v6": "2001:db8:77::55",
    "email": "alice.ops@corp-secret.example",
    "url password": "hunter2secretpw",
    "url user": "deploybotuser",
    "token": "ghp_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "generic token": "Zq9XvB7nM2kL4pR8tY6wE3sD1fG5hJ0a",
    "kv secret": "s3cr3tValue",
    "mac dashes": "02-42-0a-4d-42-37",
    "proc lower": "0a4d4237",
}
PLANT = (f"failed: connect to {SECRETS['address+dot']}. retrying via {SECRETS['address+dot']}.nip.io and "
         f"[{SECRETS['v6']}]:80; mail {SECRETS['email']}; "
         f"https://{SECRETS['url user']}:{SECRETS['url password']}@registry.example/x; "
         f"token {SECRETS['token']} key {SECRETS['generic token']} password={SECRETS['kv secret']} "
         f"mac {SECRETS['mac dashes']} proc {SECRETS['proc lower']}:0050")


def _model_classes() -> list[type]:
    seen: list[type] = []

    def walk(cls):
        if cls in seen:
            return
        seen.append(cls)
        for f in dataclasses.fields(cls):
            for t in _types(typing.get_type_hints(cls)[f.name]):
                if isinstance(t, type) and dataclasses.is_dataclass(t):
                    walk(t)

    walk(model.Snapshot)
    return seen


def _types(tp) -> list:
    out = [tp]
    for a in typing.get_args(tp):
        out += _types(a)
    return out


def _holds_text(tp) -> bool:
    return any(t is str for t in _types(tp))


def test_every_text_field_of_the_model_declares_how_it_is_redacted():
    missing = []
    for cls in _model_classes():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            d = declaration(f)
            if _holds_text(hints[f.name]) and (d is None or (d.how is None and d.keys is None)):
                missing.append(f"{cls.__name__}.{f.name}")
            if d is not None:
                assert all(x is None or isinstance(x, RedactKind) for x in (d.how, d.keys)), (cls, f.name, d)
    assert not missing, f"declare how these are redacted with redact_as(...) in swarmscope/model.py: {missing}"
    # the check covers every class a snapshot can hold (here, not at every import: 5-6 ms of every collection)
    assert set(_model_classes()) <= set(model.RECORDS), set(_model_classes()) - set(model.RECORDS)
    assert [u for cls in model.RECORDS for u in undeclared(cls)] == []


def test_a_field_without_a_declaration_is_refused():
    """What model.py checks at import: a text field needs how, a map needs how its keys are redacted."""

    @dataclasses.dataclass
    class Bad:
        port: int = 0  # numbers need nothing
        name: str = ""  # text: undeclared
        tags: list[str] = dataclasses.field(default_factory=list)  # text: undeclared
        by_name: dict[str, int] = redact_as(default_factory=dict)  # a map whose keys are undeclared
        labels: dict[str, str] = redact_as(LABELS, default_factory=dict)  # LABELS redacts its own keys
        sysctls: dict[str, str] = redact_as(NONAME, keys=KEEP, default_factory=dict)
        reason: str | None = redact_as(TEXT, default=None)

    assert undeclared(Bad) == ["Bad.name", "Bad.tags", "Bad.by_name (its keys)"]
    with pytest.raises(TypeError):
        redact_as("text")


def test_the_redactor_reads_the_models_declarations():
    from swarmscope.redact import _policy

    assert _policy(model.Rule)["line"] == ("raw", "keep")
    assert _policy(model.Network)["services"] == ("text", "text")
    assert _policy(model.Namespace)["sysctls"] == ("noname", "keep")
    assert _policy(model.IpvsDest)["port"] == ("text", "keep")  # no strings: the strictest, never applied
    assert _policy(model.Rule) is _policy(model.Rule)  # computed once


def _plant_everywhere(snap) -> list[str]:
    """Put PLANT into every str field the redactor treats as more than an enumeration; the fields planted."""
    planted = []

    def visit(obj):
        if isinstance(obj, list):
            for x in obj:
                visit(x)
            return
        if isinstance(obj, dict):
            for x in obj.values():
                visit(x)
            return
        if not dataclasses.is_dataclass(obj):
            return
        cls = type(obj)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            v = getattr(obj, f.name)
            d = declaration(f)
            how = d.how if d is not None else None
            inner = [t for t in _types(hints[f.name]) if t is not type(None)]
            if how == KEEP:
                continue
            if v is None and hints[f.name] == typing.Optional[str]:
                setattr(obj, f.name, PLANT)  # also the reasons and errors that are empty in the capture
                planted.append(f"{cls.__name__}.{f.name}")
            elif isinstance(v, str):
                setattr(obj, f.name, v + " " + PLANT)
                planted.append(f"{cls.__name__}.{f.name}")
            elif isinstance(v, list) and inner[:2] == [list[str], str]:
                v.append(PLANT)
                planted.append(f"{cls.__name__}.{f.name}[]")
            elif isinstance(v, dict) and all(t in (str, dict[str, str], dict[str, typing.Optional[str]],
                                                   typing.Optional[str]) for t in inner[:1]) and how is not None \
                    and not any(dataclasses.is_dataclass(t) for t in inner):
                for k in list(v):
                    v[k] = (v[k] or "") + " " + PLANT
                v["planted"] = PLANT
                planted.append(f"{cls.__name__}.{f.name}{{}}")
            else:
                visit(v)

    visit(snap)
    return planted


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [k for k, v in SECRETS.items() if v.lower() in low]


def test_a_secret_planted_in_every_free_text_field_is_gone_from_every_file(tmp_path):
    snap = rawsnap.lab_vm()
    # every kind of record present at least once, so each field gets its marker
    snap.provenance.append(model.Provenance(what="iptables-save", namespace="host", status="failed",
                                            argv=["iptables-nft-save"], exit_code=1))
    if not snap.dns:
        snap.dns.append(model.DnsAnswer(service="whoami", network_id="n", network_name="appnet", query="whoami",
                                        namespace="lb_x", status="timeout"))
    planted = _plant_everywhere(snap)
    for must in ("Snapshot.errors[]", "Namespace.errors[]", "Provenance.reason", "Task.error", "IptablesDump.raw",
                 "Rule.line", "Rule.comment", "DockerView.reason", "DnsAnswer.reason"):
        assert any(p.startswith(must.rstrip("[]")) for p in planted), (must, sorted(set(planted)))
    failed = [{"node": "gone-worker.corp.example.com", "node_id": "x7k2m9q4w8e6r5t3y1u0i2o4p", "kind": "timeout",
               "reason": PLANT}]
    red, r = redact_snapshots([snap], seed="plant", failed_nodes=failed)
    dump = json.dumps(make_dump(red, failed_nodes=r.failed_nodes(failed)))
    assert _leaks(dump) == [], _leaks(dump)
    assert "gone-worker" not in dump and "corp.example.com" not in dump
    data = build_report(red, analyze_snapshots(red), r.failed_nodes(failed), redaction={"redacted": True}, svg=False)
    bundle = tmp_path / "r.tar.gz"
    bundle.write_bytes(data)
    files = leakscan.bundle_files(bundle)
    assert {"swarmscope-report/SUMMARY.txt", "swarmscope-report/MANIFEST.json", "swarmscope-report/dump.json"} <= set(files)
    for name, text in files.items():
        assert _leaks(name + text) == [], (name, _leaks(name + text))


def test_plain_output_does_contain_the_planted_secrets():
    """The control: without --redact they are there, so the test above can fail."""
    snap = rawsnap.lab_vm()
    _plant_everywhere(snap)
    assert set(_leaks(json.dumps(make_dump([snap])))) == set(SECRETS)


def test_specific_survivors_of_issue_15():
    snap = rawsnap.lab_vm()
    snap.node.hostname = "node7.corp.example.com"
    snap.host.listeners.append(model.Listener(protocol="tcp", address="0.0.0.0", port=8000, pid=42, process="secretd"))
    svc = snap.docker.services[0]
    svc.labels["com.acme.owner-team"] = "payments"
    ns = snap.host
    name = svc.name
    ns.iptables.raw += f'-A OUTPUT -m comment --comment "{name} frontend" -j ACCEPT\n'
    rule = next(r for t in ns.iptables.tables.values() for c in t.chains.values() for r in c.rules)
    rule.comment = f"{name} frontend"
    snap.errors.append("dial 10.0.1.3. failed; see corp.example.com; mac 02-42-0a-00-01-03; /proc 0a000103:0050")
    red, _ = redact_snapshots([snap], seed="s")
    text = json.dumps(red[0].to_dict())
    for gone in ("10.0.1.3.", "corp.example.com", "secretd", "com.acme.owner-team", "02-42-0a-00-01-03", "0a000103",
                 f'"{name} frontend"', f"{name} frontend"):
        assert gone not in text, gone
    assert "docker-proxy" in json.dumps([l.process for l in red[0].host.listeners]) or not any(
        l.process == "docker-proxy" for l in snap.host.listeners)
    assert any(k.startswith("com.docker.") for k in red[0].docker.services[0].labels) or not any(
        k.startswith("com.docker.") for k in svc.labels)


def test_versions_and_vocabulary_stay():
    r = Redactor(seed="v")
    assert r.text("iptables v1.8.9 (nf_tables) 1.2.3.4.5") == "iptables v1.8.9 (nf_tables) 1.2.3.4.5"
    assert r.text("10.0.1.3.") != "10.0.1.3." and r.text("10.0.1.3.").endswith(".")


def test_dump_and_explain_save_redact_failed_nodes(tmp_path):
    doc = make_dump([rawsnap.lab_vm()])
    doc["failed_nodes"] = [{"node": "secret-worker-9", "node_id": "q1w2e3r4t5y6u7i8o9p0a1s2d", "kind": "failed",
                            "reason": f"task failed on secret-worker-9 at {SECRETS['address+dot']}. (ops {SECRETS['email']})"}]
    src = tmp_path / "d.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "saved.json"

    def run(*a):
        return subprocess.run([sys.executable, "-m", "swarmscope", *a], capture_output=True, text=True, cwd=REPO, timeout=120)

    d = run("dump", "--from", str(src), "--redact")
    e = run("explain", "--from", str(src), "--redact", "--all", "--save", str(out))
    assert d.returncode in (0, 1, 4) and e.returncode in (0, 1, 4), (d.stderr, e.stderr)
    for text in (d.stdout, out.read_text()):
        failed = json.loads(text)["failed_nodes"]
        assert failed and failed[0]["kind"] == "failed"
        blob = json.dumps(failed)
        assert "secret-worker-9" not in blob and "q1w2e3r4t5y6u7i8o9p0a1s2d" not in blob and _leaks(blob) == [], blob


@pytest.mark.parametrize("case", ["existing-0644", "symlink"])
def test_redact_map_is_always_0600_and_never_through_a_symlink(tmp_path, case):
    dump = tmp_path / "d.json"
    dump.write_text(json.dumps(make_dump([rawsnap.lab_vm()])))
    mp = tmp_path / "map.json"
    target = tmp_path / "elsewhere.json"
    if case == "existing-0644":
        mp.write_text("old")
        os.chmod(mp, 0o644)
    else:
        target.write_text("precious")
        os.symlink(target, mp)
    cp = subprocess.run([sys.executable, "-m", "swarmscope", "dump", "--from", str(dump), "--redact", "--redact-map",
                         str(mp), "-o", str(tmp_path / "out.json")], capture_output=True, text=True, cwd=REPO, timeout=120)
    if case == "existing-0644":
        assert cp.returncode in (0, 1, 4), cp.stderr
        assert stat.S_IMODE(os.lstat(mp).st_mode) == 0o600
        assert "pseudonyms back" in mp.read_text()
    else:
        assert cp.returncode == 2 and "symbolic link" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
        assert target.read_text() == "precious" and os.path.islink(mp)
