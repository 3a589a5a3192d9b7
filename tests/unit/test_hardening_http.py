"""The agent's HTTP endpoint under hostile and careless clients (issue #15), against the real
``swarmscope agent --listen`` on loopback. Every loop here is bounded and stops by itself."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest
from _agentproc import REPO, TOKEN, Agent, connect

from swarmscope import agent as ag
from swarmscope.errors import UsageError


def _closed_by_server(s: socket.socket, within: float) -> bool:
    """True when the server closes (or answers and closes) the connection within ``within`` seconds."""
    s.settimeout(within)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_half_open_requests_hold_no_thread_and_are_closed_after_the_header_timeout(tmp_path):
    with Agent(tmp_path, env={"SWARMSCOPE_HTTP_HEADER_TIMEOUT": "1"}) as a:
        base_threads = a.threads()
        socks = []
        for _ in range(300):
            s = connect(a.port)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished, never authenticated
            socks.append(s)
        time.sleep(0.3)
        assert a.threads() <= base_threads + 1, "a thread per connection"
        t0 = time.monotonic()
        assert a.get("/healthz", timeout=2)[0] == 200
        assert time.monotonic() - t0 < 1.0
        # every half-open request is closed by the server once the header timeout has passed
        time.sleep(1.2)
        assert sum(_closed_by_server(s, 2.0) for s in socks) == len(socks)
        for s in socks:
            s.close()
        time.sleep(0.3)
        assert a.fds() < 40, "descriptors of closed clients are still held"


def test_out_of_descriptors_does_not_spin_and_healthz_still_answers(tmp_path):
    with Agent(tmp_path, nofile=64) as a:
        socks = [connect(a.port) for _ in range(66)]  # idle: never send anything
        time.sleep(0.5)
        c0 = a.cpu_seconds()
        time.sleep(3.0)
        spent = a.cpu_seconds() - c0
        assert spent < 0.5, f"the server burned {spent:.2f} CPU-s in 3 s with idle clients"
        t0 = time.monotonic()
        assert a.get("/healthz", timeout=2)[0] == 200
        assert time.monotonic() - t0 < 1.0
        for s in socks:
            s.close()


def test_early_closes_and_resets_give_no_tracebacks_and_at_most_one_line_per_interval(tmp_path):
    with Agent(tmp_path, env={"SWARMSCOPE_HTTP_LOG_INTERVAL": "1"}) as a:
        before = a.log()
        for i in range(300):
            s = connect(a.port)
            s.sendall(b"GET /snapshot HTTP/1.1\r\n")
            if i % 2:  # reset instead of closing
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        for _ in range(50):  # unauthenticated requests
            assert a.get("/snapshot")[0] == 401
        time.sleep(2.5)
        new = a.log()[len(before):]
    assert "Traceback" not in new
    http_lines = [l for l in new.splitlines() if "http:" in l]
    assert 1 <= len(http_lines) <= 4, new
    assert len(new) < 2000, f"{len(new)} bytes of log for 350 noisy clients"
    assert "closed or reset before a whole request" in new and "401" in new


def test_listen_backlog_is_128(tmp_path):
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) not installed")
    with Agent(tmp_path) as a:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{a.port}"], capture_output=True, text=True, timeout=10).stdout
        send_q = int(out.split()[2])  # for a listening socket Send-Q is the backlog
        assert send_q == 128, out


@pytest.mark.parametrize("value", ["9324", ":9324", "localhost:9324", "[::1]", "::1:9324", "0.0.0.0:0", "0.0.0.0:99999",
                                   "0.0.0.0:²", "[::1]:x"])
def test_listen_without_an_explicit_address_is_refused_in_one_line(tmp_path, value):
    tok = tmp_path / "t"
    tok.write_text(TOKEN)
    cp = subprocess.run([sys.executable, "-m", "swarmscope", "agent", "--listen", value, "--token-file", str(tok),
                         "--netns-dir", "/nonexistent"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert len(cp.stderr.strip().splitlines()) == 1 and "explicit address" in cp.stderr
    assert "Traceback" not in cp.stderr


def test_ipv6_listen_address(tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = ag.parse_listen("[::1]:1")  # the form is accepted
    assert port == ("::1", 1, socket.AF_INET6)
    from _agentproc import free_port

    p = free_port(socket.AF_INET6, "::1")
    with Agent(tmp_path, listen=f"[::1]:{p}") as a:
        assert a.get("/healthz")[0] == 200
        assert a.get("/metrics", a.auth())[0] == 200


def test_bearer_scheme_is_case_insensitive_and_wrong_forms_are_401(tmp_path):
    with Agent(tmp_path) as a:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            code, body, _ = a.get("/metrics", {"Authorization": f"{scheme} {TOKEN}"})
            assert code == 200, (scheme, code)
            assert b"swarmscope_collection_failures_total 1.0" in body
        for bad in ("", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}",
                    f"Bearer{TOKEN}", "Bearer \u00e9\u00e9\u00e9"):
            assert a.get("/metrics", {"Authorization": bad} if bad else {})[0] == 401, bad


def _raw(port: int, data: bytes, wait: float = 3.0) -> bytes:
    s = connect(port)
    try:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (socket.timeout, ConnectionResetError):
        return out
    finally:
        s.close()


def test_request_size_and_shape_are_bounded(tmp_path):
    with Agent(tmp_path) as a:
        big = b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n"
        assert _raw(a.port, big).startswith(b"HTTP/1.1 431")
        many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n"
        assert _raw(a.port, many).startswith(b"HTTP/1.1 431")
        body = b"GET /healthz HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n"
        assert _raw(a.port, body).startswith(b"HTTP/1.1 413")
        assert _raw(a.port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert _raw(a.port, b"\xff\xfe garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _raw(a.port, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert "Traceback" not in a.log()


def test_past_the_connection_cap_new_clients_get_503_then_idle_ones_are_evicted(tmp_path):
    with Agent(tmp_path, env={"SWARMSCOPE_HTTP_MAX_CONNECTIONS": "20"}) as a:
        socks = [connect(a.port) for _ in range(20)]
        time.sleep(0.2)
        refused = _raw(a.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After" in refused
        time.sleep(1.2)  # the idle ones are now older than the eviction age
        t0 = time.monotonic()
        assert a.get("/healthz", timeout=2)[0] == 200
        assert time.monotonic() - t0 < 1.0
        assert sum(_closed_by_server(s, 0.2) for s in socks) >= 1
        for s in socks:
            s.close()


def test_metrics_use_prometheus_client_exposition_with_negotiation_and_escaping():
    from prometheus_client.parser import text_string_to_metric_families

    from rawsnap import lab_vm
    from swarmscope.correlate import analyze

    snap = lab_vm()
    analysis = analyze([snap])
    weird = 'we"ird\\svc\nname'
    analysis.services[0].name = weird
    state = ag.State(collections=2, failures=1)
    state.publish(b"{}", ag.metrics_registry(snap, analysis, state))
    text, ctype = state.metrics_for("")
    assert ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert fams["swarmscope_collections"].type == "counter"
    assert fams["swarmscope_findings"].type == "gauge"
    assert any(s.labels.get("service") == weird for s in fams["swarmscope_real_servers"].samples)
    assert b'service="we\\"ird\\\\svc\\nname"' in text
    om, octype = state.metrics_for("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert octype.startswith("application/openmetrics-text") and om.rstrip().endswith(b"# EOF")


def test_limits_from_the_environment_are_checked():
    assert ag.HttpLimits.from_env({"SWARMSCOPE_HTTP_MAX_CONNECTIONS": "10"}).max_connections == 10
    for bad in ("nan", "-1", "0", "x", "inf"):
        with pytest.raises(UsageError, match="SWARMSCOPE_HTTP_HEADER_TIMEOUT"):
            ag.HttpLimits.from_env({"SWARMSCOPE_HTTP_HEADER_TIMEOUT": bad})
