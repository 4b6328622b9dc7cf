"""The metrics a monitor rule can name, and which way is worse for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    description: str
    unit: str
    #: `above`: a value above the threshold breaches it; `below`: a value below does.
    breach: Literal["above", "below"] = "above"
    #: Measured on the cluster (Serve, Prometheus), not on requests: judged even when traffic is too thin.
    cluster: bool = False


METRICS: dict[str, Metric] = {
    "error_rate": Metric("Share of requests answered with a 5xx status.", "ratio"),
    "availability": Metric("Share of requests not answered with a 5xx status.", "ratio", "below"),
    "latency_p50_ms": Metric("Median latency through the router.", "ms"),
    "latency_p95_ms": Metric("95th percentile latency through the router.", "ms"),
    "latency_p99_ms": Metric("99th percentile latency through the router.", "ms"),
    "queue_p95_ms": Metric("95th percentile time a request waited for its batch.", "ms"),
    "throughput_rps": Metric("Requests per second over the window.", "req/s", "below"),
    "cost_per_1k_tokens_usd": Metric("Cost per 1,000 tokens (input and output).", "USD"),
    "cost_per_request_usd": Metric("Cost per request.", "USD"),
    "unhealthy_replicas": Metric("Replicas of the version Serve does not report RUNNING.", "replicas", cluster=True),
    "cpu_percent": Metric("CPU use of the version's replicas (Prometheus).", "%", cluster=True),
    "memory_mb": Metric("Resident memory of the version's replicas (Prometheus).", "MB", cluster=True),
    "gpu_percent": Metric("GPU use of the version's replicas (Prometheus).", "%", cluster=True),
    "drifted_descriptors": Metric("Input and output descriptors whose drift test fired.", "descriptors"),
    "empty_output_share": Metric("Share of answers that are empty or refusals.", "ratio"),
}
