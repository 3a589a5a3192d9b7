"""The one pipeline: collect or load -> redact -> analyze -> render.

Every command runs it, in these steps and in this order: the CLI's commands (cli.py maps their
options onto a Source and a Redaction and hands the Run to a renderer), the report bundle
(report.py renders a Run into a tar.gz) and the standing agent (agent.py collects this node,
analyzes it and renders metrics and log lines).

- ``obtain``: snapshots from a saved file (a dump, a snapshot, a report bundle, support.sh
  transcripts or pasted output), from every node of the swarm (on a manager), or from this node;
- ``redact``: the redaction layer, after collection and before anything is computed or written
  (it also writes the owner's redaction map);
- ``analyze``: the correlator (cluster view, path maps, findings);
- the renderers are in render/; ``exit_status`` is the exit policy of the commands.

What a step has to say (progress, warnings, a node that did not answer) goes to ``say``, one
line without the ``swarmscope:`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from swarmscope.errors import ExitStatus, InputError, UsageError

if TYPE_CHECKING:
    from swarmscope.collect.snapshot import CollectOptions
    from swarmscope.correlate.types import Analysis
    from swarmscope.model import Snapshot
    from swarmscope.probe import ProbeOptions

Say = Callable[[str], None]
DEFAULT_IMAGE = "swarmscope:latest"


def quiet(msg: str) -> None:
    """A ``say`` that says nothing."""


@dataclass
class Source:
    """Where the snapshots come from: ``from_file`` (``--from``), else a live collection with
    ``collect`` options: every node of the swarm, or only this one (``local``)."""

    from_file: str | tuple[str, ...] | None = None  # one path, or several (--from given once per file)
    max_input: float | None = None  # MiB, for from_file (each file)
    collect: CollectOptions | None = None
    local: bool = True
    image: str = DEFAULT_IMAGE
    node_timeout: float = 180.0
    probe: ProbeOptions | None = None  # --probe: connections from this node after collecting (probe/)


@dataclass
class Redaction:
    """``--redact`` and its companions."""

    redact: bool = False
    keep_names: bool = False
    map_file: str | None = None
    seed: str | None = None

    def check(self) -> None:
        if not self.redact and (self.keep_names or self.map_file or self.seed):
            raise UsageError("--keep-names, --redact-map and --redact-seed go with --redact")


@dataclass
class Run:
    """What one pass of the pipeline has: the snapshots (redacted when asked), whether they are
    complete, the nodes that could not be collected, the redactor, and the analysis."""

    snapshots: list[Snapshot]
    complete: bool
    failed: list[dict] = field(default_factory=list)
    redactor: Any = None
    analysis: Analysis | None = None


# --------------------------------------------------------------------------- collect or load


def load(path: str, max_input: float | None = None, say: Say = quiet) -> Run:
    """A saved dump, snapshot or report bundle; or support.sh transcripts and pasted output
    (a file or a directory), whose skipped parts are said."""
    from swarmscope.ingest import is_text_input, load_text

    if is_text_input(path):
        snaps, rep = load_text([path], max_input)
        for line in rep.lines()[1:] if rep.skipped else []:
            say(line)
        return Run(snaps, all(s.complete for s in snaps))
    from swarmscope.dump import load_with_failed

    snaps, failed = load_with_failed(path, max_input)
    return Run(snaps, all(s.complete for s in snaps) and not failed, failed)


def load_many(paths: tuple[str, ...] | list[str], max_input: float | None = None, say: Say = quiet) -> Run:
    """Several saved files judged together (``--from A --from B``): e.g. each node's own ``collect --json``,
    or a gather's dump plus the snapshot of a node it could not reach. A node is taken once: the same node
    in two files is an error naming both (which one is meant cannot be guessed); a node a gather
    reported as failed is no longer failed when another file holds its snapshot."""
    snaps: list[Snapshot] = []
    failed: list[dict] = []
    where: dict[str, str] = {}
    complete = True
    for path in paths:
        run = load(path, max_input, say)
        for s in run.snapshots:
            key = s.node.node_id or s.node.hostname
            if key in where:
                raise InputError(f"node {s.node.hostname or key} is in both {where[key]} and {path}",
                                 "give each node's data once (--from once per node's file)")
            where[key] = path
            snaps.append(s)
        failed += run.failed
        complete = complete and run.complete
    have = {s.node.hostname for s in snaps} | {s.node.node_id for s in snaps}
    left = [f for f in failed if f.get("node") not in have and f.get("node_id") not in have]
    return Run(snaps, all(s.complete for s in snaps) and not left, left)


def load_texts(paths: list[str], max_input: float | None = None, say: Say = quiet) -> Run:
    """Snapshots from support.sh transcripts and pasted output (``import``); what was read and
    what was skipped is said."""
    from swarmscope.ingest import load_text

    snaps, rep = load_text(paths, max_input)
    for line in rep.lines():
        say(line)
    return Run(snaps, all(s.complete for s in snaps))


def _warnings(opts: CollectOptions, say: Say) -> None:
    for w in opts.warnings:
        say(f"warning: {w}")


def collect_node(opts: CollectOptions, say: Say = quiet) -> Snapshot:
    """This node's snapshot (``collect``, the agent); the collector's warnings are said."""
    from swarmscope.collect.snapshot import collect

    snap = collect(opts)
    _warnings(opts, say)
    return snap


def collect(source: Source, say: Say = quiet) -> Run:
    """Every node of the swarm (from a manager, through a global job) or only this one."""
    from swarmscope.gather.run import collect_swarm

    opts = source.collect
    assert opts is not None
    snaps, failed = collect_swarm(opts, local=source.local, image=source.image or DEFAULT_IMAGE,
                                  node_timeout=source.node_timeout or 180.0, say=say)
    _warnings(opts, say)
    for f in failed:
        say(f"warning: node {f['node']} did not answer: {f['reason']}")
    return Run(snaps, all(s.complete for s in snaps) and not failed, failed)


def obtain(source: Source, say: Say = quiet) -> Run:
    """Collect or load: ``--from FILE``, or a live collection (and with ``--probe`` its probes)."""
    if isinstance(source.from_file, tuple):
        return load_many(source.from_file, source.max_input, say)
    if source.from_file:
        return load(source.from_file, source.max_input, say)
    return probe(collect(source, say), source, say)


def probe_node(snap: Snapshot, opts: ProbeOptions, say: Say = quiet) -> None:
    """``--probe``: real connections from this node's namespaces to the swarm's own addresses, stored in
    ``snap.probes`` (swarmscope/probe/); nothing is sent without it."""
    import time

    from swarmscope.probe import probe_snapshot, summary

    t0 = time.monotonic()
    probe_snapshot(snap, opts)
    say(f"node {snap.node.hostname}: {summary(snap.probes, time.monotonic() - t0, opts.services)}")


def probe(run: Run, source: Source, say: Say = quiet) -> Run:
    """The probe step of a live collection: this node's snapshot only (the others' paths are judged by
    their rules alone)."""
    if source.probe is None or source.collect is None or not run.snapshots:
        return run
    mine = run.snapshots[0]
    if len(run.snapshots) > 1:
        from swarmscope.gather.gather import probe as engine_info

        info, _ = engine_info(source.collect.docker_host, source.collect.docker_timeout)
        mine = next((s for s in run.snapshots if info is not None and s.node.node_id == info.node_id), mine)
        say(f"probing from this node ({mine.node.hostname}) only; other nodes' paths are judged by their rules")
    probe_node(mine, source.probe, say)
    return run


# --------------------------------------------------------------------------- redact


def redact(run: Run, red: Redaction | None, failed_nodes: str = "fields") -> Run:
    """The redaction layer, between collection and correlation: the snapshots are replaced by
    their redacted form and the redactor kept (it also learns the failed nodes' names and ids).
    With ``red.map_file`` the owner's map is written (mode 600). The failed nodes are redacted
    field by field as the redaction layer declares them (``failed_nodes="fields"``), or as free
    JSON data (``"tree"``, what the report bundle has always written)."""
    if red is None:
        return run
    red.check()
    if not red.redact:
        return run
    from swarmscope.redact import redact_snapshots, write_map

    run.snapshots, run.redactor = redact_snapshots(run.snapshots, keep_names=red.keep_names, seed=red.seed,
                                                   failed_nodes=run.failed)
    if red.map_file:
        write_map(red.map_file, run.redactor)
    if run.failed:
        run.failed = run.redactor.tree(run.failed) if failed_nodes == "tree" else run.redactor.failed_nodes(run.failed)
    return run


# --------------------------------------------------------------------------- analyze


def analyze_snapshots(snaps: list[Snapshot], scope: frozenset[str] | None = None) -> Analysis:
    """The correlator on snapshots: the cluster view, the path map of every service (or, ``scope``, of
    the services of those names: ``correlate.analyze``), the findings."""
    from swarmscope.correlate import analyze as correlate

    analysis = correlate(snaps, scope)
    if any(s.probes for s in snaps):  # --probe: each probe joined to the hop it tests
        from swarmscope.correlate.probes import join_probes

        join_probes(analysis, snaps)  # a probe of a service not judged has no path here: no finding either
    return analysis


def analyze(run: Run, scope: frozenset[str] | None = None) -> Analysis:
    """The run's analysis (made once; ``scope``, the first time: judge only the services of those names)."""
    if run.analysis is None:
        run.analysis = _run_analysis(run, scope)
    return run.analysis


def _run_analysis(run: Run, scope: frozenset[str] | None) -> Analysis:
    analysis = analyze_snapshots(run.snapshots, scope)
    for f in run.failed:  # nodes that failed in the gather: unknown in the serving table, and why
        name = f.get("node") or f.get("node_id")
        if name and name not in analysis.nodes:
            analysis.uncollected[name] = "failed in the gather: " + (f.get("reason") or f.get("kind") or "?")
    return analysis


def analyzed(source: Source, red: Redaction | None = None, say: Say = quiet, service: str | None = None) -> Run:
    """The whole pipeline up to rendering: collect or load, redact (failed nodes included), analyze
    (``service``: only that service's paths are judged, ``explain SERVICE``; its name as given, before
    redaction; with ``--probe`` only its targets are probed, so the probe cap is spent on the service
    explained)."""
    if service is not None and source.probe is not None:  # probed before redaction: the name as given
        source = replace(source, probe=replace(source.probe, services=frozenset({service})))
    r = redact(obtain(source, say), red)
    scope = None
    if service is not None:
        scope = frozenset({r.redactor.name(service) if r.redactor is not None else service})
    analyze(r, scope)
    return r


# --------------------------------------------------------------------------- exit policy and documents


def exit_status(run: Run, findings: bool = True) -> int:
    """1 when (``findings``) there are findings of error severity, else 0 when the data is
    complete and 4 when it is not."""
    if findings:
        from swarmscope.correlate.findings import fails

        a = analyze(run)
        if fails(a.findings, a.services):
            return ExitStatus.FINDINGS
    return ExitStatus.OK if run.complete else ExitStatus.PARTIAL


def dump_document(run: Run, plain: bool = False, raw: bool = False) -> dict:
    """The dump of the run: its snapshots, path maps, findings and failed nodes (``plain=False``:
    dataclasses left for render.jsonout to encode). The commands' raw text (iptables-save,
    ipvsadm) is left out unless ``raw`` (``--raw``); the parsed rules are always in it."""
    from swarmscope.dump import make_dump

    analysis = analyze(run)
    if analysis.unjudged:  # explain SERVICE judged only SERVICE: a dump holds the whole swarm's judgement
        analysis = _run_analysis(run, None)
    return make_dump(run.snapshots, analysis, run.failed, plain=plain, raw=raw)
