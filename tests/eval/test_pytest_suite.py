"""Existing DeepEval pytest suites (assert_test) run by `llmci eval` into the same results table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llmci.eval.results import read_results
from tests.conftest import run_llmci, write_tree
from tests.eval.openai_server import OpenAIServer
from tests.eval.test_eval import route

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


def test_output_of_the_suite_cannot_issue_workflow_commands(tmp_path: Path) -> None:
    tests = (
        'def test_model_said():\n    print("::error::pwned")\n    print("::add-mask::everything")\n    assert False\n'
    )
    config = {"eval": {"suites": {"s": {"pytest": ["evals"]}}}}
    root = write_tree(tmp_path, {"llmci.yaml": json.dumps(config), "evals/test_out.py": tests})
    result = run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root, env={"GITHUB_ACTIONS": "true"})
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    where = lines.index("::error::pwned")
    starts = [i for i, line in enumerate(lines[:where]) if line.startswith("::stop-commands::")]
    assert starts, "the forwarded pytest output is not inside ::stop-commands::"
    token = lines[starts[-1]].removeprefix("::stop-commands::")
    assert len(token) >= 16 and f"::{token}::" in lines[where:], "commands are not resumed after it"
    assert "::add-mask::everything" in lines[where : lines.index(f"::{token}::")]


GETTING_STARTED = """
from deepeval import assert_test
from deepeval.metrics import AnswerRelevancyMetric, GEval
from deepeval.test_case import LLMTestCase, SingleTurnParams


def test_correctness():
    correctness_metric = GEval(
        name="Correctness",
        criteria="Determine if the 'actual output' is correct based on the 'expected output'.",
        evaluation_params=[SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT],
        threshold=0.5,
    )
    test_case = LLMTestCase(
        input="I have a persistent cough and fever. Should I be worried?",
        actual_output="A persistent cough and fever could signal various illnesses; see a doctor if it persists.",
        expected_output="A persistent cough and fever could indicate a range of illnesses; seek medical attention.",
    )
    assert_test(test_case, [correctness_metric])


def test_answer_relevancy():
    test_case = LLMTestCase(input="What if these shoes don't fit?", actual_output="We offer a 30-day refund.")
    assert_test(test_case, [AnswerRelevancyMetric(threshold=0.5)])
"""


def judge_answer(prompt: str) -> str:
    """A judge that answers every DeepEval template GEval and AnswerRelevancy use (extra keys are ignored)."""
    return json.dumps(
        {
            "steps": ["Compare the outputs"],
            "score": 8,
            "reason": "close enough",
            "statements": ["We offer a 30-day refund."],
            "verdicts": [{"verdict": "yes", "reason": "it answers"}],
        }
    )


def test_deepeval_getting_started_metrics_use_the_configured_judge(tmp_path: Path) -> None:
    with OpenAIServer(judge_answer) as judge:
        judge_config = {"base_url": judge.url, "model": "judge-1", "api_key_env": "JUDGE_KEY"}
        config = {"eval": {"suites": {"s": {"pytest": ["evals"]}}, "judge": judge_config}}
        root = write_tree(tmp_path, {"llmci.yaml": json.dumps(config), "evals/test_example.py": GETTING_STARTED})
        env = {"JUDGE_KEY": "sk-judge-1", "OPENAI_API_KEY": "", "DEEPEVAL_TELEMETRY_OPT_OUT": "0"}
        result = run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root, env=env)
        assert result.code == 0, result.stderr
        assert judge.requests, "DeepEval did not call the configured judge"
        assert {(r["authorization"], r["payload"]["model"]) for r in judge.requests} == {
            ("Bearer sk-judge-1", "judge-1")
        }
    frame, meta = read_results(root / "r.jsonl")
    rows = {row["metric"]: row for row in frame.to_dict("records")}
    assert rows["Correctness [GEval]"]["score"] == 0.8 and rows["Correctness [GEval]"]["success"] is True
    assert rows["Answer Relevancy"]["score"] == 1.0 and rows["Answer Relevancy"]["error"] is None
    assert meta["judge"] == f"{judge.url}#judge-1"


@pytest.mark.parametrize("caller", ["0", None], ids=["caller-turned-it-on", "caller-said-nothing"])
def test_deepeval_child_has_telemetry_off_even_when_the_caller_turned_it_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller: str | None
) -> None:
    """The pytest child gets DEEPEVAL_TELEMETRY_OPT_OUT=1 from llmci, whatever (or nothing) the caller set."""
    monkeypatch.delenv("DEEPEVAL_TELEMETRY_OPT_OUT", raising=False)
    tests = (
        "import os\n\n\ndef test_env():\n"
        "    assert os.environ['DEEPEVAL_TELEMETRY_OPT_OUT'] == '1', os.environ['DEEPEVAL_TELEMETRY_OPT_OUT']\n"
    )
    config = {"eval": {"suites": {"s": {"pytest": ["evals"]}}}}
    root = write_tree(tmp_path, {"llmci.yaml": json.dumps(config), "evals/test_env.py": tests})
    env = {"DEEPEVAL_TELEMETRY_OPT_OUT": caller} if caller is not None else {}
    assert run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root, env=env).code == 0
    frame, _ = read_results(root / "r.jsonl")
    assert frame["error"].isna().all(), frame["error"].tolist()


LENGTH_METRIC = """
from deepeval import assert_test
from deepeval.metrics import BaseMetric
from deepeval.test_case import LLMTestCase


