"""Interfaces, addresses and routes of the current namespace, over rtnetlink."""

from __future__ import annotations

import socket

from pyroute2 import IPRoute

from swarmscope.model import Address, Interface


def _kind(link) -> str | None:
    info = link.get("IFLA_LINKINFO")
    if info is None:
        return None
    return info.get("IFLA_INFO_KIND")


def _vxlan_id(link) -> int | None:
    info = link.get("IFLA_LINKINFO")
    if info is None or info.get("IFLA_INFO_KIND") != "vxlan":
        return None
    data = info.get("IFLA_INFO_DATA")
    if data is None:
        return None
    return data.get("IFLA_VXLAN_ID")


def read_interfaces() -> tuple[list[Interface], list[str]]:
    """(interfaces with addresses, IPv4 route destinations of the main table)."""
    with IPRoute() as ipr:
        links = list(ipr.get_links())
        addrs = list(ipr.get_addr())
        routes = list(ipr.get_routes(family=socket.AF_INET, table=254))
    names = {l["index"]: l.get("IFLA_IFNAME") for l in links}
    by_index: dict[int, Interface] = {}
    for l in links:
        idx = l["index"]
        master = l.get("IFLA_MASTER")
        kind = _kind(l)
        iface = Interface(
            name=l.get("IFLA_IFNAME"),
            index=idx,
            kind=kind,
            state=str(l.get("IFLA_OPERSTATE") or "unknown").lower(),
            admin_up=bool(l["flags"] & 1),
            mtu=l.get("IFLA_MTU"),
            mac=l.get("IFLA_ADDRESS"),
            master=names.get(master) if master else None,
            master_index=master or None,
            peer_index=l.get("IFLA_LINK") if kind == "veth" else None,
            peer_netns_id=l.get("IFLA_LINK_NETNSID") if kind == "veth" else None,
            vxlan_id=_vxlan_id(l),
        )
        by_index[idx] = iface
    for a in addrs:
        iface = by_index.get(a["index"])
        if iface is None:
            continue
        fam = 6 if a["family"] == socket.AF_INET6 else 4
        ip = (a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")) if fam == 4 else a.get("IFA_ADDRESS")
        if ip:
            iface.addresses.append(Address(address=ip, prefixlen=a["prefixlen"], family=fam))
    dests = []
    for r in routes:
        dst = r.get("RTA_DST")
        if dst:
            dests.append(f"{dst}/{r['dst_len']}")
        elif r["dst_len"] == 0:
            dests.append("0.0.0.0/0")
    return sorted(by_index.values(), key=lambda i: i.index), dests
