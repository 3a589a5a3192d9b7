"""The data-plane facts layer, between the snapshot and the correlator (pure).

Per node, typed facts read once from the snapshot's rules, addresses and IPVS tables: "tcp/8000 is
DNATed to 172.18.0.2:8000 in nat DOCKER-INGRESS", "nat PREROUTING jumps to DOCKER-INGRESS", "mark 0x104
is set for tcp/8000 in mangle PREROUTING", "10.0.1.2/32 is on eth0", "IPVS FWM 259 has these real
servers". Each fact is a frozen dataclass with its ``evidence`` (the rule's line as the snapshot holds
it, the address as ``ip addr`` shows it, the IPVS entry). Only this package knows iptables rule syntax
and the chains Docker programs; the correlator (swarmscope/correlate) judges the facts.

    nf = facts_for(snapshot)              # once per node; the correlator keeps it on its NodeCtx
    nf.host.netfilter.dnats("tcp", 8000)      # [Dnat(proto='tcp', port=8000, to_addr='172.18.0.2', ...)]
    nf.ns(sandbox).ipvs.fwm(259)          # FwmService(mark=259, scheduler='rr', dests=(...), evidence=...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmscope.facts.ipvs import FwmService, IpvsFacts, RealServer
from swarmscope.facts.netfilter import NetfilterFacts
from swarmscope.facts.nftables import NftFacts
from swarmscope.facts.overlay import OverlayFacts, overlay_facts
from swarmscope.model import IptablesDump, Namespace, Snapshot


@dataclass(frozen=True, slots=True)
class Address:
    """IPv4 ``address/prefixlen`` is on interface ``iface``."""

    iface: str
    address: str
    prefixlen: int
    evidence: str


@dataclass
class NsFacts:
    """The facts of one network namespace: its rules (the engine's iptables backend), the rules of the
    backend the engine does not use, its IPVS table and its addresses."""

    name: str
    netfilter: NetfilterFacts
    other_netfilter: NetfilterFacts
    ipvs: IpvsFacts
    addresses: list[Address]
    _by_address: dict[str, Address] | None = field(default=None, repr=False, compare=False)

    def address(self, addr: str) -> Address | None:
        """The first of the namespace's addresses that is ``addr`` (indexed once: ingress_sbox holds one
        alias per service, and every service's path looks its own up)."""
        if self._by_address is None:
            self._by_address = {}
            for a in self.addresses:
                self._by_address.setdefault(a.address, a)
        return self._by_address.get(addr)


def _addresses(ns: Namespace) -> list[Address]:
    return [
        Address(i.name, a.address, a.prefixlen, f"{ns.name}: {i.name} inet {a.address}/{a.prefixlen}")
        for i in ns.interfaces
        for a in i.addresses
        if a.family == 4
    ]


def _dump_key(d: IptablesDump) -> tuple:
    """What an iptables dump's facts are made of, in short: each chain's rules by a hash of their identities
    (a dump read with ``model.sharing()`` holds one object for equal rules of every node; elsewhere no two
    dumps share a rule). Equal dumps have equal keys; ``_same_rules`` tells the rare unequal ones apart. The
    key keeps no per-rule object (at 100 nodes the rules' ids were a tenth of a GB of keys)."""
    return (d.backend, d.available, d.reason, tuple(
        (tn, tuple((cn, c.policy, tuple(c.counters) if c.counters is not None else None, len(c.rules),
                    hash(tuple(map(id, c.rules))))
                   for cn, c in t.chains.items()))
        for tn, t in d.tables.items()))


def _same_rules(a: IptablesDump, b: IptablesDump) -> bool:
    """Whether two dumps hold the same rule objects in the same chains (what ``_dump_key`` stands for)."""
    if (a.backend, a.available, a.reason) != (b.backend, b.available, b.reason) or list(a.tables) != list(b.tables):
        return False
    for t, u in zip(a.tables.values(), b.tables.values(), strict=True):
        if list(t.chains) != list(u.chains):
            return False
        for c, e in zip(t.chains.values(), u.chains.values(), strict=True):
            if (c.policy, c.counters) != (e.policy, e.counters) or len(c.rules) != len(e.rules):
                return False
            if any(x is not y for x, y in zip(c.rules, e.rules, strict=True)):
                return False
    return True


def shared_netfilter(dump: IptablesDump | None, pool: dict | None) -> NetfilterFacts:
    """The facts of ``dump``, one object (and one set of indexes and walks) for every node whose dump
    holds the same rules (``pool``: shared by the nodes of a cluster; None: the node's own)."""
    if pool is None or dump is None:
        return NetfilterFacts(dump)
    seen = pool.get(id(dump))  # the same dump (read once for several nodes: model.sharing)
    if seen is not None:
        return seen[1]
    same = pool.setdefault(_dump_key(dump), [])  # the facts of the dumps with this key (one, unless hashes met)
    f = next((g for g in same if g.dump is not None and _same_rules(g.dump, dump)), None)
    if f is None:
        f = NetfilterFacts(dump)
        same.append(f)
    pool[id(dump)] = (dump, f)  # the dump kept with it: its id is not reused while the pool lives
    return f


@dataclass
class NodeFacts:
    """One node's facts: the host's (``host``) and each namespace's (``ns``), each built on first use.
    ``shared``: a pool the nodes of a cluster share, where equal rules give one NetfilterFacts."""

    snap: Snapshot
    shared: dict | None = field(default=None, repr=False)
    host: NsFacts = field(init=False)
    nft: NftFacts = field(init=False)  # the host's native nftables rules
    _ns: dict[int, NsFacts] = field(default_factory=dict, repr=False)
    _overlay: OverlayFacts | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._host()

    def join(self, shared: dict) -> None:
        """Share ``shared`` (a pool of the cluster's nodes) from now on; before any namespace's facts are asked."""
        self.shared = shared
        self._host()

    def _host(self) -> None:
        h = self.snap.host
        self.nft = NftFacts(h.nftables)
        self.host = NsFacts(
            "host",
            shared_netfilter(h.iptables, self.shared),
            shared_netfilter(h.iptables_other, self.shared),
            IpvsFacts(None),
            [
                Address(i.name, a.address, a.prefixlen, f"host: {i.name} inet {a.address}/{a.prefixlen}")
                for i in h.interfaces
                for a in i.addresses
                if a.family == 4
            ],
        )

    @property
    def engine_backend(self) -> str | None:
        """The iptables backend the engine uses (nft or legacy), where known."""
        b = self.snap.node.iptables
        return b.engine_backend if b else None

    @property
    def overlay(self) -> OverlayFacts:
        """The overlay data plane's facts (swarmscope.facts.overlay), built on first use."""
        if self._overlay is None:
            self._overlay = overlay_facts(self.snap)
        return self._overlay

    def ns(self, ns: Namespace) -> NsFacts:
        """The facts of namespace ``ns`` (one of this node's)."""
        f = self._ns.get(id(ns))
        if f is None:
            f = self._ns[id(ns)] = NsFacts(
                ns.name,
                shared_netfilter(ns.iptables, self.shared),
                shared_netfilter(ns.iptables_other, self.shared),
                IpvsFacts(ns.ipvs),
                _addresses(ns),
            )
        return f


def facts_for(snap: Snapshot) -> NodeFacts:
    """A node's facts. Build it once per node and keep it (the correlator memoises it per node): its
    indexes are built on first use and serve every port, VIP and real server after."""
    return NodeFacts(snap)


__all__ = [
    "Address", "FwmService", "IpvsFacts", "NetfilterFacts", "NftFacts", "NodeFacts", "NsFacts", "OverlayFacts",
    "RealServer", "facts_for",
]
