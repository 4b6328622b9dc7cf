"""Existing DeepEval pytest suites (`test_*.py` with `assert_test`) as an llmci suite.

pytest runs in a child process with llmci's plugin (`llmci.eval.pytest_plugin`),
in the folder of llmci.yaml; the target spec reaches the tests as the
environment variable `LLMCI_TARGET` (and as the plugin's `llmci_target`
fixture), so one suite can test the baseline and the candidate. Each measured
test case becomes rows of the same results table: the case id is the test's
node id (`#2`, `#3`, ... when one test measures several cases), one row per
metric.

DeepEval in the child takes its default judge from its settings, which read
the environment: `eval.judge` is handed over as DeepEval's "local model"
(an OpenAI-compatible endpoint), so metrics the tests build without a `model`
use the configured judge, never a hosted API llmci was not told about.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmci import gha
from llmci.config import JudgeConfig, LoadedConfig, SuiteConfig
from llmci.errors import InputError
from llmci.eval.results import EMPTY_ROW, Results, RunStats, SuiteRun, score_problem, suite_metadata
from llmci.redact import redact_userinfo, without_userinfo

#: pytest exit codes that mean the suite itself could not run (0 and 1 are results).
PYTEST_PROBLEMS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests were collected"}


#: DeepEval's model selectors that it checks before its local model: set to false so eval.judge wins
#: over a provider picked in the project's .env (deepeval/metrics/utils/models.py, 4.x).
DEEPEVAL_EARLIER_PROVIDERS = ("USE_OPENAI_MODEL", "USE_GEMINI_MODEL", "USE_LITELLM", "USE_PORTKEY_MODEL")


def run_pytest_suite(
    loaded: LoadedConfig, name: str, suite: SuiteConfig, target_spec: str, *, cache_dir: Path | None = None
) -> SuiteRun:
    """Run the suite's pytest files against `target_spec`; `cache_dir` None: the fixture caches nothing."""
    paths = [loaded.root / path for path in suite.pytest or []]
    for given, path in zip(suite.pytest or [], paths, strict=True):
        if not path.exists():
            raise InputError(f"eval.suites.{name}.pytest: {given}: no such file or folder")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmci-pytest-") as scratch:
        out = Path(scratch) / "records.json"
        env = child_environment(loaded, name, target_spec, cache_dir, results=out)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "llmci.eval.pytest_plugin", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            [*command, *map(str, paths)], cwd=loaded.root, env=env, capture_output=True, text=True, check=False
        )
        forward_untrusted(proc.stdout[-4000:])
        if proc.returncode in PYTEST_PROBLEMS or not out.is_file():
            last = (proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or ["no output"])[-1]
            problem = PYTEST_PROBLEMS.get(proc.returncode, f"exit {proc.returncode}")
            raise InputError(f"eval.suites.{name}.pytest: pytest {problem}: {redact_userinfo(last)}")
        records = json.loads(out.read_text(encoding="utf-8"))
    rows = rows_from_records(name, records)
    stats = RunStats(errors=sum(1 for row in rows if row["error"]), seconds=time.perf_counter() - started)
    digest = _files_digest(paths, loaded.root)
    judge = loaded.config.eval.judge
    judge_identity = f"{without_userinfo(judge.base_url)}#{judge.model}" if judge is not None else None
    meta = suite_metadata(loaded, name, suite, target_spec, None, " ".join(suite.pytest or []), digest, judge_identity)
    meta["cases"] = len({row["case_id"] for row in rows})
    meta["metrics"] = sorted({row["metric"] for row in rows})
    return SuiteRun(Results(rows, meta), stats)


def child_environment(
    loaded: LoadedConfig, suite: str, target_spec: str, cache_dir: Path | None, *, results: Path
) -> dict[str, str]:
    """The pytest child's environment: the target for the tests and the fixture, the judge for DeepEval."""
    env = {
        **os.environ,
        "LLMCI_PYTEST_RESULTS": str(results),
        # With its credentials: the tests and the llmci_target fixture call it (the log masks them).
        "LLMCI_TARGET": target_spec,
        "LLMCI_SUITE": suite,
        # A CI tool phones nobody, whatever the caller's environment says.
        "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    }
    if loaded.path is not None:
        env["LLMCI_CONFIG"] = str(loaded.path)
    if cache_dir is not None:
        env["LLMCI_CACHE_DIR"] = str(cache_dir)
        env.pop("LLMCI_NO_CACHE", None)
    else:
        env["LLMCI_NO_CACHE"] = "1"
    if loaded.config.eval.judge is not None:
        env.update(deepeval_judge_environment(loaded.config.eval.judge))
    return env


def deepeval_judge_environment(judge: JudgeConfig) -> dict[str, str]:
    """DeepEval's settings for `judge` as its default model (what `deepeval set-local-model` would store)."""
    return {
        "USE_LOCAL_MODEL": "YES",
        **dict.fromkeys(DEEPEVAL_EARLIER_PROVIDERS, "NO"),
        "LOCAL_MODEL_BASE_URL": judge.base_url,
        "LOCAL_MODEL_NAME": judge.model,
        # DeepEval refuses to build its client without a key; a keyless local judge ignores this one.
        "LOCAL_MODEL_API_KEY": os.environ.get(judge.api_key_env) or "no-key",
        "LOCAL_MODEL_FORMAT": "json",
    }


def forward_untrusted(text: str) -> None:
    """Show the child's output on stderr; in Actions with workflow commands stopped, as it is test output."""
    if not text:
        return
    with gha.commands_stopped(out=sys.stderr):
        # The resume marker must start a line of its own, or the runner never resumes commands.
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()


def rows_from_records(suite: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        if record["error"] is not None:
            error = redact_userinfo(record["error"])
            rows.append({**EMPTY_ROW, "suite": suite, "case_id": record["nodeid"], "metric": "pytest", "error": error})
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
                if error is None and (problem := score_problem(score)):
                    # A metric that raised left no score; the exception that ended the test says why.
                    error = record.get("exception") or problem
                rows.append(
                    {
                        **base,
                        "metric": metric["name"],
                        "score": None if error else score,
                        "threshold": metric.get("threshold"),
                        "success": None if error else metric.get("success"),
                        "reason": metric.get("reason"),
                        "error": redact_userinfo(error) if error else None,
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
