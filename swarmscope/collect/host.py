"""Where a collection reads from: the declarative list of sources and the ``Host`` they are read through.

``SOURCES`` says, once, what a node snapshot is made of: each source's name, in which namespace kinds
it is read, the live reader (tool, netlink, /proc, the API), how redaction treats it, which raw file
the bug-report bundle keeps of it (``RawFile``: the snapshot fields, the keeper of the text as read and
the renderer of what was read without one), which captured file stands in for it, the snapshot fields
it fills, the programs (``Tool``, and how they are ``Needs``) and capabilities its live read needs.
Three readers follow it: ``collect()`` asks ``reads(name, kind)`` where a source depends on the
namespace kind; the bundle (``report._raw_files``) writes each source's raw files and its manifest says
where each source is; the agent's self-check (``agent.check_environment``) looks for each source's
tools and capabilities and says which source a missing one costs.

A ``Host`` is what ``collect()`` reads a node through. ``LiveHost`` is this machine (entering
namespaces, iptables-save, netlink, /proc and /sys, the Docker API): what ``collect()`` always did.
``CaptureHost`` reads a directory of raw captures instead (the VM tier's layout,
``<dir>/ns/<namespace>/*.txt`` and ``<dir>/docker/*.json``), through the same parsers and the same
Docker normalisers, so ``collect()`` runs without root, namespaces or a dockerd
(``collect(CollectOptions(require_root=False, host=CaptureHost(dir)))``). A source the capture lacks
raises ``SourceUnavailable``: the collector records it as skipped, with the reason, and goes on,
as it does for a tool that is not installed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from swarmscope.collect import docker_api, dockerd_log, iptables, kernel, modsupport
from swarmscope.collect.dns import ask_all
from swarmscope.collect.ipvs import read_conns, read_ipvs, read_timeouts
from swarmscope.collect.links import read_interfaces
from swarmscope.collect.listeners import read_listeners
from swarmscope.collect.nftables import read_nftables
from swarmscope.collect.overlay import read_overlay_tables, route_to
from swarmscope.collect.runner import Recorder
from swarmscope.errors import CollectError, ParseError
from swarmscope.model import (
    DnsAnswer,
    DockerdLog,
    Interface,
    IptablesDump,
    IpvsSupport,
    IpvsTable,
    KernelModule,
    Listener,
    NftRuleset,
    NsKind,
    OverlayTables,
    Provenance,
    VtepRoute,
    XtablesExtension,
)

T = TypeVar("T")

_NS = frozenset({NsKind.INGRESS_SBOX, NsKind.LB, NsKind.OVERLAY, NsKind.CONTAINER, NsKind.UNKNOWN})
_LB = frozenset({NsKind.INGRESS_SBOX, NsKind.LB})
_HOST = frozenset({NsKind.HOST})
_OVERLAY = frozenset({NsKind.OVERLAY})

#: the capabilities a live read may need: name -> (bit in CapEff, what for); a source names its own in ``caps``
CAPABILITIES: dict[str, tuple[int, str]] = {
    "CAP_NET_ADMIN": (12, "reading iptables and IPVS"),
    "CAP_SYS_ADMIN": (21, "entering the engine's network namespaces (setns)"),
}
_NET = ("CAP_NET_ADMIN", "CAP_SYS_ADMIN")  # netfilter/IPVS inside the engine's namespaces
_SETNS = ("CAP_SYS_ADMIN",)  # read inside the engine's namespaces


class Needs(StrEnum):
    """How a source's tools are needed (the agent's self-check follows it)."""

    EACH = "each"  # each tool reads a part of its own: a missing one loses that part (a requirement missing)
    ANY = "any"  # any one of them reads it all: missing only when none is found
    OPTIONAL = "optional"  # a fallback or an extra: its absence is noted, not counted as a requirement missing


@dataclass(frozen=True)
class Tool:
    """A program the live reader of a source runs (looked for on PATH by the agent's self-check)."""

    name: str
    part: str  # what is not read without it: "the legacy backend's rules"
    plural: bool = False  # ``part`` is plural ("... are not read")
    unless: str = ""  # a CollectOptions field that, when set, makes it unneeded ("dockerd_log": a file instead)


@dataclass(frozen=True)
class RawFile:
    """What the report bundle keeps of a source in each namespace's directory, ``raw/<node>/<namespace>/``
    (``report._raw_files`` writes, for each directory, the sources' files in ``SOURCES`` order)."""

    fields: tuple[str, ...]  # the snapshot fields it comes from, in order: "namespaces[].<attr>" in each
    # namespace's directory, "host.<attr>" and "node.<attr>" in the host namespace's ("host")
    text: str = ""  # render/raw.py KEEPERS[text]: keeps the value's text as read (its ``raw``) as printed,
    # or says the source was not read
    rendered: str = ""  # render/raw.py RENDERERS[rendered]: when the value holds no text (read over netlink
    # or /proc), renders the parsed value in the usual tool's form (a ``*.rendered.txt``)


@dataclass(frozen=True)
class Source:
    """One kind of data a snapshot holds."""

    name: str
    kinds: frozenset[NsKind]  # namespace kinds it is read in (HOST: the host namespace, once)
    reader: str  # how the live host reads it (for people: the README, `findings`-style docs)
    redaction: str  # what --redact does to it (for people)
    bundle: RawFile | None  # the raw file the report bundle keeps of it; None: it is in dump.json only
    capture: str  # the captured file CaptureHost reads instead, or "" (not captured: reported unavailable)
    fields: tuple[str, ...] = ()  # the snapshot fields it fills (paths as in RawFile.fields; "dns": Snapshot.dns)
    tools: tuple[Tool, ...] = ()  # the programs its live reader runs
    needs: Needs = Needs.EACH  # how the tools are needed
    caps: tuple[str, ...] = ()  # the CAPABILITIES its live read needs


SOURCES: tuple[Source, ...] = (
    # the bundle writes a namespace's raw files in this order: iptables, ipvs, interfaces, sysctls
    Source("iptables", _NS | _HOST, "iptables-nft-save and iptables-legacy-save",
           "addresses and names in the rules mapped",
           RawFile(("host.iptables", "host.iptables_other", "namespaces[].iptables", "namespaces[].iptables_other"),
                   text="iptables-save"),
           "ns/<ns>/iptables-save.txt, ns/<ns>/iptables-legacy-save.txt",
           fields=("host.iptables", "host.iptables_other", "namespaces[].iptables", "namespaces[].iptables_other"),
           tools=(Tool("iptables-nft-save", "the nft backend's rules", plural=True),
                  Tool("iptables-legacy-save", "the legacy backend's rules", plural=True)),
           caps=_NET),
    Source("nftables", _HOST, "nft -j list ruleset (read only; the native tables firewalld and ufw write)",
           "addresses and names in the rules mapped",
           RawFile(("host.nftables",), text="nft-json"),
           "ns/host/nft-list-ruleset.json",
           fields=("host.nftables",),
           tools=(Tool("nft", "the native nftables rules (firewalld, ufw)", plural=True),),
           needs=Needs.OPTIONAL, caps=("CAP_NET_ADMIN",)),
    Source("ipvs", _LB, "generic netlink, else /proc/net/ip_vs, else ipvsadm -Ln", "addresses mapped",
           RawFile(("namespaces[].ipvs",), text="ipvs", rendered="ipvsadm-Ln"),
           "ns/<ns>/proc-net-ip_vs.txt, else ns/<ns>/ipvsadm-Ln.txt",
           fields=("namespaces[].ipvs",),
           tools=(Tool("ipvsadm", "the IPVS table where neither generic netlink nor /proc/net/ip_vs answers"),),
           needs=Needs.OPTIONAL, caps=_NET),
    Source("ipvs-timeouts", _LB, "ipvsadm -L --timeout", "kept", None, "",
           fields=("namespaces[].ipvs.timeouts",), tools=(Tool("ipvsadm", "the IPVS timeouts", plural=True),),
           needs=Needs.OPTIONAL, caps=_NET),
    Source("ipvs-conns", _LB, "/proc/net/ip_vs_conn", "addresses mapped", None, "",
           fields=("namespaces[].ipvs.conns",), caps=_SETNS),
    Source("interfaces", _NS | _HOST, "rtnetlink dump (links, addresses; routes in the host)",
           "addresses and names mapped", RawFile(("host.interfaces", "namespaces[].interfaces"), rendered="ip-addr"),
           "ns/<ns>/ip-d-addr.txt, ns/host/ip-route.txt",
           fields=("host.interfaces", "host.routes", "namespaces[].interfaces"), caps=_SETNS),
    Source("overlay-fdb", _OVERLAY,
           "rtnetlink dumps (RTM_GETNEIGH: AF_BRIDGE for the vxlan devices' FDB, AF_INET for their neighbours), "
           "with a timeout per namespace", "addresses, MACs and device names mapped",
           RawFile(("namespaces[].overlay",), rendered="bridge-fdb"), "",
           fields=("namespaces[].overlay",), caps=_SETNS),
    Source("vtep-routes", _HOST,
           "rtnetlink RTM_GETROUTE for each peer VTEP (the FDB's dst addresses and the networks' Peers): one "
           "lookup each, as `ip route get`, not a dump", "addresses and device names mapped",
           RawFile(("host.vtep_routes",), rendered="ip-route-get"), "", fields=("host.vtep_routes",)),
    Source("sysctls", _LB, "/proc/sys (LB_SYSCTLS)", "kept", RawFile(("namespaces[].sysctls",), rendered="sysctl"),
           "ns/<ns>/sysctl.txt", fields=("namespaces[].sysctls",), caps=_SETNS),
    Source("node-sysctls", _HOST, "/proc/sys (NODE_SYSCTLS, rp_filter of the swarm interfaces)",
           "interface names mapped", RawFile(("node.sysctls",), rendered="sysctl"), "ns/host/sysctl.txt",
           fields=("node.sysctls",)),
    Source("dns", frozenset({NsKind.LB, NsKind.CONTAINER}), "UDP to 127.0.0.11 in the namespace (dnspython)",
           "names and addresses mapped", None, "docker/dns-<query>.txt (nslookup)", fields=("dns",), caps=_SETNS),
    Source("listeners", _HOST, "/proc/net/tcp*, /proc/net/udp*, /proc/<pid>/fd", "kept", None, "",
           fields=("host.listeners",)),
    Source("ip_vs", _HOST, "/proc/net/ip_vs, /sys/module/ip_vs, /lib/modules", "kept", None,
           "ns/host/proc-net-ip_vs.txt", fields=("node.ip_vs",)),
    Source("kernel-modules", _HOST, "/sys/module, /lib/modules", "kept", None,
           "ns/host/proc-modules.txt, ns/host/modules-dep-mesh.txt, ns/host/modules-builtin-mesh.txt",
           fields=("node.modules",)),
    Source("xtables", _HOST, "the xtables directory (libxt_ipvs.so)", "kept", None, "ns/host/xtables-ls.txt",
           fields=("node.xtables",)),
    Source("dockerd-log", _HOST, "journalctl -u docker.service, or --dockerd-log FILE", "lines mapped", None, "",
           fields=("node.dockerd_log",), tools=(Tool("journalctl", "the dockerd log", unless="dockerd_log"),),
           needs=Needs.OPTIONAL),
    Source("docker-api", _HOST, "the Docker API (info, version, services, tasks, nodes, networks, containers)",
           "names, ids and addresses mapped", None, "docker/*.json", fields=("docker",)),
)
BY_NAME = {s.name: s for s in SOURCES}


def reads(source: str, kind: NsKind | str) -> bool:
    """Whether ``source`` is read in a namespace of ``kind``."""
    return kind in BY_NAME[source].kinds


class SourceUnavailable(Exception):
    """This host cannot give the source (a capture without it): recorded as skipped, not as a failure."""


class Host:
    """What collect() reads a node through. Namespace-bound reads are called inside ``run_in`` (the live
    host's thread that entered the namespace) and are given the namespace's name ("host": the host's)."""

    kind = "abstract"

    # ---- the machine
    def is_root(self) -> bool: raise NotImplementedError
    def isdir(self, path: str) -> bool: raise NotImplementedError
    def listdir(self, path: str) -> list[str]: raise NotImplementedError
    def exists(self, path: str) -> bool: raise NotImplementedError
    def is_mounted_namespace(self, path: str) -> bool | None: raise NotImplementedError
    def run_in(self, path: str, fn: Callable[[], T], timeout: float | None) -> T: raise NotImplementedError
    def hostname(self) -> str: raise NotImplementedError
    def kernel_release(self) -> str: raise NotImplementedError
    def ipvs_support(self) -> IpvsSupport: raise NotImplementedError
    def mesh_modules(self, release: str) -> list[KernelModule]: raise NotImplementedError
    def xtables(self) -> list[XtablesExtension]: raise NotImplementedError
    def dockerd_log(self, rec: Recorder, path: str | None) -> DockerdLog: raise NotImplementedError
    def listeners(self, ports: set[int]) -> list[Listener]: raise NotImplementedError
    def docker_connect(self, host: str | None, timeout: float) -> tuple[Any, docker_api.EngineInfo]:
        raise NotImplementedError

    # ---- inside a namespace
    def interfaces(self, namespace: str) -> tuple[list[Interface], list[str]]: raise NotImplementedError
    def iptables(self, rec: Recorder, namespace: str) -> dict[str, IptablesDump]: raise NotImplementedError
    def nftables(self, rec: Recorder, namespace: str) -> NftRuleset: raise NotImplementedError
    def ipvs(self, rec: Recorder, namespace: str, support: IpvsSupport) -> IpvsTable: raise NotImplementedError
    def ipvs_timeouts(self, rec: Recorder, namespace: str, table: IpvsTable) -> None: raise NotImplementedError
    def ipvs_conns(self, rec: Recorder, namespace: str, table: IpvsTable) -> None: raise NotImplementedError
    def sysctls(self, namespace: str, names) -> dict[str, str | None]: raise NotImplementedError
    def overlay_tables(self, namespace: str, interfaces: list[Interface]) -> OverlayTables:
        raise NotImplementedError
    def vtep_routes(self, destinations: list[str], interfaces: list[Interface]) -> list[VtepRoute]:
        raise NotImplementedError
    def ask_dns(self, questions: list[tuple[str, str, str]], namespace: str, timeout: float) -> list[DnsAnswer]:
        raise NotImplementedError


class LiveHost(Host):
    """This machine, as root: what collect() has always read."""

    kind = "live"

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_mounted_namespace(self, path: str) -> bool | None:
        from swarmscope.netns import is_mounted_namespace

        return is_mounted_namespace(path)

    def run_in(self, path: str, fn: Callable[[], T], timeout: float | None) -> T:
        from swarmscope.netns import run_in_netns

        return run_in_netns(path, fn, timeout=timeout)

    def hostname(self) -> str:
        import socket

        return socket.gethostname()

    def kernel_release(self) -> str:
        return kernel.kernel_release()

    def ipvs_support(self) -> IpvsSupport:
        return kernel.ipvs_support()

    def mesh_modules(self, release: str) -> list[KernelModule]:
        return modsupport.mesh_modules(release)

    def xtables(self) -> list[XtablesExtension]:
        return [modsupport.xtables_extension("ipvs")]

    def dockerd_log(self, rec: Recorder, path: str | None) -> DockerdLog:
        return dockerd_log.read_dockerd_log(rec, path)

    def listeners(self, ports: set[int]) -> list[Listener]:
        return read_listeners(ports)

    def docker_connect(self, host: str | None, timeout: float):
        api, _, info = docker_api.connect_info(host, timeout, read_only=True)
        return api, info

    def interfaces(self, namespace: str) -> tuple[list[Interface], list[str]]:
        return read_interfaces()

    def iptables(self, rec: Recorder, namespace: str) -> dict[str, IptablesDump]:
        return iptables.read_both(rec, namespace)

    def nftables(self, rec: Recorder, namespace: str) -> NftRuleset:
        return read_nftables(rec, namespace)

    def ipvs(self, rec: Recorder, namespace: str, support: IpvsSupport) -> IpvsTable:
        return read_ipvs(rec, namespace, support)

    def ipvs_timeouts(self, rec: Recorder, namespace: str, table: IpvsTable) -> None:
        read_timeouts(rec, namespace, table)

    def ipvs_conns(self, rec: Recorder, namespace: str, table: IpvsTable) -> None:
        read_conns(rec, namespace, table)

    def sysctls(self, namespace: str, names) -> dict[str, str | None]:
        return kernel.read_sysctls(names)

    def overlay_tables(self, namespace: str, interfaces: list[Interface]) -> OverlayTables:
        return read_overlay_tables(interfaces)

    def vtep_routes(self, destinations: list[str], interfaces: list[Interface]) -> list[VtepRoute]:
        return route_to(destinations, interfaces)

    def ask_dns(self, questions: list[tuple[str, str, str]], namespace: str, timeout: float) -> list[DnsAnswer]:
        return ask_all(questions, namespace, timeout)


# --------------------------------------------------------------------------
# a directory of raw captures


def _strip_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# "))


class CaptureAPI:
    """The Docker API calls collect_view makes, answered from a capture's docker/*.json."""

    def __init__(self, docker_dir: Path):
        self.dir = docker_dir

    def _load(self, name: str, default: Any = None) -> Any:
        p = self.dir / name
        if not p.exists():
            if default is not None:
                return default
            raise SourceUnavailable(f"docker/{name} is not in the capture")
        return json.loads(p.read_text())

    def info(self) -> dict:
        return self._load("info.json")

    def version(self) -> dict:
        return self._load("version.json", {})

    def services(self) -> list:
        return self._load("service-inspect.json")

    def tasks(self) -> list:
        return self._load("task-inspect.json")

    def nodes(self) -> list:
        raw = self._load("node-inspect-self.json")
        return raw if isinstance(raw, list) else [raw]

    def networks(self) -> list:
        return self._load("network-ls.json")

    def inspect_network(self, net_id: str, verbose: bool = False) -> dict:
        for p in sorted(self.dir.glob("network-inspect-*.json")):
            for raw in json.loads(p.read_text()):
                if raw.get("Id") == net_id:
                    return raw
        raise SourceUnavailable(f"network {net_id[:12]} is not inspected in the capture")

    def containers(self, all: bool = False) -> list:  # noqa: A002 - the SDK's keyword
        raws = self._load("container-inspect.json")
        return [{"Id": c["Id"]} for c in raws if all or (c.get("State") or {}).get("Running")]

    def inspect_container(self, cid: str) -> dict:
        for c in self._load("container-inspect.json"):
            if c.get("Id") == cid:
                return c
        raise SourceUnavailable(f"container {cid[:12]} is not inspected in the capture")

    def close(self) -> None:
        pass


class CaptureHost(Host):
    """A node as captured: ``<root>/ns/<namespace>/<command>.txt`` (``host`` for the host namespace) and
    ``<root>/docker/*.json`` -- the VM tier's raw captures (tests/fixtures/vm/<phase>/)."""

    kind = "capture"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.api = CaptureAPI(self.root / "docker")

    def _ns_dir(self, namespace_or_path: str) -> Path:
        return self.root / "ns" / os.path.basename(namespace_or_path)

    def _text(self, namespace: str, name: str) -> str:
        p = self._ns_dir(namespace) / name
        if not p.exists():
            raise SourceUnavailable(f"{name} of {namespace} is not in the capture")
        return p.read_text(errors="replace")

    def _failed(self, namespace: str, name: str) -> str | None:
        """What commands.txt says when the captured command failed (its exit status is not 0)."""
        rc = self._exit(namespace, name)
        if rc is None or rc == 0:
            return None
        text = (self._ns_dir(namespace) / name).read_text(errors="replace").strip()
        return (text.splitlines() or [f"exit code {rc}"])[-1][:300]

    # ---- the machine
    def is_root(self) -> bool:
        return True

    def isdir(self, path: str) -> bool:
        return (self.root / "ns").is_dir()

    def listdir(self, path: str) -> list[str]:
        """The captured namespaces; where ``netns-list.txt`` was taken too, only those it lists (one it lists
        that was not captured is left out: the capture says nothing about it)."""
        names = [p.name for p in (self.root / "ns").iterdir() if p.is_dir() and p.name != "host"]
        listing = self.root / "netns-list.txt"
        if listing.exists():
            alive = {ln.split()[-1] for ln in listing.read_text().splitlines() if ln.startswith("-")}
            names = [n for n in names if n in alive]
        return names

    def exists(self, path: str) -> bool:
        return self._ns_dir(path).is_dir()

    def is_mounted_namespace(self, path: str) -> bool | None:
        return True

    def run_in(self, path: str, fn: Callable[[], T], timeout: float | None) -> T:
        return fn()

    def _info(self, key: str, default: str) -> str:
        try:
            return str(self.api.info().get(key) or default)
        except SourceUnavailable:
            return default

    def hostname(self) -> str:
        return self._info("Name", "capture")

    def kernel_release(self) -> str:
        return self._info("KernelVersion", "(not captured)")

    def ipvs_support(self) -> IpvsSupport:
        proc = self._ns_dir("host") / "proc-net-ip_vs.txt"
        if proc.exists() and self._failed("host", proc.name) is None:
            return IpvsSupport(available=True, method="/proc/net/ip_vs in the capture (ip_vs was loaded)")
        return IpvsSupport(available=None, method="not in the capture")

    def _exit(self, namespace: str, name: str) -> int | None:
        """The captured command's exit status (commands.txt), None when not recorded."""
        p = self._ns_dir(namespace) / "commands.txt"
        for line in p.read_text().splitlines() if p.exists() else []:
            if line.startswith(name + ":"):
                m = re.search(r"\(exit (\d+)\)$", line)
                return int(m.group(1)) if m else None
        return None

    def mesh_modules(self, release: str) -> list[KernelModule]:
        """From the host's captured /proc/modules and the module indexes' lines for the mesh's modules
        (tests/vm/guest/nscap.sh), judged by the same modsupport.module_state as a live node: the captured
        files are laid out as the kernel's own in a scratch tree, so no second copy of the rules exists."""
        if not (self._ns_dir("host") / "proc-modules.txt").exists():
            raise SourceUnavailable("kernel modules are not in the capture")
        captured_release = self._ns_dir("host") / "kernel-release.txt"
        rel = self._text("host", captured_release.name).strip() if captured_release.exists() else release
        with tempfile.TemporaryDirectory(prefix="swarmscope-capture-") as tmp:
            sys_module, lib = Path(tmp, "sys", "module"), Path(tmp, "lib", "modules", rel)
            lib.mkdir(parents=True)
            for line in self._text("host", "proc-modules.txt").splitlines():
                if line.split():
                    (sys_module / line.split()[0]).mkdir(parents=True, exist_ok=True)
                    (sys_module / line.split()[0] / "initstate").write_text("live\n")
            for index in ("modules.dep", "modules.builtin"):
                name = f"{index.replace('.', '-')}-mesh.txt"
                # grep: exit 0 (lines found) or 1 (none) means the index was read; anything else, it was not
                if (self._ns_dir("host") / name).exists() and self._exit("host", name) in (0, 1):
                    (lib / index).write_text(self._text("host", name))
            mods = modsupport.mesh_modules(rel, sys_module=str(sys_module), lib_modules=str(lib.parent))
        return [KernelModule(m.name, m.state, m.how.replace(tmp, "") + " (captured)") for m in mods]

    def xtables(self) -> list[XtablesExtension]:
        """From the captured listing of the xtables directories, judged by modsupport.xtables_extension."""
        text = self._text("host", "xtables-ls.txt") if (self._ns_dir("host") / "xtables-ls.txt").exists() else None
        if text is None:
            raise SourceUnavailable("the xtables directory is not in the capture")
        with tempfile.TemporaryDirectory(prefix="swarmscope-capture-") as tmp:
            dirs: list[str] = []
            here: Path | None = None
            for line in text.splitlines():
                if line.startswith("/") and line.endswith(":"):
                    here = Path(tmp + line[:-1])
                    here.mkdir(parents=True, exist_ok=True)
                    dirs.append(str(here))
                elif here is not None and line.strip() and "/" not in line.strip():
                    (here / line.strip()).touch()
            ext = modsupport.xtables_extension("ipvs", dirs)

            def untmp(text: str | None) -> str | None:
                return text.replace(tmp, "") if text is not None else None

            return [XtablesExtension(ext.name, ext.found, untmp(ext.path), (untmp(ext.how) or "") + " (captured)")]

    def dockerd_log(self, rec: Recorder, path: str | None) -> DockerdLog:
        reason = "the dockerd log is not in the capture"
        rec.skipped("dockerd log", "host", reason)
        return DockerdLog(source="capture", available=False, reason=reason)

    def listeners(self, ports: set[int]) -> list[Listener]:
        raise SourceUnavailable("listening sockets are not in the capture")

    def docker_connect(self, host: str | None, timeout: float):
        try:
            return self.api, docker_api.engine_info(self.api)
        except SourceUnavailable as exc:  # as an engine that does not answer: the namespaces are still read
            raise CollectError(f"the Docker API is not in the capture: {exc}") from None

    # ---- inside a namespace
    def interfaces(self, namespace: str) -> tuple[list[Interface], list[str]]:
        from swarmscope.parse.iproute import parse_ip_addr

        ifaces = parse_ip_addr(self._text(namespace, "ip-d-addr.txt"))
        index = {i.name: i.index for i in ifaces}
        for i in ifaces:  # netlink gives the master's index; `ip addr` prints its name
            if i.master and i.master_index is None:
                i.master_index = index.get(i.master)
        routes: list[str] = []
        if namespace == "host" and (self._ns_dir(namespace) / "ip-route.txt").exists():
            from swarmscope.parse.ipoutput import parse_ip_route

            routes = [r.destination for r in parse_ip_route(self._text(namespace, "ip-route.txt"))]
        return ifaces, routes

    def iptables(self, rec: Recorder, namespace: str) -> dict[str, IptablesDump]:
        from swarmscope.parse.iptables import parse_iptables_save

        out: dict[str, IptablesDump] = {}
        for backend, name in (("nft", "iptables-save.txt"), ("legacy", "iptables-legacy-save.txt")):
            what = f"iptables-{backend}-save"
            p = self._ns_dir(namespace) / name
            if not p.exists():
                reason = f"{name} is not in the capture"
                rec.skipped(what, namespace, reason, [what])
                out[backend] = IptablesDump(backend=backend, available=False, reason=reason)
                continue
            text = p.read_text(errors="replace")
            failed = self._failed(namespace, name)
            if failed is not None:
                rec.add(Provenance(what=what, namespace=namespace, status="failed", argv=[what], reason=failed))
                out[backend] = IptablesDump(backend=backend, available=False, reason=failed, raw=text)
                continue
            try:
                out[backend] = parse_iptables_save(text, backend=backend)
            except ParseError as exc:
                rec.add(Provenance(what=what, namespace=namespace, status="failed", argv=[what],
                                   reason=f"parse error: {exc}"))
                out[backend] = IptablesDump(backend=backend, available=False,
                                            reason=f"could not parse the output: {exc}", raw=text)
                continue
            rec.add(Provenance(what=what, namespace=namespace, status="ok", argv=[what], exit_code=0))
        return out

    def nftables(self, rec: Recorder, namespace: str) -> NftRuleset:
        from swarmscope.collect.nftables import WHAT, parse_ruleset

        name = "nft-list-ruleset.json"
        p = self._ns_dir(namespace) / name
        if not p.exists():
            reason = f"{name} is not in the capture"
            rec.skipped(WHAT, namespace, reason, ["nft"])
            return NftRuleset(available=False, reason=reason)
        text = p.read_text(errors="replace")
        failed = self._failed(namespace, name)
        if failed is not None:
            rec.add(Provenance(what=WHAT, namespace=namespace, status="failed", argv=["nft"], reason=failed))
            return NftRuleset(available=False, reason=failed, raw=text)
        rec.add(Provenance(what=WHAT, namespace=namespace, status="ok", argv=["nft"], exit_code=0))
        return parse_ruleset(rec, namespace, text)

    def ipvs(self, rec: Recorder, namespace: str, support: IpvsSupport) -> IpvsTable:
        from swarmscope.parse.ipvs import parse_ipvsadm_list, parse_proc_ip_vs

        if support.available is False:
            reason = support.detail or "the kernel had no ip_vs"
            rec.skipped("ipvs", namespace, reason)
            return IpvsTable(available=False, reason=reason)
        d = self._ns_dir(namespace)
        for name, source, parse in (("proc-net-ip_vs.txt", "proc", parse_proc_ip_vs),
                                    ("ipvsadm-Ln.txt", "ipvsadm", parse_ipvsadm_list)):
            if (d / name).exists() and self._failed(namespace, name) is None:
                text = (d / name).read_text(errors="replace")
                with rec.step(f"read {name} (capture)", namespace):
                    return IpvsTable(available=True, source=source, services=parse(_strip_comments(text)), raw=text)
        reason = "no IPVS table in the capture (proc-net-ip_vs.txt, ipvsadm-Ln.txt)"
        rec.skipped("ipvs", namespace, reason)
        return IpvsTable(available=False, reason=reason)

    def ipvs_timeouts(self, rec: Recorder, namespace: str, table: IpvsTable) -> None:
        rec.skipped("ipvsadm -L --timeout", namespace, "the IPVS timeouts are not in the capture")

    def ipvs_conns(self, rec: Recorder, namespace: str, table: IpvsTable) -> None:
        table.conns_reason = "the IPVS connection table is not in the capture"
        rec.skipped("read /proc/net/ip_vs_conn", namespace, table.conns_reason)

    def sysctls(self, namespace: str, names) -> dict[str, str | None]:
        values: dict[str, str] = {}
        for line in self._text(namespace, "sysctl.txt").splitlines():
            if " = " in line and not line.startswith("#"):
                k, v = line.split(" = ", 1)
                values[k.strip()] = v.strip()
        return {n: values.get(n) for n in names}

    def overlay_tables(self, namespace: str, interfaces: list[Interface]) -> OverlayTables:
        raise SourceUnavailable("the overlay FDB and neighbour entries are not in the capture")

    def vtep_routes(self, destinations: list[str], interfaces: list[Interface]) -> list[VtepRoute]:
        raise SourceUnavailable("the routes toward the peer VTEPs are not in the capture")

    def ask_dns(self, questions: list[tuple[str, str, str]], namespace: str, timeout: float) -> list[DnsAnswer]:
        """The answers the capture holds (``docker/dns-<query>.txt``, nslookup from a task); a question
        it lacks is not answered (left out, as --no-dns leaves it)."""
        from swarmscope.parse.dnsout import parse_nslookup

        out: list[DnsAnswer] = []
        for service, net_id, net_name in questions:
            for query in (service, f"tasks.{service}"):
                p = self.root / "docker" / f"dns-{query}.txt"
                if not p.exists():
                    continue
                look = parse_nslookup(p.read_text(errors="replace"))
                answers = sorted({a for a in look.answers if ":" not in a}, key=ipaddress.ip_address)
                status = look.status if look.status in ("ok", "nxdomain", "noanswer", "timeout") else "error"
                out.append(DnsAnswer(service=service, network_id=net_id, network_name=net_name, query=query,
                                     namespace=namespace, status=status, answers=answers, reason=look.reason))
        return out
