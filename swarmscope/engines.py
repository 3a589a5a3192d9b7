"""What each engine generation programs, as data: one place for engine-version knowledge.

A profile is chosen from the node's engine version (``docker version``'s
``Server.Version``). Every expectation that differs between engines lives in a
profile, read from moby's source at the release tags (``libnetwork/osl/
namespace_linux.go`` ``ApplyOSTweaks``; ``service_linux.go`` ``fwMarker``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class Version:
    """An engine (or API) version: major, minor, patch; compares as a tuple."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Version | None:
        """``20.10.24+dfsg1``, ``28.5.2``, ``v26.1.5``, ``1.41`` -> Version; None where it does not read."""
        m = _VERSION.match(text or "")
        if not m:
            return None
        try:
            return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# the IPVS tuning dockerd writes (osl ApplyOSTweaks), by generation
_VS_NODEST = {"net.ipv4.vs.expire_nodest_conn": "1"}
_VS_20_10 = {
    "net.ipv4.vs.conn_reuse_mode": "0",
    "net.ipv4.vs.expire_nodest_conn": "1",
    "net.ipv4.vs.expire_quiescent_template": "1",
}


@dataclass(frozen=True)
class EngineProfile:
    name: str
    since: Version  # the first engine version this profile describes
    #: 18.06 moved VIP load balancing from every task sandbox into one lb_<network> sandbox per node
    lb_sandboxes: bool = True
    #: sysctls dockerd writes in each lb_ sandbox and in ingress_sbox
    lb_sysctls: dict[str, str] = field(default_factory=dict)
    ingress_sysctls: dict[str, str] = field(default_factory=dict)
    #: net.ipv4.vs.conntrack=1 is written in the sandbox before the SNAT and MARK rules (NAT mode)
    conntrack_with_snat: bool = True
    #: how this profile was verified: "live" (a lab or VM run of that engine) or "source" (moby's code only)
    verified: str = "source"


PROFILES: tuple[EngineProfile, ...] = (
    EngineProfile("pre-18.06", Version(0, 0), lb_sandboxes=False),
    # ApplyOSTweaks for SandboxTypeLoadBalancer only: expire_nodest_conn
    EngineProfile("18.06", Version(18, 6), lb_sysctls=_VS_NODEST),
    # conn_reuse_mode and expire_quiescent_template added, still lb_ only
    EngineProfile("20.10", Version(20, 10, 0), lb_sysctls=_VS_20_10),
    # 20.10.17: SandboxTypeIngress too (vendored libnetwork f6ccccb1); live on 20.10.24 (lab and VM tier)
    EngineProfile("20.10.17", Version(20, 10, 17), lb_sysctls=_VS_20_10, ingress_sysctls=_VS_20_10, verified="live"),
    # 25: the ingress --sport rule uses -m conntrack --ctstate instead of -m state; live on 26.1.5 (lab)
    EngineProfile("25.0", Version(25, 0), lb_sysctls=_VS_20_10, ingress_sysctls=_VS_20_10, verified="live"),
    # 28: FORWARD holds only DOCKER-USER and DOCKER-FORWARD; DOCKER-INGRESS is inserted first in
    # DOCKER-FORWARD (before DOCKER-BRIDGE's `! -i docker_gwbridge -o docker_gwbridge -j DROP`); live on 28.5.2 (lab)
    EngineProfile("28.0", Version(28, 0), lb_sysctls=_VS_20_10, ingress_sysctls=_VS_20_10, verified="live"),
    # 29: DOCKER-INTERNAL replaces the DOCKER-ISOLATION-STAGE-* chains; the nftables firewall backend is
    # refused in swarm mode, so ingress and load-balancer rules stay iptables; same sysctls (docker-v29.7.2)
    EngineProfile("29.0", Version(29, 0), lb_sysctls=_VS_20_10, ingress_sysctls=_VS_20_10),
)
NEWEST = PROFILES[-1]

#: the oldest engine whose layout swarmscope reads fully
SUPPORTED_SINCE = Version(18, 6)


def newer_than_profiles(engine_version: str | None) -> bool:
    """An engine of a major release no profile names yet: judged with the newest profile, and said so."""
    v = Version.parse(engine_version)
    return v is not None and v.major > NEWEST.since.major


def profile_for(engine_version: str | None) -> EngineProfile | None:
    """The newest profile not newer than the engine; None when the version does not read."""
    v = Version.parse(engine_version)
    if v is None:
        return None
    chosen = PROFILES[0]
    for p in PROFILES:
        if v >= p.since:
            chosen = p
    return chosen
