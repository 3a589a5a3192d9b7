"""The path map and findings: what the correlator produces (plain dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from swarmscope.model import BackendState, HopStatus, Severity, Verdict


@dataclass(slots=True)  # a million of them in a 100-node swarm's path maps: no per-object __dict__
class Hop:
    key: str  # stable, e.g. "host.dnat"
    label: str  # what a user reads, e.g. "host DNAT 8000 -> 172.18.0.2:8000"
    status: HopStatus
    detail: str = ""
    # exact rule lines, IPVS entries, addresses, answers; never changed in place (a path's own copy of a
    # SharedHop shares its list): a line is added by replacing the list
    evidence: list[str] = field(default_factory=list)
    # ids of findings about this hop: a tuple, replaced (not appended to) when a finding is added (most hops
    # have none, and an empty list each was 84 MB at 100 nodes)
    findings: tuple[str, ...] = ()
    aux: bool = False  # shown, but not part of the verdict
    root_cause: str | None = None  # id of the root-cause finding that explains this hop's findings


class SharedHop(Hop):
    """A hop judged once and placed, the same object, in many node paths (a node's own hops in each of its
    paths, the host's hops of a port on every node with the same rules: ``paths.common.node_hop``). Never
    changed: whoever tags a hop, marks it or adds to its evidence takes the path's own copy first
    (``NodePath.own``); changing one raises, so no path's finding can show on another's."""

    __slots__ = ()

    @classmethod
    def of(cls, h: Hop) -> SharedHop:
        if isinstance(h, SharedHop):
            return h
        new = object.__new__(cls)
        for f in fields(Hop):
            object.__setattr__(new, f.name, getattr(h, f.name))
        return new

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError(f"hop {self.key} is shared by several paths: change the path's own (NodePath.own) instead")

    def copy(self) -> Hop:
        """A path's own hop with this one's judgement (the evidence list shared: never changed in place)."""
        return Hop(**{f.name: getattr(self, f.name) for f in fields(Hop)})

    def __copy__(self) -> Hop:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> Hop:
        c = self.copy()
        c.evidence = list(c.evidence)
        return c


@dataclass
class Backend:
    """One real server of an IPVS service, or a running task that should be one."""

    address: str
    status: BackendState
    port: int | None = None
    weight: int | None = None
    forward: str | None = None
    task_id: str | None = None
    task: str | None = None  # service.slot
    task_state: str | None = None
    service: str | None = None
    node: str | None = None
    container_id: str | None = None
    redirect: HopStatus | None = None  # ingress only, on the task's node
    redirect_evidence: list[str] = field(default_factory=list)


@dataclass(slots=True)
class NodePath:
    node: str
    node_id: str | None
    hops: list[Hop] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)  # never changed in place: paths may share the list
    verdict: Verdict = Verdict.UNKNOWN
    broken_at: str | None = None  # label of the first broken (or, when degraded, the degraded) hop
    reason: str = ""

    def hop(self, key: str) -> Hop | None:
        for h in self.hops:
            if h.key == key:
                return h
        return None

    def own(self, h: Hop, owned: dict | None = None) -> Hop:
        """This path's own hop for ``h``, to change: ``h`` itself unless it is shared (SharedHop), else a copy
        put in its place. ``owned`` (id(path), id(shared hop)) -> copy, for callers that still hold the shared
        hop after its path took its copy (the checks' indexes)."""
        if not isinstance(h, SharedHop):
            return h
        k = (id(self), id(h))
        if owned is not None and k in owned:
            return owned[k]
        for i, x in enumerate(self.hops):
            if x is h:
                c = self.hops[i] = h.copy()
                if owned is not None:
                    owned[k] = c
                return c
        raise ValueError(f"hop {h.key} is not on this path")


@dataclass
class PortPath:
    protocol: str
    published: int
    target: int
    mode: str  # ingress | host
    nodes: list[NodePath] = field(default_factory=list)


@dataclass
class VipPath:
    network_id: str
    network: str
    vip: str | None  # None for dnsrr
    endpoint_mode: str
    nodes: list[NodePath] = field(default_factory=list)


@dataclass
class DnsCheck:
    node: str
    network_id: str
    network: str
    query: str
    status: HopStatus  # ok | missing | mismatch | unknown
    answers: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class TaskInfo:
    id: str
    name: str
    node: str
    state: str | None
    desired_state: str | None
    container_id: str | None
    addresses: dict[str, list[str]] = field(default_factory=dict)  # network name -> addresses


@dataclass
class ServicePath:
    id: str
    name: str
    mode: str
    replicas: int | None
    endpoint_mode: str
    networks: list[str] = field(default_factory=list)  # names
    vips: dict[str, str] = field(default_factory=dict)  # network name -> VIP
    tasks: list[TaskInfo] = field(default_factory=list)
    ports: list[PortPath] = field(default_factory=list)
    vip_paths: list[VipPath] = field(default_factory=list)
    dns: list[DnsCheck] = field(default_factory=list)


@dataclass
class Finding:
    id: str
    severity: Severity
    title: str
    hint: str
    nodes: list[str] = field(default_factory=list)
    service: str | None = None
    network: str | None = None
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    caused_by: str | None = None  # id of the root-cause finding that explains this one
    explains: int = 0  # for a root cause: how many other findings it explains
    explained: dict[str, int] = field(default_factory=dict)  # finding id -> count explained


@dataclass
class Analysis:
    services: list[ServicePath]
    findings: list[Finding]  # root causes first, then by severity
    nodes: list[str]
    api_source: str | None
    #: the swarm's nodes that are not in the data, and why (hostname -> why): the manager lists them (`docker
    #: node ls`) and they were not collected, or (pipeline.analyze) they failed in the gather
    uncollected: dict[str, str] = field(default_factory=dict)
    #: the services whose paths were not judged (correlate.analyze's ``scope``: ``explain SERVICE``)
    unjudged: list[str] = field(default_factory=list)
