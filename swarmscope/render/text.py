"""Text rendering of the path map and findings, for an 80-column terminal."""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Iterator

from swarmscope.correlate.probes import PROBE_EVIDENCE
from swarmscope.correlate.serving import PortServing, groups, serving_table
from swarmscope.correlate.types import Analysis, Finding, NodePath, ServicePath

WIDTH = 80
_COLOURS = {
    "ok": "green",
    "missing": "red",
    "mismatch": "red",
    "suspect": "red",
    "broken": "red",
    "degraded": "yellow",
    "stale": "red",
    "foreign": "red",
    "weight0": "yellow",
    "lingering": "yellow",
    "unknown": "yellow",
    "error": "red",
    "warning": "yellow",
    "info": "cyan",
}


class Style:
    def __init__(self, colour: bool):
        self.colour = colour

    def __call__(self, text: str, key: str | None = None, bold: bool = False) -> str:
        if not self.colour:
            return text
        import click

        return click.style(text, fg=_COLOURS.get(key or text), bold=bold)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WRAPPERS: dict[int, textwrap.TextWrapper] = {}


def _visible(s: str) -> int:
    return len(_ANSI.sub("", s)) if "\x1b" in s else len(s)


def _cell_lines(v, width: int | None) -> tuple[str, ...]:
    """A cell as its lines: stripped, and wrapped to ``width`` (textwrap's defaults) where the column has one."""
    return _text_lines("" if v is None else str(v), width)


@functools.lru_cache(maxsize=1024)
def _text_lines(s: str, width: int | None) -> tuple[str, ...]:
    """``_cell_lines`` of a text, made once per text and width: most cells of ``explain --all`` repeat (a hop
    shared by every path of a node, a port's labels on every node, "ok"); wrapping them again was half of
    the text's time. The repeats are close together (one service's node paths): 1,024 texts are as fast as
    65,536 at 50 nodes, and hold 60 MiB less."""
    if width is not None and (len(s) > width or "\n" in s):
        w = _WRAPPERS.get(width)
        if w is None:
            w = _WRAPPERS[width] = textwrap.TextWrapper(width=width)
        s = "\n".join("\n".join(w.wrap(line)) for line in s.splitlines() if line.strip())
    return tuple(s.strip().split("\n"))


def table(
    rows: list[list], headers: list[str] | None = None, maxcolwidths: list[int | None] | None = None
) -> list[str]:
    """Rows as text columns: left-aligned, two spaces apart, under a header and a dashed rule when
    ``headers`` are given; a cell longer than its column's ``maxcolwidths`` entry is wrapped onto
    more lines (the other cells of the row stay on its first line). The layout of tabulate's
    "simple" (and, without headers, "plain") format with disable_numparse, at a fraction of its cost
    (a row whose every cell is empty stays an empty line, where tabulate may drop it; no table here has one).
    """
    ncols = max([len(r) for r in rows] + [len(headers or [])])
    widths = list(maxcolwidths or []) + [None] * ncols
    cells = [[_cell_lines(r[i] if i < len(r) else "", widths[i]) for i in range(ncols)] for r in rows]
    coloured = False  # whether any cell holds a colour's escape (else a text's width is its length)
    colw = []
    for i in range(ncols):
        w = len(headers[i]) + 2 if headers else 0
        for row in cells:
            for x in row[i]:
                if "\x1b" in x:
                    coloured = True
                    n = _visible(x)
                else:
                    n = len(x)
                if n > w:
                    w = n
        colw.append(w)

    if coloured:
        def line(parts) -> str:
            return "  ".join(p + " " * (colw[i] - _visible(p)) for i, p in enumerate(parts)).rstrip()
    else:
        def line(parts) -> str:
            return "  ".join([p.ljust(w) for p, w in zip(parts, colw, strict=False)]).rstrip()

    out = []
    if headers:
        out.append(line(list(headers)))
        out.append("  ".join("-" * w for w in colw))
    for row in cells:
        height = max(len(c) for c in row)
        if height == 1:
            out.append(line([c[0] for c in row]))
            continue
        for k in range(height):
            out.append(line([c[k] if k < len(c) else "" for c in row]))
    return out


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    ) or [indent]


