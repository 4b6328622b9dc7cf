"""The model registry: immutable versions, approvals, stage pointers, verified pulls.

Layout inside the store (every backend the same):

    _blobs/sha256/ab/<sha256>        file contents, by hash: shared by every version and name
    _blobs/damaged/<sha256>          a reader found that blob damaged: the next publish of it replaces it
    <name>/versions/<N>.json         the manifest; the version exists exactly when this does
    <name>/digests/<sha256>          "N": the version holding this content (fast re-publish)
    <name>/status/<N>.json           approval status and its history (absent: candidate)
    <name>/stages/<stage>.json       the stage pointer and its history

Publishing uploads blobs first and creates the manifest last, conditionally
(only if absent): a crash leaves unreferenced blobs and no version, and two
publishers racing for number N get N and N+1. Every blob is hashed as it is
sent, so what is stored under a digest is what has that digest, whatever the
hash cache said. Status and stage objects change by compare-and-swap, and
carry their own history, so the audit trail is written in the same atomic
step as the change it records. A stage serves only an approved version: one
pointing at a rejected version resolves to an error saying so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from llmci.errors import ConflictError, IntegrityError, LlmciError, NotFoundError, UsageError
from llmci.fsutil import display_path
from llmci.progress import ProgressMeter
from llmci.registry.manifest import (
    NAME_PATTERN,
    PULLED_MANIFEST,
    FileEntry,
    Lineage,
    Manifest,
    content_digest,
    now,
    parse_manifest,
    scan_folder,
    sha256_file,
)
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Progress, Store, TooLarge, local_write_errors

__all__ = ["NAME_PATTERN", "PULLED_MANIFEST", "STAGES", "DestinationTaken", "Registry", "Terminated", "parse_ref"]

STAGES = ("staging", "production")
Status = Literal["candidate", "approved", "rejected"]
#: status -> the statuses it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("approved", "rejected"),
    "approved": ("rejected",),
    "rejected": (),
}
DAMAGED = "_blobs/damaged"
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


def inline(text: str) -> str:
    """Text from the registry (a note, a name) on one line: control characters shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Event:
    """One audited transition."""

    at: str
    by: str
    action: str  # approve | reject | promote | revert
    version: int
    before: str | None  # the status, or the stage's previous version
    after: str | None  # the status, or the stage's version (None: a stage emptied again)
    note: str = ""
    stage: str | None = None


@dataclass
class StatusRecord:
    status: Status
    history: list[Event] = field(default_factory=list)

    def rejection(self) -> Event | None:
        return next((e for e in reversed(self.history) if e.action == "reject"), None)


@dataclass
class StagePointer:
    #: None: the stage points nowhere (a promote was reverted before anything else was promoted).
    version: int | None
    history: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class StageState:
    """Where a stage points, and whether that version is served."""

    stage: str
    version: int
    #: None when the version is approved (served); else why not, e.g. "REJECTED by bob at T".
    problem: str | None


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    #: False when identical content was already published: that version is returned.
    created: bool
    #: Files whose blob was in the registry but damaged, and was uploaded again.
    repaired: list[str] = field(default_factory=list)


class DestinationTaken(UsageError):
    """The pull's destination exists and is not empty (perhaps another pull finished into it first)."""


