"""What a redacted report must not contain: every real value of the unredacted snapshots (test helper).

Values are taken from the snapshots' own fields and from the addresses and
MACs found anywhere in their JSON, independently of the redactor's own
bookkeeping, then looked for in every file as whole tokens.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tarfile
from pathlib import Path

from swarmscope.redact import KEEP_NAMES

_V4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d])")
_MAC = re.compile(r"(?<![0-9A-Fa-f:])([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})(?![0-9A-Fa-f:])")
#: words of swarmscope's and Docker's own vocabulary (modes, kinds, states): a lab service named
#: "dnsrr" shares its name with the endpoint mode, which every report prints as such
VOCABULARY = frozenset({"vip", "dnsrr", "replicated", "global", "ingress", "host", "overlay", "bridge", "running", "manager",
                        "worker", "tcp", "udp", "ok", "missing", "unknown"})
_KEPT4 = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "224.0.0.0/4", "0.0.0.0/32", "255.255.255.255/32")]


def _kept_v4(a: str) -> bool:
    ip = ipaddress.ip_address(a)
    if any(ip in n for n in _KEPT4) or a.startswith("255."):
        return True
    # network addresses of the kept range boundaries (10.0.0.0/8, 172.16.0.0/12, ...) stay as they are
    return a in ("10.0.0.0", "172.16.0.0", "192.168.0.0", "100.64.0.0", "169.254.0.0")


def real_values(snaps, keep_names: bool = False) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"address": set(), "mac": set(), "id": set(), "name": set()}
    for s in snaps:
        text = json.dumps(s.to_dict())
        for m in _V4.finditer(text):
            try:
                if not _kept_v4(m.group(1)):
                    out["address"].add(m.group(1))
            except ValueError:
                pass
        for m in _MAC.finditer(text):
            mac = m.group(1).lower()
            if mac not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") and not int(mac[:2], 16) & 1:
                out["mac"].add(mac)
        out["name"].add(s.node.hostname)
        if s.node.node_id:
            out["id"].add(s.node.node_id)
        d = s.docker
        for n in d.nodes:
            out["name"].add(n.hostname)
            out["id"].add(n.id)
        for svc in d.services:
            out["id"].add(svc.id)
            if not keep_names:
                out["name"].add(svc.name)
        for t in d.tasks:
            out["id"].update(x for x in (t.id, t.container_id) if x)
        for net in d.networks:
            out["id"].add(net.id)
            if not keep_names:
                out["name"].add(net.name)
            for c in net.containers:
                if c.key not in ("ingress-sbox",) and not c.key.startswith("lb-"):
                    out["id"].add(c.key)
                if c.endpoint_id:
                    out["id"].add(c.endpoint_id)
            for p in net.peers:
                out["name"].add(p.name)
        for c in d.containers:
            out["id"].add(c.id)
            if c.sandbox_id:
                out["id"].add(c.sandbox_id)
        for ns in s.namespaces:
            if ns.kind == "container":
                out["id"].add(ns.name)
            elif ns.kind in ("lb", "overlay"):
                out["id"].add(re.split(r"[_-]", ns.name, maxsplit=1)[1])
    out["name"] = {n for n in out["name"] if n and n not in KEEP_NAMES and n not in VOCABULARY}
    out["id"] = {i for i in out["id"] if i and len(i) >= 4}
    return out


def find_leaks(text: str, values: dict[str, set[str]]) -> list[str]:
    leaks = []
    for a in values["address"]:
        if re.search(r"(?<![\d.])" + re.escape(a) + r"(?![\d])", text):
            leaks.append(f"address {a}")
    low = text.lower()
    for m in values["mac"]:
        if m in low:
            leaks.append(f"mac {m}")
    for i in values["id"]:
        if re.search(r"(?<![0-9A-Za-z])" + re.escape(i) + r"(?![0-9A-Za-z])", text):
            leaks.append(f"id {i}")
    for n in values["name"]:
        if re.search(r"(?<![A-Za-z0-9])" + re.escape(n) + r"(?![A-Za-z0-9])", text):
            leaks.append(f"name {n}")
    return leaks


def bundle_files(path: Path) -> dict[str, str]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode("utf-8", errors="replace") for m in tar.getmembers() if m.isfile()}


def scan_bundle(path: Path, values: dict[str, set[str]]) -> dict[str, list[str]]:
    """file -> leaks, for every file of the bundle (member names included)."""
    found = {}
    for name, text in bundle_files(path).items():
        leaks = find_leaks(name + "\n" + text, values)
        if leaks:
            found[name] = sorted(leaks)
    return found
