"""Failures a user meets are one line with an exit code, and leave nothing half-done behind.

A full disk during pull or publish, a manifest that is not JSON, two jobs
pulling the same cached version at once, a SIGTERM in the middle of a pull;
and the model cache: where it lives, and that a cached folder is checked
against its manifest before it is used.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmci.errors import ExitCode
from llmci.registry import open_store, pull_cached
from llmci.registry.versions import PULLED_MANIFEST, Registry
from tests.conftest import run_llmci
from tests.registry.conftest import FAKE_AWS, make_model
from tests.registry.s3_proxy import s3_proxy


def clean_environ(env: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}, **env}


def run_limited(args: list[str], cwd: Path, env: dict[str, str], megabytes: int) -> subprocess.CompletedProcess:
    """`llmci ARGS` whose files stop at `megabytes` MiB: writing more fails with EFBIG (SIGXFSZ ignored)."""

    def limit() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (megabytes << 20, megabytes << 20))

    return subprocess.run(
        [sys.executable, "-m", "llmci", *args],
        cwd=cwd,
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )


# -- a full disk --------------------------------------------------------------------------------


def test_a_full_disk_during_pull_is_a_storage_error_naming_the_file(project) -> None:
    root, env = project
    make_model(root / "model", big=3 << 20)
    assert run_llmci("registry", "publish", "model", "--name", "qa", cwd=root, env=env).code == 0
    proc = run_limited(["registry", "pull", "qa@1", "out"], root, env, megabytes=1)
    assert proc.returncode == ExitCode.STORAGE, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "writing out/model.safetensors" in proc.stderr and "file too large" in proc.stderr
    assert not (root / "out").exists() and list(root.glob(".out.*")) == []


def test_a_full_disk_during_publish_to_a_folder_is_a_storage_error_and_publishes_nothing(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: file://reg\n")
    make_model(tmp_path / "model", big=3 << 20)
    proc = run_limited(["registry", "publish", "model", "--name", "qa"], tmp_path, {}, megabytes=1)
    assert proc.returncode == ExitCode.STORAGE, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "writing reg/_blobs/sha256/" in proc.stderr and "file too large" in proc.stderr
    assert not (tmp_path / "reg" / "qa").exists()
    assert [p for p in (tmp_path / "reg").rglob(".*")] == []  # no temporary file left (whole blobs may stay)


# -- a corrupted manifest -------------------------------------------------------------------------


def test_a_manifest_that_is_not_json_is_named_and_the_rest_still_listed(project) -> None:
    root, env = project

    def llmci(*args: str):
        return run_llmci("registry", *args, cwd=root, env=env)

    for seed in ("a", "b", "c"):
        make_model(root / f"model-{seed}", seed)
        assert llmci("publish", f"model-{seed}", "--name", "qa").code == 0
    uri = (root / "llmci.yaml").read_text().split("uri: ")[1].strip()
    Registry(open_store(uri, root=root), progress=False).store.put("qa/versions/2.json", b'{"schema": "llmci.mo')

    shown = llmci("show", "qa@2")
    assert shown.code == ExitCode.INTEGRITY and len(shown.stderr.strip().splitlines()) == 1
    assert "qa@2: manifest is invalid: not JSON" in shown.stderr

    listed = llmci("list", "qa")
    rows = listed.stdout.splitlines()
    assert [row.split()[:2] for row in rows[1:]] == [["1", "candidate"], ["2", "INVALID"], ["3", "candidate"]]
    assert listed.code == ExitCode.INTEGRITY and len(listed.stderr.strip().splitlines()) == 1
    assert "qa@2: manifest is invalid: not JSON" in listed.stderr
    assert llmci("list").code == 0
    assert llmci("pull", "qa@3", "out").code == 0


# -- the model cache ----------------------------------------------------------------------------


def test_pull_cached_lives_in_the_cache_dir_and_re_pulls_a_folder_that_no_longer_matches(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_model(tmp_path / "m")
    registry.publish(source, "qa")
    monkeypatch.setenv("LLMCI_CACHE_DIR", str(tmp_path / "cache"))
    manifest, folder = pull_cached(registry, "qa@1", tmp_path / "project")
    assert folder.parent == tmp_path / "cache" / "models"
    assert not (tmp_path / "project" / ".llmci").exists()

    (folder / "config.json").write_text('{"model_type": "evil"}\n')  # edited in place
    again_manifest, again = pull_cached(registry, "qa@1", tmp_path / "project")
    assert again == folder and (again / "config.json").read_bytes() == (source / "config.json").read_bytes()

    (folder / "added.py").write_text("import os\n")  # a file the version does not have
    pull_cached(registry, "qa@1", tmp_path / "project")
    assert not (folder / "added.py").exists()

    (folder / "tokenizer" / "vocab.json").unlink()  # a file missing
    pull_cached(registry, "qa@1", tmp_path / "project")
    assert (folder / "tokenizer" / "vocab.json").read_bytes() == (source / "tokenizer" / "vocab.json").read_bytes()

    explicit = tmp_path / "explicit-cache"
    _, elsewhere = pull_cached(registry, "qa@1", tmp_path / "project", cache=explicit)
    assert elsewhere.parent == explicit / "models" and (elsewhere / PULLED_MANIFEST).is_file()


def test_the_caches_are_outside_the_checkout_in_actions(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "llmci.yaml").write_text("registry:\n  uri: file://reg\n")
    make_model(root / "model")
    runner_temp = tmp_path / "runner-temp"
    env = {"GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(runner_temp)}
    assert run_llmci("registry", "publish", "model", "--name", "qa", cwd=root, env=env).code == 0
    assert (runner_temp / "llmci-cache" / "file-hashes.json").is_file()
    assert not (root / ".llmci").exists()


def pull_cached_worker(uri: str, root: str, barrier, results) -> None:
    from tests.registry.test_concurrency import BarrierStore

    registry = Registry(BarrierStore(open_store(uri), barrier, "download", "_blobs/"), progress=False)
    try:
        _, folder = pull_cached(registry, "qa@1", Path(root), cache=Path(root) / "cache")
        results.put(str(folder))
    except Exception as exc:  # what the loser of the race saw
        results.put(f"failed: {exc!r}")


@pytest.mark.slow
def test_two_jobs_pulling_the_same_cached_version_at_once_both_get_it(tmp_path: Path) -> None:
    uri = (tmp_path / "registry").as_uri()
    source = make_model(tmp_path / "m", big=1 << 20)
    Registry(open_store(uri), progress=False).publish(source, "qa")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    root = tmp_path / "project"
    processes = [context.Process(target=pull_cached_worker, args=(uri, str(root), barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    folders = {results.get(timeout=120) for _ in processes}
    for process in processes:
        process.join(timeout=60)
    assert len(folders) == 1, folders
    folder = Path(folders.pop())
    assert (folder / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no staging folder left


# -- SIGTERM in the middle of a pull ------------------------------------------------------------


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def partial_bytes(root: Path) -> int:
    return sum(p.stat().st_size for staging in root.glob(".out.*") for p in staging.rglob("*") if p.is_file())


def terminate_mid_pull(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmci", "registry", "pull", "qa@1", "out"],
        cwd=root,
        env=clean_environ(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: partial_bytes(root) > 0)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_sigterm_during_a_pull_from_a_folder_leaves_nothing_beside_dest(tmp_path: Path) -> None:
    """The weights' blob is a FIFO this test feeds: the pull is mid-download for as long as the test wants."""
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: file://reg\n")
    registry = Registry(open_store((tmp_path / "reg").as_uri()), progress=False)
    manifest = registry.publish(make_model(tmp_path / "model", big=1 << 20), "qa").manifest
    weights = next(f for f in manifest.files if f.path == "model.safetensors")
    blob = tmp_path / "reg" / registry._blob_key(weights.sha256)
    blob.unlink()
    os.mkfifo(blob)
    feeder = []

    def feed() -> None:
        handle = open(blob, "wb")  # noqa: SIM115 - opens when the pull opens the other end
        feeder.append(handle)
        handle.write(b"\0" * 32768)  # less than a pipe holds: never blocks
        handle.flush()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        result = terminate_mid_pull(tmp_path, {})
    finally:
        thread.join(timeout=10)
        for handle in feeder:
            with contextlib.suppress(BrokenPipeError):  # the pull is gone: its end of the FIFO is closed
                handle.close()
    assert result.returncode == 143, result.stderr
    assert "terminated (SIGTERM) while pulling qa@1" in result.stderr
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out*")) == []


def test_sigterm_during_a_pull_from_s3_leaves_nothing_beside_dest(
    tmp_path: Path, bucket: str, s3_endpoint: str
) -> None:
    registry = Registry(open_store(f"s3://{bucket}/models"), progress=False)
    registry.publish(make_model(tmp_path / "model", big=20 << 20), "qa")
    (tmp_path / "llmci.yaml").write_text(f"registry:\n  uri: s3://{bucket}/models\n")
    with s3_proxy(s3_endpoint, bytes_per_second=1 << 20) as slow:
        result = terminate_mid_pull(tmp_path, {**FAKE_AWS, "AWS_ENDPOINT_URL": slow})
    assert result.returncode == 143, result.stderr
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out*")) == []
