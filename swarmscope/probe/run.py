"""The probe runner: real TCP connections from this node's namespaces to the targets of targets.py.

Each connection is a non-blocking ``connect`` polled for at most the per-probe timeout, then closed
(no payload); with ``http`` a ``GET /`` is sent and only the status line is kept. A vtep probe is
ICMP echoes instead (a raw socket, so root): a small one, then one of the source interface's full
MTU with Don't Fragment set (``IP_PMTUDISC_PROBE``: DF, whatever path MTU the kernel has learnt),
each sent up to three times within the timeout; the largest that came back is recorded. Namespaces are
entered with ``netns.run_in_netns`` (a fresh thread; the caller never moves), the host namespace is
this process's own. Before every connection the allow-list is asked again (``targets.guard``).
Bounds: at most ``max_probes`` connections per run, at most ``rate`` per second, ``timeout`` seconds
each, and ``deadline`` seconds in all; what a bound leaves out is recorded as not probed, with why.

Nothing here changes a rule, an address or an IPVS entry, and nothing imports the correlator.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from swarmscope.model import Probe, Snapshot
from swarmscope.netns import NamespaceError, run_in_netns
from swarmscope.probe.targets import HOST, AllowList, ProbeRefused, Target, allow_list, guard, plan

FAILED = frozenset({"refused", "reset", "timeout", "error"})
HTTP_MAX = 512  # bytes read for the status line


@dataclass
class ProbeOptions:
    """``--probe`` and its bounds."""

    http: bool = False  # --probe-http: send GET / and keep the status line
    timeout: float = 1.0  # --probe-timeout: seconds per connection
    max_probes: int = 64  # --probe-max: connections per run
    rate: float = 20.0  # connections per second at most
    deadline: float = 30.0  # seconds for the whole run
    #: only these services' targets (``explain SERVICE --probe``: the cap and the time bounds are spent on the
    #: service explained); None: every service's
    services: frozenset[str] | None = None


@dataclass
class Outcome:
    result: str  # connected | refused | reset | timeout | error
    reason: str | None = None
    http_status: str | None = None
    duration_ms: float = 0.0
    answered: int | None = None  # echo probes: the largest packet (bytes, IP header included) that came back


def classify(err: int) -> str:
    """The result word for a socket errno."""
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE):
        return "reset"
    if err == errno.ETIMEDOUT:
        return "timeout"
    return "error"


def _failed(err: int, t0: float) -> Outcome:
    return Outcome(classify(err), os.strerror(err), None, (time.monotonic() - t0) * 1000)


def _wait(sock: socket.socket, events: int, timeout: float) -> bool:
    p = select.poll()
    p.register(sock, events | select.POLLERR | select.POLLHUP)
    return bool(p.poll(max(0.0, timeout) * 1000))


def _status_line(sock: socket.socket, host: str, port: int, until: float) -> tuple[str | None, str | None, int]:
    """(status line, why there is none, errno) after sending ``GET /``."""
    req = f"GET / HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: swarmscope-probe\r\nConnection: close\r\n\r\n"
    data = req.encode("ascii")
    buf = b""
    try:
        while data:
            if not _wait(sock, select.POLLOUT, until - time.monotonic()):
                return None, "no room to send the request in time", errno.ETIMEDOUT
            data = data[sock.send(data):]
        while b"\n" not in buf and len(buf) < HTTP_MAX:
            if not _wait(sock, select.POLLIN, until - time.monotonic()):
                return None, "no HTTP answer in time", errno.ETIMEDOUT
            chunk = sock.recv(HTTP_MAX - len(buf))
            if not chunk:
                break
            buf += chunk
    except OSError as exc:
        return None, exc.strerror or str(exc), exc.errno or 0
    line = buf.split(b"\n", 1)[0].strip().decode("latin-1")[:120]
    if not line.startswith("HTTP/"):
        return None, "the answer is not HTTP" if buf else "closed without an answer", 0
    return line, None, 0


def connect_probe(address: str, port: int, timeout: float, http: bool = False) -> Outcome:
    """One TCP connection from the calling thread's namespace: connect, (GET / with ``http``), close."""
    t0 = time.monotonic()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex((address, port))
        if err not in (0, errno.EINPROGRESS):
            return _failed(err, t0)
        if err == errno.EINPROGRESS:
            if not _wait(sock, select.POLLOUT, timeout - (time.monotonic() - t0)):
                return Outcome("timeout", f"no answer within {timeout:g}s", None, (time.monotonic() - t0) * 1000)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return _failed(err, t0)
        ms = (time.monotonic() - t0) * 1000
        if not http:
            return Outcome("connected", None, None, ms)
        line, why, err = _status_line(sock, address, port, t0 + timeout)
        if line is None and err and classify(err) == "reset":
            return Outcome("reset", f"after connecting: {why}", None, ms)
        return Outcome("connected", why, line, ms)
    except OSError as exc:
        return _failed(exc.errno or errno.EIO, t0)
    finally:
        sock.close()


IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3  # linux/in.h
SMALL = 84  # bytes of the small echo: 20 (IP) + 8 (ICMP) + 56, as ping sends
ECHO_TRIES = 3


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, seq: int, size: int) -> bytes:
    """An ICMP echo request whose IP packet is ``size`` bytes long."""
    payload = bytes(i & 0xFF for i in range(size - 28))
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(head + payload), ident, seq) + payload


def _echo(sock: socket.socket, address: str, ident: int, seq: int, size: int, until: float) -> bool | str:
    """Send echoes of ``size`` bytes (up to ECHO_TRIES, spread over the time left) until one comes back:
    True, False (none did), or the text of an ICMP error that answered instead."""
    left = until - time.monotonic()
    for i in range(ECHO_TRIES):
        if left <= 0:
            break
        sock.sendto(_echo_request(ident, seq + i, size), (address, 0))
        wait_until = time.monotonic() + left / (ECHO_TRIES - i)
        while True:
            if not _wait(sock, select.POLLIN, wait_until - time.monotonic()):
                break
            data, (src, _) = sock.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            if len(data) < ihl + 8:
                continue
            kind, code, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and src == address and rid == ident and seq <= rseq <= seq + i:
                return True
            if kind == 3 and len(data) >= ihl + 8 + 20 + 8:  # an error about a packet of ours
                inner = data[ihl + 8:]
                iihl = (inner[0] & 0x0F) * 4
                if socket.inet_ntoa(inner[16:20]) == address and len(inner) >= iihl + 8 \
                        and struct.unpack("!H", inner[iihl + 4:iihl + 6])[0] == ident:
                    if code == 4:
                        mtu = struct.unpack("!H", data[ihl + 6:ihl + 8])[0]
                        return f"fragmentation needed: {src} says the next hop's MTU is {mtu}"
                    return f"destination unreachable (code {code}) from {src}"
        left = until - time.monotonic()
    return False


def echo_probe(address: str, size: int, timeout: float) -> Outcome:
    """ICMP echoes from the calling thread's namespace: SMALL bytes, then ``size`` bytes with DF set.
    connected: both came back; timeout: none, or only the small one (``answered`` says which)."""
    t0 = time.monotonic()
    ident = (os.getpid() ^ threading.get_ident() ^ int(t0 * 1000)) & 0xFFFF
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as exc:
        return Outcome("error", f"no raw ICMP socket: {exc.strerror or exc}")
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        half = timeout / 2  # the two sizes share the per-probe timeout
        small = _echo(sock, address, ident, 1, SMALL, t0 + half)
        ms = (time.monotonic() - t0) * 1000
        if small is not True:
            why = small if isinstance(small, str) else f"no answer to a {SMALL}-byte echo within {half:g}s"
            return Outcome("error" if isinstance(small, str) else "timeout", why, None, ms)
        t1 = time.monotonic()
        big = _echo(sock, address, ident, 1 + ECHO_TRIES, max(size, SMALL), t1 + half)
        if big is True:
            return Outcome("connected", f"{size}-byte packets with DF set come back", None, ms, size)
        why = big if isinstance(big, str) else (
            f"{size}-byte packets with DF set got no answer within {half:g}s while {SMALL}-byte ones did: "
            "packets that large are lost on the way (an MTU below the overlay's on the path)")
        return Outcome("timeout", why, None, (time.monotonic() - t1) * 1000, SMALL)
    except OSError as exc:
        return _failed(exc.errno or errno.EIO, t0)
    finally:
        sock.close()


