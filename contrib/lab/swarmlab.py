#!/usr/bin/env python3
"""A real Docker Swarm lab for swarmscope's tests and demo.

Each lab node is a dockerd running inside a network namespace the lab creates
(``sslab-<name>``), with its own data root, exec root, socket and pidfile, so
it never touches another engine and puts nothing in the machine's root
network namespace. The node reaches the lab's private /24 through a veth pair
whose other end is on a bridge in a second lab-owned namespace, the "switch"
(``sslab-<name>-sw``); more nodes plug into the same switch.

dockerd is started with ``nsenter --net=...`` (never ``ip netns exec``, which
also makes a private mount namespace): its netns bind mounts under
``<exec-root>/netns`` must be visible from the root mount namespace, where
swarmscope runs.

Command line::

    python3 contrib/lab/swarmlab.py up|down|status|env [--name NAME] [--engine ENGINE]

ENGINE (or ``SWARMSCOPE_LAB_ENGINE``) picks the dockerd the lab runs: 26.1 /
trixie, 28 / sid, 20.10 / bookworm (fetched from Debian's archive and cached by
``engine_cache.py``), or a directory holding it; its directories go first on
that dockerd's PATH (its own docker-proxy too). Unset: the machine's dockerd.

As a module (tests)::

    lab = Lab("pytest"); lab.up(); lab.docker("service", "ls"); lab.down()

Standard library only. Needs root, dockerd (docker.io 20.10), util-linux
nsenter, iproute2 and busybox-static (``contrib/install-deps.sh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "swarmscope-lab/busybox:latest"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    "sh", "httpd", "nslookup", "sleep", "wget", "cat", "echo", "env", "hostname",
    "ip", "timeout", "ifconfig", "ls", "nc", "netstat", "ping", "ps", "route", "true",
)
DEFAULT_PARENT = "/tmp/swarmscope-lab"
NETNS_PREFIX = "sslab-"
OVERLAY_NETWORK = "demo"
#: the lab's private /24; every address in it lives only in lab namespaces
SUBNET_PREFIX = "10.213.0"
SWITCH_ADDR = f"{SUBNET_PREFIX}.1"
FIRST_NODE_HOST = 11
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
#: Unix socket paths longer than this do not fit in sockaddr_un
MAX_SOCKET_PATH = 100

ENGINE_TIMEOUT = 90.0      # dockerd answering on its socket
CONVERGE_TIMEOUT = 240.0   # every service's tasks running (2 CPUs, shared)
STOP_TIMEOUT = 45.0        # dockerd exiting after SIGTERM
CMD_TIMEOUT = 120.0        # one docker CLI call


class LabError(RuntimeError):
    """The lab could not be brought up, used or torn down."""


class EngineStartError(LabError):
    """dockerd did not start or answer; the message carries the log tail."""


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """One service of the lab swarm."""

    name: str
    options: tuple[str, ...]
    command: tuple[str, ...]
    replicas: int | None = 1  # None: global (one task per node)

    def expected_tasks(self, nodes: int) -> int:
        return nodes if self.replicas is None else self.replicas


HTTPD = ("httpd", "-f", "-p", "80", "-h", "/www")
SLEEP = ("sleep", "1000000")
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("whoami", ("--replicas", "2", "--publish", "8000:80", "--network", OVERLAY_NETWORK), HTTPD, 2),
    ServiceSpec("client", ("--network", OVERLAY_NETWORK), SLEEP),
    ServiceSpec("dnsrr", ("--endpoint-mode", "dnsrr", "--network", OVERLAY_NETWORK), HTTPD),
    ServiceSpec("hostport", ("--publish", "mode=host,published=8081,target=80"), HTTPD),
    ServiceSpec("glob", ("--mode", "global", "--network", OVERLAY_NETWORK), SLEEP, None),
)


# --------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"swarmlab: {msg}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    """The environment for commands: ours, minus anything pointing docker elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOCKER_", "SWARMSCOPE_LAB_"))}
    path = env.get("PATH", "/usr/bin:/bin").split(":")
    for extra in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if extra not in path:
            path.append(extra)
    env["PATH"] = ":".join(path)
    return env


