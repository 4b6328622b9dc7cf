"""The model registry: immutable versions, approvals, stage pointers, verified pulls.

Layout inside the store (every backend the same):

    _blobs/sha256/ab/<sha256>        file contents, by hash: shared by every version and name
    <name>/versions/<N>.json         the manifest; the version exists exactly when this does
    <name>/digests/<sha256>          "N": the version holding this content (fast re-publish)
    <name>/status/<N>.json           approval status and its history (absent: candidate)
    <name>/stages/<stage>.json       the stage pointer and its history

Publishing uploads blobs first and creates the manifest last, conditionally
(only if absent): a crash leaves unreferenced blobs and no version, and two
publishers racing for number N get N and N+1. Status and stage objects change
by compare-and-swap, and carry their own history, so the audit trail is
written in the same atomic step as the change it records.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from llmci.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from llmci.registry.manifest import FileEntry, Lineage, Manifest, content_digest, now, scan_folder, sha256_file
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Progress, Store

STAGES = ("staging", "production")
Status = Literal["candidate", "approved", "rejected"]
#: status -> the statuses it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("approved", "rejected"),
    "approved": ("rejected",),
    "rejected": (),
}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The manifest a pull leaves in the folder; hidden, so re-publishing the folder is a no-op.
PULLED_MANIFEST = ".llmci-manifest.json"
_ALLOCATION_ATTEMPTS = 100


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    stage: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.stage or 'latest'}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a valid model name",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def parse_ref(text: str) -> Ref:
    """`NAME@VERSION`, `NAME@STAGE` or `NAME@latest`."""
    name, sep, what = text.partition("@")
    if not sep or not name or not what:
        hint = f"write NAME@VERSION, NAME@STAGE ({', '.join(STAGES)}) or NAME@latest"
        raise UsageError(f"'{text}' is not a model reference", hint=hint)
    check_name(name)
    if what.isdigit() and int(what) >= 1:
        return Ref(name, version=int(what))
    if what in STAGES:
        return Ref(name, stage=what)
    if what == "latest":
        return Ref(name)
    stages = ", ".join(STAGES)
    raise UsageError(f"'{text}': '{what}' is not a version number (1, 2, ...), a stage ({stages}) or 'latest'")


@dataclass(frozen=True)
class Event:
    """One audited transition."""

    at: str
    by: str
    action: str  # approve | reject | promote
    version: int
    before: str | None  # the status, or the stage's previous version
    after: str
    note: str = ""
    stage: str | None = None


@dataclass
class StatusRecord:
    status: Status
    history: list[Event] = field(default_factory=list)


@dataclass
class StagePointer:
    version: int
    history: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    #: False when identical content was already published: that version is returned.
    created: bool


class Registry:
    def __init__(self, store: Store, *, hash_cache: Path | None = None, progress: bool | None = None) -> None:
        self.store = store
        self.hash_cache = hash_cache
        self.progress = sys.stderr.isatty() if progress is None else progress

    # -- keys -----------------------------------------------------------------------------

    @staticmethod
    def _manifest_key(name: str, version: int) -> str:
        return f"{name}/versions/{version}.json"

    @staticmethod
    def _blob_key(sha256: str) -> str:
        return f"_blobs/sha256/{sha256[:2]}/{sha256}"

    # -- reading --------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name in self.store.children("") if not name.startswith("_")]

    def versions(self, name: str, *, must_exist: bool = False) -> list[int]:
        entries = self.store.children(f"{check_name(name)}/versions")
        found = sorted(int(entry[:-5]) for entry in entries if entry.endswith(".json") and entry[:-5].isdigit())
        if must_exist and not found:
            raise self._unknown(name)
        return found

    def manifest(self, name: str, version: int) -> Manifest:
        try:
            data, _ = self.store.read(self._manifest_key(name, version))
        except ObjectNotFound:
            self.versions(name, must_exist=True)  # an unknown model says so first
            raise NotFoundError(
                f"{name}@{version}: no such version", hint=f"`llmci registry list {name}` shows the versions"
            ) from None
        return Manifest.model_validate_json(data)

    def resolve(self, ref: Ref | str) -> Manifest:
        """The manifest a reference points at now."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            return self.manifest(ref.name, ref.version)
        if ref.stage is not None:
            pointer = self.stage(ref.name, ref.stage)
            if pointer is None:
                self.versions(ref.name, must_exist=True)  # an unknown model says so first
                raise NotFoundError(
                    f"{ref}: no version is in {ref.stage}",
                    hint=f"promote one: llmci registry promote {ref.name}@VERSION --stage {ref.stage}",
                )
            return self.manifest(ref.name, pointer.version)
        return self.manifest(ref.name, self.versions(ref.name, must_exist=True)[-1])

    def status(self, name: str, version: int) -> StatusRecord:
        record, etag = self._read_status(name, version)
        if etag is None:
            self.manifest(name, version)  # no status object yet: "candidate" only if the version exists
        return record

    def stage(self, name: str, stage: str) -> StagePointer | None:
        pointer, _ = self._read_stage(name, stage)
        return pointer

    def stages_of(self, name: str) -> dict[str, int]:
        """stage -> version, for the stages that point somewhere."""
        return {stage: pointer.version for stage in STAGES if (pointer := self.stage(name, stage)) is not None}

    def history(self, name: str, version: int) -> list[Event]:
        """Every audited transition of this version: its approvals and the stage moves to or from it."""
        events = list(self.status(name, version).history)
        for stage in STAGES:
            pointer = self.stage(name, stage)
            if pointer is not None:
                events += [e for e in pointer.history if e.version == version or e.before == str(version)]
        return sorted(events, key=lambda e: e.at)

    def read_file(self, manifest: Manifest, path: str) -> bytes:
        """One file of a version, verified (for small files: configs, tokenizers)."""
        entry = next((f for f in manifest.files if f.path == path), None)
        if entry is None:
            raise NotFoundError(f"{manifest.ref}: has no file '{path}'")
        try:
            data, _ = self.store.read(self._blob_key(entry.sha256))
        except ObjectNotFound:
            raise IntegrityError(f"{manifest.ref}: {path} is missing from the registry") from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"{manifest.ref}: {path} is corrupted (sha256 does not match the manifest)")
        return data

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self,
        folder: Path,
        name: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | None = None,
        created_by: str | None = None,
    ) -> PublishResult:
        """Publish a folder as the next version of `name` (or return the version that has it already)."""
        check_name(name)
        files = scan_folder(folder, self.hash_cache)
        digest = content_digest(files)
        digest_key = f"{name}/digests/{digest.removeprefix('sha256:')}"
        existing = self._version_with(name, digest_key, digest)
        if existing is not None:
            return PublishResult(existing, created=False)

        self._upload_blobs(folder, files)
        for _ in range(_ALLOCATION_ATTEMPTS):
            version = max(self.versions(name), default=0) + 1
            manifest = Manifest(
                name=name,
                version=version,
                digest=digest,
                created_at=now(),
                created_by=created_by,
                files=files,
                size=sum(f.size for f in files),
                lineage=lineage or Lineage(),
                metrics=dict(metrics or {}),
                tags=dict(tags or {}),
            )
            # The index first: a crash after it leaves an index entry pointing at a version
            # that is absent or holds other content, which the next publish checks and ignores.
            self.store.put(digest_key, str(version).encode())
            try:
                self.store.create(self._manifest_key(name, version), manifest.to_json())
            except PreconditionFailed:
                continue  # another publisher took this number: take the next
            return PublishResult(manifest, created=True)
        raise ConflictError(f"{name}: could not allocate a version number after {_ALLOCATION_ATTEMPTS} attempts")

    def _version_with(self, name: str, digest_key: str, digest: str) -> Manifest | None:
        """The version the digest index names, if it exists and really holds this content."""
        try:
            index, _ = self.store.read(digest_key)
            data, _ = self.store.read(self._manifest_key(name, int(index)))
        except (ObjectNotFound, ValueError):
            return None
        manifest = Manifest.model_validate_json(data)
        return manifest if manifest.digest == digest else None

    def _upload_blobs(self, folder: Path, files: list[FileEntry]) -> None:
        todo = {}
        for entry in files:
            if entry.sha256 not in todo and not self.store.exists(self._blob_key(entry.sha256)):
                todo[entry.sha256] = entry
        with self._progress_bar(sum(e.size for e in todo.values()), "upload") as progress:
            for sha256, entry in todo.items():
                self.store.upload(self._blob_key(sha256), folder / entry.path, progress)

    # -- approvals and stages -------------------------------------------------------------

    def approve(self, ref: Ref | str, *, by: str, note: str = "") -> StatusRecord:
        return self._transition(ref, "approved", by=by, note=note)

    def reject(self, ref: Ref | str, *, by: str, note: str = "") -> StatusRecord:
        return self._transition(ref, "rejected", by=by, note=note)

    def _transition(self, ref: Ref | str, target: Status, *, by: str, note: str) -> StatusRecord:
        manifest = self.resolve(ref)
        record, etag = self._read_status(manifest.name, manifest.version)
        if record.status == target:
            return record  # already there: a re-run is not an error
        if target not in TRANSITIONS[record.status]:
            raise UsageError(f"{manifest.ref} is {record.status} and cannot become {target}")
        action = "approve" if target == "approved" else "reject"
        event = Event(now(), by, action, manifest.version, record.status, target, note)
        updated = StatusRecord(target, [*record.history, event])
        key = f"{manifest.name}/status/{manifest.version}.json"
        self._swap(key, _dump(updated), etag, f"{manifest.ref} changed status while you were {action}ing it")
        return updated

    def promote(self, ref: Ref | str, stage: str, *, by: str, note: str = "") -> StagePointer:
        """Point `stage` at an approved version, by compare-and-swap: of racing promoters one wins."""
        if stage not in STAGES:
            raise UsageError(f"unknown stage '{stage}'", hint=f"stages are {', '.join(STAGES)}")
        manifest = self.resolve(ref)
        status = self._read_status(manifest.name, manifest.version)[0].status
        if status != "approved":
            raise UsageError(
                f"{manifest.ref} is {status}; only approved versions can be promoted",
                hint=f"llmci registry approve {manifest.ref} --by NAME --note WHY",
            )
        pointer, etag = self._read_stage(manifest.name, stage)
        if pointer is not None and pointer.version == manifest.version:
            return pointer
        before = str(pointer.version) if pointer else None
        event = Event(now(), by, "promote", manifest.version, before, str(manifest.version), note, stage)
        updated = StagePointer(manifest.version, [*(pointer.history if pointer else []), event])
        key = f"{manifest.name}/stages/{stage}.json"
        self._swap(key, _dump(updated), etag, f"{manifest.name}@{stage} was moved by someone else at the same time")
        return updated

    def _swap(self, key: str, data: bytes, etag: str | None, conflict: str) -> None:
        try:
            if etag is None:
                self.store.create(key, data)
            else:
                self.store.replace(key, data, etag)
        except PreconditionFailed:
            hint = "nothing was changed; look with `llmci registry show` and re-run"
            raise ConflictError(conflict, hint=hint) from None

    def _read_status(self, name: str, version: int) -> tuple[StatusRecord, str | None]:
        """The status object and its ETag; callers have resolved the version already."""
        try:
            data, etag = self.store.read(f"{name}/status/{version}.json")
        except ObjectNotFound:
            return StatusRecord("candidate"), None
        raw = json.loads(data)
        return StatusRecord(raw["status"], [Event(**e) for e in raw["history"]]), etag

    def _read_stage(self, name: str, stage: str) -> tuple[StagePointer | None, str | None]:
        try:
            data, etag = self.store.read(f"{name}/stages/{stage}.json")
        except ObjectNotFound:
            return None, None
        raw = json.loads(data)
        return StagePointer(raw["version"], [Event(**e) for e in raw["history"]]), etag

    # -- pulling --------------------------------------------------------------------------

    def pull(self, ref: Ref | str, dest: Path) -> Manifest:
        """Download a version into `dest`, verifying every sha256; on any failure `dest` is untouched."""
        manifest = self.resolve(ref)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise UsageError(f"{dest}: exists and is not empty", hint="pull into a new or empty folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            with self._progress_bar(manifest.size, "download") as progress:
                for entry in manifest.files:
                    target = staging / _safe_relative(entry.path, manifest)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        self.store.download(self._blob_key(entry.sha256), target, progress)
                    except ObjectNotFound:
                        raise IntegrityError(f"{manifest.ref}: {entry.path} is missing from the registry") from None
                    _verify(target, entry, manifest)
            (staging / PULLED_MANIFEST).write_bytes(manifest.to_json())
            staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
            if dest.exists():
                dest.rmdir()
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    # -- helpers --------------------------------------------------------------------------

    def _unknown(self, name: str) -> NotFoundError:
        return NotFoundError(
            f"model '{name}' is not in the registry {self.store.uri}", hint="`llmci registry list` shows the models"
        )

    @contextmanager
    def _progress_bar(self, total: int, what: str) -> Iterator[Progress | None]:
        if not self.progress or total == 0:
            yield None
            return
        from tqdm import tqdm

        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=what, file=sys.stderr) as bar:
            yield bar.update


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dump(record: StatusRecord | StagePointer) -> bytes:
    return json.dumps(asdict(record), indent=2).encode() + b"\n"


def _safe_relative(path: str, manifest: Manifest) -> str:
    """A manifest path that stays inside the destination (a tampered manifest cannot write elsewhere)."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise IntegrityError(f"{manifest.ref}: unsafe file path '{path}' in the manifest")
    return str(pure)


def _verify(target: Path, entry: FileEntry, manifest: Manifest) -> None:
    size = target.stat().st_size
    actual = sha256_file(target)
    if size != entry.size or actual != entry.sha256:
        raise IntegrityError(
            f"{manifest.ref}: {entry.path} is corrupted: sha256 {actual[:12]}... size {size}, "
            f"the manifest says {entry.sha256[:12]}... size {entry.size}",
            hint="the registry copy is damaged; re-publish the model",
        )
