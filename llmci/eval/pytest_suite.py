"""Existing DeepEval pytest suites (`test_*.py` with `assert_test`) as an llmci suite.

pytest runs in a child process with llmci's plugin (`llmci.eval.pytest_plugin`),
in the folder of llmci.yaml; the target spec reaches the tests as the
environment variable `LLMCI_TARGET`, so one suite can test the baseline and the
candidate. Each measured test case becomes rows of the same results table:
the case id is the test's node id (`#2`, `#3`, ... when one test measures
several cases), one row per metric.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmci.config import LoadedConfig, SuiteConfig
from llmci.errors import InputError
from llmci.eval.results import EMPTY_ROW, Results

#: pytest exit codes that mean the suite itself could not run (0 and 1 are results).
PYTEST_PROBLEMS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests were collected"}


def run_pytest_suite(loaded: LoadedConfig, name: str, suite: SuiteConfig, target_spec: str) -> Any:
    from llmci.eval.runner import RunStats, SuiteRun, suite_metadata

    paths = [loaded.root / path for path in suite.pytest or []]
    for given, path in zip(suite.pytest or [], paths, strict=True):
        if not path.exists():
            raise InputError(f"eval.suites.{name}.pytest: {given}: no such file or folder")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmci-pytest-") as scratch:
        out = Path(scratch) / "records.json"
        env = {**os.environ, "LLMCI_PYTEST_RESULTS": str(out), "LLMCI_TARGET": target_spec}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "llmci.eval.pytest_plugin", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            [*command, *map(str, paths)], cwd=loaded.root, env=env, capture_output=True, text=True, check=False
        )
        sys.stderr.write(proc.stdout[-4000:])
        if proc.returncode in PYTEST_PROBLEMS or not out.is_file():
            last = (proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or ["no output"])[-1]
            problem = PYTEST_PROBLEMS.get(proc.returncode, f"exit {proc.returncode}")
            raise InputError(f"eval.suites.{name}.pytest: pytest {problem}: {last}")
        records = json.loads(out.read_text(encoding="utf-8"))
    rows = rows_from_records(name, records)
    stats = RunStats(errors=sum(1 for row in rows if row["error"]), seconds=time.perf_counter() - started)
    digest = _files_digest(paths, loaded.root)
    meta = suite_metadata(loaded, name, suite, target_spec, None, " ".join(suite.pytest or []), digest, None)
    meta["cases"] = len({row["case_id"] for row in rows})
    meta["metrics"] = sorted({row["metric"] for row in rows})
    return SuiteRun(Results(rows, meta), stats)


def rows_from_records(suite: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        if record["error"] is not None:
            rows.append(
                {**EMPTY_ROW, "suite": suite, "case_id": record["nodeid"], "metric": "pytest", "error": record["error"]}
            )
        for index, case in enumerate(record["cases"], start=1):
            case_id = record["nodeid"] if index == 1 else f"{record['nodeid']}#{index}"
            took = case.get("completion_time")
            base = {
                **EMPTY_ROW,
                "suite": suite,
                "case_id": case_id,
                "input": case.get("input"),
                "expected_output": case.get("expected_output"),
                "output": case.get("actual_output"),
                "latency_ms": took * 1000 if took is not None else None,
                "input_tokens": case.get("input_token_count"),
                "output_tokens": case.get("output_token_count"),
                "cost": case.get("token_cost"),
                "cached": False,
            }
            for metric in case.get("metrics_data") or []:
                error, score = metric.get("error"), metric.get("score")
                if error is None and (score is None or not math.isfinite(score)):
                    error = f"the metric returned no usable score ({score})"
                rows.append(
                    {
                        **base,
                        "metric": metric["name"],
                        "score": None if error else score,
                        "threshold": metric.get("threshold"),
                        "success": None if error else metric.get("success"),
                        "reason": metric.get("reason"),
                        "error": error,
                        "eval_cost": metric.get("evaluation_cost"),
                    }
                )
    return rows


def _files_digest(paths: list[Path], root: Path) -> str:
    """sha256 over the suite's test files (names relative to llmci.yaml, and contents)."""
    digest = hashlib.sha256()
    files = sorted(p for path in paths for p in ([path] if path.is_file() else path.rglob("*.py")))
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()
