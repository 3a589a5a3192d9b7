"""Hostile or damaged --from input, and option values (issue #15): exit 2 and one line, never a traceback
or exit 70, bounded memory and time."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import rawsnap

from swarmscope.cli import main
from swarmscope.dump import make_dump

REPO = Path(__file__).resolve().parents[2]


def run(*args, timeout=60, stdin=None):
    return subprocess.run([sys.executable, "-m", "swarmscope", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, stdin=stdin if stdin is not None else subprocess.DEVNULL)


def one_line_exit_2(cp) -> None:
    assert cp.returncode == 2, (cp.returncode, cp.stderr[-500:])
    assert "Traceback" not in cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert cp.stderr.startswith("swarmscope: error: ") or cp.stderr.startswith("Usage:") or "Error:" in cp.stderr


def _valid_doc() -> dict:
    return json.loads(json.dumps(make_dump([rawsnap.lab_vm()])))


def _bundle(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zero_bomb(path: Path, gib: float = 1.0) -> None:
    """A tar.gz whose dump.json is ``gib`` GiB of zeros (a few MB on disk), written as a stream."""
    size = int(gib * (1 << 30))
    with gzip.open(path, "wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("swarmscope-report/dump.json")
        info.size = size
        gz.write(info.tobuf())
        chunk = b"\0" * (1 << 22)
        for _ in range(size // len(chunk)):
            gz.write(chunk)
        gz.write(b"\0" * (1024 * 2))


def test_zip_bomb_is_refused_quickly_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    _zero_bomb(bomb)
    assert bomb.stat().st_size < 8 << 20
    t0 = time.monotonic()
    cp = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "swarmscope", "check", "--from", str(bomb)],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
    took = time.monotonic() - t0
    lines = [l for l in cp.stderr.strip().splitlines() if not l.startswith("Command exited")]  # GNU time's own
    peak_mb = int(lines[-1]) / 1024
    cp.stderr = "\n".join(lines[:-1]) + "\n"
    print(f"\nzip bomb: refused in {took:.1f}s, peak RSS {peak_mb:.0f} MB: {lines[0]}")
    one_line_exit_2(cp)
    assert "larger than the limit" in cp.stderr and "--max-input" in cp.stderr
    assert peak_mb < 200 and took < 20


def test_size_limit_and_the_option_to_raise_it(tmp_path):
    doc = _valid_doc()
    doc["padding"] = "x" * (2 << 20)  # 2 MiB: over a 1 MiB limit
    p = tmp_path / "big.json"
    p.write_text(json.dumps(doc))
    cp = run("check", "--from", str(p), "--max-input", "1")
    one_line_exit_2(cp)
    assert "larger than the limit of 1 MiB" in cp.stderr and "--max-input" in cp.stderr
    assert run("check", "--from", str(p), "--max-input", "8").returncode in (0, 1)
    # and through standard input
    with open(p) as fh:
        one_line_exit_2(run("check", "--from", "-", "--max-input", "1", stdin=fh))


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "socket"])
def test_non_regular_files_are_refused_at_once(tmp_path, kind):
    if kind == "dev-zero":
        path = "/dev/zero"
    elif kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)  # no writer: opening it blocking would wait forever
    elif kind == "directory":
        path = str(tmp_path)
    else:
        import socket

        path = str(tmp_path / "sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
    t0 = time.monotonic()
    cp = run("check", "--from", path, timeout=30)
    assert time.monotonic() - t0 < 20
    one_line_exit_2(cp)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("name,content", [
    ("deep-list.json", _deep(100000)),
    ("deep-in-field.json", None),  # filled below: a valid dump with a deep value in a string field
    ("long-int.json", '{"schema": "swarmscope/dump", "version": ' + "9" * 5000 + "}"),
    ("long-int-field.json", None),
    ("not-utf8.json", b"\xff\xfe\x00garbage"),
    ("nan.json", '{"schema": "swarmscope/snapshot", "version": 1, "node": {"hostname": "h", "kernel_release": "k"},'
                 ' "duration_ms": NaN}'),
    ("truncated.json", None),
    ("gzip-garbage.tar.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 50),
    ("no-dump.tar.gz", None),
    ("empty.json", ""),
    ("bom.json", "\ufeff{}"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_damaged_and_hostile_corpus(tmp_path, name, content):
    if name == "deep-in-field.json":
        doc = _valid_doc()
        text = json.dumps(doc).replace('"hostname": "lab-vm"', '"hostname": ' + _deep(5000), 1)
        content = text
    elif name == "long-int-field.json":
        content = json.dumps(_valid_doc()).replace('"prefixlen": 24', '"prefixlen": ' + "9" * 5000, 1)
    elif name == "truncated.json":
        content = json.dumps(_valid_doc())[:5000]
    elif name == "no-dump.tar.gz":
        content = _bundle({"swarmscope-report/other.txt": b"x"})
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    for cmd in (["check"], ["explain", "--all"], ["dump"]):
        one_line_exit_2(run(*cmd, "--from", str(p)))


def _type_changes(doc: dict, rng: random.Random, n: int):
    """n copies of ``doc``, each with one field's value replaced by a value of another JSON type."""
    paths = []

    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                paths.append(path + [k])
                walk(x, path + [k])
        elif isinstance(v, list):
            for i, x in enumerate(v[:3]):
                paths.append(path + [i])
                walk(x, path + [i])

    walk(doc["nodes"], ["nodes"])
    walk(doc["failed_nodes"], ["failed_nodes"])
    others = [None, 0, -1, 10**30, 1.5, True, "", "x", "\u00b2", [], [1, "a"], {}, {"a": [None]}]
    for _ in range(n):
        d = copy.deepcopy(doc)
        path = rng.choice(paths)
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        old = parent[path[-1]]
        new = rng.choice([o for o in others if type(o) is not type(old)])
        parent[path[-1]] = new
        yield ".".join(map(str, path)), d


def test_one_field_type_changes_give_exit_2_naming_the_field_never_70(tmp_path, capsys):
    doc = _valid_doc()
    doc["failed_nodes"] = [{"node": "w2", "node_id": "abc", "kind": "timeout", "reason": "timed out"}]
    rng = random.Random(1000)
    codes: dict[int, int] = {}
    p = tmp_path / "d.json"
    for where, d in _type_changes(doc, rng, 150):
        p.write_text(json.dumps(d))
        with pytest.raises(SystemExit) as exc:
            main(["check", "--from", str(p)])
        code = int(exc.value.code)
        err = capsys.readouterr().err
        codes[code] = codes.get(code, 0) + 1
        assert code != 70, f"{where}: {err}"
        assert "Traceback" not in err
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and err.startswith("swarmscope: error: "), (where, err)
    assert codes.get(2, 0) > 100, codes


@pytest.mark.parametrize("opt,value", [("--timeout", "nan"), ("--timeout", "inf"), ("--docker-timeout", "nan"),
                                       ("--dns-timeout", "-inf"), ("--node-timeout", "nan")])
def test_nan_and_infinite_timeouts_are_usage_errors(opt, value):
    cp = run("check", opt, value)
    assert cp.returncode == 2 and "Traceback" not in cp.stderr, cp.stderr
    assert ("finite" if value == "nan" else "range") in cp.stderr, cp.stderr


def test_nan_interval_is_refused():
    cp = run("agent", "--interval", "nan")
    assert cp.returncode == 2 and "finite" in cp.stderr, cp.stderr
    from swarmscope import agent as ag
    from swarmscope.errors import UsageError

    with pytest.raises(UsageError):
        ag._check_interval(float("nan"))
    with pytest.raises(UsageError):
        ag._check_interval(1.0)
