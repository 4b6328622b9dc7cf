"""Drift: descriptors of request records, the test chosen per descriptor, and the false-alarm and detection
rates the issue asks for, measured by simulating production traffic."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from llmci.monitor import descriptors
from llmci.monitor.drift import OTHER, descriptor_table, drift_score, drift_tests
from llmci.monitor.records import private
from llmci.monitor.report import DriftTest

# -- synthetic traffic ---------------------------------------------------------------------
#
# A support-ticket classifier: prompts of lognormal length, mostly Latin script, answered with one of
# eight labels of unequal shares (and now and then nothing, a refusal or an unknown label); each request
# carries two vars, the customer's product (categorical) and account age in days (numeric).

LABELS = ["billing", "tech_support", "account", "shipping", "refunds", "cancellation", "feedback", "sales"]
LABEL_SHARES = np.array([0.31, 0.20, 0.14, 0.10, 0.09, 0.07, 0.05, 0.04])
CHARSETS = np.array(["latin", "cyrillic", "cjk", "arabic", "none"], dtype=object)
CHARSET_SHARES = [0.92, 0.04, 0.025, 0.01, 0.005]
TOKENS_PER_CHAR = np.array([0.25, 0.4, 0.8, 0.4, 0.3])
PRODUCTS = np.array(["basic", "pro", "team", "enterprise", "edu", "trial"], dtype=object)
PRODUCT_SHARES = [0.45, 0.25, 0.12, 0.08, 0.06, 0.04]
REFUSAL = "I'm sorry, I can't help with that."


def traffic(n: int, rng: np.random.Generator, *, label_shares=LABEL_SHARES, length_factor: float = 1.0) -> pa.Table:
    """`n` request records as the router writes them (prompts hashed, outputs in full)."""
    script = rng.choice(len(CHARSETS), n, p=CHARSET_SHARES)
    chars = np.maximum(1, np.round(rng.lognormal(5.2, 0.55, n) * length_factor))
    tokens = np.round(chars * TOKENS_PER_CHAR[script] * rng.lognormal(0, 0.08, n)) + 12  # + the template's tokens
    accented = np.where(rng.random(n) < 0.85, 0.0, rng.beta(1.2, 40, n))
    non_ascii = np.select(
        [script == 0, script == 2, script == 4], [accented, rng.beta(40, 4, n), 0.0], rng.beta(30, 6, n)
    )
    oov = np.where(rng.random(n) < 0.97, 0.0, rng.beta(1, 30, n))
    answer = np.array(LABELS, dtype=object)[rng.choice(len(LABELS), n, p=label_shares)]
    odd = rng.random(n)
    answer = np.select([odd < 0.02, odd < 0.03, odd < 0.04], ["", REFUSAL, "unknown"], answer)
    output = pa.array(answer, pa.string())
    output_chars = pc.utf8_length(output)
    product = pa.array(PRODUCTS[rng.choice(len(PRODUCTS), n, p=PRODUCT_SHARES)], pa.string())
    age = pa.array(np.round(rng.lognormal(5, 1.0, n)).astype(np.int64)).cast(pa.string())
    variables = pc.binary_join_element_wise('{"account_age_days": ', age, ', "product": "', product, '"}', "")
    return pa.table(
        {
            "status": pa.array(np.full(n, 200), pa.int16()),
            "latency_ms": pa.array(rng.lognormal(4, 0.3, n), pa.float32()),
            "input_tokens": pa.array(tokens, pa.int32()),
            "output_tokens": pc.add(pc.divide(output_chars, 4), 1).cast(pa.int32()),
            "prompt": pa.array(np.full(n, "sha256:" + "0" * 64), pa.string()),
            "vars": variables,
            "prompt_chars": pa.array(chars, pa.int32()),
            "non_ascii_share": pa.array(non_ascii, pa.float32()),
            "charset": pa.array(CHARSETS[script], pa.string()),
            "oov_share": pa.array(oov, pa.float32()),
            "output": output,
            "output_chars": output_chars.cast(pa.int32()),
        }
    )


def raised(label: str, points: float) -> np.ndarray:
    """Label shares with `label` up by `points`, taken evenly from the others."""
    shares = LABEL_SHARES - points / (len(LABELS) - 1)
    shares[LABELS.index(label)] = LABEL_SHARES[LABELS.index(label)] + points
    return shares


SCENARIOS: dict[str, dict] = {
    "same": {},
    "prompts 20% longer": {"length_factor": 1.2},
    "billing +10 points": {"label_shares": raised("billing", 0.10)},
    # What a 300-row reference can see (see test_small_reference_sees_larger_changes).
    "prompts 30% longer": {"length_factor": 1.3},
    "billing +20 points": {"label_shares": raised("billing", 0.20)},
}


@pytest.fixture(scope="module")
def simulate() -> Callable[[str, int, int, int], list[list[DriftTest]]]:
    """simulate(scenario, windows, window_rows, reference_rows): the drift tests of each window.

    Each window is compared with its own reference, drawn from a pool of 100,000 requests of the
    unchanged traffic, so a rate measures the method, not one lucky or unlucky reference.
    """
    pool = descriptor_table(traffic(100_000, np.random.default_rng(0)), LABELS)

    @cache
    def run(scenario: str, windows: int, window_rows: int, reference_rows: int) -> list[list[DriftTest]]:
        seed = [*SCENARIOS].index(scenario) * 1000 + window_rows
        rng = np.random.default_rng(seed)
        current = descriptor_table(traffic(windows * window_rows, rng, **SCENARIOS[scenario]), LABELS)
        pick = np.random.default_rng(seed + reference_rows)
        results = []
        for index in range(windows):
            reference = pool.take(pick.choice(pool.num_rows, reference_rows, replace=False))
            results.append(drift_tests(reference, current.slice(index * window_rows, window_rows)))
        return results

    return run


def alarm_rate(windows: list[list[DriftTest]]) -> float:
    return sum(any(test.drifted for test in tests) for tests in windows) / len(windows)


# -- acceptance: false alarms and detection -----------------------------------------------


@pytest.mark.parametrize("reference_rows", [300, 5000])
def test_windows_like_the_reference_rarely_alarm(simulate, reference_rows: int) -> None:
    windows = simulate("same", 500, 1000, reference_rows)
    # Windows of 1,000 requests get p-value tests whatever the reference's size (the smaller sample decides).
    assert {test.test for tests in windows for test in tests} == {"ks", "chi_squared", "z"}
    assert len(windows[0]) == 11  # 6 numeric, charset, label, empty_output, vars.product, vars.account_age_days
    assert alarm_rate(windows) <= 0.01


@pytest.mark.parametrize("reference_rows", [300, 5000])
def test_evidently_per_column_005_would_alarm_on_many_such_windows(simulate, reference_rows: int) -> None:
    """Why the family-wise correction: 0.05 per descriptor over 11 descriptors."""
    windows = simulate("same", 500, 1000, reference_rows)
    plain = sum(any(t.p_value is not None and t.p_value < 0.05 for t in tests) for tests in windows) / len(windows)
    assert plain > 0.15


@pytest.mark.parametrize("scenario", ["prompts 20% longer", "billing +10 points"])
def test_shifts_are_detected_against_a_large_reference(simulate, scenario: str) -> None:
    windows = simulate(scenario, 200, 1000, 5000)
    assert alarm_rate(windows) >= 0.95
    drifted = {test.descriptor for tests in windows for test in tests if test.drifted}
    assert ({"prompt_chars", "input_tokens"} if "prompts" in scenario else {"label"}) <= drifted


@pytest.mark.parametrize("scenario", ["prompts 30% longer", "billing +20 points"])
def test_small_reference_sees_larger_changes(simulate, scenario: str) -> None:
    """A 300-row reference (an eval dataset) bounds what any test can see at a 1% false-alarm rate:
    measured, 20% longer prompts are seen in 84% of windows and billing +10 points in 19%
    (a single test at 1%, alone, would see the latter in about 75%). Changes half as large again are seen."""
    windows = simulate(scenario, 200, 1000, 300)
    assert alarm_rate(windows) >= 0.95


def test_large_samples_on_both_sides_get_distances(simulate) -> None:
    same = simulate("same", 60, 5000, 5000)
    longer = simulate("prompts 20% longer", 60, 5000, 5000)
    assert {test.test for tests in same for test in tests} == {"wasserstein", "jensen_shannon"}
    assert all(test.threshold == 0.1 for tests in same for test in tests)
    assert alarm_rate(same) <= 0.01
    assert alarm_rate(longer) >= 0.95


# -- descriptors ---------------------------------------------------------------------------


def test_descriptors_of_recorded_requests() -> None:
    records = pa.table(
        {
            "prompt_chars": pa.array([120, 80, 30], pa.int32()),
            "input_tokens": pa.array([30, 20, None], pa.int32()),
            "charset": ["latin", "cyrillic", "latin"],
            "output": [" billing\n", "sha256:" + "a" * 64, "I'm sorry, I can't help with that."],
            "output_chars": pa.array([9, 0, 34], pa.int32()),
            "latency_ms": pa.array([12.0, 30.0, 8.0], pa.float32()),
        }
    )
    table = descriptor_table(records, labels=LABELS)
    assert table.column_names == ["prompt_chars", "input_tokens", "output_chars", "charset", "label", "empty_output"]
    assert table["prompt_chars"].type == pa.float64()
    assert table["input_tokens"].to_pylist() == [30.0, 20.0, None]
    assert table["label"].to_pylist() == ["billing", None, OTHER]  # a hashed output has no label
    assert table["empty_output"].to_pylist() == [False, True, True]  # hashed: output_chars == 0 says empty


def test_no_label_without_labels_or_without_full_outputs() -> None:
    full = pa.table({"output": ["billing", "refunds"]})
    hashed = pa.table({"output": [private("billing", "hashed"), None], "output_chars": pa.array([7, 0], pa.int32())})
    assert "label" not in descriptor_table(full).column_names
    assert "label" not in descriptor_table(hashed, labels=LABELS).column_names
    assert descriptor_table(hashed, labels=LABELS)["empty_output"].to_pylist() == [False, True]


def test_empty_output_is_descriptors_is_empty_or_refusal() -> None:
    outputs = [
        "",
        "   \n",
        "\u00a0\u2003",
        "billing",
        "I'm sorry, but that is not something I can do.",
        "  i am unable to answer",
        "I can't help with that",
        "I cannot assist with this request.",
        "Sorry, but I won't",
        "As an AI model, I have no opinion",
        "As an aide, I booked it",
        "\u00a0I'm sorry, no",
        "Your order is sorry-proof",
        "Je suis désolé",
    ]
    table = descriptor_table(pa.table({"output": outputs}))
    assert table["empty_output"].to_pylist() == [descriptors.is_empty_or_refusal(text) for text in outputs]


def test_reference_from_an_eval_dataset_derives_what_text_tells() -> None:
    """A reference made from eval cases has texts but no tokens, latency or recorded descriptors."""
    prompts = ["Where is my parcel?", "Почему списали деньги?", "请帮我取消订单", "123 456"]
    table = descriptor_table(pa.table({"prompt": prompts, "output": ["shipping", "billing", "cancellation", ""]}))
    assert table["prompt_chars"].to_pylist() == [float(len(p)) for p in prompts]
    assert table["non_ascii_share"].to_pylist() == pytest.approx([descriptors.non_ascii_share(p) for p in prompts])
    assert table["charset"].to_pylist() == [descriptors.charset(p) for p in prompts]
    assert table["output_chars"].to_pylist() == [8.0, 7.0, 12.0, 0.0]
    assert "input_tokens" not in table.column_names


def test_vars_numeric_or_categorical() -> None:
    rows = [
        {"plan": "pro", "seats": 3, "beta": True, "tags": ["a", "b"], "mixed": 1},
        {"plan": "team", "seats": 4.5, "beta": False, "mixed": "one"},
        {"plan": "pro", "seats": None},
    ]
    texts = [json.dumps(row) for row in rows] + [None, "[1, 2]", "{not json"]
    table = descriptor_table(pa.table({"vars": texts}))
    assert table["vars.seats"].type == pa.float64()
    assert table["vars.seats"].to_pylist() == [3.0, 4.5, None, None, None, None]
    assert table["vars.plan"].to_pylist() == ["pro", "team", "pro", None, None, None]
    assert table["vars.beta"].to_pylist() == ["true", "false", None, None, None, None]  # a bool is not a number
    assert table["vars.tags"].to_pylist()[0] == '["a", "b"]'
    assert table["vars.mixed"].to_pylist()[:2] == ["1", "one"]  # one string makes the whole key categorical


def test_hashed_vars_are_ignored() -> None:
    hashed = private(json.dumps({"plan": "pro"}), "hashed")
    assert [name for name in descriptor_table(pa.table({"vars": [hashed, hashed]})).column_names] == []
    table = descriptor_table(pa.table({"vars": [hashed, json.dumps({"plan": "team", "note": hashed})]}))
    assert table["vars.plan"].to_pylist() == [None, "team"]
    assert table["vars.note"].to_pylist() == [None, None]  # a hashed value inside the vars is not a category


def test_categorical_vars_keep_their_50_most_frequent_values() -> None:
    values = [f"sku-{i:03d}" for i in range(120) for _ in range(120 - i)]  # sku-000 most frequent
    table = descriptor_table(pa.table({"vars": [json.dumps({"sku": v}) for v in values]}))
    counts = {row["values"]: row["counts"] for row in pc.value_counts(table["vars.sku"]).to_pylist()}
    assert len(counts) == 51
    assert counts["sku-000"] == 120 and counts["sku-049"] == 71
    assert counts[OTHER] == sum(120 - i for i in range(50, 120))


def test_a_million_records_take_seconds() -> None:
    import time

    records = pa.concat_tables([traffic(200_000, np.random.default_rng(7))] * 5)
    start = time.perf_counter()
    table = descriptor_table(records, LABELS)
    assert table.num_rows == 1_000_000
    assert time.perf_counter() - start < 5


# -- tests ---------------------------------------------------------------------------------


def numbers(values) -> pa.Table:
    return pa.table({"prompt_chars": pa.array(values, pa.float64())})


def test_a_column_constant_on_both_sides_is_skipped() -> None:
    reference = pa.table(
        {"oov_share": [0.0] * 50, "charset": ["latin"] * 50, "prompt_chars": [float(i) for i in range(50)]}
    )
    current = pa.table(
        {"oov_share": [0.0] * 80, "charset": ["latin"] * 80, "prompt_chars": [i + 0.5 for i in range(80)]}
    )
    assert [test.descriptor for test in drift_tests(reference, current)] == ["prompt_chars"]


def test_a_column_constant_at_different_values_is_tested() -> None:
    tests = drift_tests(pa.table({"oov_share": [0.0] * 50}), pa.table({"oov_share": [0.2] * 50}))
    assert [(t.descriptor, t.test, t.drifted) for t in tests] == [("oov_share", "z", True)]


def test_too_few_values_or_a_column_on_one_side_only_are_skipped() -> None:
    reference = pa.table({"prompt_chars": [1.0, None, None], "latency": [1.0, 2.0, 3.0]})
    current = pa.table({"prompt_chars": [1.0, 2.0, 3.0]})
    assert drift_tests(reference, current) == []


def test_categories_seen_on_one_side_only() -> None:
    reference = pa.table({"charset": ["latin"] * 270 + ["cyrillic"] * 30})
    current = pa.table({"charset": ["latin"] * 630 + ["cyrillic"] * 70 + ["cjk"] * 300})
    (test,) = drift_tests(reference, current)
    assert (test.test, test.drifted, test.summary) == ("chi_squared", True, "cjk 0% -> 30%")
    (gone,) = drift_tests(current, reference)
    assert (gone.drifted, gone.summary) == (True, "cjk 30% -> 0%")
    (large,) = drift_tests(pa.table({"charset": ["latin"] * 2000}), pa.table({"charset": ["latin", "cjk"] * 1000}))
    assert (large.test, large.drifted, large.statistic) == ("jensen_shannon", True, pytest.approx(0.4645, abs=1e-4))


def test_capped_vars_compare_only_what_both_sides_name() -> None:
    """Per-request ids: each side's 50 'most frequent' are arbitrary, and must not look like drift."""
    reference = descriptor_table(pa.table({"vars": [json.dumps({"user": f"u{i}", "plan": "pro"}) for i in range(400)]}))
    current = descriptor_table(pa.table({"vars": [json.dumps({"user": f"v{i}", "plan": "pro"}) for i in range(900)]}))
    assert not any(test.drifted for test in drift_tests(reference, current))


