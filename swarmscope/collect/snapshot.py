"""Collect one node's snapshot: the orchestration of every collector.

Order: every namespace under the netns directory is read concurrently (a
bounded pool; each namespace in a fresh thread that entered it) while the
Docker API is asked (services, networks, containers), node facts and the host
namespace are read; then the namespaces are joined to the API's view and the
lb_ namespaces ask the embedded DNS (entered again). What fails is
recorded in the snapshot and the rest goes on; ``Snapshot.complete`` and
``Snapshot.errors`` say what is missing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from swarmscope import __version__
from swarmscope.collect import docker_api, iptables, kernel
from swarmscope.collect.host import Host, LiveHost, SourceUnavailable, reads
from swarmscope.collect.runner import Recorder
from swarmscope.errors import CollectError
from swarmscope.model import (
    DNS_TRUNCATED,
    Bridge,
    DockerView,
    HostNamespace,
    IpvsSupport,
    Namespace,
    NftRuleset,
    NodeInfo,
    NsKind,
    OverlayTables,
    Snapshot,
)
from swarmscope.netns import NamespaceError

DEFAULT_NETNS_DIR = "/var/run/docker/netns"
_CONTAINER_NS = re.compile(r"^[0-9a-f]{12}$")
_OVERLAY_NS = re.compile(r"^\d+-([0-9a-z]+)$")


def default_workers() -> int:
    """Namespaces read at once by default: the CPUs this process may run on, 2 to 8. Reading one is half
    Python (on the GIL) and half waiting for its iptables-save; more threads than CPUs only contend (98
    namespaces on 2 CPUs: 2 workers 0.49 s, 8 workers 0.54 s, medians of 8 alternated runs)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 2
    return min(8, max(2, cpus))


@dataclass
class CollectOptions:
    netns_dir: str = DEFAULT_NETNS_DIR
    docker_host: str | None = None
    timeout: float = 5.0  # per command / per namespace step
    docker_timeout: float = 10.0
    dns_timeout: float = 2.0
    dns: bool = True
    workers: int | None = None  # namespaces read at once; None: default_workers()
    dockerd_log: str | None = None  # a dockerd log file to read (its end) instead of the journal
    require_root: bool = True
    host: Host = field(default_factory=LiveHost)  # what is read: this machine, or a CaptureHost
    warnings: list[str] = field(default_factory=list)  # filled for the CLI to print


def classify(name: str) -> tuple[NsKind, str | None]:
    """(kind, network id prefix) from a namespace file name."""
    if name == "ingress_sbox":
        return NsKind.INGRESS_SBOX, None
    if name == "default":
        return NsKind.HOST, None  # dockerd's handle on the host namespace, for --network host containers
    if name.startswith("lb_"):
        return NsKind.LB, name[3:]
    m = _OVERLAY_NS.match(name)
    if m:
        return NsKind.OVERLAY, m.group(1)
    if _CONTAINER_NS.match(name):
        return NsKind.CONTAINER, None
    return NsKind.UNKNOWN, None


def _join(ns: Namespace, view: DockerView) -> None:
    """Attach the Docker objects a namespace belongs to."""
    if ns.kind in (NsKind.LB, NsKind.OVERLAY) and ns.network_id:
        prefix = ns.network_id
        matches = [n for n in view.networks if n.id.startswith(prefix)]
        if len(matches) == 1:
            ns.network_id, ns.network_name = matches[0].id, matches[0].name
    elif ns.kind == NsKind.INGRESS_SBOX:
        ing = [n for n in view.networks if n.ingress]
        if ing:
            ns.network_id, ns.network_name = ing[0].id, ing[0].name
    elif ns.kind == NsKind.CONTAINER:
        for c in view.containers:
            if c.sandbox_key and os.path.basename(c.sandbox_key) == ns.name:
                ns.container_id, ns.container_name = c.id, c.name
                ns.task_id, ns.service_name = c.task_id, c.service_name
                break


def _dns_questions(view: DockerView, namespaces: list[Namespace]) -> dict[str, list[tuple[str, str, str]]]:
    """Namespace name -> (service, network id, network name) to ask there.

    Per non-ingress network present on the node, ask from its lb_ namespace,
    or else from a container sandbox on it.
    """
    plan: dict[str, list[tuple[str, str, str]]] = {}
    by_id = {n.id: n for n in view.networks}
    for net in view.networks:
        if net.ingress or net.driver != "overlay":
            continue
        names: set[str] = set(net.services)
        for s in view.services:
            if net.id in s.networks or any(v.network_id == net.id for v in s.vips):
                names.add(s.name)
        names.discard("")
        if not names:
            continue
        asker = next((ns for ns in namespaces if ns.kind == NsKind.LB and ns.network_id == net.id), None)
        if asker is None:
            for ns in namespaces:
                if ns.kind != NsKind.CONTAINER or not ns.container_id:
                    continue
                c = next((c for c in view.containers if c.id == ns.container_id), None)
                if c and any(cn.network_id == net.id for cn in c.networks):
                    asker = ns
                    break
        if asker is None:
            continue
        plan.setdefault(asker.name, []).extend((n, net.id, by_id[net.id].name) for n in sorted(names))
    return plan


