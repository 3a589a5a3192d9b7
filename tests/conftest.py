"""Shared pytest fixtures. The lab swarm is in contrib/lab/swarmlab.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "contrib" / "lab"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


@pytest.fixture(scope="session")
def lab():
    """The real single-node lab swarm (name ``pytest``), up once per session.

    Skipped, with the reason, where it cannot run (not root, no dockerd, the
    engine does not start, ...).
    """
    import swarmlab

    reason = swarmlab.Lab.preflight()
    if reason:
        pytest.skip(f"lab swarm unavailable: {reason}")
    the_lab = swarmlab.Lab("pytest")
    try:
        the_lab.down()  # whatever an interrupted earlier session left
        the_lab.up()  # tears itself down when it fails
    except swarmlab.EngineStartError as exc:
        pytest.skip(f"lab swarm unavailable: {exc}")
    try:
        yield the_lab
    finally:
        the_lab.down()


def pytest_collection_modifyitems(config, items):
    """Tests that break the shared lab (and repair it as well as they can) run last."""
    items.sort(key=lambda item: item.get_closest_marker("lab_fault") is not None)
