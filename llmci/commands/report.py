from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("comparison", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--lint",
    "lint_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Lint findings from `llmci lint --format json`.",
)
@click.option("--repo", help="OWNER/NAME [default: GITHUB_REPOSITORY].")
@click.option("--pr", "number", type=click.IntRange(min=1), help="Pull request [default: from GITHUB_EVENT_PATH].")
@click.option("--sha", help="Head commit for the check run [default: the pull request's head, else GITHUB_SHA].")
@click.option(
    "--output", type=click.Path(path_type=Path, dir_okay=False), help="Also write the full report (Markdown) here."
)
@click.option("--key", help="Sticky-comment key [default: WORKFLOW/SUITES]: one comment per key and pull request.")
@click.option("--check/--no-check", default=True, help="Create a check run (or commit status) [default: on].")
def report(
    comparison: Path,
    lint_path: Path | None,
    repo: str | None,
    number: int | None,
    sha: str | None,
    output: Path | None,
    key: str | None,
    check: bool,
) -> None:
    """Report a comparison: sticky PR comment, job summary, check run; or Markdown to --output / stdout.

    Posts when GITHUB_TOKEN, a repository and a pull request are known
    (through GITHUB_API_URL, so GitHub Enterprise Server works). Exit code: the
    verdict's (0 pass, 1 regression, 3 inconclusive); 8 when GitHub refused or
    kept failing. A fork's read-only token only warns.
    """
    from llmci import gha
    from llmci.errors import ExitCode
    from llmci.report.publish import (
        credentials_from_environment,
        load_comparison,
        load_lint,
        pull_request_from_environment,
    )
    from llmci.report.publish import report as run_report

    data = load_comparison(comparison)
    lint = load_lint(lint_path) if lint_path else None
    token, comment_author = credentials_from_environment()
    pull_request = pull_request_from_environment(repository=repo, number=number, sha=sha)
    outcome = run_report(
        data,
        lint=lint,
        pull_request=pull_request,
        token=token,
        output=output,
        key=key,
        check=check,
        comment_author=comment_author,
    )
    for warning in outcome.warnings:
        gha.warning(warning)
    if outcome.comment_url:
        click.echo(f"llmci report: comment {outcome.comment_action}: {outcome.comment_url}")
    if outcome.check_url:
        click.echo(f"llmci report: check run: {outcome.check_url}")
    if output:
        click.echo(f"llmci report: {output}")
    elif not outcome.comment_url:
        with gha.commands_stopped():  # model outputs must not run as workflow commands in the log
            sys.stdout.write(outcome.markdown)
            sys.stdout.flush()
    if gha.in_actions():
        gha.set_output("verdict", outcome.verdict)
        gha.set_output("comment-url", outcome.comment_url or "")
    raise click.exceptions.Exit(ExitCode.for_verdict(outcome.verdict))
