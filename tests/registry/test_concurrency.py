"""Racing processes: of several promoters exactly one wins; racing publishers get distinct numbers.

Each process uses the real store, wrapped so that it waits at a barrier right
after its first read of the contested key: every process has read the old
state before any of them writes, which is the interleaving a real race gives.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from llmci.errors import ConflictError
from llmci.registry import open_store
from llmci.registry.versions import Registry
from tests.registry.conftest import make_model

N_PROCESSES = 4


class BarrierStore:
    """The real store; the first call of `method` on a key containing `marker` waits at the barrier."""

    def __init__(self, store, barrier, method: str, marker: str) -> None:
        self._store, self._barrier, self._method, self._marker = store, barrier, method, marker
        self._waited = False

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if name != self._method:
            return attribute

        def wrapped(key, *args, **kwargs):
            try:
                return attribute(key, *args, **kwargs)  # a read of a pointer not yet written raises
            finally:
                if self._marker in key and not self._waited:
                    self._waited = True
                    self._barrier.wait(timeout=60)

        return wrapped


def promote_worker(uri: str, version: int, barrier, results) -> None:
    registry = Registry(BarrierStore(open_store(uri), barrier, "read", "/stages/"), progress=False)
    try:
        registry.promote(f"qa@{version}", "production", by=f"worker-{version}")
        results.put(("won", version))
    except ConflictError as exc:
        results.put(("conflict", str(exc)))


def publish_worker(uri: str, folder: str, barrier, results) -> None:
    registry = Registry(BarrierStore(open_store(uri), barrier, "children", "/versions"), progress=False)
    manifest = registry.publish(Path(folder), "qa").manifest
    results.put((manifest.version, manifest.digest))


def run_processes(target, args_per_process) -> list:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, like separate CI jobs
    barrier, results = context.Barrier(len(args_per_process)), context.Queue()
    processes = [context.Process(target=target, args=(*args, barrier, results)) for args in args_per_process]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_of_concurrent_promoters_exactly_one_wins(registry: Registry, registry_uri: str, tmp_path: Path) -> None:
    for seed in range(N_PROCESSES):
        registry.publish(make_model(tmp_path / f"m{seed}", str(seed)), "qa")
        registry.approve(f"qa@{seed + 1}", by="alice", note="ok")
    outcomes = run_processes(promote_worker, [(registry_uri, v) for v in range(1, N_PROCESSES + 1)])
    winners = [version for kind, version in outcomes if kind == "won"]
    conflicts = [message for kind, message in outcomes if kind == "conflict"]
    assert len(winners) == 1 and len(conflicts) == N_PROCESSES - 1
    assert all("qa@production was moved by someone else at the same time" in m for m in conflicts)
    pointer = registry.stage("qa", "production")
    assert pointer.version == winners[0] and len(pointer.history) == 1


@pytest.mark.slow
def test_concurrent_publishers_get_distinct_version_numbers(
    registry: Registry, registry_uri: str, tmp_path: Path
) -> None:
    folders = [str(make_model(tmp_path / f"m{seed}", f"seed{seed}")) for seed in range(N_PROCESSES)]
    outcomes = run_processes(publish_worker, [(registry_uri, folder) for folder in folders])
    assert sorted(version for version, _ in outcomes) == list(range(1, N_PROCESSES + 1))
    for version, digest in outcomes:
        assert registry.manifest("qa", version).digest == digest