class LengthMetric(BaseMetric):
    # DeepEval's custom-metric guide: measure() only, no a_measure()
    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def measure(self, test_case):
        self.score = min(1.0, len(test_case.actual_output) / 10)
        self.success = self.score >= self.threshold
        return self.score

    def is_successful(self):
        return self.success

    @property
    def __name__(self):
        return "Length"


def test_length():
    assert_test(LLMTestCase(input="q", actual_output="hello"), [LengthMetric()])
"""


def test_a_metric_that_raises_keeps_its_exception(tmp_path: Path) -> None:
    config = {"eval": {"suites": {"s": {"pytest": ["evals"]}}}}
    root = write_tree(tmp_path, {"llmci.yaml": json.dumps(config), "evals/test_length.py": LENGTH_METRIC})
    assert run_llmci("eval", "--target", "x", "--out", "r.jsonl", cwd=root).code == 0
    frame, _ = read_results(root / "r.jsonl")
    (row,) = frame.to_dict("records")
    assert row["metric"] == "Length" and pd.isna(row["score"]) and pd.isna(row["success"])
    assert row["error"] == (
        "NotImplementedError: Async execution for LengthMetric not supported yet. Please set 'async_mode' to 'False'."
    )


TARGET_TESTS = """
import pytest
from deepeval import assert_test
from deepeval.metrics import ExactMatchMetric
from deepeval.test_case import LLMTestCase


@pytest.mark.parametrize("question,expected", [("refund please", "billing"), ("it crashed", "bug")])
def test_routing(llmci_target, question, expected):
    output = llmci_target(question)
    assert_test(LLMTestCase(input=question, actual_output=output, expected_output=expected), [ExactMatchMetric()])


def test_vars_go_through_the_suite_prompt(llmci_target):
    output = llmci_target({"ticket": "my password"})
    assert_test(LLMTestCase(input="my password", actual_output=output, expected_output="account"), [ExactMatchMetric()])
"""


def test_llmci_target_fixture_generates_with_the_target_through_the_cache(tmp_path: Path) -> None:
    suite = {"pytest": ["evals"], "prompt": "route.j2", "generation": {"max_new_tokens": 5}}
    config = {"eval": {"suites": {"s": suite}}}
    files = {"llmci.yaml": json.dumps(config), "route.j2": "Route: {{ ticket }}", "evals/test_route.py": TARGET_TESTS}
    root = write_tree(tmp_path, files)

    def wrong_on_crashes(prompt: str) -> str:
        return "feature" if "crash" in prompt else route(prompt)

    with OpenAIServer(wrong_on_crashes) as old, OpenAIServer(route) as new:
        for side, server in (("baseline", old), ("candidate", new)):
            result = run_llmci("eval", "--target", f"openai:{server.url}#m", "--out", f"{side}.jsonl", cwd=root)
            assert result.code == 0, result.stderr
            assert len(server.requests) == 3, server.requests
        assert old.requests[0]["payload"]["max_tokens"] == 5
        assert [r["payload"]["messages"][-1]["content"] for r in old.requests][2] == "Route: my password"

        again = run_llmci("eval", "--target", f"openai:{old.url}#m", "--out", "again.jsonl", cwd=root)
        assert again.code == 0 and len(old.requests) == 3, "a re-run on unchanged inputs called the model"
        fresh = run_llmci("eval", "--target", f"openai:{old.url}#m", "--out", "again.jsonl", "--no-cache", cwd=root)
        assert fresh.code == 0 and len(old.requests) == 6

    compared = run_llmci("compare", "baseline.jsonl", "candidate.jsonl", "--out", "c.json", cwd=root)
    metric = json.loads((root / "c.json").read_text())["metrics"][0]
    assert metric["pass_rate"]["fixed"] == 1 and metric["fixed_cases"][0]["candidate"]["output"] == "bug"
    assert metric["n_matched"] == 3, compared.stdout
    frame, _ = read_results(root / "baseline.jsonl")
    assert frame["error"].isna().all() and frame["output"].tolist() == ["billing", "feature", "account"]
