"""Render a Mermaid picture in a real headless browser (Debian's chromium + mermaid from npm).

The page is a local file; it loads tests/render/node_modules/mermaid/dist/mermaid.min.js
(pinned in package.json, installed by contrib/install-deps.sh), calls
mermaid.render and writes RENDERED-OK or RENDER-ERROR: ... into the page,
which chromium prints with --dump-dom; a second run takes a screenshot.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MERMAID_JS = HERE / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=15000"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>PENDING</title>
<style>body {{ margin: 8px; background: #fff; font-family: 'DejaVu Sans', sans-serif; }}</style>
<script src="{js}"></script></head>
<body><div id="out"></div><pre id="status">PENDING</pre>
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict", flowchart: {{ htmlLabels: true }} }});
mermaid.parse({src}).then(function () {{
  return mermaid.render("picture", {src});
}}).then(function (r) {{
  if (/Syntax error in text|class="error-icon"/.test(r.svg)) {{ throw new Error("mermaid drew its error picture"); }}
  document.getElementById("out").innerHTML = r.svg;
  document.getElementById("status").textContent = "RENDERED-OK";
  document.getElementById("status").style.display = "none";
  document.title = "RENDERED-OK";
}}).catch(function (e) {{
  document.getElementById("status").textContent = "RENDER-ERROR: " + (e && e.message ? e.message : e);
}});
</script></body></html>
"""


def unavailable() -> str | None:
    """Why the check cannot run here, or None."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium not installed (apt-get install chromium; contrib/install-deps.sh)"
    if not MERMAID_JS.is_file():
        return f"{MERMAID_JS} missing (npm ci --prefix tests/render; contrib/install-deps.sh)"
    return None


def render(source: str, png: Path | None = None, size: str = "1800,900", timeout: float = 120) -> str:
    """Render ``source``; return the status text the page set (RENDERED-OK on success)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory(prefix="swarmscope-render-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(PAGE.format(js=MERMAID_JS.as_uri(), src=json.dumps(source)))
        common = [browser, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}"]
        cp = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=timeout)
        m = re.search(r'<pre id="status"[^>]*>([^<]*)</pre>', cp.stdout)
        if m:
            status = html.unescape(m.group(1))
        else:
            status = f"no page (chromium exit {cp.returncode}): {cp.stderr[-600:]}"
        if png is not None and status == "RENDERED-OK":
            subprocess.run([*common, f"--screenshot={png}", f"--window-size={size}", page.as_uri()],
                           capture_output=True, text=True, timeout=timeout)
        return status
