"""The metrics a monitor rule can name, which way is worse for each, and their values as people read them."""

from __future__ import annotations

import math
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


def format_value(unit: str, value: float | None, *, seconds: bool = True) -> str:
    """A measure in its unit: `7.10%`, `850 ms`, `1.25 s`, `$0.00340`; `—` when the window cannot tell.

    `seconds=False` keeps latencies of a second or more in milliseconds (`2,400 ms`), the unit an
    alert's rule and message state them in.
    """
    if value is None or math.isnan(value):
        return "—"
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) < 1000 or not seconds else f"{value / 1000:,.2f} s"
    if unit == "USD":
        return "$" + significant(value)
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "req/s":
        return f"{value:,.2f} req/s"
    if unit in ("replicas", "descriptors"):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"
    return significant(value)


def format_metric(name: str, value: float | None, *, seconds: bool = True) -> str:
    """`value` of the metric `name` in its unit (see `format_value`); a name not in METRICS has no unit."""
    return format_value(METRICS[name].unit if name in METRICS else "", value, seconds=seconds)


def significant(value: float, digits: int = 3) -> str:
    """At least two decimals and `digits` significant ones, never an exponent (0.0000123, not 1.23e-05)."""
    if value == 0:
        return "0.00"
    decimals = max(2, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"
