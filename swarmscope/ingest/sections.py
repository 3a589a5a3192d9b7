"""Split text a user has into sections: one command's output each, with where it came from (pure).

Two inputs are read:

* a **support.sh transcript** (moby's ``libnetwork/support/support.sh``): ``# CMD`` lines (its
  ``echo_and_run``) each followed by the command's output, ``nnn Network ID`` followed by
  ``docker network inspect --verbose`` JSON, ``ccc Container ID state: S`` followed by its
  ``docker container inspect --format`` lines, the section titles it prints, and ``==SUMMARY==``.
  Several transcripts concatenated (one per node) are split where a new ``Host iptables`` title
  follows a summary; ``docker info`` output before a transcript names its node.
* a **pasted file**: one command's output, whose command is named by a first line
  ``# COMMAND`` or ``$ COMMAND`` (the form support.sh prints; ``nsenter --net=PATH`` names the
  namespace) or, without one, recognised from its content (:func:`recognise`).

A section knows its file, first and last line, the command (when named), the namespace, the
node index, and its kind (what parser reads it). Nothing is parsed here.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

__all__ = ["Section", "split_transcript", "recognise", "command_kind", "looks_like_transcript"]


@dataclass
class Section:
    kind: str  # see KINDS
    text: str
    source: str  # file name as given
    first: int  # 1-based line numbers in the file
    last: int
    node: int = 0  # index of the node within the file (concatenated transcripts)
    command: str | None = None  # as printed
    namespace: str = "host"  # "host" or the namespace file name
    ns_path: str | None = None
    table: str | None = None  # iptables -t
    extra: dict = field(default_factory=dict)  # container id/state, network id, ...

    @property
    def where(self) -> str:
        return f"{self.source}:{self.first}" + (f"-{self.last}" if self.last > self.first else "")


#: what each kind of section holds
KINDS = {
    "iptables-list": "iptables -L listing",
    "iptables-save": "iptables-save / iptables -S",
    "ipvsadm": "ipvsadm -L -n",
    "ipvsadm-save": "ipvsadm -S",
    "proc-ip_vs": "/proc/net/ip_vs",
    "ip-addr": "ip addr",
    "ip-o-addr": "ip -o address show",
    "ip-o-link": "ip -o link show",
    "ip-route": "ip route show",
    "ip-neigh": "ip neigh show",
    "bridge-fdb": "bridge fdb show",
    "network-inspect": "docker network inspect (-v) JSON",
    "container": "support.sh container block (docker container inspect --format)",
    "container-inspect": "docker container inspect JSON",
    "service-inspect": "docker service inspect JSON",
    "docker-info": "docker info",
    "dns": "dig / nslookup / getent",
    "sysctl": "sysctl output (key = value)",
    "overlap": "support.sh IP overlap check",
    "summary": "support.sh summary",
    "nnn-marker": "support.sh network marker",
}

_NSENTER = re.compile(r"^nsenter\s+(?:-n|--net)[= ](\S+)\s+(.*)$")
_PROMPT = re.compile(r"^(?:\[[^\]]*\][#$]|[\w.@:~/-]*[#$])\s+")


def command_kind(command: str) -> tuple[str | None, str, str | None, str | None]:
    """(kind, command without nsenter/sudo, namespace path, iptables table) of a command line."""
    cmd = command.strip()
    cmd = re.sub(r"^(sudo\s+(-\S+\s+)*)", "", cmd)
    ns_path = None
    m = _NSENTER.match(cmd)
    if m:
        ns_path, cmd = m.group(1), m.group(2)
    cmd = re.sub(r"^(ip\s+netns\s+exec\s+(\S+)\s+)", lambda mm: "", cmd) if cmd.startswith("ip netns exec") else cmd
    cmd = re.sub(r"\s*\|.*$", "", cmd)  # "| grep -v '^$'"
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    if not words:
        return None, cmd, ns_path, None
    prog = words[0].rsplit("/", 1)[-1]
    args = words[1:]
    table = None
    if prog in ("iptables", "iptables-nft", "iptables-legacy"):
        for i, w in enumerate(args):
            if w in ("-t", "--table") and i + 1 < len(args):
                table = args[i + 1]
            elif w.startswith("-t") and len(w) > 2 and not w.startswith("--"):
                table = w[2:]
        flags = "".join(w[1:] for w in args if w.startswith("-") and not w.startswith("--"))
        if "S" in flags or "--list-rules" in args:
            return "iptables-save", cmd, ns_path, table
        if "L" in flags or "--list" in args:
            return "iptables-list", cmd, ns_path, table or "filter"
        return None, cmd, ns_path, table
    if prog in ("iptables-save", "iptables-nft-save", "iptables-legacy-save"):
        return "iptables-save", cmd, ns_path, table
    if prog == "ipvsadm":
        flags = "".join(w[1:] for w in args if w.startswith("-") and not w.startswith("--"))
        if "S" in flags or "--save" in args:
            return "ipvsadm-save", cmd, ns_path, None
        return "ipvsadm", cmd, ns_path, None
    if prog == "cat" and args and args[-1].endswith("/net/ip_vs"):
        return "proc-ip_vs", cmd, ns_path, None
    if prog == "ip":
        opts = [w for w in args if w.startswith("-")]
        rest = [w for w in args if not w.startswith("-")]
        obj = rest[0] if rest else ""
        oneline = "-o" in opts or "-oneline" in opts
        if "address".startswith(obj) and obj:
            return ("ip-o-addr" if oneline else "ip-addr"), cmd, ns_path, None
        if "link".startswith(obj) and obj and oneline:
            return "ip-o-link", cmd, ns_path, None
        if "route".startswith(obj) and obj:
            return "ip-route", cmd, ns_path, None
        if obj and ("neighbour".startswith(obj) or "neighbor".startswith(obj)):
            return "ip-neigh", cmd, ns_path, None
        return None, cmd, ns_path, None
    if prog == "bridge" and args[:1] == ["fdb"]:
        return "bridge-fdb", cmd, ns_path, None
    if prog == "docker":
        if args[:2] in (["network", "inspect"],):
            return "network-inspect", cmd, ns_path, None
        if args[:2] in (["service", "inspect"],):
            return "service-inspect", cmd, ns_path, None
        if args[:1] == ["info"]:
            return "docker-info", cmd, ns_path, None
        if args[:1] == ["inspect"] or args[:2] == ["container", "inspect"]:
            return "container-inspect", cmd, ns_path, None
        if args[:1] == ["exec"] and len(args) > 2 and args[2] in ("dig", "nslookup", "getent", "host"):
            return "dns", cmd, ns_path, None
        return None, cmd, ns_path, None
    if prog in ("dig", "nslookup", "getent"):
        return "dns", cmd, ns_path, None
    if prog == "sysctl":
        return "sysctl", cmd, ns_path, None
    return None, cmd, ns_path, None


def _ns_name(path: str | None) -> str:
    if not path:
        return "host"
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name or "host"


_DOCKER_INFO_START = re.compile(r"^(Client:|Server:)\s*")
_TITLES = ("Host iptables", "Host links addresses and routes", "Overlay network configuration",
           "Container network configuration")


def looks_like_transcript(text: str) -> bool:
    return (
        bool(re.search(r"^(nnn Network |ccc Container |Host iptables$|==SUMMARY==)", text, re.M))
        or len(re.findall(r"^# (?:nsenter\s|iptables\s|ip\s|ipvsadm\s)", text, re.M)) >= 2
    )


def split_transcript(text: str, source: str) -> tuple[list[Section], list[str]]:
    """Sections of a support.sh transcript (or of several concatenated), and what was skipped.

    Skipped text (lines no section owns that are not support.sh's own titles) is listed as
    ``"FILE:LINE: reason"``; it never stops the reading."""
    lines = text.splitlines()
    sections: list[Section] = []
    skipped: list[str] = []
    node = 0
    seen_summary = False
    node_has_content = False
    i = 0
    n = len(lines)

    def add(kind, first, last, **kw):
        body = "\n".join(lines[first : last + 1]) + "\n"
        sections.append(Section(kind=kind, text=body, source=source, first=first + 1, last=last + 1, node=node, **kw))

    def block_end(start: int) -> int:
        """Index of the last line of the output that starts at ``start`` (before the next marker)."""
        j = start
        while j < n and not _is_marker(lines[j]):
            j += 1
        return j - 1

    while i < n:
        line = lines[i]
        s = line.strip()
        if not s:
            i += 1
            continue
        if s == "Host iptables" and (
            seen_summary or (node_has_content and any(x.node == node for x in sections if x.kind != "docker-info"))
        ):
            node += 1
            seen_summary = False
            node_has_content = False
        if s in _TITLES or s.startswith("This tool requires"):
            i += 1
            continue
        if s == "==SUMMARY==":
            j = i + 1
            while j < n and lines[j].startswith("\t"):
                j += 1
            add("summary", i, j - 1)
            seen_summary = True
            i = j
            continue
        if _DOCKER_INFO_START.match(s) and _docker_info_ahead(lines, i):
            j = i + 1
            while j < n and (
                lines[j].startswith(" ")
                or not lines[j].strip()
                or lines[j].startswith("WARNING")
                or re.match(r"^(Client|Server):", lines[j])
            ):
                if _is_marker(lines[j]):
                    break
                j += 1
            if seen_summary:  # a docker info after a finished transcript belongs to the next node
                node += 1
                seen_summary = False
                node_has_content = False
            add("docker-info", i, j - 1)
            i = j
            continue
        if s.startswith("nnn Network "):
            nid = s.split()[2] if len(s.split()) > 2 else ""
            node_has_content = True
            add("nnn-marker", i, i, extra={"network": nid})
            if nid == "ingress_sbox":
                i += 1
                continue
            j = i + 1
            if j < n and lines[j].startswith("["):
                k = j
                while k < n and lines[k] != "]" and not _is_marker(lines[k]):
                    k += 1
                if k < n and lines[k] != "]":
                    k -= 1  # cut before the next section: the JSON is incomplete and will be listed as skipped
                add("network-inspect", j, min(k, n - 1), extra={"network": nid})
                j = k + 1
            while j < n and (
                lines[j].strip() in ("No overlap", "")
                or lines[j].startswith("*** OVERLAP")
                or (lines[j].strip() and not _is_marker(lines[j]) and not lines[j].startswith("#"))
            ):
                if lines[j].startswith("*** OVERLAP"):
                    k = j + 1
                    while k < n and not _is_marker(lines[k]):
                        k += 1
                    add("overlap", j, k - 1, extra={"network": nid})
                    j = k
                    break
                if lines[j].strip() not in ("No overlap", ""):
                    skipped.append(
                        f"{source}:{j + 1}: unexpected text after network {nid}'s inspect: {lines[j].strip()[:80]}"
                    )
                j += 1
            i = j
            continue
        if s.startswith("ccc Container "):
            m = re.match(r"^ccc Container (\S+)(?: state: (\S+))?", s)
            cid, state = (m.group(1), m.group(2)) if m else ("?", None)
            node_has_content = True
            j = i + 1
            while j < n and re.match(
                r"^(Name|Id|Hostname|CreatedAt|State|RestartCount|Labels|NetworkSettings):", lines[j]
            ):
                j += 1
            add("container", i + 1, j - 1, extra={"container": cid, "status": state})
            i = j
            continue
        if s.startswith("# ") or s.startswith("$ "):
            cmd = _PROMPT.sub("", s[2:].strip())
            kind, plain, ns_path, table = command_kind(cmd)
            end = block_end(i + 1)
            node_has_content = True
            if kind is None:
                skipped.append(f"{source}:{i + 1}: command not read by swarmscope: {cmd[:100]}")
            else:
                sections.append(
                    Section(
                        kind=kind,
                        text="\n".join(lines[i + 1 : end + 1]) + "\n",
                        source=source,
                        first=i + 2,
                        last=max(end + 1, i + 2),
                        node=node,
                        command=cmd,
                        namespace=_ns_name(ns_path),
                        ns_path=ns_path,
                        table=table,
                    )
                )
            i = end + 1
            continue
        skipped.append(f"{source}:{i + 1}: not part of a support.sh transcript: {s[:80]}")
        i += 1
    return sections, skipped


def _docker_info_ahead(lines: list[str], i: int) -> bool:
    window = "\n".join(lines[i : i + 40])
    return " Server Version:" in window or "Server Version:" in window or " Context:" in window


def _is_marker(line: str) -> bool:
    s = line.strip()
    return (
        line.startswith("# ")
        or line.startswith("nnn Network ")
        or line.startswith("ccc Container ")
        or s in _TITLES
        or s == "==SUMMARY=="
        or s.startswith("This tool requires")
    )


# --------------------------------------------------------------------------- pasted files

_SYSCTL = re.compile(r"^[a-z0-9_.\-/]+\s*=\s*\S*$")


def recognise(text: str) -> str | None:
    """The kind of one command's output, from its content alone (None: not one swarmscope reads)."""
    s = text.lstrip()
    if not s:
        return None
    first = s.splitlines()[0].strip()
    if first.startswith("["):
        try:
            data = json.loads(s)
        except ValueError:
            data = None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            d = data[0]
            if "IPAM" in d and "Driver" in d:
                return "network-inspect"
            if "Spec" in d and "Endpoint" in d:
                return "service-inspect"
            if "NetworkSettings" in d and "State" in d:
                return "container-inspect"
        return None
    if first.startswith("Chain ") and re.search(r"^\s*(num\s+)?(pkts\s+bytes\s+)?target\s+prot", s, re.M):
        return "iptables-list"
    if re.search(r"^\*(filter|nat|mangle|raw|security)\s*$", s, re.M) or re.match(r"^-[PNA] \S+", first):
        return "iptables-save"
    if first.startswith("IP Virtual Server version") or first.startswith("Prot LocalAddress:Port"):
        return "ipvsadm"
    if first.startswith("Can't initialize ipvs"):
        return "ipvsadm"
    if re.match(r"^-A -[tuf] ", first):
        return "ipvsadm-save"
    if re.match(r"^\d+:\s+\S+\s+inet6?\s", first):
        return "ip-o-addr"
    if re.match(r"^\d+:\s+\S+?:\s+<", first):
        if "\\" in first and "link/" in first:
            return "ip-o-link"
        return "ip-addr"
    if re.match(
        r"^((default|unicast|local|broadcast|blackhole|unreachable|prohibit)\s|[0-9.]+(/\d+)?\s+(via|dev)\s)", first
    ):
        return "ip-route"
    if re.match(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\s+dev\s", first):
        return "bridge-fdb"
    if re.match(r"^[0-9a-fA-F.:]+\s+dev\s+\S+", first):
        return "ip-neigh"
    if _DOCKER_INFO_START.match(first) and ("Server Version:" in s or "Containers:" in s):
        return "docker-info"
    if "<<>> DiG" in s or re.search(r"^\s*Server:\s", s, re.M) or ";; connection timed out" in s:
        return "dns"
    if re.match(r"^IP Virtual Server version", first) or first.startswith("Prot LocalAddress:Port Scheduler"):
        return "proc-ip_vs"
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    if lines and all(_SYSCTL.match(ln) for ln in lines) and any(ln.startswith("net.") for ln in lines):
        return "sysctl"
    if (
        lines
        and all(re.match(r"^[0-9a-fA-F.:]+(\s+(STREAM|DGRAM|RAW|\S+))*\s*$", ln) for ln in lines)
        and all(
            re.match(r"^[0-9a-fA-F.:]+$", ln.split()[0]) and ("." in ln.split()[0] or ":" in ln.split()[0])
            for ln in lines
        )
    ):
        return "dns"
    return None


def split_pasted(text: str, source: str) -> tuple[list[Section], list[str]]:
    """One pasted file: a support.sh transcript, or one command's output (named by a first
    ``# CMD``/``$ CMD`` line or recognised from its content). An unknown file raises ValueError
    with what was expected."""
    if looks_like_transcript(text):
        return split_transcript(text, source)
    lines = text.splitlines()
    k = 0
    while k < len(lines) and not lines[k].strip():
        k += 1
    head = lines[k].strip() if k < len(lines) else ""
    if head.startswith(("# ", "$ ")) or _PROMPT.match(head):
        cmd = _PROMPT.sub("", head[2:] if head.startswith(("# ", "$ ")) else head).strip()
        kind, plain, ns_path, table = command_kind(cmd)
        body = "\n".join(lines[k + 1 :]) + "\n"
        if kind is not None:
            return [
                Section(
                    kind=kind,
                    text=body,
                    source=source,
                    first=k + 2,
                    last=max(len(lines), k + 2),
                    command=cmd,
                    namespace=_ns_name(ns_path),
                    ns_path=ns_path,
                    table=table,
                )
            ], []
        if head.startswith("# "):  # a comment, not a command: recognise what follows
            kind = recognise(body)
            if kind is not None:
                return [Section(kind=kind, text=body, source=source, first=k + 2, last=max(len(lines), k + 2))], []
        raise ValueError(f"its first line names a command swarmscope does not read ({cmd[:60]!r})")
    kind = recognise(text)
    if kind is None:
        raise ValueError("it is none of the formats swarmscope reads")
    return [Section(kind=kind, text=text, source=source, first=1, last=max(len(lines), 1))], []
