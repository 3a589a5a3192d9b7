"""The checks: a registry of what a check is (``registry``), the catalogue as one table in run order
(``table.CHECKS``: the hop and real-server checks as literal rows, the function checks by name), the
function checks by topic (``node``, ``ingress``, ``vip``, ``dns``, ``network``, ``causes``), the root-cause
table (``roots.ROOT_CAUSES``) and the runner that merges, tags and groups (``run``). Pure.
"""

from __future__ import annotations

from swarmscope.correlate.checks.registry import (
    BREAKING,
    SEVERITY_ORDER,
    BackendCheck,
    CheckSpec,
    Ctx,
    FnCheck,
    Hit,
    HopCheck,
    check,
)
from swarmscope.correlate.checks.roots import NO_IPVS_SYMPTOMS, ROOT_CAUSES
from swarmscope.correlate.checks.run import catalogue, fails, hop_breaks, run_checks
from swarmscope.correlate.checks.table import CHECKS, REGISTRY, SEVERITY

__all__ = [
    "BREAKING",
    "CHECKS",
    "NO_IPVS_SYMPTOMS",
    "REGISTRY",
    "ROOT_CAUSES",
    "SEVERITY",
    "SEVERITY_ORDER",
    "BackendCheck",
    "CheckSpec",
    "Ctx",
    "FnCheck",
    "Hit",
    "HopCheck",
    "catalogue",
    "check",
    "fails",
    "hop_breaks",
    "run_checks",
]
