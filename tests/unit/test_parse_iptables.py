"""iptables-save / iptables -S parsing: golden files over every fixture, and targeted checks."""

from __future__ import annotations

import functools
import json
import re

import pytest

from _fixtures import FIXTURES, check_golden, fixture_files, read, rel
from swarmscope.errors import ParseError
from swarmscope.model import IptablesDump, to_dict
from swarmscope.parse.iptables import (
    dnat_destination,
    mark_value,
    parse_iptables_rules,
    parse_iptables_save,
    parse_rule,
    redirect_ports,
    snat_source,
    split_words,
)

# --------------------------------------------------------------------------
# discovery


def _is_save(name: str) -> bool:
    return "iptables" in name and "save" in name


def _is_dash_s(name: str) -> bool:
    return "iptables" in name and re.search(r"-S(-v)?(-excerpt)?\.txt$", name) is not None


SAVE_FILES = [p for p in fixture_files() if _is_save(p.name)]
DASH_S_FILES = [p for p in fixture_files() if _is_dash_s(p.name)]


def _save_parser(path):
    backend = "legacy" if "legacy" in path.name else "nft"
    if "excerpt" in path.name:  # copied from a document with "..." and remarks: lenient
        return f"parse_iptables_save(backend={backend!r}, lenient=True)", functools.partial(
            parse_iptables_save, backend=backend, lenient=True
        )
    return f"parse_iptables_save(backend={backend!r})", functools.partial(parse_iptables_save, backend=backend)


def _table_of(name: str) -> str:
    for t in ("filter", "nat", "mangle", "raw", "security"):
        if f"-{t}-" in name:
            return t
    raise AssertionError(f"no table name in {name}")


def test_discovery_finds_lab_public_and_captured_files():
    names = {rel(p) for p in SAVE_FILES}
    assert len(SAVE_FILES) >= 25
    assert "lab-vm/ingress-only/ingress_sbox-iptables-save.txt" in names
    assert "lab-vm/with-overlay/lb_odns2ld5k-iptables-save.txt" in names
    assert "lab-vm/ingress-only/host-iptables-legacy-save.txt" in names
    assert "public/25/host-iptables-save.txt" in names
    assert "public/25/ingress_sbox-iptables-save.txt" in names
    assert "public/19/host1-lb_chhv2g5nn-iptables-save-excerpt.txt" in names
    assert "captured/ssparse-test-iptables-nft-save-c.txt" in names
    assert "captured/ssparse-test-iptables-legacy-save-c.txt" in names
    assert not any("original" in n for n in names)
    assert {rel(p) for p in DASH_S_FILES} >= {
        "public/04/host-filter-iptables-S-excerpt.txt",
        "public/04/host-nat-iptables-S.txt",
        "captured/ssparse-test-nat-iptables-nft-S.txt",
        "captured/ssparse-test-mangle-iptables-nft-S-v.txt",
    }


@pytest.mark.parametrize("path", SAVE_FILES, ids=rel)
def test_iptables_save_golden(path):
    name, parse = _save_parser(path)
    got = check_golden(path, name, parse)
    if "result" in got:
        assert got["result"]["raw"] == path.read_text()


@pytest.mark.parametrize("path", DASH_S_FILES, ids=rel)
def test_iptables_dash_s_golden(path):
    table = _table_of(path.name)
    lenient = "excerpt" in path.name
    check_golden(
        path,
        f"parse_iptables_rules(table={table!r}, lenient={lenient})",
        functools.partial(parse_iptables_rules, table=table, lenient=lenient),
    )


# --------------------------------------------------------------------------
# the real lab output


def _rules(dump: IptablesDump, table: str, chain: str):
    return dump.table(table).rules(chain)


