from __future__ import annotations

from pathlib import Path

import click

from llmci.commands import config_option
from llmci.errors import ExitCode


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "github"]),
    help="Output format [default: github in GitHub Actions, else text].",
)
@click.option("--output", type=click.Path(path_type=Path), help="Write the findings to this file instead of stdout.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--no-cache", is_flag=True, help="Ignore and do not update the lint cache.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Cache folder [default: $LLMCI_CACHE_DIR, else $RUNNER_TEMP/llmci-cache in GitHub Actions, "
    "else .llmci/cache next to llmci.yaml].",
)
def lint(
    paths: tuple[Path, ...],
    config_path: Path | None,
    fmt: str | None,
    output: Path | None,
    strict: bool,
    no_cache: bool,
    cache_dir: Path | None,
) -> None:
    """Lint prompt templates, and the chat templates of models.

    With no PATHS, lints every template the `prompts` entries of llmci.yaml
    match. A PATH may be a template, a folder of them, a model folder (or its
    tokenizer_config.json, chat_template.jinja/.json or .gguf file), or
    registry:NAME@VERSION. Exit 0: no errors (warnings allowed unless
    --strict); 1: errors found; 2: usage or config error.
    """
    from llmci import fsutil, gha
    from llmci.config import load_config
    from llmci.lint.engine import Linter
    from llmci.lint.formats import render, summary_markdown
    from llmci.lint.rules import Severity

    loaded = load_config(config_path)
    # Never the checkout in Actions: a pull request controls its files (entries are signed besides).
    folder = None if no_cache else fsutil.cache_dir(loaded.root, cache_dir)
    report = Linter(loaded, cache_dir=folder).lint(paths)

    in_actions = gha.in_actions()
    text = render(report, fmt or ("github" if in_actions else "text"))
    if output:
        fsutil.atomic_write_text(output, text)
    else:
        click.echo(text, nl=False)

    errors, warnings = report.count(Severity.ERROR), report.count(Severity.WARNING)
    click.echo(f"llmci lint: {report.files} templates, {errors} errors, {warnings} warnings", err=True)
    if in_actions:
        gha.append_summary(summary_markdown(report))
        gha.set_output("errors", str(errors))
        gha.set_output("warnings", str(warnings))
    failed = errors > 0 or (strict and warnings > 0)
    raise click.exceptions.Exit(ExitCode.FAILED if failed else ExitCode.OK)
