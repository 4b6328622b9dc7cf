"""`llmci lint`: prompt templates (Jinja2) parsed, never rendered, and checked for inputs, safety and budgets.

`Linter` lints the templates llmci.yaml declares, or the files and folders
given, into a `LintReport` of `Finding`s; `render` writes one in a format of
`FORMATS` (text, JSON, SARIF, GitHub annotations) and `summary_markdown` as a
job summary. `RULES` is every rule with its default `Severity`.
`lint_model_dir` and `lint_registry_version` lint the chat templates a model
carries; `require_clean_templates` is the deploy stage's check (it raises
`TemplateRefused`).

The names are loaded on first use: importing this package imports neither
Jinja2 nor llmci's configuration (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.lint.engine import Linter
    from llmci.lint.findings import Finding, LintReport
    from llmci.lint.formats import FORMATS, render, summary_markdown
    from llmci.lint.model import TemplateRefused, lint_model_dir, lint_registry_version, require_clean_templates
    from llmci.lint.rules import RULES, Rule, Severity

_WHERE = {
    "Linter": "engine",
    "Finding": "findings",
    "LintReport": "findings",
    "FORMATS": "formats",
    "render": "formats",
    "summary_markdown": "formats",
    "TemplateRefused": "model",
    "lint_model_dir": "model",
    "lint_registry_version": "model",
    "require_clean_templates": "model",
    "RULES": "rules",
    "Rule": "rules",
    "Severity": "rules",
}

__all__ = [
    "FORMATS",
    "RULES",
    "Finding",
    "LintReport",
    "Linter",
    "Rule",
    "Severity",
    "TemplateRefused",
    "lint_model_dir",
    "lint_registry_version",
    "render",
    "require_clean_templates",
    "summary_markdown",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
