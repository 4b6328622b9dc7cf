"""`llmci eval`: generate and measure every case of a suite, concurrently, through the caches.

Each case is one asyncio task (at most `concurrency` at once): its generation
(from the cache or the target), then each metric (from the cache or DeepEval).
A failure of one case (a 5xx after retries, a timeout, a judge error, a NaN
score) is recorded in its rows and the run goes on: such rows have no score
and no success, and count as inconclusive, never as passes.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from pathlib import Path
from typing import Any

from llmci.config import GenerationConfig, JudgeConfig, LoadedConfig, SuiteConfig
from llmci.errors import ConfigError, InputError, typed_first_line
from llmci.eval.cache import EvalCache, cache_key, generation_key
from llmci.eval.cases import Case, Generation, load_cases
from llmci.eval.http import CallError, HttpRetryPolicy
from llmci.eval.results import EMPTY_ROW, Results, RunStats, SuiteRun, score_problem, suite_metadata
from llmci.eval.targets import Target, open_target
from llmci.fsutil import display_path
from llmci.progress import ProgressMeter
from llmci.redact import redact_userinfo, userinfo_secrets


def suite_config(loaded: LoadedConfig, name: str) -> SuiteConfig:
    suites = loaded.config.eval.suites
    if name not in suites:
        close = difflib.get_close_matches(name, suites, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"suites in llmci.yaml: {', '.join(suites) or 'none'}"
        raise ConfigError(f"eval.suites: no suite '{name}'", hint=hint)
    return suites[name]


def run_eval(
    loaded: LoadedConfig,
    suite_name: str,
    target_spec: str,
    *,
    concurrency: int | None = None,
    cache_dir: Path | None = None,
    progress: bool | None = None,
    limit: int | None = None,
) -> SuiteRun:
    """Run one suite against one target; everything is validated before the first model call.

    With `cache_dir`, generations and scores are cached in `cache_dir/eval.sqlite`; with
    `limit`, only the first `limit` cases of a dataset suite run (a deploy's smoke eval).
    """
    suite = suite_config(loaded, suite_name)
    if suite.pytest is not None:
        from llmci.eval.pytest_suite import run_pytest_suite

        return run_pytest_suite(loaded, suite_name, suite, target_spec, cache_dir=cache_dir)

    from llmci.eval.metrics import build_metrics
    from llmci.templating import load_template

    settings = loaded.config.eval
    template = None
    if suite.prompt is not None:
        template = load_template(loaded.root, suite.prompt, key=f"eval.suites.{suite_name}.prompt")
    case_set = load_cases(loaded.root / suite.dataset, template)
    cases = case_set.cases[:limit] if limit else case_set.cases
    judge = _judge(loaded)
    metrics = build_metrics(loaded, suite_name, suite.metrics, judge)
    target = open_target(target_spec, loaded, cache_dir)
    if target.spec == "recorded":
        missing = next((case for case in cases if case.recording is None), None)
        if missing is not None:
            where = f"{display_path(case_set.path)}:{missing.line}"
            raise InputError(
                f"{where}: no 'actual_output'; the recorded target evaluates outputs already in the dataset"
            )

    run = _Run(
        suite_name, suite.generation, target, metrics, EvalCache(cache_dir / "eval.sqlite" if cache_dir else None)
    )
    started = time.perf_counter()
    try:
        rows = asyncio.run(run.all(cases, concurrency or settings.concurrency, progress, judge))
    finally:
        run.cache.close()
    run.stats.seconds = time.perf_counter() - started
    dataset = display_path(case_set.path)
    judge_identity = judge.identity if judge is not None else None
    meta = suite_metadata(
        loaded, suite_name, suite, target.spec, target.model_version, dataset, case_set.sha256, judge_identity
    )
    meta["cases"] = len(cases)
    return SuiteRun(Results(rows, meta), run.stats)


def mask_credentials(*, target: str | None = None, judge: JudgeConfig | None = None) -> None:
    """In Actions, have the runner hide credentials from the log; call it before anything is printed.

    The target's and the judge's URL userinfo (`user:password@`), and the judge's API key.
    """
    import os

    from llmci import gha

    secrets = userinfo_secrets(target or "")
    if judge is not None:
        secrets += [*userinfo_secrets(judge.base_url), os.environ.get(judge.api_key_env, "")]
    for secret in dict.fromkeys(secrets):  # each once
        gha.add_mask(secret)


def _judge(loaded: LoadedConfig) -> Any:
    settings = loaded.config.eval
    if settings.judge is None:
        return None
    from llmci.eval.judge import OpenAICompatibleJudge

    return OpenAICompatibleJudge(
        settings.judge, price=settings.prices.get(settings.judge.model), policy=HttpRetryPolicy(settings.retries)
    )


class _Run:
    def __init__(self, suite: str, params: GenerationConfig, target: Target, metrics: list, cache: EvalCache) -> None:
        self.suite = suite
        self.params = params
        self.target = target
        self.metrics = metrics
        self.cache = cache
        self.stats = RunStats()

    async def all(self, cases: list[Case], concurrency: int, progress: bool | None, judge: Any) -> list[dict]:
        gate = asyncio.Semaphore(concurrency)
        meter = ProgressMeter(f"eval {self.suite}", len(cases), progress, unit="case", leave=False, log_tenths=True)

        async def one(case: Case) -> list[dict[str, Any]]:
            async with gate:
                rows = await self.case(case)
            meter.advance(detail=f", {self.stats.errors} errors")
            return rows

        try:
            per_case = await asyncio.gather(*(one(case) for case in cases))
        finally:
            meter.close()
            await self.target.aclose()
            if judge is not None:
                await judge.aclose()
        return [row for rows in per_case for row in rows]

    async def case(self, case: Case) -> list[dict[str, Any]]:
        generation, error, cached = await self.generate(case)
        base = {
            "suite": self.suite,
            "case_id": case.id,
            "input": case.input,
            "expected_output": case.expected_output,
            "cached": cached,
        }
        if generation is not None:
            base.update(generation.__dict__)  # output, latency_ms, input_tokens, output_tokens, cost: their columns
        rows = []
        for spec in self.metrics:
            if generation is None:
                row = {
                    "metric": spec.key,
                    "error": f"generation failed: {error}",
                    "threshold": spec.prototype.threshold,
                }
            elif not generation.output.strip():
                # DeepEval refuses to score an empty output; a model that said nothing did not answer.
                threshold = spec.prototype.threshold
                row = {"metric": spec.key, "score": 0.0, "threshold": threshold, "reason": "the output is empty"}
                row["success"] = False if threshold is not None else None
            else:
                row = await self.measure(spec, case, generation)
            if row.get("error"):
                # Error texts quote servers and libraries: never let a URL's credentials into the table.
                row["error"] = redact_userinfo(row["error"])
                self.stats.errors += 1
            rows.append({**EMPTY_ROW, **base, **row})
        return rows

    async def generate(self, case: Case) -> tuple[Generation | None, str | None, bool]:
        key = None
        if self.target.cacheable:
            key = generation_key(self.target.identity, case.prompt, self.params)
            hit = self.cache.get("generations", key)
            if hit is not None:
                self.stats.cached_generations += 1
                return Generation(**hit), None, True
            self.stats.model_calls += 1
        try:
            generation = await self.target.generate(case, self.params)
        except CallError as exc:
            return None, str(exc), False
        except Exception as exc:  # a per-case failure of the model itself: recorded, the run goes on
            return None, typed_first_line(exc), False
        if key is not None:
            self.cache.put("generations", key, generation.__dict__)
        return generation, None, False

    async def measure(self, spec: Any, case: Case, generation: Generation) -> dict[str, Any]:
        from llmci.eval._deepeval import LLMTestCase
        from llmci.eval.judge import JudgeUsage, current_usage

        fields = {
            "input": case.input,
            "actual_output": generation.output,
            "expected_output": case.expected_output,
            "context": list(case.context) if case.context is not None else None,
            "retrieval_context": list(case.retrieval_context) if case.retrieval_context is not None else None,
            "completion_time": generation.latency_ms / 1000 if generation.latency_ms is not None else None,
            "token_cost": generation.cost,
        }
        key = cache_key("score", spec.identity, fields)
        hit = self.cache.get("scores", key)
        if hit is not None:
            self.stats.cached_scores += 1
            return hit
        metric = spec.fresh()
        usage = JudgeUsage()
        token = current_usage.set(usage)
        try:
            if spec.needs_judge:
                await metric.a_measure(LLMTestCase(name=case.id, **fields), _show_indicator=False)
            else:
                metric.measure(LLMTestCase(name=case.id, **fields), _show_indicator=False)
            error = metric.error
        except Exception as exc:  # a judge that failed for good, a metric that cannot score this case
            error = typed_first_line(exc)
        finally:
            current_usage.reset(token)
            self.stats.judge_calls += usage.calls
        score = metric.score if error is None else None
        if error is None and (problem := score_problem(score)):
            error, score = problem, None
        row = {
            "metric": spec.key,
            "score": score,
            "threshold": metric.threshold,
            "success": None if error else metric.success,
            "reason": metric.reason if error is None else None,
            "error": error,
            "eval_cost": usage.cost,
        }
        if error is None:
            self.cache.put("scores", key, row)
        return row
