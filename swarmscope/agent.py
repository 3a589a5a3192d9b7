"""``swarmscope agent``: the per-node collector as a job or as a standing service.

- ``--once``: collect this node, print the snapshot as chunk lines on standard
  output (see gather/chunks.py) and exit: what the on-demand gather job runs.
- standing: re-collect every ``--interval`` seconds, log findings when they
  appear and when they clear (``docker service logs swarmscope_agent`` is then
  a fault history) and, with ``--listen ADDR:PORT --token-file FILE``, serve
  ``/snapshot`` (JSON) and ``/metrics`` (Prometheus) behind a bearer token;
  ``/healthz`` needs none and says nothing about the node.

On start the agent checks what it needs (``check_environment``) and says
exactly what is missing.
"""

from __future__ import annotations

import datetime as _dt
import errno
import gc
import hmac
import json
import math
import os
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from swarmscope import heap
from swarmscope.collect.snapshot import CollectOptions
from swarmscope.errors import SwarmscopeError, UsageError
from swarmscope.render import prometheus


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg: str) -> None:
    print(f"{_now()} swarmscope agent: {msg}", flush=True)


# --------------------------------------------------------------------------- the start-up check


@dataclass
class Check:
    what: str
    ok: bool
    detail: str
    optional: bool = False  # not ok is noted, not counted missing (a tool only a fallback or an extra needs)

    @property
    def missing(self) -> bool:
        return not self.ok and not self.optional


def _capabilities() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def _mount_of(path: str) -> tuple[str, list[str]] | None:
    """(mount point, optional fields) of the mount that holds path."""
    best = None
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                parts = line.split()
                point = parts[4].replace("\\040", " ")
                opt = parts[6 : parts.index("-")]
                if path == point or path.startswith(point.rstrip("/") + "/") or point == "/":
                    if best is None or len(point) >= len(best[0]):
                        best = (point, opt)
    except (OSError, ValueError):
        return None
    return best


def check_environment(opts: CollectOptions) -> list[Check]:
    """What the agent needs, each with ok and an exact statement of what is missing."""
    from swarmscope.collect import docker_api
    from swarmscope.netns import NamespaceError, is_mounted_namespace, run_in_netns

    out: list[Check] = []
    caps = _capabilities()
    if os.geteuid() != 0:
        out.append(Check("root", False, "not running as root (uid 0): the agent reads iptables and enters namespaces"))
    if caps is not None:
        out += capability_checks(caps)
    # the Docker API
    info = None
    try:
        api, url, info = docker_api.connect_info(opts.docker_host, opts.docker_timeout)
        api.close()
        out.append(Check("docker API", True, f"{url}: engine {info.engine_version}, swarm {info.swarm_state}"))
    except Exception as exc:  # noqa: BLE001
        msg = exc.message if isinstance(exc, SwarmscopeError) else str(exc)
        out.append(Check("docker API", False, f"{msg} (bind-mount the engine's socket: "
                                               "source=/var/run/docker.sock,target=/var/run/docker.sock)"))
    # the host's network namespace
    if info is not None and info.node_addr:
        try:
            from swarmscope.collect.links import read_interfaces

            ifaces, _ = read_interfaces()
            addrs = {a.address for i in ifaces for a in i.addresses}
            ok = info.node_addr in addrs
            out.append(Check("host network", ok, f"the node address {info.node_addr} is on "
                             f"{next(i.name for i in ifaces if any(a.address == info.node_addr for a in i.addresses))}"
                             if ok else f"the node address {info.node_addr} is not in this network namespace: "
                             "run in the host's (docker service create --network host; stack: the external "
                             "network 'host')"))
        except Exception as exc:  # noqa: BLE001
            out.append(Check("host network", False, f"cannot read this namespace's addresses: {exc}"))
    # the netns directory and its propagation
    d = opts.netns_dir
    if not os.path.isdir(d):
        out.append(Check("netns directory", False, f"no directory {d}: bind-mount the engine's netns directory "
                         "(source=/var/run/docker/netns,target=/var/run/docker/netns,bind-propagation=rslave)"))
        return out
    files = sorted(os.listdir(d))
    mount = _mount_of(os.path.realpath(d))
    if mount and mount[0] == os.path.realpath(d):
        fields = mount[1]
        if any(f.startswith(("master:", "shared:")) for f in fields):
            out.append(
                Check(
                    "netns propagation",
                    True,
                    f"{d} is a {'slave' if any(f.startswith('master:') for f in fields) else 'shared'} "
                    "mount: namespaces created later appear here",
                )
            )
        else:
            out.append(Check("netns propagation", False, f"{d} is bind-mounted private: namespaces created after the "
                             "agent started will not be visible here, and entering them fails with 'reassociate to "
                             "namespace: Invalid argument' (mount it with bind-propagation=rslave)"))
    live = [f for f in files if is_mounted_namespace(os.path.join(d, f))]
    if files and not live:
        out.append(Check("netns files", False, f"none of the {len(files)} files under {d} is a mounted namespace: "
                         "the directory is seen without dockerd's mounts (bind-propagation=rslave, and on the node the "
                         "files must be the engine's: --netns-dir)"))
    elif live:
        target = "ingress_sbox" if "ingress_sbox" in live else live[0]
        try:
            run_in_netns(os.path.join(d, target), lambda: None, timeout=10)
            out.append(Check("enter namespace", True, f"entered {target} ({len(live)} namespaces under {d})"))
        except NamespaceError as exc:
            out.append(Check("enter namespace", False, f"{target}: {exc.reason}"))
    else:
        out.append(Check("netns files", True, f"{d} is empty (no namespaces yet)"))
    out += tool_checks(opts)
    return out


