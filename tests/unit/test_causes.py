"""Collector-backed causes (issue #16): modules present but unusable, iptables without the ipvs match,
what dockerd's log already said, IPVS timeouts and the connection table.

Inputs, and how each was derived:

- module indexes: ``tests/fixtures/captured/debian12-modules/`` -- Debian 12's real ``modules.builtin``
  and the netfilter lines of its ``modules.dep`` (6.1.0-57-amd64, read from the VM tier's disk image;
  see that README), placed under a fake ``/lib/modules/<release>``; "a kernel without ip_vs_rr / xt_ipvs"
  is the same index with those lines removed (what a trimmed modules package leaves);
- xtables: the real list of ``.so`` names of Debian 12's ``/usr/lib/x86_64-linux-gnu/xtables`` as empty files;
- dockerd log lines: moby's format strings at v20.10.24 and v28.5.2 (``git grep`` in the moby mirror:
  libnetwork/service_linux.go, daemon/network.go, vendor/github.com/moby/ipvs/netlink*.go,
  libnetwork/iptables/iptables.go ``iptables failed: %s %v: %s (%s)``) filled in with the lab's ids and
  addresses, in logrus' text format as ``journalctl -o cat`` prints it; iptables' own message is
  xtables.c's "Couldn't load match `%s':%s";
- ``ipvsadm -L --timeout``: ipvsadm's print_timeout format ("Timeout (tcp tcpfin udp): %d %d %d");
- ``/proc/net/ip_vs_conn``: lines made with the kernel's own format string (ip_vs_conn_seq_show,
  ``"%-3s %08X %04X %08X %04X %s %04X %-11s %7u"`` after the header) for the lab-vm capture's addresses;
- snapshots: the lab-vm capture (a real ip_vs kernel, healthy; tests/unit/rawsnap.py), edited the way
  each fault edits the node.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

import pytest
import rawsnap

from swarmscope.collect import dockerd_log, modsupport
from swarmscope.correlate import analyze
from swarmscope.model import DockerdLog, IpvsTimeouts, KernelModule, LogMatch, XtablesExtension
from swarmscope.parse.ipvs_conn import conn_summary, parse_ip_vs_conn, parse_ipvsadm_timeout
from test_correlate import drop_rules, finding, ns, roots

DEB = Path(__file__).resolve().parents[1] / "fixtures" / "captured" / "debian12-modules"
REL = "6.1.0-57-amd64"
NEW_IDS = {"kernel.ipvs-scheduler-missing", "kernel.netfilter-module-missing", "iptables.no-ipvs-match",
           "ipvs.conn-stale-udp", "ipvs.idle-timeout"}


def _tree(tmp: Path, loaded=(), builtin_sys=(), drop=()) -> dict:
    """A fake /sys/module and /lib/modules/<REL> from Debian 12's real indexes, minus ``drop`` modules."""
    sysm, lib = tmp / "sys_module", tmp / "lib_modules"
    for name in loaded:
        (sysm / name).mkdir(parents=True)
        (sysm / name / "initstate").write_text("live\n")
    for name in builtin_sys:
        (sysm / name / "parameters").mkdir(parents=True)
    (lib / REL).mkdir(parents=True)
    shutil.copy(DEB / "modules.builtin", lib / REL / "modules.builtin")
    dep = [l for l in (DEB / "modules.dep").read_text().splitlines()
           if not any(l.split(":")[0].endswith(f"/{d}.ko") for d in drop)]
    (lib / REL / "modules.dep").write_text("\n".join(dep) + "\n")
    sysm.mkdir(exist_ok=True)
    return {"sys_module": str(sysm), "lib_modules": str(lib)}


# --------------------------------------------------------------------------
# collection: modules and extensions, read-only


