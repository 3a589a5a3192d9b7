"""Shared pytest fixtures. The lab swarm is in contrib/lab/swarmlab.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "contrib" / "lab"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


@pytest.fixture(scope="session")
def lab():
    """The real single-node lab swarm (one per pytest session), up once per session.

    Skipped, with the reason, where it cannot run (not root, no dockerd, the
    engine does not start, ...).
    """
    import swarmlab

    reason = swarmlab.Lab.preflight()
    if reason:
        pytest.skip(f"lab swarm unavailable: {reason}")
    # one lab per pytest session, so two sessions on one machine do not tear down each other's lab;
    # SWARMSCOPE_LAB_NAME pins the name (e.g. to reuse a lab brought up by hand)
    name = os.environ.get("SWARMSCOPE_LAB_NAME") or f"pt{os.getpid()}"
    _sweep_dead_session_labs(swarmlab)
    the_lab = swarmlab.Lab(name)
    owner = the_lab.dir.parent / f"{name}.owner"
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(str(os.getpid()))
    try:
        yield from lab_session(the_lab, "lab swarm")
    finally:
        owner.unlink(missing_ok=True)


def lab_session(the_lab, what: str):
    """Bring ``the_lab`` up (after taking down whatever an interrupted earlier session left of it), yield it,
    take it down; skip, naming ``what``, where its engine does not start (``up`` tears itself down)."""
    import swarmlab

    try:
        the_lab.down()
        the_lab.up()
    except swarmlab.EngineStartError as exc:
        pytest.skip(f"{what} unavailable: {exc}")
    try:
        yield the_lab
    finally:
        the_lab.down()


def _sweep_dead_session_labs(swarmlab) -> None:
    """Tear down labs of pytest sessions that died without cleaning up."""
    parent = swarmlab.Lab("pt0").dir.parent
    for owner in parent.glob("pt*.owner") if parent.is_dir() else []:
        try:
            pid = int(owner.read_text().strip())
            os.kill(pid, 0)
            continue  # that session is still running
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        try:
            swarmlab.Lab(owner.stem).down()
            owner.unlink(missing_ok=True)
        except swarmlab.LabError:
            pass


def pytest_collection_modifyitems(config, items):
    """Tests that break the shared lab (and repair it as well as they can) run last."""
    items.sort(key=lambda item: item.get_closest_marker("lab_fault") is not None)


def three_node_lab(name: str):
    """Bring up a three-node lab swarm of this name (torn down and made again), yield it, take it down; skip
    with the reason where it cannot run. The fixtures of the modules that change a lab have one of their own."""
    import swarmlab

    reason = swarmlab.Lab.preflight()
    if reason:
        pytest.skip(f"multi-node lab unavailable: {reason}")
    yield from lab_session(swarmlab.Lab(name, nodes=3), "multi-node lab")


@pytest.fixture(scope="session")
def multilab():
    """A real three-node lab swarm (name ``pytest-multi``): one manager and two
    workers, each a dockerd in its own network, mount and UTS namespaces, with
    the swarmscope image built offline and loaded on every node.

    Skipped, with the reason, where it cannot run (not root, no dockerd, no
    debootstrap or no Debian mirror for the image's base, ...).
    """
    import swarmlab

    # SWARMSCOPE_MULTILAB_NAME: another name, so two sessions on one machine do not share (and tear down) it
    for the_lab in three_node_lab(os.environ.get("SWARMSCOPE_MULTILAB_NAME") or "pytest-multi"):
        try:
            the_lab.image = the_lab.load_swarmscope_image()
        except swarmlab.LabError as exc:
            pytest.skip(f"multi-node lab: the swarmscope image cannot be built here: {exc}")
        yield the_lab