def capability_checks(caps: int) -> list[Check]:
    """One check per capability a source's live read needs (``collect/host.py``'s ``caps``), with the
    sources it costs when missing."""
    from swarmscope.collect.host import CAPABILITIES, SOURCES

    out = []
    for name, (bit, why) in CAPABILITIES.items():
        costs = [s.name for s in SOURCES if name in s.caps]
        if not costs:
            continue
        have = bool(caps >> bit & 1)
        out.append(Check(name, have, f"present ({why})" if have else
                         f"missing: needed for {why} (sources {', '.join(costs)} are not read); add it "
                         f"(docker service create --cap-add {name[4:]}, stack cap_add: [{name[4:]}])"))
    return out


def tool_checks(opts: CollectOptions) -> list[Check]:
    """The programs the sources' live readers run (``collect/host.py``'s ``tools``): each one not found, with
    the source it costs. A tool a source needs only as a fallback or for an extra (``Needs.OPTIONAL``) is
    noted, not counted missing; of a source's ``Needs.ANY`` tools, only all of them missing is."""
    from swarmscope.collect.host import SOURCES, Needs

    out: list[Check] = []
    for s in SOURCES:
        tools = [t for t in s.tools if not (t.unless and getattr(opts, t.unless, None))]
        lost = [t for t in tools if shutil.which(t.name) is None]
        if not lost or (s.needs == Needs.ANY and len(lost) < len(tools)):
            continue
        optional = s.needs == Needs.OPTIONAL
        if s.needs == Needs.ANY and len(lost) > 1:
            out.append(Check(" / ".join(t.name for t in lost), False,
                             f"none of {', '.join(t.name for t in lost)} found: {s.reader} (source {s.name}) "
                             "is not read"))
            continue
        for t in lost:
            out.append(Check(t.name, False, f"{t.name} not found: {t.part} (source {s.name}) "
                             f"{'are' if t.plural else 'is'} not read" + (" (optional)" if optional else ""),
                             optional=optional))
    return out


def report_checks(checks: list[Check], stream=None) -> int:
    """Print the checks (stderr by default); the number missing."""
    stream = stream or sys.stderr
    missing = [c for c in checks if c.missing]
    for c in checks:
        label = "ok     " if c.ok else "note   " if c.optional else "MISSING"
        print(f"swarmscope agent: check: {label} {c.what}: {c.detail}", file=stream, flush=True)
    if missing:
        print(f"swarmscope agent: {len(missing)} requirement(s) missing: {', '.join(c.what for c in missing)}; "
              "collecting anyway: the snapshot says what could not be read", file=stream, flush=True)
    else:
        print("swarmscope agent: all requirements present", file=stream, flush=True)
    return len(missing)


# --------------------------------------------------------------------------- --once