def test_debian12_modules_are_usable_loaded_or_on_disk(tmp_path):
    kw = _tree(tmp_path, loaded=["ip_vs", "xt_mark"])
    got = {m.name: m.state for m in modsupport.mesh_modules(REL, **kw)}
    # xt_mark loaded; the others are modules.dep entries the kernel loads on demand
    assert got == {"ip_vs_rr": "on-disk", "xt_mark": "loaded", "nf_nat": "on-disk", "xt_ipvs": "on-disk"}


def test_trimmed_modules_package_lacks_rr_and_xt_ipvs(tmp_path):
    kw = _tree(tmp_path, loaded=["ip_vs"], drop=["ip_vs_rr", "xt_ipvs"])
    got = {m.name: m for m in modsupport.mesh_modules(REL, **kw)}
    assert got["ip_vs_rr"].state == "absent" and got["xt_ipvs"].state == "absent"
    assert got["nf_nat"].state == "on-disk"
    assert "modules.dep" in got["ip_vs_rr"].how


def test_builtin_module_in_sysfs_without_initstate(tmp_path):
    kw = _tree(tmp_path, builtin_sys=["nf_nat"], drop=["nf_nat"])
    assert modsupport.module_state("nf_nat", REL, **kw).state == "builtin"


def test_builtin_per_modules_builtin(tmp_path):
    kw = _tree(tmp_path)
    (Path(kw["lib_modules"]) / REL / "modules.builtin").write_text("kernel/net/netfilter/ipvs/ip_vs_rr.ko\n")
    assert modsupport.module_state("ip_vs_rr", REL, **kw).state == "builtin"


def test_without_lib_modules_nothing_is_called_absent(tmp_path):
    # the lab here, or an agent container without /lib/modules: unknown, never absent
    (tmp_path / "sys").mkdir()
    m = modsupport.module_state("ip_vs_rr", "6.18.44-fc", sys_module=str(tmp_path / "sys"), lib_modules=str(tmp_path / "none"))
    assert m.state == "unknown"


def test_xtables_ipvs_extension(tmp_path):
    d = tmp_path / "usr" / "lib" / "x86_64-linux-gnu" / "xtables"
    d.mkdir(parents=True)
    names = (DEB / "xtables-ls.txt").read_text().split()
    for n in names:
        (d / n).write_text("")
    assert modsupport.xtables_extension("ipvs", [str(d)]).found is True
    (d / "libxt_ipvs.so").unlink()
    x = modsupport.xtables_extension("ipvs", [str(d)])
    assert x.found is False and "libxt_ipvs.so" in x.how
    # a directory without extensions (a static build) says nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    assert modsupport.xtables_extension("ipvs", [str(empty)]).found is None


def test_xtables_dirs_follow_the_binary(tmp_path):
    sbin, lib = tmp_path / "sbin", tmp_path / "lib" / "x86_64-linux-gnu" / "xtables"
    sbin.mkdir()
    lib.mkdir(parents=True)
    (sbin / "xtables-nft-multi").write_text("")
    assert str(lib) in modsupport.xtables_dirs(str(sbin / "xtables-nft-multi"))


# --------------------------------------------------------------------------
# collection: dockerd's log

