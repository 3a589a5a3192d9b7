"""The node snapshot: typed dataclasses, and their JSON form.

A snapshot is everything one swarm node knows about its routing mesh. It is a
plain tree of dataclasses whose fields are JSON types (str, int, float, bool,
None, lists, dicts with str keys, other dataclasses), so ``to_dict`` and
``from_dict`` round-trip it exactly. Bump SNAPSHOT_VERSION when a field changes
meaning or disappears; adding an optional field does not need a bump.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import keyword
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from swarmscope.redaction_kinds import IMAGE, KEEP, LABELS, NONAME, OPTION, PROCESS, RAW, TEXT, redact_as

SNAPSHOT_SCHEMA = "swarmscope/snapshot"
SNAPSHOT_VERSION = 2
#: the versions this swarmscope reads: a version-1 snapshot lacks only fields that have defaults (the host's
#: nftables ruleset, read as None: not read; the overlay data plane: Namespace.overlay, HostNamespace.vtep_routes,
#: the vxlan attributes of Interface)
READABLE_SNAPSHOT_VERSIONS = frozenset({1, 2})


# --------------------------------------------------------------------------
# status words: each is its own string (a StrEnum member is a str equal to its value, and JSON
# writes the value), so documents and text read as they always did


class NsKind(StrEnum):
    """What a network namespace is (``Namespace.kind``), from its file name."""

    INGRESS_SBOX = "ingress_sbox"
    LB = "lb"  # lb_<network id prefix>: a network's load balancer
    OVERLAY = "overlay"  # 1-<network id prefix>: an overlay network's bridge and VXLAN device
    CONTAINER = "container"  # a task's (or container's) sandbox
    HOST = "host"  # "default": dockerd's handle on the host namespace
    UNKNOWN = "unknown"


class HopStatus(StrEnum):
    """How one hop of a path is judged; also a DNS check's result and a backend's REDIRECT."""

    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"
    NA = "n/a"  # not part of this path (e.g. host mode where no task runs)
    UNKNOWN = "unknown"  # not read, or not knowable from the data
    SUSPECT = "suspect"  # judged ok by the rules, but its --probe failed (correlate/probes.py)


class Verdict(StrEnum):
    """A node's path as a whole."""

    OK = "ok"
    BROKEN = "broken"
    DEGRADED = "degraded"  # serves, but some real servers are wrong
    UNKNOWN = "unknown"
    NA = "n/a"


class BackendState(StrEnum):
    """An IPVS real server against the service's tasks."""

    OK = "ok"
    MISSING = "missing"  # a running task with no real server
    STARTING = "starting"  # in transition (correlate.lifecycle): neither good nor a fault
    DRAINING = "draining"  # in transition: weight 0 before the task stops
    STALE = "stale"  # a real server whose task is gone
    LINGERING = "lingering"  # a stale real server at weight 0
    FOREIGN = "foreign"  # a real server that is another service's task
    WEIGHT0 = "weight0"  # a running task's real server at weight 0
    UNKNOWN = "unknown"  # a task on another node that the data does not show


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# --------------------------------------------------------------------------
# generic (de)serialisation


