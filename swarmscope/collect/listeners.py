"""Sockets bound on the published ports, and the processes that hold them.

Read from ``/proc/thread-self/net/{tcp,tcp6,udp,udp6}`` of the current
namespace; socket inodes are matched to processes through ``/proc/*/fd``.
"""

from __future__ import annotations

import os
import socket
import struct

from swarmscope.model import Listener

TCP_LISTEN = "0A"


def _hex_addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    # IPv6: four 32-bit words, each in host (little-endian) order
    words = struct.unpack(">4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))


def parse_proc_net(text: str, protocol: str) -> list[Listener]:
    """Bound sockets from one /proc/net/{tcp,udp}[6] file (listening TCP, any UDP)."""
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10:
            continue
        local, state, inode = parts[1], parts[3], parts[9]
        if protocol == "tcp" and state != TCP_LISTEN:
            continue
        addr_hex, port_hex = local.split(":")
        out.append(Listener(protocol=protocol, address=_hex_addr(addr_hex), port=int(port_hex, 16), inode=int(inode)))
    return out


def _owners(inodes: set[int]) -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    if not inodes:
        return found
    wanted = {f"socket:[{i}]": i for i in inodes}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and inode not in found:
                try:
                    with open(f"/proc/{pid}/comm") as fh:
                        comm = fh.read().strip()
                except OSError:
                    comm = "?"
                found[inode] = (int(pid), comm)
        if len(found) == len(inodes):
            break
    return found


def read_listeners(ports: set[int]) -> list[Listener]:
    """Sockets of the calling thread's namespace bound on any of ``ports``."""
    found: list[Listener] = []
    for fname, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            with open(f"/proc/thread-self/net/{fname}") as fh:
                text = fh.read()
        except OSError:
            continue
        found.extend(li for li in parse_proc_net(text, proto) if li.port in ports)
    owners = _owners({li.inode for li in found if li.inode})
    for li in found:
        if li.inode in owners:
            li.pid, li.process = owners[li.inode]
    return sorted(found, key=lambda li: (li.port, li.protocol, li.address))
