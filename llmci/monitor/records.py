"""Request records: one row per answered request, written as Parquet parts in the registry store.

Parts live at `_monitor/ENV/records/date=YYYY-MM-DD/hour=HH/part-...parquet`
(Hive-style partitions, so DuckDB, Athena or Spark read the same folder). A
part is written whole, once: the file store renames it into place, S3 makes
one PutObject visible at once, so a reader never sees half a part.

The serving side (`RecordBuffer`) never blocks a request: records go into a
bounded buffer (beyond `max_buffered` they are dropped and counted), and a
background flush writes a part per hour at most every `flush_seconds`,
retrying a failed write with backoff and counting what it could not write.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pyarrow is imported where records are written or read, not by the serving path's import
    import pyarrow as pa

    from llmci.registry.store import Store

PREFIX = "_monitor"

#: Column -> (arrow type name, description). The order is the Parquet schema's.
COLUMNS: dict[str, tuple[str, str]] = {
    "time": ("timestamp", "When the router received the request (UTC, ms)."),
    "env": ("string", "The environment."),
    "model": ("string", "The model's name."),
    "version": ("int32", "The version that answered (null when no version could be chosen)."),
    "kind": ("string", "live (chosen by weight or user), pinned (NAME@VERSION) or shadow (mirrored, never returned)."),
    "route": ("string", "/v1/completions or /v1/chat/completions."),
    "status": ("int16", "HTTP status of the answer."),
    "latency_ms": ("float32", "Time through the router."),
    "queue_ms": ("float32", "From the router queuing the request to its batch's generation starting (wall clocks)."),
    "input_tokens": ("int32", "Prompt tokens."),
    "output_tokens": ("int32", "Generated tokens."),
    "cost_usd": ("float64", "Token cost when the model has token prices (API models); else null."),
    "prompt": ("string", "The prompt text (chat: the last user message) as sent, its SHA-256, or null."),
    "vars": ("string", "JSON of the request's llmci vars or OpenAI metadata, or its SHA-256, or null."),
    "prompt_chars": ("int32", "Characters of the prompt as the model saw it (recorded under every privacy setting)."),
    "non_ascii_share": ("float32", "Share of the prompt's characters outside ASCII."),
    "charset": ("string", "The script most of the prompt's letters are in (latin, cyrillic, cjk, ...)."),
    "oov_share": ("float32", "Share of prompt tokens the model's tokenizer maps to its unknown token."),
    "output": ("string", "The generated text, its SHA-256, or null."),
    "output_chars": ("int32", "Characters of the generated text."),
    "finish_reason": ("string", "stop or length."),
    "replica": ("string", "The model replica that answered (replica-seconds for cost)."),
    "request_id": ("string", "The answer's id."),
    "sample_rate": ("float32", "The share of requests recorded when this one was (monitor.record.sample)."),
}


class Record(TypedDict, total=False):
    """One request record as the router writes it: a value per column of COLUMNS (a missing one is null)."""

    time: datetime
    env: str
    model: str
    version: int | None
    kind: str
    route: str
    status: int
    latency_ms: float
    queue_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    prompt: str | None
    vars: str | None
    prompt_chars: int | None
    non_ascii_share: float | None
    charset: str | None
    oov_share: float | None
    output: str | None
    output_chars: int | None
    finish_reason: str | None
    replica: str | None
    request_id: str | None
    sample_rate: float | None


Privacy = Literal["full", "hashed", "dropped"]
#: The largest part a reader takes: the store is shared, and a part planted there must not exhaust memory.
MAX_PART_BYTES = 256 * 2**20
#: Characters of a prompt, vars or answer kept in a record: a client's megabyte prompt is not kept whole.
MAX_TEXT = 8192


class RecordSettings(BaseModel):
    """The router's recording settings (part of its user_config): from `monitor.record` in llmci.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: str
    endpoint_url: str | None = None
    sample: float = Field(1.0, gt=0, le=1)
    prompts: Privacy = "hashed"
    outputs: Privacy = "full"
    flush_seconds: float = Field(10.0, gt=0)
    max_buffered: int = Field(20_000, gt=0)
    #: Model name -> USD per (input, output) token, for models priced per token.
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)


def schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "string": pa.string(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "float32": pa.float32(),
        "float64": pa.float64(),
    }
    return pa.schema([pa.field(name, types[kind]) for name, (kind, _) in COLUMNS.items()])


def private(text: str | None, mode: Privacy) -> str | None:
    """`text` as the privacy setting allows it to be kept; a full text past MAX_TEXT is cut (and says so)."""
    if text is None or mode == "dropped":
        return None
    if mode == "hashed":
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    if len(text) > MAX_TEXT:
        return f"{text[:MAX_TEXT]}[… {len(text) - MAX_TEXT} more characters not recorded]"
    return text


def part_key(env: str, hour: datetime) -> str:
    """A new part's key in the hour's partition (unique: time and a random suffix)."""
    stamp = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:12]}"
    return f"{partition_prefix(env, hour)}/part-{stamp}.parquet"


def partition_prefix(env: str, hour: datetime) -> str:
    return f"{PREFIX}/{env}/records/date={hour:%Y-%m-%d}/hour={hour:%H}"


def to_parquet(rows: Sequence[Record]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{name: row.get(name) for name in COLUMNS} for row in rows], schema=schema())
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_part(store: Store, env: str, rows: Sequence[Record]) -> list[str]:
    """Write `rows` as one part per hour they fall in; the keys written."""
    by_hour: dict[datetime, list[Record]] = {}
    for row in rows:
        moment = row["time"]
        by_hour.setdefault(moment.replace(minute=0, second=0, microsecond=0), []).append(row)
    keys = []
    for hour, hour_rows in sorted(by_hour.items()):
        key = part_key(env, hour)
        store.create(key, to_parquet(hour_rows))
        keys.append(key)
    return keys


@dataclass
class RecordBuffer:
    """Bounded, never-blocking buffer of records with a retried flush (one per router replica)."""

    max_buffered: int = 20_000
    #: The texts held, in characters: with MAX_TEXT per field the buffer stays near this, whatever is sent.
    max_chars: int = 32_000_000
    rows: list[Record] = field(default_factory=list)
    chars: int = 0
    #: Records dropped because the buffer was full, or because every write attempt failed.
    dropped: int = 0
    written: int = 0
    failed_writes: int = 0

    def add(self, row: Record) -> None:
        size = _chars(row)
        if len(self.rows) >= self.max_buffered or self.chars + size > self.max_chars:
            self.dropped += 1
            return
        self.rows.append(row)
        self.chars += size

    def take(self) -> list[Record]:
        rows, self.rows, self.chars = self.rows, [], 0
        return rows

    def flush(self, store: Store, env: str, attempts: int = 3, backoff_s: float = 0.5) -> None:
        """Write what is buffered; on repeated failure put it back (if room) or count it dropped.

        Blocking: the router runs it in a thread.
        """
        rows = self.take()
        if not rows:
            return
        for attempt in range(attempts):
            try:
                write_part(store, env, rows)
            except Exception:
                self.failed_writes += 1
                if attempt + 1 < attempts:
                    time.sleep(backoff_s * 2**attempt)
                continue
            self.written += len(rows)
            return
        room = max(self.max_buffered - len(self.rows), 0)
        kept = rows[-room:] if room else []  # the next flush tries the newest again
        self.rows[:0] = kept
        self.chars += sum(map(_chars, kept))
        self.dropped += len(rows) - len(kept)


def _chars(row: Record) -> int:
    return sum(len(value) for value in row.values() if isinstance(value, str))


def hours(start: datetime, end: datetime) -> Iterable[datetime]:
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def part_keys(store: Store, env: str, start: datetime, end: datetime) -> list[str]:
    """The keys of the parts that may hold records in [start, end)."""
    keys = []
    for hour in hours(start, end):
        prefix = partition_prefix(env, hour)
        keys.extend(f"{prefix}/{name}" for name in store.children(prefix) if name.endswith(".parquet"))
    return keys


