"""The one pipeline (collect or load -> redact -> analyze -> render) and the render/ format tables (#10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import rawsnap
from _fixtures import FIXTURES

from swarmscope import pipeline, render
from swarmscope.cli import cli
from swarmscope.dump import make_dump
from swarmscope.errors import ExitStatus, UsageError
from swarmscope.render.output import write_json, write_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "lab-vm-no-dnat.json"
TRANSCRIPT = FIXTURES / "pasted" / "vm" / "a-dnat-flushed" / "support-sh.txt"
FAILED = [{"node": "gone-worker", "node_id": "q842knq4h64fq842knq4h64fq", "kind": "timeout",
           "reason": "timed out after 180s (task state running) on gone-worker"}]


@pytest.fixture
def dump_with_failed(tmp_path):
    snaps = [rawsnap.lab_vm()]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(make_dump(snaps, pipeline.analyze_snapshots(snaps), FAILED)))
    return p


def test_load_a_dump_keeps_its_failed_nodes_and_is_incomplete(dump_with_failed):
    run = pipeline.load(str(dump_with_failed))
    assert [s.node.hostname for s in run.snapshots] == ["lab-vm"]
    assert run.failed == FAILED and run.complete is False and run.analysis is None and run.redactor is None


def test_analyze_is_made_once_per_run():
    run = pipeline.load(str(EXAMPLE))
    a = pipeline.analyze(run)
    assert pipeline.analyze(run) is a is run.analysis
    assert [s.name for s in a.services] == [s.name for s in pipeline.analyze_snapshots(run.snapshots).services]


def test_load_text_says_what_it_skipped(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(TRANSCRIPT.read_text() + "\n$ frobnicate --all\nnothing swarmscope knows\n")
    said: list[str] = []
    run = pipeline.load(str(p), say=said.append)
    assert run.snapshots and run.failed == []
    assert all(not line.startswith("read ") for line in said)  # only the skipped parts are said for --from


def test_load_texts_says_what_it_read():
    said: list[str] = []
    run = pipeline.load_texts([str(TRANSCRIPT)], None, said.append)
    assert run.snapshots and said and said[0].startswith("read ")


def test_redaction_companions_need_redact():
    run = pipeline.load(str(EXAMPLE))
    for red in (pipeline.Redaction(keep_names=True), pipeline.Redaction(map_file="x"), pipeline.Redaction(seed="s")):
        with pytest.raises(UsageError, match="go with --redact"):
            pipeline.redact(run, red)
    assert pipeline.redact(run, pipeline.Redaction()) is run and run.redactor is None
    assert pipeline.redact(run, None) is run


def test_redact_replaces_snapshots_writes_the_map_and_redacts_failed_nodes(dump_with_failed, tmp_path):
    run = pipeline.load(str(dump_with_failed))
    before = json.dumps(run.snapshots[0].to_dict())
    mp = tmp_path / "map.json"
    pipeline.redact(run, pipeline.Redaction(redact=True, seed="s", map_file=str(mp)))
    assert run.redactor is not None and json.dumps(run.snapshots[0].to_dict()) != before
    assert "lab-vm" not in json.dumps(run.snapshots[0].to_dict())
    assert "gone-worker" not in json.dumps(run.failed) and run.failed[0]["kind"] == "timeout"
    assert oct(os.stat(mp).st_mode & 0o777) == "0o600" and json.loads(mp.read_text())
    # the report's form of the failed nodes (free JSON data) hides the names too
    run2 = pipeline.redact(pipeline.load(str(dump_with_failed)), pipeline.Redaction(redact=True, seed="s"),
                           failed_nodes="tree")
    assert "gone-worker" not in json.dumps(run2.failed)


def test_exit_status():
    broken = pipeline.load(str(EXAMPLE))
    assert pipeline.exit_status(broken) == ExitStatus.FINDINGS
    assert pipeline.exit_status(broken, findings=False) == ExitStatus.OK
    healthy = pipeline.load(str(REPO / "examples" / "lab-vm-healthy.json"))
    assert pipeline.exit_status(healthy) == ExitStatus.OK
    healthy.complete = False
    assert pipeline.exit_status(healthy) == ExitStatus.PARTIAL


def test_dump_document_is_the_dump_of_the_runs_analysis(dump_with_failed):
    run = pipeline.load(str(dump_with_failed))
    doc = pipeline.dump_document(run, plain=True)
    assert run.analysis is not None
    want = make_dump(run.snapshots, run.analysis, run.failed, raw=False)  # dump --json: no raw text unless --raw
    for k in ("nodes", "failed_nodes", "services", "findings"):
        assert doc[k] == want[k]


def test_dump_module_does_not_import_the_correlator():
    code = "import sys, swarmscope.dump; print('swarmscope.correlate' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_loading_a_dump_imports_neither_the_text_parsers_nor_the_collector(dump_with_failed):
    """--from of a JSON dump asks whether it is pasted text, and needs none of what reads text or a live node."""
    code = ("import sys; from swarmscope import pipeline; pipeline.load(sys.argv[1]); "
            "print(sorted(m for m in ('swarmscope.ingest.build', 'swarmscope.collect.snapshot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(dump_with_failed)], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_every_format_is_a_renderer_in_render_and_the_cli_offers_exactly_those():
    import importlib

    for table, entry in ((render.EXPLAIN_FORMATS, "for_explain"), (render.CHECK_FORMATS, "for_check")):
        for name, (module, _) in table.items():
            assert callable(getattr(importlib.import_module(f"swarmscope.render.{module}"), entry)), name
    choices = {c.name: {p.name: p for p in c.params} for c in (cli.commands["explain"], cli.commands["check"])}
    assert list(choices["explain"]["fmt"].type.choices) == list(render.EXPLAIN_FORMATS)
    assert list(choices["check"]["fmt"].type.choices) == list(render.CHECK_FORMATS)


def test_renderers_give_text_or_a_document():
    run = pipeline.load(str(EXAMPLE))
    a = pipeline.analyze(run)
    view = render.View()
    for fmt in render.EXPLAIN_FORMATS:
        if fmt == "html":
            continue  # runs Graphviz; tested with the report
        out = render.explain(fmt, a, a.services, view)
        assert isinstance(out, dict) if fmt == "json" else (isinstance(out, str) and out.endswith("\n"))
    assert render.check("json", run, view)["findings"] == a.findings
    assert render.check("text", run, view).startswith("nodes: ")


def test_output_goes_to_a_file_or_says_it_cannot(tmp_path):
    p = tmp_path / "o.txt"
    write_text("hello", str(p))
    assert p.read_text() == "hello\n"
    j = tmp_path / "o.json"
    write_json({"a": [1, 2]}, str(j))
    assert j.read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    from swarmscope.errors import SwarmscopeError

    with pytest.raises(SwarmscopeError, match="cannot write /nonexistent/x"):
        write_text("x", "/nonexistent/x")


def test_cli_holds_no_analysis_json_assembly_or_file_writing():
    src = (REPO / "swarmscope" / "cli.py").read_text()
    for needle in ("open(", "json.", "make_dump", "correlate import analyze", "write_map", "redact_snapshots",
                   "collect_swarm", "load_text(", "fails("):
        assert needle not in src, needle
    assert isinstance(cli, click.Group)
