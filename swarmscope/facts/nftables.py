"""Native nftables facts of the host namespace (pure): the only place that reads nft rules.

The ruleset (``HostNamespace.nftables``, parse/nftables.py) holds every table nft lists; the tables
iptables-nft made are read through iptables-nft-save already (facts/netfilter.py) and are left out
here, so no rule is judged twice. What remains is what firewalld, ufw or an operator wrote natively.

A packet is walked through each native base chain on a hook, in priority order, with the same walker
as iptables chains (facts/walk.py): each nft chain becomes the iptables model's ``Table``/``Chain``/``Rule``
(the parser already put the rules' conditions in that model's terms), verdicts become targets
(accept -> ACCEPT, drop -> DROP, reject -> REJECT, jump/goto CHAIN, return -> RETURN). In netfilter an
accept ends only the base chain it is in: the packet goes on to the next base chain on the hook (and to
iptables' chains), while a drop anywhere is final. So every base chain is walked, whatever its priority,
and a drop in any of them stops the packet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from swarmscope.facts import walk as _walk
from swarmscope.facts.walk import Packet
from swarmscope.model import Chain, NftChain, NftRule, NftRuleset, NftTable, Rule, Table

#: the hooks a packet to the host itself passes, in order
LOCAL_IN_HOOKS = ("prerouting", "input")
FORWARD_HOOK = "forward"
#: the families whose base chains see IPv4 packets
IPV4_FAMILIES = ("ip", "inet")
_TARGETS = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN", "queue": "QUEUE"}


@dataclass(frozen=True, slots=True)
class NftWalked:
    """Where a packet entering native base chain ``table`` ``chain`` (on ``hook``, at ``priority``) ends:
    ``verdict`` accept | drop | policy-accept | policy-drop | unknown (facts.walk), ``evidence`` the deciding
    rule as nft prints it with its handle (None for a policy), in chain ``decided_in``; ``maybe`` how many
    rules that might have matched were passed over."""

    table: str  # "inet fwtest"
    chain: str
    hook: str
    priority: int | None
    verdict: str
    decided_in: str | None
    evidence: str | None
    trail: tuple[str, ...] = ()
    maybe: int = 0
    maybe_pass: int = 0  # of ``maybe``, the rules that might have let it through (an accept, a jump)

    @property
    def where(self) -> str:
        return f"nft {self.table} {self.chain} (hook {self.hook} priority {self.priority})"

    @property
    def drops(self) -> bool:
        """Whether it certainly drops the packet: a drop/reject rule that matched, or policy drop, with no rule
        passed over before it that might have let the packet through (a set lookup, a mark: it could hold the
        peers), so a drop is never claimed from a guess."""
        return ((self.verdict == "drop" and self.evidence is not None) or self.verdict == "policy-drop") and (
            not self.maybe_pass
        )


def rule_text(r: NftRule) -> str:
    """A rule as evidence: nft's text and the handle that names it (``nft delete rule ... handle N``)."""
    return f"{r.expr} # handle {r.handle}" if r.handle is not None else r.expr


def _as_table(t: NftTable) -> Table:
    """The nft table in the iptables model, for the walker."""
    chains: dict[str, Chain] = {}
    for c in t.chains:
        rules = []
        for r in c.rules:
            target = _TARGETS.get(r.verdict or "") if r.verdict not in ("jump", "goto", "xt") else r.target
            rules.append(Rule(chain=c.name, line=rule_text(r), params=r.params, matches=r.matches, target=target,
                              goto=r.verdict == "goto"))
        policy = None if c.hook is None else ("DROP" if c.policy == "drop" else "ACCEPT")
        chains[c.name] = Chain(name=c.name, policy=policy, rules=rules)
    return Table(name=f"{t.family} {t.name}", chains=chains)


@dataclass
class NftFacts:
    """The native nftables facts of one ruleset (the host's); ``read`` False where it was not read."""

    ruleset: NftRuleset | None
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def read(self) -> bool:
        return self.ruleset is not None and self.ruleset.available

    @property
    def reason(self) -> str | None:
        """Why the ruleset is not there (None: it was read, or never asked for: an older snapshot)."""
        return self.ruleset.reason if self.ruleset is not None and not self.ruleset.available else None

    def _once(self, key, make: Callable):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def native_tables(self) -> list[NftTable]:
        """The tables iptables-nft did not make."""
        if not self.read or self.ruleset is None:
            return []
        return [t for t in self.ruleset.tables if not t.iptables]

    def iptables_tables(self) -> list[NftTable]:
        """The tables iptables-nft made (seen through iptables-nft-save)."""
        if not self.read or self.ruleset is None:
            return []
        return [t for t in self.ruleset.tables if t.iptables]

    def base_chains(self, hook: str, families: tuple[str, ...] = IPV4_FAMILIES) -> list[tuple[NftTable, NftChain]]:
        """The native base chains on ``hook`` of tables in ``families``, in priority order."""

        def make() -> list[tuple[NftTable, NftChain]]:
            found = [(t, c) for t in self.native_tables() if t.family in families for c in t.chains if c.hook == hook]
            found.sort(key=lambda tc: tc[1].priority if tc[1].priority is not None else 0)
            return found

        return self._once(("base", hook, families), make)

    def walk(self, hook: str, packet: Packet) -> list[NftWalked]:
        """``packet`` walked through every native IPv4 base chain on ``hook``, in priority order (memoised)."""

        def make() -> list[NftWalked]:
            out = []
            for t, c in self.base_chains(hook):
                table = self._once(("table", id(t)), lambda t=t: _as_table(t))
                compiled = self._once(("compiled", id(t)), dict)
                w = _walk.walk(table, c.name, packet, compiled)
                out.append(NftWalked(f"{t.family} {t.name}", c.name, hook, c.priority, w.verdict, w.chain,
                                     w.rule.line if w.rule else None, tuple(w.trail), len(w.maybe),
                                     _walk.maybe_pass(w)))
            return out

        return self._once(("walk", hook, packet), make)

    def reads_source(self) -> bool:
        """Whether a rule on the way to a local socket (the base chains of LOCAL_IN_HOOKS and what they jump
        to) tests the source address (``walk.reads_source``)."""
        def make() -> bool:
            return any(_walk.reads_source(self._once(("table", id(t)), lambda t=t: _as_table(t)), c.name)
                       for hook in LOCAL_IN_HOOKS for t, c in self.base_chains(hook))

        return self._once("reads_source", make)

    def drop(self, hook: str, packet: Packet) -> NftWalked | None:
        """The first native base chain on ``hook`` that certainly drops ``packet``, or None."""
        return next((w for w in self.walk(hook, packet) if w.drops), None)

    def drop_to_local(self, packet: Packet) -> NftWalked | None:
        """The first native base chain on the way to a local socket that certainly drops ``packet``."""
        return next((d for hook in LOCAL_IN_HOOKS if (d := self.drop(hook, packet)) is not None), None)

    def drop_forwarded(self, packet: Packet) -> NftWalked | None:
        """The first native base chain on the forward hook that certainly drops ``packet``."""
        return self.drop(FORWARD_HOOK, packet)

    def forward_walks(self, packet: Packet) -> list[NftWalked]:
        return self.walk(FORWARD_HOOK, packet)


__all__ = ["FORWARD_HOOK", "IPV4_FAMILIES", "LOCAL_IN_HOOKS", "NftFacts", "NftWalked", "rule_text"]
