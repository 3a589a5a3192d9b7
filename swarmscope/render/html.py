"""One self-contained HTML page: summary, each service's path picture and hops, findings with
evidence, links to the raw files of a bundle (pure: text in, text out).

Readable offline: CSS is inline, there is no script and no external reference; the pictures are
the SVG Graphviz ``dot`` drew (passed in), inlined. ``report`` writes it as ``index.html`` of the
bundle (with links to the bundle's files); ``explain --format html`` prints it.
"""

from __future__ import annotations

import html
import re

from swarmscope import __version__
from swarmscope.correlate.types import Analysis, Finding, NodePath, ServicePath
from swarmscope.render.text import finding_where

__all__ = ["render_html", "svg_for_page", "page_for", "for_explain"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#c9d1dc;font-size:13px}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:12px 18px;margin:0 0 16px}
h2{font-size:18px;margin:4px 0 10px} h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{border-bottom:1px solid #e6e9ee;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
pre{white-space:pre-wrap;margin:2px 0}
.st{font-weight:600;padding:1px 6px;border-radius:3px;font-size:12px}
.st-ok,.v-ok{background:#dff3e4;color:#155d2b}
.st-missing,.st-mismatch,.st-suspect,.v-broken{background:#fbe0e0;color:#8a1414}
.st-unknown,.v-unknown{background:#eceff3;color:#4a5563} .st-n\\/a,.v-n\\/a{background:#f3f3f3;color:#777}
.v-degraded{background:#fff1d6;color:#7a4b00}
.sev-error{border-left:4px solid #c62828} .sev-warning{border-left:4px solid #e0a000} \
.sev-info{border-left:4px solid #6b7a90}
.finding{padding:6px 10px;margin:8px 0;background:#fbfbfc}
.finding .id{font-weight:700} .muted{color:#6b7a90} \
.pic{overflow:auto;border:1px solid #eef0f3;padding:6px;background:#fff}
.pic svg{max-width:100%;height:auto}
nav a{margin-right:12px} ul.files{columns:2;font-size:13px}
"""


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def svg_for_page(svg: str) -> str:
    """An SVG document as an inline element: the XML declaration and DOCTYPE dropped, no script."""
    s = re.sub(r"<\?xml[^>]*\?>", "", svg)
    s = re.sub(r"<!DOCTYPE[^>]*>", "", s)
    s = re.sub(r"<!--.*?-->", "", s, flags=re.S)
    s = re.sub(r"<script\b.*?</script>", "", s, flags=re.S | re.I)
    return s.strip()


def _verdict(np: NodePath) -> str:
    text = {"ok": "SERVES", "broken": "BROKEN", "degraded": "DEGRADED", "unknown": "UNKNOWN"}.get(
        np.verdict, np.verdict.upper()
    )
    tail = f" at {np.broken_at}" if np.broken_at and np.verdict in ("broken", "degraded") else ""
    if np.verdict == "unknown" and np.reason:
        tail = f" ({np.reason})"
    return f'<span class="st v-{_e(np.verdict)}">{_e(text)}</span>{_e(tail)}'


def _hops(np: NodePath) -> str:
    rows = []
    for h in np.hops:
        ev = "".join(f"<pre>{_e(x)}</pre>" for x in h.evidence[:8])
        more = f'<div class="muted">+{len(h.evidence) - 8} more</div>' if len(h.evidence) > 8 else ""
        fids = " ".join(f'<a href="#f-{_e(f)}"><code>{_e(f)}</code></a>' for f in h.findings)
        rows.append(
            f'<tr><td>{_e(h.label)}{" *" if h.aux else ""}</td>'
            f'<td><span class="st st-{_e(h.status)}">{_e(h.status)}</span></td>'
            f"<td>{_e(h.detail)}{('<br>' + fids) if fids else ''}</td><td>{ev}{more}</td></tr>"
        )
    out = ['<table><tr><th>hop</th><th>status</th><th>detail</th><th>evidence</th></tr>', *rows, "</table>"]
    if np.backends:
        out.append(
            "<table><tr><th>real server</th><th>weight</th><th>status</th>"
            "<th>task</th><th>node</th><th>redirect</th></tr>"
        )
        for b in np.backends:
            kind = "ok" if b.status == "ok" else "missing" if b.status in ("missing", "stale", "foreign") else "unknown"
            out.append(
                f"<tr><td class=mono>{_e(b.address)}</td><td>{_e('' if b.weight is None else b.weight)}</td>"
                f'<td><span class="st st-{kind}">'
                f"{_e(b.status)}</span></td><td>{_e(b.task or '')}</td><td>{_e(b.node or '')}</td>"
                f"<td>{_e(b.redirect or '')}</td></tr>"
            )
        out.append("</table>")
    return "\n".join(out)


def _finding(f: Finding) -> str:
    where = finding_where(f)
    expl = ""
    if f.explains:
        expl = (
            "<div>explains "
            + _e(", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in sorted(f.explained.items())))
            + "</div>"
        )
    cause = (
        f'<div class="muted">caused by <a href="#f-{_e(f.caused_by)}">{_e(f.caused_by)}</a></div>'
        if f.caused_by
        else ""
    )
    ev = "".join(f"<pre>{_e(x)}</pre>" for x in f.evidence[:12])
    return (
        f'<div class="finding sev-{_e(f.severity)}" id="f-{_e(f.id)}">'
        f'<span class="id">{_e(f.severity.upper())} {_e(f.id)}</span>'
        f"{(' [' + _e(where) + ']') if where else ''}"
        f"<div>{_e(f.title)}{(': ' + _e(f.detail)) if f.detail else ''}</div>"
        f"{expl}{cause}{('<div class=muted>evidence:</div>' + ev) if ev else ''}"
        f"<div><b>hint:</b> {_e(f.hint)}</div></div>"
    )


def render_html(analysis: Analysis, services: list[ServicePath] | None = None, *, svgs: dict[str, str] | None = None,
                svg_reason: str | None = None, files: list[tuple[str, str]] | None = None,
                service_files: dict[str, list[tuple[str, str]]] | None = None, title: str = "swarmscope",
                subtitle: str = "", problems: list[str] | None = None) -> str:
    """The page. ``svgs``: service name -> SVG text; ``files``: (relative path, what) to link;
    ``service_files``: service name -> its own files (explain text, pictures)."""
    services = analysis.services if services is None else services
    svgs = svgs or {}
    names = {s.name for s in services}
    findings = [f for f in analysis.findings if f.service is None or f.service in names]
    roots = [f for f in findings if f.caused_by is None]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>"
        f"<p>swarmscope {_e(__version__)}{(' &middot; ' + _e(subtitle)) if subtitle else ''}"
        f" &middot; nodes: {_e(', '.join(analysis.nodes) or 'none')}</p></header><main>",
    ]
    # summary
    out.append('<section id="summary"><h2>Summary</h2>')
    broken = [
        (sp, label, np)
        for sp in services
        for label, paths in _paths(sp)
        for np in paths
        if np.verdict in ("broken", "degraded")
    ]
    if roots:
        out.append(
            f"<p><b>Root causes ({len(roots)}):</b> "
            + ", ".join(f'<a href="#f-{_e(f.id)}"><code>{_e(f.id)}</code></a>' for f in roots)
            + "</p>"
        )
    else:
        out.append("<p><b>Root causes:</b> none found</p>")
    out.append("<table><tr><th>service</th><th>path</th><th>node</th><th>verdict</th></tr>")
    for sp in services:
        for label, paths in _paths(sp):
            for np in paths:
                out.append(
                    f'<tr><td><a href="#s-{_e(sp.name)}">{_e(sp.name)}</a></td><td>{_e(label)}</td>'
                    f"<td>{_e(np.node)}</td><td>{_verdict(np)}</td></tr>"
                )
    out.append("</table>")
    if broken:
        out.append(f"<p>{len(broken)} path(s) broken or degraded.</p>")
    if problems:
        out.append(
            f"<h3>What could not be read ({len(problems)})</h3><ul>"
            + "".join(f"<li>{_e(p)}</li>" for p in problems[:50])
            + "</ul>"
        )
    out.append(
        "<nav>"
        + "".join(f'<a href="#s-{_e(sp.name)}">{_e(sp.name)}</a>' for sp in services)
        + '<a href="#findings">findings</a>'
        + ('<a href="#files">files</a>' if files else "")
        + "</nav></section>"
    )
    # services
    for sp in services:
        out.append(f'<section id="s-{_e(sp.name)}" class="service"><h2>service {_e(sp.name)}</h2>')
        mode = f"{sp.mode}" + (
            f" {sum(1 for t in sp.tasks if t.state == 'running')}/{sp.replicas}" if sp.replicas is not None else ""
        )
        nets = [f"{n} (VIP {sp.vips[n]})" if sp.vips.get(n) else n for n in sp.networks]
        out.append(
            f'<p class="muted">{_e(mode)}, endpoint mode {_e(sp.endpoint_mode)}; networks: '
            f"{_e(', '.join(nets) or 'none')}</p>"
        )
        if sp.name in svgs:
            out.append(f'<div class="pic">{svg_for_page(svgs[sp.name])}</div>')
        elif svg_reason:
            out.append(f'<p class="muted">no picture: {_e(svg_reason)}</p>')
        if sp.tasks:
            out.append("<table><tr><th>task</th><th>state</th><th>node</th><th>addresses</th></tr>")
            for t in sp.tasks:
                out.append(f"<tr><td>{_e(t.name)}</td><td>{_e(t.state)}</td><td>{_e(t.node)}</td><td class=mono>"
                           f"{_e(' '.join(f'{a}({n})' for n, addrs in t.addresses.items() for a in addrs))}</td></tr>")
            out.append("</table>")
        for label, paths in _paths(sp):
            out.append(f"<h3>{_e(label)}</h3>")
            for np in paths:
                out.append(f"<p>node <b>{_e(np.node)}</b>: {_verdict(np)}</p>")
                out.append(_hops(np))
        if sp.dns:
            out.append("<h3>DNS</h3><table><tr><th>node</th><th>network</th><th>query</th><th>status</th><th>answers</th><th>problem</th></tr>")
            for c in sp.dns:
                out.append(
                    f"<tr><td>{_e(c.node)}</td><td>{_e(c.network)}</td><td>{_e(c.query)}</td>"
                    f'<td><span class="st st-{_e(c.status)}">'
                    f"{_e(c.status)}</span></td><td class=mono>{_e(' '.join(c.answers))}</td>"
                    f"<td>{_e(c.detail)}</td></tr>"
                )
            out.append("</table>")
        sf = (service_files or {}).get(sp.name)
        if sf:
            out.append("<p>" + " ".join(f'<a href="{_e(p)}">{_e(w)}</a>' for p, w in sf) + "</p>")
        out.append("</section>")
    out.append(f'<section id="findings"><h2>Findings ({len(findings)})</h2>')
    out.extend(_finding(f) for f in findings)
    if not findings:
        out.append("<p>none</p>")
    out.append("</section>")
    if files:
        out.append('<section id="files"><h2>Files</h2><ul class="files">')
        out.extend(f'<li><a href="{_e(p)}">{_e(p)}</a> <span class="muted">{_e(w)}</span></li>' for p, w in files)
        out.append("</ul></section>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _paths(sp: ServicePath) -> list[tuple[str, list[NodePath]]]:
    out = []
    for p in sp.ports:
        out.append((f"published port {p.protocol}/{p.published} -> {p.target} ({p.mode} mode)", p.nodes))
    for v in sp.vip_paths:
        out.append(
            (f"VIP {v.vip} on network {v.network}" if v.vip else f"DNS round robin on network {v.network}", v.nodes)
        )
    return out


def page_for(
    analysis: Analysis, services: list[ServicePath], node: str | None = None, source: str | None = None
) -> str:
    """``explain --format html``: the page of these services, pictures drawn by Graphviz where installed."""
    from swarmscope.render.dot import dot_svg, render_dot

    svgs: dict[str, str] = {}
    reason = None
    for sp in services:
        svg, why = dot_svg(render_dot([sp], node=node))
        if svg is None:
            reason = why
            break
        svgs[sp.name] = svg.decode(errors="replace")
    names = ", ".join(s.name for s in services)
    return render_html(analysis, services, svgs=svgs, svg_reason=reason, title=f"swarmscope explain {names}",
                       subtitle=f"from {source}" if source else "")


def for_explain(analysis: Analysis, services: list[ServicePath], view) -> str:
    """``explain --format html``."""
    return page_for(analysis, services, node=view.node, source=view.source)
