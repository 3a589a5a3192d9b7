#!/usr/bin/env python3
"""Docker engines from Debian's archive, cached for the lab (issue #11).

``apt-get download docker.io`` (and ``docker-cli`` where the suite splits the
CLI out) from one Debian suite, with a sources list, state and cache of our
own -- the machine's apt configuration, lists and dpkg database are never
read or written -- then ``dpkg-deb -x`` into::

    /var/cache/swarmscope-engines/<exact Debian version>/usr/{sbin,bin}/...
    /var/cache/swarmscope-engines/<exact Debian version>/ENGINE.json

keyed on the exact package version (``SWARMSCOPE_ENGINE_CACHE`` moves the
root). Nothing is installed: the lab puts that tree's ``usr/sbin`` and
``usr/bin`` first on the PATH of its dockerd (``swarmlab.py --engine``).

Command line (root)::

    python3 contrib/lab/engine_cache.py fetch 26.1     # or trixie, 28, sid, 20.10, bookworm
    python3 contrib/lab/engine_cache.py path 28        # the cached dockerd only, no network
    python3 contrib/lab/engine_cache.py get 28         # the cached one, else fetch it
    python3 contrib/lab/engine_cache.py list

``fetch`` prints the path of the unpacked dockerd. When the suite's lists
cannot be fetched (no network), a copy cached earlier for that suite is used;
without one the command fails with the reason (exit 1).

What the unpacked engine uses from this (bookworm) machine: containerd, runc,
``docker-init`` (tini-static, package tini) and iptables. Its own
``docker-proxy`` comes with it (usr/sbin). The 26.1 and 28.x CLIs come in
``docker-cli`` and are unpacked beside dockerd, but the lab keeps using the
machine's docker CLI (20.10, API 1.41), which negotiates the API version down
with a newer daemon (26.1 and 28.x still accept API 1.24 and up), so no
``DOCKER_API_VERSION`` is needed.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROOT = "/var/cache/swarmscope-engines"
#: SWARMSCOPE_ENGINE_MIRROR overrides it (e.g. a snapshot.debian.org URL)
MIRROR = os.environ.get("SWARMSCOPE_ENGINE_MIRROR") or "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: engine label -> Debian suite whose docker.io it is
SUITES = {"20.10": "bookworm", "26.1": "trixie", "28": "sid"}
LABELS = {suite: label for label, suite in SUITES.items()}
APT_TIMEOUT = 600.0


class EngineError(RuntimeError):
    """The engine cannot be fetched or found; the message says why."""


def root() -> Path:
    return Path(os.environ.get("SWARMSCOPE_ENGINE_CACHE") or DEFAULT_ROOT)


def suite_of(name: str) -> str:
    """'26.1' / 'trixie' / '28' / '28.5' -> the Debian suite."""
    if name in SUITES.values():
        return name
    if name in SUITES:
        return SUITES[name]
    for label, suite in SUITES.items():
        if name.startswith(label + "."):
            return suite
    raise EngineError(f"unknown engine {name!r}: one of {', '.join([*SUITES, *SUITES.values()])}")


def _run(argv: list[str], timeout: float = APT_TIMEOUT, cwd: Path | None = None) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise EngineError(f"not found: {argv[0]}") from exc
    if cp.returncode != 0:
        raise EngineError(f"{' '.join(argv[:1] + argv[-3:])} exited {cp.returncode}: {cp.stderr.strip()[-1500:]}")
    return cp.stdout


class AptWorkspace:
    """apt-get/apt-cache with a sources list, state, cache and (empty) dpkg status of their own."""

    def __init__(self, suite: str, base: Path | None = None) -> None:
        self.suite = suite
        self.dir = (base or root()) / "apt" / suite
        self.sources = self.dir / "sources.list"
        self.status = self.dir / "status"

    def options(self) -> list[str]:
        d = self.dir
        return ["-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State={d / 'state'}", "-o", f"Dir::State::status={self.status}",
                "-o", f"Dir::Cache={d / 'cache'}", "-o", "Dir::Etc::Preferences=/dev/null",
                "-o", "Dir::Etc::PreferencesParts=/dev/null",
                "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=2",
                "-o", "Debug::NoLocking=1"]

    def prepare(self) -> None:
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        signed = f" [signed-by={KEYRING}]" if os.path.exists(KEYRING) else ""
        self.sources.write_text(f"deb{signed} {MIRROR} {self.suite} main\n")
        if not self.status.exists():
            self.status.write_text("")

    def update(self) -> None:
        self.prepare()
        _run(["apt-get", *self.options(), "-q", "--error-on=any", "update"])  # a failed fetch fails

    def candidate(self, package: str) -> str | None:
        """The suite's version of package (from lists fetched by update), or None."""
        if not (self.dir / "state" / "lists").is_dir():
            return None
        try:
            out = _run(["apt-cache", *self.options(), "policy", package], timeout=120)
        except EngineError:
            return None
        m = re.search(r"Candidate:\s*(\S+)", out)
        return m.group(1) if m and m.group(1) != "(none)" else None

    def download(self, packages: list[str], into: Path) -> list[Path]:
        _run(["apt-get", *self.options(), "-q", "download", *packages], cwd=into)
        return sorted(into.glob("*.deb"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dockerd_of(tree: Path) -> Path | None:
    for rel in ("usr/sbin/dockerd", "usr/bin/dockerd"):
        if (tree / rel).is_file():
            return tree / rel
    return None


def cached(name: str) -> Path | None:
    """The newest engine tree cached for this suite (no network), or None."""
    suite = suite_of(name)
    best: tuple[float, Path] | None = None
    base = root()
    for meta in base.glob("*/ENGINE.json") if base.is_dir() else []:
        try:
            doc = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if doc.get("suite") == suite and dockerd_of(meta.parent):
            key = (doc.get("fetched_at") or 0, meta.parent)
            if best is None or key > best:
                best = key
    return best[1] if best else None


def _fix_init_link(tree: Path) -> None:
    """docker.io's usr/bin/docker-init -> tini-static dangles in the unpacked tree: point it at the machine's."""
    link = tree / "usr/bin/docker-init"
    if link.is_symlink() and not link.exists():
        link.unlink()
        for cand in ("/usr/bin/tini-static", "/usr/bin/docker-init"):
            if os.path.exists(cand):
                link.symlink_to(os.path.realpath(cand))
                break


def fetch(name: str) -> Path:
    """The engine tree for this suite: fetched (if the archive has a version not cached yet) or cached."""
    suite = suite_of(name)
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    ws = AptWorkspace(suite, base)
    try:
        ws.update()
    except EngineError as exc:
        old = cached(suite)
        if old:
            print(f"engine_cache: apt lists for {suite} not fetched ({exc}); using the cached {old.name}",
                  file=sys.stderr)
            return old
        raise EngineError(f"cannot fetch Debian {suite}'s package lists: {exc}") from exc
    version = ws.candidate("docker.io")
    if not version:
        raise EngineError(f"Debian {suite} has no docker.io for this architecture")
    tree = base / version
    if dockerd_of(tree) and (tree / "ENGINE.json").is_file():
        return tree
    packages = ["docker.io"]
    cli = ws.candidate("docker-cli")
    if cli:
        packages.append("docker-cli")
    with tempfile.TemporaryDirectory(prefix=f".{version}.", dir=base) as tmp:
        dl = Path(tmp) / "debs"
        dl.mkdir()
        unpack = Path(tmp) / "tree"
        debs = ws.download(packages, dl)
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(unpack)], timeout=300)
        # docs and man pages are not needed to run it
        shutil.rmtree(unpack / "usr/share", ignore_errors=True)
        _fix_init_link(unpack)
        if not dockerd_of(unpack):
            raise EngineError(f"docker.io {version} from {suite} has no usr/sbin/dockerd")
        (unpack / "ENGINE.json").write_text(json.dumps({
            "suite": suite,
            "label": LABELS.get(suite),
            "version": version,
            "mirror": MIRROR,
            "packages": {d.name: _sha256(d) for d in debs},
            "fetched_at": time.time(),
        }, indent=2) + "\n")
        if tree.exists():
            shutil.rmtree(tree)
        os.rename(unpack, tree)
    return tree


