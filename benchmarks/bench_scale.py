#!/usr/bin/env python3
"""Time `check`, `explain --all` and `dump --json` on generated swarms of growing size.

Usage:  python3 benchmarks/bench_scale.py [--runs 3] [--sizes 3:50:250,10:100:500,25:250:1250] [--large]
        [--commands check,explain,explain1,dump,written] [--repo PATH] [--keep DIR] [--raw-dumps]

For each size (nodes:services:tasks) it writes a healthy synthetic dump with
benchmarks/gen_swarm.py, then runs each command `--runs` times, alternating the
commands (explain1: `explain svc0000`, one service; written: `check` of the dump `dump --json` wrote from the
generated one, its path maps and findings included, as an operator's saved dump is), as a separate `python -m swarmscope` process reading it with
`--from`, and reports the median wall time, the median CPU time of the child
(user + system, from wait4: what a loaded machine inflates least), the peak RSS
of the child (ru_maxrss) and, between consecutive sizes, the growth exponent
k in time ~ size^k (size = tasks; nodes and services grow with them; where the tasks stay the same,
the nodes or the services, whichever grew: one axis at a time), of both, and of the
CPU time against the dump's size (what the judge reads grows as nodes x tasks).
`--large` adds 50:500:2500 and 100:1000:5000 (the last: a 1.2 GB dump, minutes
per command on 2 CPUs and several GB of memory); a size whose dump would not fit
in the memory available (about six times the dump's size, from /proc/meminfo)
is skipped, saying so. `--repo PATH` runs the swarmscope of another checkout
(e.g. an older commit unpacked with `git archive`), for before/after figures on
the same dumps; `--raw-dumps` generates the dumps with the iptables-save text in
them, as `dump --json` wrote them before it left the raw text out (issue #17).
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_swarm  # noqa: E402

DEFAULT_SIZES = "3:50:250,10:100:500,25:250:1250"
LARGE_SIZES = "50:500:2500,100:1000:5000"
COMMANDS = {
    "check": ["check", "--from", "{dump}"],
    "explain": ["explain", "--all", "--from", "{dump}", "--color", "never"],
    "explain1": ["explain", "svc0000", "--from", "{dump}", "--color", "never"],  # one service (gen_swarm's first)
    "dump": ["dump", "--from", "{dump}", "--json", "-o", "{out}"],
    # `check` of the dump `dump --json` wrote from the generated one: what an operator judges later, its path
    # maps and findings after the nodes (written once per size by this checkout's swarmscope, and kept with --keep)
    "written": ["check", "--from", "{written}"],
}


def max_input_args(repo: Path) -> list[str]:
    """`--max-input` (MiB) where this swarmscope limits what --from reads: the large dumps exceed its default."""
    cp = subprocess.run([sys.executable, "-m", "swarmscope", "check", "--help"], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(repo)), cwd=repo)
    return ["--max-input", "4096"] if "--max-input" in cp.stdout else []


def run_child(argv: list[str], repo: Path) -> tuple[float, int, int, float]:
    """(wall seconds, peak RSS in KiB, exit code, CPU seconds) of one child process; its stdout is discarded."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "swarmscope", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env, cwd=repo)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {p.returncode}: {err.strip()[-500:]}")
    return wall, ru.ru_maxrss, p.returncode, ru.ru_utime + ru.ru_stime


def mem_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def exponent(t1: float, t2: float, s1: float, s2: float) -> float:
    return math.log(t2 / t1) / math.log(s2 / s1) if t1 > 0 and t2 > 0 and s1 != s2 else float("nan")


