"""`llmci compare` on 100,000 cases with 10,000 paired bootstrap resamples.

Two metrics per case: a pass/fail one (ExactMatch, 3 distinct deltas) and a
continuous one (ROUGE-L, binned to 256 values for resampling). Timed: reading
both Parquet tables and the whole comparison (merge, bootstrap, McNemar, gates,
case lists, latency and cost), in-process. Target: <= 2 s.

The baseline, in the same run: the textbook paired bootstrap that draws 100,000
case indices per resample, for the continuous metric only; timed on 200
resamples and scaled to 10,000 (running all of them would take minutes).

    .venv/bin/python benchmarks/bench_compare.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llmci.compare.deltas import compare_files
from llmci.config import LoadedConfig, parse_config
from llmci.eval.results import EMPTY_ROW, Results, write_results

CASES = 100_000
RESAMPLES = 10_000
TARGET_S = 2.0


def side(path: Path, rng: np.random.Generator, quality: np.ndarray, shift: float) -> np.ndarray:
    rouge = np.clip(quality + shift + rng.normal(0, 0.1, CASES), 0, 1)
    exact = (rng.random(CASES) < quality + shift).astype(float)
    latency = rng.gamma(4, 30, CASES)
    rows = []
    for i in range(CASES):
        case = {**EMPTY_ROW, "suite": "bench", "case_id": f"c{i}", "latency_ms": latency[i], "cost": 1e-5}
        rows.append({**case, "metric": "ExactMatch", "score": exact[i], "success": bool(exact[i]), "threshold": 1.0})
        rows.append({**case, "metric": "RougeL", "score": rouge[i], "success": bool(rouge[i] >= 0.5), "threshold": 0.5})
    write_results(path, Results(rows, {"suite": "bench"}))
    return rouge


def main() -> int:
    rng = np.random.default_rng(0)
    quality = rng.beta(2, 2, CASES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base_rouge = side(root / "base.parquet", rng, quality, 0.0)
        cand_rouge = side(root / "cand.parquet", rng, quality, -0.01)
        loaded = LoadedConfig(parse_config(f"eval: {{compare: {{resamples: {RESAMPLES}}}}}"), None)
        compare_files(root / "base.parquet", root / "cand.parquet", loaded)  # warm imports
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            doc = compare_files(root / "base.parquet", root / "cand.parquet", loaded)
            timings.append(time.perf_counter() - start)
    ours = min(timings)

    deltas = cand_rouge - base_rouge
    naive_rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(200):
        deltas[naive_rng.integers(0, CASES, CASES)].mean()
    naive = (time.perf_counter() - start) * RESAMPLES / 200

    ok = ours <= TARGET_S
    rouge = next(m for m in doc["metrics"] if m["metric"] == "RougeL")["score"]
    print(
        f"compare: {CASES:,} cases x 2 metrics, {RESAMPLES:,} resamples: {ours:.2f} s (best of 3; target <= "
        f"{TARGET_S:g} s) {'PASS' if ok else 'FAIL'}; verdict {doc['verdict']}, "
        f"RougeL delta {rouge['delta']:+.4f} CI [{rouge['ci'][0]:+.4f}, {rouge['ci'][1]:+.4f}]"
    )
    print(
        f"baseline: index-resampling bootstrap of one metric {naive:.1f} s (200 resamples scaled to {RESAMPLES:,}): "
        f"llmci is {naive / ours:.0f}x faster for twice the metrics"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
