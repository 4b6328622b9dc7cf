"""`llmci monitor check` on records written the way the router writes them (no Ray: the parts are made here)."""

from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from llmci.config import load_config
from llmci.monitor.check import check, judge, resolve_reference
from llmci.monitor.records import read_window, write_part
from llmci.monitor.report import MonitorReport
from llmci.registry.file_store import FileStore
from tests.conftest import QUICKSTART, run_llmci

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
LABELS = ["billing", "bug", "account", "feature"]


def _rows(version: int, n: int, *, errors: int = 0, latency_ms: float = 100.0, minutes: int = 60, seed: int = 0):
    rng = random.Random(seed + version)
    tickets = [json.loads(line)["vars"]["ticket"] for line in (QUICKSTART / "data/eval.jsonl").read_text().splitlines()]
    for index in range(n):
        ticket = rng.choice(tickets)
        label = rng.choice(LABELS)
        failed = index < errors
        yield {
            "time": NOW - timedelta(seconds=rng.uniform(1, minutes * 60)),
            "env": "prod",
            "model": "ticket-router",
            "version": version,
            "kind": "live",
            "route": "/v1/completions",
            "status": 500 if failed else 200,
            "latency_ms": latency_ms * rng.uniform(0.8, 1.2),
            "queue_ms": 3.0,
            "input_tokens": len(ticket) // 4,
            "output_tokens": 0 if failed else 2,
            "prompt": None,
            "vars": json.dumps({"ticket": ticket, "labels": LABELS}),
            "prompt_chars": len(ticket) + 300,
            "non_ascii_share": 0.0,
            "charset": "latin",
            "oov_share": 0.0,
            "output": None if failed else label,
            "output_chars": 0 if failed else len(label),
            "finish_reason": None if failed else "stop",
            "replica": f"replica-{version}",
            "request_id": f"cmpl-{version}-{index}",
        }


