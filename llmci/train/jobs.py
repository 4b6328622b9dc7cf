"""Training on a Ray cluster through the Ray Jobs API (`http://head:8265`).

The project folder travels as the job's working_dir and this llmci as a
py_module, so the cluster runs the same code. The submission id is derived
from the git commit, the config digest and the dataset's sha256: a re-run of the same workflow
attaches to the job already running (or already finished) instead of starting
a second one; after a failed or stopped job, the next re-run submits `-2`,
`-3`, ... The job publishes to the registry itself (so the registry must be
reachable from the cluster: s3://, or a file:// path on a shared filesystem)
and ends its log with the run manifest, which is how it comes back here.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from llmci import gha
from llmci.config import LoadedConfig
from llmci.errors import ClusterError, TrainingError, first_line
from llmci.redact import redact_userinfo, without_userinfo
from llmci.registry.manifest import lineage_from_environment
from llmci.train.runner import TrainPlan

#: The job's last log line carries the run manifest after this marker.
MANIFEST_MARKER = "LLMCI_RUN_MANIFEST "
#: Not uploaded with the working_dir: caches, local registries, checkpoints, environments.
EXCLUDES = [".git", ".venv", ".llmci/cache", ".llmci/ray", ".llmci/runs", ".llmci/registry", "__pycache__"]
_ACTIVE_OR_DONE = {"PENDING", "RUNNING", "SUCCEEDED"}


def submission_id(plan: TrainPlan) -> str:
    """Same commit, config and data: the same job. (The dataset counts too: CI may generate it.)"""
    commit = lineage_from_environment(plan.root).git_commit or "no-git"
    digest = hashlib.sha256(f"{commit}\n{plan.config_digest}\n{plan.dataset.sha256}".encode()).hexdigest()[:16]
    return f"llmci-train-{plan.config.name}-{digest}"


def submit_and_follow(
    loaded: LoadedConfig, plan: TrainPlan, address: str, *, registry_uri: str | None = None, poll_s: float = 1.0
) -> dict[str, Any]:
    """Submit (or attach to) the training job, stream its logs, and return its run manifest."""
    import os

    from ray.job_submission import JobSubmissionClient

    if os.environ.get("RAY_AUTH_TOKEN"):
        gha.add_mask(os.environ["RAY_AUTH_TOKEN"])
    try:
        client = JobSubmissionClient(address)
        job_id = _find_or_submit(client, loaded, plan, registry_uri)
        logs, status = _follow(client, job_id, poll_s)
    except TrainingError:
        raise
    except Exception as exc:  # connection refused, wrong version, missing or wrong token: Ray says which
        detail = redact_userinfo(first_line(exc))
        raise ClusterError(f"Ray Jobs API at {without_userinfo(address)}: {detail}") from None
    if status != "SUCCEEDED":
        raise TrainingError(f"Ray job {job_id} ended {status}", hint=f"ray job logs {job_id}")
    for line in reversed(logs.splitlines()):
        if line.startswith(MANIFEST_MARKER):
            manifest = json.loads(line[len(MANIFEST_MARKER) :])
            manifest["ray"]["submission_id"] = job_id
            return manifest
    raise TrainingError(f"Ray job {job_id} succeeded but its log has no run manifest")


def _find_or_submit(client, loaded: LoadedConfig, plan: TrainPlan, registry_uri: str | None) -> str:
    base = submission_id(plan)
    for attempt in range(1, 100):
        job_id = base if attempt == 1 else f"{base}-{attempt}"
        status = _status(client, job_id)
        if status is None:
            _submit(
                client,
                entrypoint=_entrypoint(loaded, plan, registry_uri),
                submission_id=job_id,
                runtime_env={
                    "working_dir": str(plan.root),
                    "excludes": EXCLUDES,
                    "py_modules": [str(Path(__file__).resolve().parents[1])],
                },
            )
            print(f"submitted Ray job {job_id}", file=sys.stderr, flush=True)
            return job_id
        if status in _ACTIVE_OR_DONE:
            print(f"attached to Ray job {job_id} ({status.lower()})", file=sys.stderr, flush=True)
            return job_id
    raise TrainingError(f"too many failed attempts of {base}")


#: How long a head that is still starting its job agent gets ("No available agent to submit job").
AGENT_WAIT_S = 90.0


def _submit(client, **job: object) -> None:
    """Submit, waiting out a cluster whose job agent is not up yet (a head that just started)."""
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(**job)
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(2)


def _name(status: object) -> str:
    """JobStatus.RUNNING (or "RUNNING") -> "RUNNING"."""
    return str(status).rsplit(".", 1)[-1]


def _status(client, job_id: str) -> str | None:
    try:
        return _name(client.get_job_info(job_id).status)
    except RuntimeError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _entrypoint(loaded: LoadedConfig, plan: TrainPlan, registry_uri: str | None) -> str:
    import shlex

    uri = registry_uri or loaded.config.registry.uri
    if uri.startswith("file://") and not Path(uri.removeprefix("file://")).is_absolute():
        # Relative to llmci.yaml here; the job runs in a copy, so give it the real place.
        uri = (plan.root / uri.removeprefix("file://")).resolve().as_uri()
    config = loaded.path.name if loaded.path else "llmci.yaml"
    args = ["python", "-m", "llmci", "train", "--config", config, "--registry", uri, "--manifest-to-log"]
    return " ".join(shlex.quote(arg) for arg in args)


def _follow(client, job_id: str, poll_s: float) -> tuple[str, str]:
    """Print the job's log as it grows until the job ends; return the whole log and the final status.

    The log holds text llmci did not write (dataset rows in errors, library output):
    in Actions none of it may act as a workflow command.
    """
    shown = 0
    with gha.commands_stopped(sys.stderr):
        while True:
            status = _name(client.get_job_status(job_id))
            logs = client.get_job_logs(job_id)
            if len(logs) > shown:
                sys.stderr.write(logs[shown:])
                sys.stderr.flush()
                shown = len(logs)
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                return logs, status
            time.sleep(poll_s)
