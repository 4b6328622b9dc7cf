"""`llmci eval` against real targets: recorded outputs, a local OpenAI-compatible HTTP server
(with faults), a tiny transformers model from a folder and from the registry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llmci.config import load_config
from llmci.eval.results import read_results, write_results
from llmci.eval.runner import run_eval
from tests.conftest import QUICKSTART, run_llmci
from tests.eval.openai_server import OpenAIServer

LABELS = {"refund": "billing", "crash": "bug", "password": "account"}


def route(prompt: str) -> str:
    """The 'model' behind the local server: routes by keyword, like a decent classifier."""
    return next((label for word, label in LABELS.items() if word in prompt), "feature")


def write_project(
    root: Path, *, metrics: list[dict], lines: list[dict], suite: dict | None = None, **eval_keys
) -> Path:
    suite = {"dataset": "cases.jsonl", "metrics": metrics, "generation": {"max_new_tokens": 8}, **(suite or {})}
    config = {"eval": {"suites": {"tickets": suite}, "retries": 2, **eval_keys}}
    (root / "llmci.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    (root / "cases.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


#: GEval's evaluation_params, as test-case field names.
PARAMS = ["input", "actual_output"]

TICKETS = [
    {"id": "t1", "input": "I want a refund for last month", "expected_output": "billing"},
    {"id": "t2", "input": "The app crash on start", "expected_output": "bug"},
    {"id": "t3", "input": "Reset my password please", "expected_output": "account"},
    {"id": "t4", "input": "Please add dark mode", "expected_output": "feature"},
    {"id": "t5", "input": "Another refund question", "expected_output": "bug"},  # the model will be wrong
]


def by_case(rows: list[dict], metric: str) -> dict[str, dict]:
    return {row["case_id"]: row for row in rows if row["metric"] == metric}


def test_recorded_outputs_are_scored_with_deepeval_and_llmci_metrics(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "input": "q", "expected_output": "the cat sat on the mat", "actual_output": "the cat sat on the mat"},
        {"id": 2, "input": "q", "expected_output": "the cat sat on the mat", "actual_output": "a cat sat on a mat"},
        {"id": 3, "input": "q", "expected_output": "yes", "actual_output": "no", "latency_ms": 900, "cost": 0.002},
    ]
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}, {"name": "RougeL", "threshold": 0.6}], lines=lines)
    run = run_eval(load_config(root / "llmci.yaml"), "tickets", "recorded")
    exact, rouge = by_case(run.results.rows, "ExactMatch"), by_case(run.results.rows, "RougeL")
    assert [exact[i]["success"] for i in "123"] == [True, False, False]
    assert rouge["1"]["score"] == 1.0 and rouge["2"]["score"] == pytest.approx(4 / 6)  # cat sat on mat: 4 of 6 words
    assert rouge["2"]["success"] is True and rouge["3"]["score"] == 0.0
    assert exact["3"]["latency_ms"] == 900 and exact["3"]["cost"] == 0.002
    assert run.stats.model_calls == 0 and run.results.meta["target"] == "recorded"


def test_results_table_round_trips_as_parquet_and_jsonl_with_metadata(tmp_path: Path) -> None:
    lines = [{"id": "a", "input": "q", "expected_output": "x", "actual_output": "x"}]
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=lines)
    run = run_eval(load_config(root / "llmci.yaml"), "tickets", "recorded")
    for name in ("r.parquet", "r.jsonl"):
        write_results(tmp_path / name, run.results)
        frame, meta = read_results(tmp_path / name)
        row = frame.to_dict("records")[0]
        assert {k: row[k] for k in ("suite", "case_id", "metric", "score", "success", "output", "cached")} == {
            "suite": "tickets",
            "case_id": "a",
            "metric": "ExactMatch",
            "score": 1.0,
            "success": True,
            "output": "x",
            "cached": False,
        }
        assert meta["format"] == "llmci.eval-results/1" and meta["dataset_sha256"] == run.results.meta["dataset_sha256"]
        assert meta["llmci_version"] and meta["deepeval_version"] and meta["cases"] == 1
    assert (tmp_path / "r.jsonl.meta.json").is_file()


def test_openai_target_generates_over_http_and_a_rerun_makes_zero_model_calls(tmp_path: Path) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=TICKETS)
    loaded = load_config(root / "llmci.yaml")
    with OpenAIServer(route) as server:
        target = f"openai:{server.url}#router-1"
        first = run_eval(loaded, "tickets", target, cache_dir=tmp_path / "cache")
        assert len(server.requests) == 5 and first.stats.model_calls == 5
        assert server.requests[0]["payload"]["model"] == "router-1"
        assert server.requests[0]["payload"]["max_tokens"] == 8
        rows = by_case(first.results.rows, "ExactMatch")
        assert {i: rows[i]["success"] for i in rows} == {"t1": True, "t2": True, "t3": True, "t4": True, "t5": False}
        assert rows["t1"]["output"] == "billing" and rows["t1"]["input_tokens"] == 7

        second = run_eval(loaded, "tickets", target, cache_dir=tmp_path / "cache")
        assert len(server.requests) == 5, "a re-run on unchanged inputs called the model"
        assert second.stats.model_calls == 0 and second.stats.cached_scores == 5
        assert [r["score"] for r in second.results.rows] == [r["score"] for r in first.results.rows]
        assert all(r["cached"] for r in second.results.rows)

        run_eval(loaded, "tickets", target, cache_dir=None)  # --no-cache
        assert len(server.requests) == 10


def test_openai_target_retries_429_with_retry_after_and_503_then_records_a_dead_case(tmp_path: Path) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}, {"name": "RougeL"}], lines=TICKETS)
    with OpenAIServer(route) as server:
        server.faults = [(429, {"Retry-After": "1"}), (503, {})]
        server.failing = {"dark mode": 500}
        started = time.monotonic()
        run = run_eval(load_config(root / "llmci.yaml"), "tickets", f"openai:{server.url}#m", concurrency=1)
        assert time.monotonic() - started >= 1.0, "Retry-After was not honoured"
    rows = by_case(run.results.rows, "ExactMatch")
    assert rows["t1"]["success"] is True  # 429, then 503, then an answer: one case, three requests
    dead = rows["t4"]
    assert dead["score"] is None and dead["success"] is None
    assert dead["error"].startswith(f"generation failed: HTTP 500 from {server.url}/chat/completions")
    assert "after 3 attempts" in dead["error"]
    assert by_case(run.results.rows, "RougeL")["t4"]["error"] == dead["error"]
    assert [rows[i]["success"] for i in ("t2", "t3", "t5")] == [True, True, False]  # the run went on
    assert run.stats.errors == 2


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=TICKETS[:1])
    with OpenAIServer(route) as server:
        server.failing = {"refund": 400}
        run = run_eval(load_config(root / "llmci.yaml"), "tickets", f"openai:{server.url}#m")
        assert len(server.requests) == 1
    assert "HTTP 400" in run.results.rows[0]["error"] and "attempts" not in run.results.rows[0]["error"]


def test_target_api_key_comes_from_the_configured_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=TICKETS[:1], api_key_env="ROUTER_KEY")
    monkeypatch.setenv("ROUTER_KEY", "sk-test-123")
    with OpenAIServer(route) as server:
        run_eval(load_config(root / "llmci.yaml"), "tickets", f"openai:{server.url}#m")
        assert server.requests[0]["authorization"] == "Bearer sk-test-123"


def test_cost_comes_from_prices_and_budgets_are_metrics(tmp_path: Path) -> None:
    metrics = [
        {"name": "CostBudget", "params": {"max_usd": 0.000008}},
        {"name": "LatencyBudget", "params": {"max_ms": 5000}},
    ]
    prices = {"m": {"input_per_million": 1.0, "output_per_million": 2.0}}
    root = write_project(tmp_path, metrics=metrics, lines=TICKETS[:2], prices=prices)
    with OpenAIServer(route) as server:
        run = run_eval(load_config(root / "llmci.yaml"), "tickets", f"openai:{server.url}#m")
    cost = by_case(run.results.rows, "CostBudget")
    assert cost["t1"]["cost"] == pytest.approx((7 * 1.0 + 1 * 2.0) / 1e6)  # 7 prompt words, 1 answer word
    assert cost["t1"]["success"] is False and cost["t2"]["success"] is True  # 9e-6 and 7e-6 (5 words + 2 x 1) vs 8e-6
    assert all(row["success"] for row in by_case(run.results.rows, "LatencyBudget").values())


def test_llm_judged_metric_without_a_judge_is_refused_before_anything_runs(tmp_path: Path) -> None:
    geval = {"name": "GEval", "params": {"name": "Helpful", "criteria": "Is it helpful?"}}
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}, geval], lines=TICKETS)
    with OpenAIServer(route) as server:
        result = run_llmci("eval", "--target", f"openai:{server.url}#m", "--out", "r.jsonl", cwd=root)
        assert server.requests == []
    assert result.code == 2, result.stderr
    assert (
        "llmci.yaml:11: eval.suites.tickets.metrics[1].name: GEval is judged by an LLM and eval.judge is not set"
        in (result.stderr)
    )
    assert "add eval.judge" in result.stderr and not (root / "r.jsonl").exists()


def test_llm_judged_metric_uses_the_configured_judge_and_is_cached(tmp_path: Path) -> None:
    verdict = json.dumps({"steps": ["Check the label"], "score": 8, "reason": "routes the ticket well"})
    geval = {
        "name": "GEval",
        "params": {"name": "Routing", "evaluation_steps": ["Is the label right?"], "evaluation_params": PARAMS},
        "threshold": 0.5,
    }
    with OpenAIServer(route) as target, OpenAIServer(lambda prompt: verdict) as judge:
        prices = {"judge-1": {"input_per_million": 3.0, "output_per_million": 6.0}}
        judge_config = {"base_url": judge.url, "model": "judge-1"}
        root = write_project(tmp_path, metrics=[geval], lines=TICKETS[:3], judge=judge_config, prices=prices)
        loaded = load_config(root / "llmci.yaml")
        run = run_eval(loaded, "tickets", f"openai:{target.url}#m", cache_dir=tmp_path / "cache")
        calls = len(judge.requests)
        assert calls >= 3 and run.stats.judge_calls == calls
        rows = by_case(run.results.rows, "GEval")
        assert {row["score"] for row in rows.values()} == {0.8}
        assert rows["t1"]["reason"] == "routes the ticket well" and rows["t1"]["success"] is True
        assert rows["t1"]["eval_cost"] > 0 and run.results.meta["judge"] == f"{judge.url}#judge-1"
        assert "Is the label right?" in judge.requests[0]["payload"]["messages"][0]["content"]

        again = run_eval(loaded, "tickets", f"openai:{target.url}#m", cache_dir=tmp_path / "cache")
        assert len(judge.requests) == calls and again.stats.judge_calls == 0


def test_judge_failure_is_recorded_per_case(tmp_path: Path) -> None:
    steps = ["Is the label right?"]
    geval = {"name": "GEval", "params": {"name": "Routing", "evaluation_steps": steps, "evaluation_params": PARAMS}}
    with OpenAIServer(route) as target, OpenAIServer(lambda prompt: "{}") as judge:
        judge.failing = {"crash": 502}
        root = write_project(tmp_path, metrics=[geval], lines=TICKETS[:2], judge={"base_url": judge.url, "model": "j"})
        run = run_eval(load_config(root / "llmci.yaml"), "tickets", f"openai:{target.url}#m")
    rows = by_case(run.results.rows, "GEval")
    assert "HTTP 502" in rows["t2"]["error"] and rows["t2"]["success"] is None
    assert rows["t1"]["error"] and rows["t1"]["score"] is None  # "{}" is not a verdict: an error, not a pass


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"input": "q"}], "cases.jsonl:1: missing field 'id'"),
        ([{"id": 1, "input": "q"}, {"id": 1, "input": "r"}], "cases.jsonl:2: id '1' is also on line 1"),
        ([{"id": 1, "vars": {"x": 1}}], "cases.jsonl:1: 'vars' needs the suite's 'prompt'"),
        ([{"id": 1}], "cases.jsonl:1: missing field 'input'"),
        ([{"id": 1, "input": "q", "context": "not a list"}], "cases.jsonl:1: 'context' must be a list of strings"),
    ],
)
def test_bad_dataset_lines_fail_with_file_and_line(tmp_path: Path, lines: list[dict], message: str) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=lines)
    result = run_llmci("eval", "--target", "recorded", "--out", "r.jsonl", cwd=root)
    assert result.code == 2 and message in result.stderr, result.stderr


def test_recorded_target_needs_every_output_and_bad_specs_are_usage_errors(tmp_path: Path) -> None:
    lines = [{"id": 1, "input": "q", "actual_output": "a"}, {"id": 2, "input": "q"}]
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=lines)
    result = run_llmci("eval", "--target", "recorded", "--out", "r.jsonl", cwd=root)
    assert result.code == 2 and "cases.jsonl:2: no 'actual_output'" in result.stderr
    for spec, message in [
        ("gpt-4", "--target gpt-4: unknown target; use registry:NAME@VERSION"),
        ("openai:localhost#m", "expected openai:BASE_URL#MODEL"),
        ("hf:missing", "is not a model folder"),
    ]:
        result = run_llmci("eval", "--target", spec, "--out", "r.jsonl", cwd=root)
        assert result.code == 2 and message in result.stderr, (spec, result.stderr)


def test_unknown_metric_and_suite_get_a_did_you_mean(tmp_path: Path) -> None:
    root = write_project(tmp_path, metrics=[{"name": "ExactMach"}], lines=TICKETS)
    result = run_llmci("eval", "--target", "recorded", "--out", "r.jsonl", cwd=root)
    assert result.code == 2
    assert (
        "llmci.yaml:8: eval.suites.tickets.metrics[0].name: unknown metric 'ExactMach'; did you mean 'ExactMatch'?"
        in (result.stderr)
    )
    result = run_llmci("eval", "--suite", "ticket", "--target", "recorded", "--out", "r.jsonl", cwd=root)
    assert result.code == 2 and "no suite 'ticket'; did you mean 'tickets'?" in result.stderr


def test_cli_prints_per_metric_summary_and_logs_progress_in_ci(tmp_path: Path) -> None:
    lines = [{"id": i, "input": "q", "expected_output": "x", "actual_output": "x" if i % 4 else "y"} for i in range(40)]
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}], lines=lines)
    result = run_llmci("eval", "--target", "recorded", "--out", "out/r.parquet", cwd=root)
    assert result.code == 0, result.stderr
    assert "tickets ExactMatch: mean 0.7500, passed 30/40, errors 0" in result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("llmci: eval tickets:")]
    assert progress[0] == "llmci: eval tickets: 10% (4/40 cases, 0 errors)" and len(progress) == 10
    frame, _ = read_results(root / "out" / "r.parquet")
    assert len(frame) == 40


def test_empty_output_fails_every_metric_instead_of_erroring(tmp_path: Path) -> None:
    lines = [{"id": 1, "input": "q", "expected_output": "x", "actual_output": "  "}]
    root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}, {"name": "RougeL"}], lines=lines)
    rows = run_eval(load_config(root / "llmci.yaml"), "tickets", "recorded").results.rows
    assert [(r["score"], r["success"], r["error"]) for r in rows] == [(0.0, False, None)] * 2


@pytest.mark.slow
def test_hf_and_registry_targets_generate_locally_with_the_same_model(tmp_path: Path, base_model: Path) -> None:
    import shutil

    from llmci.registry import open_registry

    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, tmp_path / name)
    shutil.copy(QUICKSTART / "llmci.yaml", tmp_path / "llmci.yaml")
    loaded = load_config(tmp_path / "llmci.yaml")
    open_registry(loaded).publish(base_model, name="ticket-router")

    local = run_eval(loaded, "routing", f"hf:{base_model}", cache_dir=tmp_path / "cache")
    pulled = run_eval(loaded, "routing", "registry:ticket-router@latest", cache_dir=tmp_path / "cache")
    assert local.stats.model_calls == pulled.stats.model_calls == 91  # different targets share no cache entries
    assert [r["output"] for r in local.results.rows] == [r["output"] for r in pulled.results.rows]
    assert pulled.results.meta["model_version"] == "ticket-router@1" and local.results.meta["model_version"] is None
    assert local.results.rows[0]["input"].startswith("You route customer support tickets")  # the rendered template
    assert all(r["latency_ms"] > 0 and r["output_tokens"] <= 4 for r in local.results.rows)

    again = run_eval(loaded, "routing", f"hf:{base_model}", cache_dir=tmp_path / "cache")
    assert again.stats.model_calls == 0
