"""Metrics by name: DeepEval's metric classes, and llmci's own written as DeepEval `BaseMetric`s.

`ExactMatch` and `ExactMatchMetric` both name DeepEval's class. A metric whose
class takes a `model` is judged by an LLM: it gets the configured judge, and
without one the run is refused before anything runs.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
from dataclasses import dataclass
from typing import Any

from llmci import __version__
from llmci.config import LoadedConfig, MetricConfig
from llmci.errors import ConfigError
from llmci.eval._deepeval import BaseMetric, LLMTestCase, SingleTurnParams, check_llm_test_case_params, deepeval

JUDGE_HINT = (
    "add eval.judge: {base_url, model, api_key_env} to llmci.yaml (any OpenAI-compatible endpoint: "
    "vLLM, Ollama, a hosted API); llmci never picks a hosted judge on its own"
)


class _DeterministicMetric(BaseMetric):
    """Scores computed from the test case alone; `a_measure` just calls `measure`."""

    _required_params: list[SingleTurnParams] = [SingleTurnParams.ACTUAL_OUTPUT]

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.verbose_mode = False
        self.include_reason = True

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        check_llm_test_case_params(test_case, self._required_params, None, None, self, None, test_case.multimodal)
        self.score, self.reason = self._score(test_case)
        self.success = self.is_successful()
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def _score(self, test_case: LLMTestCase) -> tuple[float, str]:
        raise NotImplementedError


class RougeLMetric(_DeterministicMetric):
    """ROUGE-L F1: the longest common subsequence of words of the actual and expected output."""

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]

    def __init__(self, threshold: float = 0.5, lowercase: bool = True) -> None:
        super().__init__(threshold)
        self.lowercase = lowercase

    def _score(self, test_case: LLMTestCase) -> tuple[float, str]:
        words = (lambda text: text.lower().split()) if self.lowercase else str.split
        actual, expected = words(test_case.actual_output), words(test_case.expected_output)
        common = _lcs_length(actual, expected)
        if common == 0:
            return 0.0, "no words in common with the expected output"
        precision, recall = common / len(actual), common / len(expected)
        f1 = 2 * precision * recall / (precision + recall)
        return f1, f"{common} words in sequence in common (precision {precision:.2f}, recall {recall:.2f})"

    @property
    def __name__(self) -> str:
        return "ROUGE-L"


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


class LatencyBudgetMetric(_DeterministicMetric):
    """1 when the target answered within `max_ms`, else 0 (the test case's completion_time)."""

    def __init__(self, max_ms: float, threshold: float = 1.0) -> None:
        super().__init__(threshold)
        self.max_ms = max_ms

    def _score(self, test_case: LLMTestCase) -> tuple[float, str]:
        if test_case.completion_time is None:
            raise ValueError("no latency was recorded for this case")
        took = test_case.completion_time * 1000
        within = took <= self.max_ms
        return float(within), f"{took:.0f} ms {'within' if within else 'over'} the {self.max_ms:g} ms budget"

    @property
    def __name__(self) -> str:
        return "Latency Budget"


class CostBudgetMetric(_DeterministicMetric):
    """1 when the case cost at most `max_usd`, else 0 (the test case's token_cost)."""

    def __init__(self, max_usd: float, threshold: float = 1.0) -> None:
        super().__init__(threshold)
        self.max_usd = max_usd

    def _score(self, test_case: LLMTestCase) -> tuple[float, str]:
        if test_case.token_cost is None:
            raise ValueError("no cost is known for this case (set eval.prices for the target's model)")
        within = test_case.token_cost <= self.max_usd
        return float(
            within
        ), f"${test_case.token_cost:.6f} {'within' if within else 'over'} the ${self.max_usd:g} budget"

    @property
    def __name__(self) -> str:
        return "Cost Budget"


LLMCI_METRICS: dict[str, type[BaseMetric]] = {
    "RougeL": RougeLMetric,
    "LatencyBudget": LatencyBudgetMetric,
    "CostBudget": CostBudgetMetric,
}


@dataclass(frozen=True)
class MetricSpec:
    key: str
    prototype: BaseMetric
    needs_judge: bool
    #: Everything a cached score depends on besides the test case.
    identity: str

    def fresh(self) -> BaseMetric:
        """A metric object for one measurement: DeepEval metrics keep their result on themselves."""
        return copy.copy(self.prototype)


def build_metrics(loaded: LoadedConfig, suite_name: str, configs: list[MetricConfig], judge: Any) -> list[MetricSpec]:
    """Every metric of a suite, constructed (so bad names and params fail before anything runs)."""
    specs = []
    for index, config in enumerate(configs):
        where = ("eval", "suites", suite_name, "metrics", index)
        cls = _metric_class(config.name, loaded, where)
        needs_judge = "model" in inspect.signature(cls.__init__).parameters
        if needs_judge and judge is None:
            raise ConfigError(
                f"{locate(loaded, *where, 'name')}: {config.name} is judged by an LLM and eval.judge is not set",
                hint=JUDGE_HINT,
            )
        kwargs = _params(config, loaded, where)
        if config.threshold is not None:
            kwargs["threshold"] = config.threshold
        if needs_judge:
            kwargs["model"] = judge
        try:
            prototype = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{locate(loaded, *where)}: {config.name}: {exc}") from None
        identity = json.dumps(
            [cls.__module__, cls.__qualname__, config.params, config.threshold]
            + [judge.identity if needs_judge else None, deepeval.__version__, __version__],
            sort_keys=True,
            default=str,
        )
        specs.append(MetricSpec(config.key, prototype, needs_judge, identity))
    return specs


def locate(loaded: LoadedConfig, *where: str | int) -> str:
    from llmci.config import locate as locate_key

    return locate_key(loaded, *where)


def _metric_class(name: str, loaded: LoadedConfig, where: tuple[str | int, ...]) -> type[BaseMetric]:
    if name in LLMCI_METRICS:
        return LLMCI_METRICS[name]
    for candidate in (name, f"{name}Metric"):
        cls = getattr(deepeval.metrics, candidate, None)
        if isinstance(cls, type) and issubclass(cls, BaseMetric) and not inspect.isabstract(cls):
            return cls
    known = sorted(set(LLMCI_METRICS) | {n.removesuffix("Metric") for n in deepeval.metrics.__all__})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "see DeepEval's metrics, or llmci's: " + ", ".join(LLMCI_METRICS)
    raise ConfigError(f"{locate(loaded, *where, 'name')}: unknown metric '{name}'; {hint}")


def _params(config: MetricConfig, loaded: LoadedConfig, where: tuple[str | int, ...]) -> dict[str, Any]:
    """The metric's keyword arguments; test-case field names become DeepEval's SingleTurnParams."""
    params = dict(config.params)
    if "evaluation_params" in params:
        values = params["evaluation_params"]
        allowed = [p.value for p in SingleTurnParams]
        if not isinstance(values, list) or any(v not in allowed for v in values):
            raise ConfigError(
                f"{locate(loaded, *where, 'params', 'evaluation_params')}: must be a list of {', '.join(allowed[:5])}"
            )
        params["evaluation_params"] = [SingleTurnParams(v) for v in values]
    return params