def run(argv: list[str], *, check: bool = True, timeout: float = CMD_TIMEOUT,
        input: str | bytes | None = None, text: bool = True, env: dict | None = None,
        cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run argv, capturing output; raise LabError (with stderr) when check fails."""
    try:
        cp = subprocess.run(argv, input=input, capture_output=True, text=text, timeout=timeout, check=False,
                            env=_env() if env is None else env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {shlex.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"not found: {argv[0]}") from exc
    if check and cp.returncode != 0:
        err = cp.stderr if isinstance(cp.stderr, str) else cp.stderr.decode(errors="replace")
        raise LabError(f"{shlex.join(argv)} exited {cp.returncode}: {err.strip()[-2000:]}")
    return cp


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc.strerror})"


def _pid_alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as gone (and is reaped if it is ours)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below directory, in mount order (umount in reverse)."""
    prefix = str(directory).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = _unescape_mount(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(_unescape_mount(line.split()[4]) == path for line in fh)


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def _ns_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """(dev, inode) of a network namespace file, or None when it is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_dev == _nsfs_dev() else None


def _static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only, like this machine
                return False
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize:i * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def _lab_parent() -> Path:
    return Path(os.environ.get("SWARMSCOPE_LAB_DIR") or DEFAULT_PARENT)


# --------------------------------------------------------------------------- sysctl inheritance

#: ``net.core.devconf_inherit_init_net``: a global knob of the initial namespace
INHERIT_KNOB = Path("/proc/sys/net/core/devconf_inherit_init_net")
#: 3: a new network namespace copies the IPv4/IPv6 ``conf/{all,default}`` settings of the
#: namespace it was created from (0, the default: IPv4 from the initial namespace)
INHERIT_FROM_CREATOR = "3"


class SysctlInheritance:
    """Make the namespaces a lab dockerd creates inherit from dockerd's namespace, as on a node.

    dockerd never writes ``net.ipv4.ip_forward`` in ``ingress_sbox`` or the ``lb_``
    sandboxes (moby's osl writes only ``net.ipv4.vs.*`` there): a new namespace takes
    its IPv4 settings at creation. On a real node dockerd runs in the initial
    namespace and has turned ``ip_forward`` on there first, so its sandboxes start
    with 1. A lab dockerd runs in a namespace of its own, and with the kernel's
    default (``devconf_inherit_init_net`` = 0) its sandboxes would copy the initial
    namespace instead -- 0 on a fresh machine -- a state no real node has. While any
    lab is up the knob is 3 (inherit from the creating namespace, dockerd's); the
    value found before is saved once and put back when the last lab goes down.
    Holders are files under the lab parent, so labs of several processes share it.
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.saved = parent / "devconf_inherit_init_net.saved"

    def _holders(self) -> list[Path]:
        return sorted(self.parent.glob("*.inherit-holder")) if self.parent.is_dir() else []

    def acquire(self, name: str) -> None:
        if not INHERIT_KNOB.exists():
            raise LabError(f"{INHERIT_KNOB} does not exist: this kernel cannot make lab sandboxes "
                           "inherit dockerd's sysctls")
        self.parent.mkdir(parents=True, exist_ok=True)
        (self.parent / f"{name}.inherit-holder").write_text(str(os.getpid()))
        current = INHERIT_KNOB.read_text().strip()
        if current == INHERIT_FROM_CREATOR:
            return
        if not self.saved.exists():
            self.saved.write_text(current + "\n")
        try:
            INHERIT_KNOB.write_text(INHERIT_FROM_CREATOR + "\n")
        except OSError as exc:
            raise LabError(f"cannot set {INHERIT_KNOB} to {INHERIT_FROM_CREATOR}: {exc.strerror} "
                           "(this kernel may not accept value 3)") from exc

    def release(self, name: str) -> None:
        (self.parent / f"{name}.inherit-holder").unlink(missing_ok=True)
        if self._holders() or not self.saved.exists():
            return
        try:
            INHERIT_KNOB.write_text(self.saved.read_text().strip() + "\n")
        except OSError as exc:
            raise LabError(f"cannot restore {INHERIT_KNOB}: {exc.strerror}") from exc
        self.saved.unlink(missing_ok=True)


# --------------------------------------------------------------------------- a node


class Node:
    """One swarm node: a network namespace with a dockerd of its own.

    The node's namespace is linked to the lab's switch by a veth pair (``eth0``
    inside the node). A node of the single-node lab has only its network
    namespace; an *isolated* node (the multi-node lab) also has its own mount
    and UTS namespaces (hostname ``<lab>-<node>``): dockerd's netns bind
    mounts and overlay mounts then exist only inside it, and every isolated
    node sees its own directory at the same path, ``<lab dir>/node``, so one
    swarm service spec (bind mounts of the socket and the netns directory)
    fits every node. Run commands "on the node" with :meth:`in_node`, which
    enters dockerd's mount, network and UTS namespaces.
    """

    def __init__(self, lab: Lab, name: str, index: int, netns: str, directory: Path,
                 role: str = "manager", isolated: bool = False) -> None:
        self.lab = lab
        self.name = name
        self.index = index
        self.role = role
        self.isolated = isolated
        self.netns = netns
        self.netns_path = f"/run/netns/{netns}"
        self.dir = directory
        #: where the node's own directory is, as seen from inside the node
        self.inner_dir = lab.dir / "node" if isolated else directory
        self.hostname = f"{lab.name}-{name}" if isolated else None
        self.data_root = self.inner_dir / "data"
        self.exec_root = self.inner_dir / "exec"
        #: the engine's netns directory, as seen from inside the node
        self.netns_dir = self.exec_root / "netns"
        self.socket = directory / "docker.sock"
        #: the Docker API from this (root) mount namespace
        self.docker_host = f"unix://{self.socket}"
        #: the Docker API from inside the node (the same socket)
        self.inner_socket = self.inner_dir / "docker.sock"
        self.inner_docker_host = f"unix://{self.inner_socket}"
        self.pidfile = directory / "docker.pid"
        self.log = directory / "dockerd.log"
        self.config_file = directory / "daemon.json"
        self.addr = f"{SUBNET_PREFIX}.{FIRST_NODE_HOST + index}"
        self.switch_port = f"sw-{name}"[:15]
        self.containerd_address = self.exec_root / "containerd" / "containerd.sock"
        self._proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.role}, {self.addr}, netns={self.netns})"

    # -- commands ---------------------------------------------------------------

    def docker(self, *args: str, check: bool = False, timeout: float = CMD_TIMEOUT,
               input: str | bytes | None = None, text: bool = True) -> subprocess.CompletedProcess:
        """The docker CLI against this node's engine."""
        return run(["docker", "-H", self.docker_host, *args], check=check, timeout=timeout,
                   input=input, text=text)

    def enter_argv(self) -> list[str]:
        """The nsenter prefix that puts a command on this node.

        Single-node lab: its network namespace only (root mount namespace
        kept). Isolated node: dockerd's mount, network and UTS namespaces.
        """
        if self.isolated:
            pid = self.dockerd_pid()
            if pid is None:
                raise LabError(f"node {self.name}: dockerd is not running; cannot enter its namespaces")
            return ["nsenter", "-t", str(pid), "-m", "-n", "-u"]
        return ["nsenter", f"--net={self.netns_path}"]

    def in_node(self, argv: list[str] | tuple[str, ...], **kw) -> subprocess.CompletedProcess:
        """Run argv on this node (see :meth:`enter_argv`).

        Keyword arguments go to subprocess.run; output is captured as text
        unless told otherwise. The default environment is ours with
        DOCKER_HOST pointing at this node's engine.
        """
        kw.setdefault("capture_output", not ("stdout" in kw or "stderr" in kw))
        kw.setdefault("text", True)
        kw.setdefault("timeout", CMD_TIMEOUT)
        kw.setdefault("check", False)
        if "env" not in kw:
            kw["env"] = {**_env(), "DOCKER_HOST": self.inner_docker_host}
        return subprocess.run([*self.enter_argv(), *argv], **kw)  # noqa: PLW1510

    def swarmscope_argv(self, *args: str) -> list[str]:
        """argv running this checkout's swarmscope on the node (cwd must be REPO_ROOT)."""
        return [*self.enter_argv(), "env", f"DOCKER_HOST={self.inner_docker_host}", f"PYTHONPATH={REPO_ROOT}",
                sys.executable, "-m", "swarmscope", *args]

    def swarmscope(self, *args: str, timeout: float = CMD_TIMEOUT, **kw) -> subprocess.CompletedProcess:
        """``python3 -m swarmscope ARGS`` of this checkout, on this node, with
        DOCKER_HOST set to its engine (``--netns-dir`` is the caller's)."""
        # entering an isolated node's mount namespace resets the working directory to its root, so
        # the checkout goes first on PYTHONPATH: never whichever swarmscope happens to be installed
        env = {**_env(), "DOCKER_HOST": self.inner_docker_host,
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
               **kw.pop("env", {})}
        return self.in_node([sys.executable, "-m", "swarmscope", *args], cwd=REPO_ROOT,
                            env=env, timeout=timeout, **kw)

    # -- network ------------------------------------------------------------------

    def create_netns(self) -> None:
        sw = self.lab.switch_netns
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        run(["ip", "-n", sw, "link", "add", self.switch_port, "type", "veth",
             "peer", "name", "eth0", "netns", self.netns])
        run(["ip", "-n", sw, "link", "set", self.switch_port, "master", "br0", "up"])
        run(["ip", "-n", self.netns, "addr", "add", f"{self.addr}/24", "dev", "eth0"])
        run(["ip", "-n", self.netns, "link", "set", "eth0", "up"])

    def delete_netns(self) -> None:
        if os.path.exists(self.netns_path):
            run(["ip", "netns", "delete", self.netns], check=False)

    # -- engine -------------------------------------------------------------------

    def dockerd_pid(self) -> int | None:
        """The pid of this node's dockerd, if it runs (checked against its cmdline)."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pid = _read_pid(self.pidfile)
        if pid and _pid_alive(pid) and f"--exec-root {self.exec_root} " in _cmdline(pid) + " " \
                and (not self.isolated or _ns_id(f"/proc/{pid}/ns/net") == _ns_id(self.netns_path)):
            return pid
        return None

    def engine_answers(self, timeout: float = 10.0) -> bool:
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", timeout=timeout).returncode == 0
        except LabError:
            return False

    def start_engine(self, timeout: float = ENGINE_TIMEOUT) -> None:
        """Start dockerd in the node's netns and wait until its socket answers."""
        for d in (self.dir, self.dir / "data", self.dir / "exec", self.inner_dir):
            d.mkdir(parents=True, exist_ok=True)
        if len(str(self.containerd_address)) > MAX_SOCKET_PATH:
            raise EngineStartError(f"lab dir too long for a unix socket path: {self.containerd_address}")
        self.config_file.write_text(json.dumps({
            # containers of this engine in cgroups of their own, removed on down
            "cgroup-parent": f"/{self.netns}",
            "shutdown-timeout": 5,
            "log-level": "info",
        }, indent=2) + "\n")
        dockerd = ["dockerd",
                   "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                   "-H", f"unix://{self.inner_socket}", "--pidfile", str(self.inner_dir / "docker.pid"),
                   "--config-file", str(self.config_file)]
        if self.isolated:
            # own mount namespace, a slave of the root one (nothing mounted in the
            # node leaks out), made rshared inside like a systemd host, so that
            # bind-propagation=rslave works for the node's containers; own UTS
            # namespace for a hostname of its own
            script = (f"set -e; mount --bind {shlex.quote(str(self.dir))} {shlex.quote(str(self.inner_dir))}; "
                      f"mount --make-rshared /; hostname {shlex.quote(self.hostname)}; exec {shlex.join(dockerd)}")
            argv = ["nsenter", f"--net={self.netns_path}", "unshare", "--mount", "--uts",
                    "--propagation", "slave", "sh", "-c", script]
        else:
            argv = ["nsenter", f"--net={self.netns_path}", *dockerd]
        env = _env()
        if self.lab.engine:  # another engine: its dockerd and docker-proxy first on PATH
            env["PATH"] = ":".join([*self.lab.engine_path_dirs(), env["PATH"]])
        with open(self.log, "ab") as log:
            # nsenter (unshare, sh) exec dockerd: the pid is dockerd's. Own session: it outlives `up`.
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          cwd=self.dir, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise EngineStartError(
                    f"dockerd of node {self.name} exited with {self._proc.returncode}; "
                    f"last lines of {self.log}:\n{_tail(self.log)}")
            if self.engine_answers(timeout=10.0):
                return
            if time.monotonic() > deadline:
                raise EngineStartError(
                    f"dockerd of node {self.name} did not answer on {self.socket} within {timeout:.0f}s; "
                    f"last lines of {self.log}:\n{_tail(self.log)}")
            time.sleep(0.5)

    def stop_engine(self, timeout: float = STOP_TIMEOUT) -> None:
        """Leave the swarm, then SIGTERM dockerd, SIGKILL after timeout."""
        pid = self.dockerd_pid()
        if pid is None:
            return
        try:
            if self.engine_answers(timeout=10.0):
                services = self.docker("service", "ls", "-q", timeout=30).stdout.split()
                if services:
                    self.docker("service", "rm", *services, timeout=60)
                self.docker("swarm", "leave", "--force", timeout=60)
        except LabError as exc:
            _log(f"node {self.name}: {exc}; stopping dockerd anyway")
        _terminate([pid], timeout)

    def kill_engine(self) -> None:
        """SIGKILL dockerd alone, like a crash: its containers and containerd are left running."""
        pid = self.dockerd_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 15
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self._proc = None

    def restart_engine(self) -> None:
        """Kill whatever of this node still runs (engine, containerd, containers) and start
        dockerd again on the same data root: it rejoins the swarm by itself."""
        pid = self.dockerd_pid()
        pids = ([pid] if pid else []) + _pids_in_namespaces(self.namespace_ids()) + _pids_in_cgroups(self.cgroup_dirs())
        if pids:
            _terminate(sorted(set(pids)), 10.0)
        for sock in self.shim_sockets():
            sock.unlink(missing_ok=True)
        self._proc = None
        self.start_engine()

    # -- what is left after the engine ------------------------------------------------

    def namespace_ids(self) -> set[tuple[int, int]]:
        """Every network namespace of this node: its own and dockerd's under exec-root."""
        ids = {_ns_id(self.netns_path)}
        netns_dir = self.netns_dir
        if self.isolated:  # the mounts are only in dockerd's mount namespace
            pid = self.dockerd_pid()
            netns_dir = Path(f"/proc/{pid}/root{self.netns_dir}") if pid else Path("/nonexistent")
        try:
            if netns_dir.is_dir():
                ids.update(_ns_id(p) for p in netns_dir.iterdir())
        except OSError:
            pass
        ids.discard(None)
        return ids  # type: ignore[return-value]

    def shim_sockets(self) -> list[Path]:
        """containerd shim sockets this engine's containers left in /run/containerd/s."""
        containers = self.data_root / "containers"
        if not containers.is_dir():
            return []
        out = []
        for cid in os.listdir(containers):
            digest = hashlib.sha256(f"{self.containerd_address}/moby/{cid}".encode()).hexdigest()
            sock = Path("/run/containerd/s") / digest
            if sock.exists():
                out.append(sock)
        return out

    def cgroup_dirs(self) -> list[Path]:
        """This engine's cgroup parent in every mounted hierarchy."""
        root = Path("/sys/fs/cgroup")
        cands = [root / self.netns]
        if root.is_dir():
            cands += [d / self.netns for d in root.iterdir() if d.is_dir() and not d.is_symlink()]
        return [c for c in cands if c.is_dir()]


def _terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM pids, wait up to timeout, then SIGKILL what is left and wait again."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 15.0)):
        alive = [p for p in pids if _pid_alive(p)]
        if not alive:
            return
        for p in alive:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_pid_alive(p) for p in alive):
            time.sleep(0.2)
    left = [p for p in pids if _pid_alive(p)]
    if left:
        raise LabError(f"processes survived SIGKILL: {left}")


def _pids_in_cgroups(dirs: list[Path]) -> list[int]:
    me = os.getpid()
    found = set()
    for d in dirs:
        for procs in d.rglob("cgroup.procs"):
            try:
                found.update(int(x) for x in procs.read_text().split())
            except (OSError, ValueError):
                pass
    found.discard(me)
    return sorted(p for p in found if _pid_alive(p))


def _pids_in_namespaces(ids: set[tuple[int, int]]) -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        nid = _ns_id(f"/proc/{entry}/ns/net")
        if nid in ids and _pid_alive(int(entry)):
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------- the lab


class Lab:
    """A lab swarm: a switch namespace and its nodes.

    ``Lab(name)`` is the single-node lab: one manager in a network namespace
    of its own (root mount namespace). ``Lab(name, nodes=N)`` with N > 1 is a
    multi-node swarm: one manager and N-1 workers, each an isolated node (own
    network, mount and UTS namespaces; see :class:`Node`), joined over the
    switch; ``whoami`` then runs one task per node.

    Attributes of the first (manager) node are mirrored on the lab:
    ``docker_host``, ``netns_path``, ``exec_root``, ``netns_dir``, ``node_addr``.
    """

    def __init__(self, name: str = "default", parent: str | os.PathLike | None = None,
                 nodes: int | None = None, engine: str | None = None) -> None:
        if not NAME_RE.match(name):
            raise LabError(f"bad lab name {name!r}: use 1-20 of a-z, 0-9 and '-'")
        self.name = name
        self.dir = Path(parent if parent is not None else _lab_parent()) / name
        self.state_file = self.dir / "lab.json"
        if nodes is None:  # what an existing lab of this name has, else 1
            nodes = len(self._read_state().get("nodes") or [None])
        if not 1 <= nodes <= 9:
            raise LabError(f"bad node count {nodes}: 1 to 9")
        #: the engine to run (engine_cache.py): a label, suite or directory; None: the machine's dockerd
        self.engine = engine or os.environ.get("SWARMSCOPE_LAB_ENGINE") or self._read_state().get("engine") or None
        self._engine_dirs: list[str] | None = None
        self.switch_netns = f"{NETNS_PREFIX}{name}-sw"
        self.inheritance = SysctlInheritance(self.dir.parent)
        self.switch_netns_path = f"/run/netns/{self.switch_netns}"
        if nodes == 1:
            self.nodes: list[Node] = [Node(self, "manager", 0, f"{NETNS_PREFIX}{name}", self.dir)]
        else:
            self.nodes = [Node(self, "manager", 0, f"{NETNS_PREFIX}{name}", self.dir / "manager", isolated=True)]
            self.nodes += [Node(self, f"worker{i}", i, f"{NETNS_PREFIX}{name}-w{i}", self.dir / f"worker{i}",
                                role="worker", isolated=True) for i in range(1, nodes)]

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, dir={str(self.dir)!r})"

    # -- the manager's view ------------------------------------------------------------

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def docker_host(self) -> str:
        return self.manager.docker_host

    @property
    def netns_path(self) -> str:
        return self.manager.netns_path

    @property
    def exec_root(self) -> Path:
        return self.manager.exec_root

    @property
    def netns_dir(self) -> Path:
        return self.manager.netns_dir

    @property
    def node_addr(self) -> str:
        return self.manager.addr

    @property
    def multi(self) -> bool:
        return len(self.nodes) > 1

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name or n.hostname == name:
                return n
        raise LabError(f"lab {self.name} has no node {name!r}")

    @property
    def services(self) -> tuple[ServiceSpec, ...]:
        if not self.multi:
            return SERVICES
        n = len(self.nodes)
        out = []
        for s in SERVICES:
            if s.name == "whoami":  # one task per node
                s = ServiceSpec("whoami", ("--replicas", str(n), "--replicas-max-per-node", "1",
                                           "--publish", "8000:80", "--network", OVERLAY_NETWORK), HTTPD, n)
            out.append(s)
        return tuple(out)

    def docker(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """docker -H <manager socket> ARGS (check=False unless told)."""
        return self.manager.docker(*args, **kw)

    def in_node(self, argv, **kw) -> subprocess.CompletedProcess:
        """Run argv in the manager's network namespace (see Node.in_node)."""
        return self.manager.in_node(argv, **kw)

    def swarmscope(self, *args: str, timeout: float = CMD_TIMEOUT, **kw) -> subprocess.CompletedProcess:
        """``python3 -m swarmscope ARGS`` of this checkout, inside the manager's
        network namespace, with DOCKER_HOST set to the lab's socket.
        ``--netns-dir`` is the caller's to pass (``lab.netns_dir``)."""
        return self.manager.swarmscope(*args, timeout=timeout, **kw)

    # -- checks ----------------------------------------------------------------------

    @staticmethod
    def preflight(probe_engine: bool = False) -> str | None:
        """Why the lab cannot run here, or None. With probe_engine, also start
        (and remove) a throwaway engine, which takes a few seconds."""
        if sys.platform != "linux":
            return "the lab needs Linux"
        if os.geteuid() != 0:
            return "the lab needs root (network namespaces, dockerd)"
        for tool, pkg in (("dockerd", "docker.io"), ("docker", "docker.io"), ("containerd", "docker.io"),
                          ("runc", "docker.io"), ("nsenter", "util-linux"), ("ip", "iproute2"),
                          ("iptables", "iptables")):
            if shutil.which(tool, path=_env()["PATH"]) is None:
                return f"{tool} not found (apt-get install {pkg}; see contrib/install-deps.sh)"
        if not BUSYBOX.is_file():
            return f"{BUSYBOX} not found (apt-get install busybox-static)"
        if not _static_elf(BUSYBOX):
            return f"{BUSYBOX} is not statically linked (apt-get install busybox-static)"
        if not os.path.exists("/proc/self/ns/net"):
            return "this kernel has no network namespaces"
        if probe_engine:
            probe = Lab(f"probe-{os.getpid()}")
            try:
                probe.up(services=False)
            except LabError as exc:
                return f"dockerd cannot start here: {exc}"
            finally:
                try:
                    probe.down()
                except LabError:
                    pass
        return None

    def engine_path_dirs(self) -> list[str]:
        """The directories that go first on dockerd's PATH for self.engine (fetched once, then cached)."""
        if self._engine_dirs is None:
            import engine_cache

            try:
                self._engine_dirs = engine_cache.dockerd_path_dirs(self.engine)
            except engine_cache.EngineError as exc:
                raise EngineStartError(f"engine {self.engine}: {exc}") from exc
        return self._engine_dirs

    def is_up(self) -> bool:
        return all(n.dockerd_pid() is not None for n in self.nodes) and self.manager.engine_answers()

    # -- up ----------------------------------------------------------------------------

    def up(self, services: bool = True, timeout: float = CONVERGE_TIMEOUT) -> Lab:
        """Bring the lab up (reusing a healthy running one); on failure tear it all down."""
        reason = self.preflight()
        if reason:
            raise LabError(reason)
        started = time.monotonic()
        if self.engine:
            self.engine_path_dirs()  # fetched (or found) before anything is created
        try:
            if self.is_up():
                _log(f"lab {self.name} already running; checking it")
            else:
                if self.dir.exists() or self._leftovers():
                    _log(f"lab {self.name}: removing what a previous run left")
                    self.down()
                self._create()
            self.build_image()
            self.init_swarm()
            if self.multi:
                self.join_workers()
            if services:
                self.create_services()
                self.wait_converged(timeout)
        except BaseException:
            _log(f"lab {self.name}: up failed, tearing down")
            try:
                self.down()
            except (LabError, OSError) as exc:  # keep the original error
                _log(f"lab {self.name}: teardown after failure also failed: {exc}")
            raise
        _log(f"lab {self.name} up in {time.monotonic() - started:.1f}s "
             f"({self.docker_host}, netns {self.netns_path})")
        return self

    def _create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inheritance.acquire(self.name)
        netns_mount_existed = _is_mountpoint("/run/netns")
        self._write_state(created_run_netns_mount=not netns_mount_existed)
        run(["ip", "netns", "add", self.switch_netns])
        for args in (["link", "set", "lo", "up"], ["link", "add", "br0", "type", "bridge"],
                     ["addr", "add", f"{SWITCH_ADDR}/24", "dev", "br0"], ["link", "set", "br0", "up"]):
            run(["ip", "-n", self.switch_netns, *args])
        for node in self.nodes:
            node.create_netns()
        for node in self.nodes:
            node.start_engine()

    def _write_state(self, **extra) -> None:
        state = {
            "name": self.name,
            "switch_netns": self.switch_netns,
            "engine": self.engine,
            "nodes": [{"name": n.name, "role": n.role, "netns": n.netns, "addr": n.addr, "hostname": n.hostname,
                       "docker_host": n.docker_host, "netns_dir": str(n.netns_dir)} for n in self.nodes],
        }
        old = self._read_state()
        state.update({k: v for k, v in old.items() if k not in state})
        state.update(extra)
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def build_image(self) -> None:
        """Import IMAGE on every node from a tarball of /bin/busybox made on the fly (idempotent)."""
        for node in self.nodes:
            if node.docker("image", "inspect", IMAGE).returncode == 0:
                continue
            node.docker("import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE,
                        input=busybox_rootfs_tar(), text=False, check=True)

    def load_swarmscope_image(self, nodes: list[Node] | None = None) -> str:
        """Build (offline, cached; see image.py) and load the swarmscope image into nodes; its tag."""
        import image as _image

        key = _image.sources_key()
        fmt = "{{index .Config.Labels \"%s\"}}" % _image.KEY_LABEL

        def current(n: Node) -> bool:
            cp = n.docker("image", "inspect", "--format", fmt, _image.IMAGE)
            return cp.returncode == 0 and cp.stdout.strip() == key

        missing = [n for n in (nodes or self.nodes) if not current(n)]
        if missing:
            try:
                tarball = _image.image_tarball(self.manager.docker_host)
            except _image.ImageError as exc:
                raise LabError(f"cannot build the swarmscope image: {exc}") from exc
            for n in missing:
                if not current(n):
                    n.docker("load", "-q", "-i", str(tarball), check=True, timeout=600)
        return _image.IMAGE

    def join_workers(self, timeout: float = ENGINE_TIMEOUT) -> None:
        """Join every worker to the manager's swarm; wait until all nodes are ready."""
        m = self.manager
        token = m.docker("swarm", "join-token", "-q", "worker", check=True).stdout.strip()
        for w in self.workers:
            state = w.docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=True).stdout.strip()
            if state != "active":
                w.docker("swarm", "join", "--token", token, "--advertise-addr", w.addr,
                         "--listen-addr", f"{w.addr}:2377", f"{m.addr}:2377", check=True)
        self.wait_nodes_ready(timeout)

    def wait_nodes_ready(self, timeout: float = ENGINE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = self.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}", timeout=30).stdout
            ready = {line.split()[0] for line in out.splitlines() if line.endswith(" Ready")}
            if {n.hostname for n in self.nodes} <= ready:
                return
            if time.monotonic() > deadline:
                raise LabError(f"lab {self.name}: nodes not ready within {timeout:.0f}s:\n{out}")
            time.sleep(1.0)

    def init_swarm(self) -> None:
        m = self.manager
        state = m.docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=True).stdout.strip()
        if state != "active":
            m.docker("swarm", "init", "--advertise-addr", m.addr, check=True)
        if m.docker("network", "inspect", OVERLAY_NETWORK).returncode != 0:
            m.docker("network", "create", "--driver", "overlay", "--attachable", OVERLAY_NETWORK, check=True)

    def create_services(self) -> None:
        existing = set(self.docker("service", "ls", "--format", "{{.Name}}", check=True).stdout.split())
        for svc in self.services:
            if svc.name in existing:
                continue
            self.docker("service", "create", "--detach", "--no-resolve-image", "--name", svc.name,
                        "--stop-grace-period", "1s", *svc.options, IMAGE, *svc.command, check=True)

    def service_state(self) -> dict[str, tuple[int, int]]:
        """{service: (running tasks, desired tasks)} as `docker service ls` shows them."""
        out = self.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}", check=True, timeout=60).stdout
        state = {}
        for line in out.splitlines():
            name, _, replicas = line.partition(" ")
            m = re.match(r"(\d+)/(\d+)", replicas.strip())
            if m:
                state[name] = (int(m.group(1)), int(m.group(2)))
        return state

    def wait_settled(self, seconds: float, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Converged, and every running task in its state for at least ``seconds`` (swarmscope's settle
        window: two collections then judge the same tasks alike, none of them 'starting')."""
        self.wait_converged(timeout)
        ids = self.docker("service", "ps", "-q", "--filter", "desired-state=running",
                          *[s.name for s in self.services]).stdout.split()
        from swarmscope.correlate.lifecycle import parse_time  # the one reader of Docker's timestamps

        stamps = self.docker("inspect", "-f", "{{.Status.Timestamp}}", *ids).stdout.split() if ids else []
        times = [t.timestamp() for t in map(parse_time, stamps) if t is not None]
        if times:
            time.sleep(max(0.0, max(times) + seconds + 1 - time.time()))

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Wait until every lab service runs its expected number of tasks."""
        want = {s.name: s.expected_tasks(len(self.nodes)) for s in self.services}
        deadline = time.monotonic() + timeout
        state: dict[str, tuple[int, int]] = {}
        while True:
            state = self.service_state()
            if all(state.get(n) == (k, k) for n, k in want.items()):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        lagging = {n: "{}/{}".format(*state[n]) if n in state else "missing" for n, k in want.items()
                   if state.get(n) != (k, k)}
        tasks = self.docker("service", "ps", "--no-trunc", "--format",
                            "{{.Name}} {{.CurrentState}} {{.Error}}", *want).stdout
        raise LabError(f"services did not converge within {timeout:.0f}s: {lagging} (want {want});\n"
                       f"tasks:\n{tasks}\nlast lines of {self.manager.log}:\n{_tail(self.manager.log)}")

    # -- down --------------------------------------------------------------------------

    def _leftovers(self) -> bool:
        return any(os.path.exists(p) for p in
                   [self.switch_netns_path, *(n.netns_path for n in self.nodes)])

    def down(self) -> None:
        """Tear everything down; idempotent. Leaves no process, mount, namespace or dir."""
        started = time.monotonic()
        errors: list[str] = []
        # workers first, the manager last
        for node in reversed(self.nodes):
            try:
                node.stop_engine()
            except LabError as exc:
                errors.append(str(exc))
        # whatever still runs in a lab namespace: containerd, shims, containers
        ids: set[tuple[int, int]] = set()
        for node in self.nodes:
            ids |= node.namespace_ids()
        sw = _ns_id(self.switch_netns_path)
        if sw:
            ids.add(sw)
        stray = [pid for node in self.nodes if (pid := node.dockerd_pid())]
        stray += _pids_in_namespaces(ids)
        for node in self.nodes:  # containers of isolated nodes: their netns files are not visible here
            stray += _pids_in_cgroups(node.cgroup_dirs())
        if stray:  # the engine is gone or did not stop them: nothing graceful is left to wait for
            try:
                _terminate(sorted(set(stray)), 3.0)
            except LabError as exc:
                errors.append(str(exc))
        for node in self.nodes:
            for sock in node.shim_sockets():
                sock.unlink(missing_ok=True)
        # mounts: overlayfs and shm under data, netns bind mounts under exec, the data root bind
        for _ in range(5):
            points = mounts_under(self.dir)
            if not points:
                break
            for point in reversed(points):
                if run(["umount", point], check=False, timeout=30).returncode != 0:
                    run(["umount", "-l", point], check=False, timeout=30)
        else:
            errors.append(f"still mounted: {mounts_under(self.dir)}")
        for node in reversed(self.nodes):
            node.delete_netns()
            for cg in node.cgroup_dirs():
                for sub in sorted(cg.rglob("*"), key=lambda p: -len(p.parts)):
                    if sub.is_dir():
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                try:
                    cg.rmdir()
                except OSError as exc:
                    errors.append(f"cannot remove cgroup {cg}: {exc.strerror}")
        if os.path.exists(self.switch_netns_path):
            run(["ip", "netns", "delete", self.switch_netns], check=False)
        state = self._read_state()
        if state.get("created_run_netns_mount") and _is_mountpoint("/run/netns"):
            try:
                if not os.listdir("/run/netns"):
                    run(["umount", "/run/netns"], check=False)
            except OSError:
                pass
        if self._leftovers():
            errors.append("lab network namespaces still present")
        try:
            self.inheritance.release(self.name)
        except LabError as exc:
            errors.append(str(exc))
        if self.dir.exists():
            if mounts_under(self.dir):
                errors.append(f"not removing {self.dir}: something is still mounted there")
            else:
                shutil.rmtree(self.dir, ignore_errors=False)
        if errors:
            raise LabError(f"lab {self.name}: teardown incomplete: " + "; ".join(errors))
        _log(f"lab {self.name} down in {time.monotonic() - started:.1f}s")

    # -- reporting -----------------------------------------------------------------------

    def status(self) -> dict:
        m = self.manager
        info = {
            "name": self.name,
            "dir": str(self.dir),
            "up": False,
            "dockerd_pid": m.dockerd_pid(),
            "docker_host": self.docker_host,
            "netns_path": self.netns_path,
            "netns_dir": str(self.netns_dir),
            "node_addr": self.node_addr,
            "netns_present": os.path.exists(self.netns_path),
        }
        if info["dockerd_pid"] and m.engine_answers():
            info["up"] = True
            try:
                info["services"] = {k: f"{v[0]}/{v[1]}" for k, v in self.service_state().items()}
            except LabError as exc:
                info["services_error"] = str(exc)
            try:
                info["netns_files"] = sorted(os.listdir(self.netns_dir))
            except OSError:
                info["netns_files"] = []
        return info

    def env(self) -> dict[str, str]:
        """Shell variables for using the lab by hand."""
        return {
            "DOCKER_HOST": self.docker_host,
            "SWARMSCOPE_LAB_NETNS": self.netns_path,
            "SWARMSCOPE_LAB_NETNS_DIR": str(self.netns_dir),
            "SWARMSCOPE_LAB_NODE_ADDR": self.node_addr,
        }


def busybox_rootfs_tar() -> bytes:
    """A tarball of a root filesystem holding /bin/busybox, its applet links and /www."""
    buf = io.BytesIO()
    now = int(time.time())

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
        tar.addfile(info)

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "www", "proc", "sys", "dev"):
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, now
        tar.addfile(info, io.BytesIO(data))
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, now
            tar.addfile(link)
        page = b"swarmscope lab: hello from the whoami service\n"
        info = tarfile.TarInfo("www/index.html")
        info.size, info.mode, info.mtime = len(page), 0o644, now
        tar.addfile(info, io.BytesIO(page))
    return buf.getvalue()


