"""A project with the quickstart's suite, versions of the tiny model in its registry, and llmci's local Ray head.

The head is the one `llmci deploy` starts by itself (the embedded default):
started by the first deploy of this package's tests, stopped after its last
(not at the session's end: the train tests start heads of their own). Each test
deploys to its own environment, so the tests share the head and not state.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import QUICKSTART, run_llmci

ENVIRONMENTS = {
    # Canary under load, no-op, rollback on demand.
    "staging": {"canary": [50, 100], "step_seconds": 4},
    # A version that cannot start.
    "broken": {"canary": [50, 100], "step_seconds": 2},
    # p95 must stay under 1 ms: any version under load breaches it.
    "gated": {"canary": [25, 100], "step_seconds": 20, "gates": {"max_p95_ms": 1, "min_requests": 10}},
    # Half the smoke cases must pass: the untrained model answers none.
    "smoked": {"smoke": {"suite": "routing", "max_cases": 6, "min_pass_rate": 0.5}},
    # GitHub deployments.
    "github": {"canary": [100], "step_seconds": 1},
    # A deploy killed half-way through its canary.
    "killed": {"canary": [50, 100], "step_seconds": 60},
    # A shadow version: copies of the traffic, answers unseen.
    "shadow": {"canary": [100], "step_seconds": 1},
    # Request records, metrics and `llmci monitor check` on live traffic.
    "watched": {"canary": [100], "step_seconds": 1},
}
#: Records flushed every second (the tests wait for them), prompts kept in full (the sample command needs them).
MONITOR = {
    "record": {"flush_seconds": 1, "prompts": "full"},
    "bucket": "1m",
    "min_requests": 5,
    "rules": {"error_rate": {"warning": 0.01, "critical": 0.5}, "latency_p95_ms": {"critical": 60000}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Project:
    def __init__(self, root: Path, base_model: Path, http_port: int) -> None:
        self.root = root
        self.base_model = base_model
        self.http_port = http_port
        self.published = 0

    def url(self, env: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/{env}/v1"

    def publish(self, *, approve: bool = True, corrupt: bool = False) -> str:
        """The tiny model as a new version (a marker file makes each one distinct content)."""
        from llmci.config import load_config
        from llmci.registry import open_registry
        from llmci.serve.generator import PROMPT_FILE
        from llmci.templating import bundle_template

        self.published += 1
        folder = self.root / "versions" / str(self.published)
        shutil.copytree(self.base_model, folder)
        bundle = bundle_template(self.root, "prompts/classify.j2")
        (folder / PROMPT_FILE).write_text(json.dumps(bundle))
        (folder / "marker.txt").write_text(f"{self.published}\n")
        if corrupt:  # a truncated weights file: the replica cannot load it
            weights = folder / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:1000])
        registry = open_registry(load_config(self.root / "llmci.yaml"))
        manifest = registry.publish(folder, "ticket-router").manifest
        if approve:
            registry.approve(manifest.ref, by="reviewer", note="tests")
        return manifest.ref

    def deploy(self, *args: str, env: dict[str, str] | None = None):
        return run_llmci("deploy", *args, cwd=self.root, env=env, timeout=600)


@pytest.fixture(scope="package")
def project(tmp_path_factory: pytest.TempPathFactory, base_model: Path) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("deploy")
    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, root / name)
    config = yaml.safe_load((QUICKSTART / "llmci.yaml").read_text())
    port = free_port()
    config = {
        "registry": {"uri": "file://.llmci/registry"},
        "eval": config["eval"],
        # A quarter CPU per replica: every test's environment stays up on the module's one head.
        "deploy": {
            "environments": {
                name: {"http_port": port, "ray_actor_options": {"num_cpus": 0.25}, "start_timeout_s": 180, **env}
                for name, env in ENVIRONMENTS.items()
            }
        },
        "monitor": MONITOR,
    }
    (root / "llmci.yaml").write_text(yaml.safe_dump(config))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    yield Project(root, base_model, port)
    from llmci.deploy import local_head

    local_head.stop(root)


class Load:
    """Requests at a steady rate from a background thread, every answer recorded (status, version)."""

    def __init__(self, url: str, *, rate: float = 20.0, user_header: bool = False) -> None:
        self.url = f"{url}/completions"
        self.interval = 1.0 / rate
        self.answers: list[tuple[int, str | None, float]] = []
        self.user_header = user_header
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(4)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, index: int) -> None:
        body = {"model": "ticket-router", "vars": {"ticket": "I was charged twice", "labels": ["billing", "bug"]}}
        with httpx.Client(timeout=30) as client:
            sent = 0
            while not self._stop.is_set():
                started = time.perf_counter()
                headers = {"x-llmci-user": f"user-{index}-{sent % 50}"} if self.user_header else {}
                try:
                    response = client.post(self.url, json={**body, "max_tokens": 2}, headers=headers)
                    answer = (response.status_code, response.headers.get("x-llmci-model-version"))
                except httpx.HTTPError:
                    answer = (0, None)
                self.answers.append((*answer, time.perf_counter() - started))
                sent += 1
                time.sleep(max(0.0, self.interval * len(self._threads) - (time.perf_counter() - started)))

    def statuses(self) -> Counter:
        return Counter(status for status, _, _ in self.answers)

    def versions(self) -> Counter:
        return Counter(version for _, version, _ in self.answers)