def _collect_namespace(
    ns: Namespace,
    rec: Recorder,
    opts: CollectOptions,
    backend: str | None,
    support: IpvsSupport,
    questions: list[tuple[str, str, str]],
    dns_out: list,
) -> None:
    """Runs inside the namespace (in the thread run_in_netns started)."""
    host = opts.host
    try:
        with rec.step("links+addresses (rtnetlink)", ns.name) as step, _unavailable(step):
            ns.interfaces, _ = host.interfaces(ns.name)
    except Exception as exc:
        ns.errors.append(f"interfaces: {exc}")
    if reads("overlay-fdb", ns.kind):
        _overlay_tables(ns, rec, host)
    # each source on its own: one that fails (an unreadable table, output a parser refuses) is recorded
    # in the namespace's errors and the rest is still read -- partial data beats none
    with _soft(ns, "iptables"):
        dumps = host.iptables(rec, ns.name)
        main = backend or "nft"
        ns.iptables = dumps.get(main)
        ns.iptables_other = dumps.get(iptables.other(main))
        for d in (ns.iptables, ns.iptables_other):
            if d is not None and not d.available and d.reason and "not installed" not in d.reason:
                ns.errors.append(f"iptables-{d.backend}-save: {d.reason}")
    if reads("ipvs", ns.kind):
        with _soft(ns, "ipvs"):
            ns.ipvs = host.ipvs(rec, ns.name, support)
        if ns.ipvs is not None and ns.ipvs.available:
            if reads("ipvs-timeouts", ns.kind):
                with _soft(ns, "ipvs timeouts"):
                    host.ipvs_timeouts(rec, ns.name, ns.ipvs)
            if reads("ipvs-conns", ns.kind):
                with _soft(ns, "ipvs connections"):
                    host.ipvs_conns(rec, ns.name, ns.ipvs)
    if reads("sysctls", ns.kind):
        with _soft(ns, "sysctls"), rec.step("sysctls", ns.name) as step, _unavailable(step):
            ns.sysctls = host.sysctls(ns.name, kernel.LB_SYSCTLS)
    if questions and opts.dns:
        _ask_dns(ns, rec, opts, questions, dns_out)


def _overlay_tables(ns: Namespace, rec: Recorder, host: Host) -> None:
    """Inside an overlay namespace: its vxlan devices' FDB and neighbour entries (two netlink dumps)."""
    try:
        with rec.step("fdb+neighbours (rtnetlink)", ns.name) as step, _unavailable(step):
            ns.overlay = host.overlay_tables(ns.name, ns.interfaces)
    except Exception as exc:  # noqa: BLE001 - recorded; the namespace's other sources are still read
        reason = f"{type(exc).__name__}: {exc}"
        ns.overlay = OverlayTables(available=False, reason=reason)
        ns.errors.append(f"overlay fdb/neighbours: {reason}")


def vtep_peers(namespaces: list[Namespace], view: DockerView, host: HostNamespace) -> list[str]:
    """The peer VTEPs a node's overlay traffic goes to: every FDB entry's dst in its overlay namespaces and
    every Peer of its overlay networks (the API), without the node's own addresses; IPv4 only, sorted."""
    own = {a.address for i in host.interfaces for a in i.addresses}
    found: set[str] = set()
    for ns in namespaces:
        if ns.overlay is not None:
            found.update(e.dst for e in ns.overlay.fdb if e.dst)
    for net in view.networks:
        if net.driver == "overlay":
            found.update(p.ip for p in net.peers if p.ip)
    out = []
    for addr in found - own:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_unspecified and not ip.is_loopback:
            out.append(ip)
    return [str(ip) for ip in sorted(out)]


