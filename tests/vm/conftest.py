"""Fixtures of the VM test tier: one guest boot per session runs the whole scenario (healthy + all faults).

Environment:
  SWARMSCOPE_VM=0               skip the tier
  SWARMSCOPE_VM_CACHE=DIR       image/wheelhouse/run cache (default /var/cache/swarmscope-vm)
  SWARMSCOPE_VM_REUSE_OUT=DIR   do not boot: read the results of an earlier run (`vmlab.py run --out DIR`)
  SWARMSCOPE_VM_TIMEOUT=S       limit for the boot itself (default 3600; the image build has none)
  SWARMSCOPE_VM_ENGINES=LABELS  engines run after the image's 20.10, from the lab's engine cache (default "26.1 28")
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import vmlab  # noqa: E402


@pytest.fixture(scope="session")
def vm_run(pytestconfig) -> vmlab.RunResult:
    if os.environ.get("SWARMSCOPE_VM", "1") == "0":
        pytest.skip("VM tier disabled (SWARMSCOPE_VM=0)")
    reuse = os.environ.get("SWARMSCOPE_VM_REUSE_OUT")
    if reuse:
        out = Path(reuse)
        if not (out / "phases").is_dir():
            pytest.fail(f"SWARMSCOPE_VM_REUSE_OUT={reuse} holds no VM run results")
        rc = (out / "scenario.rc").read_text().strip() if (out / "scenario.rc").exists() else None
        return vmlab.RunResult(out, 0, int(rc) if rc else None, 0.0, False)
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():  # build/boot progress straight to the terminal
        try:
            image = vmlab.ensure_image()
        except vmlab.VMUnavailable as exc:
            pytest.skip(f"VM tier unavailable: {exc}")
        dirs, missing = vmlab.engines()
        out = vmlab.new_run_dir()
        res = vmlab.boot(image, out, engine_dirs=dirs)
        (out / "engines-not-run.txt").write_text("".join(f"{m}\n" for m in missing))
        return res


@pytest.fixture(scope="session")
def vm_out(vm_run) -> Path:
    """The run's output dir; fails (once per test) when the guest never got to the first phase."""
    if not (vm_run.out / "phases" / "healthy").is_dir():
        pytest.fail(f"the VM scenario produced no healthy phase (see {vm_run.out}/serial-console.log, "
                    f"FAILED.txt): {vmlab.tail(vm_run.out / 'FAILED.txt')}")
    return vm_run.out