# --------------------------------------------------------------------------- command line


def _raise_interrupt(signum, frame):  # SIGTERM/SIGHUP during `up`: tear down like Ctrl-C
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swarmlab.py", description="swarmscope's lab swarm (needs root).")
    parser.add_argument("command", choices=("up", "down", "status", "env", "preflight"))
    parser.add_argument("--name", default="default", help="lab name (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=None,
                        help="1: the single-node lab; N > 1: a manager and N-1 workers "
                             "(default: what the running lab has, else 1)")
    parser.add_argument("--engine", default=None,
                        help="the engine to run: 26.1, 28, 20.10 (Debian's, cached by engine_cache.py) or a "
                             "directory holding dockerd (default: $SWARMSCOPE_LAB_ENGINE, else the machine's)")
    opts = parser.parse_args(argv)
    try:
        lab = Lab(opts.name, nodes=opts.nodes, engine=opts.engine)
        if opts.command == "up":
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _raise_interrupt)
            lab.up()
            for k, v in lab.env().items():
                print(f"export {k}={shlex.quote(v)}")
        elif opts.command == "down":
            lab.down()
        elif opts.command == "status":
            info = lab.status()
            print(json.dumps(info, indent=2))
            return 0 if info["up"] else 1
        elif opts.command == "env":
            for k, v in lab.env().items():
                print(f"export {k}={shlex.quote(v)}")
        elif opts.command == "preflight":
            reason = Lab.preflight(probe_engine=True)
            print(reason or "ok")
            return 1 if reason else 0
    except LabError as exc:
        print(f"swarmlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("swarmlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
