"""The OpenAI-compatible requests the serving application accepts, and the ones it refuses."""

from __future__ import annotations

import pytest

from llmci.serve.protocol import GenerationRequest, Output, RequestError, answer_body, parse


def test_completions_take_a_prompt_or_vars_and_chat_takes_messages() -> None:
    plain = parse("/v1/completions", {"model": "m", "prompt": "hi", "max_tokens": 3, "stop": "\n"})
    assert (plain.kind, plain.prompt, plain.max_tokens, plain.stop) == ("completion", "hi", 3, ("\n",))
    rendered = parse("/v1/completions", {"model": "m@2", "vars": {"ticket": "x"}})
    assert rendered.variables == {"ticket": "x"} and rendered.model == "m@2"
    chat = parse("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.kind == "chat" and chat.messages == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/completions", [], "the request body must be a JSON object"),
        ("/v1/completions", {"prompt": "x"}, "'model' is required"),
        ("/v1/completions", {"model": "m"}, "give either 'prompt'"),
        ("/v1/completions", {"model": "m", "prompt": "x", "vars": {}}, "give either 'prompt'"),
        ("/v1/completions", {"model": "m", "prompt": ["a", "b"]}, "'prompt' must be one string"),
        ("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 0}, "'max_tokens' must be an integer"),
        ("/v1/completions", {"model": "m", "prompt": "x", "temperature": 3}, "'temperature' must be a number"),
        ("/v1/completions", {"model": "m", "prompt": "x", "stream": True}, "streaming is not supported"),
        ("/v1/chat/completions", {"model": "m", "messages": []}, "'messages' must be a non-empty list"),
        ("/v1/chat/completions", {"model": "m", "messages": [{"content": "x"}]}, "messages[0] must be an object"),
    ],
)
def test_bad_requests_are_400_with_openais_error_shape(path: str, body: object, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse(path, body)
    assert refused.value.status == 400 and message in refused.value.message
    assert set(refused.value.body()["error"]) == {"message", "type", "code"}


def test_the_answer_names_the_version_that_answered() -> None:
    request = GenerationRequest(kind="chat", model="m", messages=[{"role": "user", "content": "hi"}])
    body = answer_body(request, Output("billing", 12, 2, "stop"), "m@3")
    assert body["model"] == "m@3" and body["choices"][0]["message"]["content"] == "billing"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}


def test_a_near_zero_temperature_or_top_p_decodes_greedily() -> None:
    """Sampling at temperature 1e-300 divides by ~0 (inf/nan in torch): it is greedy decoding anyway."""
    from llmci.serve.protocol import Sampling

    for extra in ({"temperature": 1e-300}, {"temperature": 0.5, "top_p": 1e-9}):
        parsed = parse("/v1/completions", {"model": "m", "prompt": "x", **extra})
        assert parsed.sampling == Sampling(temperature=0.0, top_p=1.0)
    kept = parse("/v1/completions", {"model": "m", "prompt": "x", "temperature": 0.7, "top_p": 0.9})
    assert kept.sampling == Sampling(temperature=0.7, top_p=0.9)
