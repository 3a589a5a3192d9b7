"""The bug-report bundle: one tar.gz to attach to an issue, explainable offline.

Layout (every member under ``swarmscope-report/``)::

    SUMMARY.txt                 root-cause findings first, broken paths, what failed
    index.html                  the same as one page for a browser: summary, path pictures (SVG),
                                hops, findings with evidence, links to every file (offline)
    MANIFEST.json               tool and schema versions, when, nodes, failures, every file, and
                                where each source is (its raw files, or dump.json only: SOURCES)
    dump.json                   the full dump (explain/check --from read it, or the bundle)
    explain/<service>.txt       `swarmscope explain` text of every service
    pictures/<service>.mmd      Mermaid flowchart (paste into a GitHub issue in ```mermaid)
    pictures/<service>.dot      Graphviz DOT; .svg too where `dot` is installed
    raw/<node>/<namespace>/...  what the commands printed: iptables-<backend>-save.txt,
                                ipvsadm-Ln.txt / proc-net-ip_vs.txt as read; where read over
                                netlink, *.rendered.txt made from the parsed data (the
                                manifest says which); which sources, from which fields, in
                                which form: collect/host.py's SOURCES (their RawFile)

Built from snapshots that are already redacted when redaction is asked for,
so every file carries the same substitutes; the redaction map is never added.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmscope import __version__, pipeline
from swarmscope.collect.host import SOURCES
from swarmscope.correlate.types import Analysis
from swarmscope.dump import DUMP_SCHEMA, DUMP_VERSION, make_dump
from swarmscope.model import SNAPSHOT_VERSION, Namespace, Snapshot
from swarmscope.pipeline import Run
from swarmscope.render.bundle import render_index, render_summary_txt
from swarmscope.render.raw import KEEPERS, RENDERERS

REPORT_SCHEMA = "swarmscope/report"
REPORT_VERSION = 1
TOP = "swarmscope-report"


@dataclass
class Bundle:
    files: dict[str, bytes] = field(default_factory=dict)  # path under TOP -> content
    entries: list[dict] = field(default_factory=list)  # manifest "files"

    def add(self, path: str, text: str | bytes, what: str, origin: str = "made", **info) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.files[path] = data
        self.entries.append({"path": path, "what": what, "origin": origin, "bytes": len(data), **info})


def safe_name(name: str) -> str:
    """A file name from a service, node or namespace name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "_"


def field_value(snap: Snapshot, ns: Namespace | None, path: str) -> Any:
    """The value of a source's snapshot field (``RawFile.fields``) for one directory of the bundle:
    "namespaces[].<attr>" in namespace ``ns``, "host.<attr>" and "node.<attr>" in the host's (``ns`` None);
    None where the field is not this directory's."""
    head, _, rest = path.partition(".")
    if head == "namespaces[]":
        obj: Any = ns
    elif ns is None and head in ("host", "node"):
        obj = getattr(snap, head)
    else:
        return None
    for attr in rest.split("."):
        obj = getattr(obj, attr, None) if obj is not None else None
    return obj


def _raw_files(b: Bundle, snap: Snapshot) -> None:
    """Each directory's raw files, as ``SOURCES`` says: for each source the bundle keeps, in order, each value
    of its fields, by its keeper (the text as read), else its renderer (what was read without a text)."""
    node = safe_name(snap.node.hostname or snap.node.node_id or "node")
    for nsname, ns in [("host", None), *((n.name, n) for n in snap.namespaces)]:
        base = f"raw/{node}/{safe_name(nsname)}"
        info = {"node": snap.node.hostname, "namespace": nsname}
        for source in SOURCES:
            spec = source.bundle
            if spec is None:
                continue
            for path in spec.fields:
                value = field_value(snap, ns, path)
                if value is None:
                    continue
                out = KEEPERS[spec.text].make(value) if spec.text else None
                if out is None and spec.rendered:
                    out = RENDERERS[spec.rendered].make(value)
                if out is None:
                    continue
                if out.name is None:
                    b.entries.append({"path": None, "what": out.what, "origin": out.origin, "reason": out.reason,
                                      **info})
                else:
                    b.add(f"{base}/{out.name}", out.text, out.what, out.origin,
                          **({"note": out.note} if out.note is not None else {}), **info)
        if ns is not None and ns.errors:
            b.add(f"{base}/errors.txt", "\n".join(ns.errors) + "\n", "what could not be read here", "made", **info)


