"""`llmci init`: scaffold llmci into a repository from the templates in `templates/`.

The templates are the top-level `templates/` folder of the llmci repository; the
wheel ships them as `llmci/_templates` (a link to `../templates` in the
repository, followed when the wheel is built). They are Jinja2 with square
delimiters (`[[ name ]]`, `[% if x %]`), so the `${{ }}` of workflows and the
`{{ }}` of prompt templates pass through as text. The starter workflows in
`workflows/` are these templates rendered with `STARTER` (placeholders for the
repository and the commit): `python -m llmci.scaffold` rewrites them, and a test
fails when they differ.

`plan` decides what to write (it writes nothing), `write` writes it.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmci import __version__
from llmci.errors import UsageError
from llmci.fsutil import atomic_write_text, display_path

#: What `--with` can ask for, in the order the sections appear.
STAGES = ("lint", "eval", "train", "deploy", "monitor")
DEFAULT_STAGES = ("lint", "eval")
#: The llmci repository the workflows call when neither `--repo` nor the installation tells another.
DEFAULT_REPOSITORY = "llmci/llmci"
#: The eval suite `init` writes, and its files.
SUITE = "example"
PROMPT = "prompts/example.j2"
DATASET = "data/example.jsonl"
TRAIN_DATASET = "data/train.jsonl"
DEFAULT_MODEL = "my-model"

#: The context the starter workflows in `workflows/` are rendered with.
STARTER: dict[str, Any] = {
    "starter": True,
    "repository": "OWNER/llmci",
    "ref": "0" * 40,
    "pin_note": "pin a full SHA",
    "model": "ticket-router",
    "suite": "routing",
    "target": "registry:ticket-router@production",
    "eval": True,
    "api_key": False,
}
#: starter file in workflows/ -> (template, file `init` writes in .github/workflows/)
WORKFLOWS = {
    "pr.yml": ("workflows/pr.yml.j2", "llmci-pr.yml"),
    "deploy.yml": ("workflows/deploy.yml.j2", "llmci-deploy.yml"),
    "release.yml": ("workflows/release.yml.j2", "llmci-release.yml"),
    "monitor.yml": ("workflows/monitor.yml.j2", "llmci-monitor.yml"),
}

_SHA = re.compile(r"[0-9a-f]{40}")
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
#: A target written into YAML as a plain scalar: no spaces, quotes, braces or `${{`.
_PLAIN_TARGET = re.compile(r"[A-Za-z][A-Za-z0-9._:/@#%+=~-]*")


def templates_root() -> Path:
    """The templates: `llmci/_templates` (the wheel's copy, or the link in a checkout), else `templates/`."""
    package = Path(__file__).resolve().parent
    shipped = package / "_templates"
    return shipped if shipped.is_dir() else package.parent / "templates"


def _environment() -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_root())),
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=StrictUndefined,
        autoescape=False,
    )


def render(template: str, context: dict[str, Any]) -> str:
    """One template of `templates/` rendered with `context`."""
    return _environment().get_template(template).render(**context)


def render_starters() -> dict[str, str]:
    """The starter workflows as `workflows/NAME` must read: name -> text."""
    return {name: render(template, STARTER) for name, (template, _) in WORKFLOWS.items()}


# -- what to pin ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """The llmci repository and commit the written workflows call, and how they were found."""

    repository: str
    ref: str
    source: str