LOG_20 = [  # v20.10.24, vendor/github.com/docker/libnetwork/service_linux.go and the fwmarker child
    'time="2026-11-29T10:00:01.100000000Z" level=error msg="Could not get ipvs family information from the kernel. '
    'It is possible that ipvs is not enabled in your kernel. Native loadbalancing will not work until this is fixed."',
    'time="2026-11-29T10:00:02.200000000Z" level=error msg="set up rule failed, [-t nat -A POSTROUTING -m ipvs --ipvs -d '
    '10.0.1.0/24 -j SNAT --to-source 10.0.1.4]:  (iptables failed: iptables --wait -t nat -A POSTROUTING -m ipvs --ipvs '
    '-d 10.0.1.0/24 -j SNAT --to-source 10.0.1.4: iptables v1.8.9 (nf_tables): Couldn\'t load match `ipvs\':No such file '
    'or directory\\n\\nTry `iptables -h\' or \'iptables --help\' for more information.\\n (exit status 2))"',
    'time="2026-11-29T10:00:02.300000000Z" level=error msg="Failed to add firewall mark rule in sbox lb_odns (lb_odns2): '
    'reexec failed: exit status 8"',
    'time="2026-11-29T10:00:03.000000000Z" level=error msg="Failed to write to /proc/sys/net/ipv4/vs/conntrack: open '
    '/proc/sys/net/ipv4/vs/conntrack: no such file or directory"',
    'time="2026-11-29T10:00:04.000000000Z" level=info msg="Loading containers: done."',
]
LOG_28 = [  # v28.5.2: daemon/network.go wraps it; libnetwork/service_linux.go
    'time="2026-11-29T11:00:00.000000000Z" level=error msg="failed to find a load balancer IP to use for network: '
    'odns2ld5kvpbq1k1pu7ow3ivx"',
    'time="2026-11-29T11:00:01.000000000Z" level=error msg="Failed to create a new service for vip 10.0.1.2 fwmark 257 '
    'in sbox lb_odns (lb_odns2): no such file or directory"',
    'time="2026-11-29T11:00:01.100000000Z" level=error msg="Failed to create real server 10.0.1.3 for vip 10.0.1.2 '
    'fwmark 257 in sbox lb_odns (lb_odns2): no such process"',
]


def test_known_lines_are_matched_and_others_ignored():
    log = dockerd_log.match_lines("\n".join(LOG_20 + LOG_28), "test")
    assert [m.kind for m in log.matches] == ["ipvs-family", "no-ipvs-match", "fwmark-failed", "vs-conntrack",
                                            "no-lb-ip", "ipvs-service-failed", "real-server-failed"]
    assert log.lines_read == 8 and not log.truncated


def test_matches_are_capped():
    log = dockerd_log.match_lines("\n".join([LOG_20[2]] * 50), "test")
    assert len(log.matches) == dockerd_log.MAX_PER_KIND and log.truncated


def test_only_the_end_of_a_named_file_is_read(tmp_path):
    p = tmp_path / "dockerd.log"
    p.write_text(LOG_20[2] + "\n" + ("x" * 100 + "\n") * 5000 + LOG_28[0] + "\n")
    log = dockerd_log.read_file(str(p), tail=64 * 1024)
    assert [m.kind for m in log.matches] == ["no-lb-ip"] and log.truncated
    missing = dockerd_log.read_file(str(tmp_path / "nope"))
    assert not missing.available and "cannot read" in missing.reason


# --------------------------------------------------------------------------
# parsing: timeouts and the connection table

CONN_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"


def conn_line(proto, frm, fport, to, tport, dest, dport, state, expires):
    h = lambda a: int(ipaddress.IPv4Address(a))  # noqa: E731
    return "%-3s %08X %04X %08X %04X %08X %04X %-11s %7u\n" % (proto, h(frm), fport, h(to), tport, h(dest), dport, state, expires)


def test_ipvsadm_timeout():
    t = parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 900 120 300\n")
    assert (t.tcp, t.tcpfin, t.udp) == (900, 120, 300)


def test_ip_vs_conn_grouped():
    text = CONN_HEADER + "".join([
        conn_line("TCP", "10.0.1.6", 41000, "10.0.1.2", 80, "10.0.1.3", 80, "ESTABLISHED", 895),
        conn_line("TCP", "10.0.1.6", 41001, "10.0.1.2", 80, "10.0.1.3", 80, "ESTABLISHED", 120),
        conn_line("TCP", "10.0.1.6", 41002, "10.0.1.2", 80, "10.0.1.5", 80, "TIME_WAIT", 60),
        conn_line("UDP", "10.0.1.6", 5000, "10.0.1.2", 53, "10.0.1.9", 53, "UDP", 290),
    ])
    groups, total = parse_ip_vs_conn(text)
    assert total == 4 and len(groups) == 3
    est = next(g for g in groups if g.state == "ESTABLISHED")
    assert (est.vaddr, est.vport, est.daddr, est.count, est.min_expires) == ("10.0.1.2", 80, "10.0.1.3", 2, 120)
    assert conn_summary(groups)[("10.0.1.2", 53, "10.0.1.9")] == {"UDP": 1}


