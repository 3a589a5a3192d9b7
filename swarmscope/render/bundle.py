"""The report bundle's own pages (pure): SUMMARY.txt (root causes first) and index.html (the
page render/html.py draws, with links to every file of the bundle)."""

from __future__ import annotations

from swarmscope import __version__
from swarmscope.correlate.types import Analysis
from swarmscope.model import Snapshot
from swarmscope.render.text import finding_where, render_check

REDACTED_NOTE = " (redacted: addresses, names and ids are pseudonyms)"


def problems(snaps: list[Snapshot], failed_nodes: list[dict], per_node: bool = False) -> list[str]:
    """What could not be collected: snapshot errors, steps not ok, nodes that did not answer.
    ``per_node``: each snapshot's errors and steps together (else all errors, then all steps)."""
    if per_node:
        out = []
        for s in snaps:
            out += _errors(s) + _steps(s)
    else:
        out = [e for s in snaps for e in _errors(s)] + [p for s in snaps for p in _steps(s)]
    out += [f"node {fn.get('node') or fn.get('name') or '?'} not collected: {fn.get('reason') or fn.get('error') or fn}"
            for fn in failed_nodes]
    return out


def _errors(s: Snapshot) -> list[str]:
    return [f"{s.node.hostname}: {e}" for e in s.errors]


def _steps(s: Snapshot) -> list[str]:
    return [f"{s.node.hostname}: {p.what} in {p.namespace}: {p.status}" + (f" ({p.reason})" if p.reason else "")
            for p in s.provenance if p.status != "ok"]


def render_summary_txt(
    analysis: Analysis, snaps: list[Snapshot], failed_nodes: list[dict], redacted: bool, created: str
) -> str:
    """SUMMARY.txt: root causes first, then `check`'s text, then what could not be collected."""
    out = [f"swarmscope {__version__} report, {created}" + (REDACTED_NOTE if redacted else "")]
    out.append(
        f"nodes: {', '.join(analysis.nodes) or 'none'}" + (f"; failed: {len(failed_nodes)}" if failed_nodes else "")
    )
    out.append("")
    roots = [f for f in analysis.findings if f.caused_by is None]
    if roots:
        out.append(f"ROOT CAUSES ({len(roots)}):")
        for f in roots:
            where = finding_where(f)
            out.append(
                f"  {f.severity.upper()} {f.id}"
                + (f" [{where}]" if where else "")
                + (f" (explains {f.explains} more)" if f.explains else "")
            )
            out.append(f"    {f.title}" + (f": {f.detail}" if f.detail else ""))
            out.append(f"    hint: {f.hint}")
    else:
        out.append("ROOT CAUSES: none found")
    out.append("")
    out.append(render_check(analysis, colour=False))
    found = problems(snaps, failed_nodes, per_node=True)
    out.append("")
    out.append(f"COLLECTION PROBLEMS ({len(found)}):" if found else "COLLECTION PROBLEMS: none")
    out.extend(f"  {p}" for p in found[:50])
    if len(found) > 50:
        out.append(f"  (+{len(found) - 50} more in MANIFEST.json)")
    out.append("")
    out.append("Explain offline: swarmscope explain --from THIS-FILE.tar.gz SERVICE   (or check --from)")
    return "\n".join(out) + "\n"


def render_index(analysis: Analysis, snaps: list[Snapshot], failed_nodes: list[dict], entries: list[dict], created: str,
                 svgs: dict[str, str], service_files: dict[str, list[tuple[str, str]]], svg_reason: str | None,
                 redacted: bool) -> str:
    """index.html: the page render/html.py draws, with links to every file of the bundle (``entries``:
    the manifest's file list)."""
    from swarmscope.render.html import render_html

    files = [
        ("SUMMARY.txt", "summary: root causes first"),
        ("MANIFEST.json", "versions, nodes, every command, every file"),
    ]
    files += [
        (e["path"], e["what"]) for e in entries if e.get("path") and e["path"] not in ("SUMMARY.txt", "index.html")
    ]
    sub = f"report, {created}" + (REDACTED_NOTE if redacted else "")
    return render_html(analysis, svgs=svgs, svg_reason=svg_reason, files=files, service_files=service_files,
                       title="swarmscope report", subtitle=sub, problems=problems(snaps, failed_nodes))