def _vtep_routes(rec: Recorder, opts: CollectOptions, namespaces: list[Namespace], view: DockerView,
                 host: HostNamespace) -> None:
    """In the host namespace (where the vxlan devices' UDP sockets are): the route to each peer VTEP."""
    peers = vtep_peers(namespaces, view, host)
    if not peers:
        return
    try:
        with rec.step(f"routes to {len(peers)} peer VTEPs (rtnetlink get)", "host") as step, _unavailable(step):
            host.vtep_routes = opts.host.vtep_routes(peers, host.interfaces)
    except Exception:  # noqa: BLE001 - recorded as a failed step
        pass


def _ask_dns(ns: Namespace, rec: Recorder, opts: CollectOptions, questions: list[tuple[str, str, str]],
             dns_out: list) -> None:
    """Inside the namespace: its questions to the embedded resolver, all at once."""
    with _soft(ns, "dns"), rec.step(f"dns {len(questions) * 2} queries to 127.0.0.11", ns.name) as step:
        answers = opts.host.ask_dns(questions, ns.name, opts.dns_timeout)
        bad = [a for a in answers if a.status in ("timeout", "error", DNS_TRUNCATED)]
        if bad:
            step.status = "failed"
            step.reason = f"{len(bad)} of {len(answers)} queries failed: {bad[0].query}: {bad[0].reason}"
        dns_out.extend(answers)


@contextlib.contextmanager
def _unavailable(step):
    """Inside a recorded step: a source this host cannot give (a capture without it) is recorded as
    skipped with the reason, like a tool that is not installed, and the rest goes on."""
    try:
        yield
    except SourceUnavailable as exc:
        step.status = "skipped"
        step.reason = str(exc)


