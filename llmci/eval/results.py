"""The results table `llmci eval` writes and `llmci compare` reads, and the run (`SuiteRun`) that made it.

One row per case x metric (columns in `COLUMNS`). Parquet when the file name
ends in `.parquet`, else JSON Lines. Run metadata (target, model version, git
commit, dataset digest, versions) travels in the Parquet file's key-value
metadata under `llmci`, or for JSON Lines in `NAME.meta.json` beside it.
Files are written atomically: a reader sees the old table or the new one.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmci import __version__
from llmci.errors import InputError
from llmci.fsutil import atomic_write_bytes, atomic_write_text, display_path
from llmci.redact import redact_userinfo

if TYPE_CHECKING:
    import pandas as pd

    from llmci.config import LoadedConfig, SuiteConfig

FORMAT = "llmci.eval-results/1"

#: name -> pyarrow type name; the order is the file's column order.
COLUMNS: dict[str, str] = {
    "suite": "string",
    "case_id": "string",
    "metric": "string",
    "score": "float64",
    "threshold": "float64",
    "success": "bool_",
    "reason": "string",
    "error": "string",
    "input": "string",
    "expected_output": "string",
    "output": "string",
    "latency_ms": "float64",
    "input_tokens": "int64",
    "output_tokens": "int64",
    "cost": "float64",
    "eval_cost": "float64",
    "cached": "bool_",
}
#: A row with every column and no values: rows are built on it, so each has every key.
EMPTY_ROW: dict[str, Any] = dict.fromkeys(COLUMNS)


@dataclass
class Results:
    rows: list[dict[str, Any]]
    meta: dict[str, Any]


@dataclass
class RunStats:
    model_calls: int = 0
    judge_calls: int = 0
    cached_generations: int = 0
    cached_scores: int = 0
    errors: int = 0
    seconds: float = 0.0


@dataclass
class SuiteRun:
    results: Results
    stats: RunStats = field(default_factory=RunStats)


def score_problem(score: float | None) -> str | None:
    """Why `score` is no score (missing, NaN, infinite), as a row's `error`; None when it is one."""
    if score is None or not math.isfinite(score):
        return f"the metric returned no usable score ({score})"
    return None


def suite_metadata(
    loaded: LoadedConfig,
    name: str,
    suite: SuiteConfig,
    target: str,
    model_version: str | None,
    dataset: str,
    dataset_sha256: str,
    judge: str | None,
) -> dict[str, Any]:
    """What the results table says about its run (docs/commands.md, `llmci eval`); no credentials in it."""
    from llmci.eval._deepeval import deepeval
    from llmci.registry.manifest import lineage_from_environment

    lineage = lineage_from_environment(loaded.root)
    return {
        "suite": name,
        "target": redact_userinfo(target),
        "model_version": model_version,
        "git_repo": lineage.git_repo,
        "git_commit": lineage.git_commit,
        "workflow_run_url": lineage.workflow_run_url,
        "dataset": dataset,
        "dataset_sha256": dataset_sha256,
        "metrics": [metric.key for metric in suite.metrics],
        "judge": redact_userinfo(judge) if judge is not None else None,
        "generation": suite.generation.model_dump(),
        "llmci_version": __version__,
        "deepeval_version": deepeval.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def write_results(path: Path, results: Results) -> None:
    rows = [{name: _clean(row.get(name)) for name in COLUMNS} for row in results.rows]
    meta = {"format": FORMAT, **results.meta}
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])
        schema = schema.with_metadata({"llmci": json.dumps(meta)})
        table = pa.Table.from_pylist(rows, schema=schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_text(meta_path(path), json.dumps(meta, indent=2) + "\n")
        atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_results(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table as a pandas DataFrame, and its metadata."""
    import pandas as pd

    shown = display_path(path)
    if not path.is_file():
        raise InputError(f"{shown}: no such results file", hint="write one with `llmci eval --out`")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            raw_meta = (table.schema.metadata or {}).get(b"llmci")
            meta = json.loads(raw_meta) if raw_meta else {}
            frame = table.to_pandas()
        else:
            meta_file = meta_path(path)
            meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
            records = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{shown}:{number}: invalid JSON: {exc.msg}") from None
            frame = pd.DataFrame.from_records(records, columns=list(COLUMNS) if not records else None)
    except InputError:
        raise
    except Exception as exc:  # pyarrow and json raise many kinds for a damaged file
        raise InputError(f"{shown}: cannot read the results table: {exc}") from None
    missing = [name for name in ("suite", "case_id", "metric", "score", "success") if name not in frame.columns]
    if missing:
        raise InputError(f"{shown}: not an llmci results table (no column {', '.join(missing)})")
    for name in COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    frame["case_id"] = frame["case_id"].astype(str)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame, meta


def _clean(value: Any) -> Any:
    """NaN and infinities are not JSON and not scores: they become missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric: cases, mean score, passes and errors (what `llmci eval` prints)."""
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_metric.setdefault(row["metric"], []).append(row)
    summary = []
    for metric, metric_rows in by_metric.items():
        scores = [row["score"] for row in metric_rows if row.get("score") is not None]
        summary.append(
            {
                "metric": metric,
                "cases": len(metric_rows),
                "mean": sum(scores) / len(scores) if scores else None,
                "passed": sum(1 for row in metric_rows if row.get("success") is True),
                "errors": sum(1 for row in metric_rows if row.get("error")),
            }
        )
    return summary


def summary_markdown(suite: str, target: str, summary: list[dict[str, Any]]) -> str:
    lines = [
        f"### llmci eval: {suite} on `{target}`",
        "",
        "| metric | cases | mean | passed | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for item in summary:
        mean = f"{item['mean']:.4f}" if item["mean"] is not None else "-"
        lines.append(f"| {item['metric']} | {item['cases']} | {mean} | {item['passed']} | {item['errors']} |")
    return "\n".join(lines) + "\n"
