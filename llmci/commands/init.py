from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("folder", default=".", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--with",
    "stages",
    multiple=True,
    metavar="STAGES",
    help="Comma-separated: lint, eval, train, deploy, monitor (default: lint,eval).",
)
@click.option(
    "--target",
    help="What the eval suite runs on: registry:NAME@STAGE, hf:PATH, openai:BASE_URL#MODEL or recorded "
    "(default: registry:my-model@production).",
)
@click.option(
    "--ref",
    metavar="SHA",
    help="Full commit SHA of llmci the workflows call (default: the commit pip installed from git, "
    "else HEAD of the llmci checkout running).",
)
@click.option(
    "--repo",
    "repository",
    metavar="OWNER/NAME",
    help="The llmci repository the workflows call (default: the one llmci was installed from, else llmci/llmci).",
)
@click.option("--force", is_flag=True, help="Replace files that exist and differ.")
def init(
    folder: Path, stages: tuple[str, ...], target: str | None, ref: str | None, repository: str | None, force: bool
) -> None:
    """Scaffold llmci into the repository in FOLDER (default: here).

    Writes llmci.yaml (only the sections asked for), an example prompt and eval
    suite, and caller workflows in .github/workflows/ pinned to a commit of llmci.
    Never replaces a file without --force; a second run does nothing.
    """
    from llmci import scaffold
    from llmci.errors import UsageError

    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder", hint="run llmci init in your repository, or name its folder")
    result = scaffold.plan(
        folder,
        stages=scaffold.parse_stages(stages),
        target=target,
        pin=scaffold.resolve_pin(ref, repository),
        force=force,
    )
    for line in scaffold.write(result):
        click.echo(line)
