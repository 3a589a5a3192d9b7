"""collect's standard-library Docker API client (collect/docker_http.py) against the Docker SDK it stands in for.

Both talk to the same engine stand-in: a real HTTP server on a unix socket the test creates, answering with a
real engine's captured API answers (tests/fixtures/vm/healthy/docker/*.json, Docker 20.10, API 1.41) and
recording every request line. The two clients must send the same requests, get the same decoded answers,
word the same errors the same way, and give collect_view the same view."""

from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from swarmscope.collect import docker_api
from swarmscope.collect.docker_http import DockerAPIError, UnixAPI
from swarmscope.collect.runner import Recorder
from swarmscope.errors import CollectError

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vm" / "healthy" / "docker"


def _load(name: str):
    return json.loads((CAPTURE / name).read_text())


def _as_list(raw):
    return raw if isinstance(raw, list) else [raw]


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str):
        self.requests: list[str] = []
        self.methods: set[str] = set()
        self.fail_with: int | None = None
        info, version = _load("info.json"), _load("version.json")
        nets = {n["Id"]: n for p in sorted(CAPTURE.glob("network-inspect-*.json")) for n in _load(p.name)}
        ctrs = {c["Id"]: c for c in _load("container-inspect.json")}
        api = f"/v{version['ApiVersion']}"
        self.routes = {
            "/version": version, f"{api}/version": version, f"{api}/info": info,
            f"{api}/services": _load("service-inspect.json"), f"{api}/tasks": _load("task-inspect.json"),
            f"{api}/nodes": _as_list(_load("node-inspect-self.json")), f"{api}/networks": _load("network-ls.json"),
            f"{api}/containers/json": [{"Id": i} for i in ctrs],
            **{f"{api}/networks/{i}": n for i, n in nets.items()},
            **{f"{api}/containers/{i}/json": c for i, c in ctrs.items()},
        }
        super().__init__(path, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Engine

    def address_string(self) -> str:  # a unix socket's peer has no host/port
        return "unix"

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, doc) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        self.server.methods.add(self.command)
        path = urlsplit(self.path).path
        if self.server.fail_with and path != "/version":
            self._answer(self.server.fail_with, {"message": "this node is not a swarm manager."})
        elif path in self.server.routes:
            self._answer(200, self.server.routes[path])
        else:
            what = path.split("/")[-2] if path.endswith("/json") else path.split("/")[-1]
            self._answer(404, {"message": f"No such container: {what}"})

    def do_POST(self) -> None:  # noqa: N802 - never sent by either client here; recorded so a test sees it
        self.server.methods.add(self.command)
        self._answer(405, {"message": "read-only engine stand-in"})


@pytest.fixture
def engine(tmp_path):
    path = str(tmp_path / "docker.sock")
    srv = _Engine(path)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, f"unix://{path}"
    srv.shutdown()
    srv.server_close()


def _calls(api) -> dict:
    ctr = _load("container-inspect.json")[0]["Id"]
    net = _load("network-ls.json")[0]["Id"]
    return {
        "version": api.version(), "info": api.info(), "services": api.services(), "tasks": api.tasks(),
        "nodes": api.nodes(), "networks": api.networks(), "network": api.inspect_network(net, verbose=True),
        "containers": api.containers(all=False), "container": api.inspect_container(ctr),
    }


def test_the_same_requests_and_answers_as_the_docker_sdk(engine):
    srv, url = engine
    sdk, _ = docker_api.connect(url, 10)
    ours, _ = docker_api.connect(url, 10, read_only=True)
    assert isinstance(ours, UnixAPI) and not isinstance(sdk, UnixAPI)
    srv.requests.clear()
    want = _calls(sdk)
    sdk_requests = list(srv.requests)
    srv.requests.clear()
    got = _calls(ours)
    assert srv.requests == sdk_requests
    assert "/v1.41/containers/json?limit=-1&all=0&size=0&trunc_cmd=0" in sdk_requests
    assert got == want
    assert got["container"]["Id"] == _load("container-inspect.json")[0]["Id"]
    assert srv.methods == {"GET"}
    sdk.close()


def test_errors_are_worded_as_the_sdk_words_them(engine):
    srv, url = engine
    sdk, _ = docker_api.connect(url, 10)
    ours, _ = docker_api.connect(url, 10, read_only=True)
    with pytest.raises(Exception) as e_sdk:
        sdk.inspect_container("0123456789ab")
    with pytest.raises(DockerAPIError) as e_ours:
        ours.inspect_container("0123456789ab")
    assert str(e_ours.value) == str(e_sdk.value)
    assert str(e_ours.value).startswith("404 Client Error for http+docker://localhost/v1.41/containers/0123456789ab")
    srv.fail_with = 503
    with pytest.raises(Exception) as e_sdk:
        sdk.services()
    with pytest.raises(DockerAPIError) as e_ours:
        ours.services()
    assert str(e_ours.value) == str(e_sdk.value)
    assert "503 Server Error" in str(e_ours.value) and "not a swarm manager" in str(e_ours.value)
    sdk.close()


def test_collect_view_is_the_same_through_either_client(engine):
    _, url = engine
    views = []
    for read_only in (False, True):
        api, _, info = docker_api.connect_info(url, 10, read_only=read_only)
        rec = Recorder(timeout=10)
        views.append((info, docker_api.collect_view(api, info, rec), [(p.what, p.status) for p in rec.entries]))
        api.close()
    (i1, v1, p1), (i2, v2, p2) = views
    assert i1 == i2 and i1.api_version == "1.41"
    assert v1 == v2 and v1.available and not v1.reason
    assert len(v1.containers) == len(_load("container-inspect.json")) and v1.tasks and v1.networks
    assert sorted(p1) == sorted(p2)


def test_no_engine_is_a_clear_error(tmp_path):
    with pytest.raises(CollectError, match="no Docker socket at .*is dockerd running"):
        docker_api.connect(f"unix://{tmp_path}/none.sock", 5, read_only=True)
    not_http = tmp_path / "plain.sock"
    srv = socketserver.UnixStreamServer(str(not_http), socketserver.BaseRequestHandler)  # closes at once
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with pytest.raises(CollectError, match="cannot reach the Docker API at unix://.*version"):
            docker_api.connect(f"unix://{not_http}", 5, read_only=True)
    finally:
        srv.shutdown()
        srv.server_close()


def test_only_a_unix_socket_takes_the_standard_library_client(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(ValueError):
        UnixAPI("tcp://127.0.0.1:1", 1)
    assert os.path.basename(docker_api.DEFAULT_HOST) == "docker.sock"
