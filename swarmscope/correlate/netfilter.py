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

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from swarmscope.model import Rule, Table

#: interfaces Docker creates: a packet "from another host" never enters on one of them
DOCKER_BRIDGES = ("docker_gwbridge", "docker0", "br-")
TERMINAL = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "drop"}
MAX_DEPTH = 16


@dataclass(frozen=True)
class Packet:
    proto: str  # tcp | udp
    dport: Optional[int]
    sport: Optional[int] = None
    in_iface: Optional[str] = None  # None: an interface of the host's own, not a Docker bridge
    out_iface: Optional[str] = None
    dst: Optional[str] = None
    state: str = "NEW"  # NEW | ESTABLISHED | RELATED
    dst_local: bool = False  # addrtype LOCAL of the destination


@dataclass
class Walk:
    verdict: str  # accept | drop | policy-accept | policy-drop | unknown
    rule: Optional[Rule] = None  # the rule that decided
    chain: Optional[str] = None  # where it sits
    trail: list[str] = field(default_factory=list)  # chains entered, in order
    maybe: list[tuple[str, Rule]] = field(default_factory=list)  # rules that might have matched, passed over


def _iface(pattern: str, actual: Optional[str]) -> Optional[bool]:
    if actual is not None:
        return actual.startswith(pattern[:-1]) if pattern.endswith("+") else actual == pattern
    # unknown: some interface of the host's own that is not a Docker bridge
    bare = pattern[:-1] if pattern.endswith("+") else pattern
    if pattern.endswith("+"):
        if not bare:
            return True
        return False if any(bare.startswith(x) for x in DOCKER_BRIDGES) else None
    return False if bare in DOCKER_BRIDGES[:2] or bare.startswith("br-") else None


def _ports(spec: Optional[str]) -> set[int]:
    out: set[int] = set()
    for part in (spec or "").split(","):
        lo, _, hi = part.partition(":")
        if lo.isascii() and lo.isdigit() and len(lo) <= 5 and (not hi or (hi.isascii() and hi.isdigit() and len(hi) <= 5)):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _neg(value: Optional[bool], negated: bool) -> Optional[bool]:
    return value if value is None or not negated else not value


def matches(r: Rule, p: Packet) -> Optional[bool]:
    """True, False, or None where the rule's conditions cannot be decided from the packet."""
    results: list[Optional[bool]] = []
    for o in r.params:
        v: Optional[bool]
        if o.opt == "-p":
            v = (o.value or "").lower() in (p.proto, "all")
        elif o.opt == "-i":
            v = _iface(o.value or "", p.in_iface)
        elif o.opt == "-o":
            v = _iface(o.value or "", p.out_iface)
        elif o.opt == "-d" and p.dst:
            try:
                v = ipaddress.ip_address(p.dst) in ipaddress.ip_network(o.value or "", strict=False)
            except ValueError:
                v = None
        elif o.opt in ("-s", "-d"):
            v = True if (o.value or "").split("/")[-1] == "0" else None
        else:
            v = None
        results.append(_neg(v, o.negated))
    for m in r.matches:
        for o in m.options:
            v = None
            if o.opt in ("--dport", "--dports", "--destination-port", "--destination-ports"):
                v = p.dport in _ports(o.value) if p.dport is not None else None
            elif o.opt in ("--sport", "--sports", "--source-port", "--source-ports"):
                v = p.sport in _ports(o.value) if p.sport is not None else None
            elif o.opt in ("--ctstate", "--state"):
                v = p.state in (o.value or "").split(",")
            elif o.opt == "--dst-type":
                v = (o.value == "LOCAL") == p.dst_local if o.value in ("LOCAL",) else None
            elif m.module == "comment":
                v = True
            results.append(_neg(v, o.negated))
        if not m.options and m.module not in ("tcp", "udp", "comment", "conntrack", "state", "multiport"):
            results.append(None)
    if any(v is False for v in results):
        return False
    if any(v is None for v in results):
        return None
    return True


def walk(t: Table, chain: str, p: Packet) -> Walk:
    """Where ``p`` ends when it enters built-in ``chain`` of ``t``."""
    w = Walk(verdict="unknown")
    decided = _walk(t, chain, p, w, 0)
    if decided:
        return w
    c = t.chains.get(chain)
    policy = (c.policy if c else None) or "ACCEPT"
    w.verdict, w.chain = ("policy-drop" if policy == "DROP" else "policy-accept"), chain
    return w


def _walk(t: Table, chain: str, p: Packet, w: Walk, depth: int) -> bool:
    """True when a rule decided the packet (w filled); False when it fell off or RETURNed."""
    if depth > MAX_DEPTH:
        w.verdict, w.chain = "unknown", chain
        return True
    w.trail.append(chain)
    for r in t.rules(chain):
        m = matches(r, p)
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
            if _walk(t, tgt, p, w, depth + 1):
                return True
            if r.goto:
                return False
    return False