def _verdict_line(np: NodePath, st: Style) -> str:
    if np.verdict == "ok":
        return f"node {np.node}: {st('SERVES', 'ok', True)} (every hop ok)"
    if np.verdict == "broken":
        return f"node {np.node}: {st('BROKEN', 'broken', True)} at {np.broken_at}"
    if np.verdict == "degraded":
        return f"node {np.node}: {st('DEGRADED', 'degraded', True)} (serves) at {np.broken_at}"
    if np.verdict == "n/a":
        return f"node {np.node}: n/a ({np.reason})"
    return f"node {np.node}: {st('UNKNOWN', 'unknown', True)} ({np.reason})"


def _hops_table(np: NodePath, st: Style, verbose: bool) -> list[str]:
    rows = []
    for h in np.hops:
        label = h.label + (" *" if h.aux else "")
        detail = h.detail + (f" (cause: {h.root_cause})" if h.root_cause else "")
        rows.append([label, st(h.status), detail])
    out = ["  " + line for line in table(rows, ["hop", "status", "detail"], [30, None, 34])]
    for h in np.hops:
        # evidence of broken hops, except those a root cause explains (its own hop shows it); all with -v
        if not (verbose or (h.status in ("missing", "mismatch") and not h.root_cause)):
            continue
        evidence = [e for e in h.evidence if not e.startswith(PROBE_EVIDENCE)]  # --probe lines: below
        if evidence:
            out.append(f"  evidence for {h.label}:")
            for e in evidence[:8 if not verbose else None]:
                out.extend(_wrap(e, WIDTH - 2, "    "))
    return out + _probes_lines(np)


def _probes_lines(np: NodePath) -> list[str]:
    """--probe: each hop's probes (correlate/probes.py adds them to its evidence), under the hop's label."""
    out = []
    for h in np.hops:
        lines = [e[len(PROBE_EVIDENCE):] for e in h.evidence if e.startswith(PROBE_EVIDENCE)]
        if lines:
            out.append(f"  probes of {h.label}:")
            for e in lines:
                out.extend(_wrap(e, WIDTH - 2, "    "))
    return out


def _backends_table(np: NodePath, st: Style, show_redirect: bool, seen: dict | None = None) -> list[str]:
    """``seen``: the tables already made for a service, by Backend list (the list is shared by every node
    whose real servers are judged alike, and never changed: one table for all of them)."""
    if not np.backends:
        return []
    if seen is not None:
        key = (id(np.backends), show_redirect)
        hit = seen.get(key)
        if hit is None:
            hit = seen[key] = (np.backends, _backends_table(np, st, show_redirect))  # the list kept: its id its own
        return hit[1]
    rows = []
    for b in np.backends:
        row = [b.address, "" if b.weight is None else b.weight, st(b.status), b.task or "-", b.node or "-"]
        if show_redirect:
            row.append(st(b.redirect) if b.redirect else "-")
        rows.append(row)
    headers = ["real server", "weight", "status", "task", "node"] + (["redirect"] if show_redirect else [])
    return ["  " + line for line in table(rows, headers)]


def render_serving(table: list[PortServing], st: Style, node: str | None = None) -> list[str]:
    """Which nodes answer each published port, for an external load balancer: per port a count, then one
    line of node names per group of nodes that agree (same answer, same first broken hop), and under a
    no or unknown (or a degraded yes) the hop's key and detail. 20 nodes that agree are one line; each
    distinct cause keeps a line of its own, so nothing is summed away."""
    if not table:
        return []
    out = ["  serving (which nodes answer each published port):"]
    for ps in table:
        rows = [n for n in ps.nodes if not node or n.node == node]
        ps_view = PortServing(ps.service, ps.protocol, ps.port, ps.target, ps.mode, rows)
        counts = ", ".join(f"{ps_view.count(a)} {a}" for a in ("yes", "no", "unknown"))
        mode = "host mode: only nodes running a task" if ps.mode == "host" else "ingress"
        out.append(f"    {ps.protocol}/{ps.port} ({mode}): {counts}")
        for serves, hop, detail, names in groups(ps_view):
            head = f"      {st(serves.ljust(8), {'yes': 'ok', 'no': 'broken'}.get(serves, 'unknown'))} "
            lines = textwrap.wrap(" ".join(names), WIDTH - 15, break_on_hyphens=False) or [""]
            out.append(head + lines[0])
            out.extend(" " * 15 + x for x in lines[1:])
            if hop or detail:
                why = f"{'degraded at' if serves == 'yes' else 'at'} {hop}: {detail}" if hop else detail
                out.extend(_wrap(why, WIDTH, " " * 15))
    return out


