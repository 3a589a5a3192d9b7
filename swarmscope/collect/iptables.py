"""Read the iptables rules of the current namespace, from both backends.

One subprocess per namespace: a small shell script runs ``iptables-nft-save``
and ``iptables-legacy-save`` one after the other, between markers, so both
backends are read with a single fork. Only the ``-save`` commands are used:
``iptables -L`` with the legacy backend would create tables.
"""

from __future__ import annotations

import re
import shutil

from swarmscope.collect.runner import Recorder
from swarmscope.errors import ParseError
from swarmscope.model import IptablesDump, Provenance
from swarmscope.parse.iptables import parse_iptables_save

BACKENDS = ("nft", "legacy")
_MARK = "@@swarmscope"
_SCRIPT = (
    'for b in nft legacy; do echo "' + _MARK + ' begin $b"; '
    'if command -v iptables-$b-save >/dev/null 2>&1; then iptables-$b-save 2>&1; rc=$?; else rc=127; fi; '
    'echo "' + _MARK + ' end $b $rc"; done'
)
_END = re.compile(r"^" + _MARK + r" end (\w+) (\d+)$")


def _split(stdout: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    current: str | None = None
    buf: list[str] = []
    for line in stdout.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if stripped.startswith(_MARK + " begin "):
            current = stripped.split()[-1]
            buf = []
            continue
        m = _END.match(stripped)
        if m and current == m.group(1):
            out[current] = ("".join(buf), int(m.group(2)))
            current = None
            continue
        if current is not None:
            buf.append(line)
    return out


def read_both(rec: Recorder, namespace: str) -> dict[str, IptablesDump]:
    """Both backends' rules in the calling thread's namespace, by backend name."""
    if shutil.which("iptables-nft-save") is None and shutil.which("iptables-legacy-save") is None:
        reason = "neither iptables-nft-save nor iptables-legacy-save is installed (apt-get install iptables)"
        rec.skipped("iptables-save", namespace, reason)
        return {b: IptablesDump(backend=b, available=False, reason=reason) for b in BACKENDS}
    res = rec.run("iptables-save (nft+legacy)", namespace, ["sh", "-c", _SCRIPT])
    if res.status != "ok":
        return {b: IptablesDump(backend=b, available=False, reason=res.reason) for b in BACKENDS}
    parts = _split(res.stdout)
    dumps: dict[str, IptablesDump] = {}
    for b in BACKENDS:
        text, rc = parts.get(b, ("", -1))
        what = f"iptables-{b}-save"
        if rc == 127:
            reason = f"{what} is not installed"
            rec.skipped(what, namespace, reason, [what])
            dumps[b] = IptablesDump(backend=b, available=False, reason=reason)
            continue
        if rc != 0:
            reason = (text.strip().splitlines() or [f"exit code {rc}"])[-1][:300]
            rec.add(Provenance(what=what, namespace=namespace, status="failed", argv=[what], exit_code=rc, reason=reason))
            dumps[b] = IptablesDump(backend=b, available=False, reason=reason, raw=text)
            continue
        try:
            dump = parse_iptables_save(text, backend=b)
        except ParseError as exc:
            rec.add(Provenance(what=what, namespace=namespace, status="failed", argv=[what], exit_code=rc, reason=f"parse error: {exc}"))
            dumps[b] = IptablesDump(backend=b, available=False, reason=f"could not parse the output: {exc}", raw=text)
            continue
        rec.add(Provenance(what=what, namespace=namespace, status="ok", argv=[what], exit_code=rc))
        dumps[b] = dump
    return dumps


def other(backend: str) -> str:
    return "legacy" if backend == "nft" else "nft"