def path_dirs(tree: Path) -> list[str]:
    """What goes first on dockerd's PATH for this engine."""
    return [str(tree / d) for d in ("usr/sbin", "usr/bin") if (tree / d).is_dir()]


def resolve(spec: str, download: bool = True) -> Path:
    """An engine spec -> its tree: a directory (tree, or the dir holding dockerd), a dockerd
    path, or a label/suite: the copy cached for that suite, else (when download) fetched.
    A cached copy is used without asking the archive; ``fetch`` refreshes it."""
    p = Path(spec)
    if p.is_file() and p.name == "dockerd":
        p = p.parent
    if p.is_dir():
        if dockerd_of(p):
            return p
        if (p / "dockerd").is_file():  # a bin directory
            return p.parent.parent if p.parent.name == "usr" else p
        raise EngineError(f"{spec}: no dockerd in it (usr/sbin/dockerd, usr/bin/dockerd or dockerd)")
    if "/" in spec:
        raise EngineError(f"{spec}: no such directory")
    tree = cached(spec)
    if tree is None and download:
        return fetch(spec)
    if tree is None:
        raise EngineError(f"engine {spec} ({suite_of(spec)}) is not cached under {root()}")
    return tree


def dockerd_path_dirs(spec: str, download: bool = True) -> list[str]:
    """PATH entries that make ``dockerd`` the engine spec names (for the lab)."""
    tree = resolve(spec, download)
    if (tree / "dockerd").is_file():
        return [str(tree)]
    return path_dirs(tree)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="engine_cache.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("fetch", "get", "path", "list"))
    ap.add_argument("engine", nargs="?", help="20.10 | 26.1 | 28 | bookworm | trixie | sid")
    opts = ap.parse_args(argv)
    try:
        if opts.command == "list":
            for meta in sorted(root().glob("*/ENGINE.json")):
                doc = json.loads(meta.read_text())
                print(f"{doc.get('suite')}\t{doc.get('version')}\t{dockerd_of(meta.parent)}")
            return 0
        if not opts.engine:
            ap.error("which engine?")
        if opts.command == "fetch":
            tree = fetch(opts.engine)
        else:
            tree = resolve(opts.engine, download=opts.command == "get")
        print(dockerd_of(tree))
    except EngineError as exc:
        print(f"engine_cache: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