def test_test_choice_threshold_and_summary() -> None:
    rng = np.random.default_rng(3)
    reference = pa.table(
        {
            "prompt_chars": 212 + np.linspace(-80, 80, 600),
            "output_tokens": rng.integers(1, 4, 600).astype(float),  # 3 values: tested as categories
            "label": ["billing"] * 186 + ["refunds"] * 414,
            "charset": rng.choice(["latin", "cyrillic", "cjk"], 600).tolist(),
        }
    )
    current = pa.table(
        {
            "prompt_chars": 254 + np.linspace(-80, 80, 800),
            "output_tokens": rng.integers(1, 4, 800).astype(float),
            "label": ["billing"] * 328 + ["refunds"] * 472,
            "charset": rng.choice(["latin", "cyrillic", "cjk"], 800).tolist(),
        }
    )
    tests = {test.descriptor: test for test in drift_tests(reference, current, alpha=0.02)}
    assert {name: (t.kind, t.test) for name, t in tests.items()} == {
        "prompt_chars": ("numeric", "ks"),
        "output_tokens": ("numeric", "chi_squared"),
        "label": ("categorical", "z"),
        "charset": ("categorical", "chi_squared"),
    }
    assert {t.threshold for t in tests.values()} == {0.02 / 4}  # Bonferroni over the call's 4 p-value tests
    assert tests["prompt_chars"].summary == "mean 212 -> 254"
    assert tests["label"].summary == "billing 31% -> 41%"
    assert tests["prompt_chars"].drifted and tests["label"].drifted
    assert not tests["charset"].drifted and not tests["output_tokens"].drifted
    assert (tests["label"].reference_n, tests["label"].current_n) == (600, 800)
    # z of the pooled two-proportion test: (0.31 - 0.41) / sqrt(0.367 * 0.633 * (1/600 + 1/800)); billing rose.
    assert tests["label"].statistic == pytest.approx(-3.8414, abs=1e-4)


