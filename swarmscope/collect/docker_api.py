"""The Docker API view: services, tasks, networks (verbose), containers, nodes.

Everything is normalised into model objects field by field, so what is not
copied is never collected: no environment variables, secrets, configs,
registry credentials, commands or arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from swarmscope.collect.runner import Recorder
from swarmscope.errors import CollectError
from swarmscope.model import (
    Container,
    ContainerNet,
    DockerView,
    Network,
    NetworkContainer,
    NetworkPeer,
    NetworkService,
    NetworkTaskEndpoint,
    PortSpec,
    Service,
    ServiceVip,
    SwarmNode,
    Task,
    TaskAttachment,
)

MIN_API = (1, 28)  # network inspect --verbose (Services, LocalLBIndex, Peers)
DEFAULT_HOST = "unix:///var/run/docker.sock"
KEEP_LABEL_PREFIX = "com.docker."
INSPECT_WORKERS = 4  # container inspects in flight at once (the Docker SDK's connection pool holds 10)


def api_at_least(version: str | None, want: tuple[int, ...]) -> bool:
    """Whether an API version string ("1.41") is at least ``want``; False when unreadable."""
    try:
        return tuple(int(x) for x in (version or "0").split(".")) >= want
    except ValueError:
        return False


@dataclass
class EngineInfo:
    hostname: str
    node_id: str | None
    node_addr: str | None
    swarm_state: str | None
    is_manager: bool
    engine_version: str | None
    api_version: str | None
    os: str | None
    kernel: str | None
    firewall_backend: str | None = None  # API 1.49+: which firewall the engine programs


def describe_connect_error(host: str, exc: Exception) -> str:
    """One line: what is wrong with the Docker API, and what to do."""
    text = str(exc)
    path = host[len("unix://") :] if host.startswith("unix://") else None
    if path and not os.path.exists(path):
        return f"no Docker socket at {path}: is dockerd running? point swarmscope at it with -H/--host or DOCKER_HOST"
    if "Permission denied" in text or "PermissionError" in text:
        return (f"permission denied on the Docker socket {path or host}: "
                "run as root (sudo) or as a member of the docker group")
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"the Docker API at {host} did not answer in time (raise --docker-timeout, or check dockerd)"
    return f"cannot reach the Docker API at {host}: {text.splitlines()[0][:200] if text else type(exc).__name__}"


def connect(host: str | None, timeout: float, read_only: bool = False):
    """An APIClient for ``host`` (None: DOCKER_HOST or the default socket). ``read_only``: only the calls
    of collect_view and engine_info are made; on a unix socket they go through the standard library's
    HTTP client (docker_http.UnixAPI) instead of the Docker SDK, which takes longer to import than the
    whole API view takes to read."""
    base_url = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if read_only and base_url.startswith("unix://"):
        from swarmscope.collect.docker_http import UnixAPI

        try:
            return UnixAPI(base_url, timeout), base_url
        except Exception as exc:  # version negotiation talks to the engine
            raise CollectError(describe_connect_error(base_url, exc)) from exc
    import docker

    try:
        client = docker.APIClient(base_url=base_url, timeout=timeout, version="auto")
    except Exception as exc:  # version negotiation talks to the engine
        raise CollectError(describe_connect_error(base_url, exc)) from exc
    return client, base_url


def engine_info(api) -> EngineInfo:
    info = api.info()
    ver = api.version()
    api_version = ver.get("ApiVersion")
    if api_version and not api_at_least(api_version, MIN_API):
        raise CollectError(
            f"unsupported engine: Docker API {api_version} (engine {ver.get('Version')}); "
            f"swarmscope needs API {'.'.join(map(str, MIN_API))} or newer (Docker 17.06+)"
        )
    swarm = info.get("Swarm") or {}
    return EngineInfo(
        hostname=info.get("Name") or "",
        node_id=swarm.get("NodeID") or None,
        node_addr=swarm.get("NodeAddr") or None,
        swarm_state=swarm.get("LocalNodeState") or None,
        is_manager=bool(swarm.get("ControlAvailable")),
        engine_version=ver.get("Version") or info.get("ServerVersion"),
        api_version=api_version,
        os=info.get("OperatingSystem"),
        kernel=info.get("KernelVersion"),
        firewall_backend=((info.get("FirewallBackend") or {}).get("Driver") or None)
        if isinstance(info.get("FirewallBackend"), dict)
        else None,
    )


def connect_info(host: str | None, timeout: float, read_only: bool = False):
    """(client, base URL, EngineInfo); any failure is a CollectError with a message for the user.
    ``read_only``: see connect()."""
    api, base_url = connect(host, timeout, read_only)
    try:
        return api, base_url, engine_info(api)
    except CollectError:
        api.close()
        raise
    except Exception as exc:
        api.close()
        raise CollectError(describe_connect_error(base_url, exc)) from exc


# --------------------------------------------------------------------------
# normalisation (pure: raw API dicts -> model)


def norm_service(raw: dict) -> Service:
    spec = raw.get("Spec") or {}
    mode_spec = spec.get("Mode") or {}
    replicas = None
    if "Replicated" in mode_spec:
        mode = "replicated"
        replicas = (mode_spec["Replicated"] or {}).get("Replicas")
    elif "Global" in mode_spec:
        mode = "global"
    elif "ReplicatedJob" in mode_spec:
        mode = "replicated-job"
    elif "GlobalJob" in mode_spec:
        mode = "global-job"
    else:
        mode = "unknown"
    endpoint = raw.get("Endpoint") or {}
    ep_spec = endpoint.get("Spec") or spec.get("EndpointSpec") or {}
    ports = [
        PortSpec(
            protocol=p.get("Protocol", "tcp"),
            target_port=int(p.get("TargetPort") or 0),
            published_port=p.get("PublishedPort"),
            publish_mode=p.get("PublishMode", "ingress"),
        )
        for p in (endpoint.get("Ports") or ep_spec.get("Ports") or [])
    ]
    vips = [
        ServiceVip(network_id=v.get("NetworkID", ""), address=v.get("Addr", ""))
        for v in endpoint.get("VirtualIPs") or []
    ]
    template = spec.get("TaskTemplate") or {}
    nets = [n.get("Target") for n in (template.get("Networks") or spec.get("Networks") or []) if n.get("Target")]
    image = (template.get("ContainerSpec") or {}).get("Image")
    labels = {k: v for k, v in (spec.get("Labels") or {}).items() if k.startswith(KEEP_LABEL_PREFIX)}
    return Service(
        id=raw.get("ID", ""),
        name=spec.get("Name", ""),
        mode=mode,
        replicas=replicas,
        endpoint_mode=ep_spec.get("Mode") or "vip",
        ports=ports,
        vips=vips,
        networks=nets,
        image=image,
        labels=labels,
        update_state=(raw.get("UpdateStatus") or {}).get("State") or None,
    )


def norm_task(raw: dict, service_names: dict[str, str]) -> Task:
    status = raw.get("Status") or {}
    cstatus = status.get("ContainerStatus") or {}
    atts = []
    for a in raw.get("NetworksAttachments") or []:
        net = a.get("Network") or {}
        atts.append(
            TaskAttachment(
                network_id=net.get("ID", ""),
                network_name=(net.get("Spec") or {}).get("Name"),
                addresses=list(a.get("Addresses") or []),
            )
        )
    sid = raw.get("ServiceID", "")
    return Task(
        id=raw.get("ID", ""),
        service_id=sid,
        service_name=service_names.get(sid),
        slot=raw.get("Slot"),
        node_id=raw.get("NodeID"),
        desired_state=raw.get("DesiredState"),
        state=status.get("State"),
        error=status.get("Err"),
        container_id=cstatus.get("ContainerID"),
        attachments=atts,
        state_since=status.get("Timestamp"),
    )


def _vip(value) -> str | None:
    """A service's VIP from a verbose network inspect; dnsrr services have none (the engine prints "<nil>")."""
    if not value or value in ("<nil>", "nil"):
        return None
    return value


