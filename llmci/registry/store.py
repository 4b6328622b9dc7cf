"""Where registry objects live: a key-value store with conditional writes.

Two implementations behave the same: `FileStore` (a folder) and `S3Store`
(`llmci.registry.s3`, boto3). Keys are '/'-separated. The registry needs only:

* `create` - write only if the key does not exist (S3 `If-None-Match: *`;
  files: hard-link a finished temporary file into place, which fails if the
  name exists), so a version appears whole or not at all, exactly once;
* `replace` - write only if the key still has the ETag we read (S3
  `If-Match`; files: lock, compare, atomic rename), so no update is lost;
* blobs uploaded whole or not at all (S3 multipart completes atomically and is
  aborted on failure; files: temporary file, then rename). The upload reads
  its bytes from a reader the registry gives, which hashes what is sent and
  raises at the end if it is not what was published: that aborts the upload.

A full disk, or any other failed local write, is a `StorageError` naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

from llmci.errors import NotFoundError, StorageError, UsageError
from llmci.fsutil import atomic_write_bytes, display_path, synced_temporary

#: Called with the number of bytes moved since the last call.
Progress = Callable[[int], None]


class Readable(Protocol):
    def read(self, amount: int = -1, /) -> bytes: ...


class ObjectNotFound(NotFoundError):
    """The key does not exist (the bucket or folder itself does)."""


class PreconditionFailed(Exception):
    """A conditional write lost: the key exists (create) or changed (replace)."""


class TooLarge(Exception):
    """A download went past the size the caller allowed; the download was stopped there."""


class Store(Protocol):
    uri: str

    def read(self, key: str, limit: int | None = None) -> tuple[bytes, str]:
        """The object's bytes (at most `limit`) and ETag; NotFoundError when absent."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes; None when absent (a HEAD, or a stat)."""

    def create(self, key: str, data: bytes) -> str:
        """Write if absent, else PreconditionFailed. Returns the new ETag."""

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """Write if the current ETag is `etag`, else PreconditionFailed. Returns the new ETag."""

    def put(self, key: str, data: bytes) -> None:
        """Write unconditionally (derived data only: indexes and markers that can be rebuilt)."""

    def delete(self, key: str) -> None:
        """Remove the object if present (markers only; versions are never deleted)."""

    def children(self, prefix: str) -> list[str]:
        """Names directly below `prefix/` (one level, like a folder listing)."""

    def upload(self, key: str, source: Readable, progress: Progress | None = None) -> None:
        """Store what `source.read` gives, whole or not at all; an exception from `read` leaves nothing."""

    def download(self, key: str, path: Path, progress: Progress | None = None, max_bytes: int | None = None) -> None:
        """Download to `path`; NotFoundError when absent; TooLarge past `max_bytes` (stopped there)."""

    def check_conditional_writes(self) -> None:
        """Refuse (StorageError) a store that would turn `create` and `replace` into plain overwrites."""


@contextlib.contextmanager
def local_write_errors(path: Path, hint: str | None = None) -> Iterator[None]:
    """A failed write to a local file (full disk, quota, file size limit, permissions) as one StorageError line."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)):
            raise  # the callers' own business: a missing source, a taken name
        reason = (exc.strerror or type(exc).__name__).lower()
        raise StorageError(f"{reason} writing {display_path(path)}", hint=hint) from None


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

    def read(self, key: str, limit: int | None = None) -> tuple[bytes, str]:
        try:
            with open(self._path(key), "rb") as handle:
                data = handle.read(-1 if limit is None else limit)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri}/{key}: not found") from None
        return data, _etag(data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def create(self, key: str, data: bytes) -> str:
        target = self._path(key)
        with local_write_errors(target), synced_temporary(target, data) as tmp:
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
            with local_write_errors(target), synced_temporary(target, data) as tmp:
                os.replace(tmp, target)
        return _etag(data)

    def put(self, key: str, data: bytes) -> None:
        with local_write_errors(self._path(key)):
            atomic_write_bytes(self._path(key), data)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def children(self, prefix: str) -> list[str]:
        folder = self._path(prefix) if prefix else self.root
        try:
            return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
        except FileNotFoundError:
            return []

    def upload(self, key: str, source: Readable, progress: Progress | None = None) -> None:
        target = self._path(key)
        with local_write_errors(target, hint="nothing was published; free space and re-run"):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy(source, out, progress)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)  # an existing (damaged) blob is replaced whole
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def download(self, key: str, path: Path, progress: Progress | None = None, max_bytes: int | None = None) -> None:
        try:
            source = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{self.uri}/{key}: not found") from None
        with source, open(path, "wb") as out:
            _copy(source, out, progress, max_bytes)

    def check_conditional_writes(self) -> None:
        """A folder always honours them (hard links and a lock)."""


def _copy(source: Readable | BinaryIO, out: BinaryIO, progress: Progress | None, max_bytes: int | None = None) -> None:
    """Copy until `source` is exhausted (the registry's verifying reader checks at that read), or past `max_bytes`."""
    left = None if max_bytes is None else max_bytes + 1  # one byte more tells "larger" from "exactly"
    while chunk := source.read(1 << 20 if left is None else min(1 << 20, left)):
        out.write(chunk)
        if progress is not None:
            progress(len(chunk))
        if left is not None:
            left -= len(chunk)
            if left == 0:
                raise TooLarge(f"more than {max_bytes} bytes")