def parse_stages(values: Iterable[str]) -> tuple[str, ...]:
    """`--with lint,eval` (repeatable, comma-separated) -> the stages, in STAGES order."""
    asked = {part.strip() for value in values for part in value.split(",") if part.strip()}
    for name in sorted(asked - set(STAGES)):
        close = difflib.get_close_matches(name, STAGES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose from {', '.join(STAGES)}"
        raise UsageError(f"--with: unknown stage '{name}'", hint=hint)
    return tuple(stage for stage in STAGES if stage in asked) or DEFAULT_STAGES


def resolve_pin(ref: str | None, repository: str | None) -> Pin:
    """The commit: `--ref`, else the one pip recorded installing llmci from git, else the llmci checkout's HEAD.

    The repository: `--repo`, else the GitHub repository llmci was installed from,
    else the checkout's `origin` on GitHub, else DEFAULT_REPOSITORY.
    """
    installed_url, installed_commit = _installed_from()
    checkout = _checkout()
    source = "--ref"
    if ref is None and installed_commit:
        ref, source = installed_commit, "the commit pip installed llmci from"
    if ref is None and checkout is not None:
        ref = _git(checkout, "rev-parse", "HEAD")
        source = f"HEAD of the llmci checkout {checkout}"
    if ref is None:
        raise UsageError(
            "cannot tell which llmci commit the workflows should call (llmci was not installed from git "
            "and does not run from a checkout)",
            hint="pass --ref with the full 40-hex commit SHA of the llmci release you installed",
        )
    ref = ref.strip().lower()
    if not _SHA.fullmatch(ref):
        raise UsageError(
            f"--ref {ref}: not a full commit SHA",
            hint="workflows are pinned to a 40-hex commit (a tag or branch can move); `git rev-parse TAG` gives it",
        )
    if repository is None:
        repository = _github_repository(installed_url) or (
            _github_repository(_git(checkout, "remote", "get-url", "origin")) if checkout else None
        )
    repository = repository or DEFAULT_REPOSITORY
    if not _REPOSITORY.fullmatch(repository):
        raise UsageError(f"--repo {repository}: expected OWNER/NAME of the llmci repository on GitHub")
    return Pin(repository, ref, source)


def _installed_from() -> tuple[str | None, str | None]:
    """(URL, commit) from the installation's direct_url.json (PEP 610): set by `pip install git+URL@REF`."""
    from importlib import metadata

    try:
        text = metadata.distribution("llmci").read_text("direct_url.json")
        data = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, ValueError):
        return None, None
    commit = (data.get("vcs_info") or {}).get("commit_id") if isinstance(data, dict) else None
    return (data.get("url") if isinstance(data, dict) else None), commit


def _checkout() -> Path | None:
    """The llmci repository this module runs from (an editable install or a source tree), if it is one."""
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists() and (root / ".github" / "workflows" / "pr-checks.yml").is_file():
        return root
    return None


