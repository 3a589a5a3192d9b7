"""Enter a network namespace by its file path, read-only, and run code there.

``setns()`` moves only the calling thread, so every call here starts a fresh
thread, opens the namespace file with ``O_RDONLY|O_CLOEXEC`` (never a create
flag: a missing file is an error, not a new namespace), joins it, runs the
function and lets the thread end. The caller's thread never changes namespace.
Subprocesses started from inside the function inherit the namespace; inside it
read ``/proc/thread-self/net/...``, not ``/proc/self/net/...``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = None


class NamespaceError(Exception):
    """The namespace could not be entered."""

    def __init__(self, path: str, reason: str, vanished: bool = False):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.vanished = vanished


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def explain_setns_error(exc: OSError) -> str:
    """A reason a user can act on, for a failed open()/setns()."""
    if exc.errno == errno.ENOENT:
        return "namespace file vanished (the container or network went away during collection)"
    if exc.errno == errno.EPERM:
        return "permission denied entering the namespace: run as root (or with CAP_SYS_ADMIN)"
    if exc.errno == errno.EINVAL:
        return (
            "reassociate to namespace failed: Invalid argument — the file is not a network "
            "namespace as seen from here; in a container, bind-mount the engine's netns "
            "directory with bind-propagation=rslave and run with the host PID namespace"
        )
    return f"cannot enter namespace: {exc.strerror or exc}"


def is_mounted_namespace(path: str) -> bool | None:
    """Whether ``path`` is a live namespace (an nsfs bind mount) and not a plain file.

    None when it cannot be told (the file is gone, or /proc is not readable).
    A plain file is what a removed sandbox leaves behind, or what a netns
    directory looks like from a container that sees it without its mounts.
    """
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return None


def run_in_netns(path: str, fn: Callable[[], T], timeout: float | None = None) -> T:
    """Run ``fn()`` in a fresh thread inside the network namespace at ``path``.

    Raises NamespaceError if the namespace cannot be entered; exceptions of
    ``fn`` are re-raised in the caller. ``timeout`` bounds the wait (the thread
    is a daemon and is abandoned if it overruns; its own I/O has timeouts).
    """
    box: dict[str, object] = {}

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["err"] = NamespaceError(path, explain_setns_error(exc), vanished=exc.errno == errno.ENOENT)
            return
        try:
            _setns(fd)
        except OSError as exc:
            box["err"] = NamespaceError(path, explain_setns_error(exc))
            return
        finally:
            os.close(fd)
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["exc"] = exc

    t = threading.Thread(target=worker, name=f"netns:{os.path.basename(path)}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise NamespaceError(path, f"timed out after {timeout:.1f}s inside the namespace")
    if "err" in box:
        raise box["err"]  # type: ignore[misc]
    if "exc" in box:
        raise box["exc"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