@pytest.mark.parametrize("scenario", ["ingress-only", "with-overlay"])
def test_lab_ingress_sbox_mark_and_snat(scenario):
    dump = parse_iptables_save(read(f"lab-vm/{scenario}/ingress_sbox-iptables-save.txt"))
    assert list(dump.tables) == ["mangle", "nat"]
    (pre,) = _rules(dump, "mangle", "PREROUTING")
    assert pre.value("-p") == "tcp"
    assert pre.has_match("tcp") and pre.value("--dport") == "8000"
    assert pre.target == "MARK" and pre.value("--set-xmark") == "0x100/0xffffffff"
    assert mark_value(pre) == 0x100 == 256
    (inp,) = _rules(dump, "mangle", "INPUT")
    assert inp.value("-d") == "10.0.0.3/32" and mark_value(inp) == 256

    post = _rules(dump, "nat", "POSTROUTING")
    (snat,) = [r for r in post if r.target == "SNAT"]
    assert snat.has_match("ipvs")
    (ipvs_match,) = [m for m in snat.matches if m.module == "ipvs"]
    assert [(o.opt, o.value, o.negated) for o in ipvs_match.options] == [("--ipvs", None, False)]
    assert snat.value("-d") == "10.0.0.0/24"
    assert snat.value("--to-source") == "10.0.0.2"
    assert snat_source(snat) == ("10.0.0.2", None)
    dns_snat = [r for r in _rules(dump, "nat", "DOCKER_POSTROUTING")]
    assert [snat_source(r) for r in dns_snat] == [("", 53), ("", 53)]
    assert dump.table("nat").chains["DOCKER_OUTPUT"].policy is None
    assert dump.table("nat").chains["PREROUTING"].policy == "ACCEPT"
    assert dump.table("nat").chains["PREROUTING"].counters == [0, 0]


def test_lab_host_dnat_to_ingress_sbox():
    dump = parse_iptables_save(read("lab-vm/ingress-only/host-iptables-save.txt"))
    dnat, ret = _rules(dump, "nat", "DOCKER-INGRESS")
    assert dnat_destination(dnat) == ("172.18.0.2", 8000)
    assert dnat.value("--dport") == "8000" and dnat.value("-p") == "tcp"
    assert ret.target == "RETURN" and dnat_destination(ret) is None
    out_docker = _rules(dump, "nat", "OUTPUT")[1]
    d = out_docker.option("-d")
    assert (d.value, d.negated) == ("127.0.0.0/8", True)
    assert out_docker.value("-d") is None  # value() hides negated options
    assert dump.table("filter").chains["FORWARD"].policy == "DROP"
    # "-m state --state ... -m tcp --sport": each module keeps its own options
    rule = _rules(dump, "filter", "DOCKER-INGRESS")[1]
    assert [(m.module, [o.opt for o in m.options]) for m in rule.matches] == [("state", ["--state"]), ("tcp", ["--sport"])]
    assert dump.rule_count == 32 == read("lab-vm/ingress-only/host-iptables-save.txt").count("\n-A ")


def test_lab_task_sandbox_redirect():
    dump = parse_iptables_save(read("lab-vm/ingress-only/netns-2b9706012f57-iptables-save.txt"))
    (redir,) = _rules(dump, "nat", "PREROUTING")
    assert redir.value("-d") == "10.0.0.4/32"
    assert redirect_ports(redir) == (8000, 8000)
    accept = _rules(dump, "filter", "INPUT")[0]
    assert accept.value("--ctstate") == "NEW,ESTABLISHED"


def test_lab_empty_and_failed_namespaces():
    empty = parse_iptables_save(read("lab-vm/ingress-only/netns-1-0wdzoa7ouj-iptables-save.txt"))
    assert empty.tables == {} and empty.rule_count == 0 and empty.available
    legacy = parse_iptables_save(read("lab-vm/ingress-only/host-iptables-legacy-save.txt"), backend="legacy")
    assert legacy.backend == "legacy" and legacy.tables == {}
    # the task's namespace was gone: nsenter's error is no iptables-save output
    with pytest.raises(ParseError) as ei:
        parse_iptables_save(read("lab-vm/with-overlay/netns-6ac5c4f5b337-iptables-save.txt"))
    assert ei.value.lineno == 2 and ei.value.line.startswith("nsenter: reassociate")


# --------------------------------------------------------------------------
# the public dumps