def test_empty_conn_table_is_just_the_header():
    assert parse_ip_vs_conn(CONN_HEADER) == ([], 0)


# --------------------------------------------------------------------------
# the correlator


@pytest.fixture
def snap():
    return rawsnap.lab_vm("with-overlay")


def _usable(snap):
    snap.node.modules = [KernelModule(n, "on-disk", "modules.dep") for n in modsupport.MESH_MODULES]
    snap.node.xtables = [XtablesExtension("ipvs", True, "/usr/lib/x86_64-linux-gnu/xtables/libxt_ipvs.so", "found")]


def test_healthy_with_everything_collected_adds_nothing(snap):
    _usable(snap)
    lb = ns(snap, "lb", "appnet")
    lb.ipvs.timeouts = IpvsTimeouts(900, 120, 300, "ipvsadm")
    lb.ipvs.conns, lb.ipvs.conns_total = parse_ip_vs_conn(CONN_HEADER + conn_line(
        "TCP", "10.0.1.6", 41000, "10.0.1.2", 8000, "10.0.1.3", 8000, "ESTABLISHED", 880))
    snap.node.dockerd_log = DockerdLog("journalctl", matches=[LogMatch("ipvs-family", LOG_20[0])])
    assert analyze([snap]).findings == []  # an old log line alone is never a finding


def test_modules_absent_but_proven_working_by_the_tables(snap):
    # the rr services, MARK and SNAT rules exist: whatever the index says, they work (e.g. a stale index)
    snap.node.modules = [KernelModule(n, "absent", "test") for n in modsupport.MESH_MODULES]
    snap.node.xtables = [XtablesExtension("ipvs", False, "/x", "no libxt_ipvs.so")]
    assert analyze([snap]).findings == []


def test_no_ipvs_stays_the_one_root_with_every_module_absent(snap):
    """The lab's case: no ip_vs. kernel.no-ipvs explains everything; no second root for it."""
    snap.node.ip_vs.available = False
    snap.node.ip_vs.detail = "kernel has no ip_vs"
    snap.node.modules = [KernelModule(n, "absent", "test") for n in modsupport.MESH_MODULES]
    snap.node.xtables = [XtablesExtension("ipvs", False, "/x", "no libxt_ipvs.so")]
    snap.node.dockerd_log = DockerdLog("journalctl", matches=[LogMatch("ipvs-family", LOG_20[0])])
    for n in snap.namespaces:
        if n.kind in ("ingress_sbox", "lb"):
            n.ipvs.available, n.ipvs.services = False, []
            for t in n.iptables.tables.values():
                for c in t.chains.values():
                    c.rules = [r for r in c.rules if r.target not in ("MARK", "SNAT")]
    a = analyze([snap])
    assert roots(a) == ["kernel.no-ipvs"]
    assert not {f.id for f in a.findings} & NEW_IDS
    assert any("Could not get ipvs family" in e for e in finding(a, "kernel.no-ipvs").evidence)


def _fwmarker_failed_at_snat(snap):
    """What dockerd leaves when the SNAT rule fails: the port MARK stays, SNAT and the VIP's INPUT MARK are
    never added, and addLBBackend returns before NewService (no IPVS service, no real servers)."""
    for n in snap.namespaces:
        if n.kind in ("ingress_sbox", "lb"):
            drop_rules(n.iptables, "nat", "POSTROUTING", lambda r: r.target == "SNAT")
            drop_rules(n.iptables, "mangle", "INPUT", lambda r: r.target == "MARK")
            n.ipvs.services = []


