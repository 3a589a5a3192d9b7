#!/usr/bin/env python3
"""Time the whole-swarm gather on lab swarms of growing size; print how it grows against the slowest node.

Usage (root):  python3 benchmarks/bench_gather.py [--nodes 3,5] [--runs 3] [--lab NAME] [--keep]

For each node count it brings up a lab swarm of that many nodes (contrib/lab/swarmlab.py: one manager, the
rest workers, each a dockerd in its own namespaces; the lab's services, glob on every node), loads the
swarmscope image on every node, and then, alternating, ``--runs`` times each:

- ``swarmscope dump --json`` on the manager: the gather (a global job service running ``agent --once`` on
  every other node, the snapshots read back through task logs, the job removed), whole command wall time;
- ``swarmscope collect --json`` on each node by itself, one after the other: each node's own collection.

It prints the medians, the gather's time against the slowest single node's collection (a gather is bounded
by the slowest node plus a constant: scheduling the job, pulling nothing, reading logs, removing it) and
against the sum of all nodes' collections, and the growth between sizes. From the gather's own progress lines
it also splits each gather: when the last node's snapshot was seen complete (seconds from the job's start) and
the rest of ``gather()`` (creating the job before, removing it and waiting for its tasks to go after). The lab (name "gb" or --lab) is
taken down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "contrib" / "lab")]

import swarmlab  # noqa: E402


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


ANSWERED = re.compile(r"nodes \d+/\d+: (\S+) (?:answered \([^)]*\)|collected locally) in ([\d.]+)s")
GATHERED = re.compile(r"gathered \d+ of \d+ nodes in ([\d.]+)s")


def gather_once(lab: swarmlab.Lab, image: str) -> tuple[float, float, float]:
    """(the command's wall time, gather()'s own time, the slowest node's answer: seconds from the job's start
    to when the gather saw that node's snapshot complete; the local node's from its collection's start)."""
    m = lab.manager
    err: list[str] = []

    def go() -> None:
        cp = m.swarmscope("dump", "--json", "-o", "/dev/null", "--netns-dir", str(m.netns_dir), "--image", image,
                          "--node-timeout", "180", timeout=400)
        if cp.returncode not in (0, 1) or f"gathered {len(lab.nodes)} of {len(lab.nodes)} nodes" not in cp.stderr:
            raise SystemExit(f"gather failed ({cp.returncode}): {cp.stderr[-2000:]}")
        err.append(cp.stderr)

    wall = timed(go)
    answers = [float(x) for _, x in ANSWERED.findall(err[0])]
    inside = GATHERED.search(err[0])
    if len(answers) != len(lab.nodes) or inside is None:
        raise SystemExit(f"the gather's progress lines were not as expected: {err[0][-2000:]}")
    return wall, float(inside.group(1)), max(answers)


def collect_once(node) -> float:
    def go() -> None:
        cp = node.swarmscope("collect", "--json", "--netns-dir", str(node.netns_dir), timeout=300)
        if cp.returncode not in (0, 4):
            raise SystemExit(f"collect on {node.name} failed ({cp.returncode}): {cp.stderr[-2000:]}")

    return timed(go)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="3,5", help="comma-separated node counts")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lab", default="gb", help="the lab's name (not pt*/pytest*: the tests own those)")
    ap.add_argument("--keep", action="store_true", help="leave the last lab up")
    a = ap.parse_args()
    rows = []
    for count in [int(x) for x in a.nodes.split(",")]:
        lab = swarmlab.Lab(a.lab, nodes=count)
        lab.down()
        t0 = time.monotonic()
        lab.up()
        image = lab.load_swarmscope_image()
        lab.wait_converged()
        print(f"{count} nodes: lab up and image loaded in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        gathers, slowest, total, rest = [], [], [], []
        try:
            for i in range(a.runs):
                g, inside, last = gather_once(lab, image)
                each = [collect_once(n) for n in lab.nodes]
                gathers.append(g)
                slowest.append(max(each))
                total.append(sum(each))
                rest.append(inside - last)
                print(f"  run {i + 1}: gather {g:.2f}s (gather() {inside:.2f}s, the last node answered after "
                      f"{last:.2f}s, the rest {inside - last:.2f}s: creating and removing the job); each node alone "
                      f"{' '.join(f'{x:.2f}' for x in each)}s", file=sys.stderr)
        finally:
            if not a.keep or count != int(a.nodes.split(",")[-1]):
                lab.down()
        med = statistics.median
        rows.append((count, med(gathers), min(gathers), max(gathers), med(slowest), med(total), med(rest)))
    print(f"{'nodes':>5}  {'gather median (min-max)':>26}  {'slowest node alone':>18}  {'sum of nodes':>12}  "
          f"{'gather - slowest':>16}  {'job create+remove':>17}")
    for count, g, lo, hi, s, t, r in rows:
        print(f"{count:>5}  {g:>9.2f}s ({lo:.2f}-{hi:.2f})      {s:>17.2f}s  {t:>11.2f}s  {g - s:>15.2f}s  "
              f"{r:>16.2f}s")
    for (c1, g1, *_), (c2, g2, *_) in zip(rows, rows[1:], strict=False):
        print(f"{c1} -> {c2} nodes: gather x{g2 / g1:.2f} for x{c2 / c1:.2f} the nodes")


if __name__ == "__main__":
    main()
