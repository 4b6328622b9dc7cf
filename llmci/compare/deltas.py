"""Baseline vs candidate: per-metric deltas with paired intervals, gates, and a verdict.

Cases are matched by (suite, case id). A case with an error on either side
(a failed generation, a judge error, no score) is left out of the paired
statistics and counted as inconclusive: it never passes.

How a metric is decided (its gate: `eval.suites.S.metrics[].gate`):

* regression: the whole confidence interval of the paired delta lies below
  `-max_regression` (default 0: any drop the data is sure of), or the
  candidate's mean is under `min`;
* inconclusive: no case was scored on both sides, or more than
  `max_inconclusive` of the matched cases had errors;
* pass: otherwise.

The verdict is regression if any metric regressed, else inconclusive if any
metric was, else pass. The JSON format is documented in docs/commands.md (`llmci compare`).

Nothing in the document carries a URL's credentials: what it copies from the
tables (their metadata, outputs, reasons) is passed through `redact_userinfo`,
since a table written by an older llmci may still hold `user:key@` in its target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmci.compare.stats import mcnemar_exact, paired_bootstrap
from llmci.config import CompareConfig, GateConfig, LoadedConfig
from llmci.redact import redact_userinfo
from llmci.report.comparison import COMPARISON_FORMAT, ComparisonDocument, build_comparison

if TYPE_CHECKING:
    import pandas as pd

#: Regressed and fixed cases listed per metric (the counts are always complete).
MAX_LISTED_CASES = 20
KEY = ["suite", "case_id", "metric"]


def compare_results(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    *,
    baseline_meta: dict[str, object],
    candidate_meta: dict[str, object],
    settings: CompareConfig,
    gates: Mapping[tuple[str, str], GateConfig],
) -> ComparisonDocument:
    """The comparison document of two results tables (pandas DataFrames)."""
    import pandas as pd

    merged = pd.merge(baseline, candidate, on=KEY, how="outer", suffixes=("_b", "_c"), indicator=True, sort=True)
    metrics = []
    for index, ((suite, metric), group) in enumerate(merged.groupby(["suite", "metric"], sort=True)):
        rng = np.random.default_rng([settings.seed, index])
        gate = gates.get((suite, metric), GateConfig())
        metrics.append(_metric(suite, metric, group, gate, settings, rng))
    suites = [_suite(suite, group) for suite, group in merged.groupby("suite", sort=True)]
    statuses = {m["status"] for m in metrics}
    verdict = "regression" if "regression" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    if not metrics:
        verdict = "inconclusive"
    warnings = []
    if baseline_meta.get("dataset_sha256") != candidate_meta.get("dataset_sha256"):
        warnings.append("the two sides were evaluated on different datasets: only matching case ids are compared")
    document = _without_credentials(
        {
            "format": COMPARISON_FORMAT,
            "verdict": verdict,
            "baseline": baseline_meta,
            "candidate": candidate_meta,
            "settings": {"confidence": settings.confidence, "resamples": settings.resamples, "seed": settings.seed},
            "metrics": metrics,
            "suites": suites,
            "warnings": warnings,
        }
    )
    return build_comparison(document)


def _without_credentials(value: Any) -> Any:
    """`value` (the comparison document) with `user:password@` cut from every URL in every string."""
    if isinstance(value, str):
        return redact_userinfo(value)
    if isinstance(value, dict):
        return {key: _without_credentials(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_credentials(item) for item in value]
    return value


def _metric(suite: str, metric: str, group: Any, gate: GateConfig, settings: CompareConfig, rng: Any) -> dict:
    both = group[group["_merge"] == "both"]
    scored = both[both["score_b"].notna() & both["score_c"].notna()]
    n_inconclusive = len(both) - len(scored)
    score_b, score_c = scored["score_b"].to_numpy(float), scored["score_c"].to_numpy(float)
    score = _delta_stats(score_b, score_c, settings, rng)

    judged = scored[scored["success_b"].notna() & scored["success_c"].notna()]
    pass_rate = None
    if len(judged):
        ok_b, ok_c = judged["success_b"].astype(bool).to_numpy(), judged["success_c"].astype(bool).to_numpy()
        regressed, fixed = int(np.sum(ok_b & ~ok_c)), int(np.sum(~ok_b & ok_c))
        pass_rate = {
            **_delta_stats(ok_b.astype(float), ok_c.astype(float), settings, rng),
            "mcnemar_p_value": mcnemar_exact(regressed, fixed),
            "regressed": regressed,
            "fixed": fixed,
        }

    gated = pass_rate if gate.statistic == "pass_rate" and pass_rate is not None else score
    status, reasons = _decide(gated, gate, len(scored), n_inconclusive, settings)
    changes = _changed_cases(scored)
    return {
        "suite": suite,
        "metric": metric,
        "status": status,
        "reasons": reasons,
        "gate": {**gate.model_dump(), "statistic": "pass_rate" if gated is pass_rate else "score"},
        "n_matched": len(scored),
        "n_inconclusive": n_inconclusive,
        "n_only_baseline": int((group["_merge"] == "left_only").sum()),
        "n_only_candidate": int((group["_merge"] == "right_only").sum()),
        "score": score,
        "pass_rate": pass_rate,
        "regressed_cases": changes["regressed"],
        "fixed_cases": changes["fixed"],
        "n_regressed_cases": changes["n_regressed"],
        "n_fixed_cases": changes["n_fixed"],
    }


def _delta_stats(base: np.ndarray, cand: np.ndarray, settings: CompareConfig, rng: Any) -> dict[str, Any]:
    interval = paired_bootstrap(cand - base, resamples=settings.resamples, confidence=settings.confidence, rng=rng)
    return {
        "baseline": _number(base.mean()) if len(base) else None,
        "candidate": _number(cand.mean()) if len(cand) else None,
        "delta": _number((cand - base).mean()) if len(base) else None,
        "ci": [_number(interval.low), _number(interval.high)],
        "p_value": _number(interval.p_value),
    }


def _decide(
    stats: dict[str, Any], gate: GateConfig, n_matched: int, n_inconclusive: int, settings: CompareConfig
) -> tuple[str, list[str]]:
    level = f"{settings.confidence:.0%}"
    if n_matched == 0:
        return "inconclusive", ["no case was scored on both sides"]
    reasons = []
    high = stats["ci"][1]
    if gate.max_regression is not None and high is not None and high < -gate.max_regression:
        low = stats["ci"][0]
        tolerated = f"the tolerated -{gate.max_regression:g}" if gate.max_regression else "0"
        reasons.append(
            f"delta {stats['delta']:+.4f}: its {level} interval [{low:+.4f}, {high:+.4f}] is below {tolerated}"
        )
    if gate.min is not None and stats["candidate"] < gate.min:
        reasons.append(f"candidate mean {stats['candidate']:.4f} is under the minimum {gate.min:g}")
    if reasons:
        return "regression", reasons
    share = n_inconclusive / (n_matched + n_inconclusive)
    if share > settings.max_inconclusive:
        return "inconclusive", [
            f"{n_inconclusive} of {n_matched + n_inconclusive} matched cases had errors ({share:.1%} > "
            f"max_inconclusive {settings.max_inconclusive:.0%})"
        ]
    return "pass", []


def _changed_cases(scored: Any) -> dict[str, Any]:
    """Cases that went from pass to fail (regressed) or back (fixed); by score where there is no pass/fail."""
    judged = scored["success_b"].notna() & scored["success_c"].notna()
    ok_b = scored["success_b"].fillna(False).astype(bool)
    ok_c = scored["success_c"].fillna(False).astype(bool)
    drop = scored["score_c"] - scored["score_b"]
    regressed = scored[(judged & ok_b & ~ok_c) | (~judged & (drop < 0))]
    fixed = scored[(judged & ~ok_b & ok_c) | (~judged & (drop > 0))]
    # drop[rows.index]: assigning the whole Series to an empty frame would give it the Series' rows (all NaN).
    return {
        "regressed": [
            _case(row)
            for row in regressed.assign(_d=drop[regressed.index]).sort_values("_d").head(MAX_LISTED_CASES).itertuples()
        ],
        "fixed": [
            _case(row)
            for row in fixed.assign(_d=drop[fixed.index])
            .sort_values("_d", ascending=False)
            .head(MAX_LISTED_CASES)
            .itertuples()
        ],
        "n_regressed": len(regressed),
        "n_fixed": len(fixed),
    }


def _case(row: Any) -> dict[str, Any]:
    def side(suffix: str) -> dict[str, Any]:
        return {
            "output": _text(getattr(row, f"output_{suffix}")),
            "score": _number(getattr(row, f"score_{suffix}")),
            "success": _flag(getattr(row, f"success_{suffix}")),
            "reason": _text(getattr(row, f"reason_{suffix}")),
        }

    return {
        "case_id": row.case_id,
        "input": _text(row.input_c) or _text(row.input_b),
        "expected_output": _text(row.expected_output_c) or _text(row.expected_output_b),
        "baseline": side("b"),
        "candidate": side("c"),
    }


def _suite(suite: str, group: Any) -> dict[str, Any]:
    """Latency and cost of the cases both sides ran (one value per case, not per metric row)."""
    cases = group[group["_merge"] == "both"].drop_duplicates("case_id")
    evaluation = group[group["_merge"] == "both"]
    return {
        "suite": suite,
        "n_cases": len(cases),
        "latency_ms": {
            "baseline": _percentiles(cases["latency_ms_b"]),
            "candidate": _percentiles(cases["latency_ms_c"]),
        },
        "cost": {
            "baseline": _total(cases["cost_b"]),
            "candidate": _total(cases["cost_c"]),
            "eval_baseline": _total(evaluation["eval_cost_b"]),
            "eval_candidate": _total(evaluation["eval_cost_c"]),
        },
    }


def _percentiles(values: Any) -> dict[str, float | None]:
    known = values.dropna().to_numpy(float)
    if not len(known):
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(known, [50, 95])
    return {"p50": _number(p50), "p95": _number(p95)}


def _total(values: Any) -> float | None:
    known = values.dropna()
    return _number(known.sum()) if len(known) else None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(value)


def compare_files(baseline: Path, candidate: Path, loaded: LoadedConfig) -> ComparisonDocument:
    """`llmci compare`: read both tables, take the gates and settings from llmci.yaml, compare."""
    from llmci.eval.results import read_results

    base_frame, base_meta = read_results(baseline)
    cand_frame, cand_meta = read_results(candidate)
    settings = loaded.config.eval
    gates = {(suite, metric.key): metric.gate for suite, config in settings.suites.items() for metric in config.metrics}
    return compare_results(
        base_frame,
        cand_frame,
        baseline_meta=base_meta,
        candidate_meta=cand_meta,
        settings=settings.compare,
        gates=gates,
    )


def verdict_lines(comparison: ComparisonDocument) -> list[str]:
    """What `llmci compare` prints: one line per metric, then the verdict."""
    lines = []
    for m in comparison["metrics"]:
        s = m["score"]
        if s["delta"] is None:
            numbers = "no matched scores"
        else:
            low, high = s["ci"]
            numbers = (
                f"{s['baseline']:.4f} -> {s['candidate']:.4f} (delta {s['delta']:+.4f}, CI [{low:+.4f}, {high:+.4f}])"
            )
        if m["pass_rate"] is not None:
            p = m["pass_rate"]
            numbers += f", pass rate {p['baseline']:.1%} -> {p['candidate']:.1%}"
        lines.append(f"{m['suite']} {m['metric']}: {m['status']}: {numbers}, n={m['n_matched']}")
        lines.extend(f"  {reason}" for reason in m["reasons"])
    lines.extend(f"warning: {warning}" for warning in comparison["warnings"])
    lines.append(f"verdict: {comparison['verdict']}")
    return lines
