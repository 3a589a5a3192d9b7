"""Ask the embedded DNS resolver (127.0.0.11) of the current namespace."""

from __future__ import annotations

import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from swarmscope.model import DnsAnswer

RESOLVER = "127.0.0.11"


def ask(name: str, timeout: float) -> tuple[str, list[str], str | None, float]:
    """(status, sorted A answers with any duplicates kept, reason, duration_ms) for one A query."""
    q = dns.message.make_query(name, dns.rdatatype.A)
    q.flags |= dns.flags.RD
    t0 = time.monotonic()
    try:
        # one RR per rrset: the embedded resolver's duplicate records survive parsing (a set would fold them)
        resp = dns.query.udp(q, RESOLVER, timeout=timeout, one_rr_per_rrset=True)
    except dns.exception.Timeout:
        return "timeout", [], f"no answer from {RESOLVER} within {timeout:g}s", (time.monotonic() - t0) * 1000
    except OSError as exc:
        return "error", [], f"{RESOLVER}: {exc.strerror or exc}", (time.monotonic() - t0) * 1000
    except dns.exception.DNSException as exc:
        return "error", [], str(exc), (time.monotonic() - t0) * 1000
    ms = (time.monotonic() - t0) * 1000
    rcode = resp.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", [], None, ms
    if rcode != dns.rcode.NOERROR:
        return "error", [], f"rcode {dns.rcode.to_text(rcode)}", ms
    answers = sorted(
        [rr.address for rrset in resp.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset],
        key=lambda a: tuple(int(x) for x in a.split(".")),
    )
    return ("ok" if answers else "noanswer"), answers, None, ms


def ask_all(questions: list[tuple[str, str, str]], namespace: str, timeout: float) -> list[DnsAnswer]:
    """questions: (service name, network id, network name); asks <svc> and tasks.<svc>."""
    out = []
    for service, net_id, net_name in questions:
        for query in (service, f"tasks.{service}"):
            status, answers, reason, ms = ask(query, timeout)
            out.append(
                DnsAnswer(
                    service=service,
                    network_id=net_id,
                    network_name=net_name,
                    query=query,
                    namespace=namespace,
                    status=status,
                    answers=answers,
                    duration_ms=round(ms, 2),
                    reason=reason,
                )
            )
    return out
