"""Prometheus metrics of one collection (the agent's ``/metrics``), made by prometheus_client (pure).

A registry holds the metrics of the last collection (or, before any collection succeeded, the
counters only); ``text`` is its text exposition (format 0.0.4), ``exposition`` the form a
scraper's Accept header negotiates (text or OpenMetrics).
"""

from __future__ import annotations

import time
from typing import Any


class CollectionMetrics:
    """A prometheus_client collector over one collection's results (fixed at construction)."""

    def __init__(self, snap, analysis, collections: int, failures: int, finished: float):
        self.snap, self.analysis = snap, analysis
        self.collections, self.failures, self.finished = collections, failures, finished

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        findings = GaugeMetricFamily("swarmscope_findings", "Findings of the last collection, by id and severity.",
                                     labels=["id", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for f in self.analysis.findings:
            counts[(f.id, f.severity)] = counts.get((f.id, f.severity), 0) + 1
        for (fid, sev), n in sorted(counts.items()):
            findings.add_metric([fid, sev], n)
        yield findings
        labels = ["service", "path", "node"]
        rs = GaugeMetricFamily(
            "swarmscope_real_servers",
            "Real servers (IPVS destinations present) per service and path on this node.",
            labels=labels,
        )
        miss = GaugeMetricFamily("swarmscope_real_servers_missing",
                                 "Running tasks missing from the service's IPVS table on this node.", labels=labels)
        for s in self.analysis.services:
            paths = [(f"ingress:{p.published}/{p.protocol}", p.nodes) for p in s.ports if p.mode == "ingress"]
            paths += [(f"vip:{v.network}", v.nodes) for v in s.vip_paths if v.vip]
            for label, nodes in paths:
                for np in nodes:
                    rs.add_metric([s.name, label, np.node], sum(1 for b in np.backends if b.status != "missing"))
                    miss.add_metric([s.name, label, np.node], sum(1 for b in np.backends if b.status == "missing"))
        yield rs
        yield miss
        yield self._serving()
        yield GaugeMetricFamily("swarmscope_collection_duration_seconds", "How long the last collection took.",
                                value=self.snap.duration_ms / 1000)
        yield GaugeMetricFamily("swarmscope_collection_complete", "1 when the last snapshot is complete.",
                                value=1 if self.snap.complete else 0)
        yield GaugeMetricFamily("swarmscope_last_collection_timestamp_seconds", "When the last collection finished.",
                                value=int(self.finished))
        yield from CounterMetrics(self.collections, self.failures).collect()


    def _serving(self):
        """swarmscope_published_port_serving: 1 where this node answers a published port, 0 where it does not
        (a broken hop, or host mode without a task here), and no series where its data cannot say (unknown):
        Prometheus convention keeps a sample's value a measurement, so unknown is absence (``absent()`` or a
        missing series alerts on it), never a sentinel like -1 that ``sum``/``min`` would fold into real
        values. Only this node's series: each node's agent exports its own, and Prometheus joins them."""
        from prometheus_client.core import GaugeMetricFamily

        from swarmscope.correlate.serving import NO, YES, serving_table

        fam = GaugeMetricFamily(
            "swarmscope_published_port_serving",
            "1 when this node serves the published port (every hop ok, or degraded), 0 when a hop is broken or "
            "(host mode) no task runs here; absent when the node's data cannot say.",
            labels=["service", "port", "protocol", "mode", "node"],
        )
        me = self.snap.node.hostname
        for ps in serving_table(self.analysis):
            for n in ps.nodes:
                if n.node == me and n.serves in (YES, NO):
                    value = 1 if n.serves == YES else 0
                    fam.add_metric([ps.service, str(ps.port), ps.protocol, ps.mode, n.node], value)
        return fam


class CounterMetrics:
    """The agent's counters alone: collections and collections that failed outright."""

    def __init__(self, collections: int, failures: int):
        self.collections, self.failures = collections, failures

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily(
            "swarmscope_collections", "Collections since the agent started.", value=self.collections
        )
        yield CounterMetricFamily(
            "swarmscope_collection_failures", "Collections that failed outright.", value=self.failures
        )


def _registry(collector):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def collection_registry(snap, analysis, collections: int, failures: int, finished: float | None = None):
    """A registry with the metrics of one collection (``finished``: when it finished, default now)."""
    return _registry(
        CollectionMetrics(snap, analysis, collections, failures, time.time() if finished is None else finished)
    )


def counters_registry(collections: int, failures: int):
    """Metrics before any collection succeeded: the counters only."""
    return _registry(CounterMetrics(collections, failures))


def text(registry: Any) -> str:
    """The text exposition (format 0.0.4) of a registry."""
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def exposition(registry: Any, accept: str, cache: dict | None = None) -> tuple[bytes, str]:
    """(body, content type) of a registry in the format an Accept header negotiates; ``cache``
    (content type -> body) keeps each form made once for the same registry."""
    from prometheus_client.exposition import choose_encoder

    encoder, ctype = choose_encoder(accept)
    if cache is None:
        return encoder(registry), ctype
    if ctype not in cache:
        cache[ctype] = encoder(registry)
    return cache[ctype], ctype


def metrics_text(snap, analysis, collections: int = 0, failures: int = 0, finished: float | None = None) -> str:
    """The text exposition of one collection's metrics."""
    return text(collection_registry(snap, analysis, collections, failures, finished))
