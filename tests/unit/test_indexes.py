"""The correlator's once-per-node indexes (#17) answer as the scans they replace did."""

from __future__ import annotations

from swarmscope.correlate.paths.common import _peer, veth_index
from swarmscope.facts import Address as FactAddress
from swarmscope.facts import NsFacts
from swarmscope.facts.ipvs import IpvsFacts
from swarmscope.facts.netfilter import NetfilterFacts
from swarmscope.facts.walk import _candidates
from swarmscope.model import Interface
from swarmscope.parse.iptables import parse_iptables_save


def _veth(name, index, peer):
    return Interface(name=name, index=index, kind="veth", peer_index=peer)


def test_peer_by_index_as_by_scan():
    """The other end of a veth found through the index is the one the scan finds, in candidate order,
    and a veth whose peer does not point back is not its other end."""
    host = [Interface(name="docker_gwbridge", index=3, kind="bridge"), _veth("vethA", 7, 2), _veth("vethB", 9, 5)]
    ov = [_veth("veth0", 7, 99), _veth("veth1", 12, 2)]  # veth0 has index 7 too, but its peer is not 2
    cands = [("host", host), ("ov", ov)]
    idx = veth_index(cands)
    for i in (_veth("eth0", 2, 7), _veth("eth1", 2, 12), _veth("eth2", 5, 9), _veth("eth3", 4, 8)):
        assert _peer(i, cands, idx) == _peer(i, cands)
    assert _peer(_veth("eth0", 2, 7), cands, idx) == ("host", host[1])
    assert _peer(_veth("eth1", 2, 12), cands, idx) == ("ov", ov[1])
    assert _peer(_veth("eth3", 4, 8), cands, idx) is None
    assert _peer(Interface(name="lo", index=1), cands, idx) is None


def test_ns_address_index_first_wins():
    addrs = [
        FactAddress("eth0", "10.0.0.2", 24, "x: eth0 inet 10.0.0.2/24"),
        FactAddress("eth0", "10.0.0.5", 32, "x: eth0 inet 10.0.0.5/32"),
        FactAddress("eth1", "10.0.0.5", 24, "x: eth1 inet 10.0.0.5/24"),
    ]
    f = NsFacts("x", NetfilterFacts(None), NetfilterFacts(None), IpvsFacts(None), addrs)
    assert f.address("10.0.0.5") is addrs[1]
    assert f.address("10.0.0.2") is addrs[0]
    assert f.address("10.0.0.9") is None


def test_candidates_ephemeral_rules_indexed_once():
    """A packet with an unknown (ephemeral) port is matched against the rules of ephemeral ports, not the
    others; a known port only against its own rules and the portless ones."""
    t = parse_iptables_save(
        "*filter\n:FORWARD ACCEPT [0:0]\n"
        "-A FORWARD -p tcp -m tcp --dport 8000 -j ACCEPT\n"
        "-A FORWARD -p tcp -m tcp --dport 40000 -j DROP\n"
        "-A FORWARD -p tcp -m tcp --sport 8000 -j ACCEPT\n"
        "-A FORWARD -p tcp -m tcp --sport 50000 -j DROP\n"
        "-A FORWARD -j RETURN\n"
        "COMMIT\n"
    ).table("filter")
    assert t is not None
    compiled: dict = {}

    class P:
        def __init__(self, dport, sport):
            self.dport, self.sport = dport, sport

    def picked(dport, sport):
        return [r.line.split(" -j ")[0].split("tcp ")[-1] for r in _candidates(t, "FORWARD", P(dport, sport), compiled)]

    assert picked(8000, None) == ["--dport 8000", "--sport 50000", "-A FORWARD"]
    assert picked(None, 8000) == ["--dport 40000", "--sport 8000", "-A FORWARD"]
    assert picked(None, None) == ["--dport 40000", "--sport 50000", "-A FORWARD"]


def test_lines_built_once():
    f = NetfilterFacts(parse_iptables_save("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"))
    assert f.lines("nat", "POSTROUTING") == ["-A POSTROUTING -j MASQUERADE"]
    assert f.lines("nat", "POSTROUTING") is f.lines("nat", "POSTROUTING")
    assert f.lines("nat", "NOPE") == []
