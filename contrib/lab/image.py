#!/usr/bin/env python3
"""Build the swarmscope image offline, for the multi-node lab.

Two layers, both cached under ``/var/cache/swarmscope-lab`` (override with
``SWARMSCOPE_LAB_CACHE``):

1. a base root filesystem made from Debian packages (``debootstrap
   --variant=minbase bookworm`` with python3, iptables, ipvsadm, iproute2,
   util-linux), kept as a tarball keyed on its recipe, and ``docker import``-ed;
2. a wheelhouse (``pip wheel .`` of this checkout, which brings the pinned
   dependencies' wheels, plus pip's own wheel), keyed on the sources, and
   ``docker build`` with contrib/Dockerfile (``BASE`` build argument) on top.

The image is then ``docker save``-d once and ``docker load``-ed into each node.

Command line (root): ``python3 contrib/lab/image.py base|wheels`` prebuilds a cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "swarmscope-lab/base:bookworm"
IMAGE = "swarmscope:lab"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "iptables", "ipvsadm", "iproute2", "util-linux")
#: what the base is made from; the cache key
BASE_RECIPE = f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {SUITE} v1"
#: files whose content makes the wheelhouse and the image
SOURCE_GLOBS = ("pyproject.toml", "swarmscope/**/*.py", "swarmscope/schema/*.json", "contrib/Dockerfile",
                "contrib/lab/image.py")
DEBOOTSTRAP_TIMEOUT = 900.0
#: label on the built image: the sources key it was built from
KEY_LABEL = "io.swarmscope.lab.sources"
BUILD_TIMEOUT = 600.0


class ImageError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"swarmlab: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    d = Path(os.environ.get("SWARMSCOPE_LAB_CACHE") or "/var/cache/swarmscope-lab")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _run(argv, timeout, **kw) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"timed out after {timeout:.0f}s: {' '.join(map(str, argv))}") from exc
    if cp.returncode != 0:
        err = cp.stderr.decode(errors="replace") if isinstance(cp.stderr, bytes) else cp.stderr
        raise ImageError(f"{' '.join(map(str, argv))} exited {cp.returncode}: {err.strip()[-2000:]}")
    return cp


def base_tarball() -> Path:
    """The base root filesystem tarball, made once per recipe (debootstrap needs Debian's mirror)."""
    key = hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]
    out = cache_dir() / f"base-{SUITE}-{key}.tar"
    if out.is_file() and out.stat().st_size > 0:
        return out
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap not found (apt-get install debootstrap; see contrib/install-deps.sh)")
    started = time.monotonic()
    _log(f"building the base image root filesystem ({BASE_RECIPE}); cached in {out}")
    with tempfile.TemporaryDirectory(prefix="swarmscope-base-", dir=cache_dir()) as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(root)],
             DEBOOTSTRAP_TIMEOUT)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        part = out.with_suffix(".tar.part")
        _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(part), "."], BUILD_TIMEOUT)
        part.rename(out)
    _log(f"base root filesystem built in {time.monotonic() - started:.0f}s ({out.stat().st_size >> 20} MiB)")
    return out


def sources_key() -> str:
    h = hashlib.sha256()
    for pattern in SOURCE_GLOBS:
        for p in sorted(REPO_ROOT.glob(pattern)):
            if "__pycache__" in p.parts:
                continue
            h.update(str(p.relative_to(REPO_ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(BASE_RECIPE.encode())
    return h.hexdigest()[:12]


def wheelhouse() -> Path:
    """This checkout's wheel and its dependencies' wheels (from PyPI), plus pip's."""
    key = sources_key()
    d = cache_dir() / f"wheels-{key}"
    if (d / ".complete").is_file():
        return d
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    started = time.monotonic()
    # reuse the dependencies' wheels of an earlier wheelhouse: only the project's own wheel changes
    for old in sorted(cache_dir().glob("wheels-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        if old != d and (old / ".complete").is_file():
            for w in old.glob("*.whl"):
                if not w.name.startswith("swarmscope-"):
                    shutil.copy2(w, d / w.name)
            break
    with tempfile.TemporaryDirectory(prefix="swarmscope-build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "*.egg-info", "build", "dist", "tests", ".pytest_cache", "wheelhouse"))
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--find-links", str(d), "-w", str(d), str(src)],
             BUILD_TIMEOUT)
    if not list(d.glob("pip-*.whl")):
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "-d", str(d), "pip"],
             BUILD_TIMEOUT)
    (d / ".complete").write_text(key + "\n")
    for old in cache_dir().glob("wheels-*"):  # keep the cache from growing
        if old != d:
            shutil.rmtree(old, ignore_errors=True)
    _log(f"wheelhouse {d.name} ready in {time.monotonic() - started:.0f}s")
    return d


def image_tarball(docker_host: str) -> Path:
    """``docker save`` of the lab image, built on the engine at docker_host when not cached."""
    key = sources_key()
    out = cache_dir() / f"image-{key}.tar"
    if out.is_file() and out.stat().st_size > 0:
        return out
    dk = ["docker", "-H", docker_host]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_HOST", None)
    started = time.monotonic()
    base = base_tarball()
    if subprocess.run([*dk, "image", "inspect", BASE_IMAGE], capture_output=True, env=env).returncode != 0:
        with open(base, "rb") as fh:
            _run([*dk, "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE], BUILD_TIMEOUT, stdin=fh, env=env)
    wheels = wheelhouse()
    with tempfile.TemporaryDirectory(prefix="swarmscope-ctx-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(wheels, ctx / "wheelhouse", ignore=shutil.ignore_patterns(".complete"))
        shutil.copy2(REPO_ROOT / "contrib" / "Dockerfile", ctx / "Dockerfile")
        _run([*dk, "build", "-q", "--build-arg", f"BASE={BASE_IMAGE}", "--label", f"{KEY_LABEL}={key}",
              "-t", IMAGE, str(ctx)], BUILD_TIMEOUT, env=env)
    part = out.with_suffix(".tar.part")
    _run([*dk, "save", "-o", str(part), IMAGE], BUILD_TIMEOUT, env=env)
    part.rename(out)
    for old in cache_dir().glob("image-*.tar"):
        if old != out:
            old.unlink(missing_ok=True)
    _log(f"image {IMAGE} built in {time.monotonic() - started:.0f}s ({out.stat().st_size >> 20} MiB)")
    return out


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "base"
    try:
        print(base_tarball() if what == "base" else wheelhouse())
    except ImageError as exc:
        print(f"image.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
