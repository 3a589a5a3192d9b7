"""Overlay data-plane facts of one node (pure): each overlay namespace's vxlan devices and the peers Docker
programmed there (a permanent neighbour entry ``endpoint IP -> MAC`` joined with the permanent FDB entry
``MAC -> dst VTEP`` on the same vxlan device, libnetwork's peerdb.go), and the host's route toward each
peer VTEP (output device, source address, MTU).

Each fact carries its ``evidence``: the entries as ``ip neigh``, ``bridge fdb`` and ``ip route get`` print
them ("1-qh4u71kyv6: fdb 02:42:0a:00:01:03 dev vxlan0 dst 10.213.0.13 self permanent").

    ov = node_facts.overlay
    net = ov.network(network_id)              # OverlayNet of the 1-<id> namespace, or None
    net.peer("10.0.1.3")                      # Peer(address='10.0.1.3', mac=..., vtep='10.213.0.13', ...)
    ov.route("10.213.0.13")                   # RouteToVtep(device='eth0', source='10.213.0.12', mtu=1500, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmscope.model import FdbEntry, Namespace, Neighbour, NsKind, Snapshot, VtepRoute

#: bytes VXLAN over IPv4 adds to each inner frame: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14)
VXLAN_OVERHEAD_V4 = 50


@dataclass(frozen=True, slots=True)
class VxlanDevice:
    """A vxlan device of an overlay namespace."""

    ns: str
    name: str
    vni: int | None
    mtu: int | None
    local: str | None  # IFLA_VXLAN_LOCAL where set (Docker sets none: the kernel picks the source by route)
    port: int | None
    learning: bool | None
    up: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote endpoint as programmed on a vxlan device: the neighbour entry for ``address`` (its MAC, whether
    permanent) and the FDB entry for that MAC (its ``vtep``, whether permanent). ``address`` is None for an FDB
    entry no neighbour entry points at; ``vtep`` is None where the MAC has no FDB entry with a dst."""

    ns: str
    address: str | None
    mac: str | None
    neigh_permanent: bool
    vtep: str | None
    fdb_permanent: bool
    evidence: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Both entries Docker programs are there, permanent, the FDB one with a VTEP."""
        return self.address is not None and self.neigh_permanent and self.vtep is not None and self.fdb_permanent


@dataclass
class OverlayNet:
    """One overlay namespace (``1-<network id>``): its vxlan devices, its bridge MTU and its peers."""

    ns: str
    network_id: str | None
    network_name: str | None
    read: bool  # whether its FDB and neighbours were read (False: older snapshot, capture, or failed)
    reason: str | None
    vxlan: tuple[VxlanDevice, ...]
    bridge_mtu: int | None
    peers: tuple[Peer, ...]
    bridge_name: str = "br0"
    _by_address: dict[str, Peer] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for p in self.peers:
            if p.address is not None:
                self._by_address.setdefault(p.address, p)

    def peer(self, address: str) -> Peer | None:
        return self._by_address.get(address)

    @property
    def mtu(self) -> int | None:
        """The overlay's MTU: the largest of its vxlan devices' and its bridge's (the largest frame the overlay
        hands to the vxlan device to encapsulate; Docker gives them all the network's MTU)."""
        mtus = [d.mtu for d in self.vxlan if d.mtu] + ([self.bridge_mtu] if self.bridge_mtu else [])
        return max(mtus) if mtus else None

    @property
    def mtu_evidence(self) -> list[str]:
        """What the overlay's MTU was read from: its vxlan devices, and its bridge where that is larger."""
        out = [d.evidence for d in self.vxlan]
        if self.bridge_mtu and self.bridge_mtu > max((d.mtu or 0 for d in self.vxlan), default=0):
            out.append(f"{self.ns}: {self.bridge_name} bridge mtu {self.bridge_mtu}")
        return out

    @property
    def vteps(self) -> list[str]:
        """The VTEPs its permanent FDB entries send to, in order of first appearance."""
        return list(dict.fromkeys(p.vtep for p in self.peers if p.vtep and p.fdb_permanent))


