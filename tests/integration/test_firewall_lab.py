"""The host firewall on a real three-node lab swarm (issue #12): every form of it read, and a swarm port
dropped for real on one node.

Each node is a dockerd in its own network namespace; the faults are made there, as an operator's firewall
would sit on a host (``iptables -I INPUT ...`` and a native ``nft`` table), and removed after. swarmscope
collects each node (``collect --json``); the snapshots are judged together and each alone.

The lab is ``pytest-fw`` (``SWARMSCOPE_FW_LAB_NAME`` picks another name), brought up for this module and
taken down after it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import three_node_lab

from swarmscope.correlate import analyze
from swarmscope.model import Snapshot

pytestmark = pytest.mark.lab

FIREWALL_IDS = {"node.swarm-ports-blocked", "ingress.forward-dropped", "iptables.other-backend-drops",
                "iptables.backend-split"}
IPT_DROP = ["-p", "udp", "--dport", "4789", "-j", "DROP"]


@pytest.fixture(scope="module")
def fwlab():
    for the_lab in three_node_lab(os.environ.get("SWARMSCOPE_FW_LAB_NAME") or "pytest-fw"):
        yield the_lab


def in_ns(node, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={node.netns_path}", *argv], capture_output=True, text=True,
                          timeout=60, check=True)


def collect_all(lab) -> list[Snapshot]:
    out = []
    for n in lab.nodes:
        cp = n.swarmscope("collect", "--json", "--netns-dir", str(n.netns_dir), timeout=300)
        assert cp.returncode in (0, 4), cp.stderr
        out.append(Snapshot.from_dict(json.loads(cp.stdout)))
    return out


def firewall(snaps: list[Snapshot]) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((f.id, tuple(f.nodes)) for f in analyze(snaps).findings if f.id in FIREWALL_IDS)


def judged(snaps: list[Snapshot]) -> tuple[list, dict[str, list]]:
    """(findings together, findings of each node judged alone), firewall ones only."""
    return firewall(snaps), {s.node.hostname: firewall([s]) for s in snaps}


def nft_state(lab) -> dict[str, str]:
    """Every node's ruleset as nft lists it, counters left out (they move with traffic)."""
    return {n.name: re.sub(r"counter packets \d+ bytes \d+", "counter", in_ns(n, "nft", "list", "ruleset").stdout)
            for n in lab.nodes}


def test_healthy_lab_has_no_firewall_finding(fwlab):
    snaps = collect_all(fwlab)
    for s in snaps:
        assert s.host.nftables is not None and s.host.nftables.available, s.host.nftables
        assert {(t.family, t.name) for t in s.host.nftables.tables if t.iptables} >= {("ip", "filter"), ("ip", "nat")}
        assert not [t for t in s.host.nftables.tables if not t.iptables]  # no native table on a lab node
    together, alone = judged(snaps)
    assert together == [] and all(v == [] for v in alone.values()), (together, alone)


def test_iptables_drop_of_vxlan_on_one_node(fwlab):
    worker = fwlab.nodes[1]
    in_ns(worker, "iptables", "-I", "INPUT", *IPT_DROP)
    try:
        snaps = collect_all(fwlab)
    finally:
        in_ns(worker, "iptables", "-D", "INPUT", *IPT_DROP)
    host = worker.hostname
    together, alone = judged(snaps)
    assert together == [("node.swarm-ports-blocked", (host,))], together
    assert alone == {s.node.hostname: ([("node.swarm-ports-blocked", (host,))] if s.node.hostname == host else [])
                     for s in snaps}
    (f,) = [f for f in analyze(snaps).findings if f.id == "node.swarm-ports-blocked"]
    assert "-A INPUT -p udp -m udp --dport 4789 -j DROP" in f.evidence[0] and "4789/udp" in f.detail
    assert judged(collect_all(fwlab))[0] == []  # removed: healthy again


def test_native_nft_drop_of_vxlan_on_one_node_and_the_reader_writes_nothing(fwlab):
    worker = fwlab.nodes[2]
    in_ns(worker, "nft", "add", "table", "inet", "fwtest")
    try:
        in_ns(worker, "nft", "add", "chain", "inet", "fwtest", "input", "{ type filter hook input priority 0; }")
        in_ns(worker, "nft", "add", "rule", "inet", "fwtest", "input", "udp", "dport", "4789", "drop")
        before = nft_state(fwlab)
        snaps = collect_all(fwlab)
        assert nft_state(fwlab) == before  # nft -j list ruleset, never a write
    finally:
        in_ns(worker, "nft", "delete", "table", "inet", "fwtest")
    host = worker.hostname
    together, alone = judged(snaps)
    assert together == [("node.swarm-ports-blocked", (host,))], together
    assert [k for k, v in alone.items() if v] == [host]
    (f,) = [f for f in analyze(snaps).findings if f.id == "node.swarm-ports-blocked"]
    assert f.evidence[0].startswith("nft inet fwtest input (hook input priority 0): udp dport 4789 drop # handle ")
