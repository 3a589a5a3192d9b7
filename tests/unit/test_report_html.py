"""index.html of a report bundle and `explain --format html`: offline, complete, and rendered for real in
headless Chromium (no network: every request is refused)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from _fixtures import FIXTURES
from swarmscope.correlate import analyze
from swarmscope.ingest import load_text
from swarmscope.render.html import render_html
from swarmscope.report import build_report

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPT = FIXTURES / "pasted" / "vm" / "a-dnat-flushed" / "support-sh.txt"
HAVE_DOT = shutil.which("dot") is not None
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def bundle_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def bundle():
    snaps, _ = load_text([str(TRANSCRIPT)])
    analysis = analyze(snaps)
    data = build_report(snaps, analysis)
    return bundle_files(data), analysis


def offline(page: str) -> None:
    assert "<script" not in page.lower()
    # no reference that would be fetched: only the SVG/XLink namespace names carry a URL
    urls = set(re.findall(r"(?:src|href)\s*=\s*[\"'](?:https?:)?//[^\"']*", page, re.I))
    assert not urls, urls
    assert "@import" not in page and "url(" not in page


def test_index_html_holds_summary_pictures_findings_and_links(bundle):
    files, analysis = bundle
    page = files["index.html"].decode()
    offline(page)
    assert "ingress.dnat-missing" in page and 'id="f-ingress.dnat-missing"' in page
    for sp in analysis.services:
        assert f'id="s-{sp.name}"' in page
    if HAVE_DOT:
        assert page.count("<svg") == len(analysis.services)
    # every link is to a file in the bundle or to an anchor on the page
    for href in re.findall(r'href="([^"]+)"', page):
        if href.startswith("#"):
            assert f'id="{href[1:]}"' in page, href
        else:
            assert href in files, href
    assert "raw/" in page and "dump.json" in page


def test_explain_format_html_cli(tmp_path):
    p = subprocess.run([sys.executable, "-m", "swarmscope", "explain", "--format", "html", "--from", str(TRANSCRIPT), "whoami"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 1, p.stderr  # the DNAT is gone: an error finding
    offline(p.stdout)
    assert p.stdout.startswith("<!DOCTYPE html>") and "BROKEN" in p.stdout and "ingress.dnat-missing" in p.stdout
    assert 'id="s-client"' not in p.stdout  # only the service asked for


def test_page_without_pictures_says_why():
    snaps, _ = load_text([str(TRANSCRIPT)])
    page = render_html(analyze(snaps), svg_reason="Graphviz `dot` not installed")
    assert "no picture: Graphviz `dot` not installed" in page


@pytest.mark.skipif(BROWSER is None, reason="chromium not installed (apt-get install chromium; contrib/install-deps.sh)")
@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` not installed (apt-get install graphviz)")
def test_index_html_renders_in_chromium_offline(bundle, tmp_path):
    files, analysis = bundle
    for name, data in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    page = (tmp_path / "index.html").as_uri()
    with tempfile.TemporaryDirectory(prefix="swarmscope-html-") as prof:
        flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={prof}"]
        dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        png = tmp_path / "page.png"
        subprocess.run([*flags, f"--screenshot={png}", "--window-size=1280,2400", page], capture_output=True, timeout=120)
    # the browser parsed it into the page: every picture an SVG with drawn shapes, every finding there
    assert dom.count("<svg") == len(analysis.services)
    assert len(re.findall(r"<(?:polygon|ellipse|path)\b", dom)) > 20 * len(analysis.services)
    for f in analysis.findings:
        assert f'id="f-{f.id}"' in dom
    assert "BROKEN" in dom and "host DNAT :8000" in dom
    assert png.stat().st_size > 50_000  # a drawn page, not a blank one
