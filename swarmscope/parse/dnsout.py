"""Parse DNS lookups as users paste them: ``dig`` (full and ``+short``), ``nslookup`` (busybox and
BIND forms) and ``getent hosts|ahosts|ahostsv4`` (pure).

Full ``dig`` output is read by jc's ``dig`` parser (sections, status, server); the others are
read here. Each gives one :class:`Lookup`: the name asked, the status (ok, nxdomain, noanswer,
timeout, error, or unknown where the form does not say), the IPv4/IPv6 addresses answered and
the server, where printed. ``getent`` prints nothing for a name it cannot resolve, so an empty
``getent`` output is ``unknown`` (the pasted text cannot say which name was asked).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, cast

from swarmscope.errors import ParseError, parser

__all__ = ["Lookup", "parse_dig", "parse_nslookup", "parse_getent", "parse_dns"]


@dataclass
class Lookup:
    tool: str  # dig | dig +short | nslookup | getent
    query: str | None  # without the trailing dot; None where the output does not name it
    status: str  # ok | nxdomain | noanswer | timeout | error | unknown
    answers: list[str] = field(default_factory=list)  # A/AAAA addresses, in the order printed
    server: str | None = None
    reason: str | None = None


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


@parser("dig")
def parse_dig(text: str) -> Lookup:
    """``dig NAME`` (full output, through jc) or ``dig +short NAME`` (addresses, one a line)."""
    if "<<>> DiG" not in text and ";; ->>HEADER<<-" not in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines and all(_is_ip(ln) or ln.endswith(".") for ln in lines):
            return Lookup(tool="dig +short", query=None, status="ok", answers=[ln for ln in lines if _is_ip(ln)])
        if lines and all(ln.startswith(";;") for ln in lines):
            return Lookup(
                tool="dig +short",
                query=None,
                status="timeout" if "timed out" in text else "error",
                reason=lines[-1].lstrip("; "),
            )
        raise ParseError("dig", 1, lines[0] if lines else "", "neither dig output nor dig +short addresses")
    if ";; ->>HEADER<<-" not in text:
        reason = next(
            (
                ln.lstrip("; ").strip()
                for ln in text.splitlines()
                if "no servers could be reached" in ln or "timed out" in ln
            ),
            None,
        )
        q = re.search(r"<<>> DiG \S+ <<>>(?:\s+@\S+)?\s+(\S+)", text)
        return Lookup(
            tool="dig",
            query=q.group(1).rstrip(".") if q else None,
            status="timeout" if reason else "error",
            reason=reason or "no answer header in the output",
        )
    import jc

    try:
        res = cast(list[dict[str, Any]], jc.parse("dig", text, quiet=True))  # a list for a standard parser
    except Exception as exc:  # jc fails with IndexError/TypeError on cut output
        raise ParseError("dig", 0, "", f"jc could not read the dig output ({type(exc).__name__})") from None
    if not res:
        raise ParseError("dig", 0, "", "no answer section header in the dig output")
    r = res[0]
    status = str(r.get("status", "")).upper()
    answers = [a.get("data") for a in r.get("answer") or [] if a.get("type") in ("A", "AAAA") and a.get("data")]
    q = (r.get("question") or {}).get("name")
    server = r.get("server")
    st = {"NOERROR": "ok" if answers else "noanswer", "NXDOMAIN": "nxdomain"}.get(status, "error")
    return Lookup(
        tool="dig",
        query=q.rstrip(".") if q else None,
        status=st,
        answers=answers,
        server=server.split("#", 1)[0] if server else None,
        reason=None if st == "ok" else status.lower(),
    )


@parser("nslookup")
def parse_nslookup(text: str) -> Lookup:
    """busybox or BIND ``nslookup NAME``: ``Name: X`` / ``Address: A`` pairs after the server lines."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    server = None
    query = None
    answers: list[str] = []
    in_answer = False
    seen_server = False
    for lineno, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("Server:"):
            server = s.split(":", 1)[1].strip()
            seen_server = True
            in_answer = False
            continue
        if s.startswith("Address:") and not in_answer and query is None:
            continue  # the server's address
        if s.startswith("Non-authoritative answer") or s.startswith("Authoritative answers"):
            continue
        if s.startswith("Name:"):
            query = s.split(":", 1)[1].strip().rstrip(".")
            in_answer = True
            continue
        if s.startswith("Address:") or s.startswith("Addresses:"):
            a = s.split(":", 1)[1].strip()
            a = a.split("#", 1)[0] if "#" in a else a
            if _is_ip(a):
                answers.append(a)
            continue
        if "NXDOMAIN" in s or "can't find" in s or "server can't find" in s:
            m = re.search(r"find\s+(\S+?):", s)
            return Lookup(
                tool="nslookup",
                query=m.group(1).rstrip(".") if m else query,
                status="nxdomain",
                server=server,
                reason=s,
            )
        if "timed out" in s or "no servers could be reached" in s:
            return Lookup(tool="nslookup", query=query, status="timeout", server=server, reason=s.lstrip("; "))
        if s.startswith("**") or s.startswith(";;"):
            continue
        if not seen_server:
            raise ParseError("nslookup", lineno, line, "not nslookup output (no 'Server:' line first)")
    if answers:
        return Lookup(tool="nslookup", query=query, status="ok", answers=answers, server=server)
    if not seen_server:
        raise ParseError("nslookup", 0, "", "not nslookup output (no 'Server:' line)")
    return Lookup(tool="nslookup", query=query, status="noanswer", server=server)


@parser("getent")
def parse_getent(text: str) -> Lookup:
    """``getent hosts NAME`` (``ADDR NAME...``) or ``getent ahosts[v4] NAME`` (``ADDR STREAM NAME``,
    ``ADDR DGRAM`` ...)."""
    answers: list[str] = []
    query = None
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        words = s.split()
        if not _is_ip(words[0]):
            raise ParseError(
                "getent", lineno, line, f"{words[0]!r} is not an address (getent hosts/ahosts prints ADDRESS NAME)"
            )
        if words[0] not in answers:
            answers.append(words[0])
        names = [w for w in words[1:] if w not in ("STREAM", "DGRAM", "RAW")]
        if names and query is None:
            query = names[0].rstrip(".")
    if not answers:
        return Lookup(
            tool="getent",
            query=None,
            status="unknown",
            reason="getent printed nothing (the name did not resolve, or nothing was pasted)",
        )
    return Lookup(tool="getent", query=query, status="ok", answers=answers)


def parse_dns(text: str) -> Lookup:
    """Whichever of dig, dig +short, nslookup or getent the text is."""
    if "<<>> DiG" in text or ";; ->>HEADER<<-" in text:
        return parse_dig(text)
    if re.search(r"^\s*Server:", text, re.M):
        return parse_nslookup(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and all(ln.startswith(";;") for ln in lines):  # busybox nslookup and dig +short print only this on failure
        return Lookup(
            tool="dig/nslookup",
            query=None,
            status="timeout" if "timed out" in text else "error",
            reason=lines[-1].lstrip("; "),
        )
    if lines and all(_is_ip(ln) for ln in lines):
        return parse_dig(text)
    return parse_getent(text)