def norm_network(raw: dict, verbose: bool) -> Network:
    ipam = raw.get("IPAM") or {}
    cfg = ipam.get("Config") or []
    opts = raw.get("Options") or {}
    vxlan = [
        int(x)
        for x in (opts.get("com.docker.network.driver.overlay.vxlanid_list") or "").split(",")
        if x.strip().isdigit()
    ]
    containers = [
        NetworkContainer(key=k, name=v.get("Name"), endpoint_id=v.get("EndpointID"), ipv4=v.get("IPv4Address") or None)
        for k, v in (raw.get("Containers") or {}).items()
    ]
    services = {}
    for name, s in (raw.get("Services") or {}).items():
        services[name] = NetworkService(
            name=name,
            vip=_vip(s.get("VIP")),
            local_lb_index=s.get("LocalLBIndex"),
            ports=list(s.get("Ports") or []),
            tasks=[
                NetworkTaskEndpoint(
                    name=t.get("Name", ""),
                    endpoint_id=t.get("EndpointID"),
                    endpoint_ip=t.get("EndpointIP"),
                    host_ip=(t.get("Info") or {}).get("Host IP"),
                )
                for t in s.get("Tasks") or []
            ],
        )
    return Network(
        id=raw.get("Id", ""),
        name=raw.get("Name", ""),
        driver=raw.get("Driver"),
        scope=raw.get("Scope"),
        ingress=bool(raw.get("Ingress")),
        attachable=bool(raw.get("Attachable")),
        internal=bool(raw.get("Internal")),
        encrypted="encrypted" in opts,
        subnets=[c["Subnet"] for c in cfg if c.get("Subnet")],
        gateways=[c["Gateway"] for c in cfg if c.get("Gateway")],
        vxlan_ids=vxlan,
        containers=containers,
        services=services,
        peers=[NetworkPeer(name=p.get("Name", ""), ip=p.get("IP", "")) for p in raw.get("Peers") or []],
        verbose=verbose,
    )