def test_no_userspace_ipvs_match_is_the_root_of_the_missing_snat(snap):
    _usable(snap)
    snap.node.xtables = [XtablesExtension("ipvs", False, "/usr/lib/x86_64-linux-gnu/xtables",
                                          "no libxt_ipvs.so in /usr/lib/x86_64-linux-gnu/xtables")]
    snap.node.dockerd_log = dockerd_log.match_lines("\n".join(LOG_20[1:3]), "journalctl -u docker.service --since -2h")
    _fwmarker_failed_at_snat(snap)
    a = analyze([snap])
    assert roots(a) == ["iptables.no-ipvs-match"]
    f = finding(a, "iptables.no-ipvs-match")
    assert {"ingress.snat-missing", "vip.snat-missing", "vip.ipvs-service-missing"} <= set(f.explained)
    assert any("Couldn't load match `ipvs'" in e for e in f.evidence)
    # the symptoms carry dockerd's line too
    assert any("reexec failed: exit status 8" in e for e in finding(a, "vip.snat-missing").evidence)


def test_ipvs_match_removed_after_the_ingress_sandbox_was_made(snap):
    """The VM tier's fault i: libxt_ipvs.so moved aside, then the demo network re-created. ingress_sbox
    keeps the SNAT rule it got at start; the new lb_ has none. The userspace side is still the cause."""
    _usable(snap)
    snap.node.xtables = [XtablesExtension("ipvs", False, "/usr/lib/x86_64-linux-gnu/xtables",
                                          "no libxt_ipvs.so in /usr/lib/x86_64-linux-gnu/xtables")]
    for n in snap.namespaces:
        if n.kind == "lb":
            drop_rules(n.iptables, "nat", "POSTROUTING", lambda r: r.target == "SNAT")
            drop_rules(n.iptables, "mangle", "INPUT", lambda r: r.target == "MARK")
            n.ipvs.services = []
    a = analyze([snap])
    assert roots(a) == ["iptables.no-ipvs-match"], [(f.id, f.detail) for f in a.findings]
    f = finding(a, "iptables.no-ipvs-match")
    assert f.detail == "userspace side missing"
    assert any(e.startswith("no ipvs SNAT rule in lb_") for e in f.evidence)
    # with the library there, the same state is not blamed on it
    snap.node.xtables = [XtablesExtension("ipvs", True, "/usr/lib/x86_64-linux-gnu/xtables", "libxt_ipvs.so")]
    assert "iptables.no-ipvs-match" not in roots(analyze([snap]))


def test_no_kernel_xt_ipvs_is_the_root_of_the_missing_snat(snap):
    _usable(snap)
    snap.node.modules = [KernelModule("xt_ipvs", "absent", "not in /sys/module/xt_ipvs, modules.builtin or modules.dep")
                         if m.name == "xt_ipvs" else m for m in snap.node.modules]
    _fwmarker_failed_at_snat(snap)
    a = analyze([snap])
    assert roots(a) == ["iptables.no-ipvs-match"]
    assert "kernel side missing" in finding(a, "iptables.no-ipvs-match").detail


def test_no_rr_scheduler_is_the_root_of_the_missing_ipvs_services(snap):
    _usable(snap)
    snap.node.modules[0] = KernelModule("ip_vs_rr", "absent", "not in modules.dep")
    snap.node.dockerd_log = dockerd_log.match_lines("\n".join(LOG_28[1:]), "journalctl")
    for n in snap.namespaces:
        if n.kind in ("ingress_sbox", "lb"):
            n.ipvs.services = []  # NewService fails: no scheduler; the MARK and SNAT rules came before it
    a = analyze([snap])
    assert roots(a) == ["kernel.ipvs-scheduler-missing"]
    f = finding(a, "kernel.ipvs-scheduler-missing")
    assert {"ingress.ipvs-service-missing", "vip.ipvs-service-missing"} <= set(f.explained)
    assert any("Failed to create a new service for vip" in e for e in f.evidence)


