"""The function every Ray Train worker runs: a plain PyTorch loop over a causal LM.

Loss per step and eval loss per epoch go through `ray.train.report`: every
`log_every` steps (each report carries every step's loss since the last one,
in `step_losses`) and at every checkpoint. Not one report per step: in Ray
Train 2.x a report waits for the controller's next poll, which would dominate
small steps. Rank 0 attaches a checkpoint at each epoch end (and every
`every_steps`) holding the weights (the LoRA adapter only, for LoRA), the optimizer, the step and the loss
history. After a worker failure Ray restarts the group and this function
resumes from the latest checkpoint: same data order (seeded per epoch), same
planned number of steps.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

STATE_FILE = "train_state.pt"
IGNORE = -100  # label of prompt and padding tokens: no loss on them


def read_train_state(path: Path) -> dict[str, Any]:
    """A checkpoint's training state, read without unpickling anything but tensors, numbers and containers.

    Checkpoints come back from `train.storage`, which may be a shared bucket: a
    crafted file must not run code here (torch's `weights_only` loader refuses
    every other type), and anything but our own layout is an integrity error.
    """
    import pickle

    from llmci.errors import IntegrityError, first_line

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise IntegrityError(f"{path}: not a training checkpoint llmci can load safely: {first_line(exc)}") from None
    expected = {"model": dict, "optimizer": dict, "step": int, "history": list}
    if not isinstance(state, dict) or any(not isinstance(state.get(key), kind) for key, kind in expected.items()):
        raise IntegrityError(f"{path}: not a training checkpoint (expected keys {sorted(expected)})")
    return state


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, target) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(target)] = torch.tensor(target)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def load_model(cfg: dict[str, Any]) -> torch.nn.Module:
    """The base model, with a fresh LoRA adapter for the lora method."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(cfg["seed"])
    model = AutoModelForCausalLM.from_pretrained(cfg["base_path"])
    if cfg["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        lora = cfg["lora"]
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora["r"],
                lora_alpha=lora["alpha"],
                lora_dropout=lora["dropout"],
                target_modules=lora["target_modules"],
                task_type="CAUSAL_LM",
            ),
        )
    return model


def trainable_state(model: torch.nn.Module, method: str) -> dict[str, torch.Tensor]:
    if method == "lora":
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return model.state_dict()


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], method: str) -> None:
    if method == "lora":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
    else:
        model.load_state_dict(state)


def make_optimizer(model: torch.nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])


def make_loader(cfg: dict[str, Any], world: int = 1, rank: int = 0) -> tuple[DistributedSampler, DataLoader]:
    """This rank's shard of the training data, shuffled per epoch from the seed (call sampler.set_epoch)."""
    data = cfg["train"]
    sampler = DistributedSampler(range(len(data)), num_replicas=world, rank=rank, shuffle=True, seed=cfg["seed"])
    loader = DataLoader(
        data, batch_size=cfg["batch_size"], sampler=sampler, collate_fn=lambda batch: collate(batch, cfg["pad_id"])
    )
    return sampler, loader


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
    """One optimizer step; returns the batch loss."""
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def steps_per_epoch(n_examples: int, batch_size: int, world_size: int) -> int:
    return math.ceil(math.ceil(n_examples / world_size) / batch_size)


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    model = load_model(cfg)
    optimizer = make_optimizer(model, cfg)
    step, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restart after a failure: carry on where the last checkpoint was
        with checkpoint.as_directory() as folder:
            state = read_train_state(Path(folder) / STATE_FILE)
        load_trainable_state(model, state["model"], cfg["method"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
    unwrapped = model
    model = ray.train.torch.prepare_model(model)  # device placement, DDP when world > 1
    device = ray.train.torch.get_device()

    sampler, loader = make_loader(cfg, world, rank)
    eval_loader = DataLoader(cfg["eval"], batch_size=cfg["batch_size"], collate_fn=lambda b: collate(b, cfg["pad_id"]))
    per_epoch, total = len(loader), cfg["total_steps"]
    every, log_every = cfg["checkpoint_every"], cfg["log_every"]
    step_losses: list[float] = []

    while step < total:
        epoch, skip = divmod(step, per_epoch)
        sampler.set_epoch(epoch)  # the same order as before a restart
        model.train()
        for index, batch in enumerate(loader):
            if index < skip:
                continue
            loss = train_step(model, optimizer, {key: value.to(device) for key, value in batch.items()})
            step += 1
            record = {"step": step, "epoch": epoch + 1, "loss": loss, "time": time.time()}
            history.append(record)
            step_losses.append(record["loss"])
            epoch_end = step % per_epoch == 0 or step == total
            if epoch_end and cfg["eval"]:
                record["eval_loss"] = evaluate(model, eval_loader, device)
            save = epoch_end or (every is not None and step % every == 0)
            if save or step % log_every == 0:
                saved = _checkpoint(unwrapped, optimizer, step, history, cfg["method"]) if save and rank == 0 else None
                ray.train.report({**record, "step_losses": step_losses}, checkpoint=saved)
                step_losses = []
            if step >= total:
                break


def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            tokens = int((batch["labels"] != IGNORE).sum())
            total += float(model(**batch).loss) * tokens
            count += tokens
    model.train()
    return total / max(count, 1)


def _checkpoint(model, optimizer, step: int, history: list, method: str):
    from ray.train import Checkpoint

    folder = tempfile.mkdtemp(prefix="llmci-ckpt-")
    state = {"model": trainable_state(model, method), "optimizer": optimizer.state_dict(), "step": step}
    torch.save({**state, "history": history}, os.path.join(folder, STATE_FILE))
    return Checkpoint.from_directory(folder)