def to_dict(obj: Any) -> Any:
    """Turn a dataclass tree into JSON-ready data (dict order = field order)."""
    t = type(obj)
    if t in _SCALARS:
        return obj
    enc = _ENCODERS.get(t)
    if enc is not None:
        return enc(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _encoder(t)(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


_SCALARS = frozenset({str, int, float, bool, type(None)})
_ENCODERS: dict[type, Any] = {}


def _encoder(cls: type):
    """A function turning one instance of dataclass ``cls`` into a dict (made once per class).

    Fields whose values are scalars are copied as they are; anything else goes
    through ``to_dict``, so the result is the same as the generic walk.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))

    def enc(obj: Any) -> dict:
        out = {}
        for name in names:
            v = getattr(obj, name)
            tv = type(v)
            if tv in _SCALARS:
                out[name] = v
            elif tv is list:
                out[name] = [x if type(x) in _SCALARS else to_dict(x) for x in v]
            else:
                out[name] = to_dict(v)
        return out

    _ENCODERS[cls] = enc
    return enc


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _convert(args[0], value, where)
        return value
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, vt = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_dict_checked(tp, value, where)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


T = typing.TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str = "$") -> T:
    """Build a dataclass tree from JSON data; unknown keys are ignored.

    Raises ValueError naming the path of the first value of the wrong shape.
    A converter compiled once per class does the work; only when it meets a
    value of the wrong shape is the data walked again, slowly, to name the path.
    """
    try:
        return _decoder(cls)(data)
    except _Mismatch:
        return _from_dict_checked(cls, data, where)


def _from_dict_checked(cls: type[T], data: Any, where: str = "$") -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {cls.__name__}: {exc}") from None


class _Mismatch(Exception):
    """A value of the wrong shape: from_dict redoes the walk to name where."""


_DECODERS: dict[type, Any] = {}
_INT_LIMIT = 2**63  # as dump.py's check: a larger integer is damage, not data


def _decoder(cls: type) -> Callable[[Any], Any]:
    """The converter JSON data -> ``cls``, generated once per class as straight-line Python.

    It also checks every value as ``dump.check_snapshot_data`` does (a required field, a list, an
    object, a string, true/false, an integer in range, a finite number; null only where the field
    allows it), so reading a dump is one pass: anything it does not accept raises _Mismatch, and
    the callers redo the slow, path-naming walks (from_dict: the lenient converter; dump.py: the
    check that names where the damage is). What it accepts it builds exactly as the lenient
    converter would: missing fields take their defaults, unknown keys are ignored, integers in a
    float field become floats, lists and objects are copied.
    """
    cached = _DECODERS.get(cls)
    if cached is not None:
        return cached
    if getattr(cls, "__post_init__", None) is not None:

        def slow(data: Any) -> Any:
            return _from_dict_checked(cls, data)

        _DECODERS[cls] = slow
        return slow
    dec = _generate(cls)
    _DECODERS[cls] = dec
    return dec


_SCALAR_TEST = {
    str: "type({v}) is not str",
    bool: "type({v}) is not bool",
    int: "type({v}) is not int or not -_LIM <= {v} <= _LIM",
}


def _generate(cls: type) -> Callable[[Any], Any]:
    import math

    hints = _hints(cls)
    env: dict[str, Any] = {"_M": _Mismatch, "_new": object.__new__, "_cls": cls, "_LIM": _INT_LIMIT,
                           "_finite": math.isfinite}
    lines = ["def dec(d):", "    if type(d) is not dict:", "        raise _M"]
    missing = dataclasses.MISSING
    names = []
    for i, f in enumerate(dataclasses.fields(cls)):
        v = f"v{i}"
        names.append((f.name, v))
        key = repr(f.name)
        if f.default is missing and f.default_factory is missing:
            lines += [f"    if {key} not in d:", "        raise _M", f"    {v} = d[{key}]"]
            lines += ["    " + x for x in _convert_code(hints[f.name], v, env)]
            continue
        if f.default is not missing:
            env[f"_d{i}"] = f.default
            otherwise = f"_d{i}"
        else:
            env[f"_f{i}"] = f.default_factory
            otherwise = f"_f{i}()"
        lines += [f"    if {key} in d:", f"        {v} = d[{key}]"]
        lines += ["        " + x for x in _convert_code(hints[f.name], v, env)]
        lines += ["    else:", f"        {v} = {otherwise}"]
    # the records have __slots__ (``record``): each field set in turn on an object made without __init__
    sets = [f"o.{n} = {v}" if not keyword.iskeyword(n) else f"setattr(o, {n!r}, {v})" for n, v in names]
    if cls.__name__ in SHARED_RECORDS:  # one object for equal records while sharing() is on (below)
        key = ", ".join(_key_code(hints[n], v) for n, v in names)
        env["_SH"] = _SHARING
        raw = cls.__name__ in _TEXT_KEYED
        if raw:  # a record seen before as the very same JSON is not converted again (nor its parts)
            lines[3:3] = ["    if _SH:", "        t = _SH[-1].setdefault(_cls, {})", "        rd = _SH[-1][None]",
                          "        if rd is not None:", "            rk = rd(d)", "            o = t.get(rk)",
                          "            if o is not None:", "                return o"]
        lines += ["    if _SH:", "        t = _SH[-1].setdefault(_cls, {})", f"        k = ({key},)",
                  "        o = t.get(k)", "        if o is None:", "            o = t[k] = _new(_cls)"]
        lines += ["            " + x for x in sets]
        lines += ["        if rd is not None:", "            t[rk] = o"] if raw else []
        lines += ["        return o", "    o = _new(_cls)"] + ["    " + x for x in sets] + ["    return o"]
    else:
        lines += ["    o = _new(_cls)"] + ["    " + x for x in sets] + ["    return o"]
    exec("\n".join(lines), env)  # noqa: S102 - code made here from the dataclass fields, no input in it
    return typing.cast(Callable[[Any], Any], env["dec"])


def _convert_code(tp: Any, v: str, env: dict[str, Any]) -> list[str]:
    """Lines checking (and converting in place) the JSON value in variable ``v`` for model type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or type(None) not in typing.get_args(tp):
            return []  # anything, as the check and the lenient converter take it
        inner = _convert_code(args[0], v, env)
        return [f"if {v} is not None:"] + ["    " + x for x in inner] if inner else []
    if tp in _SCALAR_TEST:
        return [f"if {_SCALAR_TEST[tp].format(v=v)}:", "    raise _M"]
    if tp is float:
        return [f"if type({v}) is int:", f"    {v} = float({v})",
                f"elif type({v}) is not float or not _finite({v}):", "    raise _M"]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = f"_D_{tp.__name__}_{id(tp)}"
        env[name] = _decoder(tp)  # the model has no recursive types: built eagerly
        return [f"{v} = {name}({v})"]
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        name = f"_L{len(env)}"
        env[name] = _item_converter(item)
        return [f"if type({v}) is not list:", "    raise _M", f"{v} = {name}({v})"]
    if origin is dict:
        _, vt = typing.get_args(tp) or (str, Any)
        name = f"_O{len(env)}"
        env[name] = _item_converter(vt, mapping=True)
        return [f"if type({v}) is not dict:", "    raise _M", f"{v} = {name}({v})"]
    return []  # Any, StrEnum, ...: taken as they are (the check does not look either)


#: records read once for all their equal copies while ``sharing()`` is on (dump.load): a rule, a real
#: server, a network's task endpoint or peer is the same on every node that has it (each node's
#: ingress_sbox holds one real server per task cluster-wide, each host one DNAT and two ACCEPTs per
#: published port, each node's verbose network inspect every task of the network), so a swarm's dump
#: holds it once per node and the snapshots once. Shared records are never changed after reading.
SHARED_RECORDS = frozenset({"RuleOption", "RuleMatch", "Rule", "IpvsDest", "NetworkTaskEndpoint", "NetworkPeer"})
_SHARING: list[dict] = []
#: shared records also looked up by their JSON text first (``sharing(text=True)``): a rule is several
#: records deep, and converting it only to find it known was most of reading a large swarm's rules
_TEXT_KEYED = frozenset({"Rule"})


@contextlib.contextmanager
def sharing(text: bool = False) -> Iterator[None]:
    """Equal shared records (SHARED_RECORDS) decoded meanwhile are one object; the table is dropped after.
    ``text``: the data is what orjson parsed, so a record whose JSON (orjson.dumps) is that of one decoded
    before is that one, unconverted; not for what the standard parser read, which also takes NaN and
    integers of any length (they would not dump back the same)."""
    dumps = None
    if text:
        try:
            import orjson

            dumps = orjson.dumps
        except ImportError:  # pragma: no cover - a dependency
            pass
    _SHARING.append({None: dumps})
    try:
        yield
    finally:
        _SHARING.pop()


def _key_code(tp: Any, v: str) -> str:
    """An expression of the converted field ``v`` that tells equal values from different ones: the value
    itself, a list as a tuple, a shared record (itself read once) by its identity."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return f"(None if {v} is None else {_key_code(args[0], v)})"
    elif tp in (str, int, bool):
        return v
    elif origin is list:
        (item,) = typing.get_args(tp)
        if item in (str, int):
            return f"tuple({v})"
        if isinstance(item, type) and item.__name__ in SHARED_RECORDS:
            return f"tuple(map(id, {v}))"
    elif isinstance(tp, type) and tp.__name__ in SHARED_RECORDS:
        return f"id({v})"
    raise TypeError(f"a shared record cannot have a field of type {tp}")


def _item_converter(tp: Any, mapping: bool = False) -> Callable[[Any], Any]:
    """A function converting a list's items (or an object's values) of model type ``tp``: a copy."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        d = _decoder(tp)
        if mapping:
            return lambda x: {k: d(y) for k, y in x.items()}
        return lambda x: [d(y) for y in x]
    env: dict[str, Any] = {"_M": _Mismatch}
    body = _convert_code(tp, "y", env)
    if not body:
        return dict if mapping else list
    src = (["def conv(x):", "    out = {}" if mapping else "    out = []",
            "    for k, y in x.items():" if mapping else "    for y in x:"]
           + ["        " + ln for ln in body]
           + ["        out[k] = y" if mapping else "        out.append(y)", "    return out"])
    env.update({"_LIM": _INT_LIMIT, "_new": object.__new__})
    import math

    env["_finite"] = math.isfinite
    exec("\n".join(src), env)  # noqa: S102 - code made here from the model's types
    return typing.cast(Callable[[Any], Any], env["conv"])


# --------------------------------------------------------------------------
# records: each class of the snapshot is a dataclass whose fields declare how they are redacted
# (redact_as, swarmscope/redaction_kinds.py); a text field or a map without a declaration is an error
# when this module is imported (the check at its end), so no field can be added without saying how

RECORDS: list[type] = []

#: an integer field: as the checks here (dump.check_snapshot_data, ``_decoder``), in [-2**63, 2**63] where it is
#: read back. Everything here sees ``int``; swarmscope/fastread.py, which reads dumps with msgspec, gives it
#: msgspec's bounds when it is imported (``fastread.I64``): importing msgspec here cost every collection 25 ms.
#: The annotations are resolved by name in this module's namespace when a reader asks for them.
I64 = int


@typing.dataclass_transform(field_specifiers=(field, redact_as))
def record(cls: type[T]) -> type[T]:
    """A snapshot record: ``dataclass(cls, slots=True)``, registered for the redaction check. Slots: a large
    swarm's snapshots are millions of records, each a third of the size it would be with a ``__dict__``."""
    made = dataclass(cls, slots=True)
    RECORDS.append(made)
    return made


# --------------------------------------------------------------------------
# provenance: what ran, where, how it went


@record
class Provenance:
    what: str = redact_as(TEXT)  # short name, e.g. "iptables-save", "ipvs-netlink", "docker:services"
    namespace: str = redact_as(TEXT)  # "host", or the namespace file name
    status: str = redact_as(KEEP)  # ok | failed | skipped | timeout | vanished
    argv: list[str] = redact_as(TEXT, default_factory=list)  # command run; empty for netlink/API
    exit_code: I64 | None = None
    duration_ms: float = 0.0
    reason: str | None = redact_as(TEXT, default=None)  # why it failed or was skipped
    truncated: bool = False


# --------------------------------------------------------------------------
# iptables


@record
class RuleOption:
    """One option of a rule, e.g. ``--dport 8000`` or ``! -d 127.0.0.0/8``."""

    opt: str = redact_as(KEEP)  # "-p", "--dport", "--to-destination", ...
    value: str | None = redact_as(OPTION, default=None)  # None for flags such as "--ipvs"
    negated: bool = False


@record
class RuleMatch:
    """A ``-m MODULE`` match and the options that belong to it."""

    module: str = redact_as(KEEP)
    options: list[RuleOption] = field(default_factory=list)


@record
class Rule:
    chain: str = redact_as(NONAME)
    line: str = redact_as(RAW)  # the rule exactly as iptables-save printed it
    params: list[RuleOption] = field(default_factory=list)  # -p -s -d -i -o -f before/outside -m
    matches: list[RuleMatch] = field(default_factory=list)
    target: str | None = redact_as(KEEP, default=None)  # -j / -g target; None for a rule with no target
    goto: bool = False  # True for -g
    target_options: list[RuleOption] = field(default_factory=list)
    counters: list[I64] | None = None  # [packets, bytes] when saved with -c
    comment: str | None = redact_as(TEXT, default=None)  # the text of -m comment --comment, unquoted

    def option(self, opt: str) -> RuleOption | None:
        """The first option named ``opt`` among params, matches and target options."""
        for o in self.params:
            if o.opt == opt:
                return o
        for m in self.matches:
            for o in m.options:
                if o.opt == opt:
                    return o
        for o in self.target_options:
            if o.opt == opt:
                return o
        return None

    def value(self, opt: str) -> str | None:
        """Value of a non-negated option, else None."""
        o = self.option(opt)
        if o is None or o.negated:
            return None
        return o.value

    def has_match(self, module: str) -> bool:
        return any(m.module == module for m in self.matches)


@record
class Chain:
    name: str = redact_as(NONAME)
    policy: str | None = redact_as(KEEP, default=None)  # ACCEPT/DROP for built-in chains, None for user chains
    counters: list[I64] | None = None
    rules: list[Rule] = field(default_factory=list)


@record
class Table:
    name: str = redact_as(KEEP)
    chains: dict[str, Chain] = redact_as(keys=NONAME, default_factory=dict)  # in the order iptables-save printed them

    def rules(self, chain: str) -> list[Rule]:
        c = self.chains.get(chain)
        return c.rules if c else []


@record
class IptablesDump:
    """What one iptables backend holds in one namespace."""

    backend: str = redact_as(KEEP)  # "nft" or "legacy"
    available: bool = True  # False where the save command could not run
    reason: str | None = redact_as(TEXT, default=None)
    tables: dict[str, Table] = redact_as(keys=KEEP, default_factory=dict)
    raw: str = redact_as(RAW, default="")  # the iptables-save text exactly as printed

    def table(self, name: str) -> Table:
        return self.tables.get(name) or Table(name=name)

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.tables.values() for c in t.chains.values())


