from __future__ import annotations

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
    result = _open(ctx).publish(
        folder,
        name,
        metrics=metrics,
        tags=_pairs(tags, "--tag"),
        lineage=Lineage(**lineage),
        created_by=default_actor(),
    )
    manifest = result.manifest
    if not result.created:
        click.echo(f"unchanged: {manifest.ref} already holds this content (nothing uploaded)", err=True)
    click.echo(manifest.ref)
    gha.set_output("model", manifest.name)
    gha.set_output("version", str(manifest.version))
    gha.set_output("ref", manifest.ref)


@registry.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """The models, or the versions of NAME with status and stages."""
    reg = _open(ctx)
    if name is None:
        rows = []
        for model in reg.names():
            versions = reg.versions(model)
            stages = reg.stages_of(model)
            rows.append(
                {
                    "name": model,
                    "versions": len(versions),
                    "latest": versions[-1] if versions else None,
                    **{stage: stages.get(stage) for stage in ("staging", "production")},
                }
            )
        _emit(rows, as_json, ["name", "versions", "latest", "staging", "production"])
        return
    stages = reg.stages_of(name)
    rows = []
    for version in reg.versions(name, must_exist=True):
        manifest = reg.manifest(name, version)
        rows.append(
            {
                "version": version,
                "status": reg.status(name, version).status,
                "stages": ",".join(s for s, v in stages.items() if v == version),
                "created_at": manifest.created_at,
                "size": manifest.size,
                "digest": manifest.digest.removeprefix("sha256:")[:12],
                "metrics": manifest.metrics,
            }
        )
    _emit(rows, as_json, ["version", "status", "stages", "created_at", "size", "digest", "metrics"])


@registry.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A version's manifest, status, stages and audit log."""
    from dataclasses import asdict

    reg = _open(ctx)
    manifest = reg.resolve(ref)
    status = reg.status(manifest.name, manifest.version).status
    stages = [s for s, v in reg.stages_of(manifest.name).items() if v == manifest.version]
    history = [asdict(event) for event in reg.history(manifest.name, manifest.version)]
    if as_json:
        data = {"manifest": json.loads(manifest.to_json()), "status": status, "stages": stages, "history": history}
        click.echo(json.dumps(data, indent=2))
        return
    lineage = {k: v for k, v in manifest.lineage.model_dump().items() if v not in (None, {}, "")}
    click.echo(f"{manifest.ref}  {status}{'  in ' + ', '.join(stages) if stages else ''}")
    click.echo(f"  digest      {manifest.digest}")
    click.echo(f"  created     {manifest.created_at} by {manifest.created_by or '?'}")
    click.echo(f"  files       {len(manifest.files)} ({_size(manifest.size)})")
    for key, value in {
        **{f"metric {k}": v for k, v in manifest.metrics.items()},
        **{f"tag {k}": v for k, v in manifest.tags.items()},
        **lineage,
    }.items():
        click.echo(f"  {key:11s} {value}")
    click.echo("audit log:" if history else "audit log: (no transitions yet)")
    for event in history:
        where = f" {event['stage']}" if event["stage"] else ""
        note = f'  "{event["note"]}"' if event["note"] else ""
        click.echo(
            f"  {event['at']}  {event['by']}  {event['action']}{where}: {event['before']} -> {event['after']}{note}"
        )


def _transition_command(action: str):
    @registry.command(action, help=f"Mark a version {action}d (audited).")
    @click.argument("ref")
    @click.option("--by", required=True, help="Who decides (a person, not a bot).")
    @click.option("--note", required=True, help="Why.")
    @click.pass_context
    def command(ctx: click.Context, ref: str, by: str, note: str) -> None:
        reg = _open(ctx)
        record = getattr(reg, action)(ref, by=by, note=note)
        click.echo(f"{reg.resolve(ref).ref}: {record.status}")

    return command


approve = _transition_command("approve")
reject = _transition_command("reject")


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
    """Download a version into DEST, verifying every file; DEST is untouched on failure."""
    manifest = _open(ctx).pull(ref, dest)
    click.echo(f"{manifest.ref} -> {dest} ({len(manifest.files)} files, {_size(manifest.size)})")


@registry.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Metrics, lineage and files of two versions side by side."""
    reg = _open(ctx)
    left, right = reg.resolve(a), reg.resolve(b)
    rows = []
    for key in sorted(left.metrics.keys() | right.metrics.keys()):
        x, y = left.metrics.get(key), right.metrics.get(key)
        rows.append(
            {
                "field": f"metric {key}",
                left.ref: x,
                right.ref: y,
                "delta": None if x is None or y is None else round(y - x, 6),
            }
        )
    lineage_a, lineage_b = left.lineage.model_dump(), right.lineage.model_dump()
    for key in sorted(lineage_a.keys() | lineage_b.keys()):
        if lineage_a.get(key) != lineage_b.get(key):
            rows.append({"field": key, left.ref: lineage_a.get(key), right.ref: lineage_b.get(key), "delta": None})
    files_a = {f.path: f.sha256 for f in left.files}
    files_b = {f.path: f.sha256 for f in right.files}
    changed = sum(1 for p in files_a.keys() & files_b.keys() if files_a[p] != files_b[p])
    summary = {
        "added": len(files_b.keys() - files_a.keys()),
        "removed": len(files_a.keys() - files_b.keys()),
        "changed": changed,
    }
    if as_json:
        click.echo(json.dumps({"a": left.ref, "b": right.ref, "fields": rows, "files": summary}, indent=2))
        return
    _emit(rows, False, ["field", left.ref, right.ref, "delta"])
    click.echo(f"files: {summary['added']} added, {summary['removed']} removed, {summary['changed']} changed")


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    click.echo("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
