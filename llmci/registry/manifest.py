"""What a model version is: its files' hashes, its lineage, metrics and tags.

Nothing read back from a registry is trusted before it is checked: a manifest
is validated here (hashes, sizes, paths, its digest recomputed from its file
list) before any of it is used; `parse_manifest` turns every problem into one
`IntegrityError` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmci.errors import InputError, IntegrityError
from llmci.fsutil import atomic_write_text, display_path
from llmci.redact import without_userinfo

MANIFEST_SCHEMA = "llmci.model-version/1"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The manifest a pull leaves in the folder; hidden, so re-publishing the folder is a no-op.
PULLED_MANIFEST = ".llmci-manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INVALID_HINT = "the stored manifest was damaged or edited; llmci writes a manifest once and never changes it"


def shown(value: object, limit: int = 80) -> str:
    """`value` quoted for a one-line message: control characters escaped, long values cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: '/'-separated, relative, no '.', '..', empty or hidden parts: it names a file inside the version.
    path: str
    #: 64 lowercase hex digits: also the blob's name in the store.
    sha256: str
    size: int

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        parts = path.split("/")
        if "\0" in path or any(not part or part in (".", "..") or part.startswith(".") for part in parts):
            raise ValueError(
                f"{shown(path)} is not a relative path (names separated by '/', none empty, '.', '..' or hidden)"
            )
        return path

    @field_validator("sha256")
    @classmethod
    def _hex(cls, sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"{shown(sha256)} is not 64 lowercase hex digits")
        return sha256

    @field_validator("size")
    @classmethod
    def _size(cls, size: int) -> int:
        if size < 0:
            raise ValueError(f"must be >= 0, not {size}")
        return size


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
    version: int = Field(ge=1)
    #: sha256 over the sorted (path, sha256, size) list: the identity of the content.
    digest: str
    created_at: str
    created_by: str | None = None
    files: list[FileEntry]
    size: int
    lineage: Lineage = Field(default_factory=Lineage)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, schema: str) -> str:
        if schema != MANIFEST_SCHEMA:
            raise ValueError(f"{shown(schema)} is not {MANIFEST_SCHEMA} (written by a newer llmci?)")
        return schema

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"{shown(name)} is not a model name")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        """A pull writes exactly these files, and the digest (what caches key on) is the content's."""
        paths = set()
        for entry in self.files:
            if entry.path in paths:
                raise ValueError(f"{shown(entry.path)} is listed twice")
            paths.add(entry.path)
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                if (folder := "/".join(parts[:depth])) in paths:
                    raise ValueError(f"{shown(folder)} is both a file and a folder (of {shown(path)})")
        if self.size != sum(entry.size for entry in self.files):
            raise ValueError(f"its size {self.size} is not the sum of its files' sizes")
        if self.digest != content_digest(self.files):
            raise ValueError("the digest does not match its file list")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, indent=2).encode() + b"\n"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def parse_manifest(data: bytes, name: str, version: int) -> Manifest:
    """The manifest stored as NAME@VERSION, validated; any problem is one IntegrityError line."""
    ref = f"{name}@{version}"
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{ref}: manifest is invalid: not JSON ({exc})", hint=_INVALID_HINT) from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{ref}: manifest is invalid: not a JSON object", hint=_INVALID_HINT)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise IntegrityError(f"{ref}: manifest is invalid: {_first_problem(exc)}", hint=_INVALID_HINT) from None
    if (manifest.name, manifest.version) != (name, version):
        raise IntegrityError(f"{ref}: manifest is invalid: it says it is {manifest.ref}", hint=_INVALID_HINT)
    return manifest


