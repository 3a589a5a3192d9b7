"""SOURCES drives the bundle's raw files, its manifest and the agent's self-check (issue 10: declarative
sources): a new source is one entry, and what the bundle writes and what the agent checks follow."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import types
import typing

import pytest
import rawsnap

from swarmscope import agent, model, report
from swarmscope.collect import host
from swarmscope.collect.host import BY_NAME, CAPABILITIES, SOURCES, Needs, RawFile, Source, Tool
from swarmscope.collect.snapshot import CollectOptions
from swarmscope.model import IptablesDump, IpvsTable, Listener, NsKind, Snapshot
from swarmscope.pipeline import analyze_snapshots
from swarmscope.render import raw
from swarmscope.render.raw import KEEPERS, RENDERERS, RawForm, RawOut


def bundle(snaps: list[Snapshot]) -> tuple[dict[str, str], dict]:
    data = report.build_report(snaps, analyze_snapshots(snaps), [], svg=False)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {m.name.removeprefix("swarmscope-report/"): tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                 for m in tar.getmembers()}
    return files, json.loads(files["MANIFEST.json"])


def raw_entries(manifest: dict) -> list[tuple]:
    return [(e["path"], e["what"], e["origin"]) for e in manifest["files"]
            if e["path"] is None or e["path"].startswith("raw/")]


# --------------------------------------------------------------------------- the bundle follows SOURCES


def test_the_bundle_keeps_what_it_kept():
    """The seed: the raw files of a lab snapshot, in order, as the bundle wrote them before SOURCES drove it."""
    _, manifest = bundle([rawsnap.lab_vm("ingress-only")])
    assert raw_entries(manifest) == [
        ("raw/lab-vm/host/iptables-nft-save.txt", "iptables-nft-save", "captured"),
        ("raw/lab-vm/host/ip-addr.rendered.txt", "links and addresses", "rendered"),
        ("raw/lab-vm/host/sysctl.rendered.txt", "sysctls", "rendered"),
        ("raw/lab-vm/1-0wdzoa7ouj/iptables-nft-save.txt", "iptables-nft-save", "captured"),
        ("raw/lab-vm/1-0wdzoa7ouj/ip-addr.rendered.txt", "links and addresses", "rendered"),
        ("raw/lab-vm/2b9706012f57/iptables-nft-save.txt", "iptables-nft-save", "captured"),
        ("raw/lab-vm/2b9706012f57/ipvsadm-Ln.txt", "ipvs (ipvsadm)", "captured"),
        ("raw/lab-vm/2b9706012f57/ip-addr.rendered.txt", "links and addresses", "rendered"),
        ("raw/lab-vm/6ac5c4f5b337/iptables-nft-save.txt", "iptables-nft-save", "captured"),
        ("raw/lab-vm/6ac5c4f5b337/ipvsadm-Ln.txt", "ipvs (ipvsadm)", "captured"),
        ("raw/lab-vm/6ac5c4f5b337/ip-addr.rendered.txt", "links and addresses", "rendered"),
        ("raw/lab-vm/ingress_sbox/iptables-nft-save.txt", "iptables-nft-save", "captured"),
        ("raw/lab-vm/ingress_sbox/ipvsadm-Ln.txt", "ipvs (ipvsadm)", "captured"),
        ("raw/lab-vm/ingress_sbox/ip-addr.rendered.txt", "links and addresses", "rendered"),
        ("raw/lab-vm/ingress_sbox/sysctl.rendered.txt", "sysctls", "rendered"),
    ]


def test_what_was_not_read_is_said_in_the_manifest():
    snap = rawsnap.lab_vm("ingress-only")
    sbox = rawsnap.find_ns(snap, "ingress_sbox")
    sbox.iptables_other = IptablesDump(backend="legacy", available=False,
                                       reason="iptables-legacy-save is not installed")
    sbox.ipvs = IpvsTable(available=False, reason="the kernel has no ip_vs")
    _, manifest = bundle([snap])
    gone = [e for e in manifest["files"] if e["path"] is None and e.get("namespace") == "ingress_sbox"]
    assert [(e["what"], e["origin"], e["reason"]) for e in gone] == [
        ("iptables-legacy-save", "not read", "iptables-legacy-save is not installed"),
        ("ipvs", "not read", "the kernel has no ip_vs"),
    ]


def _listeners_renderer(listeners: list[Listener]) -> RawOut | None:
    if not listeners:
        return None
    text = "".join(f"{x.protocol} {x.address}:{x.port} {x.process or '?'}\n" for x in listeners)
    return RawOut("listening sockets", "rendered", "ss-lntu.rendered.txt", text, note="read from /proc/net")


def test_a_new_source_with_a_bundle_spec_makes_the_bundle_write_its_file(monkeypatch):
    """One SOURCES entry (and its renderer) is all the bundle needs: the file is written in the directory its
    field belongs to, listed in the manifest's files, and the manifest's sources say where it is."""
    extra = Source("listening-sockets", frozenset({NsKind.HOST}), "/proc/net/tcp*", "kept",
                   RawFile(("host.listeners",), rendered="ss-lntu"), "", fields=("host.listeners",))
    monkeypatch.setattr(report, "SOURCES", (*SOURCES, extra))
    monkeypatch.setitem(RENDERERS, "ss-lntu", RawForm(("ss-lntu.rendered.txt",), _listeners_renderer))
    snap = rawsnap.lab_vm("ingress-only")
    snap.host.listeners = [Listener(protocol="tcp", address="0.0.0.0", port=8000, pid=1, process="dockerd")]
    files, manifest = bundle([snap])
    assert files["raw/lab-vm/host/ss-lntu.rendered.txt"] == "tcp 0.0.0.0:8000 dockerd\n"
    entry = next(e for e in manifest["files"] if e["path"] == "raw/lab-vm/host/ss-lntu.rendered.txt")
    assert entry["origin"] == "rendered" and entry["note"] == "read from /proc/net" and entry["namespace"] == "host"
    assert not [p for p in files if p.endswith("ss-lntu.rendered.txt") and "/host/" not in p]
    # after the host's sysctls: the sources' order is the order of a directory's files
    host_files = [e[0] for e in raw_entries(manifest) if e[0] and "/host/" in e[0]]
    assert host_files[-1] == "raw/lab-vm/host/ss-lntu.rendered.txt"
    said = {s["source"]: s for s in manifest["sources"]}
    assert said["listening-sockets"]["raw"] == ["raw/<node>/<namespace>/ss-lntu.rendered.txt"]


def test_a_namespace_field_is_written_in_every_namespace_that_has_it(monkeypatch):
    extra = Source("ipvs-text-again", frozenset({NsKind.LB}), "-", "kept",
                   RawFile(("namespaces[].ipvs",), rendered="copy"), "", fields=("namespaces[].ipvs",))
    monkeypatch.setattr(report, "SOURCES", (*SOURCES, extra))
    monkeypatch.setitem(RENDERERS, "copy", RawForm(("copy.txt",), lambda t: RawOut("copy", "made", "copy.txt",
                                                                                    str(len(t.services)))))
    files, _ = bundle([rawsnap.lab_vm("ingress-only")])
    assert sorted(p.split("/")[2] for p in files if p.endswith("/copy.txt")) == ["2b9706012f57", "6ac5c4f5b337",
                                                                                  "ingress_sbox"]


def test_a_source_without_a_bundle_spec_is_in_the_dump_only(monkeypatch):
    """Take the interfaces' spec away: no ip-addr file, and the manifest says they are in dump.json only."""
    no_raw = tuple(dataclasses.replace(s, bundle=None) if s.name == "interfaces" else s for s in SOURCES)
    monkeypatch.setattr(report, "SOURCES", no_raw)
    files, manifest = bundle([rawsnap.lab_vm("ingress-only")])
    assert not [p for p in files if p.endswith("ip-addr.rendered.txt")]
    said = {s["source"]: s for s in manifest["sources"]}
    assert said["interfaces"]["raw"] == [] and said["interfaces"]["where"].startswith("dump.json only: ")


