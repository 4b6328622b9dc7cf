"""Where registry objects live: a key-value store with conditional writes.

Two implementations behave the same: `FileStore` (a folder) and `S3Store`
(`llmci.registry.s3`, boto3). Keys are '/'-separated. The registry needs only:

* `create` - write only if the key does not exist (S3 `If-None-Match: *`;
  files: hard-link a finished temporary file into place, which fails if the
  name exists), so a version appears whole or not at all, exactly once;
* `replace` - write only if the key still has the ETag we read (S3
  `If-Match`; files: lock, compare, atomic rename), so no update is lost;
* blobs uploaded whole or not at all (S3 multipart completes atomically and is
  aborted on failure; files: temporary file, then rename).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from llmci.errors import NotFoundError, UsageError
from llmci.fsutil import atomic_write_bytes, synced_temporary

#: Called with the number of bytes moved since the last call.
Progress = Callable[[int], None]


class ObjectNotFound(NotFoundError):
    """The key does not exist (the bucket or folder itself does)."""


class PreconditionFailed(Exception):
    """A conditional write lost: the key exists (create) or changed (replace)."""


class Store(Protocol):
    uri: str

    def read(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag; NotFoundError when absent."""

    def exists(self, key: str) -> bool: ...

    def create(self, key: str, data: bytes) -> str:
        """Write if absent, else PreconditionFailed. Returns the new ETag."""

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """Write if the current ETag is `etag`, else PreconditionFailed. Returns the new ETag."""

    def put(self, key: str, data: bytes) -> None:
        """Write unconditionally (for derived data only: indexes that can be rebuilt)."""

    def children(self, prefix: str) -> list[str]:
        """Names directly below `prefix/` (one level, like a folder listing)."""

    def upload(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Upload a file whole or not at all (multipart for large files on S3)."""

    def download(self, key: str, path: Path, progress: Progress | None = None) -> None:
        """Download to `path`; NotFoundError when absent."""


def open_store(uri: str, *, root: Path | None = None, endpoint_url: str | None = None) -> Store:
    """The store for `file://PATH` (relative to `root`) or `s3://bucket/prefix`."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else Path(parsed.path)
        if not path.is_absolute():
            path = (root or Path.cwd()) / path
        return FileStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"registry URI '{uri}' names no bucket", hint="use s3://BUCKET/PREFIX")
        from llmci.registry.s3 import S3Store

        return S3Store(parsed.netloc, parsed.path.strip("/"), endpoint_url=endpoint_url)
    raise UsageError(f"registry URI '{uri}' must start with file:// or s3://")


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileStore:
    """A registry in a local folder (the default: .llmci/registry next to llmci.yaml)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def read(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri}/{key}: not found") from None
        return data, _etag(data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def create(self, key: str, data: bytes) -> str:
        target = self._path(key)
        with synced_temporary(target, data) as tmp:
            try:
                os.link(tmp, target)  # atomic, and fails if the name exists
            except FileExistsError:
                raise PreconditionFailed(key) from None
        return _etag(data)

    def replace(self, key: str, data: bytes, etag: str) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            try:
                current = _etag(target.read_bytes())
            except FileNotFoundError:
                raise PreconditionFailed(key) from None
            if current != etag:
                raise PreconditionFailed(key)
            with synced_temporary(target, data) as tmp:
                os.replace(tmp, target)
        return _etag(data)

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self._path(key), data)

    def children(self, prefix: str) -> list[str]:
        folder = self._path(prefix) if prefix else self.root
        try:
            return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
        except FileNotFoundError:
            return []

    def upload(self, key: str, path: Path, progress: Progress | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
                _copy(source, out, progress)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def download(self, key: str, path: Path, progress: Progress | None = None) -> None:
        try:
            source = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri}/{key}: not found") from None
        with source, open(path, "wb") as out:
            _copy(source, out, progress)


def _copy(source, out, progress: Progress | None) -> None:
    if progress is None:
        shutil.copyfileobj(source, out, 1 << 20)
        return
    while chunk := source.read(1 << 20):
        out.write(chunk)
        progress(len(chunk))