# --------------------------------------------------------------------------
# nftables: the host's ruleset as `nft -j list ruleset` gives it, parsed (swarmscope/parse/nftables.py)


@record
class NftRule:
    """One rule of an nftables chain: a compact summary of its expressions, its verdict, and the conditions it
    tests in the iptables model's terms (``params``/``matches``, as ``Rule``'s), so one walker (facts/walk.py)
    walks both; an expression that has no such form is a match of module ``nft`` (never decided)."""

    handle: I64 | None = None
    expr: str = redact_as(RAW, default="")  # in nft's syntax, e.g. 'iifname "eth0" udp dport 4789 drop'
    verdict: str | None = redact_as(KEEP, default=None)  # accept | drop | reject | jump | goto | return | queue | None
    target: str | None = redact_as(NONAME, default=None)  # the chain of a jump/goto
    xt: bool = False  # holds an xt (iptables-nft compat) expression
    params: list[RuleOption] = field(default_factory=list)  # -p -s -d -i -o
    matches: list[RuleMatch] = field(default_factory=list)  # tcp/udp --dport/--sport, conntrack --ctstate, nft ...
    comment: str | None = redact_as(TEXT, default=None)


@record
class NftChain:
    name: str = redact_as(NONAME)
    handle: I64 | None = None
    type: str | None = redact_as(KEEP, default=None)  # filter | nat | route; None for a regular chain
    hook: str | None = redact_as(KEEP, default=None)  # prerouting | input | forward | output | postrouting | ingress
    priority: I64 | None = None  # a base chain's priority (lower runs first; iptables' filter is 0)
    policy: str | None = redact_as(KEEP, default=None)  # accept | drop (base chains)
    rules: list[NftRule] = field(default_factory=list)