def test_public_25_host_with_annotations():
    dump = parse_iptables_save(read("public/25/host-iptables-save.txt"))
    assert list(dump.tables) == ["raw", "filter", "nat"]
    assert [dnat_destination(r) for r in _rules(dump, "nat", "DOCKER-INGRESS")] == [
        ("172.19.0.2", 3001),
        ("172.19.0.2", 3000),
        None,
    ]
    raw = _rules(dump, "raw", "PREROUTING")
    assert raw[0].option("-i").negated and raw[0].option("-i").value == "docker_gwbridge"
    # the "## -A FORWARD ..." annotation lines are comments, not rules
    assert len(_rules(dump, "filter", "FORWARD")) == 2


def test_public_25_ingress_sbox_and_lb_and_task():
    sbox = parse_iptables_save(read("public/25/ingress_sbox-iptables-save.txt"))
    marks = [(r.value("-p"), r.value("--dport"), r.value("-d"), mark_value(r)) for r in sbox.table("mangle").rules("PREROUTING") + sbox.table("mangle").rules("INPUT")]
    assert marks == [("tcp", "3000", None, 256), ("udp", "3001", None, 256), (None, None, "10.0.0.3/32", 256)]
    assert len(sbox.table("nat").rules("POSTROUTING")) == 2  # the "## -A POSTROUTING" annotations are not rules
    lb = parse_iptables_save(read("public/25/lb_0a7kccl4d-iptables-save.txt"))
    (vip_mark,) = lb.table("mangle").rules("INPUT")
    assert (vip_mark.value("-d"), mark_value(vip_mark)) == ("10.0.1.2/32", 257)
    task = parse_iptables_save(read("public/25/netns-231b9363e169-iptables-save.txt"))
    assert [(r.value("--dport"), redirect_ports(r)) for r in task.table("nat").rules("PREROUTING")] == [
        ("3000", (80, 80)),
        ("3001", (53, 53)),
    ]


def test_public_19_fwmark_is_node_local():
    host1 = parse_iptables_save(read("public/19/host1-lb_chhv2g5nn-iptables-save-excerpt.txt"), lenient=True)
    host2 = parse_iptables_save(read("public/19/host2-lb_xxxxxx-iptables-save-excerpt.txt"), lenient=True)
    (r1,) = host1.table("mangle").rules("INPUT")
    (r2,) = host2.table("mangle").rules("INPUT")
    assert r1.value("-d") == r2.value("-d") == "192.168.200.34/32"
    assert r1.value("--set-xmark") == "0x10c/0xffffffff" and mark_value(r1) == 0x10C == 268
    assert r2.value("--set-xmark") == "0x10d/0xffffffff" and mark_value(r2) == 0x10D == 269
    # the author's trailing "# another IP on `lb_xxxxxx`" is dropped in lenient mode only
    (snat2,) = host2.table("nat").rules("POSTROUTING")
    assert snat_source(snat2) == ("192.168.200.39", None)
    assert snat2.line.endswith("# another IP on `lb_xxxxxx`")
    sbox = parse_iptables_save(read("public/19/ingress_sbox-iptables-save-excerpt.txt"), lenient=True)
    assert [mark_value(r) for r in sbox.table("mangle").rules("PREROUTING")] == [0x108]


def test_public_19_excerpts_are_not_accepted_strictly():
    with pytest.raises(ParseError) as ei:
        parse_iptables_save(read("public/19/host-iptables-save-excerpt.txt"))
    assert ei.value.lineno == 2 and ei.value.line == "..."
    with pytest.raises(ParseError, match="does not declare"):
        parse_iptables_save(read("public/19/ingress_sbox-iptables-save-excerpt.txt"))
    with pytest.raises(ParseError, match="unquoted '#'"):
        parse_rule("-A POSTROUTING -d 192.168.200.0/24 -m ipvs --ipvs -j SNAT --to-source 192.168.200.39 # remark")


