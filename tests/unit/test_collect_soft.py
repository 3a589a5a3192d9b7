"""A collector that meets a failure in one source records it and reads the rest (no root needed:
the sources are replaced by ones that fail the way a refused parse or an unreadable file does)."""

from __future__ import annotations

from swarmscope.collect import snapshot
from swarmscope.collect.runner import Recorder
from swarmscope.errors import ParseError
from swarmscope.model import IpvsSupport, IpvsTable, Namespace


def test_one_failing_source_does_not_cost_the_others(monkeypatch):
    def bad_iptables(rec, where):
        raise ParseError("iptables-save", 3, "-A X --dport ²", "not a number")

    monkeypatch.setattr(snapshot, "read_interfaces", lambda: ([], []))
    monkeypatch.setattr(snapshot.iptables, "read_both", bad_iptables)
    monkeypatch.setattr(snapshot, "read_ipvs", lambda rec, name, support: IpvsTable(available=True, source="netlink"))
    monkeypatch.setattr(snapshot.kernel, "read_sysctls", lambda names: {"net.ipv4.ip_forward": "1"})
    ns = Namespace(name="lb_abc", path="/x/lb_abc", kind="lb")
    snapshot._collect_namespace(ns, Recorder(), snapshot.CollectOptions(), "nft",
                                IpvsSupport(True, "test"), [], [])
    assert any(e.startswith("iptables: ParseError: iptables-save: line 3: not a number") for e in ns.errors), ns.errors
    assert ns.ipvs is not None and ns.ipvs.available  # read after the failure
    assert ns.sysctls == {"net.ipv4.ip_forward": "1"}


def test_a_failing_listener_read_keeps_the_host(monkeypatch):
    def boom(ports):
        raise ValueError("invalid literal for int() with base 10: '²'")

    monkeypatch.setattr(snapshot, "read_interfaces", lambda: ([], ["10.0.0.0/24"]))
    monkeypatch.setattr(snapshot.iptables, "read_both", lambda rec, where: {})
    monkeypatch.setattr(snapshot, "read_listeners", boom)
    rec = Recorder()
    host, _ = snapshot._host(rec, snapshot.CollectOptions(), snapshot.DockerView())
    assert host.routes == ["10.0.0.0/24"]
    step = next(e for e in rec.entries if e.what.startswith("listening sockets"))
    assert step.status == "failed" and "ValueError" in step.reason
