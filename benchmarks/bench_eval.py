"""`llmci eval` speed, each against a baseline measured in the same run.

1. Overhead per case: 2,000 `recorded` cases scored with ExactMatch. `llmci eval`
   (the whole process, no cache) vs a script calling `deepeval.evaluate()` on the
   same cases and metric (display off). Target: >= 10x faster, identical per-case scores.
2. Cache: the quickstart suite (91 cases, 3 metrics) on the tiny quickstart model
   (`hf:` target, real generation). First run on an empty cache vs a re-run on
   unchanged inputs, in-process. Target: the re-run makes zero model calls and is >= 20x faster.

The deepeval.evaluate() baseline takes about 3 minutes on 2 cores.

    .venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
CASES = 2000

DEEPEVAL_SCRIPT = """
import json, sys
from deepeval import evaluate
from deepeval.evaluate.configs import DisplayConfig
from deepeval.metrics import ExactMatchMetric
from deepeval.test_case import LLMTestCase

lines = [json.loads(line) for line in open(sys.argv[1])]
cases = [LLMTestCase(name=str(l["id"]), input=l["input"], actual_output=l["actual_output"],
                     expected_output=l["expected_output"]) for l in lines]
result = evaluate(cases, [ExactMatchMetric()], display_config=DisplayConfig(show_indicator=False, print_results=False))
scores = {t.name: t.metrics_data[0].score for t in result.test_results}
json.dump(scores, open(sys.argv[2], "w"))
"""


def overhead(tmp: Path) -> bool:
    labels = ["account", "billing", "bug", "feature"]
    with open(tmp / "cases.jsonl", "w") as out:
        for i in range(CASES):
            expected, actual = labels[i % 4], labels[(i * 7) % 5 % 4]
            out.write(
                json.dumps({"id": i, "input": f"ticket {i}", "expected_output": expected, "actual_output": actual})
            )
            out.write("\n")
    config = {"eval": {"suites": {"bench": {"dataset": "cases.jsonl", "metrics": [{"name": "ExactMatch"}]}}}}
    (tmp / "llmci.yaml").write_text(json.dumps(config))
    (tmp / "baseline.py").write_text(DEEPEVAL_SCRIPT)

    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "llmci", "eval", "--target", "recorded", "--out", "r.jsonl", "--no-cache"],
        cwd=tmp,
        check=True,
        capture_output=True,
    )
    llmci_s = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "baseline.py", "cases.jsonl", "scores.json"], cwd=tmp, check=True, capture_output=True
    )
    deepeval_s = time.perf_counter() - start

    ours = {row["case_id"]: row["score"] for row in map(json.loads, (tmp / "r.jsonl").read_text().splitlines())}
    theirs = json.loads((tmp / "scores.json").read_text())
    identical = ours == theirs and len(ours) == CASES
    ratio = deepeval_s / llmci_s
    ok = ratio >= 10 and identical
    print(
        f"overhead: {CASES} recorded cases x ExactMatch: llmci eval {llmci_s:6.2f} s (whole process), "
        f"deepeval.evaluate() script {deepeval_s:6.2f} s: {ratio:5.1f}x faster (target >= 10), "
        f"per-case scores identical: {identical}  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def cache(tmp: Path) -> bool:
    from llmci.config import load_config
    from llmci.eval.runner import run_eval

    spec = importlib.util.spec_from_file_location("build_base_model", QUICKSTART / "build_base_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tmp / "quickstart"
    for name in ("prompts", "data", "llmci.yaml"):
        copy = shutil.copytree if (QUICKSTART / name).is_dir() else shutil.copy
        copy(QUICKSTART / name, project / name)
    model = module.main(project / "model")
    loaded = load_config(project / "llmci.yaml")

    start = time.perf_counter()
    first = run_eval(loaded, "routing", f"hf:{model}", cache_dir=project / "cache", progress=False)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    again = run_eval(loaded, "routing", f"hf:{model}", cache_dir=project / "cache", progress=False)
    again_s = time.perf_counter() - start

    same = [r["score"] for r in first.results.rows] == [r["score"] for r in again.results.rows]
    ratio = first_s / again_s
    ok = ratio >= 20 and again.stats.model_calls == 0 and same
    print(
        f"cache: quickstart suite, {len(first.results.rows)} rows on hf: first run {first_s:6.2f} s "
        f"({first.stats.model_calls} model calls), re-run {again_s * 1000:6.1f} ms ({again.stats.model_calls} model "
        f"calls): {ratio:5.0f}x faster (target >= 20), same scores: {same}  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "overhead").mkdir()
        ok = cache(root)
        ok &= overhead(root / "overhead")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