class RateLimiter:
    """At most ``rate`` starts per second: ``wait()`` sleeps until the next slot."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next is not None and now < self.next:
            self.sleep(self.next - now)
            now = self.next
        self.next = now + self.gap


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _record(t: Target, result: str, reason: str | None = None, at: str = "", duration_ms: float = 0.0,
            http_status: str | None = None, answered: int | None = None) -> Probe:
    return Probe(kind=t.kind, source=t.source, address=t.address, port=t.port, protocol=t.protocol, result=result,
                 reason=reason, at=at, duration_ms=round(duration_ms, 2), http_status=http_status, hop=t.hop,
                 node=t.node, service=t.service, network=t.network, published=t.published, task=t.task,
                 vtep=t.vtep, size=t.size, answered=answered)


Connect = Callable[[str, int, float, bool], Outcome]
Echo = Callable[[str, int, float], Outcome]


def run_targets(targets: list[Target], allow: AllowList, opts: ProbeOptions, connect: Connect = connect_probe,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                enter: Callable = run_in_netns, echo: Echo = echo_probe) -> list[Probe]:
    """Probe ``targets`` within the bounds of ``opts``; one Probe record per target, in their order."""
    limiter = RateLimiter(opts.rate, clock, sleep)
    end = clock() + opts.deadline
    made = 0
    out: dict[int, Probe] = {}
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, t in enumerate(targets):
        if t.skip:
            out[i] = _record(t, "not-probed", t.skip)
            continue
        try:
            guard(t, allow)
        except ProbeRefused as exc:
            out[i] = _record(t, "not-probed", f"refused: {exc}")
            continue
        if made >= opts.max_probes:
            out[i] = _record(t, "not-probed", f"over the cap of {opts.max_probes} probes per run (--probe-max)")
            continue
        made += 1
        groups.setdefault((t.source, t.source_path), []).append(i)

    def batch(idx: list[int]) -> dict[int, Probe]:
        res: dict[int, Probe] = {}
        for i in idx:
            t = targets[i]
            left = end - clock()
            if left <= 0.05:
                res[i] = _record(t, "not-probed", f"the total time bound of {opts.deadline:g}s was reached")
                continue
            limiter.wait()
            guard(t, allow)  # again, right before the connection
            at = _now()
            timeout = min(opts.timeout, max(0.05, end - clock()))
            if t.kind == "vtep":
                o = echo(t.address, t.size or 0, timeout)
            else:
                o = connect(t.address, t.port, timeout, opts.http)
            res[i] = _record(t, o.result, o.reason, at, o.duration_ms, o.http_status, o.answered)
        return res

    for (source, path), idx in groups.items():
        if source == HOST or path is None:
            out.update(batch(idx))
            continue
        try:
            out.update(enter(path, lambda idx=idx: batch(idx), max(1.0, end - clock() + opts.timeout + 1.0)))
        except NamespaceError as exc:
            for i in idx:
                out[i] = _record(targets[i], "error", f"cannot enter {source}: {exc.reason}")
    return [out[i] for i in range(len(targets))]


def probe_snapshot(snap: Snapshot, opts: ProbeOptions, **kw) -> list[Probe]:
    """The probes this node's snapshot calls for, made now; they are also stored in ``snap.probes``."""
    snap.probes = run_targets(plan(snap, opts.services), allow_list(snap), opts, **kw)
    return snap.probes


def summary(probes: list[Probe], seconds: float | None = None, services: frozenset[str] | None = None) -> str:
    """One line: how many were made and how they went (``services``: the probes were only those services')."""
    if not probes and services is not None:
        return (f"nothing to probe for {', '.join(sorted(services))}: this node's snapshot shows no published port, "
                "VIP or task of it (a worker's API lists no services: run on a manager)")
    if not probes:
        return ("nothing to probe: the snapshot shows no service with a published port, a VIP or a task "
                "(a worker's API lists no services: run on a manager)")
    made = [p for p in probes if p.result != "not-probed"]
    counts: dict[str, int] = {}
    for p in made:
        counts[p.result] = counts.get(p.result, 0) + 1
    how = ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none made"
    sources = len({p.source for p in made})
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    rest = len(probes) - len(made)
    return (f"probed {len(made)} target(s) from {sources} namespace(s){took}: {how}"
            + (f"; {rest} not probed (UDP, no port known, or a bound)" if rest else ""))
