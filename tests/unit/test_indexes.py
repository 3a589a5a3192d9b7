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


def test_net_ns_index_first_by_exact_id_or_prefix():
    """lb_/overlay namespaces found through the per-node index: the first (in the node's order) whose
    network id is the network's id or a prefix of it, as the scan found it."""
    from swarmscope.correlate.cluster import NodeCtx
    from swarmscope.model import Namespace, NodeInfo, NsKind, Snapshot

    full = "abcdef0123456789"
    nss = [
        Namespace(name="c1", path="/c1", kind="container"),
        Namespace(name="lb_other", path="/x", kind="lb", network_id="zzz"),
        Namespace(name="lb_abcdef012", path="/a", kind="lb", network_id="abcdef012"),
        Namespace(name="lb_full", path="/b", kind="lb", network_id=full),
        Namespace(name="ov_full", path="/c", kind="overlay", network_id=full),
        Namespace(name="lb_empty", path="/d", kind="lb", network_id=""),
    ]
    n = NodeCtx(snap=Snapshot(node=NodeInfo(hostname="n1", kernel_release="6.1"), namespaces=nss), name="n1", node_id=None)

    def scan(kind, nid):
        return next(
            (x for x in nss if x.kind == kind and x.network_id and (x.network_id == nid or nid.startswith(x.network_id))),
            None,
        )

    for kind in (NsKind.LB, NsKind.OVERLAY, NsKind.CONTAINER):
        for nid in (full, "abcdef012", "abcdef", "zzz", "zzzz", "nope"):
            assert n._net_ns(kind, nid) is scan(kind, nid), (kind, nid)
    assert n.lb_ns(full).name == "lb_abcdef012"  # the earlier, by its prefix
    assert n.overlay_ns(full).name == "ov_full"


def test_hops_in_judges_the_first_key_a_path_has():
    """A check over several hop keys judges, per path, the first of them the path has (not a later key's
    hop that happens to be bad), in node-path order; backends by state likewise."""
    from swarmscope.correlate.checks.registry import Ctx
    from swarmscope.correlate.types import Backend, Hop, NodePath, PortPath, ServicePath
    from swarmscope.model import BackendState, HopStatus

    def np(node, *hops, backends=()):
        return NodePath(node=node, node_id=None, hops=list(hops), backends=list(backends))

    a = np("a", Hop("x", "x", HopStatus.OK), Hop("y", "y", HopStatus.MISSING))
    b = np("b", Hop("y", "y", HopStatus.MISSING), backends=[Backend(address="10.0.0.2", status=BackendState.STALE)])
    c = np("c", Hop("x", "x", HopStatus.MISMATCH), Hop("x", "x2", HopStatus.MISSING))
    sp = ServicePath(id="s", name="s", mode="replicated", replicas=1, endpoint_mode="vip")
    pp = PortPath(protocol="tcp", published=80, target=80, mode="ingress")
    pp.nodes = [a, b, c]
    sp.ports = [pp]
    ctx = Ctx(None, [sp])  # type: ignore[arg-type]
    got = ctx.hops_in("ports", ("x", "y"), (HopStatus.MISSING, HopStatus.MISMATCH))
    assert [(e[3].node, e[4].label) for e in got] == [("b", "y"), ("c", "x")]
    assert [(e[3].node, e[4].label) for e in ctx.hops_in("ports", ("y",), (HopStatus.MISSING,))] == [("a", "y"), ("b", "y")]
    assert ctx.hops_in("vips", ("x",), (HopStatus.MISMATCH,)) == []
    assert [e[3].node for e in ctx.backends_in(BackendState.STALE)] == ["b"]
    assert ctx.backends_in(BackendState.OK) == []


def test_ok_hops_and_backends_indexed_when_asked_and_paths_by_node():
    """The indexes leave the ok hops and real servers out until a check asks for them, then give them as the
    full index would (the first hop of a key, in node-path order); a node's paths are its node_paths."""
    from swarmscope.correlate.checks.registry import Ctx
    from swarmscope.correlate.types import Backend, Hop, NodePath, PortPath, ServicePath, VipPath
    from swarmscope.model import BackendState, HopStatus

    ok = Backend(address="10.0.0.3", status=BackendState.OK)
    a = NodePath(node="a", node_id=None, hops=[Hop("x", "x", HopStatus.OK), Hop("x", "x2", HopStatus.OK)])
    b = NodePath(node="b", node_id=None, hops=[Hop("x", "xb", HopStatus.MISSING)], backends=[ok])
    c = NodePath(node="a", node_id=None, hops=[Hop("x", "xc", HopStatus.MISSING), Hop("x", "xc2", HopStatus.OK)])
    sp = ServicePath(id="s", name="s", mode="replicated", replicas=1, endpoint_mode="vip")
    pp = PortPath(protocol="tcp", published=80, target=80, mode="ingress")
    pp.nodes = [a, b]
    vp = VipPath(network_id="n", network="net", vip="10.0.1.2", endpoint_mode="vip")
    vp.nodes = [c]
    sp.ports, sp.vip_paths = [pp], [vp]
    ctx = Ctx(None, [sp])  # type: ignore[arg-type]
    assert [e[4].label for e in ctx.hops_in("all", ("x",), (HopStatus.MISSING,))] == ["xb", "xc"]
    assert [e[4].label for e in ctx.hops_in("all", ("x",), (HopStatus.OK,))] == ["x"]
    assert [e[4].label for e in ctx.hops_in("all", ("x",), (HopStatus.OK, HopStatus.MISSING))] == ["x", "xb", "xc"]
    assert ctx.backends_in(BackendState.STALE) == []
    assert [e[4] for e in ctx.backends_in(BackendState.OK)] == [ok]
    assert [e[3] for e in ctx.paths_on("a")] == [a, c]
    assert [e[3] for e in ctx.paths_on("a", "ports")] == [a]
    assert ctx.paths_on("b", "vips") == [] and ctx.paths_on("zz") == []
    assert [e[3] for e in ctx.paths_on("a")] == [e[3] for e in ctx.node_paths() if e[3].node == "a"]
