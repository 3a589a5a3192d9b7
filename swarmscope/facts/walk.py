"""Walk one packet through parsed iptables rules, the way the kernel would (pure).

Enough of netfilter's matching to answer "what happens to a new connection to a
published port in filter FORWARD": protocol, interfaces (with ``+`` wildcards
and ``!``), destination address, ports (tcp/udp/multiport), connection state
(conntrack/state) and addrtype. Every match is three-valued: it matches, it
does not, or the rules cannot tell (a source address, an ipset, a mark). A rule
decides the packet only when it certainly matches; a rule that only might is
recorded and passed over, so a verdict is never claimed from a guess.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmscope.model import Rule, Table

#: interfaces Docker creates: a packet "from another host" never enters on one of them
DOCKER_BRIDGES = ("docker_gwbridge", "docker0", "br-")
TERMINAL = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "drop"}
#: protocol numbers as iptables and nft may print them, by name
PROTO_NAMES = {"6": "tcp", "17": "udp", "50": "esp", "1": "icmp", "132": "sctp"}
#: the ports a client's side of a connection comes from (Linux's default ip_local_port_range)
EPHEMERAL = range(32768, 61000)
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Packet:
    proto: str  # tcp | udp
    dport: int | None
    sport: int | None = None
    in_iface: str | None = None  # None: an interface of the host's own, not a Docker bridge
    out_iface: str | None = None
    dst: str | None = None
    state: str = "NEW"  # NEW | ESTABLISHED | RELATED
    dst_local: bool = False  # addrtype LOCAL of the destination
    src: str | None = None  # None: any address (a rule testing the source cannot be decided)


@dataclass
class Walk:
    verdict: str  # accept | drop | policy-accept | policy-drop | unknown
    rule: Rule | None = None  # the rule that decided
    chain: str | None = None  # where it sits
    trail: list[str] = field(default_factory=list)  # chains entered, in order
    maybe: list[tuple[str, Rule]] = field(default_factory=list)  # rules that might have matched, passed over


def _iface(pattern: str, actual: str | None) -> bool | None:
    if actual is not None:
        return actual.startswith(pattern[:-1]) if pattern.endswith("+") else actual == pattern
    # unknown: some interface of the host's own that is not a Docker bridge
    bare = pattern[:-1] if pattern.endswith("+") else pattern
    if pattern.endswith("+"):
        if not bare:
            return True
        return False if any(bare.startswith(x) for x in DOCKER_BRIDGES) else None
    return False if bare in DOCKER_BRIDGES[:2] or bare.startswith("br-") else None


def _ports(spec: str | None) -> set[int]:
    out: set[int] = set()
    for part in (spec or "").split(","):
        lo, _, hi = part.partition(":")
        if (
            lo.isascii()
            and lo.isdigit()
            and len(lo) <= 5
            and (not hi or (hi.isascii() and hi.isdigit() and len(hi) <= 5))
        ):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


_PORT_SETS: dict[str | None, frozenset[int]] = {}


def _port_set(spec: str | None) -> frozenset[int]:
    """``_ports`` as a frozenset, once per spelling (every node's rules name the same ports). Only small
    sets are kept, and only so many: a range such as 1:65535 is built again, not held for the process."""
    hit = _PORT_SETS.get(spec)
    if hit is not None:
        return hit
    out = frozenset(_ports(spec))
    if len(out) <= 64:
        if len(_PORT_SETS) >= 1 << 14:
            _PORT_SETS.clear()
        _PORT_SETS[spec] = out
    return out


@functools.lru_cache(maxsize=1 << 12)
def _network(val: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(val, strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 14)
def _address(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(addr)


def _compile(r: Rule) -> list:
    """The rule's conditions as functions of a packet (True, False, None), the cheap and selective
    ones (ports, protocol) first, so most rules are rejected at the first test."""
    first: list[Callable[[Packet], bool | None]] = []
    rest: list[Callable[[Packet], bool | None]] = []

    def cond(fn, negated: bool, into: list) -> None:
        into.append((lambda p: None if (v := fn(p)) is None else not v) if negated else fn)

    for o in r.params:
        val = o.value or ""
        if o.opt == "-p":
            proto = PROTO_NAMES.get(val, val.lower())
            cond(lambda p, proto=proto: proto in (p.proto, "all"), o.negated, first)
        elif o.opt in ("-i", "-o"):
            attr = "in_iface" if o.opt == "-i" else "out_iface"
            cond(lambda p, val=val, attr=attr: _iface(val, getattr(p, attr)), o.negated, rest)
        elif o.opt == "-d":
            net = _network(val)
            any_addr = val.split("/")[-1] == "0"
            cond(
                lambda p, net=net, any_addr=any_addr: (
                    True if any_addr else (None if net is None or not p.dst else _address(p.dst) in net)
                ),
                o.negated,
                rest,
            )
        elif o.opt == "-s":
            net = _network(val)
            any_addr = val.split("/")[-1] == "0"
            cond(
                lambda p, net=net, any_addr=any_addr: (
                    True if any_addr else (None if net is None or not p.src else _address(p.src) in net)
                ),
                o.negated,
                rest,
            )
        else:
            rest.append(lambda p: None)
    for m in r.matches:
        for o in m.options:
            if o.opt in ("--dport", "--dports", "--destination-port", "--destination-ports"):
                ports = _port_set(o.value)
                cond(lambda p, ports=ports: None if p.dport is None else p.dport in ports, o.negated, first)
            elif o.opt in ("--sport", "--sports", "--source-port", "--source-ports"):
                ports = _port_set(o.value)
                cond(lambda p, ports=ports: None if p.sport is None else p.sport in ports, o.negated, first)
            elif o.opt in ("--ctstate", "--state"):
                states = frozenset((o.value or "").split(","))
                cond(lambda p, states=states: p.state in states, o.negated, rest)
            elif o.opt == "--dst-type":
                local = o.value == "LOCAL"
                cond(lambda p, local=local: p.dst_local if local else None, o.negated, rest)
            elif m.module == "comment":
                continue
            else:
                rest.append(lambda p: None)
        if not m.options and m.module not in ("tcp", "udp", "comment", "conntrack", "state", "multiport"):
            rest.append(lambda p: None)
    return first + rest


def reads_source(t: Table, start: str) -> bool:
    """Whether a rule of ``t`` that a packet entering chain ``start`` can reach (through its jumps and gotos)
    tests the packet's source address (``-s``): the only condition of ``_compile`` that reads ``Packet.src``.
    Where none does, a walk from ``start`` ends the same for every source."""
    seen, todo = {start}, [start]
    while todo:
        c = t.chains.get(todo.pop())
        for r in c.rules if c is not None else ():
            if any(o.opt == "-s" for o in r.params):
                return True
            if r.target and r.target in t.chains and r.target not in seen:
                seen.add(r.target)
                todo.append(r.target)
    return False


def matches(r: Rule, p: Packet, compiled: dict | None = None) -> bool | None:
    """True, False, or None where the rule's conditions cannot be decided from the packet.

    ``compiled``: a cache (by rule identity) of compiled conditions, for walking many packets."""
    conds = compiled.get(id(r)) if compiled is not None else None
    if conds is None:
        conds = _compile(r)
        if compiled is not None:
            compiled[id(r)] = conds
    unknown = False
    for c in conds:
        v = c(p)
        if v is False:
            return False
        if v is None:
            unknown = True
    return None if unknown else True


def walk(t: Table, chain: str, p: Packet, compiled: dict | None = None) -> Walk:
    """Where ``p`` ends when it enters built-in ``chain`` of ``t`` (``compiled``: see matches)."""
    w = Walk(verdict="unknown")
    decided = _walk(t, chain, p, w, 0, {} if compiled is None else compiled)
    if decided:
        return w
    c = t.chains.get(chain)
    policy = (c.policy if c else None) or "ACCEPT"
    w.verdict, w.chain = ("policy-drop" if policy == "DROP" else "policy-accept"), chain
    return w


def maybe_pass(w: Walk) -> int:
    """How many of the rules passed over as "might match" could have let the packet through (not a DROP/REJECT)."""
    return sum(1 for _, r in w.maybe if r.target not in ("DROP", "REJECT"))


def _walk(t: Table, chain: str, p: Packet, w: Walk, depth: int, compiled: dict) -> bool:
    """True when a rule decided the packet (w filled); False when it fell off or RETURNed."""
    if depth > MAX_DEPTH:
        w.verdict, w.chain = "unknown", chain
        return True
    w.trail.append(chain)
    for r in _candidates(t, chain, p, compiled):
        m = matches(r, p, compiled)
        if m is False:
            continue
        tgt = r.target
        if m is None:
            if tgt in TERMINAL or tgt in t.chains:
                w.maybe.append((chain, r))
            continue
        if tgt in TERMINAL:
            w.verdict, w.rule, w.chain = TERMINAL[tgt], r, chain
            return True
        if tgt == "RETURN":
            return False
        if tgt and tgt in t.chains:
            if _walk(t, tgt, p, w, depth + 1, compiled):
                return True
            if r.goto:
                return False
    return False


def _positive_ports(r: Rule, opts: tuple[str, ...]) -> frozenset | None:
    for m in r.matches:
        for o in m.options:
            if o.opt in opts and not o.negated:
                return _port_set(o.value)
    return None


_DPORT = ("--dport", "--dports", "--destination-port", "--destination-ports")
_SPORT = ("--sport", "--sports", "--source-port", "--source-ports")


def _candidates(t: Table, chain: str, p: Packet, compiled: dict) -> list[Rule]:
    """The rules of ``chain`` that could match ``p`` by its ports, in order: a chain with one rule per
    published port is indexed once, so walking every port costs rules + ports, not rules x ports."""
    key = ("candidates", id(t), chain, p.dport, p.sport)
    hit = compiled.get(key)
    if hit is not None:
        return hit
    index = compiled.get(("index", id(t), chain))
    if index is None:
        generic: list[int] = []
        by_dport: dict[int, list[int]] = {}
        by_sport: dict[int, list[int]] = {}
        for i, r in enumerate(t.rules(chain)):
            d, s_ = _positive_ports(r, _DPORT), _positive_ports(r, _SPORT)
            if d is not None:
                for port in d:
                    by_dport.setdefault(port, []).append(i)
            elif s_ is not None:
                for port in s_:
                    by_sport.setdefault(port, []).append(i)
            else:
                generic.append(i)
        # the rules an unknown (ephemeral) port can match, once per chain
        eph_d = frozenset(i for port, v in by_dport.items() if port in EPHEMERAL for i in v)
        eph_s = frozenset(i for port, v in by_sport.items() if port in EPHEMERAL for i in v)
        index = compiled[("index", id(t), chain)] = (frozenset(generic), by_dport, by_sport, eph_d, eph_s)
    generic_set, by_dport, by_sport, eph_d, eph_s = index
    rules = t.rules(chain)
    # an unknown port (a client's) is an ephemeral one: rules for ports outside that range cannot match it
    picked = sorted(
        generic_set.union(
            by_dport.get(p.dport, ()) if p.dport is not None else eph_d,
            by_sport.get(p.sport, ()) if p.sport is not None else eph_s,
        )
    )
    out = compiled[key] = [rules[i] for i in picked]
    return out