@contextlib.contextmanager
def _soft(ns: Namespace, what: str):
    """Record an unexpected failure of one source in the namespace's errors, and go on."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - one source must not cost the others
        ns.errors.append(f"{what}: {type(exc).__name__}: {exc}")


def _host(rec: Recorder, opts: CollectOptions, view: DockerView) -> tuple[HostNamespace, dict]:
    host = HostNamespace()
    try:
        with rec.step("links+addresses+routes (rtnetlink)", "host") as step, _unavailable(step):
            host.interfaces, host.routes = opts.host.interfaces("host")
    except Exception:
        pass
    dumps = opts.host.iptables(rec, "host")
    try:
        host.nftables = opts.host.nftables(rec, "host")
    except Exception as exc:  # noqa: BLE001 - a reader that fails is an error string, never a traceback
        host.nftables = NftRuleset(available=False, reason=f"{type(exc).__name__}: {exc}")
    gw = next((i for i in host.interfaces if i.name == "docker_gwbridge"), None)
    host.gwbridge = Bridge(
        name="docker_gwbridge",
        present=gw is not None,
        addresses=list(gw.addresses) if gw else [],
        members=sorted(i.name for i in host.interfaces if gw is not None and i.master_index == gw.index),
        state=gw.state if gw else None,
    )
    ports: set[int] = set()
    for s in view.services:
        ports.update(p.published_port for p in s.ports if p.published_port)
    for d in dumps.values():
        for r in d.table("nat").rules("DOCKER-INGRESS"):
            dp = r.value("--dport")
            if dp and dp.isascii() and dp.isdigit() and len(dp) <= 5:
                ports.add(int(dp))
    try:
        with rec.step("listening sockets (/proc/net)", "host") as step, _unavailable(step):
            host.listeners = opts.host.listeners(ports)
    except Exception:  # noqa: BLE001 - recorded as a failed step; the rest of the host is still read
        pass
    return host, dumps


STALE_REASON = "not a mounted namespace: a file left behind by a sandbox that is gone (dockerd did not clean it up)"


def _mark_stale(namespaces: list[Namespace], rec: Recorder, errors: list[str], netns_dir: str, host: Host) -> None:
    """Tell namespace files from leftovers before entering any of them.

    A live namespace file is an nsfs bind mount. A plain file is what a removed
    sandbox leaves behind (stale; not an error). When *no* file is a mount, the
    directory is seen without its mounts — the agent's container lacks
    bind-propagation=rslave — and that is an error.
    """
    plain = []
    for ns in namespaces:
        if not host.exists(ns.path):
            ns.vanished = True
            ns.errors.append("namespace file vanished (the container or network went away during collection)")
            rec.skipped("enter namespace", ns.name, ns.errors[-1])
        elif host.is_mounted_namespace(ns.path) is False:
            plain.append(ns)
    if plain and len(plain) == len(namespaces):
        errors.append(
            f"none of the {len(plain)} files under {netns_dir} is a mounted namespace: the directory is seen "
            "without dockerd's mounts (in a container, bind-mount it with bind-propagation=rslave); "
            "entering them fails with 'reassociate to namespace: Invalid argument'"
        )
        return
    for ns in plain:
        ns.stale = True
        rec.skipped("enter namespace", ns.name, STALE_REASON)


def preflight(opts: CollectOptions) -> None:
    if opts.require_root and not opts.host.is_root():
        raise CollectError(
            "swarmscope collect must run as root: it enters the engine's network namespaces "
            "and reads iptables (run it with sudo)"
        )
    if not opts.host.isdir(opts.netns_dir):
        raise CollectError(
            f"no network namespace directory at {opts.netns_dir}: is this a swarm node? "
            "if dockerd runs with --exec-root DIR, pass --netns-dir DIR/netns"
        )


def collect(opts: CollectOptions) -> Snapshot:
    """Collect this node's snapshot. Raises CollectError only when nothing useful can be had."""
    t0 = time.monotonic()
    started = _dt.datetime.now(_dt.UTC)
    preflight(opts)
    rec = Recorder(timeout=opts.timeout)
    errors: list[str] = []

    # 0. the namespaces are read while the Docker API answers (steps 1-3): what is read inside them needs
    # neither the API's view nor the engine's backend; they are joined to the view, and asked DNS, after
    support = opts.host.ipvs_support()
    ns_errors: list[str] = []
    namespaces: list[Namespace] = []
    try:
        entries = sorted(opts.host.listdir(opts.netns_dir))
    except OSError as exc:
        entries = []
        ns_errors.append(f"cannot list {opts.netns_dir}: {exc.strerror}")
    for name in entries:
        kind, prefix = classify(name)
        namespaces.append(Namespace(name=name, path=os.path.join(opts.netns_dir, name), kind=kind, network_id=prefix))
    _mark_stale(namespaces, rec, ns_errors, opts.netns_dir, opts.host)

    def enter(ns: Namespace, fn, budget: float) -> None:
        try:
            opts.host.run_in(ns.path, fn, budget)
        except NamespaceError as exc:
            ns.vanished = exc.vanished
            ns.errors.append(exc.reason)
            rec.skipped("enter namespace", ns.name, exc.reason)
        except Exception as exc:  # a collector bug must not lose the other namespaces
            ns.errors.append(f"{type(exc).__name__}: {exc}")

    def one(ns: Namespace) -> None:
        if ns.stale or ns.vanished or ns.kind == NsKind.HOST:
            return  # the host namespace is collected once, as `host`
        enter(ns, lambda: _collect_namespace(ns, rec, opts, None, support, [], []), opts.timeout * 4 + 5)

    workers = opts.workers or default_workers()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(namespaces) or 1)))
    # the lb_ namespaces first: DNS is asked there, as soon as the API's view and their own reading are done
    ns_done = {ns.name: pool.submit(one, ns) for ns in sorted(namespaces, key=lambda ns: ns.kind != NsKind.LB)}
    dns_pool = None
    dns_done: list = []
    dns_out: list = []
    try:
        api, info, view, host, node = _api_node_host(opts, rec, errors, support)
        # the namespaces are joined to the view and asked DNS as soon as the view is read, while the rest are
        # still being read: each asker once its own reading is done (a namespace that vanished is not entered
        # again)
        for ns in namespaces:
            _join(ns, view)
        plan = _dns_questions(view, namespaces) if opts.dns else {}
        askers = [ns for ns in namespaces if ns.name in plan and not ns.stale]
        if askers:
            dns_pool = ThreadPoolExecutor(max_workers=min(len(askers), max(1, workers)))

            def ask(ns: Namespace) -> None:
                ns_done[ns.name].result()
                if ns.vanished:
                    return
                enter(ns, lambda: _ask_dns(ns, rec, opts, plan[ns.name], dns_out),
                      opts.dns_timeout * 2 * len(plan[ns.name]) + 5)

            dns_done = [dns_pool.submit(ask, ns) for ns in askers]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        if dns_pool is not None:
            dns_pool.shutdown(wait=True, cancel_futures=True)
        raise
    for f in ns_done.values():
        f.result()
    pool.shutdown(wait=True)
    errors.extend(ns_errors)
    if node.iptables.engine_backend == "legacy":  # read with nft as the main backend: swap
        for ns in namespaces:
            ns.iptables, ns.iptables_other = ns.iptables_other, ns.iptables
    _vtep_routes(rec, opts, namespaces, view, host)
    for f in dns_done:
        f.result()
    if dns_pool is not None:
        dns_pool.shutdown(wait=True)
    if api is not None:
        try:
            _second_look(api, info, view, dns_out, rec, errors)
        finally:
            api.close()
    for ns in namespaces:
        for e in ns.errors:
            errors.append(f"namespace {ns.name}: {e}")

    snap = Snapshot(
        node=node,
        tool_version=__version__,
        collected_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        netns_dir=opts.netns_dir,
        host=host,
        namespaces=namespaces,
        dns=sorted(dns_out, key=lambda a: (a.network_name, a.service, a.query)),
        docker=view,
        provenance=rec.entries,
    )
    for p in rec.entries:
        if p.status in ("failed", "timeout") and p.what.startswith("dns"):
            errors.append(f"namespace {p.namespace}: {p.reason}")
        elif p.status == "timeout":
            errors.append(f"{p.what} in {p.namespace}: {p.reason}")
    snap.errors = list(dict.fromkeys(errors))
    snap.complete = not snap.errors
    snap.duration_ms = round((time.monotonic() - t0) * 1000, 1)
    return snap


