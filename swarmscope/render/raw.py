"""The bundle's raw views of what was read without a command's text: parsed data rendered in the
form the usual tool prints (``ipvsadm -Ln``, ``ip -d addr``, ``sysctl``), pure."""

from __future__ import annotations

from swarmscope.model import Interface, IpvsTable


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
            out.append(f"    {i.kind}" + (f" id {i.vxlan_id}" if i.vxlan_id is not None else ""))
        for a in i.addresses:
            out.append(f"    {'inet' if a.family == 4 else 'inet6'} {a.address}/{a.prefixlen}")
    return "\n".join(out) + "\n"


def render_sysctls(sysctls: dict[str, str | None]) -> str:
    """One ``key = value`` line per sysctl, sorted by key."""
    return "".join(f"{k} = {v}\n" for k, v in sorted(sysctls.items()))
