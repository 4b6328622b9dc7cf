"""The comparison document (`llmci.comparison/1`) as `llmci report` reads it.

The file comes from another job's artifact: it is validated before anything
renders it, so a damaged or hand-edited file is one error line naming the
field, never a traceback. Fields the report does not show are kept as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, TypeAdapter, ValidationError

from llmci.errors import InputError

COMPARISON_FORMAT = "llmci.comparison/1"
Status = Literal["pass", "regression", "inconclusive"]
#: Strict: a number written as text ("-1") is damage, not something to convert.
Number = StrictFloat | None


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class Side(_Part):
    target: str | None = None
    model_version: str | None = None
    git_commit: str | None = None
    git_repo: str | None = None
    dataset: str | None = None
    dataset_sha256: str | None = None


class Stats(_Part):
    baseline: Number = None
    candidate: Number = None
    delta: Number = None
    ci: tuple[Number, Number] = (None, None)
    regressed: StrictInt | None = None
    fixed: StrictInt | None = None


class CaseSide(_Part):
    output: Any = None
    score: Number = None
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
    n_matched: StrictInt = 0
    score: Stats = Field(default_factory=Stats)
    pass_rate: Stats | None = None
    regressed_cases: list[Case] = Field(default_factory=list)
    n_regressed_cases: StrictInt = 0


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
    format: Literal["llmci.comparison/1"]
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
