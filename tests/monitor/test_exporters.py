"""Prometheus rules and the Grafana dashboard, checked by Prometheus' own promtool.

`promtool check rules` parses every expression; `promtool test rules` feeds series to the rules and
says which alerts fire: that proves the PromQL means what the rule's name says.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from llmci.config import MonitorConfig
from llmci.errors import UsageError
from llmci.monitor.exporters import NOT_EXPRESSIBLE, grafana_dashboard, prometheus_rules, promql
from llmci.monitor.metrics import METRICS

ENV = "production"
#: A threshold pair for every metric a rule can name (warning, critical), in the metric's unit and direction.
EVERY_RULE = {
    "error_rate": {"warning": 0.02, "critical": 0.05},
    "availability": {"warning": 0.99, "critical": 0.95},
    "latency_p50_ms": {"warning": 300, "critical": 600},
    "latency_p95_ms": {"warning": 800, "critical": 1500},
    "latency_p99_ms": {"warning": 1500, "critical": 3000},
    "queue_p95_ms": {"warning": 100, "critical": 500},
    "throughput_rps": {"warning": 0.5, "critical": 0.1},
    "cost_per_1k_tokens_usd": {"warning": 0.01, "critical": 0.05},
    "cost_per_request_usd": {"warning": 0.002, "critical": 0.01},
    "unhealthy_replicas": {"warning": 0, "critical": 1},
    "cpu_percent": {"warning": 80, "critical": 95},
    "memory_mb": {"warning": 4000, "critical": 8000},
    "gpu_percent": {"warning": 90, "critical": 99},
    "drifted_descriptors": {"warning": 1, "critical": 3},
    "empty_output_share": {"warning": 0.05, "critical": 0.2},
}
EXPRESSIBLE = [m for m in METRICS if m not in NOT_EXPRESSIBLE]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("no promtool here (Debian's prometheus package); CI installs it")
    return found


def _config(rules: dict, **more) -> MonitorConfig:
    return MonitorConfig(rules=rules, **more)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_expressible_rule_passes_promtool(tmp_path: Path, promtool: str) -> None:
    assert set(EVERY_RULE) == set(METRICS)
    config = _config(EVERY_RULE, dashboard_url="https://admin:hunter2@grafana.example.com/d/llmci")
    text = prometheus_rules(config, ENV)
    (tmp_path / "rules.yml").write_text(text)

    checked = _run(promtool, "check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {2 * len(EXPRESSIBLE)} rules found" in checked.stdout

    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert sorted({r["labels"]["llmci_rule"] for r in rules}) == sorted(EXPRESSIBLE)
    for rule in rules:
        metric, level = rule["labels"]["llmci_rule"], rule["labels"]["severity"]
        assert rule["labels"]["env"] == ENV and rule["for"] == "5m"
        side = ">" if METRICS[metric].breach == "above" else "<"
        assert rule["expr"].endswith(f") {side} {EVERY_RULE[metric][level]}")
        assert "llmci deploy rollback --env production" in rule["annotations"]["runbook"]
        assert rule["annotations"]["dashboard"] == "https://grafana.example.com/d/llmci"
    # Each metric Prometheus cannot tell is named in a comment, with where it is checked instead.
    for metric in NOT_EXPRESSIBLE:
        assert re.search(
            rf"^# {metric}: not expressible in PromQL .*\n#   it is checked by `llmci monitor check`", text, re.M
        )
    assert "hunter2" not in text


def test_a_level_left_out_makes_no_rule(tmp_path: Path, promtool: str) -> None:
    text = prometheus_rules(
        _config({"error_rate": {"critical": 0.1}, "drifted_descriptors": {"warning": 1}}), "staging"
    )
    (tmp_path / "rules.yml").write_text(text)
    checked = _run(promtool, "check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0 and "SUCCESS: 1 rules found" in checked.stdout, checked.stdout + checked.stderr
    (rule,) = yaml.safe_load(text)["groups"][0]["rules"]
    assert (rule["alert"], rule["labels"]["severity"], rule["labels"]["env"]) == (
        "LlmciErrorRate",
        "critical",
        "staging",
    )


def test_a_bad_environment_name_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match=r"^environment 'Prod\"}': not an environment name; lowercase words"):
        prometheus_rules(_config({}), 'Prod"}')
    with pytest.raises(UsageError, match="not an environment name"):
        grafana_dashboard(_config({}), "a--b")


# -- what the alerts mean: promtool feeds series to the rules ------------------------------------------


def _promtool_test(tmp_path: Path, promtool: str, config: MonitorConfig, series: list[dict], alerts: list[dict]):
    (tmp_path / "rules.yml").write_text(prometheus_rules(config, ENV))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = _run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _requests(model: str, version: int, code: int, per_minute: int, env: str = ENV) -> dict:
    labels = f'env="{env}",model="{model}",version="{version}",kind="live",code="{code}"'
    return {"series": f"ray_llmci_requests_total{{{labels}}}", "values": f"0+{per_minute}x30"}


def _alert(metric: str, level: str, model: str, version: int, summary: str, description_value: str) -> dict:
    return {
        "exp_labels": {
            "severity": level,
            "env": ENV,
            "llmci_rule": metric,
            "model": model,
            "version": str(version),
        },
        "exp_annotations": {
            "summary": summary,
            "description": description_value,
            "runbook": f"Look: llmci monitor check --env {ENV}. Undo the last deploy: llmci deploy rollback --env "
            f"{ENV} (or run the deploy workflow with action rollback).",
        },
    }


def _description(metric: str, level: str, threshold: str) -> str:
    side = "above" if METRICS[metric].breach == "above" else "below"
    return (
        f"{METRICS[metric].description} Fires {side} {threshold} (llmci.yaml monitor.rules.{metric}.{level})"
        " for 5m, rates taken over 5m."
    )


def test_the_error_rate_alert_fires_for_the_failing_version_only(tmp_path: Path, promtool: str) -> None:
    config = _config({"error_rate": EVERY_RULE["error_rate"]})
    series = [
        # chat@3: 200 a minute, no 5xx series at all (its error rate is 0, not unknown).
        _requests("chat", 3, 200, 200),
        # chat@4: 90 good and 10 failed a minute, 10%: above both thresholds.
        _requests("chat", 4, 200, 90),
        _requests("chat", 4, 500, 10),
        # chat@5: 3% (above warning only), with a 4xx that is the client's fault, not an error.
        _requests("chat", 5, 200, 90),
        _requests("chat", 5, 503, 3),
        _requests("chat", 5, 400, 7),
        # Another environment's failures are not this one's.
        _requests("chat", 4, 500, 100, env="staging"),
    ]

    def fired(level: str, version: int, value: str) -> dict:
        threshold = "2.00%" if level == "warning" else "5.00%"
        return _alert(
            "error_rate",
            level,
            "chat",
            version,
            f"error_rate of chat@{version} in production is {value}, above the {level} threshold {threshold}",
            _description("error_rate", level, threshold),
        )

    _promtool_test(
        tmp_path,
        promtool,
        config,
        series,
        [
            # Pending for its `for: 5m` first: nothing fires at 4 minutes.
            {"eval_time": "4m", "alertname": "LlmciErrorRate", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": "LlmciErrorRate",
                "exp_alerts": [fired("warning", 4, "10%"), fired("critical", 4, "10%"), fired("warning", 5, "3%")],
            },
        ],
    )


def test_availability_is_one_minus_the_error_rate(tmp_path: Path, promtool: str) -> None:
    config = _config({"availability": EVERY_RULE["availability"]})
    series = [_requests("chat", 3, 200, 200), _requests("chat", 4, 200, 90), _requests("chat", 4, 502, 10)]
    alerts = [
        _alert(
            "availability",
            level,
            "chat",
            4,
            f"availability of chat@4 in production is 90%, below the {level} threshold {threshold}",
            _description("availability", level, threshold),
        )
        for level, threshold in (("warning", "99.00%"), ("critical", "95.00%"))
    ]
    _promtool_test(
        tmp_path,
        promtool,
        config,
        series,
        [{"eval_time": "15m", "alertname": "LlmciAvailability", "exp_alerts": alerts}],
    )


def test_the_latency_alert_reads_the_histogram_per_version(tmp_path: Path, promtool: str) -> None:
    config = _config({"latency_p95_ms": EVERY_RULE["latency_p95_ms"]})

    def buckets(version: int, per_minute: dict[str, int]) -> list[dict]:
        # Cumulative buckets, as Prometheus histograms are.
        total, out = 0, []
        for le, count in per_minute.items():
            total += count
            labels = f'env="{ENV}",model="chat",version="{version}",le="{le}"'
            out.append({"series": f"ray_llmci_request_latency_ms_bucket{{{labels}}}", "values": f"0+{total}x30"})
        return out

    series = buckets(3, {"100": 90, "500": 10, "1000": 0, "2000": 0, "+Inf": 0})  # p95 in 100-500 ms
    series += buckets(4, {"100": 10, "500": 10, "1000": 20, "2000": 60, "+Inf": 0})  # p95 in 1000-2000 ms
    # chat@4: p95 is 95% of 100 = 95th request; 40 are under 1000, the 60 in 1000-2000: 1000 + 1000 * 55/60.
    alerts = [
        _alert(
            "latency_p95_ms",
            level,
            "chat",
            4,
            f"latency_p95_ms of chat@4 in production is 1917 ms, above the {level} threshold {threshold}",
            _description("latency_p95_ms", level, threshold),
        )
        for level, threshold in (("warning", "800 ms"), ("critical", "1.50 s"))
    ]
    _promtool_test(
        tmp_path,
        promtool,
        config,
        series,
        [{"eval_time": "15m", "alertname": "LlmciLatencyP95Ms", "exp_alerts": alerts}],
    )


def test_unhealthy_replicas_count_against_the_target(tmp_path: Path, promtool: str) -> None:
    """Ray Serve reports each replica 1 (healthy) or 0, and the deployment's target; model names may hold hyphens."""
    config = _config({"unhealthy_replicas": EVERY_RULE["unhealthy_replicas"]})

    def app(version: int, env: str = ENV) -> str:
        return f'application="llmci-{env}--my-chat-2-{version}",deployment="model"'

    series = [
        {"series": f"ray_serve_autoscaling_target_replicas{{{app(3)}}}", "values": "2x30"},
        {"series": f'ray_serve_deployment_replica_healthy{{{app(3)},replica="a"}}', "values": "1x30"},
        {"series": f'ray_serve_deployment_replica_healthy{{{app(3)},replica="b"}}', "values": "1x30"},
        # my-chat-2@4: one of two replicas fails its health checks.
        {"series": f"ray_serve_autoscaling_target_replicas{{{app(4)}}}", "values": "2x30"},
        {"series": f'ray_serve_deployment_replica_healthy{{{app(4)},replica="c"}}', "values": "1x30"},
        {"series": f'ray_serve_deployment_replica_healthy{{{app(4)},replica="d"}}', "values": "0x30"},
        # my-chat-2@5: starting, no replica healthy yet (no healthy series at all).
        {"series": f"ray_serve_autoscaling_target_replicas{{{app(5)}}}", "values": "1x30"},
        # The router, and another environment's version, are not this environment's versions.
        {
            "series": f'ray_serve_autoscaling_target_replicas{{application="llmci-{ENV}",deployment="router"}}',
            "values": "3x30",
        },
        {"series": f"ray_serve_autoscaling_target_replicas{{{app(4, 'staging')}}}", "values": "5x30"},
    ]

    def fired(level: str, version: int) -> dict:
        threshold = "0" if level == "warning" else "1"
        return _alert(
            "unhealthy_replicas",
            level,
            "my-chat-2",
            version,
            f"unhealthy_replicas of my-chat-2@{version} in production is 1, above the {level} threshold {threshold}",
            _description("unhealthy_replicas", level, threshold),
        )

    _promtool_test(
        tmp_path,
        promtool,
        config,
        series,
        [
            {
                "eval_time": "15m",
                "alertname": "LlmciUnhealthyReplicas",
                "exp_alerts": [fired("warning", 4), fired("warning", 5)],
            }
        ],
    )