def test_public_04_dash_s_form():
    nat = parse_iptables_rules(read("public/04/host-nat-iptables-S.txt"), table="nat")
    assert list(nat.chains) == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "DOCKER", "DOCKER-INGRESS"]
    assert nat.chains["DOCKER"].policy is None and nat.chains["OUTPUT"].policy == "ACCEPT"
    assert dnat_destination(nat.rules("DOCKER-INGRESS")[0]) == ("172.18.0.2", 8080)
    assert nat.rules("DOCKER-INGRESS")[0].line == "-A DOCKER-INGRESS -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:8080"
    # the filter excerpt was trimmed (no -P lines): FORWARD is never declared
    with pytest.raises(ParseError, match="no -P/-N line declares") as ei:
        parse_iptables_rules(read("public/04/host-filter-iptables-S-excerpt.txt"), table="filter")
    assert ei.value.lineno == 2
    flt = parse_iptables_rules(read("public/04/host-filter-iptables-S-excerpt.txt"), table="filter", lenient=True)
    assert [r.target for r in flt.rules("FORWARD")] == ["DOCKER-USER", "DOCKER-INGRESS", "DOCKER-FORWARD"]
    assert flt.chains["FORWARD"].policy is None
    (ct,) = [r for r in flt.rules("DOCKER-INGRESS") if r.has_match("conntrack")]
    assert ct.value("--sport") == "8080" and ct.value("--ctstate") == "RELATED,ESTABLISHED"


# --------------------------------------------------------------------------
# captured in a throwaway namespace on this machine (iptables 1.8.9)


def test_captured_nft_counters_comments_negations():
    dump = parse_iptables_save(read("captured/ssparse-test-iptables-nft-save-c.txt"))
    ingress = dump.table("nat").rules("DOCKER-INGRESS")
    web, multi, ret = ingress
    assert web.comment == 'published "web" port'
    assert web.counters == [3, 180] and ret.counters == [7, 624]
    assert multi.value("--dports") == "80,443" and multi.comment == "plain"
    assert dnat_destination(multi) == ("172.18.0.2", None)
    mangle_input = dump.table("mangle").rules("INPUT")
    assert mangle_input[1].comment == "it's a \\back\\slash"
    assert mark_value(mangle_input[1]) == 257  # --set-mark 257 was saved as --set-xmark 0x101/0xffffffff
    fwd = dump.table("filter").rules("FORWARD")
    ct = fwd[1].option("--ctstate")
    assert (ct.value, ct.negated) == ("INVALID,NEW", True)
    assert fwd[2].value("--tcp-flags") == "SYN,RST SYN"
    assert fwd[2].target == "TCPMSS" and fwd[2].option("--clamp-mss-to-pmtu").value is None
    user = dump.table("filter").rules("DOCKER-USER")
    assert user[0].option("--dst-type").negated
    log = user[1]
    assert log.option("--dport").negated and log.value("--log-prefix") == "swarm drop: "
    assert log.option("--log-uid") is not None and log.option("--log-uid").value is None
    assert user[2].goto and user[2].target == "DOCKER-USER-2"
    user2 = dump.table("filter").rules("DOCKER-USER-2")
    assert user2[-1].comment == ""
    assert [o.opt for o in user2[-2].params] == ["-f"]


def test_captured_nft_with_and_without_counters_agree():
    plain = parse_iptables_save(read("captured/ssparse-test-iptables-nft-save.txt"))
    counted = parse_iptables_save(read("captured/ssparse-test-iptables-nft-save-c.txt"))

    def strip(dump):
        d = to_dict(dump)
        d["raw"] = ""
        for t in d["tables"].values():
            for c in t["chains"].values():
                for r in c["rules"]:
                    r["counters"] = None
                    r["line"] = re.sub(r"^\[\d+:\d+\] ", "", r["line"])
        return d

    assert all(r.counters is None for t in plain.tables.values() for c in t.chains.values() for r in c.rules)
    assert strip(plain) == strip(counted)


