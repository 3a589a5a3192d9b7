"""Parse IPVS tables as text: ``ipvsadm -Ln``, ``ipvsadm -S -n``, ``/proc/net/ip_vs``.

Pure functions returning ``list[IpvsService]``; bad input raises
:class:`swarmscope.errors.ParseError` naming the line. Lines starting with
``#`` (a capture's own header, e.g. ``# ipvsadm -Ln``) and blank lines are
skipped.

Conventions shared with the netlink reader (``swarmscope.collect.ipvs``):
``protocol`` is ``fwm``/``tcp``/``udp``/``sctp``; ``forward`` is
``Masq``/``Route``/``Tunnel``/``Local``; service flags are ``"persistent N"``,
``"mask M"``, ``"pe NAME"``, ``"ops"``, scheduler flags as ``"(f1,f2)"``, and
``"ipv6"`` for an IPv6 firewall-mark service (ipvsadm prints ``FWM  N IPv6``;
for address services the address itself tells the family).
"""

from __future__ import annotations

import ipaddress
import re

from swarmscope.errors import ParseError, is_number, parser
from swarmscope.model import IpvsDest, IpvsService

__all__ = [
    "parse_ipvsadm_list",
    "parse_ipvsadm_save",
    "parse_proc_ip_vs",
    "ipvsadm_layout",
]

_PROTOS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "FWM": "fwm"}
_FORWARDS = {"Masq", "Route", "Tunnel", "Local", "Bypass"}
_VERSION_RE = re.compile(r"^IP Virtual Server version \S+ \(size=\d+\)$", re.ASCII)

# ipvsadm -L layouts: service header columns -> (layout, destination header columns)
_LAYOUTS = {
    ("Prot", "LocalAddress:Port", "Scheduler", "Flags"): None,  # list or persistent-conn: decided by the dest header
    ("Prot", "LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"): "stats",
    ("Prot", "LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"): "rate",
    ("Prot", "LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"): "thresholds",
}
_DEST_HEADERS = {
    ("->", "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn"): "list",
    ("->", "RemoteAddress:Port", "Forward", "Weight", "PersistConn", "ActiveConn", "InActConn"): "persistent-conn",
    ("->", "RemoteAddress:Port"): None,  # stats, rate, thresholds
}
_NUM_RE = re.compile(r"^\d{1,20}[KMGT]?$", re.ASCII)  # ipvsadm abbreviates large counters without --exact


def _lines(text: str):
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        yield lineno, line, s