@dataclass(frozen=True, slots=True)
class RouteToVtep:
    """The host's route toward a peer VTEP."""

    vtep: str
    device: str | None
    source: str | None
    mtu: int | None  # the route's MTU where set, else the output device's
    error: str | None
    evidence: str


def _fdb_line(ns: str, e: FdbEntry) -> str:
    parts = [f"{ns}: fdb {e.mac} dev {e.device}"]
    if e.dst:
        parts.append(f"dst {e.dst}")
    parts += e.flags
    parts.append(e.state)
    return " ".join(parts)


def _neigh_line(ns: str, n: Neighbour) -> str:
    return f"{ns}: neigh {n.address} dev {n.device}" + (f" lladdr {n.mac}" if n.mac else "") + f" {n.state.upper()}"


def _permanent(state: str) -> bool:
    return "permanent" in state.split(",")


def overlay_net(ns: Namespace) -> OverlayNet:
    vx = tuple(
        VxlanDevice(
            ns.name, i.name, i.vxlan_id, i.mtu, i.vxlan_local, i.vxlan_port, i.vxlan_learning,
            i.admin_up and i.state in ("up", "unknown"),
            f"{ns.name}: {i.name} vxlan id {i.vxlan_id} mtu {i.mtu}"
            + (f" local {i.vxlan_local}" if i.vxlan_local else "")
            + (f" dstport {i.vxlan_port}" if i.vxlan_port is not None else ""),
        )
        for i in ns.interfaces
        if i.kind == "vxlan"
    )
    bridge = next((i for i in ns.interfaces if i.kind == "bridge"), None)
    t = ns.overlay
    peers: list[Peer] = []
    if t is not None and t.available:
        fdb_by_mac: dict[str, FdbEntry] = {}
        for e in t.fdb:
            if e.dst and e.mac not in fdb_by_mac:
                fdb_by_mac[e.mac] = e
        used: set[str] = set()
        for n in t.neighbours:
            f = fdb_by_mac.get(n.mac or "")
            if f is not None:
                used.add(f.mac)
            peers.append(Peer(
                ns.name, n.address, n.mac, _permanent(n.state),
                f.dst if f else None, _permanent(f.state) if f else False,
                (_neigh_line(ns.name, n),) + ((_fdb_line(ns.name, f),) if f else ()),
            ))
        for mac, f in fdb_by_mac.items():
            if mac not in used:
                peers.append(Peer(ns.name, None, mac, False, f.dst, _permanent(f.state), (_fdb_line(ns.name, f),)))
    return OverlayNet(
        ns.name, ns.network_id, ns.network_name, t is not None and t.available, t.reason if t is not None else None,
        vx, bridge.mtu if bridge else None, tuple(peers), bridge.name if bridge else "br0",
    )


def _route(r: VtepRoute) -> RouteToVtep:
    if r.error:
        ev = f"host: ip route get {r.destination}: {r.error}"
    else:
        ev = (f"host: ip route get {r.destination}: " + (f"via {r.gateway} " if r.gateway else "")
              + f"dev {r.device} src {r.source}" + (f" mtu {r.route_mtu}" if r.route_mtu else "")
              + (f" (dev mtu {r.device_mtu})" if r.device_mtu else ""))
    return RouteToVtep(r.destination, r.device, r.source, r.mtu, r.error, ev)


@dataclass
class OverlayFacts:
    """A node's overlay facts: each overlay namespace's (``networks``) and the host's routes to the VTEPs."""

    networks: list[OverlayNet]
    routes: dict[str, RouteToVtep]

    def network(self, network_id: str) -> OverlayNet | None:
        """The overlay namespace of ``network_id`` (its id or a prefix of it, as namespace names hold)."""
        for n in self.networks:
            if n.network_id and (n.network_id == network_id or network_id.startswith(n.network_id)):
                return n
        return None

    def route(self, vtep: str) -> RouteToVtep | None:
        return self.routes.get(vtep)


def overlay_facts(snap: Snapshot) -> OverlayFacts:
    return OverlayFacts(
        [overlay_net(ns) for ns in snap.namespaces if ns.kind == NsKind.OVERLAY and not (ns.stale or ns.vanished)],
        {r.destination: _route(r) for r in snap.host.vtep_routes},
    )
