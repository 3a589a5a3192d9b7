#!/usr/bin/env python3
"""Time a full `swarmscope collect` on the lab swarm; print namespaces, wall time and peak memory.

Usage (root):  python3 benchmarks/bench_collect.py [--runs 5] [--replicas 2,10,30] [--workers 8] [--keep]

For each replica count of `whoami` (more replicas -> more task sandboxes), it
scales the lab, waits for convergence, then runs `python -m swarmscope collect
--json` inside the lab node `--runs` times as a separate process and reports
the median/min/max wall time, the peak RSS of the collecting process, the number
of namespaces and the snapshot size. Also times `analyze()` on the snapshot.
The lab (contrib/lab/swarmlab.py, name "bench" or --lab NAME) is brought up if needed and torn
down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "contrib" / "lab")]

import swarmlab  # noqa: E402

from swarmscope.correlate import analyze  # noqa: E402
from swarmscope.model import Snapshot  # noqa: E402

# peak RSS of the child, measured by the child itself right before it exits
CHILD = (
    "import resource, sys, runpy\n"
    "sys.argv = ['swarmscope'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('swarmscope', run_name='__main__')\n"
    "finally:\n"
    "    sys.stderr.write('peak_rss_kb=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def wait_replicas(lab, n: int, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        cp = lab.docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", "whoami")
        running = [l for l in cp.stdout.splitlines() if l.startswith("Running")]
        if len(running) == n:
            return
        time.sleep(1)
    raise SystemExit(f"whoami did not reach {n} running replicas in {timeout}s")


def one_run(lab, workers: int) -> tuple[float, int, dict]:
    argv = [sys.executable, "-c", CHILD, "collect", "--json", "--netns-dir", str(lab.netns_dir), "--workers", str(workers)]
    env = dict(os.environ, DOCKER_HOST=lab.docker_host, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    cp = subprocess.run(["nsenter", f"--net={lab.netns_path}", *argv], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.monotonic() - t0
    if cp.returncode not in (0, 4):
        raise SystemExit(f"collect failed ({cp.returncode}): {cp.stderr}")
    rss = int(next(l.split("=")[1] for l in cp.stderr.splitlines() if l.startswith("peak_rss_kb=")))
    return wall, rss, json.loads(cp.stdout)


# moby's contrib/support.sh style: one nsenter per command, per namespace, as it collects the routing mesh
SUPPORT_LOOP = r"""
for ns in "$NETNS_DIR"/*; do
  echo "== $ns"
  nsenter --net="$ns" ip addr show
  nsenter --net="$ns" ip route show
  nsenter --net="$ns" iptables-save
  for t in filter nat mangle; do nsenter --net="$ns" iptables -w1 -n -v -L -t $t; done
  nsenter --net="$ns" ipvsadm -l -n 2>&1
done
"""


def support_run(lab) -> float:
    t0 = time.monotonic()
    subprocess.run(["nsenter", f"--net={lab.netns_path}", "sh", "-c", SUPPORT_LOOP], capture_output=True,
                   env=dict(os.environ, NETNS_DIR=str(lab.netns_dir)))
    return time.monotonic() - t0


def versus(lab, pairs: int, workers: int) -> None:
    """Alternated runs: swarmscope collect --json, then the support.sh-style loop, `pairs` times."""
    ours, theirs, rss = [], [], []
    nns = len(os.listdir(lab.netns_dir))
    for i in range(pairs):
        w, r, _ = one_run(lab, workers)
        ours.append(w)
        rss.append(r)
        theirs.append(support_run(lab))
        print(f"pair {i + 1}: swarmscope {ours[-1]:.2f}s ({r / 1024:.0f} MiB), support.sh loop {theirs[-1]:.2f}s", file=sys.stderr)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"{nns} namespaces, {pairs} alternated pairs, --workers {workers}")
    print(f"swarmscope collect --json  median {mo:.2f}s  (min {min(ours):.2f}, max {max(ours):.2f}), peak RSS {max(rss) / 1024:.0f} MiB")
    print(f"support.sh-style loop      median {mt:.2f}s  (min {min(theirs):.2f}, max {max(theirs):.2f})")
    print(f"ratio {mt / mo:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--replicas", default="2,10,30", help="comma-separated whoami replica counts")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--lab", default="bench", help="the lab's name (contrib/lab/swarmlab.py --name; not pt*/pytest*: the tests own those)")
    ap.add_argument("--versus", type=int, metavar="REPLICAS",
                    help="instead: scale whoami to REPLICAS and compare with a support.sh-style per-namespace loop")
    ap.add_argument("--pairs", type=int, default=3, help="with --versus: alternated runs of each")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab and the collection need it)")
    if args.lab.startswith(("pt", "pytest")):
        raise SystemExit(f"--lab {args.lab}: names starting with pt/pytest belong to the test suite's labs")
    lab = swarmlab.Lab(args.lab)
    if not lab.manager.engine_answers():  # up() would wait for the default replica counts: not on a scaled lab
        lab.up()
    rows = []
    if args.versus:
        try:
            lab.docker("service", "scale", "-d", f"whoami={args.versus}", check=True)
            wait_replicas(lab, args.versus)
            time.sleep(2)
            versus(lab, args.pairs, args.workers)
        finally:
            if not args.keep:
                lab.down()
        return
    try:
        for n in [int(x) for x in args.replicas.split(",")]:
            lab.docker("service", "scale", "-d", f"whoami={n}", check=True)
            wait_replicas(lab, n)
            time.sleep(2)
            walls, rsss = [], []
            snap = None
            for _ in range(args.runs):
                wall, rss, snap = one_run(lab, args.workers)
                walls.append(wall)
                rsss.append(rss)
            s = Snapshot.from_dict(snap)
            t0 = time.perf_counter()
            analyze([s])
            corr = time.perf_counter() - t0
            rows.append((n, len(s.namespaces), statistics.median(walls), min(walls), max(walls), max(rsss) / 1024,
                         len(json.dumps(snap)) / 1024, s.duration_ms / 1000, corr * 1000))
    finally:
        if not args.keep:
            lab.down()
        else:
            lab.docker("service", "scale", "-d", "whoami=2")
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, {args.runs} runs each, --workers {args.workers}")
    print(f"{'replicas':>8} {'netns':>5} {'wall median':>11} {'min':>6} {'max':>6} {'peak RSS':>9} {'snapshot':>9} {'in-process':>10} {'analyze':>8}")
    for n, ns, med, lo, hi, rss, size, inproc, corr in rows:
        print(f"{n:>8} {ns:>5} {med:>10.2f}s {lo:>5.2f}s {hi:>5.2f}s {rss:>7.1f}MB {size:>7.0f}KB {inproc:>9.2f}s {corr:>6.0f}ms")


if __name__ == "__main__":
    main()
