"""`llmci train`: fine-tuning on Ray Train, embedded Ray here, any Ray cluster at scale.

`plan_training` validates everything (config, dataset, base model) before any
compute and gives a `TrainPlan`; `run_training` runs it with
`ray.train.torch.TorchTrainer` and exports the model (a `RunResult`);
`publish_run` publishes it to the registry as a candidate and fills the run
manifest. `submit_and_follow` runs the same as a Ray job on a cluster
(`MANIFEST_MARKER` ends its log with the manifest). `load_dataset` reads and
validates a JSONL dataset; `plot_loss` and `summary_markdown` show a run.

The names are loaded on first use: importing this package imports neither
Ray nor torch (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.train.dataset import Dataset, Example, load_dataset
    from llmci.train.jobs import MANIFEST_MARKER, submit_and_follow
    from llmci.train.report import plot_loss, summary_markdown
    from llmci.train.runner import BaseModelSource, RunResult, TrainPlan, plan_training, publish_run, run_training

_WHERE = {
    "Dataset": "dataset",
    "Example": "dataset",
    "load_dataset": "dataset",
    "MANIFEST_MARKER": "jobs",
    "submit_and_follow": "jobs",
    "plot_loss": "report",
    "summary_markdown": "report",
    "BaseModelSource": "runner",
    "RunResult": "runner",
    "TrainPlan": "runner",
    "plan_training": "runner",
    "publish_run": "runner",
    "run_training": "runner",
}

__all__ = [
    "MANIFEST_MARKER",
    "BaseModelSource",
    "Dataset",
    "Example",
    "RunResult",
    "TrainPlan",
    "load_dataset",
    "plan_training",
    "plot_loss",
    "publish_run",
    "run_training",
    "submit_and_follow",
    "summary_markdown",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
