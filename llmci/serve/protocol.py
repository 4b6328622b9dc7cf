"""The OpenAI-compatible API the serving application speaks: requests in, answers out.

`POST /v1/completions` takes `prompt` (used as it is) or llmci's `vars`
(rendered with the prompt template the version was trained with);
`POST /v1/chat/completions` takes `messages`, rendered with the model's chat
template. `model` names the model (`NAME`: the environment's weights pick a
version) or one version (`NAME@VERSION`: that version answers, whatever its
weight). Errors have OpenAI's shape, `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

#: The most tokens one request may ask for: a guard against one request holding a batch for minutes.
MAX_TOKENS_LIMIT = 4096


class RequestError(Exception):
    """A request the server refuses: its HTTP status and OpenAI error type."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.code)


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


@dataclass(frozen=True)
class Sampling:
    """What changes how tokens are chosen: requests that share it can share a batch."""

    temperature: float = 0.0
    top_p: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    kind: Literal["completion", "chat"]
    model: str
    prompt: str | None = None
    variables: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int = 16
    sampling: Sampling = Sampling()
    stop: tuple[str, ...] = ()
    user: str | None = None


@dataclass(frozen=True)
class Output:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    #: Prompt tokens the tokenizer mapped to its unknown token (out of vocabulary).
    unknown_tokens: int = 0


@dataclass(frozen=True)
class Call:
    """One request as the router hands it to a model replica, in a batch."""

    path: str
    body: Any
    #: When the router queued it (time.time()): the replica records how long it waited for generation.
    queued_at: float


@dataclass
class Answer:
    """What a model replica answers: an HTTP status and a JSON body, plus who answered."""

    status: int
    body: dict[str, Any]
    version: str | None = None
    #: What the monitor records of the request: queue time, prompt descriptors, the replica (recording.py).
    extra: dict[str, Any] = field(default_factory=dict)


def parse(path: str, body: Any) -> GenerationRequest:
    """The request at `path` (`/v1/completions` or `/v1/chat/completions`); RequestError when it is not valid."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' is required: the model's name, or NAME@VERSION for one version")
    if body.get("stream"):
        raise RequestError(400, "streaming is not supported; send stream: false", code="unsupported")
    if body.get("n", 1) != 1:
        raise RequestError(400, "'n' must be 1", code="unsupported")
    common = {
        "model": model,
        "max_tokens": _int(body, "max_tokens", 16, 1, MAX_TOKENS_LIMIT),
        "sampling": _sampling(_number(body, "temperature", 0.0, 0.0, 2.0), _number(body, "top_p", 1.0, 0.0, 1.0)),
        "stop": _stop(body.get("stop")),
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
    }
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise RequestError(400, f"messages[{index}] must be an object with a 'role'")
            if not isinstance(message.get("content"), (str, type(None))):
                raise RequestError(400, f"messages[{index}].content must be a string")
        return GenerationRequest(kind="chat", messages=messages, **common)
    if path.endswith("/completions"):
        prompt, variables = body.get("prompt"), body.get("vars")
        if (prompt is None) == (variables is None):
            raise RequestError(400, "give either 'prompt' (a string) or 'vars' (rendered with the model's template)")
        if prompt is not None and not isinstance(prompt, str):
            raise RequestError(400, "'prompt' must be one string (lists of prompts are not supported)")
        if variables is not None and not isinstance(variables, dict):
            raise RequestError(400, "'vars' must be an object")
        return GenerationRequest(kind="completion", prompt=prompt, variables=variables, **common)
    raise RequestError(404, f"no such endpoint: {path}", code="not_found")


def answer_body(request: GenerationRequest, output: Output, model_version: str) -> dict[str, Any]:
    """The OpenAI answer for `output`; `model` says which version answered."""
    created = int(time.time())
    usage = {
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
        "total_tokens": output.prompt_tokens + output.completion_tokens,
    }
    if request.kind == "chat":
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": created,
            "model": model_version,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output.text},
                    "finish_reason": output.finish_reason,
                }
            ],
            "usage": usage,
        }
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": created,
        "model": model_version,
        "choices": [{"index": 0, "text": output.text, "finish_reason": output.finish_reason, "logprobs": None}],
        "usage": usage,
    }


def models_body(models: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "llmci"} for name in models]}


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"'{key}' must be an integer from {low} to {high}")
    return value


def _sampling(temperature: float, top_p: float) -> Sampling:
    """Near-zero temperature or top_p is greedy decoding: sampling with them divides by ~0 (inf/nan)."""
    if temperature < 0.01 or top_p < 0.001:
        return Sampling(temperature=0.0, top_p=1.0)
    return Sampling(temperature=temperature, top_p=top_p)


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(400, f"'{key}' must be a number from {low} to {high}")
    return float(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) and s for s in value):
        return tuple(value)
    raise RequestError(400, "'stop' must be a string or a list of up to 4 non-empty strings")
