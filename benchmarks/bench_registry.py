"""Re-publishing identical content vs the first publish of a 50 MB model, in the same run.

Target: the identical re-publish is >= 50x faster (it hashes nothing that did not
change, thanks to the stat-keyed hash cache, uploads nothing, and reads two small
objects). Measured on both backends: a local folder, and S3 through moto's server
on 127.0.0.1 (started here). Multipart uploads are used for the weights.

    .venv/bin/python benchmarks/bench_registry.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from llmci.registry import open_store
from llmci.registry.versions import Registry

REPO = Path(__file__).resolve().parents[1]
MODEL_BYTES = 50 * 1024 * 1024
REPEATS = 5


def make_model(folder: Path) -> None:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(os.urandom(MODEL_BYTES - 1024 * 1024))
    (folder / "optimizer-free-extra.bin").write_bytes(os.urandom(1024 * 1024 - 4096))
    (folder / "config.json").write_text('{"model_type": "gpt2"}\n')
    (folder / "tokenizer.json").write_text('{"version": "1.0"}\n')


def measure(uri: str, folder: Path, cache: Path) -> tuple[float, float, list[float]]:
    registry = Registry(open_store(uri), hash_cache=cache, progress=False)
    start = time.perf_counter()
    first = registry.publish(folder, "bench")
    first_s = time.perf_counter() - start
    assert first.created
    again = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = registry.publish(folder, "bench")
        again.append(time.perf_counter() - start)
        assert not result.created and result.manifest.version == first.manifest.version
    return first_s, statistics.median(again), again


def main() -> int:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "registry" / "moto_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        )
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        ok = True
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_model(root / "model")
            print(f"model: {MODEL_BYTES / 2**20:.0f} MiB in 4 files; re-publish: median of {REPEATS}")
            for label, uri in (("file", (root / "registry").as_uri()), ("s3 (moto)", f"s3://{bucket}/models")):
                first_s, again_s, _ = measure(uri, root / "model", root / f"hashes-{label[:4]}.json")
                ratio = first_s / again_s
                ok &= ratio >= 50
                verdict = "PASS" if ratio >= 50 else "FAIL"
                print(
                    f"{label:10s} first publish {first_s * 1000:8.1f} ms   identical re-publish "
                    f"{again_s * 1000:6.1f} ms   speed-up {ratio:6.0f}x (target >= 50) {verdict}"
                )
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