def test_no_xt_mark_is_the_root_of_the_missing_marks(snap):
    _usable(snap)
    snap.node.modules[1] = KernelModule("xt_mark", "absent", "not in modules.dep")
    for n in snap.namespaces:
        if n.kind in ("ingress_sbox", "lb"):
            for c in ("PREROUTING", "INPUT"):
                n.iptables.tables["mangle"].chains[c].rules = []
            n.ipvs.services = []
    a = analyze([snap])
    assert roots(a) == ["kernel.netfilter-module-missing"]
    assert "xt_mark" in finding(a, "kernel.netfilter-module-missing").detail


def test_stale_udp_entries_to_an_address_no_task_has(snap):
    _usable(snap)
    lb = ns(snap, "lb", "appnet")
    lb.ipvs.conns, lb.ipvs.conns_total = parse_ip_vs_conn(CONN_HEADER + "".join([
        conn_line("UDP", "10.0.1.6", 5000, "10.0.1.2", 53, "10.0.1.9", 53, "UDP", 290),
        conn_line("UDP", "10.0.1.6", 5001, "10.0.1.2", 53, "10.0.1.9", 53, "UDP", 100),
        conn_line("UDP", "10.0.1.6", 5002, "10.0.1.2", 53, "10.0.1.3", 53, "UDP", 290),  # a running task: fine
    ]))
    a = analyze([snap])
    assert roots(a) == ["ipvs.conn-stale-udp"]
    f = finding(a, "ipvs.conn-stale-udp")
    assert f.severity == "warning" and f.service == "whoami" and f.network == "appnet"
    assert "2 UDP entries to 10.0.1.9" in f.detail
    assert all(np.verdict == "ok" for sp in a.services for vp in sp.vip_paths for np in vp.nodes)


def test_idle_tcp_connections_are_an_informational_note(snap):
    _usable(snap)
    lb = ns(snap, "lb", "appnet")
    lb.ipvs.timeouts = parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 900 120 300\n")
    lb.ipvs.conns, lb.ipvs.conns_total = parse_ip_vs_conn(CONN_HEADER + "".join([
        conn_line("TCP", "10.0.1.6", 41000, "10.0.1.2", 8000, "10.0.1.3", 8000, "ESTABLISHED", 100),  # idle 800 s
        conn_line("TCP", "10.0.1.6", 41001, "10.0.1.2", 8000, "10.0.1.5", 8000, "ESTABLISHED", 899),  # busy
    ]))
    a = analyze([snap])
    f = finding(a, "ipvs.idle-timeout")
    assert f.severity == "info" and f.service == "whoami"
    assert "idle up to 800 s of the 900 s tcp timeout" in f.detail and "ipvsadm --set" in f.hint
    from swarmscope.correlate.findings import fails
    assert not fails(a.findings, a.services)


def test_collect_summary_counts_connections_per_real_server(snap):
    from swarmscope.render.summary import render_summary

    _usable(snap)
    lb = ns(snap, "lb", "appnet")
    lb.ipvs.timeouts = IpvsTimeouts(900, 120, 300, "ipvsadm")
    lb.ipvs.conns, lb.ipvs.conns_total = parse_ip_vs_conn(CONN_HEADER + "".join([
        conn_line("TCP", "10.0.1.6", 41000, "10.0.1.2", 8000, "10.0.1.3", 8000, "ESTABLISHED", 880),
        conn_line("TCP", "10.0.1.6", 41001, "10.0.1.2", 8000, "10.0.1.3", 8000, "TIME_WAIT", 60),
        conn_line("UDP", "10.0.1.6", 5000, "10.0.1.2", 53, "10.0.1.9", 53, "UDP", 290),
    ]))
    snap.node.dockerd_log = DockerdLog("journalctl -u docker.service --since -2h", lines_read=120)
    text = render_summary(snap)
    row = next(l for l in text.splitlines() if "10.0.1.3" in l and "ESTABLISHED" in l)
    assert "ESTABLISHED 1, TIME_WAIT 1" in row and "900/120/300" in row and "whoami" in row
    assert "no task" in next(l for l in text.splitlines() if "10.0.1.9" in l)
    assert "modules: ip_vs_rr on-disk" in text and "libxt_ipvs.so found" in text
    assert "dockerd log: 0 known error line(s) in 120 lines" in text


