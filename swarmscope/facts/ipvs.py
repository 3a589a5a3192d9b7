"""IPVS facts of one network namespace (pure): firewall-mark services and their real servers.

Each fact carries its ``evidence``: the entry as swarmscope shows it ("IPVS FWM 259 rr (2 real servers)",
"IPVS FWM 259 -> 10.0.0.5:0 Masq weight 1 active 0 inactive 0"). Services are indexed by mark once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmscope.model import IpvsDest, IpvsService, IpvsTable


@dataclass(frozen=True, slots=True)
class RealServer:
    """A real server of an IPVS service."""

    address: str
    port: int
    forward: str
    weight: int | None
    active: int
    inactive: int
    evidence: str


@dataclass(frozen=True, slots=True)
class FwmService:
    """IPVS service ``FWM mark`` with its scheduler and real servers."""

    mark: int
    scheduler: str
    dests: tuple[RealServer, ...]
    evidence: str


def _real(s: IpvsService, d: IpvsDest) -> RealServer:
    return RealServer(
        d.address,
        d.port,
        d.forward,
        d.weight,
        d.active,
        d.inactive,
        f"IPVS {s.key} -> {d.address}:{d.port} {d.forward} weight {d.weight} active {d.active} inactive {d.inactive}",
    )


def _fwm(s: IpvsService) -> FwmService:
    assert s.fwmark is not None
    return FwmService(
        s.fwmark,
        s.scheduler,
        tuple(_real(s, d) for d in s.dests),
        f"IPVS {s.key} {s.scheduler} ({len(s.dests)} real servers)",
    )


@dataclass
class IpvsFacts:
    """The IPVS facts of one namespace; ``read`` False where IPVS was not read at all, ``available`` False
    where reading it failed (``reason`` says why)."""

    table: IpvsTable | None
    _by_mark: dict[int, FwmService] | None = field(default=None, repr=False)

    @property
    def read(self) -> bool:
        return self.table is not None

    @property
    def available(self) -> bool:
        return self.table is not None and self.table.available

    @property
    def reason(self) -> str | None:
        return self.table.reason if self.table is not None else None

    def service_keys(self) -> list[str]:
        """Every service's key ("FWM 259", "TCP 10.0.0.2:80"), in order."""
        return [s.key for s in self.table.services] if self.table is not None else []

    def fwm(self, mark: int) -> FwmService | None:
        """The service for firewall mark ``mark`` (the first, as the kernel has one per mark)."""
        if self._by_mark is None:
            self._by_mark = {}
            for s in self.table.services if self.table is not None else []:
                if s.protocol == "fwm" and s.fwmark is not None and s.fwmark not in self._by_mark:
                    self._by_mark[s.fwmark] = _fwm(s)
        return self._by_mark.get(mark)

    def schedulers(self) -> list[str]:
        return [s.scheduler for s in self.table.services] if self.available and self.table is not None else []
