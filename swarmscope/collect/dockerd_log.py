"""Known mesh errors in the recent dockerd log, read-only.

From the journal (``journalctl -u docker.service --since -2h -o cat --no-pager``, only on a
systemd-booted host with journalctl and a loaded docker.service unit, through the Recorder: timed
out, output bounded) or from a file the user names (``--dockerd-log FILE``: only its last
``FILE_TAIL`` bytes). Only lines matching the messages below are kept, capped: they corroborate
findings, they are never a finding by themselves (a log line can be hours older than the fault).

The messages, as moby writes them (v20.10.24 and v28.5.2):

- ``Could not get ipvs family information from the kernel`` (vendor/github.com/moby/ipvs/netlink*.go)
- ``Failed to add firewall mark rule in sbox %.7s (%.7s): %v`` (libnetwork/service_linux.go); on 20.10
  the error is ``reexec failed: exit status 8`` (fwmarker: ``set up rule failed``) or ``exit status 7``
  (``Failed to write to /proc/sys/net/ipv4/vs/conntrack``, logged by the fwmarker child)
- iptables' own ``Couldn't load match `ipvs'`` inside ``set up rule failed, [...]`` (no libxt_ipvs or xt_ipvs)
- ``failed to find a load balancer IP to use for network: %v`` (daemon/network.go)
- ``Failed to create a new service for vip`` / ``Failed to create real server`` (libnetwork/service_linux.go)
"""

from __future__ import annotations

import os
import re

from swarmscope.collect.runner import Recorder
from swarmscope.model import DockerdLog, LogMatch

JOURNAL_ARGV = ["journalctl", "-u", "docker.service", "--since", "-2h", "-o", "cat", "--no-pager", "-n", "20000"]
FILE_TAIL = 256 * 1024  # bytes read from the end of a --dockerd-log file
MAX_MATCHES = 40
MAX_PER_KIND = 8
MAX_LINE = 400

#: kind -> pattern (case-insensitive); the order is the order of the list
PATTERNS: dict[str, re.Pattern] = {
    "ipvs-family": re.compile(r"could not get ipvs family information from the kernel", re.I),
    "no-ipvs-match": re.compile(r"couldn't load match [`'\"]?ipvs", re.I),
    "vs-conntrack": re.compile(r"/proc/sys/net/ipv4/vs/conntrack", re.I),
    "fwmark-failed": re.compile(
        r"failed to add firewall mark rule|reexec failed: exit status 8|set up rule failed", re.I
    ),
    "no-lb-ip": re.compile(r"failed to find a load balancer ip to use for network", re.I),
    "ipvs-service-failed": re.compile(r"failed to create a new service for vip", re.I),
    "real-server-failed": re.compile(r"failed to create real server", re.I),
}


def match_lines(text: str, source: str) -> DockerdLog:
    log = DockerdLog(source=source)
    per: dict[str, int] = {}
    for line in text.splitlines():
        log.lines_read += 1
        for kind, pat in PATTERNS.items():
            if pat.search(line):
                if per.get(kind, 0) >= MAX_PER_KIND or len(log.matches) >= MAX_MATCHES:
                    log.truncated = True
                else:
                    per[kind] = per.get(kind, 0) + 1
                    log.matches.append(LogMatch(kind, line.strip()[:MAX_LINE]))
                break  # one kind per line: the first that matches
    return log


def read_file(path: str, tail: int = FILE_TAIL) -> DockerdLog:
    source = f"file {path} (last {tail // 1024} KiB)"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail))
            data = fh.read(tail)
    except OSError as exc:
        return DockerdLog(source=source, available=False, reason=f"cannot read {path}: {exc.strerror or exc}")
    text = data.decode("utf-8", "replace")
    if size > tail:
        text = text.split("\n", 1)[1] if "\n" in text else ""  # the first line is cut
    log = match_lines(text, source)
    log.truncated = log.truncated or size > tail
    return log


def read_journal(rec: Recorder) -> DockerdLog:
    source = "journalctl -u docker.service --since -2h"
    if not os.path.isdir("/run/systemd/system"):
        reason = "not a systemd-booted host (no /run/systemd/system): no journal to read"
        rec.skipped("dockerd log (journal)", "host", reason, JOURNAL_ARGV)
        return DockerdLog(source=source, available=False, reason=reason)
    unit = rec.run(
        "docker.service unit", "host", ["systemctl", "show", "--property=LoadState", "--value", "docker.service"]
    )
    if unit.ok and unit.stdout.strip() != "loaded":
        reason = (
            f"docker.service is not a loaded unit here ({unit.stdout.strip() or 'unknown'}): pass --dockerd-log FILE"
        )
        return DockerdLog(source=source, available=False, reason=reason)
    res = rec.run("dockerd log (journal)", "host", JOURNAL_ARGV)
    if not res.ok:
        return DockerdLog(source=source, available=False, reason=res.reason)
    return match_lines(res.stdout, source)


def read_dockerd_log(rec: Recorder, path: str | None) -> DockerdLog:
    if path:
        with rec.step(f"read dockerd log {path}", "host") as step:
            log = read_file(path)
            if not log.available:
                step.status, step.reason = "failed", log.reason
        return log
    return read_journal(rec)
