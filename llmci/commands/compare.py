from __future__ import annotations

import json
from pathlib import Path

import click

from llmci.commands import config_option


@click.command()
@config_option
@click.argument("baseline", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("candidate", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write the comparison JSON here.")
def compare(config_path: Path | None, baseline: Path, candidate: Path, out: Path | None) -> None:
    """Compare two results tables (from `llmci eval`) case by case.

    Per metric: both means, the delta with its paired bootstrap interval and
    p-value (McNemar for pass/fail), the regressed and fixed cases; latency and
    cost per suite. Gates come from each metric's `gate` in llmci.yaml. Exit 0
    pass, 1 regression, 3 inconclusive.
    """
    from llmci import gha
    from llmci.compare.deltas import compare_files, verdict_lines
    from llmci.config import load_config
    from llmci.errors import ExitCode
    from llmci.fsutil import atomic_write_text

    loaded = load_config(config_path)
    comparison = compare_files(baseline, candidate, loaded)
    if out:
        atomic_write_text(out, json.dumps(comparison, indent=2, ensure_ascii=False) + "\n")
    with gha.commands_stopped():  # suite and metric names come from the tables: none may act as a workflow command
        for line in verdict_lines(comparison):
            click.echo(line)
    if gha.in_actions():
        gha.set_output("verdict", comparison["verdict"])
        if out:
            gha.set_output("comparison", str(out))
    raise click.exceptions.Exit(ExitCode.for_verdict(comparison["verdict"]))
