"""The registry's contract, run against both backends (a folder, and S3 through moto's server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmci.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from llmci.registry.manifest import Lineage
from llmci.registry.versions import PULLED_MANIFEST, Registry, parse_ref
from tests.registry.conftest import make_model


def test_publish_numbers_versions_and_records_a_complete_manifest(registry: Registry, tmp_path: Path) -> None:
    lineage = Lineage(git_commit="abc123", dataset_sha256="d" * 64, base_model="tiny@1", hyperparameters={"lr": 0.1})
    first = registry.publish(
        make_model(tmp_path / "m1", "a"), "qa", metrics={"accuracy": 0.7}, lineage=lineage, tags={"team": "ml"}
    )
    second = registry.publish(make_model(tmp_path / "m2", "b"), "qa")
    assert (first.created, second.created) == (True, True)
    assert (first.manifest.ref, second.manifest.ref) == ("qa@1", "qa@2")
    manifest = registry.resolve("qa@1")
    assert [f.path for f in manifest.files] == ["config.json", "model.safetensors", "tokenizer/vocab.json"]
    assert manifest.size == sum(f.size for f in manifest.files)
    assert manifest.digest.startswith("sha256:") and manifest.metrics == {"accuracy": 0.7}
    assert manifest.lineage.dataset_sha256 == "d" * 64 and manifest.lineage.hyperparameters == {"lr": 0.1}
    assert manifest.tags == {"team": "ml"}
    assert registry.versions("qa") == [1, 2] and registry.names() == ["qa"]
    assert registry.resolve("qa@latest").version == 2


def test_identical_content_returns_the_existing_version(registry: Registry, tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "a")
    registry.publish(folder, "qa")
    again = registry.publish(folder, "qa", metrics={"accuracy": 1.0})
    assert again.created is False and again.manifest.version == 1
    assert again.manifest.metrics == {}  # versions are immutable
    assert registry.versions("qa") == [1]


def test_a_new_version_is_a_candidate_and_approvals_are_audited(registry: Registry, tmp_path: Path) -> None:
    registry.publish(make_model(tmp_path / "m"), "qa")
    assert registry.status("qa", 1).status == "candidate"
    registry.approve("qa@1", by="alice", note="beats baseline")
    registry.approve("qa@1", by="alice", note="re-run")  # already approved: no new event
    registry.reject("qa@1", by="bob", note="found a leak")
    record = registry.status("qa", 1)
    assert record.status == "rejected"
    assert [(e.by, e.action, e.before, e.after, e.note) for e in record.history] == [
        ("alice", "approve", "candidate", "approved", "beats baseline"),
        ("bob", "reject", "approved", "rejected", "found a leak"),
    ]
    with pytest.raises(UsageError, match="qa@1 is rejected and cannot become approved"):
        registry.approve("qa@1", by="alice", note="again")


def test_promote_requires_approval_and_moves_the_pointer(registry: Registry, tmp_path: Path) -> None:
    registry.publish(make_model(tmp_path / "m1", "a"), "qa")
    registry.publish(make_model(tmp_path / "m2", "b"), "qa")
    with pytest.raises(UsageError, match="qa@1 is candidate; only approved versions can be promoted"):
        registry.promote("qa@1", "production", by="ci")
    for version in (1, 2):
        registry.approve(f"qa@{version}", by="alice", note="ok")
    registry.promote("qa@1", "production", by="ci", note="first")
    registry.promote("qa@2", "production", by="ci", note="second")
    registry.promote("qa@1", "staging", by="ci")
    assert registry.resolve("qa@production").version == 2
    assert registry.stages_of("qa") == {"staging": 1, "production": 2}
    moves = [(e.action, e.stage, e.before, e.after) for e in registry.history("qa", 1)]
    assert moves == [
        ("approve", None, "candidate", "approved"),
        ("promote", "production", None, "1"),
        ("promote", "production", "1", "2"),
        ("promote", "staging", None, "1"),
    ]


def test_pull_verifies_and_leaves_a_complete_folder(registry: Registry, tmp_path: Path) -> None:
    source = make_model(tmp_path / "m", "a", big=3000)
    registry.publish(source, "qa")
    dest = tmp_path / "pulled" / "qa"
    manifest = registry.pull("qa@1", dest)
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (source / entry.path).read_bytes()
    assert json.loads((dest / PULLED_MANIFEST).read_text())["version"] == 1
    assert registry.publish(dest, "qa").created is False  # the pulled folder is the same content
    assert registry.read_file(manifest, "config.json") == (source / "config.json").read_bytes()


def test_pull_of_corrupted_or_missing_blob_fails_naming_the_file_and_leaves_dest_alone(
    registry: Registry, tmp_path: Path
) -> None:
    manifest = registry.publish(make_model(tmp_path / "m"), "qa").manifest
    weights = next(f for f in manifest.files if f.path == "model.safetensors")
    blob = registry._blob_key(weights.sha256)
    registry.store.put(blob, b"tampered bytes")
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match=r"qa@1: model\.safetensors is corrupted"):
        registry.pull("qa@1", dest)
    assert not dest.exists() and list(tmp_path.glob(".dest.*")) == []
    dest.mkdir()  # an empty folder stays as it was
    with pytest.raises(IntegrityError):
        registry.pull("qa@1", dest)
    assert list(dest.iterdir()) == []


def test_pull_into_a_non_empty_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    registry.publish(make_model(tmp_path / "m"), "qa")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="exists and is not empty"):
        registry.pull("qa@1", tmp_path / "dest")
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("nope@1", NotFoundError, "model 'nope' is not in the registry"),
        ("qa@9", NotFoundError, "qa@9: no such version"),
        ("qa@production", NotFoundError, "qa@production: no version is in production"),
        ("qa", UsageError, "'qa' is not a model reference"),
        ("qa@prod", UsageError, "'qa@prod': 'prod' is not a version number"),
        ("qa@0", UsageError, "'qa@0': '0' is not a version number"),
        ("bad name@1", UsageError, "'bad name' is not a valid model name"),
    ],
)
def test_unknown_and_malformed_references(
    registry: Registry, tmp_path: Path, ref: str, error: type, message: str
) -> None:
    registry.publish(make_model(tmp_path / "m"), "qa")
    with pytest.raises(error, match=message.replace("@", "@").replace("(", r"\(")):
        registry.resolve(ref)


def test_a_stale_digest_index_does_not_hide_new_content(registry: Registry, tmp_path: Path) -> None:
    """A publish that died after writing the index but before the manifest must not confuse the next."""
    folder = make_model(tmp_path / "m")
    from llmci.registry.manifest import content_digest, scan_folder

    digest = content_digest(scan_folder(folder)).removeprefix("sha256:")
    registry.store.put(f"qa/digests/{digest}", b"1")  # points at a version that does not exist
    result = registry.publish(folder, "qa")
    assert result.created and result.manifest.version == 1
    assert registry.publish(folder, "qa").created is False


def test_parse_ref_round_trips() -> None:
    assert str(parse_ref("qa@3")) == "qa@3"
    assert str(parse_ref("qa@staging")) == "qa@staging"
    assert str(parse_ref("qa@latest")) == "qa@latest"


def test_version_creation_is_conditional(registry: Registry, tmp_path: Path) -> None:
    """Two writers of version N: the second create fails; nothing is overwritten."""
    from llmci.registry.store import PreconditionFailed

    registry.publish(make_model(tmp_path / "m"), "qa")
    key = "qa/versions/1.json"
    before, etag = registry.store.read(key)
    with pytest.raises(PreconditionFailed):
        registry.store.create(key, b"{}")
    with pytest.raises(PreconditionFailed):
        registry.store.replace(key, b"{}", '"not-the-etag"')
    assert registry.store.read(key) == (before, etag)


def test_conflicting_status_change_is_a_conflict(registry: Registry, tmp_path: Path) -> None:
    registry.publish(make_model(tmp_path / "m"), "qa")
    registry.store.create("qa/status/1.json", b'{"status": "candidate", "history": []}')
    _, etag = registry.store.read("qa/status/1.json")
    registry.store.replace("qa/status/1.json", b'{"status": "candidate", "history": []}\n', etag)
    # A writer holding the old ETag loses.
    with pytest.raises(ConflictError, match="changed status while you were approving"):
        registry._swap("qa/status/1.json", b"{}", etag, "qa@1 changed status while you were approving it")
