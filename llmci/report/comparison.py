"""The comparison document (`llmci.comparison/1`): `llmci compare` builds it, `llmci report` reads it.

One typed model for both. The writer builds `Comparison` and writes its dump
(only the fields it set, in the order it set them). The reader gets the
file from another job's artifact: it is validated before anything renders it,
so a damaged or hand-edited file is one error line naming the field, never a
traceback. Fields the model does not declare are kept as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypedDict, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictFloat, StrictInt, TypeAdapter, ValidationError

from llmci.errors import InputError

#: The document's `format`, written once: the model's type, and the string the writer puts in.
ComparisonFormat = Literal["llmci.comparison/1"]
COMPARISON_FORMAT: str = get_args(ComparisonFormat)[0]
Status = Literal["pass", "regression", "inconclusive"]
#: Strict: a number written as text ("-1") is damage, not something to convert.
Number = StrictFloat | None


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class Side(_Part):
    """The metadata of one side's results table (declared in the order `llmci eval` writes it)."""

    format: str | None = None
    suite: str | None = None
    target: str | None = None
    model_version: str | None = None
    git_repo: str | None = None
    git_commit: str | None = None
    workflow_run_url: str | None = None
    dataset: str | None = None
    dataset_sha256: str | None = None


class Stats(_Part):
    baseline: Number = None
    candidate: Number = None
    delta: Number = None
    ci: tuple[Number, Number] = (None, None)
    p_value: Number = None
    #: Pass rates only: McNemar's test and the discordant cases.
    mcnemar_p_value: Number = None
    regressed: StrictInt | None = None
    fixed: StrictInt | None = None


class CaseSide(_Part):
    output: Any = None
    score: Number = None
    success: bool | None = None
    reason: Any = None


class Case(_Part):
    case_id: Any = None
    input: Any = None
    expected_output: Any = None
    baseline: CaseSide = Field(default_factory=CaseSide)
    candidate: CaseSide = Field(default_factory=CaseSide)


class Metric(_Part):
    suite: str
    metric: str
    status: Status
    reasons: list[str] = Field(default_factory=list)
    #: The metric's gate as configured, and the statistic it was applied to.
    gate: dict[str, Any] | None = None
    n_matched: StrictInt = 0
    n_inconclusive: StrictInt = 0
    n_only_baseline: StrictInt = 0
    n_only_candidate: StrictInt = 0
    score: Stats = Field(default_factory=Stats)
    pass_rate: Stats | None = None
    regressed_cases: list[Case] = Field(default_factory=list)
    fixed_cases: list[Case] = Field(default_factory=list)
    n_regressed_cases: StrictInt = 0
    n_fixed_cases: StrictInt = 0


class Pair(_Part):
    baseline: Number = None
    candidate: Number = None


class Latency(_Part):
    baseline: dict[str, Number] = Field(default_factory=dict)
    candidate: dict[str, Number] = Field(default_factory=dict)


class Cost(Pair):
    eval_baseline: Number = None
    eval_candidate: Number = None


class Suite(_Part):
    suite: str
    n_cases: StrictInt = 0
    latency_ms: Latency = Field(default_factory=Latency)
    cost: Cost = Field(default_factory=Cost)


class Settings(_Part):
    confidence: StrictFloat = 0.95
    resamples: StrictInt | None = None
    seed: StrictInt | None = None


class Comparison(_Part):
    format: ComparisonFormat
    verdict: Status
    baseline: Side = Field(default_factory=Side)
    candidate: Side = Field(default_factory=Side)
    settings: Settings = Field(default_factory=Settings)
    metrics: list[Metric]
    suites: list[Suite] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class Finding(_Part):
    """One lint finding, as `llmci lint --format json` writes it."""

    path: str
    line: StrictInt
    column: StrictInt | None = None
    severity: str = "info"
    rule: str = ""
    message: str = ""


_Findings = TypeAdapter(list[Finding])


# -- the documents as JSON --------------------------------------------------------------
# What the models above dump (mode="json"), for the code that reads a comparison: one TypedDict per
# model, with the same fields (tests/report/test_render.py checks they stay the same). Not total: the
# document `build_comparison` gives holds only the fields its writer set.


