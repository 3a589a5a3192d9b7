"""Kernel facts: ip_vs support, sysctls, and which iptables backend the engine uses."""

from __future__ import annotations

import os
import platform

from swarmscope.model import IptablesBackend, IptablesDump, IpvsSupport

NODE_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.docker_gwbridge.route_localnet",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.docker_gwbridge.rp_filter",
    "net.bridge.bridge-nf-call-iptables",
)

LB_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.vs.conntrack",
    "net.ipv4.vs.conn_reuse_mode",
    "net.ipv4.vs.expire_nodest_conn",
    "net.ipv4.vs.expire_quiescent_template",
)

# chains only the engine creates: where they are, the engine's backend is
ENGINE_CHAINS = ("DOCKER", "DOCKER-USER", "DOCKER-INGRESS", "DOCKER-ISOLATION-STAGE-1", "DOCKER-FORWARD")


def read_sysctls(names) -> dict[str, str | None]:
    """Read sysctls of the calling thread's network namespace; missing ones are None.

    ``/proc/sys/net`` is resolved against the namespace of the task that opens
    the file, so from a thread that entered a namespace this reads that
    namespace's values.
    """
    out: dict[str, str | None] = {}
    for name in names:
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path) as fh:
                out[name] = fh.read().strip()
        except OSError:
            out[name] = None
    return out


def kernel_release() -> str:
    return platform.release()


def ipvs_support() -> IpvsSupport:
    """Establish whether this kernel has ip_vs loaded, without loading anything.

    The generic netlink family lookup is deliberately not used here: since
    Linux 5.16 ip_vs declares MODULE_ALIAS_GENL_FAMILY, so asking for the
    "IPVS" family would make the kernel load the module — a change to the host.
    """
    if os.path.exists("/proc/net/ip_vs"):
        return IpvsSupport(available=True, method="/proc/net/ip_vs exists (ip_vs is loaded)")
    if os.path.isdir("/sys/module/ip_vs"):
        return IpvsSupport(available=True, method="/sys/module/ip_vs exists (ip_vs is loaded)")
    rel = kernel_release()
    on_disk = None
    for index in (f"/lib/modules/{rel}/modules.builtin", f"/lib/modules/{rel}/modules.dep"):
        try:
            with open(index) as fh:
                if any("/ip_vs.ko" in line for line in fh):
                    on_disk = index
                    break
        except OSError:
            continue
    detail = (
        f"ip_vs is listed in {on_disk} but not loaded: `modprobe ip_vs`, then restart dockerd"
        if on_disk
        else f"kernel {rel} has no ip_vs (not loaded, no module under /lib/modules/{rel}): "
        "this kernel cannot run the swarm routing mesh; use a kernel with CONFIG_IP_VS"
    )
    return IpvsSupport(
        available=False,
        method="/proc/net/ip_vs and /sys/module/ip_vs are absent",
        detail=detail,
    )


def _engine_rules(dump: IptablesDump | None) -> int:
    if dump is None or not dump.available:
        return 0
    n = 0
    for t in dump.tables.values():
        for name, chain in t.chains.items():
            if name in ENGINE_CHAINS:
                n += 1 + len(chain.rules)
    return n


def decide_backend(dumps: dict[str, IptablesDump]) -> IptablesBackend:
    """Which backend holds the engine's chains in the host namespace."""
    nft, legacy = _engine_rules(dumps.get("nft")), _engine_rules(dumps.get("legacy"))
    backend: str | None
    if nft or legacy:
        backend = "nft" if nft >= legacy else "legacy"
        method = f"docker chains found: nft {nft} entries, legacy {legacy}"
    else:
        backend = _alternatives_backend()
        method = "no docker chains in either backend; using the system's iptables alternative"
    if backend is None:
        return IptablesBackend(engine_backend=None, method=method + " (unknown)")
    other = "legacy" if backend == "nft" else "nft"
    odump = dumps.get(other)
    return IptablesBackend(
        engine_backend=backend,
        method=method,
        other_backend=other,
        other_backend_rules=odump.rule_count if odump is not None and odump.available else 0,
    )


def _alternatives_backend() -> str | None:
    for path in ("/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"):
        try:
            target = os.path.realpath(path)
        except OSError:
            continue
        if not os.path.exists(target):
            continue
        base = os.path.basename(target)
        if "nft" in base:
            return "nft"
        if "legacy" in base:
            return "legacy"
    return None
