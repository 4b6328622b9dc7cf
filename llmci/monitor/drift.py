"""Input and output drift: descriptors of request records, tested one by one against a reference.

`descriptor_table` turns request records (or a reference made from an eval
dataset) into one column per descriptor: prompt and output sizes, script,
the answer's label, empty answers, and each of the request's vars.
`drift_tests` compares a reference's descriptors with a window's, one
two-sample test per descriptor, and says which drifted.

The test for each descriptor is the one Evidently's data-drift preset picks
by default (`get_stattest` in evidently/legacy/calculations/stattests/registry.py):
on small samples a p-value test, two-sample Kolmogorov-Smirnov for numbers,
chi-squared for categories (the two-proportion Z-test for two), and numbers
with at most 5 distinct values count as categories; on large samples a
distance judged against a fixed line (0.1): Wasserstein distance divided by
the reference's standard deviation for numbers, Jensen-Shannon distance of
the category shares for categories.

Where this departs from Evidently, and why (figures: tests/monitor/test_drift.py's
simulated support-ticket traffic, 11 descriptors, hourly windows of 1,000 requests):

- Small or large is decided by the smaller of the two samples, not by the
  reference alone (Evidently: reference <= 1,000 rows). A test's power is
  bounded by its smaller sample, so a p-value test on 1,000 current rows cannot
  flag a change too small to matter, however large the reference; and
  distances need both samples large to be estimated well. With Evidently's
  rule a 5,000-row reference against 1,000-request windows gets distances,
  which alarm on 6% of windows of unchanged traffic and see a 10-point rise of
  the most common label (31% -> 41%, Jensen-Shannon distance 0.079, under the
  0.1 line) in 20% of windows; p-value tests there alarm on 1% and see it in
  98%. Distances, with their line for a change large enough to matter, decide
  only when both sides have more than 1,000 rows.
- p-value tests share one family-wise false-alarm rate `alpha` (Bonferroni:
  alpha divided by the number of p-value tests in the call). At Evidently's
  0.05 per descriptor, 28-29% of windows of unchanged traffic alarm somewhere.
- Chi-squared is the two-sample test of homogeneity (a contingency table of
  both samples' counts), not Evidently's goodness of fit against the
  reference's counts taken as exact: with a 300-row reference that ignores the
  reference's own noise, and Evidently's choice as a whole alarms on 99% of
  unchanged windows. It also handles a category one side never saw.

A small reference limits what any test can see: against 300 rows (an eval
dataset), 20% longer prompts are seen in 84% of windows and the most common
label's 10-point rise in 19% (a single test at 1%, with no other descriptor
to share alpha with, would see that one in about 75%). 30% longer prompts or a
20-point rise are seen in 97-99%. A reference of production traffic
(`window:START/END`, sampled to 5,000 rows) sees the smaller changes too.

scipy does the statistics: Evidently itself is a heavy install for four scipy calls.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmci.monitor import descriptors
from llmci.monitor.report import DriftTest

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Numeric descriptors recorded per request (llmci/monitor/records.py), taken as they are.
NUMERIC = ("prompt_chars", "input_tokens", "non_ascii_share", "oov_share", "output_chars", "output_tokens")
#: A categorical var keeps its most frequent values; the rest become OTHER (as do unknown labels).
MAX_CATEGORIES = 50
OTHER = "(other)"
#: Rows of the smaller sample up to which p-value tests are used (Evidently's line, applied to both samples).
SMALL_SAMPLE = 1000
#: Numbers with at most this many distinct values are tested as categories (as Evidently does).
FEW_VALUES = 5
#: What a hashed text or vars value starts with (llmci.monitor.records.private).
HASHED = "sha256:"
VARS_PREFIX = "vars."
#: Vars keys described when no reference names them (a client can send any number of keys).
MAX_VARS_KEYS = 20


# -- descriptors ---------------------------------------------------------------------------


def descriptor_table(
    records: pa.Table, labels: Collection[str] | None = None, vars_keys: Collection[str] | None = None
) -> pa.Table:
    """The descriptors of each record: numeric sizes and shares, charset, label, empty_output, `vars.KEY`.

    Any record column may be missing: a descriptor is derived from what is there (prompt_chars,
    non_ascii_share and charset from a full-text prompt when they were not recorded) or left out.
    `label` is the stripped output when it is one of `labels`, else OTHER; it needs outputs in full.
    Vars become columns for `vars_keys` only (the reference's: clients choose the keys of their
    requests), or, without them, for the MAX_VARS_KEYS most frequent keys.
    """
    import pyarrow as pa

    columns: dict[str, pa.ChunkedArray] = {}
    prompt = _full_text(records, "prompt")
    output = _full_text(records, "output")
    for name in NUMERIC:
        if name in records.column_names:
            columns[name] = records[name].cast(pa.float64())
        elif name == "prompt_chars" and prompt is not None:
            columns[name] = _chars(prompt)
        elif name == "non_ascii_share" and prompt is not None:
            columns[name] = _non_ascii_share(prompt)
        elif name == "output_chars" and output is not None:
            columns[name] = _chars(output)
    if "charset" in records.column_names:
        columns["charset"] = records["charset"].cast(pa.string())
    elif prompt is not None:
        columns["charset"] = _map_unique(prompt, descriptors.charset, pa.string())
    if labels is not None and output is not None:
        columns["label"] = _label(output, labels)
    empty = _empty_output(records, output)
    if empty is not None:
        columns["empty_output"] = empty
    if "vars" in records.column_names:
        columns.update(_vars_columns(records["vars"], vars_keys))
    return pa.table(columns)


def _full_text(records: pa.Table, name: str) -> pa.ChunkedArray | None:
    """The column's texts recorded in full (hashed ones null); None when there are none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in records.column_names:
        return None
    texts = records[name].cast(pa.string())
    texts = pc.if_else(pc.starts_with(texts, HASHED), pa.scalar(None, pa.string()), texts)
    return None if texts.null_count == len(texts) else texts


