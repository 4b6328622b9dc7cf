"""Existing DeepEval pytest suites (assert_test) run by `llmci eval` into the same results table."""

from __future__ import annotations

import json
from pathlib import Path

from llmci.eval.results import read_results
from tests.conftest import run_llmci, write_tree

TESTS = """
import os

import pytest
from deepeval import assert_test
from deepeval.metrics import ExactMatchMetric, PatternMatchMetric
from deepeval.test_case import LLMTestCase

# What a team's suite looks like: it calls its own app; llmci says which model through LLMCI_TARGET.
ANSWERS = {"baseline": {"paris": "Paris", "rome": "Milan"}, "candidate": {"paris": "Paris", "rome": "Rome"}}


def app(question):
    return ANSWERS[os.environ["LLMCI_TARGET"]][question]


@pytest.mark.parametrize("question,expected", [("paris", "Paris"), ("rome", "Rome")])
def test_capital(question, expected):
    case = LLMTestCase(input=question, actual_output=app(question), expected_output=expected)
    assert_test(case, [ExactMatchMetric(), PatternMatchMetric(pattern="[A-Z][a-z]+")])


def test_two_cases_in_one_test():
    for word in ("Paris", "Rome"):
        assert_test(LLMTestCase(input=word, actual_output=word, expected_output=word), [ExactMatchMetric()])


def test_broken_before_measuring():
    raise RuntimeError("the app is down")
"""


def project(tmp_path: Path) -> Path:
    config = {"eval": {"suites": {"capitals": {"pytest": ["evals"]}}}}
    return write_tree(tmp_path, {"llmci.yaml": json.dumps(config), "evals/test_capitals.py": TESTS})


def test_deepeval_pytest_suite_becomes_the_results_table(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = run_llmci("eval", "--target", "baseline", "--out", "base.jsonl", cwd=root)
    assert result.code == 0, result.stderr
    frame, meta = read_results(root / "base.jsonl")
    rows = {(r["case_id"], r["metric"]): r for r in frame.to_dict("records")}
    node = "evals/test_capitals.py::"
    assert rows[(f"{node}test_capital[paris-Paris]", "Exact Match")]["success"] is True
    failed = rows[(f"{node}test_capital[rome-Rome]", "Exact Match")]
    assert failed["success"] is False and failed["output"] == "Milan" and failed["expected_output"] == "Rome"
    assert rows[(f"{node}test_capital[rome-Rome]", "Pattern Match")]["success"] is True
    assert (f"{node}test_two_cases_in_one_test", "Exact Match") in rows
    assert (f"{node}test_two_cases_in_one_test#2", "Exact Match") in rows
    broken = rows[(f"{node}test_broken_before_measuring", "pytest")]
    assert broken["error"] == "RuntimeError: the app is down" and broken["success"] is None
    assert meta["target"] == "baseline" and meta["cases"] == 5 and len(meta["dataset_sha256"]) == 64
    assert "capitals Exact Match: mean 0.7500, passed 3/4, errors 0" in result.stdout


def test_baseline_and_candidate_from_the_same_pytest_suite_compare(tmp_path: Path) -> None:
    root = project(tmp_path)
    for side in ("baseline", "candidate"):
        assert run_llmci("eval", "--target", side, "--out", f"{side}.parquet", cwd=root).code == 0
    result = run_llmci("compare", "baseline.parquet", "candidate.parquet", "--out", "c.json", cwd=root)
    comparison = json.loads((root / "c.json").read_text())
    exact = next(m for m in comparison["metrics"] if m["metric"] == "Exact Match")
    assert exact["pass_rate"]["fixed"] == 1 and exact["fixed_cases"][0]["candidate"]["output"] == "Rome"
    broken = next(m for m in comparison["metrics"] if m["metric"] == "pytest")
    assert broken["status"] == "inconclusive"  # the broken test measured nothing on either side
    assert comparison["verdict"] == "inconclusive" and result.code == 3, result.stdout


def test_missing_test_folder_and_collection_errors_are_usage_errors(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"llmci.yaml": json.dumps({"eval": {"suites": {"s": {"pytest": ["nowhere"]}}}})})
    result = run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root)
    assert result.code == 2 and "eval.suites.s.pytest: nowhere: no such file or folder" in result.stderr
    write_tree(root, {"nowhere/test_bad.py": "import not_a_module\n"})
    result = run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root)
    assert result.code == 2 and "eval.suites.s.pytest: pytest interrupted" in result.stderr, result.stderr