def read_window(
    store: Store, env: str, start: datetime, end: datetime, columns: Sequence[str] | None = None
) -> tuple[pa.Table, list[str]]:
    """The records of [start, end) (only `columns`, plus `time`), and a note per part that could not be read."""
    table, _, notes = read_window_sampled(store, env, start, end, columns or tuple(COLUMNS))
    return table, notes


def read_window_sampled(
    store: Store,
    env: str,
    start: datetime,
    end: datetime,
    columns: Sequence[str],
    sample_columns: Sequence[str] = (),
    sample_size: int = 0,
    seed: int = 0,
) -> tuple[pa.Table, pa.Table, list[str]]:
    """The window's `columns` for every record, and `columns` + `sample_columns` for a uniform random
    sample of about `sample_size` of them; notes on parts that could not be read.

    One pass over the parts: each is decoded once with every column, and the
    sample's columns (the long texts) are kept only for the sampled rows, so
    memory does not grow with the window's text.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from llmci.errors import first_line

    wanted = _known(["time", *columns])
    everything = _known([*wanted, *sample_columns])
    expected = pa.schema([schema().field(name) for name in everything])
    parts, notes = [], []
    for key in part_keys(store, env, start, end):
        try:
            data, _ = store.read(key, limit=MAX_PART_BYTES + 1)
            if len(data) > MAX_PART_BYTES:
                raise ValueError(f"larger than {MAX_PART_BYTES // 2**20} MiB; llmci writes parts of a few MiB")
            parts.append((key, data, pq.read_metadata(pa.BufferReader(data))))
        except Exception as exc:  # one bad part must not hide the rest of the window
            notes.append(f"{key}: unreadable part skipped ({first_line(exc)})")
    total = sum(metadata.num_rows for _, _, metadata in parts)
    rate = min(1.0, sample_size / total) if total and sample_size else 0.0
    rng = np.random.default_rng(seed)
    tables, samples = [], []
    for key, data, metadata in parts:
        try:
            present = set(metadata.schema.names)
            table = pq.read_table(pa.BufferReader(data), columns=[name for name in everything if name in present])
            for name in everything:  # a column an older writer did not have: all null
                if name not in present:
                    table = table.append_column(name, pa.nulls(table.num_rows, expected.field(name).type))
            table = table.select(everything)
            if table.schema != expected:  # an older writer's types: cast, or skip the part
                table = table.cast(expected)
        except Exception as exc:
            notes.append(f"{key}: unreadable part skipped ({first_line(exc)})")
            continue
        hour = _hour_of(key)
        if hour is None or hour < start or hour + timedelta(hours=1) > end:  # the window's edge runs through it
            moments = table["time"]
            table = table.filter(
                pc.and_(
                    pc.greater_equal(moments, pa.scalar(start, moments.type)),
                    pc.less(moments, pa.scalar(end, moments.type)),
                )
            )
        if rate:
            samples.append(table.take(np.flatnonzero(rng.random(table.num_rows) < rate)))
        tables.append(table.select(wanted))
    if not tables:
        return expected.empty_table().select(wanted), expected.empty_table(), notes
    sample = pa.concat_tables(samples) if samples else expected.empty_table()
    return pa.concat_tables(tables), sample, notes


def _known(columns: Sequence[str]) -> list[str]:
    wanted = list(dict.fromkeys(columns))
    unknown = [name for name in wanted if name not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown record columns: {', '.join(unknown)}")
    return wanted


def _hour_of(key: str) -> datetime | None:
    """The hour a part's partition names (date=YYYY-MM-DD/hour=HH), None when the key does not say."""
    try:
        date = key.split("/date=", 1)[1][:10]
        hour = key.split("/hour=", 1)[1][:2]
        return datetime.fromisoformat(f"{date}T{hour}:00:00+00:00")
    except (IndexError, ValueError):
        return None


def vars_json(variables: Mapping[str, object] | None) -> str | None:
    return None if not variables else json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
