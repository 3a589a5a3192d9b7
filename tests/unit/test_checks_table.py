"""The check catalogue is one table (correlate/checks/table.py): every check is a row of it, once."""

from __future__ import annotations

from swarmscope.correlate.checks import CHECKS, REGISTRY, SEVERITY, causes, dns, ingress, network, node, vip
from swarmscope.correlate.checks.registry import BackendCheck, FnCheck, HopCheck
from swarmscope.model import HopStatus


def test_every_function_check_is_listed_in_the_table():
    topics = (node, ingress, vip, dns, network, causes)
    defined = [v for m in topics for v in vars(m).values() if isinstance(v, FnCheck)]
    assert defined and all(c in CHECKS for c in defined)
    assert len({c.id for c in CHECKS}) == len(CHECKS) == len(REGISTRY) == len(SEVERITY)


def test_hop_rows_name_a_hop_statuses_and_paths():
    rows = [c for c in CHECKS if isinstance(c, HopCheck)]
    assert len(rows) >= 20 and any(isinstance(c, BackendCheck) for c in CHECKS)
    for c in rows:
        assert c.hop and c.paths in ("ports", "vips", "all")
        assert c.when and all(isinstance(s, HopStatus) for s in c.when)