@record
class NftTable:
    family: str = redact_as(KEEP)  # ip | ip6 | inet | arp | bridge | netdev
    name: str = redact_as(NONAME)
    handle: I64 | None = None
    iptables: bool = False  # made by iptables-nft (seen through iptables-nft-save: not judged again here)
    chains: list[NftChain] = field(default_factory=list)

    def chain(self, name: str) -> NftChain | None:
        return next((c for c in self.chains if c.name == name), None)


@record
class NftRuleset:
    """The nftables ruleset of the host namespace (``nft -j list ruleset``, read only)."""

    available: bool = True  # False where nft could not run or its output could not be read
    reason: str | None = redact_as(TEXT, default=None)
    version: str | None = redact_as(KEEP, default=None)  # nft's metainfo version
    tables: list[NftTable] = field(default_factory=list)
    raw: str = redact_as(RAW, default="")  # the JSON text as nft printed it (kept with --raw and in the bundle)


# --------------------------------------------------------------------------
# IPVS


@record
class IpvsDest:
    address: str = redact_as(NONAME)
    port: I64
    forward: str = redact_as(KEEP)  # Masq | Route | Tunnel | Local ("" where the listing does not say: ipvsadm --stats)
    weight: I64 | None  # None where the listing does not say (ipvsadm --stats/--rate)
    active: I64 = 0
    inactive: I64 = 0


@record
class IpvsService:
    protocol: str = redact_as(KEEP)  # "fwm", "tcp", "udp", "sctp"
    scheduler: str = redact_as(KEEP)
    fwmark: I64 | None = None  # for protocol == "fwm"
    address: str | None = redact_as(NONAME, default=None)  # for address:port services
    port: I64 | None = None
    flags: list[str] = redact_as(NONAME, default_factory=list)  # e.g. ["persistent 360"]
    dests: list[IpvsDest] = field(default_factory=list)

    @property
    def key(self) -> str:
        if self.protocol == "fwm":
            return f"FWM {self.fwmark}"
        return f"{self.protocol.upper()} {self.address}:{self.port}"


@record
class IpvsTimeouts:
    """The namespace's IPVS connection timeouts in seconds (ipvsadm -L --timeout)."""

    tcp: I64 | None = None
    tcpfin: I64 | None = None
    udp: I64 | None = None
    source: str | None = redact_as(KEEP, default=None)  # ipvsadm