def grown(s1: tuple[int, ...], s2: tuple[int, ...]) -> tuple[str, int, int]:
    """What the growth between two sizes is stated against: the tasks where they changed (with the nodes and
    services or alone), else the nodes (one axis: --sizes 25:250:1250,50:250:1250), else the services."""
    for i, name in ((2, "tasks"), (0, "nodes"), (1, "services")):
        if s1[i] != s2[i]:
            return name, s1[i], s2[i]
    return "tasks", s1[2], s2[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated nodes:services:tasks")
    ap.add_argument("--large", action="store_true", help=f"add {LARGE_SIZES}")
    ap.add_argument("--commands", default="check,explain,dump,written")
    ap.add_argument("--repo", default=str(REPO), help="the checkout whose swarmscope is run (default: this one)")
    ap.add_argument("--keep", metavar="DIR", help="write (and reuse) the generated dumps in DIR")
    ap.add_argument("--raw-dumps", action="store_true", help="dumps with the raw iptables-save text (as before #17)")
    args = ap.parse_args()
    sizes = [tuple(int(x) for x in s.split(":")) for s in (args.sizes + ("," + LARGE_SIZES if args.large else "")).split(",") if s]
    cmds = [c for c in args.commands.split(",") if c]
    repo = Path(args.repo).resolve()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="swarmscope-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = max_input_args(repo)

    rows = []
    for nodes, services, tasks in sizes:
        dump = work / f"swarm-{nodes}-{services}-{tasks}{'-raw' if args.raw_dumps else ''}.json"
        if not dump.exists():
            t0 = time.perf_counter()
            gen_swarm.write_dump(str(dump), nodes, services, tasks, raw=args.raw_dumps)
            print(f"generated {dump.name} ({dump.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s",
                  file=sys.stderr)
        need, have = 6 * dump.stat().st_size, mem_available()
        if have is not None and need > have:
            print(f"  {nodes}/{services}/{tasks}: skipped, reading its {dump.stat().st_size / 1e6:.0f} MB dump "
                  f"needs about {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available", file=sys.stderr)
            continue
        out = work / "out.json"
        written = work / f"written-{dump.name}"
        if "written" in cmds and not written.exists():
            wall, _, _, cpu = run_child(["dump", "--from", str(dump), "--json", "-o", str(written)] + extra, REPO)
            print(f"wrote {written.name} with dump --json ({written.stat().st_size / 1e6:.0f} MB) in {wall:.1f}s "
                  f"(cpu {cpu:.1f}s)", file=sys.stderr)
        res: dict[str, list[tuple[float, int, float]]] = {c: [] for c in cmds}
        for r in range(args.runs):
            for c in cmds:  # alternated: one run of each command per round
                argv = [a.format(dump=dump, out=out, written=written) for a in COMMANDS[c]] + extra
                wall, rss, _, cpu = run_child(argv, repo)
                res[c].append((wall, rss, cpu))
                print(f"  {nodes}/{services}/{tasks} {c} run {r + 1}: {wall:.2f}s (cpu {cpu:.2f}s) {rss / 1024:.0f} MiB",
                      file=sys.stderr)
        out_mb = out.stat().st_size / 1e6 if out.exists() else float("nan")
        rows.append(((nodes, services, tasks), dump.stat().st_size / 1e6, out_mb,
                     {c: (statistics.median(w for w, _, _ in v), max(m for _, m, _ in v) / 1024,
                          statistics.median(u for _, _, u in v)) for c, v in res.items()}))
        if not args.keep:
            dump.unlink()
            written.unlink(missing_ok=True)
        out.unlink(missing_ok=True)

    print(f"swarmscope from {repo}; {os.cpu_count()} CPUs; median of {args.runs} runs; peak RSS of the child (max); "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    head = f"{'nodes/services/tasks':>20} {'dump MB':>8}"
    for c in cmds:
        head += f" {c + ' s':>10} {c + ' cpu':>10} {c + ' MiB':>10}"
    print(head)
    for size, mb, out_mb, r in rows:
        line = f"{'/'.join(map(str, size)):>20} {mb:>8.1f}"
        for c in cmds:
            line += f" {r[c][0]:>10.2f} {r[c][2]:>10.2f} {r[c][1]:>10.0f}"
        print(line)
    if len(rows) > 1:
        print("growth exponent k (time ~ X^k; X: the tasks, else the nodes, else the services, whichever grew; "
              "2^k: the time per doubling of X) between consecutive sizes:")
        for (s1, _, _, r1), (s2, _, _, r2) in zip(rows, rows[1:]):
            what, x1, x2 = grown(s1, s2)
            parts = []
            for c in cmds:
                k, kc = exponent(r1[c][0], r2[c][0], x1, x2), exponent(r1[c][2], r2[c][2], x1, x2)
                parts.append(f"{c} {k:.2f} (cpu {kc:.2f}, x{2 ** kc:.2f} per doubling)")
            print(f"  {'/'.join(map(str, s1))} -> {'/'.join(map(str, s2))} ({what} x{x2 / x1:g}): " + ", ".join(parts))
        # the collected state grows as nodes x tasks (every node's ingress_sbox holds a real server per task
        # of the swarm): against its size, k = 1 is a judge that keeps pace with what it reads
        print("growth exponent k against the dump's size (cpu time ~ dump bytes^k):")
        for (s1, m1, _, r1), (s2, m2, _, r2) in zip(rows, rows[1:]):
            parts = [f"{c} {exponent(r1[c][2], r2[c][2], m1, m2):.2f}" for c in cmds]
            print(f"  {'/'.join(map(str, s1))} -> {'/'.join(map(str, s2))} (dump x{m2 / m1:.2f}): " + ", ".join(parts))


if __name__ == "__main__":
    main()
