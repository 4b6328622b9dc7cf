from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART

__all__ = ["QUICKSTART"]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One embedded Ray for the whole test session: 2 CPUs, no dashboard."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def train_project(tmp_path: Path, base_model: Path):
    """A copy of the quickstart with the tiny base model, and a function to set its train section."""
    for name in ("prompts", "data"):
        shutil.copytree(QUICKSTART / name, tmp_path / name)

    def make(**train: object) -> Path:
        section = {
            "name": "ticket-router",
            "base_model": str(base_model),
            "dataset": "data/train.jsonl",
            "eval_dataset": "data/eval.jsonl",
            "prompt": "prompts/classify.j2",
            "hyperparameters": {"epochs": 1, "batch_size": 16, "max_steps": 6, "learning_rate": 0.003},
            **train,
        }
        config = {"train": section, "registry": {"uri": "file://.llmci/registry"}}
        (tmp_path / "llmci.yaml").write_text(json.dumps(config))  # JSON is YAML
        return tmp_path

    return make
