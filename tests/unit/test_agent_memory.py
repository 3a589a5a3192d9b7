"""The standing agent's memory between collections (issue #17: idle under 60 MB on a 98-namespace node).

Each collection reads every namespace in a thread of its own; glibc gives threads malloc arenas of their own
and what is freed there fragments, so the idle agent grew round after round. It limits itself to
``agent.AGENT_ARENAS`` arenas before any thread starts (measured in README "Benchmark")."""

from __future__ import annotations

from swarmscope import agent
from swarmscope.collect.snapshot import CollectOptions


def test_glibc_takes_the_arena_limit():
    assert agent._limit_arenas() is True  # this machine's libc is glibc


def test_the_standing_agent_limits_its_arenas_before_it_starts_a_thread(monkeypatch):
    order = []
    monkeypatch.setattr(agent, "_limit_arenas", lambda: order.append("arenas") or True)
    monkeypatch.setattr(agent, "start_server", lambda *a: order.append("server"))
    monkeypatch.setattr(agent, "check_environment", lambda opts: order.append("checks") or [])
    monkeypatch.setattr(agent, "log", lambda msg: None)

    from swarmscope import pipeline

    def collect(opts, say=None):
        order.append("collect")
        raise RuntimeError("no node here")  # the round fails, as on a node that cannot collect; the agent goes on

    monkeypatch.setattr(pipeline, "collect_node", collect)
    assert agent.run_standing(CollectOptions(), 10, None, None, rounds=1) == 0  # one round: it never waits
    assert order[0] == "arenas" and order[1:] == ["checks", "collect"]

