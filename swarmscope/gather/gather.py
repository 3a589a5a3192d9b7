"""Gather every node's snapshot through the swarm itself (on-demand, no daemon).

On a manager: create a global job from the swarmscope image (a ``global-job``
on API >= 1.43, Docker 24+; before that a global service with restart
condition ``none``, because engines before swarmkit#3112 — Docker 20.10
included — never remove a deleted job's tasks and containers, moby#44312),
running ``swarmscope agent --once`` on every other node; each task
prints its node's snapshot as compressed, chunked log lines (see chunks.py);
read them back through the Docker API (task logs), reassemble per node, and
remove the job — also on Ctrl-C, SIGTERM and failure. No port is opened.

The manager's own node is collected in-process, concurrently with the job:
the command already runs there as root with the netns directory and the
socket, so it needs no container (and the path map's service and task view,
which comes from a manager, does not depend on the image being present on the
manager).
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmscope.collect import docker_api
from swarmscope.collect.snapshot import CollectOptions
from swarmscope.errors import CollectError
from swarmscope.gather.chunks import Reassembler, demux
from swarmscope.model import Snapshot

JOB_LABEL = "io.swarmscope.gather"
DEADLINE_LABEL = "io.swarmscope.gather.deadline"
CONTAINER_NETNS_DIR = "/var/run/docker/netns"
CONTAINER_SOCKET = "/var/run/docker.sock"
#: what the agent's container needs (see the README): reading iptables and IPVS
#: (NET_ADMIN), entering network namespaces by their files (SYS_ADMIN)
CAPABILITIES = ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
DEFAULT_IMAGE = "swarmscope:latest"
JOB_MIN_API = (1, 43)
DONE_OK = ("complete",)
DONE_FAILED = ("failed", "rejected", "shutdown", "orphaned", "remove")


@dataclass
class GatherOptions:
    collect: CollectOptions
    image: str = DEFAULT_IMAGE
    node_timeout: float = 180.0
    progress: Callable[[str], None] = lambda msg: None


@dataclass
class NodeResult:
    node_id: str
    hostname: str
    snapshot: Snapshot | None = None
    kind: str | None = None  # for a failure: down | drained | image-missing | rejected | failed | timeout | output
    reason: str | None = None
    task_state: str | None = None
    seconds: float = 0.0
    payload_bytes: int = 0
    local: bool = False

    def failed_entry(self) -> dict:
        out = {"node": self.hostname, "node_id": self.node_id, "kind": self.kind, "reason": self.reason}
        if self.task_state:
            out["task_state"] = self.task_state
        return out


@dataclass
class GatherResult:
    nodes: list[NodeResult] = field(default_factory=list)
    job: str | None = None
    mode: str | None = None
    seconds: float = 0.0

    @property
    def snapshots(self) -> list[Snapshot]:
        return [n.snapshot for n in self.nodes if n.snapshot is not None]

    @property
    def failed_nodes(self) -> list[dict]:
        return [n.failed_entry() for n in self.nodes if n.snapshot is None]


#: seconds between two looks at the job's tasks (and at the local collection): a node's answer is seen at most
#: this long after its task completed (0.5 s before: on the three-node lab the gather waited 0.25 s more on
#: average, the answers seen at 1.0/1.5 s of the job)
POLL = 0.2


def socket_source(docker_host: str | None) -> str:
    """The Docker socket's path on the nodes (the same layout as this one's is assumed)."""
    import os

    host = docker_host or os.environ.get("DOCKER_HOST") or docker_api.DEFAULT_HOST
    return host[len("unix://"):] if host.startswith("unix://") else CONTAINER_SOCKET


def agent_command(opts: CollectOptions, run: str) -> list[str]:
    c = ["swarmscope", "agent", "--once", "--run-id", run, "--netns-dir", CONTAINER_NETNS_DIR,
         "--timeout", str(opts.timeout), "--docker-timeout", str(opts.docker_timeout),
         "--dns-timeout", str(opts.dns_timeout)]
    if opts.workers is not None:  # else each node's own default (its CPUs)
        c += ["--workers", str(opts.workers)]
    if not opts.dns:
        c.append("--no-dns")
    return c


def job_spec(opts: GatherOptions, run: str, self_id: str | None, job_mode: bool) -> dict:
    """Keyword arguments for APIClient.create_service."""
    from docker import types

    mounts = [
        types.Mount(CONTAINER_SOCKET, socket_source(opts.collect.docker_host), type="bind"),
        types.Mount(CONTAINER_NETNS_DIR, opts.collect.netns_dir, type="bind", read_only=True, propagation="rslave"),
    ]
    spec = types.ContainerSpec(
        opts.image,
        command=agent_command(opts.collect, run),
        mounts=mounts,
        env={"SWARMSCOPE_NODE_ID": "{{.Node.ID}}", "SWARMSCOPE_NODE_HOSTNAME": "{{.Node.Hostname}}"},
        cap_add=CAPABILITIES,
        labels={JOB_LABEL: run},
        stop_grace_period=1_000_000_000,
    )
    template = types.TaskTemplate(
        spec,
        restart_policy=types.RestartPolicy(condition="none"),
        placement=types.Placement(constraints=[f"node.id!={self_id}"] if self_id else None),
        networks=["host"],
    )
    deadline = int(time.time() + opts.node_timeout + 60)
    return {
        "task_template": template,
        "name": f"swarmscope-gather-{run}",
        "labels": {JOB_LABEL: run, DEADLINE_LABEL: str(deadline)},
        "mode": types.ServiceMode("global-job") if job_mode else types.ServiceMode("global"),
    }


def classify_task(state: str, err: str, agent_errors: list[str], image: str) -> tuple[str, str]:
    """(kind, reason) for a task that ended without a snapshot (pure)."""
    low = err.lower()
    if agent_errors:
        return "failed", f"the agent failed on the node: {agent_errors[-1]}"
    if "no such image" in low or "pull access denied" in low or "manifest unknown" in low or (
        "not found" in low and "image" in low
    ):
        return (
            "image-missing",
            f"image missing on that node: {image} ({err.strip()}); "
            "docker load it there or push it to a registry the nodes use",
        )
    if state == "rejected":
        return "rejected", f"task rejected: {err.strip() or 'no reason given'}"
    if state == "failed":
        return "failed", f"task failed: {err.strip() or 'no reason given'}"
    return "failed", f"task ended in state {state}" + (f": {err.strip()}" if err.strip() else "")


def _task_logs(api, task_id: str, timeout: float) -> str:
    res = api._get(api._url("/tasks/{0}/logs", task_id), params={"stdout": 1, "stderr": 1, "follow": 0},
                   stream=False, timeout=timeout)
    api._raise_for_status(res)
    return demux(res.content)


def _drop_job(snap: Snapshot, service_id: str | None) -> None:
    """Keep the gather job itself out of the data."""
    if not service_id:
        return
    v = snap.docker
    v.services = [s for s in v.services if s.id != service_id]
    v.tasks = [t for t in v.tasks if t.service_id != service_id]
    v.containers = [c for c in v.containers if c.service_id != service_id]


def _remove_stale_jobs(api, progress) -> None:
    """Jobs a killed (SIGKILL) earlier run left behind, past their deadline."""
    try:
        for s in api.services(filters={"label": JOB_LABEL}):
            labels = (s.get("Spec") or {}).get("Labels") or {}
            try:
                deadline = int(labels.get(DEADLINE_LABEL, "0"))
            except ValueError:
                deadline = 0
            if deadline < time.time():
                api.remove_service(s["ID"])
                progress(f"removed {s['Spec']['Name']}, left behind by an earlier run")
    except Exception:
        pass


class _Interrupted(KeyboardInterrupt):
    pass


def _raise_interrupt(signum, frame):
    raise _Interrupted(f"signal {signum}")


def gather(opts: GatherOptions, collect_local: Callable[[], Snapshot]) -> GatherResult:
    """Every node's snapshot: this one locally, the others through a global job."""
    t0 = time.monotonic()
    progress = opts.progress
    api, _, info = docker_api.connect_info(opts.collect.docker_host, opts.collect.docker_timeout)
    if not info.is_manager:
        raise CollectError("cluster gathering needs a manager: this node is not one (use --local, or run on a manager)")
    # global-job exists from API 1.41, but before swarmkit#3112 (moby#44312) removing a
    # job leaves its tasks and containers behind for good: use it only where that is fixed
    job_mode = docker_api.api_at_least(info.api_version, JOB_MIN_API)
    result = GatherResult(mode="global-job" if job_mode else "global service (removed afterwards)")
    raw_nodes = api.nodes()
    results: dict[str, NodeResult] = {}
    for n in raw_nodes:
        desc = n.get("Description") or {}
        r = NodeResult(node_id=n["ID"], hostname=desc.get("Hostname") or n["ID"][:12])
        results[n["ID"]] = r
        status = n.get("Status") or {}
        state = status.get("State")
        avail = (n.get("Spec") or {}).get("Availability")
        if n["ID"] == info.node_id:
            r.local = True
        elif state != "ready":
            r.kind = "down"
            r.reason = f"node down: the manager sees it as {state}" + (
                f" ({status['Message']})" if status.get("Message") else ""
            )
        elif avail == "drain":
            r.kind = "drained"
            r.reason = "node drained (availability drain): the swarm runs no task there"
    result.nodes = sorted(results.values(), key=lambda r: (not r.local, r.hostname))
    remote = [r for r in result.nodes if not r.local and r.kind is None]
    total = len(result.nodes)
    done = [r for r in result.nodes if r.kind is not None]

    def report(r: NodeResult) -> None:
        done.append(r)
        if r.snapshot is not None:
            how = "collected locally" if r.local else f"answered ({r.payload_bytes / 1024:.0f} KiB compressed)"
            progress(f"nodes {len(done)}/{total}: {r.hostname} {how} in {r.seconds:.1f}s")
        else:
            progress(f"nodes {len(done)}/{total}: {r.hostname} failed: {r.reason}")

    for r in list(done):
        progress(f"nodes {done.index(r) + 1}/{total}: {r.hostname} failed: {r.reason}")

    # the local node, in a thread, while the job runs
    local = next((r for r in result.nodes if r.local), None)
    local_err: list[BaseException] = []

    def run_local() -> None:
        t = time.monotonic()
        try:
            local.snapshot = collect_local()  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - reported below
            local_err.append(exc)
        local.seconds = time.monotonic() - t  # type: ignore[union-attr]

    old_handlers = {}
    import threading as _th

    if _th.current_thread() is _th.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, _raise_interrupt)
    service_id = None
    run = secrets.token_hex(4)
    try:
        _remove_stale_jobs(api, progress)
        if remote:
            spec = job_spec(opts, run, info.node_id, job_mode)
            created = api.create_service(**spec)
            service_id = created["ID"]
            result.job = spec["name"]
            progress(
                f"gathering {total} nodes: {result.job} ({result.mode}, image {opts.image}) on "
                f"{len(remote)} node(s), this node ({info.hostname}) locally; per-node timeout {opts.node_timeout:.0f}s"
            )
        thread = None
        if local is not None:
            thread = threading.Thread(target=run_local, name="swarmscope-local", daemon=True)
            thread.start()
        reasm = Reassembler(run)
        started = time.monotonic()
        deadline = started + opts.node_timeout
        pending = {r.node_id: r for r in remote}
        complete_since: dict[str, float] = {}
        while True:
            if thread is not None and not thread.is_alive():
                thread = None
                if local_err:
                    exc = local_err[0]
                    if isinstance(exc, KeyboardInterrupt):
                        raise exc
                    local.kind = "failed"  # type: ignore[union-attr]
                    local.reason = f"local collection failed: {exc}"  # type: ignore[union-attr]
                else:
                    _drop_job(local.snapshot, service_id)  # type: ignore[union-attr, arg-type]
                report(local)  # type: ignore[arg-type]
            if not pending and thread is None:
                break
            now = time.monotonic()
            if pending:
                tasks = api.tasks(filters={"service": service_id})
                latest: dict[str, dict] = {}
                for t in tasks:
                    nid = t.get("NodeID")
                    if nid and (nid not in latest or t["Version"]["Index"] > latest[nid]["Version"]["Index"]):
                        latest[nid] = t
                for nid, r in list(pending.items()):
                    t = latest.get(nid)
                    if t is None:
                        continue
                    st = t.get("Status") or {}
                    state, err = st.get("State") or "", st.get("Err") or ""
                    r.task_state = state
                    if state not in DONE_OK + DONE_FAILED:
                        continue
                    try:
                        text = _task_logs(api, t["ID"], opts.collect.docker_timeout)
                    except Exception as exc:  # noqa: BLE001
                        text = ""
                        err = err or f"cannot read the task's logs: {exc}"
                    reasm.feed(text.splitlines())
                    out = reasm.get(nid)
                    r.seconds = now - started
                    if state in DONE_OK and out is not None and out.complete:
                        try:
                            r.snapshot = Snapshot.from_dict(out.document())
                            r.payload_bytes = out.size
                            _drop_job(r.snapshot, service_id)
                        except ValueError as exc:
                            r.kind, r.reason = "output", f"the node's snapshot could not be read back: {exc}"
                    elif state in DONE_OK and not (out and out.errors):
                        # logs can lag the task's end by a moment
                        first = complete_since.setdefault(nid, now)
                        if now - first < 10:
                            continue
                        got = f"{len(out.pieces)} of {out.total}" if out and out.total else "none"
                        r.kind, r.reason = "output", f"the task completed but its output was incomplete (pieces: {got})"
                    else:
                        r.kind, r.reason = classify_task(state, err, out.errors if out else [], opts.image)
                    del pending[nid]
                    report(r)
            if now > deadline and (pending or thread is not None):
                if pending:
                    states = {n["ID"]: n for n in api.nodes()}
                    for nid, r in list(pending.items()):
                        st = (states.get(nid) or {}).get("Status") or {}
                        r.seconds = now - started
                        if st.get("State") not in (None, "ready"):
                            r.kind = "down"
                            r.reason = (f"node down: unreachable during the run (the manager now sees it as "
                                        f"{st.get('State')}; task state {r.task_state or 'none'})")
                        else:
                            r.kind = "timeout"
                            r.reason = (
                                f"timed out after {opts.node_timeout:.0f}s (task state "
                                f"{r.task_state or 'not yet created'}); raise --node-timeout if the node is slow"
                            )
                        del pending[nid]
                        report(r)
                if thread is not None and now > deadline + opts.node_timeout:
                    local.kind, local.reason = "timeout", "local collection did not finish"  # type: ignore[union-attr]
                    report(local)  # type: ignore[arg-type]
                    thread = None
            time.sleep(POLL)
    finally:
        old_int = None
        if _th.current_thread() is _th.main_thread():
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # do not interrupt the cleanup
        try:
            if service_id:
                _remove_job(api, service_id, progress, result.job)
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
            api.close()
    result.seconds = time.monotonic() - t0
    ok = len(result.snapshots)
    progress(f"gathered {ok} of {total} nodes in {result.seconds:.1f}s")
    return result


def _remove_job(api, service_id: str, progress, name: str | None) -> None:
    for attempt in range(3):
        try:
            api.remove_service(service_id)
            break
        except Exception as exc:  # noqa: BLE001
            if "not found" in str(exc).lower():
                break
            if attempt == 2:
                progress(f"could not remove {name}: {exc}; remove it with: docker service rm {name}")
                return
            time.sleep(1)
    # the manager drops the tasks shortly after; wait a little so the next command sees a clean swarm
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            if not api.tasks(filters={"service": service_id}):
                break
        except Exception:  # noqa: BLE001
            break
        time.sleep(POLL)
    progress(f"removed {name}")


def probe(docker_host: str | None, timeout: float):
    """(EngineInfo, number of swarm nodes) over one connection; (None, 0) when the API cannot be reached.

    The collector itself reports an unreachable API properly; this only decides whom to collect.
    """
    try:
        api, _, info = docker_api.connect_info(docker_host, timeout)
    except CollectError:
        return None, 0
    try:
        return info, (len(api.nodes()) if info.is_manager else 1)
    except Exception:  # noqa: BLE001
        return info, 0
    finally:
        api.close()
