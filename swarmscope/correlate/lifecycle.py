"""Task lifecycle: which tasks are between states, where the data plane lags on purpose (pure).

dockerd takes a task out of the mesh before it stops it (``DisableService``:
the DNS records go and its real servers get weight 0, then the container stops
and the real servers are deleted), and puts a new task in only as it starts.
Gossip carries both to the other nodes, usually within a second and at worst
at the next full state exchange (30 s). While that happens a
real server can be draining or not yet there, and DNS answers can hold one
address more or less than the running tasks: none of that is a fault while it
lasts. One place decides what "in transition" means.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from swarmscope.model import Service, Task

#: seconds after a task changed state during which the data plane may still lag behind it. Gossip
#: broadcasts a task's endpoint to the nodes at once, but a node that misses the broadcast (it joined the
#: network a moment later, a packet was lost) learns it at the next full state exchange: memberlist's
#: PushPullInterval, 30 s in moby's networkdb (vendor/github.com/hashicorp/memberlist/config.go,
#: DefaultLANConfig), plus the time to apply it. (15 s was too short: a CI run gathered the three-node
#: lab right after its services converged and found the nodes' DNS answers for them differing.)
SETTLE_SECONDS = 45.0
#: states before running: the task is on its way in
STARTING_STATES = frozenset({"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"})
#: service update states during which tasks are replaced on purpose
UPDATING_STATES = frozenset({"updating", "rollback_started"})

_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


@lru_cache(maxsize=65536)
def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 as Docker writes it (nanoseconds, ``Z``) -> aware datetime; None where it does not read."""
    m = _TS.match((text or "").strip())
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7].ljust(7, "0")
    tz = m.group(3) or "Z"
    tz = "+00:00" if tz == "Z" else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
    try:
        dt = datetime.fromisoformat(f"{m.group(1)}{frac}{tz}")
    except ValueError:
        return None
    return dt.astimezone(UTC)


def age(task: Task, now: datetime | None) -> float | None:
    """Seconds the task has been in its current state at ``now``; None where either time is unknown."""
    since = parse_time(task.state_since)
    if since is None or now is None:
        return None
    return (now - since).total_seconds()


def recent(task: Task, now: datetime | None) -> bool:
    a = age(task, now)
    return a is not None and a < SETTLE_SECONDS


#: container states (a worker's own view, without a manager) and what they say of the task
CONTAINER_STATES = {"created": "starting", "restarting": "starting", "paused": "running",
                    "removing": "shutdown", "exited": "shutdown", "dead": "shutdown"}


def draining(task: Task, now: datetime | None) -> bool:
    """On its way out: told to stop and not stopped yet, or stopped a moment ago. A task that is not
    running and whose state has no time (a worker's view: a container gone or exited, an entry
    service discovery still holds) cannot be told apart from one that stopped a moment ago: it is
    taken as on its way out, so an update is never a false alarm."""
    if task.desired_state != "running" and task.state in ("running", *STARTING_STATES):
        return True
    if task.state == "running" or task.state in STARTING_STATES:
        return False
    return task.state_since is None or recent(task, now)


def starting(task: Task, now: datetime | None) -> bool:
    """On its way in: not running yet, or running only a moment ago (other nodes may not know it yet)."""
    if task.desired_state != "running":
        return False
    return task.state in STARTING_STATES or (task.state == "running" and recent(task, now))


def in_transition(task: Task, now: datetime | None) -> bool:
    return draining(task, now) or starting(task, now)


def updating(service: Service) -> bool:
    """An update or rollback replaces the service's tasks right now: any of them may be in transition,
    and the API view (read first) can be a step behind the data plane (read a moment later)."""
    return service.update_state in UPDATING_STATES
