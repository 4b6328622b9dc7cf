"""What the registry stores is what it hashed, and nothing read from it is trusted unverified.

Publish: the bytes sent are hashed as they are sent (a file rewritten during a
publish, or a stale or forged hash cache, cannot store other bytes under a
digest); a damaged blob is replaced by the next publish of its content;
symbolic links out of the folder are refused. Resolve and pull: a manifest is
validated (hashes, sizes, paths, its digest recomputed) before any of it is
used, and a download stops at the size the manifest declares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import boto3
import pytest

from llmci.errors import ExitCode, InputError, IntegrityError
from llmci.registry.manifest import content_digest
from llmci.registry.s3 import MULTIPART_BYTES
from llmci.registry.versions import Registry
from tests.conftest import run_llmci
from tests.registry.conftest import FAKE_AWS, make_model

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RewritingStore:
    """The real store, except that a writer rewrites `path` just before the first upload starts."""

    def __init__(self, store, path: Path, data: bytes) -> None:
        self._store, self._path, self._data = store, path, data
        self._rewritten = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def upload(self, *args, **kwargs):
        if not self._rewritten:
            self._rewritten = True
            self._path.write_bytes(self._data)
        return self._store.upload(*args, **kwargs)


def open_multipart_uploads(registry: Registry) -> list:
    store = registry.store
    if not hasattr(store, "bucket"):
        return []
    return boto3.client("s3").list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


# -- publish stores the bytes it hashed -----------------------------------------------------


@pytest.mark.parametrize("big", [0, MULTIPART_BYTES + 1], ids=["small", "multipart"])
def test_a_file_rewritten_during_publish_fails_and_stores_nothing_under_its_digest(
    registry: Registry, tmp_path: Path, big: int
) -> None:
    folder = make_model(tmp_path / "m", big=big)
    weights = folder / "model.safetensors"
    scanned = sha256(weights.read_bytes())
    racing = Registry(RewritingStore(registry.store, weights, b"X" * weights.stat().st_size), progress=False)
    with pytest.raises(IntegrityError) as caught:
        racing.publish(folder, "qa")
    assert "model.safetensors changed while it was being published" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INTEGRITY
    assert registry.versions("qa") == []
    assert not registry.store.exists(registry._blob_key(scanned))
    assert open_multipart_uploads(registry) == []  # aborted, not completed nor left behind


def test_a_forged_hash_cache_cannot_store_bytes_under_another_digest(registry: Registry, tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m")
    time.sleep(0.2)  # older than a timestamp tick: the cache entries written next are trusted
    cache = tmp_path / "file-hashes.json"
    cached = Registry(registry.store, hash_cache=cache, progress=False)
    cached.publish(folder, "qa")
    forged = sha256(b"what an attacker wants the manifest to say")

    def forge(value):
        if isinstance(value, str) and HEX64.match(value):
            return forged
        if isinstance(value, list):
            return [forge(v) for v in value]
        if isinstance(value, dict):
            return {k: forge(v) for k, v in value.items()}
        return value

    cache.write_text(json.dumps(forge(json.loads(cache.read_text()))))
    (folder / "config.json").write_text('{"model_type": "gpt2", "changed": true}\n')  # a new version is due
    with pytest.raises(IntegrityError, match=r"changed while it was being published"):
        cached.publish(folder, "qa")
    assert registry.versions("qa") == [1]
    assert not registry.store.exists(registry._blob_key(forged))


def test_a_file_rewritten_with_its_mtime_restored_is_published_as_new_content(
    registry: Registry, tmp_path: Path
) -> None:
    folder = make_model(tmp_path / "m")
    weights = folder / "model.safetensors"
    time.sleep(0.2)  # the files are older than a timestamp tick when first hashed: the cache trusts them
    cached = Registry(registry.store, hash_cache=tmp_path / "file-hashes.json", progress=False)
    assert cached.publish(folder, "qa").manifest.version == 1
    before = weights.stat()
    new = bytes(b ^ 0xFF for b in weights.read_bytes())
    with open(weights, "r+b") as handle:  # same inode, same size
        handle.write(new)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p`, tar or rsync -t do
    assert (weights.stat().st_size, weights.stat().st_mtime_ns, weights.stat().st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    result = cached.publish(folder, "qa")
    assert result.created and result.manifest.version == 2
    registry.pull("qa@2", tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == new


@pytest.mark.parametrize("damage", ["truncated", "same-size", "deleted"])
def test_a_damaged_blob_found_by_a_pull_is_replaced_by_the_next_publish_of_its_content(
    registry: Registry, tmp_path: Path, damage: str
) -> None:
    folder = make_model(tmp_path / "m")
    manifest = registry.publish(folder, "qa").manifest
    weights = next(f for f in manifest.files if f.path == "model.safetensors")
    blob = registry._blob_key(weights.sha256)
    if damage == "deleted":
        registry.store.delete(blob)
    else:
        registry.store.put(blob, b"tampered" if damage == "truncated" else b"Y" * weights.size)
    with pytest.raises(IntegrityError, match=r"qa@1: model\.safetensors is (corrupted|missing)"):
        registry.pull("qa@1", tmp_path / "first-try")  # the pull that finds it makes it known
    again = registry.publish(folder, "qa")  # the same content: no new version, the blob is uploaded again
    assert again.created is False and again.manifest.version == 1
    assert again.repaired == ([] if damage == "deleted" else ["model.safetensors"])
    registry.pull("qa@1", tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert registry.publish(folder, "qa").repaired == []  # sound now: nothing more to do


def test_a_damaged_blob_shared_with_new_content_is_replaced_when_that_is_published(
    registry: Registry, tmp_path: Path
) -> None:
    folder = make_model(tmp_path / "m")
    manifest = registry.publish(folder, "qa").manifest
    weights = next(f for f in manifest.files if f.path == "model.safetensors")
    registry.store.put(registry._blob_key(weights.sha256), b"tampered")
    (folder / "config.json").write_text('{"model_type": "gpt2", "v": 2}\n')  # same weights, new config
    assert registry.publish(folder, "qa").manifest.version == 2
    for version in (1, 2):
        registry.pull(f"qa@{version}", tmp_path / f"out{version}")


# -- symbolic links -----------------------------------------------------------------------------


def test_publish_refuses_a_link_out_of_the_folder_naming_it_and_its_target(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: file://.llmci/registry\n")
    secrets = tmp_path / "home" / ".aws" / "credentials"
    secrets.parent.mkdir(parents=True)
    secrets.write_text("[default]\naws_secret_access_key = do-not-upload\n")
    folder = make_model(tmp_path / "model")
    (folder / "tokenizer.json").symlink_to(secrets)
    result = run_llmci("registry", "publish", "model", "--name", "qa", cwd=tmp_path)
    assert result.code == ExitCode.USAGE, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"model/tokenizer.json is a symbolic link to {secrets}, outside the folder" in result.stderr
    assert not (tmp_path / ".llmci" / "registry" / "qa").exists()
    assert "do-not-upload" not in result.stderr


def test_publish_refuses_a_link_to_a_folder_outside(registry: Registry, tmp_path: Path) -> None:
    outside = make_model(tmp_path / "elsewhere")
    folder = make_model(tmp_path / "m")
    (folder / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=r"extra is a symbolic link to .*elsewhere, outside the folder"):
        registry.publish(folder, "qa")
    assert registry.names() == []


def test_a_link_inside_the_folder_is_published_as_the_file_it_names(registry: Registry, tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m")
    (folder / "pytorch_model.bin").symlink_to("model.safetensors")
    manifest = registry.publish(folder, "qa").manifest
    assert [f.path for f in manifest.files] == [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tokenizer/vocab.json",
    ]
    registry.pull("qa@1", tmp_path / "out")
    assert (tmp_path / "out" / "pytorch_model.bin").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert not (tmp_path / "out" / "pytorch_model.bin").is_symlink()


# -- manifests are validated before use ---------------------------------------------------------


def tamper(registry: Registry, version: int, change) -> None:
    """Rewrite a stored manifest with `change(dict)` applied (the digest is recomputed unless the change sets it)."""
    key = registry._manifest_key("qa", version)
    data = json.loads(registry.store.read(key)[0])
    change(data)
    registry.store.put(key, json.dumps(data).encode())


def entry(data: dict, path: str) -> dict:
    return next(f for f in data["files"] if f["path"] == path)


def redigest(data: dict) -> None:
    """What a careful forger does: make the digest agree with the forged file list."""
    from llmci.registry.manifest import FileEntry

    data["digest"] = content_digest([FileEntry.model_construct(**f) for f in data["files"]])
    data["size"] = sum(f["size"] for f in data["files"])


def _set(path: str, key: str, value):
    def change(data: dict) -> None:
        entry(data, path)[key] = value
        redigest(data)

    return change


def _add(item: dict):
    def change(data: dict) -> None:
        data["files"].append(item)
        redigest(data)

    return change


GOOD = "a" * 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("config.json", "sha256", "../../../../etc/hostname"), "files[0].sha256: '../../../../etc/hostname'"),
        (_set("config.json", "sha256", ""), "files[0].sha256: '' is not 64 lowercase hex digits"),
        (_set("config.json", "sha256", "A" * 64), "is not 64 lowercase hex digits"),
        (_set("config.json", "size", -1), "files[0].size: must be >= 0"),
        (_set("config.json", "path", "../outside.json"), "files[0].path: '../outside.json' is not a relative path"),
        (_set("config.json", "path", "/etc/passwd"), "files[0].path: '/etc/passwd' is not a relative path"),
        (_set("config.json", "path", "a//b"), "files[0].path: 'a//b' is not a relative path"),
        (_add({"path": "config.json", "sha256": GOOD, "size": 1}), "'config.json' is listed twice"),
        (_add({"path": "config.json/inner", "sha256": GOOD, "size": 1}), "'config.json' is both a file and a folder"),
        (lambda d: d.update(digest="sha256:" + GOOD), "the digest does not match its file list"),
        (lambda d: d.update(size=d["size"] + 1), "is not the sum of its files' sizes"),
        (lambda d: d.update(version=2), "it says it is qa@2"),
        (lambda d: d.pop("files"), "files: field required"),
    ],
    ids=[
        "sha-path",
        "sha-empty",
        "sha-upper",
        "size-negative",
        "path-dotdot",
        "path-absolute",
        "path-empty-part",
        "path-duplicate",
        "path-file-and-folder",
        "digest-claimed",
        "size-total",
        "version-mismatch",
        "files-missing",
    ],
)
def test_an_invalid_manifest_is_one_integrity_error_naming_the_version(
    registry: Registry, tmp_path: Path, change, message: str
) -> None:
    registry.publish(make_model(tmp_path / "m"), "qa")
    tamper(registry, 1, change)
    for use in (lambda: registry.resolve("qa@1"), lambda: registry.pull("qa@1", tmp_path / "out")):
        with pytest.raises(IntegrityError) as caught:
            use()
        text = str(caught.value)
        assert text.startswith("qa@1: manifest is invalid: ") and message.lower() in text.lower(), text
        assert "\n" not in text
    assert not (tmp_path / "out").exists()


def test_a_version_claiming_another_versions_digest_is_refused(registry: Registry, tmp_path: Path) -> None:
    """A v2 claiming v1's digest would share v1's identity (the eval cache keys on it)."""
    registry.publish(make_model(tmp_path / "m1", "a"), "qa")
    registry.publish(make_model(tmp_path / "m2", "b"), "qa")
    v1_digest = registry.resolve("qa@1").digest
    tamper(registry, 2, lambda d: d.update(digest=v1_digest))
    with pytest.raises(IntegrityError, match="qa@2: manifest is invalid: the digest does not match its file list"):
        registry.resolve("qa@2")


def test_an_invalid_manifest_through_the_cli_is_exit_6_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: file://reg\n")
    make_model(tmp_path / "model")
    assert run_llmci("registry", "publish", "model", "--name", "qa", cwd=tmp_path).code == 0
    manifest = tmp_path / "reg" / "qa" / "versions" / "1.json"
    data = json.loads(manifest.read_text())
    entry(data, "config.json")["sha256"] = "../../../../etc/hostname"
    manifest.write_text(json.dumps(data))
    for args in (["pull", "qa@1", "out"], ["show", "qa@1"]):
        result = run_llmci("registry", *args, cwd=tmp_path)
        assert result.code == ExitCode.INTEGRITY, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "qa@1: manifest is invalid: files[0].sha256: '../../../../etc/hostname'" in result.stderr
    assert not (tmp_path / "out").exists()


def _limited(megabytes: int):
    """preexec_fn: files this process writes stop at `megabytes` MiB (EFBIG, SIGXFSZ ignored)."""

    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (megabytes << 20, megabytes << 20))

    return limit


def test_a_download_stops_at_the_size_the_manifest_declares(tmp_path: Path, registry_uri: str, request) -> None:
    """A manifest that under-states a size must not stream without limit: the pull stops and says so.

    The pull runs with files limited to 1 MiB: copying the 3 MiB blob to its end would fail
    writing (exit 7); stopping at the declared size fails as corrupted (exit 6).
    """
    (tmp_path / "llmci.yaml").write_text(f"registry:\n  uri: {registry_uri}\n")
    env = {}
    if registry_uri.startswith("s3://"):
        env = {**FAKE_AWS, "AWS_ENDPOINT_URL": request.getfixturevalue("s3_endpoint")}
    make_model(tmp_path / "model", big=3 << 20)
    assert run_llmci("registry", "publish", "model", "--name", "qa", cwd=tmp_path, env=env).code == 0
    from llmci.registry import open_store

    registry = Registry(open_store(registry_uri, root=tmp_path), progress=False)
    tamper(registry, 1, _set("model.safetensors", "size", 10))
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "llmci", "registry", "pull", "qa@1", "out"],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}, **env},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited(1),
    )
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    assert "qa@1: model.safetensors is corrupted: it is larger than the 10 bytes the manifest says" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out.*")) == []
