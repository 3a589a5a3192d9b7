#!/usr/bin/env python3
"""Capture the lab dumps of a small overlay subnet filling up (tests/fixtures/lab-dumps/README.md).

    python3 contrib/lab/swarmlab.py up --name srv --nodes 3
    python3 contrib/lab/capture_subnet.py --name srv OUTDIR
    python3 contrib/lab/swarmlab.py down --name srv

On the running three-node lab: an overlay network ``tiny`` (10.9.0.0/28: 16 addresses, 13 after network,
broadcast and gateway) and a service ``filler`` on it, three replicas per node at most (so the tasks spread
over the nodes, one load-balancer address each), scaled to 8 replicas (3 load balancers + 1 VIP + 8 tasks =
12 of 13) and then to 11 (two tasks cannot get an address). After each step the tasks run (or wait) for
longer than the settle window (60 s), then every node is collected (``collect --json`` on the node) and the
snapshots are written as one compact dump (``make_dump(..., raw=False)``, as ``dump --json`` writes):
``three-node-subnet-nearly-full.json`` and ``three-node-subnet-full.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "contrib" / "lab")]

import swarmlab  # noqa: E402

from swarmscope.dump import make_dump, snapshots_from_data  # noqa: E402


def collect(lab, path: Path) -> None:
    snaps = []
    for n in lab.nodes:
        cp = n.swarmscope("collect", "--json", "--netns-dir", str(n.netns_dir), timeout=300)
        if not cp.stdout.strip():
            raise SystemExit(f"{n.name}: collect failed: {cp.stderr[-2000:]}")
        snaps += snapshots_from_data(json.loads(cp.stdout), f"{n.name} collect")
    path.write_text(json.dumps(make_dump(snaps, raw=False), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)


def wait_running(lab, want: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.docker("service", "ps", "filler", "--filter", "desired-state=running",
                         "--format", "{{.CurrentState}}").stdout.split("\n")
        if sum(1 for line in out if line.startswith("Running")) >= want:
            return
        time.sleep(3)
    raise SystemExit(f"filler: fewer than {want} tasks running after {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="srv")
    ap.add_argument("outdir", type=Path)
    a = ap.parse_args()
    lab = swarmlab.Lab(a.name, nodes=3)
    lab.docker("network", "create", "-d", "overlay", "--subnet", "10.9.0.0/28", "tiny", check=True)
    lab.docker("service", "create", "--detach", "--name", "filler", "--network", "tiny", "--replicas", "8",
               "--replicas-max-per-node", "3", swarmlab.IMAGE, "sleep", "100000", check=True)
    wait_running(lab, 8)
    time.sleep(60)
    collect(lab, a.outdir / "three-node-subnet-nearly-full.json")
    lab.docker("service", "update", "--detach", "--replicas", "11", "--replicas-max-per-node", "4", "filler",
               check=True)
    wait_running(lab, 9)
    time.sleep(60)
    print(lab.docker("service", "ps", "--no-trunc", "filler").stdout, file=sys.stderr)
    collect(lab, a.outdir / "three-node-subnet-full.json")


if __name__ == "__main__":
    main()
