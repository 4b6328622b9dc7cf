"""An S3-compatible store that ignores If-None-Match / If-Match is refused before it can lose a version.

The store here is moto's server behind a real HTTP proxy that drops those
headers, as such a store (or a gateway in front of one) does.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from llmci.errors import ExitCode
from llmci.registry import open_store
from llmci.registry.versions import Registry
from tests.conftest import run_llmci
from tests.registry.conftest import FAKE_AWS, make_model
from tests.registry.s3_proxy import s3_proxy


@pytest.fixture
def ignoring_store(s3_endpoint: str) -> str:
    with s3_proxy(s3_endpoint, strip_conditions=True) as url:
        yield url


def test_publish_to_a_store_that_ignores_conditional_writes_is_refused_and_writes_no_version(
    tmp_path: Path, bucket: str, ignoring_store: str
) -> None:
    (tmp_path / "llmci.yaml").write_text(f"registry:\n  uri: s3://{bucket}/models\n")
    make_model(tmp_path / "model")
    env = {**FAKE_AWS, "AWS_ENDPOINT_URL": ignoring_store}
    result = run_llmci("registry", "publish", "model", "--name", "qa", cwd=tmp_path, env=env)
    assert result.code == ExitCode.STORAGE, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"the S3 store at {ignoring_store} ignores If-None-Match" in result.stderr
    assert "registry.endpoint_url" in result.stderr
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any("/versions/" in key or "/_blobs/" in key for key in keys), keys


def test_approvals_on_such_a_store_are_refused_and_reads_still_work(
    tmp_path: Path, bucket: str, ignoring_store: str
) -> None:
    Registry(open_store(f"s3://{bucket}/models"), progress=False).publish(make_model(tmp_path / "m"), "qa")
    (tmp_path / "llmci.yaml").write_text(f"registry:\n  uri: s3://{bucket}/models\n")
    env = {**FAKE_AWS, "AWS_ENDPOINT_URL": ignoring_store}

    def llmci(*args: str):
        return run_llmci("registry", *args, cwd=tmp_path, env=env)

    assert llmci("list", "qa").code == 0  # reading needs no conditional write: no probe
    assert llmci("show", "qa@1").code == 0
    assert llmci("pull", "qa@1", "out").code == 0
    approved = llmci("approve", "qa@1", "--by", "alice", "--note", "ok")
    assert approved.code == ExitCode.STORAGE and "ignores If-None-Match" in approved.stderr
    assert Registry(open_store(f"s3://{bucket}/models"), progress=False).status("qa", 1).status == "candidate"


def test_a_store_that_honours_them_passes_the_probe_once(bucket: str, tmp_path: Path) -> None:
    registry = Registry(open_store(f"s3://{bucket}/models"), progress=False)
    calls = []
    registry.store.client.meta.events.register("before-send.s3.PutObject", lambda request, **_: calls.append(1))
    registry.publish(make_model(tmp_path / "m1", "a"), "qa")
    first = len(calls)
    registry.publish(make_model(tmp_path / "m2", "b"), "qa")
    assert len(calls) - first < first  # the second publish does not probe again
