#!/usr/bin/env python3
"""Capture one engine's healthy single-node lab as fixtures (issue #11).

    sudo python3 contrib/lab/capture_engine.py --engine 26.1 [--name eng26] [--out tests/fixtures/engines]

Brings a lab up on that engine (swarmlab.py, engine_cache.py), writes its raw
output to ``<out>/<Server.Version>/`` (see tests/fixtures/engines/README.md
for what each file is and the command that made it), and takes the lab down,
also when something fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import swarmlab  # noqa: E402

SYSCTL_PATTERN = r"^net\.ipv4\.(ip_forward$|vs\.|conf\.(all|default)\.(forwarding|rp_filter|route_localnet)$)"


def capture(lab: swarmlab.Lab, out_root: Path) -> Path:
    ver = json.loads(lab.docker("version", "--format", "{{json .}}", check=True).stdout)
    version = ver["Server"]["Version"]
    out = out_root / version
    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, text: str) -> None:
        (out / name).write_text(text if text.endswith("\n") or not text else text + "\n")

    def pretty(text: str) -> str:
        return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"

    write("docker-version.json", json.dumps(ver, indent=2, sort_keys=True))
    write("docker-info.json", pretty(lab.docker("info", "--format", "{{json .}}", check=True).stdout))
    write("docker-network-ls.txt", lab.docker("network", "ls", "--no-trunc", check=True).stdout)
    netns_dir = lab.netns_dir
    names = sorted(os.listdir(netns_dir))
    lbs = [n for n in names if n.startswith("lb_")]
    write("netns-ls.txt", "\n".join(names))
    targets = {"host": lab.netns_path, "ingress_sbox": str(netns_dir / "ingress_sbox")}
    for lb in lbs:
        targets[lb] = str(netns_dir / lb)
    for label, path in targets.items():
        enter = ["nsenter", f"--net={path}"]
        for tool in ("iptables-save", "iptables-legacy-save"):
            cp = swarmlab.run([*enter, tool], check=False)
            write(f"{tool}.{label}.txt", cp.stdout if cp.returncode == 0 else f"# {tool} exited {cp.returncode}: {cp.stderr}")
        cp = swarmlab.run([*enter, "sysctl", "-a", "--pattern", SYSCTL_PATTERN], check=False)
        write(f"sysctl.{label}.txt", "\n".join(sorted(cp.stdout.splitlines())))
        cp = swarmlab.run([*enter, "ip", "-d", "addr"], check=False)
        write(f"ip-addr.{label}.txt", cp.stdout)
    cp = swarmlab.run(["ipvsadm", "-Ln"], check=False)
    # not .txt: the unit tests parse every fixture named *ipvsadm*.txt as ipvsadm output
    write("ipvsadm-Ln.stderr", f"# ipvsadm -Ln (machine) exited {cp.returncode}: {(cp.stdout + cp.stderr).strip()}")
    for name, args in (("swarmscope-check.json", ("check", "--format", "json")),
                       ("swarmscope-explain-whoami.json", ("explain", "whoami", "--format", "json")),
                       ("swarmscope-collect.json", ("collect", "--json"))):
        cp = lab.swarmscope(*args[:1], "--netns-dir", str(netns_dir), *args[1:], timeout=300)
        write(name, pretty(cp.stdout) if cp.stdout.strip() else "")
        write(name.replace(".json", ".exit"), f"{cp.returncode}\n{cp.stderr}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=str(swarmlab.REPO_ROOT / "tests/fixtures/engines"))
    opts = ap.parse_args()
    name = opts.name or "eng" + "".join(c for c in opts.engine if c.isalnum())[:10]
    lab = swarmlab.Lab(name, engine=opts.engine)
    try:
        lab.down()
        lab.up()
        out = capture(lab, Path(opts.out))
        print(out)
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
