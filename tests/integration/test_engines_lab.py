"""The healthy lab on every engine users run (issue #11): Debian's 26.1 (trixie) and 28.x (sid).

Each engine is fetched from Debian's archive and cached by
``contrib/lab/engine_cache.py`` (``/var/cache/swarmscope-engines``), then a
single-node lab of its own runs that dockerd (``swarmlab.Lab(engine=...)``)
with this machine's containerd, runc and docker CLI. The kernel here has no
ip_vs: on every engine ``check`` must name exactly that root cause and
explain everything else by it. An engine that can be neither fetched nor
found in the cache, or that does not start, is skipped with the reason; one
lab at a time, always taken down.

``SWARMSCOPE_TEST_ENGINES=26.1,28`` picks the engines (``0``: none).
"""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.lab

ENGINES = [e for e in os.environ.get("SWARMSCOPE_TEST_ENGINES", "26.1,28").split(",") if e and e != "0"]
#: Docker API version whose `docker info` has FirewallBackend (moby 28.2)
FIREWALL_BACKEND_API = (1, 49)


def _api(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def _engine_tree(label: str):
    """The unpacked engine of ``label`` (cached, else fetched); skips, with why, where no lab or engine can run."""
    import engine_cache
    import swarmlab

    reason = swarmlab.Lab.preflight()
    if reason:
        pytest.skip(f"lab swarm unavailable: {reason}")
    try:
        return engine_cache.resolve(label)
    except engine_cache.EngineError as exc:
        pytest.skip(f"engine {label} unavailable: {exc}")


@pytest.fixture(scope="module", params=ENGINES, ids=lambda e: f"engine-{e}")
def engine_lab(request):
    import swarmlab

    label = request.param
    tree = _engine_tree(label)
    name = "eng" + "".join(c for c in label if c.isdigit())[:4] + f"-{os.getpid()}"
    lab = swarmlab.Lab(name, engine=str(tree))
    started = time.monotonic()
    try:
        lab.down()
        lab.up()
    except swarmlab.EngineStartError as exc:
        lab.down()
        pytest.skip(f"engine {label} ({tree.name}) does not start here: {exc}")
    except BaseException:
        lab.down()
        raise
    lab.engine_label, lab.engine_tree = label, tree
    swarmlab._log(f"lab {name} on engine {tree.name}: up in {time.monotonic() - started:.1f}s")
    try:
        yield lab
    finally:
        lab.down()


def _swarmscope_json(lab, *args):
    cp = lab.swarmscope(args[0], "--netns-dir", str(lab.netns_dir), *args[1:], timeout=300)
    assert cp.stdout.strip(), cp.stderr
    return cp.returncode, json.loads(cp.stdout)


def test_engine_is_the_one_asked_for(engine_lab):
    ver = json.loads(engine_lab.docker("version", "--format", "{{json .Server}}", check=True).stdout)
    meta = json.loads((engine_lab.engine_tree / "ENGINE.json").read_text())
    # Debian's version 28.5.2+dfsg4-5 -> the engine reports 28.5.2+dfsg4
    assert meta["version"].startswith(ver["Version"]), (meta["version"], ver["Version"])
    assert ver["Version"].startswith(engine_lab.engine_label + ".")


def test_healthy_lab_has_only_the_kernel_root_cause(engine_lab):
    rc, doc = _swarmscope_json(engine_lab, "check", "--format", "json")
    assert rc == 1  # kernel.no-ipvs is an error
    roots = [(f["id"], f["detail"], f["evidence"]) for f in doc["findings"] if f["caused_by"] is None]
    assert [r[0] for r in roots] == ["kernel.no-ipvs"], roots
    others = [(f["id"], f["caused_by"], f["detail"]) for f in doc["findings"]
              if f["id"] != "kernel.no-ipvs" and f["caused_by"] != "kernel.no-ipvs"]
    assert others == []


def test_collect_reports_the_engine(engine_lab):
    ver = json.loads(engine_lab.docker("version", "--format", "{{json .Server}}", check=True).stdout)
    rc, snap = _swarmscope_json(engine_lab, "collect", "--json")
    assert rc == 0, snap.get("errors")
    node = snap["node"]
    assert node["engine_version"] == ver["Version"]
    assert node["api_version"] == ver["ApiVersion"]
    assert node["iptables"]["engine_backend"] in ("nft", "legacy")


def test_collect_records_the_firewall_backend(engine_lab):
    ver = json.loads(engine_lab.docker("version", "--format", "{{json .Server}}", check=True).stdout)
    if _api(ver["ApiVersion"]) < FIREWALL_BACKEND_API:
        pytest.skip(f"API {ver['ApiVersion']} < 1.49: docker info has no FirewallBackend")
    info = json.loads(engine_lab.docker("info", "--format", "{{json .}}", check=True).stdout)
    driver = (info.get("FirewallBackend") or {}).get("Driver")
    assert driver, "API >= 1.49 but docker info has no FirewallBackend.Driver"
    _, snap = _swarmscope_json(engine_lab, "collect", "--json")
    assert snap["node"]["firewall_backend"] == driver


def test_three_node_lab_on_the_newest_engine_each_node_alone_names_only_the_kernel():
    """The three-node lab (one manager, two workers, each a dockerd in its own namespaces) on the newest engine
    asked for: every node judged alone (what the standing agent does, and the default on a worker) names
    exactly kernel.no-ipvs and explains everything else by it, on 28's filter layout too."""
    import swarmlab

    if not ENGINES:
        pytest.skip("SWARMSCOPE_TEST_ENGINES=0")
    label = ENGINES[-1]
    tree = _engine_tree(label)
    lab = swarmlab.Lab(f"eng3n-{os.getpid()}", nodes=3, engine=str(tree))
    try:
        lab.down()
        try:
            lab.up()
        except swarmlab.EngineStartError as exc:
            pytest.skip(f"engine {label} ({tree.name}) does not start here: {exc}")
        placed = lab.docker("service", "ps", "whoami", "--filter", "desired-state=running", "--format",
                            "{{.Node}}", check=True).stdout.split()
        assert len(set(placed)) >= 2, f"whoami's tasks should span nodes: {placed}"
        for n in lab.nodes:
            ver = json.loads(n.docker("version", "--format", "{{json .Server}}", check=True).stdout)
            assert ver["Version"].startswith(label + "."), ver["Version"]
            cp = n.swarmscope("check", "--local", "--netns-dir", str(n.netns_dir), "--format", "json", timeout=300)
            doc = json.loads(cp.stdout)
            roots = [(f["id"], f["detail"]) for f in doc["findings"] if f["caused_by"] is None]
            assert cp.returncode == 1 and [r[0] for r in roots] == ["kernel.no-ipvs"], (n.name, roots)
            assert {f["caused_by"] for f in doc["findings"]} <= {None, "kernel.no-ipvs"}, n.name
    finally:
        lab.down()
