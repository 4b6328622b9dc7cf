"""`llmci monitor check` over 1,000,000 request records (10 Parquet parts) against pyarrow reading them.

Targets: the check takes <= 3x the time of `pyarrow.parquet.read_table` of the
columns it needs from the same parts, in the same run (medians of REPEATS,
interleaved); `llmci monitor check` as a process stays under 1 GB of memory
(peak RSS). The records are two versions of the quickstart model over ten
hours, the drift reference is the quickstart's eval suite.

    .venv/bin/python benchmarks/bench_monitor.py
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
RECORDS, PARTS, REPEATS = 1_000_000, 10, 3
LABELS = ["billing", "bug", "account", "feature"]


def make_records(store_root: Path, end: datetime) -> list[Path]:
    """PARTS parts of RECORDS / PARTS rows each, one per hour before `end`, as the router writes them."""
    from llmci.monitor.records import partition_prefix, schema

    rng = np.random.default_rng(0)
    cases = [json.loads(line)["vars"] for line in (QUICKSTART / "data" / "eval.jsonl").read_text().splitlines()]
    vars_text = np.array([json.dumps(v, sort_keys=True) for v in cases], dtype=object)
    paths = []
    n = RECORDS // PARTS
    for part in range(PARTS):
        hour = (end - timedelta(hours=PARTS - part)).replace(minute=0, second=0, microsecond=0)
        start_ms = int(hour.timestamp() * 1000)
        picked = rng.integers(0, len(cases), n)
        version = np.where(rng.random(n) < 0.8, 1, 2)
        status = np.where(rng.random(n) < 0.01, 500, 200)
        labels = np.array(LABELS, dtype=object)[rng.integers(0, 4, n)]
        table = pa.table(
            {
                "time": pa.array(np.sort(start_ms + rng.integers(0, 3_600_000, n)), pa.timestamp("ms", tz="UTC")),
                "env": pa.array(["prod"] * n),
                "model": pa.array(["ticket-router"] * n),
                "version": pa.array(version, pa.int32()),
                "kind": pa.array(["live"] * n),
                "route": pa.array(["/v1/completions"] * n),
                "status": pa.array(status, pa.int16()),
                "latency_ms": pa.array(rng.gamma(4, 25, n), pa.float32()),
                "queue_ms": pa.array(rng.gamma(2, 2, n), pa.float32()),
                "input_tokens": pa.array(rng.integers(60, 200, n), pa.int32()),
                "output_tokens": pa.array(rng.integers(1, 4, n), pa.int32()),
                "cost_usd": pa.nulls(n, pa.float64()),
                "prompt": pa.nulls(n, pa.string()),
                "vars": pa.array(vars_text[picked], pa.string()),
                "prompt_chars": pa.array(rng.integers(300, 700, n), pa.int32()),
                "non_ascii_share": pa.array(np.zeros(n), pa.float32()),
                "charset": pa.array(["latin"] * n),
                "oov_share": pa.array(np.zeros(n), pa.float32()),
                "output": pa.array(labels, pa.string()),
                "output_chars": pa.array([len(label) for label in labels], pa.int32()),
                "finish_reason": pa.array(["stop"] * n),
                "replica": pa.array(np.array(["r1", "r2", "r3"], dtype=object)[version + rng.integers(0, 2, n) - 1]),
                "request_id": pa.array([f"cmpl-{part}-{i}" for i in range(n)]),
            },
            schema=schema(),
        )
        folder = store_root / partition_prefix("prod", hour)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{part:04d}.parquet"
        pq.write_table(table, path, compression="zstd")
        paths.append(path)
    return paths


def project(root: Path) -> Path:
    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, root / name)
    config = yaml.safe_load((QUICKSTART / "llmci.yaml").read_text())
    config = {
        "registry": {"uri": "file://.llmci/registry"},
        "eval": config["eval"],
        "deploy": {"environments": {"prod": {}}},
        "monitor": {
            "window": "12h",
            "rules": {"error_rate": {"critical": 0.05}, "latency_p95_ms": {"critical": 5000}},
            "cost": {"replica_hour_usd": 1.0},
        },
    }
    (root / "llmci.yaml").write_text(yaml.safe_dump(config))
    return root / "llmci.yaml"


def main() -> int:
    from llmci.config import load_config
    from llmci.monitor.check import DRIFT_COLUMNS, METRIC_COLUMNS, check, resolve_reference
    from llmci.registry.file_store import FileStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loaded = load_config(project(root))
        end = datetime.now(timezone.utc)
        paths = make_records(root / ".llmci" / "registry", end)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{RECORDS:,} records in {PARTS} parts, {size_mb:.0f} MB")
        store = FileStore(root / ".llmci" / "registry")
        columns = ["time", *METRIC_COLUMNS, *DRIFT_COLUMNS]

        def read_only() -> None:
            tables = [pq.read_table(path, columns=columns) for path in paths]
            assert sum(t.num_rows for t in tables) == RECORDS

        def monitor_check() -> None:
            reference = resolve_reference(loaded, "prod", store, None)
            report = check(loaded, "prod", store, start=end - timedelta(hours=12), end=end, reference=reference)
            assert report.records == RECORDS and len(report.versions) == 2

        read_only(), monitor_check()  # warm the file cache and the imports
        times: dict[str, list[float]] = {"read": [], "check": []}
        for _ in range(REPEATS):
            for name, run in (("read", read_only), ("check", monitor_check)):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        read_s, check_s = statistics.median(times["read"]), statistics.median(times["check"])
        ratio = check_s / read_s
        print(f"pyarrow read of the {len(columns)} columns   median {read_s:6.2f} s")
        print(f"monitor check (in process)      median {check_s:6.2f} s")
        print(f"check / read: {ratio:.2f} (target <= 3.0)  {'PASS' if ratio <= 3.0 else 'FAIL'}")

        llmci = Path(sys.executable).with_name("llmci")
        argv = [str(llmci), "monitor", "check", "--env", "prod", "--out", str(root / "out"), "--no-png", "--no-alerts"]
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
            return 2
        print(f"llmci monitor check as a process: {wall:.2f} s, peak RSS {peak_mb:.0f} MB (target < 1024)")
        memory_ok = peak_mb < 1024
        print(f"memory: {'PASS' if memory_ok else 'FAIL'}")
        return 0 if ratio <= 3.0 and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
