"""``swarmscope agent``: the per-node collector as a job or as a standing service.

- ``--once``: collect this node, print the snapshot as chunk lines on standard
  output (see cluster/chunks.py) and exit: what the on-demand gather job runs.
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
import hmac
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from swarmscope.collect.snapshot import CollectOptions
from swarmscope.errors import SwarmscopeError, UsageError

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg: str) -> None:
    print(f"{_now()} swarmscope agent: {msg}", flush=True)


# --------------------------------------------------------------------------- the start-up check


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


def _capabilities() -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def _mount_of(path: str) -> Optional[tuple[str, list[str]]]:
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
        for bit, name, why in ((CAP_NET_ADMIN, "CAP_NET_ADMIN", "reading iptables and IPVS"),
                               (CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "entering the engine's network namespaces (setns)")):
            have = bool(caps >> bit & 1)
            out.append(Check(name, have, f"present ({why})" if have else
                             f"missing: needed for {why}; add it (docker service create --cap-add {name[4:]}, "
                             f"stack cap_add: [{name[4:]}])"))
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
            out.append(Check("netns propagation", True, f"{d} is a {'slave' if any(f.startswith('master:') for f in fields) else 'shared'} "
                             "mount: namespaces created later appear here"))
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
    for tool in ("iptables-nft-save", "iptables-legacy-save"):
        if shutil.which(tool) is None:
            out.append(Check(tool, False, f"{tool} not found (install iptables)"))
    return out


def report_checks(checks: list[Check], stream=None) -> int:
    """Print the checks (stderr by default); the number missing."""
    stream = stream or sys.stderr
    missing = [c for c in checks if not c.ok]
    for c in checks:
        print(f"swarmscope agent: check: {'ok     ' if c.ok else 'MISSING'} {c.what}: {c.detail}", file=stream, flush=True)
    if missing:
        print(f"swarmscope agent: {len(missing)} requirement(s) missing: {', '.join(c.what for c in missing)}; "
              "collecting anyway: the snapshot says what could not be read", file=stream, flush=True)
    else:
        print("swarmscope agent: all requirements present", file=stream, flush=True)
    return len(missing)


# --------------------------------------------------------------------------- --once


def run_once(opts: CollectOptions, run: str) -> int:
    """Collect this node and print it as chunk lines; the exit code for the task."""
    from swarmscope.cluster.chunks import encode, error_line
    from swarmscope.collect.snapshot import collect

    node_id = os.environ.get("SWARMSCOPE_NODE_ID") or ""
    checks = check_environment(opts)
    report_checks(checks)
    try:
        snap = collect(opts)
    except SwarmscopeError as exc:
        print(error_line(run, node_id or "unknown", str(exc)), flush=True)
        return 3
    except Exception as exc:  # noqa: BLE001
        print(error_line(run, node_id or "unknown", f"internal error: {type(exc).__name__}: {exc}"), flush=True)
        return 70
    for c in checks:
        if not c.ok:
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
    snapshot_json: Optional[bytes] = None
    metrics: str = ""
    collections: int = 0
    failures: int = 0


def _finding_key(f) -> tuple:
    return (f.id, f.service or "", f.network or "", tuple(f.nodes))


def _describe(f) -> str:
    where = " ".join(x for x in (f"service={f.service}" if f.service else "", f"network={f.network}" if f.network else "",
                                 f"nodes={','.join(f.nodes)}" if f.nodes else "") if x)
    return f"{f.id} [{f.severity}] {where} {f.title}".replace("  ", " ")


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def metrics_text(snap, analysis, state: State) -> str:
    """Prometheus text exposition of one collection (pure)."""
    lines = ["# HELP swarmscope_findings Findings of the last collection, by id and severity.",
             "# TYPE swarmscope_findings gauge"]
    counts: dict[tuple[str, str], int] = {}
    for f in analysis.findings:
        counts[(f.id, f.severity)] = counts.get((f.id, f.severity), 0) + 1
    for (fid, sev), n in sorted(counts.items()):
        lines.append(f'swarmscope_findings{{id="{_esc(fid)}",severity="{_esc(sev)}"}} {n}')
    lines += ["# HELP swarmscope_real_servers Real servers (IPVS destinations present) per service and path on this node.",
              "# TYPE swarmscope_real_servers gauge",
              "# HELP swarmscope_real_servers_missing Running tasks missing from the service's IPVS table on this node.",
              "# TYPE swarmscope_real_servers_missing gauge"]
    rs, miss = [], []
    for s in analysis.services:
        paths = [(f"ingress:{p.published}/{p.protocol}", p.nodes) for p in s.ports if p.mode == "ingress"]
        paths += [(f"vip:{v.network}", v.nodes) for v in s.vip_paths if v.vip]
        for label, nodes in paths:
            for np in nodes:
                present = sum(1 for b in np.backends if b.status != "missing")
                missing = sum(1 for b in np.backends if b.status == "missing")
                lab = f'service="{_esc(s.name)}",path="{_esc(label)}",node="{_esc(np.node)}"'
                rs.append(f"swarmscope_real_servers{{{lab}}} {present}")
                miss.append(f"swarmscope_real_servers_missing{{{lab}}} {missing}")
    lines += rs + miss
    lines += ["# HELP swarmscope_collection_duration_seconds How long the last collection took.",
              "# TYPE swarmscope_collection_duration_seconds gauge",
              f"swarmscope_collection_duration_seconds {snap.duration_ms / 1000:.3f}",
              "# HELP swarmscope_collection_complete 1 when the last snapshot is complete.",
              "# TYPE swarmscope_collection_complete gauge",
              f"swarmscope_collection_complete {1 if snap.complete else 0}",
              "# HELP swarmscope_last_collection_timestamp_seconds When the last collection finished.",
              "# TYPE swarmscope_last_collection_timestamp_seconds gauge",
              f"swarmscope_last_collection_timestamp_seconds {time.time():.0f}",
              "# HELP swarmscope_collections_total Collections since the agent started.",
              "# TYPE swarmscope_collections_total counter",
              f"swarmscope_collections_total {state.collections}",
              "# HELP swarmscope_collection_failures_total Collections that failed outright.",
              "# TYPE swarmscope_collection_failures_total counter",
              f"swarmscope_collection_failures_total {state.failures}"]
    return "\n".join(lines) + "\n"


def make_handler(state: State, token: str):
    class Handler(BaseHTTPRequestHandler):
        server_version = "swarmscope-agent"

        def log_message(self, fmt, *args):  # quiet: the log is the fault history
            pass

        def _send(self, code: int, body: bytes, ctype: str, extra: Optional[dict] = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/healthz":
                return self._send(200, b"ok\n", "text/plain")
            if path not in ("/metrics", "/snapshot"):
                return self._send(404, b"not found: /metrics, /snapshot, /healthz\n", "text/plain")
            auth = self.headers.get("Authorization", "")
            given = auth[7:].strip() if auth.startswith("Bearer ") else ""
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                return self._send(401, b"a bearer token is required (Authorization: Bearer <token>)\n", "text/plain",
                                  {"WWW-Authenticate": 'Bearer realm="swarmscope"'})
            with state.lock:
                snap, metrics = state.snapshot_json, state.metrics
            if snap is None:
                return self._send(503, b"no collection yet\n", "text/plain")
            if path == "/metrics":
                return self._send(200, metrics.encode(), "text/plain; version=0.0.4")
            return self._send(200, snap, "application/json")

    return Handler


def read_token(path: Optional[str]) -> str:
    if not path:
        raise UsageError("--listen serves node state and needs a token: give --token-file FILE "
                         "(a swarm secret, e.g. /run/secrets/swarmscope_token)")
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise UsageError(f"the token in {path} is too short (use at least 16 characters, e.g. openssl rand -hex 24)")
    return token


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen wants ADDR:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Stop(Exception):
    pass


def run_standing(opts: CollectOptions, interval: float, listen: Optional[str], token_file: Optional[str],
                 rounds: Optional[int] = None) -> int:
    from swarmscope.collect.snapshot import collect
    from swarmscope.correlate import analyze

    server = None
    state = State()
    if listen:
        addr = parse_listen(listen)
        token = read_token(token_file)
        try:
            server = ThreadingHTTPServer(addr, make_handler(state, token))
        except OSError as exc:
            raise UsageError(f"cannot listen on {listen}: {exc.strerror}") from None
        threading.Thread(target=server.serve_forever, name="swarmscope-http", daemon=True).start()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log(f"starting: every {interval:.0f}s, netns directory {opts.netns_dir}"
        + (f", serving /metrics and /snapshot on {listen} (token from {token_file})" if server else ""))
    report_checks(check_environment(opts), stream=sys.stdout)
    prev: dict[tuple, object] = {}
    n = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            opts.warnings.clear()
            snap = collect(opts)
            analysis = analyze([snap])
        except Exception as exc:  # noqa: BLE001 - keep running, say why
            state.failures += 1
            log(f"collection failed: {exc}")
        else:
            state.collections += 1
            cur = {_finding_key(f): f for f in analysis.findings}
            for k, f in cur.items():
                if k not in prev:
                    log(f"finding: {_describe(f)}")
            for k, f in prev.items():
                if k not in cur:
                    log(f"cleared: {_describe(f)}")
            if n == 0 or set(cur) != set(prev):
                errs = sum(1 for f in analysis.findings if f.severity == "error")
                log(f"collected in {snap.duration_ms / 1000:.1f}s: {len(cur)} finding(s), {errs} of error severity"
                    + ("" if snap.complete else f"; incomplete: {len(snap.errors)} part(s) could not be read"))
            prev = cur
            with state.lock:
                state.snapshot_json = json.dumps(snap.to_dict()).encode()
                state.metrics = metrics_text(snap, analysis, state)
        n += 1
        if rounds is not None and n >= rounds:
            break
        stop.wait(max(1.0, interval - (time.monotonic() - t0)))
    if server is not None:
        server.shutdown()
    log("stopped")
    return 0
