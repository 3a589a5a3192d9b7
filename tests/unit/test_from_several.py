"""`--from` given once per file: each node's own snapshot judged together, as one gathered dump is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from swarmscope.cli import cli

REPO = Path(__file__).resolve().parents[2]
DUMP = Path(__file__).resolve().parents[1] / "fixtures" / "lab-dumps" / "three-node-settle-boundary.json"


def _split(tmp_path: Path) -> list[str]:
    """The gathered three-node dump as three files, one node's snapshot each (what `collect --json` writes)."""
    doc = json.loads(DUMP.read_text())
    out = []
    for snap in doc["nodes"]:
        p = tmp_path / f"{snap['node']['hostname']}.json"
        p.write_text(json.dumps(snap))
        out.append(str(p))
    return out


def _check(*args: str):
    r = CliRunner().invoke(cli, ["check", "--format", "json", *args])
    return r, (json.loads(r.output) if r.output.startswith("{") else None)


def test_three_node_files_judged_as_the_gathered_dump(tmp_path):
    parts = _split(tmp_path)
    whole, a = _check("--from", str(DUMP))
    several, b = _check(*[x for p in parts for x in ("--from", p)])
    assert several.exit_code == whole.exit_code
    assert sorted(b["nodes"]) == sorted(a["nodes"]) and len(b["nodes"]) == 3
    key = lambda f: (f["id"], tuple(sorted(f.get("nodes") or [])), f.get("service"))  # noqa: E731
    assert sorted(map(key, b["findings"])) == sorted(map(key, a["findings"]))
    # one node alone is judged as that node alone: fewer nodes, no crash
    alone, c = _check("--from", parts[1])
    assert c["nodes"] == ["pytest-multi-worker1"]


def test_the_same_node_twice_is_a_clear_error(tmp_path):
    parts = _split(tmp_path)
    p = subprocess.run([sys.executable, "-m", "swarmscope", "check", "--from", parts[0], "--from", parts[1],
                        "--from", parts[0]], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "pytest-multi-manager" in p.stderr and "is in both" in p.stderr and "Traceback" not in p.stderr


def test_explain_names_every_file_it_read(tmp_path):
    parts = _split(tmp_path)
    r = CliRunner().invoke(cli, ["explain", "whoami", *[x for p in parts for x in ("--from", p)]])
    assert r.exit_code in (0, 1), r.output
    assert "pytest-multi-worker2" in r.output
