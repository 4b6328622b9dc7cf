"""Dataset validation: every bad input is one error naming file:line, before any compute."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmci.config import load_config
from llmci.errors import ExitCode, InputError
from llmci.train.dataset import load_dataset
from llmci.train.runner import plan_training
from tests.conftest import run_llmci


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n', "d.jsonl:2: invalid JSON"),
        (b'{"prompt": "a"}\n', "d.jsonl:1: missing field 'completion'"),
        (b'{"completion": "b"}\n', "d.jsonl:1: missing field 'prompt'"),
        (b'\n\n{"prompt": "\xff", "completion": "b"}\n', "d.jsonl:3: not UTF-8"),
        (b"", "d.jsonl: no examples (the file is empty)"),
        (b"[1, 2]\n", "d.jsonl:1: each line must be a JSON object"),
        (b'{"vars": {"x": 1}, "completion": "b"}\n', "d.jsonl:1: 'vars' needs train.prompt"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n', "d.jsonl:1: the last message must be the assistant"),
        (b'{"messages": [{"role": "user"}]}\n', "d.jsonl:1: messages[0] needs a 'content' string"),
    ],
)
def test_bad_lines_name_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_dataset(tmp_path / "d.jsonl")
    assert str(caught.value).startswith(message)


def test_three_shapes_of_examples(tmp_path: Path) -> None:
    from llmci.templating import make_environment

    (tmp_path / "d.jsonl").write_text(
        '{"prompt": "Q: 1+1?\\nA:", "completion": " 2"}\n'
        '{"vars": {"q": "2+2?"}, "completion": " 4"}\n'
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    template = make_environment("prompt").from_string("Q: {{ q }}\nA:")
    dataset = load_dataset(tmp_path / "d.jsonl", template)
    assert [e.prompt for e in dataset.examples] == ["Q: 1+1?\nA:", "Q: 2+2?\nA:", None]
    assert dataset.examples[2].messages[-1] == {"role": "assistant", "content": "hello"}
    assert len(dataset.sha256) == 64


def test_plan_renders_the_prompt_template_and_holds_out_eval(train_project) -> None:
    root = train_project(eval_dataset=None, hyperparameters={"epochs": 2, "batch_size": 16, "eval_fraction": 0.25})
    plan = plan_training(load_config(root / "llmci.yaml"))
    assert (len(plan.train_examples), len(plan.eval_examples)) == (360, 120)
    assert plan.total_steps == 2 * 23
    ids, labels = plan.train_examples[0]
    assert len(ids) == len(labels) and labels[0] == -100 and labels[-1] != -100  # loss on the completion only


def test_dry_run_validates_and_prints_the_plan(train_project) -> None:
    root = train_project()
    result = run_llmci("train", "--dry-run", cwd=root)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert "train ticket-router: full fine-tuning of" in result.stderr
    assert "6 = 1 epochs x 30 steps" in result.stderr and "capped by max_steps 6" in result.stderr
    assert not (root / ".llmci" / "registry").exists()  # nothing ran, nothing published


def test_bad_dataset_fails_the_dry_run_with_its_line(train_project) -> None:
    root = train_project()
    with open(root / "data" / "train.jsonl", "a") as handle:
        handle.write('{"vars": {"ticket": "x"}, "completion": ""}\n')
    result = run_llmci("train", "--dry-run", cwd=root)
    assert result.code == ExitCode.USAGE
    assert result.stderr.strip().endswith("data/train.jsonl:481: missing field 'completion' (a non-empty string)")


def test_missing_train_section_and_base_model(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("prompts: []\n")
    assert "no `train` section" in run_llmci("train", "--dry-run", cwd=tmp_path).stderr
    (tmp_path / "llmci.yaml").write_text("train: {name: m, base_model: ./nowhere, dataset: d.jsonl}\n")
    result = run_llmci("train", "--dry-run", cwd=tmp_path)
    assert result.code == ExitCode.USAGE and "train.base_model: ./nowhere: no such folder" in result.stderr
