"""IPVS timeouts (``ipvsadm -L --timeout``) and the connection table (``/proc/net/ip_vs_conn``).

The connection table's format is the kernel's ``ip_vs_conn_seq_show``
(net/netfilter/ipvs/ip_vs_conn.c)::

    Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
    TCP 0A000006 A2C4 0A000102 0050 0A000103 0050 ESTABLISHED     897

IPv4 addresses and ports in upper-case hex (``%08X %04X``), IPv6 ones as ``%pI6``; Expires in
seconds. Entries are grouped by (protocol, virtual address and port, real server and port, state)
so a busy table stays small; ``min_expires`` keeps the lowest expiry of each group.
"""

from __future__ import annotations

import ipaddress
import re

from swarmscope.errors import ParseError
from swarmscope.model import IpvsConnGroup, IpvsTimeouts

MAX_GROUPS = 2000

_TIMEOUT = re.compile(r"Timeout \(tcp tcpfin udp\):\s*(\d+)\s+(\d+)\s+(\d+)")


def parse_ipvsadm_timeout(text: str) -> IpvsTimeouts:
    m = _TIMEOUT.search(text)
    if not m:
        raise ParseError("ipvsadm --timeout", 1, text.strip()[:120], "no 'Timeout (tcp tcpfin udp): ...' line")
    return IpvsTimeouts(tcp=int(m.group(1)), tcpfin=int(m.group(2)), udp=int(m.group(3)), source="ipvsadm")


def _addr(field: str) -> str:
    if ":" in field:
        return str(ipaddress.IPv6Address(field))
    if len(field) != 8:
        raise ValueError(field)
    return str(ipaddress.IPv4Address(int(field, 16)))


def parse_ip_vs_conn(text: str, max_groups: int = MAX_GROUPS) -> tuple[list[IpvsConnGroup], int]:
    """(groups, number of entries) from /proc/net/ip_vs_conn text. Raises ParseError."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Pro "):
        raise ParseError("ip_vs_conn", 1, lines[0][:80] if lines else "", "not an ip_vs_conn table")
    groups: dict[tuple, IpvsConnGroup] = {}
    total = 0
    for n, line in enumerate(lines[1:], 2):
        f = line.split()
        if not f:
            continue
        if len(f) < 9:
            raise ParseError("ip_vs_conn", n, line, "fewer than 9 fields")
        try:
            proto, vaddr, vport, daddr, dport = f[0], _addr(f[3]), int(f[4], 16), _addr(f[5]), int(f[6], 16)
            state, expires = f[7], int(f[8])
        except ValueError:
            raise ParseError("ip_vs_conn", n, line, "an address or number that does not read") from None
        total += 1
        key = (proto, vaddr, vport, daddr, dport, state)
        g = groups.get(key)
        if g is None:
            if len(groups) >= max_groups:
                continue
            g = groups[key] = IpvsConnGroup(proto, vaddr, vport, daddr, dport, state)
        g.count += 1
        g.min_expires = expires if g.min_expires is None else min(g.min_expires, expires)
    return list(groups.values()), total


def conn_summary(groups: list[IpvsConnGroup] | None) -> dict[tuple[str, int, str], dict[str, int]]:
    """(virtual address, port, real server) -> {state: count}."""
    out: dict[tuple[str, int, str], dict[str, int]] = {}
    for g in groups or []:
        d = out.setdefault((g.vaddr, g.vport, g.daddr), {})
        d[g.state] = d.get(g.state, 0) + g.count
    return out
