"""``explain SERVICE`` judges only SERVICE (correlate.analyze's ``scope``): its path map and its findings
are those of the whole swarm's judgement, on every real capture and fault this project holds."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from swarmscope import pipeline
from swarmscope.cli import cli
from swarmscope.correlate.checks.registry import HopCheck
from swarmscope.correlate.checks.table import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "benchmarks"))

import gen_swarm  # noqa: E402


def _mesh3_phases() -> dict[str, list[str]]:
    out = {}
    for base in (FIX / "vm-mesh3" / "phases" / "mesh3", FIX / "vm-mesh3-w2" / "phases" / "mesh3"):
        for d in sorted(p for p in base.glob("*") if p.is_dir()):
            files = sorted(str(f) for f in d.glob("*/collect.json"))
            if files:
                out[f"{base.parent.parent.name}/{d.name}"] = files
    return out


def _inputs() -> dict[str, list[str]]:
    dumps = [p for d in ("vm-dumps", "lab-dumps") for p in sorted((FIX / d).glob("*.json"))]
    out = {f"{p.parent.name}/{p.name}": [str(p)] for p in dumps}
    out.update({f"examples/{p.name}": [str(p)] for p in sorted((ROOT / "examples").glob("*.json"))})
    out.update(_mesh3_phases())
    return out


INPUTS = _inputs()
#: the findings about no service that are judged on the services' paths (a hop every path of a network or node
#: crosses: checks.registry.HopCheck per_service=False; an lb_ namespace missing)
NETWORK_HOPS = {s.id for s in REGISTRY if isinstance(s, HopCheck) and not s.per_service} | {"lb.namespace-missing"}


def _snaps(key: str, tmp_path: Path):
    if key.startswith("gen/"):
        faults = [] if key == "gen/healthy" else [f"{key[4:]}:1"]
        p = tmp_path / "gen.json"
        p.write_text(json.dumps(gen_swarm.dump_doc(nodes=3, services=4, tasks=10, faults=faults, analyze=False)))
        return pipeline.load_many([str(p)]).snapshots
    return pipeline.load_many(INPUTS[key]).snapshots


def _finding(f) -> tuple:
    return (f.id, f.severity, f.service, f.network, f.detail, tuple(f.nodes), tuple(f.evidence), f.caused_by)


def test_the_inputs_are_there():
    assert len(INPUTS) >= 40, sorted(INPUTS)  # every VM dump, lab dump, example and mesh3 phase
    assert any(k.startswith("vm-mesh3/") for k in INPUTS) and any(k.startswith("vm-dumps/") for k in INPUTS)


@pytest.mark.parametrize("key", sorted(INPUTS) + [f"gen/{f}" for f in ("healthy", *gen_swarm.FAULTS)])
def test_one_service_judged_alone_is_judged_as_in_the_whole_swarm(key, tmp_path):
    whole = pipeline.analyze_snapshots(_snaps(key, tmp_path))
    names = [s.name for s in whole.services]
    assert names, key
    for name in names:
        one = pipeline.analyze_snapshots(_snaps(key, tmp_path), frozenset({name}))
        assert [s.name for s in one.services] == [name]
        assert one.unjudged == [n for n in names if n != name]
        # its path map: hop by hop, node by node, verdicts included (judged again after the findings)
        full = next(s for s in whole.services if s.name == name)
        assert dataclasses.asdict(one.services[0]) == dataclasses.asdict(full), (key, name)
        # its findings, and the swarm's own (a node, a network), with their root causes
        mine = {_finding(f) for f in one.findings}
        theirs = {_finding(f) for f in whole.findings if f.service in (name, None)}
        assert {f for f in theirs if f[2] == name} <= mine, (key, name)
        assert mine <= theirs, (key, name)
        assert all(f.service in (name, None) for f in one.findings)
        # what the whole judgement has about no service and the scoped one lacks was seen on other services'
        # paths only: a hop of a network or node that this service's paths do not cross (an lb_ namespace,
        # its ip_forward, where it has no VIP path; ingress_sbox's, where it publishes no port)
        for f in theirs - mine:
            assert f[2] is None and f[0] in NETWORK_HOPS, (key, name, f)
        # the exit code of explain SERVICE follows what it shows
        from swarmscope.correlate.findings import fails
        assert fails(one.findings, one.services) == fails(
            [f for f in whole.findings if _finding(f) in mine], [full]), (key, name)


def test_explain_of_one_service_prints_what_the_whole_judgement_prints(tmp_path):
    """On a real three-node fault, explain SERVICE's JSON is that of the whole swarm's judgement but for the
    counts of what a root cause explains (among this service's findings now); its exit code says whether an
    error finding is among those shown."""
    from click.testing import CliRunner

    files = INPUTS["vm-mesh3/w-gossip-dropped"]
    args = [a for f in files for a in ("--from", f)]
    r = CliRunner()
    whole = r.invoke(cli, ["explain", "--all", "--format", "json", *args])
    doc = json.loads(whole.output)
    for sp in doc["services"]:
        one = r.invoke(cli, ["explain", sp["name"], "--format", "json", *args])
        mine = json.loads(one.output)
        assert mine["services"] == [sp]
        want = [f for f in doc["findings"] if f["service"] in (sp["name"], None)]
        strip = lambda fs: [{k: v for k, v in f.items() if k not in ("explains", "explained")} for f in fs]  # noqa: E731
        assert strip(mine["findings"]) == strip(want)
        assert (one.exit_code == 1) == any(f["severity"] == "error" for f in mine["findings"]), one.exit_code


def test_an_unknown_service_still_gets_every_name():
    """Nothing judged (no service of that name): the usage error still lists the swarm's services."""
    import subprocess

    p = subprocess.run([sys.executable, "-m", "swarmscope", "explain", "zzzzzz", "--from",
                        str(ROOT / "examples" / "lab-vm-healthy.json")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == "swarmscope: error: no service named 'zzzzzz' (services: whoami)", p.stderr


@pytest.mark.parametrize("phase", ["healthy", "w-gossip-dropped"])
def test_save_writes_the_whole_swarms_judgement(phase, tmp_path):
    """explain SERVICE --save: the dump is the whole swarm's (as dump --json writes it), and what explain
    prints is what explain SERVICE --from that dump prints."""
    from click.testing import CliRunner

    out = tmp_path / "saved.json"
    args = [a for f in INPUTS[f"vm-mesh3/{phase}"] for a in ("--from", f)]
    r = CliRunner()
    whole = json.loads(r.invoke(cli, ["dump", "--json", *args]).output)
    assert len(whole["services"]) >= 2
    live = r.invoke(cli, ["explain", "whoami", "--save", str(out), *args])
    saved = json.loads(out.read_text())
    assert saved["services"] == whole["services"] and saved["findings"] == whole["findings"]
    again = r.invoke(cli, ["explain", "whoami", "--from", str(out)])
    assert again.output == live.output
    assert again.exit_code == live.exit_code