def test_the_manifest_says_where_every_source_is():
    _, manifest = bundle([rawsnap.lab_vm("ingress-only")])
    said = {s["source"]: s for s in manifest["sources"]}
    assert list(said) == [s.name for s in SOURCES]
    for s in SOURCES:
        where = said[s.name]["where"]
        assert all(f"nodes[].{f}" in where for f in s.fields), s.name
        if s.bundle is None:
            assert said[s.name]["raw"] == [] and where.startswith("dump.json only: "), s.name
        else:
            assert said[s.name]["raw"] and where.startswith("raw files, and dump.json: "), s.name
    assert said["dns"]["where"] == "dump.json only: nodes[].dns"
    assert said["iptables"]["raw"] == ["raw/<node>/<namespace>/iptables-{backend}-save.txt",
                                       "raw/<node>/<namespace>/iptables-L.txt"]


# --------------------------------------------------------------------------- SOURCES names real things


def _field_type(path: str) -> typing.Any:
    """The type a SOURCES field path ("namespaces[].ipvs.timeouts", "node.sysctls") names in the model; raises
    KeyError for a name the model does not have."""
    cls: typing.Any = Snapshot
    for part in path.split("."):
        listed = part.endswith("[]")
        name = part.removesuffix("[]")
        hints = typing.get_type_hints(cls, vars(model))
        if not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
            raise KeyError(f"{cls.__name__} has no field {name!r} ({path})")
        tp = hints[name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if listed:
            assert typing.get_origin(tp) is list, f"{path}: {name} is not a list"
            tp = typing.get_args(tp)[0]
        cls = tp
    return cls


def test_every_bundle_spec_names_a_real_snapshot_field_and_a_real_writer():
    for s in SOURCES:
        for path in s.fields:
            _field_type(path)  # raises for a field the model does not have
        if s.bundle is None:
            continue
        assert s.bundle.fields and set(s.bundle.fields) <= set(s.fields), s.name
        for path in s.bundle.fields:
            assert path.split(".")[0] in ("namespaces[]", "host", "node"), path  # a directory of the bundle
            _field_type(path)
        assert s.bundle.text or s.bundle.rendered, s.name
        assert not s.bundle.text or s.bundle.text in KEEPERS, s.name
        assert not s.bundle.rendered or s.bundle.rendered in RENDERERS, s.name


def test_field_type_refuses_a_field_the_model_does_not_have():
    assert _field_type("namespaces[].ipvs.timeouts") is model.IpvsTimeouts
    with pytest.raises(KeyError):
        _field_type("namespaces[].ipvs.no_such_field")
    with pytest.raises(KeyError):
        _field_type("host.sysctls")  # the host namespace's sysctls are the node's


def test_every_source_has_fields_and_its_capabilities_are_known():
    for s in SOURCES:
        assert s.fields, s.name
        assert set(s.caps) <= set(CAPABILITIES), s.name
        if s.kinds - {NsKind.HOST}:  # read inside the engine's namespaces: setns
            assert "CAP_SYS_ADMIN" in s.caps, s.name
        assert isinstance(s.needs, Needs)
    assert BY_NAME["iptables"].bundle is not None and BY_NAME["iptables"].bundle.text == "iptables-save"
    assert [t.name for t in BY_NAME["iptables"].tools] == ["iptables-nft-save", "iptables-legacy-save"]


def test_every_writer_is_named_by_a_source():
    named = {s.bundle.text for s in SOURCES if s.bundle} | {s.bundle.rendered for s in SOURCES if s.bundle}
    assert set(KEEPERS) | set(RENDERERS) <= named
    assert raw.render_sysctls({"b": "1", "a": None}) == "a = None\nb = 1\n"


# --------------------------------------------------------------------------- the agent's check follows SOURCES


def _which_without(*missing: str):
    return lambda name, *a, **k: None if name in missing else f"/usr/sbin/{name}"


def test_the_agent_check_names_the_source_a_missing_tool_costs(monkeypatch):
    monkeypatch.setattr(agent.shutil, "which", _which_without("iptables-legacy-save"))
    checks = agent.tool_checks(CollectOptions())
    assert [(c.what, c.ok, c.missing, c.detail) for c in checks] == [
        ("iptables-legacy-save", False, True,
         "iptables-legacy-save not found: the legacy backend's rules (source iptables) are not read"),
    ]


def test_check_environment_reports_the_missing_tool(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(agent.shutil, "which", _which_without("iptables-nft-save"))
    opts = CollectOptions(netns_dir=str(tmp_path), docker_host="unix:///nonexistent/docker.sock", docker_timeout=1)
    checks = agent.check_environment(opts)
    tool = [c for c in checks if c.what == "iptables-nft-save"]
    assert len(tool) == 1 and tool[0].missing
    assert tool[0].detail == "iptables-nft-save not found: the nft backend's rules (source iptables) are not read"
    missing = agent.report_checks(checks, stream=io.StringIO())
    assert missing == sum(c.missing for c in checks)


def test_an_optional_tool_is_noted_not_missing(monkeypatch):
    """ipvsadm is the IPVS table's last fallback and the timeouts' reader; journalctl is not needed with
    --dockerd-log FILE. Neither counts as a requirement missing (a snapshot stays complete)."""
    monkeypatch.setattr(agent.shutil, "which", _which_without("ipvsadm", "journalctl"))
    checks = agent.tool_checks(CollectOptions())
    assert [(c.what, c.optional, c.missing) for c in checks] == [
        ("ipvsadm", True, False), ("ipvsadm", True, False), ("journalctl", True, False)]
    assert "the IPVS timeouts (source ipvs-timeouts) are not read (optional)" in checks[1].detail
    assert "the dockerd log (source dockerd-log) is not read" in checks[2].detail
    out = io.StringIO()
    assert agent.report_checks(checks, stream=out) == 0
    assert "check: note    ipvsadm:" in out.getvalue() and "all requirements present" in out.getvalue()
    assert [c.what for c in agent.tool_checks(CollectOptions(dockerd_log="/var/log/docker.log"))] == ["ipvsadm",
                                                                                                     "ipvsadm"]


def test_a_new_source_s_tools_are_checked(monkeypatch):
    """A source whose tools are any-of: missing only when none is found; each-of: each one."""
    any_of = Source("conntrack", frozenset({NsKind.HOST}), "conntrack -L", "kept", None, "", fields=("host",),
                    tools=(Tool("conntrack", "the table"), Tool("busybox", "the table")), needs=Needs.ANY)
    monkeypatch.setattr(host, "SOURCES", (any_of,))
    monkeypatch.setattr(agent.shutil, "which", _which_without("conntrack"))
    assert agent.tool_checks(CollectOptions()) == []
    monkeypatch.setattr(agent.shutil, "which", _which_without("conntrack", "busybox"))
    [c] = agent.tool_checks(CollectOptions())
    assert c.missing and c.detail == "none of conntrack, busybox found: conntrack -L (source conntrack) is not read"


def test_a_missing_capability_names_the_sources_it_costs():
    checks = {c.what: c for c in agent.capability_checks(0)}
    assert list(checks) == list(CAPABILITIES)
    net = checks["CAP_NET_ADMIN"]
    assert net.missing and "(sources iptables, nftables, ipvs, ipvs-timeouts are not read)" in net.detail
    assert "--cap-add NET_ADMIN" in net.detail
    have = agent.capability_checks((1 << 12) | (1 << 21))
    assert [(c.ok, c.detail) for c in have] == [(True, "present (reading iptables and IPVS)"),
                                                (True, "present (entering the engine's network namespaces (setns))")]
