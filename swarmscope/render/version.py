"""``swarmscope --version``: the tool, the schemas it writes and reads, the engine generations it has
profiles for (imports no more than those tables: the option answers at once)."""

from __future__ import annotations

from swarmscope import __version__


def version_text() -> str:
    from swarmscope.dump import DUMP_SCHEMA, DUMP_VERSION
    from swarmscope.engines import PROFILES, SUPPORTED_SINCE
    from swarmscope.model import SNAPSHOT_SCHEMA, SNAPSHOT_VERSION

    names = ", ".join(f"{p.name} (from {p.since})" if p.since.major else p.name for p in PROFILES)
    return (
        f"swarmscope {__version__}\n"
        f"snapshot schema {SNAPSHOT_SCHEMA} version {SNAPSHOT_VERSION}; "
        f"dump schema {DUMP_SCHEMA} version {DUMP_VERSION}\n"
        f"engine profiles: {names}; engines before {SUPPORTED_SINCE} are not judged"
    )
