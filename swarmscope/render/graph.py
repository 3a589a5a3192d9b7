"""The path picture as plain boxes and arrows, shared by the Mermaid and DOT renderers.

Pure layout of what the path map already says (no checks, no inference):
published port -> node -> each hop in the order the correlator listed them ->
the real servers with their tasks and nodes; VIP paths per network the same
way, starting from the DNS name. A hop's status and findings come from the
ServicePath as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmscope.correlate.types import Backend, Hop, NodePath, ServicePath

BROKEN = ("missing", "mismatch", "broken", "stale", "foreign", "suspect")
DOUBT = ("unknown", "weight0", "lingering")


def style_of(status: str) -> str:
    """ok | broken | doubt | na: how a status is drawn."""
    if status in BROKEN:
        return "broken"
    if status in DOUBT:
        return "doubt"
    if status == "ok":
        return "ok"
    return "na"


@dataclass
class Box:
    id: str
    lines: list[str]
    style: str  # ok | broken | doubt | na | start
    shape: str = "box"  # box | round (start points) | task


@dataclass
class Arrow:
    src: str
    dst: str
    style: str  # ok | broken | doubt | na | aux
    label: str = ""


@dataclass
class Group:
    id: str
    title: str
    style: str
    boxes: list[Box] = field(default_factory=list)


@dataclass
class Picture:
    title: str
    groups: list[Group] = field(default_factory=list)
    loose: list[Box] = field(default_factory=list)  # start points, outside any group
    arrows: list[Arrow] = field(default_factory=list)


def _hop_box(bid: str, h: Hop) -> Box:
    lines = [h.label + (" (aside)" if h.aux else ""), h.status.upper() if h.status != "ok" else "ok"]
    if h.findings:
        lines.append("finding: " + ", ".join(h.findings))
    return Box(bid, lines, style_of(h.status))


def _backend_box(bid: str, b: Backend) -> Box:
    addr = b.address + (f":{b.port}" if b.port else "")
    who = f"task {b.task}" if b.task else "no task"
    lines = [addr, who + (f" on {b.node}" if b.node else ""), b.status]
    return Box(bid, lines, style_of(b.status), "task")


def _verdict(np: NodePath) -> str:
    if np.verdict == "ok":
        return f"node {np.node}: serves"
    if np.verdict == "broken":
        return f"node {np.node}: BROKEN at {np.broken_at}"
    return f"node {np.node}: {np.verdict}" + (f" ({np.reason})" if np.reason else "")


def _node_path(pic: Picture, gid: str, start: str, np: NodePath, first_label: str = "") -> None:
    g = Group(gid, _verdict(np), style_of(np.verdict))
    pic.groups.append(g)
    prev, prev_label = start, first_label
    last_main = start
    for i, h in enumerate(np.hops):
        b = _hop_box(f"{gid}h{i}", h)
        g.boxes.append(b)
        if h.aux:
            pic.arrows.append(Arrow(last_main, b.id, "aux"))
            continue
        pic.arrows.append(Arrow(prev, b.id, b.style if b.style != "ok" else "ok", prev_label))
        prev, prev_label, last_main = b.id, "", b.id
    for j, be in enumerate(np.backends):
        b = _backend_box(f"{gid}b{j}", be)
        g.boxes.append(b)
        pic.arrows.append(Arrow(last_main, b.id, b.style))


def picture(sp: ServicePath, node: str | None = None, prefix: str = "s") -> Picture:
    """The boxes and arrows of one service's paths (only ``node``'s, when given)."""
    pic = Picture(title=f"service {sp.name} ({sp.mode}, endpoint mode {sp.endpoint_mode})")
    for pi, pp in enumerate(sp.ports):
        start = f"{prefix}p{pi}"
        pic.loose.append(
            Box(
                start, [f"published {pp.protocol}/{pp.published}", f"-> {pp.target} ({pp.mode} mode)"], "start", "round"
            )
        )
        for ni, np in enumerate(pp.nodes):
            if node and np.node != node:
                continue
            _node_path(pic, f"{start}n{ni}", start, np, f"to node {np.node}")
    for vi, vp in enumerate(sp.vip_paths):
        start = f"{prefix}v{vi}"
        head = f"VIP {vp.vip}" if vp.vip else "DNS round robin (no VIP)"
        pic.loose.append(Box(start, [f"{sp.name} on network {vp.network}", head], "start", "round"))
        if not vp.nodes:
            pic.loose.append(Box(f"{start}none", ["no node with this network in the data"], "doubt"))
            pic.arrows.append(Arrow(start, f"{start}none", "doubt"))
        for ni, np in enumerate(vp.nodes):
            if node and np.node != node:
                continue
            _node_path(pic, f"{start}n{ni}", start, np, f"from a task on {np.node}")
    if not sp.ports and not sp.vip_paths:
        pic.loose.append(Box(f"{prefix}none", [f"service {sp.name}: no published port and no VIP path"], "na"))
    return pic
