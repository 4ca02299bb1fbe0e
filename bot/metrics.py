"""Prometheus metrics of one running bot (own registry: no process-wide globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """Counters and histograms exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "elevate_requests",
            "Admin-rights requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "elevate_decisions",
            "Approval decisions by outcome (approved, denied, stage-approved)",
            ["outcome"],
            registry=self.registry,
        )
        self.decision_latency = Histogram(
            "elevate_decision_latency_seconds",
            "Time from request to its final decision",
            buckets=(10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600),
            registry=self.registry,
        )
        self.graph_latency = Histogram(
            "elevate_graph_call_seconds",
            "Microsoft Graph call latency",
            ["operation"],
            registry=self.registry,
        )
        self.graph_errors = Counter(
            "elevate_graph_errors",
            "Microsoft Graph call failures by kind",
            ["operation", "kind"],
            registry=self.registry,
        )
        self.notices = Counter(
            "elevate_notices",
            "Chat notices sent by kind",
            ["kind"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
