"""The Ray Jobs API path against a real Ray head started here (`ray start --head`, token auth on)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_llmci

pytestmark = pytest.mark.slow


def submission_ids(address: str, env: dict[str, str]) -> list[str]:
    """The cluster's job submission ids, asked in a fresh process (Ray reads its auth settings at import)."""
    code = (
        "import json, sys\n"
        "from ray.job_submission import JobSubmissionClient\n"
        "print(json.dumps([j.submission_id for j in JobSubmissionClient(sys.argv[1]).list_jobs()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, address], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-500:])
    return json.loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A local Ray head with the dashboard (Jobs API) on a free port; stopped afterwards."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    # The cluster's `python` is this environment, as a cluster image would have llmci's dependencies.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dashboard = free_port()
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            f"--port={free_port()}",
            f"--dashboard-port={dashboard}",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--disable-usage-stats",
            "--block",
        ],
        cwd=tmp_path_factory.mktemp("head"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": env["RAY_AUTH_TOKEN"]}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                submission_ids(address, auth)
                break
            except RuntimeError:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(1)
        yield address, auth
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block stops the head's processes on SIGTERM
        head.wait(timeout=60)


def test_train_through_the_jobs_api_and_attach_on_rerun(ray_head, train_project) -> None:
    address, env = ray_head
    root = train_project()
    actions = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(root / "outputs"),
        "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
    }
    # A job's cold start on 2 cores (runtime env, torch import, worker group) alone takes 40-60 s.
    first = run_llmci("train", "--address", address, "--out", "run.json", cwd=root, env={**env, **actions}, timeout=300)
    assert first.code == 0, first.stderr[-3000:]
    assert first.stdout.splitlines()[-1] == "ticket-router@1"
    outputs = (root / "outputs").read_text()
    assert "model<<" in outputs and "\nticket-router\n" in outputs and "version<<" in outputs and "\n1\n" in outputs
    summary = (root / "summary.md").read_text()
    assert summary.startswith("### :rocket: llmci train: published `ticket-router@1` (candidate)")
    assert "xychart-beta" in summary and "run.loss.png" in summary
    assert (root / "run.loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "submitted Ray job llmci-train-ticket-router-" in first.stderr
    manifest = json.loads((root / "run.json").read_text())
    assert manifest["ref"] == "ticket-router@1" and manifest["steps"] == 6
    assert manifest["ray"]["submission_id"].startswith("llmci-train-ticket-router-")
    assert (root / ".llmci" / "registry" / "ticket-router" / "versions" / "1.json").exists()
    # In Actions the token is masked first (::add-mask::), so the runner hides it in every later line.
    assert first.stdout.startswith(f"::add-mask::{env['RAY_AUTH_TOKEN']}\n")
    assert env["RAY_AUTH_TOKEN"] not in first.stdout.split("\n", 1)[1] + first.stderr

    again = run_llmci("train", "--address", address, cwd=root, env=env)  # a re-run of the same workflow
    assert env["RAY_AUTH_TOKEN"] not in again.stdout + again.stderr
    assert again.code == 0, again.stderr[-3000:]
    assert again.stdout == "ticket-router@1\n"
    assert f"attached to Ray job {manifest['ray']['submission_id']} (succeeded)" in again.stderr
    assert [i for i in submission_ids(address, env) if i.startswith("llmci-train-")] == [
        manifest["ray"]["submission_id"]
    ]


def test_an_unreachable_jobs_api_is_a_cluster_error(train_project) -> None:
    root = train_project()
    address = f"http://ci-user:hunter2@127.0.0.1:{free_port()}"  # nothing listens there
    result = run_llmci("train", "--address", address, cwd=root, timeout=120)
    assert result.code == 10, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("llmci: error:")]
    assert len(errors) == 1 and errors[0].startswith("llmci: error: Ray Jobs API at http://127.0.0.1:")
    assert "hunter2" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_wrong_ray_token_is_a_cluster_error(ray_head, train_project) -> None:
    address, env = ray_head
    root = train_project()
    result = run_llmci("train", "--address", address, cwd=root, env={**env, "RAY_AUTH_TOKEN": "0" * 32}, timeout=120)
    assert result.code == 10, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("llmci: error: Ray Jobs API at ")]
    assert "Traceback" not in result.stderr
