"""Production monitoring on the real serving application: records, Prometheus metrics, `llmci monitor`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from llmci.monitor.records import read_window
from llmci.registry.file_store import FileStore
from tests.conftest import run_llmci
from tests.deploy.conftest import Project, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[callable]:
    """Debian's Prometheus, scraping a target every second; its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is not installed (Debian: apt-get install prometheus)")
    procs = []

    def start(target: str) -> str:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "ray", "static_configs": [{"targets": [target]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / "prometheus.log").open("w"),
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def query(url: str, promql: str) -> list[dict]:
    try:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    except httpx.HTTPError:
        return []
    return answer.json()["data"]["result"] if answer.status_code == 200 else []


def wait_for(what: str, probe, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_served_requests_become_records_metrics_and_a_monitor_report(project: Project, prometheus) -> None:
    from llmci.deploy import local_head

    ref = project.publish()
    version = int(ref.rpartition("@")[2])  # the package's tests share one registry: not always 1
    deployed = project.deploy(ref, "--env", "watched")
    assert deployed.code == 0, deployed.stderr
    cases = [json.loads(line) for line in (project.root / "data" / "eval.jsonl").read_text().splitlines()][:30]
    url = project.url("watched")
    with httpx.Client(timeout=60) as client:
        for case in cases:
            answer = client.post(
                f"{url}/completions", json={"model": "ticket-router", "vars": case["vars"], "max_tokens": 3}
            )
            assert answer.status_code == 200
        chat = client.post(
            f"{url}/chat/completions", json={"model": ref, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert chat.status_code == 200
        refused = client.post(f"{url}/completions", json={"model": "ticket-router", "prompt": 5})
        assert refused.status_code == 400
        unknown = client.post(f"{url}/completions", json={"model": "no-such-model", "prompt": "hi"})
        assert unknown.status_code == 404

    store = FileStore(project.root / ".llmci" / "registry")
    now = datetime.now(timezone.utc)

    def records():
        table, notes = read_window(store, "watched", now - timedelta(minutes=10), now + timedelta(minutes=1))
        assert notes == []
        return table if table.num_rows >= 33 else None

    table = wait_for("33 records", records, timeout_s=30)
    rows = table.to_pylist()
    assert len(rows) == 33
    served = [row for row in rows if row["status"] == 200 and row["route"] == "/v1/completions"]
    assert len(served) == 30
    first = min(served, key=lambda row: row["time"])
    assert (first["env"], first["model"], first["version"], first["kind"]) == (
        "watched",
        "ticket-router",
        version,
        "live",
    )
    assert first["route"] == "/v1/completions" and first["finish_reason"] in ("stop", "length")
    assert first["latency_ms"] > 0 and first["queue_ms"] >= 0 and first["input_tokens"] > 0
    assert first["prompt_chars"] > len(json.loads(first["vars"])["ticket"])  # the rendered prompt, template and all
    assert first["charset"] == "latin" and 0 <= first["oov_share"] <= 1
    assert json.loads(first["vars"]) in [case["vars"] for case in cases]  # prompts: full keeps the vars as sent
    assert first["output"] is not None and first["output_chars"] == len(first["output"])
    assert first["replica"] and first["request_id"].startswith("cmpl-")
    (chat,) = [row for row in rows if row["route"] == "/v1/chat/completions"]
    assert (chat["kind"], chat["status"], chat["prompt"]) == ("pinned", 200, "hi")
    (bad,) = [row for row in rows if row["status"] == 400]
    assert (bad["kind"], bad["output"], bad["output_tokens"]) == ("live", None, 0)
    (lost,) = [row for row in rows if row["status"] == 404]  # no version could be chosen: recorded all the same
    assert (lost["model"], lost["version"], lost["prompt"]) == ("no-such-model", None, "hi")

    # Prometheus scrapes the head: the router's own metrics, per version, next to Ray Serve's.
    head = local_head.running(project.root)
    prom = prometheus(f"127.0.0.1:{head.metrics_port}")
    total = 'sum(ray_llmci_requests_total{env="watched"})'
    wait_for("the request counter", lambda: [r for r in query(prom, total) if float(r["value"][1]) >= 33])
    by_code = query(prom, 'sum by (version, code) (ray_llmci_requests_total{env="watched"})')
    assert {(r["metric"].get("version"), r["metric"]["code"]): float(r["value"][1]) for r in by_code} == {
        (str(version), "200"): 31.0,
        (str(version), "400"): 1.0,
        (None, "404"): 1.0,  # Prometheus drops the empty version label
    }
    assert query(prom, 'sum(ray_llmci_request_latency_ms_count{env="watched"})')
    assert query(prom, "ray_serve_num_http_requests_total")
    memory = f'ray_component_rss_mb{{Component=~"(?:ray::)?ServeReplica:llmci-watched--ticket-router-{version}:.*"}}'
    wait_for("the replica's memory", lambda: query(prom, memory))

    # `llmci monitor check` reads the records, Serve's status and Prometheus.
    config = yaml.safe_load((project.root / "llmci.yaml").read_text())
    config["monitor"] = {**config["monitor"], "prometheus_url": prom}
    (project.root / "llmci-prometheus.yaml").write_text(yaml.safe_dump(config))
    out = project.root / "out" / "watched"
    result = run_llmci(
        "monitor", "check", "--env", "watched", "--window", "15m", "--out", str(out), "--no-png",
        "--config", str(project.root / "llmci-prometheus.yaml"), cwd=project.root, timeout=120,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("watched: OK (33 records")
    report = json.loads((out / "monitor.json").read_text())
    (health,) = report["versions"]
    assert (health["model"], health["version"], health["requests"]) == ("ticket-router", version, 32)
    assert (health["serve_status"], health["replicas_running"], health["replicas_unhealthy"]) == ("RUNNING", 1, 0)
    assert health["resources"]["memory_mb"] > 10 and health["resources"]["cpu_percent"] is not None
    assert health["metrics"]["error_rate"] == 0 and health["metrics"]["latency_p95_ms"] > 0
    assert {test["descriptor"] for test in health["drift"]} >= {"prompt_chars", "label"}
    assert [mark["action"] for mark in report["deploys"]][-1] == "deployed"

    # The week's traffic as next week's eval cases.
    sampled = project.root / "out" / "cases.jsonl"
    result = run_llmci(
        "monitor", "sample", "--env", "watched", "--window", "1h", "--n", "10", "--out", str(sampled),
        cwd=project.root,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in sampled.read_text().splitlines()]
    assert len(lines) == 10 and all(line["vars"] in [case["vars"] for case in cases] for line in lines)
    assert all(line["metadata"]["version"] == version and "actual_output" in line for line in lines)
