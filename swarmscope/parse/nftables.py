"""Parse ``nft -j list ruleset`` (libnftables' JSON, schema version 1) into the snapshot model.

Pure: text in, ``NftRuleset`` out, no I/O. The JSON is a list of objects under ``"nftables"``: one
``metainfo``, then ``table``, ``chain``, ``rule`` (and ``set``, ``map``, ``flowtable``, ... which are not
kept). Each rule keeps

- ``expr``: its expressions written back roughly as ``nft list ruleset`` prints them
  (``iifname "eth0" udp dport 4789 counter drop``): the evidence a finding quotes;
- ``verdict`` / ``target``: accept, drop, reject, jump/goto CHAIN, return, queue (None: no verdict,
  the rule only counts or logs);
- ``params`` / ``matches``: the conditions it tests in the iptables model's terms (``-p``, ``-s``,
  ``-d``, ``-i``, ``-o``; ``tcp``/``udp`` ``--dport``/``--sport``, ``multiport --dports``,
  ``conntrack --ctstate``), so facts/walk.py walks an nft chain as it walks an iptables one. An
  expression with no such form (a set lookup of addresses, a mark, a limit, an xt match) is a match of
  module ``nft`` holding its text: the walker can never decide it, so a rule with one is only ever a
  "might match", never a verdict claimed from a guess.

A table is iptables-nft's own (``NftTable.iptables``) when it is one of the xtables tables (filter,
nat, mangle, raw, security in family ip or ip6) or any of its rules holds an ``xt`` expression: those
rules are already read through iptables-nft-save and are not judged a second time, nor kept twice: such a
table keeps its chains (hook, priority, policy) without their rules.
"""

from __future__ import annotations

import json
from typing import Any

from swarmscope.errors import ParseError, parser
from swarmscope.model import NftChain, NftRule, NftRuleset, NftTable, RuleMatch, RuleOption

__all__ = ["XTABLES_TABLES", "parse_nft_json"]

#: the tables iptables-nft (and ip6tables-nft) create, by family
XTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
_XTABLES_FAMILIES = frozenset({"ip", "ip6"})
#: verdict expressions (``{"drop": null}``, ``{"jump": {"target": "X"}}``)
_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue", "continue")
#: transport protocols whose header fields ``PROTO dport`` names
_L4 = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})


