"""Real templates from other projects lint clean when told their inputs (tests/data/prompt-templates)."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

from llmci.config import load_config
from llmci.lint.engine import Linter
from llmci.lint.rules import Severity
from llmci.templating import make_environment
from tests.conftest import CORPORA

CORPUS = CORPORA / "prompt-templates"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the corpus with an llmci.yaml built from its inputs.yaml."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS, root, dirs_exist_ok=True)
    inputs = yaml.safe_load((CORPUS / "inputs.yaml").read_text())
    entries = [
        {"path": pattern, "variables": names, **({"kind": "chat-template"} if "chat-templates" in pattern else {})}
        for pattern, names in inputs.items()
    ]
    (root / "llmci.yaml").write_text(yaml.safe_dump({"prompts": entries}))
    return root


def test_corpus_has_what_the_readme_says() -> None:
    assert len(list((CORPUS / "chat-templates").glob("*.jinja"))) == 18
    assert len(list((CORPUS / "promptflow").glob("*.jinja2"))) == 8


def test_every_corpus_template_lints_without_errors_or_undefined_names(corpus: Path) -> None:
    report = Linter(load_config(corpus / "llmci.yaml")).lint()
    assert report.files == 26
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    undefined = [f for f in report.findings if f.rule in ("undefined-variable", "possibly-undefined")]
    assert errors == [] and undefined == []


def test_naive_undeclared_variables_would_be_wrong_on_the_chat_templates(corpus: Path) -> None:
    """For contrast: jinja2.meta alone takes names the template sets (`offset`, `system_message`) for inputs.

    The issue counts 14 of 18 such templates; with the corpus contract as inputs we count 16.
    """
    env = make_environment("chat-template")
    contract = set(yaml.safe_load((CORPUS / "inputs.yaml").read_text())["chat-templates/*.jinja"])
    wrong = [
        path.name
        for path in sorted((corpus / "chat-templates").glob("*.jinja"))
        if jinja2.meta.find_undeclared_variables(env.parse(path.read_text())) - contract - set(env.globals)
    ]
    assert len(wrong) >= 14, wrong


MODEL_TEMPLATES = CORPORA / "model-templates"


@pytest.fixture(scope="module")
def model_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model-templates")
    shutil.copytree(MODEL_TEMPLATES, root, dirs_exist_ok=True)
    entry = {"path": "*.jinja", "kind": "chat-template", "filters": ["from_json"]}
    (root / "llmci.yaml").write_text(yaml.safe_dump({"prompts": [entry]}))
    return root


def test_current_model_chat_templates_lint_without_errors_or_warnings(model_templates: Path) -> None:
    """Tools, tool calls, recursive macros, macros defined after their callers, optional arguments."""
    report = Linter(load_config(model_templates / "llmci.yaml")).lint()
    assert report.files == len(list(MODEL_TEMPLATES.glob("*.jinja"))) >= 20
    assert [f for f in report.findings if f.severity is not Severity.INFO] == []


def test_their_optional_arguments_are_listed(model_templates: Path) -> None:
    findings = Linter(load_config(model_templates / "llmci.yaml")).lint().findings
    optional: dict[str, set[str]] = {}
    for f in findings:
        if f.rule == "optional-argument":
            optional.setdefault(Path(f.path).stem, set()).add(f.message.split("'")[1])
    assert optional["openai-gpt-oss-120b"] == {"model_identity", "reasoning_effort", "builtin_tools"}
    assert optional["Qwen-Qwen3-0.6B"] == {"enable_thinking"}
    assert optional["ibm-granite-granite-3.3-2B-Instruct"] == {"available_tools", "thinking", "controls"}


def test_an_engine_filter_must_be_declared(model_templates: Path) -> None:
    """DeepSeek-V3.2's template uses `from_json`, which serving engines add and transformers does not."""
    (model_templates / "llmci.yaml").write_text("prompts:\n  - {path: '*.jinja', kind: chat-template}\n")
    try:
        report = Linter(load_config(model_templates / "llmci.yaml")).lint()
    finally:
        entry = {"path": "*.jinja", "kind": "chat-template", "filters": ["from_json"]}
        (model_templates / "llmci.yaml").write_text(yaml.safe_dump({"prompts": [entry]}))
    assert [(Path(f.path).name, f.rule) for f in report.findings if f.severity is Severity.ERROR] == [
        ("deepseek-ai-DeepSeek-V3.2.jinja", "unknown-filter")
    ]
