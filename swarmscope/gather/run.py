"""Which nodes a command collects: every node (from a manager) or only this one."""

from __future__ import annotations

from collections.abc import Callable

from swarmscope.collect.snapshot import CollectOptions
from swarmscope.model import Snapshot

WORKER_NOTE = ("note: this node is a worker: only it is collected; run on a manager to see every node "
               "of the swarm (--local silences this note)")


def collect_swarm(opts: CollectOptions, local: bool, image: str, node_timeout: float,
                  say: Callable[[str], None]) -> tuple[list[Snapshot], list[dict]]:
    """(snapshots, failed nodes).

    --local, an engine that is not a swarm manager, or a swarm of one node:
    this node only, collected in-process. Otherwise every node, through a
    global job (see gather.py).
    """
    from swarmscope.collect.snapshot import collect, preflight

    if not local:
        from swarmscope.gather.gather import GatherOptions, gather, probe

        info, nodes = probe(opts.docker_host, opts.docker_timeout)
        if info is not None and info.swarm_state == "active":
            if not info.is_manager:
                say(WORKER_NOTE)
            elif nodes > 1:
                preflight(opts)  # the local part needs root and the netns directory, like collect
                res = gather(GatherOptions(collect=opts, image=image, node_timeout=node_timeout, progress=say),
                             lambda: collect(opts))
                return res.snapshots, res.failed_nodes
    return [collect(opts)], []