class Terminated(SystemExit):
    """SIGTERM (a cancelled job, `kill`) during a transfer: raised so cleanups run; exits 143 as the signal would."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread instead of killing the process.

    Killed outright, a pull leaves its partial download beside DEST and a
    multipart upload stays open on S3. A handler someone else installed (or an
    ignored SIGTERM) is left alone, as is every thread but the main one.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def raise_terminated(_signum, _frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _VerifiedReader:
    """Reads a file for upload, hashing exactly the bytes it hands out.

    At the end (the read that finds nothing more, which every upload path
    makes before it completes) they must be the size and sha256 the manifest
    will record; otherwise it raises, which aborts the upload: nothing is
    stored under the digest. Catches a file rewritten while publishing, and a
    stale or forged hash cache.
    """

    def __init__(self, handle: BinaryIO, entry: FileEntry, shown: str, hint: str) -> None:
        self._handle, self._entry, self._shown, self._hint = handle, entry, shown, hint
        self._digest = hashlib.sha256()
        self._count = 0

    def read(self, amount: int | None = -1) -> bytes:
        try:
            data = self._handle.read(amount)
        except OSError as exc:
            raise IntegrityError(f"{self._shown}: cannot be read while publishing ({exc.strerror})") from None
        self._digest.update(data)
        self._count += len(data)
        whole = amount is None or amount < 0
        if self._count > self._entry.size or whole or (not data and amount != 0):
            self._check()
        return data

    def _check(self) -> None:
        actual = self._digest.hexdigest()
        if self._count == self._entry.size and actual == self._entry.sha256:
            return
        sent = f"more than {self._entry.size}" if self._count > self._entry.size else str(self._count)
        raise IntegrityError(
            f"{self._shown} changed while it was being published: it read as sha256 {actual[:12]}... "
            f"({sent} bytes), not the {self._entry.sha256[:12]}... ({self._entry.size} bytes) it was hashed as",
            hint=self._hint,
        )


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
        """The version's manifest, validated (IntegrityError naming NAME@VERSION when it is not sound)."""
        try:
            data, _ = self.store.read(self._manifest_key(name, version))
        except ObjectNotFound:
            self.versions(name, must_exist=True)  # an unknown model says so first
            raise NotFoundError(
                f"{name}@{version}: no such version", hint=f"`llmci registry list {name}` shows the versions"
            ) from None
        return parse_manifest(data, name, version)

    def resolve(self, ref: Ref | str, *, serving_only: bool = True) -> Manifest:
        """The manifest a reference points at now.

        A stage resolves only to an approved version: a stage pointing at a
        rejected version is a NotFoundError saying who rejected it and what to
        do (with `serving_only=False`, for looking, it resolves anyway).
        """
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            return self.manifest(ref.name, ref.version)
        if ref.stage is not None:
            pointer = self.stage(ref.name, ref.stage)
            hint = f"llmci registry promote {ref.name}@VERSION --stage {ref.stage}"
            if pointer is None or pointer.version is None:
                self.versions(ref.name, must_exist=True)  # an unknown model says so first
                raise NotFoundError(f"{ref}: no version is in {ref.stage}", hint=f"promote one: {hint}")
            if serving_only and (problem := self._not_serving(ref.name, pointer.version)) is not None:
                raise NotFoundError(
                    f"{ref}: {problem}: nothing is served from {ref.stage}",
                    hint=f"promote an approved version: {hint}",
                )
            return self.manifest(ref.name, pointer.version)
        return self.manifest(ref.name, self.versions(ref.name, must_exist=True)[-1])

    def _not_serving(self, name: str, version: int) -> str | None:
        """None when the version is approved; else why a stage pointing at it serves nothing."""
        record, _ = self._read_status(name, version)
        if record.status == "approved":
            return None
        rejection = record.rejection()
        if rejection is None:
            return f"{name}@{version} is {record.status}, not approved"
        note = f" ({inline(repr(rejection.note))})" if rejection.note else ""
        return f"{name}@{version} was rejected by {inline(rejection.by)} at {rejection.at}{note}"

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
        return {stage: state.version for stage, state in self.stage_states(name).items()}

    def stage_states(self, name: str) -> dict[str, StageState]:
        """stage -> where it points and whether that version is served, for the stages that point somewhere."""
        states = {}
        for stage in STAGES:
            pointer = self.stage(name, stage)
            if pointer is None or pointer.version is None:
                continue
            record, _ = self._read_status(name, pointer.version)
            problem = None
            if record.status != "approved":
                rejection = record.rejection()
                problem = (
                    f"REJECTED by {inline(rejection.by)} at {rejection.at}" if rejection else record.status.upper()
                )
            states[stage] = StageState(stage, pointer.version, problem)
        return states

    def history(self, name: str, version: int) -> list[Event]:
        """Every audited transition of this version: its approvals and the stage moves to or from it."""
        events = list(self.status(name, version).history)
        mine = str(version)
        for stage in STAGES:
            pointer = self.stage(name, stage)
            if pointer is not None:
                events += [e for e in pointer.history if e.version == version or mine in (e.before, e.after)]
        return sorted(events, key=lambda e: e.at)

    def read_file(self, manifest: Manifest, path: str) -> bytes:
        """One file of a version, verified (for small files: configs, tokenizers)."""
        entry = next((f for f in manifest.files if f.path == path), None)
        if entry is None:
            raise NotFoundError(f"{manifest.ref}: has no file '{path}'")
        try:
            data, _ = self.store.read(self._blob_key(entry.sha256), limit=entry.size + 1)
        except ObjectNotFound:
            raise self._damaged(entry, manifest, "is missing from the registry", missing=True) from None
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise self._damaged(entry, manifest, "is corrupted (sha256 does not match the manifest)")
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
        """Publish a folder as the next version of `name` (or return the version that has it already).

        Either way every blob the folder needs is checked (its size, and the
        damage readers reported) and uploaded again when it is not sound.
        """
        check_name(name)
        files = scan_folder(folder, self.hash_cache, confine=True)
        digest = content_digest(files)
        digest_key = f"{name}/digests/{digest.removeprefix('sha256:')}"
        existing = self._version_with(name, digest_key, digest)
        if existing is None:
            self.store.check_conditional_writes()  # before uploading anything: a store that would lose versions
        with sigterm_raises():
            repaired = self._upload_blobs(folder, files, new_version=existing is None)
        if existing is not None:
            return PublishResult(existing, created=False, repaired=repaired)

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
            return PublishResult(manifest, created=True, repaired=repaired)
        raise ConflictError(f"{name}: could not allocate a version number after {_ALLOCATION_ATTEMPTS} attempts")

    def _version_with(self, name: str, digest_key: str, digest: str) -> Manifest | None:
        """The version the digest index names, if it exists and really holds this content."""
        try:
            index, _ = self.store.read(digest_key, limit=32)
            manifest = self.manifest(name, int(index))
        except (NotFoundError, IntegrityError, ValueError):
            return None  # no index, a stale one, or a damaged version: publish anew
        return manifest if manifest.digest == digest else None

    def _upload_blobs(self, folder: Path, files: list[FileEntry], *, new_version: bool) -> list[str]:
        """Upload the blobs that are absent or not sound; returns the files whose damaged blob was replaced.

        Soundness is judged cheaply, never by downloading: a blob that failed
        its check on a pull or read_file was reported (`_blobs/damaged/`, one
        listing), and for a new version each blob's size is looked at too (the
        HEAD, or stat, that tells whether it is there at all). An identical
        re-publish makes no HEADs: it stays a few requests.
        """
        damaged = set(self.store.children(DAMAGED))
        todo: dict[str, FileEntry] = {}
        repaired = []
        for entry in files:
            if entry.sha256 in todo:
                continue
            if new_version:
                stored = self.store.size(self._blob_key(entry.sha256))
                if stored == entry.size and entry.sha256 not in damaged:
                    continue
            elif entry.sha256 in damaged:
                stored = self.store.size(self._blob_key(entry.sha256))
            else:
                continue
            todo[entry.sha256] = entry
            if stored is not None:
                repaired.append(entry.path)
        with self._progress_bar(sum(e.size for e in todo.values()), "upload") as progress:
            for sha256, entry in todo.items():
                self._upload(folder, entry, progress)
                if sha256 in damaged:
                    self.store.delete(f"{DAMAGED}/{sha256}")
        return repaired

    def _upload(self, folder: Path, entry: FileEntry, progress: Progress | None) -> None:
        path = folder / entry.path
        cache = f"; if nothing did, the hash cache {self.hash_cache} is stale: delete it" if self.hash_cache else ""
        hint = f"nothing was published; re-run once nothing writes to {display_path(folder)}{cache}"
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise IntegrityError(
                f"{display_path(path)} changed while it was being published: it cannot be read now ({exc.strerror})",
                hint=hint,
            ) from None
        with handle:
            reader = _VerifiedReader(handle, entry, display_path(path), hint)
            self.store.upload(self._blob_key(entry.sha256), reader, progress)

    def _damaged(self, entry: FileEntry, manifest: Manifest, what: str, *, missing: bool = False) -> IntegrityError:
        """Report a blob that is missing or failed its check, so the next publish of that content uploads it;
        the error that says so."""
        with contextlib.suppress(LlmciError):  # best effort: read-only credentials cannot report it
            self.store.put(f"{DAMAGED}/{entry.sha256}", f"{now()} pull of {manifest.ref}: {entry.path}\n".encode())
        repair = "publish the model folder again to repair it"
        return IntegrityError(
            f"{manifest.ref}: {entry.path} {what}",
            hint=repair if missing else f"the registry copy is damaged; {repair}",
        )

    # -- approvals and stages -------------------------------------------------------------

    def approve(self, ref: Ref | str, *, by: str, note: str = "") -> StatusRecord:
        return self._transition(ref, "approved", by=by, note=note)

    def reject(self, ref: Ref | str, *, by: str, note: str = "") -> StatusRecord:
        """Reject a version. A stage pointing at it keeps pointing (that is history) but serves nothing."""
        return self._transition(ref, "rejected", by=by, note=note)

    def _transition(self, ref: Ref | str, target: Status, *, by: str, note: str) -> StatusRecord:
        manifest = self.resolve(ref, serving_only=False)
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
        """Point `stage` at an approved version, by compare-and-swap: of racing promoters one wins.

        The status is not part of the swap (S3 cannot swap two objects at
        once), so it is read again once the pointer is ours: a reject that
        landed in between undoes the promote (ConflictError), and the stage
        points where it did before, with both moves in its history.
        """
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
        previous = pointer.version if pointer is not None else None
        before = None if previous is None else str(previous)
        event = Event(now(), by, "promote", manifest.version, before, str(manifest.version), note, stage)
        updated = StagePointer(manifest.version, [*(pointer.history if pointer else []), event])
        key = f"{manifest.name}/stages/{stage}.json"
        where = f"{manifest.name}@{stage}"
        ours = self._swap(key, _dump(updated), etag, f"{where} was moved by someone else at the same time")

        problem = self._not_serving(manifest.name, manifest.version)
        if problem is None:
            return updated
        why = f"{manifest.ref} was rejected while being promoted"
        revert = Event(now(), by, "revert", manifest.version, str(manifest.version), before, why, stage)
        try:
            self.store.replace(key, _dump(StagePointer(previous, [*updated.history, revert])), ours)
            back = f"back at {manifest.name}@{previous}" if previous is not None else "empty again"
            now_at = f"{where} is {back}"
        except PreconditionFailed:
            now_at = f"{where} was moved again by someone else"
        raise ConflictError(
            f"{problem} while you were promoting it; {now_at}",
            hint=f"nothing was promoted; look with `llmci registry show {where}`",
        )

    def _swap(self, key: str, data: bytes, etag: str | None, conflict: str) -> str:
        """Create (etag None) or replace-if-unchanged; returns the new ETag; ConflictError when we lost."""
        try:
            if etag is None:
                return self.store.create(key, data)
            return self.store.replace(key, data, etag)
        except PreconditionFailed:
            hint = "nothing was changed; look with `llmci registry show` and re-run"
            raise ConflictError(conflict, hint=hint) from None

    def _read_status(self, name: str, version: int) -> tuple[StatusRecord, str | None]:
        """The status object and its ETag; callers have resolved the version already."""
        key = f"{name}/status/{version}.json"
        try:
            data, etag = self.store.read(key)
        except ObjectNotFound:
            return StatusRecord("candidate"), None
        raw = _record(data, key, self.store.uri)
        if raw.get("status") not in TRANSITIONS:
            raise _invalid_record(key, self.store.uri, f"unknown status {raw.get('status')!r}")
        return StatusRecord(raw["status"], _events(raw, key, self.store.uri)), etag

    def _read_stage(self, name: str, stage: str) -> tuple[StagePointer | None, str | None]:
        key = f"{name}/stages/{stage}.json"
        try:
            data, etag = self.store.read(key)
        except ObjectNotFound:
            return None, None
        raw = _record(data, key, self.store.uri)
        version = raw.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise _invalid_record(key, self.store.uri, f"version {version!r} is not a version number")
        return StagePointer(version, _events(raw, key, self.store.uri)), etag

    # -- pulling --------------------------------------------------------------------------

    def pull(self, ref: Ref | str | Manifest, dest: Path) -> Manifest:
        """Download a version into `dest`, verifying every sha256; on any failure `dest` is untouched.

        DestinationTaken (exit 2) when `dest` exists and is not empty, also when
        another pull finished into it first. SIGTERM removes the partial download.
        """
        manifest = ref if isinstance(ref, Manifest) else self.resolve(ref)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise DestinationTaken(f"{dest}: exists and is not empty", hint="pull into a new or empty folder")
        hint = f"nothing was written to {display_path(dest)}; free space and re-run"
        with sigterm_raises():
            with local_write_errors(dest, hint):
                dest.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            try:
                with self._progress_bar(manifest.size, "download") as progress:
                    for entry in manifest.files:
                        self._download(manifest, entry, staging, dest, progress, hint)
                with local_write_errors(dest / PULLED_MANIFEST, hint):
                    (staging / PULLED_MANIFEST).write_bytes(manifest.to_json())
                staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
                try:
                    os.rename(staging, dest)  # replaces an empty folder; fails on a full one
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                        raise
                    raise DestinationTaken(
                        f"{dest}: exists and is not empty (another pull finished first?)",
                        hint="pull into a new or empty folder",
                    ) from None
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return manifest

    def _download(
        self, manifest: Manifest, entry: FileEntry, staging: Path, dest: Path, progress: Progress | None, hint: str
    ) -> None:
        """One file into the staging folder, stopped past its declared size, then verified."""
        target = staging / entry.path  # the manifest's paths are validated: relative, inside
        with local_write_errors(dest / entry.path, hint):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.store.download(self._blob_key(entry.sha256), target, progress, max_bytes=entry.size)
            except ObjectNotFound:
                raise self._damaged(entry, manifest, "is missing from the registry", missing=True) from None
            except TooLarge:
                raise self._damaged(
                    entry,
                    manifest,
                    f"is corrupted: it is larger than the {entry.size} bytes the manifest says "
                    "(the download was stopped there)",
                ) from None
        size = target.stat().st_size
        actual = sha256_file(target)
        if size != entry.size or actual != entry.sha256:
            raise self._damaged(
                entry,
                manifest,
                f"is corrupted: sha256 {actual[:12]}... size {size}, "
                f"the manifest says {entry.sha256[:12]}... size {entry.size}",
            )

    # -- comparing ------------------------------------------------------------------------

    def diff(self, a: Ref | str, b: Ref | str) -> dict[str, Any]:
        """Two versions side by side (rejected ones too): what `llmci registry diff` shows.

        `{"a": REF, "b": REF, "fields": [...], "files": {"added", "removed", "changed"}}`; a field row is
        `{"field", REF_A: value, REF_B: value, "delta"}`: every metric (delta b - a where both have it), and
        the lineage fields that differ.
        """
        left, right = self.resolve(a, serving_only=False), self.resolve(b, serving_only=False)
        rows: list[dict[str, Any]] = []
        for key in sorted(left.metrics.keys() | right.metrics.keys()):
            x, y = left.metrics.get(key), right.metrics.get(key)
            rows.append(
                {
                    "field": f"metric {key}",
                    left.ref: x,
                    right.ref: y,
                    "delta": None if x is None or y is None else round(y - x, 6),
                }
            )
        lineage_a, lineage_b = left.lineage.model_dump(), right.lineage.model_dump()
        for key in sorted(lineage_a.keys() | lineage_b.keys()):
            if lineage_a.get(key) != lineage_b.get(key):
                rows.append({"field": key, left.ref: lineage_a.get(key), right.ref: lineage_b.get(key), "delta": None})
        files_a = {f.path: f.sha256 for f in left.files}
        files_b = {f.path: f.sha256 for f in right.files}
        changed = sum(1 for p in files_a.keys() & files_b.keys() if files_a[p] != files_b[p])
        summary = {
            "added": len(files_b.keys() - files_a.keys()),
            "removed": len(files_a.keys() - files_b.keys()),
            "changed": changed,
        }
        return {"a": left.ref, "b": right.ref, "fields": rows, "files": summary}

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
        with ProgressMeter(what, total, True, unit="B") as meter:
            yield meter.advance


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dump(record: StatusRecord | StagePointer) -> bytes:
    return json.dumps(asdict(record), indent=2).encode() + b"\n"


def _invalid_record(key: str, uri: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"{uri}/{key}: is not a valid registry record: {what}",
        hint="it was damaged or edited by hand; restore it from the store's versioning or a backup",
    )


def _record(data: bytes, key: str, uri: str) -> dict:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise _invalid_record(key, uri, f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _invalid_record(key, uri, "not a JSON object")
    return raw


def _events(raw: dict, key: str, uri: str) -> list[Event]:
    try:
        return [Event(**event) for event in raw["history"]]
    except (KeyError, TypeError) as exc:
        raise _invalid_record(key, uri, f"its history is malformed ({exc})") from None