def run_once(opts: CollectOptions, run: str) -> int:
    """Collect this node and print it as chunk lines; the exit code for the task."""
    from swarmscope.gather.chunks import encode, error_line
    from swarmscope.pipeline import collect_node

    node_id = os.environ.get("SWARMSCOPE_NODE_ID") or ""
    checks = check_environment(opts)
    report_checks(checks)
    try:
        snap = collect_node(opts)
    except SwarmscopeError as exc:
        print(error_line(run, node_id or "unknown", str(exc)), flush=True)
        return 3
    except Exception as exc:  # noqa: BLE001
        print(error_line(run, node_id or "unknown", f"internal error: {type(exc).__name__}: {exc}"), flush=True)
        return 70
    for c in checks:
        if c.missing:
            msg = f"agent: {c.what}: {c.detail}"
            if msg not in snap.errors:
                snap.errors.append(msg)
                snap.complete = False
    for line in encode(snap.to_dict(), run, node_id or snap.node.node_id or snap.node.hostname):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------- standing


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot_json: bytes | None = None
    metrics: str = ""  # the Prometheus text form of the last collection (for the log and the tests)
    registry: Any = None  # a prometheus_client registry holding the last collection's metrics
    exposition: dict = field(default_factory=dict)  # content type -> bytes, made on demand per collection
    collections: int = 0
    failures: int = 0

    def publish(self, snapshot_json: bytes, registry) -> None:
        text = prometheus.text(registry)
        with self.lock:
            self.snapshot_json = snapshot_json
            self.registry = registry
            self.metrics = text
            self.exposition = {}

    def publish_failure(self, registry) -> None:
        """New metrics (the failure counts), the last snapshot kept."""
        text = prometheus.text(registry)
        with self.lock:
            self.registry, self.metrics, self.exposition = registry, text, {}

    def metrics_for(self, accept: str) -> tuple[bytes, str] | None:
        """(body, content type) of the last collection's metrics in the format ``accept`` negotiates."""
        with self.lock:
            registry, cache = self.registry, self.exposition
            if registry is None:
                if not self.metrics:
                    return None
                return self.metrics.encode(), "text/plain; version=0.0.4; charset=utf-8"
            return prometheus.exposition(registry, accept, cache)


def _finding_key(f) -> tuple:
    return (f.id, f.service or "", f.network or "", tuple(f.nodes))


def failure_registry(state: State):
    """Metrics before any collection succeeded: the counters only."""
    return prometheus.counters_registry(state.collections, state.failures)


def metrics_registry(snap, analysis, state: State):
    """A prometheus_client registry with the metrics of one collection (pure)."""
    return prometheus.collection_registry(snap, analysis, state.collections, state.failures, time.time())


# --------------------------------------------------------------------------- the HTTP side


@dataclass
class HttpLimits:
    """What one client may hold. A connection that has not sent a whole request head within
    ``header_timeout`` seconds is closed; one whose response does not drain within ``write_timeout``
    too. At most ``max_connections`` are open at once (fewer when the descriptor limit is low);
    past that the oldest connection still sending its request head (for at least ``evict_after``
    seconds) is closed to make room, else the new one gets a 503."""

    max_connections: int = 256
    header_timeout: float = 5.0
    write_timeout: float = 10.0
    max_request_bytes: int = 8192  # request line and headers; no body is accepted
    max_headers: int = 64
    backlog: int = 128
    evict_after: float = 1.0
    log_interval: float = 60.0  # at most one line about refused or unauthenticated clients per interval

    ENV = {"max_connections": "SWARMSCOPE_HTTP_MAX_CONNECTIONS", "header_timeout": "SWARMSCOPE_HTTP_HEADER_TIMEOUT",
           "write_timeout": "SWARMSCOPE_HTTP_WRITE_TIMEOUT", "log_interval": "SWARMSCOPE_HTTP_LOG_INTERVAL"}

    @classmethod
    def from_env(cls, environ=None) -> HttpLimits:
        """The defaults, with any of ENV's variables set to a positive number instead."""
        environ = os.environ if environ is None else environ
        lim = cls()
        for name, var in cls.ENV.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            kind = type(getattr(lim, name))
            try:
                value = kind(raw)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or value <= 0 or value > 1e6:
                raise UsageError(
                    f"{var}={raw!r} is not a positive number (unset it for the default {getattr(lim, name)})"
                )
            setattr(lim, name, value)
        return lim


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
            503: "Service Unavailable", 505: "HTTP Version Not Supported"}