@record
class IpvsConnGroup:
    """Entries of the IPVS connection table (/proc/net/ip_vs_conn) with the same virtual and real
    address and state, counted; ``min_expires`` is the lowest seconds-to-expiry among them."""

    protocol: str = redact_as(KEEP)  # TCP | UDP | SCTP ...
    vaddr: str = redact_as(NONAME)
    vport: I64
    daddr: str = redact_as(NONAME)
    dport: I64
    state: str = redact_as(KEEP)  # ESTABLISHED, TIME_WAIT, UDP, ...
    count: I64 = 0
    min_expires: I64 | None = None


@record
class IpvsTable:
    available: bool
    source: str | None = redact_as(KEEP, default=None)  # netlink | proc | ipvsadm
    reason: str | None = redact_as(TEXT, default=None)  # why not available
    services: list[IpvsService] = field(default_factory=list)
    raw: str | None = redact_as(RAW, default=None)  # text output when read from /proc or ipvsadm
    timeouts: IpvsTimeouts | None = None  # None where not read (older snapshots, ipvsadm missing)
    conns: list[IpvsConnGroup] | None = None  # None where the connection table was not read
    conns_total: I64 = 0  # entries in the connection table (the groups may be capped)
    conns_reason: str | None = redact_as(TEXT, default=None)  # why the connection table could not be read

    def service_for_mark(self, mark: int) -> IpvsService | None:
        for s in self.services:
            if s.protocol == "fwm" and s.fwmark == mark:
                return s
        return None


# --------------------------------------------------------------------------
# links and addresses


@record
class Address:
    address: str = redact_as(NONAME)
    prefixlen: I64
    family: I64 = 4  # 4 or 6

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@record
class Interface:
    name: str = redact_as(NONAME)
    index: I64
    kind: str | None = redact_as(KEEP, default=None)  # veth, bridge, vxlan, dummy, None for plain devices
    state: str = redact_as(KEEP, default="unknown")  # up | down | unknown (operstate, lower-cased)
    admin_up: bool = False
    mtu: I64 | None = None
    mac: str | None = redact_as(NONAME, default=None)
    master: str | None = redact_as(NONAME, default=None)  # name of the bridge this interface is a port of
    master_index: I64 | None = None
    peer_index: I64 | None = None  # veth: IFLA_LINK, the peer's index (in the peer's namespace)
    peer_netns_id: I64 | None = None
    vxlan_id: I64 | None = None
    addresses: list[Address] = field(default_factory=list)
    # vxlan devices (IFLA_VXLAN_*), None where not read (text captures, older snapshots)
    vxlan_local: str | None = redact_as(NONAME, default=None)  # IFLA_VXLAN_LOCAL: the source address it is tied to
    vxlan_port: I64 | None = None  # IFLA_VXLAN_PORT: the UDP destination port (4789 unless --data-path-port)
    vxlan_learning: bool | None = None  # IFLA_VXLAN_LEARNING
    vxlan_link: I64 | None = None  # IFLA_VXLAN_LINK: the underlay device's index, where one is set


# --------------------------------------------------------------------------
# the overlay data plane: what Docker programs for each remote endpoint (peerdb.go)


@record
class FdbEntry:
    """A bridge forwarding-database entry of a vxlan device: frames for ``mac`` go to VTEP ``dst``."""

    mac: str = redact_as(NONAME)
    device: str = redact_as(NONAME)  # the vxlan device
    dst: str | None = redact_as(NONAME, default=None)  # NDA_DST: the remote VTEP
    vni: I64 | None = None
    state: str = redact_as(KEEP, default="none")  # permanent | reachable | stale | noarp ... (NUD_*, lower case)
    flags: list[str] = redact_as(KEEP, default_factory=list)  # self | master | extern_learn ... (NTF_*)


@record
class Neighbour:
    """An IPv4 neighbour entry of a vxlan device: ``address`` is at ``mac``."""

    address: str = redact_as(NONAME)
    device: str = redact_as(NONAME)
    mac: str | None = redact_as(NONAME, default=None)
    state: str = redact_as(KEEP, default="none")


@record
class OverlayTables:
    """The FDB and neighbour entries of an overlay namespace's vxlan devices (RTM_GETNEIGH dumps)."""

    available: bool = True
    reason: str | None = redact_as(TEXT, default=None)  # why it could not be read
    fdb: list[FdbEntry] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)


@record
class VtepRoute:
    """The host's route toward a peer VTEP, as the kernel looks it up (RTM_GETROUTE for the address)."""

    destination: str = redact_as(NONAME)
    device: str | None = redact_as(NONAME, default=None)  # the output (underlay) interface
    source: str | None = redact_as(NONAME, default=None)  # RTA_PREFSRC: the source address the kernel picks
    gateway: str | None = redact_as(NONAME, default=None)
    route_mtu: I64 | None = None  # RTAX_MTU of the route (a route's mtu, or a learnt path MTU), where set
    device_mtu: I64 | None = None  # the output interface's MTU
    error: str | None = redact_as(TEXT, default=None)  # the kernel's answer where there is no route

    @property
    def mtu(self) -> int | None:
        """The MTU packets toward the VTEP leave with: the route's where set, else the device's."""
        known = [m for m in (self.route_mtu, self.device_mtu) if m]
        return min(known) if known else None


# --------------------------------------------------------------------------
# namespaces


