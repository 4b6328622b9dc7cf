"""Click commands: parse options, call the library, map the result to an exit code. Nothing else."""

from __future__ import annotations

from pathlib import Path

import click

#: `--config FILE` (or LLMCI_CONFIG), the same on every command that reads llmci.yaml.
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="LLMCI_CONFIG",
    help="llmci.yaml (default: the nearest one in this folder or a parent).",
)
