"""Parse what ``ip`` and ``bridge`` print, as users paste it and ``support.sh`` captures it (pure).

* ``ip -o [-4] address show`` (one line per address) -> interfaces with their addresses;
* ``ip -o link show`` (one line per link) -> interfaces with flags, state, master;
* ``ip [-4] route show`` -> routes (destination, device, gateway, source, type), through jc's
  ``ip_route`` parser for the fields, checked here (jc reads any word as a destination);
* ``ip [-4] neigh show`` -> neighbour entries;
* ``bridge fdb show [br BR]`` -> forwarding entries.

The multi-line ``ip addr`` form is read by :mod:`swarmscope.parse.iproute`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, cast

from swarmscope.errors import ParseError, is_number, parser
from swarmscope.model import Address, Interface

__all__ = ["Route", "Neighbour", "FdbEntry", "parse_ip_oneline_addr", "parse_ip_oneline_link", "parse_ip_route",
           "parse_ip_neigh", "parse_bridge_fdb"]

_ADDR_LINE = re.compile(
    r"^(\d{1,10}):\s+([^\s:@]+)(?:@\S+)?\s+(inet6?)\s+([0-9A-Fa-f.:]+)(?:/(\d{1,3}))?(?:\s|$)(.*)$", re.ASCII
)
_LINK_LINE = re.compile(r"^(\d{1,10}):\s+([^:@\s]+)(?:@(\S+?))?:\s+<([^>]*)>(.*)$", re.ASCII)


@parser("ip -o address")
def parse_ip_oneline_addr(text: str) -> list[Interface]:
    """Interfaces (name, index, addresses) from ``ip -o [-4|-6] address show``.

    One line per address, ``N: NAME    inet A/P ... \\       valid_lft ...``; nothing else
    (flags, state, kind) is in this form, so those stay unknown."""
    out: dict[int, Interface] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        m = _ADDR_LINE.match(s)
        if not m:
            raise ParseError("ip -o address", lineno, line, "not an 'N: NAME inet ADDR/PLEN' line")
        idx, name, fam, addr, plen, _rest = m.groups()
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ParseError("ip -o address", lineno, line, f"{addr!r} is not an address") from None
        family = 6 if fam == "inet6" else 4
        iface = out.setdefault(int(idx), Interface(name=name, index=int(idx)))
        iface.addresses.append(
            Address(address=addr, prefixlen=int(plen) if plen else (128 if family == 6 else 32), family=family)
        )
    return list(out.values())


@parser("ip -o link")
def parse_ip_oneline_link(text: str) -> list[Interface]:
    """Interfaces from ``ip -o link show``: index, name, flags (UP), operstate, mtu, master, MAC, veth peer index."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        head, _, tail = s.partition("\\")
        m = _LINK_LINE.match(head.strip())
        if not m:
            raise ParseError("ip -o link", lineno, line, "not an 'N: NAME: <FLAGS> ...' line")
        idx, name, link, flags, rest = m.groups()
        words = rest.split()
        attrs = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i] in ("mtu", "master", "state")}
        peer = int(link[2:]) if link and link.startswith("if") and is_number(link[2:], 10) else None
        iface = Interface(
            name=name,
            index=int(idx),
            state=attrs.get("state", "unknown").lower(),
            admin_up="UP" in flags.split(","),
            mtu=int(attrs["mtu"]) if is_number(attrs.get("mtu", ""), 10) else None,
            master=attrs.get("master"),
            peer_index=peer,
        )
        tw = tail.split()
        if len(tw) >= 2 and tw[0] == "link/ether":
            iface.mac = tw[1]
        if peer is not None:
            iface.kind = "veth"
        if name.startswith("vxlan"):
            iface.kind = "vxlan"
        out.append(iface)
    return out


@dataclass
class Route:
    destination: str  # CIDR; "0.0.0.0/0" for default
    type: str = "unicast"
    dev: str | None = None
    via: str | None = None
    src: str | None = None
    proto: str | None = None
    scope: str | None = None
    flags: list[str] = field(default_factory=list)  # linkdown, dead, onlink, ...


_ROUTE_TYPES = (
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
    "nat",
    "anycast",
)


@parser("ip route")
def parse_ip_route(text: str) -> list[Route]:
    """Routes from ``ip [-4] route [show]`` (the main table as printed). Fields through jc's ``ip_route``."""
    import jc

    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        words = s.split()
        rtype = "unicast"
        if words[0] in _ROUTE_TYPES:
            rtype, words = words[0], words[1:]
        if not words:
            raise ParseError("ip route", lineno, line, "a route type without a destination")
        dest = words[0]
        if dest == "default":
            dest = "0.0.0.0/0" if ":" not in s else "::/0"
        else:
            try:
                net = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                raise ParseError(
                    "ip route", lineno, line, f"{dest!r} is not a destination (default or an address/prefix)"
                ) from None
            dest = str(net)
        parsed = cast(
            list[dict[str, Any]], jc.parse("ip_route", " ".join(words) + "\n", quiet=True)
        )  # standard parser: a list
        f = parsed[0] if parsed else {}
        out.append(
            Route(
                destination=dest,
                type=rtype,
                dev=f.get("dev"),
                via=f.get("via"),
                src=f.get("src"),
                proto=f.get("proto"),
                scope=f.get("scope"),
                flags=[w for w in words if w in ("linkdown", "dead", "onlink", "pervasive", "offload")],
            )
        )
    return out


@dataclass
class Neighbour:
    address: str
    dev: str | None = None
    lladdr: str | None = None
    state: list[str] = field(default_factory=list)  # REACHABLE, STALE, PERMANENT, FAILED, ...


@parser("ip neigh")
def parse_ip_neigh(text: str) -> list[Neighbour]:
    """Entries of ``ip [-4] neigh show``: ``ADDR dev DEV [lladdr MAC] [router] STATE...``."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        words = s.split()
        try:
            ipaddress.ip_address(words[0])
        except ValueError:
            raise ParseError("ip neigh", lineno, line, f"{words[0]!r} is not an address") from None
        n = Neighbour(address=words[0])
        i = 1
        while i < len(words):
            w = words[i]
            if w in ("dev", "lladdr") and i + 1 < len(words):
                setattr(n, w, words[i + 1])
                i += 2
                continue
            if w.isupper():
                n.state.append(w)
            i += 1
        out.append(n)
    return out


@dataclass
class FdbEntry:
    mac: str
    dev: str | None = None
    dst: str | None = None  # the remote VTEP of a vxlan entry
    master: str | None = None
    flags: list[str] = field(default_factory=list)  # self, permanent, static, extern_learn, ...


_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", re.ASCII)


@parser("bridge fdb")
def parse_bridge_fdb(text: str) -> list[FdbEntry]:
    """Entries of ``bridge fdb show [br BR]``: ``MAC dev DEV [dst IP] [master BR] [vlan N] FLAGS...``."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        words = s.split()
        if not _MAC.match(words[0]):
            raise ParseError("bridge fdb", lineno, line, f"{words[0]!r} is not a MAC address")
        e = FdbEntry(mac=words[0].lower())
        i = 1
        while i < len(words):
            w = words[i]
            if w in ("dev", "dst", "master") and i + 1 < len(words):
                setattr(e, w, words[i + 1])
                i += 2
                continue
            if w in ("vlan", "port", "vni", "via", "src_vni", "nhid", "link-netnsid") and i + 1 < len(words):
                i += 2
                continue
            e.flags.append(w)
            i += 1
        out.append(e)
    return out
