"""S3 faults: each is one clear error with its exit code, and nothing half-written is visible.

Faults are injected at botocore's `before-send` hook: the request is built,
signed and would go to moto's server, but the hook answers as a failing
server would (status and S3 error body), so botocore's own retry and error
handling run as in production.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from llmci.errors import ConflictError, ExitCode, NotFoundError, StorageError
from llmci.registry import open_store
from llmci.registry.s3 import MULTIPART_BYTES
from llmci.registry.versions import Registry
from tests.conftest import run_llmci
from tests.registry.conftest import FAKE_AWS, make_model


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs):
        yield self.data

    def read(self, *_args, **_kwargs) -> bytes:
        return self.data


def failing(status: int, code: str, *, when=lambda request: True):
    """A before-send handler that answers `status` with an S3 error body when `when(request)`."""
    calls = []

    def handler(request, **_kwargs):
        if not when(request):
            return None
        calls.append(request.url)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body))

    handler.calls = calls
    return handler


def s3_registry(bucket: str) -> Registry:
    return Registry(open_store(f"s3://{bucket}/models"), progress=False)


def test_5xx_in_the_middle_of_a_multipart_upload_leaves_no_version_and_no_parts(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # fewer backoff waits; the path is the same
    registry = s3_registry(bucket)
    folder = make_model(tmp_path / "m", big=3 * MULTIPART_BYTES)  # a multipart upload of 4 parts
    handler = failing(503, "SlowDown", when=lambda r: "partNumber=" in r.url and "partNumber=1&" not in r.url)
    registry.store.client.meta.events.register("before-send.s3.UploadPart", handler)
    with pytest.raises(StorageError, match=r"upload failed: SlowDown \(HTTP 503\); nothing was published") as caught:
        registry.publish(folder, "qa")
    assert caught.value.exit_code == ExitCode.STORAGE
    assert len(handler.calls) >= 2  # botocore retried before giving up
    s3 = boto3.client("s3")
    assert registry.versions("qa") == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted, not left behind
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.endswith(".json") and "/versions/" in k for k in keys)

    registry.store.client.meta.events.unregister("before-send.s3.UploadPart", handler)
    result = registry.publish(folder, "qa")  # the retry succeeds, as version 1
    assert result.created and result.manifest.version == 1


def test_409_or_412_on_a_pointer_write_is_a_conflict_and_changes_nothing(bucket: str, tmp_path: Path) -> None:
    registry = s3_registry(bucket)
    registry.publish(make_model(tmp_path / "m"), "qa")
    registry.approve("qa@1", by="alice", note="ok")
    for status, code in ((409, "ConditionalRequestConflict"), (412, "PreconditionFailed")):
        handler = failing(status, code, when=lambda r: "/stages/" in r.url)
        registry.store.client.meta.events.register("before-send.s3.PutObject", handler)
        with pytest.raises(ConflictError, match="qa@production was moved by someone else") as caught:
            registry.promote("qa@1", "production", by="ci")
        assert caught.value.exit_code == ExitCode.CONFLICT
        registry.store.client.meta.events.unregister("before-send.s3.PutObject", handler)
    assert registry.stage("qa", "production") is None


def test_403_names_the_object_and_the_permissions(bucket: str, tmp_path: Path) -> None:
    registry = s3_registry(bucket)
    registry.store.client.meta.events.register("before-send.s3.GetObject", failing(403, "AccessDenied"))
    with pytest.raises(StorageError) as caught:
        registry.resolve("qa@1")
    assert str(caught.value) == (
        f"s3://{bucket}/models/qa/versions/1.json: access denied (AccessDenied, HTTP 403); "
        "the credentials need s3:GetObject, s3:PutObject and s3:ListBucket on the bucket"
    )
    assert caught.value.exit_code == ExitCode.STORAGE


def test_missing_bucket_is_not_found(aws_env: dict[str, str], tmp_path: Path) -> None:
    registry = s3_registry("no-such-bucket")
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist; create it, or fix registry.uri"):
        registry.publish(make_model(tmp_path / "m"), "qa")


def test_missing_credentials_name_the_settings_and_never_a_secret(s3_endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: s3://models/team\n")
    make_model(tmp_path / "m")
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = run_llmci("registry", "publish", "m", "--name", "qa", cwd=tmp_path, env=env)
    assert result.code == ExitCode.STORAGE
    assert result.stderr.strip() == (
        "llmci: error: no AWS credentials to reach s3://models; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_PROFILE, or run with a role (aws-actions/configure-aws-credentials in GitHub Actions)"
    )


def test_errors_never_print_the_secret(s3_endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: s3://no-such-bucket/team\n")
    secret = "s3cr3t-VALUE-that-must-not-leak"
    env = {**FAKE_AWS, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_SECRET_ACCESS_KEY": secret}
    result = run_llmci("registry", "show", "qa@1", cwd=tmp_path, env=env)
    assert result.code == ExitCode.NOT_FOUND
    assert (
        result.stderr.strip() == "llmci: error: bucket 'no-such-bucket' does not exist; create it, or fix registry.uri"
    )
    assert secret not in result.stdout + result.stderr
