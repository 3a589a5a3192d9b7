"""glibc's heap, where swarmscope asks it to give memory back (one place for the libc calls; elsewhere, as on
musl, these do nothing)."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

#: glibc's mallopt parameter M_ARENA_MAX (malloc.h)
M_ARENA_MAX = -8


@functools.cache
def _glibc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both there: glibc
        return libc
    except (OSError, AttributeError):  # not glibc (musl, another libc)
        return None


def trim() -> None:
    """Hand the heap's free memory back to the system (malloc_trim(0))."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_arenas(n: int) -> bool:
    """At most ``n`` malloc arenas from now on; whether glibc took it."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, n))
