"""What a model version is: its files' hashes, its lineage, metrics and tags."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmci.errors import InputError
from llmci.fsutil import atomic_write_text
from llmci.redact import without_userinfo

MANIFEST_SCHEMA = "llmci.model-version/1"


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    size: int


class Lineage(BaseModel):
    """Where a version came from. Train fills it all; a hand publish what the environment tells."""

    model_config = ConfigDict(extra="allow")

    git_repo: str | None = None
    git_commit: str | None = None
    workflow_run_url: str | None = None
    training_run_id: str | None = None
    dataset_sha256: str | None = None
    base_model: str | None = None
    config_digest: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_: str = Field(MANIFEST_SCHEMA, alias="schema")
    name: str
    version: int
    #: sha256 over the sorted (path, sha256, size) list: the identity of the content.
    digest: str
    created_at: str
    created_by: str | None = None
    files: list[FileEntry]
    size: int
    lineage: Lineage = Field(default_factory=Lineage)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, indent=2).encode() + b"\n"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def content_digest(files: list[FileEntry]) -> str:
    listing = json.dumps([[f.path, f.sha256, f.size] for f in sorted(files, key=lambda f: f.path)])
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def scan_folder(folder: Path, hash_cache: Path | None = None) -> list[FileEntry]:
    """Every regular file below `folder` with its sha256, sorted by path.

    With `hash_cache`, a file whose (size, mtime, inode) is unchanged since it
    was last hashed is not read again, the way git's index and DVC do it.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder", hint="publish a folder holding the model's files")
    cache = _HashCache(hash_cache)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue  # editor and tool droppings (.DS_Store, .cache/) are not part of a model
        stat = path.stat()
        digest = cache.get(path, stat) or cache.put(path, stat, sha256_file(path))
        entries.append(FileEntry(path=relative, sha256=digest, size=stat.st_size))
    cache.save()
    if not entries:
        raise InputError(f"{folder}: no files to publish")
    return entries


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(handle, "sha256").hexdigest()
        digest = hashlib.sha256()  # Python 3.10 has no hashlib.file_digest
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()


class _HashCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        if path is not None:
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    @staticmethod
    def _stamp(stat: os.stat_result) -> list[int]:
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino]

    def get(self, path: Path, stat: os.stat_result) -> str | None:
        entry = self.entries.get(str(path.resolve()))
        return entry[1] if entry and entry[0] == self._stamp(stat) else None

    def put(self, path: Path, stat: os.stat_result, digest: str) -> str:
        if self.path is not None:
            self.entries[str(path.resolve())] = [self._stamp(stat), digest]
            self.dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.dirty:
            with contextlib.suppress(OSError):  # only a speed-up
                atomic_write_text(self.path, json.dumps(self.entries))


def lineage_from_environment(cwd: Path | None = None, environ: Mapping[str, str] = os.environ) -> Lineage:
    """What GitHub Actions (or the local git checkout) says about where this publish runs."""
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repository = environ.get("GITHUB_REPOSITORY")
    run_id = environ.get("GITHUB_RUN_ID")
    commit = environ.get("GITHUB_SHA") or _git(["rev-parse", "HEAD"], cwd)
    origin = _git(["config", "--get", "remote.origin.url"], cwd)
    origin = without_userinfo(origin) if origin else None  # lineage is shown in logs and PR comments
    repo = f"{server}/{repository}" if repository else origin
    return Lineage(
        git_repo=repo,
        git_commit=commit,
        workflow_run_url=f"{server}/{repository}/actions/runs/{run_id}" if repository and run_id else None,
    )


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