def _sources() -> list[dict]:
    """The manifest's "sources": for each source, the raw files the bundle keeps of it, or that it is in
    dump.json only (every source is in dump.json, under each node's snapshot)."""
    out = []
    for s in SOURCES:
        spec = s.bundle
        files: list[str] = []
        if spec is not None:
            for key, table in ((spec.text, KEEPERS), (spec.rendered, RENDERERS)):
                if key:
                    files += [f for f in table[key].files if f not in files]
        fields = ", ".join(f"nodes[].{f}" for f in s.fields)
        out.append({"source": s.name, "raw": [f"raw/<node>/<namespace>/{f}" for f in files],
                    "where": f"raw files, and dump.json: {fields}" if files else f"dump.json only: {fields}"})
    return out


# --------------------------------------------------------------------------
# the manifest


def _manifest(
    snaps: list[Snapshot], failed_nodes: list[dict], b: Bundle, created: str, redaction: dict | None, pictures: dict
) -> dict:
    nodes = []
    failures = []
    for s in snaps:
        nodes.append(
            {
                "hostname": s.node.hostname,
                "node_id": s.node.node_id,
                "role": s.node.role,
                "collected_at": s.collected_at,
                "complete": s.complete,
                "duration_ms": s.duration_ms,
                "engine_version": s.node.engine_version,
                "kernel_release": s.node.kernel_release,
                "errors": s.errors,
            }
        )
        for p in s.provenance:
            if p.status != "ok":
                failures.append({"node": s.node.hostname, "what": p.what, "namespace": p.namespace, "status": p.status,
                                 "argv": p.argv, "exit_code": p.exit_code, "reason": p.reason})
    return {
        "schema": REPORT_SCHEMA,
        "version": REPORT_VERSION,
        "tool_version": __version__,
        "dump_schema": DUMP_SCHEMA,
        "dump_version": DUMP_VERSION,
        "snapshot_version": SNAPSHOT_VERSION,
        "created_at": created,
        "redaction": redaction or {"redacted": False},
        "nodes": nodes,
        "failed_nodes": failed_nodes,
        "failures": failures,
        "commands": [
            {
                "node": s.node.hostname,
                "what": p.what,
                "namespace": p.namespace,
                "status": p.status,
                "argv": p.argv,
                "exit_code": p.exit_code,
                "duration_ms": p.duration_ms,
                "truncated": p.truncated,
            }
            for s in snaps
            for p in s.provenance
        ],
        "pictures": pictures,
        "sources": _sources(),
        "files": b.entries,
    }


# --------------------------------------------------------------------------
# the bundle


