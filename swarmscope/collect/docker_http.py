"""The Docker API calls a collection makes (GET only), over a unix socket, with the standard library.

`collect` reads the engine through this client when the engine is a unix socket: importing the Docker
SDK (requests, urllib3, charset_normalizer) took 0.35-0.5 s of the GIL while the namespaces were read,
half of a 98-namespace collection (benchmarks/bench_collect.py, README "Benchmark"). Any other endpoint
(tcp, TLS, ssh) and everything that writes (the gather's service) still go through the SDK.

Same requests as the SDK sends for the same calls (version negotiation as its ``version="auto"``, then
``/v<ApiVersion>/...`` with the same query parameters), the same decoded JSON, and errors worded as the
SDK words them (``404 Client Error for http+docker://localhost/...: Not Found ("...")``). Read-only:
every request is a GET.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

import orjson


def _loads(body: bytes) -> Any:
    """An answer's JSON: orjson's parser (a tenth of the time: 94 container inspects are most of a collection's
    JSON), the standard library's where orjson refuses what it takes (NaN, integers past 64 bits), so that
    what is accepted, and each error, is as before."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


class DockerAPIError(Exception):
    """An HTTP error from the engine, worded as the Docker SDK's APIError."""

    def __init__(self, status: int, reason: str, url: str, explanation: str):
        self.status = status
        self.reason = reason
        self.url = url
        self.explanation = explanation
        super().__init__(str(self))

    def __str__(self) -> str:
        kind = "Client" if self.status < 500 else "Server"
        message = f"{self.status} {kind} Error for {self.url}: {self.reason}"
        return f'{message} ("{self.explanation}")' if self.explanation else message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class UnixAPI:
    """The read calls of docker.APIClient that collect_view and engine_info make. One connection per
    request, so that the container inspects may run in several threads at once."""

    def __init__(self, base_url: str, timeout: float):
        if not base_url.startswith("unix://"):
            raise ValueError(f"not a unix socket: {base_url}")
        self.socket_path = base_url[len("unix://") :]
        self.timeout = timeout
        self.api_version: str | None = None
        try:  # the SDK's version="auto": the engine's own API version, asked unversioned
            self.api_version = self.version()["ApiVersion"]
        except KeyError as exc:
            raise RuntimeError('Invalid response from docker daemon: key "ApiVersion" is missing.') from exc
        except Exception as exc:
            raise RuntimeError(f"Error while fetching server API version: {exc}") from exc

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        if self.api_version is not None:
            path = f"/v{self.api_version}{path}"
        if params:
            path = f"{path}?{urlencode(params)}"
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                explanation = json.loads(body)["message"]
            except (ValueError, KeyError, TypeError):
                explanation = body.decode(errors="replace").strip()
            raise DockerAPIError(resp.status, resp.reason, f"http+docker://localhost{path}", explanation)
        return _loads(body)

    def version(self) -> dict:
        return self._get("/version")

    def info(self) -> dict:
        return self._get("/info")

    def services(self) -> list:
        return self._get("/services")

    def tasks(self) -> list:
        return self._get("/tasks")

    def nodes(self) -> list:
        return self._get("/nodes")

    def networks(self) -> list:
        return self._get("/networks", {"filters": "{}"})  # the SDK sends its empty filters

    def inspect_network(self, net_id: str, verbose: bool = False) -> dict:
        return self._get(f"/networks/{quote(net_id, safe='')}", {"verbose": "True"} if verbose else None)

    def containers(self, all: bool = False) -> list:  # noqa: A002 - the SDK's keyword
        return self._get("/containers/json", {"limit": -1, "all": 1 if all else 0, "size": 0, "trunc_cmd": 0})

    def inspect_container(self, cid: str) -> dict:
        return self._get(f"/containers/{quote(cid, safe='')}/json")

    def close(self) -> None:
        pass
