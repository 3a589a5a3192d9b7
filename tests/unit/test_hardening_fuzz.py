"""Fuzzing the pure parsers (issue #15): whatever text they get, they fail only with ParseError, and the
helpers the correlator calls on parsed rules never raise at all.

Two bounded fuzzers: mutations of every real fixture (fixed seed, a time budget) and Hypothesis
(derandomized, a fixed number of examples), so the suite stays reproducible and quick."""

from __future__ import annotations

import random
import time

from _fixtures import fixture_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmscope.errors import ParseError
from swarmscope.model import to_dict
from swarmscope.parse import iproute, iptables, ipvs

PARSERS = {
    "iptables-save": lambda t: iptables.parse_iptables_save(t),
    "iptables-save lenient": lambda t: iptables.parse_iptables_save(t, lenient=True),
    "iptables -S": lambda t: iptables.parse_iptables_rules(t),
    "iptables -S lenient": lambda t: iptables.parse_iptables_rules(t, lenient=True),
    "ipvsadm -Ln": ipvs.parse_ipvsadm_list,
    "ipvsadm -S": ipvs.parse_ipvsadm_save,
    "/proc/net/ip_vs": ipvs.parse_proc_ip_vs,
    "ipvsadm layout": ipvs.ipvsadm_layout,
    "ip addr": iproute.parse_ip_addr,
}
HOSTILE = ["\u00b2", "\u0663", "9" * 5000, "", "-", "!", '"', "\\", "[", "]", ":", "id", "vxlan id", "-A", "*nat",
           "COMMIT", "FWM", "->", "0x" + "f" * 30, "\x00", "nan", "-c", "[1:2]", ":X - [", "-j", "-m", "--dport",
           "-p tcp --dport \u00b2", "--to-destination 1.2.3.4:\u00b2", "--set-xmark 0x" + "1" * 5000, "mtu \u00b2",
           "@if\u00b2", "link-netnsid \u00b2", "inet 10.0.0.1/\u00b2", "-r 10.0.0.1:\u00b2", "persistent", "-w"]


def _rule_helpers(result) -> None:
    """The correlator's helpers on every rule a parser produced: they answer, never raise."""
    dumps = [result] if isinstance(result, iptables.IptablesDump) else []
    tables = [result] if isinstance(result, iptables.Table) else [t for d in dumps for t in d.tables.values()]
    for t in tables:
        for c in t.chains.values():
            for r in c.rules:
                iptables.mark_value(r)
                iptables.dnat_destination(r)
                iptables.snat_source(r)
                iptables.redirect_ports(r)


def _run_all(text: str) -> None:
    for name, parse in PARSERS.items():
        try:
            result = parse(text)
        except ParseError:
            continue
        except Exception as exc:  # noqa: BLE001 - the assertion
            raise AssertionError(f"{name} raised {type(exc).__name__}: {exc!s:.200} on {text[:300]!r}") from None
        to_dict(result)
        _rule_helpers(result)
    for line in text.splitlines()[:50]:
        for fn in (iptables.parse_rule, iptables.split_words):
            try:
                fn(line)
            except ParseError:
                pass


def _mutate(rng: random.Random, text: str) -> str:
    lines = text.splitlines() or [""]
    i = rng.randrange(len(lines))
    words = lines[i].split(" ")
    op = rng.randrange(7)
    if op == 0:  # replace a word with a hostile one
        words[rng.randrange(len(words))] = rng.choice(HOSTILE)
    elif op == 1:  # insert one
        words.insert(rng.randrange(len(words) + 1), rng.choice(HOSTILE))
    elif op == 2:  # drop a word
        words.pop(rng.randrange(len(words)))
    elif op == 3:  # cut the line short
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        return "\n".join(lines)
    elif op == 4:  # duplicate or drop a line
        if rng.random() < 0.5:
            lines.insert(i, lines[i])
        else:
            lines.pop(i)
        return "\n".join(lines)
    elif op == 5:  # a digit becomes a non-ASCII digit, or a number grows past int's limit
        # (a line grown once is not grown again: three rounds on one line of digits would need gigabytes)
        grow = "9" * 4400 if len(lines[i]) < 20_000 else "\u00b2"
        lines[i] = "".join(("\u00b2" if rng.random() < 0.5 else grow) if ch.isdigit() and rng.random() < 0.3 else ch
                           for ch in lines[i])
        return "\n".join(lines)
    else:  # cut the text anywhere
        return text[: rng.randrange(len(text) + 1)]
    lines[i] = " ".join(words)
    return "\n".join(lines)


