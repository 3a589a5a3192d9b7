"""collect/dns.py against a resolver of the test's own on loopback (UDP and TCP on one port), which truncates
as the engine's embedded resolver does: an answer larger than the reply size is cut to what fits and marked TC
(with 512 bytes, 17 of tasks.whoami's 90 addresses on the lab; checked there too). Then what the correlator
makes of an answer that stayed a part."""

from __future__ import annotations

import socket
import struct
import threading

import dns.flags
import dns.message
import dns.rrset
import pytest

from swarmscope.collect.dns import ask_many
from swarmscope.model import DNS_TRUNCATED

ADDRS = [f"10.0.1.{i}" for i in range(3, 93)]  # 90 tasks


class Resolver:
    """UDP (truncating to 512 bytes, or to the EDNS0 size offered when ``edns``) and, when ``tcp``, TCP."""

    def __init__(self, edns: bool, tcp: bool):
        self.edns, self.tcp_asked = edns, 0
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = None
        if tcp:
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
            except OSError:
                pytest.skip(f"TCP port {self.port} of the UDP one is taken on loopback")
            self.tcp.listen(4)
            threading.Thread(target=self._serve_tcp, daemon=True).start()
        threading.Thread(target=self._serve_udp, daemon=True).start()

    def answer(self, data: bytes, limit: int | None) -> bytes:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        name = q.question[0].name
        addrs = ADDRS if name.to_text().startswith("tasks.") else ADDRS[:1]
        r.answer = [dns.rrset.from_text(name, 0, "IN", "A", *addrs)]
        while limit is not None and len(r.to_wire()) > limit:  # cut to what fits, as the engine does
            addrs = addrs[:-1]
            r.answer = [dns.rrset.from_text(name, 0, "IN", "A", *addrs)]
            r.flags |= dns.flags.TC
        return r.to_wire()

    def _serve_udp(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(65535)
            except OSError:
                return
            q = dns.message.from_wire(data)
            limit = q.payload if self.edns and q.edns >= 0 else 512
            self.udp.sendto(self.answer(data, limit), peer)

    def _serve_tcp(self) -> None:
        assert self.tcp is not None
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                self.tcp_asked += 1
                (n,) = struct.unpack("!H", conn.recv(2))
                data = b""
                while len(data) < n:
                    data += conn.recv(n - len(data))
                out = self.answer(data, None)
                conn.sendall(struct.pack("!H", len(out)) + out)

    def close(self) -> None:
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()


@pytest.fixture
def resolver(request):
    r = Resolver(**request.param)
    yield r
    r.close()


@pytest.mark.parametrize("resolver", [{"edns": True, "tcp": True}], indirect=True)
def test_a_larger_udp_reply_is_offered_and_taken(resolver):
    (status, answers, reason, _ms), (vip, _, _, _) = ask_many(["tasks.whoami", "whoami"], 2.0, "127.0.0.1",
                                                                resolver.port)
    assert (status, reason, vip) == ("ok", None, "ok")
    assert answers == ADDRS and resolver.tcp_asked == 0


@pytest.mark.parametrize("resolver", [{"edns": False, "tcp": True}], indirect=True)
def test_a_truncated_answer_is_asked_again_over_tcp(resolver):
    (status, answers, reason, _ms), (vip, one, _, _) = ask_many(["tasks.whoami", "whoami"], 2.0, "127.0.0.1",
                                                                 resolver.port)
    assert (status, reason) == ("ok", None) and answers == ADDRS
    assert (vip, one) == ("ok", ADDRS[:1])
    assert resolver.tcp_asked == 1  # only the truncated one


@pytest.mark.parametrize("resolver", [{"edns": False, "tcp": False}], indirect=True)
def test_an_answer_that_stays_truncated_is_a_part_not_a_whole(resolver):
    ((status, answers, reason, _ms),) = ask_many(["tasks.whoami"], 1.0, "127.0.0.1", resolver.port)
    assert status == DNS_TRUNCATED
    assert 10 < len(answers) < len(ADDRS) and set(answers) <= set(ADDRS)
    assert reason.startswith(f"the UDP answer was truncated ({len(answers)} addresses) and asking over TCP failed")


def _truncated(snap, extra: list[str] = ()):
    from dataclasses import replace

    a = next(a for a in snap.dns if a.query == "tasks.whoami")
    part = replace(a, status=DNS_TRUNCATED, answers=a.answers[:1] + list(extra), reason="asking over TCP failed")
    snap.dns = [part if x is a else x for x in snap.dns]
    return snap


def test_a_part_of_an_answer_is_no_finding_but_an_address_no_task_has_is():
    from test_collect_capture import captured

    from swarmscope.pipeline import analyze_snapshots

    an = analyze_snapshots([_truncated(captured("healthy"))])
    assert not an.findings
    checks = [c for sp in an.services for c in sp.dns if c.query == "tasks.whoami"]
    assert checks and all(c.status == "unknown" and "truncated" in c.detail for c in checks)

    an = analyze_snapshots([_truncated(captured("healthy"), ["10.0.1.250"])])
    assert [(f.id, f.detail) for f in an.findings if f.caused_by is None] == [
        ("dns.tasks-mismatch", "tasks.whoami on demo: extra 10.0.1.250")]
