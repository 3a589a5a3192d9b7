"""The path picture as Graphviz DOT (``dot -Tsvg`` / ``-Tpng``).

Broken hops: red, dashed border, a dashed red arrow into them and the finding
id in the box; unknown ones orange and dashed; aside hops (aux) grey, dotted.
"""

from __future__ import annotations

import shutil
import subprocess

from swarmscope.correlate.types import ServicePath
from swarmscope.render.graph import Box, picture

NODE = {
    "ok": 'color="#2e7d32", fillcolor="#eaf7ea"',
    "broken": 'color="#c62828", fillcolor="#fdecea", fontcolor="#b71c1c", style="filled,dashed", penwidth=2.5',
    "doubt": 'color="#ef6c00", fillcolor="#fff4e0", style="filled,dashed", penwidth=2',
    "na": 'color="#9e9e9e", fillcolor="#f2f2f2", fontcolor="#555555"',
    "start": 'color="#1565c0", fillcolor="#e3f0fc", shape=ellipse',
}
EDGE = {
    "ok": 'color="#2e7d32"',
    "broken": 'color="#c62828", style=dashed, penwidth=2.5',
    "doubt": 'color="#ef6c00", style=dashed, penwidth=2',
    "na": 'color="#9e9e9e"',
    "aux": 'color="#9e9e9e", style=dotted, arrowhead=none',
}
CLUSTER = {
    "ok": 'color="#2e7d32"',
    "broken": 'color="#c62828"; style=dashed; penwidth=2',
    "doubt": 'color="#ef6c00"; style=dashed',
    "na": 'color="#9e9e9e"',
}


def escape(text: str) -> str:
    """Text for inside a double-quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def _label(lines: list[str]) -> str:
    return '"' + "\\n".join(escape(line) for line in lines) + '"'


def _box(b: Box, indent: str) -> str:
    shape = ", shape=note" if b.shape == "task" else ""
    return f"{indent}{b.id} [label={_label(b.lines)}, {NODE.get(b.style, NODE['na'])}{shape}];"


def render_dot(services: list[ServicePath], node: str | None = None) -> str:
    out = [
        "digraph swarmscope {",
        "  rankdir=LR;",
        '  graph [fontname="DejaVu Sans", fontsize=11, nodesep=0.25, ranksep=0.35];',
        '  node [shape=box, style=filled, fontname="DejaVu Sans", fontsize=10];',
        '  edge [fontname="DejaVu Sans", fontsize=9];',
    ]
    for si, sp in enumerate(services):
        pic = picture(sp, node, prefix=f"s{si}")
        out.append(f"  subgraph cluster_s{si} {{")
        out.append(f"    label={_label([pic.title])};")
        for b in pic.loose:
            out.append(_box(b, "    "))
        for g in pic.groups:
            out.append(f"    subgraph cluster_{g.id} {{")
            out.append(f"      label={_label([g.title])}; {CLUSTER.get(g.style, CLUSTER['na'])};")
            for b in g.boxes:
                out.append(_box(b, "      "))
            out.append("    }")
        out.append("  }")
        for a in pic.arrows:
            label = f", label={_label([a.label])}" if a.label else ""
            out.append(f"  {a.src} -> {a.dst} [{EDGE.get(a.style, EDGE['ok'])}{label}];")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_svg(dot: str, dot_bin: str | None = None, timeout: float = 30.0) -> tuple[bytes | None, str | None]:
    """(SVG bytes, None) from Graphviz ``dot``, or (None, why not)."""
    dot_bin = dot_bin or shutil.which("dot")
    if not dot_bin:
        return None, "Graphviz `dot` not installed"
    try:
        cp = subprocess.run([dot_bin, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if cp.returncode != 0:
        return None, cp.stderr.decode(errors="replace").strip()[:300]
    return cp.stdout, None


def for_explain(analysis, services: list[ServicePath], view) -> str:
    """``explain --format dot``."""
    return render_dot(services, node=view.node)