def _git(folder: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _github_repository(url: str | None) -> str | None:
    """OWNER/NAME of a github.com URL (https, ssh or git+https), else None."""
    match = re.search(r"github\.com[:/]([^/\s]+/[^/\s@#]+?)(?:\.git)?/?(?:[@#].*)?$", url or "")
    return match.group(1) if match and _REPOSITORY.fullmatch(match.group(1)) else None


# -- the plan ---------------------------------------------------------------------------------

Action = Literal["write", "replace", "keep", "same"]


@dataclass(frozen=True)
class Planned:
    #: Relative to the folder init scaffolds.
    path: str
    text: str
    #: write: new file; replace: differs, --force; keep: differs, no --force; same: already so.
    action: Action


@dataclass(frozen=True)
class Plan:
    root: Path
    pin: Pin
    stages: tuple[str, ...]
    target: str | None
    files: list[Planned] = field(default_factory=list)

    @property
    def to_write(self) -> list[Planned]:
        return [item for item in self.files if item.action in ("write", "replace")]


def check_target(target: str) -> str:
    """An eval target as `llmci eval --target` takes it, safe to write into a workflow."""
    if target != "recorded":
        kind, _, rest = target.partition(":")
        if kind == "registry" and rest:
            from llmci.registry import parse_ref

            parse_ref(rest)
        elif kind in ("openai", "openai-completions") and rest:
            base_url, _, model = rest.partition("#")
            if not base_url.startswith(("http://", "https://")) or not model:
                raise UsageError(f"--target {target}: expected {kind}:BASE_URL#MODEL")
            if "@" in base_url.partition("://")[2].partition("/")[0]:
                raise UsageError(
                    "--target: a key in the URL would be written into a workflow file",
                    hint="give the URL without user:password@; the workflow passes the key as the api-key secret",
                )
        elif kind != "hf" or not rest:
            raise UsageError(
                f"--target {target}: unknown target",
                hint="use registry:NAME@STAGE, hf:PATH, openai:BASE_URL#MODEL or recorded",
            )
    if not _PLAIN_TARGET.fullmatch(target):
        raise UsageError(f"--target {target}: only letters, digits and ._:/@#%+=~- can be written into a workflow")
    return target


def plan(
    root: Path,
    *,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    target: str | None = None,
    pin: Pin,
    force: bool = False,
) -> Plan:
    """Every file `init` would write into `root`, rendered, each with what would happen to it."""
    if target is not None and "eval" not in stages:
        raise UsageError("--target names what the eval suite runs on", hint="add eval to --with, or drop --target")
    target = check_target(target) if target is not None else f"registry:{DEFAULT_MODEL}@production"
    model = target.partition(":")[2].partition("@")[0] if target.startswith("registry:") else DEFAULT_MODEL
    on = {stage: stage in stages for stage in STAGES}
    context: dict[str, Any] = {
        **on,
        "starter": False,
        "repository": pin.repository,
        "ref": pin.ref,
        "pin_note": f"llmci {__version__}",
        "model": model,
        "suite": SUITE,
        "target": target,
        "api_key": target.startswith("openai"),
        "registry": on["train"] or on["deploy"] or on["monitor"] or (on["eval"] and target.startswith("registry:")),
        "prompt": PROMPT,
        "dataset": DATASET,
        "train_dataset": TRAIN_DATASET,
    }
    files: dict[str, str] = {"llmci.yaml": render("llmci.yaml.j2", context)}
    if on["lint"] or on["eval"] or on["train"]:
        files[PROMPT] = _read(PROMPT)
    if on["eval"]:
        files[DATASET] = _read(DATASET)
    if on["train"]:
        files[TRAIN_DATASET] = _read(TRAIN_DATASET)
    workflows = {
        "pr.yml": on["lint"] or on["eval"],
        "deploy.yml": on["deploy"],
        "release.yml": on["deploy"] and on["eval"],  # a release is judged by the eval suite
        "monitor.yml": on["monitor"],
    }
    for name, wanted in workflows.items():
        if wanted:
            template, written = WORKFLOWS[name]
            files[f".github/workflows/{written}"] = render(template, context)
    result = Plan(root, pin, stages, target if on["eval"] else None)
    for path, text in files.items():
        result.files.append(Planned(path, text, _action(root / path, text, force)))
    return result


def _read(name: str) -> str:
    return (templates_root() / name).read_text(encoding="utf-8")


def _action(path: Path, text: str, force: bool) -> Action:
    if path.is_dir():
        raise UsageError(f"{display_path(path)}: is a folder where llmci init writes a file", hint="move it away")
    if not path.exists() and not path.is_symlink():
        return "write"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return "same"
    except (OSError, UnicodeDecodeError):
        pass
    return "replace" if force else "keep"


def write(result: Plan) -> list[str]:
    """Write what `result` plans; return the lines to print, one per file and then what to do next."""
    lines: list[str] = []
    for item in result.files:
        path = result.root / item.path
        if item.action in ("write", "replace"):
            atomic_write_text(path, item.text)
            lines.append(f"{'wrote' if item.action == 'write' else 'replaced'} {item.path}")
        elif item.action == "keep":
            lines.append(f"skipped {item.path}: it exists and differs; --force replaces it")
    if not result.to_write:
        lines.append("nothing to do: " + ("every file is already there" if not lines else "no file was written"))
        return lines
    lines.append(f"pinned the workflows to {result.pin.repository}@{result.pin.ref} ({result.pin.source})")
    lines.extend(next_steps(result))
    return lines


def next_steps(result: Plan) -> list[str]:
    stages = set(result.stages)
    steps = ["llmci config check && llmci lint    # check what was written"]
    secrets: list[str] = []
    if result.target and result.target.startswith("openai"):
        secrets.append("OPENAI_API_KEY (the key of the eval target)")
    if stages & {"deploy", "monitor"}:
        secrets.append("RAY_AUTH_TOKEN (if your Ray cluster uses token auth)")
    if "monitor" in stages:
        secrets.append("SLACK_WEBHOOK_URL, SMTP_USERNAME, SMTP_PASSWORD (only for the alert channels you enable)")
    if secrets:
        steps.append("add the repository secrets (Settings -> Secrets and variables -> Actions): " + "; ".join(secrets))
    if "deploy" in stages:
        steps.append(
            "create the GitHub environments 'staging' and 'production' (Settings -> Environments) "
            "and give 'production' required reviewers: deploys wait for their approval"
        )
    if stages & {"train", "deploy", "monitor"} or (result.target or "").startswith("registry:"):
        steps.append("point registry.uri in llmci.yaml at s3://BUCKET/PREFIX for CI (a folder does not outlive a job)")
    if result.target:
        steps.append(f"try the suite: llmci eval --suite {SUITE} --target {result.target} --out results.parquet")
    steps.append("commit the files and open a pull request: llmci's checks run on it")
    return ["next:", *(f"  {n}. {step}" for n, step in enumerate(steps, 1))]


def write_starters(folder: Path) -> list[Path]:
    """Rewrite `workflows/*.yml` of the llmci repository from the templates (the files that changed)."""
    changed = []
    for name, text in render_starters().items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m llmci.scaffold: regenerate workflows/*.yml of this checkout
    for written in write_starters(Path(__file__).resolve().parent.parent / "workflows"):
        print(f"wrote {written}")
