from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from llmci.commands import config_option

if TYPE_CHECKING:
    from llmci.registry import Registry


@click.group()
@config_option
@click.option(
    "--registry",
    "uri",
    envvar="LLMCI_REGISTRY",
    help="file://PATH or s3://BUCKET/PREFIX [default: registry.uri of llmci.yaml].",
)
@click.pass_context
def registry(ctx: click.Context, config_path: Path | None, uri: str | None) -> None:
    """Model versions, approvals and stages (file:// or s3://)."""
    ctx.obj = (config_path, uri)


def _open(ctx: click.Context) -> Registry:
    from llmci.config import load_config
    from llmci.registry import open_registry

    config_path, uri = ctx.find_object(tuple)
    return open_registry(load_config(config_path), uri)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    from llmci.errors import UsageError

    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} '{value}' is not KEY=VALUE")
        pairs[key] = val
    return pairs


def _json_file(path: Path | None, what: str) -> dict[str, Any]:
    from llmci.errors import InputError

    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} must be a JSON object")
    return data


@registry.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Model name (letters, digits, '.', '_', '-').")
@click.option("--metrics", "metrics_file", type=click.Path(path_type=Path), help="JSON object of metric -> number.")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE, repeatable.")
@click.option(
    "--lineage",
    "lineage_file",
    type=click.Path(path_type=Path),
    help="JSON object of lineage fields (dataset_sha256, base_model, ...); git and the run are found.",
)
@click.pass_context
def publish(
    ctx: click.Context,
    folder: Path,
    name: str,
    metrics_file: Path | None,
    tags: tuple[str, ...],
    lineage_file: Path | None,
) -> None:
    """Publish FOLDER as the next version of NAME; prints NAME@VERSION.

    Identical content returns the version that already holds it, uploading nothing.
    """
    from llmci import gha
    from llmci.errors import InputError
    from llmci.registry import Lineage, default_actor
    from llmci.registry.manifest import lineage_from_environment

    metrics = _json_file(metrics_file, "metrics")
    bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise InputError(f"{metrics_file}: metric '{bad[0]}' is not a number")
    lineage = lineage_from_environment().model_dump(exclude_none=True)
    lineage.update(_json_file(lineage_file, "lineage"))
    with _terminated_says(f"publishing {folder}", "nothing was published"):
        result = _open(ctx).publish(
            folder,
            name,
            metrics=metrics,
            tags=_pairs(tags, "--tag"),
            lineage=Lineage(**lineage),
            created_by=default_actor(),
        )
    manifest = result.manifest
    if result.repaired:
        files = ", ".join(result.repaired)
        click.echo(f"repaired: the registry's copy of {files} was damaged and is uploaded again", err=True)
    if not result.created:
        uploaded = "the damaged files uploaded again" if result.repaired else "nothing uploaded"
        click.echo(f"unchanged: {manifest.ref} already holds this content ({uploaded})", err=True)
    click.echo(manifest.ref)
    gha.set_output("model", manifest.name)
    gha.set_output("version", str(manifest.version))
    gha.set_output("ref", manifest.ref)


@registry.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """The models, or the versions of NAME with status and stages.

    A version whose manifest is damaged is listed as INVALID and named in the error (exit 6).
    """
    from llmci.errors import IntegrityError
    from llmci.registry import STAGES

    reg = _open(ctx)
    if name is None:
        rows = []
        for model in reg.names():
            versions = reg.versions(model)
            states = reg.stage_states(model)
            rows.append(
                {
                    "name": model,
                    "versions": len(versions),
                    "latest": versions[-1] if versions else None,
                    **{stage: states[stage].version if stage in states else None for stage in STAGES},
                    "serving": {stage: state.problem is None for stage, state in states.items()},
                    "_cells": {stage: _stage_cell(state) for stage, state in states.items()},
                }
            )
        _emit(rows, as_json, ["name", "versions", "latest", *STAGES])
        return
    states = reg.stage_states(name)
    rows, problems = [], []
    for version in reg.versions(name, must_exist=True):
        stages = [state for state in states.values() if state.version == version]
        row = {"version": version, "stages": ",".join(state.stage for state in stages)}
        try:
            manifest = reg.manifest(name, version)
        except IntegrityError as exc:  # list the rest, and name this one
            problems.append(exc)
            rows.append({**row, "status": "INVALID", "error": exc.message})
            continue
        rows.append(
            {
                **row,
                "status": reg.status(name, version).status,
                "created_at": manifest.created_at,
                "size": manifest.size,
                "digest": manifest.digest.removeprefix("sha256:")[:12],
                "metrics": manifest.metrics,
                "_cells": {"stages": ",".join(_stage_label(state) for state in stages)},
            }
        )
    _emit(rows, as_json, ["version", "status", "stages", "created_at", "size", "digest", "metrics"])
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more versions)" if len(problems) > 1 else ""
        raise IntegrityError(f"{first.message}{more}", hint=first.hint)


