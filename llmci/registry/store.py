"""Where registry objects live: a key-value store with conditional writes.

Two implementations behave the same: `FileStore` (`llmci.registry.file_store`,
a folder) and `S3Store` (`llmci.registry.s3`, boto3); `llmci.registry.open_store`
picks one by URI. Keys are '/'-separated. The registry needs only:

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from llmci.errors import NotFoundError, StorageError
from llmci.fsutil import display_path

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