# --------------------------------------------------------------------------
# collection in a namespace: timeouts and connections only where ip_vs is loaded


def test_timeouts_and_conns_read_where_ip_vs_is_loaded(monkeypatch):
    """/proc/thread-self/net/ip_vs present (ip_vs loaded): ipvsadm -L --timeout runs, the connection table is read."""
    import builtins
    import io

    from swarmscope.collect import ipvs as cipvs
    from swarmscope.collect.runner import CommandResult, Recorder
    from swarmscope.model import IpvsTable

    conn_text = CONN_HEADER + conn_line("UDP", "10.0.1.6", 5000, "10.0.1.2", 53, "10.0.1.9", 53, "UDP", 290)
    real_exists, real_open = cipvs.os.path.exists, builtins.open
    monkeypatch.setattr(cipvs.os.path, "exists", lambda p: p.startswith("/proc/thread-self/net/ip_vs") or real_exists(p))
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: io.StringIO(conn_text)
                        if p == "/proc/thread-self/net/ip_vs_conn" else real_open(p, *a, **k))
    ran = []

    def fake_run(self, what, namespace, argv, timeout=None, ok_codes=(0,)):
        ran.append(argv)
        return CommandResult(argv, 0, "Timeout (tcp tcpfin udp): 7200 120 300\n", "", "ok")

    monkeypatch.setattr(Recorder, "run", fake_run)
    rec, t = Recorder(), IpvsTable(available=True, source="netlink")
    cipvs.read_timeouts(rec, "lb_x", t)
    cipvs.read_conns(rec, "lb_x", t)
    assert ran == [["ipvsadm", "-L", "--timeout"]]
    assert (t.timeouts.tcp, t.conns_total, t.conns[0].daddr) == (7200, 1, "10.0.1.9")


def test_nothing_asked_where_ip_vs_is_not_loaded(monkeypatch):
    """No /proc/thread-self/net/ip_vs (this machine's kernel): ipvsadm is not run (it would `modprobe ip_vs`)."""
    from swarmscope.collect import ipvs as cipvs
    from swarmscope.collect.runner import Recorder
    from swarmscope.model import IpvsTable

    monkeypatch.setattr(cipvs.os.path, "exists", lambda p: False)
    monkeypatch.setattr(Recorder, "run", lambda *a, **k: pytest.fail("a command ran"))
    rec, t = Recorder(), IpvsTable(available=True, source="netlink")
    cipvs.read_timeouts(rec, "lb_x", t)
    cipvs.read_conns(rec, "lb_x", t)
    assert t.timeouts is None and t.conns is None and "not loaded" in t.conns_reason
    assert [e.status for e in rec.entries] == ["skipped", "skipped"]


# --------------------------------------------------------------------------
# the same causes, made for real in the VM tier's guest (tests/fixtures/vm-dumps/README.md)

VM_DUMPS = Path(__file__).resolve().parents[1] / "fixtures" / "vm-dumps"