def test_replica_resources_are_read_from_the_component_name(tmp_path: Path, promtool: str) -> None:
    config = _config({"cpu_percent": EVERY_RULE["cpu_percent"]})

    def component(app: str, ip: str, value: int) -> dict:
        labels = f'Component="ray::ServeReplica:{app}:model",ip="{ip}",SessionName="s"'
        return {"series": f"ray_component_cpu_percentage{{{labels}}}", "values": f"{value}x30"}

    series = [
        component(f"llmci-{ENV}--my-chat-2-4", "10.0.0.1", 50),  # two nodes of my-chat-2@4: 50 + 40 = 90%
        component(f"llmci-{ENV}--my-chat-2-4", "10.0.0.2", 40),
        component(f"llmci-{ENV}--my-chat-2-3", "10.0.0.1", 20),
        component("llmci-staging--my-chat-2-4", "10.0.0.3", 400),
        {"series": 'ray_component_cpu_percentage{Component="raylet",ip="10.0.0.1"}', "values": "300x30"},
    ]
    alert = _alert(
        "cpu_percent",
        "warning",
        "my-chat-2",
        4,
        "cpu_percent of my-chat-2@4 in production is 90.0%, above the warning threshold 80.0%",
        _description("cpu_percent", "warning", "80.0%"),
    )
    _promtool_test(
        tmp_path,
        promtool,
        config,
        series,
        [{"eval_time": "10m", "alertname": "LlmciCpuPercent", "exp_alerts": [alert]}],
    )


