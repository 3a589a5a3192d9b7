#!/usr/bin/env python3
"""Host side of the VM test tier: build/cache the guest image, boot it under QEMU (TCG), collect results.

The host kernel has no ip_vs, so a swarm here never programs its load balancers.  This boots Debian's
stock kernel (ip_vs as a module) with a debootstrap root filesystem under QEMU software emulation, runs
``guest/scenario.sh`` inside (a real single-node swarm with a published port, then one fault at a time)
and leaves the raw captures in an output directory.  The guest has no network device at all.

Command line (run as root from the checkout)::

    python3 tests/vm/vmlab.py build                 # build/cache wheelhouse + image (progress on stderr)
    python3 tests/vm/vmlab.py run [--out DIR] [--faults "a-dnat-flushed h-task-killed"]
    python3 tests/vm/vmlab.py export-fixtures RUN_OUT_DIR   # small raw captures -> tests/fixtures/vm/
    python3 tests/vm/vmlab.py status                # cache keys, sizes

Environment: SWARMSCOPE_VM_CACHE (default /var/cache/swarmscope-vm), SWARMSCOPE_VM_MEM (MiB, 3072),
SWARMSCOPE_VM_CPUS (2), SWARMSCOPE_VM_TIMEOUT (seconds for one boot, 2400).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST_DIR = HERE / "guest"
BUILD_SCRIPT = HERE / "build-image.sh"
FIXTURES = REPO / "tests" / "fixtures" / "vm"
SUITE = "bookworm"
HOST_PACKAGES = ["qemu-system-x86", "qemu-utils", "debootstrap", "e2fsprogs"]
HOST_TOOLS = ["qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "apt-get", "dpkg", "chroot"]
# extra wheels: setuptools for building the checkout in the guest (--no-build-isolation);
# bookworm's setuptools 66 lacks bdist_wheel without the `wheel` package.
EXTRA_WHEELS = ["setuptools>=70.1"]
PIP_PLATFORM = ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311",
                "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux_2_28_x86_64", "--platform", "any"]
ALL_FAULTS = ["a-dnat-flushed", "b-backend-deleted", "c-unknown-backend", "d-weight-zero",
              "e-mark-deleted", "f-vip-removed", "g-lb-ip-forward-off", "h-task-killed",
              "i-xt-ipvs-missing", "j-ip-vs-rr-missing", "k-ipvs-sysctl-reset", "l-filter-accept-deleted",
              "n-ingress-snat-deleted", "p-task-not-listening"]
FIXTURE_MAX_BYTES = 128 * 1024
# the faults whose rules differ between engine generations (the filter ACCEPT: -m state before 25, -m conntrack
# after; the ingress SNAT); every engine runs them. m (the jump's place in DOCKER-FORWARD) exists from 28 on.
ENGINE_FAULTS = ["l-filter-accept-deleted", "n-ingress-snat-deleted"]
FORWARD_ORDER_FAULT = "m-ingress-after-bridge"
FORWARD_ORDER_SINCE = 28
BASE_LABEL = "20.10"  # the image's own docker.io (bookworm)


def plan(labels: list[str], base_faults: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """The phases one boot runs, as (phase prefix, faults) per engine in order: the image's 20.10 first
    (prefix ""), then each engine of ``labels`` ("engine-<label>/"). The newest engine (the last) runs every
    fault (issue 11: the fault phases on the newest engine at least); every other engine the faults whose
    rules differ between engines; m-ingress-after-bridge wherever the engine has DOCKER-FORWARD (28+).
    With no other engine, 20.10 runs every fault. SWARMSCOPE_VM_NEWEST_FAULTS / SWARMSCOPE_VM_ENGINE_FAULTS
    replace the two lists; ``base_faults`` (vmlab run --faults) replaces 20.10's."""
    full = os.environ.get("SWARMSCOPE_VM_NEWEST_FAULTS", "").split() or list(ALL_FAULTS)
    each = os.environ.get("SWARMSCOPE_VM_ENGINE_FAULTS", "").split() or list(ENGINE_FAULTS)

    def with_order(label: str, faults: list[str]) -> list[str]:
        major = int(label.split(".")[0]) if label.split(".")[0].isdigit() else 0
        return faults + [FORWARD_ORDER_FAULT] if major >= FORWARD_ORDER_SINCE and FORWARD_ORDER_FAULT not in faults else faults

    out = [("", base_faults if base_faults is not None else (each if labels else full))]
    for i, label in enumerate(labels):
        out.append((f"engine-{label}/", with_order(label, full if i == len(labels) - 1 else each)))
    return out