def test_distances_for_large_samples() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(200, 50, 3000)
    (same,) = drift_tests(numbers(values), numbers(rng.normal(200, 50, 3000)))
    (moved,) = drift_tests(numbers(values), numbers(values + 10), threshold=0.1)
    assert (same.test, same.p_value, same.drifted) == ("wasserstein", None, False)
    assert same.statistic < 0.05
    # Every value 10 higher: the Wasserstein distance is 10, in reference standard deviations.
    assert moved.statistic == pytest.approx(10 / np.std(values))
    assert (moved.drifted, moved.threshold, moved.summary) == (True, 0.1, "mean 200 -> 210")


def test_drift_score() -> None:
    def test(**fields) -> DriftTest:
        return DriftTest(
            descriptor="d", kind="numeric", drifted=False, reference_n=1, current_n=1, **{"test": "ks", **fields}
        )

    assert drift_score([]) is None
    assert drift_score([test(statistic=0.2, p_value=1e-6, threshold=1e-3)]) == pytest.approx(2.0)
    assert drift_score([test(statistic=0.05, threshold=0.1, test="wasserstein")]) == pytest.approx(0.5)
    assert str(drift_score([test(statistic=0.0, p_value=1.0, threshold=1e-3)])) == "0.0"  # as JSON shows it
    clipped = drift_score([test(statistic=1.0, p_value=0.0, threshold=1e-3)])
    assert clipped == pytest.approx(math.log(1e-300) / math.log(1e-3))


def test_vars_keys_a_client_invents_are_not_described() -> None:
    rows = [json.dumps({"product": "app", f"junk-{i}": i}) for i in range(200)]
    records = pa.table({"vars": pa.array(rows, pa.string())})
    assert descriptor_table(records, vars_keys=["product"]).column_names == ["vars.product"]
    # Without a reference's keys, only the most frequent few become descriptors.
    assert len(descriptor_table(records).column_names) == 20
