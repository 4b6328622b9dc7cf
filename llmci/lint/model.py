"""Lint the chat templates of a model: a folder, or a registry version; and refuse to deploy a bad one.

`lint_model_dir` and `lint_registry_version` are what `llmci lint MODEL_DIR` and
`llmci lint registry:NAME@VERSION` run; `require_clean_templates` is the deploy
stage's check: a version whose chat template has an error-level finding is not
deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmci.config import Config, LoadedConfig
from llmci.errors import ExitCode, LlmciError
from llmci.lint.embedded import registry_templates
from llmci.lint.engine import Linter
from llmci.lint.findings import LintReport, Source
from llmci.lint.rules import Severity

if TYPE_CHECKING:
    from llmci.registry import Manifest, Registry


class TemplateRefused(LlmciError):
    """A model version whose chat template has an error-level lint finding is not deployed."""

    exit_code = ExitCode.FAILED


def lint_model_dir(path: Path, loaded: LoadedConfig | None = None) -> LintReport:
    """Every chat template of the model folder `path` (tokenizer_config.json, chat_template.jinja/.json,
    additional_chat_templates/, GGUF metadata), under llmci.yaml's `lint` settings when given."""
    return Linter(loaded or LoadedConfig(Config(), None)).lint([path])


def lint_registry_version(registry: Registry, manifest: Manifest, loaded: LoadedConfig | None = None) -> LintReport:
    """Every chat template of a registry version, read from the registry with every byte verified."""
    linter = Linter(loaded or LoadedConfig(Config(), None))
    spec = linter.model_spec(None)
    sources = [Source(t.display, spec, (), data=t.source) for t in registry_templates(registry, manifest)]
    return linter.lint_sources(sources)


def require_clean_templates(registry: Registry, manifest: Manifest, loaded: LoadedConfig | None = None) -> None:
    """Refuse (TemplateRefused, exit 1) a version whose chat template has an error-level finding."""
    errors = [f for f in lint_registry_version(registry, manifest, loaded).findings if f.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise TemplateRefused(
            f"{manifest.ref} is not deployed: {first.path}:{first.line}:{first.column}: {first.rule}: "
            f"{first.message}{more}",
            hint=f"see every finding with `llmci lint registry:{manifest.ref}`",
        )
