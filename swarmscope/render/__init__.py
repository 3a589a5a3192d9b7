"""Renderers: every output format swarmscope writes is a module here, and computes nothing.

``explain --format NAME`` and ``check --format NAME`` take their formats from the tables below:
a format is a module of this package with a ``for_explain(analysis, services, view)`` (or
``for_check(run, view)``) that returns either text (a str, written as it is) or a JSON document
(a dict, streamed by ``render.output.write_json``); a text format may also have a
``stream_explain(analysis, services, view)`` that yields the same text in pieces, which the CLI writes
as they come (``explain_stream``). The CLI offers exactly the formats listed
here and imports a renderer only when it is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class View:
    """What was asked of a rendering beyond the data: one node only, colour, every evidence line,
    and where the data came from (``--from``)."""

    node: str | None = None
    colour: bool = False
    verbose: bool = False
    source: str | None = None


#: explain --format NAME -> (module in render/, what it is for the --help text; "" says nothing)
EXPLAIN_FORMATS: dict[str, tuple[str, str]] = {
    "text": ("text", ""),
    "json": ("jsonout", ""),
    "mermaid": ("mermaid", "a flowchart for a GitHub issue"),
    "dot": ("dot", "Graphviz (dot -Tsvg)"),
    "html": ("html", "one offline page (pictures need Graphviz)"),
}

#: check --format NAME -> (module in render/, help)
CHECK_FORMATS: dict[str, tuple[str, str]] = {
    "text": ("text", ""),
    "json": ("jsonout", ""),
}


def formats_help(formats: dict[str, tuple[str, str]]) -> str | None:
    """``name: what it is for; ...`` of the formats that say something, for --help."""
    said = [f"{name}: {what}" for name, (_, what) in formats.items() if what]
    return "; ".join(said) + "." if said else None


def _module(formats: dict[str, tuple[str, str]], fmt: str):
    return importlib.import_module(f"{__name__}.{formats[fmt][0]}")


def explain(fmt: str, analysis: Any, services: list, view: View) -> str | dict:
    """The ``explain`` output of ``services`` in format ``fmt``."""
    return _module(EXPLAIN_FORMATS, fmt).for_explain(analysis, services, view)


def explain_stream(fmt: str, analysis: Any, services: list, view: View) -> Iterator[str] | dict:
    """``explain``'s output as the CLI writes it: text in pieces (a format's ``stream_explain`` where it has
    one: written as made, not held whole), or the JSON document."""
    module = _module(EXPLAIN_FORMATS, fmt)
    if hasattr(module, "stream_explain"):
        return module.stream_explain(analysis, services, view)
    out = module.for_explain(analysis, services, view)
    return iter([out]) if isinstance(out, str) else out


def check(fmt: str, run: Any, view: View) -> str | dict:
    """The ``check`` output of a pipeline run in format ``fmt``."""
    return _module(CHECK_FORMATS, fmt).for_check(run, view)
