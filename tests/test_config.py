"""llmci.yaml: one schema, problems reported as file:line: key: what, with "did you mean"."""

from __future__ import annotations

import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from llmci.config import Config, json_schema, load_config, parse_config
from llmci.errors import ConfigError, ExitCode
from tests.conftest import REPO, run_llmci, write_tree


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


def test_eval_suite_needs_one_source_and_distinct_metric_names() -> None:
    with pytest.raises(ConfigError, match=r"eval\.suites\.s: give either 'dataset' \(with metrics\) or 'pytest'"):
        parse_config("eval: {suites: {s: {dataset: d.jsonl, pytest: [t]}}}")
    with pytest.raises(ConfigError, match="two metrics share a name; give one an 'id'"):
        parse_config("eval: {suites: {s: {dataset: d.jsonl, metrics: [{name: ExactMatch}, {name: ExactMatch}]}}}")
    config = parse_config("eval: {suites: {s: {dataset: d, metrics: [{name: A, params: {x: 1e-6}}]}}}")
    assert config.eval.suites["s"].metrics[0].params == {"x": 1e-6}  # YAML 1.2 numbers, not the string "1e-6"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "registry:\n  uri: s3://ours/models\nprompts: []\nregistry:\n  uri: s3://theirs/models\n",
            "llmci.yaml:4: registry: duplicate key 'registry' (first at line 1); keep one",
        ),
        (
            "eval:\n  suites:\n    qa:\n      dataset: d.jsonl\n      metrics:\n        - name: ExactMatch\n"
            "          gate: {max_regression: 0.0}\n          gate: {max_regression: null}\n",
            "llmci.yaml:8: eval.suites.qa.metrics[0].gate: duplicate key 'gate' (first at line 7); keep one",
        ),
        (
            "lint: {rules: {token-budget: error,\n  token-budget: off}}\n",
            "llmci.yaml:2: lint.rules.token-budget: duplicate key 'token-budget' (first at line 1); keep one",
        ),
        (
            "registry: {<<: {uri: 's3://theirs/models'}, uri: 's3://ours/models'}\n",
            "llmci.yaml:1: registry: merge keys (<<) are not supported; write the keys out",
        ),
    ],
)
def test_duplicate_keys_are_refused_with_both_lines(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "prompts:\n  - &p {path: a.j2}\n  - *p\n",
            "llmci.yaml:2: prompts[0]: YAML anchors and aliases are not supported (&p); write the value out",
        ),
        (
            "lint:\n  rules: {}\n  filters: *f\n",
            "llmci.yaml:3: lint.filters: YAML anchors and aliases are not supported (*f); write the value out",
        ),
    ],
)
def test_anchors_and_aliases_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == message


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{', '.join(['*' + chr(ord('a') + i - 1)] * 9)}]\n"
    for i in range(1, 10)
)


def test_a_billion_laughs_fails_at_once(tmp_path: Path) -> None:
    assert len(LAUGHS) < 600
    (tmp_path / "llmci.yaml").write_text(LAUGHS)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^llmci\.yaml:1: a: YAML anchors and aliases are not supported \(&a\)"):
        parse_config(LAUGHS)
    assert time.perf_counter() - started < 0.5
    result = run_llmci("config", "check", cwd=tmp_path, timeout=20)
    assert result.code == 2 and len(result.stderr.splitlines()) == 1


def outside_project(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> Path:
    """A repository with llmci.yaml in `repo/project`, a secret beside it and one outside the repository."""
    write_tree(tmp_path, {"secret.txt": "token\n", "repo/common/x.j2": "x\n", "repo/project/llmci.yaml": config})
    write_tree(tmp_path / "repo/project", files or {})
    (tmp_path / "repo/.git").mkdir()
    return tmp_path / "repo/project/llmci.yaml"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "prompts:\n  - path: '../common/*.j2'\n",
            "llmci.yaml:2: prompts[0].path: '../common/*.j2' is outside the folder of llmci.yaml; "
            "add its folder to lint.search_path to lint templates there",
        ),
        (
            "train: {name: m, base_model: gpt2,\n  dataset: ../../secret.txt}\n",
            "llmci.yaml:2: train.dataset: '../../secret.txt' is outside the folder of llmci.yaml; "
            "keep the project's files inside it",
        ),
        (
            "eval:\n  suites:\n    s: {dataset: /etc/passwd, metrics: [{name: ExactMatch}]}\n",
            "llmci.yaml:3: eval.suites.s.dataset: '/etc/passwd' is outside the folder of llmci.yaml; "
            "keep the project's files inside it",
        ),
        (
            "eval:\n  suites:\n    s:\n      dataset: d.jsonl\n      prompt: ../common/x.j2\n"
            "      metrics: [{name: ExactMatch}]\n",
            "llmci.yaml:5: eval.suites.s.prompt: '../common/x.j2' is outside the folder of llmci.yaml; "
            "keep the project's files inside it",
        ),
        (
            "eval:\n  suites:\n    s:\n      pytest:\n        - tests\n        - ../..\n",
            "llmci.yaml:6: eval.suites.s.pytest[1]: '../..' is outside the folder of llmci.yaml; "
            "keep the project's files inside it",
        ),
        (
            "lint:\n  search_path: [../common, ../..]\n",
            "llmci.yaml:2: lint.search_path[1]: '../..' is outside the repository that holds llmci.yaml; "
            "search only folders of the repository",
        ),
    ],
)
def test_paths_outside_the_project_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, message: str
) -> None:
    path = outside_project(tmp_path, config)
    monkeypatch.chdir(path.parent)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == message


def test_a_link_to_outside_the_project_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = "train: {name: m, base_model: gpt2, dataset: data/train.jsonl}\n"
    path = outside_project(tmp_path, config)
    monkeypatch.chdir(path.parent)
    (path.parent / "data").mkdir()
    (path.parent / "data/train.jsonl").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        "llmci.yaml:1: train.dataset: 'data/train.jsonl' is a link to outside the folder of llmci.yaml; "
        "keep the project's files inside it"
    )


def test_search_path_allows_templates_outside_the_project(tmp_path: Path) -> None:
    config = "lint:\n  search_path: [../common]\nprompts:\n  - path: '../common/*.j2'\n"
    loaded = load_config(outside_project(tmp_path, config, {"t.j2": "{{ x }}\n"}))
    assert loaded.config.lint.search_path == ["../common"]
    # Inside the project, links and `..` that stay inside are fine.
    (tmp_path / "repo/project/data").mkdir()
    (tmp_path / "repo/project/data/link.jsonl").symlink_to(tmp_path / "repo/project/t.j2")
    config = "train: {name: m, base_model: gpt2, dataset: data/../data/link.jsonl}\n"
    (tmp_path / "repo/project/llmci.yaml").write_text(config)
    assert load_config(tmp_path / "repo/project/llmci.yaml").config.train.dataset == "data/../data/link.jsonl"
