"""The overlay data plane over rtnetlink, read-only: the VXLAN forwarding database and neighbour entries
of an overlay namespace, and the route the kernel picks toward each peer VTEP.

What Docker programs for every remote endpoint of an overlay network (libnetwork/drivers/overlay/peerdb.go,
``peerAddOp``): in the network's namespace (``1-<network id>``), a permanent IPv4 neighbour entry
``endpoint IP -> endpoint MAC`` on the vxlan device, and a permanent bridge FDB entry ``endpoint MAC ->
dst VTEP`` on the same device (``NTF_SELF``). Both are read with one dump request each on a NETLINK_ROUTE
socket opened in the namespace (``RTM_GETNEIGH``: ``AF_BRIDGE`` for the FDB, ``AF_INET`` for the
neighbours) -- ``bridge fdb show`` without a device is known to hang inside a namespace; a dump of the
kernel's table on our own socket does not, and the socket has a timeout. Only the entries of vxlan devices
are kept (the overlay bridge's own learnt and permanent entries say nothing about peers).

The route toward a peer VTEP is asked in the host namespace (where the vxlan devices' UDP sockets live:
Docker creates them there and moves them into the overlay namespace) with ``RTM_GETROUTE`` for that one
destination -- a lookup, as ``ip route get`` does, never a change -- and gives the output device, the
source address the kernel picks and the route's MTU where it has one.

The module asks nothing but ``RTM_GET*``: the read-only test (tests/integration/test_collect_lab.py)
watches for any change.
"""

from __future__ import annotations

import socket
import struct

from swarmscope.collect.links import (
    NETLINK_ROUTE,
    NLA_TYPE_MASK,
    NLM_F_REQUEST,
    RTM_GETROUTE,
    RTM_NEWROUTE,
    NetlinkError,
    _attrs,
    _dump,
    _mac,
    _u32,
)
from swarmscope.model import FdbEntry, Interface, Neighbour, OverlayTables, VtepRoute

RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
NDA_DST, NDA_LLADDR, NDA_VNI, NDA_LINK_NETNSID = 1, 2, 7, 10
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_METRICS, RTA_TABLE = 1, 4, 5, 7, 8, 15
RTAX_MTU = 2
NUD_STATES = ((0x80, "permanent"), (0x40, "noarp"), (0x02, "reachable"), (0x04, "stale"), (0x08, "delay"),
              (0x10, "probe"), (0x20, "failed"), (0x01, "incomplete"))
NTF_FLAGS = ((0x02, "self"), (0x04, "master"), (0x08, "proxy"), (0x10, "extern_learn"), (0x20, "offloaded"),
             (0x80, "router"))

_NLMSGHDR = struct.Struct("=IHHII")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_S32 = struct.Struct("=i")


def nud_state(state: int) -> str:
    """The neighbour state's name as ``ip neigh`` prints it (lower case); "none" for 0."""
    names = [name for bit, name in NUD_STATES if state & bit]
    return ",".join(names) if names else "none"


