"""Listing formats users paste: golden files on real output, and the iptables -L listing read to the same
rules iptables-save gives for the same ruleset (real listings from the real VM rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _fixtures import FIXTURES, check_golden, rel
from swarmscope.errors import ParseError
from swarmscope.ingest.sections import recognise, split_transcript
from swarmscope.parse.dnsout import parse_dns
from swarmscope.parse.iproute import parse_ip_addr
from swarmscope.parse.iptables import dnat_destination, mark_value, parse_iptables_save, redirect_ports, snat_source
from swarmscope.parse.iptables_list import parse_iptables_list
from swarmscope.parse.ipoutput import (parse_bridge_fdb, parse_ip_neigh, parse_ip_oneline_addr, parse_ip_oneline_link,
                                       parse_ip_route)

PASTED = FIXTURES / "pasted"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures"

PARSERS = {
    "iptables-list": lambda t: parse_iptables_list(t),
    "ip-o-addr": parse_ip_oneline_addr,
    "ip-o-link": parse_ip_oneline_link,
    "ip-route": parse_ip_route,
    "ip-neigh": parse_ip_neigh,
    "bridge-fdb": parse_bridge_fdb,
    "dns": parse_dns,
}

LAB_FILES = sorted(p for p in (PASTED / "lab" / "pasted").iterdir() if p.read_text().strip())


def test_every_lab_paste_is_recognised():
    kinds = {p.name: recognise(p.read_text()) for p in LAB_FILES}
    assert kinds["host-iptables-nvL-nat.txt"] == "iptables-list"
    assert kinds["host-iptables-L-nat.txt"] == "iptables-list"
    assert kinds["host-ip-o-4-addr.txt"] == "ip-o-addr"
    assert kinds["host-ip-o-link.txt"] == "ip-o-link"
    assert kinds["host-ip-route.txt"] == "ip-route"
    assert kinds["overlay-bridge-fdb-show.txt"] == "bridge-fdb"
    assert kinds["docker-network-inspect-v-demo.txt"] == "network-inspect"
    assert kinds["docker-info.txt"] == "docker-info"
    for name in kinds:
        if name.startswith("client-"):
            assert kinds[name] == "dns", name
    assert all(kinds.values()), kinds


@pytest.mark.parametrize("path", [p for p in LAB_FILES if recognise(p.read_text()) in PARSERS], ids=lambda p: p.name)
def test_lab_paste_golden(path):
    kind = recognise(path.read_text())
    got = check_golden(path, kind, PARSERS[kind])
    assert "result" in got, got


def test_listing_forms_agree_on_the_rules():
    """-nvL, -nL and --line-numbers of the same lab nat table: the same rules; -L (names) is marked lossy."""
    d = PASTED / "lab" / "pasted"
    v = parse_iptables_list((d / "host-iptables-nvL-nat.txt").read_text(), "nat")
    n = parse_iptables_list((d / "host-iptables-nL-nat.txt").read_text(), "nat")
    names = parse_iptables_list((d / "host-iptables-L-nat.txt").read_text(), "nat")
    assert v.verbose and not n.verbose and not v.lossy
    assert any("without -v" in x for x in n.lossy)
    assert any("without -n" in x for x in names.lossy)
    key = lambda r: (r.chain, r.target, r.value("-p"), r.value("--dport"), r.value("--to-destination"))  # noqa: E731
    assert [key(r) for c in v.table.chains.values() for r in c.rules] == [key(r) for c in n.table.chains.values() for r in c.rules]
    dnat = v.table.rules("DOCKER")[-1]
    assert dnat_destination(dnat) == ("172.17.0.2", 80) and dnat.option("-i").negated and dnat.counters == [0, 0]
    assert names.table.rules("DOCKER")[-1].value("--dport") == "tproxy"  # 8081 printed by name: kept, never guessed
    ln = parse_iptables_list((d / "ingress_sbox-iptables-nvL-nat-line-numbers.txt").read_text(), "nat")
    assert ln.line_numbers and snat_source(ln.table.rules("DOCKER_POSTROUTING")[0]) == ("", 53)


def _blocks(text: str) -> list[str]:
    """The indented or fenced iptables -L blocks of a public markdown excerpt."""
    out, cur = [], []
    for line in text.splitlines():
        s = line[4:] if line.startswith("    ") else line
        if s.startswith("Chain "):
            cur.append(s)
        elif cur and (re.match(r"^\s*(num\s+)?(pkts|\d|target)", s) or s.startswith(" ")) and not s.startswith("-"):
            cur.append(s)
        elif cur and s.strip() in ("", "```"):
            if s.strip() == "```":
                out.append("\n".join(cur))
                cur = []
        elif cur:
            out.append("\n".join(cur))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return [b for b in out if b.strip()]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared fixtures not present")
def test_public_listings():
    t04 = (SHARED / "04_moby_generated_swarm_portmap_filter_nat_healthy.txt").read_text()
    blocks = [parse_iptables_list(b) for b in _blocks(t04)]
    filt = next(b for b in blocks if b.table.name == "filter")
    nat = next(b for b in blocks if b.table.name == "nat")
    acc = filt.table.rules("DOCKER-INGRESS")
    assert acc[0].value("-p") == "tcp" and acc[0].value("--dport") == "8080"  # protocol printed as 6
    assert acc[1].value("--sport") == "8080" and acc[1].value("--ctstate") == "RELATED,ESTABLISHED"
    assert filt.line_numbers and [r.target for r in filt.table.rules("FORWARD")] == ["DOCKER-USER", "DOCKER-INGRESS", "DOCKER-FORWARD"]
    assert dnat_destination(nat.table.rules("DOCKER-INGRESS")[0]) == ("172.18.0.2", 8080)
    assert nat.table.rules("PREROUTING")[0].value("--dst-type") == "LOCAL"
    assert nat.table.rules("POSTROUTING")[1].option("-o").negated

    t05 = (SHARED / "05_ollypom_host_nat_nvL_and_ingress_sbox_addrs_healthy.txt").read_text()
    nat5 = parse_iptables_list(_blocks(t05)[0])
    assert nat5.table.name == "nat" and nat5.table.chains["PREROUTING"].counters == [148, 10140]
    assert nat5.table.rules("DOCKER-INGRESS")[0].counters == [2, 120]
    assert dnat_destination(nat5.table.rules("DOCKER-INGRESS")[0]) == ("172.18.0.2", 80)

    t06 = (SHARED / "06_ollypom_sandbox_mangle_output_and_ipvsadm_fwm_healthy.txt").read_text()
    mangles = [parse_iptables_list(b, "mangle") for b in _blocks(t06)]
    first = mangles[0].table.rules("OUTPUT")[0]
    assert mark_value(first) == 0x102 and first.value("-d") == "192.168.200.2/32"
    assert mangles[-1].table.rules("OUTPUT")[0].counters == [5654, 475000]  # 475K


def test_rule_without_target_and_line_numbers():
    """jc misreads this (the empty target column shifts every column); swarmscope does not."""
    text = ("Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)\n"
            "num   pkts bytes target     prot opt in     out     source               destination\n"
            "1        5   300            0    --  eth0   *       10.0.0.0/8           0.0.0.0/0\n"
            "2        0     0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:80 /* web in */\n"
            "3        0     0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            foo bar\n")
    lt = parse_iptables_list(text, "filter")
    r0, r1, r2 = lt.table.rules("FORWARD")
    assert r0.target is None and r0.value("-i") == "eth0" and r0.value("-s") == "10.0.0.0/8" and r0.counters == [5, 300]
    assert r1.comment == "web in" and r1.value("--dport") == "80"
    assert r2.has_match("unparsed") and lt.unparsed == ["line 5: foo bar"]


@pytest.mark.parametrize("bad", [
    "1        0     0 ACCEPT     6    --  *  *  0.0.0.0/0  0.0.0.0/0\n",
    "Chain X (policy ACCEPT 0 packets, 0 bytes)\n 0 0 ACCEPT 6 -- * * 0.0.0.0/0 0.0.0.0/0\n",
    "Chain X (policy ACCEPT)\ntarget prot opt source destination\nACCEPT\n",
    "Chain X (what)\n",
    "",
])
def test_listing_refuses_what_it_cannot_read(bad):
    with pytest.raises(ParseError):
        parse_iptables_list(bad)


# --------------------------------------------------------------------------------------------------------
# the listing against iptables-save: the VM transcripts' listings are the real iptables' listing of the
# real VM rules (tests/fixtures/pasted/vm/make_transcripts.py); the rules must read the same

def _norm(r):
    return (r.chain, r.target, r.value("-p"), r.value("-s"), r.value("-d"),
            r.value("--dport"), r.value("--sport"), r.value("--dst-type"), mark_value(r), dnat_destination(r),
            snat_source(r), redirect_ports(r), r.has_match("ipvs"), r.value("--ctstate"))


@pytest.mark.parametrize("phase", ["healthy", "a-dnat-flushed", "e-mark-deleted"])
def test_vm_listing_reads_like_iptables_save(phase):
    text = (PASTED / "vm" / phase / "support-sh.txt").read_text()
    sections, skipped = split_transcript(text, "t")
    assert not skipped
    compared = 0
    for sec in sections:
        if sec.kind != "iptables-list":
            continue
        save = FIXTURES / "vm" / phase / "ns" / sec.namespace / "iptables-save.txt"
        want = parse_iptables_save(save.read_text()).table(sec.table)
        got = parse_iptables_list(sec.text, sec.table).table
        if not want.chains:  # a table nothing uses: -L lists its empty built-in chains, -save prints nothing
            assert not any(c.rules for c in got.chains.values())
            continue
        assert list(got.chains) == list(want.chains), (sec.namespace, sec.table)
        for chain in want.chains:
            assert [_norm(r) for r in got.rules(chain)] == [_norm(r) for r in want.rules(chain)], (sec.namespace, sec.table, chain)
            compared += len(want.rules(chain))
    assert compared > 50


def test_ip_outputs_on_vm_and_lab():
    host = parse_ip_oneline_link((PASTED / "lab" / "pasted" / "host-ip-o-link.txt").read_text())
    gw = [i for i in host if i.master == "docker_gwbridge"]
    assert gw and all(i.kind == "veth" and i.admin_up and i.state == "up" for i in gw)
    addrs = parse_ip_oneline_addr((PASTED / "lab" / "pasted" / "host-ip-o-addr.txt").read_text())
    lo = next(i for i in addrs if i.name == "lo")
    assert [a.cidr for a in lo.addresses] == ["127.0.0.1/8", "::1/128"]
    routes = parse_ip_route((FIXTURES / "vm" / "healthy" / "ns" / "host" / "ip-route.txt").read_text())
    assert routes[0].destination == "0.0.0.0/0" and routes[0].via == "192.168.76.2" and "onlink" in routes[0].flags
    assert {r.destination for r in routes} >= {"172.18.0.0/16", "192.168.76.0/24"}
    assert parse_ip_route("blackhole 10.1.0.0/16\n")[0].type == "blackhole"
    with pytest.raises(ParseError):
        parse_ip_route("garbage line here\n")
    fdb = parse_bridge_fdb((PASTED / "lab" / "pasted" / "overlay-bridge-fdb-show.txt").read_text())
    assert any(e.dev == "vxlan0" and e.master == "br0" for e in fdb)
    assert parse_ip_neigh("10.0.1.3 dev br0 lladdr 02:42:0a:00:01:03 PERMANENT\n")[0].lladdr == "02:42:0a:00:01:03"
    # ip -d addr (multi-line) stays with parse_ip_addr; ip -o addr refuses it
    with pytest.raises(ParseError):
        parse_ip_oneline_addr((FIXTURES / "vm" / "healthy" / "ns" / "host" / "ip-d-addr.txt").read_text())
    assert parse_ip_addr((FIXTURES / "vm" / "healthy" / "ns" / "host" / "ip-d-addr.txt").read_text())


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared fixtures not present")
def test_dns_forms():
    t07 = (SHARED / "07_ollypom_dnsrr_dig_service_name_healthy.txt").read_text()
    dig = t07[t07.index("; <<>> DiG"):t07.rindex("```")]
    lk = parse_dns(dig)
    assert lk.tool == "dig" and lk.status == "ok" and lk.answers == ["192.168.200.9", "192.168.200.8"]
    assert lk.query == "demoservice3.demonet" and lk.server == "127.0.0.11"
    d = PASTED / "lab" / "pasted"
    assert parse_dns((d / "client-getent-hosts-tasks.whoami.txt").read_text()).answers == ["10.0.1.4", "10.0.1.3"]
    assert parse_dns((d / "client-dig-tasks.nosuchservice.txt").read_text()).status == "timeout"
    assert parse_dns((d / "client-nslookup-nosuchservice.txt").read_text()).status == "timeout"
    assert parse_dns("").status == "unknown"
    with pytest.raises(ParseError):
        parse_dns("hello world\n")
