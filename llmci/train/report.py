"""What a training run shows people: a loss-curve PNG, and a job-summary table with a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss(history: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=120)
    axes.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", linewidth=1.2)
    evals = [h for h in history if "eval_loss" in h]
    if evals:
        axes.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="eval loss (epoch end)")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out


def summary_markdown(manifest: dict[str, Any], plot_name: str | None = None) -> str:
    """Job summary: the published version, a table of figures, and the loss curve as a Mermaid chart."""
    history = manifest["history"]
    lines = [
        f"### :rocket: llmci train: published `{manifest['ref']}` (candidate)",
        "",
        "| | |",
        "| --- | --- |",
        f"| base model | `{manifest['base_model']}` |",
        f"| method | {manifest['method']} ({manifest['weights']}) |",
        f"| dataset | `{manifest['dataset']['path']}`, {manifest['dataset']['examples']} examples |",
        f"| steps | {manifest['steps']} |",
        f"| train loss | {history[0]['loss']:.4f} → {manifest['train_loss']:.4f} |",
    ]
    if manifest.get("eval_loss") is not None:
        lines.append(f"| eval loss | {manifest['eval_loss']:.4f} |")
    lines += [
        f"| Ray | {manifest['ray']['num_workers']} worker(s), GPU: {manifest['ray']['use_gpu']}, "
        f"job `{manifest['ray']['job_id']}` |",
        f"| time | start-up {manifest['startup_seconds']:.1f} s, training {manifest['train_seconds']:.1f} s |",
        "",
    ]
    stride = max(1, len(history) // 60)  # a readable chart: at most ~60 points
    points = history[::stride]
    losses = ", ".join(format(h["loss"], ".4f") for h in points)
    lines += [
        "```mermaid",
        "xychart-beta",
        '    title "train loss"',
        f"    x-axis [{', '.join(str(h['step']) for h in points)}]",
        '    y-axis "loss"',
        f"    line [{losses}]",
        "```",
    ]
    if plot_name:
        lines += ["", f"The loss curve as a PNG is `{plot_name}` in this run's artifacts."]
    return "\n".join(lines) + "\n"
