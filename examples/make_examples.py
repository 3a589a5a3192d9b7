#!/usr/bin/env python3
"""Write the example dumps under examples/ from real captured output (tests/fixtures/).

  lab-vm-healthy.json   a healthy single-node mesh captured on a real ip_vs kernel (tests/fixtures/lab-vm)
  lab-vm-no-dnat.json   the same with the host DNAT for port 8000 removed, as a firewall reload leaves it

`swarmscope explain --from examples/lab-vm-healthy.json whoami` reads them on any machine.
A unit test checks these files are what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests" / "unit")]

import rawsnap  # noqa: E402

from swarmscope.dump import make_dump  # noqa: E402

FIXED_TIME = "2026-11-21T09:13:00Z"


def examples() -> dict[str, dict]:
    healthy = rawsnap.lab_vm("with-overlay")
    broken = rawsnap.lab_vm("with-overlay")
    chain = broken.host.iptables.tables["nat"].chains["DOCKER-INGRESS"]
    chain.rules = [r for r in chain.rules if r.target != "DNAT"]
    out = {}
    for name, snap in (("lab-vm-healthy.json", healthy), ("lab-vm-no-dnat.json", broken)):
        doc = make_dump([snap])
        doc["created_at"] = FIXED_TIME
        doc["tool_version"] = "example"
        out[name] = doc
    return out


def text(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


if __name__ == "__main__":
    for name, doc in examples().items():
        (HERE / name).write_text(text(doc))
        print(f"wrote examples/{name}")
