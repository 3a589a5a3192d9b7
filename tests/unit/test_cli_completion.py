"""Shell completion (click's protocol) and --version: completing `swarmscope explain <TAB>` on a saved dump or a
support.sh transcript offers its service names, in a real bash with the completion script swarmscope prints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DUMP = "examples/lab-vm-healthy.json"
TRANSCRIPT = "tests/fixtures/pasted/vm/healthy/support-sh.txt"


def shim(tmp_path: Path) -> dict:
    """A `swarmscope` on PATH that runs this checkout."""
    b = tmp_path / "bin"
    b.mkdir()
    exe = b / "swarmscope"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m swarmscope \"$@\"\n")
    exe.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{b}:{env['PATH']}"
    env.pop("SWARMSCOPE_DEBUG", None)
    return env


def complete(env: dict, shell: str, words: str, cword: int) -> str:
    e = dict(env, COMP_WORDS=words, COMP_CWORD=str(cword), _SWARMSCOPE_COMPLETE=f"{shell}_complete")
    return subprocess.run(["swarmscope"], capture_output=True, text=True, cwd=REPO, env=e, timeout=120).stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("source", [DUMP, TRANSCRIPT])
def test_bash_completes_service_names(tmp_path, source):
    env = shim(tmp_path)
    script = (
        'eval "$(_SWARMSCOPE_COMPLETE=bash_source swarmscope)"\n'
        f'COMP_WORDS=(swarmscope explain --from {source} ""); COMP_CWORD=4\n'
        "_swarmscope_completion swarmscope\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        f'COMPREPLY=(); COMP_WORDS=(swarmscope explain --from {source} wh); COMP_CWORD=4\n'
        "_swarmscope_completion swarmscope\n"
        'printf "=%s\\n" "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    offered = [l for l in p.stdout.splitlines() if not l.startswith("=")]
    want = ["whoami"] if source == DUMP else ["client", "dnsrr", "glob", "hostport", "whoami"]
    assert sorted(offered) == want, p.stdout
    assert [l for l in p.stdout.splitlines() if l.startswith("=")] == ["=whoami"]


def test_zsh_and_fish_protocols(tmp_path):
    env = shim(tmp_path)
    assert "whoami" in complete(env, "zsh", f"swarmscope explain --from {DUMP} w", 4)
    e = dict(env, COMP_WORDS=f"swarmscope explain --from {DUMP} w", COMP_CWORD="w", _SWARMSCOPE_COMPLETE="fish_complete")
    assert "whoami" in subprocess.run(["swarmscope"], capture_output=True, text=True, cwd=REPO, env=e, timeout=120).stdout
    for shell in ("bash", "zsh", "fish"):
        e = dict(env, _SWARMSCOPE_COMPLETE=f"{shell}_source")
        out = subprocess.run(["swarmscope"], capture_output=True, text=True, cwd=REPO, env=e, timeout=120).stdout
        assert "_SWARMSCOPE_COMPLETE" in out, shell
    # commands complete too; without --from nothing is offered for SERVICE (it would mean collecting)
    assert "explain" in complete(env, "bash", "swarmscope ex", 1)
    assert complete(env, "bash", "swarmscope explain ", 2).strip() == ""


def test_version_names_schemas_and_engine_profiles(tmp_path):
    from swarmscope.engines import PROFILES

    p = subprocess.run(["swarmscope", "--version"], capture_output=True, text=True, env=shim(tmp_path), timeout=60)
    assert p.returncode == 0
    assert "swarmscope/snapshot version 2" in p.stdout and "swarmscope/dump version 1" in p.stdout
    for prof in PROFILES:
        assert prof.name in p.stdout
