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


#: what --from reads at most, compressed and (for a bundle) decompressed; --max-input MiB raises it
#: (here, not in dump.py, so that the command line can show it without importing the correlator)
DEFAULT_MAX_INPUT_MB = 64


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


def is_number(s: str, max_digits: int = 20) -> bool:
    """ASCII digits only, at most ``max_digits`` of them: what ``int()`` reads back without surprise
    (``str.isdigit`` accepts '²', which ``int`` refuses; 5000 digits exceed int's conversion limit)."""
    return 0 < len(s) <= max_digits and s.isascii() and s.isdigit()


def parser(what: str):
    """Decorator for a pure parser: it fails only with ParseError. An unexpected error inside it
    (a bug meeting input nobody foresaw) becomes a ParseError naming the parser and the error, so a
    caller that handles ParseError records the failure and goes on."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ParseError:
                raise
            except (ValueError, IndexError, KeyError, TypeError, OverflowError, AttributeError, RecursionError,
                    UnicodeError) as exc:
                raise ParseError(what, 0, "", f"unreadable input ({type(exc).__name__}: {exc})") from None

        return guarded

    return wrap
