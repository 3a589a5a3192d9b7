"""The path picture as a Mermaid ``flowchart LR`` (renders inside a GitHub issue or comment).

Broken hops are drawn red with a dashed border and a dashed red arrow into
them, with the finding id in the box; doubtful ones (unknown) orange and
dashed; aside hops (aux) hang off a dotted arrow.
"""

from __future__ import annotations

from swarmscope.correlate.types import ServicePath
from swarmscope.render.graph import Box, Picture, picture

CLASSES = {
    "ok": "fill:#eaf7ea,stroke:#2e7d32,color:#1b1b1b",
    "broken": "fill:#fdecea,stroke:#c62828,stroke-width:3px,stroke-dasharray:6 4,color:#b71c1c",
    "doubt": "fill:#fff4e0,stroke:#ef6c00,stroke-width:2px,stroke-dasharray:4 4,color:#1b1b1b",
    "na": "fill:#f2f2f2,stroke:#9e9e9e,color:#555555",
    "start": "fill:#e3f0fc,stroke:#1565c0,color:#0d2c54",
}
LINKS = {
    "broken": "stroke:#c62828,stroke-width:3px,stroke-dasharray:6 4",
    "doubt": "stroke:#ef6c00,stroke-width:2px,stroke-dasharray:4 4",
    "aux": "stroke:#9e9e9e,stroke-dasharray:2 3",
}


# what Mermaid's label syntax would read, as its entity codes
_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;", "\r": " ", "\n": " "}


def escape(text: str) -> str:
    """Text for inside a quoted Mermaid label: entity codes for what the syntax would read."""
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def _label(lines: list[str]) -> str:
    return '"' + "<br/>".join(escape(line) for line in lines) + '"'


def _box(b: Box) -> str:
    if b.shape == "round":
        return f"{b.id}([{_label(b.lines)}])"
    if b.shape == "task":
        return f"{b.id}[/{_label(b.lines)}/]"
    return f"{b.id}[{_label(b.lines)}]"


def _emit(pic: Picture, out: list[str], indent: str) -> None:
    for b in pic.loose:
        out.append(f"{indent}{_box(b)}:::{b.style}")
    for g in pic.groups:
        out.append(f"{indent}subgraph {g.id}[{_label([g.title])}]")
        out.append(f"{indent}  direction LR")
        for b in g.boxes:
            out.append(f"{indent}  {_box(b)}:::{b.style}")
        out.append(f"{indent}end")


def render_mermaid(services: list[ServicePath], node: str | None = None) -> str:
    """One flowchart for ``services`` (a subgraph per service when there are several)."""
    out = ["flowchart LR"]
    for name, css in CLASSES.items():
        out.append(f"  classDef {name} {css}")
    arrows = []
    for si, sp in enumerate(services):
        pic = picture(sp, node, prefix=f"s{si}")
        if len(services) > 1:
            out.append(f"  subgraph s{si}[{_label([pic.title])}]")
            out.append("    direction LR")
            _emit(pic, out, "    ")
            out.append("  end")
        else:
            out.insert(1, f"  %% {pic.title}".replace("\n", " "))
            _emit(pic, out, "  ")
        arrows.extend(pic.arrows)
    link_styles: dict[str, list[int]] = {}
    for i, a in enumerate(arrows):
        label = f"|{_label([a.label])}|" if a.label else ""
        if a.style == "aux":
            out.append(f"  {a.src} -.-> {a.dst}")
        elif a.style in ("broken", "doubt"):
            out.append(f"  {a.src} -.->{label} {a.dst}")
        else:
            out.append(f"  {a.src} -->{label} {a.dst}")
        if a.style in LINKS:
            link_styles.setdefault(a.style, []).append(i)
    for style, idx in link_styles.items():
        out.append(f"  linkStyle {','.join(map(str, idx))} {LINKS[style]}")
    return "\n".join(out) + "\n"


def for_explain(analysis, services: list[ServicePath], view) -> str:
    """``explain --format mermaid``."""
    return render_mermaid(services, node=view.node)
