"""A collector that meets a failure in one source records it and reads the rest (no root needed:
the sources are replaced, through an injected Host, by ones that fail the way a refused parse or an
unreadable file does)."""

from __future__ import annotations

from swarmscope.collect import snapshot
from swarmscope.collect.host import LiveHost
from swarmscope.collect.runner import Recorder
from swarmscope.errors import ParseError
from swarmscope.model import IpvsSupport, IpvsTable, Namespace


def test_one_failing_source_does_not_cost_the_others():
    class Host(LiveHost):
        def interfaces(self, namespace):
            return [], []

        def iptables(self, rec, namespace):
            raise ParseError("iptables-save", 3, "-A X --dport ²", "not a number")

        def ipvs(self, rec, namespace, support):
            return IpvsTable(available=True, source="netlink")

        def sysctls(self, namespace, names):
            return {"net.ipv4.ip_forward": "1"}

    ns = Namespace(name="lb_abc", path="/x/lb_abc", kind="lb")
    snapshot._collect_namespace(ns, Recorder(), snapshot.CollectOptions(host=Host()), "nft",
                                IpvsSupport(True, "test"), [], [])
    assert any(e.startswith("iptables: ParseError: iptables-save: line 3: not a number") for e in ns.errors), ns.errors
    assert ns.ipvs is not None and ns.ipvs.available  # read after the failure
    assert ns.sysctls == {"net.ipv4.ip_forward": "1"}


def test_a_failing_listener_read_keeps_the_host():
    class Host(LiveHost):
        def interfaces(self, namespace):
            return [], ["10.0.0.0/24"]

        def iptables(self, rec, namespace):
            return {}

        def listeners(self, ports):
            raise ValueError("invalid literal for int() with base 10: '²'")

    rec = Recorder()
    host, _ = snapshot._host(rec, snapshot.CollectOptions(host=Host()), snapshot.DockerView())
    assert host.routes == ["10.0.0.0/24"]
    step = next(e for e in rec.entries if e.what.startswith("listening sockets"))
    assert step.status == "failed" and "ValueError" in step.reason
