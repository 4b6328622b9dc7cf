"""The monitor report (`llmci.monitor/1`): what `llmci monitor check` found, the input of dashboards and alerts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "llmci.monitor/1"

Level = Literal["ok", "warning", "critical", "no_data"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftTest(_Model):
    """One descriptor's drift test, the one Evidently would choose at this sample size."""

    descriptor: str = Field(description="e.g. prompt_chars, input_tokens, charset, label, vars.product.")
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi_squared", "z", "wasserstein", "jensen_shannon"]
    #: The test's statistic: KS D, chi-squared, z, normed Wasserstein distance or Jensen-Shannon distance.
    statistic: float
    p_value: float | None = None
    #: The p-value (after the family-wise correction) or distance the statistic is judged against.
    threshold: float
    drifted: bool
    reference_n: int
    current_n: int
    #: A short description of the change (means or top categories, reference -> current).
    summary: str = ""


class Resources(_Model):
    cpu_percent: float | None = None
    memory_mb: float | None = None
    gpu_percent: float | None = None


class Cost(_Model):
    usd: float | None = None
    per_request_usd: float | None = None
    per_1k_tokens_usd: float | None = None
    #: `tokens`: token prices of an API model; `replica-hours`: replica time of a self-hosted version.
    basis: Literal["tokens", "replica-hours"] | None = None
    replica_seconds: float | None = None


class VersionHealth(_Model):
    model: str
    version: int
    requests: int
    errors: int
    traffic_share: float = Field(description="Share of the model's live (not shadow) requests.")
    #: metric name (llmci.monitor.metrics.METRICS) -> value; None when the window cannot tell.
    metrics: dict[str, float | None] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Cost = Field(default_factory=Cost)
    resources: Resources = Field(default_factory=Resources)
    #: Serve's status of the version's application (RUNNING, DEPLOYING, ...), None when not asked.
    serve_status: str | None = None
    replicas_running: int | None = None
    replicas_unhealthy: int | None = None
    drift: list[DriftTest] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


class Finding(_Model):
    """One rule judged on one version: what alerts are made from."""

    rule: str = Field(description="The metric's name, or `no_data`.")
    level: Level
    env: str
    model: str
    version: int
    value: float | None = None
    threshold: float | None = None
    message: str

    @property
    def fingerprint(self) -> str:
        """What deduplicates alerts: the same rule on the same version of the same environment."""
        return f"{self.rule}/{self.env}/{self.model}@{self.version}"


class SeriesPoint(_Model):
    """One version over one time step: what the dashboard's charts draw."""

    start: str = Field(description="ISO 8601 start of the step (UTC).")
    model: str
    version: int
    requests: int
    errors: int
    traffic_share: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    cost_usd: float | None = None
    #: The largest drift statistic of the step relative to its threshold (1.0 = at the alarm line).
    drift_score: float | None = None


class DeployMark(_Model):
    """A deploy ledger event inside the window, marked on the charts' time axis."""

    at: str
    action: str
    model: str | None = None
    version: int | None = None
    previous: int | None = None
    message: str = ""
    workflow_run_url: str | None = None


class Links(_Model):
    dashboard: str | None = None
    #: The workflow_dispatch page of the deploy workflow (one click: choose `rollback`).
    rollback: str | None = None
    run: str | None = None


class MonitorReport(_Model):
    format: Literal["llmci.monitor/1"] = FORMAT
    env: str
    window_start: str
    window_end: str
    generated_at: str
    bucket_seconds: float
    records: int = Field(description="Records read in the window.")
    reference: str | None = Field(None, description="What drift was measured against.")
    level: Level = Field(description="The worst finding's level (no_data counts as its configured level).")
    versions: list[VersionHealth] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    series: list[SeriesPoint] = Field(default_factory=list)
    deploys: list[DeployMark] = Field(default_factory=list)
    links: Links = Field(default_factory=Links)
    #: Problems that did not stop the check (Prometheus unreachable, an unreadable part, ...).
    notes: list[str] = Field(default_factory=list)

    def last_deploy_before(self, version_ref: str) -> DeployMark | None:
        """The newest deploy event of a version (what an alert on it links)."""
        model, _, version = version_ref.rpartition("@")
        marks = [m for m in self.deploys if m.model == model and str(m.version) == version]
        return marks[-1] if marks else None
