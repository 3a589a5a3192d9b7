"""A node snapshot as log lines, and back (pure).

The on-demand job prints its node's snapshot on standard output, where the
manager reads it back through the Docker API (task logs). A log line is
limited (the json-file driver splits lines at 16 KiB), so the snapshot JSON is
zlib-compressed, base64-encoded and cut into lines, each self-describing::

    SWARMSCOPE1 <run> <node id> <i>/<n> <sha256 of the whole payload, 16 hex> <base64 piece>
    SWARMSCOPE1 <run> <node id> ERROR <message>

Lines of other runs, other text and duplicates are ignored; a node's payload
is complete when all n pieces with the same checksum are there and the
checksum matches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

MAGIC = "SWARMSCOPE1"
PIECE = 8000  # base64 characters per line: well under the 16 KiB log line limit


def encode(doc: dict, run: str, node_id: str, piece: int = PIECE) -> list[str]:
    """The lines that carry ``doc`` (a JSON object)."""
    raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)
    b64 = base64.b64encode(raw).decode()
    digest = hashlib.sha256(b64.encode()).hexdigest()[:16]
    pieces = [b64[i : i + piece] for i in range(0, len(b64), piece)] or [""]
    n = len(pieces)
    return [f"{MAGIC} {run} {node_id} {i + 1}/{n} {digest} {p}" for i, p in enumerate(pieces)]


def error_line(run: str, node_id: str, message: str) -> str:
    return f"{MAGIC} {run} {node_id} ERROR {' '.join(message.split())}"


@dataclass
class NodeOutput:
    node_id: str
    pieces: dict[int, str] = field(default_factory=dict)
    total: int | None = None
    digest: str | None = None
    errors: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # why lines were rejected

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.pieces) == self.total

    @property
    def size(self) -> int:
        """Compressed payload size in bytes (about 3/4 of the base64 text)."""
        return sum(len(p) for p in self.pieces.values()) * 3 // 4

    def document(self) -> dict:
        """The decoded JSON object; ValueError when incomplete or damaged."""
        if not self.complete:
            raise ValueError(f"got {len(self.pieces)} of {self.total or '?'} pieces")
        b64 = "".join(self.pieces[i] for i in range(1, (self.total or 0) + 1))
        if hashlib.sha256(b64.encode()).hexdigest()[:16] != self.digest:
            raise ValueError("checksum mismatch")
        try:
            return json.loads(zlib.decompress(base64.b64decode(b64)))
        except (zlib.error, ValueError) as exc:
            raise ValueError(f"cannot decode: {exc}") from None


class Reassembler:
    """Collects the lines of one run, per node."""

    def __init__(self, run: str):
        self.run = run
        self.nodes: dict[str, NodeOutput] = {}

    def feed(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.feed_line(line)

    def feed_line(self, line: str) -> None:
        # a log line may carry a timestamp or details before the payload
        at = line.find(MAGIC + " ")
        if at < 0:
            return
        parts = line[at:].rstrip("\r\n").split(" ", 5)
        if len(parts) < 4 or parts[1] != self.run:
            return
        node = self.nodes.setdefault(parts[2], NodeOutput(parts[2]))
        if parts[3] == "ERROR":
            msg = line[at:].split(" ", 4)[4].strip() if len(parts) >= 5 else ""
            if msg not in node.errors:
                node.errors.append(msg)
            return
        if len(parts) != 6:
            node.bad.append("short line")
            return
        try:
            i, n = (int(x) for x in parts[3].split("/"))
        except ValueError:
            node.bad.append(f"bad piece number {parts[3]!r}")
            return
        if node.digest is not None and (parts[4] != node.digest or n != node.total):
            # a second attempt of the same node: keep the newest one
            node.pieces.clear()
        node.digest, node.total = parts[4], n
        if 1 <= i <= n:
            node.pieces[i] = parts[5]

    def get(self, node_id: str) -> NodeOutput | None:
        return self.nodes.get(node_id)


def demux(data: bytes) -> str:
    """Text of a Docker log stream: multiplexed frames (non-TTY) or raw."""
    if len(data) >= 8 and data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0":
        out = []
        pos = 0
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos + 4 : pos + 8], "big")
            out.append(data[pos + 8 : pos + 8 + size])
            pos += 8 + size
        data = b"".join(out)
    return data.decode("utf-8", errors="replace")