@registry.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A version's manifest, status, stages and audit log.

    A stage is shown even when it serves nothing (its version was rejected): that is what to look at.
    """
    from dataclasses import asdict

    from llmci import gha

    reg = _open(ctx)
    manifest = reg.resolve(ref, serving_only=False)
    status = reg.status(manifest.name, manifest.version).status
    states = [state for state in reg.stage_states(manifest.name).values() if state.version == manifest.version]
    history = [asdict(event) for event in reg.history(manifest.name, manifest.version)]
    if as_json:
        data = {
            "manifest": json.loads(manifest.to_json()),
            "status": status,
            "stages": [state.stage for state in states],
            "serving": [state.stage for state in states if state.problem is None],
            "history": history,
        }
        click.echo(json.dumps(data, indent=2))
        return
    lineage = {k: v for k, v in manifest.lineage.model_dump().items() if v not in (None, {}, "")}
    where = f"  in {', '.join(_stage_label(state, full=True) for state in states)}" if states else ""
    # Notes, tags, lineage, names and metric names are anyone's text: in Actions none of it may be a command.
    with gha.commands_stopped():
        click.echo(f"{manifest.ref}  {status}{where}")
        click.echo(f"  digest      {manifest.digest}")
        click.echo(f"  created     {manifest.created_at} by {_text(manifest.created_by or '?')}")
        click.echo(f"  files       {len(manifest.files)} ({_size(manifest.size)})")
        for key, value in {
            **{f"metric {k}": v for k, v in manifest.metrics.items()},
            **{f"tag {k}": v for k, v in manifest.tags.items()},
            **lineage,
        }.items():
            click.echo(f"  {_text(key):11s} {_text(value)}")
        click.echo("audit log:" if history else "audit log: (no transitions yet)")
        for event in history:
            stage = f" {event['stage']}" if event["stage"] else ""
            note = f"  {_text(repr(event['note']))}" if event["note"] else ""
            before, after = event["before"] or "-", event["after"] or "-"
            click.echo(f"  {event['at']}  {_text(event['by'])}  {event['action']}{stage}: {before} -> {after}{note}")


def _text(value: Any) -> str:
    from llmci.registry.versions import inline

    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return inline(str(value))


def _stage_label(state, *, full: bool = False) -> str:
    """`production`, or `production (REJECTED by bob at T: not serving)` (`(REJECTED: not serving)` short)."""
    if state.problem is None:
        return state.stage
    problem = state.problem if full else state.problem.split(" by ")[0]
    return f"{state.stage} ({problem}: not serving)"


def _stage_cell(state) -> str:
    """`3`, or `3 (REJECTED by bob at T: not serving)`."""
    return str(state.version) if state.problem is None else f"{state.version} ({state.problem}: not serving)"


def _transition_command(action: str, done: str):
    @registry.command(action, help=f"Mark a version {done} (audited).")
    @click.argument("ref")
    @click.option("--by", required=True, help="Who decides (a person, not a bot).")
    @click.option("--note", required=True, help="Why.")
    @click.pass_context
    def command(ctx: click.Context, ref: str, by: str, note: str) -> None:
        from llmci import gha

        reg = _open(ctx)
        record = getattr(reg, action)(ref, by=by, note=note)
        manifest = reg.resolve(ref, serving_only=False)
        click.echo(f"{manifest.ref}: {record.status}")
        for state in reg.stage_states(manifest.name).values():
            if state.version == manifest.version and state.problem is not None:
                gha.warning(
                    f"{manifest.name}@{state.stage} -> {state.version} is not served any more; promote another "
                    f"version: llmci registry promote {manifest.name}@VERSION --stage {state.stage}"
                )

    return command


approve = _transition_command("approve", "approved")
reject = _transition_command("reject", "rejected")


@registry.command()
@click.argument("ref")
@click.option("--stage", required=True, type=click.Choice(["staging", "production"]))
@click.option("--by", help="Who promotes [default: GITHUB_ACTOR, else the local user].")
@click.option("--note", default="", help="Why.")
@click.pass_context
def promote(ctx: click.Context, ref: str, stage: str, by: str | None, note: str) -> None:
    """Point STAGE at an approved version (compare-and-swap: exit 5 if someone else moved it)."""
    from llmci.registry import default_actor, parse_ref

    reg = _open(ctx)
    pointer = reg.promote(ref, stage, by=by or default_actor(), note=note)
    click.echo(f"{parse_ref(ref).name}@{stage} -> {pointer.version}")


@registry.command()
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=Path))
@click.pass_context
def pull(ctx: click.Context, ref: str, dest: Path) -> None:
    """Download a version into DEST, verifying every file; DEST is untouched on failure (SIGTERM too: exit 143)."""
    with _terminated_says(f"pulling {ref}", f"nothing was left beside {dest}"):
        manifest = _open(ctx).pull(ref, dest)
    click.echo(f"{manifest.ref} -> {dest} ({len(manifest.files)} files, {_size(manifest.size)})")


@registry.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Metrics, lineage and files of two versions side by side."""
    difference = _open(ctx).diff(a, b)
    if as_json:
        click.echo(json.dumps(difference, indent=2))
        return
    left, right, summary = difference["a"], difference["b"], difference["files"]
    # _emit stops workflow commands: metric names are anyone's text.
    _emit(difference["fields"], False, ["field", left, right, "delta"])
    click.echo(f"files: {summary['added']} added, {summary['removed']} removed, {summary['changed']} changed")


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    """Rows as JSON, or as a table (a row's `_cells` overrides how a column is shown there).

    The table is printed with workflow commands stopped: its cells hold metric
    names and other text anyone could have written.
    """
    from llmci import gha

    if as_json:
        click.echo(json.dumps([{k: v for k, v in row.items() if k != "_cells"} for row in rows], indent=2))
        return
    cells = [[row.get("_cells", {}).get(column) or _cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    with gha.commands_stopped():
        click.echo("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
        for row in cells:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return _text(" ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()) or "-")
    if isinstance(value, float):
        return f"{value:g}"
    return _text(value)


@contextlib.contextmanager
def _terminated_says(doing: str, outcome: str):
    """One line on stderr when SIGTERM ends a transfer (the library has cleaned up; exit 143)."""
    from llmci.registry.versions import Terminated

    try:
        yield
    except Terminated:
        click.echo(f"llmci: error: terminated (SIGTERM) while {doing}; {outcome}", err=True)
        raise


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
