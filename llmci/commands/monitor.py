from __future__ import annotations

from pathlib import Path

import click

from llmci.commands import config_option
from llmci.commands.deploy import address_option, env_option


@click.group()
def monitor() -> None:
    """Watch a deployed environment: health, latency, cost and drift per version, with alerts.

    \b
    llmci monitor check --env ENV [--window 1h]      measure, judge the rules, write the dashboard, alert
    llmci monitor alert --env ENV --report FILE      send the alerts of a report check wrote
    llmci monitor rules --env ENV --out DIR          Prometheus alerting rules and a Grafana dashboard
    llmci monitor sample --env ENV --n 500 --out F   production records as a recorded eval dataset

    Exit codes of check: 0 nothing critical, 1 a rule is at its critical level (also when an alert
    could not be delivered), 13 an alert could not be delivered (the next run retries it), 2 usage
    or config error.
    """


@monitor.command()
@env_option
@config_option
@address_option
@click.option("--window", help="How far back to look, e.g. 15m, 1h, 7d [default: monitor.window].")
@click.option("--reference", help="Drift reference: suite, suite:NAME or window:START/END [default: monitor.drift].")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out/monitor"),
    show_default=True,
    help="Folder for monitor.json, monitor.html, summary.md and monitor.png.",
)
@click.option("--alerts/--no-alerts", default=True, help="Send the configured alerts [default: on].")
@click.option("--png/--no-png", default=True, help="Screenshot the dashboard with headless Chromium [default: on].")
def check(
    env: str,
    config_path: Path | None,
    address: str | None,
    window: str | None,
    reference: str | None,
    out: Path,
    alerts: bool,
    png: bool,
) -> None:
    """Measure ENV over the window, judge monitor.rules, write the dashboard, and alert."""
    from llmci import gha
    from llmci.config import load_config
    from llmci.deploy.ledger import Ledger
    from llmci.deploy.rollout import environment
    from llmci.errors import AlertsUndelivered, ExitCode
    from llmci.fsutil import atomic_write_text
    from llmci.monitor.check import check as run_check
    from llmci.monitor.check import resolve_reference, window_bounds
    from llmci.monitor.cluster import observe
    from llmci.monitor.dashboard import render_dashboard
    from llmci.monitor.summary import summary_markdown
    from llmci.registry import open_registry

    loaded = load_config(config_path)
    environment(loaded, env)  # a known environment, before its name makes any store key
    settings = loaded.config.monitor
    store = open_registry(loaded).store
    start, end = window_bounds(window or settings.window)
    drift_reference = resolve_reference(loaded, env, store, reference)
    cluster = observe(loaded, env, store, address=address)
    report = run_check(
        loaded,
        env,
        store,
        start=start,
        end=end,
        reference=drift_reference,
        cluster=cluster,
        events=Ledger(store, env).events(),
        links=_links(settings.dashboard_url),
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "monitor.json", report.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / "monitor.html", render_dashboard(report))
    png_name = _screenshot(out) if png else None
    summary = summary_markdown(report, png_name)
    atomic_write_text(out / "summary.md", summary)
    with gha.commands_stopped():  # the report quotes versions, rules and notes
        click.echo(_headline(report))
        for note in report.notes:
            click.echo(f"  note: {note}", err=True)
    click.echo(f"dashboard: {out / 'monitor.html'}", err=True)
    if gha.in_actions():
        gha.append_summary(summary_markdown(report, None))  # a job summary cannot show a file of the runner
        gha.set_output("level", report.level)
        gha.set_output("dashboard", str(out / "monitor.html"))
    critical = report.level == "critical"  # the headline above named the critical findings
    if alerts:
        try:
            _alert(loaded, env, store, report)
        except AlertsUndelivered as exc:
            if not critical:
                raise
            from llmci.cli import _report

            _report(str(exc))  # said, and the critical breach's exit code wins: it is what a schedule watches
    if critical:
        raise click.exceptions.Exit(ExitCode.FAILED)


@monitor.command()
@env_option
@config_option
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("out/monitor/monitor.json"),
    show_default=True,
    help="The monitor.json `llmci monitor check` wrote.",
)
def alert(env: str, config_path: Path | None, report_path: Path) -> None:
    """Send the alerts of a report `check` wrote (a separate job may hold the issues: write token)."""
    from pydantic import ValidationError

    from llmci.config import load_config
    from llmci.deploy.rollout import environment
    from llmci.errors import InputError, first_line
    from llmci.fsutil import display_path
    from llmci.monitor.report import MonitorReport
    from llmci.registry import open_registry

    loaded = load_config(config_path)
    environment(loaded, env)
    try:
        report = MonitorReport.model_validate_json(report_path.read_bytes())
    except OSError as exc:
        raise InputError(f"{display_path(report_path)}: cannot read: {exc.strerror}") from None
    except ValidationError as exc:
        raise InputError(f"{display_path(report_path)}: not a monitor report: {first_line(exc)}") from None
    if report.env != env:
        raise InputError(f"{display_path(report_path)}: the report is of '{report.env}', not '{env}'")
    _alert(loaded, env, open_registry(loaded).store, report, required=True)


