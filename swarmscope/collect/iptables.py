"""Read the iptables rules of the current namespace, from both backends.

The legacy backend has nothing to print in a namespace where no legacy table
exists: ``/proc/thread-self/net/ip_tables_names`` (read from the thread that
entered the namespace) is empty there, or absent where ip_tables is not loaded.
There only ``iptables-nft-save`` is run, as one process, and the legacy read is
recorded as skipped with that reason (its dump is the empty one
``iptables-legacy-save`` would have printed). Elsewhere one subprocess reads
both: a small shell script runs ``iptables-nft-save`` and
``iptables-legacy-save`` one after the other, between markers. Only the
``-save`` commands are used: ``iptables -L`` with the legacy backend would
create tables. (The nft ruleset could be dumped over netlink, but turning the
xtables-compat expressions back into byte-identical iptables-save text is what
``iptables-nft-save`` itself does: it is kept.)
"""

from __future__ import annotations

import re

from swarmscope.collect.runner import Recorder, which
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
        if m and current is not None and current == m.group(1):
            out[current] = ("".join(buf), int(m.group(2)))
            current = None
            continue
        if current is not None:
            buf.append(line)
    return out


LEGACY_NAMES = "/proc/thread-self/net/ip_tables_names"


def legacy_skip_reason(names_file: str = LEGACY_NAMES) -> str | None:
    """Why iptables-legacy-save has nothing to print in the calling thread's namespace, or None (run it)."""
    try:
        with open(names_file, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        return ("no legacy tables: ip_tables is not loaded (no /proc/net/ip_tables_names), "
                "iptables-legacy-save would print nothing")
    except OSError:
        return None  # cannot tell: read it
    if text.strip():
        return None
    return ("no legacy tables in this namespace (/proc/net/ip_tables_names is empty), "
            "iptables-legacy-save would print nothing")


def read_both(rec: Recorder, namespace: str) -> dict[str, IptablesDump]:
    """Both backends' rules in the calling thread's namespace, by backend name."""
    has_nft = which("iptables-nft-save") is not None
    has_legacy = which("iptables-legacy-save") is not None
    if not has_nft and not has_legacy:
        reason = "neither iptables-nft-save nor iptables-legacy-save is installed (apt-get install iptables)"
        rec.skipped("iptables-save", namespace, reason)
        return {b: IptablesDump(backend=b, available=False, reason=reason) for b in BACKENDS}
    skip = legacy_skip_reason() if has_legacy else None
    if skip is not None and has_nft:
        return _read_nft_only(rec, namespace, skip)
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
            rec.add(
                Provenance(what=what, namespace=namespace, status="failed", argv=[what], exit_code=rc, reason=reason)
            )
            dumps[b] = IptablesDump(backend=b, available=False, reason=reason, raw=text)
            continue
        try:
            dump = parse_iptables_save(text, backend=b)
        except ParseError as exc:
            rec.add(
                Provenance(
                    what=what,
                    namespace=namespace,
                    status="failed",
                    argv=[what],
                    exit_code=rc,
                    reason=f"parse error: {exc}",
                )
            )
            dumps[b] = IptablesDump(backend=b, available=False, reason=f"could not parse the output: {exc}", raw=text)
            continue
        rec.add(Provenance(what=what, namespace=namespace, status="ok", argv=[what], exit_code=rc))
        dumps[b] = dump
    return dumps


def _parse(rec: Recorder, namespace: str, text: str, backend: str) -> IptablesDump:
    try:
        return parse_iptables_save(text, backend=backend)
    except ParseError as exc:
        what = f"iptables-{backend}-save"
        rec.add(
            Provenance(
                what=what, namespace=namespace, status="failed", argv=[what], exit_code=0, reason=f"parse error: {exc}"
            )
        )
        return IptablesDump(backend=backend, available=False, reason=f"could not parse the output: {exc}", raw=text)


def _read_nft_only(rec: Recorder, namespace: str, legacy_reason: str) -> dict[str, IptablesDump]:
    """One process: iptables-nft-save; the legacy backend recorded as skipped (it holds no table here)."""
    res = rec.run("iptables-nft-save", namespace, ["iptables-nft-save"])
    rec.skipped("iptables-legacy-save", namespace, legacy_reason, ["iptables-legacy-save"])
    if res.status == "ok":
        nft = _parse(rec, namespace, res.stdout, "nft")
    else:
        nft = IptablesDump(
            backend="nft",
            available=False,
            reason=res.reason,
            raw=res.stdout + res.stderr if res.exit_code is not None else "",
        )
    return {"nft": nft, "legacy": parse_iptables_save("", backend="legacy")}


def other(backend: str) -> str:
    return "legacy" if backend == "nft" else "nft"