def _text(v: Any) -> str:
    """A right-hand side as nft prints it."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    if isinstance(v, dict):
        if "prefix" in v and isinstance(v["prefix"], dict):
            return f"{_text(v['prefix'].get('addr'))}/{_text(v['prefix'].get('len'))}"
        if "range" in v and isinstance(v["range"], list) and len(v["range"]) == 2:
            return f"{_text(v['range'][0])}-{_text(v['range'][1])}"
        if "set" in v:
            items = v["set"] if isinstance(v["set"], list) else [v["set"]]
            return "{ " + ", ".join(_text(x) for x in items) + " }"
        if len(v) == 1:
            (k, inner), = v.items()
            return _left(v) if k in ("meta", "payload", "ct") else f"{k} {_text(inner)}".strip()
    return json.dumps(v, sort_keys=True)


def _left(v: Any) -> str:
    """A left-hand side (what is tested) as nft prints it: ``iifname``, ``udp dport``, ``ct state``."""
    if isinstance(v, dict) and len(v) == 1:
        (k, inner), = v.items()
        if isinstance(inner, dict):
            if k == "meta":
                return str(inner.get("key"))
            if k == "payload":
                if "protocol" in inner:
                    return f"{inner['protocol']} {inner.get('field')}"
                return f"@{inner.get('base')},{inner.get('offset')},{inner.get('len')}"
            if k == "ct":
                return f"ct {inner.get('key')}"
    return _text(v)


def _iface(name: str) -> str:
    """nft's interface wildcard ``eth*`` in iptables' form ``eth+``."""
    return name[:-1] + "+" if name.endswith("*") else name


def _ports(v: Any) -> tuple[str, str] | None:
    """(option, value) of a port match: ``--dport 4789``, ``--dports 80,443,1000:2000``; None if not ports."""
    if isinstance(v, int) and not isinstance(v, bool):
        return "port", str(v)
    if isinstance(v, dict) and "range" in v:
        r = v["range"]
        if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r):
            return "port", f"{r[0]}:{r[1]}"
    if isinstance(v, dict) and "set" in v and isinstance(v["set"], list):
        parts = []
        for x in v["set"]:
            p = _ports(x)
            if p is None:
                return None
            parts.append(p[1])
        return "ports", ",".join(parts)
    return None


def _address(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("prefix"), dict):
        return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
    return None


def _states(v: Any) -> str | None:
    items = v if isinstance(v, list) else (v.get("set") if isinstance(v, dict) else [v])
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        return None
    return ",".join(x.upper() for x in items)


class _Rule:
    """One rule's conditions being built in the iptables model's terms."""

    def __init__(self) -> None:
        self.params: list[RuleOption] = []
        self.matches: list[RuleMatch] = []

    def param(self, opt: str, value: str, negated: bool) -> None:
        if not any(o.opt == opt and o.value == value and o.negated == negated for o in self.params):
            self.params.append(RuleOption(opt, value, negated))

    def match(self, module: str, opt: str, value: str | None, negated: bool = False) -> None:
        self.matches.append(RuleMatch(module, [RuleOption(opt, value, negated)]))

    def unknown(self, text: str) -> None:
        self.match("nft", "--expr", text)


def _condition(m: dict, into: _Rule) -> str:
    """Record one ``match`` expression's condition; return its text."""
    op = m.get("op", "==")
    left, right = m.get("left"), m.get("right")
    lt = _left(left)
    rt = f'"{right}"' if lt in ("iifname", "oifname", "iif", "oif") and isinstance(right, str) else _text(right)
    text = f"{lt} {'' if op in ('==', 'in') else op + ' '}{rt}"
    if op not in ("==", "!=", "in"):
        into.unknown(text)
        return text
    neg = op == "!="
    meta = left.get("meta") if isinstance(left, dict) else None
    payload = left.get("payload") if isinstance(left, dict) else None
    ct = left.get("ct") if isinstance(left, dict) else None
    if isinstance(meta, dict):
        key = meta.get("key")
        if key in ("iifname", "iif") and isinstance(right, str):
            into.param("-i", _iface(right), neg)
            return text
        if key in ("oifname", "oif") and isinstance(right, str):
            into.param("-o", _iface(right), neg)
            return text
        if key == "l4proto" and isinstance(right, (str, int)) and not isinstance(right, bool):
            into.param("-p", str(right), neg)
            return text
        if key == "nfproto" and right == "ipv4" and not neg:
            return text  # an inet table's "IPv4 only": the packets judged are IPv4
    elif isinstance(payload, dict) and "protocol" in payload:
        proto, fld = payload.get("protocol"), payload.get("field")
        if proto == "ip" and fld == "protocol" and isinstance(right, (str, int)) and not isinstance(right, bool):
            into.param("-p", str(right), neg)
            return text
        if proto == "ip" and fld in ("saddr", "daddr"):
            addr = _address(right)
            if addr is not None:
                into.param("-s" if fld == "saddr" else "-d", addr, neg)
                return text
        if (proto in _L4 or proto == "th") and fld in ("dport", "sport"):
            ports = _ports(right)
            if ports is not None:
                if proto != "th":
                    into.param("-p", str(proto), False)  # `udp dport` tests the protocol too
                kind, value = ports
                module = "multiport" if kind == "ports" else (proto if proto != "th" else "nft")
                into.match(module, f"--{fld}{'s' if kind == 'ports' else ''}", value, neg)
                return text
    elif isinstance(ct, dict) and ct.get("key") == "state":
        states = _states(right)
        if states is not None:
            into.match("conntrack", "--ctstate", states, neg)
            return text
    into.unknown(text)
    return text