@record
class Namespace:
    name: str = redact_as(TEXT)  # file name under the netns directory
    path: str = redact_as(TEXT)
    # an NsKind; typed str, as snapshot JSON of any version is read and checked (dump.py) as a string
    kind: str = redact_as(KEEP)
    network_id: str | None = redact_as(TEXT, default=None)  # full id when it could be joined, else the prefix
    network_name: str | None = redact_as(TEXT, default=None)
    container_id: str | None = redact_as(TEXT, default=None)
    container_name: str | None = redact_as(TEXT, default=None)
    task_id: str | None = redact_as(TEXT, default=None)
    service_name: str | None = redact_as(TEXT, default=None)
    interfaces: list[Interface] = field(default_factory=list)
    iptables: IptablesDump | None = None  # the backend the engine uses
    iptables_other: IptablesDump | None = None  # the other backend
    ipvs: IpvsTable | None = None  # load-balancer namespaces only
    sysctls: dict[str, str | None] = redact_as(NONAME, keys=KEEP, default_factory=dict)
    errors: list[str] = redact_as(TEXT, default_factory=list)  # what could not be read here, and why
    vanished: bool = False
    overlay: OverlayTables | None = None  # overlay namespaces only: the vxlan devices' FDB and neighbours
    stale: bool = False  # the file is not a mounted namespace: left behind by a sandbox that is gone


# --------------------------------------------------------------------------
# DNS


#: ``DnsAnswer.status`` of an answer the resolver truncated (TC) and that could not be had whole (over TCP):
#: its answers are a part of the whole, so what it lacks says nothing (collect/dns.py)
DNS_TRUNCATED = "truncated"


@record
class DnsAnswer:
    service: str = redact_as(TEXT)
    network_id: str = redact_as(TEXT)
    network_name: str = redact_as(TEXT)
    query: str = redact_as(TEXT)  # "whoami" or "tasks.whoami"
    namespace: str = redact_as(TEXT)  # the namespace the question was asked from
    status: str = redact_as(KEEP)  # ok | nxdomain | noanswer | timeout | error | truncated (DNS_TRUNCATED)
    answers: list[str] = redact_as(NONAME, default_factory=list)
    duration_ms: float = 0.0
    reason: str | None = redact_as(TEXT, default=None)


# --------------------------------------------------------------------------
# the Docker API view (normalised; never env, secrets, configs, credentials)


@record
class PortSpec:
    protocol: str = redact_as(KEEP)
    target_port: I64
    published_port: I64 | None = None
    publish_mode: str = redact_as(KEEP, default="ingress")  # ingress | host


@record
class ServiceVip:
    network_id: str = redact_as(TEXT)
    address: str = redact_as(NONAME)  # CIDR as the API gives it, e.g. "10.0.1.2/24"


@record
class Service:
    id: str = redact_as(TEXT)
    name: str = redact_as(TEXT)
    mode: str = redact_as(KEEP)  # replicated | global | replicated-job | global-job
    replicas: I64 | None = None
    endpoint_mode: str = redact_as(KEEP, default="vip")  # vip | dnsrr
    ports: list[PortSpec] = field(default_factory=list)
    vips: list[ServiceVip] = field(default_factory=list)
    networks: list[str] = redact_as(TEXT, default_factory=list)  # network ids from the task template
    image: str | None = redact_as(IMAGE, default=None)
    labels: dict[str, str] = redact_as(LABELS, default_factory=dict)
    # UpdateStatus.State: updating, completed, rollback_started, ...
    update_state: str | None = redact_as(KEEP, default=None)


@record
class TaskAttachment:
    network_id: str = redact_as(TEXT)
    network_name: str | None = redact_as(TEXT)
    addresses: list[str] = redact_as(NONAME, default_factory=list)  # CIDRs


@record
class Task:
    id: str = redact_as(TEXT)
    service_id: str = redact_as(TEXT)
    service_name: str | None = redact_as(TEXT, default=None)
    slot: I64 | None = None
    node_id: str | None = redact_as(TEXT, default=None)
    desired_state: str | None = redact_as(KEEP, default=None)
    state: str | None = redact_as(KEEP, default=None)
    error: str | None = redact_as(TEXT, default=None)
    container_id: str | None = redact_as(TEXT, default=None)
    attachments: list[TaskAttachment] = field(default_factory=list)
    # RFC 3339: when the task entered its current state (Status.Timestamp)
    state_since: str | None = redact_as(KEEP, default=None)


@record
class NetworkTaskEndpoint:
    name: str = redact_as(TEXT)
    endpoint_id: str | None = redact_as(TEXT, default=None)
    endpoint_ip: str | None = redact_as(NONAME, default=None)
    host_ip: str | None = redact_as(NONAME, default=None)  # Info["Host IP"]


@record
class NetworkService:
    name: str = redact_as(TEXT)
    vip: str | None = redact_as(NONAME, default=None)
    local_lb_index: I64 | None = None
    ports: list[str] = redact_as(NONAME, default_factory=list)
    tasks: list[NetworkTaskEndpoint] = field(default_factory=list)


@record
class NetworkContainer:
    key: str = redact_as(TEXT)  # container id, or "ingress-sbox" / "lb-<name>"
    name: str | None = redact_as(TEXT, default=None)
    endpoint_id: str | None = redact_as(TEXT, default=None)
    ipv4: str | None = redact_as(NONAME, default=None)  # CIDR


@record
class NetworkPeer:
    name: str = redact_as(TEXT)
    ip: str = redact_as(NONAME)


@record
class Network:
    id: str = redact_as(TEXT)
    name: str = redact_as(TEXT)
    driver: str | None = redact_as(KEEP, default=None)
    scope: str | None = redact_as(KEEP, default=None)
    ingress: bool = False
    attachable: bool = False
    internal: bool = False
    encrypted: bool = False  # Options "encrypted" (overlay traffic in IPsec ESP between the nodes)
    subnets: list[str] = redact_as(NONAME, default_factory=list)
    gateways: list[str] = redact_as(NONAME, default_factory=list)
    vxlan_ids: list[I64] = field(default_factory=list)
    containers: list[NetworkContainer] = field(default_factory=list)
    services: dict[str, NetworkService] = redact_as(keys=TEXT, default_factory=dict)  # verbose inspect, by service name
    peers: list[NetworkPeer] = field(default_factory=list)
    verbose: bool = False  # whether Services/Peers came from a verbose inspect


