"""Which version answers: weights, pins, sticky users; and the counters the gates read."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from llmci.serve.protocol import RequestError
from llmci.serve.routing import Counts, RouterConfig, bucket, choose


def config(weights: dict[int, float], shadow: int | None = None) -> RouterConfig:
    versions = {v: {"app": f"app-{v}", "weight": w} for v, w in weights.items()}
    return RouterConfig.model_validate({"models": {"m": {"versions": versions, "shadow": shadow}}})


def test_weights_split_traffic_in_proportion() -> None:
    rng = random.Random(0)
    picks = Counter(choose(config({1: 90, 2: 10}), "m", None, rng).version for _ in range(20_000))
    assert abs(picks[2] / 20_000 - 0.10) < 0.01


def test_a_pin_reaches_a_version_at_weight_zero_and_unknown_names_are_404() -> None:
    table = config({1: 100, 2: 0})
    choice = choose(table, "m@2", None, random.Random(0))
    assert (choice.version, choice.app, choice.pinned) == (2, "app-2", True)
    for requested, message in [("m@3", "m@3 is not served here (m@1, m@2)"), ("x", "model 'x' is not served here")]:
        with pytest.raises(RequestError) as refused:
            choose(table, requested, None, random.Random(0))
        assert refused.value.status == 404 and message in refused.value.message


def test_a_sticky_user_keeps_the_canary_as_its_weight_grows() -> None:
    users = [f"user-{i}" for i in range(2000)]
    on_canary = {u for u in users if choose(config({1: 95, 2: 5}), "m", u, random.Random()).version == 2}
    later = {u for u in users if choose(config({1: 50, 2: 50}), "m", u, random.Random()).version == 2}
    assert on_canary <= later and abs(len(on_canary) / 2000 - 0.05) < 0.02
    assert all(choose(config({1: 95, 2: 5}), "m", u, random.Random(i)).version == 2 for i, u in enumerate(on_canary))
    assert 0 <= bucket("anyone") < 100


def test_no_live_version_is_a_503() -> None:
    with pytest.raises(RequestError) as refused:
        choose(config({1: 0}), "m", None, random.Random(0))
    assert refused.value.status == 503


def test_window_counts_and_the_p95_bucket() -> None:
    before, after = Counts(), Counts()
    for latency in [10] * 90 + [400] * 10:
        after.add(200, latency)
    after.add(500, 20)
    window = after.minus(before)
    assert (window.requests, window.errors) == (101, 1)
    assert window.quantile_ms(0.5) == 10 and window.quantile_ms(0.95) == 500  # the bucket holding 400 ms ends at 500
    assert Counts().quantile_ms(0.95) is None
    assert Counts.from_json(window.to_json()) == window
