"""Where rendered output goes: standard output (``None`` or ``-``) or a file.

A file that cannot be written is a SwarmscopeError of one line (``cannot write FILE: reason``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from swarmscope.errors import SwarmscopeError


def _stdout(output: str | None) -> bool:
    return output in (None, "-")


def _cannot(output: str, exc: OSError) -> SwarmscopeError:
    return SwarmscopeError(f"cannot write {output}: {exc.strerror}")


def write_text(text: str, output: str | None = None, nl: bool = True) -> None:
    """Text and (with ``nl``) a newline."""
    write_chunks([text + ("\n" if nl else "")], output)


def write_chunks(chunks: Iterable[str], output: str | None = None) -> None:
    """Text in pieces, each written as it comes (as ``write_text`` of their whole, without a newline)."""
    if _stdout(output):
        import click

        for chunk in chunks:
            click.echo(chunk, nl=False, color=True)  # colour is decided by --color (cli._colour): never stripped here
        return
    try:
        with open(output, "w") as fh:  # type: ignore[arg-type]
            for chunk in chunks:
                fh.write(chunk)
    except OSError as exc:
        raise _cannot(output, exc) from None  # type: ignore[arg-type]


def write_json(doc: Any, output: str | None = None) -> None:
    """A JSON document (dicts, lists, dataclasses) indented, streamed, as json.dumps(indent=2) prints it."""
    from swarmscope.render import jsonout

    if _stdout(output):
        import click

        sys.stdout.flush()
        out = click.get_binary_stream("stdout")
        jsonout.write_json(doc, out)
        out.flush()
        return
    try:
        with open(output, "wb") as fh:  # type: ignore[arg-type]
            jsonout.write_json(doc, fh)
    except OSError as exc:
        raise _cannot(output, exc) from None  # type: ignore[arg-type]


def write_bytes(data: bytes, output: str | None) -> None:
    """Bytes as they are (a report bundle)."""
    try:
        if _stdout(output):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            with open(output, "wb") as fh:  # type: ignore[arg-type]
                fh.write(data)
    except OSError as exc:
        raise _cannot(output or "-", exc) from None
