"""The comparison document (`llmci.comparison/1`): `llmci compare` builds it, `llmci report` reads it.

One typed model for both. The writer builds `Comparison` and writes its dump
(only the fields it set, in the order it set them). The reader gets the
file from another job's artifact: it is validated before anything renders it,
so a damaged or hand-edited file is one error line naming the field, never a
traceback. Fields the model does not declare are kept as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, TypeAdapter, ValidationError

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


def build_comparison(document: dict[str, Any]) -> dict[str, Any]:
    """What `llmci compare` writes: `document` typed by the model (only the fields it set, in its key order)."""
    with _one_line("the comparison of the two tables", "llmci eval"):  # their metadata is anyone's text
        typed = Comparison.model_validate(document)
    return _ordered_like(document, typed.model_dump(mode="json", exclude_unset=True))


def _ordered_like(written: Any, dumped: Any) -> Any:
    """`dumped` with its keys in the order of `written`, the same document before validation."""
    if isinstance(written, dict) and isinstance(dumped, dict):
        keys = [key for key in written if key in dumped] + [key for key in dumped if key not in written]
        return {key: _ordered_like(written.get(key), dumped[key]) for key in keys}
    if isinstance(written, list) and isinstance(dumped, list):
        return [_ordered_like(w, d) for w, d in zip(written, dumped, strict=False)]
    return dumped


def validate_comparison(data: Any, source: str) -> dict[str, Any]:
    """The comparison with every field the report shows present and of its type; InputError otherwise."""
    if not isinstance(data, dict) or data.get("format") != COMPARISON_FORMAT:
        raise InputError(f"{source}: not a comparison (format is not {COMPARISON_FORMAT!r})")
    with _one_line(source, "llmci compare --out"):
        return Comparison.model_validate(data).model_dump()


def validate_findings(data: Any, source: str) -> list[dict[str, Any]]:
    """Lint findings with the fields the report shows; InputError otherwise."""
    with _one_line(source, "llmci lint --format json"):
        return [finding.model_dump() for finding in _Findings.validate_python(data)]


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