def _socket(timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.settimeout(timeout)
    sock.bind((0, 0))
    return sock


def read_overlay_tables(interfaces: list[Interface], timeout: float = 5.0) -> OverlayTables:
    """The FDB and IPv4 neighbour entries of the namespace's vxlan devices (``interfaces``: the namespace's
    own, as links.read_interfaces read them, to name the devices and tell which are vxlan)."""
    names = {i.index: i.name for i in interfaces}
    vxlan = {i.index for i in interfaces if i.kind == "vxlan"}
    sock = _socket(timeout)
    try:
        fdb_raw = [(b, o, e) for t, b, o, e in
                   _dump(sock, RTM_GETNEIGH, _NDMSG.pack(socket.AF_BRIDGE, 0, 0, 0, 0), 1) if t == RTM_NEWNEIGH]
        neigh_raw = [(b, o, e) for t, b, o, e in
                     _dump(sock, RTM_GETNEIGH, _NDMSG.pack(socket.AF_INET, 0, 0, 0, 0), 2) if t == RTM_NEWNEIGH]
    finally:
        sock.close()
    fdb: list[FdbEntry] = []
    for buf, off, end in fdb_raw:
        _family, index, state, flags, _type = _NDMSG.unpack_from(buf, off)
        if index not in vxlan:
            continue
        a = _attrs(buf, off + _NDMSG.size, end)
        mac = a.get(NDA_LLADDR)
        dst = a.get(NDA_DST)
        if mac is None:
            continue
        fdb.append(FdbEntry(
            mac=_mac(mac),
            device=names.get(index, f"if{index}"),
            dst=_ip(dst),
            vni=_u32(a.get(NDA_VNI)),
            state=nud_state(state),
            flags=[name for bit, name in NTF_FLAGS if flags & bit],
        ))
    neighbours: list[Neighbour] = []
    for buf, off, end in neigh_raw:
        _family, index, state, _flags, _type = _NDMSG.unpack_from(buf, off)
        if index not in vxlan:
            continue
        a = _attrs(buf, off + _NDMSG.size, end)
        ip = _ip(a.get(NDA_DST))
        if ip is None:
            continue
        mac = a.get(NDA_LLADDR)
        neighbours.append(Neighbour(address=ip, mac=_mac(mac) if mac else None, device=names.get(index, f"if{index}"),
                                    state=nud_state(state)))
    return OverlayTables(fdb=fdb, neighbours=neighbours)


def _ip(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def _get(sock: socket.socket, body: bytes, seq: int) -> tuple[bytes, int, int]:
    """The one answer to a non-dump RTM_GETROUTE request: (buffer, payload offset, payload end)."""
    for typ, data, start, end in _dump(sock, RTM_GETROUTE, body, seq, flags=NLM_F_REQUEST):
        if typ == RTM_NEWROUTE:
            return data, start, end
    raise NetlinkError(0, "no route in the answer")


def _route(dest: str, buf: bytes, off: int, end: int, names: dict[int, str], mtus: dict[int, int | None]) -> VtepRoute:
    a = _attrs(buf, off + _RTMSG.size, end)
    oif = _u32(a.get(RTA_OIF))
    mtu = None
    metrics = a.get(RTA_METRICS)
    if metrics is not None:
        m = _attrs(metrics, 0, len(metrics))
        mtu = _u32(m.get(RTAX_MTU))
    return VtepRoute(
        destination=dest,
        device=names.get(oif) if oif is not None else None,
        source=_ip(a.get(RTA_PREFSRC)),
        gateway=_ip(a.get(RTA_GATEWAY)),
        route_mtu=mtu or None,
        device_mtu=mtus.get(oif) if oif is not None else None,
    )


def route_to(destinations: list[str], interfaces: list[Interface], timeout: float = 5.0) -> list[VtepRoute]:
    """The kernel's route toward each IPv4 destination (one RTM_GETROUTE lookup each, as ``ip route get``),
    in the calling thread's namespace; ``interfaces`` (that namespace's) name the output device and give its
    MTU. A destination with no route is kept with the kernel's error."""
    names = {i.index: i.name for i in interfaces}
    mtus = {i.index: i.mtu for i in interfaces}
    out: list[VtepRoute] = []
    sock = _socket(timeout)
    try:
        for seq, dest in enumerate(destinations, start=1):
            try:
                raw = socket.inet_pton(socket.AF_INET, dest)
            except OSError:
                out.append(VtepRoute(destination=dest, error="not an IPv4 address"))
                continue
            attr = _RTATTR.pack(_RTATTR.size + 4, RTA_DST & NLA_TYPE_MASK) + raw
            body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + attr
            try:
                buf, off, end = _get(sock, body, seq)
            except NetlinkError as exc:
                out.append(VtepRoute(destination=dest, error=exc.strerror or str(exc)))
                continue
            out.append(_route(dest, buf, off, end, names, mtus))
    finally:
        sock.close()
    return out
