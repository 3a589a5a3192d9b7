"""Shared helpers for the parser golden tests: fixture discovery and golden files.

Fixtures live in ``tests/fixtures``; the golden JSON of ``tests/fixtures/X`` is
``tests/unit/golden/X.json``. Set ``SWARMSCOPE_REGEN_GOLDEN=1`` to rewrite the
golden files from the current parsers (then review the diff by eye).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from swarmscope.errors import ParseError
from swarmscope.model import to_dict

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("SWARMSCOPE_REGEN_GOLDEN") == "1"

# multi-block originals, kept only to check the split files against
_EXCLUDED_DIRS = {"original"}


def fixture_files() -> list[Path]:
    out = []
    for p in sorted(FIXTURES.rglob("*")):
        if not p.is_file() or p.suffix not in (".txt", ".json"):
            continue
        if _EXCLUDED_DIRS & set(p.relative_to(FIXTURES).parts):
            continue
        out.append(p)
    return out


def rel(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def read(relpath: str) -> str:
    return (FIXTURES / relpath).read_text()


def golden_path(fixture: Path) -> Path:
    return GOLDEN / (rel(fixture) + ".json")


def run_parser(parse: Callable[[str], Any], text: str) -> dict:
    """The parser's result as JSON data, or the ParseError it raised."""
    try:
        return {"result": to_dict(parse(text))}
    except ParseError as exc:
        return {"error": {"lineno": exc.lineno, "line": exc.line, "reason": exc.reason, "message": str(exc)}}


def check_golden(fixture: Path, parser_name: str, parse: Callable[[str], Any]) -> dict:
    """Compare the parse of ``fixture`` with its golden file (rewrite it under REGEN)."""
    got = {"fixture": rel(fixture), "parser": parser_name, **run_parser(parse, fixture.read_text())}
    gp = golden_path(fixture)
    if REGEN:
        gp.parent.mkdir(parents=True, exist_ok=True)
        gp.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert gp.exists(), f"no golden file {gp}; run with SWARMSCOPE_REGEN_GOLDEN=1 and review it"
    want = json.loads(gp.read_text())
    assert got == want, f"{rel(fixture)}: parse differs from {gp.relative_to(TESTS)} (SWARMSCOPE_REGEN_GOLDEN=1 to rewrite, then review)"
    return got
