"""Plan, run and publish a fine-tuning run.

`plan_training` does everything that can fail cheaply first: config, base
model (resolved, its tokenizer loaded), dataset (validated line by line,
rendered, tokenized). `run_training` then starts Ray Train and exports the
result; `publish_run` publishes it to the registry as a candidate.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmci.config import LoadedConfig, TrainConfig
from llmci.errors import ClusterError, ConfigError, InputError, TrainingError, first_line
from llmci.fsutil import display_path
from llmci.redact import redact_userinfo, without_userinfo
from llmci.registry import Registry, default_actor, pull_cached
from llmci.registry.manifest import Lineage, lineage_from_environment
from llmci.registry.versions import parse_ref
from llmci.templating import load_template
from llmci.train.dataset import Dataset, Example, load_dataset
from llmci.train.loop import IGNORE, STATE_FILE, read_train_state, steps_per_epoch


@dataclass(frozen=True)
class BaseModelSource:
    """The model training starts from: where to load it and how llmci.yaml named it."""

    path: str  # what from_pretrained is given: a local folder or a hub id
    reference: str  # as written in llmci.yaml, resolved (registry refs get their version)


@dataclass
class TrainPlan:
    config: TrainConfig
    root: Path
    base: BaseModelSource
    dataset: Dataset
    eval_source: str
    train_examples: list[tuple[list[int], list[int]]]
    eval_examples: list[tuple[list[int], list[int]]]
    pad_id: int
    steps_per_epoch: int
    total_steps: int
    config_digest: str
    tokenizer: Any  # the base model's, loaded once: tokenizing here, saved with the exported model

    def describe(self) -> str:
        c, h = self.config, self.config.hyperparameters
        scaling = c.scaling
        return "\n".join(
            [
                f"train {c.name}: {c.method} fine-tuning of {self.base.reference}",
                f"  dataset     {display_path(self.dataset.path)} ({len(self.dataset.examples)} examples, sha256 "
                f"{self.dataset.sha256[:12]}): {len(self.train_examples)} train, {len(self.eval_examples)} eval "
                f"({self.eval_source})",
                f"  steps       {self.total_steps} = {h.epochs} epochs x {self.steps_per_epoch} steps "
                f"(batch {h.batch_size} per worker)" + (f", capped by max_steps {h.max_steps}" if h.max_steps else ""),
                f"  ray         {scaling.num_workers} worker(s), use_gpu={scaling.use_gpu}, "
                f"max_failures={c.max_failures}, checkpoints kept {c.checkpoints.num_to_keep}",
                f"  publish     {c.name} as a candidate; config digest {self.config_digest[:12]}",
            ]
        )

    def loop_config(self) -> dict[str, Any]:
        c, h = self.config, self.config.hyperparameters
        return {
            "base_path": self.base.path,
            "method": c.method,
            "lora": c.lora.model_dump(),
            "seed": h.seed,
            "learning_rate": h.learning_rate,
            "weight_decay": h.weight_decay,
            "batch_size": h.batch_size,
            "train": self.train_examples,
            "eval": self.eval_examples,
            "pad_id": self.pad_id,
            "total_steps": self.total_steps,
            "checkpoint_every": c.checkpoints.every_steps,
            "log_every": c.log_every_steps,
        }


@dataclass
class RunResult:
    plan: TrainPlan
    model_dir: Path
    history: list[dict[str, Any]]
    job_id: str | None
    run_name: str
    startup_s: float
    train_s: float
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"]

    @property
    def eval_loss(self) -> float | None:
        return next((h["eval_loss"] for h in reversed(self.history) if "eval_loss" in h), None)


def train_section(loaded: LoadedConfig) -> TrainConfig:
    if loaded.config.train is None:
        where = loaded.path or "llmci.yaml"
        raise ConfigError(f"{where}: no `train` section", hint="add train: {name, base_model, dataset} to llmci.yaml")
    return loaded.config.train


def resolve_base_model(spec: str, root: Path, registry: Registry | None) -> BaseModelSource:
    """A local folder, `registry:NAME@REF` (pulled once into .llmci/cache/models), or a hub id."""
    if spec.startswith("registry:"):
        if registry is None:
            raise ConfigError(f"train.base_model '{spec}' needs a registry")
        manifest, folder = pull_cached(registry, parse_ref(spec.removeprefix("registry:")), root)
        return BaseModelSource(str(folder), f"registry:{manifest.ref}")
    local = (root / spec).expanduser().resolve()
    if local.is_dir():
        return BaseModelSource(str(local), spec)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise InputError(f"train.base_model: {spec}: no such folder", hint="build it, or name a registry version")
    return BaseModelSource(spec, spec)  # a hub id such as "org/name": from_pretrained downloads it


def plan_training(loaded: LoadedConfig, registry: Registry | None = None) -> TrainPlan:
    config = train_section(loaded)
    root = loaded.root
    base = resolve_base_model(config.base_model, root, registry)
    template = None
    if config.prompt:
        template = load_template(root, config.prompt, key="train.prompt")
    dataset = load_dataset(root / config.dataset, template)
    tokenizer = _load_tokenizer(base)
    if dataset.uses_messages and not tokenizer.chat_template:
        raise InputError(f"{config.dataset}: chat messages need a chat template, and {base.reference} has none")
    h = config.hyperparameters
    if config.eval_dataset:
        evaluation = load_dataset(root / config.eval_dataset, template).examples
        train, eval_source = dataset.examples, config.eval_dataset
    else:
        shuffled = list(dataset.examples)
        random.Random(h.seed).shuffle(shuffled)
        held = int(len(shuffled) * h.eval_fraction)
        evaluation, train = shuffled[:held], shuffled[held:]
        eval_source = f"{h.eval_fraction:.0%} held out"
    if not train:
        raise InputError(f"{config.dataset}: no examples left to train on after holding out eval_fraction")
    tokenized_train = tokenize(train, tokenizer, h.max_length)
    tokenized_eval = tokenize(evaluation, tokenizer, h.max_length)
    per_epoch = steps_per_epoch(len(tokenized_train), h.batch_size, config.scaling.num_workers)
    total = per_epoch * h.epochs if h.max_steps is None else min(h.max_steps, per_epoch * h.epochs)
    digest_source = config.model_dump_json() + ((root / config.prompt).read_text() if config.prompt else "")
    return TrainPlan(
        config=config,
        root=root,
        base=base,
        dataset=dataset,
        eval_source=eval_source,
        train_examples=tokenized_train,
        eval_examples=tokenized_eval,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        steps_per_epoch=per_epoch,
        total_steps=total,
        config_digest=hashlib.sha256(digest_source.encode()).hexdigest(),
        tokenizer=tokenizer,
    )


def _load_tokenizer(base: BaseModelSource):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base.path)
    except (OSError, ValueError) as exc:
        raise InputError(f"train.base_model: cannot load a tokenizer from {base.reference}: {exc}") from None


def tokenize(examples: list[Example], tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Prompt and completion token ids; loss is on the completion (and EOS) only; long examples keep their end."""
    out = []
    for example in examples:
        prompt = example.prompt
        if example.messages is not None:
            prompt = tokenizer.apply_chat_template(
                list(example.messages[:-1]), tokenize=False, add_generation_prompt=True
            )
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        completion_ids = tokenizer(example.completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = prompt_ids + completion_ids
        labels = [IGNORE] * len(prompt_ids) + completion_ids
        out.append((ids[-max_length:], labels[-max_length:]))
    return out


def connect_ray(address: str | None) -> None:
    """Embedded Ray with no address (or the cluster a Ray job runs in); `ray://` for Ray Client."""
    import ray

    if ray.is_initialized():
        return
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # "local": always a new embedded instance, never a stray cluster this machine once ran.
        ray.init(address="local", include_dashboard=False, configure_logging=False)
    else:  # ray:// (Ray Client), or the cluster a Ray job runs in (RAY_ADDRESS)
        try:
            ray.init(address=address)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            shown = without_userinfo(address or os.environ["RAY_ADDRESS"])
            raise ClusterError(f"Ray cluster at {shown}: {redact_userinfo(first_line(exc))}") from None


def run_training(plan: TrainPlan, *, address: str | None = None, work_dir: Path | None = None) -> RunResult:
    """Fit with Ray Train and export the model to `work_dir` (or a folder under .llmci)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from llmci.train.loop import train_loop_per_worker

    start = time.perf_counter()
    # Ray Train 2.x answers a worker's report at the controller's next poll (2 s by default);
    # poll often, so reports and the end of training are not held up.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    connect_ray(address)
    import ray

    config = plan.config
    run_name = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{plan.config_digest[:8]}"
    storage = config.storage if "://" in config.storage else str((plan.root / config.storage).resolve())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=plan.loop_config(),
        scaling_config=ScalingConfig(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker=config.scaling.resources_per_worker or None,
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoints.num_to_keep),
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
    )
    startup = time.perf_counter() - start
    fit_start = time.perf_counter()
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray raises TrainingFailedError (and others) when the run cannot finish
        raise TrainingError(f"training {run_name} failed: {first_line(exc)}", hint=f"logs under {storage}") from None
    train_s = time.perf_counter() - fit_start
    if result.checkpoint is None:
        raise TrainingError(f"training {run_name} ended without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = read_train_state(Path(folder) / STATE_FILE)
    if state["step"] != plan.total_steps:
        raise TrainingError(f"training {run_name} stopped at step {state['step']} of {plan.total_steps}")
    model_dir = work_dir or plan.root / ".llmci" / "runs" / run_name / "model"
    export_model(plan, state["model"], model_dir)
    return RunResult(
        plan=plan,
        model_dir=model_dir,
        history=state["history"],
        job_id=ray.get_runtime_context().get_job_id(),
        run_name=run_name,
        startup_s=startup,
        train_s=train_s,
    )


def export_model(plan: TrainPlan, trained: dict, out: Path) -> str:
    """Write the fine-tuned model: full weights, merged LoRA weights, or the adapter. Returns which."""
    from llmci.train.loop import load_model, load_trainable_state

    cfg = plan.loop_config()
    model = load_model(cfg)
    load_trainable_state(model, trained, cfg["method"])
    out.mkdir(parents=True, exist_ok=True)
    if plan.config.method == "lora" and plan.config.lora.merge:
        model = model.merge_and_unload()
        weights = "merged-lora"
    else:
        weights = "lora-adapter" if plan.config.method == "lora" else "full"
    if weights == "lora-adapter":
        model.peft_config["default"].base_model_name_or_path = plan.base.reference
    model.save_pretrained(out)
    plan.tokenizer.save_pretrained(out)
    if plan.config.prompt:  # the version carries the template it was trained on: serving renders `vars` with it
        from llmci.serve.generator import PROMPT_FILE
        from llmci.templating import bundle_template

        bundle = bundle_template(plan.root, plan.config.prompt)
        (out / PROMPT_FILE).write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / ".llmci-weights").write_text(weights + "\n")
    return weights


def publish_run(run: RunResult, registry: Registry) -> RunResult:
    """Publish the exported model as a candidate, with lineage and metrics; fill the run manifest."""
    plan, config = run.plan, run.plan.config
    weights = (run.model_dir / ".llmci-weights").read_text().strip()
    environment = lineage_from_environment(plan.root)
    lineage = Lineage(
        git_repo=environment.git_repo,
        git_commit=environment.git_commit,
        workflow_run_url=environment.workflow_run_url,
        training_run_id=run.run_name,
        dataset_sha256=plan.dataset.sha256,
        base_model=plan.base.reference,
        config_digest=plan.config_digest,
        hyperparameters=config.hyperparameters.model_dump(),
        method=config.method,
        weights=weights,
        ray_job_id=run.job_id,
        prompt_template=config.prompt,
    )
    metrics = {"train_loss": run.final_loss, "steps": float(plan.total_steps), "train_seconds": round(run.train_s, 3)}
    if run.eval_loss is not None:
        metrics["eval_loss"] = run.eval_loss
    result = registry.publish(run.model_dir, config.name, metrics=metrics, lineage=lineage, created_by=default_actor())
    manifest = result.manifest
    run.manifest = {
        "model": manifest.name,
        "version": manifest.version,
        "ref": manifest.ref,
        "registry": registry.store.uri,
        "created": result.created,
        "weights": weights,
        "base_model": plan.base.reference,
        "method": config.method,
        "dataset": {
            "path": str(plan.dataset.path),
            "sha256": plan.dataset.sha256,
            "examples": len(plan.dataset.examples),
        },
        "steps": plan.total_steps,
        "train_loss": run.final_loss,
        "eval_loss": run.eval_loss,
        "startup_seconds": round(run.startup_s, 3),
        "train_seconds": round(run.train_s, 3),
        "ray": {
            "job_id": run.job_id,
            "run": run.run_name,
            "num_workers": config.scaling.num_workers,
            "use_gpu": config.scaling.use_gpu,
        },
        "lineage": json.loads(lineage.model_dump_json()),
        "history": run.history,
    }
    return run
