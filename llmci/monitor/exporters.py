"""The monitor's rules for a team's own Prometheus, Alertmanager and Grafana.

`llmci monitor check` judges a window of request records on a schedule. A team that runs Prometheus
can have the same thresholds (`monitor.rules` in llmci.yaml) judged continuously instead: these are
the alerting rules and the Grafana dashboard for the metrics the serving application exports through
`ray.serve.metrics` (Ray's exporter adds the `ray_` prefix) and for Ray's and Ray Serve's own.

Metrics that only the request records can tell (drift, empty answers, queue time) have no PromQL;
the rules file says so in a comment, and `llmci monitor check` keeps judging them.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import yaml

from llmci.config import MonitorConfig
from llmci.errors import UsageError
from llmci.monitor.metrics import METRICS, format_metric
from llmci.redact import without_userinfo

if TYPE_CHECKING:
    from pydantic import JsonValue

# The series names as Prometheus stores them (the serving application's, then Ray Serve's and Ray's).
REQUESTS = "ray_llmci_requests_total"  # {env, model, version, kind, code}
LATENCY_BUCKET = "ray_llmci_request_latency_ms_bucket"  # {env, model, version, le}
TOKENS = "ray_llmci_tokens_total"  # {env, model, version, direction}
COST = "ray_llmci_cost_usd_total"  # {env, model, version}
DROPPED = "ray_llmci_records_dropped_total"  # {env}
#: Per replica, 1 healthy and 0 not (also 0 once stopped, so unhealthy replicas are counted against the target).
REPLICA_HEALTHY = "ray_serve_deployment_replica_healthy"  # {application, deployment, replica}
TARGET_REPLICAS = "ray_serve_autoscaling_target_replicas"  # {application, deployment}
#: Per node and process name (`Component` is the replica's title, `ray::ServeReplica:APP:DEPLOYMENT`).
CPU = "ray_component_cpu_percentage"
RSS = "ray_component_rss_mb"
GPU = "ray_component_gpu_percentage"

#: What each alert and panel is measured per: one series per version of a model.
BY = "env, model, version"

#: Rule metrics without a Prometheus series, and why (the comment the rules file carries for them).
NOT_EXPRESSIBLE = {
    "queue_p95_ms": "the batch queue time is recorded per request, not exported as a metric",
    "drifted_descriptors": "drift tests compare request records with a reference sample",
    "empty_output_share": "empty and refused answers are judged from the request records",
}

_ENV = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

#: Prometheus templates that print an alert's value in the metric's unit.
_VALUE_TEMPLATE = {
    "ratio": "{{ $value | humanizePercentage }}",
    "ms": '{{ $value | printf "%.0f" }} ms',
    "USD": '${{ $value | printf "%.5f" }}',
    "%": '{{ $value | printf "%.1f" }}%',
    "MB": '{{ $value | printf "%.0f" }} MB',
    "req/s": '{{ $value | printf "%.2f" }} req/s',
    "replicas": '{{ $value | printf "%.0f" }}',
}

_GRAFANA_UNITS = {
    "ratio": "percentunit",
    "ms": "ms",
    "USD": "currencyUSD",
    "%": "percent",
    "MB": "decmbytes",
    "req/s": "reqps",
}


def _check_env(env: str) -> None:
    if not _ENV.match(env) or len(env) > 32:
        raise UsageError(
            f"environment '{env}': not an environment name", hint="lowercase words joined by single hyphens"
        )


def _rate(name: str, env: str, interval: str, matchers: str = "") -> str:
    return f'sum by ({BY}) (rate({name}{{env="{env}"{matchers}}}[{interval}]))'


def _by_version(expr: str, label: str, pattern: str, env: str) -> str:
    """`expr` labelled env, model and version, read from the Serve application's name in `label`.

    `pattern` has two groups, the model and the version, of `llmci-ENV--MODEL-VERSION` (what
    `llmci deploy` names a version's application); the greedy first group keeps hyphens in model names.
    """
    expr = f'label_replace({expr}, "model", "$1", "{label}", "{pattern}")'
    expr = f'label_replace({expr}, "version", "$2", "{label}", "{pattern}")'
    return f'label_replace({expr}, "env", "{env}", "", "")'


def _replica_resource(name: str, env: str) -> str:
    """A resource of the version's replica processes, summed over them (and over the nodes they run on)."""
    pattern = f"(?:ray::)?ServeReplica:llmci-{env}--(.+)-([0-9]+):.*"
    selector = f'{name}{{Component=~"{pattern}"}}'
    return f"sum by ({BY}) ({_by_version(selector, 'Component', pattern, env)})"


def promql(metric: str, env: str, interval: str) -> str | None:
    """The PromQL of a rule metric, one series per version of a model (labels env, model, version);
    None for a metric Prometheus cannot tell. `interval` is the range rates are taken over."""
    requests = _rate(REQUESTS, env, interval)
    errors = _rate(REQUESTS, env, interval, ', code=~"5.."')
    # `or 0 * requests`: a version with no 5xx at all has no 5xx series; its error rate is 0, not missing.
    error_rate = f"{errors} / {requests} or 0 * {requests}"
    if metric == "error_rate":
        return error_rate
    if metric == "availability":
        return f"1 - ({error_rate})"
    if metric in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        quantile = int(metric.split("_")[1][1:]) / 100
        return f'histogram_quantile({quantile}, sum by ({BY}, le) (rate({LATENCY_BUCKET}{{env="{env}"}}[{interval}])))'
    if metric == "throughput_rps":
        return requests
    if metric == "cost_per_request_usd":
        return f"{_rate(COST, env, interval)} / {requests}"
    if metric == "cost_per_1k_tokens_usd":
        return f"1000 * {_rate(COST, env, interval)} / {_rate(TOKENS, env, interval)}"
    if metric == "unhealthy_replicas":
        selector = f'{{application=~"llmci-{env}--.+", deployment="model"}}'
        target = f"max by (application) ({TARGET_REPLICAS}{selector})"
        healthy = f"sum by (application) ({REPLICA_HEALTHY}{selector})"
        # A version none of whose replicas was ever healthy has no healthy series: count it as 0 healthy.
        unhealthy = f"clamp_min({target} - ({healthy} or 0 * {target}), 0)"
        return f"max by ({BY}) ({_by_version(unhealthy, 'application', f'llmci-{env}--(.+)-([0-9]+)', env)})"
    if metric == "cpu_percent":
        return _replica_resource(CPU, env)
    if metric == "memory_mb":
        return _replica_resource(RSS, env)
    if metric == "gpu_percent":
        return _replica_resource(GPU, env)
    return None


def _alert_name(metric: str) -> str:
    return "Llmci" + "".join(part[:1].upper() + part[1:] for part in metric.split("_"))


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_rules(config: MonitorConfig, env: str) -> str:
    """A Prometheus rules file (YAML): one alerting rule per threshold level of each rule in `config`.

    Alerts of one metric share a name and differ in `severity`, so an Alertmanager inhibit rule can
    silence the warning while the critical one fires.
    """
    _check_env(env)
    interval = config.bucket
    rules: list[dict[str, Any]] = []
    skipped: list[str] = []
    for metric, threshold in config.rules.items():
        expr = promql(metric, env, interval)
        if expr is None:
            skipped.append(metric)
            continue
        info = METRICS[metric]
        above = info.breach == "above"
        value_text = _VALUE_TEMPLATE.get(info.unit, '{{ $value | printf "%.2f" }}')
        for level in ("warning", "critical"):
            limit = getattr(threshold, level)
            if limit is None:
                continue
            limit_text = format_metric(metric, limit)
            side = "above" if above else "below"
            annotations = {
                "summary": (
                    f"{metric} of {{{{ $labels.model }}}}@{{{{ $labels.version }}}} in {env} is {value_text},"
                    f" {side} the {level} threshold {limit_text}"
                ),
                "description": (
                    f"{info.description} Fires {side} {limit_text} (llmci.yaml monitor.rules.{metric}.{level})"
                    f" for {config.bucket}, rates taken over {interval}."
                ),
                "runbook": (
                    f"Look: llmci monitor check --env {env}. Undo the last deploy: llmci deploy rollback --env {env}"
                    " (or run the deploy workflow with action rollback)."
                ),
            }
            if config.dashboard_url:
                annotations["dashboard"] = without_userinfo(config.dashboard_url)
            rules.append(
                {
                    "alert": _alert_name(metric),
                    "expr": f"({expr}) {'>' if above else '<'} {_number(limit)}",
                    "for": config.bucket,
                    "labels": {"severity": level, "env": env, "llmci_rule": metric},
                    "annotations": annotations,
                }
            )
    header = [
        f"# Prometheus alerting rules for the llmci environment '{env}', generated by llmci from llmci.yaml",
        f"# (monitor.rules): regenerate it with `llmci monitor rules --env {env}` rather than edit it.",
    ]
    for metric in skipped:
        header.append(f"# {metric}: not expressible in PromQL ({NOT_EXPRESSIBLE.get(metric, 'no metric')});")
        header.append("#   it is checked by `llmci monitor check` from the request records.")
    body = yaml.safe_dump(
        {"groups": [{"name": f"llmci-{env}", "rules": rules}]}, sort_keys=False, width=100_000, allow_unicode=True
    )
    return "\n".join(header) + "\n" + body


# -- Grafana ------------------------------------------------------------------------------------------

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_LEGEND = "{{model}}@{{version}}"


def _thresholds(config: MonitorConfig, metric: str | None) -> dict[str, Any]:
    """Grafana threshold steps (ascending) from a rule's levels: the colour of values at and above each."""
    threshold = config.rules.get(metric) if metric else None
    levels = [(v, level) for level in ("warning", "critical") if (v := getattr(threshold, level, None)) is not None]
    if not levels:
        return {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    colour = {"warning": "orange", "critical": "red"}
    if METRICS[metric].breach == "above":
        steps = [{"color": "green", "value": None}]
        steps += [{"color": colour[level], "value": v} for v, level in sorted(levels)]
    else:  # below: under the lowest threshold is the worst level; from the highest one up, values are fine
        ordered = sorted(levels)
        above_each = [colour[level] for _, level in ordered[1:]] + ["green"]
        steps = [{"color": colour[ordered[0][1]], "value": None}]
        steps += [{"color": c, "value": v} for (v, _), c in zip(ordered, above_each, strict=True)]
    return {"mode": "absolute", "steps": steps}


def _panel(
    config: MonitorConfig,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    *,
    metric: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    has_thresholds = metric is not None and metric in config.rules
    return {
        "type": "timeseries",
        "title": title,
        "description": description or (METRICS[metric].description if metric else ""),
        "datasource": _DATASOURCE,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "color": {"mode": "palette-classic"},
                "thresholds": _thresholds(config, metric),
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 2,
                    "fillOpacity": 0,
                    "spanNulls": False,
                    "thresholdsStyle": {"mode": "line+area" if has_thresholds else "off"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def _metric_panel(config: MonitorConfig, env: str, title: str, metric: str) -> dict[str, Any]:
    expr = promql(metric, env, "$__rate_interval")
    assert expr is not None, metric
    return _panel(config, title, [(expr, _LEGEND)], _GRAFANA_UNITS.get(METRICS[metric].unit, "short"), metric=metric)


def grafana_dashboard(config: MonitorConfig, env: str) -> dict[str, JsonValue]:
    """A Grafana dashboard (JSON model, schema 39) of the environment: traffic, latency, cost and replicas,
    with each rule's thresholds drawn on its panel; the Prometheus data source is chosen on import."""
    _check_env(env)
    sel = f'env="{env}"'
    rows: list[tuple[str, list[dict[str, Any]]]] = [
        (
            "Traffic",
            [
                _metric_panel(config, env, "Requests per second", "throughput_rps"),
                _panel(
                    config,
                    "Requests by status",
                    [
                        (
                            f"sum by ({BY}, code) (rate({REQUESTS}{{{sel}}}[$__rate_interval]))",
                            _LEGEND + " {{code}}",
                        )
                    ],
                    "reqps",
                    description="Requests per second by HTTP status.",
                ),
                _metric_panel(config, env, "Error rate", "error_rate"),
                _metric_panel(config, env, "Availability", "availability"),
            ],
        ),
        (
            "Latency",
            [
                _metric_panel(config, env, "Latency p50", "latency_p50_ms"),
                _metric_panel(config, env, "Latency p95", "latency_p95_ms"),
                _metric_panel(config, env, "Latency p99", "latency_p99_ms"),
            ],
        ),
        (
            "Tokens and cost",
            [
                _panel(
                    config,
                    "Tokens per second",
                    [
                        (
                            f"sum by ({BY}, direction) (rate({TOKENS}{{{sel}}}[$__rate_interval]))",
                            _LEGEND + " {{direction}}",
                        )
                    ],
                    "short",
                    description="Input and output tokens per second.",
                ),
                _panel(
                    config,
                    "Cost per hour",
                    [(f"3600 * {_rate(COST, env, '$__rate_interval')}", _LEGEND)],
                    "currencyUSD",
                    description="Token cost per hour of API models (self-hosted replica time is priced by llmci "
                    "monitor check).",
                ),
                _metric_panel(config, env, "Cost per request", "cost_per_request_usd"),
                _metric_panel(config, env, "Cost per 1k tokens", "cost_per_1k_tokens_usd"),
            ],
        ),
        (
            "Replicas",
            [
                _metric_panel(config, env, "Unhealthy replicas", "unhealthy_replicas"),
                _metric_panel(config, env, "CPU", "cpu_percent"),
                _metric_panel(config, env, "Memory", "memory_mb"),
                _metric_panel(config, env, "GPU", "gpu_percent"),
                _panel(
                    config,
                    "Request records dropped",
                    [(f"sum by (env) (rate({DROPPED}{{{sel}}}[$__rate_interval]))", "dropped")],
                    "short",
                    description="Request records the serving application could not keep (buffer full or writes "
                    "failing): the monitor's view of this traffic is incomplete while this is above 0.",
                ),
            ],
        ),
    ]
    panels: list[dict[str, Any]] = []
    y = 0
    for title, members in rows:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        y += 1
        per_row = 3 if len(members) % 3 == 0 or len(members) > 4 else 2
        width = 24 // per_row
        for index, panel in enumerate(members):
            panel["gridPos"] = {"h": 8, "w": width, "x": (index % per_row) * width, "y": y + (index // per_row) * 8}
        y += 8 * math.ceil(len(members) / per_row)
        panels.extend(members)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "id": None,
        "uid": f"llmci-{env}",
        "title": f"llmci · {env}",
        "description": f"Serving health of the llmci environment '{env}' (generated by llmci from llmci.yaml).",
        "tags": ["llmci"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": f"now-{config.window}", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "panels": panels,
    }
