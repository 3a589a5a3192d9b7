"""Netfilter facts of one network namespace (pure): the only place that reads iptables rules.

Each fact is a frozen dataclass saying what the rules do, in the correlator's terms (a port is DNATed to
an address, a chain is reached from another, a mark is set for a port or an address), and carrying its
``evidence``: the rule's line exactly as the snapshot holds it (iptables-save's text). The chain names
and the rule shapes Docker programs are named here once; the correlator uses these constants where it
shows a chain's name to the user.

Lookups are indexed once per namespace (by protocol and port, by address, by chain): judging a swarm
asks them for every published port and VIP, and must not rescan a chain per port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from swarmscope.facts import walk as _walk
from swarmscope.facts.walk import Packet
from swarmscope.model import IptablesDump, Rule, Table
from swarmscope.parse.iptables import dnat_destination, mark_value

# tables
NAT = "nat"
FILTER = "filter"
MANGLE = "mangle"

# built-in chains
PREROUTING = "PREROUTING"
INPUT = "INPUT"
FORWARD = "FORWARD"
OUTPUT = "OUTPUT"
POSTROUTING = "POSTROUTING"

# the chains Docker programs
DOCKER = "DOCKER"  # nat: host-mode (and bridge) published ports' DNAT
DOCKER_INGRESS = "DOCKER-INGRESS"  # nat: the routing mesh's DNAT; filter: its ACCEPTs
DOCKER_USER = "DOCKER-USER"  # filter: the operator's rules, first in FORWARD
DOCKER_FORWARD = "DOCKER-FORWARD"  # filter (28.x): where FORWARD's Docker jumps moved

#: where nat jumps to DOCKER-INGRESS: packets from outside (PREROUTING) and from the host itself (OUTPUT)
INGRESS_JUMP_CHAINS = (PREROUTING, OUTPUT)
#: every place a jump to DOCKER-INGRESS may sit (table, chains)
INGRESS_JUMP_PLACES = ((NAT, (PREROUTING, OUTPUT)), (FILTER, (FORWARD, DOCKER_FORWARD)))
#: the chains of mangle where the load balancer sets its marks (per port, per VIP)
MARK_CHAINS = (PREROUTING, INPUT)

#: where iptables judges a packet to the host itself, in the order the kernel meets them (table, built-in chain)
LOCAL_IN_CHAINS = (("raw", PREROUTING), (MANGLE, PREROUTING), (MANGLE, INPUT), (FILTER, INPUT))

#: targets that end a packet's walk through nat PREROUTING/OUTPUT
_NAT_TERMINAL = frozenset({"ACCEPT", "RETURN", "DNAT", "REDIRECT", "DROP"})
#: targets that rewrite an address in nat
_NAT_REWRITES = frozenset({"DNAT", "SNAT", "REDIRECT", "MASQUERADE"})


# --------------------------------------------------------------------------
# the facts


@dataclass(frozen=True, slots=True)
class Jump:
    """``table chain`` jumps to ``target``; ``docker`` when it is Docker's own form of the jump
    (`-m addrtype --dst-type LOCAL -j DOCKER-INGRESS`, nothing else restricting it)."""

    table: str
    chain: str
    target: str
    docker: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class Dnat:
    """``proto/port`` is DNATed to ``to_addr:to_port`` in ``table chain`` (to_port None: the same port or
    a range; to_addr "" when only a port is given, None when the rule names no destination)."""

    proto: str
    port: int
    to_addr: str | None
    to_port: int | None
    chain: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Accept:
    """filter ``chain`` accepts ``proto`` with ``--dport`` (``direction`` "dport": new connections to the
    port) or ``--sport`` ("sport": the port's replies)."""

    proto: str
    port: int
    direction: str
    chain: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Mark:
    """mangle ``chain`` sets firewall mark ``mark`` (None: a MARK rule whose mark does not read as a set
    mark) for ``proto/port``, or for destination ``dst``."""

    mark: int | None
    chain: str
    proto: str | None
    port: int | None
    dst: str | None
    evidence: str


@dataclass(frozen=True, slots=True)
class Snat:
    """nat POSTROUTING SNATs packets IPVS forwarded (`-m ipvs --ipvs`) to ``dst`` from ``to_source``."""

    dst: str | None
    to_source: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """nat PREROUTING REDIRECTs ``proto/port`` to ``dst`` onto ``to_ports`` (as printed; None if absent)."""

    proto: str
    port: int
    dst: str
    to_ports: str | None
    evidence: str


@dataclass(frozen=True, slots=True)
class Shadow:
    """A rule in nat ``chain`` before Docker's jump to DOCKER-INGRESS that ends ``proto/port``'s packets
    there (an ACCEPT/RETURN, or an operator's own DNAT/REDIRECT of the port)."""

    chain: str
    proto: str
    port: int
    evidence: str


@dataclass(frozen=True, slots=True)
class Stopper:
    """A DROP/REJECT rule in ``table chain``, with the protocol and destination ports it is restricted to
    (interface and address conditions are not judged: they count as matching)."""

    table: str
    chain: str
    proto: str | None
    proto_negated: bool
    ports: tuple[tuple[frozenset[int], bool], ...]  # (ports, negated) per --dport/--dports option
    evidence: str

    def stops(self, proto: str, port: int) -> bool:
        """Whether it can stop packets of proto/port."""
        if self.proto is not None and (self.proto != proto) != self.proto_negated:
            return False
        return all((port in ports) != negated for ports, negated in self.ports)


@dataclass(frozen=True, slots=True)
class Walked:
    """Where a packet entering a built-in chain ends, walked as the kernel does (facts.walk): ``verdict``
    accept | drop | policy-accept | policy-drop | unknown; ``evidence`` the deciding rule's line (None
    for a policy), in ``chain``; ``trail`` the chains entered; ``maybe`` how many rules that might have
    matched were passed over."""

    verdict: str
    chain: str | None
    evidence: str | None
    trail: tuple[str, ...] = ()
    maybe: int = 0
    maybe_pass: int = 0  # of ``maybe``, the rules that might have let it through (an ACCEPT, a jump), not drops

    @property
    def drops(self) -> bool:
        """Whether it certainly drops the packet: a DROP/REJECT that matched or policy DROP, with no rule passed
        over before it that might have let the packet through (such a rule could hold the peers: a set, a mark)."""
        return ((self.verdict == "drop" and self.evidence is not None) or self.verdict == "policy-drop") and (
            not self.maybe_pass
        )


# --------------------------------------------------------------------------
# reading them


def _docker_jump(r: Rule) -> bool:
    return (
        r.target == DOCKER_INGRESS
        and not r.params
        and [m.module for m in r.matches] == ["addrtype"]
        and r.value("--dst-type") == "LOCAL"
    )


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and v.isascii() and v.isdigit() else None


def _ends(r: Rule, proto: str, port: int) -> bool:
    """Whether a rule ending the walk through nat applies to proto/port."""
    p = r.option("-p")
    if p is not None and (p.value != proto) != p.negated:
        return False
    d = r.option("--dport")
    if d is not None and (d.value != str(port)) != d.negated:
        return False
    if r.has_match("multiport") and str(port) not in (r.value("--dports") or "").replace(":", ",").split(","):
        return False
    return True


def _dport_set(value: str | None) -> frozenset[int]:
    ports: set[int] = set()
    for part in (value or "").split(","):
        lo, _, hi = part.partition(":")
        if lo.isascii() and lo.isdigit() and (not hi or (hi.isascii() and hi.isdigit())):
            ports.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(ports)


@dataclass
class NetfilterFacts:
    """The facts of one iptables dump (one backend of one namespace); ``read`` False when there is none."""

    dump: IptablesDump | None
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def read(self) -> bool:
        return self.dump is not None and self.dump.available

    @property
    def backend(self) -> str | None:
        return self.dump.backend if self.dump is not None else None

    @property
    def rule_count(self) -> int:
        return self.dump.rule_count if self.read and self.dump is not None else 0

    def _once(self, key, make: Callable):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _table(self, name: str) -> Table | None:
        return self.dump.table(name) if self.read and self.dump is not None else None

    def _rules(self, table: str, chain: str) -> list[Rule]:
        t = self._table(table)
        return t.rules(chain) if t is not None else []

    # --- chains

    def chain_names(self, table: str) -> list[str]:
        """The chains of ``table``, in the order iptables-save printed them."""
        t = self._table(table)
        return list(t.chains) if t is not None else []

    def has_chain(self, table: str, chain: str) -> bool:
        t = self._table(table)
        return t is not None and chain in t.chains

    def lines(self, table: str, chain: str) -> list[str]:
        """Every rule of ``table chain`` as printed: the evidence where an expected fact is absent (built
        once per chain; the list is shared, not to be changed)."""
        return self._once(("lines", table, chain), lambda: [r.line for r in self._rules(table, chain)])

    def all_lines(self) -> list[str]:
        """Every rule of every table, in order."""
        if not self.read or self.dump is None:
            return []
        return [r.line for t in self.dump.tables.values() for c in t.chains.values() for r in c.rules]

    def jumps(self, table: str, chain: str, target: str) -> list[Jump]:
        """The rules of ``table chain`` that jump (or go) to ``target``."""
        return self._once(
            ("jumps", table, chain, target),
            lambda: [
                Jump(table, chain, target, _docker_jump(r), r.line)
                for r in self._rules(table, chain)
                if r.target == target
            ],
        )

    def reach_order(self, table: str, start: str) -> list[str]:
        """User chains in the order a packet entering built-in ``start`` first reaches them."""

        def make() -> list[str]:
            t = self._table(table)
            order: list[str] = []
            if t is None:
                return order
            seen = {start}

            def visit(chain: str) -> None:
                for r in t.rules(chain):
                    tgt = r.target
                    if tgt and tgt in t.chains and tgt not in seen:
                        seen.add(tgt)
                        order.append(tgt)
                        visit(tgt)

            visit(start)
            return order

        return self._once(("reach", table, start), make)

    # --- per port: indexed once per (table, chain, target, port option)

    def _by_port(self, table: str, chain: str, target: str, opt: str) -> dict[tuple, list[Rule]]:
        def make() -> dict[tuple, list[Rule]]:
            idx: dict[tuple, list[Rule]] = {}
            for r in self._rules(table, chain):
                if r.target == target:
                    idx.setdefault((r.value("-p"), r.value(opt)), []).append(r)
            return idx

        return self._once(("by_port", table, chain, target, opt), make)

    def dnats(self, proto: str, port: int, chain: str = DOCKER_INGRESS) -> list[Dnat]:
        """``proto/port`` DNATed in nat ``chain`` (DOCKER-INGRESS for the mesh, DOCKER for host mode)."""
        return self._once(("dnats", proto, port, chain), lambda: self._dnats(proto, port, chain))

    def _dnats(self, proto: str, port: int, chain: str) -> list[Dnat]:
        out = []
        for r in self._by_port(NAT, chain, "DNAT", "--dport").get((proto, str(port)), []):
            dest = dnat_destination(r)
            out.append(Dnat(proto, port, dest[0] if dest else None, dest[1] if dest else None, chain, r.line))
        return out

    def accepts(self, proto: str, port: int, direction: str, chain: str = DOCKER_INGRESS) -> list[Accept]:
        """filter ``chain``'s ACCEPTs of ``proto`` by ``direction`` "dport" or "sport" ``port``."""
        return self._once(
            ("accepts", proto, port, direction, chain), lambda: self._accepts(proto, port, direction, chain)
        )

    def _accepts(self, proto: str, port: int, direction: str, chain: str) -> list[Accept]:
        opt = "--dport" if direction == "dport" else "--sport"
        rules = self._by_port(FILTER, chain, "ACCEPT", opt).get((proto, str(port)), [])
        return [Accept(proto, port, direction, chain, r.line) for r in rules]

    def port_marks(self, proto: str, port: int, chain: str = PREROUTING) -> list[Mark]:
        """The marks mangle ``chain`` sets for ``proto`` with ``--dport port`` (ingress_sbox: per published port).
        Made at each call from the index of the chain's rules by port (made once): each node's path of a port
        asks once, and keeping the answers was a list per node path."""
        return self._port_marks(proto, port, chain)

    def _port_marks(self, proto: str, port: int, chain: str) -> list[Mark]:
        rules = self._by_port(MANGLE, chain, "MARK", "--dport").get((proto, str(port)), [])
        return [Mark(mark_value(r), chain, proto, port, r.value("-d"), r.line) for r in rules]

    def dst_marks(self, addr: str, chain: str = INPUT) -> list[Mark]:
        """The marks mangle ``chain`` sets for destination ``addr`` (a VIP; ``-d VIP`` or ``-d VIP/32``)."""

        def make() -> dict[str, list[tuple[int, Rule]]]:
            idx: dict[str, list[tuple[int, Rule]]] = {}
            for i, r in enumerate(self._rules(MANGLE, chain)):  # with its position: a rule read twice is one object
                d = r.value("-d")
                if r.target == "MARK" and d is not None:
                    idx.setdefault(d, []).append((i, r))
            return idx

        idx = self._once(("dst_marks", chain), make)
        bare, cidr = idx.get(addr), idx.get(addr + "/32")
        found = sorted(bare + cidr, key=lambda x: x[0]) if bare and cidr else bare or cidr or []
        return [
            Mark(mark_value(r), chain, r.value("-p"), _int(r.value("--dport")), r.value("-d"), r.line)
            for _, r in found
        ]

    def sets_marks(self, chains: Iterable[str] = MARK_CHAINS) -> bool:
        """Whether mangle sets any mark in ``chains``."""
        return any(r.target == "MARK" for c in chains for r in self._rules(MANGLE, c))

    def redirects(self, proto: str, port: int) -> list[Redirect]:
        """nat PREROUTING's REDIRECTs of ``proto/port`` (a task sandbox: published -> target port; built
        once per port: every real server of the port on every node looks its task's up)."""
        return self._once(("redirects", proto, port), lambda: self._redirects(proto, port))

    def _redirects(self, proto: str, port: int) -> list[Redirect]:
        out = []
        for r in self._by_port(NAT, PREROUTING, "REDIRECT", "--dport").get((proto, str(port)), []):
            out.append(
                Redirect(
                    proto,
                    port,
                    (r.value("-d") or "").split("/")[0],
                    r.value("--to-ports") or r.value("--to-port"),
                    r.line,
                )
            )
        return out

    def ipvs_snats(self) -> list[Snat]:
        """nat POSTROUTING's SNATs of what IPVS forwarded (`-m ipvs --ipvs ... -j SNAT`)."""
        return self._once(
            "ipvs_snats",
            lambda: [
                Snat(r.value("-d"), (r.value("--to-source") or "").split(":")[0], r.line)
                for r in self._rules(NAT, POSTROUTING)
                if r.target == "SNAT" and r.has_match("ipvs")
            ],
        )

    def rewrites_addresses(self) -> bool:
        """Whether nat holds any address rewrite (DNAT, SNAT, REDIRECT, MASQUERADE)."""
        t = self._table(NAT)
        return t is not None and any(r.target in _NAT_REWRITES for c in t.chains.values() for r in c.rules)

    def shadow(self, chain: str, proto: str, port: int) -> Shadow | None:
        """The first rule of nat ``chain`` before Docker's jump to DOCKER-INGRESS that ends proto/port there."""

        def make() -> list[Rule]:
            before = []
            for r in self._rules(NAT, chain):
                if _docker_jump(r):
                    break
                if r.target in _NAT_TERMINAL:
                    before.append(r)
            return before

        for r in self._once(("before_jump", chain), make):
            if _ends(r, proto, port):
                return Shadow(chain, proto, port, r.line)
        return None

    def stoppers(self) -> list[Stopper]:
        """Every DROP/REJECT rule, in table, chain and rule order."""

        def make() -> list[Stopper]:
            out: list[Stopper] = []
            if not self.read or self.dump is None:
                return out
            for t in self.dump.tables.values():
                for c in t.chains.values():
                    for r in c.rules:
                        if r.target not in ("DROP", "REJECT"):
                            continue
                        p = r.option("-p")
                        ports = tuple(
                            (_dport_set(o.value), o.negated)
                            for o in (r.option("--dport"), r.option("--dports"))
                            if o is not None
                        )
                        out.append(
                            Stopper(
                                t.name,
                                c.name,
                                p.value if p is not None else None,
                                p.negated if p is not None else False,
                                ports,
                                r.line,
                            )
                        )
            return out

        return self._once("stoppers", make)

    def reads_source(self) -> bool:
        """Whether a rule on the way to a local socket (LOCAL_IN_CHAINS and what they jump to) tests the
        source address (``walk.reads_source``): where none does, ``drop_to_local`` ends alike for packets
        that differ only by their source."""
        def make() -> bool:
            return any(_walk.reads_source(t, chain) for table, chain in LOCAL_IN_CHAINS
                       if (t := self._table(table)) is not None)

        return self._once("reads_source", make)

    def drop_to_local(self, packet: Packet) -> tuple[str, Walked] | None:
        """(table, walk) of the first built-in chain on the way to a local socket (LOCAL_IN_CHAINS) that
        certainly drops ``packet`` (``Walked.drops``); None where none does."""
        for table, chain in LOCAL_IN_CHAINS:
            if not self.has_chain(table, chain):
                continue
            w = self.walk(table, chain, packet)
            if w.drops:
                return table, w
        return None

    def walk(self, table: str, chain: str, packet: Packet) -> Walked:
        """Where ``packet`` ends when it enters built-in ``table chain`` (memoised per packet)."""
        t = self._table(table)
        if t is None:
            return Walked("unknown", None, None)

        def make() -> Walked:
            compiled = self._once(("compiled", table), dict)
            w = _walk.walk(t, chain, packet, compiled)
            return Walked(w.verdict, w.chain, w.rule.line if w.rule else None, tuple(w.trail), len(w.maybe),
                          _walk.maybe_pass(w))

        return self._once(("walk", table, chain, packet), make)


__all__ = [
    "DOCKER",
    "DOCKER_FORWARD",
    "DOCKER_INGRESS",
    "DOCKER_USER",
    "FILTER",
    "FORWARD",
    "INGRESS_JUMP_CHAINS",
    "INGRESS_JUMP_PLACES",
    "INPUT",
    "LOCAL_IN_CHAINS",
    "MANGLE",
    "MARK_CHAINS",
    "NAT",
    "OUTPUT",
    "POSTROUTING",
    "PREROUTING",
    "Accept",
    "Dnat",
    "Jump",
    "Mark",
    "NetfilterFacts",
    "Packet",
    "Redirect",
    "Shadow",
    "Snat",
    "Stopper",
    "Walked",
]
