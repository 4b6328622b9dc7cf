"""`llmci monitor check`: one window of an environment's records, measured per version and judged by the rules.

Everything per version is computed with Arrow's grouped aggregations over
the columns it needs (counts, sums, t-digest percentiles), so a window of a
million records costs little more than reading them; the drift tests read a
seeded sample of each version's rows (`monitor.drift.sample`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmci.config import LoadedConfig, MonitorConfig, parse_duration
from llmci.errors import UsageError
from llmci.monitor.cost import replica_cost
from llmci.monitor.metrics import METRICS
from llmci.monitor.records import read_window, read_window_sampled
from llmci.monitor.report import (
    Cost,
    DeployMark,
    DriftTest,
    Finding,
    Links,
    MonitorReport,
    Resources,
    SeriesPoint,
    VersionHealth,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from llmci.deploy.ledger import EnvState, Event
    from llmci.registry.store import Store

#: The columns the measures read; the drift tests add theirs.
METRIC_COLUMNS = (
    "sample_rate",
    "model",
    "version",
    "kind",
    "status",
    "latency_ms",
    "queue_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "replica",
    "output_chars",
)
#: Kept for the drift tests' sample only.
DRIFT_COLUMNS = ("prompt_chars", "non_ascii_share", "charset", "oov_share", "vars", "output", "output_chars")
#: Drift over time is measured in at most this many steps of the window.
DRIFT_STEPS = 12
NO_REFERENCE = (
    "drift not measured: no reference (monitor.drift.reference; the default needs an eval suite with a dataset)"
)
_LEVELS: dict[str, int] = {"ok": 0, "no_data": 0, "warning": 1, "critical": 2}


@dataclass
class Reference:
    """What drift is measured against: records-like rows, a description, and the labels the suite knows."""

    table: pa.Table
    description: str
    labels: list[str] | None = None


@dataclass
class ClusterView:
    """What the cluster says of the environment (Serve REST, Prometheus); absent parts are None."""

    state: EnvState | None = None
    serve_apps: dict[str, Any] | None = None
    #: app name -> Resources, from Prometheus.
    resources: dict[str, Resources] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def window_bounds(window: str, end: datetime | None = None) -> tuple[datetime, datetime]:
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    end = end or datetime.now(timezone.utc)
    return end - timedelta(seconds=seconds), end


def check(
    loaded: LoadedConfig,
    env: str,
    store: Store,
    *,
    start: datetime,
    end: datetime,
    reference: Reference | None,
    cluster: ClusterView | None = None,
    events: list[Event] | None = None,
    links: Links | None = None,
    now: datetime | None = None,
) -> MonitorReport:
    """The report of [start, end) in `env`."""
    config = loaded.config.monitor
    cluster = cluster or ClusterView()
    bucket_s = parse_duration(config.bucket)
    pool_size = 10 * config.drift.sample if reference is not None else 0
    table, pool, notes = read_window_sampled(store, env, start, end, METRIC_COLUMNS, DRIFT_COLUMNS, pool_size)
    window = _Window(table, start, end, bucket_s)
    served = _served_versions(cluster.state)
    drift = _Drift(pool, window, reference, config) if reference is not None and pool.num_rows else None

    versions: list[VersionHealth] = []
    for model, version in sorted({*served, *window.versions()}):
        health = window.health(model, version, config)
        if (model, version) in served or cluster.state is None:
            _add_cluster(health, env, cluster)
        if drift is not None and health.requests:
            health.drift = drift.version_tests(model, version)
            health.metrics["drifted_descriptors"] = float(sum(test.drifted for test in health.drift))
            if drift.full_outputs:
                health.metrics["empty_output_share"] = drift.empty_share(model, version)
        versions.append(health)

    # Judged: what serves now. A version retired inside the window is charted, never alerted on.
    judged = [h for h in versions if cluster.state is None or (h.model, h.version) in served]
    findings = [finding for health in judged for finding in judge(health, env, config)]
    level = max((f.level for f in findings), key=lambda name: _LEVELS[name], default="ok")
    return MonitorReport(
        env=env,
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        generated_at=(now or datetime.now(timezone.utc)).isoformat(),
        bucket_seconds=bucket_s,
        records=table.num_rows,
        reference=reference.description if reference else None,
        level=level if level != "no_data" else "ok",
        versions=versions,
        findings=findings,
        series=window.series(config, drift),
        deploys=[_mark(event) for event in events or [] if start.isoformat() <= event.at < end.isoformat()],
        links=links or Links(),
        notes=[*notes, *cluster.notes, *([] if reference else [NO_REFERENCE])],
    )


def judge(health: VersionHealth, env: str, config: MonitorConfig) -> list[Finding]:
    """Each configured rule on one version.

    With fewer than `min_requests` requests, a `no_data` finding at its configured
    level, and the rules measured on requests keep whatever state they had (a
    version that went quiet has not recovered); the rules measured on the
    cluster (replica health, resources) are judged all the same: an outage with
    no traffic is still an outage.
    """
    where = {"env": env, "model": health.model, "version": health.version}
    quiet = health.requests < config.min_requests
    if quiet:
        message = f"{health.ref} answered {health.requests} requests in the window (rules need {config.min_requests})"
        findings = [Finding(rule="no_data", level=config.no_data, message=message, **where)]
    else:
        findings = [Finding(rule="no_data", level="ok", message=f"{health.requests} requests", **where)]
    for name, threshold in sorted(config.rules.items()):
        metric = METRICS[name]
        value = health.metrics.get(name)
        if quiet and not metric.cluster:
            findings.append(Finding(rule=name, level="no_data", message=findings[0].message, **where))
            continue
        if value is None:
            findings.append(Finding(rule=name, level="no_data", message=f"{health.ref}: {name} not measured", **where))
            continue
        level, limit = "ok", None
        for candidate in ("critical", "warning"):
            bound = getattr(threshold, candidate)
            if bound is not None and (value > bound if metric.breach == "above" else value < bound):
                level, limit = candidate, bound
                break
        shown = (
            limit if limit is not None else (threshold.warning if threshold.warning is not None else threshold.critical)
        )
        relation = {"above": ">", "below": "<"}[metric.breach] if level != "ok" else "within"
        message = f"{health.ref}: {name} {_fmt(value)} {metric.unit} {relation} {_fmt(shown)}"
        findings.append(Finding(rule=name, level=level, value=value, threshold=shown, message=message, **where))
    return findings


# -- per version -----------------------------------------------------------------------


def _served_versions(state: EnvState | None) -> set[tuple[str, int]]:
    if state is None:
        return set()
    return {
        (model, version)
        for model, routes in state.router.models.items()
        for version, route in routes.versions.items()
        if route.weight > 0 or routes.shadow == version
    }


class _Window:
    """The window's records, aggregated once per version and per version and time step."""

    def __init__(self, table: pa.Table, start: datetime, end: datetime, bucket_s: float) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.table, self.start, self.end, self.bucket_s = table, start, end, bucket_s
        self.seconds = max((end - start).total_seconds(), 1e-9)
        status = table["status"]
        # A record stands for 1/sample_rate requests (monitor.record.sample): counts and sums are estimates.
        weight = pc.divide(1.0, pc.fill_null(table["sample_rate"].cast("float64"), 1.0))

        def weighted(flags: pa.ChunkedArray) -> pa.ChunkedArray:
            return pc.multiply(flags.cast("float64"), weight)

        self.work = pa.table(
            {
                "step": _step_index(table["time"], start, bucket_s),
                "model": table["model"],
                "version": table["version"],
                "shadow": pc.equal(table["kind"], "shadow"),
                "weight": weight,
                "live": weighted(pc.equal(table["kind"], "live")),
                "error": weighted(pc.greater_equal(status, 500)),
                "answered": weighted(pc.less(status, 400)),
                "empty": weighted(pc.and_(pc.less(status, 400), pc.equal(pc.fill_null(table["output_chars"], 0), 0))),
                "latency_ms": table["latency_ms"],
                "queue_ms": table["queue_ms"],
                "input_tokens": weighted(pc.fill_null(table["input_tokens"], 0)),
                "output_tokens": weighted(pc.fill_null(table["output_tokens"], 0)),
                "cost_usd": weighted(table["cost_usd"]),
                "replica": table["replica"],
            }
        ).filter(pc.is_valid(table["version"]))
        common = [
            ("weight", "sum"),
            ("error", "sum"),
            ("live", "sum"),
            ("cost_usd", "sum"),
            ("cost_usd", "count"),
            ("latency_ms", "tdigest", pc.TDigestOptions(q=[0.5, 0.95, 0.99])),
        ]
        totals = self._group(
            ["model", "version", "shadow"],
            [
                *common,
                ("answered", "sum"),
                ("empty", "sum"),
                ("input_tokens", "sum"),
                ("output_tokens", "sum"),
                ("queue_ms", "tdigest", pc.TDigestOptions(q=[0.95])),
            ],
        )
        self.totals = {(r["model"], r["version"], r["shadow"]): r for r in totals}
        self.steps = self._group(["step", "model", "version", "shadow"], [*common, ("replica", "count_distinct")])

    def _group(self, keys: list[str], aggregations: list[tuple]) -> list[dict[str, Any]]:
        if not self.work.num_rows:
            return []
        return self.work.group_by(keys).aggregate(aggregations).to_pylist()

    def versions(self) -> set[tuple[str, int]]:
        return {(model, version) for model, version, _ in self.totals}

    def kind(self, model: str, version: int) -> bool:
        """Whether the version is measured on its shadow traffic: only when it served nothing else."""
        return (model, version, False) not in self.totals

    def health(self, model: str, version: int, config: MonitorConfig) -> VersionHealth:
        shadow = self.kind(model, version)
        row = self.totals.get((model, version, shadow))
        if row is None:
            return VersionHealth(model=model, version=version, requests=0, errors=0, traffic_share=0.0)
        requests, errors = round(row["weight_sum"]), round(row["error_sum"])
        model_live = sum(r["live_sum"] for (m, _, s), r in self.totals.items() if m == model and not s)
        latency, queue = row["latency_ms_tdigest"] or [], row["queue_ms_tdigest"] or []
        tokens = round(row["input_tokens_sum"] + row["output_tokens_sum"])
        steps = [r for r in self.steps if (r["model"], r["version"], r["shadow"]) == (model, version, shadow)]
        cost = self._cost(row, steps, config, requests, tokens)
        metrics: dict[str, float | None] = {
            "error_rate": row["error_sum"] / row["weight_sum"],
            "availability": 1 - row["error_sum"] / row["weight_sum"],
            "latency_p50_ms": _finite(latency, 0),
            "latency_p95_ms": _finite(latency, 1),
            "latency_p99_ms": _finite(latency, 2),
            "queue_p95_ms": _finite(queue, 0),
            "throughput_rps": row["weight_sum"] / self.seconds,
            "cost_per_1k_tokens_usd": cost.per_1k_tokens_usd,
            "cost_per_request_usd": cost.per_request_usd,
            "empty_output_share": row["empty_sum"] / row["answered_sum"] if row["answered_sum"] else None,
        }
        return VersionHealth(
            model=model,
            version=version,
            requests=requests,
            errors=errors,
            traffic_share=row["live_sum"] / model_live if model_live else 0.0,
            metrics=metrics,
            input_tokens=round(row["input_tokens_sum"]),
            output_tokens=round(row["output_tokens_sum"]),
            cost=cost,
        )

    def _cost(
        self, row: dict[str, Any], steps: list[dict[str, Any]], config: MonitorConfig, requests: int, tokens: int
    ) -> Cost:
        """Token prices where the records carry a cost; else replica time: replicas seen answering per step."""
        if row["cost_usd_count"]:
            usd, basis, replica_seconds = row["cost_usd_sum"], "tokens", None
        elif config.cost.replica_hour_usd > 0:
            replica_seconds = sum(
                max(r["replica_count_distinct"], 1)
                * max(min(self.bucket_s, self.seconds - r["step"] * self.bucket_s), 0)
                for r in steps
            )
            usd, basis = replica_cost(replica_seconds, config.cost.replica_hour_usd), "replica-hours"
        else:
            return Cost()
        return Cost(
            usd=usd,
            per_request_usd=usd / requests if requests else None,
            per_1k_tokens_usd=usd / tokens * 1000 if tokens else None,
            basis=basis,
            replica_seconds=replica_seconds,
        )

    def series(self, config: MonitorConfig, drift: _Drift | None) -> list[SeriesPoint]:
        """Per time step and version of the served traffic: requests, errors, share, latency, cost, drift."""
        rows = sorted((r for r in self.steps if not r["shadow"]), key=lambda r: (r["step"], r["model"], r["version"]))
        live: dict[tuple[int, str], int] = {}
        for r in rows:
            live[(r["step"], r["model"])] = live.get((r["step"], r["model"]), 0) + r["live_sum"]
        points = []
        for r in rows:
            step, model, version = r["step"], r["model"], r["version"]
            quantiles = r["latency_ms_tdigest"] or []
            cost = r["cost_usd_sum"] if r["cost_usd_count"] else None
            if cost is None and config.cost.replica_hour_usd > 0:
                cost = replica_cost(r["replica_count_distinct"] * self.bucket_s, config.cost.replica_hour_usd)
            total = live.get((step, model), 0)
            points.append(
                SeriesPoint(
                    start=(self.start + timedelta(seconds=step * self.bucket_s)).isoformat(),
                    model=model,
                    version=version,
                    requests=round(r["weight_sum"]),
                    errors=round(r["error_sum"]),
                    traffic_share=r["live_sum"] / total if total else 0.0,
                    latency_p50_ms=_finite(quantiles, 0),
                    latency_p95_ms=_finite(quantiles, 1),
                    latency_p99_ms=_finite(quantiles, 2),
                    cost_usd=cost,
                    drift_score=drift.step_score(model, version, step * self.bucket_s) if drift else None,
                )
            )
        return points


