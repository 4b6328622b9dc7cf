from __future__ import annotations

from pathlib import Path

import click

from llmci.commands import config_option


@click.command("eval")
@config_option
@click.option("--suite", "suite_name", help="Suite of eval.suites in llmci.yaml [default: the only one].")
@click.option(
    "--target",
    required=True,
    help="registry:NAME@VERSION|NAME@STAGE, hf:PATH, openai:BASE_URL#MODEL, or recorded.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results table: .parquet, else JSON Lines (metadata beside it in NAME.meta.json).",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="Cases at once [default: eval.concurrency, 8].")
@click.option("--no-cache", is_flag=True, help="Call the model and metrics for every case, and cache nothing.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="LLMCI_CACHE_DIR",
    help="Cache folder [default: $RUNNER_TEMP/llmci-cache in Actions, else .llmci/cache next to llmci.yaml].",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar [default: on a terminal; 10% log lines in CI]."
)
def eval_command(
    config_path: Path | None,
    suite_name: str | None,
    target: str,
    out: Path,
    concurrency: int | None,
    no_cache: bool,
    cache_dir: Path | None,
    progress: bool | None,
) -> None:
    """Evaluate a suite (dataset + prompt + DeepEval metrics, or DeepEval pytest files) against a target.

    Writes one row per case x metric to --out and prints each metric's mean,
    passes and errors. Cases that fail (5xx after retries, timeouts, judge
    errors, NaN scores) are recorded as errors and the run goes on. Exit 0
    once the table is written; 2 for bad config, dataset or target.
    """
    from llmci import gha
    from llmci.config import load_config
    from llmci.errors import UsageError
    from llmci.eval.results import summarize, summary_markdown, write_results
    from llmci.eval.runner import mask_credentials, run_eval
    from llmci.fsutil import cache_dir as default_cache_dir
    from llmci.redact import redact_userinfo

    mask_credentials(target=target)  # first: an error about the spec may quote it
    loaded = load_config(config_path)
    mask_credentials(judge=loaded.config.eval.judge)
    if suite_name is None:
        suites = list(loaded.config.eval.suites)
        if len(suites) != 1:
            raise UsageError(
                f"--suite is required: llmci.yaml has {len(suites)} suites ({', '.join(suites) or 'none'})"
            )
        suite_name = suites[0]
    folder = None if no_cache else default_cache_dir(loaded.root, cache_dir)
    run = run_eval(loaded, suite_name, target, concurrency=concurrency, cache_dir=folder, progress=progress)
    write_results(out, run.results)

    summary = summarize(run.results.rows)
    with gha.commands_stopped():  # metric names come from the user's tests: none may act as a workflow command
        for item in summary:
            mean = f"{item['mean']:.4f}" if item["mean"] is not None else "-"
            passed = f"{item['passed']}/{item['cases']}"
            click.echo(f"{suite_name} {item['metric']}: mean {mean}, passed {passed}, errors {item['errors']}")
    stats = run.stats
    click.echo(
        f"llmci eval: {len(run.results.rows)} rows in {stats.seconds:.1f} s; model calls {stats.model_calls}, "
        f"judge calls {stats.judge_calls}, cached generations {stats.cached_generations}, "
        f"cached scores {stats.cached_scores}; results: {out}",
        err=True,
    )
    if gha.in_actions():
        gha.set_output("results", str(out))
        gha.append_summary(summary_markdown(suite_name, redact_userinfo(target), summary))