_MESH3 = None


def mesh3_module():
    """guest/mesh3.py as a module (its fault list and where each fault is made: one place)."""
    global _MESH3
    if _MESH3 is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("mesh3_guest", GUEST_DIR / "mesh3.py")
        assert spec and spec.loader
        _MESH3 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_MESH3)
    return _MESH3


def mesh3_plan() -> list[str] | None:
    """The three-node mesh's faults (guest/mesh3.py, issue 12), run after the single-node phases on the newest
    engine; None when SWARMSCOPE_VM_MESH3=0. SWARMSCOPE_VM_MESH3_FAULTS narrows the list ("" keeps them all,
    "none" runs only its healthy phase)."""
    if os.environ.get("SWARMSCOPE_VM_MESH3", "1") == "0":
        return None
    mod = mesh3_module()
    chosen = os.environ.get("SWARMSCOPE_VM_MESH3_FAULTS", "").split()
    if chosen == ["none"]:
        return []
    return chosen or list(mod.ALL_FAULTS)


def plan_phases(p: list[tuple[str, list[str]]]) -> list[str]:
    """Phase names in the order the scenario runs them."""
    return [f"{pre}{x}" for pre, faults in p for x in ("healthy", *faults)]


def engine_label(engine_dir: Path) -> str:
    """An unpacked engine's label (26.1, 28) from its ENGINE.json, else the directory's name."""
    try:
        return str(json.loads((engine_dir / "ENGINE.json").read_text())["label"])
    except (OSError, ValueError, KeyError):
        return engine_dir.name


class VMUnavailable(Exception):
    """The tier cannot run on this machine (not root, no packages, no mirror): tests skip with this text."""


