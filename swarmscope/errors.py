"""Error classes and the exit codes swarmscope returns.

Every error a user can cause or meet carries a one-line message that says what
is wrong and what to do; the CLI prints it as ``swarmscope: error: ...`` and
exits with the error's status. Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Exit codes, documented in the README."""

    OK = 0  # healthy / snapshot complete
    FINDINGS = 1  # findings of error severity
    USAGE = 2  # bad command line or bad input file
    COLLECT_FAILED = 3  # could not collect at all (not root, no docker, ...)
    PARTIAL = 4  # collected, but some parts failed (recorded in the snapshot)
    INTERNAL = 70  # a bug in swarmscope (EX_SOFTWARE); --debug shows the traceback


class SwarmscopeError(Exception):
    """Base class: a message for the user and an exit status."""

    status: ExitStatus = ExitStatus.COLLECT_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(SwarmscopeError):
    status = ExitStatus.USAGE


class InputError(SwarmscopeError):
    """A file given to swarmscope (--from) is not what it should be."""

    status = ExitStatus.USAGE


class CollectError(SwarmscopeError):
    """Collection cannot even start (not root, docker unreachable, ...)."""

    status = ExitStatus.COLLECT_FAILED


class ParseError(ValueError):
    """Raised by the pure parsers; names the line that could not be parsed."""

    def __init__(self, what: str, lineno: int, line: str, reason: str):
        self.what = what
        self.lineno = lineno
        self.line = line
        self.reason = reason
        super().__init__(f"{what}: line {lineno}: {reason}: {line!r}")
