"""`llmci monitor sample`: production records as eval cases, stratified, scrubbed."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llmci.errors import UsageError
from llmci.monitor.records import write_part
from llmci.monitor.sample import allocate, sample_cases, scrub
from llmci.registry.file_store import FileStore

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=timezone.utc)


def records(n: int, *, version: int, label: str, **fields) -> list[dict]:
    return [
        {
            "time": NOW - timedelta(seconds=10 + i),
            "env": "prod",
            "model": "m",
            "version": version,
            "kind": "live",
            "route": "/v1/completions",
            "status": 200,
            "latency_ms": 12.0,
            "vars": json.dumps({"ticket": f"ticket {i}, write to ann@example.com", "user_id": "u-7"}),
            "output": label,
            "request_id": f"cmpl-{version}-{label}-{i}",
            **fields,
        }
        for i in range(n)
    ]


def test_allocation_is_proportional_and_keeps_every_stratum() -> None:
    assert allocate({"a": 900, "b": 90, "c": 10}, 100) == {"a": 90, "b": 9, "c": 1}
    assert allocate({"a": 990, "b": 9, "c": 1}, 100) == {"a": 98, "b": 1, "c": 1}
    assert allocate({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}


def test_scrub_replaces_addresses_and_phone_numbers_not_dates_or_versions() -> None:
    assert scrub("ann@example.com, +44 20 7946 0958") == "[email], [phone]"
    assert scrub("since 2026-03-01 on 3.10.12-1") == "since 2026-03-01 on 3.10.12-1"


def test_cases_are_stratified_by_version_and_label_and_drop_named_vars(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    write_part(
        store,
        "prod",
        records(300, version=1, label="billing")
        + records(60, version=2, label="bug")
        + records(5, version=2, label="?"),
    )
    cases = sample_cases(
        store, "prod", NOW - timedelta(hours=1), NOW, 50, labels=["billing", "bug"], drop_vars=["user_id"]
    )
    strata = Counter((c["metadata"]["version"], c["metadata"]["label"]) for c in cases)
    assert strata == {(1, "billing"): 41, (2, "bug"): 8, (2, "(other)"): 1}
    assert all(set(c["vars"]) == {"ticket"} and "[email]" in c["vars"]["ticket"] for c in cases)
    assert len({c["id"] for c in cases}) == 50 and all("actual_output" in c for c in cases)


def test_hashed_answers_cannot_be_sampled(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    write_part(store, "prod", records(10, version=1, label="sha256:" + "0" * 64))
    with pytest.raises(UsageError, match="no answers to sample"):
        sample_cases(store, "prod", NOW - timedelta(hours=1), NOW, 5)
