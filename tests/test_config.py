"""llmci.yaml: one schema, problems reported as file:line: key: what, with "did you mean"."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from llmci.config import Config, json_schema, load_config, parse_config
from llmci.errors import ConfigError, ExitCode
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("promtps: []\n", "llmci.yaml:1: promtps: unknown key; did you mean 'prompts'?"),
        (
            "prompts:\n  - path: a\n    untrusted: [q]\n",
            "llmci.yaml:2: prompts[0]: untrusted names ['q'] are not in variables",
        ),
        (
            "lint:\n  rules:\n    undefined-varible: error\n",
            "llmci.yaml:2: lint.rules: unknown rule 'undefined-varible'; did you mean 'undefined-variable'?",
        ),
        (
            "eval:\n  suites:\n    qa:\n      dataset: d.jsonl\n      metrcs: []\n",
            "llmci.yaml:5: eval.suites.qa.metrcs: unknown key; did you mean 'metrics'?",
        ),
        ("train:\n  name: qa\n  dataset: d.jsonl\n", "llmci.yaml:1: train.base_model: required key is missing"),
        (
            "registry:\n  uri: http://bucket\n",
            "llmci.yaml:2: registry.uri: 'http://bucket' must start with file:// or s3://",
        ),
        (
            "prompts:\n  - path: /abs/*.j2\n",
            "llmci.yaml:2: prompts[0].path: '/abs/*.j2' must be a glob relative to llmci.yaml",
        ),
        ("prompts: [\n", "llmci.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'"),
        ("- a\n- b\n", "llmci.yaml:1: the top level must be a mapping of sections, not list"),
    ],
)
def test_problems_name_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == message
    assert caught.value.exit_code == ExitCode.USAGE


def test_every_problem_gets_its_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("prompts:\n  - path: a\n    kind: chat\n    variabels: []\nlint:\n  filter: []\n")
    assert str(caught.value).splitlines() == [
        "llmci.yaml:3: prompts[0].kind: Input should be 'prompt' or 'chat-template'",
        "llmci.yaml:4: prompts[0].variabels: unknown key; did you mean 'variables'?",
        "llmci.yaml:6: lint.filter: unknown key; did you mean 'filters'?",
    ]


def test_bare_off_means_off() -> None:
    """YAML 1.1 reads `off` as false; the user meant the word."""
    assert parse_config("lint:\n  rules:\n    token-budget: off\n").lint.rules == {"token-budget": "off"}


def test_empty_file_and_missing_file() -> None:
    assert parse_config("") == Config()
    with pytest.raises(ConfigError, match="no such file; pass --config"):
        load_config(Path("/nonexistent/llmci.yaml"))


def test_config_is_found_in_a_parent_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llmci.yaml").write_text("prompts:\n  - path: '*.j2'\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    loaded = load_config()
    assert loaded.path == tmp_path / "llmci.yaml" and loaded.root == tmp_path


def test_example_config_validates_against_the_exported_json_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load((REPO / "examples/quickstart/llmci.yaml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"promtps": []}, schema)


def test_readme_example_config_is_valid() -> None:
    readme = (REPO / "README.md").read_text()
    example = readme.split("## `llmci.yaml`\n\n```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, "README.md")
    suite = config.eval.suites["routing"]
    assert suite.metrics[1].key == "helpfulness" and config.eval.suites["legacy"].pytest == ["tests/evals"]


def test_eval_suite_needs_one_source_and_distinct_metric_names() -> None:
    with pytest.raises(ConfigError, match=r"eval\.suites\.s: give either 'dataset' \(with metrics\) or 'pytest'"):
        parse_config("eval: {suites: {s: {dataset: d.jsonl, pytest: [t]}}}")
    with pytest.raises(ConfigError, match="two metrics share a name; give one an 'id'"):
        parse_config("eval: {suites: {s: {dataset: d.jsonl, metrics: [{name: ExactMatch}, {name: ExactMatch}]}}}")
    config = parse_config("eval: {suites: {s: {dataset: d, metrics: [{name: A, params: {x: 1e-6}}]}}}")
    assert config.eval.suites["s"].metrics[0].params == {"x": 1e-6}  # YAML 1.2 numbers, not the string "1e-6"