def log(msg: str) -> None:
    print(f"[vmlab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("SWARMSCOPE_VM_CACHE") or "/var/cache/swarmscope-vm")


class _Lock:
    """An exclusive flock on a file in the cache dir (one build at a time, also across processes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {self.path} (another build is running)")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


# ------------------------------------------------------------------------------------------ host tools
def ensure_host_tools() -> None:
    if os.geteuid() != 0:
        raise VMUnavailable("the VM tier needs root (debootstrap, chroot, mkfs)")
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise VMUnavailable("the VM tier needs an x86_64 Linux host")
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    if not missing:
        return
    log(f"missing {missing}: apt-get install {' '.join(HOST_PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *HOST_PACKAGES], env=env,
                       check=True, stdout=subprocess.DEVNULL, timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        raise VMUnavailable(f"cannot install {HOST_PACKAGES} with apt-get: {exc}") from None
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    if missing:
        raise VMUnavailable(f"still missing after apt-get install: {missing}")


# ------------------------------------------------------------------------------------------ wheelhouse
def project_requirements() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def _key(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def ensure_wheelhouse() -> Path:
    """pip download of the project's dependencies for the guest's CPython 3.11 (cached by requirement list)."""
    reqs = project_requirements() + EXTRA_WHEELS
    key = _key("wheels-v1", reqs, PIP_PLATFORM)
    dest = cache_dir() / f"wheels-{key}"
    if (dest / "requirements.txt").exists():
        return dest
    with _Lock(cache_dir() / ".wheels.lock"):
        if (dest / "requirements.txt").exists():
            return dest
        log(f"wheelhouse: pip download {reqs}")
        stage = Path(tempfile.mkdtemp(prefix=".wheels-", dir=cache_dir()))
        try:
            p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                "-d", str(stage), *PIP_PLATFORM, *reqs], capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                raise VMUnavailable(f"pip download of the guest wheelhouse failed: {p.stderr.strip()[-500:]}")
            (stage / "requirements.txt").write_text("\n".join(reqs) + "\n")
            stage.rename(dest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        log(f"wheelhouse ready: {dest} ({len(list(dest.glob('*.whl')))} wheels)")
    return dest


# ------------------------------------------------------------------------------------------ image
def image_key() -> str:
    return _key("image-v1", SUITE, BUILD_SCRIPT.read_bytes())


@dataclass
class Image:
    dir: Path
    wheelhouse: Path

    @property
    def kernel_version(self) -> str:
        return (self.dir / "kernel-version").read_text().strip()


def ensure_image() -> Image:
    """Build (or reuse) the kernel, initramfs and disk image.  Slow the first time (~3-4 min); no timeout."""
    ensure_host_tools()
    wheels = ensure_wheelhouse()
    dest = cache_dir() / f"image-{image_key()}"
    if (dest / "disk.img").exists():
        return Image(dest, wheels)
    with _Lock(cache_dir() / ".image.lock"):
        if (dest / "disk.img").exists():
            return Image(dest, wheels)
        log(f"building the guest image (recipe {BUILD_SCRIPT.name}, key {dest.name}); progress follows")
        stage = Path(tempfile.mkdtemp(prefix=".image-", dir=cache_dir()))
        t0 = time.monotonic()
        try:
            env = dict(os.environ, OUT_DIR=str(stage), WHEELHOUSE=str(wheels), SUITE=SUITE, LC_ALL="C")
            p = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, stdin=subprocess.DEVNULL)
            if p.returncode == 3:
                raise VMUnavailable("downloading Debian packages for the guest image failed (mirror unreachable?)")
            if p.returncode != 0:
                logs = sorted(stage.glob("build-*.log"))
                tail = logs[-1].read_text(errors="replace")[-2000:] if logs else ""
                raise RuntimeError(f"{BUILD_SCRIPT} failed with exit {p.returncode}; last log:\n{tail}")
            (stage / "build-seconds.txt").write_text(f"{time.monotonic() - t0:.0f}\n")
            (stage / "wheelhouse.txt").write_text(f"{wheels}\n")
            stage.rename(dest)
        except BaseException:
            _rmtree_root(stage)
            raise
        log(f"image built in {time.monotonic() - t0:.0f} s: {dest}")
        _prune(keep={dest.name, wheels.name})
    return Image(dest, wheels)


def _rmtree_root(path: Path) -> None:
    # a failed debootstrap may leave device nodes / proc mounts in the rootfs; never follow mounts
    subprocess.run(["umount", "-R", "-l", str(path / "work" / "rootfs" / "proc")], stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)


def _prune(keep: set[str]) -> None:
    """Remove images/wheelhouses of older recipes (each image is ~1 GB of disk)."""
    for p in cache_dir().iterdir():
        if p.name.startswith(("image-", "wheels-")) and p.name not in keep and p.is_dir():
            log(f"pruning old cache entry {p}")
            shutil.rmtree(p, ignore_errors=True)


# ------------------------------------------------------------------------------------------ boot
@dataclass
class RunResult:
    out: Path
    qemu_rc: int | None
    scenario_rc: int | None
    seconds: float
    timed_out: bool
    marks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.scenario_rc == 0 and (self.out / "DONE").exists()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started qemu dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class QemuProcess:
    """One qemu; `stop()` (also from a finalizer) terminates it with a bounded wait, then SIGKILLs."""

    def __init__(self, argv: list[str], serial_log: Path):
        self.serial_log = serial_log
        self.marks: list[str] = []
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.serial_log, "w", errors="replace") as fh:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", "")
                t = time.monotonic() - self.t0
                fh.write(f"[{t:7.1f}] {line}\n")
                fh.flush()
                if "VM-MARK" in line or "VM-FAIL" in line:
                    text = line[line.find("VM-"):]
                    self.marks.append(f"{t:7.1f}s {text}")
                    log(f"guest +{t:5.0f}s {text}")

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10) -> None:
        if self.proc.poll() is None:
            log(f"stopping qemu pid {self.proc.pid}")
            try:
                self.proc.terminate()
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
        self.reader.join(timeout=5)


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def engines() -> tuple[list[Path], list[str]]:
    """The other engines the guest runs after the image's own (20.10): unpacked trees from the lab's engine
    cache (contrib/lab/engine_cache.py; fetched when missing), and a note per engine that is not there."""
    sys.path.insert(0, str(REPO / "contrib" / "lab"))
    import engine_cache

    labels = os.environ.get("SWARMSCOPE_VM_ENGINES", "26.1 28").split()
    found, missing = [], []
    for label in labels:
        try:
            found.append(Path(engine_cache.resolve(label)))  # <cache>/<exact version>/
        except Exception as exc:  # noqa: BLE001 - no network, no mirror: those phases are skipped, with why
            missing.append(f"engine {label}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return found, missing


def boot(image: Image, out: Path, *, faults: list[str] | None = None, timeout: float | None = None,
         mem: int | None = None, cpus: int | None = None, src: Path = REPO,
         engine_dirs: list[Path] | None = None) -> RunResult:
    """Boot the guest once with the scenario; results land in `out` (emptied first).  Never leaves qemu behind.
    ``engine_dirs``: unpacked engines (one cache root) the guest runs after the image's own."""
    timeout = timeout or float(os.environ.get("SWARMSCOPE_VM_TIMEOUT", "3600"))
    mem = mem or int(os.environ.get("SWARMSCOPE_VM_MEM", "3072"))  # three dockerds in the mesh3 stage
    cpus = cpus or int(os.environ.get("SWARMSCOPE_VM_CPUS", "2"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scenario_timeout = int(timeout) - 60
    params = [f"SCENARIO_TIMEOUT={scenario_timeout}"]
    run_plan = plan([engine_label(d) for d in engine_dirs or []], faults)
    params.append(f"FAULTS='{' '.join(run_plan[0][1])}'")
    params.append("ENGINE_PLAN='" + " ".join(f"{pre[len('engine-'):-1]}={','.join(fs)}" for pre, fs in run_plan[1:]) + "'")
    m3 = mesh3_plan()
    params.append("MESH3=0" if m3 is None else f"MESH3_FAULTS='{' '.join(m3)}'")
    (out / "plan.json").write_text(json.dumps({"engines": [pre for pre, _ in run_plan], "faults": dict(run_plan),
                                               "phases": plan_phases(run_plan), "full": run_plan[-1][0],
                                               "mesh3": m3}, indent=1) + "\n")
    shares = [("vmout", out, False), ("vmscenario", GUEST_DIR, True), ("vmsrc", src, True),
              ("vmwheels", image.wheelhouse, True)]
    if engine_dirs:
        roots = {d.parent for d in engine_dirs}
        assert len(roots) == 1, f"engines from one cache root only: {roots}"
        params.append(f"ENGINES='{' '.join(d.name for d in engine_dirs)}'")
        shares.append(("vmengines", roots.pop(), True))
    (out / "params.env").write_text("\n".join(params) + "\n")
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir()))
    overlay = work / "run.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.dir / "disk.img"), "-F", "raw",
                    str(overlay)], check=True)
    argv = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(cpus), "-m", str(mem), "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", str(image.dir / "vmlinuz"), "-initrd", str(image.dir / "initrd.gz"),
            "-append", "console=ttyS0 loglevel=4 panic=5 mitigations=off",
            "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
            "-nic", "none",  # no network device: every packet of the scenario stays inside the guest
            "-device", "virtio-rng-pci", "-serial", "stdio", "-monitor", "none", "-no-reboot"]
    for tag, path, ro in shares:
        argv += ["-virtfs", f"local,path={path},mount_tag={tag},security_model=none,id={tag}" + (",readonly=on" if ro else "")]
    (out / "qemu-argv.txt").write_text(" ".join(argv) + "\n")
    log(f"booting the guest (TCG, {cpus} vCPU, {mem} MiB, timeout {timeout:.0f} s); serial log {out}/serial-console.log")
    t0 = time.monotonic()
    # SIGTERM/SIGHUP of this process must not orphan qemu: turn them into SystemExit so `finally` runs
    # (qemu runs in its own session, so a terminal's Ctrl-C reaches only us: KeyboardInterrupt, same path).
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, _raise_exit)
    q = QemuProcess(argv, out / "serial-console.log")
    rc = None
    try:
        rc = q.wait(timeout)
    finally:
        q.stop()
        shutil.rmtree(work, ignore_errors=True)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    seconds = time.monotonic() - t0
    srcf = out / "scenario.rc"
    scenario_rc = int(srcf.read_text().strip()) if srcf.exists() else None
    (out / "marks-host.txt").write_text("\n".join(q.marks) + "\n")
    res = RunResult(out, rc, scenario_rc, seconds, rc is None, q.marks)
    log(f"guest done in {seconds:.0f} s: qemu exit {rc}, scenario exit {scenario_rc}" + (" (TIMED OUT)" if rc is None else ""))
    return res


