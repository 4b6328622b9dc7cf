"""`llmci compare`: the baseline's and the candidate's results tables, case by case, into a verdict.

`compare_files` reads both tables and takes the gates and settings from
llmci.yaml; `compare_results` compares two tables already read; both give
the comparison document (`llmci.report.ComparisonDocument`) that
`verdict_lines` prints and `llmci report` posts. `paired_bootstrap` (an
`Interval`) and `mcnemar_exact` are the paired statistics behind each metric.

The names are loaded on first use: importing this package imports neither
pandas nor numpy (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.compare.deltas import compare_files, compare_results, verdict_lines
    from llmci.compare.stats import Interval, mcnemar_exact, paired_bootstrap

_WHERE = {
    "compare_files": "deltas",
    "compare_results": "deltas",
    "verdict_lines": "deltas",
    "Interval": "stats",
    "mcnemar_exact": "stats",
    "paired_bootstrap": "stats",
}

__all__ = [
    "Interval",
    "compare_files",
    "compare_results",
    "mcnemar_exact",
    "paired_bootstrap",
    "verdict_lines",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
