"""IPVS facts of one network namespace (pure): firewall-mark services and their real servers.

Each fact carries its ``evidence``: the entry as swarmscope shows it ("IPVS FWM 259 rr (2 real servers)"; its
real servers' lines "IPVS FWM 259 -> 10.0.0.5:0 Masq weight 1 active 0 inactive 0"). Services are indexed by
mark once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmscope.model import IpvsDest, IpvsService, IpvsTable

#: a real server of an IPVS service is the snapshot's own entry (``model.IpvsDest``: address, port, forward,
#: weight, active, inactive), one object for every node that has it (``model.sharing``); its evidence line, which
#: names the node's mark, is ``FwmService.lines`` (a fact object per real server per node was a tenth of the
#: path maps' memory at 100 nodes)
RealServer = IpvsDest


def real_server_line(s: IpvsService, d: IpvsDest) -> str:
    """A real server as evidence: "IPVS FWM 259 -> 10.0.0.5:0 Masq weight 1 active 0 inactive 0"."""
    return f"IPVS {s.key} -> {d.address}:{d.port} {d.forward} weight {d.weight} active {d.active} inactive {d.inactive}"


@dataclass(frozen=True, slots=True)
class FwmService:
    """IPVS service ``FWM mark`` with its scheduler and real servers (``dests``; ``lines``: each one's evidence,
    in the same order)."""

    mark: int
    scheduler: str
    dests: tuple[RealServer, ...]
    evidence: str
    lines: tuple[str, ...]


def _fwm(s: IpvsService) -> FwmService:
    assert s.fwmark is not None
    return FwmService(
        s.fwmark,
        s.scheduler,
        tuple(s.dests),
        f"IPVS {s.key} {s.scheduler} ({len(s.dests)} real servers)",
        tuple(real_server_line(s, d) for d in s.dests),
    )


@dataclass
class IpvsFacts:
    """The IPVS facts of one namespace; ``read`` False where IPVS was not read at all, ``available`` False
    where reading it failed (``reason`` says why)."""

    table: IpvsTable | None
    _by_mark: dict[int, IpvsService] | None = field(default=None, repr=False, compare=False)
    _facts: dict[int, FwmService] = field(default_factory=dict, repr=False, compare=False)

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
        """The service for firewall mark ``mark`` (the first, as the kernel has one per mark). The entries are
        indexed by mark once; a fact (its real servers' evidence lines) is made only for a mark asked for
        (``explain SERVICE`` asks one mark of a namespace that has one per published port)."""
        made = self._facts.get(mark)
        if made is not None:
            return made
        if self._by_mark is None:
            self._by_mark = {}
            for s in self.table.services if self.table is not None else []:
                if s.protocol == "fwm" and s.fwmark is not None and s.fwmark not in self._by_mark:
                    self._by_mark[s.fwmark] = s
        entry = self._by_mark.get(mark)
        if entry is None:
            return None
        made = self._facts[mark] = _fwm(entry)
        return made

    def schedulers(self) -> list[str]:
        return [s.scheduler for s in self.table.services] if self.available and self.table is not None else []
