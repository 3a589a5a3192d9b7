"""Parse ``iptables -L`` listings (``-nL``, ``-nvL``, ``--line-numbers``, one chain or a table) (pure).

swarmscope itself reads rules with ``iptables-save``; this parser is for what users paste and
what moby's ``support.sh`` prints (``iptables -w1 -n -v -L -t TABLE``). Each rule becomes the
same :class:`Rule` ``iptables-save`` would give (``-p``/``-s``/``-d``/``-i``/``-o``, ``-m`` matches,
``-j`` target and its options), so the correlator judges it the same way. ``Rule.line`` keeps the
listing line as printed (the evidence).

A listing says less than ``iptables-save``, and what it does not say is left out, never guessed:

* without ``-v`` the in/out interface columns are absent (``lossy`` names that);
* without ``-n`` addresses and ports may be names (``anywhere`` is read as no address; a port
  name such as ``http`` stays as printed, so it matches no numeric port);
* recent iptables prints protocol numbers (``0``, ``6``, ``17``), older ones names: both are read;
* the extension text after the columns is what each extension's print function writes; the
  forms Docker's rules use (tcp/udp ports, multiport, addrtype, conntrack/state, ipvs, mark,
  comment, MARK/DNAT/SNAT/REDIRECT/MASQUERADE) are read into options; any other text is kept
  as a match named ``unparsed`` holding the words, and listed in ``unparsed`` of the result.

The columns are split by position of the words: a rule without a target (``-A CHAIN -s X``)
prints an empty target column, recognised by the ``opt`` column (``--``, ``-f``, ``!f``) coming
one word early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from swarmscope.errors import ParseError, is_number, parser
from swarmscope.model import Chain, Rule, RuleMatch, RuleOption, Table

__all__ = ["ListedTable", "parse_iptables_list", "guess_table"]

_CHAIN = re.compile(
    r"^Chain\s+(\S+)\s+\((?:policy\s+(\S+)(?:\s+(\d{1,20}[KMGTPEZY]?)\s+packets,\s+(\d{1,20}[KMGTPEZY]?)\s+bytes)?"
    r"|(\d{1,10})\s+references?|0\s+references)\)\s*$", re.ASCII)
_OPTS = ("--", "-f", "!f")
_PROTO_NUMBERS = {"0": None, "all": None, "6": "tcp", "17": "udp", "1": "icmp", "132": "sctp", "136": "udplite",
                  "33": "dccp", "47": "gre", "50": "esp", "51": "ah", "58": "ipv6-icmp", "4": "ipip"}
_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Z": 10**21, "Y": 10**24}
_PORTOPT = re.compile(r"^(spts?|dpts?):(!?)(\S+)$")
_MATCH_PROTOS = ("tcp", "udp", "sctp", "udplite", "dccp")
_WORD = re.compile(r"\S+")


@dataclass
class ListedTable:
    """A table read from an ``iptables -L`` listing."""

    table: Table
    verbose: bool  # -v: counters and the in/out interface columns were printed
    numeric: bool  # no host/port names seen (anywhere, dpt:http...)
    line_numbers: bool
    unparsed: list[str] = field(default_factory=list)  # extension text not read into options ("line N: text")
    lossy: list[str] = field(default_factory=list)  # what this listing cannot tell, and why


def _count(s: str) -> int | None:
    if s and s[-1] in _SUFFIX and is_number(s[:-1]):
        return int(s[:-1]) * _SUFFIX[s[-1]]
    return int(s) if is_number(s) else None


def _neg(value: str) -> tuple[str, bool]:
    if value.startswith("!") and len(value) > 1:
        return value[1:], True
    return value, False


def _tail(words: list[str], i: int) -> tuple[RuleMatch | None, list[RuleOption], str | None, int]:
    """Read one extension phrase at words[i]: (match or None, target options, comment, next index).

    Returns (None, [], None, i) when nothing known starts at i."""
    w = words[i]
    n = len(words)
    nxt = words[i + 1] if i + 1 < n else ""
    # "! ctstate X", "! ipvs": a negated match flag
    if w == "!" and nxt in ("ctstate", "ipvs", "state"):
        m, t, c, j = _tail(words, i + 1)
        if m is not None and m.options:
            m.options[0].negated = True
        return m, t, c, j
    if w in _MATCH_PROTOS and _PORTOPT.match(nxt or ""):
        opts = []
        j = i + 1
        while j < n and (pm := _PORTOPT.match(words[j])):
            kind, bang, val = pm.groups()
            opt = "--sport" if kind.startswith("s") else "--dport"
            opts.append(RuleOption(opt, val, bool(bang)))
            j += 1
        return RuleMatch(w, opts), [], None, j
    if w in _MATCH_PROTOS and nxt.startswith(("flags:", "option=")):
        return (
            RuleMatch(
                w,
                [
                    RuleOption(
                        "--tcp-flags" if nxt.startswith("flags:") else "--tcp-option",
                        nxt.split(":", 1)[-1].split("=", 1)[-1],
                    )
                ],
            ),
            [],
            None,
            i + 2,
        )
    if w == "multiport" and nxt in ("dports", "sports", "ports") and i + 2 < n:
        val, negated = _neg(words[i + 2])
        j = i + 3
        if words[i + 2] == "!" and i + 3 < n:
            val, negated, j = words[i + 3], True, i + 4
        return RuleMatch("multiport", [RuleOption(f"--{nxt}", val, negated)]), [], None, j
    if w == "ADDRTYPE" and nxt == "match":
        opts = []
        j = i + 2
        while j + 1 < n and words[j] in ("src-type", "dst-type"):
            val, negated = _neg(words[j + 1])
            opts.append(RuleOption(f"--{words[j]}", val, negated))
            j += 2
            if j < n and words[j] in ("limit-in", "limit-out"):
                opts.append(RuleOption(f"--{words[j]}"))
                j += 1
        return RuleMatch("addrtype", opts), [], None, j
    if (
        w in ("ctstate", "ctstatus", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst", "ctdir")
        and i + 1 < n
    ):
        return RuleMatch("conntrack", [RuleOption(f"--{w}", nxt)]), [], None, i + 2
    if w == "state" and i + 1 < n:
        return RuleMatch("state", [RuleOption("--state", nxt)]), [], None, i + 2
    if w == "ipvs":
        opts = [RuleOption("--ipvs")]
        j = i + 1
        while j + 1 < n and words[j] in ("vaddr", "vport", "vdir", "vmethod", "vportctl", "proto"):
            if words[j] == "vdir":
                opts.append(RuleOption("--vdir", words[j + 1]))
            elif words[j] == "vmethod":
                opts.append(RuleOption("--vmethod", words[j + 1]))
            else:
                val, negated = _neg(words[j + 1])
                opts.append(RuleOption(f"--{words[j]}", val, negated))
            j += 2
        return RuleMatch("ipvs", opts), [], None, j
    if w == "mark" and nxt == "match" and i + 2 < n:
        val, negated = _neg(words[i + 2])
        return RuleMatch("mark", [RuleOption("--mark", val, negated)]), [], None, i + 3
    if w == "/*":
        try:
            end = words.index("*/", i + 1)
        except ValueError:
            return None, [], None, i
        return (
            RuleMatch("comment", [RuleOption("--comment", " ".join(words[i + 1 : end]))]),
            [],
            " ".join(words[i + 1 : end]),
            end + 1,
        )
    # targets
    if w == "MARK" and nxt in ("set", "xset", "and", "or", "xor") and i + 2 < n:
        val = words[i + 2]
        if nxt == "set":
            return None, [RuleOption("--set-xmark", val if "/" in val else f"{val}/0xffffffff")], None, i + 3
        if nxt == "xset":
            return None, [RuleOption("--set-xmark", val)], None, i + 3
        return None, [RuleOption(f"--{nxt}-mark", val)], None, i + 3
    if w.startswith("to:") and len(w) > 3:
        return None, [RuleOption("--to", w[3:])], None, i + 1
    if w == "redir" and nxt == "ports" and i + 2 < n:
        return None, [RuleOption("--to-ports", words[i + 2])], None, i + 3
    if w == "masq" and nxt == "ports:" and i + 2 < n:
        return None, [RuleOption("--to-ports", words[i + 2])], None, i + 3
    if w == "reject-with" and i + 1 < n:
        return None, [RuleOption("--reject-with", nxt)], None, i + 2
    if w in ("random", "random-fully", "persistent"):
        return None, [RuleOption(f"--{w}")], None, i + 1
    return None, [], None, i


def _extensions(rule: Rule, text: str, proto: str | None) -> list[str]:
    """Read the extension text of a rule into ``rule``; returns the words not understood."""
    words = text.split()
    i = 0
    unknown: list[str] = []
    while i < len(words):
        m, topts, comment, j = _tail(words, i)
        if j == i:
            unknown.append(words[i])
            i += 1
            continue
        if m is not None:
            rule.matches.append(m)
        if comment is not None:
            rule.comment = comment
        for o in topts:
            if o.opt == "--to":  # DNAT/SNAT print "to:" alike; the target says which
                o.opt = "--to-source" if rule.target == "SNAT" else "--to-destination"
            rule.target_options.append(o)
        i = j
    if unknown:
        rule.matches.append(RuleMatch("unparsed", [RuleOption("--text", " ".join(unknown))]))
    return unknown


def guess_table(chains: list[str]) -> str | None:
    """The table a listing of these chains most likely is, from the built-in chains it has."""
    s = set(chains)
    if "FORWARD" in s and s & {"PREROUTING", "POSTROUTING"}:
        return "mangle"
    if s & {"PREROUTING", "POSTROUTING"}:
        return "nat"
    if s & {"INPUT", "FORWARD", "OUTPUT"}:
        return "filter"
    return None


@parser("iptables -L")
def parse_iptables_list(text: str, table: str | None = None) -> ListedTable:
    """One table from an ``iptables [-t T] [-n] [-v] [-x] [--line-numbers] -L [CHAIN]`` listing.

    ``table``: the table the listing was made of, when the command line says (else it is
    guessed from the built-in chains, and ``lossy`` says so). Lines before the first
    ``Chain`` line that are not part of a listing raise ParseError; a rule line without a
    chain, or that does not have the columns of its header, raises ParseError naming it.
    """
    chains: dict[str, Chain] = {}
    cur: Chain | None = None
    header: list[str] | None = None
    res = ListedTable(table=Table(name=table or "?"), verbose=False, numeric=True, line_numbers=False)
    seen_rule = False
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("# Warning:") or s.startswith("#"):
            continue
        m = _CHAIN.match(s)
        if m:
            name, policy, pk, by, _refs = m.groups()
            cur = chains.setdefault(name, Chain(name=name, policy=policy))
            if pk is not None:
                cur.counters = [_count(pk) or 0, _count(by) or 0]
            header = None
            continue
        if s.startswith("Chain "):
            raise ParseError("iptables -L", lineno, line, "a Chain line of an unknown form")
        words = [(mm.start(), mm.group()) for mm in _WORD.finditer(line)]
        first = words[0][1]
        if first in ("target", "num", "pkts"):
            header = [w for _, w in words]
            if "target" not in header or "source" not in header:
                raise ParseError("iptables -L", lineno, line, "a column header without target/source")
            res.verbose = res.verbose or "pkts" in header
            res.line_numbers = res.line_numbers or header[0] == "num"
            continue
        if cur is None:
            raise ParseError("iptables -L", lineno, line, "a rule line before any 'Chain' line")
        if header is None:
            raise ParseError("iptables -L", lineno, line, "a rule line before the column header")
        seen_rule = True
        rule = _rule(cur.name, line, words, header, lineno, res)
        cur.rules.append(rule)
    if not chains:
        raise ParseError("iptables -L", 0, "", "no 'Chain' line: not an iptables -L listing")
    if table is None:
        guess = guess_table(list(chains))
        res.table.name = guess or "?"
        res.lossy.append(
            f"the table is not named by the command; {'taken to be ' + guess if guess else 'unknown'} from its chains"
        )
    res.table.chains = chains
    if not res.verbose and seen_rule:
        res.lossy.append("listed without -v: in/out interfaces and counters are not shown")
    if not res.numeric:
        res.lossy.append("listed without -n: addresses and ports may be names (a named port matches no number)")
    return res


def _rule(
    chain: str, line: str, words: list[tuple[int, str]], header: list[str], lineno: int, res: ListedTable
) -> Rule:
    k = 0
    vals = [w for _, w in words]
    rule = Rule(chain=chain, line=line.strip())  # as printed, without the column padding before it
    if header[0] == "num":
        k += 1
    if "pkts" in header:
        if len(vals) < k + 2:
            raise ParseError("iptables -L", lineno, line, "fewer columns than the header")
        p, b = _count(vals[k]), _count(vals[k + 1])
        if p is None or b is None:
            raise ParseError("iptables -L", lineno, line, "packet/byte counters are not numbers")
        rule.counters = [p, b]
        k += 2
    # target (may be empty) prot opt
    if len(vals) > k + 1 and vals[k + 1] in _OPTS:
        target = None
        prot_i = k
    elif len(vals) > k + 2 and vals[k + 2] in _OPTS:
        target = vals[k]
        prot_i = k + 1
    else:
        raise ParseError("iptables -L", lineno, line, "no 'opt' column (--) where the header has one")
    rule.target = target or None
    prot, pneg = _neg(vals[prot_i])
    if prot not in _PROTO_NUMBERS or _PROTO_NUMBERS[prot] is not None:
        name = _PROTO_NUMBERS.get(prot, prot)
        rule.params.append(RuleOption("-p", name, pneg))
    opt = vals[prot_i + 1]
    if opt in ("-f", "!f"):
        rule.params.append(RuleOption("-f", None, opt == "!f"))
    i = prot_i + 2
    if "in" in header:
        if len(vals) < i + 4:
            raise ParseError("iptables -L", lineno, line, "fewer columns than the header")
        for flag, v in (("-i", vals[i]), ("-o", vals[i + 1])):
            if v != "*":
                name, neg = _neg(v)
                rule.params.append(RuleOption(flag, name, neg))
        i += 2
    if len(vals) < i + 2:
        raise ParseError("iptables -L", lineno, line, "no source/destination columns")
    for flag, v in (("-s", vals[i]), ("-d", vals[i + 1])):
        addr, neg = _neg(v)
        if addr in ("0.0.0.0/0", "::/0"):
            continue
        if addr == "anywhere":
            res.numeric = False
            continue
        if re.match(r"^\d{1,3}(\.\d{1,3}){3}$", addr, re.ASCII):
            addr += "/32"  # the listing prints a host address bare; iptables-save (and -S) print /32
        rule.params.append(RuleOption(flag, addr, neg))
    i += 2
    proto = next((o.value for o in rule.params if o.opt == "-p"), None)
    rest = line[words[i][0] :].strip() if i < len(words) else ""
    if rest:
        unknown = _extensions(rule, rest, proto)
        for m in rule.matches:
            for o in m.options:
                if o.opt in ("--dport", "--sport") and o.value and not o.value.replace(":", "").isdigit():
                    res.numeric = False
        if unknown:
            res.unparsed.append(f"line {lineno}: {' '.join(unknown)}")
    return rule
