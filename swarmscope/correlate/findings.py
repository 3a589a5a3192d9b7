"""Where the checks were: ``correlate/checks/`` holds them now (the catalogue is ``checks/table.py``).
These names stay importable from here for the CLI, the pipeline and the tests.
"""

from __future__ import annotations

from swarmscope.correlate.checks import (
    BREAKING,
    NO_IPVS_SYMPTOMS,
    REGISTRY,
    ROOT_CAUSES,
    SEVERITY,
    CheckSpec,
    Ctx,
    Hit,
    catalogue,
    check,
    fails,
    hop_breaks,
    run_checks,
)

__all__ = [
    "BREAKING",
    "NO_IPVS_SYMPTOMS",
    "REGISTRY",
    "ROOT_CAUSES",
    "SEVERITY",
    "CheckSpec",
    "Ctx",
    "Hit",
    "catalogue",
    "check",
    "fails",
    "hop_breaks",
    "run_checks",
]
