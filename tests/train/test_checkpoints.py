"""Checkpoints come back from train.storage (possibly a shared bucket): read without running code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from llmci.errors import ExitCode, IntegrityError
from llmci.train.loop import STATE_FILE, _checkpoint, make_optimizer, read_train_state, train_step


class _Payload:
    """What an attacker pickles: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _tiny_model(method: str) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], task_type="CAUSAL_LM"))
    return model


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_checkpoint_llmci_wrote_reads_back_safely(method: str) -> None:
    """weights_only loading must take everything our own checkpoints hold: weights, AdamW state, history."""
    model = _tiny_model(method)
    optimizer = make_optimizer(model, {"learning_rate": 1e-3, "weight_decay": 0.01})
    ids = torch.randint(0, 32, (2, 8))
    train_step(model, optimizer, {"input_ids": ids, "labels": ids})
    history = [{"step": 1, "epoch": 1, "loss": 3.4, "time": 1.0, "eval_loss": 3.2}]
    checkpoint = _checkpoint(model, optimizer, 1, history, method)

    state = read_train_state(Path(checkpoint.path) / STATE_FILE)
    assert state["step"] == 1 and state["history"] == history
    assert state["optimizer"]["state"] and state["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert set(state["model"]) == set(model.state_dict()) if method == "full" else state["model"]


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / STATE_FILE
    torch.save({"model": {}, "optimizer": {}, "step": 1, "history": [_Payload(marker)]}, path)

    with pytest.raises(IntegrityError) as refused:
        read_train_state(path)
    assert not marker.exists(), "unpickling the checkpoint ran the attacker's command"
    assert refused.value.exit_code == ExitCode.INTEGRITY
    assert str(refused.value).startswith(f"{path}: not a training checkpoint llmci can load safely")


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint", None],
    ids=["garbage", "wrong layout"],
)
def test_a_damaged_checkpoint_is_an_integrity_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / STATE_FILE
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(IntegrityError, match="not a training checkpoint"):
        read_train_state(path)
