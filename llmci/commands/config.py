from __future__ import annotations

import json
from pathlib import Path

import click

from llmci.commands import config_option


@click.group()
def config() -> None:
    """Check llmci.yaml or print its JSON Schema."""


@config.command()
@config_option
def check(config_path: Path | None) -> None:
    """Validate llmci.yaml; exit 2 with file:line and key on the first problem."""
    from llmci.config import load_config
    from llmci.errors import ConfigError

    loaded = load_config(config_path)
    if loaded.path is None:
        raise ConfigError("no llmci.yaml in this folder or its parents", hint="create one or pass --config")
    click.echo(f"{loaded.path}: ok ({len(loaded.config.prompts)} prompt entries)")


@config.command()
def schema() -> None:
    """Print the JSON Schema of llmci.yaml (for editors and check-jsonschema)."""
    from llmci.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