@record
class ContainerNet:
    network_id: str | None = redact_as(TEXT)
    network_name: str = redact_as(TEXT)
    ip_address: str | None = redact_as(NONAME, default=None)
    prefixlen: I64 | None = None
    endpoint_id: str | None = redact_as(TEXT, default=None)


@record
class Container:
    id: str = redact_as(TEXT)
    name: str = redact_as(TEXT)
    sandbox_key: str | None = redact_as(TEXT, default=None)
    sandbox_id: str | None = redact_as(TEXT, default=None)
    service_id: str | None = redact_as(TEXT, default=None)
    service_name: str | None = redact_as(TEXT, default=None)
    task_id: str | None = redact_as(TEXT, default=None)
    state: str | None = redact_as(KEEP, default=None)
    pid: I64 | None = None
    networks: list[ContainerNet] = field(default_factory=list)
    # State.StartedAt (RFC 3339): a worker's own tasks' age, without a manager
    started_at: str | None = redact_as(KEEP, default=None)


@record
class SwarmNode:
    id: str = redact_as(TEXT)
    hostname: str = redact_as(TEXT)
    role: str = redact_as(KEEP)
    state: str | None = redact_as(KEEP, default=None)
    availability: str | None = redact_as(KEEP, default=None)
    address: str | None = redact_as(NONAME, default=None)
    manager_reachability: str | None = redact_as(KEEP, default=None)
    engine_version: str | None = redact_as(KEEP, default=None)


@record
class DockerView:
    available: bool = True
    reason: str | None = redact_as(TEXT, default=None)
    services: list[Service] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    nodes: list[SwarmNode] = field(default_factory=list)  # managers only


# --------------------------------------------------------------------------
# the node and the host namespace


@record
class IpvsSupport:
    available: bool | None  # None when it could not be established
    method: str = redact_as(TEXT)  # how it was established, e.g. "generic netlink family IPVS"
    detail: str | None = redact_as(TEXT, default=None)


@record
class IptablesBackend:
    engine_backend: str | None = redact_as(KEEP)  # nft | legacy | None when unknown
    method: str = redact_as(TEXT)  # how it was decided
    other_backend: str | None = redact_as(KEEP, default=None)
    other_backend_rules: I64 = 0  # rules the other backend holds in the host namespace


@record
class KernelModule:
    """Whether a kernel module the mesh needs can be used, established without loading it."""

    name: str = redact_as(KEEP)  # ip_vs_rr, xt_mark, nf_nat, xt_ipvs
    state: str = redact_as(KEEP)  # loaded | builtin | on-disk (the kernel loads it on demand) | absent | unknown
    how: str = redact_as(TEXT, default="")  # what established it, e.g. "/sys/module/xt_mark", "modules.dep"


@record
class XtablesExtension:
    """An iptables userspace extension (libxt_NAME.so) in the xtables directory."""

    name: str = redact_as(KEEP)  # ipvs
    found: bool | None  # None when no xtables directory with extensions could be found
    path: str | None = redact_as(TEXT, default=None)  # the library, or the directories searched
    how: str = redact_as(TEXT, default="")


@record
class LogMatch:
    kind: str = redact_as(KEEP)  # which known message (swarmscope.collect.dockerd_log.PATTERNS)
    line: str = redact_as(TEXT)  # the log line (truncated)


@record
class DockerdLog:
    """Known mesh errors found in the recent dockerd log (read-only). Its lines carry sandbox and
    container ids, addresses, network ids: free text."""

    source: str = redact_as(TEXT)  # "journalctl -u docker.service --since -2h" or the file named by --dockerd-log
    available: bool = True
    reason: str | None = redact_as(TEXT, default=None)  # why it could not be read
    lines_read: I64 = 0
    matches: list[LogMatch] = field(default_factory=list)  # capped
    truncated: bool = False  # more matches than kept, or only the end of a file was read


@record
class NodeInfo:
    hostname: str = redact_as(TEXT)
    kernel_release: str = redact_as(TEXT)
    node_id: str | None = redact_as(TEXT, default=None)
    node_addr: str | None = redact_as(NONAME, default=None)
    role: str | None = redact_as(KEEP, default=None)  # manager | worker
    swarm_state: str | None = redact_as(KEEP, default=None)  # active | inactive | pending | error | locked
    engine_version: str | None = redact_as(KEEP, default=None)
    api_version: str | None = redact_as(KEEP, default=None)
    engine_os: str | None = redact_as(TEXT, default=None)
    # `docker info` FirewallBackend.Driver (API 1.49+): iptables | nftables
    firewall_backend: str | None = redact_as(KEEP, default=None)
    ip_vs: IpvsSupport | None = None
    iptables: IptablesBackend | None = None
    sysctls: dict[str, str | None] = redact_as(NONAME, keys=KEEP, default_factory=dict)
    modules: list[KernelModule] = field(default_factory=list)  # empty where not established (older snapshots)
    xtables: list[XtablesExtension] = field(default_factory=list)
    dockerd_log: DockerdLog | None = None


@record
class Bridge:
    name: str = redact_as(NONAME)
    present: bool
    addresses: list[Address] = field(default_factory=list)
    members: list[str] = redact_as(NONAME, default_factory=list)  # interface names enslaved to it
    state: str | None = redact_as(KEEP, default=None)


@record
class Listener:
    protocol: str = redact_as(KEEP)  # tcp | udp
    address: str = redact_as(NONAME)
    port: I64
    pid: I64 | None = None
    process: str | None = redact_as(PROCESS, default=None)  # comm of the holder
    inode: I64 | None = None