def _hostport(value: str, what: str, lineno: int, line: str) -> tuple[str, int]:
    """Split ``addr:port`` / ``[v6]:port`` / ``host.name:port``; the port must be numeric."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise ParseError(what, lineno, line, f"bad address {value!r} (expected [IPv6]:PORT)")
        host, port_s = value[1:end], value[end + 2 :]
    else:
        host, sep, port_s = value.rpartition(":")
        if not sep or not host or ":" in host:
            raise ParseError(what, lineno, line, f"bad address {value!r} (expected ADDRESS:PORT)")
    if not is_number(port_s, 5):
        raise ParseError(what, lineno, line, f"port {port_s!r} is not a number (names resolved? use ipvsadm -n)")
    port = int(port_s)
    if port > 65535:
        raise ParseError(what, lineno, line, f"port {port} out of range")
    return host, port


def _int(value: str, what: str, lineno: int, line: str, name: str) -> int:
    v = value[1:] if value.startswith("-") else value
    if not is_number(v):
        raise ParseError(what, lineno, line, f"{name} {value[:40]!r} is not a number")
    return int(value)


def _service_flags(words: list[str], what: str, lineno: int, line: str) -> list[str]:
    """``persistent 360 mask 255.255.255.0 pe sip ops (sh-port)`` -> grouped flags."""
    flags: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("persistent", "mask", "pe"):
            if i + 1 >= len(words):
                raise ParseError(what, lineno, line, f"{w!r} without a value")
            flags.append(f"{w} {words[i + 1]}")
            i += 2
        elif w == "ops" or (w.startswith("(") and w.endswith(")")):
            flags.append(w)
            i += 1
        else:
            raise ParseError(what, lineno, line, f"unknown service flag {w!r}")
    return flags


@parser("ipvsadm -L")
def ipvsadm_layout(text: str) -> str | None:
    """Which ``ipvsadm -L`` layout ``text`` has: list, persistent-conn, stats, rate, thresholds; None if no header."""
    service_layout: str | None = None
    seen_service_header = False
    for _lineno, _line, s in _lines(text):
        cols = tuple(s.split())
        if cols in _LAYOUTS:
            seen_service_header = True
            service_layout = _LAYOUTS[cols]
            continue
        if seen_service_header and cols in _DEST_HEADERS:
            return _DEST_HEADERS[cols] or service_layout
    return None


@parser("ipvsadm -Ln")
def parse_ipvsadm_list(text: str) -> list[IpvsService]:
    """Parse ``ipvsadm -Ln`` (also with ``--exact``, ``--stats``, ``--rate``, ``--thresholds``, ``--persistent-conn``).

    Service lines: ``FWM  256 rr``, ``FWM  256 IPv6 rr``, ``TCP  10.0.0.5:80 rr
    persistent 360``, ``UDP  [2001:db8::1]:53 rr``. Destination lines:
    ``  -> 10.0.0.4:0   Masq  1  0  0``.

    The ``--stats``/``--rate``/``--thresholds`` layouts print neither the
    scheduler nor the forwarding method nor the weight: those services get
    ``scheduler=""`` and their destinations ``forward=""`` and ``weight=None``
    (unknown, which is not weight 0), ``active``/``inactive`` 0 (or the
    thresholds layout's own ActiveConn/InActConn). Output without ``-n``
    (host names) keeps the name as the address; a port name is an error.
    """
    what = "ipvsadm -Ln"
    layout: str | None = None  # known once both header lines are read
    service_layout: str | None = None
    pending_service_header = False
    services: list[IpvsService] = []
    current: IpvsService | None = None
    lineno, line = 0, ""
    for lineno, line, s in _lines(text):
        if _VERSION_RE.match(s):
            continue
        cols = tuple(s.split())
        if cols in _LAYOUTS:
            service_layout = _LAYOUTS[cols]
            pending_service_header = True
            continue
        if pending_service_header:
            if cols not in _DEST_HEADERS:
                raise ParseError(what, lineno, line, "unknown ipvsadm layout (destination header not recognised)")
            layout = _DEST_HEADERS[cols] or service_layout
            if layout is None:
                raise ParseError(what, lineno, line, "unknown ipvsadm layout (headers do not go together)")
            pending_service_header = False
            continue
        if layout is None:
            raise ParseError(what, lineno, line,
                             "no ipvsadm header before this line (expected 'Prot LocalAddress:Port ...')")
        words = s.split()
        if words[0] == "->":
            if current is None:
                raise ParseError(what, lineno, line, "destination before any service")
            current.dests.append(_list_dest(words, layout, what, lineno, line))
            continue
        if words[0] not in _PROTOS:
            raise ParseError(
                what,
                lineno,
                line,
                "unrecognised line (expected a service 'TCP|UDP|SCTP|FWM ...' or a destination '-> ...')",
            )
        current = _list_service(words, layout, what, lineno, line)
        services.append(current)
    if pending_service_header:
        raise ParseError(what, lineno, line, "ipvsadm header cut short (no destination header)")
    return services


def _list_service(words: list[str], layout: str, what: str, lineno: int, line: str) -> IpvsService:
    proto = _PROTOS[words[0]]
    if len(words) < 2:
        raise ParseError(what, lineno, line, "service line without an address or mark")
    rest = words[2:]
    extra: list[str] = []
    if proto == "fwm":
        fwmark = _int(words[1], what, lineno, line, "firewall mark")
        svc = IpvsService(protocol="fwm", scheduler="", fwmark=fwmark)
        if rest and rest[0] == "IPv6":
            extra.append("ipv6")
            rest = rest[1:]
    else:
        host, port = _hostport(words[1], what, lineno, line)
        svc = IpvsService(protocol=proto, scheduler="", address=host, port=port)
    if layout in ("list", "persistent-conn"):
        if not rest:
            raise ParseError(what, lineno, line, "service line without a scheduler")
        svc.scheduler = rest[0]
        svc.flags = _service_flags(rest[1:], what, lineno, line) + extra
    else:
        ncols = 4 if layout == "thresholds" else 5
        if len(rest) != ncols or not all(_NUM_RE.match(w) for w in rest):
            raise ParseError(what, lineno, line, f"expected {ncols} counters after the service in the {layout} layout")
        svc.flags = extra
    return svc


def _list_dest(words: list[str], layout: str, what: str, lineno: int, line: str) -> IpvsDest:
    if len(words) < 2:
        raise ParseError(what, lineno, line, "destination line without an address")
    host, port = _hostport(words[1], what, lineno, line)
    rest = words[2:]
    if layout in ("list", "persistent-conn"):
        want = 4 if layout == "list" else 5
        if len(rest) != want:
            raise ParseError(
                what, lineno, line, f"expected Forward Weight {'PersistConn ' if want == 5 else ''}ActiveConn InActConn"
            )
        fwd = rest[0]
        if fwd not in _FORWARDS:
            raise ParseError(what, lineno, line, f"unknown forwarding method {fwd!r}")
        nums = [_int(v, what, lineno, line, "counter") for v in rest[1:]]
        return IpvsDest(address=host, port=port, forward=fwd, weight=nums[0], active=nums[-2], inactive=nums[-1])
    ncols = 4 if layout == "thresholds" else 5
    if len(rest) != ncols or not all(_NUM_RE.match(w) for w in rest):
        raise ParseError(what, lineno, line, f"expected {ncols} counters after the destination in the {layout} layout")
    dest = IpvsDest(address=host, port=port, forward="", weight=None)  # unknown here
    if layout == "thresholds":
        dest.active = _int(rest[2], what, lineno, line, "ActiveConn")
        dest.inactive = _int(rest[3], what, lineno, line, "InActConn")
    return dest


# --------------------------------------------------------------------------
# ipvsadm -S -n

_SAVE_SVC_KIND = {
    "-t": "tcp",
    "--tcp-service": "tcp",
    "-u": "udp",
    "--udp-service": "udp",
    "-q": "sctp",
    "--sctp-service": "sctp",
    "-f": "fwm",
    "--fwmark-service": "fwm",
}
_SAVE_FWD = {
    "-g": "Route",
    "--gatewaying": "Route",
    "-i": "Tunnel",
    "--ipip": "Tunnel",
    "-m": "Masq",
    "--masquerading": "Masq",
}


def _arg(words: list[str], i: int, what: str, lineno: int, line: str) -> str:
    """The value of option ``words[i]``: the next word, which must not be another option."""
    if i + 1 >= len(words) or words[i + 1].startswith("-"):
        raise ParseError(what, lineno, line, f"{words[i]} without a value")
    return words[i + 1]


@parser("ipvsadm -S")
def parse_ipvsadm_save(text: str) -> list[IpvsService]:
    """Parse ``ipvsadm -S -n`` (``ipvsadm --save``) output.

    ``-A -f 256 -s rr`` / ``-A -t 10.0.0.5:80 -s rr -p 360`` declare services,
    ``-a -f 256 -r 10.0.0.4:0 -m -w 1`` add destinations (``-g`` Route,
    ``-i`` Tunnel, ``-m`` Masq; ipvsadm's default is ``-g``, weight 1). A
    destination for an undeclared service, an unknown option or a missing
    value raises ParseError.
    """
    what = "ipvsadm -S"
    services: list[IpvsService] = []
    by_key: dict[tuple, IpvsService] = {}
    for lineno, line, s in _lines(text):
        words = s.split()
        cmd = words[0]
        if cmd not in ("-A", "--add-service", "-a", "--add-server"):
            raise ParseError(what, lineno, line, "unrecognised line (expected '-A ...' or '-a ...')")
        is_service = cmd in ("-A", "--add-service")
        key: tuple | None = None
        svc = IpvsService(protocol="", scheduler="")
        dest_addr: tuple[str, int] | None = None
        fwd: str | None = None
        weight = 1
        ipv6 = False
        sched_set = False
        i = 1

        while i < len(words):
            w = words[i]
            if w in _SAVE_SVC_KIND:
                if key is not None:
                    raise ParseError(what, lineno, line, "two services on one line")
                kind = _SAVE_SVC_KIND[w]
                v = _arg(words, i, what, lineno, line)
                svc.protocol = kind
                if kind == "fwm":
                    svc.fwmark = _int(v, what, lineno, line, "firewall mark")
                    key = ("fwm", svc.fwmark)
                else:
                    svc.address, svc.port = _hostport(v, what, lineno, line)
                    key = (kind, svc.address, svc.port)
                i += 2
            elif w in ("-6", "--ipv6"):
                ipv6 = True
                i += 1
            elif is_service and w in ("-s", "--scheduler"):
                svc.scheduler = _arg(words, i, what, lineno, line)
                sched_set = True
                i += 2
            elif is_service and w in ("-p", "--persistent"):
                if i + 1 < len(words) and is_number(words[i + 1]):
                    svc.flags.append(f"persistent {words[i + 1]}")
                    i += 2
                else:
                    svc.flags.append("persistent 300")  # ipvsadm's default timeout
                    i += 1
            elif is_service and w in ("-M", "--netmask"):
                svc.flags.append(f"mask {_arg(words, i, what, lineno, line)}")
                i += 2
            elif is_service and w == "--pe":
                svc.flags.append(f"pe {_arg(words, i, what, lineno, line)}")
                i += 2
            elif is_service and w in ("-b", "--sched-flags"):
                svc.flags.append(f"({_arg(words, i, what, lineno, line)})")
                i += 2
            elif is_service and w in ("-o", "--ops"):
                svc.flags.append("ops")
                i += 1
            elif not is_service and w in ("-r", "--real-server"):
                dest_addr = _hostport(_arg(words, i, what, lineno, line), what, lineno, line)
                i += 2
            elif not is_service and w in _SAVE_FWD:
                if fwd is not None:
                    raise ParseError(what, lineno, line, "two forwarding methods")
                fwd = _SAVE_FWD[w]
                i += 1
            elif not is_service and w in ("-w", "--weight"):
                weight = _int(_arg(words, i, what, lineno, line), what, lineno, line, "weight")
                i += 2
            elif not is_service and w in (
                "-x",
                "--u-threshold",
                "-y",
                "--l-threshold",
                "--tun-type",
                "--tun-port",
                "--tun-nocsum",
                "--tun-csum",
                "--tun-remcsum",
            ):
                # thresholds and tunnel options: accepted, not modelled
                takes_value = w not in ("--tun-nocsum", "--tun-csum", "--tun-remcsum")
                if takes_value:
                    _arg(words, i, what, lineno, line)
                i += 2 if takes_value else 1
            else:
                raise ParseError(what, lineno, line, f"unknown option {w!r}")
        if key is None:
            raise ParseError(what, lineno, line, "no service (-t/-u/-f ...) on the line")
        if ipv6:
            key = key + ("ipv6",)
        if is_service:
            if not sched_set:
                svc.scheduler = "wlc"  # ipvsadm's default scheduler
            if ipv6 and svc.protocol == "fwm":
                svc.flags.append("ipv6")
            if key in by_key:
                raise ParseError(what, lineno, line, "service added twice")
            by_key[key] = svc
            services.append(svc)
        else:
            target = by_key.get(key)
            if target is None:
                raise ParseError(what, lineno, line, "destination for a service no '-A' line declared")
            if dest_addr is None:
                raise ParseError(what, lineno, line, "destination line without -r ADDRESS:PORT")
            target.dests.append(
                IpvsDest(address=dest_addr[0], port=dest_addr[1], forward=fwd or "Route", weight=weight)
            )
    return services


# --------------------------------------------------------------------------
# /proc/net/ip_vs

_PROC_SERVICE_RE = re.compile(
    r"^(?P<proto>TCP|UDP|SCTP|AH|ESP|FWM)\s+"
    r"(?:(?P<hexaddr>[0-9A-Fa-f]{8}):(?P<hexport>[0-9A-Fa-f]{4})|\[(?P<v6>[0-9A-Fa-f:]+)\]:(?P<v6port>[0-9A-Fa-f]{4})|(?P<fwmark>[0-9A-Fa-f]{8}))"
    r"\s+(?P<rest>.*)$",
    re.ASCII,
)
_PROC_DEST_RE = re.compile(
    r"^->\s+(?:(?P<hexaddr>[0-9A-Fa-f]{8}):(?P<hexport>[0-9A-Fa-f]{4})|\[(?P<v6>[0-9A-Fa-f:]+)\]:(?P<v6port>[0-9A-Fa-f]{4}))"
    r"\s+(?P<fwd>\S+)\s+(?P<weight>-?\d{1,20})\s+(?P<active>\d{1,20})\s+(?P<inactive>\d{1,20})$",
    re.ASCII,
)


def _hex_ipv4(h: str) -> str:
    return str(ipaddress.IPv4Address(int(h, 16)))


@parser("/proc/net/ip_vs")
def parse_proc_ip_vs(text: str) -> list[IpvsService]:
    """Parse ``/proc/net/ip_vs`` (hex addresses, ports and marks).

    ``TCP  0A000005:0050 rr `` -> tcp 10.0.0.5:80; ``FWM  00000100 rr `` ->
    fwm 256; ``  -> 0A000004:0000      Masq    1      0          0`` -> dest
    10.0.0.4:0. ``persistent T MASK`` becomes ``"persistent T"`` (and
    ``"mask M"`` when the mask is not all ones). IPv6 addresses come out in
    compressed form.
    """
    what = "/proc/net/ip_vs"
    services: list[IpvsService] = []
    current: IpvsService | None = None
    header_seen = False
    for lineno, line, s in _lines(text):
        if _VERSION_RE.match(s):
            continue
        if s.split() == ["Prot", "LocalAddress:Port", "Scheduler", "Flags"]:
            header_seen = True
            continue
        if s.split() == ["->", "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn"]:
            continue
        if not header_seen:
            raise ParseError(what, lineno, line, "no 'Prot LocalAddress:Port Scheduler Flags' header before this line")
        if s.startswith("->"):
            m = _PROC_DEST_RE.match(s)
            if not m:
                raise ParseError(what, lineno, line, "bad destination line")
            if current is None:
                raise ParseError(what, lineno, line, "destination before any service")
            if m.group("hexaddr"):
                addr, port = _hex_ipv4(m.group("hexaddr")), int(m.group("hexport"), 16)
            else:
                addr, port = _v6(m.group("v6"), what, lineno, line), int(m.group("v6port"), 16)
            fwd = m.group("fwd")
            if fwd not in _FORWARDS:
                raise ParseError(what, lineno, line, f"unknown forwarding method {fwd!r}")
            current.dests.append(
                IpvsDest(
                    address=addr,
                    port=port,
                    forward=fwd,
                    weight=int(m.group("weight")),
                    active=int(m.group("active")),
                    inactive=int(m.group("inactive")),
                )
            )
            continue
        m = _PROC_SERVICE_RE.match(s)
        if not m:
            raise ParseError(what, lineno, line, "unrecognised line (expected a service or a '->' destination)")
        proto = m.group("proto").lower()
        rest = m.group("rest").split()
        if not rest:
            raise ParseError(what, lineno, line, "service line without a scheduler")
        is_v6 = False
        if proto == "fwm":
            if m.group("fwmark") is None:
                raise ParseError(what, lineno, line, "FWM service without a hex mark")
            svc = IpvsService(protocol="fwm", scheduler=rest[0], fwmark=int(m.group("fwmark"), 16))
        else:
            if m.group("fwmark") is not None:
                raise ParseError(what, lineno, line, f"{proto.upper()} service without ADDRESS:PORT")
            if m.group("hexaddr"):
                addr, port = _hex_ipv4(m.group("hexaddr")), int(m.group("hexport"), 16)
            else:
                is_v6 = True
                addr, port = _v6(m.group("v6"), what, lineno, line), int(m.group("v6port"), 16)
            svc = IpvsService(protocol=proto, scheduler=rest[0], address=addr, port=port)
        flags = rest[1:]
        i = 0
        while i < len(flags):
            if flags[i] == "ops":
                svc.flags.append("ops")
                i += 1
            elif flags[i] == "persistent" and i + 1 < len(flags):
                svc.flags.append(f"persistent {_int(flags[i + 1], what, lineno, line, 'timeout')}")
                if i + 2 < len(flags):
                    if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", flags[i + 2]):
                        raise ParseError(what, lineno, line, f"bad persistence mask {flags[i + 2]!r}")
                    mask = int(flags[i + 2], 16)
                    if is_v6:
                        if mask != 128:
                            svc.flags.append(f"mask {mask}")
                    elif mask != 0xFFFFFFFF:
                        svc.flags.append(f"mask {ipaddress.IPv4Address(mask)}")
                    i += 3
                else:
                    i += 2
            else:
                raise ParseError(what, lineno, line, f"unknown service flag {flags[i]!r}")
        current = svc
        services.append(svc)
    return services


def _v6(text: str, what: str, lineno: int, line: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ParseError(what, lineno, line, f"bad IPv6 address {text!r}") from None
