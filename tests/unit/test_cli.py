"""The command line, run as a user runs it (``python -m swarmscope``), on saved dumps.

Errors must be one ``swarmscope: error:`` line with the documented exit code,
never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import rawsnap

from swarmscope.dump import make_dump
from swarmscope.schema import load_schema, schema_text

REPO = Path(__file__).resolve().parents[2]


def run(*args, stdin=None, env=None):
    e = dict(os.environ)
    e.pop("SWARMSCOPE_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO,
                          input=stdin, env=e, timeout=120)


def no_traceback(p):
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr


@pytest.fixture
def healthy_dump(tmp_path):
    path = tmp_path / "healthy.json"
    path.write_text(json.dumps(make_dump([rawsnap.lab_vm()]), indent=2))
    return path


@pytest.fixture
def broken_dump(tmp_path):
    snap = rawsnap.lab_vm()
    nat = snap.host.iptables.tables["nat"].chains["DOCKER-INGRESS"]
    nat.rules = [r for r in nat.rules if r.target != "DNAT"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(make_dump([snap]), indent=2))
    return path


def test_schema_file_matches_the_code():
    assert (REPO / "swarmscope" / "schema" / "dump.schema.json").read_text() == schema_text(), \
        "run: python -m swarmscope.schema > swarmscope/schema/dump.schema.json"


@pytest.mark.parametrize("build", [lambda: [rawsnap.lab_vm()], lambda: [rawsnap.moby_25()], rawsnap.public_19])
def test_dumps_validate_against_the_schema(build):
    doc = json.loads(json.dumps(make_dump(build())))
    jsonschema.validate(doc, load_schema())


def test_schema_rejects_a_damaged_dump():
    doc = json.loads(json.dumps(make_dump([rawsnap.lab_vm()])))
    doc["nodes"][0]["namespaces"][0]["kind"] = 7
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema())


def test_explain_from_healthy_dump(healthy_dump):
    p = run("explain", "--from", str(healthy_dump), "whoami")
    no_traceback(p)
    assert p.returncode == 0, p.stderr
    assert "node lab-vm: SERVES (every hop ok)" in p.stdout
    assert "findings: none" in p.stdout
    assert max(len(l) for l in p.stdout.splitlines()) <= 80


def test_explain_from_broken_dump_exit_1(broken_dump):
    p = run("explain", "--from", str(broken_dump), "whoami")
    assert p.returncode == 1
    assert "BROKEN at host DNAT" in p.stdout and "ingress.dnat-missing" in p.stdout
    assert "\x1b[" not in p.stdout  # no colour when not a terminal


def test_explain_json(broken_dump):
    p = run("explain", "--from", str(broken_dump), "whoami", "--format", "json")
    doc = json.loads(p.stdout)
    assert [f["id"] for f in doc["findings"]] == ["ingress.dnat-missing"]
    hops = doc["services"][0]["ports"][0]["nodes"][0]["hops"]
    assert next(h for h in hops if h["key"] == "host.dnat")["status"] == "missing"


def test_explain_unknown_service_suggests_names(healthy_dump):
    p = run("explain", "--from", str(healthy_dump), "whoamii")
    no_traceback(p)
    assert p.returncode == 2
    assert p.stderr.strip() == "swarmscope: error: no service named 'whoamii' (did you mean: whoami?)"


def test_explain_node_filter(healthy_dump):
    assert run("explain", "--from", str(healthy_dump), "whoami", "--node", "lab-vm").returncode == 0
    p = run("explain", "--from", str(healthy_dump), "whoami", "--node", "nope")
    assert p.returncode == 2 and "no node named 'nope'" in p.stderr


def test_check_exit_codes(healthy_dump, broken_dump):
    assert run("check", "--from", str(healthy_dump)).returncode == 0
    p = run("check", "--from", str(broken_dump))
    assert p.returncode == 1
    assert "whoami tcp/8000 on lab-vm: broken at host DNAT" in p.stdout


def test_dump_from_dump_roundtrips(healthy_dump, tmp_path):
    out = tmp_path / "again.json"
    p = run("dump", "--json", "--raw", "--from", str(healthy_dump), "-o", str(out))  # --raw: the raw text too
    assert p.returncode == 0, p.stderr
    a, b = json.loads(healthy_dump.read_text()), json.loads(out.read_text())
    a.pop("created_at"), b.pop("created_at")
    assert a == b


def test_from_a_single_snapshot(tmp_path):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(rawsnap.lab_vm().to_dict()))
    p = run("explain", "--from", str(path), "whoami")
    assert p.returncode == 0 and "SERVES" in p.stdout


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "swarmscope: error: no such file: {path}"),
        ("{not json", "swarmscope: error: {path} is not JSON (line 1, column 2: Expecting property name enclosed in double quotes)"),
        ('{"schema": "other"}', "swarmscope: error: {path} is not a swarmscope dump or snapshot (schema 'other'; expected 'swarmscope/dump' or 'swarmscope/snapshot')"),
        ('{"schema": "swarmscope/dump", "version": 99}', "swarmscope: error: {path} is a dump of version 99; this swarmscope reads version 1 (use the swarmscope release that wrote it)"),
        ('{"schema": "swarmscope/snapshot", "version": 1, "node": {"hostname": 3}}', "swarmscope: error: {path} is damaged: $.node.hostname: expected a string, got 3"),
        ("[]", "swarmscope: error: {path} is not a swarmscope dump or snapshot (top level is not a JSON object)"),
    ],
)
def test_bad_input_files(tmp_path, content, message):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    p = run("check", "--from", str(path))
    no_traceback(p)
    assert p.returncode == 2
    assert p.stderr.startswith(message.format(path=path)), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_usage_errors():
    p = run("explain")
    assert p.returncode == 2 and "name a SERVICE" in p.stderr
    p = run("collect", "--timeout", "0")
    assert p.returncode == 2 and "--timeout" in p.stderr
    p = run("nosuchcommand")
    assert p.returncode == 2
    no_traceback(p)


def test_findings_catalogue():
    p = run("findings")
    assert p.returncode == 0
    assert "kernel.no-ipvs  (error)" in p.stdout and "ipvs.backend-stale  (error)" in p.stdout


def test_version():
    from swarmscope import __version__

    p = run("--version")
    assert p.returncode == 0 and __version__ in p.stdout


def test_collect_needs_root(tmp_path, monkeypatch, capsys):
    """As a non-root user (the uid is all that is faked: a real unprivileged run cannot import from /root)."""
    from swarmscope import cli

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exc:
        cli.main(["collect", "--netns-dir", str(tmp_path)])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert err.strip() == ("swarmscope: error: swarmscope collect must run as root: it enters the engine's network "
                           "namespaces and reads iptables (run it with sudo)")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to get past the root check")
def test_collect_without_netns_dir():
    p = run("collect", "--netns-dir", "/nonexistent/netns")
    no_traceback(p)
    assert p.returncode == 3
    assert "no network namespace directory at /nonexistent/netns" in p.stderr


def test_debug_shows_the_traceback(tmp_path):
    p = run("--debug", "check", "--from", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "Traceback" in p.stderr


def test_example_dumps_are_current():
    sys.path.insert(0, str(REPO / "examples"))
    import make_examples

    for name, doc in make_examples.examples().items():
        assert (REPO / "examples" / name).read_text() == make_examples.text(doc), \
            "run: python3 examples/make_examples.py"


def test_readme_documents_every_finding():
    p = run("findings", "--format", "markdown")
    assert p.returncode == 0
    assert p.stdout.strip() in (REPO / "README.md").read_text(), \
        "README's findings table is stale: paste `swarmscope findings --format markdown`"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "sudo contrib/run-tests.sh" in readme
    assert "bash contrib/run-tests.sh" in (REPO / ".ci" / "run").read_text()