def test_captured_nft_stderr_warning_and_legacy():
    warned = parse_iptables_save(read("captured/ssparse-test-iptables-nft-save-2-and-1.txt"))
    assert warned.raw.startswith("# Warning: iptables-legacy tables present")
    assert warned.rule_count == parse_iptables_save(read("captured/ssparse-test-iptables-nft-save.txt")).rule_count
    legacy = parse_iptables_save(read("captured/ssparse-test-iptables-legacy-save-c.txt"), backend="legacy")
    assert legacy.backend == "legacy"
    assert legacy.table("mangle").chains["OUTPUT"].counters == [3, 160]
    drop = legacy.table("filter").rules("INPUT")[1]
    assert drop.option("--ctstate").negated and drop.option("--tcp-flags").negated
    assert drop.value("-p") == "tcp"
    (quoted,) = [r for r in legacy.table("nat").rules("DOCKER-INGRESS") if r.comment]
    assert quoted.comment == 'legacy "quoted" comment' and quoted.counters == [1, 60]


def test_captured_dash_s_v_counters():
    mangle = parse_iptables_rules(read("captured/ssparse-test-mangle-iptables-nft-S-v.txt"), table="mangle")
    assert mangle.chains["INPUT"].counters == [0, 0] and mangle.chains["INPUT"].policy == "ACCEPT"
    assert mangle.rules("INPUT")[0].counters == [14, 1252]
    assert mark_value(mangle.rules("INPUT")[0]) == 0x101


def test_round_trip_rule_lines():
    """Every rule of every well-formed fixture re-parses from its own line to the same rule."""
    n = 0
    for path in SAVE_FILES:
        _, parse = _save_parser(path)
        try:
            dump = parse(path.read_text())
        except ParseError:
            continue
        lenient = "excerpt" in path.name
        for t in dump.tables.values():
            for c in t.chains.values():
                for r in c.rules:
                    assert parse_rule(r.line, lenient=lenient) == r
                    n += 1
    assert n > 300


# --------------------------------------------------------------------------
# hand-written: forms this machine's iptables cannot print