def render_service(
    sp: ServicePath,
    st: Style,
    node: str | None = None,
    verbose: bool = False,
    serving: list[PortServing] | None = None,
) -> list[str]:
    out: list[str] = []
    rep = f"{sp.mode}" + (
        f" {len([t for t in sp.tasks if t.state == 'running'])}/{sp.replicas}" if sp.replicas is not None else ""
    )
    out.append(st(f"service {sp.name}", bold=True) + f"  ({rep}, endpoint mode {sp.endpoint_mode})")
    ports = ", ".join(f"{p.protocol} {p.published} -> {p.target} ({p.mode})" for p in sp.ports) or "none"
    out.extend(_wrap(f"ports:    {ports}", WIDTH, "  "))
    nets = ", ".join(f"{n}" + (f" (VIP {sp.vips[n]})" if sp.vips.get(n) else "") for n in sp.networks) or "none"
    out.extend(_wrap(f"networks: {nets}", WIDTH, "  "))
    if sp.tasks:
        rows = [
            [t.name, t.state or "?", t.node, " ".join(f"{a}({n})" for n, addrs in t.addresses.items() for a in addrs)]
            for t in sp.tasks
        ]
        out.append("  tasks:")
        out.extend("    " + line for line in table(rows, None, [None, None, None, 44]))
    else:
        out.append("  tasks:    none running")
    out.extend(render_serving(serving or [], st, node))
    seen: dict = {}  # _backends_table's

    for pp in sp.ports:
        out.append("")
        out.append(st(f"published port {pp.protocol}/{pp.published} -> {pp.target} ({pp.mode} mode)", bold=True))
        for np in pp.nodes:
            if node and np.node != node:
                continue
            out.append("  " + _verdict_line(np, st))
            out.extend(_hops_table(np, st, verbose))
            out.extend(_backends_table(np, st, pp.mode == "ingress", seen))
    for vp in sp.vip_paths:
        out.append("")
        if vp.vip:
            out.append(st(f"VIP {vp.vip} on network {vp.network}", bold=True))
        else:
            out.append(st(f"DNS round robin on network {vp.network} (no VIP)", bold=True))
        if not vp.nodes:
            out.append("  no node with this network in the data")
        for np in vp.nodes:
            if node and np.node != node:
                continue
            out.append("  " + _verdict_line(np, st))
            out.extend(_hops_table(np, st, verbose))
            out.extend(_backends_table(np, st, False, seen))
    checks = [c for c in sp.dns if not node or c.node == node]
    if checks:
        out.append("")
        out.append(st("DNS tasks." + sp.name, bold=True))
        rows = [
            [
                c.node,
                c.network,
                st(c.status),
                " ".join(c.answers) or c.detail or "-",
                c.detail if c.status != "ok" else "",
            ]
            for c in checks
        ]
        out.extend(
            "  " + line
            for line in table(rows, ["node", "network", "status", "answers", "problem"], [16, 12, None, 24, 18])
        )
    return out


def finding_where(f: Finding) -> str:
    """Where a finding is: ``node a, b; service s; network n`` (the parts it has; empty when none).
    The one form of it in text, the bundle's summary and the HTML page."""
    where = []
    if f.nodes:
        where.append("node " + ", ".join(f.nodes))
    if f.service:
        where.append(f"service {f.service}")
    if f.network:
        where.append(f"network {f.network}")
    return "; ".join(where)


def finding_log_line(f: Finding) -> str:
    """A finding as one log line of the standing agent: ``id [severity] service=s network=n nodes=a,b title``."""
    where = " ".join(
        x
        for x in (
            f"service={f.service}" if f.service else "",
            f"network={f.network}" if f.network else "",
            f"nodes={','.join(f.nodes)}" if f.nodes else "",
        )
        if x
    )
    return f"{f.id} [{f.severity}] {where} {f.title}".replace("  ", " ")


