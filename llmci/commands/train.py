from __future__ import annotations

import json
from pathlib import Path

import click

from llmci.commands import config_option


@click.command()
@config_option
@click.option(
    "--address",
    envvar="LLMCI_RAY_ADDRESS",
    help="Ray cluster: ray://HOST:10001 (Ray Client) or http://HOST:8265 (Jobs API). Default: embedded Ray.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the run manifest (JSON) here.")
@click.option("--dry-run", is_flag=True, help="Validate config, base model and dataset; print the plan; run nothing.")
@click.option("--registry", "registry_uri", envvar="LLMCI_REGISTRY", help="Registry URI [default: registry.uri].")
@click.option("--manifest-to-log", is_flag=True, hidden=True, help="Inside a Ray job: end the log with the manifest.")
def train(
    config_path: Path | None,
    address: str | None,
    out: Path | None,
    dry_run: bool,
    registry_uri: str | None,
    manifest_to_log: bool,
) -> None:
    """Fine-tune the base model on Ray Train and publish it to the registry as a candidate.

    Prints NAME@VERSION. Everything is validated before any compute; with
    --dry-run nothing else happens.
    """
    from llmci.config import load_config
    from llmci.registry import open_registry
    from llmci.train.runner import plan_training

    loaded = load_config(config_path)
    registry = open_registry(loaded, registry_uri)
    plan = plan_training(loaded, registry)
    click.echo(plan.describe(), err=True)
    if dry_run:
        return
    if address and address.startswith(("http://", "https://")):
        from llmci.train.jobs import submit_and_follow

        manifest = submit_and_follow(loaded, plan, address, registry_uri=registry_uri)
    else:
        from llmci.train.runner import publish_run, run_training

        manifest = publish_run(run_training(plan, address=address), registry).manifest
    if manifest_to_log:
        from llmci.train.jobs import MANIFEST_MARKER

        click.echo(MANIFEST_MARKER + json.dumps(manifest))
        return
    _finish(manifest, out)


def _finish(manifest: dict, out: Path | None) -> None:
    from llmci import gha
    from llmci.fsutil import atomic_write_text
    from llmci.train.report import plot_loss, summary_markdown

    if out:
        atomic_write_text(out, json.dumps(manifest, indent=2) + "\n")
        plot = plot_loss(manifest["history"], out.with_suffix(".loss.png"))
        click.echo(f"run manifest: {out}; loss curve: {plot}", err=True)
    click.echo(manifest["ref"])
    if gha.in_actions():
        gha.set_output("model", manifest["model"])
        gha.set_output("version", str(manifest["version"]))
        gha.append_summary(summary_markdown(manifest, out.with_suffix(".loss.png").name if out else None))
