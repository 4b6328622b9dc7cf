from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmci.registry.versions import Registry

#: Credentials for moto only; they open nothing real.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process on a free port, for the whole session."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("moto_server.py"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> dict[str, str]:
    env = {**FAKE_AWS, "AWS_ENDPOINT_URL": s3_endpoint}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> str:
    """A fresh bucket on the moto server."""
    import boto3

    name = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["file", "s3"])
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests run against both backends."""
    if request.param == "file":
        return (tmp_path / "registry").as_uri()
    return f"s3://{request.getfixturevalue('bucket')}/team/models"


@pytest.fixture
def registry(registry_uri: str) -> Registry:
    from llmci.registry import open_store

    return Registry(open_store(registry_uri), progress=False)


@pytest.fixture
def project(tmp_path: Path, registry_uri: str, request: pytest.FixtureRequest):
    """A project whose llmci.yaml points at the registry under test; returns (root, env)."""
    (tmp_path / "llmci.yaml").write_text(f"registry:\n  uri: {registry_uri}\n")
    env = {}
    if registry_uri.startswith("s3://"):
        env = {**FAKE_AWS, "AWS_ENDPOINT_URL": request.getfixturevalue("s3_endpoint")}
    return tmp_path, env


def make_model(folder: Path, seed: str = "a", big: int = 0) -> Path:
    """A small model folder: config, tokenizer and weights (random-ish bytes from the seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(f'{{"model_type": "gpt2", "seed": "{seed}"}}\n')
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "vocab.json").write_text('{"a": 0, "b": 1}\n')
    (folder / "model.safetensors").write_bytes((seed.encode() * 4096)[:4096] + bytes(big))
    return folder
