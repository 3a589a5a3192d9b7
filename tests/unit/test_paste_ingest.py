"""support.sh transcripts and pasted output read into snapshots and judged by the correlator:
the VM tier's phases (real ip_vs kernel), the lab (real support.sh runs), damaged input, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _fixtures import FIXTURES
from swarmscope.correlate import analyze
from swarmscope.correlate.findings import fails
from swarmscope.errors import InputError
from swarmscope.ingest import is_text_input, load_text

REPO = Path(__file__).resolve().parents[2]
PASTED = FIXTURES / "pasted"
VM = PASTED / "vm"

#: the root cause the VM tier's live run names in each phase (tests/vm/test_vm_mesh.py EXPECTED_FINDINGS),
#: and what a support.sh transcript of the same moment names
LIVE = {
    "healthy": None,
    "a-dnat-flushed": "ingress.dnat-missing",
    "b-backend-deleted": "ipvs.backend-missing",
    "c-unknown-backend": "ipvs.backend-stale",
    "d-weight-zero": "ipvs.weight-zero",
    "e-mark-deleted": "ingress.mark-missing",
    "f-vip-removed": "vip.alias-missing",
}


def roots(analysis) -> list[str]:
    return sorted({f.id for f in analysis.findings if f.caused_by is None})


def judge(*paths):
    snaps, rep = load_text([str(p) for p in paths])
    return snaps, rep, analyze(snaps)


@pytest.mark.parametrize("phase", sorted(LIVE))
def test_vm_transcript_names_the_live_root_cause(phase):
    snaps, rep, a = judge(VM / phase / "support-sh.txt")
    assert not rep.skipped and len(snaps) == 1 and snaps[0].complete
    want = LIVE[phase]
    assert roots(a) == ([want] if want else [])
    if want is None:
        # every hop ok, or unknown where support.sh does not capture it (sysctls, DNS), with why
        for sp in a.services:
            for path in list(sp.ports) + list(sp.vip_paths):
                for np in path.nodes:
                    for h in np.hops:
                        assert h.status in ("ok", "unknown", "n/a"), (sp.name, h.label, h.status, h.detail)
                        if h.status == "unknown":
                            assert h.key in ("host.ip_forward", "lb.ip_forward", "dns.vip", "dns.rr"), (h.key, h.detail)
                            assert h.detail
        assert snaps[0].node.hostname == "swarmscope-vm"  # from the docker info pasted before it


def test_vm_phases_support_sh_cannot_see():
    # g: ip_forward=0 in lb_: support.sh reads no sysctl; the hop is unknown, never a fault
    _, _, a = judge(VM / "g-lb-ip-forward-off" / "support-sh.txt")
    assert roots(a) == []
    hops = [h for sp in a.services for v in sp.vip_paths for np in v.nodes for h in np.hops if h.key == "lb.ip_forward"]
    assert hops and all(h.status == "unknown" and "not read" in h.detail for h in hops)
    # ... but the same moment pasted with its sysctl output names the live root cause
    _, _, a = judge(VM / "g-lb-ip-forward-off" / "pasted")
    assert roots(a) == ["lb.ip-forward-off"]
    _, _, a = judge(VM / "healthy" / "pasted")
    assert roots(a) == [] and not fails(a.findings, a.services)


def test_lab_transcripts_name_what_the_live_collection_names():
    # the live `swarmscope dump --local` on each lab node named exactly kernel.no-ipvs (no ip_vs in this kernel)
    _, _, a = judge(PASTED / "lab" / "support-sh.txt")
    assert roots(a) == ["kernel.no-ipvs"]
    snaps, rep, a = judge(*sorted((PASTED / "lab-2node").iterdir()))
    assert roots(a) == ["kernel.no-ipvs"] and len(snaps) == 2
    names = [s.node.hostname for s in snaps]
    assert names[0] == "paste-manager"  # docker info before the transcript
    assert snaps[0].node.role == "manager" and snaps[0].node.node_addr == "10.213.0.11"
    assert names[1].startswith("node-") and snaps[1].node.node_addr == "10.213.0.12"  # no docker info: node id
    assert snaps[0].node.node_id != snaps[1].node.node_id


def test_concatenated_transcripts_are_several_nodes(tmp_path):
    both = tmp_path / "both.txt"
    both.write_text("".join(p.read_text() for p in sorted((PASTED / "lab-2node").iterdir())))
    snaps, rep, a = judge(both)
    assert len(snaps) == 2 and {s.node.node_addr for s in snaps} == {"10.213.0.11", "10.213.0.12"}
    assert roots(a) == ["kernel.no-ipvs"]


def test_provenance_names_file_and_lines():
    snaps, _, _ = judge(VM / "a-dnat-flushed" / "support-sh.txt")
    s = snaps[0]
    prov = [p for p in s.provenance if p.status == "ok" and p.what.startswith("text: ")]
    assert prov and all("support-sh.txt:" in (p.reason or "") for p in prov)
    nat = next(p for p in prov if p.argv == ["iptables -w1 -n -v -L -t nat"])
    assert nat.namespace == "host" and nat.reason.startswith("read from ")
    # what the text cannot tell is recorded, not guessed
    assert s.node.sysctls == {} and s.dns == [] and s.node.iptables.engine_backend is None
    assert not s.docker.available and s.docker.reason
    skipped = [p for p in s.provenance if p.status == "skipped"]
    assert any("vxlan0" in (p.reason or "") for p in skipped)


def test_lossy_pasted_tables_stay_unknown(tmp_path):
    """Only nat pasted for the host: filter is not in the input, so host iptables are unknown, not 'missing'."""
    d = tmp_path / "paste"
    d.mkdir()
    src = (VM / "healthy" / "support-sh.txt").read_text()
    start = src.index("# iptables -w1 -n -v -L -t nat")
    end = src.index("# iptables -w1 -n -v -L -t mangle")
    (d / "host-nat.txt").write_text(src[start:end])
    (d / "inspect.txt").write_text((VM / "healthy" / "pasted" / "docker-network-inspect-v-ingress.txt").read_text())
    snaps, rep, a = judge(d)
    assert snaps[0].host.iptables is None
    assert any("filter" in (p.reason or "") for p in snaps[0].provenance if p.status == "skipped")
    assert not any(f.id.startswith("ingress.") for f in a.findings)
    sbox = snaps[0].namespace("ingress_sbox")
    assert sbox is not None and sbox.errors and "not in the input" in sbox.errors[0]
    assert roots(a) == []


def _cuts(text: str, step: int):
    lines = text.splitlines(keepends=True)
    for k in range(1, len(lines), step):
        yield "".join(lines[:k])


@pytest.mark.parametrize("phase", ["healthy", "a-dnat-flushed"])
def test_truncated_transcripts_give_a_clean_partial_result(tmp_path, phase):
    text = (VM / phase / "support-sh.txt").read_text()
    f = tmp_path / "cut.txt"
    n = 0
    for cut in _cuts(text, 41):
        f.write_text(cut)
        try:
            snaps, rep = load_text([str(f)])
        except InputError as exc:  # nothing readable yet: one line
            assert "\n" not in str(exc)
            continue
        analyze(snaps)  # judged without error
        n += 1
    assert n > 10


def test_damaged_transcript_is_read_as_far_as_it_goes(tmp_path):
    text = (VM / "healthy" / "support-sh.txt").read_text()
    lines = text.splitlines(keepends=True)
    # garble one rule line of the ingress_sbox mangle listing and cut a JSON inspect in the middle
    i = next(k for k, l in enumerate(lines) if "MARK set 0x104" in l and "tcp dpt:8000" in l)
    lines[i] = "    0     0 MARK       6    --  *\n"
    j = next(k for k, l in enumerate(lines) if l.startswith("nnn Network ")) + 5
    lines[j] = "        \"Name\": \n"
    f = tmp_path / "damaged.txt"
    f.write_text("".join(lines) + "garbage at the end\n")
    snaps, rep = load_text([str(f)])
    assert rep.skipped and any("iptables -L listing not read" in s for s in rep.skipped)
    assert not snaps[0].complete and snaps[0].errors
    sbox = snaps[0].namespace("ingress_sbox")
    assert sbox.iptables is None or "mangle" not in sbox.iptables.tables  # the unreadable table is not made up
    a = analyze(snaps)
    assert "ingress.mark-missing" not in roots(a)


def test_is_text_input(tmp_path):
    assert is_text_input(str(VM / "healthy" / "support-sh.txt"))
    assert is_text_input(str(VM / "healthy" / "pasted"))
    j = tmp_path / "d.json"
    j.write_text('{"schema": "swarmscope/dump"}')
    assert not is_text_input(str(j)) and not is_text_input("-")


# --------------------------------------------------------------------------------------------------------
# the command line


def run(*args):
    e = dict(os.environ)
    e.pop("SWARMSCOPE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO, env=e, timeout=120)


def test_cli_explain_and_check_from_transcript():
    p = run("explain", "--from", "tests/fixtures/pasted/vm/healthy/support-sh.txt", "whoami")
    assert p.returncode == 0, p.stderr
    # support.sh reads no sysctl and asks no DNS: those hops are unknown, with why; every other hop ok
    assert "node swarmscope-vm: UNKNOWN (host ip_forward: net.ipv4.ip_forward not read)" in p.stdout
    assert "findings: none" in p.stdout
    p = run("explain", "--from", "tests/fixtures/pasted/vm/healthy/pasted", "whoami")
    assert p.returncode == 0 and p.stdout.count("SERVES (every hop ok)") == 2, p.stdout
    p = run("check", "--from", "tests/fixtures/pasted/vm/a-dnat-flushed/support-sh.txt")
    assert p.returncode == 1 and "ingress.dnat-missing" in p.stdout
    p = run("check", "--from", "tests/fixtures/pasted/vm/healthy/pasted")
    assert p.returncode == 0 and "findings: none" in p.stdout


def test_cli_unknown_file_is_one_line_exit_2(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello, this is my bug report\nit does not work\n")
    for args in (("check", "--from", str(f)), ("import", str(f))):
        p = run(*args)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and str(f) in lines[0] and "expected" in lines[0], p.stderr


def test_cli_import_writes_a_dump_read_again(tmp_path):
    out = tmp_path / "dump.json"
    p = run("import", "--redact", "--redact-seed", "x", "tests/fixtures/pasted/lab-2node/manager-docker-info-and-support-sh.txt",
            "tests/fixtures/pasted/lab-2node/worker1-support-sh.txt", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert "read " in p.stderr and "2 node(s)" in p.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "swarmscope/dump" and len(doc["nodes"]) == 2
    assert "paste-manager" not in out.read_text() and "10.213.0.11" not in out.read_text()
    p = run("check", "--from", str(out))
    assert p.returncode == 1 and "kernel.no-ipvs" in p.stdout


def test_mutated_transcripts_never_fail_otherwise(tmp_path):
    """Lines deleted, swapped, cut, replaced by noise or repeated: an InputError of one line or a judged partial result."""
    import random
    import time

    rnd = random.Random(14)
    sources = [(VM / "healthy" / "support-sh.txt").read_text().splitlines(keepends=True),
               (PASTED / "lab-2node" / "manager-docker-info-and-support-sh.txt").read_text().splitlines(keepends=True)]
    f = tmp_path / "m.txt"
    deadline = time.monotonic() + 60
    for it in range(60):
        if time.monotonic() > deadline:
            break
        lines = list(sources[it % 2])
        for _ in range(rnd.randint(1, 6)):
            op, i = rnd.choice("dswcj"), rnd.randrange(len(lines))
            if op == "d":
                del lines[i]
            elif op == "s":
                j = rnd.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "w":
                lines[i] = lines[i][: rnd.randrange(len(lines[i]) + 1)] + "\n"
            elif op == "c":
                lines[i] = "".join(rnd.choice('ab:{}[]" 0129.-!*/#') for _ in range(rnd.randrange(40))) + "\n"
            else:
                lines.insert(i, lines[rnd.randrange(len(lines))])
        f.write_text("".join(lines))
        try:
            snaps, _ = load_text([str(f)])
        except InputError as exc:
            assert "\n" not in str(exc)
            continue
        analyze(snaps)


def test_transcript_of_an_older_support_sh_without_lb_namespaces(tmp_path):
    """support.sh before 2018 entered only 1-<id> of each overlay network: its transcripts show no lb_ at all, and
    the lb_ namespaces are then not read (unknown), never missing."""
    out, skip = [], False
    for line in (VM / "healthy" / "support-sh.txt").read_text().splitlines(keepends=True):
        if line.startswith("# "):
            skip = "/netns/lb_" in line
        elif line.startswith(("nnn ", "ccc ")) or not line.strip():
            skip = False
        if not skip:
            out.append(line)
    f = tmp_path / "old.txt"
    f.write_text("".join(out))
    snaps, rep, a = judge(f)
    lb = [ns for ns in snaps[0].namespaces if ns.kind == "lb"]
    assert lb and all(ns.errors and "not in the input" in ns.errors[0] for ns in lb)
    assert roots(a) == []
    hops = [h for sp in a.services for v in sp.vip_paths for np in v.nodes for h in np.hops if h.key == "lb.ns"]
    assert hops and all(h.status == "unknown" for h in hops)