def _first_problem(exc: ValidationError) -> str:
    """pydantic's first error as `files[0].sha256: what is wrong`, plus how many more there are."""
    errors = exc.errors()
    error = errors[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    where = where.replace("schema_", "schema")
    message = error["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def content_digest(files: list[FileEntry]) -> str:
    listing = json.dumps([[f.path, f.sha256, f.size] for f in sorted(files, key=lambda f: f.path)])
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def scan_folder(folder: Path, hash_cache: Path | None = None, *, confine: bool = False) -> list[FileEntry]:
    """Every regular file below `folder` with its sha256, sorted by path.

    With `hash_cache`, a file whose stat is unchanged since it was last hashed
    is not read again, the way git's index and DVC do it. With `confine`
    (publish), a symbolic link that leads out of the folder, or to a folder,
    is refused: publishing `tokenizer.json -> ~/.aws/credentials` would upload
    the credentials. Links to files inside the folder are published as those
    files. Without it (hashing a model to know its identity) links are
    followed and links to folders skipped, as before.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder", hint="publish a folder holding the model's files")
    cache = _HashCache(hash_cache)
    root = folder.resolve()
    entries = []
    for path in sorted(folder.rglob("*")):  # rglob does not descend into linked folders
        relative = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue  # editor and tool droppings (.DS_Store, .cache/) are not part of a model
        if confine and path.is_symlink():
            _refuse_link_out(path, root)
        if not path.is_file():
            continue
        stat, digest = _hash(path, cache)
        entries.append(FileEntry(path=relative, sha256=digest, size=stat.st_size))
    cache.save()
    if not entries:
        raise InputError(f"{folder}: no files to publish")
    return entries


def _refuse_link_out(link: Path, root: Path) -> None:
    target = link.resolve()
    shown = display_path(link.parent.resolve() / link.name)  # the link's own name, not where it leads
    hint = "publish a copy of what it points at (cp -L), not the link"
    if not target.is_relative_to(root):
        raise InputError(f"{shown} is a symbolic link to {target}, outside the folder", hint=hint)
    if target.is_dir():
        raise InputError(f"{shown} is a symbolic link to a folder ({target})", hint=hint)


def check_folder(folder: Path, manifest: Manifest, hash_cache: Path | None = None) -> str | None:
    """None when `folder` holds exactly the version's files (sizes and sha256), else what differs.

    Used before a cached pull is reused. It costs a stat per file, and reading
    the files whose stat changed since they were last hashed (all of them the
    first time: ~1 s per GB).
    """
    expected = {entry.path: entry for entry in manifest.files}
    folders = {"/".join(path.split("/")[:depth]) for path in expected for depth in range(1, path.count("/") + 1)}
    cache = _HashCache(hash_cache)
    try:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                return f"{relative} is a symbolic link"
            if path.is_dir():
                if relative not in folders:
                    return f"{relative}/ is not part of the version"
                continue
            if relative == PULLED_MANIFEST:
                continue
            entry = expected.pop(relative, None)
            if entry is None:
                return f"{relative} is not part of the version"
            stat, digest = _hash(path, cache)
            if (stat.st_size, digest) != (entry.size, entry.sha256):
                return f"{relative} differs from the version"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        cache.save()
    return f"{next(iter(expected))} is missing" if expected else None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(handle, "sha256").hexdigest()
        digest = hashlib.sha256()  # Python 3.10 has no hashlib.file_digest
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()


def _hash(path: Path, cache: _HashCache) -> tuple[os.stat_result, str]:
    """The file's stat and sha256, from the cache when its stat is what it was when last hashed."""
    started = time.time_ns()
    stat = path.stat()
    digest = cache.get(path, stat)
    if digest is None:
        digest = sha256_file(path)
        if _HashCache.stamp(path.stat()) == _HashCache.stamp(stat):  # not changed while being read
            cache.put(path, stat, started, digest)
    return stat, digest


class _HashCache:
    """sha256 by path and stat: size, mtime, ctime, inode and device.

    ctime is in the stamp because nothing but the kernel sets it: a file
    rewritten with its mtime put back (`cp -p`, tar, rsync -t) still gets a
    new ctime. A change within the same timestamp tick as the file's previous
    change would keep the stamp as it was ("racy git"), so a hash is reused
    only if it was taken more than a tick after the file's last change. What
    publish uploads is hashed again as it is sent, so an entry that lies
    cannot store other bytes under a digest (see Registry._upload).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.dirty = False
        if path is not None:
            try:
                entries = json.loads(path.read_text())
            except (OSError, ValueError):
                entries = {}
            self.entries = entries if isinstance(entries, dict) else {}  # an old or foreign file: start over

    @staticmethod
    def stamp(stat: os.stat_result) -> list[int]:
        return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]

    def get(self, path: Path, stat: os.stat_result) -> str | None:
        entry = self.entries.get(str(path.resolve()))
        if not isinstance(entry, dict) or entry.get("stamp") != self.stamp(stat):
            return None
        digest, hashed_at = entry.get("sha256"), entry.get("hashed_at")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest) or not isinstance(hashed_at, int):
            return None
        return digest if _settled(stat.st_ctime_ns, hashed_at) else None

    def put(self, path: Path, stat: os.stat_result, hashed_at: int, digest: str) -> None:
        if self.path is not None:
            self.entries[str(path.resolve())] = {"stamp": self.stamp(stat), "hashed_at": hashed_at, "sha256": digest}
            self.dirty = True

    def save(self) -> None:
        if self.path is not None and self.dirty:
            with contextlib.suppress(OSError):  # only a speed-up
                atomic_write_text(self.path, json.dumps(self.entries))


def _settled(ctime_ns: int, hashed_at_ns: int) -> bool:
    """True when the hash was taken more than a timestamp tick after the file last changed.

    Linux filesystems keep nanoseconds but advance them by the kernel tick (up
    to 10 ms); a ctime of a whole second means a filesystem with 1 or 2 s
    timestamps.
    """
    tick = 2_000_000_000 if ctime_ns % 1_000_000_000 == 0 else 50_000_000
    return hashed_at_ns - ctime_ns > tick


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
