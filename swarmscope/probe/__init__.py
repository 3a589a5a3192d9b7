"""``--probe``: prove each hop with real connections from the node's own namespaces.

``targets.py`` says what may be probed, from where, and which hop each probe tests (pure, with the
allow-list of the swarm's own addresses); ``run.py`` makes the connections within their bounds.
``correlate/probes.py`` joins the results to the path map. Opt-in only: nothing here runs without
``--probe`` (or the agent's ``--probe-interval``).
"""

from __future__ import annotations

from swarmscope.probe.run import FAILED, ProbeOptions, probe_snapshot, summary

__all__ = ["FAILED", "ProbeOptions", "probe_snapshot", "summary"]