@parser("nft -j list ruleset")
def parse_nft_json(text: str) -> NftRuleset:
    """The ruleset ``nft -j list ruleset`` printed (``raw`` is left empty: the caller keeps the text)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("nft -j list ruleset", exc.lineno, "", f"not JSON: {exc.msg}") from None
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ParseError("nft -j list ruleset", 0, "", 'no "nftables" list: not the output of nft -j')
    out = NftRuleset()
    tables: dict[tuple[str, str], NftTable] = {}
    chains: dict[tuple[str, str, str], NftChain] = {}
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (kind, body), = item.items()
        if not isinstance(body, dict):
            continue
        if kind == "metainfo":
            out.version = str(body.get("version")) if body.get("version") is not None else None
        elif kind == "table":
            fam, name = str(body.get("family")), str(body.get("name"))
            t = NftTable(family=fam, name=name, handle=_int(body.get("handle")),
                         iptables=fam in _XTABLES_FAMILIES and name in XTABLES_TABLES)
            tables[(fam, name)] = t
            out.tables.append(t)
        elif kind == "chain":
            key = (str(body.get("family")), str(body.get("table")), str(body.get("name")))
            c = NftChain(name=key[2], handle=_int(body.get("handle")), type=_str(body.get("type")),
                         hook=_str(body.get("hook")), priority=_int(body.get("prio")), policy=_str(body.get("policy")))
            chains[key] = c
            owner = tables.get(key[:2])
            if owner is None:  # a chain listed before its table: never from nft, but do not lose it
                owner = tables[key[:2]] = NftTable(family=key[0], name=key[1])
                out.tables.append(owner)
            owner.chains.append(c)
        elif kind == "rule":
            key = (str(body.get("family")), str(body.get("table")), str(body.get("chain")))
            owner_chain = chains.get(key)
            if owner_chain is None:
                continue
            rule = _rule(body)
            owner_chain.rules.append(rule)
            if rule.xt:
                tables[key[:2]].iptables = True
    for t in out.tables:  # iptables-nft's rules are kept as iptables-nft-save printed them (HostNamespace.iptables)
        if t.iptables:
            for c in t.chains:
                c.rules = []
    return out


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _rule(body: dict) -> NftRule:
    got = body.get("expr")
    exprs: list = got if isinstance(got, list) else []
    b = _Rule()
    words: list[str] = []
    verdict: str | None = None
    target: str | None = None
    xt = False
    for e in exprs:
        if not isinstance(e, dict) or len(e) != 1:
            continue
        (k, v), = e.items()
        if verdict is not None:  # nothing after a verdict is evaluated
            words.append(k)
            continue
        if k == "match" and isinstance(v, dict):
            words.append(_condition(v, b))
        elif k in _VERDICTS:
            verdict = k
            if k in ("jump", "goto") and isinstance(v, dict):
                target = _str(v.get("target"))
                words.append(f"{k} {target}")
            elif k == "reject" and isinstance(v, dict) and v:
                words.append("reject " + " ".join(f"{a} {_text(x)}" for a, x in v.items()))
            else:
                words.append(k)
        elif k == "xt" and isinstance(v, dict):
            xt = True
            name = str(v.get("name"))
            if v.get("type") == "target":
                verdict, target = "xt", name
                words.append(f"xt target {name}")
            else:
                b.unknown(f"xt {v.get('type')} {name}")
                words.append(f"xt {v.get('type')} {name}")
        elif k == "counter":
            words.append("counter")
        elif k == "log":
            prefix = v.get("prefix") if isinstance(v, dict) else None
            words.append(f'log prefix "{prefix}"' if prefix else "log")
        elif k in ("mangle", "snat", "dnat", "masquerade", "redirect", "notrack", "ct"):
            words.append(k if v is None else f"{k} {_text(v)}")  # statements: no condition, no verdict here
        else:  # limit, quota, lookup, meter, ...: a condition the walker cannot decide
            t = k if v is None else f"{k} {_text(v)}"
            b.unknown(t)
            words.append(t)
    return NftRule(handle=_int(body.get("handle")), expr=" ".join(w for w in words if w), verdict=verdict,
                   target=target, xt=xt, params=b.params, matches=b.matches, comment=_str(body.get("comment")))
