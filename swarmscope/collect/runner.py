"""Run commands and queries with a timeout, and record provenance for each.

Every command, netlink query or API call made during a collection goes
through a ``Recorder`` so the snapshot can say what ran, where, how long it
took and why something was skipped or failed.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from swarmscope.model import Provenance

MAX_OUTPUT = 16 * 1024 * 1024  # bytes kept from one command


@dataclass
class CommandResult:
    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    status: str  # ok | failed | timeout | skipped
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@functools.lru_cache(maxsize=64)
def which(name: str):
    """shutil.which, asked once per program and process (a collection asks it per namespace)."""
    return shutil.which(name)


class Recorder:
    """Collects Provenance entries; thread-safe."""

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self.entries: list[Provenance] = []
        self._lock = threading.Lock()

    def add(self, entry: Provenance) -> Provenance:
        with self._lock:
            self.entries.append(entry)
        return entry

    @contextmanager
    def step(self, what: str, namespace: str) -> Iterator[Provenance]:
        """Time a non-command step (netlink, API, file read).

        The body sets ``entry.status``/``entry.reason`` when it fails softly;
        an exception marks it failed with the exception text and propagates.
        """
        entry = Provenance(what=what, namespace=namespace, status="ok")
        t0 = time.monotonic()
        try:
            yield entry
        except BaseException as exc:
            entry.status = "failed"
            entry.reason = entry.reason or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            entry.duration_ms = round((time.monotonic() - t0) * 1000, 2)
            self.add(entry)

    def skipped(self, what: str, namespace: str, reason: str, argv: list[str] | None = None) -> None:
        self.add(Provenance(what=what, namespace=namespace, status="skipped", argv=argv or [], reason=reason))

    def run(
        self,
        what: str,
        namespace: str,
        argv: list[str],
        timeout: float | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> CommandResult:
        """Run ``argv`` (in the calling thread's namespaces) and record it."""
        timeout = self.timeout if timeout is None else timeout
        if which(argv[0]) is None:
            reason = f"{argv[0]} not found on PATH (install it: see the README)"
            self.skipped(what, namespace, reason, argv)
            return CommandResult(argv, None, "", "", "skipped", reason)
        t0 = time.monotonic()
        entry = Provenance(what=what, namespace=namespace, status="ok", argv=list(argv))
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            entry.status = "timeout"
            entry.reason = f"timed out after {timeout:g}s (raise --timeout if the node is slow)"
            entry.duration_ms = round((time.monotonic() - t0) * 1000, 2)
            self.add(entry)
            return CommandResult(argv, None, "", "", "timeout", entry.reason)
        except OSError as exc:
            entry.status = "failed"
            entry.reason = f"could not run: {exc.strerror or exc}"
            entry.duration_ms = round((time.monotonic() - t0) * 1000, 2)
            self.add(entry)
            return CommandResult(argv, None, "", "", "failed", entry.reason)
        entry.duration_ms = round((time.monotonic() - t0) * 1000, 2)
        entry.exit_code = proc.returncode
        out, err = proc.stdout, proc.stderr
        if len(out) > MAX_OUTPUT:
            out = out[:MAX_OUTPUT]
            entry.truncated = True
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace").strip()
        if proc.returncode not in ok_codes:
            entry.status = "failed"
            entry.reason = (stderr.splitlines() or [f"exit code {proc.returncode}"])[-1][:500]
        self.add(entry)
        return CommandResult(argv, proc.returncode, stdout, stderr, entry.status, entry.reason)