def render_findings(findings: list[Finding], st: Style, verbose: bool = False) -> list[str]:
    roots = [f for f in findings if f.caused_by is None]
    if not roots:
        return ["findings: none"]
    out = [st(f"findings ({len(roots)}, root causes first):", bold=True)]
    for f in roots:
        where = finding_where(f)
        head = f"{st(f.severity.upper(), f.severity, True)} {f.id}"
        out.append(f"  {head} [{where}]" if where else f"  {head}")
        out.extend(_wrap(f.title + (f": {f.detail}" if f.detail else ""), WIDTH - 4, "    "))
        if f.explains:
            parts = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(f.explained.items()))
            out.extend(_wrap(f"explains {f.explains} more: {parts}", WIDTH - 4, "    "))
        for e in f.evidence[: None if verbose else 3]:
            out.extend(_wrap(f"evidence: {e}", WIDTH - 4, "    "))
        if len(f.evidence) > 3 and not verbose:
            out.append(f"    (+{len(f.evidence) - 3} more evidence lines: -v or --format json)")
        out.extend(_wrap(f"hint: {f.hint}", WIDTH - 4, "    "))
    return out


def render_explain(
    analysis: Analysis,
    services: list[ServicePath],
    colour: bool = False,
    node: str | None = None,
    verbose: bool = False,
) -> str:
    return "".join(explain_chunks(analysis, services, colour, node, verbose))


def explain_chunks(
    analysis: Analysis,
    services: list[ServicePath],
    colour: bool = False,
    node: str | None = None,
    verbose: bool = False,
) -> Iterator[str]:
    """``render_explain``'s text in pieces, a service at a time: ``explain --all`` of a 100-node swarm is
    a few hundred MB of text, written as it is made instead of held whole (and its lines) until the end."""
    st = Style(colour)
    src = (
        f"; services and tasks from {analysis.api_source}"
        if analysis.api_source
        else "; no manager in the data: tasks rebuilt from the nodes' containers"
    )
    yield f"nodes: {', '.join(analysis.nodes)}{src}"
    for sp in services:
        yield "\n\n" + "\n".join(render_service(sp, st, node, verbose, serving_table(analysis, [sp])))
    names = {s.name for s in services}
    relevant = [f for f in analysis.findings if f.service in names or f.service is None]
    if node:
        relevant = [f for f in relevant if not f.nodes or node in f.nodes]
    yield "\n\n" + "\n".join(render_findings(relevant, st, verbose))


def render_check(analysis: Analysis, colour: bool = False, verbose: bool = False) -> str:
    st = Style(colour)
    out = [f"nodes: {', '.join(analysis.nodes)}; services: {len(analysis.services)}"]
    broken = []
    for sp in analysis.services:
        for pp in sp.ports:
            for np in pp.nodes:
                if np.verdict in ("broken", "degraded"):
                    broken.append(
                        f"{sp.name} {pp.protocol}/{pp.published} on {np.node}: {np.verdict} at {np.broken_at}"
                    )
        for vp in sp.vip_paths:
            for np in vp.nodes:
                if np.verdict in ("broken", "degraded"):
                    broken.append(f"{sp.name} on {vp.network} via node {np.node}: {np.verdict} at {np.broken_at}")
    if broken:
        out.append(f"broken or degraded paths: {len(broken)}")
        out.extend(f"  {b}" for b in broken[:20])
        if len(broken) > 20:
            out.append(f"  (+{len(broken) - 20} more)")
    out.extend(render_findings(analysis.findings, st, verbose))
    return "\n".join(out)


def render_catalogue(entries: list, fmt: str = "text") -> str:
    """``swarmscope findings``: every finding id with its severity and hint, as text or a Markdown table."""
    out = []
    if fmt == "markdown":
        out.append("| id | severity | meaning | hint |")
        out.append("| --- | --- | --- | --- |")
        for c in entries:
            cell = lambda t: t.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
            out.append(f"| `{c.id}` | {c.severity} | {cell(c.title)} | {cell(c.hint)} |")
        return "\n".join(out)
    for c in entries:
        out.append(f"{c.id}  ({c.severity})")
        out.append(f"    {c.title}")
        out.append(f"    hint: {c.hint}")
    return "\n".join(out)


def for_explain(analysis: Analysis, services: list[ServicePath], view) -> str:
    """``explain --format text``."""
    return "".join(stream_explain(analysis, services, view))


def stream_explain(analysis: Analysis, services: list[ServicePath], view) -> Iterator[str]:
    """``explain --format text`` in pieces, as the CLI writes it (``for_explain`` is their whole)."""
    yield from explain_chunks(analysis, services, colour=view.colour, node=view.node, verbose=view.verbose)
    yield "\n"


def for_check(run, view) -> str:
    """``check --format text``."""
    return render_check(run.analysis, colour=view.colour, verbose=view.verbose) + "\n"
