"""A dump leaves the commands' raw text out unless asked (--raw); it reads and judges the same (issue #17)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
import rawsnap

from swarmscope.dump import load, make_dump, snapshots_from_data
from swarmscope.model import to_dict, without_raw
from swarmscope.pipeline import analyze_snapshots
from swarmscope.report import build_report
from swarmscope.schema import load_schema

REPO = Path(__file__).resolve().parents[2]

CASES = {
    "lab-vm": lambda: [rawsnap.lab_vm()],
    "moby-25": lambda: [rawsnap.moby_25()],
    "public-19": rawsnap.public_19,
}


def run(*args):
    e = dict(os.environ)
    e.pop("SWARMSCOPE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO,
                          env=e, timeout=120)


def raw_texts(doc: dict) -> list[str]:
    """Every raw text of a dump document's nodes (iptables of the host and namespaces, IPVS)."""
    out = []
    for n in doc["nodes"]:
        h = n["host"]
        out += [d["raw"] for d in (h.get("iptables"), h.get("iptables_other")) if d and d.get("raw")]
        for ns in n["namespaces"]:
            out += [d["raw"] for d in (ns.get("iptables"), ns.get("iptables_other")) if d and d.get("raw")]
            if ns.get("ipvs") and ns["ipvs"].get("raw"):
                out.append(ns["ipvs"]["raw"])
    return out


def judgement(snaps) -> tuple:
    a = analyze_snapshots(snaps)
    return to_dict(a.services), to_dict(a.findings)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_dump_without_raw_text_reads_and_judges_the_same(name):
    snaps = CASES[name]()
    full = json.loads(json.dumps(make_dump(snaps, raw=True)))
    compact = json.loads(json.dumps(make_dump(snaps, raw=False)))
    assert raw_texts(full), "the fixture has raw text to leave out"
    assert raw_texts(compact) == []
    assert len(json.dumps(compact)) < len(json.dumps(full))
    jsonschema.validate(compact, load_schema())  # the same schema: raw is "" / null, as a netlink read leaves it
    a, b = snapshots_from_data(full, "full"), snapshots_from_data(compact, "compact")
    assert judgement(a) == judgement(b) == judgement(CASES[name]())
    # the parsed rules and IPVS tables are all there: only the raw text differs
    for x, y in zip(a, b, strict=True):
        assert to_dict(without_raw(x)) == to_dict(y)


def test_without_raw_leaves_the_snapshot_itself_alone():
    snap = rawsnap.lab_vm()
    before = to_dict(snap)
    stripped = without_raw(snap)
    assert to_dict(snap) == before  # the report bundle writes its raw files from the snapshot in memory
    assert stripped.host.iptables is not None and stripped.host.iptables.raw == ""
    assert stripped.host.iptables.tables is snap.host.iptables.tables  # shallow: the rules are shared, not copied
    assert all(ns.ipvs is None or ns.ipvs.raw is None for ns in stripped.namespaces)


def test_dump_command_leaves_raw_out_and_keeps_it_with_raw(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(make_dump([rawsnap.lab_vm()], raw=True), indent=2))
    plain, kept = tmp_path / "plain.json", tmp_path / "kept.json"
    p = run("dump", "--json", "--from", str(src), "-o", str(plain))
    assert p.returncode == 0, p.stderr
    p = run("dump", "--json", "--raw", "--from", str(src), "-o", str(kept))
    assert p.returncode == 0, p.stderr
    want = raw_texts(json.loads(src.read_text()))
    assert raw_texts(json.loads(plain.read_text())) == []
    assert raw_texts(json.loads(kept.read_text())) == want and want
    for args in (["check"], ["explain", "--all", "--format", "json"]):
        a = run(*args, "--from", str(plain))
        b = run(*args, "--from", str(kept))
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout)


@pytest.mark.parametrize("cmd", ["collect", "dump", "import"])
def test_raw_option_is_offered(cmd):
    p = run(cmd, "--help")
    assert p.returncode == 0 and "--raw" in p.stdout


def test_an_old_dump_with_raw_text_still_reads(tmp_path):
    """Dumps written before (schema 1, every raw text in them) read as they always did, raw text included."""
    snaps = [rawsnap.lab_vm()]
    doc = make_dump(snaps, raw=True)
    assert doc["version"] == 1 and doc["snapshot_version"] == 2
    p = tmp_path / "old.json"
    p.write_text(json.dumps(doc, indent=2))
    loaded = load(str(p))
    assert loaded[0].host.iptables is not None and loaded[0].host.iptables.raw == snaps[0].host.iptables.raw
    assert raw_texts(json.loads(json.dumps(make_dump(loaded, raw=True)))) == raw_texts(doc)
    assert judgement(loaded) == judgement(snaps)


def _bundle_files(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_the_bundle_still_has_its_raw_files(tmp_path):
    snaps = [rawsnap.lab_vm()]
    files = _bundle_files(build_report(snaps, analyze_snapshots(snaps), [], svg=False))
    top = "swarmscope-report/"
    assert files[top + "raw/lab-vm/host/iptables-nft-save.txt"] == snaps[0].host.iptables.raw
    sbox = rawsnap.find_ns(snaps[0], "ingress_sbox")
    assert sbox.ipvs is not None and sbox.ipvs.raw
    assert files[top + "raw/lab-vm/ingress_sbox/ipvsadm-Ln.txt"] == sbox.ipvs.raw
    # the bundle's dump keeps the raw text too, so a report made again from the bundle has the same raw files
    inner = json.loads(files[top + "dump.json"])
    assert raw_texts(inner) == raw_texts(json.loads(json.dumps(make_dump(snaps, raw=True))))
    again = tmp_path / "again.tar.gz"
    src = tmp_path / "bundle.tar.gz"
    src.write_bytes(build_report(snaps, analyze_snapshots(snaps), [], svg=False))
    p = run("report", "--from", str(src), "--no-svg", "-o", str(again))
    assert p.returncode in (0, 1), p.stderr
    files2 = _bundle_files(again.read_bytes())
    assert files2[top + "raw/lab-vm/host/iptables-nft-save.txt"] == snaps[0].host.iptables.raw
