"""`llmci compare`: statistical soundness by simulation, the gates, the JSON, the exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmci.compare.deltas import compare_results
from llmci.compare.stats import mcnemar_exact, paired_bootstrap
from llmci.config import CompareConfig, GateConfig
from llmci.eval.results import EMPTY_ROW, Results, write_results
from tests.conftest import run_llmci

SETTINGS = CompareConfig()


def table(scores: np.ndarray, *, metric: str = "ExactMatch", threshold: float | None = 1.0, **columns) -> pd.DataFrame:
    n = len(scores)
    success = scores >= threshold if threshold is not None else [None] * n
    return pd.DataFrame(
        {
            "suite": "s",
            "case_id": [f"c{i}" for i in range(n)],
            "metric": metric,
            "score": scores,
            "success": success,
            **{name: columns.get(name) for name in ("input", "expected_output", "output", "reason", "latency_ms")},
            "cost": columns.get("cost"),
            "eval_cost": None,
        }
    )


def verdict(base: np.ndarray, cand: np.ndarray, settings: CompareConfig = SETTINGS, **kwargs) -> dict:
    return compare_results(
        table(base, **kwargs),
        table(cand, **kwargs),
        baseline_meta={},
        candidate_meta={},
        settings=settings,
        gates={},
    )


def pass_fail_trial(rng: np.random.Generator, drop: float, n: int = 1000) -> str:
    """One simulated suite of n pass/fail cases.

    Each case has its own difficulty p ~ Beta(0.8, 0.2) (mean pass rate 0.8; U-shaped, as in
    real suites, where most cases pass or fail whatever the model). Each side passes a case
    with its probability, independently: the baseline with p, the candidate with p scaled
    so that its expected pass rate is exactly `drop` lower.
    """
    p = rng.beta(0.8, 0.2, n)
    base = (rng.random(n) < p).astype(float)
    cand = (rng.random(n) < p * (1 - drop / 0.8)).astype(float)
    return verdict(base, cand)["verdict"]


def test_a_a_comparisons_flag_a_regression_in_at_most_5_percent_of_trials() -> None:
    rng = np.random.default_rng(20261126)
    flagged = [pass_fail_trial(rng, drop=0.0) == "regression" for _ in range(400)]
    assert np.mean(flagged) <= 0.05, np.mean(flagged)


def test_a_true_5_point_drop_in_pass_rate_on_1000_cases_is_flagged_in_90_percent_of_trials() -> None:
    rng = np.random.default_rng(7)
    flagged = [pass_fail_trial(rng, drop=0.05) == "regression" for _ in range(200)]
    assert np.mean(flagged) >= 0.90, np.mean(flagged)


def test_a_a_on_continuous_scores_stays_under_5_percent() -> None:
    """Continuous scores take the binned bootstrap path (more than 256 distinct deltas)."""
    rng = np.random.default_rng(3)
    flagged = 0
    for _ in range(200):
        quality = rng.beta(2, 2, 2000)
        base = np.clip(quality + rng.normal(0, 0.1, 2000), 0, 1)
        cand = np.clip(quality + rng.normal(0, 0.1, 2000), 0, 1)
        flagged += verdict(base, cand, CompareConfig(resamples=2000), threshold=None)["verdict"] == "regression"
    assert flagged / 200 <= 0.05


def test_binned_bootstrap_matches_resampling_indices() -> None:
    rng = np.random.default_rng(11)
    deltas = rng.normal(-0.01, 0.2, 5000)
    binned = paired_bootstrap(deltas, resamples=20000, confidence=0.95, rng=rng)
    means = np.array([deltas[rng.integers(0, len(deltas), len(deltas))].mean() for _ in range(4000)])
    low, high = np.quantile(means, [0.025, 0.975])
    assert binned.low == pytest.approx(low, abs=0.001) and binned.high == pytest.approx(high, abs=0.001)


def test_mcnemar_exact_matches_the_binomial_test() -> None:
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12  # 10 regressed, 2 fixed
    assert mcnemar_exact(10, 2) == pytest.approx(expected) and mcnemar_exact(2, 10) == pytest.approx(expected)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert 0 < mcnemar_exact(50_500, 49_500) < 0.01  # large counts stay finite


def test_comparison_reports_deltas_intervals_and_the_regressed_cases() -> None:
    base = np.ones(200)
    cand = np.ones(200)
    cand[:30] = 0  # 30 regressions
    cand_frame = table(cand, output=[f"out{i}" for i in range(200)], latency_ms=np.full(200, 120.0), cost=0.001)
    base_frame = table(base, output="same", latency_ms=np.full(200, 100.0), cost=0.002)
    doc = compare_results(base_frame, cand_frame, baseline_meta={}, candidate_meta={}, settings=SETTINGS, gates={})
    (metric,) = doc["metrics"]
    assert doc["verdict"] == "regression" and metric["status"] == "regression"
    assert metric["score"]["baseline"] == 1.0 and metric["score"]["candidate"] == 0.85
    assert metric["score"]["delta"] == pytest.approx(-0.15) and metric["score"]["ci"][1] < 0
    assert metric["pass_rate"]["regressed"] == 30 and metric["pass_rate"]["mcnemar_p_value"] < 1e-8
    assert metric["n_regressed_cases"] == 30 and len(metric["regressed_cases"]) == 20
    first = metric["regressed_cases"][0]
    assert first["baseline"]["output"] == "same" and first["candidate"]["score"] == 0.0
    # Nothing got better: no fixed case is listed (not phantom rows), and the document is strict JSON.
    assert metric["n_fixed_cases"] == 0 and metric["fixed_cases"] == []
    json.dumps(doc, allow_nan=False)
    suite = doc["suites"][0]
    assert suite["latency_ms"]["baseline"]["p95"] == 100.0 and suite["latency_ms"]["candidate"]["p50"] == 120.0
    assert suite["cost"]["baseline"] == pytest.approx(0.4) and suite["cost"]["candidate"] == pytest.approx(0.2)


def test_gates_tolerate_small_drops_and_enforce_a_minimum() -> None:
    base, cand = np.ones(1000), np.ones(1000)
    cand[:20] = 0  # a sure 2-point drop
    tolerant = {("s", "ExactMatch"): GateConfig(max_regression=0.05)}
    minimum = {("s", "ExactMatch"): GateConfig(max_regression=None, min=0.99)}
    for gates, expected in [({}, "regression"), (tolerant, "pass"), (minimum, "regression")]:
        doc = compare_results(
            table(base), table(cand), baseline_meta={}, candidate_meta={}, settings=SETTINGS, gates=gates
        )
        assert doc["verdict"] == expected, (gates, doc["metrics"][0]["reasons"])
    assert "under the minimum 0.99" in doc["metrics"][0]["reasons"][0]


def test_errors_are_inconclusive_never_passes() -> None:
    base, cand = np.ones(100), np.ones(100)
    cand[:10] = np.nan  # ten cases the candidate could not be scored on
    doc = verdict(base, cand)
    (metric,) = doc["metrics"]
    assert metric["n_matched"] == 90 and metric["n_inconclusive"] == 10
    assert doc["verdict"] == "inconclusive" and "10 of 100 matched cases had errors" in metric["reasons"][0]


def write_side(path: Path, scores: list[float | None], *, drop_ids: tuple[str, ...] = ()) -> None:
    rows = []
    for i, score in enumerate(scores):
        if f"c{i}" in drop_ids:
            continue
        row = {"suite": "qa", "case_id": f"c{i}", "metric": "ExactMatch", "threshold": 1.0, "input": f"q{i}"}
        if score is None:
            row["error"] = "generation failed: HTTP 503"
        else:
            row.update(score=score, success=score >= 1.0, output=str(score))
        rows.append({**EMPTY_ROW, **row})
    write_results(path, Results(rows, {"suite": "qa", "dataset_sha256": "x"}))


def test_cli_exit_codes_and_the_documented_json(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("eval:\n  compare: {resamples: 2000}\n")
    write_side(tmp_path / "base.jsonl", [1.0] * 100)
    write_side(tmp_path / "same.parquet", [1.0] * 100, drop_ids=("c99",))
    write_side(tmp_path / "worse.parquet", [0.0] * 20 + [1.0] * 80)
    write_side(tmp_path / "broken.jsonl", [None] * 50 + [1.0] * 50)

    result = run_llmci("compare", "base.jsonl", "same.parquet", "--out", "c.json", cwd=tmp_path)
    assert result.code == 0 and result.stdout.strip().endswith("verdict: pass"), result.stdout
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["format"] == "llmci.comparison/1" and doc["settings"]["resamples"] == 2000
    (metric,) = doc["metrics"]
    assert metric["n_only_baseline"] == 1 and metric["n_only_candidate"] == 0 and metric["n_matched"] == 99
    assert set(metric) >= {"score", "pass_rate", "gate", "status", "reasons", "regressed_cases", "fixed_cases"}
    assert set(metric["score"]) == {"baseline", "candidate", "delta", "ci", "p_value"}

    result = run_llmci("compare", "base.jsonl", "worse.parquet", cwd=tmp_path)
    assert result.code == 1 and "qa ExactMatch: regression: 1.0000 -> 0.8000" in result.stdout
    result = run_llmci("compare", "base.jsonl", "broken.jsonl", cwd=tmp_path)
    assert result.code == 3 and "verdict: inconclusive" in result.stdout
    result = run_llmci("compare", "base.jsonl", "nothing.jsonl", cwd=tmp_path)
    assert result.code == 2 and "nothing.jsonl: no such results file" in result.stderr
    (tmp_path / "junk.jsonl").write_text('{"a": 1}\n')
    result = run_llmci("compare", "base.jsonl", "junk.jsonl", cwd=tmp_path)
    assert result.code == 2 and "junk.jsonl: not an llmci results table" in result.stderr


def test_names_from_the_tables_cannot_issue_workflow_commands(tmp_path: Path) -> None:
    for name in ("base.jsonl", "cand.jsonl"):
        row = {**EMPTY_ROW, "suite": "::error::pwned", "case_id": "1", "metric": "m", "score": 1.0, "success": True}
        write_results(tmp_path / name, Results([row], {}))
    (tmp_path / "llmci.yaml").write_text("eval:\n  compare: {resamples: 200}\n")
    result = run_llmci("compare", "base.jsonl", "cand.jsonl", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("::error::pwned"))
    token = lines[0].removeprefix("::stop-commands::")
    assert lines[0].startswith("::stop-commands::") and f"::{token}::" in lines[where + 1 :], lines
