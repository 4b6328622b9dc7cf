from __future__ import annotations

from pathlib import Path

import click

from llmci.commands import config_option


class _DefaultRun(click.Group):
    """`llmci deploy NAME@VERSION ...` runs `run`; `rollback`, `status` and `history` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


address_option = click.option(
    "--address",
    envvar="LLMCI_RAY_ADDRESS",
    help="Ray dashboard http://HEAD:8265 [default: deploy.environments.ENV.address, else a local head].",
)
env_option = click.option("--env", "env", required=True, help="Environment of deploy.environments in llmci.yaml.")


@click.group(cls=_DefaultRun)
def deploy() -> None:
    """Deploy approved versions with Ray Serve: canary steps, gates, automatic rollback.

    \b
    llmci deploy NAME@VERSION|NAME@STAGE --env ENV   deploy (the default command)
    llmci deploy rollback --env ENV                  back to the version before the last deploy
    llmci deploy status --env ENV                    what serves now: weights and replica health
    llmci deploy history --env ENV [--at TIME]       every deploy, step, gate and rollback
    llmci deploy stop-local                          stop the local Ray head (no --address)

    Exit codes: 0 deployed (or already serving), 11 a check failed and the environment was rolled
    back, 12 the version is not approved, 10 the cluster could not be reached.
    """


@deploy.command()
@click.argument("ref")
@env_option
@config_option
@address_option
@click.option("--canary", help="Traffic steps in percent, e.g. 5,25,50,100 [default: the environment's].")
@click.option("--step-seconds", type=click.FloatRange(min=0), help="Seconds the gates watch each step.")
@click.option("--serve-config", type=click.Path(path_type=Path, dir_okay=False), help="Write the Serve config here.")
@click.option(
    "--shadow", is_flag=True, help="Start it beside the live version and mirror every request to it; move no traffic."
)
@click.option("--dry-run", is_flag=True, help="Check the version and write the Serve config; change nothing.")
def run(
    ref: str,
    env: str,
    config_path: Path | None,
    address: str | None,
    canary: str | None,
    step_seconds: float | None,
    serve_config: Path | None,
    shadow: bool,
    dry_run: bool,
) -> None:
    """Deploy REF (NAME@VERSION or NAME@STAGE) to ENV."""
    from llmci.config import load_config
    from llmci.deploy import open_deployer
    from llmci.deploy.github import deployment_for
    from llmci.deploy.rollout import require_approved
    from llmci.errors import UsageError
    from llmci.lint.model import require_clean_templates
    from llmci.registry import default_actor, open_registry

    loaded = load_config(config_path)
    registry = open_registry(loaded)
    manifest = registry.resolve(ref)
    if not dry_run:
        require_approved(registry, manifest)  # before anything starts: no head, no GitHub deployment
        require_clean_templates(registry, manifest, loaded)  # nor for a version whose chat template is poisoned
    deployer = open_deployer(loaded, env, registry, address=address, actor=default_actor(), say=_say)
    settings = deployer.settings
    steps = settings.canary
    if canary:
        try:
            steps = [float(part) for part in canary.split(",")]
        except ValueError:
            raise UsageError(f"--canary '{canary}': give percents separated by commas, e.g. 5,25,50,100") from None
        if not steps or steps[-1] != 100 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise UsageError(f"--canary '{canary}': steps must rise and end at 100")
    out = serve_config or loaded.root / ".llmci" / "serve" / f"{env}.serve.yaml"
    if dry_run:
        plan = deployer.plan(manifest, out)
        click.echo(plan)
        return
    # A shadow serves nobody: it is no GitHub deployment.
    github = None if shadow else deployment_for(env, manifest, settings.url or deployer.url)
    outcome = None
    try:
        outcome = deployer.deploy(
            manifest,
            canary=steps,
            step_seconds=settings.step_seconds if step_seconds is None else step_seconds,
            serve_config_out=out,
            shadow=shadow,
        )
    finally:
        if github is not None:
            github.finish(outcome)
    _finish(deployer, outcome)


@deploy.command()
@env_option
@click.option("--model", help="The model to roll back [default: the last one deployed to ENV].")
@config_option
@address_option
def rollback(env: str, model: str | None, config_path: Path | None, address: str | None) -> None:
    """Put ENV back on the version that served before its last deploy."""
    from llmci.config import load_config
    from llmci.deploy import open_deployer
    from llmci.registry import default_actor, open_registry

    loaded = load_config(config_path)
    deployer = open_deployer(loaded, env, open_registry(loaded), address=address, actor=default_actor(), say=_say)
    _finish(deployer, deployer.rollback(model))


@deploy.command()
@env_option
@config_option
@address_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(env: str, config_path: Path | None, address: str | None, as_json: bool) -> None:
    """What ENV serves now: versions, weights, application and replica health, traffic."""
    import json

    from llmci.config import load_config
    from llmci.deploy import open_deployer
    from llmci.registry import default_actor, open_registry

    loaded = load_config(config_path)
    deployer = open_deployer(
        loaded, env, open_registry(loaded), address=address, actor=default_actor(), say=_say, start_local=False
    )
    report = deployer.status()
    click.echo(json.dumps(report, indent=2) if as_json else deployer.status_text(report))


@deploy.command()
@env_option
@config_option
@click.option("--at", "at", help="Only what served at this time (ISO 8601, e.g. 2026-11-27T14:00:00Z).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(env: str, config_path: Path | None, at: str | None, as_json: bool) -> None:
    """Every deploy, step, gate result and rollback of ENV, oldest first (from the registry store)."""
    import json

    from llmci import gha
    from llmci.config import load_config
    from llmci.deploy.history import history_text, serving_at
    from llmci.deploy.ledger import Ledger
    from llmci.deploy.rollout import environment
    from llmci.registry import open_registry

    loaded = load_config(config_path)
    environment(loaded, env)
    events = Ledger(open_registry(loaded).store, env).events()
    if at is not None:
        events = serving_at(events, at)
    with gha.commands_stopped():  # messages quote model names, gate reasons and actors
        if as_json:
            click.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        else:
            click.echo(history_text(events, at=at))


@deploy.command("stop-local")
@config_option
def stop_local(config_path: Path | None) -> None:
    """Stop the local Ray head llmci started for environments without an address (and all they serve)."""
    from llmci.config import load_config
    from llmci.deploy import local_head

    loaded = load_config(config_path)
    stopped = local_head.stop(loaded.root)
    click.echo("stopped the local Ray head" if stopped else "no local Ray head was running", err=True)


def _finish(deployer, outcome) -> None:
    from llmci import gha

    click.echo(f"{outcome.ref} serves {outcome.env} at {outcome.url}")
    if gha.in_actions():
        gha.set_output("url", outcome.url)
        gha.set_output("action", outcome.action)
        gha.append_summary(deployer.summary_markdown(outcome))


def _say(line: str) -> None:
    click.echo(line, err=True)