_NOISE = {  # counter -> how the periodic log line says it
    "unauthorized": "without a valid token (401)",
    "early_close": "closed or reset before a whole request",
    "timeout": "timed out (no whole request within {header_timeout:g}s, or the response did not drain)",
    "bad_request": "sent a malformed or oversized request",
    "refused": "refused at the cap of {max_connections} connections (503)",
    "evicted": "closed to make room (idle past {evict_after:g}s while at the cap)",
    "no_descriptors": "refused: out of file descriptors",
}


def _response(code: int, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: dict | None = None,
              head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}", "Server: swarmscope-agent", f"Content-Type: {ctype}",
             f"Content-Length: {len(body)}", "Connection: close", "Cache-Control: no-store"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


def bearer_token(authorization: str) -> str:
    """The credentials of an ``Authorization: Bearer <token>`` header (the scheme is case-insensitive)."""
    scheme, _, cred = authorization.strip().partition(" ")
    return cred.strip() if scheme.lower() == "bearer" else ""


def handle_request(head: bytes, state: State, token: str) -> tuple[bytes, str]:
    """The whole response to one request head (request line and headers, no body), and what to count it as."""
    text = head.decode("latin-1")  # header values may hold obs-text; the request line must be ASCII
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or not lines[0].isascii():
        return _response(400, b"bad request line\n"), "bad_request"
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        return _response(505, b"HTTP/1.0 or HTTP/1.1 only\n"), "bad_request"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            return _response(400, b"bad header line\n"), "bad_request"
        headers[name.lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        return _response(405, b"GET or HEAD only\n", extra={"Allow": "GET, HEAD"}), "bad_request"
    length = headers.get("content-length", "0")
    if "transfer-encoding" in headers or not (length.isascii() and length.isdigit()) or int(length) != 0:
        return _response(413, b"no request body is accepted\n"), "bad_request"
    head_only = method == "HEAD"
    path = target.split("?", 1)[0]
    if path == "/healthz":
        return _response(200, b"ok\n", head_only=head_only), "ok"
    if path not in ("/metrics", "/snapshot"):
        return _response(404, b"not found: /metrics, /snapshot, /healthz\n", head_only=head_only), "ok"
    given = bearer_token(headers.get("authorization", ""))
    if not given or not hmac.compare_digest(given.encode("latin-1"), token.encode()):
        return _response(401, b"a bearer token is required (Authorization: Bearer <token>)\n",
                         extra={"WWW-Authenticate": 'Bearer realm="swarmscope"'}, head_only=head_only), "unauthorized"
    if path == "/metrics":
        got = state.metrics_for(headers.get("accept", ""))
        if got is None:
            return _response(503, b"no collection yet\n", head_only=head_only), "ok"
        return _response(200, got[0], got[1], head_only=head_only), "ok"
    with state.lock:
        snap = state.snapshot_json
    if snap is None:
        return _response(503, b"no collection yet\n", head_only=head_only), "ok"
    return _response(200, snap, "application/json", head_only=head_only), "ok"


class _Conn:
    __slots__ = ("sock", "peer", "buf", "out", "sent", "deadline", "opened", "writing")

    def __init__(self, sock, peer, now: float, timeout: float):
        self.sock, self.peer = sock, peer
        self.buf = bytearray()
        self.out: memoryview | None = None
        self.sent = 0
        self.opened = now
        self.deadline = now + timeout
        self.writing = False


def _nofile_limit() -> int:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return 1024


class AgentServer:
    """The agent's HTTP endpoint: one thread, an epoll/poll loop over non-blocking sockets.

    No thread per connection: a client costs one descriptor and at most ``max_request_bytes`` of
    buffer while it sends its request head, and its response is a slice of bytes made once per
    collection. Bounded by HttpLimits; unauthenticated or broken clients are counted and reported
    in at most one log line per ``log_interval``, never with a traceback.
    """

    def __init__(self, address: tuple[str, int], family: int, state: State, token: str,
                 limits: HttpLimits | None = None, say=None):
        self.state, self.token = state, token
        self.limits = limits or HttpLimits()
        self.say = say or log
        # keep room for what the collector itself opens (namespace files, pipes, the Docker socket)
        reserve = 48
        self.cap = max(1, min(self.limits.max_connections, _nofile_limit() - reserve))
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(address)
            self.sock.listen(self.limits.backlog)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.server_address = self.sock.getsockname()
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self.sock, selectors.EVENT_READ, "listen")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._listening = True
        self._resume_at = 0.0
        self._spare: int | None = self._open_spare()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts: dict[str, int] = {k: 0 for k in _NOISE}
        self.served = 0
        self._pending_log: dict[str, int] = {}
        self._last_log = time.monotonic()
        self._last_peer = ""

    # ---------------------------------------------------------------- life cycle

    @staticmethod
    def _open_spare() -> int | None:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def start(self) -> AgentServer:
        self._thread = threading.Thread(target=self.serve_forever, name="swarmscope-http", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._close_all()

    def _close_all(self) -> None:
        for c in list(self.conns.values()):
            self._drop(c)
        for s in (self.sock, self._wake_r, self._wake_w):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError, OSError):
                pass
            s.close()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = 0.5
            if self.conns:
                timeout = max(0.0, min(timeout, min(c.deadline for c in self.conns.values()) - now))
            if not self._listening:
                timeout = max(0.0, min(timeout, self._resume_at - now))
            for key, _mask in self.sel.select(timeout):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        self._wake_r.recv(64)
                    except OSError:
                        pass
                else:
                    c = self.conns.get(key.fd)
                    if c is None:
                        continue
                    if c.writing:
                        self._write(c)
                    else:
                        self._read(c)
            now = time.monotonic()
            for c in [c for c in self.conns.values() if c.deadline <= now]:
                self._note("timeout", c)
                if not c.writing:
                    self._best_effort(c.sock, _response(408, b"no whole request in time\n"))
                self._drop(c)
            if not self._listening and now >= self._resume_at:
                self.sel.register(self.sock, selectors.EVENT_READ, "listen")
                self._listening = True
            self._flush_log(now)

    # ---------------------------------------------------------------- accepting

    def _pause_listening(self, seconds: float) -> None:
        if self._listening:
            self.sel.unregister(self.sock)
            self._listening = False
        self._resume_at = time.monotonic() + seconds

    def _accept(self) -> None:
        for _ in range(64):  # a bounded batch, so reading and timeouts keep their turn
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors()
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                self._pause_listening(0.1)
                return
            now = time.monotonic()
            if len(self.conns) >= self.cap and not self._evict(now):
                self.counts["refused"] += 1
                self._pending_log["refused"] = self._pending_log.get("refused", 0) + 1
                self._last_peer = str(peer[0])
                self._best_effort(sock, _response(503, b"busy: too many connections\n", extra={"Retry-After": "1"}))
                sock.close()
                continue
            sock.setblocking(False)
            c = _Conn(sock, peer, now, self.limits.header_timeout)
            self.conns[sock.fileno()] = c
            self.sel.register(sock, selectors.EVENT_READ, "conn")

    def _out_of_descriptors(self) -> None:
        """EMFILE: take the pending connection with the spare descriptor and close it at once,
        so the listener does not stay readable (and the loop does not spin); then pause briefly."""
        self.counts["no_descriptors"] += 1
        self._pending_log["no_descriptors"] = self._pending_log.get("no_descriptors", 0) + 1
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
            try:
                sock, _ = self.sock.accept()
                sock.close()
            except OSError:
                pass
            self._spare = self._open_spare()
        self._pause_listening(0.05)

    def _evict(self, now: float) -> bool:
        """Close the oldest connection still sending its request head, if it has had evict_after seconds."""
        idle = [c for c in self.conns.values() if not c.writing and now - c.opened >= self.limits.evict_after]
        if not idle:
            return False
        c = min(idle, key=lambda c: c.opened)
        self._note("evicted", c)
        self._best_effort(c.sock, _response(408, b"closed to make room: send the request at once\n"))
        self._drop(c)
        return True

    # ---------------------------------------------------------------- one connection

    def _read(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._note("early_close", c)
            self._drop(c)
            return
        if not data:
            self._note("early_close", c)
            self._drop(c)
            return
        c.buf += data
        end = c.buf.find(b"\r\n\r\n")
        cut = 4
        if end < 0:
            end, cut = c.buf.find(b"\n\n"), 2
        if end < 0:
            if len(c.buf) > self.limits.max_request_bytes:
                self._respond(c, _response(431, b"request head too large\n"), "bad_request")
            return
        head = bytes(c.buf[:end])
        if end + cut > self.limits.max_request_bytes:
            self._respond(c, _response(431, b"request head too large\n"), "bad_request")
            return
        if head.count(b"\n") > self.limits.max_headers:
            self._respond(c, _response(431, b"too many header lines\n"), "bad_request")
            return
        try:
            body, kind = handle_request(head, self.state, self.token)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the endpoint; one line, no traceback
            self.say(f"http: internal error answering a request: {type(exc).__name__}: {exc}")
            body, kind = _response(500, b"internal error\n"), "ok"
        self._respond(c, body, kind)

    def _respond(self, c: _Conn, body: bytes, kind: str) -> None:
        if kind != "ok":
            self._note(kind, c)
        else:
            self.served += 1
        c.writing = True
        c.out = memoryview(body)
        c.deadline = time.monotonic() + self.limits.write_timeout
        self._write(c)
        if c.writing and c.sock.fileno() in self.conns:
            self.sel.modify(c.sock, selectors.EVENT_WRITE, "conn")

    def _write(self, c: _Conn) -> None:
        assert c.out is not None
        while c.sent < len(c.out):
            try:
                n = c.sock.send(c.out[c.sent:c.sent + 262144])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._note("early_close", c)
                self._drop(c)
                return
            c.sent += n
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._drop(c)

    @staticmethod
    def _best_effort(sock: socket.socket, data: bytes) -> None:
        try:
            sock.setblocking(False)
            sock.send(data)
        except OSError:
            pass

    def _drop(self, c: _Conn) -> None:
        fd = c.sock.fileno()
        if fd >= 0:
            self.conns.pop(fd, None)
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        try:
            c.sock.close()
        except OSError:
            pass

    # ---------------------------------------------------------------- the log

    def _note(self, kind: str, c: _Conn | None = None) -> None:
        self.counts[kind] += 1
        self._pending_log[kind] = self._pending_log.get(kind, 0) + 1
        if c is not None:
            self._last_peer = str(c.peer[0]) if isinstance(c.peer, tuple) else str(c.peer)

    def _flush_log(self, now: float) -> None:
        if not self._pending_log or now - self._last_log < self.limits.log_interval:
            return
        lim = {"header_timeout": self.limits.header_timeout, "max_connections": self.cap,
               "evict_after": self.limits.evict_after}
        parts = [f"{n} {_NOISE[k].format(**lim)}" for k, n in sorted(self._pending_log.items())]
        self.say(f"http: in the last {now - self._last_log:.0f}s: clients " + "; ".join(parts)
                 + (f" (last from {self._last_peer})" if self._last_peer else ""))
        self._pending_log.clear()
        self._last_log = now


def read_token(path: str | None) -> str:
    if not path:
        raise UsageError("--listen serves node state and needs a token: give --token-file FILE "
                         "(a swarm secret, e.g. /run/secrets/swarmscope_token)")
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read(4097).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(token) < 16:
        raise UsageError(f"the token in {path} is too short (use at least 16 characters, e.g. openssl rand -hex 24)")
    if len(token) > 4096 or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise UsageError(f"the token in {path} must be one line of at most 4096 printable characters without spaces "
                         "(e.g. openssl rand -hex 24)")
    return token


def parse_listen(value: str) -> tuple[str, int, int]:
    """(address, port, socket family) of ``--listen``: ``ADDR:PORT`` with an IP address, ``[IPv6]:PORT``.

    The address is never implied: ``9324`` or ``:9324`` would bind every interface without saying so."""
    import ipaddress

    usage = (f"--listen wants ADDR:PORT with an explicit address, got {value!r}: 127.0.0.1:9324 (this node only), "
             "0.0.0.0:9324 (every IPv4 interface), [::1]:9324 or [::]:9324 (IPv6)")
    value = value.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise UsageError(usage)
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise UsageError(usage + " (an IPv6 address goes in brackets)" if value.count(":") > 1 else usage)
    if not host:
        raise UsageError(usage)
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or not 0 < int(port) < 65536:
        raise UsageError(usage)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(usage + f" ({host!r} is not an IP address)") from None
    if isinstance(ip, ipaddress.IPv6Address) and not value.startswith("["):
        raise UsageError(usage)
    return str(ip), int(port), socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def start_server(listen: str, token_file: str | None, state: State, limits: HttpLimits | None = None) -> AgentServer:
    host, port, family = parse_listen(listen)
    token = read_token(token_file)
    try:
        return AgentServer((host, port), family, state, token, limits or HttpLimits.from_env()).start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def _check_interval(interval: float) -> float:
    if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval < 5:
        raise UsageError(f"--interval must be a number of seconds from 5 to 86400, got {interval!r}")
    return float(interval)


def _release_memory() -> None:
    """Between collections: hand the collection's freed heap back to the system (glibc keeps it otherwise;
    on the 98-namespace lab the idle agent held ~61-63 MB after a few rounds, ~52-55 MB with this)."""
    gc.collect()
    heap.trim()


#: the malloc arenas the standing agent allows itself
AGENT_ARENAS = 2


def _limit_arenas() -> bool:
    """Before the standing agent starts any thread: at most AGENT_ARENAS malloc arenas. Each collection
    reads every namespace in a thread of its own, and glibc gives threads arenas of their own (up to 8 per
    CPU); what is freed in them fragments, and the idle agent grew ~0.25 MB a round (98 namespaces: 55.8 ->
    60.5 MB in 20 rounds) where with two arenas it stays flat. Whether glibc took it (False: another libc)."""
    return heap.limit_arenas(AGENT_ARENAS)


def run_standing(opts: CollectOptions, interval: float, listen: str | None, token_file: str | None,
                 rounds: int | None = None, probe_interval: float | None = None) -> int:
    from swarmscope.pipeline import analyze_snapshots, collect_node
    from swarmscope.render.text import finding_log_line

    interval = _check_interval(interval)
    _limit_arenas()  # before any thread: the namespace readers' arenas would fragment round after round
    server = None
    state = State()
    if listen:
        server = start_server(listen, token_file, state)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log(f"starting: every {interval:.0f}s, netns directory {opts.netns_dir}"
        + (f", serving /metrics and /snapshot on {listen} (token from {token_file}; at most "
           f"{server.cap} connections, {server.limits.header_timeout:g}s to send a request)" if server else ""))
    report_checks(check_environment(opts), stream=sys.stdout)
    prev: dict[tuple, Any] = {}
    last: tuple | None = None
    probed: tuple[float, list] | None = None  # --probe-interval: when the last probes were made, and them
    n = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            opts.warnings.clear()
            snap = collect_node(opts)
            if probe_interval is not None:  # probe when due; between probes the last results stay attached
                if probed is None or time.monotonic() - probed[0] >= probe_interval:
                    from swarmscope.probe import ProbeOptions, probe_snapshot, summary

                    probed = (time.monotonic(), probe_snapshot(snap, ProbeOptions()))
                    log(summary(probed[1]))
                else:
                    snap.probes = probed[1]
            analysis = analyze_snapshots([snap])
        except Exception as exc:  # noqa: BLE001 - keep running, say why
            state.failures += 1
            log(f"collection failed: {exc}")
            # the failure counts are served too: a node that cannot collect is visible to Prometheus
            state.publish_failure(metrics_registry(last[0], last[1], state) if last else failure_registry(state))
        else:
            state.collections += 1
            cur = {_finding_key(f): f for f in analysis.findings}
            for k, f in cur.items():
                if k not in prev:
                    log(f"finding: {finding_log_line(f)}")
            for k, f in prev.items():
                if k not in cur:
                    log(f"cleared: {finding_log_line(f)}")
            if n == 0 or set(cur) != set(prev):
                errs = sum(1 for f in analysis.findings if f.severity == "error")
                log(f"collected in {snap.duration_ms / 1000:.1f}s: {len(cur)} finding(s), {errs} of error severity"
                    + ("" if snap.complete else f"; incomplete: {len(snap.errors)} part(s) could not be read"))
            prev = cur
            last = (snap, analysis)
            state.publish(json.dumps(snap.to_dict()).encode(), metrics_registry(snap, analysis, state))
        n += 1
        if rounds is not None and n >= rounds:
            break
        _release_memory()
        stop.wait(max(1.0, interval - (time.monotonic() - t0)))
    if server is not None:
        server.shutdown()
    log("stopped")
    return 0