def norm_container(raw: dict) -> Container:
    ns = raw.get("NetworkSettings") or {}
    labels = (raw.get("Config") or {}).get("Labels") or {}
    state = raw.get("State") or {}
    nets = [
        ContainerNet(
            network_id=v.get("NetworkID") or None,
            network_name=k,
            ip_address=v.get("IPAddress") or None,
            prefixlen=v.get("IPPrefixLen") or None,
            endpoint_id=v.get("EndpointID") or None,
        )
        for k, v in (ns.get("Networks") or {}).items()
    ]
    return Container(
        id=raw.get("Id", ""),
        name=(raw.get("Name") or "").lstrip("/"),
        sandbox_key=ns.get("SandboxKey") or None,
        sandbox_id=ns.get("SandboxID") or None,
        service_id=labels.get("com.docker.swarm.service.id"),
        service_name=labels.get("com.docker.swarm.service.name"),
        task_id=labels.get("com.docker.swarm.task.id"),
        state=state.get("Status"),
        pid=state.get("Pid") or None,
        networks=nets,
        started_at=state.get("StartedAt") or None,
    )


def norm_node(raw: dict) -> SwarmNode:
    desc = raw.get("Description") or {}
    spec = raw.get("Spec") or {}
    status = raw.get("Status") or {}
    return SwarmNode(
        id=raw.get("ID", ""),
        hostname=desc.get("Hostname", ""),
        role=spec.get("Role", ""),
        state=status.get("State"),
        availability=spec.get("Availability"),
        address=status.get("Addr"),
        manager_reachability=(raw.get("ManagerStatus") or {}).get("Reachability"),
        engine_version=(desc.get("Engine") or {}).get("EngineVersion"),
    )


# --------------------------------------------------------------------------
# collection


def collect_view(
    api,
    info: EngineInfo,
    rec: Recorder,
    only_networks: set[str] | None = None,
    skip_containers: frozenset[str] = frozenset(),
) -> DockerView:
    """Read the API view; a failing call is recorded and the rest goes on. ``only_networks``: inspect
    only these networks and skip the nodes (the second look); ``skip_containers``: ids not inspected again."""
    view = DockerView()
    problems: list[str] = []

    again = "second look: " if only_networks is not None else ""

    def call(what: str, fn, default):
        with rec.step(f"docker:{again}{what}", "host") as step:
            try:
                return fn()
            except Exception as exc:
                step.status = "failed"
                step.reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                problems.append(f"docker {what}: {step.reason}")
                return default

    service_names: dict[str, str] = {}
    if info.is_manager:
        raw_services = call("services", api.services, [])
        view.services = [norm_service(s) for s in raw_services]
        service_names = {s.id: s.name for s in view.services}
        view.tasks = [norm_task(t, service_names) for t in call("tasks", api.tasks, [])]
        if only_networks is None:
            view.nodes = [norm_node(n) for n in call("nodes", api.nodes, [])]
    elif only_networks is None:
        for what in ("services", "tasks", "nodes"):
            rec.skipped(
                f"docker:{what}", "host", "this node is a worker: only managers can list services, tasks and nodes"
            )

    for n in call("networks", api.networks, []):
        nid = n.get("Id", "")
        if only_networks is not None and nid not in only_networks:
            continue
        if n.get("Driver") == "overlay" or n.get("Name") == "docker_gwbridge":
            raw = call(
                f"network inspect -v {n.get('Name')}", lambda nid=nid: api.inspect_network(nid, verbose=True), None
            )
            if raw is not None:
                view.networks.append(norm_network(raw, verbose=True))
                continue
        view.networks.append(norm_network(n, verbose=False))

    listed = [
        c for c in call("containers", lambda: api.containers(all=False), []) if c.get("Id") not in skip_containers
    ]

    def inspect(c: dict):
        return call(f"container inspect {c.get('Id', '')[:12]}", lambda: api.inspect_container(c["Id"]), None)

    # one inspect per container (only it has the SandboxKey): a few at once, dockerd answers them concurrently
    if len(listed) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(INSPECT_WORKERS, len(listed))) as pool:
            raws = list(pool.map(inspect, listed))
    else:
        raws = [inspect(c) for c in listed]
    view.containers = [norm_container(raw) for raw in raws if raw is not None]
    if problems:
        view.reason = "; ".join(problems)
    return view


