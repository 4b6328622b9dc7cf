"""The registry on S3 or any S3-compatible store, through boto3.

boto3 finds credentials, region and endpoint the standard way (environment,
`AWS_PROFILE`, config files, instance roles; `AWS_ENDPOINT_URL`); an explicit
`endpoint_url` (llmci.yaml `registry.endpoint_url`) wins. Errors become one
line naming the bucket, key and HTTP status, never a secret.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from llmci.errors import LlmciError, NotFoundError, StorageError
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Progress, Readable, TooLarge

#: Files above this go up (and down) as multipart transfers, in parts of this size.
MULTIPART_BYTES = 8 * 1024 * 1024

#: The object the conditional-write probe writes (a name no model can have: they never start with '_').
PROBE_KEY = "_llmci/conditional-write-probe"
#: (endpoint, bucket) pairs seen to honour If-None-Match and If-Match, in this process.
_HONOURED: set[tuple[str, str]] = set()

_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
    "or run with a role (aws-actions/configure-aws-credentials in GitHub Actions)"
)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        # Standard retries (5xx, throttling, with backoff); AWS_MAX_ATTEMPTS still sets how many.
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=Config(retries={"mode": "standard"})
        )
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, max_concurrency=8
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str, limit: int | None = None) -> tuple[bytes, str]:
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            with contextlib.closing(response["Body"]) as body:  # closing early drops the rest unread
                return body.read(limit), response["ETag"]

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        try:
            with self._errors(key):
                return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ObjectNotFound:  # HEAD has no body: a missing bucket shows up at the next GET or PUT
            return None

    def create(self, key: str, data: bytes) -> str:
        self.check_conditional_writes()
        with self._errors(key):
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")["ETag"]

    def replace(self, key: str, data: bytes, etag: str) -> str:
        self.check_conditional_writes()
        with self._errors(key):
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=etag)["ETag"]

    def put(self, key: str, data: bytes) -> None:
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check_conditional_writes(self) -> None:
        """Refuse a store that ignores If-None-Match or If-Match, once per endpoint and bucket in a process.

        Such a store (some S3-compatible servers and gateways) answers a
        conditional PUT by overwriting: two publishers would both "create"
        version N, and a lost compare-and-swap would silently win. The probe
        makes sure an object exists, then makes two writes to it that must
        fail: create-only, and replace-if-ETag with an ETag it cannot have.
        """
        endpoint = self.client.meta.endpoint_url
        if (endpoint, self.bucket) in _HONOURED:
            return
        key = self._key(PROBE_KEY)
        with self._errors(PROBE_KEY):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"llmci checks conditional writes here\n")
        for header, condition in (("If-None-Match", {"IfNoneMatch": "*"}), ("If-Match", {"IfMatch": '"0-llmci"'})):
            try:
                with self._errors(PROBE_KEY):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=b"must not be written\n", **condition)
            except PreconditionFailed:
                continue  # refused, as it must be
            raise StorageError(
                f"the S3 store at {endpoint} ignores {header}: a conditional write to s3://{self.bucket}/{key} "
                "succeeded where it must fail, so versions and approvals could be overwritten",
                hint="point registry.endpoint_url (or AWS_ENDPOINT_URL) at a store that honours conditional "
                "writes (AWS S3, MinIO, Ceph RGW, R2), or use a file:// registry",
            )
        _HONOURED.add((endpoint, self.bucket))

    def children(self, prefix: str) -> list[str]:
        full = f"{self._key(prefix)}/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        names: set[str] = set()
        with self._errors(prefix or "/"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            ):
                names.update(entry["Prefix"][len(full) :].rstrip("/") for entry in page.get("CommonPrefixes", []))
                names.update(entry["Key"][len(full) :] for entry in page.get("Contents", []))
        return sorted(name for name in names if name)

    def upload(self, key: str, source: Readable, progress: Progress | None = None) -> None:
        # `source` has only `read`: the transfer manager reads it once, in order, keeping each part in
        # memory for retries, so the bytes `source` hashed are the bytes sent. It reads to the end before
        # the last PutObject or CompleteMultipartUpload; an exception there aborts the upload, and a failed
        # multipart upload is aborted: no part stays behind, and the object only ever appears complete.
        with self._errors(key, upload=True):
            self.client.upload_fileobj(source, self.bucket, self._key(key), Config=self.transfer, Callback=progress)

    def download(self, key: str, path: Path, progress: Progress | None = None, max_bytes: int | None = None) -> None:
        # The transfer manager calls back as it reads each response; raising there stops the download.
        lock, moved = threading.Lock(), [0]

        def counted(amount: int) -> None:  # called from the transfer's threads; negative on a retry
            with lock:
                moved[0] += amount
                if max_bytes is not None and moved[0] > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
            if progress is not None:
                progress(amount)

        with self._errors(key):
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer, Callback=counted)

    @contextlib.contextmanager
    def _errors(self, key: str, *, upload: bool = False) -> Iterator[None]:
        """Turn boto3's exceptions into one-line llmci errors naming the object and status."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except LlmciError:
            raise
        except S3UploadFailedError as exc:
            # The transfer manager wraps the failing call's error; report that one.
            cause = exc.__cause__ or exc.__context__
            raise self._translate(cause if isinstance(cause, ClientError) else exc, key, upload=True) from None
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, upload=upload) from None

    def _translate(self, exc: Exception, key: str, *, upload: bool = False) -> Exception:
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        where = f"s3://{self.bucket}/{self._key(key)}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(f"no AWS credentials to reach s3://{self.bucket}", hint=_CREDENTIALS_HINT)
        if not isinstance(exc, ClientError):  # endpoint unreachable, timeouts, bad configuration
            return StorageError(f"{where}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return PreconditionFailed(key)
        if code == "NoSuchBucket":
            return NotFoundError(f"bucket '{self.bucket}' does not exist", hint="create it, or fix registry.uri")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return ObjectNotFound(f"{where}: not found")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"{where}: access denied ({code}, HTTP {status})",
                hint="the credentials need s3:GetObject, s3:PutObject and s3:ListBucket on the bucket",
            )
        what = "upload failed: " if upload else ""
        hint = "nothing was published; re-run" if upload else "re-run; S3 errors are retried before this"
        return StorageError(f"{where}: {what}{code or 'error'} (HTTP {status})", hint=hint)
