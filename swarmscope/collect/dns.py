"""Ask the embedded DNS resolver (127.0.0.11) of the current namespace.

Every question of a namespace is asked at once from one UDP socket (a window
of ``WINDOW`` in flight, each with its own deadline), so a resolver that does
not answer costs one timeout, not one per question. dnspython builds and reads
the messages; it is imported on first use (only namespaces that ask need it).

An answer too large for the UDP reply is truncated by the resolver (the TC flag: with 512 bytes, 17 of
``tasks.whoami``'s 90 addresses on the lab), which would read as tasks missing from DNS. Each question
offers a larger UDP reply (EDNS0, ``EDNS_PAYLOAD``: the engine's resolver honours it); an answer still
truncated is asked again over TCP, as a stub resolver does; where that fails too, the answer is kept as
what it is, a part (status ``model.DNS_TRUNCATED``), and judged as such.
"""

from __future__ import annotations

import random
import select
import socket
import time

from swarmscope.model import DNS_TRUNCATED, DnsAnswer

RESOLVER = "127.0.0.11"
WINDOW = 32  # questions in flight at once
EDNS_PAYLOAD = 4096  # the UDP reply size offered (EDNS0): about 250 A records


def _answer(resp) -> tuple[str, list[str], str | None]:
    import dns.rcode
    import dns.rdatatype

    rcode = resp.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", [], None
    if rcode != dns.rcode.NOERROR:
        return "error", [], f"rcode {dns.rcode.to_text(rcode)}"
    answers = sorted(
        [rr.address for rrset in resp.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset],
        key=lambda a: tuple(int(x) for x in a.split(".")),
    )
    return ("ok" if answers else "noanswer"), answers, None


def ask_many(
    names: list[str], timeout: float, resolver: str = RESOLVER, port: int = 53
) -> list[tuple[str, list[str], str | None, float]]:
    """(status, sorted A answers with any duplicates kept, reason, duration_ms) per name, asked concurrently."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rdatatype

    results: list = [None] * len(names)
    if not names:
        return results
    base = random.randrange(0, 1 << 16)
    pending: dict[int, tuple[int, dns.message.Message, float]] = {}  # message id -> (index, query, sent at)
    truncated: list[tuple[int, dns.message.Message, float]] = []  # asked again over TCP after
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        dest = (resolver, port)
        nxt = 0

        def fail_all(status: str, reason: str) -> None:
            now = time.monotonic()
            for i, _q, sent in pending.values():
                results[i] = (status, [], reason, (now - sent) * 1000)
            pending.clear()

        while nxt < len(names) or pending:
            while nxt < len(names) and len(pending) < WINDOW:
                q = dns.message.make_query(names[nxt], dns.rdatatype.A, use_edns=0, payload=EDNS_PAYLOAD)
                q.flags |= dns.flags.RD
                q.id = (base + nxt) & 0xFFFF
                try:
                    sock.sendto(q.to_wire(), dest)
                except OSError as exc:
                    results[nxt] = ("error", [], f"{resolver}: {exc.strerror or exc}", 0.0)
                    nxt += 1
                    continue
                pending[q.id] = (nxt, q, time.monotonic())
                nxt += 1
            if not pending:
                continue
            now = time.monotonic()
            for qid, (i, _q, sent) in list(pending.items()):
                if now - sent >= timeout:
                    results[i] = ("timeout", [], f"no answer from {resolver} within {timeout:g}s", (now - sent) * 1000)
                    del pending[qid]
            if not pending:
                continue
            wait = max(0.0, min(sent for _i, _q, sent in pending.values()) + timeout - now)
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            try:
                data, source = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                fail_all("error", f"{resolver}: {exc.strerror or exc}")
                continue
            if source[:2] != dest:
                continue  # only the resolver's replies
            try:
                resp = dns.message.from_wire(data, one_rr_per_rrset=True)  # the resolver's duplicates survive
            except dns.exception.DNSException:
                continue  # not an answer to anything asked: keep waiting
            entry = pending.get(resp.id)
            if entry is None or not entry[1].is_response(resp):
                continue
            del pending[resp.id]
            i, _q, sent = entry
            status, answers, reason = _answer(resp)
            results[i] = (status, answers, reason, (time.monotonic() - sent) * 1000)
            if resp.flags & dns.flags.TC:
                truncated.append(entry)
    finally:
        sock.close()
    if truncated:  # dnspython's TCP client only then: 15 ms of import a collection need not pay
        import dns.query
    for i, query, sent in truncated:
        try:
            whole = dns.query.tcp(query, resolver, timeout=timeout, port=port, one_rr_per_rrset=True)
        except (OSError, dns.exception.DNSException) as exc:
            _status, answers, _reason, ms = results[i]
            why = f"the UDP answer was truncated ({len(answers)} addresses) and asking over TCP failed: {exc}"
            results[i] = (DNS_TRUNCATED, answers, why, ms)
            continue
        status, answers, reason = _answer(whole)
        results[i] = (status, answers, reason, (time.monotonic() - sent) * 1000)
    return results


def ask_all(questions: list[tuple[str, str, str]], namespace: str, timeout: float) -> list[DnsAnswer]:
    """questions: (service name, network id, network name); asks <svc> and tasks.<svc>, all at once."""
    asked = [(q, query) for q in questions for query in (q[0], f"tasks.{q[0]}")]
    out = []
    for ((service, net_id, net_name), query), (status, answers, reason, ms) in zip(
        asked, ask_many([a[1] for a in asked], timeout), strict=True
    ):
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