def _second_look(api, info, view: DockerView, dns_out: list, rec: Recorder, errors: list[str]) -> None:
    """DNS was asked after the view was read: a task that started in between is in DNS and not in the
    view. Where DNS holds an address the view does not, read the view's address-holding parts again."""
    if info is None or not view.available:
        return
    unexplained = docker_api.unexplained_answers(view, dns_out)
    if not unexplained:
        return
    before = view.reason
    docker_api.second_look(api, info, view, set(unexplained), rec)
    if view.reason and view.reason != before:
        errors.append(f"Docker API: {view.reason}")


def _api_node_host(opts: CollectOptions, rec: Recorder, errors: list[str], support: IpvsSupport):
    """Steps 1-3 of collect(): (engine info, API view, host namespace, node facts)."""
    # 1. Docker API
    info = None
    view = DockerView(available=False)
    api = None
    try:
        with rec.step("docker:connect+info", "host"):
            api, info = opts.host.docker_connect(opts.docker_host, opts.docker_timeout)
    except CollectError as exc:
        if "unsupported engine" in exc.message:
            raise
        view.reason = exc.message
        errors.append(f"Docker API: {exc.message}")
        opts.warnings.append(exc.message)
    if info is not None:
        if info.swarm_state not in ("active", "pending"):
            raise CollectError(
                f"this engine is not in swarm mode (swarm state: {info.swarm_state or 'inactive'}): "
                "run swarmscope on a node of the swarm, or point -H at one"
            )
        view = docker_api.collect_view(api, info, rec)
        if view.reason:
            errors.append(f"Docker API: {view.reason}")

    # 2. node facts
    node = NodeInfo(
        hostname=(info.hostname if info else None) or opts.host.hostname(),
        kernel_release=opts.host.kernel_release(),
        node_id=info.node_id if info else None,
        node_addr=info.node_addr if info else None,
        role=("manager" if info.is_manager else "worker") if info else None,
        swarm_state=info.swarm_state if info else None,
        engine_version=info.engine_version if info else None,
        api_version=info.api_version if info else None,
        engine_os=info.os if info else None,
        firewall_backend=info.firewall_backend if info else None,
        ip_vs=support,
    )
    # what the mesh needs besides ip_vs, and what dockerd said about it: read-only, nothing loaded
    try:
        with rec.step("kernel modules and iptables extensions (/sys/module, /lib/modules, xtables)", "host") as step:
            with _unavailable(step):
                node.modules = opts.host.mesh_modules(node.kernel_release)
            with _unavailable(step):
                node.xtables = opts.host.xtables()
    except Exception:  # noqa: BLE001 - recorded as a failed step
        pass
    try:
        node.dockerd_log = opts.host.dockerd_log(rec, opts.dockerd_log)
    except Exception:  # noqa: BLE001 - recorded; the log only corroborates
        pass

    # 3. host namespace
    host, host_dumps = _host(rec, opts, view)
    backend = kernel.decide_backend(host_dumps)
    node.iptables = backend
    main = backend.engine_backend or "nft"
    host.iptables = host_dumps.get(main)
    host.iptables_other = host_dumps.get(iptables.other(main))
    swarm_ifaces = {"docker_gwbridge"}
    if node.node_addr:
        swarm_ifaces.update(i.name for i in host.interfaces if any(a.address == node.node_addr for a in i.addresses))
    names = list(kernel.NODE_SYSCTLS) + [f"net.ipv4.conf.{i}.rp_filter" for i in sorted(swarm_ifaces)]
    try:
        node.sysctls = opts.host.sysctls("host", dict.fromkeys(names))
    except SourceUnavailable:
        node.sysctls = dict.fromkeys(names)
    return api, info, view, host, node