def test_mutated_fixtures_raise_only_parse_errors():
    rng = random.Random(15)
    texts = [p.read_text(errors="replace") for p in fixture_files() if p.suffix == ".txt"]
    assert len(texts) > 20
    deadline = time.monotonic() + 12.0  # a time budget: the count depends on the machine, never the outcome
    n = 0
    while time.monotonic() < deadline:
        text = rng.choice(texts)
        for _ in range(rng.randrange(1, 4)):
            text = _mutate(rng, text)
        _run_all(text)
        n += 1
    assert n > 200, f"only {n} mutations in the budget"


def test_known_crashers_are_parse_errors():
    """Inputs that raised ValueError/IndexError before issue #15."""
    cases = {
        "ip addr": ["1: eth0: <UP> mtu 1500\n    vxlan id", "1: eth0@if\u00b2: <UP> mtu 1500", "9" * 5000 + ": eth0: <UP>",
                    "1: eth0: <UP> mtu 1500\n    inet 10.0.0.1/" + "9" * 5000],
        "ipvsadm -Ln": ["Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
                        "TCP  10.0.0.1:\u00b2 rr", "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward "
                        "Weight ActiveConn InActConn\nFWM  " + "9" * 5000 + " rr"],
        "ipvsadm -S": ["-A -t 10.0.0.1:\u00b2 -s rr", "-A -f 1 -s rr\n-a -f 1 -r 10.0.0.2:80 -w " + "9" * 5000],
        "/proc/net/ip_vs": ["Prot LocalAddress:Port Scheduler Flags\nTCP  0A000001:0050 rr \n  -> 0A000002:0050      Masq    "
                            + "9" * 5000 + "      0          0"],
        "iptables-save": ["*nat\n:X - [" + "9" * 5000 + ":0]\nCOMMIT", "*nat\n:X - [0:0]\n[" + "9" * 5000 + ":1] -A X -j ACCEPT\nCOMMIT",
                          "*nat\n:X - [0:0]\n-A X -c \u00b2 \u00b2 -j ACCEPT\nCOMMIT"],
    }
    for name, texts in cases.items():
        for text in texts:
            try:
                PARSERS[name](text)
            except ParseError:
                pass
    rule = iptables.parse_rule("-A X -p tcp -j DNAT --to-destination 10.0.0.1:\u00b2")
    assert iptables.dnat_destination(rule) == ("10.0.0.1", None)
    rule = iptables.parse_rule("-A X -p tcp -j REDIRECT --to-ports \u00b2")
    assert iptables.redirect_ports(rule) is None


_TOKENS = st.sampled_from(["*nat", "*filter", "COMMIT", ":DOCKER", "ACCEPT", "-", "[0:0]", "-A", "DOCKER", "-p", "tcp", "-m",
                           "comment", "--comment", '"x y"', '"', "!", "-j", "DNAT", "--to-destination", "10.0.0.1:80",
                           "Prot", "LocalAddress:Port", "Scheduler", "Flags", "->", "RemoteAddress:Port", "Forward",
                           "Weight", "ActiveConn", "InActConn", "FWM", "256", "rr", "Masq", "1", "0", "TCP",
                           "0A000001:0050", "-a", "-f", "-r", "-w", "-s", "1:", "eth0:", "<UP>", "mtu", "inet",
                           "10.0.0.2/24", "link/ether", "vxlan", "id", "\u00b2", "9" * 4400, "@if3"])
_LINE = st.lists(_TOKENS | st.text(max_size=6), max_size=10).map(" ".join)
_TEXT = st.lists(st.tuples(st.sampled_from(["", "  ", "    "]), _LINE).map("".join), max_size=8).map("\n".join)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_TEXT)
def test_generated_text_raises_only_parse_errors(text):
    _run_all(text)
