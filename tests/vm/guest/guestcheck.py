#!/usr/bin/python3
"""Guest-side facts and health check for the VM scenario (stdlib only, runs on the guest's python3).

    guestcheck.py facts [--json FILE]        facts about the lab swarm; prints shell assignments
    guestcheck.py health [--baseline FILE]   exit 0 when the mesh is in its healthy state; one line per check
    guestcheck.py dump DIR [--full 1]        the Docker API's view (inspect JSON as the CLI prints it) into DIR

The Docker API is read over /var/run/docker.sock directly: one python process is much cheaper under
TCG than a docker CLI process per object.

"Healthy" is what the infrastructure itself can prove without swarmscope: the host DNAT for :8000, the
ingress_sbox MARK rule and FWM service whose real servers are exactly the whoami tasks' ingress
addresses at weight 1, the VIP alias and FWM service in demo's lb_ namespace, the load-balancer
namespaces' sysctls as in the first healthy phase, every service converged, 127.0.0.1:8000 answering
from both tasks and the client reaching whoami's VIP.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import shlex
import socket
import subprocess
import urllib.parse
import sys

NS = "/var/run/docker/netns"
PORT = 8000
SYSCTLS = [
    "net.ipv4.ip_forward",
    "net.ipv4.vs.conntrack",
    "net.ipv4.vs.conn_reuse_mode",
    "net.ipv4.vs.expire_nodest_conn",
    "net.ipv4.vs.expire_quiescent_template",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.eth0.rp_filter",
]


def run(*cmd: str, ns: str | None = None, timeout: float = 30) -> tuple[int, str]:
    if ns:
        cmd = ("nsenter", f"--net={NS}/{ns}", *cmd)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, ""
    return p.returncode, p.stdout


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api(path: str, **query):
    """GET /v1.41<path> on the local engine; parsed JSON, or None on any error."""
    if query:
        path += "?" + urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, dict) else v for k, v in query.items()})
    try:
        c = _UnixHTTP("/var/run/docker.sock", 30)
        c.request("GET", "/v1.41" + path)
        r = c.getresponse()
        body = r.read()
        c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    return json.loads(body)


def service_containers(service: str) -> list[dict]:
    lst = api("/containers/json", filters={"label": [f"com.docker.swarm.service.name={service}"]}) or []
    return [c for c in (api(f"/containers/{x['Id']}/json") for x in lst) if c]


def ipvs_services(ns: str) -> dict[int, list[dict]]:
    """FWM services of `ipvsadm -Ln` in a namespace: {mark: [{addr, weight, forward}]}."""
    rc, out = run("ipvsadm", "-Ln", ns=ns)
    svcs: dict[int, list[dict]] = {}
    cur = None
    for line in out.splitlines():
        m = re.match(r"^FWM\s+(\d+)\s", line)
        if m:
            cur = int(m.group(1))
            svcs[cur] = []
            continue
        if re.match(r"^(TCP|UDP|SCTP)\s", line):
            cur = None
            continue
        m = re.match(r"^\s+->\s+(\d+\.\d+\.\d+\.\d+):(\d+)\s+(\S+)\s+(\d+)", line)
        if m and cur is not None:
            svcs[cur].append({"addr": m.group(1), "forward": m.group(3), "weight": int(m.group(4))})
    return svcs


def sysctls(ns: str) -> dict[str, str]:
    rc, out = run("sysctl", "-e", *SYSCTLS, ns=ns)
    vals = {}
    for line in out.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            vals[k.strip()] = v.strip()
    return vals


def facts() -> dict:
    f: dict = {"errors": []}
    nets = {name: api(f"/networks/{name}", verbose="true") or {} for name in ("ingress", "demo")}
    ingress, demo = nets["ingress"], nets["demo"]
    f["ingress_subnet"] = ((ingress.get("IPAM") or {}).get("Config") or [{}])[0].get("Subnet", "")
    f["demo_id"] = demo.get("Id", "")
    f["lb_ns"] = "lb_" + f["demo_id"][:9] if f["demo_id"] else ""
    f["ingress_lb_index"] = ((ingress.get("Services") or {}).get("whoami") or {}).get("LocalLBIndex", 0)
    f["demo_lb_index"] = ((demo.get("Services") or {}).get("whoami") or {}).get("LocalLBIndex", 0)
    services = api("/services") or []
    svc = next((s for s in services if s["Spec"]["Name"] == "whoami"), {})
    f["whoami_vip_demo"] = ""
    for v in (svc.get("Endpoint") or {}).get("VirtualIPs") or []:
        if v.get("NetworkID") == f["demo_id"]:
            f["whoami_vip_demo"] = v.get("Addr", "").split("/")[0]
    # running whoami task containers
    tasks = []
    for c in service_containers("whoami"):
        if not (c.get("State") or {}).get("Running"):
            continue
        nw = (c.get("NetworkSettings") or {}).get("Networks") or {}
        tasks.append({
            "container": c["Id"],
            "task": (c.get("Config") or {}).get("Labels", {}).get("com.docker.swarm.task.id", ""),
            "hostname": (c.get("Config") or {}).get("Hostname", ""),
            "pid": (c.get("State") or {}).get("Pid", 0),
            "sandbox": os.path.basename((c.get("NetworkSettings") or {}).get("SandboxKey") or ""),
            "ingress_ip": (nw.get("ingress") or {}).get("IPAddress", ""),
            "demo_ip": (nw.get("demo") or {}).get("IPAddress", ""),
        })
    f["whoami_tasks"] = sorted(tasks, key=lambda t: t["ingress_ip"])
    # client container (for DNS and VIP checks)
    lst = api("/containers/json", filters={"label": ["com.docker.swarm.service.name=client"]}) or []
    f["client_container"] = lst[0]["Id"][:12] if lst else ""
    # services converged: running tasks == desired (replicas; 1 per node for global on this 1-node swarm)
    all_tasks = api("/tasks", filters={"desired-state": ["running"]}) or []
    f["services"] = {}
    for s in services:
        mode = s["Spec"].get("Mode") or {}
        want = (mode.get("Replicated") or {}).get("Replicas", 1) if "Replicated" in mode else 1
        have = sum(1 for t in all_tasks if t["ServiceID"] == s["ID"] and t["Status"]["State"] == "running")
        f["services"][s["Spec"]["Name"]] = f"{have}/{want}"
    # kernel state
    rc, out = run("iptables", "-t", "nat", "-S", "DOCKER-INGRESS")
    f["host_dnat"] = [l for l in out.splitlines() if f"--dport {PORT}" in l and "DNAT" in l]
    rc, out = run("iptables", "-t", "mangle", "-S", "PREROUTING", ns="ingress_sbox")
    f["ingress_mark_rules"] = [l for l in out.splitlines() if f"--dport {PORT}" in l and "MARK" in l]
    f["ingress_mark"] = 0
    for l in f["ingress_mark_rules"]:
        m = re.search(r"--set-x?mark (0x[0-9a-f]+)", l)
        if m:
            f["ingress_mark"] = int(m.group(1), 16)
    f["ingress_ipvs"] = {str(k): v for k, v in ipvs_services("ingress_sbox").items()}
    f["ingress_sysctls"] = sysctls("ingress_sbox")
    if f["lb_ns"] and os.path.exists(f"{NS}/{f['lb_ns']}"):
        f["lb_ipvs"] = {str(k): v for k, v in ipvs_services(f["lb_ns"]).items()}
        rc, out = run("ip", "-o", "-4", "addr", "show", "dev", "eth0", ns=f["lb_ns"])
        f["lb_eth0_addrs"] = re.findall(r"inet (\S+)", out)
        f["lb_sysctls"] = sysctls(f["lb_ns"])
    else:
        f["errors"].append(f"no lb_ namespace for demo ({f['lb_ns']!r})")
        f["lb_ipvs"], f["lb_eth0_addrs"], f["lb_sysctls"] = {}, [], {}
    if f["ingress_subnet"]:
        net = ipaddress.ip_network(f["ingress_subnet"], strict=False)
        f["unknown_backend"] = str(net.network_address + 250)
    return f


def wget(url: str, n: int, client: str = "") -> list[str]:
    answers = []
    for _ in range(n):
        # (not `wget -T`: busybox 1.35's static wget segfaults with it; timeout(1) instead)
        cmd = ("docker", "exec", client, "timeout", "3", "wget", "-qO-", url) if client else \
            ("timeout", "3", "busybox", "wget", "-qO-", url)
        rc, out = run(*cmd, timeout=15)
        answers.append(out.strip() if rc == 0 and out.strip() else f"FAILED(rc={rc})")
        if answers[-1].startswith("FAILED"):
            break
    return answers


def health(f: dict, baseline: dict | None) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    tasks = f["whoami_tasks"]
    checks.append((len(tasks) == 2 and all(t["ingress_ip"] and t["demo_ip"] for t in tasks),
                   f"2 running whoami tasks with ingress+demo addresses: {[(t['ingress_ip'], t['demo_ip']) for t in tasks]}"))
    bad = {k: v for k, v in f["services"].items() if v.split("/")[0] != v.split("/")[1]}
    checks.append((len(f["services"]) >= 5 and not bad, f"services converged: {f['services']}"))
    checks.append((len(f["host_dnat"]) == 1, f"host nat DOCKER-INGRESS DNAT for :{PORT}: {f['host_dnat']}"))
    mark = f["ingress_lb_index"]
    checks.append((bool(mark) and f["ingress_mark"] == mark,
                   f"ingress_sbox mangle PREROUTING MARK for :{PORT} = LocalLBIndex {mark}: {f['ingress_mark_rules']}"))
    want = sorted(t["ingress_ip"] for t in tasks)
    rs = f["ingress_ipvs"].get(str(mark), [])
    checks.append((sorted(r["addr"] for r in rs) == want and all(r["weight"] == 1 for r in rs),
                   f"ingress_sbox FWM {mark} real servers = whoami ingress addresses {want}, weight 1: {rs}"))
    vip = f["whoami_vip_demo"]
    checks.append((bool(vip) and f"{vip}/32" in f["lb_eth0_addrs"], f"VIP {vip}/32 on {f['lb_ns']} eth0: {f['lb_eth0_addrs']}"))
    dmark = f["demo_lb_index"]
    want = sorted(t["demo_ip"] for t in tasks)
    rs = f["lb_ipvs"].get(str(dmark), [])
    checks.append((sorted(r["addr"] for r in rs) == want and all(r["weight"] == 1 for r in rs),
                   f"{f['lb_ns']} FWM {dmark} real servers = whoami demo addresses {want}, weight 1: {rs}"))
    if baseline:
        for key in ("ingress_sysctls", "lb_sysctls"):
            checks.append((f[key] == baseline.get(key), f"{key} as in the healthy baseline: {f[key]}"))
    if not all(ok for ok, _ in checks):
        checks.append((False, "(traffic checks skipped: the state above is already wrong)"))
        return checks
    answers = wget(f"http://127.0.0.1:{PORT}/", 4)
    ok = all(not a.startswith("FAILED") for a in answers) and len(set(answers)) == 2
    checks.append((ok, f"127.0.0.1:{PORT} answers round-robin from 2 tasks: {answers}"))
    if f["client_container"]:
        answers = wget("http://whoami/", 2, client=f["client_container"])
        checks.append((all(not a.startswith("FAILED") for a in answers), f"client -> whoami VIP answers: {answers}"))
    else:
        checks.append((False, "no client container"))
    return checks


def dump(d: str, full: bool) -> None:
    """The engine's view, one file per object kind, formatted like the docker CLI's inspect output."""
    os.makedirs(d, exist_ok=True)
    log = []

    def put(name, path, obj, as_list=True):
        with open(os.path.join(d, name), "w") as fh:
            json.dump([obj] if as_list and not isinstance(obj, list) else obj, fh, indent=4)
            fh.write("\n")
        log.append(f"{name}: GET {path}" + ("" if obj is not None else " (FAILED)"))

    info = api("/info") or {}
    put("info.json", "/info", info, as_list=False)
    if full:
        put("version.json", "/version", api("/version"), as_list=False)
    node = (info.get("Swarm") or {}).get("NodeID", "")
    put("node-inspect-self.json", f"/nodes/{node}", api(f"/nodes/{node}"))
    put("network-ls.json", "/networks", api("/networks"))
    for n in ("ingress", "demo"):
        put(f"network-inspect-v-{n}.json", f"/networks/{n}?verbose=true", api(f"/networks/{n}", verbose="true"))
    put("network-inspect-docker_gwbridge.json", "/networks/docker_gwbridge", api("/networks/docker_gwbridge"))
    put("service-inspect.json", "/services", api("/services"))
    put("task-inspect.json", "/tasks", api("/tasks"))
    containers = [api(f"/containers/{c['Id']}/json") for c in api("/containers/json", all="true") or []]
    containers = [c for c in containers if c]
    put("container-inspect.json", "/containers/json?all=true + /containers/ID/json", containers)
    with open(os.path.join(d, "commands.txt"), "a") as fh:
        fh.write("\n".join(log) + "\n")
    # which netns file is whose: "<netns file> <container name> <task id> <service>"
    with open(os.path.join(os.path.dirname(d.rstrip("/")), "sandboxes.txt"), "w") as fh:
        for c in containers:
            labels = (c.get("Config") or {}).get("Labels") or {}
            fh.write(f"{os.path.basename((c.get('NetworkSettings') or {}).get('SandboxKey') or '-')} {c['Name']} "
                     f"{labels.get('com.docker.swarm.task.id', '-')} {labels.get('com.docker.swarm.service.name', '-')}\n")


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "facts"
    if cmd == "dump":
        dump(argv[2], full="--full" in argv)
        return 0
    opt = dict(zip(argv[2::2], argv[3::2]))
    f = facts()
    if "--json" in opt:
        with open(opt["--json"], "w") as fh:
            json.dump(f, fh, indent=2)
    if cmd == "facts":
        t = f["whoami_tasks"]
        sh = {
            "INGRESS_MARK": f["ingress_lb_index"] or f["ingress_mark"],
            "INGRESS_SUBNET": f["ingress_subnet"],
            "UNKNOWN_BACKEND": f.get("unknown_backend", ""),
            "LB_NS": f["lb_ns"],
            "DEMO_MARK": f["demo_lb_index"],
            "WHOAMI_VIP_DEMO": f["whoami_vip_demo"],
            "CLIENT": f["client_container"],
            "T1_CONTAINER": t[0]["container"] if t else "",
            "T1_PID": t[0]["pid"] if t else "",
            "T1_INGRESS_IP": t[0]["ingress_ip"] if t else "",
            "T1_DEMO_IP": t[0]["demo_ip"] if t else "",
            "T2_INGRESS_IP": t[1]["ingress_ip"] if len(t) > 1 else "",
        }
        for k, v in sh.items():
            print(f"{k}={shlex.quote(str(v))}")
        return 0
    if cmd == "health":
        baseline = None
        if opt.get("--baseline") and os.path.exists(opt["--baseline"]):
            with open(opt["--baseline"]) as fh:
                baseline = json.load(fh)
        checks = health(f, baseline)
        for ok, text in checks:
            print(("ok   " if ok else "FAIL ") + text)
        return 0 if all(ok for ok, _ in checks) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