def build_report(snaps: list[Snapshot], analysis: Analysis, failed_nodes: list[dict] | None = None, *,
                 redaction: dict | None = None, progress: Callable[[str], None] = lambda msg: None,
                 svg: bool | None = None, dot_timeout: float = 30.0) -> bytes:
    """The tar.gz bytes of a report on ``snaps`` (already redacted if asked) and the pipeline's ``analysis`` of them."""
    from swarmscope.render.dot import dot_svg, render_dot
    from swarmscope.render.mermaid import render_mermaid
    from swarmscope.render.text import render_explain

    failed_nodes = failed_nodes or []
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    b = Bundle()
    b.add(
        "dump.json",
        json.dumps(make_dump(snaps, analysis, failed_nodes), indent=2) + "\n",
        "the full dump (explain/check --from)",
    )
    progress(f"explaining {len(analysis.services)} services")
    dot_bin = shutil.which("dot") if svg is not False else None
    svg_reason = None if dot_bin else "Graphviz `dot` not installed"
    pictures = {"mermaid": True, "dot": True, "svg": bool(dot_bin), "svg_reason": svg_reason}
    used: set[str] = set()
    svgs: dict[str, str] = {}
    service_files: dict[str, list[tuple[str, str]]] = {}
    for sp in analysis.services:
        name = safe_name(sp.name)
        while name in used:
            name += "_"
        used.add(name)
        b.add(
            f"explain/{name}.txt",
            render_explain(analysis, [sp], colour=False, verbose=True) + "\n",
            f"explain {sp.name}",
            service=sp.name,
        )
        b.add(f"pictures/{name}.mmd", render_mermaid([sp]), f"path picture of {sp.name} (Mermaid)", service=sp.name)
        dot = render_dot([sp])
        b.add(f"pictures/{name}.dot", dot, f"path picture of {sp.name} (Graphviz DOT)", service=sp.name)
        service_files[sp.name] = [(f"explain/{name}.txt", "explain text"), (f"pictures/{name}.mmd", "Mermaid"),
                                  (f"pictures/{name}.dot", "DOT")]
        if dot_bin:
            drawn, why = dot_svg(dot, dot_bin, dot_timeout)
            if drawn is not None:
                b.add(f"pictures/{name}.svg", drawn, f"path picture of {sp.name} (SVG, from dot)", service=sp.name)
                svgs[sp.name] = drawn.decode(errors="replace")
                service_files[sp.name].append((f"pictures/{name}.svg", "SVG"))
            else:
                b.entries.append({"path": None, "what": f"svg of {sp.name}", "origin": "not made", "reason": why})
    progress("adding raw command output")
    for s in snaps:
        _raw_files(b, s)
    b.add(
        "SUMMARY.txt",
        render_summary_txt(analysis, snaps, failed_nodes, bool(redaction and redaction.get("redacted")), created),
        "summary: root causes first",
    )
    b.add("index.html", render_index(analysis, snaps, failed_nodes, b.entries, created, svgs, service_files,
                                     svg_reason, bool(redaction and redaction.get("redacted"))),
          "the report as one page for a browser (offline: inline CSS and SVG, no script)")
    manifest = _manifest(snaps, failed_nodes, b, created, redaction, pictures)
    data = json.dumps(manifest, indent=2) + "\n"
    files = {
        "SUMMARY.txt": b.files.pop("SUMMARY.txt"),
        "index.html": b.files.pop("index.html"),
        "MANIFEST.json": data.encode(),
        **b.files,
    }
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(f"{TOP}/{path}")
            info.size = len(content)
            info.mtime = int(now)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def run_report(run: Run, output: str, *, keep_names: bool = False, svg: bool = True,
               say: Callable[[str], None] = lambda msg: None) -> Analysis:
    """Analyze ``run`` (collected or loaded, and redacted when ``run.redactor`` is set), render its
    bundle and write it to ``output`` ('-': standard output)."""
    from swarmscope.render.output import write_bytes

    for s in run.snapshots:
        prov = s.provenance
        bad = [p for p in prov if p.status != "ok"]
        say(f"node {s.node.hostname}: {len(s.namespaces)} namespaces, {len(prov)} commands and calls"
            + (f", {len(bad)} not ok" if bad else "") + ("" if s.complete else " (incomplete)"))
    redaction: dict[str, Any] = {"redacted": run.redactor is not None}
    if run.redactor is not None:
        redaction.update(
            {
                "keep_names": keep_names,
                "what": "IPv4/IPv6 addresses (prefix-preserving, private stays private, "
                "public -> 240.0.0.0/4 and 2001:db8::/32), "
                "MAC addresses, swarm/container/network/endpoint ids (prefix-preserving), node hostnames, "
                + (
                    "container names, image references, tokens in labels"
                    if keep_names
                    else "service, network, stack and container names, image references, tokens in labels"
                ),
                "kept": "127.0.0.0/8 (the resolver 127.0.0.11), 0.0.0.0/0, 255.255.255.255, netmasks, multicast; "
                "Docker's own names (ingress, docker_gwbridge, ingress_sbox); "
                "ports, marks, protocols, states, rule structure, versions, times",
                "map": "not in this bundle (--redact-map FILE keeps it for the owner)",
            }
        )
    say("correlating")
    analysis = pipeline.analyze(run)
    data = build_report(run.snapshots, analysis, run.failed, redaction=redaction, progress=say, svg=svg)
    write_bytes(data, output)
    roots = [f.id for f in analysis.findings if f.caused_by is None]
    say(
        f"wrote {output} ({len(data) // 1024 + 1} KiB)"
        + (f"; root causes: {', '.join(roots)}" if roots else "; no findings")
    )
    return analysis
