"""The IPVS table of the current namespace.

Read over generic netlink with pyroute2 (dump only: GET_SERVICE and GET_DEST
with the dump flag); where netlink cannot be used, from
``/proc/thread-self/net/ip_vs``, and last from ``ipvsadm -Ln``. Where the
kernel has no ip_vs the table is reported unavailable, with the reason.
"""

from __future__ import annotations

import errno
import os
import socket

from swarmscope.collect.runner import Recorder
from swarmscope.errors import ParseError
from swarmscope.model import IpvsDest, IpvsService, IpvsSupport, IpvsTable
from swarmscope.parse.ipvs import parse_ipvsadm_list, parse_proc_ip_vs

NO_IPVS = ("the kernel has no ip_vs (no IPVS generic netlink family, no /proc/net/ip_vs): "
           "swarm cannot program its load balancers")

_FWD = {0: "Masq", 1: "Local", 2: "Tunnel", 3: "Route", 4: "Bypass"}  # IP_VS_CONN_F_FWD_MASK values
_PROTO = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp"}


class IpvsUnavailable(Exception):
    pass


def _attr(nla, name):
    if nla is None:
        return None
    return nla.get_attr(name)


def read_netlink() -> list[IpvsService]:
    """Dump services and real servers over generic netlink. Raises IpvsUnavailable."""
    from pyroute2 import IPVS
    from pyroute2.ipvs import IPVSService
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipvs = IPVS()
    except NetlinkError as exc:
        if exc.code == errno.ENOENT:
            raise IpvsUnavailable(NO_IPVS) from None
        raise
    services: list[IpvsService] = []
    try:
        for msg in ipvs.service("dump"):
            svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
            af = _attr(svc, "IPVS_SVC_ATTR_AF") or socket.AF_INET
            fwmark = _attr(svc, "IPVS_SVC_ATTR_FWMARK") or 0
            sched = _attr(svc, "IPVS_SVC_ATTR_SCHED_NAME") or "?"
            flags_nla = _attr(svc, "IPVS_SVC_ATTR_FLAGS")
            flags: list[str] = []
            if flags_nla is not None:
                bits = flags_nla.get("flags", 0) if hasattr(flags_nla, "get") else 0
                if bits & 0x1:
                    flags.append(f"persistent {_attr(svc, 'IPVS_SVC_ATTR_TIMEOUT') or 0}")
                if bits & 0x4:
                    flags.append("ops")
            if fwmark:
                model = IpvsService(protocol="fwm", scheduler=sched, fwmark=int(fwmark), flags=flags)
                key = IPVSService(fwmark=int(fwmark), af=af)
            else:
                proto = _attr(svc, "IPVS_SVC_ATTR_PROTOCOL")
                addr = _attr(svc, "IPVS_SVC_ATTR_ADDR")
                port = _attr(svc, "IPVS_SVC_ATTR_PORT")
                model = IpvsService(
                    protocol=_PROTO.get(proto, str(proto)), scheduler=sched, address=addr, port=port, flags=flags
                )
                key = IPVSService(addr=addr, port=port, protocol=proto, af=af)
            for dmsg in ipvs.dest("dump", service=key):
                d = dmsg.get_attr("IPVS_CMD_ATTR_DEST")
                # read the raw forwarding attribute: pyroute2's IPVSDest.from_message misreports it
                fwd = (_attr(d, "IPVS_DEST_ATTR_FWD_METHOD") or 0) & 0x7
                model.dests.append(
                    IpvsDest(
                        address=_attr(d, "IPVS_DEST_ATTR_ADDR"),
                        port=_attr(d, "IPVS_DEST_ATTR_PORT") or 0,
                        forward=_FWD.get(fwd, str(fwd)),
                        weight=_attr(d, "IPVS_DEST_ATTR_WEIGHT") or 0,
                        active=_attr(d, "IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
                        inactive=_attr(d, "IPVS_DEST_ATTR_INACT_CONNS") or 0,
                    )
                )
            services.append(model)
    finally:
        ipvs.close()
    return services


def read_ipvs(rec: Recorder, namespace: str, support: IpvsSupport) -> IpvsTable:
    """The IPVS table of the calling thread's namespace, with how it was read.

    Nothing is asked of the kernel where ``support`` says ip_vs is not loaded:
    the netlink family lookup and ipvsadm would both load the module.
    """
    if support.available is False:
        reason = support.detail or NO_IPVS
        rec.skipped("ipvs", namespace, reason)
        return IpvsTable(available=False, reason=reason)
    netlink_reason = None
    with rec.step("ipvs (generic netlink)", namespace) as step:
        try:
            services = read_netlink()
            return IpvsTable(available=True, source="netlink", services=services)
        except IpvsUnavailable as exc:
            step.status = "skipped"
            step.reason = str(exc)
            netlink_reason = str(exc)
        except Exception as exc:  # netlink refused (e.g. seccomp, old kernel): fall back
            step.status = "failed"
            step.reason = f"{type(exc).__name__}: {exc}"
            netlink_reason = step.reason
    proc = "/proc/thread-self/net/ip_vs"
    if os.path.exists(proc):
        with rec.step(f"read {proc}", namespace) as step:
            try:
                with open(proc) as fh:
                    text = fh.read()
                return IpvsTable(available=True, source="proc", services=parse_proc_ip_vs(text), raw=text)
            except (OSError, ParseError) as exc:
                step.status = "failed"
                step.reason = str(exc)
    elif netlink_reason == NO_IPVS:
        return IpvsTable(available=False, reason=NO_IPVS)
    res = rec.run("ipvsadm -Ln", namespace, ["ipvsadm", "-Ln", "--exact"])
    if res.ok:
        try:
            return IpvsTable(available=True, source="ipvsadm", services=parse_ipvsadm_list(res.stdout), raw=res.stdout)
        except ParseError as exc:
            return IpvsTable(available=False, reason=f"could not parse ipvsadm output: {exc}", raw=res.stdout)
    return IpvsTable(available=False, reason=netlink_reason or res.reason)


def read_timeouts(rec: Recorder, namespace: str, table: IpvsTable) -> None:
    """The namespace's IPVS timeouts, into ``table.timeouts``; asked only where the table was read
    (ip_vs is loaded: ipvsadm cannot load it then). pyroute2's IPVS API has no GET_CONFIG command
    (and decodes the timeout attributes as hex), so ``ipvsadm -L --timeout`` it is."""
    if not table.available:
        return
    if not os.path.exists("/proc/thread-self/net/ip_vs"):
        # ipvsadm runs `modprobe ip_vs` when the kernel does not know the family: never where it is not loaded
        rec.skipped(
            "ipvsadm -L --timeout",
            namespace,
            "ip_vs is not loaded here (no /proc/net/ip_vs)",
            ["ipvsadm", "-L", "--timeout"],
        )
        return
    res = rec.run("ipvsadm -L --timeout", namespace, ["ipvsadm", "-L", "--timeout"])
    if res.ok:
        from swarmscope.parse.ipvs_conn import parse_ipvsadm_timeout

        try:
            table.timeouts = parse_ipvsadm_timeout(res.stdout)
        except ParseError:
            pass


def read_conns(rec: Recorder, namespace: str, table: IpvsTable) -> None:
    """The namespace's IPVS connection table, grouped, into ``table.conns`` (read from the
    namespace's thread: /proc/thread-self/net is that thread's network namespace)."""
    if not table.available:
        return
    from swarmscope.parse.ipvs_conn import parse_ip_vs_conn

    proc = "/proc/thread-self/net/ip_vs_conn"
    if not os.path.exists(proc):
        table.conns_reason = f"no {proc} (ip_vs is not loaded here)"
        rec.skipped(f"read {proc}", namespace, table.conns_reason)
        return
    with rec.step(f"read {proc}", namespace) as step:
        try:
            with open(proc) as fh:
                text = fh.read()
            table.conns, table.conns_total = parse_ip_vs_conn(text)
        except (OSError, ParseError) as exc:
            step.status = "failed"
            step.reason = table.conns_reason = str(exc)
