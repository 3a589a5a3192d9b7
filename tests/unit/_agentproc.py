"""A real ``swarmscope agent --listen`` in a subprocess, on loopback, for the HTTP hardening tests.

The agent runs the real CLI; its collection fails at once (no netns directory,
no Docker socket), which leaves the HTTP side as the thing under test. The
process stops by itself after ``lifetime`` seconds, and is killed at the end
of the ``with`` block.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = "0123456789abcdef0123456789abcdef"


def free_port(family=socket.AF_INET, host="127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, tmp_path: Path, *, listen: str | None = None, nofile: int | None = None, env: dict | None = None,
                 lifetime: float = 60.0):
        self.port = free_port()
        self.listen = listen or f"127.0.0.1:{self.port}"
        self.token_file = tmp_path / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.out = tmp_path / "agent.out"
        self.err = tmp_path / "agent.err"
        self.nofile = nofile
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = str(REPO) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.lifetime = lifetime
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return ["timeout", "-s", "KILL", str(int(self.lifetime)), sys.executable, "-m", "swarmscope", "agent",
                "--listen", self.listen, "--token-file", str(self.token_file), "--netns-dir", "/nonexistent/netns",
                "-H", "unix:///nonexistent/docker.sock", "--docker-timeout", "0.5", "--no-dns", "--interval", "3600"]

    def __enter__(self) -> "Agent":
        def limit():
            if self.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

        # a session of its own: killing it kills `timeout` and the agent under it (killing `timeout`
        # alone leaves the agent running for good)
        self.proc = subprocess.Popen(self.argv(), stdout=open(self.out, "wb"), stderr=open(self.err, "wb"),
                                     stdin=subprocess.DEVNULL, env=self.env, preexec_fn=limit, cwd=REPO,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}: {self.err.read_text()}")
            try:
                # up, and past its first (failing) collection, so /metrics has something to serve
                if self.get("/healthz", timeout=1)[0] == 200 and self.get("/metrics", self.auth(), timeout=1)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("agent did not answer /healthz within 20 s")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    @property
    def pid(self) -> int:
        # the python process under `timeout`
        kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(kids[0]) if kids else self.proc.pid

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def url(self, path: str) -> str:
        host = self.listen.rpartition(":")[0]
        return f"http://{host}:{self.listen.rpartition(':')[2]}{path}"

    def get(self, path: str, headers: dict | None = None, timeout: float = 5) -> tuple[int, bytes, dict]:
        req = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {TOKEN}"}

    def log(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


def connect(port: int, host: str = "127.0.0.1", family=socket.AF_INET) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    return s
