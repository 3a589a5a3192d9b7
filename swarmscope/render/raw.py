"""The bundle's raw files of a source's value, pure: the text a command printed, kept as it was
(``KEEPERS``), and the views of what was read without a command's text -- parsed data rendered in the
form the usual tool prints (``ipvsadm -Ln``, ``ip -d addr``, ``sysctl``; ``RENDERERS``).

``collect/host.py``'s ``SOURCES`` names, for each source the bundle keeps, its keeper and its renderer
by their keys here; ``report._raw_files`` calls them for each value of the source's snapshot fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swarmscope.model import Interface, IptablesDump, IpvsTable, NftRuleset, OverlayTables, VtepRoute


@dataclass(frozen=True)
class RawOut:
    """One raw file of a value (``name``, ``text``), or, where ``name`` is None, a manifest entry saying
    that the source was not read there and why."""

    what: str  # the manifest's "what"
    origin: str  # captured (as printed) | given (as a user had it) | rendered (by swarmscope) | not read
    name: str | None = None  # the file's name in raw/<node>/<namespace>/
    text: str = ""
    note: str | None = None  # the manifest's note (a rendered file: how it was read and made)
    reason: str | None = None  # not read: why


@dataclass(frozen=True)
class RawForm:
    """A way of writing a value: ``make(value)`` gives its file (or a not-read entry), or None (nothing to
    write this way); ``files`` are the names it writes ("{backend}": the value's)."""

    files: tuple[str, ...]
    make: Callable[[Any], RawOut | None]


def _is_listing(text: str) -> bool:
    """``iptables -L`` listings (text a user had), not iptables-save output."""
    return bool(re.search(r"^Chain \S+ \(", text, re.M) and not re.search(r"^\*\w+", text, re.M))


def _iptables_text(d: IptablesDump) -> RawOut | None:
    if d.raw and _is_listing(d.raw):  # read from text a user had: kept as given
        return RawOut("iptables -L (from the text read)", "given", "iptables-L.txt", d.raw)
    if d.raw:
        return RawOut(f"iptables-{d.backend}-save", "captured", f"iptables-{d.backend}-save.txt", d.raw)
    if not d.available and d.reason:
        return RawOut(f"iptables-{d.backend}-save", "not read", reason=d.reason)
    return None


def _nft_text(r: NftRuleset) -> RawOut | None:
    if r.raw:
        return RawOut("nft -j list ruleset", "captured", "nft-list-ruleset.json", r.raw)
    if not r.available and r.reason:
        return RawOut("nft -j list ruleset", "not read", reason=r.reason)
    return None


def _ipvs_text(t: IpvsTable) -> RawOut | None:
    if t.raw:
        name = "proc-net-ip_vs.txt" if t.source == "proc" else "ipvsadm-Ln.txt"
        return RawOut(f"ipvs ({t.source})", "captured", name, t.raw)
    if not t.available:
        return RawOut("ipvs", "not read", reason=t.reason)
    return None  # read without text (netlink): rendered


def _ipvs_rendered(t: IpvsTable) -> RawOut | None:
    if not t.available:
        return None
    return RawOut(f"ipvs ({t.source})", "rendered", "ipvsadm-Ln.rendered.txt", render_ipvsadm(t),
                  note=f"read over {t.source}; rendered by swarmscope in ipvsadm -Ln form from the parsed table")


def _ip_addr_rendered(interfaces: list[Interface]) -> RawOut | None:
    if not interfaces:
        return None
    return RawOut("links and addresses", "rendered", "ip-addr.rendered.txt", render_ip_addr(interfaces),
                  note="read over rtnetlink; rendered by swarmscope in ip -d addr form")


def _sysctl_rendered(sysctls: dict[str, str | None]) -> RawOut | None:
    if not sysctls:
        return None
    return RawOut("sysctls", "rendered", "sysctl.rendered.txt", render_sysctls(sysctls),
                  note="read from /proc/sys; one `key = value` per line")


def _fdb_rendered(t: OverlayTables) -> RawOut | None:
    if not t.available:
        return RawOut("overlay fdb and neighbours", "not read", reason=t.reason)
    return RawOut("overlay fdb and neighbours", "rendered", "bridge-fdb.rendered.txt", render_fdb(t),
                  note="read over rtnetlink (RTM_GETNEIGH dumps, the vxlan devices' entries); rendered by swarmscope "
                       "in `bridge fdb show` and `ip neigh show` form")


def _route_get_rendered(routes: list[VtepRoute]) -> RawOut | None:
    if not routes:
        return None
    return RawOut("routes to the peer VTEPs", "rendered", "ip-route-get.rendered.txt", render_route_get(routes),
                  note="read over rtnetlink (RTM_GETROUTE, one lookup per peer VTEP); rendered by swarmscope in "
                       "`ip route get` form")


def render_fdb(t: OverlayTables) -> str:
    """``bridge fdb show`` lines of the vxlan devices' FDB, then ``ip neigh show`` lines of their neighbours."""
    out = ["# bridge fdb show (vxlan devices)"]
    for e in t.fdb:
        parts = [e.mac, "dev", e.device]
        if e.dst:
            parts += ["dst", e.dst]
        if e.vni is not None:
            parts += ["vni", str(e.vni)]
        parts += e.flags
        if e.state not in ("none", "reachable"):
            parts.append(e.state)
        out.append(" ".join(parts))
    out.append("# ip neigh show (vxlan devices)")
    for n in t.neighbours:
        out.append(" ".join([n.address, "dev", n.device] + (["lladdr", n.mac] if n.mac else []) + [n.state.upper()]))
    return "\n".join(out) + "\n"


def render_route_get(routes: list[VtepRoute]) -> str:
    """One ``ip route get``-style line per peer VTEP, with the output device's MTU."""
    out = []
    for r in routes:
        if r.error:
            out.append(f"{r.destination}: {r.error}")
            continue
        parts = [r.destination]
        if r.gateway:
            parts += ["via", r.gateway]
        if r.device:
            parts += ["dev", r.device]
        if r.source:
            parts += ["src", r.source]
        if r.route_mtu:
            parts += ["mtu", str(r.route_mtu)]
        if r.device_mtu:
            parts += [f"(dev mtu {r.device_mtu})"]
        out.append(" ".join(parts))
    return "\n".join(out) + "\n"


def render_ipvsadm(table: IpvsTable) -> str:
    """An ``ipvsadm -Ln``-style listing of a parsed IPVS table."""
    out = [
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    ]
    for s in table.services:
        if s.protocol == "fwm":
            head = f"FWM  {s.fwmark} {s.scheduler}"
        else:
            head = f"{s.protocol.upper():<4} {s.address}:{s.port} {s.scheduler}"
        out.append(" ".join([head] + s.flags))
        for d in s.dests:
            weight = "?" if d.weight is None else str(d.weight)
            out.append(
                f"  -> {d.address + ':' + str(d.port):<28} {d.forward or '?':<7} {weight:<6} "
                f"{d.active:<10} {d.inactive}"
            )
    return "\n".join(out) + "\n"


def render_ip_addr(interfaces: list[Interface]) -> str:
    """An ``ip -d addr``-style listing of the interfaces read over rtnetlink."""
    out = []
    for i in sorted(interfaces, key=lambda i: i.index):
        flags = ["UP"] if i.admin_up else []
        if i.state == "up":
            flags.append("LOWER_UP")
        link = f"@if{i.peer_index}" if i.peer_index is not None else ""
        attrs = [f"mtu {i.mtu}"] if i.mtu is not None else []
        if i.master:
            attrs.append(f"master {i.master}")
        attrs.append(f"state {i.state.upper()}")
        out.append(f"{i.index}: {i.name}{link}: <{','.join(flags)}> {' '.join(attrs)}")
        if i.mac:
            out.append(f"    link/ether {i.mac}")
        if i.kind:
            detail = f" id {i.vxlan_id}" if i.vxlan_id is not None else ""
            if i.vxlan_local:
                detail += f" local {i.vxlan_local}"
            if i.vxlan_port is not None:
                detail += f" dstport {i.vxlan_port}"
            if i.vxlan_learning is not None:
                detail += "" if i.vxlan_learning else " nolearning"
            out.append(f"    {i.kind}{detail}")
        for a in i.addresses:
            out.append(f"    {'inet' if a.family == 4 else 'inet6'} {a.address}/{a.prefixlen}")
    return "\n".join(out) + "\n"


def render_sysctls(sysctls: dict[str, str | None]) -> str:
    """One ``key = value`` line per sysctl, sorted by key."""
    return "".join(f"{k} = {v}\n" for k, v in sorted(sysctls.items()))


#: the text as read, kept as printed (``RawFile.text`` names one)
KEEPERS: dict[str, RawForm] = {
    "iptables-save": RawForm(("iptables-{backend}-save.txt", "iptables-L.txt"), _iptables_text),
    "ipvs": RawForm(("proc-net-ip_vs.txt", "ipvsadm-Ln.txt"), _ipvs_text),
    "nft-json": RawForm(("nft-list-ruleset.json",), _nft_text),
}

#: parsed data in the usual tool's form, where it was read without a text (``RawFile.rendered`` names one)
RENDERERS: dict[str, RawForm] = {
    "ipvsadm-Ln": RawForm(("ipvsadm-Ln.rendered.txt",), _ipvs_rendered),
    "ip-addr": RawForm(("ip-addr.rendered.txt",), _ip_addr_rendered),
    "sysctl": RawForm(("sysctl.rendered.txt",), _sysctl_rendered),
    "bridge-fdb": RawForm(("bridge-fdb.rendered.txt",), _fdb_rendered),
    "ip-route-get": RawForm(("ip-route-get.rendered.txt",), _route_get_rendered),
}
