#!/usr/bin/env python3
"""Capture the lab dump of a node cut off from the swarm's gossip (tests/fixtures/lab-dumps/README.md).

    python3 contrib/lab/swarmlab.py up --name srv --nodes 3
    python3 contrib/lab/capture_gossip.py --name srv OUTDIR
    python3 contrib/lab/swarmlab.py down --name srv

On the running three-node lab (its services converged): in worker2's own network namespace (a lab namespace),
iptables drops what arrives on TCP and UDP port 7946 (networkdb's gossip, memberlist), either way; the control
plane (2377) and VXLAN (4789) stay open, so worker2 stays Ready and keeps its tasks. After 60 s the others have
declared it failed and it them; every node is then collected (``collect --json`` on the node) and written as one
compact dump, ``three-node-gossip-cut.json``; then the four rules are deleted again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "contrib" / "lab")]

import swarmlab  # noqa: E402
from capture_subnet import collect  # noqa: E402

RULES = [["INPUT", "-p", p, "-m", p, d, "7946", "-j", "DROP"] for p in ("tcp", "udp") for d in ("--dport", "--sport")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="srv")
    ap.add_argument("outdir", type=Path)
    a = ap.parse_args()
    lab = swarmlab.Lab(a.name, nodes=3)
    w2 = lab.node("worker2")
    for r in RULES:
        w2.in_node(["iptables", "-I", *r], check=True)
    try:
        time.sleep(60)
        for n in lab.nodes:
            peers = n.docker("network", "inspect", "-v", "demo", "--format", "{{json .Peers}}").stdout.strip()
            print(f"{n.name}: demo Peers {peers}", file=sys.stderr)
        collect(lab, a.outdir / "three-node-gossip-cut.json")
    finally:
        for r in RULES:
            w2.in_node(["iptables", "-D", *r])


if __name__ == "__main__":
    main()
