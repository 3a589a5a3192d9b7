"""The command line: a thin click layer over the pipeline (pipeline.py: collect or load ->
redact -> analyze) and the renderers (render/).

It maps options onto the pipeline's Source and Redaction and onto a renderer, and errors onto
one ``swarmscope: error: ...`` line and a documented exit code (see errors.ExitStatus); a
traceback is shown only with ``--debug``. It computes nothing, assembles no document and writes
no file itself.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from swarmscope.errors import ExitStatus, SwarmscopeError, UsageError
from swarmscope.render import CHECK_FORMATS, EXPLAIN_FORMATS, formats_help

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _debug(ctx: click.Context | None) -> bool:
    while ctx is not None:
        if ctx.obj and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return bool(os.environ.get("SWARMSCOPE_DEBUG"))


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses nan and infinities (nan passes every comparison)."""

    def convert(self, value, param, ctx):
        import math

        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number of seconds ({self._describe_range()}).", param, ctx)
        return rv


def collect_options(fn):
    """Options shared by every command that collects from a live node."""
    opts = [
        click.option("--netns-dir", default="/var/run/docker/netns", show_default=True,
                     help="The engine's netns directory (dockerd --exec-root DIR: DIR/netns)."),
        click.option("-H", "--host", "docker_host", default=None, metavar="URL",
                     help="Docker API to talk to (default: DOCKER_HOST, else the local socket)."),
        click.option("--timeout", type=FiniteRange(0.001, 600), default=5.0, show_default=True,
                     help="Seconds allowed for each command run during collection."),
        click.option("--docker-timeout", type=FiniteRange(0.1, 600), default=10.0, show_default=True,
                     help="Seconds allowed for each Docker API call."),
        click.option("--dns-timeout", type=FiniteRange(0.1, 60), default=2.0, show_default=True,
                     help="Seconds allowed for each DNS question to 127.0.0.11."),
        click.option("--no-dns", is_flag=True, help="Do not ask the embedded DNS resolver."),
        click.option("--workers", type=click.IntRange(1, 64), default=None,
                     help="Namespaces collected at once (default: this machine's CPUs, 2 to 8)."),
        click.option("--dockerd-log", "dockerd_log", default=None, metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="dockerd's log file to search for known mesh errors (only its last 256 KiB is read; "
                          "default: the journal of docker.service, last 2 hours, where there is one)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def cluster_options(fn):
    """Options of the commands that gather every node of the swarm from a manager."""
    opts = [
        click.option("--local", is_flag=True,
                     help="Only the node this runs on (default on a worker; on a manager every node is gathered)."),
        click.option("--image", default=lambda: os.environ.get("SWARMSCOPE_IMAGE") or "swarmscope:latest",
                     show_default="SWARMSCOPE_IMAGE or swarmscope:latest", metavar="IMAGE",
                     help="The swarmscope image the other nodes run (it must be on every node or in a registry)."),
        click.option("--node-timeout", type=FiniteRange(5, 3600), default=180.0, show_default=True,
                     help="Seconds each node has to answer when gathering the swarm."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def probe_options(fn):
    """--probe and its bounds (collect, explain, check, dump): opt-in connections from this node."""
    opts = [
        click.option("--probe", "probe", is_flag=True,
                     help="Also prove each hop with real TCP connections from this node's namespaces, to the "
                          "swarm's own addresses only (published ports, VIPs, tasks); nothing is sent without it."),
        click.option("--probe-http", "probe_http", is_flag=True,
                     help="With --probe: send GET / and keep the HTTP status line (default: connect and close)."),
        click.option("--probe-timeout", "probe_timeout", type=FiniteRange(0.05, 10), default=1.0, show_default=True,
                     help="With --probe: seconds each connection may take."),
        click.option("--probe-max", "probe_max", type=click.IntRange(1, 1000), default=64, show_default=True,
                     help="With --probe: at most this many connections per run (20 per second at most, 30 s in all)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _probe(kw: dict):
    """The pipeline's ProbeOptions from --probe and its bounds (taken out of ``kw``), or None."""
    on, http = kw.pop("probe", False), kw.pop("probe_http", False)
    timeout, most = kw.pop("probe_timeout", 1.0), kw.pop("probe_max", 64)
    if not on:
        if http:
            raise UsageError("--probe-http goes with --probe")
        return None
    if kw.get("from_file"):
        raise UsageError("--probe connects from this node: it cannot go with --from")
    from swarmscope.probe import ProbeOptions

    return ProbeOptions(http=http, timeout=timeout, max_probes=most)


def _options(
    netns_dir, docker_host, timeout, docker_timeout, dns_timeout, no_dns, workers, dockerd_log=None, **_cluster
):
    from swarmscope.collect.snapshot import CollectOptions

    return CollectOptions(
        netns_dir=netns_dir,
        docker_host=docker_host,
        timeout=timeout,
        docker_timeout=docker_timeout,
        dns_timeout=dns_timeout,
        dns=not no_dns,
        workers=workers,
        dockerd_log=dockerd_log,
    )


def _say(msg: str) -> None:
    """What the pipeline says, on standard error."""
    click.echo(f"swarmscope: {msg}", err=True)


def _version(ctx: click.Context, param, value) -> None:
    if value and not ctx.resilient_parsing:
        from swarmscope.render.version import version_text

        click.echo(version_text())
        ctx.exit()


def _complete_service(ctx: click.Context, param, incomplete: str):
    """Shell completion of SERVICE: the service names of the --from file (nothing without --from)."""
    from click.shell_completion import CompletionItem

    path = ctx.params.get("from_file")
    if not path:
        return []
    try:
        from swarmscope import pipeline

        run = pipeline.load_many(path) if isinstance(path, tuple) else pipeline.load(path)
        names = sorted({s.name for s in pipeline.analyze(run).services})
    except Exception:  # completion never fails loudly
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@click.group(context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_version,
              help="Show the version, the snapshot and dump schemas and the engine profiles, and exit.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Explain how traffic reaches a Docker Swarm service, and where it breaks."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@collect_options
@probe_options
@click.option("--json", "as_json", is_flag=True, help="Print the whole node snapshot as JSON.")
@click.option("--raw", "keep_raw", is_flag=True,
              help="Keep the raw text of iptables-save and ipvsadm in the JSON (the parsed rules are always in it).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
def collect(as_json, keep_raw, output, **kw):
    """Collect this node's snapshot (read-only) and summarise it.

    Exit code 0 when the snapshot is complete, 4 when parts could not be
    collected (they are listed), 3 when nothing could be collected.
    """
    from swarmscope import pipeline
    from swarmscope.render.output import write_json, write_text

    probe = _probe(kw)
    snap = pipeline.collect_node(_options(**kw), _say)
    if probe is not None:
        pipeline.probe_node(snap, probe, _say)
    if as_json:
        from swarmscope.model import without_raw

        write_json(snap if keep_raw else without_raw(snap), output)
    else:
        from swarmscope.render.summary import render_summary

        write_text(render_summary(snap), output)
    sys.exit(pipeline.exit_status(pipeline.Run([snap], snap.complete), findings=False))


def _source(from_file, kw):
    """The pipeline's Source: --from FILE, else every node of the swarm (on a manager) or this
    node (--local, or on a worker)."""
    from swarmscope.pipeline import DEFAULT_IMAGE, Source

    probe = _probe(dict(kw, from_file=from_file))
    for k in ("probe", "probe_http", "probe_timeout", "probe_max"):
        kw.pop(k, None)
    if from_file:
        return Source(from_file=from_file, max_input=kw.get("max_input"))
    return Source(collect=_options(**kw), local=kw.get("local", True), image=kw.get("image") or DEFAULT_IMAGE,
                  node_timeout=kw.get("node_timeout") or 180.0, probe=probe)


def _save(path, run) -> None:
    """--save FILE: the dump the output was made from."""
    if path:
        from swarmscope.pipeline import dump_document
        from swarmscope.render.output import write_json

        write_json(dump_document(run), path)


def _colour(ctx_colour: str) -> bool:
    if ctx_colour == "always":
        return True
    if ctx_colour == "never":
        return False
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def from_option(fn):
    from swarmscope.errors import DEFAULT_MAX_INPUT_MB  # not from dump.py: that imports the correlator

    fn = click.option("--max-input", "max_input", type=FiniteRange(1, 1 << 20), default=DEFAULT_MAX_INPUT_MB,
                      show_default=True, metavar="MiB",
                      help="With --from: read at most this much (and decompress at most this much from a bundle).")(fn)
    return click.option(
        "--from",
        "from_file",
        metavar="FILE",
        multiple=True,
        callback=_from_files,
        help="Read a saved dump, snapshot or report bundle instead of collecting (no root, no Docker needed). "
        "Give it once per file to judge several together, e.g. each node's `collect --json`.",
    )(fn)


def _from_files(ctx, param, value):
    """--from given N times: None, one path, or the paths in order (each node's dump joined by the pipeline)."""
    if not value:
        return None
    return value[0] if len(value) == 1 else tuple(value)


def _label(from_file) -> str | None:
    """How the input is named in output: the path, or the paths joined."""
    return ", ".join(from_file) if isinstance(from_file, tuple) else from_file


def redact_options(fn):
    """--redact and its companions (explain, dump, report)."""
    opts = [
        click.option(
            "--redact",
            is_flag=True,
            help="Replace addresses, MACs, ids, node, service, network and container names with consistent "
            "pseudonyms (after collection, before anything is computed or written).",
        ),
        click.option("--keep-names", is_flag=True, help="With --redact: keep service and network names."),
        click.option(
            "--redact-map",
            metavar="FILE",
            help="With --redact: save what was replaced by what to FILE (mode 600; for you, never attach it).",
        ),
        click.option(
            "--redact-seed",
            metavar="TEXT",
            help="With --redact: derive the pseudonyms from TEXT instead of a random key (same TEXT, same pseudonyms).",
        ),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _redaction(kw: dict):
    """The pipeline's Redaction from --redact and its companions (taken out of ``kw``)."""
    from swarmscope.pipeline import Redaction

    return Redaction(redact=bool(kw.pop("redact", None)), keep_names=bool(kw.pop("keep_names", None)),
                     map_file=kw.pop("redact_map", None), seed=kw.pop("redact_seed", None))


@cli.command()
@click.argument("service", required=False, shell_complete=_complete_service)
@from_option
@redact_options
@collect_options
@cluster_options
@probe_options
@click.option("--node", "node", metavar="NAME", help="Show only this node's hops.")
@click.option("--format", "fmt", type=click.Choice(list(EXPLAIN_FORMATS)), default="text", show_default=True,
              help=formats_help(EXPLAIN_FORMATS))
@click.option("--color", "colour", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour in text output (auto: only on a terminal).")
@click.option("-v", "--verbose", is_flag=True, help="Show the evidence of every hop.")
@click.option("--all", "all_services", is_flag=True, help="Explain every service.")
@click.option("--save", metavar="FILE", help="Also write the dump this explanation was made from (for --from later).")
def explain(service, from_file, node, fmt, colour, verbose, all_services, save, **kw):
    """Explain, hop by hop and node by node, how traffic reaches SERVICE.

    Only SERVICE's paths are judged (every service's with --all), and with
    --probe only its targets are probed.
    Exit code 0 when nothing is wrong, 1 when there are findings of error
    severity (about SERVICE, or about a node or network), 4 when the data is
    incomplete, 2 for a usage error, 3 when nothing could be collected.
    """
    import difflib

    from swarmscope import pipeline, render
    from swarmscope.render.output import write_chunks, write_json

    if not service and not all_services:
        raise click.UsageError("name a SERVICE to explain, or use --all")
    red = _redaction(kw)
    # one service: only its paths are judged (--save judges the whole swarm for the dump it writes)
    scope = service if service and not all_services else None
    run = pipeline.analyzed(_source(from_file, kw), red, _say, scope)
    if run.redactor is not None and service:
        service = run.redactor.name(service)
    _save(save, run)
    analysis = pipeline.analyze(run)
    if all_services:
        services = analysis.services
    else:
        services = [s for s in analysis.services if s.name == service]
        if not services:
            names = [s.name for s in analysis.services] + analysis.unjudged
            close = difflib.get_close_matches(service, names, n=5, cutoff=0.4)
            if close:
                hint = f"did you mean: {', '.join(close)}?"
            elif names:
                hint = f"services: {', '.join(names[:20])}"
            else:
                hint = "no services in the data (on a worker, run on a manager or use a dump from one)"
            raise UsageError(f"no service named {service!r}", hint)
    if node and node not in analysis.nodes:
        raise UsageError(f"no node named {node!r} in the data", f"nodes: {', '.join(analysis.nodes)}")
    out = render.explain_stream(fmt, analysis, services, render.View(node=node, colour=_colour(colour),
                                                                     verbose=verbose, source=_label(from_file)))
    if isinstance(out, dict):
        write_json(out)
    else:
        write_chunks(out)
    sys.exit(pipeline.exit_status(run))


@cli.command()
@from_option
@redact_options
@collect_options
@cluster_options
@probe_options
@click.option("--json", "as_json", is_flag=True, help="JSON output (the only format; accepted for clarity).")
@click.option("--raw", "keep_raw", is_flag=True,
              help="Keep the raw text of iptables-save and ipvsadm in the JSON (the parsed rules are always in it).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
def dump(from_file, as_json, keep_raw, output, **kw):
    """Everything: node snapshots, path maps of all services, findings.

    Attach the file to a bug report; `explain --from FILE` and `check --from
    FILE` read it back anywhere. Exit code as for `check`.
    """
    from swarmscope import pipeline
    from swarmscope.render.output import write_json

    run = pipeline.analyzed(_source(from_file, kw), _redaction(kw), _say)
    write_json(pipeline.dump_document(run, raw=keep_raw), output)
    sys.exit(pipeline.exit_status(run))


@cli.command()
@from_option
@collect_options
@cluster_options
@probe_options
@click.option("--format", "fmt", type=click.Choice(list(CHECK_FORMATS)), default="text", show_default=True,
              help=formats_help(CHECK_FORMATS))
@click.option("--color", "colour", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Show every evidence line.")
@click.option("--save", metavar="FILE", help="Also write the dump the check was made from.")
def check(from_file, fmt, colour, verbose, save, **kw):
    """Every service, findings only: for cron, monitoring and CI.

    Exit code 0 healthy, 1 findings of error severity, 4 incomplete data.
    """
    from swarmscope import pipeline, render
    from swarmscope.render.output import write_json, write_text

    run = pipeline.analyzed(_source(from_file, kw), None, _say)
    _save(save, run)
    out = render.check(fmt, run, render.View(colour=_colour(colour), verbose=verbose, source=_label(from_file)))
    if isinstance(out, str):
        write_text(out, nl=False)
    else:
        write_json(out)
    sys.exit(pipeline.exit_status(run))


@cli.command()
@collect_options
@click.option("--once", is_flag=True, help="Collect once, print the snapshot as chunk lines and exit (the gather job).")
@click.option("--run-id", default="manual", show_default=True, help="With --once: the run the chunk lines belong to.")
@click.option("--check", "check_only", is_flag=True, help="Only check what the agent needs, say what is missing, exit.")
@click.option("--interval", type=FiniteRange(5, 86400), default=60.0, show_default=True,
              help="Seconds between collections.")
@click.option("--listen", metavar="ADDR:PORT", help="Serve /metrics and /snapshot over HTTP (needs --token-file).")
@click.option("--token-file", metavar="FILE", help="Bearer token for --listen (a swarm secret: /run/secrets/NAME).")
@click.option("--probe-interval", "probe_interval", type=FiniteRange(5, 86400), default=None, metavar="SECONDS",
              help="Standing: also probe each hop with real connections (as --probe) at most every SECONDS; "
                   "the last results stay with each collection until the next probe.")
def agent(once, run_id, check_only, interval, listen, token_file, probe_interval=None, **kw):
    """The per-node agent: standing (logs findings as they appear and clear), or --once.

    Runs as a global swarm service (contrib/swarmscope-stack.yml), as a
    systemd unit (contrib/swarmscope-agent.service), or as the job that
    `dump`/`explain`/`check` start on every node.
    """
    from swarmscope import agent as ag

    opts = _options(**kw)
    if check_only:
        sys.exit(ExitStatus.OK if ag.report_checks(ag.check_environment(opts), stream=sys.stdout) == 0
                 else ExitStatus.PARTIAL)
    if once:
        sys.exit(ag.run_once(opts, run_id))
    if probe_interval is not None:
        sys.exit(ag.run_standing(opts, interval, listen, token_file, probe_interval=probe_interval))
    sys.exit(ag.run_standing(opts, interval, listen, token_file))


@cli.command()
@from_option
@collect_options
@cluster_options
@redact_options
@probe_options
@click.option("-o", "--output", metavar="FILE", default="swarmscope-report.tar.gz", show_default=True,
              help="Where to write the bundle (a tar.gz).")
@click.option("--no-svg", is_flag=True, help="Do not run Graphviz `dot` for SVG pictures.")
def report(from_file, output, no_svg, **kw):
    """One tar.gz for a bug report: dump, raw command output, explain text,
    pictures, manifest and SUMMARY.txt. With --redact it is safe to publish.

    `explain --from BUNDLE` and `check --from BUNDLE` read it back offline.
    Exit code as for `check`.
    """
    from swarmscope import pipeline
    from swarmscope.report import run_report

    red = _redaction(kw)
    _say("collecting" if not from_file else f"reading {_label(from_file)}")
    run = pipeline.redact(pipeline.obtain(_source(from_file, kw), _say), red, failed_nodes="tree")
    run_report(run, output, keep_names=red.keep_names, svg=not no_svg, say=_say)
    sys.exit(pipeline.exit_status(run))


@cli.command("import")
@click.argument("inputs", nargs=-1, required=True, metavar="FILE|DIR...", shell_complete=None)
@redact_options
@click.option("-o", "--output", metavar="FILE", help="Write the dump to FILE instead of standard output.")
@click.option("--max-input", "max_input", type=FiniteRange(1, 1 << 20), default=None, metavar="MiB",
              help="Read at most this much text in all (default 64).")
@click.option("--raw", "keep_raw", is_flag=True,
              help="Keep the raw text read in the JSON (the parsed rules are always in it).")
def import_cmd(inputs, output, max_input, keep_raw, **kw):
    """Turn support.sh transcripts and pasted command output into a swarmscope dump.

    FILE: a support.sh transcript (one node, or several concatenated) or one command's output;
    DIR: a directory of such files. What was read and what was skipped is printed on standard
    error. Exit code 0, or 4 when parts could not be read (they are listed).
    """
    from swarmscope import pipeline
    from swarmscope.render.output import write_json

    run = pipeline.redact(pipeline.load_texts(list(inputs), max_input, _say), _redaction(kw))
    write_json(pipeline.dump_document(run, raw=keep_raw), output)
    sys.exit(pipeline.exit_status(run, findings=False))


@cli.command("findings")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
def findings_cmd(fmt):
    """List every finding id swarmscope knows, with its severity and hint."""
    from swarmscope.correlate.findings import catalogue
    from swarmscope.render.output import write_text
    from swarmscope.render.text import render_catalogue

    write_text(render_catalogue(catalogue(), fmt))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    ctx = None
    if os.environ.get(
        "_SWARMSCOPE_COMPLETE"
    ):  # shell completion (click): `eval "$(_SWARMSCOPE_COMPLETE=bash_source swarmscope)"`
        cli._main_shell_completion({}, "swarmscope", "_SWARMSCOPE_COMPLETE")
    try:
        with cli.make_context("swarmscope", list(sys.argv[1:] if argv is None else argv)) as ctx:
            cli.invoke(ctx)
        sys.exit(ExitStatus.OK)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitStatus.USAGE)
    except click.exceptions.Abort:
        click.echo("swarmscope: aborted", err=True)
        sys.exit(130)
    except SwarmscopeError as exc:
        if _debug(ctx) or "--debug" in sys.argv:
            traceback.print_exc()
        click.echo(f"swarmscope: error: {exc}", err=True)
        sys.exit(exc.status)
    except KeyboardInterrupt:
        click.echo("swarmscope: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(ExitStatus.OK)
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if _debug(ctx) or "--debug" in sys.argv:
            traceback.print_exc()
        click.echo(
            f"swarmscope: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback, "
            "and please report it)",
            err=True,
        )
        sys.exit(ExitStatus.INTERNAL)
