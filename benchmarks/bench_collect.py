#!/usr/bin/env python3
"""Time a full `swarmscope collect` on the lab swarm; print namespaces, wall time and peak memory.

Usage (root):  python3 benchmarks/bench_collect.py [--runs 5] [--replicas 2,10,30] [--workers N] [--keep]

For each replica count of `whoami` (more replicas -> more task sandboxes), it
scales the lab, waits for convergence, then runs `python -m swarmscope collect
--json` inside the lab node `--runs` times as a separate process and reports
the median/min/max wall time, the peak RSS of the collecting process, the number
of namespaces and the snapshot size. Also times `analyze()` on the snapshot.
The lab (contrib/lab/swarmlab.py, name "bench" or --lab NAME) is brought up if needed and torn
down at the end unless --keep.

`--versus REPLICAS` scales whoami to REPLICAS and alternates, `--pairs` times,
`collect --json` with what an operator would run instead (`--against`):
`support.sh`, moby's own support script (tests/fixtures/pasted/support.sh, unmodified,
run on the lab node with the engine's netns directory bind-mounted where the
script looks for it; a run counts only if it printed its SUMMARY with the
node's overlay-sandbox and running-container counts and no command failed but
`ipvsadm` on a kernel without ip_vs), `loop`, a lighter support.sh-style loop
of our own over every namespace, or `both` (the default). Each prints median,
min, max, peak RSS (the script's: its largest process) and the ratio.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
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


def _default_workers() -> str:
    from swarmscope.collect.snapshot import default_workers

    return f"{default_workers()} (the default)"


def one_run(lab, workers: int | None) -> tuple[float, int, dict]:
    argv = [sys.executable, "-c", CHILD, "collect", "--json", "--netns-dir", str(lab.netns_dir)]
    argv += ["--workers", str(workers)] if workers else []  # else collect's default (the CPUs, 2 to 8)
    env = dict(os.environ, DOCKER_HOST=lab.docker_host, PYTHONPATH=str(REPO))
    # through run_tree's small parent, so that the child's own peak is not this process's resident size
    cp, wall, _ = run_tree(["nsenter", f"--net={lab.netns_path}", *argv], capture_output=True, text=True, env=env,
                           cwd=REPO)
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


# Peak RSS of a process tree: the largest of its processes, read by a small parent of its own. Measured from
# this benchmark directly, the tree's first process would report this (larger) process's resident size as its
# peak: subprocess starts children with vfork, and a vforked child execs from the parent's memory.
MAXRSS = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "with open(sys.argv[1], 'w') as fh:\n"
    "    fh.write(str(ru.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_tree(argv: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run argv; its result, its wall time and the peak RSS (KiB) of its largest process."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.monotonic()
        cp = subprocess.run([sys.executable, "-S", "-c", MAXRSS, rss.name, *argv], **kw)
        wall = time.monotonic() - t0
        return cp, wall, int(rss.read() or 0)


def support_run(lab) -> tuple[float, int]:
    _, wall, rss = run_tree(["nsenter", f"--net={lab.netns_path}", "sh", "-c", SUPPORT_LOOP],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, NETNS_DIR=str(lab.netns_dir)))
    return wall, rss


# moby's own support.sh, unmodified: the copy the pasted-output fixtures were made with (its README says where from)
SCRIPT = REPO / "tests" / "fixtures" / "pasted" / "support.sh"
SCRIPT_BLOB = "fdd1ff6e7dd8501602892a7779ea2cd2df428f86"  # docker-v29.7.2:daemon/libnetwork/support/support.sh
# the script hard-codes NSDIR=/var/run/docker/netns: run as the pasted-output fixtures ran it (run-support.sh:
# in a private mount namespace of its own, the lab engine's netns directory bind-mounted there)
SCRIPT_WRAP = SCRIPT.parent / "run-support.sh"
# the only stderr a healthy run may print: ipvsadm per namespace on a kernel without ip_vs
IPVS_ABSENT = ("Can't initialize ipvs: Protocol not available",
               "Are you sure that IP Virtual Server is built in the kernel or as module?")


def check_script() -> None:
    data = SCRIPT.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if blob != SCRIPT_BLOB:
        raise SystemExit(f"{SCRIPT} is not moby's support.sh as vendored (git blob {blob}, expected {SCRIPT_BLOB})")
    if not os.path.isdir("/var/run/docker/netns"):
        raise SystemExit("/var/run/docker/netns does not exist: support.sh hard-codes it and the benchmark "
                         "bind-mounts the lab's netns directory there (create the empty directory)")


def script_expected(lab) -> tuple[int, int]:
    """What a complete support.sh run on this node processes: overlay sandboxes + ingress_sbox, running containers."""
    ids = lab.docker("network", "ls", "--no-trunc", "--filter", "driver=overlay", "-q", check=True).stdout.split()
    names = os.listdir(lab.netns_dir)
    networks = sum(1 for i in ids for n in names if i[:9] in n) + ("ingress_sbox" in names)
    running = lab.docker("container", "ls", "-q", check=True).stdout.split()
    return networks, len(running)


def script_run(lab, expected: tuple[int, int]) -> tuple[float, int]:
    """One run of moby's support.sh on the lab node; its wall time and its largest process's peak RSS (KiB).

    A run that did not finish its work is an error, never a fast figure: it must exit 0, print its
    SUMMARY with the node's counts, and nothing on stderr but ipvsadm's complaint about ip_vs."""
    env = dict(os.environ, DOCKER_HOST=lab.docker_host, SWARMSCOPE_LAB_NETNS_DIR=str(lab.netns_dir),
               SWARMSCOPE_SUPPORT_SH=str(SCRIPT))
    argv = ["nsenter", f"--net={lab.netns_path}", "unshare", "--mount", "--propagation", "private",
            "sh", str(SCRIPT_WRAP)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cp, wall, rss = run_tree(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=REPO)
        rc = cp.returncode
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    bad = [ln for ln in stderr.splitlines() if ln.strip() and ln.strip() not in IPVS_ABSENT]
    m_net = re.search(r"Processed (\d+) networks", stdout)
    m_ctr = re.search(r"Processed (\d+) running containers", stdout)
    got = (int(m_net.group(1)), int(m_ctr.group(1))) if m_net and m_ctr else None
    if rc != 0 or "==SUMMARY==" not in stdout or got != expected or bad or "This tool requires" in stdout:
        keep = Path(tempfile.mkdtemp(prefix="support-sh-incomplete-"))
        (keep / "stdout").write_text(stdout)
        (keep / "stderr").write_text(stderr)
        raise SystemExit(f"support.sh run incomplete, not counted: exit {rc}, SUMMARY networks/containers {got}, "
                         f"expected {expected}, unexpected stderr {bad[:3]}; its output is in {keep}")
    return wall, rss


def versus(lab, pairs: int, workers: int | None, against: str) -> None:
    """Alternated runs: swarmscope collect --json, then support.sh and/or the loop, `pairs` times."""
    others: dict[str, tuple[list[float], list[int]]] = {}
    if against in ("support.sh", "both"):
        check_script()
        expected = script_expected(lab)
        others["moby support.sh"] = ([], [])
    if against in ("loop", "both"):
        others["support.sh-style loop"] = ([], [])
    ours, rss = [], []
    nns = len(os.listdir(lab.netns_dir))
    for i in range(pairs):
        w, r, _ = one_run(lab, workers)
        ours.append(w)
        rss.append(r)
        line = [f"pair {i + 1}: swarmscope {w:.2f}s ({r / 1024:.0f} MiB)"]
        for name, (walls, rsss) in others.items():
            w2, r2 = script_run(lab, expected) if name == "moby support.sh" else support_run(lab)
            walls.append(w2)
            rsss.append(r2)
            line.append(f"{name} {w2:.2f}s")
        print(", ".join(line), file=sys.stderr)
    mo = statistics.median(ours)
    print(f"{nns} namespaces, {pairs} alternated runs of each, --workers {workers or _default_workers()}, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if "moby support.sh" in others:
        print(f"support.sh processed {expected[0]} network sandboxes and {expected[1]} running containers each run")
    print(f"{'swarmscope collect --json':<26} median {mo:.2f}s  (min {min(ours):.2f}, max {max(ours):.2f}), "
          f"peak RSS {max(rss) / 1024:.0f} MiB")
    for name, (walls, rsss) in others.items():
        mt = statistics.median(walls)
        print(f"{name:<26} median {mt:.2f}s  (min {min(walls):.2f}, max {max(walls):.2f}), "
              f"peak RSS {max(rsss) / 1024:.0f} MiB (largest process)  ratio {mt / mo:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--replicas", default="2,10,30", help="comma-separated whoami replica counts")
    ap.add_argument("--workers", type=int, default=None, help="collect --workers (default: collect's own default)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--lab", default="bench", help="the lab's name (contrib/lab/swarmlab.py --name; not pt*/pytest*: the tests own those)")
    ap.add_argument("--versus", type=int, metavar="REPLICAS",
                    help="instead: scale whoami to REPLICAS and compare with moby's support.sh and/or a loop")
    ap.add_argument("--against", choices=("support.sh", "loop", "both"), default="both",
                    help="with --versus: moby's own support.sh (vendored), a lighter support.sh-style loop, or both")
    ap.add_argument("--pairs", type=int, default=3, help="with --versus: alternated runs of each")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab and the collection need it)")
    if args.lab.startswith(("pt", "pytest")):
        raise SystemExit(f"--lab {args.lab}: names starting with pt/pytest belong to the test suite's labs")
    # timed as installed: pip compiles a package's modules when it installs it (so does the image), and a
    # checkout run with PYTHONDONTWRITEBYTECODE would compile every module in every timed run (~0.1 s)
    compileall.compile_dir(REPO / "swarmscope", quiet=1)
    lab = swarmlab.Lab(args.lab)
    if not lab.manager.engine_answers():  # up() would wait for the default replica counts: not on a scaled lab
        lab.up()
    rows = []
    if args.versus:
        try:
            lab.docker("service", "scale", "-d", f"whoami={args.versus}", check=True)
            wait_replicas(lab, args.versus)
            time.sleep(2)
            versus(lab, args.pairs, args.workers, args.against)
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
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, {args.runs} runs each, --workers {args.workers or _default_workers()}")
    print(f"{'replicas':>8} {'netns':>5} {'wall median':>11} {'min':>6} {'max':>6} {'peak RSS':>9} {'snapshot':>9} {'in-process':>10} {'analyze':>8}")
    for n, ns, med, lo, hi, rss, size, inproc, corr in rows:
        print(f"{n:>8} {ns:>5} {med:>10.2f}s {lo:>5.2f}s {hi:>5.2f}s {rss:>7.1f}MB {size:>7.0f}KB {inproc:>9.2f}s {corr:>6.0f}ms")


if __name__ == "__main__":
    main()