def _chars(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.utf8_length(texts).cast(pa.float64())


def _non_ascii_share(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    length = _chars(texts)
    non_ascii = pc.count_substring_regex(texts, r"[^\x00-\x7F]").cast(pa.float64())
    # descriptors.non_ascii_share: an empty text has a share of 0, not 0/0.
    return pc.if_else(pc.equal(length, 0), 0.0, pc.divide(non_ascii, length))


def _map_unique(values: pa.ChunkedArray, function: Any, type_: pa.DataType) -> pa.ChunkedArray:
    """`function` of each value, called once per distinct value (prompts and vars repeat a lot)."""
    import pyarrow as pa

    encoded = values.combine_chunks().dictionary_encode()
    mapped = pa.array([function(value) for value in encoded.dictionary.to_pylist()], type_, from_pandas=True)
    return pa.chunked_array([mapped.take(encoded.indices)], type_)


def _label(output: pa.ChunkedArray, labels: Collection[str]) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    stripped = pc.utf8_trim_whitespace(output)
    known = pc.is_in(stripped, value_set=pa.array(sorted(set(labels)), pa.string()))
    labelled = pc.if_else(known, stripped, OTHER)
    return pc.if_else(pc.is_valid(stripped), labelled, pa.scalar(None, pa.string()))


def _empty_output(records: pa.Table, output: pa.ChunkedArray | None) -> pa.ChunkedArray | None:
    """descriptors.is_empty_or_refusal of the full-text output; output_chars == 0 where it is hashed or null."""
    import pyarrow.compute as pc

    judged = []
    if output is not None:
        # Trimmed first, so the pattern's leading \s* (ASCII in RE2) need not see Unicode spaces.
        trimmed = pc.utf8_trim_whitespace(output)
        refusal = pc.match_substring_regex(trimmed, descriptors._REFUSAL.pattern, ignore_case=True)
        judged.append(pc.or_(pc.equal(pc.utf8_length(trimmed), 0), refusal))
    if "output_chars" in records.column_names:
        judged.append(pc.equal(records["output_chars"], 0))
    if not judged:
        return None
    empty = pc.coalesce(*judged) if len(judged) > 1 else judged[0]
    return None if empty.null_count == len(empty) else empty


def _vars_columns(column: pa.ChunkedArray, allowed: Collection[str] | None) -> dict[str, pa.ChunkedArray]:
    """One column per key of the vars JSON: numbers as float64, anything else as capped categories."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = column.cast(pa.string()).combine_chunks()
    texts = pc.if_else(pc.starts_with(texts, HASHED), pa.scalar(None, pa.string()), texts)
    if texts.null_count == len(texts):
        return {}
    # Requests of one product share their vars: parse each distinct JSON text once.
    encoded = texts.dictionary_encode()
    parsed = [_parse_object(text) for text in encoded.dictionary.to_pylist()]
    if allowed is not None:
        keys = [key for key in dict.fromkeys(allowed) if any(key in variables for variables in parsed)]
    else:
        seen = Counter(key for variables in parsed for key in variables)
        keys = [key for key, _ in seen.most_common(MAX_VARS_KEYS)]
    columns = {}
    for key in keys:
        values = [variables.get(key) for variables in parsed]
        present = [value for value in values if value is not None]
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in present):
            distinct = pa.array(values, pa.float64(), from_pandas=True)  # NaN from the JSON counts as missing
            columns[VARS_PREFIX + key] = pa.chunked_array([distinct.take(encoded.indices)])
        else:
            distinct = pa.array([_category(value) for value in values], pa.string())
            columns[VARS_PREFIX + key] = _cap(pa.chunked_array([distinct.take(encoded.indices)]))
    return columns


def _parse_object(text: str) -> dict[str, Any]:
    """A vars JSON object; {} for a text that is not one (the row then has no vars)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _category(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith(HASHED)):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)  # true, 3, ["a"]: as JSON writes them


def _cap(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """The MAX_CATEGORIES most frequent values; the others OTHER."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(values.drop_null())
    if len(counts) <= MAX_CATEGORIES:
        return values
    order = pc.array_sort_indices(counts.field("counts"), order="descending")
    kept = counts.field("values").take(order[:MAX_CATEGORIES])
    capped = pc.if_else(pc.is_in(values, value_set=kept), values, OTHER)
    return pc.if_else(pc.is_valid(values), capped, pa.scalar(None, pa.string()))


# -- tests ---------------------------------------------------------------------------------


@dataclass
class _Result:
    descriptor: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    reference_n: int
    current_n: int
    summary: str


def drift_tests(
    reference: pa.Table, current: pa.Table, *, alpha: float = 0.01, threshold: float = 0.1
) -> list[DriftTest]:
    """One test per descriptor column both tables have (see the module's docstring for which test).

    A column with fewer than 2 values on either side, or one value on both, is skipped. p-value tests
    share the false-alarm rate `alpha`; distances drift at `threshold` or above.
    """
    results = []
    for name in reference.column_names:
        if name in current.column_names:
            result = _test(name, reference[name], current[name])
            if result is not None:
                results.append(result)
    p_tests = sum(result.p_value is not None for result in results)
    corrected = alpha / p_tests if p_tests else alpha
    tests = []
    for result in results:
        line = corrected if result.p_value is not None else threshold
        drifted = result.p_value < line if result.p_value is not None else result.statistic >= line
        tests.append(
            DriftTest(
                descriptor=result.descriptor,
                kind=result.kind,
                test=result.test,
                statistic=result.statistic,
                p_value=result.p_value,
                threshold=line,
                drifted=drifted,
                reference_n=result.reference_n,
                current_n=result.current_n,
                summary=result.summary,
            )
        )
    return tests


def drift_score(tests: list[DriftTest]) -> float | None:
    """The largest statistic relative to its alarm line (1.0 = at the line); None without tests."""
    scores = []
    for test in tests:
        if test.p_value is not None:
            # Both logs are <= 0; abs() keeps p = 1 from scoring -0.0.
            scores.append(abs(math.log(max(test.p_value, 1e-300)) / math.log(test.threshold)))
        else:
            scores.append(test.statistic / test.threshold)
    return max(scores, default=None)


def _test(name: str, reference: pa.ChunkedArray, current: pa.ChunkedArray) -> _Result | None:
    import numpy as np
    import pyarrow as pa

    if _is_number(reference.type) and _is_number(current.type):
        ref, cur = _numbers(reference), _numbers(current)
        if len(ref) < 2 or len(cur) < 2:
            return None
        distinct = np.unique(np.concatenate([ref, cur]))
        if len(distinct) < 2:
            return None
        summary = f"mean {_number(ref.mean())} -> {_number(cur.mean())}"
        if len(distinct) > FEW_VALUES:
            return _numeric_test(name, ref, cur, summary)
        ref_counts, cur_counts = _value_counts(pa.array(ref)), _value_counts(pa.array(cur))
        return _categorical_test(name, "numeric", ref_counts, cur_counts, summary)
    ref_counts, cur_counts = _value_counts(reference), _value_counts(current)
    if name.startswith(VARS_PREFIX):
        ref_counts, cur_counts = _fold_capped(ref_counts, cur_counts), _fold_capped(cur_counts, ref_counts)
    if sum(ref_counts.values()) < 2 or sum(cur_counts.values()) < 2 or len(ref_counts.keys() | cur_counts.keys()) < 2:
        return None
    return _categorical_test(name, "categorical", ref_counts, cur_counts, _top_change(ref_counts, cur_counts))


def _numeric_test(name: str, ref: np.ndarray, cur: np.ndarray, summary: str) -> _Result:
    import numpy as np
    from scipy import stats

    if _small(len(ref), len(cur)):
        # scipy's exact p-value is slow on large samples and gives up there with a warning; asymptotic is precise.
        result = stats.ks_2samp(ref, cur, method="exact" if len(ref) * len(cur) <= 1_000_000 else "asymp")
        statistic, p_value, test = float(result.statistic), float(result.pvalue), "ks"
    else:
        # Evidently's normed distance: in reference standard deviations (a floor for a near-constant reference).
        norm = max(float(np.std(ref)), 0.001)
        statistic, p_value, test = float(stats.wasserstein_distance(ref, cur)) / norm, None, "wasserstein"
    return _Result(name, "numeric", test, statistic, p_value, len(ref), len(cur), summary)


def _categorical_test(name: str, kind: str, ref: dict[Any, int], cur: dict[Any, int], summary: str) -> _Result:
    import numpy as np
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    categories = sorted(ref.keys() | cur.keys(), key=str)
    table = np.array([[ref.get(c, 0) for c in categories], [cur.get(c, 0) for c in categories]], dtype=float)
    n_ref, n_cur = int(table[0].sum()), int(table[1].sum())
    if not _small(n_ref, n_cur):
        statistic = float(jensenshannon(table[0] / n_ref, table[1] / n_cur))
        return _Result(name, kind, "jensen_shannon", statistic, None, n_ref, n_cur, summary)
    if len(categories) == 2:
        # Two-proportion Z-test with the pooled proportion (Evidently's `z`).
        p_ref, p_cur = table[0, 0] / n_ref, table[1, 0] / n_cur
        pooled = (table[0, 0] + table[1, 0]) / (n_ref + n_cur)
        z = (p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
        return _Result(name, kind, "z", float(z), float(2 * stats.norm.sf(abs(z))), n_ref, n_cur, summary)
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return _Result(name, kind, "chi_squared", float(chi2), float(p_value), n_ref, n_cur, summary)


def _small(n_ref: int, n_cur: int) -> bool:
    return min(n_ref, n_cur) <= SMALL_SAMPLE


def _is_number(type_: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(type_) or pa.types.is_floating(type_)


def _numbers(values: pa.ChunkedArray) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    array = values.drop_null().cast(pa.float64()).to_numpy()
    return array[~np.isnan(array)]


def _value_counts(values: pa.ChunkedArray | pa.Array) -> dict[Any, int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    # As text: a var that is a number on one side and text on the other compares 3.0 with "3" as equal.
    counts = pc.value_counts(values.drop_null().cast(pa.string()))
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _fold_capped(counts: dict[Any, int], other_side: dict[Any, int]) -> dict[Any, int]:
    """Counts with the categories the other side may have capped into OTHER folded into OTHER too.

    Each side keeps its own most frequent values; a value named on this side only may be inside the
    other side's OTHER, and comparing it by name would be a difference made by the cap, not by traffic.
    """
    if OTHER not in other_side:
        return counts
    folded: dict[Any, int] = {}
    for category, count in counts.items():
        key = category if category in other_side else OTHER
        folded[key] = folded.get(key, 0) + count
    return folded


def _top_change(ref: dict[Any, int], cur: dict[Any, int]) -> str:
    """The category whose share changed most: `billing 31% -> 41%`."""
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    shares = {c: (ref.get(c, 0) / n_ref, cur.get(c, 0) / n_cur) for c in ref.keys() | cur.keys()}
    category = max(sorted(shares, key=str), key=lambda c: abs(shares[c][1] - shares[c][0]))
    before, after = shares[category]
    return f"{category} {_percent(before)} -> {_percent(after)}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _percent(share: float) -> str:
    return f"{share:.1%}" if 0 < share < 0.01 else f"{share:.0%}"
