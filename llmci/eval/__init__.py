"""`llmci eval`: a suite (dataset + prompt + metrics, or DeepEval pytest files) on a target, into a results table.

`run_eval` runs the suites of llmci.yaml on a target (`hf:FOLDER`,
`registry:NAME@VERSION`, an OpenAI-compatible endpoint); `write_results` and
`read_results` keep the table (Parquet or JSONL, one row per case x metric);
`summarize` and `summary_markdown` say what it holds. `load_cases` reads a
suite's dataset, `open_target` opens a target, `HttpRetryPolicy` is how every
HTTP call of the stage retries.

The names are loaded on first use: importing this package imports neither
DeepEval nor pandas (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.eval.cases import Case, Generation, load_cases
    from llmci.eval.http import CallError, HttpRetryPolicy
    from llmci.eval.pytest_suite import run_pytest_suite
    from llmci.eval.results import Results, read_results, summarize, summary_markdown, write_results
    from llmci.eval.runner import mask_credentials, run_eval
    from llmci.eval.targets import Target, open_target

_WHERE = {
    "Case": "cases",
    "Generation": "cases",
    "load_cases": "cases",
    "CallError": "http",
    "HttpRetryPolicy": "http",
    "run_pytest_suite": "pytest_suite",
    "Results": "results",
    "read_results": "results",
    "summarize": "results",
    "summary_markdown": "results",
    "write_results": "results",
    "mask_credentials": "runner",
    "run_eval": "runner",
    "Target": "targets",
    "open_target": "targets",
}

__all__ = [
    "CallError",
    "Case",
    "Generation",
    "HttpRetryPolicy",
    "Results",
    "Target",
    "load_cases",
    "mask_credentials",
    "open_target",
    "read_results",
    "run_eval",
    "run_pytest_suite",
    "summarize",
    "summary_markdown",
    "write_results",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
