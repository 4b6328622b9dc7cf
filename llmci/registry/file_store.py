"""The registry in a local folder: `FileStore` (the default, `.llmci/registry` beside llmci.yaml).

Conditional writes with hard links and a lock; blobs through a temporary file
renamed into place. What the store protocol asks is in `llmci.registry.store`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from llmci.fsutil import atomic_write_bytes, synced_temporary
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Progress, Readable, TooLarge, local_write_errors


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
