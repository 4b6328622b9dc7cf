from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmci.compare.deltas import compare_results
from llmci.config import CompareConfig
from tests.report.github_server import GitHubServer

SHA_OLD, SHA_NEW = "a" * 40, "b" * 40


def comparison(
    outputs: list[tuple[str, str]],
    *,
    inputs: list[str] | None = None,
    reasons: list[str] | None = None,
    suite: str = "routing",
    expected: str = "bug",
) -> dict:
    """A real `compare_results` document: case i passes on the side whose output equals `expected`."""
    n = len(outputs)

    def side(index: int) -> pd.DataFrame:
        texts = [pair[index] for pair in outputs]
        scores = np.array([float(text == expected) for text in texts])
        return pd.DataFrame(
            {
                "suite": suite,
                "case_id": [f"case-{i}" for i in range(n)],
                "metric": "ExactMatch",
                "score": scores,
                "success": scores >= 1.0,
                "input": inputs or [f"ticket {i}" for i in range(n)],
                "expected_output": expected,
                "output": texts,
                "reason": reasons if reasons and index else ["match" if s else "mismatch" for s in scores],
                "latency_ms": 10.0 + index,
                "cost": None,
                "eval_cost": None,
            }
        )

    meta = {"target": "hf:base", "git_commit": SHA_OLD, "git_repo": "https://github.com/octo/widgets"}
    return compare_results(
        side(0),
        side(1),
        baseline_meta=meta,
        candidate_meta={**meta, "target": "registry:router@2", "model_version": "router@2", "git_commit": SHA_NEW},
        settings=CompareConfig(resamples=2000),
        gates={},
    )


def regression(n: int = 40, output: str = "feature") -> dict:
    """Every case passes on the baseline and fails on the candidate with `output`."""
    return comparison([("bug", output)] * n)


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(pulls=(7,)) as server:
        yield server


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
