"""Read what users already have into node snapshots: moby's support.sh transcripts (one node, one
file per node, or several concatenated) and directories of pasted command output.

``load_text(paths)`` returns the snapshots and a :class:`TextReport` of what was read and what
was skipped. Sections are split in :mod:`.sections`, parsed and assembled in :mod:`.build`;
the snapshots are judged by the same correlator as a live collection.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from swarmscope.errors import InputError, ParseError
from swarmscope.ingest.sections import KINDS, Section, looks_like_transcript, split_pasted
from swarmscope.model import Snapshot

__all__ = ["TextReport", "load_text", "is_text_input", "EXPECTED"]

EXPECTED = "a support.sh transcript, or one command's output: " + ", ".join(
    sorted(
        set(KINDS.values())
        - {
            "support.sh IP overlap check",
            "support.sh summary",
            "support.sh container block (docker container inspect --format)",
            "support.sh network marker",
        }
    )
)

_NS_FILE = re.compile(r"^(ingress_sbox|lb_[0-9a-z]+|\d+-[0-9a-z]+|[0-9a-f]{12})[-_.]")


@dataclass
class TextReport:
    read: list[str] = field(default_factory=list)  # "FILE:LINES kind (namespace) on node N"
    skipped: list[str] = field(default_factory=list)  # "FILE:LINE: why"
    nodes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"read {len(self.read)} sections for {len(self.nodes)} node(s): {', '.join(self.nodes)}"]
        if self.skipped:
            out.append(f"skipped {len(self.skipped)}:")
            out.extend(f"  {s}" for s in self.skipped)
        return out


def is_text_input(path: str) -> bool:
    """Whether ``path`` is text for this module (a directory, or a file that is neither JSON nor gzip)."""
    if path == "-":
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return True
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b":
        return False
    s = head.lstrip()
    if s.startswith(b"{"):
        return False
    if s.startswith(b"[") and b'"IPAM"' not in head and b'"NetworkSettings"' not in head and b'"Spec"' not in head:
        return False
    return bool(s)


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise InputError(
            f"{path} is larger than the limit of {limit / (1024 * 1024):g} MiB for --from input "
            "(--max-input MiB raises it)"
        )
    if b"\x00" in raw[:65536]:
        raise InputError(f"{path} is a binary file: expected {EXPECTED}")
    return raw.decode("utf-8", errors="replace")


def _sections_of_file(path: str, text: str, label: str) -> tuple[list[Section], list[str]]:
    try:
        secs, skipped = split_pasted(text, label)
    except ValueError as exc:
        raise InputError(f"{label}: {exc}; expected {EXPECTED}") from None
    base = os.path.basename(path)
    m = _NS_FILE.match(base)
    if m:  # a file named after its namespace (ingress_sbox-iptables-nat.txt)
        for s in secs:
            if s.namespace == "host" and s.ns_path is None:
                s.namespace = m.group(1)
    t = re.search(r"(?:^|[-_.])(nat|filter|mangle|raw)(?:[-_.]|$)", base)
    for s in secs:
        if s.kind == "iptables-list" and s.table is None and t:
            s.table = t.group(1)
    return secs, skipped


def load_text(paths: list[str], limit_mb: float | None = None) -> tuple[list[Snapshot], TextReport]:
    """Snapshots from support.sh transcripts and/or directories of pasted output."""
    # the parsers and the snapshot's assembly only here: `is_text_input`, asked of every --from, needs none of
    # them (the assembly imports the collector's layout: 25 ms of a small dump's `check`)
    from swarmscope.dump import DEFAULT_MAX_INPUT_MB
    from swarmscope.ingest.build import NodeText, read_section, to_snapshot

    limit = int((limit_mb or DEFAULT_MAX_INPUT_MB) * 1024 * 1024)
    rep = TextReport()
    groups: list[tuple[str, list[Section]]] = []  # one group per node
    total = 0
    for path in paths:
        if os.path.isdir(path):
            loose: list[Section] = []
            names = sorted(n for n in os.listdir(path) if not n.startswith("."))
            readable = 0
            for name in names:
                fp = os.path.join(path, name)
                if not os.path.isfile(fp):
                    continue
                text = _read(fp, limit)
                total += len(text)
                if total > limit:
                    raise InputError(
                        f"{path} holds more than the limit of {limit / (1024 * 1024):g} MiB for --from input"
                    )
                label = os.path.join(path, name)
                try:
                    secs, skipped = _sections_of_file(fp, text, label)
                except InputError as exc:
                    rep.skipped.append(str(exc))
                    continue
                readable += 1
                rep.skipped.extend(skipped)
                if looks_like_transcript(text):
                    groups.extend(_by_node(secs, label))
                else:
                    loose.extend(secs)
            if loose:
                groups.append((os.path.basename(os.path.normpath(path)) or path, loose))
            if not readable:
                raise InputError(f"{path}: no file in it is one swarmscope reads; expected {EXPECTED}")
            continue
        if not os.path.exists(path):
            raise InputError(f"no such file: {path}")
        text = _read(path, limit)
        secs, skipped = _sections_of_file(path, text, path)
        rep.skipped.extend(skipped)
        stem = os.path.basename(path).split(".")[0] or path
        if looks_like_transcript(text):
            groups.extend(_by_node(secs, stem))
        else:
            groups.append((stem, secs))
    snaps: list[Snapshot] = []
    for label, secs in groups:
        nt = NodeText(label=label)
        for s in secs:
            try:
                read_section(nt, s)
                rep.read.append(f"{s.where} {s.kind} ({s.namespace})")
            except (ParseError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
                msg = exc.reason if isinstance(exc, ParseError) else str(exc)
                at = f"{s.source}:{s.first + exc.lineno - 1}" if isinstance(exc, ParseError) and exc.lineno else s.where
                why = f"{at}: {KINDS.get(s.kind, s.kind)} not read: {msg}"
                nt.skipped.append(why)
                rep.skipped.append(why)
        if not any(True for _ in secs) or (not nt.provenance and not nt.skipped):
            continue
        snap = to_snapshot(nt)
        snaps.append(snap)
        rep.nodes.append(snap.node.hostname)
    if not snaps:
        raise InputError(f"{', '.join(paths)}: nothing readable; expected {EXPECTED}")
    _unique_names(snaps)
    return snaps, rep


def _by_node(secs: list[Section], label: str) -> list[tuple[str, list[Section]]]:
    nodes = sorted({s.node for s in secs})
    if len(nodes) <= 1:
        return [(label, secs)]
    return [(f"{label}#{k + 1}", [s for s in secs if s.node == k]) for k in nodes]


def _unique_names(snaps: list[Snapshot]) -> None:
    seen: dict[str, int] = {}
    for s in snaps:
        n = s.node.hostname
        if n in seen:
            seen[n] += 1
            s.node.hostname = f"{n}-{seen[n]}"
        else:
            seen[n] = 1
