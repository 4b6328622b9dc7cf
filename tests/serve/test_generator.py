"""A version loaded for serving: prompts built as it was trained, batches that answer as single requests do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmci.serve.generator import PROMPT_FILE, Generator
from llmci.serve.protocol import GenerationRequest, RequestError
from llmci.templating import bundle_template, load_template
from tests.conftest import QUICKSTART


@pytest.fixture(scope="module")
def served(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served") / "model"
    shutil.copytree(base_model, folder)
    (folder / PROMPT_FILE).write_text(json.dumps(bundle_template(QUICKSTART, "prompts/classify.j2")))
    return folder


def request(**fields) -> GenerationRequest:
    return GenerationRequest(**{"kind": "completion", "model": "m", "max_tokens": 6, **fields})


def test_a_batch_answers_exactly_as_single_requests_do(served: Path) -> None:
    generator = Generator(served, threads=1)
    prompts = ["Label:", "The search in the API returns nothing.\nLabel:", "x" * 40, "billing"]
    requests = [request(prompt=p, max_tokens=3 + i) for i, p in enumerate(prompts)]
    batched = generator.generate(requests, prompts)
    alone = [generator.generate([r], [p])[0] for r, p in zip(requests, prompts, strict=True)]
    assert batched == alone
    assert [o.completion_tokens for o in batched] == [min(3 + i, o.completion_tokens) for i, o in enumerate(batched)]


def test_vars_render_with_the_template_the_version_was_trained_on(served: Path) -> None:
    generator = Generator(served, threads=1)
    variables = {"ticket": "I was charged twice", "labels": ["billing", "bug"]}
    expected = load_template(QUICKSTART, "prompts/classify.j2", key="k").render(**variables)
    assert generator.prompt(request(variables=variables)) == expected
    with pytest.raises(RequestError, match="rendering the prompt template failed: 'ticket' is undefined"):
        generator.prompt(request(variables={"labels": []}))


def test_a_model_without_a_chat_template_refuses_chat_with_a_400(served: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(served, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    settings = json.loads((plain / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(settings))
    chat = GenerationRequest(kind="chat", model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RequestError) as refused:
        Generator(plain, threads=1).prompt(chat)
    assert refused.value.status == 400 and refused.value.code == "no_chat_template"
    assert "hi" in Generator(served, threads=1).prompt(chat)  # the model with a chat template renders it


def test_a_prompt_beyond_the_context_is_refused_alone(served: Path) -> None:
    generator = Generator(served, threads=1)
    long = "word " * 2000
    results = generator.generate([request(prompt=long), request(prompt="ok")], [long, "ok"])
    assert isinstance(results[0], RequestError) and results[0].code == "context_length_exceeded"
    assert not isinstance(results[1], RequestError)


def test_vars_a_template_cannot_take_are_the_clients_400(served: Path, tmp_path: Path) -> None:
    """A zero the template divides by, or vars nested past Python's limit: a 400 for that request."""
    folder = tmp_path / "model"
    shutil.copytree(served, folder)
    bundle = {"template": "t.j2", "files": {"t.j2": "{{ 100 // n }} {{ deep | string }}"}}
    (folder / PROMPT_FILE).write_text(json.dumps(bundle))
    generator = Generator(folder, threads=1)
    with pytest.raises(RequestError) as raised:
        generator.prompt(request(variables={"n": 0, "deep": []}))
    assert raised.value.status == 400 and "rendering the prompt template failed" in raised.value.message
    assert generator.prompt(request(variables={"n": 4, "deep": []})) == "25 []"


def test_a_sampling_that_fails_fails_only_the_requests_that_asked_for_it(served: Path) -> None:
    from llmci.serve.protocol import Sampling

    generator = Generator(served, threads=1)
    broken = request(prompt="billing", sampling=Sampling(temperature=1e-300))  # inf/nan probabilities in torch
    fine = request(prompt="billing")
    results = generator.generate([broken, fine], ["billing", "billing"])
    assert isinstance(results[0], RequestError) and results[0].status == 500
    assert "generation failed" in results[0].message
    assert results[1] == generator.generate([fine], ["billing"])[0]
