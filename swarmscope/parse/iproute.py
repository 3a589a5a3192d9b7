"""Parse ``ip addr`` / ``ip -d addr`` text into interfaces (pure).

swarmscope reads links over rtnetlink when it runs; this parser is for text
captured by hand (a bug report, ``nsenter ... ip addr``), so such captures can
be turned into snapshots and explained the same way.
"""

from __future__ import annotations

import re

from swarmscope.errors import ParseError, is_number, parser
from swarmscope.model import Address, Interface

_HEAD = re.compile(r"^(\d{1,10}):\s+([^:@\s]+)(?:@(\S+?))?:\s+<([^>]*)>(.*)$", re.ASCII)
_INET = re.compile(r"^\s+(inet6?)\s+(\S+?)/(\d{1,3})\b", re.ASCII)
_LINK = re.compile(r"^\s+link/(\S+)(?:\s+(\S+))?")
_KINDS = ("veth", "bridge", "vxlan", "dummy", "ipip", "macvlan", "ipvlan")


@parser("ip addr")
def parse_ip_addr(text: str) -> list[Interface]:
    out: list[Interface] = []
    cur: Interface | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _HEAD.match(line)
        if m:
            idx, name, link, flags, rest = m.groups()
            words = rest.split()
            attrs = {words[i]: words[i + 1] for i in range(0, len(words) - 1) if words[i] in ("mtu", "master", "state")}
            flagset = set(flags.split(","))
            peer = None
            if link and link.startswith("if") and is_number(link[2:], 10):
                peer = int(link[2:])
            cur = Interface(
                name=name,
                index=int(idx),
                state=attrs.get("state", "unknown").lower(),
                admin_up="UP" in flagset,
                mtu=int(attrs["mtu"]) if is_number(attrs.get("mtu", ""), 10) else None,
                master=attrs.get("master"),
                peer_index=peer,
            )
            if name.startswith("vxlan"):
                cur.kind = "vxlan"  # plain `ip addr` names no kind; docker's overlay calls it vxlan0
            elif peer is not None:
                cur.kind = "veth"
            out.append(cur)
            continue
        if cur is None:
            raise ParseError("ip addr", lineno, line, "address line before any interface line")
        m = _INET.match(line)
        if m:
            fam, addr, plen = m.groups()
            cur.addresses.append(Address(address=addr, prefixlen=int(plen), family=6 if fam == "inet6" else 4))
            continue
        m = _LINK.match(line)
        if m:
            if m.group(1) == "ether":
                cur.mac = m.group(2)
            if "link-netnsid" in line:
                tail = line.split("link-netnsid", 1)[1].split()
                if tail and is_number(tail[0], 10):
                    cur.peer_netns_id = int(tail[0])
            continue
        stripped = line.strip()
        first = stripped.split()[0] if stripped else ""
        if first in _KINDS:
            cur.kind = first
            if first == "vxlan" and " id " in f" {stripped} ":
                words = stripped.split()
                at = words.index("id") + 1
                if at >= len(words) or not is_number(words[at], 10):
                    raise ParseError("ip addr", lineno, line, "'vxlan id' without a number after it")
                cur.vxlan_id = int(words[at])
            continue
        # valid_lft lines, bridge_slave/altname/other -d details: nothing we keep
    return out
