"""Training on embedded Ray (one Ray for the session), exported, published and checked."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from llmci.config import load_config
from llmci.registry import open_registry
from llmci.train.runner import export_model, plan_training, publish_run, run_training
from tests.train.conftest import QUICKSTART

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def accuracy(model_dir: Path, project: Path, limit: int = 40) -> float:
    """Greedy exact-match accuracy of the label on the quickstart eval set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmci.templating import make_environment

    template = make_environment("prompt", search_path=[str(project / "prompts")]).get_template("classify.j2")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = [json.loads(line) for line in (project / "data" / "eval.jsonl").read_text().splitlines()][:limit]
    correct = 0
    for row in rows:
        ids = tokenizer(template.render(**row["vars"]), return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        correct += tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == row["completion"]
    return correct / len(rows)


def test_fine_tuned_quickstart_model_beats_its_base(train_project) -> None:
    """With the quickstart's own hyperparameters, as the demo runs it."""
    import yaml

    quickstart = yaml.safe_load((QUICKSTART / "llmci.yaml").read_text())["train"]
    root = train_project(hyperparameters=quickstart["hyperparameters"])
    loaded = load_config(root / "llmci.yaml")
    registry = open_registry(loaded)
    plan = plan_training(loaded, registry)
    run = publish_run(run_training(plan), registry)
    assert [h["step"] for h in run.history] == list(range(1, plan.total_steps + 1))
    assert run.history[-1]["loss"] < run.history[0]["loss"] / 10
    base, tuned = accuracy(Path(plan.base.path), root), accuracy(run.model_dir, root)
    assert base <= 0.1 and tuned >= 0.8, (base, tuned)

    manifest = registry.resolve(run.manifest["ref"])
    assert manifest.ref == "ticket-router@1" and registry.status("ticket-router", 1).status == "candidate"
    lineage = manifest.lineage.model_dump()
    assert lineage["dataset_sha256"] == plan.dataset.sha256 and lineage["config_digest"] == plan.config_digest
    assert lineage["base_model"] == plan.base.reference and lineage["weights"] == "full"
    assert lineage["ray_job_id"] and lineage["training_run_id"] == run.run_name
    assert lineage["hyperparameters"]["epochs"] == quickstart["hyperparameters"]["epochs"]
    assert manifest.metrics["eval_loss"] == pytest.approx(run.eval_loss)


def test_lora_publishes_merged_weights_or_the_adapter(train_project, tmp_path: Path) -> None:
    root = train_project(method="lora", lora={"r": 4, "alpha": 8, "target_modules": ["c_attn"]})
    loaded = load_config(root / "llmci.yaml")
    plan = plan_training(loaded)
    run = run_training(plan, work_dir=tmp_path / "merged")
    assert (run.model_dir / ".llmci-weights").read_text().strip() == "merged-lora"
    assert (run.model_dir / "model.safetensors").exists() and not (run.model_dir / "adapter_config.json").exists()

    from llmci.train.loop import STATE_FILE, read_train_state

    storage = root / ".llmci" / "ray" / run.run_name
    latest = max(path for path in storage.glob("checkpoint_*") if path.is_dir())
    state = read_train_state(latest / STATE_FILE)
    assert all("lora_" in key for key in state["model"])  # checkpoints hold the adapter only
    plan.config = plan.config.model_copy(update={"lora": plan.config.lora.model_copy(update={"merge": False})})
    assert export_model(plan, state["model"], tmp_path / "adapter") == "lora-adapter"
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == plan.base.reference


def _train_workers() -> list[int]:
    import psutil

    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("RayTrainWorker" in part for part in (p.info["cmdline"] or []))
    ]


def test_a_killed_worker_is_replaced_and_training_finishes_its_steps(train_project) -> None:
    root = train_project(
        scaling={"num_workers": 2},
        max_failures=1,
        checkpoints={"num_to_keep": 2, "every_steps": 10},
        log_every_steps=10,
        hyperparameters={"epochs": 10, "batch_size": 8, "max_steps": 120, "learning_rate": 0.003},
    )
    plan = plan_training(load_config(root / "llmci.yaml"))
    earlier = set(_train_workers())  # workers of earlier runs may still be exiting: not ours
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(run=run_training(plan)))
    thread.start()
    storage = root / ".llmci" / "ray"
    deadline = time.monotonic() + 120
    while not [p for p in storage.glob("*/checkpoint_*") if p.is_dir()] and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = sorted(set(_train_workers()) - earlier)
    assert len(workers) == 2, f"two training workers should be running, found {workers}"
    os.kill(workers[-1], signal.SIGKILL)
    thread.join(timeout=300)
    run = outcome["run"]
    assert [h["step"] for h in run.history] == list(range(1, plan.total_steps + 1))
    assert workers[-1] not in _train_workers()


def test_a_run_that_fails_in_ray_train_has_its_own_exit_code(train_project) -> None:
    """The worker cannot build the model (no such LoRA module): Ray Train fails the run; llmci says so, exit 9."""
    from llmci.errors import ExitCode, TrainingError

    root = train_project(method="lora", lora={"target_modules": ["no_such_module"]})
    plan = plan_training(load_config(root / "llmci.yaml"))
    with pytest.raises(TrainingError) as failed:
        run_training(plan)
    assert failed.value.exit_code == ExitCode.TRAINING == 9
    message = str(failed.value)
    assert message.startswith("training ticket-router-") and "failed" in message and "\n" not in message
