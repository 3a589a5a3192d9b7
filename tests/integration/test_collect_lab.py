"""`swarmscope collect` on the real lab swarm (a dockerd the tests start).

This kernel has no ip_vs, so the lab is a real node whose mesh is not
programmed: the snapshot must say so, and still show everything that works.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading

import pytest

pytestmark = pytest.mark.lab


def collect(lab, *extra, timeout=180):
    return lab.swarmscope("collect", "--netns-dir", str(lab.netns_dir), *extra, timeout=timeout)


@pytest.fixture(scope="module")
def snapshot(lab):
    cp = collect(lab, "--json")
    assert cp.returncode in (0, 4), cp.stderr
    return json.loads(cp.stdout)


def api_task_addresses(lab, service, network):
    cp = lab.docker("service", "ps", "-q", "--filter", "desired-state=running", "--no-trunc", service)
    out = set()
    for tid in cp.stdout.split():
        t = json.loads(lab.docker("inspect", tid).stdout)[0]
        for att in t.get("NetworksAttachments") or []:
            if att["Network"]["Spec"]["Name"] == network:
                out.update(a.split("/")[0] for a in att["Addresses"])
    return out


def test_snapshot_has_all_six_sections(lab, snapshot):
    assert snapshot["schema"] == "swarmscope/snapshot" and snapshot["version"] == 2
    node = snapshot["node"]
    assert node["role"] == "manager" and node["swarm_state"] == "active" and node["node_id"]
    assert node["engine_version"] and node["api_version"] and node["kernel_release"] == os.uname().release
    assert node["ip_vs"]["available"] is False and "ip_vs" in node["ip_vs"]["detail"]
    assert node["iptables"]["engine_backend"] in ("nft", "legacy")
    for k in ("net.ipv4.ip_forward", "net.ipv4.conf.docker_gwbridge.route_localnet", "net.bridge.bridge-nf-call-iptables"):
        assert k in node["sysctls"]
    host = snapshot["host"]
    # the compact form (issue 17): the parsed rules, not the command's text (that is --raw's and the bundle's)
    assert {"nat", "filter"} <= set(host["iptables"]["tables"]) and host["iptables"]["raw"] == ""
    assert host["gwbridge"]["present"] and host["gwbridge"]["members"]
    # the nftables ruleset (issue 12): iptables-nft's own tables told apart, no text without --raw
    nft = host["nftables"]
    assert nft["available"] and nft["raw"] == "" and {("ip", "nat"), ("ip", "filter")} <= {
        (t["family"], t["name"]) for t in nft["tables"] if t["iptables"]}
    kinds = {n["kind"] for n in snapshot["namespaces"]}
    assert {"ingress_sbox", "lb", "overlay", "container"} <= kinds
    lbs = [n for n in snapshot["namespaces"] if n["kind"] in ("lb", "ingress_sbox")]
    for n in lbs:
        assert n["ipvs"]["available"] is False and "ip_vs" in n["ipvs"]["reason"]
        assert n["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert snapshot["dns"] and snapshot["docker"]["services"] and snapshot["docker"]["tasks"]
    assert snapshot["docker"]["nodes"][0]["role"] == "manager"
    prov = snapshot["provenance"]
    assert any(p["what"].startswith("iptables-nft-save") and p["exit_code"] == 0 for p in prov)
    assert any(p["what"] == "ipvs" and p["status"] == "skipped" and "ip_vs" in p["reason"] for p in prov)
    assert all({"what", "namespace", "status", "duration_ms"} <= set(p) for p in prov)


def test_namespaces_are_joined_to_networks_and_tasks(lab, snapshot):
    demo = json.loads(lab.docker("network", "inspect", "demo").stdout)[0]["Id"]
    lb = [n for n in snapshot["namespaces"] if n["kind"] == "lb"]
    assert [n["network_name"] for n in lb] == ["demo"] and lb[0]["network_id"] == demo
    assert lb[0]["name"] == "lb_" + demo[:9]
    overlay = {n["network_name"] for n in snapshot["namespaces"] if n["kind"] == "overlay"}
    assert overlay == {"demo", "ingress"}
    tasks = {n["service_name"] for n in snapshot["namespaces"] if n["kind"] == "container" and n["task_id"]}
    assert {"whoami", "client", "dnsrr", "glob", "hostport"} <= tasks
    sbox = next(n for n in snapshot["namespaces"] if n["kind"] == "ingress_sbox")
    assert sbox["network_name"] == "ingress"


def test_dns_answers_equal_the_api(lab, snapshot):
    want = api_task_addresses(lab, "whoami", "demo")
    assert len(want) == 2
    by_query = {(a["network_name"], a["query"]): a for a in snapshot["dns"]}
    tasks = by_query[("demo", "tasks.whoami")]
    assert tasks["status"] == "ok" and set(tasks["answers"]) == want
    vip = json.loads(lab.docker("service", "inspect", "whoami").stdout)[0]["Endpoint"]["VirtualIPs"]
    demo = json.loads(lab.docker("network", "inspect", "demo").stdout)[0]["Id"]
    demo_vip = next(v["Addr"].split("/")[0] for v in vip if v["NetworkID"] == demo)
    assert by_query[("demo", "whoami")]["answers"] == [demo_vip]
    # dnsrr: the name answers the task addresses, not a VIP
    assert set(by_query[("demo", "dnsrr")]["answers"]) == api_task_addresses(lab, "dnsrr", "demo")


def test_nothing_secret_is_collected(lab, snapshot):
    text = json.dumps(snapshot)
    for field in ('"Env"', '"Secrets"', '"Configs"', '"Args"', '"Cmd"', "httpd -f"):
        assert field not in text


def test_summary_names_what_it_found(lab):
    cp = collect(lab)
    assert cp.returncode in (0, 4), cp.stderr
    out = cp.stdout
    demo = json.loads(lab.docker("network", "inspect", "demo").stdout)[0]["Id"]
    assert "ingress_sbox" in out and f"lb_{demo[:9]}" in out
    assert re.search(r"^1-\w+\s+overlay\s+demo", out, re.M) and re.search(r"^1-\w+\s+overlay\s+ingress", out, re.M)
    assert re.search(r"^[0-9a-f]{12}\s+container\s+whoami\.1\.", out, re.M)
    addrs = sorted(api_task_addresses(lab, "whoami", "demo"))
    assert re.search(r"demo\s+tasks\.whoami\s+ok\s+" + r"\s+".join(map(re.escape, addrs)), out), out
    assert re.search(r"demo\s+whoami\s+ok\s+10\.", out)
    assert "kernel has no ip_vs" in out


def _state(lab):
    """Everything collect could change: namespace list, rules of both backends, addresses, per namespace."""
    names = sorted(os.listdir(lab.netns_dir))
    state = {"netns": names, "run-netns": sorted(os.listdir("/run/netns"))}
    # comments carry timestamps, counters move with traffic, IPv6 DAD clears "tentative" on its own
    strip = re.compile(r"^#.*$|\[\d+:\d+\]| tentative|counter packets \d+ bytes \d+", re.M)
    places = [None] + [str(lab.netns_dir / n) for n in names]
    for p in places:
        pre = ["nsenter", f"--net={p}"] if p else []
        for cmd in (["iptables-nft-save"], ["iptables-legacy-save"], ["nft", "list", "ruleset"], ["ip", "-o", "addr"],
                    ["ip", "-o", "link"], ["ip", "route"], ["ip", "neigh", "show", "nud", "permanent"]):
            cp = lab.in_node(pre + cmd, check=False)
            state[f"{p}:{' '.join(cmd)}"] = strip.sub("", cp.stdout)
        # the vxlan devices' FDB (issue 12), device by device: `bridge fdb show` without one can hang in a namespace
        cp = lab.in_node(pre + ["ip", "-o", "link", "show", "type", "vxlan"], check=False)
        for dev in sorted(ln.split(":")[1].strip().split("@")[0] for ln in cp.stdout.splitlines() if ":" in ln):
            fdb = lab.in_node(pre + ["timeout", "10", "bridge", "fdb", "show", "dev", dev], check=False)
            # permanent entries only: a learning vxlan device (20.10 makes them so) learns and ages others by itself
            state[f"{p}:bridge fdb show dev {dev}"] = "".join(
                ln for ln in fdb.stdout.splitlines(keepends=True) if "permanent" in ln)
    state["host-ipvs"] = os.path.exists("/proc/net/ip_vs")
    if os.path.exists("/proc/modules"):  # a kernel built without modules has none
        state["modules"] = sorted(l.split()[0] for l in open("/proc/modules"))
    return state


def test_raw_keeps_the_commands_text(lab):
    cp = collect(lab, "--json", "--raw")
    assert cp.returncode in (0, 4), cp.stderr
    snap = json.loads(cp.stdout)
    assert snap["host"]["iptables"]["raw"].startswith("# Generated")
    sbox = next(n for n in snap["namespaces"] if n["kind"] == "ingress_sbox")
    assert sbox["iptables"]["raw"].startswith("# Generated")
    assert json.loads(snap["host"]["nftables"]["raw"])["nftables"][0]["metainfo"]


def test_collection_is_read_only(lab):
    before = _state(lab)
    cp = collect(lab, "--json")
    assert cp.returncode in (0, 4), cp.stderr
    cp = lab.swarmscope("explain", "--netns-dir", str(lab.netns_dir), "whoami", timeout=180)
    assert cp.returncode in (0, 1, 4), cp.stderr
    # a probing run too (issue 13): connections leave conntrack entries, never a rule, address or namespace
    cp = lab.swarmscope("check", "--probe", "--probe-http", "--netns-dir", str(lab.netns_dir), timeout=180)
    assert cp.returncode in (0, 1, 4) and "probed" in cp.stderr, cp.stderr
    after = _state(lab)
    assert before.keys() == after.keys()
    for k in before:
        assert before[k] == after[k], k


def test_namespace_that_vanishes_is_recorded_and_the_rest_goes_on(lab, tmp_path):
    """A namespace listed and gone by the time it is entered (a dangling entry),
    and a stale sandbox file that is no longer a namespace (EINVAL)."""
    d = tmp_path / "netns"
    d.mkdir()
    for n in os.listdir(lab.netns_dir):
        (d / n).symlink_to(lab.netns_dir / n)
    (d / "0123456789ab").symlink_to(tmp_path / "gone")
    (d / "ba9876543210").write_text("")
    cp = lab.swarmscope("collect", "--json", "--netns-dir", str(d), timeout=180)
    assert cp.returncode == 4, cp.stderr
    snap = json.loads(cp.stdout)
    ns = {n["name"]: n for n in snap["namespaces"]}
    assert ns["0123456789ab"]["vanished"] is True and "vanished" in ns["0123456789ab"]["errors"][0]
    # a plain file is what a removed sandbox leaves behind: stale, reported, not an error
    assert ns["ba9876543210"]["stale"] is True and ns["ba9876543210"]["errors"] == []
    assert any(p["namespace"] == "ba9876543210" and "left behind" in p["reason"] for p in snap["provenance"])
    assert snap["complete"] is False and len(snap["errors"]) == 1
    assert ns["ingress_sbox"]["interfaces"] and ns["ingress_sbox"]["iptables"]["available"]
    assert sum(1 for n in ns.values() if n["kind"] == "container" and n["interfaces"]) >= 5


def test_netns_dir_seen_without_its_mounts(lab, tmp_path):
    """What an agent container without bind-propagation=rslave sees: plain files, no namespaces."""
    d = tmp_path / "netns"
    d.mkdir()
    for n in os.listdir(lab.netns_dir):
        (d / n).write_text("")
    cp = lab.swarmscope("collect", "--json", "--netns-dir", str(d), "--no-dns", timeout=180)
    assert cp.returncode == 4
    snap = json.loads(cp.stdout)
    assert any("bind-propagation=rslave" in e and "Invalid argument" in e for e in snap["errors"])


def test_command_timeout_is_recorded(lab):
    cp = collect(lab, "--json", "--timeout", "0.001", "--no-dns")
    assert cp.returncode == 4, cp.stderr
    snap = json.loads(cp.stdout)
    timeouts = [p for p in snap["provenance"] if p["status"] == "timeout"]
    assert timeouts and all("timed out after 0.001s" in p["reason"] for p in timeouts)
    assert snap["namespaces"] and snap["docker"]["services"]  # the rest went on
    assert any("timed out" in e for e in snap["errors"])


def test_no_docker_api(lab, tmp_path):
    cp = lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), "-H", f"unix://{tmp_path}/nope.sock", timeout=180)
    assert cp.returncode == 4
    assert cp.stderr.strip() == (f"swarmscope: warning: no Docker socket at {tmp_path}/nope.sock: is dockerd running? "
                                 "point swarmscope at it with -H/--host or DOCKER_HOST")
    snap = json.loads(cp.stdout)
    assert snap["docker"]["available"] is False and snap["docker"]["services"] == []
    assert len(snap["namespaces"]) == len(os.listdir(lab.netns_dir))
    assert any(n["kind"] == "ingress_sbox" and n["interfaces"] for n in snap["namespaces"])


def test_docker_api_that_does_not_answer(lab, tmp_path):
    path = str(tmp_path / "silent.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept and never answer
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        cp = lab.swarmscope("collect", "--json", "--netns-dir", str(lab.netns_dir), "-H", f"unix://{path}",
                            "--docker-timeout", "1", "--no-dns", timeout=120)
    finally:
        stop.set()
        t.join()
        srv.close()
        for c in held:
            c.close()
    assert cp.returncode == 4
    assert "did not answer in time" in cp.stderr
    snap = json.loads(cp.stdout)
    assert snap["docker"]["available"] is False and snap["namespaces"]