def new_run_dir(keep: int = 3) -> Path:
    """A fresh results dir under the cache (runs/<time>-<pid>); `last-run` points to it; old runs pruned."""
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    out = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for old in sorted(p for p in runs.iterdir() if p.is_dir())[:-(keep - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    link = cache_dir() / "last-run"
    if link.is_symlink() or not link.exists():
        tmp = cache_dir() / f".last-run-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out)
        tmp.replace(link)
    return out


# ------------------------------------------------------------------------------------------ reading results
def tail(path: Path, n: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def ipvs_fwm(text: str) -> dict[int, list[tuple[str, int]]]:
    """`ipvsadm -Ln` output -> {fwmark: [(real server address, weight)]} (test-side parser, independent
    of swarmscope's own)."""
    res: dict[int, list[tuple[str, int]]] = {}
    cur = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "FWM":
            cur = int(parts[1])
            res[cur] = []
        elif parts[:1] in (["TCP"], ["UDP"], ["SCTP"]):
            cur = None
        elif cur is not None and parts[:1] == ["->"] and len(parts) >= 4 and parts[1][0].isdigit():
            res[cur].append((parts[1].rsplit(":", 1)[0], int(parts[3])))
    return res


def iptables_rules(text: str, table: str, chain: str) -> list[str]:
    """`iptables-save` output -> the `-A CHAIN ...` lines of one table and chain."""
    rules, cur = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = line[1:].strip()
        elif cur == table and line.startswith(f"-A {chain} "):
            rules.append(line)
    return rules


def phases(out: Path) -> dict[str, str]:
    """Phase name -> outcome line from /out/phases.txt ("ok", "repaired-by-force", ...)."""
    res = {}
    f = out / "phases.txt"
    if f.exists():
        for line in f.read_text().splitlines():
            name, _, outcome = line.partition(" ")
            res[name] = outcome
    return res


def export_fixtures(out: Path, dest: Path = FIXTURES, image: Image | None = None,
                    only: list[str] | None = None) -> list[Path]:
    """Copy the small raw captures of every phase into tests/fixtures/vm/<phase>/ (plus a README).
    ``only``: these phases (names as in phases.txt, e.g. engine-28/healthy), replacing just them."""
    copied = []
    if only is None and dest.exists():
        shutil.rmtree(dest)
    names = only if only is not None else [p for p in phases(out)]
    for name in names:
        phase_dir = out / "phases" / name
        if not phase_dir.is_dir():
            raise FileNotFoundError(f"no phase {name} in {out}")
        if only is not None and (dest / name).exists():
            shutil.rmtree(dest / name)
        for f in sorted(phase_dir.rglob("*")):
            rel = f.relative_to(out / "phases")
            if not f.is_file() or "swarmscope" in rel.parts or f.stat().st_size > FIXTURE_MAX_BYTES:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            copied.append(target)
    if only is None:
        for name in ("phases.txt", "timings-guest.txt"):
            if (out / name).exists():
                shutil.copyfile(out / name, dest / name)
        _write_fixture_readme(out, dest)
    return copied


FAULT_DOC = {
    "healthy": "the lab swarm as created, nothing broken",
    "a-dnat-flushed": "`iptables -t nat -F DOCKER-INGRESS` on the host (what a firewall reload does)",
    "b-backend-deleted": "one real server deleted from the ingress IPVS FWM service (`ipvsadm -d -f MARK -r ADDR:0` in ingress_sbox)",
    "c-unknown-backend": "a real server no task owns added to the ingress FWM service (`ipvsadm -a -f MARK -r <ingress subnet>.250:0 -m`)",
    "d-weight-zero": "one ingress real server's weight set to 0 (`ipvsadm -e -f MARK -r ADDR:0 -m -w 0`)",
    "e-mark-deleted": "the `--dport 8000 -j MARK` rule deleted from ingress_sbox mangle PREROUTING",
    "f-vip-removed": "whoami's VIP /32 alias removed from eth0 of demo's `lb_` namespace",
    "g-lb-ip-forward-off": "`sysctl -w net.ipv4.ip_forward=0` in demo's `lb_` namespace",
    "h-task-killed": "`kill -9` of a whoami task container's init process from the VM host (behind swarm's back); `timeline.txt` samples both load balancers every ~0.5 s",
    "i-xt-ipvs-missing": "`libxt_ipvs.so` moved out of the xtables directory, then network `matchless` and a service on it created (a new `lb_`)",
    "j-ip-vs-rr-missing": "every service removed, `modprobe -r ip_vs_rr`, its `.ko` moved out of /lib/modules and `depmod -a`, the services created again",
    "k-ipvs-sysctl-reset": "`net.ipv4.vs.expire_nodest_conn=0` in ingress_sbox",
    "l-filter-accept-deleted": "the host's filter `DOCKER-INGRESS` ACCEPT rule for `--dport 8000` deleted",
    "m-ingress-after-bridge": "engine 28: the jump to `DOCKER-INGRESS` moved after `-j DOCKER-BRIDGE` in `DOCKER-FORWARD`",
    "n-ingress-snat-deleted": "ingress_sbox's `-m ipvs --ipvs -d <ingress subnet> -j SNAT` deleted",
    "p-task-not-listening": "the HTTP server inside one whoami task stopped (`killall httpd`); the container, task, "
                            "real servers and rules stay: only traffic (and `--probe`) shows it",
}


# What each fault looked like in the raw captures and traffic (kernel 6.1, docker 20.10.24), and what
# the full repair ladder (LEARN_REPAIRS=1: force, recreate, reset, restart, manual) showed.
OBSERVED = {
    "a-dnat-flushed": "host nat `DOCKER-INGRESS` empty (no DNAT, no RETURN), the jumps from PREROUTING/OUTPUT stay; "
                      "127.0.0.1:8000 hangs (dockerd's port-reservation socket accepts, nothing answers); VIP path fine. "
                      "`service update --force` does NOT restore it (IPVS service never went away); rm+create does",
    "b-backend-deleted": "ingress FWM has 1 real server; every request to :8000 lands on the remaining task. "
                         "`service update --force` repairs (new tasks are added as backends)",
    "c-unknown-backend": "ingress FWM has 3 real servers, one owned by no task; round robin: every third request hangs. "
                         "`--force` does not remove it (nothing owns it); rm+create does (the whole IPVS service goes)",
    "d-weight-zero": "ingress FWM: one real server weight 0 (looks like moby's graceful removal), all traffic to the other. "
                     "`--force` repairs",
    "e-mark-deleted": "ingress_sbox mangle PREROUTING has no MARK for 8000, IPVS intact; 127.0.0.1:8000 connection refused. "
                      "`--force` does not restore the rule; rm+create does",
    "f-vip-removed": "lb_ eth0 lacks whoami's VIP /32, IPVS intact; client -> http://whoami/ times out, published port fine. "
                     "`--force` no; rm+create yes (with a NEW VIP)",
    "g-lb-ip-forward-off": "lb_ `net.ipv4.ip_forward = 0`; client -> whoami VIP times out, published port fine. "
                           "`--force` no, rm+create whoami no (the lb_ namespace survives: other services use demo); "
                           "removing every service and the demo network and creating them again (reset) yes",
    "h-task-killed": "kill -9 of the task's init: the dead task's backend left both ingress_sbox and lb_ within ~1 s "
                     "(no weight-0 state seen at ~0.5 s sampling), the replacement task's backend appeared ~16 s later; "
                     "swarm heals by itself. `docker-kill*.txt`: the same through `docker kill` - the backend stayed at weight 1 "
                     "for ~1.1 s, then was deleted, replacement ~13 s later: no longer-lived stale state either way",
}


def _first_line(path: Path, prefix: str = "") -> str:
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.strip().startswith(prefix):
                return line.strip()
    except OSError:
        pass
    return "?"


MESH3_FIXTURES = REPO / "tests" / "fixtures" / "vm-mesh3"


def export_mesh3(out: Path, dest: Path = MESH3_FIXTURES) -> list[Path]:
    """The three-node stage's captures of a run (every node's collect --json, the wget proofs, nodes.json, what
    each fault did) into ``dest``, laid out as a run (plan.json + phases/mesh3/), so the unit tier judges them
    with the VM tier's own tests (tests/unit/test_mesh3_captures.py)."""
    src = out / "phases" / "mesh3"
    if not (src / "healthy").is_dir():
        raise SystemExit(f"{out} has no three-node stage")
    if dest.exists():
        shutil.rmtree(dest)
    files = []
    for f in sorted(src.rglob("*")):
        if f.is_file() and not f.name.startswith(".") and f.suffix in (".json", ".txt", ".rc", ".stderr", ".seconds"):
            if f.name == "collect.json" and not f.stat().st_size:
                continue
            t = dest / "phases" / "mesh3" / f.relative_to(src)
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, t)
            files.append(t)
    plan = json.loads((out / "plan.json").read_text())
    (dest / "plan.json").write_text(json.dumps({"mesh3": plan.get("mesh3"), "phases": [], "engines": [""],
                                                "full": "", "exported_from": str(out)}, indent=1) + "\n")
    return files


def _write_fixture_readme(out: Path, dest: Path) -> None:
    h = out / "phases" / "healthy"
    uname = (out / "setup" / "guest-uname.txt").read_text().strip() if (out / "setup" / "guest-uname.txt").exists() else "?"
    engine = "?"
    try:
        v = json.loads((h / "docker" / "version.json").read_text())
        comps = ", ".join(f"{c['Name']} {c['Version']}" for c in v.get("Components", []) if c["Name"] != "Engine")
        engine = f"{v['Version']} (API {v['ApiVersion']}; {comps})"
    except Exception:  # noqa: BLE001 - a README line, not a test
        pass
    outcomes = phases(out)
    lines = [
        "# Raw captures from the VM test tier (tests/vm)",
        "",
        "Generated by `python3 tests/vm/vmlab.py export-fixtures RUN_OUT` from one run of the VM tier: a",
        "single-node Docker Swarm inside a QEMU (TCG) guest booted with Debian's stock kernel, which has",
        "ip_vs, so the routing mesh is really programmed (the project's own machines lack ip_vs).",
        "The guest had no network device: eth0 is a dummy interface with 192.168.76.15/24 (swarm advertise address).",
        "",
        f"- guest kernel: `{uname}`",
        f"- docker engine: {engine}; iptables backend as Debian bookworm defaults (nft; legacy tables captured too)",
        "- lab: overlay network `demo`; `whoami` (2 replicas, `--publish 8000:80`, on demo, busybox httpd",
        "  serving its hostname), `client` (demo, sleep), `dnsrr` (`--endpoint-mode dnsrr`, demo),",
        "  `hostport` (`--publish mode=host,published=8081,target=80`), `glob` (`--mode global`, demo).",
        "",
        "Each phase directory holds, taken right after the fault was applied (files over "
        f"{FIXTURE_MAX_BYTES // 1024} KiB left out):",
        "",
        "- `ns/<name>/` for `host` and every file in `/var/run/docker/netns` (`ingress_sbox`, `lb_<9>`, `1-<10>`,",
        "  12-hex task sandboxes; `sandboxes.txt` maps them to containers/tasks/services): `iptables-save`,",
        "  `iptables-legacy-save`, `ipvsadm -Ln`, `ipvsadm -S -n`, `/proc/net/ip_vs`, `ip -d addr`, `ip link`,",
        "  `ip route`, sysctls (`sysctl.txt`); `commands.txt` gives command and exit status per file;",
        "- `docker/`: `docker info`/`version`, `network inspect -v` of ingress and demo, `service inspect` (all),",
        "  `inspect --type task` (all tasks), `inspect --type container` (all), `node inspect self`, and the",
        "  embedded DNS answers from the client container (`dns-<name>.txt`, busybox nslookup);",
        "- `wget-*.txt`: 127.0.0.1:8000 (4 tries), eth0:8000, 127.0.0.1:8081 (host mode), client -> `http://whoami/` (VIP);",
        "- `fault.txt` (what was done), `facts-before.json` / `facts-after-fault.json` (the scenario's own view:",
        "  marks, VIPs, task addresses), `health-after-fault.txt` (which infrastructure checks failed),",
        "  `repair.txt` (the repair ladder: which step restored health).",
        "",
        "| phase | fault | repair outcome in this run |",
        "| --- | --- | --- |",
    ]
    for name in sorted(p.name for p in (out / "phases").iterdir()):
        lines.append(f"| `{name}` | {FAULT_DOC.get(name, '?')} | {outcomes.get(name, '?')} |")
    lines += ["", "## What the faults looked like", ""]
    lines += [f"- `{k}`: {v}." for k, v in OBSERVED.items()]
    lines += ["", "Note: task/container IDs, addresses and marks differ between phases (repairs recreate tasks);",
              "each phase's `facts-before.json` says which ones the fault was aimed at.", ""]
    (dest / "README.md").write_text("\n".join(lines))


# ------------------------------------------------------------------------------------------ CLI
def _du(path: Path) -> str:
    p = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True)
    return p.stdout.split("\t")[0] if p.returncode == 0 else "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=None)
    r.add_argument("--faults", default=None, help="space-separated subset of: " + " ".join(ALL_FAULTS))
    r.add_argument("--engines", default=None, help="engine labels run after 20.10 (default: SWARMSCOPE_VM_ENGINES "
                   "or '26.1 28'; '' for none)")
    m3 = sub.add_parser("export-mesh3")
    m3.add_argument("run_out", type=Path)
    e = sub.add_parser("export-fixtures")
    e.add_argument("run_out", type=Path)
    e.add_argument("--phases", default=None, help="only these phases (space-separated), replacing just them")
    sub.add_parser("status")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            img = ensure_image()
            print(img.dir)
        elif a.cmd == "run":
            img = ensure_image()
            out = a.out or cache_dir() / "last-run"
            if a.engines is not None:
                os.environ["SWARMSCOPE_VM_ENGINES"] = a.engines
            dirs, missing = engines()
            for m in missing:
                log(f"not run: {m}")
            res = boot(img, out, faults=a.faults.split() if a.faults is not None else None, engine_dirs=dirs)
            print(json.dumps({"out": str(res.out), "qemu_rc": res.qemu_rc, "scenario_rc": res.scenario_rc,
                              "seconds": round(res.seconds), "phases": phases(out)}, indent=2))
            return 0 if res.ok else 1
        elif a.cmd == "export-mesh3":
            files = export_mesh3(a.run_out)
            print(f"{len(files)} files into {MESH3_FIXTURES}")
        elif a.cmd == "export-fixtures":
            files = export_fixtures(a.run_out, only=a.phases.split() if a.phases else None)
            print(f"{len(files)} files into {FIXTURES}")
        elif a.cmd == "status":
            c = cache_dir()
            print(f"cache {c}: {_du(c) if c.exists() else 'absent'}")
            print(f"image key {image_key()}")
            for p in sorted(c.iterdir()) if c.exists() else []:
                print(f"  {p.name}: {_du(p)}")
    except VMUnavailable as exc:
        print(f"VM tier unavailable: {exc}", file=sys.stderr)
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
