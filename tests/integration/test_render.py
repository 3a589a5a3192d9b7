"""The Mermaid picture renders in a real headless browser; the DOT picture in Graphviz (no lab needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for p in (REPO / "tests" / "unit", REPO / "tests" / "render"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import rawsnap  # noqa: E402
import render_check  # noqa: E402

from swarmscope.correlate import analyze  # noqa: E402
from swarmscope.render.dot import render_dot  # noqa: E402
from swarmscope.render.mermaid import render_mermaid  # noqa: E402


def broken_analysis():
    snap = rawsnap.lab_vm()
    nat = snap.host.iptables.tables["nat"].chains["DOCKER-INGRESS"]
    nat.rules = [r for r in nat.rules if r.target != "DNAT"]
    return analyze([snap])


def test_mermaid_renders_in_chromium(tmp_path):
    why = render_check.unavailable()
    if why:
        pytest.skip(why)
    a = broken_analysis()
    png = tmp_path / "all.png"
    # every service at once (subgraphs per service), with a broken hop and escaped labels
    assert render_check.render(render_mermaid(a.services), png) == "RENDERED-OK"
    assert png.stat().st_size > 10_000
    # and a picture mermaid cannot parse is reported as such, so the check can fail
    assert render_check.render("flowchart LR\n  a[\"unterminated] --> b\n").startswith("RENDER-ERROR")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (apt-get install graphviz)")
def test_dot_renders_to_png(tmp_path):
    cp = subprocess.run(["dot", "-Tpng", "-o", str(tmp_path / "p.png")], input=render_dot(broken_analysis().services),
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and cp.stderr == "", cp.stderr
    assert (tmp_path / "p.png").stat().st_size > 10_000