# --------------------------------------------------------------------------
# the second look: DNS is asked after the view is read; a task that started in between is in DNS and
# not in the view. Where DNS answered an address the view does not hold, the parts of the view that
# hold addresses are read again and what is new is added (nothing read first is changed or dropped).


def known_addresses(view: DockerView) -> dict[str, set[str]]:
    """Per network id, every task and container address the view holds."""
    out: dict[str, set[str]] = {}

    def add(nid: str | None, cidr: str | None) -> None:
        if nid and cidr:
            out.setdefault(nid, set()).add(cidr.split("/")[0])

    for net in view.networks:
        for s in net.services.values():
            add(net.id, s.vip)
            for ep in s.tasks:
                add(net.id, ep.endpoint_ip)
    for svc in view.services:
        for v in svc.vips:
            add(v.network_id, v.address)
    for t in view.tasks:
        for a in t.attachments:
            for x in a.addresses:
                add(a.network_id, x)
    for ctr in view.containers:
        for cn in ctr.networks:
            add(cn.network_id, cn.ip_address)
    return out


def unexplained_answers(view: DockerView, answers) -> dict[str, set[str]]:
    """Per network id, the addresses ``answers`` (DnsAnswer) hold that the view does not."""
    known = known_addresses(view)
    out: dict[str, set[str]] = {}
    for a in answers:
        if a.status == "ok":
            new = set(a.answers) - known.get(a.network_id, set())
            if new:
                out.setdefault(a.network_id, set()).update(new)
    return out


def second_look(api, info: EngineInfo, view: DockerView, network_ids: set[str], rec: Recorder) -> int:
    """Read again what holds task addresses (the networks ``network_ids`` verbosely, the running
    containers, and on a manager the tasks) and add what the first read did not have. Returns how
    many tasks, endpoints and containers were added."""
    fresh = collect_view_parts(api, info, rec, network_ids, view)
    if fresh.reason:
        view.reason = f"{view.reason}; {fresh.reason}" if view.reason else fresh.reason
    added = 0
    if info.is_manager:
        have = {t.id for t in view.tasks}
        for t in fresh.tasks:
            if t.id not in have:
                view.tasks.append(t)
                added += 1
    by_id = {n.id: n for n in view.networks}
    for net in fresh.networks:
        old = by_id.get(net.id)
        if old is None:
            continue
        for name, s in net.services.items():
            if name not in old.services:
                old.services[name] = s
                added += len(s.tasks)
                continue
            seen = {(ep.name, ep.endpoint_ip) for ep in old.services[name].tasks}
            for ep in s.tasks:
                if (ep.name, ep.endpoint_ip) not in seen:
                    old.services[name].tasks.append(ep)
                    added += 1
        keys = {c.key for c in old.containers}
        for c in net.containers:
            if c.key not in keys:
                old.containers.append(c)
    have_c = {c.id for c in view.containers}
    for ctr in fresh.containers:
        if ctr.id not in have_c:
            view.containers.append(ctr)
            added += 1
    return added


def collect_view_parts(api, info: EngineInfo, rec: Recorder, network_ids: set[str], view: DockerView) -> DockerView:
    """The tasks (a manager), the networks ``network_ids`` (verbose) and the containers not yet inspected."""
    return collect_view(
        api, info, rec, only_networks=network_ids, skip_containers=frozenset(c.id for c in view.containers)
    )
