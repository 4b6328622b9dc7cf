"""File writes that are never seen half-done, and paths as users read them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def synced_temporary(target: Path, data: bytes) -> Iterator[str]:
    """A finished, fsynced temporary file beside `target` (same filesystem), removed afterwards.

    The caller moves it into place: `os.replace` to overwrite, `os.link` to
    create only if absent. Either way readers never see a partial file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    target = Path(path)
    with synced_temporary(target, data) as tmp:
        os.replace(tmp, target)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def cache_dir(root: Path, override: str | os.PathLike[str] | None = None) -> Path:
    """Where llmci keeps caches (lint results, eval generations, pulled models, file hashes).

    `override` (a --cache-dir option), else LLMCI_CACHE_DIR, else, in GitHub
    Actions, `$RUNNER_TEMP/llmci-cache`: never inside the checkout, whose
    files a pull request controls. Elsewhere `.llmci/cache` beside llmci.yaml.
    """
    if override:
        return Path(override)
    if os.environ.get("LLMCI_CACHE_DIR"):
        return Path(os.environ["LLMCI_CACHE_DIR"])
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("RUNNER_TEMP"):
        return Path(os.environ["RUNNER_TEMP"]) / "llmci-cache"
    return root / ".llmci" / "cache"


def hash_cache(root: Path, cache: Path | None = None) -> Path:
    """The file-hash cache (`file-hashes.json`) in the cache folder `cache`, else in `cache_dir(root)`."""
    return (cache or cache_dir(root)) / "file-hashes.json"


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as users (and GitHub) want it: relative to cwd when inside it, with '/'."""
    path = Path(path)
    if not path.is_absolute():
        path = path.resolve()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
