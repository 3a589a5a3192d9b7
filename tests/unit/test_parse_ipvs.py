"""IPVS text parsing (ipvsadm -Ln, ipvsadm -S, /proc/net/ip_vs): golden files and targeted checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _fixtures import check_golden, fixture_files, read, rel
from swarmscope.errors import ParseError
from swarmscope.model import IpvsDest, IpvsService, IpvsTable, to_dict
from swarmscope.parse.ipvs import ipvsadm_layout, parse_ipvsadm_list, parse_ipvsadm_save, parse_proc_ip_vs

# --------------------------------------------------------------------------
# discovery


def _kind(name: str):
    if "proc-net-ip_vs" in name:
        return "proc"
    if "ipvsadm" in name:
        if "ipvsadm-save" in name or re.search(r"ipvsadm-S(-|\.)", name):
            return "save"
        return "list"
    return None


IPVS_FILES = [p for p in fixture_files() if _kind(p.name)]
PARSERS = {"list": parse_ipvsadm_list, "save": parse_ipvsadm_save, "proc": parse_proc_ip_vs}


def test_discovery_finds_lab_public_and_handwritten_files():
    kinds = {rel(p): _kind(p.name) for p in IPVS_FILES}
    assert len(IPVS_FILES) >= 20
    assert kinds["lab-vm/ingress-only/ingress_sbox-ipvsadm-Ln.txt"] == "list"
    assert kinds["lab-vm/ingress-only/ingress_sbox-ipvsadm-Ln-stats-after-requests.txt"] == "list"
    assert kinds["lab-vm/with-overlay/lb_odns2ld5k-ipvsadm-Ln.txt"] == "list"
    assert kinds["public/06/netns-4ba56594526d-ipvsadm.txt"] == "list"
    assert kinds["public/19/host1-lb_chhv2g5nn-ipvsadm-save.txt"] == "save"
    assert kinds["public/25/ingress_sbox-ipvsadm-S.txt"] == "save"
    assert kinds["handwritten/ingress_sbox-proc-net-ip_vs.txt"] == "proc"
    assert kinds["handwritten/mixed-ipvsadm-S.txt"] == "save"
    assert not any("original" in n for n in kinds)


@pytest.mark.parametrize("path", IPVS_FILES, ids=rel)
def test_ipvs_golden(path):
    kind = _kind(path.name)
    parse = PARSERS[kind]
    check_golden(path, parse.__name__, parse)


# --------------------------------------------------------------------------
# real output


def _dests(services, key):
    (svc,) = [s for s in services if s.key == key]
    return svc.dests


def test_lab_ingress_sbox_fwm_256():
    services = parse_ipvsadm_list(read("lab-vm/ingress-only/ingress_sbox-ipvsadm-Ln.txt"))
    assert [s.key for s in services] == ["FWM 256"]
    (svc,) = services
    assert (svc.protocol, svc.fwmark, svc.scheduler, svc.flags, svc.address, svc.port) == ("fwm", 256, "rr", [], None, None)
    assert [(d.address, d.port, d.forward, d.weight) for d in svc.dests] == [
        ("10.0.0.4", 0, "Masq", 1),
        ("10.0.0.5", 0, "Masq", 1),
    ]
    assert [(d.active, d.inactive) for d in svc.dests] == [(0, 0), (0, 1)]
    table = IpvsTable(available=True, source="ipvsadm", services=services)
    assert table.service_for_mark(0x100) is svc and table.service_for_mark(257) is None


def test_lab_lb_fwm_257():
    dests = _dests(parse_ipvsadm_list(read("lab-vm/with-overlay/lb_odns2ld5k-ipvsadm-Ln.txt")), "FWM 257")
    assert [d.address for d in dests] == ["10.0.1.3", "10.0.1.5"]


def test_lab_stats_layout():
    text = read("lab-vm/ingress-only/ingress_sbox-ipvsadm-Ln-stats-after-requests.txt")
    assert ipvsadm_layout(text) == "stats"
    (svc,) = parse_ipvsadm_list(text)
    assert svc.key == "FWM 256" and svc.scheduler == ""
    # --stats prints traffic counters, not ActiveConn/InActConn, and no forward or weight
    assert [(d.address, d.port, d.forward, d.weight, d.active, d.inactive) for d in svc.dests] == [
        ("10.0.0.4", 0, "", None, 0, 0),
        ("10.0.0.5", 0, "", None, 0, 0),
    ]


def test_lab_empty_tables_and_failed_nsenter():
    assert parse_ipvsadm_list(read("lab-vm/ingress-only/host-ipvsadm-Ln.txt")) == []
    assert parse_ipvsadm_list(read("lab-vm/with-overlay/netns-1-odns2ld5kv-ipvsadm-Ln.txt")) == []
    with pytest.raises(ParseError) as ei:
        parse_ipvsadm_list(read("lab-vm/with-overlay/netns-6ac5c4f5b337-ipvsadm-Ln.txt"))
    assert ei.value.lineno == 2 and "nsenter" in ei.value.line


def test_public_06_names_not_numbers():
    services = parse_ipvsadm_list(read("public/06/netns-4ba56594526d-ipvsadm-after-scale-5.txt"))
    dests = _dests(services, "FWM 258")
    assert [d.address for d in dests] == ["docker0.local"] + [f"192.168.200.{i}" for i in range(4, 8)]
    both = parse_ipvsadm_list(read("public/06/netns-2c34d17c8cde-ipvsadm-after-demoservice2.txt"))
    assert [s.key for s in both] == ["FWM 256", "FWM 258"]
    assert [d.address for d in both[0].dests] == ["192.168.200.9", "192.168.200.10"]


def test_public_19_same_vip_other_mark_per_node():
    h1 = parse_ipvsadm_save(read("public/19/host1-lb_chhv2g5nn-ipvsadm-save.txt"))
    h2 = parse_ipvsadm_save(read("public/19/host2-lb_xxxxxx-ipvsadm-save.txt"))
    assert [s.key for s in h1] == ["FWM 268"] and [s.key for s in h2] == ["FWM 269"]
    assert [d.address for d in h1[0].dests] == [d.address for d in h2[0].dests] == [
        "192.168.200.35",
        "192.168.200.36",
        "192.168.200.37",
    ]
    assert {(d.forward, d.weight, d.port) for d in h1[0].dests + h2[0].dests} == {("Masq", 1, 0)}
    sbox = parse_ipvsadm_save(read("public/19/ingress_sbox-ipvsadm-save.txt"))
    assert [(s.key, s.scheduler, [d.address for d in s.dests]) for s in sbox] == [("FWM 264", "rr", ["10.0.0.11"])]


def test_public_25_ipvsadm_S():
    (svc,) = parse_ipvsadm_save(read("public/25/ingress_sbox-ipvsadm-S.txt"))
    assert svc == IpvsService(protocol="fwm", scheduler="rr", fwmark=256, dests=[IpvsDest("10.0.0.4", 0, "Masq", 1)])


# --------------------------------------------------------------------------
# /proc/net/ip_vs, hand-written in the kernel's own format


def test_proc_hex_matches_real_ipvsadm_output():
    proc = parse_proc_ip_vs(read("handwritten/ingress_sbox-proc-net-ip_vs.txt"))
    real = parse_ipvsadm_list(read("lab-vm/ingress-only/ingress_sbox-ipvsadm-Ln.txt"))
    assert proc == real
    assert to_dict(proc)[0]["dests"][1] == {
        "address": "10.0.0.5",
        "port": 0,
        "forward": "Masq",
        "weight": 1,
        "active": 0,
        "inactive": 1,
    }


def test_proc_list_and_save_agree_on_mixed_sample():
    proc = parse_proc_ip_vs(read("handwritten/mixed-proc-net-ip_vs.txt"))
    listed = parse_ipvsadm_list(read("handwritten/mixed-ipvsadm-Ln.txt"))
    saved = parse_ipvsadm_save(read("handwritten/mixed-ipvsadm-S.txt"))
    assert proc == listed
    assert [s.key for s in proc] == ["TCP 10.0.0.5:80", "UDP 2001:db8::35:53", "FWM 268"]
    tcp, udp, fwm = proc
    assert tcp.flags == ["persistent 360", "mask 255.255.255.0"]
    assert [(d.address, d.port, d.forward, d.weight) for d in tcp.dests] == [("10.0.0.4", 8080, "Masq", 1), ("10.0.0.6", 8080, "Route", 0)]
    assert (udp.address, udp.port, udp.dests[0].address, udp.dests[0].forward) == ("2001:db8::35", 53, "2001:db8::2", "Tunnel")
    assert (fwm.fwmark, fwm.scheduler, fwm.flags) == (0x10C, "sh", ["ops"])
    # -S carries no connection counters
    for s in proc:
        for d in s.dests:
            d.active = d.inactive = 0
    assert saved == proc


def test_proc_v6_fwm_and_local():
    text = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
        "TCP  [fd00:0000:0000:0000:0000:0000:0000:0001]:01BB rr persistent 60 00000040\n"
        "  -> [fd00:0000:0000:0000:0000:0000:0000:0002]:01BB      Local   2      0          0         \n"
    )
    (svc,) = parse_proc_ip_vs(text)
    assert (svc.address, svc.port, svc.flags) == ("fd00::1", 443, ["persistent 60", "mask 64"])
    assert (svc.dests[0].address, svc.dests[0].forward, svc.dests[0].weight) == ("fd00::2", "Local", 2)


# --------------------------------------------------------------------------
# ipvsadm -Ln details


def test_list_address_services_ipv6_and_flags():
    text = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.5:80 rr persistent 360\n"
        "  -> 10.0.0.4:80                   Masq    0      3          1\n"
        "UDP  [2001:db8::1]:53 wlc ops\n"
        "  -> [2001:db8::2]:53              Route   1      0          0\n"
        "FWM  256 IPv6 rr\n"
        "SCTP 10.0.0.9:3868 sh (sh-fallback,sh-port)\n"
    )
    tcp, udp, fwm6, sctp = parse_ipvsadm_list(text)
    assert (tcp.key, tcp.flags, tcp.dests[0].weight, tcp.dests[0].active) == ("TCP 10.0.0.5:80", ["persistent 360"], 0, 3)
    assert (udp.address, udp.flags, udp.dests[0].address, udp.dests[0].forward) == ("2001:db8::1", ["ops"], "2001:db8::2", "Route")
    assert (fwm6.key, fwm6.flags) == ("FWM 256", ["ipv6"])
    assert (sctp.protocol, sctp.port, sctp.flags) == ("sctp", 3868, ["(sh-fallback,sh-port)"])


def test_list_persistent_conn_and_thresholds_layouts():
    pc = (
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight PersistConn ActiveConn InActConn\n"
        "FWM  256 rr\n"
        "  -> 10.0.0.4:0                   Masq    1      4           2          9\n"
    )
    assert ipvsadm_layout(pc) == "persistent-conn"
    (svc,) = parse_ipvsadm_list(pc)
    assert (svc.dests[0].weight, svc.dests[0].active, svc.dests[0].inactive) == (1, 2, 9)
    th = (
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n"
        "  -> RemoteAddress:Port\n"
        "FWM  256                          0          0          0          0\n"
        "  -> 10.0.0.4:0                   0          0          5          6\n"
    )
    (svc,) = parse_ipvsadm_list(th)
    assert (svc.dests[0].forward, svc.dests[0].weight, svc.dests[0].active, svc.dests[0].inactive) == ("", None, 5, 6)
    rate = (
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"
        "  -> RemoteAddress:Port\n"
        "FWM  256                                 0        0        0        0        0\n"
        "  -> 10.0.0.4:0                          0        0        0       1K       2M\n"
    )
    assert ipvsadm_layout(rate) == "rate"
    assert [d.address for d in parse_ipvsadm_list(rate)[0].dests] == ["10.0.0.4"]


def test_save_defaults_and_options():
    text = "-A -t 10.0.0.5:80\n-a -t 10.0.0.5:80 -r 10.0.0.4:80\n-A -f 7 -6 -s rr -p\n-a -f 7 -6 -r [fd00::4]:0 -m -w 3 -x 10 -y 2\n"
    tcp, fwm = parse_ipvsadm_save(text)
    assert (tcp.scheduler, tcp.dests[0].forward, tcp.dests[0].weight) == ("wlc", "Route", 1)
    assert (fwm.fwmark, fwm.flags) == (7, ["persistent 300", "ipv6"])
    assert (fwm.dests[0].address, fwm.dests[0].forward, fwm.dests[0].weight) == ("fd00::4", "Masq", 3)


# --------------------------------------------------------------------------
# errors name the line

_HDR = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


@pytest.mark.parametrize(
    "parse, text, lineno, bad, reason",
    [
        (parse_ipvsadm_list, _HDR + "FWM  256 rr\nthis is garbage\n", 5, "this is garbage", "unrecognised line"),
        (parse_ipvsadm_list, _HDR + "  -> 10.0.0.4:0  Masq 1 0 0\n", 4, "  -> 10.0.0.4:0  Masq 1 0 0", "before any service"),
        (parse_ipvsadm_list, _HDR + "FWM  256 rr\n  -> 10.0.0.4:0  Magic 1 0 0\n", 5, "  -> 10.0.0.4:0  Magic 1 0 0", "forwarding method"),
        (parse_ipvsadm_list, _HDR + "FWM  256 rr\n  -> 10.0.0.4:0  Masq 1 0\n", 5, "  -> 10.0.0.4:0  Masq 1 0", "expected Forward"),
        (parse_ipvsadm_list, _HDR + "TCP  myhost:http rr\n", 4, "TCP  myhost:http rr", "not a number"),
        (parse_ipvsadm_list, _HDR + "FWM  256 rr bogus\n", 4, "FWM  256 rr bogus", "unknown service flag"),
        (parse_ipvsadm_list, _HDR + "FWM  x rr\n", 4, "FWM  x rr", "not a number"),
        (parse_ipvsadm_list, "FWM  256 rr\n", 1, "FWM  256 rr", "no ipvsadm header"),
        (parse_ipvsadm_list, "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Foo\n", 2, "  -> RemoteAddress:Port Foo", "unknown ipvsadm layout"),
        (parse_ipvsadm_save, "-A -f 256 -s rr\n-a -f 257 -r 10.0.0.4:0 -m -w 1\n", 2, "-a -f 257 -r 10.0.0.4:0 -m -w 1", "no '-A' line declared"),
        (parse_ipvsadm_save, "-A -f 256 -s rr --bogus\n", 1, "-A -f 256 -s rr --bogus", "unknown option"),
        (parse_ipvsadm_save, "-A -f 256 -s\n", 1, "-A -f 256 -s", "without a value"),
        (parse_ipvsadm_save, "garbage\n", 1, "garbage", "unrecognised line"),
        (parse_ipvsadm_save, "-A -s rr\n", 1, "-A -s rr", "no service"),
        (parse_ipvsadm_save, "-A -f 256 -s rr\n-A -f 256 -s rr\n", 2, "-A -f 256 -s rr", "added twice"),
        (parse_proc_ip_vs, _HDR + "FWM  00000100 rr \n  -> 0A00000G:0000      Masq    1      0          0\n", 5,
         "  -> 0A00000G:0000      Masq    1      0          0", "bad destination line"),
        (parse_proc_ip_vs, _HDR + "FWM  256 rr\n", 4, "FWM  256 rr", "unrecognised line"),
        (parse_proc_ip_vs, "FWM  00000100 rr \n", 1, "FWM  00000100 rr ", "no 'Prot LocalAddress:Port"),
    ],
)
def test_errors_name_the_line(parse, text, lineno, bad, reason):
    with pytest.raises(ParseError) as ei:
        parse(text)
    err = ei.value
    assert (err.lineno, err.line) == (lineno, bad)
    assert reason in err.reason
    assert f"line {lineno}" in str(err) and repr(bad) in str(err)


def _vm_ipvs_dirs():
    root = Path(__file__).resolve().parents[1] / "fixtures" / "vm"
    return sorted(d for d in root.glob("*/ns/*") if (d / "ipvsadm-S-n.txt").exists() and (d / "proc-net-ip_vs.txt").exists()
                  and (d / "ipvsadm-Ln.txt").exists())


def _shape(services):
    """What the three formats share: services and their real servers (not connection counts)."""
    return sorted((s.protocol, s.fwmark, s.address, s.port, s.scheduler,
                   tuple(sorted((d.address, d.port, d.forward, d.weight) for d in s.dests))) for s in services)


@pytest.mark.parametrize("d", _vm_ipvs_dirs(), ids=lambda d: f"{d.parts[-3]}/{d.name}")
def test_three_ipvs_formats_agree_on_the_vm_captures(d):
    """ipvsadm -Ln, ipvsadm -S -n and /proc/net/ip_vs, captured together on a real ip_vs kernel, parse alike."""
    listed = parse_ipvsadm_list(d.joinpath("ipvsadm-Ln.txt").read_text())
    assert _shape(listed) == _shape(parse_ipvsadm_save(d.joinpath("ipvsadm-S-n.txt").read_text()))
    assert _shape(listed) == _shape(parse_proc_ip_vs(d.joinpath("proc-net-ip_vs.txt").read_text()))


def test_vm_captures_include_load_balancers_with_real_servers():
    dirs = _vm_ipvs_dirs()
    assert any(d.name == "ingress_sbox" for d in dirs) and any(d.name.startswith("lb_") for d in dirs)
    assert any(s.dests for d in dirs for s in parse_ipvsadm_list(d.joinpath("ipvsadm-Ln.txt").read_text()))
