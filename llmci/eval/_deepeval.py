"""The one place llmci imports DeepEval: its telemetry is turned off first.

DeepEval phones home unless `DEEPEVAL_TELEMETRY_OPT_OUT` is set before it is
imported; a CI tool sends nothing anywhere it was not asked to. The variable
is set (unless the caller set it) when this module is imported, that is only
when llmci needs DeepEval: importing llmci itself leaves `os.environ` alone.
Every module of llmci takes DeepEval's names from here. The pytest runs
`llmci eval` starts get the variable in their environment
(`llmci.eval.pytest_suite.child_environment`).
"""

from __future__ import annotations

import os

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")

import deepeval
import deepeval.metrics
from deepeval.metrics import BaseMetric
from deepeval.metrics.utils import check_llm_test_case_params
from deepeval.models import DeepEvalBaseLLM
from deepeval.test_case import LLMTestCase, SingleTurnParams
from deepeval.test_run import global_test_run_manager

__all__ = [
    "BaseMetric",
    "DeepEvalBaseLLM",
    "LLMTestCase",
    "SingleTurnParams",
    "check_llm_test_case_params",
    "deepeval",
    "global_test_run_manager",
]
