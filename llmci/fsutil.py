"""File writes that are never seen half-done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a part.

    The data goes to a temporary file in the same folder (same filesystem), is
    flushed to disk, then renamed over the target.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as users (and GitHub) want it: relative to cwd when inside it, with '/'."""
    path = Path(path)
    if not path.is_absolute():
        path = path.resolve()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
