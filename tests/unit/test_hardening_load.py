"""Load test of the agent's HTTP endpoint (issue #15): hundreds of idle and concurrent clients on
loopback, bounded in count and time. The agent must keep answering /healthz and /metrics within a
second, with a bounded number of threads and bounded memory.

The figures are printed (pytest -s shows them) so a run can be compared with the README's."""

from __future__ import annotations

import concurrent.futures as cf
import socket
import time
import urllib.request

from _agentproc import Agent, connect

IDLE = 300  # connections that connect and never send a whole request
HALF = 100  # of which send half a request head
CONCURRENT = 200  # /metrics requests in flight at once (50 client threads)


def _timed_get(url: str, headers: dict) -> float:
    t0 = time.monotonic()
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        r.read()
    return time.monotonic() - t0


def test_hundreds_of_idle_and_concurrent_clients(tmp_path):
    with Agent(tmp_path, env={"SWARMSCOPE_HTTP_MAX_CONNECTIONS": "512", "SWARMSCOPE_HTTP_HEADER_TIMEOUT": "20"}) as a:
        threads0, rss0 = a.threads(), a.rss_mb()
        idle: list[socket.socket] = []
        for i in range(IDLE):
            s = connect(a.port)
            if i < HALF:
                s.sendall(b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer ")
            idle.append(s)
        time.sleep(0.3)
        # while they are held: /healthz and /metrics each answer within a second
        assert _timed_get(a.url("/healthz"), {}) < 1.0
        assert _timed_get(a.url("/metrics"), a.auth()) < 1.0
        # 200 concurrent /metrics requests, all answered
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(50) as pool:
            lat = sorted(pool.map(lambda _: _timed_get(a.url("/metrics"), a.auth()), range(CONCURRENT)))
        wall = time.monotonic() - t0
        p50, p95, worst = lat[len(lat) // 2], lat[int(len(lat) * 0.95)], lat[-1]
        threads1, rss1 = a.threads(), a.rss_mb()
        print(f"\nload: {IDLE} idle ({HALF} half-open) held, {CONCURRENT} concurrent /metrics: all answered in "
              f"{wall:.2f}s, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {worst * 1000:.0f} ms; "
              f"agent threads {threads0} -> {threads1}, RSS {rss0:.1f} -> {rss1:.1f} MB")
        assert len(lat) == CONCURRENT
        assert p95 < 1.0 and worst < 2.0
        assert threads1 <= threads0 + 1, "threads grow with clients"
        assert rss1 - rss0 < 30, "memory grows with clients"
        # still answering, and the idle clients are still held (not dropped wholesale to make the numbers)
        assert _timed_get(a.url("/healthz"), {}) < 1.0
        for s in idle:
            s.close()
