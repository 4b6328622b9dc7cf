"""Ray Train step time against a plain PyTorch loop, same model, data and steps, in the same run.

Target: Ray step time / plain step time <= 1.15, start-up excluded (it is
printed on its own). Both run one worker with one CPU thread (Ray gives a
1-CPU worker one thread); Ray's side includes what Ray Train really costs per
step: reports every `log_every_steps` and checkpoints at epoch ends. The model
is a 4-layer GPT-2 (width 256) built here, trained on the quickstart tickets.

    .venv/bin/python benchmarks/bench_train.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
STEPS = 60


def plain_loop(plan) -> list[float]:
    """The same training without Ray (the worker's own step and data order): each step's end time."""
    import torch

    from llmci.train.loop import load_model, make_loader, make_optimizer, train_step

    torch.set_num_threads(1)
    cfg = plan.loop_config()
    model = load_model(cfg)
    optimizer = make_optimizer(model, cfg)
    sampler, loader = make_loader(cfg)
    times: list[float] = []
    model.train()
    while len(times) < cfg["total_steps"]:
        sampler.set_epoch(len(times) // len(loader))
        for batch in loader:
            train_step(model, optimizer, batch)
            times.append(time.time())
            if len(times) >= cfg["total_steps"]:
                break
    return times


def per_step(times: list[float]) -> float:
    return (times[-1] - times[0]) / (len(times) - 1)


def _quickstart_builder():
    """examples/quickstart/build_base_model.py, the script that builds the quickstart's tiny models."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_base_model", QUICKSTART / "build_base_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    import ray

    from llmci.config import load_config
    from llmci.train.runner import plan_training, run_training

    build_tiny_model = _quickstart_builder().build_tiny_model
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("prompts", "data"):
            shutil.copytree(QUICKSTART / name, root / name)
        texts = [line for line in (root / "data" / "train.jsonl").read_text().splitlines()]
        build_tiny_model(texts, root / "base", vocab_size=800, n_layer=4, n_embd=256, n_head=4, n_positions=256)
        train = {
            "name": "bench",
            "base_model": "base",
            "dataset": "data/train.jsonl",
            "eval_dataset": "data/eval.jsonl",
            "prompt": "prompts/classify.j2",
            "hyperparameters": {"epochs": 10, "batch_size": 16, "max_steps": STEPS},
            "checkpoints": {"num_to_keep": 1},
        }
        (root / "llmci.yaml").write_text(json.dumps({"train": train}))
        plan = plan_training(load_config(root / "llmci.yaml"))

        plain = per_step(plain_loop(plan))
        ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
        start = time.time()
        run = run_training(plan, work_dir=root / "out")
        ray_times = [h["time"] for h in run.history]
        startup = ray_times[0] - start - per_step(ray_times)  # until the first step began
        ray.shutdown()

    ratio = per_step(ray_times) / plain
    print(f"model: GPT-2 4x256, {STEPS} steps of batch 16 on the quickstart tickets, 1 worker, 1 thread")
    print(f"plain PyTorch loop:  {plain * 1000:7.1f} ms/step")
    print(f"Ray Train:           {per_step(ray_times) * 1000:7.1f} ms/step (reports every 10 steps, epoch checkpoints)")
    print(f"Ray start-up (init + worker group + model load, before the first step): {startup:.1f} s")
    print(f"step-time ratio Ray / plain: {ratio:.3f} (target <= 1.15)  {'PASS' if ratio <= 1.15 else 'FAIL'}")
    return 0 if ratio <= 1.15 else 1


if __name__ == "__main__":
    sys.exit(main())