@monitor.command()
@env_option
@config_option
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder for the two files."
)
def rules(env: str, config_path: Path | None, out: Path) -> None:
    """Prometheus alerting rules and a Grafana dashboard for monitor.rules (for a team's own Alertmanager)."""
    import json

    from llmci.config import load_config
    from llmci.deploy.rollout import environment
    from llmci.fsutil import atomic_write_text
    from llmci.monitor.exporters import grafana_dashboard, prometheus_rules

    loaded = load_config(config_path)
    environment(loaded, env)
    out.mkdir(parents=True, exist_ok=True)
    rules_path, dashboard_path = out / f"llmci-{env}.rules.yml", out / f"llmci-{env}.grafana.json"
    atomic_write_text(rules_path, prometheus_rules(loaded.config.monitor, env))
    atomic_write_text(dashboard_path, json.dumps(grafana_dashboard(loaded.config.monitor, env), indent=2) + "\n")
    click.echo(f"wrote {rules_path} and {dashboard_path}")


@monitor.command()
@env_option
@config_option
@click.option("--window", default="7d", show_default=True, help="How far back to sample.")
@click.option("--n", "n", type=click.IntRange(min=1), default=500, show_default=True, help="Cases to write.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The JSONL dataset.")
@click.option("--drop-var", "drop_vars", multiple=True, help="A var that may identify a person (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
def sample(env: str, config_path: Path | None, window: str, n: int, out: Path, drop_vars: tuple[str, ...], seed: int):
    """Production records as a `recorded` eval dataset, stratified by version and answer label."""
    import json

    from llmci.config import load_config
    from llmci.deploy.rollout import environment
    from llmci.fsutil import atomic_write_text
    from llmci.monitor.check import suite_reference, window_bounds
    from llmci.monitor.sample import sample_cases
    from llmci.registry import open_registry

    loaded = load_config(config_path)
    environment(loaded, env)
    start, end = window_bounds(window)
    labels = None
    if any(suite.dataset for suite in loaded.config.eval.suites.values()):
        labels = suite_reference(loaded, None, env).labels
    cases = sample_cases(open_registry(loaded).store, env, start, end, n, labels=labels, drop_vars=drop_vars, seed=seed)
    atomic_write_text(out, "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases))
    click.echo(f"wrote {len(cases)} cases to {out}")


def _links(dashboard_url: str | None):
    import os

    from llmci.monitor.report import Links

    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    run_id = os.environ.get("GITHUB_RUN_ID")
    base = f"{server}/{repository}" if server and repository else None
    return Links(
        dashboard=dashboard_url or (f"{base}/actions/runs/{run_id}" if base and run_id else None),
        rollback=f"{base}/actions/workflows/{os.environ.get('LLMCI_DEPLOY_WORKFLOW', 'deploy.yml')}" if base else None,
        run=f"{base}/actions/runs/{run_id}" if base and run_id else None,
    )


def _screenshot(out: Path) -> str | None:
    from llmci.errors import LlmciError
    from llmci.monitor.screenshot import screenshot

    try:
        screenshot(out / "monitor.html", out / "monitor.png")
    except LlmciError as exc:
        click.echo(f"no dashboard PNG: {exc}", err=True)
        return None
    return "monitor.png"


def _alert(loaded, env: str, store, report, *, required: bool = False) -> None:
    """Send what changed since the last run to every configured channel; exit 13 when one could not be reached."""
    import os

    from llmci.errors import AlertsUndelivered, UsageError
    from llmci.monitor.alerts import dispatch_alerts

    settings = loaded.config.monitor.alerts
    if not (settings.slack or settings.email or settings.github_issues):
        if required:
            raise UsageError("monitor.alerts names no channel (slack, email or github_issues)")
        return
    _mask_secrets(settings)
    # Without a token the GitHub channel alone fails (and is retried next run); Slack and e-mail still go out.
    github = _github() if settings.github_issues and os.environ.get("GITHUB_TOKEN") else None
    outcome = dispatch_alerts(report, settings, store, github=github)
    for line in outcome.lines():
        click.echo(line, err=True)
    if outcome.failed:
        raise AlertsUndelivered(f"{env}: alerts not delivered: {outcome.failed_text()}")


def _github():
    """The repository's GitHub client for incident issues, from the Actions environment (None without a repository)."""
    import os

    from llmci import gha
    from llmci.report.github import GitHub

    token, repository = os.environ["GITHUB_TOKEN"], os.environ.get("GITHUB_REPOSITORY")
    if not repository:
        return None
    gha.add_mask(token)
    return GitHub(
        api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com"), token=token, repository=repository
    )


def _mask_secrets(settings) -> None:
    """The webhook and the SMTP password never show in an Actions log, whatever a message quotes."""
    import os

    from llmci import gha

    names = [settings.slack.webhook_env if settings.slack else None]
    if settings.email:
        names.append(settings.email.password_env)
    for name in names:
        if name and os.environ.get(name) and gha.in_actions():
            gha.add_mask(os.environ[name])


def _headline(report) -> str:
    lines = [
        f"{report.env}: {report.level.upper()} ({report.records} records, {report.window_start} to {report.window_end})"
    ]
    for health in report.versions:
        m = health.metrics
        p95 = m.get("latency_p95_ms")
        lines.append(
            f"  {health.ref}: {health.requests} requests, {health.traffic_share:.0%} of traffic, "
            f"errors {m.get('error_rate') or 0:.2%}, p95 {'n/a' if p95 is None else f'{p95:.0f} ms'}, "
            f"drifted {sum(t.drifted for t in health.drift)}/{len(health.drift)}"
        )
    for finding in report.findings:
        if finding.level in ("warning", "critical"):
            lines.append(f"  {finding.level}: {finding.message}")
    return "\n".join(lines)
