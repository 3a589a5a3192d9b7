#!/usr/bin/env python3
"""mesh3.py - the VM tier's three-node mesh (issue 12): a real cross-node routing mesh on an ip_vs kernel.

Runs inside the guest after the single-node phases (scenario.sh calls it with the venv's python), or on any
root Linux host for a dry run (no ip_vs there: the mesh stays unprogrammed, the rest works)::

    python3 tests/vm/guest/mesh3.py --out DIR [--engine ENGINE_DIR] [--faults "u-vxlan-dropped ..."]

Three swarm nodes, each a dockerd in its own network, mount and UTS namespaces joined over a bridge (the host
lab's ``contrib/lab/swarmlab.py`` multi-node layout): whoami (published 8000) has one task on the manager and
one on worker1 and none on worker2; client runs on worker2; glob on every node. Each phase writes
``DIR/<phase>/``:

- ``nodes.json``: the nodes (name, hostname, address, role) and which node each whoami container runs on;
- ``<node>/collect.json``: ``swarmscope collect --json`` (``--probe`` in the healthy phase) run ON that node (its own namespaces and
  engine), ``<node>/collect.rc`` and ``.stderr``; the host side judges them alone and together (``--from``
  once per node) - judging needs no root and is fast outside the emulator;
- ``wget-external-<node>.txt``: the published port on that node's address from the lab's switch namespace
  (an external client: forwarded through FORWARD as a remote client's connection is);
- ``wget-local-<node>.txt``: the same from the node's own namespace (OUTPUT);
- ``wget-vip.txt``: the VIP by name from the client's container on worker2 (east-west across nodes);
- ``fault.txt``: what the fault did (fault phases).

Each answer of whoami is its container's hostname (the short container id), so the files show which node
answered. ``DIR/phases.txt`` lists the phases with their outcome, ``DIR/timings.txt`` their duration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("SWARMSCOPE_SRC") or (HERE.parents[2] if (HERE.parents[2] / "contrib").is_dir() else "/src"))
sys.path.insert(0, str(SRC / "contrib" / "lab"))

import swarmlab  # noqa: E402
from swarmlab import OVERLAY_NETWORK, SLEEP, Lab, ServiceSpec  # noqa: E402

NAME = "m3"
PORT = 8000
# each answer names the container that gave it (busybox httpd serves /www; hostname = short container id);
# /big is that name and 6000 bytes more on one line: an answer larger than one packet (fault r's proof)
WHOAMI = ("sh", "-c", "hostname > /www/index.html; (hostname | tr -d '\\n'; head -c 6000 /dev/zero | tr '\\0' x) > /www/big; "
          "exec httpd -f -p 80 -h /www")
ALL_FAULTS = ["u-vxlan-dropped", "v-vxlan-dropped-nft", "w-gossip-dropped", "x-fdb-deleted", "y-underlay-mtu",
              "z-docker-user-drop", "s-worker-stopped", "t-underlay-vxlan-dropped", "r-underlay-mtu-blackhole"]
# who each fault is made on (the node the verdict must name)
FAULT_NODE = {"u-vxlan-dropped": "worker1", "v-vxlan-dropped-nft": "worker1", "w-gossip-dropped": "worker1",
              "x-fdb-deleted": "manager", "y-underlay-mtu": "worker1", "z-docker-user-drop": "worker2",
              "s-worker-stopped": "worker2",
              # outside every node (the underlay's switch): no rule of any node shows it; the manager's --probe
              # connections to worker1's tasks find it (issue 13)
              "t-underlay-vxlan-dropped": "manager",
              # the switch's port toward worker1 takes frames of 1400 bytes at most: small packets pass, VXLAN
              # carrying full-size overlay packets (1450 + 50) dies silently both ways; --probe's vtep echoes find it
              "r-underlay-mtu-blackhole": "manager"}
#: IPv4 total lengths of 1408 bytes and more, as (value, mask) of the u16 at offset 2: 1408-1535, 1536-2047,
#: 2048-4095, 4096-8191, 8192-16383, 16384-32767, 32768-65535 (fault r)
BIG_IP_LENGTHS = (("0x0580", "0xff80"), ("0x0600", "0xfe00"), ("0x0800", "0xf800"), ("0x1000", "0xf000"),
                  ("0x2000", "0xe000"), ("0x4000", "0xc000"), ("0x8000", "0x8000"))
#: the faults only traffic shows: their phase collects with --probe too (on the manager; a worker has no services)
PROBE_FAULTS = ("t-underlay-vxlan-dropped", "r-underlay-mtu-blackhole")


class Mesh(Lab):
    """The lab's three-node swarm with the services placed as issue 12 asks."""

    @property
    def services(self) -> tuple[ServiceSpec, ...]:
        w2 = self.nodes[2].hostname
        return (
            ServiceSpec("whoami", ("--replicas", "2", "--replicas-max-per-node", "1",
                                   "--constraint", f"node.hostname!={w2}", "--publish", f"{PORT}:80",
                                   "--network", OVERLAY_NETWORK), WHOAMI, 2),
            ServiceSpec("client", ("--constraint", f"node.hostname=={w2}", "--network", OVERLAY_NETWORK), SLEEP),
            ServiceSpec("glob", ("--mode", "global", "--network", OVERLAY_NETWORK), SLEEP, None),
        )


