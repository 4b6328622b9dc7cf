"""`llmci monitor sample`: production records as a `recorded` eval dataset, stratified by version and label.

Each stratum (version × answer label) gets its share of the N cases by
largest remainder, at least one case each, so a rare label that production
saw is in next week's suite. What may identify a person is not copied: the
vars a team names are dropped, and e-mail addresses and phone numbers in the
texts are replaced by a placeholder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from llmci.errors import UsageError
from llmci.monitor.records import read_window

if TYPE_CHECKING:
    from pydantic import JsonValue

    from llmci.registry.store import Store

#: A stratum's key (any hashable: `sample_cases` uses model, version and label).
K = TypeVar("K")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.-])\+?\(?\d[\d ().-]{7,}\d(?![\w.-])")
#: What a phone number's run of digits is not: an ISO date, a version number.
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(\.\d+)+(-\d+)?")
COLUMNS = (
    "model",
    "version",
    "kind",
    "status",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "prompt",
    "vars",
    "output",
    "request_id",
)


def scrub(text: str) -> str:
    """The text without e-mail addresses and phone numbers (nine digits or more: not dates, not versions)."""

    def phone(match: re.Match[str]) -> str:
        run = match.group(0)
        digits = sum(char.isdigit() for char in run)
        return run if digits < 9 or _NOT_PHONE.fullmatch(run) else "[phone]"

    return _PHONE.sub(phone, _EMAIL.sub("[email]", text))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    return value


def allocate(sizes: Mapping[K, int], n: int) -> dict[K, int]:
    """How many of `n` each stratum gets: proportional, largest remainder, at least one each, never more than it has."""
    total = sum(sizes.values())
    if total <= n:
        return dict(sizes)
    quotas = {key: size * n / total for key, size in sizes.items()}
    shares = {key: min(size, max(1, int(quotas[key]))) for key, size in sizes.items()}
    while sum(shares.values()) > n:  # the ones given to small strata come out of the largest
        largest = max(shares, key=shares.__getitem__)
        if shares[largest] <= 1:
            break  # more strata than cases: one each
        shares[largest] -= 1
    for key in sorted(sizes, key=lambda k: quotas[k] - int(quotas[k]), reverse=True):
        if sum(shares.values()) >= n:
            break
        if shares[key] < sizes[key]:
            shares[key] += 1
    return shares


def sample_cases(
    store: Store,
    env: str,
    start: datetime,
    end: datetime,
    n: int,
    *,
    labels: Collection[str] | None = None,
    drop_vars: Collection[str] = (),
    seed: int = 0,
) -> list[dict[str, JsonValue]]:
    """Up to `n` answered, served requests of [start, end) as dataset lines for the `recorded` target."""
    import numpy as np
    import pyarrow.compute as pc

    table, _ = read_window(store, env, start, end, COLUMNS)
    table = table.filter(pc.and_(pc.not_equal(table["kind"], "shadow"), pc.equal(table["status"], 200)))
    if not table.num_rows:
        raise UsageError(f"{env}: no answered requests recorded between {start.isoformat()} and {end.isoformat()}")
    prompts, variables = table["prompt"], table["vars"]
    hashed = (
        pc.any(pc.starts_with(pc.fill_null(prompts, ""), "sha256:")).as_py()
        or pc.any(pc.starts_with(pc.fill_null(variables, ""), "sha256:")).as_py()
    )
    if hashed or (prompts.null_count == table.num_rows and variables.null_count == table.num_rows):
        raise UsageError(
            f"{env}: the records keep no prompts to sample (monitor.record.prompts is hashed or dropped)",
            hint="set monitor.record.prompts: full where your privacy rules allow it",
        )
    answers = table["output"]
    if answers.null_count == table.num_rows or pc.any(pc.starts_with(pc.fill_null(answers, ""), "sha256:")).as_py():
        raise UsageError(
            f"{env}: the records keep no answers to sample (monitor.record.outputs is hashed or dropped)",
            hint="set monitor.record.outputs: full",
        )
    outputs = answers.to_pylist()
    label_of = [(o.strip() if o.strip() in labels else "(other)") if labels and o else "" for o in outputs]
    strata: dict[tuple[str, int, str], list[int]] = {}
    for index, key in enumerate(zip(table["model"].to_pylist(), table["version"].to_pylist(), label_of, strict=True)):
        strata.setdefault(key, []).append(index)
    rng = np.random.default_rng(seed)
    shares = allocate({key: len(rows) for key, rows in strata.items()}, n)
    picked = sorted(
        int(index) for key, rows in strata.items() for index in rng.choice(rows, size=shares[key], replace=False)
    )
    rows = table.take(picked).to_pylist()
    return [_case(row, label_of[index], drop_vars) for row, index in zip(rows, picked, strict=True)]


def _case(row: dict[str, Any], label: str, drop_vars: Collection[str]) -> dict[str, Any]:
    case: dict[str, Any] = {"id": row["request_id"] or f"{row['model']}-{row['version']}-{id(row)}"}
    variables = json.loads(row["vars"]) if row["vars"] is not None else None
    if isinstance(variables, dict):
        case["vars"] = _scrubbed({key: value for key, value in variables.items() if key not in drop_vars})
    else:
        case["input"] = scrub(row["prompt"] or "")
    case["actual_output"] = scrub(row["output"] or "")
    case["latency_ms"] = round(float(row["latency_ms"]), 3)
    case["input_tokens"], case["output_tokens"] = row["input_tokens"], row["output_tokens"]
    case["metadata"] = {"model": row["model"], "version": row["version"], "time": row["time"].isoformat()}
    if label:
        case["metadata"]["label"] = label
    return case
