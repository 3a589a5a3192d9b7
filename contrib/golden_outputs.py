#!/usr/bin/env python3
"""Record what swarmscope prints for every example dump and fixture-built snapshot, for refactors.

    python3 contrib/golden_outputs.py OUTDIR        # record
    diff -r BEFORE AFTER                            # a refactor changes nothing unless it says why

For each input: `explain --all --format json`, `check --format json`, `dump --json` (and the text
forms of explain and check), run through the CLI on a saved file, with the volatile fields (times,
durations, the tool's own version) blanked so two runs of the same code are byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]

VOLATILE = {"created_at", "generated_at", "duration_ms", "tool_version", "took_ms"}


def _inputs(tmp: Path) -> dict[str, Path]:
    import rawsnap

    from swarmscope.dump import make_dump

    out = {p.stem: p for p in sorted((ROOT / "examples").glob("*.json"))}
    for p in sorted((ROOT / "tests" / "fixtures" / "engines").glob("*/swarmscope-collect.json")):
        out[f"engine-{p.parent.name}"] = p  # a real lab node's snapshot on each engine
    built = {"lab-vm-with-overlay": [rawsnap.lab_vm("with-overlay")], "lab-vm-ingress-only": [rawsnap.lab_vm("ingress-only")],
             "moby-25": [rawsnap.moby_25()], "public-19": rawsnap.public_19()}
    for name, snaps in built.items():
        p = tmp / f"{name}.json"
        p.write_text(json.dumps(make_dump(snaps)))
        out[name] = p
    return out


def _blank(doc):
    if isinstance(doc, dict):
        return {k: (None if k in VOLATILE else _blank(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_blank(v) for v in doc]
    return doc


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t) / "in"  # the same path in every run: it appears in error messages
        tmp.mkdir()
        for name, path in _inputs(tmp).items():
            for slug, args in (("explain-all.json", ["explain", "--all", "--format", "json"]),
                               ("explain-all.txt", ["explain", "--all"]),
                               ("check.json", ["check", "--format", "json"]),
                               ("check.txt", ["check"]),
                               ("dump.json", ["dump", "--json"])):
                cp = subprocess.run([sys.executable, "-m", "swarmscope", *args, "--from", str(path)],
                                    capture_output=True, text=True, cwd=ROOT)
                text = cp.stdout
                err = cp.stderr.replace(str(tmp), "IN")
                if slug.endswith(".json") and cp.stdout.strip():
                    try:
                        text = json.dumps(_blank(json.loads(cp.stdout)), indent=1, sort_keys=True)
                    except ValueError:
                        pass
                (dest / f"{name}.{slug}").write_text(f"exit {cp.returncode}\n{err}\n---\n{text}")
    print(f"recorded {len(list(dest.iterdir()))} outputs in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