def log(msg: str) -> None:
    up = Path("/proc/uptime").read_text().split()[0]
    print(f"MESH3 {msg} uptime={up}", flush=True)


def sh(argv: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, exc.stdout or "", f"timed out after {timeout} s")


def net(node: swarmlab.Node, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """argv in the node's network namespace (iptables, nft, ip: they need nothing of its mounts)."""
    return sh(["nsenter", f"--net={node.netns_path}", *argv], timeout=timeout)


def in_ns_file(node: swarmlab.Node, ns_name: str, *argv: str) -> subprocess.CompletedProcess:
    """argv in one of the node's engine namespaces (an overlay's, lb_, ingress_sbox): their files are
    mounted only inside dockerd's mount namespace, so enter that first."""
    pid = node.dockerd_pid()
    return sh(["nsenter", "-t", str(pid), "-m", "nsenter", f"--net={node.netns_dir}/{ns_name}", *argv])


def wget(prefix: list[str], url: str, tries: int = 4, timeout: int = 5) -> str:
    out = []
    for _ in range(tries):
        # (busybox 1.35's wget crashes on -T: the time limit is timeout's)
        cp = sh([*prefix, "timeout", str(timeout), "busybox", "wget", "-qO-", url], timeout=timeout + 10)
        out.append(cp.stdout.strip() if cp.returncode == 0 else f"FAILED (exit {cp.returncode}) {cp.stderr.strip()[:120]}")
    return "\n".join(out) + "\n"


class Run:
    def __init__(self, out: Path, engine: str | None) -> None:
        self.out = out
        self.lab = Mesh(NAME, nodes=3, engine=engine)
        self.by_name = {n.name: n for n in self.lab.nodes}
        self.attempts = 40

    # ---------------------------------------------------------------- what every phase records
    def containers(self) -> dict[str, str]:
        """whoami's and client's running containers: short id -> node name."""
        out = {}
        for n in self.lab.nodes:
            if n.dockerd_pid() is None:
                continue
            cp = n.docker("ps", "-q", "--no-trunc", "-f", "label=com.docker.swarm.service.name=whoami", timeout=30)
            for cid in cp.stdout.split():
                out[cid[:12]] = n.name
        return out

    def client(self) -> str | None:
        w2 = self.by_name["worker2"]
        if w2.dockerd_pid() is None:
            return None
        ids = w2.docker("ps", "-q", "-f", "label=com.docker.swarm.service.name=client", timeout=30).stdout.split()
        return ids[0] if ids else None

    def collect(self, node: swarmlab.Node, d: Path, probe: bool) -> None:
        d.mkdir(parents=True, exist_ok=True)
        if node.dockerd_pid() is None:
            (d / "collect.rc").write_text("not-running\n")
            (d / "collect.stderr").write_text("dockerd of this node is not running: nothing to collect on it\n")
            return
        t0 = time.monotonic()
        extra = ["--probe", "--probe-timeout", "3"] if probe else []
        # three collections at once under software emulation: each command may take 15 s (a namespace 65 s)
        cp = node.swarmscope("collect", "--netns-dir", str(node.netns_dir), "--json", "--timeout", "15", *extra,
                             timeout=400)
        (d / "collect.json").write_text(cp.stdout)
        (d / "collect.stderr").write_text(cp.stderr)
        (d / "collect.rc").write_text(f"{cp.returncode}\n")
        (d / "collect.seconds").write_text(f"{time.monotonic() - t0:.1f}\n")

    def capture(self, d: Path, probe: bool = False, big: bool = False) -> None:
        d.mkdir(parents=True, exist_ok=True)
        nodes = [{"name": n.name, "hostname": n.hostname, "addr": n.addr, "role": n.role,
                  "running": n.dockerd_pid() is not None} for n in self.lab.nodes]
        (d / "nodes.json").write_text(json.dumps({"nodes": nodes, "whoami": self.containers(), "port": PORT},
                                                 indent=1) + "\n")
        threads = [threading.Thread(target=self.collect, args=(n, d / n.name, probe)) for n in self.lab.nodes]
        for t in threads:
            t.start()
        self.proofs(d, big)
        for t in threads:
            t.join()

    def proofs(self, d: Path, big: bool = False) -> None:
        sw = ["ip", "netns", "exec", self.lab.switch_netns]
        for n in self.lab.nodes:
            url = f"http://{n.addr}:{PORT}/"
            (d / f"wget-external-{n.name}.txt").write_text(wget(sw, url))
            (d / f"wget-local-{n.name}.txt").write_text(wget(["nsenter", f"--net={n.netns_path}"], url, tries=2))
            if big:  # an answer larger than a packet (healthy and fault r): the container and how many bytes came
                got = wget(sw, url + "big", timeout=8).splitlines()
                (d / f"wget-big-{n.name}.txt").write_text("".join(
                    ln + "\n" if ln.startswith("FAILED") else f"{ln[:12]} {len(ln) - 12} bytes\n" for ln in got))
        client = self.client()
        if client:
            w2 = self.by_name["worker2"]
            lines = []
            for _ in range(4):
                cp = w2.docker("exec", client, "timeout", "5", "wget", "-qO-", "http://whoami/", timeout=30)
                lines.append(cp.stdout.strip() if cp.returncode == 0 else f"FAILED (exit {cp.returncode}) {cp.stderr.strip()[:120]}")
            (d / "wget-vip.txt").write_text("\n".join(lines) + "\n")

    def healthy(self, attempts: int | None = None) -> bool:
        """Every node's published port answers from both tasks, from outside; the VIP answers."""
        sw = ["ip", "netns", "exec", self.lab.switch_netns]
        for _ in range(attempts or self.attempts):
            ok = all(n.dockerd_pid() is not None for n in self.lab.nodes)
            if ok:
                try:
                    self.lab.wait_converged(60)
                except swarmlab.LabError:
                    ok = False
            if ok:
                want = {c for c, _ in self.containers().items()}
                for n in self.lab.nodes:
                    got = set(wget(sw, f"http://{n.addr}:{PORT}/", tries=6, timeout=3).split())
                    if not want or not want <= got:
                        ok = False
                        break
            if ok:
                return True
            time.sleep(3)
        return False

    # ---------------------------------------------------------------- faults
    def task_on(self, node: str, network: str = OVERLAY_NETWORK) -> tuple[str, str, str] | None:
        """(container id, its address, its MAC) on ``network`` of the whoami task on ``node``."""
        n = self.by_name[node]
        ids = n.docker("ps", "-q", "--no-trunc", "-f", "label=com.docker.swarm.service.name=whoami").stdout.split()
        if not ids:
            return None
        fmt = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} {{$v.MacAddress}}\n{{end}}"
        for line in n.docker("inspect", "-f", fmt, ids[0]).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == network:
                return ids[0], parts[1], parts[2]
        return None

    def overlay_ns(self, node: swarmlab.Node, network: str = OVERLAY_NETWORK) -> str | None:
        nid = node.docker("network", "inspect", "-f", "{{.Id}}", network).stdout.strip()
        pid = node.dockerd_pid()
        files = os.listdir(f"/proc/{pid}/root{node.netns_dir}") if pid else []
        return next((f for f in files if nid and f.split("-", 1)[-1] == nid[:10]), None)

    def apply(self, fault: str) -> list[str]:
        """Make the fault; the commands and their output, for fault.txt."""
        say: list[str] = []

        def do(cp: subprocess.CompletedProcess, what: str) -> None:
            say.append(f"$ {what}\n(exit {cp.returncode}) {cp.stdout}{cp.stderr}")

        w1, w2, m = self.by_name["worker1"], self.by_name["worker2"], self.by_name["manager"]
        if fault == "u-vxlan-dropped":
            do(net(w1, "iptables", "-I", "INPUT", "-p", "udp", "--dport", "4789", "-j", "DROP"),
               "worker1: iptables -I INPUT -p udp --dport 4789 -j DROP")
        elif fault == "v-vxlan-dropped-nft":
            rules = ("table inet fwtest {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
                     "  udp dport 4789 drop\n }\n}\n")
            do(sh(["nsenter", f"--net={w1.netns_path}", "nft", "-f", "-"], input=rules),
               "worker1: nft -f - <<< 'table inet fwtest { chain input { type filter hook input priority 0; "
               "udp dport 4789 drop } }'")
        elif fault == "w-gossip-dropped":
            for proto in ("tcp", "udp"):
                do(net(w1, "iptables", "-I", "INPUT", "-p", proto, "--dport", "7946", "-j", "DROP"),
                   f"worker1: iptables -I INPUT -p {proto} --dport 7946 -j DROP")
        elif fault == "x-fdb-deleted":
            # on the ingress network: the manager's published port then cannot reach worker1's task (wget shows it)
            t = self.task_on("worker1", "ingress")
            ns = self.overlay_ns(m, "ingress")
            if not t or not ns:
                say.append(f"cannot make the fault: task on worker1 {t}, manager's overlay namespace {ns}")
                return say
            _, ip, mac = t
            (self.out / ".x-fdb.json").write_text(json.dumps({"ns": ns, "ip": ip, "mac": mac}))
            do(in_ns_file(m, ns, "bridge", "fdb", "show", "dev", "vxlan0"), f"manager {ns}: bridge fdb show dev vxlan0")
            do(in_ns_file(m, ns, "ip", "neigh", "show"), f"manager {ns}: ip neigh show")
            vx = in_ns_file(m, ns, "ip", "-o", "link", "show", "type", "vxlan").stdout.split(":")
            dev = vx[1].strip().split("@")[0] if len(vx) > 1 else "vxlan0"
            fdb = [ln for ln in in_ns_file(m, ns, "bridge", "fdb", "show", "dev", dev).stdout.splitlines()
                   if ln.startswith(mac) and " dst " in ln]
            do(in_ns_file(m, ns, "bridge", "fdb", "del", mac, "dev", dev, "self"),
               f"manager {ns}: bridge fdb del {mac} dev {dev} self   # was: {fdb}")
            do(in_ns_file(m, ns, "ip", "neigh", "del", ip, "dev", dev), f"manager {ns}: ip neigh del {ip} dev {dev}")
            (self.out / ".x-fdb.json").write_text(json.dumps({"ns": ns, "ip": ip, "mac": mac, "dev": dev, "fdb": fdb}))
        elif fault == "y-underlay-mtu":
            do(net(w1, "ip", "link", "set", "eth0", "mtu", "1400"), "worker1: ip link set eth0 mtu 1400")
        elif fault == "z-docker-user-drop":
            do(net(w2, "iptables", "-I", "DOCKER-USER", "-p", "tcp", "--dport", str(PORT), "-j", "DROP"),
               f"worker2: iptables -I DOCKER-USER -p tcp --dport {PORT} -j DROP")
        elif fault == "t-underlay-vxlan-dropped":
            # a filter on the underlay between the nodes, outside every node: on the lab switch's port toward
            # worker1, what leaves it for worker1 on udp/4789 is dropped (tc u32; an nft bridge rule where the
            # kernel has no tc actions - in the VM guest the bridge family's forward hook let VXLAN through)
            port, ns = w1.switch_port, ["ip", "netns", "exec", self.lab.switch_netns]
            tc = [[*ns, "tc", "qdisc", "add", "dev", port, "clsact"],
                  [*ns, "tc", "filter", "add", "dev", port, "egress", "protocol", "ip", "u32", "match", "ip",
                   "protocol", "17", "0xff", "match", "ip", "dport", "4789", "0xffff", "action", "drop"]]
            results = [sh(argv) for argv in tc]
            for argv, cp in zip(tc, results, strict=True):
                do(cp, "switch: " + " ".join(argv[4:]))
            if results[-1].returncode != 0:
                sh([*ns, "tc", "qdisc", "del", "dev", port, "clsact"])
                rules = (f"table bridge underlay {{\n chain forward {{\n  type filter hook forward priority 0;\n"
                         f"  ip daddr {w1.addr} udp dport 4789 drop\n }}\n}}\n")
                do(sh([*ns, "nft", "-f", "-"], input=rules),
                   f"switch: nft: bridge forward: ip daddr {w1.addr} udp dport 4789 drop")
        elif fault == "r-underlay-mtu-blackhole":
            # a link of 1400 bytes between the switch and worker1: frames over it are dropped both ways, silently.
            # Lowering the port's MTU alone is not that: a veth hands a GSO packet (a TCP burst, segmented only
            # when it leaves a real device) to the bridge whole, and the MTU check lets it through; so what is
            # over 1407 bytes at the IP layer is dropped by tc on the port too (each IP length range in a u32 mask)
            port, ns = w1.switch_port, ["ip", "netns", "exec", self.lab.switch_netns]
            do(sh([*ns, "ip", "link", "set", port, "mtu", "1400"]), f"switch: ip link set {port} mtu 1400")
            do(sh([*ns, "tc", "qdisc", "add", "dev", port, "clsact"]), f"switch: tc qdisc add dev {port} clsact")
            for way in ("egress", "ingress"):
                for value, mask in BIG_IP_LENGTHS:
                    argv = [*ns, "tc", "filter", "add", "dev", port, way, "protocol", "ip", "u32", "match", "u16",
                            value, mask, "at", "2", "action", "drop"]
                    do(sh(argv), "switch: " + " ".join(argv[4:]))
        elif fault == "s-worker-stopped":
            pid = w2.dockerd_pid()
            say.append(f"worker2: kill -TERM {pid} (dockerd; it does not leave the swarm)")
            if pid:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 60
                while w2.dockerd_pid() is not None and time.monotonic() < deadline:
                    time.sleep(0.5)
            # the manager marks it down after missing its heartbeats
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                st = m.docker("node", "inspect", "-f", "{{.Status.State}}", w2.hostname).stdout.strip()
                if st == "down":
                    break
                time.sleep(2)
            say.append(f"manager: node {w2.hostname} state {st}")
        else:
            raise SystemExit(f"unknown fault {fault}")
        return say

    def undo(self, fault: str) -> None:
        w1, w2, m = self.by_name["worker1"], self.by_name["worker2"], self.by_name["manager"]
        if fault == "u-vxlan-dropped":
            net(w1, "iptables", "-D", "INPUT", "-p", "udp", "--dport", "4789", "-j", "DROP")
        elif fault == "v-vxlan-dropped-nft":
            net(w1, "nft", "delete", "table", "inet", "fwtest")
        elif fault == "w-gossip-dropped":
            for proto in ("tcp", "udp"):
                net(w1, "iptables", "-D", "INPUT", "-p", proto, "--dport", "7946", "-j", "DROP")
        elif fault == "x-fdb-deleted":
            try:
                x = json.loads((self.out / ".x-fdb.json").read_text())
            except (OSError, ValueError):
                return
            for ln in x.get("fdb", []):  # "<mac> dev vxlan0 dst <ip> link-netnsid 0 self permanent"
                parts = ln.split()
                if "dst" in parts:
                    in_ns_file(m, x["ns"], "bridge", "fdb", "add", x["mac"], "dev", x["dev"], "dst",
                               parts[parts.index("dst") + 1], "self", "permanent")
            in_ns_file(m, x["ns"], "ip", "neigh", "add", x["ip"], "lladdr", x["mac"], "dev", x["dev"], "nud", "permanent")
        elif fault == "y-underlay-mtu":
            net(w1, "ip", "link", "set", "eth0", "mtu", "1500")
        elif fault == "z-docker-user-drop":
            net(w2, "iptables", "-D", "DOCKER-USER", "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
        elif fault == "s-worker-stopped":
            w2.start_engine()
        elif fault == "r-underlay-mtu-blackhole":
            ns = ["ip", "netns", "exec", self.lab.switch_netns]
            sh([*ns, "tc", "qdisc", "del", "dev", w1.switch_port, "clsact"])
            sh([*ns, "ip", "link", "set", w1.switch_port, "mtu", "1500"])
        elif fault == "t-underlay-vxlan-dropped":
            ns = ["ip", "netns", "exec", self.lab.switch_netns]
            sh([*ns, "tc", "qdisc", "del", "dev", w1.switch_port, "clsact"])
            sh([*ns, "nft", "delete", "table", "bridge", "underlay"])

    # ---------------------------------------------------------------- phases
    def phase(self, name: str, fault: str | None = None) -> str:
        d = self.out / name
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        log(f"phase {name}")
        if fault:
            (d / "fault.txt").write_text("\n".join(self.apply(fault)) + "\n")
            time.sleep(20 if fault.startswith("w-") else 2)  # gossip: let memberlist notice
        # --probe in the healthy phase (every probe must connect) and where only traffic shows the fault
        self.capture(d, probe=fault is None or fault in PROBE_FAULTS,
                     big=fault is None or fault == "r-underlay-mtu-blackhole")
        outcome = "ok"
        if fault:
            self.undo(fault)
            outcome = "repaired" if self.healthy() else "NOT-REPAIRED"
        with open(self.out / "timings.txt", "a") as f:
            f.write(f"{name} {time.monotonic() - t0:.0f} s\n")
        with open(self.out / "phases.txt", "a") as f:
            f.write(f"{name} {outcome}\n")
        log(f"phase {name} {outcome}")
        return outcome


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--engine", default=None, help="an unpacked engine's directory (default: the machine's dockerd)")
    ap.add_argument("--faults", default=None, help="space-separated (default: all; empty: only healthy)")
    ap.add_argument("--attempts", type=int, default=40,
                    help="tries (3 s apart) for the mesh to answer from every node (1 on a host without ip_vs)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards (a dry run by hand)")
    opts = ap.parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, opts.engine)
    run.attempts = opts.attempts
    t0 = time.monotonic()
    rc = 0
    try:
        log("up")
        run.lab.up()
        (out / "setup.txt").write_text(f"up in {time.monotonic() - t0:.0f} s\n"
                                       + run.lab.docker("node", "ls").stdout + run.lab.docker("service", "ps", "whoami", "client").stdout)
        if not run.healthy():
            (out / "NOT-HEALTHY.txt").write_text("the mesh never answered from every node\n")
            log("never healthy")
        run.phase("healthy")
        for fault in (ALL_FAULTS if opts.faults is None else opts.faults.split()):
            run.phase(fault, fault)
    except Exception:  # noqa: BLE001 - whatever happens, say it and take the lab down
        (out / "FAILED.txt").write_text(traceback.format_exc())
        log("FAILED: " + traceback.format_exc().splitlines()[-1])
        rc = 1
    finally:
        if not opts.keep:
            try:
                run.lab.down()
            except Exception as exc:  # noqa: BLE001
                (out / "down-failed.txt").write_text(str(exc))
    (out / "DONE").write_text(f"{time.monotonic() - t0:.0f} s\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