@record
class HostNamespace:
    interfaces: list[Interface] = field(default_factory=list)
    routes: list[str] = redact_as(NONAME, default_factory=list)  # IPv4 destination CIDRs of the main table
    iptables: IptablesDump | None = None
    iptables_other: IptablesDump | None = None
    gwbridge: Bridge | None = None
    listeners: list[Listener] = field(default_factory=list)
    nftables: NftRuleset | None = None  # None: not read (snapshots of version 1)
    vtep_routes: list[VtepRoute] = field(default_factory=list)  # toward each peer VTEP (FDB dst, network Peers)


@record
class Probe:
    """One connection ``--probe`` made from a namespace of this node to an address the snapshot shows
    belongs to the swarm (swarmscope/probe/), and the hop of the path map it tests."""

    kind: str = redact_as(KEEP)  # published | localhost | vip | task | vtep
    source: str = redact_as(TEXT)  # the namespace it was made from: "host", or the namespace file name
    address: str = redact_as(NONAME)
    port: I64
    protocol: str = redact_as(KEEP, default="tcp")
    result: str = redact_as(KEEP, default="not-probed")  # connected | refused | reset | timeout | error | not-probed
    reason: str | None = redact_as(TEXT, default=None)  # the error, or why it was not probed
    at: str = redact_as(KEEP, default="")  # RFC 3339 UTC, when the connection was started
    duration_ms: float = 0.0
    http_status: str | None = redact_as(TEXT, default=None)  # the status line, with --probe-http
    hop: str = redact_as(KEEP, default="")  # the key of the hop it tests, e.g. "host.dnat"
    node: str | None = redact_as(TEXT, default=None)  # the node whose path it tests
    service: str | None = redact_as(TEXT, default=None)
    network: str | None = redact_as(TEXT, default=None)  # network name (vip and task probes)
    published: I64 | None = None  # the published port whose path it tests (published, localhost, ingress task)
    task: str | None = redact_as(TEXT, default=None)  # service.slot of a task probe
    #: the remote node's VTEP the probe crosses (vtep probes, and task probes to a task on another node)
    vtep: str | None = redact_as(NONAME, default=None)
    size: I64 | None = None  # vtep probes: the full-size packet sent (the source's MTU toward the network, DF set)
    answered: I64 | None = None  # vtep probes: the largest packet that came back (None: none did)


@record
class Snapshot:
    node: NodeInfo
    schema: str = redact_as(KEEP, default=SNAPSHOT_SCHEMA)
    version: I64 = SNAPSHOT_VERSION
    tool_version: str = redact_as(KEEP, default="")
    collected_at: str = redact_as(KEEP, default="")  # RFC 3339 UTC
    duration_ms: float = 0.0
    complete: bool = True
    netns_dir: str = redact_as(TEXT, default="")
    host: HostNamespace = field(default_factory=HostNamespace)
    namespaces: list[Namespace] = field(default_factory=list)
    dns: list[DnsAnswer] = field(default_factory=list)
    docker: DockerView = field(default_factory=DockerView)
    provenance: list[Provenance] = field(default_factory=list)
    errors: list[str] = redact_as(TEXT, default_factory=list)  # what made the snapshot incomplete
    probes: list[Probe] = field(default_factory=list)  # --probe only: connections made from this node

    def namespace(self, name: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.name == name:
                return ns
        return None

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Snapshot:
        if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"not a swarmscope node snapshot (expected schema {SNAPSHOT_SCHEMA!r})")
        if data.get("version") not in READABLE_SNAPSHOT_VERSIONS:
            raise ValueError(
                f"snapshot version {data.get('version')!r} is not supported "
                f"(this swarmscope reads versions {', '.join(map(str, sorted(READABLE_SNAPSHOT_VERSIONS)))})"
            )
        snap = from_dict(cls, data)
        snap.version = SNAPSHOT_VERSION  # an older version lacks only fields with defaults
        return snap


def without_raw(snap: Snapshot) -> Snapshot:
    """``snap`` without the commands' raw text (``IptablesDump.raw``, ``IpvsTable.raw``): what a dump
    and ``collect --json`` hold unless ``--raw`` is given. A shallow copy: ``snap`` itself is left as it
    is (the report bundle writes its raw files from it), and only what holds raw text is copied.
    Nothing the correlator reads is derived from the raw text: rules, real servers and every other
    record stay as parsed."""

    def ipt(d: IptablesDump | None) -> IptablesDump | None:
        if d is None or not d.raw:
            return d
        c = copy.copy(d)
        c.raw = ""
        return c

    def ipvs(t: IpvsTable | None) -> IpvsTable | None:
        if t is None or t.raw is None:
            return t
        c = copy.copy(t)
        c.raw = None
        return c

    h = snap.host
    host = h
    if (h.iptables is not None and h.iptables.raw) or (h.iptables_other is not None and h.iptables_other.raw):
        host = copy.copy(h)
        host.iptables, host.iptables_other = ipt(h.iptables), ipt(h.iptables_other)
    if h.nftables is not None and h.nftables.raw:
        if host is h:
            host = copy.copy(h)
        host.nftables = copy.copy(h.nftables)
        host.nftables.raw = ""
    namespaces = []
    for ns in snap.namespaces:
        a, b, v = ipt(ns.iptables), ipt(ns.iptables_other), ipvs(ns.ipvs)
        if a is not ns.iptables or b is not ns.iptables_other or v is not ns.ipvs:
            ns = copy.copy(ns)
            ns.iptables, ns.iptables_other, ns.ipvs = a, b, v
        namespaces.append(ns)
    out = copy.copy(snap)
    out.host, out.namespaces = host, namespaces
    return out