class _Drift:
    """Drift of each version, and of each version over time, from a uniform sample of the window.

    The sample (`pool`, ten times `monitor.drift.sample` rows, drawn as the
    parts are read) holds the text columns; each version's tests read at most
    `monitor.drift.sample` of its rows. Over time, drift is measured in at most
    DRIFT_STEPS steps per version (each at least one chart step wide).
    """

    def __init__(self, pool: pa.Table, window: _Window, reference: Reference, config: MonitorConfig) -> None:
        import numpy as np
        import pyarrow.compute as pc

        from llmci.monitor.drift import VARS_PREFIX, descriptor_table

        self.config = config
        self.reference = descriptor_table(reference.table, reference.labels)
        self.step_s = max(window.bucket_s, window.seconds / DRIFT_STEPS)
        pool = pool.filter(pc.is_valid(pool["version"]))
        known = [name.removeprefix(VARS_PREFIX) for name in self.reference.column_names if name.startswith(VARS_PREFIX)]
        self.sample = descriptor_table(pool, reference.labels, vars_keys=known)
        self.outputs = pool["output"]
        self.status = pool["status"].to_numpy(zero_copy_only=False)
        self.full_outputs = (
            self.outputs.null_count < len(self.outputs)
            and not pc.any(pc.starts_with(pc.fill_null(self.outputs, ""), "sha256:")).as_py()
        )
        models = np.asarray(pool["model"].to_pylist(), dtype=object)
        versions = pool["version"].to_numpy()
        shadow = pc.equal(pool["kind"], "shadow").to_numpy(zero_copy_only=False)
        rng = np.random.default_rng(0)
        self.by_version: dict[tuple[str, int], list[int]] = {}
        for model, version in window.versions():
            rows = np.flatnonzero((models == model) & (versions == version) & (shadow == window.kind(model, version)))
            picked = rng.choice(rows, size=min(len(rows), config.drift.sample), replace=False)
            self.by_version[(model, version)] = np.sort(picked).tolist()
        steps = _step_index(pool["time"], window.start, self.step_s).to_numpy(zero_copy_only=False)
        self.by_step: dict[tuple[str, int, int], list[int]] = {}
        for row in np.flatnonzero(~shadow).tolist():
            self.by_step.setdefault((models[row], int(versions[row]), int(steps[row])), []).append(row)
        self._scores: dict[tuple[str, int, int], float | None] = {}

    def _tests(self, indices: list[int]) -> list[DriftTest]:
        from llmci.monitor.drift import drift_tests

        return drift_tests(
            self.reference,
            self.sample.take(indices),
            alpha=self.config.drift.alpha,
            threshold=self.config.drift.threshold,
        )

    def version_tests(self, model: str, version: int) -> list[DriftTest]:
        return self._tests(self.by_version[(model, version)])

    def empty_share(self, model: str, version: int) -> float | None:
        """Empty or refused answers among the version's sampled answers (a refusal is told by its text)."""
        from llmci.monitor.descriptors import is_empty_or_refusal

        answered = [i for i in self.by_version[(model, version)] if self.status[i] < 400]
        if not answered:
            return None
        return sum(is_empty_or_refusal(self.outputs[i].as_py()) for i in answered) / len(answered)

    def step_score(self, model: str, version: int, offset_s: float) -> float | None:
        """The drift score of the drift step holding this chart step (fewer than min_requests sampled: none)."""
        from llmci.monitor.drift import drift_score

        key = (model, version, int(offset_s // self.step_s))
        if key not in self._scores:
            indices = self.by_step.get(key, [])
            enough = len(indices) >= self.config.min_requests
            self._scores[key] = drift_score(self._tests(indices)) if enough else None
        return self._scores[key]


def _finite(values: list[float], index: int) -> float | None:
    """A t-digest quantile, or None where the group had no values."""
    import math

    value = values[index] if len(values) > index else None
    return value if value is not None and math.isfinite(value) else None


def _add_cluster(health: VersionHealth, env: str, cluster: ClusterView) -> None:
    from llmci.deploy.rollout import version_app

    app = version_app(env, health.model, health.version)
    if app in cluster.resources:
        health.resources = cluster.resources[app]
        for name in ("cpu_percent", "memory_mb", "gpu_percent"):
            health.metrics[name] = getattr(health.resources, name)
    if cluster.serve_apps is None:
        return
    status = cluster.serve_apps.get(app) or {}
    replicas = ((status.get("deployments") or {}).get("model") or {}).get("replicas") or []
    health.serve_status = status.get("status", "ABSENT")
    health.replicas_running = sum(replica.get("state") == "RUNNING" for replica in replicas)
    health.replicas_unhealthy = len(replicas) - health.replicas_running
    health.metrics["unhealthy_replicas"] = float(health.replicas_unhealthy if replicas else 1)


# -- over time -------------------------------------------------------------------------


def _step_index(times: pa.ChunkedArray, start: datetime, bucket_s: float) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    offset_ms = pc.subtract(times.cast(pa.int64()), int(start.timestamp() * 1000))
    return pc.floor(pc.divide(offset_ms.cast(pa.float64()), bucket_s * 1000)).cast(pa.int64())


def _mark(event: Event) -> DeployMark:
    return DeployMark(
        at=event.at,
        action=event.action,
        model=event.model,
        version=event.version,
        previous=event.previous,
        message=event.message,
        workflow_run_url=event.workflow_run_url,
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


# -- the reference ---------------------------------------------------------------------


def suite_reference(loaded: LoadedConfig, name: str | None, env: str | None = None) -> Reference:
    """The eval suite's dataset as request-like rows: each case's prompt as the model saw it, its expected output."""
    import pyarrow as pa

    from llmci.eval.cases import load_cases
    from llmci.monitor.descriptors import charset, non_ascii_share
    from llmci.monitor.records import vars_json
    from llmci.templating import load_template

    suites = loaded.config.eval.suites
    if name is None:  # the environment's smoke suite, else any environment's, else the first with a dataset
        environments = loaded.config.deploy.environments
        mine = [environments[env].smoke] if env in environments and environments[env].smoke else []
        smoke = [s.suite for s in mine] + [e.smoke.suite for e in environments.values() if e.smoke]
        candidates = [s for s in smoke if s in suites and suites[s].dataset] + [
            s for s, suite in suites.items() if suite.dataset
        ]
        if not candidates:
            raise UsageError("monitor.drift.reference: no eval suite with a dataset to compare traffic with")
        name = candidates[0]
    suite = suites.get(name)
    if suite is None or suite.dataset is None:
        raise UsageError(f"monitor.drift.reference: no eval suite '{name}' with a dataset")
    template = load_template(loaded.root, suite.prompt, key=f"eval.suites.{name}.prompt") if suite.prompt else None
    path = loaded.root / suite.dataset
    cases = load_cases(path, template).cases
    variables = _dataset_vars(path)
    prompts = [case.prompt for case in cases]
    outputs = [case.expected_output for case in cases]
    table = pa.table(
        {
            "prompt_chars": pa.array([len(p) for p in prompts], pa.int32()),
            "non_ascii_share": pa.array([non_ascii_share(p) for p in prompts], pa.float32()),
            "charset": pa.array([charset(p) for p in prompts], pa.string()),
            "vars": pa.array([vars_json(variables.get(case.line)) for case in cases], pa.string()),
            "output": pa.array(outputs, pa.string()),
            "output_chars": pa.array([len(o) if o is not None else None for o in outputs], pa.int32()),
        }
    )
    distinct = sorted({o.strip() for o in outputs if o is not None})
    labels = distinct if 0 < len(distinct) <= 50 else None
    return Reference(table, f"eval suite '{name}' ({len(cases)} cases)", labels)


def _dataset_vars(path: Path) -> dict[int, dict[str, Any]]:
    """Line number -> the case's `vars` (load_cases renders them away)."""
    found = {}
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if line.strip():
            record = json.loads(line)
            if isinstance(record.get("vars"), dict):
                found[number] = record["vars"]
    return found


def window_reference(store: Store, env: str, spec: str, labels: list[str] | None, sample: int = 5000) -> Reference:
    """`window:START/END` (ISO 8601): a pinned production window of the same environment."""
    start_text, _, end_text = spec.removeprefix("window:").partition("/")
    try:
        start, end = (_utc(datetime.fromisoformat(text)) for text in (start_text, end_text))
    except ValueError:
        raise UsageError(f"reference '{spec}': expected window:START/END in ISO 8601") from None
    table, _ = read_window(store, env, start, end, DRIFT_COLUMNS)
    if not table.num_rows:
        raise UsageError(f"reference '{spec}': no records of {env} in that window")
    if table.num_rows > sample:
        import numpy as np

        table = table.take(np.sort(np.random.default_rng(0).choice(table.num_rows, size=sample, replace=False)))
    return Reference(table, f"{env} from {start.isoformat()} to {end.isoformat()} ({table.num_rows} records)", labels)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def resolve_reference(loaded: LoadedConfig, env: str, store: Store, spec: str | None) -> Reference | None:
    """The drift reference `spec` names (default monitor.drift.reference); None when the default `suite`
    has no suite with a dataset to be (drift is then not measured, and the report says so)."""
    given = spec
    spec = spec or loaded.config.monitor.drift.reference
    if spec == "suite" and given is None and not any(s.dataset for s in loaded.config.eval.suites.values()):
        return None
    if spec == "suite" or spec.startswith("suite:"):
        return suite_reference(loaded, spec.partition(":")[2] or None, env)
    if spec.startswith("window:"):
        labels = suite_reference(loaded, None, env).labels if loaded.config.eval.suites else None
        return window_reference(store, env, spec, labels, loaded.config.monitor.drift.sample)
    raise UsageError(f"reference '{spec}': expected suite, suite:NAME or window:START/END")


def prometheus_resources(
    url: str, env: str, apps: Mapping[str, str], timeout_s: float = 10.0
) -> tuple[dict[str, Resources], list[str]]:
    """CPU and memory of each version's replicas, GPU use of the cluster's nodes, from Prometheus's HTTP API."""
    import httpx

    from llmci.redact import without_userinfo

    found: dict[str, Resources] = {}
    notes: list[str] = []
    # Component is the replica's process title, `ray::ServeReplica:APP:DEPLOYMENT`; summed over the replicas.
    replicas = '{{Component=~"(?:ray::)?ServeReplica:{app}:.*"}}'
    queries = {
        "cpu_percent": f"sum(ray_component_cpu_percentage{replicas})",
        "memory_mb": f"sum(ray_component_rss_mb{replicas})",
        "gpu_percent": f"sum(ray_component_gpu_percentage{replicas})",
    }
    with httpx.Client(timeout=timeout_s) as client:
        for app in apps.values():
            values: dict[str, float | None] = {}
            for name, query in queries.items():
                try:
                    response = client.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query.format(app=app)})
                    response.raise_for_status()
                    result = response.json()["data"]["result"]
                except Exception as exc:  # Prometheus is optional: say so and go on
                    from llmci.errors import first_line

                    notes.append(f"Prometheus at {without_userinfo(url)}: {first_line(exc)}")
                    return found, notes
                values[name] = sum(float(item["value"][1]) for item in result) if result else None
            found[app] = Resources(**values)
    return found, notes
