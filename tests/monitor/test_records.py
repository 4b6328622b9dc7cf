"""Request records: the Parquet parts the router writes, its bounded buffer, and reading a window back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from llmci.monitor.records import (
    COLUMNS,
    Record,
    RecordBuffer,
    private,
    read_window,
    read_window_sampled,
    write_part,
)
from llmci.registry.file_store import FileStore

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=timezone.utc)


def row(minutes_ago: float, **fields) -> dict:
    return {
        "time": NOW - timedelta(minutes=minutes_ago),
        "env": "prod",
        "model": "m",
        "version": 1,
        "kind": "live",
        "route": "/v1/completions",
        "status": 200,
        "latency_ms": 10.0,
        "output": "billing",
        **fields,
    }


def test_a_record_has_the_columns_of_the_schema_in_their_order() -> None:
    """`Record` (what the router builds) and `COLUMNS` (the Parquet schema) name the same columns."""
    assert list(Record.__annotations__) == list(COLUMNS)


def test_parts_are_partitioned_by_hour_and_read_back_by_window(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    keys = write_part(store, "prod", [row(5), row(20), row(45), row(95)])
    assert [key.split("/")[3:5] for key in keys] == [
        ["date=2026-11-27", "hour=10"],
        ["date=2026-11-27", "hour=11"],
        ["date=2026-11-27", "hour=12"],
    ]
    table, notes = read_window(store, "prod", NOW - timedelta(minutes=30), NOW, ["latency_ms"])
    assert notes == [] and table.column_names == ["time", "latency_ms"] and table.num_rows == 2
    everything, _ = read_window(store, "prod", NOW - timedelta(hours=3), NOW)
    assert everything.num_rows == 4 and everything["output"].to_pylist()[0] == "billing"


def test_a_sample_keeps_the_text_columns_of_some_rows_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    write_part(store, "prod", [row(0.01 + i / 100, output=f"answer {i}") for i in range(2000)])
    table, sample, _ = read_window_sampled(
        store, "prod", NOW - timedelta(hours=1), NOW, ["status"], ["output"], sample_size=200
    )
    assert table.num_rows == 2000 and "output" not in table.column_names
    assert 120 <= sample.num_rows <= 280 and set(sample.column_names) == {"time", "status", "output"}
    assert len(set(sample["output"].to_pylist())) == sample.num_rows  # distinct rows, no repeats


def test_privacy_settings() -> None:
    import hashlib

    text = "my card was charged twice"
    assert private(text, "full") == text
    assert private(text, "hashed") == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert private(text, "dropped") is None and private(None, "full") is None


def test_the_buffer_is_bounded_and_counts_what_it_drops() -> None:
    buffer = RecordBuffer(max_buffered=3)
    for minutes in range(5):
        buffer.add(row(minutes))
    assert len(buffer.rows) == 3 and buffer.dropped == 2


def test_a_failed_write_is_retried_then_kept_for_the_next_flush(tmp_path: Path) -> None:
    blocked = tmp_path / "registry"
    blocked.write_text("a file where the registry folder should be")  # every write fails, for real
    buffer = RecordBuffer(max_buffered=10)
    for minutes in range(1, 5):
        buffer.add(row(minutes))
    buffer.flush(FileStore(blocked), "prod", attempts=3, backoff_s=0.01)
    assert buffer.failed_writes == 3 and buffer.written == 0
    assert len(buffer.rows) == 4 and buffer.dropped == 0  # still there: the next flush tries again

    blocked.unlink()
    buffer.flush(FileStore(blocked), "prod", attempts=3, backoff_s=0.01)
    assert buffer.written == 4 and buffer.rows == []
    table, _ = read_window(FileStore(blocked), "prod", NOW - timedelta(hours=1), NOW)
    assert table.num_rows == 4


def test_a_part_written_before_a_column_existed_reads_it_as_null(tmp_path: Path) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmci.monitor.records import partition_prefix

    store = FileStore(tmp_path)
    old = pa.table({"time": pa.array([NOW - timedelta(minutes=1)], pa.timestamp("ms", tz="UTC")), "status": [200]})
    sink = io.BytesIO()
    pq.write_table(old, sink)
    store.create(f"{partition_prefix('prod', NOW.replace(minute=0))}/part-old.parquet", sink.getvalue())
    table, notes = read_window(store, "prod", NOW - timedelta(hours=1), NOW, ["status", "sample_rate"])
    assert notes == [] and table["status"].to_pylist() == [200] and table["sample_rate"].to_pylist() == [None]


def test_a_huge_prompt_is_cut_and_the_buffer_is_bounded_by_its_text() -> None:
    from llmci.monitor.records import MAX_TEXT

    kept = private("x" * (MAX_TEXT + 500), "full")
    assert kept.startswith("x" * MAX_TEXT) and kept.endswith("[… 500 more characters not recorded]")
    buffer = RecordBuffer(max_chars=3 * MAX_TEXT)
    for minutes in range(1, 6):
        buffer.add(row(minutes, prompt=private("y" * 10 * MAX_TEXT, "full")))
    assert len(buffer.rows) == 2 and buffer.dropped == 3 and buffer.chars <= 3 * MAX_TEXT
