#!/usr/bin/env python3
"""The floor of a node's collection: per namespace one rtnetlink dump and one iptables-nft-save.

Usage (root, in the node's network namespace):
    nsenter --net=/run/netns/sslab-NAME python3 benchmarks/floor_collect.py NETNS_DIR

Nothing is parsed or recorded; the namespaces are entered as swarmscope does
(a fresh thread, setns). Prints the wall time one at a time and two at a time,
and the start of an empty interpreter, to set against `collect --json`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarmscope.collect.links import read_interfaces  # noqa: E402
from swarmscope.netns import run_in_netns  # noqa: E402


def main() -> None:
    d = sys.argv[1]
    paths = [os.path.join(d, n) for n in sorted(os.listdir(d))]

    def one(p: str) -> None:
        def inside() -> None:
            read_interfaces()
            subprocess.run(["iptables-nft-save"], capture_output=True)
        run_in_netns(p, inside)

    for w in (1, 2):
        t0 = time.monotonic()
        with ThreadPoolExecutor(w) as pool:
            list(pool.map(one, paths))
        print(f"floor, {len(paths)} namespaces, {w} at once: {time.monotonic() - t0:.2f}s")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"])
    print(f"python3 -c pass: {time.monotonic() - t0:.2f}s")


if __name__ == "__main__":
    main()