# -- Grafana -------------------------------------------------------------------------------------------


def test_the_grafana_dashboard_has_a_panel_per_metric_with_its_thresholds(tmp_path: Path, promtool: str) -> None:
    config = _config(EVERY_RULE, window="6h")
    board = grafana_dashboard(config, ENV)
    json.dumps(board)  # a JSON model, nothing else in it

    assert board["schemaVersion"] == 39 and board["uid"] == "llmci-production" and board["time"]["from"] == "now-6h"
    (variable,) = board["templating"]["list"]
    assert (variable["type"], variable["query"], variable["name"]) == ("datasource", "prometheus", "datasource")
    panels = [p for p in board["panels"] if p["type"] == "timeseries"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])

    # A panel per metric Prometheus can tell, with the same PromQL as the alert (Grafana's rate interval).
    by_expr = {t["expr"]: p for p in panels for t in p["targets"]}
    for metric in EXPRESSIBLE:
        panel = by_expr[promql(metric, ENV, "$__rate_interval")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        warning, critical = EVERY_RULE[metric]["warning"], EVERY_RULE[metric]["critical"]
        if METRICS[metric].breach == "above":
            assert steps == [
                {"color": "green", "value": None},
                {"color": "orange", "value": warning},
                {"color": "red", "value": critical},
            ], metric
        else:
            assert steps == [
                {"color": "red", "value": None},
                {"color": "orange", "value": critical},
                {"color": "green", "value": warning},
            ], metric
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line+area"
    titles = [p["title"] for p in panels]
    for title in ("Requests per second", "Error rate", "Latency p95", "Tokens per second", "Cost per hour"):
        assert title in titles
    assert "Unhealthy replicas" in titles and "Request records dropped" in titles

    # The panels tile the 24-column grid without overlapping.
    cells = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))

    # Every query is PromQL Prometheus parses (as recording rules, with Grafana's interval made concrete).
    records = [
        {"record": f"llmci:panel_{i}", "expr": t["expr"].replace("$__rate_interval", "5m")}
        for i, p in enumerate(panels)
        for t in p["targets"]
    ]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": records}]}))
    checked = _run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(records)} rules found" in checked.stdout


def test_a_panel_without_a_rule_draws_no_threshold() -> None:
    board = grafana_dashboard(_config({"latency_p95_ms": {"warning": 800}}), ENV)
    panels = {p["title"]: p for p in board["panels"]}
    assert panels["Latency p95"]["fieldConfig"]["defaults"]["thresholds"]["steps"] == [
        {"color": "green", "value": None},
        {"color": "orange", "value": 800},
    ]
    assert panels["Latency p99"]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "off"
