"""A stage serves approved versions only: a rejected version in a stage resolves to a clear error,
show and list say so, and a reject racing a promote never ends with the rejected version promoted."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from llmci.errors import ConflictError, ExitCode, NotFoundError
from llmci.registry import open_store
from llmci.registry.versions import Registry
from tests.conftest import run_llmci
from tests.registry.conftest import make_model


def two_approved_versions(registry: Registry, tmp_path: Path) -> None:
    for seed, version in (("a", 1), ("b", 2)):
        registry.publish(make_model(tmp_path / f"m{seed}", seed), "qa")
        registry.approve(f"qa@{version}", by="alice", note="ok")


def test_a_stage_pointing_at_a_rejected_version_resolves_to_an_error_saying_who_and_what_to_do(
    registry: Registry, tmp_path: Path
) -> None:
    two_approved_versions(registry, tmp_path)
    registry.promote("qa@2", "production", by="ci")
    registry.reject("qa@2", by="bob", note="leaks PII")
    rejected_at = registry.status("qa", 2).history[-1].at
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("qa@production")
    assert str(caught.value) == (
        f"qa@production: qa@2 was rejected by bob at {rejected_at} ('leaks PII'): nothing is served from production; "
        "promote an approved version: llmci registry promote qa@VERSION --stage production"
    )
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    assert registry.resolve("qa@2").version == 2  # a version asked for by number still resolves (to inspect it)
    with pytest.raises(NotFoundError, match="qa@2 was rejected by bob"):
        registry.pull("qa@production", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    registry.promote("qa@1", "production", by="ci", note="roll back")
    assert registry.resolve("qa@production").version == 1


def test_the_cli_says_a_stage_is_not_serving_in_pull_show_list_and_reject(project) -> None:
    root, env = project

    def llmci(*args: str):
        return run_llmci("registry", *args, cwd=root, env=env)

    for seed in ("a", "b"):
        make_model(root / f"model-{seed}", seed)
        llmci("publish", f"model-{seed}", "--name", "qa")
    llmci("approve", "qa@1", "--by", "alice", "--note", "ok")
    llmci("approve", "qa@2", "--by", "alice", "--note", "ok")
    llmci("promote", "qa@1", "--stage", "staging", "--by", "ci")
    llmci("promote", "qa@2", "--stage", "production", "--by", "ci")

    rejected = llmci("reject", "qa@2", "--by", "bob", "--note", "leaks PII")
    assert rejected.code == 0 and rejected.stdout.startswith("qa@2: rejected\n")
    assert "qa@production -> 2 is not served any more; promote another version" in rejected.stderr

    pulled = llmci("pull", "qa@production", "out")
    assert pulled.code == ExitCode.NOT_FOUND and len(pulled.stderr.strip().splitlines()) == 1
    assert "qa@production: qa@2 was rejected by bob at " in pulled.stderr
    assert "llmci registry promote qa@VERSION --stage production" in pulled.stderr

    shown = llmci("show", "qa@production")  # shows what the stage points at, and why nothing is served
    assert shown.code == 0, shown.stderr
    header = shown.stdout.splitlines()[0]
    assert header.startswith("qa@2  rejected  in production (REJECTED by bob at ")
    assert header.endswith(": not serving)")
    shown_json = json.loads(llmci("show", "qa@2", "--json").stdout)
    assert shown_json["stages"] == ["production"] and shown_json["serving"] == []

    models = llmci("list")
    row = next(line for line in models.stdout.splitlines() if line.startswith("qa "))
    assert "1" in row.split()[3] and "2 (REJECTED by bob at " in row and "not serving)" in row
    models_json = json.loads(llmci("list", "--json").stdout)
    assert models_json[0]["staging"] == 1 and models_json[0]["production"] == 2
    assert models_json[0]["serving"] == {"staging": True, "production": False}

    versions = llmci("list", "qa").stdout.splitlines()
    assert "production (REJECTED: not serving)" in next(line for line in versions if line.startswith("2 "))
    assert "staging" in next(line for line in versions if line.startswith("1 "))


# -- a reject racing a promote, in real processes --------------------------------------------


class ScriptedStore:
    """The real store, scripted into the interleaving a real race can produce.

    The first read of a status object waits at `barrier` (both processes have read
    'approved'); with `before_stage_write`, the first write of a stage pointer waits
    until that event is set (the reject has landed).
    """

    def __init__(self, store, barrier, before_stage_write=None) -> None:
        self._store, self._barrier, self._event = store, barrier, before_stage_write
        self._read_status, self._wrote_stage = False, False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def read(self, key, *args, **kwargs):
        try:
            return self._store.read(key, *args, **kwargs)
        finally:
            if "/status/" in key and not self._read_status:
                self._read_status = True
                self._barrier.wait(timeout=60)

    def create(self, key, *args, **kwargs):
        self._before_write(key)
        return self._store.create(key, *args, **kwargs)

    def replace(self, key, *args, **kwargs):
        self._before_write(key)
        return self._store.replace(key, *args, **kwargs)

    def _before_write(self, key: str) -> None:
        if self._event is not None and "/stages/" in key and not self._wrote_stage:
            self._wrote_stage = True
            assert self._event.wait(timeout=60)


def promote_worker(uri: str, barrier, rejected, results) -> None:
    registry = Registry(ScriptedStore(open_store(uri), barrier, rejected), progress=False)
    try:
        registry.promote("qa@2", "production", by="ci")
        results.put(("promoted", ""))
    except ConflictError as exc:
        results.put(("conflict", str(exc)))


def reject_worker(uri: str, barrier, rejected, results) -> None:
    registry = Registry(ScriptedStore(open_store(uri), barrier), progress=False)
    try:
        registry.reject("qa@2", by="bob", note="leaks PII")
        results.put(("rejected", ""))
    finally:
        rejected.set()


@pytest.mark.slow
def test_a_reject_racing_a_promote_never_leaves_the_rejected_version_promoted(
    registry: Registry, registry_uri: str, tmp_path: Path
) -> None:
    two_approved_versions(registry, tmp_path)
    registry.promote("qa@1", "production", by="ci")
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like two CI jobs
    barrier, rejected, results = context.Barrier(2), context.Event(), context.Queue()
    processes = [
        context.Process(target=worker, args=(registry_uri, barrier, rejected, results))
        for worker in (promote_worker, reject_worker)
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert set(outcomes) == {"rejected", "conflict"}, outcomes
    assert "qa@2 was rejected by bob at " in outcomes["conflict"]
    assert "while you were promoting it; qa@production is back at qa@1" in outcomes["conflict"]
    assert registry.resolve("qa@production").version == 1
    history = registry.stage("qa", "production").history
    assert [(e.action, e.before, e.after) for e in history] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("revert", "2", "1"),
    ]