@pytest.fixture
def loaded(tmp_path: Path):
    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, tmp_path / name)
    config = yaml.safe_load((QUICKSTART / "llmci.yaml").read_text())
    config = {
        "registry": {"uri": "file://.llmci/registry"},
        "eval": config["eval"],
        "deploy": {"environments": {"prod": {"smoke": {"suite": "routing"}}}},
        "monitor": {
            "window": "1h",
            "bucket": "10m",
            "min_requests": 20,
            "rules": {
                "error_rate": {"warning": 0.01, "critical": 0.1},
                "latency_p95_ms": {"warning": 500, "critical": 2000},
                "availability": {"critical": 0.5},
            },
            "cost": {"replica_hour_usd": 3.6},
        },
    }
    (tmp_path / "llmci.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "llmci.yaml")


def test_each_version_is_measured_and_judged(loaded) -> None:
    store = FileStore(loaded.root / ".llmci" / "registry")
    write_part(store, "prod", [*_rows(1, 150), *_rows(2, 50, errors=10, latency_ms=700)])
    reference = resolve_reference(loaded, "prod", store, None)
    report = check(loaded, "prod", store, start=NOW - timedelta(hours=1), end=NOW, reference=reference, now=NOW)

    assert report.records == 200
    assert report.reference == "eval suite 'routing' (91 cases)"
    one, two = report.versions
    assert (one.ref, one.requests, one.errors) == ("ticket-router@1", 150, 0)
    assert (two.ref, two.requests, two.errors) == ("ticket-router@2", 50, 10)
    assert one.traffic_share == pytest.approx(0.75) and two.traffic_share == pytest.approx(0.25)
    assert two.metrics["error_rate"] == pytest.approx(0.2)
    assert 80 <= one.metrics["latency_p50_ms"] <= 120
    assert 560 <= two.metrics["latency_p95_ms"] <= 840
    assert one.metrics["throughput_rps"] == pytest.approx(150 / 3600)
    # One replica seen in each of the six 10-minute steps: an hour of one replica at 3.60 USD an hour.
    assert one.cost.basis == "replica-hours" and one.cost.usd == pytest.approx(3.6)
    assert one.cost.per_request_usd == pytest.approx(3.6 / 150)
    assert {test.descriptor for test in one.drift} >= {"prompt_chars", "label"}

    levels = {(f.model, f.version, f.rule): f.level for f in report.findings}
    assert levels[("ticket-router", 2, "error_rate")] == "critical"
    assert levels[("ticket-router", 2, "latency_p95_ms")] == "warning"
    assert levels[("ticket-router", 1, "error_rate")] == "ok"
    assert levels[("ticket-router", 2, "availability")] == "ok"  # 0.8 is above 0.5
    assert report.level == "critical"
    critical = next(f for f in report.findings if f.level == "critical")
    assert critical.fingerprint == "error_rate/prod/ticket-router@2"
    assert critical.message == "ticket-router@2: error_rate 0.2 ratio > 0.1"

    # Six steps of ten minutes, each with both versions.
    assert len({point.start for point in report.series}) == 6
    assert sum(point.requests for point in report.series) == 200
    MonitorReport.model_validate_json(report.model_dump_json())  # the document round-trips


def test_a_quiet_version_is_no_data_at_the_configured_level(loaded) -> None:
    store = FileStore(loaded.root / ".llmci" / "registry")
    write_part(store, "prod", list(_rows(1, 5)))
    report = check(loaded, "prod", store, start=NOW - timedelta(hours=1), end=NOW, reference=None, now=NOW)
    findings = {f.rule: f for f in report.findings}
    assert findings["no_data"].level == "warning"
    assert findings["no_data"].message == "ticket-router@1 answered 5 requests in the window (rules need 20)"
    # The rules keep their state: a version that went quiet has not recovered.
    assert findings["error_rate"].level == "no_data"
    assert report.level == "warning"


def test_the_window_reads_only_its_records_and_skips_an_unreadable_part(loaded) -> None:
    store = FileStore(loaded.root / ".llmci" / "registry")
    keys = write_part(store, "prod", list(_rows(1, 40, minutes=120)))
    broken = keys[-1].replace("part-", "part-0-broken-")  # in the window's hour
    store.create(broken, b"not parquet")
    table, notes = read_window(store, "prod", NOW - timedelta(hours=1), NOW, ["status"])
    assert 0 < table.num_rows < 40
    assert len(notes) == 1 and notes[0].startswith(broken) and "unreadable part skipped" in notes[0]


def test_judge_breaches_below_for_availability(loaded) -> None:
    from llmci.monitor.report import VersionHealth

    health = VersionHealth(
        model="m", version=3, requests=100, errors=60, traffic_share=1.0, metrics={"availability": 0.4}
    )
    (finding,) = [f for f in judge(health, "prod", loaded.config.monitor) if f.rule == "availability"]
    assert (finding.level, finding.threshold) == ("critical", 0.5)
    assert finding.message == "m@3: availability 0.4 ratio < 0.5"


def test_the_command_writes_the_dashboard_and_exits_1_on_a_critical_breach(loaded) -> None:
    store = FileStore(loaded.root / ".llmci" / "registry")
    end = datetime.now(timezone.utc)
    rows = [{**row, "time": row["time"] + (end - NOW)} for row in [*_rows(1, 150), *_rows(2, 50, errors=10)]]
    write_part(store, "prod", rows)
    out = loaded.root / "out"
    result = run_llmci("monitor", "check", "--env", "prod", "--out", str(out), "--no-png", cwd=loaded.root)
    assert result.code == 1, result.stderr
    assert "prod: CRITICAL (200 records" in result.stdout
    assert "critical: ticket-router@2: error_rate 0.2 ratio > 0.1" in result.stdout
    assert "Serve status not read: prod has no address and no local Ray head is running" in result.stderr
    report = MonitorReport.model_validate_json((out / "monitor.json").read_text())
    assert [v.ref for v in report.versions] == ["ticket-router@1", "ticket-router@2"]
    assert (out / "monitor.html").read_text().lstrip().lower().startswith("<!doctype html>")
    assert "ticket-router@2" in (out / "summary.md").read_text()


def test_bad_window_is_a_usage_error(loaded) -> None:
    result = run_llmci("monitor", "check", "--env", "prod", "--window", "soon", cwd=loaded.root)
    assert result.code == 2
    assert "--window: 'soon' is not a duration like 90s, 15m, 1h or 7d" in result.stderr


def test_sampled_records_stand_for_the_requests_they_sample(loaded) -> None:
    store = FileStore(loaded.root / ".llmci" / "registry")
    write_part(store, "prod", [{**row, "sample_rate": 0.1} for row in _rows(1, 100, errors=5)])
    report = check(loaded, "prod", store, start=NOW - timedelta(hours=1), end=NOW, reference=None, now=NOW)
    (health,) = report.versions
    assert (health.requests, health.errors) == (1000, 50)
    assert health.metrics["error_rate"] == pytest.approx(0.05)
    assert health.metrics["throughput_rps"] == pytest.approx(1000 / 3600)


def test_an_outage_without_traffic_is_judged_on_the_cluster(loaded) -> None:
    from llmci.config import MonitorConfig
    from llmci.monitor.report import VersionHealth

    config = MonitorConfig(
        min_requests=20, rules={"unhealthy_replicas": {"critical": 0}, "error_rate": {"critical": 0.1}}
    )
    health = VersionHealth(
        model="m", version=3, requests=5, errors=0, traffic_share=1.0, metrics={"unhealthy_replicas": 2.0}
    )
    levels = {f.rule: f.level for f in judge(health, "prod", config)}
    assert levels == {"no_data": "warning", "unhealthy_replicas": "critical", "error_rate": "no_data"}