@pytest.mark.parametrize("phase,root,log", [
    ("healthy", None, None),
    ("i-xt-ipvs-missing", "iptables.no-ipvs-match", "Couldn't load match"),
    ("j-ip-vs-rr-missing", "kernel.ipvs-scheduler-missing", "Failed to create a new service for vip"),
    ("k-ipvs-sysctl-reset", "ipvs.sysctl-unexpected", None),
    ("l-filter-accept-deleted", "ingress.filter-accept-missing", None),
    ("n-ingress-snat-deleted", "ingress.snat-missing", None),
    # issue 11: the other engines on the same real ip_vs kernel (engine-<label>-<phase>)
    ("engine-26.1-healthy", None, None),
    ("engine-26.1-l-filter-accept-deleted", "ingress.filter-accept-missing", None),
    ("engine-26.1-n-ingress-snat-deleted", "ingress.snat-missing", None),
    ("engine-28-healthy", None, None),
    ("engine-28-l-filter-accept-deleted", "ingress.filter-accept-missing", None),
    ("engine-28-n-ingress-snat-deleted", "ingress.snat-missing", None),
    ("engine-28-m-ingress-after-bridge", "ingress.forward-dropped", "DROP"),
    # every fault on the newest engine (the VM tier's plan): the same root causes as on 20.10
    ("engine-28-a-dnat-flushed", "ingress.dnat-missing", None),
    ("engine-28-b-backend-deleted", "ipvs.backend-missing", None),
    ("engine-28-c-unknown-backend", "ipvs.backend-stale", None),
    ("engine-28-d-weight-zero", "ipvs.weight-zero", None),
    ("engine-28-e-mark-deleted", "ingress.mark-missing", None),
    ("engine-28-f-vip-removed", "vip.alias-missing", None),
    ("engine-28-g-lb-ip-forward-off", "lb.ip-forward-off", None),
    ("engine-28-h-task-killed", "service.replicas-short", None),
    ("engine-28-i-xt-ipvs-missing", "iptables.no-ipvs-match", "Couldn't load match"),
    ("engine-28-j-ip-vs-rr-missing", "kernel.ipvs-scheduler-missing", "Failed to create a new service for vip"),
    ("engine-28-k-ipvs-sysctl-reset", "ipvs.sysctl-unexpected", None),
    # issue 13: a task's server stopped, every rule in place: nothing from the rules, the task's real-server
    # hop suspect from --probe (the -probe dumps hold the probes `check --probe` made in the guest)
    ("engine-28-p-task-not-listening", None, None),
    ("engine-28-p-task-not-listening-probe", "probe.hop-suspect", None),
    ("engine-28-healthy-probe", None, None),
])
def test_cause_made_for_real_in_the_vm(phase, root, log):
    from swarmscope.dump import snapshots_from_data

    from swarmscope.pipeline import analyze_snapshots  # analyze, and the join of --probe's results where a dump has them

    path = VM_DUMPS / f"{phase}.json"
    a = analyze_snapshots(snapshots_from_data(json.loads(path.read_text()), str(path)))
    assert roots(a) == ([root] if root else []), [(f.id, f.detail) for f in a.findings if f.caused_by is None]
    if root:
        f = finding(a, root)
        assert all(root in (x.id, x.caused_by) for x in a.findings if x is not f), [(x.id, x.caused_by) for x in a.findings]
        if log and root == "ingress.forward-dropped":  # the rule that drops is named
            assert "'-A DOCKER ! -i docker_gwbridge -o docker_gwbridge -j DROP' (filter DOCKER)" in f.detail, f.detail
        elif log:  # dockerd's own line is in the evidence
            assert any(e.startswith("dockerd log (file /var/log/dockerd.log") and log in e for e in f.evidence), f.evidence
    if phase.endswith("-probe"):  # probes made in the guest: every one connected, or the task's real server refused
        a_probes = [p for n in snapshots_from_data(json.loads(path.read_text()), str(path)) for p in n.probes]
        assert {p.kind for p in a_probes} >= {"published", "localhost", "vip", "task"}
        failed = [p for p in a_probes if p.result not in ("connected", "not-probed")]
        assert ([(p.kind, p.result) for p in failed] == [] if root is None else
                {(p.kind, p.result) for p in failed} <= {("task", "refused"), ("localhost", "refused"),
                                                         ("published", "refused")})
        if root:
            hops = {h.key for sp in a.services for pp in sp.ports for np in pp.nodes for h in np.hops
                    if h.status == "suspect"}
            assert hops == {"ingress.backends"}, hops
    engine = phase.split("-")[1] if phase.startswith("engine-") else "20.10"
    assert all(n.node.engine_version.startswith(engine) for n in snapshots_from_data(json.loads(path.read_text()), str(path)))