def test_old_style_negation():
    dump = parse_iptables_save(read("handwritten/old-style-negation-iptables-save.txt"))
    pre = dump.table("nat").rules("PREROUTING")
    assert (pre[0].option("--dst-type").value, pre[0].option("--dst-type").negated) == ("LOCAL", True)
    assert (pre[1].option("--state").value, pre[1].option("--state").negated) == ("ESTABLISHED", True)
    post = dump.table("nat").rules("POSTROUTING")[0]
    assert (post.option("-o").value, post.option("-o").negated) == ("docker0", True)
    out = dump.table("nat").rules("OUTPUT")[0]
    assert (out.option("-d").value, out.option("-d").negated) == ("127.0.0.0/8", True)
    # same meaning as the modern form
    modern = parse_rule("-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
    assert (modern.params, modern.matches, modern.target) == (out.params, out.matches, out.target)


@pytest.mark.parametrize(
    "line, opt, value",
    [
        ("-A X -j MARK --set-mark 0x100", "--set-mark", 256),
        ("-A X -j MARK --set-mark 257", "--set-mark", 257),
        ("-A X -j MARK --set-xmark 0x10c/0xffffffff", "--set-xmark", 268),
        ("-A X -j MARK --set-xmark 269/0xffffffff", "--set-xmark", 269),
        ("-A X -j MARK --set-mark 0x1/0x1", "--set-mark", 1),
        ("-A X -j MARK --or-mark 0x1", "--or-mark", None),
        ("-A X -j CONNMARK --set-xmark 0x1/0xffffffff", "--set-xmark", None),
        ("-A X -m mark --mark 0x100 -j ACCEPT", "--mark", None),
    ],
)
def test_mark_value(line, opt, value):
    r = parse_rule(line)
    assert r.option(opt) is not None
    assert mark_value(r) == value


def test_nat_helpers():
    assert dnat_destination(parse_rule("-A X -p tcp -j DNAT --to-destination 172.18.0.2:8000")) == ("172.18.0.2", 8000)
    assert dnat_destination(parse_rule("-A X -j DNAT --to-destination 172.18.0.2")) == ("172.18.0.2", None)
    assert dnat_destination(parse_rule("-A X -j DNAT --to-destination [fd00::2]:80")) == ("fd00::2", 80)
    assert dnat_destination(parse_rule("-A X -j DNAT --to-destination 10.0.0.1-10.0.0.3:80-90")) == ("10.0.0.1-10.0.0.3", None)
    assert dnat_destination(parse_rule("-A X -j SNAT --to-source 10.0.0.2")) is None
    assert snat_source(parse_rule("-A X -j SNAT --to-source :53")) == ("", 53)
    assert redirect_ports(parse_rule("-A X -p tcp -j REDIRECT --to-ports 80")) == (80, 80)
    assert redirect_ports(parse_rule("-A X -p tcp -j REDIRECT --to-ports 8000-8010")) == (8000, 8010)
    assert redirect_ports(parse_rule("-A X -p tcp -j REDIRECT")) is None
    assert redirect_ports(parse_rule("-A X -j DNAT --to-destination 1.2.3.4")) is None


def test_rule_grammar_details():
    r = parse_rule("-A DOCKER-INGRESS -p tcp --dport 80 -j ACCEPT")  # implicit tcp match
    assert [(m.module, [o.opt for o in m.options]) for m in r.matches] == [("tcp", ["--dport"])]
    r = parse_rule("-A X -m comment --comment \"a b\" -m comment --comment second -j ACCEPT")
    assert r.comment == "a b"
    r = parse_rule("-A X -s 10.0.0.0/8 -m set --match-set myset src,dst -i eth0 -j ACCEPT")
    assert r.value("--match-set") == "myset src,dst"
    assert [o.opt for o in r.params] == ["-s", "-i"]  # -i after -m set is a base parameter again
    r = parse_rule("-A X -m ipvs --ipvs --vdir ORIGINAL ! --vproto 6 -j ACCEPT")
    (m,) = r.matches
    assert [(o.opt, o.value, o.negated) for o in m.options] == [("--ipvs", None, False), ("--vdir", "ORIGINAL", False), ("--vproto", "6", True)]
    r = parse_rule("-A X -m comment --comment \"-looks like an option\" -j RETURN")
    assert r.comment == "-looks like an option"
    r = parse_rule("-A X")
    assert r.target is None and r.params == [] and r.matches == []
    r = parse_rule("[5:300] -A X -j DROP")
    assert r.counters == [5, 300]
    assert split_words('a "b c" "d\\"e" f""g') == ["a", "b c", 'd"e', "fg"]


# --------------------------------------------------------------------------
# errors name the line


@pytest.mark.parametrize(
    "text, lineno, bad, reason",
    [
        ("*nat\n:PREROUTING ACCEPT [0:0]\nthis is garbage\nCOMMIT\n", 3, "this is garbage", "unrecognised line"),
        ("*nat\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\nCOMMIT\n", 3, "-A OUTPUT -j ACCEPT", "does not declare"),
        ("-A OUTPUT -j ACCEPT\n", 1, "-A OUTPUT -j ACCEPT", "rule outside a table"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n-A OUTPUT -j ACCEPT\n", 4, "-A OUTPUT -j ACCEPT", "rule outside a table"),
        ('*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m comment --comment "open -j ACCEPT\nCOMMIT\n', 3,
         '-A OUTPUT -m comment --comment "open -j ACCEPT', "unterminated quote"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT stray -j ACCEPT\nCOMMIT\n", 3, "-A OUTPUT stray -j ACCEPT", "unexpected word"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j\nCOMMIT\n", 3, "-A OUTPUT -j", "without a target"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m -j ACCEPT\nCOMMIT\n", 3, "-A OUTPUT -m -j ACCEPT", "without a module"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d -j ACCEPT\nCOMMIT\n", 3, "-A OUTPUT -d -j ACCEPT", "without a value"),
        ("*nat\n:OUTPUT\nCOMMIT\n", 2, ":OUTPUT", "bad chain line"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", 3, ":OUTPUT ACCEPT [0:0]", "declared twice"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\n", 1, "*nat", "not closed by COMMIT"),
        ("*nat\n*filter\nCOMMIT\n", 2, "*filter", "not closed by COMMIT"),
        ("COMMIT\n", 1, "COMMIT", "COMMIT outside a table"),
        ("*nat\nCOMMIT\n*nat\nCOMMIT\n", 3, "*nat", "appears twice"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT ! ! -d 1.2.3.4 -j ACCEPT\nCOMMIT\n", 3, "-A OUTPUT ! ! -d 1.2.3.4 -j ACCEPT", "twice"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT -j DROP\nCOMMIT\n", 3, "-A OUTPUT -j ACCEPT -j DROP", "two targets"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n[1:2] garbage\nCOMMIT\n", 3, "[1:2] garbage", "expected '-A CHAIN"),
        ("*nat\n:OUTPUT ACCEPT [0:0]\n-I OUTPUT -j ACCEPT\nCOMMIT\n", 3, "-I OUTPUT -j ACCEPT", "unrecognised line"),
    ],
)
def test_errors_name_the_line(text, lineno, bad, reason):
    with pytest.raises(ParseError) as ei:
        parse_iptables_save(text)
    err = ei.value
    assert (err.lineno, err.line) == (lineno, bad)
    assert reason in err.reason
    msg = str(err)
    assert f"line {lineno}" in msg and repr(bad) in msg and msg.startswith("iptables-nft-save:")


def test_error_message_for_legacy_backend_and_dash_s():
    with pytest.raises(ParseError, match=r"^iptables-legacy-save: line 1: unrecognised line: 'garbage'$"):
        parse_iptables_save("garbage\n", backend="legacy")
    with pytest.raises(ParseError) as ei:
        parse_iptables_rules("-P INPUT ACCEPT\n-A FORWARD -j DROP\n")
    assert ei.value.lineno == 2 and "no -P/-N line declares" in ei.value.reason


def test_split_fixtures_match_the_originals_byte_for_byte():
    manifest = json.loads((FIXTURES / "public" / "manifest.json").read_text())
    n = 0
    for src in manifest["sources"]:
        lines = (FIXTURES / "public" / src["original"]).read_bytes().splitlines(keepends=True)
        assert lines[0].decode().rstrip("\n") == src["source_line"]
        for b in src["blocks"]:
            split = (FIXTURES / "public" / b["file"]).read_bytes()
            assert split == b"".join(lines[b["first_line"] - 1 : b["last_line"]]), b["file"]
            n += 1
    assert n >= 30
    on_disk = {rel(p) for p in fixture_files() if rel(p).startswith("public/") and p.suffix != ".md" and rel(p) != "public/manifest.json"}
    assert on_disk == {"public/" + b["file"] for s in manifest["sources"] for b in s["blocks"]}


def test_mutated_fixtures_raise_only_parse_error():
    """Damaged input (a character inserted or dropped, a line cut or repeated) never escapes as another exception."""
    import random

    from swarmscope.parse.ipvs import parse_ipvsadm_list, parse_ipvsadm_save, parse_proc_ip_vs

    parsers = [
        parse_iptables_save,
        functools.partial(parse_iptables_save, lenient=True),
        parse_iptables_rules,
        functools.partial(parse_iptables_rules, lenient=True),
        parse_ipvsadm_list,
        parse_ipvsadm_save,
        parse_proc_ip_vs,
    ]
    texts = [p.read_text() for p in fixture_files() if p.suffix == ".txt"]
    pieces = list(' !"\\-#:[]*0123456789abcdefx/\t') + ["-A ", "-m ", "-j ", "! ", "--", "->", "FWM ", "TCP ", "]:"]
    rng = random.Random(20261121)
    for _ in range(800):
        lines = rng.choice(texts).splitlines() or [""]
        i = rng.randrange(len(lines))
        line, op = lines[i], rng.randrange(4)
        if op == 0:
            j = rng.randrange(len(line) + 1)
            lines[i] = line[:j] + rng.choice(pieces) + line[j:]
        elif op == 1 and line:
            j = rng.randrange(len(line))
            lines[i] = line[:j] + line[j + 1 :]
        elif op == 2:
            lines[i] = line[: rng.randrange(len(line) + 1)]
        else:
            lines.insert(rng.randrange(len(lines) + 1), line)
        text = "\n".join(lines) + "\n"
        for parse in parsers:
            try:
                parse(text)
            except ParseError:
                pass
