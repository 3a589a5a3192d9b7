"""What the CLI writes of a rendering: `explain`'s text streamed a service at a time (the same bytes as
its whole), and colour as `--color` says, also when the output is not a terminal."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from swarmscope import render
from swarmscope.cli import cli
from swarmscope.dump import load
from swarmscope.pipeline import Run, analyze
from swarmscope.render.output import write_chunks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SETTLE = FIXTURES / "lab-dumps" / "three-node-settle-boundary.json"  # several services, a finding or more


def test_explain_text_is_streamed_a_service_at_a_time_and_is_its_whole():
    a = analyze(Run(load(str(SETTLE)), True))
    view = render.View()
    pieces = list(render.explain_stream("text", a, a.services, view))
    assert len(pieces) == len(a.services) + 3  # the nodes line, each service, the findings, the last newline
    assert "".join(pieces) == render.explain("text", a, a.services, view)
    res = CliRunner().invoke(cli, ["explain", "--all", "--from", str(SETTLE)])
    assert res.output == "".join(pieces)


def test_json_and_other_formats_are_not_streamed_as_text():
    a = analyze(Run(load(str(SETTLE)), True))
    assert isinstance(render.explain_stream("json", a, a.services, render.View()), dict)
    (mermaid,) = list(render.explain_stream("mermaid", a, a.services[:1], render.View()))
    assert mermaid == render.explain("mermaid", a, a.services[:1], render.View())


def test_chunks_go_to_a_file_as_they_come(tmp_path):
    out = tmp_path / "out.txt"
    seen = []

    def chunks():
        for c in ("a\n", "b", "\n"):
            seen.append(out.exists())
            yield c

    write_chunks(chunks(), str(out))
    assert out.read_text() == "a\nb\n" and seen == [True, True, True]


def test_color_always_is_colour_also_through_a_pipe():
    runner = CliRunner()  # its output is not a terminal: --color auto means none
    for args in (["explain", "whoami"], ["check"]):
        always = runner.invoke(cli, [*args, "--color", "always", "--from", str(SETTLE)]).output
        never = runner.invoke(cli, [*args, "--color", "never", "--from", str(SETTLE)]).output
        auto = runner.invoke(cli, [*args, "--from", str(SETTLE)]).output
        assert "\x1b[" in always, args
        assert "\x1b[" not in never and never == auto, args