class SideDocument(TypedDict, total=False):
    format: str | None
    suite: str | None
    target: str | None
    model_version: str | None
    git_repo: str | None
    git_commit: str | None
    workflow_run_url: str | None
    dataset: str | None
    dataset_sha256: str | None


class StatsDocument(TypedDict, total=False):
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci: list[float | None]
    p_value: float | None
    mcnemar_p_value: float | None
    regressed: int | None
    fixed: int | None


class CaseSideDocument(TypedDict, total=False):
    output: JsonValue
    score: float | None
    success: bool | None
    reason: JsonValue


class CaseDocument(TypedDict, total=False):
    case_id: JsonValue
    input: JsonValue
    expected_output: JsonValue
    baseline: CaseSideDocument
    candidate: CaseSideDocument


class MetricDocument(TypedDict, total=False):
    suite: str
    metric: str
    status: Status
    reasons: list[str]
    gate: dict[str, JsonValue] | None
    n_matched: int
    n_inconclusive: int
    n_only_baseline: int
    n_only_candidate: int
    score: StatsDocument
    pass_rate: StatsDocument | None
    regressed_cases: list[CaseDocument]
    fixed_cases: list[CaseDocument]
    n_regressed_cases: int
    n_fixed_cases: int


class LatencyDocument(TypedDict, total=False):
    baseline: dict[str, float | None]
    candidate: dict[str, float | None]


class CostDocument(TypedDict, total=False):
    baseline: float | None
    candidate: float | None
    eval_baseline: float | None
    eval_candidate: float | None


class SuiteDocument(TypedDict, total=False):
    suite: str
    n_cases: int
    latency_ms: LatencyDocument
    cost: CostDocument


class SettingsDocument(TypedDict, total=False):
    confidence: float
    resamples: int | None
    seed: int | None


class ComparisonDocument(TypedDict, total=False):
    """A comparison document as JSON: what `build_comparison` and `validate_comparison` give."""

    format: str
    verdict: Status
    baseline: SideDocument
    candidate: SideDocument
    settings: SettingsDocument
    metrics: list[MetricDocument]
    suites: list[SuiteDocument]
    warnings: list[str]


class FindingDocument(TypedDict, total=False):
    """One lint finding as JSON: what `validate_findings` gives."""

    path: str
    line: int
    column: int | None
    severity: str
    rule: str
    message: str


def build_comparison(document: Mapping[str, object]) -> ComparisonDocument:
    """What `llmci compare` writes: `document` typed by the model (only the fields it set, in its key order)."""
    with _one_line("the comparison of the two tables", "llmci eval"):  # their metadata is anyone's text
        typed = Comparison.model_validate(document)
    return cast(ComparisonDocument, _ordered_like(document, typed.model_dump(mode="json", exclude_unset=True)))


def _ordered_like(written: object, dumped: JsonValue) -> JsonValue:
    """`dumped` with its keys in the order of `written`, the same document before validation."""
    if isinstance(written, dict) and isinstance(dumped, dict):
        keys = [key for key in written if key in dumped] + [key for key in dumped if key not in written]
        return {key: _ordered_like(written.get(key), dumped[key]) for key in keys}
    if isinstance(written, list) and isinstance(dumped, list):
        return [_ordered_like(w, d) for w, d in zip(written, dumped, strict=False)]
    return dumped


def validate_comparison(data: object, source: str) -> ComparisonDocument:
    """The comparison with every field the report shows present and of its type; InputError otherwise."""
    if not isinstance(data, dict) or data.get("format") != COMPARISON_FORMAT:
        raise InputError(f"{source}: not a comparison (format is not {COMPARISON_FORMAT!r})")
    with _one_line(source, "llmci compare --out"):
        return cast(ComparisonDocument, Comparison.model_validate(data).model_dump(mode="json"))


def validate_findings(data: object, source: str) -> list[FindingDocument]:
    """Lint findings with the fields the report shows; InputError otherwise."""
    with _one_line(source, "llmci lint --format json"):
        return [cast(FindingDocument, finding.model_dump(mode="json")) for finding in _Findings.validate_python(data)]


@contextlib.contextmanager
def _one_line(source: str, producer: str) -> Iterator[None]:
    """A validation error as one line naming the first bad field (`metrics[0].score.ci[1]: Field required`)."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InputError(f"{source}: {where}: {first['msg']}{more}", hint=f"pass the file `{producer}` wrote") from None
