"""Interfaces, addresses and routes of the current namespace, over rtnetlink.

A small reader of its own: one NETLINK_ROUTE socket opened in the calling
thread's namespace, three dump requests (links, addresses, IPv4 routes of the
main table), only the attributes swarmscope keeps decoded. It asks nothing but
``RTM_GET*`` with the dump flag: nothing is ever changed. (pyroute2's IPRoute
gave the same answers at ~100 ms per namespace on a loaded 2-CPU machine; this
takes about a millisecond.)
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from swarmscope.model import Address, Interface

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_LINK_NETNSID = 16, 18, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 1, 3, 4, 7, 15
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_TABLE = 1, 15
RT_TABLE_MAIN = 254
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_BE16 = struct.Struct("!H")


class NetlinkError(OSError):
    pass


def _attrs(buf: bytes, offset: int, end: int) -> dict[int, bytes]:
    """type -> payload of the rtattrs in buf[offset:end] (first of each type wins)."""
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, typ = _RTATTR.unpack_from(buf, offset)
        if length < 4 or offset + length > end:
            break
        out.setdefault(typ & NLA_TYPE_MASK, buf[offset + 4 : offset + length])
        offset += (length + 3) & ~3
    return out


def _dump(sock: socket.socket, msg_type: int, body: bytes, seq: int,
          flags: int = NLM_F_REQUEST | NLM_F_DUMP) -> Iterator[tuple[int, bytes, int, int]]:
    """(message type, buffer, offset of the payload, payload end) of every answer to one dump request (or, with
    ``flags=NLM_F_REQUEST``, to one lookup: its answer is the first message; stop reading there)."""
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body)
    while True:
        data = sock.recv(1 << 18)
        if not data:
            raise NetlinkError(0, "netlink socket closed during a dump")
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, typ, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                raise NetlinkError(0, "malformed netlink message")
            if mseq == seq:
                if typ == NLMSG_DONE:
                    return
                if typ == NLMSG_ERROR:
                    (err,) = _S32.unpack_from(data, offset + _NLMSGHDR.size)
                    if err:
                        raise NetlinkError(-err, os.strerror(-err))
                    return
                yield typ, data, offset + _NLMSGHDR.size, offset + length
            offset += (length + 3) & ~3


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _u32(b: bytes | None) -> int | None:
    return _U32.unpack_from(b)[0] if b is not None and len(b) >= 4 else None


def _vxlan(d: dict[int, bytes]) -> dict:
    """The Interface fields of a vxlan device's IFLA_INFO_DATA: VNI, local address, UDP port, learning."""
    local = d.get(IFLA_VXLAN_LOCAL)
    port = d.get(IFLA_VXLAN_PORT)
    learning = d.get(IFLA_VXLAN_LEARNING)
    return {
        "vxlan_id": _u32(d.get(IFLA_VXLAN_ID)),
        "vxlan_local": socket.inet_ntop(socket.AF_INET, local) if local is not None and len(local) == 4 else None,
        "vxlan_port": _BE16.unpack_from(port)[0] if port is not None and len(port) >= 2 else None,  # network order
        "vxlan_learning": bool(learning[0]) if learning else None,
        "vxlan_link": _u32(d.get(IFLA_VXLAN_LINK)) or None,
    }


def read_interfaces() -> tuple[list[Interface], list[str]]:
    """(interfaces with addresses, IPv4 route destinations of the main table)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        links = [
            (buf, off, end)
            for typ, buf, off, end in _dump(sock, RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), 1)
            if typ == RTM_NEWLINK
        ]
        addrs = [
            (buf, off, end)
            for typ, buf, off, end in _dump(sock, RTM_GETADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), 2)
            if typ == RTM_NEWADDR
        ]
        routes = [
            (buf, off, end)
            for typ, buf, off, end in _dump(sock, RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), 3)
            if typ == RTM_NEWROUTE
        ]
    finally:
        sock.close()

    parsed = []
    for buf, off, end in links:
        _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(buf, off)
        parsed.append((index, flags, _attrs(buf, off + _IFINFOMSG.size, end)))
    names: dict[int, str] = {}
    for index, _flags, a in parsed:
        n = a.get(IFLA_IFNAME)
        if n is not None:  # the kernel always sends it
            names[index] = n.rstrip(b"\0").decode("utf-8", "replace")
    by_index: dict[int, Interface] = {}
    for index, flags, a in parsed:
        kind = None
        vx: dict = {}
        info = a.get(IFLA_LINKINFO)
        if info is not None:
            ia = _attrs(info, 0, len(info))
            k = ia.get(IFLA_INFO_KIND)
            kind = k.rstrip(b"\0").decode("ascii", "replace") if k is not None else None
            data = ia.get(IFLA_INFO_DATA)
            if kind == "vxlan" and data is not None:
                vx = _vxlan(_attrs(data, 0, len(data)))
        master = _u32(a.get(IFLA_MASTER))
        op = a.get(IFLA_OPERSTATE)
        state = OPERSTATES[op[0]] if op and op[0] < len(OPERSTATES) else "unknown"
        mac = a.get(IFLA_ADDRESS)
        netnsid = a.get(IFLA_LINK_NETNSID)
        by_index[index] = Interface(
            name=names.get(index, ""),
            index=index,
            kind=kind,
            state=state,
            admin_up=bool(flags & 1),
            mtu=_u32(a.get(IFLA_MTU)),
            mac=_mac(mac) if mac is not None else None,
            master=names.get(master) if master else None,
            master_index=master or None,
            peer_index=_u32(a.get(IFLA_LINK)) if kind == "veth" else None,
            peer_netns_id=_S32.unpack_from(netnsid)[0] if kind == "veth" and netnsid is not None else None,
            **vx,
        )
    for buf, off, end in addrs:
        family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(buf, off)
        iface = by_index.get(index)
        if iface is None:
            continue
        a = _attrs(buf, off + _IFADDRMSG.size, end)
        raw = (a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)) if family == socket.AF_INET else a.get(IFA_ADDRESS)
        if raw:
            fam = 6 if family == socket.AF_INET6 else 4
            ip = socket.inet_ntop(socket.AF_INET6 if fam == 6 else socket.AF_INET, raw)
            iface.addresses.append(Address(address=ip, prefixlen=prefixlen, family=fam))
    dests = []
    for buf, off, end in routes:
        family, dst_len, _src_len, _tos, table, _proto, _scope, _rtype, _flags = _RTMSG.unpack_from(buf, off)
        a = _attrs(buf, off + _RTMSG.size, end)
        table = _u32(a.get(RTA_TABLE)) or table
        if family != socket.AF_INET or table != RT_TABLE_MAIN:
            continue
        dst = a.get(RTA_DST)
        if dst:
            dests.append(f"{socket.inet_ntop(socket.AF_INET, dst)}/{dst_len}")
        elif dst_len == 0:
            dests.append("0.0.0.0/0")
    return sorted(by_index.values(), key=lambda i: i.index), dests
